//! EC2 actions: `ec2.snapshot`, `ec2.isolate` (and its rollback), `ec2.tag`, `ec2.stop`,
//! `ec2.reboot`.
//!
//! Everything Firebreak creates here is tagged `firebreak:managed=true` and
//! `firebreak:incident=<id>` (snapshots also `firebreak:action=<incident>/<step>`, which is how
//! a retry finds them), and every instance it changes gets `firebreak:incident=<id>`, so
//! triage can tell Firebreak's own changes from an attacker's and never open an incident on
//! them.
//!
//! Isolation swaps every network interface of the instance into one quarantine security group
//! per VPC: created on first use as `firebreak-quarantine`, tagged `firebreak:role=quarantine`,
//! its default egress rule revoked, and found again by name and tag afterwards. A group that
//! allows nothing in and nothing out cuts the instance off from new connections while it keeps
//! running, its memory and disks intact for the investigation. (Connections already tracked by
//! the old groups may live on until they close: that is how security groups work, and why the
//! snapshot step comes first.)

use aws_sdk_ec2::types::{
    AttributeBooleanValue, Filter, Instance, InstanceSpecification, IpPermission, ResourceType,
    SecurityGroup, Tag, TagSpecification,
};
use firebreak_shared::aws::AwsError;
use serde_json::{Value, json};

use super::{Ctx, Evidence, StepError};
use crate::budget::retry;
use crate::ids;

/// On everything Firebreak creates: triage ignores signals about it.
pub const MANAGED_TAG: &str = "firebreak:managed";
/// The incident that created or changed a resource.
pub const INCIDENT_TAG: &str = "firebreak:incident";
/// The step that created a resource: `<incident>/<record id>`.
pub const ACTION_TAG: &str = "firebreak:action";
/// What a created resource is for.
pub const ROLE_TAG: &str = "firebreak:role";
pub const QUARANTINE_ROLE: &str = "quarantine";
/// The quarantine group's name in every VPC.
pub const QUARANTINE_GROUP: &str = "firebreak-quarantine";

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// The instance, read fresh.
pub async fn describe(ctx: &Ctx<'_>, id: &str) -> Result<Instance, StepError> {
    ids::instance(id)?;
    let out = retry(ctx.budget, || async {
        ctx.clients
            .ec2
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ec2", "DescribeInstances", &e))
    })
    .await?;
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| i.instance_id() == Some(id))
        .cloned()
        .ok_or_else(|| StepError::Failed(format!("no instance {id}; it may be gone")))
}

fn groups_of(instance: &Instance) -> Vec<String> {
    instance
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id().map(str::to_owned))
        .collect()
}

/// Each attached interface but the primary one (device index 0), with its groups: the primary
/// interface's groups are the instance's, which `ModifyInstanceAttribute` changes.
fn secondary_interfaces(instance: &Instance) -> Vec<(String, Vec<String>)> {
    instance
        .network_interfaces()
        .iter()
        .filter(|n| {
            n.attachment()
                .and_then(|a| a.device_index())
                .is_some_and(|i| i != 0)
        })
        .filter_map(|n| {
            let id = n.network_interface_id()?.to_owned();
            let groups = n
                .groups()
                .iter()
                .filter_map(|g| g.group_id().map(str::to_owned))
                .collect();
            Some((id, groups))
        })
        .collect()
}

fn snapshots_evidence(snaps: &[(String, Option<String>, Option<String>)]) -> Value {
    Value::Array(
        snaps
            .iter()
            .map(|(s, v, st)| json!({"snapshot_id": s, "volume_id": v, "state": st}))
            .collect(),
    )
}

