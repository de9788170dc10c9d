//! Response parsing shared by every source (docs/protocol.md §2.10), and the helpers that build query
//! strings and turn error statuses into messages.
//!
//! The token services disagree on types: `expires_on` arrives as a JSON number, a decimal
//! string, or (Azure Machine Learning) a UTC date string in one of two layouts; `expires_in`
//! as a number or a decimal string. All of that is handled here, once, with the rules every
//! token parser shares (docs/protocol.md §1.5, `identity_core::wire`): a leading UTF-8 byte
//! order mark is skipped, a `null` or blank expiry field counts as absent, and seconds read the
//! same from a number and a string, a fraction dropped.
//!
//! Parsing goes through `serde_json::Value` rather than derived structs: it keeps proc-macro
//! crates out of the default dependency tree, and the shapes are small.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use identity_core::http::Response;
use identity_core::redact::Redactor;
use identity_core::time::unix_from_utc;
use identity_core::wire;
use identity_core::{Error, Secret, from_unix_seconds};
use serde_json::{Map, Value};

use crate::NAME;

/// The fields of a token response that the crate uses.
#[derive(Clone, Debug)]
pub(crate) struct TokenResponse {
    /// The access token (prints as `***`).
    pub(crate) token: Secret,
    pub(crate) expires_on: SystemTime,
    /// Only when the service sent `refresh_in`.
    pub(crate) refresh_on: Option<SystemTime>,
    pub(crate) token_type: String,
    /// The resource the service says the token is for (informational only: never a cache key).
    pub(crate) resource: Option<String>,
    /// Identity fields echoed by the service (Azure Arc must echo the requested identity).
    pub(crate) client_id: Option<String>,
    pub(crate) object_id: Option<String>,
    pub(crate) msi_res_id: Option<String>,
}

/// Parses a successful token response body. `source` names the source in messages; `now`
/// is the time the request was sent, the base of `expires_in` and `refresh_in`.
pub(crate) fn parse_token(
    source: &str,
    body: &[u8],
    now: SystemTime,
) -> Result<TokenResponse, ParseError> {
    let value: Value =
        serde_json::from_slice(wire::strip_bom(body)).map_err(|_| ParseError::NotJson)?;
    let Value::Object(map) = value else {
        return Err(ParseError::NotAnObject);
    };
    let token = match map.get("access_token") {
        Some(Value::String(s)) if !s.is_empty() => Secret::new(s.as_str()),
        _ => return Err(ParseError::Missing("access_token")),
    };
    let expires_on = match (present(&map, "expires_on"), present(&map, "expires_in")) {
        (Some(v), _) => expires_on(v).ok_or(ParseError::Invalid("expires_on"))?,
        (_, Some(v)) => {
            let secs = seconds(v).ok_or(ParseError::Invalid("expires_in"))?;
            now.checked_add(Duration::from_secs(secs))
                .ok_or(ParseError::Invalid("expires_in"))?
        }
        _ => return Err(ParseError::Missing("expires_on")),
    };
    let refresh_on = match present(&map, "refresh_in") {
        Some(v) => {
            let secs = seconds(v).ok_or(ParseError::Invalid("refresh_in"))?;
            now.checked_add(Duration::from_secs(secs))
        }
        _ => None,
    };
    tracing::debug!(target: "identity_msi", source, "parsed a token response");
    Ok(TokenResponse {
        token,
        expires_on,
        refresh_on,
        token_type: string(&map, "token_type").unwrap_or_else(|| "Bearer".to_owned()),
        resource: string(&map, "resource"),
        client_id: string(&map, "client_id"),
        object_id: string(&map, "object_id"),
        msi_res_id: string(&map, "msi_res_id").or_else(|| string(&map, "mi_res_id")),
    })
}

/// The value of `key`, unless it is absent, `null` or a blank string.
fn present<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|v| !wire::is_blank_json(v))
}

