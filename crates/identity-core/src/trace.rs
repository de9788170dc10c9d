//! Tracing for `get_token`: one span per call, shared by every credential.
//!
//! Every credential's [`TokenCredential::get_token`](crate::TokenCredential::get_token) runs
//! inside [`traced`], which opens a `DEBUG` span named `get_token` (target
//! `identity_core::trace`) with these fields:
//!
//! | field | value |
//! |---|---|
//! | `credential` | the credential's type name, e.g. `ManagedIdentityCredential` |
//! | `source` | where the token comes from: the managed-identity source (`imds`, `app_service`, …), the developer tool (`az`, `pwsh`, `azd`), the Entra credential kind (`client_secret`, `client_certificate`, `client_assertion`, `workload_identity`; `EnvironmentCredential` gives the kind it selected, or `unconfigured`), or `chain` for `ChainedTokenCredential` and `DefaultAzureCredential`, whose members' spans nest inside theirs |
//! | `cache` | recorded by [`TokenCache`](crate::cache::TokenCache): `hit` (a fresh token, no I/O), `refresh` (a valid token was served and this call started a refresh ahead of expiry), `fetch` (this call started a load), `joined` (this call waited for another caller's load) or `bypass` (a claims challenge skipped the cache) |
//! | `outcome` | `ok`, or the [`ErrorKind`] as a snake-case word (`unavailable`, `authentication_failed`, `invalid_configuration`, `invalid_argument`, `transport`) |
//! | `duration_ms` | wall time of the call in milliseconds, as a float rounded to the microsecond |
//!
//! The span is `DEBUG`, not `INFO`: a cached call costs about a hundred nanoseconds and an
//! application logging at `INFO` should not get a line per request. Spans of credentials
//! called by a chain nest inside the chain's span, and a token load runs inside the span of
//! the call that started it; a refresh ahead of expiry, which outlives that call, gets a
//! `token_refresh` span that follows from it instead.
//!
//! At the end of the call one `DEBUG` event is logged inside the span: `get_token succeeded`,
//! or `get_token failed` with the error's `Display` in the `error` field. Nothing else is
//! recorded: scopes, tenant ids and client ids may appear in other events, but never a token,
//! a secret, a header value, an assertion or a command argument. Errors are safe to log by
//! construction (see [`Error`]).
//!
//! # Turning it on
//! Install any `tracing` subscriber. With `tracing-subscriber` and its `env-filter` feature:
//!
//! ```text
//! RUST_LOG=identity=debug cargo run -p identity-examples --example blocking
//! ```
//!
//! `identity` matches every crate of this workspace (`identity_core`, `identity_msi`,
//! `identity_chain`, …) because `EnvFilter` targets match by prefix.
//!
//! # Cost
//! With no subscriber, or with the `DEBUG` level filtered out everywhere, [`traced`] creates
//! no span and boxes the credential's future as it is, and the cache skips recording its
//! outcome, so a cached `get_token` pays for two level checks.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tracing::field::Empty;

use crate::{AccessToken, BoxFuture, Error, ErrorKind};

/// Runs a credential's `get_token` future inside a `get_token` span (see the
/// [module docs](self)) and records its outcome and duration.
///
/// `credential` is the credential's type name; `source` says where its tokens come from. With
/// the span disabled (no subscriber, or `DEBUG` filtered out) the future is only boxed, with
/// no span and no timing.
///
/// ```
/// # async fn demo() -> Result<(), identity_chain::Error> {
/// use std::time::{Duration, SystemTime};
/// use identity_chain::AccessToken;
///
/// let token = identity_core::trace::traced("ExampleCredential", "fixed", async {
///     Ok(AccessToken::new("t", SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000)))
/// })
/// .await?;
/// # let _ = token; Ok(()) }
/// ```
///
/// The result is the boxed future a `get_token` implementation returns; it resolves to the
/// given future's result, unchanged.
#[inline]
pub fn traced<'a, F>(
    credential: &'static str,
    source: &str,
    future: F,
) -> BoxFuture<'a, Result<AccessToken, Error>>
where
    F: Future<Output = Result<AccessToken, Error>> + Send + 'a,
{
    // The level check first, and the span built out of line: a cached `get_token` takes
    // about a hundred nanoseconds, and even a disabled span adds a fifth to that. Untraced,
    // the credential's future is boxed as it is, exactly as `get_token` would box it anyway.
    if tracing::level_enabled!(tracing::Level::DEBUG) {
        if let Some(trace) = start(credential, source) {
            return Box::pin(Traced {
                inner: future,
                trace,
            });
        }
    }
    Box::pin(future)
}

