//! Answering one request: the token endpoint (method, body, secret, queue bound, throttle
//! replay, deadline), health and metrics; backend errors become answers in `failure`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use identity_core::Secret;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::{ServerLimits, failure};
use crate::backend::Backend;
use crate::guard::UpstreamGuard;
use crate::metrics::Metrics;
use crate::protocol::{self, HEALTH_PATH, METRICS_PATH, Reply, SECRET_HEADER};

/// What every connection of one server shares.
pub(super) struct State {
    pub(super) path: String,
    pub(super) secret: Secret,
    pub(super) backend: Backend,
    pub(super) guards: Vec<Arc<UpstreamGuard>>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) pending: Semaphore,
    pub(super) limits: ServerLimits,
}

pub(super) async fn handle(
    state: &State,
    request: &http::Request<Incoming>,
) -> http::Response<Full<Bytes>> {
    let path = request.uri().path();
    let (reply, close) = if path == state.path {
        let started = Instant::now();
        let reply = token_route(state, request).await;
        state.metrics.observe_latency(started.elapsed());
        let close = reply.status == 413;
        (reply, close)
    } else if path == HEALTH_PATH || path == METRICS_PATH {
        if request.method() == http::Method::GET {
            if path == HEALTH_PATH {
                (
                    Reply::ok(
                        r#"{"status":"ok"}"#.to_owned(),
                        "application/json; charset=utf-8",
                    ),
                    false,
                )
            } else {
                (
                    Reply::ok(
                        state.metrics.render(),
                        "text/plain; version=0.0.4; charset=utf-8",
                    ),
                    false,
                )
            }
        } else {
            (Reply::error(405, "this endpoint accepts GET only"), false)
        }
    } else {
        (
            Reply::error(404, "no identity endpoint at this path"),
            false,
        )
    };
    state.metrics.answered(reply.status);
    tracing::debug!(status = reply.status, path, "identity-sidecar answered");
    let mut response = http::Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() =
        http::StatusCode::from_u16(reply.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(reply.content_type),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    if let Some(secs) = reply.retry_after {
        headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
    }
    if close {
        headers.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    response
}

async fn token_route(state: &State, request: &http::Request<Incoming>) -> Reply {
    if request.method() != http::Method::GET {
        return Reply::error(405, "the identity endpoint accepts GET only");
    }
    let headers = request.headers();
    let has_body = headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if has_body {
        return Reply::error(413, "a token request carries no body");
    }
    let mut sent = headers.get_all(SECRET_HEADER).iter();
    match (sent.next(), sent.next()) {
        (None, _) => return Reply::error(401, "the X-IDENTITY-HEADER header is missing"),
        (Some(_), Some(_)) => {
            return Reply::error(401, "the X-IDENTITY-HEADER header is repeated");
        }
        (Some(value), None) => {
            // `Secret`'s equality takes the same time wherever the values differ.
            let given = Secret::new(String::from_utf8_lossy(value.as_bytes()).into_owned());
            if given != state.secret {
                return Reply::error(
                    401,
                    "the X-IDENTITY-HEADER value does not match IDENTITY_HEADER",
                );
            }
        }
    }
    let Ok(_waiting) = state.pending.try_acquire() else {
        state.metrics.busy.fetch_add(1, Ordering::Relaxed);
        return Reply::error(503, "the sidecar is busy; retry shortly")
            .with_retry_after(Duration::from_secs(1));
    };
    let token_request = match protocol::parse_query(request.uri().query().unwrap_or("")) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    // While the backend waits on the upstream, a throttle of this resource (an upstream 429
    // with a retry hint, seen by a guard) is answered at once with 429 and the remaining
    // `Retry-After`: the credential's own retry keeps waiting in the background and fills the
    // cache, so the caller finds the token when it comes back.
    let call = state.backend.token(&token_request);
    tokio::pin!(call);
    let deadline = tokio::time::sleep(state.limits.request_timeout);
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(THROTTLE_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = loop {
        tokio::select! {
            result = &mut call => break result,
            () = &mut deadline => {
                return Reply::error(
                    503,
                    "timed out waiting for the upstream token service; retry shortly",
                )
                .with_retry_after(Duration::from_secs(1));
            }
            _ = tick.tick() => {
                let throttled = state
                    .guards
                    .iter()
                    .filter_map(|g| g.throttled_for_resource(&token_request.resource))
                    .max();
                if let Some(after) = throttled {
                    state.metrics.throttle_replays.fetch_add(1, Ordering::Relaxed);
                    return failure::throttled_reply(after);
                }
            }
        }
    };
    match result {
        Ok(answer) => {
            match answer.from_cache {
                Some(true) => state.metrics.cache_hits.fetch_add(1, Ordering::Relaxed),
                Some(false) => state.metrics.cache_misses.fetch_add(1, Ordering::Relaxed),
                None => 0,
            };
            Reply::token(&answer)
        }
        Err(e) => {
            tracing::warn!(error = %e, resource = %token_request.resource, "identity-sidecar: no token");
            failure::error_reply(&state.guards, &state.secret, &e)
        }
    }
}

/// How often a waiting token request checks for a throttle of its resource.
const THROTTLE_POLL: Duration = Duration::from_millis(25);
