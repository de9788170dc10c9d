//! Which credential the demo uses: the one place where a command-line choice becomes a
//! [`TokenCredential`].
//!
//! Everything else in the crate works on `Arc<dyn TokenCredential>`, so wiring another
//! credential is a line in [`make_credential`].
//!
//! Wiring:
//! * `default`: `identity_chain::DefaultAzureCredential` built from the same [`Env`]; a
//!   user-assigned identity (`--client-id`, `--resource-id`, `--object-id`) selects the
//!   managed-identity member's identity. It is wrapped so that its
//!   [`TokenCredential::name`] reports the member that produced the last token (for
//!   example `ManagedIdentityCredential`), which is what the demo's summary and
//!   explanations name.
//! * `managed-identity`: `identity_msi::ManagedIdentityCredential`, optionally
//!   user-assigned. On App Service it reads `IDENTITY_ENDPOINT` / `IDENTITY_HEADER` from the
//!   injected [`Env`]; the local demo sets them to its local endpoint.
//! * `azure-cli`: `identity_dev::AzureCliCredential` (`az login` first).
//! * `environment`: `identity_entra::EnvironmentCredential` (`AZURE_TENANT_ID`,
//!   `AZURE_CLIENT_ID` and a secret, certificate or username).
//! * `workload-identity`: `identity_entra::WorkloadIdentityCredential`
//!   (`AZURE_FEDERATED_TOKEN_FILE`, as set on AKS).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use identity_chain::{
    AccessToken, AzureCliCredential, BoxFuture, DefaultAzureCredential, EnvironmentCredential,
    ManagedIdentityCredential, ManagedIdentityId, TokenRequestOptions, WorkloadIdentityCredential,
};
use identity_core::{Env, Error, Runtime, TokenCredential};

const NAME: &str = "identity-blob-demo";

/// The credential named by `--credential`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CredentialKind {
    /// `default`: `DefaultAzureCredential` (see the module docs for the current wiring).
    #[default]
    Default,
    /// `managed-identity`.
    ManagedIdentity,
    /// `azure-cli`.
    AzureCli,
    /// `environment`: a service principal from `AZURE_*` variables.
    Environment,
    /// `workload-identity`: a federated token file (AKS).
    WorkloadIdentity,
}

impl CredentialKind {
    /// All kinds with their command-line names, for `--help`.
    pub const ALL: [(&'static str, Self); 5] = [
        ("default", Self::Default),
        ("managed-identity", Self::ManagedIdentity),
        ("azure-cli", Self::AzureCli),
        ("environment", Self::Environment),
        ("workload-identity", Self::WorkloadIdentity),
    ];

    /// The command-line name.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("default", |(n, _)| n)
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CredentialKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, k)| *k)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|(n, _)| *n).collect();
                format!(
                    "unknown credential \"{s}\"; choose one of: {}",
                    names.join(", ")
                )
            })
    }
}

/// A user-assigned managed identity selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserAssigned {
    /// `--client-id`.
    ClientId(String),
    /// `--resource-id`.
    ResourceId(String),
    /// `--object-id`.
    ObjectId(String),
}

/// The credential to build: its kind and, for managed identity, which identity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CredentialChoice {
    /// The kind.
    pub kind: CredentialKind,
    /// A user-assigned identity; `None` is the system-assigned one.
    pub identity: Option<UserAssigned>,
}

