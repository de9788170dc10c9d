//! Microsoft Entra ID credentials for service principals, workload identity and users.
//!
//! * [`ClientSecretCredential`]: an app registration's client secret.
//! * [`ClientCertificateCredential`]: a certificate; each request carries a client assertion
//!   JWT signed with the certificate's RSA key.
//! * [`ClientAssertionCredential`]: an assertion returned by an async callback.
//! * [`WorkloadIdentityCredential`]: a federated token file (Kubernetes workload identity),
//!   from `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_FEDERATED_TOKEN_FILE`.
//! * [`EnvironmentCredential`]: a secret or certificate service principal chosen from
//!   `AZURE_*` environment variables.
//! * [`AzurePipelinesCredential`]: an Azure Pipelines job's OIDC token for a service
//!   connection with workload identity federation.
//! * [`GitHubActionsCredential`]: a GitHub Actions job's OIDC token (the workflow needs
//!   `permissions: id-token: write`).
//! * [`InteractiveBrowserCredential`]: a user signs in with a web browser (authorization code
//!   with PKCE, a loopback redirect listener).
//! * [`DeviceCodeCredential`]: a user signs in on another device with a short code.
//! * [`OnBehalfOfCredential`]: a web API calls another API as the user who called it.
//! * [`AuthenticationRecord`] and [`TokenCachePersistenceOptions`]: start a later process from
//!   an earlier sign-in, silently (see the [`user`] module).
//! * [`ReqwestClient`]: the HTTPS client they use by default (reqwest, rustls with `ring`,
//!   platform roots plus `SSL_CERT_FILE`/`SSL_CERT_DIR`, proxies from `HTTPS_PROXY` and
//!   friends, no redirects).
//!
//! Every builder takes what the credential reads from the world (environment, clock, sleeper,
//! HTTP client, request bounds) as one [`Runtime`](identity_core::Runtime) through
//! `.runtime(...)`; the builders and credentials are aliases of the two generic types of the
//! [`credential`] module.
//!
//! Every credential posts the client-credentials grant straight to
//! `https://<authority>/<tenant>/oauth2/v2.0/token` (no discovery requests), retries with the
//! core [`RetryPolicy::default`](identity_core::retry::RetryPolicy::default) (POST included),
//! and caches tokens in one [`TokenCache`](identity_core::cache::TokenCache) per credential,
//! keyed by authority, client id, tenant, scopes and CAE flag. A claims challenge bypasses the
//! cache; CAE adds the `CP1` client capability to the `claims` field. A `get_token` for another
//! tenant follows the multi-tenant rule: allowed only when listed in
//! `additionally_allowed_tenants` (or `"*"`; the credentials that read the environment default
//! to `AZURE_ADDITIONALLY_ALLOWED_TENANTS`), ignored when
//! `AZURE_IDENTITY_DISABLE_MULTITENANTAUTH` is set.
//!
//! # Clouds
//! The authority defaults to `AZURE_AUTHORITY_HOST`, else the public cloud. Known hosts are in
//! [`AzureAuthorityHosts`]: `login.microsoftonline.com` (public), `login.chinacloudapi.cn`
//! (China), `login.microsoftonline.us` (US Government). Authorities must be `https`; plain
//! `http` on a loopback address is possible only through the builders'
//! `allow_insecure_loopback_authority(true)`, meant for tests and emulators.
//!
//! # Client assertions
//! Certificate credentials follow the specification's recommendation: `PS256` with an
//! `x5t#S256` thumbprint (`RS256` with `x5t` for the `adfs` tenant), unpadded base64url
//! segments, `aud` = the token endpoint, `iss` = `sub` = the client id, a random UUID v4 `jti`,
//! `nbf` = `iat` = now, `exp` = now + 600 s, and `x5c` only when the chain is to be sent.
//! Signing, hashing and randomness use `ring`, the crate's TLS provider already: one small,
//! audited crypto library for everything, with no C toolchain needed beyond a compiler. PEM is
//! parsed by `rustls-pki-types`; PKCS#12 (feature `pkcs12`) by `p12-keystore`. A
//! password-protected PEM key is decrypted by `pkcs8` from the `RustCrypto` project (encrypted
//! PKCS#8, PBES2) or, for the traditional OpenSSL form (`Proc-Type: 4,ENCRYPTED`, which no
//! `RustCrypto` crate reads), from its `pem` headers with `RustCrypto`'s `md-5`, `aes`, `des`
//! and `cbc`.
//!
//! # Files
//! Every file a credential is pointed at (`AZURE_FEDERATED_TOKEN_FILE`, certificates,
//! `SSL_CERT_FILE`, `SSL_CERT_DIR`, the token proxy's CA) is read through
//! [`identity_core::fs::read`]: links are followed, but only a regular file under a size cap is
//! read, so a FIFO or a device fails at once.
//!
//! # Secrets
//! `Debug` of every credential, builder and client prints no secret, key, password or proxy
//! URL. Error messages never contain the client secret, the assertion, the token, key
//! material or a password; text from Entra is scrubbed of the secret and assertion before it is
//! shown.
//!
//! # Features
//! * `pkcs12`: PKCS#12 (`.pfx`/`.p12`) certificates for [`ClientCertificateCredential`] and
//!   [`EnvironmentCredential`]. Without it, only PEM certificates are accepted.
//!
//! # Example
//! ```no_run
//! # async fn demo() -> Result<(), identity_chain::Error> {
//! use identity_chain::{TokenCredential, TokenRequestOptions};
//! use identity_chain::{AzureAuthorityHosts, ClientSecretCredential};
//!
//! let credential = ClientSecretCredential::builder()
//!     .authority_host(AzureAuthorityHosts::AZURE_GOVERNMENT)
//!     .tenant_id("contoso.onmicrosoft.com")
//!     .client_id("00000000-0000-0000-0000-000000000001")
//!     .client_secret("a secret from a vault")
//!     .build()?;
//! let token = credential
//!     .get_token(&["https://management.usgovcloudapi.net/.default"], &TokenRequestOptions::default())
//!     .await?;
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod assertion;
mod authority;
pub mod azure_pipelines;
mod client;
pub mod client_assertion;
pub mod client_certificate;
pub mod client_secret;
pub mod credential;
mod encrypted_key;
pub mod environment;
mod federated;
pub mod github_actions;
pub mod http;
pub mod identity_binding;
mod jwt;
mod options;
mod response;
pub mod user;
pub mod workload_identity;

