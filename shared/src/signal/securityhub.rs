//! Security Hub findings (ASFF) as signals, one per finding.
//!
//! Findings arrive in an EventBridge event's `detail.findings`, bare, or as `get-findings`
//! output (`{"Findings": [...]}`). Every product writes ASFF a little differently (GuardDuty's
//! findings carry no severity label, CIS findings name their control `RuleId`, consolidated
//! control findings name it only under `Compliance`), so each field is read from the places it is
//! known to live, in order of trust.

use std::str::FromStr;

use serde::Deserialize;

use super::envelope::{Ctx, Envelope, Loose, Number, ResourceList, TagList, TagMap, str_of, title};
use super::{Action, ParseError, ResourceKind, Severity, Signal, Source};

/// What refusals call an EventBridge Security Hub payload, a `get-findings` list and a bare
/// finding.
pub(super) const EVENT: &str = "Security Hub event";
pub(super) const FINDINGS: &str = "Security Hub findings";
pub(super) const FINDING: &str = "Security Hub finding";

/// The `detail` of a "Security Hub Findings - Imported" or "- Custom Action" event.
#[derive(Deserialize)]
pub(super) struct Detail<'a> {
    #[serde(borrow)]
    findings: Option<Vec<Finding<'a>>>,
}

/// One ASFF finding.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Finding<'a> {
    #[serde(borrow)]
    id: Option<Loose<'a>>,
    #[serde(borrow)]
    generator_id: Option<Loose<'a>>,
    #[serde(borrow)]
    title: Option<Loose<'a>>,
    #[serde(borrow)]
    aws_account_id: Option<Loose<'a>>,
    #[serde(borrow)]
    region: Option<Loose<'a>>,
    #[serde(borrow)]
    updated_at: Option<Loose<'a>>,
    #[serde(borrow)]
    last_observed_at: Option<Loose<'a>>,
    #[serde(borrow)]
    created_at: Option<Loose<'a>>,
    #[serde(borrow)]
    record_state: Option<Loose<'a>>,
    #[serde(borrow)]
    workflow: Option<Workflow<'a>>,
    #[serde(borrow)]
    workflow_state: Option<Loose<'a>>,
    #[serde(borrow)]
    compliance: Option<Compliance<'a>>,
    #[serde(borrow)]
    severity: Option<FindingSeverity<'a>>,
    #[serde(borrow)]
    product_fields: Option<ProductFields<'a>>,
    #[serde(borrow)]
    resources: Option<Vec<FindingResource<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Workflow<'a> {
    #[serde(borrow)]
    status: Option<Loose<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Compliance<'a> {
    #[serde(borrow)]
    status: Option<Loose<'a>>,
    #[serde(borrow)]
    security_control_id: Option<Loose<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FindingSeverity<'a> {
    #[serde(borrow)]
    label: Option<Loose<'a>>,
    normalized: Option<Number>,
}

/// The few product fields Firebreak reads; a typed struct skips the rest (often dozens of
/// flattened evidence keys) without building a map.
#[derive(Deserialize)]
struct ProductFields<'a> {
    #[serde(rename = "ControlId", borrow)]
    control_id: Option<Loose<'a>>,
    #[serde(rename = "RuleId", borrow)]
    rule_id: Option<Loose<'a>>,
    #[serde(rename = "aws/guardduty/service/count")]
    guardduty_count: Option<Number>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FindingResource<'a> {
    #[serde(borrow)]
    r#type: Option<Loose<'a>>,
    #[serde(borrow)]
    id: Option<Loose<'a>>,
    #[serde(borrow)]
    region: Option<Loose<'a>>,
    #[serde(borrow)]
    tags: Option<TagMap<'a>>,
    #[serde(borrow)]
    details: Option<ResourceDetails<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResourceDetails<'a> {
    #[serde(borrow)]
    aws_iam_access_key: Option<AccessKeyDetails<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AccessKeyDetails<'a> {
    #[serde(borrow)]
    access_key_id: Option<Loose<'a>>,
    #[serde(borrow)]
    user_name: Option<Loose<'a>>,
    #[serde(borrow)]
    principal_name: Option<Loose<'a>>,
}

