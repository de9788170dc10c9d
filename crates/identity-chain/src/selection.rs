//! `AZURE_TOKEN_CREDENTIALS`: which members `DefaultAzureCredential` keeps (docs/protocol.md §4.3).

use std::fmt;

use identity_core::{Env, Error};

/// The variable that narrows `DefaultAzureCredential` to developer or production credentials,
/// or to a single one.
pub const AZURE_TOKEN_CREDENTIALS: &str = "AZURE_TOKEN_CREDENTIALS";

/// A member of `DefaultAzureCredential`, in chain order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum CredentialKind {
    /// `EnvironmentCredential`.
    Environment,
    /// `WorkloadIdentityCredential`.
    WorkloadIdentity,
    /// `ManagedIdentityCredential`.
    ManagedIdentity,
    /// `AzureCliCredential`.
    AzureCli,
    /// `AzurePowerShellCredential`.
    AzurePowerShell,
    /// `AzureDeveloperCliCredential`.
    AzureDeveloperCli,
    /// `GitHubActionsCredential`: not a member of the default chain (no reference SDK has it);
    /// kept only when `AZURE_TOKEN_CREDENTIALS` names it.
    GitHubActions,
    /// `InteractiveBrowserCredential`: the last member, off unless an explicit
    /// `exclude_interactive_browser_credential(false)` or `AZURE_TOKEN_CREDENTIALS` names it.
    InteractiveBrowser,
}

impl CredentialKind {
    /// Every member, in the order the chain tries them (the last, `InteractiveBrowser`, is off
    /// by default).
    pub const ALL: [Self; 7] = [
        Self::Environment,
        Self::WorkloadIdentity,
        Self::ManagedIdentity,
        Self::AzureCli,
        Self::AzurePowerShell,
        Self::AzureDeveloperCli,
        Self::InteractiveBrowser,
    ];

    /// The credential's type name.
    pub fn type_name(self) -> &'static str {
        match self {
            Self::Environment => "EnvironmentCredential",
            Self::WorkloadIdentity => "WorkloadIdentityCredential",
            Self::ManagedIdentity => "ManagedIdentityCredential",
            Self::AzureCli => "AzureCliCredential",
            Self::AzurePowerShell => "AzurePowerShellCredential",
            Self::AzureDeveloperCli => "AzureDeveloperCliCredential",
            Self::GitHubActions => "GitHubActionsCredential",
            Self::InteractiveBrowser => "InteractiveBrowserCredential",
        }
    }

    /// True for the production group (`prod`), false for the developer group (`dev`; the
    /// interactive browser, though not production, is not in `dev` either: a selection keeps it
    /// only by name).
    pub fn is_production(self) -> bool {
        matches!(
            self,
            Self::Environment
                | Self::WorkloadIdentity
                | Self::ManagedIdentity
                | Self::GitHubActions
        )
    }

    /// Credentials the chain builds only when `AZURE_TOKEN_CREDENTIALS` names them.
    pub const OPT_IN: [Self; 1] = [Self::GitHubActions];

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.type_name())
    }
}

/// What `AZURE_TOKEN_CREDENTIALS` asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Selection {
    /// Unset or blank: every member.
    All,
    /// `dev`: the developer tools.
    Developer,
    /// `prod`: environment, workload identity, managed identity.
    Production,
    /// One credential by name.
    Only(CredentialKind),
}

impl Selection {
    /// Reads the variable (trimmed, case-insensitive).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidConfiguration`](identity_core::ErrorKind::InvalidConfiguration) for any
    /// other value, listing the valid ones.
    pub(crate) fn from_env(env: &Env) -> Result<Self, Error> {
        let Some(value) = env.non_blank(AZURE_TOKEN_CREDENTIALS) else {
            return Ok(Self::All);
        };
        let lower = value.to_ascii_lowercase();
        match lower.as_str() {
            "dev" => return Ok(Self::Developer),
            "prod" => return Ok(Self::Production),
            _ => {}
        }
        if let Some(kind) = CredentialKind::ALL
            .into_iter()
            .chain(CredentialKind::OPT_IN)
            .find(|k| k.type_name().eq_ignore_ascii_case(&lower))
        {
            return Ok(Self::Only(kind));
        }
        Err(Error::invalid_configuration(
            "DefaultAzureCredential",
            format!(
                "invalid value for {AZURE_TOKEN_CREDENTIALS}; valid values are {}",
                valid_values()
            ),
        ))
    }

    /// True if this selection keeps `kind` (absent an explicit exclusion).
    pub(crate) fn keeps(self, kind: CredentialKind) -> bool {
        if kind == CredentialKind::InteractiveBrowser {
            return self == Self::Only(kind);
        }
        match self {
            Self::All => true,
            Self::Developer => !kind.is_production(),
            Self::Production => kind.is_production(),
            Self::Only(only) => only == kind,
        }
    }
}

