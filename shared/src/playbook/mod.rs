//! Playbooks: the response-as-code files that say what Firebreak does with a signal.
//!
//! A playbook is one YAML file under `infra/playbooks/`; the documented schema is
//! docs/playbooks.md. This module loads a directory of them into a [`PlaybookSet`], refusing
//! anything it does not understand with a [`ValidationError`] that names the file and line, and
//! matches signals against the set: the playbook with the lowest `priority` whose `match` holds
//! wins.
//!
//! - `schema` holds the sections as typed values, `matcher` the compiled `match:` section,
//!   `duration` and `template` the two small languages inside the files.
//! - `load` reads the files, turns serde's errors into [`ValidationError`]s and runs the checks
//!   that need a whole playbook or the whole set; `locate` finds lines for those.
//! - `de` holds the deserialization helpers that keep serde_yaml_ng's line numbers.

pub(crate) mod de;
mod duration;
mod load;
mod locate;
mod matcher;
mod schema;
mod template;

use std::fmt;
use std::path::{Path, PathBuf};

pub use duration::{Duration, DurationError};
pub use matcher::{AlarmKind, MatchBlock, Matcher};
pub use schema::{
    Close, CloseOn, Dedupe, Escalation, EscalationTrigger, Guardrails, IncidentManager, Mode,
    Notify, ProtectedTag, RateLimit, Step, When,
};
pub use template::{MISSING, MissingValue, Template, TemplateError, VARIABLES, Variable};

use crate::catalog::EnricherSpec;
use crate::signal::{Action, Severity, Signal};

/// One loaded, validated playbook.
#[derive(Debug, Clone)]
pub struct Playbook {
    pub name: String,
    pub description: Option<String>,
    /// Lower is checked first; unique across the set.
    pub priority: u32,
    /// The compiled `match:` section.
    pub matcher: Matcher,
    /// The incident's severity; `None` keeps the signal's.
    pub severity: Option<Severity>,
    /// What an alarm's INSUFFICIENT_DATA means under this playbook.
    pub insufficient_data: Action,
    pub dedupe: Dedupe,
    pub enrich: Vec<&'static EnricherSpec>,
    pub remediate: Vec<Step>,
    pub guardrails: Guardrails,
    pub notify: Notify,
    pub close: Close,
    pub incident_manager: Option<IncidentManager>,
    /// The file it was loaded from.
    pub file: PathBuf,
}

impl Playbook {
    /// Whether `signal` satisfies the playbook's `match:` section.
    pub fn matches(&self, signal: &Signal) -> bool {
        self.matcher.matches(signal)
    }

    /// The key that folds repeats of `signal` into one incident: the playbook's `dedupe.key`
    /// rendered for the signal (a missing variable renders as [`MISSING`]), or the signal's
    /// own key when the playbook sets none.
    pub fn dedupe_key(&self, signal: &Signal) -> String {
        match &self.dedupe.key {
            Some(template) => template.render(signal, &self.name),
            None => signal.dedupe_key.clone(),
        }
    }

    /// The severity of the incident `signal` opens.
    pub fn severity_for(&self, signal: &Signal) -> Severity {
        self.severity.unwrap_or(signal.severity)
    }

    /// The remediation steps that run for `signal`, in order (each step's `when` applied).
    pub fn steps_for<'a>(&'a self, signal: &'a Signal) -> impl Iterator<Item = &'a Step> + 'a {
        self.remediate.iter().filter(|s| s.applies_to(signal))
    }

    /// Whether any step changes AWS resources (and so is subject to the guardrails).
    pub fn is_mutating(&self) -> bool {
        self.remediate.iter().any(|s| s.action.mutating)
    }
}

/// A validated set of playbooks, ordered by priority.
#[derive(Debug, Clone, Default)]
pub struct PlaybookSet {
    playbooks: Vec<Playbook>,
}

impl PlaybookSet {
    /// Loads every `*.yaml` and `*.yml` file directly in `dir` (not in subdirectories; files
    /// whose names start with `.` are skipped as editor leftovers). Every file is checked; the
    /// errors of all of them come back together, sorted by file and line.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<PlaybookSet, Vec<ValidationError>> {
        load::load_dir(dir.as_ref())
    }

    /// Builds a set from `(file name, contents)` pairs, checked exactly as [`Self::load_dir`]
    /// checks files. An empty input gives an empty set.
    pub fn from_sources(
        sources: impl IntoIterator<Item = (PathBuf, String)>,
    ) -> Result<PlaybookSet, Vec<ValidationError>> {
        load::build_set(sources.into_iter().collect())
    }

    /// The starter library from `infra/playbooks/`, compiled into the binary.
    pub fn starter() -> PlaybookSet {
        load::starter()
    }

    /// The first playbook, by priority, that matches `signal`.
    pub fn first_match(&self, signal: &Signal) -> Option<&Playbook> {
        self.playbooks.iter().find(|p| p.matches(signal))
    }

    pub fn get(&self, name: &str) -> Option<&Playbook> {
        self.playbooks.iter().find(|p| p.name == name)
    }

    /// The playbooks in priority order.
    pub fn iter(&self) -> std::slice::Iter<'_, Playbook> {
        self.playbooks.iter()
    }

    pub fn len(&self) -> usize {
        self.playbooks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.playbooks.is_empty()
    }
}

impl<'a> IntoIterator for &'a PlaybookSet {
    type Item = &'a Playbook;
    type IntoIter = std::slice::Iter<'a, Playbook>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// One problem in one playbook file, displayed as `file:line: message` (or `file: message`
/// when no line applies, e.g. an unreadable file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Located { file, line: *line, message })]
pub struct ValidationError {
    pub file: PathBuf,
    /// 1-based.
    pub line: Option<usize>,
    pub message: String,
}

impl ValidationError {
    pub(crate) fn new(file: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        ValidationError {
            file: file.to_owned(),
            line,
            message: message.into(),
        }
    }
}

struct Located<'a> {
    file: &'a Path,
    line: Option<usize>,
    message: &'a str,
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}
