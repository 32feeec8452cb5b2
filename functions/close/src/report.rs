//! The post-incident report: the incident record told as a Markdown document.
//!
//! [`render`] is pure: it reads one [`Incident`] and returns the report the close stage writes
//! into `incident.report` when it resolves the incident (and again when the tail records what
//! Incident Manager said). Sections, in order: summary, metrics, timeline, signals, enrichment,
//! actions with their evidence, notifications, engagements and follow-ups.
//!
//! Everything in it comes from AWS events or from people, so nothing is trusted: table cells
//! escape `|` and line breaks, HTML is neutralised, long values are cut, and evidence sits in a
//! code fence longer than any backtick run inside it. Enrichment data is summarised, not
//! dumped: the record keeps the full data, and the report has to stay readable and well under
//! DynamoDB's 400 KB item limit.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use firebreak_shared::incident::{ActionRecord, Entry, Incident};
use serde_json::Value;

/// A table cell longer than this is cut, with an ellipsis.
pub const MAX_CELL_CHARS: usize = 300;
/// Enrichment data is summarised to this many characters of compact JSON.
pub const MAX_DATA_CHARS: usize = 200;
/// An action's evidence is shown up to this many characters of pretty JSON.
pub const MAX_EVIDENCE_CHARS: usize = 2_000;
/// From this many signals on, the follow-ups suggest tuning the source.
pub const NOISY_SIGNAL_COUNT: u64 = 10;
/// Detection slower than this (seconds) earns a follow-up.
pub const SLOW_DETECTION_S: f64 = 15.0 * 60.0;

/// The timeline event the close stage records once Incident Manager answered.
pub const INCIDENT_MANAGER_RESOLVED: &str = "incident_manager_resolved";

/// The whole report.
pub fn render(incident: &Incident) -> String {
    let mut out = String::with_capacity(4_096);
    let _ = writeln!(
        out,
        "# Post-incident report: {}\n\n{}\n",
        inline(&incident.id),
        inline(&incident.title)
    );
    summary(&mut out, incident);
    metrics(&mut out, incident);
    timeline(&mut out, &incident.timeline);
    signals(&mut out, incident);
    enrichment(&mut out, incident);
    actions(&mut out, &incident.actions);
    notifications(&mut out, incident);
    engagements(&mut out, incident);
    follow_ups(&mut out, incident);
    out
}

fn summary(out: &mut String, i: &Incident) {
    out.push_str("## Summary\n\n| Field | Value |\n|---|---|\n");
    let (resolved, by, reason) = i.resolution.as_ref().map_or_else(
        || ("not resolved".to_owned(), "-".to_owned(), "-".to_owned()),
        |r| (time(r.at), r.by.clone(), r.reason.clone()),
    );
    let rows: [(&str, String); 14] = [
        ("Incident", i.id.clone()),
        ("Title", i.title.clone()),
        ("Status", i.status.to_string()),
        ("Severity", i.severity.to_string()),
        (
            "Playbook",
            i.playbook
                .clone()
                .unwrap_or_else(|| "none (default policy)".to_owned()),
        ),
        ("Source", format!("{} ({})", i.source, i.kind)),
        ("Dedupe key", i.dedupe_key.clone()),
        (
            "Account",
            i.account.clone().unwrap_or_else(|| "-".to_owned()),
        ),
        ("Region", i.region.clone().unwrap_or_else(|| "-".to_owned())),
        ("Opened", time(i.opened_at)),
        (
            "Acknowledged",
            i.acknowledged_at
                .map_or_else(|| "not acknowledged".to_owned(), time),
        ),
        ("Resolved", resolved),
        ("Resolved by", by),
        ("Resolution reason", reason),
    ];
    for (field, value) in rows {
        row(out, &[field, &value]);
    }
    out.push('\n');
}

fn metrics(out: &mut String, i: &Incident) {
    out.push_str("## Metrics\n\n| Metric | Value | Measured from → to |\n|---|---|---|\n");
    let rows = [
        (
            "MTTD (time to detect)",
            i.metrics.mttd_s,
            "first signal → opened",
            "unknown",
        ),
        (
            "MTTA (time to acknowledge)",
            i.metrics.mtta_s,
            "opened → first acknowledgement (a person's or an automated action's)",
            "not acknowledged",
        ),
        (
            "MTTR (time to resolve)",
            i.metrics.mttr_s,
            "first signal → resolved",
            "not resolved",
        ),
    ];
    for (name, value, span, missing) in rows {
        let value = value.map_or_else(|| missing.to_owned(), |s| format!("{} ({s} s)", human(s)));
        row(out, &[name, &value, span]);
    }
    out.push('\n');
}