/// Snapshots the step already took, found by their `firebreak:action` tag.
pub async fn snapshots_of_step(
    ctx: &Ctx<'_>,
) -> Result<Vec<(String, Option<String>, Option<String>)>, StepError> {
    let action = ctx.action_tag();
    let out = retry(ctx.budget, || async {
        ctx.clients
            .ec2
            .describe_snapshots()
            .owner_ids("self")
            .filters(
                Filter::builder()
                    .name(format!("tag:{ACTION_TAG}"))
                    .values(&action)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ec2", "DescribeSnapshots", &e))
    })
    .await?;
    Ok(out
        .snapshots()
        .iter()
        .filter_map(|s| {
            Some((
                s.snapshot_id()?.to_owned(),
                s.volume_id().map(str::to_owned),
                s.state().map(|st| st.as_str().to_owned()),
            ))
        })
        .collect())
}

/// `ec2.snapshot`: crash-consistent snapshots of every attached EBS volume, in one
/// `CreateSnapshots` call, or the ones a previous attempt of this step already took.
pub async fn snapshot(ctx: &Ctx<'_>, id: &str, copy_tags: bool) -> Result<Evidence, StepError> {
    ids::instance(id)?;
    let existing = snapshots_of_step(ctx).await?;
    let mut ev = Evidence::new();
    if !existing.is_empty() {
        ev.insert("snapshots".into(), snapshots_evidence(&existing));
        ev.insert("reused".into(), json!(true));
        return Ok(ev);
    }
    let instance = describe(ctx, id).await?;
    let volumes: Vec<String> = instance
        .block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs().and_then(|e| e.volume_id()).map(str::to_owned))
        .collect();
    if volumes.is_empty() {
        return Err(StepError::Failed(format!(
            "instance {id} has no EBS volume to snapshot"
        )));
    }
    let mut tags = vec![
        tag(MANAGED_TAG, "true"),
        tag(INCIDENT_TAG, &ctx.incident.id),
        tag(ACTION_TAG, &ctx.action_tag()),
        tag("Name", &format!("firebreak evidence {id}")),
    ];
    if copy_tags {
        // EC2 allows 50 tags per resource; ours come first. `aws:` keys are reserved.
        for t in instance.tags() {
            let (Some(k), v) = (t.key(), t.value().unwrap_or("")) else {
                continue;
            };
            if k.starts_with("aws:") || k.starts_with("firebreak:") || k == "Name" {
                continue;
            }
            if tags.len() >= 50 {
                break;
            }
            tags.push(tag(k, v));
        }
    }
    let spec = TagSpecification::builder()
        .resource_type(ResourceType::Snapshot)
        .set_tags(Some(tags))
        .build();
    let description = format!("Firebreak {}: evidence from {id}", ctx.incident.id);
    let out = retry(ctx.budget, || async {
        ctx.clients
            .ec2
            .create_snapshots()
            .instance_specification(
                InstanceSpecification::builder()
                    .instance_id(id)
                    .exclude_boot_volume(false)
                    .build(),
            )
            .description(&description)
            .tag_specifications(spec.clone())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ec2", "CreateSnapshots", &e))
    })
    .await?;
    let taken: Vec<(String, Option<String>, Option<String>)> = out
        .snapshots()
        .iter()
        .filter_map(|s| {
            Some((
                s.snapshot_id()?.to_owned(),
                s.volume_id().map(str::to_owned),
                s.state().map(|st| st.as_str().to_owned()),
            ))
        })
        .collect();
    ev.insert("volumes".into(), json!(volumes));
    ev.insert("snapshots".into(), snapshots_evidence(&taken));
    ev.insert("reused".into(), json!(false));
    Ok(ev)
}

