//! The sidecar end to end over loopback: the workspace's App Service source against it, the
//! one shared cache, the upstream guard's throttle replay, health and metrics, graceful
//! shutdown.

mod support;

use std::sync::Arc;
use std::time::Duration;

use identity_chain::ManagedIdentityCredential;
use identity_core::{TokenCredential as _, TokenRequestOptions};
use support::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const STORAGE: &str = "https://storage.azure.com/.default";

#[tokio::test]
async fn the_workspace_app_service_source_gets_tokens_from_the_sidecar() {
    let imds = imds().await;
    let sidecar = sidecar(&imds_url(&imds), &[]).await;
    let credential = ManagedIdentityCredential::builder()
        .runtime(identity_core::Runtime::with_env(sidecar.app_service_env()))
        .build()
        .unwrap();
    assert_eq!(
        credential.source(),
        identity_chain::ManagedIdentitySource::AppService
    );
    let token = credential
        .get_token(&[STORAGE], &TokenRequestOptions::default())
        .await
        .unwrap();
    assert!(
        token
            .token
            .secret()
            .starts_with(&format!("{PLANTED_TOKEN}.https://storage.azure.com")),
        "the token is IMDS's, passed through"
    );
    let left = token
        .expires_on
        .duration_since(identity_core::system_clock().now())
        .unwrap();
    assert!(left > Duration::from_secs(3000), "{left:?}");
    // A user-assigned identity by client id reaches IMDS with that client id.
    let user = ManagedIdentityCredential::builder()
        .runtime(identity_core::Runtime::with_env(sidecar.app_service_env()))
        .client_id("11111111-2222-3333-4444-555555555555")
        .build()
        .unwrap();
    let token = user
        .get_token(&[STORAGE], &TokenRequestOptions::default())
        .await
        .unwrap();
    assert!(
        token
            .token
            .secret()
            .ends_with(".11111111-2222-3333-4444-555555555555")
    );
    sidecar.shutdown().await;
}

#[tokio::test]
async fn many_callers_share_one_upstream_request_per_identity_and_resource() {
    let imds = imds().await;
    let sidecar = Arc::new(sidecar(&imds_url(&imds), &[]).await);
    let env = sidecar.app_service_env();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let env = env.clone();
            tokio::spawn(async move {
                // A fresh credential per caller: its own cache is empty, as in a new process.
                let credential = ManagedIdentityCredential::builder()
                    .runtime(identity_core::Runtime::with_env(env))
                    .build()
                    .unwrap();
                let scope = [
                    "https://storage.azure.com/.default",
                    "https://vault.azure.net/.default",
                ][i % 2];
                credential
                    .get_token(&[scope], &TokenRequestOptions::default())
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let upstream = imds.received_requests().await.unwrap().len();
    assert_eq!(upstream, 2, "one request per resource");
    let m = sidecar.metrics();
    assert_eq!(m.answers(200), 40);
    assert_eq!(
        m.cache_hits.load(std::sync::atomic::Ordering::Relaxed)
            + m.cache_misses.load(std::sync::atomic::Ordering::Relaxed),
        40
    );
    assert_eq!(m.cache_misses.load(std::sync::atomic::Ordering::Relaxed), 2);
}

#[tokio::test]
async fn an_upstream_429_is_replayed_to_callers_without_reaching_upstream() {
    let imds = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/metadata/identity/oauth2/token"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "200"))
        .mount(&imds)
        .await;
    let sidecar = sidecar(&imds_url(&imds), &[]).await;
    let addr = sidecar.addr().unwrap();
    let target = token_target("https%3A%2F%2Fstorage.azure.com");
    let first = raw(addr, &get(&target, Some(PLANTED_HEADER))).await;
    assert!(first.starts_with("HTTP/1.1 429"), "{first}");
    let retry_after = |answer: &str| -> u64 {
        let line = answer
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("retry-after:"))
            .unwrap();
        line[12..].trim().parse().unwrap()
    };
    // What is left of the upstream's hint.
    assert!((150..=200).contains(&retry_after(&first)), "{first}");
    let upstream_after_first = imds.received_requests().await.unwrap().len();
    for _ in 0..5 {
        let again = raw(addr, &get(&target, Some(PLANTED_HEADER))).await;
        assert!(again.starts_with("HTTP/1.1 429"), "{again}");
        assert!((150..=200).contains(&retry_after(&again)), "{again}");
    }
    // The throttled request never went upstream again.
    assert_eq!(
        imds.received_requests().await.unwrap().len(),
        upstream_after_first
    );
    assert_eq!(upstream_after_first, 1);
    let metrics = sidecar.metrics();
    // One replay per later call: a `Retry-After` past the 60 s the retry policy honours is
    // not retried inside a call, so the first call asks upstream once and is answered.
    assert!(
        metrics
            .throttle_replays
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 5
    );
    assert_eq!(
        metrics
            .upstream_throttled
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn health_and_metrics_answer_without_the_secret() {
    let imds = imds().await;
    let sidecar = sidecar(&imds_url(&imds), &[]).await;
    let addr = sidecar.addr().unwrap();
    let health = raw(addr, &get("/healthz", None)).await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with(r#"{"status":"ok"}"#), "{health}");
    let _ = raw(
        addr,
        &get(
            &token_target("https%3A%2F%2Fstorage.azure.com"),
            Some(PLANTED_HEADER),
        ),
    )
    .await;
    let metrics = raw(addr, &get("/metrics", None)).await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("text/plain; version=0.0.4"), "{metrics}");
    for name in [
        "identity_sidecar_requests_total{code=\"200\"} 2",
        "identity_sidecar_cache_misses_total 1",
        "identity_sidecar_upstream_requests_total 1",
        "identity_sidecar_throttle_replays_total 0",
        "identity_sidecar_request_duration_seconds_count 1",
    ] {
        assert!(metrics.contains(name), "{name} in {metrics}");
    }
    assert!(!metrics.contains(PLANTED_TOKEN));
}

#[tokio::test]
async fn shutdown_lets_an_open_request_finish_and_then_refuses_connections() {
    let imds = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/metadata/identity/oauth2/token"))
        .respond_with(support::ImdsToken {
            lifetime: Duration::from_secs(3600),
        })
        .mount(&imds)
        .await;
    // Delay the upstream so a request is open while shutdown starts.
    let slow = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_millis(500))
                .set_body_json(serde_json::json!({
                    "access_token": "x", "expires_in": "3600", "resource": "https://r", "token_type": "Bearer"
                })),
        )
        .mount(&slow)
        .await;
    let sidecar = sidecar(
        &format!("{}/metadata/identity/oauth2/token", slow.uri()),
        &[],
    )
    .await;
    let addr = sidecar.addr().unwrap();
    let open = tokio::spawn(async move {
        raw(
            addr,
            &get(&token_target("https%3A%2F%2Fr"), Some(PLANTED_HEADER)),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    tokio::time::timeout(Duration::from_secs(20), sidecar.shutdown())
        .await
        .unwrap();
    let answer = open.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn a_full_waiting_queue_gets_a_clear_503_with_retry_after() {
    let imds = imds().await;
    let sidecar = sidecar(&imds_url(&imds), &["--max-pending", "0"]).await;
    let addr = sidecar.addr().unwrap();
    let answer = raw(
        addr,
        &get(
            &token_target("https%3A%2F%2Fstorage.azure.com"),
            Some(PLANTED_HEADER),
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    assert!(answer.contains("the sidecar is busy"), "{answer}");
    assert!(imds.received_requests().await.unwrap().is_empty());
    assert_eq!(
        sidecar
            .metrics()
            .busy
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}
