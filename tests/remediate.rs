//! The remediate stage against a local AWS (moto) over HTTP, on the stack template.yaml
//! defines, and against stubs (aws-smithy-mocks) where moto cannot serve or misbehave on cue:
//! SSM Automation executions, and EC2 throttling.
//!
//! Each moto test seeds its own VPC, subnet, security group and instance (with two EBS
//! volumes), puts the global dry-run parameter in moto's Parameter Store, opens the incident
//! through the create stage from a real GuardDuty finding rewritten to name that instance, and
//! hands the stage `Incident Enriched` as EventBridge delivers it. What the stage did is read
//! back from EC2 and from the events the template's rules delivered.

// The shared harness is not ours to edit; its one closure clippy dislikes is harmless.
#[allow(clippy::redundant_closure)]
mod support;

use firebreak_cli::seed::{self, HostSpec};
use std::time::Duration as StdDuration;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_ec2::types::{Filter, InstanceType};
use aws_sdk_ssm::operation::get_automation_execution::GetAutomationExecutionOutput;
use aws_sdk_ssm::operation::get_parameter::GetParameterOutput;
use aws_sdk_ssm::operation::start_automation_execution::StartAutomationExecutionOutput;
use aws_sdk_ssm::types::{AutomationExecution, AutomationExecutionStatus, Parameter};
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use chrono::{DateTime, Utc};
use firebreak_create::Create;
use firebreak_remediate::{Clients, DryRunSwitch, Remediate, Timing};
use firebreak_shared::incident::Incident;
use firebreak_shared::lifecycle::{Event, Kind};
use firebreak_shared::playbook::PlaybookSet;
use serde_json::{Value, json};
use support::{Pipeline, fixture};

const BACKDOOR: &str = "guardduty/custodian-eventbridge-backdoor-ec2-cc-activity-b-dns.json";

/// Milliseconds where Lambda would wait seconds.
fn quick() -> Timing {
    Timing {
        poll: StdDuration::from_millis(20),
        backoff: StdDuration::from_millis(5),
        max_backoff: StdDuration::from_millis(40),
        margin: StdDuration::ZERO,
    }
}

fn deadline() -> DateTime<Utc> {
    Utc::now() + chrono::Duration::seconds(60)
}

/// One test's stack, its EC2 client, and the name of its dry-run parameter.
struct Env {
    p: Pipeline,
    ec2: aws_sdk_ec2::Client,
    ssm: aws_sdk_ssm::Client,
    parameter: String,
}

impl Env {
    /// A fresh stack; the dry-run parameter is set to `switch` (`None`: not created).
    async fn new(name: &str, switch: Option<&str>) -> Env {
        let p = Pipeline::new(name).await;
        let ec2 = aws_sdk_ec2::Client::new(&p.sdk);
        let ssm = aws_sdk_ssm::Client::new(&p.sdk);
        let parameter = format!("/firebreak/{}/dry-run", p.stack.prefix);
        if let Some(value) = switch {
            ssm.put_parameter()
                .name(&parameter)
                .value(value)
                .r#type(aws_sdk_ssm::types::ParameterType::String)
                .send()
                .await
                .unwrap_or_else(|e| panic!("PutParameter: {e}"));
        }
        Env {
            p,
            ec2,
            ssm,
            parameter,
        }
    }

    fn clients(&self) -> Clients {
        Clients::new(&self.p.sdk)
    }

    /// The stage as main.rs builds it, on these clients and playbooks.
    fn stage_with(&self, playbooks: PlaybookSet, clients: Clients) -> Remediate {
        Remediate::new(
            playbooks,
            self.p.store.clone(),
            self.p.bus.clone(),
            clients,
            DryRunSwitch::new(self.ssm.clone(), &self.parameter).with_ttl(StdDuration::ZERO),
        )
        .with_timing(quick())
    }

    fn stage(&self) -> Remediate {
        self.stage_with(self.p.playbooks.clone(), self.clients())
    }

    /// Opens the incident for a high-severity backdoor finding on `instance`, through `create`.
    async fn open_with(&self, create: &Create, instance: &str) -> Incident {
        let out = create
            .handle(&finding(instance), Utc::now())
            .await
            .unwrap_or_else(|e| panic!("create: {e}"));
        let id = out["results"][0]["incident"]
            .as_str()
            .unwrap_or_else(|| panic!("no incident opened: {out}"))
            .to_owned();
        self.p.incident(&id).await
    }

    async fn open(&self, instance: &str) -> Incident {
        self.open_with(&self.p.create, instance).await
    }

    /// Every event the bus delivered to notify and close since last asked, as JSON.
    async fn events(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for function in ["NotifyFunction", "CloseFunction"] {
            for body in self.p.delivered(function).await {
                let mut v: Value = serde_json::from_str(&body).expect("an EventBridge event");
                v["delivered_to"] = json!(function);
                out.push(v);
            }
        }
        out
    }
}

/// The backdoor finding, high severity, naming `instance`.
fn finding(instance: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&fixture(BACKDOOR)).expect("fixture is JSON");
    v["detail"]["resource"]["instanceDetails"]["instanceId"] = json!(instance);
    v["detail"]["severity"] = json!(8);
    v["detail"]["id"] = json!(format!("finding-{instance}"));
    serde_json::to_vec(&v).expect("serialises")
}

/// `Incident Enriched` about `incident`, as EventBridge delivers it to the function.
fn enriched(incident: &Incident) -> Vec<u8> {
    let event = Event::about(Kind::IncidentEnriched, incident, None, Utc::now(), None);
    serde_json::to_vec(&json!({
        "version": "0",
        "id": format!("enriched-{}", incident.id),
        "detail-type": event.kind.detail_type(),
        "source": "firebreak",
        "account": "123456789012",
        "time": event.detail.at.to_rfc3339(),
        "region": "us-east-1",
        "resources": [],
        "detail": serde_json::to_value(&event.detail).expect("detail serialises"),
    }))
    .expect("serialises")
}

/// A seeded instance: its id, VPC, original security group and volumes.
struct Host {
    id: String,
    vpc: String,
    group: String,
    volumes: Vec<String>,
}

