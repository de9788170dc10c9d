//! `client_certificate`: a service principal with a certificate file that rotates in place
//! (Key Vault's CSI driver, cert-manager), optionally with a password-protected key.
//!
//! ```text
//! cargo run -p identity-examples --example client_certificate -- TENANT CLIENT_ID /path/to/sp.pem
//! ```
//!
//! The key may be encrypted (`openssl pkcs8 -topk8 -v2 aes-256-cbc`, or the traditional
//! `openssl rsa -aes256`); the password comes from `AZURE_CLIENT_CERTIFICATE_PASSWORD`. The
//! credential asks for a token every 60 seconds, five times: replace the file meanwhile
//! and the next request signs with the new certificate (a broken file keeps the old one in use).
//! It prints each token's expiry and the certificate thumbprint in use, never the token.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example program reports on stdout and stderr"
)]

use std::process::ExitCode;
use std::time::Duration;

use identity_chain::{ClientCertificateCredential, TokenCredential, TokenRequestOptions};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [tenant, client, path] = args.as_slice() else {
        eprintln!("usage: client_certificate TENANT CLIENT_ID CERTIFICATE_FILE");
        return ExitCode::from(2);
    };
    let mut builder = ClientCertificateCredential::builder()
        .tenant_id(tenant)
        .client_id(client)
        .certificate_path(path);
    #[allow(
        clippy::disallowed_methods,
        reason = "an example reads its own settings"
    )]
    if let Ok(password) = std::env::var("AZURE_CLIENT_CERTIFICATE_PASSWORD") {
        builder = builder.password(password);
    }
    let credential = match builder.build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // A different resource each round misses the token cache, so each round signs a new
    // assertion with whatever certificate the file holds then.
    let scopes = [
        "https://management.azure.com/.default",
        "https://vault.azure.net/.default",
        "https://storage.azure.com/.default",
        "https://graph.microsoft.com/.default",
        "https://database.windows.net/.default",
    ];
    for (round, scope) in scopes.iter().enumerate() {
        match credential
            .get_token(&[scope], &TokenRequestOptions::default())
            .await
        {
            Ok(token) => println!(
                "round {round}: token for {scope} expires {:?}; {credential:?}",
                token.expires_on
            ),
            Err(e) => eprintln!("round {round}: {}", identity_chain::display_chain(&e)),
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    ExitCode::SUCCESS
}
