//! The action catalog: every remediation action and enricher a playbook may name, with the
//! parameters each action takes.
//!
//! This module is the single list the playbook loader validates against and the documentation
//! (docs/playbooks.md) describes. The remediate and enrich stages implement the entries; an
//! entry that is not here cannot appear in a deployed playbook, so a typo fails at
//! `firebreak validate` time instead of at 3 a.m. during an incident.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::playbook::de::Text;
use crate::playbook::{Duration, Template};
use crate::signal::ResourceKind;

/// One remediation action.
#[derive(Debug, PartialEq, Eq)]
pub struct ActionSpec {
    pub name: &'static str,
    /// One line, for `firebreak validate`, the docs and approval requests.
    pub description: &'static str,
    /// The resource kinds the action changes. Empty means it is not tied to one kind: it acts on
    /// the incident itself (`notify`, `escalate`) or on whatever its parameters name.
    pub targets: &'static [ResourceKind],
    /// Whether the action calls AWS to create, change or stop something. Guardrails (mode,
    /// protected tag, rate limit) apply to mutating actions only; `notify` and `escalate` only
    /// talk to people, so they always run.
    pub mutating: bool,
    pub params: &'static [ParamSpec],
}

impl ActionSpec {
    pub fn param(&self, name: &str) -> Option<&'static ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }

    pub fn acts_on(&self, kind: ResourceKind) -> bool {
        self.targets.contains(&kind)
    }
}

impl fmt::Display for ActionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// One parameter an action accepts under `with:`.
#[derive(Debug, PartialEq, Eq)]
pub struct ParamSpec {
    pub name: &'static str,
    pub ty: ParamType,
    pub required: bool,
    pub description: &'static str,
}

/// The shapes a parameter value may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Bool,
    String,
    /// A playbook duration such as `15m` (see [`Duration`]).
    Duration,
    /// A map of strings to strings (tags).
    StringMap,
    /// SSM document parameters: a map of names to a string or a list of strings, each of which
    /// may hold template placeholders such as `{resource.ec2_instance}`.
    SsmParameters,
}

impl ParamType {
    /// How the type reads in an error message or the docs.
    pub fn describe(self) -> &'static str {
        match self {
            ParamType::Bool => "a boolean (true or false)",
            ParamType::String => "a string",
            ParamType::Duration => "a duration such as 30s, 15m or 1h30m",
            ParamType::StringMap => "a map of strings to strings",
            ParamType::SsmParameters => {
                "a map of parameter names to a string or a list of strings (placeholders allowed)"
            }
        }
    }
}

const EC2: &[ResourceKind] = &[ResourceKind::Ec2Instance];
const NOTHING: &[ResourceKind] = &[];
const NO_PARAMS: &[ParamSpec] = &[];

const SSM_DOCUMENT: ParamSpec = ParamSpec {
    name: "document",
    ty: ParamType::String,
    required: true,
    description: "the SSM document name or ARN",
};

const SSM_PARAMETERS: ParamSpec = ParamSpec {
    name: "parameters",
    ty: ParamType::SsmParameters,
    required: false,
    description: "the document's parameters; values may use template placeholders",
};

