//! The whole demo on one machine, with no Azure account: Azurite with OAuth over HTTPS, a
//! local App Service managed-identity endpoint, and the blob demo using
//! `DefaultAzureCredential` in an environment exactly like App Service's: only
//! `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`, passed as an injected [`identity_core::Env`]
//! (never through the process environment), so the chain's managed-identity member produces
//! the token, as it would on App Service.
//!
//! Everything started here is stopped here, on success, on failure and on Ctrl-C: the
//! endpoint's task is ended and Azurite's process group is killed and reaped.

use std::path::PathBuf;
use std::time::Duration;

use crate::azurite::{self, Azurite};
use crate::blob::{self, DemoOptions, DemoSummary, Payload};
use crate::credential::{CredentialChoice, CredentialKind, make_credential};
use crate::explain::DemoError;
use crate::local_msi::{LocalMsi, LocalMsiConfig};
use crate::output::Output;
use crate::random;

/// Options for [`run_local`].
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// Where Azurite is (or gets) installed.
    pub install_dir: PathBuf,
    /// Make the endpoint issue tokens for this audience (to see a refusal).
    pub audience_override: Option<String>,
    /// What to upload.
    pub payload: Payload,
    /// The container name; random when `None`.
    pub container: Option<String>,
    /// Leave the container in Azurite (it is discarded with Azurite's temp folder anyway).
    pub keep: bool,
    /// Stop cleanly on Ctrl-C (binaries); tests leave the process's signal handling alone.
    pub handle_ctrl_c: bool,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self {
            install_dir: azurite::default_install_dir(),
            audience_override: None,
            payload: Payload::Generated(blob::DEFAULT_PAYLOAD),
            container: None,
            keep: false,
            handle_ctrl_c: false,
        }
    }
}

/// Installs (if needed) and starts Azurite, starts the local managed-identity endpoint, runs
/// the demo against them, and stops both.
///
/// # Errors
/// The failed step with its explanation: npm missing, Azurite not starting, or any demo step.
pub async fn run_local(
    options: &LocalOptions,
    output: &mut Output,
) -> Result<DemoSummary, DemoError> {
    if !options.handle_ctrl_c {
        return run_local_inner(options, output).await;
    }
    // Dropping the inner future on Ctrl-C drops the guards it holds: the endpoint stops and
    // Azurite's process group is killed and reaped (see `Azurite`'s Drop), as is npm.
    tokio::select! {
        outcome = run_local_inner(options, output) => outcome,
        _ = tokio::signal::ctrl_c() => Err(DemoError::local(
            "run the local demo",
            "interrupted by Ctrl-C; Azurite and the identity endpoint were stopped",
        )),
    }
}

async fn run_local_inner(
    options: &LocalOptions,
    output: &mut Output,
) -> Result<DemoSummary, DemoError> {
    let fresh = !azurite::is_installed(&options.install_dir);
    if fresh {
        output.line(format!(
            "azurite    installing azurite@{} with npm into {} (once)",
            azurite::AZURITE_VERSION,
            options.install_dir.display(),
        ));
    }
    let launcher = azurite::ensure_installed(&options.install_dir).await?;
    output.line(format!(
        "azurite    azurite@{} {} in {}",
        azurite::AZURITE_VERSION,
        if fresh {
            "installed"
        } else {
            "already installed"
        },
        options.install_dir.display(),
    ));
    let azurite = Azurite::start(&launcher).await?;
    output.line(format!(
        "azurite    listening on {} (pid {}, OAuth on, HTTPS with a throwaway certificate)",
        azurite.account_url(),
        azurite
            .pid()
            .map_or_else(|| "?".to_owned(), |p| p.to_string()),
    ));

    let outcome = with_endpoint(options, &azurite, output).await;
    azurite.shutdown().await;
    output.line(match &outcome {
        Ok(_) => "stopped    Azurite and the local identity endpoint",
        Err(_) => "stopped    Azurite and the local identity endpoint (after the failure above)",
    });
    outcome
}

async fn with_endpoint(
    options: &LocalOptions,
    azurite: &Azurite,
    output: &mut Output,
) -> Result<DemoSummary, DemoError> {
    let secret = random::random_secret()
        .map_err(|e| DemoError::local("start the identity endpoint", e.to_string()))?;
    let mut config = LocalMsiConfig::new(secret);
    config
        .audience_override
        .clone_from(&options.audience_override);
    let msi = LocalMsi::start(config).await.map_err(|e| {
        DemoError::local(
            "start the identity endpoint",
            format!("cannot bind 127.0.0.1: {e}"),
        )
    })?;
    output.line(format!(
        "identity   App Service endpoint IDENTITY_ENDPOINT={} IDENTITY_HEADER=*** (unsigned development tokens{})",
        msi.endpoint(),
        options
            .audience_override
            .as_deref()
            .map(|a| format!(", audience forced to {a}"))
            .unwrap_or_default(),
    ));

    let credential = make_credential(
        &CredentialChoice {
            kind: CredentialKind::Default,
            identity: None,
        },
        msi.app_service_env(),
    )
    .map_err(|e| DemoError::local("build the credential", e.to_string()))?;

    output.line(
        "credential DefaultAzureCredential, in an environment holding only IDENTITY_ENDPOINT \
         and IDENTITY_HEADER (as on App Service)",
    );

    let mut demo = DemoOptions::new(azurite.account_url());
    demo.ca_pem = Some(azurite.ca_pem().as_bytes().to_vec());
    demo.payload = options.payload.clone();
    demo.keep = options.keep;
    if let Some(container) = &options.container {
        demo.container.clone_from(container);
    }

    let outcome = blob::run_demo(&demo, credential, output).await;
    let issued = msi.tokens_issued();
    let _ = tokio::time::timeout(Duration::from_secs(5), msi.shutdown()).await;
    if outcome.is_ok() {
        output.line(format!(
            "identity   the endpoint issued {issued} token(s) for the whole run"
        ));
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_types_are_send_sync_and_debug() {
        fn assert_traits<T: Send + Sync + std::fmt::Debug>() {}
        assert_traits::<LocalOptions>();
        assert_traits::<LocalMsi>();
        assert_traits::<Azurite>();
        assert_traits::<DemoError>();
        assert_traits::<DemoOptions>();
        assert_traits::<DemoSummary>();
        assert_traits::<CredentialChoice>();
        fn assert_send<T: Send>(_: &T) {}
        assert_send(&Output::captured().0);
    }

    #[test]
    fn the_local_run_is_a_send_future() {
        fn assert_send<T: Send>(_: &T) {}
        let options = LocalOptions::default();
        let mut output = Output::captured().0;
        let future = run_local(&options, &mut output);
        assert_send(&future);
    }
}
