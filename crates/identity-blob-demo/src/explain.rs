//! Turning failures into explanations a person can act on.
//!
//! The demo classifies every failure into a [`Failure`] (service answer, credential error,
//! or transport/local problem) and [`explain`]s it with what is known about the token
//! (its decoded, unverified claims) and the account. Explanations never contain a token:
//! [`explain`] takes claims, not the token, and the final text is passed through
//! [`redact`] with the token anyway.

use std::fmt;

use crate::jwt::Claims;

/// The audience Blob Storage accepts (with or without a trailing slash).
pub const STORAGE_AUDIENCE: &str = "https://storage.azure.com";

/// What went wrong, independent of the SDK's error types.
#[derive(Clone, Debug)]
pub enum Failure {
    /// The storage service answered with an error status.
    Service {
        /// HTTP status.
        status: u16,
        /// The `x-ms-error-code` / `<Code>`, e.g. `AuthorizationPermissionMismatch`.
        code: Option<String>,
        /// The service's message, first line only.
        message: Option<String>,
    },
    /// The credential could not produce a token. The text is the credential's full report
    /// (for a chain: every member and why it failed).
    Credential(String),
    /// Anything else: connection, TLS, I/O, a downloaded copy that differs.
    Other(String),
}

/// What the explanation may mention besides the failure.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The storage account's name, for the `az` command.
    pub account: Option<String>,
    /// The account URL as given.
    pub account_url: String,
    /// The type name of the credential that produced the token.
    pub credential: Option<String>,
    /// The token's decoded claims, if it was a JWT.
    pub claims: Option<Claims>,
}

/// A failed demo step, with its explanation.
#[derive(Clone, Debug)]
pub struct DemoError {
    /// The step that failed, e.g. `create container`.
    pub step: String,
    /// The explanation (possibly several lines).
    pub explanation: String,
    /// The classified failure, for tests and callers that branch on it.
    pub failure: Failure,
}

impl fmt::Display for DemoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.step, self.explanation)
    }
}

impl std::error::Error for DemoError {}

impl DemoError {
    /// A failure of `step`, explained with `context`.
    pub fn new(step: impl Into<String>, failure: Failure, context: &Context) -> Self {
        Self {
            step: step.into(),
            explanation: explain(&failure, context),
            failure,
        }
    }

    /// A failure that needs no context (local setup: files, processes, arguments).
    pub fn local(step: impl Into<String>, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            step: step.into(),
            explanation: message.clone(),
            failure: Failure::Other(message),
        }
    }

    /// Removes `secret` from the explanation, should any layer have echoed it.
    #[must_use]
    pub fn redacted(mut self, secret: &str) -> Self {
        self.explanation = redact(&self.explanation, secret);
        self.failure = match self.failure {
            Failure::Credential(t) => Failure::Credential(redact(&t, secret)),
            Failure::Other(t) => Failure::Other(redact(&t, secret)),
            Failure::Service {
                status,
                code,
                message,
            } => Failure::Service {
                status,
                code,
                message: message.map(|m| redact(&m, secret)),
            },
        };
        self
    }
}

/// Replaces every occurrence of `secret` (if non-empty) by `***`.
pub fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        text.to_owned()
    } else {
        text.replace(secret, "***")
    }
}

fn audience_is_storage(aud: &str) -> bool {
    let aud = aud.trim_end_matches('/');
    aud.eq_ignore_ascii_case(STORAGE_AUDIENCE)
        || aud.ends_with(".blob.core.windows.net")
        || aud.ends_with(".core.windows.net")
}

