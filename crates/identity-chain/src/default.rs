//! [`DefaultAzureCredential`]: one credential that works on a laptop, in CI and on Azure.
//!
//! # Members, in order
//! | # | credential | what it needs |
//! |---|---|---|
//! | 1 | `EnvironmentCredential` | `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET` or `AZURE_CLIENT_CERTIFICATE_PATH` |
//! | 2 | `WorkloadIdentityCredential` | `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID`, `AZURE_TENANT_ID` (AKS workload identity) |
//! | 3 | `ManagedIdentityCredential` | an Azure host (App Service, Functions, Container Apps, VM, AKS, Arc, Cloud Shell, Azure ML, Service Fabric) |
//! | 4 | `AzureCliCredential` | `az login` |
//! | 5 | `AzurePowerShellCredential` | `Connect-AzAccount` |
//! | 6 | `AzureDeveloperCliCredential` | `azd auth login` |
//! | 7 | `InteractiveBrowserCredential` | off by default; on with [`DefaultAzureCredentialBuilder::exclude_interactive_browser_credential`]`(false)`: a browser on this machine |
//!
//! An *unavailable* member moves the chain on; any other failure stops it. Inside this chain a
//! developer tool that fails for another reason (an expired login, garbage output) also moves
//! it on, as in the reference SDK. The first member that produces a token is remembered:
//! every later call goes straight to it ([`DefaultAzureCredential::selected_credential`] names
//! it).
//!
//! # `AZURE_TOKEN_CREDENTIALS`
//! `dev` keeps the developer tools (4–6), `prod` keeps 1–3, a credential's type name (any
//! case) keeps only that one. Any other value is a construction error listing the valid ones.
//! Explicit `exclude_*`/`include` calls on the builder win over the variable. With
//! `ManagedIdentityCredential` selected, managed identity runs without the IMDS probe and with
//! its full retry schedule.
//!
//! # Managed identity inside the chain
//! `managed_identity_client_id` defaults to `AZURE_CLIENT_ID`, so setting that variable makes
//! the managed-identity member ask for that user-assigned identity;
//! [`DefaultAzureCredentialBuilder::system_assigned_managed_identity`] forces the
//! system-assigned one. On a host that looks like a VM, the member first makes sure IMDS is
//! there (identity-msi's `imds` module has the rules):
//!
//! * a probe: connect within 1 s, so off Azure the chain moves on after about a second when
//!   the address is blackholed and at once when the connection is refused; the answer within
//!   10 s, so a busy VM whose IMDS takes a second or two still gives its token;
//! * an answer that is not Azure IMDS's (IMDS always answers with a JSON object: Docker
//!   Desktop's 403, another cloud's metadata service, a proxy's or gateway's HTML page) makes
//!   the member unavailable at once, with no retries;
//! * with `AZURE_POD_IDENTITY_AUTHORITY_HOST` set there is no probe, as in the reference; the
//!   first request is one attempt that must be answered within 20 s, so an endpoint that
//!   accepts connections and never answers cannot stall the chain.
//!
//! [`DefaultAzureCredentialBuilder::imds_endpoint`] points the probe and the token requests
//! at another address (tests point it at a loopback listener);
//! [`DefaultAzureCredentialBuilder::configure_managed_identity`] reaches every other setting of
//! the member, e.g. `host_files` for the Azure Arc agent check.
//!
//! # Opt-in: GitHub Actions
//! `GitHubActionsCredential` is not a member by default: the chain keeps the reference SDK's
//! members, and a CI credential that makes a request to GitHub in every process that happens
//! to run in a workflow would surprise. `AZURE_TOKEN_CREDENTIALS=GitHubActionsCredential` makes
//! it the only member (a CI job states that it wants it). `AzurePipelinesCredential` is not
//! selectable here: build it directly.
//!
//! # Not included
//! The reference SDK's shared token cache, Visual Studio Code and broker (WAM) members are out
//! of scope for this library: they need a desktop session's stores or a platform broker. Build a [`ChainedTokenCredential`](crate::ChainedTokenCredential) with your
//! own credential if you need one of them.

