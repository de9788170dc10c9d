//! `azure_pipelines`: a token in an Azure Pipelines job, through an Azure Resource Manager
//! service connection that uses workload identity federation.
//!
//! ```yaml
//! - task: AzureCLI@2          # sets AZURESUBSCRIPTION_CLIENT_ID, _TENANT_ID, _SERVICE_CONNECTION_ID
//!   inputs:
//!     azureSubscription: my-federated-connection
//!     scriptType: bash
//!     scriptLocation: inlineScript
//!     inlineScript: cargo run -p identity-examples --example azure_pipelines
//!   env:
//!     SYSTEM_ACCESSTOKEN: $(System.AccessToken)   # the pipeline must map it explicitly
//! ```
//!
//! Outside the Azure CLI task, set the three inputs in the builder instead. It prints the
//! token's expiry, never the token.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example program reports on stdout and stderr"
)]

use std::process::ExitCode;

use identity_chain::{AzurePipelinesCredential, TokenCredential, TokenRequestOptions};

#[tokio::main]
async fn main() -> ExitCode {
    // Reads SYSTEM_OIDCREQUESTURI, SYSTEM_ACCESSTOKEN and the AZURESUBSCRIPTION_* variables.
    let credential = match AzurePipelinesCredential::builder().build() {
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
