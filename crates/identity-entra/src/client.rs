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
//! * Responses: `access_token` and `expires_in` (a number or a numeric string) are required,
//!   `refresh_in` is honoured when present. Anything else is an authentication failure whose
//!   message lists the response's field *names* only, never values.
//! * Entra errors (`error`, `error_description`, `error_codes`, `trace_id`, `correlation_id`)
//!   become authentication failures keeping the description (with its `AADSTS` code) and the
//!   correlation id. The client secret and the assertion are scrubbed from anything printed,
//!   in case a service echoes them.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use identity_core::cache::{KeyRef, TokenCache};
use identity_core::http::{HttpClient, Pipeline, Response, SendOptions};
use identity_core::retry::RetryPolicy;
use identity_core::scope::{resolve_tenant, validate_tenant_id};
use identity_core::{
    AccessToken, BoxFuture, Clock, Env, Error, ErrorKind, Runtime, Secret, TokenRequestOptions,
};
use serde_json::{Map, Value};

use crate::authority::Authority;
use crate::http::ReqwestClient;

/// Tenants, besides the configured one, that the environment-reading credentials may request
/// tokens for: comma-separated tenant ids, or `*` for any.
pub const AZURE_ADDITIONALLY_ALLOWED_TENANTS: &str = "AZURE_ADDITIONALLY_ALLOWED_TENANTS";

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

/// Settings every credential builder in this crate shares.
#[derive(Clone, Debug, Default)]
pub(crate) struct CommonOptions {
    pub(crate) tenant_id: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) authority_host: Option<String>,
    /// `None` until set in the builder.
    pub(crate) additionally_allowed_tenants: Option<Vec<String>>,
    /// Whether `AZURE_ADDITIONALLY_ALLOWED_TENANTS` applies when the builder set no list (the
    /// credentials that read their settings from the environment).
    pub(crate) read_allowed_tenants_from_env: bool,
    /// Resolved (the process environment read once) when a builder builds.
    pub(crate) runtime: Runtime,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) allow_insecure_loopback_authority: bool,
}

impl CommonOptions {
    /// The environment the credential reads (the runtime's; one snapshot once
    /// [`resolve`](Self::resolve) has run).
    pub(crate) fn env(&self) -> Env {
        self.runtime.env_snapshot()
    }

    /// Takes the process environment snapshot now, if the runtime holds no environment, so
    /// that everything the builder reads sees the same one.
    pub(crate) fn resolve(&mut self) {
        self.runtime = std::mem::take(&mut self.runtime).resolved();
    }

    /// For the credentials that read their settings from the environment: resolves the
    /// runtime, takes the tenant and client ids from `tenant_var` and `client_var` when the
    /// builder set none (or blank ones), lets `AZURE_ADDITIONALLY_ALLOWED_TENANTS` apply, and
    /// returns the environment.
    pub(crate) fn resolve_from_env(&mut self, tenant_var: &str, client_var: &str) -> Env {
        self.resolve();
        let env = self.env();
        self.tenant_id = setting_or_env(&env, self.tenant_id.take(), tenant_var);
        self.client_id = setting_or_env(&env, self.client_id.take(), client_var);
        self.read_allowed_tenants_from_env = true;
        env
    }

    /// The tenant and client ids still missing after
    /// [`resolve_from_env`](Self::resolve_from_env), as `tenant_id (<tenant_var>)` items.
    pub(crate) fn missing_ids(&self, tenant_var: &str, client_var: &str) -> Vec<String> {
        let mut missing = Vec::new();
        if self.tenant_id.is_none() {
            missing.push(format!("tenant_id ({tenant_var})"));
        }
        if self.client_id.is_none() {
            missing.push(format!("client_id ({client_var})"));
        }
        missing
    }

