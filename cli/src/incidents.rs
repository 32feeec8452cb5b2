//! `firebreak incidents`: read and act on the incidents of a deployed stack.
//!
//! ```text
//! firebreak incidents [--stack NAME] [--region R] [--profile P] <command>
//!   list [--status open|acknowledged|resolved|unresolved|all] [--limit N] [--json]
//!   show ID [--json]
//!   report ID
//!   ack ID [--note TEXT]
//!   approve ID
//!   resolve ID --note TEXT
//!   rollback ID
//! ```
//!
//! **Where the stack is.** Unless `--table` and `--bus` are given, the CloudFormation stack
//! (`--stack`, default `firebreak`) is described once and its outputs name the table
//! (`IncidentTableName`), the lifecycle bus (`LifecycleBusName`), the global dry-run switch
//! (`DryRunParameterName`) and the topics; its parameters give the retention
//! (`RetentionDays`) and whether Incident Manager is engaged (`EnableIncidentManager`), so a
//! resolution here gets the same TTL and tail as one the close function makes. Only `approve`
//! needs the dry-run switch; with `--table`/`--bus` it needs `--dry-run-parameter` too.
//!
//! **Who acts.** The actor written into the timeline is `cli:<user>`, the user being `$USER`
//! (`$USERNAME` on Windows), reduced to `A-Za-z0-9._@-`, else `cli:unknown`. It is not the
//! AWS identity (there is no STS client here): CloudTrail has that.
//!
//! **What each command does.**
//! - `list` reads one page of the store's `by-status` index per status, newest first: at most
//!   `--limit` each (fewer if DynamoDB's 1 MB page fills first), merged and cut to `--limit`.
//! - `show` prints the record; `report` the post-incident report stored at close, or, for an
//!   unresolved incident, the report rendered from the record as it stands, saying so.
//! - `ack` acknowledges through the state machine (`Incident::acknowledge`): the first sets
//!   MTTA. The lifecycle has no acknowledgement event, so it is on the timeline only.
//! - `resolve` runs the close stage's own [`Close::resolve`]: MTTD/MTTA/MTTR, the retention
//!   TTL, the report, the dedupe key released, Incident Manager and `Incident Resolved` once.
//!   The close function writes its MTTx metrics as an EMF log line, which only Lambda's log
//!   turns into metrics, so here the same figures go to CloudWatch with `PutMetricData`
//!   (same namespace, dimensions and timestamp); a failure there is reported and the
//!   resolution stands, as the close function's own metrics line never fails a resolution.
//! - `approve` and `rollback` run the remediate stage's own [`Remediate::approve`] and
//!   [`Remediate::rollback`] with this machine's credentials, under the deployed dry-run
//!   switch, and print each step's outcome. The playbooks must be the deployed ones: run from
//!   the checkout you deployed (`infra/playbooks`) or pass `--playbooks`.
//!
//! `approve`, `rollback` and `resolve` print what they will do and ask `Proceed? [y/N]` unless
//! `--yes`; without `--yes` and without a terminal on standard input they refuse.
//!
//! **What the caller's credentials need.** `cloudformation:DescribeStacks` (unless `--table`
//! and `--bus`); `dynamodb:GetItem` and `Query` to read; `dynamodb:PutItem` to `ack`;
//! `resolve` what the close function's role has (`dynamodb:PutItem`, `DeleteItem`,
//! `events:PutEvents`, `ssm-incidents:UpdateIncidentRecord` when Incident Manager is on) and
//! `cloudwatch:PutMetricData`; `approve` and `rollback` what the remediate function's role has
//! for the playbook's actions, and `ssm:GetParameter` on the switch.
//!
//! **Exit status.** 0 done; 1 refused (no such incident, the state machine or the stage said
//! no, not confirmed, or a remediation that stopped short); 2 usage, configuration or AWS
//! errors ([`IncidentsError`]).

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use firebreak_close::emf::{self, MetricsSink};
use firebreak_close::report;
use firebreak_close::{Close, Config as CloseConfig};
use firebreak_remediate::{Clients, DryRunSwitch, Remediate};
use firebreak_shared::aws::AwsError;
use firebreak_shared::incident::{Incident, Status};
use firebreak_shared::lifecycle::Bus;
use firebreak_shared::playbook::{Mode, PlaybookSet};
use firebreak_shared::store::{Change, Store, StoreError};
use serde::Serialize;
use serde_json::Value;

/// The stack name `sam deploy` uses unless told otherwise.
pub const DEFAULT_STACK: &str = "firebreak";
/// Where a checkout keeps the playbooks it deploys.
pub const DEFAULT_PLAYBOOKS: &str = "infra/playbooks";
/// The template's default `RetentionDays`, used when the stack is not described.
pub const DEFAULT_RETENTION_DAYS: i64 = 365;

/// The stack outputs read, and the flag that stands in for each.
pub const TABLE_OUTPUT: &str = "IncidentTableName";
pub const BUS_OUTPUT: &str = "LifecycleBusName";
pub const DRY_RUN_OUTPUT: &str = "DryRunParameterName";
pub const NOTIFICATION_TOPIC_OUTPUT: &str = "NotificationTopicArn";
pub const ESCALATION_TOPIC_OUTPUT: &str = "EscalationTopicArn";

/// Timeline events the remediate stage writes that the previews read.
const APPROVAL_REQUESTED: &str = "approval_requested";
const APPROVED: &str = "remediation_approved";

/// The longest title `list` prints before cutting it.
const LIST_TITLE_CHARS: usize = 60;

/// Read and act on the incidents of a deployed Firebreak stack.
#[derive(Debug, Clone, Args)]
pub struct IncidentsArgs {
    #[command(subcommand)]
    pub command: IncidentsCommand,