/// The findings of a "Security Hub Findings - Imported" or "- Custom Action" event.
pub(super) fn from_detail(
    detail: &Detail<'_>,
    env: &Envelope<'_>,
    ctx: &Ctx,
) -> Result<Vec<Signal>, ParseError> {
    let findings = detail
        .findings
        .as_deref()
        .ok_or_else(|| ParseError::malformed(EVENT, "no \"detail.findings\""))?;
    from_findings(findings, env, ctx)
}

/// Findings from an event, a `get-findings` list or a bare finding: one signal each.
pub(super) fn from_findings(
    findings: &[Finding<'_>],
    env: &Envelope<'_>,
    ctx: &Ctx,
) -> Result<Vec<Signal>, ParseError> {
    if findings.is_empty() {
        return Err(ParseError::malformed(EVENT, "its findings list is empty"));
    }
    let total = findings.len();
    findings
        .iter()
        .enumerate()
        .map(|(i, f)| {
            signal(f, env, ctx).map_err(|reason| {
                let reason = if total > 1 {
                    format!("finding {} of {total}: {reason}", i + 1)
                } else {
                    reason.to_owned()
                };
                ParseError::malformed(FINDING, reason)
            })
        })
        .collect()
}

fn signal(f: &Finding<'_>, env: &Envelope<'_>, ctx: &Ctx) -> Result<Signal, &'static str> {
    let id = non_empty(str_of(&f.id)).ok_or("no \"Id\"")?;
    let generator = non_empty(str_of(&f.generator_id)).ok_or("no \"GeneratorId\"")?;

    let mut resources = ResourceList::default();
    let mut tags = TagList::default();
    for r in f.resources.iter().flatten() {
        collect_resource(r, &mut resources);
        if let Some(t) = &r.tags {
            tags.extend(t);
        }
    }

    let first_resource_region = f
        .resources
        .iter()
        .flatten()
        .find_map(|r| non_empty(str_of(&r.region)));
    let region = non_empty(str_of(&f.region))
        .or(env.region)
        .or(first_resource_region);
    let count = f
        .product_fields
        .as_ref()
        .and_then(|p| Number::get(&p.guardduty_count))
        .filter(|c| *c >= 1.0)
        .map_or(1, |c| c as u64);

    Ok(Signal {
        source: Source::SecurityHub,
        action: action(f),
        severity: severity(f),
        title: title(non_empty(str_of(&f.title)).unwrap_or(generator)),
        kind: generator.to_owned(),
        control_id: control_id(f, generator),
        alarm_name: None,
        alarm_state: None,
        resources: resources.into_vec(),
        tags: tags.into_vec(),
        // Kept as given even when masked ("XXXXXXXXXXX"): it is still the finding's account.
        account: non_empty(str_of(&f.aws_account_id))
            .or(env.account)
            .map(str::to_owned),
        region: region.map(str::to_owned),
        observed_at: env.observed_at(
            &[
                str_of(&f.updated_at),
                str_of(&f.last_observed_at),
                str_of(&f.created_at),
            ],
            ctx,
        ),
        count,
        dedupe_key: format!("security_hub:{id}"),
        raw: ctx.raw(),
    })
}

/// Resolved when Security Hub or the product says the problem is gone (archived record,
/// resolved workflow, passed control); ignored when someone suppressed it; open otherwise.
fn action(f: &Finding<'_>) -> Action {
    let is = |v: Option<&str>, want: &str| v.is_some_and(|v| v.trim().eq_ignore_ascii_case(want));
    let workflow = f.workflow.as_ref().and_then(|w| str_of(&w.status));
    let compliance = f.compliance.as_ref().and_then(|c| str_of(&c.status));
    if is(str_of(&f.record_state), "ARCHIVED")
        || is(workflow, "RESOLVED")
        || is(str_of(&f.workflow_state), "RESOLVED")
        || is(compliance, "PASSED")
    {
        Action::Resolve
    } else if is(workflow, "SUPPRESSED") {
        Action::Ignore
    } else {
        Action::Open
    }
}

