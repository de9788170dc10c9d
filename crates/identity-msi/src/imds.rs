//! The instance metadata service: Azure VMs, VM scale sets, AKS pod identity and any host
//! that no other source recognises (spec §2.8).
//!
//! * Host: `169.254.169.254` (link-local), or the authority in
//!   [`AZURE_POD_IDENTITY_AUTHORITY_HOST`] (trailing `/` stripped, the fixed path appended),
//!   or the builder's `endpoint` (a full token URL).
//! * Environment: none required.
//! * Request: `GET http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=<resource>[&<id>]`
//!   with `Metadata: true`.
//! * Identities: system-assigned; user-assigned by `client_id`, `object_id` or `msi_res_id`.
//! * Retries: [`RetryPolicy::imds`]: 6 attempts on 404, 408, 410, 429 and 5xx, sleeps 0, 1.6,
//!   3.2, 6.4, 12.8 s (0, 5, 10, 20, 40 s after a 410, as IMDS asks while it upgrades),
//!   `Retry-After` honoured. Connect timeout 2 s.
//! * Errors (spec §2.8 \[REC\]): no response or a transport failure → unavailable ("no response
//!   from the IMDS endpoint"); 400 → unavailable (no identity, or the requested identity is
//!   not assigned); 403 whose body says `unreachable` (Docker Desktop) → unavailable; a
//!   non-JSON success body → unavailable; any other error status after retries → authentication
//!   failure.
//!
//! **Probe** (inside `DefaultAzureCredential`, builder `within_default_chain(true)`): before
//! the first real request, the same GET without the `Metadata` header, connect timeout 1 s,
//! overall timeout 1 s, no retries. Any HTTP answer means IMDS is there (IMDS itself answers
//! 400 "metadata header not specified"); the answer is remembered for the life of the
//! credential. A 403 mentioning `unreachable` is Docker Desktop → unavailable. No answer →
//! unavailable, and the next call probes again. No probe when
//! `AZURE_POD_IDENTITY_AUTHORITY_HOST` is present (pod identity answers slowly by design).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use identity_core::http::{Limits, Pipeline, Request, Response, SendOptions, Target};
use identity_core::retry::RetryPolicy;
use identity_core::{BoxFuture, Error, ErrorKind};

use crate::NAME;
use crate::source::{
    ManagedIdentityId, ManagedIdentitySource, Settings, Source, build_request, parse_endpoint,
    standard_fetch,
};
use crate::wire::{self, TokenResponse};

/// Overrides the IMDS authority (AAD Pod Identity).
pub const AZURE_POD_IDENTITY_AUTHORITY_HOST: &str = "AZURE_POD_IDENTITY_AUTHORITY_HOST";
/// The default token endpoint.
pub const DEFAULT_ENDPOINT: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
/// The token path appended to an authority.
pub const TOKEN_PATH: &str = "/metadata/identity/oauth2/token";
/// The api-version sent.
pub const API_VERSION: &str = "2018-02-01";

const CHECK: &str = "check that the VM or scale set has a managed identity assigned and that the IMDS endpoint is reachable";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct Imds {
    endpoint: Result<String, Error>,
    pipeline: Pipeline,
    probe: Option<Pipeline>,
    /// Set once IMDS has answered anything; then the probe is skipped.
    alive: AtomicBool,
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
        (Some(url), _) => parse_endpoint(url, "the endpoint", "IMDS").map(|_| url.clone()),
        (None, Some(host)) => {
            let url = format!("{}{TOKEN_PATH}", host.trim_end_matches('/'));
            parse_endpoint(&url, AZURE_POD_IDENTITY_AUTHORITY_HOST, "IMDS").map(|_| url)
        }
        (None, None) => Ok(DEFAULT_ENDPOINT.to_owned()),
    };
    let probe = (settings.within_default_chain && pod_host.is_none()).then(|| {
        let limits = Limits::DEFAULT
            .timeout(PROBE_TIMEOUT.min(settings.limits.timeout))
            .max_body(settings.limits.max_body);
        settings.pipeline(RetryPolicy::none()).with_limits(limits)
    });
    Box::new(Imds {
        endpoint,
        pipeline: settings.pipeline(RetryPolicy::imds()),
        probe,
        alive: AtomicBool::new(false),
    })
}

impl Imds {
    fn url(&self, resource: &str, id: &ManagedIdentityId) -> Result<String, Error> {
        let endpoint = self.endpoint.as_ref().map_err(Clone::clone)?;
        let mut params = vec![("api-version", API_VERSION), ("resource", resource)];
        params.extend(id.param(["client_id", "object_id", "msi_res_id"]));
        Ok(wire::with_query(endpoint, &params))
    }

