//! The remediate stage: a playbook's steps, resolved against a signal, behind the guardrails.
//!
//! [`plan`] answers, without touching AWS, what each step would act on and whether it may:
//! a step whose targets carry the protected tag is skipped (the incident escalates instead),
//! a step with nothing of its kind to act on is skipped, `approve` holds every mutating step
//! for an approval, `dry-run` (per playbook, or the global switch) records without acting.
//! Executing the plan against EC2 and SSM builds on this same plan, so a dry run and a live
//! run can never disagree about what would be touched.

use firebreak_shared::catalog::ActionSpec;
use firebreak_shared::playbook::Mode;
use firebreak_shared::signal::Signal;
use firebreak_shared::triage::{Decision, Outcome};
use serde::Serialize;

impl StepOutcome {
    /// One line for people: `planned`, `dry_run`, `needs_approval`, `skipped (why)`.
    pub fn describe(&self) -> String {
        match self {
            StepOutcome::Planned => "planned".to_owned(),
            StepOutcome::DryRun => "dry_run".to_owned(),
            StepOutcome::NeedsApproval => "needs_approval".to_owned(),
            StepOutcome::Skipped(why) => format!("skipped ({why})"),
        }
    }
}

/// What will become of one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "reason")]
pub enum StepOutcome {
    /// Runs when the stage runs (mode `auto`).
    Planned,
    /// Recorded, never executed: the playbook or the global switch says dry-run.
    DryRun,
    /// Waits for `firebreak approve` (mode `approve`).
    NeedsApproval,
    /// Not run, for the reason given.
    Skipped(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    pub action: &'static str,
    pub mutating: bool,
    pub targets: Vec<String>,
    #[serde(flatten)]
    pub outcome: StepOutcome,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub mode: Mode,
    pub steps: Vec<PlannedStep>,
    /// Set when a guardrail stopped a step: the incident must go to a person.
    pub escalate: Option<String>,
}

/// Resolves the decision's playbook steps. `global_dry_run` is the deployed kill switch; it
/// overrides every playbook.
pub fn plan(decision: &Decision<'_>, global_dry_run: bool) -> Plan {
    let Some(playbook) = decision
        .playbook
        .filter(|_| decision.outcome == Outcome::Incident)
    else {
        return Plan {
            mode: Mode::DryRun,
            steps: Vec::new(),
            escalate: None,
        };
    };
    let mode = if global_dry_run {
        Mode::DryRun
    } else {
        playbook.guardrails.mode
    };
    let signal = decision.signal;
    let mut escalate = None;
    let steps = playbook
        .steps_for(signal)
        .map(|step| {
            let spec = step.action;
            let targets = targets(spec, signal);
            let outcome = if !spec.targets.is_empty() && targets.is_empty() {
                StepOutcome::Skipped(format!(
                    "the signal names no {} to act on",
                    kinds_list(spec)
                ))
            } else if spec.mutating && playbook.guardrails.protected_tag.protects(&signal.tags) {
                let reason = format!(
                    "target is protected by tag {}; escalating instead",
                    playbook.guardrails.protected_tag
                );
                escalate.get_or_insert_with(|| reason.clone());
                StepOutcome::Skipped(reason)
            } else if !spec.mutating {
                // Telling people is not a change to their resources: dry-run and approval
                // hold back only what mutates.
                StepOutcome::Planned
            } else {
                match mode {
                    Mode::Auto => StepOutcome::Planned,
                    Mode::Approve => StepOutcome::NeedsApproval,
                    Mode::DryRun => StepOutcome::DryRun,
                }
            };
            PlannedStep {
                action: spec.name,
                mutating: spec.mutating,
                targets,
                outcome,
            }
        })
        .collect();
    Plan {
        mode,
        steps,
        escalate,
    }
}

fn targets(spec: &ActionSpec, signal: &Signal) -> Vec<String> {
    signal
        .resources
        .iter()
        .filter(|r| spec.targets.contains(&r.kind))
        .map(|r| r.id.clone())
        .collect()
}

fn kinds_list(spec: &ActionSpec) -> String {
    let names: Vec<&str> = spec.targets.iter().map(|&k| k.as_str()).collect();
    names.join(" or ")
}

/// Set to `false` to let `auto` playbooks act; anything else, or unset, keeps every step a
/// dry run. Safe by default: a fresh deploy changes nothing until someone says so.
pub const DRY_RUN_ENV: &str = "FIREBREAK_DRY_RUN";

/// The global dry-run switch as the environment sets it.
pub fn global_dry_run_from_env() -> bool {
    std::env::var(DRY_RUN_ENV).map_or(true, |v| v.trim() != "false")
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_shared::playbook::PlaybookSet;
    use firebreak_shared::signal::{Severity, Tag};
    use firebreak_shared::triage::decide;

    const BACKDOOR: &[u8] = include_bytes!(
        "../../../tests/fixtures/events/guardduty/custodian-eventbridge-backdoor-ec2-cc-activity-b-dns.json"
    );
    const BRUTE_FORCE: &[u8] = include_bytes!(
        "../../../tests/fixtures/events/guardduty/waf-acl-partial-envelope-ec2-ssh-bruteforce.json"
    );

    fn signal(event: &[u8]) -> Signal {
        let received = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let mut signals = firebreak_shared::signal::parse(event, received).expect("fixture parses");
        assert_eq!(signals.len(), 1);
        signals.remove(0)
    }

    /// The backdoor fixture is a medium sample; ec2-compromise acts from high upwards.
    fn high_backdoor() -> Signal {
        let mut s = signal(BACKDOOR);
        s.severity = Severity::High;
        s
    }

    fn outcomes(plan: &Plan) -> Vec<(&str, StepOutcome)> {
        plan.steps
            .iter()
            .map(|s| (s.action, s.outcome.clone()))
            .collect()
    }

    #[test]
    fn an_auto_playbook_plans_snapshot_and_isolation_of_the_instance_when_live() {
        let playbooks = PlaybookSet::starter();
        let s = high_backdoor();
        let plan = plan(&decide(&s, &playbooks), false);
        assert_eq!(plan.mode, Mode::Auto);
        assert_eq!(
            outcomes(&plan),
            vec![
                ("ec2.snapshot", StepOutcome::Planned),
                ("ec2.isolate", StepOutcome::Planned),
                ("notify", StepOutcome::Planned),
            ]
        );
        assert_eq!(plan.steps[1].targets, vec!["i-99999999".to_owned()]);
        assert_eq!(plan.escalate, None);
    }

    #[test]
    fn the_global_dry_run_switch_overrides_an_auto_playbook_but_still_notifies() {
        let playbooks = PlaybookSet::starter();
        let s = high_backdoor();
        let plan = plan(&decide(&s, &playbooks), true);
        assert_eq!(plan.mode, Mode::DryRun);
        assert_eq!(
            outcomes(&plan),
            vec![
                ("ec2.snapshot", StepOutcome::DryRun),
                ("ec2.isolate", StepOutcome::DryRun),
                ("notify", StepOutcome::Planned),
            ]
        );
    }

    #[test]
    fn a_protected_instance_is_never_touched_and_the_incident_escalates() {
        let playbooks = PlaybookSet::starter();
        let mut s = high_backdoor();
        s.tags.push(Tag {
            key: "firebreak:protected".to_owned(),
            value: "true".to_owned(),
        });
        let plan = plan(&decide(&s, &playbooks), false);
        for step in plan.steps.iter().filter(|s| s.mutating) {
            assert!(
                matches!(step.outcome, StepOutcome::Skipped(_)),
                "{} was {:?}",
                step.action,
                step.outcome
            );
        }
        assert!(
            plan.escalate
                .is_some_and(|why| why.contains("firebreak:protected"))
        );
    }

    #[test]
    fn a_low_severity_brute_force_probe_isolates_nothing() {
        let playbooks = PlaybookSet::starter();
        let s = signal(BRUTE_FORCE);
        let d = decide(&s, &playbooks);
        assert_eq!(d.playbook.map(|p| p.name.as_str()), Some("ec2-brute-force"));
        let plan = plan(&d, false);
        assert!(plan.steps.iter().all(|s| !s.mutating), "{plan:?}");
    }

    #[test]
    fn a_signal_below_every_playbook_gets_no_steps() {
        let playbooks = PlaybookSet::starter();
        let s = signal(BACKDOOR);
        let plan = plan(&decide(&s, &playbooks), false);
        assert!(plan.steps.is_empty());
    }

    #[test]
    fn a_step_with_nothing_of_its_kind_to_act_on_is_skipped_with_the_reason() {
        let pb = PlaybookSet::from_sources([(
            std::path::PathBuf::from("t.yaml"),
            "name: t\npriority: 1\nmatch: {sources: [guardduty]}\nguardrails: {mode: auto}\nremediate:\n  - action: ec2.isolate\n".to_owned(),
        )])
        .expect("test playbook is valid");
        let mut s = high_backdoor();
        s.resources.clear();
        let plan = plan(&decide(&s, &pb), false);
        assert!(
            matches!(&plan.steps[0].outcome, StepOutcome::Skipped(why) if why.contains("ec2_instance")),
            "{plan:?}"
        );
    }

    #[test]
    fn approve_mode_holds_mutating_steps_for_approval() {
        let pb = PlaybookSet::from_sources([(
            std::path::PathBuf::from("t.yaml"),
            "name: t\npriority: 1\nmatch: {sources: [guardduty]}\nguardrails: {mode: approve}\nremediate:\n  - action: notify\n  - action: ec2.isolate\n".to_owned(),
        )])
        .expect("test playbook is valid");
        let s = high_backdoor();
        let plan = plan(&decide(&s, &pb), false);
        assert_eq!(
            outcomes(&plan),
            vec![
                ("notify", StepOutcome::Planned),
                ("ec2.isolate", StepOutcome::NeedsApproval),
            ]
        );
    }
}
