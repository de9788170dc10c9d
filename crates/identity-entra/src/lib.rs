//! Microsoft Entra ID credentials for service principals and workload identity.
//!
//! * [`ClientSecretCredential`]: an app registration's client secret.
//! * [`ClientCertificateCredential`]: a certificate; each request carries a client assertion
//!   JWT signed with the certificate's RSA key.
//! * [`ClientAssertionCredential`]: an assertion returned by an async callback.
//! * [`WorkloadIdentityCredential`]: a federated token file (Kubernetes workload identity),
//!   from `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_FEDERATED_TOKEN_FILE`.
//! * [`EnvironmentCredential`]: a secret or certificate service principal chosen from
//!   `AZURE_*` environment variables.
//! * [`ReqwestClient`]: the HTTPS client they use by default (reqwest, rustls with `ring`,
//!   platform roots plus `SSL_CERT_FILE`/`SSL_CERT_DIR`, proxies from `HTTPS_PROXY` and
//!   friends, no redirects).
//!
//! Every credential posts the client-credentials grant straight to
//! `https://<authority>/<tenant>/oauth2/v2.0/token` (no discovery requests), retries with the
//! core [`RetryPolicy::default`](identity_core::retry::RetryPolicy::default) (POST included),
//! and caches tokens in one [`TokenCache`](identity_core::cache::TokenCache) per credential,
//! keyed by authority, client id, tenant, scopes and CAE flag. A claims challenge bypasses the
//! cache; CAE adds the `CP1` client capability to the `claims` field. A `get_token` for another
//! tenant follows the multi-tenant rule: allowed only when listed in
//! `additionally_allowed_tenants` (or `"*"`), ignored when
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
//! parsed by `rustls-pki-types`; PKCS#12 (feature `pkcs12`) by `p12-keystore`.
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
//! # async fn demo() -> Result<(), identity_core::Error> {
//! use identity_core::{TokenCredential, TokenRequestOptions};
//! use identity_entra::{AzureAuthorityHosts, ClientSecretCredential};
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

mod authority;
mod client;
pub mod client_assertion;
pub mod client_certificate;
pub mod client_secret;
pub mod environment;
pub mod http;
mod jwt;
pub mod workload_identity;

#[cfg(test)]
mod test_support;

pub use authority::{AZURE_AUTHORITY_HOST, AzureAuthorityHosts};
pub use client_assertion::{ClientAssertionCredential, ClientAssertionCredentialBuilder};
pub use client_certificate::{ClientCertificateCredential, ClientCertificateCredentialBuilder};
pub use client_secret::{ClientSecretCredential, ClientSecretCredentialBuilder};
pub use environment::{EnvironmentCredential, EnvironmentCredentialBuilder};
pub use http::{ReqwestClient, ReqwestClientBuilder};
pub use workload_identity::{WorkloadIdentityCredential, WorkloadIdentityCredentialBuilder};
