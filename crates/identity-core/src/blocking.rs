//! A blocking façade (feature `blocking`) for programs without an async runtime.
//!
//! Calls run as tasks on one process-wide tokio runtime with a single worker thread, created
//! on first use, so background refreshes and connection tasks keep running between calls; the
//! calling thread waits for the task's answer. So a call works from any thread: a plain
//! `main`, a thread of its own, or a tokio `spawn_blocking` thread (where tokio itself refuses
//! `block_on`). From an async task it works too, but holds that task's thread for the call,
//! which an async program should not do: use the credential's async `get_token` there.
//!
//! The caller's tracing subscriber and current span go with the task, so the call's
//! `get_token` span shows where the caller's would. A credential that panics is reported as an
//! error; the panic never reaches the caller.

use std::fmt;
use std::sync::{Arc, OnceLock};

use tracing::Instrument;
use tracing::instrument::WithSubscriber;

use crate::{AccessToken, Error, TokenCredential, TokenRequestOptions};

const NAME: &str = "BlockingCredential";

/// Wraps any credential with a blocking `get_token`.
///
/// ```
/// use std::sync::Arc;
/// use std::time::{Duration, SystemTime};
/// use identity_chain::BlockingCredential;
/// use identity_chain::{AccessToken, BoxFuture, Error, TokenCredential, TokenRequestOptions};
///
/// #[derive(Debug)]
/// struct Fixed;
/// impl TokenCredential for Fixed {
///     fn get_token<'a>(&'a self, _: &'a [&'a str], _: &'a TokenRequestOptions) -> BoxFuture<'a, Result<AccessToken, Error>> {
///         Box::pin(async { Ok(AccessToken::new("t", SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000))) })
///     }
/// }
///
/// let credential = BlockingCredential::new(Arc::new(Fixed));
/// let token = credential.get_token(&["https://vault.azure.net/.default"]).unwrap();
/// assert_eq!(token.token.secret(), "t");
/// ```
#[derive(Clone)]
pub struct BlockingCredential {
    inner: Arc<dyn TokenCredential>,
}

impl fmt::Debug for BlockingCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingCredential")
            .field("inner", &self.inner)
            .finish()
    }
}

fn runtime() -> Result<&'static tokio::runtime::Runtime, Error> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("identity-blocking")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| {
            Error::invalid_configuration(
                NAME,
                format!("could not start the runtime for blocking calls: {e}"),
            )
        })
}

impl BlockingCredential {
    /// Wraps `credential`.
    pub fn new(credential: Arc<dyn TokenCredential>) -> Self {
        Self { inner: credential }
    }

    /// The wrapped credential.
    pub fn inner(&self) -> &Arc<dyn TokenCredential> {
        &self.inner
    }

    /// Gets a token, blocking the calling thread.
    ///
    /// # Errors
    /// The credential's error; [`ErrorKind::InvalidConfiguration`](crate::ErrorKind::InvalidConfiguration)
    /// when the runtime for blocking calls cannot start, or when the credential panicked.
    pub fn get_token(&self, scopes: &[&str]) -> Result<AccessToken, Error> {
        self.get_token_with(scopes, &TokenRequestOptions::default())
    }

