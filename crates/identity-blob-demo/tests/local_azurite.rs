//! End to end against the real Azurite (installed with npm into `<repo>/.tools/azurite` if
//! needed), with OAuth on over HTTPS, and the local App Service managed-identity endpoint.
//!
//! Each test starts its own Azurite on a free port with its own temp data folder and stops
//! it (process group killed and reaped) before returning. Needs Node.js 20+ with npm; if npm
//! is missing the tests fail with a message saying so.

use std::time::Duration;

use identity_blob_demo::azurite::{self, Azurite};
use identity_blob_demo::blob::Payload;
use identity_blob_demo::explain::Failure;
use identity_blob_demo::local::{LocalOptions, run_local};
use identity_blob_demo::output::Output;

/// Generous: the first run installs Azurite from the npm registry.
const RUN_LIMIT: Duration = Duration::from_secs(900);

/// A JWT header always starts with this (base64url of `{"`), so finding it means a token
/// leaked into the output.
const JWT_PREFIX: &str = "eyJ";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_round_trip_works_with_a_managed_identity_token() {
    let (mut output, out, err) = Output::captured();
    let options = LocalOptions {
        payload: Payload::Generated(9 * 1024 * 1024 + 17),
        ..LocalOptions::default()
    };
    let summary = tokio::time::timeout(RUN_LIMIT, run_local(&options, &mut output))
        .await
        .expect("the local demo took too long")
        .unwrap_or_else(|e| {
            panic!(
                "{e}\n--- stdout\n{}\n--- stderr\n{}",
                out.text(),
                err.text()
            )
        });
    let text = out.text();
    assert_eq!(summary.credential, "ManagedIdentityCredential", "{text}");
    assert_eq!(
        summary.audience.as_deref(),
        Some("https://storage.azure.com")
    );
    assert!(
        summary.container_listed,
        "the new container was not listed:\n{text}"
    );
    assert_eq!(summary.bytes, 9 * 1024 * 1024 + 17);
    assert_eq!(summary.blocks, 3, "{text}");
    assert!(summary.verified);
    assert!(summary.cleaned_up, "the container is still there:\n{text}");
    for step in [
        "token", "list", "create", "upload", "download", "cleanup", "stopped",
    ] {
        assert!(text.contains(step), "no {step} line:\n{text}");
    }
    assert!(
        err.text().contains("100%"),
        "no progress bar: {}",
        err.text()
    );
    assert!(!text.contains(JWT_PREFIX) && !err.text().contains(JWT_PREFIX));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_the_wrong_audience_is_refused_and_the_audience_is_named() {
    let (mut output, out, err) = Output::captured();
    let options = LocalOptions {
        audience_override: Some("https://wrong.example".into()),
        payload: Payload::Generated(1024),
        ..LocalOptions::default()
    };
    let error = tokio::time::timeout(RUN_LIMIT, run_local(&options, &mut output))
        .await
        .expect("the local demo took too long")
        .expect_err("Azurite accepted a token for the wrong audience");
    let message = error.to_string();
    assert!(
        message.contains("refused the token's audience \"https://wrong.example\""),
        "{message}"
    );
    assert!(message.contains("ManagedIdentityCredential"), "{message}");
    assert!(
        matches!(error.failure, Failure::Service { status: 403, .. }),
        "{:?}",
        error.failure
    );
    for text in [message, format!("{error:?}"), out.text(), err.text()] {
        assert!(!text.contains(JWT_PREFIX), "a token leaked: {text}");
    }
    assert!(out.text().contains("stopped"), "{}", out.text());
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_azurite_guard_leaves_no_process_behind() {
    let launcher = tokio::time::timeout(
        RUN_LIMIT,
        azurite::ensure_installed(&azurite::default_install_dir()),
    )
    .await
    .expect("installing Azurite took too long")
    .unwrap_or_else(|e| panic!("{e}"));
    let server = tokio::time::timeout(Duration::from_secs(120), Azurite::start(&launcher))
        .await
        .expect("Azurite took too long to start")
        .unwrap_or_else(|e| panic!("{e}"));
    let pid = server.pid().expect("a pid");
    let account_url = server.account_url();
    assert!(
        account_url.starts_with("https://127.0.0.1:"),
        "{account_url}"
    );
    let alive = |pid: i32| {
        rustix::process::Pid::from_raw(pid)
            .is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
    };
    assert!(alive(pid));
    tokio::time::timeout(Duration::from_secs(30), server.shutdown())
        .await
        .expect("stopping Azurite took too long");
    assert!(!alive(pid), "azurite (pid {pid}) is still running");
    let port_free = std::net::TcpStream::connect(
        account_url
            .trim_start_matches("https://")
            .split('/')
            .next()
            .unwrap(),
    )
    .is_err();
    assert!(port_free, "something still listens on {account_url}");
}
