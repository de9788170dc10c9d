//! [`Options::backend`]: the credential (or development tokens) the options name, with the
//! upstream guards under its HTTP clients.

use std::sync::Arc;

use identity_chain::{
    CredentialKind, DefaultAzureCredential, ManagedIdentityCredential, ReqwestClient,
};
use identity_core::http::{HttpClient, HyperClient};
use identity_core::{Clock, Env};

use super::{Mode, Options};
use crate::backend::Backend;
use crate::dev::DevTokens;
use crate::guard::UpstreamGuard;
use crate::metrics::Metrics;

impl Options {
    /// Builds the backend and its upstream guards. `env` is what the credentials read;
    /// `clock` dates tokens and retry hints.
    ///
    /// # Errors
    /// The credential's configuration error, as a message.
    pub fn backend(
        &self,
        env: &Env,
        clock: &Arc<dyn Clock>,
        metrics: &Arc<Metrics>,
    ) -> Result<(Backend, Vec<Arc<UpstreamGuard>>), String> {
        let guard = |inner: Arc<dyn HttpClient>| {
            Arc::new(UpstreamGuard::new(
                inner,
                self.guard,
                clock.clone(),
                metrics.clone(),
            ))
        };
        match &self.mode {
            Mode::DevTokens {
                tenant,
                audience_override,
                lifetime,
            } => {
                let mut dev = DevTokens::new(clock.clone());
                if let Some(t) = tenant {
                    dev.tenant.clone_from(t);
                }
                dev.audience_override.clone_from(audience_override);
                dev.lifetime = *lifetime;
                Ok((Backend::DevTokens(Arc::new(dev)), Vec::new()))
            }
            Mode::ManagedIdentity { imds_endpoint } => {
                let msi = guard(HyperClient::shared());
                let (env2, clock, http, imds) = (
                    env.clone(),
                    clock.clone(),
                    msi.clone(),
                    imds_endpoint.clone(),
                );
                let mut backend = Backend::managed_identity(move |id| {
                    let mut builder = ManagedIdentityCredential::builder().identity(id).runtime(
                        identity_core::Runtime::with_env(env2.clone())
                            .clock(clock.clone())
                            .http_client(http.clone()),
                    );
                    if let Some(url) = &imds {
                        builder = builder.imds_endpoint(url.clone());
                    }
                    builder
                });
                if let Backend::ManagedIdentity { max_identities, .. } = &mut backend {
                    *max_identities = self.max_identities;
                }
                // Detect the source now, so a misconfigured host fails at start.
                ManagedIdentityCredential::builder()
                    .runtime(identity_core::Runtime::with_env(env.clone()))
                    .build()
                    .map_err(|e| e.to_string())?;
                Ok((backend, vec![msi]))
            }
            Mode::Credential(kind) => {
                let msi = guard(HyperClient::shared());
                let https = guard(ReqwestClient::shared().map_err(|e| e.to_string())?);
                let mut builder = DefaultAzureCredential::builder()
                    .runtime(
                        identity_core::Runtime::with_env(env.clone())
                            .clock(clock.clone())
                            .http_client(https.clone()),
                    )
                    .managed_identity_http_client(msi.clone());
                if let Some(only) = kind {
                    for k in CredentialKind::ALL {
                        builder = builder.exclude(k, k != *only);
                    }
                }
                let credential = builder.build().map_err(|e| e.to_string())?;
                Ok((Backend::Credential(Arc::new(credential)), vec![msi, https]))
            }
        }
    }
}