/// The explanation for `failure`.
pub fn explain(failure: &Failure, cx: &Context) -> String {
    let credential = cx.credential.as_deref().unwrap_or("the credential");
    match failure {
        Failure::Credential(report) => format!(
            "no token: the credential could not get a token for {STORAGE_AUDIENCE}.\n{report}"
        ),
        Failure::Other(message) => {
            let mut text = message.clone();
            let lower = message.to_ascii_lowercase();
            if lower.contains("certificate") || lower.contains("unknownissuer") {
                text.push_str(
                    "\nthe endpoint's TLS certificate is not trusted: for an emulator with a \
                     self-signed certificate pass --ca-file <its certificate PEM>",
                );
            } else if lower.contains("connect") || lower.contains("dns") {
                text.push_str(&format!(
                    "\ncheck that {} is reachable from here (account name, network rules, proxy)",
                    cx.account_url
                ));
            }
            text
        }
        Failure::Service {
            status,
            code,
            message,
        } => {
            let code = code.as_deref().unwrap_or("");
            let service = message
                .as_deref()
                .map(|m| format!("; the service says: {m}"))
                .unwrap_or_default();
            let claims = cx.claims.clone().unwrap_or_default();
            let aud = claims.audience.as_deref();
            match (*status, code) {
                (403, "AuthorizationPermissionMismatch") => role_hint(cx, &claims, &service),
                (401, _) | (403, "AuthenticationFailed" | "InvalidAuthenticationInfo") => match aud
                {
                    Some(aud) if !audience_is_storage(aud) => format!(
                        "the storage endpoint refused the token's audience \"{aud}\" \
                         (HTTP {status} {code}{service}). The token came from {credential} and \
                         was issued for \"{aud}\", but Blob Storage accepts only tokens for \
                         {STORAGE_AUDIENCE}: make sure the token is requested for the scope \
                         {STORAGE_AUDIENCE}/.default and that the identity endpoint honours the \
                         requested resource"
                    ),
                    Some(aud) => format!(
                        "the storage endpoint refused the token from {credential} \
                             (audience \"{aud}\", tenant {}). The audience is right: check that the \
                             identity belongs to the account's tenant and that this machine's clock \
                             is correct (HTTP {status} {code}{service})",
                        claims.tenant_id.as_deref().unwrap_or("unknown")
                    ),
                    None => format!(
                        "the storage endpoint refused the token from {credential}; it is not a \
                             JWT, so its audience cannot be shown. Blob Storage needs a token for \
                             {STORAGE_AUDIENCE} (HTTP {status} {code}{service})"
                    ),
                },
                (403, "AuthorizationFailure") => format!(
                    "the request was not authorized (HTTP 403 AuthorizationFailure{service}); the \
                     account may block this network (firewall, private endpoint) or disallow \
                     this kind of authentication"
                ),
                (404, "ContainerNotFound" | "BlobNotFound") => {
                    format!("not found (HTTP 404 {code}{service})")
                }
                (409, "ContainerAlreadyExists") => format!(
                    "the container already exists (HTTP 409{service}); pass another --container"
                ),
                (409, "ContainerBeingDeleted") => format!(
                    "a container with this name is being deleted (HTTP 409{service}); wait a \
                     minute or pass another --container"
                ),
                _ => format!("HTTP {status} {code}{service}"),
            }
        }
    }
}

fn role_hint(cx: &Context, claims: &Claims, service: &str) -> String {
    let account = cx.account.as_deref().unwrap_or("<account>");
    let oid = claims
        .object_id
        .as_deref()
        .unwrap_or("<object id of the identity>");
    let principal = claims.principal_type().as_az_arg();
    let credential = cx.credential.as_deref().unwrap_or("the credential");
    format!(
        "the identity authenticated (token from {credential}, object id {oid}) but has no data \
         role on storage account \"{account}\" (HTTP 403 AuthorizationPermissionMismatch{service}).\n\
         Blob data access needs the role \"Storage Blob Data Contributor\" (or \"Storage Blob \
         Data Reader\" for read-only use). Grant it, wait a few minutes for it to take effect, \
         and run the demo again:\n\
         \n  az role assignment create --role \"Storage Blob Data Contributor\" \
         --assignee-object-id {oid} --assignee-principal-type {principal} \
         --scope \"$(az storage account show --name {account} --query id --output tsv)\""
    )
}

