//! The default chain's spans: its own, the winning member's nested inside it, and the log line
//! of the remembered member on later calls; which members it builds and its deadline.

use std::time::Duration;

use super::*;
use identity_core::test_util::{Capture, FakeClock, RecordingSleeper, Reply, TestServer};
use identity_core::{Env, Runtime};

const PLANTED_TOKEN: &str = "planted-default-chain-token";
const PLANTED_HEADER: &str = "planted-identity-header";

/// A local App Service endpoint answering every request with one token.
async fn app_service_endpoint() -> String {
    let body = format!(
        r#"{{"access_token":"{PLANTED_TOKEN}","expires_on":"{}","resource":"https://vault.azure.net","token_type":"Bearer"}}"#,
        1_893_456_000 + 3600
    );
    TestServer::script([Reply::json(body)])
        .await
        .url("/msi/token")
}

#[tokio::test]
async fn the_default_chain_nests_the_winner_span_and_logs_the_remembered_member() {
    let clock = FakeClock::at_2030();
    let credential = DefaultAzureCredential::builder()
        .runtime(
            Runtime::with_env(Env::from_pairs([
                ("IDENTITY_ENDPOINT", app_service_endpoint().await),
                ("IDENTITY_HEADER", PLANTED_HEADER.to_owned()),
            ]))
            .clock(clock.shared())
            .sleeper(RecordingSleeper::advancing(clock).shared()),
        )
        .exclude_environment_credential(true)
        .exclude_workload_identity_credential(true)
        .exclude_cli_credential(true)
        .exclude_powershell_credential(true)
        .exclude_developer_cli_credential(true)
        .build()
        .unwrap();
    let capture = Capture::new();
    {
        let _guard = capture.enter();
        for _ in 0..2 {
            tokio::time::timeout(
                Duration::from_secs(30),
                credential.get_token(
                    &["https://vault.azure.net/.default"],
                    &TokenRequestOptions::default(),
                ),
            )
            .await
            .expect("the call ends")
            .unwrap();
        }
    }
    let spans: Vec<_> = capture
        .spans_named("get_token")
        .iter()
        .map(|s| {
            (
                s.field("credential").unwrap_or("").to_owned(),
                s.field("source").unwrap_or("").to_owned(),
                s.field("cache").unwrap_or("").to_owned(),
                s.field("outcome").unwrap_or("").to_owned(),
            )
        })
        .collect();
    let row =
        |c: &str, s: &str, k: &str| (c.to_owned(), s.to_owned(), k.to_owned(), "ok".to_owned());
    assert_eq!(
        spans,
        [
            row("DefaultAzureCredential", "chain", ""),
            row("ManagedIdentityCredential", "app_service", "fetch"),
            row("DefaultAzureCredential", "chain", ""),
            row("ManagedIdentityCredential", "app_service", "hit"),
        ],
        "{}",
        capture.text()
    );
    let events = capture.events();
    assert!(events.iter().any(|e| {
        e.field("message") == Some("credential produced a token")
            && e.field("credential") == Some("ManagedIdentityCredential")
    }));
    assert!(events.iter().any(|e| {
        e.field("message") == Some("using the credential that produced the first token")
            && e.spans == ["get_token"]
    }));
    capture.assert_absent(PLANTED_TOKEN);
    capture.assert_absent(PLANTED_HEADER);
}

#[test]
fn the_interactive_browser_member_comes_last_only_when_asked_for() {
    let build = |env: Env, exclude: Option<bool>| {
        let mut b = DefaultAzureCredential::builder().runtime(Runtime::with_env(env));
        if let Some(exclude) = exclude {
            b = b.exclude_interactive_browser_credential(exclude);
        }
        b.build().unwrap().members()
    };
    let browser = "InteractiveBrowserCredential";
    assert!(!build(Env::empty(), None).contains(&browser));
    assert!(!build(Env::empty(), Some(true)).contains(&browser));
    let members = build(Env::empty(), Some(false));
    assert_eq!(members.len(), 7);
    assert_eq!(members.last(), Some(&browser));
    let dev = build(
        Env::from_pairs([(AZURE_TOKEN_CREDENTIALS, "dev")]),
        Some(false),
    );
    assert_eq!(dev.last(), Some(&browser));
    // An explicit `false` wins over the variable, as for every member.
    let prod = build(
        Env::from_pairs([(AZURE_TOKEN_CREDENTIALS, "prod")]),
        Some(false),
    );
    assert_eq!(prod.last(), Some(&browser));
    assert!(!build(Env::from_pairs([(AZURE_TOKEN_CREDENTIALS, "prod")]), None).contains(&browser));
    // Named by the variable, it is the only member.
    let named = build(
        Env::from_pairs([(AZURE_TOKEN_CREDENTIALS, "InteractiveBrowserCredential")]),
        None,
    );
    assert_eq!(named, [browser]);
}

#[test]
fn the_interactive_member_extends_the_default_deadline_by_its_sign_in_timeout() {
    let deadline = |exclude: bool| {
        DefaultAzureCredential::builder()
            .runtime(Runtime::with_env(Env::empty()))
            .exclude_interactive_browser_credential(exclude)
            .build()
            .unwrap()
            .chain
            .engine()
            .deadline()
    };
    assert_eq!(deadline(true), crate::DEFAULT_CHAIN_DEADLINE);
    assert_eq!(
        deadline(false),
        crate::DEFAULT_CHAIN_DEADLINE + Duration::from_secs(5 * 60)
    );
    // An explicit deadline is kept as given.
    let explicit = DefaultAzureCredential::builder()
        .runtime(Runtime::with_env(Env::empty()))
        .exclude_interactive_browser_credential(false)
        .deadline(Duration::from_secs(30))
        .build()
        .unwrap();
    assert_eq!(explicit.chain.engine().deadline(), Duration::from_secs(30));
}
