//! `msi_low_level_client`: the MSAL-style `ManagedIdentityClient`, which takes a *resource*
//! (not scopes) and reports whether a token came from the identity provider or the cache.
//!
//! ```text
//! cargo run -p identity-examples --example msi_low_level_client -- [--client-id ID] [RESOURCE]
//! ```
//!
//! Run it on an Azure host. It asks twice for the same resource (default
//! `https://vault.azure.net`): the first answer comes from the identity provider, the second
//! from the cache. It prints token details, never the token.
//!
//! # Logging
//! Every credential opens a `get_token` span (credential, source, cache outcome, outcome,
//! duration); chains log which member produced the token and why the others were skipped.
//! Nothing logged ever contains a token or secret. Turn it on with `RUST_LOG`:
//!
//! ```text
//! RUST_LOG=identity=debug cargo run -p identity-examples --example msi_low_level_client
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

use identity_chain::{ManagedIdentityClient, ManagedIdentityId};
use identity_core::http::HyperClient;
use tracing_subscriber::EnvFilter;

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
    let mut identity = ManagedIdentityId::SystemAssigned;
    let mut resource = "https://vault.azure.net".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--client-id" {
            let Some(id) = args.next() else {
                eprintln!("--client-id needs a value");
                return ExitCode::from(2);
            };
            identity = ManagedIdentityId::ClientId(id);
        } else {
            resource = arg;
        }
    }
    let client = match ManagedIdentityClient::new(identity, HyperClient::shared()) {
        Ok(client) => client,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    println!("source: {:?}", client.managed_identity_source());
    for attempt in 1..=2 {
        match client.acquire_token_for_client(&resource).await {
            Ok(result) => println!(
                "call {attempt}: {} token from {:?} for {}, refresh_on {:?}",
                result.token_type,
                result.token_source,
                result.resource.as_deref().unwrap_or(&resource),
                result.refresh_on,
            ),
            Err(error) => {
                eprintln!("{error}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
