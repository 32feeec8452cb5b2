//! The `match:` section: which signals a playbook takes, compiled once at load time.
//!
//! A block's conditions must all hold (AND); a condition's list is an OR; `match:` may be one
//! block or a list of blocks, any of which may match. Globs are compiled into one `GlobSet` per
//! condition and regexes into one `RegexSet`, so [`Matcher::matches`] only compares and never
//! allocates: triage runs it against every playbook for every signal.

use std::fmt;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use regex::bytes::{RegexSet, RegexSetBuilder};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor, value};
use serde::{Deserialize, Serialize};

use super::de::{NonEmpty, Text, map_then, str_then};
use crate::signal::{ResourceKind, Severity, Signal, Source};

/// The CloudWatch alarm kinds, as the signal's `kind` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    Metric,
    MetricMath,
    AnomalyDetection,
    Composite,
}

impl AlarmKind {
    pub const ALL: [AlarmKind; 4] = [
        AlarmKind::Metric,
        AlarmKind::MetricMath,
        AlarmKind::AnomalyDetection,
        AlarmKind::Composite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlarmKind::Metric => "metric",
            AlarmKind::MetricMath => "metric_math",
            AlarmKind::AnomalyDetection => "anomaly_detection",
            AlarmKind::Composite => "composite",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }

    fn bit_of(kind: &str) -> u8 {
        AlarmKind::ALL
            .iter()
            .find(|k| k.as_str() == kind)
            .map_or(0, |k| k.bit())
    }
}

const ALL_SOURCES: [Source; 3] = [
    Source::CloudwatchAlarm,
    Source::Guardduty,
    Source::SecurityHub,
];
const ANY_SOURCE: u8 = 0b111;

fn source_bit(source: Source) -> u8 {
    1 << source as u8
}

fn kind_bit(kind: ResourceKind) -> u32 {
    1 << kind as u32
}

fn source_names(mask: u8) -> String {
    ALL_SOURCES
        .iter()
        .filter(|s| mask & source_bit(**s) != 0)
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A glob as written, checked when it is read so its error carries its own line.
struct Glob(globset::Glob);

impl<'de> Deserialize<'de> for Glob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        str_then(d, "a glob pattern", |text| {
            // Spelled out rather than left to defaults: `*` must cross `/` and `:` (finding
            // types are `Backdoor:EC2/C&CActivity.B!DNS`), and backslash must escape on every
            // platform.
            GlobBuilder::new(text)
                .literal_separator(false)
                .backslash_escape(true)
                .case_insensitive(false)
                .build()
                .map(Glob)
                .map_err(|e| format!("invalid glob `{text}`: {}", e.kind()))
        })
    }
}

/// A regex as written, checked when it is read.
struct Pattern(String);

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        str_then(d, "a regular expression", |text| {
            regex_builder(text)
                .build()
                .map(|_| Pattern(text.to_owned()))
                .map_err(|e| format!("invalid regex `{text}`: {}", regex_reason(&e)))
        })
    }
}

/// Regexes match bytes with Unicode mode off, so `(?i)` folds ASCII letters and `\w`, `\d`
/// are ASCII. Alarm names are ASCII in practice, and this keeps case-insensitive matching
/// free of the regex crate's Unicode tables (the workspace builds it without them).
fn regex_builder(pattern: &str) -> regex::bytes::RegexBuilder {
    let mut builder = regex::bytes::RegexBuilder::new(pattern);
    builder.unicode(false);
    builder
}

/// The regex crate explains syntax errors over several lines with a caret under the problem;
/// a `file:line: message` report needs the one line that names it.
fn regex_reason(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(s) => s
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("error: "))
            .unwrap_or(s)
            .trim()
            .to_owned(),
        regex::Error::CompiledTooBig(limit) => {
            format!("compiles to more than {limit} bytes; simplify it")
        }
        other => other.to_string(),
    }
}

/// What a listed tag must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TagValue {
    Any,
    Exactly(String),
}

struct TagConditions(Vec<(String, TagValue)>);

