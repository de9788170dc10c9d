//! Service Fabric (docs/protocol.md §2.3), behind the `service-fabric` feature.
//!
//! * Host: the cluster's managed identity token service, over HTTPS with a self-signed
//!   certificate.
//! * Environment: [`IDENTITY_ENDPOINT`] (an `https` URL),
//!   [`IDENTITY_HEADER`] (a secret) and
//!   [`IDENTITY_SERVER_THUMBPRINT`], all non-empty.
//! * Request: `GET {IDENTITY_ENDPOINT}?api-version=2019-07-01-preview&resource=<resource>` with
//!   `Secret: <IDENTITY_HEADER>` (no `Metadata` header).
//! * Identities: system-assigned only; the application's identity is fixed by the cluster
//!   configuration, so any user-assigned selector is refused at construction
//!   (<https://aka.ms/servicefabricmi>).
//! * TLS: the server certificate is pinned (docs/protocol.md §9 #3). The thumbprint is normalised (spaces,
//!   tabs, CR, LF and `:` removed; exactly 40 hex digits), and after the handshake the
//!   SHA-1 of the leaf certificate's DER must equal it (constant-time, case-insensitive).
//!   Normal CA validation is off for this endpoint: the pin is the only trust anchor, and the
//!   handshake signatures are still verified. A mismatch aborts the connection before the
//!   request (and its `Secret` header) is written. A malformed thumbprint or a non-`https`
//!   endpoint fails `get_token` before connecting.
//! * The injected HTTP client is not used for this source: only the pinned client may carry
//!   the secret. The builder's timeout, body cap, clock and sleeper still apply.
//! * Token revocation: a `get_token` with a claims challenge adds
//!   `token_sha256_to_refresh=<lowercase hex SHA-256 of the cached token being replaced>` (when
//!   one is cached) and the client capabilities `xms_cc=CP1`, so the cluster drops the revoked
//!   token instead of handing it back, as MSAL does.
//! * Retries: the default policy.
//! * Errors: the `Secret` header value, echoed by the service in any common encoding, is
//!   removed from every quoted message and error before it is shown or logged (the flow in
//!   `credential.rs`).
//! * Without the `service-fabric` feature a detected Service Fabric environment makes
//!   `get_token` fail with a configuration error saying to enable it.

use std::sync::Arc;

use identity_core::http::{HttpClient, Request};
use identity_core::{Error, Secret};

use crate::NAME;
pub use crate::detect::IDENTITY_SERVER_THUMBPRINT;
use crate::detect::{
    Detected, IDENTITY_ENDPOINT, IDENTITY_HEADER, ManagedIdentitySource, Settings,
};
use crate::source::{
    Answer, Call, ManagedIdentityId, Source, Transport, get_request, secret_header,
    standard_classify, unsupported,
};
use crate::wire::TokenResponse;

/// The api-version sent.
pub const API_VERSION: &str = "2019-07-01-preview";

const REMEDY: &str = "check that the application has a managed identity in the cluster manifest and that IDENTITY_ENDPOINT, IDENTITY_HEADER and IDENTITY_SERVER_THUMBPRINT come from the cluster";

#[derive(Debug)]
pub(crate) struct ServiceFabric {
    endpoint: Result<String, Error>,
    secret: Secret,
    thumbprint: Result<[u8; 20], Error>,
}

/// Detector: `IDENTITY_ENDPOINT`, `IDENTITY_HEADER` and `IDENTITY_SERVER_THUMBPRINT` non-empty.
pub(crate) fn detect(settings: &Settings) -> Option<Detected> {
    let url = settings.endpoint_or(settings.env.non_empty(IDENTITY_ENDPOINT)?);
    let secret = settings.env.non_empty(IDENTITY_HEADER)?;
    let thumbprint = settings.env.non_empty(IDENTITY_SERVER_THUMBPRINT)?;
    Some(Ok(Box::new(ServiceFabric {
        endpoint: check_endpoint(url).map(|()| url.to_owned()),
        secret: Secret::new(secret),
        thumbprint: normalise_thumbprint(thumbprint),
    })))
}

