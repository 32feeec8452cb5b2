//! The enrichers against stubbed CloudWatch, EC2 and CloudTrail clients (aws-smithy-mocks).
//!
//! A local AWS cannot stand in here: the Rust CloudWatch client speaks RPC v2 CBOR, which moto
//! does not serve, and moto has no LookupEvents. Each stub checks the request's shape (names,
//! time windows, queries) before it answers, so these tests pin the calls as the AWS API
//! reference describes them. The store and bus clients point nowhere: none of these paths may
//! touch them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_cloudtrail::operation::lookup_events::{LookupEventsError, LookupEventsOutput};
use aws_sdk_cloudtrail::types::{Event as TrailEvent, LookupAttributeKey};
use aws_sdk_cloudwatch::operation::describe_alarm_history::DescribeAlarmHistoryOutput;
use aws_sdk_cloudwatch::operation::describe_alarms::{DescribeAlarmsError, DescribeAlarmsOutput};
use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
use aws_sdk_cloudwatch::types::{
    AlarmHistoryItem, AlarmType, ComparisonOperator, Dimension, HistoryItemType, Metric,
    MetricAlarm, MetricDataQuery, MetricDataResult, MetricStat, ScanBy, StateValue, Statistic,
    StatusCode,
};
use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
use aws_sdk_ec2::types::{Instance, Reservation, Tag};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use chrono::{DateTime, TimeDelta, Utc};
use firebreak_enrich::Enrich;
use firebreak_enrich::enrichers::to_smithy;
use firebreak_shared::incident::{EnrichmentResult, Incident, incident_id};
use firebreak_shared::lifecycle::Bus;
use firebreak_shared::playbook::PlaybookSet;
use firebreak_shared::store::Store;
use firebreak_shared::triage::decide;
use serde_json::json;

const ALARM_EVENT: &[u8] = include_bytes!(
    "../../../tests/fixtures/events/cloudwatch-alarm/docs-single-metric-alarm-ok-to-alarm.json"
);
const ALARM: &str = "ServerCpuTooHigh";
const INSTANCE: &str = "i-12345678901234567";

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_570_036_000, 0).unwrap_or_default()
}

/// Standard retries, as the functions' SDK config has them, with backoff short enough for a
/// test. `mock_client!` alone leaves retries at the client default; this makes them explicit.
fn retry() -> aws_sdk_cloudwatch::config::retry::RetryConfig {
    aws_sdk_cloudwatch::config::retry::RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(1))
        .with_max_backoff(Duration::from_millis(5))
}

fn cloudwatch(rules: &[&Rule]) -> aws_sdk_cloudwatch::Client {
    mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, rules, |b| b
        .retry_config(retry()))
}

fn ec2(rules: &[&Rule]) -> aws_sdk_ec2::Client {
    mock_client!(aws_sdk_ec2, RuleMode::MatchAny, rules, |b| b
        .retry_config(retry()))
}

fn cloudtrail(rules: &[&Rule]) -> aws_sdk_cloudtrail::Client {
    mock_client!(aws_sdk_cloudtrail, RuleMode::MatchAny, rules, |b| b
        .retry_config(retry()))
}

