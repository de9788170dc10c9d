//! Fault injection: a loopback server misbehaves at the socket level and every case must end
//! in a clear error within the configured bounds. Faults that are plain bytes go through the
//! shared `TestServer`; a reset, a slow drip and endless headers need a hand-written socket.
//!
//! The misbehaviours are driven through `ManagedIdentityCredential` (App Service source, the
//! default retry policy: three retries) and through the core `Pipeline` directly. Every test
//! uses a [`RecordingSleeper`] so retries never wait on real time, a short per-attempt timeout
//! where a case could stall, and a 20 s `tokio::time::timeout` guard so nothing can hang. No
//! test asserts a timing threshold: the guard only turns a hang into a failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions fail loudly on purpose"
)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use identity_chain::{
    AccessToken, Env, Error, ErrorKind, ManagedIdentityCredential, TokenCredential,
    TokenRequestOptions,
};
use identity_core::http::{HyperClient, Limits, Pipeline, SendOptions};
use identity_core::retry::RetryPolicy;
use identity_core::test_util::{RecordingSleeper, Reply, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const HEADER_SECRET: &str = "planted-fault-header-31d9";
const GUARD: Duration = Duration::from_secs(20);
const SCOPE: &str = "https://management.azure.com/.default";

/// What the server does after it has read one request head.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Promises 1000 bytes, sends a few, then resets the connection.
    ResetMidBody,
    /// Chunked encoding whose last chunk never comes: the connection closes mid-stream.
    TruncatedChunked,
    /// Promises 1000 bytes and sends one every 50 ms.
    SlowDrip,
    /// A 200 whose body is not valid UTF-8.
    InvalidUtf8,
    /// A status line followed by header lines forever, never the blank line.
    EndlessHeaders,
    /// A 302 to another (non-loopback) host.
    RedirectElsewhere,
    /// Always 429 with a Retry-After far beyond any sensible wait.
    AlwaysTooMany,
}

impl Fault {
    /// The answer of a fault the shared test server can give as plain bytes; `None` for the
    /// faults that need the raw socket (a reset, a drip, endless headers).
    fn answer(self) -> Option<Reply> {
        let bytes: &[u8] = match self {
            Self::ResetMidBody | Self::SlowDrip | Self::EndlessHeaders => return None,
            Self::TruncatedChunked => {
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"access_token\":\r\n8\r\n\"partial"
            }
            Self::InvalidUtf8 => {
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 41\r\nConnection: close\r\n\r\n{\"access_token\":\"\xff\xfe\xc0\xaf\",\"expires_in\":3600}"
            }
            Self::RedirectElsewhere => {
                b"HTTP/1.1 302 Found\r\nLocation: http://10.0.0.1/msi/token?api-version=2019-08-01\r\nContent-Length: 0\r\n\r\n"
            }
            Self::AlwaysTooMany => {
                b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 100000\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
            }
        };
        Some(Reply::raw(bytes))
    }
}

/// A loopback server that applies `fault` to every request and counts the request heads it
/// read and the connections it accepted: the shared test server where the fault is plain
/// bytes, a hand-written one where it needs the raw socket.
enum FaultServer {
    Shared(TestServer),
    Raw {
        addr: SocketAddr,
        requests: Arc<AtomicUsize>,
        connections: Arc<AtomicUsize>,
    },
}

impl FaultServer {
    async fn start(fault: Fault) -> Self {
        if let Some(answer) = fault.answer() {
            return Self::Shared(TestServer::always(answer).await);
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (req, conn) = (requests.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                conn.fetch_add(1, Ordering::SeqCst);
                let req = req.clone();
                tokio::spawn(async move {
                    // Errors only mean the client went away, which is the point of most cases.
                    let _ = serve(stream, fault, &req).await;
                });
            }
        });
        Self::Raw {
            addr,
            requests,
            connections,
        }
    }

    fn url(&self) -> String {
        match self {
            Self::Shared(server) => server.url("/msi/token"),
            Self::Raw { addr, .. } => format!("http://{addr}/msi/token"),
        }
    }

    fn requests(&self) -> usize {
        match self {
            Self::Shared(server) => server.request_count(),
            Self::Raw { requests, .. } => requests.load(Ordering::SeqCst),
        }
    }

    fn connections(&self) -> usize {
        match self {
            Self::Shared(server) => server.connections(),
            Self::Raw { connections, .. } => connections.load(Ordering::SeqCst),
        }
    }
}

