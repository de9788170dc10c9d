//! The token request shared by every credential in this crate (docs/protocol.md §6.4, §6.6, §6.7): the
//! client-credentials grant posted straight to `https://<host>/<tenant>/oauth2/v2.0/token`
//! (no instance or OIDC discovery, as the reference's `AadClient`), through the core pipeline
//! with the default retry policy (POST included), and one [`TokenCache`] per credential.
//!
//! * Form fields: `client_id`, `grant_type=client_credentials`, `scope` (scopes sorted and
//!   space-joined, so the same set always makes the same request and cache key, §9 #13),
//!   then `client_secret`, or `client_assertion` with `client_assertion_type`, and `claims`
//!   when a claims challenge or CAE is requested.
//! * Cache key: identity = `entra/<kind>/<authority>/<client id>`, plus the resolved tenant,
//!   the scopes and the CAE flag; a claims challenge bypasses the read side.
//! * The answer is read by [`response`](crate::response).

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use identity_core::cache::{KeyRef, TokenCache};
use identity_core::http::{Pipeline, SendOptions};
use identity_core::scope::resolve_tenant;
use identity_core::{AccessToken, BoxFuture, Clock, Env, Error, Secret, TokenRequestOptions};

use crate::authority::Authority;
use crate::response::{parse_response, request_claims};

/// The `client_assertion_type` for JWT bearer assertions.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What an assertion source needs to know about the request it signs for.
#[derive(Clone, Debug)]
pub(crate) struct AssertionContext {
    /// The token endpoint: the `aud` of a signed assertion.
    pub(crate) token_endpoint: String,
    /// The tenant of the request.
    pub(crate) tenant: String,
    /// When the request is made.
    pub(crate) now: SystemTime,
}

/// Produces a client assertion for each token request.
pub(crate) trait AssertionSource: Send + Sync + fmt::Debug {
    /// A fresh assertion.
    fn assertion(&self, context: AssertionContext) -> BoxFuture<'static, Result<Secret, Error>>;
}

/// How the application proves its identity.
#[derive(Clone)]
pub(crate) enum ClientAuth {
    Secret(Secret),
    Assertion(Arc<dyn AssertionSource>),
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("Secret(***)"),
            Self::Assertion(source) => f.debug_tuple("Assertion").field(source).finish(),
        }
    }
}

/// Refuses an empty scope list or a scope with blanks.
pub(crate) fn validate_scopes(name: &'static str, scopes: &[&str]) -> Result<(), Error> {
    if scopes.is_empty() {
        return Err(Error::invalid_argument(
            name,
            "at least one scope is required, e.g. \"https://management.azure.com/.default\"",
        ));
    }
    if scopes
        .iter()
        .any(|s| s.trim().is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(Error::invalid_argument(
            name,
            "invalid scope: scopes must be non-empty and contain no whitespace",
        ));
    }
    Ok(())
}

/// One credential's connection to Entra ID: settings, pipeline and cache.
#[derive(Clone)]
pub(crate) struct EntraClient {
    inner: Arc<Inner>,
    cache: TokenCache,
}

impl fmt::Debug for EntraClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

/// The settings of an [`EntraClient`], made by [`CommonOptions::build`](crate::options::CommonOptions::build).
pub(crate) struct Inner {
    pub(crate) name: &'static str,
    /// The kind of credential: the `source` of its `get_token` span.
    pub(crate) source: &'static str,
    /// One more setting the credential's `Debug` shows (name, value).
    pub(crate) detail: Option<(&'static str, Arc<dyn fmt::Debug + Send + Sync>)>,
    pub(crate) identity: String,
    pub(crate) authority: Authority,
    pub(crate) tenant: String,
    pub(crate) client_id: String,
    pub(crate) allowed_tenants: Vec<String>,
    pub(crate) env: Env,
    pub(crate) pipeline: Pipeline,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) auth: ClientAuth,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct(self.name);
        debug
            .field("authority", &self.authority.as_str())
            .field("tenant_id", &self.tenant)
            .field("client_id", &self.client_id);
        if let Some((name, value)) = &self.detail {
            debug.field(name, value);
        }
        debug.finish_non_exhaustive()
    }
}

