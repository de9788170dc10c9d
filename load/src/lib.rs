//! Load test for the token path: many concurrent tasks over many
//! `ManagedIdentityCredential`s against an in-process emulated App Service endpoint.
//!
//! * The endpoint is a small HTTP/1.1 server on 127.0.0.1 (keep-alive, one task per
//!   connection). Each token it issues encodes the identity (`client_id`) and resource it was
//!   issued for, so a token served to the wrong caller is detected. Every 100th request is
//!   answered with 500 (1% injected failures, deterministic so runs compare). Tokens live
//!   [`Config::token_lifetime`] (20 s by default) so the cache's refresh path runs during a
//!   30 s run (a 20 s token is refreshed at half its lifetime).
//! * The credentials are user-assigned by distinct client ids and share one `HyperClient`.
//!   Retries use the default App Service policy with real sleeps (a retried 500 waits
//!   0–1.6 s), which is part of what is measured.
//! * Each task loops `get_token` on a pseudo-random (credential, scope) pair until the
//!   deadline; a panicking task is counted through its `JoinHandle`. The whole run sits under
//!   a `tokio::time::timeout` guard of the duration plus 60 s.
//! * Resident memory is read from `/proc/self/status` (`VmRSS`), where that file exists.

pub mod sidecar_load;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use identity_core::http::HyperClient;
use identity_core::{Env, TokenCredential, TokenRequestOptions};
use identity_msi::ManagedIdentityCredential;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The secret the emulated endpoint expects in `X-IDENTITY-HEADER`.
const HEADER_SECRET: &str = "load-test-identity-header";

/// What to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// How long the tasks keep asking for tokens.
    pub duration: Duration,
    /// How many concurrent tasks.
    pub tasks: usize,
    /// How many credentials (distinct user-assigned identities).
    pub credentials: usize,
    /// How many distinct scopes each credential is asked for.
    pub scopes: usize,
    /// One request in this many is answered with 500 (0: none).
    pub fail_every: u64,
    /// The lifetime of each issued token.
    pub token_lifetime: Duration,
}

impl Default for Config {
    /// The load: 10,000 tasks over 100 credentials for 30 s, 1% failures.
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(30),
            tasks: 10_000,
            credentials: 100,
            scopes: 4,
            fail_every: 100,
            token_lifetime: Duration::from_secs(20),
        }
    }
}

/// What a run observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The configuration, echoed.
    pub tasks: usize,
    /// Credentials in the run.
    pub credentials: usize,
    /// Wall time of the run, in milliseconds.
    pub elapsed_ms: u128,
    /// `get_token` calls that returned a token.
    pub tokens_served: u64,
    /// Requests the emulated endpoint received.
    pub requests_made: u64,
    /// Of those, answered with an injected 500.
    pub injected_failures: u64,
    /// `get_token` calls that returned an error.
    pub errors: u64,
    /// Tokens issued for another identity or scope than the one asked for (must be 0).
    pub wrong_identity_tokens: u64,
    /// Tasks that panicked (must be 0).
    pub panics: u64,
    /// Whether the run hit its overall guard instead of ending by itself (must be false).
    pub hung: bool,
    /// Resident memory at the start, in KiB, where the platform reports it.
    pub rss_start_kib: Option<u64>,
    /// Resident memory at the end, in KiB.
    pub rss_end_kib: Option<u64>,
}

impl Report {
    /// Whether the run met its invariants: no wrong-identity token, no panic, no hang.
    pub fn passed(&self) -> bool {
        self.wrong_identity_tokens == 0 && self.panics == 0 && !self.hung
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kib = |v: Option<u64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v} KiB"));
        writeln!(f, "| metric | value |")?;
        writeln!(f, "| --- | --- |")?;
        writeln!(f, "| tasks | {} |", self.tasks)?;
        writeln!(f, "| credentials | {} |", self.credentials)?;
        writeln!(f, "| elapsed | {} ms |", self.elapsed_ms)?;
        writeln!(f, "| tokens served | {} |", self.tokens_served)?;
        writeln!(f, "| requests made | {} |", self.requests_made)?;
        writeln!(f, "| injected 500s | {} |", self.injected_failures)?;
        writeln!(f, "| errors | {} |", self.errors)?;
        writeln!(
            f,
            "| wrong-identity tokens | {} |",
            self.wrong_identity_tokens
        )?;
        writeln!(f, "| panics | {} |", self.panics)?;
        writeln!(f, "| hung | {} |", self.hung)?;
        writeln!(f, "| RSS at start | {} |", kib(self.rss_start_kib))?;
        write!(f, "| RSS at end | {} |", kib(self.rss_end_kib))
    }
}

/// Counters shared by the endpoint and the tasks.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    injected: AtomicU64,
    served: AtomicU64,
    errors: AtomicU64,
    wrong: AtomicU64,
}

