//! App Service, Azure Functions and Container Apps (docs/protocol.md §2.2).
//!
//! * Host: the platform's local identity endpoint (usually `http://localhost:<port>/msi/token`).
//! * Environment: [`IDENTITY_ENDPOINT`] (full URL) and [`IDENTITY_HEADER`] (a secret), both
//!   non-empty, and no `IDENTITY_SERVER_THUMBPRINT` (that would be Service Fabric).
//! * Request: `GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=<resource>[&<id>]`
//!   with `X-IDENTITY-HEADER: <IDENTITY_HEADER>` and `Metadata: true` (the latter is what
//!   Azure Automation needs, and harmless elsewhere; docs/protocol.md §9 #1).
//! * Identities: system-assigned; user-assigned by `client_id`, `object_id` or `mi_res_id`
//!   (the documented name for a resource id, docs/protocol.md §2.9).
//! * Retries: the default policy (3 status retries on 408, 429, 5xx…; `Retry-After`).
//! * Errors: a 400 saying the identity cannot be loaded (App Service's `Unable to load the
//!   proper Managed Identity.`: the requested identity is not assigned to the app, or the app
//!   has no system-assigned identity) is *unavailable*, naming the identity, so a chain moves
//!   on, as after IMDS's 400 for the same condition (docs/protocol.md §2.2, §2.8); any other
//!   error status (after retries) is an authentication failure carrying the service's
//!   message; a missing or wrong `X-IDENTITY-HEADER` typically shows as 400 or 401.
//!   Some endpoints quote the header they received in that message: the header value is
//!   removed from it (verbatim or encoded) before it is shown or logged, as for every source
//!   (the flow in `credential.rs`).

use identity_core::http::Request;
use identity_core::{Error, Secret};

use crate::NAME;

use crate::detect::{Detected, ManagedIdentitySource, Settings};
pub use crate::detect::{IDENTITY_ENDPOINT, IDENTITY_HEADER};
use crate::source::{
    Answer, Call, Source, endpoint, get_request, secret_header, standard_classify,
};
use crate::wire::{self, TokenResponse};

/// The api-version sent.
pub const API_VERSION: &str = "2019-08-01";

const REMEDY: &str = "check that the app's managed identity is enabled and that IDENTITY_ENDPOINT and IDENTITY_HEADER come from the platform";

/// The start of App Service's message when the identity asked for cannot be loaded (also what
/// identity-sidecar answers when IMDS says "Identity not found").
const IDENTITY_NOT_LOADED: &str = "Unable to load the proper Managed Identity";

#[derive(Debug)]
pub(crate) struct AppService {
    endpoint: Result<String, Error>,
    secret: Secret,
}

/// Detector: `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` non-empty.
pub(crate) fn detect(settings: &Settings) -> Option<Detected> {
    let url = settings.endpoint_or(settings.env.non_empty(IDENTITY_ENDPOINT)?);
    let secret = settings.env.non_empty(IDENTITY_HEADER)?;
    Some(Ok(Box::new(AppService {
        endpoint: endpoint(url, IDENTITY_ENDPOINT, ManagedIdentitySource::AppService),
        secret: Secret::new(secret),
    })))
}

impl Source for AppService {
    fn kind(&self) -> ManagedIdentitySource {
        ManagedIdentitySource::AppService
    }

