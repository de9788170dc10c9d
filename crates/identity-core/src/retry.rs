//! The retry policy: exponential backoff with optional jitter, `Retry-After`, retryable status
//! sets, per-status backoff factors and a total budget. One implementation for every
//! credential; the managed-identity and Entra schedules of the specification are presets.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime};

use http::HeaderMap;

use crate::Error;
use crate::http::{Pipeline, Request, Response, Target, clone_request};

/// A set of HTTP status codes (100–999).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StatusSet([u64; 16]);

impl StatusSet {
    /// The empty set.
    pub const EMPTY: Self = Self([0; 16]);

    /// The set with `code` added.
    #[must_use]
    pub const fn with(mut self, code: u16) -> Self {
        if code < 1024 {
            self.0[(code / 64) as usize] |= 1 << (code % 64);
        }
        self
    }

    /// The set with every code in `from..=to` added.
    #[must_use]
    pub const fn with_range(mut self, from: u16, to: u16) -> Self {
        let mut code = from;
        while code <= to {
            self = self.with(code);
            code += 1;
        }
        self
    }

    /// True if `code` is in the set.
    pub const fn contains(&self, code: u16) -> bool {
        code < 1024 && self.0[(code / 64) as usize] & (1 << (code % 64)) != 0
    }
}

impl fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries((100..1000).filter(|c| self.contains(*c)))
            .finish()
    }
}

/// Statuses the reference pipeline retries: 408, 429, 500, 502, 503, 504 and 506–998.
pub const DEFAULT_RETRY_STATUSES: StatusSet = StatusSet::EMPTY
    .with(408)
    .with(429)
    .with(500)
    .with(502)
    .with(503)
    .with(504)
    .with_range(506, 998);

/// Statuses retried for IMDS: 404, 408, 410, 429, 500–599 and 506–998.
pub const IMDS_RETRY_STATUSES: StatusSet = StatusSet::EMPTY
    .with(404)
    .with(408)
    .with(410)
    .with(429)
    .with_range(500, 998);

/// The overall deadline per call of [`RetryPolicy::default`]: 60 s.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);

/// The overall deadline per call of [`RetryPolicy::imds`]: 90 s, which the IMDS upgrade
/// schedule (sleeps of 0, 5, 10, 20 and 40 s after 410) fits in.
pub const IMDS_DEADLINE: Duration = Duration::from_secs(90);

/// One failed attempt, as the pipeline reports it to the retry loop.
pub(crate) struct Failure {
    pub(crate) error: Error,
    /// False when sending again cannot help (a body over the cap, the deadline reached).
    pub(crate) retryable: bool,
}

/// How and when failed attempts are repeated.
///
/// The sleep before retry *n* (n = failed attempts so far) is 0 for n = 1 and
/// `factor × 2^(n−1)` after that, capped at `max_backoff`, where `factor` is the status's own
/// factor if one is set (IMDS uses 2.5 s for 410) or the policy's. A `Retry-After`,
/// `retry-after-ms` or `x-ms-retry-after-ms` header replaces the computed sleep, capped at
/// `max_retry_after`. Jitter shortens each computed sleep by a random fraction up to `jitter`.
/// Retrying stops when the status or connection retries are used up, when the next sleep
/// would take the total slept past `budget`, or when it would end past the call's deadline
/// (see [`crate::deadline`]): a pipeline without its own [`Limits::deadline`](crate::http::Limits)
/// uses the policy's [`deadline`](Self::deadline), which the policy's schedule fits in.
///
/// ```
/// use std::time::Duration;
/// use identity_core::retry::RetryPolicy;
/// let imds = RetryPolicy::imds();
/// let schedule: Vec<_> = (1..=5).map(|n| imds.backoff(n, 410)).collect();
/// assert_eq!(schedule, [0, 5, 10, 20, 40].map(Duration::from_secs));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    max_status_retries: u32,
    max_connect_retries: u32,
    factor: Duration,
    status_factors: Vec<(u16, Duration)>,
    max_backoff: Duration,
    statuses: StatusSet,
    retry_after_on_any_error: bool,
    max_retry_after: Duration,
    jitter: f64,
    budget: Duration,
    deadline: Duration,
}

