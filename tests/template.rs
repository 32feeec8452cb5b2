//! template.yaml deploys what the repository holds, and holds together as a stack.
//!
//! CloudFormation cannot read files, so the runbooks (`infra/runbooks/`) and the lifecycle
//! schemas (`infra/schemas/`) are inlined in the template; these tests fail the moment a file
//! and its inlined copy differ, or one exists without the other. They also check the wiring
//! that no linter sees: each playbook's response plan exists under the name the functions
//! build, every rule's undeliverable events reach a queue that admits them and is alarmed,
//! and none of the stack's own alarms can feed back into the pipeline.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn template() -> Value {
    let path = root().join("template.yaml");
    let text = std::fs::read_to_string(&path).expect("template.yaml is readable");
    serde_yaml_ng::from_str(&text).expect("template.yaml is YAML")
}

fn resources(t: &Value) -> &Mapping {
    t["Resources"].as_mapping().expect("Resources")
}

/// Every resource of one type: (logical id, resource).
fn of_type<'a>(t: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    resources(t)
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(k, r)| (k.as_str().expect("logical ids are strings"), r))
        .collect()
}

/// A CloudFormation intrinsic in either spelling, short tag (`!Sub x`) or long form
/// (`{"Fn::Sub": x}`): its name without `Fn::` and its argument.
fn intrinsic(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => Some((
            t.tag.to_string().trim_start_matches('!').to_owned(),
            &t.value,
        )),
        Value::Mapping(m) if m.len() == 1 => {
            let (k, arg) = m.iter().next()?;
            let k = k.as_str()?;
            if k == "Ref" {
                Some(("Ref".to_owned(), arg))
            } else {
                k.strip_prefix("Fn::").map(|name| (name.to_owned(), arg))
            }
        }
        _ => None,
    }
}

/// The text of a one-argument `!Sub`.
fn sub(v: &Value) -> Option<&str> {
    match intrinsic(v)? {
        (name, arg) if name == "Sub" => arg.as_str(),
        _ => None,
    }
}

/// The logical id a `!Ref` names.
fn reference(v: &Value) -> Option<&str> {
    match intrinsic(v)? {
        (name, arg) if name == "Ref" => arg.as_str(),
        _ => None,
    }
}

/// `!GetAtt Id.Attr` (either spelling) as (id, attribute).
fn get_att(v: &Value) -> Option<(String, String)> {
    let (name, arg) = intrinsic(v)?;
    if name != "GetAtt" {
        return None;
    }
    match arg {
        Value::String(s) => {
            let (id, attr) = s.split_once('.')?;
            Some((id.to_owned(), attr.to_owned()))
        }
        Value::Sequence(v) => Some((
            v.first()?.as_str()?.to_owned(),
            v.get(1)?.as_str()?.to_owned(),
        )),
        _ => None,
    }
}

