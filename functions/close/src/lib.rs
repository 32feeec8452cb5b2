//! The close stage: when an incident ends, by which rule, and what is left of it.
//!
//! [`Close::handle`] takes three kinds of event:
//!
//! - a source's all-clear (a CloudWatch alarm back to OK, a resolved finding: any signal that
//!   triages to [`Outcome::Resolve`]). It finds the open incident by dedupe key and resolves it
//!   when the incident's playbook closes on `alarm_ok` or `verified_remediation` (whose
//!   definition includes "or the source gave its all-clear first"), or when no playbook
//!   matched. Under `manual`, the all-clear is only noted on the timeline, once.
//! - a lifecycle `Incident Resolution Requested` event, which names the incident. Under
//!   `verified_remediation` only the remediate stage (after its verification) or a person may
//!   ask; under `manual`, only a person. A person is a `cli:<user>` actor or any actor that is
//!   not one of Firebreak's stages.
//! - an EventBridge `Scheduled Event`: a sweep that auto-resolves open and acknowledged
//!   incidents whose playbook sets `close.auto_resolve_after` and whose last signal is older
//!   than that, and finishes the tail of resolved incidents whose tail was cut short.
//!
//! [`Close::resolve`] is the resolution itself, callable in-process (`firebreak incidents resolve`): it
//! resolves the record (MTTD, MTTA, MTTR, the retention TTL), writes the post-incident report
//! into it and, in one transaction, releases the dedupe key and the resource links. The
//! invocation that made the transition writes the EMF metrics line ([`emf`]); duplicates never
//! count twice. Then the tail, idempotent and run again by any later delivery: resolve the AWS
//! Incident Manager incident if there is one (a throttled or failing call fails the invocation
//! so the platform retries; a permanent refusal is recorded and the stage moves on), and emit
//! `Incident Resolved` once.
//!
//! When the incident was resolved ([`resolution_time`]): a source's all-clear resolves it when
//! the source says so, at the signal's `observed_at` (for a request `create` relays from an
//! all-clear, the request's `at`), never before the incident's first signal nor after the
//! stage's clock. A person, the remediate stage and the sweep resolve it when the stage
//! processes their request. MTTR ends at that time and the retention TTL runs from it. The
//! timeline's `resolved` entry is when the stage recorded it, which is where the settle window
//! ([`SETTLE_S`]) runs from.
//!
//! [`policy`] is the pure view of the close rule that `firebreak triage` prints.

pub mod emf;
pub mod report;

use aws_config::SdkConfig;
use aws_sdk_ssmincidents::types::IncidentRecordStatus;
use chrono::{DateTime, Utc};
use firebreak_shared::aws::AwsError;
use firebreak_shared::config::{ConfigError, Env};
use firebreak_shared::incident::{Incident, Metrics, Resolution, Status, TransitionError};
use firebreak_shared::lifecycle::{self, Bus, Event, Kind, LifecycleError};
use firebreak_shared::playbook::{CloseOn, Playbook, PlaybookSet};
use firebreak_shared::signal::Signal;
use firebreak_shared::store::{Change, MAX_ATTEMPTS, Store, StoreError};
use firebreak_shared::triage::{Decision, Outcome, decide};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use emf::MetricsSink;

/// Every AWS action this stage calls, sorted: what its IAM policy must allow. DynamoDB
/// authorises each item of a `TransactWriteItems` as its own `PutItem` or `DeleteItem`, so the
/// resolving transaction needs those two and no action of its own.
pub const IAM_ACTIONS: &[&str] = &[
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "events:PutEvents",
    "ssm-incidents:UpdateIncidentRecord",
];

/// The actor the close stage writes into the timeline and into resolutions it makes itself.
pub const ACTOR: &str = "close";

/// Firebreak's own stages. Any other actor on a resolution request is a person; that includes
/// `incident-manager`, since an incident is resolved there by a responder.
pub const STAGES: &[&str] = &["create", "enrich", "remediate", "notify", "close"];

/// How long after a transition a duplicate delivery leaves the tail to the invocation that
/// made it, rather than run it alongside (and put `Incident Resolved` twice). Shorter than
/// Lambda's first retry of a failed asynchronous invocation (one minute), so the retry of an
/// invocation that died mid-tail finds the window closed and finishes the job.
pub const SETTLE_S: i64 = 30;

