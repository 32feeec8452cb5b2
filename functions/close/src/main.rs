//! Lambda entry point for the close stage: configuration, clients and playbooks once at init,
//! then the runtime loop. Nothing here calls AWS: clients resolve credentials on first use.

use firebreak_close::{Close, Config};
use firebreak_shared::config::{playbooks_from_env, process_env};
use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};
use serde_json::value::RawValue;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    // A bad variable or playbook fails the cold start, naming what to fix.
    let config = Config::from_env(&process_env())?;
    let playbooks = playbooks_from_env()?;
    let sdk = firebreak_shared::aws::sdk_config().await;
    let close = Close::new(&config, &sdk, playbooks);
    let close = &close;
    run(service_fn(
        move |event: LambdaEvent<Box<RawValue>>| async move {
            let (bytes, now) = (event.payload.get().as_bytes(), chrono::Utc::now());
            close.handle(bytes, now).await.map_err(Error::from)
        },
    ))
    .await
}
