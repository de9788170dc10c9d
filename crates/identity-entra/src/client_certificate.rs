//! [`ClientCertificateCredential`]: a service principal authenticating with a certificate.
//!
//! The credential signs a client assertion JWT with the certificate's RSA key for every token
//! request (crate docs, "Client assertions": PS256 + `x5t#S256`, RS256 +
//! `x5t` for the `adfs` tenant, `x5c` only with
//! [`send_certificate_chain`](ClientCertificateCredentialBuilder::send_certificate_chain)).
//!
//! Endpoint: `POST https://<authority>/<tenant>/oauth2/v2.0/token` with `client_id`,
//! `client_assertion`, `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`,
//! `grant_type=client_credentials` and `scope` (docs/protocol.md §6.4). No discovery: the assertion's
//! `aud` is that token endpoint.
//!
//! Certificates: PEM (a private key and its certificate, plus optional chain certificates, in
//! one file or buffer; the key may be encrypted, as PKCS#8 `ENCRYPTED PRIVATE KEY` or in the
//! traditional `Proc-Type: 4,ENCRYPTED` form, with the [`password`](ClientCertificateCredentialBuilder::password))
//! or, with the `pkcs12` feature, PKCS#12 with an optional password. The format is detected
//! from the content. The file is read at build time, so a bad file or a wrong password fails
//! [`build`](ClientCertificateCredentialBuilder::build).
//!
//! # Rotation
//! Key Vault's CSI driver and cert-manager replace certificate files in place. Before each token
//! request (the cache makes them rare) the credential compares the file's modification time,
//! length and inode with those of the file it loaded; when they differ it reads and parses the
//! file again (through [`identity_core::fs::read`]: a regular file of at most 1 MiB). The new
//! certificate replaces the old one only once it has parsed: while the file is missing, half
//! written or unreadable, requests keep signing with the old key and a warning is traced (no
//! window in which no certificate works). A certificate given as bytes never changes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use identity_core::fs::{FileError, ReadOptions};

use crate::http::FileStamp;

use identity_core::{Error, Secret};

use crate::assertion::{CertificateFor, Signer};
use crate::client::ClientAuth;
use crate::credential::sealed::{Ids, Named};
use crate::credential::{Credential, CredentialBuilder, ServicePrincipal};
use crate::jwt::ClientCertificate as Certificate;
use crate::options::CommonOptions;

const NAME: &str = "ClientCertificateCredential";

/// Authenticates a service principal with a certificate.
///
/// ```no_run
/// # fn demo() -> Result<(), identity_chain::Error> {
/// // A password-protected PEM file holding the key and the certificate chain, sent with
/// // each assertion for subject-name/issuer authentication.
/// let credential = identity_chain::ClientCertificateCredential::builder()
///     .tenant_id("72f988bf-86f1-41af-91ab-2d7cd011db47")
///     .client_id("00000000-0000-0000-0000-000000000001")
///     .certificate_path("/etc/secrets/sp.pem")
///     .password("the key's password")
///     .send_certificate_chain(true)
///     .build()?;
/// # Ok(()) }
/// ```
pub type ClientCertificateCredential = Credential<ServicePrincipal<ClientCertificate>>;

/// Names [`ClientCertificateCredential`] among the [`ServicePrincipal`] kinds.
#[derive(Clone, Debug)]
pub enum ClientCertificate {}

impl ClientCertificateCredential {
    /// Builds from settings already gathered (by `EnvironmentCredential`).
    pub(crate) fn from_common(
        common: CommonOptions,
        path: PathBuf,
        password: Option<Secret>,
        send_chain: bool,
    ) -> Result<Self, Error> {
        ClientCertificateCredentialBuilder {
            common,
            settings: ClientCertificateSettings {
                source: Some(Source::Path(path)),
                password,
                send_chain,
            },
        }
        .build()
    }
}

/// The certificate signing now, for `Debug`.
struct Current(Arc<CertificateSource>);

impl fmt::Debug for Current {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.current().fmt(f)
    }
}

/// The largest certificate file accepted, in bytes.
pub(crate) const MAX_CERTIFICATE_FILE: u64 = 1024 * 1024;

/// The certificate a credential signs with: fixed bytes, or a file re-read when it changes.
#[derive(Debug)]
enum CertificateSource {
    Fixed(Certificate),
    File(CertificateFile),
}

