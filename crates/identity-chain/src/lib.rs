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
//! This crate re-exports, by name, what an application constructs and calls. The plumbing for
//! those who write credentials of their own (the token cache, the HTTP pipeline and retry
//! policy, the process runner, clocks and test fakes) stays in `identity-core` and the other
//! `identity-*` crates. Depend on `identity-msi` alone when managed identity is all you need
//! and dependencies count.
//!
//! # One runtime for a whole chain
//! What a credential reads from the world (environment variables, the clock, the timer it
//! waits on between retries, the HTTP client, request bounds) travels in one [`Runtime`], which
//! every builder takes with `.runtime(...)`. [`DefaultAzureCredential`] resolves its runtime
//! once (one snapshot of the environment) and hands that same value to every member; build the
//! members of a [`ChainedTokenCredential`] with clones of one runtime for the same effect. A
//! test injects an environment of its own, and nothing reads the process environment:
//!
//! ```
//! use identity_chain::{DefaultAzureCredential, Env, Runtime};
//!
//! let env = Env::from_pairs([("AZURE_TOKEN_CREDENTIALS", "ManagedIdentityCredential")]);
//! let credential = DefaultAzureCredential::builder()
//!     .runtime(Runtime::with_env(env))
//!     .build()?;
//! assert_eq!(credential.members(), ["ManagedIdentityCredential"]);
//! # Ok::<(), identity_chain::Error>(())
//! ```
//!
//! `Runtime::new().clock(...)` (or `Runtime::with_env(env).clock(...)`) adds a clock of the
//! test's own, e.g. identity-core's `test_util::FakeClock` (feature `test-util`).
//!
//! # Public items
//! Every public item of this crate is in this list (`cargo xtask tidy` checks it).
//!
//! Chains:
//! * [`DefaultAzureCredential`], [`DefaultAzureCredentialBuilder`]: the standard chain,
//!   configured from the environment (see [`default`] for its members, options and
//!   [`AZURE_TOKEN_CREDENTIALS`]); [`CredentialKind`] names its members.
//! * [`ChainedTokenCredential`]: a chain over any credentials you choose; [`ChainError`] and
//!   [`Attempt`] say why each member failed; [`DEFAULT_CHAIN_DEADLINE`] bounds a member.
//!
//! Credentials and their builders:
//! * managed identity: [`ManagedIdentityCredential`] (see [`managed_identity`]: it also does
//!   the workload identity exchange), [`ManagedIdentityCredentialBuilder`],
//!   [`ManagedIdentityId`] (which identity), [`ManagedIdentitySource`] (which host); the
//!   low-level [`ManagedIdentityClient`] with its [`TokenResult`] and [`TokenSource`];
//! * developer tools: [`AzureCliCredential`], [`AzureCliCredentialBuilder`],
//!   [`AzurePowerShellCredential`], [`AzurePowerShellCredentialBuilder`],
//!   [`AzureDeveloperCliCredential`], [`AzureDeveloperCliCredentialBuilder`];
//! * Microsoft Entra ID: [`ClientSecretCredential`], [`ClientSecretCredentialBuilder`],
//!   [`ClientCertificateCredential`], [`ClientCertificateCredentialBuilder`],
//!   [`ClientAssertionCredential`], [`ClientAssertionCredentialBuilder`],
//!   [`WorkloadIdentityCredential`], [`WorkloadIdentityCredentialBuilder`],
//!   [`EnvironmentCredential`], [`EnvironmentCredentialBuilder`];
//! * signing a user in: [`InteractiveBrowserCredential`],
//!   [`InteractiveBrowserCredentialBuilder`], [`DeviceCodeCredential`],
//!   [`DeviceCodeCredentialBuilder`] (with [`DeviceCodeCallback`] and [`DeviceCodeInfo`]),
//!   [`OnBehalfOfCredential`], [`OnBehalfOfCredentialBuilder`], [`AuthenticationRecord`],
//!   [`TokenCachePersistenceOptions`] with its [`Keyring`] (and, with feature `keyring`,
//!   [`PlatformKeyring`]);
//! * CI federation: [`AzurePipelinesCredential`], [`AzurePipelinesCredentialBuilder`],
//!   [`GitHubActionsCredential`], [`GitHubActionsCredentialBuilder`];
//! * for the Entra credentials: [`AzureAuthorityHosts`]
//!   (the clouds), and [`ReqwestClient`], [`ReqwestClientBuilder`] (their HTTPS client, for
//!   proxies and extra CAs).
//!
//! Calling them:
//! * [`TokenCredential`] (the trait every credential implements, with [`BoxFuture`] for
//!   implementing it), [`TokenRequestOptions`], [`AccessToken`] with its [`TokenType`],
//!   [`Secret`];
//! * [`Error`], [`ErrorKind`], and [`display_chain`] to print an error with its causes;
//! * [`Runtime`]: the environment ([`Env`]), clock, sleeper and HTTP client a credential runs
//!   with, given to any builder with `.runtime(...)`; and [`HostFiles`] ([`SystemHostFiles`],
//!   [`ListedHostFiles`]): the host files managed identity looks at, both injectable for tests.
//!
//! With features:
//! * `azure-core`: [`AzureCoreCredential`], any credential here as an
//!   `azure_core::credentials::TokenCredential` for the official Azure SDK clients
//!   (`azure_storage_blob`, …); `azure_core` 1.x needs Rust 1.88.
//! * `object-store`: [`ObjectStoreCredential`] and [`microsoft_azure_builder`], for
//!   `object_store`'s Azure store.
//! * `blocking`: [`BlockingCredential`], a blocking `get_token` for programs without an async
//!   runtime.
//! * `hyper` (default): the plain-HTTP client managed identity uses.
//! * `service-fabric`: Service Fabric managed identity (HTTPS with the server certificate
//!   pinned to `IDENTITY_SERVER_THUMBPRINT`).
//! * `pkcs12`: PKCS#12 (`.pfx`, `.p12`) certificates for [`ClientCertificateCredential`] and
//!   for `AZURE_CLIENT_CERTIFICATE_PATH` (`EnvironmentCredential`, also inside
//!   `DefaultAzureCredential`); without it such a file is refused with a message naming the
//!   feature.
#![cfg_attr(docsrs, feature(doc_cfg))]
// Built without a feature, the list above links its items to the docs built with every
// feature (docs.rs).
#![cfg_attr(
    not(feature = "keyring"),
    doc = "\n\n[`PlatformKeyring`]: https://docs.rs/identity-chain/latest/identity_chain/struct.PlatformKeyring.html"
)]
#![cfg_attr(
    not(feature = "azure-core"),
    doc = "\n\n[`AzureCoreCredential`]: https://docs.rs/identity-chain/latest/identity_chain/struct.AzureCoreCredential.html"
)]
#![cfg_attr(
    not(feature = "blocking"),
    doc = "\n\n[`BlockingCredential`]: https://docs.rs/identity-chain/latest/identity_chain/struct.BlockingCredential.html"
)]
#![cfg_attr(
    not(feature = "object-store"),
    doc = "\n\n[`ObjectStoreCredential`]: https://docs.rs/identity-chain/latest/identity_chain/struct.ObjectStoreCredential.html"
)]
#![cfg_attr(
    not(feature = "object-store"),
    doc = "\n\n[`microsoft_azure_builder`]: https://docs.rs/identity-chain/latest/identity_chain/fn.microsoft_azure_builder.html"
)]

