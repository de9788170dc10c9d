//! Upstream protection: an [`HttpClient`] that sits under the credential's pipeline, so that
//! every request the one shared cache sends upstream (and only those: cache hits never reach
//! it) obeys the host's limits.
//!
//! * **In flight:** at most [`GuardConfig::max_in_flight`] requests at once (default 5, IMDS's
//!   per-host limit).
//! * **Rate:** at most [`GuardConfig::per_second`] requests started in any sliding
//!   [`GuardConfig::window`] (default 20 per 1.05 s: IMDS allows 20 per second, and the extra
//!   50 ms absorbs the difference between when a request leaves and when it is counted).
//! * **Queue:** at most [`GuardConfig::max_queue`] requests waiting for the two limits above
//!   (default 256); one more fails at once with a transport error, which the server answers
//!   with 503.
//! * **Throttle cache:** an upstream 429 with `Retry-After` (or `retry-after-ms`,
//!   `x-ms-retry-after-ms`; [`GuardConfig::default_retry_after`] when absent; capped at
//!   [`GuardConfig::max_retry_after`]) marks that exact request (method, URL, body) throttled
//!   until the time passes. Meanwhile the same request is answered with a replayed 429 and the
//!   remaining `Retry-After`, and is not sent, as MSAL's throttle cache does. The cache holds
//!   hashes, never request contents, and at most 4,096 entries.
//! * **Refusal cache:** an upstream 400 or 403 (a permanent refusal: IMDS's "Identity not
//!   found" for an identity not assigned to the host, no identity at all, a proxy's refusal)
//!   is remembered for [`GuardConfig::refusal_ttl`] (default 30 s), keyed on the exact request
//!   (method, URL, headers, body; hashed). Meanwhile the same request is answered with the
//!   remembered answer (status, headers, body of at most 8 KiB) and is not sent, so a
//!   misconfigured caller cannot make the sidecar hammer the upstream. At most 4,096 entries
//!   (see [`refusals`]).
//!
//! An in-flight slot is held from sending until the response head arrives (token responses
//! are a few kilobytes that come with it); the credential's pipeline then reads the body
//! under its own cap and timeout.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{Hash as _, Hasher as _};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use identity_core::http::{Body, BoxError, HttpClient, Request, SendOptions};
use identity_core::retry::RetryPolicy;
use identity_core::{BoxFuture, Clock};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::metrics::Metrics;

pub mod refusals;

use refusals::Refusals;

const MAX_THROTTLE_ENTRIES: usize = 4096;

/// The limits an [`UpstreamGuard`] enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GuardConfig {
    /// Most requests in flight at once (default 5).
    pub max_in_flight: usize,
    /// Most requests started per [`window`](Self::window) (default 20).
    pub per_second: usize,
    /// The sliding window of the rate limit (default 1.05 s).
    pub window: Duration,
    /// Most requests waiting for a slot (default 256).
    pub max_queue: usize,
    /// How long a 429 without a retry hint throttles its request (default 5 s).
    pub default_retry_after: Duration,
    /// The longest throttle a retry hint may set (default 300 s).
    pub max_retry_after: Duration,
    /// How long an upstream 400 or 403 is answered from memory instead of sent again
    /// (default 30 s; zero turns the refusal cache off).
    pub refusal_ttl: Duration,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 5,
            per_second: 20,
            window: Duration::from_millis(1050),
            max_queue: 256,
            default_retry_after: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(300),
            refusal_ttl: Duration::from_secs(30),
        }
    }
}

impl GuardConfig {
    /// Sets the in-flight limit (at least 1).
    #[must_use]
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Sets the rate limit per window (at least 1).
    #[must_use]
    pub fn per_second(mut self, n: usize) -> Self {
        self.per_second = n.max(1);
        self
    }

    /// Sets the queue bound.
    #[must_use]
    pub fn max_queue(mut self, n: usize) -> Self {
        self.max_queue = n;
        self
    }

    /// Sets how long an upstream 400 or 403 is replayed (zero: never).
    #[must_use]
    pub fn refusal_ttl(mut self, ttl: Duration) -> Self {
        self.refusal_ttl = ttl;
        self
    }
}

/// The message of the error returned when the queue is full.
pub const QUEUE_FULL: &str = "the sidecar's upstream queue is full";

