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
//! # One runtime for the whole chain
//! [`DefaultAzureCredentialBuilder::runtime`] takes one [`Runtime`](crate::Runtime): the
//! environment, clock, sleeper, HTTP client and request bounds. `build` resolves it once (one
//! snapshot of the environment) and hands that same value to every member, so the members
//! cannot disagree about the environment or the time. A test gives the chain an environment
//! of its own with [`Runtime::with_env`](crate::Runtime::with_env) and a fake clock with
//! `Runtime::with_env(env).clock(...)`; nothing reads the process environment then. A
//! runtime's HTTP client carries every member's requests unless
//! [`DefaultAzureCredentialBuilder::managed_identity_http_client`] gives managed identity a
//! client of its own.
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
//! of scope for this library: they need a desktop session's stores or a platform broker. Build
//! a [`ChainedTokenCredential`] with your own credential if you
//! need one of them.

mod builder;
mod members;
#[cfg(test)]
mod tests;

use identity_core::{AccessToken, BoxFuture, Error, TokenCredential, TokenRequestOptions};

use crate::ChainedTokenCredential;
pub use builder::DefaultAzureCredentialBuilder;
use members::default_deadline;

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
    /// The sticky chain over the members, named `DefaultAzureCredential`.
    chain: ChainedTokenCredential,
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
        self.chain.last_used()
    }

    /// The members this chain tries, in order.
    pub fn members(&self) -> Vec<&'static str> {
        self.chain
            .engine()
            .members
            .iter()
            .map(|m| m.credential.name())
            .collect()
    }
}

/// The sticky chain's: its `get_token` span (named `DefaultAzureCredential`, source `chain`),
/// and the chosen member's cache entry once a member has produced a token.
impl TokenCredential for DefaultAzureCredential {
    fn get_token<'a>(
        &'a self,
        scopes: &'a [&'a str],
        options: &'a TokenRequestOptions,
    ) -> BoxFuture<'a, Result<AccessToken, Error>> {
        // Traced by the inner chain, whose name is this credential's.
        self.chain.get_token(scopes, options)
    }

    fn cache_slot(
        &self,
        scopes: &[&str],
        options: &TokenRequestOptions,
    ) -> Option<identity_core::cache::CacheSlot> {
        self.chain.cache_slot(scopes, options)
    }

    fn name(&self) -> &'static str {
        NAME
    }
}
