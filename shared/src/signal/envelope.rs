//! Recognises which of the many envelopes an event arrived in and hands the payload to the
//! parser for its source.
//!
//! The same alarm or finding reaches Firebreak as an EventBridge event, as the Lambda
//! alarm-action payload, inside an SNS notification (Lambda-delivered or raw HTTP/email), or bare
//! (a finding pasted from the console or the CLI). Detection is one pass over the top-level keys
//! into a borrowed [`Probe`]. A payload whose meaning is already known when the pass reaches it
//! is parsed right there into the typed structs of its source: `alarmData`, `Records`,
//! `Findings`, and an EventBridge `detail` when `source` and `detail-type` came before it, which
//! is the order AWS writes them in. Otherwise the payload is kept as an unparsed [`RawValue`] and
//! parsed once the shape is known. So EventBridge events as AWS writes them and alarm-action
//! payloads are read in one pass; bare findings, and the message inside an SNS notification,
//! take a second pass over the payload.
//!
//! The small lenient building blocks the source parsers share ([`Loose`], [`Number`],
//! [`TagMap`], [`ResourceList`] …) live here too, so that a type surprise in a field Firebreak
//! does not act on never refuses an otherwise good event.

use std::borrow::Cow;
use std::cell::{Cell, OnceCell};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use aws_lambda_events::event::sns::SnsRecord;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::error::Category;
use serde_json::value::RawValue;

use super::time::parse_timestamp;
use super::{
    MAX_EVENT_BYTES, ParseError, Resource, ResourceKind, Signal, Tag, alarm, guardduty, one_line,
    securityhub,
};

/// What every refusal of an unhandled event adds, so the operator knows what *is* handled.
const HANDLED: &str = "Firebreak handles CloudWatch alarms, GuardDuty and Security Hub findings";

/// Parses one raw event into the signals it carries.
///
/// `received_at` is when the event reached Firebreak; it stands in for the observation time when
/// neither the payload nor its envelope carries a usable one (tests pass a fixed time).
///
/// On success the vector holds at least one signal: an event that carries nothing to act on
/// (a Security Hub event with no findings, an SNS event with no records) is refused instead, so
/// that "parsed" always means "understood".
pub fn parse(input: &[u8], received_at: DateTime<Utc>) -> Result<Vec<Signal>, ParseError> {
    if input.is_empty() {
        return Err(ParseError::Empty);
    }
    if input.len() > MAX_EVENT_BYTES {
        return Err(ParseError::TooLarge {
            size: input.len(),
            limit: MAX_EVENT_BYTES,
        });
    }
    let text = std::str::from_utf8(input)
        .map_err(|e| ParseError::InvalidJson(format!("input is not UTF-8 ({e})")))?;
    if text.trim_ascii().is_empty() {
        return Err(ParseError::Empty);
    }
    let raw = OnceCell::new();
    let ctx = Ctx {
        input: text,
        raw: &raw,
        fallback_time: received_at,
    };
    dispatch(text, &ctx, Depth::Top)
}

/// What every signal of one event shares.
pub(super) struct Ctx<'c> {
    /// The whole input.
    input: &'c str,
    /// The input copied once, when the first signal needs it (refusals never copy it), and
    /// shared by all the signals of the event.
    raw: &'c OnceCell<Arc<str>>,
    /// The time of the outermost envelope that has one (the SNS timestamp for SNS-delivered
    /// events), else the time the event was received.
    pub fallback_time: DateTime<Utc>,
}

impl<'c> Ctx<'c> {
    pub fn raw(&self) -> Arc<str> {
        Arc::clone(self.raw.get_or_init(|| Arc::from(self.input)))
    }

    /// The same event, seen through an envelope whose time is `fallback_time`.
    fn within(&self, fallback_time: DateTime<Utc>) -> Ctx<'c> {
        Ctx {
            fallback_time,
            ..*self
        }
    }
}

/// The EventBridge-style metadata around a payload, for the fields the payload may lack.
#[derive(Clone, Copy, Default)]
pub(super) struct Envelope<'e> {
    pub account: Option<&'e str>,
    pub region: Option<&'e str>,
    pub time: Option<&'e str>,
    pub resources: Option<&'e RawValue>,
}

impl Envelope<'_> {
    /// The first of `own` that parses, else the envelope's time, else the context's fallback.
    pub fn observed_at(&self, own: &[Option<&str>], ctx: &Ctx) -> DateTime<Utc> {
        own.iter()
            .chain(std::iter::once(&self.time))
            .flatten()
            .find_map(|s| parse_timestamp(s))
            .unwrap_or(ctx.fallback_time)
    }
}

