//! The create stage: a raw signal in; an incident opened, counted or asked to close out.
//!
//! Each signal in the event is triaged ([`firebreak_shared::triage`]) and then:
//! - opens an incident when its dedupe key has none open (or the open one's dedupe window has
//!   passed), records the time to detect, starts an Incident Manager incident when the playbook
//!   names a response plan and Incident Manager is enabled, and emits Incident Opened;
//! - counts into the open incident when it repeats inside the window (count, last seen,
//!   timeline), opening nothing new;
//! - asks the close stage to resolve the open incident when the signal says it is over
//!   (Incident Resolution Requested);
//! - is ignored, with the reason in the result, when triage says so.
//!
//! Every delivery is fingerprinted and the fingerprint is written in the same transaction as
//! the change it causes, so a duplicate (or concurrent) delivery changes nothing. The tail of
//! an opening (Incident Manager, Incident Opened) runs again on a duplicate and is itself
//! idempotent, which is what heals a crash between the write and the event.

use aws_sdk_ssmincidents::types::{
    ItemIdentifier, ItemType, ItemValue, RelatedItem, TriggerDetails,
};
use chrono::{DateTime, Utc};
use firebreak_shared::aws::{AwsError, partition};
use firebreak_shared::config::{ConfigError, Env};
use firebreak_shared::incident::{Incident, fingerprint, incident_id};
use firebreak_shared::lifecycle::{Bus, Event, Kind, LifecycleError};
use firebreak_shared::playbook::{Dedupe, PlaybookSet};
use firebreak_shared::signal::{ResourceKind, Severity};
use firebreak_shared::store::{MAX_ATTEMPTS, Opened, Repeated, Store, StoreError, marker_expiry};
use firebreak_shared::triage::{Decision, Outcome, decide};
use serde_json::{Value, json};

/// Exactly the AWS actions this stage's code calls; the template grants these and no more.
pub const IAM_ACTIONS: &[&str] = &[
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "events:PutEvents",
    "ssm-incidents:StartIncident",
];

/// What the stage reads from its environment at init.
#[derive(Debug, Clone)]
pub struct Config {
    pub table: String,
    pub bus: String,
    /// The response plan ARN prefix, when Incident Manager is enabled.
    pub response_plan_prefix: Option<String>,
}

