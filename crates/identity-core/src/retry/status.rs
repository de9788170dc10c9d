//! Sets of HTTP status codes, and the retryable sets of the default and IMDS schedules.

use std::fmt;

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
