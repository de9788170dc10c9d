//! [`ClientCertificateCredential`]: a service principal authenticating with a certificate.
//!
//! The credential signs a client assertion JWT with the certificate's RSA key for every token
//! request (crate docs, "Client assertions": PS256 + `x5t#S256`, RS256 +
//! `x5t` for the `adfs` tenant, `x5c` only with
//! [`send_certificate_chain`](ClientCertificateCredentialBuilder::send_certificate_chain)).
//!
//! Endpoint: `POST https://<authority>/<tenant>/oauth2/v2.0/token` with `client_id`,
//! `client_assertion`, `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`,
//! `grant_type=client_credentials` and `scope` (spec §6.4). No discovery: the assertion's
//! `aud` is that token endpoint.
//!
//! Certificates: PEM (an unencrypted private key and its certificate, plus optional chain
//! certificates, in one file or buffer) or, with the `pkcs12` feature, PKCS#12 with an
//! optional password. The format is detected from the content. The file is read once, at
//! build time, so a bad file or a wrong password fails [`build`](ClientCertificateCredentialBuilder::build).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use identity_core::{AccessToken, BoxFuture, Error, Secret, TokenCredential, TokenRequestOptions};

use crate::client::{
    AssertionContext, AssertionSource, ClientAuth, CommonOptions, EntraClient, common_setters,
};
use crate::jwt::ClientCertificate;

const NAME: &str = "ClientCertificateCredential";

/// Authenticates a service principal with a certificate.
///
/// ```no_run
/// # async fn demo() -> Result<(), identity_core::Error> {
/// use identity_core::{TokenCredential, TokenRequestOptions};
/// use identity_entra::ClientCertificateCredential;
///
/// let credential = ClientCertificateCredential::builder()
///     .tenant_id("72f988bf-86f1-41af-91ab-2d7cd011db47")
///     .client_id("00000000-0000-0000-0000-000000000001")
///     .certificate_path("/etc/secrets/sp.pem")
///     .build()?;
/// let token = credential
///     .get_token(&["https://vault.azure.net/.default"], &TokenRequestOptions::default())
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClientCertificateCredential {
    client: EntraClient,
    certificate: ClientCertificate,
}

impl fmt::Debug for ClientCertificateCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(NAME)
            .field("authority", &self.client.authority())
            .field("tenant_id", &self.client.tenant())
            .field("client_id", &self.client.client_id())
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

impl ClientCertificateCredential {
    /// A builder.
    pub fn builder() -> ClientCertificateCredentialBuilder {
        ClientCertificateCredentialBuilder::default()
    }

    /// Builds from settings already gathered (by `EnvironmentCredential`).
    pub(crate) fn from_common(
        common: CommonOptions,
        path: PathBuf,
        password: Option<Secret>,
        send_chain: bool,
    ) -> Result<Self, Error> {
        ClientCertificateCredentialBuilder {
            common,
            source: Some(Source::Path(path)),
            password,
            send_chain,
        }
        .build()
    }

    async fn fetch(
        &self,
        scopes: &[&str],
        options: &TokenRequestOptions,
    ) -> Result<AccessToken, Error> {
        self.client.get_token(scopes, options).await
    }
}

impl TokenCredential for ClientCertificateCredential {
    fn get_token<'a>(
        &'a self,
        scopes: &'a [&'a str],
        options: &'a TokenRequestOptions,
    ) -> BoxFuture<'a, Result<AccessToken, Error>> {
        identity_core::trace::traced(NAME, "client_certificate", self.fetch(scopes, options))
    }

    fn name(&self) -> &'static str {
        NAME
    }
}

#[derive(Debug)]
struct Signer {
    certificate: ClientCertificate,
    client_id: String,
    send_chain: bool,
}

impl AssertionSource for Signer {
    fn assertion(&self, context: AssertionContext) -> BoxFuture<'static, Result<Secret, Error>> {
        let adfs = context.tenant.eq_ignore_ascii_case("adfs");
        let result = self
            .certificate
            .sign_assertion(
                NAME,
                &self.client_id,
                &context.token_endpoint,
                context.now,
                adfs,
                self.send_chain,
            )
            .map(Secret::new);
        Box::pin(async move { result })
    }
}

#[derive(Clone)]
enum Source {
    Path(PathBuf),
    Bytes(Arc<[u8]>),
}

