//! Side-by-side benchmarks of this workspace and the official `azure_identity` crate.
//!
//! Run with `cargo xtask bench` (release builds of this package and of `benches/official`,
//! which lives outside the workspace). Without `--case`, this binary is the parent: for each
//! case and each subject it starts a fresh child process (this binary with
//! `--case N --subject ours`, or `official-bench --case N`) with a cleared environment holding
//! only the case's variables, reads the child's one JSON line, and prints one markdown table:
//! case, ours, official, ratio (official ÷ ours; above 1 means ours is lower).
//!
//! A fresh process per case and subject keeps environment variables, caches, connection pools
//! and runtimes from leaking between subjects: the official crate reads `IDENTITY_ENDPOINT`
//! and `IDENTITY_HEADER` from the process environment, and ours reads the same values through
//! an injected [`identity_core::Env`] snapshot of that same environment.
//!
//! Every endpoint is on 127.0.0.1. The parent reserves a free loopback port, names it in
//! `IDENTITY_ENDPOINT` and `BENCH_ADDR`, and the child serves the emulated App Service
//! protocol on it (`harness.rs`). No case lets a subject reach 169.254.169.254: ours is
//! pointed at a loopback IMDS with `imds_endpoint`, and the official crate, whose IMDS address
//! is a constant, is not run against IMDS at all (its cells read "n/a").
//!
//! The fake `az` is a `#!/bin/sh` script in a temporary directory that is the only entry of
//! `PATH` for every child.
//!
//! Arguments: `[--quick] [--official PATH]`; `--quick` shortens every case (a smoke run, not
//! a measurement).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark binary reports on stdout"
)]

mod cases;
mod field;
mod harness;
mod hot;
mod hot_ours;

use std::fmt::Write as _;
use std::future::Future;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use identity_chain::{AzureCliCredential, DefaultAzureCredential};
use identity_core::{Env, Runtime, TokenCredential, TokenRequestOptions};
use identity_msi::ManagedIdentityCredential;

use crate::harness::Metric;

/// This workspace's managed identity credential (App Service source from the environment).
#[derive(Debug)]
struct Ours(ManagedIdentityCredential);

/// Shared default options: `get_token` borrows them for the call.
static OPTIONS: std::sync::LazyLock<TokenRequestOptions> =
    std::sync::LazyLock::new(TokenRequestOptions::default);

impl cases::Subject for Ours {
    // The cache refreshes `min(300 s, lifetime / 2)` before expiry, and not within 30 s of
    // the first load: a 62 s token enters its refresh window 31 s after issue.
    const REFRESH_CASE_LIFETIME_S: u64 = 62;

    fn build() -> Result<Arc<Self>, String> {
        ManagedIdentityCredential::builder()
            .runtime(identity_core::Runtime::with_env(Env::from_process()))
            .build()
            .map(|c| Arc::new(Self(c)))
            .map_err(|e| format!("ManagedIdentityCredential build failed: {e}"))
    }

    async fn token(self: Arc<Self>, scope: &'static str) -> Result<usize, String> {
        self.0
            .get_token(&[scope], &OPTIONS)
            .await
            .map(|t| t.token.secret().len())
            .map_err(|e| format!("get_token failed: {e}"))
    }

    fn chain_token(imds: SocketAddr) -> Option<impl Future<Output = Result<usize, String>>> {
        Some(async move {
            let chain = DefaultAzureCredential::builder()
                .runtime(Runtime::new())
                .imds_endpoint(format!("http://{imds}/metadata/identity/oauth2/token"))
                .build()
                .map_err(|e| format!("DefaultAzureCredential build failed: {e}"))?;
            chain
                .get_token(&[harness::SCOPE_A], &OPTIONS)
                .await
                .map(|t| t.token.secret().len())
                .map_err(|e| format!("get_token failed: {e}"))
        })
    }

