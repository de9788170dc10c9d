//! [`AzureCliCredential`](crate::AzureCliCredential): tokens from the Azure CLI's signed-in
//! account.
//!
//! # Command
//! ```text
//! az account get-access-token --output json --resource <resource> [--tenant <tenant>] [--subscription <subscription>]
//! ```
//! Run without a shell, one `argv` element per value (a subscription name with spaces is one
//! element), with working directory `/bin` (`%SYSTEMROOT%` on Windows), stdin null and the
//! injected environment plus `AZURE_CORE_NO_COLOR=true`. `az` is looked up on the injected
//! `PATH` (`az.cmd`, then `az`, on Windows). The resource is the single scope without its
//! `/.default` suffix.
//!
//! # Output
//! JSON with `accessToken` and `expires_on` (epoch seconds, CLI ≥ 2.54). Without
//! `expires_on`, the legacy `expiresOn` (`YYYY-MM-DD HH:MM:SS.ffffff`, local time) is read as
//! described in the crate's `output` notes: exact in the zone the injected `TZ` names
//! (`TZif` file, POSIX rule or fixed offset), conservatively short when that zone is unknown.
//!
//! # Errors
//! Before anything runs: a scope, tenant or subscription with characters outside the allowed
//! sets, or a leading `-`, is an invalid argument (configuration at `build`); a claims
//! challenge is *unavailable* with the `az login --claims-challenge` command to run. What the
//! CLI's exit means is the table on `classify`; a runner failure (not on `PATH`, timeout,
//! spawn failure) is *unavailable*, output over the cap or unparseable output an
//! authentication failure.

use identity_core::{AccessToken, Error, wire};

use crate::credential::DeveloperToolCredentialBuilder;
use crate::output::{blank_json, encode_claims, epoch_from_json, local_expiry, parse_cli_naive};
use crate::process::{Command, Output, Platform};
use crate::settings::Resolved;
use crate::tool::{Request, Tool, ToolSpec, flagged, with_args};

const NAME: &str = "AzureCliCredential";

/// The Azure CLI (`az`), as the tool of a
/// [`DeveloperToolCredential`](crate::DeveloperToolCredential); its own option is the
/// subscription. Use it through [`AzureCliCredential`](crate::AzureCliCredential).
#[derive(Clone, Debug, Default)]
pub struct AzureCli {
    subscription: Option<String>,
}

impl DeveloperToolCredentialBuilder<AzureCli> {
    /// The subscription (name or id) whose tenant the token is for. ASCII letters, digits,
    /// `_ - .` and spaces only.
    #[must_use]
    pub fn subscription(mut self, subscription: impl Into<String>) -> Self {
        self.tool.subscription = Some(subscription.into()).filter(|s| !s.is_empty());
        self
    }
}

impl ToolSpec for AzureCli {
    const TOOL: Tool = Tool::AZURE_CLI;