async fn find_quarantine(ctx: &Ctx<'_>, vpc: &str) -> Result<Option<SecurityGroup>, StepError> {
    let out = retry(ctx.budget, || async {
        ctx.clients
            .ec2
            .describe_security_groups()
            .filters(Filter::builder().name("vpc-id").values(vpc).build())
            .filters(
                Filter::builder()
                    .name("group-name")
                    .values(QUARANTINE_GROUP)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ec2", "DescribeSecurityGroups", &e))
    })
    .await?;
    let Some(group) = out.security_groups().first() else {
        return Ok(None);
    };
    let ours = group
        .tags()
        .iter()
        .any(|t| t.key() == Some(ROLE_TAG) && t.value() == Some(QUARANTINE_ROLE));
    if !ours {
        // Someone else's group by that name: using it would trust rules we did not write.
        return Err(StepError::Failed(format!(
            "VPC {vpc} has a security group named {QUARANTINE_GROUP} that Firebreak did not \
             create (no {ROLE_TAG}={QUARANTINE_ROLE} tag); rename it or tag it"
        )));
    }
    Ok(Some(group.clone()))
}

/// The VPC's quarantine group, created on first use, with every rule it may have revoked.
pub async fn quarantine_group(ctx: &Ctx<'_>, vpc: &str) -> Result<String, StepError> {
    ids::vpc(vpc)?;
    let group = match find_quarantine(ctx, vpc).await? {
        Some(g) => g,
        None => {
            let spec = TagSpecification::builder()
                .resource_type(ResourceType::SecurityGroup)
                .tags(tag(MANAGED_TAG, "true"))
                .tags(tag(ROLE_TAG, QUARANTINE_ROLE))
                .tags(tag(INCIDENT_TAG, &ctx.incident.id))
                .tags(tag("Name", QUARANTINE_GROUP))
                .build();
            let created = retry(ctx.budget, || async {
                match ctx
                    .clients
                    .ec2
                    .create_security_group()
                    .group_name(QUARANTINE_GROUP)
                    .description("Firebreak quarantine: allows no traffic in or out")
                    .vpc_id(vpc)
                    .tag_specifications(spec.clone())
                    .send()
                    .await
                {
                    Ok(out) => Ok(out.group_id().map(str::to_owned)),
                    Err(e) => {
                        let e = AwsError::from_sdk("ec2", "CreateSecurityGroup", &e);
                        // Another incident in the same VPC made it a moment ago.
                        if e.code_is("InvalidGroup.Duplicate") {
                            Ok(None)
                        } else {
                            Err(e)
                        }
                    }
                }
            })
            .await?;
            tracing::info!(vpc, group = ?created, "quarantine group created");
            find_quarantine(ctx, vpc).await?.ok_or_else(|| {
                StepError::Failed(format!(
                    "the quarantine group of {vpc} vanished after creation"
                ))
            })?
        }
    };
    let group_id = group
        .group_id()
        .ok_or_else(|| StepError::Failed("the quarantine group has no id".to_owned()))?
        .to_owned();
    ids::security_group(&group_id)?;
    revoke_all(
        ctx,
        &group_id,
        group.ip_permissions_egress(),
        group.ip_permissions(),
    )
    .await?;
    Ok(group_id)
}

/// Revokes every rule of the quarantine group: the default egress rule of a new group, and
/// anything someone added since.
async fn revoke_all(
    ctx: &Ctx<'_>,
    group: &str,
    egress: &[IpPermission],
    ingress: &[IpPermission],
) -> Result<(), StepError> {
    if !egress.is_empty() {
        retry(ctx.budget, || async {
            ctx.clients
                .ec2
                .revoke_security_group_egress()
                .group_id(group)
                .set_ip_permissions(Some(egress.to_vec()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| AwsError::from_sdk("ec2", "RevokeSecurityGroupEgress", &e))
        })
        .await?;
    }
    if !ingress.is_empty() {
        retry(ctx.budget, || async {
            ctx.clients
                .ec2
                .revoke_security_group_ingress()
                .group_id(group)
                .set_ip_permissions(Some(ingress.to_vec()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| AwsError::from_sdk("ec2", "RevokeSecurityGroupIngress", &e))
        })
        .await?;
    }
    Ok(())
}

async fn set_protection(ctx: &Ctx<'_>, id: &str) -> Result<(), StepError> {
    let on = AttributeBooleanValue::builder().value(true).build();
    retry(ctx.budget, || async {
        ctx.clients
            .ec2
            .modify_instance_attribute()
            .instance_id(id)
            .disable_api_termination(on.clone())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("ec2", "ModifyInstanceAttribute", &e))
    })
    .await?;
    retry(ctx.budget, || async {
        ctx.clients
            .ec2
            .modify_instance_attribute()
            .instance_id(id)
            .disable_api_stop(on.clone())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("ec2", "ModifyInstanceAttribute", &e))
    })
    .await?;
    Ok(())
}

/// Detaches the instance from its Auto Scaling group, if it is in one. The group's desired
/// capacity is kept, so it launches a replacement: the service keeps its capacity and the
/// group no longer terminates the instance under investigation for failing health checks.
async fn detach_from_asg(ctx: &Ctx<'_>, id: &str) -> Result<Value, StepError> {
    let out = retry(ctx.budget, || async {
        ctx.clients
            .autoscaling
            .describe_auto_scaling_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("autoscaling", "DescribeAutoScalingInstances", &e))
    })
    .await?;
    let Some(member) = out.auto_scaling_instances().first() else {
        return Ok(Value::Null);
    };
    let group = member.auto_scaling_group_name().unwrap_or("").to_owned();
    ids::auto_scaling_group(&group)?;
    let state = member.lifecycle_state().unwrap_or("");
    if state.starts_with("Detach") {
        return Ok(json!({"group": group, "state": state}));
    }
    retry(ctx.budget, || async {
        ctx.clients
            .autoscaling
            .detach_instances()
            .auto_scaling_group_name(&group)
            .instance_ids(id)
            .should_decrement_desired_capacity(false)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("autoscaling", "DetachInstances", &e))
    })
    .await?;
    Ok(json!({"group": group, "state": "Detaching"}))
}

