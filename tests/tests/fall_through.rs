//! Off Azure, the managed-identity member's IMDS probe gives up and the chain reaches the
//! developer tools (docs/protocol.md §2.8): at once when the address refuses connections,
//! after the probe's connect bound (1 s) when it is blackholed. The loopback "blackhole" here
//! accepts connections and never answers, which the probe meets with its answer budget
//! instead (10 s by default); these tests shorten that budget with the member's timeout.
//!
//! No test here asserts a duration: each call is only bounded so that it cannot hang, and
//! the elapsed time is written to stderr for information.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "elapsed times are reported for information, never asserted; test helpers fail loudly"
)]

use std::time::{Duration, Instant};

use identity_chain::{DefaultAzureCredential, TokenCredential, TokenRequestOptions};
use identity_tests::{ARM_SCOPE, Blackhole, FakeTools, no_wait_runtime, refused_endpoint};

/// A generous bound: the probe gives up after about a second.
const BOUND: Duration = Duration::from_secs(20);

async fn az_wins_with_imds_at(endpoint: String, what: &str) {
    az_wins_with(endpoint, what, &[]).await;
}

/// The chain over a fake `az` and `extra` variables, with IMDS at `endpoint`: `az` answers.
async fn az_wins_with(endpoint: String, what: &str, extra: &[(&str, &str)]) {
    let tools = FakeTools::new();
    tools.az_ok("AZ-TOKEN");
    let env = extra
        .iter()
        .fold(tools.env(), |env, (name, value)| env.with(*name, *value));
    let credential = DefaultAzureCredential::builder()
        .runtime(no_wait_runtime(env))
        .imds_endpoint(endpoint)
        .configure_managed_identity(|b| b.timeout(Duration::from_secs(1)))
        .build()
        .unwrap();
    let started = Instant::now();
    let token = tokio::time::timeout(
        BOUND,
        credential.get_token(&[ARM_SCOPE], &TokenRequestOptions::default()),
    )
    .await
    .expect("the chain gave up on IMDS instead of hanging")
    .unwrap();
    eprintln!("{what}: the chain reached az after {:?}", started.elapsed());
    assert_eq!(token.token.secret(), "AZ-TOKEN");
    assert_eq!(credential.selected_credential(), Some("AzureCliCredential"));
    assert_eq!(tools.runs("az"), 1);
}

#[tokio::test]
async fn a_refused_imds_address_lets_the_chain_reach_az() {
    az_wins_with_imds_at(refused_endpoint(), "refused").await;
}

#[tokio::test]
async fn a_blackholed_imds_address_lets_the_chain_reach_az() {
    let blackhole = Blackhole::start().await;
    az_wins_with_imds_at(blackhole.url.clone(), "blackholed").await;
    assert_eq!(blackhole.accepted(), 1, "one probe connection, no retries");
}

#[tokio::test]
async fn an_unanswered_probe_is_tried_again_on_the_next_call() {
    // The availability flag stays unset after a failed probe (§2.8): a chain built with only
    // managed identity reports unavailable twice, and both calls end.
    let blackhole = Blackhole::start().await;
    let credential = DefaultAzureCredential::builder()
        .runtime(no_wait_runtime(identity_chain::Env::empty()))
        .exclude_environment_credential(true)
        .exclude_workload_identity_credential(true)
        .exclude_cli_credential(true)
        .exclude_powershell_credential(true)
        .exclude_developer_cli_credential(true)
        .imds_endpoint(blackhole.url.clone())
        .configure_managed_identity(|b| b.timeout(Duration::from_secs(1)))
        .build()
        .unwrap();
    for call in 0..2 {
        let started = Instant::now();
        let error = tokio::time::timeout(
            BOUND,
            credential.get_token(&[ARM_SCOPE], &TokenRequestOptions::default()),
        )
        .await
        .expect("the probe gave up instead of hanging")
        .unwrap_err();
        eprintln!("call {call}: unavailable after {:?}", started.elapsed());
        assert!(error.is_unavailable(), "{error}");
        assert!(error.to_string().contains("IMDS"), "{error}");
        assert_eq!(blackhole.accepted(), call + 1, "one probe per call");
    }
}

#[tokio::test]
async fn docker_desktops_unreachable_answer_lets_the_chain_reach_az() {
    // Docker Desktop's proxy answers for the IMDS address with a plain-text 403 (§10 case 27).
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .respond_with(
            wiremock::ResponseTemplate::new(403)
                .set_body_raw("connecting to 169.254.169.254:80: connecting to 169.254.169.254:80: dial tcp 169.254.169.254:80: connectex: A socket operation was attempted to an unreachable network.", "text/plain"),
        )
        .mount(&server)
        .await;
    let tools = FakeTools::new();
    tools.az_ok("AZ-TOKEN");
    let credential = DefaultAzureCredential::builder()
        .runtime(no_wait_runtime(tools.env()))
        .imds_endpoint(format!("{}/metadata/identity/oauth2/token", server.uri()))
        .build()
        .unwrap();
    let token = tokio::time::timeout(
        BOUND,
        credential.get_token(&[ARM_SCOPE], &TokenRequestOptions::default()),
    )
    .await
    .expect("the chain moved on instead of hanging")
    .unwrap();
    assert_eq!(token.token.secret(), "AZ-TOKEN");
    assert_eq!(credential.selected_credential(), Some("AzureCliCredential"));
    // The probe alone, or the probe and one real request: never a retry schedule.
    let seen = server.received_requests().await.unwrap().len();
    assert!((1..=2).contains(&seen), "{seen} requests");
}

/// A blank `AZURE_CLIENT_ID` (an unset template value rendered as a space) and other blank
/// identity variables are unset (docs/protocol.md §1.0): the chain asks IMDS for the
/// system-assigned identity, and reaches `az` when IMDS is not there, instead of stopping on
/// an "empty selector". (`EnvironmentCredential` selects by presence and names a blank
/// variable, §6.2.)
#[tokio::test]
async fn blank_identity_variables_are_unset_and_the_chain_reaches_az() {
    let blank = [
        ("AZURE_CLIENT_ID", " "),
        ("IDENTITY_ENDPOINT", " "),
        ("MSI_ENDPOINT", "\t"),
        ("AZURE_FEDERATED_TOKEN_FILE", " "),
    ];
    az_wins_with(refused_endpoint(), "blank variables", &blank).await;
}
