//! [`ManagedIdentityCredential`] and its builder.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use identity_core::cache::{CacheSlot, KeyRef, TokenCache};
use identity_core::http::{HttpClient, Limits};
use identity_core::scope::scopes_to_resource;
use identity_core::{
    AccessToken, BoxFuture, Clock, Env, Error, Sleeper, TokenCredential, TokenRequestOptions,
    system_clock, tokio_sleeper,
};

use crate::NAME;
use crate::detect;
use crate::source::{ManagedIdentityId, ManagedIdentitySource, Revocation, Settings, Source};
use crate::wire::TokenResponse;

/// Gets tokens for the managed identity of the Azure host the code runs on.
///
/// The source (IMDS, App Service, Azure Arc, Cloud Shell, Azure Machine Learning, Service
/// Fabric) is detected once, in [`build`](ManagedIdentityCredentialBuilder::build), from the
/// environment. Tokens are cached per credential and refreshed ahead of expiry. The tenant in
/// [`TokenRequestOptions`] is ignored: a managed identity token is always for the identity's
/// home tenant. A claims challenge skips the cache (the sources have no way to pass the
/// claims on, so a fresh token is the best answer).
///
/// ```no_run
/// # async fn demo() -> Result<(), identity_core::Error> {
/// use identity_core::{TokenCredential, TokenRequestOptions};
/// use identity_msi::ManagedIdentityCredential;
///
/// let credential = ManagedIdentityCredential::builder().client_id("00000000-0000-0000-0000-000000000000").build()?;
/// let token = credential
///     .get_token(&["https://vault.azure.net/.default"], &TokenRequestOptions::default())
///     .await?;
/// # let _ = token; Ok(()) }
/// ```
#[derive(Clone)]
pub struct ManagedIdentityCredential {
    inner: Arc<Inner>,
    cache: TokenCache,
}

pub(crate) struct Inner {
    pub(crate) source: Box<dyn Source>,
    pub(crate) id: ManagedIdentityId,
    /// `msi/<source>/<identity>`: the identity part of every cache key.
    cache_identity: String,
}

impl Inner {
    /// One token request, within the source pipeline's deadline (the challenge and its
    /// answer, or the probe and the request, share it).
    pub(crate) async fn fetch(&self, resource: &str) -> Result<TokenResponse, Error> {
        match self.source.pipeline() {
            Some(pipeline) => {
                pipeline
                    .within(NAME, self.source.fetch(resource, &self.id))
                    .await
            }
            None => self.source.fetch(resource, &self.id).await,
        }
    }

    async fn fetch_with(
        &self,
        resource: &str,
        revocation: Option<&Revocation>,
    ) -> Result<TokenResponse, Error> {
        match revocation {
            Some(revocation) => {
                self.source
                    .fetch_revoking(resource, &self.id, revocation)
                    .await
            }
            None => self.fetch(resource).await,
        }
    }
}

impl fmt::Debug for ManagedIdentityCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedIdentityCredential")
            .field("source", &self.inner.source)
            .field("identity", &self.inner.id)
            .finish_non_exhaustive()
    }
}

impl ManagedIdentityCredential {
    /// A builder with the defaults: system-assigned identity, the process environment, real
    /// time and the shared plain-HTTP client.
    pub fn builder() -> ManagedIdentityCredentialBuilder {
        ManagedIdentityCredentialBuilder::default()
    }

    /// The host's system-assigned identity, with every default (`builder().build()`).
    ///
    /// # Errors
    /// As [`ManagedIdentityCredentialBuilder::build`]: an invalid managed-identity environment.
    pub fn system_assigned() -> Result<Self, Error> {
        Self::builder().build()
    }

    /// The user-assigned identity with this client (application) id, with every default.
    ///
    /// # Errors
    /// As [`ManagedIdentityCredentialBuilder::build`], e.g. on a host that only has a
    /// system-assigned identity (Service Fabric, Cloud Shell).
    pub fn client_id(client_id: impl Into<String>) -> Result<Self, Error> {
        Self::builder().client_id(client_id).build()
    }

    /// The user-assigned identity with this Azure resource id
    /// (`/subscriptions/…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>`).
    ///
    /// # Errors
    /// As [`ManagedIdentityCredential::client_id`].
    pub fn resource_id(resource_id: impl Into<String>) -> Result<Self, Error> {
        Self::builder().resource_id(resource_id).build()
    }

    /// The user-assigned identity with this object (principal) id.
    ///
    /// # Errors
    /// As [`ManagedIdentityCredential::client_id`].
    pub fn object_id(object_id: impl Into<String>) -> Result<Self, Error> {
        Self::builder().object_id(object_id).build()
    }

