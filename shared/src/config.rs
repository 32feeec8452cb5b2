//! Configuration every stage reads at init, from the environment the template sets.
//!
//! A bad value fails init with a message naming the variable, so a broken deploy shows up on
//! the first cold start rather than on the first incident.

use std::path::Path;

use crate::playbook::PlaybookSet;

/// Where the deployed playbooks are: the template mounts `infra/` as a layer and sets this to
/// `/opt/playbooks`. Unset means the starter library compiled into the function.
pub const PLAYBOOKS_DIR_ENV: &str = "FIREBREAK_PLAYBOOKS_DIR";

/// The incident table's name.
pub const TABLE_ENV: &str = "FIREBREAK_TABLE";
/// The lifecycle bus's name.
pub const BUS_ENV: &str = "FIREBREAK_BUS";
/// The topic every lifecycle notification goes to.
pub const TOPIC_ENV: &str = "FIREBREAK_TOPIC_ARN";
/// The topic escalations go to.
pub const ESCALATION_TOPIC_ENV: &str = "FIREBREAK_ESCALATION_TOPIC_ARN";
/// Days a resolved incident is kept before its TTL lets DynamoDB delete it.
pub const RETENTION_ENV: &str = "FIREBREAK_RETENTION_DAYS";
/// `enabled` or `disabled` (the default): whether to engage AWS Incident Manager.
pub const INCIDENT_MANAGER_ENV: &str = "FIREBREAK_INCIDENT_MANAGER";
/// The ARN prefix of the stack's response plans; a playbook's `response_plan` name follows it.
pub const RESPONSE_PLAN_PREFIX_ENV: &str = "FIREBREAK_RESPONSE_PLAN_ARN_PREFIX";

/// Retention when [`RETENTION_ENV`] is unset: a year of incident history.
pub const DEFAULT_RETENTION_DAYS: u32 = 365;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var} is not set; the template sets it ({expected})")]
    Missing {
        var: &'static str,
        expected: &'static str,
    },
    #[error("{var}={value:?} is not {expected}")]
    Invalid {
        var: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("{var}={value}: {count} playbook error(s); first: {first}")]
    Playbooks {
        var: &'static str,
        value: String,
        count: usize,
        first: String,
    },
}

/// Reads configuration through `lookup`: the process environment in a function, a map in tests
/// (mutating the real environment is unsound once threads run).
pub struct Env<F: Fn(&str) -> Option<String>>(pub F);

/// The process environment.
pub fn process_env() -> Env<impl Fn(&str) -> Option<String>> {
    Env(|name: &str| std::env::var(name).ok())
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    fn get(&self, var: &'static str) -> Option<String> {
        (self.0)(var).filter(|v| !v.trim().is_empty())
    }

    fn checked(
        &self,
        var: &'static str,
        expected: &'static str,
        ok: impl Fn(&str) -> bool,
    ) -> Result<String, ConfigError> {
        let value = self
            .get(var)
            .ok_or(ConfigError::Missing { var, expected })?;
        if ok(&value) {
            Ok(value)
        } else {
            Err(ConfigError::Invalid {
                var,
                value,
                expected,
            })
        }
    }

    /// The table name: DynamoDB's 3–255 characters of `[A-Za-z0-9_.-]`.
    pub fn table(&self) -> Result<String, ConfigError> {
        self.checked(TABLE_ENV, "a DynamoDB table name", |v| {
            (3..=255).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        })
    }

    /// The bus name (or ARN): EventBridge's 1–256 characters of `[A-Za-z0-9/._-]` (ARNs add `:`).
    pub fn bus(&self) -> Result<String, ConfigError> {
        self.checked(BUS_ENV, "an EventBridge bus name or ARN", |v| {
            (1..=1600).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/._-:".contains(&b))
        })
    }

    fn topic(&self, var: &'static str) -> Result<String, ConfigError> {
        self.checked(
            var,
            "an SNS topic ARN (arn:<partition>:sns:<region>:<account>:<name>)",
            |v| {
                let parts: Vec<&str> = v.split(':').collect();
                parts.len() == 6
                    && parts[0] == "arn"
                    && parts[1].starts_with("aws")
                    && parts[2] == "sns"
                    && !parts[3].is_empty()
                    && parts[4].len() == 12
                    && parts[4].bytes().all(|b| b.is_ascii_digit())
                    && !parts[5].is_empty()
            },
        )
    }

    pub fn topic_arn(&self) -> Result<String, ConfigError> {
        self.topic(TOPIC_ENV)
    }

    pub fn escalation_topic_arn(&self) -> Result<String, ConfigError> {
        self.topic(ESCALATION_TOPIC_ENV)
    }

    /// Retention in seconds; [`DEFAULT_RETENTION_DAYS`] when unset.
    pub fn retention_s(&self) -> Result<i64, ConfigError> {
        let Some(value) = self.get(RETENTION_ENV) else {
            return Ok(i64::from(DEFAULT_RETENTION_DAYS) * 86_400);
        };
        match value.trim().parse::<u32>() {
            Ok(days) if (1..=36_500).contains(&days) => Ok(i64::from(days) * 86_400),
            _ => Err(ConfigError::Invalid {
                var: RETENTION_ENV,
                value,
                expected: "a whole number of days from 1 to 36500",
            }),
        }
    }

    /// The response plan ARN prefix when Incident Manager is enabled, `None` when it is not.
    pub fn incident_manager(&self) -> Result<Option<String>, ConfigError> {
        match self.get(INCIDENT_MANAGER_ENV).as_deref() {
            None | Some("disabled") => Ok(None),
            Some("enabled") => self
                .checked(
                    RESPONSE_PLAN_PREFIX_ENV,
                    "arn:<partition>:ssm-incidents::<account>:response-plan/[<name prefix>]",
                    |v| {
                        v.starts_with("arn:")
                            && v.contains(":ssm-incidents::")
                            && v.contains(":response-plan/")
                    },
                )
                .map(Some),
            Some(other) => Err(ConfigError::Invalid {
                var: INCIDENT_MANAGER_ENV,
                value: other.to_owned(),
                expected: "enabled or disabled",
            }),
        }
    }
}

