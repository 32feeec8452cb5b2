//! Each function's role in template.yaml grants exactly what its code calls.
//!
//! Every stage crate declares the AWS calls it makes as `IAM_ACTIONS`. These tests read the
//! template, collect every action each function's `Policies` grants (both branches of every
//! `!If`), and hold the two equal: a call the role lacks fails in production with AccessDenied,
//! and a grant no code uses is privilege an attacker could borrow. They also check that
//! nothing is granted on `*` except read-only calls that IAM cannot scope, and that every other
//! resource is one of this stack's own or this account's.
//!
//! SAM adds two grants of its own that are not in `Policies` and that no stage code calls:
//! `AWSLambdaBasicExecutionRole` (the function's logs) and `sqs:SendMessage` on
//! `FailedInvocationQueue` (the on-failure destination in the template's Globals), which
//! Lambda itself uses.
//!
//! The runbooks' role is held to the same rule: `RunbookAutomationRole` grants exactly the AWS
//! calls the steps of `infra/runbooks/*.yaml` make, read from the documents themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_yaml_ng::{Mapping, Value};

/// The function logical ids in template.yaml and the calls their code makes.
fn declared() -> BTreeMap<&'static str, &'static [&'static str]> {
    BTreeMap::from([
        ("CreateFunction", firebreak_create::IAM_ACTIONS),
        ("EnrichFunction", firebreak_enrich::IAM_ACTIONS),
        ("RemediateFunction", firebreak_remediate::IAM_ACTIONS),
        ("NotifyFunction", firebreak_notify::IAM_ACTIONS),
        ("CloseFunction", firebreak_close::IAM_ACTIONS),
    ])
}

/// Actions a role needs that its code never calls itself.
const IMPLIED: &[(&str, &[&str])] = &[
    // Publishing to an SSE-KMS topic: SNS asks KMS for a data key with the publisher's
    // credentials, so the publisher needs both on the topics' key.
    ("NotifyFunction", &["kms:Decrypt", "kms:GenerateDataKey"]),
    // SSM Automation runs a runbook with the caller's permissions when no role is passed: the
    // starter ec2-unhealthy playbook's AWS-RestartEC2Instance stops and starts the instance
    // and waits on its status.
    (
        "RemediateFunction",
        &["ec2:DescribeInstanceStatus", "ec2:StartInstances"],
    ),
];

/// Resource ARNs that have no account field by AWS's own format: EC2 snapshots, S3 buckets,
/// and documents AWS owns. Each grant on them carries a condition or an `AWS-` name instead.
const NO_ACCOUNT_FIELD: &[&str] = &[
    "arn:${AWS::Partition}:ec2:${AWS::Region}::snapshot/*",
    "arn:${AWS::Partition}:s3:::*",
    "arn:${AWS::Partition}:ssm:${AWS::Region}::automation-definition/AWS-*",
    "arn:${AWS::Partition}:ssm:${AWS::Region}::document/AWS-*",
];

/// The condition that gates every Incident Manager call.
const IM_CONDITION: &str = "IncidentManagerEnabled";

/// Verbs of calls that read and change nothing: the only ones allowed on `Resource: "*"`.
const READ_ONLY_VERBS: &[&str] = &[
    "Describe", "Get", "List", "Lookup", "BatchGet", "Query", "Scan",
];

fn template() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let text = std::fs::read_to_string(&path).expect("template.yaml is readable");
    serde_yaml_ng::from_str(&text).expect("template.yaml is YAML")
}

/// A CloudFormation intrinsic in either spelling, short tag (`!If [..]`) or long form
/// (`{"Fn::If": [..]}`): its name without `Fn::` and its argument.
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

/// One policy statement and the condition (`Name` or `!Name`) it is granted under, if any.
struct Statement<'a> {
    function: &'a str,
    condition: Option<String>,
    body: &'a Mapping,
}

impl Statement<'_> {
    fn field(&self, name: &str) -> Option<&Value> {
        self.body.get(name)
    }

    fn strings(&self, name: &str) -> Vec<String> {
        match self.field(name) {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Sequence(items)) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .unwrap_or_else(|| {
                            panic!("{}: {name} entry {i:?} is not a string", self.function)
                        })
                        .to_owned()
                })
                .collect(),
            Some(other) => panic!("{}: {name} is {other:?}", self.function),
        }
    }

    fn actions(&self) -> Vec<String> {
        self.strings("Action")
    }

    fn resources(&self) -> Vec<&Value> {
        match self.field("Resource") {
            None => Vec::new(),
            Some(Value::Sequence(items)) => items.iter().collect(),
            Some(one) => vec![one],
        }
    }

    fn allows(&self) -> bool {
        self.field("Effect").and_then(Value::as_str) == Some("Allow")
    }
}

