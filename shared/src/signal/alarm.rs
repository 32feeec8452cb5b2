//! CloudWatch alarm state changes, from each envelope they arrive in, as signals.
//!
//! The same alarm reaches Firebreak three ways with two vocabularies: the EventBridge `detail` and
//! the Lambda alarm-action `alarmData` (camelCase, configuration with metric queries), and the SNS
//! notification body (PascalCase, a `Trigger` with dimensions as name/value pairs). Both are read
//! into the same few facts, so one alarm yields the same dedupe key, kind and resources however
//! it was delivered.

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::envelope::{
    Ctx, Envelope, Loose, ResourceList, Text, clean_arn, clip, is_account_id, is_region_code,
    parse_as, partition_of, split_arn, str_of, title,
};
use super::{Action, AlarmState, ParseError, ResourceKind, Severity, Signal, Source};

/// What a refusal calls an alarm payload.
pub(super) const WHAT: &str = "CloudWatch alarm";

/// How much of a state reason goes into a title; the full reason stays in `raw`.
const REASON_CHARS: usize = 200;

// ---------------------------------------------------------------------------------------------
// EventBridge `detail` and alarm-action `alarmData` (the same camelCase payload)

/// An EventBridge alarm `detail`, or the alarm-action payload's `alarmData`.
#[derive(Deserialize)]
pub(super) struct AlarmData<'a> {
    #[serde(rename = "alarmName", borrow)]
    alarm_name: Option<Loose<'a>>,
    #[serde(borrow)]
    state: Option<StateData<'a>>,
    #[serde(borrow)]
    configuration: Option<Configuration<'a>>,
    #[serde(borrow)]
    operation: Option<Loose<'a>>,
}

#[derive(Deserialize)]
struct StateData<'a> {
    #[serde(borrow)]
    value: Option<Text<'a>>,
    #[serde(borrow)]
    reason: Option<Loose<'a>>,
    #[serde(borrow)]
    timestamp: Option<Loose<'a>>,
}

#[derive(Deserialize)]
struct Configuration<'a> {
    #[serde(rename = "alarmRule")]
    alarm_rule: Option<IgnoredAny>,
    #[serde(borrow)]
    metrics: Option<Vec<MetricQuery<'a>>>,
    #[serde(borrow)]
    timestamp: Option<Loose<'a>>,
}

#[derive(Deserialize)]
struct MetricQuery<'a> {
    #[serde(borrow)]
    expression: Option<Loose<'a>>,
    #[serde(rename = "metricStat", borrow)]
    metric_stat: Option<MetricStat<'a>>,
}

#[derive(Deserialize)]
struct MetricStat<'a> {
    #[serde(borrow)]
    metric: Option<Metric<'a>>,
}

#[derive(Deserialize)]
struct Metric<'a> {
    #[serde(borrow)]
    dimensions: Option<Dimensions<'a>>,
}

#[derive(Deserialize)]
struct Dimensions<'a> {
    #[serde(rename = "InstanceId", borrow)]
    instance_id: Option<Loose<'a>>,
}

impl Configuration<'_> {
    fn kind(&self) -> &'static str {
        let expressions = || {
            self.metrics
                .iter()
                .flatten()
                .filter_map(|m| str_of(&m.expression))
        };
        let metric_count = self.metrics.as_ref().map_or(0, Vec::len);
        alarm_kind(
            self.alarm_rule.is_some(),
            expressions().any(is_anomaly_band),
            metric_count > 1 || expressions().next().is_some(),
        )
    }

    fn instance_ids(&self) -> impl Iterator<Item = &str> {
        self.metrics
            .iter()
            .flatten()
            .filter_map(|m| m.metric_stat.as_ref()?.metric.as_ref()?.dimensions.as_ref())
            .filter_map(|d| str_of(&d.instance_id))
    }
}

/// An EventBridge "CloudWatch Alarm State Change" event's `detail`.
pub(super) fn from_eventbridge(
    data: &AlarmData<'_>,
    env: &Envelope<'_>,
    ctx: &Ctx,
) -> Result<Vec<Signal>, ParseError> {
    let arn = envelope_alarm_arn(env);
    state_change(data, arn.as_deref(), env, ctx).map(|s| vec![s])
}

