//! One dependency for every Microsoft Entra credential, and the chain most applications use.
//!
//! ```no_run
//! # async fn demo() -> Result<(), identity_chain::Error> {
//! use identity_chain::{DefaultAzureCredential, TokenCredential, TokenRequestOptions};
//!
//! // Environment → workload identity → managed identity → az → pwsh → azd.
//! let credential = DefaultAzureCredential::new()?;
//! let token = credential
//!     .get_token(&["https://management.azure.com/.default"], &TokenRequestOptions::default())
//!     .await?;
//! // Use `token.token.secret()` as a bearer token; never log it.
//! # let _ = token; Ok(()) }
//! ```
//!
//! * [`DefaultAzureCredential`]: the standard chain, configured from the environment (see
//!   [`default`] for its members, options and `AZURE_TOKEN_CREDENTIALS`).
//! * [`ChainedTokenCredential`]: a chain over any credentials you choose.
//! * Everything public in `identity-core`, `identity-msi`, `identity-dev` and `identity-entra`
//!   is re-exported here, so `use identity_chain::*` is all an application needs. Depend on
//!   `identity-msi` alone when managed identity is all you need and dependencies count.
//!
//! # Features
//! * `hyper` (default): the plain-HTTP client managed identity uses.
//! * `service-fabric`: Service Fabric managed identity (HTTPS with the server certificate
//!   pinned to `IDENTITY_SERVER_THUMBPRINT`).
#![cfg_attr(docsrs, feature(doc_cfg))]

mod chained;
pub mod default;
pub mod managed_identity;
pub mod selection;

pub use chained::{Attempt, ChainError, ChainedTokenCredential, DEFAULT_CHAIN_DEADLINE};
pub use default::{DefaultAzureCredential, DefaultAzureCredentialBuilder};
// Shadows identity-msi's credential of the same name in the glob below: this one also performs
// the workload identity exchange (see `managed_identity`).
pub use managed_identity::{ManagedIdentityCredential, ManagedIdentityCredentialBuilder};
pub use selection::{AZURE_TOKEN_CREDENTIALS, CredentialKind};

pub use identity_core::*;
pub use identity_dev::*;
pub use identity_entra::*;
pub use identity_msi::*;

// Modules with the same name in two crates: core's win at the root; every crate is also
// reachable under its own name.
pub use identity_core::http;
pub use {identity_core, identity_dev, identity_entra, identity_msi};