/// A store and bus that cannot be reached: a call to either fails the test's expectations.
fn nowhere() -> (Store, Bus) {
    let region = aws_sdk_dynamodb::config::Region::new("us-east-1");
    let ddb = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(region.clone())
        .endpoint_url("http://127.0.0.1:9")
        .build();
    let events = aws_sdk_eventbridge::Config::builder()
        .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
        .region(region)
        .endpoint_url("http://127.0.0.1:9")
        .build();
    (
        Store::new(aws_sdk_dynamodb::Client::from_conf(ddb), "incidents"),
        Bus::new(aws_sdk_eventbridge::Client::from_conf(events), "firebreak"),
    )
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

/// The incident the alarm fixture opens under `playbooks`.
fn incident(playbooks: &PlaybookSet) -> Incident {
    let signal = firebreak_shared::signal::parse(ALARM_EVENT, now())
        .expect("fixture parses")
        .remove(0);
    let decision = decide(&signal, playbooks);
    let id = incident_id(&signal, &decision.dedupe_key);
    Incident::open(&decision, id, now())
}

fn stage(
    enrich: &str,
    cw: aws_sdk_cloudwatch::Client,
    ec2: aws_sdk_ec2::Client,
    ct: aws_sdk_cloudtrail::Client,
) -> (Enrich, Incident) {
    let set = playbooks(enrich);
    let incident = incident(&set);
    let (store, bus) = nowhere();
    (Enrich::new(store, bus, cw, ec2, ct, set), incident)
}

fn only<'a>(results: &'a [EnrichmentResult], enricher: &str) -> &'a EnrichmentResult {
    let mut found = results.iter().filter(|r| r.enricher == enricher);
    let r = found
        .next()
        .unwrap_or_else(|| panic!("no {enricher} result in {results:?}"));
    assert!(found.next().is_none(), "more than one {enricher} result");
    r
}