    async fn cli_token() -> Result<usize, String> {
        let cli = AzureCliCredential::builder()
            .runtime(identity_core::Runtime::with_env(Env::from_process()))
            .build()
            .map_err(|e| format!("AzureCliCredential build failed: {e}"))?;
        cli.get_token(&[harness::SCOPE_A], &OPTIONS)
            .await
            .map(|t| t.token.secret().len())
            .map_err(|e| format!("get_token failed: {e}"))
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.iter().any(|a| a == "--hot") {
        let addr = Env::from_process().get("BENCH_ADDR").map(str::to_owned);
        hot::child_main::<hot_ours::OursHot>(&args, addr).map(|line| println!("{line}"))
    } else if args.iter().any(|a| a == "--case") {
        let addr = Env::from_process().get("BENCH_ADDR").map(str::to_owned);
        cases::child_main::<Ours>(&args, addr).map(|line| println!("{line}"))
    } else {
        parent(&args).map(|table| print!("{table}"))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("identity-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A child process longer than this is killed and its cells read "failed".
const CHILD_LIMIT: Duration = Duration::from_secs(240);

/// One subject binary and how to ask it for a case.
struct Runner {
    program: PathBuf,
    extra: Vec<&'static str>,
}

fn parent(args: &[String]) -> Result<String, String> {
    let mut quick = false;
    let mut official = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--official" => official = it.next().map(PathBuf::from),
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: [--quick] [--official PATH]"
                ));
            }
        }
    }
    let me = std::env::current_exe().map_err(|e| format!("no path to this binary: {e}"))?;
    let tools = FakeAz::create()?;
    let ours = Runner {
        program: me,
        extra: vec!["--subject", "ours"],
    };
    let official = official.map(|program| Runner {
        program,
        extra: Vec::new(),
    });
    let mut rows: Vec<(String, Option<Metric>, Option<Metric>)> = Vec::new();
    for case in 1..=cases::CASES {
        let a = run_child(&ours, case, quick, tools.dir());
        let b = official
            .as_ref()
            .map(|r| run_child(r, case, quick, tools.dir()));
        merge(&mut rows, case, a, b);
    }
    let mut out = table(&rows, official.is_some());
    // The hot path: a cached token asked for again and again (`hot.rs`), its own table.
    out.push_str(&hot::parent(
        &ours.program,
        official.as_ref().map(|r| r.program.as_path()),
        quick,
    ));
    // The field rows (recorded answers of real hosts): ours only, beside the reference SDK's
    // figures.
    out.push_str(&field::table(quick)?);
    Ok(out)
}

/// Joins one case's metrics from both subjects into rows, by key.
fn merge(
    rows: &mut Vec<(String, Option<Metric>, Option<Metric>)>,
    case: u32,
    ours: Result<Vec<Metric>, String>,
    official: Option<Result<Vec<Metric>, String>>,
) {
    let mut keys: Vec<String> = Vec::new();
    let report = |r: &Result<Vec<Metric>, String>, who: &str| {
        if let Err(e) = r {
            eprintln!("case {case} ({who}): {e}");
        }
    };
    report(&ours, "ours");
    if let Some(o) = &official {
        report(o, "official");
    }
    let ours = ours.unwrap_or_default();
    let official = official.and_then(Result::ok).unwrap_or_default();
    for m in ours.iter().chain(official.iter()) {
        if !keys.contains(&m.key) {
            keys.push(m.key.clone());
        }
    }
    if keys.is_empty() {
        keys.push(format!("{case}. (failed)"));
    }
    for key in keys {
        let find = |v: &[Metric]| v.iter().find(|m| m.key == key).cloned();
        rows.push((key.clone(), find(&ours), find(&official)));
    }
}

/// The markdown table.
fn table(rows: &[(String, Option<Metric>, Option<Metric>)], official_ran: bool) -> String {
    let mut out =
        String::from("| case | ours | official | official ÷ ours |\n|---|---:|---:|---:|\n");
    for (key, ours, official) in rows {
        let ratio = match (ours, official) {
            // A point in time, not a cost: no ratio.
            _ if key.contains("when") => "–".to_owned(),
            (Some(a), Some(b)) if a.value > 0.0 && b.value.is_finite() && a.value.is_finite() => {
                format!("{:.2}×", b.value / a.value)
            }
            _ => "–".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {key} | {} | {} | {ratio} |",
            cell(ours.as_ref()),
            if official_ran {
                cell(official.as_ref())
            } else {
                "not run".to_owned()
            }
        );
    }
    out
}

fn cell(m: Option<&Metric>) -> String {
    match m {
        None => "failed".to_owned(),
        Some(m) if m.value.is_nan() => "n/a (cannot be pointed at a loopback IMDS)".to_owned(),
        Some(m) if m.unit == "requests" => format!("{:.0}", m.value),
        Some(m) if m.value >= 100.0 => format!("{:.0} {}", m.value, m.unit),
        Some(m) => format!("{:.1} {}", m.value, m.unit),
    }
}

