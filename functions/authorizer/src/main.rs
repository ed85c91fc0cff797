//! Lambda entry point of the WebSocket `$connect` authorizer.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use tessera_authorizer::{jwks::KeyCache, AuthorizerConfig, Verifier};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tessera_shared::telemetry::init();
    let config = AuthorizerConfig::from_env()?;
    // One client and one key cache per process: the JWKS survives across invocations.
    let http = reqwest::Client::builder()
        .user_agent(concat!("tessera-authorizer/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let verifier = Arc::new(Verifier::new(config.clone(), KeyCache::new(http, config)));
    lambda_runtime::run(service_fn(
        move |ev: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>| {
            let verifier = verifier.clone();
            async move {
                let span =
                    tracing::info_span!("authorize", lambda_request_id = %ev.context.request_id);
                let _g = span.enter();
                Ok::<_, Error>(tessera_authorizer::authorize(&verifier, &ev.payload).await)
            }
        },
    ))
    .await
}