impl Config {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Config, ConfigError> {
        Ok(Config {
            table: env.table()?,
            bus: env.bus()?,
            response_plan_prefix: env.incident_manager()?,
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
}

impl Error {
    /// Whether the platform should retry the invocation.
    pub fn transient(&self) -> bool {
        match self {
            Error::Store(e) => e.transient(),
            Error::Lifecycle(e) => e.transient(),
            Error::IncidentManager(e) => e.transient,
        }
    }
}

/// Incident Manager, when enabled: its client and the ARN prefix of the stack's response plans.
#[derive(Clone, Debug)]
pub struct IncidentManager {
    pub client: aws_sdk_ssmincidents::Client,
    pub response_plan_prefix: String,
}

/// The create stage, built once at init.
pub struct Create {
    playbooks: PlaybookSet,
    store: Store,
    bus: Bus,
    incident_manager: Option<IncidentManager>,
}

impl Create {
    pub fn new(
        playbooks: PlaybookSet,
        store: Store,
        bus: Bus,
        incident_manager: Option<IncidentManager>,
    ) -> Create {
        Create {
            playbooks,
            store,
            bus,
            incident_manager,
        }
    }

    pub fn playbooks(&self) -> &PlaybookSet {
        &self.playbooks
    }

    /// Handles one raw event: one result per signal. A refused event is answered with its
    /// reason (a retry would fail the same way); an AWS failure is an error.
    pub async fn handle(&self, event: &[u8], now: DateTime<Utc>) -> Result<Value, Error> {
        let signals = match firebreak_shared::signal::parse(event, now) {
            Ok(signals) => signals,
            Err(e) => {
                tracing::error!(error = %e, "event refused");
                return Ok(json!({ "refused": e.to_string() }));
            }
        };
        let mut results = Vec::with_capacity(signals.len());
        for signal in &signals {
            let decision = decide(signal, &self.playbooks);
            let result = self.one(&decision, now).await?;
            tracing::info!(
                source = %signal.source,
                severity = %decision.severity,
                dedupe_key = %decision.dedupe_key,
                playbook = decision.playbook.map(|p| p.name.as_str()),
                outcome = %result["outcome"].as_str().unwrap_or("?"),
                incident = result["incident"].as_str(),
                "signal handled"
            );
            results.push(result);
        }
        Ok(json!({ "results": results }))
    }

    async fn one(&self, decision: &Decision<'_>, now: DateTime<Utc>) -> Result<Value, Error> {
        match decision.outcome {
            Outcome::Ignore => Ok(json!({"outcome": "ignored", "reason": decision.reason})),
            Outcome::Resolve => self.request_resolution(decision, now).await,
            Outcome::Incident | Outcome::NotifyOnly => self.open_or_repeat(decision, now).await,
        }
    }

    async fn request_resolution(
        &self,
        decision: &Decision<'_>,
        now: DateTime<Utc>,
    ) -> Result<Value, Error> {
        let Some(id) = self.store.open_for_key(&decision.dedupe_key).await? else {
            return Ok(json!({
                "outcome": "nothing_to_resolve",
                "reason": "no open incident has this dedupe key",
            }));
        };
        let Some(incident) = self.store.get(&id).await? else {
            return Ok(json!({"outcome": "nothing_to_resolve", "reason": "incident is gone"}));
        };
        let qualifier = fingerprint(decision.signal);
        // The source's own time: MTTR ends when the alarm went back to OK, not when we heard.
        let at = decision.signal.observed_at.min(now);
        let event = Event::about(
            Kind::ResolutionRequested,
            &incident,
            Some(&qualifier),
            at,
            Some(decision.reason.clone()),
        )
        .with_actor("create");
        self.bus.emit_once(&self.store, &event).await?;
        Ok(json!({"outcome": "resolution_requested", "incident": id}))
    }

    async fn open_or_repeat(
        &self,
        decision: &Decision<'_>,
        now: DateTime<Utc>,
    ) -> Result<Value, Error> {
        let signal = decision.signal;
        let fp = fingerprint(signal);
        let window = decision
            .playbook
            .map_or_else(|| Dedupe::default().window, |p| p.dedupe.window);
        let expiry = marker_expiry(signal.observed_at, window.as_secs());
        for _ in 0..MAX_ATTEMPTS {
            let holder = self.store.open_for_key(&decision.dedupe_key).await?;
            let current = match &holder {
                Some(id) => self.store.get(id).await?,
                None => None,
            };
            match current {
                Some(mut incident)
                    if incident.status.is_open()
                        && signal.observed_at - incident.signals.last_seen
                            <= window.to_chrono() =>
                {
                    let prev = (incident.version, incident.status);
                    incident.repeat(signal, now);
                    incident.version += 1;
                    match self.store.repeat(&incident, prev, &fp, expiry).await? {
                        Repeated::Counted => {
                            return Ok(json!({
                                "outcome": "repeated",
                                "incident": incident.id,
                                "count": incident.signals.count,
                            }));
                        }
                        Repeated::Duplicate => return self.duplicate(&fp, now).await,
                        Repeated::Stale => continue,
                    }
                }
                _ => {
                    let incident =
                        Incident::open(decision, incident_id(signal, &decision.dedupe_key), now);
                    match self
                        .store
                        .open(&incident, &fp, expiry, holder.as_deref())
                        .await?
                    {
                        Opened::New => {
                            let tail = self.after_open_incident(incident.clone(), now).await?;
                            return Ok(json!({
                                "outcome": "opened",
                                "incident": incident.id,
                                "incident_manager": tail,
                            }));
                        }
                        Opened::Duplicate => return self.duplicate(&fp, now).await,
                        Opened::KeyTaken => continue,
                    }
                }
            }
        }
        Err(StoreError::Contended {
            id: decision.dedupe_key.clone(),
            attempts: MAX_ATTEMPTS,
        }
        .into())
    }

    /// A delivery already counted: finish whatever its first delivery may not have.
    async fn duplicate(&self, fp: &str, now: DateTime<Utc>) -> Result<Value, Error> {
        let Some(id) = self.store.seen(fp).await? else {
            return Ok(json!({"outcome": "duplicate"}));
        };
        if let Some(incident) = self.store.get(&id).await?
            && incident
                .timeline
                .first()
                .is_some_and(|e| e.event == "opened")
            && !incident.has_emitted(&format!("{id}/{}", Kind::IncidentOpened.slug()))
        {
            // Only an opening has a tail to heal; a repeat's transaction was all of it.
            let engaged = self.after_open_incident(incident, now).await?;
            return Ok(
                json!({"outcome": "duplicate", "incident": id, "incident_manager": engaged}),
            );
        }
        Ok(json!({"outcome": "duplicate", "incident": id}))
    }

    /// Engages Incident Manager (once) and emits Incident Opened (once).
    async fn after_open_incident(
        &self,
        incident: Incident,
        now: DateTime<Utc>,
    ) -> Result<Value, Error> {
        let engaged = self.engage(&incident, now).await?;
        let current = self.store.get(&incident.id).await?.unwrap_or(incident);
        let event = Event::about(Kind::IncidentOpened, &current, None, now, None);
        self.bus.emit_once(&self.store, &event).await?;
        Ok(engaged)
    }

    /// Starts the Incident Manager incident the playbook asks for, if enabled and not yet done.
    async fn engage(&self, incident: &Incident, now: DateTime<Utc>) -> Result<Value, Error> {
        let Some(im) = &self.incident_manager else {
            return Ok(Value::Null);
        };
        let Some(plan) = incident
            .playbook
            .as_deref()
            .and_then(|name| self.playbooks.get(name))
            .and_then(|p| p.incident_manager.as_ref())
        else {
            return Ok(Value::Null);
        };
        if let Some(arn) = &incident.engagements.incident_manager_arn {
            return Ok(json!(arn));
        }
        if incident
            .timeline
            .iter()
            .any(|e| e.event == "incident_manager_started" && e.outcome == "failed")
        {
            return Ok(json!("failed earlier; see the timeline"));
        }
        let plan_arn = format!("{}{}", im.response_plan_prefix, plan.response_plan);
        let (arn, outcome, detail) = match start_incident(&im.client, &plan_arn, incident).await {
            Ok(arn) => (Some(arn.clone()), "ok", format!("{arn} (plan {plan_arn})")),
            Err(e) if e.transient => return Err(Error::IncidentManager(e)),
            // A permanent refusal (no such plan, no permission) is recorded for people to
            // see and does not hold up the incident: nothing else depends on Incident Manager.
            Err(e) => (None, "failed", e.to_string()),
        };
        self.store
            .update(&incident.id, |i| {
                if i.engagements.incident_manager_arn.is_some() {
                    return firebreak_shared::store::Change::Keep(());
                }
                i.engagements.incident_manager_arn.clone_from(&arn);
                i.note(
                    now,
                    "create",
                    "incident_manager_started",
                    outcome,
                    Some(detail.clone()),
                );
                firebreak_shared::store::Change::Write(())
            })
            .await?;
        Ok(json!(arn))
    }
}

/// Incident Manager's impact scale: 1 is critical, 5 is no impact.
pub fn impact(severity: Severity) -> i32 {
    match severity {
        Severity::Critical => 1,
        Severity::High => 2,
        Severity::Medium => 3,
        Severity::Low => 4,
        Severity::Info => 5,
    }
}

/// The ARN of a resource, where its id alone is not one and the account and region are known.
pub fn resource_arn(kind: ResourceKind, id: &str, incident: &Incident) -> Option<String> {
    if id.starts_with("arn:") {
        return Some(id.to_owned());
    }
    let (account, region) = (incident.account.as_deref()?, incident.region.as_deref()?);
    let p = partition(region);
    match kind {
        ResourceKind::Ec2Instance => Some(format!("arn:{p}:ec2:{region}:{account}:instance/{id}")),
        ResourceKind::Ec2Volume => Some(format!("arn:{p}:ec2:{region}:{account}:volume/{id}")),
        ResourceKind::SecurityGroup => Some(format!(
            "arn:{p}:ec2:{region}:{account}:security-group/{id}"
        )),
        ResourceKind::S3Bucket => Some(format!("arn:{p}:s3:::{id}")),
        _ => None,
    }
}

/// StartIncident with the incident's id as the client token, so a retry starts nothing new.
pub async fn start_incident(
    client: &aws_sdk_ssmincidents::Client,
    response_plan_arn: &str,
    incident: &Incident,
) -> Result<String, AwsError> {
    let raw = json!({
        "firebreak_incident": incident.id,
        "dedupe_key": incident.dedupe_key,
        "source": incident.source,
        "kind": incident.kind,
    })
    .to_string();
    let trigger = TriggerDetails::builder()
        .source("firebreak")
        .timestamp(aws_smithy_types::DateTime::from_millis(
            incident.signals.first_seen.timestamp_millis(),
        ))
        .raw_data(raw)
        .build()
        .map_err(|e| invalid("StartIncident", e))?;
    let mut request = client
        .start_incident()
        .client_token(&incident.id)
        .response_plan_arn(response_plan_arn)
        // Incident Manager caps titles at 200 characters.
        .title(incident.title.chars().take(200).collect::<String>())
        .impact(impact(incident.severity))
        .trigger_details(trigger);
    for r in incident.resources.iter().take(10) {
        let Some(arn) = resource_arn(r.kind, &r.id, incident) else {
            continue;
        };
        let item = RelatedItem::builder()
            .title(format!("{} {}", r.kind.as_str(), r.id))
            .identifier(
                ItemIdentifier::builder()
                    .r#type(ItemType::InvolvedResource)
                    .value(ItemValue::Arn(arn))
                    .build()
                    .map_err(|e| invalid("StartIncident", e))?,
            )
            .build();
        request = request.related_items(item);
    }
    let out = request
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ssm-incidents", "StartIncident", &e))?;
    Ok(out.incident_record_arn().to_owned())
}

fn invalid(operation: &'static str, e: impl std::fmt::Display) -> AwsError {
    AwsError {
        service: "ssm-incidents",
        operation,
        code: Some("InvalidRequest".to_owned()),
        status: None,
        message: e.to_string(),
        transient: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impact_follows_severity_with_critical_highest() {
        assert_eq!(impact(Severity::Critical), 1);
        assert_eq!(impact(Severity::Info), 5);
        assert!(
            Severity::ALL
                .windows(2)
                .all(|w| impact(w[0]) > impact(w[1]))
        );
    }
}