fn string(map: &Map<String, Value>, key: &str) -> Option<String> {
    match map.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// Why a body is not a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// Not JSON at all.
    NotJson,
    /// JSON, but not an object.
    NotAnObject,
    /// A required field is absent or empty.
    Missing(&'static str),
    /// A field has a value that cannot be read.
    Invalid(&'static str),
}

impl ParseError {
    /// The error to report: a body that is not a token is an authentication failure (the
    /// service answered, but not with a token). Field names are printed, never values.
    pub(crate) fn into_error(self, source: &str, check: &str) -> Error {
        let what = match self {
            Self::NotJson => "a body that is not JSON".to_owned(),
            Self::NotAnObject => "JSON that is not an object".to_owned(),
            Self::Missing(field) => format!("a response without \"{field}\""),
            Self::Invalid(field) => format!("an unreadable \"{field}\" value"),
        };
        Error::authentication_failed(
            NAME,
            format!(
                "the {source} managed identity endpoint returned {what} instead of a token; {check}"
            ),
        )
    }
}

/// Whole seconds from a JSON number or a decimal string, a fraction dropped in both.
fn seconds(value: &Value) -> Option<u64> {
    wire::seconds_from_json(value)
}

/// `expires_on`: epoch seconds as a number or string, or an Azure ML date string.
fn expires_on(value: &Value) -> Option<SystemTime> {
    if let Some(secs) = seconds(value) {
        return from_unix_seconds(i64::try_from(secs).ok()?);
    }
    let Value::String(s) = value else { return None };
    from_unix_seconds(parse_ml_date(s)?)
}

/// The Azure Machine Learning date strings, always UTC (docs/protocol.md §2.5):
/// `MM/DD/YYYY HH:MM:SS +00:00` and `M/D/YYYY h:MM:SS AM|PM +00:00`.
pub(crate) fn parse_ml_date(text: &str) -> Option<i64> {
    let text = text.trim().strip_suffix("+00:00")?.trim_end();
    let mut parts = text.split_whitespace();
    let date = parts.next()?;
    let time = parts.next()?;
    let meridiem = parts.next();
    if parts.next().is_some() {
        return None;
    }
    let mut d = date.split('/');
    let month: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    let year: i64 = d.next()?.parse().ok()?;
    if d.next().is_some() {
        return None;
    }
    let mut t = time.split(':');
    let mut hour: u32 = t.next()?.parse().ok()?;
    let minute: u32 = t.next()?.parse().ok()?;
    let second: u32 = t.next()?.parse().ok()?;
    if t.next().is_some() {
        return None;
    }
    match meridiem.map(str::to_ascii_uppercase).as_deref() {
        None => {}
        Some(m @ ("AM" | "PM")) => {
            if !(1..=12).contains(&hour) {
                return None;
            }
            hour %= 12;
            if m == "PM" {
                hour += 12;
            }
        }
        Some(_) => return None,
    }
    unix_from_utc(year, month, day, hour, minute, second)
}

/// The most characters of a service's explanation that a message quotes.
pub(crate) const MAX_QUOTED_CHARS: usize = 300;

/// The service's own explanation from an error body, if it is JSON and carries one of the
/// usual fields. Only these fields are quoted (never the raw body), with every secret of the
/// request removed (the [`Redactor`] that the flow in `credential.rs` puts in the response's
/// extensions) before the text is cut to [`MAX_QUOTED_CHARS`] characters; control characters
/// become spaces.
pub(crate) fn service_message(response: &Response) -> Option<String> {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(wire::strip_bom(response.body()))
    else {
        return None;
    };
    let mut parts = Vec::new();
    let nested = match map.get("error") {
        Some(Value::Object(inner)) => Some(inner),
        _ => None,
    };
    if let Some(inner) = nested {
        for key in ["code", "message"] {
            if let Some(Value::String(s)) = inner.get(key) {
                parts.push(s.clone());
            }
        }
    } else if let Some(Value::String(s)) = map.get("error") {
        parts.push(s.clone());
    }
    for key in ["error_description", "message", "Message"] {
        if let Some(Value::String(s)) = map.get(key) {
            parts.push(s.clone());
        }
    }
    if parts.is_empty() {
        return None;
    }
    let text = parts.join(": ");
    let none = Redactor::new();
    let redactor = response.extensions().get::<Redactor>().unwrap_or(&none);
    Some(redactor.quote(&text, MAX_QUOTED_CHARS))
}

/// True if the body contains `needle` (ASCII, case-insensitive): used for the Docker
/// Desktop "unreachable" answer.
pub(crate) fn body_contains(response: &Response, needle: &str) -> bool {
    let body = response.body();
    let needle = needle.as_bytes();
    body.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The standard error for an HTTP error status: it names the source, the status and the
/// service's message, and says what to check.
pub(crate) fn status_error(source: &str, response: &Response, check: &str) -> Error {
    let status = response.status().as_u16();
    let mut message = format!("the {source} managed identity endpoint answered HTTP {status}");
    if let Some(text) = service_message(response) {
        let _ = write!(message, " ({text})");
    }
    let _ = write!(message, "; {check}");
    Error::authentication_failed(NAME, message).with_status(status)
}

/// Percent-encodes a query or form value: everything but ASCII letters, digits and
/// `-._~` is escaped, as the reference clients do (`https://x` → `https%3A%2F%2Fx`).
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `base?k1=v1&k2=v2`, encoding the values and keeping any query `base` already has.
pub(crate) fn with_query(base: &str, params: &[(&str, &str)]) -> String {
    let mut url = base.to_owned();
    let mut sep = if base.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        url.push(sep);
        url.push_str(k);
        url.push('=');
        url.push_str(&encode(v));
        sep = '&';
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn expires_on_is_read_as_number_numeric_string_and_both_ml_dates() {
        let now = at(1_700_000_000);
        for (raw, expected) in [
            (r#""1795298875""#, 1_795_298_875),
            ("1795298875", 1_795_298_875),
            (r#""06/20/2030 02:57:58 +00:00""#, 1_908_154_678),
            (r#""1/16/2030 5:24:12 AM +00:00""#, 1_894_771_452),
            (r#""1/16/2030 5:24:12 PM +00:00""#, 1_894_814_652),
            (r#""1/16/2030 12:00:00 AM +00:00""#, 1_894_752_000),
            // A fraction is dropped, from a string as from a number.
            (r#""1796000000.0""#, 1_796_000_000),
            (r#"" 1796000000.5 ""#, 1_796_000_000),
            ("1796000000.5", 1_796_000_000),
        ] {
            let body = format!(r#"{{"access_token":"AT","expires_on":{raw}}}"#);
            let parsed = parse_token("Azure ML", body.as_bytes(), now).unwrap();
            assert_eq!(parsed.expires_on, at(expected), "{raw}");
        }
    }

    #[test]
    fn the_reported_app_service_bodies_parse() {
        let now = at(1_700_000_000);
        for (body, expected) in [
            // A leading UTF-8 byte order mark.
            (
                &b"\xEF\xBB\xBF{\"access_token\":\"A\",\"expires_in\":3600}"[..],
                1_700_003_600,
            ),
            // A blank `expires_on` next to a good `expires_in`: absent, so `expires_in` counts.
            (
                br#"{"access_token":"A","expires_on":"","expires_in":3600}"#,
                1_700_003_600,
            ),
            (
                br#"{"access_token":"A","expires_on":" ","expires_in":"3600"}"#,
                1_700_003_600,
            ),
            (
                br#"{"access_token":"A","expires_on":null,"expires_in":3600.0}"#,
                1_700_003_600,
            ),
            // Epoch seconds as a string with a fraction.
            (
                br#"{"access_token":"A","expires_on":"1796000000.0"}"#,
                1_796_000_000,
            ),
        ] {
            let parsed = parse_token("App Service", body, now).unwrap();
            assert_eq!(
                parsed.expires_on,
                at(expected),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_blank_expiry_without_the_other_field_is_missing_and_a_blank_refresh_in_is_absent() {
        let now = at(1_700_000_000);
        for body in [
            &br#"{"access_token":"A","expires_on":""}"#[..],
            br#"{"access_token":"A","expires_on":"","expires_in":""}"#,
            br#"{"access_token":"A","expires_in":"  "}"#,
        ] {
            assert_eq!(
                parse_token("App Service", body, now).unwrap_err(),
                ParseError::Missing("expires_on")
            );
        }
        let body = br#"{"access_token":"A","expires_in":3600,"refresh_in":""}"#;
        assert_eq!(parse_token("IMDS", body, now).unwrap().refresh_on, None);
        // A BOM anywhere but at the start, or twice, is not skipped.
        for body in [
            &b" \xEF\xBB\xBF{\"access_token\":\"A\",\"expires_in\":1}"[..],
            b"\xEF\xBB\xBF\xEF\xBB\xBF{\"access_token\":\"A\",\"expires_in\":1}",
        ] {
            assert_eq!(
                parse_token("IMDS", body, now).unwrap_err(),
                ParseError::NotJson
            );
        }
    }

    #[test]
    fn expires_in_counts_from_the_request_time() {
        let now = at(1_000);
        for raw in ["3600", r#""3600""#] {
            let body = format!(r#"{{"access_token":"AT","expires_in":{raw}}}"#);
            assert_eq!(
                parse_token("IMDS", body.as_bytes(), now)
                    .unwrap()
                    .expires_on,
                at(4_600)
            );
        }
    }

    #[test]
    fn refresh_on_is_set_only_when_the_service_sends_refresh_in() {
        let now = at(1_000);
        let with = parse_token(
            "X",
            br#"{"access_token":"A","expires_in":7200,"refresh_in":600}"#,
            now,
        )
        .unwrap();
        assert_eq!(with.refresh_on, Some(at(1_600)));
        let without = parse_token("X", br#"{"access_token":"A","expires_in":7200}"#, now).unwrap();
        assert_eq!(without.refresh_on, None);
        assert_eq!(without.token_type, "Bearer");
    }

    #[test]
    fn bodies_that_are_not_tokens_are_classified() {
        let now = at(0);
        assert_eq!(
            parse_token("X", b"<html>", now).unwrap_err(),
            ParseError::NotJson
        );
        assert_eq!(
            parse_token("X", b"[1]", now).unwrap_err(),
            ParseError::NotAnObject
        );
        assert_eq!(
            parse_token("X", br#"{"expires_in":1}"#, now).unwrap_err(),
            ParseError::Missing("access_token")
        );
        assert_eq!(
            parse_token("X", br#"{"access_token":"A"}"#, now).unwrap_err(),
            ParseError::Missing("expires_on")
        );
        assert_eq!(
            parse_token("X", br#"{"access_token":"A","expires_on":"soon"}"#, now).unwrap_err(),
            ParseError::Invalid("expires_on")
        );
    }

    #[test]
    fn ml_dates_reject_other_offsets_and_bad_fields() {
        assert_eq!(parse_ml_date("06/20/2030 02:57:58 +01:00"), None);
        assert_eq!(parse_ml_date("13/20/2030 02:57:58 +00:00"), None);
        assert_eq!(parse_ml_date("1/16/2030 13:24:12 PM +00:00"), None);
        assert_eq!(parse_ml_date("1/16/2030 5:24:12 XM +00:00"), None);
    }

    #[test]
    fn values_are_percent_encoded_like_the_reference() {
        assert_eq!(
            encode("https://vault.azure.net"),
            "https%3A%2F%2Fvault.azure.net"
        );
        assert_eq!(
            with_query("http://h/p", &[("a", "1"), ("b", "x y")]),
            "http://h/p?a=1&b=x%20y"
        );
        assert_eq!(
            with_query("http://h/p?z=0", &[("a", "1")]),
            "http://h/p?z=0&a=1"
        );
    }

    #[test]
    fn the_parse_error_names_fields_but_never_values() {
        let e = ParseError::Missing("access_token")
            .into_error("App Service", "check IDENTITY_ENDPOINT");
        assert!(e.to_string().contains("access_token"));
        let token = parse_token(
            "X",
            br#"{"access_token":"planted-token-value","expires_in":1}"#,
            at(0),
        )
        .unwrap();
        assert!(!format!("{token:?}").contains("planted"));
    }
}
