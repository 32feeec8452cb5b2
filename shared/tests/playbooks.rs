//! The starter library and the playbook loader, from the outside: the files in
//! infra/playbooks load and validate, each starter playbook takes the signals it should and no
//! others, and every kind of mistake in a playbook is reported with its file and line.
//!
//! Signals are built by hand, so these tests do not depend on the event parser.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use firebreak_shared::playbook::{CloseOn, Mode, PlaybookSet, ValidationError};
use firebreak_shared::signal::{
    Action, AlarmState, Resource, ResourceKind, Severity, Signal, Source, Tag,
};

// ---------------------------------------------------------------------------------------------
// Allocation counting, for the proof that matching does not allocate. Counted per thread, so
// tests running in parallel do not disturb each other.

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_allocation() {
    // `try_with`: the allocator also runs while thread-locals are being torn down.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every method forwards to `System` unchanged; counting touches only a const-initialized
// thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

// ---------------------------------------------------------------------------------------------
// Hand-built signals.

const ACCOUNT: &str = "123456789012";

fn base(source: Source, kind: &str, severity: Severity) -> Signal {
    Signal {
        source,
        action: Action::Open,
        severity,
        title: format!("test {kind}"),
        kind: kind.to_owned(),
        control_id: None,
        alarm_name: None,
        alarm_state: None,
        resources: vec![],
        tags: vec![],
        account: Some(ACCOUNT.to_owned()),
        region: Some("eu-west-1".to_owned()),
        observed_at: Utc::now(),
        count: 1,
        dedupe_key: format!("{}:{kind}", source.as_str()),
        raw: Arc::from("{}"),
    }
}

fn resource(kind: ResourceKind, id: &str) -> Resource {
    Resource {
        kind,
        id: id.to_owned(),
    }
}

fn instance() -> Resource {
    resource(ResourceKind::Ec2Instance, "i-0123456789abcdef0")
}

fn access_key() -> Resource {
    resource(ResourceKind::AccessKey, "AKIAIOSFODNN7EXAMPLE")
}

fn user() -> Resource {
    resource(ResourceKind::IamUser, "deploy-bot")
}

fn bucket() -> Resource {
    resource(ResourceKind::S3Bucket, "arn:aws:s3:::customer-exports")
}

/// A GuardDuty finding of `kind` on `resources`.
fn guardduty(kind: &str, severity: Severity, resources: Vec<Resource>) -> Signal {
    Signal {
        resources,
        ..base(Source::Guardduty, kind, severity)
    }
}

/// A Security Hub finding from `generator`, with `control_id` if it is a control finding.
fn security_hub(
    generator: &str,
    control_id: Option<&str>,
    severity: Severity,
    resources: Vec<Resource>,
) -> Signal {
    Signal {
        control_id: control_id.map(str::to_owned),
        resources,
        ..base(Source::SecurityHub, generator, severity)
    }
}

/// A CloudWatch alarm of `kind` named `name` going into ALARM, about `resources`.
fn alarm(name: &str, kind: &str, resources: Vec<Resource>) -> Signal {
    let mut all = vec![resource(
        ResourceKind::Alarm,
        &format!("arn:aws:cloudwatch:eu-west-1:{ACCOUNT}:alarm:{name}"),
    )];
    all.extend(resources);
    Signal {
        alarm_name: Some(name.to_owned()),
        alarm_state: Some(AlarmState::Alarm),
        resources: all,
        ..base(Source::CloudwatchAlarm, kind, Severity::Medium)
    }
}

const GUARDDUTY_GENERATOR: &str =
    "arn:aws:guardduty:eu-west-1:123456789012:detector/12abc34d567e8fa901bc2d34e56789f0";

fn starter() -> PlaybookSet {
    PlaybookSet::starter()
}

fn matched(set: &PlaybookSet, signal: &Signal) -> Option<String> {
    set.first_match(signal).map(|p| p.name.clone())
}

fn steps(set: &PlaybookSet, signal: &Signal) -> Vec<&'static str> {
    set.first_match(signal)
        .map(|p| p.steps_for(signal).map(|s| s.action.name).collect())
        .unwrap_or_default()
}

fn starter_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/playbooks")
}