/// The payload CloudWatch sends when an alarm invokes a Lambda function directly.
pub(super) fn from_alarm_action(
    data: &AlarmData<'_>,
    alarm_arn: Option<&str>,
    env: &Envelope<'_>,
    ctx: &Ctx,
) -> Result<Vec<Signal>, ParseError> {
    state_change(data, alarm_arn, env, ctx).map(|s| vec![s])
}

fn state_change(
    data: &AlarmData<'_>,
    arn: Option<&str>,
    env: &Envelope<'_>,
    ctx: &Ctx,
) -> Result<Signal, ParseError> {
    let state = data
        .state
        .as_ref()
        .ok_or_else(|| ParseError::malformed(WHAT, "no \"state\""))?;
    let value = state
        .value
        .as_ref()
        .ok_or_else(|| ParseError::malformed(WHAT, "no \"state.value\""))?;
    let facts = Facts {
        name: str_of(&data.alarm_name),
        arn,
        account: None,
        region: None,
        kind: data
            .configuration
            .as_ref()
            .map_or("metric", Configuration::kind),
        instances: instances(data.configuration.iter().flat_map(|c| c.instance_ids())),
    };
    let change = StateChange {
        value: value.as_str(),
        reason: str_of(&state.reason),
        at: str_of(&state.timestamp),
    };
    facts.signal(&change, env, ctx)
}

/// An EventBridge "CloudWatch Alarm Configuration Change" event: the alarm was created, updated
/// or deleted. Nothing happened to what it watches, so the signal is understood and ignored; it
/// keeps the alarm's dedupe key so a playbook could still act on, say, a deleted alarm.
pub(super) fn from_configuration_change(
    data: &AlarmData<'_>,
    env: &Envelope<'_>,
    ctx: &Ctx,
) -> Result<Vec<Signal>, ParseError> {
    let arn = envelope_alarm_arn(env);
    let facts = Facts {
        name: str_of(&data.alarm_name),
        arn: arn.as_deref(),
        account: None,
        region: None,
        kind: data
            .configuration
            .as_ref()
            .map_or("metric", Configuration::kind),
        instances: instances(data.configuration.iter().flat_map(|c| c.instance_ids())),
    };
    let id = facts.identity(env)?;
    let happened = match str_of(&data.operation).map(str::trim) {
        Some("create") => "was created".to_owned(),
        Some("update") => "was updated".to_owned(),
        Some("delete") => "was deleted".to_owned(),
        Some(other) => format!("configuration changed ({})", clip(other, 40)),
        None => "configuration changed".to_owned(),
    };
    let changed_at = data
        .configuration
        .as_ref()
        .and_then(|c| str_of(&c.timestamp));
    Ok(vec![Signal {
        source: Source::CloudwatchAlarm,
        action: Action::Ignore,
        severity: Severity::Info,
        title: title(format!("{} {happened}", id.name)),
        kind: facts.kind.to_owned(),
        control_id: None,
        alarm_name: Some(id.name.clone()),
        alarm_state: None,
        resources: facts.resources(&id.arn),
        tags: Vec::new(),
        account: id.account,
        region: id.region,
        observed_at: env.observed_at(&[changed_at], ctx),
        count: 1,
        dedupe_key: format!("cloudwatch_alarm:{}", id.arn),
        raw: ctx.raw(),
    }])
}

/// EventBridge names the alarm's ARN only in the envelope's `resources`.
fn envelope_alarm_arn(env: &Envelope<'_>) -> Option<String> {
    let resources: Vec<Loose<'_>> = serde_json::from_str(env.resources?.get()).ok()?;
    resources
        .iter()
        .filter_map(Loose::as_str)
        .find(|r| r.contains(":alarm:"))
        .map(str::to_owned)
}

// ---------------------------------------------------------------------------------------------
// SNS notification body

