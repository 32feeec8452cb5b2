//! `s3.block_public_access`, by direct S3 calls.
//!
//! Why not the AWS-managed runbook `AWS-DisableS3BucketPublicReadWrite` (parameters
//! `S3BucketName`, optional `AutomationAssumeRole`): it would not make the package smaller or
//! the role tighter. The guardrail must read the bucket's tags from S3 itself
//! (`GetBucketTagging`: the Resource Groups Tagging API cannot tell "no tags" from "not visible
//! from this region", and a guardrail must not fail open), and verification reads the
//! settings back (`GetBucketPublicAccessBlock`), so the S3 client is needed either way. The
//! runbook would add `ssm:StartAutomationExecution` and still need
//! `s3:PutBucketPublicAccessBlock` on the role (without an assume role it runs with the
//! caller's permissions). One direct `PutPublicAccessBlock`, conditioned on the incident's
//! account owning the bucket (`ExpectedBucketOwner`), is the whole change.

use aws_sdk_s3::types::PublicAccessBlockConfiguration;
use firebreak_shared::aws::AwsError;
use serde_json::json;

use super::{Ctx, Evidence, StepError};
use crate::budget::retry;
use crate::ids;

/// The incident's account, when it is one: S3 then refuses to act on a bucket of the same
/// name that someone else owns.
fn owner(ctx: &Ctx<'_>) -> Option<String> {
    ctx.incident
        .account
        .clone()
        .filter(|a| ids::account(a).is_ok())
}

/// Turns on all four Block Public Access settings.
pub async fn block(ctx: &Ctx<'_>, id: &str) -> Result<Evidence, StepError> {
    let bucket = ids::bucket_of(id)?;
    let all = PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .ignore_public_acls(true)
        .block_public_policy(true)
        .restrict_public_buckets(true)
        .build();
    let expected = owner(ctx);
    retry(ctx.budget, || async {
        ctx.clients
            .s3
            .put_public_access_block()
            .bucket(bucket)
            .public_access_block_configuration(all.clone())
            .set_expected_bucket_owner(expected.clone())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("s3", "PutPublicAccessBlock", &e))
    })
    .await?;
    let mut ev = Evidence::new();
    ev.insert("bucket".into(), json!(bucket));
    ev.insert(
        "block_public_access".into(),
        json!({"block_public_acls": true, "ignore_public_acls": true,
               "block_public_policy": true, "restrict_public_buckets": true}),
    );
    Ok(ev)
}

/// Whether all four settings are on, as S3 reports them now.
pub async fn all_blocked(ctx: &Ctx<'_>, id: &str) -> Result<bool, StepError> {
    let bucket = ids::bucket_of(id)?;
    let expected = owner(ctx);
    let out = retry(ctx.budget, || async {
        ctx.clients
            .s3
            .get_public_access_block()
            .bucket(bucket)
            .set_expected_bucket_owner(expected.clone())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("s3", "GetPublicAccessBlock", &e))
    })
    .await?;
    Ok(out.public_access_block_configuration().is_some_and(|c| {
        c.block_public_acls() == Some(true)
            && c.ignore_public_acls() == Some(true)
            && c.block_public_policy() == Some(true)
            && c.restrict_public_buckets() == Some(true)
    }))
}
