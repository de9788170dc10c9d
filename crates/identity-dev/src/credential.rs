//! [`DeveloperToolCredential`] and its builder: what the three developer-tool credentials
//! share. [`AzureCliCredential`](crate::AzureCliCredential),
//! [`AzurePowerShellCredential`](crate::AzurePowerShellCredential) and
//! [`AzureDeveloperCliCredential`](crate::AzureDeveloperCliCredential) are this credential
//! for one tool each.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use identity_core::cache::{KeyRef, TokenCache};
use identity_core::{AccessToken, BoxFuture, Error, Runtime, TokenCredential, TokenRequestOptions};

use crate::process::Executor;
use crate::settings::{Resolved, ToolSettings, validate_scopes};
use crate::tool::{DeveloperTool, Request, ToolSpec};

/// Gets tokens from a developer tool `T` the user is signed in to, caching them until shortly
/// before they expire.
///
/// Use it through its aliases: [`AzureCliCredential`](crate::AzureCliCredential),
/// [`AzurePowerShellCredential`](crate::AzurePowerShellCredential),
/// [`AzureDeveloperCliCredential`](crate::AzureDeveloperCliCredential).
///
/// `Debug` shows the tenant, the tool's options and the timeout, never a token.
pub struct DeveloperToolCredential<T> {
    shared: Arc<Shared<T>>,
    cache: TokenCache,
    identity: String,
}

struct Shared<T> {
    config: Resolved,
    tool: T,
}

impl<T: DeveloperTool> DeveloperToolCredential<T> {
    /// A builder with the defaults: the tool's default tenant (and, for the Azure CLI, its
    /// default subscription), the process environment and clock, a 10 s timeout.
    pub fn builder() -> DeveloperToolCredentialBuilder<T> {
        DeveloperToolCredentialBuilder::default()
    }

    /// The tool with every default (`builder().build()`).
    ///
    /// # Errors
    /// As [`DeveloperToolCredentialBuilder::build`].
    pub fn new() -> Result<Self, Error> {
        Self::builder().build()
    }

    async fn token(
        &self,
        scopes: &[&str],
        options: &TokenRequestOptions,
    ) -> Result<AccessToken, Error> {
        let name = T::TOOL.credential;
        validate_scopes(name, scopes)?;
        let targets = T::targets(scopes)?;
        let tenant = self.shared.config.tenant_for(name, options.tenant())?;
        let mut request = Request {
            targets,
            tenant,
            claims: None,
        };
        if let Some(claims) = options.claims_challenge() {
            request.claims = Some(T::claims(claims, scopes, request.tenant.as_deref())?);
        }
        let key = KeyRef::new(
            &self.identity,
            scopes,
            request.tenant.as_deref(),
            options.enable_cae,
        );
        self.cache
            .get_or_fetch(key, request.claims.is_some(), || {
                fetch(self.shared.clone(), request.clone())
            })
            .await
    }
}

/// Runs the tool once: the command, the classification of its exit, the token it printed.
async fn fetch<T: ToolSpec>(
    shared: Arc<Shared<T>>,
    request: Request,
) -> Result<AccessToken, Error> {
    let output = shared.tool.run(&shared.config, &request).await?;
    T::classify(&output, request.tenant.as_deref())?;
    shared.tool.parse(&shared.config, output.stdout())
}

impl<T: DeveloperTool> TokenCredential for DeveloperToolCredential<T> {
    fn get_token<'a>(
        &'a self,
        scopes: &'a [&'a str],
        options: &'a TokenRequestOptions,
    ) -> BoxFuture<'a, Result<AccessToken, Error>> {
        identity_core::trace::traced(
            T::TOOL.credential,
            T::TOOL.source,
            self.token(scopes, options),
        )
    }

    fn name(&self) -> &'static str {
        T::TOOL.credential
    }
}

impl<T: DeveloperTool> fmt::Debug for DeveloperToolCredential<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut fields = f.debug_struct(T::TOOL.credential);
        fields.field("tenant_id", &self.shared.config.tenant_id);
        self.shared.tool.debug_fields(&mut fields);
        fields
            .field("process_timeout", &self.shared.config.process_timeout)
            .finish_non_exhaustive()
    }
}

/// Builds a [`DeveloperToolCredential`]: the settings every tool shares are here, a tool's own
/// options (the Azure CLI's subscription) on the builder for that tool.
#[derive(Debug, Default)]
pub struct DeveloperToolCredentialBuilder<T> {
    pub(crate) settings: ToolSettings,
    pub(crate) tool: T,
}

impl<T: DeveloperTool> DeveloperToolCredentialBuilder<T> {
    /// The tenant to request tokens from. Without one, the tool's default tenant is used.
    #[must_use]
    pub fn tenant_id(self, tenant_id: impl Into<String>) -> Self {
        self.with(|s| s.tenant_id = Some(tenant_id.into()))
    }

    /// Tenants, besides the configured one, that a request may name in
    /// [`TokenRequestOptions::tenant_id`]; `"*"` allows any.
    #[must_use]
    pub fn additionally_allowed_tenants<I, S>(self, tenants: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let tenants = tenants.into_iter().map(Into::into).collect();
        self.with(|s| s.additionally_allowed_tenants = tenants)
    }

    /// How long the tool may run before it is killed (default 10 s).
    #[must_use]
    pub fn process_timeout(self, timeout: Duration) -> Self {
        self.with(|s| s.process_timeout = timeout)
    }

    /// The environment and clock: the tool is looked up on the runtime's `PATH` and runs with
    /// its environment (default: a snapshot of the process environment taken at `build`); the
    /// token cache reads its clock. The runtime's sleeper, HTTP client and limits are unused:
    /// the tool does the network work.
    #[must_use]
    pub fn runtime(self, runtime: Runtime) -> Self {
        self.with(|s| s.runtime = runtime)
    }

    /// Runs the tool through `executor` instead of [`TokioExecutor`](crate::process::TokioExecutor)
    /// (for tests, or to intercept the tool).
    #[must_use]
    pub fn executor(self, executor: Arc<dyn Executor>) -> Self {
        self.with(|s| s.executor = Some(executor))
    }

    /// Builds the credential.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidConfiguration`](identity_core::ErrorKind::InvalidConfiguration) for a
    /// malformed tenant id, a zero timeout, or a tool option the tool refuses (the Azure CLI's
    /// subscription).
    pub fn build(self) -> Result<DeveloperToolCredential<T>, Error> {
        self.tool.check()?;
        let (config, cache) = self.settings.resolve(T::TOOL.credential)?;
        let identity = self.tool.cache_identity();
        Ok(DeveloperToolCredential {
            shared: Arc::new(Shared {
                config,
                tool: self.tool,
            }),
            cache,
            identity,
        })
    }

    #[cfg(test)]
    pub(crate) fn platform(self, platform: crate::process::Platform) -> Self {
        self.with(|s| s.platform = platform)
    }

    fn with(mut self, change: impl FnOnce(&mut ToolSettings)) -> Self {
        change(&mut self.settings);
        self
    }
}
