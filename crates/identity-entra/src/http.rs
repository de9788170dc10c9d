//! [`ReqwestClient`]: the HTTPS [`HttpClient`] used by every credential in this crate.
//!
//! * TLS is rustls with the `ring` provider, configured here and handed to reqwest with
//!   `use_preconfigured_tls` (reqwest's own default provider, aws-lc, needs a C toolchain).
//! * Trust: the platform certificate store (`rustls-native-certs`) plus the PEM certificates
//!   named by `SSL_CERT_FILE` (a file) and `SSL_CERT_DIR` (directories separated by `:`),
//!   read from the injected [`Env`] through [`identity_core::fs::read`] (links followed; a
//!   regular file of at most 4 MiB, so a FIFO or device fails at once; such directory entries
//!   are skipped). A named file or directory that cannot be read, or that
//!   holds no certificate, fails the build: a CA bundle the user configured must not be
//!   ignored silently. Note that `rustls-native-certs` also reads those two variables from the
//!   *process* environment when it loads the platform store.
//! * Proxies come from the injected [`Env`] only (reqwest's own lookup is turned off):
//!   `HTTPS_PROXY`/`https_proxy` for `https` URLs, `HTTP_PROXY`/`http_proxy` for `http` URLs
//!   (the upper-case name wins), and `ALL_PROXY`/`all_proxy` for a scheme whose own variable
//!   is not set (an `http` or `https` proxy; a SOCKS URL is a configuration error), with
//!   `NO_PROXY`/`no_proxy` exclusions. `HTTP_PROXY` is
//!   ignored when `REQUEST_METHOD` is set (a CGI process, where it can come from a request
//!   header: "httpoxy").
//! * Redirects are never followed: a token endpoint that redirects is misconfigured, and
//!   following would resend the form (with its secret) to another host.
//! * Errors never carry the URL query or headers: reqwest errors are stripped of their URL
//!   and the pipeline prints only scheme, host and path.
//!
//! [`ReqwestClient::shared`] is built once per process from the process environment.
//! `SendOptions::connect_timeout` is not honoured per request (reqwest sets connect timeouts
//! per client); the pipeline's per-attempt timeout bounds every request.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use identity_core::http::{Body, BoxError, CertificateRejected, HttpClient, Request, SendOptions};
use identity_core::{BoxFuture, Env, Error};
use rustls_pki_types::CertificateDer;

mod files;

pub(crate) use files::{FileStamp, parse_pem_certs, read_ca_file};
use files::{add_root, read_pem_dir, read_pem_file};

const NAME: &str = "ReqwestClient";

/// A PEM file of extra trusted CA certificates.
pub const SSL_CERT_FILE: &str = "SSL_CERT_FILE";
/// Directories (separated by `:`) of extra trusted CA certificates in PEM files.
pub const SSL_CERT_DIR: &str = "SSL_CERT_DIR";
const HTTPS_PROXY: [&str; 2] = ["HTTPS_PROXY", "https_proxy"];
const HTTP_PROXY: [&str; 2] = ["HTTP_PROXY", "http_proxy"];
const NO_PROXY: [&str; 2] = ["NO_PROXY", "no_proxy"];
const ALL_PROXY: [&str; 2] = ["ALL_PROXY", "all_proxy"];
const REQUEST_METHOD: &str = "REQUEST_METHOD";

/// An HTTPS client on reqwest and rustls (ring). See the [module docs](self).
///
/// ```no_run
/// # fn demo() -> Result<(), identity_chain::Error> {
/// use identity_chain::Env;
/// use identity_chain::ReqwestClient;
/// let client = ReqwestClient::builder()
///     .env(Env::from_pairs([("HTTPS_PROXY", "http://proxy.contoso.com:3128")]))
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ReqwestClient {
    client: reqwest::Client,
    summary: Arc<str>,
}

impl fmt::Debug for ReqwestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The summary names the trust and proxy sources, never a proxy URL (it may carry
        // credentials).
        f.debug_struct("ReqwestClient")
            .field("config", &&*self.summary)
            .finish()
    }
}

impl ReqwestClient {
    /// A builder.
    pub fn builder() -> ReqwestClientBuilder {
        ReqwestClientBuilder::default()
    }

    /// The process-wide client, built on first use from the process environment.
    ///
    /// # Errors
    /// The build error (e.g. an unreadable `SSL_CERT_FILE`), the same on every call.
    pub fn shared() -> Result<Arc<dyn HttpClient>, Error> {
        static SHARED: OnceLock<Result<Arc<dyn HttpClient>, Error>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                ReqwestClient::builder()
                    .env(Env::from_process())
                    .build()
                    .map(|c| Arc::new(c) as Arc<dyn HttpClient>)
            })
            .clone()
    }

    /// Wraps an already configured reqwest client (the identity-binding transport builds its
    /// own TLS settings).
    pub(crate) fn from_reqwest(client: reqwest::Client, summary: &str) -> Self {
        Self {
            client,
            summary: summary.into(),
        }
    }

    pub(crate) async fn send(&self, request: Request) -> Result<http::Response<Body>, BoxError> {
        let request = reqwest::Request::try_from(request)
            .map_err(|e| Box::new(e.without_url()) as BoxError)?;
        let response = self.client.execute(request).await.map_err(|e| {
            // A certificate that fails verification is said so at the top and not retried.
            match refused_certificate(&e) {
                Some(refused) => Box::new(refused) as BoxError,
                None => Box::new(e.without_url()) as BoxError,
            }
        })?;
        let response: http::Response<reqwest::Body> = response.into();
        Ok(response.map(|body| Body::new(StrippedBody(body))))
    }
}

