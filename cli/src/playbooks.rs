//! Where the CLI finds playbooks when it is not told.

use std::path::{Path, PathBuf};

use firebreak_shared::playbook::{PlaybookSet, ValidationError};

/// The directory `sam deploy` ships, relative to a checkout's root.
pub const DEFAULT_DIR: &str = "infra/playbooks";

/// Which playbooks a command runs with, said plainly so output can name them.
pub enum Origin {
    Dir(PathBuf),
    Starter,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Dir(dir) => write!(f, "{}", dir.display()),
            Origin::Starter => f.write_str("built-in starter library"),
        }
    }
}

/// An explicit directory, else `./infra/playbooks` when run from a checkout, else the starter
/// library compiled into the binary, so that triage works from anywhere.
pub fn load(explicit: Option<&Path>) -> Result<(PlaybookSet, Origin), Vec<ValidationError>> {
    let dir = match explicit {
        Some(dir) => dir.to_path_buf(),
        None => {
            let default = PathBuf::from(DEFAULT_DIR);
            if !default.is_dir() {
                return Ok((PlaybookSet::starter(), Origin::Starter));
            }
            default
        }
    };
    PlaybookSet::load_dir(&dir).map(|set| (set, Origin::Dir(dir)))
}
