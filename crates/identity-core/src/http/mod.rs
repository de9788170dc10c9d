//! The HTTP seam: a small [`HttpClient`] trait over `http` types, and the [`Pipeline`] that
//! enforces a per-request timeout, a response-body cap and the retry policy once, for every
//! client implementation.
//!
//! Implementations only move bytes. A plain-HTTP implementation on hyper ships behind the
//! `hyper` feature ([`HyperClient`]); identity-entra provides one on reqwest with rustls. Users
//! may bring their own.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;

use crate::BoxFuture;

#[cfg(feature = "hyper")]
mod hyper_client;
mod pipeline;
mod send;
mod verdict;

#[cfg(feature = "hyper")]
pub use hyper_client::{HyperClient, send_over_io};
pub use pipeline::Pipeline;
pub use verdict::{CertificateRejected, CutLimit, RetryCut};

/// A boxed error from a transport.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A request: the body is always fully buffered (token requests are small).
pub type Request = http::Request<Bytes>;

/// A response whose body has been read, within the cap.
pub type Response = http::Response<Bytes>;

/// A streaming response body, as returned by an [`HttpClient`] before the pipeline reads it
/// under the size cap.
pub struct Body(BoxBody<Bytes, BoxError>);

impl Body {
    /// Wraps any `http_body::Body`.
    pub fn new<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        Self(body.map_err(Into::into).boxed())
    }

    /// A body that is already in memory.
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        Self::new(http_body_util::Full::new(bytes.into()).map_err(|never| match never {}))
    }

    /// Reads the whole body, failing as soon as it exceeds `max` bytes.
    async fn collect_capped(mut self, max: usize) -> Result<Bytes, CollectError> {
        let mut buf = BytesMut::new();
        while let Some(frame) = self.0.frame().await {
            let frame = frame.map_err(CollectError::Io)?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > max {
                    return Err(CollectError::TooLarge);
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    }
}

/// A [`Body`] is itself an `http_body::Body`, so a layer between the pipeline and the
/// transport (a proxy, a cache of answers) can read it with `http_body_util`.
impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        std::pin::Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0.size_hint()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Body")
    }
}

enum CollectError {
    Io(BoxError),
    TooLarge,
}

/// The reason phrase of an HTTP/1 status line, kept in a response's extensions when it is not
/// the status's canonical text (`HTTP/1.0 403 connecting to …: unreachable network` carries
/// one; `HTTP/1.1 403 Forbidden` does not).
///
/// [`HyperClient`] inserts it; other clients may. A phrase with bytes outside printable ASCII
/// is kept as an empty phrase (the HTTP parser does not pass such text on), so its presence
/// alone says "the server explained itself in the status line". It is text from the server:
/// print it only bounded and sanitised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReasonPhrase(Bytes);

impl ReasonPhrase {
    /// A reason phrase from the status line's bytes.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Self(bytes.into())
    }

    /// The phrase's bytes, as received (empty when the server sent non-ASCII text).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Per-request hints for an [`HttpClient`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendOptions {
    /// How long establishing the connection may take. Clients that cannot honour it rely on
    /// the pipeline's overall timeout.
    pub connect_timeout: Option<Duration>,
}

impl SendOptions {
    /// Sets the connect timeout.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }
}

/// Sends one HTTP request. No retries, no redirects, no timeouts: the [`Pipeline`] adds
/// those.
pub trait HttpClient: Send + Sync + fmt::Debug {
    /// Sends `request` and returns the response head with a streaming body.
    ///
    /// # Errors
    /// Any transport failure (connect, TLS, I/O). HTTP error statuses are not errors here.
    fn execute(
        &self,
        request: Request,
        options: SendOptions,
    ) -> BoxFuture<'_, Result<http::Response<Body>, BoxError>>;
}

/// Bounds applied to every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// How long one attempt may take, from sending to the last byte of the body.
    pub timeout: Duration,
    /// The largest response body accepted, in bytes.
    pub max_body: usize,
    /// The overall deadline of one call: every attempt, retry sleep and follow-up request of
    /// one `get_token` fits inside it (see [`crate::deadline`]). `None` (the default) uses the
    /// retry policy's [`call_deadline`](crate::retry::RetryPolicy::call_deadline): 60 s, or
    /// 90 s for the IMDS policy.
    pub deadline: Option<Duration>,
}

impl Limits {
    /// The defaults: 30 s per attempt, 1 MiB per body, the retry policy's deadline per call.
    /// Token responses are a few kilobytes.
    pub const DEFAULT: Self = Self {
        timeout: Duration::from_secs(30),
        max_body: 1024 * 1024,
        deadline: None,
    };

    /// Sets the per-attempt timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the body cap.
    #[must_use]
    pub fn max_body(mut self, max_body: usize) -> Self {
        self.max_body = max_body;
        self
    }

    /// Sets the overall deadline per call (see [`Limits::deadline`]).
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Copies a request (method, URI, version, headers, body), for sending it again.
pub fn clone_request(request: &Request) -> Request {
    let mut copy = http::Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}

/// The parts of a URI that are safe to print: scheme, authority and path. Never the query,
/// which may carry identifiers the user did not mean to log.
#[derive(Clone, Debug)]
pub struct Target(String);

impl Target {
    /// The printable part of `uri`.
    pub fn of(uri: &http::Uri) -> Self {
        let scheme = uri.scheme_str().unwrap_or("http");
        let authority = uri.authority().map_or("", http::uri::Authority::as_str);
        // Drop any userinfo.
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        Self(format!("{scheme}://{authority}{}", uri.path()))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A transport error flattened to its text, so that the core `Error` can be cloned and shared
/// between the callers of a single-flight fetch.
#[derive(Debug)]
struct SourceText(String);

impl From<&(dyn StdError + Send + Sync + 'static)> for SourceText {
    fn from(error: &(dyn StdError + Send + Sync + 'static)) -> Self {
        Self(crate::error::display_chain(error))
    }
}

impl fmt::Display for SourceText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for SourceText {}
