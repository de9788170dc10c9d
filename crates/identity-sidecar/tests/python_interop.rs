//! Interop: a Python process using `azure-identity`'s `ManagedIdentityCredential` and the
//! workspace's own App Service source get the same tokens from one sidecar, which asked the
//! (emulated, loopback) IMDS once per identity and resource.
//!
//! The Python side runs in a virtual environment: the one named by
//! `IDENTITY_SIDECAR_PYTHON` (a `python` with `azure-identity` installed; `cargo xtask ci`
//! sets it up under `.tools/` and then the test must run), or else one this test creates
//! under Cargo's target directory with `python3 -m venv` and `pip install azure-identity`.
//! Without `IDENTITY_SIDECAR_PYTHON`, the test is skipped, with a message, only when
//! `python3`, its `venv` module or `pip` (or its package index) is unavailable.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use identity_chain::ManagedIdentityCredential;
use identity_core::{Env, TokenCredential as _, TokenRequestOptions};
use support::*;

const USER_ASSIGNED: &str = "11111111-2222-3333-4444-555555555555";

const SCRIPT: &str = r#"
import hashlib
from azure.identity import ManagedIdentityCredential

def show(token):
    print(hashlib.sha256(token.token.encode()).hexdigest(), token.expires_on)

show(ManagedIdentityCredential().get_token("https://storage.azure.com/.default"))
show(ManagedIdentityCredential(client_id="11111111-2222-3333-4444-555555555555").get_token("https://vault.azure.net/.default"))
"#;

async fn run(cmd: &mut tokio::process::Command, limit: Duration) -> Option<std::process::Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    match tokio::time::timeout(limit, cmd.output()).await {
        Ok(Ok(output)) => Some(output),
        _ => None,
    }
}

/// A Python with azure-identity, or the reason there is none.
async fn python() -> Result<PathBuf, String> {
    let env = Env::from_process();
    let ready = |python: PathBuf| async move {
        run(
            tokio::process::Command::new(&python).args(["-c", "import azure.identity"]),
            Duration::from_secs(60),
        )
        .await
        .is_some_and(|o| o.status.success())
        .then_some(python)
    };
    if let Some(p) = env.non_blank("IDENTITY_SIDECAR_PYTHON") {
        return ready(PathBuf::from(p))
            .await
            .ok_or_else(|| "it does not run or cannot import azure.identity".to_owned());
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sidecar-python");
    let python = venv.join("bin").join("python");
    if let Some(p) = ready(python.clone()).await {
        return Ok(p);
    }
    let made = run(
        tokio::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv),
        Duration::from_secs(120),
    )
    .await;
    if !made.is_some_and(|o| o.status.success()) {
        return Err("python3 or its venv module is unavailable".to_owned());
    }
    let installed = run(
        tokio::process::Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "azure-identity",
        ]),
        Duration::from_secs(600),
    )
    .await;
    if !installed.is_some_and(|o| o.status.success()) {
        return Err(
            "pip could not install azure-identity (no pip, or no package index)".to_owned(),
        );
    }
    ready(python)
        .await
        .ok_or_else(|| "azure-identity does not import after pip install".to_owned())
}

fn sha256_hex(s: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, s.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The Python to test with, or `None` (after a message) when the test may be skipped.
#[allow(
    clippy::print_stderr,
    reason = "a skipped interop test says why on the test's output"
)]
async fn python_or_skip() -> Option<PathBuf> {
    let required = Env::from_process()
        .non_blank("IDENTITY_SIDECAR_PYTHON")
        .is_some();
    match python().await {
        Ok(p) => Some(p),
        Err(reason) if !required => {
            eprintln!("SKIPPED python_interop: {reason}");
            None
        }
        Err(reason) => panic!("IDENTITY_SIDECAR_PYTHON is set but unusable: {reason}"),
    }
}

