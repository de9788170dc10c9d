//! The two generic halves every credential of this crate is made of.
//!
//! * [`CredentialBuilder<S>`] holds the settings all of them share (the [`Runtime`], the
//!   authority host, the additionally allowed tenants, the retry policy) next to `S`, the
//!   settings of one credential, which adds its own setters and `build`.
//! * [`Credential<K>`] implements [`TokenCredential`] once for every kind `K`: the `get_token`
//!   span of identity-core's `trace` module around the kind's own fetch.
//!
//! The public names are aliases: `ClientSecretCredential` is
//! `Credential<ServicePrincipal<ClientSecret>>` and
//! `ClientSecretCredentialBuilder` is `CredentialBuilder<ClientSecretSettings>`, and so on for
//! every credential.

use std::fmt;
use std::marker::PhantomData;

use identity_core::TokenRequestOptions as Options;
use identity_core::retry::RetryPolicy;
use identity_core::{AccessToken, BoxFuture, Error, Runtime, TokenCredential, TokenRequestOptions};

use crate::client::EntraClient;
use crate::options::CommonOptions;

/// What a kind's `get_token` returns.
pub(crate) type TokenFuture<'a> = BoxFuture<'a, Result<AccessToken, Error>>;

pub(crate) mod sealed {
    use identity_core::TokenRequestOptions as Options;

    use super::TokenFuture;

    /// How a built credential gets a token (implemented inside this crate only).
    #[allow(
        unreachable_pub,
        reason = "sealed: reachable as the supertrait of `Kind`"
    )]
    pub trait Fetch: Clone + std::fmt::Debug + Send + Sync + 'static {
        /// Gets a token (from the cache or the service).
        fn fetch<'a>(&'a self, scopes: &'a [&'a str], options: &'a Options) -> TokenFuture<'a>;
    }

    /// The settings of a credential whose builder takes a tenant id and a client id.
    #[allow(unreachable_pub, reason = "sealed: bounds a public impl")]
    pub trait Ids {}

    /// A service-principal credential's marker (`M` of `ServicePrincipal<M>`), naming the
    /// settings its builder holds.
    #[allow(unreachable_pub, reason = "sealed: bounds a public impl")]
    pub trait Named {
        /// The `S` of the credential's `CredentialBuilder<S>`.
        type Settings: Default;
    }
}

/// One kind of credential of this crate, the `K` of [`Credential<K>`]. Sealed: the kinds are
/// the ones this crate defines.
pub trait Kind: sealed::Fetch {}

impl<T: sealed::Fetch> Kind for T {}

/// A credential of this crate; each has a public alias (`ClientSecretCredential`,
/// `WorkloadIdentityCredential`, …) under which it is documented.
///
/// Cheap to clone: clones share the settings, the HTTP pipeline and the token cache.
#[derive(Clone)]
pub struct Credential<K> {
    /// The credential's type name, e.g. `ClientSecretCredential`.
    name: &'static str,
    /// The `source` field of its `get_token` span, e.g. `client_secret`.
    source: &'static str,
    pub(crate) kind: K,
}

impl<K> Credential<K> {
    /// The credential `name` whose `get_token` spans say `source`.
    pub(crate) fn new(name: &'static str, source: &'static str, kind: K) -> Self {
        Self { name, source, kind }
    }

    /// A credential of the same name and source around another `kind`.
    pub(crate) fn with_kind(&self, kind: K) -> Self {
        Self::new(self.name, self.source, kind)
    }
}

impl<K: fmt::Debug> fmt::Debug for Credential<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

impl<K: Kind> TokenCredential for Credential<K> {
    fn get_token<'a>(
        &'a self,
        scopes: &'a [&'a str],
        options: &'a TokenRequestOptions,
    ) -> BoxFuture<'a, Result<AccessToken, Error>> {
        let fetch = self.kind.fetch(scopes, options);
        identity_core::trace::traced(self.name, self.source, fetch)
    }

    fn name(&self) -> &'static str {
        self.name
    }
}

/// The kind `K` of every service-principal credential of this crate (client secret,
/// certificate, assertion, workload identity, Azure Pipelines, GitHub Actions): its connection
/// to Microsoft Entra ID. `M` names the credential ([`ClientSecret`](crate::client_secret::ClientSecret), …).
#[derive(Clone)]
pub struct ServicePrincipal<M> {
    pub(crate) client: EntraClient,
    marker: PhantomData<fn() -> M>,
}

impl<M> fmt::Debug for ServicePrincipal<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.client.fmt(f)
    }
}

impl<M: Clone + 'static> sealed::Fetch for ServicePrincipal<M> {
    fn fetch<'a>(&'a self, scopes: &'a [&'a str], options: &'a Options) -> TokenFuture<'a> {
        Box::pin(self.client.get_token(scopes, options))
    }
}

impl<M: sealed::Named> Credential<ServicePrincipal<M>> {
    /// A builder with nothing set; each credential's builder alias
    /// (`ClientSecretCredentialBuilder`, …) documents its settings.
    pub fn builder() -> CredentialBuilder<M::Settings> {
        CredentialBuilder::default()
    }
}