use std::sync::Arc;
use std::time::Duration;

use identity_core::http::HttpClient;
use identity_core::{
    AccessToken, BoxFuture, Clock, Env, Error, ErrorKind, Sleeper, TokenCredential,
    TokenRequestOptions,
};

use crate::chained::{Chain, Member};
use crate::selection::{CredentialKind, Exclusions, Selection};

const NAME: &str = "DefaultAzureCredential";

/// The variable whose presence `require_envvar` demands.
pub use crate::selection::AZURE_TOKEN_CREDENTIALS;

/// The standard credential chain. See the [module docs](self).
///
/// ```no_run
/// # async fn demo() -> Result<(), identity_chain::Error> {
/// use identity_chain::{DefaultAzureCredential, TokenCredential, TokenRequestOptions};
///
/// let credential = DefaultAzureCredential::new()?;
/// let token = credential
///     .get_token(&["https://storage.azure.com/.default"], &TokenRequestOptions::default())
///     .await?;
/// println!("token from {:?}, expires {:?}", credential.selected_credential(), token.expires_on);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DefaultAzureCredential {
    chain: Chain,
}

impl DefaultAzureCredential {
    /// The chain configured from the process environment.
    ///
    /// # Errors
    /// An invalid `AZURE_TOKEN_CREDENTIALS`, or a member whose configuration is invalid.
    pub fn new() -> Result<Self, Error> {
        Self::builder().build()
    }

    /// A builder.
    pub fn builder() -> DefaultAzureCredentialBuilder {
        DefaultAzureCredentialBuilder::default()
    }

    /// The type name of the member that produced a token, once one has.
    pub fn selected_credential(&self) -> Option<&'static str> {
        self.chain.selected().map(TokenCredential::name)
    }

    /// The members this chain tries, in order.
    pub fn members(&self) -> Vec<&'static str> {
        self.chain
            .members
            .iter()
            .map(|m| m.credential.name())
            .collect()
    }

    async fn fetch(
        &self,
        scopes: &[&str],
        options: &TokenRequestOptions,
    ) -> Result<AccessToken, Error> {
        self.chain.get_token(scopes, options).await
    }
}

impl TokenCredential for DefaultAzureCredential {
    fn get_token<'a>(
        &'a self,
        scopes: &'a [&'a str],
        options: &'a TokenRequestOptions,
    ) -> BoxFuture<'a, Result<AccessToken, Error>> {
        identity_core::trace::traced(NAME, "chain", self.fetch(scopes, options))
    }

    fn name(&self) -> &'static str {
        NAME
    }

    /// The chosen member's entry, once a member has produced a token.
    fn cache_slot(
        &self,
        scopes: &[&str],
        options: &TokenRequestOptions,
    ) -> Option<identity_core::cache::CacheSlot> {
        self.chain.cache_slot(scopes, options)
    }
}

/// How the managed-identity member chooses its identity.
#[derive(Clone, Debug, Default)]
enum ManagedIdentityChoice {
    /// `AZURE_CLIENT_ID` if set, else system-assigned.
    #[default]
    FromEnvironment,
    SystemAssigned,
    ClientId(String),
    ResourceId(String),
    ObjectId(String),
}

type ConfigureManagedIdentity = Arc<
    dyn Fn(
            identity_msi::ManagedIdentityCredentialBuilder,
        ) -> identity_msi::ManagedIdentityCredentialBuilder
        + Send
        + Sync,
>;

/// Builds a [`DefaultAzureCredential`].
#[derive(Default)]
pub struct DefaultAzureCredentialBuilder {
    env: Option<Env>,
    clock: Option<Arc<dyn Clock>>,
    sleeper: Option<Arc<dyn Sleeper>>,
    msi_http: Option<Arc<dyn HttpClient>>,
    https: Option<Arc<dyn HttpClient>>,
    exclusions: Exclusions,
    managed_identity: ManagedIdentityChoice,
    workload_client_id: Option<String>,
    workload_tenant_id: Option<String>,
    authority_host: Option<String>,
    additionally_allowed_tenants: Vec<String>,
    process_timeout: Option<Duration>,
    require_envvar: bool,
    imds_endpoint: Option<String>,
    configure_managed_identity: Option<ConfigureManagedIdentity>,
    deadline: Option<Duration>,
}

