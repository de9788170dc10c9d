//! [`AzurePipelinesCredential`]: an Azure Pipelines job authenticating through an Azure Resource
//! Manager service connection that uses workload identity federation (`docs/protocol.md` §2.7
//! for the exchange).
//!
//! For each token request (the cache makes them rare) the credential asks Azure DevOps for an
//! OIDC token for the service connection, then exchanges it at Microsoft Entra ID as a client
//! assertion:
//!
//! 1. `POST {SYSTEM_OIDCREQUESTURI}?api-version=7.1&serviceConnectionId=<id>` with
//!    `Authorization: Bearer <System.AccessToken>`, `X-TFS-FedAuthRedirect: Suppress` (an
//!    expired token then gets a 401 rather than a redirect to a sign-in page) and
//!    `Content-Type: application/json`; the answer is `{"oidcToken": "<jwt>"}`.
//! 2. `POST https://<authority>/<tenant>/oauth2/v2.0/token` with `client_assertion=<jwt>`,
//!    `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`,
//!    `client_id`, `grant_type=client_credentials` and `scope`.
//!
//! Both requests go through the same pipeline, with the default retry policy (POST included).
//!
//! # Inputs
//! Each is a builder setting; when it is not set, the variable the Azure CLI task
//! (`AzureCLI@2`) and the agent set is read from the injected environment:
//!
//! | setting | variable |
//! |---|---|
//! | [`tenant_id`](AzurePipelinesCredentialBuilder::tenant_id) | `AZURESUBSCRIPTION_TENANT_ID` |
//! | [`client_id`](AzurePipelinesCredentialBuilder::client_id) | `AZURESUBSCRIPTION_CLIENT_ID` |
//! | [`service_connection_id`](AzurePipelinesCredentialBuilder::service_connection_id) | `AZURESUBSCRIPTION_SERVICE_CONNECTION_ID` |
//! | [`system_access_token`](AzurePipelinesCredentialBuilder::system_access_token) | `SYSTEM_ACCESSTOKEN` (a pipeline must map it: `env: SYSTEM_ACCESSTOKEN: $(System.AccessToken)`) |
//! | [`oidc_request_uri`](AzurePipelinesCredentialBuilder::oidc_request_uri) | `SYSTEM_OIDCREQUESTURI` (set by the agent) |
//!
//! plus `AZURE_AUTHORITY_HOST` and `AZURE_ADDITIONALLY_ALLOWED_TENANTS` (comma-separated, `*`).
//!
//! # Errors
//! * An input missing from both builder and environment: [`build`](AzurePipelinesCredentialBuilder::build)
//!   fails with [`ErrorKind::Unavailable`] listing each one and how to provide it.
//! * Azure DevOps answering 401 or 403, a redirect (3xx), or an HTML page: the system access
//!   token is missing, expired, or lacks access to the service connection: an authentication
//!   failure saying so.
//! * Any other refusal: an authentication failure with Azure DevOps' own message and its
//!   request ids (`x-vss-e2eid`, `x-msedge-ref`); a 200 answer without `oidcToken`: an
//!   authentication failure naming the fields it did hold.
//!
//! The system access token and the OIDC token never appear in `Debug`, errors or logs; text
//! from either service is scrubbed of both.
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

const NAME: &str = "AzurePipelinesCredential";

/// The variable holding the agent's OIDC request URL.
pub const SYSTEM_OIDCREQUESTURI: &str = "SYSTEM_OIDCREQUESTURI";
/// The variable a pipeline maps `$(System.AccessToken)` into.
pub const SYSTEM_ACCESSTOKEN: &str = "SYSTEM_ACCESSTOKEN";
/// The service connection's application (client) id, as the Azure CLI task sets it.
pub const AZURESUBSCRIPTION_CLIENT_ID: &str = "AZURESUBSCRIPTION_CLIENT_ID";
/// The service connection's tenant id, as the Azure CLI task sets it.
pub const AZURESUBSCRIPTION_TENANT_ID: &str = "AZURESUBSCRIPTION_TENANT_ID";
/// The service connection id, as the Azure CLI task sets it.
pub const AZURESUBSCRIPTION_SERVICE_CONNECTION_ID: &str = "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID";

