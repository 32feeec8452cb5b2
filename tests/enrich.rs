//! The enrich stage against a local AWS (moto) over HTTP, on the stack template.yaml defines.
//!
//! What moto can serve is proved here end to end: an `Incident Opened` event as the bus
//! delivers it, the instance context of a real (moto) instance in a VPC, related incidents
//! through the table's resource links, the record written once, and `Incident Enriched`
//! reaching the stages that listen for it once. The CloudWatch and CloudTrail enrichers are
//! proved against stubs in `functions/enrich/tests/`: moto cannot serve their protocol.

use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use firebreak_cli::sandbox::{LocalAws, Stack};
use firebreak_cli::seed::{self, HostSpec};
use firebreak_enrich::Enrich;
use firebreak_shared::incident::{Incident, fingerprint, incident_id};
use firebreak_shared::lifecycle::{Bus, Event, Kind};
use firebreak_shared::playbook::PlaybookSet;
use firebreak_shared::signal::{Resource, ResourceKind};
use firebreak_shared::store::{Opened, Store, marker_expiry};
use firebreak_shared::triage::decide;
use serde_json::Value;

const ALARM_EVENT: &[u8] =
    include_bytes!("fixtures/events/cloudwatch-alarm/docs-single-metric-alarm-ok-to-alarm.json");

fn now() -> DateTime<Utc> {
    Utc::now()
}

/// The local AWS and a fresh stack named `prefix`.
async fn sandbox(prefix: &str) -> (SdkConfig, Stack) {
    let aws = LocalAws::shared().unwrap_or_else(|e| panic!("{e}"));
    let sdk = aws.sdk_config().await;
    let stack = Stack::create(&sdk, prefix)
        .await
        .unwrap_or_else(|e| panic!("stack {prefix}: {e}"));
    (sdk, stack)
}

fn store(sdk: &SdkConfig, stack: &Stack) -> Store {
    Store::new(aws_sdk_dynamodb::Client::new(sdk), &stack.table)
}

fn bus(sdk: &SdkConfig, stack: &Stack) -> Bus {
    Bus::new(aws_sdk_eventbridge::Client::new(sdk), &stack.bus)
}

fn playbooks(enrich: &str) -> PlaybookSet {
    PlaybookSet::from_sources([(
        std::path::PathBuf::from("t.yaml"),
        format!(
            "name: t\npriority: 1\nmatch: {{sources: [cloudwatch_alarm]}}\nenrich: [{enrich}]\n"
        ),
    )])
    .expect("a valid playbook")
}

/// The stage as its main.rs builds it, on the sandbox's clients.
fn stage(sdk: &SdkConfig, stack: &Stack, set: PlaybookSet) -> Enrich {
    Enrich::new(
        store(sdk, stack),
        bus(sdk, stack),
        aws_sdk_cloudwatch::Client::new(sdk),
        aws_sdk_ec2::Client::new(sdk),
        aws_sdk_cloudtrail::Client::new(sdk),
        set,
    )
}

/// Opens an incident from the alarm fixture on `resources`, as the create stage would, and
/// returns it. `salt` keeps incidents of one test apart (their dedupe keys and ids).
async fn open(store: &Store, set: &PlaybookSet, resources: &[&str], salt: &str) -> Incident {
    let signal = firebreak_shared::signal::parse(ALARM_EVENT, now())
        .expect("fixture parses")
        .remove(0);
    let decision = decide(&signal, set);
    let mut incident = Incident::open(&decision, incident_id(&signal, salt), now());
    incident.dedupe_key = format!("{}#{salt}", incident.dedupe_key);
    incident.resources = resources
        .iter()
        .map(|id| Resource {
            kind: ResourceKind::Ec2Instance,
            id: (*id).to_owned(),
        })
        .collect();
    let expiry = marker_expiry(signal.observed_at, 3600);
    let fp = format!("{}-{salt}", fingerprint(&signal));
    let opened = store
        .open(&incident, &fp, expiry, None)
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    assert_eq!(opened, Opened::New);
    incident
}

/// Puts `Incident Opened` on the bus and returns it as EventBridge delivers it to the enrich
/// stage: the bytes the function would receive.
async fn opened_event(sdk: &SdkConfig, stack: &Stack, incident: &Incident) -> String {
    let event = Event::about(Kind::IncidentOpened, incident, None, now(), None);
    bus(sdk, stack)
        .put(&event)
        .await
        .unwrap_or_else(|e| panic!("put: {e}"));
    let mut delivered = stack
        .drain(sdk, "EnrichFunction")
        .await
        .unwrap_or_else(|e| panic!("drain: {e}"));
    assert_eq!(
        delivered.len(),
        1,
        "the enrich rule delivers Incident Opened: {delivered:?}"
    );
    delivered.remove(0)
}

