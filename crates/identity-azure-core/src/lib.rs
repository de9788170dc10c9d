//! Use any [`identity_core::TokenCredential`] with the official Azure SDK for Rust.
//!
//! The official service clients (`azure_storage_blob`, `azure_security_keyvault_secrets`, …)
//! take an `Arc<dyn azure_core::credentials::TokenCredential>`. [`AzureCoreCredential`]
//! wraps any credential of this workspace (a managed identity, the Azure CLI,
//! `DefaultAzureCredential`, …) so that it can be handed to them:
//!
//! ```no_run
//! # fn demo(credential: std::sync::Arc<dyn identity_core::TokenCredential>) {
//! use identity_azure_core::AzureCoreCredential;
//! let for_sdk = AzureCoreCredential::shared(credential);
//! // BlobServiceClient::new(url, Some(for_sdk), None)
//! # let _ = for_sdk;
//! # }
//! ```
//!
//! # Mapping
//! * Scopes pass through unchanged.
//! * `azure_core` 1.1.0's `TokenRequestOptions` carries only per-call method options (a
//!   context); it has no tenant id or claims challenge, so every call is made with this
//!   workspace's default [`TokenRequestOptions`]. Callers that need a tenant or claims can
//!   wrap their credential before adapting it.
//! * The token's `expires_on` (`SystemTime`) becomes an `OffsetDateTime` in UTC, to the
//!   nanosecond. `refresh_on` has no counterpart in `azure_core` 1.1.0 and is dropped; the
//!   wrapped credential's own cache still honours it.
//! * An [`identity_core::Error`] becomes an `azure_core::Error` of kind
//!   `ErrorKind::Credential` whose `Display` is the original error's `Display` (credential
//!   name and message, never a secret). The original error stays reachable for callers
//!   through `azure_core::Error::downcast_ref::<identity_core::Error>()`.
//!
//! # Cached tokens
//! The adapter remembers the cache entry ([`identity_core::cache::CacheSlot`]) of the first
//! few scope sets it is asked for (an SDK client asks for one), so a cached token is read
//! straight from the wrapped credential's cache: no scope parsing, hashing or lock. What the
//! SDK's trait itself costs remains: a boxed future and a copy of the token into the SDK's
//! `AccessToken`.
//!
//! # Features
//! None. `azure_core` is used with its default features off, so this crate adds no HTTP
//! client or TLS stack of its own.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use azure_core::credentials::{
    AccessToken as SdkAccessToken, TokenCredential as SdkTokenCredential,
    TokenRequestOptions as SdkTokenRequestOptions,
};
use azure_core::error::ErrorKind as SdkErrorKind;
use azure_core::time::OffsetDateTime;
use identity_core::cache::CacheSlot;
use identity_core::{AccessToken, Error, TokenCredential, TokenRequestOptions};

/// How many scope sets an adapter remembers the cache entries of.
const PREPARED: usize = 4;

/// The cache entry of one scope set.
struct Prepared {
    scopes: Box<[Box<str>]>,
    slot: CacheSlot,
}

impl Prepared {
    fn matches(&self, scopes: &[&str]) -> bool {
        self.scopes.len() == scopes.len() && self.scopes.iter().zip(scopes).all(|(a, b)| **a == **b)
    }
}

/// An `azure_core` credential backed by any [`identity_core::TokenCredential`].
///
/// `Debug` names the wrapped credential and never shows a token.
#[derive(Clone)]
pub struct AzureCoreCredential {
    inner: Arc<dyn TokenCredential>,
    /// Cache entries of the scope sets asked for so far, filled once each, read without a lock.
    prepared: Arc<[OnceLock<Prepared>; PREPARED]>,
}

impl AzureCoreCredential {
    /// Wraps `credential`.
    pub fn new(credential: Arc<dyn TokenCredential>) -> Self {
        Self {
            inner: credential,
            prepared: Arc::new(std::array::from_fn(|_| OnceLock::new())),
        }
    }

    /// Wraps `credential` and returns it in the shape the SDK's client constructors take.
    pub fn shared(credential: Arc<dyn TokenCredential>) -> Arc<dyn SdkTokenCredential> {
        Arc::new(Self::new(credential))
    }