impl<'de> Deserialize<'de> for TagConditions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TagsVisitor;

        impl<'de> Visitor<'de> for TagsVisitor {
            type Value = TagConditions;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of tag keys to values (\"*\" for any value)")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TagConditions, A::Error> {
                let mut out: Vec<(String, TagValue)> = Vec::new();
                while let Some(key) = map.next_key_seed(Text)? {
                    let value = map.next_value_seed(Text)?;
                    if out.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format_args!(
                            "tag `{key}` is listed twice"
                        )));
                    }
                    let value = if value == "*" {
                        TagValue::Any
                    } else {
                        TagValue::Exactly(value)
                    };
                    out.push((key, value));
                }
                if out.is_empty() {
                    return Err(de::Error::custom(
                        "empty mapping; leave the field out to mean \"any\"",
                    ));
                }
                Ok(TagConditions(out))
            }
        }

        d.deserialize_map(TagsVisitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBlock {
    sources: Option<NonEmpty<Source>>,
    finding_types: Option<NonEmpty<Glob>>,
    generator_ids: Option<NonEmpty<Glob>>,
    control_ids: Option<NonEmpty<Glob>>,
    alarm_names: Option<NonEmpty<Pattern>>,
    alarm_kinds: Option<NonEmpty<AlarmKind>>,
    resource_types: Option<NonEmpty<ResourceKind>>,
    resource_tags: Option<TagConditions>,
    min_severity: Option<Severity>,
}

/// A compiled glob condition and the patterns it came from.
#[derive(Clone)]
struct Globs {
    written: Vec<String>,
    set: GlobSet,
}

impl Globs {
    fn compile(field: &str, globs: Option<NonEmpty<Glob>>) -> Result<Option<Globs>, String> {
        let Some(NonEmpty(globs)) = globs else {
            return Ok(None);
        };
        let mut builder = GlobSetBuilder::new();
        let written = globs.iter().map(|g| g.0.glob().to_owned()).collect();
        for g in globs {
            builder.add(g.0);
        }
        let set = builder
            .build()
            .map_err(|e| format!("{field}: cannot compile the globs: {}", e.kind()))?;
        Ok(Some(Globs { written, set }))
    }

    fn is_match(&self, s: &str) -> bool {
        self.set.is_match(s)
    }
}

impl fmt::Debug for Globs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.written).finish()
    }
}

/// One block of `match:`: every condition given must hold.
#[derive(Clone)]
pub struct MatchBlock {
    /// The sources this block can match: those listed, narrowed by the source-specific fields.
    sources: u8,
    finding_types: Option<Globs>,
    generator_ids: Option<Globs>,
    control_ids: Option<Globs>,
    alarm_names: Option<RegexSet>,
    /// 0 when not constrained.
    alarm_kinds: u8,
    /// 0 when not constrained.
    resource_types: u32,
    resource_tags: Vec<(String, TagValue)>,
    min_severity: Option<Severity>,
    unconditional: bool,
}