/// Flattens a `Statement` value: a list, a single statement, or intrinsics choosing them.
fn collect<'a>(
    function: &'a str,
    v: &'a Value,
    condition: Option<String>,
    out: &mut Vec<Statement<'a>>,
) {
    if let Some((name, arg)) = intrinsic(v) {
        match name.as_str() {
            "If" => {
                let args = arg.as_sequence().expect("!If takes a list");
                assert_eq!(
                    args.len(),
                    3,
                    "{function}: !If takes a condition and two branches"
                );
                let cond = args[0].as_str().expect("!If's condition is a name");
                collect(function, &args[1], Some(cond.to_owned()), out);
                collect(function, &args[2], Some(format!("!{cond}")), out);
            }
            "Ref" if arg.as_str() == Some("AWS::NoValue") => {}
            other => panic!("{function}: unexpected !{other} where a statement belongs"),
        }
        return;
    }
    match v {
        Value::Sequence(items) => {
            for i in items {
                collect(function, i, condition.clone(), out);
            }
        }
        Value::Mapping(body) => out.push(Statement {
            function,
            condition,
            body,
        }),
        other => panic!("{function}: {other:?} is not a policy statement"),
    }
}

fn functions(t: &Value) -> BTreeMap<&str, &Mapping> {
    t["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(k, r)| {
            let name = k.as_str().expect("logical ids are strings");
            (
                name,
                r["Properties"]
                    .as_mapping()
                    .expect("a function has Properties"),
            )
        })
        .collect()
}

/// Every statement each function's `Policies` holds. A policy that is not an inline
/// `Statement` (a managed policy, a SAM policy template) fails: their grants are not visible
/// here and are broader than any stage needs.
fn statements(t: &Value) -> Vec<Statement<'_>> {
    let mut out = Vec::new();
    for (name, props) in functions(t) {
        assert!(
            props.get("Role").is_none(),
            "{name} brings its own Role; its grants must be in Policies where this test reads them"
        );
        let Some(policies) = props.get("Policies") else {
            continue;
        };
        for policy in policies.as_sequence().expect("Policies is a list") {
            let doc = policy.as_mapping().unwrap_or_else(|| {
                panic!(
                    "{name}: policy {policy:?} is a managed policy; grant inline statements instead"
                )
            });
            for key in doc.keys() {
                assert!(
                    matches!(key.as_str(), Some("Statement" | "Version")),
                    "{name}: policy {key:?} is a SAM policy template; grant inline statements instead"
                );
            }
            collect(name, &doc["Statement"], None, &mut out);
        }
    }
    out
}

#[test]
fn every_function_is_known_to_this_test() {
    let t = template();
    let in_template: BTreeSet<&str> = functions(&t).into_keys().collect();
    let here: BTreeSet<&str> = declared().into_keys().collect();
    assert_eq!(
        in_template, here,
        "a function was added or renamed: give its crate IAM_ACTIONS and list it here"
    );
}