#[derive(Deserialize)]
struct SnsAlarm<'a> {
    #[serde(rename = "AlarmName", borrow)]
    alarm_name: Option<Loose<'a>>,
    #[serde(rename = "AlarmArn", borrow)]
    alarm_arn: Option<Loose<'a>>,
    #[serde(rename = "AWSAccountId", borrow)]
    account_id: Option<Loose<'a>>,
    #[serde(rename = "Region", borrow)]
    region: Option<Loose<'a>>,
    #[serde(rename = "NewStateValue", borrow)]
    new_state_value: Text<'a>,
    #[serde(rename = "NewStateReason", borrow)]
    new_state_reason: Option<Loose<'a>>,
    #[serde(rename = "StateChangeTime", borrow)]
    state_change_time: Option<Loose<'a>>,
    #[serde(rename = "AlarmRule")]
    alarm_rule: Option<IgnoredAny>,
    #[serde(rename = "Trigger", borrow)]
    trigger: Option<Trigger<'a>>,
}

#[derive(Deserialize)]
struct Trigger<'a> {
    #[serde(rename = "Dimensions", borrow)]
    dimensions: Option<Vec<SnsDimension<'a>>>,
    #[serde(rename = "Metrics", borrow)]
    metrics: Option<Vec<SnsMetricQuery<'a>>>,
}

#[derive(Deserialize)]
struct SnsDimension<'a> {
    #[serde(alias = "Name", borrow)]
    name: Option<Loose<'a>>,
    #[serde(alias = "Value", borrow)]
    value: Option<Loose<'a>>,
}

#[derive(Deserialize)]
struct SnsMetricQuery<'a> {
    #[serde(rename = "Expression", borrow)]
    expression: Option<Loose<'a>>,
    #[serde(rename = "MetricStat", borrow)]
    metric_stat: Option<SnsMetricStat<'a>>,
}

#[derive(Deserialize)]
struct SnsMetricStat<'a> {
    #[serde(rename = "Metric", borrow)]
    metric: Option<SnsMetric<'a>>,
}

#[derive(Deserialize)]
struct SnsMetric<'a> {
    #[serde(rename = "Dimensions", borrow)]
    dimensions: Option<Vec<SnsDimension<'a>>>,
}

impl Trigger<'_> {
    fn kind(&self) -> &'static str {
        let expressions = || {
            self.metrics
                .iter()
                .flatten()
                .filter_map(|m| str_of(&m.expression))
        };
        alarm_kind(
            false,
            expressions().any(is_anomaly_band),
            self.metrics.is_some(),
        )
    }

    fn instance_ids(&self) -> impl Iterator<Item = &str> {
        let nested = self
            .metrics
            .iter()
            .flatten()
            .filter_map(|m| m.metric_stat.as_ref()?.metric.as_ref()?.dimensions.as_ref());
        self.dimensions
            .iter()
            .chain(nested)
            .flatten()
            .filter(|d| str_of(&d.name) == Some("InstanceId"))
            .filter_map(|d| str_of(&d.value))
    }
}

/// The JSON body CloudWatch publishes to an SNS topic (bare, or unwrapped from an SNS envelope).
pub(super) fn from_sns_message(
    message: &str,
    env: &Envelope<'_>,
    ctx: &Ctx,
) -> Result<Vec<Signal>, ParseError> {
    let msg: SnsAlarm<'_> = parse_as(WHAT, message)?;
    let kind = if msg.alarm_rule.is_some() {
        "composite"
    } else {
        msg.trigger.as_ref().map_or("metric", Trigger::kind)
    };
    let facts = Facts {
        name: str_of(&msg.alarm_name),
        arn: str_of(&msg.alarm_arn),
        account: str_of(&msg.account_id),
        region: str_of(&msg.region).and_then(region_code),
        kind,
        instances: instances(msg.trigger.iter().flat_map(|t| t.instance_ids())),
    };
    let change = StateChange {
        value: msg.new_state_value.as_str(),
        reason: str_of(&msg.new_state_reason),
        at: str_of(&msg.state_change_time),
    };
    facts.signal(&change, env, ctx).map(|s| vec![s])
}

