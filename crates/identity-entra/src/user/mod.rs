//! Signing a user in: the public-client flows ([`DeviceCodeCredential`],
//! [`InteractiveBrowserCredential`]), the silent use of the refresh token they keep, the
//! [`AuthenticationRecord`] that lets a later process start from a sign-in, the opt-in
//! persistent user-token file, and the confidential [`OnBehalfOfCredential`].
//!
//! [`DeviceCodeCredential`]: device_code::DeviceCodeCredential
//! [`InteractiveBrowserCredential`]: interactive_browser::InteractiveBrowserCredential
//! [`OnBehalfOfCredential`]: on_behalf_of::OnBehalfOfCredential
//!
//! Wire (`docs/protocol.md` §6):
//! * every user flow asks for the caller's scopes plus `offline_access openid profile`, so the
//!   answer carries a refresh token and an ID token, and sends `client_info=1`, so it carries
//!   the `uid.utid` home account id;
//! * the default tenant is `organizations` and the default client id is the public client the
//!   other Azure SDKs use for developer sign-in,
//!   [`DEVELOPER_SIGN_ON_CLIENT_ID`] (`04b07795-8ddb-461a-bbee-02f9e1bf7b46`);
//! * a later `get_token` (another scope, an expired token) posts
//!   `grant_type=refresh_token` and keeps the rotated refresh token; only when Entra refuses
//!   it (`invalid_grant`, `interaction_required`) is the user asked again, and never when
//!   `disable_automatic_authentication(true)` was set.
//!
//! Access tokens go through the one [`TokenCache`] of the credential; the refresh token is
//! held beside it as a [`Secret`], never printed, logged or put in an error.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use identity_core::TokenRequestOptions;
use identity_core::cache::{CacheKey, KeyRef, TokenCache};
use identity_core::http::{Pipeline, Response, SendOptions};
use identity_core::scope::resolve_tenant;
use identity_core::{AccessToken, BoxFuture, Clock, Env, Error, Secret, Sleeper};
use serde_json::Value;

use std::marker::PhantomData;

use crate::authority::Authority;
pub(crate) use crate::client::validate_scopes;
use crate::credential::sealed::{Fetch, Ids};
use crate::credential::{Credential, CredentialBuilder, TokenFuture};
use crate::options::{CommonOptions, valid_tenant};
use identity_core::TokenRequestOptions as Options;

pub mod device_code;
pub mod interactive_browser;
pub mod keyring;
pub mod on_behalf_of;
mod persist;
mod record;

#[cfg(test)]
pub(crate) mod emulator;

pub use keyring::Keyring;
#[cfg(feature = "keyring")]
pub use keyring::PlatformKeyring;
pub use persist::TokenCachePersistenceOptions;
pub use record::AuthenticationRecord;

/// The public client id the Azure SDKs use for developer sign-in (the Azure CLI's
/// application), the default client id of [`InteractiveBrowserCredential`] and
/// [`DeviceCodeCredential`].
///
/// [`InteractiveBrowserCredential`]: interactive_browser::InteractiveBrowserCredential
/// [`DeviceCodeCredential`]: device_code::DeviceCodeCredential
pub const DEVELOPER_SIGN_ON_CLIENT_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

/// The tenant a user flow signs in to when none is configured: any work or school account.
pub const DEFAULT_USER_TENANT: &str = "organizations";

/// Scopes every user flow adds, for a refresh token and an ID token.
const RESERVED_SCOPES: [&str; 3] = ["offline_access", "openid", "profile"];

/// Where a user flow's messages go: the device code prompt, or the sign-in URL when no browser
/// can be started. The default writes the text and a newline to stderr.
pub type PromptCallback = Arc<dyn Fn(&str) + Send + Sync>;

/// The default prompt: the text on stderr.
pub(crate) fn stderr_prompt() -> PromptCallback {
    Arc::new(|text: &str| {
        use std::io::Write as _;
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{text}");
        let _ = err.flush();
    })
}

