//! The close stage against a local AWS (moto) over HTTP, on the stack template.yaml defines:
//! the incident table and the lifecycle bus are moto's, and what the stage puts on the bus is
//! read back from the queue that stands in for the function the template routes it to. Only
//! AWS Incident Manager, which moto does not implement, is stubbed (aws-smithy-mocks).
//!
//! The tests' clock starts when the fixture's alarm fired (`at(0)`); the incident opens 30 s
//! later, and the alarm's return to OK is the same event with its states swapped.
//!
//! - An all-clear: resolves the incident with its figures, report and retention TTL, releases
//!   its dedupe key and resource links, counts it once (one EMF line) and puts one
//!   `Incident Resolved`, however often and however concurrently it is delivered. It resolves
//!   as of the all-clear's own time, kept within the incident's life. A manual playbook only
//!   notes it, once; a firing alarm is not one; with no open incident there is nothing to do.
//! - A resolution request: taken or refused by the playbook's close rule and the actor.
//! - The sweep: auto-resolves quiet incidents, and finishes a tail that was cut short (as does
//!   a later delivery, but not a concurrent one).
//! - Incident Manager: resolved once; a throttle is retried, a refusal recorded, an outage
//!   left to the platform's retry.
//! - Bad input is refused, never retried.

mod support;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_ssmincidents::config::http::HttpResponse;
use aws_sdk_ssmincidents::config::retry::RetryConfig;
use aws_sdk_ssmincidents::operation::update_incident_record::{
    UpdateIncidentRecordInput, UpdateIncidentRecordOutput,
};
use aws_sdk_ssmincidents::types::IncidentRecordStatus;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use chrono::{DateTime, Duration, Utc};
use firebreak_close::{Close, IncidentManagerOutcome, MetricsSink, client_token};
use firebreak_shared::incident::{Incident, Status, incident_id};
use firebreak_shared::lifecycle::{Event, Kind};
use firebreak_shared::playbook::PlaybookSet;
use firebreak_shared::store::Opened;
use firebreak_shared::triage::decide;
use serde_json::{Value, json};
use support::{Pipeline, fixture, recovered};

const ALARM: &str = "cloudwatch-alarm/docs-composite-alarm-with-suppressor-ok-to-alarm.json";

/// Thirty days, as `FIREBREAK_RETENTION_DAYS=30` gives it.
const RETENTION_S: i64 = 30 * 86_400;

const ARN: &str = "arn:aws:ssm-incidents::123456789012:incident-record/firebreak-critical/6ebcc812-85f5-b7eb-8b2f-283e4EXAMPLE";

// ---------------------------------------------------------------------------------------------
// Events, playbooks and seeding

/// `s` seconds after the fixture's alarm fired.
fn at(s: i64) -> DateTime<Utc> {
    let fired = firebreak_shared::signal::parse(&fixture(ALARM), DateTime::UNIX_EPOCH)
        .expect("fixture parses")
        .remove(0)
        .observed_at;
    fired + Duration::seconds(s)
}

/// The alarm firing.
fn firing() -> Vec<u8> {
    fixture(ALARM)
}

/// The alarm back to OK, `s` seconds after it fired.
fn ok_after(s: i64) -> Vec<u8> {
    recovered(&fixture(ALARM), Duration::seconds(s))
}

fn scheduled() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "version": "0",
        "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2022-07-22T17:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/firebreak-AutoResolveSweep"],
        "detail": {}
    }))
    .expect("serialises")
}

/// A playbook for the fixture's alarm with the given `close:` section.
fn playbooks(close: &str) -> PlaybookSet {
    PlaybookSet::from_sources([(
        std::path::PathBuf::from("t.yaml"),
        format!(
            "name: t\npriority: 1\nmatch: {{sources: [cloudwatch_alarm]}}\nseverity: high\nclose: {close}\n"
        ),
    )])
    .unwrap_or_else(|e| panic!("test playbook is invalid: {e:?}"))
}

/// A playbook that closes on verified remediation, with the mutating step that requires.
fn verified() -> PlaybookSet {
    PlaybookSet::from_sources([(
        std::path::PathBuf::from("v.yaml"),
        "name: v\npriority: 1\nmatch: {sources: [cloudwatch_alarm]}\nremediate: [{action: ec2.reboot}]\nclose: {on: verified_remediation}\n"
            .to_owned(),
    )])
    .unwrap_or_else(|e| panic!("test playbook is invalid: {e:?}"))
}

/// Opens the incident the firing alarm makes under `set`, 30 s after it fired, as the create
/// stage would (dedupe lock, resource links, delivery marker in one transaction).
async fn open(p: &Pipeline, set: &PlaybookSet) -> Incident {
    open_with(p, set, |_| {}).await
}

