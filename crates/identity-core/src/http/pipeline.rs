//! The [`Pipeline`]: a client with its limits, retry schedule, clock, sleeper and deadline
//! scope.

use std::sync::Arc;
use std::time::Duration;

use super::{HttpClient, Limits};
use crate::Error;
use crate::clock::{Clock, Sleeper, system_clock, tokio_sleeper};
use crate::retry::RetryPolicy;

/// An [`HttpClient`] with the bounds, retry policy, clock and sleeper that every credential
/// request goes through.
#[derive(Clone, Debug)]
pub struct Pipeline {
    client: Arc<dyn HttpClient>,
    limits: Limits,
    retry: RetryPolicy,
    sleeper: Arc<dyn Sleeper>,
    clock: Arc<dyn Clock>,
    /// Identifies the deadline scopes this pipeline (and its clones) opens.
    owner: u64,
}

impl Pipeline {
    /// A pipeline over `client` with default limits, the default retry policy and real time.
    pub fn new(client: Arc<dyn HttpClient>) -> Self {
        Self {
            client,
            limits: Limits::DEFAULT,
            retry: RetryPolicy::default(),
            sleeper: tokio_sleeper(),
            clock: system_clock(),
            owner: crate::deadline::next_owner(),
        }
    }

    /// Replaces the limits.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Replaces the retry policy.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Replaces the sleeper used between retries.
    #[must_use]
    pub fn with_sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> Self {
        self.sleeper = sleeper;
        self
    }

    /// Replaces the clock (used to read HTTP-date `Retry-After` values).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The retry policy.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The overall deadline of one call through this pipeline: the limits' deadline, else the
    /// retry policy's.
    pub fn deadline(&self) -> Duration {
        self.limits
            .deadline
            .unwrap_or_else(|| self.retry.call_deadline())
    }

    /// Runs `future` (one `get_token`'s requests, for example a challenge and its answer)
    /// inside a deadline scope of [`deadline`](Self::deadline), so every
    /// [`send`](Self::send) of this pipeline (or a clone) in it shares one deadline. The scope
    /// ignores any scope around it (see [`crate::deadline`]).
    ///
    /// # Errors
    /// The future's error, or a [`Transport`](crate::ErrorKind::Transport) error of
    /// `credential` when the deadline passes.
    pub fn within<T, F>(
        &self,
        credential: &'static str,
        future: F,
    ) -> impl Future<Output = Result<T, Error>> + use<T, F>
    where
        F: Future<Output = Result<T, Error>>,
    {
        use futures_util::FutureExt as _;
        let limit = self.deadline();
        crate::deadline::own(self.owner, limit, future).map(move |outcome| match outcome {
            Some(result) => result,
            None => Err(crate::deadline::expired(credential, limit)),
        })
    }

    /// The identity of this pipeline's deadline scopes.
    pub(crate) fn owner(&self) -> u64 {
        self.owner
    }

    /// The client.
    pub fn client(&self) -> &Arc<dyn HttpClient> {
        &self.client
    }

    /// The sleeper.
    pub fn sleeper(&self) -> &Arc<dyn Sleeper> {
        &self.sleeper
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}
