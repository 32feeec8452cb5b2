//! Lambda entry point for the create stage: config, then the runtime loop.

use firebreak_create::Create;
use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};
use serde_json::value::RawValue;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let stage = Create::from_env()?;
    let stage = &stage;
    run(service_fn(
        move |event: LambdaEvent<Box<RawValue>>| async move {
            Ok::<_, Error>(stage.handle(event.payload.get().as_bytes(), chrono::Utc::now()))
        },
    ))
    .await
}