/// Every remediation action, in the order the docs list them.
pub const ACTIONS: &[ActionSpec] = &[
    ActionSpec {
        name: "ec2.snapshot",
        description: "Snapshots every EBS volume attached to the instance, to keep the evidence; \
                      the instance itself is not changed.",
        targets: EC2,
        mutating: true,
        params: &[ParamSpec {
            name: "copy_tags",
            ty: ParamType::Bool,
            required: false,
            description: "copy the instance's tags onto the snapshots",
        }],
    },
    ActionSpec {
        name: "ec2.isolate",
        description: "Moves the instance into a quarantine security group that allows no \
                      traffic, so it can be examined without reaching anything.",
        targets: EC2,
        mutating: true,
        params: &[
            ParamSpec {
                name: "detach_from_asg",
                ty: ParamType::Bool,
                required: false,
                description: "detach it from its Auto Scaling group first, so the group does \
                              not replace and terminate it",
            },
            ParamSpec {
                name: "protect",
                ty: ParamType::Bool,
                required: false,
                description: "turn on termination and stop protection, so the evidence survives",
            },
        ],
    },
    ActionSpec {
        name: "ec2.tag",
        description: "Adds tags to the instance, e.g. to mark it as under investigation.",
        targets: EC2,
        mutating: true,
        params: &[ParamSpec {
            name: "tags",
            ty: ParamType::StringMap,
            required: true,
            description: "the tags to add, key to value",
        }],
    },
    ActionSpec {
        name: "ec2.stop",
        description: "Stops the instance; EBS volumes are kept, memory is lost.",
        targets: EC2,
        mutating: true,
        params: NO_PARAMS,
    },
    ActionSpec {
        name: "ec2.reboot",
        description: "Reboots the instance.",
        targets: EC2,
        mutating: true,
        params: NO_PARAMS,
    },
    ActionSpec {
        name: "ssm.automation",
        description: "Starts an SSM Automation runbook and waits for it to finish.",
        targets: NOTHING,
        mutating: true,
        params: &[
            SSM_DOCUMENT,
            SSM_PARAMETERS,
            ParamSpec {
                name: "timeout",
                ty: ParamType::Duration,
                required: false,
                description: "how long to wait for the execution before calling the step failed",
            },
        ],
    },
    ActionSpec {
        name: "ssm.run_command",
        description: "Runs an SSM Run Command document on the instance.",
        targets: EC2,
        mutating: true,
        params: &[SSM_DOCUMENT, SSM_PARAMETERS],
    },
    ActionSpec {
        name: "iam.deactivate_access_key",
        description: "Sets the IAM access key to Inactive; it is not deleted, so it can be \
                      turned back on.",
        targets: &[ResourceKind::AccessKey],
        mutating: true,
        params: NO_PARAMS,
    },
    ActionSpec {
        name: "s3.block_public_access",
        description: "Turns on all four S3 Block Public Access settings on the bucket.",
        targets: &[ResourceKind::S3Bucket],
        mutating: true,
        params: NO_PARAMS,
    },
    ActionSpec {
        name: "notify",
        description: "Sends a message about the incident to its notification route, at this \
                      point in the steps.",
        targets: NOTHING,
        mutating: false,
        params: &[ParamSpec {
            name: "message",
            ty: ParamType::String,
            required: false,
            description: "the text to send; defaults to a summary of the steps so far",
        }],
    },
    ActionSpec {
        name: "escalate",
        description: "Escalates the incident now, to the escalation route.",
        targets: NOTHING,
        mutating: false,
        params: &[ParamSpec {
            name: "reason",
            ty: ParamType::String,
            required: false,
            description: "why, in one line, for the person paged",
        }],
    },
];

/// The action called `name`.
pub fn action(name: &str) -> Option<&'static ActionSpec> {
    ACTIONS.iter().find(|a| a.name == name)
}

/// One enricher: a source of context gathered before remediation and attached to the incident.
#[derive(Debug, PartialEq, Eq)]
pub struct EnricherSpec {
    pub name: &'static str,
    pub description: &'static str,
}

impl fmt::Display for EnricherSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// Every enricher, in the order the docs list them.
pub const ENRICHERS: &[EnricherSpec] = &[
    EnricherSpec {
        name: "cloudwatch.alarm",
        description: "The alarm's configuration and its datapoints around the state change.",
    },
    EnricherSpec {
        name: "cloudwatch.alarm_history",
        description: "The alarm's recent state changes, to tell a new problem from a flapping one.",
    },
    EnricherSpec {
        name: "ec2.instance",
        description: "The instance's tags, owner, VPC, subnet, security groups, instance \
                      profile and volumes.",
    },
    EnricherSpec {
        name: "cloudtrail.recent_changes",
        description: "The last 24 hours of changes to the signal's resources, from CloudTrail.",
    },
    EnricherSpec {
        name: "incidents.related",
        description: "Other open incidents on the same resources.",
    },
];

/// The enricher called `name`.
pub fn enricher(name: &str) -> Option<&'static EnricherSpec> {
    ENRICHERS.iter().find(|e| e.name == name)
}

/// A parameter value, checked against its [`ParamSpec`].
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    Bool(bool),
    String(String),
    Duration(Duration),
    StringMap(BTreeMap<String, String>),
    /// Each SSM parameter as the list of strings the SSM APIs take; a single string in the
    /// playbook becomes a list of one.
    SsmParameters(BTreeMap<String, Vec<Template>>),
}

