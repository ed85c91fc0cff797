//! The `$connect` authorizer end to end in one process: a tiny issuer (axum on 127.0.0.1 serving
//! the OIDC discovery document and a JWKS it can rotate, counting fetches), tokens signed with
//! the TEST-ONLY keys in `tests/fixtures/`, and the handler's answers (Allow with
//! `principalId = sub` on the `$connect` ARN, Deny otherwise).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::IamPolicyEffect;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tessera_authorizer::jwks::KeyCache;
use tessera_authorizer::{authorize, AuthorizerConfig, Rejection, Verifier};

const AUDIENCE: &str = "tessera-web";
const CONNECT_ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:wsapi1234/live/$connect";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// A TEST-ONLY signing key and its public JWK (with `kid` and `alg`).
struct TestKey {
    kid: &'static str,
    alg: Algorithm,
    enc: EncodingKey,
}

impl TestKey {
    fn rsa(kid: &'static str, file: &str) -> Self {
        TestKey {
            kid,
            alg: Algorithm::RS256,
            enc: EncodingKey::from_rsa_der(&fixture(file)),
        }
    }
    fn ec(kid: &'static str) -> Self {
        TestKey {
            kid,
            alg: Algorithm::ES256,
            enc: EncodingKey::from_ec_der(&fixture("test-only-ec-p256.pkcs8.der")),
        }
    }
    fn jwk(&self) -> Jwk {
        let mut j = Jwk::from_encoding_key(&self.enc, self.alg).expect("public JWK");
        j.common.key_id = Some(self.kid.to_string());
        j
    }
    /// Signs `claims` naming `kid` in the header (normally its own).
    fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut h = Header::new(self.alg);
        h.kid = Some(kid.to_string());
        jsonwebtoken::encode(&h, claims, &self.enc).expect("sign")
    }
    fn sign(&self, claims: &Value) -> String {
        self.sign_as(self.kid, claims)
    }
}

/// The test issuer: serves discovery and the current JWKS; counts JWKS fetches.
#[derive(Clone)]
struct Issuer {
    url: String,
    jwks: Arc<Mutex<JwkSet>>,
    fetches: Arc<AtomicU64>,
}