impl HttpClient for ReqwestClient {
    fn execute(
        &self,
        request: Request,
        _options: SendOptions,
    ) -> BoxFuture<'_, Result<http::Response<Body>, BoxError>> {
        Box::pin(self.send(request))
    }
}

/// The server certificate's verification failure in `error`'s chain (rustls's
/// `InvalidCertificate`, looked for inside `std::io::Error`s too), as the pipeline's
/// [`CertificateRejected`]: an untrusted issuer, a certificate for another host name, an
/// expired one.
fn refused_certificate(error: &(dyn std::error::Error + 'static)) -> Option<CertificateRejected> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(rustls::Error::InvalidCertificate(why)) = e.downcast_ref::<rustls::Error>() {
            use rustls::CertificateError as C;
            let reason = match why {
                C::UnknownIssuer => "the server certificate's issuer is not trusted by this client (its CA is not among the configured roots)".to_owned(),
                C::NotValidForName | C::NotValidForNameContext { .. } => "the server certificate is not valid for the host name; check the authority host (or the proxy in between)".to_owned(),
                C::Expired | C::ExpiredContext { .. } => "the server certificate has expired".to_owned(),
                other => format!("the server certificate failed verification ({other:?})"),
            };
            return Some(CertificateRejected::new(reason));
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            if let Some(found) = refused_certificate(inner) {
                return Some(found);
            }
        }
        next = e.source();
    }
    None
}

/// A response body whose errors are stripped of the URL.
struct StrippedBody(reqwest::Body);

impl http_body::Body for StrippedBody {
    type Data = bytes::Bytes;
    type Error = reqwest::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.0)
            .poll_frame(cx)
            .map(|frame| frame.map(|r| r.map_err(reqwest::Error::without_url)))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0.size_hint()
    }
}

/// Builds a [`ReqwestClient`].
#[derive(Clone, Debug)]
pub struct ReqwestClientBuilder {
    env: Env,
    native_roots: bool,
    extra_roots: Vec<CertificateDer<'static>>,
    connect_timeout: Duration,
}

impl Default for ReqwestClientBuilder {
    fn default() -> Self {
        Self {
            env: Env::from_process(),
            native_roots: true,
            extra_roots: Vec::new(),
            connect_timeout: Duration::from_secs(30),
        }
    }
}

impl ReqwestClientBuilder {
    /// The environment to read `SSL_CERT_FILE`, `SSL_CERT_DIR` and the proxy variables from
    /// (default: the process environment when the builder was made).
    #[must_use]
    pub fn env(mut self, env: Env) -> Self {
        self.env = env;
        self
    }

    /// Whether to trust the platform certificate store (default `true`). Tests that trust only
    /// their own CA turn it off.
    #[must_use]
    pub fn native_roots(mut self, yes: bool) -> Self {
        self.native_roots = yes;
        self
    }

