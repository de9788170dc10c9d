//! The settings every credential builder of this crate shares, and how they become an
//! [`EntraClient`]: tenant and client ids, authority, allowed tenants, the [`Runtime`] and the
//! retry policy.

use std::sync::Arc;

use identity_core::http::{HttpClient, Pipeline};
use identity_core::retry::RetryPolicy;
use identity_core::scope::validate_tenant_id;
use identity_core::{Env, Error, ErrorKind, Runtime, Secret};

use crate::authority::Authority;
use crate::client::{ClientAuth, EntraClient, Inner, Tenancy};
use crate::http::ReqwestClient;

/// Tenants, besides the configured one, that the environment-reading credentials may request
/// tokens for: comma-separated tenant ids, or `*` for any.
pub const AZURE_ADDITIONALLY_ALLOWED_TENANTS: &str = "AZURE_ADDITIONALLY_ALLOWED_TENANTS";

/// Settings every credential builder in this crate shares.
#[derive(Clone, Debug, Default)]
pub(crate) struct CommonOptions {
    pub(crate) tenant_id: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) authority_host: Option<String>,
    /// `None` until set in the builder.
    pub(crate) additionally_allowed_tenants: Option<Vec<String>>,
    /// Whether `AZURE_ADDITIONALLY_ALLOWED_TENANTS` applies when the builder set no list (the
    /// credentials that read their settings from the environment).
    pub(crate) read_allowed_tenants_from_env: bool,
    /// Resolved (the process environment read once) when a builder builds.
    pub(crate) runtime: Runtime,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) allow_insecure_loopback_authority: bool,
}

impl CommonOptions {
    /// The environment the credential reads (the runtime's; one snapshot once
    /// [`resolve`](Self::resolve) has run).
    pub(crate) fn env(&self) -> Env {
        self.runtime.env_snapshot()
    }

    /// Takes the process environment snapshot now, if the runtime holds no environment, so
    /// that everything the builder reads sees the same one.
    pub(crate) fn resolve(&mut self) {
        self.runtime = std::mem::take(&mut self.runtime).resolved();
    }

    /// For the credentials that read their settings from the environment: resolves the
    /// runtime, takes the tenant and client ids from `tenant_var` and `client_var` when the
    /// builder set none (or blank ones), lets `AZURE_ADDITIONALLY_ALLOWED_TENANTS` apply, and
    /// returns the environment.
    pub(crate) fn resolve_from_env(&mut self, tenant_var: &str, client_var: &str) -> Env {
        self.resolve();
        let env = self.env();
        self.tenant_id = setting_or_env(&env, self.tenant_id.take(), tenant_var);
        self.client_id = setting_or_env(&env, self.client_id.take(), client_var);
        self.read_allowed_tenants_from_env = true;
        env
    }

    /// The tenant and client ids still missing after
    /// [`resolve_from_env`](Self::resolve_from_env), as `tenant_id (<tenant_var>)` items.
    pub(crate) fn missing_ids(&self, tenant_var: &str, client_var: &str) -> Vec<String> {
        let mut missing = Vec::new();
        if self.tenant_id.is_none() {
            missing.push(format!("tenant_id ({tenant_var})"));
        }
        if self.client_id.is_none() {
            missing.push(format!("client_id ({client_var})"));
        }
        missing
    }

    /// The tenancy of a credential configured with `tenant`, reading `env`.
    pub(crate) fn tenancy(&self, tenant: &str, env: Env) -> Tenancy {
        Tenancy {
            tenant: tenant.to_owned(),
            allowed: self.allowed_tenants(&env),
            env,
        }
    }

