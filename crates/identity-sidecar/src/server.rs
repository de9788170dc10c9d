//! The HTTP/1.1 server (hyper 1): binding, connection bounds, routing and graceful shutdown.
//!
//! Bounds, per connection and per request ([`ServerLimits`]): a request head of at most
//! 16 KiB and 32 headers (hyper answers 431 beyond), the head read within 5 s (a slow client
//! is disconnected: no slow-loris), no request body (413), a token answered within 30 s (503
//! after), at most 1,024 open connections (further ones are closed at once) and 512 token
//! requests waiting (503 with `Retry-After: 1` beyond), a connection kept at most 5 minutes.

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use identity_core::{BoxFuture, Env, ErrorKind, Secret};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::backend::Backend;
use crate::guard::{QUEUE_FULL, UpstreamGuard};
use crate::metrics::Metrics;
use crate::protocol::{self, HEALTH_PATH, METRICS_PATH, Reply, SECRET_HEADER};

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

struct State {
    path: String,
    secret: Secret,
    backend: Backend,
    guards: Vec<Arc<UpstreamGuard>>,
    metrics: Arc<Metrics>,
    pending: Semaphore,
    limits: ServerLimits,
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

#[cfg(unix)]
fn bind_unix(path: &std::path::Path, mode: u32) -> io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    if mode & 0o007 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the socket mode must give others nothing (e.g. 600 or 660)",
        ));
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // The socket is created with no access for anyone but the owner, then opened up to
    // `mode`: there is no moment at which others may connect.
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
    let bound = tokio::net::UnixListener::bind(path);
    rustix::process::umask(old);
    let listener = bound?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(listener)
}

/// A listener of either kind.
trait Accept: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept_one(&self) -> BoxFuture<'_, io::Result<Self::Stream>>;
}

impl Accept for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    fn accept_one(&self) -> BoxFuture<'_, io::Result<Self::Stream>> {
        Box::pin(async move { self.accept().await.map(|(s, _)| s) })
    }
}

#[cfg(unix)]
impl Accept for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    fn accept_one(&self) -> BoxFuture<'_, io::Result<Self::Stream>> {
        Box::pin(async move { self.accept().await.map(|(s, _)| s) })
    }
}

async fn accept_loop<L: Accept>(
    listener: L,
    state: Arc<State>,
    mut stopped: watch::Receiver<bool>,
    connections: Arc<Semaphore>,
) {
    loop {
        let stream = tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept_one() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "identity-sidecar: accept failed");
                    // Out of descriptors and the like: back off a little rather than spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            state.metrics.busy.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let state = state.clone();
        let stopped = stopped.clone();
        tokio::spawn(async move {
            serve_connection(stream, state, stopped).await;
            drop(permit);
        });
    }
}

async fn serve_connection<S>(stream: S, state: Arc<State>, mut stopped: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = state.limits;
    let service = service_fn(move |request| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(&state, &request).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_head_bytes.max(8192))
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = stopped.changed() => {}
        () = tokio::time::sleep(limits.connection_lifetime) => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(limits.drain, connection).await;
}

