//! Fakes for tests (feature `test-util`): a controllable clock, a sleeper that records instead
//! of waiting, credentials that return what they are told, a `tracing` capture ([`Capture`])
//! and a scripted loopback HTTP/1.1 server ([`TestServer`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::{AccessToken, BoxFuture, Clock, Error, Sleeper, TokenCredential, TokenRequestOptions};

mod capture;
mod reply;
mod request;
mod server;

pub use capture::{Capture, CapturedEvent, CapturedSpan};
pub use reply::Reply;
pub use request::SeenRequest;
pub use server::TestServer;

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
    cache: Option<crate::cache::TokenCache>,
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

    /// Puts a token cache reading `clock` in front of the closure (keyed by the credential's
    /// name, the scopes, the tenant and CAE; claims bypass it), and offers its entries through
    /// [`TokenCredential::cache_slot`]. `calls` still counts every `get_token`.
    #[must_use]
    pub fn cached(mut self, clock: Arc<dyn Clock>) -> Self {
        self.cache = Some(crate::cache::TokenCache::with_clock(clock));
        self
    }
}

impl TokenCredential for FnCredential {
    fn get_token<'a>(
        &'a self,
        scopes: &'a [&'a str],
        options: &'a TokenRequestOptions,
    ) -> BoxFuture<'a, Result<AccessToken, Error>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(cache) = &self.cache {
            return Box::pin(async move {
                let key = crate::cache::KeyRef::new(
                    self.name,
                    scopes,
                    options.tenant(),
                    options.enable_cae,
                );
                let claims = options.claims_challenge().is_some();
                cache
                    .get_or_fetch(key, claims, || {
                        std::future::ready((self.respond)(scopes, options))
                    })
                    .await
            });
        }
        let result = (self.respond)(scopes, options);
        Box::pin(async move { result })
    }

    fn name(&self) -> &'static str {
        self.name
    }

    fn cache_slot(
        &self,
        scopes: &[&str],
        options: &TokenRequestOptions,
    ) -> Option<crate::cache::CacheSlot> {
        if options.claims_challenge().is_some() {
            return None;
        }
        let key =
            crate::cache::KeyRef::new(self.name, scopes, options.tenant(), options.enable_cae);
        Some(self.cache.as_ref()?.slot(key))
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
        cache: None,
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

/// Creates a FIFO (named pipe) at `path`, readable and writable by the owner only: the file a
/// reader must refuse without blocking.
///
/// # Panics
/// When the FIFO cannot be created (a test setup failure).
#[cfg(unix)]
#[allow(
    clippy::expect_used,
    reason = "a test fixture that cannot be made must stop the test"
)]
pub fn make_fifo(path: impl AsRef<std::path::Path>) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path.as_ref(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("a FIFO in the test's directory");
}
