//! A local managed-identity endpoint speaking the App Service protocol (API 2019-08-01).
//!
//! **It issues unsigned development tokens.** Only emulators that skip signature checks,
//! such as Azurite with `--oauth basic`, accept them; Azure never does. It exists so the
//! blob demo can run the real credential code path (`IDENTITY_ENDPOINT` and
//! `IDENTITY_HEADER`, exactly as App Service sets them) on a laptop or in CI.
//!
//! Protocol (spec §2.2):
//! * `GET <path>?api-version=2019-08-01&resource=<R>[&client_id=…|&mi_res_id=…|&object_id=…]`
//!   with header `X-IDENTITY-HEADER: <secret>`.
//! * Missing or wrong secret: 401 with a JSON error. Wrong or missing `api-version`, missing
//!   `resource`, more than one identity selector, or a selector App Service does not define
//!   (`msi_res_id`, `resource_id`, `clientid`): 400
//!   `{"statusCode":400,"message":"…","correlationId":"…"}`. Unknown path: 404. Other
//!   methods: 405.
//! * Success: `{"access_token","expires_on" (string epoch),"resource","token_type":"Bearer","client_id"}`.
//!
//! Token claims: `aud` = the requested resource (or the configured override, for negative
//! tests), `iss` = `https://sts.windows.net/<tenant>/`, `nbf`/`iat` = now, `exp` = now +
//! lifetime, `oid`/`sub` = a GUID fixed for the system-assigned identity and derived from the
//! selector for user-assigned ones, `tid`, `appid`/`azp` = the identity's client id,
//! `idtyp` = `app`.
//!
//! The server is a small hand-written HTTP/1.1 loop on tokio: one request per connection
//! (`Connection: close`), a 16 KiB cap on the request head and a 10 s read timeout, which is
//! all a token client needs and keeps hyper's server half out of the dependency tree.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use identity_core::{Clock, Env, Secret};
use serde_json::{Map, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::jwt;

/// The only API version App Service's identity endpoint speaks here.
pub const API_VERSION: &str = "2019-08-01";
/// The header that carries the endpoint's secret.
pub const SECRET_HEADER: &str = "x-identity-header";
/// The tenant used when none is configured (a fixed, obviously fake GUID).
pub const DEFAULT_TENANT: &str = "00000000-0000-4000-8000-00000000de71";
/// The object id of the system-assigned development identity.
pub const SYSTEM_ASSIGNED_OBJECT_ID: &str = "5ce7c0de-0000-4000-8000-000000000001";
/// The client id of the system-assigned development identity.
pub const SYSTEM_ASSIGNED_CLIENT_ID: &str = "5ce7c0de-0000-4000-8000-000000000002";
/// The default path of the token endpoint.
pub const DEFAULT_PATH: &str = "/msi/token";

const MAX_HEAD: usize = 16 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How the local endpoint behaves.
#[derive(Clone)]
pub struct LocalMsiConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// The value clients must send in `X-IDENTITY-HEADER`.
    pub secret: Secret,
    /// The tenant named in `iss` and `tid`.
    pub tenant: String,
    /// Issue tokens for this audience instead of the requested resource (negative tests).
    pub audience_override: Option<String>,
    /// Token lifetime.
    pub lifetime: Duration,
    /// Path of the token endpoint.
    pub path: String,
    /// Source of "now" for `iat`, `nbf`, `exp`.
    pub clock: Arc<dyn Clock>,
}

impl LocalMsiConfig {
    /// Defaults: a free port, the given secret, [`DEFAULT_TENANT`], one-hour tokens,
    /// [`DEFAULT_PATH`] and the system clock.
    pub fn new(secret: impl Into<Secret>) -> Self {
        Self {
            port: 0,
            secret: secret.into(),
            tenant: DEFAULT_TENANT.to_owned(),
            audience_override: None,
            lifetime: Duration::from_secs(3600),
            path: DEFAULT_PATH.to_owned(),
            clock: identity_core::system_clock(),
        }
    }
}

