//! The browser flow against the loopback emulator, with a scripted browser (`curl` run by
//! `sh`, set as `BROWSER` in the injected environment) and, where installed, headless
//! Chromium.

use super::*;
use crate::AuthenticationRecord;
use crate::test_support::UpdateRuntime;
use crate::user::TokenCachePersistenceOptions;
use crate::user::emulator::Emulator;
use identity_core::test_util::{Capture, RecordingSleeper};
use identity_core::{BoxFuture, Env, ErrorKind};
use identity_core::{TokenCredential, TokenRequestOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const SCOPE: &str = "https://vault.azure.net/.default";

/// A scripted browser: records the URL, fetches it with curl following redirects, and records
/// the final page and HTTP status. Run through `/bin/sh`, so the script is never executed
/// while another thread may hold it open for writing.
struct ScriptedBrowser {
    dir: tempfile::TempDir,
}

impl ScriptedBrowser {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let script = format!(
            "#!/bin/sh\nprintf '%s' \"$1\" > {d}/url\ncurl -sS -L --max-time 20 -o {d}/page -w '%{{http_code}}' \"$1\" > {d}/status.tmp 2> {d}/curl.log\nmv {d}/status.tmp {d}/status\n"
        );
        std::fs::write(dir.path().join("browser.sh"), script).unwrap();
        Self { dir }
    }

    fn env(&self) -> Env {
        Env::from_pairs([(
            BROWSER,
            format!("/bin/sh {}", self.dir.path().join("browser.sh").display()),
        )])
    }

    fn read(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.path().join(name)).ok()
    }

    /// The file the browser writes last, once it exists (the credential may finish before
    /// curl has written the page it got); bounded to 20 s.
    async fn finished(&self) -> Option<String> {
        for _ in 0..200 {
            if let Some(status) = self.read("status") {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }
}

/// A sleeper whose sleeps end when `path` exists (bounded to 60 s of real time), so a test
/// can let the sign-in time out exactly after the browser has done its part.
#[derive(Debug)]
struct UntilFile(PathBuf);

impl identity_core::Sleeper for UntilFile {
    fn sleep(&self, _duration: Duration) -> BoxFuture<'static, ()> {
        let path = self.0.clone();
        Box::pin(async move {
            for _ in 0..600 {
                if path.exists() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }
}

fn builder(emulator: &Emulator, env: Env) -> InteractiveBrowserCredentialBuilder {
    InteractiveBrowserCredential::builder()
        .authority_host(emulator.uri())
        .allow_insecure_loopback_authority(true)
        .runtime(identity_core::Runtime::with_env(env))
        .timeout(Duration::from_secs(60))
        .prompt(|text| panic!("unexpected prompt: {text}"))
}

async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(90), future)
        .await
        .expect("the sign-in ends within 90 s")
}

#[tokio::test]
async fn a_scripted_browser_completes_the_pkce_flow_and_sees_the_close_page() {
    let emulator = Emulator::start().await;
    let browser = ScriptedBrowser::new();
    let credential = builder(&emulator, browser.env())
        .login_hint("someone@contoso.com")
        .tenant_id("contoso")
        .build()
        .unwrap();
    let token = bounded(credential.get_token(&[SCOPE], &TokenRequestOptions::default()))
        .await
        .unwrap();
    assert!(token.token.secret().starts_with("at-browser-"));
    assert_eq!(browser.finished().await.as_deref(), Some("200"));
    assert!(
        browser
            .read("page")
            .unwrap()
            .contains("You can close this window")
    );

    let authorize = &emulator.requests("/authorize")[0];
    assert_eq!(authorize.method, "GET");
    assert_eq!(authorize.path, "/contoso/oauth2/v2.0/authorize");
    let p = &authorize.params;
    assert_eq!(p["client_id"], crate::user::DEVELOPER_SIGN_ON_CLIENT_ID);
    assert_eq!(p["response_type"], "code");
    assert_eq!(p["code_challenge_method"], "S256");
    assert_eq!(p["login_hint"], "someone@contoso.com");
    assert_eq!(p["prompt"], "select_account");
    assert_eq!(p["scope"], format!("{SCOPE} offline_access openid profile"));
    assert!(p["state"].len() >= 22, "{}", p["state"]);
    let redirect = &p["redirect_uri"];
    assert!(redirect.starts_with("http://localhost:"), "{redirect}");
    let exchange = &emulator.requests("/token")[0];
    assert_eq!(exchange.params["grant_type"], "authorization_code");
    assert_eq!(&exchange.params["redirect_uri"], redirect);
    assert_eq!(
        pkce_challenge(&exchange.params["code_verifier"]),
        p["code_challenge"]
    );
    assert_eq!(exchange.params["code_verifier"].len(), 43);

    // Another scope: silent, through the refresh token.
    let graph = credential
        .get_token(
            &["https://graph.microsoft.com/.default"],
            &TokenRequestOptions::default(),
        )
        .await
        .unwrap();
    assert!(graph.token.secret().starts_with("at-refresh-"));
    assert_eq!(emulator.requests("/authorize").len(), 1);
}

#[tokio::test]
async fn a_browser_reaching_localhost_over_ipv6_is_served_too() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("SKIPPED: this machine has no IPv6 loopback");
        return;
    }
    let emulator = Emulator::start().await;
    // The sign-in page over IPv4 (the emulator's address), the redirect to localhost over
    // IPv6 only.
    let browser = ScriptedBrowser::new();
    let d = browser.dir.path().display();
    let script = format!(
        "#!/bin/sh\nloc=$(curl -sS --max-time 20 -o /dev/null -w '%{{redirect_url}}' \"$1\")\ncurl -6 -sS --max-time 20 -o {d}/page -w '%{{http_code}}' \"$loc\" > {d}/status.tmp 2> {d}/curl.log\nmv {d}/status.tmp {d}/status\n"
    );
    std::fs::write(browser.dir.path().join("browser.sh"), script).unwrap();
    let credential = builder(&emulator, browser.env()).build().unwrap();
    bounded(credential.get_token(&[SCOPE], &TokenRequestOptions::default()))
        .await
        .unwrap();
    assert_eq!(browser.finished().await.as_deref(), Some("200"));
}

