//! The internal [`Source`] trait that every hosting environment implements, the identity
//! selector and the source names.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use identity_core::http::{HttpClient, Limits, Pipeline, Request, Response, SendOptions, Target};
use identity_core::redact::Redactor;
use identity_core::retry::RetryPolicy;
use identity_core::{BoxFuture, Clock, Env, Error, Sleeper};

use crate::NAME;
use crate::wire::{self, TokenResponse};

/// Which managed identity to request a token for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum ManagedIdentityId {
    /// The host's system-assigned identity.
    #[default]
    SystemAssigned,
    /// A user-assigned identity by its client (application) id.
    ClientId(String),
    /// A user-assigned identity by its object (principal) id.
    ObjectId(String),
    /// A user-assigned identity by its Azure resource id
    /// (`/subscriptions/…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/…`).
    ResourceId(String),
}

impl ManagedIdentityId {
    /// A short description for messages: `system-assigned`, `user-assigned (client id)`…
    /// The id itself is not a secret, but it is left out so that messages stay short.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::SystemAssigned => "system-assigned",
            Self::ClientId(_) => "user-assigned (client id)",
            Self::ObjectId(_) => "user-assigned (object id)",
            Self::ResourceId(_) => "user-assigned (resource id)",
        }
    }

    /// True for any user-assigned selector.
    pub fn is_user_assigned(&self) -> bool {
        !matches!(self, Self::SystemAssigned)
    }

    /// The part of the cache key that names the identity.
    pub(crate) fn cache_part(&self) -> String {
        match self {
            Self::SystemAssigned => "system".to_owned(),
            Self::ClientId(id) => format!("client_id={id}"),
            Self::ObjectId(id) => format!("object_id={id}"),
            Self::ResourceId(id) => format!("resource_id={id}"),
        }
    }

    /// The query parameter for this identity with the given names for client id, object id
    /// and resource id (docs/protocol.md §2.9), or `None` for system-assigned.
    pub(crate) fn param<'a>(&'a self, names: [&'static str; 3]) -> Option<(&'static str, &'a str)> {
        match self {
            Self::SystemAssigned => None,
            Self::ClientId(id) => Some((names[0], id)),
            Self::ObjectId(id) => Some((names[1], id)),
            Self::ResourceId(id) => Some((names[2], id)),
        }
    }
}

/// The hosting environment the credential detected (docs/protocol.md §2.1), for logs and for
/// `DefaultAzureCredential`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ManagedIdentitySource {
    /// Service Fabric (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`, `IDENTITY_SERVER_THUMBPRINT`).
    ServiceFabric,
    /// App Service, Azure Functions or Container Apps (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`).
    AppService,
    /// Azure Arc (`IDENTITY_ENDPOINT`, `IMDS_ENDPOINT`).
    AzureArc,
    /// `IDENTITY_ENDPOINT` alone: a broken App Service or Arc environment.
    Incomplete,
    /// Azure Machine Learning (`MSI_ENDPOINT`, `MSI_SECRET`).
    AzureMl,
    /// Azure Cloud Shell (`MSI_ENDPOINT` without `MSI_SECRET`).
    CloudShell,
    /// Workload identity (`AZURE_AUTHORITY_HOST`, `AZURE_TENANT_ID`,
    /// `AZURE_FEDERATED_TOKEN_FILE`), served by `WorkloadIdentityCredential`.
    WorkloadIdentity,
    /// The instance metadata service of Azure VMs, VM scale sets and AKS pod identity.
    Imds,
}

impl ManagedIdentitySource {
    /// The name used in messages, e.g. `App Service`.
    pub fn display_name(self) -> &'static str {
        match self {
            Self::ServiceFabric => "Service Fabric",
            Self::AppService => "App Service",
            Self::AzureArc => "Azure Arc",
            Self::Incomplete => "incomplete",
            Self::AzureMl => "Azure Machine Learning",
            Self::CloudShell => "Cloud Shell",
            Self::WorkloadIdentity => "workload identity",
            Self::Imds => "IMDS",
        }
    }

    /// A stable lower-case identifier, e.g. `app_service` (used in cache keys and logs).
    pub fn id(self) -> &'static str {
        match self {
            Self::ServiceFabric => "service_fabric",
            Self::AppService => "app_service",
            Self::AzureArc => "azure_arc",
            Self::Incomplete => "incomplete",
            Self::AzureMl => "azure_ml",
            Self::CloudShell => "cloud_shell",
            Self::WorkloadIdentity => "workload_identity",
            Self::Imds => "imds",
        }
    }
}

