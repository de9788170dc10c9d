//! The AKS identity-binding token proxy for [`WorkloadIdentityCredential`](crate::WorkloadIdentityCredential)
//! (`docs/protocol.md` §2.7), opt-in through
//! [`enable_kubernetes_token_proxy`](crate::WorkloadIdentityCredentialBuilder::enable_kubernetes_token_proxy).
//!
//! With identity binding, AKS puts a token proxy in the cluster and tells the pod where it is:
//!
//! | variable | meaning |
//! |---|---|
//! | `AZURE_KUBERNETES_TOKEN_PROXY` | the proxy's base URL: `https`, no user information, query or fragment |
//! | `AZURE_KUBERNETES_SNI_NAME` | the TLS server name to send and to verify the proxy's certificate against (default: the proxy's host) |
//! | `AZURE_KUBERNETES_CA_FILE` | a PEM file of the CA certificates that sign the proxy's certificate; re-read when it changes |
//! | `AZURE_KUBERNETES_CA_DATA` | the same PEM, inline (at most one of the two; with neither, the platform store) |
//!
//! The token request that would go to `https://<authority>/<tenant>/oauth2/v2.0/token` goes to
//! `{proxy}/<tenant>/oauth2/v2.0/token` instead (the proxy's path, then the request's path and
//! query), with the same form, the proxy's `Host`, and TLS that trusts only that CA and sends
//! and verifies that server name (the connection goes to the proxy's address). Proxies from
//! `HTTPS_PROXY` are not used for it, and redirects are not followed.
//!
//! Before each request (the token cache makes them rare) the CA file's modification time,
//! length and inode are compared with the loaded one's; a changed file is read again (through
//! [`identity_core::fs::read`]: a regular file of at most 4 MiB) and a new TLS client is built
//! from it. A file that is missing, unreadable or holds no certificate leaves the previous CA
//! in use, with a warning traced: the proxy keeps working through a rotation.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use identity_core::http::{Body, BoxError, HttpClient, Request, SendOptions};
use identity_core::{BoxFuture, Env, Error};
use rustls_pki_types::CertificateDer;

use crate::http::{FileStamp, ReqwestClient, parse_pem_certs, read_ca_file};

/// The token proxy's base URL.
pub const AZURE_KUBERNETES_TOKEN_PROXY: &str = "AZURE_KUBERNETES_TOKEN_PROXY";
/// The TLS server name of the token proxy.
pub const AZURE_KUBERNETES_SNI_NAME: &str = "AZURE_KUBERNETES_SNI_NAME";
/// A PEM file of the CA certificates that sign the token proxy's certificate.
pub const AZURE_KUBERNETES_CA_FILE: &str = "AZURE_KUBERNETES_CA_FILE";
/// The same CA certificates, as inline PEM.
pub const AZURE_KUBERNETES_CA_DATA: &str = "AZURE_KUBERNETES_CA_DATA";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the proxy's CA certificates come from.
#[derive(Clone)]
enum CaSource {
    File(PathBuf),
    Data(Arc<[u8]>),
    Platform,
}

impl fmt::Debug for CaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(p) => f.debug_tuple("File").field(p).finish(),
            Self::Data(d) => write!(f, "Data({} bytes)", d.len()),
            Self::Platform => f.write_str("Platform"),
        }
    }
}

/// Reads the identity-binding variables. `Ok(None)` when `AZURE_KUBERNETES_TOKEN_PROXY` is not
/// set (and neither are the others).
pub(crate) fn from_env(name: &'static str, env: &Env) -> Result<Option<TokenProxyClient>, Error> {
    let proxy = env.non_blank(AZURE_KUBERNETES_TOKEN_PROXY);
    let sni = env.non_blank(AZURE_KUBERNETES_SNI_NAME);
    let ca_file = env.non_blank(AZURE_KUBERNETES_CA_FILE);
    let ca_data = env.non_blank(AZURE_KUBERNETES_CA_DATA);
    let Some(proxy) = proxy else {
        if sni.is_some() || ca_file.is_some() || ca_data.is_some() {
            return Err(Error::invalid_configuration(
                name,
                "AZURE_KUBERNETES_SNI_NAME, AZURE_KUBERNETES_CA_FILE or AZURE_KUBERNETES_CA_DATA is set without \
                 AZURE_KUBERNETES_TOKEN_PROXY; set the proxy URL or unset them",
            ));
        }
        return Ok(None);
    };
    let ca = match (ca_file, ca_data) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid_configuration(
                name,
                "both AZURE_KUBERNETES_CA_FILE and AZURE_KUBERNETES_CA_DATA are set; set only one",
            ));
        }
        (Some(file), None) => CaSource::File(PathBuf::from(file)),
        (None, Some(data)) => CaSource::Data(data.as_bytes().into()),
        (None, None) => CaSource::Platform,
    };
    TokenProxyClient::new(name, proxy, sni, ca).map(Some)
}

