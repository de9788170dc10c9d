//! Source detection (docs/protocol.md §2.1): an ordered list of detectors, run once at
//! construction over the injected environment snapshot and file-system view. The first
//! detector that recognises the host wins; IMDS, last, always does.
//!
//! Only **non-empty** values count (docs/protocol.md §9 #14): `IDENTITY_ENDPOINT=""` is as
//! good as unset.
//!
//! **The Arc agent by its executable.** A cron job or a login shell on an Arc-enabled server
//! has no `IDENTITY_ENDPOINT`/`IMDS_ENDPOINT` (the agent sets them only for its services), yet
//! the agent answers on `http://localhost:40342`. So, after every environment rule and before
//! IMDS, the agent's executable is looked for: `/opt/azcmagent/bin/himds` on Linux,
//! `%ProgramFiles%\AzureConnectedMachineAgent\himds.exe` on Windows. If it exists the source is
//! Azure Arc on [`arc::AGENT_ENDPOINT`](crate::arc::AGENT_ENDPOINT), with the same challenge
//! flow and key-file checks as an Arc host found by its variables. This is an explicit,
//! documented rule of the detection, decided once at construction (the reference's MSAL
//! layer applies it silently at request time, behind a different decision, docs/protocol.md
//! §2.1). The file system is asked through the injected
//! [`HostFiles`](crate::HostFiles) (one `stat`, nothing read), so tests never touch `/opt`.
//!
//! | Environment (non-empty) | Source |
//! |---|---|
//! | `IDENTITY_ENDPOINT` + `IDENTITY_HEADER` + `IDENTITY_SERVER_THUMBPRINT` | Service Fabric |
//! | `IDENTITY_ENDPOINT` + `IDENTITY_HEADER` | App Service |
//! | `IDENTITY_ENDPOINT` + `IMDS_ENDPOINT` | Azure Arc |
//! | `IDENTITY_ENDPOINT` alone | none: `get_token` is unavailable, naming the missing variables (no fall-through, docs/protocol.md §9 #15) |
//! | `MSI_ENDPOINT` + `MSI_SECRET` | Azure Machine Learning |
//! | `MSI_ENDPOINT` | Cloud Shell |
//! | `AZURE_AUTHORITY_HOST` + `AZURE_TENANT_ID` + `AZURE_FEDERATED_TOKEN_FILE` | workload identity: unavailable here, see below |
//! | none of the above, and the Arc agent's `himds` executable exists | Azure Arc on `http://localhost:40342` |
//! | anything else | IMDS |
//!
//! **Workload identity.** The reference's managed identity credential performs the
//! federated token exchange itself in that environment (docs/protocol.md §2.7). Here that exchange
//! belongs to `WorkloadIdentityCredential` in identity-entra (which `DefaultAzureCredential`
//! in identity-chain also tries), and identity-msi does not depend on identity-entra. So the
//! environment is detected, so that it does not fall through to IMDS, and `get_token` says
//! to use `WorkloadIdentityCredential`.
//!
//! Detection returns a result: an environment that names a source this credential cannot use
//! ("configured but incomplete", workload identity) is an error, which `get_token` reports
//! as *unavailable* without any request, while `source()` still names what was found.
//!
//! Every environment variable the crate reads, and every source's names, are defined here,
//! once; the source modules import them (and re-export the public ones).
//!
//! Problems with the environment's values (a malformed URL or thumbprint) do not fail the
//! build: they are reported by `get_token` without any request, so that a
//! `DefaultAzureCredential` can still be built and move on. Only a refused identity kind
//! fails the build.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use identity_core::{Env, Error};

use crate::source::Source;
use crate::{NAME, arc, imds};

// The environment variables, all of them.