const OIDC_API_VERSION: &str = "7.1";

/// Authenticates an Azure Pipelines job through a workload-identity-federation service
/// connection. See the [module docs](self).
///
/// ```no_run
/// # fn demo() -> Result<(), identity_chain::Error> {
/// // In a step with `env: SYSTEM_ACCESSTOKEN: $(System.AccessToken)`; outside an
/// // `AzureCLI@2` task the service connection's ids are named here.
/// let credential = identity_chain::AzurePipelinesCredential::builder()
///     .tenant_id("72f988bf-86f1-41af-91ab-2d7cd011db47")
///     .client_id("00000000-0000-0000-0000-000000000001")
///     .service_connection_id("00000000-0000-0000-0000-000000000002")
///     .build()?;
/// # Ok(()) }
/// ```
pub type AzurePipelinesCredential = Credential<ServicePrincipal<AzurePipelines>>;

/// Names [`AzurePipelinesCredential`] among the [`ServicePrincipal`] kinds.
#[derive(Clone, Debug)]
pub enum AzurePipelines {}

/// Reads Azure DevOps' answer: the `oidcToken`, or an error saying what to fix.
///
/// | answer | error |
/// |---|---|
/// | 200 JSON with a non-empty `oidcToken` | none |
/// | 401, 403, any 3xx, or an HTML page | authentication failed: the system access token |
/// | 200 JSON without `oidcToken` | authentication failed: the field names it held |
/// | any other status | authentication failed: Azure DevOps' `message`, request ids |
fn parse_oidc_response(
    response: &identity_core::http::Response,
    secrets: &[&str],
) -> Result<Secret, Error> {
    let status = response.status().as_u16();
    let ids = federated::request_ids(response, &["x-vss-e2eid", "x-msedge-ref"]);
    if status == 401
        || status == 403
        || response.status().is_redirection()
        || federated::is_html(response)
    {
        let what = if federated::is_html(response) {
            format!("HTTP {status} with an HTML page")
        } else {
            format!("HTTP {status}")
        };
        return Err(Error::authentication_failed(
            NAME,
            format!(
                "Azure DevOps did not accept the system access token ({what}){ids}; the token is missing, \
                 expired, or not allowed to use the service connection: map it into the step \
                 (`env: SYSTEM_ACCESSTOKEN: $(System.AccessToken)`), request the Azure token while the job \
                 runs, and check that the pipeline is authorized to use the service connection"
            ),
        )
        .with_status(status));
    }
    if !response.status().is_success() {
        let message = federated::service_message(response, &["message"], secrets);
        return Err(Error::authentication_failed(
            NAME,
            format!(
                "Azure DevOps refused the OIDC token request (HTTP {status}){message}{ids}; check the service \
                 connection id (the resourceId in the service connection's URL) and that the service \
                 connection uses workload identity federation"
            ),
        )
        .with_status(status));
    }
    let Some(map) = federated::json_object(response) else {
        return Err(Error::authentication_failed(
            NAME,
            format!(
                "Azure DevOps answered HTTP {status} with {} bytes that are not a JSON object{ids}; \
                 check SYSTEM_OIDCREQUESTURI",
                response.body().len()
            ),
        )
        .with_status(status));
    };
    match federated::string_field(&map, "oidcToken") {
        Some(token) => Ok(Secret::new(token)),
        None => Err(Error::authentication_failed(
            NAME,
            format!(
                "Azure DevOps' answer holds no oidcToken ({}){ids}; check that the service connection id names \
                 an Azure Resource Manager service connection that uses workload identity federation",
                federated::field_names(&map, secrets)
            ),
        )
        .with_status(status)),
    }
}

