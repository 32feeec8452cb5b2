//! Templates over a signal's fields: dedupe keys such as `{source}:{account}:{resource}` and SSM
//! parameter values such as `{resource.ec2_instance}`.
//!
//! Variable names are checked when the playbook loads, so a typo fails validation instead of
//! rendering a key that silently merges unrelated incidents.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

use crate::signal::{ResourceKind, Signal};

/// What [`Template::render`] writes for a variable the signal has no value for. A visible
/// placeholder keeps the key's shape, so two keys that differ only in a missing part still read
/// as different fields.
pub const MISSING: &str = "-";

/// Every template variable with what it renders to, for the docs and for error messages.
pub const VARIABLES: &[(&str, &str)] = &[
    (
        "source",
        "where the signal came from: cloudwatch_alarm, guardduty or security_hub",
    ),
    ("account", "the account id of the affected resources"),
    ("region", "the region of the signal"),
    (
        "kind",
        "the GuardDuty finding type, Security Hub generator id, or alarm kind",
    ),
    ("control_id", "the Security Hub control id, such as S3.8"),
    ("alarm_name", "the CloudWatch alarm's name"),
    ("resource", "the id of the signal's first resource"),
    (
        "resource.<kind>",
        "the id of the signal's first resource of that kind, e.g. {resource.ec2_instance}",
    ),
    (
        "dedupe_key",
        "the signal's own dedupe key (the source's identity for the condition)",
    ),
    ("playbook", "the matched playbook's name"),
];

/// One variable a template may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variable {
    Source,
    Account,
    Region,
    Kind,
    ControlId,
    AlarmName,
    Resource,
    ResourceOf(ResourceKind),
    DedupeKey,
    Playbook,
}

impl Variable {
    fn parse(name: &str) -> Result<Variable, TemplateError> {
        Ok(match name {
            "source" => Variable::Source,
            "account" => Variable::Account,
            "region" => Variable::Region,
            "kind" => Variable::Kind,
            "control_id" => Variable::ControlId,
            "alarm_name" => Variable::AlarmName,
            "resource" => Variable::Resource,
            "dedupe_key" => Variable::DedupeKey,
            "playbook" => Variable::Playbook,
            other => match other.strip_prefix("resource.") {
                Some(kind) => {
                    Variable::ResourceOf(ResourceKind::from_name(kind).ok_or_else(|| {
                        TemplateError::UnknownResourceKind {
                            kind: kind.to_owned(),
                        }
                    })?)
                }
                None => {
                    return Err(TemplateError::UnknownVariable {
                        name: other.to_owned(),
                    });
                }
            },
        })
    }

    /// The variable's value for `signal`; `None` when the signal has none (an empty string
    /// counts as none).
    pub fn value<'a>(self, signal: &'a Signal, playbook: &'a str) -> Option<&'a str> {
        let v = match self {
            Variable::Source => Some(signal.source.as_str()),
            Variable::Account => signal.account.as_deref(),
            Variable::Region => signal.region.as_deref(),
            Variable::Kind => Some(signal.kind.as_str()),
            Variable::ControlId => signal.control_id.as_deref(),
            Variable::AlarmName => signal.alarm_name.as_deref(),
            Variable::Resource => signal.resources.first().map(|r| r.id.as_str()),
            Variable::ResourceOf(kind) => signal
                .resources
                .iter()
                .find(|r| r.kind == kind)
                .map(|r| r.id.as_str()),
            Variable::DedupeKey => Some(signal.dedupe_key.as_str()),
            Variable::Playbook => Some(playbook),
        };
        v.filter(|s| !s.is_empty())
    }
}

impl fmt::Display for Variable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Variable::Source => "source",
            Variable::Account => "account",
            Variable::Region => "region",
            Variable::Kind => "kind",
            Variable::ControlId => "control_id",
            Variable::AlarmName => "alarm_name",
            Variable::Resource => "resource",
            Variable::ResourceOf(kind) => {
                return write!(f, "{{resource.{}}}", kind.as_str());
            }
            Variable::DedupeKey => "dedupe_key",
            Variable::Playbook => "playbook",
        };
        write!(f, "{{{name}}}")
    }
}

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "unknown template variable `{{{name}}}` (known: {})",
        known_variables()
    )]
    UnknownVariable { name: String },
    #[error(
        "unknown resource kind `{kind}` in `{{resource.{kind}}}` (known: {})",
        known_kinds()
    )]
    UnknownResourceKind { kind: String },
    #[error("`{{` without a closing `}}` in `{0}` (write `{{{{` for a literal brace)")]
    Unclosed(String),
    #[error("`}}` without an opening `{{` in `{0}` (write `}}}}` for a literal brace)")]
    Unopened(String),
    #[error("empty `{{}}` in `{0}`")]
    Empty(String),
}

