//! The lifecycle bus: the small, versioned contract the stages talk over.
//!
//! Every event is an EventBridge event on Firebreak's own bus, `source: firebreak`, with one of
//! the [`Kind`] detail-types and a [`Detail`] that carries the incident id and a summary. The
//! incident record in the store is the truth; an event only says "look at this incident now".
//! The JSON Schema of each detail-type is in `infra/schemas/`, and `docs/lifecycle.md` explains
//! the contract and its versioning rule: fields are only ever added within a `schema_version`.
//!
//! Emission is recorded in the incident ([`Incident::emitted`]), after the put: a retry emits
//! what is missing, so an event is never lost, and consumers are idempotent by `event_id`, so
//! the rare re-emission (a crash between the put and the record) changes nothing.

use std::fmt;

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aws::AwsError;
use crate::incident::{Incident, Status};
use crate::signal::Severity;
use crate::store::{Change, Store, StoreError};

/// The `source` of every lifecycle event.
pub const SOURCE: &str = "firebreak";
/// The detail's `schema_version`. Consumers accept any detail with this major version.
pub const SCHEMA_VERSION: &str = "1";

/// The lifecycle event types, by EventBridge detail-type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    IncidentOpened,
    IncidentEnriched,
    RemediationStarted,
    RemediationSucceeded,
    RemediationFailed,
    ApprovalRequested,
    IncidentEscalated,
    ResolutionRequested,
    IncidentResolved,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::IncidentOpened,
        Kind::IncidentEnriched,
        Kind::RemediationStarted,
        Kind::RemediationSucceeded,
        Kind::RemediationFailed,
        Kind::ApprovalRequested,
        Kind::IncidentEscalated,
        Kind::ResolutionRequested,
        Kind::IncidentResolved,
    ];

    /// The EventBridge detail-type.
    pub fn detail_type(self) -> &'static str {
        match self {
            Kind::IncidentOpened => "Incident Opened",
            Kind::IncidentEnriched => "Incident Enriched",
            Kind::RemediationStarted => "Remediation Started",
            Kind::RemediationSucceeded => "Remediation Succeeded",
            Kind::RemediationFailed => "Remediation Failed",
            Kind::ApprovalRequested => "Approval Requested",
            Kind::IncidentEscalated => "Incident Escalated",
            Kind::ResolutionRequested => "Incident Resolution Requested",
            Kind::IncidentResolved => "Incident Resolved",
        }
    }

    /// The short name used in event ids, schema file names and the `event` SNS attribute.
    pub fn slug(self) -> &'static str {
        match self {
            Kind::IncidentOpened => "opened",
            Kind::IncidentEnriched => "enriched",
            Kind::RemediationStarted => "remediation-started",
            Kind::RemediationSucceeded => "remediation-succeeded",
            Kind::RemediationFailed => "remediation-failed",
            Kind::ApprovalRequested => "approval-requested",
            Kind::IncidentEscalated => "escalated",
            Kind::ResolutionRequested => "resolution-requested",
            Kind::IncidentResolved => "resolved",
        }
    }

    pub fn from_detail_type(detail_type: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.detail_type() == detail_type)
    }

    /// Whether notify sends this kind to the escalation topic rather than the main one.
    pub fn escalates(self) -> bool {
        matches!(
            self,
            Kind::IncidentEscalated | Kind::ApprovalRequested | Kind::RemediationFailed
        )
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.detail_type())
    }
}

/// The detail of every lifecycle event (schema version 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detail {
    pub schema_version: String,
    /// Unique per event, stable across retries: `<incident id>/<slug>[/<qualifier>]`.
    pub event_id: String,
    pub incident_id: String,
    pub dedupe_key: String,
    pub status: Status,
    pub severity: Severity,
    pub playbook: Option<String>,
    pub title: String,
    /// The incident's version when the event was made.
    pub version: u64,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who asked, for resolution requests and acknowledgements (`create`, `cli:alice` …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

/// One lifecycle event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: Kind,
    pub detail: Detail,
}

impl Event {
    /// An event about `incident` as it is now. `qualifier` tells apart events of one kind
    /// that an incident can have more than once (each failed step, each escalation).
    pub fn about(
        kind: Kind,
        incident: &Incident,
        qualifier: Option<&str>,
        at: DateTime<Utc>,
        reason: Option<String>,
    ) -> Event {
        let mut event_id = format!("{}/{}", incident.id, kind.slug());
        if let Some(q) = qualifier {
            event_id.push('/');
            event_id.push_str(q);
        }
        Event {
            kind,
            detail: Detail {
                schema_version: SCHEMA_VERSION.to_owned(),
                event_id,
                incident_id: incident.id.clone(),
                dedupe_key: incident.dedupe_key.clone(),
                status: incident.status,
                severity: incident.severity,
                playbook: incident.playbook.clone(),
                title: incident.title.clone(),
                version: incident.version,
                at,
                reason,
                actor: None,
            },
        }
    }

    pub fn with_actor(mut self, actor: &str) -> Event {
        self.detail.actor = Some(actor.to_owned());
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("EventBridge refused event {event_id}: {code}: {message}")]
    Refused {
        event_id: String,
        code: String,
        message: String,
    },
    #[error("not a lifecycle event: {0}")]
    NotLifecycle(String),
}

