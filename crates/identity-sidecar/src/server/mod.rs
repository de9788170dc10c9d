//! The HTTP/1.1 server (hyper 1): binding, connection bounds, routing and graceful shutdown.
//!
//! Bounds, per connection and per request ([`ServerLimits`]): a request head of at most
//! 16 KiB and 32 headers (hyper answers 431 beyond), the head read within 5 s (a slow client
//! is disconnected: no slow-loris), no request body (413), a token answered within 30 s (503
//! after), at most 1,024 open connections (further ones are closed at once) and 512 token
//! requests waiting (503 with `Retry-After: 1` beyond), a connection kept at most 5 minutes.

//!
//! `listen.rs` binds and accepts (TCP or a Unix socket) and runs each connection under those
//! bounds; `routes.rs` answers a request (token, health, metrics); [`failure`] turns a
//! backend error into the status and message App Service gives for the same condition.

pub mod failure;
mod listen;
mod routes;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use identity_core::{Env, Secret};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::backend::Backend;
use crate::guard::UpstreamGuard;
use crate::metrics::Metrics;
use crate::protocol;

use listen::accept_loop;
#[cfg(unix)]
use listen::bind_unix;
use routes::State;

/// Where the server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bind {
    /// A TCP address; loopback unless [`ServerConfig::allow_non_loopback`] is set.
    Tcp(SocketAddr),
    /// A Unix socket at `path`, with permission bits `mode` (e.g. `0o660` to let a group in).
    #[cfg(unix)]
    Unix {
        /// The socket's path. A stale socket there is replaced; any other file is an error.
        path: PathBuf,
        /// The socket file's permission bits.
        mode: u32,
    },
}

/// Time and size bounds of the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerLimits {
    /// The largest request head, in bytes (default 16 KiB; at least 8 KiB).
    pub max_head_bytes: usize,
    /// The most request headers (default 32).
    pub max_headers: usize,
    /// How long a client may take to send a request head (default 5 s).
    pub header_read_timeout: Duration,
    /// How long a token request may take to answer (default 30 s).
    pub request_timeout: Duration,
    /// How long a connection is kept (default 5 min).
    pub connection_lifetime: Duration,
    /// The most open connections (default 1,024).
    pub max_connections: usize,
    /// The most token requests waiting at once (default 512).
    pub max_pending: usize,
    /// How long shutdown waits for open requests (default 10 s).
    pub drain: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_head_bytes: 16 * 1024,
            max_headers: 32,
            header_read_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            connection_lifetime: Duration::from_secs(300),
            max_connections: 1024,
            max_pending: 512,
            drain: Duration::from_secs(10),
        }
    }
}

impl ServerLimits {
    /// Sets how long a client may take to send a request head.
    #[must_use]
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Sets how long a token request may take to answer.
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the most token requests waiting at once.
    #[must_use]
    pub fn max_pending(mut self, n: usize) -> Self {
        self.max_pending = n;
        self
    }
}

/// How the server is set up.
#[derive(Clone)]
pub struct ServerConfig {
    /// Where to listen (default `127.0.0.1:0`, a free port).
    pub bind: Bind,
    /// Allow a non-loopback TCP address (default false: such a bind is refused).
    pub allow_non_loopback: bool,
    /// The token endpoint's path (default [`protocol::DEFAULT_PATH`]).
    pub path: String,
    /// The value callers must send in `X-IDENTITY-HEADER`.
    pub secret: Secret,
    /// Bounds.
    pub limits: ServerLimits,
}

impl ServerConfig {
    /// Loopback on a free port, the default path and limits, and `secret`.
    pub fn new(secret: Secret) -> Self {
        Self {
            bind: Bind::Tcp(SocketAddr::from(([127, 0, 0, 1], 0))),
            allow_non_loopback: false,
            path: protocol::DEFAULT_PATH.to_owned(),
            secret,
            limits: ServerLimits::default(),
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("bind", &self.bind)
            .field("allow_non_loopback", &self.allow_non_loopback)
            .field("path", &self.path)
            .field("secret", &self.secret)
            .field("limits", &self.limits)
            .finish()
    }
}

/// A running sidecar. Dropping it stops the server at once; [`shutdown`](Self::shutdown)
/// stops it gracefully.
pub struct Sidecar {
    local: Local,
    state: Arc<State>,
    stop: watch::Sender<bool>,
    connections: Arc<Semaphore>,
    task: Option<JoinHandle<()>>,
}

#[derive(Clone, Debug)]
enum Local {
    Tcp(SocketAddr),
    #[cfg(unix)]
    Unix(PathBuf),
}

impl fmt::Debug for Sidecar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sidecar")
            .field("local", &self.local)
            .field("path", &self.state.path)
            .field("backend", &self.state.backend)
            .finish_non_exhaustive()
    }
}