/// The files of one directory with one extension, by stem.
fn files(dir: &str, ext: &str) -> BTreeMap<String, PathBuf> {
    std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .map(|p| {
            let stem = p
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            (stem, p)
        })
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every event of every function: (function, event name, event).
fn function_events(t: &Value) -> Vec<(&str, &str, &Value)> {
    let mut out = Vec::new();
    for (function, r) in of_type(t, "AWS::Serverless::Function") {
        let Some(events) = r["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for (name, event) in events {
            out.push((function, name.as_str().unwrap_or_default(), event));
        }
    }
    out
}

// ------------------------------------------------------------------------------------------
// Runbooks.

#[test]
fn every_runbook_file_is_deployed_as_is_and_every_document_has_its_file() {
    let t = template();
    let on_disk = files("infra/runbooks", "yaml");
    assert!(!on_disk.is_empty(), "infra/runbooks holds the runbooks");
    let mut deployed = BTreeMap::new();
    for (id, doc) in of_type(&t, "AWS::SSM::Document") {
        let p = &doc["Properties"];
        let name = sub(&p["Name"]).unwrap_or_else(|| panic!("{id}: Name is a !Sub"));
        let stem = name
            .strip_prefix("${AWS::StackName}-")
            .unwrap_or_else(|| panic!("{id}: {name} is not <stack name>-<file stem>"));
        assert_eq!(p["DocumentType"].as_str(), Some("Automation"), "{id}");
        assert_eq!(p["DocumentFormat"].as_str(), Some("YAML"), "{id}");
        // Replace would delete the document that running automations and plans point at.
        assert_eq!(p["UpdateMethod"].as_str(), Some("NewVersion"), "{id}");
        assert!(
            deployed
                .insert(stem.to_owned(), (id, &p["Content"]))
                .is_none(),
            "two documents are named {stem}"
        );
    }
    assert_eq!(
        on_disk.keys().collect::<BTreeSet<_>>(),
        deployed.keys().collect::<BTreeSet<_>>(),
        "one AWS::SSM::Document named <stack name>-<stem> per infra/runbooks/<stem>.yaml"
    );
    for (stem, path) in &on_disk {
        let file: Value = serde_yaml_ng::from_str(&read(path))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (id, content) = deployed[stem];
        assert_eq!(
            &file,
            content,
            "{id}'s Content differs from {}: copy the file into the template again",
            path.display()
        );
    }
}

#[test]
fn every_runbook_runs_as_the_role_it_is_given() {
    for (stem, path) in files("infra/runbooks", "yaml") {
        let doc: Value = serde_yaml_ng::from_str(&read(&path)).expect("a runbook is YAML");
        assert_eq!(doc["schemaVersion"].as_str(), Some("0.3"), "{stem}");
        assert_eq!(
            doc["assumeRole"].as_str(),
            Some("{{ AutomationAssumeRole }}"),
            "{stem}"
        );
        assert_eq!(
            doc["parameters"]["AutomationAssumeRole"]["type"].as_str(),
            Some("String"),
            "{stem}"
        );
        assert!(
            doc["description"].as_str().is_some_and(|d| d.len() > 20),
            "{stem}: describe it"
        );
        let steps = doc["mainSteps"].as_sequence().expect("mainSteps");
        assert!(!steps.is_empty(), "{stem}");
        for step in steps {
            // tests/iam.rs derives the role's grants from the executeAwsApi-style steps; a
            // script that called AWS itself would hide calls from it.
            if step["action"].as_str() == Some("aws:executeScript") {
                let script = step["inputs"]["Script"].as_str().unwrap_or_default();
                assert!(
                    !script.contains("boto3") && !script.contains("botocore"),
                    "{stem}: {:?} calls AWS from a script; use aws:executeAwsApi",
                    step["name"]
                );
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Lifecycle schemas.

/// A 2020-12 schema as the registry takes it (JSON Schema draft 4): `$schema` names draft 4,
/// `$id` is `id`, and `const: x` is `enum: [x]`. Only schema positions are rewritten, so a
/// property that happened to be called `const` would be left alone.
fn draft4(schema: &serde_json::Value) -> serde_json::Value {
    use serde_json::{Value as J, json};
    let Some(obj) = schema.as_object() else {
        return schema.clone();
    };
    let mut out = serde_json::Map::new();
    for (k, v) in obj {
        match k.as_str() {
            "$schema" => {
                out.insert(k.clone(), json!("http://json-schema.org/draft-04/schema#"));
            }
            "$id" => {
                out.insert("id".to_owned(), v.clone());
            }
            "const" => {
                out.insert("enum".to_owned(), J::Array(vec![v.clone()]));
            }
            "properties" => {
                let props = v
                    .as_object()
                    .map(|m| m.iter().map(|(n, s)| (n.clone(), draft4(s))).collect())
                    .unwrap_or_default();
                out.insert(k.clone(), J::Object(props));
            }
            "items" | "additionalProperties" => {
                out.insert(k.clone(), draft4(v));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    J::Object(out)
}

/// Draft 4's validation and annotation keywords; anything else in a schema position is
/// something the registry would not understand.
const DRAFT4_KEYWORDS: &[&str] = &[
    "$schema",
    "id",
    "title",
    "description",
    "default",
    "type",
    "enum",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "format",
];

fn only_draft4_keywords(schema: &serde_json::Value, at: &str, errors: &mut Vec<String>) {
    let Some(obj) = schema.as_object() else {
        return;
    };
    for (k, v) in obj {
        if !DRAFT4_KEYWORDS.contains(&k.as_str()) {
            errors.push(format!("{at}: {k}"));
        }
        match k.as_str() {
            "properties" => {
                for (name, sub) in v.as_object().into_iter().flatten() {
                    only_draft4_keywords(sub, &format!("{at}/{name}"), errors);
                }
            }
            "items" | "additionalProperties" => only_draft4_keywords(v, at, errors),
            _ => {}
        }
    }
}

#[test]
fn every_lifecycle_schema_is_registered_in_its_draft_4_spelling() {
    let t = template();
    let registry = of_type(&t, "AWS::EventSchemas::Registry");
    let [(registry_id, registry)] = registry.as_slice() else {
        panic!("one schema registry, found {}", registry.len());
    };
    assert_eq!(
        sub(&registry["Properties"]["RegistryName"]),
        Some("${AWS::StackName}-lifecycle")
    );
    let mut registered = BTreeMap::new();
    for (id, s) in of_type(&t, "AWS::EventSchemas::Schema") {
        let p = &s["Properties"];
        assert_eq!(
            get_att(&p["RegistryName"]),
            Some((registry_id.to_string(), "RegistryName".to_owned())),
            "{id}"
        );
        assert_eq!(p["Type"].as_str(), Some("JSONSchemaDraft4"), "{id}");
        let content: serde_json::Value = serde_json::from_str(
            p["Content"]
                .as_str()
                .unwrap_or_else(|| panic!("{id}: Content is a JSON string")),
        )
        .unwrap_or_else(|e| panic!("{id}: Content is not JSON: {e}"));
        let name = p["SchemaName"].as_str().expect("SchemaName");
        let title = content["title"].as_str().unwrap_or_default().to_owned();
        assert_eq!(
            name,
            format!("firebreak@{}", title.replace(' ', "")),
            "{id}: named after the detail-type"
        );
        assert!(
            registered.insert(title.clone(), (id, content)).is_none(),
            "{title} is registered twice"
        );
    }
    let on_disk = files("infra/schemas", "json");
    assert_eq!(registered.len(), on_disk.len(), "one schema per file");
    for (stem, path) in on_disk {
        let file: serde_json::Value = serde_json::from_str(&read(&path)).expect("a schema is JSON");
        let title = file["title"].as_str().expect("a schema has a title");
        let (id, content) = registered
            .get(title)
            .unwrap_or_else(|| panic!("infra/schemas/{stem}.json ({title}) is not registered"));
        assert_eq!(
            content,
            &draft4(&file),
            "{id} is not infra/schemas/{stem}.json in its draft 4 spelling: inline it again"
        );
        let mut errors = Vec::new();
        only_draft4_keywords(content, &stem, &mut errors);
        assert!(errors.is_empty(), "not draft 4 keywords: {errors:?}");
    }
}

// ------------------------------------------------------------------------------------------
// Incident Manager.

/// Each playbook's `incident_manager.response_plan`, by playbook name.
fn playbook_plans() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (stem, path) in files("infra/playbooks", "yaml") {
        let p: Value = serde_yaml_ng::from_str(&read(&path)).expect("a playbook is YAML");
        if let Some(plan) = p["incident_manager"]["response_plan"].as_str() {
            out.insert(stem, plan.to_owned());
        }
    }
    out
}

#[test]
fn every_response_plan_a_playbook_names_is_one_this_stack_creates_and_back() {
    let t = template();
    let prefix =
        &t["Globals"]["Function"]["Environment"]["Variables"]["FIREBREAK_RESPONSE_PLAN_ARN_PREFIX"];
    // The functions append the playbook's plan name to this; the plans below are named to match.
    assert_eq!(
        sub(prefix),
        Some(
            "arn:${AWS::Partition}:ssm-incidents::${AWS::AccountId}:response-plan/${AWS::StackName}-"
        )
    );
    let wanted: BTreeSet<String> = playbook_plans().into_values().collect();
    assert!(
        !wanted.is_empty(),
        "the starter playbooks name response plans"
    );
    let mut created = BTreeSet::new();
    for (id, plan) in of_type(&t, "AWS::SSMIncidents::ResponsePlan") {
        assert_eq!(
            plan["Condition"].as_str(),
            Some("IncidentManagerEnabled"),
            "{id}"
        );
        let p = &plan["Properties"];
        let name = sub(&p["Name"]).unwrap_or_else(|| panic!("{id}: Name is a !Sub"));
        let plan_name = name
            .strip_prefix("${AWS::StackName}-")
            .unwrap_or_else(|| panic!("{id}: {name} is not <stack name>-<plan>"));
        created.insert(plan_name.to_owned());
        let impact = p["IncidentTemplate"]["Impact"].as_u64().unwrap_or_default();
        assert!((1..=5).contains(&impact), "{id}: Impact {impact}");
        let targets = p["IncidentTemplate"]["NotificationTargets"]
            .as_sequence()
            .expect("NotificationTargets");
        assert!(
            targets
                .iter()
                .any(|n| reference(&n["SnsTopicArn"]) == Some("EscalationTopic")),
            "{id}: engagements go to the escalation topic"
        );
        let actions = p["Actions"].as_sequence().expect("Actions");
        let [action] = actions.as_slice() else {
            panic!("{id}: one runbook");
        };
        let automation = &action["SsmAutomation"];
        let document = reference(&automation["DocumentName"])
            .unwrap_or_else(|| panic!("{id}: runs a document of this stack"));
        assert_eq!(
            resources(&t)[document]["Type"].as_str(),
            Some("AWS::SSM::Document"),
            "{id}"
        );
        let role = Some(("RunbookAutomationRole".to_owned(), "Arn".to_owned()));
        assert_eq!(get_att(&automation["RoleArn"]), role, "{id}");
        let assume = automation["Parameters"]
            .as_sequence()
            .into_iter()
            .flatten()
            .find(|p| p["Key"].as_str() == Some("AutomationAssumeRole"))
            .unwrap_or_else(|| panic!("{id}: passes AutomationAssumeRole"));
        assert_eq!(
            assume["Values"]
                .as_sequence()
                .and_then(|v| v.first())
                .and_then(get_att),
            role,
            "{id}"
        );
    }
    assert_eq!(
        wanted, created,
        "each playbook's response_plan is a ResponsePlan named <stack name>-<plan>, and no other"
    );
}

#[test]
fn response_plans_wait_for_the_replication_set_this_stack_creates_and_it_outlives_the_stack() {
    let t = template();
    let set = &resources(&t)["IncidentManagerReplicationSet"];
    assert_eq!(set["Condition"].as_str(), Some("CreateReplicationSet"));
    // Deleting the replication set deletes every incident record in the account.
    assert_eq!(set["DeletionPolicy"].as_str(), Some("Retain"));
    assert_eq!(set["UpdateReplacePolicy"].as_str(), Some("Retain"));
    for (id, plan) in of_type(&t, "AWS::SSMIncidents::ResponsePlan") {
        let (name, arg) = intrinsic(&plan["Properties"]["Tags"])
            .unwrap_or_else(|| panic!("{id}: Tags is an !If on CreateReplicationSet"));
        assert_eq!(name, "If", "{id}");
        let args = arg.as_sequence().expect("!If's arguments");
        assert_eq!(args[0].as_str(), Some("CreateReplicationSet"), "{id}");
        let refers = args[1]
            .as_sequence()
            .into_iter()
            .flatten()
            .any(|tag| reference(&tag["Value"]) == Some("IncidentManagerReplicationSet"));
        assert!(refers, "{id}: a tag refers to the replication set");
        assert_eq!(reference(&args[2]), Some("AWS::NoValue"), "{id}");
    }
}

// ------------------------------------------------------------------------------------------
// Failure handling and alarms.

#[test]
fn every_rule_parks_undeliverable_events_in_a_queue_that_admits_exactly_the_stacks_rules() {
    let t = template();
    let queue = Some(("RuleDeadLetterQueue".to_owned(), "Arn".to_owned()));
    let mut rules = BTreeSet::new();
    for (function, name, event) in function_events(&t) {
        if !matches!(event["Type"].as_str(), Some("EventBridgeRule" | "Schedule")) {
            continue;
        }
        assert_eq!(
            get_att(&event["Properties"]["DeadLetterConfig"]["Arn"]),
            queue,
            "{function}.{name}: DeadLetterConfig.Arn is RuleDeadLetterQueue's"
        );
        // SAM names a function's rule after the function and the event.
        rules.insert(format!("{function}{name}"));
    }
    let policy = &resources(&t)["RuleDeadLetterQueuePolicy"]["Properties"];
    assert_eq!(
        policy["Queues"]
            .as_sequence()
            .and_then(|q| q.first())
            .and_then(reference),
        Some("RuleDeadLetterQueue")
    );
    let statements = policy["PolicyDocument"]["Statement"]
        .as_sequence()
        .expect("statements");
    let [statement] = statements.as_slice() else {
        panic!("one statement");
    };
    assert_eq!(
        statement["Principal"]["Service"].as_str(),
        Some("events.amazonaws.com")
    );
    assert_eq!(statement["Action"].as_str(), Some("sqs:SendMessage"));
    assert_eq!(
        reference(&statement["Condition"]["StringEquals"]["aws:SourceAccount"]),
        Some("AWS::AccountId")
    );
    let admitted: BTreeSet<String> = statement["Condition"]["ArnLike"]["aws:SourceArn"]
        .as_sequence()
        .expect("a list of rule ARNs")
        .iter()
        .map(|v| match get_att(v) {
            Some((id, attr)) if attr == "Arn" => id,
            _ => panic!("{v:?} is not a rule's ARN"),
        })
        .collect();
    assert_eq!(
        admitted, rules,
        "a rule missing here would fail to park its events; one too many admits a stranger"
    );
}

/// The alarms of the stack: (logical id, name as a `!Sub`, properties).
fn alarms(t: &Value) -> Vec<(&str, &str, &Value)> {
    of_type(t, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|(id, a)| {
            let p = &a["Properties"];
            let name = sub(&p["AlarmName"]).unwrap_or_else(|| panic!("{id}: AlarmName is a !Sub"));
            (id, name, p)
        })
        .collect()
}

fn actions(p: &Value, key: &str) -> Vec<Value> {
    p[key].as_sequence().cloned().unwrap_or_default()
}

#[test]
fn no_alarm_of_the_stack_can_feed_back_into_the_pipeline() {
    let t = template();
    let all = alarms(&t);
    assert!(!all.is_empty());
    for (id, name, p) in &all {
        let alarm_actions = actions(p, "AlarmActions");
        let ok_actions = actions(p, "OKActions");
        assert!(!alarm_actions.is_empty(), "{id}: an alarm nobody hears");
        if name.starts_with("firebreak-ops-${AWS::StackName}-") {
            for a in alarm_actions.iter().chain(&ok_actions) {
                assert_eq!(reference(a), Some("OperatorsTopic"), "{id}: {a:?}");
            }
        } else if name.starts_with("firebreak-direct-${AWS::StackName}-") {
            let create = Some(("CreateFunction".to_owned(), "Arn".to_owned()));
            for a in alarm_actions.iter().chain(&ok_actions) {
                assert_eq!(get_att(a), create, "{id}: {a:?}");
            }
            assert_eq!(
                resources(&t)[*id]["DependsOn"].as_str(),
                Some("CreateFunctionAlarmInvokePermission"),
                "{id}: the alarm may invoke create from its first state change"
            );
        } else {
            panic!(
                "{id}: {name} is neither firebreak-ops-<stack>-… nor firebreak-direct-<stack>-…"
            );
        }
    }
    // …and the default bus's alarm rules leave every firebreak-* alarm out.
    let events = function_events(&t);
    for (function, name) in [
        ("CreateFunction", "AlarmStateChange"),
        ("CloseFunction", "AlarmBackToOk"),
    ] {
        let (_, _, event) = events
            .iter()
            .find(|(f, n, _)| *f == function && *n == name)
            .unwrap_or_else(|| panic!("{function}.{name}"));
        let names = &event["Properties"]["Pattern"]["detail"]["alarmName"];
        assert_eq!(
            names[0]["anything-but"]["prefix"].as_str(),
            Some("firebreak-"),
            "{function}.{name}: {names:?}"
        );
    }
}

#[test]
fn every_function_and_both_queues_have_an_alarm_for_operators() {
    let t = template();
    let all = alarms(&t);
    let watched = |namespace: &str, metric: &str, dimension: &str| -> Vec<Value> {
        all.iter()
            .filter(|(_, _, p)| {
                p["Namespace"].as_str() == Some(namespace)
                    && p["MetricName"].as_str() == Some(metric)
            })
            .flat_map(|(_, _, p)| p["Dimensions"].as_sequence().cloned().unwrap_or_default())
            .filter(|d| d["Name"].as_str() == Some(dimension))
            .map(|d| d["Value"].clone())
            .collect()
    };
    let errors = watched("AWS/Lambda", "Errors", "FunctionName");
    for (function, _) in of_type(&t, "AWS::Serverless::Function") {
        let by_ref = errors.iter().any(|v| reference(v) == Some(function));
        assert!(by_ref, "no Errors alarm for {function}");
    }
    let depths = watched("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName");
    for queue in ["RuleDeadLetterQueue", "FailedInvocationQueue"] {
        let named = depths
            .iter()
            .any(|v| get_att(v) == Some((queue.to_owned(), "QueueName".to_owned())));
        assert!(named, "no depth alarm for {queue}");
    }
}

#[test]
fn each_function_logs_to_its_own_retained_encrypted_group() {
    let t = template();
    let mut groups = BTreeSet::new();
    for (function, f) in of_type(&t, "AWS::Serverless::Function") {
        let group = reference(&f["Properties"]["LoggingConfig"]["LogGroup"])
            .unwrap_or_else(|| panic!("{function}: LoggingConfig.LogGroup is a !Ref"));
        assert!(groups.insert(group), "{function} shares {group}");
        let g = &resources(&t)[group];
        assert_eq!(g["Type"].as_str(), Some("AWS::Logs::LogGroup"), "{group}");
        let p = &g["Properties"];
        assert_eq!(reference(&p["RetentionInDays"]), Some("LogRetentionDays"));
        assert_eq!(
            get_att(&p["KmsKeyId"]),
            Some(("LogsKey".to_owned(), "Arn".to_owned()))
        );
        // Named after the stack, not the function, so the group exists before the function
        // can first run and Lambda never races CloudFormation to create it.
        let name = sub(&p["LogGroupName"]).expect("LogGroupName is a !Sub");
        assert!(
            name.starts_with("/aws/lambda/${AWS::StackName}-"),
            "{group}: {name}"
        );
    }
}

// ------------------------------------------------------------------------------------------
// Patterns, switches, outputs.

/// Fails on anything in an event pattern the local sandbox cannot resolve: it resolves
/// parameters, pseudo parameters and conditions, not other resources' attributes.
fn resolvable(v: &Value, t: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some((name, arg)) = intrinsic(v) {
        match name.as_str() {
            "If" => {
                for branch in arg.as_sequence().into_iter().flatten().skip(1) {
                    resolvable(branch, t, at, errors);
                }
            }
            "Ref" => {
                let id = arg.as_str().unwrap_or_default();
                let parameter = t["Parameters"].get(id).is_some();
                if !(parameter || id.starts_with("AWS::")) {
                    errors.push(format!("{at}: !Ref {id} is not a parameter"));
                }
            }
            "Sub" => {
                let text = arg.as_str().unwrap_or_default();
                for var in text.split("${").skip(1).filter_map(|s| s.split_once('}')) {
                    let var = var.0;
                    if !(var.starts_with("AWS::") || t["Parameters"].get(var).is_some()) {
                        errors.push(format!("{at}: !Sub names {var}"));
                    }
                }
            }
            other => errors.push(format!("{at}: !{other}")),
        }
        return;
    }
    match v {
        Value::Sequence(items) => {
            for i in items {
                resolvable(i, t, at, errors);
            }
        }
        Value::Mapping(m) => {
            for (k, i) in m {
                resolvable(i, t, &format!("{at}.{}", k.as_str().unwrap_or("?")), errors);
            }
        }
        _ => {}
    }
}

#[test]
fn event_patterns_use_only_parameters_conditions_and_literals() {
    let t = template();
    let mut errors = Vec::new();
    for (function, name, event) in function_events(&t) {
        let pattern = &event["Properties"]["Pattern"];
        resolvable(pattern, &t, &format!("{function}.{name}"), &mut errors);
    }
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn the_dry_run_switch_is_the_dry_run_parameter_and_a_first_deploy_is_a_dry_run() {
    let t = template();
    let p = &t["Parameters"]["DryRun"];
    assert_eq!(p["Default"].as_str(), Some("true"));
    let allowed: Vec<&str> = p["AllowedValues"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(allowed, ["true", "false"]);
    let switch = &resources(&t)["DryRunSwitch"]["Properties"];
    assert_eq!(reference(&switch["Value"]), Some("DryRun"));
    assert_eq!(
        reference(&t["Outputs"]["DryRunParameterName"]["Value"]),
        Some("DryRunSwitch")
    );
}

#[test]
fn the_outputs_other_tools_read_are_there() {
    let t = template();
    for key in [
        "IncidentTableName",
        "LifecycleBusName",
        "NotificationTopicArn",
        "EscalationTopicArn",
        "OperatorsTopicArn",
        "DryRunParameterName",
    ] {
        assert!(
            t["Outputs"].get(key).is_some(),
            "output {key}: the CLI reads it"
        );
    }
}

#[test]
fn only_remediate_reserves_concurrency_and_only_when_asked_to() {
    let t = template();
    for (function, f) in of_type(&t, "AWS::Serverless::Function") {
        let reserved = &f["Properties"]["ReservedConcurrentExecutions"];
        if function != "RemediateFunction" {
            assert!(reserved.is_null(), "{function} reserves concurrency");
            continue;
        }
        let (name, arg) = intrinsic(reserved).expect("an !If");
        assert_eq!(name, "If");
        let args = arg.as_sequence().expect("!If's arguments");
        assert_eq!(args[0].as_str(), Some("HasRemediateConcurrency"));
        assert_eq!(reference(&args[1]), Some("RemediateConcurrency"));
        assert_eq!(reference(&args[2]), Some("AWS::NoValue"));
    }
    let p = &t["Parameters"]["RemediateConcurrency"];
    assert_eq!(p["Default"].as_u64(), Some(2));
    assert_eq!(p["MinValue"].as_u64(), Some(0));
}

// ------------------------------------------------------------------------------------------
// Sample events.

#[test]
fn the_sample_events_copied_from_fixtures_are_still_the_fixtures() {
    for (sample, fixture) in [
        (
            "events/create/guardduty-ec2-compromise.json",
            "tests/fixtures/events/guardduty/custodian-eventbridge-backdoor-ec2-cc-activity-b-dns.json",
        ),
        (
            "events/create/alarm-direct.json",
            "tests/fixtures/events/cloudwatch-alarm-direct/powertools-python-metric-math-alarm-ok-to-alarm.json",
        ),
        (
            "events/create/securityhub-imported.json",
            "tests/fixtures/events/securityhub/jira-imported-new-cis-1.22-iam-policy.json",
        ),
    ] {
        assert_eq!(
            read(&root().join(sample)),
            read(&root().join(fixture)),
            "{sample} is a verbatim copy of {fixture} (events/README.md credits it)"
        );
    }
}

#[test]
fn the_sample_signals_parse_and_the_all_clear_resolves() {
    let now = chrono::DateTime::from_timestamp(1_773_480_000, 0).unwrap_or_default();
    for (sample, action) in [
        ("events/create/guardduty-ec2-compromise.json", "open"),
        ("events/create/alarm-direct.json", "open"),
        ("events/create/securityhub-imported.json", "open"),
        ("events/close/alarm-ok.json", "resolve"),
    ] {
        let bytes = read(&root().join(sample));
        let signals = firebreak_shared::signal::parse(bytes.as_bytes(), now)
            .unwrap_or_else(|e| panic!("{sample}: {e}"));
        assert!(!signals.is_empty(), "{sample}");
        for s in signals {
            assert_eq!(s.action.as_str(), action, "{sample}");
        }
    }
    let sweep: serde_json::Value =
        serde_json::from_str(&read(&root().join("events/close/sweep.json"))).expect("JSON");
    assert_eq!(sweep["source"], "aws.events");
    assert_eq!(sweep["detail-type"], "Scheduled Event");
}
