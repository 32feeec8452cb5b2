//! `firebreak demo`: Firebreak responding to six scenarios in a sandbox account, with no AWS
//! account needed.
//!
//! The events are real published ones (tests/fixtures, compiled in), restamped to the last
//! hour so the figures read like a real shift, and pointed at instances the demo seeds. Each
//! scenario then runs through the same engine as `simulate`.

use std::io::Write;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use firebreak_shared::incident::Status;
use firebreak_shared::signal::parse_timestamp;

use crate::engine::{Engine, EngineError, Options, Report};
use crate::sandbox::LocalAws;
use crate::seed::HostSpec;

const ALARM: &str = include_str!(
    "../../tests/fixtures/events/cloudwatch-alarm/docs-composite-alarm-with-suppressor-ok-to-alarm.json"
);
const ALARM_OK: &str =
    include_str!("../../tests/fixtures/scenarios/cloudwatch-composite-alarm-alarm-to-ok.json");
const BACKDOOR: &str =
    include_str!("../../tests/fixtures/scenarios/guardduty-backdoor-ec2-high.json");
const BRUTE_FORCE: &str = include_str!(
    "../../tests/fixtures/events/guardduty/waf-acl-partial-envelope-ec2-ssh-bruteforce.json"
);
const S3_PUBLIC: &str = include_str!(
    "../../tests/fixtures/events/securityhub/asr-custom-action-cis-2.3-s3-bucket.json"
);

/// The instance ids the published events name, and the sandbox hosts they stand for.
const WEB_HOST: &str = "i-99999999";
const BASTION_HOST: &str = "i-0ba51011";
const DB_HOST: &str = "i-0db0db00";

/// How many times GuardDuty updates the probe's finding in the storm.
pub const STORM: u32 = 20;

fn parse(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or(Value::Null)
}

/// Moves every timestamp in `event` by the same amount, so the event's own `time` becomes `to`.
fn restamp(mut event: Value, to: DateTime<Utc>) -> Value {
    let from = event["time"]
        .as_str()
        .and_then(parse_timestamp)
        .or_else(|| {
            event["detail"]["updatedAt"]
                .as_str()
                .and_then(parse_timestamp)
        });
    if let Some(from) = from {
        shift(&mut event, to - from);
    }
    event
}