/// What an interactive flow needs to sign a user in.
#[derive(Clone, Debug)]
pub(crate) struct SignInRequest {
    /// The tenant of the request.
    pub(crate) tenant: String,
    /// The caller's scopes, sorted, without the reserved ones.
    pub(crate) scopes: Vec<String>,
    /// The `claims` request field, if any.
    pub(crate) claims: Option<String>,
}

impl SignInRequest {
    /// The `scope` field: the caller's scopes and the reserved ones, space-separated.
    pub(crate) fn scope_field(&self) -> String {
        scope_field(&self.scopes)
    }
}

fn scope_field(scopes: &[String]) -> String {
    let mut all: Vec<&str> = scopes.iter().map(String::as_str).collect();
    for reserved in RESERVED_SCOPES {
        if !all.contains(&reserved) {
            all.push(reserved);
        }
    }
    all.join(" ")
}

/// A way to sign a user in: the device code flow or the browser.
pub(crate) trait Flow: Send + Sync + fmt::Debug {
    /// Signs the user in and redeems the grant for tokens.
    fn sign_in<'a>(
        &'a self,
        client: &'a UserClient,
        request: SignInRequest,
    ) -> BoxFuture<'a, Result<TokenResponse, Error>>;
}

/// A token response of a user flow.
#[derive(Debug)]
pub(crate) struct TokenResponse {
    pub(crate) access: AccessToken,
    pub(crate) refresh_token: Option<Secret>,
    pub(crate) record: Option<AuthenticationRecord>,
}

/// Settings of the two interactive credentials' builders.
#[derive(Clone, Default)]
pub(crate) struct UserOptions {
    pub(crate) record: Option<AuthenticationRecord>,
    pub(crate) persistence: Option<TokenCachePersistenceOptions>,
    pub(crate) disable_automatic_authentication: bool,
    pub(crate) prompt: Option<PromptCallback>,
}

impl fmt::Debug for UserOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserOptions")
            .field("authentication_record", &self.record)
            .field("persistence", &self.persistence)
            .field(
                "disable_automatic_authentication",
                &self.disable_automatic_authentication,
            )
            .field("prompt", &self.prompt.as_ref().map(|_| "callback"))
            .finish()
    }
}

/// The settings of a sign-in credential's builder: those the two share, and `F`, those of
/// one (the `S` of its [`CredentialBuilder`]).
#[derive(Clone, Debug, Default)]
pub struct UserSettings<F> {
    pub(crate) user: UserOptions,
    pub(crate) flow: F,
}

impl<F> Ids for UserSettings<F> {}

impl<F> CredentialBuilder<UserSettings<F>> {
    /// A record from an earlier `authenticate` (possibly in another process): the account
    /// to use silently. With a [persistent cache](Self::token_cache_persistence) holding its
    /// refresh token, no prompt is needed.
    pub fn authentication_record(mut self, record: AuthenticationRecord) -> Self {
        self.settings.user.record = Some(record);
        self
    }

    /// Keeps the refresh token in a file, so a later process with the
    /// [`AuthenticationRecord`] signs in silently.
    pub fn token_cache_persistence(mut self, options: TokenCachePersistenceOptions) -> Self {
        self.settings.user.persistence = Some(options);
        self
    }

    /// When `true`, `get_token` never starts a sign-in: it fails with
    /// [`ErrorKind::AuthenticationFailed`](identity_core::ErrorKind::AuthenticationFailed)
    /// until `authenticate` has been called (default `false`).
    pub fn disable_automatic_authentication(mut self, disable: bool) -> Self {
        self.settings.user.disable_automatic_authentication = disable;
        self
    }

    /// Builds the credential around `flow`, the way its user signs in.
    fn build_user<M>(
        mut self,
        name: &'static str,
        source: &'static str,
        flow: Arc<dyn Flow>,
    ) -> Result<Credential<SignIn<M>>, Error> {
        self.common.resolve();
        let client = self.settings.user.build(&self.common, name, flow)?;
        let marker = PhantomData;
        Ok(Credential::new(name, source, SignIn { client, marker }))
    }
}

