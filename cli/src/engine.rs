//! The sandbox engine behind `firebreak demo` and `simulate`: the five real stages, in-process,
//! on a local AWS whose resources and routing come from template.yaml.
//!
//! An event goes onto moto's default bus and reaches whichever stand-in queues the template's
//! rules send it to; each function's queue is then handed to its stage, whose lifecycle events
//! go onto the lifecycle bus and are routed the same way, until every queue is empty. Nothing
//! is faked: a call moto cannot serve (CloudWatch, whose Rust client speaks RPC v2 CBOR;
//! CloudTrail LookupEvents) fails as it would against a broken endpoint, the stage records the
//! failure, and the engine says so in plain words.
//!
//! One gap in moto is bridged, visibly: its pattern matcher cannot look inside arrays of
//! objects, so Security Hub's `detail.findings[…]` filters never match there. For those events
//! the template's own pattern is evaluated by [`crate::pattern`] and the delivery is made and
//! reported as such.
//!
//! Real events name resources that do not exist in the sandbox. Each EC2 instance an event
//! names gets a stand-in (an instance with the event's tags, volumes, a VPC and a group), and
//! the event's ids are rewritten to the stand-in's before it is sent, so any real finding can
//! be replayed and remediation really changes the sandbox.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};

use aws_config::SdkConfig;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use firebreak_close::Close;
use firebreak_close::emf::MetricsSink;
use firebreak_create::Create;
use firebreak_enrich::Enrich;
use firebreak_notify::Notify;
use firebreak_remediate::{Clients, DryRunSwitch, Remediate};
use firebreak_shared::aws::AwsError;
use firebreak_shared::incident::{Entry, Incident, Status};
use firebreak_shared::lifecycle::{self, Bus};
use firebreak_shared::playbook::PlaybookSet;
use firebreak_shared::store::{Store, StoreError};

use crate::pattern;
use crate::sandbox::{LocalAws, SandboxError, Stack};
use crate::seed::{self, Host, HostSpec};
use crate::template::{Rule, RuleBus, Template};

/// The stages in the order their queues are served: upstream first, so one pass moves an
/// incident as far as it can go.
pub const FUNCTIONS: [&str; 5] = [
    "CreateFunction",
    "EnrichFunction",
    "RemediateFunction",
    "NotifyFunction",
    "CloseFunction",
];

/// Lambda retries a failed asynchronous invocation twice before its on-failure destination.
const ATTEMPTS: usize = 3;

/// A bound on routing passes for one input: a loop in the rules would otherwise never end.
const MAX_PASSES: usize = 50;

/// What moto cannot serve, in the words the output uses.
const CLOUDWATCH_GAP: &str = "the local AWS cannot serve CloudWatch: moto answers the Rust \
    client's RPC v2 CBOR protocol with 404, so alarm state, history and metrics are missing here";
const CLOUDTRAIL_GAP: &str = "the local AWS cannot serve CloudTrail LookupEvents, so recent \
    changes are missing here";

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}: not JSON: {1}")]
    NotJson(String, String),
    #[error("the template's pattern for {rule} cannot be evaluated: {error}")]
    Pattern { rule: String, error: String },
    #[error("routing did not settle after {MAX_PASSES} passes: a rule loop?")]
    Unsettled,
}

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub playbooks: PlaybookSet,
    pub template: Template,
    /// Turn the sandbox's dry-run switch on: remediation records what it would do.
    pub dry_run: bool,
}

/// One line of progress, as it happens.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub at: DateTime<Utc>,
    /// `route`, `seed`, a stage (`create` …), or `note`.
    pub who: String,
    pub text: String,
}