impl MatchBlock {
    fn compile(raw: RawBlock) -> Result<MatchBlock, String> {
        let unconditional = raw.sources.is_none()
            && raw.finding_types.is_none()
            && raw.generator_ids.is_none()
            && raw.control_ids.is_none()
            && raw.alarm_names.is_none()
            && raw.alarm_kinds.is_none()
            && raw.resource_types.is_none()
            && raw.resource_tags.is_none()
            && raw.min_severity.is_none();

        let listed = raw.sources.as_ref().map_or(ANY_SOURCE, |NonEmpty(list)| {
            list.iter().fold(0, |m, s| m | source_bit(*s))
        });
        let guardduty = source_bit(Source::Guardduty);
        let security_hub = source_bit(Source::SecurityHub);
        let alarm = source_bit(Source::CloudwatchAlarm);
        let narrowing: Vec<(&str, u8)> = [
            ("finding_types", raw.finding_types.is_some(), guardduty),
            ("generator_ids", raw.generator_ids.is_some(), security_hub),
            ("control_ids", raw.control_ids.is_some(), security_hub),
            ("alarm_names", raw.alarm_names.is_some(), alarm),
            ("alarm_kinds", raw.alarm_kinds.is_some(), alarm),
        ]
        .into_iter()
        .filter(|(_, given, _)| *given)
        .map(|(field, _, mask)| (field, mask))
        .collect();
        let sources = narrowing.iter().fold(listed, |m, (_, only)| m & only);
        if sources == 0 {
            let mut parts: Vec<String> = Vec::new();
            if listed != ANY_SOURCE {
                parts.push(format!("`sources` is [{}]", source_names(listed)));
            }
            parts.extend(
                narrowing.iter().map(|(field, only)| {
                    format!("`{field}` applies only to {}", source_names(*only))
                }),
            );
            return Err(format!(
                "this match block can never match: {}. A signal must meet every condition in a \
                 block; to accept either, give `match:` a list of blocks (any block may match)",
                parts.join(" and ")
            ));
        }
        if sources == alarm && raw.resource_tags.is_some() {
            return Err(
                "`resource_tags` can never match alarm signals: alarm events carry no \
                        tags (the ec2.instance enricher looks them up later)"
                    .to_owned(),
            );
        }

        let alarm_names = match raw.alarm_names {
            None => None,
            Some(NonEmpty(patterns)) => Some(
                RegexSetBuilder::new(patterns.iter().map(|p| p.0.as_str()))
                    .unicode(false)
                    .build()
                    .map_err(|e| format!("alarm_names: {}", regex_reason(&e)))?,
            ),
        };
        Ok(MatchBlock {
            sources,
            finding_types: Globs::compile("finding_types", raw.finding_types)?,
            generator_ids: Globs::compile("generator_ids", raw.generator_ids)?,
            control_ids: Globs::compile("control_ids", raw.control_ids)?,
            alarm_names,
            alarm_kinds: raw
                .alarm_kinds
                .map_or(0, |NonEmpty(k)| k.iter().fold(0, |m, k| m | k.bit())),
            resource_types: raw
                .resource_types
                .map_or(0, |NonEmpty(k)| k.iter().fold(0, |m, k| m | kind_bit(*k))),
            resource_tags: raw.resource_tags.map_or_else(Vec::new, |t| t.0),
            min_severity: raw.min_severity,
            unconditional,
        })
    }

    /// Whether every condition of the block holds for `signal`.
    pub fn matches(&self, signal: &Signal) -> bool {
        // Cheapest and most selective first: most signals fail on their source.
        if self.sources & source_bit(signal.source) == 0 {
            return false;
        }
        if self.min_severity.is_some_and(|min| signal.severity < min) {
            return false;
        }
        if self.alarm_kinds != 0 && self.alarm_kinds & AlarmKind::bit_of(&signal.kind) == 0 {
            return false;
        }
        if self.resource_types != 0
            && !signal
                .resources
                .iter()
                .any(|r| self.resource_types & kind_bit(r.kind) != 0)
        {
            return false;
        }
        // The source check above already guarantees `kind` is a finding type for
        // `finding_types` and a generator id for `generator_ids`.
        if self
            .finding_types
            .as_ref()
            .is_some_and(|g| !g.is_match(&signal.kind))
        {
            return false;
        }
        if self
            .generator_ids
            .as_ref()
            .is_some_and(|g| !g.is_match(&signal.kind))
        {
            return false;
        }
        if let Some(g) = &self.control_ids
            && !signal.control_id.as_deref().is_some_and(|c| g.is_match(c))
        {
            return false;
        }
        if let Some(set) = &self.alarm_names
            && !signal
                .alarm_name
                .as_deref()
                .is_some_and(|n| set.is_match(n.as_bytes()))
        {
            return false;
        }
        self.resource_tags.iter().all(|(key, want)| {
            signal.tags.iter().any(|t| {
                t.key == *key
                    && match want {
                        TagValue::Any => true,
                        TagValue::Exactly(v) => t.value == *v,
                    }
            })
        })
    }

    /// Whether a signal from `source` could satisfy this block.
    pub fn can_match(&self, source: Source) -> bool {
        self.sources & source_bit(source) != 0
    }

    /// Whether the block has no condition at all, so it takes every signal.
    pub fn is_unconditional(&self) -> bool {
        self.unconditional
    }
}