    /// The wrapped credential.
    pub fn inner(&self) -> &Arc<dyn TokenCredential> {
        &self.inner
    }

    /// The wrapped credential's type name, e.g. `ManagedIdentityCredential`.
    pub fn credential_name(&self) -> &'static str {
        self.inner.name()
    }
}

impl fmt::Debug for AzureCoreCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureCoreCredential")
            .field("inner", &self.inner.name())
            .finish()
    }
}

#[async_trait::async_trait]
impl SdkTokenCredential for AzureCoreCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<SdkTokenRequestOptions<'_>>,
    ) -> azure_core::Result<SdkAccessToken> {
        if let Some(token) = self.cached(scopes) {
            return Ok(to_sdk_token(&token));
        }
        let options = TokenRequestOptions::default();
        let token = self
            .inner
            .get_token(scopes, &options)
            .await
            .map_err(to_sdk_error)?;
        self.prepare(scopes, &options);
        Ok(to_sdk_token(&token))
    }
}

impl AzureCoreCredential {
    /// A fresh token from a remembered cache entry of `scopes`.
    fn cached(&self, scopes: &[&str]) -> Option<AccessToken> {
        self.prepared
            .iter()
            .map_while(OnceLock::get)
            .find(|p| p.matches(scopes))?
            .slot
            .fresh_token()
    }

    /// Remembers the cache entry of `scopes`, if the credential has one and there is room.
    fn prepare(&self, scopes: &[&str], options: &TokenRequestOptions) {
        for cell in self.prepared.iter() {
            match cell.get() {
                Some(p) if p.matches(scopes) => return,
                Some(_) => {}
                None => {
                    if let Some(slot) = self.inner.cache_slot(scopes, options) {
                        let _ = cell.set(Prepared {
                            scopes: scopes.iter().map(|s| Box::from(*s)).collect(),
                            slot,
                        });
                    }
                    return;
                }
            }
        }
    }
}

fn to_sdk_token(token: &AccessToken) -> SdkAccessToken {
    SdkAccessToken::new(
        token.token.secret().to_owned(),
        to_offset_date_time(token.expires_on),
    )
}

/// Converts an error of this workspace to an `azure_core::Error` of kind `Credential`.
///
/// The result displays as the original (`<credential>: <message>`) and keeps it as its
/// inner error for downcasting.
pub fn to_sdk_error(error: Error) -> azure_core::Error {
    azure_core::Error::new(SdkErrorKind::Credential, error)
}

/// Converts a wall-clock time to an `OffsetDateTime` in UTC.
///
/// Times outside `OffsetDateTime`'s range (before year -9999 or after 9999) saturate to the
/// nearest representable instant, so a far-future expiry stays in the future.
pub fn to_offset_date_time(time: SystemTime) -> OffsetDateTime {
    let nanos: i128 = match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
        Err(before) => i128::try_from(before.duration().as_nanos()).map_or(i128::MIN, |n| -n),
    };
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or_else(|_| saturated(if nanos < 0 { -9999 } else { 9999 }))
}

