//! `firebreak simulate` and `firebreak demo`, end to end on moto: real events, the template's
//! routing, the five real stages, and remediation that really changes the sandbox.
//!
//! These are the main job's acceptance checks: a compromise fed three times is contained
//! once, an alarm that fires and recovers is one resolved incident with its MTTR, and a
//! low-severity probe isolates nothing.

mod support;

use firebreak_cli::engine::{Options, Report};
use firebreak_cli::sandbox::LocalAws;
use firebreak_cli::seed;
use firebreak_cli::simulate::simulate;
use firebreak_cli::template::Template;
use firebreak_shared::incident::Status;
use firebreak_shared::playbook::PlaybookSet;

const BACKDOOR: &str = "scenarios/guardduty-backdoor-ec2-high.json";
const ALARM: &str = "events/cloudwatch-alarm/docs-composite-alarm-with-suppressor-ok-to-alarm.json";
const ALARM_OK: &str = "scenarios/cloudwatch-composite-alarm-alarm-to-ok.json";
const BRUTE_FORCE: &str = "events/guardduty/waf-acl-partial-envelope-ec2-ssh-bruteforce.json";

fn file(path: &str) -> (String, Vec<u8>) {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(path);
    let bytes = std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()));
    (path.to_owned(), bytes)
}

fn options() -> Options {
    Options {
        playbooks: PlaybookSet::starter(),
        template: Template::embedded().expect("template.yaml resolves"),
        dry_run: false,
    }
}

fn local() -> &'static LocalAws {
    LocalAws::shared().unwrap_or_else(|e| panic!("{e}"))
}

async fn run(inputs: &[(String, Vec<u8>)]) -> Report {
    simulate(local(), inputs, options(), |_| {})
        .await
        .unwrap_or_else(|e| panic!("simulate: {e}"))
}

