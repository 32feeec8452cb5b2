//! The parser against the corpus of real published events in `tests/fixtures/events`, and
//! against inputs built to break it.
//!
//! `tests/fixtures/expected.json` states, for every fixture, the signals parsing must give (the
//! five fields that decide what Firebreak does) or a stable part of the refusal. The CLI's own
//! corpus test reads the same file, so the two cannot drift apart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use firebreak_shared::signal::{MAX_EVENT_BYTES, ParseError, Signal, parse};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    refused: Option<String>,
    signals: Option<Vec<ExpectedSignal>>,
}

#[derive(Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct ExpectedSignal {
    source: String,
    action: String,
    severity: String,
    dedupe_key: String,
    resources: Vec<String>,
}

impl From<&Signal> for ExpectedSignal {
    fn from(s: &Signal) -> Self {
        ExpectedSignal {
            source: s.source.as_str().to_owned(),
            action: s.action.as_str().to_owned(),
            severity: s.severity.as_str().to_owned(),
            dedupe_key: s.dedupe_key.clone(),
            resources: s.resources.iter().map(|r| r.id.clone()).collect(),
        }
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn received() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5)
        .single()
        .expect("valid time")
}

/// Every file under `events/`, as `family/name.json`, sorted.
fn event_files() -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                let rel = path.strip_prefix(root).expect("under root");
                let parts: Vec<_> = rel.iter().map(|p| p.to_string_lossy()).collect();
                out.push(parts.join("/"));
            }
        }
    }
    let root = fixtures().join("events");
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    files.sort();
    files
}