/// Parses `json` into one of the typed payload structs, naming `what` in a refusal.
pub(super) fn parse_as<'a, T: Deserialize<'a>>(
    what: &'static str,
    json: &'a str,
) -> Result<T, ParseError> {
    serde_json::from_str(json).map_err(|e| json_error(what, e))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Depth {
    Top,
    /// Inside an SNS message: one level of wrapping is all AWS produces, so a second one is
    /// refused rather than followed.
    InSns,
}

/// The EventBridge events Firebreak acts on.
#[derive(Clone, Copy)]
enum Route {
    AlarmState,
    AlarmConfig,
    GuardDuty,
    SecurityHub,
}

impl Route {
    fn of(source: &str, detail_type: &str) -> Option<Route> {
        match (source, detail_type) {
            ("aws.cloudwatch", "CloudWatch Alarm State Change") => Some(Route::AlarmState),
            ("aws.cloudwatch", "CloudWatch Alarm Configuration Change") => Some(Route::AlarmConfig),
            ("aws.guardduty", "GuardDuty Finding") => Some(Route::GuardDuty),
            (
                "aws.securityhub",
                "Security Hub Findings - Imported" | "Security Hub Findings - Custom Action",
            ) => Some(Route::SecurityHub),
            _ => None,
        }
    }

    /// Whether any source sends this detail-type to Firebreak; if not, the detail can be skipped
    /// before the source is known.
    fn handles(detail_type: &str) -> bool {
        ["aws.cloudwatch", "aws.guardduty", "aws.securityhub"]
            .iter()
            .any(|source| Route::of(source, detail_type).is_some())
    }

    fn what(self) -> &'static str {
        match self {
            Route::AlarmState | Route::AlarmConfig => alarm::WHAT,
            Route::GuardDuty => guardduty::WHAT,
            Route::SecurityHub => securityhub::EVENT,
        }
    }
}

/// An EventBridge `detail`, parsed for its route.
enum Detail<'a> {
    Alarm(alarm::AlarmData<'a>),
    // Boxed: a finding's struct is several times the size of the others.
    GuardDuty(Box<guardduty::Finding<'a>>),
    SecurityHub(securityhub::Detail<'a>),
}

/// The `detail` as the probe found it.
enum Payload<'a> {
    /// Parsed in the probe's pass: the route was known when the pass reached it.
    Parsed(Detail<'a>),
    /// Kept for later: the route was not known yet.
    Raw(&'a RawValue),
    /// Not kept: no route takes this detail-type.
    Skipped,
}

/// The top-level keys that tell the shapes apart, with the payloads parsed where their meaning
/// is already known and kept raw or skipped otherwise.
#[derive(Default)]
struct Probe<'a> {
    source: Option<Text<'a>>,
    detail_type: Option<Text<'a>>,
    detail: Option<Payload<'a>>,
    account: Option<Loose<'a>>,
    region: Option<Loose<'a>>,
    time: Option<Loose<'a>>,
    resources: Option<&'a RawValue>,

    /// Lambda event records; only SNS records are read (an SQS event fails here and is named
    /// on the error path).
    records: Option<Vec<SnsRecord>>,

    /// The alarm-action payload (and, wrongly, some hand-made EventBridge envelopes).
    alarm_data: Option<alarm::AlarmData<'a>>,
    alarm_arn: Option<Loose<'a>>,
    account_id: Option<Loose<'a>>,

    /// SNS HTTP/email envelope; `Type` is also the finding type of a PascalCase GuardDuty
    /// finding.
    type_pascal: Option<Loose<'a>>,
    message: Option<&'a RawValue>,
    topic_arn: bool,
    timestamp: Option<Loose<'a>>,

    /// Bare SNS alarm message.
    alarm_name: bool,
    new_state_value: bool,

    /// GuardDuty finding: EventBridge `detail` shape (camelCase) or API shape (PascalCase); a
    /// GuardDuty announcement (`{"version":"1","type":"NEW_FEATURES",…}`) on its SNS topic.
    type_camel: Option<Loose<'a>>,
    service: bool,
    service_pascal: bool,
    schema_version: bool,
    schema_version_pascal: bool,
    version: bool,

    /// Security Hub: a bare ASFF finding, or `get-findings` output.
    product_arn: bool,
    generator_id: bool,
    findings: Option<Vec<securityhub::Finding<'a>>>,
}

impl<'a> Probe<'a> {
    /// Reads `text`'s top level. A refusal names the payload that failed to parse, if any.
    fn read(text: &'a str) -> Result<Probe<'a>, ParseError> {
        let parsing = Cell::new(None);
        let mut de = serde_json::Deserializer::from_str(text);
        ProbeSeed { parsing: &parsing }
            .deserialize(&mut de)
            .and_then(|probe| de.end().map(|()| probe))
            .map_err(|e| match parsing.get() {
                Some(SNS_EVENT) => {
                    not_sns_records(text).unwrap_or_else(|| json_error(SNS_EVENT, e))
                }
                Some(what) => json_error(what, e),
                None => json_error("event", e),
            })
    }

    fn shape(&self) -> Shape {
        if self.records.is_some() {
            Shape::LambdaRecords
        } else if self.detail_type.is_some() {
            Shape::EventBridge
        } else if self.alarm_data.is_some() {
            Shape::AlarmAction
        } else if str_of(&self.type_pascal).is_some() && self.message.is_some() && self.topic_arn {
            Shape::SnsEnvelope
        } else if self.alarm_name && self.new_state_value {
            Shape::SnsAlarmMessage
        } else if self.findings.is_some() {
            Shape::FindingsList
        } else if self.product_arn && self.generator_id {
            Shape::AsffFinding
        } else if (str_of(&self.type_camel).is_some() && self.service)
            || (str_of(&self.type_pascal).is_some()
                && self.service_pascal
                && self.schema_version_pascal)
        {
            Shape::GuardDutyFinding
        } else if str_of(&self.type_camel).is_some() && self.version && !self.schema_version {
            Shape::GuardDutyAnnouncement
        } else if self.detail.is_some() {
            Shape::PartialEnvelope
        } else {
            Shape::Unknown
        }
    }

    fn envelope(&self) -> Envelope<'_> {
        Envelope {
            account: str_of(&self.account),
            region: str_of(&self.region),
            time: str_of(&self.time),
            resources: self.resources,
        }
    }
}

/// What a refusal calls a Lambda SNS event.
const SNS_EVENT: &str = "SNS event";

struct ProbeSeed<'s> {
    /// The payload being parsed when the pass stopped, for the refusal.
    parsing: &'s Cell<Option<&'static str>>,
}

impl<'de> DeserializeSeed<'de> for ProbeSeed<'_> {
    type Value = Probe<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Probe<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ProbeSeed<'_> {
    type Value = Probe<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Probe<'de>, A::Error> {
        fn once<T, E: de::Error>(
            slot: &mut Option<T>,
            value: T,
            key: &'static str,
        ) -> Result<(), E> {
            // A repeated key could route on one value and report another; refuse it like serde
            // does for derived structs.
            if slot.is_some() {
                return Err(E::duplicate_field(key));
            }
            *slot = Some(value);
            Ok(())
        }

        let mut p = Probe::default();
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match key.as_str() {
                "source" => once(&mut p.source, map.next_value()?, "source")?,
                "detail-type" => once(&mut p.detail_type, map.next_value()?, "detail-type")?,
                "detail" => {
                    let source = p.source.as_ref().map(Text::as_str);
                    let detail_type = p.detail_type.as_ref().map(Text::as_str);
                    let payload = match (source, detail_type) {
                        (Some(source), Some(detail_type)) => match Route::of(source, detail_type) {
                            Some(route) => {
                                self.parsing.set(Some(route.what()));
                                let detail = map.next_value_seed(DetailSeed(route))?;
                                self.parsing.set(None);
                                Payload::Parsed(detail)
                            }
                            None => skip(&mut map)?,
                        },
                        (_, Some(detail_type)) if !Route::handles(detail_type) => skip(&mut map)?,
                        _ => Payload::Raw(map.next_value()?),
                    };
                    once(&mut p.detail, payload, "detail")?;
                }
                "account" => p.account = Some(map.next_value()?),
                "region" => p.region = Some(map.next_value()?),
                "time" => p.time = Some(map.next_value()?),
                "resources" => p.resources = Some(map.next_value()?),
                "Records" => {
                    self.parsing.set(Some(SNS_EVENT));
                    once(&mut p.records, map.next_value()?, "Records")?;
                    self.parsing.set(None);
                }
                "alarmData" => {
                    self.parsing.set(Some(alarm::WHAT));
                    once(&mut p.alarm_data, map.next_value()?, "alarmData")?;
                    self.parsing.set(None);
                }
                "alarmArn" => p.alarm_arn = Some(map.next_value()?),
                "accountId" => p.account_id = Some(map.next_value()?),
                "Type" => p.type_pascal = Some(map.next_value()?),
                "Message" => p.message = Some(map.next_value()?),
                "TopicArn" => p.topic_arn = present(&mut map)?,
                "Timestamp" => p.timestamp = Some(map.next_value()?),
                "AlarmName" => p.alarm_name = present(&mut map)?,
                "NewStateValue" => p.new_state_value = present(&mut map)?,
                "type" => p.type_camel = Some(map.next_value()?),
                "service" => p.service = present(&mut map)?,
                "Service" => p.service_pascal = present(&mut map)?,
                "schemaVersion" => p.schema_version = present(&mut map)?,
                "SchemaVersion" => p.schema_version_pascal = present(&mut map)?,
                "version" => p.version = present(&mut map)?,
                "ProductArn" => p.product_arn = present(&mut map)?,
                "GeneratorId" => p.generator_id = present(&mut map)?,
                "Findings" => {
                    self.parsing.set(Some(securityhub::FINDINGS));
                    once(&mut p.findings, map.next_value()?, "Findings")?;
                    self.parsing.set(None);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(p)
    }
}

/// Skips a value, noting whether it was there at all (`null` counts as absent).
fn present<'de, A: MapAccess<'de>>(map: &mut A) -> Result<bool, A::Error> {
    Ok(map.next_value::<NotNull>()?.0)
}

/// Whether a value is anything but `null`, read without keeping it.
struct NotNull(bool);

impl<'de> Deserialize<'de> for NotNull {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Option::<IgnoredAny>::deserialize(d).map(|v| NotNull(v.is_some()))
    }
}

