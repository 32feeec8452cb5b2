//! Reading playbook files into a [`PlaybookSet`], and every check that needs more than one field.
//!
//! Line numbers come from two places. Anything wrong inside a field (YAML syntax, an unknown
//! field, a wrong type, an unknown action or enricher, bad parameters, a bad glob, regex,
//! duration or template) is refused while serde_yaml_ng reads that field, and serde_yaml_ng
//! reports the line; see `de.rs`. The checks here run after a whole file (or the whole set) has
//! been read, when no position is left, so they find the line of the key they are about in the
//! text; see `locate.rs`.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::locate;
use super::schema::{CloseDoc, Document};
use super::{Close, CloseOn, Playbook, PlaybookSet, ValidationError};
use crate::signal::Source;

/// Where the starter library lives in the repository; also the directory the embedded files
/// are reported under.
pub(crate) const STARTER_DIR: &str = "infra/playbooks";

/// The starter library, compiled in. A test checks this list against the directory.
pub(crate) const STARTER: &[(&str, &str)] = &[
    (
        "ec2-brute-force.yaml",
        include_str!("../../../infra/playbooks/ec2-brute-force.yaml"),
    ),
    (
        "ec2-compromise.yaml",
        include_str!("../../../infra/playbooks/ec2-compromise.yaml"),
    ),
    (
        "iam-credential-compromise.yaml",
        include_str!("../../../infra/playbooks/iam-credential-compromise.yaml"),
    ),
    (
        "s3-public-access.yaml",
        include_str!("../../../infra/playbooks/s3-public-access.yaml"),
    ),
    (
        "service-down.yaml",
        include_str!("../../../infra/playbooks/service-down.yaml"),
    ),
    (
        "ec2-unhealthy.yaml",
        include_str!("../../../infra/playbooks/ec2-unhealthy.yaml"),
    ),
    (
        "securityhub-critical.yaml",
        include_str!("../../../infra/playbooks/securityhub-critical.yaml"),
    ),
];

pub(crate) fn starter() -> PlaybookSet {
    let sources = STARTER
        .iter()
        .map(|(name, text)| (Path::new(STARTER_DIR).join(name), (*text).to_owned()));
    // The input is compiled in and the starter tests load it, so a failure here is a build
    // defect, never a deploy-time condition.
    build_set(sources.collect()).unwrap_or_else(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!(
            "the embedded starter playbooks are invalid:\n{}",
            lines.join("\n")
        )
    })
}

pub(crate) fn load_dir(dir: &Path) -> Result<PlaybookSet, Vec<ValidationError>> {
    let entries = fs::read_dir(dir).map_err(|e| {
        vec![ValidationError::new(
            dir,
            None,
            format!("cannot read the playbook directory: {e}"),
        )]
    })?;
    let mut errors = Vec::new();
    let mut paths = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => {
                let path = entry.path();
                if is_playbook_file_name(&path) {
                    paths.push(path);
                }
            }
            Err(e) => errors.push(ValidationError::new(
                dir,
                None,
                format!("cannot list the playbook directory: {e}"),
            )),
        }
    }
    paths.sort();

    let mut sources = Vec::new();
    for path in paths {
        // `metadata` follows symlinks, so a linked playbook loads and a dangling link is
        // reported rather than skipped.
        match fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => continue,
            Ok(_) => {}
            Err(e) => {
                errors.push(ValidationError::new(
                    &path,
                    None,
                    format!("cannot read: {e}"),
                ));
                continue;
            }
        }
        match fs::read_to_string(&path) {
            Ok(text) => sources.push((path, text)),
            Err(e) => errors.push(ValidationError::new(
                &path,
                None,
                format!("cannot read: {e}"),
            )),
        }
    }
    if sources.is_empty() && errors.is_empty() {
        // A deploy pointed at the wrong directory must fail loudly, not run with no playbooks.
        return Err(vec![ValidationError::new(
            dir,
            None,
            "no playbooks here (*.yaml or *.yml)",
        )]);
    }
    match build_set(sources) {
        Ok(set) if errors.is_empty() => Ok(set),
        Ok(_) => Err(sorted(errors)),
        Err(more) => {
            errors.extend(more);
            Err(sorted(errors))
        }
    }
}

