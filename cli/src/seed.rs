//! A sandbox account's resources: instances with their VPC, subnet, security group and
//! volumes, created in the local AWS so remediation has something real to act on.
//!
//! `firebreak demo` seeds its hosts here, and `simulate` creates a stand-in for every instance a
//! real event names (the event's ids are then mapped to the stand-in's).

use aws_sdk_ec2::types::{Filter, InstanceType, ResourceType, Tag, TagSpecification};

use firebreak_shared::aws::AwsError;

/// A seeded instance: what remediation may change and what a test or the demo reads back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub id: String,
    pub vpc: String,
    pub subnet: String,
    /// The security group it starts in.
    pub group: String,
    /// Its EBS volumes, root first.
    pub volumes: Vec<String>,
}

/// What to seed: a name, tags (`firebreak:protected` among them if it must never be touched)
/// and how many data volumes beside the root one.
#[derive(Debug, Clone, Default)]
pub struct HostSpec {
    pub name: String,
    pub tags: Vec<(String, String)>,
    pub data_volumes: u8,
}

fn aws<E>(op: &'static str) -> impl FnOnce(aws_sdk_ec2::error::SdkError<E>) -> AwsError
where
    E: std::error::Error + aws_sdk_ec2::error::ProvideErrorMetadata + Send + Sync + 'static,
{
    move |e| AwsError::from_sdk("ec2", op, &e)
}

/// Creates `spec`'s instance in its own VPC, subnet and security group, with a root volume and
/// `spec.data_volumes` more attached.
pub async fn host(ec2: &aws_sdk_ec2::Client, spec: &HostSpec) -> Result<Host, AwsError> {
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.60.0.0/16")
        .send()
        .await
        .map_err(aws("CreateVpc"))?;
    let vpc = vpc
        .vpc()
        .and_then(|v| v.vpc_id())
        .unwrap_or_default()
        .to_owned();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.60.1.0/24")
        .send()
        .await
        .map_err(aws("CreateSubnet"))?;
    let subnet = subnet
        .subnet()
        .and_then(|s| s.subnet_id())
        .unwrap_or_default()
        .to_owned();
    let group = ec2
        .create_security_group()
        .group_name(format!("{}-{vpc}", spec.name))
        .description(format!("{} tier", spec.name))
        .vpc_id(&vpc)
        .send()
        .await
        .map_err(aws("CreateSecurityGroup"))?;
    let group = group.group_id().unwrap_or_default().to_owned();
    let mut tags = TagSpecification::builder()
        .resource_type(ResourceType::Instance)
        .tags(Tag::builder().key("Name").value(&spec.name).build());
    for (k, v) in &spec.tags {
        if k != "Name" {
            tags = tags.tags(Tag::builder().key(k).value(v).build());
        }
    }
    let run = ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .subnet_id(&subnet)
        .security_group_ids(&group)
        .tag_specifications(tags.build())
        .send()
        .await
        .map_err(aws("RunInstances"))?;
    let first = run.instances().first();
    let id = first
        .and_then(|i| i.instance_id())
        .unwrap_or_default()
        .to_owned();
    let zone = first
        .and_then(|i| i.placement())
        .and_then(|p| p.availability_zone())
        .unwrap_or("us-east-1a")
        .to_owned();
    for n in 0..spec.data_volumes {
        let data = ec2
            .create_volume()
            .availability_zone(&zone)
            .size(8)
            .send()
            .await
            .map_err(aws("CreateVolume"))?;
        ec2.attach_volume()
            .device(format!("/dev/sd{}", char::from(b'f' + n)))
            .instance_id(&id)
            .volume_id(data.volume_id().unwrap_or_default())
            .send()
            .await
            .map_err(aws("AttachVolume"))?;
    }
    let volumes = volumes_of(ec2, &id).await?;
    Ok(Host {
        id,
        vpc,
        subnet,
        group,
        volumes,
    })
}

/// The EBS volumes attached to `instance`.
pub async fn volumes_of(
    ec2: &aws_sdk_ec2::Client,
    instance: &str,
) -> Result<Vec<String>, AwsError> {
    let described = ec2
        .describe_instances()
        .instance_ids(instance)
        .send()
        .await
        .map_err(aws("DescribeInstances"))?;
    Ok(described
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .flat_map(|i| i.block_device_mappings())
        .filter_map(|m| m.ebs().and_then(|e| e.volume_id()).map(str::to_owned))
        .collect())
}

/// The security groups `instance` is in now.
pub async fn groups_of(ec2: &aws_sdk_ec2::Client, instance: &str) -> Result<Vec<String>, AwsError> {
    let out = ec2
        .describe_instances()
        .instance_ids(instance)
        .send()
        .await
        .map_err(aws("DescribeInstances"))?;
    Ok(out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .flat_map(|i| i.security_groups())
        .filter_map(|g| g.group_id().map(str::to_owned))
        .collect())
}

/// The tags on `instance` now, as (key, value).
pub async fn tags_of(
    ec2: &aws_sdk_ec2::Client,
    instance: &str,
) -> Result<Vec<(String, String)>, AwsError> {
    let out = ec2
        .describe_instances()
        .instance_ids(instance)
        .send()
        .await
        .map_err(aws("DescribeInstances"))?;
    Ok(out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .flat_map(|i| i.tags())
        .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
        .collect())
}

/// The snapshots Firebreak took of `volumes` for `incident` (by their `firebreak:incident`
/// tag).
pub async fn snapshots_for(
    ec2: &aws_sdk_ec2::Client,
    incident: &str,
    volumes: &[String],
) -> Result<Vec<String>, AwsError> {
    let out = ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(
            Filter::builder()
                .name("tag:firebreak:incident")
                .values(incident)
                .build(),
        )
        .send()
        .await
        .map_err(aws("DescribeSnapshots"))?;
    Ok(out
        .snapshots()
        .iter()
        .filter(|s| {
            s.volume_id()
                .is_some_and(|v| volumes.iter().any(|w| w == v))
        })
        .filter_map(|s| s.snapshot_id().map(str::to_owned))
        .collect())
}