mod chained;
pub mod default;
pub mod managed_identity;
mod selection;

// One item per line, grouped by crate, so that additions do not collide. A new public item
// also goes into the list in the crate docs above.

// The chains.
pub use chained::Attempt;
pub use chained::ChainError;
pub use chained::ChainedTokenCredential;
pub use chained::DEFAULT_CHAIN_DEADLINE;
pub use default::DefaultAzureCredential;
pub use default::DefaultAzureCredentialBuilder;
pub use selection::AZURE_TOKEN_CREDENTIALS;
pub use selection::CredentialKind;

// Calling a credential.
pub use identity_core::AccessToken;
pub use identity_core::BoxFuture;
pub use identity_core::Env;
pub use identity_core::Error;
pub use identity_core::ErrorKind;
pub use identity_core::Runtime;
pub use identity_core::Secret;
pub use identity_core::TokenCredential;
pub use identity_core::TokenRequestOptions;
pub use identity_core::TokenType;
pub use identity_core::display_chain;

// Managed identity.
pub use identity_msi::HostFiles;
pub use identity_msi::ListedHostFiles;
pub use identity_msi::ManagedIdentityClient;
pub use identity_msi::ManagedIdentityId;
pub use identity_msi::ManagedIdentitySource;
pub use identity_msi::SystemHostFiles;
pub use identity_msi::TokenResult;
pub use identity_msi::TokenSource;
pub use managed_identity::ManagedIdentityCredential;
pub use managed_identity::ManagedIdentityCredentialBuilder;