impl fmt::Debug for LocalMsiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalMsiConfig")
            .field("port", &self.port)
            .field("secret", &self.secret)
            .field("tenant", &self.tenant)
            .field("audience_override", &self.audience_override)
            .field("lifetime", &self.lifetime)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A running local endpoint. Dropping it stops the server.
pub struct LocalMsi {
    addr: SocketAddr,
    config: Arc<LocalMsiConfig>,
    served: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for LocalMsi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalMsi")
            .field("addr", &self.addr)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl LocalMsi {
    /// Binds 127.0.0.1 and starts serving in a background task.
    ///
    /// # Errors
    /// When the port cannot be bound.
    pub async fn start(config: LocalMsiConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", config.port)).await?;
        let addr = listener.local_addr()?;
        let config = Arc::new(config);
        let served = Arc::new(AtomicUsize::new(0));
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn({
            let config = config.clone();
            let served = served.clone();
            async move {
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let config = config.clone();
                            let served = served.clone();
                            tokio::spawn(async move {
                                if serve_connection(stream, &config).await {
                                    served.fetch_add(1, Ordering::Relaxed);
                                }
                            });
                        }
                    }
                }
            }
        });
        Ok(Self {
            addr,
            config,
            served,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The value for `IDENTITY_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}{}", self.addr, self.config.path)
    }

    /// The value for `IDENTITY_HEADER`. A secret: do not log it.
    pub fn identity_header(&self) -> &Secret {
        &self.config.secret
    }

    /// An environment configured exactly as App Service configures a managed identity.
    pub fn app_service_env(&self) -> Env {
        Env::from_pairs([
            ("IDENTITY_ENDPOINT", self.endpoint()),
            ("IDENTITY_HEADER", self.config.secret.secret().to_owned()),
        ])
    }

    /// How many requests were answered with a token.
    pub fn tokens_issued(&self) -> usize {
        self.served.load(Ordering::Relaxed)
    }

    /// Stops the server and waits for its accept loop to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve_until(self, shutdown: impl std::future::Future<Output = ()>) {
        shutdown.await;
        self.shutdown().await;
    }
}

impl Drop for LocalMsi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A parsed request head.
#[derive(Debug, Default)]
struct Head {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

/// Reads one request, answers it, and closes. Returns true when a token was issued.
async fn serve_connection(mut stream: TcpStream, config: &LocalMsiConfig) -> bool {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Some(head)) => head,
        Ok(None) => {
            let body = error_body(400, "malformed or oversized HTTP request");
            let _ = write_response(&mut stream, 400, &body).await;
            return false;
        }
        Err(_) => return false,
    };
    let now = config.clock.now();
    let reply = respond(config, now, &head.method, &head.target, &head.headers);
    let _ = write_response(&mut stream, reply.status, &reply.body).await;
    reply.status == 200
}

async fn read_head(stream: &mut TcpStream) -> Option<Head> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return parse_head(&buf[..end]);
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
    }
}

fn parse_head(raw: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let target = first.next()?.to_owned();
    let version = first.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let headers = lines
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        })
        .collect();
    Some(Head {
        method,
        target,
        headers,
    })
}

async fn write_response(stream: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await?;
    stream.shutdown().await
}

/// The answer to one request: status and JSON body.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: String,
}

fn error_body(status: u16, message: &str) -> String {
    json!({
        "statusCode": status,
        "message": message,
        "correlationId": "00000000-0000-0000-0000-000000000000",
    })
    .to_string()
}

fn error(status: u16, message: &str) -> Reply {
    Reply {
        status,
        body: error_body(status, message),
    }
}

/// Answers one request. Pure: the network loop only parses and writes, so every rule is
/// tested here without sockets.
pub fn respond(
    config: &LocalMsiConfig,
    now: SystemTime,
    method: &str,
    target: &str,
    headers: &[(String, String)],
) -> Reply {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != config.path {
        return error(404, "no identity endpoint at this path");
    }
    if method != "GET" {
        return error(405, "the identity endpoint accepts GET only");
    }
    let sent = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(SECRET_HEADER))
        .map(|(_, v)| Secret::new(v.as_str()));
    match sent {
        None => return error(401, "the X-IDENTITY-HEADER header is missing"),
        Some(s) if s != config.secret => {
            return error(
                401,
                "the X-IDENTITY-HEADER value does not match IDENTITY_HEADER",
            );
        }
        Some(_) => {}
    }
    let params: Vec<(String, String)> = form_pairs(query);
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match get("api-version") {
        None => return error(400, "the api-version query parameter is missing"),
        Some(API_VERSION) => {}
        Some(_) => {
            return error(
                400,
                "unsupported api-version; this endpoint supports 2019-08-01",
            );
        }
    }
    let resource = match get("resource").map(str::trim) {
        Some(r) if !r.is_empty() => r.to_owned(),
        _ => return error(400, "the resource query parameter is missing or empty"),
    };
    if resource.contains(char::is_whitespace) || !resource.contains(':') {
        return error(
            400,
            "the resource must be an absolute URI or an application id URI",
        );
    }
    for wrong in ["msi_res_id", "resource_id", "clientid", "principal_id"] {
        if get(wrong).is_some() {
            return error(
                400,
                "unknown identity selector; App Service accepts client_id, mi_res_id or object_id",
            );
        }
    }
    let selectors: Vec<(&str, &str)> = ["client_id", "mi_res_id", "object_id"]
        .into_iter()
        .filter_map(|k| get(k).map(|v| (k, v)))
        .collect();
    if selectors.len() > 1 {
        return error(
            400,
            "more than one identity selector; send one of client_id, mi_res_id or object_id",
        );
    }
    let (object_id, client_id) = match selectors.first() {
        None => (
            SYSTEM_ASSIGNED_OBJECT_ID.to_owned(),
            SYSTEM_ASSIGNED_CLIENT_ID.to_owned(),
        ),
        Some(&(_, "")) => return error(400, "an identity selector is empty"),
        Some(&("client_id", id)) => (guid_from(&format!("oid:{id}")), id.to_owned()),
        Some(&("object_id", id)) => (id.to_owned(), guid_from(&format!("cid:{id}"))),
        Some(&(_, id)) => (
            guid_from(&format!("oid:{id}")),
            guid_from(&format!("cid:{id}")),
        ),
    };
    let issued = unix(now);
    let expires = issued.saturating_add(i64::try_from(config.lifetime.as_secs()).unwrap_or(3600));
    let audience = config
        .audience_override
        .clone()
        .unwrap_or_else(|| resource.clone());
    let mut claims = Map::new();
    claims.insert("aud".into(), audience.into());
    claims.insert(
        "iss".into(),
        format!("https://sts.windows.net/{}/", config.tenant).into(),
    );
    claims.insert("iat".into(), issued.into());
    claims.insert("nbf".into(), issued.into());
    claims.insert("exp".into(), expires.into());
    claims.insert("oid".into(), object_id.clone().into());
    claims.insert("sub".into(), object_id.into());
    claims.insert("tid".into(), config.tenant.clone().into());
    claims.insert("appid".into(), client_id.clone().into());
    claims.insert("azp".into(), client_id.clone().into());
    claims.insert("idtyp".into(), "app".into());
    claims.insert("ver".into(), "1.0".into());
    if let Some(&("mi_res_id", id)) = selectors.first() {
        claims.insert("xms_mirid".into(), id.into());
    }
    let body = json!({
        "access_token": jwt::encode_unsigned(&claims),
        "expires_on": expires.to_string(),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": client_id,
    });
    Reply {
        status: 200,
        body: body.to_string(),
    }
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Decodes `application/x-www-form-urlencoded` pairs (`+` is a space, `%XX` a byte).
fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..=i + 2]).ok();
                if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A GUID-shaped string derived from `seed` (FNV-1a, twice), so that a user-assigned
/// identity keeps the same object id across requests and runs.
fn guid_from(seed: &str) -> String {
    let fnv = |salt: u64| {
        seed.bytes().fold(0xcbf2_9ce4_8422_2325 ^ salt, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let (a, b) = (fnv(0), fnv(0x5bd1_e995));
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        (b >> 52) & 0x0fff,
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use identity_core::test_util::FakeClock;
    use serde_json::Value;

    const PLANTED: &str = "planted-identity-header-secret";

    fn config() -> LocalMsiConfig {
        let mut c = LocalMsiConfig::new(PLANTED);
        c.clock = FakeClock::at_2030().shared();
        c.tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47".into();
        c
    }

    fn ask(config: &LocalMsiConfig, target: &str, secret: Option<&str>) -> Reply {
        let headers: Vec<(String, String)> = secret
            .map(|s| vec![("X-IDENTITY-HEADER".to_owned(), s.to_owned())])
            .unwrap_or_default();
        respond(config, config.clock.now(), "GET", target, &headers)
    }

    fn json(reply: &Reply) -> Value {
        serde_json::from_str(&reply.body).unwrap()
    }

    const STORAGE: &str =
        "/msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fstorage.azure.com";

    #[test]
    fn a_valid_request_gets_a_token_for_the_requested_resource() {
        let c = config();
        let reply = ask(&c, STORAGE, Some(PLANTED));
        assert_eq!(reply.status, 200, "{}", reply.body);
        let body = json(&reply);
        assert_eq!(body["resource"], "https://storage.azure.com");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_on"], "1893459600");
        assert_eq!(body["client_id"], SYSTEM_ASSIGNED_CLIENT_ID);
        let claims = jwt::decode_claims(body["access_token"].as_str().unwrap()).unwrap();
        assert_eq!(
            claims.audience.as_deref(),
            Some("https://storage.azure.com")
        );
        assert_eq!(
            claims.issuer.as_deref(),
            Some("https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/")
        );
        assert_eq!(claims.object_id.as_deref(), Some(SYSTEM_ASSIGNED_OBJECT_ID));
        assert_eq!(claims.expires, Some(1_893_459_600));
    }

    #[test]
    fn nbf_and_iat_are_now() {
        let c = config();
        let body = json(&ask(&c, STORAGE, Some(PLANTED)));
        let token = body["access_token"].as_str().unwrap();
        let payload = token.split('.').nth(1).unwrap();
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        let claims: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(claims["iat"], 1_893_456_000);
        assert_eq!(claims["nbf"], 1_893_456_000);
        assert_eq!(claims["tid"], "72f988bf-86f1-41af-91ab-2d7cd011db47");
    }

    #[test]
    fn the_audience_override_replaces_aud_but_not_resource() {
        let mut c = config();
        c.audience_override = Some("https://wrong.example".into());
        let body = json(&ask(&c, STORAGE, Some(PLANTED)));
        assert_eq!(body["resource"], "https://storage.azure.com");
        let claims = jwt::decode_claims(body["access_token"].as_str().unwrap()).unwrap();
        assert_eq!(claims.audience.as_deref(), Some("https://wrong.example"));
    }

    #[test]
    fn a_missing_or_wrong_secret_is_refused_with_401_json() {
        let c = config();
        for secret in [None, Some("wrong"), Some("")] {
            let reply = ask(&c, STORAGE, secret);
            assert_eq!(reply.status, 401);
            assert_eq!(json(&reply)["statusCode"], 401);
            assert!(!reply.body.contains(PLANTED));
        }
    }

    #[test]
    fn bad_api_version_or_resource_gets_400_json() {
        let c = config();
        for target in [
            "/msi/token?resource=https%3A%2F%2Fstorage.azure.com",
            "/msi/token?api-version=2017-09-01&resource=https%3A%2F%2Fstorage.azure.com",
            "/msi/token?api-version=2019-08-01",
            "/msi/token?api-version=2019-08-01&resource=",
            "/msi/token?api-version=2019-08-01&resource=not+a+uri",
            "/msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fs&client_id=a&object_id=b",
            "/msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fs&msi_res_id=x",
            "/msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fs&client_id=",
        ] {
            let reply = ask(&c, target, Some(PLANTED));
            assert_eq!(reply.status, 400, "{target}");
            let body = json(&reply);
            assert_eq!(body["statusCode"], 400, "{target}");
            assert!(body["message"].as_str().unwrap().len() > 10, "{target}");
        }
    }

    #[test]
    fn unknown_paths_and_methods_are_refused() {
        let c = config();
        assert_eq!(
            ask(&c, "/other?api-version=2019-08-01", Some(PLANTED)).status,
            404
        );
        let post = respond(
            &c,
            c.clock.now(),
            "POST",
            STORAGE,
            &[("x-identity-header".into(), PLANTED.into())],
        );
        assert_eq!(post.status, 405);
    }

    #[test]
    fn user_assigned_identities_get_stable_distinct_object_ids() {
        let c = config();
        let oid = |q: &str| {
            let body = json(&ask(&c, &format!("{STORAGE}&{q}"), Some(PLANTED)));
            let token = body["access_token"].as_str().unwrap().to_owned();
            (
                jwt::decode_claims(&token).unwrap().object_id.unwrap(),
                body["client_id"].clone(),
            )
        };
        let (a, cid) = oid("client_id=aaaa");
        assert_eq!(cid, "aaaa");
        assert_eq!(oid("client_id=aaaa").0, a);
        assert_ne!(oid("client_id=bbbb").0, a);
        assert_ne!(a, SYSTEM_ASSIGNED_OBJECT_ID);
        assert_eq!(oid("object_id=1234").0, "1234");
        let (res, _) = oid("mi_res_id=%2Fsubscriptions%2Fx");
        assert_eq!(res.len(), 36);
    }

    #[test]
    fn query_decoding_handles_plus_and_percent() {
        assert_eq!(
            form_pairs("a=b+c&d=%2Fe%zz&f"),
            vec![
                ("a".into(), "b c".into()),
                ("d".into(), "/e%zz".into()),
                ("f".into(), String::new())
            ]
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = config();
        assert!(!format!("{c:?}").contains(PLANTED));
    }

    #[tokio::test]
    async fn the_server_answers_over_real_http() {
        let server = LocalMsi::start(LocalMsiConfig::new(PLANTED)).await.unwrap();
        assert!(!format!("{server:?}").contains(PLANTED));
        let env = server.app_service_env();
        assert_eq!(env.get("IDENTITY_HEADER"), Some(PLANTED));
        let endpoint = env.get("IDENTITY_ENDPOINT").unwrap().to_owned();
        assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");

        let raw = |secret: &'static str| {
            let addr = server.addr();
            async move {
                let mut s = TcpStream::connect(addr).await.unwrap();
                let req = format!(
                    "GET /msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fstorage.azure.com HTTP/1.1\r\nhost: x\r\nX-IDENTITY-HEADER: {secret}\r\n\r\n"
                );
                s.write_all(req.as_bytes()).await.unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).await.unwrap();
                out
            }
        };
        let ok = tokio::time::timeout(Duration::from_secs(10), raw(PLANTED))
            .await
            .unwrap();
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("\"token_type\":\"Bearer\""), "{ok}");
        let refused = tokio::time::timeout(Duration::from_secs(10), raw("nope"))
            .await
            .unwrap();
        assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
        assert_eq!(server.tokens_issued(), 1);
        tokio::time::timeout(Duration::from_secs(10), server.shutdown())
            .await
            .unwrap();
    }
}
