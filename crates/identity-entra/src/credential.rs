//! The two generic halves every credential of this crate is made of.
//!
//! * [`CredentialBuilder<S>`] holds the settings all of them share (the [`Runtime`], the
//!   authority host, the additionally allowed tenants, the retry policy) next to `S`, the
//!   settings of one credential, which adds its own setters and `build`.
//! * [`Credential<K>`] implements [`TokenCredential`] once for every kind `K`: the `get_token`
//!   span of identity-core's `trace` module around the kind's own fetch.
//!
//! The public names are aliases: `ClientSecretCredential` is `Credential<ClientSecret>` and
//! `ClientSecretCredentialBuilder` is `CredentialBuilder<ClientSecretSettings>`, and so on for
//! every credential.

use std::fmt;
use std::marker::PhantomData;

use identity_core::retry::RetryPolicy;
use identity_core::{AccessToken, BoxFuture, Error, Runtime, TokenCredential, TokenRequestOptions};

use crate::client::{CommonOptions, EntraClient};

pub(crate) mod sealed {
    use identity_core::{AccessToken, BoxFuture, Error, TokenRequestOptions};

    /// How a built credential gets a token (implemented inside this crate only).
    #[allow(
        unreachable_pub,
        reason = "sealed: reachable as the supertrait of `Kind`"
    )]
    pub trait Fetch: Clone + std::fmt::Debug + Send + Sync + 'static {
        /// The credential's type name, e.g. `ClientSecretCredential`.
        fn name(&self) -> &'static str;

        /// The `source` field of the `get_token` span, e.g. `client_secret`.
        fn source(&self) -> &'static str;

        /// Gets a token (from the cache or the service).
        fn fetch<'a>(
            &'a self,
            scopes: &'a [&'a str],
            options: &'a TokenRequestOptions,
        ) -> BoxFuture<'a, Result<AccessToken, Error>>;
    }

    /// The settings of a credential whose builder takes a tenant id and a client id.
    #[allow(unreachable_pub, reason = "sealed: bounds a public impl")]
    pub trait Ids {}
}

/// What gets a kind's tokens: the Entra client of the service-principal credentials, the
/// user client of the sign-in credentials.
pub(crate) trait TokenSource: Send + Sync {
    /// The credential's type name.
    fn name(&self) -> &'static str;
    /// The `source` field of the `get_token` span.
    fn source(&self) -> &'static str;
    /// Gets a token (from the cache or the service).
    fn token<'a>(
        &'a self,
        scopes: &'a [&'a str],
        options: &'a TokenRequestOptions,
    ) -> BoxFuture<'a, Result<AccessToken, Error>>;
}

/// A kind whose tokens come from one [`TokenSource`]: its `Fetch` is this one.
pub(crate) trait HasSource {
    /// The source.
    fn token_source(&self) -> &dyn TokenSource;
}

impl<T: HasSource + Clone + fmt::Debug + Send + Sync + 'static> sealed::Fetch for T {
    fn name(&self) -> &'static str {
        self.token_source().name()
    }

    fn source(&self) -> &'static str {
        self.token_source().source()
    }

    fn fetch<'a>(
        &'a self,
        scopes: &'a [&'a str],
        options: &'a TokenRequestOptions,
    ) -> BoxFuture<'a, Result<AccessToken, Error>> {
        self.token_source().token(scopes, options)
    }
}

/// The kind `K` of every service-principal credential of this crate (client secret,
/// certificate, assertion, workload identity, Azure Pipelines, GitHub Actions): its connection
/// to Microsoft Entra ID. `M` names the credential ([`ClientSecret`](crate::client_secret::ClientSecret), …).
pub struct ServicePrincipal<M> {
    pub(crate) client: EntraClient,
    marker: PhantomData<fn() -> M>,
}

impl<M> Clone for ServicePrincipal<M> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            marker: PhantomData,
        }
    }
}

impl<M> fmt::Debug for ServicePrincipal<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.client.fmt(f)
    }
}

impl<M> HasSource for ServicePrincipal<M> {
    fn token_source(&self) -> &dyn TokenSource {
        &self.client
    }
}

impl<M: 'static> Credential<ServicePrincipal<M>> {
    /// The credential of `client`.
    pub(crate) fn service_principal(client: EntraClient) -> Self {
        Self {
            kind: ServicePrincipal {
                client,
                marker: PhantomData,
            },
        }
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
    pub(crate) kind: K,
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
        identity_core::trace::traced(
            self.kind.name(),
            self.kind.source(),
            self.kind.fetch(scopes, options),
        )
    }

    fn name(&self) -> &'static str {
        sealed::Fetch::name(&self.kind)
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
