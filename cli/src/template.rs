//! `template.yaml` read the way CloudFormation would, for the sandbox and the routing tests.
//!
//! The local stack (sandbox.rs) is built from the template itself, so routing is the template's
//! own, never a copy in Rust. Its EventBridge patterns hold intrinsics (`!If` on a threshold
//! parameter, `!Sub` of the stack name), so they are resolved here with the parameters'
//! defaults or overrides. Only what the patterns and names need is supported: `Ref`, `Fn::Sub`,
//! `Fn::If`, `Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`, `Condition`, `Fn::FindInMap`,
//! `Fn::Join`. Anything else is a typed error naming it, never a guess.

use std::collections::BTreeMap;

use serde_json::Value as Json;
use serde_yaml_ng::Value;

/// The template the stack is built from, compiled in so the demo runs from any directory.
pub const TEMPLATE: &str = include_str!("../../template.yaml");

/// The account and region the sandbox pretends to be (moto's defaults).
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template.yaml does not parse: {0}")]
    Parse(String),
    #[error("template.yaml has no parameter {0}")]
    UnknownParameter(String),
    #[error("parameter {name}: `{value}` is not one of {allowed}")]
    NotAllowed {
        name: String,
        value: String,
        allowed: String,
    },
    #[error("template.yaml has no condition {0}")]
    UnknownCondition(String),
    #[error("{at}: {what}")]
    Unsupported { at: String, what: String },
}

/// Where a rule listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleBus {
    /// The account's default bus: AWS services' events.
    Default,
    /// The stack's lifecycle bus.
    Lifecycle,
}

/// One EventBridge rule a function subscribes with, its pattern resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The function's logical id (`CreateFunction` …).
    pub function: String,
    /// The event's logical id under the function (`GuardDutyFinding` …).
    pub event: String,
    pub bus: RuleBus,
    pub pattern: Json,
}

/// The template with a parameter set.
#[derive(Debug, Clone)]
pub struct Template {
    doc: Value,
    parameters: BTreeMap<String, String>,
    stack_name: String,
}