// ---------------------------------------------------------------------------------------------
// Shared between the vocabularies

/// What Firebreak needs of an alarm, whichever vocabulary named it.
struct Facts<'x> {
    name: Option<&'x str>,
    /// The alarm ARN as the event gave it.
    arn: Option<&'x str>,
    /// The payload's own account and region fields (`AWSAccountId`, `Region`).
    account: Option<&'x str>,
    region: Option<&'x str>,
    kind: &'static str,
    instances: Vec<&'x str>,
}

struct StateChange<'x> {
    value: &'x str,
    reason: Option<&'x str>,
    at: Option<&'x str>,
}

struct Identity {
    name: String,
    arn: String,
    account: Option<String>,
    region: Option<String>,
}

impl Facts<'_> {
    /// Name, ARN, account and region, each from the most trustworthy place that has it. The ARN
    /// is what CloudWatch itself names the alarm by, so its account and region win over the
    /// payload's fields (which samples fill with other accounts or placeholders); placeholders
    /// are skipped wherever they appear.
    fn identity(&self, env: &Envelope<'_>) -> Result<Identity, ParseError> {
        let given = self.arn.map(clean_arn).filter(|a| !a.is_empty());
        let parts = given.as_deref().and_then(split_arn);
        let arn_account = parts.as_ref().map(|p| p.account);
        let arn_region = parts.as_ref().map(|p| p.region);
        // With no real account id anywhere, the payload's own field is kept as given (samples
        // mask it), like a masked ASFF account.
        let account = [arn_account, self.account, env.account]
            .into_iter()
            .flatten()
            .map(str::trim)
            .find(|a| is_account_id(a))
            .or_else(|| {
                [self.account, arn_account, env.account]
                    .into_iter()
                    .flatten()
                    .map(str::trim)
                    .find(|a| !a.is_empty())
            })
            .map(str::to_owned);
        let region = [arn_region, self.region, env.region]
            .into_iter()
            .flatten()
            .map(str::trim)
            .find(|r| is_region_code(r))
            .map(str::to_owned);
        let name_from_arn = parts
            .as_ref()
            .and_then(|p| p.resource.strip_prefix("alarm:"))
            .map(str::trim);
        let name = self
            .name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .or(name_from_arn)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ParseError::malformed(WHAT, "no alarm name or ARN"))?
            .to_owned();
        let arn = match given {
            Some(arn) => arn,
            None => {
                let region = region.as_deref().unwrap_or("");
                format!(
                    "arn:{}:cloudwatch:{region}:{}:alarm:{name}",
                    partition_of(region),
                    account.as_deref().unwrap_or("")
                )
            }
        };
        Ok(Identity {
            name,
            arn,
            account,
            region,
        })
    }

    fn resources(&self, arn: &str) -> Vec<super::Resource> {
        let mut resources = ResourceList::default();
        resources.push(ResourceKind::Alarm, arn);
        for id in &self.instances {
            resources.push(ResourceKind::Ec2Instance, id);
        }
        resources.into_vec()
    }

    fn signal(
        &self,
        change: &StateChange<'_>,
        env: &Envelope<'_>,
        ctx: &Ctx,
    ) -> Result<Signal, ParseError> {
        let (state, action, shown_state) = state_of(change.value)?;
        let id = self.identity(env)?;
        let reason = change.reason.map(str::trim).filter(|r| !r.is_empty());
        let title_text = match reason {
            Some(reason) => format!(
                "{} is {shown_state}: {}",
                id.name,
                clip(reason, REASON_CHARS)
            ),
            None => format!("{} is {shown_state}", id.name),
        };
        Ok(Signal {
            source: Source::CloudwatchAlarm,
            action,
            // An alarm says nothing about how bad it is; the matched playbook decides.
            severity: Severity::Medium,
            title: title(title_text),
            kind: self.kind.to_owned(),
            control_id: None,
            alarm_name: Some(id.name.clone()),
            alarm_state: Some(state),
            resources: self.resources(&id.arn),
            tags: Vec::new(),
            account: id.account,
            region: id.region,
            observed_at: env.observed_at(&[change.at], ctx),
            count: 1,
            dedupe_key: format!("cloudwatch_alarm:{}", id.arn),
            raw: ctx.raw(),
        })
    }
}