/// Opens the span, unless the subscriber turns it down.
#[cold]
#[inline(never)]
fn start(credential: &'static str, source: &str) -> Option<Box<Tracing>> {
    let span = tracing::debug_span!(
        "get_token",
        credential,
        source,
        cache = Empty,
        outcome = Empty,
        duration_ms = Empty
    );
    (!span.is_disabled()).then(|| {
        Box::new(Tracing {
            span,
            started: Instant::now(),
        })
    })
}

/// The span and start time of a traced call.
struct Tracing {
    span: tracing::Span,
    started: Instant,
}

pin_project_lite::pin_project! {
    /// The credential's future, polled inside the span.
    struct Traced<F> {
        #[pin]
        inner: F,
        trace: Box<Tracing>,
    }
}

impl<F> Future for Traced<F>
where
    F: Future<Output = Result<AccessToken, Error>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let trace = &**this.trace;
        let result = {
            let _entered = trace.span.enter();
            match this.inner.poll(cx) {
                Poll::Ready(result) => result,
                Poll::Pending => return Poll::Pending,
            }
        };
        record_end(&trace.span, trace.started, &result);
        Poll::Ready(result)
    }
}

/// Records `duration_ms` and `outcome` and logs the closing event inside `span`.
fn record_end(span: &tracing::Span, started: Instant, result: &Result<AccessToken, Error>) {
    // Rounded to the microsecond, so logs show `2.503` rather than `2.50321499999`.
    span.record(
        "duration_ms",
        (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0,
    );
    let _entered = span.enter();
    match result {
        Ok(_) => {
            span.record("outcome", "ok");
            tracing::debug!("get_token succeeded");
        }
        Err(error) => {
            span.record("outcome", kind_word(error.kind()));
            tracing::debug!(error = %error, "get_token failed");
        }
    }
}

/// The `outcome` value of a failed call.
fn kind_word(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::AuthenticationFailed => "authentication_failed",
        ErrorKind::InvalidConfiguration => "invalid_configuration",
        ErrorKind::InvalidArgument => "invalid_argument",
        ErrorKind::Transport => "transport",
    }
}

/// Whether a `get_token` span would be recorded (`DEBUG` enabled for target
/// `identity_core::trace`): the level check first, which costs one relaxed load when `DEBUG` is
/// off everywhere. When it is false a credential may answer a cached call from a fast path,
/// outside [`traced`], since the span would not be recorded anyway.
#[inline]
pub fn span_enabled() -> bool {
    tracing::level_enabled!(tracing::Level::DEBUG)
        && tracing::enabled!(target: "identity_core::trace", tracing::Level::DEBUG)
}