fn is_playbook_file_name(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

pub(crate) fn build_set(
    mut sources: Vec<(PathBuf, String)>,
) -> Result<PlaybookSet, Vec<ValidationError>> {
    // "The second file" of a duplicate must not depend on the caller's order.
    sources.sort_by(|a, b| a.0.cmp(&b.0));
    let mut errors = Vec::new();
    let mut loaded: Vec<(Playbook, &str)> = Vec::new();
    for (path, text) in &sources {
        match parse(path, text) {
            Ok(playbook) => loaded.push((playbook, text)),
            Err(e) => errors.extend(e),
        }
    }

    let mut names: HashMap<&str, &Path> = HashMap::new();
    let mut priorities: HashMap<u32, (&str, &Path)> = HashMap::new();
    for (playbook, text) in &loaded {
        if let Some(first) = names.get(playbook.name.as_str()) {
            errors.push(ValidationError::new(
                &playbook.file,
                locate::locate(text, &["name"]),
                format!(
                    "duplicate playbook name `{}`: {} already uses it",
                    playbook.name,
                    first.display()
                ),
            ));
            continue;
        }
        names.insert(&playbook.name, &playbook.file);
        if let Some((other, file)) = priorities.get(&playbook.priority) {
            errors.push(ValidationError::new(
                &playbook.file,
                locate::locate(text, &["priority"]),
                format!(
                    "duplicate priority {}: playbook `{other}` ({}) has it too; priorities must \
                     be unique because the lowest matching one wins",
                    playbook.priority,
                    file.display()
                ),
            ));
        } else {
            priorities.insert(playbook.priority, (&playbook.name, &playbook.file));
        }
    }
    if !errors.is_empty() {
        return Err(sorted(errors));
    }

    let mut playbooks: Vec<Playbook> = loaded.into_iter().map(|(p, _)| p).collect();
    playbooks.sort_by_key(|p| p.priority);
    Ok(PlaybookSet { playbooks })
}

fn sorted(mut errors: Vec<ValidationError>) -> Vec<ValidationError> {
    errors.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    errors
}

/// One file into one playbook.
pub(crate) fn parse(file: &Path, text: &str) -> Result<Playbook, Vec<ValidationError>> {
    // Some Windows editors start UTF-8 files with a byte-order mark; it is not content.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if locate::is_blank(text) {
        return Err(vec![ValidationError::new(
            file,
            None,
            "empty file: a playbook needs at least `name`, `priority` and `match`",
        )]);
    }
    let doc: Document =
        serde_yaml_ng::from_str(text).map_err(|e| vec![yaml_error(file, text, &e)])?;
    from_document(doc, file, text)
}

/// serde_yaml_ng's error as a [`ValidationError`]: its location becomes the line, and the
/// " at line L column C" it appends to its message is dropped, since the line leads the report.
fn yaml_error(file: &Path, text: &str, error: &serde_yaml_ng::Error) -> ValidationError {
    let mut message = error.to_string();
    let mut line = error.location().map(|l| l.line());
    if let Some(at) = error.location() {
        let suffix = format!(" at line {} column {}", at.line(), at.column());
        message = message.replacen(&suffix, "", 1);
    }
    if message.contains("more than one document") {
        line = locate::second_document(text);
        message = "a playbook file holds one YAML document; move each other document (after \
                   `---`) into a file of its own"
            .to_owned();
    } else if let Some(key) = message
        .strip_prefix("duplicate field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        // Reported at the start of the top-level mapping; the repeat is the useful line.
        line = locate::nth_top_level_key(text, key, 2).or(line);
    }
    ValidationError::new(file, line, message)
}