    /// The availability check; `Ok` means go ahead with the real request.
    async fn probe(
        &self,
        probe: &Pipeline,
        resource: &str,
        id: &ManagedIdentityId,
    ) -> Result<(), Error> {
        let request = build_request(
            http::Request::get(self.url(resource, id)?),
            Bytes::new(),
            "IMDS",
        )?;
        let target = Target::of(request.uri());
        let options = SendOptions::default().connect_timeout(PROBE_TIMEOUT);
        match probe.send_once(NAME, request, options).await {
            Ok(response) => {
                if is_docker_unreachable(&response) {
                    return Err(docker_error());
                }
                self.alive.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(Error::unavailable(
                NAME,
                format!(
                    "no response from the IMDS endpoint {target} within {} ms; this is not an Azure VM \
                     with a managed identity, or {CHECK}",
                    PROBE_TIMEOUT.as_millis()
                ),
            )
            .with_source(e)),
        }
    }

    async fn fetch_impl(
        &self,
        resource: &str,
        id: &ManagedIdentityId,
    ) -> Result<TokenResponse, Error> {
        if let Some(probe) = &self.probe {
            if !self.alive.load(Ordering::Relaxed) {
                self.probe(probe, resource, id).await?;
            }
        }
        let result = standard_fetch(self, resource, id).await;
        if !matches!(&result, Err(e) if e.is_unavailable() && e.status().is_none()) {
            // Any HTTP answer proves IMDS is there.
            self.alive.store(true, Ordering::Relaxed);
        }
        result
    }
}

fn is_docker_unreachable(response: &Response) -> bool {
    response.status().as_u16() == 403 && wire::body_contains(response, "unreachable")
}

fn docker_error() -> Error {
    Error::unavailable(
        NAME,
        "the IMDS endpoint answered 403 \"unreachable\": the code runs in a container (e.g. Docker Desktop) whose \
         network cannot reach IMDS; run it on an Azure host with a managed identity, or use another credential",
    )
    .with_status(403)
}

impl Source for Imds {
    fn kind(&self) -> ManagedIdentitySource {
        ManagedIdentitySource::Imds
    }

    fn supports(&self, _id: &ManagedIdentityId) -> Result<(), Error> {
        Ok(())
    }

    fn request(&self, resource: &str, id: &ManagedIdentityId) -> Result<Request, Error> {
        let builder = http::Request::get(self.url(resource, id)?).header("Metadata", "true");
        build_request(builder, Bytes::new(), self.name())
    }

    fn check(&self) -> &'static str {
        CHECK
    }

    fn pipeline(&self) -> Option<&Pipeline> {
        Some(&self.pipeline)
    }

    fn send_options(&self) -> SendOptions {
        SendOptions::default().connect_timeout(CONNECT_TIMEOUT)
    }

    fn parse(
        &self,
        response: &Response,
        id: &ManagedIdentityId,
        sent_at: SystemTime,
    ) -> Result<TokenResponse, Error> {
        let status = response.status().as_u16();
        if is_docker_unreachable(response) {
            return Err(docker_error());
        }
        if status == 400 {
            let what = match id {
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
            return Err(wire::status_error(self.name(), response, CHECK));
        }
        wire::parse_token(self.name(), response.body(), sent_at).map_err(|e| {
            let error = e.into_error(self.name(), CHECK);
            if e == wire::ParseError::NotJson {
                // Something that is not IMDS answered on its address (a proxy, a captive
                // portal): the credential cannot work here.
                error.with_kind(ErrorKind::Unavailable)
            } else {
                error
            }
        })
    }

    fn transport_error(&self, error: Error, target: &Target) -> Error {
        Error::unavailable(
            NAME,
            format!("no response from the IMDS endpoint {target}; this is not an Azure VM with a managed identity, or {CHECK}"),
        )
        .with_source(error)
    }

    fn fetch<'a>(
        &'a self,
        resource: &'a str,
        id: &'a ManagedIdentityId,
    ) -> BoxFuture<'a, Result<TokenResponse, Error>> {
        Box::pin(self.fetch_impl(resource, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use identity_core::Env;
    use wiremock::matchers::{
        header, header_exists, method, path, query_param, query_param_is_missing,
    };
    use wiremock::{Mock, MockServer, ResponseTemplate};

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
        for (id, name, value) in [
            (
                ManagedIdentityId::ClientId("CID".into()),
                "client_id",
                "CID",
            ),
            (
                ManagedIdentityId::ObjectId("OID".into()),
                "object_id",
                "OID",
            ),
            (
                ManagedIdentityId::ResourceId(UAMI.into()),
                "msi_res_id",
                UAMI,
            ),
        ] {
            let server = MockServer::start().await;
            Mock::given(method("GET"))
                .and(path(TOKEN_PATH))
                .and(query_param(name, value))
                .and(header("Metadata", "true"))
                .respond_with(token_on(CLOCK_NOW + 3600))
                .expect(1)
                .mount(&server)
                .await;
            harness(pod_env(&server), id).get().await.unwrap();
        }
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

    #[tokio::test]
    async fn a_410_is_retried_on_the_upgrade_schedule() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(410))
            .expect(6)
            .mount(&server)
            .await;
        let h = harness(pod_env(&server), ManagedIdentityId::SystemAssigned);
        let e = h.get().await.unwrap_err();
        assert_eq!(h.sleeper.slept(), secs(&[5.0, 10.0, 20.0, 40.0]));
        assert_eq!(e.kind(), ErrorKind::AuthenticationFailed);
        assert_eq!(e.status(), Some(410));
    }

