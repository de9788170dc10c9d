//! The chain's `get_token` span and its log lines: which member won, and why the others were
//! skipped.

use super::*;
use identity_core::ErrorKind;
use identity_core::test_util::{Capture, failing_credential, static_credential};
use std::time::{Duration, SystemTime};

const PLANTED: &str = "planted-chain-token";

fn far() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000)
}

fn event_with<'a>(
    events: &'a [identity_core::test_util::CapturedEvent],
    message: &str,
    credential: &str,
) -> &'a identity_core::test_util::CapturedEvent {
    events
        .iter()
        .find(|e| e.field("message") == Some(message) && e.field("credential") == Some(credential))
        .unwrap_or_else(|| panic!("no {message:?} event for {credential}"))
}

#[tokio::test]
async fn the_chain_logs_the_winner_and_why_each_member_was_skipped() {
    let chain = ChainedTokenCredential::new(vec![
        Arc::new(failing_credential(
            "First",
            Error::unavailable("First", "not configured: set FIRST_ENDPOINT"),
        )),
        Arc::new(failing_credential(
            "Second",
            Error::unavailable("Second", "tool not installed"),
        )),
        Arc::new(static_credential("Third", PLANTED, far())),
    ]);
    let capture = Capture::new();
    {
        let _guard = capture.enter();
        chain
            .get_token(
                &["https://vault.azure.net/.default"],
                &TokenRequestOptions::default(),
            )
            .await
            .unwrap();
    }
    let span = &capture.spans_named("get_token")[0];
    assert_eq!(span.field("credential"), Some("ChainedTokenCredential"));
    assert_eq!(span.field("source"), Some("chain"));
    assert_eq!(span.field("outcome"), Some("ok"));
    let events = capture.events();
    let skipped = event_with(&events, "credential did not produce a token", "First");
    assert_eq!(
        skipped.field("error"),
        Some("First: not configured: set FIRST_ENDPOINT")
    );
    assert_eq!(skipped.field("moves_on"), Some("true"));
    assert_eq!(skipped.spans, ["get_token"]);
    event_with(&events, "credential did not produce a token", "Second");
    let won = event_with(&events, "credential produced a token", "Third");
    assert_eq!(
        won.level,
        tracing::Level::DEBUG,
        "a plain chain logs its winner at DEBUG"
    );
    assert_eq!(won.field("skipped"), Some("2"));
    assert_eq!(won.field("skipped_members"), Some("First, Second"));
    capture.assert_absent(PLANTED);
}

#[tokio::test]
async fn a_sticky_chain_logs_the_chosen_member_once_at_info() {
    let chain = Chain::new(
        "DefaultAzureCredential",
        vec![
            Member {
                credential: Arc::new(failing_credential(
                    "EnvironmentCredential",
                    Error::unavailable("EnvironmentCredential", "not configured"),
                )),
                downgrade_failures: false,
            },
            Member {
                credential: Arc::new(static_credential("AzureCliCredential", PLANTED, far())),
                downgrade_failures: true,
            },
        ],
        true,
    );
    let capture = Capture::new();
    {
        let _guard = capture.enter();
        for _ in 0..2 {
            chain
                .get_token(&["s"], &TokenRequestOptions::default())
                .await
                .unwrap();
        }
    }
    let infos: Vec<_> = capture
        .events()
        .into_iter()
        .filter(|e| e.level == tracing::Level::INFO)
        .collect();
    assert_eq!(infos.len(), 1, "one INFO line, on the first token");
    assert_eq!(infos[0].field("credential"), Some("AzureCliCredential"));
    assert_eq!(
        infos[0].field("skipped_members"),
        Some("EnvironmentCredential")
    );
    capture.assert_absent(PLANTED);
}

#[tokio::test]
async fn a_failing_chain_records_the_stopping_member_and_its_kind() {
    let chain = ChainedTokenCredential::new(vec![
        Arc::new(failing_credential(
            "First",
            Error::unavailable("First", "not configured"),
        )),
        Arc::new(failing_credential(
            "Second",
            Error::authentication_failed("Second", "AADSTS700016: application not found"),
        )),
        Arc::new(static_credential("Third", PLANTED, far())),
    ]);
    let capture = Capture::new();
    {
        let _guard = capture.enter();
        let error = chain
            .get_token(&["s"], &TokenRequestOptions::default())
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::AuthenticationFailed);
    }
    let span = &capture.spans_named("get_token")[0];
    assert_eq!(span.field("outcome"), Some("authentication_failed"));
    let events = capture.events();
    let stopped = event_with(&events, "credential did not produce a token", "Second");
    assert_eq!(stopped.field("moves_on"), Some("false"));
    assert!(
        events
            .iter()
            .all(|e| e.field("credential") != Some("Third")),
        "the chain went past a member that stops it"
    );
    let failure = events
        .iter()
        .find(|e| e.field("message") == Some("get_token failed"))
        .expect("a failure event");
    assert!(failure.field("error").unwrap().contains("AADSTS700016"));
    capture.assert_absent(PLANTED);
}