/// The checks that need the whole playbook, then the [`Playbook`] itself.
fn from_document(doc: Document, file: &Path, text: &str) -> Result<Playbook, Vec<ValidationError>> {
    let mut errors = Vec::new();
    let mut error = |path: &[&str], message: String| {
        errors.push(ValidationError::new(
            file,
            locate::locate(text, path),
            message,
        ));
    };

    let mutating = doc.remediate.iter().any(|s| s.action.mutating);
    if doc.matcher.is_catch_all() && mutating {
        error(
            &["match"],
            "a match block with no conditions takes every signal, so this playbook may not \
             have steps that change resources; narrow `match` or keep to notify and escalate"
                .to_owned(),
        );
    }

    let close = resolve_close(&doc, mutating, &mut error);

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Playbook {
        name: doc.name.0,
        description: doc.description,
        priority: doc.priority,
        matcher: doc.matcher,
        severity: doc.severity,
        insufficient_data: doc.insufficient_data,
        dedupe: doc.dedupe,
        enrich: doc.enrich.0,
        remediate: doc.remediate,
        guardrails: doc.guardrails,
        notify: doc.notify,
        close,
        incident_manager: doc.incident_manager,
        file: file.to_owned(),
    })
}

/// `close.on` with its default applied, and the combinations that would leave an incident open
/// for ever refused.
fn resolve_close(doc: &Document, mutating: bool, error: &mut impl FnMut(&[&str], String)) -> Close {
    let CloseDoc {
        on,
        auto_resolve_after,
    } = doc.close;
    let sources: Vec<Source> = doc.matcher.sources().collect();
    let default = if sources == [Source::CloudwatchAlarm] {
        CloseOn::AlarmOk
    } else {
        CloseOn::Manual
    };
    let close = Close {
        on: on.unwrap_or(default),
        auto_resolve_after,
    };
    let on_path: &[&str] = &["close", "on"];

    if close.on == CloseOn::Manual && auto_resolve_after.is_some() {
        let why = if on.is_some() {
            "close.on is manual"
        } else {
            "close.on defaults to manual for playbooks that match findings"
        };
        error(
            &["close", "auto_resolve_after"],
            format!(
                "close.auto_resolve_after does not apply because {why}: only a person closes a \
                 manual incident; set close.on to alarm_ok or verified_remediation, or remove it"
            ),
        );
    }
    if close.on == CloseOn::AlarmOk
        && auto_resolve_after.is_none()
        && sources == [Source::Guardduty]
    {
        error(
            on_path,
            "close.on alarm_ok would never close: GuardDuty findings send no all-clear; add \
             close.auto_resolve_after, or use verified_remediation or manual"
                .to_owned(),
        );
    }
    if close.on == CloseOn::VerifiedRemediation && !mutating {
        error(
            on_path,
            "close.on verified_remediation needs a remediate step that changes a resource; \
             this playbook has none to verify"
                .to_owned(),
        );
    }
    close
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ValidationError {
        let mut errors = parse(Path::new("p.yaml"), text).expect_err("invalid playbook");
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors.remove(0)
    }

    const HEAD: &str = "name: p\npriority: 1\nmatch: {}\n";

    #[test]
    fn serde_yaml_ng_reports_the_line_of_a_custom_error_from_a_newtype() {
        let e = err("name: p\npriority: 1\nmatch:\n  finding_types: ['a', '[']\n");
        assert_eq!(e.line, Some(4));
        assert_eq!(
            e.message,
            "match.finding_types[1]: invalid glob `[`: unclosed character class; missing ']'"
        );
    }

    #[test]
    fn serde_yaml_ng_reports_the_line_of_an_unknown_field_at_the_key() {
        let e = err("# comment\nname: p\npriority: 1\nmatch: {}\nnotfy:\n  route: x\n");
        assert_eq!(e.line, Some(5));
        assert!(
            e.message
                .starts_with("unknown field `notfy`, expected one of"),
            "{}",
            e.message
        );
        let e = err(&format!("{HEAD}guardrails:\n  mode: auto\n  rate: 1\n"));
        assert_eq!(e.line, Some(6));
        assert!(
            e.message.starts_with("guardrails: unknown field `rate`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn serde_yaml_ng_reports_a_mapping_level_check_at_its_first_key() {
        let e = err(&format!(
            "{HEAD}remediate:\n  - action: notify\n  - when: {{}}\n    action: notify\n"
        ));
        assert_eq!(e.line, Some(6));
        assert!(
            e.message.starts_with("remediate[1].when: `when` needs"),
            "{}",
            e.message
        );
    }

    #[test]
    fn reports_a_bad_parameter_at_its_own_line() {
        let e = err(&format!(
            "{HEAD}remediate:\n  - action: ec2.isolate\n    with:\n      protect: true\n      x: 1\n"
        ));
        assert_eq!(e.line, Some(8));
        assert_eq!(
            e.message,
            "remediate[0].with: unknown parameter `x` for ec2.isolate (accepted: detach_from_asg, protect)"
        );
        let e = err(&format!(
            "{HEAD}remediate:\n  - action: ec2.isolate\n    with: {{protect: 1}}\n"
        ));
        assert_eq!(e.line, Some(6));
        assert!(
            e.message.starts_with(
                "remediate[0].with.protect: invalid type: integer `1`, expected a boolean"
            ),
            "{}",
            e.message
        );
    }

    #[test]
    fn reports_parameters_written_before_the_action_at_the_step() {
        let e = err(&format!(
            "{HEAD}remediate:\n  - with: {{x: 1}}\n    action: ec2.stop\n"
        ));
        assert_eq!(e.line, Some(5));
        assert_eq!(
            e.message,
            "remediate[0]: with: unknown parameter `x`: ec2.stop takes no parameters"
        );
    }

    #[test]
    fn refuses_an_unquoted_decimal_ssm_parameter_whose_text_yaml_would_change() {
        let e = err(&format!(
            "{HEAD}remediate:\n  - action: ssm.run_command\n    with:\n      document: D\n      parameters:\n        Version: 1.10\n"
        ));
        assert_eq!(e.line, Some(9));
        assert!(e.message.contains("in quotes"), "{}", e.message);
    }

    #[test]
    fn reports_a_missing_required_parameter_at_the_step() {
        let e = err(&format!("{HEAD}remediate:\n  - action: ec2.tag\n"));
        assert_eq!(e.line, Some(5));
        assert!(
            e.message.contains("ec2.tag needs parameter `tags`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn reports_a_repeated_top_level_key_at_the_repeat() {
        let e = err("name: p\npriority: 1\nmatch: {}\npriority: 2\n");
        assert_eq!(e.line, Some(4));
        assert_eq!(e.message, "duplicate field `priority`");
    }

    #[test]
    fn refuses_several_documents_in_one_file() {
        let e = err("name: p\npriority: 1\nmatch: {}\n---\nname: q\n");
        assert_eq!(e.line, Some(4));
        assert!(
            e.message
                .starts_with("a playbook file holds one YAML document")
        );
    }

    #[test]
    fn refuses_an_empty_file() {
        let e = err("# nothing yet\n");
        assert_eq!(e.line, None);
        assert!(e.message.starts_with("empty file"));
    }

    #[test]
    fn ignores_a_byte_order_mark() {
        assert!(parse(Path::new("p"), &format!("\u{feff}{HEAD}")).is_ok());
    }

    #[test]
    fn refuses_a_file_that_is_not_a_mapping() {
        let e = err("- name: p\n");
        assert_eq!(e.line, Some(1));
        assert_eq!(
            e.message,
            "invalid type: sequence, expected a playbook: a mapping with at least `name`, \
             `priority` and `match`"
        );
    }

    #[test]
    fn reports_a_missing_required_field() {
        let e = err("# c\nname: p\nmatch: {}\n");
        assert_eq!(e.line, Some(2));
        assert_eq!(e.message, "missing field `priority`");
    }

    #[test]
    fn close_defaults_to_alarm_ok_for_alarm_only_playbooks_and_manual_otherwise() {
        let p = parse(
            Path::new("p"),
            "name: p\npriority: 1\nmatch: {alarm_kinds: [metric]}\n",
        )
        .expect("valid");
        assert_eq!(p.close.on, CloseOn::AlarmOk);
        let p = parse(
            Path::new("p"),
            "name: p\npriority: 1\nmatch: [{alarm_kinds: [metric]}, {control_ids: [x]}]\n",
        )
        .expect("valid");
        assert_eq!(p.close.on, CloseOn::Manual);
    }

    #[test]
    fn refuses_auto_resolve_on_a_manual_close() {
        let e = err(
            "name: p\npriority: 1\nmatch: {control_ids: [x]}\nclose:\n  auto_resolve_after: 1d\n",
        );
        assert_eq!(e.line, Some(5));
        assert!(e.message.contains("defaults to manual"), "{}", e.message);
    }

    #[test]
    fn refuses_alarm_ok_on_guardduty_only_playbooks_without_auto_resolve() {
        let e = err("name: p\npriority: 1\nmatch: {finding_types: [x]}\nclose:\n  on: alarm_ok\n");
        assert_eq!(e.line, Some(5));
        assert!(
            e.message.contains("GuardDuty findings send no all-clear"),
            "{}",
            e.message
        );
        assert!(
            parse(
                Path::new("p"),
                "name: p\npriority: 1\nmatch: {finding_types: [x]}\nclose: {on: alarm_ok, auto_resolve_after: 1d}\n"
            )
            .is_ok()
        );
    }

    #[test]
    fn refuses_verified_remediation_without_a_mutating_step() {
        let e = err(&format!(
            "{HEAD}remediate: [{{action: notify}}]\nclose: {{on: verified_remediation}}\n"
        ));
        assert_eq!(e.line, Some(5));
        assert!(
            e.message.contains("needs a remediate step that changes"),
            "{}",
            e.message
        );
    }

    #[test]
    fn refuses_mutating_steps_on_a_catch_all() {
        let e = err(&format!("{HEAD}remediate: [{{action: ec2.stop}}]\n"));
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("takes every signal"), "{}", e.message);
    }

    #[test]
    fn applies_the_documented_defaults() {
        let p = parse(Path::new("p"), HEAD).expect("valid");
        assert_eq!(p.insufficient_data, crate::signal::Action::Ignore);
        assert_eq!(p.dedupe.window.to_string(), "1d");
        assert!(p.dedupe.key.is_none());
        assert_eq!(p.guardrails.mode, super::super::Mode::Approve);
        assert_eq!(
            p.guardrails.protected_tag.to_string(),
            "firebreak:protected"
        );
        assert_eq!(p.guardrails.rate_limit.max.get(), 10);
        assert_eq!(p.guardrails.rate_limit.per.to_string(), "1h");
        assert_eq!(p.notify.route, "default");
        assert!(p.notify.chat);
        assert_eq!(p.notify.escalation.after, None);
        assert_eq!(p.notify.escalation.on, super::super::EscalationTrigger::ALL);
        assert_eq!(p.close.on, CloseOn::Manual);
        assert!(p.enrich.is_empty() && p.remediate.is_empty());
    }

    #[test]
    fn an_escalation_section_without_triggers_escalates_on_all_of_them() {
        let p = parse(
            Path::new("p"),
            &format!("{HEAD}notify:\n  escalation: {{after: 15m}}\n"),
        )
        .expect("valid");
        let esc = p.notify.escalation;
        assert_eq!(esc.after.map(|d| d.as_secs()), Some(900));
        assert_eq!(esc.on, super::super::EscalationTrigger::ALL);
    }

    #[test]
    fn the_embedded_starter_list_is_the_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(STARTER_DIR);
        let mut on_disk: Vec<String> = fs::read_dir(&dir)
            .expect("infra/playbooks is readable")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_playbook_file_name(p))
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = STARTER.iter().map(|(n, _)| (*n).to_owned()).collect();
        embedded.sort();
        assert_eq!(
            embedded, on_disk,
            "add every file in infra/playbooks to STARTER in shared/src/playbook/load.rs"
        );
        for (name, text) in STARTER {
            let disk = fs::read_to_string(dir.join(name)).expect("starter file is readable");
            assert_eq!(*text, disk, "{name}");
        }
    }

    #[test]
    fn the_starter_set_loads() {
        let set = starter();
        assert_eq!(set.len(), STARTER.len());
    }
}
