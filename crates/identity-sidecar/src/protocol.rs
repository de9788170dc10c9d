//! The App Service managed-identity protocol, API version 2019-08-01 (`docs/protocol.md §2.2`),
//! as the server side sees it: the request's rules and the answers' shapes.
//!
//! * Request: `GET <path>?api-version=2019-08-01&resource=<R>[&client_id=…|&object_id=…|&mi_res_id=…]`
//!   with header `X-IDENTITY-HEADER: <secret>`.
//! * Success: 200 `{"access_token","expires_on" (epoch seconds as a string),"resource","token_type":"Bearer","client_id"}`
//!   (`client_id` left out when unknown, never sent empty).
//! * Failure: `{"statusCode":N,"message":"…","correlationId":"…"}` with status 400 (bad
//!   query, or the upstream refused for good: see `server::failure` for each upstream
//!   condition), 401 (missing or wrong secret), 404 (unknown path), 405 (not `GET`), 429
//!   (throttled, with `Retry-After`), 500 (the upstream failed), 503 (busy, with
//!   `Retry-After`, or the upstream could not be reached).

use std::time::Duration;

use identity_core::Secret;
use serde_json::json;

/// The only API version the endpoint speaks.
pub const API_VERSION: &str = "2019-08-01";
/// The header that carries the caller's secret (matched case-insensitively).
pub const SECRET_HEADER: &str = "x-identity-header";
/// The default path of the token endpoint.
pub const DEFAULT_PATH: &str = "/msi/token";
/// The health endpoint's path (no secret needed; answers `{"status":"ok"}`).
pub const HEALTH_PATH: &str = "/healthz";
/// The metrics endpoint's path (no secret needed; Prometheus text format).
pub const METRICS_PATH: &str = "/metrics";

/// The most query parameters a request may carry.
const MAX_PARAMS: usize = 16;

/// Which identity a request asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// No selector: the host's system-assigned identity (or the only identity the backend has).
    SystemAssigned,
    /// `client_id=…`.
    ClientId(String),
    /// `object_id=…`.
    ObjectId(String),
    /// `mi_res_id=…` (an Azure resource id).
    ResourceId(String),
}

/// A valid token request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// The resource (audience) asked for, e.g. `https://storage.azure.com`.
    pub resource: String,
    /// The identity asked for.
    pub identity: Identity,
}

/// A token to hand out.
#[derive(Clone, Debug)]
pub struct TokenAnswer {
    /// The access token (prints as `***`).
    pub token: Secret,
    /// Expiry, seconds since the Unix epoch.
    pub expires_on: u64,
    /// The resource the token is for.
    pub resource: String,
    /// The identity's client id: the upstream's, else the token's `appid`/`azp` claim, else
    /// the requested one; `None` when none is known (the answer then has no `client_id`).
    pub client_id: Option<String>,
    /// `Some(true)` when the token came from the cache, `Some(false)` when it was fetched,
    /// `None` when the backend cannot tell.
    pub from_cache: Option<bool>,
}

/// One answer: status, JSON (or text) body, and an optional `Retry-After`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: String,
    /// `Retry-After`, in whole seconds.
    pub retry_after: Option<u64>,
    /// `Content-Type`.
    pub content_type: &'static str,
}

impl Reply {
    /// An error in App Service's shape: `{"statusCode","message","correlationId"}`.
    pub fn error(status: u16, message: &str) -> Self {
        Self {
            status,
            body: json!({
                "statusCode": status,
                "message": message,
                "correlationId": "00000000-0000-0000-0000-000000000000",
            })
            .to_string(),
            retry_after: None,
            content_type: "application/json; charset=utf-8",
        }
    }

    /// Adds `Retry-After`, rounded up to whole seconds (at least 1).
    #[must_use]
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        let secs = after
            .as_secs()
            .saturating_add(u64::from(after.subsec_nanos() > 0));
        self.retry_after = Some(secs.max(1));
        self
    }

    /// A 200 with a token, in App Service's shape; `client_id` only when it is known.
    pub fn token(answer: &TokenAnswer) -> Self {
        Self {
            status: 200,
            body: {
                let mut body = json!({
                    "access_token": answer.token.secret(),
                    "expires_on": answer.expires_on.to_string(),
                    "resource": answer.resource,
                    "token_type": "Bearer",
                });
                if let Some(id) = &answer.client_id {
                    body["client_id"] = id.as_str().into();
                }
                body.to_string()
            },
            retry_after: None,
            content_type: "application/json; charset=utf-8",
        }
    }

    /// A 200 with a plain body.
    pub fn ok(body: String, content_type: &'static str) -> Self {
        Self {
            status: 200,
            body,
            retry_after: None,
            content_type,
        }
    }
}

