//! [`ManagedIdentityCredentialBuilder`]: the identity selector, the [`Runtime`], and the
//! settings detection reads.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use identity_core::http::HttpClient;
use identity_core::{Error, Runtime};

use crate::detect::{self, Settings};
use crate::source::ManagedIdentityId;
use crate::{ManagedIdentityCredential, NAME};

/// Builds a [`ManagedIdentityCredential`].
#[derive(Clone, Default)]
#[must_use]
pub struct ManagedIdentityCredentialBuilder {
    client_id: Option<String>,
    object_id: Option<String>,
    resource_id: Option<String>,
    identity: Option<ManagedIdentityId>,
    runtime: Runtime,
    timeout: Option<Duration>,
    within_default_chain: bool,
    endpoint: Option<String>,
    imds_endpoint: Option<String>,
    arc_key_directory: Option<PathBuf>,
    host_files: Option<Arc<dyn crate::HostFiles>>,
}

impl fmt::Debug for ManagedIdentityCredentialBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedIdentityCredentialBuilder")
            .field("client_id", &self.client_id)
            .field("object_id", &self.object_id)
            .field("resource_id", &self.resource_id)
            .field("identity", &self.identity)
            .field("runtime", &self.runtime)
            .field("timeout", &self.timeout)
            .field("within_default_chain", &self.within_default_chain)
            .field("endpoint", &self.endpoint)
            .field("imds_endpoint", &self.imds_endpoint)
            .field("arc_key_directory", &self.arc_key_directory)
            .field("host_files", &self.host_files)
            .finish_non_exhaustive()
    }
}

impl ManagedIdentityCredentialBuilder {
    /// Requests the user-assigned identity with this client id.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Requests the user-assigned identity with this object (principal) id.
    pub fn object_id(mut self, object_id: impl Into<String>) -> Self {
        self.object_id = Some(object_id.into());
        self
    }

    /// Requests the user-assigned identity with this Azure resource id.
    pub fn resource_id(mut self, resource_id: impl Into<String>) -> Self {
        self.resource_id = Some(resource_id.into());
        self
    }

    /// Sets the identity as a value (e.g. loaded from configuration). Conflicts with the
    /// individual selectors unless it names the same identity.
    pub fn identity(mut self, identity: ManagedIdentityId) -> Self {
        self.identity = Some(identity);
        self
    }