fn timeline(out: &mut String, entries: &[Entry]) {
    out.push_str("## Timeline\n\n");
    if entries.is_empty() {
        out.push_str("Nothing was recorded.\n\n");
        return;
    }
    out.push_str("| Time (UTC) | Actor | Event | Outcome | Detail |\n|---|---|---|---|---|\n");
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    // Stable: entries written in the same second keep the order they were recorded in.
    sorted.sort_by_key(|e| e.at);
    for e in sorted {
        row(
            out,
            &[
                &time(e.at),
                &e.actor,
                &e.event,
                &e.outcome,
                e.detail.as_deref().unwrap_or(""),
            ],
        );
    }
    out.push('\n');
}

fn signals(out: &mut String, i: &Incident) {
    let s = &i.signals;
    let _ = writeln!(
        out,
        "## Signals\n\n- Count: {}\n- First seen: {}\n- Last seen: {}\n",
        s.count,
        time(s.first_seen),
        time(s.last_seen)
    );
    if i.resources.is_empty() {
        out.push_str("No resources were named.\n\n");
    } else {
        out.push_str("| Resource kind | Id |\n|---|---|\n");
        for r in &i.resources {
            row(out, &[r.kind.as_str(), &r.id]);
        }
        out.push('\n');
    }
}

fn enrichment(out: &mut String, i: &Incident) {
    out.push_str("## Enrichment\n\n");
    let Some(e) = &i.enrichment else {
        out.push_str("No enrichment was recorded.\n\n");
        return;
    };
    let _ = writeln!(out, "Gathered {}.\n", time(e.at));
    if e.results.is_empty() {
        out.push_str("No enricher ran.\n\n");
        return;
    }
    out.push_str("| Enricher | Target | Outcome | Found |\n|---|---|---|---|\n");
    for r in &e.results {
        let found = match (&r.error, &r.data) {
            (Some(err), _) => format!("error: {err}"),
            (None, Value::Null) => "-".to_owned(),
            (None, data) => summarise(data),
        };
        row(
            out,
            &[
                &r.enricher,
                r.target.as_deref().unwrap_or("-"),
                &r.outcome,
                &found,
            ],
        );
    }
    out.push('\n');
}

fn actions(out: &mut String, actions: &[ActionRecord]) {
    out.push_str("## Actions\n\n");
    if actions.is_empty() {
        out.push_str("No remediation action ran.\n\n");
        return;
    }
    for (n, a) in actions.iter().enumerate() {
        let _ = writeln!(
            out,
            "### {}. {} on {}: {}\n",
            n + 1,
            inline(&a.kind),
            inline(a.target.as_deref().unwrap_or("no target")),
            inline(&a.outcome)
        );
        let finished = a.finished_at.map_or_else(
            || "not finished".to_owned(),
            |f| format!("{} (after {})", time(f), human(secs(a.started_at, f))),
        );
        let _ = writeln!(
            out,
            "- Id: {}\n- Started: {}\n- Finished: {finished}\n",
            inline(&a.id),
            time(a.started_at)
        );
        if a.evidence.is_null() {
            out.push_str("No evidence was recorded.\n\n");
        } else {
            out.push_str("Evidence:\n\n");
            let pretty = serde_json::to_string_pretty(&a.evidence)
                .unwrap_or_else(|_| a.evidence.to_string());
            let (shown, cut) = truncate(&pretty, MAX_EVIDENCE_CHARS);
            fenced(out, "json", shown);
            if cut {
                let _ = writeln!(
                    out,
                    "Evidence cut at {MAX_EVIDENCE_CHARS} characters; the full evidence is in the incident record.\n"
                );
            }
        }
    }
}