    /// The CloudFormation stack whose outputs name the table, bus and dry-run switch.
    #[arg(long, global = true, value_name = "NAME", default_value = DEFAULT_STACK)]
    pub stack: String,
    /// AWS region [default: the profile's or AWS_REGION].
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// AWS profile [default: AWS_PROFILE or the default profile].
    #[arg(long, global = true, value_name = "PROFILE")]
    pub profile: Option<String>,
    /// The incident table, instead of the stack's IncidentTableName output.
    #[arg(long, global = true, value_name = "TABLE")]
    pub table: Option<String>,
    /// The lifecycle bus, instead of the stack's LifecycleBusName output.
    #[arg(long, global = true, value_name = "BUS")]
    pub bus: Option<String>,
    /// The global dry-run switch's SSM parameter, instead of the stack's DryRunParameterName.
    #[arg(long, global = true, value_name = "NAME")]
    pub dry_run_parameter: Option<String>,
    /// Playbook directory, as deployed [default: ./infra/playbooks if present, else the built-in starter library]
    #[arg(long, global = true, value_name = "DIR")]
    pub playbooks: Option<PathBuf>,
    /// Do not ask before approve, rollback or resolve.
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// A local AWS (moto, LocalStack) to talk to, with test credentials.
    #[arg(long, global = true, hide = true, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

/// `firebreak incidents` on its own, for parsing outside the main command (tests, scripts).
#[derive(Debug, Parser)]
#[command(name = "incidents")]
struct Standalone {
    #[command(flatten)]
    args: IncidentsArgs,
}

impl IncidentsArgs {
    /// Parses `incidents <options> <command>` as the `firebreak incidents` subcommand would.
    pub fn try_parse_from<I, T>(argv: I) -> Result<IncidentsArgs, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Standalone::try_parse_from(argv).map(|s| s.args)
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum IncidentsCommand {
    /// List incidents, newest first.
    List {
        /// Which incidents to list.
        #[arg(long, value_enum, default_value_t = StatusFilter::Unresolved)]
        status: StatusFilter,
        /// At most this many (one page of the store's index per status).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i32).range(1..=1000))]
        limit: i32,
        /// Print the incidents as a JSON array of their records.
        #[arg(long)]
        json: bool,
    },
    /// Show one incident: status, resources, timeline, actions, notifications, metrics.
    Show {
        id: String,
        /// Print the record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the post-incident report (Markdown); for an unresolved incident, the record so far.
    Report { id: String },
    /// Acknowledge an incident (the first acknowledgement sets MTTA).
    Ack {
        id: String,
        /// A note for the timeline.
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
    },
    /// Approve the steps an `approve` playbook holds, and run them. Asks first.
    Approve { id: String },
    /// Resolve an incident: metrics, report, Incident Resolved. Asks first.
    Resolve {
        id: String,
        /// Why it is resolved; kept in the resolution and the report.
        #[arg(long, value_name = "TEXT", required = true)]
        note: String,
    },
    /// Put isolated instances back into the security groups recorded before. Asks first.
    Rollback { id: String },
}

/// `list --status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFilter {
    Open,
    Acknowledged,
    Resolved,
    /// Open and acknowledged.
    Unresolved,
    All,
}

impl StatusFilter {
    pub fn statuses(self) -> &'static [Status] {
        match self {
            StatusFilter::Open => &[Status::Open],
            StatusFilter::Acknowledged => &[Status::Acknowledged],
            StatusFilter::Resolved => &[Status::Resolved],
            StatusFilter::Unresolved => &[Status::Open, Status::Acknowledged],
            StatusFilter::All => &[Status::Open, Status::Acknowledged, Status::Resolved],
        }
    }
}

/// A failure to run the command at all (exit status 2). A refusal is not one: see
/// [`Outcome::Refused`].
#[derive(Debug, thiserror::Error)]
pub enum IncidentsError {
    #[error(
        "no AWS region: pass --region, set AWS_REGION, or give the profile a region (--profile)"
    )]
    NoRegion,
    #[error(
        "CloudFormation stack {stack} does not exist in {region}: pass --stack NAME (and --region), or --table and --bus (and --dry-run-parameter for approve)"
    )]
    StackNotFound { stack: String, region: String },
    #[error(
        "stack {stack} ({status}) has no output {output}; pass {flag} (the template's Outputs name it; redeploy, or wait until the stack is complete)"
    )]
    MissingOutput {
        stack: String,
        status: String,
        output: &'static str,
        flag: &'static str,
    },
    #[error(
        "the global dry-run switch is unknown: pass --dry-run-parameter NAME (the stack's {DRY_RUN_OUTPUT} output, /<stack>/dry-run in the template)"
    )]
    NoDryRunParameter,
    #[error("{0}")]
    Usage(String),
    #[error("playbooks in {origin} are invalid:\n{errors}")]
    Playbooks { origin: String, errors: String },
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Close(#[from] firebreak_close::Error),
    #[error(transparent)]
    Remediate(#[from] firebreak_remediate::Error),
    #[error("writing the output: {0}")]
    Io(#[from] std::io::Error),
}

impl IncidentsError {
    /// Usage, configuration and AWS errors all exit 2.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(2)
    }
}

/// How a command that ran ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Not done, for this reason: no such incident, refused, not confirmed, stopped short.
    Refused(String),
}

impl Outcome {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Outcome::Done => ExitCode::SUCCESS,
            Outcome::Refused(_) => ExitCode::from(1),
        }
    }

    fn refused(reason: impl Into<String>) -> Result<Outcome, IncidentsError> {
        Ok(Outcome::Refused(reason.into()))
    }
}

/// The deployed stack's resources, as its outputs (or the flags) name them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployed {
    /// The stack described; `None` when `--table` and `--bus` named everything.
    pub stack: Option<String>,
    pub table: String,
    pub bus: String,
    pub dry_run_parameter: Option<String>,
    pub notification_topic_arn: Option<String>,
    pub escalation_topic_arn: Option<String>,
    /// Seconds a resolved incident is kept (the stack's `RetentionDays`).
    pub retention_s: i64,
    /// Whether the stack engages Incident Manager (`EnableIncidentManager`).
    pub incident_manager: bool,
}

impl Deployed {
    /// From the flags alone when `--table` and `--bus` are both given, else from the stack's
    /// outputs and parameters (one `DescribeStacks`), the flags overriding what they name.
    pub async fn locate(sdk: &SdkConfig, args: &IncidentsArgs) -> Result<Deployed, IncidentsError> {
        if let (Some(table), Some(bus)) = (&args.table, &args.bus) {
            return Ok(Deployed {
                stack: None,
                table: table.clone(),
                bus: bus.clone(),
                dry_run_parameter: args.dry_run_parameter.clone(),
                notification_topic_arn: None,
                escalation_topic_arn: None,
                retention_s: DEFAULT_RETENTION_DAYS * 86_400,
                incident_manager: false,
            });
        }
        let cfn = aws_sdk_cloudformation::Client::new(sdk);
        let out = match cfn.describe_stacks().stack_name(&args.stack).send().await {
            Ok(out) => out,
            Err(err) => {
                let missing = err.as_service_error().is_some_and(|e| {
                    e.code() == Some("ValidationError")
                        && e.message().is_some_and(|m| m.contains("does not exist"))
                });
                if missing {
                    return Err(IncidentsError::StackNotFound {
                        stack: args.stack.clone(),
                        region: region_of(sdk),
                    });
                }
                return Err(AwsError::from_sdk("cloudformation", "DescribeStacks", &err).into());
            }
        };
        let Some(stack) = out.stacks().first() else {
            return Err(IncidentsError::StackNotFound {
                stack: args.stack.clone(),
                region: region_of(sdk),
            });
        };
        Deployed::from_stack(stack, args)
    }

