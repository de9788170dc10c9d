//! The overall deadline of one call: every attempt, every retry sleep and every follow-up
//! request of a `get_token` fit inside it.
//!
//! Each single wait in a credential is bounded (connect, per-attempt timeout, retry sleeps),
//! but their sum is what a caller waits for. A deadline scope bounds the sum:
//!
//! * [`within`] runs a future under a deadline and ends it with a
//!   [`Transport`](crate::ErrorKind::Transport) error when the time is up. Scopes nest: an inner
//!   scope never outlives the one around it.
//! * [`Pipeline::send`](crate::http::Pipeline::send) opens a scope with the pipeline's
//!   [`deadline`](crate::http::Pipeline::deadline) when none is open, and inside one it
//!   shortens each attempt's timeout to the time left and ends the call at once, with an error
//!   saying so, when a retry sleep (computed, or asked for with `Retry-After`,
//!   `retry-after-ms` or `x-ms-retry-after-ms`) would end past the deadline.
//! * [`remaining`] tells code inside a scope how much time is left.
//!
//! Time is the tokio timer's (so `tokio::time::pause` applies), and time slept through an
//! injected [`Sleeper`](crate::Sleeper) counts as elapsed even when the sleeper returns at once,
//! so tests that record their sleeps see the same decisions as real runs.
//!
//! A scope lives in a tokio task-local: work spawned onto another task (the token cache's
//! shared load is) is not inside the caller's scope, and bounds itself with its own pipeline's
//! deadline. A caller that must stop waiting earlier (a chain member's share of the chain's
//! deadline) wraps its await with [`run`].

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::Error;

tokio::task_local! {
    static CURRENT: Scope;
}

#[derive(Debug)]
struct Scope {
    started: Instant,
    limit: Duration,
    /// Time slept through the injected sleeper in this scope.
    slept: Cell<Duration>,
}

impl Scope {
    fn remaining(&self) -> Duration {
        let elapsed = self.started.elapsed().max(self.slept.get());
        self.limit.saturating_sub(elapsed)
    }
}

/// The time left in the current deadline scope, or `None` outside any scope.
pub fn remaining() -> Option<Duration> {
    CURRENT.try_with(Scope::remaining).ok()
}

/// The limit of the current scope, or `None` outside any scope.
pub fn limit() -> Option<Duration> {
    CURRENT.try_with(|s| s.limit).ok()
}

/// Records that `slept` was spent waiting through an injected sleeper, so that a sleeper that
/// returns at once (in tests) still uses up the deadline.
pub(crate) fn note_slept(slept: Duration) {
    let _ = CURRENT.try_with(|s| s.slept.set(s.slept.get().saturating_add(slept)));
}

/// Runs `future` with at most `limit` (or the time left in the enclosing scope, if less),
/// inside a deadline scope. `None` when the time ran out first (the future is dropped).
pub async fn run<F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    let limit = remaining().map_or(limit, |left| left.min(limit));
    let scope = Scope {
        started: Instant::now(),
        limit,
        slept: Cell::new(Duration::ZERO),
    };
    // `timeout` with a duration too large for the timer waits forever, which is what a
    // `Duration::MAX` limit asks for.
    tokio::time::timeout(limit, CURRENT.scope(scope, future))
        .await
        .ok()
}

/// Runs `future` with at most `limit` (see [`run`]); when the time runs out, a
/// [`Transport`](crate::ErrorKind::Transport) error of `credential` saying so.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use identity_core::deadline;
///
/// let slow = async {
///     tokio::time::sleep(Duration::from_secs(3600)).await;
///     Ok::<_, identity_core::Error>(())
/// };
/// let e = deadline::within("ExampleCredential", Duration::from_millis(10), slow)
///     .await
///     .unwrap_err();
/// assert_eq!(e.kind(), identity_core::ErrorKind::Transport);
/// assert!(e.to_string().contains("deadline"));
/// # }
/// ```
///
/// # Errors
/// The future's own error, or the deadline error.
pub async fn within<T, F>(credential: &'static str, limit: Duration, future: F) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>>,
{
    let effective = remaining().map_or(limit, |left| left.min(limit));
    match run(limit, future).await {
        Some(result) => result,
        None => Err(expired(credential, effective)),
    }
}

/// The error of a call whose deadline of `limit` passed.
pub(crate) fn expired(credential: &'static str, limit: Duration) -> Error {
    Error::transport(
        credential,
        format!(
            "no token within the {} ms deadline of this call; the endpoint is slow or silent (raise the deadline in the credential's options if it is only slow)",
            limit.as_millis()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scopes_nest_and_never_outlive_the_outer_one() {
        assert_eq!(remaining(), None);
        run(Duration::from_secs(10), async {
            assert!(remaining().unwrap() <= Duration::from_secs(10));
            run(Duration::from_secs(60), async {
                assert!(limit().unwrap() <= Duration::from_secs(10));
            })
            .await
            .unwrap();
            note_slept(Duration::from_secs(4));
            assert!(remaining().unwrap() <= Duration::from_secs(6));
            note_slept(Duration::MAX);
            assert_eq!(remaining(), Some(Duration::ZERO));
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_silent_future_ends_at_the_deadline() {
        let e = within("Test", Duration::from_millis(50), async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        })
        .await
        .unwrap_err();
        assert!(e.to_string().contains("50 ms deadline"), "{e}");
        let huge = within("Test", Duration::MAX, async { Ok(1) })
            .await
            .unwrap();
        assert_eq!(huge, 1);
    }
}
