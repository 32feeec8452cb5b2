//! The normalized signal model and the entry point that parses raw events into it.
//!
//! A *signal* is one observation that may open, update or resolve an incident: an alarm state
//! change, a GuardDuty finding, or one Security Hub finding (a Security Hub event can carry many).
//! Everything downstream (playbook matching, dedupe, the incident record) works on [`Signal`]
//! only, so the quirks of each AWS envelope stay inside this module.

mod alarm;
mod envelope;
mod guardduty;
mod securityhub;
mod time;

#[cfg(test)]
mod testing;

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use aws_lambda_events::event::cloudwatch_alarms::CloudWatchAlarmStateValue as AlarmState;

pub use envelope::parse;
pub use time::parse_timestamp;

/// EventBridge refuses events larger than 256 KB; anything bigger cannot be a real signal, so it
/// is refused before any parsing work is spent on it.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// Where a signal came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    CloudwatchAlarm,
    Guardduty,
    SecurityHub,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::CloudwatchAlarm => "cloudwatch_alarm",
            Source::Guardduty => "guardduty",
            Source::SecurityHub => "security_hub",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the signal asks of the incident it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Open an incident, or update the open one with the same dedupe key.
    Open,
    /// Resolve the open incident with the same dedupe key (alarm back to OK, finding resolved).
    Resolve,
    /// Understood, and deliberately not acted on (configuration changes, archived findings).
    Ignore,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Open => "open",
            Action::Resolve => "resolve",
            Action::Ignore => "ignore",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Firebreak's five severities, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// GuardDuty's own bands for its 1.0–10.0 score: 1.0–3.9 low, 4.0–6.9 medium,
    /// 7.0–8.9 high, 9.0–10.0 critical. Scores below 1 (never issued) read as info.
    pub fn from_guardduty_score(score: f64) -> Severity {
        if score >= 9.0 {
            Severity::Critical
        } else if score >= 7.0 {
            Severity::High
        } else if score >= 4.0 {
            Severity::Medium
        } else if score >= 1.0 {
            Severity::Low
        } else {
            Severity::Info
        }
    }

    /// ASFF's normalized 0–100 score, by the bands Security Hub documents for `Severity.Label`:
    /// 0 informational, 1–39 low, 40–69 medium, 70–89 high, 90–100 critical.
    pub fn from_asff_normalized(score: f64) -> Severity {
        if score >= 90.0 {
            Severity::Critical
        } else if score >= 70.0 {
            Severity::High
        } else if score >= 40.0 {
            Severity::Medium
        } else if score >= 1.0 {
            Severity::Low
        } else {
            Severity::Info
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "info" | "informational" => Ok(Severity::Info),
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            other => Err(format!(
                "unknown severity `{other}` (expected info, low, medium, high or critical)"
            )),
        }
    }
}

/// The kind of thing a resource id names. Remediation dispatches on it, so it is typed rather
/// than guessed again from the id's shape downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Ec2Instance,
    Ec2Volume,
    SecurityGroup,
    AccessKey,
    IamUser,
    IamRole,
    IamPolicy,
    S3Bucket,
    EksCluster,
    LambdaFunction,
    RdsInstance,
    Alarm,
    Account,
    Other,
}

impl ResourceKind {
    /// Every kind, in declaration order, for listing them in errors and docs.
    pub const ALL: [ResourceKind; 14] = [
        ResourceKind::Ec2Instance,
        ResourceKind::Ec2Volume,
        ResourceKind::SecurityGroup,
        ResourceKind::AccessKey,
        ResourceKind::IamUser,
        ResourceKind::IamRole,
        ResourceKind::IamPolicy,
        ResourceKind::S3Bucket,
        ResourceKind::EksCluster,
        ResourceKind::LambdaFunction,
        ResourceKind::RdsInstance,
        ResourceKind::Alarm,
        ResourceKind::Account,
        ResourceKind::Other,
    ];

