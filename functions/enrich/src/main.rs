//! Lambda entry point for the enrich stage: config and clients once at init, then the runtime
//! loop. Nothing here calls AWS before an event arrives.

use firebreak_enrich::{Config, Enrich};
use firebreak_shared::config::{playbooks_from_env, process_env};
use firebreak_shared::lifecycle::Bus;
use firebreak_shared::store::Store;
use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};
use serde_json::value::RawValue;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env(&process_env())?;
    let playbooks = playbooks_from_env()?;
    let sdk = firebreak_shared::aws::sdk_config().await;
    let enrich = Enrich::new(
        Store::new(aws_sdk_dynamodb::Client::new(&sdk), config.table),
        Bus::new(aws_sdk_eventbridge::Client::new(&sdk), config.bus),
        aws_sdk_cloudwatch::Client::new(&sdk),
        aws_sdk_ec2::Client::new(&sdk),
        aws_sdk_cloudtrail::Client::new(&sdk),
        playbooks,
    );
    let enrich = &enrich;
    run(service_fn(
        move |event: LambdaEvent<Box<RawValue>>| async move {
            let (bytes, now) = (event.payload.get().as_bytes(), chrono::Utc::now());
            enrich.handle(bytes, now).await.map_err(|e| {
                tracing::error!(error = %e, transient = e.transient(), "enrich failed");
                Error::from(e)
            })
        },
    ))
    .await
}
