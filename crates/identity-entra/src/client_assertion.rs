//! [`ClientAssertionCredential`]: a service principal authenticating with an assertion (a
//! signed JWT) that the application supplies through an async callback, e.g. a token from
//! another identity provider federated with the app registration.
//!
//! Endpoint: `POST https://<authority>/<tenant>/oauth2/v2.0/token` with `client_id`,
//! `client_assertion=<callback result>`,
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`,
//! `grant_type=client_credentials` and `scope` (docs/protocol.md §6.4). The callback is called for every
//! token request (not for cache hits), so it may return a fresh assertion each time.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use identity_core::Error;

use crate::assertion::{Callback, CallbackSource, callback};
use crate::client::ClientAuth;
use crate::credential::sealed::{Ids, Named};
use crate::credential::{Credential, CredentialBuilder, ServicePrincipal};

const NAME: &str = "ClientAssertionCredential";

/// Authenticates a service principal with a caller-supplied assertion.
///
/// ```no_run
/// # fn demo() -> Result<(), identity_chain::Error> {
/// // The callback runs on each token request (the cache makes them rare), so it can fetch
/// // a fresh assertion from wherever the application keeps one.
/// let credential = identity_chain::ClientAssertionCredential::builder()
///     .tenant_id("72f988bf-86f1-41af-91ab-2d7cd011db47")
///     .client_id("00000000-0000-0000-0000-000000000001")
///     .assertion(|| async { std::fs::read_to_string("/var/run/assertion.jwt") })
///     .build()?;
/// # Ok(()) }
/// ```
pub type ClientAssertionCredential = Credential<ServicePrincipal<ClientAssertion>>;

/// Names [`ClientAssertionCredential`] among the [`ServicePrincipal`] kinds.
#[derive(Clone, Debug)]
pub enum ClientAssertion {}

/// Builds a [`ClientAssertionCredential`]: the shared setters of [`CredentialBuilder`], the
/// tenant and client ids (both required), and [`assertion`](Self::assertion).
pub type ClientAssertionCredentialBuilder = CredentialBuilder<ClientAssertionSettings>;

/// The settings only a [`ClientAssertionCredentialBuilder`] has.
#[derive(Clone, Default)]
pub struct ClientAssertionSettings {
    callback: Option<Arc<Callback>>,
}

impl fmt::Debug for ClientAssertionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAssertionSettings")
            .field("assertion", &self.callback.as_ref().map(|_| "callback"))
            .finish()
    }
}

impl Ids for ClientAssertionSettings {}

impl Named for ClientAssertion {
    type Settings = ClientAssertionSettings;
}

impl ClientAssertionCredentialBuilder {
    /// The callback returning an assertion (required). Its error becomes an authentication
    /// failure carrying the error as its source; its text must not contain the assertion.
    pub fn assertion<F, Fut, E>(mut self, assertion: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: StdError + Send + Sync + 'static,
    {
        self.settings.callback = Some(callback(
            NAME,
            "the assertion callback failed; see the source error",
            assertion,
        ));
        self
    }

    /// Builds the credential.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidConfiguration`](identity_core::ErrorKind::InvalidConfiguration) when the
    /// tenant id, client id or callback is missing or invalid, or the authority is not `https`.
    pub fn build(mut self) -> Result<ClientAssertionCredential, Error> {
        let callback = self.settings.callback.ok_or_else(|| {
            Error::invalid_configuration(NAME, "an assertion callback is required; set assertion")
        })?;
        let auth = ClientAuth::Assertion(Arc::new(CallbackSource {
            name: NAME,
            empty: "the assertion callback returned an empty assertion",
            callback,
        }));
        self.common.resolve();
        let client = self.common.build(NAME, "client_assertion", auth)?;
        Ok(Credential::service_principal(client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use identity_core::{Env, ErrorKind};
    use identity_core::{TokenCredential, TokenRequestOptions};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn builder(server: &MockServer) -> ClientAssertionCredentialBuilder {
        ClientAssertionCredential::builder().principal_at_loopback(server.uri())
    }

    #[tokio::test]
    async fn the_callback_is_called_per_request_and_its_assertion_sent() {
        let server = token_endpoint_expecting(2).await;
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let credential = builder(&server)
            .assertion(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, std::io::Error>(format!("assertion-{n}")) }
            })
            .build()
            .unwrap();
        let options = TokenRequestOptions::default();
        credential.get_token(&["s1"], &options).await.unwrap();
        credential.get_token(&["s1"], &options).await.unwrap();
        credential.get_token(&["s2"], &options).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let requests = server.received_requests().await.unwrap();
        let form = form_of(&requests[1]);
        assert_eq!(form["client_assertion"], "assertion-1");
        assert_eq!(form["client_assertion_type"], crate::client::JWT_BEARER);
        assert!(!form.contains_key("client_secret"));
    }

    #[tokio::test]
    async fn a_failing_callback_is_an_authentication_failure_and_sends_nothing() {
        let server = MockServer::start().await;
        let credential = builder(&server)
            .assertion(|| async { Err::<String, _>(std::io::Error::other("vault unreachable")) })
            .build()
            .unwrap();
        let err = credential
            .get_token(&["s"], &TokenRequestOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
        assert!(
            identity_core::display_chain(&err).contains("vault unreachable"),
            "{err}"
        );
        assert!(server.received_requests().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_assertion_never_appears_in_errors_or_debug() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
                "error": "invalid_client",
                "error_description": "AADSTS700027: the assertion planted-assertion-value failed signature validation",
                "correlation_id": "corr-9",
            })))
            .expect(1)
            .mount(&server)
            .await;
        let builder = builder(&server)
            .assertion(|| async { Ok::<_, std::io::Error>("planted-assertion-value".to_owned()) });
        let credential = builder.clone().build().unwrap();
        let err = credential
            .get_token(&["s"], &TokenRequestOptions::default())
            .await
            .unwrap_err();
        let text = format!("{err} {err:?} {credential:?} {builder:?}");
        assert!(
            text.contains("AADSTS700027") && text.contains("corr-9"),
            "{text}"
        );
        assert_no_key_material(&text);
    }

    #[test]
    fn public_types_are_send_sync_debug() {
        fn check<T: Send + Sync + std::fmt::Debug>() {}
        check::<ClientAssertionCredential>();
        check::<ClientAssertionCredentialBuilder>();
        check::<crate::ClientCertificateCredential>();
        check::<crate::ClientCertificateCredentialBuilder>();
        check::<crate::WorkloadIdentityCredential>();
        check::<crate::WorkloadIdentityCredentialBuilder>();
        check::<crate::EnvironmentCredential>();
        check::<crate::EnvironmentCredentialBuilder>();
        check::<crate::ReqwestClient>();
        check::<crate::ReqwestClientBuilder>();
        check::<crate::AzureAuthorityHosts>();
    }

    #[test]
    fn get_token_futures_are_send() {
        fn check<T: Send>(_: &T) {}
        let credential = ClientAssertionCredential::builder()
            .tenant_id("t")
            .client_id("c")
            .assertion(|| async { Ok::<_, std::io::Error>(String::new()) })
            .runtime(identity_core::Runtime::with_env(Env::empty()).http_client(test_http_client()))
            .build()
            .unwrap();
        let options = TokenRequestOptions::default();
        check(&credential.get_token(&["s"], &options));
    }

    #[test]
    fn a_callback_is_required() {
        let err = ClientAssertionCredential::builder()
            .tenant_id("t")
            .client_id("c")
            .runtime(identity_core::Runtime::with_env(Env::empty()))
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfiguration);
        assert!(err.message().contains("assertion"), "{err}");
    }
}
