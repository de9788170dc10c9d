//! Benchmarks of identity-core's token cache and cold HTTP path, printed as a markdown table.
//!
//! Run with `cargo xtask bench` (a release build). The cases:
//!
//! 1. **cached**: `TokenCache::get_or_fetch` on a fresh cached token from one task, in a tight
//!    loop; each sample is the mean over one batch of calls, and the table shows the median
//!    and p99 of the samples.
//! 2. **contended**: 64 tasks on a 2-worker tokio runtime all reading the same key; each
//!    sample is one batch's wall time divided by its calls.
//! 3. **cold fetch**: an empty cache per call, fetching from a loopback HTTP server that
//!    answers with an App Service-shaped token through `Pipeline` + `HyperClient` (a new
//!    connection per request, as in production).
//!
//! A baseline row gives the cost of one read of the injected system clock, which every cache
//! read pays once.
//!
//! `--quick` runs fewer iterations (a smoke test, not a measurement).
//!
//! Timing uses `std::time::Instant`; the token lifetimes use the injected system clock, as a
//! credential would.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark binary reports on stdout"
)]

use std::hint::black_box;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use identity_core::cache::{KeyRef, TokenCache};
use identity_core::http::{HttpClient, HyperClient, Pipeline, SendOptions};
use identity_core::{AccessToken, Error, system_clock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const NAME: &str = "identity-bench";
const SCOPES: &[&str] = &["https://storage.azure.com/.default"];
const IDENTITY: &str = "bench/app_service/system";

/// Iteration counts for one run.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    cached_batches: usize,
    cached_batch: u32,
    contended_batches: usize,
    contended_per_task: u32,
    cold_warmup: usize,
    cold_samples: usize,
}

const FULL: Sizes = Sizes {
    cached_batches: 200,
    cached_batch: 20_000,
    contended_batches: 40,
    contended_per_task: 2_000,
    cold_warmup: 50,
    cold_samples: 1_000,
};

const QUICK: Sizes = Sizes {
    cached_batches: 10,
    cached_batch: 1_000,
    contended_batches: 3,
    contended_per_task: 100,
    cold_warmup: 2,
    cold_samples: 20,
};

const TASKS: u32 = 64;

