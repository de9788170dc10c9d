//! [`OnBehalfOfCredential`]: a web API calls another API as the user who called it (OAuth 2.0
//! on-behalf-of; `docs/protocol.md` §6, the user assertion §6.10).
//!
//! `POST {authority}/{tenant}/oauth2/v2.0/token` with `client_id`,
//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`, `assertion` (the user's access
//! token to this API), `requested_token_use=on_behalf_of`, `scope`, and the application's
//! proof: `client_secret`, or `client_assertion` with `client_assertion_type` (signed with a
//! certificate, or returned by a callback).
//!
//! **Cache partitioning:** every token is cached under a key holding the SHA-256 of the user
//! assertion, so two users never share a token, even when their credentials share one cache
//! through [`OnBehalfOfCredential::for_user`]. The assertion itself is a [`Secret`]: never in
//! `Debug`, errors or logs, and scrubbed from any text Entra sends back.

use std::error::Error as StdError;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use identity_core::cache::{KeyRef, TokenCache};
use identity_core::http::Pipeline;
use identity_core::{AccessToken, Clock, Error, Secret, TokenRequestOptions};

use super::{post_form, sha256_hex};
use crate::assertion;
use crate::authority::Authority;
use crate::client::{Ask, Tenancy};
use crate::client::{ClientAuth, push_proof};
use crate::credential::sealed::{Fetch, Ids};
use crate::credential::{Credential, CredentialBuilder, TokenFuture};
use identity_core::TokenRequestOptions as Options;

mod proof;

use proof::Proof;

const NAME: &str = "OnBehalfOfCredential";

/// The `grant_type` of the on-behalf-of request.
pub const OBO_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The largest certificate file read, in bytes.
const MAX_CERTIFICATE: u64 = 1 << 20;

/// Gets tokens for the user whose assertion (an access token to the calling API) it holds.
///
/// ```no_run
/// # async fn demo(incoming_token: String) -> Result<(), identity_chain::Error> {
/// use identity_chain::{TokenCredential, TokenRequestOptions};
/// use identity_chain::OnBehalfOfCredential;
///
/// // Once, at start-up: the API's own registration.
/// let app = OnBehalfOfCredential::builder()
///     .tenant_id("contoso.onmicrosoft.com")
///     .client_id("00000000-0000-0000-0000-000000000001")
///     .client_secret("the API's secret")
///     .user_assertion("placeholder")
///     .build()?;
/// // Per request: the caller's token, sharing the application's cache and connection.
/// let as_user = app.for_user(incoming_token)?;
/// let token = as_user
///     .get_token(&["https://graph.microsoft.com/.default"], &TokenRequestOptions::default())
///     .await?;
/// # Ok(()) }
/// ```
pub type OnBehalfOfCredential = Credential<OnBehalfOf>;

/// What an [`OnBehalfOfCredential`] holds: the application's settings and cache, and one
/// user's assertion.
#[derive(Clone)]
pub struct OnBehalfOf {
    app: Arc<App>,
    user_assertion: Secret,
    identity: Arc<str>,
}

impl fmt::Debug for OnBehalfOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnBehalfOfCredential")
            .field("app", &self.app)
            .field("user_assertion", &"***")
            .finish()
    }
}

struct App {
    authority: Authority,
    tenancy: Tenancy,
    client_id: String,
    pipeline: Pipeline,
    clock: Arc<dyn Clock>,
    auth: ClientAuth,
    cache: TokenCache,
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("authority", &self.authority.as_str())
            .field("tenancy", &self.tenancy)
            .field("client_id", &self.client_id)
            .field("auth", &self.auth)
            .field("cache", &self.cache)
            .finish()
    }
}

impl OnBehalfOfCredential {
    /// A builder.
    pub fn builder() -> OnBehalfOfCredentialBuilder {
        OnBehalfOfCredentialBuilder::default()
    }