    /// The kind's name as playbooks write it (the same as its serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Ec2Instance => "ec2_instance",
            ResourceKind::Ec2Volume => "ec2_volume",
            ResourceKind::SecurityGroup => "security_group",
            ResourceKind::AccessKey => "access_key",
            ResourceKind::IamUser => "iam_user",
            ResourceKind::IamRole => "iam_role",
            ResourceKind::IamPolicy => "iam_policy",
            ResourceKind::S3Bucket => "s3_bucket",
            ResourceKind::EksCluster => "eks_cluster",
            ResourceKind::LambdaFunction => "lambda_function",
            ResourceKind::RdsInstance => "rds_instance",
            ResourceKind::Alarm => "alarm",
            ResourceKind::Account => "account",
            ResourceKind::Other => "other",
        }
    }

    /// The kind a playbook names, if it is one.
    pub fn from_name(name: &str) -> Option<ResourceKind> {
        ResourceKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One resource a signal names: an instance id, an access key id, a bucket or alarm ARN …
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resource {
    pub kind: ResourceKind,
    /// The id or ARN exactly as AWS names it (trimmed of stray whitespace).
    pub id: String,
}

/// A tag on one of the signal's resources, as the event reported it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// One normalized observation. See the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    pub source: Source,
    pub action: Action,
    /// The severity the source implies; a playbook may assign another.
    pub severity: Severity,
    pub title: String,
    /// What kind of signal this is within its source, the key playbooks match on:
    /// the GuardDuty finding type (`Backdoor:EC2/C&CActivity.B!DNS`), the Security Hub
    /// generator id, or the alarm kind (`metric`, `metric_math`, `anomaly_detection`, `composite`).
    pub kind: String,
    /// Security Hub control id (`EC2.7`, `CIS 1.3` …) where the finding has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_id: Option<String>,
    /// The alarm name for CloudWatch signals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_name: Option<String>,
    /// The state an alarm moved to. `INSUFFICIENT_DATA` arrives as [`Action::Ignore`]; the
    /// matched playbook decides what it really means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_state: Option<AlarmState>,
    pub resources: Vec<Resource>,
    /// Tags the event itself reports on its resources (GuardDuty instance tags, ASFF resource
    /// tags). Alarms carry none; the enrich stage looks them up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    /// The account the observed resources live in (the finding's account, not the envelope's
    /// when the two differ, as they do for delegated-administrator deliveries).
    pub account: Option<String>,
    pub region: Option<String>,
    /// When the source observed the condition: the alarm's state timestamp, the finding's last
    /// update. Falls back to the envelope time, then to the time the event was received.
    pub observed_at: DateTime<Utc>,
    /// How many times the source has seen this finding (GuardDuty `service.count`); 1 otherwise.
    pub count: u64,
    /// The source's natural identity for this condition: the same alarm's ALARM and OK share it,
    /// a repeated GuardDuty finding shares it. A playbook may replace it with its own template.
    pub dedupe_key: String,
    /// The event this signal came from, verbatim, for the incident record. Shared between the
    /// signals of one multi-finding event.
    #[serde(skip)]
    pub raw: Arc<str>,
}

impl Signal {
    /// A tag's value on any of the signal's resources.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }
}

/// Why an input was refused. Every variant renders as one line that says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty input: expected one JSON event")]
    Empty,
    #[error("event is {size} bytes, over EventBridge's {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("not valid JSON: {0}")]
    InvalidJson(String),
    #[error("expected a JSON object at the top level, found {0}")]
    NotAnObject(&'static str),
    #[error("unsupported event: {0}")]
    Unsupported(String),
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
}

impl ParseError {
    pub(crate) fn malformed(what: &'static str, reason: impl fmt::Display) -> Self {
        ParseError::Malformed {
            what,
            reason: one_line(&reason.to_string()),
        }
    }
}

/// serde_json's messages are single-line already; nested sources may not be, and a refusal must
/// stay one line on stderr and in logs.
pub(crate) fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, part) in s.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(part);
    }
    out
}

#[cfg(test)]
mod model_tests {
    use super::*;

    #[test]
    fn resource_kind_names_are_the_serde_names() {
        for kind in ResourceKind::ALL {
            let serde_name = serde_json::to_value(kind).expect("kind serializes");
            assert_eq!(serde_name, kind.as_str());
            assert_eq!(ResourceKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(ResourceKind::from_name("ec2"), None);
    }
}