fn skip<'de, 'a, A: MapAccess<'de>>(map: &mut A) -> Result<Payload<'a>, A::Error> {
    map.next_value::<IgnoredAny>()?;
    Ok(Payload::Skipped)
}

struct DetailSeed(Route);

impl<'de> DeserializeSeed<'de> for DetailSeed {
    type Value = Detail<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Detail<'de>, D::Error> {
        Ok(match self.0 {
            Route::AlarmState | Route::AlarmConfig => Detail::Alarm(Deserialize::deserialize(d)?),
            Route::GuardDuty => Detail::GuardDuty(Deserialize::deserialize(d)?),
            Route::SecurityHub => Detail::SecurityHub(Deserialize::deserialize(d)?),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    LambdaRecords,
    EventBridge,
    AlarmAction,
    SnsEnvelope,
    SnsAlarmMessage,
    FindingsList,
    AsffFinding,
    GuardDutyFinding,
    GuardDutyAnnouncement,
    PartialEnvelope,
    Unknown,
}

fn dispatch(text: &str, ctx: &Ctx, depth: Depth) -> Result<Vec<Signal>, ParseError> {
    if text.trim_start().as_bytes().first() != Some(&b'{') {
        return Err(not_an_object(text));
    }
    let probe = Probe::read(text)?;
    let shape = probe.shape();
    match shape {
        Shape::LambdaRecords | Shape::SnsEnvelope if depth == Depth::InSns => {
            Err(ParseError::Unsupported(
                "SNS message wraps another SNS message; Firebreak unwraps one level only".into(),
            ))
        }
        Shape::LambdaRecords => lambda_sns_event(probe.records.as_deref().unwrap_or_default(), ctx),
        Shape::SnsEnvelope => sns_envelope(&probe, ctx),
        Shape::EventBridge => eventbridge(&probe, ctx),
        Shape::AlarmAction => {
            let env = Envelope {
                account: str_of(&probe.account_id).or(str_of(&probe.account)),
                ..probe.envelope()
            };
            let data = probe
                .alarm_data
                .as_ref()
                .ok_or_else(|| missing("alarm event", "alarmData"))?;
            alarm::from_alarm_action(data, str_of(&probe.alarm_arn), &env, ctx)
        }
        Shape::SnsAlarmMessage => alarm::from_sns_message(text, &Envelope::default(), ctx),
        Shape::FindingsList => {
            let findings = probe.findings.as_deref().unwrap_or_default();
            securityhub::from_findings(findings, &Envelope::default(), ctx)
        }
        Shape::AsffFinding => {
            let finding = parse_as(securityhub::FINDING, text)?;
            securityhub::from_findings(std::slice::from_ref(&finding), &Envelope::default(), ctx)
        }
        Shape::GuardDutyFinding => {
            let finding = parse_as(guardduty::WHAT, text)?;
            guardduty::from_finding(&finding, &Envelope::default(), ctx)
        }
        Shape::GuardDutyAnnouncement => Err(guardduty_announcement(&probe)),
        Shape::PartialEnvelope => partial_envelope(&probe, ctx),
        Shape::Unknown if depth == Depth::InSns => Err(ParseError::Unsupported(format!(
            "SNS message is not a CloudWatch alarm or EventBridge event (its keys: {})",
            top_level_keys(text)
        ))),
        Shape::Unknown => Err(ParseError::Unsupported(format!(
            "unrecognised event shape (top-level keys: {}); {HANDLED}",
            top_level_keys(text)
        ))),
    }
}

fn eventbridge(probe: &Probe<'_>, ctx: &Ctx) -> Result<Vec<Signal>, ParseError> {
    let detail_type = probe.detail_type.as_ref().map_or("", Text::as_str);
    let Some(source) = probe.source.as_ref().map(Text::as_str) else {
        return Err(ParseError::malformed(
            "EventBridge event",
            format!(
                "\"detail-type\" {} without a \"source\"",
                quoted(detail_type)
            ),
        ));
    };
    let Some(route) = Route::of(source, detail_type) else {
        return Err(ParseError::Unsupported(format!(
            "{} {} ({HANDLED})",
            shown(source),
            quoted(detail_type)
        )));
    };
    let parsed;
    let detail = match &probe.detail {
        Some(Payload::Parsed(detail)) => detail,
        Some(Payload::Raw(raw)) => {
            parsed = parse_detail(route, raw)?;
            &parsed
        }
        Some(Payload::Skipped) | None => {
            let reason = if probe.alarm_data.is_some() {
                "it carries \"alarmData\" instead of \"detail\" (an EventBridge envelope mixed \
                 with the Lambda alarm-action payload, which AWS never sends)"
            } else {
                "it has no \"detail\""
            };
            return Err(ParseError::malformed("EventBridge event", reason));
        }
    };
    let env = probe.envelope();
    match (route, detail) {
        (Route::AlarmState, Detail::Alarm(data)) => alarm::from_eventbridge(data, &env, ctx),
        (Route::AlarmConfig, Detail::Alarm(data)) => {
            alarm::from_configuration_change(data, &env, ctx)
        }
        (Route::GuardDuty, Detail::GuardDuty(finding)) => {
            guardduty::from_finding(finding, &env, ctx)
        }
        (Route::SecurityHub, Detail::SecurityHub(detail)) => {
            securityhub::from_detail(detail, &env, ctx)
        }
        // The probe refuses repeated keys, so the detail was parsed for this very route.
        _ => Err(ParseError::malformed(
            "EventBridge event",
            "its detail does not match its detail-type",
        )),
    }
}

fn parse_detail<'a>(route: Route, raw: &'a RawValue) -> Result<Detail<'a>, ParseError> {
    let mut de = serde_json::Deserializer::from_str(raw.get());
    DetailSeed(route)
        .deserialize(&mut de)
        .map_err(|e| json_error(route.what(), e))
}

