//! StartIncident as the create stage sends it, checked against stubbed responses: moto has no
//! Incident Manager, so aws-smithy-mocks stands in, and the shapes asserted here follow the
//! SSM Incidents API reference (StartIncident: responsePlanArn, clientToken, title, impact,
//! triggerDetails{source,timestamp,rawData}, relatedItems[{identifier{type,value},title}]).

use std::time::Duration;

use aws_sdk_ssmincidents::Client;
use aws_sdk_ssmincidents::config::retry::RetryConfig;
use aws_sdk_ssmincidents::operation::start_incident::StartIncidentOutput;
use aws_sdk_ssmincidents::types::{ItemType, ItemValue};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use firebreak_create::start_incident;
use firebreak_shared::incident::{Incident, incident_id};
use firebreak_shared::playbook::PlaybookSet;
use firebreak_shared::triage::decide;

const PLAN: &str = "arn:aws:ssm-incidents::123456789012:response-plan/ec2-compromise";
const RECORD: &str = "arn:aws:ssm-incidents::123456789012:incident-record/ec2-compromise/abc";

fn incident() -> Incident {
    let event = include_bytes!(
        "../../../tests/fixtures/events/guardduty/custodian-eventbridge-backdoor-ec2-cc-activity-b-dns.json"
    );
    let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    let signal = firebreak_shared::signal::parse(event, now)
        .expect("fixture parses")
        .remove(0);
    let playbooks = PlaybookSet::starter();
    let decision = decide(&signal, &playbooks);
    Incident::open(&decision, incident_id(&signal, &decision.dedupe_key), now)
}

fn retrying(conf: aws_sdk_ssmincidents::config::Builder) -> aws_sdk_ssmincidents::config::Builder {
    conf.retry_config(
        RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(1)),
    )
}

#[tokio::test]
async fn start_incident_names_the_plan_the_impact_and_the_instance_and_is_idempotent_by_client_token()
 {
    let i = incident();
    let id = i.id.clone();
    let impact = firebreak_create::impact(i.severity);
    let rule = mock!(Client::start_incident)
        .match_requests(move |req| {
            let related = req.related_items();
            let instance = related.iter().any(|r| {
                r.identifier().is_some_and(|ident| {
                    ident.r#type() == &ItemType::InvolvedResource
                        && matches!(ident.value(), Some(ItemValue::Arn(a)) if a.contains(":instance/i-"))
                })
            });
            req.response_plan_arn() == Some(PLAN)
                && req.client_token() == Some(id.as_str())
                && req.impact() == Some(impact)
                && req.trigger_details().is_some_and(|t| t.source() == "firebreak")
                && instance
        })
        .then_output(|| {
            StartIncidentOutput::builder()
                .incident_record_arn(RECORD)
                .build()
                .expect("output")
        });
    let client = mock_client!(aws_sdk_ssmincidents, [&rule]);
    let arn = start_incident(&client, PLAN, &i).await;
    assert_eq!(arn.as_deref(), Ok(RECORD));
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn a_throttled_start_is_retried_by_the_sdk_and_then_succeeds() {
    let rule = mock!(Client::start_incident)
        .sequence()
        .http_status(
            429,
            Some(r#"{"__type":"ThrottlingException","message":"slow down"}"#.into()),
        )
        .output(|| {
            StartIncidentOutput::builder()
                .incident_record_arn(RECORD)
                .build()
                .expect("output")
        })
        .build();
    let client = mock_client!(
        aws_sdk_ssmincidents,
        RuleMode::Sequential,
        [&rule],
        retrying
    );
    let arn = start_incident(&client, PLAN, &incident()).await;
    assert_eq!(arn.as_deref(), Ok(RECORD));
    assert_eq!(rule.num_calls(), 2);
}

#[tokio::test]
async fn a_persistent_5xx_is_a_transient_error_for_the_platform_to_retry() {
    let rule = mock!(Client::start_incident)
        .sequence()
        .http_status(503, None)
        .times(3)
        .build();
    let client = mock_client!(
        aws_sdk_ssmincidents,
        RuleMode::Sequential,
        [&rule],
        retrying
    );
    let err = start_incident(&client, PLAN, &incident()).await.err();
    assert!(
        err.as_ref()
            .is_some_and(|e| e.transient && e.status == Some(503)),
        "{err:?}"
    );
    assert_eq!(rule.num_calls(), 3);
}

#[tokio::test]
async fn a_missing_response_plan_is_a_permanent_error() {
    let rule = mock!(Client::start_incident)
        .sequence()
        .http_status(
            404,
            Some(r#"{"__type":"ResourceNotFoundException","message":"no such plan"}"#.into()),
        )
        .build();
    let client = mock_client!(
        aws_sdk_ssmincidents,
        RuleMode::Sequential,
        [&rule],
        retrying
    );
    let err = start_incident(&client, PLAN, &incident()).await.err();
    assert!(
        err.as_ref()
            .is_some_and(|e| !e.transient && e.code_is("ResourceNotFoundException")),
        "{err:?}"
    );
    assert_eq!(rule.num_calls(), 1);
}