/// The storage account's name from its URL: the first label of `<name>.blob.core.windows.net`
/// (and other clouds' suffixes), or the first path segment of a path-style URL (Azurite:
/// `https://127.0.0.1:10000/devstoreaccount1`).
pub fn account_name(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let host = host.split(':').next().unwrap_or(host);
    if let Some((name, suffix)) = host.split_once('.') {
        if suffix.starts_with("blob.") && !name.is_empty() {
            return Some(name.to_owned());
        }
    }
    path.split('/').find(|s| !s.is_empty()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLANTED: &str = "eyJhbGciOiJSUzI1NiJ9.planted-token.sig";

    fn cx(aud: &str, oid: &str, idtyp: Option<&str>) -> Context {
        Context {
            account: Some("contosodata".into()),
            account_url: "https://contosodata.blob.core.windows.net".into(),
            credential: Some("AzureCliCredential".into()),
            claims: Some(Claims {
                audience: Some(aud.into()),
                object_id: Some(oid.into()),
                tenant_id: Some("tenant-1".into()),
                identity_type: idtyp.map(str::to_owned),
                ..Claims::default()
            }),
        }
    }

    fn service(status: u16, code: &str) -> Failure {
        Failure::Service {
            status,
            code: Some(code.into()),
            message: Some("This request is not authorized to perform this operation.".into()),
        }
    }

    #[test]
    fn permission_mismatch_prints_the_az_command_with_the_account_and_oid() {
        let text = explain(
            &service(403, "AuthorizationPermissionMismatch"),
            &cx(STORAGE_AUDIENCE, "1111-oid", Some("user")),
        );
        assert!(text.contains("Storage Blob Data Contributor"), "{text}");
        assert!(text.contains("Storage Blob Data Reader"), "{text}");
        assert!(
            text.contains(
                "az role assignment create --role \"Storage Blob Data Contributor\" \
                 --assignee-object-id 1111-oid --assignee-principal-type User \
                 --scope \"$(az storage account show --name contosodata --query id --output tsv)\""
            ),
            "{text}"
        );
    }

    #[test]
    fn managed_identities_are_assigned_as_service_principals() {
        let text = explain(
            &service(403, "AuthorizationPermissionMismatch"),
            &cx(STORAGE_AUDIENCE, "2222", Some("app")),
        );
        assert!(
            text.contains("--assignee-principal-type ServicePrincipal"),
            "{text}"
        );
    }

    #[test]
    fn a_wrong_audience_is_named_with_the_credential() {
        let text = explain(
            &service(403, "AuthenticationFailed"),
            &cx("https://wrong.example", "1", None),
        );
        assert!(
            text.contains("refused the token's audience \"https://wrong.example\""),
            "{text}"
        );
        assert!(text.contains("AzureCliCredential"), "{text}");
        assert!(text.contains(STORAGE_AUDIENCE), "{text}");
    }

    #[test]
    fn a_right_audience_that_is_refused_points_at_tenant_and_clock() {
        for status in [401, 403] {
            let text = explain(
                &service(status, "AuthenticationFailed"),
                &cx("https://storage.azure.com/", "1", None),
            );
            assert!(text.contains("audience is right"), "{text}");
            assert!(text.contains("tenant-1"), "{text}");
        }
    }

    #[test]
    fn credential_failures_carry_the_full_report() {
        let report = "DefaultAzureCredential: no credential produced a token:\n  - EnvironmentCredential: not configured";
        let text = explain(&Failure::Credential(report.into()), &Context::default());
        assert!(text.contains(report), "{text}");
    }

    #[test]
    fn certificate_problems_suggest_ca_file() {
        let text = explain(
            &Failure::Other("invalid peer certificate: UnknownIssuer".into()),
            &Context::default(),
        );
        assert!(text.contains("--ca-file"), "{text}");
    }

    #[test]
    fn no_explanation_contains_the_token() {
        let failures = [
            service(403, "AuthorizationPermissionMismatch"),
            service(403, "AuthenticationFailed"),
            service(401, ""),
            service(403, "AuthorizationFailure"),
            service(500, "InternalError"),
            Failure::Credential("x".into()),
            Failure::Other(format!("echo {PLANTED}")),
        ];
        for failure in failures {
            let e = DemoError::new("step", failure, &cx("https://wrong.example", "o", None))
                .redacted(PLANTED);
            for text in [e.to_string(), format!("{e:?}")] {
                assert!(!text.contains("planted-token"), "{text}");
            }
        }
    }

    #[test]
    fn account_names_come_from_host_or_path() {
        assert_eq!(
            account_name("https://contosodata.blob.core.windows.net").as_deref(),
            Some("contosodata")
        );
        assert_eq!(
            account_name("https://x.blob.core.chinacloudapi.cn").as_deref(),
            Some("x")
        );
        assert_eq!(
            account_name("https://127.0.0.1:10000/devstoreaccount1").as_deref(),
            Some("devstoreaccount1")
        );
        assert_eq!(account_name("https://example.com"), None);
    }

    #[test]
    fn redact_removes_every_occurrence() {
        assert_eq!(redact("a SECRET b SECRET", "SECRET"), "a *** b ***");
        assert_eq!(redact("a", ""), "a");
    }
}
