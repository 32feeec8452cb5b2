//! The template mounts the playbooks where the functions look for them.

use std::path::Path;

use firebreak_shared::config::PLAYBOOKS_DIR_ENV;
use serde_yaml_ng::Value;

fn template() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let text = std::fs::read_to_string(&path).expect("template.yaml is readable");
    serde_yaml_ng::from_str(&text).expect("template.yaml is YAML")
}

#[test]
fn the_playbooks_layer_holds_infra_playbooks_at_the_directory_the_functions_read() {
    let t = template();
    let content = t["Resources"]["PlaybooksLayer"]["Properties"]["ContentUri"]
        .as_str()
        .expect("PlaybooksLayer has a ContentUri");
    let dir = t["Globals"]["Function"]["Environment"]["Variables"][PLAYBOOKS_DIR_ENV]
        .as_str()
        .expect("every function is told where the playbooks are");
    // A layer's content is mounted under /opt.
    let inside_layer = dir
        .strip_prefix("/opt/")
        .expect("the playbooks directory is inside the layer mount");
    let local = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(content)
        .join(inside_layer);
    assert!(
        local.join("ec2-compromise.yaml").is_file(),
        "{} does not hold the playbooks",
        local.display()
    );
    firebreak_shared::config::playbooks_from(Some(&local)).expect("the shipped playbooks load");
}

#[test]
fn every_function_carries_the_playbooks_layer() {
    let t = template();
    let layers = t["Globals"]["Function"]["Layers"]
        .as_sequence()
        .expect("Globals.Function.Layers");
    assert!(
        layers
            .iter()
            .any(|l| format!("{l:?}").contains("PlaybooksLayer")),
        "{layers:?}"
    );
}

fn resources(t: &Value) -> &serde_yaml_ng::Mapping {
    t["Resources"].as_mapping().expect("Resources")
}

/// Whether `v` is `!Ref id` (or `{Ref: id}`).
fn is_ref(v: &Value, id: &str) -> bool {
    match v {
        Value::Tagged(t) => t.tag == "Ref" && t.value.as_str() == Some(id),
        Value::Mapping(m) => m.get("Ref").and_then(Value::as_str) == Some(id),
        _ => false,
    }
}