// ---------------------------------------------------------------------------------------------
// The starter library as a whole.

#[test]
fn starter_library_in_infra_playbooks_loads_and_validates() {
    let from_disk = PlaybookSet::load_dir(starter_dir()).unwrap_or_else(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("starter playbooks are invalid:\n{}", lines.join("\n"))
    });
    let embedded = starter();
    let names = |s: &PlaybookSet| -> Vec<(String, u32)> {
        s.iter().map(|p| (p.name.clone(), p.priority)).collect()
    };
    assert_eq!(names(&from_disk), names(&embedded));
    assert_eq!(
        names(&embedded),
        [
            ("ec2-brute-force".to_owned(), 10),
            ("ec2-compromise".to_owned(), 20),
            ("iam-credential-compromise".to_owned(), 30),
            ("s3-public-access".to_owned(), 40),
            ("service-down".to_owned(), 50),
            ("ec2-unhealthy".to_owned(), 60),
            ("securityhub-critical".to_owned(), 70),
        ]
    );
}

#[test]
fn every_starter_file_is_named_after_its_playbook_and_explains_itself() {
    for playbook in &starter() {
        let file = playbook
            .file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert_eq!(file, format!("{}.yaml", playbook.name));
        let text = fs::read_to_string(starter_dir().join(file)).expect("starter file is readable");
        assert!(
            text.starts_with("# "),
            "{file} must open with a comment block"
        );
        assert!(playbook.description.is_some(), "{file} has no description");
    }
}

