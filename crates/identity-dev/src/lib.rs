//! Developer-tool credentials for Microsoft Entra: tokens from the tools a developer is already
//! signed in to.
//!
//! | Credential | Runs |
//! |---|---|
//! | [`AzureCliCredential`] | `az account get-access-token --output json --resource R [--tenant T] [--subscription S]` |
//! | [`AzurePowerShellCredential`] | `pwsh -NoProfile -NonInteractive -EncodedCommand <script>` (through `/bin/sh -c`, or `cmd /c` on Windows) |
//! | [`AzureDeveloperCliCredential`] | `azd auth token --output json --no-prompt --scope A [--scope B …] [--tenant-id T] [--claims C]` |
//!
//! This crate never opens a socket: the tools do the network work. All three credentials
//! share one process runner ([`process`]): the tool is looked up on the `PATH` of the injected
//! [`Env`] before anything is spawned, run without a shell (PowerShell
//! excepted, as in the reference), with a timeout after which it is killed and reaped, and with
//! its output capped. Scopes, tenant ids and the subscription are validated before any process
//! starts, so nothing a caller passes can become an option or a shell command.
//!
//! A tool that is not installed, or not signed in, makes the credential
//! [*unavailable*](identity_core::ErrorKind::Unavailable), with a message naming the command to
//! run (`az login`, `Connect-AzAccount`, `azd auth login`). Other tool failures are
//! [*authentication failures*](identity_core::ErrorKind::AuthenticationFailed) carrying the
//! tool's message with anything token-like removed.
//!
//! Unlike the reference SDK, each credential caches its tokens in an
//! [`identity_core::cache::TokenCache`], so repeated calls do not start the tool every time
//! (starting `az` costs about a second). A token is reused until shortly before it expires; a
//! `az logout` or an account switch therefore takes effect for new tokens only.
//!
//! # Example
//! ```no_run
//! # async fn demo() -> Result<(), identity_core::Error> {
//! use identity_core::{TokenCredential, TokenRequestOptions};
//! use identity_chain::AzureCliCredential;
//!
//! let credential = AzureCliCredential::builder().subscription("My Subscription").build()?;
//! let token = credential
//!     .get_token(&["https://management.azure.com/.default"], &TokenRequestOptions::default())
//!     .await?;
//! println!("expires at {:?}", token.expires_on);
//! # Ok(()) }
//! ```
//!
//! ```no_run
//! # async fn demo() -> Result<(), identity_core::Error> {
//! use std::time::Duration;
//! use identity_core::{TokenCredential, TokenRequestOptions};
//! use identity_chain::{AzureDeveloperCliCredential, AzurePowerShellCredential};
//!
//! let azd = AzureDeveloperCliCredential::builder()
//!     .tenant_id("contoso.onmicrosoft.com")
//!     .process_timeout(Duration::from_secs(30))
//!     .build()?;
//! let scopes = ["https://storage.azure.com/.default", "offline_access"];
//! let token = azd.get_token(&scopes, &TokenRequestOptions::default()).await?;
//!
//! let pwsh = AzurePowerShellCredential::builder().build()?;
//! let token = pwsh
//!     .get_token(&["https://vault.azure.net/.default"], &TokenRequestOptions::default())
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # Features
//! None: the crate depends on `identity-core` (without HTTP), tokio's process support,
//! `serde_json` and `base64`.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod azd;
mod azure_cli;
mod azure_powershell;
mod output;
pub mod process;
mod tz;

