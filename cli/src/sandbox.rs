//! A local AWS to run Firebreak against: `moto_server` on a loopback port, and the stack's own
//! resources created in it from `template.yaml`.
//!
//! The integration tests and (later) `firebreak demo` / `simulate` share this, so what they
//! prove runs on the same resources the template deploys: the table's keys and index, the
//! lifecycle bus, the topics, and every EventBridge rule with its own pattern. Each function's
//! rules target an SQS queue standing in for the function, so a test sees exactly which events
//! reach which stage.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use serde_yaml_ng::Value;

use firebreak_shared::aws::AwsError;

pub use crate::template::{REGION, TEMPLATE};
use crate::template::{RuleBus, Template, TemplateError};

/// Set this to reuse a moto already running (CI may start one for every test binary).
pub const ENDPOINT_ENV: &str = "FIREBREAK_LOCAL_AWS";

const INSTALL_HINT: &str = "moto_server was not found on PATH. Install it with \
    `pip install 'moto[server]'` (bash .ci/run does this), or point FIREBREAK_LOCAL_AWS at a \
    running moto (e.g. http://127.0.0.1:5000).";

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{INSTALL_HINT}")]
    MotoMissing,
    #[error("could not start moto_server: {0}")]
    MotoStart(String),
    #[error("moto_server did not answer on {endpoint} within {waited_s} s")]
    MotoTimeout { endpoint: String, waited_s: u64 },
    #[error("template.yaml: {0}")]
    Template(String),
    #[error(transparent)]
    Resolve(#[from] TemplateError),
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// A running local AWS. Dropping it stops moto.
#[derive(Debug)]
pub struct LocalAws {
    endpoint: String,
    child: Option<Child>,
}

impl Drop for LocalAws {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

fn free_port() -> Result<u16, SandboxError> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| SandboxError::MotoStart(e.to_string()))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| SandboxError::MotoStart(e.to_string()))
}

/// Whether an HTTP server answers on `port` (moto answers `/moto-api/` once it is up).
fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

impl LocalAws {
    /// Starts `moto_server` on a free loopback port and waits until it answers.
    pub fn start() -> Result<LocalAws, SandboxError> {
        let moto = on_path("moto_server").ok_or(SandboxError::MotoMissing)?;
        let port = free_port()?;
        let mut command = Command::new(moto);
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        die_with_parent(&mut command);
        let mut child = command
            .spawn()
            .map_err(|e| SandboxError::MotoStart(e.to_string()))?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let limit = Duration::from_secs(60);
        while !answers(port) {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(SandboxError::MotoStart(format!(
                    "moto_server exited: {status}"
                )));
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                return Err(SandboxError::MotoTimeout {
                    endpoint,
                    waited_s: limit.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(LocalAws {
            endpoint,
            child: Some(child),
        })
    }

    /// One local AWS per process: the one named by [`ENDPOINT_ENV`], or one started on first
    /// use. It is started from a thread that lives as long as the process, because moto is
    /// told to die with the thread that started it.
    pub fn shared() -> Result<&'static LocalAws, SandboxError> {
        static SHARED: OnceLock<Result<LocalAws, String>> = OnceLock::new();
        let result = SHARED.get_or_init(|| {
            if let Some(endpoint) = std::env::var(ENDPOINT_ENV).ok().filter(|e| !e.is_empty()) {
                return Ok(LocalAws {
                    endpoint,
                    child: None,
                });
            }
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(LocalAws::start());
                loop {
                    std::thread::park();
                }
            });
            rx.recv()
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
        });
        result.as_ref().map_err(|e| {
            if e == INSTALL_HINT {
                SandboxError::MotoMissing
            } else {
                SandboxError::MotoStart(e.clone())
            }
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// SDK configuration for this local AWS: its endpoint, test credentials, [`REGION`].
    pub async fn sdk_config(&self) -> SdkConfig {
        firebreak_shared::aws::local_config(&self.endpoint, REGION).await
    }
}

/// Asks Linux to kill moto when the thread that started it goes away, so an aborted test run
/// leaves no server behind.
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of ours.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}

/// One SNS message as a subscribed queue receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct SnsMessage {
    pub subject: Option<String>,
    pub message: String,
    pub attributes: BTreeMap<String, String>,
}

/// The stack's resources in the local AWS, named with a prefix so tests don't collide.
#[derive(Debug, Clone)]
pub struct Stack {
    pub prefix: String,
    pub table: String,
    pub bus: String,
    /// This stack's stand-in for the account's default bus, where AWS services' events
    /// arrive. Each stack has its own, so stacks sharing one moto never see each other's.
    pub default_bus: String,
    pub topic_arn: String,
    pub escalation_topic_arn: String,
    /// Function logical id (`EnrichFunction` …) → the queue its rules deliver to.
    pub function_queues: BTreeMap<String, String>,
    /// Topic ARN → the queue subscribed to it.
    pub topic_queues: BTreeMap<String, String>,
}

impl Stack {
    /// Creates the table, bus, topics, stand-in queues and rules, as the template defines them
    /// with its parameters' defaults.
    pub async fn create(sdk: &SdkConfig, prefix: &str) -> Result<Stack, SandboxError> {
        Stack::create_from(sdk, prefix, &Template::embedded()?).await
    }

