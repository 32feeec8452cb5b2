//! The global dry-run switch: the deployment's kill switch, in SSM Parameter Store.
//!
//! The parameter named by `FIREBREAK_DRY_RUN_PARAMETER` overrides every playbook. Only its
//! exact value `false` lets steps change anything; `true`, any other value, a missing
//! parameter or one the stage cannot read all mean dry run. Failing safe is the point: a
//! kill switch that fails open when Parameter Store is throttled is not one.
//!
//! The value is cached for [`CACHE_TTL`] (per warm container), so a burst of incidents reads
//! it once, and turning the switch on takes effect within that long everywhere.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use firebreak_shared::aws::AwsError;
use serde::Serialize;

/// How long a read of the switch is trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(30);

/// The switch as last read, and why it reads that way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct State {
    pub dry_run: bool,
    /// For the record: `parameter /firebreak/dry-run is "false"`, `… is missing` …
    pub why: String,
}

/// Reads the switch, through the cache.
#[derive(Debug)]
pub struct DryRunSwitch {
    ssm: aws_sdk_ssm::Client,
    parameter: String,
    ttl: Duration,
    cache: Mutex<Option<(Instant, State)>>,
}

impl DryRunSwitch {
    pub fn new(ssm: aws_sdk_ssm::Client, parameter: impl Into<String>) -> DryRunSwitch {
        DryRunSwitch {
            ssm,
            parameter: parameter.into(),
            ttl: CACHE_TTL,
            cache: Mutex::new(None),
        }
    }

    /// The same switch with another cache lifetime (tests use zero to see every change).
    pub fn with_ttl(mut self, ttl: Duration) -> DryRunSwitch {
        self.ttl = ttl;
        self
    }

    pub fn parameter(&self) -> &str {
        &self.parameter
    }

    /// The switch now: from the cache while it is fresh, else from Parameter Store.
    pub async fn state(&self) -> State {
        if let Ok(cache) = self.cache.lock()
            && let Some((at, state)) = cache.as_ref()
            && at.elapsed() < self.ttl
        {
            return state.clone();
        }
        let state = self.read().await;
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Some((Instant::now(), state.clone()));
        }
        state
    }

    async fn read(&self) -> State {
        let name = &self.parameter;
        let result = self
            .ssm
            .get_parameter()
            .name(name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ssm", "GetParameter", &e));
        let state = match result {
            Ok(out) => match out.parameter().and_then(|p| p.value()) {
                Some(value) => State {
                    dry_run: value != "false",
                    why: format!(
                        "parameter {name} is {:?}",
                        value.chars().take(40).collect::<String>()
                    ),
                },
                None => State {
                    dry_run: true,
                    why: format!("parameter {name} has no value"),
                },
            },
            Err(e) if e.code_is("ParameterNotFound") => State {
                dry_run: true,
                why: format!("parameter {name} is missing"),
            },
            Err(e) => State {
                dry_run: true,
                why: format!("parameter {name} is unreadable ({e})"),
            },
        };
        if state.dry_run {
            tracing::info!(why = %state.why, "global dry-run switch is on");
        }
        state
    }
}