/// The kind `K` of the two sign-in credentials ([`InteractiveBrowserCredential`],
/// [`DeviceCodeCredential`]): the signed-in account, its refresh token and the token cache.
/// `M` names the credential.
///
/// [`InteractiveBrowserCredential`]: interactive_browser::InteractiveBrowserCredential
/// [`DeviceCodeCredential`]: device_code::DeviceCodeCredential
#[derive(Clone)]
pub struct SignIn<M> {
    client: UserClient,
    marker: PhantomData<fn() -> M>,
}

impl<M> fmt::Debug for SignIn<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(self.client.inner.name)
            .field("client", &self.client)
            .finish()
    }
}

impl<M: 'static> Credential<SignIn<M>> {
    /// Signs the user in now (the browser opens, or the device code is shown), whether or not
    /// a token is cached, and returns the account's record; `scopes` empty means Azure
    /// Resource Manager's `.default`.
    ///
    /// # Errors
    /// [`ErrorKind::AuthenticationFailed`](identity_core::ErrorKind::AuthenticationFailed) when
    /// the user declines or cancels, the code expires, the time limit passes or Entra refuses;
    /// [`ErrorKind::Transport`](identity_core::ErrorKind::Transport) when Entra cannot be
    /// reached; [`ErrorKind::InvalidConfiguration`](identity_core::ErrorKind::InvalidConfiguration)
    /// when the browser's redirect port cannot be bound.
    pub async fn authenticate(&self, scopes: &[&str]) -> Result<AuthenticationRecord, Error> {
        self.kind
            .client
            .authenticate(scopes, &TokenRequestOptions::default())
            .await
    }

    /// The signed-in account, once known.
    #[must_use]
    pub fn authentication_record(&self) -> Option<AuthenticationRecord> {
        self.kind.client.record()
    }
}

impl<M: Clone + 'static> Fetch for SignIn<M> {
    fn fetch<'a>(&'a self, scopes: &'a [&'a str], options: &'a Options) -> TokenFuture<'a> {
        Box::pin(self.client.get_token(scopes, options))
    }
}

/// The settings and state shared by a user credential and its clones.
#[derive(Clone)]
pub(crate) struct UserClient {
    inner: Arc<Inner>,
}

struct Inner {
    name: &'static str,
    identity: String,
    authority: Authority,
    tenant: String,
    client_id: String,
    allowed_tenants: Vec<String>,
    env: Env,
    pipeline: Pipeline,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    cache: TokenCache,
    account: Mutex<Account>,
    sign_in: tokio::sync::Mutex<()>,
    flow: Arc<dyn Flow>,
    automatic: bool,
    persistence: Option<persist::Store>,
    prompt: PromptCallback,
}

/// The signed-in account: its record and refresh token, once known.
#[derive(Clone, Default)]
struct Account {
    record: Option<AuthenticationRecord>,
    refresh_token: Option<Secret>,
    loaded: bool,
}

