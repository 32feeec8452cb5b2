//! Lambda entry point for the close stage: config, then the runtime loop.

use firebreak_shared::triage::Triage;
use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};
use serde_json::value::RawValue;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let triage = Triage::from_env()?;
    let triage = &triage;
    run(service_fn(
        move |event: LambdaEvent<Box<RawValue>>| async move {
            let (bytes, now) = (event.payload.get().as_bytes(), chrono::Utc::now());
            Ok::<_, Error>(triage.handle(bytes, now, firebreak_close::policy))
        },
    ))
    .await
}