struct CertificateFile {
    path: PathBuf,
    password: Option<Secret>,
    loaded: Mutex<Loaded>,
}

impl fmt::Debug for CertificateFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Loaded {
    stamp: Option<FileStamp>,
    certificate: Certificate,
}

impl CertificateFor for CertificateSource {
    fn for_request(&self) -> Certificate {
        self.reloaded()
    }
}

impl CertificateSource {
    fn current(&self) -> Certificate {
        match self {
            Self::Fixed(c) => c.clone(),
            Self::File(file) => file
                .loaded
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .certificate
                .clone(),
        }
    }

    /// The certificate to sign with now: the file's, reloaded first if it changed.
    fn reloaded(&self) -> Certificate {
        let Self::File(file) = self else {
            return self.current();
        };
        let stamp = FileStamp::of(&file.path);
        let loaded = file
            .loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if stamp.is_none() || stamp == loaded.stamp {
            // Unchanged, or momentarily absent while being replaced: keep the loaded one.
            return loaded.certificate;
        }
        // Parsing happens outside the lock; the stamp is taken before the read, so a change
        // during the read is seen again on the next request.
        let password = file.password.as_ref().map(Secret::secret);
        match read_certificate_file(&file.path)
            .and_then(|bytes| Certificate::load(NAME, &bytes, password))
        {
            Ok(certificate) => {
                tracing::info!(
                    credential = NAME,
                    path = %file.path.display(),
                    "the certificate file changed; signing with the new certificate"
                );
                let mut slot = file.loaded.lock().unwrap_or_else(PoisonError::into_inner);
                *slot = Loaded {
                    stamp,
                    certificate: certificate.clone(),
                };
                certificate
            }
            Err(error) => {
                tracing::warn!(
                    credential = NAME,
                    path = %file.path.display(),
                    error = %error.message(),
                    "the certificate file changed but cannot be used; still signing with the previous certificate"
                );
                loaded.certificate
            }
        }
    }
}

/// Reads a certificate file through the bounded, checked reader.
fn read_certificate_file(path: &Path) -> Result<Vec<u8>, Error> {
    identity_core::fs::read(path, &ReadOptions::configured(MAX_CERTIFICATE_FILE)).map_err(
        |e: FileError| {
            let hint = if e.is_not_found() {
                "check the path"
            } else {
                "it must be a readable regular file of at most 1 MiB"
            };
            Error::invalid_configuration(
                NAME,
                format!(
                    "cannot read the certificate file {}: {e}; {hint}",
                    path.display()
                ),
            )
            .with_source(e)
        },
    )
}

#[derive(Clone)]
enum Source {
    Path(PathBuf),
    Bytes(Arc<[u8]>),
}

/// Builds a [`ClientCertificateCredential`]: the shared setters of [`CredentialBuilder`], the
/// tenant and client ids (both required), and the certificate's.
pub type ClientCertificateCredentialBuilder = CredentialBuilder<ClientCertificateSettings>;

/// The settings only a [`ClientCertificateCredentialBuilder`] has.
#[derive(Clone, Default)]
pub struct ClientCertificateSettings {
    source: Option<Source>,
    password: Option<Secret>,
    send_chain: bool,
}

impl fmt::Debug for ClientCertificateSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Some(Source::Path(p)) => format!("path {}", p.display()),
            Some(Source::Bytes(b)) => format!("{} bytes", b.len()),
            None => "none".to_owned(),
        };
        f.debug_struct("ClientCertificateSettings")
            .field("certificate", &source)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("send_certificate_chain", &self.send_chain)
            .finish()
    }
}

impl Ids for ClientCertificateSettings {}

impl Named for ClientCertificate {
    type Settings = ClientCertificateSettings;
}