/// `Incident Enriched` events about `incident_id` that reached `function`'s queue.
async fn enriched_events(
    sdk: &SdkConfig,
    stack: &Stack,
    function: &str,
    incident_id: &str,
) -> usize {
    stack
        .drain(sdk, function)
        .await
        .unwrap_or_else(|e| panic!("drain: {e}"))
        .iter()
        .filter_map(|body| serde_json::from_str::<Value>(body).ok())
        .filter(|e| {
            e["detail-type"] == "Incident Enriched" && e["detail"]["incident_id"] == incident_id
        })
        .count()
}

/// An instance in its own VPC, subnet and security group, tagged with an owner and a team.
async fn instance(sdk: &SdkConfig) -> (String, String, String, String) {
    let spec = HostSpec {
        name: "web-1".into(),
        tags: vec![
            ("Owner".into(), "alice@example.com".into()),
            ("Team".into(), "payments".into()),
        ],
        data_volumes: 0,
    };
    let host = seed::host(&aws_sdk_ec2::Client::new(sdk), &spec)
        .await
        .unwrap_or_else(|e| panic!("seeding an instance: {e}"));
    (host.id, host.vpc, host.subnet, host.group)
}

fn result<'a>(
    incident: &'a Incident,
    enricher: &str,
) -> &'a firebreak_shared::incident::EnrichmentResult {
    incident
        .enrichment
        .as_ref()
        .and_then(|e| e.results.iter().find(|r| r.enricher == enricher))
        .unwrap_or_else(|| panic!("no {enricher} result in {:?}", incident.enrichment))
}

#[tokio::test]
async fn instance_context_and_related_incidents_land_in_the_record_and_are_announced() {
    let (sdk, stack) = sandbox("enrich-context").await;
    let set = playbooks("ec2.instance, incidents.related");
    let store = store(&sdk, &stack);
    let (instance_id, vpc_id, subnet_id, sg_id) = instance(&sdk).await;
    let incident = open(&store, &set, &[&instance_id], "a").await;
    let other = open(&store, &set, &[&instance_id], "b").await;
    let event = opened_event(&sdk, &stack, &incident).await;

    let out = stage(&sdk, &stack, set)
        .handle(event.as_bytes(), now())
        .await
        .unwrap_or_else(|e| panic!("handle: {e}"));

    assert_eq!(out["enriched"]["ok"], 2, "{out}");
    assert_eq!(out["emitted"], true, "{out}");
    let stored = store
        .get(&incident.id)
        .await
        .ok()
        .flatten()
        .expect("the incident");
    let ec2 = result(&stored, "ec2.instance");
    assert_eq!(ec2.outcome, "ok", "{ec2:?}");
    assert_eq!(ec2.target.as_deref(), Some(instance_id.as_str()));
    assert_eq!(ec2.data["vpc_id"], vpc_id.as_str());
    assert_eq!(ec2.data["subnet_id"], subnet_id.as_str());
    assert_eq!(ec2.data["security_groups"][0]["id"], sg_id.as_str());
    assert_eq!(ec2.data["owner"], "alice@example.com");
    assert_eq!(ec2.data["team"], "payments");
    assert_eq!(ec2.data["tags"]["Name"], "web-1");
    assert_eq!(ec2.data["state"], "running");
    assert!(ec2.data["volumes"][0]["volume_id"].is_string(), "{ec2:?}");
    let related = result(&stored, "incidents.related");
    assert_eq!(
        related.data["incidents"],
        serde_json::json!([other.id]),
        "{related:?}"
    );
    let entry = stored
        .timeline
        .iter()
        .find(|e| e.event == "enriched")
        .expect("a timeline entry");
    assert_eq!(
        (
            entry.actor.as_str(),
            entry.outcome.as_str(),
            entry.detail.as_deref()
        ),
        ("enrich", "ok", Some("2 ok, 0 failed, 0 skipped"))
    );
    assert!(stored.has_emitted(&format!("{}/enriched", incident.id)));
    assert_eq!(
        enriched_events(&sdk, &stack, "NotifyFunction", &incident.id).await,
        1
    );
    assert_eq!(
        enriched_events(&sdk, &stack, "RemediateFunction", &incident.id).await,
        1
    );
}

