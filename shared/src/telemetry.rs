//! Tracing setup: JSON lines inside Lambda (CloudWatch indexes the fields), compact text locally.

/// Installs the global subscriber once. `RUST_LOG` filters (default `info`).
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let in_lambda = std::env::var("AWS_LAMBDA_FUNCTION_NAME").is_ok();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = if in_lambda {
        builder.json().without_time().try_init()
    } else {
        builder.with_writer(std::io::stderr).try_init()
    };
}