/// The output parsers, for the fuzz targets and property tests only (feature `fuzzing`): not
/// part of the stable API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz_dev {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    /// `azd auth token --output json` output; true when it yields a token.
    pub fn parse_azd(stdout: &str) -> bool {
        crate::azd::parse(stdout).is_ok()
    }

    /// The Azure PowerShell script's output; true when it yields a token.
    pub fn parse_powershell(stdout: &str) -> bool {
        crate::azure_powershell::parse(stdout).is_ok()
    }

    /// An `expires_on` JSON value (integer or string epoch seconds), as Unix seconds.
    pub fn epoch_from_json(value: &serde_json::Value) -> Option<u64> {
        let at = crate::output::epoch_from_json(value)?;
        at.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
    }

    /// The Azure CLI's naive `expiresOn` layout, as seconds read as if UTC.
    pub fn parse_cli_naive(text: &str) -> Option<i64> {
        crate::output::parse_cli_naive(text)
    }

    /// An RFC 3339 timestamp (azd, PowerShell), as Unix seconds.
    pub fn parse_rfc3339(text: &str) -> Option<i64> {
        let at: SystemTime = crate::output::parse_rfc3339(text)?;
        match at.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).ok(),
            Err(e) => i64::try_from(e.duration().as_secs()).ok().map(|s| -s),
        }
    }

    /// A `TZ` value's fixed offset, in seconds east of UTC.
    pub fn fixed_offset_from_tz(tz: &str) -> Option<i64> {
        crate::output::fixed_offset_from_tz(Some(tz))
    }

    /// The CLI's naive local expiry resolved against `TZ` = `tz` at a fixed "now".
    pub fn local_expiry(naive_as_utc: i64, tz: Option<&str>) -> bool {
        let now = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let env = identity_core::Env::from_pairs(tz.map(|tz| ("TZ", tz)));
        crate::output::local_expiry(naive_as_utc, &env, now).is_some()
    }
}
#[cfg(test)]
mod test_support;

use std::sync::Arc;
use std::time::Duration;

use identity_core::cache::TokenCache;
use identity_core::{Clock, Env, Error, system_clock};

pub use azd::{AzureDeveloperCliCredential, AzureDeveloperCliCredentialBuilder};
pub use azure_cli::{AzureCliCredential, AzureCliCredentialBuilder};
pub use azure_powershell::{AzurePowerShellCredential, AzurePowerShellCredentialBuilder};

use process::{DEFAULT_PROCESS_TIMEOUT, Executor, Platform, tokio_executor};

/// Settings every developer-tool builder shares.
#[derive(Clone, Debug)]
struct Settings {
    tenant_id: Option<String>,
    additionally_allowed_tenants: Vec<String>,
    process_timeout: Duration,
    env: Option<Env>,
    clock: Option<Arc<dyn Clock>>,
    executor: Option<Arc<dyn Executor>>,
    platform: Platform,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            tenant_id: None,
            additionally_allowed_tenants: Vec::new(),
            process_timeout: DEFAULT_PROCESS_TIMEOUT,
            env: None,
            clock: None,
            executor: None,
            platform: Platform::CURRENT,
        }
    }
}

/// What a built credential keeps from its [`Settings`].
#[derive(Debug)]
struct Resolved {
    tenant_id: Option<String>,
    additionally_allowed_tenants: Vec<String>,
    process_timeout: Duration,
    env: Env,
    clock: Arc<dyn Clock>,
    executor: Arc<dyn Executor>,
    platform: Platform,
}

impl Settings {
    /// Validates the configured tenant and fills in the defaults.
    fn resolve(self, credential: &'static str) -> Result<(Resolved, TokenCache), Error> {
        let tenant_id = self.tenant_id.filter(|t| !t.is_empty());
        if let Some(tenant) = &tenant_id {
            if !identity_core::scope::is_valid_tenant_id(tenant) || tenant.starts_with('-') {
                return Err(Error::invalid_configuration(
                    credential,
                    "invalid tenant id: only ASCII letters, digits, '-' and '.' are allowed, and it must not start with '-'",
                ));
            }
        }
        if self.process_timeout.is_zero() {
            return Err(Error::invalid_configuration(
                credential,
                "the process timeout must be greater than zero",
            ));
        }
        let clock = self.clock.unwrap_or_else(system_clock);
        Ok((
            Resolved {
                tenant_id,
                additionally_allowed_tenants: self.additionally_allowed_tenants,
                process_timeout: self.process_timeout,
                env: self.env.unwrap_or_else(Env::from_process),
                clock: clock.clone(),
                executor: self.executor.unwrap_or_else(tokio_executor),
                platform: self.platform,
            },
            TokenCache::with_clock(clock),
        ))
    }
}