#[tokio::test]
async fn a_configured_redirect_path_is_served_and_other_paths_are_not() {
    let emulator = Emulator::start().await;
    let browser = ScriptedBrowser::new();
    let credential = builder(&emulator, browser.env())
        .redirect_uri("http://127.0.0.1:0/callback")
        .build()
        .unwrap();
    let record = bounded(credential.authenticate(&[SCOPE])).await.unwrap();
    assert_eq!(record.username(), "user@contoso.com");
    let redirect = &emulator.requests("/authorize")[0].params["redirect_uri"];
    assert!(redirect.starts_with("http://127.0.0.1:"), "{redirect}");
    assert!(redirect.ends_with("/callback"), "{redirect}");

    for bad in [
        "https://localhost:1",
        "http://example.com:1/",
        "http://localhost:1/?x=1",
        "not a url",
    ] {
        let err = InteractiveBrowserCredential::builder()
            .redirect_uri(bad)
            .runtime(identity_core::Runtime::with_env(Env::empty()))
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfiguration, "{bad}");
    }
}

#[tokio::test]
async fn a_callback_with_another_state_is_refused_and_the_wait_goes_on() {
    let emulator = Emulator::start().await;
    emulator.with(|s| s.wrong_state = true);
    let browser = ScriptedBrowser::new();
    let sleeper = UntilFile(browser.dir.path().join("status"));
    let credential = builder(&emulator, browser.env())
        .update_runtime(|r| r.sleeper(Arc::new(sleeper)))
        .build()
        .unwrap();
    let err = bounded(credential.get_token(&[SCOPE], &TokenRequestOptions::default()))
        .await
        .unwrap_err();
    assert!(
        err.message().contains("did not complete within 60 s"),
        "{err}"
    );
    assert_eq!(browser.read("status").as_deref(), Some("400"));
    assert!(emulator.requests("/token").is_empty());
}