struct Row {
    case: &'static str,
    median: String,
    p99: String,
    notes: String,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sizes = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => FULL,
        ["--quick"] => QUICK,
        _ => {
            eprintln!("usage: identity-bench [--quick]");
            return ExitCode::from(2);
        }
    };
    match run(sizes) {
        Ok(rows) => {
            println!("| case | median | p99 | notes |");
            println!("|---|---:|---:|---|");
            for r in rows {
                println!("| {} | {} | {} | {} |", r.case, r.median, r.p99, r.notes);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("identity-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(sizes: Sizes) -> Result<Vec<Row>, Box<dyn std::error::Error>> {
    Ok(vec![
        clock_baseline(sizes),
        cached(sizes)?,
        contended(sizes)?,
        cold(sizes)?,
    ])
}

/// The cost of reading the injected system clock, which every cache read does once: the floor
/// under the cached case.
fn clock_baseline(sizes: Sizes) -> Row {
    let clock = system_clock();
    let mut samples = Vec::with_capacity(sizes.cached_batches);
    for _ in 0..sizes.cached_batches {
        let start = Instant::now();
        for _ in 0..sizes.cached_batch {
            black_box(black_box(&clock).now());
        }
        samples.push(nanos_per_call(
            start.elapsed(),
            u64::from(sizes.cached_batch),
        ));
    }
    let (median, p99) = percentiles(&mut samples);
    Row {
        case: "baseline: `Clock::now` (system clock)",
        median: format!("{median:.1} ns"),
        p99: format!("{p99:.1} ns"),
        notes: "the clock read inside every cache read, for reference".to_owned(),
    }
}

/// A token valid for an hour from now, so every read in the run is a fresh hit.
fn hour_token() -> AccessToken {
    AccessToken::new(
        "bench-token",
        system_clock().now() + Duration::from_secs(3600),
    )
}

/// A fetch that a cache hit never runs; it fails loudly if the cache misses.
fn unreachable_fetch() -> std::future::Ready<Result<AccessToken, Error>> {
    std::future::ready(Err(Error::unavailable(
        NAME,
        "the benchmark expected a cache hit",
    )))
}

async fn primed_cache() -> Result<TokenCache, Error> {
    let cache = TokenCache::with_clock(system_clock());
    let token = hour_token();
    cache
        .get_or_fetch(
            KeyRef::new(IDENTITY, SCOPES, None, false),
            false,
            move || std::future::ready(Ok(token)),
        )
        .await?;
    Ok(cache)
}

fn nanos_per_call(elapsed: Duration, calls: u64) -> f64 {
    elapsed.as_secs_f64() * 1e9 / calls as f64
}

/// The median and p99 of `samples` (sorted in place).
fn percentiles(samples: &mut [f64]) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let p99 = (n * 99).div_ceil(100).saturating_sub(1);
    (samples[n / 2], samples[p99])
}

fn cached(sizes: Sizes) -> Result<Row, Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut samples = rt.block_on(async {
        let cache = primed_cache().await?;
        let mut samples = Vec::with_capacity(sizes.cached_batches);
        for _ in 0..sizes.cached_batches {
            let start = Instant::now();
            for _ in 0..sizes.cached_batch {
                let token = cache
                    .get_or_fetch(
                        KeyRef::new(black_box(IDENTITY), SCOPES, None, false),
                        false,
                        unreachable_fetch,
                    )
                    .await?;
                black_box(token);
            }
            samples.push(nanos_per_call(
                start.elapsed(),
                u64::from(sizes.cached_batch),
            ));
        }
        Ok::<_, Error>(samples)
    })?;
    let (median, p99) = percentiles(&mut samples);
    Ok(Row {
        case: "cached `get_or_fetch`, 1 task",
        median: format!("{median:.1} ns"),
        p99: format!("{p99:.1} ns"),
        notes: format!(
            "per call; {} batches of {} calls on a current-thread runtime",
            sizes.cached_batches, sizes.cached_batch
        ),
    })
}

fn contended(sizes: Sizes) -> Result<Row, Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut samples = rt.block_on(async {
        let cache = Arc::new(primed_cache().await?);
        let mut samples = Vec::with_capacity(sizes.contended_batches);
        for _ in 0..sizes.contended_batches {
            let start = Instant::now();
            let tasks: Vec<_> = (0..TASKS)
                .map(|_| {
                    let cache = Arc::clone(&cache);
                    tokio::spawn(async move {
                        for _ in 0..sizes.contended_per_task {
                            let token = cache
                                .get_or_fetch(
                                    KeyRef::new(IDENTITY, SCOPES, None, false),
                                    false,
                                    unreachable_fetch,
                                )
                                .await?;
                            black_box(token);
                        }
                        Ok::<_, Error>(())
                    })
                })
                .collect();
            for task in tasks {
                task.await.map_err(|e| {
                    Error::unavailable(NAME, format!("a benchmark task failed: {e}"))
                })??;
            }
            let calls = u64::from(TASKS) * u64::from(sizes.contended_per_task);
            samples.push(nanos_per_call(start.elapsed(), calls));
        }
        Ok::<_, Error>(samples)
    })?;
    let (median, p99) = percentiles(&mut samples);
    Ok(Row {
        case: "cached `get_or_fetch`, 64 tasks / 2 threads",
        median: format!("{median:.1} ns"),
        p99: format!("{p99:.1} ns"),
        notes: format!(
            "wall time per call; {} batches of {TASKS} tasks × {} calls, one key",
            sizes.contended_batches, sizes.contended_per_task
        ),
    })
}

