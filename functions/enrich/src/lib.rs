//! The enrich stage: context for an incident, gathered once and kept in its record.
//!
//! It takes an `Incident Opened` lifecycle event, runs every enricher the incident's playbook
//! names against the incident's resources ([`enrichers`] holds one module per AWS service),
//! records each one's [`EnrichmentResult`] in the incident, and announces `Incident Enriched`.
//!
//! - [`plan`] is the pure half: which enricher looks at which of a decision's resources
//!   (`ec2.instance` at instance ids, `cloudwatch.*` at the alarm, `cloudtrail.recent_changes`
//!   and `incidents.related` at every resource). `firebreak triage` prints it; [`Enrich`] runs
//!   the same selection on the stored incident.
//! - An enricher that fails is recorded as `failed` with its error and never fails the stage:
//!   context is a help to the responder, not a precondition for the rest of the response. One
//!   with nothing to look at is recorded as `skipped`, with the reason in `error`, so the
//!   record shows it was considered.
//! - Only the store and the bus can fail an invocation, and the platform retries it. The
//!   enrichment is written only while the incident has none, so duplicate and concurrent
//!   deliveries record one; a delivery that finds it already recorded only makes sure
//!   `Incident Enriched` went out, which heals a crash between the write and the put.

pub mod enrichers;

use chrono::{DateTime, Utc};
use firebreak_shared::config::{ConfigError, Env};
use firebreak_shared::incident::{Enrichment, EnrichmentResult, Incident};
use firebreak_shared::lifecycle::{self, Bus, Event, Kind, LifecycleError};
use firebreak_shared::playbook::PlaybookSet;
use firebreak_shared::signal::{Resource, ResourceKind};
use firebreak_shared::store::{Change, Store, StoreError};
use firebreak_shared::triage::{Decision, Outcome};
use serde::Serialize;
use serde_json::{Value, json};

use crate::enrichers::Clients;

/// Every AWS action this stage calls, sorted: the IAM policy of its role is exactly this.
pub const IAM_ACTIONS: &[&str] = &[
    "cloudtrail:LookupEvents",
    "cloudwatch:DescribeAlarmHistory",
    "cloudwatch:DescribeAlarms",
    "cloudwatch:GetMetricData",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "ec2:DescribeInstances",
    "events:PutEvents",
];

/// The timeline actor of this stage.
pub const ACTOR: &str = "enrich";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Task {
    pub enricher: &'static str,
    pub targets: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

pub fn plan(decision: &Decision<'_>) -> Vec<Task> {
    let Some(playbook) = decision
        .playbook
        .filter(|_| decision.outcome == Outcome::Incident)
    else {
        return Vec::new();
    };
    playbook
        .enrich
        .iter()
        .map(|spec| {
            let targets = targets(spec.name, &decision.signal.resources);
            let skipped = targets
                .is_empty()
                .then(|| "the signal names nothing this enricher looks at".to_owned());
            Task {
                enricher: spec.name,
                targets,
                skipped,
            }
        })
        .collect()
}

/// The ids among `resources` that `enricher` looks at, in order.
pub(crate) fn targets(enricher: &str, resources: &[Resource]) -> Vec<String> {
    let want: &[ResourceKind] = match enricher {
        "ec2.instance" => &[ResourceKind::Ec2Instance],
        "cloudwatch.alarm" | "cloudwatch.alarm_history" => &[ResourceKind::Alarm],
        _ => &[],
    };
    resources
        .iter()
        .filter(|r| want.is_empty() || want.contains(&r.kind))
        .map(|r| r.id.clone())
        .collect()
}

/// What the stage needs from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub table: String,
    pub bus: String,
}

impl Config {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Config, ConfigError> {
        Ok(Config {
            table: env.table()?,
            bus: env.bus()?,
        })
    }
}

/// Why an invocation failed. Enrichers never produce one; only the record and the bus do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
}

impl Error {
    /// Whether a retry of the same event may succeed.
    pub fn transient(&self) -> bool {
        match self {
            Error::Store(e) => e.transient(),
            Error::Lifecycle(e) => e.transient(),
        }
    }
}