/// An [`HttpClient`] that enforces [`GuardConfig`] in front of `inner`.
pub struct UpstreamGuard {
    inner: Arc<dyn HttpClient>,
    config: GuardConfig,
    in_flight: Semaphore,
    sent: tokio::sync::Mutex<VecDeque<Instant>>,
    waiting: AtomicUsize,
    throttled: Mutex<HashMap<u64, (Instant, Option<String>)>>,
    refusals: Refusals,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
}

impl fmt::Debug for UpstreamGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamGuard")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl UpstreamGuard {
    /// A guard over `inner`, counting into `metrics`. `clock` dates HTTP-date retry hints.
    pub fn new(
        inner: Arc<dyn HttpClient>,
        config: GuardConfig,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            inner,
            config,
            in_flight: Semaphore::new(config.max_in_flight.max(1)),
            sent: tokio::sync::Mutex::new(VecDeque::new()),
            waiting: AtomicUsize::new(0),
            throttled: Mutex::new(HashMap::new()),
            refusals: Refusals::new(config.refusal_ttl),
            clock,
            metrics,
        }
    }

    /// The limits.
    pub fn config(&self) -> GuardConfig {
        self.config
    }

    /// How long the longest current throttle still lasts, if any request is throttled.
    pub fn throttled_for(&self) -> Option<Duration> {
        let now = Instant::now();
        let map = self
            .throttled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.values()
            .filter(|(until, _)| *until > now)
            .map(|(until, _)| *until - now)
            .max()
    }

    /// How long the longest current throttle of a request whose `resource` query parameter
    /// is `resource` (the managed-identity sources send one) still lasts.
    pub fn throttled_for_resource(&self, resource: &str) -> Option<Duration> {
        let now = Instant::now();
        let map = self
            .throttled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.values()
            .filter(|(until, label)| *until > now && label.as_deref() == Some(resource))
            .map(|(until, _)| *until - now)
            .max()
    }

    #[cfg(test)]
    fn metrics_for_tests(&self) -> &Metrics {
        &self.metrics
    }

    fn throttle_key(request: &Request) -> u64 {
        let mut h = DefaultHasher::new();
        request.method().as_str().hash(&mut h);
        request.uri().to_string().hash(&mut h);
        request.body().hash(&mut h);
        h.finish()
    }

    fn throttled_until(&self, key: u64) -> Option<Instant> {
        let now = Instant::now();
        let mut map = self
            .throttled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get(&key) {
            Some((until, _)) if *until > now => Some(*until),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    fn throttle(&self, key: u64, label: Option<String>, for_: Duration) {
        let now = Instant::now();
        let mut map = self
            .throttled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_THROTTLE_ENTRIES {
            map.retain(|_, (until, _)| *until > now);
            if map.len() >= MAX_THROTTLE_ENTRIES {
                return;
            }
        }
        map.insert(key, (now + for_, label));
    }

    /// Waits until a request may start within the rate limit, and records it.
    async fn wait_for_rate(&self) {
        let mut sent = self.sent.lock().await;
        // Each pass either records the request or sleeps until the oldest one leaves the
        // window, after which the next pass records it: at most two passes.
        for _ in 0..4 {
            let now = Instant::now();
            while sent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= self.config.window)
            {
                sent.pop_front();
            }
            if sent.len() < self.config.per_second.max(1) {
                sent.push_back(now);
                return;
            }
            if let Some(oldest) = sent.front().copied() {
                tokio::time::sleep_until(oldest + self.config.window).await;
            }
        }
        sent.push_back(Instant::now());
    }

    async fn send(
        &self,
        request: Request,
        options: SendOptions,
    ) -> Result<http::Response<Body>, BoxError> {
        let key = Self::throttle_key(&request);
        let label = request.uri().query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "resource")
                .map(|(_, v)| v.into_owned())
        });
        if let Some(until) = self.throttled_until(key) {
            self.metrics
                .throttle_replays
                .fetch_add(1, Ordering::Relaxed);
            return Ok(replayed_429(until - Instant::now()));
        }
        let refusal_key = refusals::key(&request);
        if let Some(replay) = self.refusals.replay(refusal_key) {
            self.metrics.refusal_replays.fetch_add(1, Ordering::Relaxed);
            return Ok(replay);
        }
        let waiting = Waiting::enter(&self.waiting);
        if waiting.count > self.config.max_queue {
            self.metrics
                .upstream_queue_full
                .fetch_add(1, Ordering::Relaxed);
            return Err(QUEUE_FULL.into());
        }
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| BoxError::from("the sidecar is shutting down"))?;
        self.wait_for_rate().await;
        drop(waiting);
        self.metrics
            .upstream_requests
            .fetch_add(1, Ordering::Relaxed);
        let response = self.inner.execute(request, options).await?;
        if response.status() == http::StatusCode::TOO_MANY_REQUESTS {
            self.metrics
                .upstream_throttled
                .fetch_add(1, Ordering::Relaxed);
            let hint = RetryPolicy::default()
                .max_retry_after(self.config.max_retry_after)
                .retry_after(response.headers(), self.clock.now())
                .unwrap_or(self.config.default_retry_after)
                .min(self.config.max_retry_after);
            self.throttle(key, label, hint);
        }
        if refusals::is_refusal(response.status()) {
            return self.refusals.remember(refusal_key, response).await;
        }
        Ok(response)
    }
}

