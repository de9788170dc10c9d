//! Retry hints (`Retry-After`, `retry-after-ms`, `x-ms-retry-after-ms`) from hostile or broken
//! endpoints: never a panic, never a wait past the call's deadline, on a managed-identity and
//! an Entra credential alike; and a property test over every hint header.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions fail loudly on purpose"
)]

use std::time::{Duration, SystemTime};

use identity_chain::{
    ClientSecretCredential, Env, Error, ErrorKind, ManagedIdentityCredential, TokenCredential,
    TokenRequestOptions,
};
use identity_core::http::HyperClient;
use identity_core::retry::{MAX_RETRY_HINT, RetryPolicy, requested_wait};
use identity_core::test_util::RecordingSleeper;
use proptest::prelude::*;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const GUARD: Duration = Duration::from_secs(20);
const SCOPE: &str = "https://vault.azure.net/.default";
const HEADER_SECRET: &str = "planted-hint-header-5b1e";
const CLIENT_SECRET: &str = "planted-hint-client-secret-77c0";

/// The inputs of the report: absurd hints in every header.
const ABSURD: [(&str, &str); 6] = [
    ("retry-after-ms", "1e30"),
    ("x-ms-retry-after-ms", "1e30"),
    ("retry-after-ms", "340282366920938463463374607431768211456"),
    ("x-ms-retry-after-ms", "1e400"),
    ("retry-after", "1e30"),
    ("retry-after", "18446744073709551616"),
];

/// A 429 with `header: value` first, then a token that must never be asked for.
async fn throttling_server(header: &str, value: &str, token: serde_json::Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header(header, value))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header(header, value))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_json(token))
        .mount(&server)
        .await;
    server
}

fn app_service(server: &MockServer, sleeper: &RecordingSleeper) -> ManagedIdentityCredential {
    ManagedIdentityCredential::builder()
        .runtime(
            identity_core::Runtime::with_env(Env::from_pairs([
                ("IDENTITY_ENDPOINT", format!("{}/msi/token", server.uri())),
                ("IDENTITY_HEADER", HEADER_SECRET.to_owned()),
            ]))
            .sleeper(sleeper.shared()),
        )
        .build()
        .unwrap()
}

fn entra(server: &MockServer, sleeper: &RecordingSleeper) -> ClientSecretCredential {
    ClientSecretCredential::builder()
        .runtime(
            identity_core::Runtime::with_env(Env::empty())
                .sleeper(sleeper.shared())
                .http_client(HyperClient::shared()),
        )
        .tenant_id("tenant")
        .client_id("client")
        .client_secret(CLIENT_SECRET)
        .authority_host(server.uri())
        .allow_insecure_loopback_authority(true)
        .build()
        .unwrap()
}

fn assert_ends_at_once(error: &Error, requests: usize, sleeper: &RecordingSleeper, what: &str) {
    let text = identity_chain::display_chain(error);
    // The 429 itself, as the credential's table classifies it, and why it was not retried.
    assert_eq!(
        error.kind(),
        ErrorKind::AuthenticationFailed,
        "{what}: {text}"
    );
    assert_eq!(error.status(), Some(429), "{what}: {text}");
    let top = error.to_string();
    assert!(
        top.contains("HTTP 429")
            && top.contains("the service asked to retry after")
            && top.contains("which exceeds 60 s, the longest wait this credential honours")
            && top.contains("-authentication-failed)"),
        "{what}: {top}"
    );
    assert!(!top.contains("transport-error"), "{what}: {top}");
    assert_eq!(requests, 1, "{what}: one request, no retry");
    assert!(sleeper.slept().is_empty(), "{what}: no sleep");
    for secret in [HEADER_SECRET, CLIENT_SECRET] {
        assert!(!text.contains(secret), "{what}: {text}");
    }
}

/// Entra's 429 with a long `Retry-After` keeps its AADSTS text (secrets redacted) and gives the
/// service's own number.
#[tokio::test]
async fn an_entra_429_asking_for_600_s_keeps_its_aadsts_text() {
    let server = MockServer::start().await;
    let body = serde_json::json!({
        "error": "temporarily_unavailable",
        "error_description": format!("AADSTS50196: The server terminated an operation because it encountered a client request loop ({CLIENT_SECRET})."),
    });
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "600")
                .set_body_json(body),
        )
        .mount(&server)
        .await;
    let sleeper = RecordingSleeper::new();
    let error = tokio::time::timeout(
        GUARD,
        entra(&server, &sleeper).get_token(&[SCOPE], &TokenRequestOptions::default()),
    )
    .await
    .expect("ends at once")
    .unwrap_err();
    let text = error.to_string();
    assert_eq!(error.kind(), ErrorKind::AuthenticationFailed, "{text}");
    assert_eq!(error.status(), Some(429));
    assert!(
        text.contains("AADSTS50196")
            && text.contains("retry after 600 s, which exceeds 60 s")
            && text.contains("clientsecretcredential-authentication-failed"),
        "{text}"
    );
    assert!(
        !identity_chain::display_chain(&error).contains(CLIENT_SECRET),
        "{text}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    assert!(sleeper.slept().is_empty());
}

