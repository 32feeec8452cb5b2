//! `cloudtrail.recent_changes`: who changed the resource in the last day, from CloudTrail's
//! event history (management events, which every account records without a trail).
//!
//! LookupEvents takes one lookup attribute per request, so read-only calls cannot be filtered
//! out by the request when it already filters by resource; they are dropped from the answer
//! instead, and counted.

use aws_sdk_cloudtrail::Client;
use aws_sdk_cloudtrail::types::{Event, LookupAttribute, LookupAttributeKey};
use chrono::{DateTime, TimeDelta, Utc};
use firebreak_shared::aws::AwsError;
use serde_json::{Value, json};

use super::{Failure, Found, iso, iso_millis, to_smithy};

/// How far back "recent" goes.
pub const WINDOW: TimeDelta = TimeDelta::hours(24);
/// Events asked for per resource (LookupEvents allows up to 50).
pub const MAX_RESULTS: i32 = 20;

/// `cloudtrail.recent_changes` for one resource id or name.
pub async fn recent_changes(client: &Client, resource: &str, now: DateTime<Utc>) -> Found {
    let since = now - WINDOW;
    let by_resource = LookupAttribute::builder()
        .attribute_key(LookupAttributeKey::ResourceName)
        .attribute_value(resource)
        .build()
        .map_err(|e| Failure::message(e.to_string()))?;
    let out = client
        .lookup_events()
        .lookup_attributes(by_resource)
        .start_time(to_smithy(since))
        .end_time(to_smithy(now))
        .max_results(MAX_RESULTS)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("cloudtrail", "LookupEvents", &e))?;
    let mut read_only = 0_usize;
    let mut changes = Vec::new();
    for event in out.events() {
        let record = event
            .cloud_trail_event()
            .and_then(|raw| serde_json::from_str::<Value>(raw).ok());
        if is_read_only(event, record.as_ref()) {
            read_only += 1;
            continue;
        }
        changes.push(json!({
            "name": event.event_name(),
            "at": event.event_time().and_then(iso),
            "username": event.username(),
            "source": event.event_source(),
            "error_code": record.as_ref().and_then(|r| r.get("errorCode")).and_then(Value::as_str),
            "event_id": event.event_id(),
        }));
    }
    Ok(json!({
        "since": iso_millis(since.timestamp_millis()),
        "changes": changes,
        "read_only_skipped": (read_only > 0).then_some(read_only),
        "more": out.next_token().is_some().then_some(true),
    }))
}

/// Whether the event only read: the lookup's own `ReadOnly` field when it has one, else the
/// record's `readOnly`. An event that says neither is kept: better one read too many than a
/// change missed.
pub fn is_read_only(event: &Event, record: Option<&Value>) -> bool {
    if let Some(flag) = event.read_only() {
        return flag.eq_ignore_ascii_case("true");
    }
    match record.and_then(|r| r.get("readOnly")) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_comes_from_the_lookup_or_else_the_record() {
        let flagged = Event::builder().read_only("true").build();
        assert!(is_read_only(&flagged, None));
        let unflagged = Event::builder().build();
        assert!(is_read_only(&unflagged, Some(&json!({"readOnly": true}))));
        assert!(!is_read_only(&unflagged, Some(&json!({"readOnly": false}))));
        assert!(!is_read_only(&unflagged, None));
    }
}
