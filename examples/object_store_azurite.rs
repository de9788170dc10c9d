//! `object_store_azurite`: `object_store`'s Azure store writing and reading blobs in Azurite
//! with a token from this workspace's `DefaultAzureCredential`, through
//! `identity_object_store`.
//!
//! ```text
//! cargo run -p identity-examples --example object_store_azurite
//! ```
//!
//! Everything runs on this machine and is stopped at the end: Azurite (installed with npm into
//! `<repo>/.tools/azurite` on first use; Node.js 20+ needed) with OAuth on over HTTPS with a
//! throwaway certificate, and a local App Service managed-identity endpoint issuing unsigned
//! development tokens (which only emulators accept). `DefaultAzureCredential` sees only
//! `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`, injected as on App Service, so its
//! managed-identity member produces the token. The example creates a container with one raw
//! request (`object_store` cannot create containers), then puts, gets, lists and deletes an
//! object, and reports how many tokens the endpoint issued for the whole run: one, because the
//! credential's cache answers `object_store`'s per-request credential calls.
//!
//! Against a real account, build the store the same way with `with_account("ACCOUNT")` and no
//! endpoint, with `DefaultAzureCredential::new()`.
//!
//! # Logging
//! Every credential opens a `get_token` span (credential, source, cache outcome, outcome,
//! duration); chains log which member produced the token and why the others were skipped.
//! Nothing logged ever contains a token or secret. Turn it on with `RUST_LOG`:
//!
//! ```text
//! RUST_LOG=identity=debug cargo run -p identity-examples --example object_store_azurite
//! ```
//!
//! (`identity` matches every crate of this workspace: `identity_core`, `identity_msi`,
//! `identity_chain`, …). The subscriber is `tracing_subscriber::fmt` with an `EnvFilter`
//! (feature `env-filter`).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example program reports on stdout and stderr"
)]

use std::error::Error as StdError;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt as _;
use identity_blob_demo::azurite::{self, Azurite};
use identity_blob_demo::local_msi::{LocalMsi, LocalMsiConfig};
use identity_chain::{DefaultAzureCredential, Runtime, TokenCredential, TokenRequestOptions};
use identity_object_store::{STORAGE_SCOPE, microsoft_azure_builder};
use object_store::client::{Certificate, ClientOptions};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tracing_subscriber::EnvFilter;

const CONTAINER: &str = "object-store-example";

/// Logs to stderr, filtered by `RUST_LOG` (default `warn`). At `debug`, every `get_token`
/// ends with a `get_token succeeded` or `get_token failed` line carrying its span: credential,
/// source, cache outcome, outcome and duration.
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Creates the container with a raw `PUT ?restype=container` and the bearer token.
async fn create_container(azurite: &Azurite, token: &str) -> Result<(), Box<dyn StdError>> {
    let tls = identity_blob_demo::blob::tls_config(Some(azurite.ca_pem().as_bytes()))?;
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(30))
        .build()?;
    let response = http
        .put(format!(
            "{}/{CONTAINER}?restype=container",
            azurite.account_url()
        ))
        .bearer_auth(token)
        .header("x-ms-version", "2026-04-06")
        .header("content-length", "0")
        .send()
        .await?;
    match response.status().as_u16() {
        201 | 409 => Ok(()),
        status => Err(format!("creating the container failed with HTTP {status}").into()),
    }
}

async fn with_azurite(azurite: &Azurite) -> Result<(), Box<dyn StdError>> {
    let msi = LocalMsi::start(LocalMsiConfig::new(
        identity_blob_demo::random::random_secret()?,
    ))
    .await?;
    println!(
        "identity endpoint {} (App Service protocol)",
        msi.endpoint()
    );
    let credential: Arc<dyn TokenCredential> = Arc::new(
        DefaultAzureCredential::builder()
            .runtime(Runtime::with_env(msi.app_service_env()))
            .build()?,
    );
    let token = credential
        .get_token(&[STORAGE_SCOPE], &TokenRequestOptions::default())
        .await?;
    create_container(azurite, token.token.secret()).await?;
    println!("container {CONTAINER} ready");

    let store = microsoft_azure_builder(credential)
        .with_account(azurite::ACCOUNT)
        .with_endpoint(azurite.account_url())
        .with_container_name(CONTAINER)
        .with_client_options(
            ClientOptions::new()
                .with_root_certificate(Certificate::from_pem(azurite.ca_pem().as_bytes())?),
        )
        .build()?;
    let path = Path::from("greetings/hello.txt");
    store
        .put(
            &path,
            PutPayload::from_static(b"hello through object_store"),
        )
        .await?;
    let bytes = store.get(&path).await?.bytes().await?;
    println!("put and got {path}: {:?}", String::from_utf8_lossy(&bytes));
    let listed: Vec<String> = store
        .list(None)
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await?;
    println!("listed: {}", listed.join(", "));
    store.delete(&path).await?;
    println!("deleted {path}");
    println!(
        "the identity endpoint issued {} token(s) for the whole run",
        msi.tokens_issued()
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), msi.shutdown()).await;
    Ok(())
}

async fn run() -> Result<(), Box<dyn StdError>> {
    let launcher = azurite::ensure_installed(&azurite::default_install_dir()).await?;
    let azurite = Azurite::start(&launcher).await?;
    println!("azurite listening on {}", azurite.account_url());
    let outcome = with_azurite(&azurite).await;
    azurite.shutdown().await;
    println!("azurite stopped");
    outcome
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{}", identity_chain::display_chain(&*error));
            ExitCode::FAILURE
        }
    }
}
