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
//! are one [`DeveloperToolCredential`] over their tool and share one process runner
//! ([`process`]): the tool is looked up on the `PATH` of the environment the builder's
//! [`Runtime`](identity_core::Runtime) carries (`.runtime(...)`; default, the process
//! environment) before anything is spawned, run without a shell (PowerShell
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
//! # async fn demo() -> Result<(), identity_chain::Error> {
//! use identity_chain::{TokenCredential, TokenRequestOptions};
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
//! # async fn demo() -> Result<(), identity_chain::Error> {
//! use std::time::Duration;
//! use identity_chain::{TokenCredential, TokenRequestOptions};
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
mod credential;
mod output;
pub mod process;
mod settings;
mod tool;
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
        crate::tz::fixed_offset_from_tz(Some(tz))
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

pub use azd::AzureDeveloperCli;
pub use azure_cli::AzureCli;
pub use azure_powershell::AzurePowerShell;
pub use credential::{DeveloperToolCredential, DeveloperToolCredentialBuilder};
pub use tool::DeveloperTool;

/// Gets tokens from the Azure CLI (`az account get-access-token`).
///
/// ```no_run
/// # async fn demo() -> Result<(), identity_chain::Error> {
/// use identity_chain::{TokenCredential, TokenRequestOptions};
/// use identity_chain::AzureCliCredential;
///
/// let credential = AzureCliCredential::builder().tenant_id("contoso.onmicrosoft.com").build()?;
/// let token = credential
///     .get_token(&["https://management.azure.com/.default"], &TokenRequestOptions::default())
///     .await?;
/// # Ok(()) }
/// ```
pub type AzureCliCredential = DeveloperToolCredential<AzureCli>;

/// Builds an [`AzureCliCredential`].
pub type AzureCliCredentialBuilder = DeveloperToolCredentialBuilder<AzureCli>;

/// Gets tokens from Azure PowerShell (`Get-AzAccessToken`).
///
/// ```no_run
/// # async fn demo() -> Result<(), identity_chain::Error> {
/// use identity_chain::{TokenCredential, TokenRequestOptions};
/// use identity_chain::AzurePowerShellCredential;
///
/// let credential = AzurePowerShellCredential::builder()
///     .tenant_id("contoso.onmicrosoft.com")
///     .build()?;
/// let options = TokenRequestOptions::default();
/// let token = credential.get_token(&["https://vault.azure.net/.default"], &options).await?;
/// # Ok(()) }
/// ```
pub type AzurePowerShellCredential = DeveloperToolCredential<AzurePowerShell>;

/// Builds an [`AzurePowerShellCredential`].
pub type AzurePowerShellCredentialBuilder = DeveloperToolCredentialBuilder<AzurePowerShell>;

/// Gets tokens from the Azure Developer CLI (`azd auth token`).
///
/// ```no_run
/// # async fn demo() -> Result<(), identity_chain::Error> {
/// use identity_chain::{TokenCredential, TokenRequestOptions};
/// use identity_chain::AzureDeveloperCliCredential;
///
/// // azd takes several scopes at once.
/// let scopes = ["https://storage.azure.com/.default", "offline_access"];
/// let token = AzureDeveloperCliCredential::new()?
///     .get_token(&scopes, &TokenRequestOptions::default())
///     .await?;
/// # Ok(()) }
/// ```
pub type AzureDeveloperCliCredential = DeveloperToolCredential<AzureDeveloperCli>;

/// Builds an [`AzureDeveloperCliCredential`].
pub type AzureDeveloperCliCredentialBuilder = DeveloperToolCredentialBuilder<AzureDeveloperCli>;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use identity_core::{Env, Runtime};

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
    fn every_tool_has_a_default_constructor() {
        use identity_core::TokenCredential as _;
        assert_eq!(
            AzureCliCredential::new().unwrap().name(),
            "AzureCliCredential"
        );
        assert_eq!(
            AzurePowerShellCredential::new().unwrap().name(),
            "AzurePowerShellCredential"
        );
        assert_eq!(
            AzureDeveloperCliCredential::new().unwrap().name(),
            "AzureDeveloperCliCredential"
        );
    }

    #[test]
    fn builders_refuse_bad_tenants_and_a_zero_timeout() {
        for bad in ["a b", "-abc", "t;x"] {
            let err = AzureCliCredential::builder()
                .tenant_id(bad)
                .runtime(Runtime::with_env(Env::empty()))
                .build()
                .unwrap_err();
            assert_eq!(err.kind(), identity_core::ErrorKind::InvalidConfiguration);
            assert!(!err.to_string().contains(bad), "{err}");
        }
        let err = AzureDeveloperCliCredential::builder()
            .process_timeout(Duration::ZERO)
            .runtime(Runtime::with_env(Env::empty()))
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

    use identity_core::test_util::Capture;
    use identity_core::{TokenCredential, TokenRequestOptions};

    use crate::process::Output;
    use crate::test_support::{Canned, PLANTED, bounded, canned_builder};
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
        canned_builder(canned).build().unwrap()
    }

    fn pwsh(canned: &Arc<Canned>) -> AzurePowerShellCredential {
        canned_builder(canned).build().unwrap()
    }

    fn azd(canned: &Arc<Canned>) -> AzureDeveloperCliCredential {
        canned_builder(canned).build().unwrap()
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