/// Every event source of every function: (function, event name, event).
fn function_events(t: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (id, r) in resources(t) {
        if r["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let Some(events) = r["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for (name, event) in events {
            out.push((
                id.as_str().unwrap_or_default().to_owned(),
                name.as_str().unwrap_or_default().to_owned(),
                event,
            ));
        }
    }
    out
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_sequence()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn every_function_is_given_every_setting_it_reads_at_init() {
    use firebreak_shared::config::*;
    let t = template();
    let vars = t["Globals"]["Function"]["Environment"]["Variables"]
        .as_mapping()
        .expect("Globals.Function.Environment.Variables");
    for var in [
        PLAYBOOKS_DIR_ENV,
        TABLE_ENV,
        BUS_ENV,
        TOPIC_ENV,
        ESCALATION_TOPIC_ENV,
        RETENTION_ENV,
        INCIDENT_MANAGER_ENV,
        RESPONSE_PLAN_PREFIX_ENV,
    ] {
        assert!(vars.contains_key(var), "{var} is not set for the functions");
    }
    assert!(is_ref(&vars[TABLE_ENV], "IncidentTable"));
    assert!(is_ref(&vars[BUS_ENV], "LifecycleBus"));
    assert!(is_ref(&vars[TOPIC_ENV], "NotificationTopic"));
    assert!(is_ref(&vars[ESCALATION_TOPIC_ENV], "EscalationTopic"));
    assert!(is_ref(&vars[RETENTION_ENV], "RetentionDays"));
    let retention = &t["Parameters"]["RetentionDays"];
    assert_eq!(
        retention["Default"].as_u64(),
        Some(u64::from(DEFAULT_RETENTION_DAYS))
    );
    // The values config.rs accepts: 1 to 36500 days.
    assert_eq!(retention["MinValue"].as_u64(), Some(1));
    assert_eq!(retention["MaxValue"].as_u64(), Some(36_500));
}

#[test]
fn the_table_is_shaped_as_the_store_expects() {
    use firebreak_shared::store::{STATUS_INDEX, TTL_ATTRIBUTE};
    let t = template();
    let table = &resources(&t)["IncidentTable"];
    assert_eq!(table["Type"].as_str(), Some("AWS::DynamoDB::Table"));
    assert_eq!(table["DeletionPolicy"].as_str(), Some("Retain"));
    assert_eq!(table["UpdateReplacePolicy"].as_str(), Some("Retain"));
    let p = &table["Properties"];
    let keys = |schema: &Value| -> Vec<(String, String)> {
        schema
            .as_sequence()
            .expect("a KeySchema")
            .iter()
            .map(|k| {
                (
                    k["AttributeName"].as_str().unwrap_or_default().to_owned(),
                    k["KeyType"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    let pair = |a: &str, b: &str| {
        vec![
            (a.to_owned(), "HASH".to_owned()),
            (b.to_owned(), "RANGE".to_owned()),
        ]
    };
    assert_eq!(keys(&p["KeySchema"]), pair("pk", "sk"));
    let gsi = p["GlobalSecondaryIndexes"]
        .as_sequence()
        .and_then(|g| {
            g.iter()
                .find(|i| i["IndexName"].as_str() == Some(STATUS_INDEX))
        })
        .expect("the by-status index");
    assert_eq!(keys(&gsi["KeySchema"]), pair("status", "opened_at"));
    assert_eq!(gsi["Projection"]["ProjectionType"].as_str(), Some("ALL"));
    for def in p["AttributeDefinitions"]
        .as_sequence()
        .expect("AttributeDefinitions")
    {
        assert_eq!(
            def["AttributeType"].as_str(),
            Some("S"),
            "{def:?}: the store writes strings"
        );
    }
    assert_eq!(
        p["TimeToLiveSpecification"]["AttributeName"].as_str(),
        Some(TTL_ATTRIBUTE)
    );
    assert_eq!(
        p["TimeToLiveSpecification"]["Enabled"].as_bool(),
        Some(true)
    );
    assert_eq!(
        p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
        Some(true)
    );
    assert_eq!(p["SSESpecification"]["SSEEnabled"].as_bool(), Some(true));
}

#[test]
fn lifecycle_rules_name_real_detail_types_and_every_kind_has_a_consumer() {
    use firebreak_shared::lifecycle::{Kind, SOURCE};
    let t = template();
    let mut consumed = std::collections::BTreeMap::<&str, Vec<String>>::new();
    for (function, name, event) in function_events(&t) {
        let props = &event["Properties"];
        if !is_ref(&props["EventBusName"], "LifecycleBus") {
            continue;
        }
        assert_eq!(
            event["Type"].as_str(),
            Some("EventBridgeRule"),
            "{function}.{name}"
        );
        assert_eq!(
            strings(&props["Pattern"]["source"]),
            [SOURCE],
            "{function}.{name}"
        );
        for dt in strings(&props["Pattern"]["detail-type"]) {
            let kind = Kind::from_detail_type(dt).unwrap_or_else(|| {
                panic!("{function}.{name}: {dt:?} is not a lifecycle detail-type")
            });
            consumed
                .entry(kind.detail_type())
                .or_default()
                .push(function.clone());
        }
    }
    for kind in Kind::ALL {
        assert!(
            consumed.contains_key(kind.detail_type()),
            "nothing consumes {kind}"
        );
    }
    // People hear about everything but the internal resolution request.
    for kind in Kind::ALL {
        let to_notify = consumed[kind.detail_type()]
            .iter()
            .any(|f| f == "NotifyFunction");
        assert_eq!(to_notify, kind != Kind::ResolutionRequested, "{kind}");
    }
    assert_eq!(
        consumed[Kind::ResolutionRequested.detail_type()],
        ["CloseFunction"]
    );
}

#[test]
fn every_rule_retries_for_a_bounded_time_then_keeps_the_event() {
    let t = template();
    let events = function_events(&t);
    assert!(!events.is_empty());
    for (function, name, event) in events {
        if !matches!(event["Type"].as_str(), Some("EventBridgeRule" | "Schedule")) {
            continue;
        }
        let props = &event["Properties"];
        let retry = &props["RetryPolicy"];
        assert!(
            retry["MaximumRetryAttempts"].as_u64().is_some(),
            "{function}.{name}: RetryPolicy"
        );
        let age = retry["MaximumEventAgeInSeconds"]
            .as_u64()
            .unwrap_or_default();
        assert!(
            (60..=86_400).contains(&age),
            "{function}.{name}: MaximumEventAgeInSeconds {age}"
        );
        // SAM's own queue (`Type: SQS`) or the stack's rule dead-letter queue, which the
        // operators' alarm watches.
        let dlq = &props["DeadLetterConfig"];
        let sam_queue = dlq["Type"].as_str() == Some("SQS");
        let stack_queue = format!("{:?}", dlq["Arn"]).contains("RuleDeadLetterQueue");
        assert!(
            sam_queue || stack_queue,
            "{function}.{name}: a dead-letter queue"
        );
    }
}

#[test]
fn a_failed_invocation_is_kept_after_lambdas_retries() {
    let t = template();
    let config = &t["Globals"]["Function"]["EventInvokeConfig"];
    assert!(config["MaximumRetryAttempts"].as_u64().is_some());
    let destination = &config["DestinationConfig"]["OnFailure"];
    assert_eq!(destination["Type"].as_str(), Some("SQS"));
    let queue = format!("{:?}", destination["Destination"]);
    assert!(queue.contains("FailedInvocationQueue"), "{queue}");
    assert_eq!(
        resources(&t)["FailedInvocationQueue"]["Type"].as_str(),
        Some("AWS::SQS::Queue")
    );
}
