//! The token endpoint's answer (docs/protocol.md §6.4): the `claims` request field, the token
//! response, and the classification of a refusal, shared by every credential of this crate.
//!
//! * Responses: `access_token` and `expires_in` (a number or a numeric string, a fraction
//!   dropped) are required, `refresh_in` is honoured when present; a leading UTF-8 byte order
//!   mark is skipped and a blank `refresh_in` is absent (docs/protocol.md §1.5). Anything else is an authentication failure whose
//!   message lists the response's field *names* only, never values.
//! * Refusals: see [`classify_refusal`]. The client secret, the assertions and any other
//!   secret of the request are removed from anything printed, in case a service echoes them.

use std::time::{Duration, SystemTime};

use identity_core::http::Response;
use identity_core::redact::Redactor;
use identity_core::wire;
use identity_core::{AccessToken, Error, ErrorKind, TokenRequestOptions};
use serde_json::{Map, Value};

/// The `claims` form field: the caller's claims challenge as given, merged with the CAE
/// client capability `{"access_token":{"xms_cc":{"values":["CP1"]}}}` when CAE is requested.
pub(crate) fn request_claims(
    name: &'static str,
    options: &TokenRequestOptions,
) -> Result<Option<String>, Error> {
    let challenge = options.claims_challenge();
    if !options.enable_cae {
        return Ok(challenge.map(str::to_owned));
    }
    let not_object = || {
        Error::invalid_argument(
            name,
            "the claims challenge is not a JSON object; pass the decoded claims from the WWW-Authenticate header",
        )
    };
    let mut root = match challenge {
        None => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            _ => return Err(not_object()),
        },
    };
    let access = root
        .entry("access_token")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(access) = access else {
        return Err(not_object());
    };
    let cp1 = Value::String("CP1".to_owned());
    match access.get_mut("xms_cc").and_then(|v| v.get_mut("values")) {
        Some(Value::Array(values)) => {
            if !values.contains(&cp1) {
                values.push(cp1);
            }
        }
        _ => {
            access.insert("xms_cc".to_owned(), serde_json::json!({ "values": [cp1] }));
        }
    }
    Ok(Some(Value::Object(root).to_string()))
}

/// Reads a token response. `secrets` are scrubbed from every message.
pub(crate) fn parse_response(
    name: &'static str,
    response: &Response,
    requested_at: SystemTime,
    secrets: &[&str],
) -> Result<AccessToken, Error> {
    let status = response.status().as_u16();
    let json = body_json(response);
    let secrets = redactor(secrets);
    if !response.status().is_success() {
        let (kind, message) = classify_refusal(status, json.as_ref(), &secrets);
        // A refusal whose retry could not be waited for (`Retry-After` past the cap or a
        // deadline) keeps its AADSTS text and says why it was not retried.
        let refusal = Err(Error::new(kind, name, message).with_status(status));
        return identity_core::http::RetryCut::explain(response, refusal);
    }
    let unexpected = |reason: &str| {
        let fields = match &json {
            Some(Value::Object(map)) => {
                let mut names: Vec<&str> = map.keys().map(String::as_str).collect();
                names.sort_unstable();
                format!("fields: {}", secrets.quote(&names.join(", "), 400))
            }
            Some(_) => "a JSON value that is not an object".to_owned(),
            None => format!("{} bytes that are not JSON", response.body().len()),
        };
        Error::authentication_failed(
            name,
            format!("unexpected response from Microsoft Entra ID (HTTP {status}): {reason}; the body held {fields}"),
        )
        .with_status(status)
    };
    let Some(Value::Object(map)) = &json else {
        return Err(unexpected("the body is not a JSON object"));
    };
    let token = match map.get("access_token") {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        _ => return Err(unexpected("access_token is missing")),
    };
    let Some(expires_in) = map.get("expires_in").and_then(seconds) else {
        return Err(unexpected("expires_in is missing or not a number"));
    };
    // Checked: `SystemTime + Duration` panics on overflow, and the value is the service's.
    let Some(expires_on) = requested_at.checked_add(Duration::from_secs(expires_in)) else {
        return Err(unexpected("expires_in is out of range"));
    };
    let mut access = AccessToken::new(token, expires_on);
    if let Some(refresh_in) = map.get("refresh_in").and_then(seconds) {
        if refresh_in > 0 && refresh_in < expires_in {
            access = access.with_refresh_on(requested_at + Duration::from_secs(refresh_in));
        }
    }
    Ok(access)
}

/// The JSON of a response body, a leading UTF-8 byte order mark skipped (docs/protocol.md
/// §1.5).
pub(crate) fn body_json(response: &Response) -> Option<Value> {
    serde_json::from_slice(wire::strip_bom(response.body())).ok()
}

/// Whole seconds from a JSON number or a numeric string, a fraction dropped in both
/// (docs/protocol.md §1.5); a blank string is no value.
pub(crate) fn seconds(value: &Value) -> Option<u64> {
    wire::seconds_from_json(value)
}

