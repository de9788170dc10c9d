//! The benchmark cases, written once over a [`Subject`] and compiled into both subject
//! binaries (see `harness.rs`). Each case runs in its own child process; it starts the
//! emulated endpoint on the loopback address the parent put in `BENCH_ADDR` (the same address
//! is in `IDENTITY_ENDPOINT`), measures, and returns its metrics.

use std::future::Future;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::{self, Behaviour, Metric, SCOPE_A, SCOPE_B};

/// A credential library under test.
pub(crate) trait Subject: Send + Sync + Sized + 'static {
    /// Lifetime of the first token in case 5, chosen so that this library's refresh window
    /// opens 31 to 32 s after the token is issued (see [`refresh_tail`]).
    const REFRESH_CASE_LIFETIME_S: u64;

    /// Builds the subject's App Service managed identity credential from the process
    /// environment.
    ///
    /// # Errors
    /// When the library refuses the configuration.
    fn build() -> Result<Arc<Self>, String>;

    /// One `get_token` for `scope`; returns the token's length (something to `black_box`).
    fn token(
        self: Arc<Self>,
        scope: &'static str,
    ) -> impl Future<Output = Result<usize, String>> + Send;

    /// The off-Azure default-chain fall-through: managed identity (IMDS at `imds`, a loopback
    /// address) then the Azure CLI from `PATH`. `None` when the subject cannot be pointed at a
    /// loopback IMDS.
    fn chain_token(imds: SocketAddr) -> Option<impl Future<Output = Result<usize, String>>>;

    /// The Azure CLI credential alone, from `PATH`.
    fn cli_token() -> impl Future<Output = Result<usize, String>>;
}

/// Iteration counts for one run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sizes {
    cached_batches: usize,
    cached_batch: u64,
    contended_batches: usize,
    contended_per_task: u64,
    cold_callers: usize,
    builds: usize,
    cold_samples: usize,
}

/// The sizes of a measurement run.
pub(crate) const FULL: Sizes = Sizes {
    cached_batches: 100,
    cached_batch: 20_000,
    contended_batches: 20,
    contended_per_task: 1_000,
    cold_callers: 1_000,
    builds: 1_000,
    cold_samples: 300,
};

/// The sizes of a smoke run (not a measurement).
pub(crate) const QUICK: Sizes = Sizes {
    cached_batches: 5,
    cached_batch: 1_000,
    contended_batches: 2,
    contended_per_task: 50,
    cold_callers: 1_000,
    builds: 20,
    cold_samples: 20,
};

/// The number of cases.
pub(crate) const CASES: u32 = 7;

type BoxResult<T> = Result<T, String>;

fn runtime(threads: usize) -> BoxResult<tokio::runtime::Runtime> {
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .map_err(|e| format!("no tokio runtime: {e}"))
}

/// Runs case `case` for subject `S`; `addr` is the loopback endpoint address. Case 0 is not
/// part of the table: `calls` cached reads and nothing else, for instruction counts under
/// `valgrind --tool=callgrind` (run it with two call counts and divide the difference).
///
/// # Errors
/// When the case cannot run (a failed token, an unknown case).
pub(crate) fn run<S: Subject>(
    case: u32,
    sizes: Sizes,
    calls: u64,
    addr: SocketAddr,
) -> BoxResult<Vec<Metric>> {
    match case {
        1 => cached::<S>(sizes, addr),
        2 => cold_crowd::<S>(sizes, addr),
        3 => two_scopes::<S>(addr),
        4 => four_minutes::<S>(addr),
        5 => refresh_tail::<S>(addr),
        6 => construction::<S>(sizes, addr),
        7 => fall_through::<S>(),
        0 => cached_calls::<S>(calls, addr),
        _ => Err(format!("no case {case}")),
    }
}

async fn start(addr: SocketAddr, delay: Duration, lifetime_s: u64) -> BoxResult<Arc<Behaviour>> {
    let behaviour = Behaviour::new(delay, lifetime_s);
    harness::serve(addr, Arc::clone(&behaviour))
        .await
        .map_err(|e| format!("cannot serve on {addr}: {e}"))?;
    Ok(behaviour)
}

