//! The sidecar load test (`cargo xtask sidecar-load`): many client processes, each a fresh
//! `ManagedIdentityCredential` asking for a few resources in a loop, against an emulated IMDS
//! that enforces the host limits; once with every process calling IMDS directly, once
//! through one `identity-sidecar` process.
//!
//! * The emulated IMDS is a small HTTP/1.1 server on 127.0.0.1 (keep-alive). It answers at
//!   most [`Config::imds_per_second`] requests in any sliding second and
//!   [`Config::imds_in_flight`] at once, each after [`Config::imds_latency`]; beyond either
//!   limit it answers 429 with `Retry-After: 1` at once. Tokens live [`Config::token_lifetime`]
//!   (`expires_in`), so the caches refresh during the run.
//! * Each client is a child process (this binary, `client` mode) with one credential: every
//!   100 ms it asks for each resource once and records the latency of each call and its
//!   errors; it ends at the deadline and prints its figures on one line. The caller secret
//!   reaches a client through its environment (`IDENTITY_HEADER`), never its arguments.
//! * The sidecar runs as its own process (`--imds-endpoint` at the emulator, default limits);
//!   its resident memory is read from `/proc/<pid>/status` at the end of the run.
//! * Everything is bounded: children are killed at the deadline plus 60 s.

use std::collections::VecDeque;
use std::fmt;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use identity_core::{Env, TokenCredential as _, TokenRequestOptions};
use identity_msi::ManagedIdentityCredential;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader as TokioBufReader};
use tokio::net::{TcpListener, TcpStream};

/// The resources every client asks for.
pub const RESOURCES: [&str; 3] = [
    "https://storage.azure.com",
    "https://vault.azure.net",
    "https://management.azure.com",
];

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// How long the clients run.
    pub duration: Duration,
    /// How many client processes.
    pub clients: usize,
    /// The emulated IMDS's rate limit per sliding second.
    pub imds_per_second: usize,
    /// The emulated IMDS's in-flight limit.
    pub imds_in_flight: usize,
    /// How long the emulated IMDS takes per accepted request.
    pub imds_latency: Duration,
    /// The lifetime of each token.
    pub token_lifetime: Duration,
    /// The `identity-sidecar` binary.
    pub sidecar_bin: PathBuf,
}

impl Config {
    /// The issue's load: 48 clients for 30 s, IMDS at 20 per second and 5 in flight, 60 s
    /// tokens.
    pub fn new(sidecar_bin: PathBuf) -> Self {
        Self {
            duration: Duration::from_secs(30),
            clients: 48,
            imds_per_second: 20,
            imds_in_flight: 5,
            imds_latency: Duration::from_millis(20),
            token_lifetime: Duration::from_secs(60),
            sidecar_bin,
        }
    }
}

/// One run's row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    /// `direct` or `sidecar`.
    pub mode: &'static str,
    /// Requests the emulated IMDS received.
    pub upstream_requests: u64,
    /// Of those, answered 429.
    pub throttled: u64,
    /// `get_token` calls that failed, over all clients.
    pub client_errors: u64,
    /// `get_token` calls, over all clients.
    pub client_calls: u64,
    /// Median client latency, in milliseconds.
    pub p50_ms: f64,
    /// 99th-percentile client latency, in milliseconds.
    pub p99_ms: f64,
    /// The slowest client call (a cold fetch with its retries), in milliseconds.
    pub max_ms: f64,
    /// The sidecar's resident memory at the end, in KiB.
    pub sidecar_rss_kib: Option<u64>,
    /// Clients that did not report (crashed or killed).
    pub lost_clients: usize,
}

/// The table of both runs.
#[derive(Clone, Debug)]
pub struct Table(pub Vec<Row>);

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "| mode | upstream requests | 429s seen | client errors | client calls | client p50 | client p99 | client max | sidecar memory |"
        )?;
        writeln!(
            f,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        )?;
        for r in &self.0 {
            let mem = r.sidecar_rss_kib.map_or_else(
                || "n/a".to_owned(),
                |k| format!("{}.{} MiB", k / 1024, (k % 1024) * 10 / 1024),
            );
            writeln!(
                f,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.mode,
                r.upstream_requests,
                r.throttled,
                r.client_errors,
                r.client_calls,
                latency(r.p50_ms),
                latency(r.p99_ms),
                latency(r.max_ms),
                mem
            )?;
        }
        Ok(())
    }
}

/// Milliseconds below 1 as microseconds, so a cache hit does not read as 0.
fn latency(ms: f64) -> String {
    if ms < 1.0 {
        format!("{:.0} us", ms * 1000.0)
    } else {
        format!("{ms:.1} ms")
    }
}

// ---- the emulated IMDS ------------------------------------------------------------------

#[derive(Debug, Default)]
struct Imds {
    requests: AtomicU64,
    throttled: AtomicU64,
    in_flight: AtomicUsize,
    window: Mutex<VecDeque<Instant>>,
    issued: AtomicU64,
}