impl Template {
    /// The compiled-in template.yaml, parameters at their defaults.
    pub fn embedded() -> Result<Template, TemplateError> {
        Template::parse(TEMPLATE)
    }

    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let doc: Value =
            serde_yaml_ng::from_str(text).map_err(|e| TemplateError::Parse(e.to_string()))?;
        let mut parameters = BTreeMap::new();
        if let Some(params) = doc["Parameters"].as_mapping() {
            for (name, spec) in params {
                if let (Some(name), Some(default)) = (name.as_str(), scalar(&spec["Default"])) {
                    parameters.insert(name.to_owned(), default);
                }
            }
        }
        Ok(Template {
            doc,
            parameters,
            stack_name: "firebreak".to_owned(),
        })
    }

    /// The same template deployed with `name` = `value`, checked against the parameter's
    /// `AllowedValues` as CloudFormation would.
    pub fn with_parameter(mut self, name: &str, value: &str) -> Result<Template, TemplateError> {
        let spec = &self.doc["Parameters"][name];
        if spec.is_null() {
            return Err(TemplateError::UnknownParameter(name.to_owned()));
        }
        if let Some(allowed) = spec["AllowedValues"].as_sequence() {
            let allowed: Vec<String> = allowed.iter().filter_map(scalar).collect();
            if !allowed.iter().any(|a| a == value) {
                return Err(TemplateError::NotAllowed {
                    name: name.to_owned(),
                    value: value.to_owned(),
                    allowed: allowed.join(", "),
                });
            }
        }
        self.parameters.insert(name.to_owned(), value.to_owned());
        Ok(self)
    }

    /// The same template deployed as stack `name` (`AWS::StackName`).
    pub fn with_stack_name(mut self, name: &str) -> Template {
        name.clone_into(&mut self.stack_name);
        self
    }

    pub fn stack_name(&self) -> &str {
        &self.stack_name
    }

    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }

    /// The raw resource `logical_id`, intrinsics unresolved.
    pub fn resource(&self, logical_id: &str) -> &Value {
        &self.doc["Resources"][logical_id]
    }

    /// The logical ids of the resources of CloudFormation type `kind`, in template order.
    pub fn resources_of_type(&self, kind: &str) -> Vec<&str> {
        self.doc["Resources"]
            .as_mapping()
            .map(|all| {
                all.iter()
                    .filter(|(_, r)| r["Type"].as_str() == Some(kind))
                    .filter_map(|(name, _)| name.as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether condition `name` holds with this parameter set.
    pub fn condition(&self, name: &str) -> Result<bool, TemplateError> {
        let body = &self.doc["Conditions"][name];
        if body.is_null() {
            return Err(TemplateError::UnknownCondition(name.to_owned()));
        }
        self.truth(body, &format!("Conditions.{name}"))
    }

    /// Every EventBridge rule of every function, patterns resolved. Rules of a function whose
    /// `Condition` is false are left out, as CloudFormation would.
    pub fn rules(&self) -> Result<Vec<Rule>, TemplateError> {
        let mut rules = Vec::new();
        let Some(resources) = self.doc["Resources"].as_mapping() else {
            return Err(TemplateError::Parse("Resources is not a mapping".into()));
        };
        for (name, resource) in resources {
            let Some(name) = name.as_str() else { continue };
            if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
                continue;
            }
            if let Some(cond) = resource["Condition"].as_str()
                && !self.condition(cond)?
            {
                continue;
            }
            let Some(events) = resource["Properties"]["Events"].as_mapping() else {
                continue;
            };
            for (event, spec) in events {
                if spec["Type"].as_str() != Some("EventBridgeRule") {
                    continue;
                }
                let event = event.as_str().unwrap_or("rule").to_owned();
                let at = format!("{name}.Events.{event}");
                let props = &spec["Properties"];
                let bus = match &props["EventBusName"] {
                    Value::Null => RuleBus::Default,
                    v => match self.resolve(v, &format!("{at}.EventBusName"))? {
                        Json::String(s) if s == "LifecycleBus" => RuleBus::Lifecycle,
                        Json::String(s) if s == "default" => RuleBus::Default,
                        other => {
                            return Err(TemplateError::Unsupported {
                                at,
                                what: format!(
                                    "rule on bus {other}, neither default nor LifecycleBus"
                                ),
                            });
                        }
                    },
                };
                let pattern = self.resolve(&props["Pattern"], &format!("{at}.Pattern"))?;
                rules.push(Rule {
                    function: name.to_owned(),
                    event,
                    bus,
                    pattern,
                });
            }
        }
        Ok(rules)
    }

    /// `v` with its intrinsics evaluated. A `Ref` to a resource yields the resource's logical
    /// id, which is how the sandbox knows which of its own resources is meant.
    pub fn resolve(&self, v: &Value, at: &str) -> Result<Json, TemplateError> {
        Ok(self.eval(v, at)?.unwrap_or(Json::Null))
    }

    /// `None` is `AWS::NoValue`: the key or item disappears.
    fn eval(&self, v: &Value, at: &str) -> Result<Option<Json>, TemplateError> {
        if let Some((name, arg)) = intrinsic(v) {
            return self.intrinsic(&name, arg, at);
        }
        Ok(Some(match v {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => {
                serde_json::to_value(n).map_err(|e| TemplateError::Parse(e.to_string()))?
            }
            Value::String(s) => Json::String(s.clone()),
            Value::Sequence(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    if let Some(x) = self.eval(item, &format!("{at}[{i}]"))? {
                        out.push(x);
                    }
                }
                Json::Array(out)
            }
            Value::Mapping(map) => {
                let mut out = serde_json::Map::new();
                for (k, item) in map {
                    let key = scalar(k).ok_or_else(|| TemplateError::Unsupported {
                        at: at.to_owned(),
                        what: "a non-scalar key".into(),
                    })?;
                    if let Some(x) = self.eval(item, &format!("{at}.{key}"))? {
                        out.insert(key, x);
                    }
                }
                Json::Object(out)
            }
            Value::Tagged(t) => {
                return Err(TemplateError::Unsupported {
                    at: at.to_owned(),
                    what: format!("tag {}", t.tag),
                });
            }
        }))
    }

    fn intrinsic(&self, name: &str, arg: &Value, at: &str) -> Result<Option<Json>, TemplateError> {
        let here = format!("{at}.{name}");
        match name {
            "Ref" => {
                let target = self.string(arg, &here)?;
                Ok(self.reference(&target).map(Json::String))
            }
            "Fn::Sub" => {
                let (text, vars) = match arg {
                    Value::Sequence(parts) if parts.len() == 2 => {
                        (self.string(&parts[0], &here)?, Some(&parts[1]))
                    }
                    _ => (self.string(arg, &here)?, None),
                };
                self.substitute(&text, vars, &here)
                    .map(|s| Some(Json::String(s)))
            }
            "Fn::If" => {
                let Some([cond, yes, no]) = arg.as_sequence().and_then(|s| s.get(0..3)) else {
                    return Err(unsupported(&here, "Fn::If needs [condition, then, else]"));
                };
                let cond = self.string(cond, &here)?;
                if self.condition(&cond)? {
                    self.eval(yes, &here)
                } else {
                    self.eval(no, &here)
                }
            }
            "Fn::Equals" | "Fn::Not" | "Fn::And" | "Fn::Or" | "Condition" => {
                let mut wrapped = serde_yaml_ng::Mapping::new();
                wrapped.insert(Value::String(name.to_owned()), arg.clone());
                Ok(Some(Json::Bool(self.truth(&Value::Mapping(wrapped), at)?)))
            }
            "Fn::FindInMap" => {
                let Some(keys) = arg.as_sequence().filter(|s| s.len() == 3) else {
                    return Err(unsupported(&here, "Fn::FindInMap needs [map, key, key]"));
                };
                let mut node = &self.doc["Mappings"];
                for key in keys {
                    let key = self.string(key, &here)?;
                    node = &node[key.as_str()];
                }
                if node.is_null() {
                    return Err(unsupported(&here, "no such mapping entry"));
                }
                self.eval(node, &here)
            }
            "Fn::Join" => {
                let Some([sep, items]) = arg.as_sequence().and_then(|s| s.get(0..2)) else {
                    return Err(unsupported(&here, "Fn::Join needs [separator, list]"));
                };
                let sep = self.string(sep, &here)?;
                let items = match self.resolve(items, &here)? {
                    Json::Array(items) => items,
                    _ => return Err(unsupported(&here, "Fn::Join's list is not a list")),
                };
                let parts: Vec<String> = items
                    .iter()
                    .map(|i| match i {
                        Json::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                Ok(Some(Json::String(parts.join(&sep))))
            }
            other => Err(unsupported(at, &format!("intrinsic {other}"))),
        }
    }

    fn truth(&self, v: &Value, at: &str) -> Result<bool, TemplateError> {
        let Some((name, arg)) = intrinsic(v) else {
            return Err(unsupported(
                at,
                "a condition that is not a condition function",
            ));
        };
        let here = format!("{at}.{name}");
        let list = |n: usize| {
            arg.as_sequence()
                .filter(|s| n == 0 || s.len() == n)
                .ok_or_else(|| unsupported(&here, "wrong arguments"))
        };
        match name.as_str() {
            "Fn::Equals" => {
                let pair = list(2)?;
                Ok(self.resolve(&pair[0], &here)? == self.resolve(&pair[1], &here)?)
            }
            "Fn::Not" => Ok(!self.truth(&list(1)?[0], &here)?),
            "Fn::And" => {
                for c in list(0)? {
                    if !self.truth(c, &here)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            "Fn::Or" => {
                for c in list(0)? {
                    if self.truth(c, &here)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            "Condition" => self.condition(&self.string(arg, &here)?),
            other => Err(unsupported(at, &format!("condition function {other}"))),
        }
    }

    fn reference(&self, target: &str) -> Option<String> {
        match target {
            "AWS::NoValue" => None,
            "AWS::StackName" => Some(self.stack_name.clone()),
            "AWS::Region" => Some(REGION.to_owned()),
            "AWS::AccountId" => Some(ACCOUNT.to_owned()),
            "AWS::Partition" => Some("aws".to_owned()),
            "AWS::URLSuffix" => Some("amazonaws.com".to_owned()),
            other => Some(
                self.parameters
                    .get(other)
                    .cloned()
                    .unwrap_or_else(|| other.to_owned()),
            ),
        }
    }

    fn substitute(
        &self,
        text: &str,
        vars: Option<&Value>,
        at: &str,
    ) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            // `${!Literal}` is CloudFormation's escape for a literal `${Literal}`.
            if let Some(lit) = after.strip_prefix('!') {
                out.push_str("${");
                rest = lit;
                continue;
            }
            let Some(end) = after.find('}') else {
                return Err(unsupported(at, "unterminated ${ in Fn::Sub"));
            };
            let name = &after[..end];
            let value = match vars.map(|v| &v[name]).filter(|v| !v.is_null()) {
                Some(v) => match self.resolve(v, at)? {
                    Json::String(s) => s,
                    other => other.to_string(),
                },
                // `${Resource.Attr}` names an attribute; its logical form is enough locally.
                None => self.reference(name).unwrap_or_default(),
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn string(&self, v: &Value, at: &str) -> Result<String, TemplateError> {
        match self.resolve(v, at)? {
            Json::String(s) => Ok(s),
            Json::Number(n) => Ok(n.to_string()),
            Json::Bool(b) => Ok(b.to_string()),
            other => Err(unsupported(
                at,
                &format!("expected a string, found {other}"),
            )),
        }
    }
}

fn unsupported(at: &str, what: &str) -> TemplateError {
    TemplateError::Unsupported {
        at: at.to_owned(),
        what: what.to_owned(),
    }
}

/// A scalar as CloudFormation reads it: parameters and keys are strings.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The intrinsic `v` is, in either form: the short tag (`!If [...]`) or the long mapping
/// (`{"Fn::If": [...]}`). Tags are named as their long form (`!GetAtt` → `Fn::GetAtt`).
fn intrinsic(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => {
            let tag = t.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let long = match tag {
                "Ref" | "Condition" => tag.to_owned(),
                other => format!("Fn::{other}"),
            };
            Some((long, &t.value))
        }
        Value::Mapping(m) if m.len() == 1 => {
            let (k, arg) = m.iter().next()?;
            let k = k.as_str()?;
            (k == "Ref" || k == "Condition" || k.starts_with("Fn::")).then(|| (k.to_owned(), arg))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"
Parameters:
  Threshold:
    Type: String
    Default: LOW
    AllowedValues: [LOW, HIGH]
  Days:
    Type: Number
    Default: 7
Conditions:
  IsHigh: !Equals [!Ref Threshold, HIGH]
  NotHigh: !Not [!Condition IsHigh]
  Both: !And [!Condition NotHigh, !Equals [!Ref Days, "7"]]
Resources:
  Bus:
    Type: AWS::Events::EventBus
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Findings:
          Type: EventBridgeRule
          Properties:
            Pattern:
              detail:
                severity: !If [IsHigh, [{numeric: [">=", 7]}], [{numeric: [">=", 1]}]]
                name: [{"anything-but": {prefix: !Sub "fb-${AWS::StackName}-"}}]
                gone: !If [IsHigh, [x], !Ref AWS::NoValue]
        Lifecycle:
          Type: EventBridgeRule
          Properties:
            EventBusName: !Ref LifecycleBus
            Pattern: {"Fn::If": [Both, {source: [a]}, {source: [b]}]}
        Timer:
          Type: Schedule
"#;

    #[test]
    fn patterns_resolve_with_the_parameters_defaults() {
        let t = Template::parse(DOC).expect("parses");
        let rules = t.rules().expect("rules");
        assert_eq!(rules.len(), 2, "the schedule is not a rule on a bus");
        assert_eq!(rules[0].bus, RuleBus::Default);
        assert_eq!(
            rules[0].pattern,
            serde_json::json!({"detail": {
                "severity": [{"numeric": [">=", 1]}],
                "name": [{"anything-but": {"prefix": "fb-firebreak-"}}],
            }})
        );
        assert_eq!(rules[1].bus, RuleBus::Lifecycle);
        assert_eq!(rules[1].pattern, serde_json::json!({"source": ["a"]}));
    }

    #[test]
    fn a_parameter_override_and_stack_name_change_the_patterns() {
        let t = Template::parse(DOC)
            .expect("parses")
            .with_parameter("Threshold", "HIGH")
            .expect("allowed")
            .with_stack_name("prod");
        let rules = t.rules().expect("rules");
        assert_eq!(rules[0].pattern["detail"]["severity"][0]["numeric"][1], 7);
        assert_eq!(rules[0].pattern["detail"]["gone"], serde_json::json!(["x"]));
        assert_eq!(
            rules[0].pattern["detail"]["name"][0]["anything-but"]["prefix"],
            "fb-prod-"
        );
        assert_eq!(rules[1].pattern, serde_json::json!({"source": ["b"]}));
    }

    #[test]
    fn a_value_outside_allowed_values_or_an_unknown_parameter_is_refused() {
        let t = Template::parse(DOC).expect("parses");
        assert!(matches!(
            t.clone().with_parameter("Threshold", "MEDIUM"),
            Err(TemplateError::NotAllowed { .. })
        ));
        assert!(matches!(
            t.with_parameter("Nope", "x"),
            Err(TemplateError::UnknownParameter(_))
        ));
    }

    #[test]
    fn an_unsupported_intrinsic_is_a_typed_error_naming_where() {
        let t =
            Template::parse("Resources:\n  X:\n    Type: T\n    Properties:\n      A: !Base64 x\n")
                .expect("parses");
        let err = t
            .resolve(&t.resource("X")["Properties"], "X")
            .expect_err("Base64 is not supported");
        assert!(err.to_string().contains("Fn::Base64"), "{err}");
    }

    #[test]
    fn the_embedded_template_yields_a_rule_for_every_stage_that_listens() {
        let t = Template::embedded().expect("template.yaml parses");
        let rules = t.rules().expect("every pattern resolves");
        for f in [
            "CreateFunction",
            "EnrichFunction",
            "RemediateFunction",
            "NotifyFunction",
            "CloseFunction",
        ] {
            assert!(rules.iter().any(|r| r.function == f), "{f} has no rule");
        }
    }
}
