//! [`ManagedIdentityClient`]: the MSAL-style low-level API (docs/protocol.md §7), on the same sources
//! and cache as [`ManagedIdentityCredential`].
//!
//! Differences from MSAL's client, on purpose: the source is detected once, at
//! construction, with the same rules as the credential (non-empty values; the `himds`
//! executable checked once, through the injected file-system view); requests are retried by the source's policy (MSAL leaves that to the HTTP
//! client); there is no throttle cache (the token cache and the retry policy already bound
//! the request rate); failures are [`Error`]s with the usual kinds rather than error
//! dictionaries. Cloud Shell is supported, as in the credential.

use std::sync::Arc;
use std::time::SystemTime;

use identity_core::http::HttpClient;
use identity_core::{AccessToken, Error, Secret};

use crate::wire::TokenResponse;
use crate::{
    ManagedIdentityCredential, ManagedIdentityCredentialBuilder, ManagedIdentityId,
    ManagedIdentitySource,
};

/// Where a [`TokenResult`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenSource {
    /// This call requested the token from the managed identity endpoint.
    IdentityProvider,
    /// The token was cached (or fetched by a concurrent call for the same resource).
    Cache,
}

/// A token with the details MSAL's `acquire_token_for_client` reports.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TokenResult {
    /// The access token (prints as `***`).
    pub token: Secret,
    /// When the token expires.
    pub expires_on: SystemTime,
    /// When to refresh it: the service's `refresh_in`, or half-life for long-lived tokens.
    pub refresh_on: Option<SystemTime>,
    /// Usually `Bearer`.
    pub token_type: String,
    /// The resource the service said the token is for, when the token came from the service.
    pub resource: Option<String>,
    /// The identity's client id as the service sent it (`client_id`), when the token came
    /// from the service and the service sent one (IMDS and App Service do).
    pub client_id: Option<String>,
    /// Cache or identity provider.
    pub token_source: TokenSource,
}

/// Acquires tokens for a *resource* (e.g. `https://vault.azure.net`) for a managed identity.
///
/// ```no_run
/// # async fn demo() -> Result<(), identity_chain::Error> {
/// use identity_core::http::HyperClient;
/// use identity_chain::{ManagedIdentityClient, ManagedIdentityId};
///
/// let client = ManagedIdentityClient::new(ManagedIdentityId::ClientId("00000000-0000-0000-0000-000000000000".into()), HyperClient::shared())?;
/// let result = client.acquire_token_for_client("https://vault.azure.net").await?;
/// # let _ = result; Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ManagedIdentityClient {
    credential: ManagedIdentityCredential,
}

impl ManagedIdentityClient {
    /// A client for `identity` over `http_client`, detecting the source from the process
    /// environment.
    ///
    /// # Errors
    /// As [`ManagedIdentityCredentialBuilder::build`]: the detected source cannot honour the
    /// identity kind, or a selector is empty.
    pub fn new(
        identity: ManagedIdentityId,
        http_client: Arc<dyn HttpClient>,
    ) -> Result<Self, Error> {
        Self::from_builder(
            ManagedIdentityCredential::builder()
                .identity(identity)
                .runtime(identity_core::Runtime::new().http_client(http_client)),
        )
    }

    /// A client from a fully configured credential builder (environment, clock, endpoint…):
    /// this crate's, or anything that converts into it (identity-chain's builder of the same
    /// name does).
    ///
    /// # Errors
    /// As [`ManagedIdentityCredentialBuilder::build`].
    pub fn from_builder(
        builder: impl Into<ManagedIdentityCredentialBuilder>,
    ) -> Result<Self, Error> {
        Ok(Self {
            credential: builder.into().build()?,
        })
    }

    /// The detected source (MSAL's `get_managed_identity_source`).
    pub fn managed_identity_source(&self) -> ManagedIdentitySource {
        self.credential.source()
    }

    /// The credential this client wraps.
    pub fn credential(&self) -> &ManagedIdentityCredential {
        &self.credential
    }

    /// A token for `resource`, from the cache when one is valid.
    ///
    /// # Errors
    /// The source's errors: unavailable, authentication failed, transport, configuration.
    pub async fn acquire_token_for_client(&self, resource: &str) -> Result<TokenResult, Error> {
        self.acquire(resource, false).await
    }

