//! Shared test harness: an IMDS emulator on 127.0.0.1 (wiremock) and a sidecar in front of it,
//! built through the same option parsing and backend construction as the binary.
#![allow(dead_code, reason = "each test file uses a different part")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test harness: a panic is a test failure"
)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use identity_core::Env;
use identity_sidecar::{Metrics, ServerConfig, Sidecar, cli};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The caller secret the tests use.
pub(crate) const PLANTED_HEADER: &str = "planted-identity-header-5ec7e7-value";
/// Every upstream token starts with this, so a log scan can look for it.
pub(crate) const PLANTED_TOKEN: &str = "planted-upstream-token-7a1e";

/// Answers like IMDS: a token naming the resource and client id, living `lifetime`.
pub(crate) struct ImdsToken {
    pub(crate) lifetime: Duration,
}

impl Respond for ImdsToken {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let query: Vec<(String, String)> = request
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let get = |k: &str| {
            query
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let expires = identity_core::system_clock()
            .now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + self.lifetime.as_secs();
        let resource = get("resource");
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": format!("{PLANTED_TOKEN}.{resource}.{}", get("client_id")),
            "expires_in": self.lifetime.as_secs().to_string(),
            "expires_on": expires.to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": "imds-client-id",
        }))
    }
}

/// An IMDS emulator whose tokens live one hour.
pub(crate) async fn imds() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/metadata/identity/oauth2/token"))
        .respond_with(ImdsToken {
            lifetime: Duration::from_secs(3600),
        })
        .mount(&server)
        .await;
    server
}

/// The IMDS token URL of `server`.
pub(crate) fn imds_url(server: &MockServer) -> String {
    format!("{}/metadata/identity/oauth2/token", server.uri())
}

/// A sidecar in front of `imds_url` (managed identity, through the binary's option parsing),
/// with the planted secret and `extra` flags.
pub(crate) async fn sidecar(imds_url: &str, extra: &[&str]) -> Sidecar {
    let mut args = vec![
        "--secret-file".to_owned(),
        "/unused".to_owned(),
        "--imds-endpoint".to_owned(),
        imds_url.to_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let options = cli::parse(args, &Env::empty()).unwrap().unwrap();
    let metrics = Arc::new(Metrics::default());
    let (backend, guards) = options
        .backend(&Env::empty(), &identity_core::system_clock(), &metrics)
        .unwrap();
    let mut config = ServerConfig::new(PLANTED_HEADER.into());
    config.limits = options.limits;
    Sidecar::start(config, backend, guards, metrics)
        .await
        .unwrap()
}

/// Sends `raw` (a whole HTTP/1.1 request) and reads the answer until the server closes.
pub(crate) async fn raw(addr: std::net::SocketAddr, raw: &[u8]) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(raw).await.unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .unwrap()
}

/// A GET of `target` with the given secret header, `Connection: close`.
pub(crate) fn get(target: &str, secret: Option<&str>) -> Vec<u8> {
    let header = secret
        .map(|s| format!("X-IDENTITY-HEADER: {s}\r\n"))
        .unwrap_or_default();
    format!("GET {target} HTTP/1.1\r\nhost: 127.0.0.1\r\n{header}connection: close\r\n\r\n")
        .into_bytes()
}

/// The token request target for `resource` (already encoded).
pub(crate) fn token_target(resource: &str) -> String {
    format!("/msi/token?api-version=2019-08-01&resource={resource}")
}
