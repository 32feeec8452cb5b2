//! `firebreak validate` as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn firebreak(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("firebreak runs")
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("firebreak-validate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn starter_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/playbooks")
}

#[test]
fn the_starter_library_is_valid() {
    let out = firebreak(&["validate", starter_dir().to_str().expect("utf-8")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for name in [
        "ec2-compromise",
        "ec2-brute-force",
        "iam-credential-compromise",
        "service-down",
    ] {
        assert!(stdout.contains(name), "{name} missing from: {stdout}");
    }
}

#[test]
fn errors_are_reported_as_file_and_line_and_exit_2() {
    let dir = scratch("errors");
    let good = std::fs::read_to_string(starter_dir().join("ec2-compromise.yaml")).expect("starter");
    // Line 5 of the broken file names an action that does not exist.
    std::fs::write(
        dir.join("broken.yaml"),
        "name: broken\npriority: 7\nmatch: {sources: [guardduty]}\nremediate:\n  - action: ec2.nuke\n",
    )
    .expect("write");
    std::fs::write(dir.join("good.yaml"), good).expect("write");
    let out = firebreak(&["validate", dir.to_str().expect("utf-8")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.contains("broken.yaml:5"), "{stderr}");
    assert!(first.contains("ec2.nuke"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