/// Records the cache's decision (`hit`, `refresh`, `fetch`, `joined`, `bypass`) into the
/// current `get_token` span, if there is one and it is enabled.
pub(crate) fn record_cache(outcome: &'static str) {
    // Checked first so that a cached call with tracing off does not look up the current span.
    if tracing::enabled!(target: "identity_core::trace", tracing::Level::DEBUG) {
        let span = tracing::Span::current();
        if !span.is_disabled() {
            span.record("cache", outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::Capture;
    use std::time::{Duration, SystemTime};

    fn far() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000)
    }

    #[test]
    fn a_successful_call_records_outcome_and_duration() {
        let capture = Capture::new();
        let result = capture.run(|| {
            futures_util::FutureExt::now_or_never(traced("TestCredential", "unit", async {
                Ok(AccessToken::new("planted-token-value", far()))
            }))
            .unwrap()
        });
        assert!(result.is_ok());
        let spans = capture.spans_named("get_token");
        assert_eq!(spans.len(), 1, "{}", capture.text());
        let span = &spans[0];
        assert_eq!(span.field("credential"), Some("TestCredential"));
        assert_eq!(span.field("source"), Some("unit"));
        assert_eq!(span.field("outcome"), Some("ok"));
        assert!(span.field("duration_ms").is_some(), "{span:?}");
        assert!(capture.text().contains("get_token succeeded"));
        capture.assert_absent("planted-token-value");
    }

    #[test]
    fn a_failed_call_records_the_error_kind_and_logs_the_error() {
        let capture = Capture::new();
        let result = capture.run(|| {
            futures_util::FutureExt::now_or_never(traced("TestCredential", "unit", async {
                Err(Error::unavailable("TestCredential", "not configured here"))
            }))
            .unwrap()
        });
        assert!(result.is_err());
        let span = &capture.spans_named("get_token")[0];
        assert_eq!(span.field("outcome"), Some("unavailable"));
        assert!(
            capture.text().contains("not configured here"),
            "{}",
            capture.text()
        );
    }

    #[test]
    fn without_a_subscriber_the_future_still_runs() {
        let result = futures_util::FutureExt::now_or_never(traced("T", "unit", async {
            Ok(AccessToken::new("t", far()))
        }))
        .unwrap();
        assert!(result.is_ok());
    }

    mod with_cache {
        use super::*;
        use crate::Clock;
        use crate::cache::{KeyRef, TokenCache};
        use crate::test_util::FakeClock;

        const PLANTED: &str = "planted-cache-token";

        async fn call(cache: &TokenCache, clock: &FakeClock, bypass: bool) -> AccessToken {
            let expires = clock.now() + Duration::from_secs(3600);
            traced(
                "CacheCredential",
                "unit",
                cache.get_or_fetch(
                    KeyRef::new("id", &["s"], None, false),
                    bypass,
                    || async move {
                        tokio::task::yield_now().await;
                        Ok(AccessToken::new(PLANTED, expires))
                    },
                ),
            )
            .await
            .unwrap()
        }

        fn outcomes(capture: &Capture) -> Vec<String> {
            capture
                .spans_named("get_token")
                .iter()
                .map(|s| s.field("cache").unwrap_or("none").to_owned())
                .collect()
        }

        #[tokio::test]
        async fn the_cache_records_fetch_hit_refresh_and_bypass() {
            let capture = Capture::new();
            let _guard = capture.enter();
            let clock = FakeClock::at_2030();
            let cache = TokenCache::with_clock(clock.shared());
            call(&cache, &clock, false).await;
            call(&cache, &clock, false).await;
            // Past the refresh point (expiry minus 300 s) but still valid.
            clock.advance(Duration::from_secs(3400));
            call(&cache, &clock, false).await;
            call(&cache, &clock, true).await;
            assert_eq!(outcomes(&capture), ["fetch", "hit", "refresh", "bypass"]);
            for span in capture.spans_named("get_token") {
                assert_eq!(span.field("outcome"), Some("ok"));
            }
            capture.assert_absent(PLANTED);
        }

        #[tokio::test]
        async fn a_caller_waiting_for_another_callers_load_records_joined() {
            let capture = Capture::new();
            let _guard = capture.enter();
            let clock = FakeClock::at_2030();
            let cache = TokenCache::with_clock(clock.shared());
            tokio::join!(call(&cache, &clock, false), call(&cache, &clock, false));
            let mut seen = outcomes(&capture);
            seen.sort();
            assert_eq!(seen, ["fetch", "joined"]);
        }

        #[tokio::test]
        async fn events_of_a_load_nest_in_the_get_token_span() {
            let capture = Capture::new();
            let _guard = capture.enter();
            let clock = FakeClock::at_2030();
            let cache = TokenCache::with_clock(clock.shared());
            let expires = clock.now() + Duration::from_secs(3600);
            traced(
                "CacheCredential",
                "unit",
                cache.get_or_fetch(
                    KeyRef::new("id", &["s"], None, false),
                    false,
                    || async move {
                        tracing::debug!("inside the load");
                        Ok(AccessToken::new(PLANTED, expires))
                    },
                ),
            )
            .await
            .unwrap();
            let event = capture
                .events()
                .into_iter()
                .find(|e| e.field("message") == Some("inside the load"))
                .expect("the load's event");
            assert_eq!(event.spans, ["get_token"]);
        }
    }

    #[test]
    fn every_error_kind_has_a_snake_case_word() {
        for (kind, word) in [
            (ErrorKind::Unavailable, "unavailable"),
            (ErrorKind::AuthenticationFailed, "authentication_failed"),
            (ErrorKind::InvalidConfiguration, "invalid_configuration"),
            (ErrorKind::InvalidArgument, "invalid_argument"),
            (ErrorKind::Transport, "transport"),
        ] {
            assert_eq!(kind_word(kind), word);
        }
    }
}
