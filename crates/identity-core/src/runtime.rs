//! [`Runtime`]: everything a credential reads from the world outside its own settings.
//!
//! A credential reads environment variables, asks a clock for the time, sleeps between
//! retries and sends HTTP requests. Each of those is injectable so tests can control it, and
//! they travel together in one value: every credential builder takes a `Runtime` through one
//! setter, `runtime(...)`, and `DefaultAzureCredential` builds one and hands it to each of its
//! members, so the whole chain sees the same environment snapshot and clock.
//!
//! ```
//! use identity_chain::{Env, Runtime};
//!
//! // Production: the defaults (process environment snapshot, system clock, tokio timer,
//! // the credential's own HTTP client).
//! let runtime = Runtime::new();
//! assert!(runtime.custom_http_client().is_none());
//!
//! // A test: an environment of its own and nothing else changed.
//! let runtime = Runtime::with_env(Env::from_pairs([("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000000")]));
//! assert_eq!(runtime.env_snapshot().get("AZURE_CLIENT_ID"), Some("00000000-0000-0000-0000-000000000000"));
//! ```

use std::fmt;
use std::sync::Arc;

use crate::clock::{Clock, Sleeper, system_clock, tokio_sleeper};
use crate::env::Env;
use crate::http::{HttpClient, Limits, Pipeline};
use crate::retry::RetryPolicy;

/// The environment, clock, sleeper, HTTP client and request bounds a credential runs with.
///
/// Cheap to clone (reference-counted parts). Every part has a default:
///
/// | Part | Default |
/// |------|---------|
/// | [`env`](Runtime::env) | a snapshot of the process environment, taken when the runtime is [resolved](Runtime::resolved) (at the latest when a credential is built) |
/// | [`clock`](Runtime::clock) | [`SystemClock`](crate::SystemClock) |
/// | [`sleeper`](Runtime::sleeper) | [`TokioSleeper`](crate::TokioSleeper) |
/// | [`http_client`](Runtime::http_client) | none: each credential uses its own default client (plain HTTP for managed identity, TLS for Entra ID) |
/// | [`limits`](Runtime::limits) | [`Limits::DEFAULT`]: 30 s per attempt, 1 MiB per body |
#[derive(Clone, Default)]
#[must_use]
pub struct Runtime {
    env: Option<Env>,
    clock: Option<Arc<dyn Clock>>,
    sleeper: Option<Arc<dyn Sleeper>>,
    http_client: Option<Arc<dyn HttpClient>>,
    limits: Option<Limits>,
}

impl Runtime {
    /// The defaults (see the table on [`Runtime`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// The defaults with `env` as the environment: the one-line constructor for tests.
    pub fn with_env(env: Env) -> Self {
        Self::new().env(env)
    }

    /// Sets the environment credentials read (instead of the process environment).
    pub fn env(mut self, env: Env) -> Self {
        self.env = Some(env);
        self
    }

    /// Sets the clock token lifetimes are measured with.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Sets what waits between retries.
    pub fn sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> Self {
        self.sleeper = Some(sleeper);
        self
    }

    /// Sets the HTTP client every request goes through.
    pub fn http_client(mut self, client: Arc<dyn HttpClient>) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Sets the bounds applied to every request.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// This runtime with the process environment snapshot taken if no environment was set, so
    /// clones share one snapshot. Builders call it once; `DefaultAzureCredential` calls it
    /// before handing the runtime to its members.
    pub fn resolved(mut self) -> Self {
        if self.env.is_none() {
            self.env = Some(Env::from_process());
        }
        self
    }

    /// The environment: the one set, else a fresh snapshot of the process environment.
    /// Call [`resolved`](Runtime::resolved) first to take the snapshot once.
    pub fn env_snapshot(&self) -> Env {
        self.env.clone().unwrap_or_else(Env::from_process)
    }

    /// The clock (default: the system clock).
    pub fn clock_or_default(&self) -> Arc<dyn Clock> {
        self.clock.clone().unwrap_or_else(system_clock)
    }

    /// The sleeper (default: the tokio timer).
    pub fn sleeper_or_default(&self) -> Arc<dyn Sleeper> {
        self.sleeper.clone().unwrap_or_else(tokio_sleeper)
    }

    /// The HTTP client set, if any; `None` means "the credential's default client".
    pub fn custom_http_client(&self) -> Option<&Arc<dyn HttpClient>> {
        self.http_client.as_ref()
    }

    /// The request bounds (default [`Limits::DEFAULT`]).
    pub fn request_limits(&self) -> Limits {
        self.limits.unwrap_or_default()
    }

    /// A pipeline with this runtime's client (or `default_client` when none is set), clock,
    /// sleeper and limits, and `retry` as its retry policy.
    pub fn pipeline(
        &self,
        default_client: impl FnOnce() -> Arc<dyn HttpClient>,
        retry: RetryPolicy,
    ) -> Pipeline {
        let client = self.http_client.clone().unwrap_or_else(default_client);
        Pipeline::new(client)
            .with_limits(self.request_limits())
            .with_retry(retry)
            .with_clock(self.clock_or_default())
            .with_sleeper(self.sleeper_or_default())
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The environment's values may be secrets; `Env`'s own Debug prints names only.
        f.debug_struct("Runtime")
            .field("env", &self.env)
            .field("clock", &self.clock.as_ref().map(|_| "custom"))
            .field("sleeper", &self.sleeper.as_ref().map(|_| "custom"))
            .field("http_client", &self.http_client)
            .field("limits", &self.limits)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let runtime = Runtime::new();
        assert!(runtime.custom_http_client().is_none());
        assert_eq!(runtime.request_limits(), Limits::DEFAULT);
        let env = Env::from_pairs([("A", "1")]);
        let runtime = Runtime::with_env(env).limits(Limits::DEFAULT.max_body(10));
        assert_eq!(runtime.env_snapshot().get("A"), Some("1"));
        assert_eq!(runtime.request_limits().max_body, 10);
        // An explicit environment survives `resolved`.
        assert_eq!(runtime.resolved().env_snapshot().get("A"), Some("1"));
    }

    #[test]
    fn debug_prints_no_environment_values() {
        let runtime =
            Runtime::with_env(Env::from_pairs([("AZURE_CLIENT_SECRET", "planted-secret")]));
        let text = format!("{runtime:?}");
        assert!(!text.contains("planted-secret"), "{text}");
    }
}