/// Builds a [`ClientCertificateCredential`].
#[derive(Clone, Default)]
pub struct ClientCertificateCredentialBuilder {
    common: CommonOptions,
    source: Option<Source>,
    password: Option<Secret>,
    send_chain: bool,
}

impl fmt::Debug for ClientCertificateCredentialBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Some(Source::Path(p)) => format!("path {}", p.display()),
            Some(Source::Bytes(b)) => format!("{} bytes", b.len()),
            None => "none".to_owned(),
        };
        f.debug_struct("ClientCertificateCredentialBuilder")
            .field("common", &self.common)
            .field("certificate", &source)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("send_certificate_chain", &self.send_chain)
            .finish()
    }
}

impl ClientCertificateCredentialBuilder {
    /// The tenant (directory) id or domain (required).
    #[must_use]
    pub fn tenant_id(mut self, tenant_id: impl Into<String>) -> Self {
        self.common.tenant_id = Some(tenant_id.into());
        self
    }

    /// The application (client) id (required).
    #[must_use]
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.common.client_id = Some(client_id.into());
        self
    }

    /// A PEM or PKCS#12 file holding the key and certificate (this or
    /// [`certificate`](Self::certificate) is required).
    #[must_use]
    pub fn certificate_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.source = Some(Source::Path(path.into()));
        self
    }

    /// PEM or PKCS#12 bytes holding the key and certificate.
    #[must_use]
    pub fn certificate(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.source = Some(Source::Bytes(bytes.into().into()));
        self
    }

    /// The PKCS#12 password.
    #[must_use]
    pub fn password(mut self, password: impl Into<Secret>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Whether to send the certificate chain (`x5c`) in each assertion, for subject name/issuer
    /// authentication (default `false`).
    #[must_use]
    pub fn send_certificate_chain(mut self, send: bool) -> Self {
        self.send_chain = send;
        self
    }

    common_setters!();

    /// Reads the certificate and builds the credential.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidConfiguration`](identity_core::ErrorKind::InvalidConfiguration) when a
    /// setting is missing or invalid, the file cannot be read, the key is not RSA, no
    /// certificate matches the key, or the PKCS#12 password is wrong. Messages name the path,
    /// never the file's content or the password.
    pub fn build(self) -> Result<ClientCertificateCredential, Error> {
        let bytes: Arc<[u8]> = match self.source {
            Some(Source::Bytes(b)) => b,
            Some(Source::Path(path)) => std::fs::read(&path)
                .map_err(|e| {
                    Error::invalid_configuration(
                        NAME,
                        format!("cannot read the certificate file {}; check the path and its permissions", path.display()),
                    )
                    .with_source(e)
                })?
                .into(),
            None => {
                return Err(Error::invalid_configuration(
                    NAME,
                    "a certificate is required; set certificate_path or certificate",
                ));
            }
        };
        let password = self.password.as_ref().map(Secret::secret);
        let certificate = ClientCertificate::load(NAME, &bytes, password)?;
        let client_id = self
            .common
            .client_id
            .clone()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let signer = Signer {
            certificate: certificate.clone(),
            client_id,
            send_chain: self.send_chain,
        };
        let client = self.common.build(
            NAME,
            "client_certificate",
            ClientAuth::Assertion(Arc::new(signer)),
        )?;
        Ok(ClientCertificateCredential {
            client,
            certificate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use identity_core::{Env, ErrorKind};
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn builder(server: &MockServer) -> ClientCertificateCredentialBuilder {
        let (clock, sleeper) = fake_time();
        ClientCertificateCredential::builder()
            .tenant_id("t")
            .client_id("c")
            .certificate(CLIENT_PEM)
            .authority_host(server.uri())
            .allow_insecure_loopback_authority(true)
            .env(Env::empty())
            .clock(clock.shared())
            .sleeper(sleeper.shared())
            .http_client(test_http_client())
    }

    fn segment(jwt: &str, i: usize) -> serde_json::Value {
        serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(jwt.split('.').nth(i).unwrap())
                .unwrap(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn the_request_carries_a_verifiable_assertion_for_the_token_endpoint() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/t/oauth2/v2.0/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(token_body("AT", 3600)))
            .expect(1)
            .mount(&server)
            .await;
        let credential = builder(&server).build().unwrap();
        credential
            .get_token(
                &["https://vault.azure.net/.default"],
                &TokenRequestOptions::default(),
            )
            .await
            .unwrap();
        let requests = server.received_requests().await.unwrap();
        let form = form_of(&requests[0]);
        let keys: Vec<&str> = form.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "client_assertion",
                "client_assertion_type",
                "client_id",
                "grant_type",
                "scope"
            ]
        );
        assert_eq!(form["client_assertion_type"], crate::client::JWT_BEARER);
        assert_eq!(form["client_id"], "c");
        assert_eq!(form["grant_type"], "client_credentials");
        let jwt = &form["client_assertion"];
        let header = segment(jwt, 0);
        assert_eq!(header["alg"], "PS256");
        assert!(header.get("x5c").is_none());
        let claims = segment(jwt, 1);
        assert_eq!(
            claims["aud"],
            format!("{}/t/oauth2/v2.0/token", server.uri())
        );
        assert_eq!(claims["iss"], "c");
        assert_eq!(claims["sub"], "c");
        let (nbf, exp) = (
            claims["nbf"].as_u64().unwrap(),
            claims["exp"].as_u64().unwrap(),
        );
        assert_eq!(nbf, 1_893_456_000);
        assert!(exp > nbf && exp - nbf <= 600);
        // The signature verifies with the certificate's public key.
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        let cert =
            crate::jwt::ClientCertificate::from_pem("X", CLIENT_PEM.as_bytes(), None).unwrap();
        let spki = spki_rsa_key(cert.leaf());
        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PSS_2048_8192_SHA256, spki)
            .verify(input.as_bytes(), &URL_SAFE_NO_PAD.decode(sig).unwrap())
            .unwrap();
    }

    /// The RSA public key of a certificate, found by its DER prefix (an independent check of
    /// the crate's own parser): the `RSAPublicKey` follows the rsaEncryption OID, NULL, and
    /// the BIT STRING header.
    fn spki_rsa_key(cert: &[u8]) -> &[u8] {
        let oid = [
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
        ];
        let at = cert.windows(oid.len()).position(|w| w == oid).unwrap() + oid.len();
        // BIT STRING 0x03, long length 0x82 LL LL, unused-bits byte 0.
        assert_eq!(cert[at], 0x03);
        let len = usize::from(cert[at + 2]) << 8 | usize::from(cert[at + 3]);
        &cert[at + 5..at + 4 + len]
    }

    #[tokio::test]
    async fn the_chain_is_sent_when_asked() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(token_body("AT", 3600)))
            .mount(&server)
            .await;
        let credential = builder(&server)
            .certificate(CLIENT_CHAIN_PEM)
            .send_certificate_chain(true)
            .build()
            .unwrap();
        credential
            .get_token(&["s"], &TokenRequestOptions::default())
            .await
            .unwrap();
        let requests = server.received_requests().await.unwrap();
        let header = segment(&form_of(&requests[0])["client_assertion"], 0);
        let x5c = header["x5c"].as_array().unwrap();
        assert_eq!(x5c.len(), 2);
        let ca = rustls_pki_types::CertificateDer::from_pem_slice(CA_PEM.as_bytes()).unwrap();
        assert_eq!(x5c[1], STANDARD.encode(&ca));
    }

    use rustls_pki_types::pem::PemObject;

    #[test]
    fn certificate_files_are_read_at_build_and_problems_named() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("sp.pem");
        std::fs::write(&good, CLIENT_PKCS1_PEM).unwrap();
        let base = || {
            ClientCertificateCredential::builder()
                .tenant_id("t")
                .client_id("c")
                .env(Env::empty())
                .http_client(test_http_client())
        };
        base().certificate_path(&good).build().unwrap();
        let err = base()
            .certificate_path(dir.path().join("absent.pem"))
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfiguration);
        assert!(err.message().contains("absent.pem"), "{err}");
        let err = base().build().unwrap_err();
        assert!(err.message().contains("certificate is required"), "{err}");
        let err = base().certificate(EC_PEM).build().unwrap_err();
        assert!(err.message().contains("not an RSA key"), "{err}");
        assert_no_key_material(&format!("{err:?}"));
    }

    #[test]
    fn debug_shows_the_thumbprint_but_no_key_or_password() {
        let builder = ClientCertificateCredential::builder()
            .tenant_id("t")
            .client_id("c")
            .certificate(CLIENT_PEM)
            .password("planted-password")
            .env(Env::empty())
            .http_client(test_http_client());
        let credential = builder.clone().build().unwrap();
        for text in [format!("{builder:?}"), format!("{credential:?}")] {
            assert_no_key_material(&text);
        }
        assert!(format!("{credential:?}").contains("x5t#S256"));
    }
}