    /// Reads a described stack: the outputs, the parameters, the flags over both.
    pub fn from_stack(
        stack: &aws_sdk_cloudformation::types::Stack,
        args: &IncidentsArgs,
    ) -> Result<Deployed, IncidentsError> {
        let name = stack.stack_name().unwrap_or(&args.stack).to_owned();
        let status = stack
            .stack_status()
            .map_or("status unknown", |s| s.as_str())
            .to_owned();
        let output = |key: &str| {
            stack
                .outputs()
                .iter()
                .find(|o| o.output_key() == Some(key))
                .and_then(|o| o.output_value())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let parameter = |key: &str| {
            stack
                .parameters()
                .iter()
                .find(|p| p.parameter_key() == Some(key))
                .and_then(|p| p.parameter_value())
        };
        let required = |flag: &Option<String>, key: &'static str, flag_name: &'static str| {
            flag.clone()
                .or_else(|| output(key))
                .ok_or_else(|| IncidentsError::MissingOutput {
                    stack: name.clone(),
                    status: status.clone(),
                    output: key,
                    flag: flag_name,
                })
        };
        let retention_days = parameter("RetentionDays")
            .and_then(|d| d.trim().parse::<i64>().ok())
            .filter(|d| *d > 0)
            .unwrap_or(DEFAULT_RETENTION_DAYS);
        Ok(Deployed {
            table: required(&args.table, TABLE_OUTPUT, "--table")?,
            bus: required(&args.bus, BUS_OUTPUT, "--bus")?,
            dry_run_parameter: args
                .dry_run_parameter
                .clone()
                .or_else(|| output(DRY_RUN_OUTPUT)),
            notification_topic_arn: output(NOTIFICATION_TOPIC_OUTPUT),
            escalation_topic_arn: output(ESCALATION_TOPIC_OUTPUT),
            retention_s: retention_days.saturating_mul(86_400),
            incident_manager: parameter("EnableIncidentManager") == Some("true"),
            stack: Some(name),
        })
    }

    pub fn store(&self, sdk: &SdkConfig) -> Store {
        Store::new(aws_sdk_dynamodb::Client::new(sdk), &self.table)
    }

    pub fn bus(&self, sdk: &SdkConfig) -> Bus {
        Bus::new(aws_sdk_eventbridge::Client::new(sdk), &self.bus)
    }

    /// The switch's parameter, which `approve` cannot run without.
    pub fn require_dry_run_parameter(&self) -> Result<&str, IncidentsError> {
        self.dry_run_parameter
            .as_deref()
            .ok_or(IncidentsError::NoDryRunParameter)
    }
}

fn region_of(sdk: &SdkConfig) -> String {
    sdk.region()
        .map_or_else(|| "no region".to_owned(), ToString::to_string)
}

/// The SDK configuration the flags ask for: `--endpoint-url` means a local AWS with test
/// credentials (nothing can reach a real account); otherwise the standard chain with
/// `--profile` and `--region` over the environment.
pub async fn sdk_config(args: &IncidentsArgs) -> SdkConfig {
    if let Some(endpoint) = &args.endpoint_url {
        let region = args.region.as_deref().unwrap_or(crate::sandbox::REGION);
        return firebreak_shared::aws::local_config(endpoint, region).await;
    }
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(profile) = &args.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &args.region {
        loader = loader.region(Region::new(region.clone()));
    }
    loader.load().await
}

/// `cli:<user>` for `$USER` (or `$USERNAME`).
pub fn actor_from_env() -> String {
    let user = std::env::var("USER")
        .ok()
        .or_else(|| std::env::var("USERNAME").ok());
    actor(user.as_deref())
}

/// `cli:<user>`, the user reduced to `A-Za-z0-9._@-` (at most 64); `cli:unknown` when that
/// leaves nothing.
pub fn actor(user: Option<&str>) -> String {
    let name: String = user
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._@-".contains(*c))
        .take(64)
        .collect();
    if name.is_empty() {
        "cli:unknown".to_owned()
    } else {
        format!("cli:{name}")
    }
}

/// The playbooks the stack runs: `--playbooks`, else `./infra/playbooks` in a checkout, else the
/// starter library compiled in. Returns the set and where it came from, for the previews.
pub fn load_playbooks(explicit: Option<&Path>) -> Result<(PlaybookSet, String), IncidentsError> {
    let dir = match explicit {
        Some(dir) => dir.to_path_buf(),
        None => {
            let default = PathBuf::from(DEFAULT_PLAYBOOKS);
            if !default.is_dir() {
                return Ok((
                    PlaybookSet::starter(),
                    "the built-in starter library".to_owned(),
                ));
            }
            default
        }
    };
    let origin = dir.display().to_string();
    PlaybookSet::load_dir(&dir)
        .map(|set| (set, origin.clone()))
        .map_err(|errors| IncidentsError::Playbooks {
            origin,
            errors: errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        })
}

/// Where confirmations come from: the terminal, or a script in tests.
pub struct Prompt {
    interactive: bool,
    input: Box<dyn BufRead + Send>,
}

impl Prompt {
    /// Standard input; interactive only when it is a terminal.
    pub fn stdin() -> Prompt {
        let stdin = std::io::stdin();
        Prompt {
            interactive: stdin.is_terminal(),
            input: Box::new(std::io::BufReader::new(stdin)),
        }
    }

    /// Answers read from `answers`, as if typed; `interactive: false` acts as a pipe does.
    pub fn scripted(interactive: bool, answers: &str) -> Prompt {
        Prompt {
            interactive,
            input: Box::new(std::io::Cursor::new(answers.as_bytes().to_vec())),
        }
    }

    /// `None` when the user (or `--yes`) agreed; otherwise why not.
    fn confirm(
        &mut self,
        yes: bool,
        what: &str,
        out: &mut impl Write,
    ) -> Result<Option<String>, IncidentsError> {
        if yes {
            return Ok(None);
        }
        if !self.interactive {
            return Ok(Some(format!(
                "not confirmed: standard input is not a terminal, so {what} needs --yes"
            )));
        }
        write!(out, "Proceed? [y/N] ")?;
        out.flush()?;
        let mut answer = String::new();
        self.input.read_line(&mut answer)?;
        let answer = answer.trim().to_ascii_lowercase();
        if answer == "y" || answer == "yes" {
            Ok(None)
        } else {
            Ok(Some(format!("not confirmed; {what} was not done")))
        }
    }
}

/// Everything a command works with, built once.
pub struct Session {
    pub sdk: SdkConfig,
    pub deployed: Deployed,
    /// The deployed playbooks; loaded only for `approve`, `resolve` and `rollback`.
    pub playbooks: PlaybookSet,
    /// Where the playbooks came from, for the previews.
    pub playbook_origin: String,
    /// `cli:<user>`.
    pub actor: String,
    /// Where `resolve` publishes the MTTx metrics. `None` keeps them in the record only
    /// (a local AWS such as moto cannot serve CloudWatch's protocol).
    pub cloudwatch: Option<aws_sdk_cloudwatch::Client>,
}

impl Session {
    /// Locates the stack, loads the playbooks the command needs, takes the actor from the
    /// environment.
    pub async fn open(sdk: &SdkConfig, args: &IncidentsArgs) -> Result<Session, IncidentsError> {
        if sdk.region().is_none() {
            return Err(IncidentsError::NoRegion);
        }
        let deployed = Deployed::locate(sdk, args).await?;
        // Reading the record needs no playbooks: a playbook being edited in the checkout must
        // not stop anyone from listing or acknowledging incidents.
        let (playbooks, playbook_origin) = match args.command {
            IncidentsCommand::Approve { .. }
            | IncidentsCommand::Resolve { .. }
            | IncidentsCommand::Rollback { .. } => load_playbooks(args.playbooks.as_deref())?,
            _ => (
                PlaybookSet::default(),
                "no playbooks (not needed)".to_owned(),
            ),
        };
        Ok(Session {
            sdk: sdk.clone(),
            deployed,
            playbooks,
            playbook_origin,
            actor: actor_from_env(),
            cloudwatch: Some(aws_sdk_cloudwatch::Client::new(sdk)),
        })
    }

    pub fn store(&self) -> Store {
        self.deployed.store(&self.sdk)
    }