impl fmt::Debug for MatchBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("MatchBlock");
        d.field("sources", &source_names(self.sources));
        if let Some(g) = &self.finding_types {
            d.field("finding_types", g);
        }
        if let Some(g) = &self.generator_ids {
            d.field("generator_ids", g);
        }
        if let Some(g) = &self.control_ids {
            d.field("control_ids", g);
        }
        if let Some(set) = &self.alarm_names {
            d.field("alarm_names", &set.patterns());
        }
        if self.alarm_kinds != 0 {
            let kinds: Vec<&str> = AlarmKind::ALL
                .iter()
                .filter(|k| self.alarm_kinds & k.bit() != 0)
                .map(|k| k.as_str())
                .collect();
            d.field("alarm_kinds", &kinds);
        }
        if self.resource_types != 0 {
            let kinds: Vec<&str> = ResourceKind::ALL
                .iter()
                .filter(|k| self.resource_types & kind_bit(**k) != 0)
                .map(|k| k.as_str())
                .collect();
            d.field("resource_types", &kinds);
        }
        if !self.resource_tags.is_empty() {
            d.field("resource_tags", &self.resource_tags);
        }
        if let Some(min) = self.min_severity {
            d.field("min_severity", &min);
        }
        d.finish()
    }
}

impl<'de> Deserialize<'de> for MatchBlock {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        map_then(d, "a mapping of match conditions", MatchBlock::compile)
    }
}

/// The compiled `match:` section: one or more blocks, any of which may match.
#[derive(Debug, Clone)]
pub struct Matcher {
    blocks: Vec<MatchBlock>,
}

impl Matcher {
    pub fn matches(&self, signal: &Signal) -> bool {
        self.blocks.iter().any(|b| b.matches(signal))
    }

    pub fn blocks(&self) -> &[MatchBlock] {
        &self.blocks
    }

    /// Whether a signal from `source` could match at all.
    pub fn can_match(&self, source: Source) -> bool {
        self.blocks.iter().any(|b| b.can_match(source))
    }

