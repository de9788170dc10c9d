//! The loopback TLS token server the integration tests share: identity-core's
//! [`TestServer`] behind a TLS handshake. It answers every request with a token, records what
//! it saw (the client's SNI, the request head and body), can require an SNI (a connection
//! without it is closed after the handshake), and can swap its certificate (a CA rotation).
#![allow(
    dead_code,
    clippy::unwrap_used,
    reason = "each test binary uses part of the helper, which fails loudly on purpose"
)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use identity_core::test_util::{Reply, TestServer};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncReadExt;

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
    server: TestServer,
    snis: Arc<Mutex<Vec<Option<String>>>>,
    config: Arc<Mutex<Arc<rustls::ServerConfig>>>,
}

impl TlsServer {
    /// Starts serving `config`, answering each request with the bearer token `token` (for
    /// an hour); with `sni`, only connections that sent that SNI are served.
    pub(crate) async fn start(
        config: Arc<rustls::ServerConfig>,
        token: &'static str,
        sni: Option<&'static str>,
    ) -> Self {
        let config = Arc::new(Mutex::new(config));
        let snis = Arc::new(Mutex::new(Vec::new()));
        let body =
            format!(r#"{{"token_type":"Bearer","access_token":"{token}","expires_in":3600}}"#);
        let (configs, seen) = (config.clone(), snis.clone());
        let server = TestServer::wrapped(
            move |_| Reply::json(body.clone()),
            move |tcp| {
                let acceptor = tokio_rustls::TlsAcceptor::from(configs.lock().unwrap().clone());
                let seen = seen.clone();
                async move {
                    let tls = acceptor.accept(tcp).await?;
                    let got = tls.get_ref().1.server_name().map(str::to_owned);
                    if sni.is_some() && got.as_deref() != sni {
                        return Err(std::io::Error::other("another SNI"));
                    }
                    seen.lock().unwrap().push(got);
                    Ok(tls)
                }
            },
        )
        .await;
        Self {
            addr: server.addr(),
            server,
            snis,
            config,
        }
    }

    /// Serves `config` from the next connection on.
    pub(crate) fn serve(&self, config: Arc<rustls::ServerConfig>) {
        *self.config.lock().unwrap() = config;
    }

    /// What it has served so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        let snis = self.snis.lock().unwrap().clone();
        self.server
            .requests()
            .into_iter()
            .zip(snis)
            .map(|(request, sni)| Seen {
                sni,
                head: request.head,
                body: String::from_utf8_lossy(&request.body).into_owned(),
            })
            .collect()
    }
}

/// Reads a request head (through the blank line) from `stream`: what a CONNECT proxy needs.
/// Bounded: at most 64 reads of 1 KiB.
pub(crate) async fn read_head<S: AsyncReadExt + Unpin>(stream: &mut S) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    for _ in 0..64 {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return String::from_utf8_lossy(&buf[..end]).into_owned();
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}