    /// Gets a token with options, blocking the calling thread.
    ///
    /// # Errors
    /// As [`BlockingCredential::get_token`].
    pub fn get_token_with(
        &self,
        scopes: &[&str],
        options: &TokenRequestOptions,
    ) -> Result<AccessToken, Error> {
        let runtime = runtime()?;
        let inner = self.inner.clone();
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        let options = options.clone();
        let (answer, answered) = std::sync::mpsc::sync_channel(1);
        let call = async move {
            let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
            let result = inner.get_token(&scopes, &options).await;
            // The caller is waiting on `answered`; it cannot have gone away.
            let _ = answer.send(result);
        };
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        runtime.spawn(
            call.instrument(tracing::Span::current())
                .with_subscriber(dispatch),
        );
        // The task drops `answer` without sending only when the credential panicked.
        answered.recv().unwrap_or_else(|_| {
            Err(Error::invalid_configuration(
                NAME,
                "the wrapped credential panicked during get_token",
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::test_util::static_credential;
    use std::time::{Duration, SystemTime};

    fn credential() -> BlockingCredential {
        BlockingCredential::new(Arc::new(static_credential(
            "Static",
            "blocking-token",
            SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000),
        )))
    }

    #[test]
    fn a_blocking_call_returns_the_token_without_a_runtime() {
        let t = credential().get_token(&["s"]).unwrap();
        assert_eq!(t.token.secret(), "blocking-token");
        // A second call reuses the same runtime.
        assert_eq!(
            credential().get_token(&["s"]).unwrap().token.secret(),
            "blocking-token"
        );
    }

    #[test]
    fn a_blocking_call_passes_the_credential_error_through_unchanged() {
        let credential = BlockingCredential::new(Arc::new(crate::test_util::failing_credential(
            "Failing",
            Error::unavailable("Failing", "not configured here"),
        )));
        let err = credential.get_token(&["s"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert_eq!(err.to_string(), "Failing: not configured here");
    }

    #[test]
    fn options_reach_the_wrapped_credential() {
        let inner = crate::test_util::credential_fn("Recording", |scopes, options| {
            assert_eq!(scopes, ["a", "b"]);
            assert_eq!(options.tenant(), Some("contoso"));
            Ok(AccessToken::new(
                "t",
                SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000),
            ))
        });
        let credential = BlockingCredential::new(Arc::new(inner));
        credential
            .get_token_with(
                &["a", "b"],
                &TokenRequestOptions::default().tenant_id("contoso"),
            )
            .unwrap();
    }

    #[test]
    fn blocking_calls_from_several_threads_all_succeed() {
        let credential = credential();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let credential = credential.clone();
                std::thread::spawn(move || credential.get_token(&["s"]).map(|t| t.expires_on))
            })
            .collect();
        for thread in threads {
            assert!(thread.join().unwrap().is_ok());
        }
    }

    #[test]
    fn a_blocking_call_is_traced_on_the_calling_thread() {
        let credential = BlockingCredential::new(Arc::new(Traced));
        let capture = crate::test_util::Capture::new();
        capture.run(|| credential.get_token(&["s"]).unwrap());
        let spans = capture.spans_named("get_token");
        assert_eq!(spans.len(), 1, "{}", capture.text());
        assert_eq!(spans[0].field("outcome"), Some("ok"));
        capture.assert_absent("blocking-traced-token");
    }

    /// A credential that opens the standard `get_token` span.
    #[derive(Debug)]
    struct Traced;

    impl TokenCredential for Traced {
        fn get_token<'a>(
            &'a self,
            _scopes: &'a [&'a str],
            _options: &'a TokenRequestOptions,
        ) -> crate::BoxFuture<'a, Result<AccessToken, Error>> {
            crate::trace::traced("Traced", "unit", async {
                Ok(AccessToken::new(
                    "blocking-traced-token",
                    SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000),
                ))
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blocking_call_from_spawn_blocking_answers() {
        let credential = credential();
        let token = tokio::task::spawn_blocking(move || credential.get_token(&["s"]))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(token.token.secret(), "blocking-token");
    }

    /// Even on a single-threaded runtime's only thread the call answers: the work runs on the
    /// blocking runtime's own thread (it holds the caller's thread meanwhile, which is why async
    /// code should use the async API).
    #[tokio::test]
    async fn a_blocking_call_from_a_single_threaded_runtime_does_not_deadlock() {
        let token = credential().get_token(&["s"]).unwrap();
        assert_eq!(token.token.secret(), "blocking-token");
    }

    #[test]
    fn a_panicking_credential_is_an_error_not_a_panic() {
        let credential = BlockingCredential::new(Arc::new(crate::test_util::credential_fn(
            "Panicking",
            |_, _| panic!("planted panic"),
        )));
        let err = credential.get_token(&["s"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfiguration);
        assert!(err.message().contains("panicked"), "{err}");
    }
}