    /// Trusts the certificates in `pem` (one or more PEM `CERTIFICATE` blocks) in addition to
    /// the others.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidConfiguration`](identity_core::ErrorKind::InvalidConfiguration) when
    /// `pem` holds no certificate.
    pub fn add_root_certificates_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        let certs = parse_pem_certs(pem);
        if certs.is_empty() {
            return Err(Error::invalid_configuration(
                NAME,
                "the given PEM data holds no certificate",
            ));
        }
        self.extra_roots.extend(certs);
        Ok(self)
    }

    /// How long establishing a connection (TCP, proxy tunnel, TLS) may take (default 30 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidConfiguration`](identity_core::ErrorKind::InvalidConfiguration) for an
    /// unreadable or empty `SSL_CERT_FILE`/`SSL_CERT_DIR`, an invalid proxy URL, or when no
    /// trusted certificate is configured at all.
    pub fn build(self) -> Result<ReqwestClient, Error> {
        let mut roots = rustls::RootCertStore::empty();
        let mut sources = Vec::new();
        if self.native_roots {
            let loaded = rustls_native_certs::load_native_certs();
            for error in &loaded.errors {
                tracing::debug!(%error, "skipping part of the platform certificate store");
            }
            let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
            if added > 0 {
                sources.push("platform store");
            }
        }
        for cert in self.extra_roots {
            add_root(&mut roots, cert, "the given PEM data")?;
        }
        if let Some(file) = self.env.non_blank(SSL_CERT_FILE) {
            let certs = read_pem_file(Path::new(file), SSL_CERT_FILE)?;
            for cert in certs {
                add_root(&mut roots, cert, SSL_CERT_FILE)?;
            }
            sources.push(SSL_CERT_FILE);
        }
        if let Some(dirs) = self.env.non_blank(SSL_CERT_DIR) {
            for dir in dirs.split(':').filter(|d| !d.trim().is_empty()) {
                for cert in read_pem_dir(Path::new(dir))? {
                    add_root(&mut roots, cert, SSL_CERT_DIR)?;
                }
            }
            sources.push(SSL_CERT_DIR);
        }
        if roots.is_empty() {
            return Err(Error::invalid_configuration(
                NAME,
                "no trusted CA certificate found: the platform certificate store is empty or disabled; \
                 install ca-certificates or name a PEM bundle in SSL_CERT_FILE",
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| {
                Error::invalid_configuration(NAME, "the TLS configuration is invalid")
                    .with_source(e)
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();

        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.connect_timeout)
            .no_proxy();
        let no_proxy = first(&self.env, &NO_PROXY).and_then(reqwest::NoProxy::from_string);
        let mut proxies = Vec::new();
        let all_proxy = first(&self.env, &ALL_PROXY);
        // `ALL_PROXY` stands in for a scheme's own variable when that is not set, as in curl.
        let https_proxy = match first(&self.env, &HTTPS_PROXY) {
            Some(url) => Some((url, "HTTPS_PROXY")),
            None => all_proxy.map(|url| (url, "ALL_PROXY")),
        };
        if let Some((url, variable)) = https_proxy {
            let proxy = reqwest::Proxy::https(checked_proxy_url(url, variable)?)
                .map_err(|_| invalid_proxy(variable))?;
            builder = builder.proxy(proxy.no_proxy(no_proxy.clone()));
            proxies.push(variable);
        }
        let cgi = self.env.is_present(REQUEST_METHOD);
        let http_proxy = if cgi {
            self.env.non_blank("http_proxy")
        } else {
            first(&self.env, &HTTP_PROXY)
        };
        let http_proxy = match http_proxy {
            Some(url) => Some((url, "HTTP_PROXY")),
            None => all_proxy.map(|url| (url, "ALL_PROXY")),
        };
        if let Some((url, variable)) = http_proxy {
            let proxy = reqwest::Proxy::http(checked_proxy_url(url, variable)?)
                .map_err(|_| invalid_proxy(variable))?;
            builder = builder.proxy(proxy.no_proxy(no_proxy));
            if !proxies.contains(&variable) {
                proxies.push(variable);
            }
        }
        let client = builder.build().map_err(|e| {
            Error::invalid_configuration(NAME, "building the HTTP client failed")
                .with_source(e.without_url())
        })?;
        let summary = format!("trust: {}; proxies: {}", list(&sources), list(&proxies));
        Ok(ReqwestClient {
            client,
            summary: summary.into(),
        })
    }
}

fn invalid_proxy(variable: &str) -> Error {
    Error::invalid_configuration(NAME, format!("{variable} is not a valid proxy URL"))
}

/// The proxy URL if its scheme is one reqwest speaks here (`http`, `https`, or none); SOCKS
/// proxies (common in `ALL_PROXY`) are refused with a clear message rather than ignored.
fn checked_proxy_url<'u>(url: &'u str, variable: &str) -> Result<&'u str, Error> {
    let scheme = url
        .split_once("://")
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    match scheme.as_deref() {
        None | Some("http" | "https") => Ok(url),
        Some(s) if s.starts_with("socks") => Err(Error::invalid_configuration(
            NAME,
            format!(
                "{variable} names a SOCKS proxy, which is not supported; use an HTTP proxy, or set \
                 HTTPS_PROXY to one"
            ),
        )),
        Some(_) => Err(invalid_proxy(variable)),
    }
}

fn list(items: &[&str]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

fn first<'e>(env: &'e Env, names: &[&str]) -> Option<&'e str> {
    names.iter().find_map(|n| env.non_blank(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use identity_core::ErrorKind;

    #[test]
    fn an_unreadable_ssl_cert_file_fails_the_build_naming_the_variable() {
        let err = ReqwestClient::builder()
            .env(Env::from_pairs([(SSL_CERT_FILE, "/nonexistent/ca.pem")]))
            .native_roots(false)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfiguration);
        assert!(err.message().contains("SSL_CERT_FILE"), "{err}");
    }

    #[test]
    fn no_trusted_certificate_at_all_is_a_configuration_error() {
        let err = ReqwestClient::builder()
            .env(Env::empty())
            .native_roots(false)
            .build()
            .unwrap_err();
        assert!(err.message().contains("SSL_CERT_FILE"), "{err}");
    }

    #[test]
    fn debug_never_prints_a_proxy_url() {
        let client = ReqwestClient::builder()
            .env(Env::from_pairs([(
                "HTTPS_PROXY",
                "http://user:planted-proxy-password@127.0.0.1:3128",
            )]))
            .add_root_certificates_pem(crate::test_support::CA_PEM.as_bytes())
            .unwrap()
            .native_roots(false)
            .build()
            .unwrap();
        let text = format!("{client:?}");
        assert!(!text.contains("planted"), "{text}");
        assert!(text.contains("HTTPS_PROXY"), "{text}");
    }
}
