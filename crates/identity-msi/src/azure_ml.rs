//! Azure Machine Learning compute (docs/protocol.md §2.5).
//!
//! * Host: the compute instance's local token service.
//! * Environment: [`MSI_ENDPOINT`] (URL) and [`MSI_SECRET`] (a secret), both non-empty.
//! * Request: `GET {MSI_ENDPOINT}?api-version=2017-09-01&resource=<resource>[&<id>]` with the
//!   header `secret: <MSI_SECRET>`.
//! * Identities: system-assigned; user-assigned by `clientid` (no underscore: this API's
//!   name), `object_id` or `msi_res_id`. A system-assigned request carries
//!   `clientid=$DEFAULT_IDENTITY_CLIENT_ID` when the platform sets that variable (the compute's
//!   default identity), as MSAL does.
//! * Response: `expires_on` as epoch seconds (number or string) or a UTC date string,
//!   `MM/DD/YYYY HH:MM:SS +00:00` or `M/D/YYYY h:MM:SS AM|PM +00:00`; all are accepted
//!   (docs/protocol.md §9 #5).
//! * Retries: the default policy.
//! * Errors: `MSI_SECRET`, echoed by the service in any common encoding, is removed from
//!   every quoted message and error before it is shown or logged (the flow).

use identity_core::http::Request;
use identity_core::{Error, Secret};

pub use crate::detect::{DEFAULT_IDENTITY_CLIENT_ID, MSI_ENDPOINT, MSI_SECRET};
use crate::detect::{Detected, ManagedIdentitySource, Settings};
use crate::source::{
    Answer, Call, ManagedIdentityId, Source, endpoint, get_request, secret_header,
    standard_classify,
};
use crate::wire::TokenResponse;

/// The api-version sent.
pub const API_VERSION: &str = "2017-09-01";

const REMEDY: &str = "check that the compute has a managed identity and that MSI_ENDPOINT and MSI_SECRET come from the platform";

#[derive(Debug)]
pub(crate) struct AzureMl {
    endpoint: Result<String, Error>,
    secret: Secret,
    default_client_id: Option<String>,
}

/// Detector: `MSI_ENDPOINT` and `MSI_SECRET` non-empty.
pub(crate) fn detect(settings: &Settings) -> Option<Detected> {
    let url = settings.endpoint_or(settings.env.non_empty(MSI_ENDPOINT)?);
    let secret = settings.env.non_empty(MSI_SECRET)?;
    Some(Ok(Box::new(AzureMl {
        endpoint: endpoint(url, MSI_ENDPOINT, ManagedIdentitySource::AzureMl),
        secret: Secret::new(secret),
        default_client_id: settings
            .env
            .non_blank(DEFAULT_IDENTITY_CLIENT_ID)
            .map(|id| id.trim().to_owned()),
    })))
}

impl Source for AzureMl {
    fn kind(&self) -> ManagedIdentitySource {
        ManagedIdentitySource::AzureMl
    }