/// How many incidents of each status a sweep reads. `Store::list` reads one page, newest
/// first; past this many open incidents the oldest wait for a later sweep.
pub const SWEEP_LIMIT: i32 = 200;

/// How many recently resolved incidents are checked for an unfinished tail.
pub const HEAL_LIMIT: i32 = 25;

/// The timeline event that marks the source's all-clear on an incident a person must close.
pub const ALL_CLEAR_NOTED: &str = "all_clear";

/// The timeline event [`Incident::resolve`] records.
pub const RESOLVED: &str = "resolved";

/// The actor of the `Incident Resolution Requested` events the create stage puts when a source
/// gives its all-clear: such a request carries the all-clear's time in its `at`.
pub const RELAY: &str = "create";

/// What the close stage reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub table: String,
    pub bus: String,
    /// Seconds a resolved incident is kept before its TTL lets DynamoDB delete it.
    pub retention_s: i64,
    /// Whether AWS Incident Manager is engaged (and so must be resolved too).
    pub incident_manager: bool,
}

impl Config {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Config, ConfigError> {
        Ok(Config {
            table: env.table()?,
            bus: env.bus()?,
            retention_s: env.retention_s()?,
            incident_manager: env.incident_manager()?.is_some(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error(transparent)]
    IncidentManager(AwsError),
    #[error("incident {0} does not exist")]
    NotFound(String),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("incident {0} is marked resolved but has no resolution")]
    NoResolution(String),
}

impl Error {
    /// Whether the same delivery may succeed later; the handler fails the invocation only
    /// then, so the platform retries.
    pub fn transient(&self) -> bool {
        match self {
            Error::Store(e) => e.transient(),
            Error::Lifecycle(e) => e.transient(),
            Error::IncidentManager(e) => e.transient,
            Error::NotFound(_) | Error::Transition(_) | Error::NoResolution(_) => false,
        }
    }
}

/// What happened to the Incident Manager incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum IncidentManagerOutcome {
    /// No Incident Manager incident was started for this incident.
    NotEngaged,
    /// One was started, but Incident Manager is disabled now: left alone.
    Disabled,
    /// An earlier delivery already recorded the outcome.
    AlreadyRecorded,
    /// Resolved now.
    Resolved,
    /// Incident Manager refused for good; recorded on the timeline and in the report.
    Failed { error: String },
    /// Left to the delivery that is finishing the tail (see [`SETTLE_S`]).
    Pending,
}

/// The result of [`Close::resolve`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resolved {
    pub incident_id: String,
    /// This call resolved the incident; `false` when it already was.
    pub transitioned: bool,
    pub resolution: Resolution,
    pub metrics: Metrics,
    pub incident_manager: IncidentManagerOutcome,
    /// `Incident Resolved` was put on the bus by this call.
    pub emitted: bool,
    /// Another delivery resolved it moments ago and is finishing the tail.
    pub settling: bool,
}

/// What one event, or one signal in it, came to.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Handled {
    Resolved(Resolved),
    /// The incident closes manually: the all-clear is on its timeline, and it stays open.
    Noted {
        incident_id: String,
        close_on: CloseOn,
    },
    /// Nothing to do, and nothing wrong.
    Skipped {
        reason: String,
    },
    /// Not allowed or not understood; logged at error, never retried.
    Refused {
        reason: String,
    },
}

/// The close stage, built once at init.
pub struct Close {
    store: Store,
    bus: Bus,
    incidents: Option<aws_sdk_ssmincidents::Client>,
    playbooks: PlaybookSet,
    retention_s: i64,
    metrics: MetricsSink,
}

impl Close {
    /// The stage on `sdk`'s clients; the Incident Manager client only when it is enabled.
    /// Makes no AWS call.
    pub fn new(config: &Config, sdk: &SdkConfig, playbooks: PlaybookSet) -> Close {
        Close::from_parts(
            Store::new(aws_sdk_dynamodb::Client::new(sdk), &config.table),
            Bus::new(aws_sdk_eventbridge::Client::new(sdk), &config.bus),
            config
                .incident_manager
                .then(|| aws_sdk_ssmincidents::Client::new(sdk)),
            playbooks,
            config.retention_s,
            MetricsSink::Stdout,
        )
    }

