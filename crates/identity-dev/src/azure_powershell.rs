//! [`AzurePowerShellCredential`](crate::AzurePowerShellCredential): tokens from Azure
//! PowerShell's signed-in account (`Get-AzAccessToken` from the `Az.Accounts` module).
//!
//! # Command
//! A PowerShell script, encoded as UTF-16LE then base64, run as
//! ```text
//! pwsh -NoProfile -NonInteractive -EncodedCommand <base64>
//! ```
//! * Linux and macOS: `argv = ["/bin/sh", "-c", "pwsh -NoProfile -NonInteractive -EncodedCommand <base64>"]`,
//!   exactly as the reference runs it. The shell sees only fixed words and base64
//!   characters; the resource and tenant travel inside the encoded script, in single-quoted
//!   PowerShell strings, which is safe because validation refuses quotes (and every other
//!   character outside letters, digits and `_ - . : /`) before anything runs. `pwsh` must be
//!   on the injected `PATH`, checked before the shell is started.
//! * Windows: `argv = ["cmd", "/c", "pwsh … & exit"]`; when `cmd` reports that `pwsh` is not
//!   recognised (or exits with 9009), the command is retried once with `powershell`
//!   (Windows PowerShell 5.1).
//!
//! Working directory `/bin` (`%SYSTEMROOT%`), stdin null, the injected environment plus the
//! colour switches.
//!
//! # Output
//! The script prints `azsdk%<token>%<expiry as Unix seconds>` between blank lines; the first
//! whitespace-separated word starting with `azsdk%` is read.
//!
//! # Errors
//! Every failure is *unavailable*, as in the reference, except output without the marker
//! line (authentication failed). A claims challenge is *unavailable* with the
//! `Connect-AzAccount -ClaimsChallenge <b64> [-Tenant T]` command to run, and nothing runs.
//! What the script's exit means is the table on `classify`.

use base64::Engine as _;
use identity_core::{AccessToken, Error, from_unix_seconds, wire};

use crate::output::{encode_claims, scrub};
use crate::process::{Command, Output, Platform};
use crate::settings::Resolved;
use crate::tool::{Request, Run, Tool, ToolSpec, exit};

const NAME: &str = "AzurePowerShellCredential";

/// The sentinel the script prints when `Az.Accounts` cannot be loaded.
const NO_MODULE: &str = "NO_AZ_ACCOUNT_MODULE";

/// Azure PowerShell (`pwsh`, or Windows PowerShell), as the tool of a
/// [`DeveloperToolCredential`](crate::DeveloperToolCredential). Use it through
/// [`AzurePowerShellCredential`](crate::AzurePowerShellCredential).
#[derive(Clone, Debug, Default)]
pub struct AzurePowerShell;

impl ToolSpec for AzurePowerShell {
    const TOOL: Tool = Tool::AZURE_POWERSHELL;

    fn claims(claims: &str, _scopes: &[&str], tenant: Option<&str>) -> Result<String, Error> {
        let mut command = format!(
            "Connect-AzAccount -ClaimsChallenge {}",
            encode_claims(claims)
        );
        if let Some(t) = tenant {
            command.push_str(&format!(" -Tenant {t}"));
        }
        Err(Error::unavailable(
            NAME,
            format!(
                "Azure PowerShell cannot answer a claims challenge by itself; run `{command}` \
                 (Az.Accounts 5.2.0 or later) and try again"
            ),
        ))
    }

    fn command(&self, config: &Resolved, request: &Request) -> Result<Command, Error> {
        Ok(command_for(config, request, "pwsh"))
    }

