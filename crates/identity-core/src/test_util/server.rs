//! [`TestServer`]: a scripted HTTP/1.1 server on 127.0.0.1 for tests.
//!
//! Each connection carries one request: the server reads it (head and `Content-Length` body,
//! bounded), records it, and carries out one [`Reply`]: an answer (status, headers, body,
//! after an optional delay), raw bytes, a close without an answer, or silence. Every wait is
//! bounded: reading a request by [`TestServer::READ_LIMIT`], a delay or silence by
//! [`TestServer::HOLD_LIMIT`].

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::reply::{Action, HOLD_LIMIT, Reply};
use super::request::{SeenRequest, read_request};

/// How long the server waits for a request to arrive in full.
const READ_LIMIT: Duration = TestServer::READ_LIMIT;

type Responder = dyn Fn(&SeenRequest) -> Reply + Send + Sync;

struct State {
    respond: Box<Responder>,
    seen: Mutex<Vec<SeenRequest>>,
    connections: AtomicUsize,
}

/// A scripted HTTP/1.1 server on 127.0.0.1 (an ephemeral port). It runs until the tokio
/// runtime that started it stops. Cloning shares the server.
///
/// ```
/// # async fn demo() {
/// use identity_core::test_util::{Reply, TestServer};
/// let server = TestServer::script([Reply::status(503), Reply::json(r#"{"ok":true}"#)]).await;
/// let url = server.url("/token"); // http://127.0.0.1:<port>/token
/// # let _ = url;
/// assert!(server.requests().is_empty());
/// # }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo());
/// ```
#[derive(Clone)]
pub struct TestServer {
    addr: SocketAddr,
    state: Arc<State>,
}

impl fmt::Debug for TestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// How long the server waits for a request (or a wrapped connection's handshake) to
    /// arrive in full: 10 s.
    pub const READ_LIMIT: Duration = Duration::from_secs(10);
    /// The longest a connection is held open by a [`Reply::delay`] or [`Reply::silence`]:
    /// 120 s.
    pub const HOLD_LIMIT: Duration = HOLD_LIMIT;

    /// A server answering the requests in turn with `replies`; the last reply repeats (an
    /// empty script answers 404).
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn script(replies: impl IntoIterator<Item = Reply>) -> Self {
        let script = Mutex::new(replies.into_iter().collect::<VecDeque<_>>());
        Self::respond(move |_| {
            let mut script = script.lock().unwrap_or_else(PoisonError::into_inner);
            if script.len() > 1 {
                script.pop_front().unwrap_or_else(|| Reply::status(404))
            } else {
                script
                    .front()
                    .cloned()
                    .unwrap_or_else(|| Reply::status(404))
            }
        })
        .await
    }

    /// A server answering every request with `reply`.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn always(reply: Reply) -> Self {
        Self::script([reply]).await
    }

    /// A server answering each request with what `respond` makes of it.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn respond(respond: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static) -> Self {
        Self::wrapped(respond, |tcp| std::future::ready(Ok(tcp))).await
    }

    /// A server whose connections are first passed through `wrap` (a TLS handshake, say);
    /// a connection `wrap` fails is dropped.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    #[allow(
        clippy::expect_used,
        reason = "a test fixture that cannot bind must stop the test"
    )]
    pub async fn wrapped<W, Fut, S>(
        respond: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static,
        wrap: W,
    ) -> Self
    where
        W: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = io::Result<S>> + Send + 'static,
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("the bound address");
        let state = Arc::new(State {
            respond: Box::new(respond),
            seen: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
        });
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let state = Arc::clone(&shared);
                let handshake = wrap(tcp);
                tokio::spawn(async move {
                    if let Ok(Ok(stream)) = tokio::time::timeout(READ_LIMIT, handshake).await {
                        serve(stream, &state).await;
                    }
                });
            }
        });
        Self { addr, state }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:<port>` followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.state
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many requests have been received.
    pub fn request_count(&self) -> usize {
        self.state
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// How many connections have been accepted (with or without a request).
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
}

/// Reads one request off `stream` and carries out its reply.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, state: &State) {
    let Ok(Some(request)) = tokio::time::timeout(READ_LIMIT, read_request(&mut stream)).await
    else {
        return;
    };
    let reply = (state.respond)(&request);
    state
        .seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(request);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    match reply.bytes() {
        Some(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.flush().await;
            let _ = stream.shutdown().await;
        }
        None if matches!(reply.action, Action::Silence) => {
            // Hold the connection until the client goes away, within the bound.
            let mut sink = [0u8; 256];
            let drain = async { while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {} };
            let _ = tokio::time::timeout(HOLD_LIMIT, drain).await;
        }
        None => {}
    }
}
