//! What a caller is told when the backend has no token: the status App Service itself gives
//! for the same condition, so that every client classifies the answer as it would on App
//! Service, and one message (the backend's own, once).
//!
//! | the backend's error (after its own retries) | status | clients (docs/protocol.md §1.2, §2.2) |
//! |---|---|---|
//! | upstream 429, or a throttle replayed | 429, `Retry-After` = the longest current throttle (5 s when unknown) | retried after `Retry-After` |
//! | the sidecar refuses the request: identity selector it cannot serve, too many identities, host cannot serve that identity kind | 400 | not retried; authentication failed |
//! | unavailable: the upstream says the identity is not there (IMDS 400 "Identity not found": not assigned to the host, or no identity at all), something that is not IMDS answers (an HTML page, a proxy's 403 or 502), the credential cannot work here (a tool missing or signed out) | 400, message `Unable to load the proper Managed Identity. …` (App Service's text for this condition) | not retried; this workspace's App Service source: unavailable (a chain moves on), as with IMDS directly; Python (sync): `CredentialUnavailableError` |
//! | any other upstream 4xx but 404, 408, 410 (Entra's `invalid_client`, a 401, a 403) | 400 | not retried; authentication failed |
//! | upstream 404, 408, 410 or 5xx after the backend's retries | 500 | retried (4 attempts), then authentication failed |
//! | an answer that is not a token (a 200 without `access_token`) | 500 | as above |
//! | the sidecar's upstream queue is full | 503, `Retry-After: 1` | retried |
//! | no answer from the upstream (refused, timed out), whatever the kind | 503 | retried |
//!
//! Permanent refusals (400, 403) are also remembered by the upstream guard's refusal cache
//! (`guard::refusals`), so repeating the request does not reach the upstream again for 30 s.
//!
//! The message is the backend error's message without the credential's name or its
//! `TROUBLESHOOTING.md` pointer (the client adds its own), with the caller secret removed
//! (it is never sent upstream, so this is a second line of defence), control characters
//! replaced and at most [`MAX_MESSAGE`] characters.

use std::sync::Arc;
use std::time::Duration;

use identity_core::redact::Redactor;
use identity_core::{ErrorKind, Secret};

use crate::guard::{QUEUE_FULL, UpstreamGuard};
use crate::protocol::Reply;

/// The longest message sent to a caller, in characters.
pub const MAX_MESSAGE: usize = 1024;

/// App Service's message when the identity asked for cannot be loaded.
pub const IDENTITY_NOT_LOADED: &str = "Unable to load the proper Managed Identity.";

/// A 429 with `after` as `Retry-After`.
pub(super) fn throttled_reply(after: Duration) -> Reply {
    Reply::error(
        429,
        "the upstream token service is throttling requests; retry after the time in Retry-After",
    )
    .with_retry_after(after)
}

/// Maps a backend error to an answer (the table in the module's documentation). `secret` is
/// the caller secret, removed from the message.
pub(super) fn error_reply(
    guards: &[Arc<UpstreamGuard>],
    secret: &Secret,
    e: &identity_core::Error,
) -> Reply {
    let status = e.status();
    if status == Some(429) {
        let after = guards
            .iter()
            .filter_map(|g| g.throttled_for())
            .max()
            .unwrap_or(Duration::from_secs(5));
        return throttled_reply(after);
    }
    let message = clean(e, secret);
    match (e.kind(), status) {
        (ErrorKind::Transport, _) if identity_core::display_chain(e).contains(QUEUE_FULL) => {
            Reply::error(503, "the sidecar is busy; retry shortly")
                .with_retry_after(Duration::from_secs(1))
        }
        (ErrorKind::InvalidArgument | ErrorKind::InvalidConfiguration, _) => {
            Reply::error(400, &message)
        }
        (ErrorKind::Transport, _) => Reply::error(503, &message),
        (ErrorKind::Unavailable, _) if unreachable(e) => Reply::error(503, &message),
        (ErrorKind::Unavailable, _) => {
            Reply::error(400, &format!("{IDENTITY_NOT_LOADED} {message}"))
        }
        (_, Some(s @ 400..=499)) if !matches!(s, 404 | 408 | 410) => Reply::error(400, &message),
        _ => Reply::error(500, &message),
    }
}