impl fmt::Debug for UserClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        let account = inner.account();
        f.debug_struct("UserClient")
            .field("authority", &inner.authority.as_str())
            .field("tenant", &inner.tenant)
            .field("client_id", &inner.client_id)
            .field("additionally_allowed_tenants", &inner.allowed_tenants)
            .field("account", &account.record)
            .field(
                "refresh_token",
                &account.refresh_token.as_ref().map(|_| "***"),
            )
            .field("flow", &inner.flow)
            .field("persistence", &inner.persistence)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn account(&self) -> Account {
        self.account
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl UserOptions {
    /// Validates the settings and builds the client.
    pub(crate) fn build(
        &self,
        common: &CommonOptions,
        name: &'static str,
        flow: Arc<dyn Flow>,
    ) -> Result<UserClient, Error> {
        let env = common.env();
        let record = self.record.as_ref();
        let tenant = common
            .tenant()
            .or_else(|| record.map(|r| r.tenant_id.as_str()))
            .unwrap_or(DEFAULT_USER_TENANT);
        let tenant = valid_tenant(name, tenant)?;
        let client_id = common
            .client()
            .or_else(|| record.map(|r| r.client_id.as_str()))
            .unwrap_or(DEVELOPER_SIGN_ON_CLIENT_ID);
        if let Some(record) = record {
            if record.client_id != client_id {
                return Err(Error::invalid_configuration(
                    name,
                    "the authentication record was made for another client id; use the record's client id or sign in again",
                ));
            }
        }
        let record_authority = record.map(|r| format!("https://{}", r.authority));
        let authority = common.authority(name, record_authority.as_deref(), &env)?;
        let pipeline = common.pipeline(name)?;
        let clock = pipeline.clock().clone();
        let sleeper = common.runtime.sleeper_or_default();
        let persistence = match &self.persistence {
            Some(options) => Some(options.open(name, &env)?),
            None => None,
        };
        let identity = format!("entra/user/{}/{client_id}", authority.as_str());
        Ok(UserClient {
            inner: Arc::new(Inner {
                name,
                identity,
                authority,
                tenant: tenant.to_owned(),
                client_id: client_id.to_owned(),
                allowed_tenants: common.allowed_tenants(&env),
                env,
                pipeline,
                clock: clock.clone(),
                sleeper,
                cache: TokenCache::with_clock(clock),
                account: Mutex::new(Account {
                    record: self.record.clone(),
                    refresh_token: None,
                    loaded: false,
                }),
                sign_in: tokio::sync::Mutex::new(()),
                flow,
                automatic: !self.disable_automatic_authentication,
                persistence,
                prompt: self.prompt.clone().unwrap_or_else(stderr_prompt),
            }),
        })
    }
}

impl UserClient {
    pub(crate) fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    pub(crate) fn authority(&self) -> &Authority {
        &self.inner.authority
    }

    pub(crate) fn env(&self) -> &Env {
        &self.inner.env
    }

    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    pub(crate) fn sleeper(&self) -> &Arc<dyn Sleeper> {
        &self.inner.sleeper
    }

    pub(crate) fn prompt(&self, text: &str) {
        (self.inner.prompt)(text);
    }

    /// The signed-in account's record, if any.
    pub(crate) fn record(&self) -> Option<AuthenticationRecord> {
        self.inner.account().record
    }

    /// Gets a token from the cache, the refresh token, or (when allowed) a new sign-in.
    pub(crate) async fn get_token(
        &self,
        scopes: &[&str],
        options: &TokenRequestOptions,
    ) -> Result<AccessToken, Error> {
        let inner = &self.inner;
        let name = inner.name;
        validate_scopes(name, scopes)?;
        let tenant = self.tenant_for(options)?;
        let claims = crate::response::request_claims(name, options)?;
        let bypass = options.claims_challenge().is_some();
        let key = KeyRef::new(&inner.identity, scopes, Some(&tenant), options.enable_cae);
        inner
            .cache
            .get_or_fetch(key, bypass, || {
                let client = self.clone();
                let request = SignInRequest {
                    tenant: tenant.clone(),
                    scopes: sorted(scopes),
                    claims,
                };
                async move { client.acquire(request).await }
            })
            .await
    }

    /// Signs the user in now (always interactively) and returns the account's record.
    pub(crate) async fn authenticate(
        &self,
        scopes: &[&str],
        options: &TokenRequestOptions,
    ) -> Result<AuthenticationRecord, Error> {
        let inner = &self.inner;
        let name = inner.name;
        let default_scope;
        let scopes = if scopes.is_empty() {
            default_scope = [self.default_scope()];
            &default_scope[..]
        } else {
            scopes
        };
        validate_scopes(name, scopes)?;
        let tenant = self.tenant_for(options)?;
        let claims = crate::response::request_claims(name, options)?;
        let request = SignInRequest {
            tenant: tenant.clone(),
            scopes: sorted(scopes),
            claims,
        };
        let _guard = inner.sign_in.lock().await;
        let response = inner.flow.sign_in(self, request).await?;
        let record = response.record.clone().ok_or_else(|| {
            Error::authentication_failed(
                name,
                "the sign-in answer carried no ID token, so no authentication record can be made; check that the application may request the openid scope",
            )
        })?;
        let token = self.store(response);
        inner.cache.insert(
            CacheKey::new(&inner.identity, scopes, Some(&tenant), options.enable_cae),
            token,
        );
        Ok(record)
    }

    /// The default scope of `authenticate`: Azure Resource Manager in the authority's cloud.
    fn default_scope(&self) -> &'static str {
        let host = self.inner.authority.as_str();
        if host.ends_with(".cn") {
            "https://management.chinacloudapi.cn/.default"
        } else if host.ends_with(".us") {
            "https://management.usgovcloudapi.net/.default"
        } else {
            "https://management.azure.com/.default"
        }
    }

    fn tenant_for(&self, options: &TokenRequestOptions) -> Result<String, Error> {
        let inner = &self.inner;
        Ok(resolve_tenant(
            inner.name,
            Some(&inner.tenant),
            options.tenant(),
            &inner.allowed_tenants,
            &inner.env,
        )?
        .unwrap_or_else(|| inner.tenant.clone()))
    }

    /// The refresh token if one is known, then a sign-in if allowed.
    async fn acquire(self, request: SignInRequest) -> Result<AccessToken, Error> {
        let inner = &self.inner;
        self.load_persisted();
        let tried = inner.account().refresh_token;
        if let Some(refresh_token) = &tried {
            if let Some(token) = self.redeem_refresh_token(&request, refresh_token).await? {
                return Ok(token);
            }
        }
        if !inner.automatic {
            return Err(Error::authentication_failed(
                inner.name,
                "interactive authentication is needed and automatic authentication is disabled; call authenticate() first",
            ));
        }
        let _guard = inner.sign_in.lock().await;
        // Another call may have signed the user in while this one waited.
        if let Some(refresh_token) = inner.account().refresh_token {
            if tried.as_ref() != Some(&refresh_token) {
                if let Some(token) = self.redeem_refresh_token(&request, &refresh_token).await? {
                    return Ok(token);
                }
            }
        }
        let response = inner.flow.sign_in(&self, request).await?;
        Ok(self.store(response))
    }

    /// Keeps the account and refresh token of a response (and persists them); returns the
    /// access token.
    fn store(&self, response: TokenResponse) -> AccessToken {
        let inner = &self.inner;
        let snapshot = {
            let mut account = inner.account.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(record) = response.record {
                let changed = account
                    .record
                    .as_ref()
                    .is_some_and(|r| r.home_account_id != record.home_account_id);
                if changed {
                    // Another user signed in: nothing cached belongs to them.
                    inner.cache.clear();
                    account.refresh_token = None;
                }
                account.record = Some(record);
            }
            if let Some(refresh_token) = response.refresh_token {
                account.refresh_token = Some(refresh_token);
            }
            account.loaded = true;
            account.clone()
        };
        if let (Some(store), Some(record), Some(refresh_token)) = (
            &inner.persistence,
            &snapshot.record,
            &snapshot.refresh_token,
        ) {
            if let Err(e) = store.save(record, refresh_token) {
                tracing::warn!(credential = inner.name, error = %e, "could not write the persistent token cache");
            }
        }
        response.access
    }

    /// Reads the refresh token of the record's account from the persistent cache, once.
    fn load_persisted(&self) {
        let inner = &self.inner;
        let Some(store) = &inner.persistence else {
            return;
        };
        let mut account = inner.account.lock().unwrap_or_else(PoisonError::into_inner);
        if account.loaded || account.refresh_token.is_some() {
            return;
        }
        account.loaded = true;
        let Some(record) = account.record.clone() else {
            return;
        };
        match store.load(&record) {
            Ok(found) => account.refresh_token = found,
            Err(e) => {
                tracing::warn!(credential = inner.name, error = %e, "could not read the persistent token cache");
            }
        }
    }

    /// Redeems the refresh token; `None` when Entra refuses it and the user must sign in
    /// again.
    async fn redeem_refresh_token(
        &self,
        request: &SignInRequest,
        refresh_token: &Secret,
    ) -> Result<Option<AccessToken>, Error> {
        let scope = request.scope_field();
        let mut form = vec![
            ("client_id", self.inner.client_id.as_str()),
            ("grant_type", "refresh_token"),
            ("scope", scope.as_str()),
            ("refresh_token", refresh_token.secret()),
            ("client_info", "1"),
        ];
        if let Some(claims) = &request.claims {
            form.push(("claims", claims));
        }
        let secrets = [refresh_token.secret()];
        let (response, now) = self.post_token(&request.tenant, &form).await?;
        if matches!(
            oauth_error(&response).as_deref(),
            Some("invalid_grant" | "interaction_required")
        ) {
            tracing::debug!(
                credential = self.inner.name,
                "the refresh token was refused; the user must sign in again"
            );
            return Ok(None);
        }
        let parsed = self.parse_token_response(&response, now, &secrets)?;
        Ok(Some(self.store(parsed)))
    }

    /// Posts a form to `{authority}/{tenant}/oauth2/v2.0/{endpoint}` and returns the response
    /// with the time the request was made.
    pub(crate) async fn post(
        &self,
        tenant: &str,
        endpoint: &str,
        form: &[(&str, &str)],
    ) -> Result<(Response, SystemTime), Error> {
        post_form(
            self.inner.name,
            &self.inner.pipeline,
            &self.inner.clock,
            &format!(
                "{}/{tenant}/oauth2/v2.0/{endpoint}",
                self.inner.authority.as_str()
            ),
            form,
        )
        .await
    }

    /// Posts a form to the token endpoint.
    pub(crate) async fn post_token(
        &self,
        tenant: &str,
        form: &[(&str, &str)],
    ) -> Result<(Response, SystemTime), Error> {
        self.post(tenant, "token", form).await
    }

    /// Reads a token response; `secrets` are scrubbed from any message.
    pub(crate) fn parse_token_response(
        &self,
        response: &Response,
        requested_at: SystemTime,
        secrets: &[&str],
    ) -> Result<TokenResponse, Error> {
        let access =
            crate::response::parse_response(self.inner.name, response, requested_at, secrets)?;
        let json: Value = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
        let refresh_token = json
            .get("refresh_token")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(Secret::from);
        let record = match json.get("id_token").and_then(Value::as_str) {
            Some(id_token) => Some(record::from_id_token(
                self.inner.name,
                &self.inner.authority,
                id_token,
                json.get("client_info").and_then(Value::as_str),
            )?),
            None => None,
        };
        Ok(TokenResponse {
            access,
            refresh_token,
            record,
        })
    }
}

