//! GuardDuty findings as signals.
//!
//! A finding arrives as the EventBridge `detail` (camelCase), bare in that shape, or as the
//! GuardDuty API and CLI return it (PascalCase); serde aliases read both with one set of structs.
//! Only the fields a signal needs are named: findings are large and mostly evidence that stays in
//! `raw`, and fields whose type varies between samples (`asn` is a string or a number) are
//! skipped unread.

use serde::Deserialize;

use super::envelope::{
    Ctx, Envelope, Loose, Number, ResourceList, TagList, TagMap, split_arn, str_of, title,
};
use super::{Action, ParseError, ResourceKind, Severity, Signal, Source};

/// What a refusal calls a GuardDuty payload.
pub(super) const WHAT: &str = "GuardDuty finding";

/// One finding, in the EventBridge `detail` shape or the API's PascalCase shape.
#[derive(Deserialize)]
pub(super) struct Finding<'a> {
    #[serde(alias = "Id", borrow)]
    id: Option<Loose<'a>>,
    #[serde(rename = "type", alias = "Type", borrow)]
    kind: Option<Loose<'a>>,
    #[serde(alias = "Title", borrow)]
    title: Option<Loose<'a>>,
    #[serde(alias = "Severity")]
    severity: Option<Number>,
    #[serde(alias = "Arn", borrow)]
    arn: Option<Loose<'a>>,
    #[serde(rename = "accountId", alias = "AccountId", borrow)]
    account_id: Option<Loose<'a>>,
    #[serde(alias = "Region", borrow)]
    region: Option<Loose<'a>>,
    #[serde(rename = "createdAt", alias = "CreatedAt", borrow)]
    created_at: Option<Loose<'a>>,
    #[serde(rename = "updatedAt", alias = "UpdatedAt", borrow)]
    updated_at: Option<Loose<'a>>,
    #[serde(alias = "Resource", borrow)]
    resource: Option<FindingResource<'a>>,
    #[serde(alias = "Service", borrow)]
    service: Option<Service<'a>>,
}

#[derive(Deserialize)]
struct Service<'a> {
    #[serde(alias = "Count")]
    count: Option<Number>,
    #[serde(alias = "Archived", borrow)]
    archived: Option<Loose<'a>>,
}

#[derive(Deserialize)]
struct FindingResource<'a> {
    #[serde(rename = "resourceType", alias = "ResourceType", borrow)]
    resource_type: Option<Loose<'a>>,
    #[serde(rename = "instanceDetails", alias = "InstanceDetails", borrow)]
    instance: Option<InstanceDetails<'a>>,
    #[serde(rename = "accessKeyDetails", alias = "AccessKeyDetails", borrow)]
    access_key: Option<AccessKeyDetails<'a>>,
    #[serde(rename = "s3BucketDetails", alias = "S3BucketDetails", borrow)]
    buckets: Option<Vec<Named<'a>>>,
    #[serde(rename = "eksClusterDetails", alias = "EksClusterDetails", borrow)]
    eks_cluster: Option<Named<'a>>,
    #[serde(rename = "ecsClusterDetails", alias = "EcsClusterDetails", borrow)]
    ecs_cluster: Option<Named<'a>>,
    #[serde(rename = "lambdaDetails", alias = "LambdaDetails", borrow)]
    lambda: Option<LambdaDetails<'a>>,
    #[serde(
        rename = "rdsDbInstanceDetails",
        alias = "RdsDbInstanceDetails",
        borrow
    )]
    rds_instance: Option<RdsInstanceDetails<'a>>,
    #[serde(rename = "containerDetails", alias = "ContainerDetails", borrow)]
    container: Option<ContainerDetails<'a>>,
}

#[derive(Deserialize)]
struct InstanceDetails<'a> {
    #[serde(rename = "instanceId", alias = "InstanceId", borrow)]
    instance_id: Option<Loose<'a>>,
    #[serde(alias = "Tags", borrow)]
    tags: Option<TagMap<'a>>,
}

#[derive(Deserialize)]
struct AccessKeyDetails<'a> {
    #[serde(rename = "accessKeyId", alias = "AccessKeyId", borrow)]
    access_key_id: Option<Loose<'a>>,
    #[serde(rename = "userName", alias = "UserName", borrow)]
    user_name: Option<Loose<'a>>,
}

