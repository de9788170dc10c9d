//! [`ClientSecretCredential`]: a service principal authenticating with a client secret.
//!
//! Host: the authority (default `AZURE_AUTHORITY_HOST`, else `login.microsoftonline.com`).
//! Endpoint: `POST https://<authority>/<tenant>/oauth2/v2.0/token` with `client_id`,
//! `client_secret` (in the form body, not HTTP Basic), `grant_type=client_credentials` and
//! `scope` (docs/protocol.md §6.4). No discovery request is made. Tokens are cached per credential by
//! authority, client id, tenant, scopes and CAE flag.

use std::fmt;

use identity_core::{Error, Secret};

use crate::client::ClientAuth;
use crate::credential::sealed::{Ids, Named};
use crate::credential::{Credential, CredentialBuilder, ServicePrincipal};
use crate::options::CommonOptions;

const NAME: &str = "ClientSecretCredential";

/// Authenticates a service principal with a client secret.
///
/// ```no_run
/// # fn demo() -> Result<(), identity_chain::Error> {
/// // The secret comes from a vault or a mounted file, never from the source code.
/// let secret = std::fs::read_to_string("/run/secrets/sp-secret").unwrap_or_default();
/// let credential = identity_chain::ClientSecretCredential::builder()
///     .tenant_id("72f988bf-86f1-41af-91ab-2d7cd011db47")
///     .client_id("00000000-0000-0000-0000-000000000001")
///     .client_secret(secret)
///     .build()?;
/// # Ok(()) }
/// ```
pub type ClientSecretCredential = Credential<ServicePrincipal<ClientSecret>>;

/// Names [`ClientSecretCredential`] among the [`ServicePrincipal`] kinds.
#[derive(Clone, Debug)]
pub enum ClientSecret {}

impl ClientSecretCredential {
    /// Builds from settings already gathered (by `EnvironmentCredential`).
    pub(crate) fn from_common(common: CommonOptions, secret: Secret) -> Result<Self, Error> {
        ClientSecretCredentialBuilder {
            common,
            settings: ClientSecretSettings {
                secret: Some(secret),
            },
        }
        .build()
    }
}

/// Builds a [`ClientSecretCredential`]: the shared setters of [`CredentialBuilder`], the
/// tenant and client ids (both required), and [`client_secret`](Self::client_secret).
pub type ClientSecretCredentialBuilder = CredentialBuilder<ClientSecretSettings>;

/// The settings only a [`ClientSecretCredentialBuilder`] has.
#[derive(Clone, Default)]
pub struct ClientSecretSettings {
    secret: Option<Secret>,
}