/// [`open`], with the incident changed by `edit` first (another id, times, an engagement).
async fn open_with(p: &Pipeline, set: &PlaybookSet, edit: impl FnOnce(&mut Incident)) -> Incident {
    let signal = firebreak_shared::signal::parse(&firing(), at(30))
        .expect("fixture parses")
        .remove(0);
    let decision = decide(&signal, set);
    let mut incident = Incident::open(
        &decision,
        incident_id(&signal, &decision.dedupe_key),
        at(30),
    );
    edit(&mut incident);
    let opened = p
        .store
        .open(
            &incident,
            &format!("fp-{}", incident.id),
            4_000_000_000,
            None,
        )
        .await
        .expect("opens");
    assert_eq!(opened, Opened::New);
    incident
}

/// The close stage on the pipeline's table and bus under `set`, Incident Manager on `im` (or
/// disabled), keeping its metric lines in memory.
fn stage(
    p: &Pipeline,
    set: PlaybookSet,
    im: Option<aws_sdk_ssmincidents::Client>,
) -> (Close, MetricsSink) {
    let sink = MetricsSink::memory();
    let close = Close::from_parts(
        p.store.clone(),
        p.bus.clone(),
        im,
        set,
        RETENTION_S,
        sink.clone(),
    );
    (close, sink)
}

/// A resolution request by `actor`, made at `made`, put on the lifecycle bus and taken from the
/// queue the template routes it to, as the close function would receive it.
async fn request(p: &Pipeline, incident: &Incident, actor: &str, made: DateTime<Utc>) -> Vec<u8> {
    let event = Event::about(
        Kind::ResolutionRequested,
        incident,
        Some(actor),
        made,
        Some("verified by hand".to_owned()),
    )
    .with_actor(actor);
    p.bus.put(&event).await.expect("puts");
    let mut delivered = p.delivered("CloseFunction").await;
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    delivered.remove(0).into_bytes()
}

// ---------------------------------------------------------------------------------------------
// Reading back

fn results(out: &Value) -> &Vec<Value> {
    out["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {out}"))
}

/// The `Incident Resolved` events the notify function's rule received since last asked.
async fn resolved_events(p: &Pipeline) -> Vec<Value> {
    p.delivered("NotifyFunction")
        .await
        .iter()
        .filter_map(|body| serde_json::from_str::<Value>(body).ok())
        .filter(|e| e["detail-type"] == "Incident Resolved")
        .collect()
}