fn notifications(out: &mut String, i: &Incident) {
    out.push_str("## Notifications\n\n");
    if i.notifications.is_empty() {
        out.push_str("No notification was sent.\n\n");
        return;
    }
    out.push_str("| Event | Topic | Subject | Sent | Message id |\n|---|---|---|---|---|\n");
    for n in &i.notifications {
        let sent = n.sent_at.map_or_else(|| "not confirmed".to_owned(), time);
        row(
            out,
            &[
                &n.event_id,
                &n.topic,
                &n.subject,
                &sent,
                n.message_id.as_deref().unwrap_or("-"),
            ],
        );
    }
    out.push('\n');
}

fn engagements(out: &mut String, i: &Incident) {
    out.push_str("## Engagements\n\n");
    match &i.engagements.incident_manager_arn {
        Some(arn) => {
            let state = i
                .timeline
                .iter()
                .rev()
                .find(|e| e.event == INCIDENT_MANAGER_RESOLVED)
                .map_or("not resolved there by Firebreak", |e| {
                    if e.outcome == "ok" {
                        "resolved there"
                    } else {
                        "resolving it there failed"
                    }
                });
            let _ = writeln!(out, "- AWS Incident Manager: {} ({state})\n", inline(arn));
        }
        None => out.push_str("No external incident was engaged.\n\n"),
    }
}

fn follow_ups(out: &mut String, i: &Incident) {
    out.push_str("## Follow-ups\n\n");
    let mut items: Vec<String> = Vec::new();
    if let Some(e) = &i.enrichment {
        for r in e.results.iter().filter(|r| r.outcome == "failed") {
            items.push(format!(
                "Enricher {} failed{}: {}. Check its permissions and inputs.",
                r.enricher,
                r.target
                    .as_ref()
                    .map(|t| format!(" on {t}"))
                    .unwrap_or_default(),
                r.error.as_deref().unwrap_or("no error recorded")
            ));
        }
    }
    for a in &i.actions {
        let on = a
            .target
            .as_ref()
            .map(|t| format!(" on {t}"))
            .unwrap_or_default();
        match a.outcome.as_str() {
            "failed" => items.push(format!(
                "Action {}{on} failed: check the resource's state by hand and fix the cause.",
                a.kind
            )),
            "started" => items.push(format!(
                "Action {}{on} never recorded an outcome: check whether it ran.",
                a.kind
            )),
            "dry_run" => items.push(format!(
                "Action {}{on} only ran as a dry run: decide whether the playbook should act.",
                a.kind
            )),
            _ => {}
        }
    }
    if i.acknowledged_at.is_none() {
        items.push(
            "Nobody acknowledged this incident: check that its notifications reach someone who acts."
                .to_owned(),
        );
    }
    if i.signals.count >= NOISY_SIGNAL_COUNT {
        items.push(format!(
            "The signal fired {} times: tune the alarm or finding (threshold, evaluation periods, suppression) or the dedupe window.",
            i.signals.count
        ));
    }
    if i.metrics.mttd_s.is_some_and(|s| s > SLOW_DETECTION_S) {
        items.push(format!(
            "Detection took {}: look at the alarm's period and evaluation settings.",
            i.metrics.mttd_s.map(human).unwrap_or_default()
        ));
    }
    if i.playbook.is_none() {
        items.push(
            "No playbook matched: write one for this kind of signal, or silence it at the source."
                .to_owned(),
        );
    }
    for n in i.notifications.iter().filter(|n| n.sent_at.is_none()) {
        items.push(format!(
            "The notification for {} was never confirmed sent: check the topic {}.",
            n.event_id, n.topic
        ));
    }
    for e in i.timeline.iter().filter(|e| e.outcome == "failed") {
        if e.event == INCIDENT_MANAGER_RESOLVED {
            items.push(format!(
                "Resolve the incident in AWS Incident Manager by hand: {}",
                e.detail.as_deref().unwrap_or("the update failed")
            ));
        } else if !matches!(e.actor.as_str(), "enrich" | "remediate") {
            // Enrichers and actions have follow-ups of their own above.
            items.push(format!(
                "{} by {} failed: {}",
                e.event,
                e.actor,
                e.detail.as_deref().unwrap_or("no detail")
            ));
        }
    }
    items.push("Record the root cause and what fixed it.".to_owned());
    items
        .push("Decide whether the playbook, its guardrails or the alarm should change.".to_owned());
    for item in items {
        let _ = writeln!(out, "- [ ] {}", inline(&item));
    }
}

