//! Triage: what Firebreak would do with a signal, decided without touching AWS.
//!
//! The create stage acts on a [`Decision`]; `firebreak triage` prints one. Keeping the decision
//! pure means the same code answers "what would happen" in the CLI, in tests and in production.

use serde::Serialize;

use crate::playbook::{Playbook, PlaybookSet};
use crate::signal::{Action, AlarmState, Severity, Signal};

/// Signals that no playbook matches open a notify-only incident at this severity and above, and
/// are ignored below it. An unmatched high-severity finding must reach a human; an unmatched
/// low one would only be noise.
pub const DEFAULT_POLICY_MIN_SEVERITY: Severity = Severity::High;

/// The tag Firebreak puts on every resource it creates for an incident (quarantine security
/// groups, evidence snapshots). Signals about such resources are ignored.
pub const MANAGED_TAG: &str = "firebreak:managed";

/// What happens to the signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Open an incident (or update the open one with the same dedupe key) and run the
    /// playbook's enrichers and steps.
    Incident,
    /// No playbook matched, but the signal is severe enough that people must hear of it.
    NotifyOnly,
    /// Resolve the open incident with this dedupe key, if there is one.
    Resolve,
    /// Nothing happens; `reason` says why.
    Ignore,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Incident => "incident",
            Outcome::NotifyOnly => "notify_only",
            Outcome::Resolve => "resolve",
            Outcome::Ignore => "ignore",
        }
    }
}

/// The verdict on one signal.
#[derive(Debug, Clone)]
pub struct Decision<'a> {
    pub signal: &'a Signal,
    pub playbook: Option<&'a Playbook>,
    /// The signal's action after the playbook had its say (an alarm's INSUFFICIENT_DATA is
    /// whatever the playbook's `insufficient_data` makes of it).
    pub action: Action,
    pub severity: Severity,
    pub dedupe_key: String,
    pub outcome: Outcome,
    /// Why the outcome is what it is, in one phrase a person can read.
    pub reason: String,
}

/// Decides what happens to `signal` under `playbooks`.
pub fn decide<'a>(signal: &'a Signal, playbooks: &'a PlaybookSet) -> Decision<'a> {
    let playbook = playbooks.first_match(signal);
    let action = match (playbook, &signal.alarm_state) {
        (Some(p), Some(AlarmState::InsufficientData)) => p.insufficient_data,
        _ => signal.action,
    };
    let severity = playbook.map_or(signal.severity, |p| p.severity_for(signal));
    let dedupe_key = playbook.map_or_else(|| signal.dedupe_key.clone(), |p| p.dedupe_key(signal));

    let managed = signal.tags.iter().any(|t| t.key == MANAGED_TAG);
    let (outcome, reason) = match (action, playbook) {
        // Loop protection: what Firebreak made or changed for an incident (its quarantine
        // groups, its snapshots) must never open another one.
        _ if managed => (
            Outcome::Ignore,
            format!("a resource Firebreak manages ({MANAGED_TAG}); never an incident of its own"),
        ),
        (Action::Ignore, _) => (Outcome::Ignore, ignore_reason(signal)),
        (Action::Resolve, Some(p)) => (
            Outcome::Resolve,
            format!("resolves under playbook {}", p.name),
        ),
        (Action::Resolve, None) => (
            Outcome::Resolve,
            "resolves the open incident with this dedupe key, if any".to_owned(),
        ),
        (Action::Open, Some(p)) => (Outcome::Incident, format!("matched playbook {}", p.name)),
        (Action::Open, None) if severity >= DEFAULT_POLICY_MIN_SEVERITY => (
            Outcome::NotifyOnly,
            format!(
                "no playbook matched; default policy notifies at {DEFAULT_POLICY_MIN_SEVERITY} and above"
            ),
        ),
        (Action::Open, None) => (
            Outcome::Ignore,
            format!(
                "no playbook matched and {severity} is below the default policy's {DEFAULT_POLICY_MIN_SEVERITY}"
            ),
        ),
    };

    Decision {
        signal,
        playbook,
        action,
        severity,
        dedupe_key,
        outcome,
        reason,
    }
}