    fn check(&self) -> Result<(), Error> {
        let Some(s) = &self.subscription else {
            return Ok(());
        };
        let allowed = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b' '));
        if !allowed || s.starts_with('-') || s.trim().is_empty() {
            return Err(Error::invalid_configuration(
                NAME,
                "invalid subscription: only ASCII letters, digits, '_', '-', '.' and spaces are allowed, \
                 and it must not start with '-'",
            ));
        }
        Ok(())
    }

    fn cache_identity(&self) -> String {
        format!(
            "{NAME}/{}",
            self.subscription.as_deref().unwrap_or_default()
        )
    }

    fn debug_fields(&self, fields: &mut std::fmt::DebugStruct<'_, '_>) {
        fields.field("subscription", &self.subscription);
    }

    fn claims(claims: &str, scopes: &[&str], tenant: Option<&str>) -> Result<String, Error> {
        let mut command = format!("az login --claims-challenge {}", encode_claims(claims));
        if let Some(t) = tenant {
            command.push_str(&format!(" --tenant {t}"));
        }
        command.push_str(&format!(" --scope {}", scopes[0]));
        Err(Error::unavailable(
            NAME,
            format!(
                "the Azure CLI cannot answer a claims challenge by itself; run `{command}` \
                 (Azure CLI 2.76.0 or later) and try again"
            ),
        ))
    }

    fn command(&self, config: &Resolved, request: &Request) -> Result<Command, Error> {
        let program = match config.platform {
            Platform::Unix => Command::new("az", "az"),
            Platform::Windows => Command::new("az", "az.cmd").or_program("az"),
        };
        let fixed = ["account", "get-access-token", "--output", "json"];
        let mut args = request.argv(&fixed, "--resource", "--tenant");
        args.extend(flagged("--subscription", self.subscription.as_deref()));
        Ok(with_args(program, args))
    }

    /// What the CLI's exit means (docs/protocol.md §5.1):
    ///
    /// | Exit status, stderr | Kind | Message |
    /// |---|---|---|
    /// | 0 | — | the output is parsed |
    /// | 127, or stderr starts with `'az' is not recognized` | unavailable | install the CLI and run `az login` |
    /// | stderr mentions `az login` or `az account set`, and no `AADSTS` code | unavailable | run `az login [--tenant T]` |
    /// | any other | authentication failed | the CLI's scrubbed stderr (else stdout) and exit code |
    fn classify(output: &Output, tenant: Option<&str>) -> Result<(), Error> {
        let tool = &Self::TOOL;
        let stderr = output.stderr();
        if output.success() {
            Ok(())
        } else if output.code() == Some(127)
            || stderr.trim_start().starts_with("'az' is not recognized")
        {
            Err(tool.not_installed())
        } else if (stderr.contains("az login") || stderr.contains("az account set"))
            && !stderr.contains("AADSTS")
        {
            Err(tool.not_logged_in(tenant))
        } else {
            Err(tool.failed(output))
        }
    }

    fn parse(&self, config: &Resolved, stdout: &str) -> Result<AccessToken, Error> {
        let unexpected = || Self::TOOL.unexpected(stdout);
        let json: serde_json::Value = serde_json::from_str(wire::strip_bom_str(stdout).trim())
            .map_err(|e| unexpected().with_source(e))?;
        let token = json
            .get("accessToken")
            .and_then(serde_json::Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(unexpected)?;
        // `expires_on` wins whenever it has a value, as in the reference; `null` or a blank
        // string counts as absent (docs/protocol.md §1.5).
        let expires_on = match json.get("expires_on").filter(|v| !blank_json(v)) {
            Some(value) => epoch_from_json(value),
            None => json
                .get("expiresOn")
                .and_then(serde_json::Value::as_str)
                .and_then(parse_cli_naive)
                .and_then(|naive| local_expiry(naive, &config.env, config.clock.now())),
        }
        .ok_or_else(unexpected)?;
        Ok(AccessToken::new(token, expires_on))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::{AzureCliCredential, AzureCliCredentialBuilder};

    use identity_core::{Runtime, TokenCredential, TokenRequestOptions};

    use super::*;
    use crate::process::{Output, RunError};
    use crate::test_support::*;
    use identity_core::test_util::FakeClock;
    use identity_core::{Env, ErrorKind};
    use std::time::Duration;

    const SCOPE: &str = "https://management.azure.com/.default";
    const OK_JSON: &str =
        r#"{"accessToken":"T","expires_on":1893492000,"expiresOn":"2030-01-01 10:00:00.000000"}"#;

    fn opts() -> TokenRequestOptions {
        TokenRequestOptions::default()
    }

    fn with_canned(canned: &Arc<Canned>) -> AzureCliCredentialBuilder {
        canned_builder(canned)
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn success_passes_exact_argv_cwd_and_colour_and_returns_the_token() {
        let tools = FakeTools::with_recording_script("az", &format!("echo '{OK_JSON}'"));
        let cred = AzureCliCredential::builder()
            .tenant_id("tid-1")
            .subscription("My Sub")
            .build_on(&tools);
        let token = bounded(cred.get_token(&[SCOPE], &opts())).await.unwrap();
        assert_eq!(token.token.secret(), "T");
        assert_eq!(unix(token.expires_on), 1_893_492_000);
        assert_eq!(
            tools.argv(),
            [
                "account",
                "get-access-token",
                "--output",
                "json",
                "--resource",
                "https://management.azure.com",
                "--tenant",
                "tid-1",
                "--subscription",
                "My Sub"
            ]
        );
        // `/bin` may be a link to `/usr/bin`; `pwd` prints the resolved directory.
        let cwd = std::path::PathBuf::from(tools.read("cwd").unwrap().trim());
        assert_eq!(
            cwd.canonicalize().unwrap(),
            std::path::Path::new("/bin").canonicalize().unwrap()
        );
        assert_eq!(tools.read("colour").unwrap().trim(), "true|true");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_second_call_is_answered_from_the_cache() {
        let tools = FakeTools::with_recording_script("az", &format!("echo '{OK_JSON}'"));
        let cred = AzureCliCredential::builder()
            .runtime(Runtime::with_env(tools.env()).clock(FakeClock::at_2030().shared()))
            .build()
            .unwrap();
        for _ in 0..3 {
            bounded(cred.get_token(&[SCOPE], &opts())).await.unwrap();
        }
        assert_eq!(tools.runs(), 1);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn concurrent_callers_start_the_cli_once() {
        let tools =
            FakeTools::with_recording_script("az", &format!("/bin/sleep 0.2\necho '{OK_JSON}'"));
        let cred = Arc::new(
            AzureCliCredential::builder()
                .runtime(Runtime::with_env(tools.env()).clock(FakeClock::at_2030().shared()))
                .build()
                .unwrap(),
        );
        let calls = (0..8).map(|_| {
            let cred = cred.clone();
            tokio::spawn(async move {
                cred.get_token(&[SCOPE], &TokenRequestOptions::default())
                    .await
            })
        });
        for call in calls.collect::<Vec<_>>() {
            let token = bounded(call).await.unwrap().unwrap();
            assert_eq!(token.token.secret(), "T");
        }
        assert_eq!(tools.runs(), 1);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_chatty_stderr_does_not_block_the_answer_on_stdout() {
        let tools = FakeTools::new();
        // 256 KiB on stderr first: more than a pipe buffer, so reading one stream at a time
        // would deadlock.
        tools.script(
            "az",
            &format!(
                "/usr/bin/head -c 262144 /dev/zero | /usr/bin/tr '\\0' 'w' >&2\necho '{OK_JSON}'"
            ),
        );
        let cred = AzureCliCredential::builder()
            .process_timeout(Duration::from_secs(20))
            .build_on(&tools);
        let token = bounded(cred.get_token(&[SCOPE], &opts())).await.unwrap();
        assert_eq!(token.token.secret(), "T");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_per_request_tenant_is_passed_when_allowed() {
        let tools = FakeTools::with_recording_script("az", &format!("echo '{OK_JSON}'"));
        let cred = AzureCliCredential::builder()
            .tenant_id("home")
            .additionally_allowed_tenants(["other"])
            .build_on(&tools);
        bounded(cred.get_token(&[SCOPE], &opts().tenant_id("other")))
            .await
            .unwrap();
        assert_eq!(tools.argv()[6..], ["--tenant", "other"]);
        let err = bounded(cred.get_token(&[SCOPE], &opts().tenant_id("third")))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
        assert_eq!(tools.runs(), 1);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn logged_out_cli_is_unavailable_and_names_az_login() {
        let err = script_failure(
            AzureCliCredential::builder().tenant_id("tid-1"),
            "az",
            "echo \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1",
            SCOPE,
        )
        .await;
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(err.message().contains("`az login --tenant tid-1`"), "{err}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn an_empty_path_means_not_installed() {
        let tools = FakeTools::with_recording_script("az", &format!("echo '{OK_JSON}'"));
        let cred = AzureCliCredential::builder()
            .runtime(Runtime::with_env(Env::from_pairs([("PATH", "")])))
            .build()
            .unwrap();
        let err = bounded_failure(&cred, &[SCOPE]).await;
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(
            err.message().contains("not installed") && err.message().contains("aka.ms/azure-cli"),
            "{err}"
        );
        assert_eq!(tools.runs(), 0);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn garbage_on_a_failed_run_is_an_authentication_failure_without_the_token() {
        let tools = FakeTools::with_script(
            "az",
            &format!("echo 'garbage {{\"accessToken\": \"{PLANTED}\"}} {PLANTED}' >&2\nexit 2"),
        );
        let cred = AzureCliCredential::builder().build_on(&tools);
        let err = bounded_failure(&cred, &[SCOPE]).await;
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
        assert!(
            err.message().contains("garbage") && err.message().contains("exit code 2"),
            "{err}"
        );
        assert_hidden(
            "planted",
            &[err.to_string(), format!("{err:?}"), format!("{cred:?}")],
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn output_without_expiry_is_refused_without_echoing_the_token() {
        let tools =
            FakeTools::with_script("az", &format!("echo '{{\"accessToken\":\"{PLANTED}\"}}'"));
        let cred = AzureCliCredential::builder().build_on(&tools);
        let err = bounded_failure(&cred, &[SCOPE]).await;
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
        assert!(err.message().contains("unexpected output"), "{err}");
        assert_hidden("planted", &[err.to_string(), format!("{err:?}")]);
    }

    /// Runs an `az` that is the script `body` with a 300 ms process timeout; returns its
    /// directory and the call's error, which must say the CLI is unavailable.
    #[cfg(target_os = "linux")]
    async fn hanging_az(body: &str) -> (FakeTools, Error) {
        let tools = FakeTools::with_script("az", body);
        let cred = AzureCliCredential::builder()
            .process_timeout(Duration::from_millis(300))
            .build_on(&tools);
        let err = bounded_failure(&cred, &[SCOPE]).await;
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        (tools, err)
    }

    // Reads /proc to see that the process is gone.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_hanging_cli_is_killed_and_reaped_at_the_timeout() {
        // `exec` keeps the pid: the recorded pid is the process the runner must kill.
        let (tools, err) = hanging_az("echo $$ > $D/pid\nexec /bin/sleep 30").await;
        assert!(
            err.message().contains("did not answer within 300 ms"),
            "{err}"
        );
        let pid = tools.read("pid").unwrap().trim().to_owned();
        assert!(!pid.is_empty());
        // Reaped before the call returned: no process, not even a zombie, is left.
        wait_until(|| !std::path::Path::new(&format!("/proc/{pid}")).exists()).await;
    }

    // Reads /proc to see that the process is gone.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_hanging_cli_with_a_child_takes_the_child_down_too() {
        // A wrapper script that does not exec, like the real `az`.
        let (tools, _) = hanging_az("/bin/sleep 30 &\necho $! > $D/child\nwait").await;
        let child = tools.read("child").unwrap().trim().to_owned();
        wait_until(|| {
            // A killed orphan may linger briefly as a zombie until init reaps it.
            let state = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            state.is_empty() || state.contains(") Z")
        })
        .await;
    }

    // Reads /proc to see that the process is gone.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_cli_abandoned_by_its_caller_still_dies_at_its_timeout() {
        let tools = FakeTools::with_script("az", "echo $$ > $D/pid\nexec /bin/sleep 30");
        let cred = AzureCliCredential::builder()
            .process_timeout(Duration::from_secs(1))
            .build_on(&tools);
        let gave_up = tokio::time::timeout(
            Duration::from_millis(300),
            cred.get_token(&[SCOPE], &opts()),
        )
        .await;
        assert!(gave_up.is_err());
        wait_until(|| {
            let pid = tools.read("pid").unwrap_or_default();
            let state =
                std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
            // Killed at its own timeout and reaped, although nobody awaits the result.
            !pid.trim().is_empty() && state.is_empty()
        })
        .await;
    }

    /// An `az` (or a wrapper) that answers `then`, leaving a process behind that holds its
    /// stdout; the process timeout is far longer than the exit grace and shorter than that
    /// process's life, so a run that waited for it would be a timeout.
    #[cfg(unix)]
    async fn az_leaving_a_process(then: &str) -> (FakeTools, Result<AccessToken, Error>) {
        let tools = FakeTools::with_script(
            "az",
            &format!("{then}\n/bin/sleep 30 &\necho $! > $D/left\nexit 0"),
        );
        let cred = AzureCliCredential::builder()
            .process_timeout(Duration::from_secs(20))
            .build_on(&tools);
        let answer = bounded(cred.get_token(&[SCOPE], &opts())).await;
        if let Some(pid) = tools.read("left").and_then(|p| p.trim().parse().ok()) {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        (tools, answer)
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_token_printed_before_exit_is_used_although_a_background_child_holds_stdout() {
        let (_tools, answer) = az_leaving_a_process(&format!("echo '{OK_JSON}'")).await;
        let token = answer.unwrap();
        assert_eq!(token.token.secret(), "T");
        assert_eq!(unix(token.expires_on), 1_893_492_000);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn no_output_while_a_background_child_holds_stdout_is_unexpected_output_not_a_timeout() {
        let (_tools, answer) = az_leaving_a_process("true").await;
        let err = answer.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed, "{err}");
        assert!(err.message().contains("unexpected output"), "{err}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_flood_of_output_is_capped_and_fails() {
        let err = script_failure(
            AzureCliCredential::builder().process_timeout(Duration::from_secs(20)),
            "az",
            "/bin/cat /dev/zero | /usr/bin/head -c 50000000",
            SCOPE,
        )
        .await;
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed, "{err}");
        assert!(err.message().contains("far more output"), "{err}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn injection_attempts_are_refused_before_anything_runs() {
        let tools = FakeTools::with_recording_script("az", &format!("echo '{OK_JSON}'"));
        let cred = AzureCliCredential::builder().build_on(&tools);
        let bad_scopes = [
            "https://x/.default; rm -rf /",
            "https://x/.default && touch /tmp/x",
            "$(touch x)",
            "`touch x`",
            "'quoted'",
            "\"quoted\"",
            "a\nb",
            "-x",
            "--help",
        ];
        for scope in bad_scopes {
            let err = bounded_failure(&cred, &[scope]).await;
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{scope:?}");
            assert!(!err.to_string().contains(scope), "{err}");
        }
        let any = AzureCliCredential::builder()
            .additionally_allowed_tenants(["*"])
            .build_on(&tools);
        for tenant in ["a b", "t;x", "$(x)", "`x`", "a'b", "a\nb", "-t", "a&&b"] {
            let err = bounded(any.get_token(&[SCOPE], &opts().tenant_id(tenant)))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{tenant:?}");
        }
        for subscription in [
            "sub$(x)", "a;b", "a&&b", "`x`", "'s'", "a\nb", "-s", "--help",
        ] {
            let err = AzureCliCredential::builder()
                .subscription(subscription)
                .on_path_of(&tools)
                .build()
                .unwrap_err();
            assert_eq!(
                err.kind(),
                ErrorKind::InvalidConfiguration,
                "{subscription:?}"
            );
            assert!(!err.to_string().contains(subscription), "{err}");
        }
        assert!(!tools.file("ran").exists(), "the tool ran");
    }

    #[tokio::test]
    async fn claims_give_the_exact_login_command_and_run_nothing() {
        let canned = Canned::new([]);
        let cred = with_canned(&canned).tenant_id("tid-1").build().unwrap();
        let claims = r#"{"access_token":{"nbf":{"essential":true,"value":"1"}}}"#;
        let err = cred
            .get_token(&[SCOPE], &opts().claims(claims))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        let expected = format!(
            "`az login --claims-challenge {} --tenant tid-1 --scope {SCOPE}`",
            encode_claims(claims)
        );
        assert!(err.message().contains(&expected), "{err}");
        assert!(canned.seen().is_empty());
    }

    #[tokio::test]
    async fn exactly_one_scope_is_accepted() {
        let canned = Canned::new([]);
        let cred = with_canned(&canned).build().unwrap();
        for scopes in [&[][..], &[SCOPE, "https://vault.azure.net/.default"][..]] {
            let err = cred.get_token(scopes, &opts()).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        }
        assert!(canned.seen().is_empty());
    }

    #[tokio::test]
    async fn exit_codes_and_stderr_texts_map_as_the_reference_does() {
        let cases = [
            (127, "", ErrorKind::Unavailable),
            (
                1,
                "'az' is not recognized as an internal or external command",
                ErrorKind::Unavailable,
            ),
            (
                1,
                "ERROR: Please run 'az login' to setup account.",
                ErrorKind::Unavailable,
            ),
            (
                1,
                "Please run 'az account set' to select a subscription",
                ErrorKind::Unavailable,
            ),
            (
                1,
                "ERROR: AADSTS70043: The refresh token has expired. Please run 'az login'.",
                ErrorKind::AuthenticationFailed,
            ),
            (1, "ERROR: something else", ErrorKind::AuthenticationFailed),
        ];
        for (code, stderr, kind) in cases {
            let err = canned_failure::<AzureCli>(SCOPE, code, "", stderr).await;
            assert_eq!(err.kind(), kind, "{stderr}: {err}");
        }
    }

    #[tokio::test]
    async fn runner_failures_map_to_unavailable() {
        for failure in [
            RunError::NotFound {
                program: "az".into(),
            },
            RunError::TimedOut(Duration::from_secs(10)),
            RunError::Spawn(std::io::Error::other("denied")),
        ] {
            let canned = Canned::new([Err(failure)]);
            let cred = with_canned(&canned).build().unwrap();
            let err = cred.get_token(&[SCOPE], &opts()).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        }
    }

    fn zoneinfo_fixture() -> String {
        format!("{}/tests/data/zoneinfo", env!("CARGO_MANIFEST_DIR"))
    }

    #[tokio::test]
    async fn legacy_expiry_is_read_in_the_injected_zone_and_is_conservative_otherwise() {
        let at =
            |date: &str| format!(r#"{{"accessToken":"T","expiresOn":"{date} 10:00:00.000000"}}"#);
        let clock =
            FakeClock::new(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_492_000));
        let winter = "2030-01-01";
        let summer = "2030-07-01";
        let summer_utc = 1_909_130_400; // 2030-07-01T10:00Z
        for (tz, date, expected) in [
            ("EST5", winter, 1_893_510_000),
            ("UTC", winter, 1_893_492_000),
            ("America/New_York", winter, 1_893_510_000),
            (":America/New_York", summer, summer_utc + 4 * 3600),
            ("EST5EDT,M3.2.0,M11.1.0", winter, 1_893_510_000),
            ("EST5EDT,M3.2.0,M11.1.0", summer, summer_utc + 4 * 3600),
            // Refused or unreadable zones: five minutes from now.
            ("../../etc/passwd", winter, 1_893_492_000 + 300),
            ("Nowhere/Special", winter, 1_893_492_000 + 300),
        ] {
            let canned = Canned::output(0, &at(date), "");
            let cred = AzureCliCredential::builder()
                .runtime(
                    Runtime::with_env(Env::from_pairs([
                        ("TZ", tz),
                        ("TZDIR", &zoneinfo_fixture()),
                    ]))
                    .clock(clock.shared()),
                )
                .executor(canned.clone())
                .build()
                .unwrap();
            let token = cred.get_token(&[SCOPE], &opts()).await.unwrap();
            assert_eq!(unix(token.expires_on), expected, "{tz} {date}");
        }
        let no_fraction = r#"{"accessToken":"T","expiresOn":"2030-01-01 10:00:00"}"#;
        let canned = Canned::output(0, no_fraction, "");
        let err = with_canned(&canned)
            .build()
            .unwrap()
            .get_token(&[SCOPE], &opts())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
    }

    /// docs/protocol.md §10 case 36, through a real `az` process.
    #[cfg(unix)]
    #[tokio::test]
    async fn legacy_expiry_from_a_real_az_is_new_york_local_time() {
        let tools = FakeTools::with_script(
            "az",
            r#"echo '{"accessToken":"T","expiresOn":"2030-01-01 10:00:00.000000"}'"#,
        );
        let cred = AzureCliCredential::builder()
            .runtime(
                Runtime::with_env(
                    tools
                        .env()
                        .with("TZ", "America/New_York")
                        .with("TZDIR", zoneinfo_fixture()),
                )
                .clock(FakeClock::at_2030().shared()),
            )
            .build()
            .unwrap();
        let token = bounded(cred.get_token(&[SCOPE], &opts())).await.unwrap();
        assert_eq!(unix(token.expires_on), 1_893_510_000);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_garbage_zone_file_falls_back_to_five_minutes() {
        let tools = FakeTools::new();
        std::fs::create_dir(tools.file("zones")).unwrap();
        std::fs::write(tools.file("zones").join("Bad"), b"TZif2garbage").unwrap();
        let canned = Canned::output(
            0,
            r#"{"accessToken":"T","expiresOn":"2030-01-01 10:00:00.000000"}"#,
            "",
        );
        let clock =
            FakeClock::new(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_492_000));
        let cred = AzureCliCredential::builder()
            .runtime(
                Runtime::with_env(Env::from_pairs([
                    ("TZ", "Bad".to_owned()),
                    ("TZDIR", tools.file("zones").to_str().unwrap().to_owned()),
                ]))
                .clock(clock.shared()),
            )
            .executor(canned)
            .build()
            .unwrap();
        let token = cred.get_token(&[SCOPE], &opts()).await.unwrap();
        assert_eq!(unix(token.expires_on), 1_893_492_000 + 300);
    }

    #[tokio::test]
    async fn expires_on_as_a_string_is_accepted() {
        let canned = Canned::output(0, r#"{"accessToken":"T","expires_on":"1893492000"}"#, "");
        let token = with_canned(&canned)
            .build()
            .unwrap()
            .get_token(&[SCOPE], &opts())
            .await
            .unwrap();
        assert_eq!(unix(token.expires_on), 1_893_492_000);
    }

    /// The token's expiry in Unix seconds when `az` prints `stdout`.
    async fn expiry_of(stdout: &str) -> Result<u64, Error> {
        let canned = Canned::output(0, stdout, "");
        let credential = with_canned(&canned)
            .runtime(
                Runtime::with_env(Env::from_pairs([("TZ", "UTC")]))
                    .clock(FakeClock::at_2030().shared()),
            )
            .build()
            .unwrap();
        let token = bounded(credential.get_token(&[SCOPE], &opts())).await?;
        assert_eq!(token.token.secret(), "T");
        Ok(unix(token.expires_on))
    }

    #[tokio::test]
    async fn a_bom_a_blank_expires_on_and_a_fraction_are_read_as_the_rule_says() {
        for (stdout, expected) in [
            // A leading byte order mark.
            (format!("\u{feff}{OK_JSON}\n"), 1_893_492_000),
            // A blank or null `expires_on` is absent: `expiresOn` counts (local time, UTC here).
            (
                r#"{"accessToken":"T","expires_on":"","expiresOn":"2030-01-01 10:00:00.000000"}"#
                    .to_owned(),
                1_893_492_000,
            ),
            (
                r#"{"accessToken":"T","expires_on":null,"expiresOn":"2030-01-01 10:00:00.000000"}"#
                    .to_owned(),
                1_893_492_000,
            ),
            // Epoch seconds with a fraction, as a string and as a number.
            (
                r#"{"accessToken":"T","expires_on":"1893492000.0"}"#.to_owned(),
                1_893_492_000,
            ),
            (
                r#"{"accessToken":"T","expires_on":1893492000.5}"#.to_owned(),
                1_893_492_000,
            ),
        ] {
            assert_eq!(expiry_of(&stdout).await.unwrap(), expected, "{stdout}");
        }
        for stdout in [
            r#"{"accessToken":"T","expires_on":""}"#,
            r#"{"accessToken":"T","expires_on":null}"#,
            r#"{"accessToken":"T","expires_on":"-1"}"#,
        ] {
            let err = expiry_of(stdout).await.unwrap_err();
            assert!(err.message().contains("unexpected output"), "{err}");
        }
    }

    #[tokio::test]
    async fn windows_runs_az_cmd_first_in_systemroot() {
        let canned = Canned::output(0, OK_JSON, "");
        let cred = windows_builder::<AzureCli>(&canned).build().unwrap();
        cred.get_token(&[SCOPE], &opts()).await.unwrap();
        let seen = canned.seen();
        assert_eq!(seen[0].programs(), ["az.cmd", "az"]);
        assert_eq!(seen[0].working_dir(), std::path::Path::new("C:\\Windows"));

        let canned = Canned::output(0, OK_JSON, "");
        let cred = with_canned(&canned)
            .platform(Platform::Windows)
            .build()
            .unwrap();
        let err = cred.get_token(&[SCOPE], &opts()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.message().contains("SYSTEMROOT"), "{err}");
    }

    #[tokio::test]
    async fn a_planted_token_never_reaches_errors_or_debug() {
        let outputs = [
            Output::new(
                Some(0),
                format!(r#"{{"accessToken":"{PLANTED}","expires_on":"soon"}}"#),
                "",
            ),
            Output::new(Some(0), format!("not json {PLANTED}"), ""),
            Output::new(Some(1), "", format!(r#"{{"accessToken": "{PLANTED}"}}"#)),
            Output::new(Some(1), PLANTED, ""),
        ];
        assert_planted_outputs_hidden::<AzureCli>(SCOPE, outputs).await;
        let canned = Canned::output(
            0,
            &format!(r#"{{"accessToken":"{PLANTED}","expires_on":1893492000}}"#),
            "",
        );
        let cred = with_canned(&canned).build().unwrap();
        let token = cred.get_token(&[SCOPE], &opts()).await.unwrap();
        assert_hidden("planted", &[format!("{token:?}"), format!("{cred:?}")]);
    }
}
