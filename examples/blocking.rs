//! `blocking`: a token from `DefaultAzureCredential` in a program with no async runtime,
//! through `identity_core::blocking::BlockingCredential` (feature `blocking`).
//!
//! ```text
//! cargo run -p identity-examples --example blocking -- [SCOPE]
//! ```
//!
//! `BlockingCredential` runs calls on one small background runtime of its own, so `main` is a
//! plain function; it also works from a tokio `spawn_blocking` thread (in async code, use the
//! async `get_token` instead). On a laptop, `az login` first, or restrict the chain with
//! `AZURE_TOKEN_CREDENTIALS=dev`. It prints which credential produced the token, never the
//! token.
//!
//! # Logging
//! Every credential opens a `get_token` span (credential, source, cache outcome, outcome,
//! duration); chains log which member produced the token and why the others were skipped.
//! Nothing logged ever contains a token or secret. Turn it on with `RUST_LOG`:
//!
//! ```text
//! RUST_LOG=identity=debug cargo run -p identity-examples --example blocking
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
use std::sync::Arc;

use identity_chain::DefaultAzureCredential;
use identity_core::blocking::BlockingCredential;
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

fn main() -> ExitCode {
    init_logging();
    let scope = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "https://management.azure.com/.default".to_owned());
    let chain = match DefaultAzureCredential::new() {
        Ok(chain) => Arc::new(chain),
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let credential = BlockingCredential::new(chain.clone());
    // The second call is answered from the chain member's cache.
    for attempt in 1..=2 {
        match credential.get_token(&[&scope]) {
            Ok(token) => println!(
                "call {attempt}: token {} from {}",
                token.token,
                chain.selected_credential().unwrap_or("?")
            ),
            Err(error) => {
                // For a chain, the error lists every member and why it could not help.
                eprintln!("{error}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