/// The raw TTL attribute of the incident's item.
async fn ttl(p: &Pipeline, id: &str) -> Option<i64> {
    let out = aws_sdk_dynamodb::Client::new(&p.sdk)
        .get_item()
        .table_name(&p.stack.table)
        .key("pk", AttributeValue::S(format!("incident#{id}")))
        .key("sk", AttributeValue::S("incident".to_owned()))
        .send()
        .await
        .expect("reads");
    out.item()
        .and_then(|i| i.get("expires_at"))
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

fn resolved_at(incident: &Incident) -> DateTime<Utc> {
    incident
        .resolution
        .as_ref()
        .map(|r| r.at)
        .unwrap_or_else(|| panic!("{} has no resolution", incident.id))
}

/// Resolves the incident in the store the way the stage does, then stops: an invocation that
/// died between the transition and its tail.
async fn resolve_without_tail(p: &Pipeline, id: &str, by: &str, when: DateTime<Utc>) {
    let mut i = p.incident(id).await;
    let prev = (i.version, i.status);
    i.resolve(by, "alarm back to OK", when, RETENTION_S)
        .expect("open");
    i.version += 1;
    assert!(p.store.close(&i, prev).await.expect("closes"));
}

// ---------------------------------------------------------------------------------------------
// A source's all-clear

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_back_to_ok_resolves_its_incident_with_figures_report_and_retention() {
    let p = Pipeline::new("close-ok").await;
    let set = playbooks("{on: alarm_ok}");
    let incident = open(&p, &set).await;
    assert_eq!(
        ttl(&p, &incident.id).await,
        None,
        "open incidents never expire"
    );
    let (close, sink) = stage(&p, set, None);

    let out = close
        .handle(&ok_after(600), at(605))
        .await
        .expect("handled");

    let r = &results(&out)[0];
    assert_eq!(r["outcome"], "resolved", "{out}");
    assert_eq!(r["transitioned"], true);
    assert_eq!(r["emitted"], true);
    let i = p.incident(&incident.id).await;
    assert_eq!(i.status, Status::Resolved);
    assert_eq!(i.metrics.mttd_s, Some(30.0));
    assert_eq!(i.metrics.mttr_s, Some(600.0));
    assert_eq!(i.metrics.mtta_s, None, "nobody acknowledged it");
    assert_eq!(i.expires_at, Some(at(600).timestamp() + RETENTION_S));
    assert_eq!(ttl(&p, &incident.id).await, i.expires_at);
    let report = i.report.as_deref().expect("a report");
    assert!(
        report.contains("| MTTR (time to resolve) | 10m 0s (600 s) |"),
        "{report}"
    );
    assert!(report.contains("## Follow-ups"), "{report}");
    assert_eq!(
        p.store
            .open_for_key(&incident.dedupe_key)
            .await
            .expect("reads"),
        None,
        "the dedupe key is released"
    );
    assert!(!incident.resources.is_empty());
    for resource in &incident.resources {
        assert!(
            p.store
                .open_on_resource(&resource.id)
                .await
                .expect("reads")
                .is_empty(),
            "the link to {} is released",
            resource.id
        );
    }
    let lines = sink.lines();
    assert_eq!(lines.len(), 1);
    let emf: Value = serde_json::from_str(&lines[0]).expect("EMF is JSON");
    assert_eq!(emf["MTTR"], 600.0);
    let events = resolved_events(&p).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["detail"]["incident_id"], incident.id.as_str());
    assert_eq!(events[0]["detail"]["status"], "resolved");
    assert_eq!(events[0]["detail"]["actor"], "close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_all_clear_that_arrives_late_resolves_as_of_the_time_the_source_gave_it() {
    let p = Pipeline::new("close-late").await;
    let set = playbooks("{on: alarm_ok}");
    let incident = open(&p, &set).await;
    let (close, sink) = stage(&p, set, None);
    // The OK came ten minutes after the ALARM; the stage got it an hour later (a retry).
    let processed = at(600 + 3_600);

    close
        .handle(&ok_after(600), processed)
        .await
        .expect("handled");

    let i = p.incident(&incident.id).await;
    assert_eq!(resolved_at(&i), at(600));
    assert_eq!(i.metrics.mttr_s, Some(600.0), "first signal → the OK");
    assert_eq!(
        i.expires_at,
        Some(at(600).timestamp() + RETENTION_S),
        "the retention runs from the resolution"
    );
    let recorded = i.timeline.iter().rev().find(|e| e.event == "resolved");
    assert_eq!(
        recorded.map(|e| e.at),
        Some(processed),
        "the timeline says when the stage recorded it"
    );
    let emf: Value = serde_json::from_str(&sink.lines()[0]).expect("EMF is JSON");
    assert_eq!(emf["MTTR"], 600.0);
    assert_eq!(emf["_aws"]["Timestamp"], at(600).timestamp_millis());
    let events = resolved_events(&p).await;
    assert_eq!(events.len(), 1);
    let when: DateTime<Utc> =
        serde_json::from_value(events[0]["detail"]["at"].clone()).expect("an RFC 3339 time");
    assert_eq!(when, at(600), "Incident Resolved says when it happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_all_clear_stamped_outside_the_incidents_life_resolves_within_it() {
    let p = Pipeline::new("close-clamp").await;
    let set = playbooks("{on: alarm_ok}");
    let (close, _) = stage(&p, set.clone(), None);

    // An OK stamped before the incident's first signal: resolved as it began, MTTR zero.
    let early = open_with(&p, &set, |i| {
        i.signals.first_seen = at(900);
        i.signals.last_seen = at(900);
    })
    .await;
    close
        .handle(&ok_after(600), at(1_000))
        .await
        .expect("handled");
    let i = p.incident(&early.id).await;
    assert_eq!(resolved_at(&i), at(900), "never before it began");
    assert_eq!(i.metrics.mttr_s, Some(0.0));

    // An OK stamped ahead of the stage's clock: resolved now, never in the future. (The first
    // resolution released the dedupe key, so the alarm can open a second incident.)
    let ahead = open_with(&p, &set, |i| i.id = format!("{}-ahead", i.id)).await;
    close
        .handle(&ok_after(600), at(300))
        .await
        .expect("handled");
    let i = p.incident(&ahead.id).await;
    assert_eq!(resolved_at(&i), at(300), "never in the future");
    assert_eq!(i.metrics.mttr_s, Some(300.0));
    assert_eq!(i.expires_at, Some(at(300).timestamp() + RETENTION_S));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_all_clear_twice_resolves_counts_and_emits_once() {
    let p = Pipeline::new("close-twice").await;
    let set = playbooks("{on: alarm_ok}");
    let incident = open(&p, &set).await;
    let (close, sink) = stage(&p, set, None);

    close.handle(&ok_after(600), at(605)).await.expect("first");
    let again = close.handle(&ok_after(600), at(606)).await.expect("second");

    assert_eq!(results(&again)[0]["outcome"], "skipped", "{again}");
    let i = p.incident(&incident.id).await;
    assert_eq!(i.status, Status::Resolved);
    assert_eq!(
        i.timeline.iter().filter(|e| e.event == "resolved").count(),
        1
    );
    assert_eq!(sink.lines().len(), 1);
    assert_eq!(resolved_events(&p).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_all_clear_delivered_twice_at_once_resolves_counts_and_emits_once() {
    let p = Pipeline::new("close-race").await;
    let set = playbooks("{on: alarm_ok}");
    // Two worker threads race for real; a few rounds give the interleavings a chance. Each
    // round's resolution releases the dedupe key, so the alarm opens the next round's
    // incident. The OK is processed two minutes after the source gave it: the settle window
    // runs from when the stage resolved the incident, not from the resolution time.
    for round in 0..4 {
        let incident = open_with(&p, &set, |i| i.id = format!("{}-{round}", i.id)).await;
        let (close, sink) = stage(&p, set.clone(), None);
        let close = Arc::new(close);
        let deliver = |close: Arc<Close>| {
            tokio::spawn(async move { close.handle(&ok_after(600), at(720)).await })
        };

        let (a, b) = tokio::join!(deliver(close.clone()), deliver(close.clone()));

        let a = a.expect("joins").expect("first delivery");
        let b = b.expect("joins").expect("second delivery");
        let transitions = [&a, &b]
            .iter()
            .filter(|o| o["results"][0]["transitioned"] == true)
            .count();
        assert_eq!(transitions, 1, "round {round}:\n{a}\n{b}");
        let i = p.incident(&incident.id).await;
        assert_eq!(i.status, Status::Resolved);
        assert_eq!(resolved_at(&i), at(600));
        assert_eq!(sink.lines().len(), 1, "round {round}");
        assert_eq!(resolved_events(&p).await.len(), 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_playbook_notes_the_all_clear_once_and_stays_open() {
    let p = Pipeline::new("close-manual").await;
    let set = playbooks("{on: manual}");
    let incident = open(&p, &set).await;
    let (close, sink) = stage(&p, set, None);

    let out = close
        .handle(&ok_after(600), at(605))
        .await
        .expect("handled");
    // The alarm flaps: fires and recovers again.
    close
        .handle(&ok_after(900), at(905))
        .await
        .expect("flapped");

    assert_eq!(results(&out)[0]["outcome"], "noted", "{out}");
    assert_eq!(results(&out)[0]["close_on"], "manual");
    let i = p.incident(&incident.id).await;
    assert_eq!(i.status, Status::Open);
    assert_eq!(
        i.timeline.iter().filter(|e| e.event == "all_clear").count(),
        1
    );
    assert_eq!(
        p.store
            .open_for_key(&incident.dedupe_key)
            .await
            .expect("reads"),
        Some(incident.id.clone()),
        "the dedupe key is still held"
    );
    assert!(sink.lines().is_empty());
    assert!(p.delivered("NotifyFunction").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_remediation_closes_on_the_sources_all_clear() {
    let p = Pipeline::new("close-verified-ok").await;
    let set = verified();
    let incident = open(&p, &set).await;
    let (close, _) = stage(&p, set, None);

    let out = close
        .handle(&ok_after(600), at(605))
        .await
        .expect("handled");

    assert_eq!(results(&out)[0]["outcome"], "resolved", "{out}");
    assert_eq!(resolved_at(&p.incident(&incident.id).await), at(600));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_firing_is_not_an_all_clear() {
    let p = Pipeline::new("close-firing").await;
    let set = playbooks("{on: alarm_ok}");
    let incident = open(&p, &set).await;
    let (close, _) = stage(&p, set, None);

    let out = close.handle(&firing(), at(600)).await.expect("handled");

    assert_eq!(results(&out)[0]["outcome"], "skipped", "{out}");
    assert_eq!(p.incident(&incident.id).await.status, Status::Open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_all_clear_with_no_open_incident_is_skipped() {
    let p = Pipeline::new("close-none").await;
    let (close, sink) = stage(&p, playbooks("{on: alarm_ok}"), None);

    let out = close
        .handle(&ok_after(600), at(605))
        .await
        .expect("handled");

    assert_eq!(results(&out)[0]["outcome"], "skipped", "{out}");
    assert!(sink.lines().is_empty());
    assert!(p.delivered("NotifyFunction").await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Resolution requests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_remediation_takes_a_request_from_remediate_but_not_from_create() {
    let p = Pipeline::new("close-verified-req").await;
    let set = verified();
    let incident = open(&p, &set).await;
    let (close, _) = stage(&p, set, None);

    let refused = close
        .handle(&request(&p, &incident, "create", at(60)).await, at(60))
        .await
        .expect("refusals are not retried");
    assert_eq!(results(&refused)[0]["outcome"], "refused", "{refused}");
    assert_eq!(p.incident(&incident.id).await.status, Status::Open);

    let out = close
        .handle(&request(&p, &incident, "remediate", at(100)).await, at(120))
        .await
        .expect("handled");
    let r = &results(&out)[0];
    assert_eq!(r["outcome"], "resolved", "{out}");
    assert_eq!(r["resolution"]["by"], "remediate");
    assert_eq!(r["resolution"]["reason"], "verified by hand");
    let i = p.incident(&incident.id).await;
    assert_eq!(
        resolved_at(&i),
        at(120),
        "resolved when the stage took the request"
    );
    assert_eq!(i.metrics.mttr_s, Some(120.0));
    let events = resolved_events(&p).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["detail"]["actor"], "remediate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_resolves_a_manual_incident_and_automation_cannot() {
    let p = Pipeline::new("close-person").await;
    let set = playbooks("{on: manual}");
    let incident = open(&p, &set).await;
    let (close, _) = stage(&p, set, None);

    let refused = close
        .handle(&request(&p, &incident, "remediate", at(60)).await, at(60))
        .await
        .expect("handled");
    assert_eq!(results(&refused)[0]["outcome"], "refused", "{refused}");
    assert_eq!(p.incident(&incident.id).await.status, Status::Open);

    let out = close
        .handle(&request(&p, &incident, "cli:alice", at(100)).await, at(120))
        .await
        .expect("handled");
    assert_eq!(results(&out)[0]["outcome"], "resolved", "{out}");
    let i = p.incident(&incident.id).await;
    assert_eq!(
        i.resolution.as_ref().map(|r| r.by.as_str()),
        Some("cli:alice")
    );
    assert_eq!(
        resolved_at(&i),
        at(120),
        "resolved when the stage took the request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_all_clear_create_relays_resolves_as_of_the_requests_time() {
    let p = Pipeline::new("close-relay").await;
    let set = playbooks("{on: alarm_ok}");
    let incident = open(&p, &set).await;
    let (close, _) = stage(&p, set, None);

    let out = close
        .handle(&request(&p, &incident, "create", at(600)).await, at(700))
        .await
        .expect("handled");

    assert_eq!(results(&out)[0]["outcome"], "resolved", "{out}");
    let i = p.incident(&incident.id).await;
    assert_eq!(resolved_at(&i), at(600));
    assert_eq!(i.metrics.mttr_s, Some(600.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolving_in_process_twice_changes_nothing_the_second_time() {
    let p = Pipeline::new("close-inproc").await;
    let set = playbooks("{on: manual}");
    let incident = open(&p, &set).await;
    let (close, sink) = stage(&p, set, None);

    let first = close
        .resolve(&incident.id, "cli:alice", "rotated the keys", at(600))
        .await
        .expect("resolves");
    let second = close
        .resolve(&incident.id, "cli:bob", "me too", at(900))
        .await
        .expect("no-op");

    assert!(first.transitioned && first.emitted);
    assert_eq!(first.resolution.at, at(600), "a person resolves it now");
    assert!(!second.transitioned && !second.emitted);
    assert_eq!(second.resolution.by, "cli:alice");
    assert_eq!(sink.lines().len(), 1);
    assert_eq!(resolved_events(&p).await.len(), 1);
    let err = close
        .resolve("INC-nope", "cli:alice", "x", at(900))
        .await
        .expect_err("no such incident");
    assert!(!err.transient());
}

// ---------------------------------------------------------------------------------------------
// The sweep and cut-short tails

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_auto_resolves_a_quiet_incident_and_leaves_a_recent_one() {
    let p = Pipeline::new("close-sweep").await;
    let set = playbooks("{on: alarm_ok, auto_resolve_after: 1h}");
    let quiet = open(&p, &set).await;
    let recent = open_with(&p, &set, |i| {
        i.id = format!("{}-b", i.id);
        i.dedupe_key = format!("{}-b", i.dedupe_key);
        i.signals.last_seen = at(3_000);
    })
    .await;
    let (close, sink) = stage(&p, set, None);

    let out = close.handle(&scheduled(), at(3_700)).await.expect("swept");

    let resolved: Vec<&Value> = results(&out)
        .iter()
        .filter(|r| r["outcome"] == "resolved")
        .collect();
    assert_eq!(resolved.len(), 1, "{out}");
    assert_eq!(resolved[0]["incident_id"], quiet.id.as_str());
    let q = p.incident(&quiet.id).await;
    assert_eq!(q.status, Status::Resolved);
    assert_eq!(resolved_at(&q), at(3_700), "the sweep resolves it now");
    let reason = q.resolution.map(|r| r.reason).unwrap_or_default();
    assert!(
        reason.starts_with("auto-resolved: no signal for 1h 1m"),
        "{reason}"
    );
    assert_eq!(p.incident(&recent.id).await.status, Status::Open);
    assert_eq!(sink.lines().len(), 1);
    let events = resolved_events(&p).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["detail"]["incident_id"], quiet.id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_leaves_an_incident_whose_playbook_sets_no_auto_resolve() {
    let p = Pipeline::new("close-noauto").await;
    let set = playbooks("{on: alarm_ok}");
    let incident = open(&p, &set).await;
    let (close, _) = stage(&p, set, None);

    close
        .handle(&scheduled(), at(30 * 86_400))
        .await
        .expect("swept");

    assert_eq!(p.incident(&incident.id).await.status, Status::Open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_cut_short_is_finished_by_a_later_delivery_not_a_concurrent_one() {
    let p = Pipeline::new("close-tail").await;
    let set = playbooks("{on: alarm_ok}");
    let incident = open(&p, &set).await;
    let (close, _) = stage(&p, set, None);
    resolve_without_tail(&p, &incident.id, "close", at(600)).await;

    // A duplicate inside the settle window leaves the tail to the invocation finishing it.
    let early = close
        .handle(&ok_after(600), at(605))
        .await
        .expect("handled");
    assert_eq!(results(&early)[0]["outcome"], "skipped", "{early}");
    assert!(resolved_events(&p).await.is_empty());

    // The platform's retry a minute later finishes it, though the dedupe key is gone.
    let retry = close
        .handle(&ok_after(600), at(660))
        .await
        .expect("handled");
    let r = &results(&retry)[0];
    assert_eq!(r["outcome"], "resolved", "{retry}");
    assert_eq!(r["transitioned"], false);
    assert_eq!(r["emitted"], true);
    assert_eq!(resolved_events(&p).await.len(), 1);

    // And the sweep finds nothing left to finish.
    close.handle(&scheduled(), at(900)).await.expect("swept");
    assert!(resolved_events(&p).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_finishes_a_tail_cut_short() {
    let p = Pipeline::new("close-heal").await;
    let set = playbooks("{on: manual}");
    let incident = open(&p, &set).await;
    let (close, _) = stage(&p, set, None);
    resolve_without_tail(&p, &incident.id, "cli:bob", at(600)).await;

    close.handle(&scheduled(), at(700)).await.expect("swept");

    let events = resolved_events(&p).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["detail"]["actor"], "cli:bob");
}

// ---------------------------------------------------------------------------------------------
// Incident Manager, stubbed: `POST /updateIncidentRecord` with `arn`, `status` (`OPEN` |
// `RESOLVED`) and `clientToken`; errors are `AccessDeniedException` (403), `ConflictException`
// (409), `InternalServerException` (500), `ResourceNotFoundException` (404),
// `ThrottlingException` (429) and `ValidationException` (400), named by `x-amzn-ErrorType`.

/// An error as Incident Manager sends it: restJson1, the type in `x-amzn-ErrorType`.
fn im_error(status: u16, kind: &'static str, body: &'static str) -> HttpResponse {
    let mut response = HttpResponse::new(status.try_into().expect("a valid status"), body.into());
    response.headers_mut().insert("x-amzn-ErrorType", kind);
    response
        .headers_mut()
        .insert("content-type", "application/json");
    response
}

fn throttled() -> HttpResponse {
    im_error(
        429,
        "ThrottlingException",
        r#"{"message":"Rate exceeded","serviceCode":"ssm-incidents","quotaCode":"L-1"}"#,
    )
}

fn not_found() -> HttpResponse {
    im_error(
        404,
        "ResourceNotFoundException",
        r#"{"message":"Incident record not found","resourceType":"INCIDENT_RECORD"}"#,
    )
}

/// An Incident Manager client on `rules`, retrying as in production but without the backoff.
fn incident_manager(rules: &[&Rule]) -> aws_sdk_ssmincidents::Client {
    mock_client!(aws_sdk_ssmincidents, RuleMode::Sequential, rules, |c| c
        .retry_config(
            RetryConfig::standard().with_initial_backoff(StdDuration::from_millis(1))
        ))
}

/// Only a well-formed resolve of this incident matches: any other request fails the test.
fn is_our_resolve(
    incident: &Incident,
) -> impl Fn(&UpdateIncidentRecordInput) -> bool + Send + Sync + 'static {
    let token = client_token(&incident.id);
    move |req| {
        req.arn() == Some(ARN)
            && req.status() == Some(&IncidentRecordStatus::Resolved)
            && req.client_token() == Some(token.as_str())
    }
}

fn resolved_ok() -> UpdateIncidentRecordOutput {
    UpdateIncidentRecordOutput::builder().build()
}

/// An incident for which Incident Manager was engaged.
async fn engaged(p: &Pipeline) -> Incident {
    open_with(p, &playbooks("{on: alarm_ok}"), |i| {
        i.engagements.incident_manager_arn = Some(ARN.to_owned());
    })
    .await
}

/// What the timeline says Incident Manager answered: `(outcome, detail)`.
fn im_entries(incident: &Incident) -> Vec<(String, String)> {
    incident
        .timeline
        .iter()
        .filter(|e| e.event == "incident_manager_resolved")
        .map(|e| (e.outcome.clone(), e.detail.clone().unwrap_or_default()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolving_an_engaged_incident_resolves_its_incident_manager_record_once() {
    let p = Pipeline::new("close-im").await;
    let incident = engaged(&p).await;
    let rule = mock!(aws_sdk_ssmincidents::Client::update_incident_record)
        .match_requests(is_our_resolve(&incident))
        .then_output(resolved_ok);
    let (close, sink) = stage(
        &p,
        playbooks("{on: alarm_ok}"),
        Some(incident_manager(&[&rule])),
    );

    let out = close
        .handle(&ok_after(600), at(605))
        .await
        .expect("handled");
    close
        .handle(&ok_after(600), at(700))
        .await
        .expect("redelivered");

    let r = &results(&out)[0];
    assert_eq!(r["outcome"], "resolved", "{out}");
    assert_eq!(r["incident_manager"]["status"], "resolved");
    assert_eq!(rule.num_calls(), 1);
    let i = p.incident(&incident.id).await;
    assert_eq!(
        im_entries(&i),
        [("ok".to_owned(), format!("resolved {ARN}"))]
    );
    let report = i.report.expect("a report");
    assert!(report.contains("(resolved there)"), "{report}");
    assert_eq!(resolved_events(&p).await.len(), 1);
    assert_eq!(sink.lines().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_incident_manager_update_is_retried_and_then_succeeds() {
    let p = Pipeline::new("close-im-throttle").await;
    let incident = engaged(&p).await;
    let rule = mock!(aws_sdk_ssmincidents::Client::update_incident_record)
        .match_requests(is_our_resolve(&incident))
        .sequence()
        .http_response(throttled)
        .output(resolved_ok)
        .build();
    let (close, _) = stage(
        &p,
        playbooks("{on: alarm_ok}"),
        Some(incident_manager(&[&rule])),
    );

    let r = close
        .resolve(&incident.id, "close", "alarm back to OK", at(600))
        .await
        .expect("the SDK's retry absorbs one throttle");

    assert_eq!(rule.num_calls(), 2);
    assert_eq!(r.incident_manager, IncidentManagerOutcome::Resolved);
    assert!(r.emitted);
    assert_eq!(resolved_events(&p).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_incident_manager_refusal_is_recorded_and_the_stage_still_emits() {
    let p = Pipeline::new("close-im-404").await;
    let incident = engaged(&p).await;
    let rule = mock!(aws_sdk_ssmincidents::Client::update_incident_record)
        .match_requests(is_our_resolve(&incident))
        .then_http_response(not_found);
    let (close, sink) = stage(
        &p,
        playbooks("{on: alarm_ok}"),
        Some(incident_manager(&[&rule])),
    );

    let r = close
        .resolve(&incident.id, "close", "alarm back to OK", at(600))
        .await
        .expect("a permanent refusal does not fail the stage");

    assert_eq!(rule.num_calls(), 1, "a 404 is not retried");
    let IncidentManagerOutcome::Failed { error } = &r.incident_manager else {
        panic!("expected a failure, got {:?}", r.incident_manager);
    };
    assert!(error.contains("ResourceNotFoundException"), "{error}");
    assert!(r.emitted);
    assert_eq!(resolved_events(&p).await.len(), 1);
    assert_eq!(sink.lines().len(), 1);
    let i = p.incident(&incident.id).await;
    let entries = im_entries(&i);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].0, "failed");
    let report = i.report.expect("a report");
    assert!(
        report.contains("- [ ] Resolve the incident in AWS Incident Manager by hand"),
        "{report}"
    );

    // A redelivery does not ask again: the outcome is on record.
    let again = close
        .resolve(&incident.id, "close", "alarm back to OK", at(700))
        .await
        .expect("redelivery");
    assert!(!again.transitioned);
    assert_eq!(
        again.incident_manager,
        IncidentManagerOutcome::AlreadyRecorded
    );
    assert_eq!(rule.num_calls(), 1);
    assert!(resolved_events(&p).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_manager_outage_fails_the_invocation_and_the_retry_finishes_the_tail() {
    let p = Pipeline::new("close-im-down").await;
    let incident = engaged(&p).await;
    let down = mock!(aws_sdk_ssmincidents::Client::update_incident_record)
        .sequence()
        .http_response(throttled)
        .repeatedly()
        .build();
    let (close, sink) = stage(
        &p,
        playbooks("{on: alarm_ok}"),
        Some(incident_manager(&[&down])),
    );

    let err = close
        .handle(&ok_after(600), at(605))
        .await
        .expect_err("Incident Manager stays throttled");
    assert!(err.transient(), "{err}");
    assert_eq!(down.num_calls(), 3, "the SDK tried three times");
    // The resolution itself landed, and was counted once; nothing was emitted yet.
    let i = p.incident(&incident.id).await;
    assert_eq!(i.status, Status::Resolved);
    assert!(im_entries(&i).is_empty());
    assert!(resolved_events(&p).await.is_empty());
    assert_eq!(sink.lines().len(), 1);

    // The platform's retry, a minute later, finds Incident Manager back.
    let up = mock!(aws_sdk_ssmincidents::Client::update_incident_record)
        .match_requests(is_our_resolve(&incident))
        .then_output(resolved_ok);
    let (retry, retry_sink) = stage(
        &p,
        playbooks("{on: alarm_ok}"),
        Some(incident_manager(&[&up])),
    );
    let out = retry
        .handle(&ok_after(600), at(665))
        .await
        .expect("the retry finishes");
    let r = &results(&out)[0];
    assert_eq!(r["outcome"], "resolved", "{out}");
    assert_eq!(r["transitioned"], false);
    assert_eq!(r["incident_manager"]["status"], "resolved");
    assert_eq!(r["emitted"], true);
    assert_eq!(up.num_calls(), 1);
    assert_eq!(resolved_events(&p).await.len(), 1);
    assert!(
        retry_sink.lines().is_empty(),
        "the retry does not count it again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_incident_manager_disabled_the_record_is_left_alone() {
    let p = Pipeline::new("close-im-off").await;
    let incident = engaged(&p).await;
    let (close, _) = stage(&p, playbooks("{on: alarm_ok}"), None);

    let r = close
        .resolve(&incident.id, "close", "alarm back to OK", at(600))
        .await
        .expect("resolves");

    assert_eq!(r.incident_manager, IncidentManagerOutcome::Disabled);
    assert!(r.emitted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_never_engaged_makes_no_incident_manager_call() {
    let p = Pipeline::new("close-im-none").await;
    let set = playbooks("{on: alarm_ok}");
    let incident = open(&p, &set).await;
    let rule = mock!(aws_sdk_ssmincidents::Client::update_incident_record).then_output(resolved_ok);
    let (close, _) = stage(&p, set, Some(incident_manager(&[&rule])));

    let r = close
        .resolve(&incident.id, "close", "alarm back to OK", at(600))
        .await
        .expect("resolves");

    assert_eq!(r.incident_manager, IncidentManagerOutcome::NotEngaged);
    assert_eq!(rule.num_calls(), 0);
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_and_unknown_input_is_refused_or_skipped_without_a_retry() {
    let p = Pipeline::new("close-bad").await;
    let set = playbooks("{on: alarm_ok}");
    let (close, _) = stage(&p, set.clone(), None);

    for bad in [
        &b"not json"[..],
        b"[]",
        br#"{"source":"aws.s3","detail-type":"Object Created","detail":{}}"#,
    ] {
        let out = close.handle(bad, at(0)).await.expect("refused, not failed");
        assert!(out["refused"].is_string(), "{out}");
    }

    // A request for an incident that does not exist.
    let signal = firebreak_shared::signal::parse(&firing(), at(30))
        .expect("fixture parses")
        .remove(0);
    let decision = decide(&signal, &set);
    let ghost = Incident::open(&decision, "INC-ghost".to_owned(), at(30));
    let out = close
        .handle(&request(&p, &ghost, "cli:alice", at(60)).await, at(60))
        .await
        .expect("handled");
    assert_eq!(results(&out)[0]["outcome"], "refused", "{out}");

    // A lifecycle event that is not for the close stage.
    let other = serde_json::to_vec(&json!({
        "source": "firebreak", "detail-type": "Incident Opened",
        "detail": Event::about(Kind::IncidentOpened, &ghost, None, at(30), None).detail,
    }))
    .expect("serialises");
    let out = close.handle(&other, at(60)).await.expect("handled");
    assert_eq!(results(&out)[0]["outcome"], "skipped", "{out}");
}