#[test]
fn only_ec2_compromise_remediates_without_approval() {
    for playbook in &starter() {
        if playbook.guardrails.mode == Mode::Auto {
            let mutating: Vec<&str> = playbook
                .remediate
                .iter()
                .filter(|s| s.action.mutating)
                .map(|s| s.action.name)
                .collect();
            if playbook.name != "ec2-compromise" {
                assert!(
                    mutating.is_empty(),
                    "{} mutates in auto mode: {mutating:?}",
                    playbook.name
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Each starter playbook: what it takes, what it leaves.

#[test]
fn brute_force_findings_go_to_ec2_brute_force_and_change_nothing() {
    let set = starter();
    for kind in [
        "UnauthorizedAccess:EC2/SSHBruteForce",
        "UnauthorizedAccess:EC2/RDPBruteForce",
    ] {
        for severity in [Severity::Low, Severity::High] {
            let signal = guardduty(kind, severity, vec![instance()]);
            assert_eq!(
                matched(&set, &signal).as_deref(),
                Some("ec2-brute-force"),
                "{kind} {severity}"
            );
            assert_eq!(steps(&set, &signal), ["notify"]);
            let playbook = set.first_match(&signal).expect("matched");
            assert_eq!(
                playbook.severity_for(&signal),
                severity,
                "keeps the finding's severity"
            );
            assert_eq!(
                playbook.dedupe_key(&signal),
                format!("ec2-brute-force:{ACCOUNT}:i-0123456789abcdef0")
            );
        }
    }
}

#[test]
fn high_severity_instance_findings_go_to_ec2_compromise_and_contain() {
    let set = starter();
    for kind in [
        "Backdoor:EC2/C&CActivity.B!DNS",
        "CryptoCurrency:EC2/BitcoinTool.B!DNS",
        "Trojan:EC2/DNSDataExfiltration",
        "UnauthorizedAccess:EC2/TorClient",
    ] {
        let signal = guardduty(kind, Severity::High, vec![instance()]);
        assert_eq!(
            matched(&set, &signal).as_deref(),
            Some("ec2-compromise"),
            "{kind}"
        );
        assert_eq!(
            steps(&set, &signal),
            ["ec2.snapshot", "ec2.isolate", "notify"]
        );
    }
    let playbook = set.get("ec2-compromise").expect("in the set");
    assert_eq!(playbook.guardrails.mode, Mode::Auto);
    assert_eq!(playbook.close.on, CloseOn::VerifiedRemediation);
    assert_eq!(playbook.guardrails.rate_limit.max.get(), 5);
    let isolate = &playbook.remediate[1];
    assert_eq!(isolate.with.bool("detach_from_asg"), Some(true));
    assert_eq!(isolate.with.bool("protect"), Some(true));
}

#[test]
fn ec2_compromise_leaves_medium_findings_other_services_and_instance_less_findings() {
    let set = starter();
    let medium = guardduty(
        "Backdoor:EC2/C&CActivity.B",
        Severity::Medium,
        vec![instance()],
    );
    assert_eq!(matched(&set, &medium), None);
    let lambda = guardduty("Backdoor:Lambda/C&CActivity.B", Severity::High, vec![]);
    assert_eq!(matched(&set, &lambda), None);
    let no_instance = guardduty(
        "Trojan:EC2/BlackholeTraffic",
        Severity::High,
        vec![access_key()],
    );
    assert_eq!(matched(&set, &no_instance), None);
    let recon = guardduty(
        "Recon:EC2/PortProbeUnprotectedPort",
        Severity::High,
        vec![instance()],
    );
    assert_eq!(matched(&set, &recon), None);
}

#[test]
fn credential_findings_go_to_iam_credential_compromise_for_approval() {
    let set = starter();
    for kind in [
        "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
        "CredentialAccess:IAMUser/AnomalousBehavior",
        "InitialAccess:IAMUser/AnomalousBehavior",
        "Exfiltration:IAMUser/AnomalousBehavior",
        "PenTest:IAMUser/KaliLinux",
        "Recon:IAMUser/MaliciousIPCaller",
        "Recon:IAMUser/MaliciousIPCaller.Custom",
    ] {
        let signal = guardduty(kind, Severity::Medium, vec![access_key()]);
        assert_eq!(
            matched(&set, &signal).as_deref(),
            Some("iam-credential-compromise"),
            "{kind}"
        );
        assert_eq!(
            steps(&set, &signal),
            ["notify", "escalate", "iam.deactivate_access_key"]
        );
    }
    let playbook = set.get("iam-credential-compromise").expect("in the set");
    assert_eq!(playbook.guardrails.mode, Mode::Approve);
    assert_eq!(
        playbook
            .notify
            .escalation
            .after
            .map(|d| d.to_string())
            .as_deref(),
        Some("15m")
    );
    assert_eq!(playbook.close.on, CloseOn::Manual);

    for kind in [
        "Recon:IAMUser/TorIPCaller",
        "Policy:IAMUser/RootCredentialUsage",
    ] {
        let signal = guardduty(kind, Severity::Medium, vec![access_key()]);
        assert_eq!(matched(&set, &signal), None, "{kind}");
    }
}

#[test]
fn security_hub_copies_of_guardduty_key_findings_join_the_same_incident() {
    let set = starter();
    // Both parsers name the key first, then its user.
    let direct = guardduty(
        "UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom",
        Severity::Medium,
        vec![access_key(), user()],
    );
    let copy = security_hub(
        GUARDDUTY_GENERATOR,
        None,
        Severity::Medium,
        vec![access_key(), user()],
    );
    let playbook = set.first_match(&copy).expect("the copy matches");
    assert_eq!(playbook.name, "iam-credential-compromise");
    assert_eq!(playbook.dedupe_key(&copy), playbook.dedupe_key(&direct));
    assert_eq!(
        playbook.dedupe_key(&copy),
        format!("iam-credential-compromise:{ACCOUNT}:AKIAIOSFODNN7EXAMPLE")
    );

    let low = security_hub(GUARDDUTY_GENERATOR, None, Severity::Low, vec![access_key()]);
    assert_eq!(matched(&set, &low), None);
    let control = security_hub(
        "security-control/IAM.3",
        Some("IAM.3"),
        Severity::Medium,
        vec![access_key()],
    );
    assert_eq!(matched(&set, &control), None);
}

#[test]
fn a_finding_that_names_only_the_user_pages_without_a_key_to_deactivate() {
    let set = starter();
    let keyless = security_hub(GUARDDUTY_GENERATOR, None, Severity::Medium, vec![user()]);
    assert_eq!(
        matched(&set, &keyless).as_deref(),
        Some("iam-credential-compromise")
    );
    assert_eq!(steps(&set, &keyless), ["notify", "escalate"]);
    let playbook = set.first_match(&keyless).expect("matched");
    assert_eq!(
        playbook.dedupe_key(&keyless),
        format!("iam-credential-compromise:{ACCOUNT}:deploy-bot")
    );
}

#[test]
fn public_bucket_findings_go_to_s3_public_access() {
    let set = starter();
    for control in ["S3.2", "S3.3", "S3.8", "CIS 2.3", "CloudTrail.6"] {
        let signal = security_hub(
            &format!("security-control/{control}"),
            Some(control),
            Severity::High,
            vec![bucket()],
        );
        assert_eq!(
            matched(&set, &signal).as_deref(),
            Some("s3-public-access"),
            "{control}"
        );
        assert_eq!(steps(&set, &signal), ["s3.block_public_access", "notify"]);
    }
    for kind in [
        "Policy:S3/BucketBlockPublicAccessDisabled",
        "Policy:S3/BucketAnonymousAccessGranted",
        "Policy:S3/BucketPublicAccessGranted",
    ] {
        let signal = guardduty(kind, Severity::Low, vec![bucket()]);
        assert_eq!(
            matched(&set, &signal).as_deref(),
            Some("s3-public-access"),
            "{kind}"
        );
    }
    assert_eq!(
        set.get("s3-public-access").map(|p| p.guardrails.mode),
        Some(Mode::Approve)
    );
}

#[test]
fn account_level_s3_findings_are_announced_without_a_bucket_change() {
    let set = starter();
    let account = security_hub(
        "security-control/S3.1",
        Some("S3.1"),
        Severity::Medium,
        vec![resource(
            ResourceKind::Account,
            "AWS::::Account:123456789012",
        )],
    );
    assert_eq!(matched(&set, &account).as_deref(), Some("s3-public-access"));
    assert_eq!(steps(&set, &account), ["notify"]);

    let ssl = security_hub(
        "security-control/S3.5",
        Some("S3.5"),
        Severity::Medium,
        vec![bucket()],
    );
    assert_eq!(matched(&set, &ssl), None);
}

#[test]
fn service_level_alarms_go_to_service_down_and_page() {
    let set = starter();
    for signal in [
        alarm("checkout-health", "composite", vec![]),
        alarm("checkout-Service-Down", "metric", vec![]),
        alarm("payments-servicedown", "anomaly_detection", vec![]),
        // Both service-level and instance-level: the page wins.
        alarm("api-service-down-cpu-high", "metric", vec![instance()]),
    ] {
        assert_eq!(
            matched(&set, &signal).as_deref(),
            Some("service-down"),
            "{:?}",
            signal.alarm_name
        );
        assert_eq!(steps(&set, &signal), ["notify", "escalate"]);
        let playbook = set.first_match(&signal).expect("matched");
        assert_eq!(playbook.severity_for(&signal), Severity::Critical);
        assert_eq!(playbook.notify.route, "page");
        assert_eq!(playbook.close.on, CloseOn::AlarmOk);
        assert_eq!(
            playbook.dedupe_key(&signal),
            signal.dedupe_key,
            "keeps the alarm's own key"
        );
    }
}

#[test]
fn instance_alarms_go_to_ec2_unhealthy_with_a_restart_for_approval() {
    let set = starter();
    for name in [
        "web-1-StatusCheckFailed",
        "web-1-statuscheckfailed_system",
        "web-1-CPUUtilization-high",
        "web-CPU-HIGH",
    ] {
        let signal = alarm(name, "metric", vec![instance()]);
        assert_eq!(
            matched(&set, &signal).as_deref(),
            Some("ec2-unhealthy"),
            "{name}"
        );
        assert_eq!(steps(&set, &signal), ["ssm.automation"]);
    }
    let signal = alarm("web-1-StatusCheckFailed", "metric", vec![instance()]);
    let playbook = set.first_match(&signal).expect("matched");
    assert_eq!(playbook.severity_for(&signal), Severity::High);
    assert_eq!(playbook.guardrails.mode, Mode::Approve);
    assert_eq!(playbook.insufficient_data, Action::Ignore);
    let step = &playbook.remediate[0];
    assert_eq!(step.with.string("document"), Some("AWS-RestartEC2Instance"));
    let parameters = step.with.ssm_parameters("parameters").expect("parameters");
    let rendered: Vec<String> = parameters["InstanceId"]
        .iter()
        .map(|t| {
            t.try_render(&signal, &playbook.name)
                .expect("the alarm names an instance")
        })
        .collect();
    assert_eq!(rendered, ["i-0123456789abcdef0"]);
}

#[test]
fn ec2_unhealthy_announces_fleet_alarms_without_restarting_and_ignores_other_kinds() {
    let set = starter();
    let fleet = alarm("asg-web-CPUUtilization", "metric", vec![]);
    assert_eq!(matched(&set, &fleet).as_deref(), Some("ec2-unhealthy"));
    assert_eq!(steps(&set, &fleet), Vec::<&str>::new());
    let math = alarm("web-cpu-high", "metric_math", vec![instance()]);
    assert_eq!(matched(&set, &math), None);
    let other = alarm("orders-queue-depth", "metric", vec![]);
    assert_eq!(matched(&set, &other), None);
}

#[test]
fn critical_security_hub_findings_fall_through_to_securityhub_critical() {
    let set = starter();
    let critical = security_hub(
        "aws-foundational-security-best-practices/v/1.0.0/EC2.19",
        Some("EC2.19"),
        Severity::Critical,
        vec![resource(ResourceKind::SecurityGroup, "sg-0123")],
    );
    assert_eq!(
        matched(&set, &critical).as_deref(),
        Some("securityhub-critical")
    );
    assert_eq!(steps(&set, &critical), ["notify"]);
    let playbook = set.first_match(&critical).expect("matched");
    assert_eq!(playbook.close.on, CloseOn::Manual);
    assert_eq!(playbook.notify.route, "security");

    let high = Signal {
        severity: Severity::High,
        ..critical.clone()
    };
    assert_eq!(matched(&set, &high), None);
    let guardduty_critical = guardduty(
        "Impact:EC2/MaliciousDomainRequest.Reputation",
        Severity::Critical,
        vec![instance()],
    );
    assert_eq!(matched(&set, &guardduty_critical), None);
}

#[test]
fn a_specific_playbook_wins_over_securityhub_critical() {
    let set = starter();
    let critical_bucket = security_hub(
        "security-control/S3.2",
        Some("S3.2"),
        Severity::Critical,
        vec![bucket()],
    );
    assert_eq!(
        matched(&set, &critical_bucket).as_deref(),
        Some("s3-public-access")
    );
}

#[test]
fn tags_on_the_signal_do_not_change_which_starter_playbook_matches() {
    let set = starter();
    let mut signal = guardduty(
        "Backdoor:EC2/C&CActivity.B",
        Severity::High,
        vec![instance()],
    );
    signal.tags.push(Tag {
        key: "firebreak:protected".to_owned(),
        value: "true".to_owned(),
    });
    let playbook = set.first_match(&signal).expect("matched");
    assert_eq!(playbook.name, "ec2-compromise");
    // Protection is enforced when a step runs, not by skipping the incident.
    assert!(playbook.guardrails.protected_tag.protects(&signal.tags));
}

// ---------------------------------------------------------------------------------------------
// Validation errors: file and line for every kind of mistake.

const BASE: &str = r#"name: base
priority: 100
match:
  sources: [guardduty]
  finding_types: ["Backdoor:EC2/*"]
dedupe:
  key: "{source}:{resource}"
  window: 6h
enrich: [ec2.instance]
remediate:
  - action: ec2.snapshot
  - action: ec2.isolate
    with: {detach_from_asg: true}
guardrails:
  mode: dry-run
"#;

/// BASE with line `n` (1-based) replaced by `text`.
fn base_with(n: usize, text: &str) -> String {
    BASE.lines()
        .enumerate()
        .map(|(i, l)| if i + 1 == n { text } else { l })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn errors_of(files: &[(&str, &str)]) -> Vec<ValidationError> {
    PlaybookSet::from_sources(
        files
            .iter()
            .map(|(name, text)| (PathBuf::from(name), (*text).to_owned())),
    )
    .expect_err("the set is invalid")
}

/// The only error for a single file `p.yaml` holding `text`.
fn only_error(text: &str) -> ValidationError {
    let mut errors = errors_of(&[("p.yaml", text)]);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.remove(0)
}

#[track_caller]
fn assert_error(text: &str, line: usize, starts_with: &str) {
    let e = only_error(text);
    assert_eq!(e.file, Path::new("p.yaml"));
    assert_eq!(e.line, Some(line), "{e}");
    assert!(
        e.message.starts_with(starts_with),
        "expected `{starts_with}…`, got `{}`",
        e.message
    );
}

#[test]
fn the_base_playbook_of_these_tests_is_valid() {
    let set =
        PlaybookSet::from_sources([(PathBuf::from("p.yaml"), BASE.to_owned())]).expect("valid");
    assert_eq!(set.len(), 1);
}

#[test]
fn yaml_syntax_errors_carry_their_line() {
    assert_error(
        &base_with(4, "  sources: [guardduty]]"),
        4,
        "did not find expected key, while parsing a block mapping",
    );
    assert_error(
        &base_with(5, "\tfinding_types: [\"Backdoor:EC2/*\"]"),
        5,
        "found character that cannot start any token",
    );
}

#[test]
fn unknown_fields_are_reported_at_the_key() {
    assert_error(
        &base_with(15, "  mod: dry-run"),
        15,
        "guardrails: unknown field `mod`, expected one of `mode`",
    );
    assert_error(&base_with(1, "nme: base"), 1, "unknown field `nme`");
}

#[test]
fn wrong_types_are_reported_at_the_value() {
    assert_error(
        &base_with(2, "priority: high"),
        2,
        "priority: invalid type: string \"high\", expected u32",
    );
    assert_error(
        &base_with(15, "  mode: yolo"),
        15,
        "guardrails.mode: unknown variant `yolo`, expected one of `auto`, `approve`, `dry-run`",
    );
}

#[test]
fn unknown_actions_are_reported_at_the_step() {
    assert_error(
        &base_with(11, "  - action: ec2.nuke"),
        11,
        "remediate[0].action: unknown action `ec2.nuke` (known: ec2.snapshot,",
    );
}

#[test]
fn bad_action_parameters_are_reported_at_the_parameter() {
    assert_error(
        &base_with(13, "    with: {detach_from_asg: true, quarantine: true}"),
        13,
        "remediate[1].with: unknown parameter `quarantine` for ec2.isolate (accepted: detach_from_asg, protect)",
    );
    assert_error(
        &base_with(13, "    with: {detach_from_asg: maybe}"),
        13,
        "remediate[1].with.detach_from_asg: invalid type: string \"maybe\", expected a boolean",
    );
    assert_error(
        &base_with(11, "  - action: ec2.tag"),
        11,
        "remediate[0]: ec2.tag needs parameter `tags`",
    );
}

#[test]
fn unknown_enrichers_are_reported_at_the_list() {
    assert_error(
        &base_with(9, "enrich: [ec2.instance, ec2.instances]"),
        9,
        "enrich[1]: unknown enricher `ec2.instances` (known: cloudwatch.alarm,",
    );
}

#[test]
fn bad_globs_are_reported_at_the_pattern() {
    let text = base_with(
        5,
        "  finding_types:\n    - \"Backdoor:EC2/*\"\n    - \"Trojan:EC2/[*\"",
    );
    assert_error(
        &text,
        7,
        "match.finding_types[1]: invalid glob `Trojan:EC2/[*`: unclosed character class",
    );
}

#[test]
fn bad_regexes_are_reported_at_the_pattern() {
    let text = base_with(4, "  sources: [cloudwatch_alarm]");
    let text = text.replace(
        "  finding_types: [\"Backdoor:EC2/*\"]",
        "  alarm_names: [\"checkout-(\"]",
    );
    assert_error(
        &text,
        5,
        "match.alarm_names[0]: invalid regex `checkout-(`: unclosed group",
    );
}

#[test]
fn bad_durations_are_reported_at_the_value() {
    assert_error(
        &base_with(8, "  window: 6 hours"),
        8,
        "dedupe.window: invalid duration `6 hours`: unknown unit",
    );
    assert_error(
        &base_with(8, "  window: 21600"),
        8,
        "dedupe.window: invalid duration `21600`: no unit",
    );
}

#[test]
fn bad_template_variables_are_reported_at_the_template() {
    assert_error(
        &base_with(7, "  key: \"{source}:{resource_id}\""),
        7,
        "dedupe.key: unknown template variable `{resource_id}` (known: {source},",
    );
    assert_error(
        &base_with(7, "  key: \"{resource.instance}\""),
        7,
        "dedupe.key: unknown resource kind `instance`",
    );
}

#[test]
fn contradictory_match_blocks_are_reported_at_the_block() {
    let text = base_with(4, "  sources: [security_hub]");
    assert_error(
        &text,
        4,
        "match: this match block can never match: `sources` is [security_hub] and `finding_types` applies only to guardduty",
    );
}

#[test]
fn a_duplicate_priority_names_the_second_file_and_its_priority_line() {
    let other = BASE.replace("name: base", "# another\nname: other");
    let errors = errors_of(&[("b.yaml", &other), ("a.yaml", BASE)]);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].file, Path::new("b.yaml"));
    assert_eq!(errors[0].line, Some(3));
    assert_eq!(
        errors[0].message,
        "duplicate priority 100: playbook `base` (a.yaml) has it too; priorities must be unique because the lowest matching one wins"
    );
}

#[test]
fn a_duplicate_name_names_the_second_file_and_its_name_line() {
    let again = BASE.replace("priority: 100", "priority: 110");
    let errors = errors_of(&[("a.yaml", BASE), ("b.yaml", &again)]);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].file, Path::new("b.yaml"));
    assert_eq!(errors[0].line, Some(1));
    assert_eq!(
        errors[0].message,
        "duplicate playbook name `base`: a.yaml already uses it"
    );
}

#[test]
fn errors_display_as_file_line_message() {
    let e = only_error(&base_with(2, "priority: high"));
    assert_eq!(
        e.to_string(),
        "p.yaml:2: priority: invalid type: string \"high\", expected u32"
    );
    let e = ValidationError {
        file: PathBuf::from("infra/playbooks"),
        line: None,
        message: "no playbooks here (*.yaml or *.yml)".to_owned(),
    };
    assert_eq!(
        e.to_string(),
        "infra/playbooks: no playbooks here (*.yaml or *.yml)"
    );
    let as_error: &dyn std::error::Error = &e;
    assert!(as_error.source().is_none());
}

/// A scratch directory removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("firebreak-playbooks-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) {
        fs::write(self.0.join(name), text).expect("write temp file");
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn load_dir_reports_every_files_errors_sorted_by_file_then_line() {
    let dir = TempDir::new("all-errors");
    dir.write("10-good.yaml", BASE);
    dir.write(
        "20-bad-type.yml",
        &base_with(2, "priority: high").replace("name: base", "name: bad-type"),
    );
    // Two whole-playbook errors in one file: both reported, in line order.
    dir.write(
        "30-two-errors.yaml",
        "name: two\npriority: 300\nmatch: {}\nremediate: [{action: ec2.stop}]\nclose:\n  auto_resolve_after: 1d\n",
    );
    dir.write(
        "40-same-priority.yaml",
        &BASE.replace("name: base", "name: same-priority"),
    );
    dir.write("notes.txt", "not a playbook");
    dir.write(".50-hidden.yaml", "editor leftovers: [");
    fs::create_dir(dir.0.join("60-dir.yaml")).expect("subdirectory");

    let errors = PlaybookSet::load_dir(&dir.0).expect_err("invalid set");
    let got: Vec<(String, Option<usize>)> = errors
        .iter()
        .map(|e| {
            let file = e
                .file
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            (file, e.line)
        })
        .collect();
    assert_eq!(
        got,
        [
            ("20-bad-type.yml".to_owned(), Some(2)),
            ("30-two-errors.yaml".to_owned(), Some(3)),
            ("30-two-errors.yaml".to_owned(), Some(6)),
            ("40-same-priority.yaml".to_owned(), Some(2)),
        ],
        "{errors:#?}"
    );
    assert!(
        errors[0].file.starts_with(&dir.0),
        "errors name the file's full path"
    );
}

#[test]
fn load_dir_loads_yaml_and_yml_files_and_ignores_the_rest() {
    let dir = TempDir::new("mixed");
    dir.write("a.yaml", BASE);
    dir.write(
        "b.yml",
        &BASE
            .replace("name: base", "name: other")
            .replace("priority: 100", "priority: 5"),
    );
    dir.write("README.md", "# playbooks");
    let set = PlaybookSet::load_dir(&dir.0).expect("valid");
    let names: Vec<&str> = set.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["other", "base"], "ordered by priority");
}

#[test]
fn load_dir_refuses_a_missing_or_empty_directory() {
    let missing = std::env::temp_dir().join("firebreak-playbooks-does-not-exist");
    let errors = PlaybookSet::load_dir(&missing).expect_err("missing");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].file, missing);
    assert_eq!(errors[0].line, None);
    assert!(
        errors[0]
            .message
            .starts_with("cannot read the playbook directory"),
        "{}",
        errors[0]
    );

    let empty = TempDir::new("empty");
    let errors = PlaybookSet::load_dir(&empty.0).expect_err("empty");
    assert_eq!(errors[0].message, "no playbooks here (*.yaml or *.yml)");
}

