//! What the CI federation credentials share: checking the URL of the service that hands out
//! the federated token, reading its JSON answer, and describing its refusals without echoing
//! a secret.

use identity_core::Error;
use identity_core::http::Response;
use serde_json::Value;

use crate::authority::is_loopback;
use crate::client::sanitize;

/// Checks that `raw` (the value of `variable`) is an absolute `https` URL (or `http` on a
/// loopback host when `allow_insecure_loopback`) without user information or fragment.
pub(crate) fn endpoint(
    name: &'static str,
    variable: &str,
    raw: &str,
    allow_insecure_loopback: bool,
) -> Result<http::Uri, Error> {
    let invalid =
        |why: &str| Error::invalid_configuration(name, format!("{variable} is not usable: {why}"));
    if raw.contains('#') {
        return Err(invalid("it must not contain a fragment"));
    }
    let uri: http::Uri = raw
        .trim()
        .parse()
        .map_err(|_| invalid("it is not a valid URL"))?;
    let authority = uri
        .authority()
        .ok_or_else(|| invalid("it is not an absolute URL"))?;
    if authority.as_str().contains('@') {
        return Err(invalid("it must not contain user information"));
    }
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => Ok(uri),
        Some(s)
            if s.eq_ignore_ascii_case("http")
                && allow_insecure_loopback
                && is_loopback(authority.host()) =>
        {
            Ok(uri)
        }
        _ => Err(invalid("it must be an https URL")),
    }
}

/// `base` with `pairs` appended to its query (form-encoded), after `?` or `&` as needed.
pub(crate) fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        query.append_pair(k, v);
    }
    let query = query.finish();
    let base = base.trim();
    if base.contains('?') {
        if base.ends_with('?') || base.ends_with('&') {
            format!("{base}{query}")
        } else {
            format!("{base}&{query}")
        }
    } else {
        format!("{}?{query}", base.trim_end_matches('/'))
    }
}

/// Whether the answer is an HTML page (a sign-in page or a gateway's error page) rather than
/// the JSON the service sends.
pub(crate) fn is_html(response: &Response) -> bool {
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.contains("text/html") {
        return true;
    }
    let body = response.body();
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(body.len());
    body[start..].first() == Some(&b'<')
}

/// The JSON object of a response, if it is one.
pub(crate) fn json_object(response: &Response) -> Option<serde_json::Map<String, Value>> {
    match serde_json::from_slice(response.body()) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// The non-empty string at `field`.
pub(crate) fn string_field(map: &serde_json::Map<String, Value>, field: &str) -> Option<String> {
    match map.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// The sorted field names of a JSON object, scrubbed, for a message about a missing field.
pub(crate) fn field_names(map: &serde_json::Map<String, Value>, secrets: &[&str]) -> String {
    let mut names: Vec<&str> = map.keys().map(String::as_str).collect();
    names.sort_unstable();
    if names.is_empty() {
        return "no fields".to_owned();
    }
    format!("fields: {}", sanitize(&names.join(", "), secrets, 200))
}

/// The service's own message (the first of `keys` present), scrubbed of `secrets`, as
/// `": <message>"`, or an empty string.
pub(crate) fn service_message(response: &Response, keys: &[&str], secrets: &[&str]) -> String {
    let Some(map) = json_object(response) else {
        return String::new();
    };
    keys.iter()
        .find_map(|k| string_field(&map, k))
        .map(|m| format!(": {}", sanitize(&m, secrets, 500)))
        .unwrap_or_default()
}

/// Diagnostic request ids from the response headers (`x-vss-e2eid`, `x-msedge-ref`,
/// `x-github-request-id`), as `"; <name>: <value>"` items. Only id-like characters are kept.
pub(crate) fn request_ids(response: &Response, names: &[&str]) -> String {
    let mut out = String::new();
    for name in names {
        if let Some(value) = response.headers().get(*name).and_then(|v| v.to_str().ok()) {
            let value: String = value
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || "-:._ ".contains(*c))
                .take(100)
                .collect();
            if !value.trim().is_empty() {
                out.push_str(&format!("; {name}: {}", value.trim()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_appended_after_the_right_separator() {
        assert_eq!(
            with_query("https://h/p/", &[("a", "1"), ("b", "x y")]),
            "https://h/p?a=1&b=x+y"
        );
        assert_eq!(
            with_query("https://h/p?api-version=2.0", &[("audience", "api://x")]),
            "https://h/p?api-version=2.0&audience=api%3A%2F%2Fx"
        );
        assert_eq!(with_query("https://h/p?", &[("a", "1")]), "https://h/p?a=1");
    }

    #[test]
    fn endpoints_must_be_https_without_user_info_or_fragment() {
        assert!(endpoint("X", "V", "https://dev.azure.com/o/p", false).is_ok());
        assert!(endpoint("X", "V", "http://127.0.0.1:1/p", true).is_ok());
        for (raw, why) in [
            ("http://dev.azure.com/o", "https"),
            ("http://127.0.0.1:1/p", "https"),
            ("https://u:planted@h/p", "user information"),
            ("https://h/p#f", "fragment"),
            ("/relative", "absolute"),
        ] {
            let err = endpoint("X", "V", raw, false).unwrap_err();
            assert!(err.message().contains(why), "{raw}: {err}");
            assert!(!err.message().contains("planted"), "{err}");
        }
    }
}
