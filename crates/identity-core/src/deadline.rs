//! The overall deadline of one call: every attempt, every retry sleep and every follow-up
//! request of a `get_token` fit inside it.
//!
//! Each single wait in a credential is bounded (connect, per-attempt timeout, retry sleeps),
//! but their sum is what a caller waits for. Deadline scopes bound the sum:
//!
//! * [`Pipeline::send`](crate::http::Pipeline::send) runs inside a scope of the pipeline's
//!   [`deadline`](crate::http::Pipeline::deadline): the one
//!   [`Pipeline::within`](crate::http::Pipeline::within) opened around several sends of one
//!   call (a challenge and its answer), else its own. Inside it each attempt's timeout is
//!   shortened to the time left, and when a retry sleep (computed, or asked for with
//!   `Retry-After`, `retry-after-ms` or `x-ms-retry-after-ms`) would end past the deadline the
//!   call ends at once with an error saying so. A pipeline's scope ignores any scope around it:
//!   a token load is shared by every caller waiting for it and must not end at one caller's
//!   deadline.
//! * [`run`] and [`within`] bound a caller's wait from outside (a chain gives each member a
//!   share of its own deadline this way) and nest: an inner one never outlives the one around
//!   it. [`remaining`] reports the time left in the innermost scope. A pipeline's scope
//!   remembers the time left in the caller's scope when it opened (a token load carries the
//!   deadline of the caller that started it): a retry wait after an answer (an error status)
//!   that would end past it is not started, and the pipeline returns that answer, marked with a
//!   [`RetryCut`](crate::http::RetryCut), so the credential reports what the service said and
//!   that the deadline ended the retries (instead of the caller's bare "no token within").
//!
//! Time is the tokio timer's (so `tokio::time::pause` applies), and time slept through an
//! injected [`Sleeper`](crate::Sleeper) counts as elapsed even when the sleeper returns at once,
//! so tests that record their sleeps see the same decisions as real runs.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::task::futures::TaskLocalFuture;
use tokio::time::Instant;

use crate::Error;

tokio::task_local! {
    static CURRENT: Scope;
}

#[derive(Debug)]
pub(crate) struct Scope {
    started: Instant,
    limit: Duration,
    /// Time slept through the injected sleeper in this scope.
    slept: Cell<Duration>,
    /// The pipeline whose call this scope bounds; `None` for a scope opened by [`run`] or
    /// [`within`].
    owner: Option<u64>,
    /// For a pipeline's scope: the time that was left in the scope around it when it opened
    /// (the caller's deadline), which its retry waits do not outlast.
    caller: Option<Duration>,
}

impl Scope {
    fn new(limit: Duration, owner: Option<u64>) -> Self {
        Self {
            started: Instant::now(),
            limit,
            slept: Cell::new(Duration::ZERO),
            owner,
            caller: None,
        }
    }

    fn elapsed(&self) -> Duration {
        self.started.elapsed().max(self.slept.get())
    }

    fn remaining(&self) -> Duration {
        self.limit.saturating_sub(self.elapsed())
    }
}

/// A pipeline's scope as its retry loop reads it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Owned {
    /// Time left of the pipeline's own deadline.
    pub(crate) left: Duration,
    /// The pipeline's own deadline.
    pub(crate) limit: Duration,
    /// Time left of the caller's deadline, when the pipeline's call began inside one.
    pub(crate) caller_left: Option<Duration>,
}

/// A fresh identity for a pipeline's scopes.
pub(crate) fn next_owner() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The time left in the current deadline scope, or `None` outside any scope.
pub fn remaining() -> Option<Duration> {
    CURRENT.try_with(Scope::remaining).ok()
}

/// The limit of the current scope, or `None` outside any scope.
pub fn limit() -> Option<Duration> {
    CURRENT.try_with(|s| s.limit).ok()
}

/// The time left and the limit of the current scope when `owner` opened it.
pub(crate) fn owned_by(owner: u64) -> Option<Owned> {
    CURRENT
        .try_with(|s| {
            (s.owner == Some(owner)).then(|| Owned {
                left: s.remaining(),
                limit: s.limit,
                caller_left: s.caller.map(|c| c.saturating_sub(s.elapsed())),
            })
        })
        .ok()
        .flatten()
}

/// Records that `slept` was spent waiting through an injected sleeper, so that a sleeper that
/// returns at once (in tests) still uses up the deadline.
pub(crate) fn note_slept(slept: Duration) {
    let _ = CURRENT.try_with(|s| s.slept.set(s.slept.get().saturating_add(slept)));
}

