//! `cloudwatch.alarm` and `cloudwatch.alarm_history`: what the alarm watches, what its metric
//! did around the transition that opened the incident, and how the alarm has behaved lately
//! (a new problem or a flapping alarm).
//!
//! Both ask for metric and composite alarms explicitly: DescribeAlarms and DescribeAlarmHistory
//! return metric alarms only when `AlarmTypes` is left out.

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types::{
    AlarmType, CompositeAlarm, Dimension, HistoryItemType, Metric, MetricAlarm, MetricDataQuery,
    MetricDataResult, MetricStat, ScanBy,
};
use chrono::{DateTime, TimeDelta, Utc};
use firebreak_shared::aws::AwsError;
use serde_json::{Map, Value, json};

use super::{Failure, Found, iso, iso_millis, to_smithy};

/// Datapoints kept per series: the ones nearest the transition.
pub const MAX_DATAPOINTS: usize = 100;
/// State changes read from the alarm's history.
pub const HISTORY_RECORDS: i32 = 10;
/// How far back the history goes.
pub const HISTORY_WINDOW: TimeDelta = TimeDelta::hours(24);
/// The datapoint window reaches back at least this far before the transition, so a short
/// alarm still shows what "normal" looked like…
pub const MIN_LOOKBACK: TimeDelta = TimeDelta::minutes(30);
/// …and this far after it, to show whether the breach went on.
pub const AFTER_TRANSITION: TimeDelta = TimeDelta::minutes(10);
/// CloudWatch keeps metrics for 15 months; looking back further only asks for nothing.
const MAX_LOOKBACK: TimeDelta = TimeDelta::days(455);
/// A period for alarms that state none (metric math with periods only inside expressions).
const DEFAULT_PERIOD_S: i32 = 60;

/// `cloudwatch.alarm`: the alarm's configuration and state, and for a metric alarm its
/// datapoints around `transition`.
pub async fn alarm(client: &Client, name: &str, transition: DateTime<Utc>) -> Found {
    let out = client
        .describe_alarms()
        .alarm_names(name)
        .alarm_types(AlarmType::MetricAlarm)
        .alarm_types(AlarmType::CompositeAlarm)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("cloudwatch", "DescribeAlarms", &e))?;
    if let Some(a) = out.metric_alarms().first() {
        return metric_alarm(client, a, transition).await;
    }
    if let Some(a) = out.composite_alarms().first() {
        return Ok(composite(a));
    }
    Err(Failure::message(format!(
        "DescribeAlarms found no alarm named {name:?}; it may have been deleted"
    )))
}

async fn metric_alarm(client: &Client, a: &MetricAlarm, transition: DateTime<Utc>) -> Found {
    let mut data = describe_metric_alarm(a);
    let Some(queries) = queries(a) else {
        data["datapoints"] = json!({"note": "the alarm names no metric or statistic to query"});
        return Ok(data);
    };
    let (start, end) = window(transition, period_s(a), a.evaluation_periods().unwrap_or(1));
    match datapoints(client, queries, start, end, transition).await {
        Ok(points) => {
            data["datapoints"] = points;
            Ok(data)
        }
        // The configuration is worth keeping even when the datapoints are not there.
        Err(e) => Err(Failure {
            data,
            error: e.to_string(),
        }),
    }
}

/// The datapoint window around `transition`: back three times what the alarm evaluates (so the
/// breach shows against what came before) but at least [`MIN_LOOKBACK`], and forward
/// [`AFTER_TRANSITION`].
pub fn window(
    transition: DateTime<Utc>,
    period_s: i32,
    evaluation_periods: i32,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let evaluated = i64::from(period_s.max(1)).saturating_mul(i64::from(evaluation_periods.max(1)));
    let lookback = TimeDelta::try_seconds(evaluated.saturating_mul(3))
        .unwrap_or(MAX_LOOKBACK)
        .clamp(MIN_LOOKBACK, MAX_LOOKBACK);
    (transition - lookback, transition + AFTER_TRANSITION)
}

/// The alarm's period: its own, or for metric math the longest inside its queries.
fn period_s(a: &MetricAlarm) -> i32 {
    a.period()
        .or_else(|| {
            a.metrics()
                .iter()
                .filter_map(|q| q.metric_stat().and_then(MetricStat::period).or(q.period()))
                .max()
        })
        .filter(|p| *p > 0)
        .unwrap_or(DEFAULT_PERIOD_S)
}

/// The GetMetricData queries that show what the alarm evaluates: its own `Metrics` for metric
/// math and anomaly detection alarms (the same shape GetMetricData takes), or one query for
/// its single metric and statistic.
pub fn queries(a: &MetricAlarm) -> Option<Vec<MetricDataQuery>> {
    if !a.metrics().is_empty() {
        return Some(a.metrics().to_vec());
    }
    let stat = a
        .statistic()
        .map(|s| s.as_str().to_owned())
        .or_else(|| a.extended_statistic().map(str::to_owned))?;
    let metric = Metric::builder()
        .namespace(a.namespace()?)
        .metric_name(a.metric_name()?)
        .set_dimensions(Some(a.dimensions().to_vec()))
        .build();
    let stat = MetricStat::builder()
        .metric(metric)
        .period(a.period()?)
        .stat(stat)
        .set_unit(a.unit().cloned())
        .build();
    Some(vec![
        MetricDataQuery::builder()
            .id("m1")
            .metric_stat(stat)
            .return_data(true)
            .build(),
    ])
}

