//! `firebreak validate`: every playbook error, as `file:line: message`.

use std::path::Path;
use std::process::ExitCode;

use firebreak_shared::playbook::PlaybookSet;

use crate::EXIT_NOT_UNDERSTOOD;

pub fn run(dir: &Path) -> Result<ExitCode, String> {
    match PlaybookSet::load_dir(dir) {
        Ok(set) => {
            let n = set.len();
            let plural = if n == 1 { "" } else { "s" };
            println!("{}: {n} playbook{plural} valid", dir.display());
            for playbook in set.iter() {
                println!(
                    "  {:>4}  {:<28} {}",
                    playbook.priority,
                    playbook.name,
                    playbook.file.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for error in &errors {
                eprintln!("{error}");
            }
            eprintln!(
                "{}: {} error{}",
                dir.display(),
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            Ok(ExitCode::from(EXIT_NOT_UNDERSTOOD))
        }
    }
}