    /// The sources a signal may come from and still match.
    pub fn sources(&self) -> impl Iterator<Item = Source> + '_ {
        ALL_SOURCES.into_iter().filter(|s| self.can_match(*s))
    }

    /// Whether some block has no condition, so the playbook takes every signal.
    pub fn is_catch_all(&self) -> bool {
        self.blocks.iter().any(MatchBlock::is_unconditional)
    }
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MatcherVisitor;

        impl<'de> Visitor<'de> for MatcherVisitor {
            type Value = Matcher;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a mapping of match conditions (`{}` matches every signal) or a list of them",
                )
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Matcher, A::Error> {
                let raw = RawBlock::deserialize(value::MapAccessDeserializer::new(map))?;
                let block = MatchBlock::compile(raw).map_err(de::Error::custom)?;
                Ok(Matcher {
                    blocks: vec![block],
                })
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Matcher, A::Error> {
                let mut blocks = Vec::new();
                while let Some(block) = seq.next_element::<MatchBlock>()? {
                    blocks.push(block);
                }
                if blocks.is_empty() {
                    return Err(de::Error::custom(
                        "empty list of match blocks; write `match: {}` to match every signal",
                    ));
                }
                Ok(Matcher { blocks })
            }
        }

        d.deserialize_any(MatcherVisitor)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;

    use super::*;
    use crate::signal::{Action, Resource, Tag};

    fn matcher(yaml: &str) -> Matcher {
        serde_yaml_ng::from_str(yaml).expect("valid match section")
    }

    fn error(yaml: &str) -> String {
        serde_yaml_ng::from_str::<Matcher>(yaml)
            .expect_err("invalid match section")
            .to_string()
    }

    fn signal(source: Source, kind: &str) -> Signal {
        Signal {
            source,
            action: Action::Open,
            severity: Severity::Medium,
            title: String::new(),
            kind: kind.to_owned(),
            control_id: None,
            alarm_name: None,
            alarm_state: None,
            resources: vec![],
            tags: vec![],
            account: Some("123456789012".into()),
            region: Some("eu-west-1".into()),
            observed_at: Utc::now(),
            count: 1,
            dedupe_key: "k".into(),
            raw: Arc::from(""),
        }
    }

    fn finding(kind: &str) -> Signal {
        signal(Source::Guardduty, kind)
    }

    fn alarm(name: &str, kind: &str) -> Signal {
        Signal {
            alarm_name: Some(name.to_owned()),
            ..signal(Source::CloudwatchAlarm, kind)
        }
    }

    #[test]
    fn star_crosses_slashes_and_colons() {
        let m = matcher("finding_types: ['Backdoor:*']");
        assert!(m.matches(&finding("Backdoor:EC2/C&CActivity.B!DNS")));
        let m = matcher("finding_types: ['*/C&CActivity.B*']");
        assert!(m.matches(&finding("Backdoor:EC2/C&CActivity.B!DNS")));
    }

    #[test]
    fn globs_are_case_sensitive_and_anchored() {
        let m = matcher("finding_types: ['Backdoor:EC2/*']");
        assert!(!m.matches(&finding("backdoor:ec2/X")));
        assert!(!m.matches(&finding("Trojan:Backdoor:EC2/X")));
    }

    #[test]
    fn globs_support_classes_and_alternation() {
        let m = matcher(
            "finding_types: ['{Trojan,Backdoor}:EC2/[A-C]*', 'Recon:EC2/Port?robeUnprotectedPort']",
        );
        assert!(m.matches(&finding("Trojan:EC2/BlackholeTraffic")));
        assert!(m.matches(&finding("Backdoor:EC2/C&CActivity.B")));
        assert!(!m.matches(&finding("Backdoor:EC2/Spambot")));
        assert!(m.matches(&finding("Recon:EC2/PortProbeUnprotectedPort")));
    }

    #[test]
    fn finding_types_only_match_guardduty_and_generator_ids_only_security_hub() {
        let m = matcher("finding_types: ['*']");
        assert!(m.matches(&finding("anything")));
        assert!(!m.matches(&signal(Source::SecurityHub, "anything")));
        let m = matcher("generator_ids: ['*']");
        assert!(m.matches(&signal(Source::SecurityHub, "anything")));
        assert!(!m.matches(&finding("anything")));
    }

    #[test]
    fn alarm_names_are_unanchored_regexes() {
        let m = matcher("alarm_names: ['cpu-high', '^checkout-.*-down$']");
        assert!(m.matches(&alarm("web-cpu-high-1", "metric")));
        assert!(m.matches(&alarm("checkout-api-down", "composite")));
        assert!(!m.matches(&alarm("checkout-api-down-2", "composite")));
        assert!(!m.matches(&finding("cpu-high")));
    }

    #[test]
    fn alarm_kinds_match_the_signal_kind_of_alarms() {
        let m = matcher("alarm_kinds: [composite, metric_math]");
        assert!(m.matches(&alarm("a", "composite")));
        assert!(m.matches(&alarm("a", "metric_math")));
        assert!(!m.matches(&alarm("a", "metric")));
        assert!(!m.matches(&signal(Source::SecurityHub, "composite")));
    }

    #[test]
    fn control_ids_match_the_control_id() {
        let m = matcher("control_ids: ['S3.*', 'EC2.19']");
        let with = |c: Option<&str>| Signal {
            control_id: c.map(str::to_owned),
            ..signal(Source::SecurityHub, "security-control/S3.8")
        };
        assert!(m.matches(&with(Some("S3.8"))));
        assert!(m.matches(&with(Some("EC2.19"))));
        assert!(!m.matches(&with(Some("EC2.1"))));
        assert!(!m.matches(&with(None)));
    }

    #[test]
    fn resource_types_need_any_resource_of_a_listed_kind() {
        let m = matcher("resource_types: [ec2_instance, s3_bucket]");
        let mut s = finding("x");
        assert!(!m.matches(&s));
        s.resources.push(Resource {
            kind: ResourceKind::AccessKey,
            id: "AKIA".into(),
        });
        assert!(!m.matches(&s));
        s.resources.push(Resource {
            kind: ResourceKind::S3Bucket,
            id: "b".into(),
        });
        assert!(m.matches(&s));
    }

    #[test]
    fn resource_tags_need_every_tag_with_its_value_or_any_value_for_star() {
        let m = matcher("resource_tags: {Environment: prod, Owner: '*'}");
        let tag = |k: &str, v: &str| Tag {
            key: k.into(),
            value: v.into(),
        };
        let mut s = finding("x");
        s.tags = vec![tag("Environment", "prod")];
        assert!(!m.matches(&s));
        s.tags.push(tag("Owner", "team-a"));
        assert!(m.matches(&s));
        s.tags[0] = tag("Environment", "Prod");
        assert!(!m.matches(&s));
    }

    #[test]
    fn min_severity_compares_the_signal_severity() {
        let m = matcher("min_severity: high");
        let mut s = finding("x");
        s.severity = Severity::Medium;
        assert!(!m.matches(&s));
        s.severity = Severity::High;
        assert!(m.matches(&s));
        s.severity = Severity::Critical;
        assert!(m.matches(&s));
    }

    #[test]
    fn conditions_in_a_block_are_anded_and_blocks_are_ored() {
        let and = matcher("{finding_types: ['Backdoor:*'], min_severity: high}");
        let mut s = finding("Backdoor:EC2/X");
        assert!(!and.matches(&s));
        let or = matcher(
            "[{finding_types: ['Backdoor:*'], min_severity: high}, {alarm_kinds: [composite]}]",
        );
        assert!(!or.matches(&s));
        s.severity = Severity::High;
        assert!(or.matches(&s));
        assert!(or.matches(&alarm("a", "composite")));
        assert_eq!(or.blocks().len(), 2);
    }

    #[test]
    fn an_empty_mapping_matches_everything() {
        let m = matcher("{}");
        assert!(m.is_catch_all());
        assert!(m.matches(&finding("x")));
        assert!(m.matches(&alarm("a", "metric")));
    }

    #[test]
    fn knows_which_sources_it_can_match() {
        let m = matcher("[{control_ids: ['S3.1']}, {finding_types: ['Policy:S3/*']}]");
        let sources: Vec<Source> = m.sources().collect();
        assert_eq!(sources, [Source::Guardduty, Source::SecurityHub]);
        assert!(!m.is_catch_all());
    }

    #[test]
    fn refuses_a_block_whose_conditions_exclude_each_other() {
        let err = error("{sources: [security_hub], finding_types: ['Backdoor:*']}");
        assert!(
            err.contains("can never match: `sources` is [security_hub] and `finding_types` applies only to guardduty"),
            "{err}"
        );
        let err = error("{finding_types: ['a'], alarm_names: ['b']}");
        assert!(err.contains("`finding_types` applies only to guardduty and `alarm_names` applies only to cloudwatch_alarm"), "{err}");
    }

    #[test]
    fn refuses_tag_conditions_on_alarm_only_blocks() {
        let err = error("{alarm_kinds: [metric], resource_tags: {Env: prod}}");
        assert!(err.contains("alarm events carry no tags"), "{err}");
    }

    #[test]
    fn refuses_empty_lists_and_bad_patterns() {
        assert!(error("finding_types: []").contains("empty list"));
        assert!(error("[]").contains("empty list of match blocks"));
        let err = error("finding_types: ['Backdoor:EC2/[']");
        assert!(
            err.contains("invalid glob `Backdoor:EC2/[`: unclosed character class"),
            "{err}"
        );
        let err = error("alarm_names: ['checkout-(']");
        assert!(
            err.contains("invalid regex `checkout-(`: unclosed group"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
        let err = error("alarm_kinds: [metrics]");
        assert!(err.contains("unknown variant `metrics`"), "{err}");
        let err = error("finding_type: ['x']");
        assert!(err.contains("unknown field `finding_type`"), "{err}");
    }

    #[test]
    fn debug_shows_conditions_as_written() {
        let m = matcher("{finding_types: ['Backdoor:*'], resource_types: [ec2_instance]}");
        let s = format!("{m:?}");
        assert!(s.contains("\"Backdoor:*\""), "{s}");
        assert!(s.contains("ec2_instance"), "{s}");
    }
}
