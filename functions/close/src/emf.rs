//! The MTTx figures as CloudWatch metrics, through the Embedded Metric Format.
//!
//! When an incident is resolved, the close stage writes one JSON line to stdout. CloudWatch
//! Logs recognises the `_aws` member and turns the line into metrics: no `PutMetricData` call,
//! no IAM permission, and no share of any API throttling budget. The line is also a normal log
//! event, so Logs Insights can query the incident id and who resolved it.
//!
//! | | |
//! |---|---|
//! | Namespace | `Firebreak` ([`NAMESPACE`]) |
//! | Dimensions | one set: `Playbook`, `Severity` ([`DIMENSIONS`]) |
//! | `Playbook` | the playbook's name; `none` for notify-only incidents no playbook matched |
//! | `Severity` | `info`, `low`, `medium`, `high` or `critical` |
//! | `MTTD` (Seconds) | first signal observed → incident opened |
//! | `MTTA` (Seconds) | incident opened → first acknowledgement (an automated action counts); absent when nobody acknowledged |
//! | `MTTR` (Seconds) | first signal observed → incident resolved |
//! | `IncidentsResolved` (Count) | 1 per resolved incident |
//!
//! Only figures that are known are written: an unacknowledged incident has no `MTTA` value
//! rather than a zero that would drag the average down. The timestamp is the resolution time,
//! so a late or retried line lands in the right period. Only the invocation that made the
//! transition to resolved writes the line, so a duplicate delivery never counts twice.
//! `docs/metrics.md` shows how to graph and alarm on these.
//!
//! Production writes straight to stdout, not through `tracing`, whose formatter would wrap
//! the JSON in a log line that CloudWatch no longer recognises as EMF.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use firebreak_shared::incident::Incident;
use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every Firebreak metric.
pub const NAMESPACE: &str = "Firebreak";
/// The one dimension set the metrics are published under.
pub const DIMENSIONS: [&str; 2] = ["Playbook", "Severity"];
/// The `Playbook` dimension value for incidents no playbook matched (a dimension value cannot
/// be empty).
pub const NO_PLAYBOOK: &str = "none";

/// Where EMF lines go: stdout in a function, memory in tests.
#[derive(Debug, Clone, Default)]
pub enum MetricsSink {
    /// One line per write on the process's stdout, which Lambda sends to CloudWatch Logs.
    #[default]
    Stdout,
    /// Lines kept in memory, for tests to read back with [`MetricsSink::lines`].
    Memory(Arc<Mutex<Vec<String>>>),
}

impl MetricsSink {
    /// A sink that keeps its lines in memory.
    pub fn memory() -> MetricsSink {
        MetricsSink::Memory(Arc::default())
    }

    /// The lines written so far (always empty for [`MetricsSink::Stdout`]).
    pub fn lines(&self) -> Vec<String> {
        match self {
            MetricsSink::Stdout => Vec::new(),
            MetricsSink::Memory(lines) => {
                lines.lock().unwrap_or_else(PoisonError::into_inner).clone()
            }
        }
    }

    /// Writes one line. A failed write to stdout is logged and otherwise ignored: losing a
    /// metric must not fail, and so retry, a resolution that already happened.
    pub fn write(&self, line: &str) {
        match self {
            MetricsSink::Stdout => {
                // One locked write per line, so the runtime's own log lines cannot interleave.
                let mut out = std::io::stdout().lock();
                if let Err(err) = writeln!(out, "{line}").and_then(|()| out.flush()) {
                    tracing::warn!(error = %err, "could not write the EMF metrics line");
                }
            }
            MetricsSink::Memory(lines) => lines
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(line.to_owned()),
        }
    }
}