// Developer tools.
pub use identity_dev::AzureCliCredential;
pub use identity_dev::AzureCliCredentialBuilder;
pub use identity_dev::AzureDeveloperCliCredential;
pub use identity_dev::AzureDeveloperCliCredentialBuilder;
pub use identity_dev::AzurePowerShellCredential;
pub use identity_dev::AzurePowerShellCredentialBuilder;

// Microsoft Entra ID.
pub use identity_entra::AzureAuthorityHosts;
pub use identity_entra::AzurePipelinesCredential;
pub use identity_entra::AzurePipelinesCredentialBuilder;
pub use identity_entra::ClientAssertionCredential;
pub use identity_entra::ClientAssertionCredentialBuilder;
pub use identity_entra::ClientCertificateCredential;
pub use identity_entra::ClientCertificateCredentialBuilder;
pub use identity_entra::ClientSecretCredential;
pub use identity_entra::ClientSecretCredentialBuilder;
pub use identity_entra::EnvironmentCredential;
pub use identity_entra::EnvironmentCredentialBuilder;
pub use identity_entra::GitHubActionsCredential;
pub use identity_entra::GitHubActionsCredentialBuilder;
pub use identity_entra::ReqwestClient;
pub use identity_entra::ReqwestClientBuilder;
pub use identity_entra::WorkloadIdentityCredential;
pub use identity_entra::WorkloadIdentityCredentialBuilder;

// Signing a user in.
pub use identity_entra::AuthenticationRecord;
pub use identity_entra::DeviceCodeCallback;
pub use identity_entra::DeviceCodeCredential;
pub use identity_entra::DeviceCodeCredentialBuilder;
pub use identity_entra::DeviceCodeInfo;
pub use identity_entra::InteractiveBrowserCredential;
pub use identity_entra::InteractiveBrowserCredentialBuilder;
pub use identity_entra::Keyring;
pub use identity_entra::OnBehalfOfCredential;
pub use identity_entra::OnBehalfOfCredentialBuilder;
#[cfg(feature = "keyring")]
#[cfg_attr(docsrs, doc(cfg(feature = "keyring")))]
pub use identity_entra::PlatformKeyring;
pub use identity_entra::TokenCachePersistenceOptions;

// Features.
#[cfg(feature = "azure-core")]
#[cfg_attr(docsrs, doc(cfg(feature = "azure-core")))]
pub use identity_azure_core::AzureCoreCredential;
#[cfg(feature = "blocking")]
#[cfg_attr(docsrs, doc(cfg(feature = "blocking")))]
pub use identity_core::blocking::BlockingCredential;
#[cfg(feature = "object-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "object-store")))]
pub use identity_object_store::ObjectStoreCredential;
#[cfg(feature = "object-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "object-store")))]
pub use identity_object_store::microsoft_azure_builder;

// The README's examples (the official blob client needs feature `azure-core`) compile as
// doctests.
#[cfg(all(doctest, feature = "azure-core"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