/// App Service, Service Fabric and Azure Arc: the endpoint URL.
pub const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
/// App Service and Service Fabric: the secret the endpoint expects.
pub const IDENTITY_HEADER: &str = "IDENTITY_HEADER";
/// Service Fabric: the SHA-1 thumbprint of the cluster's certificate.
pub const IDENTITY_SERVER_THUMBPRINT: &str = "IDENTITY_SERVER_THUMBPRINT";
/// Azure Arc: set by the agent; only its presence is used.
pub const IMDS_ENDPOINT: &str = "IMDS_ENDPOINT";
/// Azure Machine Learning and Cloud Shell: the endpoint URL.
pub const MSI_ENDPOINT: &str = "MSI_ENDPOINT";
/// Azure Machine Learning: the secret sent in the `secret` header.
pub const MSI_SECRET: &str = "MSI_SECRET";
/// Azure Machine Learning: the compute's default identity, sent as `clientid` on
/// system-assigned requests when set.
pub const DEFAULT_IDENTITY_CLIENT_ID: &str = "DEFAULT_IDENTITY_CLIENT_ID";
/// IMDS: overrides the authority (AAD Pod Identity).
pub const AZURE_POD_IDENTITY_AUTHORITY_HOST: &str = "AZURE_POD_IDENTITY_AUTHORITY_HOST";
/// Workload identity: set by the AKS workload identity webhook.
pub(crate) const AZURE_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";
/// Workload identity: the tenant.
pub(crate) const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
/// Workload identity: the projected service account token.
pub(crate) const AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
/// Windows: where the Arc agent's executable is installed (either spelling).
pub(crate) const PROGRAM_FILES: [&str; 2] = ["ProgramFiles", "PROGRAMFILES"];
/// Windows: where the Arc agent keeps its key files (either spelling).
pub(crate) const PROGRAM_DATA: [&str; 2] = ["ProgramData", "PROGRAMDATA"];

/// The hosting environment the credential detected (docs/protocol.md §2.1), for logs and for
/// `DefaultAzureCredential`. Each source is documented in its module:
///
/// | Source | Module | Identities |
/// |---|---|---|
/// | IMDS (VMs, scale sets, AKS pod identity; the fallback) | [`imds`](crate::imds) | system, client id, object id, resource id |
/// | App Service, Functions, Container Apps | [`app_service`](crate::app_service) | system, client id, object id, resource id |
/// | Azure Arc (by its variables, or by the agent's `himds` executable) | [`arc`](crate::arc) | system, client id, object id, resource id (echo checked) |
/// | Azure Machine Learning | [`azure_ml`](crate::azure_ml) | system, client id, object id, resource id |
/// | Cloud Shell | [`cloud_shell`](crate::cloud_shell) | the signed-in user only |
/// | Service Fabric (feature `service-fabric`) | [`service_fabric`](crate::service_fabric) | system only |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ManagedIdentitySource {
    /// Service Fabric (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`, `IDENTITY_SERVER_THUMBPRINT`).
    ServiceFabric,
    /// App Service, Azure Functions or Container Apps (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`).
    AppService,
    /// Azure Arc (`IDENTITY_ENDPOINT`, `IMDS_ENDPOINT`, or the agent's executable).
    AzureArc,
    /// `IDENTITY_ENDPOINT` alone: a broken App Service or Arc environment (no source;
    /// `get_token` is unavailable).
    Incomplete,
    /// Azure Machine Learning (`MSI_ENDPOINT`, `MSI_SECRET`).
    AzureMl,
    /// Azure Cloud Shell (`MSI_ENDPOINT` without `MSI_SECRET`).
    CloudShell,
    /// Workload identity (`AZURE_AUTHORITY_HOST`, `AZURE_TENANT_ID`,
    /// `AZURE_FEDERATED_TOKEN_FILE`), served by `WorkloadIdentityCredential` (no source here;
    /// `get_token` is unavailable).
    WorkloadIdentity,
    /// The instance metadata service of Azure VMs, VM scale sets and AKS pod identity.
    Imds,
}

impl ManagedIdentitySource {
    /// Its row of [`SOURCES`]: a stable lower-case id (cache keys, logs) and the name used in
    /// messages.
    fn names(self) -> (&'static str, &'static str) {
        SOURCES
            .iter()
            .find(|row| row.source == self)
            .map_or(("unknown", "unknown"), |row| (row.id, row.name))
    }

    /// The name used in messages, e.g. `App Service`.
    pub fn display_name(self) -> &'static str {
        self.names().1
    }

    /// A stable lower-case identifier, e.g. `app_service` (used in cache keys and logs).
    pub fn id(self) -> &'static str {
        self.names().0
    }
}

impl fmt::Display for ManagedIdentitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.display_name())
    }
}

/// Everything detection may use: the environment snapshot and the builder's settings.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) env: Env,
    pub(crate) within_default_chain: bool,
    pub(crate) endpoint: Option<String>,
    /// The builder's IMDS-only endpoint override.
    pub(crate) imds_endpoint: Option<String>,
    pub(crate) arc_key_directory: Option<PathBuf>,
    /// What detection may learn from the file system (the Arc agent's executable).
    pub(crate) host_files: Arc<dyn crate::HostFiles>,
}

