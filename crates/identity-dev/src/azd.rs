//! [`AzureDeveloperCliCredential`](crate::AzureDeveloperCliCredential): tokens from the Azure
//! Developer CLI's signed-in account.
//!
//! # Command
//! ```text
//! azd auth token --output json --no-prompt --scope <A> [--scope <B> …] [--tenant-id <tenant>] [--claims <base64>]
//! ```
//! Run without a shell, one `argv` element per value, every scope passed unchanged (several are
//! allowed), working directory `/bin` (`%SYSTEMROOT%` on Windows), stdin null, the injected
//! environment plus `NO_COLOR=true`. `azd` is looked up on the injected `PATH`. A claims
//! challenge is passed as standard base64 with padding and skips the cache.
//!
//! # Output
//! JSON `{"token": "…", "expiresOn": "2030-01-01T10:00:00Z"}`. `expiresOn` is RFC 3339 and is
//! read as the instant it names, independent of the machine's time zone (the reference reads
//! it as local time, docs/protocol.md §9 #11); fractional seconds and numeric offsets are accepted.
//!
//! # Errors
//! What azd's exit means is the table on `classify`; a runner failure (not on `PATH`,
//! timeout, spawn failure) is *unavailable*, unparseable output an authentication failure.

use identity_core::{AccessToken, Error, wire};

use crate::output::{encode_claims, parse_rfc3339, scrub};
use crate::process::{Command, Output};
use crate::settings::Resolved;
use crate::tool::{Request, Tool, ToolSpec, flagged, with_args};

const NAME: &str = "AzureDeveloperCliCredential";

/// The Azure Developer CLI (`azd`), as the tool of a
/// [`DeveloperToolCredential`](crate::DeveloperToolCredential). Use it through
/// [`AzureDeveloperCliCredential`](crate::AzureDeveloperCliCredential).
#[derive(Clone, Debug, Default)]
pub struct AzureDeveloperCli;

impl ToolSpec for AzureDeveloperCli {
    const TOOL: Tool = Tool::AZURE_DEVELOPER_CLI;

    fn targets(scopes: &[&str]) -> Result<Vec<String>, Error> {
        Ok(scopes.iter().map(|s| (*s).to_owned()).collect())
    }

    fn claims(claims: &str, _scopes: &[&str], _tenant: Option<&str>) -> Result<String, Error> {
        Ok(encode_claims(claims))
    }

    fn command(&self, _config: &Resolved, request: &Request) -> Result<Command, Error> {
        let fixed = ["auth", "token", "--output", "json", "--no-prompt"];
        let mut args = request.argv(&fixed, "--scope", "--tenant-id");
        args.extend(flagged("--claims", request.claims.as_deref()));
        Ok(with_args(Command::new("azd", "azd"), args))
    }

    /// What azd's exit means (docs/protocol.md §5.3). stdout and stderr are searched together.
    ///
    /// | Exit status, output | Kind | Message |
    /// |---|---|---|
    /// | 0 | — | the output is parsed |
    /// | 127, or `'azd' is not recognized` | unavailable | install azd, run `azd auth login` |
    /// | ``not logged in, run `azd auth login` to login`` without an `AADSTS` code | unavailable | run `azd auth login [--tenant-id T]` |
    /// | `unknown flag: --claims` | unavailable | upgrade azd (1.18.1 or later handles claims) |
    /// | any other | authentication failed | azd's message: the `error` field of its JSON lines, else the first `consoleMessage` text, else stderr (else stdout); scrubbed of tokens |
    fn classify(output: &Output, tenant: Option<&str>) -> Result<(), Error> {
        if output.success() {
            return Ok(());
        }
        let combined = format!("{}\n{}", output.stdout(), output.stderr());
        if output.code() == Some(127) || combined.contains("'azd' is not recognized") {
            return Err(Self::TOOL.not_installed());
        }
        if combined.contains("not logged in, run `azd auth login` to login")
            && !combined.contains("AADSTS")
        {
            return Err(Self::TOOL.not_logged_in(tenant));
        }
        if combined.contains("unknown flag: --claims") {
            return Err(Error::unavailable(
                NAME,
                "this version of azd cannot answer a claims challenge; upgrade to azd 1.18.1 or later \
                 (https://aka.ms/azd-install) and try again",
            ));
        }
        let message = json_message(output.stdout())
            .or_else(|| json_message(output.stderr()))
            .map(|m| scrub(&m))
            .filter(|m| !m.is_empty());
        Err(match message {
            Some(message) => Error::authentication_failed(NAME, format!("azd failed: {message}")),
            None => Self::TOOL.failed(output),
        })
    }