fn check_endpoint(url: &str) -> Result<(), Error> {
    let uri = crate::source::parse_endpoint(
        url,
        IDENTITY_ENDPOINT,
        ManagedIdentitySource::ServiceFabric,
    )?;
    if uri.scheme_str() != Some("https") {
        return Err(Error::invalid_configuration(
            NAME,
            format!(
                "the Service Fabric endpoint must use https (its certificate is pinned); {REMEDY}"
            ),
        ));
    }
    Ok(())
}

/// Normalises a thumbprint: drops spaces, tabs, CR, LF and colons; requires 40 hex digits.
pub(crate) fn normalise_thumbprint(raw: &str) -> Result<[u8; 20], Error> {
    let hex: Vec<u8> = raw
        .bytes()
        .filter(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b':'))
        .collect();
    let malformed = || {
        Error::invalid_configuration(
            NAME,
            format!(
                "{IDENTITY_SERVER_THUMBPRINT} is not a SHA-1 thumbprint (40 hex digits); {REMEDY}"
            ),
        )
    };
    if hex.len() != 40 {
        return Err(malformed());
    }
    let mut out = [0u8; 20];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let digit = |b: u8| char::from(b).to_digit(16);
        let (Some(hi), Some(lo)) = (digit(pair[0]), digit(pair[1])) else {
            return Err(malformed());
        };
        out[i] = u8::try_from(hi * 16 + lo).map_err(|_| malformed())?;
    }
    Ok(out)
}

impl Source for ServiceFabric {
    fn kind(&self) -> ManagedIdentitySource {
        ManagedIdentitySource::ServiceFabric
    }

    fn remedy(&self) -> &'static str {
        REMEDY
    }

    fn supports(&self, id: &ManagedIdentityId) -> Result<(), Error> {
        if id.is_user_assigned() {
            return Err(unsupported(
                self.kind(),
                id,
                "the application's identity is set in the cluster configuration (https://aka.ms/servicefabricmi); remove the identity selector",
            ));
        }
        Ok(())
    }

    /// Configuration problems fail here, before anything connects. A claims challenge adds
    /// `token_sha256_to_refresh` and `xms_cc` after `api-version` and `resource`.
    fn request(&self, call: &Call<'_>) -> Result<Request, Error> {
        if !cfg!(feature = "service-fabric") {
            return Err(Error::invalid_configuration(
                NAME,
                "the environment is a Service Fabric cluster, but identity-msi was built without the \
                 `service-fabric` feature; enable it to get tokens here",
            ));
        }
        self.endpoint.as_ref().map_err(Clone::clone)?;
        self.thumbprint.as_ref().map_err(Clone::clone)?;
        let mut extra = Vec::new();
        if let Some(revocation) = call.revocation {
            if let Some(replaced) = &revocation.replaced {
                extra.push(("token_sha256_to_refresh", token_sha256(replaced.secret())));
            }
            if !revocation.capabilities.is_empty() {
                extra.push(("xms_cc", revocation.capabilities.join(",")));
            }
        }
        let mut query = vec![("api-version", API_VERSION), ("resource", call.resource)];
        query.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
        let header = secret_header(self.secret.secret(), IDENTITY_HEADER, self.kind())?;
        let headers = vec![("Secret", header)];
        get_request(&self.endpoint, &query, headers, self.kind())
    }

    /// The pinned TLS client, whatever the runtime injects: only it may carry the secret.
    fn transport(&self) -> Transport {
        Transport {
            client: pinned_client(self.thumbprint.as_ref().ok()),
            ..Transport::default()
        }
    }

    /// The standard table ([`standard_classify`]); a certificate that does not match the
    /// thumbprint is authentication failed, naming `IDENTITY_SERVER_THUMBPRINT`, and is not
    /// retried (the handshake aborts before the request is written; docs/protocol.md §10
    /// case 7).
    fn classify(&self, answer: Answer<'_>, _call: &Call<'_>) -> Result<TokenResponse, Error> {
        standard_classify(self, answer)
    }
}

/// The pinned client for a well-formed thumbprint.
#[cfg(feature = "service-fabric")]
fn pinned_client(pin: Option<&[u8; 20]>) -> Option<Arc<dyn HttpClient>> {
    pin.map(|pin| Arc::new(pinned::PinnedClient { pin: *pin }) as Arc<dyn HttpClient>)
}