impl fmt::Debug for ClientSecretSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSecretSettings")
            .field("client_secret", &self.secret.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Ids for ClientSecretSettings {}

impl Named for ClientSecret {
    type Settings = ClientSecretSettings;
}

impl ClientSecretCredentialBuilder {
    /// The client secret (required).
    pub fn client_secret(mut self, secret: impl Into<Secret>) -> Self {
        self.settings.secret = Some(secret.into());
        self
    }

    /// Builds the credential.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidConfiguration`](identity_core::ErrorKind::InvalidConfiguration) when the
    /// tenant id, client id or secret is missing or invalid, or the authority is not `https`.
    pub fn build(mut self) -> Result<ClientSecretCredential, Error> {
        let secret = self
            .settings
            .secret
            .filter(|s| !s.secret().trim().is_empty())
            .ok_or_else(|| {
                Error::invalid_configuration(
                    NAME,
                    "a client secret is required (it is missing or blank); set client_secret",
                )
            })?;
        self.common.resolve();
        let client = self
            .common
            .build(NAME, "client_secret", ClientAuth::Secret(secret))?;
        Ok(Credential::service_principal(client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use identity_core::ErrorKind;
    use identity_core::scope::DISABLE_MULTITENANT_AUTH;
    use identity_core::{TokenCredential, TokenRequestOptions};
    use std::time::Duration;
    use wiremock::matchers::{body_string_contains, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const VAULT: &str = "https://vault.azure.net/.default";

    fn builder(server: &MockServer) -> ClientSecretCredentialBuilder {
        ClientSecretCredential::builder()
            .tenant_id("t")
            .client_id("c")
            .client_secret(SECRET)
            .at_loopback(server.uri())
    }

    use identity_core::Env;

    /// The error of a credential whose token endpoint at `server` answers `answer` (once).
    async fn answered_once(server: &MockServer, answer: ResponseTemplate) -> Error {
        Mock::given(method("POST"))
            .respond_with(answer)
            .expect(1)
            .mount(server)
            .await;
        let credential = builder(server).build().unwrap();
        credential
            .get_token(&[VAULT], &TokenRequestOptions::default())
            .await
            .unwrap_err()
    }

    /// A credential at `server` whose sleeps are recorded, and its sleeper.
    fn recording_sleeps(
        server: &MockServer,
    ) -> (
        ClientSecretCredential,
        identity_core::test_util::RecordingSleeper,
    ) {
        let (clock, sleeper) = fake_time();
        let credential = builder(server)
            .update_runtime(|r| r.clock(clock.shared()).sleeper(sleeper.shared()))
            .build()
            .unwrap();
        (credential, sleeper)
    }

    #[test]
    fn a_blank_secret_or_a_dotted_path_tenant_is_refused_at_build() {
        for secret in ["", "   ", "\t\n"] {
            let err = ClientSecretCredential::builder()
                .tenant_id("t")
                .client_id("c")
                .client_secret(secret)
                .build()
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidConfiguration);
            assert!(err.message().contains("missing or blank"), "{err}");
        }
        // A tenant id is a path segment of the token URL: `..` must not climb out of it.
        for tenant in ["..", ".", "contoso..com", ".contoso.com"] {
            let err = ClientSecretCredential::builder()
                .tenant_id(tenant)
                .client_id("c")
                .client_secret(SECRET)
                .build()
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidConfiguration, "{tenant}");
        }
    }

    #[tokio::test]
    async fn the_token_request_has_exactly_the_spec_form_and_the_second_call_is_cached() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/t/oauth2/v2.0/token"))
            .and(header("content-type", "application/x-www-form-urlencoded"))
            .respond_with(ResponseTemplate::new(200).set_body_json(token_body("AT", 3600)))
            .expect(1)
            .mount(&server)
            .await;
        let credential = builder(&server).build().unwrap();
        let options = TokenRequestOptions::default();
        let token = credential
            .get_token(&[VAULT, "https://a.example/.default"], &options)
            .await
            .unwrap();
        assert_eq!(token.token.secret(), "AT");
        // Same scopes in another order: served from the cache.
        credential
            .get_token(&["https://a.example/.default", VAULT], &options)
            .await
            .unwrap();
        let requests = server.received_requests().await.unwrap();
        let form = form_of(&requests[0]);
        let expected: std::collections::BTreeMap<String, String> = [
            ("client_id", "c"),
            ("client_secret", SECRET),
            ("grant_type", "client_credentials"),
            (
                "scope",
                "https://a.example/.default https://vault.azure.net/.default",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(form, expected);
        assert!(requests[0].url.query().is_none());
    }

    #[tokio::test]
    async fn a_bad_secret_fails_once_with_the_aadsts_code_and_no_secret() {
        let server = MockServer::start().await;
        let body = serde_json::json!({
            "error": "invalid_client",
            "error_description": format!("AADSTS7000215: Invalid client secret provided. Received {SECRET}."),
            "error_codes": [7000215],
            "trace_id": "trace-1",
            "correlation_id": "corr-1",
        });
        let err = answered_once(&server, ResponseTemplate::new(400).set_body_json(body)).await;
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
        assert_eq!(err.credential(), NAME);
        let text = format!("{err} {err:?} {}", identity_core::display_chain(&err));
        assert!(text.contains("AADSTS7000215"), "{text}");
        assert!(text.contains("corr-1"), "{text}");
        assert_no_key_material(&text);
    }

    #[tokio::test]
    async fn server_errors_are_retried_on_the_default_schedule() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(500))
            .expect(4)
            .mount(&server)
            .await;
        let (credential, sleeper) = recording_sleeps(&server);
        let err = credential
            .get_token(&[VAULT], &TokenRequestOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(500));
        // Four attempts; the first retry follows at once (no sleep is recorded for it).
        assert_eq!(
            sleeper.slept(),
            [Duration::from_millis(1600), Duration::from_millis(3200)]
        );
    }

    #[tokio::test]
    async fn a_retry_after_is_honoured_for_throttled_posts() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "3"))
            .up_to_n_times(2)
            .expect(2)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(token_body("AT", 3600)))
            .expect(1)
            .mount(&server)
            .await;
        let (credential, sleeper) = recording_sleeps(&server);
        let token = credential
            .get_token(&[VAULT], &TokenRequestOptions::default())
            .await
            .unwrap();
        assert_eq!(token.token.secret(), "AT");
        assert_eq!(
            sleeper.slept(),
            [Duration::from_secs(3), Duration::from_secs(3)]
        );
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let server = MockServer::start().await;
        let elsewhere = MockServer::start().await;
        let redirect = ResponseTemplate::new(307)
            .insert_header("location", format!("{}/steal", elsewhere.uri()));
        let err = answered_once(&server, redirect).await;
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
        assert_eq!(err.status(), Some(307));
        assert!(elsewhere.received_requests().await.unwrap().is_empty());
        assert_no_key_material(&format!("{err:?}"));
    }

    #[tokio::test]
    async fn another_tenant_needs_to_be_allowed() {
        let server = MockServer::start().await;
        token_mock("b", "B").expect(1).mount(&server).await;
        token_mock("a", "A").expect(1).mount(&server).await;
        let options = TokenRequestOptions::default().tenant_id("b");

        let strict = builder(&server).tenant_id("a").build().unwrap();
        let err = strict.get_token(&[VAULT], &options).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
        assert!(err.message().contains("tenant b"), "{err}");
        assert!(server.received_requests().await.unwrap().is_empty());

        let any = builder(&server)
            .tenant_id("a")
            .additionally_allowed_tenants(["*"])
            .build()
            .unwrap();
        assert_eq!(
            any.get_token(&[VAULT], &options)
                .await
                .unwrap()
                .token
                .secret(),
            "B"
        );

        let disabled = builder(&server)
            .tenant_id("a")
            .update_runtime(|r| r.env(Env::from_pairs([(DISABLE_MULTITENANT_AUTH, "1")])))
            .build()
            .unwrap();
        assert_eq!(
            disabled
                .get_token(&[VAULT], &options)
                .await
                .unwrap()
                .token
                .secret(),
            "A"
        );
    }

    #[tokio::test]
    async fn cae_with_claims_sends_merged_claims_and_bypasses_the_cache() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(body_string_contains("claims="))
            .respond_with(ResponseTemplate::new(200).set_body_json(token_body("AT", 3600)))
            .expect(2)
            .mount(&server)
            .await;
        let credential = builder(&server).build().unwrap();
        let options = TokenRequestOptions::default()
            .claims(r#"{"access_token":{"nbf":{"essential":true,"value":"1"}}}"#)
            .enable_cae(true);
        credential.get_token(&[VAULT], &options).await.unwrap();
        credential.get_token(&[VAULT], &options).await.unwrap();
        let requests = server.received_requests().await.unwrap();
        let claims: serde_json::Value =
            serde_json::from_str(&form_of(&requests[1])["claims"]).unwrap();
        assert_eq!(claims["access_token"]["nbf"]["essential"], true);
        assert_eq!(
            claims["access_token"]["xms_cc"]["values"],
            serde_json::json!(["CP1"])
        );
    }

    #[tokio::test]
    async fn cae_tokens_are_cached_apart_from_plain_ones() {
        let server = token_endpoint_expecting(2).await;
        let credential = builder(&server).build().unwrap();
        let cae = TokenRequestOptions::default().enable_cae(true);
        let plain = TokenRequestOptions::default();
        for options in [&cae, &plain, &cae, &plain] {
            credential.get_token(&[VAULT], options).await.unwrap();
        }
        let requests = server.received_requests().await.unwrap();
        assert!(form_of(&requests[0]).contains_key("claims"));
        assert!(!form_of(&requests[1]).contains_key("claims"));
    }

    #[test]
    fn invalid_settings_fail_the_build() {
        let ok = || {
            ClientSecretCredential::builder()
                .tenant_id("t")
                .client_id("c")
                .client_secret(SECRET)
                .runtime(
                    identity_core::Runtime::with_env(Env::empty()).http_client(test_http_client()),
                )
        };
        let cases = [
            (ok().tenant_id("a/b"), "tenant"),
            (ok().tenant_id(""), "tenant id is required"),
            (ok().client_id(" "), "client id is required"),
            (ok().client_secret(""), "client secret is required"),
            (
                ok().authority_host("http://login.microsoftonline.com"),
                "https",
            ),
            (ok().authority_host("http://127.0.0.1:1"), "https"),
        ];
        for (builder, expected) in cases {
            let err = builder.build().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidConfiguration, "{err}");
            assert!(err.message().contains(expected), "{err}");
        }
        let err = ok()
            .update_runtime(|r| r.env(Env::from_pairs([("AZURE_AUTHORITY_HOST", "http://h")])))
            .build()
            .unwrap_err();
        assert!(err.message().contains("https"), "{err}");
    }

    #[test]
    fn debug_of_the_credential_and_builder_hides_the_secret() {
        let builder = ClientSecretCredential::builder()
            .tenant_id("t")
            .client_id("c")
            .client_secret(SECRET)
            .runtime(identity_core::Runtime::with_env(Env::empty()))
            .update_runtime(|r| r.http_client(test_http_client()));
        let credential = builder.clone().build().unwrap();
        for text in [
            format!("{builder:?}"),
            format!("{credential:?}"),
            format!("{credential:#?}"),
        ] {
            assert_no_key_material(&text);
            assert!(text.contains("\"c\""), "{text}");
        }
    }

    #[test]
    fn public_types_are_send_sync_debug() {
        fn check<T: Send + Sync + std::fmt::Debug>() {}
        check::<ClientSecretCredential>();
        check::<ClientSecretCredentialBuilder>();
    }
}
