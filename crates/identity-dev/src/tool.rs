//! What differs between the developer tools, as the shared credential sees it: how a tool is
//! named and signed in to ([`Tool`]), and how a request becomes a command, an output a token
//! ([`ToolSpec`]).

use identity_core::{AccessToken, BoxFuture, Error};

use crate::output;
use crate::process::{self, Command, Output};
use crate::settings::Resolved;

/// How a tool is named in messages, installed and signed in to.
#[derive(Clone, Copy, Debug)]
pub struct Tool {
    pub(crate) credential: &'static str,
    /// The `source` of the `get_token` span, e.g. "az".
    pub(crate) source: &'static str,
    /// e.g. "the Azure CLI"
    pub(crate) display: &'static str,
    /// How to install the tool, e.g. "install it from <https://aka.ms/azure-cli>".
    pub(crate) install: &'static str,
    /// The sign-in command, e.g. "az login".
    pub(crate) login: &'static str,
    /// How the sign-in command takes a tenant, e.g. " --tenant ".
    pub(crate) tenant_flag: &'static str,
}

impl Tool {
    /// `az`.
    pub(crate) const AZURE_CLI: Tool = Tool {
        credential: "AzureCliCredential",
        source: "az",
        display: "the Azure CLI",
        install: "install it from https://aka.ms/azure-cli and run `az login`",
        login: "az login",
        tenant_flag: " --tenant ",
    };

    /// `pwsh`, with the `Az.Accounts` module.
    pub(crate) const AZURE_POWERSHELL: Tool = Tool {
        credential: "AzurePowerShellCredential",
        source: "pwsh",
        display: "Azure PowerShell",
        install: "install PowerShell from https://aka.ms/install-powershell, then run \
                  `Install-Module Az.Accounts -Scope CurrentUser` and `Connect-AzAccount`",
        login: "Connect-AzAccount",
        tenant_flag: " -Tenant ",
    };

    /// `azd`.
    pub(crate) const AZURE_DEVELOPER_CLI: Tool = Tool {
        credential: "AzureDeveloperCliCredential",
        source: "azd",
        display: "the Azure Developer CLI (azd)",
        install: "install it from https://aka.ms/azd-install and run `azd auth login`",
        login: "azd auth login",
        tenant_flag: " --tenant-id ",
    };

    /// The exact sign-in command, with the tenant when one is known.
    fn login_command(&self, tenant: Option<&str>) -> String {
        match tenant {
            Some(t) => format!("`{}{}{t}`", self.login, self.tenant_flag),
            None => format!("`{}`", self.login),
        }
    }

    pub(crate) fn not_installed(&self) -> Error {
        Error::unavailable(
            self.credential,
            format!(
                "{} is not installed or not on PATH; {}",
                self.display, self.install
            ),
        )
    }

    pub(crate) fn not_logged_in(&self, tenant: Option<&str>) -> Error {
        Error::unavailable(
            self.credential,
            format!(
                "{} is not signed in; run {} and try again",
                self.display,
                self.login_command(tenant)
            ),
        )
    }

    /// Gives `command` what every tool runs with: the working directory (`/bin`, or
    /// `%SYSTEMROOT%` on Windows), the injected environment with colour off, the timeout.
    pub(crate) fn prepare(&self, config: &Resolved, command: Command) -> Result<Command, Error> {
        let cwd = config
            .platform
            .working_dir(&config.env)
            .map_err(|e| self.run_error(e))?;
        Ok(command
            .env(process::child_env(&config.env))
            .current_dir(cwd)
            .timeout(config.process_timeout))
    }

    /// Runs `command` on the configured executor, mapping a runner failure to this tool's
    /// error.
    pub(crate) async fn execute(
        &self,
        config: &Resolved,
        command: Command,
    ) -> Result<Output, Error> {
        config
            .executor
            .run(command)
            .await
            .map_err(|e| self.run_error(e))
    }

