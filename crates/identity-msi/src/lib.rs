//! Managed identity for Azure hosts: [`ManagedIdentityCredential`] gets Microsoft Entra
//! access tokens for the identity of the VM, App Service, Arc server, Cloud Shell, Azure
//! Machine Learning compute or Service Fabric application the code runs on, without any
//! secret in the application's configuration.
//!
//! The source is detected once, when the credential is built, from the environment (see
//! [`ManagedIdentitySource`] and the `detect` table below); each source lives in its own
//! module, documented with its host, environment variables, endpoint, api-version and the
//! identity kinds it supports:
//!
//! | Source | Module | Identities |
//! |---|---|---|
//! | IMDS (VMs, scale sets, AKS pod identity; the fallback) | [`imds`] | system, client id, object id, resource id |
//! | App Service, Functions, Container Apps | [`app_service`] | system, client id, object id, resource id |
//! | Azure Arc (by its variables, or by the agent's `himds` executable) | [`arc`] | system, client id, object id, resource id (echo checked) |
//! | Azure Machine Learning | [`azure_ml`] | system, client id, object id, resource id |
//! | Cloud Shell | [`cloud_shell`] | the signed-in user only |
//! | Service Fabric (feature `service-fabric`) | [`service_fabric`] | system only |
//!
//! The one file-system question detection asks (does the Arc agent's executable exist?) goes
//! through [`HostFiles`], injected with the builder's `host_files`.
//!
//! In a workload identity environment (AKS with `AZURE_FEDERATED_TOKEN_FILE`) the credential
//! reports itself unavailable and points to `WorkloadIdentityCredential` (identity-entra),
//! which performs that token exchange; the `ManagedIdentityCredential` that identity-chain
//! exports performs it itself (identity-msi stays free of TLS and Entra).
//!
//! Tokens are cached per credential ([`identity_core::cache::TokenCache`]), keyed by the
//! source, the identity selector and the **requested** resource (never the resource the
//! service echoes), and refreshed ahead of expiry (half-life for tokens of 2 h or more).
//!
//! # Features
//! * `hyper` (default): the plain-HTTP client from identity-core, used unless one is
//!   injected with `http_client`. No TLS stack is compiled in.
//! * `service-fabric`: Service Fabric support, HTTPS with certificate pinning on rustls
//!   (ring provider). Off by default.
//!
//! # Examples
//! The system-assigned identity:
//! ```no_run
//! # async fn demo() -> Result<(), identity_core::Error> {
//! use identity_core::{TokenCredential, TokenRequestOptions};
//! use identity_msi::ManagedIdentityCredential;
//!
//! let credential = ManagedIdentityCredential::builder().build()?;
//! let source = credential.source(); // e.g. ManagedIdentitySource::Imds on a VM
//! let token = credential
//!     .get_token(&["https://management.azure.com/.default"], &TokenRequestOptions::default())
//!     .await?;
//! # let _ = (token, source); Ok(()) }
//! ```
//!
//! A user-assigned identity, by client id, resource id or object id:
//! ```no_run
//! # fn demo() -> Result<(), identity_core::Error> {
//! use identity_msi::ManagedIdentityCredential;
//!
//! let by_client_id = ManagedIdentityCredential::builder()
//!     .client_id("00000000-0000-0000-0000-000000000000")
//!     .build()?;
//! let by_resource_id = ManagedIdentityCredential::builder()
//!     .resource_id("/subscriptions/…/resourceGroups/…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/my-id")
//!     .build()?;
//! let by_object_id = ManagedIdentityCredential::builder()
//!     .object_id("11111111-1111-1111-1111-111111111111")
//!     .build()?;
//! # let _ = (by_client_id, by_resource_id, by_object_id); Ok(()) }
//! ```
//!
//! The low-level, MSAL-style client, which takes a resource rather than scopes:
//! ```no_run
//! # async fn demo() -> Result<(), identity_core::Error> {
//! use identity_core::http::HyperClient;
//! use identity_chain::{ManagedIdentityClient, ManagedIdentityId, TokenSource};
//!
//! let client = ManagedIdentityClient::new(ManagedIdentityId::SystemAssigned, HyperClient::shared())?;
//! let result = client.acquire_token_for_client("https://vault.azure.net").await?;
//! assert_eq!(result.token_type, "Bearer");
//! if result.token_source == TokenSource::Cache {
//!     // served without a request
//! }
//! # Ok(()) }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod app_service;
pub mod arc;
pub mod azure_ml;
mod client;
pub mod cloud_shell;
mod credential;
mod detect;
mod host;
pub mod imds;
pub mod persistence;
pub mod service_fabric;
mod source;
mod wire;