impl Default for RetryPolicy {
    /// The reference pipeline's policy: 3 status retries, 3 connection retries, factor 0.8 s,
    /// at most 120 s per sleep, [`DEFAULT_RETRY_STATUSES`], any error status carrying
    /// `Retry-After` retried, no jitter. Bounded further than the reference: a `Retry-After`
    /// is honoured up to 60 s, the sleeps of one request add up to at most 120 s, and a call
    /// ends after 60 s in all (its [`deadline`](Self::deadline)).
    fn default() -> Self {
        Self {
            max_status_retries: 3,
            max_connect_retries: 3,
            factor: Duration::from_millis(800),
            status_factors: Vec::new(),
            max_backoff: Duration::from_secs(120),
            statuses: DEFAULT_RETRY_STATUSES,
            retry_after_on_any_error: true,
            max_retry_after: Duration::from_secs(60),
            jitter: 0.0,
            budget: Duration::from_secs(120),
            deadline: DEFAULT_DEADLINE,
        }
    }
}

impl RetryPolicy {
    /// The IMDS schedule: 5 status retries (6 attempts), factor 0.8 s (2.5 s for 410, giving
    /// sleeps of 0, 5, 10, 20 and 40 s), at most 60 s per sleep, [`IMDS_RETRY_STATUSES`],
    /// and a 90 s deadline, so the 75 s of sleeps for an upgrading IMDS (410) fit.
    pub fn imds() -> Self {
        Self {
            max_status_retries: 5,
            deadline: IMDS_DEADLINE,
            status_factors: vec![(410, Duration::from_millis(2500))],
            max_backoff: Duration::from_secs(60),
            statuses: IMDS_RETRY_STATUSES,
            ..Self::default()
        }
    }

    /// A policy that never retries.
    pub fn none() -> Self {
        Self {
            max_status_retries: 0,
            max_connect_retries: 0,
            ..Self::default()
        }
    }

    /// Sets how many times a retryable status is retried.
    #[must_use]
    pub fn max_status_retries(mut self, n: u32) -> Self {
        self.max_status_retries = n;
        self
    }

    /// Sets how many times a transport failure is retried.
    #[must_use]
    pub fn max_connect_retries(mut self, n: u32) -> Self {
        self.max_connect_retries = n;
        self
    }

    /// Sets the backoff factor.
    #[must_use]
    pub fn factor(mut self, factor: Duration) -> Self {
        self.factor = factor;
        self
    }

    /// Sets a backoff factor for one status code.
    #[must_use]
    pub fn status_factor(mut self, status: u16, factor: Duration) -> Self {
        self.status_factors.retain(|(s, _)| *s != status);
        self.status_factors.push((status, factor));
        self
    }

