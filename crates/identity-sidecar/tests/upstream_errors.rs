//! Upstream failures end to end: the workspace's App Service source (what every client of the
//! sidecar is) against a sidecar in front of an IMDS emulator that refuses, fails or answers
//! oddly. Each upstream condition reaches the client as it would on App Service: the status,
//! whether the client retries, the error kind a chain acts on, and one message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions fail loudly on purpose"
)]

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use identity_chain::{ChainedTokenCredential, ErrorKind, ManagedIdentityCredential};
use identity_core::{TokenCredential, TokenRequestOptions};
use support::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const STORAGE: &str = "https://storage.azure.com/.default";
const NOT_ASSIGNED: &str = "22222222-2222-2222-2222-222222222222";

/// An IMDS emulator that answers every token request with `status` and `body`.
async fn imds_answering(status: u16, body: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/metadata/identity/oauth2/token"))
        .respond_with(
            ResponseTemplate::new(status)
                .insert_header("content-type", "application/json; charset=utf-8")
                .set_body_string(body.to_owned()),
        )
        .mount(&server)
        .await;
    server
}

/// The field report's IMDS: `400 {"error":"invalid_request","error_description":"Identity
/// not found"}` for every request; and a sidecar in front of it.
async fn identity_not_found() -> (MockServer, identity_sidecar::Sidecar) {
    let imds = imds_answering(
        400,
        r#"{"error":"invalid_request","error_description":"Identity not found"}"#,
    )
    .await;
    let sidecar = sidecar(&imds_url(&imds), &[]).await;
    (imds, sidecar)
}

async fn upstream_requests(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

fn client(sidecar: &identity_sidecar::Sidecar, client_id: &str) -> ManagedIdentityCredential {
    ManagedIdentityCredential::builder()
        .runtime(identity_core::Runtime::with_env(sidecar.app_service_env()))
        .client_id(client_id)
        .build()
        .unwrap()
}

async fn get(
    credential: &dyn TokenCredential,
) -> Result<identity_chain::AccessToken, identity_chain::Error> {
    tokio::time::timeout(
        Duration::from_secs(60),
        credential.get_token(&[STORAGE], &TokenRequestOptions::default()),
    )
    .await
    .expect("bounded")
}

/// The field report: IMDS answers `400 {"error":"invalid_request","error_description":"Identity
/// not found"}` for a user-assigned identity that is not assigned to the VM.
#[tokio::test]
async fn an_identity_not_assigned_is_one_upstream_call_and_an_unavailable_error() {
    let (imds, sidecar) = identity_not_found().await;
    let credential = client(&sidecar, NOT_ASSIGNED);

    let e = get(&credential).await.unwrap_err();
    // One request to the sidecar (400: not retried by the client), one to IMDS.
    assert_eq!(sidecar.metrics().answers(400), 1);
    assert_eq!(sidecar.metrics().answers(500), 0);
    assert_eq!(upstream_requests(&imds).await, 1);
    // The kind lets a chain move on, as with IMDS directly.
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert_eq!(e.status(), Some(400));
    // One clear message: the identity, IMDS's own words, one pointer, no nesting.
    let text = e.to_string();
    assert!(
        text.contains("user-assigned (client id) identity has not been assigned"),
        "{text}"
    );
    assert!(text.contains("Identity not found"), "{text}");
    assert_eq!(text.matches("TROUBLESHOOTING").count(), 1, "{text}");
    assert_eq!(
        text.matches("ManagedIdentityCredential").count(),
        1,
        "{text}"
    );
    assert!(!text.contains(PLANTED_HEADER), "{text}");

    // A misconfigured caller asking again does not reach IMDS: the refusal is replayed.
    for _ in 0..3 {
        let again = get(&client(&sidecar, NOT_ASSIGNED)).await.unwrap_err();
        assert_eq!(again.kind(), ErrorKind::Unavailable);
    }
    assert_eq!(upstream_requests(&imds).await, 1);
    assert_eq!(sidecar.metrics().answers(400), 4);
    assert_eq!(sidecar.metrics().refusal_replays.load(Ordering::Relaxed), 3);
    sidecar.shutdown().await;
}

#[tokio::test]
async fn a_chain_moves_on_past_an_identity_the_sidecar_cannot_load() {
    let (imds, sidecar) = identity_not_found().await;
    let next = identity_core::test_util::static_credential(
        "NextCredential",
        "NEXT-TOKEN",
        identity_core::system_clock().now() + Duration::from_secs(3600),
    );
    let chain = ChainedTokenCredential::new(vec![
        Arc::new(client(&sidecar, NOT_ASSIGNED)),
        Arc::new(next),
    ]);
    let token = get(&chain).await.unwrap();
    assert_eq!(token.token.secret(), "NEXT-TOKEN");
    assert_eq!(upstream_requests(&imds).await, 1);
    sidecar.shutdown().await;
}

#[tokio::test]
async fn the_raw_answer_has_app_service_shape_and_one_message() {
    let (imds, sidecar) = identity_not_found().await;
    let target = format!(
        "{}&client_id={NOT_ASSIGNED}",
        token_target("https%3A%2F%2Fstorage.azure.com")
    );
    let answer = raw(sidecar.addr().unwrap(), &get_request(&target)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let body: serde_json::Value =
        serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["statusCode"], 400);
    assert!(body["correlationId"].is_string());
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("Unable to load the proper Managed Identity."),
        "{message}"
    );
    assert!(message.contains("Identity not found"), "{message}");
    assert!(!message.contains("TROUBLESHOOTING"), "{message}");
    assert!(!message.contains("ManagedIdentityCredential:"), "{message}");
    assert_eq!(upstream_requests(&imds).await, 1);
    sidecar.shutdown().await;
}

