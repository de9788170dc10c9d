//! The members of [`DefaultAzureCredential`](super::DefaultAzureCredential): each is built from
//! the builder's settings and the one resolved [`Runtime`] the chain hands to all of them.

use std::sync::Arc;
use std::time::Duration;

use identity_core::{
    AccessToken, BoxFuture, Env, Error, ErrorKind, Runtime, TokenCredential, TokenRequestOptions,
};
use identity_entra::credential::CredentialBuilder;

use super::builder::{DefaultAzureCredentialBuilder, ManagedIdentityChoice};
use crate::selection::CredentialKind;

type Built = Result<Arc<dyn TokenCredential>, Error>;

impl DefaultAzureCredentialBuilder {
    /// The member of `kind`, built with `runtime` (already resolved: every member reads the
    /// same environment snapshot). A member whose configuration fails is built as
    /// [`Misconfigured`], which reports the failure when the chain reaches it.
    pub(super) fn member(
        &self,
        kind: CredentialKind,
        runtime: &Runtime,
        probe: bool,
    ) -> Arc<dyn TokenCredential> {
        let built = match kind {
            CredentialKind::Environment => shared(
                self.entra(identity_entra::EnvironmentCredential::builder(), runtime)
                    .build(),
            ),
            CredentialKind::WorkloadIdentity => self.workload_identity(runtime),
            CredentialKind::ManagedIdentity => self.managed_identity(runtime, probe),
            CredentialKind::AzureCli => self.developer_tool::<identity_dev::AzureCli>(runtime),
            CredentialKind::AzurePowerShell => {
                self.developer_tool::<identity_dev::AzurePowerShell>(runtime)
            }
            CredentialKind::AzureDeveloperCli => {
                self.developer_tool::<identity_dev::AzureDeveloperCli>(runtime)
            }
            CredentialKind::GitHubActions => shared(
                self.entra(identity_entra::GitHubActionsCredential::builder(), runtime)
                    .build(),
            ),
            CredentialKind::InteractiveBrowser => shared(
                self.entra(
                    identity_entra::InteractiveBrowserCredential::builder(),
                    runtime,
                )
                .build(),
            ),
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

    /// An Entra member's builder with the runtime, the allowed tenants and the chain's
    /// authority host.
    fn entra<S>(&self, b: CredentialBuilder<S>, runtime: &Runtime) -> CredentialBuilder<S> {
        let b = b
            .runtime(runtime.clone())
            .additionally_allowed_tenants(self.additionally_allowed_tenants.clone());
        match &self.authority_host {
            Some(host) => b.authority_host(host.clone()),
            None => b,
        }
    }

    fn managed_identity_choice(&self, env: &Env) -> ManagedIdentityChoice {
        match &self.managed_identity {
            ManagedIdentityChoice::FromEnvironment => env
                .non_blank("AZURE_CLIENT_ID")
                .map_or(ManagedIdentityChoice::SystemAssigned, |id| {
                    ManagedIdentityChoice::ClientId(id.to_owned())
                }),
            other => other.clone(),
        }
    }

    /// The workload identity member: its own client id, else the managed identity's client id
    /// (so `AZURE_CLIENT_ID`); no authority host of the chain's (it reads
    /// `AZURE_AUTHORITY_HOST`, as the reference does).
    fn workload_identity(&self, runtime: &Runtime) -> Built {
        let client_id = self.workload_client_id.clone().or_else(|| {
            match self.managed_identity_choice(&runtime.env_snapshot()) {
                ManagedIdentityChoice::ClientId(id) => Some(id),
                _ => None,
            }
        });
        // Not `entra`: the chain's authority host is not this member's.
        let mut b = identity_entra::WorkloadIdentityCredential::builder()
            .runtime(runtime.clone())
            .additionally_allowed_tenants(self.additionally_allowed_tenants.clone());
        if let Some(id) = client_id {
            b = b.client_id(id);
        }
        if let Some(tenant) = &self.workload_tenant_id {
            b = b.tenant_id(tenant.clone());
        }
        shared(b.build())
    }

    /// The managed-identity member: the chain's runtime, with the member's own HTTP client
    /// when one was set.
    fn managed_identity(&self, runtime: &Runtime, probe: bool) -> Built {
        let runtime = match &self.msi_http {
            Some(client) => runtime.clone().http_client(client.clone()),
            None => runtime.clone(),
        };
        let mut b = identity_msi::ManagedIdentityCredential::builder()
            .runtime(runtime.clone())
            .within_default_chain(probe);
        b = match self.managed_identity_choice(&runtime.env_snapshot()) {
            ManagedIdentityChoice::FromEnvironment | ManagedIdentityChoice::SystemAssigned => b,
            ManagedIdentityChoice::ClientId(id) => b.client_id(id),
            ManagedIdentityChoice::ResourceId(id) => b.resource_id(id),
            ManagedIdentityChoice::ObjectId(id) => b.object_id(id),
        };
        if let Some(url) = &self.imds_endpoint {
            b = b.imds_endpoint(url.clone());
        }
        if let Some(configure) = &self.configure_managed_identity {
            b = configure(b);
        }
        shared(b.build())
    }

    /// A developer-tool member, with the chain's runtime (its environment and clock), allowed
    /// tenants and process timeout.
    fn developer_tool<T: identity_dev::DeveloperTool>(&self, runtime: &Runtime) -> Built {
        let mut b = identity_dev::DeveloperToolCredential::<T>::builder()
            .runtime(runtime.clone())
            .additionally_allowed_tenants(self.additionally_allowed_tenants.clone());
        if let Some(timeout) = self.process_timeout {
            b = b.process_timeout(timeout);
        }
        shared(b.build())
    }
}

/// A built member as the chain holds it.
fn shared<C: TokenCredential + 'static>(built: Result<C, Error>) -> Built {
    Ok(Arc::new(built?))
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

/// The chain's deadline when the caller set none:
/// [`DEFAULT_CHAIN_DEADLINE`](crate::DEFAULT_CHAIN_DEADLINE), plus the browser sign-in's own
/// timeout (5 minutes) when the interactive member is on, since a person signing in needs more
/// than the default leaves.
pub(super) fn default_deadline(kinds: &[CredentialKind]) -> Duration {
    let mut deadline = crate::DEFAULT_CHAIN_DEADLINE;
    if kinds.contains(&CredentialKind::InteractiveBrowser) {
        deadline += identity_entra::user::interactive_browser::DEFAULT_TIMEOUT;
    }
    deadline
}