/// Builds the chosen credential, reading configuration from `env` only.
///
/// # Errors
/// An [`Error`] when the credential's configuration is invalid (for example a user-assigned
/// identity given for a credential other than managed identity).
pub fn make_credential(
    choice: &CredentialChoice,
    env: Env,
) -> Result<Arc<dyn TokenCredential>, Error> {
    if choice.identity.is_some()
        && !matches!(
            choice.kind,
            CredentialKind::Default | CredentialKind::ManagedIdentity
        )
    {
        return Err(Error::invalid_argument(
            NAME,
            "--client-id, --resource-id and --object-id apply to managed identity only; use \
             --credential managed-identity or default",
        ));
    }
    Ok(match choice.kind {
        CredentialKind::Default => {
            let mut builder = DefaultAzureCredential::builder().runtime(Runtime::with_env(env));
            builder = match &choice.identity {
                None => builder,
                Some(UserAssigned::ClientId(id)) => builder.managed_identity_client_id(id),
                Some(UserAssigned::ResourceId(id)) => builder.managed_identity_resource_id(id),
                Some(UserAssigned::ObjectId(id)) => builder.managed_identity_object_id(id),
            };
            Arc::new(NamedBySelection(builder.build()?))
        }
        CredentialKind::ManagedIdentity => {
            let identity = match &choice.identity {
                None => ManagedIdentityId::SystemAssigned,
                Some(UserAssigned::ClientId(id)) => ManagedIdentityId::ClientId(id.clone()),
                Some(UserAssigned::ResourceId(id)) => ManagedIdentityId::ResourceId(id.clone()),
                Some(UserAssigned::ObjectId(id)) => ManagedIdentityId::ObjectId(id.clone()),
            };
            Arc::new(
                ManagedIdentityCredential::builder()
                    .runtime(Runtime::with_env(env))
                    .identity(identity)
                    .build()?,
            )
        }
        CredentialKind::AzureCli => Arc::new(
            AzureCliCredential::builder()
                .runtime(Runtime::with_env(env))
                .build()?,
        ),
        CredentialKind::Environment => Arc::new(
            EnvironmentCredential::builder()
                .runtime(Runtime::with_env(env))
                .build()?,
        ),
        CredentialKind::WorkloadIdentity => Arc::new(
            WorkloadIdentityCredential::builder()
                .runtime(Runtime::with_env(env))
                .build()?,
        ),
    })
}

/// `DefaultAzureCredential`, named after the member that produced its last token.
#[derive(Debug)]
struct NamedBySelection(DefaultAzureCredential);

impl TokenCredential for NamedBySelection {
    fn get_token<'a>(
        &'a self,
        scopes: &'a [&'a str],
        options: &'a TokenRequestOptions,
    ) -> BoxFuture<'a, Result<AccessToken, Error>> {
        self.0.get_token(scopes, options)
    }

    fn name(&self) -> &'static str {
        self.0
            .selected_credential()
            .unwrap_or_else(|| self.0.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_back() {
        for (name, kind) in CredentialKind::ALL {
            assert_eq!(name.parse::<CredentialKind>().unwrap(), kind);
            assert_eq!(kind.to_string(), name);
        }
        let err = "azcli".parse::<CredentialKind>().unwrap_err();
        assert!(err.contains("azure-cli"), "{err}");
    }

    #[test]
    fn managed_identity_on_app_service_builds_from_the_injected_env() {
        let env = Env::from_pairs([
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:9/msi/token"),
            ("IDENTITY_HEADER", "planted-header-secret"),
        ]);
        let choice = CredentialChoice {
            kind: CredentialKind::ManagedIdentity,
            identity: Some(UserAssigned::ClientId("cid".into())),
        };
        let credential = make_credential(&choice, env).unwrap();
        assert_eq!(credential.name(), "ManagedIdentityCredential");
        assert!(!format!("{credential:?}").contains("planted"));
    }

    #[test]
    fn user_assigned_ids_are_refused_for_other_credentials() {
        let choice = CredentialChoice {
            kind: CredentialKind::AzureCli,
            identity: Some(UserAssigned::ObjectId("o".into())),
        };
        let err = make_credential(&choice, Env::empty()).unwrap_err();
        assert!(err.to_string().contains("managed identity only"), "{err}");
    }

    #[test]
    fn every_kind_builds_from_an_injected_env() {
        let env = Env::from_pairs([
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:9/msi/token"),
            ("IDENTITY_HEADER", "planted-header-secret"),
            ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
            ("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000001"),
            ("AZURE_CLIENT_SECRET", "planted-client-secret"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/nonexistent/token"),
        ]);
        for (name, kind) in CredentialKind::ALL {
            let choice = CredentialChoice {
                kind,
                identity: None,
            };
            let credential =
                make_credential(&choice, env.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            let debug = format!("{credential:?}");
            assert!(!debug.contains("planted"), "{name}: {debug}");
        }
    }

    #[test]
    fn default_is_named_after_the_chain_until_a_member_succeeds() {
        let choice = CredentialChoice::default();
        let credential = make_credential(&choice, Env::empty()).unwrap();
        assert_eq!(credential.name(), "DefaultAzureCredential");
    }
}
