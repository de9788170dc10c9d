//! [`WorkloadIdentityCredential`]: Kubernetes workload identity (AKS) and other federated
//! credentials whose assertion is a token file the platform keeps fresh (docs/protocol.md §2.7).
//!
//! Environment (each overridable in the builder): `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
//! `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_AUTHORITY_HOST`. When the tenant, client id or token
//! file is missing, [`build`](WorkloadIdentityCredentialBuilder::build) fails with
//! [`ErrorKind::Unavailable`](identity_core::ErrorKind::Unavailable) listing every missing item,
//! so a chain moves on.
//!
//! Endpoint: `POST https://<authority>/<tenant>/oauth2/v2.0/token` with
//! `client_assertion=<file content>`,
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`,
//! `client_id`, `grant_type=client_credentials` and `scope`. No discovery.
//!
//! The token file is read, as UTF-8 and verbatim (no trimming), on **every** token request,
//! through [`identity_core::fs::read`]: links are followed, but it must be a regular file of at
//! most 64 KiB, so a FIFO or `/dev/zero` fails at once instead of hanging or exhausting memory.
//! This deliberately deviates from the reference, which keeps the content for 600 s (other
//! Azure SDKs for 5 minutes): the platform rotates the file before the old token expires, a
//! read per request (the cache makes requests rare) means a rotated token is used at once, and
//! the read is cheap and bounded (docs/protocol.md §2.7). A missing, unreadable or empty
//! file at request time is an authentication failure naming the path (never its content).
//!
//! The AKS identity-binding token proxy (`AZURE_KUBERNETES_TOKEN_PROXY` and friends) is used
//! only when [`enable_kubernetes_token_proxy`](WorkloadIdentityCredentialBuilder::enable_kubernetes_token_proxy)
//! is on: see [`identity_binding`](crate::identity_binding).

use std::path::PathBuf;
use std::sync::Arc;

use identity_core::fs::ReadOptions;
use identity_core::{BoxFuture, Error, Secret};

use crate::client::{AssertionContext, AssertionSource, ClientAuth};
use crate::credential::sealed::{Ids, Named};
use crate::credential::{Credential, CredentialBuilder, ServicePrincipal};

const NAME: &str = "WorkloadIdentityCredential";

/// The variable naming the federated token file.
pub const AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
pub use crate::environment::{AZURE_CLIENT_ID, AZURE_TENANT_ID};

/// Authenticates with a federated token file (Kubernetes workload identity).
///
/// ```no_run
/// # fn demo() -> Result<(), identity_chain::Error> {
/// // In a pod with workload identity, whose webhook sets AZURE_TENANT_ID, AZURE_CLIENT_ID and
/// // AZURE_FEDERATED_TOKEN_FILE; on a cluster with AKS identity binding, through its proxy.
/// let credential = identity_chain::WorkloadIdentityCredential::builder()
///     .enable_kubernetes_token_proxy(true)
///     .build()?;
/// # Ok(()) }
/// ```
pub type WorkloadIdentityCredential = Credential<ServicePrincipal<WorkloadIdentity>>;

/// Names [`WorkloadIdentityCredential`] among the [`ServicePrincipal`] kinds.
#[derive(Clone, Debug)]
pub enum WorkloadIdentity {}

#[derive(Debug)]
struct TokenFile(Arc<PathBuf>);

impl AssertionSource for TokenFile {
    fn assertion(&self, _context: AssertionContext) -> BoxFuture<'static, Result<Secret, Error>> {
        let path = self.0.clone();
        Box::pin(async move {
            let content = read_token_file(&path)?;
            if content.trim().is_empty() {
                return Err(Error::authentication_failed(
                    NAME,
                    format!("the federated token file {} is empty", path.display()),
                ));
            }
            Ok(Secret::new(content))
        })
    }
}

/// The largest federated token file accepted, in bytes (a Kubernetes service account token is
/// about 1 KiB).
pub(crate) const MAX_TOKEN_FILE: u64 = 64 * 1024;