/// The `arn` + `name` pair S3 buckets and EKS/ECS clusters share.
#[derive(Deserialize)]
struct Named<'a> {
    #[serde(alias = "Arn", borrow)]
    arn: Option<Loose<'a>>,
    #[serde(alias = "Name", borrow)]
    name: Option<Loose<'a>>,
    #[serde(alias = "Tags", borrow)]
    tags: Option<TagMap<'a>>,
}

#[derive(Deserialize)]
struct LambdaDetails<'a> {
    #[serde(rename = "functionArn", alias = "FunctionArn", borrow)]
    function_arn: Option<Loose<'a>>,
    #[serde(rename = "functionName", alias = "FunctionName", borrow)]
    function_name: Option<Loose<'a>>,
    #[serde(alias = "Tags", borrow)]
    tags: Option<TagMap<'a>>,
}

#[derive(Deserialize)]
struct RdsInstanceDetails<'a> {
    #[serde(rename = "dbInstanceArn", alias = "DbInstanceArn", borrow)]
    db_instance_arn: Option<Loose<'a>>,
    #[serde(
        rename = "dbInstanceIdentifier",
        alias = "DbInstanceIdentifier",
        borrow
    )]
    db_instance_identifier: Option<Loose<'a>>,
    #[serde(alias = "Tags", borrow)]
    tags: Option<TagMap<'a>>,
}

#[derive(Deserialize)]
struct ContainerDetails<'a> {
    #[serde(alias = "Id", borrow)]
    id: Option<Loose<'a>>,
    #[serde(alias = "Name", borrow)]
    name: Option<Loose<'a>>,
}

/// One GuardDuty finding, bare or as an EventBridge `detail`.
pub(super) fn from_finding(
    f: &Finding<'_>,
    env: &Envelope<'_>,
    ctx: &Ctx,
) -> Result<Vec<Signal>, ParseError> {
    let id = str_of(&f.id)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ParseError::malformed(WHAT, "no \"id\""))?;
    let kind = str_of(&f.kind)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ParseError::malformed(WHAT, "no \"type\""))?;

    let service = f.service.as_ref();
    // An archived finding was dismissed by someone (or a suppression rule); Security Hub shows
    // the same finding as RecordState ARCHIVED, which resolves. Read both the same way.
    let archived = service
        .and_then(|s| str_of(&s.archived))
        .is_some_and(|a| a.trim().eq_ignore_ascii_case("true"));
    let count = service
        .and_then(|s| Number::get(&s.count))
        .filter(|c| *c >= 1.0)
        .map_or(1, |c| c as u64);

    let mut resources = ResourceList::default();
    let mut tags = TagList::default();
    if let Some(resource) = &f.resource {
        collect_resources(resource, &mut resources, &mut tags);
    }

    let arn_account = str_of(&f.arn)
        .and_then(split_arn)
        .map(|a| a.account)
        .filter(|a| !a.is_empty());
    let account = str_of(&f.account_id)
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .or(env.account)
        .or(arn_account);
    let region = str_of(&f.region)
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .or(env.region);

    Ok(vec![Signal {
        source: Source::Guardduty,
        action: if archived {
            Action::Resolve
        } else {
            Action::Open
        },
        // GuardDuty always scores its findings; one without a score is treated as medium rather
        // than guessed down to info.
        severity: Number::get(&f.severity).map_or(Severity::Medium, Severity::from_guardduty_score),
        title: title(
            str_of(&f.title)
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .unwrap_or(kind),
        ),
        kind: kind.to_owned(),
        control_id: None,
        alarm_name: None,
        alarm_state: None,
        resources: resources.into_vec(),
        tags: tags.into_vec(),
        account: account.map(str::to_owned),
        region: region.map(str::to_owned),
        observed_at: env.observed_at(&[str_of(&f.updated_at), str_of(&f.created_at)], ctx),
        count,
        dedupe_key: format!("guardduty:{id}"),
        raw: ctx.raw(),
    }])
}

