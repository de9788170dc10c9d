//! Access tokens and the [`Secret`] wrapper that keeps them out of logs.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

/// A secret string: a token, a client secret, a header value.
///
/// `Debug` and `Display` print `***`; the value is reachable only through [`Secret::secret`].
/// It does not implement `Serialize`. Cloning is cheap (the value is reference counted) and
/// equality is constant-time so that comparing secrets leaks nothing through timing.
///
/// ```
/// use identity_chain::Secret;
/// let s = Secret::new("hunter2");
/// assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
/// assert_eq!(s.secret(), "hunter2");
/// ```
#[derive(Clone)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    /// The secret value. Callers must not log it.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for Secret {}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // `black_box` keeps the optimiser from turning the loop back into an early exit.
    std::hint::black_box(diff) == 0
}

/// How a token is presented to a resource: the scheme of the `Authorization` header.
///
/// Every credential of this workspace issues bearer tokens today; the enum is
/// `#[non_exhaustive]` so that proof-of-possession tokens can be added without a breaking
/// change.
///
/// ```
/// use identity_chain::TokenType;
/// assert_eq!(TokenType::Bearer.to_string(), "Bearer");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenType {
    /// `Authorization: Bearer <token>`.
    #[default]
    Bearer,
}

impl TokenType {
    /// The scheme as written in an `Authorization` header, e.g. `Bearer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "Bearer",
        }
    }
}

impl fmt::Display for TokenType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An access token with its expiry and type.
///
/// Times are wall-clock (`SystemTime`) because token services send absolute epoch times and
/// tokens may be persisted across processes.
///
/// `#[non_exhaustive]`: build one with [`AccessToken::new`] and the `with_*` setters, so that
/// fields added later (as [`token_type`](AccessToken::token_type) was) break no caller.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use identity_chain::{AccessToken, TokenType};
/// let t = AccessToken::new("t", SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000));
/// assert_eq!(t.token_type(), TokenType::Bearer);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccessToken {
    /// The bearer token.
    pub token: Secret,
    /// When the token stops being valid.
    pub expires_on: SystemTime,
    /// When a cache should start refreshing it ahead of expiry, if the issuer or the
    /// half-life rule says so.
    pub refresh_on: Option<SystemTime>,
    /// How the token is presented; see [`AccessToken::token_type`].
    token_type: TokenType,
}

impl AccessToken {
    /// A bearer token without a refresh hint.
    pub fn new(token: impl Into<Secret>, expires_on: SystemTime) -> Self {
        Self {
            token: token.into(),
            expires_on,
            refresh_on: None,
            token_type: TokenType::Bearer,
        }
    }

    /// How the token is presented to a resource: [`TokenType::Bearer`] unless set otherwise.
    pub fn token_type(&self) -> TokenType {
        self.token_type
    }

    /// Sets the token type.
    #[must_use]
    pub fn with_token_type(mut self, token_type: TokenType) -> Self {
        self.token_type = token_type;
        self
    }

    /// Sets when the token should be refreshed.
    #[must_use]
    pub fn with_refresh_on(mut self, refresh_on: SystemTime) -> Self {
        self.refresh_on = Some(refresh_on);
        self
    }

    /// `expires_on` as whole seconds since the Unix epoch (0 for times before it).
    pub fn expires_on_unix(&self) -> u64 {
        self.expires_on
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const PLANTED: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.planted-secret";

    #[test]
    fn formatting_a_secret_never_shows_the_value() {
        let s = Secret::new(PLANTED);
        for text in [format!("{s}"), format!("{s:?}"), format!("{s:#?}")] {
            assert!(!text.contains("planted"), "{text}");
        }
    }

    #[test]
    fn formatting_a_token_never_shows_the_value() {
        let t = AccessToken::new(PLANTED, SystemTime::UNIX_EPOCH + Duration::from_secs(5))
            .with_refresh_on(SystemTime::UNIX_EPOCH);
        for text in [format!("{t:?}"), format!("{t:#?}")] {
            assert!(!text.contains("planted"), "{text}");
            assert!(text.contains("***"), "{text}");
        }
    }

    #[test]
    fn secrets_compare_by_value() {
        assert_eq!(Secret::new("abc"), Secret::new(String::from("abc")));
        assert_ne!(Secret::new("abc"), Secret::new("abd"));
        assert_ne!(Secret::new("abc"), Secret::new("abcd"));
    }

    #[test]
    fn expires_on_unix_reads_whole_seconds() {
        let t = AccessToken::new(
            "x",
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_893_492_000_900),
        );
        assert_eq!(t.expires_on_unix(), 1_893_492_000);
    }
}