#[test]
fn each_role_grants_exactly_the_calls_its_code_makes() {
    let t = template();
    let all = statements(&t);
    let mut failures = Vec::new();
    for (function, code) in declared() {
        let granted: BTreeSet<String> = all
            .iter()
            .filter(|s| s.function == function && s.allows())
            .flat_map(Statement::actions)
            .collect();
        let implied = IMPLIED
            .iter()
            .filter(|(f, _)| *f == function)
            .flat_map(|(_, a)| a.iter());
        let expected: BTreeSet<String> = code
            .iter()
            .chain(implied)
            .map(|a| (*a).to_owned())
            .collect();
        let missing: Vec<_> = expected.difference(&granted).collect();
        let extra: Vec<_> = granted.difference(&expected).collect();
        if !missing.is_empty() {
            failures.push(format!(
                "{function}: the role lacks {missing:?}, which the code calls"
            ));
        }
        if !extra.is_empty() {
            failures.push(format!(
                "{function}: the role grants {extra:?}, which nothing calls"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_declared_calls_are_well_formed_and_sorted() {
    for (function, code) in declared() {
        for a in code {
            let (service, op) = a
                .split_once(':')
                .unwrap_or_else(|| panic!("{function}: {a} is not service:Action"));
            assert!(
                !service.is_empty() && op.chars().next().is_some_and(|c| c.is_ascii_uppercase()),
                "{function}: {a}"
            );
        }
        let set: BTreeSet<_> = code.iter().collect();
        assert_eq!(
            set.len(),
            code.len(),
            "{function}: IAM_ACTIONS lists an action twice"
        );
    }
}

#[test]
fn no_action_is_a_wildcard_and_nothing_is_denied_or_negated() {
    let t = template();
    for s in statements(&t) {
        for a in s.actions() {
            assert!(
                !a.contains('*') && !a.contains('?'),
                "{}: wildcard action {a}",
                s.function
            );
        }
        assert!(
            s.allows(),
            "{}: only Allow statements are expected: {:?}",
            s.function,
            s.body
        );
        for field in ["NotAction", "NotResource", "NotPrincipal"] {
            assert!(
                s.field(field).is_none(),
                "{}: {field} grants more than it appears to",
                s.function
            );
        }
        assert!(
            !s.actions().is_empty(),
            "{}: a statement without Action",
            s.function
        );
        assert!(
            !s.resources().is_empty(),
            "{}: a statement without Resource",
            s.function
        );
    }
}

#[test]
fn only_read_only_calls_are_granted_on_every_resource() {
    let t = template();
    for s in statements(&t) {
        if !s.resources().iter().any(|r| r.as_str() == Some("*")) {
            continue;
        }
        for a in s.actions() {
            let op = a.split_once(':').map_or(a.as_str(), |(_, op)| op);
            assert!(
                READ_ONLY_VERBS.iter().any(|v| op.starts_with(v)),
                "{}: {a} changes things and is granted on Resource \"*\"",
                s.function
            );
        }
    }
}

#[test]
fn every_scoped_resource_is_this_stacks_or_this_accounts() {
    let t = template();
    let resources = t["Resources"].as_mapping().expect("Resources");
    let is_resource = |id: &str| resources.keys().any(|k| k.as_str() == Some(id));
    for s in statements(&t) {
        for r in s.resources() {
            if r.as_str() == Some("*") {
                continue;
            }
            let (name, arg) = intrinsic(r).unwrap_or_else(|| {
                panic!(
                    "{}: literal resource {r:?}; name this stack's resources, not a fixed ARN",
                    s.function
                )
            });
            match name.as_str() {
                "Ref" => {
                    let id = arg.as_str().expect("Ref names a resource");
                    assert!(
                        is_resource(id),
                        "{}: Ref {id} is not a resource of this stack",
                        s.function
                    );
                }
                "GetAtt" => {
                    let id = match arg {
                        Value::String(s) => s.split('.').next().unwrap_or_default().to_owned(),
                        Value::Sequence(v) => v[0].as_str().unwrap_or_default().to_owned(),
                        _ => String::new(),
                    };
                    assert!(
                        is_resource(&id),
                        "{}: GetAtt {id} is not a resource of this stack",
                        s.function
                    );
                }
                "Sub" => {
                    let text = arg.as_str().expect("a one-argument !Sub");
                    if NO_ACCOUNT_FIELD.contains(&text) {
                        continue;
                    }
                    let own = resources
                        .keys()
                        .filter_map(Value::as_str)
                        .any(|id| text.contains(&format!("${{{id}.")));
                    assert!(
                        own || (text.contains("${AWS::AccountId}")
                            && text.contains("${AWS::Partition}")),
                        "{}: {text} is neither this stack's resource nor scoped to this account and partition",
                        s.function
                    );
                    // arn:partition:service:region:account: none of these may be a wildcard; the
                    // resource part may end in one (this account's alarms, its response plans).
                    if text.starts_with("arn:") {
                        let head: Vec<&str> = text.splitn(6, ':').take(5).collect();
                        assert!(
                            head.iter().all(|p| !p.contains('*')),
                            "{}: {text} has a wildcard partition, service, region or account",
                            s.function
                        );
                    }
                }
                other => panic!("{}: unexpected !{other} as a resource", s.function),
            }
        }
    }
}

#[test]
fn incident_manager_calls_are_granted_only_when_it_is_enabled() {
    let t = template();
    for s in statements(&t) {
        let im = s.actions().iter().any(|a| a.starts_with("ssm-incidents:"));
        if im {
            assert_eq!(
                s.condition.as_deref(),
                Some(IM_CONDITION),
                "{}: Incident Manager calls must sit in the {IM_CONDITION} branch of an !If",
                s.function
            );
        }
    }
    let conditions = t["Conditions"].as_mapping().expect("Conditions");
    assert!(conditions.keys().any(|k| k.as_str() == Some(IM_CONDITION)));
}

// ------------------------------------------------------------------------------------------
// The runbooks' role.

/// Calls the runbook role needs that no step names: tagging snapshots as CreateSnapshots makes
/// them, and Incident Manager starting the context runbook as the role and passing the role to
/// Automation as its AutomationAssumeRole.
const RUNBOOK_IMPLIED: &[&str] = &[
    "ec2:CreateTags",
    "iam:PassRole",
    "ssm:StartAutomationExecution",
];

/// Automation actions that make one AWS call, named by their `Service` and `Api` inputs.
const API_ACTIONS: &[&str] = &[
    "aws:executeAwsApi",
    "aws:assertAwsResourceProperty",
    "aws:waitForAwsResourceProperty",
];

/// The IAM prefix of a service as Automation (boto3) names it. Only the services the runbooks
/// use are listed; a new one fails here until it is added, rather than being guessed.
fn iam_prefix(service: &str) -> &str {
    match service {
        "ec2" | "cloudwatch" | "ssm-incidents" | "ssm" => service,
        other => panic!("runbook service {other}: add its IAM prefix here"),
    }
}

/// Every `service:Api` the runbooks' steps call.
fn runbook_calls() -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/runbooks");
    let mut calls = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("infra/runbooks") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a runbook is readable");
        let doc: Value = serde_yaml_ng::from_str(&text).expect("a runbook is YAML");
        for step in doc["mainSteps"].as_sequence().expect("mainSteps") {
            let action = step["action"].as_str().unwrap_or_default();
            if !API_ACTIONS.contains(&action) {
                continue;
            }
            let inputs = &step["inputs"];
            let service = inputs["Service"].as_str().expect("Service");
            let api = inputs["Api"].as_str().expect("Api");
            calls.insert(format!("{}:{api}", iam_prefix(service)));
        }
    }
    calls
}

/// The runbook role's statements: every policy attached to it.
fn runbook_statements(t: &Value) -> Vec<Statement<'_>> {
    let mut out = Vec::new();
    for (id, r) in t["Resources"].as_mapping().expect("Resources") {
        let attached = r["Type"].as_str() == Some("AWS::IAM::Policy")
            && r["Properties"]["Roles"]
                .as_sequence()
                .into_iter()
                .flatten()
                .any(|role| {
                    intrinsic(role).is_some_and(|(name, arg)| {
                        name == "Ref" && arg.as_str() == Some("RunbookAutomationRole")
                    })
                });
        if attached {
            let id = id.as_str().expect("logical ids are strings");
            collect(
                id,
                &r["Properties"]["PolicyDocument"]["Statement"],
                None,
                &mut out,
            );
        }
    }
    assert!(
        t["Resources"]["RunbookAutomationRole"]["Properties"]["Policies"].is_null(),
        "the role's grants are in attached AWS::IAM::Policy resources, where this test reads them"
    );
    out
}

#[test]
fn the_runbook_role_grants_exactly_the_calls_the_runbooks_make() {
    let t = template();
    let statements = runbook_statements(&t);
    assert!(!statements.is_empty());
    let granted: BTreeSet<String> = statements
        .iter()
        .filter(|s| s.allows())
        .flat_map(Statement::actions)
        .collect();
    let expected: BTreeSet<String> = runbook_calls()
        .into_iter()
        .chain(RUNBOOK_IMPLIED.iter().map(|a| (*a).to_owned()))
        .collect();
    assert_eq!(
        granted, expected,
        "RunbookAutomationRole must grant what infra/runbooks calls, no more, no less"
    );
    for s in &statements {
        assert!(s.allows() && !s.resources().is_empty(), "{:?}", s.body);
        if s.resources().iter().any(|r| r.as_str() == Some("*")) {
            for a in s.actions() {
                let op = a.split_once(':').map_or(a.as_str(), |(_, op)| op);
                assert!(
                    READ_ONLY_VERBS.iter().any(|v| op.starts_with(v)),
                    "runbook role: {a} changes things and is granted on Resource \"*\""
                );
            }
        }
    }
}

#[test]
fn only_automation_and_incident_manager_of_this_account_assume_the_runbook_role() {
    let t = template();
    let trust = &t["Resources"]["RunbookAutomationRole"]["Properties"]["AssumeRolePolicyDocument"];
    for statement in trust["Statement"].as_sequence().expect("statements") {
        let services: BTreeSet<&str> = statement["Principal"]["Service"]
            .as_sequence()
            .expect("service principals")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            services,
            BTreeSet::from(["ssm-incidents.amazonaws.com", "ssm.amazonaws.com"])
        );
        let account = &statement["Condition"]["StringEquals"]["aws:SourceAccount"];
        assert!(
            intrinsic(account)
                .is_some_and(|(n, a)| n == "Ref" && a.as_str() == Some("AWS::AccountId")),
            "confused deputy: the role is assumed only on this account's behalf"
        );
    }
}