fn metric_alarm() -> MetricAlarm {
    MetricAlarm::builder()
        .alarm_name(ALARM)
        .alarm_arn(format!("arn:aws:cloudwatch:us-east-1:123456789012:alarm:{ALARM}"))
        .state_value(StateValue::Alarm)
        .state_reason("Threshold Crossed: 1 out of the last 1 datapoints was greater than the threshold (50.0)")
        .namespace("AWS/EC2")
        .metric_name("CPUUtilization")
        .dimensions(Dimension::builder().name("InstanceId").value(INSTANCE).build())
        .statistic(Statistic::Average)
        .period(300)
        .evaluation_periods(1)
        .threshold(50.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .build()
}

fn no_calls_cloudtrail() -> aws_sdk_cloudtrail::Client {
    cloudtrail(&[])
}

fn no_calls_ec2() -> aws_sdk_ec2::Client {
    ec2(&[])
}

#[tokio::test]
async fn alarm_context_is_its_configuration_and_its_metric_around_the_transition() {
    let transition = incident(&playbooks("cloudwatch.alarm")).signals.first_seen;
    let describe = mock!(aws_sdk_cloudwatch::Client::describe_alarms)
        .match_requests(|r| {
            r.alarm_names() == [ALARM]
                && r.alarm_types().contains(&AlarmType::MetricAlarm)
                && r.alarm_types().contains(&AlarmType::CompositeAlarm)
        })
        .then_output(|| {
            DescribeAlarmsOutput::builder()
                .metric_alarms(metric_alarm())
                .build()
        });
    // Period 300 s × 1 evaluation × 3 is under half an hour, so the window is the minimum.
    let (start, end) = (
        to_smithy(transition - TimeDelta::minutes(30)),
        to_smithy(transition + TimeDelta::minutes(10)),
    );
    let seen = Arc::new(Mutex::new(Vec::<MetricDataQuery>::new()));
    let seen_in_rule = Arc::clone(&seen);
    let data = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .match_requests(move |r| {
            *seen_in_rule.lock().expect("lock") = r.metric_data_queries().to_vec();
            r.start_time() == Some(&start) && r.end_time() == Some(&end)
        })
        .then_output(move || {
            GetMetricDataOutput::builder()
                .metric_data_results(
                    MetricDataResult::builder()
                        .id("m1")
                        .label("CPUUtilization")
                        .status_code(StatusCode::Complete)
                        .timestamps(to_smithy(transition - TimeDelta::minutes(5)))
                        .values(12.5)
                        .timestamps(to_smithy(transition))
                        .values(99.5)
                        .build(),
                )
                .build()
        });
    let (stage, incident) = stage(
        "cloudwatch.alarm",
        cloudwatch(&[&describe, &data]),
        no_calls_ec2(),
        no_calls_cloudtrail(),
    );

    let results = stage.gather(&incident, now()).await;

    let r = only(&results, "cloudwatch.alarm");
    assert_eq!(
        (r.outcome.as_str(), r.error.as_deref()),
        ("ok", None),
        "{r:?}"
    );
    assert_eq!(r.target.as_deref(), Some(ALARM));
    assert_eq!(r.data["state"], "ALARM");
    assert_eq!(r.data["threshold"], 50.0);
    assert_eq!(r.data["comparison"], "GreaterThanThreshold");
    assert_eq!(
        r.data["metric"]["dimensions"],
        json!({"InstanceId": INSTANCE})
    );
    assert_eq!(r.data["datapoints"]["series"][0]["points"][1][1], 99.5);
    assert_eq!(
        data.num_calls(),
        1,
        "GetMetricData is asked once, for the window"
    );
    let queries = seen.lock().expect("lock").clone();
    assert_eq!(queries.len(), 1);
    let stat = queries[0].metric_stat().expect("a metric query");
    let metric = stat.metric().expect("the alarm's metric");
    assert_eq!(
        (
            metric.namespace(),
            metric.metric_name(),
            stat.stat(),
            stat.period()
        ),
        (
            Some("AWS/EC2"),
            Some("CPUUtilization"),
            Some("Average"),
            Some(300)
        )
    );
    assert_eq!(metric.dimensions()[0].value(), Some(INSTANCE));
}

#[tokio::test]
async fn a_metric_math_alarm_is_charted_with_its_own_queries_over_three_evaluations() {
    let transition = incident(&playbooks("cloudwatch.alarm")).signals.first_seen;
    let m1 = MetricDataQuery::builder()
        .id("m1")
        .return_data(false)
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace("AWS/ApplicationELB")
                        .metric_name("HTTPCode_Target_5XX_Count")
                        .build(),
                )
                .period(60)
                .stat("Sum")
                .build(),
        )
        .build();
    let e1 = MetricDataQuery::builder()
        .id("e1")
        .expression("m1 * 100")
        .label("errors")
        .return_data(true)
        .build();
    let alarm = MetricAlarm::builder()
        .alarm_name(ALARM)
        .state_value(StateValue::Alarm)
        .metrics(m1.clone())
        .metrics(e1.clone())
        .evaluation_periods(20)
        .threshold(5.0)
        .build();
    let describe = mock!(aws_sdk_cloudwatch::Client::describe_alarms).then_output(move || {
        DescribeAlarmsOutput::builder()
            .metric_alarms(alarm.clone())
            .build()
    });
    // 60 s × 20 evaluations × 3 = one hour back.
    let start = to_smithy(transition - TimeDelta::hours(1));
    let expected = vec![m1, e1];
    let data = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .match_requests(move |r| {
            r.start_time() == Some(&start) && r.metric_data_queries() == expected
        })
        .then_output(|| GetMetricDataOutput::builder().build());
    let (stage, incident) = stage(
        "cloudwatch.alarm",
        cloudwatch(&[&describe, &data]),
        no_calls_ec2(),
        no_calls_cloudtrail(),
    );

    let results = stage.gather(&incident, now()).await;

    let r = only(&results, "cloudwatch.alarm");
    assert_eq!(r.outcome, "ok", "{r:?}");
    assert_eq!(
        data.num_calls(),
        1,
        "the request matched the alarm's own queries and window"
    );
    assert_eq!(r.data["metrics"][1]["expression"], "m1 * 100");
}

