//! Lambda entry point for the remediate stage: config and clients once at init, then the
//! runtime loop. Nothing here calls AWS before an event arrives.

use chrono::{DateTime, Utc};
use firebreak_remediate::{Clients, Config, DryRunSwitch, Remediate};
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
    let clients = Clients::new(&sdk);
    let stage = Remediate::new(
        playbooks,
        Store::new(clients.dynamodb.clone(), config.table),
        Bus::new(aws_sdk_eventbridge::Client::new(&sdk), config.bus),
        clients.clone(),
        DryRunSwitch::new(clients.ssm.clone(), config.dry_run_parameter),
    );
    let stage = &stage;
    run(service_fn(
        move |event: LambdaEvent<Box<RawValue>>| async move {
            let now = Utc::now();
            // The runtime's deadline, in epoch milliseconds; without one, the template's 30 s.
            let deadline = i64::try_from(event.context.deadline)
                .ok()
                .and_then(DateTime::from_timestamp_millis)
                .unwrap_or(now + chrono::Duration::seconds(30));
            stage
                .handle(event.payload.get().as_bytes(), now, deadline)
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
