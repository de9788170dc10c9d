//! Single flight through the public API: many concurrent `get_token` calls on one
//! `ManagedIdentityCredential` against a slow App Service endpoint share one request per
//! scope, and every caller gets the token.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions fail loudly on purpose"
)]

use std::sync::Arc;
use std::time::Duration;

use identity_chain::{Env, ManagedIdentityCredential, TokenCredential, TokenRequestOptions};
use identity_core::test_util::RecordingSleeper;
use identity_tests::{ARM_RESOURCE, ARM_SCOPE, FAR_EXPIRY, VAULT_SCOPE, bounded};
use tokio::task::JoinSet;
use wiremock::matchers::{method, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CALLERS: usize = 200;

async fn slow_app_service(resource: &str, token: &str, server: &MockServer) {
    Mock::given(method("GET"))
        .and(query_param("resource", resource))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({
                    "access_token": token,
                    "expires_on": FAR_EXPIRY.to_string(),
                    "resource": resource,
                    "token_type": "Bearer",
                }))
                // Long enough that every caller arrives while the first request is in flight.
                .set_delay(Duration::from_millis(200)),
        )
        .expect(1)
        .mount(server)
        .await;
}

fn credential(server: &MockServer) -> Arc<ManagedIdentityCredential> {
    Arc::new(
        ManagedIdentityCredential::builder()
            .runtime(
                identity_core::Runtime::with_env(Env::from_pairs([
                    ("IDENTITY_ENDPOINT", format!("{}/msi/token", server.uri())),
                    ("IDENTITY_HEADER", "planted-identity-header".to_owned()),
                ]))
                .sleeper(Arc::new(RecordingSleeper::new())),
            )
            .build()
            .unwrap(),
    )
}

/// Starts `CALLERS` concurrent calls, alternating over `scopes`, and returns each token.
async fn call_concurrently(
    credential: &Arc<ManagedIdentityCredential>,
    scopes: &[&'static str],
) -> Vec<(String, String)> {
    let mut set = JoinSet::new();
    for i in 0..CALLERS {
        let credential = credential.clone();
        let scope = scopes[i % scopes.len()];
        set.spawn(async move {
            let token = credential
                .get_token(&[scope], &TokenRequestOptions::default())
                .await
                .unwrap();
            (scope.to_owned(), token.token.secret().to_owned())
        });
    }
    bounded(set.join_all()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_calls_send_one_request() {
    let server = MockServer::start().await;
    slow_app_service(ARM_RESOURCE, "SHARED-TOKEN", &server).await;
    let credential = credential(&server);
    let tokens = call_concurrently(&credential, &[ARM_SCOPE]).await;
    assert_eq!(tokens.len(), CALLERS);
    assert!(tokens.iter().all(|(_, t)| t == "SHARED-TOKEN"));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_scopes_called_concurrently_send_one_request_each() {
    let server = MockServer::start().await;
    slow_app_service(ARM_RESOURCE, "ARM-TOKEN", &server).await;
    slow_app_service("https://vault.azure.net", "VAULT-TOKEN", &server).await;
    let credential = credential(&server);
    let tokens = call_concurrently(&credential, &[ARM_SCOPE, VAULT_SCOPE]).await;
    assert_eq!(tokens.len(), CALLERS);
    for (scope, token) in &tokens {
        let expected = if scope == ARM_SCOPE {
            "ARM-TOKEN"
        } else {
            "VAULT-TOKEN"
        };
        assert_eq!(token, expected, "{scope}");
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callers_after_the_first_load_are_answered_from_the_cache() {
    let server = MockServer::start().await;
    slow_app_service(ARM_RESOURCE, "CACHED-TOKEN", &server).await;
    let credential = credential(&server);
    call_concurrently(&credential, &[ARM_SCOPE]).await;
    let again = call_concurrently(&credential, &[ARM_SCOPE]).await;
    assert!(again.iter().all(|(_, t)| t == "CACHED-TOKEN"));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}