impl EntraClient {
    /// The client of these settings, with an empty cache.
    pub(crate) fn new(inner: Inner) -> Self {
        let cache = TokenCache::with_clock(inner.clock.clone());
        Self {
            inner: Arc::new(inner),
            cache,
        }
    }

    /// The credential's name and the `source` of its `get_token` span.
    pub(crate) fn label(&self) -> (&'static str, &'static str) {
        (self.inner.name, self.inner.source)
    }

    /// This client with one more setting shown by its `Debug` (never a secret).
    pub(crate) fn with_detail(
        mut self,
        name: &'static str,
        value: Arc<dyn fmt::Debug + Send + Sync>,
    ) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.detail = Some((name, value));
        }
        self
    }

    /// Gets a token from the cache or from Entra ID.
    pub(crate) async fn get_token(
        &self,
        scopes: &[&str],
        options: &TokenRequestOptions,
    ) -> Result<AccessToken, Error> {
        let inner = &self.inner;
        let name = inner.name;
        validate_scopes(name, scopes)?;
        let tenant = resolve_tenant(
            name,
            Some(&inner.tenant),
            options.tenant(),
            &inner.allowed_tenants,
            &inner.env,
        )?
        .unwrap_or_else(|| inner.tenant.clone());
        let claims = request_claims(name, options)?;
        let bypass = options.claims_challenge().is_some();
        let key = KeyRef::new(&inner.identity, scopes, Some(&tenant), options.enable_cae);
        self.cache
            .get_or_fetch(key, bypass, || {
                let inner = self.inner.clone();
                let mut owned: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
                owned.sort_unstable();
                owned.dedup();
                let tenant = tenant.clone();
                // One deadline for the whole load: the assertion and the token request.
                async move {
                    let pipeline = inner.pipeline.clone();
                    pipeline
                        .within(inner.name, inner.request(tenant, owned, claims))
                        .await
                }
            })
            .await
    }
}

impl Inner {
    async fn request(
        self: Arc<Self>,
        tenant: String,
        scopes: Vec<String>,
        claims: Option<String>,
    ) -> Result<AccessToken, Error> {
        let name = self.name;
        let endpoint = self.authority.token_endpoint(&tenant);
        let now = self.clock.now();
        // The credential proof: the secret, or an assertion made for this request.
        let (field, proof) = match &self.auth {
            ClientAuth::Secret(secret) => ("client_secret", secret.clone()),
            ClientAuth::Assertion(source) => {
                let context = AssertionContext {
                    token_endpoint: endpoint.clone(),
                    tenant: tenant.clone(),
                    now,
                };
                ("client_assertion", source.assertion(context).await?)
            }
        };
        let body = token_form(&self.client_id, &scopes, field, &proof, claims.as_deref());
        let request = http::Request::post(&endpoint)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .header("x-ms-client-request-id", crate::jwt::uuid_v4(name)?)
            .header(
                http::header::USER_AGENT,
                concat!("identity-entra/", env!("CARGO_PKG_VERSION")),
            )
            .body(Bytes::from(body))
            .map_err(|_| {
                Error::invalid_configuration(
                    name,
                    "the token endpoint URL is invalid; check the authority host and tenant id",
                )
            })?;
        tracing::debug!(credential = name, authority = self.authority.as_str(), tenant = %tenant, "requesting a token from Microsoft Entra ID");
        let response = self
            .pipeline
            .send(name, &request, SendOptions::default())
            .await?;
        parse_response(name, &response, now, &[proof.secret()])
    }
}

/// The form body of a token request. `field` is `client_secret` or `client_assertion`.
fn token_form(
    client_id: &str,
    scopes: &[String],
    field: &str,
    proof: &Secret,
    claims: Option<&str>,
) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("client_id", client_id)
        .append_pair("grant_type", "client_credentials")
        .append_pair("scope", &scopes.join(" "));
    if field == "client_assertion" {
        form.append_pair("client_assertion_type", JWT_BEARER);
    }
    form.append_pair(field, proof.secret());
    if let Some(claims) = claims {
        form.append_pair("claims", claims);
    }
    form.finish()
}