    /// Runs one command; `yes` skips the confirmations.
    pub async fn execute(
        &self,
        command: &IncidentsCommand,
        yes: bool,
        out: &mut impl Write,
        prompt: &mut Prompt,
    ) -> Result<Outcome, IncidentsError> {
        match command {
            IncidentsCommand::List {
                status,
                limit,
                json,
            } => self.list(*status, *limit, *json, out).await,
            IncidentsCommand::Show { id, json } => self.show(id, *json, out).await,
            IncidentsCommand::Report { id } => self.report(id, out).await,
            IncidentsCommand::Ack { id, note } => self.ack(id, note.as_deref(), out).await,
            IncidentsCommand::Approve { id } => self.approve(id, yes, out, prompt).await,
            IncidentsCommand::Resolve { id, note } => {
                self.resolve(id, note, yes, out, prompt).await
            }
            IncidentsCommand::Rollback { id } => self.rollback(id, yes, out, prompt).await,
        }
    }

    async fn get(&self, id: &str) -> Result<Result<Incident, String>, IncidentsError> {
        check_id(id)?;
        Ok(self
            .store()
            .get(id)
            .await?
            .ok_or_else(|| format!("no incident {} in table {}", clean(id), self.deployed.table)))
    }

    /// `list`.
    pub async fn list(
        &self,
        status: StatusFilter,
        limit: i32,
        json: bool,
        out: &mut impl Write,
    ) -> Result<Outcome, IncidentsError> {
        let store = self.store();
        let mut incidents = Vec::new();
        let mut full_page = false;
        for s in status.statuses() {
            let page = store.list(*s, limit).await?;
            full_page |= page.len() >= usize::try_from(limit).unwrap_or(usize::MAX);
            incidents.extend(page);
        }
        incidents.sort_by(|a, b| b.opened_at.cmp(&a.opened_at).then(b.id.cmp(&a.id)));
        let cut = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = full_page || incidents.len() > cut;
        incidents.truncate(cut);
        if json {
            serde_json::to_writer_pretty(&mut *out, &incidents).map_err(std::io::Error::other)?;
            writeln!(out)?;
            return Ok(Outcome::Done);
        }
        if incidents.is_empty() {
            writeln!(
                out,
                "No {} incidents in {}.",
                filter_name(status),
                self.deployed.table
            )?;
            return Ok(Outcome::Done);
        }
        let rows: Vec<[String; 6]> = incidents
            .iter()
            .map(|i| {
                [
                    clean(&i.id),
                    i.status.to_string(),
                    i.severity.to_string(),
                    clean(i.playbook.as_deref().unwrap_or("-")),
                    minute(i.opened_at),
                    cut_to(&clean(&i.title), LIST_TITLE_CHARS),
                ]
            })
            .collect();
        let header = ["ID", "STATUS", "SEVERITY", "PLAYBOOK", "OPENED", "TITLE"];
        let mut widths = header.map(|h| h.chars().count());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        table_line(out, &header.map(str::to_owned), &widths)?;
        for row in &rows {
            table_line(out, row, &widths)?;
        }
        if more {
            writeln!(
                out,
                "\nThe newest {limit} shown (one page per status); more may exist: raise --limit."
            )?;
        }
        Ok(Outcome::Done)
    }

    /// `show`.
    pub async fn show(
        &self,
        id: &str,
        json: bool,
        out: &mut impl Write,
    ) -> Result<Outcome, IncidentsError> {
        let incident = match self.get(id).await? {
            Ok(i) => i,
            Err(why) => return Outcome::refused(why),
        };
        if json {
            serde_json::to_writer_pretty(&mut *out, &incident).map_err(std::io::Error::other)?;
            writeln!(out)?;
        } else {
            write_incident(out, &incident)?;
        }
        Ok(Outcome::Done)
    }

    /// `report`.
    pub async fn report(&self, id: &str, out: &mut impl Write) -> Result<Outcome, IncidentsError> {
        let incident = match self.get(id).await? {
            Ok(i) => i,
            Err(why) => return Outcome::refused(why),
        };
        let text = match (&incident.report, incident.status) {
            (Some(stored), Status::Resolved) => stored.clone(),
            _ => {
                writeln!(
                    out,
                    "> **Incident {} is {}, not resolved.** This is the record so far, rendered \
                     now; the report is written when the incident is resolved.\n",
                    clean(&incident.id),
                    incident.status
                )?;
                report::render(&incident)
            }
        };
        writeln!(out, "{}", clean_text(text.trim_end()))?;
        Ok(Outcome::Done)
    }

    /// `ack`.
    pub async fn ack(
        &self,
        id: &str,
        note: Option<&str>,
        out: &mut impl Write,
    ) -> Result<Outcome, IncidentsError> {
        check_id(id)?;
        let now = Utc::now();
        let note = note.map(str::trim).filter(|n| !n.is_empty());
        let result = self
            .store()
            .update(id, |i| {
                let first = i.acknowledged_at.is_none();
                match i.acknowledge(&self.actor, now, note.map(str::to_owned)) {
                    Ok(()) => Change::Write(Ok(first)),
                    Err(e) => Change::Keep(Err(e)),
                }
            })
            .await?;
        match result {
            None => Outcome::refused(format!(
                "no incident {} in table {}",
                clean(id),
                self.deployed.table
            )),
            Some((_, Err(refused))) => Outcome::refused(refused.to_string()),
            Some((incident, Ok(first))) => {
                if first {
                    writeln!(
                        out,
                        "Acknowledged {} as {} (MTTA {}).",
                        clean(&incident.id),
                        self.actor,
                        figure(incident.metrics.mtta_s)
                    )?;
                } else {
                    writeln!(
                        out,
                        "{} was already acknowledged at {} (MTTA {}); your acknowledgement is on \
                         the timeline.",
                        clean(&incident.id),
                        incident
                            .acknowledged_at
                            .map_or_else(|| "-".to_owned(), second),
                        figure(incident.metrics.mtta_s)
                    )?;
                }
                Ok(Outcome::Done)
            }
        }
    }