/// The first (year -9999) or last (year 9999) day `OffsetDateTime` can hold.
fn saturated(year: i32) -> OffsetDateTime {
    let epoch = OffsetDateTime::UNIX_EPOCH;
    let day = if year < 0 { 1 } else { 365 };
    epoch
        .replace_year(year)
        .and_then(|t| t.replace_ordinal(day))
        .unwrap_or(epoch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use identity_core::test_util::{failing_credential, static_credential};
    use identity_core::{AccessToken, BoxFuture};
    use std::sync::Mutex;
    use std::time::Duration;

    const PLANTED: &str = "eyJhbGciOiJSUzI1NiJ9.planted-token-value.sig";

    #[derive(Debug, Default)]
    struct Recording {
        scopes: Mutex<Vec<String>>,
    }

    impl TokenCredential for Recording {
        fn get_token<'a>(
            &'a self,
            scopes: &'a [&'a str],
            _options: &'a TokenRequestOptions,
        ) -> BoxFuture<'a, Result<AccessToken, Error>> {
            self.scopes
                .lock()
                .unwrap()
                .extend(scopes.iter().map(|s| (*s).to_owned()));
            Box::pin(async {
                Ok(AccessToken::new(
                    PLANTED,
                    SystemTime::UNIX_EPOCH + Duration::from_millis(1_893_456_000_250),
                ))
            })
        }
    }

    #[tokio::test]
    async fn token_and_expiry_pass_through() {
        let inner = Arc::new(Recording::default());
        let adapter = AzureCoreCredential::new(inner.clone());
        let token = adapter
            .get_token(&["https://storage.azure.com/.default"], None)
            .await
            .unwrap();
        assert_eq!(token.token.secret(), PLANTED);
        assert_eq!(token.expires_on.unix_timestamp(), 1_893_456_000);
        assert_eq!(token.expires_on.millisecond(), 250);
        assert_eq!(
            *inner.scopes.lock().unwrap(),
            vec!["https://storage.azure.com/.default".to_owned()]
        );
    }

    #[tokio::test]
    async fn cached_tokens_are_read_from_the_credentials_cache_entry() {
        use identity_core::test_util::FakeClock;
        let expires = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let clock = FakeClock::at_2030();
        let credential =
            Arc::new(static_credential("Static", PLANTED, expires).cached(clock.shared()));
        let calls = credential.call_counter();
        let adapter = AzureCoreCredential::new(credential);
        for _ in 0..10 {
            let token = adapter.get_token(&["s/.default"], None).await.unwrap();
            assert_eq!(token.token.secret(), PLANTED);
            assert_eq!(token.expires_on.unix_timestamp(), 2_000_000_000);
        }
        // The first call asked the credential; the others read its cache entry.
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Another scope set is asked for, then remembered too.
        adapter.get_token(&["t/.default"], None).await.unwrap();
        adapter.get_token(&["t/.default"], None).await.unwrap();
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_static_credential_works_through_the_shared_handle() {
        let expires = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let shared =
            AzureCoreCredential::shared(Arc::new(static_credential("Static", PLANTED, expires)));
        let token = shared.get_token(&["s/.default"], None).await.unwrap();
        assert_eq!(token.expires_on.unix_timestamp(), 2_000_000_000);
    }

    #[tokio::test]
    async fn an_error_maps_to_a_credential_error_with_its_message() {
        let error = Error::unavailable(
            "ManagedIdentityCredential",
            "no managed identity endpoint found; set IDENTITY_ENDPOINT",
        );
        let adapter = AzureCoreCredential::new(Arc::new(failing_credential(
            "ManagedIdentityCredential",
            error,
        )));
        let mapped = adapter.get_token(&["s/.default"], None).await.unwrap_err();
        assert!(matches!(mapped.kind(), SdkErrorKind::Credential));
        let text = mapped.to_string();
        assert!(
            text.contains("ManagedIdentityCredential: no managed identity endpoint found"),
            "{text}"
        );
        let original = mapped.downcast_ref::<Error>().unwrap();
        assert!(original.is_unavailable());
    }

    #[tokio::test]
    async fn debug_shows_no_token() {
        let adapter = AzureCoreCredential::new(Arc::new(Recording::default()));
        let token = adapter.get_token(&["s/.default"], None).await.unwrap();
        for text in [format!("{adapter:?}"), format!("{token:?}")] {
            assert!(!text.contains("planted"), "{text}");
        }
        assert_eq!(
            format!("{adapter:?}"),
            "AzureCoreCredential { inner: \"Recording\" }"
        );
        assert_eq!(adapter.credential_name(), "Recording");
    }

    #[test]
    fn times_before_the_epoch_and_far_future_convert() {
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(86_400);
        assert_eq!(to_offset_date_time(before).unix_timestamp(), -86_400);
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(to_offset_date_time(far).year(), 9999);
    }

    #[test]
    fn the_adapter_is_send_sync() {
        fn assert_traits<T: Send + Sync + fmt::Debug + 'static>() {}
        assert_traits::<AzureCoreCredential>();
    }
}