/// An action's checked parameters, keyed by the catalog's parameter names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params(BTreeMap<&'static str, ParamValue>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.0.get(name)
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.get(name) {
            Some(ParamValue::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    pub fn string(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Some(ParamValue::String(s)) => Some(s),
            _ => None,
        }
    }

    pub fn duration(&self, name: &str) -> Option<Duration> {
        match self.get(name) {
            Some(ParamValue::Duration(d)) => Some(*d),
            _ => None,
        }
    }

    pub fn string_map(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        match self.get(name) {
            Some(ParamValue::StringMap(m)) => Some(m),
            _ => None,
        }
    }

    pub fn ssm_parameters(&self, name: &str) -> Option<&BTreeMap<String, Vec<Template>>> {
        match self.get(name) {
            Some(ParamValue::SsmParameters(m)) => Some(m),
            _ => None,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &ParamValue)> {
        self.0.iter().map(|(k, v)| (*k, v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why an action's parameters were refused: an unknown parameter, a value of the wrong type, or
/// a required parameter that is missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(String);

/// Checks `params` (the step's `with:` mapping) against `spec` and returns them typed.
pub fn parse_params(
    spec: &'static ActionSpec,
    params: &serde_yaml_ng::Mapping,
) -> Result<Params, ParamError> {
    let params = params
        .iter()
        .map(|(k, v)| {
            let is_bool = k
                .as_str()
                .and_then(|k| spec.param(k))
                .is_some_and(|p| p.ty == ParamType::Bool);
            let v = if is_bool {
                v.clone()
            } else {
                scalars_as_text(v)
            };
            (k.clone(), v)
        })
        .collect();
    ParamsSeed { spec }
        .deserialize(serde_yaml_ng::Value::Mapping(params))
        .map_err(|e| ParamError(e.to_string()))
}

/// A parsed `Value` has already turned `42` into a number, and its deserializer will not hand a
/// number to a string visitor; read from YAML text the same scalar arrives as its text. Turning
/// numbers and booleans back into text gives both paths the same result.
fn scalars_as_text(value: &serde_yaml_ng::Value) -> serde_yaml_ng::Value {
    use serde_yaml_ng::Value;
    match value {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Sequence(items) => Value::Sequence(items.iter().map(scalars_as_text).collect()),
        Value::Mapping(map) => Value::Mapping(
            map.iter()
                .map(|(k, v)| (scalars_as_text(k), scalars_as_text(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Checks `params` against `spec`: no unknown parameter, every value of its declared type,
/// every required parameter present.
pub fn validate_params(
    spec: &'static ActionSpec,
    params: &serde_yaml_ng::Mapping,
) -> Result<(), ParamError> {
    parse_params(spec, params).map(|_| ())
}

/// Deserializes a `with:` mapping for one action. The playbook loader drives it straight from
/// the YAML parser, so each error carries the line of the offending key or value; it is also
/// what [`parse_params`] runs over an already-parsed mapping.
pub(crate) struct ParamsSeed {
    pub(crate) spec: &'static ActionSpec,
}

impl<'de> DeserializeSeed<'de> for ParamsSeed {
    type Value = Params;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Params, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ParamsSeed {
    type Value = Params;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a mapping of parameters for {}", self.spec.name)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Params, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(param) = map.next_key_seed(ParamNameSeed { spec: self.spec })? {
            if out.contains_key(param.name) {
                return Err(de::Error::custom(format_args!(
                    "parameter `{}` is given twice",
                    param.name
                )));
            }
            let value = map.next_value_seed(ParamValueSeed { param })?;
            out.insert(param.name, value);
        }
        if let Some(missing) = self
            .spec
            .params
            .iter()
            .find(|p| p.required && !out.contains_key(p.name))
        {
            return Err(de::Error::custom(format_args!(
                "{} needs parameter `{}` ({}) under `with:`",
                self.spec.name,
                missing.name,
                missing.ty.describe()
            )));
        }
        Ok(Params(out))
    }
}

struct ParamNameSeed {
    spec: &'static ActionSpec,
}

impl<'de> DeserializeSeed<'de> for ParamNameSeed {
    type Value = &'static ParamSpec;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for ParamNameSeed {
    type Value = &'static ParamSpec;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a parameter name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        self.spec.param(name).ok_or_else(|| {
            if self.spec.params.is_empty() {
                E::custom(format_args!(
                    "unknown parameter `{name}`: {} takes no parameters",
                    self.spec.name
                ))
            } else {
                let known: Vec<&str> = self.spec.params.iter().map(|p| p.name).collect();
                E::custom(format_args!(
                    "unknown parameter `{name}` for {} (accepted: {})",
                    self.spec.name,
                    known.join(", ")
                ))
            }
        })
    }
}

struct ParamValueSeed {
    param: &'static ParamSpec,
}

impl<'de> DeserializeSeed<'de> for ParamValueSeed {
    type Value = ParamValue;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ParamValue, D::Error> {
        match self.param.ty {
            ParamType::Bool => d.deserialize_bool(BoolVisitor).map(ParamValue::Bool),
            ParamType::String => d.deserialize_str(Text).map(ParamValue::String),
            ParamType::Duration => {
                <Duration as serde::Deserialize>::deserialize(d).map(ParamValue::Duration)
            }
            ParamType::StringMap => d
                .deserialize_map(StringMapVisitor)
                .map(ParamValue::StringMap),
            ParamType::SsmParameters => d
                .deserialize_map(SsmParametersVisitor)
                .map(ParamValue::SsmParameters),
        }
    }
}

struct BoolVisitor;

impl Visitor<'_> for BoolVisitor {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(ParamType::Bool.describe())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        Ok(v)
    }
}

struct StringMapVisitor;

impl<'de> Visitor<'de> for StringMapVisitor {
    type Value = BTreeMap<String, String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(ParamType::StringMap.describe())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(key) = map.next_key_seed(Text)? {
            let value = map.next_value_seed(Text)?;
            if out.insert(key, value).is_some() {
                return Err(de::Error::custom("a key is given twice"));
            }
        }
        if out.is_empty() {
            return Err(de::Error::custom("must not be empty"));
        }
        Ok(out)
    }
}

struct SsmParametersVisitor;

impl<'de> Visitor<'de> for SsmParametersVisitor {
    type Value = BTreeMap<String, Vec<Template>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(ParamType::SsmParameters.describe())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(key) = map.next_key_seed(Text)? {
            let values = map.next_value_seed(SsmValueSeed)?;
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "SSM parameter `{key}` is given twice"
                )));
            }
            out.insert(key, values);
        }
        Ok(out)
    }
}