impl Settings {
    /// The builder's endpoint override, else the environment variable's value.
    pub(crate) fn endpoint_or<'a>(&'a self, from_env: &'a str) -> &'a str {
        self.endpoint.as_deref().unwrap_or(from_env)
    }
}

/// What detection found: a source, or an environment that names one this credential cannot
/// use (the kind `source()` reports and the error `get_token` reports).
pub(crate) type Detected = Result<Box<dyn Source>, (ManagedIdentitySource, Error)>;

/// A detection rule: `Some` when it recognises the environment.
type Detector = fn(&Settings) -> Option<Detected>;

/// A source's row: its variant, its stable id and its name in messages, and its detection
/// rule.
struct Row {
    source: ManagedIdentitySource,
    id: &'static str,
    name: &'static str,
    detect: Option<Detector>,
}

/// A source found by `detect`.
const fn rule(
    source: ManagedIdentitySource,
    id: &'static str,
    name: &'static str,
    detect: Detector,
) -> Row {
    Row {
        source,
        id,
        name,
        detect: Some(detect),
    }
}

/// A source with no rule of its own.
const fn named(source: ManagedIdentitySource, id: &'static str, name: &'static str) -> Row {
    Row {
        source,
        id,
        name,
        detect: None,
    }
}

use ManagedIdentitySource as S;

/// The one table of sources: names and detection rules, the rules in the order of
/// docs/protocol.md §2.1 (the first that matches wins; IMDS is the fallback). A new source
/// adds its line here.
// One line per source, so that the table reads as one.
#[rustfmt::skip]
const SOURCES: &[Row] = &[
    rule(S::ServiceFabric, "service_fabric", "Service Fabric", crate::service_fabric::detect),
    rule(S::AppService, "app_service", "App Service", crate::app_service::detect),
    rule(S::AzureArc, "azure_arc", "Azure Arc", crate::arc::detect),
    rule(S::Incomplete, "incomplete", "incomplete", incomplete),
    rule(S::AzureMl, "azure_ml", "Azure Machine Learning", crate::azure_ml::detect),
    rule(S::CloudShell, "cloud_shell", "Cloud Shell", crate::cloud_shell::detect),
    rule(S::WorkloadIdentity, "workload_identity", "workload identity", workload_identity),
    // Azure Arc again, by the agent's executable when its variables are absent.
    rule(S::AzureArc, "azure_arc", "Azure Arc", arc_agent),
    named(S::Imds, "imds", "IMDS"),
];

/// Runs the rules; IMDS when none matches.
pub(crate) fn detect(settings: &Settings) -> Detected {
    SOURCES
        .iter()
        .filter_map(|row| row.detect)
        .find_map(|detector| detector(settings))
        .unwrap_or_else(|| Ok(imds::new(settings)))
}

/// The Arc agent's executable on Linux.
pub(crate) const HIMDS_LINUX: &str = "/opt/azcmagent/bin/himds";

/// Where the Arc agent's executable would be on this platform, if it has one.
fn himds_path(env: &Env) -> Option<PathBuf> {
    if cfg!(target_os = "linux") {
        Some(PathBuf::from(HIMDS_LINUX))
    } else if cfg!(windows) {
        let program_files = PROGRAM_FILES.iter().find_map(|name| env.non_empty(name))?;
        Some(
            std::path::Path::new(program_files)
                .join("AzureConnectedMachineAgent")
                .join("himds.exe"),
        )
    } else {
        None
    }
}

/// The Arc agent found by its executable (no Arc variables in the environment).
fn arc_agent(settings: &Settings) -> Option<Detected> {
    let himds = himds_path(&settings.env)?;
    if !settings.host_files.is_file(&himds) {
        return None;
    }
    tracing::debug!(target: "identity_msi", "the Azure Arc agent's executable exists; using the agent's endpoint");
    Some(Ok(arc::with_endpoint(
        settings,
        arc::AGENT_ENDPOINT,
        "the Azure Arc agent endpoint",
    )))
}