fn get_request(target: &str) -> Vec<u8> {
    support::get(target, Some(PLANTED_HEADER))
}

#[tokio::test]
async fn a_token_answer_carries_the_upstream_client_id() {
    let imds = imds().await;
    let sidecar = sidecar(&imds_url(&imds), &[]).await;
    let target = token_target("https%3A%2F%2Fstorage.azure.com");
    for _ in 0..2 {
        // The first from IMDS, the second from the cache: the same client id.
        let answer = raw(sidecar.addr().unwrap(), &get_request(&target)).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let body: serde_json::Value =
            serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["client_id"], "imds-client-id", "{body}");
    }
    assert_eq!(upstream_requests(&imds).await, 1);
    sidecar.shutdown().await;
}

#[tokio::test]
async fn without_an_upstream_client_id_the_field_is_left_out() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/metadata/identity/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "opaque-token",
            "expires_in": "3600",
            "token_type": "Bearer",
        })))
        .mount(&server)
        .await;
    let sidecar = sidecar(&imds_url(&server), &[]).await;
    let answer = raw(
        sidecar.addr().unwrap(),
        &get_request(&token_target("https%3A%2F%2Fstorage.azure.com")),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body: serde_json::Value =
        serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert!(body.get("client_id").is_none(), "{body}");
    sidecar.shutdown().await;
}

/// An upstream 403 (a proxy refusing, not a managed identity endpoint) is permanent: 400 to
/// the caller, not retried, remembered.
#[tokio::test]
async fn an_upstream_403_is_a_400_and_is_not_sent_again() {
    let imds = imds_answering(403, r#"{"error":"forbidden","error_description":"denied"}"#).await;
    let sidecar = sidecar(&imds_url(&imds), &[]).await;
    let credential = ManagedIdentityCredential::builder()
        .runtime(identity_core::Runtime::with_env(sidecar.app_service_env()))
        .build()
        .unwrap();
    let e = get(&credential).await.unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");
    assert_eq!(sidecar.metrics().answers(400), 1);
    let text = e.to_string();
    assert!(text.contains("denied"), "{text}");
    assert_eq!(text.matches("TROUBLESHOOTING").count(), 1, "{text}");
    let _ = get(&credential).await.unwrap_err();
    assert_eq!(upstream_requests(&imds).await, 1);
    sidecar.shutdown().await;
}