    fn remedy(&self) -> &'static str {
        REMEDY
    }

    fn request(&self, call: &Call<'_>) -> Result<Request, Error> {
        let header = secret_header(self.secret.secret(), IDENTITY_HEADER, self.kind())?;
        let headers = vec![
            ("X-IDENTITY-HEADER", header),
            ("Metadata", http::HeaderValue::from_static("true")),
        ];
        let query = call.query(API_VERSION, ["client_id", "object_id", "mi_res_id"]);
        get_request(&self.endpoint, &query, headers, self.kind())
    }

    /// A 400 saying the identity cannot be loaded is unavailable, naming the identity;
    /// otherwise the standard table ([`standard_classify`]), where a missing or wrong
    /// `X-IDENTITY-HEADER` typically shows as an authentication failure with status 400 or
    /// 401.
    fn classify(&self, answer: Answer<'_>, call: &Call<'_>) -> Result<TokenResponse, Error> {
        if let Some(text) = identity_not_loaded(&answer) {
            // App Service says only its fixed sentence; an endpoint that explains more
            // (identity-sidecar relays IMDS's reason) is quoted as it is.
            let explained = text.len() > IDENTITY_NOT_LOADED.len() + 1;
            let what = if explained {
                text
            } else if call.id.is_user_assigned() {
                format!(
                    "the requested {} identity is not assigned to this app; check the id and the app's identities ({text})",
                    call.id.kind_name()
                )
            } else {
                format!(
                    "the app has no system-assigned identity; enable it, or request a user-assigned identity ({text})"
                )
            };
            return Err(Error::unavailable(
                NAME,
                format!("the App Service managed identity endpoint answered HTTP 400: {what}"),
            )
            .with_status(400));
        }
        standard_classify(self, answer)
    }
}