async fn set_groups(
    ctx: &Ctx<'_>,
    id: &str,
    primary: &[String],
    interfaces: &[(String, Vec<String>)],
) -> Result<(), StepError> {
    for g in primary {
        ids::security_group(g)?;
    }
    retry(ctx.budget, || async {
        ctx.clients
            .ec2
            .modify_instance_attribute()
            .instance_id(id)
            .set_groups(Some(primary.to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("ec2", "ModifyInstanceAttribute", &e))
    })
    .await?;
    for (eni, groups) in interfaces {
        ids::network_interface(eni)?;
        for g in groups {
            ids::security_group(g)?;
        }
        retry(ctx.budget, || async {
            ctx.clients
                .ec2
                .modify_network_interface_attribute()
                .network_interface_id(eni)
                .set_groups(Some(groups.clone()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| AwsError::from_sdk("ec2", "ModifyNetworkInterfaceAttribute", &e))
        })
        .await?;
    }
    Ok(())
}

async fn tag_instance(ctx: &Ctx<'_>, id: &str, tags: Vec<Tag>) -> Result<(), StepError> {
    retry(ctx.budget, || async {
        ctx.clients
            .ec2
            .create_tags()
            .resources(id)
            .set_tags(Some(tags.clone()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("ec2", "CreateTags", &e))
    })
    .await?;
    Ok(())
}

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    v?.as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_owned))
        .collect()
}

fn interfaces_from(v: Option<&Value>) -> Option<Vec<(String, Vec<String>)>> {
    v?.as_array()?
        .iter()
        .map(|i| Some((i["id"].as_str()?.to_owned(), strings(i.get("groups"))?)))
        .collect()
}

/// `ec2.isolate`: records the groups, then detaches, protects, quarantines and tags.
pub async fn isolate(
    ctx: &Ctx<'_>,
    id: &str,
    detach: bool,
    protect: bool,
) -> Result<Evidence, StepError> {
    let instance = describe(ctx, id).await?;
    let vpc = instance
        .vpc_id()
        .ok_or_else(|| StepError::Failed(format!("instance {id} is in no VPC")))?
        .to_owned();
    // The groups to restore on rollback are recorded before anything changes. A resumed step
    // keeps what it recorded: by now the instance may already sit in the quarantine group.
    let recorded = strings(ctx.evidence.get("previous_groups"))
        .zip(interfaces_from(ctx.evidence.get("previous_interfaces")));
    let (previous, interfaces) = match recorded {
        Some(r) => r,
        None => {
            let previous = groups_of(&instance);
            let interfaces = secondary_interfaces(&instance);
            ctx.checkpoint
                .save("previous_groups", json!(previous))
                .await?;
            ctx.checkpoint
                .save(
                    "previous_interfaces",
                    Value::Array(
                        interfaces
                            .iter()
                            .map(|(id, g)| json!({"id": id, "groups": g}))
                            .collect(),
                    ),
                )
                .await?;
            (previous, interfaces)
        }
    };
    let mut ev = Evidence::new();
    ev.insert("vpc_id".into(), json!(vpc));
    // Out of the group first: once the groups change, its health checks fail and the group
    // would terminate the evidence.
    if detach {
        ev.insert("auto_scaling_group".into(), detach_from_asg(ctx, id).await?);
    }
    if protect {
        set_protection(ctx, id).await?;
        ev.insert(
            "protection".into(),
            json!({"disable_api_termination": true, "disable_api_stop": true}),
        );
    }
    let quarantine = quarantine_group(ctx, &vpc).await?;
    if previous == [quarantine.clone()] {
        ev.insert("already_isolated".into(), json!(true));
    }
    let to_quarantine: Vec<(String, Vec<String>)> = interfaces
        .iter()
        .map(|(eni, _)| (eni.clone(), vec![quarantine.clone()]))
        .collect();
    set_groups(ctx, id, std::slice::from_ref(&quarantine), &to_quarantine).await?;
    tag_instance(ctx, id, vec![tag(INCIDENT_TAG, &ctx.incident.id)]).await?;
    ev.insert("quarantine_group".into(), json!(quarantine));
    Ok(ev)
}