/// Without the feature no request is made (see `request`).
#[cfg(not(feature = "service-fabric"))]
fn pinned_client(_pin: Option<&[u8; 20]>) -> Option<Arc<dyn HttpClient>> {
    None
}

/// The lowercase hex SHA-256 of a token, as `token_sha256_to_refresh` wants it.
#[cfg(feature = "service-fabric")]
fn token_sha256(token: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Without the feature no request is made (see `request`), so nothing is hashed.
#[cfg(not(feature = "service-fabric"))]
fn token_sha256(_token: &str) -> String {
    String::new()
}

#[cfg(feature = "service-fabric")]
mod pinned {
    //! The pinned TLS client.

    use std::fmt;
    use std::sync::Arc;

    use identity_core::BoxFuture;
    use identity_core::http::{
        Body, BoxError, CertificateRejected, HttpClient, Request, SendOptions, send_over_io,
    };
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};
    use tokio::net::TcpStream;
    use tokio_rustls::TlsConnector;

    /// Why a certificate that does not hash to the pin is refused.
    const MISMATCH: &str =
        "the server certificate's SHA-1 thumbprint does not match IDENTITY_SERVER_THUMBPRINT";

    /// HTTPS to one endpoint whose certificate must hash to `pin`.
    pub(super) struct PinnedClient {
        pub(super) pin: [u8; 20],
    }

    impl fmt::Debug for PinnedClient {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("PinnedClient").finish_non_exhaustive()
        }
    }

    impl HttpClient for PinnedClient {
        fn execute(
            &self,
            request: Request,
            options: SendOptions,
        ) -> BoxFuture<'_, Result<http::Response<Body>, BoxError>> {
            Box::pin(send(self.pin, request, options))
        }
    }

    async fn send(
        pin: [u8; 20],
        request: Request,
        options: SendOptions,
    ) -> Result<http::Response<Body>, BoxError> {
        let uri = request.uri();
        if uri.scheme_str() != Some("https") {
            return Err("the Service Fabric endpoint must use https".into());
        }
        let host = uri.host().ok_or("the request URL has no host")?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let server_name = ServerName::try_from(host.clone())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(PinVerifier {
            pin,
            algorithms: provider.signature_verification_algorithms,
        });
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        let connect = TcpStream::connect((host.as_str(), port));
        let tcp = match options.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, connect)
                .await
                .map_err(|_| format!("connecting timed out after {} ms", limit.as_millis()))??,
            None => connect.await?,
        };
        let _ = tcp.set_nodelay(true);
        // The handshake fails here on a pin mismatch, before any request byte is written; the
        // pipeline does not retry a refused certificate.
        let tls = TlsConnector::from(Arc::new(config))
            .connect(server_name, tcp)
            .await
            .map_err(|e| -> BoxError {
                let refused = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    .is_some_and(|e| matches!(e, rustls::Error::InvalidCertificate(_)));
                if refused {
                    Box::new(CertificateRejected::new(MISMATCH))
                } else {
                    Box::new(e)
                }
            })?;
        send_over_io(tls, request).await
    }

    /// Accepts exactly the pinned certificate; handshake signatures are still checked.
    #[derive(Debug)]
    struct PinVerifier {
        pin: [u8; 20],
        algorithms: WebPkiSupportedAlgorithms,
    }

    impl ServerCertVerifier for PinVerifier {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            let digest =
                ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, end_entity.as_ref());
            if constant_time_eq(digest.as_ref(), &self.pin) {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::ApplicationVerificationFailure,
                ))
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    }

    fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    #[allow(dead_code, reason = "keeps the provider type in scope for readers")]
    type Provider = CryptoProvider;
}

#[cfg(test)]
mod tests {
    use super::*;
    use identity_core::{Env, ErrorKind};

    /// A well-formed thumbprint.
    const THUMBPRINT: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn thumbprints_are_normalised() {
        let lower = "0123456789abcdef0123456789abcdef01234567";
        let expected = normalise_thumbprint(lower).unwrap();
        let colons = "01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67";
        assert_eq!(normalise_thumbprint(colons).unwrap(), expected);
        assert_eq!(
            normalise_thumbprint(" 0123456789ABCDEF\t0123456789abcdef\r\n01234567 ").unwrap(),
            expected
        );
        for bad in [
            "abc",
            "",
            "0123456789abcdef0123456789abcdef0123456g",
            "0123456789abcdef0123456789abcdef012345678",
        ] {
            let e = normalise_thumbprint(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidConfiguration);
        }
    }