#[tokio::test]
async fn a_failing_enricher_is_recorded_and_the_incident_is_still_announced() {
    let (sdk, stack) = sandbox("enrich-failing").await;
    let set = playbooks("ec2.instance");
    let store = store(&sdk, &stack);
    let incident = open(&store, &set, &["i-0000000000000dead"], "a").await;
    let event = opened_event(&sdk, &stack, &incident).await;

    let out = stage(&sdk, &stack, set)
        .handle(event.as_bytes(), now())
        .await
        .unwrap_or_else(|e| panic!("a failed enricher must not fail the stage: {e}"));

    assert_eq!(out["enriched"]["failed"], 1, "{out}");
    let stored = store
        .get(&incident.id)
        .await
        .ok()
        .flatten()
        .expect("the incident");
    let ec2 = result(&stored, "ec2.instance");
    assert_eq!(ec2.outcome, "failed");
    assert!(
        ec2.error
            .as_deref()
            .unwrap_or_default()
            .contains("InvalidInstanceID"),
        "{ec2:?}"
    );
    assert_eq!(
        enriched_events(&sdk, &stack, "NotifyFunction", &incident.id).await,
        1
    );
}

#[tokio::test]
async fn a_redelivered_incident_opened_records_one_enrichment_and_one_event() {
    let (sdk, stack) = sandbox("enrich-twice").await;
    let set = playbooks("ec2.instance, incidents.related");
    let store = store(&sdk, &stack);
    let (instance_id, ..) = instance(&sdk).await;
    let incident = open(&store, &set, &[&instance_id], "a").await;
    let event = opened_event(&sdk, &stack, &incident).await;
    let stage = stage(&sdk, &stack, set);

    let first = stage
        .handle(event.as_bytes(), now())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let second = stage
        .handle(event.as_bytes(), now())
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(first["emitted"], true, "{first}");
    assert_eq!(second["already_enriched"], true, "{second}");
    assert_eq!(second["emitted"], false, "{second}");
    let stored = store
        .get(&incident.id)
        .await
        .ok()
        .flatten()
        .expect("the incident");
    assert_eq!(
        stored
            .timeline
            .iter()
            .filter(|e| e.event == "enriched")
            .count(),
        1
    );
    assert_eq!(
        enriched_events(&sdk, &stack, "NotifyFunction", &incident.id).await,
        1
    );
}

#[tokio::test]
async fn two_concurrent_deliveries_record_one_enrichment_and_one_event() {
    let (sdk, stack) = sandbox("enrich-race").await;
    let set = playbooks("ec2.instance, incidents.related");
    let store = store(&sdk, &stack);
    let (instance_id, ..) = instance(&sdk).await;
    let incident = open(&store, &set, &[&instance_id], "a").await;
    let event = opened_event(&sdk, &stack, &incident).await;
    let stage = stage(&sdk, &stack, set);

    let (a, b) = tokio::join!(
        stage.handle(event.as_bytes(), now()),
        stage.handle(event.as_bytes(), now())
    );

    let (a, b) = (
        a.unwrap_or_else(|e| panic!("{e}")),
        b.unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(
        [&a, &b].iter().filter(|o| o["emitted"] == true).count(),
        1,
        "one delivery announces: {a} / {b}"
    );
    let stored = store
        .get(&incident.id)
        .await
        .ok()
        .flatten()
        .expect("the incident");
    assert_eq!(
        stored
            .timeline
            .iter()
            .filter(|e| e.event == "enriched")
            .count(),
        1,
        "{a} / {b}"
    );
    let event_id = format!("{}/enriched", incident.id);
    assert_eq!(stored.emitted.iter().filter(|e| **e == event_id).count(), 1);
    assert_eq!(
        enriched_events(&sdk, &stack, "NotifyFunction", &incident.id).await,
        1,
        "{a} / {b}"
    );
}

#[tokio::test]
async fn an_event_for_an_unknown_incident_is_refused_not_failed() {
    let (sdk, stack) = sandbox("enrich-unknown").await;
    let set = playbooks("ec2.instance");
    let signal = firebreak_shared::signal::parse(ALARM_EVENT, now())
        .expect("fixture parses")
        .remove(0);
    let never_stored = Incident::open(
        &decide(&signal, &set),
        "INC-19700101-00000000".into(),
        now(),
    );
    let event = opened_event(&sdk, &stack, &never_stored).await;

    let out = stage(&sdk, &stack, set)
        .handle(event.as_bytes(), now())
        .await
        .unwrap_or_else(|e| panic!("refused, not failed: {e}"));

    assert!(
        out["refused"]
            .as_str()
            .unwrap_or_default()
            .contains("INC-19700101-00000000"),
        "{out}"
    );
    assert_eq!(
        enriched_events(&sdk, &stack, "NotifyFunction", &never_stored.id).await,
        0
    );
}
