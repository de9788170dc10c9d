//! The refusal cache: an upstream answer that will not change by asking again (400: IMDS's
//! "Identity not found" or no identity on the host, a bad request; 403: a refusal) is
//! remembered for a while and replayed to the same request instead of sent upstream again.
//!
//! Clients do not retry a 400-class answer, but every new `get_token` of a misconfigured
//! caller would otherwise reach the upstream; IMDS allows about 20 requests per second per
//! host, and those calls are shared with every healthy caller.
//!
//! * Key: a hash of the method, URL, every header (name and value) and the body, so that two
//!   requests that differ in any way (IMDS's probe without `Metadata`, Azure Arc's answer to
//!   its challenge) are never confused. Only the hash is kept, never the request.
//! * Kept: the status, the reason phrase, the headers and the body (at most
//!   [`MAX_BODY`] bytes: a larger answer, or one not read within [`READ_TIMEOUT`], is passed
//!   on once as an error and not remembered), for the configured time (default 30 s), at most
//!   [`MAX_ENTRIES`] entries.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash as _, Hasher as _};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use identity_core::http::{Body, BoxError, ReasonPhrase, Request};
use tokio::time::Instant;

/// The largest body remembered, in bytes.
pub const MAX_BODY: usize = 8 * 1024;
/// The most refusals remembered at once.
pub const MAX_ENTRIES: usize = 4096;
/// How long reading a refusal's body may take.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// True for the statuses remembered: 400 and 403.
pub fn is_refusal(status: http::StatusCode) -> bool {
    matches!(
        status,
        http::StatusCode::BAD_REQUEST | http::StatusCode::FORBIDDEN
    )
}

/// The key of `request`: a hash of its method, URL, headers and body.
pub(super) fn key(request: &Request) -> u64 {
    let mut h = DefaultHasher::new();
    request.method().as_str().hash(&mut h);
    request.uri().to_string().hash(&mut h);
    for (name, value) in request.headers() {
        name.as_str().hash(&mut h);
        value.as_bytes().hash(&mut h);
    }
    request.body().hash(&mut h);
    h.finish()
}

#[derive(Clone)]
struct Kept {
    until: Instant,
    status: http::StatusCode,
    headers: http::HeaderMap,
    reason: Option<ReasonPhrase>,
    body: Bytes,
}

impl Kept {
    fn response(&self) -> http::Response<Body> {
        let mut response = http::Response::new(Body::from_bytes(self.body.clone()));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers.clone();
        if let Some(reason) = &self.reason {
            response.extensions_mut().insert(reason.clone());
        }
        response
    }
}

/// Remembered refusals.
pub(super) struct Refusals {
    ttl: Duration,
    kept: Mutex<HashMap<u64, Kept>>,
}

impl Refusals {
    pub(super) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            kept: Mutex::new(HashMap::new()),
        }
    }

    /// The remembered answer to the request with `key`, while it lasts.
    pub(super) fn replay(&self, key: u64) -> Option<http::Response<Body>> {
        let now = Instant::now();
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match kept.get(&key) {
            Some(k) if k.until > now => Some(k.response()),
            Some(_) => {
                kept.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Reads `response` (a refusal), remembers it under `key`, and returns it.
    ///
    /// # Errors
    /// A body over [`MAX_BODY`], not read within [`READ_TIMEOUT`], or failing to read.
    pub(super) async fn remember(
        &self,
        key: u64,
        response: http::Response<Body>,
    ) -> Result<http::Response<Body>, BoxError> {
        if self.ttl.is_zero() {
            return Ok(response);
        }
        let (parts, body) = response.into_parts();
        let limited = http_body_util::Limited::new(body, MAX_BODY);
        let body = match tokio::time::timeout(READ_TIMEOUT, limited.collect()).await {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(_)) => {
                return Err(
                    "the upstream's error answer was larger than 8 KiB or could not be read".into(),
                );
            }
            Err(_) => return Err("the upstream's error answer was not read within 5 s".into()),
        };
        let entry = Kept {
            until: Instant::now() + self.ttl,
            status: parts.status,
            headers: parts.headers,
            reason: parts.extensions.get::<ReasonPhrase>().cloned(),
            body,
        };
        let response = entry.response();
        let now = Instant::now();
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if kept.len() >= MAX_ENTRIES {
            kept.retain(|_, k| k.until > now);
        }
        if kept.len() < MAX_ENTRIES {
            kept.insert(key, entry);
        }
        Ok(response)
    }
}
