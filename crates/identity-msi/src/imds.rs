//! The instance metadata service: Azure VMs, VM scale sets, AKS pod identity and any host
//! that no other source recognises (docs/protocol.md §2.8).
//!
//! * Host: `169.254.169.254` (link-local), or the authority in
//!   [`AZURE_POD_IDENTITY_AUTHORITY_HOST`] (trailing `/` stripped, the fixed path appended),
//!   or the builder's `endpoint` / `imds_endpoint` (a full token URL).
//! * Environment: none required.
//! * Request: `GET http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=<resource>[&<id>]`
//!   with `Metadata: true`.
//! * Identities: system-assigned; user-assigned by `client_id`, `object_id` or `msi_res_id`.
//! * Retries: [`retry_policy`]: 6 attempts on 404, 408, 410, 429 and 5xx, sleeps 0, 1.6,
//!   3.2, 6.4, 12.8 s (0, 5, 10, 20, 40 s after a 410, as IMDS asks while it upgrades),
//!   `Retry-After` honoured. Connect timeout 2 s.
//!
//! # What counts as IMDS
//! Azure IMDS answers **every** request with a JSON object, errors included: a request
//! without `Metadata: true` gets a JSON 400. Field reports show other things answering on
//! its address: Docker Desktop's proxy (`HTTP/1.0 403` with an empty body, the explanation
//! only in the reason phrase, localized on localized builds), other clouds' metadata services
//! (AWS's empty 401 when a session token is required, GCP's HTML 404), corporate proxies and gateways (HTML 403, 502).
//! The rule follows: an answer whose body is not a JSON object is *not IMDS*, and the
//! credential is **unavailable** (so a chain moves on), whatever the status and whatever
//! language the status line speaks. The error names the status line (version, status, the
//! reason phrase sanitised and cut to 240 characters) and the kind of body, never the body
//! itself; a 403 explained in its status line (or whose body says `unreachable`) gets the
//! container hint. Standalone, an error status is first retried on the schedule above;
//! inside a chain the first answer is classified before any retry (below).
//!
//! # Errors
//! (docs/protocol.md §2.8): no response or a transport failure → unavailable ("no
//! response from the IMDS endpoint"); an answer that is not IMDS (above) → unavailable; 400
//! → unavailable (no identity, or the requested identity is not assigned); a non-JSON success
//! body → unavailable; any other JSON error status after retries → authentication failure.
//!
//! # Inside `DefaultAzureCredential`
//! (builder `within_default_chain(true)`) the member first makes sure IMDS is there, once per
//! credential: after one answer that is IMDS's, later calls skip the check. A failed check
//! is not remembered: the next call checks again.
//!
//! * **Probe** (the default address, or the builder's `endpoint`/`imds_endpoint`, which is
//!   how tests and benchmarks point it at a loopback listener): the token GET *without*
//!   `Metadata`, one attempt, no retries. Connect within [`PROBE_CONNECT_TIMEOUT`] (1 s), so a
//!   blackholed address moves the chain on after about a second and a refused one at once;
//!   the whole answer within [`PROBE_ANSWER_BUDGET`] (10 s, or the builder's timeout if
//!   shorter), so a busy but healthy IMDS that takes a second or two still counts. A JSON
//!   answer (IMDS's 400) → the real request follows; anything else → unavailable at once.
//! * **No probe when `AZURE_POD_IDENTITY_AUTHORITY_HOST` is present**, as in the reference
//!   (pod identity answers slowly by design). Instead the first real request is sent once,
//!   within [`FIRST_ANSWER_BUDGET`] (20 s, or the builder's timeout if shorter), and
//!   classified like the probe's answer: silence or an answer that is not IMDS →
//!   unavailable, so an endpoint that accepts connections and never answers costs the chain
//!   at most 20 s; a token or a final IMDS error is the result; a retryable IMDS error is
//!   followed by the full retry schedule.

use std::time::Duration;

use identity_core::http::{ReasonPhrase, Request, Response, Target, clone_request};
use identity_core::retry::{RetryPolicy, StatusSet};
use identity_core::{Error, ErrorKind};

