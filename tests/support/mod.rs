//! What the lifecycle tests share: a stack in moto per test, the stages wired to it, and ways to
//! derive the events AWS would send next (a repeat, a recovery) from a real fixture.

#![allow(dead_code)]

use std::path::Path;

use aws_config::SdkConfig;
use aws_sdk_cloudtrail::operation::lookup_events::LookupEventsOutput;
use aws_sdk_cloudwatch::operation::describe_alarm_history::DescribeAlarmHistoryOutput;
use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
use aws_sdk_cloudwatch::types::{CompositeAlarm, StateValue};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use chrono::{DateTime, Duration, Utc};
use firebreak_cli::sandbox::{LocalAws, SnsMessage, Stack};
use firebreak_close::Close;
use firebreak_close::emf::MetricsSink;
use firebreak_create::Create;
use firebreak_enrich::Enrich;
use firebreak_notify::Notify;
use firebreak_shared::incident::Incident;
use firebreak_shared::lifecycle::Bus;
use firebreak_shared::playbook::PlaybookSet;
use firebreak_shared::store::Store;
use serde_json::Value;

/// The bytes of a fixture under tests/fixtures/events.
pub fn fixture(path: &str) -> Vec<u8> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/events")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn edit(event: &[u8], f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(event).expect("fixture is JSON");
    f(&mut v);
    serde_json::to_vec(&v).expect("serialises")
}

