//! [`GitHubActionsCredential`]: a GitHub Actions job authenticating with the workflow's OIDC
//! token, through a federated identity credential on a Microsoft Entra app registration or
//! user-assigned managed identity (`docs/protocol.md` §2.7 for the exchange).
//!
//! For each token request (the cache makes them rare) the credential asks GitHub for an ID
//! token, then exchanges it at Microsoft Entra ID as a client assertion:
//!
//! 1. `GET {ACTIONS_ID_TOKEN_REQUEST_URL}&audience=api://AzureADTokenExchange` with
//!    `Authorization: Bearer {ACTIONS_ID_TOKEN_REQUEST_TOKEN}`; the answer is
//!    `{"value": "<jwt>"}`.
//! 2. `POST https://<authority>/<tenant>/oauth2/v2.0/token` with `client_assertion=<jwt>`,
//!    `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`,
//!    `client_id`, `grant_type=client_credentials` and `scope`.
//!
//! GitHub sets the two `ACTIONS_ID_TOKEN_REQUEST_*` variables only for jobs whose workflow grants
//! `permissions: id-token: write`; without them [`build`](GitHubActionsCredentialBuilder::build)
//! fails with [`ErrorKind::Unavailable`] saying so.
//!
//! # Inputs
//! Each is a builder setting; when it is not set, a variable is read from the injected
//! environment: [`tenant_id`](GitHubActionsCredentialBuilder::tenant_id) from `AZURE_TENANT_ID`,
//! [`client_id`](GitHubActionsCredentialBuilder::client_id) from `AZURE_CLIENT_ID`,
//! [`id_token_request_url`](GitHubActionsCredentialBuilder::id_token_request_url) from
//! `ACTIONS_ID_TOKEN_REQUEST_URL`,
//! [`id_token_request_token`](GitHubActionsCredentialBuilder::id_token_request_token) from
//! `ACTIONS_ID_TOKEN_REQUEST_TOKEN`; plus `AZURE_AUTHORITY_HOST` and
//! `AZURE_ADDITIONALLY_ALLOWED_TENANTS`. The audience defaults to `api://AzureADTokenExchange`
//! (the public cloud's; [`audience`](GitHubActionsCredentialBuilder::audience) sets another,
//! e.g. `api://AzureADTokenExchangeUSGov` or `api://AzureADTokenExchangeChina`).
//!
//! # Errors
//! * GitHub answering 401 or 403: the request token is wrong or expired (it lives as long as the
//!   job): an authentication failure saying so.
//! * Any other refusal, a redirect or an HTML page: an authentication failure with GitHub's
//!   `message` and `x-github-request-id`; a 200 answer without `value`: an authentication
//!   failure naming the fields it did hold.
//!
//! No other Azure SDK has this credential, and `DefaultAzureCredential` does not include it (it
//! includes only members of the reference chain); `AZURE_TOKEN_CREDENTIALS=GitHubActionsCredential`
//! selects it. The request token and the ID token never appear in `Debug`, errors or logs.
//!
//! [`ErrorKind::Unavailable`]: identity_core::ErrorKind::Unavailable

use std::fmt;
use std::sync::Arc;

use identity_core::{Error, Secret};

use crate::client::ClientAuth;
use crate::credential::sealed::{Ids, Named};
use crate::credential::{Credential, CredentialBuilder, ServicePrincipal};
use crate::federated::{self, BearerFetch};
use crate::options::{secret_or_env, setting_or_env};

const NAME: &str = "GitHubActionsCredential";

/// The variable holding the job's ID-token request URL.
pub const ACTIONS_ID_TOKEN_REQUEST_URL: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
/// The variable holding the bearer token for the ID-token request.
pub const ACTIONS_ID_TOKEN_REQUEST_TOKEN: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";
pub use crate::environment::{AZURE_CLIENT_ID, AZURE_TENANT_ID};
/// The audience Microsoft Entra ID expects in a federated token (public cloud).
pub const DEFAULT_AUDIENCE: &str = "api://AzureADTokenExchange";

/// Authenticates a GitHub Actions job with the workflow's OIDC token. See the
/// [module docs](self).
///
/// ```no_run
/// # fn demo() -> Result<(), identity_chain::Error> {
/// // In a job with `permissions: id-token: write`, AZURE_CLIENT_ID and AZURE_TENANT_ID set,
/// // in a sovereign cloud whose federation audience differs from the public cloud's.
/// let credential = identity_chain::GitHubActionsCredential::builder()
///     .audience("api://AzureADTokenExchangeUSGov")
///     .authority_host(identity_chain::AzureAuthorityHosts::AZURE_GOVERNMENT)
///     .build()?;
/// # Ok(()) }
/// ```
pub type GitHubActionsCredential = Credential<ServicePrincipal<GitHubActions>>;

