//! This workspace on the hot path (see `hot.rs`).

use std::net::SocketAddr;
use std::sync::Arc;

use azure_core::credentials::TokenCredential as SdkTokenCredential;
use identity_azure_core::AzureCoreCredential;
use identity_chain::DefaultAzureCredential;
use identity_core::{Env, Runtime, TokenCredential, TokenRequest, TokenRequestOptions};
use identity_msi::ManagedIdentityCredential;

use crate::harness::SCOPE_A;
use crate::hot::{HotSubject, Path};

/// This workspace's side of the hot cases.
pub(crate) struct OursHot;

/// One caller.
pub(crate) enum Caller {
    /// `get_token` through `dyn TokenCredential`.
    Credential(Arc<dyn TokenCredential>),
    /// A prepared request.
    Prepared(TokenRequest),
    /// The official SDK's trait, through the adapter.
    Sdk(Arc<dyn SdkTokenCredential>),
}

static OPTIONS: std::sync::LazyLock<TokenRequestOptions> =
    std::sync::LazyLock::new(TokenRequestOptions::default);

fn msi() -> Result<Arc<dyn TokenCredential>, String> {
    ManagedIdentityCredential::builder()
        .runtime(identity_core::Runtime::with_env(Env::from_process()))
        .build()
        .map(|c| Arc::new(c) as Arc<dyn TokenCredential>)
        .map_err(|e| format!("ManagedIdentityCredential build failed: {e}"))
}

fn chain(addr: SocketAddr) -> Result<Arc<dyn TokenCredential>, String> {
    // The App Service variables select managed identity; the IMDS address is loopback anyway.
    DefaultAzureCredential::builder()
        .runtime(Runtime::new())
        .imds_endpoint(format!("http://{addr}/metadata/identity/oauth2/token"))
        .build()
        .map(|c| Arc::new(c) as Arc<dyn TokenCredential>)
        .map_err(|e| format!("DefaultAzureCredential build failed: {e}"))
}

impl HotSubject for OursHot {
    type Caller = Caller;

    async fn caller(path: Path, addr: SocketAddr) -> Result<Option<Caller>, String> {
        let mut caller = match path {
            Path::Msi => Caller::Credential(msi()?),
            Path::Chain => Caller::Credential(chain(addr)?),
            Path::MsiPrepared => Caller::Prepared(TokenRequest::new(
                msi()?,
                &[SCOPE_A],
                TokenRequestOptions::default(),
            )),
            Path::ChainPrepared => Caller::Prepared(TokenRequest::new(
                chain(addr)?,
                &[SCOPE_A],
                TokenRequestOptions::default(),
            )),
            Path::AzureCore => Caller::Sdk(AzureCoreCredential::shared(msi()?)),
        };
        Self::call(&mut caller).await?;
        Ok(Some(caller))
    }

    fn fork(caller: &Caller) -> Caller {
        match caller {
            Caller::Credential(c) => Caller::Credential(Arc::clone(c)),
            Caller::Prepared(r) => Caller::Prepared(r.clone()),
            Caller::Sdk(c) => Caller::Sdk(Arc::clone(c)),
        }
    }

    async fn call(caller: &mut Caller) -> Result<usize, String> {
        let len = match caller {
            Caller::Credential(c) => c
                .get_token(&[SCOPE_A], &OPTIONS)
                .await
                .map(|t| t.token.secret().len()),
            Caller::Prepared(r) => r.token().await.map(|t| t.token.secret().len()),
            Caller::Sdk(c) => {
                return c
                    .get_token(&[SCOPE_A], None)
                    .await
                    .map(|t| t.token.secret().len())
                    .map_err(|e| format!("get_token failed: {e}"));
            }
        };
        len.map_err(|e| format!("get_token failed: {e}"))
    }
}
