//! Sending to WebSocket connections through API Gateway's management API (`PostToConnection`),
//! at the endpoint from `TESSERA_WS_ENDPOINT` (the local runtime serves the same API).
//! It is the [`Pusher`] port's adapter. Not here: what is sent or to whom
//! (`tessera_shared::push`).

use aws_sdk_apigatewaymanagement::primitives::Blob;
use tessera_shared::ports::Pusher;
use tessera_shared::store::StoreError;

pub use tessera_shared::ports::Delivery;

/// The management API client, or nothing when no endpoint is configured.
#[derive(Clone, Debug)]
pub struct Notifier {
    client: Option<aws_sdk_apigatewaymanagement::Client>,
}

impl Notifier {
    /// A client for `endpoint` (the API's `https://{api}.execute-api.{region}.amazonaws.com/{stage}`).
    pub fn new(sdk: &aws_config::SdkConfig, endpoint: Option<&str>) -> Self {
        let client = endpoint.map(|url| {
            let conf = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
                .endpoint_url(url)
                .build();
            aws_sdk_apigatewaymanagement::Client::from_conf(conf)
        });
        Notifier { client }
    }

    /// Sends `message` (JSON text) to `connection`.
    pub async fn send(&self, connection: &str, message: &str) -> Result<Delivery, StoreError> {
        let Some(client) = &self.client else {
            tracing::warn!(
                connection,
                "TESSERA_WS_ENDPOINT is not set: WebSocket message dropped"
            );
            return Ok(Delivery::Sent);
        };
        let res = client
            .post_to_connection()
            .connection_id(connection)
            .data(Blob::new(message.as_bytes().to_vec()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(Delivery::Sent),
            Err(e) => {
                let gone = e
                    .as_service_error()
                    .is_some_and(|se| se.is_gone_exception())
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 410);
                if gone {
                    Ok(Delivery::Gone)
                } else {
                    Err(StoreError::Service {
                        op: "PostToConnection",
                        detail: aws_smithy_types::error::display::DisplayErrorContext(&e)
                            .to_string(),
                    })
                }
            }
        }
    }
}

#[tessera_shared::ports::async_trait]
impl Pusher for Notifier {
    async fn send(&self, connection: &str, message: &str) -> Result<Delivery, StoreError> {
        Notifier::send(self, connection, message).await
    }
}