    #[test]
    fn user_assigned_identities_are_refused_at_build() {
        let env = Env::from_pairs([
            (IDENTITY_ENDPOINT, "https://127.0.0.1:9/"),
            (IDENTITY_HEADER, "s"),
            (IDENTITY_SERVER_THUMBPRINT, THUMBPRINT),
        ]);
        crate::test_support::assert_user_assigned_refused_at_build(&env, "Service Fabric");
    }

    #[cfg(not(feature = "service-fabric"))]
    #[tokio::test]
    async fn without_the_feature_get_token_says_to_enable_it() {
        use identity_core::{TokenCredential, TokenRequestOptions};
        let c = crate::ManagedIdentityCredential::builder()
            .runtime(identity_core::Runtime::with_env(Env::from_pairs([
                (IDENTITY_ENDPOINT, "https://127.0.0.1:9/"),
                (IDENTITY_HEADER, "s"),
                (IDENTITY_SERVER_THUMBPRINT, THUMBPRINT),
            ])))
            .build()
            .unwrap();
        let e = c
            .get_token(
                &["https://vault.azure.net/.default"],
                &TokenRequestOptions::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfiguration);
        assert!(e.to_string().contains("service-fabric"), "{e}");
    }

    #[cfg(feature = "service-fabric")]
    mod tls {
        use super::*;
        use crate::test_support::loopback::{Server, tls_server, tls_server_with};
        use crate::test_support::*;

        fn sf_env(server: &Server, thumbprint: &str) -> Env {
            Env::from_pairs([
                (
                    IDENTITY_ENDPOINT,
                    format!("https://{}/msi/token", server.addr),
                ),
                (IDENTITY_HEADER, SECRET.to_owned()),
                (IDENTITY_SERVER_THUMBPRINT, thumbprint.to_owned()),
            ])
        }

        #[tokio::test]
        async fn a_matching_thumbprint_gets_a_token_with_the_exact_request() {
            let server = tls_server().await;
            let h = harness(
                sf_env(&server, &server.thumbprint),
                ManagedIdentityId::SystemAssigned,
            );
            assert_eq!(h.credential.source(), ManagedIdentitySource::ServiceFabric);
            let token = tokio::time::timeout(std::time::Duration::from_secs(20), h.get())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(token.token.secret(), "AT");
            let request = server.received()[0].clone();
            let head = request.lines().next().unwrap();
            assert_eq!(
                head,
                "GET /msi/token?api-version=2019-07-01-preview&resource=https%3A%2F%2Fvault.azure.net HTTP/1.1"
            );
            let lower = request.to_ascii_lowercase();
            assert!(
                lower.contains(&format!("secret: {}", SECRET.to_ascii_lowercase())),
                "{request}"
            );
            assert!(!lower.contains("metadata:"), "{request}");
        }

