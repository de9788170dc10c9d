//! Listening: the Unix socket's safe creation, the accept loop with its connection bound, and
//! one HTTP/1.1 connection under the server's time and size bounds.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use identity_core::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, watch};

use super::routes::{State, handle};

#[cfg(unix)]
pub(super) fn bind_unix(path: &std::path::Path, mode: u32) -> io::Result<tokio::net::UnixListener> {
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
pub(super) trait Accept: Send + 'static {
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

pub(super) async fn accept_loop<L: Accept>(
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