/// Reads one request head off a connection and answers with a socket-level `fault`.
async fn serve(mut stream: TcpStream, fault: Fault, requests: &AtomicUsize) -> std::io::Result<()> {
    if !read_head(&mut stream).await? {
        return Ok(());
    }
    requests.fetch_add(1, Ordering::SeqCst);
    match fault {
        Fault::ResetMidBody => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"access_token\":\"partial")
                .await?;
            stream.flush().await?;
            // Linger 0 makes the close a TCP reset rather than an orderly FIN.
            #[allow(
                deprecated,
                reason = "set_linger(0) is exactly the reset this case needs"
            )]
            stream.set_linger(Some(Duration::ZERO))?;
        }
        Fault::SlowDrip => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
                .await?;
            for _ in 0..1000 {
                stream.write_all(b" ").await?;
                stream.flush().await?;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Fault::EndlessHeaders => {
            stream.write_all(b"HTTP/1.1 200 OK\r\n").await?;
            for i in 0..1_000_000_u32 {
                let line = format!("X-Pad-{i}: {}\r\n", "a".repeat(64));
                stream.write_all(line.as_bytes()).await?;
                if i % 64 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Reads one request head (and ignores any body: token requests here are GETs). Returns
/// `false` when the client closed the connection first.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<bool> {
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 * 1024 {
            return Ok(false);
        }
        if stream.read(&mut byte).await? == 0 {
            return Ok(false);
        }
        head.push(byte[0]);
    }
    Ok(true)
}

async fn guarded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(GUARD, future)
        .await
        .expect("the call did not finish within the 20 s guard")
}

