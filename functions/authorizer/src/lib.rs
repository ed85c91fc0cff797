//! The WebSocket API's `$connect` authorizer (a Lambda REQUEST authorizer). API Gateway's
//! WebSocket APIs have no JWT authorizer type, so this function does for `wss://…?token=<JWT>`
//! what the HTTP API's JWT authorizer does for `Authorization: Bearer`: verify the token against
//! the issuer's JWKS ([`jwks`]) and claims ([`verify`]), then answer with an IAM policy that
//! allows exactly the `$connect` route it was asked about, with `principalId` = the token's `sub`
//! (the status function reads it as the connection's owner). Anything else is a Deny, which
//! API Gateway turns into 403 without a socket; the reason goes to the log with the request id,
//! never to the caller.
//!
//! Not here: the local runtime, which verifies its own HS256 tokens before the upgrade
//! (`tessera_infra::ws`), and the status function's routes.

pub mod config;
pub mod jwks;
pub mod verify;

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};

pub use config::AuthorizerConfig;
pub use verify::{Rejection, Verifier};

/// `principalId` of a Deny (API Gateway requires one; nothing reads it).
pub const ANONYMOUS: &str = "anonymous";

/// The authorizer's answer for one `$connect`.
pub async fn authorize(
    verifier: &Verifier,
    req: &ApiGatewayCustomAuthorizerRequestTypeRequest,
) -> ApiGatewayCustomAuthorizerResponse {
    let request_id = req.request_context.request_id.as_deref().unwrap_or("-");
    let method_arn = req.method_arn.as_deref().unwrap_or_default();
    let outcome = match token_of(req) {
        None => Err(Rejection::MissingToken),
        // Attached to `$connect` only; an ARN for anything else is a misconfiguration.
        Some(_) if !method_arn.ends_with("/$connect") => Err(Rejection::Invalid(format!(
            "asked about {method_arn:?}, not a $connect route"
        ))),
        Some(token) => verifier.verify(token).await,
    };
    match outcome {
        Ok(sub) => {
            tracing::info!(request_id, sub, "allow $connect");
            policy(&sub, IamPolicyEffect::Allow, method_arn)
        }
        Err(why) => {
            match &why {
                Rejection::KeysUnavailable(_) => {
                    tracing::error!(request_id, reason = %why, "deny $connect")
                }
                _ => tracing::warn!(request_id, reason = %why, "deny $connect"),
            }
            policy(ANONYMOUS, IamPolicyEffect::Deny, method_arn)
        }
    }
}

/// The `token` query parameter, if present and not empty.
pub fn token_of(req: &ApiGatewayCustomAuthorizerRequestTypeRequest) -> Option<&str> {
    req.query_string_parameters
        .first("token")
        .or_else(|| req.multi_value_query_string_parameters.first("token"))
        .filter(|t| !t.is_empty())
}

/// An IAM policy of one `execute-api:Invoke` statement on `resource`. A Deny without a method
/// ARN (never sent by API Gateway) denies every route of every API, which is still a Deny.
fn policy(
    principal: &str,
    effect: IamPolicyEffect,
    resource: &str,
) -> ApiGatewayCustomAuthorizerResponse {
    let resource = if resource.is_empty() {
        "arn:aws:execute-api:*:*:*/*/$connect".to_string()
    } else {
        resource.to_string()
    };
    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".into()];
    statement.effect = effect;
    statement.resource = vec![resource];
    let mut document = ApiGatewayCustomAuthorizerPolicy::default();
    document.version = Some("2012-10-17".into());
    document.statement = vec![statement];
    let mut resp = ApiGatewayCustomAuthorizerResponse::default();
    resp.principal_id = Some(principal.to_string());
    resp.policy_document = document;
    resp.context = serde_json::json!({});
    resp
}