/// The playbooks named by [`PLAYBOOKS_DIR_ENV`], or the starter library when it is unset.
pub fn playbooks_from_env() -> Result<PlaybookSet, ConfigError> {
    let dir = std::env::var_os(PLAYBOOKS_DIR_ENV);
    playbooks_from(dir.as_deref().map(Path::new))
}

/// The playbooks in `dir`, or the starter library when there is none. Every error names the
/// variable, because that is what an operator will look for in the template.
pub fn playbooks_from(dir: Option<&Path>) -> Result<PlaybookSet, ConfigError> {
    let Some(dir) = dir else {
        return Ok(PlaybookSet::starter());
    };
    PlaybookSet::load_dir(dir).map_err(|errors| ConfigError::Playbooks {
        var: PLAYBOOKS_DIR_ENV,
        value: dir.display().to_string(),
        count: errors.len(),
        first: errors
            .first()
            .map_or_else(|| "unknown".to_owned(), ToString::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("firebreak-config-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    fn env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Env(move |k: &str| map.get(k).cloned())
    }

    #[test]
    fn a_missing_table_names_the_variable() {
        let err = env(&[])
            .table()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("FIREBREAK_TABLE is not set"), "{err}");
    }

    #[test]
    fn a_topic_that_is_not_an_sns_arn_is_refused() {
        let bad = env(&[(TOPIC_ENV, "arn:aws:sqs:eu-west-1:123456789012:q")]);
        assert!(matches!(bad.topic_arn(), Err(ConfigError::Invalid { .. })));
        let good = env(&[(TOPIC_ENV, "arn:aws:sns:eu-west-1:123456789012:firebreak")]);
        assert!(good.topic_arn().is_ok());
    }

    #[test]
    fn retention_defaults_to_a_year_and_refuses_nonsense() {
        assert_eq!(env(&[]).retention_s().ok(), Some(365 * 86_400));
        assert_eq!(
            env(&[(RETENTION_ENV, "30")]).retention_s().ok(),
            Some(30 * 86_400)
        );
        assert!(env(&[(RETENTION_ENV, "-1")]).retention_s().is_err());
        assert!(env(&[(RETENTION_ENV, "forever")]).retention_s().is_err());
    }

    #[test]
    fn incident_manager_is_off_unless_enabled_with_a_plan_prefix() {
        assert_eq!(env(&[]).incident_manager().ok(), Some(None));
        assert!(
            env(&[(INCIDENT_MANAGER_ENV, "enabled")])
                .incident_manager()
                .is_err()
        );
        assert!(
            env(&[(INCIDENT_MANAGER_ENV, "yes")])
                .incident_manager()
                .is_err()
        );
        let on = env(&[
            (INCIDENT_MANAGER_ENV, "enabled"),
            (
                RESPONSE_PLAN_PREFIX_ENV,
                "arn:aws:ssm-incidents::123456789012:response-plan/",
            ),
        ]);
        assert!(on.incident_manager().is_ok_and(|p| p.is_some()));
    }

    #[test]
    fn no_directory_means_the_starter_library() {
        let set = playbooks_from(None).expect("starter loads");
        assert_eq!(set.len(), PlaybookSet::starter().len());
    }

    #[test]
    fn a_directory_of_valid_playbooks_is_what_runs() {
        let dir = scratch("valid");
        std::fs::write(
            dir.join("only.yaml"),
            "name: only\npriority: 1\nmatch: {sources: [guardduty]}\n",
        )
        .expect("write");
        let set = playbooks_from(Some(&dir)).expect("loads");
        assert_eq!(
            set.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["only"]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_invalid_playbook_fails_init_naming_the_variable_and_the_line() {
        let dir = scratch("invalid");
        std::fs::write(
            dir.join("bad.yaml"),
            "name: bad\npriority: 1\nmatch: {sources: [guardduty]}\nenrich: [ec2.magic]\n",
        )
        .expect("write");
        let err = playbooks_from(Some(&dir))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with(PLAYBOOKS_DIR_ENV), "{err}");
        assert!(err.contains("bad.yaml:4"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_directory_fails_init_rather_than_running_the_starter_library() {
        let dir = std::env::temp_dir().join("firebreak-config-does-not-exist");
        let err = playbooks_from(Some(&dir))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("does-not-exist"), "{err}");
    }
}
