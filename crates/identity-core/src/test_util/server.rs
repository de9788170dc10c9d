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

/// How long the server waits for a request to arrive in full.
const READ_LIMIT: Duration = TestServer::READ_LIMIT;
/// The longest a connection is held open: a delay before answering, or silence.
const HOLD_LIMIT: Duration = TestServer::HOLD_LIMIT;
/// The largest request head read, in bytes.
const MAX_HEAD: usize = 64 * 1024;
/// The largest request body read, in bytes.
const MAX_BODY: usize = 1024 * 1024;

/// One request the server received.
#[derive(Clone, Debug, Default)]
pub struct SeenRequest {
    /// The request line, e.g. `GET /msi/token?api-version=2019-08-01 HTTP/1.1`.
    pub line: String,
    /// The method, e.g. `GET`.
    pub method: String,
    /// The request target as sent: path and query.
    pub target: String,
    /// The whole head as received: the request line and the header lines, CRLF-separated.
    pub head: String,
    /// The headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (read up to its `Content-Length`, at most 1 MiB).
    pub body: Vec<u8>,
}

impl SeenRequest {
    /// The path of the target, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first value of query parameter `name`, percent-decoded.
    pub fn query(&self, name: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k) == name).then(|| decode(v))
        })
    }
}

/// `application/x-www-form-urlencoded` decoding of one component (`+` is a space).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| char::from(b).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.extend(u8::try_from(hi * 16 + lo).ok());
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Clone, Debug)]
enum Action {
    Answer {
        status: u16,
        reason: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    Raw(Vec<u8>),
    Close,
    Silence,
}

/// What the server does with one request.
#[derive(Clone, Debug)]
pub struct Reply {
    action: Action,
    delay: Duration,
}

impl Reply {
    /// An answer with `status` (reason phrase `Status`), no headers beyond `Content-Length`
    /// and `Connection: close`, and an empty body.
    pub fn status(status: u16) -> Self {
        Self {
            action: Action::Answer {
                status,
                reason: "Status".to_owned(),
                headers: Vec::new(),
                body: Vec::new(),
            },
            delay: Duration::ZERO,
        }
    }

    /// A 200 answer with a JSON body.
    pub fn json(body: impl Into<String>) -> Self {
        Self::status(200)
            .header("content-type", "application/json")
            .body(body.into())
    }

    /// Exactly these bytes, then the connection closes.
    pub fn raw(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            action: Action::Raw(bytes.into()),
            delay: Duration::ZERO,
        }
    }

    /// The connection closes without an answer.
    pub fn close() -> Self {
        Self {
            action: Action::Close,
            delay: Duration::ZERO,
        }
    }

    /// No answer: the connection is held open, silent, until the client closes it (at most
    /// [`TestServer::HOLD_LIMIT`]).
    pub fn silence() -> Self {
        Self {
            action: Action::Silence,
            delay: Duration::ZERO,
        }
    }

    /// Sets the reason phrase of an answer's status line.
    #[must_use]
    pub fn reason(mut self, text: &str) -> Self {
        if let Action::Answer { reason, .. } = &mut self.action {
            text.clone_into(reason);
        }
        self
    }

    /// Adds a header to an answer.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let Action::Answer { headers, .. } = &mut self.action {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    /// Sets an answer's body (`Content-Length` follows it).
    #[must_use]
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        if let Action::Answer { body, .. } = &mut self.action {
            *body = bytes.into();
        }
        self
    }

    /// Waits this long (at most [`TestServer::HOLD_LIMIT`]) before carrying the reply out.
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay.min(HOLD_LIMIT);
        self
    }

    fn bytes(&self) -> Option<Vec<u8>> {
        match &self.action {
            Action::Answer {
                status,
                reason,
                headers,
                body,
            } => {
                let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
                for (name, value) in headers {
                    out.push_str(&format!("{name}: {value}\r\n"));
                }
                out.push_str(&format!(
                    "content-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                ));
                let mut out = out.into_bytes();
                out.extend_from_slice(body);
                Some(out)
            }
            Action::Raw(bytes) => Some(bytes.clone()),
            Action::Close | Action::Silence => None,
        }
    }
}

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
    pub const HOLD_LIMIT: Duration = Duration::from_secs(120);

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

/// Reads a request head and its `Content-Length` body; `None` if the client went away or
/// the request is over the bounds.
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<SeenRequest> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    let (line, head) = text.split_once("\r\n").unwrap_or((&text, ""));
    let headers: Vec<(String, String)> = head
        .split("\r\n")
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        })
        .collect();
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_BODY);
    let mut body = buf[end + 4..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(length);
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    Some(SeenRequest {
        line: line.to_owned(),
        method,
        target,
        head: text.clone(),
        headers,
        body,
    })
}
