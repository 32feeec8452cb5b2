//! The playbook file format: every section as a typed value, refused field by field as it is
//! read so that each error keeps its line (see `de.rs`).
//!
//! The documented schema is docs/playbooks.md; a field added here must be added there.

use std::fmt;
use std::num::NonZeroU32;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::de::{NonEmpty, map_then, str_then};
use super::{Duration, Matcher, Template};
use crate::catalog::{self, ActionSpec, EnricherSpec, Params, ParamsSeed};
use crate::signal::{Action, ResourceKind, Severity, Signal, Tag};

/// A playbook name: lowercase letters, digits and hyphens, starting with a letter or digit, at
/// most 64 characters. It names the playbook in incidents, metrics and `{playbook}`.
pub(crate) struct Name(pub(crate) String);

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        str_then(d, "a playbook name", |name| {
            let charset = name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !charset || name.starts_with('-') || name.ends_with('-') || name.len() > 64 {
                return Err(format!(
                    "invalid name `{name}`: use lowercase letters, digits and inner hyphens, at \
                     most 64 characters (e.g. ec2-compromise)"
                ));
            }
            Ok(Name(name.to_owned()))
        })
    }
}

/// An action name from the catalog.
struct ActionName(&'static ActionSpec);

impl<'de> Deserialize<'de> for ActionName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        str_then(d, "an action name", |name| {
            catalog::action(name).map(ActionName).ok_or_else(|| {
                let known: Vec<&str> = catalog::ACTIONS.iter().map(|a| a.name).collect();
                format!("unknown action `{name}` (known: {})", known.join(", "))
            })
        })
    }
}

/// An enricher name from the catalog.
struct EnricherName(&'static EnricherSpec);

impl<'de> Deserialize<'de> for EnricherName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        str_then(d, "an enricher name", |name| {
            catalog::enricher(name).map(EnricherName).ok_or_else(|| {
                let known: Vec<&str> = catalog::ENRICHERS.iter().map(|e| e.name).collect();
                format!("unknown enricher `{name}` (known: {})", known.join(", "))
            })
        })
    }
}

/// The `enrich:` list.
#[derive(Default)]
pub(crate) struct Enrichers(pub(crate) Vec<&'static EnricherSpec>);

impl<'de> Deserialize<'de> for Enrichers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EnrichersVisitor;

        impl<'de> Visitor<'de> for EnrichersVisitor {
            type Value = Enrichers;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of enricher names")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Enrichers, A::Error> {
                let mut out: Vec<&'static EnricherSpec> = Vec::new();
                while let Some(EnricherName(spec)) = seq.next_element()? {
                    if out.contains(&spec) {
                        return Err(de::Error::custom(format_args!(
                            "enricher `{}` is listed twice",
                            spec.name
                        )));
                    }
                    out.push(spec);
                }
                Ok(Enrichers(out))
            }
        }

        d.deserialize_seq(EnrichersVisitor)
    }
}

/// One remediation step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub action: &'static ActionSpec,
    /// The parameters under `with:`, checked against the catalog.
    pub with: Params,
    pub when: Option<When>,
}

impl Step {
    /// Whether the step runs for `signal` (its `when`, if any, holds).
    pub fn applies_to(&self, signal: &Signal) -> bool {
        self.when.as_ref().is_none_or(|w| w.holds(signal))
    }
}

const STEP_FIELDS: &[&str] = &["action", "with", "when"];

enum StepField {
    Action,
    With,
    When,
}

impl<'de> Deserialize<'de> for StepField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldVisitor;

        impl Visitor<'_> for FieldVisitor {
            type Value = StepField;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`action`, `with` or `when`")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<StepField, E> {
                match v {
                    "action" => Ok(StepField::Action),
                    "with" => Ok(StepField::With),
                    "when" => Ok(StepField::When),
                    other => Err(E::unknown_field(other, STEP_FIELDS)),
                }
            }
        }

        d.deserialize_identifier(FieldVisitor)
    }
}

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StepVisitor;

        impl<'de> Visitor<'de> for StepVisitor {
            type Value = Step;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a step: a mapping with `action` and optional `with` and `when`")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Step, A::Error> {
                let mut action: Option<&'static ActionSpec> = None;
                let mut with: Option<Params> = None;
                // `with:` written before `action:` cannot be checked until the action is known.
                let mut early_with: Option<serde_yaml_ng::Mapping> = None;
                let mut when: Option<When> = None;
                while let Some(field) = map.next_key::<StepField>()? {
                    match field {
                        StepField::Action => {
                            if action.is_some() {
                                return Err(de::Error::duplicate_field("action"));
                            }
                            action = Some(map.next_value::<ActionName>()?.0);
                        }
                        StepField::With => {
                            if with.is_some() || early_with.is_some() {
                                return Err(de::Error::duplicate_field("with"));
                            }
                            // Checked as it is read, so a bad parameter gets its own line.
                            match action {
                                Some(spec) => {
                                    with = Some(map.next_value_seed(ParamsSeed { spec })?)
                                }
                                None => early_with = Some(map.next_value()?),
                            }
                        }
                        StepField::When => {
                            if when.is_some() {
                                return Err(de::Error::duplicate_field("when"));
                            }
                            when = Some(map.next_value()?);
                        }
                    }
                }
                let action = action.ok_or_else(|| de::Error::missing_field("action"))?;
                let with = match (with, early_with) {
                    (Some(with), _) => with,
                    (None, Some(early)) => catalog::parse_params(action, &early)
                        .map_err(|e| de::Error::custom(format_args!("with: {e}")))?,
                    (None, None) => catalog::parse_params(action, &serde_yaml_ng::Mapping::new())
                        .map_err(de::Error::custom)?,
                };
                Ok(Step { action, with, when })
            }
        }

        d.deserialize_map(StepVisitor)
    }
}

