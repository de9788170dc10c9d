//! A local development stack for running one's own application (`cargo xtask dev`): Azurite
//! with OAuth over HTTPS and the local App Service managed-identity endpoint, kept running,
//! with the variables an application needs to reach them.
//!
//! The application sees what it would see on App Service: `IDENTITY_ENDPOINT` and
//! `IDENTITY_HEADER` make `DefaultAzureCredential` (or `ManagedIdentityCredential`) ask the
//! local endpoint for a token; the blob account URL points at Azurite; `SSL_CERT_FILE` names
//! Azurite's throwaway certificate, which rustls-based HTTP clients (the official SDK's
//! reqwest among them) then trust. The endpoint issues **unsigned development tokens**:
//! Azurite accepts them, Azure never does.

use std::path::{Path, PathBuf};

use crate::azurite::{self, Azurite};
use crate::explain::DemoError;
use crate::local_msi::{LocalMsi, LocalMsiConfig};
use crate::random;

/// The variable naming the blob account URL in [`DevStack::exports`].
pub const ACCOUNT_URL_VAR: &str = "AZURE_STORAGE_ACCOUNT_URL";

/// Azurite and the local managed-identity endpoint, running. Dropping it stops both and
/// removes the certificate file.
#[derive(Debug)]
pub struct DevStack {
    azurite: Azurite,
    msi: LocalMsi,
    ca_file: PathBuf,
    // Holds the certificate file; removed on drop.
    _dir: tempfile::TempDir,
}

impl DevStack {
    /// Installs Azurite into `install_dir` if needed (npm), starts it with OAuth over HTTPS,
    /// writes its certificate to a temp file, and starts the endpoint on a free loopback port.
    ///
    /// # Errors
    /// npm missing, Azurite not starting, no free port, or the certificate not writable.
    pub async fn start(install_dir: &Path) -> Result<Self, DemoError> {
        let launcher = azurite::ensure_installed(install_dir).await?;
        let azurite = Azurite::start(&launcher).await?;
        let step = "start the development stack";
        let dir = tempfile::Builder::new()
            .prefix("identity-dev-stack-")
            .tempdir()
            .map_err(|e| DemoError::local(step, format!("cannot create a temp folder: {e}")))?;
        let ca_file = dir.path().join("azurite-ca.pem");
        std::fs::write(&ca_file, azurite.ca_pem())
            .map_err(|e| DemoError::local(step, format!("cannot write the certificate: {e}")))?;
        let secret = random::random_secret().map_err(|e| DemoError::local(step, e.to_string()))?;
        let msi = LocalMsi::start(LocalMsiConfig::new(secret))
            .await
            .map_err(|e| DemoError::local(step, format!("cannot listen on 127.0.0.1: {e}")))?;
        Ok(Self {
            azurite,
            msi,
            ca_file,
            _dir: dir,
        })
    }

    /// The blob account URL (`https://127.0.0.1:<port>/devstoreaccount1`).
    pub fn account_url(&self) -> String {
        self.azurite.account_url()
    }

    /// The PEM file with Azurite's certificate.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// What an application's environment needs, in order: `IDENTITY_ENDPOINT`,
    /// `IDENTITY_HEADER` (a per-run random value, only good for this endpoint),
    /// [`ACCOUNT_URL_VAR`] and `SSL_CERT_FILE`.
    pub fn exports(&self) -> Vec<(&'static str, String)> {
        vec![
            ("IDENTITY_ENDPOINT", self.msi.endpoint()),
            (
                "IDENTITY_HEADER",
                self.msi.identity_header().secret().to_owned(),
            ),
            (ACCOUNT_URL_VAR, self.account_url()),
            ("SSL_CERT_FILE", self.ca_file.display().to_string()),
        ]
    }

    /// The number of tokens the endpoint has issued.
    pub fn tokens_issued(&self) -> usize {
        self.msi.tokens_issued()
    }

    /// Stops the endpoint and Azurite (its process group, reaped).
    pub async fn shutdown(self) {
        self.msi.shutdown().await;
        self.azurite.shutdown().await;
    }
}