/// Puts back the groups an isolation recorded. `evidence` is the isolation's.
pub async fn restore(ctx: &Ctx<'_>, id: &str, evidence: &Value) -> Result<Evidence, StepError> {
    let previous = strings(evidence.get("previous_groups")).ok_or_else(|| {
        StepError::Failed(format!("the isolation of {id} recorded no previous groups"))
    })?;
    let interfaces = interfaces_from(evidence.get("previous_interfaces")).unwrap_or_default();
    let quarantine = evidence.get("quarantine_group").and_then(Value::as_str);
    if previous.is_empty() || quarantine.is_some_and(|q| previous == [q.to_owned()]) {
        return Err(StepError::Failed(format!(
            "{id} was already in quarantine when this incident isolated it; there are no \
             earlier groups to restore"
        )));
    }
    describe(ctx, id).await?;
    set_groups(ctx, id, &previous, &interfaces).await?;
    let mut ev = Evidence::new();
    ev.insert("restored_groups".into(), json!(previous));
    ev.insert("from_group".into(), json!(quarantine));
    Ok(ev)
}

/// `ec2.tag`: the playbook's tags, plus `firebreak:incident`.
pub async fn add_tags(
    ctx: &Ctx<'_>,
    id: &str,
    tags: &std::collections::BTreeMap<String, String>,
) -> Result<Evidence, StepError> {
    ids::instance(id)?;
    let mut all = Vec::with_capacity(tags.len() + 1);
    for (k, v) in tags {
        if k.is_empty()
            || k.len() > 128
            || v.len() > 256
            || k.to_ascii_lowercase().starts_with("aws:")
        {
            return Err(StepError::Failed(format!(
                "tag `{k}` cannot be set: keys are 1-128 characters, values at most 256, and \
                 `aws:` keys are reserved"
            )));
        }
        all.push(tag(k, v));
    }
    all.push(tag(INCIDENT_TAG, &ctx.incident.id));
    tag_instance(ctx, id, all).await?;
    let mut ev = Evidence::new();
    ev.insert("tags".into(), json!(tags));
    Ok(ev)
}

fn state_of(instance: &Instance) -> Option<String> {
    instance
        .state()
        .and_then(|s| s.name())
        .map(|n| n.as_str().to_owned())
}

/// `ec2.stop`.
pub async fn stop(ctx: &Ctx<'_>, id: &str) -> Result<Evidence, StepError> {
    ids::instance(id)?;
    let out = retry(ctx.budget, || async {
        ctx.clients
            .ec2
            .stop_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ec2", "StopInstances", &e))
    })
    .await?;
    let change = out.stopping_instances().first();
    let mut ev = Evidence::new();
    ev.insert(
        "previous_state".into(),
        json!(
            change
                .and_then(|c| c.previous_state())
                .and_then(|s| s.name())
                .map(|n| n.as_str())
        ),
    );
    ev.insert(
        "current_state".into(),
        json!(
            change
                .and_then(|c| c.current_state())
                .and_then(|s| s.name())
                .map(|n| n.as_str())
        ),
    );
    Ok(ev)
}

/// `ec2.reboot`.
pub async fn reboot(ctx: &Ctx<'_>, id: &str) -> Result<Evidence, StepError> {
    ids::instance(id)?;
    retry(ctx.budget, || async {
        ctx.clients
            .ec2
            .reboot_instances()
            .instance_ids(id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("ec2", "RebootInstances", &e))
    })
    .await?;
    Ok(Evidence::new())
}

/// What verification needs to know about an instance.
pub struct Observed {
    pub groups: Vec<String>,
    pub interface_groups: Vec<(String, Vec<String>)>,
    pub state: Option<String>,
    pub tags: Vec<(String, String)>,
}

pub async fn observe(ctx: &Ctx<'_>, id: &str) -> Result<Observed, StepError> {
    let instance = describe(ctx, id).await?;
    Ok(Observed {
        groups: groups_of(&instance),
        interface_groups: secondary_interfaces(&instance),
        state: state_of(&instance),
        tags: instance
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned())))
            .collect(),
    })
}

/// The rules a security group still has, in and out.
pub async fn rule_counts(ctx: &Ctx<'_>, group: &str) -> Result<(usize, usize), StepError> {
    ids::security_group(group)?;
    let out = retry(ctx.budget, || async {
        ctx.clients
            .ec2
            .describe_security_groups()
            .group_ids(group)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ec2", "DescribeSecurityGroups", &e))
    })
    .await?;
    let g = out
        .security_groups()
        .first()
        .ok_or_else(|| StepError::Failed(format!("security group {group} is gone")))?;
    Ok((g.ip_permissions().len(), g.ip_permissions_egress().len()))
}