/// `{"region": …, "detail": {finding}}` with no `detail-type`: test payloads trimmed by hand.
/// The detail's own keys decide what it is.
fn partial_envelope(probe: &Probe<'_>, ctx: &Ctx) -> Result<Vec<Signal>, ParseError> {
    let Some(Payload::Raw(detail)) = probe.detail else {
        return Err(missing("event", "detail"));
    };
    if Probe::read(detail.get())?.shape() != Shape::GuardDutyFinding {
        return Err(ParseError::Unsupported(format!(
            "event without \"detail-type\" whose detail is not a GuardDuty finding \
             (detail keys: {}); {HANDLED}",
            top_level_keys(detail.get())
        )));
    }
    let finding = parse_as(guardduty::WHAT, detail.get())?;
    guardduty::from_finding(&finding, &probe.envelope(), ctx)
}

/// A Lambda event of SNS records, each carrying one event in its message.
fn lambda_sns_event(records: &[SnsRecord], ctx: &Ctx) -> Result<Vec<Signal>, ParseError> {
    if records.is_empty() {
        return Err(ParseError::malformed(SNS_EVENT, "\"Records\" is empty"));
    }
    let mut signals = Vec::with_capacity(records.len());
    for record in records {
        let inner = ctx.within(record.sns.timestamp);
        signals.extend(sns_message(&record.sns.message, &inner)?);
    }
    Ok(signals)
}

