//! The enrich stage: which context each of the playbook's enrichers gathers, and on what.
//!
//! [`plan`] maps every enricher the playbook names to the signal's resources it applies to:
//! `ec2.instance` to instance ids, `cloudwatch.*` to the alarm, `cloudtrail.recent_changes` and
//! `incidents.related` to every resource. An enricher with nothing to look at is recorded as
//! skipped rather than dropped, so the incident record shows it was considered.

use firebreak_shared::signal::{ResourceKind, Signal};
use firebreak_shared::triage::{Decision, Outcome};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Task {
    pub enricher: &'static str,
    pub targets: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

pub fn plan(decision: &Decision<'_>) -> Vec<Task> {
    let Some(playbook) = decision
        .playbook
        .filter(|_| decision.outcome == Outcome::Incident)
    else {
        return Vec::new();
    };
    playbook
        .enrich
        .iter()
        .map(|spec| {
            let targets = targets(spec.name, decision.signal);
            let skipped = targets
                .is_empty()
                .then(|| "the signal names nothing this enricher looks at".to_owned());
            Task {
                enricher: spec.name,
                targets,
                skipped,
            }
        })
        .collect()
}

fn targets(enricher: &str, signal: &Signal) -> Vec<String> {
    let want: &[ResourceKind] = match enricher {
        "ec2.instance" => &[ResourceKind::Ec2Instance],
        "cloudwatch.alarm" | "cloudwatch.alarm_history" => &[ResourceKind::Alarm],
        _ => &[],
    };
    signal
        .resources
        .iter()
        .filter(|r| want.is_empty() || want.contains(&r.kind))
        .map(|r| r.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_shared::playbook::PlaybookSet;
    use firebreak_shared::triage::decide;

    fn one_signal(event: &[u8]) -> Signal {
        let received = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        firebreak_shared::signal::parse(event, received)
            .expect("fixture parses")
            .remove(0)
    }

    #[test]
    fn instance_context_is_gathered_for_the_instance_the_finding_names() {
        let playbooks = PlaybookSet::starter();
        let s = one_signal(include_bytes!(
            "../../../tests/fixtures/events/guardduty/waf-acl-partial-envelope-ec2-ssh-bruteforce.json"
        ));
        let tasks = plan(&decide(&s, &playbooks));
        let instance = tasks
            .iter()
            .find(|t| t.enricher == "ec2.instance")
            .expect("ec2-brute-force enriches the instance");
        assert_eq!(instance.targets, vec!["i-99999999".to_owned()]);
        assert_eq!(instance.skipped, None);
    }

    #[test]
    fn an_enricher_with_nothing_to_look_at_is_recorded_as_skipped() {
        let playbooks = PlaybookSet::from_sources([(
            std::path::PathBuf::from("t.yaml"),
            "name: t\npriority: 1\nmatch: {sources: [cloudwatch_alarm]}\nenrich: [ec2.instance, cloudwatch.alarm]\n".to_owned(),
        )])
        .expect("valid");
        let s = one_signal(include_bytes!(
            "../../../tests/fixtures/events/cloudwatch-alarm/docs-composite-alarm-with-suppressor-ok-to-alarm.json"
        ));
        let tasks = plan(&decide(&s, &playbooks));
        assert_eq!(tasks.len(), 2);
        assert!(tasks[0].skipped.is_some(), "{tasks:?}");
        assert_eq!(tasks[1].targets.len(), 1);
        assert_eq!(tasks[1].skipped, None);
    }
}
