//! Sending through a [`Pipeline`]: one bounded attempt, and the retry loop that repeats it on
//! the schedule of the pipeline's [`RetryPolicy`](crate::retry::RetryPolicy) inside the call's
//! deadline.

use std::time::Duration;

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
            Some((left, _)) if left < limits.timeout => (left, true),
            _ => (limits.timeout, false),
        };
        let deadline = scope.map_or(timeout, |(_, limit)| limit);
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
                retryable(
                    Error::transport(credential, format!("request to {target} failed"))
                        .with_source(SourceText::from(&*e)),
                )
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
    /// # Errors
    /// The last transport error when retries on transport errors are exhausted; a transport
    /// error when the deadline passes, or when the service asks (`Retry-After`,
    /// `retry-after-ms`, `x-ms-retry-after-ms`) for a wait that would end past it, at once
    /// rather than after the wait.
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
            let (left, deadline) =
                crate::deadline::owned_by(self.owner()).unwrap_or((Duration::MAX, Duration::MAX));
            if sleep >= left {
                let hinted = match outcome {
                    Outcome::Response {
                        headers, received, ..
                    } => retry.retry_after(headers, received).is_some(),
                    Outcome::Transport => false,
                };
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
                        let target = Target::of(request.uri());
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
