//! The `token` command's contract: JSON shape on stdout, exit codes, nothing on stdout on
//! failure, no secret on stderr. Runs the real example binary with a controlled environment
//! (the test's own process environment is never changed).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed expectation is a failed test"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use identity_core::test_util::{Reply, TestServer};

const PLANTED_HEADER: &str = "planted-identity-header-value";

/// `target/<profile>/examples/token`, built by `cargo test` alongside this test.
fn token_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir
        .join("examples")
        .join(format!("token{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build the examples (`cargo test` does)",
        bin.display()
    );
    bin
}

/// Runs `token` with exactly `vars` as its environment, in a bounded time.
fn run(args: &[&str], vars: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(token_binary());
    cmd.args(args)
        .env_clear()
        .stdin(std::process::Stdio::null());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
            panic!("token did not finish within 60 s");
        }
    }
}

fn now() -> u64 {
    #[allow(
        clippy::disallowed_methods,
        reason = "the fake endpoint issues tokens relative to real time"
    )]
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A port on which nothing listens, so IMDS probes are refused at once.
fn refused_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

/// An App Service endpoint: the expected token request gets a token; anything else a 404.
async fn app_service() -> TestServer {
    let expires = (now() + 3600).to_string();
    let token = serde_json::json!({
        "access_token": "app-service-token",
        "expires_on": expires,
        "resource": "https://vault.azure.net",
        "token_type": "Bearer",
    })
    .to_string();
    TestServer::respond(move |request| {
        let expected = request.method == "GET"
            && request.path() == "/msi/token"
            && request.query("api-version").as_deref() == Some("2019-08-01")
            && request.query("resource").as_deref() == Some("https://vault.azure.net")
            && request.header("x-identity-header") == Some(PLANTED_HEADER);
        if expected {
            Reply::json(token.clone())
        } else {
            Reply::status(404)
        }
    })
    .await
}

fn app_service_env(server: &TestServer) -> Vec<(&'static str, String)> {
    vec![
        ("IDENTITY_ENDPOINT", server.url("/msi/token")),
        ("IDENTITY_HEADER", PLANTED_HEADER.to_owned()),
        ("PATH", String::new()),
    ]
}

fn parse_success(out: &Output) -> serde_json::Map<String, serde_json::Value> {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(stdout.lines().count(), 1, "exactly one line: {stdout:?}");
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let object = value.as_object().unwrap().clone();
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["access_token", "credential", "expires_on"]);
    assert!(object["expires_on"].is_u64(), "{object:?}");
    object
}

// Multi-threaded: the test thread blocks on the child process while the server answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn managed_identity_on_app_service_prints_the_token_as_json() {
    let server = app_service().await;
    let out = run(
        &[
            "--credential",
            "managed-identity",
            "--scope",
            "https://vault.azure.net/.default",
        ],
        &app_service_env(&server),
    );
    let json = parse_success(&out);
    assert_eq!(json["access_token"], "app-service-token");
    assert_eq!(json["credential"], "ManagedIdentityCredential");
    let expires = json["expires_on"].as_u64().unwrap();
    assert!(expires > now() && expires <= now() + 3600, "{expires}");
}

// Multi-threaded: the test thread blocks on the child process while the server answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn the_default_chain_names_the_member_that_produced_the_token() {
    let server = app_service().await;
    let out = run(
        &["--scope", "https://vault.azure.net/.default"],
        &app_service_env(&server),
    );
    let json = parse_success(&out);
    assert_eq!(json["credential"], "ManagedIdentityCredential");
    assert_eq!(json["access_token"], "app-service-token");
}

#[test]
fn a_full_miss_exits_non_zero_with_every_attempt_on_stderr_and_nothing_on_stdout() {
    let vars = vec![
        ("PATH", String::new()),
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", refused_url()),
    ];
    let out = run(&["--scope", "https://vault.azure.net/.default"], &vars);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    for member in [
        "EnvironmentCredential",
        "WorkloadIdentityCredential",
        "ManagedIdentityCredential",
        "AzureCliCredential",
        "AzurePowerShellCredential",
        "AzureDeveloperCliCredential",
    ] {
        assert!(
            stderr.contains(&format!("\t{member}: ")),
            "{member} missing from:\n{stderr}"
        );
    }
}

// Multi-threaded: the test thread blocks on the child process while the server answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_refused_request_prints_no_secret_and_nothing_on_stdout() {
    let server = TestServer::always(
        Reply::status(400)
            .header("content-type", "application/json")
            .body(
                serde_json::json!({
                    "statusCode": 400, "message": "Unable to load the proper Managed Identity."
                })
                .to_string(),
            ),
    )
    .await;
    let out = run(
        &[
            "--credential",
            "managed-identity",
            "--scope",
            "https://vault.azure.net/.default",
        ],
        &app_service_env(&server),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("Unable to load the proper Managed Identity"),
        "{stderr}"
    );
    assert!(!stderr.contains(PLANTED_HEADER), "{stderr}");
}