fn state_of(value: &str) -> Result<(AlarmState, Action, &'static str), ParseError> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("ALARM") {
        Ok((AlarmState::Alarm, Action::Open, "ALARM"))
    } else if value.eq_ignore_ascii_case("OK") {
        Ok((AlarmState::Ok, Action::Resolve, "OK"))
    } else if value.eq_ignore_ascii_case("INSUFFICIENT_DATA") {
        // Missing data can mean the instance died; the playbook decides, not the parser.
        Ok((
            AlarmState::InsufficientData,
            Action::Ignore,
            "INSUFFICIENT_DATA",
        ))
    } else {
        Err(ParseError::malformed(
            "CloudWatch alarm",
            format!(
                "unknown state {} (expected ALARM, OK or INSUFFICIENT_DATA)",
                super::envelope::quoted(value)
            ),
        ))
    }
}

fn alarm_kind(composite: bool, anomaly: bool, math: bool) -> &'static str {
    if composite {
        "composite"
    } else if anomaly {
        "anomaly_detection"
    } else if math {
        "metric_math"
    } else {
        "metric"
    }
}

fn is_anomaly_band(expression: &str) -> bool {
    expression.contains("ANOMALY_DETECTION_BAND")
}

/// Dimension values that are EC2 instance ids. Dimensions are free text (samples put `abc` or
/// `TestInstance` there), and remediation acts on what is typed an instance, so only values
/// shaped like an instance id count.
fn instances<'x>(values: impl Iterator<Item = &'x str>) -> Vec<&'x str> {
    values
        .map(str::trim)
        .filter(|v| is_instance_id(v))
        .collect()
}

