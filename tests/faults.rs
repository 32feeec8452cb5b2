//! Throttling and 5xx, injected with aws-smithy-mocks where moto cannot misbehave on cue: the
//! SDK retries them with backoff, and what still fails fails the invocation as transient, so
//! the platform retries it or sends it to the dead-letter queue. Nothing is half-done: a
//! notification whose publish failed is released for the retry, not left claimed or lost.

mod support;

use std::time::Duration as StdDuration;

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_sns::operation::publish::PublishOutput;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use chrono::Utc;
use firebreak_create::Create;
use firebreak_notify::Notify;
use firebreak_shared::store::Store;
use support::{Pipeline, fixture};

const ALARM: &str = "cloudwatch-alarm/docs-composite-alarm-with-suppressor-ok-to-alarm.json";

fn quick_retries_sns(c: aws_sdk_sns::config::Builder) -> aws_sdk_sns::config::Builder {
    c.retry_config(
        RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(StdDuration::from_millis(1)),
    )
}

fn quick_retries_ddb(c: aws_sdk_dynamodb::config::Builder) -> aws_sdk_dynamodb::config::Builder {
    c.retry_config(
        RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(StdDuration::from_millis(1)),
    )
}

fn notify_with(p: &Pipeline, sns: aws_sdk_sns::Client) -> Notify {
    Notify::new(
        p.playbooks.clone(),
        p.store.clone(),
        sns,
        &firebreak_notify::Config {
            table: p.stack.table.clone(),
            topic_arn: p.stack.topic_arn.clone(),
            escalation_topic_arn: p.stack.escalation_topic_arn.clone(),
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_that_fails_once_with_a_5xx_is_retried_by_the_sdk_and_sent_once() {
    let p = Pipeline::new("sns-5xx-once").await;
    p.create
        .handle(&fixture(ALARM), Utc::now())
        .await
        .expect("create");
    let opened = p.delivered("NotifyFunction").await;
    let rule = mock!(aws_sdk_sns::Client::publish)
        .sequence()
        .http_status(500, None)
        .output(|| PublishOutput::builder().message_id("m-1").build())
        .build();
    let sns = mock_client!(
        aws_sdk_sns,
        RuleMode::Sequential,
        [&rule],
        quick_retries_sns
    );
    let out = notify_with(&p, sns)
        .handle(opened[0].as_bytes(), Utc::now())
        .await
        .expect("sent after one retry");
    assert_eq!(out["outcome"], "sent");
    assert_eq!(out["message_id"], "m-1");
    assert_eq!(rule.num_calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_throttled_past_the_retries_fails_transient_and_releases_its_claim() {
    let p = Pipeline::new("sns-throttled").await;
    let r = p
        .create
        .handle(&fixture(ALARM), Utc::now())
        .await
        .expect("create");
    let id = r["results"][0]["incident"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let opened = p.delivered("NotifyFunction").await;
    let rule = mock!(aws_sdk_sns::Client::publish)
        .sequence()
        .http_status(
            400,
            Some(
                "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>\
                 <Message>Rate exceeded</Message></Error></ErrorResponse>"
                    .into(),
            ),
        )
        .times(3)
        .build();
    let sns = mock_client!(
        aws_sdk_sns,
        RuleMode::Sequential,
        [&rule],
        quick_retries_sns
    );
    let Err(err) = notify_with(&p, sns)
        .handle(opened[0].as_bytes(), Utc::now())
        .await
    else {
        panic!("a publish throttled past the retries must fail the invocation");
    };
    assert!(err.transient(), "{err}");
    assert_eq!(rule.num_calls(), 3, "the SDK retried the throttled publish");
    assert!(
        p.incident(&id).await.notifications.is_empty(),
        "claim released"
    );

    // The platform's retry, with SNS healthy again, sends it once.
    let sent = p
        .notify
        .handle(opened[0].as_bytes(), Utc::now())
        .await
        .expect("retry");
    assert_eq!(sent["outcome"], "sent");
    assert_eq!(p.published(&p.stack.topic_arn).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_throttled_past_the_retries_fails_the_invocation_as_transient() {
    let p = Pipeline::new("ddb-throttled").await;
    let rule = mock!(aws_sdk_dynamodb::Client::get_item)
        .sequence()
        .http_status(
            400,
            Some(
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow down"}"#
                    .into(),
            ),
        )
        .times(3)
        .build();
    let ddb = mock_client!(
        aws_sdk_dynamodb,
        RuleMode::Sequential,
        [&rule],
        quick_retries_ddb
    );
    let create = Create::new(
        p.playbooks.clone(),
        Store::new(ddb, p.stack.table.clone()),
        p.bus.clone(),
        None,
    );
    let Err(err) = create.handle(&fixture(ALARM), Utc::now()).await else {
        panic!("a store throttled past the retries must fail the invocation");
    };
    assert!(err.transient(), "{err}");
    assert_eq!(rule.num_calls(), 3);
    assert!(
        p.delivered("EnrichFunction").await.is_empty(),
        "nothing emitted"
    );
}
