//! The notify stage: what people are told, in the forms they read it.
//!
//! [`render`] turns a decision into one message in three forms: a plain-text body for email
//! and SMS subscribers, an AWS Chatbot custom notification for Slack and Teams, and SNS message
//! attributes (`severity`, `playbook`, `status`, `route`) that subscription filter policies
//! route pages on. Publishing to SNS builds on this; rendering stays pure so it is tested
//! byte for byte.

use std::collections::BTreeMap;

use firebreak_shared::triage::{Decision, Outcome};
use serde::Serialize;
use serde_json::{Value, json};

/// SNS rejects subjects of 100 characters or more, and any with control characters.
pub const MAX_SUBJECT_CHARS: usize = 99;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub subject: String,
    pub text: String,
    /// The AWS Chatbot custom-notification document (schema version 1.0).
    pub chatbot: Value,
    pub attributes: BTreeMap<&'static str, String>,
}

/// The routing label for decisions no playbook claimed.
pub const DEFAULT_ROUTE: &str = "default";

pub fn render(decision: &Decision<'_>) -> Message {
    let signal = decision.signal;
    let status = match decision.outcome {
        Outcome::Incident | Outcome::NotifyOnly => "open",
        Outcome::Resolve => "resolved",
        Outcome::Ignore => "ignored",
    };
    let playbook = decision.playbook.map_or("none", |p| p.name.as_str());
    let route = decision
        .playbook
        .map_or(DEFAULT_ROUTE, |p| p.notify.route.as_str());
    let severity = decision.severity.as_str().to_ascii_uppercase();

    let subject = subject(&format!("[{severity}] {status}: {}", signal.title));
    let resources: Vec<&str> = signal.resources.iter().map(|r| r.id.as_str()).collect();
    let mut text = format!(
        "{title}\n\nStatus:    {status}\nSeverity:  {sev}\nSource:    {source} ({kind})\nPlaybook:  {playbook}\nWhy:       {reason}\nAccount:   {account}\nRegion:    {region}\nObserved:  {observed}\nDedupe:    {key}\n",
        title = signal.title,
        sev = decision.severity,
        source = signal.source,
        kind = signal.kind,
        reason = decision.reason,
        account = signal.account.as_deref().unwrap_or("-"),
        region = signal.region.as_deref().unwrap_or("-"),
        observed = signal.observed_at.to_rfc3339(),
        key = decision.dedupe_key,
    );
    if !resources.is_empty() {
        text.push_str("Resources:\n");
        for id in &resources {
            text.push_str("  - ");
            text.push_str(id);
            text.push('\n');
        }
    }

    let chatbot = json!({
        "version": "1.0",
        "source": "custom",
        "id": decision.dedupe_key,
        "content": {
            "textType": "client-markdown",
            "title": format!(":rotating_light: [{severity}] {}", signal.title),
            "description": format!(
                "*{status}* · {source} `{kind}` · playbook *{playbook}*\n{reason}",
                source = signal.source,
                kind = signal.kind,
                reason = decision.reason,
            ),
            "keywords": [decision.severity.as_str(), signal.source.as_str(), playbook],
        },
        "metadata": {
            "threadId": decision.dedupe_key,
            "summary": subject,
            "eventType": format!("firebreak.{status}"),
            "relatedResources": resources,
            "additionalContext": {
                "account": signal.account,
                "region": signal.region,
            },
        },
    });

    let attributes = BTreeMap::from([
        ("severity", decision.severity.as_str().to_owned()),
        ("playbook", playbook.to_owned()),
        ("status", status.to_owned()),
        ("route", route.to_owned()),
    ]);

    Message {
        subject,
        text,
        chatbot,
        attributes,
    }
}

/// An SNS-safe subject: printable, one line, under the length limit, cut on a char boundary.
fn subject(raw: &str) -> String {
    raw.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_SUBJECT_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_shared::playbook::PlaybookSet;
    use firebreak_shared::signal::Signal;
    use firebreak_shared::triage::decide;

    fn signals(event: &[u8]) -> Vec<Signal> {
        let received = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        firebreak_shared::signal::parse(event, received).expect("fixture parses")
    }

    const COMPOSITE: &[u8] = include_bytes!(
        "../../../tests/fixtures/events/cloudwatch-alarm/docs-composite-alarm-with-suppressor-ok-to-alarm.json"
    );

    #[test]
    fn attributes_carry_severity_playbook_status_and_route_for_filter_policies() {
        let playbooks = PlaybookSet::starter();
        let s = signals(COMPOSITE);
        let m = render(&decide(&s[0], &playbooks));
        assert_eq!(m.attributes["severity"], "critical");
        assert_eq!(m.attributes["playbook"], "service-down");
        assert_eq!(m.attributes["status"], "open");
        assert_eq!(m.attributes["route"], "page");
    }

    #[test]
    fn the_subject_fits_sns_limits_even_for_long_titles_with_newlines() {
        let playbooks = PlaybookSet::starter();
        let mut s = signals(COMPOSITE).remove(0);
        s.title = format!("line one\nline two {}", "é".repeat(300));
        let m = render(&decide(&s, &playbooks));
        assert!(m.subject.chars().count() <= MAX_SUBJECT_CHARS);
        assert!(!m.subject.chars().any(char::is_control), "{:?}", m.subject);
        assert!(m.text.starts_with("line one\nline two"));
    }

    #[test]
    fn the_chat_form_is_an_aws_chatbot_custom_notification() {
        let playbooks = PlaybookSet::starter();
        let s = signals(COMPOSITE);
        let m = render(&decide(&s[0], &playbooks));
        assert_eq!(m.chatbot["version"], "1.0");
        assert_eq!(m.chatbot["source"], "custom");
        assert_eq!(m.chatbot["content"]["textType"], "client-markdown");
        assert!(
            m.chatbot["content"]["title"]
                .as_str()
                .is_some_and(|t| t.contains("ServiceAggregatedAlarm"))
        );
        assert_eq!(
            m.chatbot["metadata"]["relatedResources"][0],
            "arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServiceAggregatedAlarm"
        );
    }

    #[test]
    fn an_unmatched_signal_routes_to_the_default_route() {
        let playbooks = PlaybookSet::from_sources([(
            std::path::PathBuf::from("t.yaml"),
            "name: t\npriority: 1\nmatch: {sources: [security_hub]}\n".to_owned(),
        )])
        .expect("valid");
        let s = signals(COMPOSITE);
        let m = render(&decide(&s[0], &playbooks));
        assert_eq!(m.attributes["route"], DEFAULT_ROUTE);
        assert_eq!(m.attributes["playbook"], "none");
    }
}
