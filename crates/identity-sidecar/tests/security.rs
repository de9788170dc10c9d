//! The sidecar as an attacker on the host sees it: no token without the secret, no listening
//! beyond loopback unless forced, bounded requests, slow clients cut off, nothing secret in
//! the logs. All on 127.0.0.1.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use identity_chain::ManagedIdentityCredential;
use identity_core::test_util::Capture;
use identity_core::{TokenCredential as _, TokenRequestOptions};
use identity_sidecar::{Backend, Bind, DevTokens, ServerConfig, Sidecar};
use support::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const STORAGE: &str = "https%3A%2F%2Fstorage.azure.com";

#[tokio::test]
async fn a_missing_wrong_or_repeated_secret_gets_401_and_no_upstream_request() {
    let imds = imds().await;
    let sidecar = sidecar(&imds_url(&imds), &[]).await;
    let addr = sidecar.addr().unwrap();
    let target = token_target(STORAGE);
    let near_miss = format!("{}x", &PLANTED_HEADER[..PLANTED_HEADER.len() - 1]);
    for secret in [None, Some(""), Some("wrong"), Some(near_miss.as_str())] {
        let answer = raw(addr, &get(&target, secret)).await;
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        assert!(answer.contains("\"statusCode\":401"), "{answer}");
        assert!(!answer.contains(PLANTED_HEADER));
        assert!(!answer.contains(PLANTED_TOKEN));
    }
    let twice = format!(
        "GET {target} HTTP/1.1\r\nhost: x\r\nX-IDENTITY-HEADER: {PLANTED_HEADER}\r\nX-IDENTITY-HEADER: other\r\nconnection: close\r\n\r\n"
    );
    let answer = raw(addr, twice.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(imds.received_requests().await.unwrap().is_empty());
    // The right secret works, so the refusals above were about the secret.
    let ok = raw(addr, &get(&target, Some(PLANTED_HEADER))).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}

#[tokio::test]
async fn a_non_loopback_bind_is_refused_unless_forced() {
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.1:0"] {
        let mut config = ServerConfig::new("a-secret-of-enough-length".into());
        config.bind = Bind::Tcp(addr.parse::<SocketAddr>().unwrap());
        let e = Sidecar::start(
            config,
            Backend::DevTokens(Arc::new(DevTokens::default())),
            Vec::new(),
            Arc::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{addr}");
        assert!(e.to_string().contains("--allow-non-loopback"), "{e}");
    }
    // The parser refuses nothing: the refusal is at start, for every way of starting.
    for addr in ["127.0.0.1:0", "[::1]:0"] {
        let mut config = ServerConfig::new("a-secret-of-enough-length".into());
        config.bind = Bind::Tcp(addr.parse::<SocketAddr>().unwrap());
        if let Ok(s) = Sidecar::start(
            config,
            Backend::DevTokens(Arc::new(DevTokens::default())),
            Vec::new(),
            Arc::default(),
        )
        .await
        {
            assert!(s.addr().unwrap().ip().is_loopback());
            s.shutdown().await;
        }
    }
}

#[tokio::test]
async fn oversized_requests_are_refused() {
    let imds = imds().await;
    let sidecar = sidecar(&imds_url(&imds), &[]).await;
    let addr = sidecar.addr().unwrap();
    let target = token_target(STORAGE);
    // A 64 KiB header.
    let big = format!(
        "GET {target} HTTP/1.1\r\nhost: x\r\nX-IDENTITY-HEADER: {PLANTED_HEADER}\r\nx-pad: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let answer = raw(addr, big.as_bytes()).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    // A 64 KiB URL.
    let long = format!(
        "GET {target}&pad={} HTTP/1.1\r\nhost: x\r\nX-IDENTITY-HEADER: {PLANTED_HEADER}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let answer = raw(addr, long.as_bytes()).await;
    assert!(
        answer.is_empty()
            || answer.starts_with("HTTP/1.1 431")
            || answer.starts_with("HTTP/1.1 414"),
        "{answer}"
    );
    // 100 headers.
    let mut many =
        format!("GET {target} HTTP/1.1\r\nhost: x\r\nX-IDENTITY-HEADER: {PLANTED_HEADER}\r\n");
    for i in 0..100 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let answer = raw(addr, many.as_bytes()).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    // A body.
    let body = format!(
        "GET {target} HTTP/1.1\r\nhost: x\r\nX-IDENTITY-HEADER: {PLANTED_HEADER}\r\ncontent-length: 5\r\n\r\nhello"
    );
    let answer = raw(addr, body.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(imds.received_requests().await.unwrap().is_empty());
    // Still serving.
    let ok = raw(addr, &get(&target, Some(PLANTED_HEADER))).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}

#[tokio::test]
async fn a_slow_loris_client_is_disconnected() {
    let imds = imds().await;
    let sidecar = sidecar(&imds_url(&imds), &["--header-timeout", "1"]).await;
    let addr = sidecar.addr().unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /msi/token?api-version=2019-08-01 HTTP/1.1\r\n")
        .await
        .unwrap();
    // One header byte every 200 ms: a head that would take 40 s to arrive. The server cuts
    // the connection after its 1 s header timeout; the loop is bounded either way.
    let mut sent = 0;
    let mut cut = false;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if stream.write_all(b"x").await.is_err() {
            cut = true;
            break;
        }
        sent += 1;
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => {
                cut = true;
                break;
            }
            Ok(Ok(_)) => {
                // A 408 answer, then the close.
                cut = true;
                break;
            }
            Err(_) => {}
        }
    }
    assert!(cut, "the connection was still open after {sent} bytes");
    assert!(sent < 200);
    // Other clients were served meanwhile and after.
    let ok = raw(addr, &get(&token_target(STORAGE), Some(PLANTED_HEADER))).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}

#[tokio::test]
async fn no_planted_secret_reaches_the_logs() {
    let capture = Capture::new();
    let _guard = capture.enter();
    let imds = imds().await;
    let sidecar = sidecar(&imds_url(&imds), &[]).await;
    let addr = sidecar.addr().unwrap();
    let wrong = "planted-wrong-caller-secret-0b5e";
    let _ = raw(addr, &get(&token_target(STORAGE), Some(wrong))).await;
    let ok = raw(addr, &get(&token_target(STORAGE), Some(PLANTED_HEADER))).await;
    assert!(ok.contains(PLANTED_TOKEN), "the token itself is the answer");
    let credential = ManagedIdentityCredential::builder()
        .runtime(identity_core::Runtime::with_env(sidecar.app_service_env()))
        .build()
        .unwrap();
    credential
        .get_token(
            &["https://vault.azure.net/.default"],
            &TokenRequestOptions::default(),
        )
        .await
        .unwrap();
    // An upstream failure, logged as a warning.
    let _ = raw(
        addr,
        &get(
            "/msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fr&client_id=x",
            Some(PLANTED_HEADER),
        ),
    )
    .await;
    let shown = format!("{sidecar:?}");
    sidecar.shutdown().await;
    let text = capture.text();
    assert!(text.contains("identity-sidecar listening"), "{text}");
    for planted in [PLANTED_HEADER, PLANTED_TOKEN, wrong] {
        assert!(!text.contains(planted), "{planted} in the logs:\n{text}");
        assert!(!shown.contains(planted));
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_unix_socket_gets_the_mode_asked_for_and_serves_over_it() {
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sidecar.sock");
    // A file that is not a socket is never replaced.
    std::fs::write(&path, "not a socket").unwrap();
    let start = |path: std::path::PathBuf| async move {
        let mut config = ServerConfig::new(PLANTED_HEADER.into());
        config.bind = Bind::Unix { path, mode: 0o660 };
        Sidecar::start(
            config,
            Backend::DevTokens(Arc::new(DevTokens::default())),
            Vec::new(),
            Arc::default(),
        )
        .await
    };
    let e = start(path.clone()).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
    std::fs::remove_file(&path).unwrap();
    let sidecar = start(path.clone()).await.unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert!(sidecar.endpoint().starts_with("unix:"));
    let exchange = async {
        let mut s = tokio::net::UnixStream::connect(&path).await.unwrap();
        s.write_all(&get(&token_target(STORAGE), Some(PLANTED_HEADER)))
            .await
            .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        out
    };
    let answer = tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    sidecar.shutdown().await;
    assert!(!path.exists(), "the socket is removed at shutdown");
    // A stale socket (left by a crash) is replaced.
    let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
    drop(stale);
    let again = start(path.clone()).await.unwrap();
    again.shutdown().await;
    // A mode that lets others in is refused.
    let mut config = ServerConfig::new(PLANTED_HEADER.into());
    config.bind = Bind::Unix {
        path: dir.path().join("open.sock"),
        mode: 0o666,
    };
    assert!(
        Sidecar::start(
            config,
            Backend::DevTokens(Arc::new(DevTokens::default())),
            Vec::new(),
            Arc::default()
        )
        .await
        .is_err()
    );
}
