//! The Blob Storage demo, end to end: a Microsoft Entra token from this workspace's
//! credentials, used by the official Azure Storage SDK against a real account or against
//! Azurite on the local machine.
//!
//! # What it does
//! [`blob::run_demo`] takes any `Arc<dyn identity_core::TokenCredential>` and, reporting each
//! step with its time: gets a token (naming the credential and the token's audience and
//! object id, never the token), lists containers, creates `identity-demo-<random>`, lists
//! again to see it, uploads a payload (8 MiB of pseudo-random bytes or `--file`), downloads
//! it and compares byte for byte, then deletes the blob and the container and checks the
//! container is gone. After the container exists, a failure still triggers the clean-up.
//!
//! Failures are explained for a person ([`explain`]): a 403
//! `AuthorizationPermissionMismatch` prints the missing role and the exact
//! `az role assignment create …` command with the object id from the token's claims and the
//! account name filled in; a 401 or 403 `AuthenticationFailed` names the credential that
//! produced the token and the audience it was issued for (claims decoded without
//! verification); a credential that cannot produce a token prints its full report (for a
//! chain, every member). No message ever contains a token: explanations are built from
//! claims, and the final text is redacted against the token as well.
//!
//! # Binaries
//! * `identity-blob-demo --account-url https://<account>.blob.core.windows.net [--credential …]`
//!   runs against a real account; `identity-blob-demo local` runs [`local::run_local`]:
//!   Azurite (npm, pinned 3.37.0, project-local install) with OAuth over HTTPS using a
//!   throwaway certificate, plus [`local_msi`], and the demo with `DefaultAzureCredential`
//!   in an environment configured exactly as App Service configures it. See `--help`.
//! * `local-msi`: the local App Service managed-identity endpoint on its own. It issues
//!   **unsigned development tokens**, which only emulators such as Azurite accept, never
//!   Azure.
//!
//! # Credentials
//! [`credential::make_credential`] is the one place where `--credential` becomes a
//! credential: `default` is `identity_chain::DefaultAzureCredential`, named after the member
//! that produced the token; `managed-identity`, `azure-cli`, `environment` and
//! `workload-identity` are the single credentials.
//!
//! # The blob client, and what it costs
//! The official `azure_storage_blob` 1.1.0 (with `azure_core` 1.1.0, both pinned) is used
//! through [`identity_azure_core::AzureCoreCredential`]; no hand-written client was needed.
//! Its transport is a reqwest 0.13 client built here ([`blob::tls_config`]): rustls on the
//! **ring** provider, handed over with `use_preconfigured_tls`, trusting the platform store
//! plus `--ca-file`. reqwest's own `rustls` feature (what the SDK's defaults and the Azurite
//! notes use, with `tls_certs_merge`) would bring aws-lc-rs, a C build that feature
//! unification would switch on for the whole workspace; with ring there is no aws-lc in the
//! lock file at all. No gzip/deflate feature is enabled, so the SDK's ranged downloads see
//! raw bytes. The SDK's retries are cut to two so an untrusted certificate fails in seconds
//! instead of after its ~80 s of default retries.
//!
//! Uploads above 4 MiB use Put Block per 4 MiB plus Put Block List
//! (`BlockBlobClient::stage_block` / `commit_block_list`, both public in 1.1.0), and the
//! progress bar on stderr advances once per block; smaller payloads are one Put Blob.
//!
//! The crate's normal dependency graph is **147 crates** (`cargo tree -p identity-blob-demo
//! -e normal`, the 7 workspace crates included); `identity-azure-core` alone is 93, most of
//! them `azure_core`'s own (serde, time, url, tracing, typespec). No openssl, no aws-lc.
//!
//! # Platform
//! The local orchestration stops Azurite by signalling its process group, which is Unix
//! only; elsewhere only the child process itself is killed.
//!
//! # Features
//! None.

pub mod azurite;
pub mod blob;
pub mod cli;
pub mod credential;
pub mod dev_stack;
pub mod explain;
pub mod jwt;
pub mod local;
pub mod local_msi;
pub mod output;
pub mod random;