    /// `resolve`.
    pub async fn resolve(
        &self,
        id: &str,
        note: &str,
        yes: bool,
        out: &mut impl Write,
        prompt: &mut Prompt,
    ) -> Result<Outcome, IncidentsError> {
        let note = note.trim();
        if note.is_empty() {
            return Err(IncidentsError::Usage(
                "resolve needs --note TEXT: why the incident is over".to_owned(),
            ));
        }
        let incident = match self.get(id).await? {
            Ok(i) => i,
            Err(why) => return Outcome::refused(why),
        };
        let close = Close::new(
            &CloseConfig {
                table: self.deployed.table.clone(),
                bus: self.deployed.bus.clone(),
                retention_s: self.deployed.retention_s,
                incident_manager: self.deployed.incident_manager,
            },
            &self.sdk,
            self.playbooks.clone(),
        );
        if incident.status.is_open() {
            headline(out, &incident)?;
            writeln!(
                out,
                "Will resolve it as {}: {:?}. This computes MTTD/MTTA/MTTR, writes the \
                 post-incident report{} and announces Incident Resolved on {}.",
                self.actor,
                note,
                if incident.engagements.incident_manager_arn.is_some()
                    && self.deployed.incident_manager
                {
                    ", resolves the Incident Manager incident"
                } else {
                    ""
                },
                self.deployed.bus
            )?;
            if let Some(why) = prompt.confirm(yes, "resolve", out)? {
                return Outcome::refused(why);
            }
        }
        let sink = MetricsSink::memory();
        let close = close.with_metrics(sink.clone());
        let resolved = match close
            .resolve(&incident.id, &self.actor, note, Utc::now())
            .await
        {
            Ok(r) => r,
            Err(firebreak_close::Error::NotFound(id)) => {
                return Outcome::refused(format!("no incident {} any more", clean(&id)));
            }
            Err(firebreak_close::Error::Transition(e)) => return Outcome::refused(e.to_string()),
            Err(e) => return Err(e.into()),
        };
        let r = &resolved.resolution;
        if resolved.transitioned {
            writeln!(
                out,
                "Resolved {} at {} by {}.",
                clean(&resolved.incident_id),
                second(r.at),
                clean(&r.by)
            )?;
            let m = &resolved.metrics;
            writeln!(
                out,
                "MTTD {} · MTTA {} · MTTR {}",
                figure(m.mttd_s),
                figure(m.mtta_s),
                figure(m.mttr_s)
            )?;
            writeln!(
                out,
                "Report stored: firebreak incidents report {}",
                clean(&resolved.incident_id)
            )?;
        } else {
            writeln!(
                out,
                "{} was already resolved at {} by {} ({}); nothing changed.",
                clean(&resolved.incident_id),
                second(r.at),
                clean(&r.by),
                clean(&r.reason)
            )?;
        }
        if resolved.emitted {
            writeln!(out, "Incident Resolved announced on {}.", self.deployed.bus)?;
        }
        match &resolved.incident_manager {
            firebreak_close::IncidentManagerOutcome::Resolved => {
                writeln!(out, "Incident Manager incident resolved.")?;
            }
            firebreak_close::IncidentManagerOutcome::Failed { error } => {
                writeln!(
                    out,
                    "Incident Manager refused to resolve its incident: {}",
                    clean(error)
                )?;
            }
            _ => {}
        }
        self.publish_metrics(&sink.lines(), out).await?;
        Ok(Outcome::Done)
    }

    /// Sends the EMF lines `Close` wrote as CloudWatch metrics. Losing them must not undo or
    /// fail a resolution that happened: a failure is printed, not returned.
    async fn publish_metrics(
        &self,
        lines: &[String],
        out: &mut impl Write,
    ) -> Result<(), IncidentsError> {
        let Some(cloudwatch) = &self.cloudwatch else {
            return Ok(());
        };
        for line in lines {
            let Ok(doc) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let data = metric_data(&doc);
            if data.is_empty() {
                continue;
            }
            let sent = cloudwatch
                .put_metric_data()
                .namespace(emf::NAMESPACE)
                .set_metric_data(Some(data))
                .send()
                .await;
            match sent {
                Ok(_) => writeln!(
                    out,
                    "MTTx metrics published to CloudWatch ({}).",
                    emf::NAMESPACE
                )?,
                Err(e) => writeln!(
                    out,
                    "warning: the MTTx metrics were not published to CloudWatch ({}); the \
                     incident record keeps them.",
                    AwsError::from_sdk("cloudwatch", "PutMetricData", &e)
                )?,
            }
        }
        Ok(())
    }

    /// `approve`.
    pub async fn approve(
        &self,
        id: &str,
        yes: bool,
        out: &mut impl Write,
        prompt: &mut Prompt,
    ) -> Result<Outcome, IncidentsError> {
        let parameter = self.deployed.require_dry_run_parameter()?.to_owned();
        let incident = match self.get(id).await? {
            Ok(i) => i,
            Err(why) => return Outcome::refused(why),
        };
        // The stage checks these again; asking first would be asking for nothing.
        if !incident.status.is_open() {
            return Outcome::refused(format!("incident {} is resolved", clean(id)));
        }
        let Some(name) = incident.playbook.as_deref() else {
            return Outcome::refused(format!(
                "incident {} has no playbook, so no steps to approve",
                clean(id)
            ));
        };
        let Some(playbook) = self.playbooks.get(name) else {
            return Outcome::refused(format!(
                "playbook {} is not in {}: run from the checkout you deployed, or pass --playbooks",
                clean(name),
                self.playbook_origin
            ));
        };
        if playbook.guardrails.mode != Mode::Approve {
            return Outcome::refused(format!(
                "incident {}'s playbook {} runs in {} mode: it holds no steps for approval",
                clean(id),
                playbook.name,
                playbook.guardrails.mode.as_str()
            ));
        }
        let Some(request) = incident
            .timeline
            .iter()
            .find(|e| e.event == APPROVAL_REQUESTED)
        else {
            return Outcome::refused(format!(
                "no approval was requested for {} yet: the remediate stage has not reached a \
                 step that changes resources",
                clean(id)
            ));
        };
        let ssm = aws_sdk_ssm::Client::new(&self.sdk);
        let switch = DryRunSwitch::new(ssm.clone(), &parameter).state().await;

        headline(out, &incident)?;
        writeln!(
            out,
            "Playbook {} (mode approve, from {}).",
            playbook.name, self.playbook_origin
        )?;
        if let Some(detail) = &request.detail {
            writeln!(out, "Requested {}: {}", second(request.at), clean(detail))?;
        }
        if let Some(done) = incident.timeline.iter().find(|e| e.event == APPROVED) {
            writeln!(
                out,
                "Already approved by {} at {}: approving again resumes the steps.",
                clean(&done.actor),
                second(done.at)
            )?;
        }
        writeln!(out, "Steps:")?;
        for (n, step) in playbook.remediate.iter().enumerate() {
            let recorded: Vec<String> = incident
                .actions
                .iter()
                .filter(|a| a.id.starts_with(&format!("{n}/{}/", step.action.name)))
                .map(|a| {
                    format!("{} {}", a.outcome, clean(a.target.as_deref().unwrap_or("")))
                        .trim_end()
                        .to_owned()
                })
                .collect();
            writeln!(
                out,
                "  {}. {}{}: {}{}",
                n + 1,
                step.action.name,
                if step.action.mutating {
                    " (changes resources)"
                } else {
                    ""
                },
                step.action.description,
                if recorded.is_empty() {
                    String::new()
                } else {
                    format!(" [recorded: {}]", recorded.join(", "))
                }
            )?;
        }
        if switch.dry_run {
            writeln!(
                out,
                "The global dry-run switch is on ({}): the steps will be recorded as dry runs \
                 and nothing will change.",
                clean(&switch.why)
            )?;
        } else {
            writeln!(
                out,
                "The global dry-run switch is off ({}): the steps will change resources.",
                clean(&switch.why)
            )?;
        }
        if let Some(why) = prompt.confirm(yes, "approve", out)? {
            return Outcome::refused(why);
        }
        let stage = Remediate::new(
            self.playbooks.clone(),
            self.store(),
            self.deployed.bus(&self.sdk),
            Clients::new(&self.sdk),
            DryRunSwitch::new(ssm, parameter),
        );
        let result = stage.approve(&incident.id, &self.actor, Utc::now()).await?;
        if let Some(why) = result["refused"].as_str() {
            return Outcome::refused(why.to_owned());
        }
        write_run(out, &result)?;
        let outcome = result["outcome"].as_str().unwrap_or("unknown");
        if matches!(
            outcome,
            "remediated" | "resolution_requested" | "completed" | "dry_run"
        ) {
            Ok(Outcome::Done)
        } else {
            Outcome::refused(format!("remediation of {} stopped: {outcome}", clean(id)))
        }
    }

