//! The lifecycle against a local AWS over HTTP: the real stages, the real SDK clients, moto.
//!
//! Each test builds its own copy of the stack from template.yaml (table, lifecycle bus with the
//! template's rules, topics with a subscribed queue) under a unique prefix, then plays events
//! through the stages in-process. Events travel through moto's EventBridge exactly as the
//! template routes them: a stage's output lands in the SQS queue standing in for the next
//! function, and the test delivers it from there. Calls moto cannot serve (CloudWatch, whose
//! Rust client speaks RPC v2 CBOR; CloudTrail LookupEvents) are stubbed with aws-smithy-mocks.

mod support;

use chrono::{Duration, Utc};
use firebreak_shared::incident::Status;
use firebreak_shared::lifecycle::{self, Kind};
use serde_json::Value;
use support::{Pipeline, fixture, recovered, shift};

const ALARM: &str = "cloudwatch-alarm/docs-composite-alarm-with-suppressor-ok-to-alarm.json";

/// One alarm, from firing to recovery, with every lifecycle event delivered where the template
/// routes it, each delivered twice to prove the second changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_that_fires_and_recovers_is_one_incident_enriched_notified_and_resolved_with_its_mttr()
 {
    let p = Pipeline::new("e2e").await;
    let (enrich, stubs) = p.enrich("ServiceAggregatedAlarm");
    let (close, metrics) = p.close(30 * 86_400);
    let fired = fixture(ALARM);
    let t0 = Utc::now();

    // ALARM: create opens the incident and emits Incident Opened.
    let created = p.create.handle(&fired, t0).await.expect("create");
    assert_eq!(created["results"][0]["outcome"], "opened", "{created}");
    let id = created["results"][0]["incident"]
        .as_str()
        .unwrap_or("")
        .to_owned();

    // The bus routes Incident Opened to enrich, which records the alarm's context.
    let to_enrich = p.delivered("EnrichFunction").await;
    assert_eq!(to_enrich.len(), 1);
    for _ in 0..2 {
        enrich
            .handle(to_enrich[0].as_bytes(), t0)
            .await
            .expect("enrich");
    }
    let enriched = p.incident(&id).await;
    let results = &enriched
        .enrichment
        .as_ref()
        .expect("enrichment recorded")
        .results;
    assert!(
        results
            .iter()
            .any(|r| r.enricher == "cloudwatch.alarm" && r.outcome == "ok"),
        "{results:?}"
    );
    assert!(stubs[0].num_calls() >= 1, "DescribeAlarms was called");

    // Notify hears Opened and Enriched, and announces each once.
    let to_notify = p.delivered("NotifyFunction").await;
    let kinds: Vec<Kind> = to_notify
        .iter()
        .map(|e| lifecycle::parse(e.as_bytes()).expect("lifecycle").kind)
        .collect();
    assert_eq!(kinds, [Kind::IncidentOpened, Kind::IncidentEnriched]);
    for event in &to_notify {
        for _ in 0..2 {
            p.notify.handle(event.as_bytes(), t0).await.expect("notify");
        }
    }

    // OK, ten minutes after the ALARM: the template routes it straight to close.
    let ok = recovered(&fired, Duration::minutes(10));
    let t1 = t0 + Duration::minutes(10);
    for _ in 0..2 {
        close.handle(&ok, t1).await.expect("close");
    }
    let resolved = p.incident(&id).await;
    assert_eq!(resolved.status, Status::Resolved);
    let mttr = resolved.metrics.mttr_s.expect("MTTR computed");
    assert!((599.0..=601.0).contains(&mttr), "MTTR {mttr}");
    assert!(resolved.metrics.mttd_s.is_some());
    assert_eq!(resolved.metrics.mtta_s, None, "nobody acknowledged it");
    assert_eq!(
        resolved.expires_at,
        resolved
            .resolution
            .as_ref()
            .map(|r| r.at.timestamp() + 30 * 86_400),
        "kept for the retention period, then left to the TTL"
    );
    let report = resolved.report.as_deref().unwrap_or("");
    assert!(
        report.contains(&id) && report.contains("Timeline"),
        "{report}"
    );
    assert_eq!(
        metrics.lines().len(),
        1,
        "one EMF line, even for two deliveries"
    );
    assert!(
        p.store
            .open_for_key(&resolved.dedupe_key)
            .await
            .expect("lookup")
            .is_none()
    );

    // Incident Resolved reaches notify, which announces it once.
    let to_notify = p.delivered("NotifyFunction").await;
    assert_eq!(to_notify.len(), 1, "{to_notify:?}");
    for _ in 0..2 {
        p.notify
            .handle(to_notify[0].as_bytes(), t1)
            .await
            .expect("notify");
    }

    // A queue subscribed to the topic saw exactly three messages.
    let messages = p.published(&p.stack.topic_arn).await;
    let events: Vec<&str> = messages
        .iter()
        .filter_map(|m| m.attributes.get("event").map(String::as_str))
        .collect();
    assert_eq!(events, ["opened", "enriched", "resolved"], "{messages:?}");
    assert!(
        messages[2].message.contains("MTTR"),
        "{}",
        messages[2].message
    );
    assert_eq!(p.incident(&id).await.notifications.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_signal_delivered_twice_and_concurrently_opens_one_incident_and_one_opened_event()
 {
    let p = Pipeline::new("dup").await;
    let event = fixture(ALARM);
    let now = Utc::now();
    let first = p.create.handle(&event, now).await.expect("create");
    assert_eq!(first["results"][0]["outcome"], "opened", "{first}");
    let id = first["results"][0]["incident"]
        .as_str()
        .unwrap_or("")
        .to_owned();

    let again = p.create.handle(&event, now).await.expect("create again");
    assert_eq!(again["results"][0]["outcome"], "duplicate", "{again}");
    let (a, b) = tokio::join!(p.create.handle(&event, now), p.create.handle(&event, now));
    for r in [a, b] {
        assert_eq!(
            r.expect("concurrent create")["results"][0]["outcome"],
            "duplicate"
        );
    }

    let incident = p.incident(&id).await;
    assert_eq!(incident.signals.count, 1);
    assert_eq!(
        incident.version, 2,
        "opened, then Incident Opened recorded as emitted"
    );
    let opened = p.delivered("EnrichFunction").await;
    assert_eq!(opened.len(), 1, "{opened:?}");
    let event = lifecycle::parse(opened[0].as_bytes()).expect("a lifecycle event");
    assert_eq!(event.kind, Kind::IncidentOpened);
    assert_eq!(event.detail.incident_id, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_signal_updates_the_open_incident_and_opens_nothing_new() {
    let p = Pipeline::new("repeat").await;
    let now = Utc::now();
    let first = p.create.handle(&fixture(ALARM), now).await.expect("create");
    let id = first["results"][0]["incident"]
        .as_str()
        .unwrap_or("")
        .to_owned();

    let repeat = shift(&fixture(ALARM), Duration::minutes(5));
    let r = p.create.handle(&repeat, now).await.expect("repeat");
    assert_eq!(r["results"][0]["outcome"], "repeated", "{r}");
    assert_eq!(r["results"][0]["incident"], id.as_str());
    // The same repeat again, and twice at once: counted once.
    p.create.handle(&repeat, now).await.expect("repeat again");
    let (a, b) = tokio::join!(p.create.handle(&repeat, now), p.create.handle(&repeat, now));
    a.expect("concurrent repeat");
    b.expect("concurrent repeat");

    let incident = p.incident(&id).await;
    assert_eq!(incident.signals.count, 2);
    assert!(incident.signals.last_seen > incident.signals.first_seen);
    assert_eq!(
        incident
            .timeline
            .iter()
            .filter(|e| e.event == "signal_repeated")
            .count(),
        1
    );
    assert_eq!(
        p.delivered("EnrichFunction").await.len(),
        1,
        "one Incident Opened only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_after_the_dedupe_window_opens_a_new_incident() {
    let p = Pipeline::new("window").await;
    let now = Utc::now();
    let first = p.create.handle(&fixture(ALARM), now).await.expect("create");
    let late = shift(&fixture(ALARM), Duration::days(3));
    let second = p.create.handle(&late, now).await.expect("create later");
    assert_eq!(second["results"][0]["outcome"], "opened", "{second}");
    assert_ne!(
        first["results"][0]["incident"],
        second["results"][0]["incident"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lifecycle_event_delivered_twice_and_concurrently_notifies_once() {
    let p = Pipeline::new("notify").await;
    let now = Utc::now();
    p.create.handle(&fixture(ALARM), now).await.expect("create");
    let opened = p.delivered("NotifyFunction").await;
    assert_eq!(opened.len(), 1);
    let event = opened[0].as_bytes();

    let sent = p.notify.handle(event, now).await.expect("notify");
    assert_eq!(sent["outcome"], "sent", "{sent}");
    let again = p.notify.handle(event, now).await.expect("notify again");
    assert_eq!(again["outcome"], "already_sent");
    let (a, b) = tokio::join!(p.notify.handle(event, now), p.notify.handle(event, now));
    for r in [a, b] {
        assert_eq!(r.expect("concurrent notify")["outcome"], "already_sent");
    }

    let messages = p.published(&p.stack.topic_arn).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let m = &messages[0];
    assert_eq!(
        m.attributes.get("event").map(String::as_str),
        Some("opened")
    );
    assert_eq!(m.attributes.get("status").map(String::as_str), Some("open"));
    assert!(m.attributes.contains_key("severity") && m.attributes.contains_key("playbook"));
    assert!(
        m.subject
            .as_deref()
            .is_some_and(|s| s.contains("Incident Opened"))
    );
    assert!(m.message.contains("Incident:"), "email text: {}", m.message);
    assert!(p.published(&p.stack.escalation_topic_arn).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_fresh_deliveries_racing_on_one_notification_publish_it_once() {
    let p = Pipeline::new("race").await;
    let now = Utc::now();
    p.create.handle(&fixture(ALARM), now).await.expect("create");
    let opened = p.delivered("NotifyFunction").await;
    let event = opened[0].as_bytes();
    let (a, b) = tokio::join!(p.notify.handle(event, now), p.notify.handle(event, now));
    // One publishes; the other either finds it sent or finds it claimed and fails so that the
    // platform retries it, and that retry finds it sent.
    let outcomes: Vec<String> = [a, b]
        .into_iter()
        .map(|r| match r {
            Ok(v) => v["outcome"].as_str().unwrap_or("?").to_owned(),
            Err(e) if e.transient() => "retry".to_owned(),
            Err(e) => format!("error: {e}"),
        })
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| *o == "sent").count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .all(|o| ["sent", "already_sent", "retry"].contains(&o.as_str()))
    );
    let retried = p.notify.handle(event, now).await.expect("retry");
    assert_eq!(retried["outcome"], "already_sent");
    assert_eq!(p.published(&p.stack.topic_arn).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_with_no_open_incident_asks_for_nothing() {
    let p = Pipeline::new("noop").await;
    let r = p
        .create
        .handle(
            &recovered(&fixture(ALARM), Duration::minutes(1)),
            Utc::now(),
        )
        .await
        .expect("create");
    assert_eq!(r["results"][0]["outcome"], "nothing_to_resolve", "{r}");
    assert!(p.delivered("CloseFunction").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_event_is_refused_with_its_reason_and_not_failed() {
    let p = Pipeline::new("bad").await;
    let r = p
        .create
        .handle(br#"{"detail-type": 5}"#, Utc::now())
        .await
        .expect("a refusal is not a failure");
    assert!(
        r["refused"]
            .as_str()
            .is_some_and(|s| s.contains("malformed")),
        "{r}"
    );
    let n = p.notify.handle(b"{}", Utc::now()).await.expect("refused");
    assert!(n["refused"].is_string(), "{n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incident_is_open_until_closed() {
    let p = Pipeline::new("status").await;
    let r = p
        .create
        .handle(&fixture(ALARM), Utc::now())
        .await
        .expect("create");
    let id = r["results"][0]["incident"].as_str().unwrap_or("");
    let incident = p.incident(id).await;
    assert_eq!(incident.status, Status::Open);
    assert!(
        incident.metrics.mttd_s.is_some(),
        "time to detect recorded at open"
    );
    let listed = p
        .store
        .list(Status::Open, 10)
        .await
        .expect("list by status");
    assert_eq!(listed.len(), 1);
    let _: Value = serde_json::to_value(&incident).expect("record serialises");
}