    fn run<'a>(&'a self, config: &'a Resolved, request: &'a Request) -> Run<'a> {
        Box::pin(run(config, request))
    }

    /// What the script's exit means (docs/protocol.md §5.2):
    ///
    /// | Exit status, output | Kind | Message tells the user to |
    /// |---|---|---|
    /// | 0 with `NO_AZ_ACCOUNT_MODULE` on stdout | unavailable | `Install-Module Az.Accounts` |
    /// | 0 | — | the output is parsed (no marker line: authentication failed) |
    /// | 127, 9009, or stderr has `' is not recognized` | unavailable | install PowerShell |
    /// | stderr has `Run Connect-AzAccount to login` | unavailable | run `Connect-AzAccount [-Tenant T]` |
    /// | stderr has `AuthorizationManager check failed` | unavailable | allow scripts (execution policy) |
    /// | any other (exit code, scrubbed stderr) | unavailable | check `Get-AzAccessToken` in a terminal |
    fn classify(output: &Output, tenant: Option<&str>) -> Result<(), Error> {
        let stderr = output.stderr();
        if output.success() {
            if output.stdout().contains(NO_MODULE) {
                return Err(Error::unavailable(
                    NAME,
                    "the Az.Accounts module (2.2.0 or later) is not installed; run \
                     `Install-Module Az.Accounts -Scope CurrentUser` in PowerShell, then `Connect-AzAccount`",
                ));
            }
            return Ok(());
        }
        if output.code() == Some(127) || not_recognized(output) {
            return Err(Self::TOOL.not_installed());
        }
        if stderr.contains("Run Connect-AzAccount to login") {
            return Err(Self::TOOL.not_logged_in(tenant));
        }
        if stderr.contains("AuthorizationManager check failed") {
            return Err(Error::unavailable(
                NAME,
                "the PowerShell execution policy blocks the Az.Accounts module; allow it, e.g. with \
                 `Set-ExecutionPolicy -Scope CurrentUser RemoteSigned`, and try again",
            ));
        }
        Err(Error::unavailable(
            NAME,
            format!(
                "PowerShell could not get a token (exit {}); check that `Get-AzAccessToken` works in a \
                 terminal: {}",
                exit(output),
                scrub(stderr)
            ),
        ))
    }

    fn parse(&self, _config: &Resolved, stdout: &str) -> Result<AccessToken, Error> {
        parse(stdout)
    }
}

/// The PowerShell script: load `Az.Accounts` ≥ 2.2.0 (else print the sentinel), call
/// `Get-AzAccessToken`, turn a `SecureString` token into text, print the marker line.
///
/// `resource` and `tenant` must already be validated: they are pasted into single-quoted
/// strings.
pub(crate) fn script(resource: &str, tenant: Option<&str>) -> String {
    let tenant = tenant.unwrap_or_default();
    format!(
        r#"$ErrorActionPreference = 'Stop'
[version]$minimumVersion = '2.2.0'

$m = Import-Module Az.Accounts -MinimumVersion $minimumVersion -PassThru -ErrorAction SilentlyContinue

if (! $m) {{
    Write-Output {NO_MODULE}
    exit
}}

$params = @{{
    'ResourceUrl' = '{resource}'
    'WarningAction' = 'Ignore'
}}

$tenantId = '{tenant}'
if ($tenantId.Length -gt 0) {{
    $params['TenantId'] = $tenantId
}}

if ($m.Version -ge [version]'2.17.0' -and $m.Version -lt [version]'5.0.0') {{
    $params['AsSecureString'] = $true
}}

$token = Get-AzAccessToken @params
$tokenValue = $token.Token
if ($tokenValue -is [System.Security.SecureString]) {{
    if ($PSVersionTable.PSVersion.Major -lt 7) {{
        $ssPtr = [System.Runtime.InteropServices.Marshal]::SecureStringToBSTR($tokenValue)
        try {{
            $tokenValue = [System.Runtime.InteropServices.Marshal]::PtrToStringBSTR($ssPtr)
        }}
        finally {{
            [System.Runtime.InteropServices.Marshal]::ZeroFreeBSTR($ssPtr)
        }}
    }}
    else {{
        $tokenValue = $tokenValue | ConvertFrom-SecureString -AsPlainText
    }}
}}

Write-Output "`nazsdk%$($tokenValue)%$($token.ExpiresOn.ToUnixTimeSeconds())`n"
"#
    )
}