    /// The same application for another user: shares the settings, the HTTP pipeline and
    /// the token cache, whose keys hold the hash of each user's assertion.
    ///
    /// `user_assertion` is checked as the builder's [`user_assertion`] is, before any
    /// request: not blank, and without whitespace or control characters (an access token has
    /// none; a `Bearer ` prefix or a line end copied from the `Authorization` header is
    /// refused, not sent).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`](identity_core::ErrorKind::InvalidArgument) when the
    /// assertion is blank or holds whitespace or a control character; the message is the
    /// builder's and never holds the assertion.
    ///
    /// [`user_assertion`]: OnBehalfOfCredentialBuilder::user_assertion
    pub fn for_user(&self, user_assertion: impl Into<Secret>) -> Result<Self, Error> {
        let user_assertion = user_assertion.into();
        check_assertion(&user_assertion).map_err(|why| Error::invalid_argument(NAME, why))?;
        Ok(self.with_kind(OnBehalfOf {
            identity: identity(&self.kind.app, &user_assertion),
            app: self.kind.app.clone(),
            user_assertion,
        }))
    }
}

/// Why `assertion` cannot be a user assertion, if it cannot: blank, or holding whitespace
/// or a control character (which no access token holds). Never names the assertion.
fn check_assertion(assertion: &Secret) -> Result<(), &'static str> {
    let text = assertion.secret();
    if text.trim().is_empty() {
        return Err("the user assertion is empty; give the access token the user sent to this API");
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(
            "the user assertion contains whitespace or a control character; give the access token alone, without a `Bearer ` prefix or a line end",
        );
    }
    Ok(())
}

impl Fetch for OnBehalfOf {
    fn fetch<'a>(&'a self, scopes: &'a [&'a str], options: &'a Options) -> TokenFuture<'a> {
        Box::pin(self.token(scopes, options))
    }
}

impl OnBehalfOf {
    async fn token(
        &self,
        scopes: &[&str],
        options: &TokenRequestOptions,
    ) -> Result<AccessToken, Error> {
        let app = &self.app;
        let Ask {
            tenant,
            claims,
            bypass,
        } = app.tenancy.ask(NAME, scopes, options)?;
        let key = KeyRef::new(&self.identity, scopes, Some(&tenant), options.enable_cae);
        app.cache
            .get_or_fetch(key, bypass, || {
                let app = self.app.clone();
                let assertion = self.user_assertion.clone();
                let mut scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
                scopes.sort_unstable();
                scopes.dedup();
                let tenant = tenant.clone();
                async move { app.request(tenant, scopes, claims, assertion).await }
            })
            .await
    }
}

/// The cache identity: the application and the hash of the user's assertion.
fn identity(app: &App, user_assertion: &Secret) -> Arc<str> {
    Arc::from(format!(
        "entra/obo/{}/{}/{}",
        app.authority.as_str(),
        app.client_id,
        sha256_hex(user_assertion.secret())
    ))
}

impl App {
    async fn request(
        self: Arc<Self>,
        tenant: String,
        scopes: Vec<String>,
        claims: Option<String>,
        user_assertion: Secret,
    ) -> Result<AccessToken, Error> {
        let endpoint = self.authority.token_endpoint(&tenant);
        let (field, proof) = self
            .auth
            .proof(&endpoint, &tenant, self.clock.now())
            .await?;
        let scope = scopes.join(" ");
        let mut form = vec![
            ("client_id", self.client_id.as_str()),
            ("grant_type", OBO_GRANT_TYPE),
            ("assertion", user_assertion.secret()),
            ("requested_token_use", "on_behalf_of"),
            ("scope", scope.as_str()),
        ];
        push_proof(&mut form, field, &proof, claims.as_deref());
        tracing::debug!(credential = NAME, authority = self.authority.as_str(), tenant = %tenant, "requesting an on-behalf-of token");
        let (response, at) = post_form(NAME, &self.pipeline, &self.clock, &endpoint, &form).await?;
        crate::response::parse_response(
            NAME,
            &response,
            at,
            &[proof.secret(), user_assertion.secret()],
        )
    }
}

