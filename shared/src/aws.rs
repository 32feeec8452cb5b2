//! AWS plumbing every stage shares: one SDK configuration built at init, and one way to read
//! an SDK error.
//!
//! [`sdk_config`] makes no call to AWS: credentials and endpoints resolve lazily on the first
//! request, so init stays cheap. `AWS_ENDPOINT_URL` (which the SDK honours itself) points every
//! client at a local AWS such as moto. [`AwsError`] keeps what an operator needs from a failed
//! call (service, operation, error code, HTTP status) and whether a retry could help.

use std::fmt;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// The roots AWS service endpoints chain to (Amazon Trust Services: Amazon Root CA 1–4 and
/// Starfield Services Root G2), as published at amazontrust.com.
const AMAZON_TRUST_SERVICES: &[u8] = include_bytes!("../certs/amazon-trust-services.pem");

/// The SDK configuration from the Lambda environment (region, credentials, endpoint overrides),
/// with the SDK's standard retry mode: throttling and 5xx are retried with backoff before a
/// call fails.
///
/// Its HTTPS client trusts the Amazon Trust Services roots only. The SDK's default reads and
/// parses every certificate in the system store at init, which was most of each function's
/// cold start (about 5 ms of 10); the functions only ever talk to AWS endpoints.
pub async fn sdk_config() -> SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest());
    match amazon_https_client() {
        Some(http) => loader.http_client(http).load().await,
        None => loader.load().await,
    }
}

fn amazon_https_client() -> Option<aws_smithy_runtime_api::client::http::SharedHttpClient> {
    use aws_smithy_http_client::tls;
    let trust = tls::TrustStore::empty().with_pem_certificate(AMAZON_TRUST_SERVICES);
    let context = tls::TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .inspect_err(|e| tracing::warn!(error = %e, "bundled roots refused; using the system's"))
        .ok()?;
    Some(
        aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .tls_context(context)
            .build_https(),
    )
}

/// An SDK configuration for a local AWS at `endpoint` (moto in tests, the sandbox in
/// `firebreak demo`): fixed test credentials, so nothing reaches a real account.
pub async fn local_config(endpoint: &str, region: &str) -> SdkConfig {
    let credentials = Credentials::new("testing", "testing", None, None, "firebreak-local");
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(credentials)
        .load()
        .await
}

/// Error codes AWS services use for "slow down": retrying later can succeed.
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "RequestThrottled",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TransactionInProgressException",
    "SlowDown",
    "LimitExceededException",
];

/// A failed AWS call, reduced to what matters for logs and for the retry decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct AwsError {
    pub service: &'static str,
    pub operation: &'static str,
    /// The service's error code (`ThrottlingException`, `AccessDeniedException` …), if any.
    pub code: Option<String>,
    pub status: Option<u16>,
    pub message: String,
    /// Throttling, a 5xx, a timeout or a connection failure: the same call may succeed later.
    pub transient: bool,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} failed", self.service, self.operation)?;
        if let Some(code) = &self.code {
            write!(f, " with {code}")?;
        }
        if let Some(status) = self.status {
            write!(f, " (HTTP {status})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Longest message kept from an error that is not a service error.
const MAX_MESSAGE: usize = 400;

impl AwsError {
    /// Reads an SDK error: its code and status, and whether it is worth retrying.
    pub fn from_sdk<E>(
        service: &'static str,
        operation: &'static str,
        err: &SdkError<E, HttpResponse>,
    ) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let (code, status, transient) = match err {
            SdkError::ServiceError(ctx) => {
                let status = ctx.raw().status().as_u16();
                let code = ctx.err().code().map(str::to_owned);
                let throttled = code.as_deref().is_some_and(|c| THROTTLING.contains(&c));
                (code, Some(status), throttled || status >= 500)
            }
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => (None, None, true),
            SdkError::ResponseError(ctx) => {
                let status = ctx.raw().status().as_u16();
                (None, Some(status), status >= 500)
            }
            _ => (None, None, false),
        };
        // A service error says what went wrong in its code and message; the whole context
        // (raw response, body, extensions) would bury that in timelines and reports.
        let message = match err {
            SdkError::ServiceError(ctx) => match (ctx.err().code(), ctx.err().message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_owned(),
                (None, Some(message)) => message.to_owned(),
                (None, None) => format!(
                    "the endpoint answered HTTP {} without an AWS error",
                    ctx.raw().status().as_u16()
                ),
            },
            other => {
                let full = DisplayErrorContext(other).to_string();
                match full.char_indices().nth(MAX_MESSAGE) {
                    Some((cut, _)) => format!("{}…", &full[..cut]),
                    None => full,
                }
            }
        };
        AwsError {
            service,
            operation,
            code,
            status,
            message,
            transient,
        }
    }

    pub fn code_is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

/// The AWS partition of a region, for building ARNs.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_roots_are_the_five_amazon_trust_services_certificates() {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        // The HTTP client parses these lazily and panics on a bad one: prove them here.
        let certs: Vec<_> = CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES)
            .collect::<Result<_, _>>()
            .expect("valid PEM");
        assert_eq!(certs.len(), 5);
        let text = String::from_utf8_lossy(AMAZON_TRUST_SERVICES);
        assert_eq!(text.matches("BEGIN CERTIFICATE").count(), 5);
    }

    #[test]
    fn partitions_follow_the_region_prefix() {
        assert_eq!(partition("eu-west-1"), "aws");
        assert_eq!(partition("cn-north-1"), "aws-cn");
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
    }
}
