//! The hand-written loopback servers of the tests, in one place: a raw HTTP/1 server that
//! answers with fixed bytes after a delay (or holds the connection without answering), an
//! address where connecting never completes, and (feature `service-fabric`) a TLS server on a
//! self-signed certificate. Everything binds 127.0.0.1 and is bounded.

use std::sync::atomic::Ordering;
use std::time::Duration;

/// A loopback server answering every request with `answer` after `delay`, counting the
/// requests; `None` accepts and never answers.
pub(crate) struct Raw {
    pub(crate) addr: std::net::SocketAddr,
    seen: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Raw {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Raw {
    pub(crate) async fn start(answer: Option<Vec<u8>>, delay: Duration) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let answer = answer.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    let Some(answer) = answer else {
                        // Hold the connection open without answering.
                        let _ = stream.read(&mut buf).await;
                        return;
                    };
                    tokio::time::sleep(delay).await;
                    let _ = stream.write_all(&answer).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self { addr, seen, task }
    }

    /// `http://<address><path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How many requests arrived (their head read in full).
    pub(crate) fn seen(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }
}

/// A raw HTTP/1.1 answer with `body`, closing the connection.
pub(crate) fn answer(status_line: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "{status_line}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A loopback address where connecting never completes: a listener never accepted from,
/// its accept queue filled first (Linux then drops further SYNs), as a blackholed
/// address looks to a client.
#[cfg(target_os = "linux")]
pub(crate) async fn unconnectable() -> (
    std::net::SocketAddr,
    (tokio::net::TcpListener, Vec<tokio::net::TcpStream>),
) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    for _ in 0..16 {
        match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(stream)) => held.push(stream),
            _ => break,
        }
    }
    (addr, (listener, held))
}

/// The TLS server for Service Fabric's pinned client.
#[cfg(feature = "service-fabric")]
mod tls {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use crate::test_support::CLOCK_NOW;

    /// A TLS server on a fresh self-signed certificate, and what it received.
    pub(crate) struct Server {
        pub(crate) addr: std::net::SocketAddr,
        /// The certificate's SHA-1, colon-separated upper-case hex.
        pub(crate) thumbprint: String,
        /// Requests whose bytes were read after a completed handshake.
        pub(crate) requests: Arc<AtomicUsize>,
        /// The text of each request read.
        pub(crate) received: Arc<std::sync::Mutex<Vec<String>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    fn token_answer(_request: &str) -> (u16, String) {
        (
            200,
            format!(
                r#"{{"access_token":"AT","expires_on":"{}","resource":"https://vault.azure.net","token_type":"Bearer"}}"#,
                CLOCK_NOW + 3600
            ),
        )
    }

    /// A TLS server answering every request with a token.
    pub(crate) async fn tls_server() -> Server {
        tls_server_with(token_answer).await
    }

    /// A pinned TLS server answering every request with `respond(request text)`.
    pub(crate) async fn tls_server_with(respond: fn(&str) -> (u16, String)) -> Server {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der = cert.der().to_vec();
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
        let thumbprint = digest
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![rustls::pki_types::CertificateDer::from(der)],
                rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (r, rec) = (requests.clone(), received.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let mut buf = vec![0u8; 8192];
                let Ok(n) = tls.read(&mut buf).await else {
                    continue;
                };
                if n == 0 {
                    continue;
                }
                r.fetch_add(1, Ordering::SeqCst);
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let (status, body) = respond(&text);
                rec.lock().unwrap().push(text);
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            }
        });
        Server {
            addr,
            thumbprint,
            requests,
            received,
            task,
        }
    }
}

#[cfg(feature = "service-fabric")]
pub(crate) use tls::{Server, tls_server, tls_server_with};
