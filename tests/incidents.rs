//! `firebreak incidents` against a local AWS (moto) over HTTP, on the stack template.yaml
//! defines: each test opens an incident through the real create stage from a real GuardDuty
//! finding, then drives the command in-process with `--table`/`--bus` (as against a stack whose
//! outputs were read) and reads back the record and the events the template's rules delivered.
//!
//! Confirmations come from a scripted prompt, never the test's own standard input, so a run
//! from a terminal cannot hang on a question. CloudWatch is left out of `resolve` (moto cannot
//! serve the Rust client's protocol); the EMF-to-metrics translation is unit-tested in the CLI.

// The shared harness is not ours to edit; its one closure clippy dislikes is harmless.
#[allow(clippy::redundant_closure)]
mod support;

use chrono::Utc;
use firebreak_cli::incidents::{
    Deployed, IncidentsArgs, IncidentsError, Outcome, Prompt, Session, run_with,
};
use firebreak_cli::seed::{self, HostSpec};
use firebreak_create::Create;
use firebreak_remediate::{Clients, DryRunSwitch, Remediate};
use firebreak_shared::incident::{Incident, Status};
use firebreak_shared::lifecycle::{Event, Kind};
use firebreak_shared::playbook::PlaybookSet;
use serde_json::{Value, json};
use support::{Pipeline, fixture};

const BACKDOOR: &str = "guardduty/custodian-eventbridge-backdoor-ec2-cc-activity-b-dns.json";
const ACTOR: &str = "cli:alice";

/// The backdoor finding, high severity, naming `instance`: the `ec2-compromise` playbook
/// (mode `auto`) claims it.
fn finding(instance: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&fixture(BACKDOOR)).expect("fixture is JSON");
    v["detail"]["resource"]["instanceDetails"]["instanceId"] = json!(instance);
    v["detail"]["severity"] = json!(8);
    v["detail"]["id"] = json!(format!("finding-{instance}"));
    serde_json::to_vec(&v).expect("serialises")
}

async fn open_with(p: &Pipeline, create: &Create, instance: &str) -> Incident {
    let out = create
        .handle(&finding(instance), Utc::now())
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    let id = out["results"][0]["incident"]
        .as_str()
        .unwrap_or_else(|| panic!("no incident opened: {out}"))
        .to_owned();
    p.incident(&id).await
}

async fn open(p: &Pipeline) -> Incident {
    open_with(p, &p.create, "i-0123456789abcdef0").await
}

/// `incidents --table T --bus B <argv>` as parsed by the CLI.
fn args(p: &Pipeline, argv: &[&str]) -> IncidentsArgs {
    let head = [
        "incidents",
        "--table",
        &p.stack.table,
        "--bus",
        &p.stack.bus,
    ];
    IncidentsArgs::try_parse_from(head.iter().chain(argv).copied())
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
}

/// Runs `argv` against the pipeline's stack as `cli:alice`, answering prompts from `prompt`.
async fn cli_with(p: &Pipeline, argv: &[&str], prompt: &mut Prompt) -> (Outcome, String) {
    let args = args(p, argv);
    let mut session = Session::open(&p.sdk, &args)
        .await
        .unwrap_or_else(|e| panic!("session: {e}"));
    session.actor = ACTOR.to_owned();
    session.cloudwatch = None;
    let mut out = Vec::new();
    let outcome = session
        .execute(&args.command, args.yes, &mut out, prompt)
        .await
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    (outcome, String::from_utf8_lossy(&out).into_owned())
}

/// Runs `argv` with no terminal: a question is refused, as in a pipe.
async fn cli(p: &Pipeline, argv: &[&str]) -> (Outcome, String) {
    cli_with(p, argv, &mut Prompt::scripted(false, "")).await
}

