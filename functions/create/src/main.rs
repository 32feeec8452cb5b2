//! Lambda entry point for the create stage: config, clients, then the runtime loop.

use firebreak_create::{Config, Create, IncidentManager};
use firebreak_shared::config::{playbooks_from_env, process_env};
use firebreak_shared::lifecycle::Bus;
use firebreak_shared::store::Store;
use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn, tracing};
use serde_json::value::RawValue;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env(&process_env())?;
    let playbooks = playbooks_from_env()?;
    let sdk = firebreak_shared::aws::sdk_config().await;
    let incident_manager = config.response_plan_prefix.map(|prefix| IncidentManager {
        client: aws_sdk_ssmincidents::Client::new(&sdk),
        response_plan_prefix: prefix,
    });
    let stage = Create::new(
        playbooks,
        Store::new(aws_sdk_dynamodb::Client::new(&sdk), config.table),
        Bus::new(aws_sdk_eventbridge::Client::new(&sdk), config.bus),
        incident_manager,
    );
    let stage = &stage;
    run(service_fn(
        move |event: LambdaEvent<Box<RawValue>>| async move {
            let now = chrono::Utc::now();
            stage
                .handle(event.payload.get().as_bytes(), now)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, transient = e.transient(), "invocation failed");
                    // Failing the invocation is what makes the platform retry it, and then
                    // route it to the on-failure destination with this record.
                    Diagnostic {
                        error_type: if e.transient() { "Transient" } else { "Failed" }.to_owned(),
                        error_message: e.to_string(),
                    }
                })
        },
    ))
    .await
}