/// Runs one case in a fresh child with a cleared, prepared environment.
fn run_child(runner: &Runner, case: u32, quick: bool, path: &Path) -> Result<Vec<Metric>, String> {
    let addr = harness::refused().map_err(|e| format!("no free loopback port: {e}"))?;
    let mut cmd = Command::new(&runner.program);
    cmd.args(["--case", &case.to_string()])
        .args(&runner.extra)
        .env_clear()
        .env("PATH", path)
        .env("BENCH_ADDR", addr.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if quick {
        cmd.arg("--quick");
    }
    // Case 7 is off-Azure: no managed identity variables at all.
    if case != 7 {
        cmd.env("IDENTITY_ENDPOINT", format!("http://{addr}/msi/token"))
            .env("IDENTITY_HEADER", harness::IDENTITY_HEADER);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", runner.program.display()))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if started.elapsed() > CHILD_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("no answer within {} s", CHILD_LIMIT.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_string(&mut out).map_err(|e| e.to_string())?;
    }
    if !status.success() {
        return Err(format!("exited with {status}"));
    }
    // The planted IDENTITY_HEADER value is a secret: no report may carry it.
    if out.contains(harness::IDENTITY_HEADER) {
        return Err("the report contains the IDENTITY_HEADER secret".to_owned());
    }
    out.lines()
        .rev()
        .find_map(harness::parse_report)
        .ok_or_else(|| "no report line".to_owned())
}

/// A temporary directory holding only a fake `az` that prints a token.
struct FakeAz(PathBuf);

impl FakeAz {
    fn create() -> Result<Self, String> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("identity-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let expires = harness::unix_now() + 3600;
        let script = format!(
            "#!/bin/sh\nprintf '%s\\n' '{{\"accessToken\":\"bench-cli-token\",\"expires_on\":{expires},\"expiresOn\":\"2030-01-01 00:00:00.000000\",\"subscription\":\"s\",\"tenant\":\"t\",\"tokenType\":\"Bearer\"}}'\n"
        );
        let az = dir.join("az");
        std::fs::write(&az, script).map_err(|e| format!("cannot write {}: {e}", az.display()))?;
        std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("cannot chmod {}: {e}", az.display()))?;
        Ok(Self(dir))
    }

    fn dir(&self) -> &Path {
        &self.0
    }
}

impl Drop for FakeAz {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_sample_at_the_rank() {
        let mut samples: Vec<f64> = (1..=200).rev().map(f64::from).collect();
        assert!((harness::quantile(&mut samples, 0.99) - 198.0).abs() < f64::EPSILON);
        assert!((harness::median(&mut samples) - 101.0).abs() < f64::EPSILON);
        assert!(harness::quantile(&mut [], 0.5).is_nan());
    }

    #[test]
    fn a_report_line_round_trips_with_nan_as_not_applicable() {
        let metrics = vec![
            Metric::new("a", 1.5, "ns"),
            Metric::new("b", f64::NAN, "ms"),
        ];
        let back = harness::parse_report(&harness::report_line(7, &metrics)).expect("parses");
        assert_eq!(back[0], metrics[0]);
        assert!(back[1].value.is_nan());
    }

    #[test]
    fn a_non_loopback_endpoint_is_refused() {
        assert!(harness::endpoint_addr(Some("169.254.169.254:80".into())).is_err());
        assert!(harness::endpoint_addr(Some("127.0.0.1:8080".into())).is_ok());
        assert!(harness::endpoint_addr(None).is_err());
    }

    #[test]
    fn the_table_shows_ratios_and_not_applicable_cells() {
        let mut rows = Vec::new();
        merge(
            &mut rows,
            1,
            Ok(vec![Metric::new("x", 10.0, "ns")]),
            Some(Ok(vec![Metric::new("x", 25.0, "ns")])),
        );
        merge(
            &mut rows,
            7,
            Ok(vec![Metric::new("y", 5.0, "ms")]),
            Some(Ok(vec![Metric::new("y", f64::NAN, "ms")])),
        );
        let t = table(&rows, true);
        assert!(t.contains("| x | 10.0 ns | 25.0 ns | 2.50× |"), "{t}");
        assert!(
            t.contains("n/a (cannot be pointed at a loopback IMDS)"),
            "{t}"
        );
    }

    #[test]
    fn the_app_service_body_has_a_string_expiry() {
        let json: serde_json::Value =
            serde_json::from_str(&harness::app_service_body(1_700_000_000)).expect("json");
        assert_eq!(json["expires_on"], "1700000000");
    }
}