impl std::fmt::Debug for DefaultAzureCredentialBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DefaultAzureCredentialBuilder")
            .field("env", &self.env)
            .field("exclusions", &self.exclusions)
            .field("managed_identity", &self.managed_identity)
            .field("workload_client_id", &self.workload_client_id)
            .field("workload_tenant_id", &self.workload_tenant_id)
            .field("authority_host", &self.authority_host)
            .field(
                "additionally_allowed_tenants",
                &self.additionally_allowed_tenants,
            )
            .field("process_timeout", &self.process_timeout)
            .field("require_envvar", &self.require_envvar)
            .field("imds_endpoint", &self.imds_endpoint)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl DefaultAzureCredentialBuilder {
    /// Reads configuration from `env` instead of a snapshot of the process environment.
    #[must_use]
    pub fn env(mut self, env: Env) -> Self {
        self.env = Some(env);
        self
    }

    /// The overall deadline of one `get_token` (default
    /// [`DEFAULT_CHAIN_DEADLINE`](crate::DEFAULT_CHAIN_DEADLINE), 120 s). A member before the
    /// last gets at most half of what is left of it and is skipped as *unavailable* when its
    /// share ends; each member also keeps its own deadline.
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The clock every member reads.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The sleeper every member waits with between retries.
    #[must_use]
    pub fn sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> Self {
        self.sleeper = Some(sleeper);
        self
    }

    /// The plain-HTTP client for managed identity.
    #[must_use]
    pub fn managed_identity_http_client(mut self, client: Arc<dyn HttpClient>) -> Self {
        self.msi_http = Some(client);
        self
    }

    /// The HTTPS client for Microsoft Entra ID (environment and workload identity members).
    #[must_use]
    pub fn http_client(mut self, client: Arc<dyn HttpClient>) -> Self {
        self.https = Some(client);
        self
    }

    /// Excludes (`true`) or explicitly includes (`false`) a member; wins over
    /// `AZURE_TOKEN_CREDENTIALS`.
    #[must_use]
    pub fn exclude(mut self, kind: CredentialKind, exclude: bool) -> Self {
        self.exclusions.set(kind, exclude);
        self
    }

    /// Excludes `EnvironmentCredential`.
    #[must_use]
    pub fn exclude_environment_credential(self, exclude: bool) -> Self {
        self.exclude(CredentialKind::Environment, exclude)
    }

    /// Excludes `WorkloadIdentityCredential`.
    #[must_use]
    pub fn exclude_workload_identity_credential(self, exclude: bool) -> Self {
        self.exclude(CredentialKind::WorkloadIdentity, exclude)
    }

    /// Excludes `ManagedIdentityCredential`.
    #[must_use]
    pub fn exclude_managed_identity_credential(self, exclude: bool) -> Self {
        self.exclude(CredentialKind::ManagedIdentity, exclude)
    }

    /// Excludes `AzureCliCredential`.
    #[must_use]
    pub fn exclude_cli_credential(self, exclude: bool) -> Self {
        self.exclude(CredentialKind::AzureCli, exclude)
    }

    /// Excludes `AzurePowerShellCredential`.
    #[must_use]
    pub fn exclude_powershell_credential(self, exclude: bool) -> Self {
        self.exclude(CredentialKind::AzurePowerShell, exclude)
    }

    /// Excludes `AzureDeveloperCliCredential`.
    #[must_use]
    pub fn exclude_developer_cli_credential(self, exclude: bool) -> Self {
        self.exclude(CredentialKind::AzureDeveloperCli, exclude)
    }

    /// The user-assigned managed identity to use, by client id (default: `AZURE_CLIENT_ID`).
    #[must_use]
    pub fn managed_identity_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.managed_identity = ManagedIdentityChoice::ClientId(client_id.into());
        self
    }

    /// The user-assigned managed identity to use, by Azure resource id.
    #[must_use]
    pub fn managed_identity_resource_id(mut self, resource_id: impl Into<String>) -> Self {
        self.managed_identity = ManagedIdentityChoice::ResourceId(resource_id.into());
        self
    }

    /// The user-assigned managed identity to use, by object (principal) id.
    #[must_use]
    pub fn managed_identity_object_id(mut self, object_id: impl Into<String>) -> Self {
        self.managed_identity = ManagedIdentityChoice::ObjectId(object_id.into());
        self
    }

    /// Uses the system-assigned managed identity even when `AZURE_CLIENT_ID` is set.
    #[must_use]
    pub fn system_assigned_managed_identity(mut self) -> Self {
        self.managed_identity = ManagedIdentityChoice::SystemAssigned;
        self
    }

    /// The workload identity's client id (default: the managed identity client id, i.e.
    /// `AZURE_CLIENT_ID`).
    #[must_use]
    pub fn workload_identity_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.workload_client_id = Some(client_id.into());
        self
    }

    /// The workload identity's tenant (default: `AZURE_TENANT_ID`).
    #[must_use]
    pub fn workload_identity_tenant_id(mut self, tenant_id: impl Into<String>) -> Self {
        self.workload_tenant_id = Some(tenant_id.into());
        self
    }

    /// The Entra authority host for `EnvironmentCredential` (default: `AZURE_AUTHORITY_HOST`
    /// or the public cloud).
    #[must_use]
    pub fn authority_host(mut self, host: impl Into<String>) -> Self {
        self.authority_host = Some(host.into());
        self
    }

    /// Tenants other than the configured one that `get_token` may ask for (`*` for any).
    #[must_use]
    pub fn additionally_allowed_tenants(
        mut self,
        tenants: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.additionally_allowed_tenants = tenants.into_iter().map(Into::into).collect();
        self
    }

    /// How long `az`, `pwsh` and `azd` may run (default 10 s).
    #[must_use]
    pub fn process_timeout(mut self, timeout: Duration) -> Self {
        self.process_timeout = Some(timeout);
        self
    }

    /// Fails construction unless `AZURE_TOKEN_CREDENTIALS` is set, so a deployment states which
    /// credentials it expects.
    #[must_use]
    pub fn require_envvar(mut self, require: bool) -> Self {
        self.require_envvar = require;
        self
    }

    /// Points the managed-identity member's IMDS requests, **the probe included**, at another
    /// token URL (default `http://169.254.169.254/metadata/identity/oauth2/token`): what a test
    /// or benchmark uses to stand a loopback listener in for the IMDS address. Unlike
    /// `AZURE_POD_IDENTITY_AUTHORITY_HOST`, it keeps the probe on.
    #[must_use]
    pub fn imds_endpoint(mut self, url: impl Into<String>) -> Self {
        self.imds_endpoint = Some(url.into());
        self
    }

    /// Adjusts the managed-identity member's builder after the chain has configured it (for
    /// example its timeout, or the Azure Arc key directory).
    ///
    /// ```
    /// use std::time::Duration;
    /// use identity_chain::DefaultAzureCredential;
    /// let credential = DefaultAzureCredential::builder()
    ///     .configure_managed_identity(|b| b.timeout(Duration::from_secs(5)))
    ///     .build();
    /// # let _ = credential;
    /// ```
    #[must_use]
    pub fn configure_managed_identity(
        mut self,
        configure: impl Fn(
            identity_msi::ManagedIdentityCredentialBuilder,
        ) -> identity_msi::ManagedIdentityCredentialBuilder
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.configure_managed_identity = Some(Arc::new(configure));
        self
    }

    /// Whether to leave out `InteractiveBrowserCredential`, the last member (default `true`:
    /// left out). With `false`, when every other member fails and `AZURE_TOKEN_CREDENTIALS`
    /// keeps the developer members, the chain opens the browser for the user to sign in
    /// (tenant `organizations`, the developer sign-on client id, the chain's authority host
    /// and allowed tenants), and the default [`deadline`](Self::deadline) grows by the
    /// browser's 5-minute timeout.
    #[must_use]
    pub fn exclude_interactive_browser_credential(mut self, exclude: bool) -> Self {
        self.exclusions
            .set(CredentialKind::InteractiveBrowser, exclude);
        self
    }

    /// Builds the chain.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidConfiguration`] for an invalid or (with `require_envvar`) missing
    /// `AZURE_TOKEN_CREDENTIALS`. A member that cannot be configured does not fail
    /// construction: it reports why when the chain reaches it.
    pub fn build(self) -> Result<DefaultAzureCredential, Error> {
        let env = self.env.clone().unwrap_or_else(Env::from_process);
        if self.require_envvar && env.non_blank(AZURE_TOKEN_CREDENTIALS).is_none() {
            return Err(Error::invalid_configuration(
                NAME,
                format!(
                    "{AZURE_TOKEN_CREDENTIALS} must be set (require_envvar is on); valid values are {}",
                    crate::selection::valid_values()
                ),
            ));
        }
        let selection = Selection::from_env(&env)?;
        let kinds = self.exclusions.members(selection);
        let probe = selection != Selection::Only(CredentialKind::ManagedIdentity);
        let members: Vec<Member> = kinds
            .iter()
            .map(|&kind| Member {
                credential: self.member(kind, &env, probe),
                // A person's browser sign-in is never downgraded: its failure is the answer.
                downgrade_failures: !kind.is_production()
                    && kind != CredentialKind::InteractiveBrowser,
            })
            .collect();
        Ok(DefaultAzureCredential {
            chain: Chain::new(NAME, members, true)
                .with_deadline(self.deadline.unwrap_or(default_deadline(&kinds))),
        })
    }

    fn member(&self, kind: CredentialKind, env: &Env, probe: bool) -> Arc<dyn TokenCredential> {
        let built = match kind {
            CredentialKind::Environment => self.environment(env),
            CredentialKind::WorkloadIdentity => self.workload_identity(env),
            CredentialKind::ManagedIdentity => self.managed_identity(env, probe),
            CredentialKind::AzureCli => self.azure_cli(env),
            CredentialKind::AzurePowerShell => self.azure_powershell(env),
            CredentialKind::AzureDeveloperCli => self.azure_developer_cli(env),
            CredentialKind::GitHubActions => self.github_actions(env),
            CredentialKind::InteractiveBrowser => Ok(self.interactive_browser(env)),
        };
        built.unwrap_or_else(|error| {
            // Reported when the chain reaches the member: a workload identity that is not
            // configured is merely unavailable; other members keep their error's kind.
            let error = if kind == CredentialKind::WorkloadIdentity
                && error.kind() == ErrorKind::InvalidConfiguration
            {
                error.with_kind(ErrorKind::Unavailable)
            } else {
                error
            };
            Arc::new(Misconfigured {
                name: kind.type_name(),
                error,
            })
        })
    }

    fn managed_identity_choice(&self, env: &Env) -> ManagedIdentityChoice {
        match &self.managed_identity {
            ManagedIdentityChoice::FromEnvironment => env
                .non_empty("AZURE_CLIENT_ID")
                .map_or(ManagedIdentityChoice::SystemAssigned, |id| {
                    ManagedIdentityChoice::ClientId(id.to_owned())
                }),
            other => other.clone(),
        }
    }

    /// The runtime of the Entra members: `env` and the builder's clock, sleeper and HTTPS
    /// client.
    fn entra_runtime(&self, env: &Env) -> identity_core::Runtime {
        let mut runtime = identity_core::Runtime::with_env(env.clone());
        if let Some(clock) = &self.clock {
            runtime = runtime.clock(clock.clone());
        }
        if let Some(sleeper) = &self.sleeper {
            runtime = runtime.sleeper(sleeper.clone());
        }
        if let Some(http) = &self.https {
            runtime = runtime.http_client(http.clone());
        }
        runtime
    }

    fn environment(&self, env: &Env) -> Result<Arc<dyn TokenCredential>, Error> {
        let mut b = identity_entra::EnvironmentCredential::builder()
            .runtime(self.entra_runtime(env))
            .additionally_allowed_tenants(self.additionally_allowed_tenants.clone());
        if let Some(host) = &self.authority_host {
            b = b.authority_host(host.clone());
        }
        Ok(Arc::new(b.build()?))
    }

    fn github_actions(&self, env: &Env) -> Result<Arc<dyn TokenCredential>, Error> {
        let mut b = identity_entra::GitHubActionsCredential::builder()
            .runtime(self.entra_runtime(env))
            .additionally_allowed_tenants(self.additionally_allowed_tenants.clone());
        if let Some(host) = &self.authority_host {
            b = b.authority_host(host.clone());
        }
        Ok(Arc::new(b.build()?))
    }

    fn workload_identity(&self, env: &Env) -> Result<Arc<dyn TokenCredential>, Error> {
        let mut b = identity_entra::WorkloadIdentityCredential::builder()
            .runtime(self.entra_runtime(env))
            .additionally_allowed_tenants(self.additionally_allowed_tenants.clone());
        let client_id =
            self.workload_client_id
                .clone()
                .or_else(|| match self.managed_identity_choice(env) {
                    ManagedIdentityChoice::ClientId(id) => Some(id),
                    _ => None,
                });
        if let Some(id) = client_id {
            b = b.client_id(id);
        }
        if let Some(tenant) = &self.workload_tenant_id {
            b = b.tenant_id(tenant.clone());
        }
        Ok(Arc::new(b.build()?))
    }

    fn managed_identity(&self, env: &Env, probe: bool) -> Result<Arc<dyn TokenCredential>, Error> {
        Ok(Arc::new(self.managed_identity_builder(env, probe).build()?))
    }

    fn managed_identity_builder(
        &self,
        env: &Env,
        probe: bool,
    ) -> identity_msi::ManagedIdentityCredentialBuilder {
        let mut runtime = identity_core::Runtime::with_env(env.clone());
        if let Some(clock) = &self.clock {
            runtime = runtime.clock(clock.clone());
        }
        if let Some(sleeper) = &self.sleeper {
            runtime = runtime.sleeper(sleeper.clone());
        }
        if let Some(http) = &self.msi_http {
            runtime = runtime.http_client(http.clone());
        }
        let mut b = identity_msi::ManagedIdentityCredential::builder()
            .runtime(runtime)
            .within_default_chain(probe);
        b = match self.managed_identity_choice(env) {
            ManagedIdentityChoice::FromEnvironment | ManagedIdentityChoice::SystemAssigned => b,
            ManagedIdentityChoice::ClientId(id) => b.client_id(id),
            ManagedIdentityChoice::ResourceId(id) => b.resource_id(id),
            ManagedIdentityChoice::ObjectId(id) => b.object_id(id),
        };
        if let Some(url) = &self.imds_endpoint {
            b = b.imds_endpoint(url.clone());
        }
        match &self.configure_managed_identity {
            Some(configure) => configure(b),
            None => b,
        }
    }

    fn interactive_browser(&self, env: &Env) -> Arc<dyn TokenCredential> {
        let mut b = identity_entra::InteractiveBrowserCredential::builder()
            .runtime(self.entra_runtime(env))
            .additionally_allowed_tenants(self.additionally_allowed_tenants.clone());
        if let Some(host) = &self.authority_host {
            b = b.authority_host(host.clone());
        }
        match b.build() {
            Ok(credential) => Arc::new(credential),
            Err(error) => Arc::new(Misconfigured {
                name: "InteractiveBrowserCredential",
                error,
            }),
        }
    }

    /// A developer-tool member, with the chain's environment, clock, allowed tenants and
    /// process timeout.
    fn developer_tool<T: identity_dev::DeveloperTool>(
        &self,
        env: &Env,
    ) -> Result<Arc<dyn TokenCredential>, Error> {
        let mut runtime = identity_core::Runtime::with_env(env.clone());
        if let Some(clock) = &self.clock {
            runtime = runtime.clock(clock.clone());
        }
        let mut b = identity_dev::DeveloperToolCredential::<T>::builder()
            .runtime(runtime)
            .additionally_allowed_tenants(self.additionally_allowed_tenants.clone());
        if let Some(timeout) = self.process_timeout {
            b = b.process_timeout(timeout);
        }
        Ok(Arc::new(b.build()?))
    }

    fn azure_cli(&self, env: &Env) -> Result<Arc<dyn TokenCredential>, Error> {
        self.developer_tool::<identity_dev::AzureCli>(env)
    }

    fn azure_powershell(&self, env: &Env) -> Result<Arc<dyn TokenCredential>, Error> {
        self.developer_tool::<identity_dev::AzurePowerShell>(env)
    }

    fn azure_developer_cli(&self, env: &Env) -> Result<Arc<dyn TokenCredential>, Error> {
        self.developer_tool::<identity_dev::AzureDeveloperCli>(env)
    }
}