#[test]
fn from_sources_of_nothing_is_an_empty_set() {
    let set = PlaybookSet::from_sources(Vec::new()).expect("valid");
    assert!(set.is_empty());
    assert_eq!(set.len(), 0);
    assert!(set.first_match(&alarm("x", "metric", vec![])).is_none());
}

// ---------------------------------------------------------------------------------------------
// Speed: triage matches every signal against the whole set.

fn mixed_signals() -> Vec<Signal> {
    vec![
        guardduty(
            "UnauthorizedAccess:EC2/SSHBruteForce",
            Severity::Low,
            vec![instance()],
        ),
        guardduty(
            "Backdoor:EC2/C&CActivity.B!DNS",
            Severity::High,
            vec![instance()],
        ),
        guardduty(
            "Recon:IAMUser/MaliciousIPCaller.Custom",
            Severity::Medium,
            vec![access_key()],
        ),
        guardduty(
            "Discovery:S3/AnomalousBehavior",
            Severity::Low,
            vec![bucket()],
        ),
        security_hub(
            "security-control/S3.8",
            Some("S3.8"),
            Severity::High,
            vec![bucket()],
        ),
        security_hub(
            GUARDDUTY_GENERATOR,
            None,
            Severity::Medium,
            vec![access_key()],
        ),
        security_hub(
            "security-control/EC2.2",
            Some("EC2.2"),
            Severity::Medium,
            vec![],
        ),
        alarm("checkout-health", "composite", vec![]),
        alarm("web-1-StatusCheckFailed", "metric", vec![instance()]),
        alarm("orders-queue-depth", "metric", vec![]),
    ]
}