fn refused(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Refused(why) => why,
        Outcome::Done => panic!("expected a refusal"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_the_open_incident_and_json_prints_its_record() {
    let p = Pipeline::new("inc-list").await;
    let incident = open(&p).await;

    // Through run_with, as `firebreak incidents list` runs.
    let args = args(&p, &["list"]);
    let mut out = Vec::new();
    let outcome = run_with(&p.sdk, &args, &mut out, &mut Prompt::scripted(false, ""))
        .await
        .unwrap_or_else(|e| panic!("list: {e}"));
    let text = String::from_utf8_lossy(&out);
    assert_eq!(outcome, Outcome::Done);
    let row = text
        .lines()
        .find(|l| l.starts_with(&incident.id))
        .unwrap_or_else(|| panic!("no row for {}:\n{text}", incident.id));
    for cell in ["open", "high", "ec2-compromise"] {
        assert!(row.contains(cell), "{cell} missing: {row}");
    }
    assert!(text.starts_with("ID "), "a header first:\n{text}");

    let (outcome, text) = cli(&p, &["list", "--json", "--status", "all"]).await;
    assert_eq!(outcome, Outcome::Done);
    let listed: Vec<Incident> = serde_json::from_str(&text).expect("a JSON array of incidents");
    assert_eq!(listed, vec![incident]);

    let (_, text) = cli(&p, &["list", "--status", "resolved"]).await;
    assert!(text.contains("No resolved incidents"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_prints_status_resources_and_timeline_and_an_unknown_id_is_refused() {
    let p = Pipeline::new("inc-show").await;
    let incident = open(&p).await;

    let (outcome, text) = cli(&p, &["show", &incident.id]).await;
    assert_eq!(outcome, Outcome::Done);
    for part in [
        "Status       open",
        "Playbook     ec2-compromise",
        "i-0123456789abcdef0",
        "Timeline (1)",
        "create",
        "opened",
        "MTTD",
    ] {
        assert!(text.contains(part), "{part:?} missing:\n{text}");
    }

    let (_, text) = cli(&p, &["show", &incident.id, "--json"]).await;
    let shown: Incident = serde_json::from_str(&text).expect("the record as JSON");
    assert_eq!(shown, incident);

    let (outcome, text) = cli(&p, &["show", "INC-20200101-00000000"]).await;
    assert!(refused(&outcome).contains("no incident INC-20200101-00000000"));
    assert!(text.is_empty(), "nothing on stdout: {text}");
    assert_eq!(outcome.exit_code(), std::process::ExitCode::from(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_sets_acknowledged_and_mtta_and_a_second_ack_keeps_the_first_mtta() {
    let p = Pipeline::new("inc-ack").await;
    let incident = open(&p).await;
    p.delivered("NotifyFunction").await;

    let (outcome, text) = cli(&p, &["ack", &incident.id, "--note", "looking"]).await;
    assert_eq!(outcome, Outcome::Done, "{text}");
    assert!(text.contains("Acknowledged"), "{text}");
    let acked = p.incident(&incident.id).await;
    assert_eq!(acked.status, Status::Acknowledged);
    let mtta = acked.metrics.mtta_s.expect("MTTA set");
    assert!(acked.timeline.iter().any(|e| e.actor == ACTOR
        && e.event == "acknowledged"
        && e.detail.as_deref() == Some("looking")));
    // Nothing on the bus: the lifecycle has no acknowledgement event.
    assert_eq!(p.delivered("NotifyFunction").await, Vec::<String>::new());

    let (outcome, text) = cli(&p, &["ack", &incident.id]).await;
    assert_eq!(outcome, Outcome::Done);
    assert!(text.contains("already acknowledged"), "{text}");
    let again = p.incident(&incident.id).await;
    assert_eq!(again.metrics.mtta_s, Some(mtta));
    assert_eq!(
        again
            .timeline
            .iter()
            .filter(|e| e.event == "acknowledged")
            .count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_writes_mttr_and_the_report_announces_it_and_a_second_resolve_changes_nothing() {
    let p = Pipeline::new("inc-resolve").await;
    let incident = open(&p).await;
    p.delivered("NotifyFunction").await;

    let (outcome, text) = cli(
        &p,
        &["resolve", &incident.id, "--note", "false positive", "--yes"],
    )
    .await;
    assert_eq!(outcome, Outcome::Done, "{text}");
    assert!(text.contains("Resolved") && text.contains("MTTR"), "{text}");
    let resolved = p.incident(&incident.id).await;
    assert_eq!(resolved.status, Status::Resolved);
    let resolution = resolved.resolution.clone().expect("a resolution");
    assert_eq!(
        (resolution.by.as_str(), resolution.reason.as_str()),
        (ACTOR, "false positive")
    );
    assert!(resolved.metrics.mttr_s.is_some());
    assert!(resolved.expires_at.is_some(), "the retention TTL is set");
    let report = resolved.report.clone().expect("a report");
    assert!(report.contains("false positive"), "{report}");
    // The dedupe key is released, as the close stage releases it.
    assert_eq!(
        p.store
            .open_for_key(&incident.dedupe_key)
            .await
            .expect("store"),
        None
    );
    let announced: Vec<Value> = p
        .delivered("NotifyFunction")
        .await
        .iter()
        .map(|b| serde_json::from_str(b).expect("an event"))
        .filter(|e: &Value| e["detail-type"] == "Incident Resolved")
        .collect();
    assert_eq!(announced.len(), 1);
    assert_eq!(announced[0]["detail"]["actor"], ACTOR);

    let (outcome, text) = cli(&p, &["resolve", &incident.id, "--note", "again"]).await;
    assert_eq!(outcome, Outcome::Done);
    assert!(text.contains("already resolved"), "{text}");
    assert_eq!(p.incident(&incident.id).await, resolved);
    assert!(p.delivered("NotifyFunction").await.is_empty());

    let (_, text) = cli(&p, &["report", &incident.id]).await;
    assert_eq!(text.trim_end(), report.trim_end());

    let (outcome, _) = cli(&p, &["ack", &incident.id]).await;
    assert!(refused(&outcome).contains("resolved"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_of_an_unresolved_incident_says_so_and_renders_the_record_so_far() {
    let p = Pipeline::new("inc-report").await;
    let incident = open(&p).await;
    let (outcome, text) = cli(&p, &["report", &incident.id]).await;
    assert_eq!(outcome, Outcome::Done);
    assert!(text.starts_with("> **Incident"), "{text}");
    assert!(text.contains("is open, not resolved"), "{text}");
    assert!(
        text.contains(&format!("# Post-incident report: {}", incident.id)),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutating_command_without_yes_and_without_a_terminal_refuses_and_changes_nothing() {
    let p = Pipeline::new("inc-confirm").await;
    let incident = open(&p).await;

    let (outcome, text) = cli(&p, &["resolve", &incident.id, "--note", "done"]).await;
    let why = refused(&outcome);
    assert!(
        why.contains("not a terminal") && why.contains("--yes"),
        "{why}"
    );
    assert!(
        text.contains(&incident.id),
        "it said what it would do: {text}"
    );
    assert_eq!(p.incident(&incident.id).await, incident);

    // At a terminal, anything but yes declines.
    let (outcome, text) = cli_with(
        &p,
        &["resolve", &incident.id, "--note", "done"],
        &mut Prompt::scripted(true, "n\n"),
    )
    .await;
    assert!(refused(&outcome).contains("not confirmed"));
    assert!(text.contains("Proceed? [y/N]"), "{text}");
    assert_eq!(p.incident(&incident.id).await, incident);

    let (outcome, _) = cli_with(
        &p,
        &["resolve", &incident.id, "--note", "done"],
        &mut Prompt::scripted(true, "y\n"),
    )
    .await;
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(p.incident(&incident.id).await.status, Status::Resolved);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_is_refused_when_the_playbook_holds_no_steps_for_approval() {
    let p = Pipeline::new("inc-approve-auto").await;
    let incident = open(&p).await;
    let (outcome, text) = cli(
        &p,
        &[
            "approve",
            &incident.id,
            "--yes",
            "--dry-run-parameter",
            "/fb/dry-run",
        ],
    )
    .await;
    let why = refused(&outcome);
    assert!(why.contains("ec2-compromise runs in auto mode"), "{why}");
    assert!(text.is_empty(), "refused before any preview: {text}");
    assert_eq!(p.incident(&incident.id).await, incident);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_without_a_known_dry_run_switch_is_a_configuration_error() {
    let p = Pipeline::new("inc-approve-noswitch").await;
    let incident = open(&p).await;
    let args = args(&p, &["approve", &incident.id, "--yes"]);
    let err = run_with(
        &p.sdk,
        &args,
        &mut Vec::new(),
        &mut Prompt::scripted(false, ""),
    )
    .await
    .err();
    assert!(
        matches!(err, Some(IncidentsError::NoDryRunParameter)),
        "{err:?}"
    );
    assert!(
        err.is_some_and(|e| e.to_string().contains("--dry-run-parameter")),
        "names the flag"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_is_refused_when_nothing_was_isolated() {
    let p = Pipeline::new("inc-rollback").await;
    let incident = open(&p).await;
    let (outcome, text) = cli(&p, &["rollback", &incident.id, "--yes"]).await;
    assert!(
        refused(&outcome).contains("no isolation to roll back"),
        "{outcome:?}"
    );
    assert!(text.is_empty(), "{text}");
    assert_eq!(p.incident(&incident.id).await, incident);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locating_a_stack_that_does_not_exist_names_what_to_pass_instead() {
    let local = firebreak_cli::sandbox::LocalAws::shared().unwrap_or_else(|e| panic!("{e}"));
    let sdk = local.sdk_config().await;
    let args = IncidentsArgs::try_parse_from(["incidents", "--stack", "no-such-stack", "list"])
        .unwrap_or_else(|e| panic!("{e}"));
    let err = Deployed::locate(&sdk, &args).await.err();
    let Some(IncidentsError::StackNotFound { stack, region }) = &err else {
        panic!("expected StackNotFound, got {err:?}");
    };
    assert_eq!(
        (stack.as_str(), region.as_str()),
        ("no-such-stack", "us-east-1")
    );
    let msg = err.map(|e| e.to_string()).unwrap_or_default();
    for hint in ["--stack", "--table", "--bus"] {
        assert!(msg.contains(hint), "{hint} missing: {msg}");
    }
}

/// A playbook that tags the instance once approved.
const TAGGING: &str = "name: tag-compromised\npriority: 1\n\
    match: {sources: [guardduty], resource_types: [ec2_instance]}\n\
    dedupe: {key: \"{playbook}:{account}:{resource.ec2_instance}\"}\n\
    remediate:\n  - action: ec2.tag\n    with: {tags: {investigate: \"yes\"}}\n\
    guardrails: {mode: approve}\nclose: {on: manual}\n";

/// An instance in its own VPC and subnet.
async fn instance(ec2: &aws_sdk_ec2::Client) -> String {
    let spec = HostSpec {
        name: "web-1".into(),
        ..HostSpec::default()
    };
    seed::host(ec2, &spec)
        .await
        .unwrap_or_else(|e| panic!("seeding an instance: {e}"))
        .id
}

async fn tags_of(ec2: &aws_sdk_ec2::Client, id: &str) -> Vec<(String, String)> {
    seed::tags_of(ec2, id)
        .await
        .unwrap_or_else(|e| panic!("DescribeInstances: {e}"))
}

/// `Incident Enriched` about `incident`, as EventBridge delivers it to the remediate function.
fn enriched(incident: &Incident) -> Vec<u8> {
    let event = Event::about(Kind::IncidentEnriched, incident, None, Utc::now(), None);
    serde_json::to_vec(&json!({
        "version": "0", "id": format!("enriched-{}", incident.id),
        "detail-type": event.kind.detail_type(), "source": "firebreak",
        "account": "123456789012", "time": event.detail.at.to_rfc3339(),
        "region": "us-east-1", "resources": [],
        "detail": serde_json::to_value(&event.detail).expect("detail serialises"),
    }))
    .expect("serialises")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_shows_the_held_steps_then_runs_them_under_the_deployed_switch() {
    let p = Pipeline::new("inc-approve").await;
    let dir = std::env::temp_dir().join(format!("{}-playbooks", p.stack.prefix));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("tag.yaml"), TAGGING).expect("playbook written");
    let set = PlaybookSet::load_dir(&dir).unwrap_or_else(|e| panic!("{e:?}"));
    let parameter = format!("/{}/dry-run", p.stack.prefix);
    let ssm = aws_sdk_ssm::Client::new(&p.sdk);
    ssm.put_parameter()
        .name(&parameter)
        .value("false")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutParameter: {e}"));
    let ec2 = aws_sdk_ec2::Client::new(&p.sdk);
    let host = instance(&ec2).await;
    let create = Create::new(set.clone(), p.store.clone(), p.bus.clone(), None);
    let incident = open_with(&p, &create, &host).await;
    // The deployed remediate stage reaches the held step and asks.
    let stage = Remediate::new(
        set,
        p.store.clone(),
        p.bus.clone(),
        Clients::new(&p.sdk),
        DryRunSwitch::new(ssm, &parameter),
    );
    let asked = stage
        .handle(
            &enriched(&incident),
            Utc::now(),
            Utc::now() + chrono::Duration::seconds(60),
        )
        .await
        .unwrap_or_else(|e| panic!("remediate: {e}"));
    assert_eq!(asked["outcome"], "awaiting_approval", "{asked:#}");

    let dir_arg = dir.to_string_lossy().into_owned();
    let argv = [
        "approve",
        &incident.id,
        "--playbooks",
        &dir_arg,
        "--dry-run-parameter",
        &parameter,
    ];
    // Without a terminal: the preview, then a refusal, and no tag.
    let (outcome, text) = cli(&p, &argv).await;
    assert!(refused(&outcome).contains("--yes"));
    for part in [
        "tag-compromised",
        "ec2.tag (changes resources)",
        "dry-run switch is off",
        "Approve with",
    ] {
        assert!(text.contains(part), "{part:?} missing:\n{text}");
    }
    assert!(
        !tags_of(&ec2, &host)
            .await
            .iter()
            .any(|(k, _)| k == "investigate")
    );

    // Confirmed at the terminal: the step runs, as alice.
    let (outcome, text) = cli_with(&p, &argv, &mut Prompt::scripted(true, "y\n")).await;
    assert_eq!(outcome, Outcome::Done, "{text}");
    assert!(text.contains("Outcome: remediated"), "{text}");
    assert!(
        tags_of(&ec2, &host)
            .await
            .contains(&("investigate".to_owned(), "yes".to_owned()))
    );
    let record = p.incident(&incident.id).await;
    assert!(
        record
            .timeline
            .iter()
            .any(|e| e.actor == ACTOR && e.event == "remediation_approved")
    );
    assert_eq!(record.status, Status::Acknowledged);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolution_through_run_with_stands_whether_or_not_cloudwatch_takes_the_metrics() {
    let p = Pipeline::new("inc-run").await;
    let incident = open(&p).await;
    // As `firebreak incidents resolve` runs: CloudWatch included (moto may refuse it).
    let args = args(&p, &["resolve", &incident.id, "--note", "patched", "--yes"]);
    let mut out = Vec::new();
    let outcome = run_with(&p.sdk, &args, &mut out, &mut Prompt::scripted(false, ""))
        .await
        .unwrap_or_else(|e| panic!("resolve: {e}"));
    let text = String::from_utf8_lossy(&out);
    assert_eq!(outcome, Outcome::Done, "{text}");
    assert!(
        text.contains("MTTx metrics"),
        "the metrics are accounted for: {text}"
    );
    let resolved = p.incident(&incident.id).await;
    assert_eq!(resolved.status, Status::Resolved);
    assert!(resolved.metrics.mttr_s.is_some());
}
