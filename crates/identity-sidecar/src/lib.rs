//! identity-sidecar: one token cache for every process on a host.
//!
//! Every process that uses a managed identity keeps its own token cache and calls the host's
//! token endpoint itself; IMDS allows about 20 token requests per second and 5 in flight per
//! host, so hosts with dozens of worker processes meet 429 storms, and every new process pays
//! a cold fetch. The sidecar holds the one cache for the host and speaks the App Service
//! managed-identity protocol ([`protocol`]), so a process in any language and with any Azure
//! SDK uses it by setting `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`, with no code change.
//!
//! * [`backend`]: where tokens come from: a managed identity (default), any credential of the
//!   workspace, or unsigned development tokens ([`dev`], `--dev-tokens`). No cache of its own:
//!   the credentials' `TokenCache` gives single flight per identity and resource, refresh
//!   ahead of expiry, and a valid token served while a refresh fails.
//! * [`guard`]: upstream protection under the credentials' HTTP pipeline: at most N requests
//!   in flight and M per second (defaults 5 and 20), a bounded queue, and a throttle cache
//!   that replays an upstream 429 until its `Retry-After` passes.
//! * [`server`]: hyper 1 on loopback (non-loopback refused unless forced) or a Unix socket;
//!   caller secret compared in constant time ([`secret`]: generated and written to a private
//!   file, or read from one); request head size, header count and read time bounded; health
//!   and Prometheus metrics ([`metrics`]) endpoints; graceful shutdown.
//! * [`cli`]: the `identity-sidecar` binary's options and `--help`.
//!
//! Nothing secret is logged: tokens and the caller secret are [`identity_core::Secret`]s that
//! print `***`, requests are logged by path and status only, and errors carry the credentials'
//! messages, which never hold a token, secret or header value.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::sync::Arc;
//! use identity_sidecar::{Backend, DevTokens, ServerConfig, Sidecar};
//!
//! let secret = identity_sidecar::secret::generate()?;
//! let backend = Backend::DevTokens(Arc::new(DevTokens::default()));
//! let sidecar = Sidecar::start(ServerConfig::new(secret), backend, Vec::new(), Arc::default()).await?;
//! println!("IDENTITY_ENDPOINT={}", sidecar.endpoint());
//! sidecar.shutdown().await;
//! # Ok(()) }
//! ```

pub mod backend;
pub mod cli;
pub mod dev;
pub mod guard;
pub mod metrics;
pub mod protocol;
pub mod secret;
pub mod server;

pub use backend::Backend;
pub use dev::DevTokens;
pub use guard::{GuardConfig, UpstreamGuard};
pub use metrics::Metrics;
pub use protocol::{Identity, Reply, TokenAnswer, TokenRequest};
pub use server::{Bind, ServerConfig, ServerLimits, Sidecar};
