//! The invocation's time budget, and the retry that lives within it.
//!
//! Lambda tells each invocation when it will be cut off (`LambdaEvent.context.deadline`). The
//! SDK's standard retry already retries throttling and 5xx a few times with backoff; when AWS
//! keeps throttling past that (EC2's `RequestLimitExceeded` during an account-wide burst is the
//! usual case), [`retry`] keeps going with exponential backoff and jitter for as long as the
//! budget allows, and then gives up with the transient error, which fails the invocation so
//! the platform retries it. A throttled remediation is late, never silently lost.
//!
//! A [`Budget`] keeps a margin back from the deadline: the stage needs a moment after the last
//! AWS call to write the outcome into the incident.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use firebreak_shared::aws::AwsError;

/// How the stage paces itself. The defaults suit Lambda; tests shrink them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Between two polls of a running automation or command.
    pub poll: Duration,
    /// The first wait of the outer retry; it doubles on every transient failure.
    pub backoff: Duration,
    /// The longest single wait of the outer retry.
    pub max_backoff: Duration,
    /// Kept back from the deadline to record the outcome.
    pub margin: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            poll: Duration::from_secs(5),
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            margin: Duration::from_secs(3),
        }
    }
}

/// What is left of an invocation's time.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    deadline: DateTime<Utc>,
    timing: Timing,
}

impl Budget {
    pub fn new(deadline: DateTime<Utc>, timing: Timing) -> Budget {
        Budget { deadline, timing }
    }

    pub fn deadline(&self) -> DateTime<Utc> {
        self.deadline
    }

    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// Time left before the margin, by the wall clock.
    pub fn remaining(&self) -> Duration {
        let margin = chrono::Duration::from_std(self.timing.margin).unwrap_or_default();
        (self.deadline - margin - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
    }

    /// Sleeps `d` if the budget has room for it (and for one more attempt after), else
    /// returns `false` at once.
    pub async fn sleep(&self, d: Duration) -> bool {
        if d >= self.remaining() {
            return false;
        }
        tokio::time::sleep(d).await;
        true
    }
}

/// Half the delay plus a pseudo-random share of the other half ("equal jitter"), so retries
/// from concurrent invocations do not land on AWS in step. The clock's nanoseconds are random
/// enough to spread them; nothing depends on their quality.
fn jitter(d: Duration) -> Duration {
    let half = d / 2;
    let nanos = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|t| t.subsec_nanos())
            .unwrap_or(0),
    );
    let span = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX).max(1);
    half + Duration::from_nanos(nanos % span)
}

/// Runs `call` until it succeeds, fails permanently, or a transient failure outlasts the
/// budget. What comes back after the budget is the last transient error.
pub async fn retry<T, F, Fut>(budget: &Budget, mut call: F) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    let timing = budget.timing();
    let mut delay = timing.backoff;
    loop {
        match call().await {
            Err(e) if e.transient => {
                tracing::warn!(error = %e, wait_ms = delay.as_millis(), "transient AWS error; retrying within the budget");
                if !budget.sleep(jitter(delay)).await {
                    return Err(e);
                }
                delay = (delay * 2).min(timing.max_backoff);
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> Timing {
        Timing {
            poll: Duration::from_millis(5),
            backoff: Duration::from_millis(2),
            max_backoff: Duration::from_millis(10),
            margin: Duration::from_millis(0),
        }
    }

    fn throttled() -> AwsError {
        AwsError {
            service: "ec2",
            operation: "CreateSnapshots",
            code: Some("RequestLimitExceeded".to_owned()),
            status: Some(503),
            message: "Request limit exceeded.".to_owned(),
            transient: true,
        }
    }

    #[tokio::test]
    async fn a_throttled_call_is_retried_until_it_succeeds() {
        let budget = Budget::new(Utc::now() + chrono::Duration::seconds(5), quick());
        let mut calls = 0;
        let out = retry(&budget, || {
            calls += 1;
            let n = calls;
            async move { if n < 4 { Err(throttled()) } else { Ok(n) } }
        })
        .await;
        assert_eq!(out, Ok(4));
    }

    #[tokio::test]
    async fn throttling_past_the_budget_returns_the_transient_error() {
        let budget = Budget::new(Utc::now() + chrono::Duration::milliseconds(50), quick());
        let started = std::time::Instant::now();
        let out: Result<(), AwsError> = retry(&budget, || async { Err(throttled()) }).await;
        assert!(out.is_err_and(|e| e.transient && e.code_is("RequestLimitExceeded")));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_permanent_error_is_not_retried() {
        let budget = Budget::new(Utc::now() + chrono::Duration::seconds(5), quick());
        let mut calls = 0;
        let out: Result<(), AwsError> = retry(&budget, || {
            calls += 1;
            async {
                Err(AwsError {
                    transient: false,
                    code: Some("UnauthorizedOperation".to_owned()),
                    ..throttled()
                })
            }
        })
        .await;
        assert!(out.is_err());
        assert_eq!(calls, 1);
    }

    #[test]
    fn jitter_stays_between_half_and_the_whole_delay() {
        for _ in 0..100 {
            let d = jitter(Duration::from_millis(100));
            assert!(d >= Duration::from_millis(50) && d <= Duration::from_millis(100));
        }
    }
}
