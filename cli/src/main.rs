//! `firebreak`: the command-line face of Firebreak.
//!
//! `triage` and `validate` work offline on event files and playbooks; they never call AWS.

mod playbooks;
mod triage;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Response-as-code for AWS: CloudWatch alarms and security findings in, incidents out.
#[derive(Debug, Parser)]
#[command(name = "firebreak", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse events, match them to playbooks and print what would happen. Changes nothing.
    ///
    /// Each FILE holds one event as AWS delivers it: an EventBridge event, a direct alarm
    /// action payload, a Lambda SNS event, or a bare GuardDuty or Security Hub finding.
    /// `-` reads standard input. Exits 0 when every input was understood (ignored included),
    /// 2 when one was not.
    Triage {
        /// Event files to triage; `-` for standard input.
        #[arg(required = true, value_name = "FILE|-")]
        files: Vec<PathBuf>,
        /// Print one JSON object per signal, one per line.
        #[arg(long)]
        json: bool,
        /// Playbook directory [default: ./infra/playbooks if present, else the built-in starter library]
        #[arg(long, value_name = "DIR")]
        playbooks: Option<PathBuf>,
    },
    /// Check every playbook in DIR and report errors as file:line. Exits 0 when all are valid.
    Validate {
        /// Playbook directory.
        #[arg(value_name = "DIR", default_value = "infra/playbooks")]
        dir: PathBuf,
    },
}

/// Exit status for input or playbooks Firebreak could not understand.
const EXIT_NOT_UNDERSTOOD: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Triage {
            files,
            json,
            playbooks,
        } => triage::run(&files, json, playbooks.as_deref()),
        Command::Validate { dir } => validate::run(&dir),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("firebreak: {err}");
            ExitCode::from(EXIT_NOT_UNDERSTOOD)
        }
    }
}
