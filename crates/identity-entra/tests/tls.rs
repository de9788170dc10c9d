//! HTTPS end to end: a local TLS token server whose certificate is signed by a test CA that
//! the client trusts only through an injected `SSL_CERT_FILE`, and a local CONNECT proxy
//! that tunnels requests for the public authority host to that server, so nothing leaves
//! the machine.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions fail loudly on purpose"
)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use identity_core::http::HttpClient;
use identity_core::test_util::RecordingSleeper;
use identity_core::{Env, ErrorKind, TokenCredential, TokenRequestOptions};
use identity_entra::{ClientSecretCredential, ReqwestClient};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

mod common;

use common::{TlsServer, read_head, server_config};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
const LIMIT: Duration = Duration::from_secs(20);
const SECRET: &str = "planted-tls-secret";

type Log = Arc<Mutex<Vec<String>>>;

/// A TLS token server on 127.0.0.1 answering every request with a token; it records requests.
async fn tls_token_server() -> TlsServer {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(format!("{DATA}/server.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_file(format!("{DATA}/server.key")).unwrap();
    TlsServer::start(server_config(certs, key), "TLS-TOKEN", None).await
}

/// The requests `server` has seen, as the raw text of each (head, blank line, body).
fn requests(server: &TlsServer) -> Vec<String> {
    server
        .seen()
        .into_iter()
        .map(|s| format!("{}\r\n\r\n{}", s.head, s.body))
        .collect()
}

/// A CONNECT proxy on 127.0.0.1 that logs each CONNECT line and tunnels *every* request to
/// `upstream` (a local server), whatever host was asked for.
async fn connect_proxy(upstream: SocketAddr, log: Log) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let head = read_head(&mut client).await;
                let first = head.lines().next().unwrap_or_default().to_owned();
                log.lock().unwrap().push(first.clone());
                if !first.starts_with("CONNECT ") {
                    let _ = client
                        .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                }
                let Ok(mut server) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    addr
}

fn client(env: Env) -> Arc<dyn HttpClient> {
    Arc::new(
        ReqwestClient::builder()
            .env(env)
            .native_roots(false)
            .build()
            .unwrap(),
    )
}

fn credential(authority: &str, http: Arc<dyn HttpClient>) -> ClientSecretCredential {
    credential_with(authority, http, &RecordingSleeper::new())
}

fn credential_with(
    authority: &str,
    http: Arc<dyn HttpClient>,
    sleeper: &RecordingSleeper,
) -> ClientSecretCredential {
    ClientSecretCredential::builder()
        .tenant_id("t")
        .client_id("c")
        .client_secret(SECRET)
        .authority_host(authority)
        .runtime(
            identity_core::Runtime::with_env(Env::empty())
                .sleeper(sleeper.shared())
                .http_client(http),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_token_is_fetched_over_https_trusting_the_ca_from_ssl_cert_file() {
    let server = tls_token_server().await;
    let addr = server.addr;
    let http = client(Env::from_pairs([(
        "SSL_CERT_FILE",
        format!("{DATA}/ca.pem"),
    )]));
    let credential = credential(&format!("https://localhost:{}", addr.port()), http);
    let token = timeout(
        LIMIT,
        credential.get_token(
            &["https://vault.azure.net/.default"],
            &TokenRequestOptions::default(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(token.token.secret(), "TLS-TOKEN");
    let requests = requests(&server);
    assert_eq!(requests.len(), 1);
    assert!(
        requests[0].starts_with("POST /t/oauth2/v2.0/token HTTP/1.1"),
        "{}",
        requests[0]
    );
    assert!(requests[0].contains(&format!("client_secret={SECRET}")));
}

#[tokio::test]
async fn the_same_ca_in_ssl_cert_dir_is_trusted_too() {
    let server = tls_token_server().await;
    let addr = server.addr;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(format!("{DATA}/ca.pem"), dir.path().join("test-ca.pem")).unwrap();
    std::fs::write(dir.path().join("README"), "not a certificate").unwrap();
    let http = client(Env::from_pairs([(
        "SSL_CERT_DIR",
        dir.path().display().to_string(),
    )]));
    let credential = credential(&format!("https://127.0.0.1:{}", addr.port()), http);
    let token = timeout(
        LIMIT,
        credential.get_token(&["s"], &TokenRequestOptions::default()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(token.token.secret(), "TLS-TOKEN");
}

/// The error of a call refused for its server certificate: authentication failed.
async fn refused(credential: &ClientSecretCredential) -> identity_core::Error {
    let err = timeout(
        LIMIT,
        credential.get_token(&["s"], &TokenRequestOptions::default()),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AuthenticationFailed, "{err}");
    err
}

/// An untrusted issuer is a TLS verification failure: said so at the top, authentication
/// failed, not retried (a certificate does not change between attempts).
#[tokio::test]
async fn an_untrusted_server_certificate_is_refused_at_once_without_the_secret() {
    let server = tls_token_server().await;
    let addr = server.addr;
    // Trusts a CA (the client's self-signed certificate) that did not sign the server's.
    let http = client(Env::from_pairs([(
        "SSL_CERT_FILE",
        format!("{DATA}/ec.pem"),
    )]));
    let sleeper = RecordingSleeper::new();
    let credential = credential_with(
        &format!("https://127.0.0.1:{}", addr.port()),
        http,
        &sleeper,
    );
    let err = refused(&credential).await;
    let top = err.to_string();
    assert!(
        top.contains("TLS certificate of https://127.0.0.1:")
            && top.contains("issuer is not trusted")
            && top.contains("not retried"),
        "{top}"
    );
    assert!(!top.contains("could not be reached"), "{top}");
    assert!(sleeper.slept().is_empty(), "not retried");
    let text = format!("{err} {err:?} {}", identity_core::display_chain(&err));
    assert!(!text.contains(SECRET), "{text}");
    assert!(
        requests(&server).is_empty(),
        "no request may be read by an untrusted server"
    );
}

/// A certificate for other host names (reached through a proxy that tunnels
/// `login.microsoftonline.us` to the local server, whose certificate does not name it).
#[tokio::test]
async fn a_certificate_for_another_host_name_is_refused_at_once() {
    let server = tls_token_server().await;
    let proxy = connect_proxy(server.addr, Log::default()).await;
    let http = client(Env::from_pairs([
        ("SSL_CERT_FILE", format!("{DATA}/ca.pem")),
        ("HTTPS_PROXY", format!("http://127.0.0.1:{}", proxy.port())),
    ]));
    let sleeper = RecordingSleeper::new();
    let credential = credential_with("https://login.microsoftonline.us", http, &sleeper);
    let err = refused(&credential).await;
    assert!(
        err.to_string().contains("not valid for the host name"),
        "{err}"
    );
    assert!(sleeper.slept().is_empty(), "not retried");
    assert!(requests(&server).is_empty());
}

#[tokio::test]
async fn the_public_authority_is_reached_through_https_proxy() {
    let proxy_log = Log::default();
    let server_handle = tls_token_server().await;
    let server = server_handle.addr;
    let proxy = connect_proxy(server, proxy_log.clone()).await;
    let http = client(Env::from_pairs([
        ("SSL_CERT_FILE", format!("{DATA}/ca.pem")),
        ("HTTPS_PROXY", format!("http://127.0.0.1:{}", proxy.port())),
    ]));
    // The default authority: https://login.microsoftonline.com. The proxy tunnels it to the
    // local server, whose certificate also names login.microsoftonline.com.
    let credential = ClientSecretCredential::builder()
        .tenant_id("t")
        .client_id("c")
        .client_secret(SECRET)
        .runtime(identity_core::Runtime::with_env(Env::empty()).http_client(http))
        .build()
        .unwrap();
    let token = timeout(
        LIMIT,
        credential.get_token(&["s"], &TokenRequestOptions::default()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(token.token.secret(), "TLS-TOKEN");
    let proxied = proxy_log.lock().unwrap().clone();
    assert_eq!(proxied.len(), 1, "{proxied:?}");
    assert!(
        proxied[0].starts_with("CONNECT login.microsoftonline.com:443 "),
        "{proxied:?}"
    );
    let requests = requests(&server_handle).clone();
    assert!(
        requests[0].starts_with("POST /t/oauth2/v2.0/token HTTP/1.1"),
        "{requests:?}"
    );
    assert!(
        requests[0]
            .to_ascii_lowercase()
            .contains("host: login.microsoftonline.com"),
        "{requests:?}"
    );
}

#[tokio::test]
async fn no_proxy_hosts_bypass_the_proxy() {
    let proxy_log = Log::default();
    let server_handle = tls_token_server().await;
    let server = server_handle.addr;
    let proxy = connect_proxy(server, proxy_log.clone()).await;
    let http = client(Env::from_pairs([
        ("SSL_CERT_FILE", format!("{DATA}/ca.pem")),
        ("https_proxy", format!("http://127.0.0.1:{}", proxy.port())),
        ("no_proxy", "localhost,127.0.0.1".to_owned()),
    ]));
    let credential = credential(&format!("https://127.0.0.1:{}", server.port()), http);
    timeout(
        LIMIT,
        credential.get_token(&["s"], &TokenRequestOptions::default()),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(proxy_log.lock().unwrap().is_empty());
    assert_eq!(requests(&server_handle).len(), 1);
}

/// Fetches a token for the default (public) authority with `env` as the client's environment
/// besides the test CA; returns the CONNECT lines each proxy logged.
async fn fetch_through(
    proxies: usize,
    env: impl Fn(&[SocketAddr]) -> Vec<(String, String)>,
) -> Vec<Vec<String>> {
    let server = tls_token_server().await.addr;
    let mut logs = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..proxies {
        let log = Log::default();
        addrs.push(connect_proxy(server, log.clone()).await);
        logs.push(log);
    }
    let mut pairs = env(&addrs);
    pairs.push(("SSL_CERT_FILE".to_owned(), format!("{DATA}/ca.pem")));
    let credential = ClientSecretCredential::builder()
        .tenant_id("t")
        .client_id("c")
        .client_secret(SECRET)
        .runtime(
            identity_core::Runtime::with_env(Env::empty())
                .http_client(client(Env::from_pairs(pairs))),
        )
        .build()
        .unwrap();
    let token = timeout(
        LIMIT,
        credential.get_token(&["s"], &TokenRequestOptions::default()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(token.token.secret(), "TLS-TOKEN");
    logs.iter().map(|l| l.lock().unwrap().clone()).collect()
}

fn proxy_url(addr: SocketAddr) -> String {
    format!("http://127.0.0.1:{}", addr.port())
}

#[tokio::test]
async fn all_proxy_is_used_when_no_https_proxy_is_set() {
    for name in ["ALL_PROXY", "all_proxy"] {
        let logs = fetch_through(1, |p| vec![(name.to_owned(), proxy_url(p[0]))]).await;
        assert_eq!(logs[0].len(), 1, "{name}: {logs:?}");
        assert!(
            logs[0][0].starts_with("CONNECT login.microsoftonline.com:443 "),
            "{name}: {logs:?}"
        );
    }
}

#[tokio::test]
async fn https_proxy_wins_over_all_proxy() {
    for name in ["HTTPS_PROXY", "https_proxy"] {
        let logs = fetch_through(2, |p| {
            vec![
                (name.to_owned(), proxy_url(p[0])),
                ("ALL_PROXY".to_owned(), proxy_url(p[1])),
            ]
        })
        .await;
        assert_eq!(logs[0].len(), 1, "{name}: {logs:?}");
        assert!(logs[1].is_empty(), "{name}: ALL_PROXY was used: {logs:?}");
    }
}

#[tokio::test]
async fn all_proxy_honours_no_proxy() {
    let proxy_log = Log::default();
    let server_handle = tls_token_server().await;
    let server = server_handle.addr;
    let proxy = connect_proxy(server, proxy_log.clone()).await;
    let http = client(Env::from_pairs([
        ("SSL_CERT_FILE", format!("{DATA}/ca.pem")),
        ("ALL_PROXY", proxy_url(proxy)),
        ("NO_PROXY", "localhost,127.0.0.1".to_owned()),
    ]));
    let credential = credential(&format!("https://127.0.0.1:{}", server.port()), http);
    timeout(
        LIMIT,
        credential.get_token(&["s"], &TokenRequestOptions::default()),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(proxy_log.lock().unwrap().is_empty());
    assert_eq!(requests(&server_handle).len(), 1);
}

#[test]
fn a_socks_all_proxy_is_refused_clearly() {
    let err = ReqwestClient::builder()
        .env(Env::from_pairs([
            ("SSL_CERT_FILE", format!("{DATA}/ca.pem")),
            (
                "ALL_PROXY",
                "socks5://user:planted-proxy-password@127.0.0.1:1080".to_owned(),
            ),
        ]))
        .native_roots(false)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfiguration);
    assert!(
        err.message().contains("ALL_PROXY names a SOCKS proxy"),
        "{err}"
    );
    assert!(!format!("{err} {err:?}").contains("planted"), "{err:?}");
}

#[cfg(unix)]
fn make_fifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[cfg(unix)]
#[test]
fn a_fifo_or_device_as_ssl_cert_file_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("ca.fifo");
    make_fifo(&fifo);
    for path in [fifo.display().to_string(), "/dev/zero".to_owned()] {
        let started = std::time::Instant::now();
        let err = ReqwestClient::builder()
            .env(Env::from_pairs([("SSL_CERT_FILE", path.clone())]))
            .native_roots(false)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfiguration);
        assert!(err.message().contains("not a regular file"), "{err}");
        assert!(err.message().contains("SSL_CERT_FILE"), "{err}");
        assert!(started.elapsed() < LIMIT, "{path}");
    }
    // A file over the cap is refused too.
    let big = dir.path().join("big.pem");
    std::fs::write(&big, vec![b'A'; 4 * 1024 * 1024 + 1]).unwrap();
    let err = ReqwestClient::builder()
        .env(Env::from_pairs([(
            "SSL_CERT_FILE",
            big.display().to_string(),
        )]))
        .native_roots(false)
        .build()
        .unwrap_err();
    assert!(err.message().contains("larger than"), "{err}");
}

#[cfg(unix)]
#[tokio::test]
async fn ssl_cert_dir_skips_a_fifo_and_still_trusts_its_certificates() {
    let server = tls_token_server().await;
    let addr = server.addr;
    let dir = tempfile::tempdir().unwrap();
    make_fifo(&dir.path().join("0-blocked.pem"));
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("1-zero.pem")).unwrap();
    std::fs::copy(format!("{DATA}/ca.pem"), dir.path().join("test-ca.pem")).unwrap();
    let http = timeout(LIMIT, async {
        client(Env::from_pairs([(
            "SSL_CERT_DIR",
            dir.path().display().to_string(),
        )]))
    })
    .await
    .unwrap();
    let credential = credential(&format!("https://127.0.0.1:{}", addr.port()), http);
    let token = timeout(
        LIMIT,
        credential.get_token(&["s"], &TokenRequestOptions::default()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(token.token.secret(), "TLS-TOKEN");
}