/// The error for a non-loopback address without [`ServerConfig::allow_non_loopback`].
fn refuse_non_loopback(addr: SocketAddr) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "refusing to listen on {addr}: not a loopback address; any host that reaches it could ask for tokens (use --allow-non-loopback to force)"
        ),
    )
}

impl Sidecar {
    /// Binds and starts serving in background tasks. `guards` are the upstream guards under
    /// the backend's HTTP clients (none for development tokens); the server reads their
    /// throttle state to answer 429 with the right `Retry-After`.
    ///
    /// # Errors
    /// [`io::ErrorKind::PermissionDenied`] for a non-loopback TCP address without
    /// `allow_non_loopback` (nothing is bound); a bind failure; a Unix socket path that holds
    /// a file other than a socket.
    pub async fn start(
        config: ServerConfig,
        backend: Backend,
        guards: Vec<Arc<UpstreamGuard>>,
        metrics: Arc<Metrics>,
    ) -> io::Result<Self> {
        let state = Arc::new(State {
            path: config.path.clone(),
            secret: config.secret.clone(),
            backend,
            guards,
            metrics,
            pending: Semaphore::new(config.limits.max_pending),
            limits: config.limits,
        });
        let (stop, stopped) = watch::channel(false);
        let connections = Arc::new(Semaphore::new(config.limits.max_connections.max(1)));
        let (local, task) = match &config.bind {
            Bind::Tcp(addr) => {
                if !addr.ip().is_loopback() && !config.allow_non_loopback {
                    return Err(refuse_non_loopback(*addr));
                }
                let listener = tokio::net::TcpListener::bind(addr).await?;
                let local = listener.local_addr()?;
                let task = tokio::spawn(accept_loop(
                    listener,
                    state.clone(),
                    stopped,
                    connections.clone(),
                ));
                (Local::Tcp(local), task)
            }
            #[cfg(unix)]
            Bind::Unix { path, mode } => {
                let listener = bind_unix(path, *mode)?;
                let task = tokio::spawn(accept_loop(
                    listener,
                    state.clone(),
                    stopped,
                    connections.clone(),
                ));
                (Local::Unix(path.clone()), task)
            }
        };
        tracing::info!(
            endpoint = %endpoint_of(&local, &state.path),
            backend = state.backend.name(),
            "identity-sidecar listening"
        );
        Ok(Self {
            local,
            state,
            stop,
            connections,
            task: Some(task),
        })
    }

    /// The TCP address, or `None` on a Unix socket.
    pub fn addr(&self) -> Option<SocketAddr> {
        match &self.local {
            Local::Tcp(a) => Some(*a),
            #[cfg(unix)]
            Local::Unix(_) => None,
        }
    }

    /// The value for `IDENTITY_ENDPOINT`: `http://<addr><path>`, or `unix:<socket><path>`.
    pub fn endpoint(&self) -> String {
        endpoint_of(&self.local, &self.state.path)
    }

    /// The value for `IDENTITY_HEADER`. A secret: do not log it.
    pub fn identity_header(&self) -> &Secret {
        &self.state.secret
    }

    /// An environment configured as App Service configures a managed identity, pointing at
    /// this sidecar (contains the secret: do not log its values).
    pub fn app_service_env(&self) -> Env {
        Env::from_pairs([
            ("IDENTITY_ENDPOINT", self.endpoint()),
            ("IDENTITY_HEADER", self.state.secret.secret().to_owned()),
        ])
    }

    /// The counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.state.metrics
    }

    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.state.backend
    }

    /// Stops accepting, lets open requests finish (at most [`ServerLimits::drain`]), and
    /// returns.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let all = u32::try_from(self.state.limits.max_connections.max(1)).unwrap_or(u32::MAX);
        let drained =
            tokio::time::timeout(self.state.limits.drain, self.connections.acquire_many(all)).await;
        if drained.is_err() {
            tracing::warn!("identity-sidecar: connections still open after the drain time");
        }
        #[cfg(unix)]
        if let Local::Unix(path) = &self.local {
            let _ = std::fs::remove_file(path);
        }
        tracing::info!("identity-sidecar stopped");
    }

    /// Serves until `signal` resolves, then shuts down gracefully.
    pub async fn serve_until(self, signal: impl std::future::Future<Output = ()>) {
        signal.await;
        self.shutdown().await;
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn endpoint_of(local: &Local, path: &str) -> String {
    match local {
        Local::Tcp(a) => format!("http://{a}{path}"),
        #[cfg(unix)]
        Local::Unix(p) => format!("unix:{}{path}", p.display()),
    }
}