    /// [`Stack::create`] from `template` as given: other parameters, another stack name.
    pub async fn create_from(
        sdk: &SdkConfig,
        prefix: &str,
        template: &Template,
    ) -> Result<Stack, SandboxError> {
        let table = format!("{prefix}-incidents");
        create_table(sdk, template.resource("IncidentTable"), &table).await?;

        let events = aws_sdk_eventbridge::Client::new(sdk);
        let bus = format!("{prefix}-lifecycle");
        events
            .create_event_bus()
            .name(&bus)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("eventbridge", "CreateEventBus", &e))?;

        let default_bus = format!("{prefix}-default");
        events
            .create_event_bus()
            .name(&default_bus)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("eventbridge", "CreateEventBus", &e))?;

        let sqs = aws_sdk_sqs::Client::new(sdk);
        let sns = aws_sdk_sns::Client::new(sdk);
        let mut topic_queues = BTreeMap::new();
        let mut topics = Vec::new();
        for logical in ["NotificationTopic", "EscalationTopic"] {
            if template.resource(logical).is_null() {
                return Err(SandboxError::Template(format!("no {logical} resource")));
            }
            let topic = sns
                .create_topic()
                .name(format!("{prefix}-{logical}"))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("sns", "CreateTopic", &e))?;
            let arn = topic.topic_arn().unwrap_or_default().to_owned();
            let (url, queue_arn) = create_queue(&sqs, &format!("{prefix}-{logical}-inbox")).await?;
            sns.subscribe()
                .topic_arn(&arn)
                .protocol("sqs")
                .endpoint(&queue_arn)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("sns", "Subscribe", &e))?;
            topic_queues.insert(arn.clone(), url);
            topics.push(arn);
        }
        let [topic_arn, escalation_topic_arn] = <[String; 2]>::try_from(topics)
            .map_err(|_| SandboxError::Template("two topics expected".into()))?;

        let mut function_queues: BTreeMap<String, (String, String)> = BTreeMap::new();
        let functions = template
            .resources_of_type("AWS::Serverless::Function")
            .into_iter()
            .map(str::to_owned);
        for name in functions {
            let queue = create_queue(&sqs, &format!("{prefix}-{name}")).await?;
            function_queues.insert(name, queue);
        }
        for rule in template.rules()? {
            let Some((_, queue_arn)) = function_queues.get(&rule.function) else {
                return Err(SandboxError::Template(format!(
                    "rule {} of unknown function {}",
                    rule.event, rule.function
                )));
            };
            let on_bus = match rule.bus {
                RuleBus::Default => default_bus.clone(),
                RuleBus::Lifecycle => bus.clone(),
            };
            let name = format!("{prefix}-{}-{}", rule.function, rule.event);
            events
                .put_rule()
                .name(&name)
                .event_bus_name(&on_bus)
                .event_pattern(rule.pattern.to_string())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("eventbridge", "PutRule", &e))?;
            let target = aws_sdk_eventbridge::types::Target::builder()
                .id(format!("{}-queue", rule.function))
                .arn(queue_arn)
                .build()
                .map_err(|e| SandboxError::Template(e.to_string()))?;
            events
                .put_targets()
                .rule(&name)
                .event_bus_name(&on_bus)
                .targets(target)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("eventbridge", "PutTargets", &e))?;
        }
        let function_queues = function_queues
            .into_iter()
            .map(|(name, (url, _))| (name, url))
            .collect();

        Ok(Stack {
            prefix: prefix.to_owned(),
            table,
            bus,
            default_bus,
            topic_arn,
            escalation_topic_arn,
            function_queues,
            topic_queues,
        })
    }

    /// Takes every message waiting for `function` (`EnrichFunction` …): the EventBridge events
    /// its rules delivered, in arrival order as far as SQS keeps it.
    pub async fn drain(
        &self,
        sdk: &SdkConfig,
        function: &str,
    ) -> Result<Vec<String>, SandboxError> {
        let url = self
            .function_queues
            .get(function)
            .ok_or_else(|| SandboxError::Template(format!("no function {function}")))?;
        drain_queue(sdk, url).await
    }

    /// Takes every message published to `topic_arn`, as its subscribed queue received it.
    pub async fn drain_topic(
        &self,
        sdk: &SdkConfig,
        topic_arn: &str,
    ) -> Result<Vec<SnsMessage>, SandboxError> {
        let url = self
            .topic_queues
            .get(topic_arn)
            .ok_or_else(|| SandboxError::Template(format!("no topic {topic_arn}")))?;
        let bodies = drain_queue(sdk, url).await?;
        bodies
            .iter()
            .map(|body| {
                let v: serde_json::Value = serde_json::from_str(body)
                    .map_err(|e| SandboxError::Template(format!("SNS envelope: {e}")))?;
                let attributes = v["MessageAttributes"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, a)| (k.clone(), a["Value"].as_str().unwrap_or("").to_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(SnsMessage {
                    subject: v["Subject"].as_str().map(str::to_owned),
                    message: v["Message"].as_str().unwrap_or("").to_owned(),
                    attributes,
                })
            })
            .collect()
    }
}