/// An instance with a root and a data volume in its own VPC, subnet and security group.
async fn host(ec2: &aws_sdk_ec2::Client, tags: &[(&str, &str)]) -> Host {
    let mut all = vec![("Team".to_owned(), "payments".to_owned())];
    all.extend(tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let spec = HostSpec {
        name: "web-1".into(),
        tags: all,
        data_volumes: 1,
    };
    let h = seed::host(ec2, &spec)
        .await
        .unwrap_or_else(|e| panic!("seeding an instance: {e}"));
    Host {
        id: h.id,
        vpc: h.vpc,
        group: h.group,
        volumes: h.volumes,
    }
}

async fn groups_of(ec2: &aws_sdk_ec2::Client, instance: &str) -> Vec<String> {
    let out = ec2
        .describe_instances()
        .instance_ids(instance)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeInstances: {e}"));
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .flat_map(|i| i.security_groups())
        .filter_map(|g| g.group_id().map(str::to_owned))
        .collect()
}

async fn tags_of(ec2: &aws_sdk_ec2::Client, instance: &str) -> Vec<(String, String)> {
    seed::tags_of(ec2, instance)
        .await
        .unwrap_or_else(|e| panic!("DescribeInstances: {e}"))
}

/// The snapshots tagged with `incident`, as (snapshot, volume).
async fn snapshots_of(ec2: &aws_sdk_ec2::Client, incident: &str) -> Vec<(String, String)> {
    let out = ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(
            Filter::builder()
                .name("tag:firebreak:incident")
                .values(incident)
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeSnapshots: {e}"));
    out.snapshots()
        .iter()
        .map(|s| {
            (
                s.snapshot_id().unwrap_or_default().to_owned(),
                s.volume_id().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The quarantine groups in `vpc`.
async fn quarantine_groups(ec2: &aws_sdk_ec2::Client, vpc: &str) -> Vec<String> {
    let out = ec2
        .describe_security_groups()
        .filters(Filter::builder().name("vpc-id").values(vpc).build())
        .filters(
            Filter::builder()
                .name("group-name")
                .values("firebreak-quarantine")
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeSecurityGroups: {e}"));
    out.security_groups()
        .iter()
        .filter_map(|g| g.group_id().map(str::to_owned))
        .collect()
}

/// Events of `detail_type` about `incident`.
fn of<'a>(events: &'a [Value], detail_type: &str, incident: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["detail-type"] == detail_type && e["detail"]["incident_id"] == incident)
        .collect()
}

fn action<'a>(
    incident: &'a Incident,
    kind: &str,
) -> Vec<&'a firebreak_shared::incident::ActionRecord> {
    incident.actions.iter().filter(|a| a.kind == kind).collect()
}

/// What the ec2-compromise playbook must leave behind, however often it was delivered:
/// one snapshot per volume, the instance in the one quarantine group, one isolation record
/// holding the original group, each event once.
async fn assert_isolated_once(env: &Env, host: &Host, incident_id: &str) {
    let snaps = snapshots_of(&env.ec2, incident_id).await;
    let mut volumes: Vec<&str> = snaps.iter().map(|(_, v)| v.as_str()).collect();
    volumes.sort_unstable();
    let mut expected: Vec<&str> = host.volumes.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(volumes, expected, "one snapshot per volume: {snaps:?}");
    assert_eq!(
        host.volumes.len(),
        2,
        "the host has a root and a data volume"
    );

    let quarantine = quarantine_groups(&env.ec2, &host.vpc).await;
    assert_eq!(quarantine.len(), 1, "{quarantine:?}");
    assert_eq!(groups_of(&env.ec2, &host.id).await, quarantine);

    let incident = env.p.incident(incident_id).await;
    let isolations = action(&incident, "ec2.isolate");
    assert_eq!(isolations.len(), 1, "{:?}", incident.actions);
    assert_eq!(isolations[0].outcome, "succeeded");
    assert_eq!(
        isolations[0].evidence["previous_groups"],
        json!([host.group])
    );
    assert_eq!(
        isolations[0].evidence["quarantine_group"],
        json!(quarantine[0])
    );
    assert!(
        incident.acknowledged_at.is_some(),
        "acknowledged by remediate"
    );
    assert!(incident.metrics.mtta_s.is_some());
    assert!(
        incident
            .timeline
            .iter()
            .any(|e| e.actor == "remediate" && e.event == "acknowledged")
    );

    let events = env.events().await;
    let started = of(&events, "Remediation Started", incident_id);
    let ids: Vec<&str> = started
        .iter()
        .filter_map(|e| e["detail"]["event_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 2, "one start per mutating step: {ids:?}");
    assert!(ids.iter().any(|i| i.contains("ec2.isolate")));
    let resolution = of(&events, "Incident Resolution Requested", incident_id);
    assert_eq!(resolution.len(), 1, "{events:#?}");
    assert_eq!(resolution[0]["detail"]["actor"], "remediate");
    assert_eq!(resolution[0]["delivered_to"], "CloseFunction");
    assert!(of(&events, "Remediation Failed", incident_id).is_empty());
    assert!(of(&events, "Incident Escalated", incident_id).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_delivery_isolates_once_and_snapshots_each_volume_once() {
    let env = Env::new("rem-dup", Some("false")).await;
    let host = host(&env.ec2, &[]).await;
    let incident = env.open(&host.id).await;
    assert_eq!(incident.playbook.as_deref(), Some("ec2-compromise"));
    let stage = env.stage();
    let event = enriched(&incident);

    let first = stage
        .handle(&event, Utc::now(), deadline())
        .await
        .unwrap_or_else(|e| panic!("first delivery: {e}"));
    assert_eq!(first["outcome"], "resolution_requested", "{first:#}");
    let second = stage
        .handle(&event, Utc::now(), deadline())
        .await
        .unwrap_or_else(|e| panic!("second delivery: {e}"));
    assert_eq!(second["outcome"], "resolution_requested", "{second:#}");

    assert_isolated_once(&env, &host, &incident.id).await;
    let record = env.p.incident(&incident.id).await;
    let snapshot = action(&record, "ec2.snapshot");
    assert_eq!(snapshot.len(), 1);
    assert_eq!(snapshot[0].evidence["reused"], json!(false));
    let tags = tags_of(&env.ec2, &host.id).await;
    assert!(tags.contains(&("firebreak:incident".to_owned(), incident.id.clone())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_isolate_once_and_snapshot_each_volume_once() {
    let env = Env::new("rem-concurrent", Some("false")).await;
    let host = host(&env.ec2, &[]).await;
    let incident = env.open(&host.id).await;
    let stage = env.stage();
    let event = enriched(&incident);

    let (a, b) = tokio::join!(
        stage.handle(&event, Utc::now(), deadline()),
        stage.handle(&event, Utc::now(), deadline())
    );
    // One of them may find the other's claim and fail transient, as the platform will retry.
    for r in [&a, &b] {
        if let Err(e) = r {
            assert!(e.transient(), "{e}");
        }
    }
    assert!(a.is_ok() || b.is_ok(), "{a:?} {b:?}");
    // The platform's retry of whichever lost.
    let retried = stage
        .handle(&event, Utc::now(), deadline())
        .await
        .unwrap_or_else(|e| panic!("retry: {e}"));
    assert_eq!(retried["outcome"], "resolution_requested", "{retried:#}");
    assert_isolated_once(&env, &host, &incident.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_instance_is_left_untouched_and_the_incident_escalates() {
    let env = Env::new("rem-protected", Some("false")).await;
    // Protected in EC2 only: the finding carries no tags, so only DescribeInstances can tell.
    let host = host(&env.ec2, &[("firebreak:protected", "true")]).await;
    let incident = env.open(&host.id).await;
    assert!(incident.tags.is_empty());
    let out = env
        .stage()
        .handle(&enriched(&incident), Utc::now(), deadline())
        .await
        .unwrap_or_else(|e| panic!("handle: {e}"));
    assert_eq!(out["outcome"], "protected_resource", "{out:#}");

    assert!(snapshots_of(&env.ec2, &incident.id).await.is_empty());
    assert_eq!(
        groups_of(&env.ec2, &host.id).await,
        vec![host.group.clone()]
    );
    assert!(quarantine_groups(&env.ec2, &host.vpc).await.is_empty());
    let tags = tags_of(&env.ec2, &host.id).await;
    assert!(
        !tags.iter().any(|(k, _)| k == "firebreak:incident"),
        "{tags:?}"
    );

    let record = env.p.incident(&incident.id).await;
    let snapshot = action(&record, "ec2.snapshot");
    assert_eq!(snapshot[0].outcome, "skipped");
    assert!(action(&record, "ec2.isolate").is_empty(), "the run stopped");
    assert!(record.acknowledged_at.is_none());

    let events = env.events().await;
    let escalated = of(&events, "Incident Escalated", &incident.id);
    assert_eq!(escalated.len(), 1, "{events:#?}");
    let reason = escalated[0]["detail"]["reason"].as_str().unwrap_or("");
    assert!(reason.starts_with("protected_resource"), "{reason}");
    assert!(reason.contains("firebreak:protected=true"), "{reason}");
    assert!(of(&events, "Remediation Started", &incident.id).is_empty());
    assert!(of(&events, "Incident Resolution Requested", &incident.id).is_empty());
}

async fn assert_nothing_changed(env: &Env, host: &Host, incident: &Incident) {
    assert!(snapshots_of(&env.ec2, &incident.id).await.is_empty());
    assert_eq!(
        groups_of(&env.ec2, &host.id).await,
        vec![host.group.clone()]
    );
    assert!(quarantine_groups(&env.ec2, &host.vpc).await.is_empty());
    let record = env.p.incident(&incident.id).await;
    for kind in ["ec2.snapshot", "ec2.isolate"] {
        let recs = action(&record, kind);
        assert_eq!(recs.len(), 1, "{kind}: {:?}", record.actions);
        assert_eq!(recs[0].outcome, "dry_run", "{kind}");
    }
    assert!(record.acknowledged_at.is_none());
    let events = env.events().await;
    assert!(of(&events, "Remediation Started", &incident.id).is_empty());
    assert!(of(&events, "Incident Escalated", &incident.id).is_empty());
    // The notify step still tells people, and says it was a dry run.
    let told = of(&events, "Remediation Succeeded", &incident.id);
    assert_eq!(told.len(), 1, "{events:#?}");
    let reason = told[0]["detail"]["reason"].as_str().unwrap_or("");
    assert!(
        reason.starts_with("Dry run, nothing was changed"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_dry_run_switch_changes_nothing_in_ec2() {
    let env = Env::new("rem-dry-run", Some("true")).await;
    let host = host(&env.ec2, &[]).await;
    let incident = env.open(&host.id).await;
    let out = env
        .stage()
        .handle(&enriched(&incident), Utc::now(), deadline())
        .await
        .unwrap_or_else(|e| panic!("handle: {e}"));
    assert_eq!(out["outcome"], "dry_run", "{out:#}");
    assert_nothing_changed(&env, &host, &incident).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_dry_run_parameter_fails_safe_to_a_dry_run() {
    let env = Env::new("rem-no-switch", None).await;
    let host = host(&env.ec2, &[]).await;
    let incident = env.open(&host.id).await;
    let out = env
        .stage()
        .handle(&enriched(&incident), Utc::now(), deadline())
        .await
        .unwrap_or_else(|e| panic!("handle: {e}"));
    assert_eq!(out["outcome"], "dry_run", "{out:#}");
    assert!(
        out["dry_run"]
            .as_str()
            .is_some_and(|w| w.contains("missing")),
        "{out:#}"
    );
    assert_nothing_changed(&env, &host, &incident).await;
}

/// A playbook that tags compromised instances, at most twice an hour.
fn tagging_playbook(mode: &str, max: u32) -> PlaybookSet {
    PlaybookSet::from_sources([(
        std::path::PathBuf::from("tag.yaml"),
        format!(
            "name: tag-compromised\npriority: 1\nmatch: {{sources: [guardduty], resource_types: [ec2_instance]}}\n\
             dedupe: {{key: \"{{playbook}}:{{account}}:{{resource.ec2_instance}}\"}}\n\
             remediate:\n  - action: ec2.tag\n    with: {{tags: {{investigate: \"yes\"}}}}\n\
             guardrails: {{mode: {mode}, rate_limit: {{max: {max}, per: 1h}}}}\nclose: {{on: manual}}\n"
        ),
    )])
    .unwrap_or_else(|e| panic!("test playbook: {e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blast_radius_limit_stops_remediation_after_the_nth_and_counts_a_retry_once() {
    let env = Env::new("rem-blast", Some("false")).await;
    let set = tagging_playbook("auto", 2);
    let create = Create::new(set.clone(), env.p.store.clone(), env.p.bus.clone(), None);
    let stage = env.stage_with(set, env.clients());
    let mut hosts = Vec::new();
    let mut incidents = Vec::new();
    for _ in 0..3 {
        let h = host(&env.ec2, &[]).await;
        incidents.push(env.open_with(&create, &h.id).await);
        hosts.push(h);
    }
    let mut outcomes = Vec::new();
    for incident in &incidents {
        let out = stage
            .handle(&enriched(incident), Utc::now(), deadline())
            .await
            .unwrap_or_else(|e| panic!("handle: {e}"));
        outcomes.push(out["outcome"].as_str().unwrap_or("").to_owned());
    }
    // A retry of the first: already counted, changes nothing, does not use up the third slot.
    let again = stage
        .handle(&enriched(&incidents[0]), Utc::now(), deadline())
        .await
        .unwrap_or_else(|e| panic!("retry: {e}"));
    assert_eq!(again["outcome"], "remediated", "{again:#}");
    assert_eq!(outcomes, ["remediated", "remediated", "rate_limited"]);

    for (h, expect) in hosts.iter().zip([true, true, false]) {
        let tags = tags_of(&env.ec2, &h.id).await;
        let tagged = tags.contains(&("investigate".to_owned(), "yes".to_owned()));
        assert_eq!(tagged, expect, "{}: {tags:?}", h.id);
    }
    let events = env.events().await;
    let escalated = of(&events, "Incident Escalated", &incidents[2].id);
    assert_eq!(escalated.len(), 1, "{events:#?}");
    assert!(
        escalated[0]["detail"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("rate_limited: 2 of 2")),
        "{escalated:#?}"
    );
    let third = env.p.incident(&incidents[2].id).await;
    assert_eq!(action(&third, "ec2.tag")[0].outcome, "skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_restores_the_recorded_groups() {
    let env = Env::new("rem-rollback", Some("false")).await;
    let host = host(&env.ec2, &[]).await;
    let incident = env.open(&host.id).await;
    let stage = env.stage();
    stage
        .handle(&enriched(&incident), Utc::now(), deadline())
        .await
        .unwrap_or_else(|e| panic!("handle: {e}"));
    assert_ne!(
        groups_of(&env.ec2, &host.id).await,
        vec![host.group.clone()]
    );

    let out = stage
        .rollback(&incident.id, "cli:alice", Utc::now())
        .await
        .unwrap_or_else(|e| panic!("rollback: {e}"));
    assert_eq!(out["rolled_back"][0]["outcome"], "succeeded", "{out:#}");
    assert_eq!(
        groups_of(&env.ec2, &host.id).await,
        vec![host.group.clone()]
    );
    let record = env.p.incident(&incident.id).await;
    let rollback = action(&record, "ec2.isolate.rollback");
    assert_eq!(rollback.len(), 1);
    assert_eq!(rollback[0].evidence["restored_groups"], json!([host.group]));
    assert!(
        record
            .timeline
            .iter()
            .any(|e| e.actor == "cli:alice" && e.event == "rolled_back")
    );

    // Asking again changes nothing.
    let again = stage
        .rollback(&incident.id, "cli:alice", Utc::now())
        .await
        .unwrap_or_else(|e| panic!("rollback again: {e}"));
    assert_eq!(again["rolled_back"][0]["already"], true, "{again:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_emits_remediation_failed_and_escalates() {
    let env = Env::new("rem-failed", Some("false")).await;
    let host = host(&env.ec2, &[]).await;
    // A group by the quarantine's name that Firebreak did not make: isolation must refuse it.
    env.ec2
        .create_security_group()
        .group_name("firebreak-quarantine")
        .description("not ours")
        .vpc_id(&host.vpc)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateSecurityGroup: {e}"));
    let incident = env.open(&host.id).await;
    let out = env
        .stage()
        .handle(&enriched(&incident), Utc::now(), deadline())
        .await
        .unwrap_or_else(|e| panic!("handle: {e}"));
    assert_eq!(out["outcome"], "failed", "{out:#}");

    assert_eq!(
        groups_of(&env.ec2, &host.id).await,
        vec![host.group.clone()]
    );
    let record = env.p.incident(&incident.id).await;
    assert_eq!(action(&record, "ec2.snapshot")[0].outcome, "succeeded");
    let isolate = action(&record, "ec2.isolate");
    assert_eq!(isolate[0].outcome, "failed");
    assert!(
        isolate[0].evidence["error"]
            .as_str()
            .is_some_and(|e| e.contains("did not create")),
        "{:?}",
        isolate[0].evidence
    );
    // The groups were recorded before anything changed.
    assert_eq!(isolate[0].evidence["previous_groups"], json!([host.group]));
    assert!(record.acknowledged_at.is_none());

    let events = env.events().await;
    let failed = of(&events, "Remediation Failed", &incident.id);
    assert_eq!(failed.len(), 1, "{events:#?}");
    assert!(
        failed[0]["detail"]["event_id"]
            .as_str()
            .is_some_and(|id| id.contains("ec2.isolate"))
    );
    let escalated = of(&events, "Incident Escalated", &incident.id);
    assert_eq!(escalated.len(), 1);
    assert!(
        escalated[0]["detail"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("remediation_failed"))
    );
    assert!(of(&events, "Incident Resolution Requested", &incident.id).is_empty());
    assert!(
        of(&events, "Remediation Succeeded", &incident.id).len() == 1,
        "the snapshot only"
    );

    // A redelivery does not try again, and tells nobody twice.
    env.stage()
        .handle(&enriched(&incident), Utc::now(), deadline())
        .await
        .unwrap_or_else(|e| panic!("redelivery: {e}"));
    let events = env.events().await;
    assert!(of(&events, "Remediation Failed", &incident.id).is_empty());
    assert!(of(&events, "Incident Escalated", &incident.id).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_mode_asks_first_and_runs_the_held_steps_once_approved() {
    let env = Env::new("rem-approve", Some("false")).await;
    let set = tagging_playbook("approve", 5);
    let create = Create::new(set.clone(), env.p.store.clone(), env.p.bus.clone(), None);
    let stage = env.stage_with(set, env.clients());
    let host = host(&env.ec2, &[]).await;
    let incident = env.open_with(&create, &host.id).await;

    let refused = stage
        .approve(&incident.id, "cli:alice", Utc::now())
        .await
        .unwrap_or_else(|e| panic!("approve: {e}"));
    assert!(
        refused["refused"].is_string(),
        "nothing requested yet: {refused:#}"
    );

    let out = stage
        .handle(&enriched(&incident), Utc::now(), deadline())
        .await
        .unwrap_or_else(|e| panic!("handle: {e}"));
    assert_eq!(out["outcome"], "awaiting_approval", "{out:#}");
    assert!(
        !tags_of(&env.ec2, &host.id)
            .await
            .iter()
            .any(|(k, _)| k == "investigate")
    );
    let events = env.events().await;
    let asked = of(&events, "Approval Requested", &incident.id);
    assert_eq!(asked.len(), 1, "{events:#?}");
    assert!(
        asked[0]["detail"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("firebreak incidents approve"))
    );

    let approved = stage
        .approve(&incident.id, "cli:alice", Utc::now())
        .await
        .unwrap_or_else(|e| panic!("approve: {e}"));
    assert_eq!(approved["outcome"], "remediated", "{approved:#}");
    let tags = tags_of(&env.ec2, &host.id).await;
    assert!(
        tags.contains(&("investigate".to_owned(), "yes".to_owned())),
        "{tags:?}"
    );
    let record = env.p.incident(&incident.id).await;
    assert!(
        record
            .timeline
            .iter()
            .any(|e| e.actor == "cli:alice" && e.event == "remediation_approved")
    );
    // The approver acknowledged first.
    assert_eq!(
        record
            .timeline
            .iter()
            .find(|e| e.event == "acknowledged")
            .map(|e| e.actor.as_str()),
        Some("cli:alice")
    );
}

// ---------------------------------------------------------------------------------------
// Stubs: SSM Automation (moto has no executions) and EC2 throttling.

fn quick_retries() -> aws_sdk_ec2::config::retry::RetryConfig {
    aws_sdk_ec2::config::retry::RetryConfig::standard()
        .with_max_attempts(2)
        .with_initial_backoff(StdDuration::from_millis(1))
}

fn interceptor(rules: &[&Rule]) -> MockResponseInterceptor {
    let mut i = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
    for r in rules {
        i = i.with_rule(r);
    }
    i
}

fn credentials() -> aws_sdk_ec2::config::Credentials {
    aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "mock")
}

/// An SSM client that answers only from `rules`.
fn mock_ssm(rules: &[&Rule]) -> aws_sdk_ssm::Client {
    let conf = aws_sdk_ssm::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials())
        .http_client(create_mock_http_client())
        .interceptor(interceptor(rules))
        .retry_config(quick_retries())
        .build();
    aws_sdk_ssm::Client::from_conf(conf)
}

/// An EC2 client that answers only from `rules`.
fn mock_ec2(rules: &[&Rule]) -> aws_sdk_ec2::Client {
    let conf = aws_sdk_ec2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials())
        .http_client(create_mock_http_client())
        .interceptor(interceptor(rules))
        .retry_config(quick_retries())
        .build();
    aws_sdk_ec2::Client::from_conf(conf)
}

/// A playbook that restarts the instance with an AWS-managed runbook and closes on success.
fn restart_playbook(timeout: &str) -> PlaybookSet {
    PlaybookSet::from_sources([(
        std::path::PathBuf::from("restart.yaml"),
        format!(
            "name: restart\npriority: 1\nmatch: {{sources: [guardduty]}}\n\
             dedupe: {{key: \"{{playbook}}:{{account}}:{{resource.ec2_instance}}\"}}\n\
             remediate:\n  - action: ssm.automation\n    with:\n      document: AWS-RestartEC2Instance\n\
             \x20     parameters: {{InstanceId: [\"{{resource.ec2_instance}}\"]}}\n      timeout: {timeout}\n\
             guardrails: {{mode: auto}}\nclose: {{on: verified_remediation}}\n"
        ),
    )])
    .unwrap_or_else(|e| panic!("test playbook: {e:?}"))
}

fn execution(
    status: AutomationExecutionStatus,
    failure: Option<&str>,
) -> GetAutomationExecutionOutput {
    GetAutomationExecutionOutput::builder()
        .automation_execution(
            AutomationExecution::builder()
                .automation_execution_id("exec-0001")
                .document_name("AWS-RestartEC2Instance")
                .automation_execution_status(status)
                .set_failure_message(failure.map(str::to_owned))
                .build(),
        )
        .build()
}

/// StartAutomationExecution for `instance`, with a client token, answered `exec-0001`.
fn start_rule(instance: &str) -> Rule {
    let instance = instance.to_owned();
    mock!(aws_sdk_ssm::Client::start_automation_execution)
        .match_requests(move |r| {
            r.document_name() == Some("AWS-RestartEC2Instance")
                && r.client_token().is_some_and(|t| t.len() == 36)
                && r.parameters()
                    .and_then(|p| p.get("InstanceId"))
                    .is_some_and(|v| v == &vec![instance.clone()])
        })
        .then_output(|| {
            StartAutomationExecutionOutput::builder()
                .automation_execution_id("exec-0001")
                .build()
        })
}

/// Opens an incident under `set` on a fresh moto instance, for the stubbed tests.
async fn automation_incident(env: &Env, set: &PlaybookSet) -> (Host, Incident) {
    let create = Create::new(set.clone(), env.p.store.clone(), env.p.bus.clone(), None);
    let host = host(&env.ec2, &[]).await;
    let incident = env.open_with(&create, &host.id).await;
    (host, incident)
}

fn with_ssm(env: &Env, ssm: aws_sdk_ssm::Client) -> Clients {
    let mut clients = env.clients();
    clients.ssm = ssm;
    clients
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_automation_that_succeeds_records_its_execution_and_requests_resolution() {
    let env = Env::new("rem-ssm-ok", Some("false")).await;
    let set = restart_playbook("15m");
    let (host, incident) = automation_incident(&env, &set).await;
    let start = start_rule(&host.id);
    let poll = mock!(aws_sdk_ssm::Client::get_automation_execution)
        .sequence()
        .output(|| execution(AutomationExecutionStatus::Inprogress, None))
        .output(|| execution(AutomationExecutionStatus::Success, None))
        .build();
    let stage = env.stage_with(set, with_ssm(&env, mock_ssm(&[&start, &poll])));
    let out = stage
        .handle(&enriched(&incident), Utc::now(), deadline())
        .await
        .unwrap_or_else(|e| panic!("handle: {e}"));
    assert_eq!(out["outcome"], "resolution_requested", "{out:#}");
    assert_eq!(start.num_calls(), 1);
    assert_eq!(poll.num_calls(), 2);
    let record = env.p.incident(&incident.id).await;
    let run = action(&record, "ssm.automation");
    assert_eq!(run[0].outcome, "succeeded");
    assert_eq!(run[0].evidence["execution_id"], "exec-0001");
    assert_eq!(
        run[0].evidence["parameters"]["InstanceId"],
        json!([host.id])
    );
    assert_eq!(run[0].evidence["verification"]["status"], "Success");
    let events = env.events().await;
    assert_eq!(of(&events, "Remediation Succeeded", &incident.id).len(), 1);
    assert_eq!(
        of(&events, "Incident Resolution Requested", &incident.id).len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_automation_that_fails_fails_the_step_and_escalates() {
    let env = Env::new("rem-ssm-fail", Some("false")).await;
    let set = restart_playbook("15m");
    let (host, incident) = automation_incident(&env, &set).await;
    let start = start_rule(&host.id);
    let poll = mock!(aws_sdk_ssm::Client::get_automation_execution).then_output(|| {
        execution(
            AutomationExecutionStatus::Failed,
            Some("Step fails when it is verifying the command has completed."),
        )
    });
    let stage = env.stage_with(set, with_ssm(&env, mock_ssm(&[&start, &poll])));
    let out = stage
        .handle(&enriched(&incident), Utc::now(), deadline())
        .await
        .unwrap_or_else(|e| panic!("handle: {e}"));
    assert_eq!(out["outcome"], "failed", "{out:#}");
    let record = env.p.incident(&incident.id).await;
    let run = action(&record, "ssm.automation");
    assert_eq!(run[0].outcome, "failed");
    assert_eq!(run[0].evidence["execution_id"], "exec-0001");
    let events = env.events().await;
    let failed = of(&events, "Remediation Failed", &incident.id);
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0]["detail"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("ended Failed") && r.contains("verifying the command")),
        "{failed:#?}"
    );
    assert_eq!(of(&events, "Incident Escalated", &incident.id).len(), 1);
    assert!(of(&events, "Incident Resolution Requested", &incident.id).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_automation_that_outlasts_the_step_timeout_fails_the_step() {
    let env = Env::new("rem-ssm-timeout", Some("false")).await;
    let set = restart_playbook("1s");
    let (host, incident) = automation_incident(&env, &set).await;
    let start = start_rule(&host.id);
    let poll = mock!(aws_sdk_ssm::Client::get_automation_execution)
        .then_output(|| execution(AutomationExecutionStatus::Inprogress, None));
    let stage = env.stage_with(set, with_ssm(&env, mock_ssm(&[&start, &poll])));
    let out = stage
        .handle(&enriched(&incident), Utc::now(), deadline())
        .await
        .unwrap_or_else(|e| panic!("handle: {e}"));
    assert_eq!(out["outcome"], "failed", "{out:#}");
    assert!(poll.num_calls() > 1);
    let record = env.p.incident(&incident.id).await;
    let run = action(&record, "ssm.automation");
    assert!(
        run[0].evidence["error"]
            .as_str()
            .is_some_and(|e| e.contains("did not finish within 1s")),
        "{:?}",
        run[0].evidence
    );
    let events = env.events().await;
    assert_eq!(of(&events, "Remediation Failed", &incident.id).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_automation_still_running_at_the_deadline_fails_transient_and_the_retry_resumes_it() {
    let env = Env::new("rem-ssm-budget", Some("false")).await;
    let set = restart_playbook("15m");
    let (host, incident) = automation_incident(&env, &set).await;
    let start = start_rule(&host.id);
    let running = mock!(aws_sdk_ssm::Client::get_automation_execution)
        .then_output(|| execution(AutomationExecutionStatus::Inprogress, None));
    let stage = env.stage_with(set.clone(), with_ssm(&env, mock_ssm(&[&start, &running])));
    let err = stage
        .handle(
            &enriched(&incident),
            Utc::now(),
            Utc::now() + chrono::Duration::milliseconds(1_500),
        )
        .await
        .err();
    assert!(err.as_ref().is_some_and(|e| e.transient()), "{err:?}");
    let record = env.p.incident(&incident.id).await;
    let run = action(&record, "ssm.automation");
    assert_eq!(run[0].outcome, "started");
    assert_eq!(run[0].evidence["execution_id"], "exec-0001");

    // The platform's retry polls the same execution; nothing starts a second one.
    let start_again = start_rule(&host.id);
    let done = mock!(aws_sdk_ssm::Client::get_automation_execution)
        .then_output(|| execution(AutomationExecutionStatus::Success, None));
    let retry = env.stage_with(set, with_ssm(&env, mock_ssm(&[&start_again, &done])));
    let out = retry
        .handle(&enriched(&incident), Utc::now(), deadline())
        .await
        .unwrap_or_else(|e| panic!("retry: {e}"));
    assert_eq!(out["outcome"], "resolution_requested", "{out:#}");
    assert_eq!(start.num_calls(), 1);
    assert_eq!(start_again.num_calls(), 0);
}

/// EC2's throttling answer, as the query protocol sends it.
const THROTTLED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>"#;

/// A playbook that stops the instance: one EC2 change, easy to stub.
fn stop_playbook() -> PlaybookSet {
    PlaybookSet::from_sources([(
        std::path::PathBuf::from("stop.yaml"),
        "name: stop\npriority: 1\nmatch: {sources: [guardduty]}\n\
         dedupe: {key: \"{playbook}:{account}:{resource.ec2_instance}\"}\n\
         remediate:\n  - action: ec2.stop\nguardrails: {mode: auto}\nclose: {on: manual}\n"
            .to_owned(),
    )])
    .unwrap_or_else(|e| panic!("test playbook: {e:?}"))
}

fn described(
    instance: &str,
) -> aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput {
    use aws_sdk_ec2::types::{Instance, InstanceState, InstanceStateName, Reservation};
    aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput::builder()
        .reservations(
            Reservation::builder()
                .instances(
                    Instance::builder()
                        .instance_id(instance)
                        .state(
                            InstanceState::builder()
                                .name(InstanceStateName::Stopping)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .build()
}

fn stopped() -> aws_sdk_ec2::operation::stop_instances::StopInstancesOutput {
    aws_sdk_ec2::operation::stop_instances::StopInstancesOutput::builder().build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ec2_throttling_is_retried_with_backoff_within_the_budget() {
    let env = Env::new("rem-throttle", Some("false")).await;
    let set = stop_playbook();
    let (host, incident) = automation_incident(&env, &set).await;
    let id = host.id.clone();
    let describe =
        mock!(aws_sdk_ec2::Client::describe_instances).then_output(move || described(&id));
    // Six throttled answers: three calls' worth of the SDK's own two attempts, then success.
    let stop = mock!(aws_sdk_ec2::Client::stop_instances)
        .sequence()
        .http_status(503, Some(THROTTLED.to_owned()))
        .times(6)
        .output(stopped)
        .build();
    let mut clients = env.clients();
    clients.ec2 = mock_ec2(&[&describe, &stop]);
    let out = env
        .stage_with(set, clients)
        .handle(&enriched(&incident), Utc::now(), deadline())
        .await
        .unwrap_or_else(|e| panic!("handle: {e}"));
    assert_eq!(out["outcome"], "remediated", "{out:#}");
    assert_eq!(stop.num_calls(), 7);
    let record = env.p.incident(&incident.id).await;
    assert_eq!(action(&record, "ec2.stop")[0].outcome, "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ec2_throttling_past_the_budget_fails_the_invocation_transient_and_loses_nothing() {
    let env = Env::new("rem-throttle-out", Some("false")).await;
    let set = stop_playbook();
    let (host, incident) = automation_incident(&env, &set).await;
    let id = host.id.clone();
    let describe =
        mock!(aws_sdk_ec2::Client::describe_instances).then_output(move || described(&id));
    let throttled = mock!(aws_sdk_ec2::Client::stop_instances)
        .sequence()
        .http_status(503, Some(THROTTLED.to_owned()))
        .times(10_000)
        .build();
    let mut clients = env.clients();
    clients.ec2 = mock_ec2(&[&describe, &throttled]);
    let err = env
        .stage_with(set.clone(), clients)
        .handle(
            &enriched(&incident),
            Utc::now(),
            Utc::now() + chrono::Duration::milliseconds(2_500),
        )
        .await
        .err();
    assert!(
        err.as_ref()
            .is_some_and(|e| e.transient() && e.to_string().contains("RequestLimitExceeded")),
        "{err:?}"
    );
    // At least the SDK's own attempts; as many more as the budget had room for.
    assert!(
        throttled.num_calls() >= 2,
        "retried: {}",
        throttled.num_calls()
    );
    // The step stays recorded as started, for the retry to take over at once.
    let record = env.p.incident(&incident.id).await;
    let stop = action(&record, "ec2.stop");
    assert_eq!(stop[0].outcome, "started");
    assert!(stop[0].evidence.get("lease_until").is_none());

    let id = host.id.clone();
    let describe =
        mock!(aws_sdk_ec2::Client::describe_instances).then_output(move || described(&id));
    let ok = mock!(aws_sdk_ec2::Client::stop_instances).then_output(stopped);
    let mut clients = env.clients();
    clients.ec2 = mock_ec2(&[&describe, &ok]);
    let out = env
        .stage_with(set, clients)
        .handle(&enriched(&incident), Utc::now(), deadline())
        .await
        .unwrap_or_else(|e| panic!("retry: {e}"));
    assert_eq!(out["outcome"], "remediated", "{out:#}");
    let record = env.p.incident(&incident.id).await;
    assert_eq!(action(&record, "ec2.stop")[0].outcome, "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switch_reads_false_only_as_exactly_false() {
    for (value, dry) in [
        ("false", false),
        ("true", true),
        ("False", true),
        ("false ", true),
    ] {
        let rule = mock!(aws_sdk_ssm::Client::get_parameter).then_output(move || {
            GetParameterOutput::builder()
                .parameter(Parameter::builder().name("/p").value(value).build())
                .build()
        });
        let switch = DryRunSwitch::new(mock_ssm(&[&rule]), "/p");
        assert_eq!(switch.state().await.dry_run, dry, "{value:?}");
    }
    let denied = mock!(aws_sdk_ssm::Client::get_parameter)
        .sequence()
        .http_status(
            400,
            Some(r#"{"__type":"AccessDeniedException","message":"no"}"#.to_owned()),
        )
        .build();
    let switch = DryRunSwitch::new(mock_ssm(&[&denied]), "/p");
    let state = switch.state().await;
    assert!(
        state.dry_run && state.why.contains("unreadable"),
        "{state:?}"
    );
    // Cached: a second read within the TTL asks nobody.
    assert!(switch.state().await.dry_run);
    assert_eq!(denied.num_calls(), 1);
}

// ---------------------------------------------------------------------------------------
// The rest of the catalog on moto: Run Command, IAM access keys, S3 Block Public Access.

/// The clients main.rs builds, with S3 addressed by path (moto serves no bucket hostnames).
fn path_style(env: &Env) -> Clients {
    let mut clients = env.clients();
    let s3 = aws_sdk_s3::config::Builder::from(&env.p.sdk)
        .force_path_style(true)
        .build();
    clients.s3 = aws_sdk_s3::Client::from_conf(s3);
    clients
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_command_sends_the_named_document_with_typed_parameters() {
    let env = Env::new("rem-run-command", Some("false")).await;
    let set = PlaybookSet::from_sources([(
        std::path::PathBuf::from("collect.yaml"),
        "name: collect\npriority: 1\nmatch: {sources: [guardduty]}\n\
         dedupe: {key: \"{playbook}:{account}:{resource.ec2_instance}\"}\n\
         remediate:\n  - action: ssm.run_command\n    with:\n      document: AWS-RunShellScript\n\
         \x20     parameters: {commands: [\"uptime\", \"ss -tnp\"], workingDirectory: \"/tmp\"}\n\
         guardrails: {mode: auto}\nclose: {on: manual}\n"
            .to_owned(),
    )])
    .unwrap_or_else(|e| panic!("test playbook: {e:?}"));
    let (host, incident) = automation_incident(&env, &set).await;
    let out = env
        .stage_with(set, env.clients())
        .handle(&enriched(&incident), Utc::now(), deadline())
        .await
        .unwrap_or_else(|e| panic!("handle: {e}"));
    assert_eq!(out["outcome"], "remediated", "{out:#}");
    let record = env.p.incident(&incident.id).await;
    let run = action(&record, "ssm.run_command");
    assert_eq!(run[0].outcome, "succeeded", "{:?}", run[0].evidence);
    assert_eq!(run[0].target.as_deref(), Some(host.id.as_str()));
    let command = run[0].evidence["command_id"].as_str().unwrap_or_default();
    assert!(!command.is_empty());
    assert_eq!(
        run[0].evidence["parameters"]["commands"],
        json!(["uptime", "ss -tnp"])
    );
    let sent = env
        .ssm
        .list_commands()
        .command_id(command)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListCommands: {e}"));
    let sent = sent.commands().first().expect("the command was sent");
    assert_eq!(sent.document_name(), Some("AWS-RunShellScript"));
    assert!(sent.instance_ids().contains(&host.id), "{sent:?}");
    let parameters = sent.parameters().cloned().unwrap_or_default();
    assert_eq!(
        parameters.get("commands"),
        Some(&vec!["uptime".to_owned(), "ss -tnp".to_owned()])
    );
    assert_eq!(
        parameters.get("workingDirectory"),
        Some(&vec!["/tmp".to_owned()])
    );
}

/// A GuardDuty finding about a TOR caller using `key` of `user`.
fn key_finding(user: &str, key: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&fixture(
        "guardduty/custodian-eventbridge-iamuser-tor-ipcaller.json",
    ))
    .expect("fixture is JSON");
    v["detail"]["resource"]["accessKeyDetails"]["userName"] = json!(user);
    v["detail"]["resource"]["accessKeyDetails"]["accessKeyId"] = json!(key);
    v["detail"]["id"] = json!(format!("finding-{key}"));
    serde_json::to_vec(&v).expect("serialises")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_access_key_deactivation_sets_the_key_inactive_and_verifies_it() {
    let env = Env::new("rem-iam", Some("false")).await;
    let iam = aws_sdk_iam::Client::new(&env.p.sdk);
    let user = format!("svc-{}", env.p.stack.prefix);
    iam.create_user()
        .user_name(&user)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateUser: {e}"));
    let key = iam
        .create_access_key()
        .user_name(&user)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateAccessKey: {e}"));
    let key = key
        .access_key()
        .map(|k| k.access_key_id().to_owned())
        .unwrap_or_default();
    let out = env
        .p
        .create
        .handle(&key_finding(&user, &key), Utc::now())
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    let id = out["results"][0]["incident"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let incident = env.p.incident(&id).await;
    assert_eq!(
        incident.playbook.as_deref(),
        Some("iam-credential-compromise")
    );
    let stage = env.stage_with(env.p.playbooks.clone(), path_style(&env));

    let asked = stage
        .handle(&enriched(&incident), Utc::now(), deadline())
        .await
        .unwrap_or_else(|e| panic!("handle: {e}"));
    assert_eq!(asked["outcome"], "awaiting_approval", "{asked:#}");
    let status = |iam: aws_sdk_iam::Client, user: String| async move {
        iam.list_access_keys()
            .user_name(user)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListAccessKeys: {e}"))
            .access_key_metadata()
            .first()
            .and_then(|m| m.status())
            .map(|s| s.as_str().to_owned())
    };
    assert_eq!(
        status(iam.clone(), user.clone()).await.as_deref(),
        Some("Active")
    );
    let events = env.events().await;
    // The playbook's notify and escalate steps ran before the pause.
    assert_eq!(
        of(&events, "Incident Escalated", &id).len(),
        1,
        "{events:#?}"
    );
    assert_eq!(of(&events, "Approval Requested", &id).len(), 1);

    let done = stage
        .approve(&id, "cli:bob", Utc::now())
        .await
        .unwrap_or_else(|e| panic!("approve: {e}"));
    assert_eq!(done["outcome"], "remediated", "{done:#}");
    assert_eq!(status(iam, user.clone()).await.as_deref(), Some("Inactive"));
    let record = env.p.incident(&id).await;
    let step = action(&record, "iam.deactivate_access_key");
    assert_eq!(step[0].outcome, "succeeded");
    assert_eq!(step[0].evidence["user"], json!(user));
    assert_eq!(step[0].evidence["verification"]["status"], "Inactive");
}

/// The CIS 2.3 finding (a public CloudTrail bucket) about `bucket` in moto's account.
fn bucket_finding(bucket: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&fixture(
        "securityhub/asr-custom-action-cis-2.3-s3-bucket.json",
    ))
    .expect("fixture is JSON");
    let f = &mut v["detail"]["findings"][0];
    f["Resources"][0]["Id"] = json!(format!("arn:aws:s3:::{bucket}"));
    f["AwsAccountId"] = json!("123456789012");
    f["Id"] = json!(format!("finding-{bucket}"));
    serde_json::to_vec(&v).expect("serialises")
}

async fn bucket(env: &Env, s3: &aws_sdk_s3::Client, tags: &[(&str, &str)]) -> String {
    let name = format!("logs-{}", env.p.stack.prefix.to_ascii_lowercase());
    s3.create_bucket()
        .bucket(&name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateBucket: {e}"));
    if !tags.is_empty() {
        let mut tagging = aws_sdk_s3::types::Tagging::builder();
        for (k, v) in tags {
            tagging = tagging.tag_set(
                aws_sdk_s3::types::Tag::builder()
                    .key(*k)
                    .value(*v)
                    .build()
                    .expect("tag"),
            );
        }
        s3.put_bucket_tagging()
            .bucket(&name)
            .tagging(tagging.build().expect("tagging"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutBucketTagging: {e}"));
    }
    name
}

async fn open_bucket_incident(env: &Env, name: &str) -> Incident {
    let out = env
        .p
        .create
        .handle(&bucket_finding(name), Utc::now())
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    let id = out["results"][0]["incident"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let incident = env.p.incident(&id).await;
    assert_eq!(incident.playbook.as_deref(), Some("s3-public-access"));
    incident
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_block_public_access_turns_on_all_four_settings_and_requests_resolution() {
    let env = Env::new("rem-s3", Some("false")).await;
    let clients = path_style(&env);
    let name = bucket(&env, &clients.s3, &[]).await;
    let incident = open_bucket_incident(&env, &name).await;
    let stage = env.stage_with(env.p.playbooks.clone(), clients.clone());
    let asked = stage
        .handle(&enriched(&incident), Utc::now(), deadline())
        .await
        .unwrap_or_else(|e| panic!("handle: {e}"));
    assert_eq!(asked["outcome"], "awaiting_approval", "{asked:#}");
    let done = stage
        .approve(&incident.id, "cli:carol", Utc::now())
        .await
        .unwrap_or_else(|e| panic!("approve: {e}"));
    assert_eq!(done["outcome"], "resolution_requested", "{done:#}");
    let settings = clients
        .s3
        .get_public_access_block()
        .bucket(&name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetPublicAccessBlock: {e}"));
    let c = settings
        .public_access_block_configuration()
        .expect("configuration");
    assert_eq!(
        (
            c.block_public_acls(),
            c.ignore_public_acls(),
            c.block_public_policy(),
            c.restrict_public_buckets()
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );
    let events = env.events().await;
    let resolution = of(&events, "Incident Resolution Requested", &incident.id);
    assert_eq!(resolution.len(), 1, "{events:#?}");
    assert_eq!(resolution[0]["detail"]["actor"], "remediate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_bucket_is_left_public_and_the_incident_escalates() {
    let env = Env::new("rem-s3-protected", Some("false")).await;
    let clients = path_style(&env);
    let name = bucket(&env, &clients.s3, &[("firebreak:protected", "website")]).await;
    let incident = open_bucket_incident(&env, &name).await;
    let stage = env.stage_with(env.p.playbooks.clone(), clients.clone());
    stage
        .handle(&enriched(&incident), Utc::now(), deadline())
        .await
        .unwrap_or_else(|e| panic!("handle: {e}"));
    let out = stage
        .approve(&incident.id, "cli:carol", Utc::now())
        .await
        .unwrap_or_else(|e| panic!("approve: {e}"));
    assert_eq!(out["outcome"], "protected_resource", "{out:#}");
    let settings = clients
        .s3
        .get_public_access_block()
        .bucket(&name)
        .send()
        .await;
    assert!(
        settings.is_err(),
        "no Block Public Access configuration was written"
    );
    let events = env.events().await;
    let escalated = of(&events, "Incident Escalated", &incident.id);
    assert!(
        escalated.iter().any(|e| e["detail"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("protected_resource"))),
        "{events:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_detaches_the_instance_from_its_auto_scaling_group_and_protects_it() {
    let env = Env::new("rem-asg", Some("false")).await;
    // A group of one, launched into its own VPC from a template with a web security group.
    let seed = host(&env.ec2, &[]).await;
    let subnet = env
        .ec2
        .describe_instances()
        .instance_ids(&seed.id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeInstances: {e}"))
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find_map(|i| i.subnet_id().map(str::to_owned))
        .unwrap_or_default();
    let template = format!("web-{}", env.p.stack.prefix);
    env.ec2
        .create_launch_template()
        .launch_template_name(&template)
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id("ami-12c6146b")
                .instance_type(InstanceType::T3Micro)
                .security_group_ids(&seed.group)
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateLaunchTemplate: {e}"));
    let asg = aws_sdk_autoscaling::Client::new(&env.p.sdk);
    let group = format!("web-asg-{}", env.p.stack.prefix);
    asg.create_auto_scaling_group()
        .auto_scaling_group_name(&group)
        .launch_template(
            aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                .launch_template_name(&template)
                .build(),
        )
        .min_size(1)
        .max_size(2)
        .desired_capacity(1)
        .vpc_zone_identifier(&subnet)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateAutoScalingGroup: {e}"));
    let members = |asg: aws_sdk_autoscaling::Client, group: String| async move {
        asg.describe_auto_scaling_groups()
            .auto_scaling_group_names(group)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DescribeAutoScalingGroups: {e}"))
            .auto_scaling_groups()
            .iter()
            .flat_map(|g| g.instances())
            .filter_map(|i| i.instance_id().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    let instance = members(asg.clone(), group.clone())
        .await
        .first()
        .cloned()
        .expect("the group launched an instance");

    let set = PlaybookSet::from_sources([(
        std::path::PathBuf::from("contain.yaml"),
        "name: contain\npriority: 1\nmatch: {sources: [guardduty]}\n\
         dedupe: {key: \"{playbook}:{account}:{resource.ec2_instance}\"}\n\
         remediate:\n  - action: ec2.isolate\n    with: {detach_from_asg: true, protect: true}\n\
         guardrails: {mode: auto}\nclose: {on: verified_remediation}\n"
            .to_owned(),
    )])
    .unwrap_or_else(|e| panic!("test playbook: {e:?}"));
    let create = Create::new(set.clone(), env.p.store.clone(), env.p.bus.clone(), None);
    let incident = env.open_with(&create, &instance).await;
    let out = env
        .stage_with(set, env.clients())
        .handle(&enriched(&incident), Utc::now(), deadline())
        .await
        .unwrap_or_else(|e| panic!("handle: {e}"));
    assert_eq!(out["outcome"], "resolution_requested", "{out:#}");

    assert!(
        !members(asg, group.clone()).await.contains(&instance),
        "detached from {group}"
    );
    let quarantine = quarantine_groups(&env.ec2, &seed.vpc).await;
    assert_eq!(groups_of(&env.ec2, &instance).await, quarantine);
    let termination = env
        .ec2
        .describe_instance_attribute()
        .instance_id(&instance)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::DisableApiTermination)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeInstanceAttribute: {e}"));
    assert_eq!(
        termination
            .disable_api_termination()
            .and_then(|v| v.value()),
        Some(true)
    );
    let record = env.p.incident(&incident.id).await;
    let isolate = action(&record, "ec2.isolate");
    assert_eq!(
        isolate[0].evidence["auto_scaling_group"]["group"],
        json!(group)
    );
    assert_eq!(isolate[0].evidence["previous_groups"], json!([seed.group]));
}
