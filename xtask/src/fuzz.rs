//! `cargo xtask fuzz [--seconds N] [TARGET]`: runs every cargo-fuzz target in `fuzz/` (or
//! only `TARGET`) for N seconds each (default 30) and prints a summary table of targets, runs
//! and crashes. Fails when any target crashed.
//!
//! * cargo-fuzz is installed on first use with `cargo install --locked` into the
//!   project-local root `.tools/`, pinned to [`FUZZ_VERSION`].
//! * libFuzzer needs nightly-only compiler flags; this project builds with the stable
//!   toolchain, so the run sets `RUSTC_BOOTSTRAP=1`. The sanitizers need a nightly standard
//!   library, so targets run with `-s none`: libFuzzer's coverage guidance without
//!   `AddressSanitizer` (the crates forbid `unsafe`, so a panic is what a crash looks like).
//! * Nothing is written into the repository, so `git status` is unchanged by a run. Each
//!   target starts from its checked-in seeds (`fuzz/seeds/<target>`, only read) and grows a
//!   working corpus under `target/fuzz-corpus/<target>`. cargo-fuzz runs with
//!   `--fuzz-dir target/fuzz-project`, a copy of the `fuzz/` manifest and lock file with
//!   absolute paths back to the crates and targets, so crashing inputs
//!   (`target/fuzz-project/artifacts/<target>/`) and any lock-file update stay under
//!   `target/`; the build goes to `target/fuzz`. Each crash found becomes a regression test in
//!   the owning crate (see `RELIABILITY.md`).
//!
//! Not part of `cargo xtask ci` (CI time): the property tests cover the same parsers there.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::sh::{self, Result};

/// The cargo-fuzz release installed when none is found.
const FUZZ_VERSION: &str = "0.13.2";
/// The project-local install root for tools.
const TOOLS: &str = ".tools";
const DEFAULT_SECONDS: u64 = 30;

struct Outcome {
    target: String,
    runs: Option<u64>,
    /// `None` when the target did not run at all (e.g. it failed to build).
    crashed: Option<bool>,
}

pub(crate) fn run(args: &[String]) -> Result<()> {
    let usage = "usage: cargo xtask fuzz [--seconds N] [TARGET]";
    let mut seconds = DEFAULT_SECONDS;
    let mut only = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--seconds" {
            seconds = args
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("--seconds needs a whole number; {usage}"))?;
        } else if arg.starts_with('-') {
            return Err(format!("unknown argument {arg}; {usage}").into());
        } else {
            only = Some(arg.clone());
        }
    }
    let root = sh::project_root();
    let bin_dir = ensure_cargo_fuzz(&root)?;
    let path = path_with(&bin_dir)?;
    let target_dir = root.join("target").join("fuzz");
    let project = stage(&root)?;

    let listed = sh::read(&mut fuzz_command("list", &project, &path, &target_dir))?;
    let mut targets: Vec<String> = listed.lines().map(str::trim).map(str::to_owned).collect();
    targets.retain(|t| !t.is_empty());
    if let Some(only) = only {
        if !targets.contains(&only) {
            return Err(format!("no fuzz target {only}; targets: {}", targets.join(", ")).into());
        }
        targets = vec![only];
    }
    sh::run(fuzz_command("build", &project, &path, &target_dir).args(["-s", "none", "-O"]))?;

    let mut outcomes = Vec::new();
    for target in &targets {
        let corpus = root.join("target").join("fuzz-corpus").join(target);
        std::fs::create_dir_all(&corpus)
            .map_err(|e| format!("creating {}: {e}", corpus.display()))?;
        let seeds = root.join("fuzz").join("seeds").join(target);
        let mut cmd = fuzz_command("run", &project, &path, &target_dir);
        cmd.args(["-s", "none", "-O", target])
            .arg(&corpus)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"));
        eprintln!("$ {}", sh::show(&cmd));
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("could not start cargo fuzz: {e}"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        let crashed = if out.status.success() {
            Some(false)
        } else {
            eprintln!("{log}");
            // libFuzzer writes the input of every crash; anything else means it never ran.
            log.contains("Test unit written to").then_some(true)
        };
        outcomes.push(Outcome {
            target: target.clone(),
            runs: runs(&log),
            crashed,
        });
    }

    let mut table =
        String::from("\n| target | seconds | runs | crashes |\n| --- | --- | --- | --- |\n");
    for o in &outcomes {
        let runs = o.runs.map_or_else(|| "?".to_owned(), |r| r.to_string());
        let crashes = match o.crashed {
            Some(crashed) => u8::from(crashed).to_string(),
            None => "did not run".to_owned(),
        };
        let _ = writeln!(table, "| {} | {seconds} | {runs} | {crashes} |", o.target);
    }
    println!("{table}");
    let crashed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.crashed != Some(false))
        .map(|o| o.target.as_str())
        .collect();
    if crashed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "crashes or failed runs in {} (crash inputs in {})",
            crashed.join(", "),
            project.join("artifacts").display()
        )
        .into())
    }
}