async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
) -> Result<(String, String), SandboxError> {
    let out = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("sqs", "CreateQueue", &e))?;
    let url = out.queue_url().unwrap_or_default().to_owned();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("sqs", "GetQueueAttributes", &e))?;
    let arn = attrs
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .cloned()
        .unwrap_or_default();
    Ok((url, arn))
}

async fn drain_queue(sdk: &SdkConfig, url: &str) -> Result<Vec<String>, SandboxError> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut bodies = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sqs", "ReceiveMessage", &e))?;
        let messages = out.messages();
        if messages.is_empty() {
            return Ok(bodies);
        }
        for m in messages {
            bodies.push(m.body().unwrap_or_default().to_owned());
            if let Some(handle) = m.receipt_handle() {
                sqs.delete_message()
                    .queue_url(url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("sqs", "DeleteMessage", &e))?;
            }
        }
    }
}

/// Creates the incident table with the keys, index and TTL the template gives it.
fn str_at<'a>(v: &'a Value, what: &str) -> Result<&'a str, SandboxError> {
    v.as_str()
        .ok_or_else(|| SandboxError::Template(format!("{what} is not a string")))
}

async fn create_table(sdk: &SdkConfig, resource: &Value, name: &str) -> Result<(), SandboxError> {
    let props = &resource["Properties"];
    if props.is_null() {
        return Err(SandboxError::Template("no IncidentTable resource".into()));
    }
    let key_schema = |v: &Value| -> Result<Vec<KeySchemaElement>, SandboxError> {
        v.as_sequence()
            .ok_or_else(|| SandboxError::Template("KeySchema is not a list".into()))?
            .iter()
            .map(|k| {
                KeySchemaElement::builder()
                    .attribute_name(str_at(&k["AttributeName"], "AttributeName")?)
                    .key_type(KeyType::from(str_at(&k["KeyType"], "KeyType")?))
                    .build()
                    .map_err(|e| SandboxError::Template(e.to_string()))
            })
            .collect()
    };
    let attributes = props["AttributeDefinitions"]
        .as_sequence()
        .ok_or_else(|| SandboxError::Template("AttributeDefinitions is not a list".into()))?
        .iter()
        .map(|a| {
            AttributeDefinition::builder()
                .attribute_name(str_at(&a["AttributeName"], "AttributeName")?)
                .attribute_type(ScalarAttributeType::from(str_at(
                    &a["AttributeType"],
                    "AttributeType",
                )?))
                .build()
                .map_err(|e| SandboxError::Template(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut indexes = Vec::new();
    for gsi in props["GlobalSecondaryIndexes"]
        .as_sequence()
        .into_iter()
        .flatten()
    {
        let projection = Projection::builder()
            .projection_type(ProjectionType::from(
                gsi["Projection"]["ProjectionType"]
                    .as_str()
                    .unwrap_or("ALL"),
            ))
            .build();
        indexes.push(
            GlobalSecondaryIndex::builder()
                .index_name(str_at(&gsi["IndexName"], "IndexName")?)
                .set_key_schema(Some(key_schema(&gsi["KeySchema"])?))
                .projection(projection)
                .build()
                .map_err(|e| SandboxError::Template(e.to_string()))?,
        );
    }
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    ddb.create_table()
        .table_name(name)
        .set_key_schema(Some(key_schema(&props["KeySchema"])?))
        .set_attribute_definitions(Some(attributes))
        .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("dynamodb", "CreateTable", &e))?;
    if let Some(attr) = props["TimeToLiveSpecification"]["AttributeName"].as_str() {
        let spec = TimeToLiveSpecification::builder()
            .attribute_name(attr)
            .enabled(true)
            .build()
            .map_err(|e| SandboxError::Template(e.to_string()))?;
        ddb.update_time_to_live()
            .table_name(name)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("dynamodb", "UpdateTimeToLive", &e))?;
    }
    Ok(())
}