    /// The additionally allowed tenants: the builder's list, else (for credentials that read
    /// the environment) `AZURE_ADDITIONALLY_ALLOWED_TENANTS`, comma-separated, blanks dropped.
    pub(crate) fn allowed_tenants(&self, env: &Env) -> Vec<String> {
        if let Some(list) = &self.additionally_allowed_tenants {
            return list.clone();
        }
        if !self.read_allowed_tenants_from_env {
            return Vec::new();
        }
        env.non_blank(AZURE_ADDITIONALLY_ALLOWED_TENANTS)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The pipeline requests go through: the runtime's client (default
    /// [`ReqwestClient::shared`]), clock, sleeper and limits, and the retry policy.
    pub(crate) fn pipeline(&self, name: &'static str) -> Result<Pipeline, Error> {
        let client: Arc<dyn HttpClient> = match self.runtime.custom_http_client() {
            Some(client) => client.clone(),
            None => ReqwestClient::shared().map_err(|e| e.with_credential(name))?,
        };
        Ok(self
            .runtime
            .pipeline(move || client, self.retry.clone().unwrap_or_default()))
    }

    /// Validates the settings and builds the client.
    pub(crate) fn build(
        &self,
        name: &'static str,
        kind: &'static str,
        auth: ClientAuth,
    ) -> Result<EntraClient, Error> {
        let env = self.env();
        let tenant = self
            .tenant_id
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Error::invalid_configuration(name, "a tenant id is required; set tenant_id")
            })?;
        validate_tenant_id(name, tenant)
            .map_err(|e| e.with_kind(ErrorKind::InvalidConfiguration))?;
        let client_id = self
            .client_id
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                Error::invalid_configuration(name, "a client id is required; set client_id")
            })?;
        let authority = Authority::resolve(
            name,
            self.authority_host.as_deref(),
            &env,
            self.allow_insecure_loopback_authority,
        )?;
        let pipeline = self.pipeline(name)?;
        let clock = pipeline.clock().clone();
        let identity = format!("entra/{kind}/{}/{client_id}", authority.as_str());
        Ok(EntraClient {
            inner: Arc::new(Inner {
                name,
                source: kind,
                detail: None,
                identity,
                authority,
                tenant: tenant.to_owned(),
                client_id: client_id.to_owned(),
                allowed_tenants: self.allowed_tenants(&env),
                env,
                pipeline,
                clock: clock.clone(),
                auth,
            }),
            cache: TokenCache::with_clock(clock),
        })
    }
}