/// An invocation that failed on every attempt, kept as Lambda's on-failure destination would.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub function: String,
    pub error: String,
    pub attempts: usize,
    pub event: Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    pub mttd_s: Option<f64>,
    pub mtta_s: Option<f64>,
    pub mttr_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IncidentView {
    pub id: String,
    pub status: Status,
    pub severity: String,
    pub playbook: Option<String>,
    pub dedupe_key: String,
    pub title: String,
    pub signals: u64,
    pub timeline: Vec<Entry>,
    pub metrics: Metrics,
    #[serde(skip)]
    pub report: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionView {
    pub incident: String,
    pub kind: String,
    pub target: Option<String>,
    /// `succeeded` | `failed` | `skipped` | `dry_run`.
    pub outcome: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NotificationView {
    pub incident: String,
    /// `notifications` or `escalation`.
    pub topic: String,
    pub subject: String,
}

/// What a run did, as `simulate --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub incidents: Vec<IncidentView>,
    pub actions: Vec<ActionView>,
    pub notifications: Vec<NotificationView>,
    pub dead_letters: Vec<DeadLetter>,
    /// Inputs nothing was done with, and why.
    pub unrouted: Vec<Value>,
    /// What the local AWS could not do, said plainly.
    pub local_aws_gaps: Vec<String>,
}

type Progress = Box<dyn FnMut(&Line) + Send>;

/// The stack, the stages and the sandbox's resources.
pub struct Engine {
    sdk: SdkConfig,
    stack: Stack,
    store: Store,
    rules: Vec<Rule>,
    create: Create,
    enrich: Enrich,
    remediate: Remediate,
    notify: Notify,
    close: Close,
    ec2: aws_sdk_ec2::Client,
    events: aws_sdk_eventbridge::Client,
    /// Original id in an event → the sandbox's id.
    ids: BTreeMap<String, String>,
    hosts: BTreeMap<String, Host>,
    clock: DateTime<Utc>,
    incidents: Vec<String>,
    timeline_seen: BTreeMap<String, usize>,
    dead_letters: Vec<DeadLetter>,
    unrouted: Vec<Value>,
    gaps: BTreeSet<String>,
    progress: Option<Progress>,
    quiet: bool,
}

fn unique_prefix() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "sim{}n{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Engine {
    /// Builds the stack in `local` from the template and wires the five stages to it.
    pub async fn start(local: &LocalAws, options: Options) -> Result<Engine, EngineError> {
        let sdk = local.sdk_config().await;
        let prefix = unique_prefix();
        let template = options.template.with_stack_name(&prefix);
        let stack = Stack::create_from(&sdk, &prefix, &template).await?;
        let rules = template.rules().map_err(SandboxError::from)?;

        let ssm = aws_sdk_ssm::Client::new(&sdk);
        let parameter = format!("/{prefix}/dry-run");
        ssm.put_parameter()
            .name(&parameter)
            .value(if options.dry_run { "true" } else { "false" })
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ssm", "PutParameter", &e))?;

        let store = Store::new(aws_sdk_dynamodb::Client::new(&sdk), stack.table.clone());
        let bus = Bus::new(aws_sdk_eventbridge::Client::new(&sdk), stack.bus.clone());
        let playbooks = options.playbooks;
        let create = Create::new(playbooks.clone(), store.clone(), bus.clone(), None);
        let enrich = Enrich::new(
            store.clone(),
            bus.clone(),
            aws_sdk_cloudwatch::Client::new(&sdk),
            aws_sdk_ec2::Client::new(&sdk),
            aws_sdk_cloudtrail::Client::new(&sdk),
            playbooks.clone(),
        );
        let remediate = Remediate::new(
            playbooks.clone(),
            store.clone(),
            bus.clone(),
            Clients::new(&sdk),
            DryRunSwitch::new(ssm, parameter),
        );
        let notify = Notify::new(
            playbooks.clone(),
            store.clone(),
            aws_sdk_sns::Client::new(&sdk),
            &firebreak_notify::Config {
                table: stack.table.clone(),
                topic_arn: stack.topic_arn.clone(),
                escalation_topic_arn: stack.escalation_topic_arn.clone(),
            },
        );
        let retention_s = template
            .parameter("RetentionDays")
            .and_then(|d| d.parse::<i64>().ok())
            .unwrap_or(365)
            * 86_400;
        let close = Close::from_parts(
            store.clone(),
            bus,
            None,
            playbooks,
            retention_s,
            MetricsSink::memory(),
        );
        Ok(Engine {
            ec2: aws_sdk_ec2::Client::new(&sdk),
            events: aws_sdk_eventbridge::Client::new(&sdk),
            sdk,
            stack,
            store,
            rules,
            create,
            enrich,
            remediate,
            notify,
            close,
            ids: BTreeMap::new(),
            hosts: BTreeMap::new(),
            clock: Utc::now(),
            incidents: Vec::new(),
            timeline_seen: BTreeMap::new(),
            dead_letters: Vec::new(),
            unrouted: Vec::new(),
            gaps: BTreeSet::new(),
            progress: None,
            quiet: false,
        })
    }

    /// Calls `f` with every line of progress from now on.
    pub fn on_progress(&mut self, f: impl FnMut(&Line) + Send + 'static) {
        self.progress = Some(Box::new(f));
    }

    pub fn sdk(&self) -> &SdkConfig {
        &self.sdk
    }

    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The stand-in for the instance an event called `original`.
    pub fn host(&self, original: &str) -> Option<&Host> {
        self.hosts.get(original)
    }

    pub fn ec2(&self) -> &aws_sdk_ec2::Client {
        &self.ec2
    }

    /// The incidents this run touched, first seen first.
    pub fn incident_ids(&self) -> &[String] {
        &self.incidents
    }

    /// The engine's clock: the newest event's time, plus a second per invocation.
    pub fn clock(&self) -> DateTime<Utc> {
        self.clock
    }

    /// Holds progress lines back (a storm of repeats would drown the rest) until `false`.
    pub fn quiet(&mut self, quiet: bool) {
        self.quiet = quiet;
    }

    fn say(&mut self, who: &str, text: impl Into<String>) {
        if self.quiet {
            return;
        }
        let line = Line {
            at: self.clock,
            who: who.to_owned(),
            text: text.into(),
        };
        if let Some(p) = self.progress.as_mut() {
            p(&line);
        }
    }

    fn gap(&mut self, text: &str) {
        if self.gaps.insert(text.to_owned()) {
            self.say("note", text);
        }
    }

    /// Seeds an instance the way `spec` says, known to events as `original`.
    pub async fn seed_host(
        &mut self,
        original: &str,
        spec: &HostSpec,
    ) -> Result<Host, EngineError> {
        let host = seed::host(&self.ec2, spec).await?;
        self.ids.insert(original.to_owned(), host.id.clone());
        self.hosts.insert(original.to_owned(), host.clone());
        let protected = if spec.tags.iter().any(|(k, _)| k == "firebreak:protected") {
            ", protected"
        } else {
            ""
        };
        self.say(
            "seed",
            format!(
                "{} ({original} in events) in {} with {} volumes{protected}",
                host.id,
                host.vpc,
                host.volumes.len()
            ),
        );
        Ok(host)
    }

    /// Replays one event as AWS would deliver it, then runs every stage until all is quiet.
    /// `label` names it in the output (a file name).
    pub async fn feed(&mut self, label: &str, raw: &[u8]) -> Result<(), EngineError> {
        let event: Value = serde_json::from_slice(raw)
            .map_err(|e| EngineError::NotJson(label.to_owned(), e.to_string()))?;
        let event = match Form::of(event) {
            Form::EventBridge(e) => e,
            Form::Direct(e) => {
                let e = self.stand_ins(e).await?;
                self.advance_to(alarm_time(&e));
                self.say(
                    "route",
                    format!("{label}: alarm action → create (invoked directly, as the template's alarm action does)"),
                );
                let body = serde_json::to_string(&e).unwrap_or_default();
                self.invoke("CreateFunction", &body).await;
                return self.settle().await;
            }
            Form::Other(why) => {
                self.say("route", format!("{label}: reaches no function ({why})"));
                self.unrouted.push(json!({"input": label, "reason": why}));
                return Ok(());
            }
        };
        let event = self.stand_ins(event).await?;
        let at = event["time"]
            .as_str()
            .and_then(firebreak_shared::signal::parse_timestamp);
        self.advance_to(at);
        let delivered = self.put_on_default_bus(&event).await?;
        let mut reached: Vec<String> = delivered.iter().map(|(f, _)| f.clone()).collect();
        let mut queued = delivered;
        // moto cannot match inside arrays of objects: the template's pattern decides instead.
        let rules: Vec<Rule> = self.rules.clone();
        for rule in rules.iter().filter(|r| r.bus == RuleBus::Default) {
            if !pattern::needs_array_flattening(&rule.pattern, &event) {
                continue;
            }
            let hit =
                pattern::matches(&rule.pattern, &event).map_err(|e| EngineError::Pattern {
                    rule: format!("{}.{}", rule.function, rule.event),
                    error: e.to_string(),
                })?;
            if hit && !reached.contains(&rule.function) {
                reached.push(rule.function.clone());
                let mut delivered = event.clone();
                delivered["account"] = json!(crate::template::ACCOUNT);
                queued.push((rule.function.clone(), delivered.to_string()));
                let text = format!(
                    "moto cannot match {}.{}'s pattern inside an array of objects; the template's pattern, evaluated by Firebreak, routes it",
                    rule.function, rule.event
                );
                self.gap(&text);
            }
        }
        let detail_type = event["detail-type"].as_str().unwrap_or("event");
        if reached.is_empty() {
            self.say(
                "route",
                format!(
                    "{label}: {detail_type} reaches no function (no rule of the template matches)"
                ),
            );
            self.unrouted.push(json!({
                "input": label,
                "reason": "no rule of the template matches it",
            }));
            return Ok(());
        }
        let names: Vec<&str> = reached.iter().map(|f| stage_of(f)).collect();
        self.say(
            "route",
            format!("{label}: {detail_type} → {}", names.join(", ")),
        );
        for (function, body) in queued {
            self.invoke(&function, &body).await;
        }
        self.settle().await
    }

    /// Asks the remediate stage to run the steps `id` holds for approval, as `by`.
    pub async fn approve(&mut self, id: &str, by: &str) -> Result<Value, EngineError> {
        self.tick();
        let out = Box::pin(self.remediate.approve(id, by, self.clock)).await;
        let out = match out {
            Ok(v) => v,
            Err(e) => json!({"error": e.to_string()}),
        };
        self.say("remediate", format!("{id}: approved by {by}"));
        self.show_timeline(id).await?;
        self.settle().await?;
        Ok(out)
    }

    /// Resolves `id` now, by `by`, as `firebreak incidents resolve` does.
    pub async fn resolve(&mut self, id: &str, by: &str, note: &str) -> Result<(), EngineError> {
        self.tick();
        if let Err(e) = Box::pin(self.close.resolve(id, by, note, self.clock)).await {
            self.say("close", format!("{id}: {e}"));
        }
        self.show_timeline(id).await?;
        self.settle().await
    }

    /// Runs the close stage's scheduled sweep at `at` (auto-resolve after quiet periods).
    pub async fn sweep(&mut self, at: DateTime<Utc>) -> Result<(), EngineError> {
        self.advance_to(Some(at));
        let event = json!({
            "version": "0", "id": format!("sweep-{}", at.timestamp()),
            "detail-type": "Scheduled Event", "source": "aws.events",
            "account": crate::template::ACCOUNT, "time": at.to_rfc3339(),
            "region": crate::template::REGION, "resources": [], "detail": {}
        });
        self.say(
            "route",
            "the 5-minute schedule → close (auto-resolve sweep)",
        );
        self.invoke("CloseFunction", &event.to_string()).await;
        self.settle().await
    }

    fn tick(&mut self) {
        self.clock += Duration::seconds(1);
    }

    fn advance_to(&mut self, at: Option<DateTime<Utc>>) {
        match at {
            Some(at) if at > self.clock || self.incidents.is_empty() => self.clock = at,
            _ => self.tick(),
        }
    }

    /// Drains every function's queue into its stage until one whole pass finds them empty.
    async fn settle(&mut self) -> Result<(), EngineError> {
        for _ in 0..MAX_PASSES {
            let mut any = false;
            for function in FUNCTIONS {
                let bodies = self.stack.drain(&self.sdk, function).await?;
                for body in bodies {
                    any = true;
                    self.invoke(function, &body).await;
                }
            }
            if !any {
                return Ok(());
            }
        }
        Err(EngineError::Unsettled)
    }

    /// One asynchronous invocation: the stage, retried as Lambda retries, then the
    /// on-failure destination.
    async fn invoke(&mut self, function: &str, body: &str) {
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            self.tick();
            // Boxed: the stages' futures are large, and a test thread's stack is small.
            match Box::pin(self.run_stage(function, body)).await {
                Ok(out) => {
                    self.after(function, body, &out).await;
                    return;
                }
                Err(e) => {
                    last = e;
                    self.say(
                        stage_of(function),
                        format!("attempt {attempt} failed: {last}"),
                    );
                }
            }
        }
        let event: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        self.say(
            stage_of(function),
            format!("failed {ATTEMPTS} times: to the failed-invocation queue"),
        );
        self.dead_letters.push(DeadLetter {
            function: function.to_owned(),
            error: last,
            attempts: ATTEMPTS,
            event: json!({
                "detail-type": event["detail-type"],
                "source": event["source"],
                "incident": event["detail"]["incident_id"],
            }),
        });
    }

    async fn run_stage(&self, function: &str, body: &str) -> Result<Value, String> {
        let bytes = body.as_bytes();
        let now = self.clock;
        // The invocation's deadline is real time: the stage's waits are real waits.
        let deadline = Utc::now() + Duration::seconds(300);
        match function {
            "CreateFunction" => self
                .create
                .handle(bytes, now)
                .await
                .map_err(|e| e.to_string()),
            "EnrichFunction" => self
                .enrich
                .handle(bytes, now)
                .await
                .map_err(|e| e.to_string()),
            "RemediateFunction" => self
                .remediate
                .handle(bytes, now, deadline)
                .await
                .map_err(|e| e.to_string()),
            "NotifyFunction" => self
                .notify
                .handle(bytes, now)
                .await
                .map_err(|e| e.to_string()),
            "CloseFunction" => self
                .close
                .handle(bytes, now)
                .await
                .map_err(|e| e.to_string()),
            other => Err(format!("no stage for {other}")),
        }
    }

    /// Reports what an invocation did: its answer, and the incident's new timeline lines.
    async fn after(&mut self, function: &str, body: &str, out: &Value) {
        let stage = stage_of(function);
        let mut ids = Vec::new();
        if let Ok(e) = lifecycle::parse(body.as_bytes()) {
            ids.push(e.detail.incident_id);
        }
        for r in out["results"].as_array().into_iter().flatten() {
            if let Some(id) = r["incident"].as_str().or(r["incident_id"].as_str()) {
                ids.push(id.to_owned());
            }
            let outcome = r["outcome"].as_str().unwrap_or("handled");
            let reason = r["reason"]
                .as_str()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            let id = r["incident"].as_str().unwrap_or("");
            if function == "CreateFunction" || function == "CloseFunction" {
                self.say(
                    stage,
                    format!("{outcome} {id}{reason}").trim_end().to_owned(),
                );
            }
        }
        if let Some(refused) = out["refused"].as_str() {
            self.say(stage, format!("refused: {refused}"));
        }
        if let Some(o) = out["outcome"].as_str()
            && function == "CreateFunction"
        {
            let reason = out["reason"].as_str().unwrap_or("");
            self.say(stage, format!("{o}: {reason}"));
        }
        ids.dedup();
        for id in ids {
            if !self.incidents.contains(&id) {
                self.incidents.push(id.clone());
            }
            if let Err(e) = self.show_timeline(&id).await {
                self.say(stage, format!("could not read {id}: {e}"));
            }
        }
    }

    /// Prints the timeline lines of `id` not printed yet, and notes local gaps they reveal.
    async fn show_timeline(&mut self, id: &str) -> Result<(), EngineError> {
        let Some(incident) = self.store.get(id).await? else {
            return Ok(());
        };
        let seen = self.timeline_seen.get(id).copied().unwrap_or(0);
        for entry in incident.timeline.iter().skip(seen) {
            let detail = entry
                .detail
                .as_deref()
                .map(|d| format!(" · {}", one_line(d, 140)))
                .unwrap_or_default();
            let text = format!("{id} {} {}{detail}", entry.event, entry.outcome);
            self.say(&entry.actor.clone(), text);
        }
        self.timeline_seen
            .insert(id.to_owned(), incident.timeline.len());
        if let Some(enrichment) = &incident.enrichment {
            for r in &enrichment.results {
                if r.outcome == "ok" {
                    continue;
                }
                if r.enricher.starts_with("cloudwatch") {
                    self.gap(CLOUDWATCH_GAP);
                } else if r.enricher.starts_with("cloudtrail") {
                    self.gap(CLOUDTRAIL_GAP);
                }
            }
        }
        Ok(())
    }

    /// Puts `event` on moto's default bus and collects what the template's rules delivered.
    async fn put_on_default_bus(
        &mut self,
        event: &Value,
    ) -> Result<Vec<(String, String)>, EngineError> {
        let mut entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(&self.stack.default_bus)
            .source(event["source"].as_str().unwrap_or(""))
            .detail_type(event["detail-type"].as_str().unwrap_or(""))
            .detail(event["detail"].to_string());
        for r in event["resources"].as_array().into_iter().flatten() {
            if let Some(r) = r.as_str() {
                entry = entry.resources(r);
            }
        }
        if let Some(t) = event["time"]
            .as_str()
            .and_then(firebreak_shared::signal::parse_timestamp)
        {
            entry = entry.time(aws_smithy_types::DateTime::from_millis(
                t.timestamp_millis(),
            ));
        }
        let out = self
            .events
            .put_events()
            .entries(entry.build())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("eventbridge", "PutEvents", &e))?;
        if out.failed_entry_count() > 0 {
            let why: Vec<String> = out
                .entries()
                .iter()
                .filter_map(|e| e.error_message().map(str::to_owned))
                .collect();
            self.say("route", format!("PutEvents refused it: {}", why.join("; ")));
        }
        let mut delivered = Vec::new();
        for function in FUNCTIONS {
            for body in self.stack.drain(&self.sdk, function).await? {
                delivered.push((function.to_owned(), body));
            }
        }
        Ok(delivered)
    }

    /// Seeds a stand-in for each EC2 instance `event` names and rewrites its ids to them.
    async fn stand_ins(&mut self, mut event: Value) -> Result<Value, EngineError> {
        let mut found = BTreeSet::new();
        collect_instance_ids(&event, &mut found);
        for original in found {
            if self.ids.contains_key(&original) {
                continue;
            }
            let spec = HostSpec {
                name: tag_named(&event, &original, "Name").unwrap_or_else(|| "stand-in".to_owned()),
                tags: tags_for(&event, &original),
                data_volumes: 1,
            };
            let host = self.seed_host(&original, &spec).await?;
            for (kind, id) in network_ids(&event, &original) {
                let to = match kind {
                    "vpc" => host.vpc.clone(),
                    "subnet" => host.subnet.clone(),
                    _ => host.group.clone(),
                };
                self.ids.entry(id).or_insert(to);
            }
        }
        if !self.ids.is_empty() {
            let mut pairs: Vec<(&String, &String)> = self.ids.iter().collect();
            // Longest first, so an id never rewrites part of a longer one.
            pairs.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
            rewrite(&mut event, &pairs);
        }
        Ok(event)
    }

    /// Everything this run did.
    pub async fn report(&self) -> Result<Report, EngineError> {
        let mut incidents = Vec::new();
        let mut actions = Vec::new();
        let mut notifications = Vec::new();
        for id in &self.incidents {
            let Some(i) = self.store.get(id).await? else {
                continue;
            };
            for a in &i.actions {
                actions.push(ActionView {
                    incident: i.id.clone(),
                    kind: a.kind.clone(),
                    target: a.target.clone(),
                    outcome: outcome_of(&a.outcome).to_owned(),
                });
            }
            for n in &i.notifications {
                notifications.push(NotificationView {
                    incident: i.id.clone(),
                    topic: self.topic_name(&n.topic),
                    subject: n.subject.clone(),
                });
            }
            incidents.push(view(&i));
        }
        Ok(Report {
            incidents,
            actions,
            notifications,
            dead_letters: self.dead_letters.clone(),
            unrouted: self.unrouted.clone(),
            local_aws_gaps: self.gaps.iter().cloned().collect(),
        })
    }

    fn topic_name(&self, arn: &str) -> String {
        if arn == self.stack.topic_arn {
            "notifications".to_owned()
        } else if arn == self.stack.escalation_topic_arn {
            "escalation".to_owned()
        } else {
            arn.to_owned()
        }
    }
}