/// The response parsers, for the fuzz targets and property tests only (feature `fuzzing`):
/// not part of the stable API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz_msi {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    /// Parses a managed-identity token response body (every source's success format); true
    /// when it yields a token.
    pub fn parse_token(body: &[u8]) -> bool {
        let now = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        crate::wire::parse_token("Fuzz", body, now).is_ok()
    }

    /// The token's expiry in Unix seconds (negative before 1970), when `body` parses.
    pub fn token_expiry(body: &[u8]) -> Option<i64> {
        let now = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let parsed = crate::wire::parse_token("Fuzz", body, now).ok()?;
        let seconds = match parsed.expires_on.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_secs()).ok()?,
            Err(before) => -i64::try_from(before.duration().as_secs()).ok()?,
        };
        Some(seconds)
    }

    /// The Azure Machine Learning date formats, as Unix seconds.
    pub fn parse_ml_date(text: &str) -> Option<i64> {
        crate::wire::parse_ml_date(text)
    }

    /// The Service Fabric thumbprint normalisation; true when accepted.
    pub fn normalise_thumbprint(raw: &str) -> bool {
        crate::service_fabric::normalise_thumbprint(raw).is_ok()
    }
}

pub use client::{ManagedIdentityClient, TokenResult, TokenSource};
pub use credential::{ManagedIdentityCredential, ManagedIdentityCredentialBuilder};
pub use host::{HostFiles, ListedHostFiles, SystemHostFiles};
pub use persistence::{CachePersistence, FileCachePersistence};
pub use source::{ManagedIdentityId, ManagedIdentitySource};

/// The credential name used in every error.
pub(crate) const NAME: &str = "ManagedIdentityCredential";

#[cfg(test)]
pub(crate) mod test_support {
    //! Shared test helpers: a credential on a fake clock and a recording sleeper.

    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use identity_core::test_util::{FakeClock, RecordingSleeper};
    use identity_core::{AccessToken, Env, Error, TokenCredential, TokenRequestOptions};
    use wiremock::{MockServer, ResponseTemplate};

    use crate::{ManagedIdentityCredential, ManagedIdentityCredentialBuilder, ManagedIdentityId};

    /// The fake clock's start: 2030-01-01T00:00:00Z.
    pub(crate) const CLOCK_NOW: u64 = 1_893_456_000;
    pub(crate) const SCOPE: &str = "https://vault.azure.net/.default";
    /// A recognisable secret planted in headers; it must never appear in output.
    pub(crate) const SECRET: &str = "planted-identity-header-secret";
    pub(crate) const UAMI: &str = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/my id";

    pub(crate) fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    pub(crate) fn secs(values: &[f64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_secs_f64(*v)).collect()
    }