    /// Like [`acquire_token_for_client`](Self::acquire_token_for_client), but with a claims
    /// challenge: the cache is skipped and a new token requested. The sources cannot forward
    /// the claims themselves.
    ///
    /// # Errors
    /// As [`acquire_token_for_client`](Self::acquire_token_for_client).
    pub async fn acquire_token_for_client_with_claims(
        &self,
        resource: &str,
        _claims: &str,
    ) -> Result<TokenResult, Error> {
        self.acquire(resource, true).await
    }

    async fn acquire(&self, resource: &str, bypass_cache: bool) -> Result<TokenResult, Error> {
        if resource.trim().is_empty() {
            return Err(Error::invalid_argument(
                crate::NAME,
                "the resource is empty, e.g. pass \"https://vault.azure.net\"",
            ));
        }
        let (token, fresh) = self
            .credential
            .token_for_resource(resource, bypass_cache)
            .await?;
        let fresh = fresh.filter(|r| r.token.secret() == token.token.secret());
        Ok(match fresh {
            Some(response) => TokenResult {
                token: token.token,
                expires_on: token.expires_on,
                refresh_on: token.refresh_on,
                token_type: response.token_type,
                resource: response.resource,
                client_id: response.client_id,
                token_source: TokenSource::IdentityProvider,
            },
            None => TokenResult {
                token: token.token,
                expires_on: token.expires_on,
                refresh_on: token.refresh_on,
                token_type: "Bearer".to_owned(),
                resource: None,
                client_id: None,
                token_source: TokenSource::Cache,
            },
        })
    }
}

impl ManagedIdentityCredential {
    /// The token for `resource`, and the service's full response when this call fetched it
    /// (the low-level client reports its metadata): the cache tells its caller whether it
    /// fetched.
    pub(crate) async fn token_for_resource(
        &self,
        resource: &str,
        bypass_cache: bool,
    ) -> Result<(AccessToken, Option<TokenResponse>), Error> {
        self.cached(resource, bypass_cache, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use identity_core::test_util::FakeClock;
    use identity_core::{Env, Runtime};
    use wiremock::matchers::{method, query_param};
    use wiremock::{Mock, MockServer};

    #[tokio::test]
    async fn the_first_call_asks_the_provider_and_the_second_the_cache() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(query_param("resource", "https://vault.azure.net"))
            .and(query_param("client_id", "CID"))
            .respond_with(token_on(CLOCK_NOW + 86_400))
            .expect(1)
            .mount(&server)
            .await;
        let clock = FakeClock::new(at(CLOCK_NOW));
        let client = ManagedIdentityClient::from_builder(
            ManagedIdentityCredential::builder()
                .runtime(Runtime::with_env(Env::empty()).clock(clock.shared()))
                .identity(ManagedIdentityId::ClientId("CID".into()))
                .endpoint(format!("{}{}", server.uri(), crate::imds::TOKEN_PATH)),
        )
        .unwrap();
        assert_eq!(
            client.managed_identity_source(),
            ManagedIdentitySource::Imds
        );
        let first = client
            .acquire_token_for_client("https://vault.azure.net")
            .await
            .unwrap();
        assert_eq!(first.token_source, TokenSource::IdentityProvider);
        assert_eq!(first.token_type, "Bearer");
        assert_eq!(first.resource.as_deref(), Some("https://vault.azure.net"));
        assert_eq!(first.refresh_on, Some(at(CLOCK_NOW + 43_200)));
        let second = client
            .acquire_token_for_client("https://vault.azure.net")
            .await
            .unwrap();
        assert_eq!(second.token_source, TokenSource::Cache);
        assert_eq!(second.token.secret(), "AT");
        assert!(!format!("{second:?}").contains("AT\""));
    }

    #[tokio::test]
    async fn new_uses_the_given_http_client() {
        let client = ManagedIdentityClient::new(
            ManagedIdentityId::SystemAssigned,
            identity_core::http::HyperClient::shared(),
        )
        .unwrap();
        // The process environment decides the source; it is one of the known ones.
        let _ = client.managed_identity_source();
        let e = client.acquire_token_for_client(" ").await.unwrap_err();
        assert_eq!(e.kind(), identity_core::ErrorKind::InvalidArgument);
    }
}
