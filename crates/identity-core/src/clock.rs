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

    /// The current time read cheaply, at most [`COARSE_LAG`] behind [`now`](Clock::now).
    ///
    /// The token cache reads it on every cache hit, only to decide that a cached token is
    /// still well before its refresh point; near that point it reads [`now`](Clock::now).
    /// The default is `now()`, exact; [`SystemClock`] reads the kernel's coarse wall clock
    /// (`CLOCK_REALTIME_COARSE` on Linux, a few nanoseconds and no hardware counter read).
    fn now_coarse(&self) -> SystemTime {
        self.now()
    }
}

/// How far [`Clock::now_coarse`] may lag [`Clock::now`]: 50 ms, several times the coarse
/// clock's resolution (one kernel tick, 1 to 10 ms).
pub const COARSE_LAG: Duration = Duration::from_millis(50);

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

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn now_coarse(&self) -> SystemTime {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        match (u64::try_from(t.tv_sec), u32::try_from(t.tv_nsec)) {
            (Ok(secs), Ok(nanos)) => SystemTime::UNIX_EPOCH
                .checked_add(Duration::new(secs, nanos))
                .unwrap_or_else(|| self.now()),
            // Before 1970: not a clock a token could be fresh by; read the exact one.
            _ => self.now(),
        }
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
