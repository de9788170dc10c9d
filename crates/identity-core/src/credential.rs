//! The [`TokenCredential`] trait and its per-request options.

use std::fmt::{self, Debug};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::cache::{CacheSlot, Cached};
use crate::{AccessToken, Error};

/// A boxed, `Send` future: the return type of object-safe async methods in this workspace.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Options for one [`TokenCredential::get_token`] call.
///
/// `#[non_exhaustive]`: build it with [`TokenRequestOptions::default`] and the setters, so that
/// new options never break callers.
///
/// ```
/// use identity_chain::TokenRequestOptions;
/// let options = TokenRequestOptions::default().tenant_id("contoso.onmicrosoft.com").enable_cae(true);
/// assert_eq!(options.tenant(), Some("contoso.onmicrosoft.com"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenRequestOptions {
    /// A tenant other than the credential's own, for multi-tenant applications. Credentials
    /// that cannot honour it (managed identity) ignore it.
    pub tenant_id: Option<String>,
    /// A claims challenge (JSON) from a resource's `WWW-Authenticate` header. A request with
    /// claims never reads the cache.
    pub claims: Option<String>,
    /// Ask for a token that supports continuous access evaluation.
    pub enable_cae: bool,
}

impl TokenRequestOptions {
    /// Sets the tenant id.
    #[must_use]
    pub fn tenant_id(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }

    /// Sets the claims challenge.
    #[must_use]
    pub fn claims(mut self, claims: impl Into<String>) -> Self {
        self.claims = Some(claims.into());
        self
    }

    /// Turns continuous access evaluation on or off.
    #[must_use]
    pub fn enable_cae(mut self, enable: bool) -> Self {
        self.enable_cae = enable;
        self
    }

    /// The requested tenant, ignoring an empty string.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant_id.as_deref().filter(|t| !t.is_empty())
    }

    /// The claims challenge, ignoring an empty string.
    pub fn claims_challenge(&self) -> Option<&str> {
        self.claims.as_deref().filter(|c| !c.trim().is_empty())
    }
}

/// Something that can produce an access token for a set of scopes.
///
/// Object-safe, so a chain can hold `Arc<dyn TokenCredential>`. Implementors usually write an
/// inherent `async fn` and return `Box::pin(self.that_fn(scopes, options))`.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use identity_chain::{AccessToken, BoxFuture, Error, TokenCredential, TokenRequestOptions};
///
/// #[derive(Debug)]
/// struct Fixed;
///
/// impl Fixed {
///     async fn fetch(&self, _scopes: &[&str]) -> Result<AccessToken, Error> {
///         Ok(AccessToken::new("token", SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000)))
///     }
/// }
///
/// impl TokenCredential for Fixed {
///     fn get_token<'a>(
///         &'a self,
///         scopes: &'a [&'a str],
///         _options: &'a TokenRequestOptions,
///     ) -> BoxFuture<'a, Result<AccessToken, Error>> {
///         Box::pin(self.fetch(scopes))
///     }
/// }
/// ```
pub trait TokenCredential: Send + Sync + Debug {
    /// Gets a token for `scopes`.
    ///
    /// # Errors
    /// An [`Error`] whose kind tells a chain whether to move on
    /// ([`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable)) or stop.
    fn get_token<'a>(
        &'a self,
        scopes: &'a [&'a str],
        options: &'a TokenRequestOptions,
    ) -> BoxFuture<'a, Result<AccessToken, Error>>;

    /// The credential's type name, e.g. `ManagedIdentityCredential`, for reports and logs.
    /// Chains override it to name the member that produced the last token.
    fn name(&self) -> &'static str {
        let full = std::any::type_name::<Self>();
        // Strip the module path and any generic parameters.
        let base = full.split('<').next().unwrap_or(full);
        base.rsplit("::").next().unwrap_or(base)
    }

    /// The cache entry that [`get_token`](TokenCredential::get_token) would serve `scopes`
    /// and `options` from, so that a [`TokenRequest`] can read it directly.
    ///
    /// `None` (the default) when the credential has no cache, when the entry cannot be known
    /// ahead (a chain that has not chosen a member yet) or when the call must not be served
    /// from a cache (a claims challenge). A credential that returns a slot promises that a
    /// fresh token in it is what `get_token` would return for these arguments.
    fn cache_slot(&self, scopes: &[&str], options: &TokenRequestOptions) -> Option<CacheSlot> {
        let _ = (scopes, options);
        None
    }
}

impl<T: TokenCredential + ?Sized> TokenCredential for Arc<T> {
    fn get_token<'a>(
        &'a self,
        scopes: &'a [&'a str],
        options: &'a TokenRequestOptions,
    ) -> BoxFuture<'a, Result<AccessToken, Error>> {
        (**self).get_token(scopes, options)
    }

    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn cache_slot(&self, scopes: &[&str], options: &TokenRequestOptions) -> Option<CacheSlot> {
        (**self).cache_slot(scopes, options)
    }
}

impl<T: TokenCredential + ?Sized> TokenCredential for Box<T> {
    fn get_token<'a>(
        &'a self,
        scopes: &'a [&'a str],
        options: &'a TokenRequestOptions,
    ) -> BoxFuture<'a, Result<AccessToken, Error>> {
        (**self).get_token(scopes, options)
    }

    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn cache_slot(&self, scopes: &[&str], options: &TokenRequestOptions) -> Option<CacheSlot> {
        (**self).cache_slot(scopes, options)
    }
}

