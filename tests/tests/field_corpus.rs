//! Replays every answer of the field corpus (`tests/field/*.http`, see `identity_tests::field`)
//! on a loopback server, the way the chain meets it (at the address the IMDS probe looks, or
//! through `AZURE_POD_IDENTITY_AUTHORITY_HOST`), and checks the chain's outcome: the
//! managed-identity token, or managed identity unavailable and the chain ending at
//! `AzureCliCredential` (a fake `az` on a temporary `PATH`).
//!
//! The cases run concurrently; each is bounded by `identity_tests::LIMIT` (30 s: "the next
//! member within 30 s" for an endpoint that never answers). No duration is asserted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "elapsed times are reported for information, never asserted; fixtures fail loudly"
)]

use std::sync::Arc;
use std::time::Instant;

use identity_chain::{
    DefaultAzureCredential, Env, ListedHostFiles, TokenCredential, TokenRequestOptions,
};
use identity_tests::field::{self, Case, Expect, Reach, Replay};
use identity_tests::{FakeTools, LIMIT, VAULT_SCOPE, no_wait_runtime};

/// Runs one case one way; `Err` describes the mismatch.
async fn run(case: Case, reach: Reach) -> Result<String, String> {
    let replay = Replay::start(&case).await.map_err(|e| e.to_string())?;
    let tools = FakeTools::new();
    if case.expect == Expect::NextMember {
        tools.az_ok("AZ-TOKEN");
    }
    let mut pairs = vec![("PATH".to_owned(), tools.dir())];
    if reach == Reach::PodIdentity {
        pairs.push((
            "AZURE_POD_IDENTITY_AUTHORITY_HOST".to_owned(),
            replay.authority(),
        ));
    }
    let mut builder = DefaultAzureCredential::builder()
        .runtime(no_wait_runtime(Env::from_pairs(pairs)))
        // Detection must not depend on this machine's files (the Arc agent check).
        .configure_managed_identity(|b| b.host_files(Arc::new(ListedHostFiles::default())));
    if reach == Reach::Probe {
        builder = builder.imds_endpoint(replay.token_url());
    }
    let chain = builder.build().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let result = tokio::time::timeout(
        LIMIT,
        chain.get_token(&[VAULT_SCOPE], &TokenRequestOptions::default()),
    )
    .await
    .map_err(|_| format!("no outcome within {} s", LIMIT.as_secs()))?;
    let elapsed = started.elapsed();
    let (want_token, want_member) = match case.expect {
        Expect::NextMember => ("AZ-TOKEN", "AzureCliCredential"),
        Expect::ManagedIdentity => ("IMDS-TOKEN", "ManagedIdentityCredential"),
    };
    let token = result.map_err(|e| format!("the chain failed: {e}"))?;
    if token.token.secret() != want_token || chain.selected_credential() != Some(want_member) {
        return Err(format!(
            "ended at {:?}, expected {want_member}",
            chain.selected_credential()
        ));
    }
    if let Some(max) = case.max_requests {
        if replay.requests() > max {
            return Err(format!(
                "{} requests reached the host, at most {max} expected (no retries)",
                replay.requests()
            ));
        }
    }
    Ok(format!("{want_member} after {elapsed:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_case_gets_its_expected_chain_outcome() {
    let cases = field::load_all().unwrap();
    assert!(cases.len() >= 10, "the corpus is in tests/field");
    let mut tasks = Vec::new();
    for case in cases {
        for reach in case.reach.clone() {
            let label = format!("{} ({reach:?}): {}", case.name, case.host);
            tasks.push((label, tokio::spawn(run(case.clone(), reach))));
        }
    }
    let mut failures = Vec::new();
    for (label, task) in tasks {
        match task.await.expect("the case did not panic") {
            Ok(outcome) => eprintln!("{label}: {outcome}"),
            Err(why) => failures.push(format!("{label}: {why}")),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn the_corpus_parses_and_names_every_fault_kind() {
    let cases = field::load_all().unwrap();
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    for wanted in [
        "docker-desktop-403",
        "docker-desktop-403-localized",
        "aws-imds-401",
        "gcp-metadata-404-html",
        "corporate-proxy-403-html",
        "gateway-502-html",
        "slow-imds-1200ms",
        "hung-endpoint",
        "token-body-with-bom",
        "token-blank-expires-on",
        "token-fractional-expires-on-string",
    ] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
    let docker = field::load("docker-desktop-403").unwrap();
    let bytes = docker.answers[0].bytes();
    assert!(bytes.starts_with(b"HTTP/1.0 403 connecting to 169.254.169.254:80"));
    assert!(bytes.ends_with(b"Connection: close\r\n\r\n"));
    // The token answers keep their quirks on the wire.
    let bom = field::load("token-body-with-bom").unwrap();
    let bytes = bom.answers[1].bytes();
    let body = bytes.split(|b| *b == b'\n').next_back().unwrap();
    assert!(
        body.starts_with(b"\xEF\xBB\xBF{\"access_token\""),
        "{body:?}"
    );
    let blank = field::load("token-blank-expires-on").unwrap();
    assert!(
        blank.answers[1]
            .body
            .contains(r#""expires_on":"","expires_in":3600"#)
    );
    let fraction = String::from_utf8(
        field::load("token-fractional-expires-on-string")
            .unwrap()
            .answers[1]
            .bytes(),
    )
    .unwrap();
    let expires_on = fraction.split(r#""expires_on":""#).nth(1).unwrap();
    let (whole, rest) = expires_on.split_once('.').unwrap();
    assert!(
        whole.bytes().all(|b| b.is_ascii_digit()) && rest.starts_with("0\""),
        "{fraction}"
    );
    let slow = field::load("slow-imds-1200ms").unwrap();
    assert_eq!(slow.delay, std::time::Duration::from_millis(1200));
    assert_eq!(slow.answers.len(), 2);
    let token = String::from_utf8(slow.answers[1].bytes()).unwrap();
    assert!(!token.contains("{expires_on}"), "{token}");
    let body = token.split("\r\n\r\n").nth(1).unwrap();
    assert!(
        token.contains(&format!("Content-Length: {}", body.len())),
        "{token}"
    );
}
