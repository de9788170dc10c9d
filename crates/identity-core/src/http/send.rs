//! Sending through a [`Pipeline`]: one bounded attempt, and the retry loop that repeats it on
//! the schedule of the pipeline's [`RetryPolicy`](crate::retry::RetryPolicy) inside the call's
//! deadline.

use std::time::Duration;

use super::{CertificateRejected, CutLimit, RetryCut};
use super::{
    CollectError, Pipeline, Request, Response, SendOptions, SourceText, Target, clone_request,
};
use crate::Error;
use crate::retry::{Attempt, Outcome};

/// One failed attempt, as [`Pipeline::attempt`] reports it to the retry loop.
struct Failure {
    error: Error,
    /// False when sending again cannot help (a body over the cap, the deadline reached).
    retryable: bool,
}

impl Pipeline {
    /// Sends one attempt within the limits, without retrying. Inside a deadline scope the
    /// attempt's timeout is shortened to the time left.
    ///
    /// # Errors
    /// [`ErrorKind::Transport`](crate::ErrorKind::Transport) naming `credential` and the target
    /// (scheme, host, port and path: never the query, headers or body) when the attempt fails,
    /// times out or the body exceeds the cap.
    pub async fn send_once(
        &self,
        credential: &'static str,
        request: Request,
        options: SendOptions,
    ) -> Result<Response, Error> {
        self.attempt(credential, request, options)
            .await
            .map_err(|f| f.error)
    }

    /// One attempt, reporting whether a failure is worth retrying.
    async fn attempt(
        &self,
        credential: &'static str,
        request: Request,
        options: SendOptions,
    ) -> Result<Response, Failure> {
        let target = Target::of(request.uri());
        let limits = self.limits();
        let scope = crate::deadline::owned_by(self.owner());
        let (timeout, cut) = match scope {
            Some(owned) if owned.left < limits.timeout => (owned.left, true),
            _ => (limits.timeout, false),
        };
        let deadline = scope.map_or(timeout, |owned| owned.limit);
        if timeout.is_zero() && cut {
            return Err(Failure {
                error: crate::deadline::expired(credential, deadline),
                retryable: false,
            });
        }
        let retryable = |error| Failure {
            error,
            retryable: true,
        };
        let final_ = |error| Failure {
            error,
            retryable: false,
        };
        let attempt = async {
            let response = self.client().execute(request, options).await.map_err(|e| {
                match CertificateRejected::find(&*e) {
                    // A certificate does not change between attempts.
                    Some(rejected) => final_(
                        Error::authentication_failed(
                            credential,
                            format!(
                                "the TLS certificate of {target} was refused: {}; not retried",
                                rejected.reason()
                            ),
                        )
                        .with_source(rejected.clone()),
                    ),
                    None => retryable(
                        Error::transport(credential, format!("request to {target} failed"))
                            .with_source(SourceText::from(&*e)),
                    ),
                }
            })?;
            let (parts, body) = response.into_parts();
            // A body over the cap is not retried: the same endpoint would most likely send
            // the same answer again.
            if let Some(len) = content_length(&parts.headers) {
                if len > limits.max_body as u64 {
                    return Err(final_(too_large(
                        credential,
                        &target,
                        limits.max_body,
                        parts.status,
                    )));
                }
            }
            let status = parts.status;
            let body = body
                .collect_capped(limits.max_body)
                .await
                .map_err(|e| match e {
                    CollectError::TooLarge => {
                        final_(too_large(credential, &target, limits.max_body, status))
                    }
                    CollectError::Io(e) => retryable(
                        Error::transport(
                            credential,
                            format!("reading the response from {target} failed"),
                        )
                        .with_source(SourceText::from(&*e)),
                    ),
                })?;
            Ok(http::Response::from_parts(parts, body))
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) if cut => Err(final_(Error::transport(
                credential,
                format!(
                    "request to {target} was still unanswered when the {} ms deadline of this call ended",
                    deadline.as_millis()
                ),
            ))),
            Err(_) => Err(retryable(Error::transport(
                credential,
                format!(
                    "request to {target} timed out after {} ms",
                    limits.timeout.as_millis()
                ),
            ))),
        }
    }

    /// Sends `request` with retries on the schedule of the pipeline's [`RetryPolicy`](crate::retry::RetryPolicy), within the deadline:
    /// that of the scope [`within`](Self::within) opened around it, else a new one of
    /// [`deadline`](Self::deadline). When retries on a status are exhausted the last response
    /// is returned, so the caller can read the service's error. A response body over the cap
    /// is not retried.
    ///
    /// When the service asks (`Retry-After`, `retry-after-ms`, `x-ms-retry-after-ms`) for a
    /// wait longer than the policy's
    /// [`max_retry_after`](crate::retry::RetryPolicy::max_retry_after), or the next wait
    /// (asked for or computed) would end past the call's deadline or the deadline of the
    /// caller around it (see [`crate::deadline`]), the last response is returned at once,
    /// carrying a [`RetryCut`] in its extensions: the credential classifies it as it would
    /// without retries and adds [`RetryCut::clause`].
    ///
    /// # Errors
    /// The last transport error when retries on transport errors are exhausted or the next
    /// wait would end past a deadline; a transport error when the deadline passes; an
    /// authentication-failed error, not retried, when the client reports a
    /// [`CertificateRejected`].
    pub async fn send(
        &self,
        credential: &'static str,
        request: &Request,
        options: SendOptions,
    ) -> Result<Response, Error> {
        // Built in each branch, so the future is stored once.
        if crate::deadline::owned_by(self.owner()).is_some() {
            self.retrying(credential, request, options).await
        } else {
            self.within(credential, self.retrying(credential, request, options))
                .await
        }
    }

    /// Sends `request` until it succeeds or the retry schedule says stop, inside the current
    /// deadline scope; each attempt gets a fresh copy of `request`.
    async fn retrying(
        &self,
        credential: &'static str,
        request: &Request,
        options: SendOptions,
    ) -> Result<Response, Error> {
        let retry = self.retry();
        let mut attempt = Attempt::FIRST;
        let mut slept = Duration::ZERO;
        loop {
            let result = self
                .attempt(credential, clone_request(request), options)
                .await;
            let outcome = match &result {
                Ok(response) => Outcome::Response {
                    status: response.status().as_u16(),
                    headers: response.headers(),
                    received: self.clock().now(),
                },
                Err(failure) if failure.retryable => Outcome::Transport,
                Err(_) => return result.map_err(|f| f.error),
            };
            let Some(sleep) = retry.next_delay(attempt, &outcome, slept) else {
                return result.map_err(|f| f.error);
            };
            if let Some(cut) = self.cut(&outcome, sleep) {
                tracing::debug!(
                    target: "identity_core::retry",
                    wait_ms = millis(cut.wait),
                    hinted = cut.hinted,
                    limit = ?cut.limit,
                    "the next retry cannot be waited for; returning the last answer"
                );
                return match result {
                    Ok(mut response) => {
                        response.extensions_mut().insert(cut);
                        Ok(response)
                    }
                    Err(f) => Err(f.error),
                };
            }
            match &result {
                Ok(r) => tracing::debug!(
                    target: "identity_core::retry",
                    status = r.status().as_u16(),
                    attempt = attempt.number(),
                    sleep_ms = millis(sleep),
                    "retrying after an error status"
                ),
                Err(f) => tracing::debug!(
                    target: "identity_core::retry",
                    error = %f.error,
                    attempt = attempt.number(),
                    sleep_ms = millis(sleep),
                    "retrying after a transport error"
                ),
            }
            attempt = attempt.next(&outcome);
            slept = slept.saturating_add(sleep);
            if !sleep.is_zero() {
                self.sleeper().sleep(sleep).await;
                crate::deadline::note_slept(sleep);
            }
        }
    }
}