    /// Caps a single computed sleep.
    #[must_use]
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = max;
        self
    }

    /// Replaces the retryable statuses.
    #[must_use]
    pub fn statuses(mut self, statuses: StatusSet) -> Self {
        self.statuses = statuses;
        self
    }

    /// Whether any error status carrying `Retry-After` is retried.
    #[must_use]
    pub fn retry_after_on_any_error(mut self, yes: bool) -> Self {
        self.retry_after_on_any_error = yes;
        self
    }

    /// Caps a server-requested wait.
    #[must_use]
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// Sets the jitter: each computed sleep is shortened by a random fraction in `[0, jitter]`
    /// (clamped to 0..=1). Server-requested waits are never shortened.
    #[must_use]
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter.clamp(0.0, 1.0);
        self
    }

    /// Caps the total time slept for one request.
    #[must_use]
    pub fn budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// Sets the overall deadline of one call through a pipeline with this policy, attempts
    /// and sleeps included, used when the pipeline's [`Limits`](crate::http::Limits) set none
    /// (default [`DEFAULT_DEADLINE`], [`IMDS_DEADLINE`] for [`imds`](Self::imds)).
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The policy's overall deadline per call (see [`deadline`](Self::deadline)).
    pub fn call_deadline(&self) -> Duration {
        self.deadline
    }

    /// The retryable statuses.
    pub fn retry_statuses(&self) -> StatusSet {
        self.statuses
    }

    /// The computed sleep (without jitter) before retry `failures` after a response with
    /// `status` (0 for a transport failure).
    pub fn backoff(&self, failures: u32, status: u16) -> Duration {
        if failures <= 1 {
            return Duration::ZERO;
        }
        let factor = self
            .status_factors
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(self.factor, |(_, f)| *f);
        let exp = 2u32.saturating_pow(failures.saturating_sub(1).min(30));
        factor.saturating_mul(exp).min(self.max_backoff)
    }

    /// True if a response with this status and headers should be retried (retries permitting).
    pub fn should_retry(&self, status: u16, headers: &HeaderMap) -> bool {
        self.statuses.contains(status)
            || (self.retry_after_on_any_error
                && status >= 400
                && retry_after_header(headers).is_some())
    }

    /// The wait a response asks for, capped at `max_retry_after`.
    pub fn retry_after(&self, headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
        requested_wait(headers, now).map(|wait| wait.min(self.max_retry_after))
    }

    fn jittered(&self, sleep: Duration) -> Duration {
        if self.jitter <= 0.0 || sleep.is_zero() {
            return sleep;
        }
        sleep.mul_f64(1.0 - self.jitter * random_unit())
    }

    /// Runs `attempt` until it succeeds or this policy says stop, inside the current deadline
    /// scope. `attempt` gets a fresh copy of `request` each time.
    pub(crate) async fn run<F, Fut>(
        &self,
        pipeline: &Pipeline,
        credential: &'static str,
        mut attempt: F,
        request: &Request,
    ) -> Result<Response, Error>
    where
        F: FnMut(Request) -> Fut,
        Fut: Future<Output = Result<Response, Failure>>,
    {
        let target = Target::of(request.uri());
        let mut status_retries = 0u32;
        let mut connect_retries = 0u32;
        let mut failures = 0u32;
        let mut slept = Duration::ZERO;
        loop {
            let result = attempt(clone_request(request)).await;
            failures = failures.saturating_add(1);
            let (sleep, hinted) = match &result {
                Ok(response) => {
                    let status = response.status().as_u16();
                    if status < 400
                        || !self.should_retry(status, response.headers())
                        || status_retries >= self.max_status_retries
                    {
                        return result.map_err(|f| f.error);
                    }
                    status_retries += 1;
                    match self.retry_after(response.headers(), pipeline.clock().now()) {
                        Some(wait) => (wait, true),
                        None => (self.jittered(self.backoff(failures, status)), false),
                    }
                }
                Err(failure) => {
                    if !failure.retryable || connect_retries >= self.max_connect_retries {
                        return result.map_err(|f| f.error);
                    }
                    connect_retries += 1;
                    (self.jittered(self.backoff(failures, 0)), false)
                }
            };
            if slept.saturating_add(sleep) > self.budget {
                tracing::debug!(target: "identity_core::retry", "retry budget exhausted");
                return result.map_err(|f| f.error);
            }
            let (left, deadline) = crate::deadline::owned_by(pipeline.owner())
                .unwrap_or((Duration::MAX, Duration::MAX));
            if sleep >= left {
                tracing::debug!(
                    target: "identity_core::retry",
                    sleep_ms = millis(sleep),
                    left_ms = millis(left),
                    hinted,
                    "the next retry would start past the call's deadline"
                );
                return match result {
                    Ok(response) if hinted => {
                        let status = response.status().as_u16();
                        Err(Error::transport(
                            credential,
                            format!(
                                "{target} answered HTTP {status} and asked to wait {} ms before retrying, but only {} ms of this call's {} ms deadline are left; the call ends now (raise the deadline in the credential's options to wait longer)",
                                millis(sleep),
                                millis(left),
                                millis(deadline),
                            ),
                        )
                        .with_status(status))
                    }
                    other => other.map_err(|f| f.error),
                };
            }
            match &result {
                Ok(r) => tracing::debug!(
                    target: "identity_core::retry",
                    status = r.status().as_u16(),
                    attempt = failures,
                    sleep_ms = millis(sleep),
                    "retrying after an error status"
                ),
                Err(f) => tracing::debug!(
                    target: "identity_core::retry",
                    error = %f.error,
                    attempt = failures,
                    sleep_ms = millis(sleep),
                    "retrying after a transport error"
                ),
            }
            slept = slept.saturating_add(sleep);
            if !sleep.is_zero() {
                pipeline.sleeper().sleep(sleep).await;
                crate::deadline::note_slept(sleep);
            }
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What a response's retry hint asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RetryAfter {
    Delay(Duration),
    At(SystemTime),
}

/// The longest wait a hint is read as: longer hints are saturated here before the policy's
/// `max_retry_after` caps them (about 31 years, far past any deadline).
pub const MAX_RETRY_HINT: Duration = Duration::from_secs(1_000_000_000);

/// The retry hint of a response, checked: `retry-after-ms`, then `x-ms-retry-after-ms` (both
/// milliseconds, integer or decimal), then `Retry-After` (seconds, integer or decimal, or an
/// HTTP-date). Negative, `NaN`, `inf` and unparsable values are ignored (the next header is
/// tried); numbers too large for a [`Duration`] (or an `f64`) are saturated at
/// [`MAX_RETRY_HINT`]. Never panics.
fn retry_after_header(headers: &HeaderMap) -> Option<RetryAfter> {
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(wait) = header_str(headers, name).and_then(|v| hint_duration(v, 0.001)) {
            return Some(RetryAfter::Delay(wait));
        }
    }
    let value = header_str(headers, "retry-after")?;
    if let Some(wait) = hint_duration(value, 1.0) {
        return Some(RetryAfter::Delay(wait));
    }
    if value.parse::<f64>().is_ok() {
        // A number, but negative or not finite: no hint.
        return None;
    }
    crate::time::parse_http_date(value).map(RetryAfter::At)
}

