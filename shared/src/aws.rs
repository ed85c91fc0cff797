//! Building the AWS SDK clients once, from [`Config`]. With an endpoint override (the local
//! emulator) every client talks to it and S3 uses path-style addressing.

use crate::config::Config;

/// The SDK clients a function uses. Cheap to clone (they share connection pools).
#[derive(Clone, Debug)]
pub struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// The loaded SDK configuration (region, credentials, endpoint override), for clients only
    /// some functions need (e.g. the WebSocket management API).
    pub sdk: aws_config::SdkConfig,
    /// The SDK configuration for the language model: the usual credential chain and no endpoint
    /// override, even when the other clients talk to the local emulator with test credentials,
    /// so a local stack can use real Bedrock (`TESSERA_BEDROCK_ENDPOINT` unset) while everything
    /// else stays local. The same as `sdk` in AWS.
    pub model_sdk: aws_config::SdkConfig,
}

impl Clients {
    /// Loads the SDK configuration (credentials from the usual chain) and builds the clients.
    pub async fn from_config(cfg: &Config) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(cfg.region.clone()));
        if let Some(endpoint) = &cfg.endpoint {
            loader = loader.endpoint_url(endpoint);
            // The emulator accepts any credentials; give it test ones when the chain has none,
            // so a fresh machine without ~/.aws works.
            if std::env::var("AWS_ACCESS_KEY_ID").is_err() {
                loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                    "testing",
                    "testing",
                    None,
                    None,
                    "tessera-local",
                ));
            }
        }
        let shared = loader.load().await;
        let model_sdk = if cfg.endpoint.is_some() {
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new(cfg.region.clone()))
                .load()
                .await
        } else {
            shared.clone()
        };
        let s3_conf = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(cfg.endpoint.is_some())
            // Only checksum when S3 requires it: default request checksums would add
            // x-amz-checksum-* to presigned URLs, which a browser or curl cannot match.
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            .response_checksum_validation(
                aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
            )
            .build();
        Clients {
            s3: aws_sdk_s3::Client::from_conf(s3_conf),
            dynamodb: aws_sdk_dynamodb::Client::new(&shared),
            sqs: aws_sdk_sqs::Client::new(&shared),
            sdk: shared,
            model_sdk,
        }
    }
}