fn later(ts: &Value, by: Duration) -> Value {
    let parsed = ts
        .as_str()
        .and_then(firebreak_shared::signal::parse_timestamp)
        .unwrap_or_else(|| DateTime::<Utc>::from_timestamp(1_570_000_000, 0).unwrap_or_default());
    Value::String((parsed + by).to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// The same alarm state change, observed `by` later: a repeat of the same problem.
pub fn shift(event: &[u8], by: Duration) -> Vec<u8> {
    edit(event, |v| {
        v["time"] = later(&v["time"], by);
        v["id"] = Value::String(format!(
            "{}-{}",
            v["id"].as_str().unwrap_or("e"),
            by.num_seconds()
        ));
        v["detail"]["state"]["timestamp"] = later(&v["detail"]["state"]["timestamp"], by);
    })
}

/// The alarm's return to OK, `by` after the state change in `event`, as CloudWatch sends it:
/// the same event with the states swapped.
pub fn recovered(event: &[u8], by: Duration) -> Vec<u8> {
    edit(event, |v| {
        let firing = v["detail"]["state"].clone();
        v["detail"]["previousState"] = firing;
        v["detail"]["state"]["value"] = Value::String("OK".into());
        v["detail"]["state"]["reason"] = Value::String("Threshold Crossed: back under".into());
        v["time"] = later(&v["time"], by);
        v["id"] = Value::String(format!("{}-ok", v["id"].as_str().unwrap_or("e")));
        v["detail"]["state"]["timestamp"] = later(&v["detail"]["previousState"]["timestamp"], by);
    })
}

/// One test's stack and stages.
pub struct Pipeline {
    pub sdk: SdkConfig,
    pub stack: Stack,
    pub store: Store,
    pub bus: Bus,
    pub playbooks: PlaybookSet,
    pub create: Create,
    pub notify: Notify,
}

fn unique(name: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "fb{}{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Pipeline {
    /// A fresh stack in the process's moto. Fails the test, with how to install moto, if moto
    /// is not there: a test that needs moto never passes without it.
    pub async fn new(name: &str) -> Pipeline {
        let local = LocalAws::shared().unwrap_or_else(|e| panic!("{e}"));
        let sdk = local.sdk_config().await;
        let stack = Stack::create(&sdk, &unique(name))
            .await
            .unwrap_or_else(|e| panic!("stack from template.yaml: {e}"));
        let store = Store::new(aws_sdk_dynamodb::Client::new(&sdk), stack.table.clone());
        let bus = Bus::new(aws_sdk_eventbridge::Client::new(&sdk), stack.bus.clone());
        let playbooks = PlaybookSet::starter();
        let create = Create::new(playbooks.clone(), store.clone(), bus.clone(), None);
        let notify = Notify::new(
            playbooks.clone(),
            store.clone(),
            aws_sdk_sns::Client::new(&sdk),
            &firebreak_notify::Config {
                table: stack.table.clone(),
                topic_arn: stack.topic_arn.clone(),
                escalation_topic_arn: stack.escalation_topic_arn.clone(),
            },
        );
        Pipeline {
            sdk,
            stack,
            store,
            bus,
            playbooks,
            create,
            notify,
        }
    }

    /// The enrich stage on this stack. EC2 is moto's; CloudWatch and CloudTrail are stubbed
    /// (moto cannot serve the Rust CloudWatch client's RPC v2 CBOR, nor LookupEvents) with the
    /// composite alarm `alarm_name` in ALARM and one history item. The rules are returned so a
    /// test can count the calls.
    pub fn enrich(&self, alarm_name: &str) -> (Enrich, Vec<Rule>) {
        let name = alarm_name.to_owned();
        let describe = mock!(aws_sdk_cloudwatch::Client::describe_alarms)
            .sequence()
            .output(move || {
                DescribeAlarmsOutput::builder()
                    .composite_alarms(
                        CompositeAlarm::builder()
                            .alarm_name(&name)
                            .alarm_rule("ALARM(CPUUtilizationTooHigh) OR ALARM(DiskReadOpsTooHigh)")
                            .state_value(StateValue::Alarm)
                            .state_reason("arn:aws:cloudwatch:us-east-1:123456789012:alarm:CPUUtilizationTooHigh transitioned to ALARM")
                            .build(),
                    )
                    .build()
            })
            .repeatedly()
            .build();
        let history = mock!(aws_sdk_cloudwatch::Client::describe_alarm_history)
            .sequence()
            .output(|| DescribeAlarmHistoryOutput::builder().build())
            .repeatedly()
            .build();
        let lookup = mock!(aws_sdk_cloudtrail::Client::lookup_events)
            .sequence()
            .output(|| LookupEventsOutput::builder().build())
            .repeatedly()
            .build();
        let cloudwatch = mock_client!(
            aws_sdk_cloudwatch,
            RuleMode::MatchAny,
            [&describe, &history]
        );
        let cloudtrail = mock_client!(aws_sdk_cloudtrail, RuleMode::MatchAny, [&lookup]);
        let enrich = Enrich::new(
            self.store.clone(),
            self.bus.clone(),
            cloudwatch,
            aws_sdk_ec2::Client::new(&self.sdk),
            cloudtrail,
            self.playbooks.clone(),
        );
        (enrich, vec![describe, history, lookup])
    }

    /// The close stage on this stack, keeping its metric lines in memory; Incident Manager off.
    pub fn close(&self, retention_s: i64) -> (Close, MetricsSink) {
        let sink = MetricsSink::memory();
        let close = Close::from_parts(
            self.store.clone(),
            self.bus.clone(),
            None,
            self.playbooks.clone(),
            retention_s,
            sink.clone(),
        );
        (close, sink)
    }

    /// The incident as the store has it.
    pub async fn incident(&self, id: &str) -> Incident {
        self.store
            .get(id)
            .await
            .expect("store answers")
            .unwrap_or_else(|| panic!("no incident {id}"))
    }

    /// The EventBridge events the template's rules delivered to `function` since last asked.
    pub async fn delivered(&self, function: &str) -> Vec<String> {
        self.stack
            .drain(&self.sdk, function)
            .await
            .expect("queue drains")
    }

    /// What a queue subscribed to `topic` received since last asked.
    pub async fn published(&self, topic: &str) -> Vec<SnsMessage> {
        self.stack
            .drain_topic(&self.sdk, topic)
            .await
            .expect("topic queue drains")
    }
}
