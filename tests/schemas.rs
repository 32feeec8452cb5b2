//! The lifecycle contract's JSON Schemas (`infra/schemas/`) describe the events the stages
//! really put on the bus, and the consumers' parser accepts what the schemas accept.
//!
//! The schemas are JSON Schema draft 2020-12. They are checked here by a small validator of
//! the keywords they use (type, const, enum, required, properties, additionalProperties, items,
//! pattern, minLength, minimum, format date-time). It refuses any other keyword, so a schema
//! that starts using one fails this test instead of being half-checked; extend the validator
//! (or take a full implementation) at that point.
//!
//! EventBridge's schema registry takes draft 4 only, so template.yaml registers each schema in
//! its draft 4 spelling (tests/template.rs holds the two equal under that rewrite). The same
//! events are checked against that spelling here, so the registry's copy accepts and refuses
//! exactly what the files do. So are the sample lifecycle events in `events/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use firebreak_shared::incident::{Incident, Status, incident_id};
use firebreak_shared::lifecycle::{self, Event, Kind};
use firebreak_shared::playbook::PlaybookSet;
use firebreak_shared::signal::Severity;
use firebreak_shared::triage::decide;
use serde_json::{Map, Value, json};
use serde_yaml_ng::Value as Yaml;

const FIXTURE: &[u8] = include_bytes!(
    "fixtures/events/guardduty/custodian-eventbridge-backdoor-ec2-cc-activity-b-dns.json"
);
const ACCOUNT: &str = "123456789012";
const REGION: &str = "eu-west-1";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn schema_path(kind: Kind) -> PathBuf {
    root()
        .join("infra/schemas")
        .join(format!("{}.json", kind.slug()))
}

fn schema(kind: Kind) -> Value {
    let path = schema_path(kind);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 250_000_000).unwrap_or_default()
}

/// An incident as create opens it from a real GuardDuty finding.
fn incident() -> Incident {
    let playbooks = PlaybookSet::starter();
    let signals = firebreak_shared::signal::parse(FIXTURE, now()).expect("the fixture parses");
    let signal = signals.first().expect("one signal");
    let decision = decide(signal, &playbooks);
    Incident::open(&decision, incident_id(signal, &decision.dedupe_key), now())
}

/// The event in its smallest form (no qualifier, reason or actor) and its fullest.
fn events(kind: Kind) -> [Event; 2] {
    let incident = incident();
    let minimal = Event::about(kind, &incident, None, now(), None);
    let full = Event::about(
        kind,
        &incident,
        Some("step-1"),
        now(),
        Some("because the test says so".to_owned()),
    )
    .with_actor("cli:alice");
    [minimal, full]
}

/// As EventBridge delivers an event put on the lifecycle bus to a rule's target.
fn delivered(event: &Event) -> Value {
    json!({
        "version": "0",
        "id": "6f6f1f1e-7d3c-4c1a-9d7e-2b0c7c0f5a11",
        "detail-type": event.kind.detail_type(),
        "source": lifecycle::SOURCE,
        "account": ACCOUNT,
        "time": event.detail.at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "region": REGION,
        "resources": [],
        "detail": serde_json::to_value(&event.detail).expect("a detail serializes"),
    })
}

// ------------------------------------------------------------------------------------------
// The validator.

fn type_matches(name: &str, v: &Value) -> bool {
    match name {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        other => panic!("unknown JSON Schema type {other:?}"),
    }
}

