//! Which function each real event reaches, through moto's EventBridge, with template.yaml's own
//! rules and patterns.
//!
//! Every full EventBridge envelope under `fixtures/events/{cloudwatch-alarm,guardduty,
//! securityhub,ec2-state,health}`, plus a few events derived from them, is put on moto's
//! default bus with PutEvents; each function's rules deliver to a queue standing in for it, and
//! the set of queues that received the event is compared with the table below. A change to a
//! pattern in the template shows up here as a failing row.
//!
//! moto's matcher flattens nested objects but not arrays of objects, so it cannot evaluate a
//! pattern on `detail.findings.…` (Security Hub's findings are an array): it says no match
//! where EventBridge matches any finding. For those events (`pattern::needs_array_flattening`)
//! the test checks that moto reaches only what the rules it *can* evaluate reach, and checks
//! the table against `pattern::matches`, which evaluates patterns as EventBridge does. For
//! every other event the evaluator must agree with moto, which keeps the evaluator honest.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use aws_config::SdkConfig;
use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use chrono::Duration;
use firebreak_cli::pattern;
use firebreak_cli::sandbox::{LocalAws, Stack};
use firebreak_cli::template::{ACCOUNT, REGION, Rule, RuleBus, Template};
use serde_json::Value;
use support::{fixture, recovered};

const NONE: &[&str] = &[];
const CREATE: &[&str] = &["CreateFunction"];
const CLOSE: &[&str] = &["CloseFunction"];

/// The stack's own operational alarms are named `firebreak-ops-<stack>-…`; the alarm rules
/// must never feed them back into the stack.
const OWN_ALARM: &str = "firebreak-ops-firebreak-failed-invocations";

/// How a row's event is made from its fixture.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Derive {
    /// The fixture as published.
    Verbatim,
    /// The alarm's return to OK, ten minutes later (`support::recovered`).
    Recovered,
    /// The alarm renamed to one of the stack's own.
    OwnAlarm,
    /// The stack's own alarm returning to OK.
    OwnAlarmRecovered,
    /// The GuardDuty finding archived (`detail.service.archived: true`), as GuardDuty sends it
    /// when a suppression rule or a user archives it.
    Archived,
    /// A GuardDuty finding published without `source`/`detail-type`, given the envelope
    /// GuardDuty's own EventBridge events carry.
    GuardDutyEnvelope,
    /// The GuardDuty finding at severity 8 (high).
    Severity8,
    /// The Security Hub finding at severity MEDIUM.
    MediumLabel,
    /// The Security Hub custom action event sent through the stack's own action
    /// (`action/custom/Firebreak`) instead of another tool's.
    FirebreakAction,
}

#[derive(Debug, Clone, Copy)]
struct Row {
    fixture: &'static str,
    derive: Derive,
    reaches: &'static [&'static str],
}

/// One row: the functions the event must reach, how it is made, and from which fixture.
const fn row(reaches: &'static [&'static str], derive: Derive, fixture: &'static str) -> Row {
    Row {
        fixture,
        derive,
        reaches,
    }
}

use Derive::*;

