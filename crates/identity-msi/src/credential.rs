//! [`ManagedIdentityCredential`] and the one flow every source's requests go through:
//! request, opening attempt, send, challenge, classify.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use identity_core::cache::{CacheSlot, KeyRef, TokenCache};
use identity_core::http::{
    Limits, Pipeline, Request, Response, RetryCut, SendOptions, clone_request,
};
use identity_core::redact::Redactor;
use identity_core::retry::RetryPolicy;
use identity_core::scope::scopes_to_resource;
use identity_core::{AccessToken, BoxFuture, Error, Runtime, TokenCredential, TokenRequestOptions};

use crate::NAME;
use crate::builder::{ManagedIdentityCredentialBuilder, default_client};
use crate::detect::{Detected, ManagedIdentitySource};
use crate::source::{Answer, Bounds, Call, First, ManagedIdentityId, Opening, Revocation, Source};
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
/// # async fn demo() -> Result<(), identity_chain::Error> {
/// use identity_chain::{TokenCredential, TokenRequestOptions};
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
    kind: ManagedIdentitySource,
    /// The detected source, or why detection found none this credential can use.
    host: Result<Host, Error>,
    id: ManagedIdentityId,
    /// `msi/<source>/<identity>`: the identity part of every cache key.
    cache_identity: String,
}

/// A detected source and the pipelines its requests travel through.
#[derive(Debug)]
struct Host {
    source: Box<dyn Source>,
    pipeline: Pipeline,
    options: SendOptions,
    /// The opening attempt and its one-attempt pipeline (IMDS inside a chain).
    opening: Option<(Opening, Pipeline)>,
    /// Set once the endpoint has answered an opening attempt as the host does; later calls
    /// skip the opening. A failed opening is not remembered.
    opened: AtomicBool,
}

impl Host {
    /// The pipelines for `source` from the runtime: the source's own client, else the
    /// runtime's, else the default plain-HTTP client.
    fn new(source: Box<dyn Source>, runtime: &Runtime, limits: Limits) -> Self {
        let transport = source.transport();
        let client = transport
            .client
            .clone()
            .or_else(|| runtime.custom_http_client().cloned())
            .unwrap_or_else(default_client);
        let pipeline = |retry: RetryPolicy, limits: Limits| {
            Pipeline::new(client.clone())
                .with_limits(limits)
                .with_retry(retry)
                .with_clock(runtime.clock_or_default())
                .with_sleeper(runtime.sleeper_or_default())
        };
        let opening = transport.opening.map(|opening| {
            let budget = opening.budget.min(limits.timeout);
            let once = Limits::DEFAULT.timeout(budget).max_body(limits.max_body);
            (
                Opening { budget, ..opening },
                pipeline(RetryPolicy::none(), once),
            )
        });
        let mut options = SendOptions::default();
        if let Some(connect) = transport.connect_timeout {
            options = options.connect_timeout(connect);
        }
        Self {
            pipeline: pipeline(transport.retry, limits),
            source,
            options,
            opening,
            opened: AtomicBool::new(false),
        }
    }

    /// One token request, within the pipeline's deadline (shared with the opening or the
    /// challenge). The secrets of every request sent (sensitive header values, an
    /// `Authorization` header's credentials) go in a [`Redactor`] that rides in each response,
    /// so quoted service text is redacted before it is cut to length, and every error leaving
    /// here is redacted again: no source can show or log a secret its endpoint echoes back.
    async fn fetch(&self, call: &Call<'_>) -> Result<TokenResponse, Error> {
        let mut redactor = Redactor::new();
        let result = self
            .pipeline
            .within(NAME, self.steps(call, &mut redactor))
            .await;
        result.map_err(|e| e.redact(&redactor))
    }

    async fn steps(
        &self,
        call: &Call<'_>,
        redactor: &mut Redactor,
    ) -> Result<TokenResponse, Error> {
        let request = self.source.request(call)?;
        redactor.add_headers(request.headers());
        let opening = self.opening.as_ref();
        let opening = opening.filter(|_| !self.opened.load(Ordering::Relaxed));
        let sent_at = self.pipeline.clock().now();
        let first = match opening {
            Some((opening, once)) => self.open(once, opening, &request).await,
            None => self.send(&request).await,
        };
        let mut response = match first {
            Ok(response) => response,
            Err(silence) => return self.source.classify(silence, call),
        };
        response.extensions_mut().insert(redactor.clone());
        let second = self.source.challenge(&First {
            response: &response,
            request: &request,
            opening: opening.map(|(o, _)| o),
        })?;
        if opening.is_some() {
            self.opened.store(true, Ordering::Relaxed);
        }
        if let Some(second) = second {
            redactor.add_headers(second.headers());
            response = match self.send(&second).await {
                Ok(response) => response,
                Err(silence) => return self.source.classify(silence, call),
            };
            response.extensions_mut().insert(redactor.clone());
        }
        // An answer whose retry the pipeline could not wait for (a `Retry-After` past the cap
        // or a deadline) is classified as it would be without retries, and says why.
        let response = &response;
        let result = self
            .source
            .classify(Answer::Response { response, sent_at }, call);
        RetryCut::explain(response, result)
    }

