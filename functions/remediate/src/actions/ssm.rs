//! SSM actions: `ssm.automation` and `ssm.run_command`.
//!
//! Parameters come from the playbook's `parameters:` templates, rendered against the incident
//! (its signal's fields, plus the volumes and security groups enrichment found). They travel
//! as typed document parameters, never as text spliced into a command or a document:
//! - every placeholder's value is checked against its format (an instance id is `i-` and hex,
//!   a bucket a bucket name …), and free text from the event (finding type, alarm name, dedupe
//!   key, control id) is refused outright;
//! - for `ssm.run_command` a placeholder must be the whole value, so a playbook cannot build a
//!   command line such as `"kill {resource.ec2_instance}"` out of event data.
//!
//! An automation is started with a client token derived from the incident and the step, and
//! its execution id is recorded before the stage waits: a retry (after the budget ran out, or
//! a crash) polls the same execution instead of starting another. The step waits for the
//! execution within the invocation's budget; if the budget ends first the invocation fails
//! transient and the retry resumes waiting; if the step's own `timeout` passes first (counted
//! from when the step started) the step has failed.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_ssm::types::{AutomationExecutionStatus, CommandInvocationStatus};
use chrono::Utc;
use firebreak_shared::aws::AwsError;
use firebreak_shared::playbook::Template;
use firebreak_shared::signal::Signal;
use serde_json::{Value, json};

use super::{Ctx, Evidence, StepError};
use crate::budget::retry;
use crate::{Error, ids};

/// How long `ssm.automation` waits when the playbook sets no `timeout`.
pub const DEFAULT_AUTOMATION_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// How long `ssm.run_command` waits for the command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Renders SSM parameters. `whole_values`: each placeholder must be a whole value.
pub fn render(
    params: Option<&BTreeMap<String, Vec<Template>>>,
    signal: &Signal,
    playbook: &str,
    whole_values: bool,
) -> Result<HashMap<String, Vec<String>>, StepError> {
    let mut out = HashMap::new();
    for (name, values) in params.into_iter().flatten() {
        let mut rendered = Vec::with_capacity(values.len());
        for t in values {
            for v in t.variables() {
                let value = v.value(signal, playbook).ok_or_else(|| {
                    StepError::Failed(format!(
                        "parameter {name}: the incident has no value for {v}"
                    ))
                })?;
                ids::variable(v, signal, value)
                    .map_err(|e| StepError::Failed(format!("parameter {name}: {e}")))?;
                if whole_values && t.as_str().trim() != v.to_string() {
                    return Err(StepError::Failed(format!(
                        "parameter {name}: `{t}` mixes {v} into other text; in ssm.run_command \
                         a placeholder must be the whole value, so no command line is built \
                         from event data"
                    )));
                }
            }
            rendered.push(
                t.try_render(signal, playbook)
                    .map_err(|e| StepError::Failed(format!("parameter {name}: {e}")))?,
            );
        }
        out.insert(name.clone(), rendered);
    }
    Ok(out)
}