async fn handle(state: &State, request: &http::Request<Incoming>) -> http::Response<Full<Bytes>> {
    let path = request.uri().path();
    let (reply, close) = if path == state.path {
        let started = Instant::now();
        let reply = token_route(state, request).await;
        state.metrics.observe_latency(started.elapsed());
        let close = reply.status == 413;
        (reply, close)
    } else if path == HEALTH_PATH || path == METRICS_PATH {
        if request.method() == http::Method::GET {
            if path == HEALTH_PATH {
                (
                    Reply::ok(
                        r#"{"status":"ok"}"#.to_owned(),
                        "application/json; charset=utf-8",
                    ),
                    false,
                )
            } else {
                (
                    Reply::ok(
                        state.metrics.render(),
                        "text/plain; version=0.0.4; charset=utf-8",
                    ),
                    false,
                )
            }
        } else {
            (Reply::error(405, "this endpoint accepts GET only"), false)
        }
    } else {
        (
            Reply::error(404, "no identity endpoint at this path"),
            false,
        )
    };
    state.metrics.answered(reply.status);
    tracing::debug!(status = reply.status, path, "identity-sidecar answered");
    let mut response = http::Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() =
        http::StatusCode::from_u16(reply.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(reply.content_type),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    if let Some(secs) = reply.retry_after {
        headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
    }
    if close {
        headers.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    response
}

async fn token_route(state: &State, request: &http::Request<Incoming>) -> Reply {
    if request.method() != http::Method::GET {
        return Reply::error(405, "the identity endpoint accepts GET only");
    }
    let headers = request.headers();
    let has_body = headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if has_body {
        return Reply::error(413, "a token request carries no body");
    }
    let mut sent = headers.get_all(SECRET_HEADER).iter();
    match (sent.next(), sent.next()) {
        (None, _) => return Reply::error(401, "the X-IDENTITY-HEADER header is missing"),
        (Some(_), Some(_)) => {
            return Reply::error(401, "the X-IDENTITY-HEADER header is repeated");
        }
        (Some(value), None) => {
            // `Secret`'s equality takes the same time wherever the values differ.
            let given = Secret::new(String::from_utf8_lossy(value.as_bytes()).into_owned());
            if given != state.secret {
                return Reply::error(
                    401,
                    "the X-IDENTITY-HEADER value does not match IDENTITY_HEADER",
                );
            }
        }
    }
    let Ok(_waiting) = state.pending.try_acquire() else {
        state.metrics.busy.fetch_add(1, Ordering::Relaxed);
        return Reply::error(503, "the sidecar is busy; retry shortly")
            .with_retry_after(Duration::from_secs(1));
    };
    let token_request = match protocol::parse_query(request.uri().query().unwrap_or("")) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    // While the backend waits on the upstream, a throttle of this resource (an upstream 429
    // with a retry hint, seen by a guard) is answered at once with 429 and the remaining
    // `Retry-After`: the credential's own retry keeps waiting in the background and fills the
    // cache, so the caller finds the token when it comes back.
    let call = state.backend.token(&token_request);
    tokio::pin!(call);
    let deadline = tokio::time::sleep(state.limits.request_timeout);
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(THROTTLE_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = loop {
        tokio::select! {
            result = &mut call => break result,
            () = &mut deadline => {
                return Reply::error(
                    503,
                    "timed out waiting for the upstream token service; retry shortly",
                )
                .with_retry_after(Duration::from_secs(1));
            }
            _ = tick.tick() => {
                let throttled = state
                    .guards
                    .iter()
                    .filter_map(|g| g.throttled_for_resource(&token_request.resource))
                    .max();
                if let Some(after) = throttled {
                    state.metrics.throttle_replays.fetch_add(1, Ordering::Relaxed);
                    return throttled_reply(after);
                }
            }
        }
    };
    match result {
        Ok(answer) => {
            match answer.from_cache {
                Some(true) => state.metrics.cache_hits.fetch_add(1, Ordering::Relaxed),
                Some(false) => state.metrics.cache_misses.fetch_add(1, Ordering::Relaxed),
                None => 0,
            };
            Reply::token(&answer)
        }
        Err(e) => {
            tracing::warn!(error = %e, resource = %token_request.resource, "identity-sidecar: no token");
            error_reply(state, &e)
        }
    }
}

/// How often a waiting token request checks for a throttle of its resource.
const THROTTLE_POLL: Duration = Duration::from_millis(25);

fn throttled_reply(after: Duration) -> Reply {
    Reply::error(
        429,
        "the upstream token service is throttling requests; retry after the time in Retry-After",
    )
    .with_retry_after(after)
}

/// Maps a backend error to an answer:
///
/// | error | status |
/// |---|---|
/// | status 429 from upstream | 429, `Retry-After` = the longest current throttle (5 s when unknown) |
/// | transport, queue full | 503, `Retry-After: 1` |
/// | transport, other | 503 |
/// | invalid argument or configuration | 400 |
/// | unavailable, authentication failed | 500 |
///
/// The message is the error's display, which never holds a token, secret or header value.
fn error_reply(state: &State, e: &identity_core::Error) -> Reply {
    if e.status() == Some(429) {
        let after = state
            .guards
            .iter()
            .filter_map(|g| g.throttled_for())
            .max()
            .unwrap_or(Duration::from_secs(5));
        return throttled_reply(after);
    }
    let message = e.to_string();
    match e.kind() {
        ErrorKind::Transport => {
            if identity_core::display_chain(e).contains(QUEUE_FULL) {
                Reply::error(503, "the sidecar is busy; retry shortly")
                    .with_retry_after(Duration::from_secs(1))
            } else {
                Reply::error(503, &message)
            }
        }
        ErrorKind::InvalidArgument | ErrorKind::InvalidConfiguration => Reply::error(400, &message),
        _ => Reply::error(500, &message),
    }
}