/// Where each event goes with the template's defaults: GuardDutySeverityThreshold LOW
/// (severity >= 1), SecurityHubSeverityThreshold HIGH (HIGH, CRITICAL).
#[rustfmt::skip]
const DEFAULTS: &[Row] = &[
    // Alarm state changes: ALARM opens, OK closes. Configuration changes are not signals.
    row(CREATE, Verbatim,          "cloudwatch-alarm/docs-anomaly-detection-alarm-ok-to-alarm.json"),
    row(CREATE, Verbatim,          "cloudwatch-alarm/docs-composite-alarm-with-suppressor-ok-to-alarm.json"),
    row(CREATE, Verbatim,          "cloudwatch-alarm/docs-metric-math-alarm-insufficient-to-alarm.json"),
    row(CREATE, Verbatim,          "cloudwatch-alarm/docs-single-metric-alarm-ok-to-alarm.json"),
    row(CLOSE,  Recovered,         "cloudwatch-alarm/docs-single-metric-alarm-ok-to-alarm.json"),
    row(NONE,   Verbatim,          "cloudwatch-alarm/docs-config-change-create-composite.json"),
    row(NONE,   Verbatim,          "cloudwatch-alarm/docs-config-change-delete-composite-suppressor.json"),
    row(NONE,   Verbatim,          "cloudwatch-alarm/docs-config-change-update-metric-alarm.json"),
    // The stack's own alarms never feed back, firing or recovering.
    row(NONE,   OwnAlarm,          "cloudwatch-alarm/docs-single-metric-alarm-ok-to-alarm.json"),
    row(NONE,   OwnAlarmRecovered, "cloudwatch-alarm/docs-single-metric-alarm-ok-to-alarm.json"),
    // GuardDuty: severity 5 and 2 pass the default LOW threshold; archived findings never.
    row(CREATE, Verbatim,          "guardduty/custodian-eventbridge-backdoor-ec2-cc-activity-b-dns.json"),
    row(CREATE, Verbatim,          "guardduty/custodian-eventbridge-iamuser-tor-ipcaller.json"),
    row(CREATE, GuardDutyEnvelope, "guardduty/waf-acl-partial-envelope-ec2-ssh-bruteforce.json"),
    row(NONE,   Archived,          "guardduty/custodian-eventbridge-backdoor-ec2-cc-activity-b-dns.json"),
    // Security Hub custom actions: an analyst sent the finding on purpose.
    row(CREATE, Verbatim,          "securityhub/asr-custom-action-afsbp-iam.6-two-findings.json"),
    row(CREATE, Verbatim,          "securityhub/asr-custom-action-afsbp-rds.6-rds-instance.json"),
    row(CREATE, Verbatim,          "securityhub/asr-custom-action-cis-2.3-s3-bucket.json"),
    row(CREATE, Verbatim,          "securityhub/asr-custom-action-cis-4.1-security-group.json"),
    row(CREATE, Verbatim,          "securityhub/custodian-custom-action-cis-2.2-cloudtrail.json"),
    row(CREATE, Verbatim,          "securityhub/custodian-custom-action-guardduty-iam-access-key.json"),
    row(CREATE, Verbatim,          "securityhub/custodian-custom-action-third-party-other-lambda.json"),
    // Security Hub imported: NEW, ACTIVE, HIGH or CRITICAL, and not GuardDuty's own (the
    // GuardDuty rule routes those already).
    row(CREATE, Verbatim,          "securityhub/jira-imported-new-notautomated-ec2-instance.json"),
    row(NONE,   MediumLabel,       "securityhub/jira-imported-new-notautomated-ec2-instance.json"),
    row(NONE,   Verbatim,          "securityhub/jira-imported-archived-ec2-instance.json"),
    row(NONE,   Verbatim,          "securityhub/asr-imported-afsbp-ec2.7-awsaccount.json"),
    row(NONE,   Verbatim,          "securityhub/asr-imported-cis-1.3-awsaccount.json"),
    row(NONE,   Verbatim,          "securityhub/asr-imported-cis-1.4-awsaccount.json"),
    // NEW, ACTIVE and HIGH, published without `ProductName` (older ASFF): the GuardDuty
    // exclusion is on the required `ProductArn`, so it still routes.
    row(CREATE, Verbatim,          "securityhub/jira-imported-new-cis-1.22-iam-policy.json"),
    // Neither EC2 state changes nor Health events are signals.
    row(NONE,   Verbatim,          "ec2-state/custodian-pending-no-version.json"),
    row(NONE,   Verbatim,          "ec2-state/docs-cwe-guide-pending-no-version.json"),
    row(NONE,   Verbatim,          "ec2-state/docs-eventbridge-RUNNING-uppercase-id-mismatch.json"),
    row(NONE,   Verbatim,          "ec2-state/docs-eventbridge-terminated-leading-space-instance-id.json"),
    row(NONE,   Verbatim,          "ec2-state/docs-eventbridge-terminated.json"),
    row(NONE,   Verbatim,          "health/custodian-ec2-persistent-instance-retirement.json"),
    row(NONE,   Verbatim,          "health/docs-ec2-odcr-underutilization-summary.json"),
    row(NONE,   Verbatim,          "health/docs-ec2-odcr-underutilization.json"),
    row(NONE,   Verbatim,          "health/health-tools-ebs-volume-lost-mock-source.json"),
    row(NONE,   Verbatim,          "health/health-tools-instance-store-drive-degraded.json"),
    row(NONE,   Verbatim,          "health/health-tools-risk-credentials-exposed.json"),
    row(NONE,   Verbatim,          "health/health-tools-sms-notifier-test-event.json"),
];