/// The token-response parser, for the fuzz targets and property tests only (feature
/// `fuzzing`): not part of the stable API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz_entra {
    use std::time::{Duration, UNIX_EPOCH};

    /// An Entra token endpoint response (success or error JSON) with `status`; `Ok(())` when it
    /// yields a token, else the error's text.
    ///
    /// # Errors
    /// The error's text when the response does not yield a token.
    pub fn parse_response(status: u16, body: &[u8]) -> Result<(), String> {
        let now = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let mut response = http::Response::new(bytes::Bytes::copy_from_slice(body));
        *response.status_mut() =
            http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
        crate::response::parse_response("Fuzz", &response, now, &["planted-fuzz-secret"])
            .map(|_| ())
            .map_err(|e| identity_core::display_chain(&e))
    }
}

#[cfg(test)]
mod test_support;

pub use authority::{AZURE_AUTHORITY_HOST, AzureAuthorityHosts};
pub use azure_pipelines::{AzurePipelinesCredential, AzurePipelinesCredentialBuilder};
pub use client_assertion::{ClientAssertionCredential, ClientAssertionCredentialBuilder};
pub use client_certificate::{ClientCertificateCredential, ClientCertificateCredentialBuilder};
pub use client_secret::{ClientSecretCredential, ClientSecretCredentialBuilder};
pub use environment::{EnvironmentCredential, EnvironmentCredentialBuilder};
pub use github_actions::{GitHubActionsCredential, GitHubActionsCredentialBuilder};
pub use http::{ReqwestClient, ReqwestClientBuilder};
pub use options::AZURE_ADDITIONALLY_ALLOWED_TENANTS;
pub use workload_identity::{WorkloadIdentityCredential, WorkloadIdentityCredentialBuilder};

#[cfg(feature = "keyring")]
pub use user::PlatformKeyring;
pub use user::device_code::{
    DeviceCodeCallback, DeviceCodeCredential, DeviceCodeCredentialBuilder, DeviceCodeInfo,
};
pub use user::interactive_browser::{
    InteractiveBrowserCredential, InteractiveBrowserCredentialBuilder,
};
pub use user::on_behalf_of::{OnBehalfOfCredential, OnBehalfOfCredentialBuilder};
pub use user::{AuthenticationRecord, Keyring, TokenCachePersistenceOptions};

/// The `get_token` span (identity-core's `trace` module) as each Entra credential fills it, and
/// the absence of planted secrets, assertions and tokens from everything traced, on success
/// and failure paths.
#[cfg(test)]
mod span_tests {
    use identity_core::test_util::Capture;
    use identity_core::{Env, TokenCredential, TokenRequestOptions};
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use crate::test_support::{
        CLIENT_PEM, PrincipalAtLoopback, SECRET, assert_no_key_material, assert_no_private_key,
        fake_runtime, token_body,
    };
    use crate::{
        ClientAssertionCredential, ClientCertificateCredential, ClientSecretCredential,
        EnvironmentCredential, WorkloadIdentityCredential,
    };

