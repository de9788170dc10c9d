//! The [`TokenCredential`] trait and its per-request options.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{AccessToken, Error};

/// A boxed, `Send` future: the return type of object-safe async methods in this workspace.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Options for one [`TokenCredential::get_token`] call.
///
/// `#[non_exhaustive]`: build it with [`TokenRequestOptions::default`] and the setters, so that
/// new options never break callers.
///
/// ```
/// use identity_core::TokenRequestOptions;
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
/// use identity_core::{AccessToken, BoxFuture, Error, TokenCredential, TokenRequestOptions};
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
