//! `blob_with_default_credential`: the official Azure Storage SDK (`azure_storage_blob`) with
//! this workspace's `DefaultAzureCredential`, adapted by
//! `identity_azure_core::AzureCoreCredential`.
//!
//! ```text
//! cargo run -p identity-examples --example blob_with_default_credential -- \
//!     --account-url https://ACCOUNT.blob.core.windows.net [--container NAME] [--ca-file PEM]
//! ```
//!
//! It lists the account's containers. With `--container` (an existing container) it also
//! uploads `hello.txt`, downloads it, compares and deletes it. The identity that
//! `DefaultAzureCredential` finds (environment variables, workload identity, managed
//! identity, `az login`, `Connect-AzAccount`, `azd auth login`) needs the *Storage Blob Data
//! Contributor* role on the account. `--ca-file` trusts an extra certificate, e.g. a local
//! Azurite's (`identity-blob-demo local` runs the whole thing against Azurite by itself).
//!
//! The SDK's transport is a reqwest client on rustls with the `ring` provider (installed as
//! the process default), so no aws-lc is built.
//!
//! # Logging
//! Every credential opens a `get_token` span (credential, source, cache outcome, outcome,
//! duration); chains log which member produced the token and why the others were skipped.
//! Nothing logged ever contains a token or secret. Turn it on with `RUST_LOG`:
//!
//! ```text
//! RUST_LOG=identity=debug cargo run -p identity-examples --example blob_with_default_credential
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

use azure_core::http::{ClientOptions, RequestContent, Transport, Url};
use azure_storage_blob::{BlobServiceClient, BlobServiceClientOptions};
use futures_util::TryStreamExt as _;
use identity_azure_core::AzureCoreCredential;
use identity_chain::DefaultAzureCredential;
use tracing_subscriber::EnvFilter;

const USAGE: &str =
    "usage: blob_with_default_credential --account-url URL [--container NAME] [--ca-file PEM]";

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

struct Args {
    account_url: String,
    container: Option<String>,
    ca_file: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut account_url = None;
    let mut container = None;
    let mut ca_file = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--account-url" => account_url = Some(value),
            "--container" => container = Some(value),
            "--ca-file" => ca_file = Some(value),
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    Ok(Args {
        account_url: account_url.ok_or("--account-url is required")?,
        container,
        ca_file,
    })
}

fn service_client(args: &Args) -> Result<BlobServiceClient, Box<dyn StdError>> {
    // An error means a provider is installed already, which reqwest then uses.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120));
    if let Some(path) = &args.ca_file {
        let pem = std::fs::read(path)?;
        http = http.tls_certs_merge(reqwest::Certificate::from_pem_bundle(&pem)?);
    }
    let options = BlobServiceClientOptions {
        client_options: ClientOptions {
            transport: Some(Transport::new(Arc::new(http.build()?))),
            ..ClientOptions::default()
        },
        ..BlobServiceClientOptions::default()
    };
    let credential = Arc::new(DefaultAzureCredential::new()?);
    Ok(BlobServiceClient::new(
        Url::parse(args.account_url.trim_end_matches('/'))?,
        Some(AzureCoreCredential::shared(credential)),
        Some(options),
    )?)
}

async fn run(args: &Args) -> Result<(), Box<dyn StdError>> {
    let service = service_client(args)?;
    let names: Vec<String> = service
        .list_containers(None)?
        .map_ok(|c| c.name.unwrap_or_default())
        .try_collect()
        .await?;
    println!("{} container(s): {}", names.len(), names.join(", "));
    let Some(container) = &args.container else {
        return Ok(());
    };
    let blob = service.blob_client(container, "hello.txt");
    let payload = b"hello from DefaultAzureCredential".to_vec();
    blob.upload(RequestContent::from(payload.clone()), None)
        .await?;
    let downloaded = blob.download(None).await?.body.collect().await?;
    println!(
        "uploaded and downloaded {container}/hello.txt ({} bytes, {})",
        downloaded.len(),
        if downloaded.as_ref() == payload.as_slice() {
            "identical"
        } else {
            "DIFFERENT"
        }
    );
    blob.delete(None).await?;
    println!("deleted {container}/hello.txt");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Credential failures keep the credential's own report (for the chain: every
            // member and why it could not help); none of it contains a token.
            eprintln!("{}", identity_chain::display_chain(&*error));
            ExitCode::FAILURE
        }
    }
}
