//! The guardrails that stand between a playbook and a change: the protected tag, read from the
//! resource itself, and the blast-radius limit, counted in the store.
//!
//! - **Protected tag.** Tags in an event are a copy, possibly stale, and absent from alarms
//!   altogether, so before a step changes anything the stage reads the target's tags from its
//!   own service (EC2 `DescribeInstances`, IAM `ListUserTags` for an access key's user, S3
//!   `GetBucketTagging`). A protected target is never changed and the incident escalates with
//!   `protected_resource`. When the tags cannot be read, the step fails rather than act blind.
//! - **Blast radius.** At most `rate_limit.max` incidents per playbook per account are
//!   remediated within each `rate_limit.per` window (fixed windows aligned to the epoch). The
//!   count is one item per window, `pk = quota#<playbook>#<account>`, `sk = <window start>`,
//!   changed only by a conditional `UpdateItem` that adds the incident's id to the item's set
//!   and increments its count while the count is under the limit and the id is not yet in the
//!   set. A retry or a concurrent delivery of the same incident finds its id there and is not
//!   counted twice; the item expires (TTL) a day after its window. Past the limit the incident
//!   escalates with `rate_limited`: a burst means something wider is wrong, and people should
//!   look before automation touches more.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, TimeZone, Utc};
use firebreak_shared::aws::AwsError;
use firebreak_shared::playbook::{ProtectedTag, RateLimit};
use firebreak_shared::signal::ResourceKind;
use firebreak_shared::store::TTL_ATTRIBUTE;

use crate::Clients;
use crate::budget::{Budget, retry};
use crate::ids;

/// A resource's tags as its own service reports them.
pub type Tags = Vec<(String, String)>;

/// Why a target's tags could not be read; the step fails (or, when transient, the invocation).
#[derive(Debug, thiserror::Error)]
pub enum TagsError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Id(#[from] ids::IdError),
    #[error("{0}")]
    Missing(String),
}

/// The tags of the resource a step acts on, read from AWS.
pub async fn tags(
    clients: &Clients,
    budget: &Budget,
    kind: ResourceKind,
    id: &str,
) -> Result<Tags, TagsError> {
    match kind {
        ResourceKind::Ec2Instance => {
            ids::instance(id)?;
            let out = retry(budget, || async {
                clients
                    .ec2
                    .describe_instances()
                    .instance_ids(id)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("ec2", "DescribeInstances", &e))
            })
            .await?;
            let instance = out
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .find(|i| i.instance_id() == Some(id))
                .ok_or_else(|| TagsError::Missing(format!("no instance {id}; it may be gone")))?;
            Ok(instance
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned())))
                .collect())
        }
        ResourceKind::AccessKey => {
            let user = crate::actions::iam::owner(clients, budget, id).await?;
            let out = retry(budget, || async {
                clients
                    .iam
                    .list_user_tags()
                    .user_name(&user)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("iam", "ListUserTags", &e))
            })
            .await?;
            Ok(out
                .tags()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect())
        }
        ResourceKind::S3Bucket => {
            let bucket = ids::bucket_of(id)?;
            let out = retry(budget, || async {
                match clients.s3.get_bucket_tagging().bucket(bucket).send().await {
                    Ok(out) => Ok(Some(out)),
                    Err(e) => {
                        let e = AwsError::from_sdk("s3", "GetBucketTagging", &e);
                        // A bucket that never had tags answers with this error, not an empty set.
                        if e.code_is("NoSuchTagSet") {
                            Ok(None)
                        } else {
                            Err(e)
                        }
                    }
                }
            })
            .await?;
            Ok(out
                .map(|o| {
                    o.tag_set()
                        .iter()
                        .map(|t| (t.key().to_owned(), t.value().to_owned()))
                        .collect()
                })
                .unwrap_or_default())
        }
        other => Err(TagsError::Missing(format!(
            "cannot read the tags of a {other} to check protection"
        ))),
    }
}

/// The protecting tag among `tags`, as `key=value`.
pub fn protecting(tag: &ProtectedTag, tags: &Tags) -> Option<String> {
    tags.iter()
        .find(|(k, v)| tag.matches(k, v))
        .map(|(k, v)| format!("{k}={v}"))
}

/// What the blast-radius counter said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quota {
    /// Counted now.
    Counted { count: u64, window: String },
    /// This incident was already counted in this window (a retry or a concurrent delivery).
    AlreadyCounted { window: String },
    /// The window is full.
    Limited {
        count: u64,
        max: u32,
        window: String,
    },
}

/// The start and end of the fixed window `now` falls in, in epoch seconds.
pub fn window(now: DateTime<Utc>, limit: &RateLimit) -> (i64, i64) {
    let per = i64::try_from(limit.per.as_secs())
        .unwrap_or(i64::MAX)
        .max(1);
    let start = now.timestamp().div_euclid(per) * per;
    (start, start.saturating_add(per))
}

