//! `aks_identity_binding`: workload identity on AKS through the identity-binding token proxy.
//!
//! AKS sets `AZURE_KUBERNETES_TOKEN_PROXY`, `AZURE_KUBERNETES_SNI_NAME` and
//! `AZURE_KUBERNETES_CA_FILE` (or `AZURE_KUBERNETES_CA_DATA`) in the pod, beside the usual
//! `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_FEDERATED_TOKEN_FILE`. The proxy is opt-in:
//! without `enable_kubernetes_token_proxy(true)` the credential goes to Microsoft Entra ID
//! directly, and `DefaultAzureCredential` never uses the proxy.
//!
//! ```text
//! cargo run -p identity-examples --example aks_identity_binding
//! ```
//!
//! It prints the token's expiry, never the token.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example program reports on stdout and stderr"
)]

use std::process::ExitCode;

use identity_chain::{TokenCredential, TokenRequestOptions, WorkloadIdentityCredential};

#[tokio::main]
async fn main() -> ExitCode {
    let credential = match WorkloadIdentityCredential::builder()
        .enable_kubernetes_token_proxy(true)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let scope = "https://vault.azure.net/.default";
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