#[tokio::test]
async fn alarm_history_is_the_last_days_state_changes_newest_first() {
    let (start, end) = (to_smithy(now() - TimeDelta::hours(24)), to_smithy(now()));
    let history = mock!(aws_sdk_cloudwatch::Client::describe_alarm_history)
        .match_requests(move |r| {
            r.alarm_name() == Some(ALARM)
                && r.history_item_type() == Some(&HistoryItemType::StateUpdate)
                && r.alarm_types().contains(&AlarmType::MetricAlarm)
                && r.alarm_types().contains(&AlarmType::CompositeAlarm)
                && r.start_date() == Some(&start)
                && r.end_date() == Some(&end)
                && r.max_records() == Some(10)
                && r.scan_by() == Some(&ScanBy::TimestampDescending)
        })
        .then_output(|| {
            DescribeAlarmHistoryOutput::builder()
                .alarm_history_items(
                    AlarmHistoryItem::builder()
                        .alarm_name(ALARM)
                        .history_item_type(HistoryItemType::StateUpdate)
                        .timestamp(to_smithy(now() - TimeDelta::minutes(20)))
                        .history_summary("Alarm updated from OK to ALARM")
                        .history_data(r#"{"version":"1.0","oldState":{"stateValue":"OK"},"newState":{"stateValue":"ALARM"}}"#)
                        .build(),
                )
                .build()
        });
    let (stage, incident) = stage(
        "cloudwatch.alarm_history",
        cloudwatch(&[&history]),
        no_calls_ec2(),
        no_calls_cloudtrail(),
    );

    let results = stage.gather(&incident, now()).await;

    let r = only(&results, "cloudwatch.alarm_history");
    assert_eq!(r.outcome, "ok", "{r:?}");
    assert_eq!(
        history.num_calls(),
        1,
        "the request had the name, type and window"
    );
    assert_eq!(
        r.data["changes"],
        json!([{
            "at": "2019-10-02T16:46:40Z",
            "from": "OK",
            "to": "ALARM",
            "summary": "Alarm updated from OK to ALARM",
        }])
    );
}

fn trail_event(name: &str, read_only: Option<&str>, record: serde_json::Value) -> TrailEvent {
    TrailEvent::builder()
        .event_id(format!("id-{name}"))
        .event_name(name)
        .event_source("ec2.amazonaws.com")
        .username("alice")
        .event_time(to_smithy(now() - TimeDelta::hours(1)))
        .set_read_only(read_only.map(str::to_owned))
        .cloud_trail_event(record.to_string())
        .build()
}

fn lookup_for(resource: &'static str) -> Rule {
    let (start, end) = (to_smithy(now() - TimeDelta::hours(24)), to_smithy(now()));
    mock!(aws_sdk_cloudtrail::Client::lookup_events)
        .match_requests(move |r| {
            let attrs = r.lookup_attributes();
            attrs.len() == 1
                && attrs[0].attribute_key() == &LookupAttributeKey::ResourceName
                && attrs[0].attribute_value() == resource
                && r.start_time() == Some(&start)
                && r.end_time() == Some(&end)
                && r.max_results() == Some(20)
        })
        .then_output(|| {
            LookupEventsOutput::builder()
                .events(trail_event("DescribeInstances", Some("true"), json!({})))
                .events(trail_event(
                    "GetConsoleOutput",
                    None,
                    json!({"readOnly": true}),
                ))
                .events(trail_event(
                    "ModifyInstanceAttribute",
                    Some("false"),
                    json!({"readOnly": false, "errorCode": "UnauthorizedOperation"}),
                ))
                .build()
        })
}

#[tokio::test]
async fn recent_changes_are_the_last_days_writes_to_each_resource() {
    let lookup = lookup_for(INSTANCE);
    let alarm_lookup = mock!(aws_sdk_cloudtrail::Client::lookup_events)
        .match_requests(|r| {
            r.lookup_attributes()
                .first()
                .is_some_and(|a| a.attribute_value().starts_with("arn:aws:cloudwatch:"))
        })
        .then_output(|| LookupEventsOutput::builder().build());
    let (stage, incident) = stage(
        "cloudtrail.recent_changes",
        cloudwatch(&[]),
        no_calls_ec2(),
        cloudtrail(&[&lookup, &alarm_lookup]),
    );

    let results = stage.gather(&incident, now()).await;

    assert_eq!(results.len(), 2, "one lookup per resource: {results:?}");
    let on_instance = results
        .iter()
        .find(|r| r.target.as_deref() == Some(INSTANCE))
        .expect("the instance's changes");
    assert_eq!(on_instance.outcome, "ok", "{on_instance:?}");
    assert_eq!(
        lookup.num_calls(),
        1,
        "the lookup had the resource and the 24 h window"
    );
    assert_eq!(
        on_instance.data["changes"],
        json!([{
            "name": "ModifyInstanceAttribute",
            "at": "2019-10-02T16:06:40Z",
            "username": "alice",
            "source": "ec2.amazonaws.com",
            "error_code": "UnauthorizedOperation",
            "event_id": "id-ModifyInstanceAttribute",
        }])
    );
    assert_eq!(on_instance.data["read_only_skipped"], 2);
}

fn instance_output() -> DescribeInstancesOutput {
    DescribeInstancesOutput::builder()
        .reservations(
            Reservation::builder()
                .instances(
                    Instance::builder()
                        .instance_id(INSTANCE)
                        .vpc_id("vpc-1")
                        .subnet_id("subnet-1")
                        .tags(Tag::builder().key("team").value("payments").build())
                        .build(),
                )
                .build(),
        )
        .build()
}

#[tokio::test]
async fn a_failing_enricher_is_recorded_as_failed_and_the_others_still_succeed() {
    let denied = mock!(aws_sdk_cloudwatch::Client::describe_alarms).then_error(|| {
        DescribeAlarmsError::generic(
            aws_sdk_cloudwatch::error::ErrorMetadata::builder()
                .code("AccessDenied")
                .message("not authorized to perform cloudwatch:DescribeAlarms")
                .build(),
        )
    });
    let history = mock!(aws_sdk_cloudwatch::Client::describe_alarm_history)
        .then_output(|| DescribeAlarmHistoryOutput::builder().build());
    let instance = mock!(aws_sdk_ec2::Client::describe_instances)
        .match_requests(|r| r.instance_ids() == [INSTANCE])
        .then_output(instance_output);
    let (stage, incident) = stage(
        "cloudwatch.alarm, cloudwatch.alarm_history, ec2.instance",
        cloudwatch(&[&denied, &history]),
        ec2(&[&instance]),
        no_calls_cloudtrail(),
    );

    let results = stage.gather(&incident, now()).await;

    let failed = only(&results, "cloudwatch.alarm");
    assert_eq!(failed.outcome, "failed");
    let error = failed.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("DescribeAlarms") && error.contains("AccessDenied"),
        "{error}"
    );
    assert_eq!(denied.num_calls(), 1, "an access error is not retried");
    assert_eq!(only(&results, "cloudwatch.alarm_history").outcome, "ok");
    let ec2 = only(&results, "ec2.instance");
    assert_eq!(ec2.outcome, "ok", "{ec2:?}");
    assert_eq!(ec2.data["team"], "payments");
    assert_eq!(ec2.data["vpc_id"], "vpc-1");
}