/// The enrich stage, with its clients built once at init.
pub struct Enrich {
    store: Store,
    bus: Bus,
    clients: Clients,
    playbooks: PlaybookSet,
}

impl Enrich {
    pub fn new(
        store: Store,
        bus: Bus,
        cloudwatch: aws_sdk_cloudwatch::Client,
        ec2: aws_sdk_ec2::Client,
        cloudtrail: aws_sdk_cloudtrail::Client,
        playbooks: PlaybookSet,
    ) -> Enrich {
        Enrich {
            store,
            bus,
            clients: Clients {
                cloudwatch,
                ec2,
                cloudtrail,
            },
            playbooks,
        }
    }

    /// Handles one lifecycle event as EventBridge delivers it. `Ok` with `refused` for an event
    /// this stage cannot act on: retrying it could never help, so it must not fail.
    pub async fn handle(&self, event: &[u8], now: DateTime<Utc>) -> Result<Value, Error> {
        let event = match lifecycle::parse(event) {
            Ok(e) if e.kind == Kind::IncidentOpened => e,
            Ok(e) => {
                return Ok(refuse(format!(
                    "enrich acts on {}, not {}",
                    Kind::IncidentOpened,
                    e.kind
                )));
            }
            Err(e) => return Ok(refuse(e.to_string())),
        };
        let id = event.detail.incident_id.as_str();
        let Some(incident) = self.store.get(id).await? else {
            return Ok(refuse(format!("no incident {id} in the store")));
        };
        if let Some(enrichment) = &incident.enrichment {
            let emitted = self.announce(&incident, enrichment, now).await?;
            tracing::info!(incident = id, emitted, "already enriched");
            return Ok(json!({"incident_id": id, "already_enriched": true, "emitted": emitted}));
        }

        let enrichment = Enrichment {
            at: now,
            results: self.gather(&incident, now).await,
        };
        let counts = Counts::of(&enrichment.results);
        let written = self
            .store
            .update(id, |i| {
                if i.enrichment.is_some() {
                    return Change::Keep(false);
                }
                i.enrichment = Some(enrichment.clone());
                i.note(now, ACTOR, "enriched", "ok", Some(counts.to_string()));
                Change::Write(true)
            })
            .await?;
        match written {
            None => Ok(refuse(format!(
                "incident {id} left the store while enriching"
            ))),
            // A concurrent delivery wrote first; announcing is its job, and if it dies before
            // doing so the platform retries it into the already-enriched branch above. Leaving
            // it alone keeps two concurrent deliveries to one Incident Enriched.
            Some((_, false)) => {
                tracing::info!(
                    incident = id,
                    "another delivery recorded the enrichment first"
                );
                Ok(json!({"incident_id": id, "duplicate": true}))
            }
            Some((incident, true)) => {
                let emitted = self.announce(&incident, &enrichment, now).await?;
                tracing::info!(incident = id, %counts, emitted, "enriched");
                Ok(json!({
                    "incident_id": id,
                    "enriched": counts,
                    "emitted": emitted,
                }))
            }
        }
    }

    /// Runs every enricher of the incident's playbook, side by side, and returns what each
    /// found. Never fails: a failing enricher is a `failed` result. An incident without a
    /// deployed playbook gets no results.
    pub async fn gather(&self, incident: &Incident, now: DateTime<Utc>) -> Vec<EnrichmentResult> {
        let Some(name) = incident.playbook.as_deref() else {
            return Vec::new();
        };
        let Some(playbook) = self.playbooks.get(name) else {
            tracing::warn!(
                incident = %incident.id,
                playbook = name,
                "the incident's playbook is not deployed here; nothing to enrich"
            );
            return Vec::new();
        };
        let clients = self.clients.in_region(incident.region.as_deref());
        let work = enrichers::work(&playbook.enrich, incident);
        futures_util::future::join_all(
            work.into_iter()
                .map(|w| enrichers::run(w, &clients, &self.store, incident, now)),
        )
        .await
    }

