//! The wire helpers of the user flows: the classification of the token endpoint's answers,
//! PKCE, random values, hashes and the service's numbers of seconds.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use identity_core::Error;
use identity_core::http::Response;
use serde_json::Value;

/// The request a user flow made, for [`classify_answer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// A device code poll (RFC 8628 §3.4).
    DeviceCodePoll,
    /// A refresh-token redemption.
    Refresh,
}

/// What a user flow does next with the token endpoint's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Read it as a token response (a refusal is classified by
    /// [`classify_refusal`](crate::response::classify_refusal)).
    Token,
    /// Poll again after the interval.
    PollAgain,
    /// Poll again after the interval grown by 5 s.
    SlowDown,
    /// The refresh token no longer works: sign the user in again (unless automatic
    /// authentication is off).
    SignInAgain,
    /// An authentication failure with this message.
    Failed(&'static str),
}

/// Classifies the token endpoint's answer to a user flow by its OAuth `error`: the one table of
/// the sign-in credentials (the answers not listed go to
/// [`classify_refusal`](crate::response::classify_refusal) as a token response would).
///
/// | `error` | device code poll | refresh token |
/// |---|---|---|
/// | `authorization_pending` | poll again | token response (a refusal) |
/// | `slow_down` | poll again, interval + 5 s | token response (a refusal) |
/// | `authorization_declined` | failed: "the user declined the device code sign-in" | token response (a refusal) |
/// | `expired_token`, `code_expired` | failed: the device code expired, try again sooner | token response (a refusal) |
/// | `bad_verification_code` | failed: the device code was not recognised | token response (a refusal) |
/// | `invalid_grant`, `interaction_required` | token response (a refusal) | sign in again |
/// | none (success) or any other | token response | token response |
pub(crate) fn classify_answer(step: Step, response: &Response) -> Answer {
    let error = oauth_error(response);
    match (step, error.as_deref()) {
        (Step::DeviceCodePoll, Some("authorization_pending")) => Answer::PollAgain,
        (Step::DeviceCodePoll, Some("slow_down")) => Answer::SlowDown,
        (Step::DeviceCodePoll, Some("authorization_declined")) => {
            Answer::Failed("the user declined the device code sign-in")
        }
        (Step::DeviceCodePoll, Some("expired_token" | "code_expired")) => Answer::Failed(
            "the device code expired before the user signed in; try again and enter the code sooner",
        ),
        (Step::DeviceCodePoll, Some("bad_verification_code")) => {
            Answer::Failed("Microsoft Entra ID did not recognise the device code; try again")
        }
        (Step::Refresh, Some("invalid_grant" | "interaction_required")) => Answer::SignInAgain,
        _ => Answer::Token,
    }
}

/// The OAuth `error` code of an error response, if any.
fn oauth_error(response: &Response) -> Option<String> {
    if response.status().is_success() {
        return None;
    }
    let json = crate::response::body_json(response)?;
    json.get("error")
        .and_then(Value::as_str)
        .map(|s| s.chars().take(64).collect())
}

pub(super) fn sorted(scopes: &[&str]) -> Vec<String> {
    let mut owned: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
    owned.sort_unstable();
    owned.dedup();
    owned
}

/// `n` random bytes from the system's secure source, base64url without padding.
pub(crate) fn random_urlsafe(name: &'static str, n: usize) -> Result<String, Error> {
    use ring::rand::SecureRandom as _;
    let mut bytes = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| {
            Error::authentication_failed(name, "the system random number generator failed")
        })?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The PKCE S256 challenge of `verifier`: base64url(SHA-256(verifier)).
pub(crate) fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

/// Lower-case hex SHA-256 of `text`.
pub(crate) fn sha256_hex(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A whole number of seconds from a JSON number or numeric string (the token response's
/// rule, [`crate::response::seconds`]).
pub(crate) fn seconds(value: Option<&Value>) -> Option<u64> {
    value.and_then(crate::response::seconds)
}

/// Seconds as a duration, capped at a day (a server's number is not trusted further).
pub(crate) fn capped_seconds(seconds: u64) -> Duration {
    Duration::from_secs(seconds.min(86_400))
}