/// Starts the emulated IMDS on 127.0.0.1; returns its token URL and counters.
async fn start_imds(config: &Config) -> Result<(String, Arc<Imds>), String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot bind the emulated IMDS: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let imds = Arc::new(Imds::default());
    let (limit, in_flight, latency, lifetime) = (
        config.imds_per_second,
        config.imds_in_flight,
        config.imds_latency,
        config.token_lifetime,
    );
    let state = imds.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let _ = serve(stream, &state, limit, in_flight, latency, lifetime).await;
            });
        }
    });
    Ok((
        format!("http://{addr}/metadata/identity/oauth2/token"),
        imds,
    ))
}

async fn serve(
    stream: TcpStream,
    imds: &Imds,
    limit: usize,
    max_in_flight: usize,
    latency: Duration,
    lifetime: Duration,
) -> std::io::Result<()> {
    let mut reader = TokioBufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 || line.len() > 8192 {
            return Ok(());
        }
        let target = line.split(' ').nth(1).unwrap_or("").to_owned();
        // Headers, up to the blank line.
        for _ in 0..64 {
            let mut header = String::new();
            if reader.read_line(&mut header).await? == 0 {
                return Ok(());
            }
            if header == "\r\n" || header == "\n" {
                break;
            }
        }
        imds.requests.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let admitted = {
            let mut window = imds
                .window
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            while window
                .front()
                .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
            {
                window.pop_front();
            }
            let busy = imds.in_flight.load(Ordering::Acquire) >= max_in_flight;
            if window.len() >= limit || busy {
                false
            } else {
                window.push_back(now);
                imds.in_flight.fetch_add(1, Ordering::AcqRel);
                true
            }
        };
        let response = if admitted {
            tokio::time::sleep(latency).await;
            let resource = query_value(&target, "resource");
            let n = imds.issued.fetch_add(1, Ordering::Relaxed);
            let expires = identity_core::system_clock()
                .now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                + lifetime.as_secs();
            let body = format!(
                r#"{{"access_token":"emulated-{n}","expires_in":"{}","expires_on":"{expires}","resource":"{resource}","token_type":"Bearer"}}"#,
                lifetime.as_secs()
            );
            // Answered: no longer in flight (before the bytes leave, so that a client that
            // sends its next request on receipt is never counted twice).
            imds.in_flight.fetch_sub(1, Ordering::AcqRel);
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
        } else {
            imds.throttled.fetch_add(1, Ordering::Relaxed);
            let body = r#"{"error":"too_many_requests","error_description":"throttled"}"#;
            format!(
                "HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        reader.get_mut().write_all(response.as_bytes()).await?;
    }
}

fn query_value(target: &str, name: &str) -> String {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.replace("%3A", ":").replace("%2F", "/"))
        .unwrap_or_default()
}

// ---- a client process -------------------------------------------------------------------

/// Runs one client until `duration` passes: one credential (direct: IMDS at `endpoint`;
/// sidecar: App Service at `endpoint` with `IDENTITY_HEADER` from `env`). Returns the line
/// the parent reads: `errors <n> calls <n> latencies_us <v> <v> …`.
///
/// # Errors
/// When the credential cannot be built.
pub async fn client(
    mode: &str,
    endpoint: &str,
    env: &Env,
    duration: Duration,
) -> Result<String, String> {
    let credential = match mode {
        "direct" => ManagedIdentityCredential::builder()
            .runtime(identity_core::Runtime::with_env(Env::empty()))
            .imds_endpoint(endpoint)
            .build(),
        _ => ManagedIdentityCredential::builder()
            .runtime(identity_core::Runtime::with_env(Env::from_pairs([
                ("IDENTITY_ENDPOINT", endpoint),
                ("IDENTITY_HEADER", env.get("IDENTITY_HEADER").unwrap_or("")),
            ])))
            .build(),
    }
    .map_err(|e| e.to_string())?;
    let scopes: Vec<String> = RESOURCES.iter().map(|r| format!("{r}/.default")).collect();
    let deadline = Instant::now() + duration;
    let mut latencies = Vec::new();
    let mut errors = 0u64;
    while Instant::now() < deadline {
        for scope in &scopes {
            let started = Instant::now();
            let result = tokio::time::timeout(
                Duration::from_secs(120),
                credential.get_token(&[scope.as_str()], &TokenRequestOptions::default()),
            )
            .await;
            latencies.push(started.elapsed().as_micros());
            if !matches!(result, Ok(Ok(_))) {
                errors += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut line = format!("errors {errors} calls {} latencies_us", latencies.len());
    for l in latencies {
        line.push(' ');
        line.push_str(&l.to_string());
    }
    Ok(line)
}

// ---- the parent -------------------------------------------------------------------------

fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

struct Sidecar {
    child: Child,
    endpoint: String,
    secret: String,
    _dir: tempfile::TempDir,
}

fn start_sidecar(bin: &Path, imds_url: &str) -> Result<Sidecar, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let secret_path = dir.path().join("identity-header");
    let mut child = Command::new(bin)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log",
            "warn",
            "--imds-endpoint",
            imds_url,
        ])
        .arg("--write-secret-file")
        .arg(&secret_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let endpoint = lines
        .next()
        .and_then(Result::ok)
        .and_then(|l| l.strip_prefix("IDENTITY_ENDPOINT=").map(str::to_owned))
        .ok_or("the sidecar did not print IDENTITY_ENDPOINT")?;
    // The second line names the secret file (read both, so the sidecar never writes to a
    // closed pipe).
    let _ = lines.next();
    let secret = std::fs::read_to_string(&secret_path).map_err(|e| e.to_string())?;
    Ok(Sidecar {
        child,
        endpoint,
        secret,
        _dir: dir,
    })
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    reason = "a rank within the slice's length and a latency in microseconds shown as milliseconds"
)]
fn percentile(sorted: &[u128], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64 / 1000.0
}

