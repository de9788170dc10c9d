//! Retry as a schedule: [`RetryPolicy`] decides, from the attempt that just ended (its number,
//! its [`Outcome`]) and the time waited so far, whether to try again and after how long. It
//! sends nothing, sleeps nowhere and reads no clock: the loop that sends, sleeps and keeps the
//! call's deadline is the [`Pipeline`](crate::http::Pipeline)'s (docs/protocol.md §1.2).
//!
//! The sleep before retry *n* (n = failed attempts so far) is 0 for n = 1 and
//! `factor × 2^(n−1)` after that, capped at the largest sleep; a `Retry-After`,
//! `retry-after-ms` or `x-ms-retry-after-ms` header replaces it. The pipeline does not wait
//! for a hint longer than the largest honoured one, nor for any wait that would end past the
//! call's deadline: it returns the last answer at once, marked with a
//! [`RetryCut`](crate::http::RetryCut).
//!
//! | parameter (setter) | [`RetryPolicy::default`] |
//! |---|---|
//! | retries after a retryable status ([`max_status_retries`](RetryPolicy::max_status_retries)) | 3 |
//! | retries after a transport failure ([`max_connect_retries`](RetryPolicy::max_connect_retries)) | 3 |
//! | backoff factor ([`factor`](RetryPolicy::factor), per status: [`status_factor`](RetryPolicy::status_factor)) | 0.8 s |
//! | sleeps before retries 1, 2, 3 | 0, 1.6, 3.2 s |
//! | largest computed sleep ([`max_backoff`](RetryPolicy::max_backoff)) | 120 s |
//! | retryable statuses ([`statuses`](RetryPolicy::statuses)) | [`DEFAULT_RETRY_STATUSES`]: 408, 429, 500, 502–504, 506–998 |
//! | any error status with a retry hint retried ([`retry_after_on_any_error`](RetryPolicy::retry_after_on_any_error)) | yes |
//! | largest honoured hint ([`max_retry_after`](RetryPolicy::max_retry_after)) | 60 s |
//! | jitter ([`jitter`](RetryPolicy::jitter)) | none |
//! | total sleep per request ([`budget`](RetryPolicy::budget)) | 120 s |
//! | deadline per call ([`deadline`](RetryPolicy::deadline)) | [`DEFAULT_DEADLINE`]: 60 s |
//!
//! A host with a schedule of its own builds it from these setters, next to the host's code:
//! identity-msi's `imds::retry_policy()` (5 status retries on 404, 408, 410, 429 and 500–998,
//! sleeps of 0, 5, 10, 20 and 40 s after a 410, at most 60 s per sleep, a 90 s deadline) is
//! one.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime};

use http::HeaderMap;

mod hint;
mod status;

pub use hint::{MAX_RETRY_HINT, requested_wait};
pub use status::{DEFAULT_RETRY_STATUSES, StatusSet};

/// How one attempt of a request ended, as far as the schedule cares.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Outcome<'a> {
    /// The service answered (any status, success included).
    Response {
        /// The HTTP status code.
        status: u16,
        /// The response headers, where the retry hints are read.
        headers: &'a HeaderMap,
        /// When the answer arrived, against which an HTTP-date `Retry-After` is read.
        received: SystemTime,
    },
    /// No answer: connecting, sending or reading failed, or the attempt timed out.
    Transport,
}

/// Where a request stands in its schedule: the attempt that just ended, and how many earlier
/// attempts were retried after a status and after a transport failure (each kind has its own
/// allowance). Start at [`Attempt::FIRST`] and step with [`next`](Self::next).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attempt {
    status_retries: u32,
    transport_retries: u32,
}

impl Attempt {
    /// The first attempt of a request.
    pub const FIRST: Self = Self {
        status_retries: 0,
        transport_retries: 0,
    };

    /// The attempt's number, from 1.
    pub fn number(self) -> u32 {
        self.status_retries
            .saturating_add(self.transport_retries)
            .saturating_add(1)
    }

    /// How many earlier attempts were retried after a status.
    pub fn status_retries(self) -> u32 {
        self.status_retries
    }

    /// How many earlier attempts were retried after a transport failure.
    pub fn transport_retries(self) -> u32 {
        self.transport_retries
    }

    /// The attempt after this one, which ended with `outcome` and was retried.
    #[must_use]
    pub fn next(self, outcome: &Outcome<'_>) -> Self {
        match outcome {
            Outcome::Response { .. } => Self {
                status_retries: self.status_retries.saturating_add(1),
                ..self
            },
            Outcome::Transport => Self {
                transport_retries: self.transport_retries.saturating_add(1),
                ..self
            },
        }
    }
}

/// The overall deadline per call of [`RetryPolicy::default`]: 60 s.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);