/// The affected resource, by the resource type GuardDuty reports. Sample findings fill details
/// of other types too (an AccessKey finding with `instanceDetails`), so only the declared type's
/// details count; an unknown type takes whatever details are present.
fn collect_resources(r: &FindingResource<'_>, out: &mut ResourceList, tags: &mut TagList) {
    let declared = str_of(&r.resource_type).map(str::trim).unwrap_or("");
    let known = matches!(
        declared,
        "Instance"
            | "AccessKey"
            | "S3Bucket"
            | "S3Object"
            | "EKSCluster"
            | "ECSCluster"
            | "Lambda"
            | "RDSDBInstance"
            | "Container"
    );
    let wants = |t: &[&str]| !known || t.contains(&declared);

    if wants(&["Instance"])
        && let Some(i) = &r.instance
    {
        push_one(str_of(&i.instance_id), ResourceKind::Ec2Instance, out);
        tags.extend_from(i.tags.as_ref());
    }
    if wants(&["AccessKey"])
        && let Some(k) = &r.access_key
    {
        push_one(str_of(&k.access_key_id), ResourceKind::AccessKey, out);
        push_one(str_of(&k.user_name), ResourceKind::IamUser, out);
    }
    if wants(&["S3Bucket", "S3Object"]) {
        for bucket in r.buckets.iter().flatten() {
            let arn = str_of(&bucket.arn).map(str::trim).filter(|a| !a.is_empty());
            let name = str_of(&bucket.name)
                .map(str::trim)
                .filter(|n| !n.is_empty());
            match (arn, name) {
                (Some(arn), _) => out.push(ResourceKind::S3Bucket, arn),
                (None, Some(name)) => {
                    out.push(ResourceKind::S3Bucket, &format!("arn:aws:s3:::{name}"));
                }
                (None, None) => {}
            }
            tags.extend_from(bucket.tags.as_ref());
        }
    }
    if wants(&["EKSCluster"]) {
        push_named(r.eks_cluster.as_ref(), ResourceKind::EksCluster, out, tags);
    }
    if wants(&["ECSCluster"]) {
        push_named(r.ecs_cluster.as_ref(), ResourceKind::Other, out, tags);
    }
    if wants(&["Lambda"])
        && let Some(l) = &r.lambda
    {
        let id = str_of(&l.function_arn).or(str_of(&l.function_name));
        push_one(id, ResourceKind::LambdaFunction, out);
        tags.extend_from(l.tags.as_ref());
    }
    if wants(&["RDSDBInstance"])
        && let Some(d) = &r.rds_instance
    {
        let id = str_of(&d.db_instance_arn).or(str_of(&d.db_instance_identifier));
        push_one(id, ResourceKind::RdsInstance, out);
        tags.extend_from(d.tags.as_ref());
    }
    if wants(&["Container"])
        && let Some(c) = &r.container
    {
        push_one(str_of(&c.id).or(str_of(&c.name)), ResourceKind::Other, out);
    }
}

fn push_one(id: Option<&str>, kind: ResourceKind, out: &mut ResourceList) {
    if let Some(id) = id {
        out.push(kind, id);
    }
}