    const SCOPE: &str = "https://vault.azure.net/.default";
    const PLANTED_TOKEN: &str = "planted-entra-access-token";
    const PLANTED_ASSERTION: &str = "planted-federated-assertion";

    /// A token endpoint that answers `first` once, then a token.
    async fn endpoint(first: Option<ResponseTemplate>) -> MockServer {
        let server = MockServer::start().await;
        mount_endpoint(&server, first).await;
        server
    }

    /// Mounts on `server` a token endpoint that answers `first` once, then a token.
    async fn mount_endpoint(server: &MockServer, first: Option<ResponseTemplate>) {
        if let Some(first) = first {
            Mock::given(method("POST"))
                .respond_with(first)
                .up_to_n_times(1)
                .mount(server)
                .await;
        }
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(token_body(PLANTED_TOKEN, 3600)))
            .mount(server)
            .await;
    }

    /// The service refusing, echoing the credential's proof back in its description.
    fn refusal(echo: &str) -> ResponseTemplate {
        ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": "invalid_client",
            "error_description": format!("AADSTS7000215: bad {echo}"),
            "error_codes": [7000215],
        }))
    }

    /// Calls `credential` three times and returns the capture.
    async fn traced_calls(credential: &dyn TokenCredential) -> Capture {
        let capture = Capture::new();
        let _guard = capture.enter();
        for _ in 0..3 {
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(30),
                credential.get_token(&[SCOPE], &TokenRequestOptions::default()),
            )
            .await
            .expect("the call ends");
        }
        capture
    }

    fn check(capture: &Capture, credential: &str, source: &str, expect: &[(&str, &str)]) {
        let spans = capture.spans_named("get_token");
        let seen: Vec<(&str, &str, &str, &str)> = spans
            .iter()
            .map(|s| {
                (
                    s.field("credential").unwrap_or(""),
                    s.field("source").unwrap_or(""),
                    s.field("cache").unwrap_or(""),
                    s.field("outcome").unwrap_or(""),
                )
            })
            .collect();
        let wanted: Vec<(&str, &str, &str, &str)> = expect
            .iter()
            .map(|(cache, outcome)| (credential, source, *cache, *outcome))
            .collect();
        assert_eq!(seen, wanted, "{}", capture.text());
        let text = capture.text();
        assert_no_key_material(&text);
        capture.assert_absent(PLANTED_TOKEN);
        capture.assert_absent(PLANTED_ASSERTION);
    }

    const FAIL_THEN_FETCH_THEN_HIT: &[(&str, &str)] = &[
        ("fetch", "authentication_failed"),
        ("fetch", "ok"),
        ("hit", "ok"),
    ];

    /// Calls the `built` credential three times against an endpoint that refuses once, and
    /// checks its spans say `credential` and `source` through a failure, a fetch and a hit.
    async fn fail_fetch_hit<C: TokenCredential>(
        built: Result<C, identity_core::Error>,
        credential: &str,
        source: &str,
    ) -> Capture {
        let capture = traced_calls(&built.unwrap()).await;
        check(&capture, credential, source, FAIL_THEN_FETCH_THEN_HIT);
        capture
    }

    #[tokio::test]
    async fn client_secret_spans_cover_failure_fetch_and_hit_without_the_secret() {
        let server = endpoint(Some(refusal(SECRET))).await;
        let built = ClientSecretCredential::builder()
            .client_secret(SECRET)
            .principal_at_loopback(server.uri())
            .build();
        fail_fetch_hit(built, "ClientSecretCredential", "client_secret").await;
    }

    #[tokio::test]
    async fn client_assertion_spans_never_show_the_assertion() {
        let server = endpoint(Some(refusal(PLANTED_ASSERTION))).await;
        let built = ClientAssertionCredential::builder()
            .assertion(|| async { Ok::<_, std::io::Error>(PLANTED_ASSERTION.to_owned()) })
            .principal_at_loopback(server.uri())
            .build();
        fail_fetch_hit(built, "ClientAssertionCredential", "client_assertion").await;
    }

    #[tokio::test]
    async fn workload_identity_spans_never_show_the_token_file_content() {
        let server = endpoint(Some(refusal(PLANTED_ASSERTION))).await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, PLANTED_ASSERTION).unwrap();
        let built = WorkloadIdentityCredential::builder()
            .token_file_path(&file)
            .principal_at_loopback(server.uri())
            .build();
        fail_fetch_hit(built, "WorkloadIdentityCredential", "workload_identity").await;
    }

    /// A server with a CI OIDC endpoint at `oidc_path` (answering `oidc_body`), then an Entra
    /// endpoint that refuses once, echoing the federated token, and then answers a token.
    async fn ci_endpoints(
        oidc_method: &str,
        oidc_path: &str,
        oidc_body: serde_json::Value,
    ) -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method(oidc_method))
            .and(wiremock::matchers::path(oidc_path))
            .respond_with(ResponseTemplate::new(200).set_body_json(oidc_body))
            .mount(&server)
            .await;
        mount_endpoint(&server, Some(refusal(PLANTED_ASSERTION))).await;
        server
    }

    #[tokio::test]
    async fn azure_pipelines_spans_never_show_the_system_or_oidc_token() {
        let server = ci_endpoints(
            "POST",
            "/oidc",
            serde_json::json!({ "oidcToken": PLANTED_ASSERTION }),
        )
        .await;
        let built = crate::AzurePipelinesCredential::builder()
            .service_connection_id("sc")
            .system_access_token("planted-system-access-token")
            .oidc_request_uri(format!("{}/oidc", server.uri()))
            .principal_at_loopback(server.uri())
            .build();
        let capture = fail_fetch_hit(built, "AzurePipelinesCredential", "azure_pipelines").await;
        capture.assert_absent("planted-system-access-token");
    }

    #[tokio::test]
    async fn github_actions_spans_never_show_the_request_or_id_token() {
        let server = ci_endpoints(
            "GET",
            "/idtoken",
            serde_json::json!({ "value": PLANTED_ASSERTION }),
        )
        .await;
        let built = crate::GitHubActionsCredential::builder()
            .id_token_request_url(format!("{}/idtoken?api-version=2.0", server.uri()))
            .id_token_request_token("planted-actions-request-token")
            .principal_at_loopback(server.uri())
            .build();
        let capture = fail_fetch_hit(built, "GitHubActionsCredential", "github_actions").await;
        capture.assert_absent("planted-actions-request-token");
    }

    #[tokio::test]
    async fn client_certificate_spans_never_show_key_material() {
        let server = endpoint(Some(refusal("MIIplanted-echo"))).await;
        let credential = ClientCertificateCredential::builder()
            .certificate(CLIENT_PEM)
            .principal_at_loopback(server.uri())
            .build()
            .unwrap();
        let capture = traced_calls(&credential).await;
        let spans = capture.spans_named("get_token");
        let outcomes: Vec<_> = spans
            .iter()
            .map(|s| (s.field("source"), s.field("cache"), s.field("outcome")))
            .collect();
        assert_eq!(
            outcomes,
            [
                (
                    Some("client_certificate"),
                    Some("fetch"),
                    Some("authentication_failed")
                ),
                (Some("client_certificate"), Some("fetch"), Some("ok")),
                (Some("client_certificate"), Some("hit"), Some("ok")),
            ],
            "{}",
            capture.text()
        );
        // The service's echo is the service's text, so only the key and token are checked.
        let text = capture.text().replace("MIIplanted-echo", "");
        assert!(
            !text.contains(PLANTED_TOKEN),
            "{PLANTED_TOKEN} leaked: {text}"
        );
        assert_no_private_key(&text);
    }

    #[tokio::test]
    async fn environment_spans_name_the_selected_kind_and_nest_the_inner_span() {
        let server = endpoint(None).await;
        let credential = EnvironmentCredential::builder()
            .authority_host(server.uri())
            .allow_insecure_loopback_authority(true)
            .runtime(fake_runtime(Env::from_pairs([
                ("AZURE_TENANT_ID", "t"),
                ("AZURE_CLIENT_ID", "c"),
                ("AZURE_CLIENT_SECRET", SECRET),
            ])))
            .build()
            .unwrap();
        let capture = Capture::new();
        {
            let _guard = capture.enter();
            credential
                .get_token(&[SCOPE], &TokenRequestOptions::default())
                .await
                .unwrap();
        }
        let spans = capture.spans_named("get_token");
        assert_eq!(spans.len(), 2, "{}", capture.text());
        assert_eq!(spans[0].field("credential"), Some("EnvironmentCredential"));
        assert_eq!(spans[0].field("source"), Some("client_secret"));
        assert_eq!(spans[0].field("outcome"), Some("ok"));
        assert_eq!(spans[1].field("credential"), Some("ClientSecretCredential"));
        assert_eq!(spans[1].field("cache"), Some("fetch"));
        assert_no_key_material(&capture.text());
        capture.assert_absent(PLANTED_TOKEN);
    }

    #[tokio::test]
    async fn an_unconfigured_environment_is_traced_as_unavailable() {
        let credential = EnvironmentCredential::builder()
            .runtime(identity_core::Runtime::with_env(Env::empty()))
            .build()
            .unwrap();
        let capture = traced_calls(&credential).await;
        let spans = capture.spans_named("get_token");
        assert_eq!(spans.len(), 3);
        for span in spans {
            assert_eq!(span.field("source"), Some("unconfigured"));
            assert_eq!(span.field("outcome"), Some("unavailable"));
        }
    }
}