/// The EMF document for a resolved incident; `None` when it is not resolved.
pub fn document(incident: &Incident) -> Option<Value> {
    let resolution = incident.resolution.as_ref()?;
    let figures = [
        ("MTTD", incident.metrics.mttd_s),
        ("MTTA", incident.metrics.mtta_s),
        ("MTTR", incident.metrics.mttr_s),
    ];
    let mut definitions: Vec<Value> = figures
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(name, _)| json!({"Name": name, "Unit": "Seconds"}))
        .collect();
    definitions.push(json!({"Name": "IncidentsResolved", "Unit": "Count"}));

    let mut root = Map::new();
    root.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": resolution.at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [DIMENSIONS],
                "Metrics": definitions,
            }],
        }),
    );
    root.insert(
        "Playbook".to_owned(),
        Value::from(incident.playbook.as_deref().unwrap_or(NO_PLAYBOOK)),
    );
    root.insert(
        "Severity".to_owned(),
        Value::from(incident.severity.as_str()),
    );
    for (name, value) in figures {
        if let Some(v) = value {
            root.insert(name.to_owned(), Value::from(v));
        }
    }
    root.insert("IncidentsResolved".to_owned(), Value::from(1));
    // Context for Logs Insights; not dimensions, so they cost no metric cardinality.
    root.insert("IncidentId".to_owned(), Value::from(incident.id.as_str()));
    root.insert("ResolvedBy".to_owned(), Value::from(resolution.by.as_str()));
    root.insert("Source".to_owned(), Value::from(incident.source.as_str()));
    Some(Value::Object(root))
}

/// [`document`] as the single line CloudWatch Logs expects.
pub fn line(incident: &Incident) -> Option<String> {
    document(incident).map(|doc| doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_shared::incident::{Metrics, Resolution};

    fn resolved(mtta: Option<f64>) -> Incident {
        let mut incident = crate::report::tests::sample();
        incident.metrics = Metrics {
            mttd_s: Some(30.0),
            mtta_s: mtta,
            mttr_s: Some(600.5),
        };
        incident.resolution = Some(Resolution {
            at: incident.opened_at + chrono::Duration::seconds(570),
            by: "close".to_owned(),
            reason: "alarm back to OK".to_owned(),
        });
        incident
    }

    #[test]
    fn the_line_is_one_line_of_json_in_the_firebreak_namespace() {
        let line = line(&resolved(Some(12.0))).expect("resolved incidents have a line");
        assert!(!line.contains('\n'));
        let doc: Value = serde_json::from_str(&line).expect("valid JSON");
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Firebreak");
        assert_eq!(directive["Dimensions"], json!([["Playbook", "Severity"]]));
        assert!(doc["_aws"]["Timestamp"].is_i64());
        assert_eq!(doc["Playbook"], "service-down");
        assert_eq!(doc["Severity"], "critical");
        assert_eq!(doc["MTTD"], 30.0);
        assert_eq!(doc["MTTA"], 12.0);
        assert_eq!(doc["MTTR"], 600.5);
        assert_eq!(doc["IncidentsResolved"], 1);
    }

    #[test]
    fn every_declared_metric_has_a_value_and_every_dimension_a_string() {
        let doc = document(&resolved(Some(12.0))).expect("document");
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        for m in directive["Metrics"].as_array().expect("metrics") {
            let name = m["Name"].as_str().expect("name");
            assert!(doc[name].is_number(), "{name} has no value");
            assert!(matches!(m["Unit"].as_str(), Some("Seconds" | "Count")));
        }
        for d in DIMENSIONS {
            assert!(doc[d].as_str().is_some_and(|v| !v.is_empty()), "{d}");
        }
    }

    #[test]
    fn an_unacknowledged_incident_publishes_no_mtta() {
        let doc = document(&resolved(None)).expect("document");
        let names: Vec<&str> = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .filter_map(|m| m["Name"].as_str())
            .collect();
        assert_eq!(names, ["MTTD", "MTTR", "IncidentsResolved"]);
        assert!(doc.get("MTTA").is_none());
    }

    #[test]
    fn an_incident_without_a_playbook_is_published_under_none() {
        let mut incident = resolved(None);
        incident.playbook = None;
        let doc = document(&incident).expect("document");
        assert_eq!(doc["Playbook"], NO_PLAYBOOK);
    }

    #[test]
    fn an_open_incident_has_no_metrics_line() {
        let mut incident = resolved(None);
        incident.resolution = None;
        assert!(line(&incident).is_none());
    }

    #[test]
    fn a_memory_sink_keeps_its_lines_in_order() {
        let sink = MetricsSink::memory();
        sink.write("a");
        sink.clone().write("b");
        assert_eq!(sink.lines(), ["a", "b"]);
        assert!(MetricsSink::Stdout.lines().is_empty());
    }
}
