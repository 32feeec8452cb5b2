//! AWS identifiers, checked against their formats before any call uses them.
//!
//! Every id the stage acts on comes, one way or another, from an event someone else wrote: a
//! finding, an alarm, a tag. An id is only ever passed to AWS as a typed request field (never
//! spliced into a command line or a document), and only after it has the shape AWS gives that
//! kind of id. A value that does not is refused with a message that says what was expected, so
//! a malformed or hostile event fails one step loudly instead of reaching an API.

use firebreak_shared::playbook::Variable;
use firebreak_shared::signal::{ResourceKind, Signal};

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not {expected}")]
pub struct IdError {
    pub value: String,
    pub expected: &'static str,
}

fn check(value: &str, expected: &'static str, ok: bool) -> Result<(), IdError> {
    if ok {
        Ok(())
    } else {
        Err(IdError {
            // Enough of the value to recognise it, never a whole hostile payload in a log.
            value: value.chars().take(80).collect(),
            expected,
        })
    }
}

/// `<prefix>-` then 8 or 17 lowercase hex digits: the two generations of EC2 resource ids.
fn ec2_style(value: &str, prefix: &str) -> bool {
    value
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hex| {
            (hex.len() == 8 || hex.len() == 17)
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

pub fn instance(value: &str) -> Result<(), IdError> {
    check(
        value,
        "an EC2 instance id (i- and 8 or 17 hex digits)",
        ec2_style(value, "i"),
    )
}

pub fn volume(value: &str) -> Result<(), IdError> {
    check(
        value,
        "an EBS volume id (vol- and 8 or 17 hex digits)",
        ec2_style(value, "vol"),
    )
}

pub fn security_group(value: &str) -> Result<(), IdError> {
    check(
        value,
        "a security group id (sg- and 8 or 17 hex digits)",
        ec2_style(value, "sg"),
    )
}

pub fn snapshot(value: &str) -> Result<(), IdError> {
    check(
        value,
        "an EBS snapshot id (snap- and 8 or 17 hex digits)",
        ec2_style(value, "snap"),
    )
}

pub fn vpc(value: &str) -> Result<(), IdError> {
    check(
        value,
        "a VPC id (vpc- and 8 or 17 hex digits)",
        ec2_style(value, "vpc"),
    )
}

pub fn network_interface(value: &str) -> Result<(), IdError> {
    check(
        value,
        "a network interface id (eni- and 8 or 17 hex digits)",
        ec2_style(value, "eni"),
    )
}

/// An access key id: 20 uppercase letters and digits, starting `AKIA` (a long-term key) or
/// `ASIA` (temporary credentials).
pub fn access_key(value: &str) -> Result<(), IdError> {
    check(
        value,
        "an access key id (AKIA or ASIA and 16 uppercase letters or digits)",
        value.len() == 20
            && (value.starts_with("AKIA") || value.starts_with("ASIA"))
            && value
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
    )
}

/// A long-term access key, the only kind IAM can deactivate.
pub fn long_term_access_key(value: &str) -> Result<(), IdError> {
    access_key(value)?;
    check(
        value,
        "a long-term access key (AKIA…); temporary credentials (ASIA…) cannot be deactivated, \
         revoke the role's sessions instead",
        value.starts_with("AKIA"),
    )
}

/// An S3 bucket name under the current naming rules: 3–63 characters of lowercase letters,
/// digits, dots and hyphens, starting and ending with a letter or digit, no `..`, not shaped
/// like an IP address, none of the reserved prefixes and suffixes.
pub fn bucket(value: &str) -> Result<(), IdError> {
    let b = value.as_bytes();
    let charset = b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-');
    let ends = b
        .first()
        .zip(b.last())
        .is_some_and(|(f, l)| f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric());
    let ip_like = value.split('.').count() == 4
        && value
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()));
    let reserved = ["xn--", "sthree-", "amzn-s3-demo-"]
        .iter()
        .any(|p| value.starts_with(p))
        || ["-s3alias", "--ol-s3", "--x-s3", ".mrap"]
            .iter()
            .any(|s| value.ends_with(s));
    check(
        value,
        "an S3 bucket name (3-63 lowercase letters, digits, dots and hyphens)",
        (3..=63).contains(&b.len())
            && charset
            && ends
            && !value.contains("..")
            && !ip_like
            && !reserved,
    )
}