/// Why a `Records` event that failed to read as SNS is not one: an SQS or S3 event is refused as
/// what it is rather than as a malformed SNS event. Only runs on that error path.
fn not_sns_records(text: &str) -> Option<ParseError> {
    #[derive(Deserialize)]
    struct Event<'a> {
        #[serde(rename = "Records", borrow)]
        records: Vec<RecordProbe<'a>>,
    }
    #[derive(Deserialize)]
    struct RecordProbe<'a> {
        #[serde(rename = "EventSource", alias = "eventSource", borrow)]
        event_source: Option<Loose<'a>>,
        #[serde(rename = "Sns")]
        sns: Option<IgnoredAny>,
    }
    let event: Event<'_> = serde_json::from_str(text).ok()?;
    let other = event.records.iter().find(|r| r.sns.is_none())?;
    let from = str_of(&other.event_source).map_or_else(|| "an unknown source".to_owned(), shown);
    Some(ParseError::Unsupported(format!(
        "Lambda event records from {from} (Firebreak reads SNS records only)"
    )))
}

/// The SNS envelope as an HTTP/S or email-json subscriber receives it.
fn sns_envelope(probe: &Probe<'_>, ctx: &Ctx) -> Result<Vec<Signal>, ParseError> {
    let kind = str_of(&probe.type_pascal).unwrap_or("");
    if kind != "Notification" {
        return Err(ParseError::Unsupported(format!(
            "SNS {} message: only notifications carry events",
            shown(kind)
        )));
    }
    let raw = probe
        .message
        .ok_or_else(|| missing("SNS message", "Message"))?;
    let message: Text<'_> = parse_as("SNS message", raw.get())?;
    let inner = ctx.within(
        str_of(&probe.timestamp)
            .and_then(parse_timestamp)
            .unwrap_or(ctx.fallback_time),
    );
    sns_message(message.as_str(), &inner)
}

fn sns_message(message: &str, ctx: &Ctx) -> Result<Vec<Signal>, ParseError> {
    if message.trim_start().as_bytes().first() != Some(&b'{') {
        return Err(ParseError::Unsupported(
            "SNS message is not a CloudWatch alarm or EventBridge event (it is not a JSON object)"
                .into(),
        ));
    }
    dispatch(message, ctx, Depth::InSns)
}

fn guardduty_announcement(probe: &Probe<'_>) -> ParseError {
    let kind = str_of(&probe.type_camel).unwrap_or("");
    ParseError::Unsupported(format!(
        "message is a GuardDuty announcement ({}), not a finding",
        shown(kind)
    ))
}

fn missing(what: &'static str, field: &str) -> ParseError {
    ParseError::malformed(what, format!("no \"{field}\""))
}

/// Refusal for input whose first character is not `{`: invalid JSON if it does not parse,
/// otherwise named by what it is.
fn not_an_object(text: &str) -> ParseError {
    if let Err(e) = serde_json::from_str::<IgnoredAny>(text) {
        return ParseError::InvalidJson(one_line(&e.to_string()));
    }
    ParseError::NotAnObject(match text.trim_start().as_bytes().first() {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    })
}

/// serde_json's syntax errors (including its recursion limit) mean the input is not JSON we can
/// read; its data errors mean well-formed JSON of the wrong shape.
pub(super) fn json_error(what: &'static str, e: serde_json::Error) -> ParseError {
    match e.classify() {
        Category::Data => ParseError::malformed(what, e),
        Category::Syntax | Category::Eof | Category::Io => {
            ParseError::InvalidJson(one_line(&e.to_string()))
        }
    }
}

/// Up to eight top-level keys of an object, for refusals that should say what *was* sent.
fn top_level_keys(text: &str) -> String {
    struct Keys(Vec<String>, usize);
    impl<'de> Visitor<'de> for Keys {
        type Value = (Vec<String>, usize);
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Self::Value, A::Error> {
            while let Some((key, IgnoredAny)) = map.next_entry::<Cow<'de, str>, IgnoredAny>()? {
                self.1 += 1;
                if self.0.len() < 8 {
                    self.0.push(shown(&key));
                }
            }
            Ok((self.0, self.1))
        }
    }
    struct KeysSeed;
    impl<'de> de::DeserializeSeed<'de> for KeysSeed {
        type Value = (Vec<String>, usize);
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(Keys(Vec::new(), 0))
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    match de::DeserializeSeed::deserialize(KeysSeed, &mut de) {
        Ok((keys, _)) if keys.is_empty() => "none".to_owned(),
        Ok((keys, total)) if total > keys.len() => format!("{}, …", keys.join(", ")),
        Ok((keys, _)) => keys.join(", "),
        Err(_) => "unreadable".to_owned(),
    }
}

/// An input string as it may appear inside a one-line refusal: control characters escaped and
/// the length bounded, since it comes from the event.
pub(super) fn shown(s: &str) -> String {
    let clipped = clip(s, 80);
    let plain = clipped
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
    if plain {
        clipped.into_owned()
    } else {
        clipped.escape_debug().to_string()
    }
}

/// `shown`, in double quotes.
pub(super) fn quoted(s: &str) -> String {
    format!("\"{}\"", shown(s))
}

