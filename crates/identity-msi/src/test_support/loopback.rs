//! The loopback servers of the tests that identity-core's `test_util::TestServer` does not
//! provide, in one place: raw answers for it, an address where connecting never completes,
//! and (feature `service-fabric`) a TLS server on a self-signed certificate. Everything binds
//! 127.0.0.1 and is bounded.

use std::time::Duration;

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

    use identity_core::test_util::{Reply, SeenRequest, TestServer};

    use crate::test_support::CLOCK_NOW;

    /// A TLS server on a fresh self-signed certificate (identity-core's `TestServer` behind a
    /// rustls acceptor), and what it received.
    pub(crate) struct Server {
        pub(crate) addr: std::net::SocketAddr,
        /// The certificate's SHA-1, colon-separated upper-case hex.
        pub(crate) thumbprint: String,
        server: TestServer,
    }

    impl Server {
        /// The head (request line and headers) of each request read after a completed
        /// handshake.
        pub(crate) fn received(&self) -> Vec<String> {
            self.server.requests().into_iter().map(|r| r.head).collect()
        }

        /// How many requests were read after a completed handshake.
        pub(crate) fn request_count(&self) -> usize {
            self.server.request_count()
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

    /// A pinned TLS server answering every request with `respond(request head)`.
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
        let server = TestServer::wrapped(
            move |request: &SeenRequest| {
                let (status, body) = respond(&request.head);
                Reply::status(status)
                    .header("content-type", "application/json")
                    .body(body)
            },
            move |tcp| acceptor.accept(tcp),
        )
        .await;
        Server {
            addr: server.addr(),
            thumbprint,
            server,
        }
    }
}

#[cfg(feature = "service-fabric")]
pub(crate) use tls::{Server, tls_server, tls_server_with};
