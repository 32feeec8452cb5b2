//! The notify stage: every lifecycle event, told to people once, in the forms they read.
//!
//! [`render`] turns an incident and a lifecycle event into one message in three forms: a
//! plain-text body for email and SMS subscribers, an AWS Chatbot custom notification for Slack
//! and Teams (sent to HTTPS subscribers, which is how Chatbot subscribes), and SNS message
//! attributes (`severity`, `playbook`, `status`, `route`, `event`) that subscription filter
//! policies route pages on. Escalations (Incident Escalated, Approval Requested, Remediation
//! Failed) go to the escalation topic, everything else to the notification topic.
//!
//! [`Notify::handle`] publishes with a claim recorded in the incident first and the message id
//! after, keyed by the event's id: a duplicate delivery finds the notification sent and does
//! nothing, a concurrent one finds it claimed and fails so the platform retries it later (by
//! when it is sent), and a claim left by a crashed invocation expires after [`CLAIM_LEASE_S`].

use std::collections::BTreeMap;

use aws_sdk_sns::types::MessageAttributeValue;
use chrono::{DateTime, Utc};
use firebreak_shared::aws::AwsError;
use firebreak_shared::config::{ConfigError, Env};
use firebreak_shared::incident::{Incident, NotificationRecord};
use firebreak_shared::lifecycle::{self, Event, Kind};
use firebreak_shared::playbook::PlaybookSet;
use firebreak_shared::store::{Change, Store, StoreError};
use serde::Serialize;
use serde_json::{Value, json};

/// Exactly the AWS actions this stage's code calls; the template grants these and no more
/// (plus the KMS use that publishing to an encrypted topic implies).
pub const IAM_ACTIONS: &[&str] = &["dynamodb:GetItem", "dynamodb:PutItem", "sns:Publish"];

/// SNS rejects subjects of 100 characters or more, and any with control characters.
pub const MAX_SUBJECT_CHARS: usize = 99;

/// How long a claim holds off other deliveries: longer than the function's 30 s timeout, so
/// a live publish is never doubled, and shorter than Lambda's first async retry (about a
/// minute), so the retry of a crashed invocation takes over.
pub const CLAIM_LEASE_S: i64 = 45;

/// The routing label for incidents no playbook claimed.
pub const DEFAULT_ROUTE: &str = "default";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub subject: String,
    pub text: String,
    /// The AWS Chatbot custom-notification document (schema version 1.0).
    pub chatbot: Value,
    pub attributes: BTreeMap<&'static str, String>,
}

