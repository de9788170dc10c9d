//! Fakes for tests (feature `test-util`): a controllable clock, a sleeper that records instead
//! of waiting, and credentials that return what they are told.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::{AccessToken, BoxFuture, Clock, Error, Sleeper, TokenCredential, TokenRequestOptions};

/// A clock that moves only when told to.
#[derive(Clone, Debug)]
pub struct FakeClock(Arc<Mutex<SystemTime>>);

impl FakeClock {
    /// A clock showing `start`.
    pub fn new(start: SystemTime) -> Self {
        Self(Arc::new(Mutex::new(start)))
    }

    /// A clock showing 2030-01-01T00:00:00Z.
    pub fn at_2030() -> Self {
        Self::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_456_000))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }

    /// Sets the clock.
    pub fn set(&self, to: SystemTime) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = to;
    }

    /// This clock as a shared [`Clock`].
    pub fn shared(&self) -> Arc<dyn Clock> {
        Arc::new(self.clone())
    }
}

impl Clock for FakeClock {
    fn now(&self) -> SystemTime {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A sleeper that returns at once and records every requested duration; it advances a
/// [`FakeClock`] if given one.
#[derive(Clone, Debug, Default)]
pub struct RecordingSleeper {
    slept: Arc<Mutex<Vec<Duration>>>,
    clock: Option<FakeClock>,
}

impl RecordingSleeper {
    /// A sleeper that records only.
    pub fn new() -> Self {
        Self::default()
    }

    /// A sleeper that also advances `clock`.
    pub fn advancing(clock: FakeClock) -> Self {
        Self {
            slept: Arc::default(),
            clock: Some(clock),
        }
    }

    /// The durations requested so far.
    pub fn slept(&self) -> Vec<Duration> {
        self.slept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// This sleeper as a shared [`Sleeper`].
    pub fn shared(&self) -> Arc<dyn Sleeper> {
        Arc::new(self.clone())
    }
}

impl Sleeper for RecordingSleeper {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.slept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(duration);
        if let Some(clock) = &self.clock {
            clock.advance(duration);
        }
        Box::pin(async {})
    }
}

type Responder = dyn Fn(&[&str], &TokenRequestOptions) -> Result<AccessToken, Error> + Send + Sync;

/// A credential answering from a closure, counting its calls.
pub struct FnCredential {
    name: &'static str,
    respond: Box<Responder>,
    calls: Arc<AtomicUsize>,
}

impl std::fmt::Debug for FnCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnCredential")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl FnCredential {
    /// How many times `get_token` was called.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// A shared counter of calls, readable after the credential has been moved into a chain.
    pub fn call_counter(&self) -> Arc<AtomicUsize> {
        self.calls.clone()
    }
}

impl TokenCredential for FnCredential {
    fn get_token<'a>(
        &'a self,
        scopes: &'a [&'a str],
        options: &'a TokenRequestOptions,
    ) -> BoxFuture<'a, Result<AccessToken, Error>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let result = (self.respond)(scopes, options);
        Box::pin(async move { result })
    }

    fn name(&self) -> &'static str {
        self.name
    }
}

/// A credential named `name` that answers with `respond`.
pub fn credential_fn(
    name: &'static str,
    respond: impl Fn(&[&str], &TokenRequestOptions) -> Result<AccessToken, Error>
    + Send
    + Sync
    + 'static,
) -> FnCredential {
    FnCredential {
        name,
        respond: Box::new(respond),
        calls: Arc::default(),
    }
}

/// A credential that always returns `token` (valid until `expires_on`).
pub fn static_credential(name: &'static str, token: &str, expires_on: SystemTime) -> FnCredential {
    let token = AccessToken::new(token, expires_on);
    credential_fn(name, move |_, _| Ok(token.clone()))
}

/// A credential that always fails with `error`.
pub fn failing_credential(name: &'static str, error: Error) -> FnCredential {
    credential_fn(name, move |_, _| Err(error.clone()))
}