/// The App Service (2019-08-01) success body: `expires_on` as a decimal string.
fn app_service_body(expires_on: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"access_token":"bench-token","expires_on":"{expires_on}","resource":"https://storage.azure.com","token_type":"Bearer","client_id":"00000000-0000-0000-0000-000000000000"}}"#
    ))
}

/// Serves every connection with one token response, then closes it (as the platform
/// endpoints do for `Connection: close`).
async fn serve(listener: TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut read = 0;
            // Read the request head; token requests have no body.
            while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf[read..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => read += n,
                }
                if read == buf.len() {
                    return;
                }
            }
            let now = system_clock()
                .now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let body = app_service_body(now + 3600);
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// One cold fetch: request, response, JSON parse, token.
async fn fetch(pipeline: Pipeline, uri: String) -> Result<AccessToken, Error> {
    let request = http::Request::get(uri)
        .header("x-identity-header", "bench-header")
        .body(Bytes::new())
        .map_err(|e| Error::invalid_argument(NAME, format!("bad request: {e}")))?;
    let response = pipeline
        .send(NAME, &request, SendOptions::default())
        .await?;
    let json: serde_json::Value = serde_json::from_slice(response.body())
        .map_err(|e| Error::authentication_failed(NAME, format!("bad token response: {e}")))?;
    let token = json["access_token"]
        .as_str()
        .ok_or_else(|| Error::authentication_failed(NAME, "no access_token"))?;
    let expires_on = json["expires_on"]
        .as_str()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(identity_core::from_unix_seconds)
        .ok_or_else(|| Error::authentication_failed(NAME, "no expires_on"))?;
    Ok(AccessToken::new(token, expires_on))
}

fn cold(sizes: Sizes) -> Result<Row, Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut samples = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(serve(listener));
        let client: Arc<dyn HttpClient> = HyperClient::shared();
        let pipeline = Pipeline::new(client);
        let uri = format!(
            "http://{addr}/msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fstorage.azure.com"
        );
        let mut samples = Vec::with_capacity(sizes.cold_samples);
        for i in 0..sizes.cold_warmup + sizes.cold_samples {
            let cache = TokenCache::with_clock(system_clock());
            let (p, u) = (pipeline.clone(), uri.clone());
            let start = Instant::now();
            let token = cache
                .get_or_fetch(KeyRef::new(IDENTITY, SCOPES, None, false), false, move || fetch(p, u))
                .await?;
            let took = start.elapsed();
            black_box(token);
            if i >= sizes.cold_warmup {
                samples.push(took.as_secs_f64() * 1e6);
            }
        }
        server.abort();
        Ok::<_, Box<dyn std::error::Error>>(samples)
    })?;
    let (median, p99) = percentiles(&mut samples);
    Ok(Row {
        case: "cold fetch, loopback HTTP",
        median: format!("{median:.0} µs"),
        p99: format!("{p99:.0} µs"),
        notes: format!(
            "empty cache each call; `Pipeline` + `HyperClient`, new connection, App Service JSON; {} samples",
            sizes.cold_samples
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_the_median_and_the_99th_sample() {
        let mut samples: Vec<f64> = (1..=200).rev().map(f64::from).collect();
        assert_eq!(percentiles(&mut samples), (101.0, 198.0));
        let mut one = [7.0];
        assert_eq!(percentiles(&mut one), (7.0, 7.0));
        assert!(percentiles(&mut []).0.is_nan());
    }

    #[test]
    fn the_token_response_has_the_app_service_shape() {
        let body = app_service_body(1_700_000_000);
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["expires_on"], "1700000000");
        assert_eq!(json["token_type"], "Bearer");
    }

    #[test]
    fn a_quick_run_produces_every_row() {
        let rows = run(QUICK).expect("the quick run succeeds against its loopback server");
        let cases: Vec<&str> = rows.iter().map(|r| r.case).collect();
        assert_eq!(cases.len(), 4, "{cases:?}");
        assert!(rows.iter().all(|r| !r.median.starts_with("NaN")));
    }
}