/// How and when failed attempts are repeated: a schedule, read with
/// [`next_delay`](Self::next_delay). See the [module docs](self) for the rules and a table of
/// the default and IMDS schedules.
///
/// Jitter shortens each computed sleep by a random fraction up to `jitter`. Retrying stops when
/// the status or transport retries are used up or when the next sleep would take the total
/// slept past `budget`; the pipeline also stops when the sleep would end past the call's
/// deadline (see [`crate::deadline`]): a pipeline without its own
/// [`Limits::deadline`](crate::http::Limits) uses the policy's [`deadline`](Self::deadline),
/// which the policy's schedule fits in.
///
/// ```
/// use std::time::Duration;
/// use identity_core::retry::{RetryPolicy, StatusSet};
/// // An upgrading host's schedule: 410 retried 5 times, 2.5 s factor.
/// let upgrade = RetryPolicy::default()
///     .max_status_retries(5)
///     .status_factor(410, Duration::from_millis(2500))
///     .statuses(StatusSet::EMPTY.with(410));
/// let schedule: Vec<_> = (1..=5).map(|n| upgrade.backoff(n, 410)).collect();
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

    /// Sets the longest server-requested wait honoured (default 60 s). A response asking
    /// for longer is not retried: the pipeline returns it at once (see
    /// [`Pipeline::send`](crate::http::Pipeline::send)). A wait is also honoured only when it
    /// ends before the call's [`deadline`](Self::deadline): with the defaults (60 s each) a
    /// wait shorter than the time left of the 60 s is.
    #[must_use]
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// The longest server-requested wait honoured (see
    /// [`max_retry_after`](Self::max_retry_after)).
    pub fn retry_after_cap(&self) -> Duration {
        self.max_retry_after
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
    /// (default [`DEFAULT_DEADLINE`]).
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
            || (self.retry_after_on_any_error && status >= 400 && hint::has_hint(headers))
    }

    /// The wait a response asks for, capped at `max_retry_after`.
    pub fn retry_after(&self, headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
        requested_wait(headers, now).map(|wait| wait.min(self.max_retry_after))
    }

    /// The schedule: how long to wait before trying again after `attempt` ended with
    /// `outcome`, or `None` to stop (a success, a status not retried, the retries of that
    /// kind used up, or the wait would take the total past [`budget`](Self::budget)).
    /// `elapsed` is the time this request has waited between its attempts so far (the sum of
    /// the delays this schedule gave before). Reads nothing but its arguments (and, with
    /// [`jitter`](Self::jitter), a random number).
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use identity_core::retry::{Attempt, Outcome, RetryPolicy, StatusSet};
    /// let headers = http::HeaderMap::new();
    /// let gone = Outcome::Response { status: 410, headers: &headers, received: SystemTime::UNIX_EPOCH };
    /// let imds = RetryPolicy::default()
    ///     .max_status_retries(5)
    ///     .status_factor(410, Duration::from_millis(2500))
    ///     .statuses(StatusSet::EMPTY.with(410));
    /// let (mut attempt, mut waited, mut sleeps) = (Attempt::FIRST, Duration::ZERO, Vec::new());
    /// while let Some(sleep) = imds.next_delay(attempt, &gone, waited) {
    ///     sleeps.push(sleep);
    ///     waited += sleep;
    ///     attempt = attempt.next(&gone);
    /// }
    /// assert_eq!(sleeps, [0, 5, 10, 20, 40].map(Duration::from_secs));
    /// ```
    pub fn next_delay(
        &self,
        attempt: Attempt,
        outcome: &Outcome<'_>,
        elapsed: Duration,
    ) -> Option<Duration> {
        let sleep = match *outcome {
            Outcome::Response {
                status,
                headers,
                received,
            } => {
                if status < 400
                    || !self.should_retry(status, headers)
                    || attempt.status_retries >= self.max_status_retries
                {
                    return None;
                }
                match self.retry_after(headers, received) {
                    Some(wait) => wait,
                    None => self.jittered(self.backoff(attempt.number(), status)),
                }
            }
            Outcome::Transport => {
                if attempt.transport_retries >= self.max_connect_retries {
                    return None;
                }
                self.jittered(self.backoff(attempt.number(), 0))
            }
        };
        if elapsed.saturating_add(sleep) > self.budget {
            tracing::debug!(target: "identity_core::retry", "retry budget exhausted");
            return None;
        }
        Some(sleep)
    }

    fn jittered(&self, sleep: Duration) -> Duration {
        if self.jitter <= 0.0 || sleep.is_zero() {
            return sleep;
        }
        sleep.mul_f64(1.0 - self.jitter * random_unit())
    }
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
    fn a_status_factor_switches_the_factor_for_that_status() {
        let p = RetryPolicy::default()
            .max_status_retries(5)
            .status_factor(410, Duration::from_millis(2500))
            .max_backoff(Duration::from_secs(60));
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
    fn next_delay_counts_each_kind_of_failure_against_its_own_allowance() {
        let p = RetryPolicy::default();
        let headers = HeaderMap::new();
        let busy = Outcome::Response {
            status: 503,
            headers: &headers,
            received: SystemTime::UNIX_EPOCH,
        };
        let ok = Outcome::Response {
            status: 200,
            headers: &headers,
            received: SystemTime::UNIX_EPOCH,
        };
        let mut attempt = Attempt::FIRST;
        let mut sleeps = Vec::new();
        // Three transport failures, then three 503s: six retries, each kind within its three.
        for outcome in [Outcome::Transport; 3].into_iter().chain([busy; 3]) {
            sleeps.push(p.next_delay(attempt, &outcome, Duration::ZERO).unwrap());
            attempt = attempt.next(&outcome);
        }
        assert_eq!(attempt.number(), 7);
        assert_eq!(
            (attempt.status_retries(), attempt.transport_retries()),
            (3, 3)
        );
        assert_eq!(p.next_delay(attempt, &busy, Duration::ZERO), None);
        assert_eq!(
            p.next_delay(attempt, &Outcome::Transport, Duration::ZERO),
            None
        );
        assert_eq!(p.next_delay(Attempt::FIRST, &ok, Duration::ZERO), None);
        assert_eq!(sleeps[1], Duration::from_millis(1600));
        assert_eq!(sleeps[5], Duration::from_millis(25_600));
        // The budget: a wait that would take the total past it stops the schedule.
        let second = Attempt::FIRST.next(&busy);
        assert_eq!(p.next_delay(second, &busy, Duration::from_secs(119)), None);
        assert_eq!(
            p.next_delay(second, &busy, Duration::from_secs(118)),
            Some(Duration::from_millis(1600))
        );
        assert_eq!(
            RetryPolicy::none().next_delay(Attempt::FIRST, &busy, Duration::ZERO),
            None
        );
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
