//! The incident record every stage reads and writes, and the state machine that guards it.
//!
//! One [`Incident`] is the truth about one incident: its signals, timeline, enrichment,
//! actions with their evidence, notifications sent, engagements and metrics. Lifecycle events
//! only point at it. Status moves one way, `open → acknowledged → resolved` (or straight from
//! open to resolved); every change bumps `version`, and the store writes a change only if the
//! status and version it was made from are still current, so a duplicate or concurrent
//! delivery makes one transition at most.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::signal::{Resource, Severity, Signal, Source, Tag};
use crate::triage::Decision;

/// Where an incident is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Acknowledged,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Acknowledged => "acknowledged",
            Status::Resolved => "resolved",
        }
    }

    pub fn from_name(name: &str) -> Option<Status> {
        [Status::Open, Status::Acknowledged, Status::Resolved]
            .into_iter()
            .find(|s| s.as_str() == name)
    }

    pub fn is_open(self) -> bool {
        self != Status::Resolved
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change the state machine refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("incident {id} is {from}; it cannot become {to}")]
pub struct TransitionError {
    pub id: String,
    pub from: Status,
    pub to: Status,
}

/// Signals counted into the incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signals {
    pub count: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// One line of the timeline: what happened, who did it, and how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub at: DateTime<Utc>,
    /// The stage (`create`, `enrich` …), `cli:<user>` or `incident-manager`.
    pub actor: String,
    /// What happened, in snake case: `opened`, `signal_repeated`, `enriched`, `notified` …
    pub event: String,
    /// `ok`, `failed`, `skipped`, `dry_run` …
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What one enricher found, or why it found nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrichmentResult {
    pub enricher: String,
    pub target: Option<String>,
    /// `ok`, `failed` or `skipped`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub data: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enrichment {
    pub at: DateTime<Utc>,
    pub results: Vec<EnrichmentResult>,
}

/// One remediation step, recorded before it runs and again after, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// Stable per incident, step and target, so a retry finds its own record.
    pub id: String,
    /// As the playbook names it: `ec2.isolate`, `ec2.snapshot` …
    pub kind: String,
    pub target: Option<String>,
    /// `started`, `succeeded`, `failed`, `skipped` or `dry_run`.
    pub outcome: String,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub evidence: Value,
}

/// A notification, claimed before it is published and marked sent after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationRecord {
    /// The lifecycle event it announces; one notification per event, ever.
    pub event_id: String,
    pub topic: String,
    pub subject: String,
    pub claimed_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// Ids of the incident in other systems.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Engagements {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_manager_arn: Option<String>,
}

/// The figures the close stage computes, in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Signal observed to incident opened.
    pub mttd_s: Option<f64>,
    /// Incident opened to its first acknowledgement (a person's, or an automated action's).
    pub mtta_s: Option<f64>,
    /// Signal observed to incident resolved.
    pub mttr_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    pub at: DateTime<Utc>,
    pub by: String,
    pub reason: String,
}

/// The whole incident record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub dedupe_key: String,
    pub status: Status,
    pub severity: Severity,
    pub playbook: Option<String>,
    pub title: String,
    pub source: Source,
    pub kind: String,
    /// The alarm's name, for incidents an alarm opened (enrichers look it up by name).
    #[serde(default)]
    pub alarm_name: Option<String>,
    /// Security Hub control id, when the finding is a control failure.
    #[serde(default)]
    pub control_id: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    /// Bumped on every write; the store's condition.
    pub version: u64,
    pub signals: Signals,
    pub resources: Vec<Resource>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    pub opened_at: DateTime<Utc>,
    #[serde(default)]
    pub acknowledged_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub resolution: Option<Resolution>,
    #[serde(default)]
    pub timeline: Vec<Entry>,
    #[serde(default)]
    pub enrichment: Option<Enrichment>,
    #[serde(default)]
    pub actions: Vec<ActionRecord>,
    #[serde(default)]
    pub notifications: Vec<NotificationRecord>,
    #[serde(default)]
    pub engagements: Engagements,
    /// Lifecycle events already put on the bus, by event id: a retry re-emits only what is
    /// missing here.
    #[serde(default)]
    pub emitted: Vec<String>,
    #[serde(default)]
    pub metrics: Metrics,
    /// The post-incident report, in Markdown, written at close.
    #[serde(default)]
    pub report: Option<String>,
    /// Epoch seconds after which DynamoDB may delete the record; set only once resolved.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

/// Repeats past this many keep counting but stop adding timeline lines, so a storm cannot
/// grow the record towards DynamoDB's 400 KB item limit.
pub const MAX_REPEAT_ENTRIES: usize = 20;