impl<M: 'static> Credential<ServicePrincipal<M>> {
    /// The credential of `client`.
    pub(crate) fn service_principal(client: EntraClient) -> Self {
        let (name, source) = client.label();
        let marker = PhantomData;
        Self::new(name, source, ServicePrincipal { client, marker })
    }
}

/// Builds a [`Credential`]: the settings every credential of this crate shares, and `S`, the
/// settings of one credential (each has a public alias, `ClientSecretCredentialBuilder`, …,
/// with its own setters and `build`).
#[derive(Clone, Default)]
#[must_use]
pub struct CredentialBuilder<S> {
    pub(crate) common: CommonOptions,
    pub(crate) settings: S,
}

impl<S: fmt::Debug> fmt::Debug for CredentialBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialBuilder")
            .field("common", &self.common)
            .field("settings", &self.settings)
            .finish()
    }
}

impl<S> CredentialBuilder<S> {
    /// The environment, clock, sleeper, HTTP client and request bounds the credential runs
    /// with (default: [`Runtime::new`]: the process environment, read once at `build`, the
    /// system clock, the tokio timer and [`ReqwestClient::shared`](crate::ReqwestClient::shared)).
    pub fn runtime(mut self, runtime: Runtime) -> Self {
        self.common.runtime = runtime;
        self
    }

    /// The authority host: a host name or an `https` URL (default: `AZURE_AUTHORITY_HOST`
    /// from the runtime's environment, else
    /// [`AzureAuthorityHosts::AZURE_PUBLIC_CLOUD`](crate::AzureAuthorityHosts::AZURE_PUBLIC_CLOUD);
    /// the user sign-in credentials first use their authentication record's authority).
    pub fn authority_host(mut self, host: impl Into<String>) -> Self {
        self.common.authority_host = Some(host.into());
        self
    }

    /// Tenants besides the configured one that `get_token` may be asked for; `"*"` allows
    /// any. Credentials that read their settings from the environment
    /// (`EnvironmentCredential`, `WorkloadIdentityCredential`, `AzurePipelinesCredential`,
    /// `GitHubActionsCredential`) default to `AZURE_ADDITIONALLY_ALLOWED_TENANTS`
    /// (comma-separated); the others to none. An empty list leaves that default.
    pub fn additionally_allowed_tenants<I, T>(mut self, tenants: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        let list: Vec<String> = tenants.into_iter().map(Into::into).collect();
        self.common.additionally_allowed_tenants = (!list.is_empty()).then_some(list);
        self
    }

    /// The retry policy (default: [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.common.retry = Some(policy);
        self
    }

    /// **For tests and local emulators only.** Accepts a plain-`http` authority when its
    /// host is a loopback address (`127.0.0.1`, `::1`, `localhost`). Never use it in
    /// production: the client secret or assertion would travel unencrypted.
    pub fn allow_insecure_loopback_authority(mut self, allow: bool) -> Self {
        self.common.allow_insecure_loopback_authority = allow;
        self
    }
}

impl<S: sealed::Ids> CredentialBuilder<S> {
    /// The tenant (directory) id or domain. Where it comes from when not set:
    ///
    /// | credential | default |
    /// |---|---|
    /// | `ClientSecretCredential`, `ClientCertificateCredential`, `ClientAssertionCredential`, `OnBehalfOfCredential` | none: required |
    /// | `WorkloadIdentityCredential`, `GitHubActionsCredential` | `AZURE_TENANT_ID` |
    /// | `AzurePipelinesCredential` | `AZURESUBSCRIPTION_TENANT_ID` |
    /// | `InteractiveBrowserCredential`, `DeviceCodeCredential` | the authentication record's tenant, else [`DEFAULT_USER_TENANT`](crate::user::DEFAULT_USER_TENANT) (`organizations`) |
    pub fn tenant_id(mut self, tenant_id: impl Into<String>) -> Self {
        self.common.tenant_id = Some(tenant_id.into());
        self
    }

    /// The application (client) id (for `GitHubActionsCredential` also the client id of a
    /// user-assigned managed identity). Where it comes from when not set:
    ///
    /// | credential | default |
    /// |---|---|
    /// | `ClientSecretCredential`, `ClientCertificateCredential`, `ClientAssertionCredential`, `OnBehalfOfCredential` (the calling API's) | none: required |
    /// | `WorkloadIdentityCredential`, `GitHubActionsCredential` | `AZURE_CLIENT_ID` |
    /// | `AzurePipelinesCredential` | `AZURESUBSCRIPTION_CLIENT_ID` |
    /// | `InteractiveBrowserCredential`, `DeviceCodeCredential` (a public client registration) | the authentication record's client id, else [`DEVELOPER_SIGN_ON_CLIENT_ID`](crate::user::DEVELOPER_SIGN_ON_CLIENT_ID) |
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.common.client_id = Some(client_id.into());
        self
    }
}