/// Posts an urlencoded form through `pipeline`.
pub(crate) async fn post_form(
    name: &'static str,
    pipeline: &Pipeline,
    clock: &Arc<dyn Clock>,
    url: &str,
    form: &[(&str, &str)],
) -> Result<(Response, SystemTime), Error> {
    let body = {
        let mut body = form_urlencoded::Serializer::new(String::new());
        for (key, value) in form {
            body.append_pair(key, value);
        }
        body.finish()
    };
    let request = http::Request::post(url)
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
        })?;
    let now = clock.now();
    let response = pipeline
        .send(name, &request, SendOptions::default())
        .await?;
    Ok((response, now))
}

/// The OAuth `error` code of an error response, if any.
pub(crate) fn oauth_error(response: &Response) -> Option<String> {
    if response.status().is_success() {
        return None;
    }
    let json: Value = serde_json::from_slice(response.body()).ok()?;
    json.get("error")
        .and_then(Value::as_str)
        .map(|s| s.chars().take(64).collect())
}

fn sorted(scopes: &[&str]) -> Vec<String> {
    let mut owned: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
    owned.sort_unstable();
    owned.dedup();
    owned
}

/// `n` random bytes from the system's secure source, base64url without padding.
pub(crate) fn random_urlsafe(name: &'static str, n: usize) -> Result<String, Error> {
    use ring::rand::SecureRandom as _;
    let mut bytes = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| {
            Error::authentication_failed(name, "the system random number generator failed")
        })?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The PKCE S256 challenge of `verifier`: base64url(SHA-256(verifier)).
pub(crate) fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

/// Lower-case hex SHA-256 of `text`.
pub(crate) fn sha256_hex(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A whole number of seconds from a JSON number or numeric string.
pub(crate) fn seconds(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Seconds as a duration, capped at a day (a server's number is not trusted further).
pub(crate) fn capped_seconds(seconds: u64) -> Duration {
    Duration::from_secs(seconds.min(86_400))
}