fn shift(v: &mut Value, by: Duration) {
    match v {
        Value::String(s) => {
            let looks_like_time = s.len() >= 20 && s.as_bytes().get(4) == Some(&b'-');
            if looks_like_time && let Some(t) = parse_timestamp(s) {
                *s = (t + by).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| shift(i, by)),
        Value::Object(map) => map.values_mut().for_each(|i| shift(i, by)),
        _ => {}
    }
}

fn rename(event: &Value, from: &str, to: &str) -> Value {
    serde_json::from_str(&event.to_string().replace(from, to)).unwrap_or(Value::Null)
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// Runs the demo, writing as it goes; returns the report of everything it did.
pub async fn run(
    local: &LocalAws,
    options: Options,
    out: &mut (impl Write + Send),
) -> Result<Report, DemoError> {
    let t0 = Utc::now() - Duration::minutes(50);
    writeln!(
        out,
        "Firebreak demo: a sandbox account in a local AWS at {}",
        local.endpoint()
    )?;
    writeln!(
        out,
        "The stack comes from template.yaml: table, lifecycle bus with the template's own rules,\n\
         topics with a queue subscribed. The five stages run in-process on the real AWS SDK.\n"
    )?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let mut engine = Engine::start(local, options).await?;
    engine.on_progress(move |line| {
        let _ = tx.send(crate::simulate::format_line(line));
    });
    let flush = |out: &mut dyn Write| -> std::io::Result<()> {
        while let Ok(line) = rx.try_recv() {
            writeln!(out, "{line}")?;
        }
        Ok(())
    };

    heading(
        out,
        0,
        "Seeding the sandbox: three instances with their VPCs, groups and volumes",
    )?;
    let team = |t: &str| vec![("Team".to_owned(), t.to_owned())];
    engine
        .seed_host(
            WEB_HOST,
            &HostSpec {
                name: "web-1".into(),
                tags: team("payments"),
                data_volumes: 1,
            },
        )
        .await?;
    engine
        .seed_host(
            BASTION_HOST,
            &HostSpec {
                name: "bastion-1".into(),
                tags: team("platform"),
                data_volumes: 0,
            },
        )
        .await?;
    let mut db_tags = team("payments");
    db_tags.push(("firebreak:protected".into(), "true".into()));
    engine
        .seed_host(
            DB_HOST,
            &HostSpec {
                name: "db-1".into(),
                tags: db_tags,
                data_volumes: 1,
            },
        )
        .await?;
    flush(out)?;

    heading(
        out,
        1,
        "A composite alarm (the service is down) fires, then recovers 12 minutes later",
    )?;
    engine
        .feed(
            "alarm SuppressionDemo.EventBridge.Main → ALARM",
            &bytes(&restamp(parse(ALARM), t0)),
        )
        .await?;
    flush(out)?;
    engine
        .feed(
            "alarm SuppressionDemo.EventBridge.Main → OK",
            &bytes(&restamp(parse(ALARM_OK), t0 + Duration::minutes(12))),
        )
        .await?;
    flush(out)?;

    heading(
        out,
        2,
        "GuardDuty: web-1 is talking to a command-and-control server",
    )?;
    engine
        .feed(
            "GuardDuty Backdoor:EC2/C&CActivity.B!DNS",
            &bytes(&restamp(parse(BACKDOOR), t0 + Duration::minutes(15))),
        )
        .await?;
    flush(out)?;

    heading(
        out,
        3,
        "GuardDuty: someone guesses SSH passwords on bastion-1 (low severity)",
    )?;
    let probe = rename(&parse(BRUTE_FORCE), "i-99999999", BASTION_HOST);
    let probe_at = t0 + Duration::minutes(20);
    engine
        .feed(
            "GuardDuty UnauthorizedAccess:EC2/SSHBruteForce",
            &bytes(&restamp(probe.clone(), probe_at)),
        )
        .await?;
    flush(out)?;

    heading(
        out,
        4,
        &format!("A storm: GuardDuty updates that finding {STORM} times, a minute apart"),
    )?;
    engine.quiet(true);
    for n in 1..=STORM {
        let mut update = restamp(probe.clone(), probe_at + Duration::minutes(i64::from(n)));
        update["detail"]["service"]["count"] = json!(n + 1);
        engine.feed(&format!("update {n}"), &bytes(&update)).await?;
    }
    engine.quiet(false);
    let report = engine.report().await?;
    for i in report
        .incidents
        .iter()
        .filter(|i| i.playbook.as_deref() == Some("ec2-brute-force"))
    {
        let repeats = i
            .timeline
            .iter()
            .filter(|e| e.event == "signal_repeated")
            .count();
        writeln!(
            out,
            "  {STORM} updates: {repeats} counted as repeats on {} ({} signals), no new incident, nothing run again",
            i.id, i.signals
        )?;
    }
    flush(out)?;

    heading(
        out,
        5,
        "GuardDuty: the same backdoor on db-1, which is tagged firebreak:protected",
    )?;
    let mut on_db = rename(&parse(BACKDOOR), WEB_HOST, DB_HOST);
    on_db["detail"]["id"] = json!("demo-backdoor-db-1");
    engine
        .feed(
            "GuardDuty Backdoor on db-1",
            &bytes(&restamp(on_db, t0 + Duration::minutes(30))),
        )
        .await?;
    flush(out)?;

    heading(
        out,
        6,
        "Security Hub: a public S3 bucket, sent by a person with a custom action",
    )?;
    let finding = restamp(parse(S3_PUBLIC), t0 + Duration::minutes(35));
    let bucket = bucket_named(&finding);
    if let Some(bucket) = &bucket {
        let s3 = aws_sdk_s3::Client::new(engine.sdk());
        let _ = s3.create_bucket().bucket(bucket).send().await;
        writeln!(out, "  (seeded bucket {bucket})")?;
    }
    engine
        .feed("Security Hub CIS 2.3", &bytes(&finding))
        .await?;
    flush(out)?;
    let waiting = waiting_for_approval(&engine).await?;
    for id in waiting {
        writeln!(
            out,
            "  … the playbook asks first. The demo approves, as an on-call engineer would:"
        )?;
        engine.approve(&id, "demo:on-call").await?;
        flush(out)?;
    }

    heading(
        out,
        7,
        "A day later: the 5-minute sweep resolves what went quiet",
    )?;
    engine.sweep(Utc::now() + Duration::hours(25)).await?;
    flush(out)?;

    let report = engine.report().await?;
    writeln!(
        out,
        "\n── Post-incident reports ─────────────────────────────────────────────"
    )?;
    for i in &report.incidents {
        if let (Status::Resolved, Some(report)) = (i.status, &i.report) {
            writeln!(out, "\n{report}")?;
        }
    }
    crate::simulate::print_report(&report, out)?;
    writeln!(
        out,
        "\nReplay any real event the same way: firebreak simulate EVENT.json [--json]"
    )?;
    Ok(report)
}

fn heading(out: &mut impl Write, n: u32, text: &str) -> std::io::Result<()> {
    if n == 0 {
        writeln!(out, "── {text}")
    } else {
        writeln!(out, "\n── {n}. {text}")
    }
}

fn bucket_named(event: &Value) -> Option<String> {
    event["detail"]["findings"]
        .as_array()?
        .iter()
        .flat_map(|f| f["Resources"].as_array().into_iter().flatten())
        .find(|r| r["Type"].as_str() == Some("AwsS3Bucket"))
        .and_then(|r| r["Id"].as_str())
        .map(|arn| arn.rsplit(':').next().unwrap_or(arn).to_owned())
}

async fn waiting_for_approval(engine: &Engine) -> Result<Vec<String>, EngineError> {
    let mut ids = Vec::new();
    for id in engine.incident_ids() {
        if let Some(i) = engine.store().get(id).await?
            && i.status.is_open()
            && i.timeline.iter().any(|e| e.event == "approval_requested")
            && !i.timeline.iter().any(|e| e.event == "remediation_approved")
        {
            ids.push(id.clone());
        }
    }
    Ok(ids)
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("writing the demo's output: {0}")]
    Io(#[from] std::io::Error),
}