/// At most `max_chars` characters of `s`, cut on a character boundary and marked with `…`.
pub(super) fn clip(s: &str, max_chars: usize) -> Cow<'_, str> {
    // A string of no more bytes than that has no more characters either.
    if s.len() <= max_chars {
        return Cow::Borrowed(s);
    }
    match s.char_indices().nth(max_chars) {
        None => Cow::Borrowed(s),
        Some((cut, _)) => {
            let head = s.get(..cut).unwrap_or(s).trim_end();
            Cow::Owned(format!("{head}…"))
        }
    }
}

/// A title fit for a ticket subject: one line, bounded length. A `String` that already is one
/// is returned as it is, without copying.
pub(super) fn title<'t>(s: impl Into<Cow<'t, str>>) -> String {
    const MAX_CHARS: usize = 256;
    let s = s.into();
    if s.len() <= MAX_CHARS && is_one_line(&s) {
        return s.into_owned();
    }
    let clipped = clip(&s, MAX_CHARS);
    if is_one_line(&clipped) {
        clipped.into_owned()
    } else {
        one_line(&clipped)
    }
}

/// Already what `one_line` would make of it: no line breaks, tabs, doubled or edge spaces.
pub(super) fn is_one_line(s: &str) -> bool {
    let bytes = s.as_bytes();
    let edge = |b: Option<&u8>| b.is_some_and(u8::is_ascii_whitespace);
    !edge(bytes.first())
        && !edge(bytes.last())
        && !bytes.windows(2).any(|w| w == b"  ")
        && !bytes.iter().any(|&b| b.is_ascii_whitespace() && b != b' ')
        && s.is_ascii()
}

/// A JSON string, borrowed from the input unless it contained escapes. Anything else is a type
/// error: used for the keys that decide what an event is.
pub(super) struct Text<'a>(Cow<'a, str>);

impl Text<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(PhantomData))
    }
}

/// A scalar read as text whatever its JSON type (`"asn": -1` and `"asn": "-1"` both occur), and
/// nothing at all for null, arrays and objects, which are skipped. Used for every field whose
/// exact type Firebreak does not care about, so a type surprise there never refuses an event.
pub(super) struct Loose<'a>(Option<Cow<'a, str>>);

