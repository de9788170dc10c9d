//! Azure Cloud Shell (docs/protocol.md §2.6).
//!
//! * Host: the shell's local token service (usually `http://localhost:50342/oauth2/token`).
//! * Environment: [`MSI_ENDPOINT`] non-empty, with
//!   `MSI_SECRET` empty or absent (with a secret it is Azure Machine Learning).
//! * Request: `POST {MSI_ENDPOINT}` with `Content-Type: application/x-www-form-urlencoded`,
//!   `Metadata: true` and the body `resource=<resource>`. No api-version.
//! * Identities: the signed-in user's identity only. A user-assigned selector is refused at
//!   construction, except inside `DefaultAzureCredential` (builder
//!   `within_default_chain(true)`), where a client id is appended to the form as
//!   `client_id=<id>` as the reference does. Object and resource ids are always refused: at
//!   construction standalone, by `get_token` (without a request) inside the chain, so that
//!   the chain itself can still be built.
//! * Retries: the default policy (the POST is retried on retryable statuses).
//! * Secrets: the request carries none (the shell's endpoint is reachable only from inside
//!   it); a quoted message still goes through the flow's redaction.

use bytes::Bytes;
use identity_core::Error;
use identity_core::http::Request;

pub use crate::detect::MSI_ENDPOINT;
use crate::detect::{Detected, ManagedIdentitySource, Settings};
use crate::source::{
    Answer, Call, ManagedIdentityId, Source, build_request, endpoint, standard_classify,
    unsupported,
};
use crate::wire::{self, TokenResponse};

const REMEDY: &str = "check that this runs inside Azure Cloud Shell and that MSI_ENDPOINT is the shell's token endpoint";

#[derive(Debug)]
pub(crate) struct CloudShell {
    endpoint: Result<String, Error>,
    within_default_chain: bool,
}

/// Detector: `MSI_ENDPOINT` non-empty (Azure ML, checked first, took the ones with a secret).
pub(crate) fn detect(settings: &Settings) -> Option<Detected> {
    let url = settings.endpoint_or(settings.env.non_empty(MSI_ENDPOINT)?);
    Some(Ok(Box::new(CloudShell {
        endpoint: endpoint(url, MSI_ENDPOINT, ManagedIdentitySource::CloudShell),
        within_default_chain: settings.within_default_chain,
    })))
}

impl Source for CloudShell {
    fn kind(&self) -> ManagedIdentitySource {
        ManagedIdentitySource::CloudShell
    }

    fn remedy(&self) -> &'static str {
        REMEDY
    }

    fn supports(&self, id: &ManagedIdentityId) -> Result<(), Error> {
        match id {
            ManagedIdentityId::SystemAssigned => Ok(()),
            // Inside the default chain a refusal at construction would take the whole chain
            // down; an object or resource id is refused by `request` instead, without a request.
            _ if self.within_default_chain => Ok(()),
            other => Err(unsupported(
                self.kind(),
                other,
                "Cloud Shell issues tokens for the signed-in user only; remove the identity selector",
            )),
        }
    }

    /// A form POST, not the standard GET.
    fn request(&self, call: &Call<'_>) -> Result<Request, Error> {
        let endpoint = self.endpoint.as_ref().map_err(Clone::clone)?;
        let mut body = format!("resource={}", wire::encode(call.resource));
        match call.id {
            ManagedIdentityId::SystemAssigned => {}
            ManagedIdentityId::ClientId(client_id) => {
                body.push_str("&client_id=");
                body.push_str(&wire::encode(client_id));
            }
            other => {
                return Err(unsupported(
                    self.kind(),
                    other,
                    "Cloud Shell accepts only a client id, and only inside DefaultAzureCredential",
                ));
            }
        }
        let builder = http::Request::post(endpoint.as_str())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header("Metadata", "true");
        build_request(builder, Bytes::from(body), self.kind().display_name())
    }

    /// The standard table ([`standard_classify`]).
    fn classify(&self, answer: Answer<'_>, _call: &Call<'_>) -> Result<TokenResponse, Error> {
        standard_classify(self, answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use identity_core::{Env, ErrorKind};
    use wiremock::matchers::{body_string, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn env(server: &MockServer) -> Env {
        Env::from_pairs([(MSI_ENDPOINT, format!("{}/oauth2/token", server.uri()))])
    }

    #[tokio::test]
    async fn the_request_is_a_form_post_with_the_resource() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/oauth2/token"))
            .and(header("Content-Type", "application/x-www-form-urlencoded"))
            .and(header("Metadata", "true"))
            .and(body_string("resource=https%3A%2F%2Fvault.azure.net"))
            .respond_with(token_on(CLOCK_NOW + 3600))
            .expect(1)
            .mount(&server)
            .await;
        let h = harness(env(&server), ManagedIdentityId::SystemAssigned);
        assert_eq!(h.credential.source(), ManagedIdentitySource::CloudShell);
        h.get().await.unwrap();
        let requests = server.received_requests().await.unwrap();
        assert!(requests[0].url.query().is_none());
    }

    #[test]
    fn user_assigned_identities_are_refused_at_build() {
        let env = Env::from_pairs([(MSI_ENDPOINT, "http://127.0.0.1:9/oauth2/token")]);
        assert_user_assigned_refused_at_build(&env, "Cloud Shell");
    }

    #[tokio::test]
    async fn inside_the_default_chain_a_client_id_is_sent_in_the_form() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(body_string(
                "resource=https%3A%2F%2Fvault.azure.net&client_id=CID",
            ))
            .respond_with(token_on(CLOCK_NOW + 3600))
            .expect(1)
            .mount(&server)
            .await;
        let h = harness_with(
            env(&server),
            ManagedIdentityId::ClientId("CID".into()),
            |b| b.within_default_chain(true),
        );
        h.get().await.unwrap();
        // An object id cannot be sent: refused without a request, and without failing the
        // chain's construction.
        let h = harness_with(env(&server), ManagedIdentityId::ObjectId("X".into()), |b| {
            b.within_default_chain(true)
        });
        let e = h.get().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfiguration);
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_error_status_names_the_source() {
        let server = answering(
            "POST",
            ResponseTemplate::new(403).set_body_string(r#"{"error":"forbidden"}"#),
            1,
        )
        .await;
        let e = system_assigned_failure(env(&server)).await;
        assert_eq!(e.kind(), ErrorKind::AuthenticationFailed);
        assert!(
            e.to_string().contains("Cloud Shell") && e.to_string().contains("MSI_ENDPOINT"),
            "{e}"
        );
    }
}