impl Incident {
    /// A new incident for a decision that opens one. `id` comes from [`incident_id`].
    pub fn open(decision: &Decision<'_>, id: String, now: DateTime<Utc>) -> Incident {
        let s = decision.signal;
        let mut incident = Incident {
            id,
            dedupe_key: decision.dedupe_key.clone(),
            status: Status::Open,
            severity: decision.severity,
            playbook: decision.playbook.map(|p| p.name.clone()),
            title: s.title.clone(),
            source: s.source,
            kind: s.kind.clone(),
            alarm_name: s.alarm_name.clone(),
            control_id: s.control_id.clone(),
            account: s.account.clone(),
            region: s.region.clone(),
            version: 1,
            signals: Signals {
                count: s.count.max(1),
                first_seen: s.observed_at,
                last_seen: s.observed_at,
            },
            resources: s.resources.clone(),
            tags: s.tags.clone(),
            opened_at: now,
            acknowledged_at: None,
            resolution: None,
            timeline: Vec::new(),
            enrichment: None,
            actions: Vec::new(),
            notifications: Vec::new(),
            engagements: Engagements::default(),
            emitted: Vec::new(),
            metrics: Metrics::default(),
            report: None,
            expires_at: None,
        };
        incident.metrics.mttd_s = Some(seconds_between(s.observed_at, now));
        incident.note(
            now,
            "create",
            "opened",
            "ok",
            Some(format!(
                "{} from {} ({}); {}",
                s.title, s.source, s.kind, decision.reason
            )),
        );
        incident
    }

    /// Appends a timeline line.
    pub fn note(
        &mut self,
        at: DateTime<Utc>,
        actor: &str,
        event: &str,
        outcome: &str,
        detail: Option<String>,
    ) {
        self.timeline.push(Entry {
            at,
            actor: actor.to_owned(),
            event: event.to_owned(),
            outcome: outcome.to_owned(),
            detail,
        });
    }

    /// Counts a repeat signal into the incident.
    pub fn repeat(&mut self, signal: &Signal, now: DateTime<Utc>) {
        self.signals.count += signal.count.max(1);
        self.signals.last_seen = self.signals.last_seen.max(signal.observed_at);
        self.signals.first_seen = self.signals.first_seen.min(signal.observed_at);
        for r in &signal.resources {
            if !self.resources.contains(r) {
                self.resources.push(r.clone());
            }
        }
        let repeats = self
            .timeline
            .iter()
            .filter(|e| e.event == "signal_repeated")
            .count();
        if repeats < MAX_REPEAT_ENTRIES {
            self.note(
                now,
                "create",
                "signal_repeated",
                "ok",
                Some(format!(
                    "{} observed {} (signal {})",
                    signal.kind,
                    signal.observed_at.to_rfc3339(),
                    self.signals.count
                )),
            );
        }
    }

    /// Records the first acknowledgement; later ones only add a timeline line.
    pub fn acknowledge(
        &mut self,
        by: &str,
        at: DateTime<Utc>,
        detail: Option<String>,
    ) -> Result<(), TransitionError> {
        self.check(Status::Acknowledged)?;
        if self.acknowledged_at.is_none() {
            self.acknowledged_at = Some(at);
            self.metrics.mtta_s = Some(seconds_between(self.opened_at, at));
        }
        if self.status == Status::Open {
            self.status = Status::Acknowledged;
        }
        self.note(at, by, "acknowledged", "ok", detail);
        Ok(())
    }

    /// Resolves the incident and computes its figures. An incident nobody acknowledged keeps
    /// MTTA unset rather than pretending the resolution was an acknowledgement.
    pub fn resolve(
        &mut self,
        by: &str,
        reason: &str,
        at: DateTime<Utc>,
        retention_s: i64,
    ) -> Result<(), TransitionError> {
        self.check(Status::Resolved)?;
        self.status = Status::Resolved;
        self.resolution = Some(Resolution {
            at,
            by: by.to_owned(),
            reason: reason.to_owned(),
        });
        self.metrics.mttd_s = Some(seconds_between(self.signals.first_seen, self.opened_at));
        self.metrics.mttr_s = Some(seconds_between(self.signals.first_seen, at));
        self.expires_at = Some(at.timestamp().saturating_add(retention_s));
        self.note(at, by, "resolved", "ok", Some(reason.to_owned()));
        Ok(())
    }

    fn check(&self, to: Status) -> Result<(), TransitionError> {
        let allowed = match (self.status, to) {
            (Status::Resolved, _) => false,
            (_, Status::Open) => false,
            (Status::Open | Status::Acknowledged, _) => true,
        };
        if allowed {
            Ok(())
        } else {
            Err(TransitionError {
                id: self.id.clone(),
                from: self.status,
                to,
            })
        }
    }

    pub fn has_emitted(&self, event_id: &str) -> bool {
        self.emitted.iter().any(|e| e == event_id)
    }

    pub fn notification(&self, event_id: &str) -> Option<&NotificationRecord> {
        self.notifications.iter().find(|n| n.event_id == event_id)
    }
}

/// Seconds from `from` to `to`, never negative: a clock skew between AWS's timestamp and ours
/// must not produce a negative time to detect.
pub fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    let ms = (to - from).num_milliseconds().max(0);
    // Millisecond counts of real incidents fit f64's 53-bit mantissa exactly.
    #[allow(clippy::cast_precision_loss)]
    let s = ms as f64 / 1000.0;
    s
}