/// A step's own condition, on top of the playbook's match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct When {
    /// On the signal's own severity, as `match.min_severity` is.
    pub min_severity: Option<Severity>,
    /// The signal must name a resource of one of these kinds; empty means no condition.
    pub resource_types: Vec<ResourceKind>,
}

impl When {
    pub fn holds(&self, signal: &Signal) -> bool {
        self.min_severity.is_none_or(|min| signal.severity >= min)
            && (self.resource_types.is_empty()
                || signal
                    .resources
                    .iter()
                    .any(|r| self.resource_types.contains(&r.kind)))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWhen {
    min_severity: Option<Severity>,
    resource_types: Option<NonEmpty<ResourceKind>>,
}

impl<'de> Deserialize<'de> for When {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        map_then(
            d,
            "a condition with min_severity and/or resource_types",
            |raw: RawWhen| {
                if raw.min_severity.is_none() && raw.resource_types.is_none() {
                    return Err("`when` needs `min_severity` and/or `resource_types`".to_owned());
                }
                Ok(When {
                    min_severity: raw.min_severity,
                    resource_types: raw.resource_types.map_or_else(Vec::new, |k| k.0),
                })
            },
        )
    }
}

/// How repeats of a signal are folded into one incident.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dedupe {
    /// `None`: the signal's own dedupe key.
    pub key: Option<Template>,
    /// A repeat within this long of the last one updates the open incident.
    pub window: Duration,
}

impl Default for Dedupe {
    fn default() -> Self {
        Dedupe {
            key: None,
            window: Duration::from_hours(24),
        }
    }
}

/// What may run without a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Steps run as soon as the incident is enriched.
    Auto,
    /// The steps pause before the first mutating one until a person approves the rest.
    #[default]
    Approve,
    /// Mutating steps are recorded as what would have run, and skipped.
    DryRun,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Approve => "approve",
            Mode::DryRun => "dry-run",
        }
    }
}

/// The tag that puts a resource out of Firebreak's reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedTag {
    pub key: String,
    /// `None`: any value protects.
    pub value: Option<String>,
}

impl ProtectedTag {
    pub const DEFAULT_KEY: &'static str = "firebreak:protected";

    /// Whether a tag `key`=`value` protects its resource.
    pub fn matches(&self, key: &str, value: &str) -> bool {
        key == self.key && self.value.as_deref().is_none_or(|v| v == value)
    }

    /// Whether any of `tags` protects its resource.
    pub fn protects(&self, tags: &[Tag]) -> bool {
        tags.iter().any(|t| self.matches(&t.key, &t.value))
    }
}

impl Default for ProtectedTag {
    fn default() -> Self {
        ProtectedTag {
            key: ProtectedTag::DEFAULT_KEY.to_owned(),
            value: None,
        }
    }
}

impl fmt::Display for ProtectedTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={v}", self.key),
            None => f.write_str(&self.key),
        }
    }
}

impl<'de> Deserialize<'de> for ProtectedTag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        str_then(d, "a tag key, or key=value", |text| {
            let (key, value) = match text.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (text, None),
            };
            if key.is_empty() || value == Some("") || key.len() > 128 {
                return Err(format!(
                    "invalid protected_tag `{text}`: write a tag key (any value protects) or \
                     key=value (only that value protects)"
                ));
            }
            Ok(ProtectedTag {
                key: key.to_owned(),
                value: value.map(str::to_owned),
            })
        })
    }
}

/// At most `max` remediations per playbook per account within `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimit {
    pub max: NonZeroU32,
    pub per: Duration,
}

impl RateLimit {
    pub const DEFAULT: RateLimit = RateLimit {
        max: match NonZeroU32::new(10) {
            Some(n) => n,
            None => NonZeroU32::MIN,
        },
        per: Duration::from_hours(1),
    };
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit::DEFAULT
    }
}

/// The `guardrails:` section.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Guardrails {
    pub mode: Mode,
    pub protected_tag: ProtectedTag,
    pub rate_limit: RateLimit,
}

