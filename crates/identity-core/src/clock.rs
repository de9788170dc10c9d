//! Injected time: a [`Clock`] for "now" and a [`Sleeper`] for waits between retries.
//!
//! Libraries in this workspace never call `SystemTime::now` or `tokio::time::sleep` directly,
//! so tests can walk a token's lifetime or a retry schedule without waiting.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::BoxFuture;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + Debug {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The real wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(
        clippy::disallowed_methods,
        reason = "this is the one place that reads the wall clock"
    )]
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Something that can wait.
pub trait Sleeper: Send + Sync + Debug {
    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// Waits with the tokio timer.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The default clock, shared.
pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// The default sleeper, shared.
pub fn tokio_sleeper() -> Arc<dyn Sleeper> {
    Arc::new(TokioSleeper)
}

/// Seconds since the Unix epoch as a `SystemTime`, or `None` if it does not fit.
pub fn from_unix_seconds(seconds: i64) -> Option<SystemTime> {
    let magnitude = Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(magnitude)
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(magnitude)
    }
}