/// Names [`GitHubActionsCredential`] among the [`ServicePrincipal`] kinds.
#[derive(Clone, Debug)]
pub enum GitHubActions {}

/// Reads GitHub's answer: the `value`, or an error saying what to fix.
///
/// | answer | error |
/// |---|---|
/// | 200 JSON with a non-empty `value` | none |
/// | 401, 403 | authentication failed: the request token |
/// | any other status, a redirect or an HTML page | authentication failed: GitHub's `message`, request id |
/// | 200 JSON without `value` | authentication failed: the field names it held |
fn parse_id_token_response(
    response: &identity_core::http::Response,
    secrets: &[&str],
) -> Result<Secret, Error> {
    let status = response.status().as_u16();
    let ids = federated::request_ids(response, &["x-github-request-id"]);
    let message = federated::service_message(response, &["message"], secrets);
    if status == 401 || status == 403 {
        return Err(Error::authentication_failed(
            NAME,
            format!(
                "GitHub refused the ID-token request (HTTP {status}){message}{ids}; ACTIONS_ID_TOKEN_REQUEST_TOKEN is \
                 wrong or expired (it is valid only while the job runs): request the Azure token inside the job, \
                 with `permissions: id-token: write`"
            ),
        )
        .with_status(status));
    }
    if !response.status().is_success() || federated::is_html(response) {
        let html = if federated::is_html(response) {
            " with an HTML page"
        } else {
            ""
        };
        return Err(Error::authentication_failed(
            NAME,
            format!(
                "GitHub's ID-token endpoint answered HTTP {status}{html}{message}{ids}; check \
                 ACTIONS_ID_TOKEN_REQUEST_URL (set by the runner) and the audience"
            ),
        )
        .with_status(status));
    }
    let Some(map) = federated::json_object(response) else {
        return Err(Error::authentication_failed(
            NAME,
            format!(
                "GitHub answered HTTP {status} with {} bytes that are not a JSON object{ids}; check \
                 ACTIONS_ID_TOKEN_REQUEST_URL",
                response.body().len()
            ),
        )
        .with_status(status));
    };
    match federated::string_field(&map, "value") {
        Some(token) => Ok(Secret::new(token)),
        None => Err(Error::authentication_failed(
            NAME,
            format!(
                "GitHub's answer holds no ID token in `value` ({}){ids}; check ACTIONS_ID_TOKEN_REQUEST_URL",
                federated::field_names(&map, secrets)
            ),
        )
        .with_status(status)),
    }
}

/// Builds a [`GitHubActionsCredential`]: the shared setters of [`CredentialBuilder`], the
/// tenant and client ids (default `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`) and the ID-token
/// request's settings.
pub type GitHubActionsCredentialBuilder = CredentialBuilder<GitHubActionsSettings>;

/// The settings only a [`GitHubActionsCredentialBuilder`] has.
#[derive(Clone, Default)]
pub struct GitHubActionsSettings {
    url: Option<String>,
    request_token: Option<Secret>,
    audience: Option<String>,
}

impl fmt::Debug for GitHubActionsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHubActionsSettings")
            .field(
                "id_token_request_token",
                &self.request_token.as_ref().map(|_| "***"),
            )
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl Ids for GitHubActionsSettings {}

impl Named for GitHubActions {
    type Settings = GitHubActionsSettings;
}

impl GitHubActionsCredentialBuilder {
    /// The ID-token request URL (default: `ACTIONS_ID_TOKEN_REQUEST_URL`). Must be `https`.
    pub fn id_token_request_url(mut self, url: impl Into<String>) -> Self {
        self.settings.url = Some(url.into());
        self
    }

    /// The bearer token for the ID-token request (default: `ACTIONS_ID_TOKEN_REQUEST_TOKEN`).
    pub fn id_token_request_token(mut self, token: impl Into<Secret>) -> Self {
        self.settings.request_token = Some(token.into());
        self
    }