    /// `rollback`.
    pub async fn rollback(
        &self,
        id: &str,
        yes: bool,
        out: &mut impl Write,
        prompt: &mut Prompt,
    ) -> Result<Outcome, IncidentsError> {
        let incident = match self.get(id).await? {
            Ok(i) => i,
            Err(why) => return Outcome::refused(why),
        };
        let isolations: Vec<_> = incident
            .actions
            .iter()
            .filter(|a| a.kind == "ec2.isolate" && a.outcome == "succeeded")
            .collect();
        if isolations.is_empty() {
            return Outcome::refused(format!(
                "incident {} has no isolation to roll back",
                clean(id)
            ));
        }
        headline(out, &incident)?;
        writeln!(out, "Will undo these isolations:")?;
        for a in &isolations {
            let groups: Vec<&str> = a.evidence["previous_groups"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let done = incident
                .actions
                .iter()
                .any(|r| r.id == format!("{}/rollback", a.id) && r.outcome == "succeeded");
            writeln!(
                out,
                "  {}: from {} back to {}{}",
                clean(a.target.as_deref().unwrap_or("-")),
                clean(
                    a.evidence["quarantine_group"]
                        .as_str()
                        .unwrap_or("quarantine")
                ),
                if groups.is_empty() {
                    "the recorded groups".to_owned()
                } else {
                    clean(&groups.join(", "))
                },
                if done { " (already rolled back)" } else { "" }
            )?;
        }
        writeln!(
            out,
            "Termination and stop protection stay on, and instances stay out of their Auto \
             Scaling groups: undo those by hand once the investigation is over."
        )?;
        if let Some(why) = prompt.confirm(yes, "rollback", out)? {
            return Outcome::refused(why);
        }
        // Undoing an isolation never consults the dry-run switch; the stage needs one anyway.
        let parameter = self.deployed.dry_run_parameter.clone().unwrap_or_default();
        let stage = Remediate::new(
            self.playbooks.clone(),
            self.store(),
            self.deployed.bus(&self.sdk),
            Clients::new(&self.sdk),
            DryRunSwitch::new(aws_sdk_ssm::Client::new(&self.sdk), parameter),
        );
        let result = stage
            .rollback(&incident.id, &self.actor, Utc::now())
            .await?;
        if let Some(why) = result["refused"].as_str() {
            return Outcome::refused(why.to_owned());
        }
        let mut failed = 0;
        for r in result["rolled_back"].as_array().into_iter().flatten() {
            let outcome = r["outcome"].as_str().unwrap_or("unknown");
            let target = clean(r["target"].as_str().unwrap_or("-"));
            if r["already"] == true {
                writeln!(out, "  {target}: {outcome} (earlier)")?;
            } else if outcome == "succeeded" {
                let groups: Vec<&str> = r["evidence"]["restored_groups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                writeln!(
                    out,
                    "  {target}: succeeded, groups {}",
                    clean(&groups.join(", "))
                )?;
            } else {
                failed += 1;
                writeln!(
                    out,
                    "  {target}: {outcome}: {}",
                    clean(r["evidence"]["error"].as_str().unwrap_or(""))
                )?;
            }
        }
        if failed > 0 {
            return Outcome::refused(format!(
                "{failed} rollback(s) of {} failed; see above",
                clean(id)
            ));
        }
        Ok(Outcome::Done)
    }
}

/// `firebreak incidents …`: builds the SDK configuration from the flags, runs the command
/// with confirmations from standard input, prints a refusal's reason on standard error.
/// `Err` exits 2 (see [`IncidentsError::exit_code`]).
pub async fn run(
    args: IncidentsArgs,
    out: &mut impl std::io::Write,
) -> Result<ExitCode, IncidentsError> {
    let sdk = sdk_config(&args).await;
    let outcome = run_with(&sdk, &args, out, &mut Prompt::stdin()).await?;
    if let Outcome::Refused(why) = &outcome {
        eprintln!("firebreak: {why}");
    }
    Ok(outcome.exit_code())
}

/// [`run`] on a given SDK configuration and prompt.
pub async fn run_with(
    sdk: &SdkConfig,
    args: &IncidentsArgs,
    out: &mut impl Write,
    prompt: &mut Prompt,
) -> Result<Outcome, IncidentsError> {
    // Refuse a bad id before any AWS call.
    match &args.command {
        IncidentsCommand::List { .. } => {}
        IncidentsCommand::Show { id, .. }
        | IncidentsCommand::Report { id }
        | IncidentsCommand::Ack { id, .. }
        | IncidentsCommand::Approve { id }
        | IncidentsCommand::Resolve { id, .. }
        | IncidentsCommand::Rollback { id } => check_id(id)?,
    }
    let session = Session::open(sdk, args).await?;
    let outcome = session
        .execute(&args.command, args.yes, out, prompt)
        .await?;
    out.flush()?;
    Ok(outcome)
}

/// The CloudWatch metric data an EMF document stands for: every metric its directive names,
/// under its dimension set, at its timestamp.
pub fn metric_data(doc: &Value) -> Vec<MetricDatum> {
    let aws = &doc["_aws"];
    let timestamp = aws["Timestamp"]
        .as_i64()
        .map(aws_sdk_cloudwatch::primitives::DateTime::from_millis);
    let mut data = Vec::new();
    for directive in aws["CloudWatchMetrics"].as_array().into_iter().flatten() {
        let sets = directive["Dimensions"].as_array().into_iter().flatten();
        for set in sets {
            let dimensions: Vec<Dimension> = set
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter_map(|name| {
                    let value = doc[name].as_str()?;
                    Some(Dimension::builder().name(name).value(value).build())
                })
                .collect();
            for metric in directive["Metrics"].as_array().into_iter().flatten() {
                let Some(name) = metric["Name"].as_str() else {
                    continue;
                };
                let Some(value) = doc[name].as_f64() else {
                    continue;
                };
                let unit = metric["Unit"]
                    .as_str()
                    .map_or(StandardUnit::None, StandardUnit::from);
                data.push(
                    MetricDatum::builder()
                        .metric_name(name)
                        .set_dimensions(Some(dimensions.clone()))
                        .value(value)
                        .unit(unit)
                        .set_timestamp(timestamp)
                        .build(),
                );
            }
        }
    }
    data
}

/// Incident ids are short and printable; anything else is a typo or worse.
fn check_id(id: &str) -> Result<(), IncidentsError> {
    if id.is_empty() || id.len() > 200 || id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(IncidentsError::Usage(format!(
            "{:?} is not an incident id (like INC-20240101-1a2b3c4d)",
            cut_to(id, 60)
        )));
    }
    Ok(())
}

/// What came from AWS events or people, made safe for one line of a terminal: control and
/// bidirectional-override characters become spaces.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if unsafe_char(c) { ' ' } else { c })
        .collect()
}

/// [`clean`], keeping line breaks and tabs (for Markdown).
fn clean_text(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c != '\n' && c != '\t' && unsafe_char(c) {
                ' '
            } else {
                c
            }
        })
        .collect()
}

fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn cut_to(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

fn filter_name(f: StatusFilter) -> &'static str {
    match f {
        StatusFilter::Open => "open",
        StatusFilter::Acknowledged => "acknowledged",
        StatusFilter::Resolved => "resolved",
        StatusFilter::Unresolved => "unresolved",
        StatusFilter::All => "",
    }
}