/// The parts of the proxy URL.
#[derive(Clone, Debug)]
struct ProxyUrl {
    /// `host[:port]` as given: the `Host` header.
    authority: String,
    /// The host to connect to, without IPv6 brackets.
    host: String,
    port: u16,
    /// The path prefix, without a trailing `/`.
    path: String,
}

fn parse_proxy(name: &'static str, raw: &str) -> Result<ProxyUrl, Error> {
    // An absolute `https` URL without user information or fragment.
    let uri = crate::federated::endpoint(name, AZURE_KUBERNETES_TOKEN_PROXY, raw, false)?;
    let invalid = |why: &str| {
        Error::invalid_configuration(
            name,
            format!("{AZURE_KUBERNETES_TOKEN_PROXY} is not usable: {why}"),
        )
    };
    let authority = uri.authority().ok_or_else(|| invalid("it has no host"))?;
    if uri.query().is_some() {
        return Err(invalid("it must not contain a query"));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if host.is_empty() {
        return Err(invalid("it has no host"));
    }
    Ok(ProxyUrl {
        authority: authority.as_str().to_owned(),
        host,
        port: authority.port_u16().unwrap_or(443),
        path: uri.path().trim_end_matches('/').to_owned(),
    })
}

/// The HTTP client of a workload identity credential that uses the token proxy: it re-roots
/// every request under the proxy URL and sends it over TLS that trusts the proxy's CA and
/// names the proxy's server name.
pub(crate) struct TokenProxyClient {
    proxy: ProxyUrl,
    /// The TLS server name (`AZURE_KUBERNETES_SNI_NAME`, else the proxy's host).
    sni: String,
    ca: CaSource,
    state: Mutex<State>,
}

#[derive(Clone)]
struct State {
    stamp: Option<FileStamp>,
    client: Arc<ReqwestClient>,
}

impl fmt::Debug for TokenProxyClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenProxyClient")
            .field("proxy", &self.proxy.authority)
            .field("sni", &self.sni)
            .field("ca", &self.ca)
            .finish()
    }
}

impl TokenProxyClient {
    fn new(
        name: &'static str,
        proxy: &str,
        sni: Option<&str>,
        ca: CaSource,
    ) -> Result<Self, Error> {
        let proxy = parse_proxy(name, proxy)?;
        let sni = sni.map_or_else(|| proxy.host.clone(), |s| s.trim().to_owned());
        if rustls_pki_types::ServerName::try_from(sni.clone()).is_err() {
            return Err(Error::invalid_configuration(
                name,
                "AZURE_KUBERNETES_SNI_NAME is not a valid server name",
            ));
        }
        let (stamp, roots) = match &ca {
            CaSource::File(path) => {
                let stamp = FileStamp::of(path);
                let certs = read_ca(path).map_err(|why| {
                    Error::invalid_configuration(
                        name,
                        format!("{AZURE_KUBERNETES_CA_FILE} names {}: {why}", path.display()),
                    )
                })?;
                (stamp, Some(certs))
            }
            CaSource::Data(data) => {
                let certs = parse_pem_certs(data);
                if certs.is_empty() {
                    return Err(Error::invalid_configuration(
                        name,
                        "AZURE_KUBERNETES_CA_DATA holds no PEM certificate",
                    ));
                }
                (None, Some(certs))
            }
            CaSource::Platform => (None, None),
        };
        let client = build_client(&proxy, roots).map_err(|why| {
            Error::invalid_configuration(
                name,
                format!("the token proxy's TLS client cannot be built: {why}"),
            )
        })?;
        Ok(Self {
            proxy,
            sni,
            ca,
            state: Mutex::new(State {
                stamp,
                client: Arc::new(client),
            }),
        })
    }

    /// The client to send with: rebuilt first when the CA file changed and still parses.
    fn current(&self) -> Arc<ReqwestClient> {
        let state = self
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let CaSource::File(path) = &self.ca else {
            return state.client;
        };
        let stamp = FileStamp::of(path);
        if stamp.is_none() || stamp == state.stamp {
            return state.client;
        }
        match read_ca(path).and_then(|certs| build_client(&self.proxy, Some(certs))) {
            Ok(client) => {
                tracing::info!(path = %path.display(), "the token proxy's CA file changed; trusting the new CA");
                let client = Arc::new(client);
                *self.state.lock().unwrap_or_else(PoisonError::into_inner) = State {
                    stamp,
                    client: client.clone(),
                };
                client
            }
            Err(why) => {
                tracing::warn!(
                    path = %path.display(),
                    %why,
                    "the token proxy's CA file changed but cannot be used; still trusting the previous CA"
                );
                state.client
            }
        }
    }

    /// `request` re-rooted under the proxy: `https://<sni>:<port><proxy path><path>?<query>`,
    /// with the proxy's `Host`.
    fn reroot(&self, mut request: Request) -> Result<Request, BoxError> {
        let original = request.uri();
        let path_and_query = original
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str);
        let host = if self.sni.contains(':') {
            format!("[{}]", self.sni)
        } else {
            self.sni.clone()
        };
        let uri: http::Uri = format!(
            "https://{host}:{}{}{path_and_query}",
            self.proxy.port, self.proxy.path
        )
        .parse()?;
        *request.uri_mut() = uri;
        request.headers_mut().insert(
            http::header::HOST,
            http::HeaderValue::from_str(&self.proxy.authority)?,
        );
        Ok(request)
    }
}