    #[tokio::test]
    async fn a_500_forever_is_retried_five_times_then_fails_the_chain() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(500))
            .expect(6)
            .mount(&server)
            .await;
        let h = harness(pod_env(&server), ManagedIdentityId::SystemAssigned);
        let e = h.get().await.unwrap_err();
        assert_eq!(h.sleeper.slept(), secs(&[1.6, 3.2, 6.4, 12.8]));
        assert_eq!(e.kind(), ErrorKind::AuthenticationFailed);
        assert!(e.to_string().contains("IMDS"), "{e}");
    }

    #[tokio::test]
    async fn a_404_then_success_takes_three_requests() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(404))
            .up_to_n_times(2)
            .expect(2)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(token_on(CLOCK_NOW + 3600))
            .expect(1)
            .mount(&server)
            .await;
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

    #[tokio::test]
    async fn a_refused_connection_is_unavailable() {
        let h = harness_with(Env::empty(), ManagedIdentityId::SystemAssigned, |b| {
            b.endpoint(format!(
                "http://{}/metadata/identity/oauth2/token",
                closed_port()
            ))
        });
        let e = tokio::time::timeout(Duration::from_secs(20), h.get())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(
            e.to_string().contains("no response from the IMDS endpoint"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_non_json_success_body_is_unavailable() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string("<html>portal</html>"))
            .mount(&server)
            .await;
        let e = harness(pod_env(&server), ManagedIdentityId::SystemAssigned)
            .get()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
    }

    fn chain_harness(server: &MockServer) -> Harness {
        harness_with(Env::empty(), ManagedIdentityId::SystemAssigned, |b| {
            b.within_default_chain(true)
                .endpoint(format!("{}{TOKEN_PATH}", server.uri()))
        })
    }

    #[tokio::test]
    async fn the_probe_goes_first_without_metadata_and_is_not_repeated() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(header("Metadata", "true"))
            .respond_with(token_on(CLOCK_NOW + 86_400))
            .expect(2)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(400).set_body_string(r#"{"error":"bad_request","error_description":"Required metadata header not specified"}"#))
            .expect(1)
            .mount(&server)
            .await;
        let h = chain_harness(&server);
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
        let h = harness_with(Env::empty(), ManagedIdentityId::SystemAssigned, |b| {
            b.within_default_chain(true).endpoint(format!(
                "http://{}/metadata/identity/oauth2/token",
                closed_port()
            ))
        });
        for _ in 0..2 {
            let e = tokio::time::timeout(Duration::from_secs(10), h.get())
                .await
                .unwrap()
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unavailable);
            assert!(
                e.to_string().contains("no response from the IMDS endpoint"),
                "{e}"
            );
        }
        // No retries: the probe does not sleep.
        assert!(h.sleeper.slept().is_empty());
    }

    #[tokio::test]
    async fn the_probe_gives_up_on_a_silent_endpoint_within_a_second() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let h = harness_with(Env::empty(), ManagedIdentityId::SystemAssigned, |b| {
            b.within_default_chain(true)
                .endpoint(format!("http://{addr}{TOKEN_PATH}"))
        });
        let e = tokio::time::timeout(Duration::from_secs(10), h.get())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        hold.abort();
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
        let e = chain_harness(&server).get().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.to_string().contains("unreachable"));
        // Standalone (no probe) the real request gets the same answer and the same verdict.
        let e = harness_with(Env::empty(), ManagedIdentityId::SystemAssigned, |b| {
            b.endpoint(format!("{}{TOKEN_PATH}", server.uri()))
        })
        .get()
        .await
        .unwrap_err();
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
        let h = harness_with(pod_env(&server), ManagedIdentityId::SystemAssigned, |b| {
            b.within_default_chain(true)
        });
        h.get().await.unwrap();
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
    }
}