    /// The environment, clock, sleeper, HTTP client and request limits (default
    /// [`Runtime::new`]: the process environment at `build`, real time, identity-core's
    /// shared plain-HTTP `HyperClient` with feature `hyper`,
    /// [`Limits::DEFAULT`](identity_core::http::Limits::DEFAULT)). The
    /// environment decides the source; Service Fabric always uses its own pinned TLS client.
    pub fn runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = runtime;
        self
    }

    /// The per-attempt timeout (default: the runtime's limits'), keeping the runtime's other
    /// limits.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Set by `DefaultAzureCredential`: IMDS first checks that it is there (the probe, or with
    /// `AZURE_POD_IDENTITY_AUTHORITY_HOST` one bounded first request; see [`crate::imds`]) and
    /// any answer that is not IMDS's is unavailable at once; Cloud Shell accepts a
    /// user-assigned client id (sent as a form field, docs/protocol.md §2.6).
    pub fn within_default_chain(mut self, yes: bool) -> Self {
        self.within_default_chain = yes;
        self
    }

    /// Replaces the detected source's endpoint URL (for tests and tools): the full token
    /// URL for IMDS (default `http://169.254.169.254/metadata/identity/oauth2/token`),
    /// otherwise the value that `IDENTITY_ENDPOINT` or `MSI_ENDPOINT` would carry.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Replaces the IMDS token URL only when IMDS is the detected source (default
    /// `http://169.254.169.254/metadata/identity/oauth2/token`), leaving App Service and the
    /// other sources alone: what a chain or a test that must never reach the real IMDS
    /// address wants.
    pub fn imds_endpoint(mut self, url: impl Into<String>) -> Self {
        self.imds_endpoint = Some(url.into());
        self
    }

    /// The directory Azure Arc key files must be in (default: the agent's directory for
    /// the platform). Tests point it at a temporary directory.
    pub fn arc_key_directory(mut self, directory: impl Into<PathBuf>) -> Self {
        self.arc_key_directory = Some(directory.into());
        self
    }

    /// What detection may learn from the file system (default [`crate::SystemHostFiles`]):
    /// whether the Azure Arc agent's executable exists. Tests pass a
    /// [`crate::ListedHostFiles`] so that detection never depends on the machine.
    pub fn host_files(mut self, files: Arc<dyn crate::HostFiles>) -> Self {
        self.host_files = Some(files);
        self
    }

    fn resolve_identity(&self) -> Result<ManagedIdentityId, Error> {
        let mut chosen: Vec<ManagedIdentityId> = Vec::new();
        if let Some(id) = &self.client_id {
            chosen.push(ManagedIdentityId::ClientId(id.clone()));
        }
        if let Some(id) = &self.object_id {
            chosen.push(ManagedIdentityId::ObjectId(id.clone()));
        }
        if let Some(id) = &self.resource_id {
            chosen.push(ManagedIdentityId::ResourceId(id.clone()));
        }
        if let Some(id) = &self.identity {
            if !chosen.contains(id) {
                chosen.push(id.clone());
            }
        }
        match chosen.as_slice() {
            [] => Ok(ManagedIdentityId::SystemAssigned),
            [one] => {
                let value = match one {
                    ManagedIdentityId::SystemAssigned => return Ok(one.clone()),
                    ManagedIdentityId::ClientId(v)
                    | ManagedIdentityId::ObjectId(v)
                    | ManagedIdentityId::ResourceId(v) => v,
                };
                if value.trim().is_empty() {
                    return Err(Error::invalid_configuration(
                        NAME,
                        format!(
                            "the {} selector is empty; pass the identity's id or leave it unset for the system-assigned identity",
                            one.kind_name()
                        ),
                    ));
                }
                Ok(one.clone())
            }
            _ => Err(Error::invalid_configuration(
                NAME,
                "more than one managed identity selector was given; set only one of client_id, object_id and resource_id",
            )),
        }
    }

    /// Detects the source and builds the credential.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidConfiguration`](identity_core::ErrorKind::InvalidConfiguration) when
    /// more than one identity selector is set, a selector is empty, or the detected source
    /// cannot honour the requested identity kind (Service Fabric and Cloud Shell refuse
    /// user-assigned identities).
    pub fn build(self) -> Result<ManagedIdentityCredential, Error> {
        let id = self.resolve_identity()?;
        let runtime = self.runtime.resolved();
        let mut limits = runtime.request_limits();
        if let Some(timeout) = self.timeout {
            limits = limits.timeout(timeout);
        }
        let settings = Settings {
            env: runtime.env_snapshot(),
            within_default_chain: self.within_default_chain,
            endpoint: self.endpoint,
            imds_endpoint: self.imds_endpoint,
            arc_key_directory: self.arc_key_directory,
            host_files: self
                .host_files
                .unwrap_or_else(|| Arc::new(crate::SystemHostFiles)),
        };
        ManagedIdentityCredential::new(detect::detect(&settings), id, &runtime, limits)
    }
}

/// The client used when neither the source nor the runtime brings one.
#[cfg(feature = "hyper")]
pub(crate) fn default_client() -> Arc<dyn HttpClient> {
    identity_core::http::HyperClient::shared()
}

/// The client used when neither the source nor the runtime brings one.
#[cfg(not(feature = "hyper"))]
pub(crate) fn default_client() -> Arc<dyn HttpClient> {
    Arc::new(NoClient)
}

/// Without the `hyper` feature and without an injected client, requests fail with a clear
/// message instead of the build failing (a chain may never reach this credential).
#[cfg(not(feature = "hyper"))]
#[derive(Debug)]
struct NoClient;

#[cfg(not(feature = "hyper"))]
impl HttpClient for NoClient {
    fn execute(
        &self,
        _request: identity_core::http::Request,
        _options: identity_core::http::SendOptions,
    ) -> identity_core::BoxFuture<
        '_,
        Result<http::Response<identity_core::http::Body>, identity_core::http::BoxError>,
    > {
        Box::pin(async {
            Err("no HTTP client: enable the `hyper` feature of identity-msi or pass one with `Runtime::http_client`".into())
        })
    }
}