/// A builder setting when set and not blank, else the environment variable `var` when not
/// blank.
pub(crate) fn setting_or_env(env: &Env, explicit: Option<String>, var: &str) -> Option<String> {
    explicit
        .filter(|v| !v.trim().is_empty())
        .or_else(|| env.non_blank(var).map(str::to_owned))
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

struct Inner {
    name: &'static str,
    /// The kind of credential: the `source` of its `get_token` span.
    source: &'static str,
    /// One more setting the credential's `Debug` shows (name, value).
    detail: Option<(&'static str, Arc<dyn fmt::Debug + Send + Sync>)>,
    identity: String,
    authority: Authority,
    tenant: String,
    client_id: String,
    allowed_tenants: Vec<String>,
    env: Env,
    pipeline: Pipeline,
    clock: Arc<dyn Clock>,
    auth: ClientAuth,
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

/// The `claims` form field: the caller's claims challenge as given, merged with the CAE
/// client capability `{"access_token":{"xms_cc":{"values":["CP1"]}}}` when CAE is requested.
pub(crate) fn request_claims(
    name: &'static str,
    options: &TokenRequestOptions,
) -> Result<Option<String>, Error> {
    let challenge = options.claims_challenge();
    if !options.enable_cae {
        return Ok(challenge.map(str::to_owned));
    }
    let not_object = || {
        Error::invalid_argument(
            name,
            "the claims challenge is not a JSON object; pass the decoded claims from the WWW-Authenticate header",
        )
    };
    let mut root = match challenge {
        None => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            _ => return Err(not_object()),
        },
    };
    let access = root
        .entry("access_token")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(access) = access else {
        return Err(not_object());
    };
    let cp1 = Value::String("CP1".to_owned());
    match access.get_mut("xms_cc").and_then(|v| v.get_mut("values")) {
        Some(Value::Array(values)) => {
            if !values.contains(&cp1) {
                values.push(cp1);
            }
        }
        _ => {
            access.insert("xms_cc".to_owned(), serde_json::json!({ "values": [cp1] }));
        }
    }
    Ok(Some(Value::Object(root).to_string()))
}

/// Reads a token response. `secrets` are scrubbed from every message.
pub(crate) fn parse_response(
    name: &'static str,
    response: &Response,
    requested_at: SystemTime,
    secrets: &[&str],
) -> Result<AccessToken, Error> {
    let status = response.status().as_u16();
    let json: Option<Value> = serde_json::from_slice(response.body()).ok();
    if !response.status().is_success() {
        return Err(entra_error(name, status, json.as_ref(), secrets));
    }
    let unexpected = |reason: &str| {
        let fields = match &json {
            Some(Value::Object(map)) => {
                let mut names: Vec<&str> = map.keys().map(String::as_str).collect();
                names.sort_unstable();
                format!("fields: {}", sanitize(&names.join(", "), secrets, 400))
            }
            Some(_) => "a JSON value that is not an object".to_owned(),
            None => format!("{} bytes that are not JSON", response.body().len()),
        };
        Error::authentication_failed(
            name,
            format!("unexpected response from Microsoft Entra ID (HTTP {status}): {reason}; the body held {fields}"),
        )
        .with_status(status)
    };
    let Some(Value::Object(map)) = &json else {
        return Err(unexpected("the body is not a JSON object"));
    };
    let token = match map.get("access_token") {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        _ => return Err(unexpected("access_token is missing")),
    };
    let Some(expires_in) = map.get("expires_in").and_then(seconds) else {
        return Err(unexpected("expires_in is missing or not a number"));
    };
    // Checked: `SystemTime + Duration` panics on overflow, and the value is the service's.
    let Some(expires_on) = requested_at.checked_add(Duration::from_secs(expires_in)) else {
        return Err(unexpected("expires_in is out of range"));
    };
    let mut access = AccessToken::new(token, expires_on);
    if let Some(refresh_in) = map.get("refresh_in").and_then(seconds) {
        if refresh_in > 0 && refresh_in < expires_in {
            access = access.with_refresh_on(requested_at + Duration::from_secs(refresh_in));
        }
    }
    Ok(access)
}

/// A whole number of seconds, given as a JSON number or a numeric string.
fn seconds(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0 && *f < 1e12)
                .map(|f| {
                    #[allow(
                        clippy::cast_possible_truncation,
                        clippy::cast_sign_loss,
                        reason = "range checked above"
                    )]
                    let whole = f as u64;
                    whole
                })
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An authentication failure built from an Entra error response.
fn entra_error(name: &'static str, status: u16, json: Option<&Value>, secrets: &[&str]) -> Error {
    let text = |key: &str| {
        json.and_then(|j| j.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
    };
    let message = match (text("error"), text("error_description")) {
        (None, None) => {
            let retried = if status == 429 || status >= 500 {
                " after retries"
            } else {
                ""
            };
            format!(
                "Microsoft Entra ID answered HTTP {status}{retried} without an OAuth error; check the authority host and tenant id"
            )
        }
        (error, description) => {
            let mut m = format!("Microsoft Entra ID refused the token request (HTTP {status}");
            if let Some(error) = error {
                m.push_str(", ");
                m.push_str(&sanitize(error, secrets, 100));
            }
            m.push(')');
            if let Some(description) = description {
                m.push_str(": ");
                m.push_str(&sanitize(description, secrets, 2000));
            }
            for (key, label) in [
                ("trace_id", "Trace ID"),
                ("correlation_id", "Correlation ID"),
            ] {
                if let Some(id) = text(key) {
                    let id = sanitize(id, secrets, 100);
                    if !m.contains(&id) {
                        m.push_str(&format!("; {label}: {id}"));
                    }
                }
            }
            m
        }
    };
    Error::authentication_failed(name, message).with_status(status)
}

/// Makes service text safe to print: secrets replaced by `***`, control characters by spaces,
/// at most `max` characters.
pub(crate) fn sanitize(text: &str, secrets: &[&str], max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        if out.contains(secret) {
            out = out.replace(secret, "***");
        }
        // A secret cut by the length limit would leave a prefix behind.
        if let Some(prefix) = (8..secret.len())
            .rev()
            .filter(|n| secret.is_char_boundary(*n))
            .map(|n| &secret[..n])
            .find(|p| out.ends_with(&format!("{p}…")))
        {
            let cut = out.len() - prefix.len() - '…'.len_utf8();
            out.truncate(cut);
            out.push_str("***…");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> Response {
        http::Response::builder()
            .status(status)
            .body(Bytes::from(body.to_owned()))
            .unwrap()
    }

    const T0: SystemTime = SystemTime::UNIX_EPOCH;

    #[test]
    fn a_token_response_sets_expiry_and_the_service_refresh_hint() {
        let t = parse_response(
            "X",
            &response(
                200,
                r#"{"access_token":"AT","expires_in":"3600","refresh_in":1800}"#,
            ),
            T0,
            &[],
        )
        .unwrap();
        assert_eq!(t.token.secret(), "AT");
        assert_eq!(t.expires_on, T0 + Duration::from_secs(3600));
        assert_eq!(t.refresh_on, Some(T0 + Duration::from_secs(1800)));
        let t = parse_response(
            "X",
            &response(200, r#"{"access_token":"AT","expires_in":86400}"#),
            T0,
            &[],
        )
        .unwrap();
        assert_eq!(t.refresh_on, None);
    }

    #[test]
    fn an_unexpected_body_is_refused_without_echoing_values() {
        for body in [
            r#"{"access_token":"planted-token-value"}"#,
            r#"{"token":"planted-token-value","expires_in":10}"#,
            "planted-token-value",
            r#"["planted-token-value"]"#,
        ] {
            let err = parse_response("X", &response(200, body), T0, &[]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
            let text = format!("{err} {err:?}");
            assert!(!text.contains("planted"), "{text}");
            assert!(text.contains("unexpected response"), "{text}");
        }
    }

    #[test]
    fn an_entra_error_keeps_the_description_and_correlation_id_and_scrubs_secrets() {
        let body = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided: planted-secret-value\r\nTrace ID: t1","error_codes":[7000215],"trace_id":"t1","correlation_id":"c1"}"#;
        let err =
            parse_response("X", &response(401, body), T0, &["planted-secret-value"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
        assert_eq!(err.status(), Some(401));
        let text = err.to_string();
        assert!(text.contains("AADSTS7000215"), "{text}");
        assert!(text.contains("invalid_client"), "{text}");
        assert!(text.contains("Correlation ID: c1"), "{text}");
        assert!(!text.contains("planted"), "{text}");
        assert!(!text.contains('\n'), "{text}");
        assert_eq!(text.matches("t1").count(), 1, "{text}");
    }

    #[test]
    fn a_server_error_without_oauth_json_names_the_status() {
        let err = parse_response("X", &response(503, "<html>planted</html>"), T0, &[]).unwrap_err();
        assert!(err.to_string().contains("HTTP 503 after retries"), "{err}");
        assert!(!err.to_string().contains("planted"));
        assert!(err.is_transient());
    }

    #[test]
    fn cae_merges_the_cp1_capability_into_caller_claims() {
        let options = TokenRequestOptions::default()
            .claims(r#"{"access_token":{"nbf":{"essential":true,"value":"1"}}}"#)
            .enable_cae(true);
        let merged: Value =
            serde_json::from_str(&request_claims("X", &options).unwrap().unwrap()).unwrap();
        assert_eq!(merged["access_token"]["nbf"]["value"], "1");
        assert_eq!(
            merged["access_token"]["xms_cc"]["values"],
            serde_json::json!(["CP1"])
        );

        let cae_only = request_claims("X", &TokenRequestOptions::default().enable_cae(true))
            .unwrap()
            .unwrap();
        assert_eq!(
            cae_only,
            r#"{"access_token":{"xms_cc":{"values":["CP1"]}}}"#
        );

        let plain =
            request_claims("X", &TokenRequestOptions::default().claims("{\"a\":1}")).unwrap();
        assert_eq!(plain.as_deref(), Some("{\"a\":1}"));
        assert_eq!(
            request_claims("X", &TokenRequestOptions::default()).unwrap(),
            None
        );

        let err = request_claims(
            "X",
            &TokenRequestOptions::default()
                .claims("not json")
                .enable_cae(true),
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn sanitize_scrubs_secrets_even_when_cut_by_the_limit() {
        let s = sanitize("abc planted-secret-value", &["planted-secret-value"], 16);
        assert!(!s.contains("planted-s"), "{s}");
    }
}