/// A non-negative finite number of `unit`-seconds as a [`Duration`], saturated at
/// [`MAX_RETRY_HINT`]; `None` for anything else.
fn hint_duration(value: &str, unit: f64) -> Option<Duration> {
    let number = value.parse::<f64>().ok()?;
    if number.is_nan() || number < 0.0 {
        return None;
    }
    if number.is_infinite() {
        // A number too large for `f64` is a (very) long wait; the words `inf` and
        // `infinity` are not a hint.
        let numeric = value
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'.' | b'e' | b'E'));
        return numeric.then_some(MAX_RETRY_HINT);
    }
    let seconds = number * unit;
    Some(
        Duration::try_from_secs_f64(seconds)
            .unwrap_or(MAX_RETRY_HINT)
            .min(MAX_RETRY_HINT),
    )
}

/// The wait a response asks for, as [`RetryPolicy::retry_after`] reads it but without the
/// policy's cap: `None` without a usable hint. For property tests and fuzzing.
#[doc(hidden)]
pub fn requested_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    Some(match retry_after_header(headers)? {
        RetryAfter::Delay(d) => d,
        RetryAfter::At(at) => at
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_HINT),
    })
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)?
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A random number in `[0, 1)` from the standard library's randomly keyed hasher, so that
/// jitter needs no RNG dependency.
fn random_unit() -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0x9e37_79b9_7f4a_7c15);
    #[allow(
        clippy::cast_precision_loss,
        reason = "53 random bits are plenty for jitter"
    )]
    let unit = (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64;
    unit
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn default_schedule_matches_the_reference() {
        let p = RetryPolicy::default();
        let s: Vec<_> = (1..=5).map(|n| p.backoff(n, 500)).collect();
        assert_eq!(s, [0, 1600, 3200, 6400, 12800].map(Duration::from_millis));
    }

    #[test]
    fn imds_schedule_switches_factor_per_status() {
        let p = RetryPolicy::imds();
        let normal: Vec<_> = (1..=5).map(|n| p.backoff(n, 500)).collect();
        assert_eq!(
            normal,
            [0, 1600, 3200, 6400, 12800].map(Duration::from_millis)
        );
        let gone: Vec<_> = (1..=5).map(|n| p.backoff(n, 410)).collect();
        assert_eq!(gone, [0, 5, 10, 20, 40].map(Duration::from_secs));
        assert_eq!(p.backoff(30, 410), Duration::from_secs(60));
    }

    #[test]
    fn status_sets() {
        for code in [408, 429, 500, 502, 503, 504, 506, 998] {
            assert!(DEFAULT_RETRY_STATUSES.contains(code), "{code}");
        }
        for code in [200, 400, 401, 403, 404, 410, 501, 505, 999] {
            assert!(!DEFAULT_RETRY_STATUSES.contains(code), "{code}");
        }
        for code in [404, 410, 429, 500, 501, 505, 599] {
            assert!(IMDS_RETRY_STATUSES.contains(code), "{code}");
        }
        assert!(!IMDS_RETRY_STATUSES.contains(400));
    }

    #[test]
    fn retry_after_forms() {
        let p = RetryPolicy::default();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_770);
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(p.retry_after(&h, now), Some(Duration::from_secs(3)));
        h.insert(
            "retry-after",
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(p.retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert("retry-after", HeaderValue::from_static("100000"));
        assert_eq!(p.retry_after(&h, now), Some(Duration::from_secs(60)));
        h.insert("x-ms-retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(p.retry_after(&h, now), Some(Duration::from_millis(250)));
        assert!(p.should_retry(400, &h));
        assert!(!p.should_retry(400, &HeaderMap::new()));
        assert!(
            !p.clone()
                .retry_after_on_any_error(false)
                .should_retry(400, &h)
        );
        let mut bad = HeaderMap::new();
        bad.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(p.retry_after(&bad, now), None);
    }

    #[test]
    fn absurd_hints_are_saturated_or_ignored_never_a_panic() {
        let p = RetryPolicy::default();
        let now = SystemTime::UNIX_EPOCH;
        let hint = |name: &'static str, value: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static(value));
            (requested_wait(&h, now), p.retry_after(&h, now))
        };
        for name in ["retry-after-ms", "x-ms-retry-after-ms", "retry-after"] {
            for value in [
                "1e30",
                "1e308",
                "1e400",
                "179769313486231570000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
                "18446744073709551616",
            ] {
                assert_eq!(
                    hint(name, value),
                    (Some(MAX_RETRY_HINT), Some(Duration::from_secs(60))),
                    "{name}: {value}"
                );
            }
            for value in [
                "-1", "-0.5", "NaN", "inf", "-inf", "infinity", "-1e400", "0x10", "",
            ] {
                assert_eq!(hint(name, value), (None, None), "{name}: {value}");
            }
        }
        assert_eq!(
            hint("retry-after-ms", "1500.5").0,
            Some(Duration::from_micros(1_500_500))
        );
        assert_eq!(hint("retry-after", "0").0, Some(Duration::ZERO));
        // An unusable first header falls through to the next.
        let mut h = HeaderMap::new();
        h.insert("retry-after-ms", HeaderValue::from_static("NaN"));
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(requested_wait(&h, now), Some(Duration::from_secs(2)));
    }

    #[test]
    fn jitter_only_shortens() {
        let p = RetryPolicy::default().jitter(0.5);
        for _ in 0..100 {
            let s = p.jittered(Duration::from_secs(10));
            assert!(
                s <= Duration::from_secs(10) && s >= Duration::from_secs(5),
                "{s:?}"
            );
        }
    }
}