/// Builds an [`OnBehalfOfCredential`]: the shared setters of [`CredentialBuilder`], the
/// tenant and client ids (both required), the user's assertion and the application's proof.
pub type OnBehalfOfCredentialBuilder = CredentialBuilder<OnBehalfOfSettings>;

/// The settings only an [`OnBehalfOfCredentialBuilder`] has.
#[derive(Clone, Default)]
pub struct OnBehalfOfSettings {
    proof: Option<Proof>,
    user_assertion: Option<Secret>,
}

impl fmt::Debug for OnBehalfOfSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnBehalfOfSettings")
            .field("proof", &self.proof)
            .field(
                "user_assertion",
                &self.user_assertion.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

impl Ids for OnBehalfOfSettings {}

impl OnBehalfOfCredentialBuilder {
    /// The user's assertion: the access token the user sent to this API (required), without
    /// the `Bearer ` prefix; `build` refuses a blank one or one holding whitespace or a
    /// control character, as [`OnBehalfOfCredential::for_user`] does.
    pub fn user_assertion(mut self, assertion: impl Into<Secret>) -> Self {
        self.settings.user_assertion = Some(assertion.into());
        self
    }

    /// Proves the application with a client secret.
    pub fn client_secret(mut self, secret: impl Into<Secret>) -> Self {
        self.settings.proof = Some(Proof::Secret(secret.into()));
        self
    }

    /// Proves the application with a certificate file (PEM with an RSA key; PKCS#12 with
    /// feature `pkcs12` and the password). `send_chain` sends `x5c` for subject name/issuer
    /// authentication.
    pub fn client_certificate_path(
        mut self,
        path: impl Into<PathBuf>,
        password: Option<Secret>,
        send_chain: bool,
    ) -> Self {
        self.settings.proof = Some(Proof::CertificatePath(path.into(), password, send_chain));
        self
    }

    /// Proves the application with a certificate's bytes (as
    /// [`Self::client_certificate_path`]).
    pub fn client_certificate(
        mut self,
        bytes: impl Into<Vec<u8>>,
        password: Option<Secret>,
        send_chain: bool,
    ) -> Self {
        self.settings.proof = Some(Proof::Certificate(
            bytes.into().into(),
            password,
            send_chain,
        ));
        self
    }

    /// Proves the application with an assertion returned by `callback` for each request.
    pub fn client_assertion<F, Fut, E>(mut self, callback: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: StdError + Send + Sync + 'static,
    {
        self.settings.proof = Some(Proof::Callback(assertion::callback(
            NAME,
            "the client assertion callback failed; see the source error",
            callback,
        )));
        self
    }

    /// Builds the credential.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidConfiguration`](identity_core::ErrorKind::InvalidConfiguration) when
    /// the tenant id, client id, proof or user assertion is missing or invalid (a blank user
    /// assertion, or one with whitespace or a control character), the certificate cannot be
    /// read, or the authority is not `https`.
    pub fn build(mut self) -> Result<OnBehalfOfCredential, Error> {
        self.common.resolve();
        let common = &self.common;
        let env = common.env();
        let tenant = common.required_tenant(NAME)?.to_owned();
        let client_id = common.required_client(NAME)?.to_owned();
        let user_assertion = self.settings.user_assertion.ok_or_else(|| {
            Error::invalid_configuration(NAME, "a user assertion is required; set user_assertion")
        })?;
        check_assertion(&user_assertion).map_err(|why| Error::invalid_configuration(NAME, why))?;
        let proof = self.settings.proof.ok_or_else(|| {
            Error::invalid_configuration(
                NAME,
                "the application's proof is required; set client_secret, client_certificate or client_assertion",
            )
        })?;
        let auth = proof.into_auth(&client_id)?;
        let authority = common.authority(NAME, None, &env)?;
        let pipeline = common.pipeline(NAME)?;
        let clock = pipeline.clock().clone();
        let app = Arc::new(App {
            authority,
            tenancy: common.tenancy(&tenant, env),
            client_id,
            pipeline,
            clock: clock.clone(),
            auth,
            cache: TokenCache::with_clock(clock),
        });
        let kind = OnBehalfOf {
            identity: identity(&app, &user_assertion),
            app,
            user_assertion,
        };
        Ok(Credential::new(NAME, "on_behalf_of", kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{CLIENT_PEM, SECRET, assert_no_key_material};
    use crate::user::emulator::Emulator;
    use identity_core::test_util::Capture;
    use identity_core::{Env, ErrorKind, TokenCredential, TokenRequestOptions};
    use std::time::Duration;

    const SCOPE: &str = "https://graph.microsoft.com/.default";
    const ALICE: &str = "planted-user-assertion-alice";
    const BOB: &str = "planted-user-assertion-bob";

    fn builder(emulator: &Emulator) -> OnBehalfOfCredentialBuilder {
        OnBehalfOfCredential::builder()
            .tenant_id("t")
            .client_id("api")
            .client_secret(SECRET)
            .user_assertion(ALICE)
            .authority_host(emulator.uri())
            .allow_insecure_loopback_authority(true)
            .runtime(identity_core::Runtime::with_env(Env::empty()))
    }

    fn user_tag(assertion: &str) -> String {
        format!("obo-{}-", &sha256_hex(assertion)[..12])
    }

    #[tokio::test]
    async fn the_request_has_the_on_behalf_of_form_and_the_token_is_cached() {
        let emulator = Emulator::start().await;
        let credential = builder(&emulator).build().unwrap();
        let options = TokenRequestOptions::default();
        let token = credential.get_token(&[SCOPE], &options).await.unwrap();
        assert!(token.token.secret().starts_with(&user_tag(ALICE)));
        credential.get_token(&[SCOPE], &options).await.unwrap();
        let requests = emulator.requests("/token");
        assert_eq!(requests.len(), 1);
        let p = &requests[0].params;
        assert_eq!(requests[0].path, "/t/oauth2/v2.0/token");
        assert_eq!(p["grant_type"], OBO_GRANT_TYPE);
        assert_eq!(p["requested_token_use"], "on_behalf_of");
        assert_eq!(p["assertion"], ALICE);
        assert_eq!(p["client_id"], "api");
        assert_eq!(p["client_secret"], SECRET);
        assert_eq!(p["scope"], SCOPE);
    }

    #[tokio::test]
    async fn a_certificate_or_an_assertion_callback_proves_the_application() {
        let emulator = Emulator::start().await;
        let by_certificate = builder(&emulator)
            .client_certificate(CLIENT_PEM, None, false)
            .build()
            .unwrap();
        by_certificate
            .get_token(&[SCOPE], &TokenRequestOptions::default())
            .await
            .unwrap();
        let by_callback = builder(&emulator)
            .client_assertion(|| async {
                Ok::<_, std::io::Error>("planted-client-assertion".to_owned())
            })
            .build()
            .unwrap();
        by_callback
            .get_token(&[SCOPE], &TokenRequestOptions::default())
            .await
            .unwrap();
        let requests = emulator.requests("/token");
        for r in &requests {
            assert_eq!(r.params["client_assertion_type"], crate::client::JWT_BEARER);
            assert!(!r.params.contains_key("client_secret"));
        }
        assert_eq!(requests[0].params["client_assertion"].split('.').count(), 3);
        assert_eq!(
            requests[1].params["client_assertion"],
            "planted-client-assertion"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_users_never_share_a_token_under_concurrency() {
        let emulator = Emulator::start().await;
        // Each token answer takes a while, so requests of both users overlap.
        emulator.with(|s| s.delay = Duration::from_millis(50));
        let app = builder(&emulator).build().unwrap();
        let mut tasks = Vec::new();
        for i in 0..64 {
            let assertion = if i % 2 == 0 { ALICE } else { BOB };
            let credential = app.for_user(assertion).unwrap();
            tasks.push(tokio::spawn(async move {
                let scopes: &[&str] = if i % 4 < 2 {
                    &[SCOPE]
                } else {
                    &["https://vault.azure.net/.default"]
                };
                let token = credential
                    .get_token(scopes, &TokenRequestOptions::default())
                    .await
                    .unwrap();
                (assertion, token)
            }));
        }
        for task in tasks {
            let (assertion, token) = tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .unwrap()
                .unwrap();
            assert!(
                token.token.secret().starts_with(&user_tag(assertion)),
                "a token of another user was served"
            );
        }
        // One request per user and scope: loads are shared within a user, never across.
        let requests = emulator.requests("/token");
        assert_eq!(requests.len(), 4);
        let mut pairs: Vec<(String, String)> = requests
            .iter()
            .map(|r| (r.params["assertion"].clone(), r.params["scope"].clone()))
            .collect();
        pairs.sort();
        pairs.dedup();
        assert_eq!(pairs.len(), 4);
    }

    #[tokio::test]
    async fn user_assertions_and_secrets_never_reach_errors_debug_or_logs() {
        let emulator = Emulator::start().await;
        emulator.with(|s| s.echo_secrets = true);
        let credential = builder(&emulator)
            .user_assertion("planted-user-assertion-bad")
            .build()
            .unwrap();
        let capture = Capture::new();
        let _guard = capture.enter();
        let err = credential
            .get_token(&[SCOPE], &TokenRequestOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
        let text = format!(
            "{err} {err:?} {} {credential:?} {:?}",
            identity_core::display_chain(&err),
            credential.for_user(BOB).unwrap()
        );
        assert!(text.contains("AADSTS50013"), "{text}");
        assert_no_key_material(&text);
        capture.assert_absent("planted");
    }

    #[tokio::test]
    async fn for_user_refuses_what_the_builder_refuses_with_its_message_and_no_request() {
        let emulator = Emulator::start().await;
        let app = builder(&emulator).build().unwrap();
        // The field report's blank assertion, and a header value copied whole.
        for bad in [
            "   ",
            "",
            "\t\r\n",
            "Bearer eyJabc",
            "Bearer eyJabc\n",
            "eyJabc\n",
            "eyJ\u{0}abc",
            "eyJ\u{a0}abc",
        ] {
            let by_builder = builder(&emulator).user_assertion(bad).build().unwrap_err();
            assert_eq!(by_builder.kind(), ErrorKind::InvalidConfiguration);
            let per_call = app.for_user(bad).unwrap_err();
            assert_eq!(per_call.kind(), ErrorKind::InvalidArgument);
            assert_eq!(per_call.message(), by_builder.message(), "{bad:?}");
            assert!(per_call.message().contains("user assertion"), "{per_call}");
            let shown = format!("{per_call} {per_call:?} {by_builder:?}");
            assert!(bad.trim().is_empty() || !shown.contains("eyJ"), "{shown}");
        }
        assert!(emulator.requests("/token").is_empty());
        let bob = app.for_user(BOB).unwrap();
        bob.get_token(&[SCOPE], &TokenRequestOptions::default())
            .await
            .unwrap();
        let requests = emulator.requests("/token");
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].params["assertion"], BOB);
    }

    #[test]
    fn missing_settings_fail_the_build() {
        let ok = || {
            OnBehalfOfCredential::builder()
                .tenant_id("t")
                .client_id("c")
                .client_secret(SECRET)
                .user_assertion(ALICE)
                .runtime(identity_core::Runtime::with_env(Env::empty()))
        };
        assert!(ok().build().is_ok());
        for (builder, expected) in [
            (ok().user_assertion(" "), "user assertion"),
            (ok().client_id(""), "client id"),
            (ok().tenant_id(""), "tenant id"),
            (
                OnBehalfOfCredential::builder()
                    .tenant_id("t")
                    .client_id("c")
                    .user_assertion(ALICE),
                "proof",
            ),
        ] {
            let err = builder.build().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidConfiguration);
            assert!(err.message().contains(expected), "{err}");
        }
    }
}