/// The bucket a resource id names: a bare name, or `arn:<partition>:s3:::<name>`.
pub fn bucket_of(id: &str) -> Result<&str, IdError> {
    let name = match id.strip_prefix("arn:") {
        Some(rest) => {
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            match parts.as_slice() {
                [partition, "s3", "", "", name] if partition.starts_with("aws") => *name,
                _ => {
                    return Err(IdError {
                        value: id.chars().take(80).collect(),
                        expected: "an S3 bucket name or bucket ARN (arn:aws:s3:::name)",
                    });
                }
            }
        }
        None => id,
    };
    bucket(name)?;
    Ok(name)
}

pub fn account(value: &str) -> Result<(), IdError> {
    check(
        value,
        "an AWS account id (12 digits)",
        value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit()),
    )
}

pub fn region(value: &str) -> Result<(), IdError> {
    let parts: Vec<&str> = value.split('-').collect();
    let ok = parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|n| (1..=2).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()));
    check(value, "an AWS region (e.g. eu-west-1)", ok)
}

/// An IAM user name: 1–64 characters of letters, digits and `+=,.@_-`.
pub fn iam_user(value: &str) -> Result<(), IdError> {
    check(
        value,
        "an IAM user name (1-64 letters, digits and +=,.@_-)",
        (1..=64).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b)),
    )
}

/// An Auto Scaling group name as EC2 Auto Scaling reports it: 1–255 characters, no control
/// characters.
pub fn auto_scaling_group(value: &str) -> Result<(), IdError> {
    check(
        value,
        "an Auto Scaling group name (1-255 printable characters)",
        (1..=255).contains(&value.chars().count()) && !value.chars().any(char::is_control),
    )
}

/// An SSM document name (`AWS-RestartEC2Instance`, `team-Isolate`) or a document ARN.
pub fn document(value: &str) -> Result<(), IdError> {
    let name_ok = |n: &str| {
        (3..=128).contains(&n.len())
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
    };
    let ok = match value.strip_prefix("arn:") {
        Some(rest) => {
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            matches!(parts.as_slice(), [p, "ssm", _, _, res]
            if p.starts_with("aws")
                && (res.strip_prefix("document/").is_some_and(name_ok)
                    || res.strip_prefix("automation-definition/").is_some_and(|d| {
                        name_ok(d.split(':').next().unwrap_or(""))
                    })))
        }
        None => name_ok(value),
    };
    check(
        value,
        "an SSM document name (3-128 of A-Za-z0-9_-.) or document ARN",
        ok,
    )
}

/// A resource id of `kind`, by that kind's format. Kinds without a fixed id format (roles,
/// policies, alarms …) are ARNs or names: they must at least be free of anything a shell, a
/// template or a document would read as syntax.
pub fn resource(kind: ResourceKind, id: &str) -> Result<(), IdError> {
    match kind {
        ResourceKind::Ec2Instance => instance(id),
        ResourceKind::Ec2Volume => volume(id),
        ResourceKind::SecurityGroup => security_group(id),
        ResourceKind::AccessKey => access_key(id),
        ResourceKind::S3Bucket => bucket_of(id).map(|_| ()),
        ResourceKind::Account => account(id),
        _ => check(
            id,
            "an ARN or name (1-2048 of A-Za-z0-9+=,.@_:/-)",
            (1..=2048).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_:/-".contains(&b)),
        ),
    }
}

