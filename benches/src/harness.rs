//! The parts shared by both subjects of a case: the emulated App Service endpoint, the
//! blackholed listener, statistics and the one-line JSON report of a child process.
//!
//! This file is compiled into two binaries: `identity-bench` (this workspace) and
//! `official-bench` (`benches/official`, outside the workspace, through `#[path]`), so that
//! both subjects meet byte-identical servers and report in the same shape.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The scope every case asks for (scope A).
pub(crate) const SCOPE_A: &str = "https://storage.azure.com/.default";
/// The second scope of case 3 (scope B).
pub(crate) const SCOPE_B: &str = "https://vault.azure.net/.default";
/// The `IDENTITY_HEADER` value: a recognisable secret that no report line may contain.
pub(crate) const IDENTITY_HEADER: &str = "bench-identity-header-secret";

/// What the emulated endpoint answers: changeable while it runs (case 5 switches the delay
/// and the lifetime after the first token).
#[derive(Debug, Default)]
pub(crate) struct Behaviour {
    /// Delay before each answer, in milliseconds.
    pub(crate) delay_ms: AtomicU64,
    /// Lifetime of each issued token, in seconds.
    pub(crate) lifetime_s: AtomicU64,
    /// Requests seen so far.
    pub(crate) requests: AtomicU64,
}

impl Behaviour {
    /// A behaviour with the given delay and token lifetime.
    pub(crate) fn new(delay: Duration, lifetime_s: u64) -> Arc<Self> {
        let b = Self::default();
        b.set(delay, lifetime_s);
        Arc::new(b)
    }

    /// Changes the delay and the lifetime of later answers.
    pub(crate) fn set(&self, delay: Duration, lifetime_s: u64) {
        self.delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
        self.lifetime_s.store(lifetime_s, Ordering::SeqCst);
    }

    /// Requests seen so far.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Seconds since the Unix epoch, from the system clock: the emulated service stamps tokens
/// with real time, as the platform does.
#[allow(
    clippy::disallowed_methods,
    reason = "the emulated service is the platform, not library code: it uses wall time"
)]
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The App Service (2019-08-01) success body: `expires_on` as a decimal string.
pub(crate) fn app_service_body(expires_on: u64) -> String {
    format!(
        r#"{{"access_token":"bench-token","expires_on":"{expires_on}","resource":"https://storage.azure.com","token_type":"Bearer","client_id":"00000000-0000-0000-0000-000000000000"}}"#
    )
}

/// Serves App Service token requests on `addr` (127.0.0.1 only) until the process ends.
/// Keeps connections alive, so a pooling client reuses them and a non-pooling one does not.
///
/// # Errors
/// When the port cannot be bound.
pub(crate) async fn serve(addr: SocketAddr, behaviour: Arc<Behaviour>) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(connection(stream, Arc::clone(&behaviour)));
        }
    });
    Ok(())
}

async fn connection(mut stream: TcpStream, behaviour: Arc<Behaviour>) {
    let mut buf = vec![0u8; 8192];
    let mut read = 0;
    loop {
        // Read one request head; token requests have no body.
        let end = loop {
            if let Some(i) = buf[..read].windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if read == buf.len() {
                return;
            }
            match stream.read(&mut buf[read..]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => read += n,
            }
        };
        buf.copy_within(end..read, 0);
        read -= end;
        behaviour.requests.fetch_add(1, Ordering::SeqCst);
        let delay = behaviour.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let body = app_service_body(unix_now() + behaviour.lifetime_s.load(Ordering::SeqCst));
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        if stream.write_all(head.as_bytes()).await.is_err()
            || stream.write_all(body.as_bytes()).await.is_err()
        {
            return;
        }
    }
}

/// A blackholed loopback address: connecting never completes, as to an address whose packets
/// are dropped. A listener that is never accepted from has its accept queue filled first
/// (Linux then drops further SYNs), so a client meets its connect timeout rather than a
/// silent, established connection.
///
/// # Errors
/// When no loopback port can be bound.
pub(crate) async fn blackhole() -> std::io::Result<SocketAddr> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let listener = socket.listen(1)?;
    let addr = listener.local_addr()?;
    let mut fillers = Vec::new();
    for _ in 0..16 {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => fillers.push(stream),
            // The queue is full: this connect hangs, as every later one will.
            _ => break,
        }
    }
    tokio::spawn(async move {
        let _held = (listener, fillers);
        std::future::pending::<()>().await;
    });
    Ok(addr)
}

/// A loopback port with nothing listening (connections are refused).
///
/// # Errors
/// When no loopback port can be bound.
pub(crate) fn refused() -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.local_addr()
}

/// The endpoint address handed to a child in `BENCH_ADDR` (always loopback).
///
/// # Errors
/// When `BENCH_ADDR` is missing, unparsable or not a loopback address.
pub(crate) fn endpoint_addr(value: Option<String>) -> Result<SocketAddr, String> {
    let addr: SocketAddr = value
        .ok_or("BENCH_ADDR is not set")?
        .parse()
        .map_err(|e| format!("BENCH_ADDR is not an address: {e}"))?;
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(format!("refusing a non-loopback endpoint {addr}"))
    }
}

/// The value at quantile `q` (0..=1) of `samples`, sorted in place; NaN when empty.
pub(crate) fn quantile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    if samples.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a short sample vector"
    )]
    let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
    samples[i]
}

/// The median of `samples`.
pub(crate) fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    if samples.is_empty() {
        return f64::NAN;
    }
    samples[samples.len() / 2]
}

/// One measured figure of a case.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Metric {
    /// Row key, identical for both subjects.
    pub(crate) key: String,
    /// The figure.
    pub(crate) value: f64,
    /// Its unit (`ns`, `µs`, `ms`, `requests`, ...).
    pub(crate) unit: String,
}

impl Metric {
    /// A metric.
    pub(crate) fn new(key: &str, value: f64, unit: &str) -> Self {
        Self {
            key: key.to_owned(),
            value,
            unit: unit.to_owned(),
        }
    }
}

/// The one JSON line a child prints on stdout.
pub(crate) fn report_line(case: u32, metrics: &[Metric]) -> String {
    let metrics: Vec<serde_json::Value> = metrics
        .iter()
        .map(|m| serde_json::json!({"key": m.key, "value": m.value, "unit": m.unit}))
        .collect();
    serde_json::json!({"case": case, "metrics": metrics}).to_string()
}

/// The metrics in a child's JSON line (NaN values come back as JSON null and stay NaN).
pub(crate) fn parse_report(line: &str) -> Option<Vec<Metric>> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v["metrics"]
        .as_array()?
        .iter()
        .map(|m| {
            Some(Metric {
                key: m["key"].as_str()?.to_owned(),
                value: m["value"].as_f64().unwrap_or(f64::NAN),
                unit: m["unit"].as_str()?.to_owned(),
            })
        })
        .collect()
}

/// Milliseconds in `d`, as a float.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Nanoseconds per call of a batch.
pub(crate) fn ns_per(d: Duration, calls: u64) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "call counts are far below 2^52")]
    let calls = calls as f64;
    d.as_secs_f64() * 1e9 / calls
}