/// `IDENTITY_ENDPOINT` is set, but neither `IDENTITY_HEADER` nor `IMDS_ENDPOINT`.
fn incomplete(settings: &Settings) -> Option<Detected> {
    settings.env.non_empty(IDENTITY_ENDPOINT)?;
    Some(Err((
        ManagedIdentitySource::Incomplete,
        Error::unavailable(
            NAME,
            format!(
                "no managed identity endpoint found: {IDENTITY_ENDPOINT} is set but {IDENTITY_HEADER} (App Service) and \
                 {IMDS_ENDPOINT} (Azure Arc) are missing; set the missing variable or unset {IDENTITY_ENDPOINT}"
            ),
        ),
    )))
}

/// The workload identity environment of docs/protocol.md §2.1 step 3.
fn workload_identity(settings: &Settings) -> Option<Detected> {
    let env = &settings.env;
    env.non_empty(AZURE_AUTHORITY_HOST)?;
    env.non_empty(AZURE_TENANT_ID)?;
    env.non_empty(AZURE_FEDERATED_TOKEN_FILE)?;
    Some(Err((
        ManagedIdentitySource::WorkloadIdentity,
        Error::unavailable(
            NAME,
            format!(
                "the environment configures workload identity ({AZURE_AUTHORITY_HOST}, {AZURE_TENANT_ID} and \
                 {AZURE_FEDERATED_TOKEN_FILE} are set); ManagedIdentityCredential does not perform the federated token \
                 exchange: use WorkloadIdentityCredential (identity-entra) or DefaultAzureCredential (identity-chain)"
            ),
        ),
    )))
}

#[cfg(test)]
mod tests {
    use super::ManagedIdentitySource as S;
    use crate::ManagedIdentityCredential;
    use identity_core::{Env, ErrorKind, Runtime, TokenCredential, TokenRequestOptions};

    /// One row: environment pairs, the expected source, and for sources that fail without a
    /// request, a word the error must contain.
    type Row = (
        &'static [(&'static str, &'static str)],
        S,
        Option<&'static str>,
    );

    const WORKLOAD: [(&str, &str); 3] = [
        ("AZURE_AUTHORITY_HOST", "https://login.example"),
        ("AZURE_TENANT_ID", "t"),
        ("AZURE_FEDERATED_TOKEN_FILE", "/f"),
    ];

