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

/// The error of one bounded call, and its full text.
async fn failure(credential: &dyn TokenCredential) -> (identity_chain::Error, String) {
    let options = TokenRequestOptions::default();
    let error = tokio::time::timeout(GUARD, credential.get_token(&[SCOPE], &options))
        .await
        .expect("bounded")
        .unwrap_err();
    let text = identity_chain::display_chain(&error);
    (error, text)
}

/// The field report: inside `DefaultAzureCredential` with `.deadline(20 s)`, an App Service
/// endpoint answering `503` with `Retry-After: 8`. The member's share (half of the 20 s) holds
/// one 8 s wait, not two: the error is the 503 itself (status, the service's message, the
/// standalone kind) and says the deadline ended the retries, not "slow or silent".
#[tokio::test]
async fn a_member_waiting_to_retry_when_its_share_ends_reports_the_last_answer() {
    let server = TestServer::script([Reply::status(503)
        .header("Retry-After", "8")
        .body(r#"{"message":"busy"}"#)])
    .await;
    let sleeper = RecordingSleeper::new();
    let chain = identity_chain::DefaultAzureCredential::builder()
        .runtime(
            identity_core::Runtime::with_env(Env::from_pairs([
                ("IDENTITY_ENDPOINT", server.url("/msi/token")),
                ("IDENTITY_HEADER", "planted-deadline-header".to_owned()),
            ]))
            .sleeper(sleeper.shared()),
        )
        .deadline(Duration::from_secs(20))
        .build()
        .unwrap();
    let (error, text) = failure(&chain).await;
    assert_eq!(sleeper.slept(), [Duration::from_secs(8)], "{text}");
    assert_eq!(server.request_count(), 2, "{text}");
    assert_eq!(error.kind(), ErrorKind::AuthenticationFailed, "{text}");
    assert_eq!(error.status(), Some(503), "{text}");
    for part in [
        "answered HTTP 503 (busy)",
        "asked to retry after 8 s, which exceeds the",
        "the deadline ended the retries",
    ] {
        assert!(text.contains(part), "{part}: {text}");
    }
    assert!(!text.contains("slow or silent"), "{text}");
    assert!(!text.contains("planted"), "{text}");
}

/// The field report: IMDS answering `410` (its upgrade) inside `DefaultAzureCredential` with
/// the default 120 s deadline. The IMDS member's share is 60 s; the upgrade schedule's waits
/// (5, 10, 20, then 40 s) do not fit in it, so the schedule stops before the 40 s wait and the
/// error is the 410 and the deadline that ended the retries.
#[tokio::test]
async fn imds_upgrading_inside_the_default_chain_reports_the_410_when_its_share_ends() {
    let server = TestServer::script([
        // The probe (no Metadata header) gets IMDS's 400, then every request a 410.
        Reply::status(400).body(r#"{"error":"invalid_request"}"#),
        Reply::status(410).body(r#"{"error":"gone"}"#),
    ])
    .await;
    let sleeper = RecordingSleeper::new();
    let chain = identity_chain::DefaultAzureCredential::builder()
        .runtime(identity_core::Runtime::with_env(Env::empty()).sleeper(sleeper.shared()))
        .imds_endpoint(server.url("/metadata/identity/oauth2/token"))
        .configure_managed_identity(|b| {
            b.host_files(Arc::new(identity_chain::ListedHostFiles::default()))
        })
        .build()
        .unwrap();
    let (error, text) = failure(&chain).await;
    assert_eq!(
        sleeper.slept(),
        [5, 10, 20].map(Duration::from_secs),
        "{text}"
    );
    assert_eq!(error.status(), Some(410), "{text}");
    assert_eq!(error.kind(), ErrorKind::AuthenticationFailed, "{text}");
    for part in [
        "answered HTTP 410 (gone)",
        "the next retry was due after 40 s, which exceeds the",
        "the deadline ended the retries",
    ] {
        assert!(text.contains(part), "{part}: {text}");
    }
    assert!(!text.contains("slow or silent"), "{text}");
}
