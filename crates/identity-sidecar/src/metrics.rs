//! Counters and a latency histogram, rendered in the Prometheus text format (version 0.0.4).
//!
//! | metric | kind | meaning |
//! |---|---|---|
//! | `identity_sidecar_requests_total{code}` | counter | answers, by HTTP status |
//! | `identity_sidecar_cache_hits_total` | counter | tokens served from the cache (backends that can tell) |
//! | `identity_sidecar_cache_misses_total` | counter | tokens this request fetched |
//! | `identity_sidecar_upstream_requests_total` | counter | requests sent to the upstream |
//! | `identity_sidecar_upstream_throttled_total` | counter | upstream answers with status 429 |
//! | `identity_sidecar_throttle_replays_total` | counter | 429s answered from the throttle cache (to a caller, or to the credential's retry) instead of sent upstream |
//! | `identity_sidecar_refusal_replays_total` | counter | upstream 400s and 403s answered from the refusal cache instead of sent upstream |
//! | `identity_sidecar_upstream_queue_full_total` | counter | upstream requests refused because the queue was full |
//! | `identity_sidecar_busy_total` | counter | callers refused with 503 because too many were waiting |
//! | `identity_sidecar_request_duration_seconds` | histogram | time to answer a token request |

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Histogram bucket bounds, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0];

/// The sidecar's counters. Cheap to update from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    by_status: Mutex<BTreeMap<u16, u64>>,
    /// Tokens served from the cache.
    pub cache_hits: AtomicU64,
    /// Tokens fetched by the request that asked.
    pub cache_misses: AtomicU64,
    /// Requests sent upstream.
    pub upstream_requests: AtomicU64,
    /// Upstream answers with status 429.
    pub upstream_throttled: AtomicU64,
    /// 429s replayed from the throttle cache.
    pub throttle_replays: AtomicU64,
    /// Upstream 400s and 403s replayed from the refusal cache.
    pub refusal_replays: AtomicU64,
    /// Upstream requests refused because the queue was full.
    pub upstream_queue_full: AtomicU64,
    /// Callers refused because too many were waiting.
    pub busy: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
}

impl Metrics {
    /// Counts one answer with `status`.
    pub fn answered(&self, status: u16) {
        let mut map = self
            .by_status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry(status).or_default() += 1;
    }

    /// Records the time one token request took.
    pub fn observe_latency(&self, took: Duration) {
        let secs = took.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Answers with `status` so far.
    pub fn answers(&self, status: u16) -> u64 {
        self.by_status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&status)
            .copied()
            .unwrap_or(0)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.push_str("# HELP identity_sidecar_requests_total Answers, by HTTP status.\n");
        out.push_str("# TYPE identity_sidecar_requests_total counter\n");
        let statuses: Vec<(u16, u64)> = self
            .by_status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        for (code, n) in statuses {
            let _ = writeln!(
                out,
                "identity_sidecar_requests_total{{code=\"{code}\"}} {n}"
            );
        }
        for (name, help, value) in [
            (
                "cache_hits_total",
                "Tokens served from the cache.",
                &self.cache_hits,
            ),
            (
                "cache_misses_total",
                "Tokens fetched by the request that asked.",
                &self.cache_misses,
            ),
            (
                "upstream_requests_total",
                "Requests sent to the upstream token service.",
                &self.upstream_requests,
            ),
            (
                "upstream_throttled_total",
                "Upstream answers with status 429.",
                &self.upstream_throttled,
            ),
            (
                "throttle_replays_total",
                "429 answers replayed from the throttle cache instead of sent upstream.",
                &self.throttle_replays,
            ),
            (
                "refusal_replays_total",
                "Upstream 400 and 403 answers replayed from the refusal cache instead of sent upstream.",
                &self.refusal_replays,
            ),
            (
                "upstream_queue_full_total",
                "Upstream requests refused because the queue was full.",
                &self.upstream_queue_full,
            ),
            (
                "busy_total",
                "Callers refused with 503 because too many were waiting.",
                &self.busy,
            ),
        ] {
            let _ = writeln!(out, "# HELP identity_sidecar_{name} {help}");
            let _ = writeln!(out, "# TYPE identity_sidecar_{name} counter");
            let _ = writeln!(out, "identity_sidecar_{name} {}", load(value));
        }
        out.push_str(
            "# HELP identity_sidecar_request_duration_seconds Time to answer a token request.\n",
        );
        out.push_str("# TYPE identity_sidecar_request_duration_seconds histogram\n");
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "identity_sidecar_request_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                load(bucket)
            );
        }
        let count = load(&self.latency_count);
        let _ = writeln!(
            out,
            "identity_sidecar_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        #[allow(
            clippy::cast_precision_loss,
            reason = "a sum of microseconds shown as seconds; precision loss starts after 285 years"
        )]
        let sum = load(&self.latency_sum_micros) as f64 / 1e6;
        let _ = writeln!(out, "identity_sidecar_request_duration_seconds_sum {sum}");
        let _ = writeln!(
            out,
            "identity_sidecar_request_duration_seconds_count {count}"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_lists_every_metric() {
        let m = Metrics::default();
        m.answered(200);
        m.answered(200);
        m.answered(401);
        m.cache_hits.fetch_add(3, Ordering::Relaxed);
        m.observe_latency(Duration::from_millis(3));
        let text = m.render();
        assert!(
            text.contains("identity_sidecar_requests_total{code=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("identity_sidecar_requests_total{code=\"401\"} 1"));
        assert!(text.contains("identity_sidecar_cache_hits_total 3"));
        assert!(text.contains("identity_sidecar_request_duration_seconds_bucket{le=\"0.001\"} 0"));
        assert!(text.contains("identity_sidecar_request_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("identity_sidecar_request_duration_seconds_count 1"));
        assert!(text.contains("identity_sidecar_throttle_replays_total 0"));
        assert_eq!(m.answers(200), 2);
    }
}
