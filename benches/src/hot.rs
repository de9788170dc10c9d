//! The hot path: a cached token, asked for again and again, the way a service asks on every
//! outgoing request. Compiled into both subject binaries (like `cases.rs`); the parent runs
//! each case in a fresh child per subject, `--hot --case N`, and prints its own table.
//!
//! Each case is one way of asking ([`Path`]), measured two ways: one task on a
//! current-thread runtime (median of batches, ns per call), and 64 tasks on a 2-worker
//! runtime, each task with its own caller (a clone), calling without yielding (median of
//! batches, wall ns per call: two threads can at best halve the single-thread figure).
//! With `--calls N` the child makes N cached calls on one task and nothing else: the parent
//! runs it under `valgrind --tool=callgrind` with two call counts and divides the difference
//! of the instruction counts by the difference of the calls, so start-up costs cancel out.
//!
//! Every token comes from the emulated App Service endpoint of `harness.rs` on 127.0.0.1, with
//! a one-hour lifetime, so after the first call every call is a cache hit.

use std::future::Future;
use std::hint::black_box;
use std::net::SocketAddr;
use std::path::Path as FsPath;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{self, Behaviour, Metric};

/// How a caller asks for the cached token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    /// `ManagedIdentityCredential::get_token` through `dyn TokenCredential`.
    Msi,
    /// A prepared request on the managed identity credential (ours: `TokenRequest`; the
    /// official crate has none, so its `get_token`).
    MsiPrepared,
    /// `DefaultAzureCredential::get_token` (its managed identity member answers).
    Chain,
    /// A prepared request on `DefaultAzureCredential`.
    ChainPrepared,
    /// `azure_core::credentials::TokenCredential::get_token`, what the official service
    /// clients call (ours: the `identity-azure-core` adapter around the managed identity).
    AzureCore,
}

/// The hot cases, by number.
pub(crate) const PATHS: [(u32, Path, &str); 5] = [
    (1, Path::Msi, "managed identity, get_token"),
    (
        2,
        Path::MsiPrepared,
        "managed identity, prepared request (official: get_token)",
    ),
    (3, Path::Chain, "DefaultAzureCredential, get_token"),
    (
        4,
        Path::ChainPrepared,
        "DefaultAzureCredential, prepared request",
    ),
    (5, Path::AzureCore, "through azure_core's TokenCredential"),
];

/// A credential library on the hot path.
pub(crate) trait HotSubject: 'static {
    /// One caller's state: a credential handle or a prepared request.
    type Caller: Send + 'static;

    /// Builds the caller for `path` (against the endpoint at `addr`) and gets the first token.
    /// `Ok(None)` when the library has no such path.
    fn caller(
        path: Path,
        addr: SocketAddr,
    ) -> impl Future<Output = Result<Option<Self::Caller>, String>>;

    /// Another caller on the same credential, for another task.
    fn fork(caller: &Self::Caller) -> Self::Caller;

    /// One call; returns the token's length.
    fn call(caller: &mut Self::Caller) -> impl Future<Output = Result<usize, String>> + Send;
}

/// Iteration counts.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    batches: usize,
    batch: u64,
    contended_batches: usize,
    per_task: u64,
}

const FULL: Sizes = Sizes {
    batches: 100,
    batch: 50_000,
    contended_batches: 20,
    per_task: 5_000,
};

const QUICK: Sizes = Sizes {
    batches: 5,
    batch: 1_000,
    contended_batches: 2,
    per_task: 100,
};

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

