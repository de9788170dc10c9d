//! The overall deadline of one `get_token`, in real time against a loopback endpoint that
//! accepts connections and never answers: a managed-identity credential, an Entra credential
//! and a chain each end at their configured deadline (short, so the tests are fast), not after
//! every attempt's own timeout and the backoff between them.
//!
//! No timing is asserted: a 20 s guard only turns a hang into a failure; the default
//! per-attempt timeout alone (30 s) would trip it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions fail loudly on purpose"
)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use identity_chain::{
    ChainedTokenCredential, ClientSecretCredential, Env, ErrorKind, ManagedIdentityCredential,
    TokenCredential, TokenRequestOptions,
};
use identity_core::http::{HyperClient, Limits};
use identity_core::retry::RetryPolicy;
use identity_core::test_util::{RecordingSleeper, Reply, TestServer, static_credential};

const GUARD: Duration = Duration::from_secs(20);
const SCOPE: &str = "https://vault.azure.net/.default";

/// A loopback listener that accepts every connection and never writes a byte.
async fn silent_endpoint() -> String {
    TestServer::always(Reply::silence()).await.base()
}

fn app_service(url: &str, limits: Limits) -> ManagedIdentityCredential {
    ManagedIdentityCredential::builder()
        .runtime(
            identity_core::Runtime::with_env(Env::from_pairs([
                ("IDENTITY_ENDPOINT", format!("{url}/msi/token")),
                ("IDENTITY_HEADER", "planted-deadline-header".to_owned()),
            ]))
            .sleeper(RecordingSleeper::new().shared())
            .limits(limits),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_managed_identity_call_ends_at_its_deadline() {
    let url = silent_endpoint().await;
    let credential = app_service(&url, Limits::DEFAULT.deadline(Duration::from_millis(300)));
    let options = TokenRequestOptions::default();
    let error = tokio::time::timeout(GUARD, credential.get_token(&[SCOPE], &options))
        .await
        .expect("ends at the 300 ms deadline, not after 4 x 30 s")
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport);
    let text = identity_chain::display_chain(&error);
    assert!(text.contains("300 ms deadline"), "{text}");
    assert!(!text.contains("planted"), "{text}");
}

#[tokio::test]
async fn an_entra_call_ends_at_its_deadline() {
    let url = silent_endpoint().await;
    let credential = ClientSecretCredential::builder()
        .runtime(
            identity_core::Runtime::with_env(Env::empty())
                .sleeper(RecordingSleeper::new().shared())
                .http_client(HyperClient::shared()),
        )
        .tenant_id("tenant")
        .client_id("client")
        .client_secret("planted-deadline-secret")
        .authority_host(url)
        .allow_insecure_loopback_authority(true)
        .retry_policy(RetryPolicy::default().deadline(Duration::from_millis(300)))
        .build()
        .unwrap();
    let options = TokenRequestOptions::default();
    let error = tokio::time::timeout(GUARD, credential.get_token(&[SCOPE], &options))
        .await
        .expect("ends at the 300 ms deadline")
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport);
    let text = identity_chain::display_chain(&error);
    assert!(text.contains("300 ms deadline"), "{text}");
    assert!(!text.contains("planted"), "{text}");
}

#[tokio::test]
async fn a_silent_member_does_not_use_up_the_chain_and_the_next_member_answers() {
    let url = silent_endpoint().await;
    // The member's own deadline is the default (60 s); the chain's 1 s gives it 500 ms.
    let chain = ChainedTokenCredential::new(vec![
        Arc::new(app_service(&url, Limits::DEFAULT)),
        Arc::new(static_credential(
            "Next",
            "tok-next",
            SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000),
        )),
    ])
    .with_deadline(Duration::from_secs(1));
    let options = TokenRequestOptions::default();
    let token = tokio::time::timeout(GUARD, chain.get_token(&[SCOPE], &options))
        .await
        .expect("the chain moves on within its deadline")
        .unwrap();
    assert_eq!(token.token.secret(), "tok-next");
    assert_eq!(chain.last_used(), Some("Next"));
}