#[tokio::test]
async fn throttling_is_retried_by_the_sdk_and_then_succeeds() {
    let throttled_once = mock!(aws_sdk_cloudtrail::Client::lookup_events)
        .sequence()
        .error(|| {
            LookupEventsError::generic(
                aws_sdk_cloudtrail::error::ErrorMetadata::builder()
                    .code("ThrottlingException")
                    .message("Rate exceeded")
                    .build(),
            )
        })
        .output(|| LookupEventsOutput::builder().build())
        .build();
    let set = playbooks("cloudtrail.recent_changes");
    let mut incident = incident(&set);
    incident.resources.retain(|r| r.id == INSTANCE);
    let (store, bus) = nowhere();
    let stage = Enrich::new(
        store,
        bus,
        cloudwatch(&[]),
        no_calls_ec2(),
        cloudtrail(&[&throttled_once]),
        set,
    );

    let results = stage.gather(&incident, now()).await;

    let r = only(&results, "cloudtrail.recent_changes");
    assert_eq!(
        (r.outcome.as_str(), r.error.as_deref()),
        ("ok", None),
        "{r:?}"
    );
    assert_eq!(
        throttled_once.num_calls(),
        2,
        "one throttled attempt, one that succeeded"
    );
}

#[tokio::test]
async fn a_persistent_server_error_ends_as_a_recorded_failure_after_the_retries() {
    let unavailable = mock!(aws_sdk_ec2::Client::describe_instances)
        .sequence()
        .http_status(503, None)
        .repeatedly()
        .build();
    let (stage, incident) = stage(
        "ec2.instance",
        cloudwatch(&[]),
        ec2(&[&unavailable]),
        no_calls_cloudtrail(),
    );

    let results = stage.gather(&incident, now()).await;

    let r = only(&results, "ec2.instance");
    assert_eq!(r.outcome, "failed");
    let error = r.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("DescribeInstances") && error.contains("503"),
        "{error}"
    );
    assert_eq!(
        unavailable.num_calls(),
        3,
        "the SDK made all three standard attempts"
    );
}

