//! `msi_system_assigned`: a token for the host's system-assigned managed identity.
//!
//! ```text
//! cargo run -p identity-examples --example msi_system_assigned -- [SCOPE]
//! ```
//!
//! Run it on an Azure host (VM, App Service, Functions, Container Apps, Arc, Cloud Shell,
//! Azure ML, AKS). It prints the detected source and the token's expiry, never the token.
//! `SCOPE` defaults to `https://management.azure.com/.default`. Off Azure it fails after the
//! IMDS retries with an error saying so.
//!
//! # Logging
//! Every credential opens a `get_token` span (credential, source, cache outcome, outcome,
//! duration); chains log which member produced the token and why the others were skipped.
//! Nothing logged ever contains a token or secret. Turn it on with `RUST_LOG`:
//!
//! ```text
//! RUST_LOG=identity=debug cargo run -p identity-examples --example msi_system_assigned
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

use std::process::ExitCode;
use std::time::SystemTime;

use identity_chain::{ManagedIdentityCredential, TokenCredential, TokenRequestOptions};
use tracing_subscriber::EnvFilter;

const DEFAULT_SCOPE: &str = "https://management.azure.com/.default";

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

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let scope = std::env::args()
        .nth(1)
        .unwrap_or_else(|| DEFAULT_SCOPE.to_owned());
    let credential = match ManagedIdentityCredential::builder().build() {
        Ok(credential) => credential,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    println!("source: {:?}", credential.source());
    match credential
        .get_token(&[&scope], &TokenRequestOptions::default())
        .await
    {
        Ok(token) => {
            let expires = token
                .expires_on
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            println!("token for {scope}: {} (expires_on {expires})", token.token);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}
