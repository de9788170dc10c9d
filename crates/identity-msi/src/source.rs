//! The internal [`Source`] trait: what a hosting environment tells the one flow in
//! `credential.rs` (the identities it supports, the request it sends, how its requests
//! travel, an optional challenge step, and how its answers become a token or an error), the
//! identity selector, and the helpers a source builds its request and its errors with.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use identity_core::Error;
use identity_core::http::{CertificateRejected, HttpClient, Request, Response, Target};
use identity_core::retry::RetryPolicy;

use crate::NAME;
use crate::detect::ManagedIdentitySource;
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

/// One token request, as a source sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Call<'a> {
    /// The resource the token is for (scopes without `/.default`).
    pub(crate) resource: &'a str,
    /// The identity requested.
    pub(crate) id: &'a ManagedIdentityId,
    /// Set when the call answers a claims challenge.
    pub(crate) revocation: Option<&'a Revocation>,
}

impl<'a> Call<'a> {
    /// The standard query: `api-version`, `resource`, and the identity's parameter under
    /// the names this host uses for a client id, an object id and a resource id
    /// (docs/protocol.md §2.9).
    pub(crate) fn query(
        &self,
        api_version: &'a str,
        id_names: [&'static str; 3],
    ) -> Vec<(&'a str, &'a str)> {
        let mut params = vec![("api-version", api_version), ("resource", self.resource)];
        params.extend(self.id.param(id_names));
        params
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

/// The first response of a call, for [`Source::challenge`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct First<'a> {
    pub(crate) response: &'a Response,
    /// The token request (the probe, when there was one, went without its headers).
    pub(crate) request: &'a Request,
    /// Set when the response answered the opening attempt.
    pub(crate) opening: Option<&'a Opening>,
}

/// What came back for a token request, for [`Source::classify`].
#[derive(Debug)]
pub(crate) enum Answer<'a> {
    /// The final response (after the retries and any challenge); `sent_at` is when its
    /// request was sent, the base of `expires_in`.
    Response {
        response: &'a Response,
        sent_at: SystemTime,
    },
    /// No usable response: refused, timed out, a body over the cap. `opening` holds the
    /// bounds when this was the opening attempt.
    Silence {
        cause: Error,
        target: Target,
        opening: Option<Bounds>,
    },
}

impl Answer<'static> {
    /// No usable response to `request`; `opening` when it was the opening attempt.
    pub(crate) fn silence(cause: Error, request: &Request, opening: Option<Bounds>) -> Self {
        Self::Silence {
            cause,
            target: Target::of(request.uri()),
            opening,
        }
    }
}

/// The bounds an opening attempt ran within, for messages.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    pub(crate) connect: Duration,
    pub(crate) answer: Duration,
}

/// How a host's requests travel; [`Transport::default`] is the common case.
#[derive(Clone, Debug, Default)]
pub(crate) struct Transport {
    /// The retry schedule (default: the reference pipeline's, [`RetryPolicy::default`]).
    pub(crate) retry: RetryPolicy,
    /// A bound on connecting, for every attempt.
    pub(crate) connect_timeout: Option<Duration>,
    /// The host's own client, used whatever the runtime injects (Service Fabric's pinned
    /// TLS client).
    pub(crate) client: Option<Arc<dyn HttpClient>>,
    /// A first attempt the flow makes before it trusts the endpoint (IMDS inside a chain).
    pub(crate) opening: Option<Opening>,
}

/// A single, tightly bounded first attempt, made until the endpoint has once answered as
/// the host does (IMDS inside `DefaultAzureCredential`). Its answer goes to
/// [`Source::challenge`] with the opening, which accepts it or not; a transport failure goes to
/// [`Source::classify`] as [`Answer::Silence`] with its [`Bounds`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Opening {
    /// True: a probe (the request without its headers) is sent first, then the request.
    /// False: the request itself is sent once, and its answer is final unless the challenge
    /// step asks for it again.
    pub(crate) probe: bool,
    /// The connect bound of the attempt.
    pub(crate) connect_timeout: Duration,
    /// How long the whole answer may take (the runtime's per-attempt timeout if shorter).
    pub(crate) budget: Duration,
}

/// A hosting environment that can issue managed-identity tokens.
///
/// A source is chosen once, by `detect.rs`, and describes its host; the flow that uses it
/// (request, opening, send, challenge, classify) is `credential.rs`'s alone.
pub(crate) trait Source: Send + Sync + fmt::Debug {
    /// Which source this is; its names come from `detect.rs`.
    fn kind(&self) -> ManagedIdentitySource;

    /// What to tell the user to check when something goes wrong, e.g. "check that
    /// `IDENTITY_ENDPOINT` …".
    fn remedy(&self) -> &'static str;

    /// Refuses identity kinds the host cannot honour; checked at construction. Default: every
    /// kind.
    fn supports(&self, _id: &ManagedIdentityId) -> Result<(), Error> {
        Ok(())
    }

