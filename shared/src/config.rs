//! Configuration every stage reads at init, from the environment the template sets.
//!
//! A bad value fails init with a message naming the variable, so a broken deploy shows up on
//! the first cold start rather than on the first incident.

use std::path::PathBuf;

use crate::playbook::{PlaybookSet, ValidationError};

/// Where the deployed playbooks are (the template sets it to the layer's `/opt/playbooks`).
/// Unset means the starter library compiled into the function.
pub const PLAYBOOKS_DIR_ENV: &str = "FIREBREAK_PLAYBOOKS_DIR";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}={value}: {count} playbook error(s); first: {first}")]
    Playbooks {
        var: &'static str,
        value: String,
        count: usize,
        first: String,
    },
}

/// The playbooks named by [`PLAYBOOKS_DIR_ENV`], or the starter library when it is unset.
pub fn playbooks_from_env() -> Result<PlaybookSet, ConfigError> {
    match std::env::var_os(PLAYBOOKS_DIR_ENV) {
        None => Ok(PlaybookSet::starter()),
        Some(dir) => {
            let dir = PathBuf::from(dir);
            PlaybookSet::load_dir(&dir).map_err(|errors: Vec<ValidationError>| {
                ConfigError::Playbooks {
                    var: PLAYBOOKS_DIR_ENV,
                    value: dir.display().to_string(),
                    count: errors.len(),
                    first: errors
                        .first()
                        .map_or_else(|| "unknown".to_owned(), ToString::to_string),
                }
            })
        }
    }
}