    /// The source detected at construction.
    pub fn source(&self) -> ManagedIdentitySource {
        self.inner.source.kind()
    }

    /// The identity this credential requests.
    pub fn identity(&self) -> &ManagedIdentityId {
        &self.inner.id
    }

    /// The credential's cache, for persistence ([`crate::CachePersistence`]).
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    /// The identity part of this credential's cache keys.
    pub(crate) fn cache_identity(&self) -> &str {
        &self.inner.cache_identity
    }

    /// Gets a token for `resource` through the cache. The returned flag is true when this
    /// call ran a request (rather than being served from the cache or joining another
    /// caller's request), and the response carries the service's extra fields then.
    /// The token for `resource`, and the service's full response when this call fetched it
    /// (the low-level client reports its metadata).
    pub(crate) async fn token_for_resource(
        &self,
        resource: &str,
        bypass_cache: bool,
    ) -> Result<(AccessToken, Option<TokenResponse>), Error> {
        let fresh: Arc<std::sync::Mutex<Option<TokenResponse>>> = Arc::default();
        let token = self
            .cached(resource, bypass_cache, Some(fresh.clone()), None)
            .await?;
        let fresh = fresh
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        Ok((token, fresh))
    }

    /// The token for `resource` through the cache; a fetched response is also put in `slot`.
    /// `revocation` (a claims challenge) goes to the source with the fetch.
    async fn cached(
        &self,
        resource: &str,
        bypass_cache: bool,
        slot: Option<Arc<std::sync::Mutex<Option<TokenResponse>>>>,
        revocation: Option<Revocation>,
    ) -> Result<AccessToken, Error> {
        let scopes = [resource];
        let key = KeyRef::new(&self.inner.cache_identity, &scopes, None, false);
        self.cache
            .get_or_fetch(key, bypass_cache, || {
                let inner = self.inner.clone();
                let owned = resource.to_owned();
                async move {
                    let response = inner.fetch_with(&owned, revocation.as_ref()).await?;
                    let mut token = AccessToken::new(response.token.clone(), response.expires_on);
                    token.refresh_on = response.refresh_on;
                    if let Some(slot) = slot {
                        *slot
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(response);
                    }
                    Ok(token)
                }
            })
            .await
    }

    async fn get_token_impl(
        &self,
        scopes: &[&str],
        options: &TokenRequestOptions,
    ) -> Result<AccessToken, Error> {
        let resource = scopes_to_resource(NAME, scopes)?;
        if options.claims_challenge().is_some() {
            // The token being replaced, for sources that support revocation.
            let revocation = Revocation {
                replaced: self.cached_token(resource),
                capabilities: &["CP1"],
            };
            return self.cached(resource, true, None, Some(revocation)).await;
        }
        // No response slot: a cached call allocates nothing.
        self.cached(resource, false, None, None).await
    }

    /// The token cached for `resource`, if any (a claims challenge is rare: a scan is fine).
    fn cached_token(&self, resource: &str) -> Option<identity_core::Secret> {
        self.cache
            .export()
            .into_iter()
            .find(|(key, _)| {
                key.identity() == self.inner.cache_identity && key.scopes().eq([resource])
            })
            .map(|(_, token)| token.token)
    }
}

impl TokenCredential for ManagedIdentityCredential {
    fn get_token<'a>(
        &'a self,
        scopes: &'a [&'a str],
        options: &'a TokenRequestOptions,
    ) -> BoxFuture<'a, Result<AccessToken, Error>> {
        // A fresh cached token (never while `get_token` spans are recorded): a small ready
        // future instead of the whole call's.
        if options.claims_challenge().is_none() {
            if let Ok(resource) = scopes_to_resource(NAME, scopes) {
                let scopes = [resource];
                let key = KeyRef::new(&self.inner.cache_identity, &scopes, None, false);
                if let Some(token) = self.cache.fresh(key) {
                    return Box::pin(std::future::ready(Ok(token)));
                }
            }
        }
        identity_core::trace::traced(
            NAME,
            self.inner.source.kind().id(),
            self.get_token_impl(scopes, options),
        )
    }

    fn name(&self) -> &'static str {
        NAME
    }

    /// The entry `get_token` reads: keyed by the resource the scopes name; none with claims.
    fn cache_slot(&self, scopes: &[&str], options: &TokenRequestOptions) -> Option<CacheSlot> {
        if options.claims_challenge().is_some() {
            return None;
        }
        let resource = scopes_to_resource(NAME, scopes).ok()?;
        let scopes = [resource];
        Some(self.cache.slot(KeyRef::new(
            &self.inner.cache_identity,
            &scopes,
            None,
            false,
        )))
    }
}