#[test]
fn matching_against_the_starter_set_does_not_allocate() {
    let set = starter();
    let signals = mixed_signals();
    // The first match on a thread may fill the regex engines' per-thread caches.
    let warm: usize = signals
        .iter()
        .filter(|s| set.first_match(s).is_some())
        .count();
    let before = allocations();
    let mut hits = 0;
    for _ in 0..100 {
        hits += signals
            .iter()
            .filter(|s| set.first_match(s).is_some())
            .count();
    }
    assert_eq!(allocations() - before, 0, "matching allocated");
    assert_eq!(hits, warm * 100);
}

#[test]
fn matching_keeps_well_ahead_of_the_triage_budget() {
    // Triage must handle 100,000 events/s including parsing; matching gets a small share of
    // that budget, so demand ten times the rate from matching alone. Debug builds are far
    // slower, so there the test only proves the loop runs.
    let set = starter();
    let signals = mixed_signals();
    let rounds = 20_000;
    let start = Instant::now();
    let mut hits = 0usize;
    for _ in 0..rounds {
        for s in &signals {
            hits += usize::from(set.first_match(std::hint::black_box(s)).is_some());
        }
    }
    let per_second = (rounds * signals.len()) as f64 / start.elapsed().as_secs_f64();
    assert!(hits > 0);
    if !cfg!(debug_assertions) {
        assert!(per_second > 1_000_000.0, "{per_second:.0} matches/s");
    }
    eprintln!("matched {per_second:.0} signals/s");
}