/// The service's message of a 400 that says the identity cannot be loaded.
fn identity_not_loaded(answer: &Answer<'_>) -> Option<String> {
    let Answer::Response { response, .. } = answer else {
        return None;
    };
    if response.status() != http::StatusCode::BAD_REQUEST {
        return None;
    }
    let text = wire::service_message(response)?;
    text.to_ascii_lowercase()
        .contains(&IDENTITY_NOT_LOADED.to_ascii_lowercase())
        .then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn env(server: &MockServer) -> identity_core::Env {
        identity_core::Env::from_pairs([
            (IDENTITY_ENDPOINT, format!("{}/msi/token", server.uri())),
            (IDENTITY_HEADER, SECRET.to_owned()),
        ])
    }

    #[tokio::test]
    async fn system_assigned_request_has_the_exact_shape() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/msi/token"))
            .and(query_param("api-version", "2019-08-01"))
            .and(query_param("resource", "https://vault.azure.net"))
            .and(query_param_is_missing("client_id"))
            .and(query_param_is_missing("object_id"))
            .and(query_param_is_missing("mi_res_id"))
            .and(header("X-IDENTITY-HEADER", SECRET))
            .and(header("Metadata", "true"))
            .respond_with(token_on(CLOCK_NOW + 86_400))
            .expect(1)
            .mount(&server)
            .await;
        let h = harness(env(&server), ManagedIdentityId::SystemAssigned);
        assert_eq!(h.credential.source(), ManagedIdentitySource::AppService);
        let token = h.get().await.unwrap();
        assert_eq!(token.token.secret(), "AT");
        assert_eq!(token.expires_on, at(CLOCK_NOW + 86_400));
        assert_eq!(token.refresh_on, Some(at(CLOCK_NOW + 43_200)));
    }

    #[tokio::test]
    async fn user_assigned_selectors_use_the_documented_parameter_names() {
        let names = ["client_id", "object_id", "mi_res_id"];
        assert_selector_names(env, "/msi/token", names, ("X-IDENTITY-HEADER", SECRET)).await;
    }

    #[tokio::test]
    async fn an_echoed_identity_header_is_removed_from_errors_and_logs() {
        let e = assert_echoed_header_removed(env, "X-IDENTITY-HEADER").await;
        assert_eq!(e.status(), Some(400));
    }

    #[tokio::test]
    async fn an_identity_that_cannot_be_loaded_is_unavailable_after_one_request() {
        let server = answering("GET", ResponseTemplate::new(400).set_body_string(
                r#"{"statusCode":400,"message":"Unable to load the proper Managed Identity.","correlationId":"x"}"#,
            ), 1).await;
        let h = harness(env(&server), ManagedIdentityId::ClientId("cid-1".into()));
        let e = h.get().await.unwrap_err();
        assert_eq!(e.kind(), identity_core::ErrorKind::Unavailable);
        assert_eq!(e.status(), Some(400));
        let text = e.to_string();
        assert!(
            text.contains("user-assigned (client id) identity is not assigned to this app")
                && text.contains("Unable to load the proper Managed Identity"),
            "{text}"
        );
        assert_eq!(text.matches("TROUBLESHOOTING").count(), 1, "{text}");
        assert_no_secret(&e);
    }

    #[tokio::test]
    async fn a_400_is_not_retried_and_carries_the_service_message() {
        let server = answering("GET", ResponseTemplate::new(400).set_body_string(
                r#"{"statusCode":400,"message":"The resource parameter is not valid.","correlationId":"x"}"#,
            ), 1).await;
        let h = harness(env(&server), ManagedIdentityId::SystemAssigned);
        let e = h.get().await.unwrap_err();
        assert_eq!(e.kind(), identity_core::ErrorKind::AuthenticationFailed);
        assert_eq!(e.status(), Some(400));
        let text = e.to_string();
        assert!(
            text.contains("The resource parameter is not valid"),
            "{text}"
        );
        assert!(
            text.contains("App Service") && text.contains("IDENTITY_HEADER"),
            "{text}"
        );
        assert_no_secret(&e);
    }

    #[tokio::test]
    async fn a_wrong_secret_header_is_an_authentication_failure() {
        let server = refusing_the_identity_header().await;
        let e = system_assigned_failure(env(&server)).await;
        assert_eq!(e.kind(), identity_core::ErrorKind::AuthenticationFailed);
        assert_no_secret(&e);
    }

    #[tokio::test]
    async fn a_500_is_retried_with_the_default_schedule() {
        let server = failing_then_token(ResponseTemplate::new(500), 3).await;
        let h = harness(env(&server), ManagedIdentityId::SystemAssigned);
        h.get().await.unwrap();
        assert_eq!(h.sleeper.slept(), secs(&[1.6, 3.2]));
    }

    #[tokio::test]
    async fn a_500_forever_gives_four_attempts_then_an_error() {
        let server = answering("GET", ResponseTemplate::new(500), 4).await;
        let h = harness(env(&server), ManagedIdentityId::SystemAssigned);
        let e = h.get().await.unwrap_err();
        assert_eq!(e.status(), Some(500));
        assert_no_secret(&e);
    }

    #[tokio::test]
    async fn a_429_with_retry_after_waits_as_told() {
        let server = failing_then_token(
            ResponseTemplate::new(429).insert_header("Retry-After", "3"),
            2,
        )
        .await;
        let h = harness(env(&server), ManagedIdentityId::SystemAssigned);
        h.get().await.unwrap();
        assert_eq!(h.sleeper.slept(), secs(&[3.0, 3.0]));
    }

    /// The field report: `429` with `Retry-After: 600`, past the 60 s the default policy
    /// honours. No wait, no retry: the answer itself, as the table classifies it, with the
    /// server's own number and the limit it exceeds.
    #[tokio::test]
    async fn a_429_asking_for_600_s_is_reported_at_once_with_its_status_and_message() {
        let server = answering(
            "GET",
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "600")
                .set_body_string(r#"{"message":"slow down"}"#),
            1,
        )
        .await;
        let h = harness(env(&server), ManagedIdentityId::SystemAssigned);
        let e = h.get().await.unwrap_err();
        assert!(h.sleeper.slept().is_empty(), "not waited for");
        assert_eq!(e.kind(), identity_core::ErrorKind::AuthenticationFailed);
        assert_eq!(e.status(), Some(429));
        let text = e.to_string();
        for part in [
            "answered HTTP 429 (slow down)",
            "asked to retry after 600 s, which exceeds 60 s, the longest wait",
            "TROUBLESHOOTING.md#managedidentitycredential-authentication-failed",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        assert!(
            !text.contains("transport-error") && !text.contains("60000 ms"),
            "{text}"
        );
        assert!(
            !text.contains("raise the deadline"),
            "advice that cannot help: {text}"
        );
        assert_no_secret(&e);
    }

    /// A 60 s wait equals the default 60 s deadline, so it cannot be honoured with the
    /// defaults; the clause says a longer deadline would let it wait, and one does.
    #[tokio::test]
    async fn a_60_s_retry_after_needs_a_longer_deadline_and_gets_one() {
        let busy = ResponseTemplate::new(503)
            .insert_header("Retry-After", "60")
            .set_body_string(r#"{"message":"busy"}"#);
        let server = answering("GET", busy.clone(), 1).await;
        let h = harness(env(&server), ManagedIdentityId::SystemAssigned);
        let e = h.get().await.unwrap_err();
        assert!(h.sleeper.slept().is_empty());
        let text = e.to_string();
        assert!(
            text.contains("answered HTTP 503 (busy)")
                && text.contains("retry after 60 s, which exceeds the")
                && text.contains("of this call's 60 s deadline")
                && text.contains("a call deadline (`Limits::deadline`) over 60 s"),
            "{text}"
        );
        let server = failing_then_token(busy, 1).await;
        let sleeper = identity_core::test_util::RecordingSleeper::new();
        let longer =
            identity_core::http::Limits::DEFAULT.deadline(std::time::Duration::from_secs(90));
        let runtime = identity_core::Runtime::with_env(env(&server))
            .sleeper(sleeper.shared())
            .limits(longer);
        let h = harness_with(env(&server), ManagedIdentityId::SystemAssigned, |b| {
            b.runtime(runtime)
        });
        h.get().await.unwrap();
        assert_eq!(sleeper.slept(), secs(&[60.0]));
    }

    #[tokio::test]
    async fn malformed_json_and_missing_fields_are_authentication_failures() {
        for body in [
            "{not json",
            r#"{"expires_on":"1"}"#,
            r#"{"access_token":"planted-token-value"}"#,
        ] {
            let server = MockServer::start().await;
            Mock::given(method("GET"))
                .respond_with(ResponseTemplate::new(200).set_body_string(body))
                .mount(&server)
                .await;
            let e = system_assigned_failure(env(&server)).await;
            assert_eq!(
                e.kind(),
                identity_core::ErrorKind::AuthenticationFailed,
                "{body}"
            );
            assert!(e.to_string().contains("App Service"));
            assert!(!format!("{e:?}").contains("planted"));
            assert_no_secret(&e);
        }
    }

    #[tokio::test]
    async fn a_five_megabyte_body_is_rejected_by_the_cap() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(5 * 1024 * 1024)))
            .mount(&server)
            .await;
        let e = system_assigned_failure(env(&server)).await;
        assert_eq!(e.kind(), identity_core::ErrorKind::Transport);
        assert!(identity_core::display_chain(&e).contains("limit"), "{e}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_ends_within_the_timeout() {
        // Accepts connections and never writes a byte.
        let silent = identity_core::test_util::TestServer::always(
            identity_core::test_util::Reply::silence(),
        )
        .await;
        let addr = silent.addr();
        let env = identity_core::Env::from_pairs([
            (IDENTITY_ENDPOINT, format!("http://{addr}/msi/token")),
            (IDENTITY_HEADER, SECRET.to_owned()),
        ]);
        let h = harness_with(env, ManagedIdentityId::SystemAssigned, |b| {
            b.timeout(std::time::Duration::from_millis(200))
        });
        let result = tokio::time::timeout(std::time::Duration::from_secs(20), h.get()).await;
        let e = result
            .expect("bounded by the per-attempt timeout")
            .unwrap_err();
        assert_eq!(e.kind(), identity_core::ErrorKind::Transport);
        assert!(
            identity_core::display_chain(&e).contains("timed out"),
            "{e}"
        );
    }

    #[test]
    fn the_credential_debug_never_shows_the_identity_header() {
        let env = identity_core::Env::from_pairs([
            (IDENTITY_ENDPOINT, "http://127.0.0.1:1/x"),
            (IDENTITY_HEADER, SECRET),
        ]);
        let h = harness(env, ManagedIdentityId::SystemAssigned);
        assert!(!format!("{:?}", h.credential).contains(SECRET));
    }
}