impl Pipeline {
    /// Whether the retry after `outcome`, due after `sleep`, must not be waited for: the
    /// service asked (uncapped) for more than the policy honours, or the wait would end past
    /// the call's deadline or the caller's.
    fn cut(&self, outcome: &Outcome<'_>, sleep: Duration) -> Option<RetryCut> {
        let asked = match *outcome {
            Outcome::Response {
                headers, received, ..
            } => crate::retry::requested_wait(headers, received),
            Outcome::Transport => None,
        };
        let (wait, hinted) = asked.map_or((sleep, false), |asked| (asked, true));
        let cap = self.retry().retry_after_cap();
        if hinted && wait > cap {
            return Some(RetryCut {
                wait,
                hinted,
                limit: CutLimit::Cap(cap),
            });
        }
        let owned = crate::deadline::owned_by(self.owner())?;
        // Only an answer is cut at the caller's deadline: after a transport failure there is
        // nothing to report but the failure, and the caller's own end of the wait (a chain's
        // "no token within", which moves the chain on) says it better.
        let answered = matches!(outcome, Outcome::Response { .. });
        let limit = match owned.caller_left {
            Some(caller) if answered && caller < owned.left && sleep >= caller => {
                CutLimit::Caller { left: caller }
            }
            _ if sleep >= owned.left => CutLimit::Deadline {
                left: owned.left,
                deadline: owned.limit,
            },
            _ => return None,
        };
        Some(RetryCut {
            wait,
            hinted,
            limit,
        })
    }
}

fn too_large(
    credential: &'static str,
    target: &Target,
    max: usize,
    status: http::StatusCode,
) -> Error {
    Error::transport(
        credential,
        format!(
            "the response from {target} (HTTP {}) is larger than the {max}-byte limit; not retried",
            status.as_u16()
        ),
    )
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