impl Loose<'_> {
    pub fn as_str(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

/// The text of an optional [`Loose`] field, if it has any.
pub(super) fn str_of<'b>(field: &'b Option<Loose<'_>>) -> Option<&'b str> {
    field.as_ref().and_then(Loose::as_str)
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Loose<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Loose(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Loose(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Loose(Some(Cow::Owned(v))))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Loose(Some(Cow::Borrowed(if v { "true" } else { "false" }))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Loose(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Loose(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Loose(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Loose(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Loose(None))
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
                Loose::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Loose(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Loose(None))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A number that may arrive as an integer, a float or a numeric string (GuardDuty severities are
/// `5` or `5.0`; ASFF product fields are all strings). Anything else reads as absent.
pub(super) struct Number(Option<f64>);

impl Number {
    pub fn get(field: &Option<Number>) -> Option<f64> {
        field.as_ref().and_then(|n| n.0).filter(|v| v.is_finite())
    }
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let loose = Loose::deserialize(d)?;
        Ok(Number(
            loose.as_str().and_then(|s| s.trim().parse::<f64>().ok()),
        ))
    }
}

/// Resource tags in either form AWS uses: an object (`{"Name": "web"}`, ASFF) or a list of
/// key/value objects (`[{"key": "Name", "value": "web"}]`, GuardDuty, either case). Order is
/// kept; entries without a textual key and value, and anything that is not tags, are skipped.
#[derive(Default)]
pub(super) struct TagMap<'a>(pub Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'de: 'a, 'a> Deserialize<'de> for TagMap<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = TagMap<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("tags")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut tags = Vec::new();
                while let Some((key, value)) = map.next_entry::<Loose<'a>, Loose<'a>>()? {
                    if let (Some(k), Some(v)) = (key.0, value.0) {
                        tags.push((k, v));
                    }
                }
                Ok(TagMap(tags))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut tags = Vec::new();
                while let Some(item) = seq.next_element::<TagItem<'a>>()? {
                    if let Some(pair) = item.0 {
                        tags.push(pair);
                    }
                }
                Ok(TagMap(tags))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(TagMap::default())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(TagMap::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(TagMap::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(TagMap::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(TagMap::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(TagMap::default())
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// One `{"key": …, "value": …}` element of a tag list (either case); anything else is skipped.
struct TagItem<'a>(Option<(Cow<'a, str>, Cow<'a, str>)>);

impl<'de: 'a, 'a> Deserialize<'de> for TagItem<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = TagItem<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a tag")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let (mut key, mut value) = (None, None);
                while let Some(name) = map.next_key::<Loose<'de>>()? {
                    match name.as_str() {
                        Some("key" | "Key") => key = map.next_value::<Loose<'a>>()?.0,
                        Some("value" | "Value") => value = map.next_value::<Loose<'a>>()?.0,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(TagItem(key.zip(value)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(TagItem(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(TagItem(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(TagItem(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(TagItem(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(TagItem(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(TagItem(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(TagItem(None))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// The resources of one signal, in the order found: ids trimmed, empty ids and repeats dropped.
#[derive(Default)]
pub(super) struct ResourceList(Vec<Resource>);

impl ResourceList {
    pub fn push(&mut self, kind: ResourceKind, id: &str) {
        let id = id.trim();
        if id.is_empty() || self.0.iter().any(|r| r.id == id) {
            return;
        }
        self.0.push(Resource {
            kind,
            id: id.to_owned(),
        });
    }

    pub fn into_vec(self) -> Vec<Resource> {
        self.0
    }
}

/// The tags of one signal, in the order found, without exact repeats.
#[derive(Default)]
pub(super) struct TagList(Vec<Tag>);

impl TagList {
    pub fn extend(&mut self, tags: &TagMap<'_>) {
        for (key, value) in &tags.0 {
            let key = key.trim();
            if key.is_empty() || self.0.iter().any(|t| t.key == key && t.value == *value) {
                continue;
            }
            self.0.push(Tag {
                key: key.to_owned(),
                value: value.clone().into_owned(),
            });
        }
    }

    pub fn extend_from(&mut self, tags: Option<&TagMap<'_>>) {
        if let Some(tags) = tags {
            self.extend(tags);
        }
    }

    pub fn into_vec(self) -> Vec<Tag> {
        self.0
    }
}

/// The colon-separated fields of an ARN, each trimmed of stray whitespace (a docs sample writes
/// `us-east-1: 444455556666`). The resource keeps its inner colons (`alarm:name`).
pub(super) struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

pub(super) fn split_arn(s: &str) -> Option<Arn<'_>> {
    let mut parts = s.trim().splitn(6, ':');
    if parts.next()?.trim() != "arn" {
        return None;
    }
    Some(Arn {
        partition: parts.next()?.trim(),
        service: parts.next()?.trim(),
        region: parts.next()?.trim(),
        account: parts.next()?.trim(),
        resource: parts.next()?.trim(),
    })
}

/// An ARN with the whitespace around its separators removed; whitespace inside the resource
/// name is kept, since alarm names may contain spaces. Non-ARNs are only trimmed.
pub(super) fn clean_arn(s: &str) -> String {
    if !s.bytes().any(|b| b.is_ascii_whitespace()) {
        return s.to_owned();
    }
    let Some(arn) = split_arn(s) else {
        return s.trim().to_owned();
    };
    let resource = match arn.resource.split_once(':') {
        Some((kind, name)) => format!("{}:{}", kind.trim_end(), name.trim_start()),
        None => arn.resource.to_owned(),
    };
    format!(
        "arn:{}:{}:{}:{}:{resource}",
        arn.partition, arn.service, arn.region, arn.account
    )
}

/// A real account id: twelve digits. Placeholders (`EXAMPLE`, `ACCOUNT_NUMBER`) are not.
pub(super) fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A region code such as `us-east-1` or `us-gov-west-1` (not `REGION`, not `<region>`).
pub(super) fn is_region_code(s: &str) -> bool {
    (9..=20).contains(&s.len())
        && s.contains('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.as_bytes().last().is_some_and(u8::is_ascii_digit)
        && s.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
}

/// The partition a region belongs to, for ARNs Firebreak has to construct.
pub(super) fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::signal::testing::{fixture, received};
    use crate::signal::{Action, Source};

    fn parse_str(input: &str) -> Result<Vec<Signal>, ParseError> {
        parse(input.as_bytes(), received())
    }

    #[test]
    fn detail_before_or_after_source_gives_the_same_signal() {
        // The custodian sample writes `detail` first, so it takes the deferred path; AWS writes
        // it last, which the probe parses in its own pass.
        let detail_first =
            fixture("guardduty/custodian-eventbridge-backdoor-ec2-cc-activity-b-dns.json");
        #[derive(Deserialize)]
        struct Parts<'a> {
            #[serde(borrow)]
            detail: &'a RawValue,
        }
        let parts: Parts<'_> = serde_json::from_str(&detail_first).expect("fixture is JSON");
        let detail_last = format!(
            r#"{{"source": "aws.guardduty", "detail-type": "GuardDuty Finding",
                "account": "101010101111", "region": "us-east-1",
                "time": "1970-01-01T00:00:00Z", "detail": {}}}"#,
            parts.detail.get()
        );

        let a = parse_str(&detail_first).expect("parses");
        let b = parse_str(&detail_last).expect("parses");
        assert_eq!(a.len(), 1);
        let (a, b) = (&a[0], &b[0]);
        assert_eq!(
            (
                &a.dedupe_key,
                &a.resources,
                a.severity,
                a.observed_at,
                &a.account
            ),
            (
                &b.dedupe_key,
                &b.resources,
                b.severity,
                b.observed_at,
                &b.account
            )
        );
    }

    #[test]
    fn repeated_routing_key_is_refused() {
        let input = r#"{"source": "aws.guardduty", "detail-type": "GuardDuty Finding",
            "detail": {"id": "x", "type": "t"}, "source": "aws.ec2"}"#;
        let err = parse_str(input).expect_err("refused");
        assert!(matches!(err, ParseError::Malformed { .. }), "{err}");
        assert!(
            err.to_string().contains("duplicate field `source`"),
            "{err}"
        );
    }

    #[test]
    fn alarm_data_instead_of_detail_is_refused_as_a_hybrid() {
        let input = fixture(
            "cloudwatch-alarm/rust-fixture-composite-suppressor-alarmData-instead-of-detail.json",
        );
        let err = parse_str(&input).expect_err("refused");
        assert!(matches!(
            err,
            ParseError::Malformed {
                what: "EventBridge event",
                ..
            }
        ));
        assert!(
            err.to_string()
                .contains("\"alarmData\" instead of \"detail\"")
        );
    }

    #[test]
    fn unsupported_eventbridge_event_names_source_and_detail_type() {
        let err =
            parse_str(&fixture("ec2-state/docs-eventbridge-terminated.json")).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "unsupported event: aws.ec2 \"EC2 Instance State-change Notification\" \
             (Firebreak handles CloudWatch alarms, GuardDuty and Security Hub findings)"
        );
    }

    #[test]
    fn guardduty_announcement_is_refused_as_not_a_finding() {
        let input = fixture("sns/docs-guardduty-announcement-raw-sns-http-envelope.json");
        let err = parse_str(&input).expect_err("refused");
        assert!(matches!(err, ParseError::Unsupported(_)));
        assert!(
            err.to_string()
                .contains("GuardDuty announcement (NEW_FEATURES), not a finding")
        );
    }

    #[test]
    fn raw_sns_envelope_time_stands_in_for_a_missing_alarm_time() {
        let message = r#"{"AlarmName": "cpu", "AlarmArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:cpu", "NewStateValue": "OK"}"#;
        let input = serde_json::json!({
            "Type": "Notification",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:alarms",
            "Timestamp": "2024-05-06T07:08:09.000Z",
            "Message": message,
        })
        .to_string();
        let signals = parse_str(&input).expect("parses");
        assert_eq!(signals[0].action, Action::Resolve);
        assert_eq!(signals[0].source, Source::CloudwatchAlarm);
        assert_eq!(
            signals[0].observed_at,
            parse_timestamp("2024-05-06T07:08:09Z").expect("valid")
        );
    }

    #[test]
    fn lambda_sns_record_time_stands_in_for_a_missing_alarm_time() {
        let input = fixture("sns/localstack-recorded-sns-message-body-metric-alarm.json");
        // Bare, its "date" placeholders leave only the received time.
        assert_eq!(
            parse_str(&input).expect("parses")[0].observed_at,
            received()
        );
    }

    #[test]
    fn top_level_array_of_findings_is_not_accepted() {
        let finding = fixture("securityhub/docs-config-bare-asff-s3-bucket.json");
        let err = parse_str(&format!("[{finding}]")).expect_err("refused");
        assert_eq!(err, ParseError::NotAnObject("an array"));
    }

    #[test]
    fn refusal_text_from_the_event_is_escaped_and_bounded() {
        assert_eq!(shown("aws.ec2"), "aws.ec2");
        assert_eq!(shown("a\nb\"c"), "a\\nb\\\"c");
        let long = "x".repeat(500);
        assert!(shown(&long).chars().count() <= 81);
    }

    #[test]
    fn clip_cuts_on_character_boundaries() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("ééééé", 3), "ééé…");
        assert_eq!(clip("ab  cd", 3), "ab…");
    }

    #[test]
    fn titles_are_one_line() {
        assert_eq!(title("  a\n\tb   c "), "a b c");
        assert_eq!(title("plain title"), "plain title");
        assert_eq!(title("non\u{a0}breaking"), "non breaking");
    }

    #[test]
    fn loose_reads_scalars_as_text_and_skips_structures() {
        let v: Vec<Loose<'_>> =
            serde_json::from_str(r#"["s", -1, 2.5, true, null, [1, [2]], {"a": {"b": 1}}]"#)
                .expect("parses");
        let got: Vec<_> = v.iter().map(Loose::as_str).collect();
        assert_eq!(
            got,
            [
                Some("s"),
                Some("-1"),
                Some("2.5"),
                Some("true"),
                None,
                None,
                None
            ]
        );
    }

    #[test]
    fn tag_map_reads_objects_and_key_value_lists_and_skips_junk() {
        let read = |json: &str| -> Vec<(String, String)> {
            let tags: TagMap<'_> = serde_json::from_str(json).expect("parses");
            tags.0
                .into_iter()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        };
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            read(r#"{"Name": "web", "n": 1, "x": {}}"#),
            [pair("Name", "web"), pair("n", "1")]
        );
        assert_eq!(
            read(r#"[{"key": "a", "value": "1"}, {"Key": "b", "Value": "2"}, 3, {"key": "c"}]"#),
            [pair("a", "1"), pair("b", "2")]
        );
        assert!(read(r#""[{\"Key\": \"a\"}]""#).is_empty());
    }

    #[test]
    fn arns_lose_stray_spaces_around_separators_only() {
        assert_eq!(
            clean_arn(" arn:aws:cloudwatch:us-east-1: 444455556666:alarm: my alarm "),
            "arn:aws:cloudwatch:us-east-1:444455556666:alarm:my alarm"
        );
        assert_eq!(clean_arn(" not-an-arn "), "not-an-arn");
        let arn = split_arn("arn:aws:cloudwatch:<region>:111111111111:alarm:<alarm-name:1>")
            .expect("is an ARN");
        assert_eq!(arn.account, "111111111111");
        assert_eq!(arn.resource, "alarm:<alarm-name:1>");
    }

    #[test]
    fn placeholders_are_not_accounts_or_regions() {
        assert!(is_account_id("123456789012"));
        assert!(!is_account_id("ACCOUNT_NUMBER"));
        assert!(!is_account_id("12345678901"));
        assert!(is_region_code("us-east-1"));
        assert!(is_region_code("us-gov-west-1"));
        assert!(!is_region_code("REGION"));
        assert!(!is_region_code("<region>"));
        assert!(!is_region_code("US East (N. Virginia)"));
        assert_eq!(partition_of("cn-north-1"), "aws-cn");
    }
}