fn view(i: &Incident) -> IncidentView {
    IncidentView {
        id: i.id.clone(),
        status: i.status,
        severity: i.severity.to_string(),
        playbook: i.playbook.clone(),
        dedupe_key: i.dedupe_key.clone(),
        title: i.title.clone(),
        signals: i.signals.count,
        timeline: i.timeline.clone(),
        metrics: Metrics {
            mttd_s: i.metrics.mttd_s,
            mtta_s: i.metrics.mtta_s,
            mttr_s: i.metrics.mttr_s,
        },
        report: i.report.clone(),
    }
}

/// The four outcomes a report speaks of; a step left `started` never finished.
fn outcome_of(raw: &str) -> &'static str {
    match raw {
        "succeeded" | "ok" => "succeeded",
        "dry_run" => "dry_run",
        "skipped" | "refused" | "protected" | "rate_limited" => "skipped",
        _ => "failed",
    }
}

/// `CreateFunction` → `create`.
pub fn stage_of(function: &str) -> &str {
    match function {
        "CreateFunction" => "create",
        "EnrichFunction" => "enrich",
        "RemediateFunction" => "remediate",
        "NotifyFunction" => "notify",
        "CloseFunction" => "close",
        other => other,
    }
}

fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// The shapes an input file can take.
enum Form {
    /// An EventBridge event (bare findings are wrapped into one).
    EventBridge(Value),
    /// A CloudWatch alarm action's payload: the template lets alarms invoke create directly.
    Direct(Value),
    Other(String),
}