fn known_variables() -> String {
    VARIABLES
        .iter()
        .map(|(name, _)| format!("{{{name}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn known_kinds() -> String {
    ResourceKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A variable the signal has no value for, from [`Template::try_render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the signal has no value for {0}")]
pub struct MissingValue(pub Variable);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(Variable),
}

/// A parsed template. `{{` and `}}` stand for literal braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    parts: Vec<Part>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find(['{', '}']) {
            literal.push_str(&rest[..at]);
            let brace = rest.as_bytes()[at];
            let after = &rest[at + 1..];
            if after.as_bytes().first() == Some(&brace) {
                literal.push(char::from(brace));
                rest = &after[1..];
                continue;
            }
            if brace == b'}' {
                return Err(TemplateError::Unopened(text.to_owned()));
            }
            let end = match after.find(['{', '}']) {
                Some(end) if after.as_bytes()[end] == b'}' => end,
                _ => return Err(TemplateError::Unclosed(text.to_owned())),
            };
            let name = after[..end].trim();
            if name.is_empty() {
                return Err(TemplateError::Empty(text.to_owned()));
            }
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(Part::Variable(Variable::parse(name)?));
            rest = &after[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template {
            text: text.to_owned(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn variables(&self) -> impl Iterator<Item = Variable> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Variable(v) => Some(*v),
            Part::Literal(_) => None,
        })
    }

    /// Renders the template for `signal` under the playbook named `playbook`; a variable the
    /// signal has no value for renders as [`MISSING`].
    pub fn render(&self, signal: &Signal, playbook: &str) -> String {
        let mut out = String::with_capacity(self.text.len() + 32);
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Variable(v) => out.push_str(v.value(signal, playbook).unwrap_or(MISSING)),
            }
        }
        out
    }

    /// Like [`Template::render`], but refuses a missing value: an SSM parameter such as an
    /// instance id must never be sent as `-`.
    pub fn try_render(&self, signal: &Signal, playbook: &str) -> Result<String, MissingValue> {
        let mut out = String::with_capacity(self.text.len() + 32);
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Variable(v) => {
                    out.push_str(v.value(signal, playbook).ok_or(MissingValue(*v))?)
                }
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TemplateVisitor;

        impl Visitor<'_> for TemplateVisitor {
            type Value = Template;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a template string such as \"{source}:{account}:{resource}\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Template, E> {
                Template::parse(v).map_err(E::custom)
            }
        }

        d.deserialize_str(TemplateVisitor)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;

    use super::*;
    use crate::signal::{Action, Resource, Severity, Source};

    fn signal() -> Signal {
        Signal {
            source: Source::Guardduty,
            action: Action::Open,
            severity: Severity::High,
            title: "t".into(),
            kind: "Backdoor:EC2/C&CActivity.B!DNS".into(),
            control_id: None,
            alarm_name: None,
            alarm_state: None,
            resources: vec![
                Resource {
                    kind: ResourceKind::AccessKey,
                    id: "AKIAEXAMPLE".into(),
                },
                Resource {
                    kind: ResourceKind::Ec2Instance,
                    id: "i-0abc".into(),
                },
            ],
            tags: vec![],
            account: Some("123456789012".into()),
            region: Some(String::new()),
            observed_at: Utc::now(),
            count: 1,
            dedupe_key: "guardduty:finding-1".into(),
            raw: Arc::from(""),
        }
    }

    fn render(t: &str) -> String {
        Template::parse(t)
            .expect("valid template")
            .render(&signal(), "pb")
    }

    #[test]
    fn renders_each_variable() {
        assert_eq!(render("{source}:{account}"), "guardduty:123456789012");
        assert_eq!(render("{kind}"), "Backdoor:EC2/C&CActivity.B!DNS");
        assert_eq!(render("{resource}"), "AKIAEXAMPLE");
        assert_eq!(render("{resource.ec2_instance}"), "i-0abc");
        assert_eq!(render("{dedupe_key}/{playbook}"), "guardduty:finding-1/pb");
    }

    #[test]
    fn renders_missing_and_empty_values_as_a_dash() {
        assert_eq!(render("{control_id}|{alarm_name}|{region}"), "-|-|-");
        assert_eq!(render("{resource.s3_bucket}"), "-");
    }

    #[test]
    fn try_render_refuses_a_missing_value() {
        let t = Template::parse("{resource.s3_bucket}").expect("valid");
        assert_eq!(
            t.try_render(&signal(), "pb").unwrap_err().to_string(),
            "the signal has no value for {resource.s3_bucket}"
        );
        let t = Template::parse("{resource.ec2_instance}").expect("valid");
        assert_eq!(t.try_render(&signal(), "pb").as_deref(), Ok("i-0abc"));
    }

    #[test]
    fn doubled_braces_are_literal() {
        assert_eq!(render("{{x}}-{source}"), "{x}-guardduty");
        assert_eq!(render("}}"), "}");
    }

    #[test]
    fn refuses_unknown_variables_listing_the_known_ones() {
        let err = Template::parse("{acount}").unwrap_err().to_string();
        assert!(err.starts_with("unknown template variable `{acount}` (known: {source}"));
        assert!(err.contains("{resource.<kind>}"), "{err}");
        let err = Template::parse("{resource.ec2}").unwrap_err().to_string();
        assert!(
            err.starts_with("unknown resource kind `ec2` in `{resource.ec2}` (known: ec2_instance")
        );
    }

    #[test]
    fn refuses_unbalanced_or_empty_braces() {
        assert!(matches!(
            Template::parse("{source"),
            Err(TemplateError::Unclosed(_))
        ));
        assert!(matches!(
            Template::parse("{a{b}"),
            Err(TemplateError::Unclosed(_))
        ));
        assert!(matches!(
            Template::parse("source}"),
            Err(TemplateError::Unopened(_))
        ));
        assert!(matches!(
            Template::parse("{}"),
            Err(TemplateError::Empty(_))
        ));
    }

    #[test]
    fn lists_the_variables_it_uses() {
        let t = Template::parse("{source}-{resource.ec2_instance}").expect("valid");
        let vars: Vec<String> = t.variables().map(|v| v.to_string()).collect();
        assert_eq!(vars, ["{source}", "{resource.ec2_instance}"]);
    }
}