fn ignore_reason(signal: &Signal) -> String {
    match signal.alarm_state {
        Some(AlarmState::InsufficientData) => {
            "alarm has INSUFFICIENT_DATA, which its playbook (or the default) ignores".to_owned()
        }
        _ => format!("not an incident signal: {}", signal.title),
    }
}

/// A decision flattened for output: the `--json` line of `firebreak triage` and the create
/// stage's record. The first seven fields are the documented contract; the rest add context.
#[derive(Debug, Serialize)]
pub struct Summary<'a> {
    pub source: crate::signal::Source,
    pub action: Action,
    pub severity: Severity,
    pub title: &'a str,
    pub resources: Vec<&'a str>,
    pub dedupe_key: &'a str,
    pub playbook: Option<&'a str>,
    pub outcome: Outcome,
    pub reason: &'a str,
    pub kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm_name: Option<&'a str>,
    pub account: Option<&'a str>,
    pub region: Option<&'a str>,
    pub observed_at: chrono::DateTime<chrono::Utc>,
    pub count: u64,
}

impl Decision<'_> {
    pub fn summary(&self) -> Summary<'_> {
        let s = self.signal;
        Summary {
            source: s.source,
            action: self.action,
            severity: self.severity,
            title: &s.title,
            resources: s.resources.iter().map(|r| r.id.as_str()).collect(),
            dedupe_key: &self.dedupe_key,
            playbook: self.playbook.map(|p| p.name.as_str()),
            outcome: self.outcome,
            reason: &self.reason,
            kind: &s.kind,
            control_id: s.control_id.as_deref(),
            alarm_name: s.alarm_name.as_deref(),
            account: s.account.as_deref(),
            region: s.region.as_deref(),
            observed_at: s.observed_at,
            count: s.count,
        }
    }
}

/// What a stage made of one raw event: a result per signal, or the reason it was refused.
#[derive(Debug, Serialize, PartialEq)]
pub struct StageOutput<T> {
    pub results: Vec<T>,
    /// Set when the event was refused. A refusal is permanent (a retry would fail the same
    /// way), so it is logged and acknowledged rather than failed into a retry loop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// The playbooks a stage decides with, loaded once at init.
pub struct Triage {
    playbooks: PlaybookSet,
}

impl Triage {
    pub fn new(playbooks: PlaybookSet) -> Self {
        Self { playbooks }
    }

    /// The playbooks named by the environment (see [`crate::config`]).
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        Ok(Self::new(crate::config::playbooks_from_env()?))
    }

    pub fn playbooks(&self) -> &PlaybookSet {
        &self.playbooks
    }