fn is_instance_id(s: &str) -> bool {
    s.strip_prefix("i-").is_some_and(|rest| {
        (1..=32).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// SNS alarm messages name the region by its console name ("US East (N. Virginia)").
fn region_code(name: &str) -> Option<&str> {
    let name = name.trim();
    if is_region_code(name) {
        return Some(name);
    }
    REGION_NAMES
        .iter()
        .find(|(long, _)| long.eq_ignore_ascii_case(name))
        .map(|&(_, code)| code)
}

/// Console names of the regions, including the older "EU (…)" spellings still seen in alarm
/// messages, and the GovCloud and China regions, whose ARNs use other partitions.
const REGION_NAMES: &[(&str, &str)] = &[
    ("US East (N. Virginia)", "us-east-1"),
    ("US East (Ohio)", "us-east-2"),
    ("US West (N. California)", "us-west-1"),
    ("US West (Oregon)", "us-west-2"),
    ("Africa (Cape Town)", "af-south-1"),
    ("Asia Pacific (Hong Kong)", "ap-east-1"),
    ("Asia Pacific (Taipei)", "ap-east-2"),
    ("Asia Pacific (Mumbai)", "ap-south-1"),
    ("Asia Pacific (Hyderabad)", "ap-south-2"),
    ("Asia Pacific (Singapore)", "ap-southeast-1"),
    ("Asia Pacific (Sydney)", "ap-southeast-2"),
    ("Asia Pacific (Jakarta)", "ap-southeast-3"),
    ("Asia Pacific (Melbourne)", "ap-southeast-4"),
    ("Asia Pacific (Malaysia)", "ap-southeast-5"),
    ("Asia Pacific (New Zealand)", "ap-southeast-6"),
    ("Asia Pacific (Thailand)", "ap-southeast-7"),
    ("Asia Pacific (Tokyo)", "ap-northeast-1"),
    ("Asia Pacific (Seoul)", "ap-northeast-2"),
    ("Asia Pacific (Osaka)", "ap-northeast-3"),
    ("Canada (Central)", "ca-central-1"),
    ("Canada West (Calgary)", "ca-west-1"),
    ("Europe (Frankfurt)", "eu-central-1"),
    ("EU (Frankfurt)", "eu-central-1"),
    ("Europe (Zurich)", "eu-central-2"),
    ("Europe (Ireland)", "eu-west-1"),
    ("EU (Ireland)", "eu-west-1"),
    ("Europe (London)", "eu-west-2"),
    ("EU (London)", "eu-west-2"),
    ("Europe (Paris)", "eu-west-3"),
    ("EU (Paris)", "eu-west-3"),
    ("Europe (Milan)", "eu-south-1"),
    ("EU (Milan)", "eu-south-1"),
    ("Europe (Spain)", "eu-south-2"),
    ("Europe (Stockholm)", "eu-north-1"),
    ("EU (Stockholm)", "eu-north-1"),
    ("Israel (Tel Aviv)", "il-central-1"),
    ("Mexico (Central)", "mx-central-1"),
    ("Middle East (Bahrain)", "me-south-1"),
    ("Middle East (UAE)", "me-central-1"),
    ("South America (Sao Paulo)", "sa-east-1"),
    ("South America (São Paulo)", "sa-east-1"),
    ("AWS GovCloud (US-East)", "us-gov-east-1"),
    ("AWS GovCloud (US-West)", "us-gov-west-1"),
    ("AWS GovCloud (US)", "us-gov-west-1"),
    ("China (Beijing)", "cn-north-1"),
    ("China (Ningxia)", "cn-northwest-1"),
];

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::signal::parse;
    use crate::signal::testing::{fixture, one, received};

    fn with_state(input: &str, pointer: &str, value: &str) -> String {
        let mut v: Value = serde_json::from_str(input).expect("fixture is JSON");
        *v.pointer_mut(pointer).expect("pointer exists") = Value::String(value.into());
        v.to_string()
    }

    const SINGLE: &str = "cloudwatch-alarm/docs-single-metric-alarm-ok-to-alarm.json";

    #[test]
    fn eventbridge_alarm_opens_with_arn_instance_and_state_time() {
        let s = one(&fixture(SINGLE));
        assert_eq!(s.source, Source::CloudwatchAlarm);
        assert_eq!(s.action, Action::Open);
        assert_eq!(s.severity, Severity::Medium);
        assert_eq!(s.kind, "metric");
        assert_eq!(s.alarm_name.as_deref(), Some("ServerCpuTooHigh"));
        assert_eq!(s.alarm_state, Some(AlarmState::Alarm));
        let arn = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh";
        assert_eq!(s.dedupe_key, format!("cloudwatch_alarm:{arn}"));
        let ids: Vec<_> = s
            .resources
            .iter()
            .map(|r| (r.kind, r.id.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                (ResourceKind::Alarm, arn),
                (ResourceKind::Ec2Instance, "i-12345678901234567")
            ]
        );
        assert_eq!(s.account.as_deref(), Some("123456789012"));
        assert_eq!(s.region.as_deref(), Some("us-east-1"));
        assert_eq!(
            s.observed_at,
            crate::signal::parse_timestamp("2019-10-02T17:04:40.989Z").expect("valid")
        );
        assert!(
            s.title
                .starts_with("ServerCpuTooHigh is ALARM: Threshold Crossed")
        );
    }

    #[test]
    fn ok_and_alarm_of_the_same_alarm_share_a_dedupe_key() {
        let alarm = fixture(SINGLE);
        let ok = with_state(&alarm, "/detail/state/value", "OK");
        let (a, o) = (one(&alarm), one(&ok));
        assert_eq!(o.action, Action::Resolve);
        assert_eq!(o.alarm_state, Some(AlarmState::Ok));
        assert_eq!(a.dedupe_key, o.dedupe_key);

        let direct =
            fixture("cloudwatch-alarm-direct/java-libs-metric-alarm-insufficient-to-alarm.json");
        let direct_ok = with_state(&direct, "/alarmData/state/value", "OK");
        assert_eq!(one(&direct).dedupe_key, one(&direct_ok).dedupe_key);
        assert_eq!(one(&direct_ok).action, Action::Resolve);
    }

    #[test]
    fn insufficient_data_arrives_as_ignore_with_its_state() {
        let input = with_state(&fixture(SINGLE), "/detail/state/value", "INSUFFICIENT_DATA");
        let s = one(&input);
        assert_eq!(s.action, Action::Ignore);
        assert_eq!(s.alarm_state, Some(AlarmState::InsufficientData));
        assert!(s.title.contains("is INSUFFICIENT_DATA"));
    }

    #[test]
    fn unknown_state_value_is_refused_as_malformed() {
        let input = with_state(&fixture(SINGLE), "/detail/state/value", "PANIC");
        let err = parse(input.as_bytes(), received()).expect_err("refused");
        assert!(err.to_string().contains("unknown state \"PANIC\""), "{err}");
    }

    #[test]
    fn alarm_kinds_follow_the_configuration() {
        let kind = |path| one(&fixture(path)).kind;
        assert_eq!(
            kind("cloudwatch-alarm/docs-metric-math-alarm-insufficient-to-alarm.json"),
            "metric_math"
        );
        assert_eq!(
            kind("cloudwatch-alarm/docs-anomaly-detection-alarm-ok-to-alarm.json"),
            "anomaly_detection"
        );
        assert_eq!(
            kind("cloudwatch-alarm/docs-composite-alarm-with-suppressor-ok-to-alarm.json"),
            "composite"
        );
        assert_eq!(
            kind("sns/rheoceros-lambda-sns-composite-alarm-triggering-children.json"),
            "composite"
        );
        assert_eq!(
            kind("sns/rust-fixture-lambda-sns-single-metric-alarm.json"),
            "metric"
        );
        assert_eq!(
            kind("cloudwatch-alarm-direct/powertools-python-metric-math-alarm-ok-to-alarm.json"),
            "metric_math"
        );
    }

    #[test]
    fn sns_metric_math_records_each_become_a_signal() {
        let input = fixture("sns/rust-fixture-lambda-sns-metric-math-alarm-2-records.json");
        let signals = parse(input.as_bytes(), received()).expect("parses");
        assert_eq!(signals.len(), 2);
        assert!(signals.iter().all(|s| s.kind == "metric_math"));
        assert!(std::sync::Arc::ptr_eq(&signals[0].raw, &signals[1].raw));
    }

    #[test]
    fn configuration_change_is_ignored_at_info_with_the_alarm_key() {
        let s = one(&fixture(
            "cloudwatch-alarm/docs-config-change-delete-composite-suppressor.json",
        ));
        assert_eq!(s.action, Action::Ignore);
        assert_eq!(s.severity, Severity::Info);
        assert_eq!(s.alarm_state, None);
        assert_eq!(s.kind, "composite");
        assert_eq!(
            s.dedupe_key,
            "cloudwatch_alarm:arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServiceAggregatedAlarm"
        );
        assert_eq!(s.title, "ServiceAggregatedAlarm was deleted");
    }

    #[test]
    fn docs_typo_spaces_leave_arn_and_times_usable() {
        let s = one(&fixture(
            "cloudwatch-alarm-direct/rust-fixture-metric-alarm-malformed-timestamps.json",
        ));
        assert_eq!(
            s.dedupe_key,
            "cloudwatch_alarm:arn:aws:cloudwatch:us-east-1:444455556666:alarm:lambda-demo-metric-alarm"
        );
        assert_eq!(s.account.as_deref(), Some("444455556666"));
        assert_eq!(
            s.observed_at,
            crate::signal::parse_timestamp("2023-08-04T12:36:15.490Z").expect("valid")
        );
        // The same alarm without the typo keys identically.
        let clean = one(&fixture(
            "cloudwatch-alarm-direct/java-libs-metric-alarm-insufficient-to-alarm.json",
        ));
        assert_eq!(s.dedupe_key, clean.dedupe_key);
    }

    #[test]
    fn alarm_arn_with_spaces_in_the_name_keeps_them() {
        let s = one(&fixture(
            "cloudwatch-alarm/docs-anomaly-detection-alarm-ok-to-alarm.json",
        ));
        assert_eq!(
            s.dedupe_key,
            "cloudwatch_alarm:arn:aws:cloudwatch:us-east-1:123456789012:alarm:EC2 CPU Utilization Anomaly"
        );
    }

    #[test]
    fn alarm_arn_account_wins_over_the_payload_account() {
        let s = one(&fixture(
            "cloudwatch-alarm-direct/powertools-python-metric-math-alarm-ok-to-alarm.json",
        ));
        assert_eq!(s.account.as_deref(), Some("912397435824"));
        assert_eq!(s.alarm_name.as_deref(), Some("Test alert"));
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn placeholder_times_fall_back_to_received_at() {
        let s = one(&fixture(
            "cloudwatch-alarm-direct/localstack-recorded-metric-alarm-lambda-action.json",
        ));
        assert_eq!(s.observed_at, received());
        assert_eq!(s.region, None);
        assert_eq!(s.account.as_deref(), Some("111111111111"));
    }

    #[test]
    fn sns_long_region_name_maps_to_its_code() {
        let s = one(&fixture(
            "sns/rheoceros-lambda-sns-metric-alarm-null-description.json",
        ));
        assert_eq!(s.region.as_deref(), Some("us-east-1"));
        assert_eq!(s.account.as_deref(), Some("427809481713"));
        assert_eq!(region_code("US East (N. Virginia)"), Some("us-east-1"));
        assert_eq!(region_code("EU (Ireland)"), Some("eu-west-1"));
        assert_eq!(region_code("us-west-2"), Some("us-west-2"));
        assert_eq!(region_code("Atlantis (Central)"), None);
        assert_eq!(region_code("<region-name-full:1>"), None);
    }

    #[test]
    fn sns_placeholders_keep_the_arn_but_not_fake_accounts_or_instances() {
        let s = one(&fixture(
            "sns/rust-fixture-lambda-sns-single-metric-alarm.json",
        ));
        assert_eq!(
            s.dedupe_key,
            "cloudwatch_alarm:arn:aws:cloudwatch:REGION:ACCOUNT_NUMBER:alarm:EXAMPLE"
        );
        assert_eq!(s.account.as_deref(), Some("123456789012"));
        assert_eq!(s.region, None);
        // "TestInstance" is not an instance id.
        assert_eq!(s.resources.len(), 1);
    }

    #[test]
    fn sns_alarm_without_arn_gets_a_constructed_arn() {
        let msg = r#"{"AlarmName":"cpu high","AWSAccountId":"123456789012",
            "Region":"EU (Ireland)","NewStateValue":"OK","NewStateReason":"back",
            "StateChangeTime":"2024-01-01T00:00:00.000+0000",
            "Trigger":{"Dimensions":[{"name":"InstanceId","value":" i-0abc "}]}}"#;
        let s = one(msg);
        assert_eq!(s.action, Action::Resolve);
        assert_eq!(
            s.dedupe_key,
            "cloudwatch_alarm:arn:aws:cloudwatch:eu-west-1:123456789012:alarm:cpu high"
        );
        assert_eq!(s.resources[1].id, "i-0abc");
    }

    #[test]
    fn long_reasons_are_cut_on_a_character_boundary() {
        let reason = "é".repeat(500);
        let input = with_state(&fixture(SINGLE), "/detail/state/reason", &reason);
        let s = one(&input);
        assert!(s.title.ends_with('…'));
        assert!(s.title.chars().count() < 260);
        assert!(!s.title.contains('\n'));
    }

    #[test]
    fn alarm_without_name_or_arn_is_malformed() {
        let input = r#"{"alarmData":{"state":{"value":"ALARM"}}}"#;
        let err = parse(input.as_bytes(), received()).expect_err("refused");
        assert!(matches!(err, ParseError::Malformed { .. }), "{err}");
    }
}