fn minute(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%MZ").to_string()
}

fn second(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

fn figure(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "-".to_owned(), report::human)
}

fn table_line(out: &mut impl Write, cells: &[String], widths: &[usize]) -> std::io::Result<()> {
    let mut line = String::new();
    for (n, (cell, w)) in cells.iter().zip(widths).enumerate() {
        if n + 1 == cells.len() {
            line.push_str(cell);
        } else {
            let pad = w.saturating_sub(cell.chars().count());
            line.push_str(cell);
            line.push_str(&" ".repeat(pad + 2));
        }
    }
    writeln!(out, "{}", line.trim_end())
}

/// One line naming the incident, before a question.
fn headline(out: &mut impl Write, i: &Incident) -> std::io::Result<()> {
    writeln!(
        out,
        "{} [{}, {}, playbook {}]: {}",
        clean(&i.id),
        i.status,
        i.severity,
        clean(i.playbook.as_deref().unwrap_or("none")),
        clean(&i.title)
    )
}

/// What `approve` ran: the mode, each step's outcome, the end.
fn write_run(out: &mut impl Write, v: &Value) -> std::io::Result<()> {
    if let Some(why) = v["dry_run"].as_str() {
        writeln!(out, "Dry run ({}): nothing was changed.", clean(why))?;
    }
    for step in v["steps"].as_array().into_iter().flatten() {
        match (step["action"].as_str(), step["targets"].as_array()) {
            (Some(action), Some(targets)) => {
                for t in targets {
                    writeln!(out, "  {action}: {}", step_line(t))?;
                }
                if targets.is_empty() {
                    writeln!(out, "  {action}: nothing to act on")?;
                }
            }
            _ => writeln!(out, "  {}", step_line(step))?,
        }
    }
    writeln!(
        out,
        "Outcome: {}",
        clean(v["outcome"].as_str().unwrap_or("unknown"))
    )
}

fn step_line(v: &Value) -> String {
    let step = match &v["step"] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut line = format!("{} {}", step, v["outcome"].as_str().unwrap_or("?"));
    if let Some(reason) = v["reason"].as_str() {
        line.push_str(": ");
        line.push_str(reason);
    }
    if let Some(held) = v["held"].as_array() {
        let held: Vec<&str> = held.iter().filter_map(Value::as_str).collect();
        line.push_str(&format!(" ({})", held.join(", ")));
    }
    clean(line.trim())
}