    /// The audience of the ID token (default: [`DEFAULT_AUDIENCE`],
    /// `api://AzureADTokenExchange`); it must match the federated identity credential.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.settings.audience = Some(audience.into());
        self
    }

    /// Builds the credential. No request is made here.
    ///
    /// # Errors
    /// [`ErrorKind::Unavailable`](identity_core::ErrorKind::Unavailable) listing every input
    /// missing from both the builder and the environment (without the two
    /// `ACTIONS_ID_TOKEN_REQUEST_*` variables, the message says the workflow lacks
    /// `permissions: id-token: write`);
    /// [`ErrorKind::InvalidConfiguration`](identity_core::ErrorKind::InvalidConfiguration) for a
    /// request URL that is not `https`, an invalid tenant id, or a non-`https` authority.
    pub fn build(mut self) -> Result<GitHubActionsCredential, Error> {
        let env = self
            .common
            .resolve_from_env(AZURE_TENANT_ID, AZURE_CLIENT_ID);
        let url = setting_or_env(&env, self.settings.url.take(), ACTIONS_ID_TOKEN_REQUEST_URL);
        let token = secret_or_env(
            &env,
            self.settings.request_token.take(),
            ACTIONS_ID_TOKEN_REQUEST_TOKEN,
        );
        let mut missing = self.common.missing_ids(AZURE_TENANT_ID, AZURE_CLIENT_ID);
        if url.is_none() {
            missing.push("id_token_request_url (ACTIONS_ID_TOKEN_REQUEST_URL)".to_owned());
        }
        if token.is_none() {
            missing.push("id_token_request_token (ACTIONS_ID_TOKEN_REQUEST_TOKEN)".to_owned());
        }
        let (Some(url), Some(token), true) = (url, token, missing.is_empty()) else {
            let mut message = format!(
                "GitHub Actions federation is not fully configured; missing: {}",
                missing.join(", ")
            );
            if missing
                .iter()
                .any(|m| m.contains("ACTIONS_ID_TOKEN_REQUEST"))
            {
                message.push_str(
                    ". GitHub sets ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN only in a job whose \
                     workflow grants `permissions: id-token: write`; add it to the workflow or the job",
                );
            }
            if missing.iter().any(|m| m.contains("AZURE_")) {
                message.push_str(
                    ". Set AZURE_CLIENT_ID and AZURE_TENANT_ID (e.g. from repository variables) in the step's `env:`",
                );
            }
            return Err(Error::unavailable(NAME, message));
        };
        federated::endpoint(
            NAME,
            ACTIONS_ID_TOKEN_REQUEST_URL,
            &url,
            self.common.allow_insecure_loopback_authority,
        )?;
        let audience = self
            .settings
            .audience
            .take()
            .filter(|a| !a.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned());
        let url = federated::with_query(&url, &[("audience", audience.trim())]);
        let source = Arc::new(BearerFetch {
            name: NAME,
            method: http::Method::GET,
            url,
            headers: &[],
            bearer: token,
            pipeline: self.common.pipeline(NAME)?,
            bad_token: "the ID-token request token holds characters not allowed in an HTTP header; check ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            bad_url: "the ID-token request URL is invalid; check ACTIONS_ID_TOKEN_REQUEST_URL and the audience",
            log: "requesting an ID token from GitHub Actions",
            parse: parse_id_token_response,
        });
        let client = self.common.build(
            NAME,
            "github_actions",
            ClientAuth::Assertion(Arc::new(source)),
        )?;
        Ok(Credential::service_principal(client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use identity_core::{Env, ErrorKind};
    use identity_core::{TokenCredential, TokenRequestOptions};
    use wiremock::matchers::{header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const REQUEST_TOKEN: &str = "planted-actions-request-token";
    const ID_TOKEN: &str = "planted-github-id-token";
    const SCOPE: &str = "https://management.azure.com/.default";

    /// A runner's environment, pointing both the ID-token endpoint and the authority at `server`.
    fn runner_env(server: &MockServer) -> Env {
        Env::from_pairs([
            (
                ACTIONS_ID_TOKEN_REQUEST_URL,
                format!("{}/_apis/oidctoken?api-version=2.0", server.uri()),
            ),
            (ACTIONS_ID_TOKEN_REQUEST_TOKEN, REQUEST_TOKEN.to_owned()),
            (AZURE_TENANT_ID, "t".to_owned()),
            (AZURE_CLIENT_ID, "c".to_owned()),
            ("AZURE_AUTHORITY_HOST", server.uri()),
        ])
    }

    fn builder(env: Env) -> GitHubActionsCredentialBuilder {
        GitHubActionsCredential::builder()
            .runtime(fake_runtime(env))
            .allow_insecure_loopback_authority(true)
    }

    /// Why a credential over `env` (and the test HTTP client) cannot be built.
    fn build_error(env: Env) -> Error {
        GitHubActionsCredential::builder()
            .runtime(identity_core::Runtime::with_env(env).http_client(test_http_client()))
            .build()
            .unwrap_err()
    }

    async fn failure(answer: ResponseTemplate) -> Error {
        let server = MockServer::start().await;
        mount_token_endpoint(&server).await;
        Mock::given(method("GET"))
            .and(path("/_apis/oidctoken"))
            .respond_with(answer)
            .mount(&server)
            .await;
        let credential = builder(runner_env(&server)).build().unwrap();
        let err = planted_free_failure(&credential, SCOPE).await;
        let requests = server.received_requests().await.unwrap();
        assert!(requests.iter().all(|r| r.method.as_str() == "GET"));
        err
    }

    #[tokio::test]
    async fn the_id_token_is_requested_for_the_exchange_audience_then_exchanged() {
        let server = MockServer::start().await;
        mount_token_endpoint(&server).await;
        Mock::given(method("GET"))
            .and(path("/_apis/oidctoken"))
            .and(query_param("api-version", "2.0"))
            .and(query_param("audience", "api://AzureADTokenExchange"))
            .and(header(
                "authorization",
                format!("Bearer {REQUEST_TOKEN}").as_str(),
            ))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({ "count": 1, "value": ID_TOKEN })),
            )
            .expect(1)
            .mount(&server)
            .await;
        let credential = builder(runner_env(&server)).build().unwrap();
        let form = exchange_form(&credential, &server, SCOPE).await;
        assert_eq!(form["client_assertion"], ID_TOKEN);
        assert!(!format!("{credential:?}").contains("planted"));
    }

    #[tokio::test]
    async fn another_audience_can_be_asked_for() {
        let server = MockServer::start().await;
        mount_token_endpoint(&server).await;
        Mock::given(method("GET"))
            .and(query_param("audience", "api://AzureADTokenExchangeUSGov"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(serde_json::json!({ "value": ID_TOKEN })),
            )
            .expect(1)
            .mount(&server)
            .await;
        builder(runner_env(&server))
            .audience("api://AzureADTokenExchangeUSGov")
            .build()
            .unwrap()
            .get_token(&[SCOPE], &TokenRequestOptions::default())
            .await
            .unwrap();
    }

    #[test]
    fn a_workflow_without_id_token_write_is_told_so() {
        let env = Env::from_pairs([(AZURE_TENANT_ID, "t"), (AZURE_CLIENT_ID, "c")]);
        let err = build_error(env);
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.message().contains("id-token: write"), "{err}");
        assert!(
            err.message().contains("ACTIONS_ID_TOKEN_REQUEST_URL"),
            "{err}"
        );
        assert!(!err.message().contains("AZURE_CLIENT_ID"), "{err}");
        let err = build_error(Env::from_pairs([
            (
                ACTIONS_ID_TOKEN_REQUEST_URL,
                "https://x.actions.githubusercontent.com/t?api-version=2.0",
            ),
            (ACTIONS_ID_TOKEN_REQUEST_TOKEN, REQUEST_TOKEN),
        ]));
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.message().contains("AZURE_TENANT_ID"), "{err}");
        assert!(err.message().contains("AZURE_CLIENT_ID"), "{err}");
        assert!(!err.message().contains("id-token: write"), "{err}");
        assert!(!format!("{err:?}").contains("planted"));
    }

    #[tokio::test]
    async fn a_refused_request_token_is_named() {
        for status in [401, 403] {
            let err = failure(
                ResponseTemplate::new(status)
                    .insert_header("x-github-request-id", "ABCD:1234")
                    .set_body_json(serde_json::json!({ "message": format!("Bad credentials {REQUEST_TOKEN}") })),
            )
            .await;
            assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
            assert!(
                err.message().contains("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
                "{err}"
            );
            assert!(err.message().contains("Bad credentials ***"), "{err}");
            assert!(
                err.message().contains("x-github-request-id: ABCD:1234"),
                "{err}"
            );
            assert_eq!(err.status(), Some(status));
        }
    }

    #[tokio::test]
    async fn other_answers_say_what_to_check() {
        let err = failure(ResponseTemplate::new(404)).await;
        assert!(err.message().contains("HTTP 404"), "{err}");
        assert!(
            err.message().contains("ACTIONS_ID_TOKEN_REQUEST_URL"),
            "{err}"
        );
        let err =
            failure(ResponseTemplate::new(200).set_body_raw("<html>proxy</html>", "text/html"))
                .await;
        assert!(err.message().contains("HTML"), "{err}");
        let err =
            failure(ResponseTemplate::new(200).set_body_json(serde_json::json!({ "count": 0 })))
                .await;
        assert!(err.message().contains("no ID token"), "{err}");
        assert!(err.message().contains("fields: count"), "{err}");
        let err = failure(ResponseTemplate::new(200).set_body_string("planted")).await;
        assert!(err.message().contains("not a JSON object"), "{err}");
    }
}