#[tokio::test]
async fn an_absurd_hint_at_an_app_service_endpoint_ends_the_call_at_once_and_the_next_call_works() {
    for (header, value) in ABSURD {
        let server = throttling_server(
            header,
            value,
            serde_json::json!({"access_token": "AT", "expires_on": "4000000000", "resource": "https://vault.azure.net", "token_type": "Bearer"}),
        )
        .await;
        let sleeper = RecordingSleeper::new();
        let credential = app_service(&server, &sleeper);
        let options = TokenRequestOptions::default();
        let call = credential.get_token(&[SCOPE], &options);
        let error = tokio::time::timeout(GUARD, call)
            .await
            .expect("ends at once")
            .unwrap_err();
        let requests = server.received_requests().await.unwrap().len();
        assert_ends_at_once(&error, requests, &sleeper, &format!("{header}: {value}"));
        // Nothing is wedged: the next call asks again and gets the token.
        let token = tokio::time::timeout(
            GUARD,
            credential.get_token(&[SCOPE], &TokenRequestOptions::default()),
        )
        .await
        .expect("bounded")
        .unwrap();
        assert_eq!(token.token.secret(), "AT");
    }
}

#[tokio::test]
async fn an_absurd_hint_at_an_entra_endpoint_ends_the_call_at_once_and_the_next_call_works() {
    for (header, value) in ABSURD {
        let server = throttling_server(
            header,
            value,
            serde_json::json!({"access_token": "AT", "expires_in": 3600, "token_type": "Bearer"}),
        )
        .await;
        let sleeper = RecordingSleeper::new();
        let credential = entra(&server, &sleeper);
        let options = TokenRequestOptions::default();
        let call = credential.get_token(&[SCOPE], &options);
        let error = tokio::time::timeout(GUARD, call)
            .await
            .expect("ends at once")
            .unwrap_err();
        let requests = server.received_requests().await.unwrap().len();
        assert_ends_at_once(&error, requests, &sleeper, &format!("{header}: {value}"));
        let token = tokio::time::timeout(
            GUARD,
            credential.get_token(&[SCOPE], &TokenRequestOptions::default()),
        )
        .await
        .expect("bounded")
        .unwrap();
        assert_eq!(token.token.secret(), "AT");
    }
}

#[tokio::test]
async fn a_hint_that_fits_the_deadline_is_honoured_by_entra() {
    let server = throttling_server(
        "retry-after-ms",
        "2500",
        serde_json::json!({"access_token": "AT", "expires_in": 3600, "token_type": "Bearer"}),
    )
    .await;
    let sleeper = RecordingSleeper::new();
    let token = entra(&server, &sleeper)
        .get_token(&[SCOPE], &TokenRequestOptions::default())
        .await
        .unwrap();
    assert_eq!(token.token.secret(), "AT");
    assert_eq!(sleeper.slept(), [Duration::from_millis(2500)]);
}

/// Numbers in the shapes servers send, and a few they should not.
fn hint_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        any::<f64>().prop_map(|f| format!("{f:e}")),
        "[0-9]{1,400}",
        "-?[0-9]{0,40}(\\.[0-9]{0,40})?([eE][+-]?[0-9]{1,5})?",
        "(NaN|nan|inf|-inf|infinity|\\+inf|1e|e5|\\.|-0|0x1F)",
        "[A-Za-z]{3}, [0-9]{2} [A-Za-z]{3} [0-9]{1,12} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT",
        "\\PC{0,40}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Every hint header, any value: reading it never panics, a wait is never longer than
    /// the saturation point, and the policy's wait never longer than its cap.
    #[test]
    fn every_retry_hint_header_parses_without_panicking_and_within_the_caps(
        header in prop_oneof![Just("retry-after"), Just("retry-after-ms"), Just("x-ms-retry-after-ms")],
        value in hint_value(),
        now_secs in 0u64..=253_402_300_799,
    ) {
        let Ok(value) = http::HeaderValue::from_str(&value) else { return Ok(()); };
        let mut headers = http::HeaderMap::new();
        headers.insert(header, value);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(now_secs);
        for policy in [RetryPolicy::default(), identity_msi::imds::retry_policy(), RetryPolicy::none().max_retry_after(Duration::MAX)] {
            if let Some(wait) = policy.retry_after(&headers, now) {
                prop_assert!(wait <= MAX_RETRY_HINT);
            }
            let _ = policy.should_retry(429, &headers);
        }
        if let Some(wait) = requested_wait(&headers, now) {
            prop_assert!(wait <= MAX_RETRY_HINT);
            prop_assert!(RetryPolicy::default().retry_after(&headers, now).unwrap() <= Duration::from_secs(60));
        }
    }
}