impl Resolved {
    /// The tenant for one request (multi-tenant rule), checked so that it cannot become an
    /// option on the command line.
    fn tenant_for(
        &self,
        credential: &'static str,
        requested: Option<&str>,
    ) -> Result<Option<String>, Error> {
        let tenant = identity_core::scope::resolve_tenant(
            credential,
            self.tenant_id.as_deref(),
            requested,
            &self.additionally_allowed_tenants,
            &self.env,
        )?;
        if let Some(t) = &tenant {
            process::check_argument(credential, "tenant id", t)?;
        }
        Ok(tenant)
    }
}

/// How a tool is named in messages, installed and signed in to.
#[derive(Clone, Copy, Debug)]
struct Tool {
    credential: &'static str,
    /// e.g. "the Azure CLI"
    display: &'static str,
    /// How to install the tool, e.g. "install it from <https://aka.ms/azure-cli>".
    install: &'static str,
    /// The sign-in command, e.g. "az login".
    login: &'static str,
    /// How the sign-in command takes a tenant, e.g. " --tenant ".
    tenant_flag: &'static str,
}

impl Tool {
    /// The exact sign-in command, with the tenant when one is known.
    fn login_command(&self, tenant: Option<&str>) -> String {
        match tenant {
            Some(t) => format!("`{}{}{t}`", self.login, self.tenant_flag),
            None => format!("`{}`", self.login),
        }
    }

    fn not_installed(&self) -> Error {
        Error::unavailable(
            self.credential,
            format!(
                "{} is not installed or not on PATH; {}",
                self.display, self.install
            ),
        )
    }

    fn not_logged_in(&self, tenant: Option<&str>) -> Error {
        Error::unavailable(
            self.credential,
            format!(
                "{} is not signed in; run {} and try again",
                self.display,
                self.login_command(tenant)
            ),
        )
    }

    /// Maps a runner failure to this tool's error.
    fn run_error(&self, error: process::RunError) -> Error {
        use process::RunError;
        match error {
            RunError::NotFound { .. } => self.not_installed(),
            RunError::TimedOut(after) => Error::unavailable(
                self.credential,
                format!(
                    "{} did not answer within {} ms and was stopped; check that it works in a terminal, or raise the process timeout",
                    self.display,
                    after.as_millis()
                ),
            ),
            e @ RunError::OutputTooLarge { .. } => Error::authentication_failed(
                self.credential,
                format!(
                    "{} printed far more output than a token response; check its configuration",
                    self.display
                ),
            )
            .with_source(e),
            RunError::NoWorkingDirectory => Error::unavailable(
                self.credential,
                "SYSTEMROOT is not set, so the tool cannot be started in the system directory; set it and try again",
            ),
            e => Error::unavailable(
                self.credential,
                format!(
                    "{} could not be run; check that it is installed and works in a terminal",
                    self.display
                ),
            )
            .with_source(e),
        }
    }

    /// A failure message quoting the tool's own (scrubbed) output.
    fn failed(&self, output: &process::Output) -> Error {
        let text = if output.stderr().trim().is_empty() {
            output.stdout()
        } else {
            output.stderr()
        };
        let excerpt = output::scrub(text);
        let code = output
            .code()
            .map_or_else(|| "a signal".to_owned(), |c| format!("code {c}"));
        Error::authentication_failed(
            self.credential,
            if excerpt.is_empty() {
                format!("{} failed (exit {code}) without a message", self.display)
            } else {
                format!("{} failed (exit {code}): {excerpt}", self.display)
            },
        )
    }

    /// The tool answered, but not with a token.
    fn unexpected(&self, stdout: &str) -> Error {
        Error::authentication_failed(
            self.credential,
            format!(
                "{} printed unexpected output: {}",
                self.display,
                output::scrub(stdout)
            ),
        )
    }
}

/// Validates scopes for a command line: the core character rule plus no leading `-`.
fn validate_scopes(credential: &'static str, scopes: &[&str]) -> Result<(), Error> {
    identity_core::scope::validate_scopes(credential, scopes)?;
    for scope in scopes {
        process::check_argument(credential, "scope", scope)?;
    }
    Ok(())
}