impl Issuer {
    async fn start(keys: &[&TestKey]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let issuer = Issuer {
            url: url.clone(),
            jwks: Arc::new(Mutex::new(JwkSet { keys: vec![] })),
            fetches: Arc::new(AtomicU64::new(0)),
        };
        issuer.publish(keys);
        let app = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(|State(i): State<Issuer>| async move {
                    Json(json!({"issuer": i.url, "jwks_uri": format!("{}/keys", i.url)}))
                }),
            )
            .route(
                "/keys",
                get(|State(i): State<Issuer>| async move {
                    i.fetches.fetch_add(1, Ordering::SeqCst);
                    Json(i.jwks.lock().unwrap().clone())
                }),
            )
            .with_state(issuer.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        issuer
    }
    fn publish(&self, keys: &[&TestKey]) {
        *self.jwks.lock().unwrap() = JwkSet {
            keys: keys.iter().map(|k| k.jwk()).collect(),
        };
    }
    fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }
    fn config(&self, min_refresh: Duration) -> AuthorizerConfig {
        AuthorizerConfig::from_lookup(|k| match k {
            "TESSERA_JWT_ISSUER" => Some(self.url.clone()),
            "TESSERA_JWT_AUDIENCE" => Some(AUDIENCE.into()),
            "TESSERA_JWKS_MIN_REFRESH_SECS" => Some(min_refresh.as_secs().to_string()),
            _ => None,
        })
        .unwrap()
    }
    fn verifier(&self, min_refresh: Duration) -> Verifier {
        let cfg = self.config(min_refresh);
        Verifier::new(cfg.clone(), KeyCache::new(reqwest::Client::new(), cfg))
    }
    fn claims(&self, sub: &str) -> Value {
        json!({"sub": sub, "iss": self.url, "aud": AUDIENCE, "exp": now() + 600, "iat": now()})
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A real-shaped REQUEST authorizer event of a WebSocket `$connect`.
fn connect_event(token: Option<&str>) -> ApiGatewayCustomAuthorizerRequestTypeRequest {
    let q = token.map_or(json!({}), |t| json!({"token": t}));
    let mq = token.map_or(json!({}), |t| json!({"token": [t]}));
    serde_json::from_value(json!({
        "type": "REQUEST",
        "methodArn": CONNECT_ARN,
        "headers": {"Host": "wsapi1234.execute-api.us-east-1.amazonaws.com", "Sec-WebSocket-Version": "13"},
        "multiValueHeaders": {"Host": ["wsapi1234.execute-api.us-east-1.amazonaws.com"]},
        "queryStringParameters": q,
        "multiValueQueryStringParameters": mq,
        "stageVariables": {},
        "requestContext": {
            "routeKey": "$connect", "eventType": "CONNECT", "messageDirection": "IN",
            "stage": "live", "requestId": "req-1", "connectionId": "conn-1",
            "domainName": "wsapi1234.execute-api.us-east-1.amazonaws.com", "apiId": "wsapi1234",
            "identity": {"sourceIp": "203.0.113.10"}
        }
    }))
    .expect("authorizer event")
}

fn effect(r: &ApiGatewayCustomAuthorizerResponse) -> IamPolicyEffect {
    assert_eq!(r.policy_document.statement.len(), 1);
    let st = &r.policy_document.statement[0];
    assert_eq!(st.action, ["execute-api:Invoke"]);
    assert_eq!(st.resource, [CONNECT_ARN], "always the route asked about");
    st.effect.clone()
}

#[tokio::test]
async fn a_valid_token_is_allowed_as_its_sub() {
    let rsa = TestKey::rsa("test-rsa-1", "test-only-rsa-2048.pkcs1.der");
    let ec = TestKey::ec("test-ec-1");
    let issuer = Issuer::start(&[&rsa, &ec]).await;
    let v = issuer.verifier(Duration::from_secs(30));

    let resp = authorize(&v, &connect_event(Some(&rsa.sign(&issuer.claims("alice"))))).await;
    assert_eq!(effect(&resp), IamPolicyEffect::Allow);
    assert_eq!(resp.principal_id.as_deref(), Some("alice"));
    // The wire shape API Gateway reads.
    let wire = serde_json::to_value(&resp).unwrap();
    assert_eq!(wire["principalId"], "alice");
    assert_eq!(wire["policyDocument"]["Version"], "2012-10-17");
    assert_eq!(wire["policyDocument"]["Statement"][0]["Effect"], "Allow");
    assert_eq!(
        wire["policyDocument"]["Statement"][0]["Resource"],
        json!([CONNECT_ARN])
    );

    // ES256 from the same key set; `aud` as a list; the set is fetched once and then cached.
    let mut c = issuer.claims("bob");
    c["aud"] = json!(["other", AUDIENCE]);
    let resp = authorize(&v, &connect_event(Some(&ec.sign(&c)))).await;
    assert_eq!(effect(&resp), IamPolicyEffect::Allow);
    assert_eq!(resp.principal_id.as_deref(), Some("bob"));
    assert_eq!(issuer.fetches(), 1, "the key set is cached");

    // Cognito access tokens carry client_id instead of aud.
    let mut c = issuer.claims("carol");
    c.as_object_mut().unwrap().remove("aud");
    c["client_id"] = json!(AUDIENCE);
    assert_eq!(v.verify(&rsa.sign(&c)).await, Ok("carol".to_string()));
}

#[tokio::test]
async fn bad_tokens_are_denied_for_the_right_reason() {
    let rsa = TestKey::rsa("test-rsa-1", "test-only-rsa-2048.pkcs1.der");
    let other = TestKey::rsa("test-rsa-2", "test-only-rsa-2048-other.pkcs1.der");
    let issuer = Issuer::start(&[&rsa]).await;
    let v = issuer.verifier(Duration::from_secs(30));

    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = issuer.claims("mallory");
        f(&mut c);
        c
    };
    let expired = rsa.sign(&with(&|c| c["exp"] = json!(now() - 3600)));
    let wrong_aud = rsa.sign(&with(&|c| c["aud"] = json!("someone-else")));
    let wrong_iss = rsa.sign(&with(&|c| c["iss"] = json!("https://evil.example.com")));
    let no_sub = rsa.sign(&with(&|c| {
        c.as_object_mut().unwrap().remove("sub");
    }));
    let not_yet = rsa.sign(&with(&|c| c["nbf"] = json!(now() + 3600)));
    // Names the issuer's kid but is signed by another key.
    let forged = other.sign_as("test-rsa-1", &issuer.claims("mallory"));
    // A valid token whose payload was swapped after signing.
    let good = rsa.sign(&issuer.claims("alice"));
    let evil_payload = {
        let parts: Vec<&str> = good.split('.').collect();
        let swapped = rsa.sign(&issuer.claims("mallory"));
        format!(
            "{}.{}.{}",
            parts[0],
            swapped.split('.').nth(1).unwrap(),
            parts[2]
        )
    };
    // HS256 "signed" with the public key: algorithm confusion is refused before any key lookup.
    let hs = jsonwebtoken::encode(
        &Header {
            kid: Some("test-rsa-1".into()),
            ..Header::new(Algorithm::HS256)
        },
        &issuer.claims("mallory"),
        &EncodingKey::from_secret(b"public material"),
    )
    .unwrap();

    let cases: Vec<(&str, String, Rejection)> = vec![
        ("expired", expired, Rejection::Expired),
        ("wrong audience", wrong_aud, Rejection::WrongAudience),
        (
            "wrong issuer",
            wrong_iss,
            Rejection::WrongIssuer("https://evil.example.com".into()),
        ),
        ("no sub", no_sub, Rejection::MissingSubject),
        ("not yet valid", not_yet, Rejection::NotYetValid),
        ("bad signature", forged, Rejection::BadSignature),
        ("swapped payload", evil_payload, Rejection::BadSignature),
        ("hs256", hs, Rejection::Algorithm("HS256".into())),
    ];
    for (what, token, why) in cases {
        assert_eq!(v.verify(&token).await, Err(why), "{what}");
        let resp = authorize(&v, &connect_event(Some(&token))).await;
        assert_eq!(effect(&resp), IamPolicyEffect::Deny, "{what}");
        assert_eq!(resp.principal_id.as_deref(), Some("anonymous"), "{what}");
        // Nothing about the reason reaches the caller.
        let wire = serde_json::to_string(&resp).unwrap();
        assert!(
            !wire.contains("mallory") && !wire.contains("expired"),
            "{what}: {wire}"
        );
    }

    for garbage in ["", "not-a-jwt", "a.b.c"] {
        let resp = authorize(&v, &connect_event(Some(garbage))).await;
        assert_eq!(effect(&resp), IamPolicyEffect::Deny, "{garbage:?}");
    }
    // Missing token: Deny (API Gateway normally refuses before calling, the identity source
    // being absent).
    let resp = authorize(&v, &connect_event(None)).await;
    assert_eq!(effect(&resp), IamPolicyEffect::Deny);

    // Only the claims-valid tokens with a known kid ever caused a fetch: one, then cached.
    assert_eq!(issuer.fetches(), 1);

    // A valid token asked about another route (misconfiguration) is still a Deny.
    let mut ev = connect_event(Some(&good));
    ev.method_arn = Some(CONNECT_ARN.replace("$connect", "subscribe"));
    let resp = authorize(&v, &ev).await;
    assert_eq!(
        resp.policy_document.statement[0].effect,
        IamPolicyEffect::Deny
    );
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_key_set_once_per_interval() {
    let rsa = TestKey::rsa("test-rsa-1", "test-only-rsa-2048.pkcs1.der");
    let rotated = TestKey::rsa("test-rsa-2", "test-only-rsa-2048-other.pkcs1.der");
    let issuer = Issuer::start(&[&rsa]).await;

    // No throttle: the issuer rotates in a new key; the first token naming it refetches.
    let v = issuer.verifier(Duration::ZERO);
    assert_eq!(
        v.verify(&rsa.sign(&issuer.claims("a"))).await,
        Ok("a".into())
    );
    assert_eq!(issuer.fetches(), 1);
    let new_token = rotated.sign(&issuer.claims("b"));
    issuer.publish(&[&rsa, &rotated]);
    assert_eq!(v.verify(&new_token).await, Ok("b".into()));
    assert_eq!(issuer.fetches(), 2, "one refetch for the new kid");
    assert_eq!(v.verify(&new_token).await, Ok("b".into()));
    assert_eq!(issuer.fetches(), 2, "then cached");
    // A kid the issuer does not have: refetched, still unknown, Deny.
    let ghost = rotated.sign_as("ghost", &issuer.claims("c"));
    assert!(matches!(
        v.verify(&ghost).await,
        Err(Rejection::UnknownKey(_))
    ));
    assert_eq!(issuer.fetches(), 3);

    // With the default-like throttle, made-up kids cannot make the authorizer hammer the issuer.
    let issuer = Issuer::start(&[&rsa]).await;
    let v = issuer.verifier(Duration::from_secs(30));
    assert_eq!(
        v.verify(&rsa.sign(&issuer.claims("a"))).await,
        Ok("a".into())
    );
    for i in 0..5 {
        let t = rotated.sign_as(&format!("ghost-{i}"), &issuer.claims("c"));
        assert!(matches!(v.verify(&t).await, Err(Rejection::UnknownKey(_))));
    }
    assert_eq!(
        issuer.fetches(),
        1,
        "unknown kids within the interval do not refetch"
    );
    assert_eq!(v.keys().fetch_count(), 1);
}

#[tokio::test]
async fn an_unreachable_issuer_is_a_deny_not_an_error() {
    // A port nothing listens on (bound, then dropped).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let cfg = AuthorizerConfig::from_lookup(|k| match k {
        "TESSERA_JWT_ISSUER" => Some(url.clone()),
        "TESSERA_JWT_AUDIENCE" => Some(AUDIENCE.into()),
        "TESSERA_JWKS_TIMEOUT_MS" => Some("500".into()),
        _ => None,
    })
    .unwrap();
    let v = Verifier::new(cfg.clone(), KeyCache::new(reqwest::Client::new(), cfg));
    let rsa = TestKey::rsa("test-rsa-1", "test-only-rsa-2048.pkcs1.der");
    let token = rsa.sign(&json!({"sub": "a", "iss": url, "aud": AUDIENCE, "exp": now() + 60}));
    assert!(matches!(
        v.verify(&token).await,
        Err(Rejection::KeysUnavailable(_))
    ));
    let resp = authorize(&v, &connect_event(Some(&token))).await;
    assert_eq!(effect(&resp), IamPolicyEffect::Deny);
}
