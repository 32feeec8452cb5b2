//! The create stage: a raw event in, a triage decision per signal out.
//!
//! It parses whatever envelope the event arrived in (EventBridge rule, alarm action, SNS),
//! matches each signal to a playbook and decides: open an incident, notify only, resolve, or
//! ignore. The durable incident record and the lifecycle bus are wired in on top of this
//! decision; the decision itself never needs AWS, so it is tested in-process.

use chrono::{DateTime, Utc};
use firebreak_shared::triage::{StageOutput, Triage};
use serde_json::Value;

/// Triage one raw event, received at `received_at`: one summary per signal, each logged.
pub fn handle(triage: &Triage, event: &[u8], received_at: DateTime<Utc>) -> StageOutput<Value> {
    triage.handle(event, received_at, |decision| {
        tracing::info!(
            source = %decision.signal.source,
            action = %decision.action,
            severity = %decision.severity,
            dedupe_key = %decision.dedupe_key,
            playbook = decision.playbook.map(|p| p.name.as_str()),
            reason = %decision.reason,
            "triaged"
        );
        // Serializing a struct of strings, enums and a timestamp cannot fail.
        serde_json::to_value(decision.summary()).unwrap_or(Value::Null)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_shared::playbook::PlaybookSet;

    fn received() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn a_guardduty_finding_becomes_one_open_decision() {
        let event = include_bytes!(
            "../../../tests/fixtures/events/guardduty/custodian-eventbridge-backdoor-ec2-cc-activity-b-dns.json"
        );
        let out = handle(&Triage::new(PlaybookSet::starter()), event, received());
        assert_eq!(out.refused, None);
        assert_eq!(out.results.len(), 1);
        assert_eq!(out.results[0]["source"], "guardduty");
        assert_eq!(out.results[0]["action"], "open");
    }

    #[test]
    fn a_refused_event_is_acknowledged_with_its_reason_not_failed() {
        let triage = Triage::new(PlaybookSet::starter());
        let wrong_type = handle(&triage, b"{\"detail-type\": 5}", received());
        assert!(wrong_type.results.is_empty());
        let reason = wrong_type.refused.unwrap_or_default();
        assert!(reason.starts_with("malformed event"), "{reason}");
        let truncated = handle(&triage, b"{\"detail-type\": \"GuardDuty", received());
        let reason = truncated.refused.unwrap_or_default();
        assert!(reason.starts_with("not valid JSON"), "{reason}");
    }
}