use crate::NAME;
pub use crate::detect::AZURE_POD_IDENTITY_AUTHORITY_HOST;
use crate::detect::{ManagedIdentitySource, Settings};
use crate::source::{
    Answer, Bounds, Call, First, ManagedIdentityId, Opening, Source, Transport, endpoint,
    metadata_get,
};
use crate::wire::{self, TokenResponse};

/// The default token endpoint.
pub const DEFAULT_ENDPOINT: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
/// The token path appended to an authority.
pub const TOKEN_PATH: &str = "/metadata/identity/oauth2/token";
/// The api-version sent.
pub const API_VERSION: &str = "2018-02-01";
/// How long the probe may take to connect: where nothing listens (a blackholed address) the
/// chain moves on after this.
pub const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the probe waits for the whole answer, connect included. Generous on purpose: a
/// busy VM's IMDS may take seconds to answer, and a slow answer is still an answer.
pub const PROBE_ANSWER_BUDGET: Duration = Duration::from_secs(10);
/// Inside a chain with `AZURE_POD_IDENTITY_AUTHORITY_HOST` set (no probe), how long the first
/// token request waits for an answer before the member reports itself unavailable. Pod
/// identity answers slowly by design, so this is longer than the probe's budget, and still
/// short enough that an endpoint that accepts and never answers does not stall the chain.
pub const FIRST_ANSWER_BUDGET: Duration = Duration::from_secs(20);
/// The statuses IMDS requests are retried on: 404, 408, 410, 429 and 500–998.
pub const RETRY_STATUSES: StatusSet = StatusSet::EMPTY
    .with(404)
    .with(408)
    .with(410)
    .with(429)
    .with_range(500, 998);
/// The overall deadline of one IMDS call: 90 s, which the upgrade schedule (sleeps of 0, 5,
/// 10, 20 and 40 s after a 410) fits in. Inside `DefaultAzureCredential` the member's share of
/// the chain's deadline (60 s of the default 120 s) is shorter: the schedule stops at the
/// first wait that would outlast it (the 40 s one) and the error is the last 410, saying the
/// deadline ended the retries.
pub const DEADLINE: Duration = Duration::from_secs(90);

const REMEDY: &str = "check that the VM or scale set has a managed identity assigned and that the IMDS endpoint is reachable";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The IMDS retry schedule (docs/protocol.md §2.8): the reference pipeline's policy with 5
/// status retries (6 attempts) on [`RETRY_STATUSES`], factor 0.8 s (2.5 s for 410, giving
/// sleeps of 0, 5, 10, 20 and 40 s), at most 60 s per sleep, and a [`DEADLINE`] of 90 s.
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy::default()
        .max_status_retries(5)
        .status_factor(410, Duration::from_millis(2500))
        .max_backoff(Duration::from_secs(60))
        .statuses(RETRY_STATUSES)
        .deadline(DEADLINE)
}

#[derive(Debug)]
pub(crate) struct Imds {
    endpoint: Result<String, Error>,
    /// Inside a chain: the probe, or (with pod identity) the first request sent once.
    opening: Option<Opening>,
}

/// IMDS is the fallback: it is built when no detector matched.
pub(crate) fn new(settings: &Settings) -> Box<dyn Source> {
    let pod_host = settings.env.get(AZURE_POD_IDENTITY_AUTHORITY_HOST);
    let endpoint = match (
        settings
            .endpoint
            .as_ref()
            .or(settings.imds_endpoint.as_ref()),
        settings.env.non_empty(AZURE_POD_IDENTITY_AUTHORITY_HOST),
    ) {
        (Some(url), _) => endpoint(url, "the endpoint", ManagedIdentitySource::Imds),
        (None, Some(host)) => {
            let url = format!("{}{TOKEN_PATH}", host.trim_end_matches('/'));
            endpoint(
                &url,
                AZURE_POD_IDENTITY_AUTHORITY_HOST,
                ManagedIdentitySource::Imds,
            )
        }
        (None, None) => Ok(DEFAULT_ENDPOINT.to_owned()),
    };
    let opening = match (settings.within_default_chain, pod_host) {
        (false, _) => None,
        (true, None) => Some(Opening {
            probe: true,
            connect_timeout: PROBE_CONNECT_TIMEOUT,
            budget: PROBE_ANSWER_BUDGET,
        }),
        (true, Some(_)) => Some(Opening {
            probe: false,
            connect_timeout: CONNECT_TIMEOUT,
            budget: FIRST_ANSWER_BUDGET,
        }),
    };
    Box::new(Imds { endpoint, opening })
}