/// When an incident is escalated at once, besides `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalationTrigger {
    RemediationFailed,
    ApprovalRequested,
    ProtectedResource,
    RateLimited,
}

impl EscalationTrigger {
    pub const ALL: [EscalationTrigger; 4] = [
        EscalationTrigger::RemediationFailed,
        EscalationTrigger::ApprovalRequested,
        EscalationTrigger::ProtectedResource,
        EscalationTrigger::RateLimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EscalationTrigger::RemediationFailed => "remediation_failed",
            EscalationTrigger::ApprovalRequested => "approval_requested",
            EscalationTrigger::ProtectedResource => "protected_resource",
            EscalationTrigger::RateLimited => "rate_limited",
        }
    }
}

/// The `notify.escalation:` section. Present even when the file omits it: an approval request
/// or a failed remediation that reaches nobody would leave the incident stuck, so escalating on
/// every trigger is the default and `on: []` the explicit opt-out.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Escalation {
    /// Escalate an incident nobody acknowledged within this long.
    pub after: Option<Duration>,
    /// Escalate at once when one of these happens.
    pub on: Vec<EscalationTrigger>,
}

impl Escalation {
    pub fn escalates_on(&self, trigger: EscalationTrigger) -> bool {
        self.on.contains(&trigger)
    }
}

impl Default for Escalation {
    fn default() -> Self {
        Escalation {
            after: None,
            on: EscalationTrigger::ALL.to_vec(),
        }
    }
}

/// The `notify:` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Notify {
    /// Sent as the `route` message attribute, for SNS subscription filter policies.
    #[serde(deserialize_with = "route")]
    pub route: String,
    /// Also format the message for AWS Chatbot.
    pub chat: bool,
    pub escalation: Escalation,
}

impl Notify {
    pub const DEFAULT_ROUTE: &'static str = "default";
}

impl Default for Notify {
    fn default() -> Self {
        Notify {
            route: Notify::DEFAULT_ROUTE.to_owned(),
            chat: true,
            escalation: Escalation::default(),
        }
    }
}

/// A route must survive a subscription filter policy's exact string match: whitespace or an
/// odd character would silently route every message to nobody.
fn route<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    str_then(d, "a route label", |route| {
        let ok = route.len() <= 128
            && route
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b));
        if ok {
            Ok(route.to_owned())
        } else {
            Err(format!(
                "invalid route `{route}`: use letters, digits and - _ . : / (at most 128)"
            ))
        }
    })
}

/// What closes the incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseOn {
    /// The source's own all-clear: the alarm back to OK, a Security Hub finding resolved.
    AlarmOk,
    /// Every mutating step succeeded and its check confirmed the new state (or the source
    /// gave its all-clear first).
    VerifiedRemediation,
    /// Only a person closes it.
    Manual,
}

impl CloseOn {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseOn::AlarmOk => "alarm_ok",
            CloseOn::VerifiedRemediation => "verified_remediation",
            CloseOn::Manual => "manual",
        }
    }
}

/// The `close:` section, with `on` resolved to its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    pub on: CloseOn,
    /// Resolve when no repeat arrived for this long.
    pub auto_resolve_after: Option<Duration>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CloseDoc {
    #[serde(default)]
    pub(crate) on: Option<CloseOn>,
    #[serde(default)]
    pub(crate) auto_resolve_after: Option<Duration>,
}

/// The optional `incident_manager:` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentManager {
    /// The response plan to start an Incident Manager incident with.
    #[serde(deserialize_with = "response_plan")]
    pub response_plan: String,
}

/// Incident Manager's own constraint on response plan names.
fn response_plan<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    str_then(d, "a response plan name", |name| {
        let ok = name.len() <= 200
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(name.to_owned())
        } else {
            Err(format!(
                "invalid response plan name `{name}`: use letters, digits, - and _ (at most 200)"
            ))
        }
    })
}

fn ignore() -> Action {
    Action::Ignore
}

/// A playbook file as written, before the checks that need more than one field.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a playbook: a mapping with at least `name`, `priority` and `match`"
)]
pub(crate) struct Document {
    pub(crate) name: Name,
    #[serde(default)]
    pub(crate) description: Option<String>,
    pub(crate) priority: u32,
    #[serde(rename = "match")]
    pub(crate) matcher: Matcher,
    #[serde(default)]
    pub(crate) severity: Option<Severity>,
    #[serde(default = "ignore")]
    pub(crate) insufficient_data: Action,
    #[serde(default)]
    pub(crate) dedupe: Dedupe,
    #[serde(default)]
    pub(crate) enrich: Enrichers,
    #[serde(default)]
    pub(crate) remediate: Vec<Step>,
    #[serde(default)]
    pub(crate) guardrails: Guardrails,
    #[serde(default)]
    pub(crate) notify: Notify,
    #[serde(default)]
    pub(crate) close: CloseDoc,
    #[serde(default)]
    pub(crate) incident_manager: Option<IncidentManager>,
}