struct SsmValueSeed;

impl<'de> DeserializeSeed<'de> for SsmValueSeed {
    type Value = Vec<Template>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SsmValueSeed {
    type Value = Vec<Template>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or a list of strings")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        template(v).map(|t| vec![t])
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.visit_str(if v { "true" } else { "false" })
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        // YAML has already turned `1.10` into 1.1; quoting keeps the text the user meant.
        Err(E::custom(
            "write decimal numbers in quotes (e.g. \"1.10\") so their exact text is kept",
        ))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(t) = seq.next_element_seed(TemplateSeed)? {
            out.push(t);
        }
        if out.is_empty() {
            return Err(de::Error::custom("the list must not be empty"));
        }
        Ok(out)
    }
}

struct TemplateSeed;

impl<'de> DeserializeSeed<'de> for TemplateSeed {
    type Value = Template;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Template, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for TemplateSeed {
    type Value = Template;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Template, E> {
        template(v)
    }
}

fn template<E: de::Error>(v: &str) -> Result<Template, E> {
    Template::parse(v).map_err(E::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(yaml: &str) -> serde_yaml_ng::Mapping {
        serde_yaml_ng::from_str(yaml).expect("test mapping is valid YAML")
    }

    fn spec(name: &str) -> &'static ActionSpec {
        action(name).expect("action is in the catalog")
    }

    #[test]
    fn every_action_the_playbooks_may_name_is_in_the_catalog() {
        for name in [
            "ec2.snapshot",
            "ec2.isolate",
            "ec2.tag",
            "ec2.stop",
            "ec2.reboot",
            "ssm.automation",
            "ssm.run_command",
            "iam.deactivate_access_key",
            "s3.block_public_access",
            "notify",
            "escalate",
        ] {
            assert!(action(name).is_some(), "{name} missing");
        }
        assert_eq!(ACTIONS.len(), 11);
        assert!(action("ec2.nuke").is_none());
    }

    #[test]
    fn catalog_names_are_unique() {
        for (i, a) in ACTIONS.iter().enumerate() {
            assert!(
                ACTIONS[i + 1..].iter().all(|b| b.name != a.name),
                "{}",
                a.name
            );
            for (j, p) in a.params.iter().enumerate() {
                assert!(a.params[j + 1..].iter().all(|q| q.name != p.name));
            }
        }
        for (i, e) in ENRICHERS.iter().enumerate() {
            assert!(
                ENRICHERS[i + 1..].iter().all(|f| f.name != e.name),
                "{}",
                e.name
            );
        }
    }

    #[test]
    fn only_notify_and_escalate_leave_aws_untouched() {
        let quiet: Vec<&str> = ACTIONS
            .iter()
            .filter(|a| !a.mutating)
            .map(|a| a.name)
            .collect();
        assert_eq!(quiet, ["notify", "escalate"]);
    }

    #[test]
    fn every_enricher_is_listed() {
        for name in [
            "cloudwatch.alarm",
            "cloudwatch.alarm_history",
            "ec2.instance",
            "cloudtrail.recent_changes",
            "incidents.related",
        ] {
            assert!(enricher(name).is_some(), "{name} missing");
        }
        assert!(enricher("ec2.instances").is_none());
    }

    #[test]
    fn accepts_valid_parameters_and_types_them() {
        let params = parse_params(
            spec("ec2.isolate"),
            &mapping("{detach_from_asg: true, protect: false}"),
        )
        .expect("valid");
        assert_eq!(params.bool("detach_from_asg"), Some(true));
        assert_eq!(params.bool("protect"), Some(false));

        let params = parse_params(
            spec("ec2.tag"),
            &mapping("tags: {Status: quarantined, N: 42}"),
        )
        .expect("valid");
        let tags = params.string_map("tags").expect("tags");
        assert_eq!(tags["Status"], "quarantined");
        assert_eq!(tags["N"], "42");
    }

    #[test]
    fn refuses_an_unknown_parameter_naming_the_accepted_ones() {
        let err = validate_params(spec("ec2.isolate"), &mapping("{x: 1}")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown parameter `x` for ec2.isolate (accepted: detach_from_asg, protect)"
        );
        let err = validate_params(spec("ec2.stop"), &mapping("{force: true}")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown parameter `force`: ec2.stop takes no parameters"
        );
    }

    #[test]
    fn refuses_a_value_of_the_wrong_type() {
        let err = validate_params(spec("ec2.isolate"), &mapping("{protect: yes}")).unwrap_err();
        assert!(err.to_string().contains("expected a boolean"), "{err}");
        let err = validate_params(spec("ec2.tag"), &mapping("{tags: [a, b]}")).unwrap_err();
        assert!(
            err.to_string().contains("expected a map of strings"),
            "{err}"
        );
        let err = validate_params(
            spec("ssm.automation"),
            &mapping("{document: D, timeout: 10}"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("`10`: no unit"), "{err}");
    }

    #[test]
    fn refuses_a_missing_required_parameter() {
        let err = validate_params(spec("ssm.automation"), &mapping("{}")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ssm.automation needs parameter `document` (a string) under `with:`"
        );
        assert!(validate_params(spec("ec2.tag"), &serde_yaml_ng::Mapping::new()).is_err());
        assert!(validate_params(spec("ec2.snapshot"), &serde_yaml_ng::Mapping::new()).is_ok());
    }

    #[test]
    fn ssm_parameters_take_a_string_or_a_list_and_check_placeholders() {
        let params = parse_params(
            spec("ssm.automation"),
            &mapping(
                "document: AWS-RestartEC2Instance\n\
                 parameters:\n  InstanceId: ['{resource.ec2_instance}']\n  Note: one\n  Count: 3\n",
            ),
        )
        .expect("valid");
        let p = params.ssm_parameters("parameters").expect("parameters");
        assert_eq!(p["InstanceId"].len(), 1);
        assert_eq!(p["InstanceId"][0].as_str(), "{resource.ec2_instance}");
        assert_eq!(p["Note"][0].as_str(), "one");
        assert_eq!(p["Count"][0].as_str(), "3");

        let err = validate_params(
            spec("ssm.run_command"),
            &mapping("{document: D, parameters: {InstanceIds: ['{resource.ec2}']}}"),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown resource kind `ec2`"),
            "{err}"
        );
    }
}