/// One table row, every cell escaped.
fn row(out: &mut String, cells: &[&str]) {
    out.push('|');
    for c in cells {
        out.push(' ');
        out.push_str(&cell(c));
        out.push_str(" |");
    }
    out.push('\n');
}

/// A table cell: pipes escaped, line breaks as `<br>`, HTML neutralised, cut when long.
pub fn cell(text: &str) -> String {
    let (text, cut) = truncate(text, MAX_CELL_CHARS);
    let mut out = String::with_capacity(text.len() + 8);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '|' => out.push_str("\\|"),
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push_str("<br>");
                }
            }
            '\n' => out.push_str("<br>"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    if cut {
        out.push('…');
    }
    out
}

/// Text on one line outside a table (headings, list items): line breaks become spaces.
fn inline(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A code block whose fence no backtick run inside `body` can close.
fn fenced(out: &mut String, lang: &str, body: &str) {
    let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let _ = writeln!(out, "{fence}{lang}\n{body}\n{fence}\n");
}

/// Compact JSON, cut to [`MAX_DATA_CHARS`].
fn summarise(data: &Value) -> String {
    let compact = data.to_string();
    let (shown, cut) = truncate(&compact, MAX_DATA_CHARS);
    if cut {
        format!("{shown}… ({} bytes in the record)", compact.len())
    } else {
        compact
    }
}

/// The first `max` characters of `text`, and whether anything was cut.
fn truncate(text: &str, max: usize) -> (&str, bool) {
    match text.char_indices().nth(max) {
        Some((at, _)) => (&text[..at], true),
        None => (text, false),
    }
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn secs(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    firebreak_shared::incident::seconds_between(from, to)
}

/// A duration a person reads at a glance: `45s`, `12m 5s`, `3h 2m`, `2d 4h`.
pub fn human(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "unknown".to_owned();
    }
    if seconds < 1.0 {
        return "under 1s".to_owned();
    }
    // Whole seconds: a report does not need sub-second precision, and the raw figure is
    // printed beside it.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let total = seconds.round() as u64;
    let (d, h, m, s) = (
        total / 86_400,
        total % 86_400 / 3_600,
        total % 3_600 / 60,
        total % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use firebreak_shared::incident::{
        ActionRecord, Engagements, Enrichment, EnrichmentResult, NotificationRecord,
    };
    use firebreak_shared::playbook::PlaybookSet;
    use firebreak_shared::triage::decide;
    use serde_json::json;

    const COMPOSITE: &[u8] = include_bytes!(
        "../../../tests/fixtures/events/cloudwatch-alarm/docs-composite-alarm-with-suppressor-ok-to-alarm.json"
    );

    /// An opened incident from a real alarm (the starter library's `service-down`).
    pub(crate) fn sample() -> Incident {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let signal = firebreak_shared::signal::parse(COMPOSITE, at)
            .expect("fixture parses")
            .remove(0);
        let playbooks = PlaybookSet::starter();
        let d = decide(&signal, &playbooks);
        let opened = signal.observed_at + chrono::Duration::seconds(30);
        Incident::open(&d, "INC-20231114-0000abcd".to_owned(), opened)
    }

    fn resolved() -> Incident {
        let mut i = sample();
        let end = i.signals.first_seen + chrono::Duration::seconds(600);
        i.resolve("close", "alarm back to OK", end, 86_400)
            .expect("open resolves");
        i
    }

    fn section<'a>(report: &'a str, heading: &str) -> &'a str {
        let start = report
            .find(&format!("## {heading}\n"))
            .unwrap_or_else(|| panic!("no {heading} section in:\n{report}"));
        let rest = &report[start + 3..];
        let end = rest.find("\n## ").map_or(rest.len(), |e| e + 1);
        &rest[..end]
    }

    #[test]
    fn every_section_is_present_in_order() {
        let report = render(&resolved());
        assert!(report.starts_with("# Post-incident report: INC-20231114-0000abcd\n"));
        let headings = [
            "Summary",
            "Metrics",
            "Timeline",
            "Signals",
            "Enrichment",
            "Actions",
            "Notifications",
            "Engagements",
            "Follow-ups",
        ];
        let positions: Vec<usize> = headings
            .iter()
            .map(|h| report.find(&format!("\n## {h}\n")).unwrap_or(usize::MAX))
            .collect();
        assert!(positions.iter().all(|p| *p != usize::MAX), "{report}");
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{report}");
    }

    #[test]
    fn the_summary_says_who_resolved_it_and_why() {
        let report = render(&resolved());
        let summary = section(&report, "Summary");
        assert!(summary.contains("| Status | resolved |"), "{summary}");
        assert!(summary.contains("| Severity | critical |"), "{summary}");
        assert!(summary.contains("| Playbook | service-down |"), "{summary}");
        assert!(summary.contains("| Resolved by | close |"), "{summary}");
        assert!(
            summary.contains("| Resolution reason | alarm back to OK |"),
            "{summary}"
        );
    }

    #[test]
    fn metrics_read_as_durations_and_mtta_says_not_acknowledged() {
        let report = render(&resolved());
        let metrics = section(&report, "Metrics");
        assert!(
            metrics.contains("| MTTD (time to detect) | 30s (30 s) |"),
            "{metrics}"
        );
        assert!(
            metrics.contains("| MTTR (time to resolve) | 10m 0s (600 s) |"),
            "{metrics}"
        );
        assert!(
            metrics.contains("| MTTA (time to acknowledge) | not acknowledged |"),
            "{metrics}"
        );
        let follow = section(&report, "Follow-ups");
        assert!(follow.contains("Nobody acknowledged"), "{follow}");
    }

    #[test]
    fn an_acknowledged_incident_shows_its_mtta() {
        let mut i = sample();
        i.acknowledge(
            "remediate",
            i.opened_at + chrono::Duration::seconds(90),
            None,
        )
        .expect("ack");
        let report = render(&i);
        assert!(
            report.contains("| MTTA (time to acknowledge) | 1m 30s (90 s) |"),
            "{report}"
        );
        assert!(!section(&report, "Follow-ups").contains("Nobody acknowledged"));
    }

    #[test]
    fn pipes_and_line_breaks_in_cells_cannot_break_a_table() {
        let mut i = resolved();
        i.title = "db | primary\ndown".to_owned();
        i.note(
            i.opened_at,
            "cli:eve",
            "commented",
            "ok",
            Some("a | b\r\nc <script>alert(1)</script>".to_owned()),
        );
        let report = render(&i);
        assert!(
            report.contains("| Title | db \\| primary<br>down |"),
            "{report}"
        );
        assert!(
            report.contains("| a \\| b<br>c &lt;script&gt;alert(1)&lt;/script&gt; |"),
            "{report}"
        );
        // Every table row still has the same number of unescaped pipes as its header.
        let timeline = section(&report, "Timeline");
        for line in timeline.lines().filter(|l| l.starts_with('|')) {
            let pipes = line.replace("\\|", "").matches('|').count();
            assert_eq!(pipes, 6, "{line}");
        }
        // The heading keeps to one line too.
        assert!(report.contains("\ndb | primary down\n"), "{report}");
    }

    #[test]
    fn enrichment_is_summarised_and_failures_become_follow_ups() {
        let mut i = resolved();
        let big: Vec<u32> = (0..500).collect();
        i.enrichment = Some(Enrichment {
            at: i.opened_at,
            results: vec![
                EnrichmentResult {
                    enricher: "cloudwatch.alarm_history".to_owned(),
                    target: Some("checkout".to_owned()),
                    outcome: "ok".to_owned(),
                    data: json!({"history": big}),
                    error: None,
                },
                EnrichmentResult {
                    enricher: "ec2.describe".to_owned(),
                    target: Some("i-0123456789abcdef0".to_owned()),
                    outcome: "failed".to_owned(),
                    data: Value::Null,
                    error: Some("AccessDenied".to_owned()),
                },
            ],
        });
        let report = render(&i);
        let enrichment = section(&report, "Enrichment");
        assert!(enrichment.contains("| cloudwatch.alarm_history | checkout | ok |"));
        assert!(enrichment.contains("bytes in the record)"), "{enrichment}");
        assert!(
            !enrichment.contains("499"),
            "data must be summarised, not dumped"
        );
        assert!(
            enrichment.contains("| failed | error: AccessDenied |"),
            "{enrichment}"
        );
        let follow = section(&report, "Follow-ups");
        assert!(
            follow.contains(
                "- [ ] Enricher ec2.describe failed on i-0123456789abcdef0: AccessDenied"
            )
        );
    }

    #[test]
    fn actions_show_their_evidence_in_a_fence_it_cannot_close() {
        let mut i = resolved();
        i.actions = vec![
            ActionRecord {
                id: "a1".to_owned(),
                kind: "ec2.isolate".to_owned(),
                target: Some("i-0123456789abcdef0".to_owned()),
                outcome: "succeeded".to_owned(),
                started_at: i.opened_at,
                finished_at: Some(i.opened_at + chrono::Duration::seconds(4)),
                evidence: json!({"previous_groups": ["sg-1"], "note": "```oops```"}),
            },
            ActionRecord {
                id: "a2".to_owned(),
                kind: "ec2.snapshot".to_owned(),
                target: None,
                outcome: "failed".to_owned(),
                started_at: i.opened_at,
                finished_at: None,
                evidence: Value::Null,
            },
        ];
        let report = render(&i);
        let actions = section(&report, "Actions");
        assert!(actions.contains("### 1. ec2.isolate on i-0123456789abcdef0: succeeded"));
        assert!(actions.contains("````json\n"), "{actions}");
        assert!(actions.contains("\"previous_groups\""), "{actions}");
        assert!(actions.contains("(after 4s)"), "{actions}");
        assert!(actions.contains("### 2. ec2.snapshot on no target: failed"));
        assert!(actions.contains("No evidence was recorded."));
        let follow = section(&report, "Follow-ups");
        assert!(
            follow.contains("- [ ] Action ec2.snapshot failed"),
            "{follow}"
        );
    }

    #[test]
    fn huge_evidence_is_cut_with_a_note() {
        let mut i = resolved();
        i.actions = vec![ActionRecord {
            id: "a1".to_owned(),
            kind: "ec2.snapshot".to_owned(),
            target: None,
            outcome: "succeeded".to_owned(),
            started_at: i.opened_at,
            finished_at: None,
            evidence: json!({"blob": "x".repeat(10_000)}),
        }];
        let report = render(&i);
        assert!(report.len() < 6_000, "{}", report.len());
        assert!(report.contains("Evidence cut at 2000 characters"));
    }

    #[test]
    fn notifications_and_engagements_are_listed() {
        let mut i = resolved();
        i.notifications = vec![NotificationRecord {
            event_id: format!("{}/opened", i.id),
            topic: "arn:aws:sns:eu-west-1:123456789012:firebreak".to_owned(),
            subject: "[CRITICAL] open: service down".to_owned(),
            claimed_at: i.opened_at,
            sent_at: None,
            message_id: None,
        }];
        i.engagements = Engagements {
            incident_manager_arn: Some(
                "arn:aws:ssm-incidents::123456789012:incident-record/plan/abc".to_owned(),
            ),
        };
        i.note(
            i.opened_at,
            "close",
            INCIDENT_MANAGER_RESOLVED,
            "failed",
            Some("AccessDenied".to_owned()),
        );
        let report = render(&i);
        assert!(section(&report, "Notifications").contains("| not confirmed | - |"));
        assert!(section(&report, "Engagements").contains("(resolving it there failed)"));
        let follow = section(&report, "Follow-ups");
        assert!(follow.contains("never confirmed sent"), "{follow}");
        assert!(
            follow.contains("Resolve the incident in AWS Incident Manager by hand: AccessDenied")
        );
    }

    #[test]
    fn a_noisy_signal_suggests_tuning_the_alarm() {
        let mut i = resolved();
        i.signals.count = 42;
        let follow = render(&i);
        assert!(
            follow.contains("- [ ] The signal fired 42 times: tune the alarm"),
            "{follow}"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human(0.2), "under 1s");
        assert_eq!(human(45.0), "45s");
        assert_eq!(human(725.0), "12m 5s");
        assert_eq!(human(3.0 * 3600.0 + 120.0), "3h 2m");
        assert_eq!(human(2.0 * 86_400.0 + 4.0 * 3600.0), "2d 4h");
        assert_eq!(human(f64::NAN), "unknown");
    }

    #[test]
    fn long_cells_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_CELL_CHARS + 10);
        let c = cell(&long);
        assert!(c.ends_with('…'));
        assert_eq!(c.chars().count(), MAX_CELL_CHARS + 1);
    }
}