/// Writes the builder setters every developer-tool builder shares.
macro_rules! common_setters {
    () => {
        /// The tenant to request tokens from. Without one, the tool's default tenant is used.
        #[must_use]
        pub fn tenant_id(mut self, tenant_id: impl Into<String>) -> Self {
            self.settings.tenant_id = Some(tenant_id.into());
            self
        }

        /// Tenants, besides the configured one, that a request may name in
        /// [`TokenRequestOptions::tenant_id`](identity_core::TokenRequestOptions); `"*"` allows
        /// any.
        #[must_use]
        pub fn additionally_allowed_tenants<I, S>(mut self, tenants: I) -> Self
        where
            I: IntoIterator<Item = S>,
            S: Into<String>,
        {
            self.settings.additionally_allowed_tenants =
                tenants.into_iter().map(Into::into).collect();
            self
        }

        /// How long the tool may run before it is killed (default 10 s).
        #[must_use]
        pub fn process_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.settings.process_timeout = timeout;
            self
        }

        /// The environment the tool is looked up in (`PATH`) and runs with. Default: a
        /// snapshot of the process environment taken at `build`.
        #[must_use]
        pub fn env(mut self, env: identity_core::Env) -> Self {
            self.settings.env = Some(env);
            self
        }

        /// The clock the token cache reads.
        #[must_use]
        pub fn clock(mut self, clock: std::sync::Arc<dyn identity_core::Clock>) -> Self {
            self.settings.clock = Some(clock);
            self
        }

        /// Runs the tool through `executor` instead of [`TokioExecutor`](crate::process::TokioExecutor)
        /// (for tests, or to intercept the tool).
        #[must_use]
        pub fn executor(mut self, executor: std::sync::Arc<dyn crate::process::Executor>) -> Self {
            self.settings.executor = Some(executor);
            self
        }
    };
}
use common_setters;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_types_are_send_sync_and_debug() {
        fn check<T: Send + Sync + std::fmt::Debug>() {}
        check::<AzureCliCredential>();
        check::<AzureCliCredentialBuilder>();
        check::<AzurePowerShellCredential>();
        check::<AzurePowerShellCredentialBuilder>();
        check::<AzureDeveloperCliCredential>();
        check::<AzureDeveloperCliCredentialBuilder>();
        check::<process::Command>();
        check::<process::Output>();
        check::<process::RunError>();
        check::<process::TokioExecutor>();
    }

    #[test]
    fn builders_refuse_bad_tenants_and_a_zero_timeout() {
        for bad in ["a b", "-abc", "t;x"] {
            let err = AzureCliCredential::builder()
                .tenant_id(bad)
                .env(Env::empty())
                .build()
                .unwrap_err();
            assert_eq!(err.kind(), identity_core::ErrorKind::InvalidConfiguration);
            assert!(!err.to_string().contains(bad), "{err}");
        }
        let err = AzureDeveloperCliCredential::builder()
            .process_timeout(Duration::ZERO)
            .env(Env::empty())
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), identity_core::ErrorKind::InvalidConfiguration);
    }
}

/// The `get_token` span (identity-core's `trace` module) as each tool credential fills it, and
/// the absence of planted tokens from everything traced, on success and failure paths.
#[cfg(test)]
mod span_tests {
    use std::sync::Arc;

    use identity_core::test_util::{Capture, FakeClock};
    use identity_core::{Env, TokenCredential, TokenRequestOptions};

    use crate::process::Output;
    use crate::test_support::{Canned, PLANTED, bounded};
    use crate::{AzureCliCredential, AzureDeveloperCliCredential, AzurePowerShellCredential};

    const SCOPE: &str = "https://management.azure.com/.default";

    /// Runs `credential` twice (the second call must hit the cache when the first succeeds)
    /// and returns the capture.
    async fn traced_twice(credential: &dyn TokenCredential) -> Capture {
        let capture = Capture::new();
        let _guard = capture.enter();
        let options = TokenRequestOptions::default();
        for _ in 0..2 {
            let _ = bounded(credential.get_token(&[SCOPE], &options)).await;
        }
        capture
    }

    fn check(capture: &Capture, credential: &str, source: &str, expect: &[(&str, &str)]) {
        let spans = capture.spans_named("get_token");
        assert_eq!(spans.len(), expect.len(), "{}", capture.text());
        for (span, (cache, outcome)) in spans.iter().zip(expect) {
            assert_eq!(span.field("credential"), Some(credential));
            assert_eq!(span.field("source"), Some(source));
            assert_eq!(span.field("cache"), Some(*cache), "{}", capture.text());
            assert_eq!(span.field("outcome"), Some(*outcome), "{}", capture.text());
        }
        capture.assert_absent(PLANTED);
        capture.assert_absent("planted");
    }