/// Builds an [`AzurePipelinesCredential`]: the shared setters of [`CredentialBuilder`], the
/// tenant and client ids (default `AZURESUBSCRIPTION_TENANT_ID`, `AZURESUBSCRIPTION_CLIENT_ID`)
/// and the service connection's settings.
pub type AzurePipelinesCredentialBuilder = CredentialBuilder<AzurePipelinesSettings>;

/// The settings only an [`AzurePipelinesCredentialBuilder`] has.
#[derive(Clone, Default)]
pub struct AzurePipelinesSettings {
    service_connection_id: Option<String>,
    system_access_token: Option<Secret>,
    oidc_request_uri: Option<String>,
}

impl fmt::Debug for AzurePipelinesSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzurePipelinesSettings")
            .field("service_connection_id", &self.service_connection_id)
            .field(
                "system_access_token",
                &self.system_access_token.as_ref().map(|_| "***"),
            )
            .finish_non_exhaustive()
    }
}

impl Ids for AzurePipelinesSettings {}

impl Named for AzurePipelines {
    type Settings = AzurePipelinesSettings;
}

impl AzurePipelinesCredentialBuilder {
    /// The service connection id: the `resourceId` query parameter of the service connection's
    /// page in the Azure DevOps portal (default: `AZURESUBSCRIPTION_SERVICE_CONNECTION_ID`).
    pub fn service_connection_id(mut self, id: impl Into<String>) -> Self {
        self.settings.service_connection_id = Some(id.into());
        self
    }

    /// The job's `System.AccessToken` (default: `SYSTEM_ACCESSTOKEN`, which a pipeline must map
    /// explicitly).
    pub fn system_access_token(mut self, token: impl Into<Secret>) -> Self {
        self.settings.system_access_token = Some(token.into());
        self
    }

    /// The agent's OIDC request URL (default: `SYSTEM_OIDCREQUESTURI`). Must be `https`.
    pub fn oidc_request_uri(mut self, uri: impl Into<String>) -> Self {
        self.settings.oidc_request_uri = Some(uri.into());
        self
    }

    /// Builds the credential. No request is made here.
    ///
    /// # Errors
    /// [`ErrorKind::Unavailable`](identity_core::ErrorKind::Unavailable) listing every input
    /// missing from both the builder and the environment;
    /// [`ErrorKind::InvalidConfiguration`](identity_core::ErrorKind::InvalidConfiguration) for a
    /// `SYSTEM_OIDCREQUESTURI` that is not an `https` URL, an invalid tenant id, or a
    /// non-`https` authority.
    pub fn build(mut self) -> Result<AzurePipelinesCredential, Error> {
        let env = self
            .common
            .resolve_from_env(AZURESUBSCRIPTION_TENANT_ID, AZURESUBSCRIPTION_CLIENT_ID);
        let settings = self.settings;
        let connection = setting_or_env(
            &env,
            settings.service_connection_id,
            AZURESUBSCRIPTION_SERVICE_CONNECTION_ID,
        );
        let token = secret_or_env(&env, settings.system_access_token, SYSTEM_ACCESSTOKEN);
        let uri = setting_or_env(&env, settings.oidc_request_uri, SYSTEM_OIDCREQUESTURI);
        let mut missing = self
            .common
            .missing_ids(AZURESUBSCRIPTION_TENANT_ID, AZURESUBSCRIPTION_CLIENT_ID);
        if connection.is_none() {
            missing
                .push("service_connection_id (AZURESUBSCRIPTION_SERVICE_CONNECTION_ID)".to_owned());
        }
        if token.is_none() {
            missing.push(
                "system_access_token (SYSTEM_ACCESSTOKEN; map it in the step: `env: SYSTEM_ACCESSTOKEN: $(System.AccessToken)`)".to_owned(),
            );
        }
        if uri.is_none() {
            missing.push(
                "oidc_request_uri (SYSTEM_OIDCREQUESTURI, set by the Azure Pipelines agent)"
                    .to_owned(),
            );
        }
        let (Some(connection), Some(token), Some(uri), true) =
            (connection, token, uri, missing.is_empty())
        else {
            return Err(Error::unavailable(NAME, unavailable_message(&missing)));
        };
        let connection = connection.trim().to_owned();
        federated::endpoint(
            NAME,
            SYSTEM_OIDCREQUESTURI,
            &uri,
            self.common.allow_insecure_loopback_authority,
        )?;
        let url = federated::with_query(
            &uri,
            &[
                ("api-version", OIDC_API_VERSION),
                ("serviceConnectionId", &connection),
            ],
        );
        let source = Arc::new(BearerFetch {
            name: NAME,
            method: http::Method::POST,
            url,
            headers: &[
                ("X-TFS-FedAuthRedirect", "Suppress"),
                ("content-type", "application/json"),
            ],
            bearer: token,
            pipeline: self.common.pipeline(NAME)?,
            bad_token: "the system access token holds characters not allowed in an HTTP header; check SYSTEM_ACCESSTOKEN",
            bad_url: "the OIDC request URL is invalid; check SYSTEM_OIDCREQUESTURI and the service connection id",
            log: "requesting an OIDC token from Azure DevOps",
            parse: parse_oidc_response,
        });
        let client = self.common.build(
            NAME,
            "azure_pipelines",
            ClientAuth::Assertion(Arc::new(source)),
        )?;
        let client = client.with_detail("service_connection_id", Arc::new(connection));
        Ok(Credential::service_principal(client))
    }
}