/// Case 1: a cached `get_token`, one task; then 64 tasks on 2 threads.
fn cached<S: Subject>(sizes: Sizes, addr: SocketAddr) -> BoxResult<Vec<Metric>> {
    let rt = runtime(1)?;
    let (one, cred) = rt.block_on(async {
        start(addr, Duration::ZERO, 3600).await?;
        let cred = S::build()?;
        Arc::clone(&cred).token(SCOPE_A).await?;
        let mut samples = Vec::with_capacity(sizes.cached_batches);
        for _ in 0..sizes.cached_batches {
            let start = Instant::now();
            for _ in 0..sizes.cached_batch {
                black_box(Arc::clone(black_box(&cred)).token(SCOPE_A).await?);
            }
            samples.push(harness::ns_per(start.elapsed(), sizes.cached_batch));
        }
        Ok::<_, String>((harness::median(&mut samples), cred))
    })?;
    // The server lives on the first runtime; keep it alive while the second one runs.
    let rt2 = runtime(2)?;
    let many = rt2.block_on(async {
        let mut samples = Vec::with_capacity(sizes.contended_batches);
        for _ in 0..sizes.contended_batches {
            let start = Instant::now();
            let tasks: Vec<_> = (0..64)
                .map(|_| {
                    let cred = Arc::clone(&cred);
                    tokio::spawn(async move {
                        for _ in 0..sizes.contended_per_task {
                            black_box(Arc::clone(&cred).token(SCOPE_A).await?);
                        }
                        Ok::<_, String>(())
                    })
                })
                .collect();
            for t in tasks {
                t.await.map_err(|e| format!("task failed: {e}"))??;
            }
            samples.push(harness::ns_per(
                start.elapsed(),
                64 * sizes.contended_per_task,
            ));
        }
        Ok::<_, String>(harness::median(&mut samples))
    })?;
    drop(rt);
    Ok(vec![
        Metric::new("1. cached get_token, 1 task", one, "ns"),
        Metric::new("1. cached get_token, 64 tasks / 2 threads", many, "ns"),
    ])
}

/// Case 0: one fetch, then `calls` cached reads on one task, untimed.
fn cached_calls<S: Subject>(calls: u64, addr: SocketAddr) -> BoxResult<Vec<Metric>> {
    runtime(1)?.block_on(async {
        start(addr, Duration::ZERO, 3600).await?;
        let cred = S::build()?;
        for _ in 0..=calls {
            black_box(Arc::clone(black_box(&cred)).token(SCOPE_A).await?);
        }
        #[allow(clippy::cast_precision_loss, reason = "a call count")]
        let calls = calls as f64;
        Ok(vec![Metric::new("0. cached calls", calls, "calls")])
    })
}

/// Case 2: 1,000 concurrent callers on a cold cache, 5 ms server.
fn cold_crowd<S: Subject>(sizes: Sizes, addr: SocketAddr) -> BoxResult<Vec<Metric>> {
    runtime(2)?.block_on(async {
        let server = start(addr, Duration::from_millis(5), 3600).await?;
        let cred = S::build()?;
        let start = Instant::now();
        let tasks: Vec<_> = (0..sizes.cold_callers)
            .map(|_| tokio::spawn(Arc::clone(&cred).token(SCOPE_A)))
            .collect();
        for t in tasks {
            t.await.map_err(|e| format!("task failed: {e}"))??;
        }
        let wall = start.elapsed();
        #[allow(clippy::cast_precision_loss, reason = "a small count")]
        let requests = server.requests() as f64;
        Ok(vec![
            Metric::new("2. 1,000 cold callers: HTTP requests", requests, "requests"),
            Metric::new("2. 1,000 cold callers: wall time", harness::ms(wall), "ms"),
        ])
    })
}