    /// The stage from its parts, for tests and the CLI.
    pub fn from_parts(
        store: Store,
        bus: Bus,
        incidents: Option<aws_sdk_ssmincidents::Client>,
        playbooks: PlaybookSet,
        retention_s: i64,
        metrics: MetricsSink,
    ) -> Close {
        Close {
            store,
            bus,
            incidents,
            playbooks,
            retention_s,
            metrics,
        }
    }

    /// The same stage writing its metrics to `sink`.
    pub fn with_metrics(mut self, sink: MetricsSink) -> Close {
        self.metrics = sink;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Handles one event as Lambda delivers it. `Err` only for failures a retry can fix;
    /// anything else is logged at error and answered with `{"refused": …}` so it never loops.
    pub async fn handle(&self, event: &[u8], now: DateTime<Utc>) -> Result<Value, Error> {
        let results = match classify(event) {
            Input::Lifecycle => match lifecycle::parse(event) {
                Ok(e) if e.kind == Kind::ResolutionRequested => {
                    vec![self.requested(&e, now).await]
                }
                Ok(e) => vec![Ok(Handled::Skipped {
                    reason: format!("{} is not for the close stage", e.kind),
                })],
                Err(err) => return Ok(refuse(&err.to_string())),
            },
            Input::Schedule => self.sweep(now).await,
            Input::Signal => match firebreak_shared::signal::parse(event, now) {
                Ok(signals) => {
                    let mut results = Vec::with_capacity(signals.len());
                    for s in &signals {
                        results.push(self.all_clear(&decide(s, &self.playbooks), now).await);
                    }
                    results
                }
                Err(err) => return Ok(refuse(&err.to_string())),
            },
        };

        let mut handled = Vec::with_capacity(results.len());
        let mut retry: Option<Error> = None;
        for r in results {
            match r {
                Ok(h) => {
                    if let Handled::Refused { reason } = &h {
                        tracing::error!(%reason, "refused");
                    }
                    handled.push(h);
                }
                Err(err) if err.transient() => {
                    tracing::warn!(error = %err, "transient failure; the platform will retry");
                    retry.get_or_insert(err);
                }
                Err(err) => {
                    tracing::error!(error = %err, "refused");
                    handled.push(Handled::Refused {
                        reason: err.to_string(),
                    });
                }
            }
        }
        // After every other item had its turn: a retry redoes only what is still missing.
        if let Some(err) = retry {
            return Err(err);
        }
        let out = json!({ "results": handled });
        tracing::info!(result = %out, "handled");
        Ok(out)
    }

    /// Resolves `incident_id` now, by `by` for `reason`, then finishes the tail. Resolving a
    /// resolved incident changes nothing but heals its tail.
    pub async fn resolve(
        &self,
        incident_id: &str,
        by: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Resolved, Error> {
        self.resolve_at(incident_id, by, reason, None, now).await
    }

    /// [`Close::resolve`], resolved as of `all_clear_at` when a source's all-clear caused it
    /// (see [`resolution_time`]).
    async fn resolve_at(
        &self,
        incident_id: &str,
        by: &str,
        reason: &str,
        all_clear_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Resolved, Error> {
        let (incident, transitioned) = self
            .transition(incident_id, by, reason, all_clear_at, now)
            .await?;
        if transitioned {
            match emf::line(&incident) {
                Some(line) => self.metrics.write(&line),
                None => tracing::warn!(incident = %incident.id, "resolved without a resolution"),
            }
            tracing::info!(incident = %incident.id, %by, %reason, metrics = ?incident.metrics, "resolved");
        }
        self.tail(incident, transitioned, now).await
    }

    /// Reads, resolves and writes the incident until the write lands or it is found resolved.
    async fn transition(
        &self,
        id: &str,
        by: &str,
        reason: &str,
        all_clear_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(Incident, bool), Error> {
        for _ in 0..MAX_ATTEMPTS {
            let Some(mut incident) = self.store.get(id).await? else {
                return Err(Error::NotFound(id.to_owned()));
            };
            if incident.status == Status::Resolved {
                return Ok((incident, false));
            }
            let prev = (incident.version, incident.status);
            let at = resolution_time(&incident, all_clear_at, now);
            incident.resolve(by, reason, at, self.retention_s)?;
            // The resolution says when the incident ended; the timeline, when the stage recorded
            // it (the reason names the source's time). The settle window runs from the latter.
            if let Some(entry) = incident
                .timeline
                .iter_mut()
                .rev()
                .find(|e| e.event == RESOLVED)
            {
                entry.at = now;
            }
            incident.version = prev.0 + 1;
            incident.report = Some(report::render(&incident));
            if self.store.close(&incident, prev).await? {
                return Ok((incident, true));
            }
        }
        Err(StoreError::Contended {
            id: id.to_owned(),
            attempts: MAX_ATTEMPTS,
        }
        .into())
    }

    /// Incident Manager, then `Incident Resolved`; every step skips what is already done.
    async fn tail(
        &self,
        incident: Incident,
        transitioned: bool,
        now: DateTime<Utc>,
    ) -> Result<Resolved, Error> {
        let resolution = incident
            .resolution
            .clone()
            .ok_or_else(|| Error::NoResolution(incident.id.clone()))?;
        let event = Event::about(
            Kind::IncidentResolved,
            &incident,
            None,
            resolution.at,
            Some(resolution.reason.clone()),
        )
        .with_actor(&resolution.by);
        let mut resolved = Resolved {
            incident_id: incident.id.clone(),
            transitioned,
            resolution,
            metrics: incident.metrics.clone(),
            incident_manager: IncidentManagerOutcome::Pending,
            emitted: false,
            settling: false,
        };
        if !transitioned && settling(&incident, &event.detail.event_id, now) {
            resolved.settling = true;
            return Ok(resolved);
        }
        resolved.incident_manager = self.close_in_incident_manager(&incident, now).await?;
        resolved.emitted = self.bus.emit_once(&self.store, &event).await?;
        Ok(resolved)
    }

    /// Resolves the Incident Manager incident, once, and records how it went.
    async fn close_in_incident_manager(
        &self,
        incident: &Incident,
        now: DateTime<Utc>,
    ) -> Result<IncidentManagerOutcome, Error> {
        let Some(arn) = incident.engagements.incident_manager_arn.as_deref() else {
            return Ok(IncidentManagerOutcome::NotEngaged);
        };
        let Some(client) = &self.incidents else {
            return Ok(IncidentManagerOutcome::Disabled);
        };
        if incident_manager_recorded(incident) {
            return Ok(IncidentManagerOutcome::AlreadyRecorded);
        }
        // The SDK's standard retry absorbs short throttling; what is left is the platform's.
        let sent = client
            .update_incident_record()
            .arn(arn)
            .status(IncidentRecordStatus::Resolved)
            .client_token(client_token(&incident.id))
            .send()
            .await;
        let (outcome, detail, result) = match sent {
            Ok(_) => (
                "ok",
                format!("resolved {arn}"),
                IncidentManagerOutcome::Resolved,
            ),
            Err(err) => {
                let err = AwsError::from_sdk("ssm-incidents", "UpdateIncidentRecord", &err);
                if err.transient {
                    return Err(Error::IncidentManager(err));
                }
                tracing::error!(incident = %incident.id, error = %err, "Incident Manager refused to resolve");
                let error = err.to_string();
                (
                    "failed",
                    error.clone(),
                    IncidentManagerOutcome::Failed { error },
                )
            }
        };
        self.store
            .update(&incident.id, |i| {
                if incident_manager_recorded(i) {
                    return Change::Keep(());
                }
                i.note(
                    now,
                    ACTOR,
                    report::INCIDENT_MANAGER_RESOLVED,
                    outcome,
                    Some(detail.clone()),
                );
                i.report = Some(report::render(i));
                Change::Write(())
            })
            .await?;
        Ok(result)
    }

    /// A source's all-clear.
    async fn all_clear(&self, d: &Decision<'_>, now: DateTime<Utc>) -> Result<Handled, Error> {
        if d.outcome != Outcome::Resolve {
            return Ok(Handled::Skipped {
                reason: format!("not an all-clear ({}): {}", d.outcome.as_str(), d.reason),
            });
        }
        let Some(id) = self.store.open_for_key(&d.dedupe_key).await? else {
            // The transition released the key: a redelivery (or the retry of an invocation
            // that died mid-tail) finds the incident among the recently resolved.
            let key = d.dedupe_key.as_str();
            let healed = self.heal(|i| i.dedupe_key == key, now).await?;
            return Ok(match healed.into_iter().next() {
                Some(r) => Handled::Resolved(r),
                None => Handled::Skipped {
                    reason: format!("no open incident for dedupe key {key}"),
                },
            });
        };
        let Some(incident) = self.store.get(&id).await? else {
            return Ok(Handled::Skipped {
                reason: format!(
                    "dedupe key {} names {id}, which does not exist",
                    d.dedupe_key
                ),
            });
        };
        let close_on = self.close_rule(&incident, d.playbook).on;
        let reason = all_clear_reason(d.signal);
        if closes_on_all_clear(close_on) {
            return self
                .resolve_at(&id, ACTOR, &reason, Some(d.signal.observed_at), now)
                .await
                .map(Handled::Resolved);
        }
        // Noted once: an alarm that flaps would otherwise fill the timeline.
        self.store
            .update(&id, |i| {
                if !i.status.is_open() || i.timeline.iter().any(|e| e.event == ALL_CLEAR_NOTED) {
                    return Change::Keep(());
                }
                i.note(
                    now,
                    ACTOR,
                    ALL_CLEAR_NOTED,
                    "noted",
                    Some(format!(
                        "{reason}; the playbook closes on {}: a person resolves it",
                        close_on.as_str()
                    )),
                );
                Change::Write(())
            })
            .await?;
        Ok(Handled::Noted {
            incident_id: id,
            close_on,
        })
    }

    /// An `Incident Resolution Requested` event.
    async fn requested(&self, event: &Event, now: DateTime<Utc>) -> Result<Handled, Error> {
        let d = &event.detail;
        let Some(incident) = self.store.get(&d.incident_id).await? else {
            return Ok(Handled::Refused {
                reason: format!("incident {} does not exist", d.incident_id),
            });
        };
        let actor = d.actor.as_deref();
        let close_on = self.close_rule(&incident, None).on;
        if incident.status.is_open() && !may_request(close_on, actor) {
            return Ok(Handled::Refused {
                reason: format!(
                    "incident {} closes on {}; {} may not resolve it",
                    incident.id,
                    close_on.as_str(),
                    actor.map_or_else(
                        || "a request without an actor".to_owned(),
                        |a| format!("actor {a:?}")
                    ),
                ),
            });
        }
        let reason = d.reason.as_deref().unwrap_or("resolution requested");
        // The create stage relays a source's all-clear; anyone else decided it now.
        let all_clear_at = (actor == Some(RELAY)).then_some(d.at);
        self.resolve_at(
            &incident.id,
            actor.unwrap_or("unknown"),
            reason,
            all_clear_at,
            now,
        )
        .await
        .map(Handled::Resolved)
    }

    /// The scheduled sweep: auto-resolve quiet incidents, heal cut-short tails.
    async fn sweep(&self, now: DateTime<Utc>) -> Vec<Result<Handled, Error>> {
        let mut results = Vec::new();
        for status in [Status::Open, Status::Acknowledged] {
            let incidents = match self.store.list(status, SWEEP_LIMIT).await {
                Ok(i) => i,
                Err(err) => {
                    results.push(Err(err.into()));
                    continue;
                }
            };
            for incident in incidents {
                let Some(after) = self.close_rule(&incident, None).auto_resolve_after else {
                    continue;
                };
                let quiet = now - incident.signals.last_seen;
                if quiet < after.to_chrono() {
                    continue;
                }
                let reason = format!(
                    "auto-resolved: no signal for {} (close.auto_resolve_after is {}s); last seen {}",
                    report::human(quiet.as_seconds_f64()),
                    after.as_secs(),
                    incident.signals.last_seen.to_rfc3339()
                );
                results.push(
                    self.resolve(&incident.id, ACTOR, &reason, now)
                        .await
                        .map(Handled::Resolved),
                );
            }
        }
        match self.heal(|_| true, now).await {
            Ok(healed) => results.extend(healed.into_iter().map(|r| Ok(Handled::Resolved(r)))),
            Err(err) => results.push(Err(err)),
        }
        if results.is_empty() {
            results.push(Ok(Handled::Skipped {
                reason: "nothing to auto-resolve".to_owned(),
            }));
        }
        results
    }

    /// Finishes the tail of recently resolved incidents that match `which` and have not had
    /// `Incident Resolved` emitted, once the settle window has passed.
    async fn heal(
        &self,
        which: impl Fn(&Incident) -> bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<Resolved>, Error> {
        let mut healed = Vec::new();
        for incident in self.store.list(Status::Resolved, HEAL_LIMIT).await? {
            let done = incident.has_emitted(&resolved_event_id(&incident.id));
            let settled =
                recorded_at(&incident).is_some_and(|t| (now - t).num_seconds() >= SETTLE_S);
            if which(&incident) && !done && settled {
                tracing::warn!(incident = %incident.id, "finishing a tail that was cut short");
                healed.push(self.tail(incident, false, now).await?);
            }
        }
        Ok(healed)
    }

    /// The close rule of the incident's own playbook, else of the playbook that matched the
    /// all-clear (a playbook renamed since the incident opened), else the default.
    fn close_rule(&self, incident: &Incident, matched: Option<&Playbook>) -> Rule {
        let playbook = incident
            .playbook
            .as_deref()
            .and_then(|name| self.playbooks.get(name))
            .or(matched);
        match playbook {
            Some(p) => Rule {
                on: p.close.on,
                auto_resolve_after: p.close.auto_resolve_after,
            },
            // An incident no playbook claimed has nothing to verify: its all-clear closes it.
            None if incident.playbook.is_none() => Rule {
                on: CloseOn::AlarmOk,
                auto_resolve_after: None,
            },
            // It names a playbook that no longer exists: keep it for a person.
            None => Rule {
                on: CloseOn::Manual,
                auto_resolve_after: None,
            },
        }
    }
}

/// What kind of event arrived, told by its envelope.
enum Input {
    Lifecycle,
    Schedule,
    Signal,
}

fn classify(event: &[u8]) -> Input {
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(borrow, default)]
        source: Option<&'a str>,
        #[serde(borrow, default, rename = "detail-type")]
        detail_type: Option<&'a str>,
    }
    match serde_json::from_slice::<Probe<'_>>(event) {
        Ok(p) if p.source == Some(lifecycle::SOURCE) => Input::Lifecycle,
        Ok(p) if p.source == Some("aws.events") && p.detail_type == Some("Scheduled Event") => {
            Input::Schedule
        }
        // Everything else, garbage included, gets the signal parser's precise refusal.
        _ => Input::Signal,
    }
}

fn refuse(reason: &str) -> Value {
    tracing::error!(%reason, "event refused");
    json!({ "refused": reason })
}

/// Whether a source's all-clear resolves an incident under this rule.
pub fn closes_on_all_clear(on: CloseOn) -> bool {
    on != CloseOn::Manual
}

/// Whether `actor` may ask for the resolution of an incident that closes `on`.
pub fn may_request(on: CloseOn, actor: Option<&str>) -> bool {
    match on {
        CloseOn::AlarmOk => true,
        CloseOn::VerifiedRemediation => actor == Some("remediate") || is_person(actor),
        CloseOn::Manual => is_person(actor),
    }
}

/// A person: `cli:<user>`, or any named actor that is not a Firebreak stage.
pub fn is_person(actor: Option<&str>) -> bool {
    actor.is_some_and(|a| {
        let a = a.trim();
        a.starts_with("cli:") || (!a.is_empty() && !STAGES.contains(&a))
    })
}

/// The Incident Manager idempotency token for resolving this incident: the same on every
/// retry, so a repeated call is one update.
pub fn client_token(incident_id: &str) -> String {
    let token = format!("firebreak-resolve-{incident_id}");
    // UpdateIncidentRecord accepts up to 128 characters.
    token.chars().take(128).collect()
}

/// The event id `Incident Resolved` has for this incident.
pub fn resolved_event_id(incident_id: &str) -> String {
    format!("{incident_id}/{}", Kind::IncidentResolved.slug())
}

fn incident_manager_recorded(incident: &Incident) -> bool {
    incident
        .timeline
        .iter()
        .any(|e| e.event == report::INCIDENT_MANAGER_RESOLVED)
}

/// Whether a non-transitioning delivery should leave the tail to the one that transitioned.
fn settling(incident: &Incident, event_id: &str, now: DateTime<Utc>) -> bool {
    !incident.has_emitted(event_id)
        && recorded_at(incident).is_some_and(|t| (now - t).num_seconds() < SETTLE_S)
}

/// When the stage recorded the resolution: the timeline's last `resolved` entry, else (a
/// record without one) the resolution time.
fn recorded_at(incident: &Incident) -> Option<DateTime<Utc>> {
    incident
        .timeline
        .iter()
        .rev()
        .find(|e| e.event == RESOLVED)
        .map(|e| e.at)
        .or_else(|| incident.resolution.as_ref().map(|r| r.at))
}

/// When an incident resolved at `now` was resolved. Caused by a source's all-clear observed at
/// `all_clear_at`: then, as the source says, but never before the incident's first signal nor
/// after `now` (a clock ahead of ours). Otherwise (a person, the remediate stage, the sweep):
/// `now`. MTTR is measured to this time and the retention TTL runs from it.
pub fn resolution_time(
    incident: &Incident,
    all_clear_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    // Not `clamp`: a first signal stamped after `now` must not panic, and `now` wins.
    all_clear_at.map_or(now, |at| at.max(incident.signals.first_seen).min(now))
}

fn all_clear_reason(signal: &Signal) -> String {
    match &signal.alarm_name {
        Some(name) => format!(
            "alarm {name} back to OK at {}",
            signal.observed_at.to_rfc3339()
        ),
        None => format!(
            "{} all-clear at {}: {}",
            signal.source,
            signal.observed_at.to_rfc3339(),
            signal.title
        ),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClosePlan {
    pub on: CloseOn,
    /// The decision itself resolves its incident now.
    pub resolves_now: bool,
    /// Seconds of quiet after which the incident resolves on its own, if the playbook says so.
    pub auto_resolve_after_s: Option<u64>,
}

/// An incident's close rule, as the stage applies it.
struct Rule {
    on: CloseOn,
    auto_resolve_after: Option<firebreak_shared::playbook::Duration>,
}

/// The close rule for unmatched signals: a notify-only incident has nothing to verify, so a
/// resolving signal closes it and otherwise a person does.
pub const DEFAULT_CLOSE: CloseOn = CloseOn::Manual;

/// The close rule as `firebreak triage` shows it. `resolves_now` is what the stage does with
/// this decision: an all-clear resolves the open incident unless a person must close it.
pub fn policy(decision: &Decision<'_>) -> ClosePlan {
    let (on, auto) = decision.playbook.map_or((DEFAULT_CLOSE, None), |p| {
        (p.close.on, p.close.auto_resolve_after.map(|d| d.as_secs()))
    });
    let resolves_now = decision.outcome == Outcome::Resolve
        && (decision.playbook.is_none() || closes_on_all_clear(on));
    ClosePlan {
        on,
        resolves_now,
        auto_resolve_after_s: auto,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_shared::signal::{Action, AlarmState};

    const COMPOSITE: &[u8] = include_bytes!(
        "../../../tests/fixtures/events/cloudwatch-alarm/docs-composite-alarm-with-suppressor-ok-to-alarm.json"
    );

    fn alarm() -> Signal {
        let received = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        firebreak_shared::signal::parse(COMPOSITE, received)
            .expect("fixture parses")
            .remove(0)
    }

    fn manual_playbooks() -> PlaybookSet {
        PlaybookSet::from_sources([(
            std::path::PathBuf::from("t.yaml"),
            "name: t\npriority: 1\nmatch: {sources: [cloudwatch_alarm]}\nclose: {on: manual}\n"
                .to_owned(),
        )])
        .expect("valid")
    }

    #[test]
    fn an_alarm_back_to_ok_resolves_its_incident_now() {
        let playbooks = PlaybookSet::starter();
        let mut ok = alarm();
        ok.action = Action::Resolve;
        ok.alarm_state = Some(AlarmState::Ok);
        let plan = policy(&decide(&ok, &playbooks));
        assert_eq!(plan.on, CloseOn::AlarmOk);
        assert!(plan.resolves_now);
    }

    #[test]
    fn an_alarm_firing_does_not_resolve_anything() {
        let playbooks = PlaybookSet::starter();
        let firing = alarm();
        let plan = policy(&decide(&firing, &playbooks));
        assert_eq!(plan.on, CloseOn::AlarmOk);
        assert!(!plan.resolves_now);
    }

    #[test]
    fn an_unmatched_incident_waits_for_a_person() {
        let playbooks = PlaybookSet::from_sources([(
            std::path::PathBuf::from("t.yaml"),
            "name: t\npriority: 1\nmatch: {sources: [security_hub]}\n".to_owned(),
        )])
        .expect("valid");
        let plan = policy(&decide(&alarm(), &playbooks));
        assert_eq!(plan.on, DEFAULT_CLOSE);
        assert_eq!(plan.auto_resolve_after_s, None);
    }

    #[test]
    fn an_all_clear_under_a_manual_playbook_does_not_resolve_now() {
        let playbooks = manual_playbooks();
        let mut ok = alarm();
        ok.action = Action::Resolve;
        let plan = policy(&decide(&ok, &playbooks));
        assert_eq!(plan.on, CloseOn::Manual);
        assert!(!plan.resolves_now);
    }

    #[test]
    fn verified_remediation_takes_requests_from_remediate_and_people_only() {
        let on = CloseOn::VerifiedRemediation;
        assert!(may_request(on, Some("remediate")));
        assert!(may_request(on, Some("cli:alice")));
        assert!(may_request(on, Some("alice@example.com")));
        assert!(!may_request(on, Some("create")));
        assert!(!may_request(on, Some("enrich")));
        assert!(!may_request(on, None));
    }

    #[test]
    fn a_manual_incident_is_resolved_by_people_only() {
        assert!(may_request(CloseOn::Manual, Some("cli:bob")));
        assert!(may_request(CloseOn::Manual, Some("incident-manager")));
        assert!(!may_request(CloseOn::Manual, Some("remediate")));
        assert!(!may_request(CloseOn::Manual, Some("  ")));
        assert!(may_request(CloseOn::AlarmOk, Some("remediate")));
    }

    #[test]
    fn an_all_clear_resolves_when_the_source_says_within_the_incidents_life() {
        let playbooks = PlaybookSet::starter();
        let signal = alarm();
        let began = signal.observed_at;
        let incident = Incident::open(&decide(&signal, &playbooks), "INC-1".to_owned(), began);
        let s = chrono::Duration::seconds;
        let now = began + s(3_600);

        assert_eq!(
            resolution_time(&incident, Some(began + s(600)), now),
            began + s(600)
        );
        assert_eq!(
            resolution_time(&incident, Some(began - s(60)), now),
            began,
            "never before it began"
        );
        assert_eq!(
            resolution_time(&incident, Some(now + s(60)), now),
            now,
            "never in the future"
        );
        assert_eq!(
            resolution_time(&incident, None, now),
            now,
            "anyone else: now"
        );
        // A first signal stamped ahead of the stage's clock: now, not a panic.
        assert_eq!(
            resolution_time(&incident, Some(now), began - s(1)),
            began - s(1)
        );
    }

    #[test]
    fn the_client_token_is_stable_and_within_the_limit() {
        assert_eq!(client_token("INC-1"), client_token("INC-1"));
        assert_ne!(client_token("INC-1"), client_token("INC-2"));
        assert!(client_token(&"x".repeat(500)).chars().count() <= 128);
    }

    #[test]
    fn iam_actions_are_sorted_and_unique() {
        let mut sorted = IAM_ACTIONS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, IAM_ACTIONS);
    }

    #[test]
    fn events_are_told_apart_by_their_envelope() {
        assert!(matches!(
            classify(br#"{"source":"firebreak","detail-type":"Incident Resolution Requested"}"#),
            Input::Lifecycle
        ));
        assert!(matches!(
            classify(br#"{"source":"aws.events","detail-type":"Scheduled Event","detail":{}}"#),
            Input::Schedule
        ));
        assert!(matches!(classify(COMPOSITE), Input::Signal));
        assert!(matches!(classify(b"not json"), Input::Signal));
    }

    #[test]
    fn config_reads_the_template_variables() {
        let vars = std::collections::HashMap::from([
            ("FIREBREAK_TABLE", "firebreak-incidents"),
            ("FIREBREAK_BUS", "firebreak"),
            ("FIREBREAK_RETENTION_DAYS", "30"),
        ]);
        let env = Env(move |k: &str| vars.get(k).map(|v| (*v).to_owned()));
        let config = Config::from_env(&env).expect("valid");
        assert_eq!(
            config,
            Config {
                table: "firebreak-incidents".to_owned(),
                bus: "firebreak".to_owned(),
                retention_s: 30 * 86_400,
                incident_manager: false,
            }
        );
    }
}