impl Form {
    fn of(v: Value) -> Form {
        if v["detail-type"].is_string() && v["source"].is_string() && v.get("detail").is_some() {
            return Form::EventBridge(v);
        }
        if v.get("alarmData").is_some() {
            return Form::Direct(v);
        }
        // A partial envelope (some tools keep only `region` and `detail`): completed from the
        // finding, as EventBridge would have sent it.
        if v["source"].is_null() && is_guardduty_finding(&v["detail"]) {
            let mut v = v;
            let detail = v["detail"].clone();
            v["source"] = json!("aws.guardduty");
            v["detail-type"] = json!("GuardDuty Finding");
            v["time"] = detail["updatedAt"].clone();
            v["account"] = detail["accountId"].clone();
            v["resources"] = json!([]);
            return Form::EventBridge(v);
        }
        if v["Records"][0]["Sns"].is_object() || v["Type"].as_str() == Some("Notification") {
            return Form::Other(
                "an SNS delivery: the template subscribes no function to SNS topics".to_owned(),
            );
        }
        // A bare GuardDuty finding, as the console or the API shows it.
        if is_guardduty_finding(&v) {
            return Form::EventBridge(json!({
                "version": "0",
                "id": format!("wrapped-{}", v["id"].as_str().unwrap_or("finding")),
                "detail-type": "GuardDuty Finding",
                "source": "aws.guardduty",
                "account": v["accountId"],
                "time": v["updatedAt"],
                "region": v["region"],
                "resources": [],
                "detail": v,
            }));
        }
        // A bare ASFF finding, as Security Hub's console or API shows it.
        if v["SchemaVersion"].is_string() && v["ProductArn"].is_string() {
            return Form::EventBridge(json!({
                "version": "0",
                "id": format!("wrapped-{}", v["Id"].as_str().unwrap_or("finding")),
                "detail-type": "Security Hub Findings - Imported",
                "source": "aws.securityhub",
                "account": v["AwsAccountId"],
                "time": v["UpdatedAt"],
                "region": v["Region"],
                "resources": [v["ProductFields"]["aws/securityhub/FindingId"].as_str().unwrap_or("")],
                "detail": {"findings": [v]},
            }));
        }
        Form::Other("not an AWS event Firebreak listens for".to_owned())
    }
}

