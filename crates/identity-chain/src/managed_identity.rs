//! [`ManagedIdentityCredential`] as identity-chain exports it: identity-msi's credential, plus
//! the workload identity token exchange on AKS.
//!
//! # Why a second type with the same name
//! On an AKS pod with workload identity, the environment has `AZURE_FEDERATED_TOKEN_FILE`,
//! `AZURE_TENANT_ID` and `AZURE_AUTHORITY_HOST`, and the reference SDKs'
//! `ManagedIdentityCredential` exchanges the federated token with Microsoft Entra ID
//! (docs/protocol.md §2.7). That exchange needs HTTPS to Entra, which lives in identity-entra
//! (reqwest and rustls). identity-msi must stay lean (no TLS stack with default features), so
//! on its own it detects that environment and answers *unavailable, use
//! `WorkloadIdentityCredential`*.
//!
//! identity-chain depends on both crates, so the `ManagedIdentityCredential` it exports is a
//! thin wrapper with the same name and the same builder setters, which delegates:
//!
//! * it builds identity-msi's credential (same detection, same order: App Service, Arc, Cloud
//!   Shell… still win over the workload variables);
//! * when that detection says *workload identity*, it builds identity-entra's
//!   [`WorkloadIdentityCredential`](identity_entra::WorkloadIdentityCredential) instead, with
//!   the configured client id (`client_id`, or `identity(ManagedIdentityId::ClientId(..))`),
//!   else `AZURE_CLIENT_ID`, and the tenant, token file and authority host from the
//!   environment.
//!
//! So `identity_chain::ManagedIdentityCredential::builder().client_id(id).build()` works on an
//! AKS pod as the same code does with the reference SDKs, while
//! `identity_msi::ManagedIdentityCredential` (and identity-msi used alone)
//! keeps its minimal dependencies and its "unavailable" answer.
//!
//! `DefaultAzureCredential` does not use this wrapper: it has a workload identity member of its
//! own before managed identity, and, as in the reference, its managed-identity member does not
//! repeat that exchange.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use identity_core::http::HttpClient;
use identity_core::{AccessToken, BoxFuture, Error, Runtime, TokenCredential, TokenRequestOptions};
use identity_msi::{HostFiles, ManagedIdentityId, ManagedIdentitySource};

const NAME: &str = "ManagedIdentityCredential";

/// Gets tokens for the managed identity of the Azure host the code runs on, including AKS
/// workload identity. See the [module docs](self) for how it relates to identity-msi's
/// credential of the same name.
///
/// ```no_run
/// # async fn demo() -> Result<(), identity_chain::Error> {
/// use identity_chain::{ManagedIdentityCredential, TokenCredential, TokenRequestOptions};
///
/// // On a VM: the user-assigned identity from IMDS. On an AKS pod with workload identity:
/// // the federated token exchanged for the app registration with this client id.
/// let credential = ManagedIdentityCredential::builder()
///     .client_id("00000000-0000-0000-0000-000000000000")
///     .build()?;
/// let token = credential
///     .get_token(&["https://vault.azure.net/.default"], &TokenRequestOptions::default())
///     .await?;
/// # let _ = token; Ok(()) }
/// ```
#[derive(Clone)]
pub struct ManagedIdentityCredential {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Host(identity_msi::ManagedIdentityCredential),
    Workload {
        credential: identity_entra::WorkloadIdentityCredential,
        id: ManagedIdentityId,
    },
}

impl fmt::Debug for ManagedIdentityCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Host(credential) => credential.fmt(f),
            Inner::Workload { credential, .. } => f
                .debug_struct(NAME)
                .field("source", &ManagedIdentitySource::WorkloadIdentity)
                .field("credential", credential)
                .finish(),
        }
    }
}

impl ManagedIdentityCredential {
    /// A builder with the defaults: system-assigned identity, the process environment, real
    /// time and the shared clients.
    pub fn builder() -> ManagedIdentityCredentialBuilder {
        ManagedIdentityCredentialBuilder::default()
    }

    /// The host's system-assigned identity, with every default (`builder().build()`).
    ///
    /// # Errors
    /// As [`ManagedIdentityCredentialBuilder::build`] (so do the three constructors below).
    pub fn system_assigned() -> Result<Self, Error> {
        Self::with_identity(ManagedIdentityId::SystemAssigned)
    }

