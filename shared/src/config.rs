//! Configuration every stage reads at init, from the environment the template sets.
//!
//! A bad value fails init with a message naming the variable, so a broken deploy shows up on
//! the first cold start rather than on the first incident.

use std::path::Path;

use crate::playbook::PlaybookSet;

/// Where the deployed playbooks are: the template mounts `infra/` as a layer and sets this to
/// `/opt/playbooks`. Unset means the starter library compiled into the function.
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