/// Classifies the token endpoint's refusal: the one table for every credential that posts to
/// `…/oauth2/v2.0/token` (service principals, on-behalf-of, the user flows). Every row is an
/// [`ErrorKind::AuthenticationFailed`] carrying the HTTP status (so 429 and 5xx count as
/// transient); text from the service is quoted through `secrets`' [`Redactor`] (secrets
/// removed, control characters blanked, bounded).
///
/// | answer | message |
/// |---|---|
/// | JSON with `error` and/or `error_description` (its `AADSTS` code included), any status | `Microsoft Entra ID refused the token request (HTTP <status>, <error>): <description>`, then `; Trace ID: …` and `; Correlation ID: …` unless the description holds them |
/// | no OAuth error, 5xx (the pipeline has retried) | `Microsoft Entra ID was unavailable (HTTP <status>, still after retries); try again later` |
/// | no OAuth error, 429 (the pipeline has retried) | `Microsoft Entra ID throttled the request (HTTP 429, still after retries); try again later` |
/// | no OAuth error, 400 or 404 | `Microsoft Entra ID answered HTTP <status> without an OAuth error; check the authority host and tenant id` |
/// | no OAuth error, any other status | `Microsoft Entra ID answered HTTP <status> without an OAuth error; a proxy or gateway between may have answered` |
pub(crate) fn classify_refusal(
    status: u16,
    json: Option<&Value>,
    secrets: &Redactor,
) -> (ErrorKind, String) {
    let text = |key: &str| {
        json.and_then(|j| j.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
    };
    let message = match (text("error"), text("error_description")) {
        (None, None) => match status {
            500.. => format!(
                "Microsoft Entra ID was unavailable (HTTP {status}, still after retries); try again later"
            ),
            429 => "Microsoft Entra ID throttled the request (HTTP 429, still after retries); try again later".to_owned(),
            400 | 404 => format!(
                "Microsoft Entra ID answered HTTP {status} without an OAuth error; check the authority host and tenant id"
            ),
            _ => format!(
                "Microsoft Entra ID answered HTTP {status} without an OAuth error; a proxy or gateway between may have answered"
            ),
        },
        (error, description) => {
            let mut m = format!("Microsoft Entra ID refused the token request (HTTP {status}");
            if let Some(error) = error {
                m.push_str(", ");
                m.push_str(&secrets.quote(error, 100));
            }
            m.push(')');
            if let Some(description) = description {
                m.push_str(": ");
                m.push_str(&secrets.quote(description, 2000));
            }
            for (key, label) in [
                ("trace_id", "Trace ID"),
                ("correlation_id", "Correlation ID"),
            ] {
                if let Some(id) = text(key) {
                    let id = secrets.quote(id, 100);
                    if !m.contains(&id) {
                        m.push_str(&format!("; {label}: {id}"));
                    }
                }
            }
            m
        }
    };
    (ErrorKind::AuthenticationFailed, message)
}

/// A redactor of `secrets`.
pub(crate) fn redactor(secrets: &[&str]) -> Redactor {
    secrets.iter().fold(Redactor::new(), Redactor::with)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn response(status: u16, body: &str) -> Response {
        http::Response::builder()
            .status(status)
            .body(Bytes::from(body.to_owned()))
            .unwrap()
    }

    const T0: SystemTime = SystemTime::UNIX_EPOCH;

    #[test]
    fn a_token_response_sets_expiry_and_the_service_refresh_hint() {
        let t = parse_response(
            "X",
            &response(
                200,
                r#"{"access_token":"AT","expires_in":"3600","refresh_in":1800}"#,
            ),
            T0,
            &[],
        )
        .unwrap();
        assert_eq!(t.token.secret(), "AT");
        assert_eq!(t.expires_on, T0 + Duration::from_secs(3600));
        assert_eq!(t.refresh_on, Some(T0 + Duration::from_secs(1800)));
        let t = parse_response(
            "X",
            &response(200, r#"{"access_token":"AT","expires_in":86400}"#),
            T0,
            &[],
        )
        .unwrap();
        assert_eq!(t.refresh_on, None);
    }

    #[test]
    fn a_bom_a_fractional_string_and_a_blank_refresh_in_are_read_as_the_rule_says() {
        for (body, expires_in, refresh_in) in [
            (
                "\u{feff}{\"access_token\":\"AT\",\"expires_in\":3600}",
                3600,
                None,
            ),
            (r#"{"access_token":"AT","expires_in":"3599.0"}"#, 3599, None),
            (r#"{"access_token":"AT","expires_in":3599.5}"#, 3599, None),
            (
                r#"{"access_token":"AT","expires_in":3600,"refresh_in":""}"#,
                3600,
                None,
            ),
            (
                r#"{"access_token":"AT","expires_in":3600,"refresh_in":"1800.5"}"#,
                3600,
                Some(1800),
            ),
        ] {
            let t = parse_response("X", &response(200, body), T0, &[]).unwrap();
            assert_eq!(t.expires_on, T0 + Duration::from_secs(expires_in), "{body}");
            assert_eq!(
                t.refresh_on,
                refresh_in.map(|s| T0 + Duration::from_secs(s)),
                "{body}"
            );
        }
        for body in [
            r#"{"access_token":"AT","expires_in":""}"#,
            r#"{"access_token":"AT","expires_in":"-1"}"#,
        ] {
            let err = parse_response("X", &response(200, body), T0, &[]).unwrap_err();
            assert!(err.message().contains("expires_in"), "{err}");
        }
    }

    #[test]
    fn an_unexpected_body_is_refused_without_echoing_values() {
        for body in [
            r#"{"access_token":"planted-token-value"}"#,
            r#"{"token":"planted-token-value","expires_in":10}"#,
            "planted-token-value",
            r#"["planted-token-value"]"#,
        ] {
            let err = parse_response("X", &response(200, body), T0, &[]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
            let text = format!("{err} {err:?}");
            assert!(!text.contains("planted"), "{text}");
            assert!(text.contains("unexpected response"), "{text}");
        }
    }

    #[test]
    fn an_entra_error_keeps_the_description_and_correlation_id_and_scrubs_secrets() {
        let body = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided: planted-secret-value\r\nTrace ID: t1","error_codes":[7000215],"trace_id":"t1","correlation_id":"c1"}"#;
        let err =
            parse_response("X", &response(401, body), T0, &["planted-secret-value"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
        assert_eq!(err.status(), Some(401));
        let text = err.to_string();
        assert!(text.contains("AADSTS7000215"), "{text}");
        assert!(text.contains("invalid_client"), "{text}");
        assert!(text.contains("Correlation ID: c1"), "{text}");
        assert!(!text.contains("planted"), "{text}");
        assert!(!text.contains('\n'), "{text}");
        assert_eq!(text.matches("t1").count(), 1, "{text}");
    }

    #[test]
    fn a_server_error_without_oauth_json_names_the_status() {
        let err = parse_response("X", &response(503, "<html>planted</html>"), T0, &[]).unwrap_err();
        assert!(err.to_string().contains("unavailable (HTTP 503"), "{err}");
        assert!(!err.to_string().contains("planted"));
        assert!(err.is_transient());
    }

    #[test]
    fn the_authority_and_tenant_advice_is_given_only_where_they_can_be_the_cause() {
        let advice = "check the authority host and tenant id";
        for status in [400, 404] {
            let (_, m) = classify_refusal(status, None, &Redactor::new());
            assert!(m.contains(advice), "{status}: {m}");
        }
        for status in [401, 403, 405, 302, 429, 500, 502, 503, 504] {
            let (_, m) = classify_refusal(status, None, &Redactor::new());
            assert!(!m.contains(advice), "{status}: {m}");
            assert!(m.contains(&format!("HTTP {status}")), "{status}: {m}");
        }
        let (_, m) = classify_refusal(429, None, &Redactor::new());
        assert!(
            m.contains("throttled") && m.contains("try again later"),
            "{m}"
        );
        let (_, m) = classify_refusal(500, None, &Redactor::new());
        assert!(
            m.contains("unavailable") && m.contains("try again later"),
            "{m}"
        );
    }

    #[test]
    fn cae_merges_the_cp1_capability_into_caller_claims() {
        let options = TokenRequestOptions::default()
            .claims(r#"{"access_token":{"nbf":{"essential":true,"value":"1"}}}"#)
            .enable_cae(true);
        let merged: Value =
            serde_json::from_str(&request_claims("X", &options).unwrap().unwrap()).unwrap();
        assert_eq!(merged["access_token"]["nbf"]["value"], "1");
        assert_eq!(
            merged["access_token"]["xms_cc"]["values"],
            serde_json::json!(["CP1"])
        );

        let cae_only = request_claims("X", &TokenRequestOptions::default().enable_cae(true))
            .unwrap()
            .unwrap();
        assert_eq!(
            cae_only,
            r#"{"access_token":{"xms_cc":{"values":["CP1"]}}}"#
        );

        let plain =
            request_claims("X", &TokenRequestOptions::default().claims("{\"a\":1}")).unwrap();
        assert_eq!(plain.as_deref(), Some("{\"a\":1}"));
        assert_eq!(
            request_claims("X", &TokenRequestOptions::default()).unwrap(),
            None
        );

        let err = request_claims(
            "X",
            &TokenRequestOptions::default()
                .claims("not json")
                .enable_cae(true),
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn quoting_scrubs_secrets_even_when_cut_by_the_limit() {
        let s = redactor(&["planted-secret-value"]).quote("abc planted-secret-value", 16);
        assert!(!s.contains("planted-s"), "{s}");
    }
}