    /// The user-assigned identity with this client (application) id, with every default.
    ///
    /// # Errors
    /// As [`system_assigned`](Self::system_assigned).
    pub fn client_id(client_id: impl Into<String>) -> Result<Self, Error> {
        Self::with_identity(ManagedIdentityId::ClientId(client_id.into()))
    }

    /// The user-assigned identity with this Azure resource id, with every default.
    ///
    /// # Errors
    /// As [`system_assigned`](Self::system_assigned).
    pub fn resource_id(resource_id: impl Into<String>) -> Result<Self, Error> {
        Self::with_identity(ManagedIdentityId::ResourceId(resource_id.into()))
    }

    /// The user-assigned identity with this object (principal) id, with every default.
    ///
    /// # Errors
    /// As [`system_assigned`](Self::system_assigned).
    pub fn object_id(object_id: impl Into<String>) -> Result<Self, Error> {
        Self::with_identity(ManagedIdentityId::ObjectId(object_id.into()))
    }

    fn with_identity(identity: ManagedIdentityId) -> Result<Self, Error> {
        Self::builder().identity(identity).build()
    }

    /// The source detected at construction
    /// ([`ManagedIdentitySource::WorkloadIdentity`] when it exchanges a federated token).
    pub fn source(&self) -> ManagedIdentitySource {
        match &self.inner {
            Inner::Host(credential) => credential.source(),
            Inner::Workload { .. } => ManagedIdentitySource::WorkloadIdentity,
        }
    }

    /// The identity this credential requests (for workload identity: the client id used).
    pub fn identity(&self) -> &ManagedIdentityId {
        match &self.inner {
            Inner::Host(credential) => credential.identity(),
            Inner::Workload { id, .. } => id,
        }
    }

    /// identity-msi's credential, unless this one exchanges a federated token: for its cache
    /// (persistence) and anything else specific to the hosting sources.
    pub fn host_credential(&self) -> Option<&identity_msi::ManagedIdentityCredential> {
        match &self.inner {
            Inner::Host(credential) => Some(credential),
            Inner::Workload { .. } => None,
        }
    }
}

impl TokenCredential for ManagedIdentityCredential {
    fn name(&self) -> &'static str {
        NAME
    }

    fn get_token<'a>(
        &'a self,
        scopes: &'a [&'a str],
        options: &'a TokenRequestOptions,
    ) -> BoxFuture<'a, Result<AccessToken, Error>> {
        match &self.inner {
            Inner::Host(credential) => credential.get_token(scopes, options),
            Inner::Workload { credential, .. } => credential.get_token(scopes, options),
        }
    }
}

/// Builds a [`ManagedIdentityCredential`]: the setters of identity-msi's builder, plus the
/// HTTPS client for the workload identity exchange.
#[derive(Clone, Default)]
#[must_use]
pub struct ManagedIdentityCredentialBuilder {
    host: identity_msi::ManagedIdentityCredentialBuilder,
    runtime: Runtime,
    https: Option<Arc<dyn HttpClient>>,
}

impl fmt::Debug for ManagedIdentityCredentialBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedIdentityCredentialBuilder")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl From<ManagedIdentityCredentialBuilder> for identity_msi::ManagedIdentityCredentialBuilder {
    /// identity-msi's builder with every setting made so far (for
    /// [`ManagedIdentityClient::from_builder`](identity_msi::ManagedIdentityClient::from_builder)).
    fn from(builder: ManagedIdentityCredentialBuilder) -> Self {
        builder.host
    }
}