fn rfc3339(epoch: i64) -> String {
    Utc.timestamp_opt(epoch, 0)
        .single()
        .map_or_else(|| epoch.to_string(), |t| t.to_rfc3339())
}

/// The counter item's partition key.
pub fn quota_pk(playbook: &str, account: &str) -> String {
    format!("quota#{playbook}#{account}")
}

/// Counts `incident` against `limit` for `playbook` in `account`, once per window.
#[allow(clippy::too_many_arguments)]
pub async fn claim(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    budget: &Budget,
    playbook: &str,
    account: &str,
    incident: &str,
    limit: &RateLimit,
    now: DateTime<Utc>,
) -> Result<Quota, AwsError> {
    let (start, end) = window(now, limit);
    let window = rfc3339(start);
    let key = HashMap::from([
        (
            "pk".to_owned(),
            AttributeValue::S(quota_pk(playbook, account)),
        ),
        ("sk".to_owned(), AttributeValue::S(window.clone())),
    ]);
    let max = limit.max.get();
    let updated = retry(budget, || async {
        let result = ddb
            .update_item()
            .table_name(table)
            .set_key(Some(key.clone()))
            .update_expression("ADD #count :one, #incidents :incident SET #expires = :expires")
            .condition_expression(
                "(attribute_not_exists(#count) OR #count < :max) AND \
                 (attribute_not_exists(#incidents) OR NOT contains(#incidents, :id))",
            )
            .expression_attribute_names("#count", "count")
            .expression_attribute_names("#incidents", "incidents")
            .expression_attribute_names("#expires", TTL_ATTRIBUTE)
            .expression_attribute_values(":one", AttributeValue::N("1".to_owned()))
            .expression_attribute_values(":incident", AttributeValue::Ss(vec![incident.to_owned()]))
            .expression_attribute_values(":id", AttributeValue::S(incident.to_owned()))
            .expression_attribute_values(":max", AttributeValue::N(max.to_string()))
            .expression_attribute_values(
                ":expires",
                AttributeValue::N(end.saturating_add(86_400).to_string()),
            )
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Some(count_of(out.attributes()))),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(AwsError::from_sdk("dynamodb", "UpdateItem", &e)),
        }
    })
    .await?;
    if let Some(count) = updated {
        return Ok(Quota::Counted { count, window });
    }
    // The condition failed: either this incident is already in the set, or the window is full.
    let item = retry(budget, || async {
        ddb.get_item()
            .table_name(table)
            .set_key(Some(key.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("dynamodb", "GetItem", &e))
    })
    .await?;
    let item = item.item();
    let counted = item
        .and_then(|i| i.get("incidents"))
        .and_then(|v| v.as_ss().ok())
        .is_some_and(|ids| ids.iter().any(|i| i == incident));
    if counted {
        Ok(Quota::AlreadyCounted { window })
    } else {
        Ok(Quota::Limited {
            count: count_of(item),
            max,
            window,
        })
    }
}

fn count_of(item: Option<&HashMap<String, AttributeValue>>) -> u64 {
    item.and_then(|i| i.get("count"))
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    fn limit(per_s: u64) -> RateLimit {
        RateLimit {
            max: NonZeroU32::MIN,
            per: firebreak_shared::playbook::Duration::from_secs(per_s),
        }
    }

    #[test]
    fn windows_are_fixed_and_aligned_to_the_epoch() {
        let t = Utc
            .timestamp_opt(7_200 + 1_799, 0)
            .single()
            .unwrap_or_default();
        assert_eq!(window(t, &limit(3_600)), (7_200, 10_800));
        let next = t + chrono::Duration::seconds(1_801);
        assert_eq!(window(next, &limit(3_600)), (10_800, 14_400));
        assert_eq!(
            quota_pk("ec2-compromise", "123456789012"),
            "quota#ec2-compromise#123456789012"
        );
    }

    #[test]
    fn a_protected_tag_is_found_by_key_or_by_key_and_value() {
        let any = ProtectedTag::default();
        let tags = vec![
            ("Name".to_owned(), "web".to_owned()),
            ("firebreak:protected".to_owned(), "yes".to_owned()),
        ];
        assert_eq!(
            protecting(&any, &tags).as_deref(),
            Some("firebreak:protected=yes")
        );
        let exact = ProtectedTag {
            key: "env".to_owned(),
            value: Some("prod".to_owned()),
        };
        assert_eq!(protecting(&exact, &tags), None);
        assert!(protecting(&exact, &vec![("env".to_owned(), "prod".to_owned())]).is_some());
    }
}