        /// Echoes the `Secret` header in every quoted field, in several encodings.
        fn echo_secret(request: &str) -> (u16, String) {
            use base64::Engine as _;
            let value = request
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("secret")
                        .then(|| value.trim().to_owned())
                })
                .unwrap_or_default();
            let body = serde_json::json!({
                "error": { "code": base64::engine::general_purpose::STANDARD.encode(&value), "message": crate::wire::encode(&value) },
                "message": format!("bad header {value}"),
            });
            (400, body.to_string())
        }

        #[tokio::test]
        async fn an_echoed_secret_header_is_removed_from_errors_and_logs() {
            let server = tls_server_with(echo_secret).await;
            let h = harness(
                sf_env(&server, &server.thumbprint),
                ManagedIdentityId::SystemAssigned,
            );
            let e = tokio::time::timeout(
                std::time::Duration::from_secs(20),
                assert_echo_not_leaked(&h, SECRET),
            )
            .await
            .unwrap();
            assert_eq!(e.status(), Some(400));
            assert!(e.to_string().contains("bad header ***"), "{e}");
        }

        #[tokio::test]
        async fn a_claims_challenge_names_the_token_to_replace_and_the_capability() {
            use identity_core::{TokenCredential, TokenRequestOptions};
            let server = tls_server().await;
            let h = harness(
                sf_env(&server, &server.thumbprint),
                ManagedIdentityId::SystemAssigned,
            );
            let limit = std::time::Duration::from_secs(20);
            let scope = ["https://vault.azure.net/.default"];
            // Nothing cached yet: only the capability.
            let claims = TokenRequestOptions::default().claims(r#"{"access_token":{}}"#);
            tokio::time::timeout(limit, h.credential.get_token(&scope, &claims))
                .await
                .unwrap()
                .unwrap();
            // Now "AT" is cached; the challenge names its SHA-256.
            tokio::time::timeout(limit, h.credential.get_token(&scope, &claims))
                .await
                .unwrap()
                .unwrap();
            let received = server.received();
            let line = |i: usize| received[i].lines().next().unwrap().to_owned();
            assert_eq!(
                line(0),
                "GET /msi/token?api-version=2019-07-01-preview&resource=https%3A%2F%2Fvault.azure.net&xms_cc=CP1 HTTP/1.1"
            );
            // `printf AT | sha256sum`
            assert_eq!(
                line(1),
                "GET /msi/token?api-version=2019-07-01-preview&resource=https%3A%2F%2Fvault.azure.net\
                 &token_sha256_to_refresh=eb5442705969dc8da5dfac8f9658dc68acdab5bb7635ba7cc551e389416ac34e&xms_cc=CP1 HTTP/1.1"
            );
            // A plain request carries neither.
            tokio::time::timeout(
                limit,
                h.credential.get_token(
                    &["https://storage.azure.com/.default"],
                    &TokenRequestOptions::default(),
                ),
            )
            .await
            .unwrap()
            .unwrap();
            let plain = server.received()[2].clone();
            assert!(
                !plain.contains("token_sha256_to_refresh") && !plain.contains("xms_cc"),
                "{plain}"
            );
        }

        #[tokio::test]
        async fn a_mismatched_thumbprint_is_refused_before_the_request_is_read() {
            // The field report's input: another certificate's thumbprint (all zeros).
            let server = tls_server().await;
            for wrong in [
                "0000000000000000000000000000000000000000",
                "0123456789abcdef0123456789abcdef01234567",
            ] {
                let h = harness(sf_env(&server, wrong), ManagedIdentityId::SystemAssigned);
                let e = tokio::time::timeout(std::time::Duration::from_secs(20), h.get())
                    .await
                    .unwrap()
                    .unwrap_err();
                assert_eq!(server.request_count(), 0);
                // Authentication failed (docs/protocol.md §10 case 7), not retried, and the
                // top-level message says why.
                assert_eq!(e.kind(), ErrorKind::AuthenticationFailed, "{e}");
                assert!(h.sleeper.slept().is_empty(), "not retried");
                let text = e.to_string();
                assert!(
                    text.contains("presented a TLS certificate that was refused")
                        && text.contains("does not match IDENTITY_SERVER_THUMBPRINT")
                        && text.contains("managedidentitycredential-authentication-failed"),
                    "{text}"
                );
                assert!(!text.contains("could not be reached"), "{text}");
                assert_no_secret(&e);
            }
        }

        #[tokio::test]
        async fn a_malformed_thumbprint_fails_before_connecting() {
            let server = tls_server().await;
            let h = harness(sf_env(&server, "abc"), ManagedIdentityId::SystemAssigned);
            let e = h.get().await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidConfiguration);
            assert_eq!(server.request_count(), 0);
        }

        #[tokio::test]
        async fn an_http_endpoint_is_refused() {
            let server = tls_server().await;
            let env = sf_env(&server, &server.thumbprint).with(
                IDENTITY_ENDPOINT,
                format!("http://{}/msi/token", server.addr),
            );
            let e = system_assigned_failure(env).await;
            assert_eq!(e.kind(), ErrorKind::InvalidConfiguration);
            assert!(e.to_string().contains("https"), "{e}");
        }
    }
}