/// Reads the federated token file through the bounded, checked reader: links are followed
/// (Kubernetes projects the token as a link into a `..data` directory), but a FIFO, a device or
/// a file over [`MAX_TOKEN_FILE`] fails at once.
fn read_token_file(path: &std::path::Path) -> Result<String, Error> {
    identity_core::fs::read_to_string(path, &ReadOptions::configured(MAX_TOKEN_FILE)).map_err(|e| {
        let hint = if e.is_not_found() {
            "check that the service account token volume is mounted"
        } else {
            "it must be a readable regular file of at most 64 KiB"
        };
        Error::authentication_failed(
            NAME,
            format!(
                "cannot read the federated token file {}: {e}; {hint}",
                path.display()
            ),
        )
        .with_source(e)
    })
}

/// Builds a [`WorkloadIdentityCredential`]: the shared setters of [`CredentialBuilder`], the
/// tenant and client ids (default `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`), the token file and
/// the identity-binding proxy switch.
pub type WorkloadIdentityCredentialBuilder = CredentialBuilder<WorkloadIdentitySettings>;

/// The settings only a [`WorkloadIdentityCredentialBuilder`] has.
#[derive(Clone, Debug, Default)]
pub struct WorkloadIdentitySettings {
    token_file: Option<PathBuf>,
    token_proxy: bool,
}

impl Ids for WorkloadIdentitySettings {}

impl Named for WorkloadIdentity {
    type Settings = WorkloadIdentitySettings;
}

impl WorkloadIdentityCredentialBuilder {
    /// Whether to send token requests through the AKS identity-binding token proxy when the
    /// environment configures one (`AZURE_KUBERNETES_TOKEN_PROXY`, `AZURE_KUBERNETES_SNI_NAME`,
    /// `AZURE_KUBERNETES_CA_FILE` or `AZURE_KUBERNETES_CA_DATA`; see
    /// [`identity_binding`](crate::identity_binding)). Default `false`, and never on inside
    /// `DefaultAzureCredential`, as in the other Azure SDKs. When on and the proxy is
    /// configured, the proxy's own HTTP client replaces the [runtime](Self::runtime)'s.
    pub fn enable_kubernetes_token_proxy(mut self, enable: bool) -> Self {
        self.settings.token_proxy = enable;
        self
    }