fn push_named(
    named: Option<&Named<'_>>,
    kind: ResourceKind,
    out: &mut ResourceList,
    tags: &mut TagList,
) {
    let Some(n) = named else { return };
    let arn = str_of(&n.arn).filter(|a| !a.trim().is_empty());
    push_one(arn.or(str_of(&n.name)), kind, out);
    tags.extend_from(n.tags.as_ref());
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::signal::testing::{self, one, received};
    use crate::signal::{parse, parse_timestamp};

    fn fixture(name: &str) -> String {
        testing::fixture(&format!("guardduty/{name}"))
    }

    fn ids(s: &Signal) -> Vec<(ResourceKind, &str)> {
        s.resources
            .iter()
            .map(|r| (r.kind, r.id.as_str()))
            .collect()
    }

    #[test]
    fn eventbridge_finding_uses_the_finding_account_not_the_envelope() {
        let s = one(&fixture(
            "custodian-eventbridge-backdoor-ec2-cc-activity-b-dns.json",
        ));
        assert_eq!(s.source, Source::Guardduty);
        assert_eq!(s.action, Action::Open);
        assert_eq!(s.severity, Severity::Medium);
        assert_eq!(s.kind, "Backdoor:EC2/C&CActivity.B!DNS");
        assert_eq!(s.dedupe_key, "guardduty:b4b01b60fc24a199139f8f5f490edd81");
        assert_eq!(s.account.as_deref(), Some("883606788610"));
        assert_eq!(ids(&s), [(ResourceKind::Ec2Instance, "i-99999999")]);
        assert_eq!(
            s.observed_at,
            parse_timestamp("2017-12-08T15:32:49.865Z").expect("valid")
        );
    }

    #[test]
    fn access_key_finding_names_the_key_and_its_user() {
        let s = one(&fixture("custodian-eventbridge-iamuser-tor-ipcaller.json"));
        assert_eq!(
            ids(&s),
            [
                (ResourceKind::AccessKey, "GeneratedFindingAccessKeyId"),
                (ResourceKind::IamUser, "GeneratedFindingUserName")
            ]
        );
    }

    #[test]
    fn instance_tags_are_reported_in_order() {
        let s = one(&fixture("detail-only-ec2-canary-integtest.json"));
        assert_eq!(s.tag("Name"), Some("ssh-22-open"));
        assert_eq!(
            ids(&s),
            [(ResourceKind::Ec2Instance, "i-05746eb48123455e0")]
        );
        let s = one(&fixture("waf-acl-partial-envelope-ec2-ssh-bruteforce.json"));
        assert_eq!(s.tags.len(), 9);
        assert_eq!(s.tags[0].key, "GeneratedFindingInstaceTag1");
    }

    #[test]
    fn partial_envelope_takes_region_from_the_envelope_and_severity_two_is_low() {
        let s = one(&fixture("waf-acl-partial-envelope-ec2-ssh-bruteforce.json"));
        assert_eq!(s.severity, Severity::Low);
        assert_eq!(s.region.as_deref(), Some("us-east-1"));
        assert_eq!(s.account, None);
        assert_eq!(
            s.title,
            "198.51.100.0 is performing SSH brute force attacks against i-99999999."
        );
    }

    #[test]
    fn archived_finding_resolves() {
        let s = one(&fixture("detail-only-s3-pentest-parrotlinux.json"));
        assert_eq!(s.action, Action::Resolve);
        assert_eq!(
            ids(&s),
            [(ResourceKind::S3Bucket, "arn:aws:s3:::bucketName")]
        );
        assert_eq!(s.tag("foo"), Some("bar"));
    }

    #[test]
    fn api_pascal_case_finding_reads_like_the_event_shape() {
        let s = one(&fixture(
            "api-pascalcase-eks-privilegeescalation-privilegedcontainer.json",
        ));
        assert_eq!(s.kind, "PrivilegeEscalation:Kubernetes/PrivilegedContainer");
        assert_eq!(s.dedupe_key, "guardduty:f2c3859c6ca25b3057d13470a992bbd7");
        assert_eq!(s.account.as_deref(), Some("123456789012"));
        assert_eq!(
            ids(&s),
            [(
                ResourceKind::EksCluster,
                "arn:aws:eks:us-east-1:123456789012:cluster/guardduty-blueprint"
            )]
        );
        assert_eq!(s.count, 1);
    }

    #[test]
    fn float_severity_and_count_are_read_and_bucket_names_become_arns() {
        let json = r#"{"schemaVersion":"2.0","id":"x1","type":"Policy:S3/BucketBlockPublicAccessDisabled",
            "severity":8.5,"service":{"count":"12","archived":false},
            "resource":{"resourceType":"S3Bucket","s3BucketDetails":[{"name":" logs "}]}}"#;
        let s = one(json);
        assert_eq!(s.severity, Severity::High);
        assert_eq!(s.count, 12);
        assert_eq!(s.title, "Policy:S3/BucketBlockPublicAccessDisabled");
        assert_eq!(ids(&s), [(ResourceKind::S3Bucket, "arn:aws:s3:::logs")]);
        assert_eq!(s.observed_at, received());
    }

    #[test]
    fn finding_without_id_is_malformed() {
        let json = r#"{"schemaVersion":"2.0","type":"Recon:EC2/Portscan","service":{}}"#;
        let err = parse(json.as_bytes(), received()).expect_err("refused");
        assert_eq!(err.to_string(), "malformed GuardDuty finding: no \"id\"");
    }
}