/// A token request prepared once and made many times: a credential bound to scopes and
/// options, for callers that ask for the same token on every outgoing request.
///
/// A cached token is read straight from the credential's cache entry (see
/// [`TokenCredential::cache_slot`]): no scope parsing, no hashing, no lock, no allocation, no
/// boxed future, and no write to memory another thread reads. Each `TokenRequest` keeps its
/// own reference to the current token and checks with one atomic load that it is still the
/// cache's, so give each task its own (clone one; clones are independent). Everything else
/// (an empty cache, a token near its refresh point, a chain that has not chosen a member, a
/// claims challenge) goes through [`get_token`](TokenCredential::get_token) with its usual
/// rules, and with `DEBUG` tracing on every call does, so that each gets its `get_token` span.
///
/// ```
/// # async fn demo() -> Result<(), identity_chain::Error> {
/// use std::sync::Arc;
/// use std::time::{Duration, SystemTime};
/// use identity_chain::TokenRequestOptions;
/// use identity_core::TokenRequest;
/// # let credential = Arc::new(identity_core::test_util::static_credential(
/// #     "Static", "t", SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000)));
///
/// let mut request = TokenRequest::new(
///     credential,
///     &["https://storage.azure.com/.default"],
///     TokenRequestOptions::default(),
/// );
/// let header = format!("Bearer {}", request.token().await?.token.secret());
/// # let _ = header; Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo()).unwrap();
/// ```
pub struct TokenRequest {
    credential: Arc<dyn TokenCredential>,
    scopes: Arc<[Box<str>]>,
    options: Arc<TokenRequestOptions>,
    slot: Option<CacheSlot>,
    /// The slot's content when last read, and the slot's version then.
    seen: Option<(u64, Arc<Cached>)>,
    /// The token the last call through `get_token` returned.
    fetched: Option<AccessToken>,
}

impl TokenRequest {
    /// Binds `credential` to `scopes` and `options`. With a claims challenge in `options`
    /// every call goes to the credential.
    pub fn new(
        credential: Arc<dyn TokenCredential>,
        scopes: &[&str],
        options: TokenRequestOptions,
    ) -> Self {
        let slot = credential.cache_slot(scopes, &options);
        Self {
            credential,
            scopes: scopes.iter().map(|s| Box::from(*s)).collect(),
            options: Arc::new(options),
            slot,
            seen: None,
            fetched: None,
        }
    }

    /// The cached token, if the credential's cache holds a fresh one: no I/O, no lock, no
    /// allocation. `None` means "call [`token`](Self::token)".
    pub fn cached(&mut self) -> Option<&AccessToken> {
        if self.hit() {
            self.seen.as_ref().map(|(_, cached)| cached.token())
        } else {
            None
        }
    }

    /// The token: the cached one when it is fresh, else the credential's
    /// [`get_token`](TokenCredential::get_token).
    ///
    /// # Errors
    /// The credential's error.
    pub async fn token(&mut self) -> Result<&AccessToken, Error> {
        if self.hit() {
            if let Some((_, cached)) = &self.seen {
                return Ok(cached.token());
            }
        }
        let scopes: Vec<&str> = self.scopes.iter().map(|s| &**s).collect();
        let token = self.credential.get_token(&scopes, &self.options).await?;
        if self.slot.is_none() {
            // A chain chooses its member on its first token: its entry is known from now on.
            self.slot = self.credential.cache_slot(&scopes, &self.options);
        }
        Ok(self.fetched.insert(token))
    }

    /// The scopes this request asks for.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scopes.iter().map(|s| &**s)
    }

    /// The credential this request asks.
    pub fn credential(&self) -> &Arc<dyn TokenCredential> {
        &self.credential
    }

    /// Whether the slot holds a fresh token, bringing `seen` up to date.
    #[inline]
    fn hit(&mut self) -> bool {
        let Some(slot) = &self.slot else {
            return false;
        };
        if crate::trace::span_enabled() {
            return false;
        }
        let version = slot.version();
        if self.seen.as_ref().is_none_or(|(seen, _)| *seen != version) {
            self.seen = Some((version, slot.load()));
        }
        self.seen
            .as_ref()
            .is_some_and(|(_, cached)| slot.is_fresh(cached))
    }
}

impl Clone for TokenRequest {
    /// An independent request for the same credential, scopes and options.
    fn clone(&self) -> Self {
        Self {
            credential: Arc::clone(&self.credential),
            scopes: Arc::clone(&self.scopes),
            options: Arc::clone(&self.options),
            slot: self.slot.clone(),
            seen: None,
            fetched: None,
        }
    }
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRequest")
            .field("credential", &self.credential.name())
            .field("scopes", &self.scopes)
            .field("prepared", &self.slot.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[derive(Debug)]
    struct Named;
    impl TokenCredential for Named {
        fn get_token<'a>(
            &'a self,
            _scopes: &'a [&'a str],
            _options: &'a TokenRequestOptions,
        ) -> BoxFuture<'a, Result<AccessToken, Error>> {
            Box::pin(async { Ok(AccessToken::new("t", SystemTime::UNIX_EPOCH)) })
        }
    }

    #[test]
    fn default_name_is_the_bare_type_name() {
        assert_eq!(Named.name(), "Named");
        let dynamic: Arc<dyn TokenCredential> = Arc::new(Named);
        assert_eq!(dynamic.name(), "Named");
    }

    #[test]
    fn the_trait_is_object_safe_and_its_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let c: Box<dyn TokenCredential> = Box::new(Named);
        let options = TokenRequestOptions::default();
        let fut = c.get_token(&["s"], &options);
        assert_send(&fut);
    }

    #[test]
    fn empty_tenant_and_claims_count_as_absent() {
        let o = TokenRequestOptions::default().tenant_id("").claims("  ");
        assert_eq!(o.tenant(), None);
        assert_eq!(o.claims_challenge(), None);
    }
}