/// The label Security Hub assigns, else the normalized score it derives it from. `Product` is on
/// each provider's own scale and says nothing comparable, so it is not used.
fn severity(f: &Finding<'_>) -> Severity {
    let Some(s) = &f.severity else {
        return Severity::Info;
    };
    str_of(&s.label)
        .and_then(|l| Severity::from_str(l.trim()).ok())
        .or_else(|| Number::get(&s.normalized).map(Severity::from_asff_normalized))
        .unwrap_or(Severity::Info)
}

/// The control a standards finding checks: `ControlId` (FSBP and the other per-standard
/// findings), `Compliance.SecurityControlId` (consolidated control findings), or `RuleId`, which
/// CIS 1.2 findings use and which reads as `CIS 1.3` to stay distinct from FSBP's `IAM.3`.
fn control_id(f: &Finding<'_>, generator: &str) -> Option<String> {
    let fields = f.product_fields.as_ref();
    if let Some(id) = non_empty(fields.and_then(|p| str_of(&p.control_id))) {
        return Some(id.to_owned());
    }
    let consolidated = f
        .compliance
        .as_ref()
        .and_then(|c| str_of(&c.security_control_id));
    if let Some(id) = non_empty(consolidated) {
        return Some(id.to_owned());
    }
    let rule = non_empty(fields.and_then(|p| str_of(&p.rule_id)))?;
    Some(if generator.contains("cis-aws-foundations-benchmark") {
        format!("CIS {rule}")
    } else {
        rule.to_owned()
    })
}

/// One ASFF resource. EC2 resources are named by their bare id (`i-…`, `sg-…`), which is what the
/// EC2 API and GuardDuty use; everything else keeps the ASFF `Id` (an ARN for most types).
fn collect_resource(r: &FindingResource<'_>, out: &mut ResourceList) {
    let id = str_of(&r.id).map(str::trim).unwrap_or("");
    match str_of(&r.r#type).map(str::trim).unwrap_or("") {
        "AwsEc2Instance" => out.push(ResourceKind::Ec2Instance, after(id, ":instance/")),
        "AwsEc2SecurityGroup" => {
            out.push(ResourceKind::SecurityGroup, after(id, ":security-group/"))
        }
        "AwsEc2Volume" => out.push(ResourceKind::Ec2Volume, after(id, ":volume/")),
        "AwsIamAccessKey" => {
            let details = r
                .details
                .as_ref()
                .and_then(|d| d.aws_iam_access_key.as_ref());
            // The Id is `AWS::IAM::AccessKey:<key id>`, and `…:null` when GuardDuty did not know
            // the key; the user is then the only thing to act on.
            let key = non_empty(details.and_then(|d| str_of(&d.access_key_id)))
                .unwrap_or_else(|| id.strip_prefix("AWS::IAM::AccessKey:").unwrap_or(id).trim());
            if !key.eq_ignore_ascii_case("null") {
                out.push(ResourceKind::AccessKey, key);
            }
            let user = details.and_then(|d| {
                non_empty(str_of(&d.user_name)).or(non_empty(str_of(&d.principal_name)))
            });
            if let Some(user) = user {
                out.push(ResourceKind::IamUser, user);
            }
        }
        "AwsIamUser" => out.push(ResourceKind::IamUser, id),
        "AwsIamRole" => out.push(ResourceKind::IamRole, id),
        "AwsIamPolicy" => out.push(ResourceKind::IamPolicy, id),
        "AwsS3Bucket" if !id.is_empty() && !id.starts_with("arn:") => {
            out.push(ResourceKind::S3Bucket, &format!("arn:aws:s3:::{id}"));
        }
        "AwsS3Bucket" => out.push(ResourceKind::S3Bucket, id),
        "AwsEksCluster" => out.push(ResourceKind::EksCluster, id),
        "AwsLambdaFunction" => out.push(ResourceKind::LambdaFunction, id),
        "AwsRdsDbInstance" => out.push(ResourceKind::RdsInstance, id),
        "AwsAccount" => out.push(
            ResourceKind::Account,
            id.strip_prefix("AWS::::Account:").unwrap_or(id),
        ),
        _ => out.push(ResourceKind::Other, id),
    }
}

