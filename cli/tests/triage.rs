//! `firebreak triage` as a user runs it: the real binary over every real event fixture.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn firebreak(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the firebreak binary starts");
    if let Some(mut pipe) = child.stdin.take() {
        // firebreak stops reading past EventBridge's size limit, so a broken pipe on an
        // oversized input is expected; the exit status says what happened.
        let _ = pipe.write_all(stdin.unwrap_or_default());
    }
    child.wait_with_output().expect("firebreak finishes")
}

/// Exit 0: every input was understood. Otherwise the failure shows what firebreak said.
fn assert_understood(out: &Output, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn event_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let root = fixtures_dir().join("events");
    for family in std::fs::read_dir(&root).expect("tests/fixtures/events exists") {
        let family = family.expect("readable fixture family").path();
        for file in std::fs::read_dir(&family).expect("readable fixture family") {
            let path = file.expect("readable fixture").path();
            if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn relative(path: &Path) -> String {
    path.strip_prefix(fixtures_dir().join("events"))
        .unwrap_or(path)
        .display()
        .to_string()
}

fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {e}: {l}")))
        .collect()
}

/// A playbook directory whose one playbook matches nothing: triage then shows the parser's
/// verdict under the default policy.
fn no_playbooks() -> tempdir::Dir {
    let dir = tempdir::Dir::new("no-playbooks");
    std::fs::write(
        dir.0.join("none.yaml"),
        "name: matches-nothing\npriority: 1\nmatch:\n  sources: [cloudwatch_alarm]\n  alarm_names: [\"^$\"]\n",
    )
    .expect("write playbook");
    dir
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(name: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "firebreak-cli-test-{name}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            std::fs::create_dir_all(&path).expect("temp dir");
            Dir(path)
        }
        pub fn path(&self) -> &str {
            self.0.to_str().expect("utf-8 temp path")
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn every_fixture_gives_the_expected_signals_or_a_one_line_refusal() {
    let expected: Value = serde_json::from_slice(
        &std::fs::read(fixtures_dir().join("expected.json")).expect("expected.json"),
    )
    .expect("expected.json is JSON");
    let empty = no_playbooks();
    let mut failures = Vec::new();
    let files = event_files();
    assert!(files.len() >= 60, "only {} fixtures found", files.len());

    for file in &files {
        let name = relative(file);
        let want = &expected[&name];
        let out = firebreak(
            &[
                "triage",
                "--json",
                "--playbooks",
                empty.path(),
                file.to_str().expect("utf-8"),
            ],
            None,
        );
        let code = out.status.code();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if let Some(reason) = want.get("refused").and_then(Value::as_str) {
            if code != Some(2) || !stderr.contains(reason) || stderr.trim().lines().count() != 1 {
                failures.push(format!(
                    "{name}: want exit 2 and one line containing {reason:?}, got {code:?}: {stderr}"
                ));
            }
            continue;
        }
        let Some(want_signals) = want.get("signals").and_then(Value::as_array) else {
            failures.push(format!("{name}: not in expected.json"));
            continue;
        };
        if code != Some(0) {
            failures.push(format!("{name}: exit {code:?}: {stderr}"));
            continue;
        }
        let got = json_lines(&out.stdout);
        if got.len() != want_signals.len() {
            failures.push(format!(
                "{name}: {} signals, want {}",
                got.len(),
                want_signals.len()
            ));
            continue;
        }
        for (i, (g, w)) in got.iter().zip(want_signals).enumerate() {
            for field in ["source", "action", "severity", "dedupe_key", "resources"] {
                if g[field] != w[field] {
                    failures.push(format!(
                        "{name}[{i}].{field}: got {}, want {}",
                        g[field], w[field]
                    ));
                }
            }
            for field in ["title", "playbook"] {
                if g.get(field).is_none() {
                    failures.push(format!("{name}[{i}]: no `{field}` field"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_starter_library_routes_each_fixture_family_to_its_playbook() {
    let cases = [
        (
            "guardduty/custodian-eventbridge-backdoor-ec2-cc-activity-b-dns.json",
            None,
        ),
        (
            "guardduty/waf-acl-partial-envelope-ec2-ssh-bruteforce.json",
            Some("ec2-brute-force"),
        ),
        (
            "guardduty/custodian-eventbridge-iamuser-tor-ipcaller.json",
            Some("iam-credential-compromise"),
        ),
        (
            "cloudwatch-alarm/docs-composite-alarm-with-suppressor-ok-to-alarm.json",
            Some("service-down"),
        ),
        (
            "securityhub/asr-custom-action-cis-2.3-s3-bucket.json",
            Some("s3-public-access"),
        ),
        (
            "securityhub/asr-custom-action-cis-4.1-security-group.json",
            None,
        ),
    ];
    for (file, want) in cases {
        let path = fixtures_dir().join("events").join(file);
        let out = firebreak(
            &[
                "triage",
                "--json",
                "--playbooks",
                "../infra/playbooks",
                path.to_str().expect("utf-8"),
            ],
            None,
        );
        assert_understood(&out, file);
        let lines = json_lines(&out.stdout);
        assert_eq!(lines.len(), 1, "{file}");
        assert_eq!(lines[0]["playbook"].as_str(), want, "{file}: {}", lines[0]);
    }
}

#[test]
fn triage_reads_standard_input() {
    let event = std::fs::read(
        fixtures_dir().join("events/cloudwatch-alarm/docs-single-metric-alarm-ok-to-alarm.json"),
    )
    .expect("fixture");
    let out = firebreak(&["triage", "--json", "-"], Some(&event));
    assert_understood(&out, "");
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["source"], "cloudwatch_alarm");
    assert_eq!(lines[0]["action"], "open");
}

#[test]
fn input_that_is_not_understood_exits_2_with_one_line_on_stderr() {
    let deep = "[".repeat(100_000);
    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(300 * 1024));
    let cases: [(&str, &[u8]); 7] = [
        ("empty", b""),
        ("not json", b"hello"),
        ("truncated", b"{\"source\": \"aws.guardduty\", \"detail-type\": \"GuardDuty Fi"),
        ("wrong types", b"{\"source\": \"aws.guardduty\", \"detail-type\": \"GuardDuty Finding\", \"detail\": 7}"),
        ("unknown source", b"{\"source\": \"aws.ec2\", \"detail-type\": \"EC2 Instance State-change Notification\", \"detail\": {}}"),
        ("deeply nested", deep.as_bytes()),
        ("over 256 KB", huge.as_bytes()),
    ];
    for (what, input) in cases {
        let out = firebreak(&["triage", "--json", "-"], Some(input));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{what}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{what}: printed {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn an_ignored_signal_is_understood_and_exits_0() {
    let path =
        fixtures_dir().join("events/cloudwatch-alarm/docs-config-change-update-metric-alarm.json");
    let out = firebreak(&["triage", "--json", path.to_str().expect("utf-8")], None);
    assert_understood(&out, "");
    let lines = json_lines(&out.stdout);
    assert_eq!(lines[0]["action"], "ignore");
}

#[test]
fn a_run_over_many_files_ends_with_a_tally_of_outcomes() {
    let events = fixtures_dir().join("events");
    let files = [
        events.join("guardduty/waf-acl-partial-envelope-ec2-ssh-bruteforce.json"),
        events.join("securityhub/asr-custom-action-afsbp-iam.6-two-findings.json"),
        events.join("health/health-tools-sms-notifier-test-event.json"),
    ];
    let mut args = vec!["triage", "--playbooks", "../infra/playbooks"];
    args.extend(files.iter().map(|f| f.to_str().expect("utf-8")));
    let out = firebreak(&args, None);
    assert_eq!(out.status.code(), Some(2), "the health event is refused");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    assert_eq!(
        last, "3 events, 3 signals: 2 incident, 0 notify-only, 0 resolve, 1 ignored; 1 refused",
        "{stdout}"
    );
}
