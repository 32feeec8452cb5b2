//! The stage itself: [`Remediate::handle`] for `Incident Enriched`, [`Remediate::approve`]
//! and [`Remediate::rollback`] for the CLI.
//!
//! A run reads the incident, resolves its playbook's steps with [`crate::plan`] and walks them
//! in order. Everything it does is decided from the record, so any delivery, duplicate,
//! concurrent, or a retry after a crash or a throttled budget, picks up where the record says
//! and repeats nothing:
//!
//! 1. a step already `succeeded`, `dry_run` or `skipped` is passed over; one that `failed`
//!    stops the run (its failure and escalation are re-emitted if missing);
//! 2. a mutating step on a protected target (tags read from AWS) is recorded `skipped` and the
//!    run stops with an escalation; so does one past the blast-radius limit;
//! 3. otherwise the step is claimed (`started`, with a lease), `Remediation Started` goes out,
//!    the action runs, its result is verified, and the record and `Remediation Succeeded` or
//!    `Remediation Failed` follow. A failed step stops the run and escalates;
//! 4. when every step is done and at least one changed something, the incident is
//!    acknowledged by `remediate` and, under `close.on: verified_remediation`, resolution is
//!    requested.
//!
//! In `approve` mode the run stops at the first mutating step with `Approval Requested`;
//! [`Remediate::approve`] records the approval (and the approver's acknowledgement) and runs
//! the same walk again, which now passes that point. In `dry-run` (the playbook's or the
//! global switch's) every mutating step is recorded `dry_run` with what it would have done.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use firebreak_shared::catalog::{ParamValue, Params};
use firebreak_shared::incident::{ActionRecord, Incident};
use firebreak_shared::lifecycle::{self, Bus, Event, Kind};
use firebreak_shared::playbook::{CloseOn, EscalationTrigger, Mode, Playbook, PlaybookSet, Step};
use firebreak_shared::signal::{Action, Resource, ResourceKind, Signal};
use firebreak_shared::store::{Change, Store};
use firebreak_shared::triage::{Decision, Outcome};
use serde_json::{Map, Value, json};

use crate::actions::{self, Checkpoint, Ctx, Evidence, StepError};
use crate::budget::{Budget, Timing};
use crate::guardrails::{self, Quota, TagsError};
use crate::switch::{DryRunSwitch, State};
use crate::{Clients, Error, PlannedStep, StepOutcome, plan, verify};

/// The timeline actor of this stage, and the actor of its resolution requests.
pub const ACTOR: &str = "remediate";
/// How long [`Remediate::approve`] and [`Remediate::rollback`] may take outside Lambda.
pub const APPROVAL_BUDGET: Duration = Duration::from_secs(10 * 60);

const APPROVAL_REQUESTED: &str = "approval_requested";
const APPROVED: &str = "remediation_approved";
const QUOTA_COUNTED: &str = "rate_limit_counted";
const ESCALATED: &str = "escalated";

/// The remediate stage, built once at init.
pub struct Remediate {
    playbooks: PlaybookSet,
    store: Store,
    bus: Bus,
    clients: Clients,
    switch: DryRunSwitch,
    timing: Timing,
}

/// One run's fixed facts.
struct Run<'a> {
    id: &'a str,
    playbook: &'a Playbook,
    signal: Signal,
    budget: Budget,
    now: DateTime<Utc>,
    switch: State,
    mode: Mode,
    approved: bool,
    /// The plan's escalation: a target protected by the event's own tags.
    protected_by_event: Option<String>,
}

/// Whether the walk goes on after a step.
enum Flow {
    Next(Value),
    Stop(Value),
}

enum Claim {
    Ours(ActionRecord),
    Done(ActionRecord),
    Held,
}

fn refuse(reason: String) -> Value {
    tracing::warn!(%reason, "refused");
    json!({"refused": reason})
}

/// The record id of one step on one target: stable per incident, step and target.
fn record_id(n: usize, action: &str, target: Option<&str>) -> String {
    format!("{n}/{action}/{}", target.unwrap_or("-"))
}

/// The incident as a signal, for the plan and the templates: its own fields, and the
/// resources the `ec2.instance` enricher found (volumes, security groups) after the signal's.
pub(crate) fn signal_of(incident: &Incident) -> Signal {
    let mut resources = incident.resources.clone();
    let found = incident
        .enrichment
        .iter()
        .flat_map(|e| &e.results)
        .filter(|r| r.enricher == "ec2.instance" && r.outcome == "ok");
    for r in found {
        let volumes = r.data["volumes"].as_array().into_iter().flatten();
        for id in volumes.filter_map(|v| v["volume_id"].as_str()) {
            resources.push(Resource {
                kind: ResourceKind::Ec2Volume,
                id: id.to_owned(),
            });
        }
        let groups = r.data["security_groups"].as_array().into_iter().flatten();
        for id in groups.filter_map(|g| g["id"].as_str()) {
            resources.push(Resource {
                kind: ResourceKind::SecurityGroup,
                id: id.to_owned(),
            });
        }
    }
    let mut seen = std::collections::HashSet::new();
    resources.retain(|r| seen.insert(r.clone()));
    Signal {
        source: incident.source,
        action: Action::Open,
        severity: incident.severity,
        title: incident.title.clone(),
        kind: incident.kind.clone(),
        control_id: incident.control_id.clone(),
        alarm_name: incident.alarm_name.clone(),
        alarm_state: None,
        resources,
        tags: incident.tags.clone(),
        account: incident.account.clone(),
        region: incident.region.clone(),
        observed_at: incident.signals.first_seen,
        count: incident.signals.count,
        dedupe_key: incident.dedupe_key.clone(),
        raw: Arc::from(""),
    }
}