    /// The additionally allowed tenants: the builder's list, else (for credentials that read
    /// the environment) `AZURE_ADDITIONALLY_ALLOWED_TENANTS`, comma-separated, blanks dropped.
    pub(crate) fn allowed_tenants(&self, env: &Env) -> Vec<String> {
        if let Some(list) = &self.additionally_allowed_tenants {
            return list.clone();
        }
        if !self.read_allowed_tenants_from_env {
            return Vec::new();
        }
        env.non_blank(AZURE_ADDITIONALLY_ALLOWED_TENANTS)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The pipeline requests go through: the runtime's client (default
    /// [`ReqwestClient::shared`]), clock, sleeper and limits, and the retry policy.
    pub(crate) fn pipeline(&self, name: &'static str) -> Result<Pipeline, Error> {
        let client: Arc<dyn HttpClient> = match self.runtime.custom_http_client() {
            Some(client) => client.clone(),
            None => ReqwestClient::shared().map_err(|e| e.with_credential(name))?,
        };
        Ok(self
            .runtime
            .pipeline(move || client, self.retry.clone().unwrap_or_default()))
    }

    /// The tenant id set, trimmed, unless blank.
    pub(crate) fn tenant(&self) -> Option<&str> {
        trimmed(self.tenant_id.as_deref())
    }

    /// The client id set, trimmed, unless blank.
    pub(crate) fn client(&self) -> Option<&str> {
        trimmed(self.client_id.as_deref())
    }

    /// The tenant id, which must be set and valid.
    pub(crate) fn required_tenant(&self, name: &'static str) -> Result<&str, Error> {
        let tenant = self.tenant().ok_or_else(|| {
            Error::invalid_configuration(name, "a tenant id is required; set tenant_id")
        })?;
        valid_tenant(name, tenant)
    }

    /// The client id, which must be set.
    pub(crate) fn required_client(&self, name: &'static str) -> Result<&str, Error> {
        self.client().ok_or_else(|| {
            Error::invalid_configuration(name, "a client id is required; set client_id")
        })
    }

    /// The authority: the builder's host, else `fallback` (a record's), else
    /// `AZURE_AUTHORITY_HOST`, else the public cloud.
    pub(crate) fn authority(
        &self,
        name: &'static str,
        fallback: Option<&str>,
        env: &Env,
    ) -> Result<Authority, Error> {
        let explicit = self.authority_host.as_deref().or(fallback);
        Authority::resolve(name, explicit, env, self.allow_insecure_loopback_authority)
    }

    /// Validates the settings and builds the client.
    pub(crate) fn build(
        &self,
        name: &'static str,
        kind: &'static str,
        auth: ClientAuth,
    ) -> Result<EntraClient, Error> {
        let env = self.env();
        let tenant = self.required_tenant(name)?;
        let client_id = self.required_client(name)?;
        let authority = self.authority(name, None, &env)?;
        let pipeline = self.pipeline(name)?;
        let clock = pipeline.clock().clone();
        let identity = format!("entra/{kind}/{}/{client_id}", authority.as_str());
        Ok(EntraClient::new(Inner {
            name,
            source: kind,
            detail: None,
            identity,
            authority,
            tenancy: self.tenancy(tenant, env),
            client_id: client_id.to_owned(),
            pipeline,
            clock,
            auth,
        }))
    }
}

/// `value` trimmed, unless blank.
fn trimmed(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// `tenant` if it is a valid tenant id, else a configuration error.
pub(crate) fn valid_tenant<'t>(name: &'static str, tenant: &'t str) -> Result<&'t str, Error> {
    validate_tenant_id(name, tenant).map_err(|e| e.with_kind(ErrorKind::InvalidConfiguration))?;
    Ok(tenant)
}

/// A builder setting when set and not blank, else the environment variable `var` when not
/// blank.
pub(crate) fn setting_or_env(env: &Env, explicit: Option<String>, var: &str) -> Option<String> {
    explicit
        .filter(|v| !v.trim().is_empty())
        .or_else(|| env.non_blank(var).map(str::to_owned))
}

/// A secret builder setting when set and not blank, else the environment variable `var` when
/// not blank.
pub(crate) fn secret_or_env(env: &Env, explicit: Option<Secret>, var: &str) -> Option<Secret> {
    explicit
        .filter(|t| !t.secret().trim().is_empty())
        .or_else(|| env.non_blank(var).map(Secret::from))
}
