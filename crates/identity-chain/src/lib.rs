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
//! * `azure-core`: `AzureCoreCredential`, any credential here as an
//!   `azure_core::credentials::TokenCredential` for the official Azure SDK clients
//!   (`azure_storage_blob`, …); `azure_core` 1.x needs Rust 1.88.
//! * `object-store`: `ObjectStoreCredential` and `microsoft_azure_builder`, for
//!   `object_store`'s Azure store.
//! * `blocking`: `BlockingCredential`, a blocking `get_token` for programs without an async
//!   runtime.
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

#[cfg(feature = "azure-core")]
#[cfg_attr(docsrs, doc(cfg(feature = "azure-core")))]
pub use identity_azure_core::AzureCoreCredential;
#[cfg(feature = "blocking")]
#[cfg_attr(docsrs, doc(cfg(feature = "blocking")))]
pub use identity_core::blocking::BlockingCredential;
#[cfg(feature = "object-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "object-store")))]
pub use identity_object_store::{ObjectStoreCredential, microsoft_azure_builder};

// The README's examples (the official blob client needs feature `azure-core`) compile as
// doctests.
#[cfg(all(doctest, feature = "azure-core"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