/// Case 3: two scopes fetched at once from a 500 ms server; a cached read of A while B loads.
fn two_scopes<S: Subject>(addr: SocketAddr) -> BoxResult<Vec<Metric>> {
    runtime(2)?.block_on(async {
        let _server = start(addr, Duration::from_millis(500), 3600).await?;
        let cred = S::build()?;
        let start = Instant::now();
        let a = tokio::spawn(Arc::clone(&cred).token(SCOPE_A));
        let b = tokio::spawn(Arc::clone(&cred).token(SCOPE_B));
        a.await.map_err(|e| format!("task failed: {e}"))??;
        b.await.map_err(|e| format!("task failed: {e}"))??;
        let both = start.elapsed();

        let cred = S::build()?;
        Arc::clone(&cred).token(SCOPE_A).await?;
        let b = tokio::spawn(Arc::clone(&cred).token(SCOPE_B));
        // Let B's request reach the server before reading A.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let start = Instant::now();
        Arc::clone(&cred).token(SCOPE_A).await?;
        let read = start.elapsed();
        b.await.map_err(|e| format!("task failed: {e}"))??;
        Ok(vec![
            Metric::new(
                "3. two scopes at once, 500 ms server: wall time",
                harness::ms(both),
                "ms",
            ),
            Metric::new(
                "3. cached read of A while B is in flight",
                harness::ms(read) * 1e3,
                "µs",
            ),
        ])
    })
}

/// Case 4: a 4-minute token called 10 times.
fn four_minutes<S: Subject>(addr: SocketAddr) -> BoxResult<Vec<Metric>> {
    runtime(1)?.block_on(async {
        let server = start(addr, Duration::ZERO, 240).await?;
        let cred = S::build()?;
        for _ in 0..10 {
            Arc::clone(&cred).token(SCOPE_A).await?;
        }
        #[allow(clippy::cast_precision_loss, reason = "a small count")]
        let requests = server.requests() as f64;
        Ok(vec![Metric::new(
            "4. 4-minute token called 10 times: requests",
            requests,
            "requests",
        )])
    })
}

/// Case 5: a token enters its refresh window while 64 callers call continuously; the server
/// then takes 200 ms. The worst latency any caller saw.
///
/// The window opens 31 to 32 s after issue for both subjects: ours refreshes
/// `min(300 s, lifetime / 2)` before expiry but starts no refresh within 30 s of the previous
/// request (the cache's retry spacing, which the first load also counts), so a 62 s token;
/// the official cache refreshes tokens expiring within 300 s, so a 332 s token. The callers
/// start at 29 s and run until 34 s, so the window opens while they call.
fn refresh_tail<S: Subject>(addr: SocketAddr) -> BoxResult<Vec<Metric>> {
    runtime(2)?.block_on(async {
        let server = start(addr, Duration::ZERO, S::REFRESH_CASE_LIFETIME_S).await?;
        let cred = S::build()?;
        Arc::clone(&cred).token(SCOPE_A).await?;
        // Later answers are slow and long-lived: one refresh is all the run needs.
        server.set(Duration::from_millis(200), 3600);
        let begin = Instant::now();
        tokio::time::sleep(Duration::from_secs(29)).await;
        let deadline = begin + Duration::from_secs(34);
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let cred = Arc::clone(&cred);
                tokio::spawn(async move {
                    let mut worst = (Duration::ZERO, Duration::ZERO);
                    while Instant::now() < deadline {
                        let start = Instant::now();
                        black_box(Arc::clone(&cred).token(SCOPE_A).await?);
                        worst = worst.max((start.elapsed(), start - begin));
                        // A caller that works between token reads, so that the runtime
                        // schedules the other callers and the refresh.
                        tokio::task::yield_now().await;
                    }
                    Ok::<_, String>(worst)
                })
            })
            .collect();
        let mut worst = (Duration::ZERO, Duration::ZERO);
        for t in tasks {
            worst = worst.max(t.await.map_err(|e| format!("task failed: {e}"))??);
        }
        #[allow(clippy::cast_precision_loss, reason = "a small count")]
        let requests = server.requests() as f64;
        Ok(vec![
            Metric::new(
                "5. refresh window, 64 callers, 200 ms server: worst caller latency",
                harness::ms(worst.0),
                "ms",
            ),
            Metric::new(
                "5. refresh window: when the worst call started, after issue",
                worst.1.as_secs_f64(),
                "s",
            ),
            Metric::new("5. refresh window: requests", requests, "requests"),
        ])
    })
}