/// An App Service credential pointed at `server` with a 1 s per-attempt timeout.
fn app_service(server: &FaultServer, sleeper: &RecordingSleeper) -> ManagedIdentityCredential {
    ManagedIdentityCredential::builder()
        .runtime(
            identity_core::Runtime::with_env(Env::from_pairs([
                ("IDENTITY_ENDPOINT", server.url()),
                ("IDENTITY_HEADER", HEADER_SECRET.to_owned()),
            ]))
            .sleeper(sleeper.shared()),
        )
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

async fn app_service_error(fault: Fault) -> (Error, FaultServer, RecordingSleeper) {
    let server = FaultServer::start(fault).await;
    let sleeper = RecordingSleeper::new();
    let credential = app_service(&server, &sleeper);
    let result: Result<AccessToken, Error> =
        guarded(credential.get_token(&[SCOPE], &TokenRequestOptions::default())).await;
    let error = result.expect_err("a misbehaving endpoint produced a token");
    assert_clean(&error, &credential);
    (error, server, sleeper)
}

fn assert_clean(error: &Error, credential: &ManagedIdentityCredential) {
    for text in [
        error.to_string(),
        format!("{error:?}"),
        identity_chain::display_chain(error),
        format!("{credential:?}"),
    ] {
        assert!(!text.contains(HEADER_SECRET), "secret leaked: {text}");
        assert!(!text.contains("partial"), "body leaked: {text}");
    }
}

/// A pipeline over the shared hyper client without retries and a 1 s per-attempt timeout.
fn bare_pipeline() -> Pipeline {
    Pipeline::new(HyperClient::shared())
        .with_limits(Limits::DEFAULT.timeout(Duration::from_secs(1)))
        .with_retry(RetryPolicy::none())
        .with_sleeper(RecordingSleeper::new().shared())
}

fn get(url: &str) -> identity_core::http::Request {
    http::Request::get(url).body(bytes::Bytes::new()).unwrap()
}

#[tokio::test]
async fn a_connection_reset_mid_body_is_a_transport_error_after_the_retries() {
    let (error, server, sleeper) = app_service_error(Fault::ResetMidBody).await;
    assert_eq!(error.kind(), ErrorKind::Transport, "{error}");
    let text = identity_chain::display_chain(&error);
    assert!(text.contains("127.0.0.1"), "{text}");
    // The default policy retries transport failures three times; the first retry does not
    // sleep (backoff 0), the next two do.
    assert_eq!(server.requests(), 4, "{text}");
    assert_eq!(sleeper.slept().len(), 2);
}

#[tokio::test]
async fn a_truncated_chunked_body_is_a_transport_error() {
    let (error, server, _) = app_service_error(Fault::TruncatedChunked).await;
    assert_eq!(error.kind(), ErrorKind::Transport, "{error}");
    assert!(server.requests() >= 1);
}

#[tokio::test]
async fn a_slow_drip_body_ends_with_the_per_attempt_timeout() {
    let (error, server, _) = app_service_error(Fault::SlowDrip).await;
    assert_eq!(error.kind(), ErrorKind::Transport, "{error}");
    let text = identity_chain::display_chain(&error);
    assert!(text.contains("timed out after 1000 ms"), "{text}");
    assert!(
        (1..=4).contains(&server.requests()),
        "{}",
        server.requests()
    );
}

#[tokio::test]
async fn an_invalid_utf8_body_is_an_authentication_failure_without_retries() {
    let (error, server, sleeper) = app_service_error(Fault::InvalidUtf8).await;
    assert_eq!(error.kind(), ErrorKind::AuthenticationFailed, "{error}");
    let text = identity_chain::display_chain(&error);
    assert!(!text.contains('\u{fffd}'), "{text}");
    assert_eq!(server.requests(), 1);
    assert!(sleeper.slept().is_empty());
}

#[tokio::test]
async fn headers_that_never_end_are_a_transport_error() {
    let (error, server, _) = app_service_error(Fault::EndlessHeaders).await;
    assert_eq!(error.kind(), ErrorKind::Transport, "{error}");
    assert!((1..=4).contains(&server.requests()));
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed() {
    let (error, server, sleeper) = app_service_error(Fault::RedirectElsewhere).await;
    // One request, one connection: nothing went to 10.0.0.1 or came back here again.
    assert_eq!(server.requests(), 1);
    assert_eq!(server.connections(), 1);
    assert!(sleeper.slept().is_empty());
    let text = identity_chain::display_chain(&error);
    assert!(text.contains("302"), "{text}");
    assert!(
        !text.contains("10.0.0.1"),
        "the Location header is not echoed: {text}"
    );
}

#[tokio::test]
async fn a_server_that_always_answers_429_is_asked_a_bounded_number_of_times_with_capped_waits() {
    let (error, server, sleeper) = app_service_error(Fault::AlwaysTooMany).await;
    let text = identity_chain::display_chain(&error);
    assert!(text.contains("429"), "{text}");
    // Retry-After: 100000 is past the 60 s the policy honours: the call ends at once after
    // one request with the 429 itself, saying so, instead of sleeping only to fail later.
    assert_eq!(server.requests(), 1, "{text}");
    assert!(sleeper.slept().is_empty());
    assert_eq!(error.kind(), ErrorKind::AuthenticationFailed, "{text}");
    assert!(
        text.contains("asked to retry after 100000 s, which exceeds 60 s"),
        "{text}"
    );
}

#[tokio::test]
async fn a_thousand_429s_in_a_row_each_end_in_an_error_with_bounded_requests() {
    // Every call fails, so none is served by the cache: each goes to the server and must stop
    // after its own bounded number of attempts (at most four for App Service).
    let server = FaultServer::start(Fault::AlwaysTooMany).await;
    let sleeper = RecordingSleeper::new();
    let credential = app_service(&server, &sleeper);
    guarded(async {
        let mut calls = 0;
        while server.requests() < 1000 {
            let before = server.requests();
            let error = credential
                .get_token(&[SCOPE], &TokenRequestOptions::default())
                .await
                .unwrap_err();
            let made = server.requests() - before;
            assert!((1..=4).contains(&made), "one call made {made} requests");
            assert!(
                identity_chain::display_chain(&error).contains("429"),
                "{error}"
            );
            calls += 1;
            assert!(calls <= 1000, "the loop is bounded");
        }
    })
    .await;
    assert!(
        sleeper
            .slept()
            .iter()
            .all(|d| *d <= Duration::from_secs(60)),
        "every wait is capped"
    );
}

#[tokio::test]
async fn the_pipeline_reports_a_reset_mid_body_as_a_read_failure() {
    let server = FaultServer::start(Fault::ResetMidBody).await;
    let error =
        guarded(bare_pipeline().send_once("Test", get(&server.url()), SendOptions::default()))
            .await
            .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport);
    assert!(error.to_string().contains("127.0.0.1"), "{error}");
}

#[tokio::test]
async fn the_pipeline_ends_endless_headers_with_an_error() {
    let server = FaultServer::start(Fault::EndlessHeaders).await;
    let error =
        guarded(bare_pipeline().send_once("Test", get(&server.url()), SendOptions::default()))
            .await
            .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport);
}

#[tokio::test]
async fn the_pipeline_returns_a_redirect_instead_of_following_it() {
    let server = FaultServer::start(Fault::RedirectElsewhere).await;
    let response =
        guarded(bare_pipeline().send("Test", &get(&server.url()), SendOptions::default()))
            .await
            .unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn the_pipeline_ends_a_slow_drip_at_its_timeout() {
    let server = FaultServer::start(Fault::SlowDrip).await;
    let error =
        guarded(bare_pipeline().send_once("Test", get(&server.url()), SendOptions::default()))
            .await
            .unwrap_err();
    assert!(error.to_string().contains("timed out"), "{error}");
}
