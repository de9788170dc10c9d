//! Use this workspace's Microsoft Entra credentials with [`object_store`]'s Azure store.
//!
//! [`ObjectStoreCredential`] wraps any [`TokenCredential`] (a `DefaultAzureCredential`, a
//! `ManagedIdentityCredential`, …) as an `object_store`
//! [`CredentialProvider`] yielding [`AzureCredential::BearerToken`] for the scope
//! `https://storage.azure.com/.default`. `object_store` asks its provider for a credential on
//! every request; the wrapped credential's token cache answers those calls without I/O until
//! the token nears expiry, so no second cache is kept here.
//!
//! [`microsoft_azure_builder`] returns a `MicrosoftAzureBuilder` with the provider and the
//! [`RingConnector`] already set; add the account, container and (for emulators) endpoint.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # async fn demo(credential: Arc<dyn identity_core::TokenCredential>) -> Result<(), Box<dyn std::error::Error>> {
//! use identity_object_store::microsoft_azure_builder;
//! use object_store::{ObjectStoreExt, PutPayload, path::Path};
//!
//! // `credential`: e.g. Arc::new(identity_chain::DefaultAzureCredential::new()?)
//! let store = microsoft_azure_builder(credential)
//!     .with_account("mystorageaccount")
//!     .with_container_name("data")
//!     .build()?;
//! store.put(&Path::from("hello.txt"), PutPayload::from_static(b"hi")).await?;
//! # Ok(()) }
//! ```
//!
//! # Decisions
//! * **Errors.** A credential failure becomes `object_store::Error::Generic { store:
//!   "MicrosoftAzure", source }` with the credential's [`identity_core::Error`] as the source,
//!   so callers can downcast it and see its kind. Those errors never carry a token or secret.
//! * **TLS without aws-lc.** `object_store`'s `azure` feature switches reqwest to its aws-lc
//!   provider, a C build that Cargo's feature unification would impose on every crate of the
//!   workspace. This crate enables `azure-base`, `reqwest` and `ring` instead, and reqwest's
//!   rustls without a built-in provider. [`RingConnector`] makes `ring` the process's default
//!   rustls provider (when none is installed yet) before `object_store` builds its reqwest
//!   client, and otherwise defers to `object_store`'s own connector, so every `ClientOptions`
//!   setting (root certificates, timeouts, proxies) still applies. A store built without the
//!   connector works only if the program installs a rustls provider itself.
//! * **Emulators.** Do not use `with_use_emulator(true)`: `object_store` then silently ignores
//!   the credential provider and signs with the emulator's shared key. Point the normal mode at
//!   the emulator with `with_endpoint("https://127.0.0.1:10000/devstoreaccount1")` (path style,
//!   no trailing slash) instead. `object_store` cannot create containers; create one first.
//! * **Tracing.** Each `get_credential` runs the wrapped credential's `get_token`, which opens
//!   the `get_token` span described in `identity_core::trace` (cache `hit` on almost every
//!   request). Nothing is logged here.
//!
//! # Features
//! None.
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::fmt;
use std::sync::Arc;

use identity_core::{TokenCredential, TokenRequestOptions};
use object_store::CredentialProvider;
use object_store::azure::{AzureCredential, MicrosoftAzureBuilder};
use object_store::client::{ClientOptions, HttpClient, HttpConnector, ReqwestConnector};

/// The scope of Azure Storage tokens, in every cloud.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// The `store` name `object_store` uses for its Azure errors.
const STORE: &str = "MicrosoftAzure";

/// A [`TokenCredential`] as `object_store`'s Azure [`CredentialProvider`].
///
/// ```
/// use std::sync::Arc;
/// use std::time::{Duration, SystemTime};
/// use identity_core::test_util::static_credential;
/// use identity_object_store::ObjectStoreCredential;
///
/// let credential = static_credential("Example", "t", SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000));
/// let provider = ObjectStoreCredential::new(Arc::new(credential));
/// assert_eq!(provider.scope(), "https://storage.azure.com/.default");
/// ```
#[derive(Clone)]
pub struct ObjectStoreCredential {
    credential: Arc<dyn TokenCredential>,
    scope: String,
    options: TokenRequestOptions,
}

impl fmt::Debug for ObjectStoreCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoreCredential")
            .field("credential", &self.credential.name())
            .field("scope", &self.scope)
            .field("tenant", &self.options.tenant())
            .finish_non_exhaustive()
    }
}

impl ObjectStoreCredential {
    /// Wraps `credential`, asking it for [`STORAGE_SCOPE`] tokens.
    pub fn new(credential: Arc<dyn TokenCredential>) -> Self {
        Self {
            credential,
            scope: STORAGE_SCOPE.to_owned(),
            options: TokenRequestOptions::default(),
        }
    }

    /// Asks for another scope (an emulator or a proxy with its own audience).
    #[must_use]
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// Passes these options (e.g. a tenant id) on every token request.
    #[must_use]
    pub fn with_options(mut self, options: TokenRequestOptions) -> Self {
        self.options = options;
        self
    }

    /// The scope tokens are requested for.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// The wrapped credential.
    pub fn credential(&self) -> &Arc<dyn TokenCredential> {
        &self.credential
    }