/// One run in `mode` (`direct` or `sidecar`).
///
/// # Errors
/// When the emulator, the sidecar or a client cannot start.
pub async fn run_mode(config: &Config, mode: &'static str) -> Result<Row, String> {
    let (imds_url, imds) = start_imds(config).await?;
    let sidecar = match mode {
        "sidecar" => Some(start_sidecar(&config.sidecar_bin, &imds_url)?),
        _ => None,
    };
    let endpoint = sidecar
        .as_ref()
        .map_or_else(|| imds_url.clone(), |s| s.endpoint.clone());
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut children = Vec::new();
    for _ in 0..config.clients {
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.args([
            "client",
            mode,
            &endpoint,
            &config.duration.as_secs().to_string(),
        ])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
        if let Some(s) = &sidecar {
            cmd.env("IDENTITY_HEADER", &s.secret);
        }
        children.push(
            cmd.spawn()
                .map_err(|e| format!("cannot start a client: {e}"))?,
        );
    }
    let limit = config.duration + Duration::from_secs(60);
    let mut latencies = Vec::new();
    let mut row = Row {
        mode,
        ..Row::default()
    };
    let outputs = futures_join(children, limit).await;
    for output in outputs {
        let Some(line) = output else {
            row.lost_clients += 1;
            continue;
        };
        let mut words = line.split_whitespace();
        let mut field = |name: &str| {
            (words.next() == Some(name))
                .then(|| words.next().and_then(|v| v.parse::<u64>().ok()))
                .flatten()
        };
        let (Some(errors), Some(calls)) = (field("errors"), field("calls")) else {
            row.lost_clients += 1;
            continue;
        };
        row.client_errors += errors;
        row.client_calls += calls;
        let rest = line.split_once("latencies_us").map_or("", |(_, r)| r);
        latencies.extend(
            rest.split_whitespace()
                .filter_map(|v| v.parse::<u128>().ok()),
        );
    }
    latencies.sort_unstable();
    row.p50_ms = percentile(&latencies, 0.50);
    row.p99_ms = percentile(&latencies, 0.99);
    row.max_ms = percentile(&latencies, 1.0);
    row.upstream_requests = imds.requests.load(Ordering::Relaxed);
    row.throttled = imds.throttled.load(Ordering::Relaxed);
    if let Some(mut s) = sidecar {
        row.sidecar_rss_kib = resident_kib(s.child.id());
        let _ = s.child.kill();
        let _ = s.child.wait();
    }
    Ok(row)
}

/// Waits for every child's single output line, each within `limit`.
async fn futures_join(
    children: Vec<tokio::process::Child>,
    limit: Duration,
) -> Vec<Option<String>> {
    let tasks: Vec<_> = children
        .into_iter()
        .map(|child| {
            tokio::spawn(async move {
                tokio::time::timeout(limit, child.wait_with_output())
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .filter(|o| o.status.success())
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.ok().flatten());
    }
    out
}

/// Both runs, direct first.
///
/// # Errors
/// As [`run_mode`].
pub async fn run(config: &Config) -> Result<Table, String> {
    let direct = run_mode(config, "direct").await?;
    let through = run_mode(config, "sidecar").await?;
    Ok(Table(vec![direct, through]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_the_table() {
        let sorted: Vec<u128> = (1..=100).map(|v| v * 1000).collect();
        assert!((percentile(&sorted, 0.5) - 51.0).abs() < 1e-9);
        assert!((percentile(&sorted, 0.99) - 99.0).abs() < 1e-9);
        assert!(percentile(&[], 0.5).abs() < 1e-9);
        let table = Table(vec![Row {
            mode: "sidecar",
            upstream_requests: 3,
            p50_ms: 0.012,
            p99_ms: 12.5,
            max_ms: 1500.0,
            sidecar_rss_kib: Some(10_240),
            ..Row::default()
        }]);
        let text = table.to_string();
        assert!(
            text.contains("| sidecar | 3 | 0 | 0 | 0 | 12 us | 12.5 ms | 1500.0 ms | 10.0 MiB |"),
            "{text}"
        );
    }

    #[test]
    fn the_emulator_reads_the_resource_from_the_query() {
        assert_eq!(
            query_value(
                "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net",
                "resource"
            ),
            "https://vault.azure.net"
        );
        assert_eq!(query_value("/x", "resource"), "");
    }
}