/// Where GuardDuty findings go with GuardDutySeverityThreshold HIGH (severity >= 7).
#[rustfmt::skip]
const GUARDDUTY_HIGH: &[Row] = &[
    row(NONE,   GuardDutyEnvelope, "guardduty/waf-acl-partial-envelope-ec2-ssh-bruteforce.json"),
    row(NONE,   Verbatim,          "guardduty/custodian-eventbridge-backdoor-ec2-cc-activity-b-dns.json"),
    row(NONE,   Verbatim,          "guardduty/custodian-eventbridge-iamuser-tor-ipcaller.json"),
    row(CREATE, Severity8,         "guardduty/custodian-eventbridge-backdoor-ec2-cc-activity-b-dns.json"),
    // The threshold is GuardDuty's alone: alarms still route.
    row(CREATE, Verbatim,          "cloudwatch-alarm/docs-single-metric-alarm-ok-to-alarm.json"),
];

/// Where custom actions go with CreateSecurityHubAction true: only the stack's own action
/// opens incidents, whatever the finding's severity; other tools' actions are theirs.
#[rustfmt::skip]
const SECURITY_HUB_ACTION: &[Row] = &[
    row(NONE,   Verbatim,          "securityhub/asr-custom-action-afsbp-iam.6-two-findings.json"),
    row(NONE,   Verbatim,          "securityhub/asr-custom-action-afsbp-rds.6-rds-instance.json"),
    row(NONE,   Verbatim,          "securityhub/asr-custom-action-cis-2.3-s3-bucket.json"),
    row(NONE,   Verbatim,          "securityhub/asr-custom-action-cis-4.1-security-group.json"),
    row(NONE,   Verbatim,          "securityhub/custodian-custom-action-cis-2.2-cloudtrail.json"),
    row(NONE,   Verbatim,          "securityhub/custodian-custom-action-guardduty-iam-access-key.json"),
    row(NONE,   Verbatim,          "securityhub/custodian-custom-action-third-party-other-lambda.json"),
    row(CREATE, FirebreakAction,   "securityhub/asr-custom-action-cis-4.1-security-group.json"),
    // Severity 0 (Normalized): no threshold applies to what a person chose.
    row(CREATE, FirebreakAction,   "securityhub/custodian-custom-action-cis-2.2-cloudtrail.json"),
    // Imported findings are not custom actions: the parameter leaves them as they were.
    row(CREATE, Verbatim,          "securityhub/jira-imported-new-notautomated-ec2-instance.json"),
];

/// The directories whose full envelopes the default table must cover.
const ROUTED_DIRS: [&str; 5] = [
    "cloudwatch-alarm",
    "guardduty",
    "securityhub",
    "ec2-state",
    "health",
];

fn edit(event: &[u8], f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(event).expect("fixture is JSON");
    f(&mut v);
    serde_json::to_vec(&v).expect("serialises")
}

fn rename_alarm(event: &[u8]) -> Vec<u8> {
    edit(event, |v| {
        v["detail"]["alarmName"] = Value::String(OWN_ALARM.into());
        v["resources"] = serde_json::json!([format!(
            "arn:aws:cloudwatch:us-east-1:123456789012:alarm:{OWN_ALARM}"
        )]);
    })
}

