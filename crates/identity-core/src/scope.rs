//! Scopes, resources and tenants: conversion and validation shared by every credential.

use crate::{Env, Error};

/// The suffix that turns a resource into its default scope.
pub const DEFAULT_SUFFIX: &str = "/.default";

/// Turns a scope list into the single *resource* that managed identity and the Azure CLI take.
///
/// Exactly one scope is accepted. A trailing `/.default` is removed; nothing else changes (no
/// trailing slash is added or removed, no case change).
///
/// ```
/// use identity_core::scope::scopes_to_resource;
/// assert_eq!(scopes_to_resource("X", &["https://management.azure.com/.default"]).unwrap(), "https://management.azure.com");
/// assert_eq!(scopes_to_resource("X", &["https://management.azure.com//.default"]).unwrap(), "https://management.azure.com/");
/// assert_eq!(scopes_to_resource("X", &["https://vault.azure.net"]).unwrap(), "https://vault.azure.net");
/// assert!(scopes_to_resource("X", &[]).is_err());
/// assert!(scopes_to_resource("X", &["a/.default", "b/.default"]).is_err());
/// ```
///
/// # Errors
/// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) when there is not exactly one
/// non-empty scope.
pub fn scopes_to_resource<'s>(
    credential: &'static str,
    scopes: &[&'s str],
) -> Result<&'s str, Error> {
    match scopes {
        [] => Err(Error::invalid_argument(
            credential,
            "at least one scope is required, e.g. \"https://management.azure.com/.default\"",
        )),
        [scope] => {
            let resource = scope.strip_suffix(DEFAULT_SUFFIX).unwrap_or(scope);
            if resource.trim().is_empty() {
                return Err(Error::invalid_argument(credential, "the scope is empty"));
            }
            Ok(resource)
        }
        _ => Err(Error::invalid_argument(
            credential,
            format!(
                "this credential accepts exactly one scope per request, but {} were given",
                scopes.len()
            ),
        )),
    }
}

/// Checks that every scope is non-empty and holds only ASCII letters, digits and `_ - . : /`,
/// the characters a scope may carry into a process argument.
///
/// # Errors
/// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) naming the rule (never echoing
/// the rejected value, which could be anything).
pub fn validate_scopes(credential: &'static str, scopes: &[&str]) -> Result<(), Error> {
    if scopes.is_empty() {
        return Err(Error::invalid_argument(
            credential,
            "at least one scope is required",
        ));
    }
    for scope in scopes {
        if scope.is_empty()
            || !scope
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.:/".contains(&b))
        {
            return Err(Error::invalid_argument(
                credential,
                "invalid scope: only ASCII letters, digits and the characters _ - . : / are allowed",
            ));
        }
    }
    Ok(())
}

