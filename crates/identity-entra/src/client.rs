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
use identity_core::http::{Pipeline, Response, SendOptions};
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

impl ClientAuth {
    /// The form field and value that prove the application to `token_endpoint` for `tenant`
    /// at `now`: `client_secret`, or a fresh `client_assertion`.
    pub(crate) async fn proof(
        &self,
        token_endpoint: &str,
        tenant: &str,
        now: SystemTime,
    ) -> Result<(&'static str, Secret), Error> {
        Ok(match self {
            Self::Secret(secret) => ("client_secret", secret.clone()),
            Self::Assertion(source) => {
                let context = AssertionContext {
                    token_endpoint: token_endpoint.to_owned(),
                    tenant: tenant.to_owned(),
                    now,
                };
                ("client_assertion", source.assertion(context).await?)
            }
        })
    }
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("Secret(***)"),
            Self::Assertion(source) => f.debug_tuple("Assertion").field(source).finish(),
        }
    }
}

/// What one `get_token` asks for: the tenant (the configured one, or the request's when the
/// multi-tenant rule allows it), the `claims` field, and whether the cache is bypassed (a
/// claims challenge).
pub(crate) struct Ask {
    pub(crate) tenant: String,
    pub(crate) claims: Option<String>,
    pub(crate) bypass: bool,
}

/// The tenants a credential may ask tokens for: its own and the additionally allowed ones,
/// under the environment's `AZURE_IDENTITY_DISABLE_MULTITENANTAUTH`.
#[derive(Clone, Debug)]
pub(crate) struct Tenancy {
    /// The configured tenant.
    pub(crate) tenant: String,
    /// The additionally allowed tenants.
    pub(crate) allowed: Vec<String>,
    /// The environment the credential reads.
    pub(crate) env: Env,
}

impl Tenancy {
    /// Checks `scopes` and resolves what a `get_token` with `options` asks for.
    pub(crate) fn ask(
        &self,
        name: &'static str,
        scopes: &[&str],
        options: &TokenRequestOptions,
    ) -> Result<Ask, Error> {
        validate_scopes(name, scopes)?;
        Ok(Ask {
            tenant: self.resolve(name, options)?,
            claims: request_claims(name, options)?,
            bypass: options.claims_challenge().is_some(),
        })
    }

    /// The tenant a request with `options` is for.
    pub(crate) fn resolve(
        &self,
        name: &'static str,
        options: &TokenRequestOptions,
    ) -> Result<String, Error> {
        let resolved = resolve_tenant(
            name,
            Some(&self.tenant),
            options.tenant(),
            &self.allowed,
            &self.env,
        )?;
        Ok(resolved.unwrap_or_else(|| self.tenant.clone()))
    }
}

/// Posts an urlencoded form to `url` through `pipeline`, with the headers every Entra request
/// carries; returns the response and when the request was made.
pub(crate) async fn post_form(
    name: &'static str,
    pipeline: &Pipeline,
    clock: &Arc<dyn Clock>,
    url: &str,
    form: &[(&str, &str)],
) -> Result<(Response, SystemTime), Error> {
    let request = form_request(name, url, form)?;
    let now = clock.now();
    let response = pipeline
        .send(name, &request, SendOptions::default())
        .await?;
    Ok((response, now))
}

/// The request [`post_form`] sends: `form` posted to `url` with the headers of every token
/// request.
pub(crate) fn form_request(
    name: &'static str,
    url: &str,
    form: &[(&str, &str)],
) -> Result<identity_core::http::Request, Error> {
    let body = {
        let mut body = form_urlencoded::Serializer::new(String::new());
        for (key, value) in form {
            body.append_pair(key, value);
        }
        body.finish()
    };
    http::Request::post(url)
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
                "the endpoint URL is invalid; check the authority host and tenant id",
            )
        })
}

/// Appends the application's proof to a token request's `form`: `field` (`client_secret` or
/// `client_assertion`, with its `client_assertion_type`), then the `claims` field if any.
pub(crate) fn push_proof<'a>(
    form: &mut Vec<(&'a str, &'a str)>,
    field: &'a str,
    proof: &'a Secret,
    claims: Option<&'a str>,
) {
    if field == "client_assertion" {
        form.push(("client_assertion_type", JWT_BEARER));
    }
    form.push((field, proof.secret()));
    if let Some(claims) = claims {
        form.push(("claims", claims));
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
    pub(crate) tenancy: Tenancy,
    pub(crate) client_id: String,
    pub(crate) pipeline: Pipeline,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) auth: ClientAuth,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct(self.name);
        debug
            .field("authority", &self.authority.as_str())
            .field("tenant_id", &self.tenancy.tenant)
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
        let Ask {
            tenant,
            claims,
            bypass,
        } = inner.tenancy.ask(name, scopes, options)?;
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
        let (field, proof) = self.auth.proof(&endpoint, &tenant, now).await?;
        let scope = scopes.join(" ");
        let mut form = vec![
            ("client_id", self.client_id.as_str()),
            ("grant_type", "client_credentials"),
            ("scope", scope.as_str()),
        ];
        push_proof(&mut form, field, &proof, claims.as_deref());
        tracing::debug!(credential = name, authority = self.authority.as_str(), tenant = %tenant, "requesting a token from Microsoft Entra ID");
        let (response, _) = post_form(name, &self.pipeline, &self.clock, &endpoint, &form).await?;
        parse_response(name, &response, now, &[proof.secret()])
    }
}