#[tokio::test]
async fn datapoints_that_cannot_be_read_still_leave_the_alarm_configuration() {
    let describe = mock!(aws_sdk_cloudwatch::Client::describe_alarms).then_output(|| {
        DescribeAlarmsOutput::builder()
            .metric_alarms(metric_alarm())
            .build()
    });
    let data = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .sequence()
        .http_status(500, None)
        .repeatedly()
        .build();
    let (stage, incident) = stage(
        "cloudwatch.alarm",
        cloudwatch(&[&describe, &data]),
        no_calls_ec2(),
        no_calls_cloudtrail(),
    );

    let results = stage.gather(&incident, now()).await;

    let r = only(&results, "cloudwatch.alarm");
    assert_eq!(r.outcome, "failed");
    assert!(
        r.error
            .as_deref()
            .unwrap_or_default()
            .contains("GetMetricData"),
        "{r:?}"
    );
    assert_eq!(r.data["state"], "ALARM", "the configuration is kept: {r:?}");
}

#[tokio::test]
async fn an_enricher_with_nothing_to_look_at_is_skipped_without_a_call() {
    let set = playbooks("ec2.instance");
    let mut incident = incident(&set);
    incident.resources.retain(|r| r.id != INSTANCE);
    let (store, bus) = nowhere();
    let stage = Enrich::new(store, bus, cloudwatch(&[]), ec2(&[]), cloudtrail(&[]), set);

    let results = stage.gather(&incident, now()).await;

    let r = only(&results, "ec2.instance");
    assert_eq!((r.outcome.as_str(), r.target.as_deref()), ("skipped", None));
    assert!(r.error.is_some(), "a skip says why");
}

#[tokio::test]
async fn an_incident_without_a_deployed_playbook_gathers_nothing() {
    let set = playbooks("ec2.instance");
    let mut incident = incident(&set);
    incident.playbook = Some("retired".to_owned());
    let (store, bus) = nowhere();
    let stage = Enrich::new(store, bus, cloudwatch(&[]), ec2(&[]), cloudtrail(&[]), set);
    assert!(stage.gather(&incident, now()).await.is_empty());
    incident.playbook = None;
    assert!(stage.gather(&incident, now()).await.is_empty());
}

#[tokio::test]
async fn events_the_stage_cannot_act_on_are_refused_without_touching_aws() {
    let (stage, incident) = stage("ec2.instance", cloudwatch(&[]), ec2(&[]), cloudtrail(&[]));
    let not_json = stage
        .handle(b"{\"source\": ", now())
        .await
        .expect("refused, not failed");
    assert!(not_json["refused"].is_string(), "{not_json}");
    let signal = stage
        .handle(ALARM_EVENT, now())
        .await
        .expect("refused, not failed");
    assert!(
        signal["refused"].is_string(),
        "a signal is not a lifecycle event: {signal}"
    );
    let enriched = json!({
        "source": "firebreak",
        "detail-type": "Incident Enriched",
        "detail": {
            "schema_version": "1", "event_id": format!("{}/enriched", incident.id),
            "incident_id": incident.id, "dedupe_key": incident.dedupe_key, "status": "open",
            "severity": "high", "playbook": "t", "title": "t", "version": 2, "at": now(),
        },
    });
    let wrong_kind = stage
        .handle(enriched.to_string().as_bytes(), now())
        .await
        .expect("refused, not failed");
    assert!(
        wrong_kind["refused"]
            .as_str()
            .unwrap_or_default()
            .contains("Incident Enriched"),
        "{wrong_kind}"
    );
}