/// Renders `event` about `incident`; `route` is the playbook's notify route.
pub fn render(incident: &Incident, kind: Kind, reason: Option<&str>, route: &str) -> Message {
    let playbook = incident.playbook.as_deref().unwrap_or("none");
    let severity = incident.severity.as_str().to_ascii_uppercase();
    let status = incident.status.as_str();
    let subject = subject(&format!(
        "[{severity}] {}: {}",
        kind.detail_type(),
        incident.title
    ));
    let resources: Vec<&str> = incident.resources.iter().map(|r| r.id.as_str()).collect();
    let mut text = format!(
        "{kind}: {title}\n\nIncident:  {id}\nStatus:    {status}\nSeverity:  {sev}\nSource:    {source} ({what})\nPlaybook:  {playbook}\nAccount:   {account}\nRegion:    {region}\nSignals:   {count} (first {first}, last {last})\nDedupe:    {key}\n",
        title = incident.title,
        id = incident.id,
        sev = incident.severity,
        source = incident.source,
        what = incident.kind,
        account = incident.account.as_deref().unwrap_or("-"),
        region = incident.region.as_deref().unwrap_or("-"),
        count = incident.signals.count,
        first = incident.signals.first_seen.to_rfc3339(),
        last = incident.signals.last_seen.to_rfc3339(),
        key = incident.dedupe_key,
    );
    if let Some(reason) = reason {
        text.push_str("Why:       ");
        text.push_str(reason);
        text.push('\n');
    }
    if !resources.is_empty() {
        text.push_str("Resources:\n");
        for id in &resources {
            text.push_str("  - ");
            text.push_str(id);
            text.push('\n');
        }
    }
    if let Some(r) = &incident.resolution {
        let mttr = incident
            .metrics
            .mttr_s
            .map_or_else(|| "-".to_owned(), |s| format!("{s:.0} s"));
        text.push_str(&format!(
            "Resolved:  {} by {} ({}); MTTR {mttr}\n",
            r.at.to_rfc3339(),
            r.by,
            r.reason
        ));
    }
    if kind == Kind::ApprovalRequested {
        text.push_str(&format!(
            "\nTo approve: firebreak incidents approve {}\n",
            incident.id
        ));
    }

    let chatbot = json!({
        "version": "1.0",
        "source": "custom",
        "id": format!("{}/{}", incident.id, kind.slug()),
        "content": {
            "textType": "client-markdown",
            "title": format!(":rotating_light: [{severity}] {}", incident.title),
            "description": format!(
                "*{kind}* · {status} · {source} `{what}` · playbook *{playbook}*{why}",
                source = incident.source,
                what = incident.kind,
                why = reason.map(|r| format!("\n{r}")).unwrap_or_default(),
            ),
            "keywords": [incident.severity.as_str(), incident.source.as_str(), playbook, kind.slug()],
        },
        "metadata": {
            "threadId": incident.id,
            "summary": subject,
            "eventType": format!("firebreak.{}", kind.slug()),
            "relatedResources": resources,
            "additionalContext": {
                "incident": incident.id,
                "account": incident.account,
                "region": incident.region,
            },
        },
    });

    let attributes = BTreeMap::from([
        ("severity", incident.severity.as_str().to_owned()),
        ("playbook", playbook.to_owned()),
        ("status", status.to_owned()),
        ("route", route.to_owned()),
        ("event", kind.slug().to_owned()),
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

/// The SNS `MessageStructure: json` body: text by default and for email, the Chatbot document
/// for HTTPS subscribers (AWS Chatbot subscribes over HTTPS).
pub fn sns_body(message: &Message, chat: bool) -> String {
    let mut body = json!({
        "default": message.text,
        "email": message.text,
    });
    if chat {
        body["https"] = Value::String(message.chatbot.to_string());
    }
    body.to_string()
}

/// What the stage reads from its environment at init.
#[derive(Debug, Clone)]
pub struct Config {
    pub table: String,
    pub topic_arn: String,
    pub escalation_topic_arn: String,
}

impl Config {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Config, ConfigError> {
        Ok(Config {
            table: env.table()?,
            topic_arn: env.topic_arn()?,
            escalation_topic_arn: env.escalation_topic_arn()?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Publish(AwsError),
    #[error("{event_id} is being published by another delivery; retry later")]
    InFlight { event_id: String },
}

impl Error {
    /// Whether the platform should retry the invocation.
    pub fn transient(&self) -> bool {
        match self {
            Error::Store(e) => e.transient(),
            Error::Publish(e) => e.transient,
            Error::InFlight { .. } => true,
        }
    }
}

/// The notify stage, built once at init.
pub struct Notify {
    playbooks: PlaybookSet,
    store: Store,
    sns: aws_sdk_sns::Client,
    topic_arn: String,
    escalation_topic_arn: String,
}

enum Claim {
    Sent,
    Held,
    Ours,
}

impl Notify {
    pub fn new(
        playbooks: PlaybookSet,
        store: Store,
        sns: aws_sdk_sns::Client,
        config: &Config,
    ) -> Notify {
        Notify {
            playbooks,
            store,
            sns,
            topic_arn: config.topic_arn.clone(),
            escalation_topic_arn: config.escalation_topic_arn.clone(),
        }
    }

    /// The topic a kind of event goes to.
    pub fn topic_for(&self, kind: Kind) -> &str {
        if kind.escalates() {
            &self.escalation_topic_arn
        } else {
            &self.topic_arn
        }
    }

    /// Handles one lifecycle event as EventBridge delivers it.
    pub async fn handle(&self, event: &[u8], now: DateTime<Utc>) -> Result<Value, Error> {
        let event = match lifecycle::parse(event) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "event refused");
                return Ok(json!({"refused": e.to_string()}));
            }
        };
        if event.kind == Kind::ResolutionRequested {
            return Ok(json!({"outcome": "not_notified", "reason": "internal request"}));
        }
        self.notify(&event, now).await
    }

    /// Publishes `event` once, ever.
    pub async fn notify(&self, event: &Event, now: DateTime<Utc>) -> Result<Value, Error> {
        let id = &event.detail.incident_id;
        let event_id = event.detail.event_id.clone();
        let topic = self.topic_for(event.kind).to_owned();
        let Some(incident) = self.store.get(id).await? else {
            tracing::error!(incident = %id, "event names an unknown incident");
            return Ok(json!({"refused": format!("no incident {id}")}));
        };
        let playbook = incident
            .playbook
            .as_deref()
            .and_then(|n| self.playbooks.get(n));
        let route = playbook.map_or(DEFAULT_ROUTE, |p| p.notify.route.as_str());
        let chat = playbook.is_none_or(|p| p.notify.chat);
        let message = render(&incident, event.kind, event.detail.reason.as_deref(), route);

        let subject = message.subject.clone();
        let claimed = self
            .store
            .update(id, |i| match i.notification(&event_id) {
                Some(n) if n.sent_at.is_some() => Change::Keep(Claim::Sent),
                Some(n) if (now - n.claimed_at).num_seconds() < CLAIM_LEASE_S => {
                    Change::Keep(Claim::Held)
                }
                _ => {
                    i.notifications.retain(|n| n.event_id != event_id);
                    i.notifications.push(NotificationRecord {
                        event_id: event_id.clone(),
                        topic: topic.clone(),
                        subject: subject.clone(),
                        claimed_at: now,
                        sent_at: None,
                        message_id: None,
                    });
                    Change::Write(Claim::Ours)
                }
            })
            .await?;
        match claimed {
            None => return Ok(json!({"refused": format!("no incident {id}")})),
            Some((_, Claim::Sent)) => {
                return Ok(json!({"outcome": "already_sent", "event_id": event_id}));
            }
            Some((_, Claim::Held)) => return Err(Error::InFlight { event_id }),
            Some((_, Claim::Ours)) => {}
        }

        let published = self.publish(&topic, &message, chat).await;
        let message_id = match published {
            Ok(m) => m,
            Err(e) => {
                // Release the claim so the platform's retry need not wait out the lease.
                let released = self
                    .store
                    .update(id, |i| {
                        let before = i.notifications.len();
                        i.notifications
                            .retain(|n| n.event_id != event_id || n.sent_at.is_some());
                        if i.notifications.len() == before {
                            Change::Keep(())
                        } else {
                            Change::Write(())
                        }
                    })
                    .await;
                if let Err(release) = released {
                    tracing::warn!(error = %release, "claim not released; it expires on its own");
                }
                return Err(Error::Publish(e));
            }
        };
        let kind = event.kind;
        self.store
            .update(id, |i| {
                let Some(n) = i.notifications.iter_mut().find(|n| n.event_id == event_id) else {
                    return Change::Keep(());
                };
                if n.sent_at.is_some() {
                    return Change::Keep(());
                }
                n.sent_at = Some(now);
                n.message_id = Some(message_id.clone());
                i.note(
                    now,
                    "notify",
                    "notified",
                    "ok",
                    Some(format!("{kind} → {}", topic_name(&topic))),
                );
                Change::Write(())
            })
            .await?;
        Ok(json!({
            "outcome": "sent",
            "event_id": event_id,
            "topic": topic,
            "message_id": message_id,
        }))
    }

    async fn publish(
        &self,
        topic: &str,
        message: &Message,
        chat: bool,
    ) -> Result<String, AwsError> {
        let mut request = self
            .sns
            .publish()
            .topic_arn(topic)
            .subject(&message.subject)
            .message_structure("json")
            .message(sns_body(message, chat));
        for (name, value) in &message.attributes {
            let attr = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| AwsError {
                    service: "sns",
                    operation: "Publish",
                    code: Some("InvalidParameter".to_owned()),
                    status: None,
                    message: e.to_string(),
                    transient: false,
                })?;
            request = request.message_attributes(*name, attr);
        }
        let out = request
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sns", "Publish", &e))?;
        Ok(out.message_id().unwrap_or_default().to_owned())
    }
}

fn topic_name(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_shared::incident::incident_id;
    use firebreak_shared::signal::Signal;
    use firebreak_shared::triage::decide;

    fn signals(event: &[u8]) -> Vec<Signal> {
        let received = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        firebreak_shared::signal::parse(event, received).expect("fixture parses")
    }

    const COMPOSITE: &[u8] = include_bytes!(
        "../../../tests/fixtures/events/cloudwatch-alarm/docs-composite-alarm-with-suppressor-ok-to-alarm.json"
    );

    fn incident(signal: &Signal) -> Incident {
        let playbooks = PlaybookSet::starter();
        let d = decide(signal, &playbooks);
        Incident::open(&d, incident_id(signal, &d.dedupe_key), signal.observed_at)
    }

    #[test]
    fn attributes_carry_severity_playbook_status_route_and_event_for_filter_policies() {
        let s = signals(COMPOSITE);
        let m = render(&incident(&s[0]), Kind::IncidentOpened, None, "page");
        assert_eq!(m.attributes["severity"], "critical");
        assert_eq!(m.attributes["playbook"], "service-down");
        assert_eq!(m.attributes["status"], "open");
        assert_eq!(m.attributes["route"], "page");
        assert_eq!(m.attributes["event"], "opened");
    }

    #[test]
    fn the_subject_fits_sns_limits_even_for_long_titles_with_newlines() {
        let mut s = signals(COMPOSITE).remove(0);
        s.title = format!("line one\nline two {}", "é".repeat(300));
        let m = render(&incident(&s), Kind::IncidentOpened, None, "page");
        assert!(m.subject.chars().count() <= MAX_SUBJECT_CHARS);
        assert!(!m.subject.chars().any(char::is_control), "{:?}", m.subject);
        assert!(m.text.starts_with("Incident Opened: line one\nline two"));
    }

    #[test]
    fn email_gets_text_and_chatbot_gets_its_custom_notification() {
        let s = signals(COMPOSITE);
        let m = render(&incident(&s[0]), Kind::IncidentOpened, Some("why"), "page");
        let body: Value = serde_json::from_str(&sns_body(&m, true)).expect("json");
        assert_eq!(body["email"], m.text);
        assert_eq!(body["default"], m.text);
        let chat: Value =
            serde_json::from_str(body["https"].as_str().unwrap_or("")).expect("chatbot json");
        assert_eq!(chat["version"], "1.0");
        assert_eq!(chat["source"], "custom");
        assert_eq!(chat["content"]["textType"], "client-markdown");
        let no_chat: Value = serde_json::from_str(&sns_body(&m, false)).expect("json");
        assert!(no_chat.get("https").is_none());
    }

    #[test]
    fn an_approval_request_tells_people_how_to_approve() {
        let s = signals(COMPOSITE);
        let i = incident(&s[0]);
        let m = render(&i, Kind::ApprovalRequested, None, "page");
        assert!(
            m.text
                .contains(&format!("firebreak incidents approve {}", i.id)),
            "{}",
            m.text
        );
    }
}