    /// Parses a raw event, decides each signal, and hands each decision to `stage`.
    pub fn handle<T>(
        &self,
        event: &[u8],
        received_at: chrono::DateTime<chrono::Utc>,
        mut stage: impl FnMut(&Decision<'_>) -> T,
    ) -> StageOutput<T> {
        match crate::signal::parse(event, received_at) {
            Ok(signals) => StageOutput {
                results: signals
                    .iter()
                    .map(|s| stage(&decide(s, &self.playbooks)))
                    .collect(),
                refused: None,
            },
            Err(err) => {
                tracing::warn!(error = %err, "event refused");
                StageOutput {
                    results: Vec::new(),
                    refused: Some(err.to_string()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::signal::{Resource, ResourceKind, Source};

    fn signal(source: Source, action: Action, severity: Severity) -> Signal {
        Signal {
            source,
            action,
            severity,
            title: "test signal".to_owned(),
            kind: "metric".to_owned(),
            control_id: None,
            alarm_name: Some("checkout-latency".to_owned()),
            alarm_state: None,
            resources: vec![Resource {
                kind: ResourceKind::Ec2Instance,
                id: "i-0123456789abcdef0".to_owned(),
            }],
            tags: Vec::new(),
            account: Some("123456789012".to_owned()),
            region: Some("eu-west-1".to_owned()),
            observed_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
            count: 1,
            dedupe_key: "natural-key".to_owned(),
            raw: std::sync::Arc::from("{}"),
        }
    }

    fn playbooks(yaml: &str) -> PlaybookSet {
        PlaybookSet::from_sources([(PathBuf::from("t.yaml"), yaml.to_owned())])
            .unwrap_or_else(|e| panic!("test playbook is invalid: {e:?}"))
    }

    fn nothing_matches() -> PlaybookSet {
        playbooks("name: t\npriority: 1\nmatch: {sources: [security_hub]}\n")
    }

    #[test]
    fn a_finding_on_a_resource_firebreak_manages_never_opens_an_incident() {
        let mut s = signal(Source::Guardduty, Action::Open, Severity::Critical);
        s.tags.push(crate::signal::Tag {
            key: MANAGED_TAG.to_owned(),
            value: "true".to_owned(),
        });
        let starter = PlaybookSet::starter();
        let d = decide(&s, &starter);
        assert_eq!(d.outcome, Outcome::Ignore);
        assert!(d.reason.contains(MANAGED_TAG), "{}", d.reason);
    }

    #[test]
    fn an_unmatched_high_severity_signal_is_a_notify_only_incident() {
        let s = signal(Source::Guardduty, Action::Open, Severity::High);
        let set = nothing_matches();
        let d = decide(&s, &set);
        assert_eq!(d.outcome, Outcome::NotifyOnly);
        assert!(d.playbook.is_none());
        assert_eq!(d.dedupe_key, "natural-key");
    }

    #[test]
    fn an_unmatched_signal_below_high_is_ignored_with_the_reason() {
        let s = signal(Source::Guardduty, Action::Open, Severity::Medium);
        let set = nothing_matches();
        let d = decide(&s, &set);
        assert_eq!(d.outcome, Outcome::Ignore);
        assert!(
            d.reason.contains("below the default policy"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn an_unmatched_all_clear_still_resolves_by_its_natural_key() {
        let s = signal(Source::CloudwatchAlarm, Action::Resolve, Severity::Info);
        let set = nothing_matches();
        let d = decide(&s, &set);
        assert_eq!(d.outcome, Outcome::Resolve);
        assert_eq!(d.dedupe_key, "natural-key");
    }

    #[test]
    fn a_matched_signal_takes_the_playbooks_severity_and_dedupe_key() {
        let set = playbooks(
            "name: latency\npriority: 1\nmatch: {sources: [cloudwatch_alarm]}\nseverity: critical\ndedupe: {key: \"{playbook}:{alarm_name}\"}\n",
        );
        let s = signal(Source::CloudwatchAlarm, Action::Open, Severity::Medium);
        let d = decide(&s, &set);
        assert_eq!(d.outcome, Outcome::Incident);
        assert_eq!(d.severity, Severity::Critical);
        assert_eq!(d.dedupe_key, "latency:checkout-latency");
    }

    #[test]
    fn insufficient_data_is_ignored_unless_the_playbook_says_otherwise() {
        let mut s = signal(Source::CloudwatchAlarm, Action::Ignore, Severity::Medium);
        s.alarm_state = Some(AlarmState::InsufficientData);

        let default = playbooks("name: a\npriority: 1\nmatch: {sources: [cloudwatch_alarm]}\n");
        assert_eq!(decide(&s, &default).outcome, Outcome::Ignore);

        let opens = playbooks(
            "name: a\npriority: 1\nmatch: {sources: [cloudwatch_alarm]}\ninsufficient_data: open\n",
        );
        let d = decide(&s, &opens);
        assert_eq!(d.action, Action::Open);
        assert_eq!(d.outcome, Outcome::Incident);
    }
}
