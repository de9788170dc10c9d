//! [`UserClient`]: what a sign-in credential and its clones share: the settings, the
//! signed-in account with its refresh token, and the token cache; `get_token` from the cache,
//! the refresh token or a new sign-in.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use identity_core::TokenRequestOptions;
use identity_core::cache::{CacheKey, KeyRef, TokenCache};
use identity_core::http::Pipeline;
use identity_core::{AccessToken, Clock, Env, Error, Secret, Sleeper};

use super::wire::{Answer, Step, classify_answer, sorted};
use super::{
    AuthenticationRecord, Flow, PromptCallback, SignInRequest, TokenResponse, persist,
    validate_scopes,
};
use crate::authority::Authority;
use crate::client::Tenancy;

/// The settings and state shared by a user credential and its clones.
#[derive(Clone)]
pub(crate) struct UserClient {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) name: &'static str,
    pub(super) identity: String,
    pub(super) authority: Authority,
    pub(super) tenancy: Tenancy,
    pub(super) client_id: String,
    pub(super) pipeline: Pipeline,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) sleeper: Arc<dyn Sleeper>,
    pub(super) cache: TokenCache,
    pub(super) account: Mutex<Account>,
    pub(super) sign_in: tokio::sync::Mutex<()>,
    pub(super) flow: Arc<dyn Flow>,
    pub(super) automatic: bool,
    pub(super) persistence: Option<persist::Store>,
    pub(super) prompt: PromptCallback,
    /// Set once a failed write of the persistent cache has been logged.
    pub(super) save_warned: AtomicBool,
}

/// The signed-in account: its record and refresh token, once known.
#[derive(Clone, Default)]
pub(super) struct Account {
    pub(super) record: Option<AuthenticationRecord>,
    pub(super) refresh_token: Option<Secret>,
    pub(super) loaded: bool,
    /// Why the persistent cache could not be read (names the path, never the content).
    pub(super) cache_problem: Option<String>,
}

impl fmt::Debug for UserClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        let account = inner.account();
        f.debug_struct("UserClient")
            .field("authority", &inner.authority.as_str())
            .field("tenancy", &inner.tenancy)
            .field("client_id", &inner.client_id)
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

impl UserClient {
    /// The credential's name.
    pub(crate) fn name(&self) -> &'static str {
        self.inner.name
    }

    pub(crate) fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    pub(crate) fn authority(&self) -> &Authority {
        &self.inner.authority
    }

    pub(crate) fn env(&self) -> &Env {
        &self.inner.tenancy.env
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
        let (inner, name) = (&self.inner, self.inner.name);
        let ask = inner.tenancy.ask(name, scopes, options)?;
        let (tenant, claims) = (ask.tenant, ask.claims);
        let key = KeyRef::new(&inner.identity, scopes, Some(&tenant), options.enable_cae);
        inner
            .cache
            .get_or_fetch(key, ask.bypass, || {
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
        let (token, saved) = self.store(response);
        inner.cache.insert(
            CacheKey::new(&inner.identity, scopes, Some(&tenant), options.enable_cae),
            token,
        );
        match saved {
            // The caller asked for persistence: a sign-in that the next process cannot use
            // is reported, though this credential keeps working.
            Err(problem) => Err(Error::invalid_configuration(
                name,
                format!(
                    "the user signed in, but the persistent token cache could not be written: {problem}; this credential keeps the sign-in, but another process will ask the user to sign in again"
                ),
            )),
            Ok(()) => Ok(record),
        }
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
        self.inner.tenancy.resolve(self.inner.name, options)
    }

    /// The refresh token if one is known, then a sign-in if allowed.
    async fn acquire(self, request: SignInRequest) -> Result<AccessToken, Error> {
        let inner = &self.inner;
        self.load_persisted();
        let tried = inner.account().refresh_token;
        let mut refused = None;
        if let Some(refresh_token) = &tried {
            match self.redeem_refresh_token(&request, refresh_token).await? {
                Ok(token) => return Ok(token),
                Err(reason) => refused = Some(reason),
            }
        }
        if !inner.automatic {
            let mut message = "interactive authentication is needed and automatic authentication is disabled; call authenticate() first".to_owned();
            if let Some(reason) = refused {
                message.push_str(&format!(" (the refresh token was refused: {reason})"));
            }
            if let Some(problem) = inner.account().cache_problem {
                message.push_str(&format!(
                    " (the persistent token cache could not be read: {problem})"
                ));
            }
            return Err(Error::authentication_failed(inner.name, message));
        }
        let _guard = inner.sign_in.lock().await;
        // Another call may have signed the user in while this one waited.
        if let Some(refresh_token) = inner.account().refresh_token {
            if tried.as_ref() != Some(&refresh_token) {
                if let Ok(token) = self.redeem_refresh_token(&request, &refresh_token).await? {
                    return Ok(token);
                }
            }
        }
        let response = inner.flow.sign_in(&self, request).await?;
        Ok(self.store_quietly(response))
    }

    /// [`store`](Self::store) for `get_token`: a failed write of the persistent cache does not
    /// fail the call (the token is good); it is logged at warn level, once per credential.
    fn store_quietly(&self, response: TokenResponse) -> AccessToken {
        let (token, saved) = self.store(response);
        if let Err(problem) = saved {
            if !self.inner.save_warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(credential = self.inner.name, error = %problem, "could not write the persistent token cache; another process will ask the user to sign in again");
            }
        }
        token
    }

    /// Keeps the account and refresh token of a response and persists them; returns the
    /// access token and whether the persistent cache (if any) was written: the error names
    /// the file and the reason, never the content.
    fn store(&self, response: TokenResponse) -> (AccessToken, Result<(), String>) {
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
                return (response.access, Err(e.to_string()));
            }
        }
        (response.access, Ok(()))
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
                account.cache_problem = Some(e.to_string());
            }
        }
    }

    /// Redeems the refresh token; `Ok(Err(reason))` when Entra refuses it and the user must
    /// sign in again, `reason` being Entra's answer (its `AADSTS` code and description, the
    /// refresh token removed).
    async fn redeem_refresh_token(
        &self,
        request: &SignInRequest,
        refresh_token: &Secret,
    ) -> Result<Result<AccessToken, String>, Error> {
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
        if classify_answer(Step::Refresh, &response) == Answer::SignInAgain {
            tracing::debug!(
                credential = self.inner.name,
                "the refresh token was refused; the user must sign in again"
            );
            let json = crate::response::body_json(&response);
            let (_, reason) = crate::response::classify_refusal(
                response.status().as_u16(),
                json.as_ref(),
                &crate::response::redactor(&secrets),
            );
            return Ok(Err(reason));
        }
        let parsed = self.parse_token_response(&response, now, &secrets)?;
        Ok(Ok(self.store_quietly(parsed)))
    }
}
