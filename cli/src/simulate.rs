//! `firebreak simulate EVENT...`: real event files replayed, in order, through the five stages
//! on a local AWS built from template.yaml. See [`crate::engine`] for how.

use std::io::Write;
use std::path::{Path, PathBuf};

use firebreak_shared::incident::Status;

use crate::engine::{Engine, EngineError, Line, Options, Report};
use crate::sandbox::LocalAws;

/// Replays `inputs` (a label and the bytes of each) in order and returns what happened.
/// Progress goes to `progress` as it happens.
pub async fn simulate(
    local: &LocalAws,
    inputs: &[(String, Vec<u8>)],
    options: Options,
    progress: impl FnMut(&Line) + Send + 'static,
) -> Result<Report, EngineError> {
    let mut engine = Engine::start(local, options).await?;
    engine.on_progress(progress);
    for (label, bytes) in inputs {
        engine.feed(label, bytes).await?;
    }
    engine.report().await
}

/// Reads every event file, `-` for standard input.
pub fn read_inputs(files: &[PathBuf]) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    files
        .iter()
        .map(|f| {
            if f == Path::new("-") {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
                Ok(("stdin".to_owned(), buf))
            } else {
                let label = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| f.display().to_string());
                std::fs::read(f)
                    .map(|b| (label, b))
                    .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", f.display())))
            }
        })
        .collect()
}

/// One progress line as people read it.
pub fn format_line(line: &Line) -> String {
    format!(
        "  {}  {:<10} {}",
        line.at.format("%H:%M:%S"),
        line.who,
        line.text
    )
}

fn secs(s: Option<f64>) -> String {
    match s {
        None => "—".to_owned(),
        Some(s) if s < 120.0 => format!("{s:.0} s"),
        Some(s) if s < 7200.0 => format!("{:.1} min", s / 60.0),
        Some(s) => format!("{:.1} h", s / 3600.0),
    }
}

/// The report as people read it: incidents with their figures, actions, notifications,
/// dead letters and what the local AWS could not do.
pub fn print_report(report: &Report, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "\nIncidents")?;
    if report.incidents.is_empty() {
        writeln!(out, "  none")?;
    }
    writeln!(
        out,
        "  {:<28} {:<12} {:<9} {:<26} {:>7} {:>9} {:>9} {:>9}",
        "id", "status", "severity", "playbook", "signals", "MTTD", "MTTA", "MTTR"
    )?;
    for i in &report.incidents {
        writeln!(
            out,
            "  {:<28} {:<12} {:<9} {:<26} {:>7} {:>9} {:>9} {:>9}",
            i.id,
            status(i.status),
            i.severity,
            i.playbook.as_deref().unwrap_or("—"),
            i.signals,
            secs(i.metrics.mttd_s),
            secs(i.metrics.mtta_s),
            secs(i.metrics.mttr_s),
        )?;
    }
    writeln!(out, "\nActions")?;
    if report.actions.is_empty() {
        writeln!(out, "  none")?;
    }
    for a in &report.actions {
        writeln!(
            out,
            "  {:<28} {:<26} {:<10} {}",
            a.incident,
            a.kind,
            a.outcome,
            a.target.as_deref().unwrap_or("")
        )?;
    }
    writeln!(out, "\nNotifications")?;
    if report.notifications.is_empty() {
        writeln!(out, "  none")?;
    }
    for n in &report.notifications {
        writeln!(out, "  {:<28} {:<13} {}", n.incident, n.topic, n.subject)?;
    }
    if !report.dead_letters.is_empty() {
        writeln!(out, "\nDead letters (failed after Lambda's retries)")?;
        for d in &report.dead_letters {
            writeln!(out, "  {:<18} {} · {}", d.function, d.event, d.error)?;
        }
    }
    if !report.unrouted.is_empty() {
        writeln!(out, "\nReached no function")?;
        for u in &report.unrouted {
            writeln!(
                out,
                "  {}: {}",
                u["input"].as_str().unwrap_or(""),
                u["reason"].as_str().unwrap_or("")
            )?;
        }
    }
    if !report.local_aws_gaps.is_empty() {
        writeln!(out, "\nWhat the local AWS could not do")?;
        for g in &report.local_aws_gaps {
            writeln!(out, "  - {g}")?;
        }
    }
    Ok(())
}

fn status(s: Status) -> &'static str {
    match s {
        Status::Open => "open",
        Status::Acknowledged => "acknowledged",
        Status::Resolved => "resolved",
    }
}
