//! `iam.deactivate_access_key`, by direct IAM calls.
//!
//! Why not an AWS-managed runbook: none deactivates one named key. The nearest,
//! `AWSConfigRemediation-RevokeUnusedIAMUserCredentials`, acts on every credential unused for a
//! number of days and needs AWS Config; `AWSSupport-ContainIAMPrincipal` contains the whole
//! principal (policies, network access), which is far more than the playbook asked for. Four
//! direct calls do exactly the step: `GetAccessKeyLastUsed` names the key's user (the event may
//! not), `ListUserTags` reads the protected tag, `UpdateAccessKey` sets the key `Inactive` (not
//! deleted: it can be turned back on), and `ListAccessKeys` verifies it. The role gets those
//! four actions on this account's users and nothing else of IAM.

use aws_sdk_iam::types::StatusType;
use firebreak_shared::aws::AwsError;
use serde_json::json;

use super::{Ctx, Evidence, StepError};
use crate::budget::{Budget, retry};
use crate::guardrails::TagsError;
use crate::{Clients, ids};

/// The IAM user that owns `key`.
pub async fn owner(clients: &Clients, budget: &Budget, key: &str) -> Result<String, TagsError> {
    ids::access_key(key)?;
    let out = retry(budget, || async {
        clients
            .iam
            .get_access_key_last_used()
            .access_key_id(key)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("iam", "GetAccessKeyLastUsed", &e))
    })
    .await?;
    let user = out
        .user_name()
        .ok_or_else(|| TagsError::Missing(format!("IAM names no user for access key {key}")))?
        .to_owned();
    ids::iam_user(&user)?;
    Ok(user)
}

/// Sets the key `Inactive`.
pub async fn deactivate(ctx: &Ctx<'_>, key: &str) -> Result<Evidence, StepError> {
    ids::long_term_access_key(key)?;
    let user = owner(ctx.clients, ctx.budget, key).await?;
    retry(ctx.budget, || async {
        ctx.clients
            .iam
            .update_access_key()
            .user_name(&user)
            .access_key_id(key)
            .status(StatusType::Inactive)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("iam", "UpdateAccessKey", &e))
    })
    .await?;
    let mut ev = Evidence::new();
    ev.insert("user".into(), json!(user));
    ev.insert("status".into(), json!("Inactive"));
    Ok(ev)
}

/// The key's status as IAM lists it.
pub async fn status(ctx: &Ctx<'_>, user: &str, key: &str) -> Result<Option<String>, StepError> {
    ids::iam_user(user)?;
    let out = retry(ctx.budget, || async {
        ctx.clients
            .iam
            .list_access_keys()
            .user_name(user)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("iam", "ListAccessKeys", &e))
    })
    .await?;
    Ok(out
        .access_key_metadata()
        .iter()
        .find(|m| m.access_key_id() == Some(key))
        .and_then(|m| m.status())
        .map(|s| s.as_str().to_owned()))
}