impl Row {
    fn name(&self) -> String {
        match self.derive {
            Verbatim => self.fixture.to_owned(),
            other => format!("{} ({other:?})", self.fixture),
        }
    }

    fn event(&self) -> Value {
        let raw = fixture(self.fixture);
        let later = Duration::minutes(10);
        let bytes = match self.derive {
            Verbatim => raw,
            Recovered => recovered(&raw, later),
            OwnAlarm => rename_alarm(&raw),
            OwnAlarmRecovered => recovered(&rename_alarm(&raw), later),
            Archived => edit(&raw, |v| {
                v["detail"]["service"]["archived"] = Value::Bool(true);
            }),
            GuardDutyEnvelope => edit(&raw, |v| {
                v["source"] = "aws.guardduty".into();
                v["detail-type"] = "GuardDuty Finding".into();
            }),
            Severity8 => edit(&raw, |v| {
                v["detail"]["severity"] = 8.into();
            }),
            MediumLabel => edit(&raw, |v| {
                for f in v["detail"]["findings"].as_array_mut().into_iter().flatten() {
                    f["Severity"]["Label"] = "MEDIUM".into();
                    f["Severity"]["Original"] = "MEDIUM".into();
                    f["Severity"]["Normalized"] = 40.into();
                    f["Severity"]["Product"] = 40.into();
                }
            }),
            FirebreakAction => edit(&raw, |v| {
                // The ARN the template names, as it resolves for the sandbox's account/region.
                v["resources"] = serde_json::json!([format!(
                    "arn:aws:securityhub:{REGION}:{ACCOUNT}:action/custom/Firebreak"
                )]);
            }),
        };
        serde_json::from_slice(&bytes).expect("event is JSON")
    }
}

/// Whether `v` is an event PutEvents can carry as is: source, detail-type and a detail object.
fn is_full_envelope(v: &Value) -> bool {
    v["source"].is_string() && v["detail-type"].is_string() && v["detail"].is_object()
}

/// The regions the two stacks live in. A default bus is a region's, shared by every stack in
/// that region of the moto (and a moto may be shared by every test binary): a stack of its
/// own region is the only way its default-bus rules see these events alone, and the only way
/// these events stay out of other stacks' queues (every stack's CloseFunction hears an OK).
const DEFAULTS_REGION: &str = "ap-southeast-2";
const GUARDDUTY_HIGH_REGION: &str = "ca-central-1";
const SECURITY_HUB_ACTION_REGION: &str = "eu-north-1";

/// A stack in the process's moto from `template`, and the template's default-bus rules.
struct Bench {
    sdk: SdkConfig,
    stack: Stack,
    rules: Vec<Rule>,
}

impl Bench {
    /// Fails the test, with how to install moto, if moto is not there.
    async fn new(name: &str, region: &str, template: Template) -> Bench {
        let local = LocalAws::shared().unwrap_or_else(|e| panic!("{e}"));
        let sdk = firebreak_shared::aws::local_config(local.endpoint(), region).await;
        let prefix = format!("rt{}{name}", std::process::id());
        let stack = Stack::create_from(&sdk, &prefix, &template)
            .await
            .unwrap_or_else(|e| panic!("stack from template.yaml: {e}"));
        let rules = template
            .rules()
            .unwrap_or_else(|e| panic!("template rules: {e}"))
            .into_iter()
            .filter(|r| r.bus == RuleBus::Default)
            .collect();
        Bench { sdk, stack, rules }
    }