#[tokio::test]
async fn access_denied_and_other_error_callbacks_are_clear_errors() {
    for (error, expected) in [
        ("access_denied", "declined or cancelled (access_denied)"),
        ("consent_required", "the sign-in failed (consent_required)"),
    ] {
        let emulator = Emulator::start().await;
        emulator.with(|s| s.deny = Some(error));
        let browser = ScriptedBrowser::new();
        let credential = builder(&emulator, browser.env()).build().unwrap();
        let err = bounded(credential.get_token(&[SCOPE], &TokenRequestOptions::default()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
        assert!(err.message().contains(expected), "{err}");
        assert!(err.message().contains("AADSTS65004"), "{err}");
        assert_eq!(browser.finished().await.as_deref(), Some("200"));
        assert!(browser.read("page").unwrap().contains("Sign-in failed"));
    }
}

#[tokio::test]
async fn the_timeout_ends_the_wait_without_waiting_in_real_time() {
    let emulator = Emulator::start().await;
    let sleeper = RecordingSleeper::new();
    let credential = builder(&emulator, Env::from_pairs([(BROWSER, "true")]))
        .timeout(DEFAULT_TIMEOUT)
        .update_runtime(|r| r.sleeper(sleeper.shared()))
        .build()
        .unwrap();
    let err = bounded(credential.get_token(&[SCOPE], &TokenRequestOptions::default()))
        .await
        .unwrap_err();
    assert!(err.message().contains("within 300 s"), "{err}");
    assert_eq!(sleeper.slept(), [DEFAULT_TIMEOUT]);
}

/// Signs in with `BROWSER` set to `browser`, where the user, shown the prompt, opens its URL
/// by hand; returns the one prompt shown.
async fn prompt_shown_with_browser(browser: &str) -> String {
    let emulator = Emulator::start().await;
    let shown = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = shown.clone();
    let credential = builder(&emulator, Env::from_pairs([(BROWSER, browser)]))
        .prompt(move |text| {
            sink.lock().unwrap().push(text.to_owned());
            let url = text.lines().last().unwrap().to_owned();
            std::thread::spawn(move || {
                let _ = std::process::Command::new("curl")
                    .args(["-sS", "-L", "--max-time", "20", "-o", "/dev/null", &url])
                    .status();
            });
        })
        .build()
        .unwrap();
    bounded(credential.get_token(&[SCOPE], &TokenRequestOptions::default()))
        .await
        .unwrap();
    let shown = shown.lock().unwrap();
    assert_eq!(shown.len(), 1, "{browser}");
    assert!(shown[0].contains("/oauth2/v2.0/authorize?"), "{}", shown[0]);
    shown[0].clone()
}

/// `curl` on `url`, printing the `--write-out` variable `out`.
fn curl(url: &str, out: &str) -> String {
    let output = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", "-o", "/dev/null", "-w", out, url])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// As Chrome does: a speculative connection to the redirect listener, silent until the
/// redirect, and meanwhile a request for `/favicon.ico` on another; then the redirect on the
/// early connection. Returns the favicon's status and the redirect's answer.
fn preconnecting_browser(url: &str) -> (String, String) {
    use std::io::{Read as _, Write as _};
    let query = url.split_once('?').unwrap().1;
    let (_, redirect) = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "redirect_uri")
        .unwrap();
    let port: u16 = redirect.rsplit(':').next().unwrap().parse().unwrap();
    let mut early = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let location = curl(url, "%{redirect_url}");
    let favicon = curl(
        &format!("http://127.0.0.1:{port}/favicon.ico"),
        "%{http_code}",
    );
    // `http://localhost:<port>/?code=…&state=…`
    let target = location.split_once(&format!(":{port}")).unwrap().1;
    let request = format!("GET {target} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n");
    let mut answer = String::new();
    if early.write_all(request.as_bytes()).is_ok() {
        early
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let _ = early.read_to_string(&mut answer);
    }
    (favicon, answer)
}

#[tokio::test]
async fn a_browser_that_preconnects_idly_is_served_on_every_connection() {
    let emulator = Emulator::start().await;
    let (sender, seen) = std::sync::mpsc::channel();
    let sender = Mutex::new(sender);
    let credential = builder(
        &emulator,
        Env::from_pairs([(BROWSER, "/nonexistent/browser")]),
    )
    .prompt(move |text| {
        let url = text.lines().last().unwrap().to_owned();
        let sender = sender.lock().unwrap().clone();
        std::thread::spawn(move || {
            let _ = sender.send(preconnecting_browser(&url));
        });
    })
    .build()
    .unwrap();
    let signed_in = bounded(credential.get_token(&[SCOPE], &TokenRequestOptions::default())).await;
    let (favicon, answer) = seen.recv_timeout(Duration::from_secs(60)).unwrap();
    let token = signed_in.unwrap().token;
    assert!(token.secret().starts_with("at-browser-"));
    // Served while the early connection was open and silent.
    assert_eq!(favicon, "404");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("You can close this window"), "{answer}");
}

#[tokio::test]
async fn when_the_browser_command_fails_the_url_goes_to_the_prompt() {
    // Starts, then fails, as `xdg-open` does on a machine without a browser.
    let shown = prompt_shown_with_browser("/bin/false").await;
    assert!(shown.contains("browser command failed"), "{shown}");
}

#[tokio::test]
async fn when_no_browser_starts_the_url_goes_to_the_prompt() {
    let shown = prompt_shown_with_browser("/nonexistent/browser --flag").await;
    assert!(
        shown.contains("/nonexistent/browser could not be started"),
        "{shown}"
    );
}

#[test]
fn browser_commands_run_without_a_shell_and_refuse_metacharacters() {
    assert_eq!(
        browser_command("firefox --new-window").unwrap(),
        ["firefox", "--new-window"]
    );
    for bad in [
        "sh -c 'open x'",
        "firefox; rm -rf ~",
        "a | b",
        "$(evil)",
        "`evil`",
        "a\nb",
        "  ",
    ] {
        assert!(browser_command(bad).is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn codes_verifiers_and_refresh_tokens_never_reach_errors_debug_or_logs() {
    let emulator = Emulator::start().await;
    let browser = ScriptedBrowser::new();
    let credential = builder(&emulator, browser.env()).build().unwrap();
    let capture = Capture::new();
    let _guard = capture.enter();
    bounded(credential.get_token(&[SCOPE], &TokenRequestOptions::default()))
        .await
        .unwrap();
    // An echoing service refuses the refresh token and then the code.
    emulator.with(|s| {
        s.echo_secrets = true;
        s.refuse_refresh = true;
    });
    // The refused refresh token (echoed in the refusal) sends the user to the browser again.
    bounded(credential.get_token(
        &["https://graph.microsoft.com/.default"],
        &TokenRequestOptions::default(),
    ))
    .await
    .unwrap();
    assert_eq!(emulator.requests("/authorize").len(), 2);
    let verifier_seen: Vec<String> = emulator
        .requests("/token")
        .iter()
        .filter_map(|r| r.params.get("code_verifier").cloned())
        .collect();
    let text = format!("{credential:?} {:?}", credential.authentication_record());
    for needle in ["planted", "at-browser"] {
        assert!(!text.contains(needle), "{needle} in {text}");
        capture.assert_absent(needle);
    }
    for verifier in &verifier_seen {
        assert!(!text.contains(verifier.as_str()));
        capture.assert_absent(verifier);
    }
}

#[tokio::test]
async fn a_refused_code_exchange_error_does_not_echo_the_code_or_verifier() {
    let emulator = Emulator::start().await;
    let browser = ScriptedBrowser::new();
    // A real code and verifier, then a refusal that echoes both, through the credential's
    // parser.
    let credential = builder(&emulator, browser.env()).build().unwrap();
    bounded(credential.authenticate(&[SCOPE])).await.unwrap();
    let exchange = emulator.requests("/token").pop().unwrap();
    let code = exchange.params["code"].clone();
    let verifier = exchange.params["code_verifier"].clone();
    let body = serde_json::json!({
        "error": "invalid_grant",
        "error_description": format!("AADSTS54005: code {code} with verifier {verifier} was already redeemed"),
    });
    let response = http::Response::builder()
        .status(400)
        .body(bytes::Bytes::from(body.to_string()))
        .unwrap();
    let err = credential
        .kind
        .client
        .parse_token_response(
            &response,
            std::time::SystemTime::UNIX_EPOCH,
            &[&code, &verifier],
        )
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("AADSTS54005"), "{text}");
    assert!(!text.contains(&code) && !text.contains(&verifier), "{text}");
}

#[tokio::test]
async fn a_second_credential_with_the_record_and_the_file_gets_a_token_without_a_prompt() {
    let emulator = Emulator::start().await;
    let browser = ScriptedBrowser::new();
    let home = tempfile::tempdir().unwrap();
    let persistence = TokenCachePersistenceOptions::new()
        .name("signin-test")
        .directory(home.path())
        .without_platform_keyring()
        .allow_unencrypted_storage(true);
    let first = builder(&emulator, browser.env())
        .token_cache_persistence(persistence.clone())
        .build()
        .unwrap();
    let record = bounded(first.authenticate(&[SCOPE])).await.unwrap();
    let json = record.serialize();
    let file = std::fs::read_to_string(home.path().join("signin-test.json")).unwrap();
    assert!(
        file.contains("planted-refresh-token"),
        "the file keeps the refresh token"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.path().join("signin-test.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // "Another process": a new credential from the serialized record and the file, with a
    // browser that must not be used.
    let record = AuthenticationRecord::deserialize(&json).unwrap();
    let second = builder(
        &emulator,
        Env::from_pairs([(BROWSER, "/nonexistent/never")]),
    )
    .authentication_record(record)
    .token_cache_persistence(persistence)
    .build()
    .unwrap();
    let token = bounded(second.get_token(&[SCOPE], &TokenRequestOptions::default()))
        .await
        .unwrap();
    assert!(token.token.secret().starts_with("at-refresh-"));
    assert_eq!(emulator.requests("/authorize").len(), 1);
}

/// The path of a Chromium binary, if one is installed.
fn chromium() -> Option<&'static str> {
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
}

#[tokio::test]
async fn a_real_headless_chromium_follows_the_sign_in_page_to_the_listener() {
    let Some(chromium) = chromium() else {
        // `cargo xtask ci` installs Chromium where it can (Debian, as root); elsewhere this
        // test cannot run.
        eprintln!(
            "SKIPPED a_real_headless_chromium_follows_the_sign_in_page_to_the_listener: no chromium in /usr/bin (apt-get install chromium)"
        );
        return;
    };
    let emulator = Emulator::start().await;
    emulator.with(|s| s.sign_in_page = true);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let script = format!(
        "#!/bin/sh\ntimeout 60 {chromium} --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run --no-default-browser-check --user-data-dir={d}/profile --virtual-time-budget=10000 --dump-dom \"$1\" > {d}/page 2> {d}/chromium.log\necho done > {d}/done\n"
    );
    std::fs::write(dir.path().join("browser.sh"), script).unwrap();
    let env = Env::from_pairs([(
        BROWSER,
        format!("/bin/sh {}", dir.path().join("browser.sh").display()),
    )]);
    let credential = builder(&emulator, env).build().unwrap();
    let result = bounded(credential.get_token(&[SCOPE], &TokenRequestOptions::default())).await;
    let log = || std::fs::read_to_string(dir.path().join("chromium.log")).unwrap_or_default();
    let token = result.unwrap_or_else(|e| panic!("{e}; chromium said: {}", log()));
    assert!(token.token.secret().starts_with("at-browser-"));
    // Chromium itself loaded the emulator's sign-in page and followed it to the listener
    // with the right code and state (the code was redeemed with its PKCE verifier).
    let authorize = emulator.requests("/authorize");
    assert_eq!(authorize.len(), 1);
    let agent = authorize[0].user_agent.clone().unwrap_or_default();
    assert!(agent.contains("HeadlessChrome"), "user agent: {agent}");
    assert_eq!(emulator.grants("authorization_code"), 1);
    // Let Chromium exit (bounded by the script's `timeout 60`) before its directory goes.
    for _ in 0..700 {
        if dir.path().join("done").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
