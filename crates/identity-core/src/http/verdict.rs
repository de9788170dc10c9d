//! What the pipeline tells a credential beside an answer or a failure: that it stopped
//! retrying an answer because the service asked for a wait it cannot honour ([`RetryCut`]),
//! and that a server's TLS certificate was refused ([`CertificateRejected`]).

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// Why the pipeline returned an error answer without the retry its schedule asked for. Stored
/// in the [`Response`](super::Response)'s extensions; [`RetryCut::of`] reads it back. A
/// credential classifies the answer as it would without retries and appends
/// [`clause`](Self::clause) to the error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryCut {
    /// The wait before the next retry: the service's own request (`Retry-After`,
    /// `retry-after-ms`, `x-ms-retry-after-ms`, uncapped) when `hinted`, else the schedule's
    /// backoff.
    pub wait: Duration,
    /// True when `wait` is what the service asked for.
    pub hinted: bool,
    /// What the wait exceeds.
    pub limit: CutLimit,
}

/// The limit a [`RetryCut`] wait exceeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CutLimit {
    /// The longest server-requested wait the retry policy honours
    /// ([`RetryPolicy::max_retry_after`](crate::retry::RetryPolicy::max_retry_after)).
    Cap(Duration),
    /// The time left of this call's own deadline (`left` of `deadline`).
    Deadline {
        /// Time left when the retry was due.
        left: Duration,
        /// The call's whole deadline.
        deadline: Duration,
    },
    /// The time left of the deadline of the caller around the credential (a chain's deadline,
    /// or a member's share of it; see [`crate::deadline::run`]).
    Caller {
        /// Time left when the retry was due.
        left: Duration,
    },
}

impl RetryCut {
    /// The cut recorded in `response`, if the pipeline stopped retrying it.
    pub fn of<B>(response: &http::Response<B>) -> Option<&Self> {
        response.extensions().get::<Self>()
    }

    /// `result` (what a credential made of `response`), its error carrying
    /// [`clause`](Self::clause) when the pipeline stopped retrying `response`.
    ///
    /// # Errors
    /// `result`'s error, with the clause appended.
    pub fn explain<T, B>(
        response: &http::Response<B>,
        result: Result<T, crate::Error>,
    ) -> Result<T, crate::Error> {
        match Self::of(response) {
            Some(cut) => result.map_err(|e| e.with_note(&cut.clause())),
            None => result,
        }
    }

    /// One clause for an error message: the wait (the service's own number, in seconds), the
    /// limit it exceeds, and what would let it be honoured, e.g. "the service asked to retry
    /// after 600 s, which exceeds 60 s, the longest wait this credential honours; not retried".
    pub fn clause(&self) -> String {
        let wait = seconds(self.wait);
        let asked = if self.hinted {
            format!("the service asked to retry after {wait}")
        } else {
            format!("the next retry was due after {wait}")
        };
        match self.limit {
            CutLimit::Cap(cap) => format!(
                "{asked}, which exceeds {}, the longest wait this credential honours; not retried (try again after that time)",
                seconds(cap)
            ),
            CutLimit::Deadline { left, deadline } => format!(
                "{asked}, which exceeds the {} left of this call's {} deadline; the deadline ended the retries (a call deadline (`Limits::deadline`) over {wait} plus the time already spent would let it wait)",
                seconds(left),
                seconds(deadline)
            ),
            CutLimit::Caller { left } => format!(
                "{asked}, which exceeds the {} left of the caller's deadline (a chain's, or this member's share of it); the deadline ended the retries",
                seconds(left)
            ),
        }
    }
}

/// `600 s`, `1.5 s`, `0.25 s`: a duration in seconds, to the millisecond, without trailing
/// zeros.
fn seconds(d: Duration) -> String {
    let millis = d.as_millis();
    let (whole, frac) = (millis / 1000, millis % 1000);
    if frac == 0 {
        format!("{whole} s")
    } else {
        let frac = format!("{frac:03}");
        format!("{whole}.{} s", frac.trim_end_matches('0'))
    }
}

/// An [`HttpClient`](super::HttpClient) error saying the server's TLS certificate failed
/// verification (untrusted issuer, wrong host name, a pinned thumbprint that does not match).
/// The pipeline does not retry it (a certificate does not change between attempts) and
/// reports it as [`ErrorKind::AuthenticationFailed`](crate::ErrorKind::AuthenticationFailed)
/// with the reason at the top of the message. `reason` names what to check, never a secret.
#[derive(Clone, Debug)]
pub struct CertificateRejected {
    reason: Cow<'static, str>,
}

impl CertificateRejected {
    /// A rejection with `reason`, e.g. "the server certificate does not match
    /// `IDENTITY_SERVER_THUMBPRINT`".
    pub fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            reason: reason.into(),
        }
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The rejection in `error` or its chain of causes (looking inside `std::io::Error`s too).
    pub fn find<'e>(error: &'e (dyn StdError + 'static)) -> Option<&'e Self> {
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(found) = e.downcast_ref::<Self>() {
                return Some(found);
            }
            if let Some(inner) = e
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
            {
                if let Some(found) = Self::find(inner) {
                    return Some(found);
                }
            }
            next = e.source();
        }
        None
    }
}

impl fmt::Display for CertificateRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl StdError for CertificateRejected {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clauses_give_the_services_own_number_in_seconds() {
        let cut = RetryCut {
            wait: Duration::from_secs(600),
            hinted: true,
            limit: CutLimit::Cap(Duration::from_secs(60)),
        };
        let text = cut.clause();
        assert!(
            text.contains("retry after 600 s, which exceeds 60 s"),
            "{text}"
        );
        assert!(!text.contains("deadline"), "{text}");
        let cut = RetryCut {
            wait: Duration::from_millis(8250),
            hinted: false,
            limit: CutLimit::Caller {
                left: Duration::from_millis(1500),
            },
        };
        assert!(
            cut.clause()
                .contains("after 8.25 s, which exceeds the 1.5 s left")
        );
    }

    #[test]
    fn a_rejection_is_found_inside_io_errors() {
        let io = std::io::Error::other(CertificateRejected::new("pin"));
        let boxed: Box<dyn StdError + Send + Sync> = Box::new(io);
        assert_eq!(CertificateRejected::find(&*boxed).unwrap().reason(), "pin");
        let plain = std::io::Error::other("refused");
        assert!(CertificateRejected::find(&plain).is_none());
    }
}