    /// The token request for `call`. A configuration problem (a malformed endpoint) is
    /// reported here, before anything connects.
    fn request(&self, call: &Call<'_>) -> Result<Request, Error>;

    /// How requests travel: retry schedule, connect bound, own client, opening attempt.
    /// Read once, at construction.
    fn transport(&self) -> Transport {
        Transport::default()
    }

    /// Looks at the first response: `Some` is a second request to send (Azure Arc answers its
    /// challenge with the key file; IMDS sends the real request after its probe). Default: the
    /// first response is final.
    fn challenge(&self, _first: &First<'_>) -> Result<Option<Request>, Error> {
        Ok(None)
    }

    /// The source's table: what came back, a token or the error the caller sees.
    fn classify(&self, answer: Answer<'_>, call: &Call<'_>) -> Result<TokenResponse, Error>;
}

/// The standard table, which most sources' [`Source::classify`] is:
///
/// | Answer | Result |
/// |---|---|
/// | no response (refused, timed out, body over the cap) | the transport error's kind: the endpoint could not be reached |
/// | the endpoint's TLS certificate refused (Service Fabric's pinned thumbprint) | authentication failed, naming why; not retried |
/// | an error status (after retries) | authentication failed, with the status and the service's message |
/// | an error status whose retry could not be waited for (`Retry-After` past the cap, or past a deadline) | the same, plus a clause with the wait asked for and the limit it exceeds (added by the flow) |
/// | a success whose body is not a token | authentication failed, naming the missing or unreadable field |
/// | a token | the token |
pub(crate) fn standard_classify(
    source: &dyn Source,
    answer: Answer<'_>,
) -> Result<TokenResponse, Error> {
    let name = source.kind().display_name();
    let remedy = source.remedy();
    match answer {
        Answer::Silence { cause, target, .. } => {
            let what = match CertificateRejected::find(&cause) {
                Some(refused) => format!(
                    "the {name} managed identity endpoint {target} presented a TLS certificate that was refused ({}), so the request was not sent; not retried",
                    refused.reason()
                ),
                None => format!(
                    "the {name} managed identity endpoint {target} could not be reached or answered unreadably"
                ),
            };
            Err(Error::new(cause.kind(), NAME, format!("{what}; {remedy}")).with_source(cause))
        }
        Answer::Response { response, .. } if !response.status().is_success() => {
            Err(wire::status_error(name, response, remedy))
        }
        Answer::Response { response, sent_at } => wire::parse_token(name, response.body(), sent_at)
            .map_err(|e| e.into_error(name, remedy)),
    }
}

/// The endpoint a source sends to: the builder's override, else `from_env`, checked to be
/// an absolute `http(s)` URL. A bad value is kept as the error `request` reports.
pub(crate) fn endpoint(
    url: &str,
    variable: &str,
    source: ManagedIdentitySource,
) -> Result<String, Error> {
    parse_endpoint(url, variable, source).map(|_| url.to_owned())
}

/// The request of the IMDS-style endpoints (IMDS, Azure Arc): `GET
/// {endpoint}?api-version=…&resource=…[&client_id|object_id|msi_res_id=…]` with
/// `Metadata: true`.
pub(crate) fn metadata_get(
    endpoint: &Result<String, Error>,
    call: &Call<'_>,
    api_version: &str,
    source: ManagedIdentitySource,
) -> Result<Request, Error> {
    let query = call.query(api_version, ["client_id", "object_id", "msi_res_id"]);
    let metadata = http::HeaderValue::from_static("true");
    get_request(endpoint, &query, vec![("Metadata", metadata)], source)
}

/// The standard request: `GET {endpoint}?{query}` with `headers` (values marked sensitive
/// by [`secret_header`] are redacted from anything quoted back).
pub(crate) fn get_request(
    endpoint: &Result<String, Error>,
    query: &[(&str, &str)],
    headers: Vec<(&'static str, http::HeaderValue)>,
    source: ManagedIdentitySource,
) -> Result<Request, Error> {
    let endpoint = endpoint.as_ref().map_err(Clone::clone)?;
    let mut builder = http::Request::get(wire::with_query(endpoint, query));
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    build_request(builder, Bytes::new(), source.display_name())
}

/// An endpoint URL from the environment or the builder, checked to be `http` or `https`.
pub(crate) fn parse_endpoint(
    url: &str,
    variable: &str,
    source: ManagedIdentitySource,
) -> Result<http::Uri, Error> {
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
/// sensitive, which is also what makes the flow in `credential.rs` remove it from anything
/// quoted from the response.
pub(crate) fn secret_header(
    value: &str,
    variable: &str,
    source: ManagedIdentitySource,
) -> Result<http::HeaderValue, Error> {
    let mut header = http::HeaderValue::from_str(value).map_err(|_| {
        Error::invalid_configuration(
            NAME,
            format!(
                "{variable} contains characters that cannot be sent in an HTTP header; check the {source} configuration"
            ),
        )
    })?;
    header.set_sensitive(true);
    Ok(header)
}

/// The refusal of an identity kind by a source.
pub(crate) fn unsupported(
    source: ManagedIdentitySource,
    id: &ManagedIdentityId,
    why: &str,
) -> Error {
    Error::invalid_configuration(
        NAME,
        format!(
            "the {source} managed identity source does not support a {} identity; {why}",
            id.kind_name()
        ),
    )
}