/// A UUID-shaped client token, stable for one step of one incident: SSM refuses tokens that
/// are not UUIDs, and a repeated start with the same token is the same execution.
pub fn client_token(incident: &str, record: &str) -> String {
    fn fnv(seed: u64, parts: &[&str]) -> u64 {
        let mut h = seed;
        for p in parts {
            for b in p.bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }
    let hi = fnv(0xcbf2_9ce4_8422_2325, &[incident, record]);
    let lo = fnv(0x8422_2325_cbf2_9ce4, &[record, incident]);
    // Version 4 and the RFC 4122 variant bits, so it is a well-formed UUID.
    let hi = (hi & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    let lo = (lo & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

fn params_json(params: &HashMap<String, Vec<String>>) -> Value {
    let sorted: BTreeMap<&String, &Vec<String>> = params.iter().collect();
    json!(sorted)
}

/// What an automation's status means for the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Succeeded,
    Failed,
    Running,
}

pub fn automation_progress(status: &AutomationExecutionStatus) -> Progress {
    use AutomationExecutionStatus as S;
    match status {
        S::Success | S::CompletedWithSuccess => Progress::Succeeded,
        S::Failed
        | S::Timedout
        | S::Cancelled
        | S::Cancelling
        | S::Rejected
        | S::CompletedWithFailure
        | S::ChangeCalendarOverrideRejected
        | S::Exited => Progress::Failed,
        _ => Progress::Running,
    }
}

fn command_progress(status: &CommandInvocationStatus) -> Progress {
    use CommandInvocationStatus as S;
    match status {
        S::Success => Progress::Succeeded,
        S::Cancelled | S::Cancelling | S::Failed | S::TimedOut => Progress::Failed,
        _ => Progress::Running,
    }
}

/// Waits `poll` if both the step's timeout and the budget allow; otherwise says which ran out.
async fn wait_or_give_up(ctx: &Ctx<'_>, timeout: Duration, what: &str) -> Result<(), StepError> {
    let elapsed = (Utc::now() - ctx.started_at).to_std().unwrap_or_default();
    if elapsed >= timeout {
        return Err(StepError::Failed(format!(
            "{what} did not finish within {}s; it may still be running",
            timeout.as_secs()
        )));
    }
    if !ctx.budget.sleep(ctx.budget.timing().poll).await {
        return Err(StepError::Retry(Error::StillRunning {
            what: what.to_owned(),
        }));
    }
    Ok(())
}

/// `ssm.automation`: starts the runbook (once) and waits for it.
pub async fn automation(
    ctx: &Ctx<'_>,
    document: &str,
    params: Option<&BTreeMap<String, Vec<Template>>>,
    timeout: Option<Duration>,
) -> Result<Evidence, StepError> {
    ids::document(document)?;
    let timeout = timeout.unwrap_or(DEFAULT_AUTOMATION_TIMEOUT);
    let mut ev = Evidence::new();
    ev.insert("document".into(), json!(document));
    let execution = match ctx.evidence.get("execution_id").and_then(Value::as_str) {
        Some(id) => id.to_owned(),
        None => {
            let parameters = render(params, ctx.signal, ctx.playbook, false)?;
            ev.insert("parameters".into(), params_json(&parameters));
            let token = client_token(&ctx.incident.id, ctx.record_id);
            let out = retry(ctx.budget, || async {
                ctx.clients
                    .ssm
                    .start_automation_execution()
                    .document_name(document)
                    .set_parameters(Some(parameters.clone()))
                    .client_token(&token)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("ssm", "StartAutomationExecution", &e))
            })
            .await?;
            let id = out
                .automation_execution_id()
                .ok_or_else(|| {
                    StepError::Failed("StartAutomationExecution returned no execution id".into())
                })?
                .to_owned();
            ctx.checkpoint.save("execution_id", json!(id)).await?;
            id
        }
    };
    ev.insert("execution_id".into(), json!(execution));
    let what = format!("automation {execution} ({document})");
    loop {
        let out = retry(ctx.budget, || async {
            ctx.clients
                .ssm
                .get_automation_execution()
                .automation_execution_id(&execution)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ssm", "GetAutomationExecution", &e))
        })
        .await?;
        let run = out.automation_execution();
        let status = run.and_then(|r| r.automation_execution_status());
        match status.map(automation_progress) {
            Some(Progress::Succeeded) => {
                ev.insert("status".into(), json!(status.map(|s| s.as_str())));
                if let Some(outputs) = run.and_then(|r| r.outputs()) {
                    let sorted: BTreeMap<&String, &Vec<String>> = outputs.iter().collect();
                    ev.insert("outputs".into(), json!(sorted));
                }
                return Ok(ev);
            }
            Some(Progress::Failed) => {
                let why = run
                    .and_then(|r| r.failure_message())
                    .unwrap_or("no message");
                return Err(StepError::Failed(format!(
                    "{what} ended {}: {why}",
                    status.map_or("?", |s| s.as_str())
                )));
            }
            Some(Progress::Running) | None => wait_or_give_up(ctx, timeout, &what).await?,
        }
    }
}

/// `ssm.run_command`: sends the document to the instance (once) and waits for the result.
pub async fn run_command(
    ctx: &Ctx<'_>,
    instance: &str,
    document: &str,
    params: Option<&BTreeMap<String, Vec<Template>>>,
) -> Result<Evidence, StepError> {
    ids::instance(instance)?;
    ids::document(document)?;
    let mut ev = Evidence::new();
    ev.insert("document".into(), json!(document));
    let command = match ctx.evidence.get("command_id").and_then(Value::as_str) {
        Some(id) => id.to_owned(),
        None => {
            let parameters = render(params, ctx.signal, ctx.playbook, true)?;
            ev.insert("parameters".into(), params_json(&parameters));
            let comment = format!("Firebreak {}", ctx.incident.id);
            let out = retry(ctx.budget, || async {
                ctx.clients
                    .ssm
                    .send_command()
                    .instance_ids(instance)
                    .document_name(document)
                    .set_parameters(Some(parameters.clone()))
                    .comment(&comment)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("ssm", "SendCommand", &e))
            })
            .await?;
            let id = out
                .command()
                .and_then(|c| c.command_id())
                .ok_or_else(|| StepError::Failed("SendCommand returned no command id".into()))?
                .to_owned();
            ctx.checkpoint.save("command_id", json!(id)).await?;
            id
        }
    };
    ev.insert("command_id".into(), json!(command));
    let what = format!("command {command} ({document}) on {instance}");
    loop {
        let out = retry(ctx.budget, || async {
            match ctx
                .clients
                .ssm
                .get_command_invocation()
                .command_id(&command)
                .instance_id(instance)
                .send()
                .await
            {
                Ok(out) => Ok(Some(out)),
                Err(e) => {
                    let e = AwsError::from_sdk("ssm", "GetCommandInvocation", &e);
                    // For a moment after SendCommand the invocation does not exist yet.
                    if e.code_is("InvocationDoesNotExist") {
                        Ok(None)
                    } else {
                        Err(e)
                    }
                }
            }
        })
        .await?;
        let status = out.as_ref().and_then(|o| o.status());
        match status.map(command_progress) {
            Some(Progress::Succeeded) => {
                ev.insert("status".into(), json!(status.map(|s| s.as_str())));
                return Ok(ev);
            }
            Some(Progress::Failed) => {
                let details = out
                    .as_ref()
                    .and_then(|o| o.status_details())
                    .unwrap_or("no details");
                return Err(StepError::Failed(format!(
                    "{what} ended {}: {details}",
                    status.map_or("?", |s| s.as_str())
                )));
            }
            Some(Progress::Running) | None => wait_or_give_up(ctx, COMMAND_TIMEOUT, &what).await?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal() -> Signal {
        let event = include_bytes!(
            "../../../../tests/fixtures/events/guardduty/custodian-eventbridge-backdoor-ec2-cc-activity-b-dns.json"
        );
        let received = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        firebreak_shared::signal::parse(event, received)
            .expect("fixture parses")
            .remove(0)
    }

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<Template>> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), vec![Template::parse(v).expect("template")]))
            .collect()
    }

    fn failed(r: Result<HashMap<String, Vec<String>>, StepError>) -> String {
        match r {
            Err(StepError::Failed(why)) => why,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn instance_ids_render_as_typed_parameters() {
        let p = params(&[
            ("InstanceId", "{resource.ec2_instance}"),
            ("Mode", "contain"),
        ]);
        let out = render(Some(&p), &signal(), "pb", true).expect("renders");
        assert_eq!(out["InstanceId"], vec!["i-99999999".to_owned()]);
        assert_eq!(out["Mode"], vec!["contain".to_owned()]);
    }

    #[test]
    fn free_text_from_the_event_is_refused_as_a_parameter() {
        let p = params(&[("Reason", "{kind}")]);
        let why = failed(render(Some(&p), &signal(), "pb", false));
        assert!(why.contains("never passed to SSM"), "{why}");
    }

    #[test]
    fn run_command_refuses_a_placeholder_inside_a_command_line() {
        let p = params(&[("commands", "kill -9 $(pgrep -f {resource.ec2_instance})")]);
        let why = failed(render(Some(&p), &signal(), "pb", true));
        assert!(why.contains("whole value"), "{why}");
        // An automation parameter may embed a checked id in a literal (an ARN, say).
        let p = params(&[("Target", "arn:aws:ec2:::instance/{resource.ec2_instance}")]);
        assert!(render(Some(&p), &signal(), "pb", false).is_ok());
    }

    #[test]
    fn a_missing_value_fails_the_step_instead_of_sending_a_dash() {
        let p = params(&[("BucketName", "{resource.s3_bucket}")]);
        let why = failed(render(Some(&p), &signal(), "pb", false));
        assert!(why.contains("no value"), "{why}");
    }

    #[test]
    fn client_tokens_are_uuids_stable_per_step() {
        let a = client_token("INC-1", "0/ssm.automation/-");
        assert_eq!(a, client_token("INC-1", "0/ssm.automation/-"));
        assert_ne!(a, client_token("INC-2", "0/ssm.automation/-"));
        assert_ne!(a, client_token("INC-1", "1/ssm.automation/-"));
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'), "{a}");
        assert!(
            matches!(parts[3].chars().next(), Some('8' | '9' | 'a' | 'b')),
            "{a}"
        );
    }

    #[test]
    fn automation_statuses_map_to_success_failure_or_waiting() {
        use AutomationExecutionStatus as S;
        assert_eq!(automation_progress(&S::Success), Progress::Succeeded);
        for s in [S::Failed, S::Timedout, S::Cancelled, S::Rejected] {
            assert_eq!(automation_progress(&s), Progress::Failed, "{s:?}");
        }
        for s in [S::Pending, S::Inprogress, S::Waiting, S::PendingApproval] {
            assert_eq!(automation_progress(&s), Progress::Running, "{s:?}");
        }
    }
}