/// Checks one template variable's value before it becomes an SSM parameter. Values with a
/// known format are checked against it; free text from the event (the finding type, the alarm
/// name, the dedupe key, the control id) is refused outright: it is written by whoever raised
/// the alarm or finding, and no format makes it safe to hand to a document.
pub fn variable(v: Variable, signal: &Signal, value: &str) -> Result<(), IdError> {
    match v {
        Variable::Source | Variable::Playbook => Ok(()),
        Variable::Account => account(value),
        Variable::Region => region(value),
        Variable::ResourceOf(kind) => resource(kind, value),
        Variable::Resource => match signal.resources.first() {
            Some(r) => resource(r.kind, value),
            None => check(value, "a resource id", false),
        },
        Variable::Kind | Variable::ControlId | Variable::AlarmName | Variable::DedupeKey => {
            Err(IdError {
                value: v.to_string(),
                expected: "a placeholder with a checkable format: free text from the event \
                           is never passed to SSM",
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec2_ids_take_both_lengths_of_lowercase_hex() {
        assert!(instance("i-0123456789abcdef0").is_ok());
        assert!(instance("i-99999999").is_ok());
        assert!(instance("i-0123456789ABCDEF0").is_err());
        assert!(instance("i-12345").is_err());
        assert!(instance("i-99999999; rm -rf /").is_err());
        assert!(instance("vol-99999999").is_err());
        assert!(volume("vol-0123456789abcdef0").is_ok());
        assert!(security_group("sg-12345678").is_ok());
        assert!(security_group("sg-1234567").is_err());
        assert!(snapshot("snap-0123456789abcdef0").is_ok());
        assert!(vpc("vpc-12345678").is_ok());
        assert!(network_interface("eni-12345678").is_ok());
    }

    #[test]
    fn access_keys_are_twenty_uppercase_characters_and_only_akia_can_be_deactivated() {
        assert!(access_key("AKIAIOSFODNN7EXAMPLE").is_ok());
        assert!(access_key("ASIAIOSFODNN7EXAMPLE").is_ok());
        assert!(access_key("AKIAIOSFODNN7EXAMPL").is_err());
        assert!(access_key("akiaiosfodnn7example").is_err());
        assert!(access_key("AIDAIOSFODNN7EXAMPLE").is_err());
        assert!(long_term_access_key("AKIAIOSFODNN7EXAMPLE").is_ok());
        let err = long_term_access_key("ASIAIOSFODNN7EXAMPLE")
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("temporary credentials")));
    }

    #[test]
    fn bucket_names_follow_the_s3_rules_and_arns_give_their_name() {
        for ok in [
            "my-bucket",
            "logs.example.com",
            "a1b",
            "x".repeat(63).as_str(),
        ] {
            assert!(bucket(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "My-Bucket",
            "-bucket",
            "bucket-",
            "a..b",
            "192.168.1.1",
            "xn--bucket",
            "bucket-s3alias",
            "bucket name",
            "b;ls",
            &"x".repeat(64),
        ] {
            assert!(bucket(bad).is_err(), "{bad}");
        }
        assert_eq!(bucket_of("arn:aws:s3:::my-bucket"), Ok("my-bucket"));
        assert_eq!(bucket_of("my-bucket"), Ok("my-bucket"));
        assert!(bucket_of("arn:aws:s3:::my-bucket/key").is_err());
        assert!(bucket_of("arn:aws:iam::123456789012:user/x").is_err());
    }

    #[test]
    fn accounts_regions_users_and_documents_have_their_formats() {
        assert!(account("123456789012").is_ok());
        assert!(account("12345678901").is_err());
        assert!(region("eu-west-1").is_ok());
        assert!(region("us-gov-west-1").is_ok());
        assert!(region("eu-west-1; x").is_err());
        assert!(iam_user("alice@example.com").is_ok());
        assert!(iam_user("alice smith").is_err());
        assert!(document("AWS-RestartEC2Instance").is_ok());
        assert!(document("arn:aws:ssm:eu-west-1:123456789012:document/team-Isolate").is_ok());
        assert!(document("arn:aws:ssm:eu-west-1::automation-definition/AWS-X:$DEFAULT").is_ok());
        assert!(document("AWS-RunShellScript && curl").is_err());
        assert!(auto_scaling_group("web-asg").is_ok());
        assert!(auto_scaling_group("web\nasg").is_err());
    }

    #[test]
    fn free_text_from_the_event_is_never_a_valid_ssm_value() {
        let event = include_bytes!(
            "../../../tests/fixtures/events/guardduty/custodian-eventbridge-backdoor-ec2-cc-activity-b-dns.json"
        );
        let received = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let signal = firebreak_shared::signal::parse(event, received)
            .expect("fixture parses")
            .remove(0);
        for v in [
            Variable::Kind,
            Variable::AlarmName,
            Variable::DedupeKey,
            Variable::ControlId,
        ] {
            assert!(variable(v, &signal, "anything").is_err(), "{v}");
        }
        assert!(
            variable(
                Variable::ResourceOf(ResourceKind::Ec2Instance),
                &signal,
                "i-0123456789abcdef0"
            )
            .is_ok()
        );
        assert!(
            variable(
                Variable::ResourceOf(ResourceKind::Ec2Instance),
                &signal,
                "$(reboot)"
            )
            .is_err()
        );
    }
}