impl Imds {
    /// The printable endpoint, for messages.
    fn target(&self) -> Target {
        let uri = self
            .endpoint
            .as_deref()
            .ok()
            .and_then(|url| url.parse::<http::Uri>().ok())
            .unwrap_or_default();
        Target::of(&uri)
    }
}

/// True when the answer can be Azure IMDS's: its body is a JSON object. IMDS answers every
/// request with one, errors included (a request without `Metadata: true` gets a JSON 400);
/// Docker Desktop's 403, other clouds' metadata services, proxies and gateways do not.
fn is_imds_answer(response: &Response) -> bool {
    matches!(
        serde_json::from_slice::<serde_json::Value>(identity_core::wire::strip_bom(
            response.body()
        )),
        Ok(serde_json::Value::Object(_))
    )
}

/// No answer (refused, connect timeout, silent listener), within the opening's bounds when
/// it was the opening attempt.
fn silent_error(target: &Target, bounds: Option<Bounds>, cause: Error) -> Error {
    let within = bounds.map_or_else(String::new, |b| {
        format!(
            " (connect within {} ms, answer within {} ms)",
            b.connect.as_millis(),
            b.answer.as_millis()
        )
    });
    Error::unavailable(
        NAME,
        format!(
            "no response from the IMDS endpoint {target}{within}; this is not an Azure VM with a managed identity, or {REMEDY}"
        ),
    )
    .with_source(cause)
}

/// The longest reason phrase quoted in a message.
const MAX_QUOTED_REASON: usize = 240;

/// An answer that Azure IMDS would never give: unavailable, with what was seen (status line,
/// kind of body) and, for a 403 explained in its status line, the container hint.
fn not_imds_error(response: &Response, target: &Target) -> Error {
    let status = response.status().as_u16();
    let body = response.body();
    let is_html = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("html"))
        || body.trim_ascii_start().first() == Some(&b'<');
    let what = if body.is_empty() {
        "an empty body"
    } else if wire::body_contains(response, "unreachable") {
        "a body saying the network is unreachable"
    } else if is_html {
        "an HTML page"
    } else {
        "a body that is not JSON"
    };
    let reason = response.extensions().get::<ReasonPhrase>();
    let mut message = format!(
        "{target} answered {:?} {status} with {what}",
        response.version()
    );
    match reason.map(ReasonPhrase::as_bytes) {
        Some([]) => message.push_str(" and a reason phrase in non-ASCII text"),
        Some(text) => {
            let mut quoted: String = text
                .iter()
                .map(|&b| {
                    if b.is_ascii_graphic() || b == b' ' {
                        char::from(b)
                    } else {
                        '?'
                    }
                })
                .take(MAX_QUOTED_REASON)
                .collect();
            if text.len() > MAX_QUOTED_REASON {
                quoted.push('…');
            }
            message.push_str(&format!(" (\"{quoted}\")"));
        }
        None => {}
    }
    let container =
        status == 403 && (reason.is_some() || wire::body_contains(response, "unreachable"));
    if container {
        message.push_str(
            ": not Azure IMDS, which answers every request with JSON. The code runs in a container \
             (e.g. Docker Desktop) whose network cannot reach IMDS; run it on an Azure host with a managed \
             identity, or use another credential",
        );
    } else {
        message.push_str(
            ": not Azure IMDS, which answers every request with JSON. Another service (a different cloud's \
             metadata service, a proxy or a gateway) answers on the IMDS address, so this is not an Azure host \
             with a managed identity; use another credential",
        );
    }
    Error::unavailable(NAME, message).with_status(status)
}

impl Source for Imds {
    fn kind(&self) -> ManagedIdentitySource {
        ManagedIdentitySource::Imds
    }