impl ClientCertificateCredentialBuilder {
    /// A PEM or PKCS#12 file holding the key and certificate (this or
    /// [`certificate`](Self::certificate) is required).
    pub fn certificate_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.settings.source = Some(Source::Path(path.into()));
        self
    }

    /// PEM or PKCS#12 bytes holding the key and certificate.
    pub fn certificate(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.settings.source = Some(Source::Bytes(bytes.into().into()));
        self
    }

    /// The password of a PKCS#12 file or of an encrypted PEM private key.
    pub fn password(mut self, password: impl Into<Secret>) -> Self {
        self.settings.password = Some(password.into());
        self
    }

    /// Whether to send the certificate chain (`x5c`) in each assertion, for subject name/issuer
    /// authentication (default `false`).
    pub fn send_certificate_chain(mut self, send: bool) -> Self {
        self.settings.send_chain = send;
        self
    }

    /// Reads the certificate and builds the credential.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidConfiguration`](identity_core::ErrorKind::InvalidConfiguration) when a
    /// setting is missing or invalid, the file cannot be read, the key is not RSA, no
    /// certificate matches the key, or the password is wrong or missing. Messages name the path,
    /// never the file's content or the password.
    pub fn build(mut self) -> Result<ClientCertificateCredential, Error> {
        let settings = self.settings;
        let password = settings.password.as_ref().map(Secret::secret);
        let certificate = match settings.source {
            Some(Source::Bytes(b)) => {
                CertificateSource::Fixed(Certificate::load(NAME, &b, password)?)
            }
            Some(Source::Path(path)) => {
                let stamp = FileStamp::of(&path);
                let bytes = read_certificate_file(&path)?;
                let certificate = Certificate::load(NAME, &bytes, password)?;
                CertificateSource::File(CertificateFile {
                    path,
                    password: settings.password.clone(),
                    loaded: Mutex::new(Loaded { stamp, certificate }),
                })
            }
            None => {
                return Err(Error::invalid_configuration(
                    NAME,
                    "a certificate is required; set certificate_path or certificate",
                ));
            }
        };
        let certificate = Arc::new(certificate);
        let client_id = self
            .common
            .client_id
            .clone()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let signer = Signer {
            name: NAME,
            certificate: certificate.clone(),
            client_id,
            send_chain: settings.send_chain,
        };
        self.common.resolve();
        let client = self.common.build(
            NAME,
            "client_certificate",
            ClientAuth::Assertion(Arc::new(signer)),
        )?;
        let client = client.with_detail("certificate", Arc::new(Current(certificate)));
        Ok(Credential::service_principal(client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use identity_core::{Env, ErrorKind};
    use identity_core::{TokenCredential, TokenRequestOptions};
    use wiremock::MockServer;

    fn builder(server: &MockServer) -> ClientCertificateCredentialBuilder {
        ClientCertificateCredential::builder()
            .certificate(CLIENT_PEM)
            .principal_at_loopback(server.uri())
    }

    #[tokio::test]
    async fn the_request_carries_a_verifiable_assertion_for_the_token_endpoint() {
        let server = MockServer::start().await;
        token_mock("t", "AT").expect(1).mount(&server).await;
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
        let header = jwt_segment(jwt, 0);
        assert_eq!(header["alg"], "PS256");
        assert!(header.get("x5c").is_none());
        let claims = jwt_segment(jwt, 1);
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
        let server = token_endpoint().await;
        let credential = builder(&server)
            .certificate(CLIENT_CHAIN_PEM)
            .send_certificate_chain(true)
            .build()
            .unwrap();
        let header = sent_assertion_header(&credential, &server).await;
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
                .runtime(
                    identity_core::Runtime::with_env(Env::empty()).http_client(test_http_client()),
                )
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
            .runtime(identity_core::Runtime::with_env(Env::empty()))
            .update_runtime(|r| r.http_client(test_http_client()));
        let credential = builder.clone().build().unwrap();
        for text in [format!("{builder:?}"), format!("{credential:?}")] {
            assert_no_key_material(&text);
        }
        assert!(format!("{credential:?}").contains("x5t#S256"));
    }

    #[tokio::test]
    async fn a_password_protected_pem_signs_requests() {
        let server = token_endpoint_expecting(2).await;
        for pem in [ENCRYPTED_PKCS8_PEM, ENCRYPTED_TRADITIONAL_PEM] {
            let credential = builder(&server)
                .certificate(pem)
                .password("planted-pem-password")
                .build()
                .unwrap();
            credential
                .get_token(&["s"], &TokenRequestOptions::default())
                .await
                .unwrap();
            assert_no_key_material(&format!("{credential:?}"));
        }
        let requests = server.received_requests().await.unwrap();
        let cert =
            crate::jwt::ClientCertificate::from_pem("X", CLIENT_PEM.as_bytes(), None).unwrap();
        let spki = spki_rsa_key(cert.leaf());
        for request in &requests {
            let jwt = &form_of(request)["client_assertion"];
            let (input, sig) = jwt.rsplit_once('.').unwrap();
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::RSA_PSS_2048_8192_SHA256,
                spki,
            )
            .verify(input.as_bytes(), &URL_SAFE_NO_PAD.decode(sig).unwrap())
            .unwrap();
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_device_or_huge_certificate_file_fails_the_build_at_once() {
        let dir = tempfile::tempdir().unwrap();
        for (file, expected) in unreadable_files(dir.path(), 1024 * 1024) {
            let started = std::time::Instant::now();
            let err = ClientCertificateCredential::builder()
                .tenant_id("t")
                .client_id("c")
                .certificate_path(&file)
                .runtime(
                    identity_core::Runtime::with_env(Env::empty()).http_client(test_http_client()),
                )
                .build()
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidConfiguration);
            assert!(err.message().contains(expected), "{err}");
            assert!(started.elapsed() < std::time::Duration::from_secs(20));
        }
    }

    /// Replaces `path` the way Key Vault's CSI driver and cert-manager do: write a new file
    /// beside it, then rename it over the old one.
    fn replace_file(path: &std::path::Path, content: &[u8]) {
        let staged = path.with_extension("staged");
        std::fs::write(&staged, content).unwrap();
        std::fs::rename(&staged, path).unwrap();
    }

    #[tokio::test]
    async fn a_rotated_certificate_file_is_used_without_a_gap() {
        let server = token_endpoint().await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sp.pem");
        std::fs::write(&file, CLIENT_PEM).unwrap();
        let credential = builder(&server)
            .certificate_path(&file)
            .password("planted-pem-password")
            .build()
            .unwrap();
        let old = crate::jwt::ClientCertificate::from_pem("X", CLIENT_PEM.as_bytes(), None)
            .unwrap()
            .thumbprint_sha256();
        let rotated = rotated_pem();
        let new = crate::jwt::ClientCertificate::from_pem("X", rotated.as_bytes(), None)
            .unwrap()
            .thumbprint_sha256();
        assert_ne!(old, new);
        // Each scope set misses the cache, so each call signs a new assertion.
        let mut scope = 0;
        let mut thumbprint_of_next_request = async |credential: &ClientCertificateCredential| {
            scope += 1;
            let scope = format!("https://s{scope}/.default");
            credential
                .get_token(&[&scope], &TokenRequestOptions::default())
                .await
                .unwrap();
            let requests = server.received_requests().await.unwrap();
            let jwt = form_of(requests.last().unwrap())["client_assertion"].clone();
            jwt_segment(&jwt, 0)["x5t#S256"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(thumbprint_of_next_request(&credential).await, old);
        // A half-written file, then a missing one, then garbage: the old key keeps working.
        std::fs::write(&file, &CLIENT_PEM[..CLIENT_PEM.len() / 2]).unwrap();
        assert_eq!(thumbprint_of_next_request(&credential).await, old);
        std::fs::remove_file(&file).unwrap();
        assert_eq!(thumbprint_of_next_request(&credential).await, old);
        replace_file(&file, b"not a certificate");
        assert_eq!(thumbprint_of_next_request(&credential).await, old);
        // The new certificate is swapped in: used at once.
        replace_file(&file, rotated.as_bytes());
        assert_eq!(thumbprint_of_next_request(&credential).await, new);
        assert_eq!(thumbprint_of_next_request(&credential).await, new);
        assert!(format!("{credential:?}").contains(&new));
        // And rotating back, to an encrypted key, works too.
        replace_file(&file, ENCRYPTED_TRADITIONAL_PEM.as_bytes());
        assert_eq!(thumbprint_of_next_request(&credential).await, old);
    }

    /// Another RSA key and its certificate: the TLS test server's.
    fn rotated_pem() -> String {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
        let cert = std::fs::read_to_string(format!("{dir}/server.pem")).unwrap();
        let key = std::fs::read_to_string(format!("{dir}/server.key")).unwrap();
        format!("{cert}{key}")
    }
}