/// Copies `fuzz/Cargo.toml` (every `path = "…"` made absolute) and `fuzz/Cargo.lock` into
/// `target/fuzz-project` and returns that directory: cargo-fuzz, pointed at it with
/// `--fuzz-dir`, writes its artifacts and any lock-file update there, not into the repository.
fn stage(root: &Path) -> Result<PathBuf> {
    let source = root.join("fuzz");
    let staged = root.join("target").join("fuzz-project");
    std::fs::create_dir_all(&staged).map_err(|e| format!("creating {}: {e}", staged.display()))?;
    let manifest = std::fs::read_to_string(source.join("Cargo.toml"))
        .map_err(|e| format!("reading fuzz/Cargo.toml: {e}"))?;
    let manifest = absolute_paths(&manifest, &source)?;
    std::fs::write(staged.join("Cargo.toml"), manifest)
        .map_err(|e| format!("writing {}: {e}", staged.display()))?;
    let lock = source.join("Cargo.lock");
    if lock.exists() {
        std::fs::copy(&lock, staged.join("Cargo.lock"))
            .map_err(|e| format!("copying fuzz/Cargo.lock: {e}"))?;
    }
    Ok(staged)
}

/// `manifest` with every `path = "relative"` value replaced by the absolute path under `base`
/// (as a TOML literal string, so Windows separators need no escaping).
fn absolute_paths(manifest: &str, base: &Path) -> Result<String> {
    const KEY: &str = "path = \"";
    let mut out = String::with_capacity(manifest.len() * 2);
    let mut rest = manifest;
    while let Some(at) = rest.find(KEY) {
        out.push_str(&rest[..at]);
        let value_start = at + KEY.len();
        let len = rest[value_start..]
            .find('"')
            .ok_or("fuzz/Cargo.toml: unterminated path value")?;
        let value = &rest[value_start..value_start + len];
        let absolute = base.join(value);
        let text = absolute.to_str().ok_or("the project path is not UTF-8")?;
        if text.contains('\'') {
            return Err("the project path contains a quote".into());
        }
        let _ = write!(out, "path = '{text}'");
        rest = &rest[value_start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `cargo fuzz <subcommand> --fuzz-dir <project>` (the staged copy) with `.tools/bin` on
/// `PATH`, the stable toolchain allowed nightly flags, and the build in `target/fuzz`.
fn fuzz_command(subcommand: &str, project: &Path, path: &OsStr, target_dir: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.args(["fuzz", subcommand, "--fuzz-dir"])
        .arg(project)
        .current_dir(project)
        .env("PATH", path)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", target_dir);
    cmd
}

/// libFuzzer's final "Done N runs in S second(s)" line.
fn runs(log: &str) -> Option<u64> {
    log.lines().rev().find_map(|l| {
        l.trim()
            .strip_prefix("Done ")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// Returns the directory holding `cargo-fuzz`, installing it into `.tools/` when missing.
fn ensure_cargo_fuzz(root: &Path) -> Result<PathBuf> {
    let bin_dir = root.join(TOOLS).join("bin");
    let exe = bin_dir.join(format!("cargo-fuzz{}", std::env::consts::EXE_SUFFIX));
    if sh::output(Command::new(&exe).arg("--version")).is_some() {
        return Ok(bin_dir);
    }
    let mut install = sh::cargo([
        "install",
        "--locked",
        "cargo-fuzz",
        "--version",
        FUZZ_VERSION,
        "--root",
    ]);
    install.arg(root.join(TOOLS));
    sh::run(&mut install)?;
    Ok(bin_dir)
}

/// `PATH` with `dir` in front.
fn path_with(dir: &Path) -> Result<OsString> {
    let mut dirs = vec![dir.to_path_buf()];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).map_err(|e| format!("cannot build PATH: {e}").into())
}

#[cfg(test)]
mod tests {
    use super::{absolute_paths, runs};
    use std::path::Path;

    #[test]
    fn relative_manifest_paths_become_absolute_literal_strings() {
        let manifest =
            "a = { path = \"../crates/a\", features = [\"x\"] }\npath = \"fuzz_targets/t.rs\"\n";
        let base = Path::new("/repo/fuzz");
        let out = absolute_paths(manifest, base).unwrap();
        assert_eq!(
            out,
            "a = { path = '/repo/fuzz/../crates/a', features = [\"x\"] }\npath = '/repo/fuzz/fuzz_targets/t.rs'\n"
        );
    }

    #[test]
    fn the_run_count_is_read_from_libfuzzers_last_line() {
        let log = "#1024\tpulse  cov: 10\nDone 3027574 runs in 11 second(s)\n";
        assert_eq!(runs(log), Some(3_027_574));
        assert_eq!(runs("no summary"), None);
    }
}