impl fmt::Display for ManagedIdentitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.display_name())
    }
}

/// Everything a detector may use: the environment snapshot and the builder's settings.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) env: Env,
    pub(crate) client: Arc<dyn HttpClient>,
    pub(crate) sleeper: Arc<dyn Sleeper>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) limits: Limits,
    pub(crate) within_default_chain: bool,
    pub(crate) endpoint: Option<String>,
    /// The builder's IMDS-only endpoint override.
    pub(crate) imds_endpoint: Option<String>,
    pub(crate) arc_key_directory: Option<PathBuf>,
    /// What detection may learn from the file system (the Arc agent's executable).
    pub(crate) host_files: Arc<dyn crate::HostFiles>,
}

impl Settings {
    /// A pipeline over the injected client with `retry`.
    pub(crate) fn pipeline(&self, retry: RetryPolicy) -> Pipeline {
        Pipeline::new(self.client.clone())
            .with_limits(self.limits)
            .with_retry(retry)
            .with_sleeper(self.sleeper.clone())
            .with_clock(self.clock.clone())
    }

    /// The builder's endpoint override, else the environment variable's value.
    pub(crate) fn endpoint_or<'a>(&'a self, from_env: &'a str) -> &'a str {
        self.endpoint.as_deref().unwrap_or(from_env)
    }
}

/// A hosting environment that can issue managed-identity tokens (STYLE 3.8).
///
/// A source is chosen once, by `detect.rs`. The default [`fetch`](Source::fetch) sends
/// [`request`](Source::request) through the source's pipeline, lets
/// [`challenge`](Source::challenge) answer a challenge with a second request (Azure Arc), and
/// hands the final response to [`parse`](Source::parse).
pub(crate) trait Source: Send + Sync + fmt::Debug {
    /// Which source this is.
    fn kind(&self) -> ManagedIdentitySource;

    /// The name used in messages.
    fn name(&self) -> &'static str {
        self.kind().display_name()
    }

    /// Refuses identity kinds the source cannot honour; checked at construction.
    fn supports(&self, id: &ManagedIdentityId) -> Result<(), Error>;

    /// The token request for `resource` and `id`.
    fn request(&self, resource: &str, id: &ManagedIdentityId) -> Result<Request, Error>;

    /// What to tell the user to check when something goes wrong, e.g. "check `IDENTITY_ENDPOINT`".
    fn check(&self) -> &'static str;

    /// The pipeline requests go through.
    fn pipeline(&self) -> Option<&Pipeline>;

    /// Connection hints for the request.
    fn send_options(&self) -> SendOptions {
        SendOptions::default()
    }

    /// Answers a challenge in `response` with a follow-up request; `None` when the response
    /// is final.
    fn challenge(
        &self,
        _response: &Response,
        _request: &Request,
    ) -> Result<Option<Request>, Error> {
        Ok(None)
    }

    /// Turns the final response into a token or an error. `sent_at` is when the request was
    /// sent.
    fn parse(
        &self,
        response: &Response,
        _id: &ManagedIdentityId,
        sent_at: SystemTime,
    ) -> Result<TokenResponse, Error> {
        standard_parse(self.name(), self.check(), response, sent_at)
    }

    /// Maps a transport failure (connection refused, timeout, body too large).
    fn transport_error(&self, error: Error, target: &Target) -> Error {
        Error::new(
            error.kind(),
            NAME,
            format!(
                "the {} managed identity endpoint {target} could not be reached or answered unreadably; {}",
                self.name(),
                self.check()
            ),
        )
        .with_source(error)
    }

    /// Gets a token.
    fn fetch<'a>(
        &'a self,
        resource: &'a str,
        id: &'a ManagedIdentityId,
    ) -> BoxFuture<'a, Result<TokenResponse, Error>> {
        Box::pin(standard_fetch(self, resource, id))
    }

    /// Gets a token answering a claims challenge. Sources whose endpoint supports token
    /// revocation (Service Fabric) tell it which token to replace; the others fetch as usual.
    fn fetch_revoking<'a>(
        &'a self,
        resource: &'a str,
        id: &'a ManagedIdentityId,
        revocation: &'a Revocation,
    ) -> BoxFuture<'a, Result<TokenResponse, Error>> {
        let _ = revocation;
        self.fetch(resource, id)
    }
}

/// What a claims challenge asks of a source that supports token revocation.
#[derive(Clone, Debug, Default)]
pub(crate) struct Revocation {
    /// The cached token being replaced, if any.
    pub(crate) replaced: Option<identity_core::Secret>,
    /// The client capabilities to announce (`CP1`: the client handles claims challenges).
    pub(crate) capabilities: &'static [&'static str],
}