/// True when `e` comes from a transport failure (no answer, a timeout): the upstream may
/// answer later.
fn unreachable(e: &identity_core::Error) -> bool {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.downcast_ref::<identity_core::Error>()
            .is_some_and(|c| c.kind() == ErrorKind::Transport)
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The message of `e` for a caller: no credential name, no pointer, no secret, no control
/// characters, bounded.
fn clean(e: &identity_core::Error, secret: &Secret) -> String {
    let redacted = Redactor::new().with(secret.secret()).redact(e.message());
    let mut out: String = redacted
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE)
        .collect();
    if redacted.chars().count() > MAX_MESSAGE {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use identity_core::Error;

    fn reply(e: &Error) -> (u16, String, Option<u64>) {
        let r = error_reply(&[], &Secret::new("the-caller-secret-value"), e);
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        (
            r.status,
            body["message"].as_str().unwrap().to_owned(),
            r.retry_after,
        )
    }

    #[test]
    fn each_upstream_condition_gets_app_service_status() {
        const MI: &str = "ManagedIdentityCredential";
        let unavailable = |m: &'static str| Error::unavailable(MI, m);
        let refused = |m: &'static str| Error::authentication_failed(MI, m);
        let cases = [
            (
                unavailable("IMDS answered HTTP 400 (Identity not found)").with_status(400),
                400,
            ),
            (
                unavailable("IMDS answered 403 unreachable").with_status(403),
                400,
            ),
            (refused("invalid_client").with_status(401), 400),
            (refused("IMDS answered HTTP 500").with_status(500), 500),
            (refused("IMDS answered HTTP 410").with_status(410), 500),
            (refused("no access_token"), 500),
            (unavailable("an HTML page").with_status(502), 400),
            (unavailable("az is not signed in"), 400),
            (
                unavailable("no response from the IMDS endpoint")
                    .with_source(Error::transport(MI, "connection refused")),
                503,
            ),
            (Error::transport(MI, "connection refused"), 503),
            (
                Error::invalid_argument("identity-sidecar", "too many identities"),
                400,
            ),
        ];
        for (e, want) in cases {
            let (status, message, _) = reply(&e);
            assert_eq!(status, want, "{e}");
            // One message: no credential name, no second pointer.
            assert!(!message.contains("Credential:"), "{message}");
            assert!(!message.contains("TROUBLESHOOTING"), "{message}");
            assert!(message.contains(e.message()), "{message}");
        }
        let (_, message, _) = reply(
            &Error::unavailable("ManagedIdentityCredential", "Identity not found").with_status(400),
        );
        assert_eq!(message, format!("{IDENTITY_NOT_LOADED} Identity not found"));
    }

    #[test]
    fn a_429_keeps_retry_after_and_a_full_queue_is_busy() {
        let (status, _, after) = reply(
            &Error::authentication_failed("ManagedIdentityCredential", "slow down")
                .with_status(429),
        );
        assert_eq!((status, after), (429, Some(5)));
        let full = Error::transport("ManagedIdentityCredential", "send failed")
            .with_source(std::io::Error::other(QUEUE_FULL));
        let (status, _, after) = reply(&full);
        assert_eq!((status, after), (503, Some(1)));
    }

    #[test]
    fn the_message_is_cleaned_and_bounded() {
        let e = Error::authentication_failed(
            "ManagedIdentityCredential",
            format!("echo the-caller-secret-value\nline {}", "x".repeat(3000)),
        )
        .with_status(400);
        let (_, message, _) = reply(&e);
        assert!(!message.contains("the-caller-secret-value"), "{message}");
        assert!(!message.contains('\n'));
        assert!(message.chars().count() <= MAX_MESSAGE + 1);
    }
}