/// Case 6: credential construction; a cold single fetch (new credential each time).
fn construction<S: Subject>(sizes: Sizes, addr: SocketAddr) -> BoxResult<Vec<Metric>> {
    runtime(1)?.block_on(async {
        start(addr, Duration::ZERO, 3600).await?;
        let mut builds = Vec::with_capacity(sizes.builds);
        for _ in 0..sizes.builds {
            let start = Instant::now();
            black_box(S::build()?);
            builds.push(harness::ms(start.elapsed()) * 1e3);
        }
        let mut fetches = Vec::with_capacity(sizes.cold_samples);
        for i in 0..sizes.cold_samples + 10 {
            let cred = S::build()?;
            let start = Instant::now();
            black_box(cred.token(SCOPE_A).await?);
            if i >= 10 {
                fetches.push(harness::ms(start.elapsed()) * 1e3);
            }
        }
        Ok(vec![
            Metric::new(
                "6. construction (median)",
                harness::median(&mut builds),
                "µs",
            ),
            Metric::new(
                "6. cold single fetch (median)",
                harness::median(&mut fetches),
                "µs",
            ),
            Metric::new(
                "6. cold single fetch (p99)",
                harness::quantile(&mut fetches, 0.99),
                "µs",
            ),
        ])
    })
}

/// Case 7: the off-Azure fall-through to the CLI, IMDS blackholed then refused; the CLI
/// alone for reference.
fn fall_through<S: Subject>() -> BoxResult<Vec<Metric>> {
    runtime(2)?.block_on(async {
        let mut out = Vec::new();
        let blackholed = harness::blackhole()
            .await
            .map_err(|e| format!("no blackhole listener: {e}"))?;
        let refused = harness::refused().map_err(|e| format!("no free port: {e}"))?;
        for (label, imds) in [("blackholed", blackholed), ("refused", refused)] {
            let key = format!("7. fall-through to CLI, IMDS {label}");
            let value = match S::chain_token(imds) {
                Some(fut) => {
                    let start = Instant::now();
                    tokio::time::timeout(Duration::from_secs(60), fut)
                        .await
                        .map_err(|_| format!("{key}: no token within 60 s"))??;
                    harness::ms(start.elapsed())
                }
                None => f64::NAN,
            };
            out.push(Metric::new(&key, value, "ms"));
        }
        let start = Instant::now();
        tokio::time::timeout(Duration::from_secs(60), S::cli_token())
            .await
            .map_err(|_| "the CLI credential gave no token within 60 s".to_owned())??;
        out.push(Metric::new(
            "7. CLI credential alone (fake az)",
            harness::ms(start.elapsed()),
            "ms",
        ));
        Ok(out)
    })
}

/// The child entry point shared by both binaries: `--case N [--quick]`, with `BENCH_ADDR`'s
/// value; returns the one JSON line to print.
///
/// # Errors
/// On bad arguments or a failed case.
pub(crate) fn child_main<S: Subject>(
    args: &[String],
    bench_addr: Option<String>,
) -> BoxResult<String> {
    let mut case = None;
    let mut sizes = FULL;
    let mut calls = 0;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--case" => {
                case = it.next().and_then(|n| n.parse::<u32>().ok());
            }
            "--quick" => sizes = QUICK,
            "--calls" => {
                calls = it.next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
            }
            "--subject" => {
                it.next();
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let case = case.ok_or("usage: --case N [--quick] [--calls N]")?;
    let addr = harness::endpoint_addr(bench_addr)?;
    let metrics = run::<S>(case, sizes, calls, addr)?;
    Ok(harness::report_line(case, &metrics))
}
