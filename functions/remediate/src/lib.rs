//! The remediate stage: a playbook's steps, run against AWS behind the guardrails.
//!
//! It takes `Incident Enriched` (the template routes it here), and for the incident's playbook
//! runs each step in order, recording each one in the incident before it runs and again after,
//! with its evidence:
//!
//! - [`plan`] is the pure half, shared with `firebreak triage`: what each step would act on
//!   and whether it may (protected by the event's tags, nothing of its kind to act on,
//!   `approve` holding it, `dry-run` recording it). The live run walks this same plan, so a dry
//!   run and a live run can never disagree about what would be touched.
//! - [`Remediate`] (in `stage.rs`) runs it: the global dry-run switch ([`switch`]) first, then
//!   per step the guardrails ([`guardrails`]: the protected tag read from the resource, the
//!   blast-radius counter), the action (`actions`), and its verification (`verify`).
//!   `Remediation Started`, `Remediation Succeeded` and `Remediation Failed` are emitted per
//!   step; a failure, a protected resource or the rate limit escalates the incident
//!   (`Incident Escalated`, reason `remediation_failed`, `protected_resource`, `rate_limited`,
//!   as the playbook's `notify.escalation.on` allows). After every step succeeded and was
//!   verified, the incident is acknowledged by `remediate` (an automated action is its first
//!   acknowledgement, for MTTA) and, under `close.on: verified_remediation`, resolution is
//!   requested with actor `remediate`.
//! - `notify` steps announce their message as `Remediation Succeeded` of that step (the
//!   lifecycle has no plainer kind; the reason is the message), `escalate` steps emit
//!   `Incident Escalated` with their reason.
//! - [`ids`] checks every id against its AWS format before any call uses it; [`budget`] paces
//!   retries and waits within the invocation's deadline.
//!
//! Duplicate and concurrent deliveries are safe: every step is claimed in the record (an
//! `ActionRecord` with outcome `started` and a lease until the claimant's deadline) before it
//! runs. A second delivery finds it done (and does nothing), or claimed (and fails transient, so
//! the platform retries it after the first has finished), or abandoned past its lease (and
//! resumes it: every action is idempotent and keeps what must survive a crash in the record).
//!
//! Loop protection, the remediate half: everything this stage creates is tagged
//! `firebreak:managed=true` and `firebreak:incident=<id>`, and every instance it changes gets
//! `firebreak:incident=<id>`; triage ignores signals about resources Firebreak manages.

mod actions;
pub mod budget;
pub mod guardrails;
pub mod ids;
mod stage;
pub mod switch;
mod verify;

pub use actions::ec2::{ACTION_TAG, INCIDENT_TAG, MANAGED_TAG, QUARANTINE_GROUP, ROLE_TAG};
pub use budget::{Budget, Timing};
pub use stage::{ACTOR, APPROVAL_BUDGET, Remediate};
pub use switch::DryRunSwitch;

use firebreak_shared::aws::AwsError;
use firebreak_shared::catalog::ActionSpec;
use firebreak_shared::config::{ConfigError, Env};
use firebreak_shared::lifecycle::LifecycleError;
use firebreak_shared::playbook::Mode;
use firebreak_shared::signal::Signal;
use firebreak_shared::store::StoreError;
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
    /// Waits for `firebreak incidents approve` (mode `approve`).
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

/// The SSM parameter whose exact value `false` lets playbooks act: the global dry-run switch.
pub const DRY_RUN_PARAMETER_ENV: &str = "FIREBREAK_DRY_RUN_PARAMETER";

/// Exactly the AWS actions this stage's code calls, sorted: the template grants these and no
/// more. (`CreateSnapshots` and `CreateSecurityGroup` tag on creation, which IAM authorises as
/// `ec2:CreateTags` on the new resource; it is in the list for `ec2.tag` anyway.)
pub const IAM_ACTIONS: &[&str] = &[
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DetachInstances",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "ec2:CreateSecurityGroup",
    "ec2:CreateSnapshots",
    "ec2:CreateTags",
    "ec2:DescribeInstances",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSnapshots",
    "ec2:ModifyInstanceAttribute",
    "ec2:ModifyNetworkInterfaceAttribute",
    "ec2:RebootInstances",
    "ec2:RevokeSecurityGroupEgress",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:StopInstances",
    "events:PutEvents",
    "iam:GetAccessKeyLastUsed",
    "iam:ListAccessKeys",
    "iam:ListUserTags",
    "iam:UpdateAccessKey",
    "s3:GetBucketPublicAccessBlock",
    "s3:GetBucketTagging",
    "s3:PutBucketPublicAccessBlock",
    "ssm:GetAutomationExecution",
    "ssm:GetCommandInvocation",
    "ssm:GetParameter",
    "ssm:SendCommand",
    "ssm:StartAutomationExecution",
];

/// What the stage reads from its environment at init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub table: String,
    pub bus: String,
    /// The name (or ARN) of the global dry-run switch parameter.
    pub dry_run_parameter: String,
}

impl Config {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Config, ConfigError> {
        let expected = "an SSM parameter name such as /firebreak/dry-run (letters, digits and \
                        _.-/, a path starting with /), or its ARN";
        let value = (env.0)(DRY_RUN_PARAMETER_ENV)
            .filter(|v| !v.trim().is_empty())
            .ok_or(ConfigError::Missing {
                var: DRY_RUN_PARAMETER_ENV,
                expected,
            })?;
        if !parameter_name_ok(&value) {
            return Err(ConfigError::Invalid {
                var: DRY_RUN_PARAMETER_ENV,
                value,
                expected,
            });
        }
        Ok(Config {
            table: env.table()?,
            bus: env.bus()?,
            dry_run_parameter: value,
        })
    }
}