#[test]
fn usage_errors_exit_2_with_nothing_on_stdout() {
    for args in [
        &[][..],
        &["--credential", "managed-identity"][..],
        &["--scope"][..],
        &["--scope", "s", "--bogus"][..],
        &["--scope", "s", "--client-id", "a", "--object-id", "b"][..],
        &[
            "--scope",
            "s",
            "--credential",
            "azure-cli",
            "--client-id",
            "a",
        ][..],
    ] {
        let out = run(args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn an_unknown_credential_name_is_an_error_listing_the_names() {
    let out = run(&["--credential", "shared-cache", "--scope", "s"], &[]);
    // A usage error, as --help says.
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("azure-developer-cli"), "{stderr}");
}

#[test]
fn ci_credentials_outside_a_runner_say_which_variables_are_missing() {
    let out = run(&["--credential", "github-actions", "--scope", "s"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("GitHubActionsCredential"), "{stderr}");
    assert!(stderr.contains("id-token: write"), "{stderr}");
    let out = run(
        &["--credential", "azure-pipelines", "--scope", "s"],
        &[
            ("AZURESUBSCRIPTION_CLIENT_ID", "c".to_owned()),
            ("AZURESUBSCRIPTION_TENANT_ID", "t".to_owned()),
            ("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID", "sc".to_owned()),
            (
                "SYSTEM_OIDCREQUESTURI",
                "https://dev.azure.com/o/p/_apis/x".to_owned(),
            ),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("AzurePipelinesCredential"), "{stderr}");
    assert!(stderr.contains("SYSTEM_ACCESSTOKEN"), "{stderr}");
    assert!(!stderr.contains("AZURESUBSCRIPTION_CLIENT_ID"), "{stderr}");
}

#[test]
fn device_code_failures_go_to_stderr_and_stdout_stays_empty() {
    // A refused authority: the device code request fails at once, with no prompt.
    let vars = vec![
        ("AZURE_AUTHORITY_HOST", "https://127.0.0.1:1".to_owned()),
        ("HOME", "/nonexistent".to_owned()),
    ];
    let out = run(
        &[
            "--credential",
            "device-code",
            "--scope",
            "https://management.azure.com/.default",
        ],
        &vars,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("signing in with DeviceCodeCredential"),
        "{stderr}"
    );
    assert!(stderr.contains("DeviceCodeCredential:"), "{stderr}");
}

#[test]
fn help_explains_the_contract() {
    let out = run(&["--help"], &[]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "--credential",
        "--scope",
        "--client-id",
        "--resource-id",
        "--object-id",
        "--tenant-id",
        "interactive-browser",
        "device-code",
        "expires_on",
        "exit 1",
    ] {
        assert!(stdout.contains(needle), "{needle}");
    }
}

#[cfg(unix)]
#[test]
fn azure_cli_output_is_relayed_with_the_credential_name() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let az = dir.path().join("az");
    let expires = now() + 3000;
    std::fs::write(
        &az,
        format!("#!/bin/sh\necho '{{\"accessToken\":\"cli-token\",\"expires_on\":{expires},\"expiresOn\":\"2030-01-01 00:00:00.000000\"}}'\n"),
    )
    .unwrap();
    std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
    let vars = vec![("PATH", dir.path().display().to_string())];
    let out = run(
        &[
            "--credential",
            "azure-cli",
            "--scope",
            "https://management.azure.com/.default",
        ],
        &vars,
    );
    let json = parse_success(&out);
    assert_eq!(json["access_token"], "cli-token");
    assert_eq!(json["expires_on"].as_u64(), Some(expires));
    assert_eq!(json["credential"], "AzureCliCredential");
}

#[cfg(unix)]
#[test]
fn a_non_utf8_argument_is_a_usage_error_not_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    for args in [
        vec![std::ffi::OsStr::from_bytes(b"--scope\xff")],
        vec![
            std::ffi::OsStr::new("--scope"),
            std::ffi::OsStr::from_bytes(b"https://vault.azure.net/.default\xc3\x28"),
        ],
    ] {
        let out = Command::new(token_binary())
            .args(&args)
            .env_clear()
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(out.stdout.is_empty());
        assert!(stderr.contains("is not valid UTF-8"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn an_unknown_credential_name_is_a_usage_error_with_one_prefix() {
    let out = Command::new(token_binary())
        .args([
            "--credential",
            "nope",
            "--scope",
            "https://vault.azure.net/.default",
        ])
        .env_clear()
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.starts_with("token: unknown credential \"nope\""),
        "{stderr}"
    );
    assert_eq!(stderr.matches("token:").count(), 1, "{stderr}");
}
