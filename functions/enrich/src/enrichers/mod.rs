//! The enrichers: each looks up one kind of context about one target.
//!
//! [`work`] turns a playbook's enricher list into units of work, one per enricher and target
//! (or one `skipped` unit when an enricher has nothing to look at); [`run`] runs one unit under
//! [`ENRICHER_TIMEOUT`] and always returns an [`EnrichmentResult`]. The modules beside this one
//! hold the calls, one per AWS service: [`cloudwatch`] (`cloudwatch.alarm`,
//! `cloudwatch.alarm_history`), [`ec2`] (`ec2.instance`), [`cloudtrail`]
//! (`cloudtrail.recent_changes`) and [`related`] (`incidents.related`, from the store).
//!
//! Data is kept compact (absent fields are left out rather than stored as `null`), because it
//! lives in the incident item and DynamoDB caps an item at 400 KB.

pub mod cloudtrail;
pub mod cloudwatch;
pub mod ec2;
pub mod related;

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use firebreak_shared::aws::AwsError;
use firebreak_shared::catalog::EnricherSpec;
use firebreak_shared::incident::{EnrichmentResult, Incident};
use firebreak_shared::store::Store;
use serde_json::Value;

/// The outcome of an enricher that found what it looked for.
pub const OK: &str = "ok";
/// The outcome of an enricher whose call failed; `error` says how.
pub const FAILED: &str = "failed";
/// The outcome of an enricher that had nothing to look at; `error` says why.
pub const SKIPPED: &str = "skipped";

/// How long one enricher may take, SDK retries included. The function has 30 s; this leaves
/// room for reading the incident before and for recording and announcing after.
pub const ENRICHER_TIMEOUT: Duration = Duration::from_secs(15);

/// Targets one enricher looks at, at most. The rest are recorded as skipped: an incident
/// naming dozens of resources must not grow its record past DynamoDB's item limit or turn
/// into a burst of calls that CloudTrail (two lookups a second) throttles.
pub const MAX_TARGETS: usize = 10;

/// The clients the enrichers call.
#[derive(Debug, Clone)]
pub struct Clients {
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub cloudtrail: aws_sdk_cloudtrail::Client,
}

impl Clients {
    /// The same clients, calling `region`. The incident's resources live where its signal came
    /// from, which is not this function's region when events are forwarded or aggregated
    /// (Security Hub's aggregation region). A missing or malformed region keeps the clients'.
    pub fn in_region(&self, region: Option<&str>) -> Clients {
        let Some(region) = region.filter(|r| is_region(r)) else {
            return self.clone();
        };
        if self.cloudwatch.config().region().map(|r| r.as_ref()) == Some(region) {
            return self.clone();
        }
        let r = aws_sdk_cloudwatch::config::Region::new(region.to_owned());
        Clients {
            cloudwatch: aws_sdk_cloudwatch::Client::from_conf(
                self.cloudwatch
                    .config()
                    .to_builder()
                    .region(r.clone())
                    .build(),
            ),
            ec2: aws_sdk_ec2::Client::from_conf(
                self.ec2.config().to_builder().region(r.clone()).build(),
            ),
            cloudtrail: aws_sdk_cloudtrail::Client::from_conf(
                self.cloudtrail.config().to_builder().region(r).build(),
            ),
        }
    }
}

/// `us-east-1`, `us-gov-west-1`, `cn-north-1` …: a region code, not `global` or an ARN.
fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// The enrichers this stage implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enricher {
    Alarm,
    AlarmHistory,
    Instance,
    RecentChanges,
    Related,
}

impl Enricher {
    pub const ALL: [Enricher; 5] = [
        Enricher::Alarm,
        Enricher::AlarmHistory,
        Enricher::Instance,
        Enricher::RecentChanges,
        Enricher::Related,
    ];

    /// The name playbooks and the catalog use.
    pub fn name(self) -> &'static str {
        match self {
            Enricher::Alarm => "cloudwatch.alarm",
            Enricher::AlarmHistory => "cloudwatch.alarm_history",
            Enricher::Instance => "ec2.instance",
            Enricher::RecentChanges => "cloudtrail.recent_changes",
            Enricher::Related => "incidents.related",
        }
    }

    pub fn from_name(name: &str) -> Option<Enricher> {
        Enricher::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// One unit of work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    Run {
        enricher: Enricher,
        target: String,
    },
    Skip {
        enricher: &'static str,
        target: Option<String>,
        reason: String,
    },
}

