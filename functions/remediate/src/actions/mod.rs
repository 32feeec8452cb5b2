//! The action catalog on the AWS SDK: one module per service.
//!
//! Every action is idempotent on its own terms, so a retry, a duplicate delivery or a takeover
//! after a crash repeats nothing:
//! - `ec2.snapshot` tags its snapshots with the step's id and looks for them before taking any;
//! - `ec2.isolate` records the instance's groups (a [`Checkpoint`]) before it changes them, and
//!   a resumed step uses the recorded ones, never the quarantine group it may already have set;
//! - `ssm.automation` starts its execution with a client token derived from the step, and
//!   records the execution id before it waits, so a retry polls the same execution;
//! - `ssm.run_command` records the command id the same way;
//! - tagging, stopping, protecting, detaching, deactivating a key and blocking public access
//!   converge on the same state however often they run.
//!
//! Above that, the stage claims each step in the incident record before running it, so two
//! concurrent deliveries never run the same step at once (see `stage.rs`).
//!
//! An action returns its evidence (merged into the step's record) or a [`StepError`]: `Failed`
//! for what a retry cannot fix (the step is recorded failed and the incident escalates),
//! `Retry` for throttling that outlasted the budget or a store failure (the invocation fails
//! and the platform retries it).

pub mod ec2;
pub mod iam;
pub mod s3;
pub mod ssm;

use chrono::{DateTime, Utc};
use firebreak_shared::aws::AwsError;
use firebreak_shared::incident::Incident;
use firebreak_shared::signal::Signal;
use firebreak_shared::store::{Change, Store};
use serde_json::{Map, Value};

use crate::budget::Budget;
use crate::guardrails::TagsError;
use crate::{Clients, Error, ids};

/// Evidence an action adds to its record.
pub type Evidence = Map<String, Value>;

/// How a step ended, when it did not succeed.
#[derive(Debug)]
pub enum StepError {
    /// The step failed and the same request would fail again.
    Failed(String),
    /// The invocation must fail so that the platform retries it (throttling past the budget,
    /// a step still running when the budget ran out, the store unavailable).
    Retry(Error),
}

impl From<AwsError> for StepError {
    fn from(e: AwsError) -> StepError {
        if e.transient {
            StepError::Retry(Error::Aws(e))
        } else {
            StepError::Failed(e.to_string())
        }
    }
}

impl From<ids::IdError> for StepError {
    fn from(e: ids::IdError) -> StepError {
        StepError::Failed(e.to_string())
    }
}

impl From<TagsError> for StepError {
    fn from(e: TagsError) -> StepError {
        match e {
            TagsError::Aws(e) => e.into(),
            other => StepError::Failed(other.to_string()),
        }
    }
}

impl From<Error> for StepError {
    fn from(e: Error) -> StepError {
        StepError::Retry(e)
    }
}

/// Writes one piece of evidence into the step's record before the action goes on, so that
/// what must survive a crash (the groups an instance had, the id of an execution started)
/// does.
pub struct Checkpoint<'a> {
    pub store: &'a Store,
    pub incident: &'a str,
    pub record: &'a str,
}

impl Checkpoint<'_> {
    pub async fn save(&self, key: &str, value: Value) -> Result<(), StepError> {
        self.store
            .update(self.incident, |i| {
                let Some(a) = i.actions.iter_mut().find(|a| a.id == self.record) else {
                    return Change::Keep(());
                };
                if !a.evidence.is_object() {
                    a.evidence = Value::Object(Map::new());
                }
                if a.evidence.get(key) == Some(&value) {
                    return Change::Keep(());
                }
                if let Some(obj) = a.evidence.as_object_mut() {
                    obj.insert(key.to_owned(), value.clone());
                }
                Change::Write(())
            })
            .await
            .map_err(|e| StepError::Retry(Error::Store(e)))?;
        Ok(())
    }
}

/// What an action works with.
pub struct Ctx<'a> {
    pub clients: &'a Clients,
    pub budget: &'a Budget,
    pub incident: &'a Incident,
    /// The incident as a signal, with what enrichment found: what templates render against.
    pub signal: &'a Signal,
    pub playbook: &'a str,
    pub record_id: &'a str,
    /// When the step was first started (a step's own timeout counts from here).
    pub started_at: DateTime<Utc>,
    /// The record's evidence so far: empty for a new step, more for a resumed one.
    pub evidence: &'a Value,
    pub checkpoint: Checkpoint<'a>,
}

impl Ctx<'_> {
    /// The tag value that ties what a step creates to the step: `<incident>/<record id>`.
    pub fn action_tag(&self) -> String {
        format!("{}/{}", self.incident.id, self.record_id)
    }
}