    fn check(rows: &[Row]) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for (pairs, expected, error_word) in rows {
            let credential = ManagedIdentityCredential::builder()
                .runtime(Runtime::with_env(Env::from_pairs(pairs.iter().copied())))
                // Nothing listens here: a row that unexpectedly sends a request fails fast.
                .endpoint("http://127.0.0.1:9/none")
                .host_files(std::sync::Arc::new(crate::ListedHostFiles::default()))
                .build()
                .unwrap_or_else(|e| panic!("{pairs:?}: {e}"));
            assert_eq!(credential.source(), *expected, "{pairs:?}");
            if let Some(word) = error_word {
                let e = rt
                    .block_on(credential.get_token(
                        &["https://vault.azure.net/.default"],
                        &TokenRequestOptions::default(),
                    ))
                    .unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Unavailable, "{pairs:?}");
                assert!(e.to_string().contains(word), "{pairs:?}: {e}");
            }
        }
    }

    #[test]
    fn detection_follows_the_specified_order() {
        let workload_and_msi: &'static [(&str, &str)] = Box::leak(Box::new([
            WORKLOAD[0],
            WORKLOAD[1],
            WORKLOAD[2],
            ("MSI_ENDPOINT", "http://x/oauth2/token"),
        ]));
        check(&[
            (&[], S::Imds, None),
            (
                &[
                    ("IDENTITY_ENDPOINT", "http://x/msi/token"),
                    ("IDENTITY_HEADER", "h"),
                ],
                S::AppService,
                None,
            ),
            (
                &[
                    ("IDENTITY_ENDPOINT", "https://x/"),
                    ("IDENTITY_HEADER", "h"),
                    ("IDENTITY_SERVER_THUMBPRINT", "ab"),
                ],
                S::ServiceFabric,
                None,
            ),
            (
                &[
                    ("IDENTITY_ENDPOINT", "http://x/"),
                    ("IDENTITY_HEADER", "h"),
                    ("IMDS_ENDPOINT", "http://x"),
                ],
                S::AppService,
                None,
            ),
            (
                &[
                    ("IDENTITY_ENDPOINT", "http://x/"),
                    ("IMDS_ENDPOINT", "http://x"),
                ],
                S::AzureArc,
                None,
            ),
            (
                &[("IDENTITY_ENDPOINT", "http://x/")],
                S::Incomplete,
                Some("IDENTITY_HEADER"),
            ),
            (
                &[("IDENTITY_ENDPOINT", "http://x/"), ("IDENTITY_HEADER", "")],
                S::Incomplete,
                Some("IMDS_ENDPOINT"),
            ),
            (
                &[("MSI_ENDPOINT", "http://x/ml"), ("MSI_SECRET", "s")],
                S::AzureMl,
                None,
            ),
            (
                &[("MSI_ENDPOINT", "http://x/oauth2/token")],
                S::CloudShell,
                None,
            ),
            (
                &[
                    ("MSI_ENDPOINT", "http://x/oauth2/token"),
                    ("MSI_SECRET", ""),
                ],
                S::CloudShell,
                None,
            ),
            (
                &[
                    ("IDENTITY_ENDPOINT", ""),
                    ("MSI_ENDPOINT", "http://x/oauth2/token"),
                ],
                S::CloudShell,
                None,
            ),
            (workload_and_msi, S::CloudShell, None),
            (
                &WORKLOAD,
                S::WorkloadIdentity,
                Some("WorkloadIdentityCredential"),
            ),
            (&WORKLOAD[1..], S::Imds, None),
            (&[("IMDS_ENDPOINT", "http://x")], S::Imds, None),
        ]);
    }

    #[test]
    fn an_incomplete_environment_names_both_missing_variables() {
        check(&[(
            &[("IDENTITY_ENDPOINT", "http://x/")],
            S::Incomplete,
            Some("IMDS_ENDPOINT"),
        )]);
    }

    fn with_himds(pairs: &[(&str, &str)]) -> ManagedIdentityCredential {
        ManagedIdentityCredential::builder()
            .runtime(Runtime::with_env(Env::from_pairs(pairs.iter().copied())))
            .host_files(std::sync::Arc::new(crate::ListedHostFiles::new([
                super::HIMDS_LINUX,
            ])))
            .build()
            .unwrap()
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn the_arc_agents_executable_selects_arc_after_every_environment_rule() {
        assert_eq!(with_himds(&[]).source(), S::AzureArc);
        // Workload identity and every variable-based source still win.
        assert_eq!(with_himds(&WORKLOAD).source(), S::WorkloadIdentity);
        assert_eq!(
            with_himds(&[("MSI_ENDPOINT", "http://x/oauth2/token")]).source(),
            S::CloudShell
        );
        assert_eq!(
            with_himds(&[
                ("IDENTITY_ENDPOINT", "http://x/msi/token"),
                ("IDENTITY_HEADER", "h")
            ])
            .source(),
            S::AppService
        );
        // Without the executable: IMDS.
        check(&[(&[], S::Imds, None)]);
    }

    #[tokio::test]
    #[cfg(target_os = "linux")]
    async fn an_arc_agent_found_by_its_executable_runs_the_challenge_flow() {
        use wiremock::matchers::{header, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("abc.key");
        std::fs::write(&key, "planted-arc-key").unwrap();
        Mock::given(method("GET"))
            .and(path("/metadata/identity/oauth2/token"))
            .and(header("Metadata", "true"))
            .and(header("Authorization", "Basic planted-arc-key"))
            .respond_with(crate::test_support::token_on(4_102_444_800))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/metadata/identity/oauth2/token"))
            .and(|r: &wiremock::Request| !r.headers.contains_key("authorization"))
            .respond_with(ResponseTemplate::new(401).insert_header(
                "WWW-Authenticate",
                format!("Basic realm={}", key.display()).as_str(),
            ))
            .expect(1)
            .mount(&server)
            .await;
        // The agent's fixed endpoint is http://localhost:40342; the test points it at the
        // local server, as `endpoint` does for every source.
        let credential = ManagedIdentityCredential::builder()
            .runtime(Runtime::with_env(Env::empty()))
            .host_files(std::sync::Arc::new(crate::ListedHostFiles::new([
                super::HIMDS_LINUX,
            ])))
            .arc_key_directory(dir.path())
            .endpoint(format!("{}/metadata/identity/oauth2/token", server.uri()))
            .within_default_chain(true)
            .build()
            .unwrap();
        assert_eq!(credential.source(), S::AzureArc);
        let token = credential
            .get_token(
                &["https://vault.azure.net/.default"],
                &TokenRequestOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(token.token.secret(), "AT");
    }
}