    fn remedy(&self) -> &'static str {
        REMEDY
    }

    fn request(&self, call: &Call<'_>) -> Result<Request, Error> {
        metadata_get(&self.endpoint, call, API_VERSION, self.kind())
    }

    fn transport(&self) -> Transport {
        Transport {
            retry: retry_policy(),
            connect_timeout: Some(CONNECT_TIMEOUT),
            client: None,
            opening: self.opening,
        }
    }

    /// The opening's answer must be IMDS's (a JSON object), else the member is unavailable at
    /// once. After the probe the real request follows; the first request's own answer is
    /// final unless the retry schedule would retry it.
    fn challenge(&self, first: &First<'_>) -> Result<Option<Request>, Error> {
        let (Some(opening), response) = (first.opening, first.response) else {
            return Ok(None);
        };
        if !is_imds_answer(response) {
            return Err(not_imds_error(response, &Target::of(first.request.uri())));
        }
        let status = response.status();
        let again = opening.probe
            || (!status.is_success()
                && retry_policy().should_retry(status.as_u16(), response.headers()));
        Ok(again.then(|| clone_request(first.request)))
    }

    /// IMDS's table (docs/protocol.md §2.8):
    ///
    /// | Answer | Result |
    /// |---|---|
    /// | no response (refused, timed out; within the opening's bounds inside a chain) | unavailable: "no response from the IMDS endpoint" |
    /// | an error status whose body is not a JSON object | unavailable: not Azure IMDS (status line, kind of body; the container hint for a 403 explained in its status line) |
    /// | 400 | unavailable: no identity assigned, or not the requested one; the service's message |
    /// | any other error status (after retries) | authentication failed, with the status and the service's message |
    /// | a success whose body is not JSON | unavailable: something else answers on the IMDS address |
    /// | a success with other defects | authentication failed, naming the field |
    /// | a token | the token |
    fn classify(&self, answer: Answer<'_>, call: &Call<'_>) -> Result<TokenResponse, Error> {
        let (response, sent_at) = match answer {
            Answer::Silence {
                cause,
                target,
                opening,
            } => return Err(silent_error(&target, opening, cause)),
            Answer::Response { response, sent_at } => (response, sent_at),
        };
        let name = self.kind().display_name();
        if !response.status().is_success() && !is_imds_answer(response) {
            return Err(not_imds_error(response, &self.target()));
        }
        if response.status() == http::StatusCode::BAD_REQUEST {
            let what = match call.id {
                ManagedIdentityId::SystemAssigned => {
                    "no managed identity has been assigned to this host; assign one, or request a user-assigned identity"
                        .to_owned()
                }
                other => format!(
                    "the requested {} identity has not been assigned to this host; check the id and the host's identities",
                    other.kind_name()
                ),
            };
            let mut message = format!("IMDS answered HTTP 400: {what}");
            if let Some(text) = wire::service_message(response) {
                message.push_str(&format!(" ({text})"));
            }
            return Err(Error::unavailable(NAME, message).with_status(400));
        }
        if !response.status().is_success() {
            return Err(wire::status_error(name, response, REMEDY));
        }
        wire::parse_token(name, response.body(), sent_at).map_err(|e| {
            let error = e.into_error(name, REMEDY);
            if e == wire::ParseError::NotJson {
                // Something that is not IMDS answered on its address (a proxy, a captive
                // portal): the credential cannot work here.
                error.with_kind(ErrorKind::Unavailable)
            } else {
                error
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::loopback::answer;
    use crate::test_support::*;
    use identity_core::test_util::{Reply, TestServer};
    use wiremock::matchers::{
        header, header_exists, method, path, query_param, query_param_is_missing,
    };
    use wiremock::{Mock, MockServer, ResponseTemplate};

    /// A genuine IMDS error body.
    const IMDS_ERROR: &str = r#"{"error":"unknown","error_description":"try again"}"#;

    fn pod_env(server: &MockServer) -> Env {
        Env::from_pairs([(
            AZURE_POD_IDENTITY_AUTHORITY_HOST,
            format!("{}/", server.uri()),
        )])
    }

    #[tokio::test]
    async fn system_assigned_request_has_the_exact_shape() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(TOKEN_PATH))
            .and(query_param("api-version", "2018-02-01"))
            .and(query_param("resource", "https://vault.azure.net"))
            .and(query_param_is_missing("client_id"))
            .and(query_param_is_missing("object_id"))
            .and(query_param_is_missing("msi_res_id"))
            .and(header("Metadata", "true"))
            .respond_with(ResponseTemplate::new(200).set_body_string(
                r#"{"access_token":"AT","expires_in":"3600","resource":"https://vault.azure.net","token_type":"Bearer"}"#,
            ))
            .expect(1)
            .mount(&server)
            .await;
        let h = harness(pod_env(&server), ManagedIdentityId::SystemAssigned);
        assert_eq!(h.credential.source(), ManagedIdentitySource::Imds);
        let token = h.get().await.unwrap();
        assert_eq!(token.expires_on, at(CLOCK_NOW + 3600));
    }

    #[tokio::test]
    async fn user_assigned_selectors_use_the_documented_parameter_names() {
        let names = ["client_id", "object_id", "msi_res_id"];
        assert_selector_names(pod_env, TOKEN_PATH, names, ("Metadata", "true")).await;
    }

    #[tokio::test]
    async fn the_builder_endpoint_replaces_the_whole_url() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/custom/token"))
            .and(query_param("api-version", "2018-02-01"))
            .respond_with(token_on(CLOCK_NOW + 3600))
            .expect(1)
            .mount(&server)
            .await;
        let h = harness_with(Env::empty(), ManagedIdentityId::SystemAssigned, |b| {
            b.endpoint(format!("{}/custom/token", server.uri()))
        });
        h.get().await.unwrap();
    }

    #[test]
    fn the_retry_policy_is_the_imds_schedule() {
        for code in [404, 408, 410, 429, 500, 501, 505, 599, 998] {
            assert!(retry_policy().retry_statuses().contains(code), "{code}");
        }
        for code in [400, 401, 403, 409, 999] {
            assert!(!retry_policy().retry_statuses().contains(code), "{code}");
        }
        assert_eq!(retry_policy().backoff(30, 410), Duration::from_secs(60));
        let schedule: Vec<_> = (1..=5).map(|n| retry_policy().backoff(n, 410)).collect();
        assert_eq!(schedule, [0, 5, 10, 20, 40].map(Duration::from_secs));
        assert_eq!(retry_policy().call_deadline(), DEADLINE);
    }

    /// IMDS answering `status` to all six attempts: the delays slept between them and the
    /// authentication failure that ends the call.
    async fn retried_until_it_fails(status: u16) -> (Vec<Duration>, Error) {
        let answer = ResponseTemplate::new(status).set_body_string(IMDS_ERROR);
        let server = answering("GET", answer, 6).await;
        let h = harness(pod_env(&server), ManagedIdentityId::SystemAssigned);
        let e = h.get().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AuthenticationFailed, "{status}");
        (h.sleeper.slept(), e)
    }

    #[tokio::test]
    async fn a_410_is_retried_on_the_upgrade_schedule() {
        let (slept, e) = retried_until_it_fails(410).await;
        assert_eq!(slept, secs(&[5.0, 10.0, 20.0, 40.0]));
        assert_eq!(e.status(), Some(410));
    }

    #[tokio::test]
    async fn a_500_forever_is_retried_five_times_then_fails_the_chain() {
        let (slept, e) = retried_until_it_fails(500).await;
        assert_eq!(slept, secs(&[1.6, 3.2, 6.4, 12.8]));
        assert!(e.to_string().contains("IMDS"), "{e}");
    }

    #[tokio::test]
    async fn a_404_then_success_takes_three_requests() {
        let server = failing_then_token(ResponseTemplate::new(404), 2).await;
        let h = harness(pod_env(&server), ManagedIdentityId::SystemAssigned);
        h.get().await.unwrap();
        assert_eq!(h.sleeper.slept(), secs(&[1.6]));
    }

    #[tokio::test]
    async fn a_400_for_a_user_assigned_identity_is_unavailable() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(query_param("client_id", "CID"))
            .respond_with(ResponseTemplate::new(400).set_body_string(
                r#"{"error":"invalid_request","error_description":"Identity not found"}"#,
            ))
            .expect(1)
            .mount(&server)
            .await;
        let e = harness(pod_env(&server), ManagedIdentityId::ClientId("CID".into()))
            .get()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        let text = e.to_string();
        assert!(
            text.contains("not been assigned") && text.contains("Identity not found"),
            "{text}"
        );
    }

    /// A harness whose IMDS endpoint is a closed loopback port; `in_chain`: as a member of
    /// `DefaultAzureCredential`.
    fn closed_port_harness(in_chain: bool) -> Harness {
        harness_with(Env::empty(), ManagedIdentityId::SystemAssigned, |b| {
            b.within_default_chain(in_chain).endpoint(format!(
                "http://{}/metadata/identity/oauth2/token",
                closed_port()
            ))
        })
    }

    /// The error of a call of `h`, which must end within `bound`.
    async fn failure_within(h: &Harness, bound: Duration) -> Error {
        tokio::time::timeout(bound, h.get())
            .await
            .unwrap()
            .unwrap_err()
    }

    /// Asserts that a call of `h` ends within `bound`, unavailable for want of an answer.
    async fn assert_no_response(h: &Harness, bound: Duration) {
        let e = failure_within(h, bound).await;
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(
            e.to_string().contains("no response from the IMDS endpoint"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_unavailable() {
        assert_no_response(&closed_port_harness(false), Duration::from_secs(20)).await;
    }

    #[tokio::test]
    async fn a_non_json_success_body_is_unavailable() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string("<html>portal</html>"))
            .mount(&server)
            .await;
        let e = system_assigned_failure(pod_env(&server)).await;
        assert_eq!(e.kind(), ErrorKind::Unavailable);
    }

    /// A GET with `Metadata: true` answered by a token expiring at `expires_on`.
    fn metadata_token(expires_on: u64) -> Mock {
        Mock::given(method("GET"))
            .and(header("Metadata", "true"))
            .respond_with(token_on(expires_on))
    }

    /// A system-assigned harness over `env`, as a member of `DefaultAzureCredential`.
    fn in_chain(env: Env) -> Harness {
        harness_with(env, ManagedIdentityId::SystemAssigned, |b| {
            b.within_default_chain(true)
        })
    }

    /// A harness whose IMDS endpoint is `server`; `in_chain`: as a member of
    /// `DefaultAzureCredential`.
    fn harness_at(server: &MockServer, in_chain: bool) -> Harness {
        harness_with(Env::empty(), ManagedIdentityId::SystemAssigned, |b| {
            b.within_default_chain(in_chain)
                .endpoint(format!("{}{TOKEN_PATH}", server.uri()))
        })
    }

    #[tokio::test]
    async fn the_probe_goes_first_without_metadata_and_is_not_repeated() {
        let server = MockServer::start().await;
        metadata_token(CLOCK_NOW + 86_400)
            .expect(2)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(400).set_body_string(r#"{"error":"bad_request","error_description":"Required metadata header not specified"}"#))
            .expect(1)
            .mount(&server)
            .await;
        let h = harness_at(&server, true);
        h.get().await.unwrap();
        let requests = server.received_requests().await.unwrap();
        assert!(requests[0].headers.get("Metadata").is_none());
        assert!(requests[1].headers.get("Metadata").is_some());
        // Sticky: a claims request (which skips the cache) sends no second probe.
        let claims = identity_core::TokenRequestOptions::default().claims("{}x");
        identity_core::TokenCredential::get_token(&h.credential, &[SCOPE], &claims)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_probe_on_a_refused_connection_is_quickly_unavailable_and_runs_again_next_time() {
        let h = closed_port_harness(true);
        for _ in 0..2 {
            assert_no_response(&h, Duration::from_secs(10)).await;
        }
        // No retries: the probe does not sleep.
        assert!(h.sleeper.slept().is_empty());
    }

    #[tokio::test]
    async fn the_probe_gives_up_on_a_silent_endpoint_after_its_answer_budget() {
        let silent = TestServer::always(Reply::silence()).await;
        let addr = silent.addr();
        // The builder's timeout, when shorter, bounds the answer budget: the test does not wait
        // the default 10 s.
        let h = harness_with(Env::empty(), ManagedIdentityId::SystemAssigned, |b| {
            b.within_default_chain(true)
                .timeout(Duration::from_millis(300))
                .endpoint(format!("http://{addr}{TOKEN_PATH}"))
        });
        let e = failure_within(&h, Duration::from_secs(10)).await;
        assert_eq!(e.kind(), ErrorKind::Unavailable);
    }

    #[tokio::test]
    async fn docker_desktops_403_is_unavailable_from_the_probe_and_the_real_request() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(403)
                    .set_body_string("connecting to 169.254.169.254:80: connecting to 169.254.169.254:80: dial tcp 169.254.169.254:80: connectex: A socket operation was attempted to an unreachable network."),
            )
            .mount(&server)
            .await;
        let e = harness_at(&server, true).get().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.to_string().contains("unreachable"));
        // Standalone (no probe) the real request gets the same answer and the same verdict.
        let e = harness_at(&server, false).get().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
    }

    #[tokio::test]
    async fn pod_identity_skips_the_probe() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(header_exists("Metadata"))
            .respond_with(token_on(CLOCK_NOW + 3600))
            .expect(1)
            .mount(&server)
            .await;
        let h = in_chain(pod_env(&server));
        h.get().await.unwrap();
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
    }

    /// Docker Desktop's answer for the IMDS address: HTTP/1.0, the explanation only in the
    /// reason phrase, no body.
    const DOCKER_403: &[u8] = b"HTTP/1.0 403 connecting to 169.254.169.254:80: connecting to 169.254.169.254:80: dial tcp 169.254.169.254:80: connectex: A socket operation was attempted to an unreachable network.\r\nConnection: close\r\n\r\n";

    /// The same from a localized build: the reason phrase is not ASCII.
    const DOCKER_403_LOCALIZED: &str = "HTTP/1.0 403 169.254.169.254:80 への接続: connectex: 到達できないネットワークに対してソケット操作を実行しようとしました。\r\nConnection: close\r\n\r\n";

    /// Pod identity's variable, pointing at `raw`.
    fn raw_pod_env(raw: &TestServer) -> Env {
        Env::from_pairs([(AZURE_POD_IDENTITY_AUTHORITY_HOST, raw.url(""))])
    }

    /// Every way the member can meet an endpoint: the chain's probe, the chain with pod
    /// identity (no probe), and standalone with pod identity.
    fn three_ways(raw: &TestServer) -> [(&'static str, Harness); 3] {
        let url = raw.url(TOKEN_PATH);
        [
            (
                "probe",
                harness_with(Env::empty(), ManagedIdentityId::SystemAssigned, |b| {
                    b.within_default_chain(true).imds_endpoint(url)
                }),
            ),
            ("chain, pod identity", in_chain(raw_pod_env(raw))),
            (
                "standalone, pod identity",
                harness(raw_pod_env(raw), ManagedIdentityId::SystemAssigned),
            ),
        ]
    }

    #[tokio::test]
    async fn docker_desktops_http10_403_explained_only_in_the_reason_phrase_is_unavailable() {
        for (answer, words) in [
            (DOCKER_403.to_vec(), "unreachable network"),
            (
                DOCKER_403_LOCALIZED.as_bytes().to_vec(),
                "reason phrase in non-ASCII text",
            ),
        ] {
            let raw = TestServer::always(Reply::raw(answer)).await;
            for (way, h) in three_ways(&raw) {
                let before = raw.request_count();
                let e = h.get().await.unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Unavailable, "{way}: {e}");
                let text = e.to_string();
                assert!(text.contains("HTTP/1.0 403"), "{way}: {text}");
                assert!(text.contains(words), "{way}: {text}");
                assert!(text.contains("Docker Desktop"), "{way}: {text}");
                assert_eq!(
                    raw.request_count() - before,
                    1,
                    "{way}: one request, no retry"
                );
                assert!(h.sleeper.slept().is_empty(), "{way}");
            }
        }
    }

    #[tokio::test]
    async fn answers_that_are_not_imds_are_unavailable_at_once_inside_the_chain() {
        let html = "<html><body><h1>Not Found</h1></body></html>";
        for (name, answer) in [
            (
                "aws-imds-401",
                answer("HTTP/1.1 401 Unauthorized", "text/plain", ""),
            ),
            (
                "gcp-404-html",
                answer("HTTP/1.1 404 Not Found", "text/html; charset=UTF-8", html),
            ),
            (
                "proxy-403-html",
                answer("HTTP/1.1 403 Forbidden", "text/html", html),
            ),
            (
                "gateway-502-html",
                answer("HTTP/1.1 502 Bad Gateway", "text/html", html),
            ),
        ] {
            let raw = TestServer::always(Reply::raw(answer)).await;
            for (way, h) in three_ways(&raw).into_iter().take(2) {
                let before = raw.request_count();
                let e = h.get().await.unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Unavailable, "{name}, {way}: {e}");
                assert!(
                    e.to_string().contains("not Azure IMDS"),
                    "{name}, {way}: {e}"
                );
                assert!(
                    !e.to_string().contains("Not Found</h1>"),
                    "{name}: the body is not echoed"
                );
                assert_eq!(raw.request_count() - before, 1, "{name}, {way}: no retries");
                assert!(h.sleeper.slept().is_empty(), "{name}, {way}");
            }
        }
    }

    #[tokio::test]
    async fn standalone_a_not_imds_answer_is_unavailable_after_the_retry_schedule() {
        let raw = TestServer::always(
            Reply::raw(answer(
                "HTTP/1.1 502 Bad Gateway",
                "text/html",
                "<html>bad gateway</html>",
            ))
            .delay(Duration::ZERO),
        )
        .await;
        let h = harness(raw_pod_env(&raw), ManagedIdentityId::SystemAssigned);
        let e = h.get().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        assert_eq!(raw.request_count(), 6);
    }

    #[tokio::test]
    async fn a_slow_healthy_imds_still_gives_the_token() {
        // IMDS answering every request after 1.2 s: the JSON 400 to the probe, a token to the
        // real request (the fake answers both with the token: it is JSON either way).
        let token = format!(
            r#"{{"access_token":"AT","expires_in":"3600","expires_on":"{}","resource":"https://vault.azure.net","token_type":"Bearer"}}"#,
            CLOCK_NOW + 3600
        );
        let raw = TestServer::always(
            Reply::raw(answer("HTTP/1.1 200 OK", "application/json", &token))
                .delay(Duration::from_millis(1200)),
        )
        .await;
        for (way, h) in three_ways(&raw).into_iter().take(2) {
            let token = h.get().await.unwrap_or_else(|e| panic!("{way}: {e}"));
            assert_eq!(token.token.secret(), "AT", "{way}");
        }
    }

    #[tokio::test]
    async fn a_silent_pod_identity_endpoint_inside_the_chain_is_one_bounded_attempt() {
        let raw = TestServer::always(Reply::silence()).await;
        let h = harness_with(raw_pod_env(&raw), ManagedIdentityId::SystemAssigned, |b| {
            b.within_default_chain(true)
                .timeout(Duration::from_millis(300))
        });
        let e = tokio::time::timeout(Duration::from_secs(20), h.get())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        assert!(e.to_string().contains("no response"), "{e}");
        assert_eq!(raw.request_count(), 1, "no retry of a silent endpoint");
        assert!(h.sleeper.slept().is_empty());
        // The default budget keeps a hung endpoint under the chain's 30 s promise.
        assert!(FIRST_ANSWER_BUDGET < Duration::from_secs(30));
    }

    #[tokio::test]
    async fn with_pod_identity_in_the_chain_a_retryable_imds_error_gets_the_full_schedule() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(500).set_body_string(IMDS_ERROR))
            .up_to_n_times(2)
            .expect(2)
            .mount(&server)
            .await;
        metadata_token(CLOCK_NOW + 3600)
            .expect(1)
            .mount(&server)
            .await;
        let h = in_chain(pod_env(&server));
        h.get().await.unwrap();
        // The first answer (500, JSON) proves IMDS; the schedule then starts afresh.
        assert_eq!(h.sleeper.slept(), secs(&[]));
    }

    #[tokio::test]
    #[cfg(target_os = "linux")]
    async fn a_blackholed_address_ends_the_probe_at_its_connect_bound_not_its_answer_budget() {
        let (addr, _hold) = crate::test_support::loopback::unconnectable().await;
        let h = harness_with(Env::empty(), ManagedIdentityId::SystemAssigned, |b| {
            b.within_default_chain(true)
                .endpoint(format!("http://{addr}{TOKEN_PATH}"))
        });
        let e = tokio::time::timeout(Duration::from_secs(20), h.get())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        // The client's connect timeout ended it (1 s), not the 10 s answer budget.
        let chain = identity_core::display_chain(&e);
        assert!(
            chain.contains("connecting timed out after 1000 ms"),
            "{chain}"
        );
    }
}