/// A stable fingerprint of one signal delivery: the same event delivered twice gets the same
/// fingerprint, a new observation of the same problem a new one.
pub fn fingerprint(signal: &Signal) -> String {
    let mut h = Fnv::new();
    h.write(signal.dedupe_key.as_bytes());
    h.write(signal.kind.as_bytes());
    h.write(&signal.observed_at.timestamp_millis().to_le_bytes());
    h.write(occurrence(&signal.raw).as_bytes());
    format!("{:016x}", h.finish())
}

/// What identifies one occurrence in an event: an EventBridge event's `detail`, not its
/// envelope. The envelope's `id` is new on every PutEvents, so a finding sent again (a
/// re-publication, a replay, the same alarm reaching create by two paths) must not look new.
fn occurrence(raw: &str) -> std::borrow::Cow<'_, str> {
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(v) if v.get("detail-type").is_some() && v.get("detail").is_some() => {
            std::borrow::Cow::Owned(v["detail"].to_string())
        }
        _ => std::borrow::Cow::Borrowed(raw),
    }
}

/// The incident id for the first signal of an incident: readable (date first, so ids sort by
/// day) and derived from the signal, so two deliveries of that signal name the same incident.
pub fn incident_id(signal: &Signal, dedupe_key: &str) -> String {
    let mut h = Fnv::new();
    h.write(dedupe_key.as_bytes());
    h.write(fingerprint(signal).as_bytes());
    format!(
        "INC-{}-{:08x}",
        signal.observed_at.format("%Y%m%d"),
        (h.finish() >> 32) as u32
    )
}

/// FNV-1a, 64-bit: tiny, stable across Rust releases and platforms (unlike `DefaultHasher`),
/// and ids only need to spread, not resist an adversary.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::PlaybookSet;
    use crate::triage::decide;

    const ALARM: &[u8] = include_bytes!(
        "../../tests/fixtures/events/cloudwatch-alarm/docs-composite-alarm-with-suppressor-ok-to-alarm.json"
    );

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap_or_default()
    }

    fn opened() -> Incident {
        let signal = crate::signal::parse(ALARM, at(0))
            .expect("parses")
            .remove(0);
        let playbooks = PlaybookSet::starter();
        let d = decide(&signal, &playbooks);
        let id = incident_id(&signal, &d.dedupe_key);
        Incident::open(&d, id, signal.observed_at + chrono::Duration::seconds(30))
    }

    #[test]
    fn an_incident_opens_with_its_time_to_detect() {
        let i = opened();
        assert_eq!(i.status, Status::Open);
        assert_eq!(i.metrics.mttd_s, Some(30.0));
        assert_eq!(i.timeline.len(), 1);
        assert!(
            i.id.starts_with("INC-20220722-"),
            "dated by the signal: {}",
            i.id
        );
    }

    #[test]
    fn resolving_computes_mttr_from_the_first_signal_and_sets_the_retention() {
        let mut i = opened();
        let end = i.signals.first_seen + chrono::Duration::seconds(600);
        i.resolve("close", "alarm back to OK", end, 86_400)
            .expect("open resolves");
        assert_eq!(i.status, Status::Resolved);
        assert_eq!(i.metrics.mttr_s, Some(600.0));
        assert_eq!(i.metrics.mtta_s, None);
        assert_eq!(i.expires_at, Some(end.timestamp() + 86_400));
    }

    #[test]
    fn a_resolved_incident_cannot_be_resolved_or_acknowledged_again() {
        let mut i = opened();
        let t = i.opened_at;
        i.resolve("close", "ok", t, 0).expect("first resolve");
        let again = i.resolve("close", "ok", t, 0);
        assert_eq!(
            again.map_err(|e| (e.from, e.to)),
            Err((Status::Resolved, Status::Resolved))
        );
        assert!(i.acknowledge("cli:alice", t, None).is_err());
    }

    #[test]
    fn only_the_first_acknowledgement_sets_mtta() {
        let mut i = opened();
        let t = i.opened_at;
        i.acknowledge("remediate", t + chrono::Duration::seconds(5), None)
            .expect("ack");
        i.acknowledge("cli:bob", t + chrono::Duration::seconds(50), None)
            .expect("second ack");
        assert_eq!(i.metrics.mtta_s, Some(5.0));
        assert_eq!(i.status, Status::Acknowledged);
    }

    #[test]
    fn a_storm_of_repeats_counts_every_signal_but_caps_the_timeline() {
        let mut i = opened();
        let signal = crate::signal::parse(ALARM, at(0))
            .expect("parses")
            .remove(0);
        for _ in 0..100 {
            i.repeat(&signal, i.opened_at);
        }
        assert_eq!(i.signals.count, 101);
        assert_eq!(i.timeline.len(), 1 + MAX_REPEAT_ENTRIES);
    }

    #[test]
    fn the_same_delivery_has_the_same_fingerprint_and_id() {
        let a = crate::signal::parse(ALARM, at(0))
            .expect("parses")
            .remove(0);
        let b = crate::signal::parse(ALARM, at(99))
            .expect("parses")
            .remove(0);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_eq!(incident_id(&a, "k"), incident_id(&b, "k"));
        let mut later = b.clone();
        later.observed_at += chrono::Duration::seconds(60);
        assert_ne!(fingerprint(&a), fingerprint(&later));
    }
}