/// Builds a [`ManagedIdentityCredential`].
#[derive(Clone, Default)]
#[must_use]
pub struct ManagedIdentityCredentialBuilder {
    client_id: Option<String>,
    object_id: Option<String>,
    resource_id: Option<String>,
    identity: Option<ManagedIdentityId>,
    env: Option<Env>,
    clock: Option<Arc<dyn Clock>>,
    sleeper: Option<Arc<dyn Sleeper>>,
    http_client: Option<Arc<dyn HttpClient>>,
    limits: Option<Limits>,
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
            .field("env", &self.env)
            .field("limits", &self.limits)
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

    /// The environment snapshot to detect the source from (default: the process
    /// environment at `build`).
    pub fn env(mut self, env: Env) -> Self {
        self.env = Some(env);
        self
    }

    /// The clock for the cache and `Retry-After` dates.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The sleeper used between retries.
    pub fn sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> Self {
        self.sleeper = Some(sleeper);
        self
    }

    /// The HTTP client (default: identity-core's shared plain-HTTP `HyperClient`, feature
    /// `hyper`). Service Fabric always uses its own pinned TLS client.
    pub fn http_client(mut self, client: Arc<dyn HttpClient>) -> Self {
        self.http_client = Some(client);
        self
    }

    /// The per-attempt timeout and body cap (default [`Limits::DEFAULT`]).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// The per-attempt timeout (keeps the body cap).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.limits = Some(self.limits.unwrap_or_default().timeout(timeout));
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
        let clock = self.clock.clone().unwrap_or_else(system_clock);
        let settings = Settings {
            env: self.env.clone().unwrap_or_else(Env::from_process),
            client: match self.http_client.clone() {
                Some(client) => client,
                None => default_client(),
            },
            sleeper: self.sleeper.clone().unwrap_or_else(tokio_sleeper),
            clock: clock.clone(),
            limits: self.limits.unwrap_or_default(),
            within_default_chain: self.within_default_chain,
            endpoint: self.endpoint.clone(),
            imds_endpoint: self.imds_endpoint.clone(),
            arc_key_directory: self.arc_key_directory.clone(),
            host_files: self
                .host_files
                .clone()
                .unwrap_or_else(|| Arc::new(crate::SystemHostFiles)),
        };
        let source = detect::detect(&settings);
        source.supports(&id)?;
        tracing::debug!(target: "identity_msi", source = source.kind().id(), identity = id.kind_name(), "managed identity source detected");
        let cache_identity = format!("msi/{}/{}", source.kind().id(), id.cache_part());
        Ok(ManagedIdentityCredential {
            inner: Arc::new(Inner {
                source,
                id,
                cache_identity,
            }),
            cache: TokenCache::with_clock(clock),
        })
    }
}

#[cfg(feature = "hyper")]
fn default_client() -> Arc<dyn HttpClient> {
    identity_core::http::HyperClient::shared()
}

