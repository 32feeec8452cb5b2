//! Verification: after a step, the stage reads the resource back and confirms the new state,
//! and records what it saw. A step whose check fails has failed, however its calls answered.
//!
//! | action | confirmed when |
//! | --- | --- |
//! | `ec2.snapshot` | every snapshot the step took exists and is `pending` or `completed`, one per volume |
//! | `ec2.isolate` | the instance (every interface) has only the quarantine group, and that group has no rule |
//! | `ec2.tag` | the instance carries every tag |
//! | `ec2.stop` | the instance is `stopping` or `stopped` |
//! | `ec2.reboot` | the instance is `running` or `pending` |
//! | `ssm.automation`, `ssm.run_command` | the execution (command) ended `Success` |
//! | `iam.deactivate_access_key` | IAM lists the key as `Inactive` |
//! | `s3.block_public_access` | all four Block Public Access settings read back `true` |

use firebreak_shared::playbook::Step;
use serde_json::{Value, json};

use crate::actions::{Ctx, Evidence, StepError, ec2, iam, s3};

fn failed(what: String) -> StepError {
    StepError::Failed(format!("verification failed: {what}"))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Confirms the state `step` left `target` in; returns what was seen.
pub async fn verify(
    ctx: &Ctx<'_>,
    step: &Step,
    target: Option<&str>,
    evidence: &Evidence,
) -> Result<Value, StepError> {
    let id = target.unwrap_or("");
    match step.action.name {
        "ec2.snapshot" => {
            let snaps = ec2::snapshots_of_step(ctx).await?;
            let bad: Vec<&str> = snaps
                .iter()
                .filter(|(_, _, st)| !matches!(st.as_deref(), Some("pending" | "completed")))
                .map(|(s, _, _)| s.as_str())
                .collect();
            if snaps.is_empty() {
                return Err(failed(format!(
                    "no snapshot of {id} carries this step's tag"
                )));
            }
            if !bad.is_empty() {
                return Err(failed(format!(
                    "snapshots {} are neither pending nor completed",
                    bad.join(", ")
                )));
            }
            let volumes = strings(evidence.get("volumes"));
            let missing: Vec<&String> = volumes
                .iter()
                .filter(|v| {
                    !snaps
                        .iter()
                        .any(|(_, sv, _)| sv.as_deref() == Some(v.as_str()))
                })
                .collect();
            if !missing.is_empty() {
                return Err(failed(format!("no snapshot of volume(s) {missing:?}")));
            }
            Ok(json!({
                "snapshots": snaps.iter().map(|(s, v, st)| json!({"snapshot_id": s, "volume_id": v, "state": st})).collect::<Vec<_>>(),
            }))
        }
        "ec2.isolate" => {
            let quarantine = evidence
                .get("quarantine_group")
                .and_then(Value::as_str)
                .ok_or_else(|| failed("the step recorded no quarantine group".to_owned()))?;
            let seen = ec2::observe(ctx, id).await?;
            if seen.groups != [quarantine] {
                return Err(failed(format!(
                    "{id} has groups {:?}, not only {quarantine}",
                    seen.groups
                )));
            }
            if let Some((eni, groups)) = seen
                .interface_groups
                .iter()
                .find(|(_, g)| g.as_slice() != [quarantine])
            {
                return Err(failed(format!(
                    "interface {eni} of {id} has groups {groups:?}"
                )));
            }
            let (ingress, egress) = ec2::rule_counts(ctx, quarantine).await?;
            if ingress + egress > 0 {
                return Err(failed(format!(
                    "quarantine group {quarantine} has {ingress} inbound and {egress} outbound rule(s)"
                )));
            }
            Ok(json!({"groups": seen.groups, "quarantine_rules": 0}))
        }
        "ec2.tag" => {
            let seen = ec2::observe(ctx, id).await?;
            let wanted = step.with.string_map("tags").cloned().unwrap_or_default();
            let missing: Vec<&String> = wanted
                .iter()
                .filter(|(k, v)| !seen.tags.iter().any(|(sk, sv)| sk == *k && sv == *v))
                .map(|(k, _)| k)
                .collect();
            if !missing.is_empty() {
                return Err(failed(format!("{id} lacks tag(s) {missing:?}")));
            }
            Ok(json!({"tags": wanted}))
        }
        "ec2.stop" | "ec2.reboot" => {
            let seen = ec2::observe(ctx, id).await?;
            let ok: &[&str] = if step.action.name == "ec2.stop" {
                &["stopping", "stopped"]
            } else {
                &["running", "pending"]
            };
            match seen.state.as_deref() {
                Some(s) if ok.contains(&s) => Ok(json!({"state": s})),
                other => Err(failed(format!(
                    "{id} is {}",
                    other.unwrap_or("in no known state")
                ))),
            }
        }
        "ssm.automation" | "ssm.run_command" => {
            match evidence.get("status").and_then(Value::as_str) {
                Some("Success" | "CompletedWithSuccess") => {
                    Ok(json!({"status": evidence["status"]}))
                }
                other => Err(failed(format!(
                    "the run ended {}",
                    other.unwrap_or("without a status")
                ))),
            }
        }
        "iam.deactivate_access_key" => {
            let user = evidence
                .get("user")
                .and_then(Value::as_str)
                .ok_or_else(|| failed("the step recorded no user".to_owned()))?;
            match iam::status(ctx, user, id).await?.as_deref() {
                Some("Inactive") => Ok(json!({"status": "Inactive"})),
                other => Err(failed(format!(
                    "IAM lists {id} as {}",
                    other.unwrap_or("missing")
                ))),
            }
        }
        "s3.block_public_access" => {
            if s3::all_blocked(ctx, id).await? {
                Ok(json!({"block_public_access": "all four on"}))
            } else {
                Err(failed(format!(
                    "Block Public Access on {id} is not fully on"
                )))
            }
        }
        other => Ok(json!({"checked": format!("{other} changes nothing to check")})),
    }
}