/// Success statuses are parsed; error statuses become [`wire::status_error`].
pub(crate) fn standard_parse(
    name: &str,
    check: &str,
    response: &Response,
    sent_at: SystemTime,
) -> Result<TokenResponse, Error> {
    if !response.status().is_success() {
        return Err(wire::status_error(name, response, check));
    }
    wire::parse_token(name, response.body(), sent_at).map_err(|e| e.into_error(name, check))
}

/// Request, optional challenge, parse: the flow of every HTTP source.
///
/// Every secret of the requests sent (each header value marked sensitive, see
/// [`secret_header`], and an `Authorization` header's credentials) is collected in a
/// [`Redactor`]. The redactor rides in each response's extensions, so that
/// [`wire::service_message`] removes the secrets from quoted text before cutting it to length,
/// and every error leaving this function is redacted once more as a whole (message and
/// causes). A source therefore cannot show or log a secret its endpoint echoes back, whatever
/// it quotes from a response.
pub(crate) async fn standard_fetch<S: Source + ?Sized>(
    source: &S,
    resource: &str,
    id: &ManagedIdentityId,
) -> Result<TokenResponse, Error> {
    let mut redactor = Redactor::new();
    let result = fetch_steps(source, resource, id, &mut redactor).await;
    result.map_err(|e| e.redact(&redactor))
}

async fn fetch_steps<S: Source + ?Sized>(
    source: &S,
    resource: &str,
    id: &ManagedIdentityId,
    redactor: &mut Redactor,
) -> Result<TokenResponse, Error> {
    let Some(pipeline) = source.pipeline() else {
        // Sources without HTTP override `fetch`; reaching this is a programming error that
        // must still not panic.
        return Err(Error::unavailable(
            NAME,
            format!("the {} source cannot request tokens", source.name()),
        ));
    };
    let request = source.request(resource, id)?;
    redactor.add_headers(request.headers());
    let target = Target::of(request.uri());
    let sent_at = pipeline.clock().now();
    let options = source.send_options();
    let mut response = pipeline
        .send(NAME, &request, options)
        .await
        .map_err(|e| source.transport_error(e, &target))?;
    response.extensions_mut().insert(redactor.clone());
    let response = match source.challenge(&response, &request)? {
        Some(second) => {
            redactor.add_headers(second.headers());
            let mut response = pipeline
                .send(NAME, &second, options)
                .await
                .map_err(|e| source.transport_error(e, &target))?;
            response.extensions_mut().insert(redactor.clone());
            response
        }
        None => response,
    };
    source.parse(&response, id, sent_at)
}

/// An endpoint URL from the environment or the builder, checked to be `http` or `https`.
pub(crate) fn parse_endpoint(url: &str, variable: &str, source: &str) -> Result<http::Uri, Error> {
    let uri: http::Uri = url.parse().map_err(|_| {
        Error::invalid_configuration(
            NAME,
            format!(
                "{variable} is not a valid URL; check the {source} managed identity configuration"
            ),
        )
    })?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(uri),
        _ => Err(Error::invalid_configuration(
            NAME,
            format!(
                "{variable} must be an absolute http(s) URL; check the {source} managed identity configuration"
            ),
        )),
    }
}

/// Builds a request, mapping the (unlikely) builder failure to a configuration error.
pub(crate) fn build_request(
    builder: http::request::Builder,
    body: bytes::Bytes,
    source: &str,
) -> Result<Request, Error> {
    builder.body(body).map_err(|_| {
        Error::invalid_configuration(
            NAME,
            format!("the {source} managed identity request could not be built; check the endpoint URL and header values"),
        )
    })
}

/// A header value from a secret, without ever echoing the secret. The value is marked
/// sensitive, which is also what makes [`standard_fetch`] remove it from anything quoted
/// from the response.
pub(crate) fn secret_header(
    value: &str,
    variable: &str,
    source: &str,
) -> Result<http::HeaderValue, Error> {
    let mut header = http::HeaderValue::from_str(value).map_err(|_| {
        Error::invalid_configuration(
            NAME,
            format!("{variable} contains characters that cannot be sent in an HTTP header; check the {source} configuration"),
        )
    })?;
    header.set_sensitive(true);
    Ok(header)
}

/// The refusal of an identity kind by a source.
pub(crate) fn unsupported(source: &str, id: &ManagedIdentityId, why: &str) -> Error {
    Error::invalid_configuration(
        NAME,
        format!(
            "the {source} managed identity source does not support a {} identity; {why}",
            id.kind_name()
        ),
    )
}