    /// Puts `event` on moto's default bus and returns each function it reached with the
    /// events delivered there. moto delivers synchronously, so the queues hold it already.
    async fn put(&self, event: &Value) -> Result<BTreeMap<String, Vec<Value>>, String> {
        let resources = event["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect::<Vec<_>>();
        let time = event["time"]
            .as_str()
            .and_then(firebreak_shared::signal::parse_timestamp)
            .map(|t| DateTime::from_millis(t.timestamp_millis()));
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.stack.default_bus)
            .source(event["source"].as_str().unwrap_or_default())
            .detail_type(event["detail-type"].as_str().unwrap_or_default())
            .detail(event["detail"].to_string())
            .set_resources(Some(resources))
            .set_time(time)
            .build();
        let out = aws_sdk_eventbridge::Client::new(&self.sdk)
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| format!("PutEvents: {e:?}"))?;
        if out.failed_entry_count() > 0 {
            let why = out
                .entries()
                .iter()
                .map(|e| format!("{:?}: {:?}", e.error_code(), e.error_message()))
                .collect::<Vec<_>>();
            return Err(format!("moto refused the event: {why:?}"));
        }
        let mut reached = BTreeMap::new();
        for function in self.stack.function_queues.keys() {
            let bodies = self
                .stack
                .drain(&self.sdk, function)
                .await
                .map_err(|e| format!("drain {function}: {e}"))?;
            if !bodies.is_empty() {
                let events = bodies
                    .iter()
                    .map(|b| serde_json::from_str(b).map_err(|e| format!("{function}: {e}")))
                    .collect::<Result<Vec<Value>, _>>()?;
                reached.insert(function.clone(), events);
            }
        }
        Ok(reached)
    }
}

/// What the evaluator says of an event: the functions all rules reach, the functions the
/// rules moto can evaluate reach, and the rules moto cannot evaluate.
struct Verdict {
    all: BTreeSet<String>,
    decidable: BTreeSet<String>,
    undecidable: Vec<String>,
}

