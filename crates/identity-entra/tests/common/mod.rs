//! The loopback TLS token server the integration tests share: it answers every request with a
//! token, records what it saw (the client's SNI, the request head and body), can require an
//! SNI, and can swap its certificate (a CA rotation).
#![allow(
    dead_code,
    clippy::unwrap_used,
    reason = "each test binary uses part of the helper, which fails loudly on purpose"
)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A request the server saw.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    /// The SNI the client sent.
    pub(crate) sni: Option<String>,
    /// The request line and headers.
    pub(crate) head: String,
    /// The body (as long as its `content-length`).
    pub(crate) body: String,
}

/// A server configuration with `chain` and `key`, on the `ring` provider.
pub(crate) fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Arc<rustls::ServerConfig> {
    Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap(),
    )
}

/// A TLS token server on 127.0.0.1.
pub(crate) struct TlsServer {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    config: Arc<Mutex<Arc<rustls::ServerConfig>>>,
}

impl TlsServer {
    /// Starts serving `config`. Every request is recorded; it is answered with a bearer token
    /// `token` (for an hour) when `sni` is `None` or the client sent that SNI, and the
    /// connection is closed otherwise.
    pub(crate) async fn start(
        config: Arc<rustls::ServerConfig>,
        token: &'static str,
        sni: Option<&'static str>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let config = Arc::new(Mutex::new(config));
        let (log, configs) = (seen.clone(), config.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = tokio_rustls::TlsAcceptor::from(configs.lock().unwrap().clone());
                let log = log.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let client_sni = tls.get_ref().1.server_name().map(str::to_owned);
                    let Some((head, body)) = read_request(&mut tls).await else {
                        return;
                    };
                    log.lock().unwrap().push(Seen {
                        sni: client_sni.clone(),
                        head,
                        body,
                    });
                    if sni.is_some() && client_sni.as_deref() != sni {
                        return;
                    }
                    let body = format!(
                        r#"{{"token_type":"Bearer","access_token":"{token}","expires_in":3600}}"#
                    );
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self { addr, seen, config }
    }

    /// Serves `config` from the next connection on.
    pub(crate) fn serve(&self, config: Arc<rustls::ServerConfig>) {
        *self.config.lock().unwrap() = config;
    }

    /// What it has seen so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Reads an HTTP/1.1 request head and (with a `content-length`) its body; `None` when the
/// stream ends or fails first. Bounded: at most 1000 reads.
pub(crate) async fn read_request<S: AsyncReadExt + Unpin>(
    stream: &mut S,
) -> Option<(String, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    for _ in 0..1000 {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).to_string();
                return Some((head, body));
            }
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    None
}