    async fn announce(
        &self,
        incident: &Incident,
        enrichment: &Enrichment,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let counts = Counts::of(&enrichment.results);
        let event = Event::about(
            Kind::IncidentEnriched,
            incident,
            None,
            now,
            Some(counts.to_string()),
        );
        Ok(self.bus.emit_once(&self.store, &event).await?)
    }
}

fn refuse(reason: String) -> Value {
    tracing::error!(%reason, "refused event");
    json!({ "refused": reason })
}

/// How the enrichers fared, for the timeline, the event and the logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub ok: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Counts {
    pub fn of(results: &[EnrichmentResult]) -> Counts {
        let mut c = Counts::default();
        for r in results {
            match r.outcome.as_str() {
                enrichers::OK => c.ok += 1,
                enrichers::FAILED => c.failed += 1,
                _ => c.skipped += 1,
            }
        }
        c
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ok, {} failed, {} skipped",
            self.ok, self.failed, self.skipped
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_shared::playbook::PlaybookSet;
    use firebreak_shared::signal::Signal;
    use firebreak_shared::triage::decide;

    fn one_signal(event: &[u8]) -> Signal {
        let received = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        firebreak_shared::signal::parse(event, received)
            .expect("fixture parses")
            .remove(0)
    }

    #[test]
    fn instance_context_is_gathered_for_the_instance_the_finding_names() {
        let playbooks = PlaybookSet::starter();
        let s = one_signal(include_bytes!(
            "../../../tests/fixtures/events/guardduty/waf-acl-partial-envelope-ec2-ssh-bruteforce.json"
        ));
        let tasks = plan(&decide(&s, &playbooks));
        let instance = tasks
            .iter()
            .find(|t| t.enricher == "ec2.instance")
            .expect("ec2-brute-force enriches the instance");
        assert_eq!(instance.targets, vec!["i-99999999".to_owned()]);
        assert_eq!(instance.skipped, None);
    }

    #[test]
    fn an_enricher_with_nothing_to_look_at_is_recorded_as_skipped() {
        let playbooks = PlaybookSet::from_sources([(
            std::path::PathBuf::from("t.yaml"),
            "name: t\npriority: 1\nmatch: {sources: [cloudwatch_alarm]}\nenrich: [ec2.instance, cloudwatch.alarm]\n".to_owned(),
        )])
        .expect("valid");
        let s = one_signal(include_bytes!(
            "../../../tests/fixtures/events/cloudwatch-alarm/docs-composite-alarm-with-suppressor-ok-to-alarm.json"
        ));
        let tasks = plan(&decide(&s, &playbooks));
        assert_eq!(tasks.len(), 2);
        assert!(tasks[0].skipped.is_some(), "{tasks:?}");
        assert_eq!(tasks[1].targets.len(), 1);
        assert_eq!(tasks[1].skipped, None);
    }

    #[test]
    fn config_names_the_missing_variable() {
        let env = Env(|k: &str| (k == "FIREBREAK_TABLE").then(|| "incidents".to_owned()));
        let err = Config::from_env(&env)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("FIREBREAK_BUS"), "{err}");
        let env = Env(|k: &str| match k {
            "FIREBREAK_TABLE" => Some("incidents".to_owned()),
            "FIREBREAK_BUS" => Some("firebreak".to_owned()),
            _ => None,
        });
        assert_eq!(
            Config::from_env(&env).ok(),
            Some(Config {
                table: "incidents".to_owned(),
                bus: "firebreak".to_owned()
            })
        );
    }

    #[test]
    fn iam_actions_are_sorted_and_unique() {
        let mut sorted = IAM_ACTIONS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, IAM_ACTIONS);
    }

    #[test]
    fn counts_read_as_the_timeline_detail() {
        let r = |outcome: &str| EnrichmentResult {
            enricher: "ec2.instance".to_owned(),
            target: None,
            outcome: outcome.to_owned(),
            data: Value::Null,
            error: None,
        };
        let c = Counts::of(&[r("ok"), r("ok"), r("failed"), r("skipped")]);
        assert_eq!(c.to_string(), "2 ok, 1 failed, 1 skipped");
    }
}