/// Runs `script` with only the sidecar's two variables set; its stdout and stderr.
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test helper: a panic is a test failure"
)]
async fn run_script(python: &Path, env: &Env, script: &str) -> (String, String) {
    let output = run(
        tokio::process::Command::new(python)
            .args(["-c", script])
            .env_clear()
            .env("IDENTITY_ENDPOINT", env.get("IDENTITY_ENDPOINT").unwrap())
            .env("IDENTITY_HEADER", env.get("IDENTITY_HEADER").unwrap())
            // No proxy may divert the loopback request.
            .env("NO_PROXY", "*"),
        Duration::from_secs(120),
    )
    .await
    .expect("the Python client finished within 120 s");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "python failed:\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_azure_identity_and_the_workspace_share_the_sidecar_cache() {
    let Some(python) = python_or_skip().await else {
        return;
    };
    let imds = imds().await;
    let sidecar = sidecar(&imds_url(&imds), &[]).await;
    let env = sidecar.app_service_env();
    let (stdout, stderr) = run_script(&python, &env, SCRIPT).await;
    let lines: Vec<(&str, u64)> = stdout
        .lines()
        .map(|l| {
            let (hash, expires) = l.split_once(' ').unwrap();
            (hash, expires.trim().parse().unwrap())
        })
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");

    // The workspace's App Service source, through the same sidecar.
    let system = ManagedIdentityCredential::builder()
        .runtime(identity_core::Runtime::with_env(env.clone()))
        .build()
        .unwrap()
        .get_token(
            &["https://storage.azure.com/.default"],
            &TokenRequestOptions::default(),
        )
        .await
        .unwrap();
    let user = ManagedIdentityCredential::builder()
        .runtime(identity_core::Runtime::with_env(env))
        .client_id(USER_ASSIGNED)
        .build()
        .unwrap()
        .get_token(
            &["https://vault.azure.net/.default"],
            &TokenRequestOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(lines[0].0, sha256_hex(system.token.secret()));
    assert_eq!(lines[0].1, system.expires_on_unix());
    assert_eq!(lines[1].0, sha256_hex(user.token.secret()));
    assert!(user.token.secret().ends_with(USER_ASSIGNED));
    // One upstream request per (identity, resource), for both languages together.
    assert_eq!(imds.received_requests().await.unwrap().len(), 2);
    assert!(!stderr.contains(PLANTED_HEADER));
    sidecar.shutdown().await;
}

const NOT_ASSIGNED_SCRIPT: &str = r#"
from azure.identity import ManagedIdentityCredential
try:
    ManagedIdentityCredential(client_id="22222222-2222-2222-2222-222222222222").get_token("https://storage.azure.com/.default")
    print("TOKEN")
except Exception as e:
    print(type(e).__name__)
    print("Identity not found" in str(e))
"#;

/// IMDS's 400 "Identity not found" through the sidecar: `azure-identity` (sync) sends one
/// request, does not retry it, and raises `CredentialUnavailableError` with IMDS's reason,
/// so its `DefaultAzureCredential` moves on, as the workspace's client does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_azure_identity_sees_an_unassigned_identity_as_unavailable_after_one_request() {
    let Some(python) = python_or_skip().await else {
        return;
    };
    let imds = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .respond_with(wiremock::ResponseTemplate::new(400).set_body_string(
            r#"{"error":"invalid_request","error_description":"Identity not found"}"#,
        ))
        .mount(&imds)
        .await;
    let sidecar = sidecar(&imds_url(&imds), &[]).await;
    let (stdout, stderr) =
        run_script(&python, &sidecar.app_service_env(), NOT_ASSIGNED_SCRIPT).await;
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        ["CredentialUnavailableError", "True"],
        "{stdout}\n{stderr}"
    );
    assert_eq!(sidecar.metrics().answers(400), 1, "not retried");
    assert_eq!(imds.received_requests().await.unwrap().len(), 1);
    assert!(!stderr.contains(PLANTED_HEADER));
    sidecar.shutdown().await;
}