/// The part of `id` after `marker` (an ARN's resource id), or `id` itself when it has none.
fn after<'x>(id: &'x str, marker: &str) -> &'x str {
    id.split_once(marker).map_or(id, |(_, rest)| rest)
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::signal::testing::{self, received};
    use crate::signal::{parse, parse_timestamp};

    fn fixture(name: &str) -> String {
        testing::fixture(&format!("securityhub/{name}"))
    }

    fn all(input: &str) -> Vec<Signal> {
        parse(input.as_bytes(), received()).expect("parses")
    }

    fn ids(s: &Signal) -> Vec<(ResourceKind, &str)> {
        s.resources
            .iter()
            .map(|r| (r.kind, r.id.as_str()))
            .collect()
    }

    #[test]
    fn custom_action_with_two_findings_gives_two_signals_sharing_raw() {
        let signals = all(&fixture("asr-custom-action-afsbp-iam.6-two-findings.json"));
        assert_eq!(signals.len(), 2);
        assert_eq!(signals[0].severity, Severity::Critical);
        assert_eq!(signals[0].control_id.as_deref(), Some("IAM.6"));
        assert_eq!(ids(&signals[0]), [(ResourceKind::Account, "111111111111")]);
        assert_eq!(signals[1].control_id.as_deref(), Some("RDS.4"));
        assert_eq!(signals[1].resources[0].kind, ResourceKind::Other);
        assert!(std::sync::Arc::ptr_eq(&signals[0].raw, &signals[1].raw));
        assert_eq!(
            signals[0].observed_at,
            parse_timestamp("2020-12-15T14:56:09.255Z").expect("valid")
        );
    }

    #[test]
    fn archived_record_resolves_even_with_a_new_workflow() {
        let s = &all(&fixture("jira-imported-archived-ec2-instance.json"))[0];
        assert_eq!(s.action, Action::Resolve);
        assert_eq!(ids(s), [(ResourceKind::Ec2Instance, "i-0000000aaaaaaaaaa")]);
    }

    #[test]
    fn passed_compliance_resolves() {
        let s = &all(&fixture("custodian-custom-action-cis-2.2-cloudtrail.json"))[0];
        assert_eq!(s.action, Action::Resolve);
        assert_eq!(s.severity, Severity::Info);
        assert_eq!(s.control_id.as_deref(), Some("CIS 2.2"));
    }

    #[test]
    fn suppressed_workflow_is_ignored_and_resolved_workflow_resolves() {
        let base = fixture("asr-bare-asff-afsbp-iam.8-iam-user.json");
        let suppressed = base.replacen("\"Status\": \"NEW\"", "\"Status\": \"SUPPRESSED\"", 1);
        assert_ne!(base, suppressed);
        assert_eq!(all(&suppressed)[0].action, Action::Ignore);
        let resolved = base.replacen("\"Status\": \"NEW\"", "\"Status\": \"RESOLVED\"", 1);
        assert_eq!(all(&resolved)[0].action, Action::Resolve);
        assert_eq!(all(&base)[0].action, Action::Open);
    }

    #[test]
    fn severity_without_label_comes_from_normalized() {
        let s = &all(&fixture(
            "custodian-custom-action-guardduty-iam-access-key.json",
        ))[0];
        assert_eq!(s.severity, Severity::Medium);
        let s = &all(&fixture(
            "custodian-custom-action-third-party-other-lambda.json",
        ))[0];
        assert_eq!(s.severity, Severity::Low);
    }

    #[test]
    fn unknown_access_key_leaves_only_the_user() {
        let s = &all(&fixture(
            "custodian-custom-action-guardduty-iam-access-key.json",
        ))[0];
        assert_eq!(ids(s), [(ResourceKind::IamUser, "kapil")]);
        assert_eq!(s.control_id, None);
    }

    #[test]
    fn instance_arns_reduce_to_instance_ids_and_tags_are_kept() {
        let s = &all(&fixture("docs-guardduty-bare-asff-ec2-ssh-bruteforce.json"))[0];
        assert_eq!(ids(s), [(ResourceKind::Ec2Instance, "i-0c10c2c7863d1a356")]);
        assert_eq!(s.tag("Name"), Some("kubectl"));
        assert_eq!(s.count, 74);
        assert_eq!(s.severity, Severity::Medium);
        let s = &all(&fixture("asr-custom-action-cis-4.1-security-group.json"))[0];
        assert_eq!(
            ids(s),
            [(ResourceKind::SecurityGroup, "sg-02cfbecbc814a3c24")]
        );
        assert_eq!(s.control_id.as_deref(), Some("CIS 4.1"));
    }

    #[test]
    fn consolidated_control_id_and_masked_account_are_kept() {
        let s = &all(&fixture("cdk-eks-bare-asff-eks.1-eks-cluster.json"))[0];
        assert_eq!(s.control_id.as_deref(), Some("EKS.1"));
        assert_eq!(s.account.as_deref(), Some("XXXXXXXXXXX"));
        assert_eq!(s.kind, "security-control/EKS.1");
        assert_eq!(s.resources[0].kind, ResourceKind::EksCluster);
    }

    #[test]
    fn cross_account_finding_keeps_its_own_account_and_resource_tags() {
        let s = &all(&fixture(
            "custodian-custom-action-third-party-other-lambda.json",
        ))[0];
        assert_eq!(s.account.as_deref(), Some("644160558196"));
        assert_eq!(s.tag("ASV"), Some("ASVCLOUDCUSTODIAN"));
        assert_eq!(s.tags.len(), 3);
        assert_eq!(
            s.observed_at,
            parse_timestamp("2020-01-15T15:55:49.624441Z").expect("valid")
        );
    }

    #[test]
    fn get_findings_output_gives_one_signal_per_finding() {
        let one = fixture("docs-config-bare-asff-s3-bucket.json");
        let list = format!("{{\"Findings\": [{one}, {one}]}}");
        let signals = all(&list);
        assert_eq!(signals.len(), 2);
        assert_eq!(signals[0].dedupe_key, signals[1].dedupe_key);
        assert_eq!(
            ids(&signals[0]),
            [(
                ResourceKind::S3Bucket,
                "arn:aws:s3:::config-integration-demo-bucket"
            )]
        );
    }

    #[test]
    fn empty_or_missing_findings_are_refused() {
        for detail in [r#"{"findings": []}"#, r#"{"actionName": "x"}"#] {
            let event = format!(
                r#"{{"source":"aws.securityhub","detail-type":"Security Hub Findings - Imported","detail":{detail}}}"#
            );
            let err = parse(event.as_bytes(), received()).expect_err("refused");
            assert!(matches!(err, ParseError::Malformed { .. }), "{err}");
        }
    }

    #[test]
    fn bad_finding_among_several_is_named_by_position() {
        let event = r#"{"source":"aws.securityhub","detail-type":"Security Hub Findings - Imported",
            "detail":{"findings":[{"Id":"a","GeneratorId":"g"},{"Id":"b"}]}}"#;
        let err = parse(event.as_bytes(), received()).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "malformed Security Hub finding: finding 2 of 2: no \"GeneratorId\""
        );
    }
}