fn evaluate(rules: &[Rule], event: &Value) -> Result<Verdict, String> {
    let mut v = Verdict {
        all: BTreeSet::new(),
        decidable: BTreeSet::new(),
        undecidable: Vec::new(),
    };
    for rule in rules {
        let hit = pattern::matches(&rule.pattern, event)
            .map_err(|e| format!("{}.{}: {e}", rule.function, rule.event))?;
        let moto_can = !pattern::needs_array_flattening(&rule.pattern, event);
        if !moto_can {
            v.undecidable
                .push(format!("{}.{}", rule.function, rule.event));
        }
        if hit {
            v.all.insert(rule.function.clone());
            if moto_can {
                v.decidable.insert(rule.function.clone());
            }
        }
    }
    Ok(v)
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// How many rows moto could not decide and the evaluator routed somewhere moto did not.
#[derive(Default)]
struct Tally {
    by_evaluator: usize,
}

/// Routes one row and returns what is wrong with it, if anything.
async fn check(bench: &Bench, row: &Row, tally: &mut Tally) -> Result<(), String> {
    let event = row.event();
    if !is_full_envelope(&event) {
        return Err("not a full EventBridge envelope; give it a derivation".into());
    }
    let reached = bench.put(&event).await?;
    let moto: BTreeSet<String> = reached.keys().cloned().collect();
    for (function, events) in &reached {
        if events.len() != 1 {
            return Err(format!(
                "{function} received {} copies: two of its rules match one event",
                events.len()
            ));
        }
        if events[0]["detail"] != event["detail"] {
            return Err(format!("{function} received another event: {}", events[0]));
        }
    }
    let verdict = evaluate(&bench.rules, &event)?;
    let expected = set(row.reaches);
    if verdict.undecidable.is_empty() {
        if moto != expected {
            return Err(format!(
                "moto routed it to {moto:?}, the table says {expected:?}"
            ));
        }
        if verdict.all != moto {
            return Err(format!(
                "the evaluator says {:?} but moto routed it to {moto:?}: the evaluator is wrong \
                 on a pattern moto can decide",
                verdict.all
            ));
        }
        return Ok(());
    }
    // moto stops at arrays of objects (Security Hub's detail.findings), so for these rules it
    // answers "no match" whatever the findings say; it reaches only what the other rules reach.
    if moto != verdict.decidable {
        return Err(format!(
            "moto routed it to {moto:?}; with {:?} undecidable for moto (fields under an array \
             of objects) it should reach only {:?}, what the rules it can evaluate reach",
            verdict.undecidable, verdict.decidable
        ));
    }
    if verdict.all != expected {
        return Err(format!(
            "the evaluator (EventBridge's semantics; moto cannot decide {:?}) routes it to {:?}, \
             the table says {expected:?}",
            verdict.undecidable, verdict.all
        ));
    }
    if verdict.all != moto {
        tally.by_evaluator += 1;
        println!(
            "{}: routed to {:?} by the evaluator; moto cannot see fields under an array of \
             objects and reached {moto:?}",
            row.name(),
            verdict.all
        );
    }
    Ok(())
}

/// Routes every row and fails with every wrong row at once, so a pattern change shows its
/// whole effect.
async fn check_all(bench: &Bench, rows: &[Row]) -> Tally {
    let mut tally = Tally::default();
    let mut wrong = Vec::new();
    for row in rows {
        if let Err(why) = check(bench, row, &mut tally).await {
            wrong.push(format!(
                "  {} → expected {:?}: {why}",
                row.name(),
                row.reaches
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} rows route differently:\n{}",
        wrong.len(),
        rows.len(),
        wrong.join("\n")
    );
    tally
}

#[test]
fn every_full_envelope_fixture_has_a_row_in_the_default_routing_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/events");
    let mut envelopes = BTreeSet::new();
    for dir in ROUTED_DIRS {
        let entries = std::fs::read_dir(root.join(dir)).expect("fixture directory");
        for entry in entries {
            let name = entry.expect("directory entry").file_name();
            let path = format!("{dir}/{}", name.to_string_lossy());
            let v: Value = serde_json::from_slice(&fixture(&path)).expect("fixture is JSON");
            if is_full_envelope(&v) {
                envelopes.insert(path);
            }
        }
    }
    let verbatim: BTreeSet<String> = DEFAULTS
        .iter()
        .filter(|r| r.derive == Verbatim)
        .map(|r| r.fixture.to_owned())
        .collect();
    assert_eq!(
        envelopes, verbatim,
        "the table must route every full envelope, and only those"
    );
    for row in DEFAULTS
        .iter()
        .chain(GUARDDUTY_HIGH)
        .chain(SECURITY_HUB_ACTION)
    {
        assert!(is_full_envelope(&row.event()), "{}", row.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_events_reach_exactly_the_functions_the_table_says_with_the_default_parameters() {
    let template = Template::embedded().expect("template.yaml");
    let bench = Bench::new("d", DEFAULTS_REGION, template).await;
    let tally = check_all(&bench, DEFAULTS).await;
    // The table holds a Security Hub finding EventBridge routes and moto cannot: proof the
    // evaluator is exercised where it is needed.
    assert!(
        tally.by_evaluator >= 1,
        "no row needed the evaluator; the Security Hub rows no longer test it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_high_guardduty_threshold_keeps_low_and_medium_findings_from_create_and_passes_high() {
    let template = Template::embedded()
        .and_then(|t| t.with_parameter("GuardDutySeverityThreshold", "HIGH"))
        .expect("template.yaml takes GuardDutySeverityThreshold=HIGH");
    let bench = Bench::new("h", GUARDDUTY_HIGH_REGION, template).await;
    check_all(&bench, GUARDDUTY_HIGH).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_its_own_security_hub_action_only_findings_sent_through_it_open_incidents() {
    let template = Template::embedded()
        .and_then(|t| t.with_parameter("CreateSecurityHubAction", "true"))
        .expect("template.yaml takes CreateSecurityHubAction=true");
    let bench = Bench::new("a", SECURITY_HUB_ACTION_REGION, template).await;
    check_all(&bench, SECURITY_HUB_ACTION).await;
}