/// The work for `specs` on `incident`: the same target selection as [`crate::plan`], with
/// alarms named the way CloudWatch's APIs take them.
pub fn work(specs: &[&'static EnricherSpec], incident: &Incident) -> Vec<Work> {
    let mut out = Vec::new();
    for spec in specs {
        let Some(enricher) = Enricher::from_name(spec.name) else {
            // The catalog may list an enricher before this stage implements it.
            out.push(Work::Skip {
                enricher: spec.name,
                target: None,
                reason: format!(
                    "this version of the enrich stage does not implement {}",
                    spec.name
                ),
            });
            continue;
        };
        let targets = targets(enricher, incident);
        if targets.is_empty() {
            out.push(Work::Skip {
                enricher: spec.name,
                target: None,
                reason: "the incident names nothing this enricher looks at".to_owned(),
            });
        }
        for (i, target) in targets.into_iter().enumerate() {
            out.push(if i < MAX_TARGETS {
                Work::Run { enricher, target }
            } else {
                Work::Skip {
                    enricher: spec.name,
                    target: Some(target),
                    reason: format!("over the limit of {MAX_TARGETS} targets per enricher"),
                }
            });
        }
    }
    out
}

fn targets(enricher: Enricher, incident: &Incident) -> Vec<String> {
    let ids = crate::targets(enricher.name(), &incident.resources);
    let mut names: Vec<String> = match enricher {
        Enricher::Alarm | Enricher::AlarmHistory => {
            let mut names: Vec<String> = ids.iter().map(|id| alarm_name(id).to_owned()).collect();
            if names.is_empty()
                && let Some(name) = &incident.alarm_name
            {
                names.push(name.clone());
            }
            names
        }
        _ => ids,
    };
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| !n.trim().is_empty() && seen.insert(n.clone()));
    names
}

/// The alarm name in an alarm ARN (`arn:aws:cloudwatch:<region>:<account>:alarm:<name>`, where
/// the name may itself hold colons); anything else is taken to be a name already.
pub fn alarm_name(id: &str) -> &str {
    let parts: Vec<&str> = id.splitn(7, ':').collect();
    match parts.as_slice() {
        ["arn", _, "cloudwatch", _, _, "alarm", name] if !name.is_empty() => name,
        _ => id,
    }
}

/// Why an enricher came back without (all of) its data.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// What it found before failing, if anything: an alarm's configuration is worth keeping
    /// when only its datapoints could not be read.
    pub data: Value,
    pub error: String,
}

impl Failure {
    pub fn message(error: impl Into<String>) -> Failure {
        Failure {
            data: Value::Null,
            error: error.into(),
        }
    }
}

impl From<AwsError> for Failure {
    fn from(e: AwsError) -> Failure {
        Failure::message(e.to_string())
    }
}

/// What an enricher returns.
pub type Found = Result<Value, Failure>;

/// Runs one unit of work. Never fails: a failure, a timeout included, is a `failed` result.
pub async fn run(
    work: Work,
    clients: &Clients,
    store: &Store,
    incident: &Incident,
    now: DateTime<Utc>,
) -> EnrichmentResult {
    let (enricher, target) = match work {
        Work::Skip {
            enricher,
            target,
            reason,
        } => return result(enricher, target, SKIPPED, Value::Null, Some(reason)),
        Work::Run { enricher, target } => (enricher, target),
    };
    let call = async {
        match enricher {
            // The incident opened on the alarm's transition, which is when its signal was
            // observed; the alarm's own state may have moved on since.
            Enricher::Alarm => {
                cloudwatch::alarm(&clients.cloudwatch, &target, incident.signals.first_seen).await
            }
            Enricher::AlarmHistory => cloudwatch::history(&clients.cloudwatch, &target, now).await,
            Enricher::Instance => ec2::instance(&clients.ec2, &target).await,
            Enricher::RecentChanges => {
                cloudtrail::recent_changes(&clients.cloudtrail, &target, now).await
            }
            Enricher::Related => related::open_incidents(store, &target, &incident.id).await,
        }
    };
    let found = tokio::time::timeout(ENRICHER_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            Err(Failure::message(format!(
                "gave up after {} s",
                ENRICHER_TIMEOUT.as_secs()
            )))
        });
    match found {
        Ok(data) => result(enricher.name(), Some(target), OK, data, None),
        Err(f) => {
            tracing::warn!(
                incident = %incident.id,
                enricher = enricher.name(),
                target = %target,
                error = %f.error,
                "enricher failed"
            );
            result(enricher.name(), Some(target), FAILED, f.data, Some(f.error))
        }
    }
}