/// A step's parameters for the record.
fn params_json(params: &Params) -> Value {
    let mut out = Map::new();
    for (name, v) in params.iter() {
        let v = match v {
            ParamValue::Bool(b) => json!(b),
            ParamValue::String(s) => json!(s),
            ParamValue::Duration(d) => json!(d.to_string()),
            ParamValue::StringMap(m) => json!(m),
            ParamValue::SsmParameters(m) => {
                let m: BTreeMap<&String, Vec<&str>> = m
                    .iter()
                    .map(|(k, ts)| (k, ts.iter().map(|t| t.as_str()).collect()))
                    .collect();
                json!(m)
            }
        };
        out.insert(name.to_owned(), v);
    }
    Value::Object(out)
}

fn lease_of(a: &ActionRecord) -> Option<DateTime<Utc>> {
    a.evidence["lease_until"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn describe(a: &ActionRecord) -> String {
    match &a.target {
        Some(t) => format!("{} on {t}", a.kind),
        None => a.kind.clone(),
    }
}

fn is_mutating(kind: &str) -> bool {
    firebreak_shared::catalog::action(kind).is_some_and(|s| s.mutating)
}

impl Remediate {
    pub fn new(
        playbooks: PlaybookSet,
        store: Store,
        bus: Bus,
        clients: Clients,
        switch: DryRunSwitch,
    ) -> Remediate {
        Remediate {
            playbooks,
            store,
            bus,
            clients,
            switch,
            timing: Timing::default(),
        }
    }

    /// The same stage pacing itself differently (tests poll and back off in milliseconds).
    pub fn with_timing(mut self, timing: Timing) -> Remediate {
        self.timing = timing;
        self
    }

    pub fn playbooks(&self) -> &PlaybookSet {
        &self.playbooks
    }

    /// Handles one lifecycle event as EventBridge delivers it. `deadline` is the invocation's
    /// (`LambdaEvent.context.deadline`): waits and retries stop short of it. An event this
    /// stage cannot act on is answered with `refused`: a retry could never help.
    pub async fn handle(
        &self,
        event: &[u8],
        now: DateTime<Utc>,
        deadline: DateTime<Utc>,
    ) -> Result<Value, Error> {
        let event = match lifecycle::parse(event) {
            Ok(e) if e.kind == Kind::IncidentEnriched => e,
            Ok(e) => {
                return Ok(refuse(format!(
                    "remediate acts on {}, not {}",
                    Kind::IncidentEnriched,
                    e.kind
                )));
            }
            Err(e) => return Ok(refuse(e.to_string())),
        };
        let budget = Budget::new(deadline, self.timing);
        self.run(&event.detail.incident_id, now, budget).await
    }

    /// Records `by`'s approval of the steps an `approve` playbook holds (their first
    /// acknowledgement too, if nobody acknowledged yet), then runs them. Refused, with the
    /// reason, when the incident is unknown or resolved, or nothing awaits approval.
    pub async fn approve(
        &self,
        incident_id: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Value, Error> {
        let Some(incident) = self.store.get(incident_id).await? else {
            return Ok(refuse(format!("no incident {incident_id}")));
        };
        if !incident.status.is_open() {
            return Ok(refuse(format!("incident {incident_id} is resolved")));
        }
        let playbook = incident
            .playbook
            .as_deref()
            .and_then(|n| self.playbooks.get(n));
        if playbook.is_none_or(|p| p.guardrails.mode != Mode::Approve) {
            return Ok(refuse(format!(
                "incident {incident_id}'s playbook does not hold steps for approval"
            )));
        }
        if !incident
            .timeline
            .iter()
            .any(|e| e.event == APPROVAL_REQUESTED)
        {
            return Ok(refuse(format!(
                "no approval was requested for {incident_id} yet; its steps have not reached \
                 one that changes resources"
            )));
        }
        self.store
            .update(incident_id, |i| {
                if i.timeline.iter().any(|e| e.event == APPROVED) {
                    return Change::Keep(());
                }
                i.note(
                    now,
                    by,
                    APPROVED,
                    "ok",
                    Some("approved the steps held for approval".to_owned()),
                );
                // A person approving has seen the incident: that is an acknowledgement.
                if let Err(e) = i.acknowledge(by, now, Some("approved remediation".to_owned())) {
                    tracing::warn!(error = %e, "approval not counted as an acknowledgement");
                }
                Change::Write(())
            })
            .await?;
        let budget = Budget::new(
            Utc::now() + chrono::Duration::from_std(APPROVAL_BUDGET).unwrap_or_default(),
            self.timing,
        );
        let mut out = self.run(incident_id, now, budget).await?;
        out["approved_by"] = json!(by);
        Ok(out)
    }

    /// Puts every instance this incident isolated back into the security groups recorded
    /// before the isolation. Termination and stop protection stay on and the instance stays
    /// out of its Auto Scaling group: those are for a person to undo once the investigation
    /// is over. Works on resolved incidents too (the investigation usually outlasts them).
    pub async fn rollback(
        &self,
        incident_id: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Value, Error> {
        let Some(incident) = self.store.get(incident_id).await? else {
            return Ok(refuse(format!("no incident {incident_id}")));
        };
        let isolations: Vec<ActionRecord> = incident
            .actions
            .iter()
            .filter(|a| a.kind == "ec2.isolate" && a.outcome == "succeeded")
            .cloned()
            .collect();
        if isolations.is_empty() {
            return Ok(refuse(format!(
                "incident {incident_id} has no isolation to roll back"
            )));
        }
        let budget = Budget::new(
            Utc::now() + chrono::Duration::from_std(APPROVAL_BUDGET).unwrap_or_default(),
            self.timing,
        );
        let signal = signal_of(&incident);
        let mut results = Vec::new();
        for isolation in &isolations {
            let Some(target) = isolation.target.as_deref() else {
                continue;
            };
            let rid = format!("{}/rollback", isolation.id);
            let record = match self
                .claim(
                    incident_id,
                    &rid,
                    "ec2.isolate.rollback",
                    Some(target),
                    now,
                    &budget,
                )
                .await?
            {
                Claim::Held => {
                    return Err(Error::InFlight {
                        incident: incident_id.to_owned(),
                        step: rid,
                    });
                }
                Claim::Done(a) => {
                    results.push(json!({"target": target, "outcome": a.outcome, "already": true}));
                    continue;
                }
                Claim::Ours(a) => a,
            };
            let ctx = Ctx {
                clients: &self.clients,
                budget: &budget,
                incident: &incident,
                signal: &signal,
                playbook: incident.playbook.as_deref().unwrap_or("-"),
                record_id: &rid,
                started_at: record.started_at,
                evidence: &record.evidence,
                checkpoint: Checkpoint {
                    store: &self.store,
                    incident: incident_id,
                    record: &rid,
                },
            };
            let result = match actions::ec2::restore(&ctx, target, &isolation.evidence).await {
                Ok(mut ev) => {
                    let wanted: Vec<String> = ev["restored_groups"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|g| g.as_str().map(str::to_owned))
                        .collect();
                    match actions::ec2::observe(&ctx, target).await {
                        Ok(seen) if seen.groups == wanted => {
                            ev.insert("verification".into(), json!({"groups": seen.groups}));
                            Ok(ev)
                        }
                        Ok(seen) => Err(StepError::Failed(format!(
                            "verification failed: {target} has groups {:?}, not {wanted:?}",
                            seen.groups
                        ))),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            let (outcome, evidence) = match result {
                Ok(ev) => ("succeeded", ev),
                Err(StepError::Failed(why)) => {
                    let mut ev = Evidence::new();
                    ev.insert("error".into(), json!(why));
                    ("failed", ev)
                }
                Err(StepError::Retry(e)) => {
                    self.release(incident_id, &rid).await;
                    return Err(e);
                }
            };
            self.finish_record(incident_id, &rid, outcome, evidence.clone(), now, by)
                .await?;
            results.push(json!({"target": target, "outcome": outcome, "evidence": evidence}));
        }
        let now_done = results
            .iter()
            .filter(|r| r["already"].is_null() && r["outcome"] == "succeeded")
            .count();
        if now_done > 0 {
            self.store
                .update(incident_id, |i| {
                    i.note(
                        now,
                        by,
                        "rolled_back",
                        "ok",
                        Some(format!(
                            "isolation rolled back on {now_done} instance(s); termination and \
                             stop protection stay on"
                        )),
                    );
                    Change::Write(())
                })
                .await?;
        }
        Ok(json!({"incident": incident_id, "rolled_back": results}))
    }

    async fn run(&self, id: &str, now: DateTime<Utc>, budget: Budget) -> Result<Value, Error> {
        let Some(incident) = self.store.get(id).await? else {
            return Ok(refuse(format!("no incident {id} in the store")));
        };
        if !incident.status.is_open() {
            return Ok(
                json!({"incident": id, "outcome": "skipped", "reason": "the incident is resolved"}),
            );
        }
        let Some(playbook) = incident
            .playbook
            .as_deref()
            .and_then(|n| self.playbooks.get(n))
        else {
            // The default policy's notify-only incidents have no steps.
            return Ok(
                json!({"incident": id, "outcome": "nothing_to_do", "reason": "no playbook"}),
            );
        };
        let signal = signal_of(&incident);
        let switch = if playbook.is_mutating() {
            self.switch.state().await
        } else {
            State {
                dry_run: false,
                why: "the playbook changes nothing".to_owned(),
            }
        };
        let planned = {
            let decision = Decision {
                signal: &signal,
                playbook: Some(playbook),
                action: Action::Open,
                severity: incident.severity,
                dedupe_key: incident.dedupe_key.clone(),
                outcome: Outcome::Incident,
                reason: String::new(),
            };
            plan(&decision, switch.dry_run)
        };
        let steps: Vec<(usize, &Step)> = playbook
            .remediate
            .iter()
            .enumerate()
            .filter(|(_, s)| s.applies_to(&signal))
            .collect();
        let run = Run {
            id,
            playbook,
            signal: signal.clone(),
            budget,
            now,
            switch,
            mode: planned.mode,
            approved: incident.timeline.iter().any(|e| e.event == APPROVED),
            protected_by_event: planned.escalate.clone(),
        };
        let mut results = Vec::new();
        for ((n, step), p) in steps.into_iter().zip(&planned.steps) {
            match self.step(&run, n, step, p).await? {
                Flow::Next(v) => results.push(v),
                Flow::Stop(v) => {
                    let outcome = v["outcome"].clone();
                    results.push(v);
                    tracing::info!(incident = id, outcome = %outcome, "remediation stopped");
                    return Ok(json!({
                        "incident": id,
                        "playbook": playbook.name,
                        "mode": run.mode.as_str(),
                        "outcome": outcome,
                        "steps": results,
                    }));
                }
            }
        }
        let tail = self.finish(&run).await?;
        tracing::info!(incident = id, outcome = %tail, "remediation finished");
        Ok(json!({
            "incident": id,
            "playbook": playbook.name,
            "mode": run.mode.as_str(),
            "dry_run": run.switch.dry_run.then_some(&run.switch.why),
            "outcome": tail,
            "steps": results,
        }))
    }

    async fn step(
        &self,
        run: &Run<'_>,
        n: usize,
        step: &Step,
        planned: &PlannedStep,
    ) -> Result<Flow, Error> {
        let spec = step.action;
        match &planned.outcome {
            StepOutcome::Skipped(why) => {
                let protected = spec.mutating && run.protected_by_event.as_deref() == Some(why);
                let rid = record_id(n, spec.name, None);
                self.record_once(
                    run,
                    &rid,
                    spec.name,
                    None,
                    "skipped",
                    json!({"reason": why}),
                )
                .await?;
                if protected {
                    self.escalate(run, EscalationTrigger::ProtectedResource, why)
                        .await?;
                    return Ok(Flow::Stop(
                        json!({"step": rid, "outcome": "protected_resource", "reason": why}),
                    ));
                }
                Ok(Flow::Next(
                    json!({"step": rid, "outcome": "skipped", "reason": why}),
                ))
            }
            StepOutcome::Planned if !spec.mutating => self.talk(run, n, step).await,
            StepOutcome::DryRun => {
                let targets: Vec<Option<&str>> = if planned.targets.is_empty() {
                    vec![None]
                } else {
                    planned.targets.iter().map(|t| Some(t.as_str())).collect()
                };
                let why = if run.switch.dry_run {
                    format!("global dry-run switch: {}", run.switch.why)
                } else {
                    format!("playbook {} is in dry-run mode", run.playbook.name)
                };
                for target in &targets {
                    let rid = record_id(n, spec.name, *target);
                    self.record_once(
                        run,
                        &rid,
                        spec.name,
                        *target,
                        "dry_run",
                        json!({"would": spec.description, "with": params_json(&step.with), "why": why}),
                    )
                    .await?;
                }
                Ok(Flow::Next(
                    json!({"step": record_id(n, spec.name, None), "outcome": "dry_run", "targets": planned.targets}),
                ))
            }
            StepOutcome::NeedsApproval if !run.approved => self.request_approval(run, n).await,
            StepOutcome::NeedsApproval | StepOutcome::Planned => {
                let targets: Vec<Option<&str>> = if spec.targets.is_empty() {
                    vec![None]
                } else {
                    planned.targets.iter().map(|t| Some(t.as_str())).collect()
                };
                let mut done = Vec::new();
                for target in targets {
                    match self.live(run, n, step, target).await? {
                        Flow::Next(v) => done.push(v),
                        Flow::Stop(v) => return Ok(Flow::Stop(v)),
                    }
                }
                Ok(Flow::Next(
                    json!({"step": n, "action": spec.name, "targets": done}),
                ))
            }
        }
    }

    /// `notify` and `escalate`: they only talk to people, and run in every mode.
    async fn talk(&self, run: &Run<'_>, n: usize, step: &Step) -> Result<Flow, Error> {
        let spec = step.action;
        let rid = record_id(n, spec.name, None);
        let (kind, reason) = if spec.name == "escalate" {
            let reason = step
                .with
                .string("reason")
                .unwrap_or("the playbook escalates this incident")
                .to_owned();
            (Kind::IncidentEscalated, reason)
        } else {
            let incident = self.current(run.id).await?;
            let mut message = step
                .with
                .string("message")
                .map_or_else(|| summary(&incident), str::to_owned);
            if run.mode == Mode::DryRun {
                message = format!(
                    "Dry run, nothing was changed ({}). {} The playbook's message: {message}",
                    if run.switch.dry_run {
                        run.switch.why.as_str()
                    } else {
                        "the playbook's mode"
                    },
                    summary(&incident)
                );
            }
            (Kind::RemediationSucceeded, message)
        };
        self.record_once(
            run,
            &rid,
            spec.name,
            None,
            "succeeded",
            json!({"message": reason}),
        )
        .await?;
        self.emit(run.id, kind, Some(&rid), Some(reason), run.now, None)
            .await?;
        Ok(Flow::Next(json!({"step": rid, "outcome": "succeeded"})))
    }

    async fn request_approval(&self, run: &Run<'_>, n: usize) -> Result<Flow, Error> {
        let held: Vec<String> = run
            .playbook
            .remediate
            .iter()
            .skip(n)
            .filter(|s| s.action.mutating && s.applies_to(&run.signal))
            .map(|s| s.action.name.to_owned())
            .collect();
        let reason = format!(
            "{} wait(s) for approval: {}. Approve with `firebreak incidents approve {}`.",
            held.len(),
            held.join(", "),
            run.id
        );
        self.store
            .update(run.id, |i| {
                if i.timeline.iter().any(|e| e.event == APPROVAL_REQUESTED) {
                    return Change::Keep(());
                }
                i.note(
                    run.now,
                    ACTOR,
                    APPROVAL_REQUESTED,
                    "ok",
                    Some(reason.clone()),
                );
                Change::Write(())
            })
            .await?;
        self.emit(
            run.id,
            Kind::ApprovalRequested,
            None,
            Some(reason.clone()),
            run.now,
            None,
        )
        .await?;
        Ok(Flow::Stop(
            json!({"outcome": "awaiting_approval", "held": held}),
        ))
    }

    /// One mutating step on one target, live.
    async fn live(
        &self,
        run: &Run<'_>,
        n: usize,
        step: &Step,
        target: Option<&str>,
    ) -> Result<Flow, Error> {
        let spec = step.action;
        let rid = record_id(n, spec.name, target);
        let incident = self.current(run.id).await?;
        if let Some(existing) = incident.actions.iter().find(|a| a.id == rid) {
            match existing.outcome.as_str() {
                "started" => {} // claimed: the claim below decides whether it is ours to resume
                "failed" => {
                    // A retry after a failure: the failure stands; make sure it was told.
                    let why = existing.evidence["error"]
                        .as_str()
                        .unwrap_or("failed")
                        .to_owned();
                    self.failed(run, &rid, existing, &why).await?;
                    return Ok(Flow::Stop(
                        json!({"step": rid, "outcome": "failed", "reason": why}),
                    ));
                }
                "skipped" => {
                    let why = existing.evidence["reason"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned();
                    if let Some(trigger) = trigger_of(&why) {
                        self.escalate(run, trigger, &why).await?;
                    }
                    return Ok(Flow::Stop(
                        json!({"step": rid, "outcome": "skipped", "reason": why}),
                    ));
                }
                other => return Ok(Flow::Next(json!({"step": rid, "outcome": other}))),
            }
        }

        // Guardrail: the protected tag, as the resource's own service reports it.
        if let Some(flow) = self.protection(run, step, &rid, target).await? {
            return Ok(flow);
        }
        // Guardrail: the blast radius, counted once per incident.
        if let Some(flow) = self.quota(run, &incident, &rid, spec.name, target).await? {
            return Ok(flow);
        }

        let record = match self
            .claim(run.id, &rid, spec.name, target, run.now, &run.budget)
            .await?
        {
            Claim::Held => {
                return Err(Error::InFlight {
                    incident: run.id.to_owned(),
                    step: rid,
                });
            }
            Claim::Done(a) => return Ok(Flow::Next(json!({"step": rid, "outcome": a.outcome}))),
            Claim::Ours(a) => a,
        };
        self.emit(
            run.id,
            Kind::RemediationStarted,
            Some(&rid),
            Some(format!("{} starting", describe(&record))),
            run.now,
            None,
        )
        .await?;

        let ctx = Ctx {
            clients: &self.clients,
            budget: &run.budget,
            incident: &incident,
            signal: &run.signal,
            playbook: &run.playbook.name,
            record_id: &rid,
            started_at: record.started_at,
            evidence: &record.evidence,
            checkpoint: Checkpoint {
                store: &self.store,
                incident: run.id,
                record: &rid,
            },
        };
        let result = match execute(&ctx, step, target).await {
            Ok(mut ev) => match verify::verify(&ctx, step, target, &ev).await {
                Ok(seen) => {
                    ev.insert("verification".into(), seen);
                    Ok(ev)
                }
                Err(e) => Err((e, ev)),
            },
            Err(e) => Err((e, Evidence::new())),
        };
        tracing::info!(
            incident = run.id,
            step = %rid,
            ok = result.is_ok(),
            "step ran"
        );
        match result {
            Ok(ev) => {
                let rec = self
                    .finish_record(run.id, &rid, "succeeded", ev, run.now, ACTOR)
                    .await?;
                self.emit(
                    run.id,
                    Kind::RemediationSucceeded,
                    Some(&rid),
                    Some(format!("{} succeeded and was verified", describe(&rec))),
                    run.now,
                    None,
                )
                .await?;
                Ok(Flow::Next(json!({"step": rid, "outcome": "succeeded"})))
            }
            Err((StepError::Failed(why), mut ev)) => {
                ev.insert("error".into(), json!(why));
                let rec = self
                    .finish_record(run.id, &rid, "failed", ev, run.now, ACTOR)
                    .await?;
                self.failed(run, &rid, &rec, &why).await?;
                Ok(Flow::Stop(
                    json!({"step": rid, "outcome": "failed", "reason": why}),
                ))
            }
            Err((StepError::Retry(e), _)) => {
                // Let the platform's retry take the step over at once rather than wait out
                // the lease.
                self.release(run.id, &rid).await;
                Err(e)
            }
        }
    }

    /// Stops the step when its target (or, for an automation, a resource it names) carries
    /// the protected tag.
    async fn protection(
        &self,
        run: &Run<'_>,
        step: &Step,
        rid: &str,
        target: Option<&str>,
    ) -> Result<Option<Flow>, Error> {
        let spec = step.action;
        let mut checks: Vec<(ResourceKind, String)> = Vec::new();
        match target {
            Some(t) => {
                let kind = spec.targets.first().copied().unwrap_or(ResourceKind::Other);
                checks.push((kind, t.to_owned()));
            }
            None => {
                // An automation acts on whatever its parameters name: check the incident's
                // resources that appear among them.
                let rendered = actions::ssm::render(
                    step.with.ssm_parameters("parameters"),
                    &run.signal,
                    &run.playbook.name,
                    false,
                )
                .unwrap_or_default();
                let values: Vec<&String> = rendered.values().flatten().collect();
                for r in &run.signal.resources {
                    let checkable = matches!(
                        r.kind,
                        ResourceKind::Ec2Instance
                            | ResourceKind::S3Bucket
                            | ResourceKind::AccessKey
                    );
                    if checkable && values.iter().any(|v| v.contains(r.id.as_str())) {
                        checks.push((r.kind, r.id.clone()));
                    }
                }
            }
        }
        let tag = &run.playbook.guardrails.protected_tag;
        for (kind, id) in checks {
            let found = match guardrails::tags(&self.clients, &run.budget, kind, &id).await {
                Ok(tags) => guardrails::protecting(tag, &tags),
                Err(TagsError::Aws(e)) if e.transient => return Err(Error::Aws(e)),
                Err(e) => {
                    // Never act on what we cannot see.
                    let why = format!("could not read the tags of {id} to check protection: {e}");
                    let rec = self
                        .record_failed_without_claim(run, rid, spec.name, target, &why)
                        .await?;
                    self.failed(run, rid, &rec, &why).await?;
                    return Ok(Some(Flow::Stop(
                        json!({"step": rid, "outcome": "failed", "reason": why}),
                    )));
                }
            };
            if let Some(found) = found {
                let why = format!(
                    "protected_resource: {id} carries {found}; nothing was changed, escalating"
                );
                self.record_once(
                    run,
                    rid,
                    spec.name,
                    target,
                    "skipped",
                    json!({"reason": why}),
                )
                .await?;
                self.escalate(run, EscalationTrigger::ProtectedResource, &why)
                    .await?;
                return Ok(Some(Flow::Stop(
                    json!({"step": rid, "outcome": "protected_resource", "reason": why}),
                )));
            }
        }
        Ok(None)
    }

    async fn quota(
        &self,
        run: &Run<'_>,
        incident: &Incident,
        rid: &str,
        action: &str,
        target: Option<&str>,
    ) -> Result<Option<Flow>, Error> {
        if incident.timeline.iter().any(|e| e.event == QUOTA_COUNTED) {
            return Ok(None);
        }
        let limit = run.playbook.guardrails.rate_limit;
        let account = incident.account.as_deref().unwrap_or("unknown");
        let quota = guardrails::claim(
            &self.clients.dynamodb,
            self.store.table(),
            &run.budget,
            &run.playbook.name,
            account,
            run.id,
            &limit,
            run.now,
        )
        .await
        .map_err(Error::Aws)?;
        match quota {
            Quota::Counted { window, .. } | Quota::AlreadyCounted { window } => {
                let detail = format!(
                    "counted against {}'s limit of {} per {} in account {account}, window {window}",
                    run.playbook.name, limit.max, limit.per
                );
                self.store
                    .update(run.id, |i| {
                        if i.timeline.iter().any(|e| e.event == QUOTA_COUNTED) {
                            return Change::Keep(());
                        }
                        i.note(run.now, ACTOR, QUOTA_COUNTED, "ok", Some(detail.clone()));
                        Change::Write(())
                    })
                    .await?;
                Ok(None)
            }
            Quota::Limited { count, max, window } => {
                let why = format!(
                    "rate_limited: {count} of {max} remediations by {} in account {account} since \
                     {window}; nothing was changed, escalating",
                    run.playbook.name
                );
                self.record_once(run, rid, action, target, "skipped", json!({"reason": why}))
                    .await?;
                self.escalate(run, EscalationTrigger::RateLimited, &why)
                    .await?;
                Ok(Some(Flow::Stop(
                    json!({"step": rid, "outcome": "rate_limited", "reason": why}),
                )))
            }
        }
    }

    /// A failed step: `Remediation Failed` of that step and the `remediation_failed`
    /// escalation, each once.
    async fn failed(
        &self,
        run: &Run<'_>,
        rid: &str,
        rec: &ActionRecord,
        why: &str,
    ) -> Result<(), Error> {
        let reason = format!("{} failed: {why}", describe(rec));
        self.emit(
            run.id,
            Kind::RemediationFailed,
            Some(rid),
            Some(reason.clone()),
            run.now,
            None,
        )
        .await?;
        self.escalate(
            run,
            EscalationTrigger::RemediationFailed,
            &format!("remediation_failed: {reason}"),
        )
        .await
    }

    /// Notes the escalation once per trigger, and emits `Incident Escalated` (qualified by
    /// the trigger) when the playbook escalates on it.
    async fn escalate(
        &self,
        run: &Run<'_>,
        trigger: EscalationTrigger,
        reason: &str,
    ) -> Result<(), Error> {
        let prefix = trigger.as_str();
        let reason = if reason.starts_with(prefix) {
            reason.to_owned()
        } else {
            format!("{prefix}: {reason}")
        };
        self.store
            .update(run.id, |i| {
                let noted = i.timeline.iter().any(|e| {
                    e.actor == ACTOR
                        && e.event == ESCALATED
                        && e.detail.as_deref().is_some_and(|d| d.starts_with(prefix))
                });
                if noted {
                    return Change::Keep(());
                }
                i.note(run.now, ACTOR, ESCALATED, "ok", Some(reason.clone()));
                Change::Write(())
            })
            .await?;
        if run.playbook.notify.escalation.escalates_on(trigger) {
            self.emit(
                run.id,
                Kind::IncidentEscalated,
                Some(prefix),
                Some(reason),
                run.now,
                None,
            )
            .await?;
        }
        Ok(())
    }

    /// After a complete walk: the acknowledgement and the resolution request, once each, when
    /// something was changed and verified.
    async fn finish(&self, run: &Run<'_>) -> Result<&'static str, Error> {
        let incident = self.current(run.id).await?;
        let changed = incident
            .actions
            .iter()
            .any(|a| a.outcome == "succeeded" && is_mutating(&a.kind));
        if !changed {
            return Ok(if run.mode == Mode::DryRun {
                "dry_run"
            } else {
                "completed"
            });
        }
        let verified: Vec<String> = incident
            .actions
            .iter()
            .filter(|a| a.outcome == "succeeded" && is_mutating(&a.kind))
            .map(describe)
            .collect();
        let detail = format!("remediation verified: {}", verified.join("; "));
        self.store
            .update(run.id, |i| {
                let acked = i
                    .timeline
                    .iter()
                    .any(|e| e.actor == ACTOR && e.event == "acknowledged");
                if acked || !i.status.is_open() {
                    return Change::Keep(());
                }
                match i.acknowledge(ACTOR, run.now, Some(detail.clone())) {
                    Ok(()) => Change::Write(()),
                    Err(_) => Change::Keep(()),
                }
            })
            .await?;
        if run.playbook.close.on == CloseOn::VerifiedRemediation {
            self.emit(
                run.id,
                Kind::ResolutionRequested,
                None,
                Some(detail),
                run.now,
                Some(ACTOR),
            )
            .await?;
            return Ok("resolution_requested");
        }
        Ok("remediated")
    }

    async fn current(&self, id: &str) -> Result<Incident, Error> {
        self.store.get(id).await?.ok_or_else(|| {
            Error::Store(firebreak_shared::store::StoreError::Corrupt {
                id: id.to_owned(),
                reason: "the incident vanished during remediation".to_owned(),
            })
        })
    }

    /// Emits an event about the incident as it is now, once.
    async fn emit(
        &self,
        id: &str,
        kind: Kind,
        qualifier: Option<&str>,
        reason: Option<String>,
        now: DateTime<Utc>,
        actor: Option<&str>,
    ) -> Result<(), Error> {
        let incident = self.current(id).await?;
        let mut event = Event::about(kind, &incident, qualifier, now, reason);
        if let Some(actor) = actor {
            event = event.with_actor(actor);
        }
        self.bus.emit_once(&self.store, &event).await?;
        Ok(())
    }

    /// Claims a step: records it `started`, with a lease until this invocation's deadline,
    /// unless it is done or another live invocation holds it.
    async fn claim(
        &self,
        id: &str,
        rid: &str,
        kind: &str,
        target: Option<&str>,
        now: DateTime<Utc>,
        budget: &Budget,
    ) -> Result<Claim, Error> {
        let lease = budget.deadline().to_rfc3339();
        let claimed = self
            .store
            .update(id, |i| match i.actions.iter_mut().find(|a| a.id == rid) {
                None => {
                    let record = ActionRecord {
                        id: rid.to_owned(),
                        kind: kind.to_owned(),
                        target: target.map(str::to_owned),
                        outcome: "started".to_owned(),
                        started_at: now,
                        finished_at: None,
                        evidence: json!({"lease_until": lease}),
                    };
                    i.actions.push(record.clone());
                    i.note(
                        now,
                        ACTOR,
                        "remediation_started",
                        "started",
                        Some(describe(&record)),
                    );
                    Change::Write(Claim::Ours(record))
                }
                Some(a) if a.outcome != "started" => Change::Keep(Claim::Done(a.clone())),
                Some(a) if lease_of(a).is_some_and(|l| l > Utc::now()) => Change::Keep(Claim::Held),
                Some(a) => {
                    // Abandoned (its invocation is past its deadline): resume it.
                    if let Some(obj) = a.evidence.as_object_mut() {
                        obj.insert("lease_until".into(), json!(lease));
                    } else {
                        a.evidence = json!({"lease_until": lease});
                    }
                    let record = a.clone();
                    i.note(
                        now,
                        ACTOR,
                        "remediation_resumed",
                        "started",
                        Some(describe(&record)),
                    );
                    Change::Write(Claim::Ours(record))
                }
            })
            .await?;
        claimed.map(|(_, c)| c).ok_or_else(|| {
            Error::Store(firebreak_shared::store::StoreError::Corrupt {
                id: id.to_owned(),
                reason: "the incident vanished during remediation".to_owned(),
            })
        })
    }

    /// Gives up the lease on a step this invocation cannot finish (best effort: it expires at
    /// the deadline anyway).
    async fn release(&self, id: &str, rid: &str) {
        let released = self
            .store
            .update(id, |i| {
                let Some(a) = i
                    .actions
                    .iter_mut()
                    .find(|a| a.id == rid && a.outcome == "started")
                else {
                    return Change::Keep(());
                };
                if let Some(obj) = a.evidence.as_object_mut() {
                    obj.remove("lease_until");
                }
                Change::Write(())
            })
            .await;
        if let Err(e) = released {
            tracing::warn!(error = %e, step = rid, "lease not released; it expires on its own");
        }
    }

    /// Writes a claimed step's outcome and evidence (merged into what the record holds).
    async fn finish_record(
        &self,
        id: &str,
        rid: &str,
        outcome: &str,
        evidence: Evidence,
        now: DateTime<Utc>,
        actor: &str,
    ) -> Result<ActionRecord, Error> {
        let updated = self
            .store
            .update(id, |i| {
                let Some(a) = i.actions.iter_mut().find(|a| a.id == rid) else {
                    return Change::Keep(None);
                };
                if a.outcome != "started" {
                    return Change::Keep(Some(a.clone()));
                }
                let mut merged = a.evidence.as_object().cloned().unwrap_or_default();
                merged.remove("lease_until");
                merged.extend(evidence.clone());
                a.evidence = Value::Object(merged);
                a.outcome = outcome.to_owned();
                a.finished_at = Some(now);
                let line = describe(a);
                let record = a.clone();
                let detail = match evidence.get("error").and_then(Value::as_str) {
                    Some(e) => format!("{line}: {e}"),
                    None => line,
                };
                i.note(now, actor, "remediation_step", outcome, Some(detail));
                Change::Write(Some(record))
            })
            .await?;
        updated.and_then(|(_, r)| r).ok_or_else(|| {
            Error::Store(firebreak_shared::store::StoreError::Corrupt {
                id: id.to_owned(),
                reason: format!("step {rid} vanished from the record"),
            })
        })
    }

    /// Records a step that never ran (skipped, dry run, or a talk step), once.
    async fn record_once(
        &self,
        run: &Run<'_>,
        rid: &str,
        kind: &str,
        target: Option<&str>,
        outcome: &str,
        evidence: Value,
    ) -> Result<(), Error> {
        self.store
            .update(run.id, |i| {
                if i.actions.iter().any(|a| a.id == rid) {
                    return Change::Keep(());
                }
                let record = ActionRecord {
                    id: rid.to_owned(),
                    kind: kind.to_owned(),
                    target: target.map(str::to_owned),
                    outcome: outcome.to_owned(),
                    started_at: run.now,
                    finished_at: Some(run.now),
                    evidence: evidence.clone(),
                };
                let detail = match evidence["reason"].as_str() {
                    Some(why) => format!("{}: {why}", describe(&record)),
                    None => describe(&record),
                };
                i.actions.push(record);
                i.note(run.now, ACTOR, "remediation_step", outcome, Some(detail));
                Change::Write(())
            })
            .await?;
        Ok(())
    }

    /// Records a step that failed before it could be claimed (its guardrail could not be
    /// checked), once, and returns the record as it stands.
    async fn record_failed_without_claim(
        &self,
        run: &Run<'_>,
        rid: &str,
        kind: &str,
        target: Option<&str>,
        why: &str,
    ) -> Result<ActionRecord, Error> {
        self.record_once(run, rid, kind, target, "failed", json!({"error": why}))
            .await?;
        let incident = self.current(run.id).await?;
        // A step resumed after a crash is already recorded `started`: that record fails.
        if incident
            .actions
            .iter()
            .any(|a| a.id == rid && a.outcome == "started")
        {
            let mut ev = Evidence::new();
            ev.insert("error".into(), json!(why));
            return self
                .finish_record(run.id, rid, "failed", ev, run.now, ACTOR)
                .await;
        }
        incident
            .actions
            .iter()
            .find(|a| a.id == rid)
            .cloned()
            .ok_or_else(|| {
                Error::Store(firebreak_shared::store::StoreError::Corrupt {
                    id: run.id.to_owned(),
                    reason: format!("step {rid} vanished from the record"),
                })
            })
    }
}

/// The trigger a recorded skip escalated with.
fn trigger_of(reason: &str) -> Option<EscalationTrigger> {
    EscalationTrigger::ALL
        .into_iter()
        .find(|t| reason.starts_with(t.as_str()))
}

/// "What ran so far", for a `notify` step without a message.
fn summary(incident: &Incident) -> String {
    let lines: Vec<String> = incident
        .actions
        .iter()
        .filter(|a| is_mutating(&a.kind))
        .map(|a| format!("{}: {}", describe(a), a.outcome))
        .collect();
    if lines.is_empty() {
        "No step has changed anything yet.".to_owned()
    } else {
        format!("Steps so far: {}.", lines.join("; "))
    }
}

/// Runs one catalog action.
async fn execute(ctx: &Ctx<'_>, step: &Step, target: Option<&str>) -> Result<Evidence, StepError> {
    let with = &step.with;
    let need = |t: Option<&str>| {
        t.map(str::to_owned)
            .ok_or_else(|| StepError::Failed(format!("{} needs a target", step.action.name)))
    };
    match step.action.name {
        "ec2.snapshot" => {
            actions::ec2::snapshot(ctx, &need(target)?, with.bool("copy_tags").unwrap_or(false))
                .await
        }
        "ec2.isolate" => {
            actions::ec2::isolate(
                ctx,
                &need(target)?,
                with.bool("detach_from_asg").unwrap_or(false),
                with.bool("protect").unwrap_or(false),
            )
            .await
        }
        "ec2.tag" => {
            let tags = with.string_map("tags").cloned().unwrap_or_default();
            actions::ec2::add_tags(ctx, &need(target)?, &tags).await
        }
        "ec2.stop" => actions::ec2::stop(ctx, &need(target)?).await,
        "ec2.reboot" => actions::ec2::reboot(ctx, &need(target)?).await,
        "ssm.automation" => {
            let document = with.string("document").unwrap_or_default();
            actions::ssm::automation(
                ctx,
                document,
                with.ssm_parameters("parameters"),
                with.duration("timeout").map(|d| d.as_std()),
            )
            .await
        }
        "ssm.run_command" => {
            let document = with.string("document").unwrap_or_default();
            actions::ssm::run_command(
                ctx,
                &need(target)?,
                document,
                with.ssm_parameters("parameters"),
            )
            .await
        }
        "iam.deactivate_access_key" => actions::iam::deactivate(ctx, &need(target)?).await,
        "s3.block_public_access" => actions::s3::block(ctx, &need(target)?).await,
        other => Err(StepError::Failed(format!(
            "{other} is not an action this stage runs"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_shared::incident::{Enrichment, EnrichmentResult, incident_id};
    use firebreak_shared::playbook::Template;
    use firebreak_shared::triage::decide;

    fn incident() -> Incident {
        let event = include_bytes!(
            "../../../tests/fixtures/events/guardduty/custodian-eventbridge-backdoor-ec2-cc-activity-b-dns.json"
        );
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let signal = firebreak_shared::signal::parse(event, now)
            .expect("fixture parses")
            .remove(0);
        let playbooks = PlaybookSet::starter();
        let decision = decide(&signal, &playbooks);
        Incident::open(&decision, incident_id(&signal, &decision.dedupe_key), now)
    }

    #[test]
    fn ssm_parameters_render_from_the_signal_and_what_enrichment_found() {
        let mut i = incident();
        i.enrichment = Some(Enrichment {
            at: i.opened_at,
            results: vec![EnrichmentResult {
                enricher: "ec2.instance".to_owned(),
                target: Some("i-99999999".to_owned()),
                outcome: "ok".to_owned(),
                data: json!({
                    "volumes": [{"device": "/dev/xvda", "volume_id": "vol-0123456789abcdef0"}],
                    "security_groups": [{"id": "sg-12345678", "name": "web"}],
                }),
                error: None,
            }],
        });
        let signal = signal_of(&i);
        let params: BTreeMap<String, Vec<Template>> = [
            ("InstanceId", "{resource.ec2_instance}"),
            ("VolumeId", "{resource.ec2_volume}"),
            ("GroupId", "{resource.security_group}"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), vec![Template::parse(v).expect("template")]))
        .collect();
        let out = actions::ssm::render(Some(&params), &signal, "pb", true);
        let out = match out {
            Ok(out) => out,
            Err(e) => panic!("renders: {e:?}"),
        };
        assert_eq!(out["InstanceId"], ["i-99999999"]);
        assert_eq!(out["VolumeId"], ["vol-0123456789abcdef0"]);
        assert_eq!(out["GroupId"], ["sg-12345678"]);
    }

    #[test]
    fn record_ids_are_stable_per_step_and_target() {
        assert_eq!(
            record_id(1, "ec2.isolate", Some("i-99999999")),
            "1/ec2.isolate/i-99999999"
        );
        assert_eq!(record_id(0, "notify", None), "0/notify/-");
        assert_eq!(
            trigger_of("rate_limited: 5 of 5"),
            Some(EscalationTrigger::RateLimited)
        );
        assert_eq!(trigger_of("anything else"), None);
    }
}