/// Stands in for a member whose configuration failed, reporting the failure when reached.
#[derive(Debug)]
struct Misconfigured {
    name: &'static str,
    error: Error,
}

impl TokenCredential for Misconfigured {
    fn get_token<'a>(
        &'a self,
        _scopes: &'a [&'a str],
        _options: &'a TokenRequestOptions,
    ) -> BoxFuture<'a, Result<AccessToken, Error>> {
        let error = self.error.clone().with_credential(self.name);
        Box::pin(async move { Err(error) })
    }

    fn name(&self) -> &'static str {
        self.name
    }
}

/// The default chain's spans: its own, the winning member's nested inside it, and the log line
/// of the remembered member on later calls.
/// The chain's deadline when the caller set none: [`DEFAULT_CHAIN_DEADLINE`](crate::DEFAULT_CHAIN_DEADLINE),
/// plus the browser sign-in's own timeout (5 minutes) when the interactive member is on, since
/// a person signing in needs more than the default leaves.
fn default_deadline(kinds: &[CredentialKind]) -> Duration {
    let mut deadline = crate::DEFAULT_CHAIN_DEADLINE;
    if kinds.contains(&CredentialKind::InteractiveBrowser) {
        deadline += identity_entra::user::interactive_browser::DEFAULT_TIMEOUT;
    }
    deadline
}