async fn datapoints(
    client: &Client,
    queries: Vec<MetricDataQuery>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    transition: DateTime<Utc>,
) -> Result<Value, AwsError> {
    let out = client
        .get_metric_data()
        .set_metric_data_queries(Some(queries))
        .start_time(to_smithy(start))
        .end_time(to_smithy(end))
        .scan_by(ScanBy::TimestampAscending)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("cloudwatch", "GetMetricData", &e))?;
    let series: Vec<Value> = out
        .metric_data_results()
        .iter()
        .map(|r| series(r, transition.timestamp_millis()))
        .collect();
    Ok(json!({
        "start": iso_millis(start.timestamp_millis()),
        "end": iso_millis(end.timestamp_millis()),
        "series": series,
        // One page is plenty for a window this short; say so if it was not.
        "more": out.next_token().is_some().then_some(true),
    }))
}

fn series(r: &MetricDataResult, center_ms: i64) -> Value {
    let points: Vec<(i64, f64)> = r
        .timestamps()
        .iter()
        .zip(r.values())
        .filter_map(|(t, v)| t.to_millis().ok().map(|ms| (ms, *v)))
        .collect();
    let total = points.len();
    let kept = nearest(points, center_ms, MAX_DATAPOINTS);
    let dropped = total - kept.len();
    json!({
        "id": r.id(),
        "label": r.label(),
        "status": r.status_code().map(|s| s.as_str()),
        "points": kept.iter().map(|(ms, v)| json!([iso_millis(*ms), v])).collect::<Vec<_>>(),
        "dropped": (dropped > 0).then_some(dropped),
    })
}

/// The `cap` points nearest `center_ms`, in time order.
pub fn nearest(mut points: Vec<(i64, f64)>, center_ms: i64, cap: usize) -> Vec<(i64, f64)> {
    if points.len() > cap {
        points.sort_by_key(|(t, _)| t.abs_diff(center_ms));
        points.truncate(cap);
    }
    points.sort_by_key(|(t, _)| *t);
    points
}

fn dimensions(dims: &[Dimension]) -> Value {
    Value::Object(
        dims.iter()
            .filter_map(|d| Some((d.name()?.to_owned(), json!(d.value()?))))
            .collect::<Map<_, _>>(),
    )
}

fn describe_metric_alarm(a: &MetricAlarm) -> Value {
    let metric = a.metric_name().map(|name| {
        json!({
            "namespace": a.namespace(),
            "name": name,
            "dimensions": dimensions(a.dimensions()),
            "statistic": a.statistic().map(|s| s.as_str()).or(a.extended_statistic()),
            "unit": a.unit().map(|u| u.as_str()),
        })
    });
    let metrics: Vec<Value> = a
        .metrics()
        .iter()
        .map(|q| {
            let stat = q.metric_stat();
            let m = stat.and_then(MetricStat::metric);
            json!({
                "id": q.id(),
                "expression": q.expression(),
                "label": q.label(),
                "return_data": q.return_data(),
                "namespace": m.and_then(Metric::namespace),
                "name": m.and_then(Metric::metric_name),
                "dimensions": m.map(|m| dimensions(m.dimensions())),
                "statistic": stat.and_then(MetricStat::stat),
                "period": stat.and_then(MetricStat::period).or(q.period()),
            })
        })
        .collect();
    json!({
        "type": "metric",
        "name": a.alarm_name(),
        "arn": a.alarm_arn(),
        "description": a.alarm_description(),
        "state": a.state_value().map(|s| s.as_str()),
        "reason": a.state_reason(),
        "state_updated": a.state_updated_timestamp().and_then(iso),
        "state_transitioned": a.state_transitioned_timestamp().and_then(iso),
        "threshold": a.threshold(),
        "threshold_metric_id": a.threshold_metric_id(),
        "comparison": a.comparison_operator().map(|c| c.as_str()),
        "period": a.period(),
        "evaluation_periods": a.evaluation_periods(),
        "datapoints_to_alarm": a.datapoints_to_alarm(),
        "treat_missing_data": a.treat_missing_data(),
        "actions_enabled": a.actions_enabled(),
        "metric": metric,
        "metrics": (!metrics.is_empty()).then_some(metrics),
    })
}

fn composite(a: &CompositeAlarm) -> Value {
    json!({
        "type": "composite",
        "name": a.alarm_name(),
        "arn": a.alarm_arn(),
        "description": a.alarm_description(),
        "state": a.state_value().map(|s| s.as_str()),
        "reason": a.state_reason(),
        "state_updated": a.state_updated_timestamp().and_then(iso),
        "state_transitioned": a.state_transitioned_timestamp().and_then(iso),
        "rule": a.alarm_rule(),
        "actions_enabled": a.actions_enabled(),
        "actions_suppressed_by": a.actions_suppressed_by().map(|s| s.as_str()),
        "actions_suppressor": a.actions_suppressor(),
    })
}