/// `dev`, `prod`, then every credential name (lower-cased, sorted).
pub(crate) fn valid_values() -> String {
    let mut names: Vec<String> = CredentialKind::ALL
        .iter()
        .chain(&CredentialKind::OPT_IN)
        .map(|k| k.type_name().to_ascii_lowercase())
        .collect();
    names.sort();
    let mut all = vec!["dev".to_owned(), "prod".to_owned()];
    all.extend(names);
    all.join(", ")
}

/// Explicit per-member exclusions, which win over `AZURE_TOKEN_CREDENTIALS` (true *or* false).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Exclusions([Option<bool>; 8]);

impl Exclusions {
    pub(crate) fn set(&mut self, kind: CredentialKind, exclude: bool) {
        self.0[kind.index()] = Some(exclude);
    }

    /// The members to build, in chain order. An opt-in credential is the only member when the
    /// selection names it.
    pub(crate) fn members(&self, selection: Selection) -> Vec<CredentialKind> {
        if let Selection::Only(kind) = selection {
            if CredentialKind::OPT_IN.contains(&kind) && self.0[kind.index()] != Some(true) {
                return vec![kind];
            }
        }
        CredentialKind::ALL
            .into_iter()
            .filter(|k| match self.0[k.index()] {
                Some(exclude) => !exclude,
                None => selection.keeps(*k),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CredentialKind::*;

    /// One row per environment value: the members chosen with no explicit exclusions.
    fn check(rows: &[(&str, Result<&[CredentialKind], ()>)]) {
        for (value, expected) in rows {
            let env = Env::from_pairs([(AZURE_TOKEN_CREDENTIALS, *value)]);
            let got = Selection::from_env(&env).map(|s| Exclusions::default().members(s));
            match (got, expected) {
                (Ok(members), Ok(want)) => assert_eq!(members, want.to_vec(), "{value:?}"),
                (Err(e), Err(())) => {
                    assert!(e.message().contains("dev, prod, azureclicredential"), "{e}");
                }
                (got, want) => panic!("{value:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn every_value_of_azure_token_credentials() {
        check(&[
            ("", Ok(&CredentialKind::ALL[..6])),
            ("   ", Ok(&CredentialKind::ALL[..6])),
            ("dev", Ok(&[AzureCli, AzurePowerShell, AzureDeveloperCli])),
            (
                " PROD ",
                Ok(&[Environment, WorkloadIdentity, ManagedIdentity]),
            ),
            ("EnvironmentCredential", Ok(&[Environment])),
            ("workloadidentitycredential", Ok(&[WorkloadIdentity])),
            ("ManagedIdentityCredential", Ok(&[ManagedIdentity])),
            ("AzureCliCredential", Ok(&[AzureCli])),
            ("azurepowershellcredential", Ok(&[AzurePowerShell])),
            ("AZUREDEVELOPERCLICREDENTIAL", Ok(&[AzureDeveloperCli])),
            ("GitHubActionsCredential", Ok(&[GitHubActions])),
            (" InteractiveBrowserCredential", Ok(&[InteractiveBrowser])),
            ("SharedTokenCacheCredential", Err(())),
            ("VisualStudioCodeCredential", Err(())),
            ("dev,prod", Err(())),
            ("development", Err(())),
        ]);
    }

    #[test]
    fn explicit_exclusions_win_over_the_variable_both_ways() {
        let env = Env::from_pairs([(AZURE_TOKEN_CREDENTIALS, "AzureCliCredential")]);
        let mut ex = Exclusions::default();
        ex.set(Environment, false);
        assert_eq!(
            ex.members(Selection::from_env(&env).unwrap()),
            vec![Environment, AzureCli]
        );
        ex.set(AzureCli, true);
        assert_eq!(
            ex.members(Selection::from_env(&env).unwrap()),
            vec![Environment]
        );
        // The interactive browser too: an explicit `false` keeps it under any selection, an
        // explicit `true` drops it even when named.
        ex.set(InteractiveBrowser, false);
        let prod = Env::from_pairs([(AZURE_TOKEN_CREDENTIALS, "prod")]);
        assert_eq!(
            ex.members(Selection::from_env(&prod).unwrap()),
            vec![
                Environment,
                WorkloadIdentity,
                ManagedIdentity,
                InteractiveBrowser
            ]
        );
        let named = Env::from_pairs([(AZURE_TOKEN_CREDENTIALS, "interactivebrowsercredential")]);
        ex = Exclusions::default();
        ex.set(InteractiveBrowser, true);
        assert!(ex.members(Selection::from_env(&named).unwrap()).is_empty());
    }

    #[test]
    fn the_error_lists_valid_values_in_order() {
        assert_eq!(
            valid_values(),
            "dev, prod, azureclicredential, azuredeveloperclicredential, azurepowershellcredential, \
             environmentcredential, githubactionscredential, interactivebrowsercredential, \
             managedidentitycredential, workloadidentitycredential"
        );
    }
}
