//! The settings every developer-tool credential shares, before and after `build`.

use std::sync::Arc;
use std::time::Duration;

use identity_core::cache::TokenCache;
use identity_core::{Clock, Env, Error, Runtime};

use crate::process::{self, DEFAULT_PROCESS_TIMEOUT, Executor, Platform};

/// What every developer-tool builder holds besides its tool's own options: the tenant rules,
/// the process timeout, the runtime (environment and clock) and the executor.
#[derive(Clone, Debug)]
pub(crate) struct ToolSettings {
    pub(crate) tenant_id: Option<String>,
    pub(crate) additionally_allowed_tenants: Vec<String>,
    pub(crate) process_timeout: Duration,
    pub(crate) runtime: Runtime,
    pub(crate) executor: Option<Arc<dyn Executor>>,
    pub(crate) platform: Platform,
}

impl Default for ToolSettings {
    fn default() -> Self {
        Self {
            tenant_id: None,
            additionally_allowed_tenants: Vec::new(),
            process_timeout: DEFAULT_PROCESS_TIMEOUT,
            runtime: Runtime::new(),
            executor: None,
            platform: Platform::CURRENT,
        }
    }
}

/// What a built credential keeps from its [`ToolSettings`].
#[derive(Debug)]
pub struct Resolved {
    pub(crate) tenant_id: Option<String>,
    pub(crate) additionally_allowed_tenants: Vec<String>,
    pub(crate) process_timeout: Duration,
    pub(crate) env: Env,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) executor: Arc<dyn Executor>,
    pub(crate) platform: Platform,
}

impl ToolSettings {
    /// Validates the configured tenant and fills in the defaults: the runtime's environment
    /// snapshot (taken now when none was set) and clock, the tokio executor.
    pub(crate) fn resolve(self, credential: &'static str) -> Result<(Resolved, TokenCache), Error> {
        let tenant_id = self.tenant_id.filter(|t| !t.is_empty());
        if let Some(tenant) = &tenant_id {
            if !identity_core::scope::is_valid_tenant_id(tenant) || tenant.starts_with('-') {
                return Err(Error::invalid_configuration(
                    credential,
                    "invalid tenant id: only ASCII letters, digits, '-' and '.' are allowed, and it must not start with '-'",
                ));
            }
        }
        if self.process_timeout.is_zero() {
            return Err(Error::invalid_configuration(
                credential,
                "the process timeout must be greater than zero",
            ));
        }
        let runtime = self.runtime.resolved();
        let clock = runtime.clock_or_default();
        Ok((
            Resolved {
                tenant_id,
                additionally_allowed_tenants: self.additionally_allowed_tenants,
                process_timeout: self.process_timeout,
                env: runtime.env_snapshot(),
                clock: clock.clone(),
                executor: self.executor.unwrap_or_else(process::tokio_executor),
                platform: self.platform,
            },
            TokenCache::with_clock(clock),
        ))
    }
}

impl Resolved {
    /// The tenant for one request (multi-tenant rule), checked so that it cannot become an
    /// option on the command line.
    pub(crate) fn tenant_for(
        &self,
        credential: &'static str,
        requested: Option<&str>,
    ) -> Result<Option<String>, Error> {
        let tenant = identity_core::scope::resolve_tenant(
            credential,
            self.tenant_id.as_deref(),
            requested,
            &self.additionally_allowed_tenants,
            &self.env,
        )?;
        if let Some(t) = &tenant {
            process::check_argument(credential, "tenant id", t)?;
        }
        Ok(tenant)
    }
}

/// Validates scopes for a command line: the core character rule plus no leading `-`.
pub(crate) fn validate_scopes(credential: &'static str, scopes: &[&str]) -> Result<(), Error> {
    identity_core::scope::validate_scopes(credential, scopes)?;
    for scope in scopes {
        process::check_argument(credential, "scope", scope)?;
    }
    Ok(())
}