/// Runs `future` inside a scope of `limit` opened by pipeline `owner`, ignoring any scope
/// around it for stopping: a token load can be first polled by whichever caller's task, and
/// must not be stopped at that caller's deadline. Stops it when the time is up. The time left
/// in the scope around it is remembered, so that the pipeline starts no retry wait the
/// caller would not see the end of (it returns the last answer instead).
pub(crate) fn own<F: Future>(
    owner: u64,
    limit: Duration,
    future: F,
) -> Stop<TaskLocalFuture<Scope, F>> {
    let scope = Scope {
        caller: remaining(),
        ..Scope::new(limit, Some(owner))
    };
    hard_stop(limit, CURRENT.scope(scope, future))
}

/// `future` inside a copy of the current scope's time left (no stop of its own), so that a
/// token load keeps the deadline of the caller that started it whichever task polls it first.
/// Outside any scope, `future` itself.
pub(crate) fn carry<F: Future>(
    future: F,
) -> futures_util::future::Either<TaskLocalFuture<Scope, F>, F> {
    use futures_util::future::Either;
    match remaining() {
        Some(left) => Either::Left(CURRENT.scope(Scope::new(left, None), future)),
        None => Either::Right(future),
    }
}

/// Runs `future` with at most `limit` (or the time left in the enclosing scope, if less),
/// inside a deadline scope. `None` when the time ran out first (the future is dropped). The
/// future is polled once before the deadline is looked at, so a ready answer (a cached
/// token) is never refused. Outside a tokio runtime nothing stops the future from outside.
///
/// A scope opened here bounds the caller's wait and is what [`remaining`] reports (a chain
/// sizes its members' shares with it); a credential's requests keep their own deadline,
/// because a token load is shared by every caller waiting for it.
///
/// The scope's clock starts when `run` is called, not when the returned future is first
/// polled.
pub fn run<F: Future>(limit: Duration, future: F) -> impl Future<Output = Option<F::Output>> {
    let limit = remaining().map_or(limit, |left| left.min(limit));
    hard_stop(limit, CURRENT.scope(Scope::new(limit, None), future))
}

pin_project_lite::pin_project! {
    /// A future stopped at a deadline (or, without a tokio runtime, not stopped).
    #[project = StopProjection]
    pub(crate) enum Stop<F> {
        Timed { #[pin] inner: tokio::time::Timeout<F> },
        Plain { #[pin] inner: F },
    }
}

impl<F: Future> Future for Stop<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            StopProjection::Timed { inner } => inner.poll(cx).map(Result::ok),
            StopProjection::Plain { inner } => inner.poll(cx).map(Some),
        }
    }
}

/// `future`, stopped after `limit`. A plain function rather than an `async fn`, so a large
/// future is stored once, not twice.
fn hard_stop<F: Future>(limit: Duration, future: F) -> Stop<F> {
    if tokio::runtime::Handle::try_current().is_err() {
        // No tokio timer to stop the future with (a foreign executor): the scope still
        // shortens every pipeline attempt and retry sleep inside it.
        return Stop::Plain { inner: future };
    }
    // `timeout` with a duration too large for the timer waits forever, which is what a
    // `Duration::MAX` limit asks for.
    Stop::Timed {
        inner: tokio::time::timeout(limit, future),
    }
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
///     Ok::<_, identity_chain::Error>(())
/// };
/// let e = deadline::within("ExampleCredential", Duration::from_millis(10), slow)
///     .await
///     .unwrap_err();
/// assert_eq!(e.kind(), identity_chain::ErrorKind::Transport);
/// assert!(e.to_string().contains("deadline"));
/// # }
/// ```
///
/// # Errors
/// The future's own error, or the deadline error.
pub fn within<T, F>(
    credential: &'static str,
    limit: Duration,
    future: F,
) -> impl Future<Output = Result<T, Error>>
where
    F: Future<Output = Result<T, Error>>,
{
    let effective = remaining().map_or(limit, |left| left.min(limit));
    run(limit, future).map(move |outcome| match outcome {
        Some(result) => result,
        None => Err(expired(credential, effective)),
    })
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
            own(7, Duration::from_secs(30), async {
                note_slept(Duration::from_secs(4));
                let owned = owned_by(7).unwrap();
                assert!(owned.left <= Duration::from_secs(26));
                assert!(owned.caller_left.unwrap() <= Duration::from_secs(6));
                assert!(owned_by(8).is_none());
                note_slept(Duration::MAX);
                assert_eq!(owned_by(7).unwrap().left, Duration::ZERO);
            })
            .await
            .unwrap();
            assert!(
                owned_by(7).is_none(),
                "an owned scope ignores the one around it"
            );
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
