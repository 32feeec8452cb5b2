//! The close stage: when an incident ends, and by which rule.
//!
//! [`policy`] reads the playbook's close policy against a decision: an alarm back to OK
//! resolves now under `alarm_ok`; `verified_remediation` waits for the remediate stage's
//! verification; `manual` waits for a person. The MTTx figures and the post-incident report
//! build on the incident record this policy closes.

use firebreak_shared::playbook::CloseOn;
use firebreak_shared::triage::{Decision, Outcome};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClosePlan {
    pub on: CloseOn,
    /// The decision itself resolves its incident now.
    pub resolves_now: bool,
    /// Seconds of quiet after which the incident resolves on its own, if the playbook says so.
    pub auto_resolve_after_s: Option<u64>,
}

/// The close rule for unmatched signals: a notify-only incident has nothing to verify, so a
/// resolving signal closes it and otherwise a person does.
pub const DEFAULT_CLOSE: CloseOn = CloseOn::Manual;

pub fn policy(decision: &Decision<'_>) -> ClosePlan {
    let (on, auto) = decision.playbook.map_or((DEFAULT_CLOSE, None), |p| {
        (p.close.on, p.close.auto_resolve_after.map(|d| d.as_secs()))
    });
    ClosePlan {
        on,
        resolves_now: decision.outcome == Outcome::Resolve,
        auto_resolve_after_s: auto,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_shared::playbook::PlaybookSet;
    use firebreak_shared::signal::{Action, AlarmState, Signal};
    use firebreak_shared::triage::decide;

    const COMPOSITE: &[u8] = include_bytes!(
        "../../../tests/fixtures/events/cloudwatch-alarm/docs-composite-alarm-with-suppressor-ok-to-alarm.json"
    );

    fn alarm() -> Signal {
        let received = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        firebreak_shared::signal::parse(COMPOSITE, received)
            .expect("fixture parses")
            .remove(0)
    }

    #[test]
    fn an_alarm_back_to_ok_resolves_its_incident_now() {
        let playbooks = PlaybookSet::starter();
        let mut ok = alarm();
        ok.action = Action::Resolve;
        ok.alarm_state = Some(AlarmState::Ok);
        let plan = policy(&decide(&ok, &playbooks));
        assert_eq!(plan.on, CloseOn::AlarmOk);
        assert!(plan.resolves_now);
    }

    #[test]
    fn an_alarm_firing_does_not_resolve_anything() {
        let playbooks = PlaybookSet::starter();
        let firing = alarm();
        let plan = policy(&decide(&firing, &playbooks));
        assert_eq!(plan.on, CloseOn::AlarmOk);
        assert!(!plan.resolves_now);
    }

    #[test]
    fn an_unmatched_incident_waits_for_a_person() {
        let playbooks = PlaybookSet::from_sources([(
            std::path::PathBuf::from("t.yaml"),
            "name: t\npriority: 1\nmatch: {sources: [security_hub]}\n".to_owned(),
        )])
        .expect("valid");
        let plan = policy(&decide(&alarm(), &playbooks));
        assert_eq!(plan.on, DEFAULT_CLOSE);
        assert_eq!(plan.auto_resolve_after_s, None);
    }
}