#[cfg(test)]
mod span_tests {
    use super::*;
    use identity_core::test_util::{Capture, FakeClock, RecordingSleeper};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const PLANTED_TOKEN: &str = "planted-default-chain-token";
    const PLANTED_HEADER: &str = "planted-identity-header";

    /// A local App Service endpoint answering every request with one token.
    async fn app_service_endpoint() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buffer = vec![0u8; 8192];
                let _ = stream.read(&mut buffer).await;
                let body = format!(
                    r#"{{"access_token":"{PLANTED_TOKEN}","expires_on":"{}","resource":"https://vault.azure.net","token_type":"Bearer"}}"#,
                    1_893_456_000 + 3600
                );
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            }
        });
        format!("http://{address}/msi/token")
    }

    #[tokio::test]
    async fn the_default_chain_nests_the_winner_span_and_logs_the_remembered_member() {
        let clock = FakeClock::at_2030();
        let credential = DefaultAzureCredential::builder()
            .env(Env::from_pairs([
                ("IDENTITY_ENDPOINT", app_service_endpoint().await),
                ("IDENTITY_HEADER", PLANTED_HEADER.to_owned()),
            ]))
            .clock(clock.shared())
            .sleeper(RecordingSleeper::advancing(clock).shared())
            .exclude_environment_credential(true)
            .exclude_workload_identity_credential(true)
            .exclude_cli_credential(true)
            .exclude_powershell_credential(true)
            .exclude_developer_cli_credential(true)
            .build()
            .unwrap();
        let capture = Capture::new();
        {
            let _guard = capture.enter();
            for _ in 0..2 {
                tokio::time::timeout(
                    Duration::from_secs(30),
                    credential.get_token(
                        &["https://vault.azure.net/.default"],
                        &TokenRequestOptions::default(),
                    ),
                )
                .await
                .expect("the call ends")
                .unwrap();
            }
        }
        let spans: Vec<_> = capture
            .spans_named("get_token")
            .iter()
            .map(|s| {
                (
                    s.field("credential").unwrap_or("").to_owned(),
                    s.field("source").unwrap_or("").to_owned(),
                    s.field("cache").unwrap_or("").to_owned(),
                    s.field("outcome").unwrap_or("").to_owned(),
                )
            })
            .collect();
        let row =
            |c: &str, s: &str, k: &str| (c.to_owned(), s.to_owned(), k.to_owned(), "ok".to_owned());
        assert_eq!(
            spans,
            [
                row("DefaultAzureCredential", "chain", ""),
                row("ManagedIdentityCredential", "app_service", "fetch"),
                row("DefaultAzureCredential", "chain", ""),
                row("ManagedIdentityCredential", "app_service", "hit"),
            ],
            "{}",
            capture.text()
        );
        let events = capture.events();
        assert!(events.iter().any(|e| {
            e.field("message") == Some("credential produced a token")
                && e.field("credential") == Some("ManagedIdentityCredential")
        }));
        assert!(events.iter().any(|e| {
            e.field("message") == Some("using the credential that produced the first token")
                && e.spans == ["get_token"]
        }));
        capture.assert_absent(PLANTED_TOKEN);
        capture.assert_absent(PLANTED_HEADER);
    }

    #[test]
    fn the_interactive_browser_member_comes_last_only_when_asked_for() {
        let build = |env: Env, exclude: Option<bool>| {
            let mut b = DefaultAzureCredential::builder().env(env);
            if let Some(exclude) = exclude {
                b = b.exclude_interactive_browser_credential(exclude);
            }
            b.build().unwrap().members()
        };
        let browser = "InteractiveBrowserCredential";
        assert!(!build(Env::empty(), None).contains(&browser));
        assert!(!build(Env::empty(), Some(true)).contains(&browser));
        let members = build(Env::empty(), Some(false));
        assert_eq!(members.len(), 7);
        assert_eq!(members.last(), Some(&browser));
        let dev = build(
            Env::from_pairs([(AZURE_TOKEN_CREDENTIALS, "dev")]),
            Some(false),
        );
        assert_eq!(dev.last(), Some(&browser));
        // An explicit `false` wins over the variable, as for every member.
        let prod = build(
            Env::from_pairs([(AZURE_TOKEN_CREDENTIALS, "prod")]),
            Some(false),
        );
        assert_eq!(prod.last(), Some(&browser));
        assert!(
            !build(Env::from_pairs([(AZURE_TOKEN_CREDENTIALS, "prod")]), None).contains(&browser)
        );
        // Named by the variable, it is the only member.
        let named = build(
            Env::from_pairs([(AZURE_TOKEN_CREDENTIALS, "InteractiveBrowserCredential")]),
            None,
        );
        assert_eq!(named, [browser]);
    }

    #[test]
    fn the_interactive_member_extends_the_default_deadline_by_its_sign_in_timeout() {
        let deadline = |exclude: bool| {
            DefaultAzureCredential::builder()
                .env(Env::empty())
                .exclude_interactive_browser_credential(exclude)
                .build()
                .unwrap()
                .chain
                .deadline()
        };
        assert_eq!(deadline(true), crate::DEFAULT_CHAIN_DEADLINE);
        assert_eq!(
            deadline(false),
            crate::DEFAULT_CHAIN_DEADLINE + Duration::from_secs(5 * 60)
        );
        // An explicit deadline is kept as given.
        let explicit = DefaultAzureCredential::builder()
            .env(Env::empty())
            .exclude_interactive_browser_credential(false)
            .deadline(Duration::from_secs(30))
            .build()
            .unwrap();
        assert_eq!(explicit.chain.deadline(), Duration::from_secs(30));
    }
}