/// Parameter Store's rules for a name: at most 2048 characters of `a-zA-Z0-9_.-/`, and a name
/// with a `/` is a path that starts with one. An ARN names it too.
fn parameter_name_ok(v: &str) -> bool {
    let name = match v.strip_prefix("arn:") {
        Some(rest) => match rest.splitn(5, ':').collect::<Vec<_>>().as_slice() {
            [p, "ssm", _, _, res] if p.starts_with("aws") => match res.strip_prefix("parameter") {
                Some(path) if path.starts_with('/') => path,
                _ => return false,
            },
            _ => return false,
        },
        None => v,
    };
    (1..=2048).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b))
        && (!name.contains('/') || name.starts_with('/'))
        && !name.to_ascii_lowercase().starts_with("aws")
        && !name.to_ascii_lowercase().starts_with("ssm")
}

/// The AWS clients the actions use, built once at init.
#[derive(Debug, Clone)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub iam: aws_sdk_iam::Client,
    pub s3: aws_sdk_s3::Client,
}

impl Clients {
    /// Every client from one SDK configuration (no call is made until an action runs).
    pub fn new(sdk: &aws_config::SdkConfig) -> Clients {
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            ec2: aws_sdk_ec2::Client::new(sdk),
            ssm: aws_sdk_ssm::Client::new(sdk),
            autoscaling: aws_sdk_autoscaling::Client::new(sdk),
            iam: aws_sdk_iam::Client::new(sdk),
            s3: aws_sdk_s3::Client::new(sdk),
        }
    }
}

/// Why an invocation failed. A step that fails is not one: it is recorded, announced and
/// escalated, and the invocation succeeds.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// Throttling or an outage that outlasted the budget.
    #[error(transparent)]
    Aws(AwsError),
    #[error("step {step} of {incident} is being run by another delivery; retry later")]
    InFlight { incident: String, step: String },
    #[error("{what} is still running and the invocation's time is up; the retry resumes waiting")]
    StillRunning { what: String },
}

impl Error {
    /// Whether the platform should retry the invocation.
    pub fn transient(&self) -> bool {
        match self {
            Error::Store(e) => e.transient(),
            Error::Lifecycle(e) => e.transient(),
            Error::Aws(e) => e.transient,
            Error::InFlight { .. } | Error::StillRunning { .. } => true,
        }
    }
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

    /// Proportionality: whatever a GuardDuty finding below high says, the starter playbooks
    /// plan nothing that isolates (or changes anything on) the instance.
    #[test]
    fn no_starter_playbook_isolates_on_a_low_or_medium_severity_guardduty_finding() {
        let playbooks = PlaybookSet::starter();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/events/guardduty");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("fixture directory") {
            let path = entry.expect("entry").path();
            let bytes = std::fs::read(&path).expect("fixture reads");
            let received = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
            let Ok(signals) = firebreak_shared::signal::parse(&bytes, received) else {
                continue;
            };
            for signal in signals {
                // As delivered, and forced to every severity below high.
                let mut variants = vec![signal.clone()];
                for sev in [Severity::Info, Severity::Low, Severity::Medium] {
                    let mut s = signal.clone();
                    s.severity = sev;
                    variants.push(s);
                }
                for s in variants.iter().filter(|s| s.severity < Severity::High) {
                    let plan = plan(&decide(s, &playbooks), false);
                    let acting: Vec<&str> = plan
                        .steps
                        .iter()
                        .filter(|st| st.mutating && st.outcome == StepOutcome::Planned)
                        .map(|st| st.action)
                        .collect();
                    assert!(
                        acting.is_empty(),
                        "{} at {} would run {acting:?}",
                        path.display(),
                        s.severity
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= 20, "only {checked} signals checked");
    }

    #[test]
    fn config_needs_the_dry_run_parameter_and_checks_its_name() {
        use firebreak_shared::config::Env;
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            Env(move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            })
        };
        let base: &[(&str, &str)] = &[
            ("FIREBREAK_TABLE", "firebreak-incidents"),
            ("FIREBREAK_BUS", "firebreak-lifecycle"),
        ];
        let err = Config::from_env(&env(base)).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.starts_with("FIREBREAK_DRY_RUN_PARAMETER is not set")),
            "{err:?}"
        );
        let bad: &[(&str, &str)] = &[
            ("FIREBREAK_TABLE", "firebreak-incidents"),
            ("FIREBREAK_BUS", "firebreak-lifecycle"),
            ("FIREBREAK_DRY_RUN_PARAMETER", "firebreak dry run"),
        ];
        assert!(Config::from_env(&env(bad)).is_err());
        let good: &[(&str, &str)] = &[
            ("FIREBREAK_TABLE", "firebreak-incidents"),
            ("FIREBREAK_BUS", "firebreak-lifecycle"),
            ("FIREBREAK_DRY_RUN_PARAMETER", "/firebreak/dry-run"),
        ];
        let config = Config::from_env(&env(good)).expect("valid");
        assert_eq!(config.dry_run_parameter, "/firebreak/dry-run");
        assert!(parameter_name_ok(
            "arn:aws:ssm:eu-west-1:123456789012:parameter/firebreak/dry-run"
        ));
        assert!(!parameter_name_ok("relative/path"));
    }

    #[test]
    fn iam_actions_are_sorted_and_unique() {
        assert!(
            IAM_ACTIONS.windows(2).all(|w| w[0] < w[1]),
            "{IAM_ACTIONS:?}"
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