/// The child side: `--hot --case N [--quick] [--calls N]`; returns the JSON line to print.
///
/// # Errors
/// On bad arguments or a failed case.
pub(crate) fn child_main<S: HotSubject>(
    args: &[String],
    bench_addr: Option<String>,
) -> BoxResult<String> {
    let mut case = None;
    let mut sizes = FULL;
    let mut calls = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--case" => case = it.next().and_then(|n| n.parse::<u32>().ok()),
            "--quick" => sizes = QUICK,
            "--calls" => calls = it.next().and_then(|n| n.parse::<u64>().ok()),
            "--hot" => {}
            "--subject" => {
                it.next();
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let case = case.ok_or("usage: --hot --case N [--quick] [--calls N]")?;
    let &(_, path, label) = PATHS
        .iter()
        .find(|(n, _, _)| *n == case)
        .ok_or_else(|| format!("no hot case {case}"))?;
    let addr = harness::endpoint_addr(bench_addr)?;
    let metrics = match calls {
        Some(calls) => count_calls::<S>(path, addr, calls)?,
        None => measure::<S>(path, label, case, addr, sizes)?,
    };
    Ok(harness::report_line(case, &metrics))
}

fn key(case: u32, label: &str, what: &str) -> String {
    format!("H{case}. {label}: {what}")
}

/// One task, then 64 tasks on 2 threads.
fn measure<S: HotSubject>(
    path: Path,
    label: &str,
    case: u32,
    addr: SocketAddr,
    sizes: Sizes,
) -> BoxResult<Vec<Metric>> {
    // The endpoint and the contended phase live on the 2-worker runtime; the single-task
    // phase runs on a current-thread runtime of its own.
    let rt = runtime(2)?;
    let caller = rt.block_on(async {
        harness::serve(addr, Behaviour::new(Duration::ZERO, 3600))
            .await
            .map_err(|e| format!("cannot serve on {addr}: {e}"))?;
        S::caller(path, addr).await
    })?;
    let Some(caller) = caller else {
        return Ok(vec![
            Metric::new(&key(case, label, "1 task"), f64::NAN, "ns"),
            Metric::new(&key(case, label, "64 tasks / 2 threads"), f64::NAN, "ns"),
        ]);
    };
    let one = runtime(1)?.block_on(async {
        let mut caller = S::fork(&caller);
        let mut samples = Vec::with_capacity(sizes.batches);
        for _ in 0..sizes.batches {
            let start = Instant::now();
            for _ in 0..sizes.batch {
                black_box(S::call(black_box(&mut caller)).await?);
            }
            samples.push(harness::ns_per(start.elapsed(), sizes.batch));
        }
        Ok::<_, String>(harness::median(&mut samples))
    })?;
    let many = rt.block_on(async {
        let mut samples = Vec::with_capacity(sizes.contended_batches);
        for _ in 0..sizes.contended_batches {
            let callers: Vec<_> = (0..64).map(|_| S::fork(&caller)).collect();
            let start = Instant::now();
            let tasks: Vec<_> = callers
                .into_iter()
                .map(|mut caller| {
                    tokio::spawn(async move {
                        for _ in 0..sizes.per_task {
                            black_box(S::call(&mut caller).await?);
                        }
                        Ok::<_, String>(())
                    })
                })
                .collect();
            for t in tasks {
                t.await.map_err(|e| format!("task failed: {e}"))??;
            }
            samples.push(harness::ns_per(start.elapsed(), 64 * sizes.per_task));
        }
        Ok::<_, String>(harness::median(&mut samples))
    })?;
    Ok(vec![
        Metric::new(&key(case, label, "1 task"), one, "ns"),
        Metric::new(&key(case, label, "64 tasks / 2 threads"), many, "ns"),
    ])
}

/// `calls` cached calls on one task, untimed (for callgrind).
fn count_calls<S: HotSubject>(path: Path, addr: SocketAddr, calls: u64) -> BoxResult<Vec<Metric>> {
    let rt = runtime(1)?;
    rt.block_on(async {
        harness::serve(addr, Behaviour::new(Duration::ZERO, 3600))
            .await
            .map_err(|e| format!("cannot serve on {addr}: {e}"))?;
        let Some(mut caller) = S::caller(path, addr).await? else {
            return Ok(vec![Metric::new("calls", f64::NAN, "calls")]);
        };
        for _ in 0..calls {
            black_box(S::call(black_box(&mut caller)).await?);
        }
        #[allow(clippy::cast_precision_loss, reason = "a call count")]
        let calls = calls as f64;
        Ok(vec![Metric::new("calls", calls, "calls")])
    })
}

/// The parent side: runs every hot case for both subjects (and, unless `quick`, callgrind
/// when `valgrind` is installed) and returns the markdown table.
pub(crate) fn parent(ours: &FsPath, official: Option<&FsPath>, quick: bool) -> String {
    let mut rows: Vec<(String, f64, f64)> = Vec::new();
    for &(case, _, label) in &PATHS {
        let a = child(ours, &["--subject", "ours"], case, quick, None);
        let b = official.map(|p| child(p, &[], case, quick, None));
        for (who, r) in [("ours", Some(&a)), ("official", b.as_ref())] {
            if let Some(Err(e)) = r {
                eprintln!("hot case {case} ({who}): {e}");
            }
        }
        let pick = |r: Option<&Result<Vec<Metric>, String>>, i: usize| match r {
            Some(Ok(m)) => m.get(i).map_or(f64::NAN, |m| m.value),
            _ => f64::NAN,
        };
        for (i, what) in ["1 task", "64 tasks / 2 threads"].into_iter().enumerate() {
            rows.push((
                key(case, label, what),
                pick(Some(&a), i),
                pick(b.as_ref(), i),
            ));
        }
    }
    let valgrind = !quick
        && Command::new("valgrind")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if valgrind {
        for &(case, _, label) in &PATHS {
            let a = instructions(ours, &["--subject", "ours"], case);
            let b = official.map_or(Err("not run".to_owned()), |p| instructions(p, &[], case));
            for (who, r) in [("ours", &a), ("official", &b)] {
                if let Err(e) = r {
                    eprintln!("hot case {case} under callgrind ({who}): {e}");
                }
            }
            rows.push((
                key(case, label, "instructions per call (callgrind)"),
                a.unwrap_or(f64::NAN),
                b.unwrap_or(f64::NAN),
            ));
        }
    }
    let mut out = String::from(
        "\n| hot path (cached token) | ours | official | official ÷ ours |\n|---|---:|---:|---:|\n",
    );
    for (key, a, b) in rows {
        let unit = if key.contains("instructions") {
            ""
        } else {
            " ns"
        };
        let cell = |v: f64| {
            if v.is_nan() {
                "n/a".to_owned()
            } else if v >= 100.0 {
                format!("{v:.0}{unit}")
            } else {
                format!("{v:.1}{unit}")
            }
        };
        let ratio = if a > 0.0 && a.is_finite() && b.is_finite() {
            format!("{:.1}×", b / a)
        } else {
            "–".to_owned()
        };
        out.push_str(&format!(
            "| {key} | {} | {} | {ratio} |\n",
            cell(a),
            cell(b)
        ));
    }
    if !valgrind && !quick {
        out.push_str(
            "\n(valgrind not found: no instruction counts; `apt-get install -y valgrind`)\n",
        );
    }
    out
}

/// The child's command: a cleared environment with the App Service variables pointing at a
/// free loopback port.
fn command(
    program: &FsPath,
    extra: &[&str],
    case: u32,
    wrapper: Option<&[&str]>,
) -> BoxResult<(Command, SocketAddr)> {
    let addr = harness::refused().map_err(|e| format!("no free loopback port: {e}"))?;
    let mut cmd = match wrapper {
        Some([first, rest @ ..]) => {
            let mut cmd = Command::new(first);
            cmd.args(rest).arg(program);
            cmd
        }
        _ => Command::new(program),
    };
    cmd.args(["--hot", "--case", &case.to_string()])
        .args(extra)
        .env_clear()
        .env("BENCH_ADDR", addr.to_string())
        .env("IDENTITY_ENDPOINT", format!("http://{addr}/msi/token"))
        .env("IDENTITY_HEADER", harness::IDENTITY_HEADER)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Ok((cmd, addr))
}

fn child(
    program: &FsPath,
    extra: &[&str],
    case: u32,
    quick: bool,
    calls: Option<u64>,
) -> BoxResult<Vec<Metric>> {
    let (mut cmd, _) = command(program, extra, case, None)?;
    if quick {
        cmd.arg("--quick");
    }
    if let Some(calls) = calls {
        cmd.args(["--calls", &calls.to_string()]);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if stdout.contains(harness::IDENTITY_HEADER) {
        return Err("the report contains the IDENTITY_HEADER secret".to_owned());
    }
    stdout
        .lines()
        .rev()
        .find_map(harness::parse_report)
        .ok_or_else(|| "no report line".to_owned())
}

/// Instructions per cached call: callgrind totals at two call counts, differenced.
fn instructions(program: &FsPath, extra: &[&str], case: u32) -> BoxResult<f64> {
    const FEW: u64 = 1_000;
    const MANY: u64 = 21_000;
    let mut totals = Vec::new();
    for calls in [FEW, MANY] {
        let (mut cmd, _) = command(program, extra, case, CALLGRIND)?;
        cmd.args(["--calls", &calls.to_string()]);
        let out = cmd
            .output()
            .map_err(|e| format!("cannot start valgrind: {e}"))?;
        if !out.status.success() {
            return Err(format!("valgrind exited with {}", out.status));
        }
        let report = String::from_utf8_lossy(&out.stdout)
            .lines()
            .rev()
            .find_map(harness::parse_report);
        if report.is_some_and(|m| m.first().is_some_and(|m| m.value.is_nan())) {
            return Ok(f64::NAN);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        totals.push(collected(&stderr).ok_or("no `Collected` line in callgrind's output")?);
    }
    #[allow(clippy::cast_precision_loss, reason = "instruction counts")]
    let per_call = (totals[1] as f64 - totals[0] as f64) / (MANY - FEW) as f64;
    Ok(per_call)
}

/// The wrapper that runs a child under callgrind, writing no profile file.
const CALLGRIND: Option<&[&str]> = Some(&[
    "valgrind",
    "--tool=callgrind",
    "--callgrind-out-file=/dev/null",
]);

/// The total of callgrind's `==pid== Collected : N` line.
fn collected(stderr: &str) -> Option<u64> {
    stderr.lines().find_map(|l| {
        let (_, rest) = l.split_once("Collected :")?;
        rest.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_callgrind_total_is_read() {
        let text = "==12== Events    : Ir\n==12== Collected : 1234567\n==12== \n==12== I   refs:      1,234,567\n";
        assert_eq!(super::collected(text), Some(1_234_567));
        assert_eq!(super::collected("nothing"), None);
    }
}