/// `cloudwatch.alarm_history`: the alarm's last [`HISTORY_RECORDS`] state changes in the
/// [`HISTORY_WINDOW`] before `now`, newest first.
pub async fn history(client: &Client, name: &str, now: DateTime<Utc>) -> Found {
    let since = now - HISTORY_WINDOW;
    let out = client
        .describe_alarm_history()
        .alarm_name(name)
        .alarm_types(AlarmType::MetricAlarm)
        .alarm_types(AlarmType::CompositeAlarm)
        .history_item_type(HistoryItemType::StateUpdate)
        .start_date(to_smithy(since))
        .end_date(to_smithy(now))
        .max_records(HISTORY_RECORDS)
        .scan_by(ScanBy::TimestampDescending)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("cloudwatch", "DescribeAlarmHistory", &e))?;
    let changes: Vec<Value> = out
        .alarm_history_items()
        .iter()
        .map(|item| {
            let (from, to) = states(item.history_data());
            json!({
                "at": item.timestamp().and_then(iso),
                "from": from,
                "to": to,
                "summary": item.history_summary(),
            })
        })
        .collect();
    Ok(json!({
        "since": iso_millis(since.timestamp_millis()),
        "changes": changes,
        "more": out.next_token().is_some().then_some(true),
    }))
}

/// The old and new state in a StateUpdate item's `HistoryData` JSON; `None` for whatever it
/// does not say (the summary still does).
fn states(history_data: Option<&str>) -> (Option<String>, Option<String>) {
    let Some(v) = history_data.and_then(|d| serde_json::from_str::<Value>(d).ok()) else {
        return (None, None);
    };
    let state = |key: &str| {
        v.get(key)
            .and_then(|s| s.get("stateValue"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    (state("oldState"), state("newState"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudwatch::types::{ComparisonOperator, StandardUnit, Statistic};

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap_or_default()
    }

    #[test]
    fn a_short_alarm_window_still_spans_half_an_hour_before_and_ten_minutes_after() {
        let (start, end) = window(at(10_000), 60, 1);
        assert_eq!(start, at(10_000 - 1800));
        assert_eq!(end, at(10_000 + 600));
    }

    #[test]
    fn a_long_alarm_window_reaches_back_three_evaluations() {
        let (start, _) = window(at(100_000), 300, 5);
        assert_eq!(start, at(100_000 - 3 * 300 * 5));
    }

    #[test]
    fn an_absurd_alarm_window_stays_within_metric_retention() {
        let (start, _) = window(at(100_000_000), i32::MAX, i32::MAX);
        assert_eq!(at(100_000_000) - start, MAX_LOOKBACK);
    }

    #[test]
    fn capped_datapoints_are_the_ones_nearest_the_transition_in_time_order() {
        let points: Vec<(i64, f64)> = (0..10).map(|i| (i * 60_000, i as f64)).collect();
        let kept = nearest(points, 5 * 60_000, 3);
        assert_eq!(kept, [(240_000, 4.0), (300_000, 5.0), (360_000, 6.0)]);
    }

    #[test]
    fn a_single_metric_alarm_becomes_one_query_for_its_statistic() {
        let a = MetricAlarm::builder()
            .alarm_name("cpu")
            .namespace("AWS/EC2")
            .metric_name("CPUUtilization")
            .dimensions(Dimension::builder().name("InstanceId").value("i-1").build())
            .statistic(Statistic::Average)
            .period(300)
            .unit(StandardUnit::Percent)
            .evaluation_periods(2)
            .threshold(80.0)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .build();
        let q = queries(&a).unwrap_or_default();
        assert_eq!(q.len(), 1);
        let stat = q[0].metric_stat().expect("a metric stat");
        assert_eq!(stat.stat(), Some("Average"));
        assert_eq!(stat.period(), Some(300));
        assert_eq!(stat.unit(), Some(&StandardUnit::Percent));
        let m = stat.metric().expect("a metric");
        assert_eq!(m.metric_name(), Some("CPUUtilization"));
        assert_eq!(m.dimensions()[0].value(), Some("i-1"));
        let described = describe_metric_alarm(&a);
        assert_eq!(
            described["metric"]["dimensions"],
            json!({"InstanceId": "i-1"})
        );
        assert_eq!(described["comparison"], "GreaterThanThreshold");
    }

    #[test]
    fn an_alarm_without_a_statistic_has_no_query() {
        let a = MetricAlarm::builder()
            .namespace("AWS/EC2")
            .metric_name("CPUUtilization")
            .period(60)
            .build();
        assert_eq!(queries(&a), None);
    }

    #[test]
    fn history_data_yields_the_states_it_moved_between() {
        let d =
            r#"{"version":"1.0","oldState":{"stateValue":"OK"},"newState":{"stateValue":"ALARM"}}"#;
        assert_eq!(
            states(Some(d)),
            (Some("OK".to_owned()), Some("ALARM".to_owned()))
        );
        assert_eq!(states(Some("not json")), (None, None));
    }
}
