//! `ec2.instance`: who owns the instance and where it sits: tags (with the owner and team
//! picked out), VPC, subnet, security groups, instance profile, volumes, state and type.

use std::collections::BTreeMap;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::Instance;
use firebreak_shared::aws::AwsError;
use serde_json::{Value, json};

use super::{Failure, Found, iso};

/// Tag keys that name a person responsible, best first, compared by [`normalize`]d form.
pub const OWNER_KEYS: &[&str] = &[
    "owner",
    "owneremail",
    "contact",
    "maintainer",
    "createdby",
    "creator",
];
/// Tag keys that name a team, best first, compared by [`normalize`]d form.
pub const TEAM_KEYS: &[&str] = &["team", "teamname", "owningteam", "squad", "department"];

/// `ec2.instance` for one instance id.
pub async fn instance(client: &Client, id: &str) -> Found {
    let out = client
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ec2", "DescribeInstances", &e))?;
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| i.instance_id() == Some(id))
        .map(describe)
        .ok_or_else(|| {
            Failure::message(format!(
                "DescribeInstances returned no instance {id}; it may be gone"
            ))
        })
}

pub fn describe(i: &Instance) -> Value {
    let tags: BTreeMap<&str, &str> = i
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?, t.value().unwrap_or(""))))
        .collect();
    let security_groups: Vec<Value> = i
        .security_groups()
        .iter()
        .map(|g| json!({"id": g.group_id(), "name": g.group_name()}))
        .collect();
    let volumes: Vec<Value> = i
        .block_device_mappings()
        .iter()
        .map(|m| {
            let ebs = m.ebs();
            json!({
                "device": m.device_name(),
                "volume_id": ebs.and_then(|e| e.volume_id()),
                "delete_on_termination": ebs.and_then(|e| e.delete_on_termination()),
            })
        })
        .collect();
    json!({
        "instance_id": i.instance_id(),
        "state": i.state().and_then(|s| s.name()).map(|n| n.as_str()),
        "instance_type": i.instance_type().map(|t| t.as_str()),
        "image_id": i.image_id(),
        "launch_time": i.launch_time().and_then(iso),
        "availability_zone": i.placement().and_then(|p| p.availability_zone()),
        "private_ip": i.private_ip_address(),
        "public_ip": i.public_ip_address(),
        "vpc_id": i.vpc_id(),
        "subnet_id": i.subnet_id(),
        "security_groups": security_groups,
        "instance_profile_arn": i.iam_instance_profile().and_then(|p| p.arn()),
        "volumes": volumes,
        "owner": pick(&tags, OWNER_KEYS),
        "team": pick(&tags, TEAM_KEYS),
        "tags": tags,
    })
}

/// The value of the best tag among `keys`: teams write `Owner`, `owner`, `owner-email`,
/// `acme:owner` alike.
pub fn pick<'a>(tags: &BTreeMap<&str, &'a str>, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|want| {
        tags.iter()
            .find(|(k, v)| normalize(k) == *want && !v.trim().is_empty())
            .map(|(_, v)| *v)
    })
}

/// A tag key reduced for comparison: its last `:`- or `/`-separated segment, lower case,
/// without `-`, `_`, `.` or spaces.
pub fn normalize(key: &str) -> String {
    key.rsplit([':', '/'])
        .next()
        .unwrap_or(key)
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::{
        EbsInstanceBlockDevice, GroupIdentifier, IamInstanceProfile, InstanceBlockDeviceMapping,
        InstanceState, InstanceStateName, InstanceType, Tag,
    };

    #[test]
    fn owner_and_team_tags_match_whatever_their_case_and_prefix() {
        let tags = BTreeMap::from([
            ("acme:Owner-Email", "ops@example.com"),
            ("Team", "payments"),
            ("Name", "web-1"),
        ]);
        assert_eq!(pick(&tags, OWNER_KEYS), Some("ops@example.com"));
        assert_eq!(pick(&tags, TEAM_KEYS), Some("payments"));
        let none = BTreeMap::from([("Name", "web-1"), ("owner", " ")]);
        assert_eq!(pick(&none, OWNER_KEYS), None);
    }

    #[test]
    fn an_owner_tag_beats_a_contact_tag() {
        let tags = BTreeMap::from([("Contact", "alice"), ("owner", "bob")]);
        assert_eq!(pick(&tags, OWNER_KEYS), Some("bob"));
    }

    #[test]
    fn instance_context_has_network_profile_and_volumes() {
        let i = Instance::builder()
            .instance_id("i-0abc")
            .instance_type(InstanceType::T3Micro)
            .state(
                InstanceState::builder()
                    .name(InstanceStateName::Running)
                    .build(),
            )
            .vpc_id("vpc-1")
            .subnet_id("subnet-1")
            .private_ip_address("10.0.0.5")
            .security_groups(
                GroupIdentifier::builder()
                    .group_id("sg-1")
                    .group_name("web")
                    .build(),
            )
            .iam_instance_profile(
                IamInstanceProfile::builder()
                    .arn("arn:aws:iam::123456789012:instance-profile/web")
                    .build(),
            )
            .block_device_mappings(
                InstanceBlockDeviceMapping::builder()
                    .device_name("/dev/xvda")
                    .ebs(EbsInstanceBlockDevice::builder().volume_id("vol-1").build())
                    .build(),
            )
            .tags(Tag::builder().key("Owner").value("alice").build())
            .build();
        let d = super::super::compact(describe(&i));
        assert_eq!(
            d,
            json!({
                "instance_id": "i-0abc",
                "state": "running",
                "instance_type": "t3.micro",
                "private_ip": "10.0.0.5",
                "vpc_id": "vpc-1",
                "subnet_id": "subnet-1",
                "security_groups": [{"id": "sg-1", "name": "web"}],
                "instance_profile_arn": "arn:aws:iam::123456789012:instance-profile/web",
                "volumes": [{"device": "/dev/xvda", "volume_id": "vol-1"}],
                "owner": "alice",
                "tags": {"Owner": "alice"},
            })
        );
    }
}
