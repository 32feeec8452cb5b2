//! `firebreak`: the command-line face of Firebreak.
//!
//! `triage` and `validate` work offline on event files and playbooks; they never call AWS.
//! `demo` and `simulate` run the five stages against a local AWS (moto) they start themselves.
//! `incidents` reads and acts on a deployed stack.

mod playbooks;
mod triage;
mod validate;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use firebreak_cli::engine::Options;
use firebreak_cli::sandbox::LocalAws;
use firebreak_cli::simulate as sim;
use firebreak_cli::template::Template;

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
    /// Watch Firebreak respond to six scenarios in a sandbox account on a local AWS.
    ///
    /// Starts moto_server on a free loopback port, builds the stack from template.yaml, seeds
    /// instances, and plays: an alarm that fires and recovers, an EC2 compromise found by
    /// GuardDuty, a brute-force probe, a storm of repeats, a protected instance, and a playbook
    /// in approve mode. Needs no AWS account.
    Demo {
        /// Remediation only records what it would do (the deployed default).
        #[arg(long)]
        dry_run: bool,
        /// Playbook directory [default: ./infra/playbooks if present, else the built-in starter library]
        #[arg(long, value_name = "DIR")]
        playbooks: Option<PathBuf>,
    },
    /// Replay real event files, in order, through the five stages on a local AWS.
    ///
    /// Each instance an event names gets a sandbox stand-in (tags, volumes, VPC, group) and
    /// the event's ids are mapped to it. Routing is the template's own rules, in moto's
    /// EventBridge. The sandbox runs live, so remediation really changes the sandbox.
    Simulate {
        /// Event files as AWS delivers them; `-` for standard input.
        #[arg(required = true, value_name = "EVENT")]
        files: Vec<PathBuf>,
        /// Print one JSON report instead of progress and tables.
        #[arg(long)]
        json: bool,
        /// Playbook directory [default: ./infra/playbooks if present, else the built-in starter library]
        #[arg(long, value_name = "DIR")]
        playbooks: Option<PathBuf>,
        /// Remediation only records what it would do.
        #[arg(long)]
        dry_run: bool,
        /// A template parameter, as `sam deploy --parameter-overrides` takes it (NAME=VALUE).
        #[arg(long = "parameter", value_name = "NAME=VALUE")]
        parameters: Vec<String>,
    },
    /// Read and act on a deployed stack's incidents (needs AWS credentials).
    Incidents(firebreak_cli::incidents::IncidentsArgs),
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
        Command::Demo { dry_run, playbooks } => block_on(demo(dry_run, playbooks.as_deref())),
        Command::Simulate {
            files,
            json,
            playbooks,
            dry_run,
            parameters,
        } => block_on(simulate(
            &files,
            json,
            playbooks.as_deref(),
            dry_run,
            &parameters,
        )),
        Command::Incidents(args) => block_on(async {
            let mut out = std::io::stdout();
            firebreak_cli::incidents::run(args, &mut out)
                .await
                .map_err(|e| e.to_string())
        }),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("firebreak: {err}");
            ExitCode::from(EXIT_NOT_UNDERSTOOD)
        }
    }
}

fn block_on<F: std::future::Future<Output = Result<ExitCode, String>>>(
    f: F,
) -> Result<ExitCode, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?
        .block_on(f)
}

fn options(
    playbook_dir: Option<&Path>,
    dry_run: bool,
    parameters: &[String],
) -> Result<Options, String> {
    let (playbooks, origin) = playbooks::load(playbook_dir).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        format!("invalid playbooks:\n{}", lines.join("\n"))
    })?;
    eprintln!("playbooks: {origin}");
    let mut template = Template::embedded().map_err(|e| e.to_string())?;
    for p in parameters {
        let Some((name, value)) = p.split_once('=') else {
            return Err(format!("--parameter {p}: expected NAME=VALUE"));
        };
        template = template
            .with_parameter(name, value)
            .map_err(|e| e.to_string())?;
    }
    Ok(Options {
        playbooks,
        template,
        dry_run,
    })
}

fn start_local_aws() -> Result<LocalAws, String> {
    let local = LocalAws::start().map_err(|e| e.to_string())?;
    eprintln!("local AWS: moto_server at {}", local.endpoint());
    Ok(local)
}

async fn demo(dry_run: bool, playbook_dir: Option<&Path>) -> Result<ExitCode, String> {
    let options = options(playbook_dir, dry_run, &[])?;
    let local = start_local_aws()?;
    let mut out = std::io::stdout();
    firebreak_cli::demo::run(&local, options, &mut out)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

async fn simulate(
    files: &[PathBuf],
    json: bool,
    playbook_dir: Option<&Path>,
    dry_run: bool,
    parameters: &[String],
) -> Result<ExitCode, String> {
    let inputs = sim::read_inputs(files).map_err(|e| e.to_string())?;
    let options = options(playbook_dir, dry_run, parameters)?;
    let local = start_local_aws()?;
    let report = sim::simulate(&local, &inputs, options, move |line| {
        let text = sim::format_line(line);
        if json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    let mut out = std::io::stdout();
    if json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        writeln!(out, "{text}").map_err(|e| e.to_string())?;
    } else {
        sim::print_report(&report, &mut out).map_err(|e| e.to_string())?;
    }
    Ok(ExitCode::SUCCESS)
}
