//! The `identity-sidecar` binary as an operator runs it: `--help`, a generated secret in a
//! private file, development tokens over loopback, SIGTERM for a clean stop, and its log
//! (at `--log trace`) scanned for the secret and the tokens.
#![cfg(unix)]

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use identity_chain::ManagedIdentityCredential;
use identity_core::{Env, TokenCredential as _, TokenRequestOptions};

const BIN: &str = env!("CARGO_BIN_EXE_identity-sidecar");

fn command() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().stdin(Stdio::null());
    cmd
}

#[test]
fn help_exits_0_and_a_secret_argument_exits_2_without_echo() {
    let help = command().arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8(help.stdout).unwrap();
    assert!(
        text.contains("--dev-tokens") && text.contains("--secret-file"),
        "{text}"
    );
    let refused = command()
        .args(["--secret", "planted-argv-secret-value"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!err.contains("planted-argv-secret-value"), "{err}");
}

#[tokio::test]
async fn the_binary_serves_dev_tokens_and_stops_cleanly_on_sigterm() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let secret_path = dir.path().join("identity-header");
    let log_path = dir.path().join("log");
    let mut child = command()
        .args(["--listen", "127.0.0.1:0", "--dev-tokens", "--log", "trace"])
        .arg("--write-secret-file")
        .arg(&secret_path)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let endpoint_line = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let file_line = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let endpoint = endpoint_line
        .strip_prefix("IDENTITY_ENDPOINT=")
        .unwrap()
        .to_owned();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
    assert_eq!(
        file_line,
        format!("IDENTITY_HEADER_FILE={}", secret_path.display())
    );
    let mode = std::fs::metadata(&secret_path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let secret = std::fs::read_to_string(&secret_path).unwrap();
    assert_eq!(secret.len(), 64);

    let credential = ManagedIdentityCredential::builder()
        .runtime(identity_core::Runtime::with_env(Env::from_pairs([
            ("IDENTITY_ENDPOINT", endpoint.as_str()),
            ("IDENTITY_HEADER", secret.as_str()),
        ])))
        .build()
        .unwrap();
    let token = credential
        .get_token(
            &["https://storage.azure.com/.default"],
            &TokenRequestOptions::default(),
        )
        .await
        .unwrap();
    let token = token.token.secret().to_owned();
    assert_eq!(token.split('.').count(), 3, "an unsigned development JWT");

    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let mut status = None;
    for _ in 0..400 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let Some(status) = status else {
        let _ = child.kill();
        panic!("the sidecar did not stop within 20 s of SIGTERM");
    };
    assert!(status.success(), "{status}");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("identity-sidecar listening"), "{log}");
    assert!(log.contains("identity-sidecar stopped"), "{log}");
    assert!(log.contains("answered"), "trace logs show requests: {log}");
    assert!(!log.contains(&secret), "the secret is in the log");
    assert!(!log.contains(&token), "the token is in the log");
    // Nor any of the token's parts.
    for part in token.split('.') {
        assert!(!log.contains(part), "a token part is in the log");
    }
}