    fn remedy(&self) -> &'static str {
        REMEDY
    }

    fn request(&self, call: &Call<'_>) -> Result<Request, Error> {
        let mut query = call.query(API_VERSION, ["clientid", "object_id", "msi_res_id"]);
        if let (ManagedIdentityId::SystemAssigned, Some(default)) =
            (call.id, &self.default_client_id)
        {
            query.push(("clientid", default));
        }
        let header = secret_header(self.secret.secret(), MSI_SECRET, self.kind())?;
        let headers = vec![("secret", header)];
        get_request(&self.endpoint, &query, headers, self.kind())
    }

    /// The standard table ([`standard_classify`]); the date forms of `expires_on` are read by
    /// the shared parser.
    fn classify(&self, answer: Answer<'_>, _call: &Call<'_>) -> Result<TokenResponse, Error> {
        standard_classify(self, answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use identity_core::{Env, ErrorKind};
    use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn env(server: &MockServer) -> Env {
        Env::from_pairs([
            (MSI_ENDPOINT, format!("{}/ml", server.uri())),
            (MSI_SECRET, SECRET.to_owned()),
        ])
    }

    #[tokio::test]
    async fn system_assigned_request_has_the_exact_shape() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/ml"))
            .and(query_param("api-version", "2017-09-01"))
            .and(query_param("resource", "https://vault.azure.net"))
            .and(query_param_is_missing("clientid"))
            .and(query_param_is_missing("client_id"))
            .and(header("secret", SECRET))
            .respond_with(token_on(CLOCK_NOW + 3600))
            .expect(1)
            .mount(&server)
            .await;
        let h = harness(env(&server), ManagedIdentityId::SystemAssigned);
        assert_eq!(h.credential.source(), ManagedIdentitySource::AzureMl);
        h.get().await.unwrap();
    }

    #[tokio::test]
    async fn an_echoed_msi_secret_is_removed_from_errors_and_logs() {
        let e = assert_echoed_header_removed(env, "secret").await;
        assert_eq!(e.kind(), ErrorKind::AuthenticationFailed);
    }

    #[tokio::test]
    async fn system_assigned_sends_the_default_identity_client_id_when_set() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/ml"))
            .and(query_param("clientid", "default-cid"))
            .and(header("secret", SECRET))
            .respond_with(token_on(CLOCK_NOW + 3600))
            .expect(1)
            .mount(&server)
            .await;
        let with_default = env(&server).with(DEFAULT_IDENTITY_CLIENT_ID, "default-cid");
        harness(with_default, ManagedIdentityId::SystemAssigned)
            .get()
            .await
            .unwrap();
        // A user-assigned request names its own identity, not the default one.
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(query_param("clientid", "CID"))
            .respond_with(token_on(CLOCK_NOW + 3600))
            .expect(1)
            .mount(&server)
            .await;
        let with_default = env(&server).with(DEFAULT_IDENTITY_CLIENT_ID, "default-cid");
        harness(with_default, ManagedIdentityId::ClientId("CID".into()))
            .get()
            .await
            .unwrap();
        let requests = server.received_requests().await.unwrap();
        assert_eq!(
            requests[0]
                .url
                .query_pairs()
                .filter(|(k, _)| k == "clientid")
                .count(),
            1
        );
    }

    #[tokio::test]
    async fn user_assigned_selectors_use_the_documented_parameter_names() {
        let names = ["clientid", "object_id", "msi_res_id"];
        assert_selector_names(env, "/ml", names, ("secret", SECRET)).await;
    }

    #[tokio::test]
    async fn all_four_expires_on_formats_are_accepted() {
        for (raw, expected) in [
            (r#""1795298875""#, 1_795_298_875),
            ("1795298875", 1_795_298_875),
            (r#""06/20/2030 02:57:58 +00:00""#, 1_908_154_678),
            (r#""1/16/2030 5:24:12 AM +00:00""#, 1_894_771_452),
        ] {
            let server = answering("GET", ResponseTemplate::new(200)
                        .set_body_string(format!(r#"{{"access_token":"AT","expires_on":{raw},"resource":"https://vault.azure.net"}}"#)), 1).await;
            let token = harness(env(&server), ManagedIdentityId::ClientId("CID".into()))
                .get()
                .await
                .unwrap();
            assert_eq!(token.expires_on, at(expected), "{raw}");
        }
    }

    #[tokio::test]
    async fn a_wrong_secret_is_an_authentication_failure_without_the_secret() {
        let server = answering(
            "GET",
            ResponseTemplate::new(400)
                .set_body_string(r#"{"error":"invalid_request","error_description":"bad secret"}"#),
            1,
        )
        .await;
        let e = system_assigned_failure(env(&server)).await;
        assert_eq!(e.kind(), ErrorKind::AuthenticationFailed);
        assert!(
            e.to_string().contains("Azure Machine Learning")
                && e.to_string().contains("MSI_SECRET"),
            "{e}"
        );
        assert_no_secret(&e);
        assert!(
            !format!(
                "{:?}",
                harness(env(&server), ManagedIdentityId::SystemAssigned).credential
            )
            .contains(SECRET)
        );
    }
}
