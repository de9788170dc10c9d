//! Managed identity for Azure hosts: [`ManagedIdentityCredential`] gets Microsoft Entra
//! access tokens for the identity of the VM, App Service, Arc server, Cloud Shell, Azure
//! Machine Learning compute or Service Fabric application the code runs on, without any
//! secret in the application's configuration.
//!
//! The source is detected once, when the credential is built, from the environment (see
//! [`ManagedIdentitySource`], whose docs list the sources, and the `detect` table); each
//! source lives in its own module, documented with its host, environment variables,
//! endpoint, api-version and the identity kinds it supports: [`imds`], [`app_service`],
//! [`arc`], [`azure_ml`], [`cloud_shell`], [`service_fabric`].
//!
//! Everything the credential reads from the world (the environment, the clock, the sleeper
//! between retries, the HTTP client, the request limits) comes in one
//! [`identity_core::Runtime`], given to the builder's `runtime`.
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
//!   injected with the runtime. No TLS stack is compiled in.
//! * `service-fabric`: Service Fabric support, HTTPS with certificate pinning on rustls
//!   (ring provider). Off by default.
//!
//! # Examples
//! The system-assigned identity:
//! ```no_run
//! # async fn demo() -> Result<(), identity_chain::Error> {
//! use identity_chain::{TokenCredential, TokenRequestOptions};
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
//! # fn demo() -> Result<(), identity_chain::Error> {
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
//! # async fn demo() -> Result<(), identity_chain::Error> {
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

mod builder;
mod client;
mod credential;
mod detect;
mod host;
pub mod persistence;
mod source;
mod wire;

// The hosting sources, one file each (`detect.rs` lists them in detection order).
pub mod app_service;
pub mod arc;
pub mod azure_ml;
pub mod cloud_shell;
pub mod imds;
pub mod service_fabric;

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

pub use builder::ManagedIdentityCredentialBuilder;
pub use client::{ManagedIdentityClient, TokenResult, TokenSource};
pub use credential::ManagedIdentityCredential;
pub use detect::ManagedIdentitySource;
pub use host::{HostFiles, ListedHostFiles, SystemHostFiles};
pub use persistence::{CachePersistence, FileCachePersistence};
pub use source::ManagedIdentityId;

/// The credential name used in every error.
pub(crate) const NAME: &str = "ManagedIdentityCredential";

#[cfg(test)]
pub(crate) mod test_support;