fn read_event(rel: &str) -> Vec<u8> {
    let path = fixtures().join("events").join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn expected() -> BTreeMap<String, Expected> {
    let path = fixtures().join("expected.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assert_one_line(err: &ParseError, context: &str) {
    let msg = err.to_string();
    assert!(
        !msg.is_empty() && !msg.contains(['\n', '\r']),
        "{context}: refusal is not one line: {msg:?}"
    );
}

#[test]
fn every_fixture_parses_as_expected() {
    let expected = expected();
    let mut mismatches = Vec::new();
    for rel in event_files() {
        let Some(want) = expected.get(&rel) else {
            continue; // reported by every_fixture_is_listed_in_expected_and_vice_versa
        };
        let got = parse(&read_event(&rel), received());
        match (got, &want.refused, &want.signals) {
            (Ok(signals), None, Some(want)) => {
                let got: Vec<ExpectedSignal> = signals.iter().map(ExpectedSignal::from).collect();
                if &got != want {
                    mismatches.push(format!("{rel}:\n    want {want:?}\n    got  {got:?}"));
                }
            }
            (Err(err), Some(want), None) => {
                assert_one_line(&err, &rel);
                if !err.to_string().contains(want.as_str()) {
                    mismatches.push(format!(
                        "{rel}: refused with `{err}`, which does not contain `{want}`"
                    ));
                }
            }
            (Ok(signals), Some(want), None) => {
                let got: Vec<ExpectedSignal> = signals.iter().map(ExpectedSignal::from).collect();
                mismatches.push(format!("{rel}: expected refusal `{want}`, got {got:?}"));
            }
            (Err(err), None, Some(_)) => {
                mismatches.push(format!("{rel}: expected signals, refused with `{err}`"));
            }
            _ => mismatches.push(format!(
                "{rel}: expected.json must give exactly one of \"refused\" and \"signals\""
            )),
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} fixture(s) disagree with expected.json:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn every_fixture_is_listed_in_expected_and_vice_versa() {
    let files = event_files();
    let expected = expected();
    assert!(files.len() >= 62, "fixtures missing: found {}", files.len());
    let unlisted: Vec<_> = files
        .iter()
        .filter(|f| !expected.contains_key(*f))
        .collect();
    let stale: Vec<_> = expected.keys().filter(|k| !files.contains(k)).collect();
    assert!(
        unlisted.is_empty() && stale.is_empty(),
        "not in expected.json: {unlisted:?}\nin expected.json but no such fixture: {stale:?}"
    );
}

#[test]
fn signals_of_one_event_share_one_raw_copy_of_the_input() {
    for rel in event_files() {
        let input = read_event(&rel);
        let Ok(signals) = parse(&input, received()) else {
            continue;
        };
        assert!(!signals.is_empty(), "{rel}: Ok with no signals");
        for s in &signals {
            assert_eq!(s.raw.as_bytes(), input.as_slice(), "{rel}");
            assert!(std::sync::Arc::ptr_eq(&s.raw, &signals[0].raw), "{rel}");
            assert!(!s.title.is_empty() && !s.title.contains('\n'), "{rel}");
            assert!(!s.kind.is_empty(), "{rel}");
            assert!(s.count >= 1, "{rel}");
        }
    }
}

fn refuse(input: &[u8]) -> ParseError {
    let context = String::from_utf8_lossy(input.get(..60).unwrap_or(input)).into_owned();
    let err = match parse(input, received()) {
        Ok(signals) => panic!("{context:?}: accepted as {} signal(s)", signals.len()),
        Err(err) => err,
    };
    assert_one_line(&err, &context);
    err
}

#[test]
fn empty_and_whitespace_only_input_is_empty() {
    assert_eq!(refuse(b""), ParseError::Empty);
    assert_eq!(refuse(b" \n\t\r "), ParseError::Empty);
}

#[test]
fn every_fixture_cut_in_half_is_invalid_json() {
    for rel in event_files() {
        let input = read_event(&rel);
        let half = input.get(..input.len() / 2).unwrap_or_default();
        let err = refuse(half);
        assert!(matches!(err, ParseError::InvalidJson(_)), "{rel}: {err}");
    }
}

#[test]
fn not_json_is_invalid_json() {
    for input in [
        &b"hello"[..],
        b"{not json}",
        b"{\"source\": \"aws.guardduty\",}",
        b"{\"a\":1} trailing",
        b"\xef\xbb\xbf{}",
        b"\xff\xfe{}",
        b"<xml/>",
    ] {
        let err = refuse(input);
        assert!(matches!(err, ParseError::InvalidJson(_)), "{err}");
    }
}

#[test]
fn top_level_non_objects_are_named() {
    for (input, found) in [
        (&b"[1, 2, 3]"[..], "an array"),
        (b"\"a string\"", "a string"),
        (b"42", "a number"),
        (b"-1.5e3", "a number"),
        (b"true", "a boolean"),
        (b"null", "null"),
        (b"  [{\"SchemaVersion\": \"2018-10-08\"}]", "an array"),
    ] {
        assert_eq!(refuse(input), ParseError::NotAnObject(found));
    }
}

#[test]
fn wrong_types_in_known_fields_are_malformed() {
    for input in [
        r#"{"source": "aws.guardduty", "detail-type": 5, "detail": {}}"#,
        r#"{"source": ["aws.guardduty"], "detail-type": "GuardDuty Finding", "detail": {}}"#,
        r#"{"source": "aws.guardduty", "detail-type": "GuardDuty Finding", "detail": "x"}"#,
        r#"{"source": "aws.guardduty", "detail-type": "GuardDuty Finding", "detail": {"id": "a", "type": "t", "resource": []}}"#,
        r#"{"source": "aws.securityhub", "detail-type": "Security Hub Findings - Imported", "detail": {"findings": "x"}}"#,
        r#"{"source": "aws.securityhub", "detail-type": "Security Hub Findings - Imported", "detail": {"findings": {}}}"#,
        r#"{"source": "aws.securityhub", "detail-type": "Security Hub Findings - Imported", "detail": {"findings": [1]}}"#,
        r#"{"source": "aws.securityhub", "detail-type": "Security Hub Findings - Imported", "detail": {"findings": []}}"#,
        r#"{"source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change", "detail": {"alarmName": "a", "state": "ALARM"}}"#,
        r#"{"source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change", "detail": {"alarmName": "a"}}"#,
        r#"{"source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change", "detail": []}"#,
        r#"{"source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change"}"#,
        r#"{"detail-type": "GuardDuty Finding", "detail": {}}"#,
        r#"{"alarmArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:a", "alarmData": 7}"#,
        r#"{"Records": "x"}"#,
        r#"{"Records": []}"#,
        r#"{"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "{}"}}]}"#,
        r#"{"AlarmName": "a", "NewStateValue": 3}"#,
        r#"{"Findings": {"Id": "x"}}"#,
        r#"{"Findings": []}"#,
        r#"{"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Message": 5}"#,
    ] {
        let err = refuse(input.as_bytes());
        assert!(
            matches!(err, ParseError::Malformed { .. }),
            "{input}: {err}"
        );
    }
}

#[test]
fn unknown_sources_and_shapes_are_unsupported() {
    for (input, says) in [
        (
            r#"{"source": "aws.s3", "detail-type": "Object Created", "detail": {}}"#,
            "unsupported event: aws.s3 \"Object Created\" (Firebreak handles",
        ),
        (
            r#"{"source": "aws.securityhub", "detail-type": "Security Hub Insight Results", "detail": {}}"#,
            "\"Security Hub Insight Results\"",
        ),
        (
            "{\"source\": \"evil\\n\\u001b[2J\", \"detail-type\": \"x\", \"detail\": {}}",
            "unsupported event: evil\\n\\u{1b}[2J \"x\"",
        ),
        (r#"{}"#, "unrecognised event shape (top-level keys: none)"),
        (r#"{"hello": "world"}"#, "top-level keys: hello"),
        (
            r#"{"Records": [{"eventSource": "aws:sqs", "body": "{}"}]}"#,
            "Lambda event records from aws:sqs",
        ),
        (
            r#"{"region": "us-east-1", "detail": {"state": "running"}}"#,
            "whose detail is not a GuardDuty finding",
        ),
        (
            r#"{"Type": "SubscriptionConfirmation", "TopicArn": "t", "Message": "You have chosen to subscribe"}"#,
            "SNS SubscriptionConfirmation message",
        ),
        (
            r#"{"Type": "Notification", "TopicArn": "t", "Message": "ALARM: cpu high"}"#,
            "SNS message is not a CloudWatch alarm or EventBridge event",
        ),
        (
            r#"{"Type": "Notification", "TopicArn": "t", "Message": "{\"hello\": 1}"}"#,
            "SNS message is not a CloudWatch alarm or EventBridge event",
        ),
        (
            r#"{"Type": "Notification", "TopicArn": "t", "Message": "{\"Type\": \"Notification\", \"TopicArn\": \"t\", \"Message\": \"{}\"}"}"#,
            "unwraps one level only",
        ),
        (
            r#"{"Type": "Notification", "TopicArn": "t", "Message": "{\"source\": \"aws.ec2\", \"detail-type\": \"EC2 Instance State-change Notification\", \"detail\": {}}"}"#,
            "unsupported event: aws.ec2",
        ),
    ] {
        let err = refuse(input.as_bytes());
        assert!(
            matches!(err, ParseError::Unsupported(_)),
            "{input}: not Unsupported: {err}"
        );
        assert!(
            err.to_string().contains(says),
            "{input}: `{err}` lacks `{says}`"
        );
    }
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    // serde_json skips values it is not asked to read without recursing, so depth alone is not
    // an error; what matters is a typed refusal and no stack overflow.
    let arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(
        refuse(arrays.as_bytes()),
        ParseError::NotAnObject("an array")
    );

    let objects = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let err = refuse(objects.as_bytes());
    assert!(err.to_string().contains("top-level keys: a"), "{err}");

    let in_detail = format!(
        r#"{{"source": "aws.guardduty", "detail-type": "GuardDuty Finding", "detail": {objects}}}"#
    );
    assert!(matches!(
        refuse(in_detail.as_bytes()),
        ParseError::Malformed { .. }
    ));

    // Deep nesting where a typed field is expected does hit serde_json's recursion limit.
    let deep_finding = format!(
        r#"{{"source": "aws.guardduty", "detail-type": "GuardDuty Finding", "detail": {{"id": "a", "type": "t", "resource": {{"instanceDetails": {{"tags": [{arrays}]}}}}}}}}"#
    );
    if let Err(err) = parse(deep_finding.as_bytes(), received()) {
        assert_one_line(&err, "deep tags");
    }

    let in_sns = format!(
        r#"{{"Type": "Notification", "TopicArn": "t", "Message": {}}}"#,
        serde_json::to_string(&objects).expect("string")
    );
    assert!(matches!(
        refuse(in_sns.as_bytes()),
        ParseError::Unsupported(_)
    ));

    let in_records = format!(r#"{{"Records": [{arrays}]}}"#);
    refuse(in_records.as_bytes());
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    // Not JSON at all: only a size check that runs first can answer TooLarge.
    let input = vec![b'x'; 300 * 1024];
    assert_eq!(
        refuse(&input),
        ParseError::TooLarge {
            size: 300 * 1024,
            limit: MAX_EVENT_BYTES
        }
    );
}

#[test]
fn an_event_of_exactly_the_limit_is_parsed() {
    let mut input = read_event("guardduty/detail-only-ec2-canary-integtest.json");
    input.resize(MAX_EVENT_BYTES, b' ');
    assert_eq!(parse(&input, received()).map(|s| s.len()), Ok(1));
    input.push(b' ');
    assert!(matches!(refuse(&input), ParseError::TooLarge { .. }));
}

#[test]
fn damaged_fixtures_never_panic_and_refusals_stay_one_line() {
    for rel in event_files() {
        let input = read_event(&rel);
        for (i, replacement) in (0..input.len()).step_by(7).zip(
            [b'{', b'"', b'1', b'[', b'\\', b'}', 0xC3]
                .into_iter()
                .cycle(),
        ) {
            let mut damaged = input.clone();
            if let Some(b) = damaged.get_mut(i) {
                *b = replacement;
            }
            if let Err(err) = parse(&damaged, received()) {
                assert_one_line(&err, &format!("{rel} byte {i}"));
            }
        }
        for cut in (0..input.len()).step_by(31) {
            let prefix = input.get(..cut).unwrap_or_default();
            if let Err(err) = parse(prefix, received()) {
                assert_one_line(&err, &format!("{rel} cut at {cut}"));
            }
        }
    }
}

/// Every value that follows a key, swapped for a value of each other JSON type: the parser
/// reads the fields it needs leniently or refuses the event in one line, and never panics.
#[test]
fn any_field_of_any_type_is_read_or_refused_never_a_panic() {
    const SWAPS: [&[u8]; 6] = [b"null", b"7", b"-1.5e300", b"[]", b"{}", b"\"\""];
    let (mut read, mut refused) = (0usize, 0usize);
    for rel in event_files() {
        let input = read_event(&rel);
        let value_starts: Vec<usize> = input
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b':')
            .map(|(i, _)| i + 1)
            .collect();
        for (n, &start) in value_starts.iter().enumerate() {
            let swap = SWAPS[n % SWAPS.len()];
            let rest = input.get(start..).unwrap_or_default();
            // The value ends at the next comma or closing brace at this nesting depth.
            let mut depth = 0i32;
            let mut in_string = false;
            let mut escaped = false;
            let mut end = rest.len();
            for (i, &b) in rest.iter().enumerate() {
                if in_string {
                    match (escaped, b) {
                        (true, _) => escaped = false,
                        (false, b'\\') => escaped = true,
                        (false, b'"') => in_string = false,
                        _ => {}
                    }
                    continue;
                }
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' if depth == 0 => {
                        end = i;
                        break;
                    }
                    b'}' | b']' => depth -= 1,
                    b',' if depth == 0 => {
                        end = i;
                        break;
                    }
                    _ => {}
                }
            }
            let mut swapped = input.get(..start).unwrap_or_default().to_vec();
            swapped.extend_from_slice(swap);
            swapped.extend_from_slice(rest.get(end..).unwrap_or_default());
            match parse(&swapped, received()) {
                Ok(_) => read += 1,
                Err(err) => {
                    refused += 1;
                    assert_one_line(&err, &format!("{rel} value at byte {start}"));
                }
            }
        }
    }
    // Both roads were taken many times, so the swaps really reached the parser's fields.
    assert!(
        read > 1000 && refused > 100,
        "read {read}, refused {refused}"
    );
}