#[cfg(not(feature = "hyper"))]
fn default_client() -> Arc<dyn HttpClient> {
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
    ) -> BoxFuture<
        '_,
        Result<http::Response<identity_core::http::Body>, identity_core::http::BoxError>,
    > {
        Box::pin(async {
            Err("no HTTP client: enable the `hyper` feature of identity-msi or pass one with `http_client`".into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer};

    #[test]
    fn conflicting_selectors_are_refused_at_build() {
        let e = ManagedIdentityCredential::builder()
            .env(Env::empty())
            .client_id("a")
            .object_id("b")
            .build()
            .unwrap_err();
        assert_eq!(e.kind(), identity_core::ErrorKind::InvalidConfiguration);
        assert!(e.to_string().contains("only one"), "{e}");
    }

    #[test]
    fn an_empty_selector_is_refused_at_build() {
        let e = ManagedIdentityCredential::builder()
            .env(Env::empty())
            .client_id(" ")
            .build()
            .unwrap_err();
        assert_eq!(e.kind(), identity_core::ErrorKind::InvalidConfiguration);
    }

    #[test]
    fn the_same_identity_given_twice_is_not_a_conflict() {
        let c = ManagedIdentityCredential::builder()
            .env(Env::empty())
            .client_id("a")
            .identity(ManagedIdentityId::ClientId("a".into()))
            .build()
            .unwrap();
        assert_eq!(c.identity(), &ManagedIdentityId::ClientId("a".into()));
        assert_eq!(c.name(), "ManagedIdentityCredential");
    }

    #[test]
    fn the_credential_is_send_sync_and_its_future_is_send() {
        fn assert_traits<T: Send + Sync + fmt::Debug>() {}
        assert_traits::<ManagedIdentityCredential>();
        assert_traits::<ManagedIdentityCredentialBuilder>();
        let c = ManagedIdentityCredential::builder()
            .env(Env::empty())
            .build()
            .unwrap();
        let options = TokenRequestOptions::default();
        fn assert_send<T: Send>(_: &T) {}
        assert_send(&c.get_token(&["s"], &options));
    }

    #[tokio::test]
    async fn a_second_get_token_is_served_from_the_cache() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(token_on(CLOCK_NOW + 86_400))
            .expect(1)
            .mount(&server)
            .await;
        let h = harness(imds_env(), ManagedIdentityId::SystemAssigned).with_endpoint(&server);
        h.get().await.unwrap();
        h.get().await.unwrap();
        // The same resource without the suffix shares the entry.
        h.credential
            .get_token(
                &["https://vault.azure.net"],
                &TokenRequestOptions::default(),
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_echoed_resource_with_a_trailing_slash_still_hits_the_cache() {
        let server = MockServer::start().await;
        let body = format!(
            r#"{{"access_token":"AT","expires_on":"{}","resource":"https://vault.azure.net/"}}"#,
            CLOCK_NOW + 86_400
        );
        Mock::given(method("GET"))
            .respond_with(wiremock::ResponseTemplate::new(200).set_body_string(body))
            .expect(1)
            .mount(&server)
            .await;
        let h = harness(imds_env(), ManagedIdentityId::SystemAssigned).with_endpoint(&server);
        for _ in 0..3 {
            h.get().await.unwrap();
        }
    }

    #[tokio::test]
    async fn claims_bypass_the_cache_and_tenant_is_ignored() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(token_on(CLOCK_NOW + 86_400))
            .expect(2)
            .mount(&server)
            .await;
        let h = harness(imds_env(), ManagedIdentityId::SystemAssigned).with_endpoint(&server);
        h.get().await.unwrap();
        let with_tenant = TokenRequestOptions::default().tenant_id("other-tenant");
        h.credential
            .get_token(&[SCOPE], &with_tenant)
            .await
            .unwrap();
        let with_claims = TokenRequestOptions::default().claims(r#"{"access_token":{}}"#);
        h.credential
            .get_token(&[SCOPE], &with_claims)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_cache_refreshes_at_half_life_and_falls_back_on_failure() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(token_on(CLOCK_NOW + 86_400))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(wiremock::ResponseTemplate::new(400))
            .mount(&server)
            .await;
        let h = harness(imds_env(), ManagedIdentityId::SystemAssigned).with_endpoint(&server);
        let first = h.get().await.unwrap();
        h.clock.advance(Duration::from_secs(3600));
        assert_eq!(h.get().await.unwrap().token.secret(), first.token.secret());
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
        // Past half-life: a refresh is attempted, fails, and the old token is still served.
        h.clock.advance(Duration::from_secs(12 * 3600));
        assert_eq!(h.get().await.unwrap().token.secret(), "AT");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while server.received_requests().await.unwrap().len() < 2
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
        // After expiry the failure propagates.
        h.clock.advance(Duration::from_secs(12 * 3600));
        assert!(h.get().await.is_err());
    }

    #[test]
    fn more_than_one_scope_is_an_invalid_argument() {
        let c = ManagedIdentityCredential::builder()
            .env(Env::empty())
            .build()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt
            .block_on(c.get_token(
                &["a/.default", "b/.default"],
                &TokenRequestOptions::default(),
            ))
            .unwrap_err();
        assert_eq!(e.kind(), identity_core::ErrorKind::InvalidArgument);
    }
}

/// The `get_token` span (identity-core's `trace` module) as this credential fills it, and the
/// absence of planted secrets from everything traced, on success and failure paths.
#[cfg(test)]
mod span_tests {
    use identity_core::test_util::Capture;
    use identity_core::{ErrorKind, TokenRequestOptions};
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::test_support::*;

    const PLANTED_TOKEN: &str = "planted-msi-access-token";

    fn app_service_env(server: &MockServer) -> Env {
        Env::from_pairs([
            ("IDENTITY_ENDPOINT", format!("{}/msi/token", server.uri())),
            ("IDENTITY_HEADER", SECRET.to_owned()),
        ])
    }

    fn assert_clean(capture: &Capture) {
        capture.assert_absent(SECRET);
        capture.assert_absent(PLANTED_TOKEN);
    }

    #[tokio::test]
    async fn the_span_names_the_source_and_records_fetch_then_hit() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string(format!(
                r#"{{"access_token":"{PLANTED_TOKEN}","expires_on":"{}","resource":"https://vault.azure.net","token_type":"Bearer"}}"#,
                CLOCK_NOW + 3600
            )))
            .expect(1)
            .mount(&server)
            .await;
        let h = harness(app_service_env(&server), ManagedIdentityId::SystemAssigned);
        let capture = Capture::new();
        let _guard = capture.enter();
        h.get().await.unwrap();
        h.get().await.unwrap();
        let spans = capture.spans_named("get_token");
        assert_eq!(spans.len(), 2, "{}", capture.text());
        for span in &spans {
            assert_eq!(span.field("credential"), Some("ManagedIdentityCredential"));
            assert_eq!(span.field("source"), Some("app_service"));
            assert_eq!(span.field("outcome"), Some("ok"));
            assert!(span.field("duration_ms").is_some());
        }
        assert_eq!(spans[0].field("cache"), Some("fetch"));
        assert_eq!(spans[1].field("cache"), Some("hit"));
        assert_clean(&capture);
    }

    #[tokio::test]
    async fn a_claims_challenge_is_traced_as_a_bypass() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(token_on(CLOCK_NOW + 3600))
            .expect(1)
            .mount(&server)
            .await;
        let h = harness(app_service_env(&server), ManagedIdentityId::SystemAssigned);
        let capture = Capture::new();
        let _guard = capture.enter();
        let options = TokenRequestOptions::default().claims(r#"{"access_token":{}}"#);
        h.credential.get_token(&[SCOPE], &options).await.unwrap();
        assert_eq!(
            capture.spans_named("get_token")[0].field("cache"),
            Some("bypass")
        );
        assert_clean(&capture);
    }

    #[tokio::test]
    async fn a_refused_request_is_traced_with_its_kind_and_no_secret() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(401)
                    .set_body_string(r#"{"message":"invalid identity header"}"#),
            )
            .expect(1)
            .mount(&server)
            .await;
        let h = harness(app_service_env(&server), ManagedIdentityId::SystemAssigned);
        let capture = Capture::new();
        let _guard = capture.enter();
        let error = h.get().await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::AuthenticationFailed);
        let span = &capture.spans_named("get_token")[0];
        assert_eq!(span.field("outcome"), Some("authentication_failed"));
        assert_eq!(span.field("cache"), Some("fetch"));
        let failure = capture
            .events()
            .into_iter()
            .find(|e| e.field("message") == Some("get_token failed"))
            .expect("a failure event");
        assert_eq!(failure.field("error"), Some(error.to_string().as_str()));
        assert_clean(&capture);
    }

    #[tokio::test]
    async fn retries_are_traced_inside_the_span_without_secrets() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(500).set_body_string(r#"{"message":"try again"}"#))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string(format!(
                r#"{{"access_token":"{PLANTED_TOKEN}","expires_on":"{}","resource":"https://vault.azure.net","token_type":"Bearer"}}"#,
                CLOCK_NOW + 3600
            )))
            .mount(&server)
            .await;
        let h = harness(app_service_env(&server), ManagedIdentityId::SystemAssigned);
        let capture = Capture::new();
        let _guard = capture.enter();
        h.get().await.unwrap();
        let retry = capture
            .events()
            .into_iter()
            .find(|e| e.target == "identity_core::retry")
            .expect("a retry event");
        assert_eq!(retry.spans, ["get_token"]);
        assert_eq!(retry.field("status"), Some("500"));
        assert_eq!(
            capture.spans_named("get_token")[0].field("outcome"),
            Some("ok")
        );
        assert_clean(&capture);
    }

    #[tokio::test]
    async fn an_unreachable_imds_is_traced_as_unavailable() {
        let endpoint = format!("http://{}{}", closed_port(), crate::imds::TOKEN_PATH);
        let h = harness_with(imds_env(), ManagedIdentityId::SystemAssigned, |b| {
            b.endpoint(endpoint).within_default_chain(true)
        });
        let capture = Capture::new();
        let _guard = capture.enter();
        let error = tokio::time::timeout(Duration::from_secs(30), h.get())
            .await
            .expect("the probe ends")
            .unwrap_err();
        let span = &capture.spans_named("get_token")[0];
        assert_eq!(span.field("source"), Some("imds"));
        assert!(error.is_unavailable(), "{error}");
        assert_eq!(span.field("outcome"), Some("unavailable"));
        assert_clean(&capture);
    }
}
