//! `msi_user_assigned`: a token for a user-assigned managed identity, chosen by client id,
//! object id or resource id.
//!
//! ```text
//! cargo run -p identity-examples --example msi_user_assigned -- \
//!     (--client-id ID | --object-id ID | --resource-id /subscriptions/…/userAssignedIdentities/NAME) \
//!     [--scope SCOPE]
//! ```
//!
//! Run it on an Azure host the identity is assigned to. Cloud Shell cannot honour a
//! user-assigned identity, and says so when the credential is built. It prints the token's
//! expiry, never the token.
//!
//! # Logging
//! Every credential opens a `get_token` span (credential, source, cache outcome, outcome,
//! duration); chains log which member produced the token and why the others were skipped.
//! Nothing logged ever contains a token or secret. Turn it on with `RUST_LOG`:
//!
//! ```text
//! RUST_LOG=identity=debug cargo run -p identity-examples --example msi_user_assigned
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

const USAGE: &str =
    "usage: msi_user_assigned (--client-id ID | --object-id ID | --resource-id ID) [--scope SCOPE]";

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
    let mut builder = ManagedIdentityCredential::builder();
    let mut scope = "https://management.azure.com/.default".to_owned();
    let mut chosen = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else {
            eprintln!("{flag} needs a value\n{USAGE}");
            return ExitCode::from(2);
        };
        match flag.as_str() {
            "--client-id" => builder = builder.client_id(value),
            "--object-id" => builder = builder.object_id(value),
            "--resource-id" => builder = builder.resource_id(value),
            "--scope" => {
                scope = value;
                continue;
            }
            _ => {
                eprintln!("unknown argument {flag}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
        chosen = true;
    }
    if !chosen {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    // Giving two selectors is a configuration error reported here, before any request.
    let credential = match builder.build() {
        Ok(credential) => credential,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "source: {:?}, identity: {:?}",
        credential.source(),
        credential.identity()
    );
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
