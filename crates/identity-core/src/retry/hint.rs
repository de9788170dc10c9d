//! The retry hints of a response: `retry-after-ms`, `x-ms-retry-after-ms` and `Retry-After`.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

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

/// True if the response carries a usable retry hint.
pub(super) fn has_hint(headers: &HeaderMap) -> bool {
    retry_after_header(headers).is_some()
}