    /// A token response expiring at `expires_on` (epoch seconds, as a string like App Service).
    pub(crate) fn token_on(expires_on: u64) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_string(format!(
            r#"{{"access_token":"AT","expires_on":"{expires_on}","resource":"https://vault.azure.net","token_type":"Bearer"}}"#
        ))
    }

    /// An environment that selects IMDS; tests point the endpoint at a local server.
    pub(crate) fn imds_env() -> Env {
        Env::empty()
    }

    /// An address nothing listens on.
    pub(crate) fn closed_port() -> std::net::SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }

    pub(crate) struct Harness {
        pub(crate) credential: ManagedIdentityCredential,
        pub(crate) clock: FakeClock,
        pub(crate) sleeper: RecordingSleeper,
        env: Env,
        id: ManagedIdentityId,
    }

    impl Harness {
        pub(crate) async fn get(&self) -> Result<AccessToken, Error> {
            self.credential
                .get_token(&[SCOPE], &TokenRequestOptions::default())
                .await
        }

        /// The same credential settings with the endpoint pointed at `server`'s IMDS path.
        pub(crate) fn with_endpoint(self, server: &MockServer) -> Self {
            let url = format!("{}{}", server.uri(), crate::imds::TOKEN_PATH);
            harness_with(self.env, self.id, move |b| b.endpoint(url))
        }
    }

    pub(crate) fn harness(env: Env, id: ManagedIdentityId) -> Harness {
        harness_with(env, id, |b| b)
    }

    /// A credential over `env` with a fake clock, a recording sleeper and a short timeout;
    /// `customise` adjusts the builder.
    pub(crate) fn harness_with(
        env: Env,
        id: ManagedIdentityId,
        customise: impl FnOnce(ManagedIdentityCredentialBuilder) -> ManagedIdentityCredentialBuilder,
    ) -> Harness {
        let clock = FakeClock::new(at(CLOCK_NOW));
        let sleeper = RecordingSleeper::new();
        let builder = ManagedIdentityCredential::builder()
            .env(env.clone())
            .identity(id.clone())
            .clock(clock.shared())
            .sleeper(sleeper.shared())
            .timeout(Duration::from_secs(10))
            // Detection never looks at this machine's files.
            .host_files(std::sync::Arc::new(crate::ListedHostFiles::default()));
        let credential = customise(builder).build().unwrap();
        Harness {
            credential,
            clock,
            sleeper,
            env,
            id,
        }
    }

    /// The forms in which an endpoint could echo `secret`: verbatim, percent-encoded (both
    /// cases), JSON-escaped, base64 (both alphabets).
    pub(crate) fn echoed_forms(secret: &str) -> Vec<String> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
        vec![
            secret.to_owned(),
            crate::wire::encode(secret),
            secret.bytes().map(|b| format!("%{b:02x}")).collect(),
            secret.bytes().map(|b| format!("\\u{b:04x}")).collect(),
            b64.trim_end_matches('=').to_owned(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
        ]
    }

    /// A 400 answer quoting the value of the request's `header` in several encodings, in every
    /// field a message is quoted from.
    pub(crate) fn echo_header(header: &'static str) -> impl wiremock::Respond {
        move |request: &wiremock::Request| {
            let value = request
                .headers
                .get(header)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default();
            echo_body(400, &value)
        }
    }

    /// The body of [`echo_header`].
    pub(crate) fn echo_body(status: u16, value: &str) -> ResponseTemplate {
        use base64::Engine as _;
        ResponseTemplate::new(status).set_body_json(serde_json::json!({
            "error": { "code": base64::engine::general_purpose::STANDARD.encode(value), "message": crate::wire::encode(value) },
            "error_description": format!("header was {value}"),
            "message": format!("bad header {value}"),
            "Message": value.bytes().map(|b| format!("\\u{b:04x}")).collect::<String>(),
        }))
    }

    /// Gets a token under a tracing capture and fails if any form of `secret` shows in the
    /// error's `Display` (plain and alternate), `Debug` (plain and pretty), its chain of causes
    /// or anything traced. Returns the error.
    pub(crate) async fn assert_echo_not_leaked(h: &Harness, secret: &str) -> Error {
        let capture = identity_core::test_util::Capture::new();
        let e = {
            let _guard = capture.enter();
            h.get().await.unwrap_err()
        };
        let mut texts = vec![
            e.to_string(),
            format!("{e:#}"),
            format!("{e:?}"),
            format!("{e:#?}"),
            identity_core::display_chain(&e),
            capture.text(),
        ];
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            texts.push(format!("{c} {c:#} {c:?} {c:#?}"));
            cause = c.source();
        }
        for text in &texts {
            for form in echoed_forms(secret) {
                assert!(!text.contains(&form), "{form} leaked: {text}");
            }
        }
        assert!(
            !capture.spans_named("get_token").is_empty(),
            "{}",
            capture.text()
        );
        e
    }

    /// Fails if the planted secret shows in the error's Display, Debug or cause chain.
    pub(crate) fn assert_no_secret(e: &Error) {
        for text in [
            e.to_string(),
            format!("{e:?}"),
            identity_core::display_chain(e),
        ] {
            assert!(!text.contains(SECRET), "secret leaked: {text}");
            assert!(!text.contains("planted"), "planted value leaked: {text}");
        }
    }
}
