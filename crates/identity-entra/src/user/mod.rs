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
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use identity_core::TokenRequestOptions as Options;
use identity_core::cache::TokenCache;
use identity_core::{AccessToken, BoxFuture, Error, Secret, TokenRequestOptions};

pub(crate) use crate::client::{post_form, validate_scopes};
use crate::credential::sealed::{Fetch, Ids};
use crate::credential::{Credential, CredentialBuilder, TokenFuture};
use crate::options::{CommonOptions, valid_tenant};

mod client;
pub mod device_code;
mod endpoint;
pub mod interactive_browser;
pub mod keyring;
pub mod on_behalf_of;
mod persist;
mod private_file;
mod record;
mod wire;

#[cfg(test)]
pub(crate) mod emulator;

pub use keyring::Keyring;
#[cfg(feature = "keyring")]
pub use keyring::PlatformKeyring;
pub use persist::TokenCachePersistenceOptions;
pub use record::AuthenticationRecord;

pub(crate) use client::UserClient;
use client::{Account, Inner};
pub(crate) use wire::{capped_seconds, pkce_challenge, random_urlsafe, seconds, sha256_hex};

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

/// A way to sign a user in: the device code flow or the browser. Each is written as a
/// [`RunFlow`]; this is the object-safe face the credential holds.
pub(crate) trait Flow: Send + Sync + fmt::Debug {
    /// Signs the user in and redeems the grant for tokens.
    fn sign_in<'a>(
        &'a self,
        client: &'a UserClient,
        request: SignInRequest,
    ) -> BoxFuture<'a, SignedIn>;
}

/// What a sign-in ends with: the tokens, or why there are none.
pub(crate) type SignedIn = Result<TokenResponse, Error>;

/// A way to sign a user in, as an `async fn`; every one is a [`Flow`].
pub(crate) trait RunFlow: Send + Sync + fmt::Debug {
    /// Signs the user in and redeems the grant for tokens.
    fn run(
        &self,
        client: &UserClient,
        request: SignInRequest,
    ) -> impl Future<Output = SignedIn> + Send;
}