/// `show`'s readable view.
fn write_incident(out: &mut impl Write, i: &Incident) -> std::io::Result<()> {
    writeln!(out, "{}  {}", clean(&i.id), clean(&i.title))?;
    let row = |out: &mut dyn Write, k: &str, v: String| writeln!(out, "  {k:<13}{v}");
    row(out, "Status", i.status.to_string())?;
    row(out, "Severity", i.severity.to_string())?;
    row(
        out,
        "Playbook",
        clean(i.playbook.as_deref().unwrap_or("none (default policy)")),
    )?;
    row(out, "Source", format!("{} ({})", i.source, clean(&i.kind)))?;
    row(
        out,
        "Account",
        format!(
            "{} / {}",
            clean(i.account.as_deref().unwrap_or("-")),
            clean(i.region.as_deref().unwrap_or("-"))
        ),
    )?;
    row(out, "Dedupe key", clean(&i.dedupe_key))?;
    row(out, "Opened", second(i.opened_at))?;
    if let Some(at) = i.acknowledged_at {
        row(out, "Acknowledged", second(at))?;
    }
    if let Some(r) = &i.resolution {
        row(
            out,
            "Resolved",
            format!("{} by {}: {}", second(r.at), clean(&r.by), clean(&r.reason)),
        )?;
    }
    row(
        out,
        "Signals",
        format!(
            "{} (first {}, last {})",
            i.signals.count,
            second(i.signals.first_seen),
            second(i.signals.last_seen)
        ),
    )?;
    row(
        out,
        "Metrics",
        format!(
            "MTTD {} · MTTA {} · MTTR {}",
            figure(i.metrics.mttd_s),
            figure(i.metrics.mtta_s),
            figure(i.metrics.mttr_s)
        ),
    )?;
    if let Some(arn) = &i.engagements.incident_manager_arn {
        row(out, "Inc. Manager", clean(arn))?;
    }
    row(
        out,
        "Report",
        if i.report.is_some() {
            format!("stored: firebreak incidents report {}", clean(&i.id))
        } else {
            "written when resolved".to_owned()
        },
    )?;

    writeln!(out, "\nResources ({})", i.resources.len())?;
    for r in &i.resources {
        writeln!(out, "  {:<16} {}", r.kind.as_str(), clean(&r.id))?;
    }

    writeln!(out, "\nTimeline ({})", i.timeline.len())?;
    for e in &i.timeline {
        let detail = e
            .detail
            .as_deref()
            .map_or_else(String::new, |d| format!("  {}", clean(d)));
        writeln!(
            out,
            "  {}  {:<10} {} {}{detail}",
            second(e.at),
            clean(&e.actor),
            clean(&e.event),
            clean(&e.outcome)
        )?;
    }

    if let Some(enrichment) = &i.enrichment {
        let ok = enrichment
            .results
            .iter()
            .filter(|r| r.outcome == "ok")
            .count();
        writeln!(
            out,
            "\nEnrichment at {}: {} result(s), {ok} ok",
            second(enrichment.at),
            enrichment.results.len()
        )?;
        for r in &enrichment.results {
            let error = r
                .error
                .as_deref()
                .map_or_else(String::new, |e| format!(": {}", clean(e)));
            writeln!(
                out,
                "  {} {} {}{error}",
                clean(&r.enricher),
                clean(r.target.as_deref().unwrap_or("-")),
                clean(&r.outcome)
            )?;
        }
    }

    writeln!(out, "\nActions ({})", i.actions.len())?;
    for a in &i.actions {
        let finished = a.finished_at.map_or_else(
            || "not finished".to_owned(),
            |t| format!("to {}", second(t)),
        );
        let why = a.evidence["error"]
            .as_str()
            .or_else(|| a.evidence["reason"].as_str())
            .map_or_else(String::new, |w| format!(": {}", clean(w)));
        writeln!(
            out,
            "  {}  {}{} {} ({finished}){why}",
            second(a.started_at),
            clean(&a.kind),
            a.target
                .as_deref()
                .map_or_else(String::new, |t| format!(" on {}", clean(t))),
            clean(&a.outcome)
        )?;
    }

    writeln!(out, "\nNotifications ({})", i.notifications.len())?;
    for n in &i.notifications {
        let state = match n.sent_at {
            Some(at) => format!("sent {}", second(at)),
            None => format!("claimed {}, not sent", second(n.claimed_at)),
        };
        writeln!(
            out,
            "  {}  {}  {}",
            clean(&n.event_id),
            state,
            clean(&n.subject)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudformation::types::{Output, Parameter, Stack, StackStatus};

    fn args(argv: &[&str]) -> IncidentsArgs {
        IncidentsArgs::try_parse_from(std::iter::once("incidents").chain(argv.iter().copied()))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn stack(outputs: &[(&str, &str)], parameters: &[(&str, &str)]) -> Stack {
        let mut b = Stack::builder()
            .stack_name("firebreak")
            .creation_time(aws_sdk_cloudformation::primitives::DateTime::from_secs(0))
            .stack_status(StackStatus::CreateComplete);
        for (k, v) in outputs {
            b = b.outputs(Output::builder().output_key(*k).output_value(*v).build());
        }
        for (k, v) in parameters {
            b = b.parameters(
                Parameter::builder()
                    .parameter_key(*k)
                    .parameter_value(*v)
                    .build(),
            );
        }
        b.build()
    }

    #[test]
    fn global_options_parse_before_or_after_the_command() {
        let a = args(&["--table", "t", "list", "--bus", "b", "--status", "all"]);
        assert_eq!(a.table.as_deref(), Some("t"));
        assert_eq!(a.bus.as_deref(), Some("b"));
        assert_eq!(a.stack, DEFAULT_STACK);
        assert!(matches!(
            a.command,
            IncidentsCommand::List {
                status: StatusFilter::All,
                limit: 20,
                json: false
            }
        ));
        let a = args(&["resolve", "INC-1", "--note", "fixed", "--yes"]);
        assert!(a.yes);
        assert!(
            IncidentsArgs::try_parse_from(["incidents", "resolve", "INC-1"]).is_err(),
            "resolve needs --note"
        );
        assert!(IncidentsArgs::try_parse_from(["incidents", "list", "--limit", "0"]).is_err());
    }

    #[test]
    fn the_stack_outputs_name_the_table_bus_switch_and_topics() {
        let s = stack(
            &[
                (TABLE_OUTPUT, "fb-IncidentTable-1"),
                (BUS_OUTPUT, "fb-lifecycle"),
                (DRY_RUN_OUTPUT, "/firebreak/dry-run"),
                (NOTIFICATION_TOPIC_OUTPUT, "arn:aws:sns:eu-west-1:1:n"),
                (ESCALATION_TOPIC_OUTPUT, "arn:aws:sns:eu-west-1:1:e"),
            ],
            &[("RetentionDays", "30"), ("EnableIncidentManager", "true")],
        );
        let d = Deployed::from_stack(&s, &args(&["list"])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.table, "fb-IncidentTable-1");
        assert_eq!(d.bus, "fb-lifecycle");
        assert_eq!(d.dry_run_parameter.as_deref(), Some("/firebreak/dry-run"));
        assert_eq!(
            d.escalation_topic_arn.as_deref(),
            Some("arn:aws:sns:eu-west-1:1:e")
        );
        assert_eq!(d.retention_s, 30 * 86_400);
        assert!(d.incident_manager);
        // A flag wins over the output.
        let d = Deployed::from_stack(&s, &args(&["--bus", "other", "list"]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.bus, "other");
    }

    #[test]
    fn a_missing_output_names_the_flag_to_pass_and_the_switch_is_needed_only_to_approve() {
        let s = stack(&[(TABLE_OUTPUT, "t")], &[]);
        let err = Deployed::from_stack(&s, &args(&["list"])).err();
        assert!(
            matches!(
                &err,
                Some(IncidentsError::MissingOutput {
                    output: BUS_OUTPUT,
                    flag: "--bus",
                    ..
                })
            ),
            "{err:?}"
        );
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains("CREATE_COMPLETE") && msg.contains("--bus"),
            "{msg}"
        );

        let s = stack(&[(TABLE_OUTPUT, "t"), (BUS_OUTPUT, "b")], &[]);
        let d = Deployed::from_stack(&s, &args(&["list"])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.retention_s, DEFAULT_RETENTION_DAYS * 86_400);
        assert!(!d.incident_manager);
        assert!(matches!(
            d.require_dry_run_parameter(),
            Err(IncidentsError::NoDryRunParameter)
        ));
    }

    #[test]
    fn the_actor_is_cli_and_a_cleaned_user_name() {
        assert_eq!(actor(Some("alice")), "cli:alice");
        assert_eq!(actor(Some("a.b-c@corp")), "cli:a.b-c@corp");
        assert_eq!(actor(Some("ev\u{1b}[31mil x")), "cli:ev31milx");
        assert_eq!(actor(Some("")), "cli:unknown");
        assert_eq!(actor(None), "cli:unknown");
    }

    #[test]
    fn a_prompt_without_a_terminal_refuses_and_only_yes_agrees() {
        let mut out = Vec::new();
        let refused = Prompt::scripted(false, "y\n").confirm(false, "approve", &mut out);
        assert!(
            matches!(&refused, Ok(Some(why)) if why.contains("--yes")),
            "{refused:?}"
        );
        assert!(out.is_empty(), "no question without a terminal");
        assert!(matches!(
            Prompt::scripted(false, "").confirm(true, "approve", &mut out),
            Ok(None)
        ));
        assert!(matches!(
            Prompt::scripted(true, "Yes\n").confirm(false, "approve", &mut out),
            Ok(None)
        ));
        assert!(matches!(
            Prompt::scripted(true, "\n").confirm(false, "approve", &mut out),
            Ok(Some(_))
        ));
        assert!(matches!(
            Prompt::scripted(true, "").confirm(false, "approve", &mut out),
            Ok(Some(_))
        ));
        assert!(String::from_utf8_lossy(&out).contains("Proceed? [y/N]"));
    }

    #[test]
    fn the_emf_line_becomes_the_same_cloudwatch_metrics() {
        let doc = serde_json::json!({
            "_aws": {"Timestamp": 1_700_000_000_000_i64, "CloudWatchMetrics": [{
                "Namespace": "Firebreak", "Dimensions": [["Playbook", "Severity"]],
                "Metrics": [{"Name": "MTTD", "Unit": "Seconds"}, {"Name": "MTTR", "Unit": "Seconds"},
                            {"Name": "IncidentsResolved", "Unit": "Count"}]}]},
            "Playbook": "ec2-compromise", "Severity": "high", "MTTD": 30.0, "MTTR": 600.5,
            "IncidentsResolved": 1, "IncidentId": "INC-1"
        });
        let data = metric_data(&doc);
        let names: Vec<_> = data.iter().filter_map(|d| d.metric_name()).collect();
        assert_eq!(names, ["MTTD", "MTTR", "IncidentsResolved"]);
        assert_eq!(data[1].value(), Some(600.5));
        assert_eq!(data[1].unit(), Some(&StandardUnit::Seconds));
        assert_eq!(data[2].unit(), Some(&StandardUnit::Count));
        let dims: Vec<_> = data[0]
            .dimensions()
            .iter()
            .map(|d| (d.name().unwrap_or(""), d.value().unwrap_or("")))
            .collect();
        assert_eq!(dims, [("Playbook", "ec2-compromise"), ("Severity", "high")]);
        assert_eq!(
            data[0].timestamp().map(|t| t.to_millis().ok()),
            Some(Some(1_700_000_000_000))
        );
    }

    #[test]
    fn text_from_events_cannot_drive_the_terminal() {
        assert_eq!(clean("a\u{1b}[2Jb\nc\u{202e}d"), "a [2Jb c d");
        assert_eq!(clean_text("# T\n\ta\u{7}"), "# T\n\ta ");
        assert!(check_id("INC-20240101-1a2b3c4d").is_ok());
        assert!(check_id("").is_err());
        assert!(check_id("INC 1").is_err());
        assert_eq!(cut_to("abcdef", 4), "abc…");
    }
}