fn unavailable_message(missing: &[String]) -> String {
    format!(
        "Azure Pipelines federation is not fully configured; missing: {}. AzurePipelinesCredential works in an \
         Azure Pipelines job using a service connection with workload identity federation",
        missing.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use identity_core::{Env, ErrorKind};
    use identity_core::{TokenCredential, TokenRequestOptions};
    use wiremock::matchers::{header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const SYSTEM_TOKEN: &str = "planted-system-access-token";
    const OIDC_TOKEN: &str = "planted-ado-oidc-token";
    const SCOPE: &str = "https://management.azure.com/.default";
    const OIDC_PATH: &str = "/org/proj/_apis/distributedtask/hubs/build/plans/p1/jobs/j1/oidctoken";

    /// The environment of an `AzureCLI@2` step with the system token mapped, pointing both the
    /// OIDC endpoint and the authority at `server`.
    fn pipeline_env(server: &MockServer) -> Env {
        Env::from_pairs([
            (
                SYSTEM_OIDCREQUESTURI,
                format!("{}{OIDC_PATH}", server.uri()),
            ),
            (SYSTEM_ACCESSTOKEN, SYSTEM_TOKEN.to_owned()),
            (AZURESUBSCRIPTION_TENANT_ID, "t".to_owned()),
            (AZURESUBSCRIPTION_CLIENT_ID, "c".to_owned()),
            (AZURESUBSCRIPTION_SERVICE_CONNECTION_ID, "sc-1".to_owned()),
            ("AZURE_AUTHORITY_HOST", server.uri()),
        ])
    }

    fn builder(env: Env) -> AzurePipelinesCredentialBuilder {
        AzurePipelinesCredential::builder()
            .runtime(fake_runtime(env))
            .allow_insecure_loopback_authority(true)
    }

    /// Why a credential over `env` (and the test HTTP client) cannot be built.
    fn build_error(env: Env) -> Error {
        AzurePipelinesCredential::builder()
            .runtime(identity_core::Runtime::with_env(env).http_client(test_http_client()))
            .build()
            .unwrap_err()
    }

    /// Azure DevOps answering the OIDC token.
    fn oidc_token_answer() -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_json(serde_json::json!({ "oidcToken": OIDC_TOKEN }))
    }

    async fn oidc_answers(server: &MockServer, answer: ResponseTemplate) {
        Mock::given(method("POST"))
            .and(path(OIDC_PATH))
            .respond_with(answer)
            .mount(server)
            .await;
    }

    async fn failure(answer: ResponseTemplate) -> Error {
        let server = MockServer::start().await;
        mount_token_endpoint(&server).await;
        oidc_answers(&server, answer).await;
        let credential = builder(pipeline_env(&server)).build().unwrap();
        let err = planted_free_failure(&credential, SCOPE).await;
        let requests = server.received_requests().await.unwrap();
        assert!(
            requests.iter().all(|r| r.url.path() == OIDC_PATH),
            "Entra must not be asked without an OIDC token"
        );
        err
    }

    #[tokio::test]
    async fn the_oidc_token_is_requested_then_exchanged() {
        let server = MockServer::start().await;
        mount_token_endpoint(&server).await;
        Mock::given(method("POST"))
            .and(path(OIDC_PATH))
            .and(query_param("api-version", "7.1"))
            .and(query_param("serviceConnectionId", "sc-1"))
            .and(header(
                "authorization",
                format!("Bearer {SYSTEM_TOKEN}").as_str(),
            ))
            .and(header("x-tfs-fedauthredirect", "Suppress"))
            .and(header("content-type", "application/json"))
            .respond_with(oidc_token_answer())
            .expect(1)
            .mount(&server)
            .await;
        let credential = builder(pipeline_env(&server)).build().unwrap();
        // Cached: no second request of either kind.
        let form = exchange_form(&credential, &server, SCOPE).await;
        assert_eq!(form["client_assertion"], OIDC_TOKEN);
        assert_eq!(form["grant_type"], "client_credentials");
        let text = format!("{credential:?}");
        assert!(text.contains("sc-1") && !text.contains("planted"), "{text}");
    }

    #[tokio::test]
    async fn builder_settings_override_the_task_variables() {
        let server = MockServer::start().await;
        token_mock("t2", "AT").mount(&server).await;
        Mock::given(method("POST"))
            .and(path("/other"))
            .and(query_param("serviceConnectionId", "sc-2"))
            .and(header("authorization", "Bearer planted-explicit-token"))
            .respond_with(oidc_token_answer())
            .expect(1)
            .mount(&server)
            .await;
        let credential = builder(pipeline_env(&server))
            .tenant_id("t2")
            .client_id("c2")
            .service_connection_id("sc-2")
            .system_access_token("planted-explicit-token")
            .oidc_request_uri(format!("{}/other", server.uri()))
            .build()
            .unwrap();
        credential
            .get_token(&[SCOPE], &TokenRequestOptions::default())
            .await
            .unwrap();
        let requests = server.received_requests().await.unwrap();
        assert_eq!(form_of(&requests[1])["client_id"], "c2");
    }

    #[test]
    fn missing_inputs_are_unavailable_and_each_is_named() {
        let err = build_error(Env::empty());
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        for item in [
            "AZURESUBSCRIPTION_TENANT_ID",
            "AZURESUBSCRIPTION_CLIENT_ID",
            "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID",
            "SYSTEM_ACCESSTOKEN",
            "$(System.AccessToken)",
            "SYSTEM_OIDCREQUESTURI",
        ] {
            assert!(err.message().contains(item), "{item}: {err}");
        }
        // Only the system access token unmapped, as in a step without `env:`.
        let env = Env::from_pairs([
            (SYSTEM_OIDCREQUESTURI, "https://dev.azure.com/o/p/_apis/x"),
            (AZURESUBSCRIPTION_TENANT_ID, "t"),
            (AZURESUBSCRIPTION_CLIENT_ID, "c"),
            (AZURESUBSCRIPTION_SERVICE_CONNECTION_ID, "sc"),
            (SYSTEM_ACCESSTOKEN, " "),
        ]);
        let err = build_error(env);
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.message().contains("SYSTEM_ACCESSTOKEN"), "{err}");
        assert!(!err.message().contains("TENANT"), "{err}");
    }

    #[test]
    fn a_plain_http_oidc_uri_is_refused() {
        let env = Env::from_pairs([
            (SYSTEM_OIDCREQUESTURI, "http://dev.azure.com/o/p/_apis/x"),
            (SYSTEM_ACCESSTOKEN, SYSTEM_TOKEN),
            (AZURESUBSCRIPTION_TENANT_ID, "t"),
            (AZURESUBSCRIPTION_CLIENT_ID, "c"),
            (AZURESUBSCRIPTION_SERVICE_CONNECTION_ID, "sc"),
        ]);
        let err = build_error(env);
        assert_eq!(err.kind(), ErrorKind::InvalidConfiguration);
        assert!(err.message().contains("SYSTEM_OIDCREQUESTURI"), "{err}");
        assert!(!format!("{err:?}").contains("planted"));
    }

    #[tokio::test]
    async fn an_expired_or_unmapped_system_token_is_named() {
        let sign_in = "<!DOCTYPE html><html><head><title>Azure DevOps Services | Sign In</title></head></html>";
        for answer in [
            ResponseTemplate::new(401).insert_header("x-vss-e2eid", "e2e-123"),
            ResponseTemplate::new(403),
            ResponseTemplate::new(302).insert_header(
                "location",
                "https://spsprodweu5.vssps.visualstudio.com/_signin",
            ),
            ResponseTemplate::new(203).set_body_raw(sign_in, "text/html; charset=utf-8"),
            ResponseTemplate::new(200).set_body_raw(sign_in, "text/plain"),
        ] {
            let err = failure(answer).await;
            assert_eq!(err.kind(), ErrorKind::AuthenticationFailed, "{err}");
            assert!(err.message().contains("system access token"), "{err}");
            assert!(err.message().contains("SYSTEM_ACCESSTOKEN"), "{err}");
        }
        let err = failure(ResponseTemplate::new(401).insert_header("x-vss-e2eid", "e2e-123")).await;
        assert!(err.message().contains("x-vss-e2eid: e2e-123"), "{err}");
        assert_eq!(err.status(), Some(401));
    }

    #[tokio::test]
    async fn an_answer_without_oidc_token_names_the_fields_it_held() {
        let err = failure(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({ "token": "planted-elsewhere", "count": 1 })),
        )
        .await;
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
        assert!(err.message().contains("no oidcToken"), "{err}");
        assert!(err.message().contains("fields: count, token"), "{err}");
        let err = failure(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({ "oidcToken": "" })),
        )
        .await;
        assert!(err.message().contains("no oidcToken"), "{err}");
        let err = failure(ResponseTemplate::new(200).set_body_string("planted not json")).await;
        assert!(err.message().contains("not a JSON object"), "{err}");
    }

    #[tokio::test]
    async fn other_refusals_keep_the_service_message_scrubbed_of_the_token() {
        let err = failure(ResponseTemplate::new(404).set_body_json(serde_json::json!({
            "$id": "1",
            "message": format!("Service connection sc-1 not found for token {SYSTEM_TOKEN}"),
            "typeName": "Microsoft.TeamFoundation.DistributedTask.WebApi.ServiceEndpointNotFoundException",
        })))
        .await;
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
        assert!(err.message().contains("HTTP 404"), "{err}");
        assert!(
            err.message().contains("Service connection sc-1 not found"),
            "{err}"
        );
        assert!(err.message().contains("service connection id"), "{err}");
    }

    #[tokio::test]
    async fn entra_refusing_the_oidc_token_never_shows_it() {
        let server = MockServer::start().await;
        oidc_answers(&server, oidc_token_answer()).await;
        Mock::given(method("POST"))
            .and(path("/t/oauth2/v2.0/token"))
            .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
                "error": "invalid_client",
                "error_description": format!("AADSTS700213: No matching federated identity record found for presented assertion {OIDC_TOKEN}"),
            })))
            .mount(&server)
            .await;
        let credential = builder(pipeline_env(&server)).build().unwrap();
        let err = credential
            .get_token(&[SCOPE], &TokenRequestOptions::default())
            .await
            .unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(text.contains("AADSTS700213"), "{text}");
        assert!(!text.contains("planted"), "{text}");
    }
}