    /// Sends with the source's retry schedule.
    async fn send(&self, request: &Request) -> Result<Response, Answer<'static>> {
        self.pipeline
            .send(NAME, request, self.options)
            .await
            .map_err(|cause| Answer::silence(cause, request, None))
    }

    /// The opening attempt: once, within its bounds; a probe goes without the headers.
    async fn open(
        &self,
        once: &Pipeline,
        opening: &Opening,
        request: &Request,
    ) -> Result<Response, Answer<'static>> {
        let mut first = clone_request(request);
        if opening.probe {
            first.headers_mut().clear();
        }
        let options = SendOptions::default().connect_timeout(opening.connect_timeout);
        let bounds = Bounds {
            connect: opening.connect_timeout,
            answer: opening.budget,
        };
        once.send_once(NAME, first, options)
            .await
            .map_err(|cause| Answer::silence(cause, request, Some(bounds)))
    }
}

impl fmt::Debug for ManagedIdentityCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("ManagedIdentityCredential");
        match &self.inner.host {
            Ok(host) => s.field("source", &host.source),
            Err(_) => s.field("source", &self.inner.kind),
        };
        s.field("identity", &self.inner.id).finish_non_exhaustive()
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
        self.inner.kind
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

    /// A credential for `id` over what detection found, its requests sent with `runtime`
    /// within `limits`.
    pub(crate) fn new(
        detected: Detected,
        id: ManagedIdentityId,
        runtime: &Runtime,
        limits: Limits,
    ) -> Result<Self, Error> {
        let (kind, host) = match detected {
            Ok(source) => {
                source.supports(&id)?;
                (source.kind(), Ok(Host::new(source, runtime, limits)))
            }
            Err((kind, error)) => (kind, Err(error)),
        };
        tracing::debug!(target: "identity_msi", source = kind.id(), identity = id.kind_name(), "managed identity source detected");
        let cache_identity = format!("msi/{}/{}", kind.id(), id.cache_part());
        Ok(Self {
            inner: Arc::new(Inner {
                kind,
                host,
                id,
                cache_identity,
            }),
            cache: TokenCache::with_clock(runtime.clock_or_default()),
        })
    }

    /// The token for `resource` through the cache, and the service's full response when
    /// this call fetched it. `revocation` (a claims challenge) goes to the source with the
    /// request.
    pub(crate) async fn cached(
        &self,
        resource: &str,
        bypass_cache: bool,
        revocation: Option<Revocation>,
    ) -> Result<(AccessToken, Option<TokenResponse>), Error> {
        let scopes = [resource];
        let key = KeyRef::new(&self.inner.cache_identity, &scopes, None, false);
        self.cache
            .get_or_fetch_with(key, bypass_cache, || {
                let inner = self.inner.clone();
                let resource = resource.to_owned();
                async move {
                    let host = inner.host.as_ref().map_err(Clone::clone)?;
                    let call = Call {
                        resource: &resource,
                        id: &inner.id,
                        revocation: revocation.as_ref(),
                    };
                    let response = host.fetch(&call).await?;
                    let mut token = AccessToken::new(response.token.clone(), response.expires_on);
                    token.refresh_on = response.refresh_on;
                    Ok((token, response))
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
            return Ok(self.cached(resource, true, Some(revocation)).await?.0);
        }
        Ok(self.cached(resource, false, None).await?.0)
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
            self.inner.kind.id(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer};

    #[test]
    fn conflicting_selectors_are_refused_at_build() {
        let e = ManagedIdentityCredential::builder()
            .runtime(Runtime::with_env(Env::empty()))
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
            .runtime(Runtime::with_env(Env::empty()))
            .client_id(" ")
            .build()
            .unwrap_err();
        assert_eq!(e.kind(), identity_core::ErrorKind::InvalidConfiguration);
    }

    #[test]
    fn the_same_identity_given_twice_is_not_a_conflict() {
        let c = ManagedIdentityCredential::builder()
            .runtime(Runtime::with_env(Env::empty()))
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
            .runtime(Runtime::with_env(Env::empty()))
            .build()
            .unwrap();
        let options = TokenRequestOptions::default();
        fn assert_send<T: Send>(_: &T) {}
        assert_send(&c.get_token(&["s"], &options));
    }

    #[tokio::test]
    async fn a_second_get_token_is_served_from_the_cache() {
        let server = answering("GET", token_on(CLOCK_NOW + 86_400), 1).await;
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
        let server = answering("GET", token_on(CLOCK_NOW + 86_400), 2).await;
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
            .runtime(Runtime::with_env(Env::empty()))
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
        let server = answering("GET", ResponseTemplate::new(200).set_body_string(format!(
                r#"{{"access_token":"{PLANTED_TOKEN}","expires_on":"{}","resource":"https://vault.azure.net","token_type":"Bearer"}}"#,
                CLOCK_NOW + 3600
            )), 1).await;
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
        let server = answering("GET", token_on(CLOCK_NOW + 3600), 1).await;
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
        let server = refusing_the_identity_header().await;
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