impl HttpClient for TokenProxyClient {
    fn execute(
        &self,
        request: Request,
        _options: SendOptions,
    ) -> BoxFuture<'_, Result<http::Response<Body>, BoxError>> {
        let client = self.current();
        let request = self.reroot(request);
        Box::pin(async move { client.send(request?).await })
    }
}

/// Reads and parses a CA file; the error says why, without the content.
fn read_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read_ca_file(path).map_err(|e| e.to_string())?;
    let certs = parse_pem_certs(&bytes);
    if certs.is_empty() {
        return Err("the file holds no PEM certificate".to_owned());
    }
    Ok(certs)
}

/// A reqwest client trusting `roots` (else the platform store), resolving every name to the
/// proxy's address, without proxies or redirects.
fn build_client(
    proxy: &ProxyUrl,
    roots: Option<Vec<CertificateDer<'static>>>,
) -> Result<ReqwestClient, String> {
    let mut store = rustls::RootCertStore::empty();
    match roots {
        Some(certs) => {
            for cert in certs {
                store
                    .add(cert)
                    .map_err(|_| "a certificate is not a valid CA certificate".to_owned())?;
            }
        }
        None => {
            let loaded = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(loaded.certs);
        }
    }
    if store.is_empty() {
        return Err("no trusted CA certificate".to_owned());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| "the TLS configuration is invalid".to_owned())?
        .with_root_certificates(store)
        .with_no_client_auth();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .no_proxy()
        .dns_resolver(Arc::new(ProxyResolver {
            host: proxy.host.clone(),
            port: proxy.port,
        }))
        .build()
        .map_err(|_| "building the HTTP client failed".to_owned())?;
    Ok(ReqwestClient::from_reqwest(
        client,
        "trust: the token proxy's CA; proxies: none",
    ))
}

/// Resolves every name (the server name) to the proxy's addresses.
struct ProxyResolver {
    host: String,
    port: u16,
}

impl reqwest::dns::Resolve for ProxyResolver {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let target = (self.host.clone(), self.port);
        Box::pin(async move {
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host(target).await?.collect();
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_url_must_be_plain_https() {
        for (raw, why) in [
            ("http://10.0.0.1:8443", "https"),
            ("https://user:planted@10.0.0.1", "user information"),
            ("https://10.0.0.1/p?x=1", "query"),
            ("https://10.0.0.1/p#f", "fragment"),
            ("not a url", "valid URL"),
        ] {
            let err = parse_proxy("X", raw).unwrap_err();
            assert!(err.message().contains(why), "{raw}: {err}");
            assert!(!err.message().contains("planted"), "{err}");
        }
        let ok = parse_proxy("X", "https://[::1]:8443/prefix/").unwrap();
        assert_eq!(
            (ok.host.as_str(), ok.port, ok.path.as_str()),
            ("::1", 8443, "/prefix")
        );
        assert_eq!(ok.authority, "[::1]:8443");
        let ok = parse_proxy("X", "https://proxy.kube-system").unwrap();
        assert_eq!((ok.port, ok.path.as_str()), (443, ""));
    }

    #[test]
    fn the_variables_must_come_together() {
        let env = |pairs: &[(&str, &str)]| Env::from_pairs(pairs.iter().copied());
        assert!(from_env("X", &env(&[])).unwrap().is_none());
        let err = from_env("X", &env(&[(AZURE_KUBERNETES_SNI_NAME, "s")])).unwrap_err();
        assert!(
            err.message()
                .contains("without AZURE_KUBERNETES_TOKEN_PROXY"),
            "{err}"
        );
        let err = from_env(
            "X",
            &env(&[
                (AZURE_KUBERNETES_TOKEN_PROXY, "https://10.0.0.1"),
                (AZURE_KUBERNETES_CA_FILE, "/ca.pem"),
                (AZURE_KUBERNETES_CA_DATA, "-----BEGIN CERTIFICATE-----"),
            ]),
        )
        .unwrap_err();
        assert!(err.message().contains("set only one"), "{err}");
        let err = from_env(
            "X",
            &env(&[
                (AZURE_KUBERNETES_TOKEN_PROXY, "https://10.0.0.1"),
                (AZURE_KUBERNETES_CA_DATA, "no certificate here"),
            ]),
        )
        .unwrap_err();
        assert!(err.message().contains("holds no PEM certificate"), "{err}");
        let err = from_env(
            "X",
            &env(&[
                (AZURE_KUBERNETES_TOKEN_PROXY, "https://10.0.0.1"),
                (AZURE_KUBERNETES_CA_FILE, "/dev/zero"),
            ]),
        )
        .unwrap_err();
        assert!(err.message().contains("not a regular file"), "{err}");
    }
}