/// Checks `instance` against `schema`, appending one line per violation to `errors`.
fn check(schema: &Value, instance: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(schema) = schema.as_object() else {
        match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => {
                errors.push(format!("{at}: no value is allowed here"));
                return;
            }
            other => panic!("{at}: {other} is not a schema"),
        }
    };
    for (keyword, arg) in schema {
        match keyword.as_str() {
            // `id` is draft 4's spelling of `$id`, in the template's registry copies.
            "$schema" | "$id" | "id" | "$comment" | "title" | "description" | "examples" => {}
            "type" => {
                let names: Vec<&str> = match arg {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    other => panic!("{at}: type {other}"),
                };
                if !names.iter().any(|n| type_matches(n, instance)) {
                    errors.push(format!("{at}: {instance} is not of type {names:?}"));
                }
            }
            "const" => {
                if instance != arg {
                    errors.push(format!("{at}: {instance} is not {arg}"));
                }
            }
            "enum" => {
                let allowed = arg.as_array().expect("enum is a list");
                if !allowed.contains(instance) {
                    errors.push(format!("{at}: {instance} is not one of {arg}"));
                }
            }
            "required" => {
                if let Some(obj) = instance.as_object() {
                    for name in arg.as_array().expect("required is a list") {
                        let name = name.as_str().expect("required names are strings");
                        if !obj.contains_key(name) {
                            errors.push(format!("{at}: {name} is missing"));
                        }
                    }
                }
            }
            "properties" => {
                if let Some(obj) = instance.as_object() {
                    for (name, sub) in arg.as_object().expect("properties is an object") {
                        if let Some(v) = obj.get(name) {
                            check(sub, v, &format!("{at}/{name}"), errors);
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(obj) = instance.as_object() {
                    let known = schema.get("properties").and_then(Value::as_object);
                    for (name, v) in obj {
                        if !known.is_some_and(|k| k.contains_key(name)) {
                            check(arg, v, &format!("{at}/{name}"), errors);
                        }
                    }
                }
            }
            "items" => {
                if let Some(items) = instance.as_array() {
                    for (i, v) in items.iter().enumerate() {
                        check(arg, v, &format!("{at}/{i}"), errors);
                    }
                }
            }
            "pattern" => {
                if let Some(s) = instance.as_str() {
                    let pattern = arg.as_str().expect("pattern is a string");
                    let re = regex::Regex::new(pattern)
                        .unwrap_or_else(|e| panic!("{at}: pattern {pattern}: {e}"));
                    if !re.is_match(s) {
                        errors.push(format!("{at}: {s:?} does not match {pattern}"));
                    }
                }
            }
            "minLength" => {
                if let Some(s) = instance.as_str() {
                    let min = arg.as_u64().expect("minLength is a count");
                    if (s.chars().count() as u64) < min {
                        errors.push(format!("{at}: {s:?} is shorter than {min}"));
                    }
                }
            }
            "minimum" => {
                if let Some(n) = instance.as_f64() {
                    let min = arg.as_f64().expect("minimum is a number");
                    if n < min {
                        errors.push(format!("{at}: {n} is below {min}"));
                    }
                }
            }
            "format" => {
                // 2020-12 makes format an annotation by default; the contract means it, so it
                // is asserted here.
                assert_eq!(arg, "date-time", "{at}: only format date-time is checked");
                if let Some(s) = instance.as_str()
                    && DateTime::parse_from_rfc3339(s).is_err()
                {
                    errors.push(format!("{at}: {s:?} is not an RFC 3339 date-time"));
                }
            }
            other => panic!(
                "{at}: the schema uses {other:?}, which this validator does not implement; extend it"
            ),
        }
    }
}

fn violations(schema: &Value, instance: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, instance, "", &mut errors);
    errors
}

// ------------------------------------------------------------------------------------------
// The tests.

#[test]
fn every_kind_has_a_schema_and_every_schema_a_kind() {
    let dir = root().join("infra/schemas");
    let files: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("infra/schemas is a directory")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let kinds: BTreeSet<String> = Kind::ALL.iter().map(|k| k.slug().to_owned()).collect();
    assert_eq!(
        files, kinds,
        "infra/schemas/<slug>.json, one per lifecycle::Kind"
    );
}

#[test]
fn every_schema_is_draft_2020_12_and_names_its_kind() {
    for kind in Kind::ALL {
        let s = schema(kind);
        let file = format!("{}.json", kind.slug());
        assert_eq!(
            s["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{file}"
        );
        let id = s["$id"].as_str().unwrap_or_default();
        assert!(
            id.ends_with(&format!("/infra/schemas/{file}")),
            "{file}: $id {id}"
        );
        assert_eq!(s["title"], kind.detail_type(), "{file}");
        assert!(
            s["description"].as_str().is_some_and(|d| d.len() > 20),
            "{file}: describe it"
        );
        assert_eq!(
            s["properties"]["source"]["const"],
            lifecycle::SOURCE,
            "{file}"
        );
        assert_eq!(
            s["properties"]["detail-type"]["const"],
            kind.detail_type(),
            "{file}"
        );
        // Additive changes within schema_version 1 must not break anyone validating strictly.
        assert_eq!(s["additionalProperties"], true, "{file}");
        assert_eq!(
            s["properties"]["detail"]["additionalProperties"], true,
            "{file}"
        );
    }
}

#[test]
fn every_event_as_delivered_matches_its_schema_and_parses_back() {
    for kind in Kind::ALL {
        let schema = schema(kind);
        for event in events(kind) {
            let wire = delivered(&event);
            let errors = violations(&schema, &wire);
            assert!(errors.is_empty(), "{kind}: {errors:#?}\n{wire:#}");
            let parsed = lifecycle::parse(wire.to_string().as_bytes())
                .unwrap_or_else(|e| panic!("{kind}: lifecycle::parse refused it: {e}"));
            assert_eq!(
                parsed, event,
                "{kind}: the event changed on the way through"
            );
        }
    }
}

#[test]
fn the_schemas_document_exactly_the_detail_fields() {
    for kind in Kind::ALL {
        let s = schema(kind);
        let detail = &s["properties"]["detail"];
        let documented: BTreeSet<&str> = detail["properties"]
            .as_object()
            .expect("detail properties")
            .keys()
            .map(String::as_str)
            .collect();
        let required: BTreeSet<&str> = detail["required"]
            .as_array()
            .expect("detail required")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let [minimal, full] =
            events(kind).map(|e| serde_json::to_value(&e.detail).expect("serializes"));
        let keys = |v: &Value| -> BTreeSet<String> {
            v.as_object()
                .map(Map::keys)
                .into_iter()
                .flatten()
                .cloned()
                .collect()
        };
        let always: BTreeSet<String> = keys(&minimal);
        let every: BTreeSet<String> = keys(&full);
        assert_eq!(
            documented
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<BTreeSet<_>>(),
            every,
            "{kind}: the schema documents other fields than Detail has"
        );
        assert_eq!(
            required
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<BTreeSet<_>>(),
            always,
            "{kind}: required must be the fields every event carries"
        );
    }
}

#[test]
fn the_enums_are_the_rust_enums() {
    for kind in Kind::ALL {
        let s = schema(kind);
        let detail = &s["properties"]["detail"]["properties"];
        let severities: Vec<Value> = Severity::ALL.iter().map(|v| json!(v)).collect();
        assert_eq!(
            detail["severity"]["enum"],
            Value::Array(severities),
            "{kind}"
        );
        let statuses: Vec<Value> = [Status::Open, Status::Acknowledged, Status::Resolved]
            .iter()
            .map(|v| json!(v))
            .collect();
        assert_eq!(detail["status"]["enum"], Value::Array(statuses), "{kind}");
        for v in detail["status"]["enum"].as_array().into_iter().flatten() {
            assert!(
                serde_json::from_value::<Status>(v.clone()).is_ok(),
                "{kind}: {v}"
            );
        }
    }
}

type Mutation = (&'static str, fn(&mut Value));

/// Ways an event breaks the contract, each of which a schema must refuse.
fn breakages() -> [Mutation; 11] {
    [
        ("another source", |v| v["source"] = json!("aws.ec2")),
        ("another detail-type", |v| {
            v["detail-type"] = json!("Incident Opened")
        }),
        ("a major version it does not know", |v| {
            v["detail"]["schema_version"] = json!("2")
        }),
        ("an unknown status", |v| {
            v["detail"]["status"] = json!("closed")
        }),
        ("an unknown severity", |v| {
            v["detail"]["severity"] = json!("urgent")
        }),
        ("no event_id", |v| {
            v["detail"].as_object_mut().map(|d| d.remove("event_id"));
        }),
        ("another kind's event_id", |v| {
            v["detail"]["event_id"] = json!("INC-1/opened")
        }),
        ("version 0", |v| v["detail"]["version"] = json!(0)),
        ("a time that is not one", |v| {
            v["detail"]["at"] = json!("yesterday")
        }),
        ("a playbook that is a number", |v| {
            v["detail"]["playbook"] = json!(7)
        }),
        ("no detail", |v| {
            v.as_object_mut().map(|d| d.remove("detail"));
        }),
    ]
}

#[test]
fn the_schemas_refuse_what_the_contract_refuses() {
    let kind = Kind::RemediationFailed;
    let schema = schema(kind);
    let [event, _] = events(kind);
    let good = delivered(&event);
    for (what, mutate) in breakages() {
        let mut bad = good.clone();
        mutate(&mut bad);
        assert!(
            !violations(&schema, &bad).is_empty(),
            "{what} passed the schema"
        );
    }
}

/// The schemas template.yaml registers, by title (the detail-type).
fn registered() -> std::collections::BTreeMap<String, Value> {
    let text = std::fs::read_to_string(root().join("template.yaml")).expect("template.yaml");
    let t: Yaml = serde_yaml_ng::from_str(&text).expect("template.yaml is YAML");
    let resources = t["Resources"].as_mapping().expect("Resources");
    resources
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::EventSchemas::Schema"))
        .map(|r| {
            let content = r["Properties"]["Content"]
                .as_str()
                .expect("Content is a JSON string");
            let schema: Value = serde_json::from_str(content).expect("Content is JSON");
            let title = schema["title"].as_str().unwrap_or_default().to_owned();
            (title, schema)
        })
        .collect()
}

#[test]
fn the_registrys_draft_4_copies_accept_and_refuse_what_the_files_do() {
    let copies = registered();
    for kind in Kind::ALL {
        let copy = copies
            .get(kind.detail_type())
            .unwrap_or_else(|| panic!("{kind}: not registered in template.yaml"));
        assert_eq!(copy["$schema"], "http://json-schema.org/draft-04/schema#");
        for event in events(kind) {
            let wire = delivered(&event);
            let errors = violations(copy, &wire);
            assert!(errors.is_empty(), "{kind}: {errors:#?}");
            for (what, mutate) in breakages() {
                let mut bad = wire.clone();
                mutate(&mut bad);
                // Some breakages only break some kinds (an Incident Opened may say "opened").
                let by_file = violations(&schema(kind), &bad).is_empty();
                let by_copy = violations(copy, &bad).is_empty();
                assert_eq!(by_file, by_copy, "{kind}: {what}");
            }
        }
    }
}

#[test]
fn the_sample_lifecycle_events_in_events_are_valid_and_parse() {
    let mut seen = 0;
    for stage in ["enrich", "remediate", "notify"] {
        let dir = root().join("events").join(stage);
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            let text = std::fs::read_to_string(&path).expect("a sample is readable");
            let sample: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let detail_type = sample["detail-type"].as_str().unwrap_or_default();
            let kind = Kind::from_detail_type(detail_type)
                .unwrap_or_else(|| panic!("{}: {detail_type:?}", path.display()));
            let errors = violations(&schema(kind), &sample);
            assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
            lifecycle::parse(text.as_bytes())
                .unwrap_or_else(|e| panic!("{}: lifecycle::parse refused it: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 3, "one sample per lifecycle consumer at least");
}

#[test]
fn additive_changes_stay_valid_for_schema_and_parser() {
    let kind = Kind::IncidentOpened;
    let schema = schema(kind);
    let [event, _] = events(kind);
    let mut newer = delivered(&event);
    newer["detail"]["schema_version"] = json!("1.3");
    newer["detail"]["runbook_url"] = json!("https://example.com/runbook");
    newer["replay-name"] = json!("replay-1");
    assert!(violations(&schema, &newer).is_empty());
    let parsed = lifecycle::parse(newer.to_string().as_bytes()).expect("a 1.x event parses");
    assert_eq!(parsed.detail.incident_id, event.detail.incident_id);
}

#[test]
fn the_sample_in_docs_lifecycle_md_is_a_valid_event() {
    let text =
        std::fs::read_to_string(root().join("docs/lifecycle.md")).expect("docs/lifecycle.md");
    let start = text
        .find("```json\n")
        .expect("docs/lifecycle.md has a ```json sample")
        + 8;
    let end = start + text[start..].find("```").expect("the sample block ends");
    let sample: Value = serde_json::from_str(&text[start..end]).expect("the sample is JSON");
    let detail_type = sample["detail-type"]
        .as_str()
        .expect("the sample has a detail-type");
    let kind = Kind::from_detail_type(detail_type).expect("the sample's detail-type is a Kind");
    let errors = violations(&schema(kind), &sample);
    assert!(errors.is_empty(), "{errors:#?}");
    lifecycle::parse(sample.to_string().as_bytes()).expect("lifecycle::parse takes the sample");
}