/// Runs the load test. Needs a multi-threaded tokio runtime.
///
/// # Errors
/// When the emulated endpoint cannot bind a loopback port or a credential cannot be built.
pub async fn run(config: Config) -> Result<Report, String> {
    let rss_start_kib = resident_kib();
    let counters = Arc::new(Counters::default());
    let addr = start_endpoint(config, counters.clone()).await?;
    let client = HyperClient::shared();
    let mut credentials = Vec::with_capacity(config.credentials);
    for i in 0..config.credentials {
        let credential = ManagedIdentityCredential::builder()
            .runtime(
                identity_core::Runtime::with_env(Env::from_pairs([
                    ("IDENTITY_ENDPOINT", format!("http://{addr}/msi/token")),
                    ("IDENTITY_HEADER", HEADER_SECRET.to_owned()),
                ]))
                .http_client(client.clone()),
            )
            .client_id(client_id(i))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("building credential {i}: {e}"))?;
        credentials.push(Arc::new(credential));
    }
    let credentials = Arc::new(credentials);
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + config.duration;
    let mut handles = Vec::with_capacity(config.tasks);
    for task in 0..config.tasks {
        let credentials = credentials.clone();
        let counters = counters.clone();
        handles.push(tokio::spawn(async move {
            worker(task as u64, config, &credentials, &counters, deadline).await;
        }));
    }
    let guard = config.duration + Duration::from_secs(60);
    let joined = tokio::time::timeout(guard, async {
        let mut panics = 0;
        for handle in handles {
            if handle.await.is_err() {
                panics += 1;
            }
        }
        panics
    })
    .await;
    let (panics, hung) = match joined {
        Ok(panics) => (panics, false),
        Err(_) => (0, true),
    };
    Ok(Report {
        tasks: config.tasks,
        credentials: config.credentials,
        elapsed_ms: started.elapsed().as_millis(),
        tokens_served: counters.served.load(Ordering::Relaxed),
        requests_made: counters.requests.load(Ordering::Relaxed),
        injected_failures: counters.injected.load(Ordering::Relaxed),
        errors: counters.errors.load(Ordering::Relaxed),
        wrong_identity_tokens: counters.wrong.load(Ordering::Relaxed),
        panics,
        hung,
        rss_start_kib,
        rss_end_kib: resident_kib(),
    })
}

/// One task: ask for tokens on pseudo-random (credential, scope) pairs until the deadline.
async fn worker(
    seed: u64,
    config: Config,
    credentials: &[Arc<ManagedIdentityCredential>],
    counters: &Counters,
    deadline: tokio::time::Instant,
) {
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let options = TokenRequestOptions::default();
    let mut calls = 0_u32;
    while tokio::time::Instant::now() < deadline {
        rng = xorshift(rng);
        let c = index(rng, credentials.len());
        rng = xorshift(rng);
        let s = index(rng, config.scopes);
        let scope = format!("{}/.default", resource(c, s));
        match credentials[c].get_token(&[&scope], &options).await {
            Ok(token) => {
                counters.served.fetch_add(1, Ordering::Relaxed);
                let expected = expected_token_prefix(c, s);
                let issued_for = token.token.secret().rsplit_once('|').map(|(head, _)| head);
                if issued_for != Some(expected.as_str()) {
                    counters.wrong.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(_) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        calls = calls.wrapping_add(1);
        // A cached get_token never awaits anything that is pending; yield so that 10,000
        // tasks share the workers fairly and the deadline is seen.
        if calls % 8 == 0 {
            tokio::task::yield_now().await;
        }
    }
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

fn index(random: u64, len: usize) -> usize {
    // len is small; the modulo bias is irrelevant here.
    usize::try_from(random % (len.max(1) as u64)).unwrap_or(0)
}

fn client_id(i: usize) -> String {
    format!("00000000-0000-0000-0000-{i:012}")
}

fn resource(credential: usize, scope: usize) -> String {
    format!("https://load-{credential}-{scope}.example")
}

fn expected_token_prefix(credential: usize, scope: usize) -> String {
    format!("{}|{}", client_id(credential), resource(credential, scope))
}

/// Starts the emulated endpoint and returns its address.
async fn start_endpoint(config: Config, counters: Arc<Counters>) -> Result<SocketAddr, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("binding a loopback port: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("reading the loopback address: {e}"))?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counters = counters.clone();
            tokio::spawn(async move {
                // An error only means the client closed the connection.
                let _ = serve(stream, config, &counters).await;
            });
        }
    });
    Ok(addr)
}

/// Serves keep-alive requests on one connection.
async fn serve(stream: TcpStream, config: Config, counters: &Counters) -> std::io::Result<()> {
    let mut stream = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let mut authorised = false;
        loop {
            line.clear();
            if stream.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("x-identity-header") && value.trim() == HEADER_SECRET {
                    authorised = true;
                }
            }
        }
        let n = counters.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let (status, body) = if !authorised {
            (
                "400 Bad Request",
                "{\"error\":\"missing header\"}".to_owned(),
            )
        } else if config.fail_every > 0 && n % config.fail_every == 0 {
            counters.injected.fetch_add(1, Ordering::Relaxed);
            (
                "500 Internal Server Error",
                "{\"error\":\"injected\"}".to_owned(),
            )
        } else {
            let query = target.split_once('?').map_or("", |(_, q)| q);
            let client_id = param(query, "client_id").unwrap_or_default();
            let resource = param(query, "resource").unwrap_or_default();
            (
                "200 OK",
                format!(
                    "{{\"access_token\":\"{client_id}|{resource}|{n}\",\"expires_in\":{},\"token_type\":\"Bearer\",\"resource\":\"{resource}\"}}",
                    config.token_lifetime.as_secs()
                ),
            )
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.get_mut().write_all(response.as_bytes()).await?;
    }
}

/// One query parameter, percent-decoded (only what the credential encodes: `%XX`).
fn param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| decode(v))
    })
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `VmRSS` from `/proc/self/status`, in KiB.
pub fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_reverses_the_credentials_encoding() {
        assert_eq!(
            decode("https%3A%2F%2Fload-1-2.example"),
            "https://load-1-2.example"
        );
        assert_eq!(decode("abc%"), "abc%");
        assert_eq!(decode("%zz"), "%zz");
    }

    #[test]
    fn query_parameters_are_found_by_name() {
        let q = "api-version=2019-08-01&resource=https%3A%2F%2Fx&client_id=abc";
        assert_eq!(param(q, "client_id").as_deref(), Some("abc"));
        assert_eq!(param(q, "resource").as_deref(), Some("https://x"));
        assert_eq!(param(q, "object_id"), None);
    }
}