fn is_guardduty_finding(v: &Value) -> bool {
    v["type"].is_string() && v["service"].is_object() && v["resource"].is_object()
}

fn alarm_time(v: &Value) -> Option<DateTime<Utc>> {
    v["alarmData"]["state"]["timestamp"]
        .as_str()
        .and_then(firebreak_shared::signal::parse_timestamp)
}

/// Whether `s[at..]` starts an EC2 instance id: `i-` and 8 or 17 hex digits, standing alone.
fn instance_id_at(s: &str, at: usize) -> Option<&str> {
    let bytes = s.as_bytes();
    if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'-') {
        return None;
    }
    let rest = s.get(at + 2..)?;
    let hex = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
    let end_ok = rest
        .as_bytes()
        .get(hex)
        .is_none_or(|b| !b.is_ascii_alphanumeric());
    ((hex == 8 || hex == 17) && end_ok).then(|| &s[at..at + 2 + hex])
}

fn collect_instance_ids(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) => {
            for (at, _) in s.match_indices("i-") {
                if let Some(id) = instance_id_at(s, at) {
                    out.insert(id.to_owned());
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_instance_ids(i, out)),
        Value::Object(map) => map.values().for_each(|i| collect_instance_ids(i, out)),
        _ => {}
    }
}

fn rewrite(v: &mut Value, pairs: &[(&String, &String)]) {
    match v {
        Value::String(s) => {
            for (from, to) in pairs {
                if s.contains(from.as_str()) {
                    *s = s.replace(from.as_str(), to);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rewrite(i, pairs)),
        Value::Object(map) => map.values_mut().for_each(|i| rewrite(i, pairs)),
        _ => {}
    }
}

/// The tags an event reports for `instance`: GuardDuty's `instanceDetails.tags`, or an ASFF
/// resource's `Tags`.
fn tags_for(event: &Value, instance: &str) -> Vec<(String, String)> {
    let mut tags = Vec::new();
    let details = &event["detail"]["resource"]["instanceDetails"];
    if details["instanceId"].as_str() == Some(instance) {
        for t in details["tags"].as_array().into_iter().flatten() {
            if let (Some(k), Some(v)) = (t["key"].as_str(), t["value"].as_str()) {
                tags.push((k.to_owned(), v.to_owned()));
            }
        }
    }
    for finding in event["detail"]["findings"].as_array().into_iter().flatten() {
        for r in finding["Resources"].as_array().into_iter().flatten() {
            if r["Id"].as_str().is_some_and(|id| id.ends_with(instance))
                && let Some(map) = r["Tags"].as_object()
            {
                for (k, v) in map {
                    if let Some(v) = v.as_str() {
                        tags.push((k.clone(), v.to_owned()));
                    }
                }
            }
        }
    }
    tags
}

fn tag_named(event: &Value, instance: &str, key: &str) -> Option<String> {
    tags_for(event, instance)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// The VPC, subnet and group ids GuardDuty reports for `instance`'s network interfaces.
fn network_ids(event: &Value, instance: &str) -> Vec<(&'static str, String)> {
    let details = &event["detail"]["resource"]["instanceDetails"];
    if details["instanceId"].as_str() != Some(instance) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for nic in details["networkInterfaces"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(v) = nic["vpcId"].as_str() {
            out.push(("vpc", v.to_owned()));
        }
        if let Some(s) = nic["subnetId"].as_str() {
            out.push(("subnet", s.to_owned()));
        }
        for g in nic["securityGroups"].as_array().into_iter().flatten() {
            if let Some(g) = g["groupId"].as_str() {
                out.push(("group", g.to_owned()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_are_found_whole_and_only_whole() {
        let mut found = BTreeSet::new();
        collect_instance_ids(
            &json!({"a": "arn:aws:ec2:us-east-1:1:instance/i-0123456789abcdef0", "b": ["i-99999999"],
                    "c": "xi-12345678", "d": "i-1234567", "e": "i-12345678z"}),
            &mut found,
        );
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            ["i-0123456789abcdef0", "i-99999999"]
        );
    }

    #[test]
    fn rewriting_maps_every_occurrence_and_never_part_of_a_longer_id() {
        let mut v = json!({"x": "instance/i-99999999", "y": ["i-99999999 and vpc-1"]});
        let (a, b, c, d) = (
            "i-99999999".to_owned(),
            "i-0aaaaaaaaaaaaaaaa".to_owned(),
            "vpc-1".to_owned(),
            "vpc-2".to_owned(),
        );
        rewrite(&mut v, &[(&a, &b), (&c, &d)]);
        assert_eq!(
            v,
            json!({"x": "instance/i-0aaaaaaaaaaaaaaaa", "y": ["i-0aaaaaaaaaaaaaaaa and vpc-2"]})
        );
    }

    #[test]
    fn a_bare_guardduty_finding_is_wrapped_as_eventbridge_delivers_it() {
        let bare = json!({"schemaVersion": "2.0", "id": "f1", "type": "Backdoor:EC2/X",
                          "service": {}, "resource": {}, "accountId": "1", "region": "us-east-1",
                          "updatedAt": "2024-01-01T00:00:00Z", "severity": 8});
        let Form::EventBridge(e) = Form::of(bare) else {
            panic!("not wrapped");
        };
        assert_eq!(e["source"], "aws.guardduty");
        assert_eq!(e["detail"]["id"], "f1");
    }

    #[test]
    fn an_sns_delivery_is_refused_with_the_reason() {
        let Form::Other(why) = Form::of(json!({"Records": [{"Sns": {}}]})) else {
            panic!("should not route");
        };
        assert!(why.contains("SNS"), "{why}");
    }

    #[test]
    fn step_outcomes_fold_into_the_four_the_report_names() {
        assert_eq!(outcome_of("succeeded"), "succeeded");
        assert_eq!(outcome_of("dry_run"), "dry_run");
        assert_eq!(outcome_of("skipped"), "skipped");
        assert_eq!(outcome_of("started"), "failed");
    }
}