    /// The federated token file (default: `AZURE_FEDERATED_TOKEN_FILE`).
    pub fn token_file_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.settings.token_file = Some(path.into());
        self
    }

    /// Builds the credential. The token file is not read here.
    ///
    /// # Errors
    /// [`ErrorKind::Unavailable`](identity_core::ErrorKind::Unavailable) listing the missing items
    /// when the tenant id, client id or token file is neither set nor in the environment;
    /// [`ErrorKind::InvalidConfiguration`](identity_core::ErrorKind::InvalidConfiguration) for an
    /// invalid tenant id, a non-`https` authority, or (with the token proxy enabled) an invalid
    /// proxy configuration: a proxy URL that is not plain `https`, both CA variables, a CA that
    /// cannot be read or holds no certificate, or SNI/CA variables without a proxy URL.
    pub fn build(mut self) -> Result<WorkloadIdentityCredential, Error> {
        let env = self
            .common
            .resolve_from_env(AZURE_TENANT_ID, AZURE_CLIENT_ID);
        let token_file = self
            .settings
            .token_file
            .filter(|p| !p.as_os_str().is_empty())
            .or_else(|| env.non_blank(AZURE_FEDERATED_TOKEN_FILE).map(PathBuf::from));
        let mut missing = self.common.missing_ids(AZURE_TENANT_ID, AZURE_CLIENT_ID);
        if token_file.is_none() {
            missing.push("token_file_path (AZURE_FEDERATED_TOKEN_FILE)".to_owned());
        }
        let Some(token_file) = token_file.filter(|_| missing.is_empty()) else {
            return Err(Error::unavailable(
                NAME,
                format!(
                    "workload identity is not fully configured; missing: {}. Set them in the builder or the environment \
                     (on AKS, enable workload identity for the pod's service account)",
                    missing.join(", ")
                ),
            ));
        };
        if self.settings.token_proxy {
            if let Some(proxy) = crate::identity_binding::from_env(NAME, &env)? {
                self.common.runtime = self.common.runtime.clone().http_client(Arc::new(proxy));
            }
        }
        let token_file = Arc::new(token_file);
        let source = TokenFile(token_file.clone());
        let client = self.common.build(
            NAME,
            "workload_identity",
            ClientAuth::Assertion(Arc::new(source)),
        )?;
        let client = client.with_detail("token_file_path", token_file);
        Ok(Credential::service_principal(client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use identity_core::{Env, ErrorKind};
    use identity_core::{TokenCredential, TokenRequestOptions};
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const VAULT: &str = "https://vault.azure.net/.default";

    fn env_for(server: &MockServer, file: &std::path::Path) -> Env {
        Env::from_pairs([
            (AZURE_TENANT_ID, "t".to_owned()),
            (AZURE_CLIENT_ID, "c".to_owned()),
            (AZURE_FEDERATED_TOKEN_FILE, file.display().to_string()),
            ("AZURE_AUTHORITY_HOST", server.uri()),
        ])
    }

    fn builder(env: Env) -> WorkloadIdentityCredentialBuilder {
        WorkloadIdentityCredential::builder()
            .runtime(fake_runtime(env))
            .allow_insecure_loopback_authority(true)
    }

    async fn token_server() -> MockServer {
        let server = MockServer::start().await;
        mount_token_endpoint(&server).await;
        server
    }

    #[tokio::test]
    async fn the_federated_token_is_sent_verbatim_with_the_spec_form() {
        let server = token_server().await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "SAJWT\n").unwrap();
        let credential = builder(env_for(&server, &file)).build().unwrap();
        credential
            .get_token(&[VAULT], &TokenRequestOptions::default())
            .await
            .unwrap();
        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), 1);
        let form = form_of(&requests[0]);
        let expected: std::collections::BTreeMap<String, String> = [
            ("client_assertion", "SAJWT\n"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_id", "c"),
            ("grant_type", "client_credentials"),
            ("scope", VAULT),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(form, expected);
    }

    #[tokio::test]
    async fn a_rotated_token_file_is_used_on_the_next_fetch() {
        let server = token_server().await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "planted-first-assertion").unwrap();
        let credential = builder(env_for(&server, &file)).build().unwrap();
        let options = TokenRequestOptions::default();
        credential.get_token(&[VAULT], &options).await.unwrap();
        std::fs::write(&file, "planted-second-assertion").unwrap();
        // Another scope set misses the cache, so the file is read again.
        credential
            .get_token(&["https://storage.azure.com/.default"], &options)
            .await
            .unwrap();
        let requests = server.received_requests().await.unwrap();
        assert_eq!(
            form_of(&requests[0])["client_assertion"],
            "planted-first-assertion"
        );
        assert_eq!(
            form_of(&requests[1])["client_assertion"],
            "planted-second-assertion"
        );
    }

    #[test]
    fn missing_settings_are_unavailable_and_listed() {
        let err = WorkloadIdentityCredential::builder()
            .runtime(identity_core::Runtime::with_env(Env::empty()))
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        for item in [
            "tenant_id",
            "client_id",
            "token_file_path",
            "AZURE_FEDERATED_TOKEN_FILE",
        ] {
            assert!(err.message().contains(item), "{err}");
        }
        let err = WorkloadIdentityCredential::builder()
            .runtime(identity_core::Runtime::with_env(Env::from_pairs([
                (AZURE_TENANT_ID, "t"),
                (AZURE_FEDERATED_TOKEN_FILE, "/f"),
            ])))
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(
            err.message().contains("client_id (AZURE_CLIENT_ID)"),
            "{err}"
        );
        assert!(!err.message().contains("tenant_id"), "{err}");
    }

    #[test]
    fn builder_settings_override_the_environment() {
        let credential = WorkloadIdentityCredential::builder()
            .tenant_id("t2")
            .client_id("c2")
            .token_file_path("/var/run/token")
            .runtime(
                identity_core::Runtime::with_env(Env::from_pairs([
                    (AZURE_TENANT_ID, "env-tenant"),
                    (AZURE_CLIENT_ID, "env-client"),
                ]))
                .http_client(test_http_client()),
            )
            .build()
            .unwrap();
        let text = format!("{credential:?}");
        assert!(
            text.contains("t2") && text.contains("c2") && text.contains("/var/run/token"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_missing_token_file_is_an_authentication_failure_naming_the_path() {
        let server = token_server().await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("absent");
        let credential = builder(env_for(&server, &file)).build().unwrap();
        let err = credential
            .get_token(&[VAULT], &TokenRequestOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
        assert!(err.message().contains("absent"), "{err}");
        assert!(server.received_requests().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn errors_never_show_the_federated_token() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
                "error": "invalid_client",
                "error_description": "AADSTS700024: Client assertion planted-federated-token is not within its valid time range.",
            })))
            .mount(&server)
            .await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "planted-federated-token").unwrap();
        let credential = builder(env_for(&server, &file)).build().unwrap();
        let err = credential
            .get_token(&[VAULT], &TokenRequestOptions::default())
            .await
            .unwrap_err();
        let text = format!("{err} {err:?} {credential:?}");
        assert!(text.contains("AADSTS700024"), "{text}");
        assert_no_key_material(&text);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_fifo_device_or_huge_token_file_fails_at_once_and_a_link_is_followed() {
        let server = token_server().await;
        let dir = tempfile::tempdir().unwrap();
        for (file, expected) in unreadable_files(dir.path(), 64 * 1024) {
            let credential = builder(env_for(&server, &file)).build().unwrap();
            let err = tokio::time::timeout(
                std::time::Duration::from_secs(20),
                credential.get_token(&[VAULT], &TokenRequestOptions::default()),
            )
            .await
            .expect("the read does not block")
            .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
            assert!(err.message().contains(expected), "{err}");
        }
        assert!(server.received_requests().await.unwrap().is_empty());
        // Kubernetes projects the token as token -> ..data/token -> ..2024_01_01/token.
        let versioned = dir.path().join("..2024_01_01");
        std::fs::create_dir(&versioned).unwrap();
        std::fs::write(versioned.join("token"), "planted-linked-token").unwrap();
        std::os::unix::fs::symlink("..2024_01_01", dir.path().join("..data")).unwrap();
        let link = dir.path().join("token");
        std::os::unix::fs::symlink("..data/token", &link).unwrap();
        let credential = builder(env_for(&server, &link)).build().unwrap();
        credential
            .get_token(&[VAULT], &TokenRequestOptions::default())
            .await
            .unwrap();
        let requests = server.received_requests().await.unwrap();
        assert_eq!(
            form_of(&requests[0])["client_assertion"],
            "planted-linked-token"
        );
    }

    #[tokio::test]
    async fn additionally_allowed_tenants_come_from_the_environment_unless_set() {
        let server = token_endpoint().await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "SAJWT").unwrap();
        let other = TokenRequestOptions::default().tenant_id("other-tenant");
        let path_of_last = |requests: Vec<wiremock::Request>| {
            requests.last().map(|r| r.url.path().to_owned()).unwrap()
        };
        // Listed in the variable (with blanks and spaces around): allowed.
        for value in [" x , other-tenant ,", "*"] {
            let env =
                env_for(&server, &file).with(crate::AZURE_ADDITIONALLY_ALLOWED_TENANTS, value);
            let credential = builder(env).build().unwrap();
            credential.get_token(&[VAULT], &other).await.unwrap();
            assert_eq!(
                path_of_last(server.received_requests().await.unwrap()),
                "/other-tenant/oauth2/v2.0/token",
                "{value:?}"
            );
        }
        // Not listed, or the builder's own list wins: refused before any request.
        let before = server.received_requests().await.unwrap().len();
        let listed =
            env_for(&server, &file).with(crate::AZURE_ADDITIONALLY_ALLOWED_TENANTS, "other-tenant");
        let credentials: [Box<dyn TokenCredential>; 3] = [
            Box::new(builder(env_for(&server, &file)).build().unwrap()),
            Box::new(
                builder(listed.clone())
                    .additionally_allowed_tenants(["someone-else"])
                    .build()
                    .unwrap(),
            ),
            // A credential configured in code does not read the variable.
            Box::new(
                crate::ClientSecretCredential::builder()
                    .tenant_id("t")
                    .client_id("c")
                    .client_secret("planted-secret")
                    .authority_host(server.uri())
                    .allow_insecure_loopback_authority(true)
                    .runtime(
                        identity_core::Runtime::with_env(listed).http_client(test_http_client()),
                    )
                    .build()
                    .unwrap(),
            ),
        ];
        for credential in credentials {
            let err = credential.get_token(&[VAULT], &other).await.unwrap_err();
            assert!(err.message().contains("other-tenant"), "{err}");
        }
        assert_eq!(server.received_requests().await.unwrap().len(), before);
    }
}
