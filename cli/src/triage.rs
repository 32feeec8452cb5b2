//! `firebreak triage`: parse, match, decide, and show every stage's plan. Changes nothing.
//!
//! The plan shown is the one the five stages compute from the same decision, so what triage
//! prints is what a deployment would do (with every step a dry run, since triage never acts).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::Utc;
use firebreak_shared::incident::Incident;
use firebreak_shared::lifecycle::Kind;
use firebreak_shared::playbook::PlaybookSet;
use firebreak_shared::signal::{self, MAX_EVENT_BYTES, Signal};
use firebreak_shared::triage::{self, Decision};
use serde::Serialize;

use crate::EXIT_NOT_UNDERSTOOD;
use crate::playbooks;

/// Every stage's view of one decision.
#[derive(Serialize)]
struct StagePlans {
    enrich: Vec<firebreak_enrich::Task>,
    remediate: firebreak_remediate::Plan,
    notify: firebreak_notify::Message,
    close: firebreak_close::ClosePlan,
}

impl StagePlans {
    fn of(decision: &Decision<'_>) -> Self {
        StagePlans {
            enrich: firebreak_enrich::plan(decision),
            // Triage never acts, whatever the playbook's mode: it shows the dry run.
            remediate: firebreak_remediate::plan(decision, true),
            notify: preview_notification(decision),
            close: firebreak_close::policy(decision),
        }
    }
}

/// The message notify would send for this decision, rendered from the incident it would open.
fn preview_notification(decision: &Decision<'_>) -> firebreak_notify::Message {
    let at = decision.signal.observed_at;
    let mut incident = Incident::open(decision, "INC-preview".to_owned(), at);
    let kind = if decision.outcome == triage::Outcome::Resolve {
        // Resolving a fresh, unacknowledged incident cannot fail.
        let _ = incident.resolve("close", &decision.reason, at, 0);
        Kind::IncidentResolved
    } else {
        Kind::IncidentOpened
    };
    let route = decision
        .playbook
        .map_or(firebreak_notify::DEFAULT_ROUTE, |p| p.notify.route.as_str());
    firebreak_notify::render(&incident, kind, Some(&decision.reason), route)
}

#[derive(Serialize)]
struct JsonLine<'a> {
    #[serde(flatten)]
    summary: triage::Summary<'a>,
    plan: StagePlans,
}

pub fn run(files: &[PathBuf], json: bool, playbook_dir: Option<&Path>) -> Result<ExitCode, String> {
    let (playbooks, origin) = playbooks::load(playbook_dir).map_err(|errors| {
        let first = errors.first().map(ToString::to_string).unwrap_or_default();
        format!(
            "{} playbook error(s); run `firebreak validate` to see all. First: {first}",
            errors.len()
        )
    })?;
    if !json {
        println!("playbooks: {origin} ({} loaded)", playbooks.len());
    }

    let mut refused = 0usize;
    let mut tally = Tally::default();
    for file in files {
        let name = if file == Path::new("-") {
            "<stdin>".to_owned()
        } else {
            file.display().to_string()
        };
        let bytes = match read_input(file) {
            Ok(bytes) => bytes,
            Err(err) => {
                eprintln!("{name}: {err}");
                refused += 1;
                continue;
            }
        };
        match signal::parse(&bytes, Utc::now()) {
            Ok(signals) => print_signals(&name, &signals, &playbooks, json, &mut tally)?,
            Err(err) => {
                eprintln!("{name}: refused: {err}");
                refused += 1;
            }
        }
    }
    if !json && files.len() > 1 {
        println!();
        println!("{}", tally.line(files.len(), refused));
    }
    Ok(if refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NOT_UNDERSTOOD)
    })
}

/// Reads at most one byte past EventBridge's limit, so a huge file is refused by the parser's
/// size check without being read whole.
fn read_input(file: &Path) -> Result<Vec<u8>, String> {
    let limit = (MAX_EVENT_BYTES + 1) as u64;
    let mut bytes = Vec::new();
    let result = if file == Path::new("-") {
        std::io::stdin().lock().take(limit).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(limit).read_to_end(&mut bytes))
    };
    result.map_err(|e| format!("cannot read: {e}"))?;
    Ok(bytes)
}

/// What a run of many files came to, for the closing line people read first.
#[derive(Default)]
struct Tally {
    incident: usize,
    notify_only: usize,
    resolve: usize,
    ignore: usize,
}

impl Tally {
    fn add(&mut self, outcome: triage::Outcome) {
        let count = match outcome {
            triage::Outcome::Incident => &mut self.incident,
            triage::Outcome::NotifyOnly => &mut self.notify_only,
            triage::Outcome::Resolve => &mut self.resolve,
            triage::Outcome::Ignore => &mut self.ignore,
        };
        *count += 1;
    }

    fn line(&self, files: usize, refused: usize) -> String {
        let Tally {
            incident,
            notify_only,
            resolve,
            ignore,
        } = self;
        let signals = incident + notify_only + resolve + ignore;
        format!(
            "{files} events, {signals} signals: {incident} incident, {notify_only} notify-only, \
             {resolve} resolve, {ignore} ignored; {refused} refused"
        )
    }
}

fn print_signals(
    name: &str,
    signals: &[Signal],
    playbooks: &PlaybookSet,
    json: bool,
    tally: &mut Tally,
) -> Result<(), String> {
    for signal in signals {
        let decision = triage::decide(signal, playbooks);
        tally.add(decision.outcome);
        let plan = StagePlans::of(&decision);
        if json {
            let line = JsonLine {
                summary: decision.summary(),
                plan,
            };
            let text = serde_json::to_string(&line).map_err(|e| format!("{name}: {e}"))?;
            println!("{text}");
        } else {
            print_human(name, &decision, &plan);
        }
    }
    Ok(())
}

fn print_human(name: &str, d: &Decision<'_>, plan: &StagePlans) {
    let s = d.signal;
    println!();
    println!("{name}");
    println!("  {} {} {}  {}", s.source, d.action, d.severity, s.kind);
    println!("  title      {}", s.title);
    for r in &s.resources {
        println!("  resource   {}", r.id);
    }
    println!("  dedupe     {}", d.dedupe_key);
    match d.playbook {
        Some(p) => println!(
            "  playbook   {} (priority {}, mode {})",
            p.name,
            p.priority,
            p.guardrails.mode.as_str()
        ),
        None => println!("  playbook   none"),
    }
    println!("  outcome    {}: {}", d.outcome.as_str(), d.reason);
    for task in &plan.enrich {
        match &task.skipped {
            Some(why) => println!("  enrich     {} skipped: {why}", task.enricher),
            None => println!(
                "  enrich     {} -> {}",
                task.enricher,
                task.targets.join(", ")
            ),
        }
    }
    for (i, step) in plan.remediate.steps.iter().enumerate() {
        let targets = if step.targets.is_empty() {
            String::new()
        } else {
            format!(" -> {}", step.targets.join(", "))
        };
        println!(
            "  step {}     {}{targets}: {}",
            i + 1,
            step.action,
            step.outcome.describe()
        );
    }
    if let Some(why) = &plan.remediate.escalate {
        println!("  escalate   {why}");
    }
    if d.outcome != triage::Outcome::Ignore {
        println!(
            "  notify     [{}] {}",
            plan.notify
                .attributes
                .get("route")
                .map_or("default", String::as_str),
            plan.notify.subject
        );
        println!("  close      on {}", plan.close.on.as_str());
    }
}