fn kinds<'a>(report: &'a Report, kind: &str) -> Vec<&'a firebreak_cli::engine::ActionView> {
    report.actions.iter().filter(|a| a.kind == kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guardduty_ec2_compromise_fed_three_times_is_one_incident_one_isolation_and_one_snapshot_per_volume()
 {
    let finding = file(BACKDOOR);
    let inputs = vec![finding.clone(), finding.clone(), finding];
    let mut engine = firebreak_cli::engine::Engine::start(local(), options())
        .await
        .expect("engine");
    for (label, bytes) in &inputs {
        engine.feed(label, bytes).await.expect("feed");
    }
    let report = engine.report().await.expect("report");

    assert_eq!(report.incidents.len(), 1, "{:#?}", report.incidents);
    let incident = &report.incidents[0];
    assert_eq!(incident.playbook.as_deref(), Some("ec2-compromise"));
    assert_eq!(
        incident.status,
        Status::Resolved,
        "a verified isolation closes it"
    );
    assert!(incident.metrics.mttr_s.is_some());

    let isolations = kinds(&report, "ec2.isolate");
    assert_eq!(isolations.len(), 1, "{:#?}", report.actions);
    assert_eq!(isolations[0].outcome, "succeeded");
    let snapshots = kinds(&report, "ec2.snapshot");
    assert_eq!(snapshots.len(), 1, "{:#?}", report.actions);
    assert_eq!(snapshots[0].outcome, "succeeded");
    assert!(report.dead_letters.is_empty(), "{:#?}", report.dead_letters);

    // What EC2 itself says: one snapshot for each of the stand-in's volumes, and the instance
    // in the quarantine group alone.
    let host = engine
        .host("i-99999999")
        .expect("a stand-in for the finding's instance")
        .clone();
    assert_eq!(host.volumes.len(), 2, "root and data volume");
    let taken = seed::snapshots_for(engine.ec2(), &incident.id, &host.volumes)
        .await
        .expect("DescribeSnapshots");
    assert_eq!(taken.len(), host.volumes.len(), "{taken:?}");
    let groups = seed::groups_of(engine.ec2(), &host.id)
        .await
        .expect("DescribeInstances");
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_ne!(groups[0], host.group, "moved out of its own group");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_that_fires_and_recovers_is_one_resolved_incident_with_its_mttr() {
    let report = run(&[file(ALARM), file(ALARM_OK)]).await;

    assert_eq!(report.incidents.len(), 1, "{:#?}", report.incidents);
    let incident = &report.incidents[0];
    assert_eq!(incident.status, Status::Resolved);
    assert_eq!(incident.playbook.as_deref(), Some("service-down"));
    // The OK's state timestamp is 12 minutes after the ALARM's: MTTR ends at the all-clear.
    assert_eq!(
        incident.metrics.mttr_s,
        Some(720.0),
        "{:?}",
        incident.metrics
    );
    assert!(
        report
            .notifications
            .iter()
            .any(|n| n.subject.contains("Incident Resolved")),
        "{:#?}",
        report.notifications
    );
    // CloudWatch cannot be served by moto: the report says so rather than inventing data.
    assert!(
        report
            .local_aws_gaps
            .iter()
            .any(|g| g.contains("CloudWatch")),
        "{:?}",
        report.local_aws_gaps
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_severity_brute_force_probe_isolates_nothing() {
    let mut engine = firebreak_cli::engine::Engine::start(local(), options())
        .await
        .expect("engine");
    let (label, bytes) = file(BRUTE_FORCE);
    engine.feed(&label, &bytes).await.expect("feed");
    let report = engine.report().await.expect("report");

    assert_eq!(report.incidents.len(), 1, "{:#?}", report.incidents);
    assert_eq!(
        report.incidents[0].playbook.as_deref(),
        Some("ec2-brute-force")
    );
    assert_eq!(report.incidents[0].severity, "low");
    for kind in ["ec2.isolate", "ec2.snapshot", "ec2.stop"] {
        assert!(kinds(&report, kind).is_empty(), "{:#?}", report.actions);
    }
    let host = engine.host("i-99999999").expect("stand-in").clone();
    let groups = seed::groups_of(engine.ec2(), &host.id)
        .await
        .expect("DescribeInstances");
    assert_eq!(
        groups,
        std::slice::from_ref(&host.group),
        "still in its own group"
    );
    let taken = seed::snapshots_for(engine.ec2(), &report.incidents[0].id, &host.volumes)
        .await
        .expect("DescribeSnapshots");
    assert!(taken.is_empty(), "{taken:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_json_names_incidents_actions_notifications_and_dead_letters() {
    let report = run(&[file(BACKDOOR)]).await;
    let json = serde_json::to_value(&report).expect("serialises");
    for key in ["incidents", "actions", "notifications", "dead_letters"] {
        assert!(json[key].is_array(), "{key} missing: {json}");
    }
    let incident = &json["incidents"][0];
    for key in [
        "id",
        "status",
        "severity",
        "playbook",
        "dedupe_key",
        "timeline",
    ] {
        assert!(!incident[key].is_null(), "{key} missing: {incident}");
    }
    assert_eq!(incident["status"], "resolved");
    for key in ["mttd_s", "mtta_s", "mttr_s"] {
        assert!(incident["metrics"][key].is_number(), "{key}: {incident}");
    }
    let action = &json["actions"][0];
    for key in ["incident", "kind", "target", "outcome"] {
        assert!(!action[key].is_null(), "{key} missing: {action}");
    }
    let n = &json["notifications"][0];
    assert_eq!(n["topic"], "notifications", "{n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_with_dry_run_records_what_it_would_do_and_changes_nothing() {
    let mut o = options();
    o.dry_run = true;
    let mut engine = firebreak_cli::engine::Engine::start(local(), o)
        .await
        .expect("engine");
    let (label, bytes) = file(BACKDOOR);
    engine.feed(&label, &bytes).await.expect("feed");
    let report = engine.report().await.expect("report");
    let isolations = kinds(&report, "ec2.isolate");
    assert_eq!(isolations.len(), 1, "{:#?}", report.actions);
    assert_eq!(isolations[0].outcome, "dry_run");
    let host = engine.host("i-99999999").expect("stand-in").clone();
    let groups = seed::groups_of(engine.ec2(), &host.id)
        .await
        .expect("DescribeInstances");
    assert_eq!(groups, std::slice::from_ref(&host.group));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sns_delivery_reaches_no_function_and_says_why() {
    let report = run(&[file(
        "events/sns/rust-fixture-lambda-sns-single-metric-alarm.json",
    )])
    .await;
    assert!(report.incidents.is_empty());
    assert_eq!(report.unrouted.len(), 1, "{:?}", report.unrouted);
    assert!(
        report.unrouted[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("SNS")),
        "{:?}",
        report.unrouted
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_plays_every_scenario_and_ends_with_reports_and_figures() {
    let mut out = Vec::new();
    let report = Box::pin(firebreak_cli::demo::run(local(), options(), &mut out))
        .await
        .unwrap_or_else(|e| panic!("demo: {e}"));
    let text = String::from_utf8_lossy(&out);
    for part in [
        "1. A composite alarm",
        "2. GuardDuty",
        "4. A storm",
        "firebreak:protected",
        "approves",
        "# Post-incident report",
        "MTTR",
    ] {
        assert!(
            text.contains(part),
            "{part:?} missing from the demo:\n{text}"
        );
    }
    let by_playbook = |p: &str| {
        report
            .incidents
            .iter()
            .filter(|i| i.playbook.as_deref() == Some(p))
            .collect::<Vec<_>>()
    };
    assert_eq!(by_playbook("service-down")[0].status, Status::Resolved);
    assert_eq!(
        by_playbook("ec2-brute-force").len(),
        1,
        "the storm opened nothing new"
    );
    assert_eq!(by_playbook("s3-public-access")[0].status, Status::Resolved);
    let protected = by_playbook("ec2-compromise")
        .into_iter()
        .find(|i| i.status != Status::Resolved)
        .expect("the protected instance's incident stays open");
    assert!(
        report
            .actions
            .iter()
            .filter(|a| a.incident == protected.id)
            .all(|a| a.outcome == "skipped"),
        "{:#?}",
        report.actions
    );
    assert!(report.dead_letters.is_empty(), "{:#?}", report.dead_letters);
}
