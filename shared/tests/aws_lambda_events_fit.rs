//! Where Firebreak reads events with `aws_lambda_events` types, and the evidence for where it
//! does not.
//!
//! The SNS record type fits every real Lambda SNS event, and the alarm state enum is the
//! alarm's own vocabulary, so the parser uses both. The alarm payload and EventBridge envelope
//! types are strict where real events are not (a required, typed `time`; a required `source`
//! and `detail-type`), and they own every string, so they cannot be read in the same pass that
//! finds them; the parser reads those payloads with its own borrowed, lenient types instead.
//! These tests pin the evidence: if the crate loosens, they fail and tell us to reconsider.

use std::path::Path;

use aws_lambda_events::event::cloudwatch_alarms::CloudWatchAlarm;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sns::SnsEvent;
use chrono::DateTime;
use serde_json::Value;

fn fixture(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/events")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn parses_in_firebreak(path: &str) -> bool {
    let received = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    firebreak_shared::signal::parse(fixture(path).as_bytes(), received).is_ok()
}

#[test]
fn the_sns_event_type_reads_every_real_lambda_sns_event() {
    for path in [
        "sns/eos-readme-lambda-sns-wrapping-eventbridge-alarm-event.json",
        "sns/go-testdata-lambda-sns-single-metric-alarm-Url-casing.json",
        "sns/rheoceros-lambda-sns-composite-alarm-triggering-children.json",
        "sns/rheoceros-lambda-sns-metric-alarm-null-description.json",
        "sns/rust-fixture-lambda-sns-metric-math-alarm-2-records.json",
        "sns/rust-fixture-lambda-sns-single-metric-alarm.json",
    ] {
        let event: Result<SnsEvent, _> = serde_json::from_str(&fixture(path));
        assert!(event.is_ok(), "{path}: {event:?}");
        assert!(parses_in_firebreak(path), "{path}");
    }
}

#[test]
fn the_alarm_action_type_refuses_a_recorded_payload_that_firebreak_reads() {
    // Recorded against real AWS, with the times normalised to the word "date": the typed
    // `time` refuses the whole event, where Firebreak falls back to the time it received it.
    let path = "cloudwatch-alarm-direct/localstack-recorded-metric-alarm-lambda-action.json";
    let strict: Result<CloudWatchAlarm<Value, Value>, _> = serde_json::from_str(&fixture(path));
    assert!(
        strict.is_err(),
        "{path} now parses strictly; reconsider the lenient types"
    );
    assert!(parses_in_firebreak(path), "{path}");
}

#[test]
fn the_eventbridge_type_refuses_a_partial_envelope_that_firebreak_reads() {
    let path = "guardduty/waf-acl-partial-envelope-ec2-ssh-bruteforce.json";
    let strict: Result<EventBridgeEvent<Value>, _> = serde_json::from_str(&fixture(path));
    assert!(
        strict.is_err(),
        "{path} now parses strictly; reconsider the probe"
    );
    assert!(parses_in_firebreak(path), "{path}");
}