/// Checks the query of a token request. The `Err` is the 400 to send.
///
/// # Errors
/// A missing or wrong `api-version`, a missing, empty or non-URI `resource`, more than one
/// identity selector, an empty selector, a selector App Service does not define
/// (`msi_res_id`, `resource_id`, `clientid`, `principal_id`), a parameter named twice (which
/// value a proxy in front would read is anyone's guess), or more than 16 parameters.
pub fn parse_query(query: &str) -> Result<TokenRequest, Reply> {
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .take(MAX_PARAMS + 1)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if params.len() > MAX_PARAMS {
        return Err(Reply::error(400, "too many query parameters"));
    }
    for (i, (name, _)) in params.iter().enumerate() {
        if params[..i].iter().any(|(earlier, _)| earlier == name) {
            return Err(Reply::error(
                400,
                "a query parameter is named more than once",
            ));
        }
    }
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match get("api-version") {
        None => {
            return Err(Reply::error(
                400,
                "the api-version query parameter is missing",
            ));
        }
        Some(API_VERSION) => {}
        Some(_) => {
            return Err(Reply::error(
                400,
                "unsupported api-version; this endpoint supports 2019-08-01",
            ));
        }
    }
    let resource = match get("resource").map(str::trim) {
        Some(r) if !r.is_empty() => r.to_owned(),
        _ => {
            return Err(Reply::error(
                400,
                "the resource query parameter is missing or empty",
            ));
        }
    };
    if resource.contains(|c: char| c.is_whitespace() || c.is_control()) || !resource.contains(':') {
        return Err(Reply::error(
            400,
            "the resource must be an absolute URI or an application id URI",
        ));
    }
    for wrong in ["msi_res_id", "resource_id", "clientid", "principal_id"] {
        if get(wrong).is_some() {
            return Err(Reply::error(
                400,
                "unknown identity selector; App Service accepts client_id, mi_res_id or object_id",
            ));
        }
    }
    let selectors: Vec<(&str, &str)> = ["client_id", "mi_res_id", "object_id"]
        .into_iter()
        .filter_map(|k| get(k).map(|v| (k, v)))
        .collect();
    if selectors.len() > 1 {
        return Err(Reply::error(
            400,
            "more than one identity selector; send one of client_id, mi_res_id or object_id",
        ));
    }
    let identity = match selectors.first() {
        None => Identity::SystemAssigned,
        Some(&(_, v)) if v.trim().is_empty() => {
            return Err(Reply::error(400, "an identity selector is empty"));
        }
        Some(&("client_id", v)) => Identity::ClientId(v.to_owned()),
        Some(&("object_id", v)) => Identity::ObjectId(v.to_owned()),
        Some(&(_, v)) => Identity::ResourceId(v.to_owned()),
    };
    Ok(TokenRequest { resource, identity })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_query_names_the_resource_and_identity() {
        let r =
            parse_query("api-version=2019-08-01&resource=https%3A%2F%2Fstorage.azure.com").unwrap();
        assert_eq!(r.resource, "https://storage.azure.com");
        assert_eq!(r.identity, Identity::SystemAssigned);
        let r = parse_query("api-version=2019-08-01&resource=api://x&client_id=abc").unwrap();
        assert_eq!(r.identity, Identity::ClientId("abc".into()));
        let r = parse_query("api-version=2019-08-01&resource=api://x&mi_res_id=%2Fsub").unwrap();
        assert_eq!(r.identity, Identity::ResourceId("/sub".into()));
        let r = parse_query("api-version=2019-08-01&resource=api://x&object_id=o").unwrap();
        assert_eq!(r.identity, Identity::ObjectId("o".into()));
    }

    #[test]
    fn bad_queries_get_400_in_app_service_shape() {
        let many = "a=b&".repeat(40);
        for query in [
            "resource=https%3A%2F%2Fstorage.azure.com",
            "api-version=2017-09-01&resource=https%3A%2F%2Fstorage.azure.com",
            "api-version=2019-08-01",
            "api-version=2019-08-01&resource=",
            "api-version=2019-08-01&resource=not+a+uri",
            "api-version=2019-08-01&resource=https%3A%2F%2Fs&client_id=a&object_id=b",
            "api-version=2019-08-01&resource=https%3A%2F%2Fs&msi_res_id=x",
            "api-version=2019-08-01&resource=https%3A%2F%2Fs&client_id=",
            "api-version=2019-08-01&resource=https%3A%2F%2Fs&resource=https%3A%2F%2Fother",
            "api-version=2019-08-01&resource=https%3A%2F%2Fs&client_id=a&client_id=b",
            "api-version=2019-08-01&api-version=2019-08-01&resource=https%3A%2F%2Fs",
            "api-version=2019-08-01&resource=https%3A%2F%2Fs%0Ax",
            many.as_str(),
        ] {
            let reply = parse_query(query).unwrap_err();
            assert_eq!(reply.status, 400, "{query}");
            let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
            assert_eq!(body["statusCode"], 400);
            assert!(body["message"].as_str().unwrap().len() > 10);
            assert!(body["correlationId"].is_string());
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let r = Reply::error(429, "x").with_retry_after(Duration::from_millis(1500));
        assert_eq!(r.retry_after, Some(2));
        let r = Reply::error(429, "x").with_retry_after(Duration::ZERO);
        assert_eq!(r.retry_after, Some(1));
    }

    #[test]
    fn a_token_answer_has_the_app_service_fields() {
        let reply = Reply::token(&TokenAnswer {
            token: Secret::new("t"),
            expires_on: 42,
            resource: "https://r".into(),
            client_id: Some("c".into()),
            from_cache: None,
        });
        let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(body["access_token"], "t");
        assert_eq!(body["expires_on"], "42");
        assert_eq!(body["resource"], "https://r");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["client_id"], "c");
    }

    #[test]
    fn an_unknown_client_id_is_left_out_not_sent_empty() {
        let reply = Reply::token(&TokenAnswer {
            token: Secret::new("t"),
            expires_on: 42,
            resource: "https://r".into(),
            client_id: None,
            from_cache: None,
        });
        let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        assert!(body.get("client_id").is_none(), "{body}");
    }
}
