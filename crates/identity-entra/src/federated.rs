//! What the CI federation credentials share: checking the URL of the service that hands out
//! the federated token, reading its JSON answer, and describing its refusals without echoing
//! a secret.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use identity_core::http::{Pipeline, Response, SendOptions};
use identity_core::{BoxFuture, Error, Secret};
use serde_json::Value;

use crate::authority::is_loopback;
use crate::client::{AssertionContext, AssertionSource};
use crate::response::redactor;

/// Reads a CI service's answer: the federated token, or an error saying what to fix.
/// `secrets` are scrubbed from every message.
pub(crate) type ParseAnswer = fn(&Response, &[&str]) -> Result<Secret, Error>;

/// Asks a CI service for a federated token with a bearer token: the assertion source of the
/// CI federation credentials (Azure Pipelines' OIDC token, GitHub Actions' ID token).
pub(crate) struct BearerFetch {
    /// The credential's name.
    pub(crate) name: &'static str,
    pub(crate) method: http::Method,
    /// The URL, query included (names organisation, job or run, never a secret).
    pub(crate) url: String,
    /// Headers besides `Authorization`, `Accept` and `User-Agent`.
    pub(crate) headers: &'static [(&'static str, &'static str)],
    /// The bearer token (never shown).
    pub(crate) bearer: Secret,
    pub(crate) pipeline: Pipeline,
    /// What to check when the bearer token cannot be a header value.
    pub(crate) bad_token: &'static str,
    /// What to check when the URL cannot make a request.
    pub(crate) bad_url: &'static str,
    /// The debug log line of the request.
    pub(crate) log: &'static str,
    pub(crate) parse: ParseAnswer,
}

impl fmt::Debug for BearerFetch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither the URL's run-specific query nor the token is shown.
        f.debug_struct("BearerFetch")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl AssertionSource for Arc<BearerFetch> {
    fn assertion(&self, _context: AssertionContext) -> BoxFuture<'static, Result<Secret, Error>> {
        let this = self.clone();
        Box::pin(async move { this.request().await })
    }
}

impl BearerFetch {
    async fn request(&self) -> Result<Secret, Error> {
        let name = self.name;
        let bearer = format!("Bearer {}", self.bearer.secret());
        let mut authorization = http::HeaderValue::from_str(&bearer)
            .map_err(|_| Error::invalid_configuration(name, self.bad_token))?;
        authorization.set_sensitive(true);
        let mut request = http::Request::builder()
            .method(self.method.clone())
            .uri(&self.url)
            .header(http::header::AUTHORIZATION, authorization);
        for (header, value) in self.headers {
            request = request.header(*header, *value);
        }
        let request = request
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("identity-entra/", env!("CARGO_PKG_VERSION")),
            )
            .body(Bytes::new())
            .map_err(|_| Error::invalid_configuration(name, self.bad_url))?;
        tracing::debug!(credential = name, "{}", self.log);
        let response = self
            .pipeline
            .send(name, &request, SendOptions::default())
            .await?;
        let result = (self.parse)(&response, &[self.bearer.secret()]);
        identity_core::http::RetryCut::explain(&response, result)
    }
}

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
    match crate::response::body_json(response) {
        Some(Value::Object(map)) => Some(map),
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
    format!(
        "fields: {}",
        redactor(secrets).quote(&names.join(", "), 200)
    )
}

/// The service's own message (the first of `keys` present), scrubbed of `secrets`, as
/// `": <message>"`, or an empty string.
pub(crate) fn service_message(response: &Response, keys: &[&str], secrets: &[&str]) -> String {
    let Some(map) = json_object(response) else {
        return String::new();
    };
    keys.iter()
        .find_map(|k| string_field(&map, k))
        .map(|m| format!(": {}", redactor(secrets).quote(&m, 500)))
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