impl LifecycleError {
    pub fn transient(&self) -> bool {
        match self {
            LifecycleError::Aws(e) => e.transient,
            LifecycleError::Store(e) => e.transient(),
            // PutEvents reports per-entry throttling and internal failures this way.
            LifecycleError::Refused { .. } => true,
            LifecycleError::NotLifecycle(_) => false,
        }
    }
}

/// Reads a lifecycle event as EventBridge delivers it to a target.
pub fn parse(event: &[u8]) -> Result<Event, LifecycleError> {
    #[derive(Deserialize)]
    struct Envelope {
        source: String,
        #[serde(rename = "detail-type")]
        detail_type: String,
        detail: Detail,
    }
    let env: Envelope =
        serde_json::from_slice(event).map_err(|e| LifecycleError::NotLifecycle(e.to_string()))?;
    if env.source != SOURCE {
        return Err(LifecycleError::NotLifecycle(format!(
            "source {:?} is not {SOURCE:?}",
            env.source
        )));
    }
    let kind = Kind::from_detail_type(&env.detail_type).ok_or_else(|| {
        LifecycleError::NotLifecycle(format!("unknown detail-type {:?}", env.detail_type))
    })?;
    let major = env.detail.schema_version.split('.').next().unwrap_or("");
    if major != SCHEMA_VERSION {
        return Err(LifecycleError::NotLifecycle(format!(
            "schema_version {} is not {SCHEMA_VERSION}.x",
            env.detail.schema_version
        )));
    }
    Ok(Event {
        kind,
        detail: env.detail,
    })
}

/// Whether raw event bytes look like a lifecycle event (rather than a signal).
pub fn is_lifecycle(event: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(borrow)]
        source: Option<&'a str>,
    }
    serde_json::from_slice::<Probe<'_>>(event).is_ok_and(|p| p.source == Some(SOURCE))
}

/// Puts lifecycle events on Firebreak's bus.
#[derive(Clone, Debug)]
pub struct Bus {
    client: Client,
    name: String,
}

impl Bus {
    pub fn new(client: Client, name: impl Into<String>) -> Bus {
        Bus {
            client,
            name: name.into(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Puts one event. An entry EventBridge refuses is an error, never dropped.
    pub async fn put(&self, event: &Event) -> Result<(), LifecycleError> {
        let detail = serde_json::to_string(&event.detail)
            .map_err(|e| LifecycleError::NotLifecycle(e.to_string()))?;
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.name)
            .source(SOURCE)
            .detail_type(event.kind.detail_type())
            .detail(detail)
            .time(aws_smithy_types::DateTime::from_millis(
                event.detail.at.timestamp_millis(),
            ))
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("eventbridge", "PutEvents", &e))?;
        if out.failed_entry_count() > 0 {
            let failed = out.entries().iter().find(|e| e.error_code().is_some());
            return Err(LifecycleError::Refused {
                event_id: event.detail.event_id.clone(),
                code: failed
                    .and_then(|e| e.error_code())
                    .unwrap_or("unknown")
                    .to_owned(),
                message: failed
                    .and_then(|e| e.error_message())
                    .unwrap_or("")
                    .to_owned(),
            });
        }
        Ok(())
    }

    /// Puts `event` unless the incident records it as emitted, then records it. Returns
    /// whether it was put now.
    pub async fn emit_once(&self, store: &Store, event: &Event) -> Result<bool, LifecycleError> {
        let id = &event.detail.incident_id;
        let event_id = event.detail.event_id.as_str();
        if let Some(i) = store.get(id).await?
            && i.has_emitted(event_id)
        {
            return Ok(false);
        }
        self.put(event).await?;
        store
            .update(id, |i| {
                if i.has_emitted(event_id) {
                    Change::Keep(())
                } else {
                    i.emitted.push(event_id.to_owned());
                    Change::Write(())
                }
            })
            .await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_detail_type() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_detail_type(k.detail_type()), Some(k));
        }
    }

    #[test]
    fn an_event_from_another_source_or_schema_is_refused() {
        let other = br#"{"source":"aws.ec2","detail-type":"Incident Opened","detail":{}}"#;
        assert!(matches!(parse(other), Err(LifecycleError::NotLifecycle(_))));
        let v2 = serde_json::json!({"source": "firebreak", "detail-type": "Incident Opened", "detail": {
            "schema_version": "2", "event_id": "a/opened", "incident_id": "a", "dedupe_key": "k",
            "status": "open", "severity": "high", "playbook": null, "title": "t", "version": 1,
            "at": "2026-01-01T00:00:00Z"}});
        let err = parse(v2.to_string().as_bytes())
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("schema_version 2")));
    }

    #[test]
    fn a_lifecycle_event_is_told_apart_from_a_signal() {
        assert!(is_lifecycle(br#"{"source":"firebreak","detail":{}}"#));
        assert!(!is_lifecycle(br#"{"source":"aws.cloudwatch","detail":{}}"#));
        assert!(!is_lifecycle(b"not json"));
    }
}
