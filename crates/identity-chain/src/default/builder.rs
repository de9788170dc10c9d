//! [`DefaultAzureCredentialBuilder`]: the chain's settings, and `build`.

use std::sync::Arc;
use std::time::Duration;

use identity_core::http::HttpClient;
use identity_core::{Error, Runtime};

use super::{AZURE_TOKEN_CREDENTIALS, DefaultAzureCredential, NAME, default_deadline};
use crate::ChainedTokenCredential;
use crate::chained::Member;
use crate::selection::{CredentialKind, Exclusions, Selection};

/// How the managed-identity member chooses its identity.
#[derive(Clone, Debug, Default)]
pub(super) enum ManagedIdentityChoice {
    /// `AZURE_CLIENT_ID` if set, else system-assigned.
    #[default]
    FromEnvironment,
    SystemAssigned,
    ClientId(String),
    ResourceId(String),
    ObjectId(String),
}

pub(super) type ConfigureManagedIdentity = Arc<
    dyn Fn(
            identity_msi::ManagedIdentityCredentialBuilder,
        ) -> identity_msi::ManagedIdentityCredentialBuilder
        + Send
        + Sync,
>;

/// Builds a [`DefaultAzureCredential`].
#[derive(Default)]
pub struct DefaultAzureCredentialBuilder {
    runtime: Runtime,
    pub(super) msi_http: Option<Arc<dyn HttpClient>>,
    exclusions: Exclusions,
    pub(super) managed_identity: ManagedIdentityChoice,
    pub(super) workload_client_id: Option<String>,
    pub(super) workload_tenant_id: Option<String>,
    pub(super) authority_host: Option<String>,
    pub(super) additionally_allowed_tenants: Vec<String>,
    pub(super) process_timeout: Option<Duration>,
    require_envvar: bool,
    pub(super) imds_endpoint: Option<String>,
    pub(super) configure_managed_identity: Option<ConfigureManagedIdentity>,
    deadline: Option<Duration>,
}

impl std::fmt::Debug for DefaultAzureCredentialBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DefaultAzureCredentialBuilder")
            .field("runtime", &self.runtime)
            .field(
                "managed_identity_http_client",
                &self.msi_http.as_ref().map(|_| "custom"),
            )
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
    /// The environment, clock, sleeper, HTTP client and request bounds of the whole chain
    /// (default [`Runtime::new`]: a snapshot of the process environment, the system clock, the
    /// tokio timer, and each member's own HTTP client: plain HTTP for managed identity, TLS
    /// for the Microsoft Entra members).
    ///
    /// `build` resolves it once (one environment snapshot) and hands that same value to every
    /// member, so they all read one environment and one clock. The runtime's HTTP client, when
    /// set, carries the requests of every member (Microsoft Entra ID over TLS, and managed
    /// identity), unless [`managed_identity_http_client`](Self::managed_identity_http_client)
    /// gives the managed-identity member one of its own. The developer tools use its
    /// environment and clock.
    ///
    /// ```
    /// use identity_chain::{DefaultAzureCredential, Env, Runtime};
    ///
    /// // A test: an environment of its own, with nothing taken from the process.
    /// let credential = DefaultAzureCredential::builder()
    ///     .runtime(Runtime::with_env(Env::from_pairs([("AZURE_TOKEN_CREDENTIALS", "dev")])))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(
    ///     credential.members(),
    ///     ["AzureCliCredential", "AzurePowerShellCredential", "AzureDeveloperCliCredential"]
    /// );
    /// ```
    #[must_use]
    pub fn runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = runtime;
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

    /// The HTTP client of the managed-identity member alone, the one transport setting of a
    /// single member: managed identity speaks plain HTTP to its host while the Entra members
    /// need TLS, so a chain that brings its own clients sets the TLS one on the runtime and
    /// this one here. Without it the member uses the runtime's client if one is set, else
    /// identity-msi's default plain-HTTP client; the Entra members never use this one.
    #[must_use]
    pub fn managed_identity_http_client(mut self, client: Arc<dyn HttpClient>) -> Self {
        self.msi_http = Some(client);
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
    /// [`ErrorKind::InvalidConfiguration`](identity_core::ErrorKind::InvalidConfiguration) for an invalid or (with `require_envvar`) missing
    /// `AZURE_TOKEN_CREDENTIALS`. A member that cannot be configured does not fail
    /// construction: it reports why when the chain reaches it.
    pub fn build(self) -> Result<DefaultAzureCredential, Error> {
        let runtime = self.runtime.clone().resolved();
        let env = runtime.env_snapshot();
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
                credential: self.member(kind, &runtime, probe),
                // A person's browser sign-in is never downgraded: its failure is the answer.
                downgrade_failures: !kind.is_production()
                    && kind != CredentialKind::InteractiveBrowser,
            })
            .collect();
        Ok(DefaultAzureCredential {
            chain: ChainedTokenCredential::sticky(NAME, members)
                .with_deadline(self.deadline.unwrap_or(default_deadline(&kinds))),
        })
    }
}