/// Base64 of the script's UTF-16LE bytes, as `-EncodedCommand` takes it.
pub(crate) fn encode_script(script: &str) -> String {
    let bytes: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The command line running the script with `exe` (`pwsh`, or `powershell`).
fn command_for(config: &Resolved, request: &Request, exe: &str) -> Command {
    let resource = request.targets.first().map_or("", String::as_str);
    let encoded = encode_script(&script(resource, request.tenant.as_deref()));
    let shell_line = format!("{exe} -NoProfile -NonInteractive -EncodedCommand {encoded}");
    match config.platform {
        Platform::Unix => Command::new("pwsh", "/bin/sh")
            .arg("-c")
            .arg(shell_line)
            .requires("pwsh"),
        Platform::Windows => Command::new("pwsh", "cmd")
            .arg("/c")
            .arg(format!("{shell_line} & exit")),
    }
}

async fn run(config: &Resolved, request: &Request) -> Result<Output, Error> {
    let tool = &AzurePowerShell::TOOL;
    let pwsh = || tool.prepare(config, command_for(config, request, "pwsh"));
    let mut output = tool.execute(config, pwsh()?).await?;
    // Through `/bin/sh -c` the runner's own retry on a briefly busy executable (one that was
    // just written while another thread forked) cannot apply: the shell reports it as exit
    // 126. A short retry gets past it.
    for _ in 0..3 {
        if !(output.code() == Some(126) && output.stderr().contains("Text file busy")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        output = tool.execute(config, pwsh()?).await?;
    }
    if config.platform == Platform::Windows && not_recognized(&output) {
        // PowerShell 7 is missing: Windows PowerShell 5.1 runs the same script.
        let command = tool.prepare(config, command_for(config, request, "powershell"))?;
        output = tool.execute(config, command).await?;
    }
    Ok(output)
}

fn not_recognized(output: &Output) -> bool {
    output.code() == Some(9009) || output.stderr().contains("' is not recognized")
}

pub(crate) fn parse(stdout: &str) -> Result<AccessToken, Error> {
    let parsed = wire::strip_bom_str(stdout)
        .split_whitespace()
        .find(|word| word.starts_with("azsdk%"))
        .and_then(|marker| {
            let parts: Vec<&str> = marker.split('%').collect();
            let [_, token, expiry] = parts.as_slice() else {
                return None;
            };
            let expires_on =
                from_unix_seconds(i64::try_from(wire::seconds_from_text(expiry)?).ok()?)?;
            (!token.is_empty()).then(|| AccessToken::new(*token, expires_on))
        });
    parsed.ok_or_else(|| AzurePowerShell::TOOL.unexpected(stdout))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::{AzurePowerShellCredential, AzurePowerShellCredentialBuilder};

    use identity_core::{TokenCredential, TokenRequestOptions};

    use super::*;
    use crate::test_support::*;
    use identity_core::ErrorKind;

    const SCOPE: &str = "https://management.azure.com/.default";

    fn opts() -> TokenRequestOptions {
        TokenRequestOptions::default()
    }

    fn decode(b64: &str) -> String {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16(&units).unwrap()
    }

    fn with_canned(canned: &Arc<Canned>) -> AzurePowerShellCredentialBuilder {
        canned_builder(canned)
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn success_runs_pwsh_through_sh_with_the_encoded_script() {
        let tools =
            FakeTools::with_recording_script("pwsh", "printf '\\nazsdk%%PS-AT%%1893492000\\n\\n'");
        let cred = AzurePowerShellCredential::builder()
            .tenant_id("tid-1")
            .build_on(&tools);
        let token = bounded(cred.get_token(&[SCOPE], &opts())).await.unwrap();
        assert_eq!(token.token.secret(), "PS-AT");
        assert_eq!(unix(token.expires_on), 1_893_492_000);
        let argv = tools.argv();
        assert_eq!(
            argv[..3],
            ["-NoProfile", "-NonInteractive", "-EncodedCommand"]
        );
        assert_eq!(argv.len(), 4);
        let script = decode(&argv[3]);
        assert!(
            script.contains("'ResourceUrl' = 'https://management.azure.com'"),
            "{script}"
        );
        assert!(script.contains("$tenantId = 'tid-1'"), "{script}");
        assert!(script.contains(NO_MODULE));
        assert_eq!(tools.read("colour").unwrap().trim(), "true|true");
    }

    #[test]
    fn a_leading_byte_order_mark_and_a_fractional_expiry_are_read_as_the_rule_says() {
        for out in ["\u{feff}azsdk%T%1893492000\n", "azsdk%T%1893492000.0\n"] {
            let token = parse(out).unwrap();
            assert_eq!(unix(token.expires_on), 1_893_492_000, "{out:?}");
        }
        assert!(parse("azsdk%T%-1\n").is_err());
    }

    #[tokio::test]
    async fn unix_argv_is_sh_dash_c_with_the_command_line() {
        let out = "\nazsdk%T%1893492000\n";
        let canned = Canned::output(0, out, "");
        let cred = with_canned(&canned)
            .platform(Platform::Unix)
            .build()
            .unwrap();
        cred.get_token(&[SCOPE], &opts()).await.unwrap();
        let seen = canned.seen();
        assert_eq!(seen[0].programs(), ["/bin/sh"]);
        assert_eq!(seen[0].required_programs(), ["pwsh"]);
        assert_eq!(seen[0].args()[0], "-c");
        let line = &seen[0].args()[1];
        let b64 = line
            .strip_prefix("pwsh -NoProfile -NonInteractive -EncodedCommand ")
            .unwrap();
        assert!(
            b64.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        );
        let script = decode(b64);
        assert!(script.contains("$tenantId = ''"), "{script}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn missing_pwsh_is_unavailable_and_starts_nothing() {
        let tools = FakeTools::new();
        let cred = AzurePowerShellCredential::builder().build_on(&tools);
        let err = bounded_failure(&cred, &[SCOPE]).await;
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.message().contains("install PowerShell"), "{err}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_missing_module_reported_by_a_real_script_is_unavailable() {
        let err = script_failure(
            AzurePowerShellCredential::builder(),
            "pwsh",
            "echo NO_AZ_ACCOUNT_MODULE",
            SCOPE,
        )
        .await;
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(
            err.message().contains("Install-Module Az.Accounts"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn tool_outputs_map_to_unavailable_with_the_fix() {
        let cases = [
            (0, "NO_AZ_ACCOUNT_MODULE\n", "", "Install-Module"),
            (
                1,
                "",
                "Get-AzAccessToken: Run Connect-AzAccount to login.",
                "`Connect-AzAccount -Tenant tid-1`",
            ),
            (
                1,
                "",
                "File cannot be loaded. AuthorizationManager check failed.",
                "execution policy",
            ),
            (127, "", "sh: pwsh: not found", "install PowerShell"),
            (1, "", "Something odd", "Get-AzAccessToken"),
        ];
        for (code, stdout, stderr, hint) in cases {
            let canned = Canned::output(code, stdout, stderr);
            let cred = with_canned(&canned).tenant_id("tid-1").build().unwrap();
            let err = cred.get_token(&[SCOPE], &opts()).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unavailable, "{stderr}");
            assert!(err.message().contains(hint), "{err}");
        }
    }

    #[tokio::test]
    async fn output_without_the_marker_is_an_authentication_failure() {
        for stdout in [
            "hello",
            "azsdk%only-two",
            "azsdk%T%soon",
            "azsdk%%1893492000",
            "azsdk%a%b%1",
        ] {
            let err = canned_failure::<AzurePowerShell>(SCOPE, 0, stdout, "").await;
            assert_eq!(err.kind(), ErrorKind::AuthenticationFailed, "{stdout}");
        }
    }

    #[tokio::test]
    async fn windows_uses_cmd_and_falls_back_to_windows_powershell() {
        let canned = Canned::new([
            Ok(Output::new(
                Some(1),
                "",
                "'pwsh' is not recognized as an internal or external command",
            )),
            Ok(Output::new(Some(0), "\r\nazsdk%T%1893492000\r\n", "")),
        ]);
        let cred = windows_builder::<AzurePowerShell>(&canned).build().unwrap();
        let token = cred.get_token(&[SCOPE], &opts()).await.unwrap();
        assert_eq!(token.token.secret(), "T");
        let seen = canned.seen();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].programs(), ["cmd"]);
        assert_eq!(seen[0].args()[0], "/c");
        assert!(seen[0].args()[1].starts_with("pwsh -NoProfile -NonInteractive -EncodedCommand "));
        assert!(seen[0].args()[1].ends_with(" & exit"));
        assert!(seen[1].args()[1].starts_with("powershell -NoProfile"));
    }

    #[tokio::test]
    async fn claims_suggest_connect_az_account_and_run_nothing() {
        let canned = Canned::new([]);
        let cred = with_canned(&canned).tenant_id("tid-1").build().unwrap();
        let err = cred
            .get_token(&[SCOPE], &opts().claims("{\"x\":1}"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        let expected = format!(
            "`Connect-AzAccount -ClaimsChallenge {} -Tenant tid-1`",
            encode_claims("{\"x\":1}")
        );
        assert!(err.message().contains(&expected), "{err}");
        assert!(canned.seen().is_empty());
    }

    #[tokio::test]
    async fn quotes_and_other_injection_never_reach_the_script() {
        let canned = Canned::new([]);
        let cred = with_canned(&canned)
            .additionally_allowed_tenants(["*"])
            .build()
            .unwrap();
        for scope in ["https://x/'; Remove-Item -Recurse C:\\; '", "a$(b)", "-x"] {
            let err = cred.get_token(&[scope], &opts()).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        }
        let err = cred
            .get_token(&[SCOPE], &opts().tenant_id("t'x"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(canned.seen().is_empty());
    }

    #[tokio::test]
    async fn a_planted_token_never_reaches_errors_or_debug() {
        let outputs = [
            Output::new(Some(0), format!("azsdk%{PLANTED}%soon"), ""),
            Output::new(
                Some(1),
                "",
                format!("failed near azsdk%{PLANTED}%1 and {PLANTED}"),
            ),
        ];
        assert_planted_outputs_hidden::<AzurePowerShell>(SCOPE, outputs).await;
        let canned = Canned::output(0, &format!("azsdk%{PLANTED}%1893492000"), "");
        let cred = with_canned(&canned).build().unwrap();
        let token = cred.get_token(&[SCOPE], &opts()).await.unwrap();
        assert_eq!(token.token.secret(), PLANTED);
        assert_hidden("planted", &[format!("{token:?}"), format!("{cred:?}")]);
    }
}