impl ManagedIdentityCredentialBuilder {
    /// Requests the user-assigned identity with this client id; on AKS, the app registration
    /// (or user-assigned identity) whose federated credential the pod uses.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.host = self.host.client_id(client_id);
        self
    }

    /// Requests the user-assigned identity with this object (principal) id (not usable with
    /// workload identity, which needs a client id).
    pub fn object_id(mut self, object_id: impl Into<String>) -> Self {
        self.host = self.host.object_id(object_id);
        self
    }

    /// Requests the user-assigned identity with this Azure resource id (not usable with
    /// workload identity, which needs a client id).
    pub fn resource_id(mut self, resource_id: impl Into<String>) -> Self {
        self.host = self.host.resource_id(resource_id);
        self
    }

    /// Sets the identity as a value; see identity-msi's builder.
    pub fn identity(mut self, identity: ManagedIdentityId) -> Self {
        self.host = self.host.identity(identity);
        self
    }

    /// The environment, clock, sleeper, HTTP client and request limits (default
    /// [`Runtime::new`]); see identity-msi's builder. `build` resolves it once (one
    /// environment snapshot), and the hosting source and the workload identity exchange both
    /// run with that same value. Its HTTP client, when set, carries the requests of both,
    /// unless [`workload_identity_http_client`](Self::workload_identity_http_client) gives the
    /// exchange one of its own.
    pub fn runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = runtime.clone();
        self.host = self.host.runtime(runtime);
        self
    }

    /// The HTTPS client of the workload identity exchange with Microsoft Entra ID alone
    /// (default: the runtime's client if one is set, else identity-entra's shared
    /// `ReqwestClient`).
    pub fn workload_identity_http_client(mut self, client: Arc<dyn HttpClient>) -> Self {
        self.https = Some(client);
        self
    }

    /// The per-attempt timeout of the hosting sources (keeps the body cap).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.host = self.host.timeout(timeout);
        self
    }

    /// See identity-msi's builder: the IMDS probe and Cloud Shell's client id.
    pub fn within_default_chain(mut self, yes: bool) -> Self {
        self.host = self.host.within_default_chain(yes);
        self
    }

    /// Replaces the detected hosting source's endpoint URL; see identity-msi's builder.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.host = self.host.endpoint(url);
        self
    }

    /// Replaces the IMDS token URL (and so where the probe looks); see identity-msi's builder.
    pub fn imds_endpoint(mut self, url: impl Into<String>) -> Self {
        self.host = self.host.imds_endpoint(url);
        self
    }

    /// The directory Azure Arc key files must be in.
    pub fn arc_key_directory(mut self, directory: impl Into<PathBuf>) -> Self {
        self.host = self.host.arc_key_directory(directory);
        self
    }

    /// What detection may learn from the file system (the Arc agent's executable).
    pub fn host_files(mut self, files: Arc<dyn HostFiles>) -> Self {
        self.host = self.host.host_files(files);
        self
    }

    /// Detects the source and builds the credential.
    ///
    /// # Errors
    /// As identity-msi's `build`; and, in a workload identity environment,
    /// [`ErrorKind::InvalidConfiguration`](identity_core::ErrorKind::InvalidConfiguration) when
    /// the identity is selected by object or resource id (the exchange needs a client id), or
    /// [`ErrorKind::Unavailable`](identity_core::ErrorKind::Unavailable) when no client id is
    /// configured and `AZURE_CLIENT_ID` is not set.
    pub fn build(self) -> Result<ManagedIdentityCredential, Error> {
        let runtime = self.runtime.clone().resolved();
        let env = runtime.env_snapshot();
        let host = self.host.clone().runtime(runtime.clone()).build()?;
        if host.source() != ManagedIdentitySource::WorkloadIdentity {
            return Ok(ManagedIdentityCredential {
                inner: Inner::Host(host),
            });
        }
        let configured = match host.identity() {
            ManagedIdentityId::ClientId(id) => Some(id.clone()),
            ManagedIdentityId::SystemAssigned => None,
            other => {
                return Err(Error::invalid_configuration(
                    NAME,
                    format!(
                        "the environment configures workload identity, whose token exchange needs a client id; \
                         a {} selector cannot be used there: set client_id (or AZURE_CLIENT_ID)",
                        other.kind_name()
                    ),
                ));
            }
        };
        let from_env = env.non_blank("AZURE_CLIENT_ID").map(str::to_owned);
        // The same runtime (the one environment snapshot), with the exchange's own client.
        let entra = match &self.https {
            Some(https) => runtime.http_client(https.clone()),
            None => runtime,
        };
        let mut builder = identity_entra::WorkloadIdentityCredential::builder().runtime(entra);
        if let Some(id) = &configured {
            builder = builder.client_id(id.clone());
        }
        let credential = builder.build().map_err(|e| e.with_credential(NAME))?;
        let client_id = configured.or(from_env).unwrap_or_default();
        Ok(ManagedIdentityCredential {
            inner: Inner::Workload {
                credential,
                id: ManagedIdentityId::ClientId(client_id),
            },
        })
    }
}