impl<T: RunFlow> Flow for T {
    fn sign_in<'a>(
        &'a self,
        client: &'a UserClient,
        request: SignInRequest,
    ) -> BoxFuture<'a, SignedIn> {
        Box::pin(self.run(client, request))
    }
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
    /// refresh token, no prompt is needed. The record's fields are checked by `build`
    /// (`docs/protocol.md` §6.9): an invalid one (a record made with
    /// [`AuthenticationRecord::new`] from bad parts) fails it with
    /// [`ErrorKind::InvalidConfiguration`](identity_core::ErrorKind::InvalidConfiguration)
    /// naming the record's field. The record's tenant and client id apply when the builder
    /// sets none.
    pub fn authentication_record(mut self, record: AuthenticationRecord) -> Self {
        self.settings.user.record = Some(record);
        self
    }

    /// Keeps the refresh token in a file, so a later process with the
    /// [`AuthenticationRecord`] signs in silently. A write that fails makes `authenticate`
    /// return an [`ErrorKind::InvalidConfiguration`](identity_core::ErrorKind::InvalidConfiguration)
    /// error naming the file and the reason; `get_token` logs it at warn level, once.
    pub fn token_cache_persistence(mut self, options: TokenCachePersistenceOptions) -> Self {
        self.settings.user.persistence = Some(options);
        self
    }

    /// When `true`, `get_token` never starts a sign-in: it fails with
    /// [`ErrorKind::AuthenticationFailed`](identity_core::ErrorKind::AuthenticationFailed)
    /// until `authenticate` has been called (default `false`); when Entra refused the refresh
    /// token, the error's message keeps Entra's reason (its `AADSTS` code and description).
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
        f.debug_struct(self.client.name())
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
    /// when the browser's redirect port cannot be bound, or when the user signed in but the
    /// [persistent cache](CredentialBuilder::token_cache_persistence) could not be written
    /// (the message names the file and the reason; the credential keeps the sign-in).
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
        if let Some(record) = record {
            // A record is checked before any of its fields reaches a URL, a key or a request.
            record.check().map_err(|why| {
                Error::invalid_configuration(
                    name,
                    format!("the authentication record is invalid: {why}"),
                )
            })?;
        }
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
                tenancy: common.tenancy(tenant, env),
                client_id: client_id.to_owned(),
                pipeline,
                clock: clock.clone(),
                sleeper,
                cache: TokenCache::with_clock(clock),
                account: Mutex::new(Account {
                    record: self.record.clone(),
                    refresh_token: None,
                    loaded: false,
                    cache_problem: None,
                }),
                sign_in: tokio::sync::Mutex::new(()),
                flow,
                automatic: !self.disable_automatic_authentication,
                persistence,
                prompt: self.prompt.clone().unwrap_or_else(stderr_prompt),
                save_warned: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::device_code::DeviceCodeCredential;
    use super::*;
    use identity_core::{Env, ErrorKind, Runtime};

    fn builder() -> device_code::DeviceCodeCredentialBuilder {
        DeviceCodeCredential::builder().runtime(Runtime::with_env(Env::empty()))
    }

    #[test]
    fn a_record_with_an_authority_url_gives_the_credential_that_host() {
        // The field report's record: an `https` URL with a trailing `/`.
        let json = r#"{"authority":"https://login.microsoftonline.com/","clientId":"04b07795-8ddb-461a-bbee-02f9e1bf7b46","homeAccountId":"u.t","tenantId":"t","username":"a@b","version":"1.0"}"#;
        let record = AuthenticationRecord::deserialize(json).unwrap();
        let credential = builder().authentication_record(record).build().unwrap();
        let debug = format!("{credential:?}");
        assert!(
            debug.contains("\"https://login.microsoftonline.com\""),
            "{debug}"
        );
        assert!(!debug.contains("https://https"), "{debug}");
        let gov = AuthenticationRecord::new("login.microsoftonline.us", "c", "u.t", "t", "a@b");
        let credential = builder().authentication_record(gov).build().unwrap();
        assert!(format!("{credential:?}").contains("\"https://login.microsoftonline.us\""));
    }

    #[test]
    fn an_invalid_record_fails_the_build_naming_the_record_and_its_field() {
        let id = DEVELOPER_SIGN_ON_CLIENT_ID;
        for (record, field) in [
            (
                AuthenticationRecord::new(
                    "login.microsoftonline.com",
                    id,
                    "u.t",
                    "../../etc",
                    "a@b",
                ),
                "`tenantId`",
            ),
            (
                AuthenticationRecord::new(
                    "https://https://login.microsoftonline.com",
                    id,
                    "u.t",
                    "t",
                    "a@b",
                ),
                "`authority`",
            ),
            (
                AuthenticationRecord::new(
                    "login.microsoftonline.com",
                    id,
                    "u.t",
                    "t",
                    "a@b\u{1b}[31m",
                ),
                "`username`",
            ),
            (
                AuthenticationRecord::new("login.microsoftonline.com", id, "u t", "t", "a@b"),
                "`homeAccountId`",
            ),
            (
                AuthenticationRecord::new("login.microsoftonline.com", "", "u.t", "t", "a@b"),
                "`clientId`",
            ),
        ] {
            let err = builder().authentication_record(record).build().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidConfiguration);
            assert!(
                err.message()
                    .starts_with("the authentication record is invalid: the field "),
                "{err}"
            );
            assert!(err.message().contains(field), "{err}");
            assert!(!err.message().contains("etc") && !err.message().contains('\u{1b}'));
        }
        // A tenant the builder sets is the user's own, and is named so.
        let record = AuthenticationRecord::new("login.microsoftonline.com", id, "u.t", "t", "a@b");
        let err = builder()
            .tenant_id("a/b")
            .authentication_record(record)
            .build()
            .unwrap_err();
        assert!(err.message().starts_with("invalid tenant id"), "{err}");
    }
}
