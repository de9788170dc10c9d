//! A plain-HTTP/1.1 client on hyper: one connection per request, no TLS, no proxy, no
//! redirects.
//!
//! Managed-identity endpoints are on the local host or link-local network and are called a
//! few times a day, so a connection pool would buy nothing but stale connections. Not pooling
//! also means the client has no state: every credential can share [`HyperClient::shared`].

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::header::{HOST, HeaderValue};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::{Body, BoxError, HttpClient, Request, SendOptions};
use crate::BoxFuture;

/// A plain-HTTP client (feature `hyper`). `https` URLs are refused.
#[derive(Clone, Copy, Debug, Default)]
pub struct HyperClient;

impl HyperClient {
    /// A client.
    pub fn new() -> Self {
        Self
    }

    /// The process-wide shared instance.
    pub fn shared() -> Arc<dyn HttpClient> {
        static SHARED: OnceLock<Arc<dyn HttpClient>> = OnceLock::new();
        SHARED.get_or_init(|| Arc::new(HyperClient)).clone()
    }

    async fn send(
        request: Request,
        options: SendOptions,
    ) -> Result<http::Response<Body>, BoxError> {
        let uri = request.uri();
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(format!(
                    "the {other} scheme is not supported by the plain-HTTP client"
                )
                .into());
            }
            None => return Err("the request URL has no scheme".into()),
        }
        let host = uri.host().ok_or("the request URL has no host")?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(80);
        let connect = TcpStream::connect((host.as_str(), port));
        let stream = match options.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, connect)
                .await
                .map_err(|_| format!("connecting timed out after {} ms", limit.as_millis()))??,
            None => connect.await?,
        };
        let _ = stream.set_nodelay(true);
        send_over_io(stream, request).await
    }
}

impl HttpClient for HyperClient {
    fn execute(
        &self,
        request: Request,
        options: SendOptions,
    ) -> BoxFuture<'_, Result<http::Response<Body>, BoxError>> {
        Box::pin(Self::send(request, options))
    }
}

/// Sends one HTTP/1.1 request over an established connection (plain TCP, or a TLS stream set
/// up by the caller) and returns the response with a streaming body.
///
/// The connection is driven by a spawned task that ends with the response body.
///
/// # Errors
/// Handshake and I/O failures.
pub async fn send_over_io<I>(io: I, request: Request) -> Result<http::Response<Body>, BoxError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        // The result only says how the connection ended; errors surface on the response.
        let _ = connection.await;
    });
    let (mut parts, body) = request.into_parts();
    if !parts.headers.contains_key(HOST) {
        if let Some(authority) = parts.uri.authority() {
            let host = authority.as_str().rsplit('@').next().unwrap_or_default();
            parts.headers.insert(HOST, HeaderValue::from_str(host)?);
        }
    }
    // HTTP/1.1 wants the origin form on the request line.
    parts.uri = parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str)
        .parse()?;
    let request = http::Request::from_parts(parts, Full::<Bytes>::new(body));
    let mut response = sender.send_request(request).await?;
    // A non-canonical reason phrase (Docker Desktop explains its 403 there) is handed on as
    // the client-neutral `ReasonPhrase`, so no hyper type leaves this module.
    if let Some(reason) = response.extensions().get::<hyper::ext::ReasonPhrase>() {
        let phrase = super::ReasonPhrase::new(Bytes::copy_from_slice(reason.as_bytes()));
        response.extensions_mut().insert(phrase);
    }
    Ok(response.map(Body::new))
}