    /// Maps a runner failure to this tool's error.
    pub(crate) fn run_error(&self, error: process::RunError) -> Error {
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
    pub(crate) fn failed(&self, output: &Output) -> Error {
        let text = if output.stderr().trim().is_empty() {
            output.stdout()
        } else {
            output.stderr()
        };
        let excerpt = output::scrub(text);
        Error::authentication_failed(
            self.credential,
            if excerpt.is_empty() {
                format!(
                    "{} failed (exit {}) without a message",
                    self.display,
                    exit(output)
                )
            } else {
                format!("{} failed (exit {}): {excerpt}", self.display, exit(output))
            },
        )
    }

    /// The tool answered, but not with a token.
    pub(crate) fn unexpected(&self, stdout: &str) -> Error {
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

/// How a process ended, for messages: `code 1`, or `a signal`.
pub(crate) fn exit(output: &Output) -> String {
    output
        .code()
        .map_or_else(|| "a signal".to_owned(), |c| format!("code {c}"))
}

/// `flag value` for every value: `--scope A --scope B`, or nothing for `None`.
pub(crate) fn flagged<'a>(
    flag: &'a str,
    values: impl IntoIterator<Item = &'a str> + 'a,
) -> impl Iterator<Item = &'a str> + 'a {
    values.into_iter().flat_map(move |value| [flag, value])
}

/// `command` with `args` appended.
pub(crate) fn with_args<'a>(command: Command, args: impl IntoIterator<Item = &'a str>) -> Command {
    args.into_iter().fold(command, Command::arg)
}

/// One token request, validated, as a tool takes it.
#[derive(Clone, Debug)]
pub struct Request {
    /// The resource (`az`, PowerShell) or the scopes (`azd`).
    pub(crate) targets: Vec<String>,
    /// The tenant, already checked.
    pub(crate) tenant: Option<String>,
    /// A claims challenge, base64-encoded, for the tools that take one.
    pub(crate) claims: Option<String>,
}

impl Request {
    /// `fixed`, then `target_flag X` for every target and `tenant_flag T` for the tenant: the
    /// command line shape `az` and `azd` share.
    pub(crate) fn argv<'a>(
        &'a self,
        fixed: &[&'a str],
        target_flag: &'a str,
        tenant_flag: &'a str,
    ) -> Vec<&'a str> {
        let targets = self.targets.iter().map(String::as_str);
        let mut argv = fixed.to_vec();
        argv.extend(flagged(target_flag, targets));
        argv.extend(flagged(tenant_flag, self.tenant.as_deref()));
        argv
    }
}

/// A developer tool a [`DeveloperToolCredential`](crate::DeveloperToolCredential) can run:
/// [`AzureCli`](crate::AzureCli), [`AzurePowerShell`](crate::AzurePowerShell) or
/// [`AzureDeveloperCli`](crate::AzureDeveloperCli). Sealed: the tools are this crate's.
pub trait DeveloperTool: sealed::ToolSpec {}

impl<T: sealed::ToolSpec> DeveloperTool for T {}

pub(crate) use sealed::ToolSpec;

/// A tool's run: its output, or the error a runner failure means.
pub(crate) type Run<'a> = BoxFuture<'a, Result<Output, Error>>;

mod sealed {
    use super::{AccessToken, Command, Error, Output, Request, Resolved, Run, Tool};

    /// The tool-specific half of a developer-tool credential; the shared half (scope and
    /// tenant checks, the cache, the process run, tracing) is `DeveloperToolCredential`'s.
    pub trait ToolSpec: Clone + Default + std::fmt::Debug + Send + Sync + 'static {
        /// Names and sign-in commands.
        const TOOL: Tool;

        /// Checks the tool's own options at `build`.
        fn check(&self) -> Result<(), Error> {
            Ok(())
        }

        /// The identity the token cache keys on.
        fn cache_identity(&self) -> String {
            Self::TOOL.credential.to_owned()
        }

        /// Writes the tool's own options into the credential's `Debug`.
        fn debug_fields(&self, _fields: &mut std::fmt::DebugStruct<'_, '_>) {}

        /// What the tool is asked for: by default the one resource the single scope names.
        fn targets(scopes: &[&str]) -> Result<Vec<String>, Error> {
            let resource = identity_core::scope::scopes_to_resource(Self::TOOL.credential, scopes)?;
            Ok(vec![resource.to_owned()])
        }

        /// A claims challenge, base64-encoded for the tool, or the error telling the user
        /// what to run instead (`tenant` already resolved).
        fn claims(claims: &str, scopes: &[&str], tenant: Option<&str>) -> Result<String, Error>;

        /// The command line for `request`, before [`Tool::prepare`].
        fn command(&self, config: &Resolved, request: &Request) -> Result<Command, Error>;

        /// Runs the command; a tool that needs a retry or a fallback program overrides it.
        fn run<'a>(&'a self, config: &'a Resolved, request: &'a Request) -> Run<'a> {
            Box::pin(async move {
                let command = Self::TOOL.prepare(config, self.command(config, request)?)?;
                Self::TOOL.execute(config, command).await
            })
        }

        /// `Ok` when the output holds a token to parse, else the error it means.
        fn classify(output: &Output, tenant: Option<&str>) -> Result<(), Error>;

        /// The token in a successful output.
        fn parse(&self, config: &Resolved, stdout: &str) -> Result<AccessToken, Error>;
    }
}