    fn parse(&self, _config: &Resolved, stdout: &str) -> Result<AccessToken, Error> {
        parse(stdout)
    }
}

pub(crate) fn parse(stdout: &str) -> Result<AccessToken, Error> {
    let unexpected = || AzureDeveloperCli::TOOL.unexpected(stdout);
    let json: serde_json::Value = serde_json::from_str(wire::strip_bom_str(stdout).trim())
        .map_err(|e| unexpected().with_source(e))?;
    let token = json
        .get("token")
        .and_then(serde_json::Value::as_str)
        .filter(|t| !t.is_empty());
    let expires_on = json
        .get("expiresOn")
        .and_then(serde_json::Value::as_str)
        .and_then(parse_rfc3339);
    match (token, expires_on) {
        (Some(token), Some(expires_on)) => Ok(AccessToken::new(token, expires_on)),
        _ => Err(unexpected()),
    }
}

/// azd's own message from its JSON lines: a non-empty `error` string (azd ≥ 1.23.7), else the
/// first non-empty `data.message` of a `consoleMessage` line.
fn json_message(text: &str) -> Option<String> {
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|line| serde_json::from_str(line.trim()).ok())
        .collect();
    let error = lines.iter().find_map(|v| {
        v.get("error")
            .and_then(serde_json::Value::as_str)
            .filter(|e| !e.trim().is_empty())
    });
    let console = || {
        lines.iter().find_map(|v| {
            (v.get("type").and_then(serde_json::Value::as_str) == Some("consoleMessage"))
                .then(|| v.get("data")?.get("message")?.as_str())
                .flatten()
                .filter(|m| !m.trim().is_empty())
        })
    };
    error.or_else(console).map(|m| m.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::{AzureDeveloperCliCredential, AzureDeveloperCliCredentialBuilder};

    use identity_core::{Runtime, TokenCredential, TokenRequestOptions};

    use super::*;
    use crate::test_support::*;
    use identity_core::test_util::FakeClock;
    use identity_core::{Env, ErrorKind};

    const A: &str = "https://management.azure.com/.default";
    const B: &str = "https://vault.azure.net/.default";
    const OK: &str = r#"{"token":"X","expiresOn":"2030-01-01T10:00:00Z"}"#;

    fn opts() -> TokenRequestOptions {
        TokenRequestOptions::default()
    }

    fn with_canned(canned: &Arc<Canned>) -> AzureDeveloperCliCredentialBuilder {
        canned_builder(canned)
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn two_scopes_tenant_and_claims_reach_argv_and_expiry_is_utc() {
        let claims = r#"{"access_token":{"nbf":{"essential":true,"value":"1"}}}"#;
        for tz in ["America/New_York", "EST5", "Asia/Kolkata"] {
            let tools = FakeTools::with_recording_script("azd", &format!("echo '{OK}'"));
            let cred = AzureDeveloperCliCredential::builder()
                .tenant_id("T")
                .runtime(Runtime::with_env(tools.env().with("TZ", tz)))
                .build()
                .unwrap();
            let token = bounded(cred.get_token(&[A, B], &opts().claims(claims)))
                .await
                .unwrap();
            assert_eq!(token.token.secret(), "X");
            assert_eq!(unix(token.expires_on), 1_893_492_000, "{tz}");
            let expected_claims = encode_claims(claims);
            assert_eq!(
                tools.argv(),
                [
                    "auth",
                    "token",
                    "--output",
                    "json",
                    "--no-prompt",
                    "--scope",
                    A,
                    "--scope",
                    B,
                    "--tenant-id",
                    "T",
                    "--claims",
                    expected_claims.as_str()
                ]
            );
            assert_eq!(tools.read("colour").unwrap().trim(), "true|true");
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn claims_skip_the_cache_and_plain_calls_use_it() {
        let tools = FakeTools::with_recording_script("azd", &format!("echo '{OK}'"));
        let cred = AzureDeveloperCliCredential::builder()
            .runtime(Runtime::with_env(tools.env()).clock(FakeClock::at_2030().shared()))
            .build()
            .unwrap();
        bounded(cred.get_token(&[A], &opts())).await.unwrap();
        bounded(cred.get_token(&[A], &opts())).await.unwrap();
        assert_eq!(tools.runs(), 1);
        bounded(cred.get_token(&[A], &opts().claims("{\"x\":1}")))
            .await
            .unwrap();
        assert_eq!(tools.runs(), 2);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn logged_out_azd_is_unavailable() {
        let err = script_failure(
            AzureDeveloperCliCredential::builder().tenant_id("t1"),
            "azd",
            "echo 'ERROR: not logged in, run `azd auth login` to login' >&2\nexit 1",
            A,
        )
        .await;
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(
            err.message().contains("`azd auth login --tenant-id t1`"),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn missing_azd_is_unavailable_with_the_install_link() {
        let tools = FakeTools::new();
        let cred = AzureDeveloperCliCredential::builder().build_on(&tools);
        let err = bounded_failure(&cred, &[A]).await;
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(
            err.message().contains("aka.ms/azd-install")
                && err.message().contains("azd auth login"),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn injection_in_any_scope_is_refused_before_azd_runs() {
        let tools = FakeTools::with_recording_script("azd", &format!("echo '{OK}'"));
        let cred = AzureDeveloperCliCredential::builder().build_on(&tools);
        for bad in ["b; touch x", "$(x)", "`x`", "--tenant-id", "a\nb", "'q'"] {
            let err = bounded_failure(&cred, &[A, bad]).await;
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad:?}");
        }
        assert!(!tools.file("ran").exists());
    }

    #[tokio::test]
    async fn outputs_map_as_the_reference_does() {
        let cases = [
            (
                1,
                "",
                "Error: unknown flag: --claims",
                ErrorKind::Unavailable,
                "1.18.1",
            ),
            (127, "", "", ErrorKind::Unavailable, "not installed"),
            (
                1,
                "",
                "'azd' is not recognized as an internal or external command",
                ErrorKind::Unavailable,
                "install",
            ),
            (
                1,
                "",
                "ERROR: not logged in, run `azd auth login` to login. AADSTS50076: MFA required",
                ErrorKind::AuthenticationFailed,
                "AADSTS50076",
            ),
            (
                1,
                r#"{"type":"consoleMessage","timestamp":"x","data":{"message":"\nERROR: fetching token: boom\n"}}"#,
                "",
                ErrorKind::AuthenticationFailed,
                "ERROR: fetching token: boom",
            ),
            (
                1,
                "",
                "{\"type\":\"consoleMessage\",\"data\":{\"message\":\"old\"}}\n{\"error\":\"new style error\"}",
                ErrorKind::AuthenticationFailed,
                "new style error",
            ),
            (
                1,
                "",
                "plain failure",
                ErrorKind::AuthenticationFailed,
                "plain failure",
            ),
        ];
        for (code, stdout, stderr, kind, hint) in cases {
            let err = canned_failure::<AzureDeveloperCli>(A, code, stdout, stderr).await;
            assert_eq!(err.kind(), kind, "{stdout}{stderr}: {err}");
            assert!(err.message().contains(hint), "{err}");
        }
    }

    #[tokio::test]
    async fn unexpected_success_output_is_an_authentication_failure() {
        for stdout in [
            "",
            "not json",
            r#"{"token":"X"}"#,
            r#"{"token":"X","expiresOn":"2030-01-01 10:00:00"}"#,
        ] {
            let err = canned_failure::<AzureDeveloperCli>(A, 0, stdout, "").await;
            assert_eq!(err.kind(), ErrorKind::AuthenticationFailed, "{stdout}");
        }
    }

    #[test]
    fn a_leading_byte_order_mark_is_skipped() {
        assert!(parse(&format!("\u{feff}{OK}\n")).is_ok());
    }

    #[tokio::test]
    async fn windows_runs_in_systemroot() {
        let canned = Canned::output(0, OK, "");
        let cred = with_canned(&canned)
            .runtime(Runtime::with_env(Env::from_pairs([(
                "SystemRoot",
                "C:\\Windows",
            )])))
            .platform(crate::process::Platform::Windows)
            .build()
            .unwrap();
        cred.get_token(&[A], &opts()).await.unwrap();
        assert_eq!(
            canned.seen()[0].working_dir(),
            std::path::Path::new("C:\\Windows")
        );
    }

    #[tokio::test]
    async fn a_planted_token_never_reaches_errors_or_debug() {
        let outputs = [
            Output::new(
                Some(0),
                format!(r#"{{"token":"{PLANTED}","expiresOn":"later"}}"#),
                "",
            ),
            Output::new(Some(1), "", format!(r#"{{"error":"bad token {PLANTED}"}}"#)),
            Output::new(Some(1), "", format!(r#"{{"token": "{PLANTED}"}} failed"#)),
        ];
        assert_planted_outputs_hidden::<AzureDeveloperCli>(A, outputs).await;
    }
}