fn result(
    enricher: &str,
    target: Option<String>,
    outcome: &str,
    data: Value,
    error: Option<String>,
) -> EnrichmentResult {
    EnrichmentResult {
        enricher: enricher.to_owned(),
        target,
        outcome: outcome.to_owned(),
        data: compact(data),
        error,
    }
}

/// Drops `null` members of objects, recursively.
pub fn compact(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, compact(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(compact).collect()),
        other => other,
    }
}

/// An SDK timestamp for a chrono one.
pub fn to_smithy(t: DateTime<Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_millis(t.timestamp_millis())
}

/// An SDK timestamp as RFC 3339, UTC, with fractions only when it has them.
pub fn iso(t: &aws_smithy_types::DateTime) -> Option<String> {
    t.to_millis().ok().and_then(iso_millis)
}

pub fn iso_millis(ms: i64) -> Option<String> {
    DateTime::from_timestamp_millis(ms).map(|d| d.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_shared::catalog::enricher;
    use firebreak_shared::signal::{Resource, ResourceKind};
    use serde_json::json;

    fn incident(resources: &[(ResourceKind, &str)], alarm_name: Option<&str>) -> Incident {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let mut doc = json!({
            "id": "INC-1", "dedupe_key": "k", "status": "open", "severity": "high",
            "playbook": "p", "title": "t", "source": "cloudwatch_alarm", "kind": "metric",
            "account": null, "region": null, "version": 1,
            "signals": {"count": 1, "first_seen": at, "last_seen": at},
            "resources": [], "opened_at": at,
        });
        doc["alarm_name"] = json!(alarm_name);
        doc["resources"] = resources
            .iter()
            .map(|(kind, id)| {
                json!(Resource {
                    kind: *kind,
                    id: (*id).to_owned()
                })
            })
            .collect();
        serde_json::from_value(doc).expect("a valid incident")
    }

    fn specs(names: &[&str]) -> Vec<&'static EnricherSpec> {
        names.iter().filter_map(|n| enricher(n)).collect()
    }

    #[test]
    fn alarm_enrichers_look_the_alarm_up_by_name_not_arn() {
        let i = incident(
            &[
                (
                    ResourceKind::Alarm,
                    "arn:aws:cloudwatch:us-east-1:123456789012:alarm:Db:High CPU",
                ),
                (ResourceKind::Ec2Instance, "i-0123456789abcdef0"),
            ],
            Some("Db:High CPU"),
        );
        let w = work(&specs(&["cloudwatch.alarm", "ec2.instance"]), &i);
        assert_eq!(
            w,
            [
                Work::Run {
                    enricher: Enricher::Alarm,
                    target: "Db:High CPU".to_owned()
                },
                Work::Run {
                    enricher: Enricher::Instance,
                    target: "i-0123456789abcdef0".to_owned()
                },
            ]
        );
    }

    #[test]
    fn an_alarm_incident_without_the_arn_still_uses_its_alarm_name() {
        let i = incident(&[], Some("ServerCpuTooHigh"));
        let w = work(&specs(&["cloudwatch.alarm_history"]), &i);
        assert_eq!(
            w,
            [Work::Run {
                enricher: Enricher::AlarmHistory,
                target: "ServerCpuTooHigh".to_owned()
            }]
        );
    }

    #[test]
    fn recent_changes_and_related_incidents_look_at_every_resource() {
        let i = incident(
            &[
                (ResourceKind::AccessKey, "AKIAEXAMPLE"),
                (ResourceKind::IamUser, "alice"),
            ],
            None,
        );
        let w = work(
            &specs(&["cloudtrail.recent_changes", "incidents.related"]),
            &i,
        );
        let targets: Vec<_> = w
            .iter()
            .map(|w| match w {
                Work::Run { enricher, target } => (enricher.name(), target.as_str()),
                Work::Skip { .. } => ("skip", ""),
            })
            .collect();
        assert_eq!(
            targets,
            [
                ("cloudtrail.recent_changes", "AKIAEXAMPLE"),
                ("cloudtrail.recent_changes", "alice"),
                ("incidents.related", "AKIAEXAMPLE"),
                ("incidents.related", "alice"),
            ]
        );
    }

    #[test]
    fn targets_past_the_limit_are_skipped_not_dropped() {
        let ids: Vec<String> = (0..MAX_TARGETS + 2).map(|n| format!("i-{n:017}")).collect();
        let resources: Vec<_> = ids
            .iter()
            .map(|id| (ResourceKind::Ec2Instance, id.as_str()))
            .collect();
        let w = work(&specs(&["ec2.instance"]), &incident(&resources, None));
        assert_eq!(w.len(), MAX_TARGETS + 2);
        assert!(
            matches!(&w[MAX_TARGETS], Work::Skip { target: Some(t), .. } if *t == ids[MAX_TARGETS])
        );
    }

    #[test]
    fn an_enricher_with_no_target_is_one_skipped_unit() {
        let w = work(
            &specs(&["ec2.instance"]),
            &incident(&[(ResourceKind::IamUser, "bob")], None),
        );
        assert!(
            matches!(
                &w[..],
                [Work::Skip {
                    enricher: "ec2.instance",
                    target: None,
                    ..
                }]
            ),
            "{w:?}"
        );
    }

    #[test]
    fn alarm_arns_yield_names_and_names_stay_names() {
        assert_eq!(
            alarm_name("arn:aws:cloudwatch:eu-west-1:123456789012:alarm:a:b"),
            "a:b"
        );
        assert_eq!(alarm_name("ServerCpuTooHigh"), "ServerCpuTooHigh");
        assert_eq!(
            alarm_name("arn:aws:sns:eu-west-1:123456789012:topic"),
            "arn:aws:sns:eu-west-1:123456789012:topic"
        );
    }

    #[test]
    fn only_region_codes_redirect_the_clients() {
        assert!(is_region("us-east-1"));
        assert!(is_region("us-gov-west-1"));
        assert!(is_region("cn-northwest-1"));
        assert!(!is_region("global"));
        assert!(!is_region("us-east-1a"));
        assert!(!is_region("US-EAST-1"));
        assert!(!is_region("arn:aws:iam::1:role/x"));
    }

    #[test]
    fn clients_follow_the_incident_region() {
        let conf = aws_sdk_cloudwatch::Config::builder()
            .behavior_version(aws_sdk_cloudwatch::config::BehaviorVersion::latest())
            .region(aws_sdk_cloudwatch::config::Region::new("us-east-1"))
            .build();
        let ec2 = aws_sdk_ec2::Config::builder()
            .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
            .region(aws_sdk_ec2::config::Region::new("us-east-1"))
            .build();
        let ct = aws_sdk_cloudtrail::Config::builder()
            .behavior_version(aws_sdk_cloudtrail::config::BehaviorVersion::latest())
            .region(aws_sdk_cloudtrail::config::Region::new("us-east-1"))
            .build();
        let clients = Clients {
            cloudwatch: aws_sdk_cloudwatch::Client::from_conf(conf),
            ec2: aws_sdk_ec2::Client::from_conf(ec2),
            cloudtrail: aws_sdk_cloudtrail::Client::from_conf(ct),
        };
        let moved = clients.in_region(Some("eu-west-1"));
        let region = |c: &Clients| {
            (
                c.cloudwatch.config().region().map(ToString::to_string),
                c.ec2.config().region().map(ToString::to_string),
                c.cloudtrail.config().region().map(ToString::to_string),
            )
        };
        let eu = Some("eu-west-1".to_owned());
        assert_eq!(region(&moved), (eu.clone(), eu.clone(), eu));
        let us = Some("us-east-1".to_owned());
        assert_eq!(
            region(&clients.in_region(Some("global"))),
            (us.clone(), us.clone(), us)
        );
    }

    #[test]
    fn compact_data_leaves_out_absent_fields() {
        let v = compact(json!({"a": null, "b": [{"c": null, "d": 1}], "e": {"f": null}}));
        assert_eq!(v, json!({"b": [{"d": 1}], "e": {}}));
    }
}