impl HttpClient for UpstreamGuard {
    fn execute(
        &self,
        request: Request,
        options: SendOptions,
    ) -> BoxFuture<'_, Result<http::Response<Body>, BoxError>> {
        Box::pin(self.send(request, options))
    }
}

/// Counts a request as waiting while it exists.
struct Waiting<'a> {
    counter: &'a AtomicUsize,
    count: usize,
}

impl<'a> Waiting<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        let count = counter.fetch_add(1, Ordering::AcqRel) + 1;
        Self { counter, count }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
    }
}

fn replayed_429(remaining: Duration) -> http::Response<Body> {
    let secs = remaining
        .as_secs()
        .saturating_add(u64::from(remaining.subsec_nanos() > 0))
        .max(1);
    let body = Bytes::from_static(
        br#"{"error":"throttled","error_description":"the upstream asked to wait; replayed by identity-sidecar"}"#,
    );
    let mut response = http::Response::new(Body::from_bytes(body));
    *response.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// Answers 429 with `Retry-After: 30` for paths containing "throttle", 200 otherwise;
    /// counts calls and the most concurrent calls.
    #[derive(Debug, Default)]
    struct Upstream {
        calls: AtomicU64,
        now: AtomicUsize,
        peak: AtomicUsize,
    }

    impl HttpClient for Upstream {
        fn execute(
            &self,
            request: Request,
            _: SendOptions,
        ) -> BoxFuture<'_, Result<http::Response<Body>, BoxError>> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
                self.peak.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.now.fetch_sub(1, Ordering::SeqCst);
                if request.uri().path().contains("refuse") {
                    let mut response = http::Response::new(Body::from_bytes(
                        r#"{"error":"invalid_request","error_description":"Identity not found"}"#,
                    ));
                    *response.status_mut() = http::StatusCode::BAD_REQUEST;
                    response
                        .headers_mut()
                        .insert("server", http::HeaderValue::from_static("IMDS/1"));
                    return Ok(response);
                }
                let mut response = http::Response::new(Body::from_bytes("{}"));
                if request.uri().path().contains("throttle") {
                    *response.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
                    response
                        .headers_mut()
                        .insert("retry-after", http::HeaderValue::from_static("30"));
                }
                Ok(response)
            })
        }
    }

    fn request(path: &str) -> Request {
        http::Request::builder()
            .uri(format!("http://127.0.0.1:1{path}"))
            .body(Bytes::new())
            .unwrap()
    }

    fn guard(upstream: Arc<Upstream>, config: GuardConfig) -> Arc<UpstreamGuard> {
        Arc::new(UpstreamGuard::new(
            upstream,
            config,
            identity_core::system_clock(),
            Arc::default(),
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_n_in_flight_and_m_per_window() {
        let upstream = Arc::new(Upstream::default());
        let g = guard(upstream.clone(), GuardConfig::default());
        let started = Instant::now();
        let tasks: Vec<_> = (0..45)
            .map(|i| {
                let g = g.clone();
                tokio::spawn(async move {
                    g.execute(request(&format!("/t{i}")), SendOptions::default())
                        .await
                        .unwrap();
                    Instant::now()
                })
            })
            .collect();
        let mut done = Vec::new();
        for t in tasks {
            done.push(t.await.unwrap());
        }
        assert_eq!(upstream.calls.load(Ordering::SeqCst), 45);
        assert!(upstream.peak.load(Ordering::SeqCst) <= 5);
        // 45 requests at 20 per 1.05 s need at least two full windows.
        assert!(
            started.elapsed() >= Duration::from_millis(2100),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            g.metrics_for_tests()
                .upstream_requests
                .load(Ordering::Relaxed),
            45
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_is_replayed_until_retry_after_passes() {
        let upstream = Arc::new(Upstream::default());
        let g = guard(upstream.clone(), GuardConfig::default());
        let first = g
            .execute(
                request("/throttle?resource=https%3A%2F%2Fr"),
                SendOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(first.status(), 429);
        for _ in 0..10 {
            let again = g
                .execute(
                    request("/throttle?resource=https%3A%2F%2Fr"),
                    SendOptions::default(),
                )
                .await
                .unwrap();
            assert_eq!(again.status(), 429);
            let secs: u64 = again.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=30).contains(&secs));
        }
        assert_eq!(upstream.calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            g.metrics_for_tests()
                .throttle_replays
                .load(Ordering::Relaxed),
            10
        );
        assert!(g.throttled_for().is_some());
        assert!(g.throttled_for_resource("https://r").is_some());
        assert!(g.throttled_for_resource("https://other").is_none());
        // Another request is not throttled.
        let other = g
            .execute(request("/other"), SendOptions::default())
            .await
            .unwrap();
        assert_eq!(other.status(), 200);
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(g.throttled_for().is_none());
        let _ = g
            .execute(
                request("/throttle?resource=https%3A%2F%2Fr"),
                SendOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(upstream.calls.load(Ordering::SeqCst), 3);
    }

    async fn body_of(response: http::Response<Body>) -> Bytes {
        use http_body_util::BodyExt as _;
        response.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_is_replayed_whole_until_its_time_passes() {
        let upstream = Arc::new(Upstream::default());
        let g = guard(upstream.clone(), GuardConfig::default());
        let with_metadata = || {
            let mut r = request("/refuse?resource=https%3A%2F%2Fr");
            r.headers_mut()
                .insert("metadata", http::HeaderValue::from_static("true"));
            r
        };
        let first = g
            .execute(with_metadata(), SendOptions::default())
            .await
            .unwrap();
        assert_eq!(first.status(), 400);
        let first_body = body_of(first).await;
        for _ in 0..5 {
            let again = g
                .execute(with_metadata(), SendOptions::default())
                .await
                .unwrap();
            assert_eq!(again.status(), 400);
            assert_eq!(again.headers()["server"], "IMDS/1");
            assert_eq!(body_of(again).await, first_body);
        }
        assert_eq!(upstream.calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            g.metrics_for_tests()
                .refusal_replays
                .load(Ordering::Relaxed),
            5
        );
        // The same URL with other headers (IMDS's probe has no Metadata) is another request.
        let probe = g
            .execute(
                request("/refuse?resource=https%3A%2F%2Fr"),
                SendOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(probe.status(), 400);
        assert_eq!(upstream.calls.load(Ordering::SeqCst), 2);
        tokio::time::advance(Duration::from_secs(31)).await;
        let _ = g
            .execute(with_metadata(), SendOptions::default())
            .await
            .unwrap();
        assert_eq!(upstream.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_refusal_ttl_sends_every_request() {
        let upstream = Arc::new(Upstream::default());
        let g = guard(
            upstream.clone(),
            GuardConfig::default().refusal_ttl(Duration::ZERO),
        );
        for _ in 0..3 {
            let r = g
                .execute(request("/refuse"), SendOptions::default())
                .await
                .unwrap();
            assert_eq!(r.status(), 400);
        }
        assert_eq!(upstream.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_fails_at_once() {
        let upstream = Arc::new(Upstream::default());
        let g = guard(
            upstream.clone(),
            GuardConfig::default()
                .max_in_flight(1)
                .per_second(1)
                .max_queue(2),
        );
        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let g = g.clone();
                tokio::spawn(async move {
                    g.execute(request(&format!("/q{i}")), SendOptions::default())
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        let mut refused = 0;
        for t in tasks {
            if let Err(e) = t.await.unwrap() {
                assert_eq!(e, QUEUE_FULL);
                refused += 1;
            }
        }
        assert!(refused >= 3, "{refused}");
        assert_eq!(
            g.metrics_for_tests()
                .upstream_queue_full
                .load(Ordering::Relaxed),
            refused
        );
    }
}