/// True if `tenant` is a syntactically valid tenant id: ASCII letters, digits, `-` and `.`,
/// as a GUID or a domain such as `contoso.onmicrosoft.com`: non-empty labels joined by `.`, so
/// `.`, `..`, `a..b` and a leading or trailing `.` are refused (a tenant id becomes a path
/// segment of the token URL, where `..` would climb out of it).
///
/// ```
/// use identity_core::scope::is_valid_tenant_id;
/// assert!(is_valid_tenant_id("72f988bf-86f1-41af-91ab-2d7cd011db47"));
/// assert!(is_valid_tenant_id("contoso.onmicrosoft.com"));
/// assert!(!is_valid_tenant_id(".."));
/// assert!(!is_valid_tenant_id("contoso..com"));
/// assert!(!is_valid_tenant_id("a/b"));
/// ```
pub fn is_valid_tenant_id(tenant: &str) -> bool {
    tenant.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

/// Checks a tenant id with [`is_valid_tenant_id`].
///
/// # Errors
/// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) naming the rule.
pub fn validate_tenant_id(credential: &'static str, tenant: &str) -> Result<(), Error> {
    if is_valid_tenant_id(tenant) {
        Ok(())
    } else {
        Err(Error::invalid_argument(
            credential,
            "invalid tenant id: only ASCII letters, digits, '-' and '.' are allowed, with no empty part between dots",
        ))
    }
}

/// The variable that turns off per-request tenants.
pub const DISABLE_MULTITENANT_AUTH: &str = "AZURE_IDENTITY_DISABLE_MULTITENANTAUTH";

/// Chooses the tenant for a request by the multi-tenant rule of the reference SDK.
///
/// * requested equal to configured, or nothing requested → configured;
/// * `AZURE_IDENTITY_DISABLE_MULTITENANTAUTH` non-empty, or configured is `adfs` → configured;
/// * nothing configured → requested;
/// * `additionally_allowed` contains `*` or the requested tenant → requested;
/// * otherwise an authentication error naming the tenant and the fix.
///
/// ```
/// use identity_chain::Env;
/// use identity_core::scope::resolve_tenant;
/// let env = Env::empty();
/// assert_eq!(resolve_tenant("X", Some("a"), Some("b"), &["*".into()], &env).unwrap(), Some("b".into()));
/// assert!(resolve_tenant("X", Some("a"), Some("b"), &[], &env).is_err());
/// ```
///
/// # Errors
/// [`ErrorKind::AuthenticationFailed`](crate::ErrorKind::AuthenticationFailed) when the requested
/// tenant is not allowed, and [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) when
/// it is malformed.
pub fn resolve_tenant(
    credential: &'static str,
    configured: Option<&str>,
    requested: Option<&str>,
    additionally_allowed: &[String],
    env: &Env,
) -> Result<Option<String>, Error> {
    let configured = configured.filter(|t| !t.is_empty());
    let Some(requested) = requested.filter(|t| !t.is_empty()) else {
        return Ok(configured.map(str::to_owned));
    };
    validate_tenant_id(credential, requested)?;
    if Some(requested) == configured {
        return Ok(Some(requested.to_owned()));
    }
    if env.non_empty(DISABLE_MULTITENANT_AUTH).is_some()
        || configured.is_some_and(|c| c.eq_ignore_ascii_case("adfs"))
    {
        return Ok(configured.map(str::to_owned));
    }
    if configured.is_none() {
        return Ok(Some(requested.to_owned()));
    }
    if additionally_allowed
        .iter()
        .any(|t| t == "*" || t.eq_ignore_ascii_case(requested))
    {
        return Ok(Some(requested.to_owned()));
    }
    Err(Error::authentication_failed(
        credential,
        format!(
            "the credential is not configured to acquire tokens for tenant {requested}; \
             add it to the additionally allowed tenants, or use \"*\" to allow any tenant"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn resource_conversion_follows_the_reference_rule() {
        let cases = [
            (
                "https://management.azure.com/.default",
                "https://management.azure.com",
            ),
            (
                "https://management.azure.com//.default",
                "https://management.azure.com/",
            ),
            ("api://1234/.default", "api://1234"),
            ("https://vault.azure.net", "https://vault.azure.net"),
            ("https://Vault.Azure.Net/", "https://Vault.Azure.Net/"),
        ];
        for (scope, resource) in cases {
            assert_eq!(
                scopes_to_resource("X", &[scope]).unwrap(),
                resource,
                "{scope}"
            );
        }
    }

    #[test]
    fn resource_conversion_rejects_zero_many_and_empty() {
        for scopes in [&[][..], &["a", "b"][..], &["/.default"][..], &[""][..]] {
            let err = scopes_to_resource("X", scopes).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{scopes:?}");
        }
        let err = scopes_to_resource("X", &["a", "b"]).unwrap_err();
        assert!(err.message().contains("exactly one scope"), "{err}");
    }

    #[test]
    fn scope_validation_refuses_shell_metacharacters_without_echoing_them() {
        for bad in [
            "https://x/.default; rm -rf /",
            "a&&b",
            "$(x)",
            "`x`",
            "a'b",
            "a\"b",
            "a\nb",
            "a b",
            "",
        ] {
            let err = validate_scopes("X", &[bad]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            if !bad.is_empty() {
                assert!(!err.to_string().contains(bad), "{err}");
            }
        }
        validate_scopes(
            "X",
            &["https://management.azure.com/.default", "api://a_b-c.d:1/x"],
        )
        .unwrap();
    }

    #[test]
    fn tenant_validation() {
        for good in [
            "contoso.onmicrosoft.com",
            "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "adfs",
        ] {
            assert!(is_valid_tenant_id(good), "{good}");
        }
        for bad in ["a/b", "a b", "", "t;x", "-$(x)", "a_b"] {
            assert!(!is_valid_tenant_id(bad), "{bad}");
        }
    }

    #[test]
    fn multi_tenant_rule() {
        let env = Env::empty();
        let any = vec!["*".to_owned()];
        let b_only = vec!["B".to_owned()];
        assert_eq!(
            resolve_tenant("X", Some("a"), None, &[], &env)
                .unwrap()
                .as_deref(),
            Some("a")
        );
        assert_eq!(
            resolve_tenant("X", Some("a"), Some("a"), &[], &env)
                .unwrap()
                .as_deref(),
            Some("a")
        );
        assert_eq!(
            resolve_tenant("X", None, Some("b"), &[], &env)
                .unwrap()
                .as_deref(),
            Some("b")
        );
        assert_eq!(
            resolve_tenant("X", Some("a"), Some("b"), &any, &env)
                .unwrap()
                .as_deref(),
            Some("b")
        );
        assert_eq!(
            resolve_tenant("X", Some("a"), Some("b"), &b_only, &env)
                .unwrap()
                .as_deref(),
            Some("b")
        );
        let err = resolve_tenant("X", Some("a"), Some("b"), &[], &env).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
        assert!(err.message().contains("tenant b"), "{err}");
        let disabled = Env::from_pairs([(DISABLE_MULTITENANT_AUTH, "1")]);
        assert_eq!(
            resolve_tenant("X", Some("a"), Some("b"), &[], &disabled)
                .unwrap()
                .as_deref(),
            Some("a")
        );
        assert_eq!(
            resolve_tenant("X", Some("adfs"), Some("b"), &[], &env)
                .unwrap()
                .as_deref(),
            Some("adfs")
        );
        assert_eq!(
            resolve_tenant("X", Some("a"), Some("b/c"), &any, &env)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidArgument
        );
    }
}
