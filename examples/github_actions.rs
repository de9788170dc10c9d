//! `github_actions`: a token in a GitHub Actions job, through a federated identity credential
//! on an app registration or user-assigned managed identity.
//!
//! ```yaml
//! permissions:
//!   id-token: write        # without it GitHub sets no ACTIONS_ID_TOKEN_REQUEST_* variables
//!   contents: read
//! steps:
//!   - run: cargo run -p identity-examples --example github_actions
//!     env:
//!       AZURE_CLIENT_ID: ${{ vars.AZURE_CLIENT_ID }}
//!       AZURE_TENANT_ID: ${{ vars.AZURE_TENANT_ID }}
//! ```
//!
//! It prints the token's expiry, never the token.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example program reports on stdout and stderr"
)]

use std::process::ExitCode;

use identity_chain::{GitHubActionsCredential, TokenCredential, TokenRequestOptions};

#[tokio::main]
async fn main() -> ExitCode {
    // Reads ACTIONS_ID_TOKEN_REQUEST_URL, ACTIONS_ID_TOKEN_REQUEST_TOKEN, AZURE_CLIENT_ID and
    // AZURE_TENANT_ID.
    let credential = match GitHubActionsCredential::builder().build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let scope = "https://management.azure.com/.default";
    match credential
        .get_token(&[scope], &TokenRequestOptions::default())
        .await
    {
        Ok(token) => {
            println!("got a token for {scope}, expires {:?}", token.expires_on);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}", identity_chain::display_chain(&e));
            ExitCode::FAILURE
        }
    }
}
