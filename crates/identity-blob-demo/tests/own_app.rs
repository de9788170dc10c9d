//! "Run your own app locally", end to end: the development stack of `cargo xtask dev`
//! (Azurite with OAuth over HTTPS, the local managed-identity endpoint) and a small
//! application built **outside the workspace**, as a user would write it: its own
//! `Cargo.toml` depending on `identity-chain` (feature `azure-core`, by path) and the official
//! `azure_storage_blob`, plus tokio and futures-util for `main` and the pager. It uses
//! `DefaultAzureCredential` and lists containers with nothing but the printed exports in its
//! environment.
//!
//! The application is built `--offline` from the registry cache the workspace's own build
//! filled (with the registry only if the cache lacks a crate), starting from the workspace's `Cargo.lock` and sharing its target directory, so
//! only what differs is compiled. Needs Node.js 20+ with npm (for Azurite), like the other
//! tests here.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use identity_blob_demo::azurite;
use identity_blob_demo::dev_stack::{ACCOUNT_URL_VAR, DevStack};

/// Generous: the first run installs Azurite and compiles the application's dependencies.
const BUILD_LIMIT: Duration = Duration::from_secs(1500);
const RUN_LIMIT: Duration = Duration::from_secs(120);

const MAIN_RS: &str = r#"
use std::sync::Arc;

use azure_storage_blob::BlobServiceClient;
use futures_util::TryStreamExt;
use identity_chain::{AzureCoreCredential, DefaultAzureCredential};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let account_url = std::env::var("AZURE_STORAGE_ACCOUNT_URL")?;
    let credential = AzureCoreCredential::shared(Arc::new(DefaultAzureCredential::new()?));
    let service = BlobServiceClient::new(account_url.parse()?, Some(credential), None)?;
    let containers: Vec<_> = service.list_containers(None)?.try_collect().await?;
    println!("listed {} container(s)", containers.len());
    Ok(())
}
"#;

/// Variables that would steer `DefaultAzureCredential` elsewhere if the machine had them.
const OTHER_IDENTITY_VARIABLES: &[&str] = &[
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "AZURE_TOKEN_CREDENTIALS",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
];

/// The target directory this test was built in (`<target>/debug/deps/own_app-…`), so the
/// application shares it, `CARGO_TARGET_DIR` or not.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Writes the application into `dir`: a manifest with the workspace's profile settings (so
/// that shared dependencies are reused from the target directory), the workspace's lock
/// file, and `src/main.rs`.
fn write_app(dir: &Path, root: &Path) -> std::io::Result<()> {
    let chain = root.join("crates").join("identity-chain");
    let manifest = format!(
        r#"[package]
name = "own-app"
version = "0.1.0"
edition = "2024"
publish = false

[dependencies]
identity-chain = {{ path = "{}", features = ["azure-core"] }}
azure_storage_blob = "1.1"
tokio = {{ version = "1", features = ["macros", "rt-multi-thread"] }}
futures-util = "0.3"

[profile.dev]
debug = "line-tables-only"

[profile.dev.package."*"]
debug = false

[workspace]
"#,
        chain.display().to_string().replace('\\', "/")
    );
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::write(dir.join("Cargo.toml"), manifest)?;
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock"))?;
    std::fs::write(dir.join("src").join("main.rs"), MAIN_RS)
}

/// Runs `cmd` to completion within `limit` (killed after it), returning its status and
/// combined output.
fn run_bounded(mut cmd: Command, limit: Duration) -> (bool, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let deadline = std::time::Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            _ => {
                let _ = child.kill();
                break;
            }
        }
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_outside_the_workspace_lists_containers_against_the_dev_stack() {
    let root = workspace_root();
    let app = tempfile::Builder::new()
        .prefix("identity-own-app-")
        .tempdir()
        .unwrap_or_else(|e| panic!("temp dir: {e}"));
    write_app(app.path(), &root).unwrap_or_else(|e| panic!("writing the application: {e}"));
    let target_dir = target_dir();
    let cargo = env!("CARGO");

    // Build first (the slow part), without the stack running: offline from the registry
    // cache; if the cache lacks a crate the workspace itself never needed (a feature of the
    // official SDK's defaults), once more with the registry.
    let manifest = app.path().join("Cargo.toml");
    let build = |offline: bool| {
        let mut cmd = Command::new(cargo);
        cmd.arg("build");
        if offline {
            cmd.arg("--offline");
        }
        cmd.args(["--quiet", "--manifest-path"])
            .arg(&manifest)
            .env("CARGO_TARGET_DIR", &target_dir)
            .current_dir(app.path());
        cmd
    };
    let (offline, online) = (build(true), build(false));
    let (built, log) = tokio::task::spawn_blocking(move || {
        let (built, log) = run_bounded(offline, BUILD_LIMIT);
        if built {
            (built, log)
        } else {
            let (built, more) = run_bounded(online, BUILD_LIMIT);
            (built, format!("{log}\n--- with the registry:\n{more}"))
        }
    })
    .await
    .unwrap_or_else(|e| panic!("build task: {e}"));
    assert!(built, "the application did not build:\n{log}");

    let stack = DevStack::start(&azurite::default_install_dir())
        .await
        .unwrap_or_else(|e| panic!("the development stack did not start: {e}"));
    let exports = stack.exports();
    assert_eq!(
        exports.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        [
            "IDENTITY_ENDPOINT",
            "IDENTITY_HEADER",
            ACCOUNT_URL_VAR,
            "SSL_CERT_FILE"
        ]
    );
    let mut run = Command::new(
        target_dir
            .join("debug")
            .join(format!("own-app{}", std::env::consts::EXE_SUFFIX)),
    );
    run.current_dir(app.path());
    // Only the exports reach the application's identity setup: no other Azure variable.
    for name in OTHER_IDENTITY_VARIABLES {
        run.env_remove(name);
    }
    for (name, value) in &exports {
        run.env(name, value);
    }
    let (ok, output) = tokio::task::spawn_blocking(move || run_bounded(run, RUN_LIMIT))
        .await
        .unwrap_or_else(|e| panic!("run task: {e}"));
    let issued = stack.tokens_issued();
    stack.shutdown().await;
    assert!(ok, "the application failed:\n{output}");
    assert!(output.contains("listed 0 container(s)"), "{output}");
    assert!(issued >= 1, "no token came from the local endpoint");
}