    fn az(canned: &Arc<Canned>) -> AzureCliCredential {
        AzureCliCredential::builder()
            .env(Env::empty())
            .clock(FakeClock::at_2030().shared())
            .executor(canned.clone())
            .build()
            .unwrap()
    }

    fn pwsh(canned: &Arc<Canned>) -> AzurePowerShellCredential {
        AzurePowerShellCredential::builder()
            .env(Env::empty())
            .clock(FakeClock::at_2030().shared())
            .executor(canned.clone())
            .build()
            .unwrap()
    }

    fn azd(canned: &Arc<Canned>) -> AzureDeveloperCliCredential {
        AzureDeveloperCliCredential::builder()
            .env(Env::empty())
            .clock(FakeClock::at_2030().shared())
            .executor(canned.clone())
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn azure_cli_spans_record_fetch_then_hit_without_the_token() {
        let canned = Canned::output(
            0,
            &format!(r#"{{"accessToken":"{PLANTED}","expires_on":1893492000}}"#),
            "",
        );
        let capture = traced_twice(&az(&canned)).await;
        check(
            &capture,
            "AzureCliCredential",
            "az",
            &[("fetch", "ok"), ("hit", "ok")],
        );
    }

    #[tokio::test]
    async fn azure_cli_failures_are_traced_without_the_tool_output() {
        let canned = Canned::new([
            Ok(Output::new(Some(0), format!("not json {PLANTED}"), "")),
            Ok(Output::new(
                Some(1),
                "",
                "ERROR: Please run 'az login' to setup account.",
            )),
        ]);
        let capture = traced_twice(&az(&canned)).await;
        check(
            &capture,
            "AzureCliCredential",
            "az",
            &[("fetch", "authentication_failed"), ("fetch", "unavailable")],
        );
        assert!(capture.text().contains("get_token failed"));
    }

    #[tokio::test]
    async fn azure_powershell_spans_cover_success_and_failure_without_the_token() {
        let canned = Canned::new([
            Ok(Output::new(
                Some(1),
                "",
                format!("failed near azsdk%{PLANTED}%1 and {PLANTED}"),
            )),
            Ok(Output::new(
                Some(0),
                format!("azsdk%{PLANTED}%1893492000"),
                "",
            )),
        ]);
        let capture = traced_twice(&pwsh(&canned)).await;
        let spans = capture.spans_named("get_token");
        assert_eq!(spans.len(), 2, "{}", capture.text());
        assert_ne!(spans[0].field("outcome"), Some("ok"));
        assert_eq!(spans[1].field("outcome"), Some("ok"));
        for span in &spans {
            assert_eq!(span.field("credential"), Some("AzurePowerShellCredential"));
            assert_eq!(span.field("source"), Some("pwsh"));
            assert_eq!(span.field("cache"), Some("fetch"));
        }
        capture.assert_absent(PLANTED);
    }

    #[tokio::test]
    async fn azd_spans_cover_success_and_failure_without_the_token() {
        let canned = Canned::new([
            Ok(Output::new(
                Some(1),
                "",
                format!(r#"{{"error":"bad token {PLANTED}"}}"#),
            )),
            Ok(Output::new(
                Some(0),
                format!(r#"{{"token":"{PLANTED}","expiresOn":"2030-01-01T10:00:00Z"}}"#),
                "",
            )),
        ]);
        let capture = traced_twice(&azd(&canned)).await;
        let spans = capture.spans_named("get_token");
        assert_eq!(spans.len(), 2, "{}", capture.text());
        assert_ne!(spans[0].field("outcome"), Some("ok"));
        assert_eq!(spans[1].field("outcome"), Some("ok"));
        for span in &spans {
            assert_eq!(
                span.field("credential"),
                Some("AzureDeveloperCliCredential")
            );
            assert_eq!(span.field("source"), Some("azd"));
        }
        capture.assert_absent(PLANTED);
    }
}