    /// Gets a token and wraps it as a bearer credential.
    async fn bearer(&self) -> object_store::Result<Arc<AzureCredential>> {
        let scopes = [self.scope.as_str()];
        match self.credential.get_token(&scopes, &self.options).await {
            Ok(token) => Ok(Arc::new(AzureCredential::BearerToken(
                token.token.secret().to_owned(),
            ))),
            Err(error) => Err(to_object_store_error(error)),
        }
    }
}

/// A credential failure as `object_store` reports store errors. The source is the
/// [`identity_core::Error`] itself, whose text never contains a token or secret.
pub fn to_object_store_error(error: identity_core::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: Box::new(error),
    }
}

#[async_trait::async_trait]
impl CredentialProvider for ObjectStoreCredential {
    type Credential = AzureCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AzureCredential>> {
        self.bearer().await
    }
}

/// `object_store`'s reqwest connector with `ring` as the rustls provider (see the
/// [crate docs](crate#decisions)).
///
/// On [`connect`](HttpConnector::connect) it installs `ring` as the process's default rustls
/// provider unless one is installed already (then that one is used), and builds the client
/// exactly as `object_store` does, from the store's `ClientOptions`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RingConnector;

impl HttpConnector for RingConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        // An error means another provider was installed first; reqwest then uses that one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        ReqwestConnector::default().connect(options)
    }
}

/// A `MicrosoftAzureBuilder` using `credential` for every request, over [`RingConnector`].
pub fn microsoft_azure_builder(credential: Arc<dyn TokenCredential>) -> MicrosoftAzureBuilder {
    MicrosoftAzureBuilder::new()
        .with_credentials(Arc::new(ObjectStoreCredential::new(credential)))
        .with_http_connector(RingConnector)
}

#[cfg(test)]
mod tests {
    use super::*;
    use identity_core::test_util::{Capture, credential_fn, failing_credential, static_credential};
    use identity_core::{Error, ErrorKind};
    use std::time::{Duration, SystemTime};

    const PLANTED: &str = "planted-object-store-token";

    fn far() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000)
    }

    #[tokio::test]
    async fn the_provider_returns_a_bearer_token_for_the_storage_scope() {
        let credential = credential_fn("Recording", |scopes, _| {
            assert_eq!(scopes, [STORAGE_SCOPE]);
            Ok(identity_core::AccessToken::new(PLANTED, far()))
        });
        let provider = ObjectStoreCredential::new(Arc::new(credential));
        let credential = provider.get_credential().await.unwrap();
        match &*credential {
            AzureCredential::BearerToken(token) => assert_eq!(token, PLANTED),
            _ => panic!("not a bearer token"),
        }
    }

    #[tokio::test]
    async fn scope_and_options_are_passed_on() {
        let credential = credential_fn("Recording", |scopes, options| {
            assert_eq!(scopes, ["api://custom/.default"]);
            assert_eq!(options.tenant(), Some("contoso.onmicrosoft.com"));
            Ok(identity_core::AccessToken::new("t", far()))
        });
        let calls = credential.call_counter();
        let provider = ObjectStoreCredential::new(Arc::new(credential))
            .with_scope("api://custom/.default")
            .with_options(TokenRequestOptions::default().tenant_id("contoso.onmicrosoft.com"));
        provider.get_credential().await.unwrap();
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_credential_failure_becomes_a_generic_azure_error_keeping_its_kind() {
        let provider = ObjectStoreCredential::new(Arc::new(failing_credential(
            "ManagedIdentityCredential",
            Error::unavailable(
                "ManagedIdentityCredential",
                "no managed identity endpoint answered; run on an Azure host",
            ),
        )));
        let error = provider.get_credential().await.unwrap_err();
        let object_store::Error::Generic { store, source } = &error else {
            panic!("not a generic error: {error}");
        };
        assert_eq!(*store, "MicrosoftAzure");
        let inner = source
            .downcast_ref::<Error>()
            .expect("the credential's error is the source");
        assert_eq!(inner.kind(), ErrorKind::Unavailable);
        assert!(
            error
                .to_string()
                .contains("no managed identity endpoint answered")
        );
    }

    #[tokio::test]
    async fn no_token_reaches_debug_or_tracing() {
        let provider =
            ObjectStoreCredential::new(Arc::new(static_credential("Static", PLANTED, far())));
        let capture = Capture::new();
        {
            let _guard = capture.enter();
            provider.get_credential().await.unwrap();
        }
        capture.assert_absent(PLANTED);
        let debug = format!("{provider:?}");
        assert!(!debug.contains(PLANTED), "{debug}");
        assert!(debug.contains("Static"), "{debug}");
        let failing = ObjectStoreCredential::new(Arc::new(failing_credential(
            "Failing",
            Error::authentication_failed("Failing", "refused"),
        )));
        let error = failing.get_credential().await.unwrap_err();
        assert!(!format!("{error} {error:?}").contains(PLANTED));
    }

    #[test]
    fn the_builder_accepts_the_provider_and_connector() {
        let credential: Arc<dyn TokenCredential> =
            Arc::new(static_credential("Static", "t", far()));
        let store = microsoft_azure_builder(credential)
            .with_account("devstoreaccount1")
            .with_endpoint("https://127.0.0.1:1/devstoreaccount1".to_owned())
            .with_container_name("c")
            .build();
        assert!(store.is_ok(), "{:?}", store.err().map(|e| e.to_string()));
    }

    #[test]
    fn public_types_are_send_sync_and_debug() {
        fn check<T: Send + Sync + fmt::Debug>() {}
        check::<ObjectStoreCredential>();
        check::<RingConnector>();
    }
}
