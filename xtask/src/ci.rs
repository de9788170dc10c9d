//! `cargo xtask ci`: every check CI runs, in order, cheapest first, stopping at the first
//! failure with a non-zero exit.
//!
//! Each step prints a header, its commands and its duration; the run ends with a table of
//! step durations, a summary line, and the test totals in the `N passed, N failed` form.
//! Nothing reads standard input, so the run works under `CI=true` with stdin closed.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::deny;
use crate::sh::{self, Result};
use crate::tidy;

/// Test totals gathered from `cargo test` output.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Totals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Totals {
    /// Adds the counts from one `test result: ok. 3 passed; 0 failed; 1 ignored; ...` line.
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(label), Some(number)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = number.parse::<u64>() else {
                continue;
            };
            match label {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }
}

struct Ci {
    totals: Totals,
}

type StepFn = fn(&mut Ci) -> Result<()>;

const STEPS: &[(&str, StepFn)] = &[
    ("toolchain", toolchain),
    ("fmt", fmt),
    ("tidy", tidy_step),
    ("msi-tree", msi_tree),
    ("clippy", clippy),
    ("python", sidecar_python),
    ("chromium", chromium),
    ("test", test),
    ("walkthrough", walkthrough_step),
    ("doc", doc),
    ("package", package),
    ("deny", deny_step),
];

pub(crate) fn run(args: &[String]) -> Result<()> {
    let skip = parse_skips(args)?;
    let steps: Vec<(&str, StepFn)> = STEPS
        .iter()
        .copied()
        .filter(|(name, _)| !skip.contains(name))
        .collect();
    for name in &skip {
        eprintln!("ci: skipping `{name}` (--skip); this is not a full CI run");
    }
    let started = Instant::now();
    let mut ci = Ci {
        totals: Totals::default(),
    };
    let mut done: Vec<(&str, Duration)> = Vec::new();
    for (i, (name, step)) in steps.iter().enumerate() {
        eprintln!("\n==> [{}/{}] {name}", i + 1, steps.len());
        let step_started = Instant::now();
        let result = step(&mut ci);
        let took = step_started.elapsed();
        if let Err(e) = result {
            eprintln!("<== {name} FAILED after {}", secs(took));
            print_table(&done);
            eprintln!(
                "ci: FAILED at step `{name}` ({} of {} steps passed) after {}",
                done.len(),
                steps.len(),
                secs(started.elapsed())
            );
            return Err(e);
        }
        eprintln!("<== {name} ok in {}", secs(took));
        done.push((name, took));
    }
    print_table(&done);
    let t = ci.totals;
    println!(
        "ci: all {} steps passed in {} ({} tests passed, {} ignored)",
        steps.len(),
        secs(started.elapsed()),
        t.passed,
        t.ignored
    );
    println!(
        "tests: {} passed, {} failed, {} skipped",
        t.passed, t.failed, t.ignored
    );
    Ok(())
}

/// `--skip STEP` (repeatable): for a developer re-running the later steps. CI passes none.
fn parse_skips(args: &[String]) -> Result<Vec<&'static str>> {
    let mut skip = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg != "--skip" {
            return Err(format!(
                "unknown argument `{arg}`; usage: cargo xtask ci [--skip STEP]..."
            )
            .into());
        }
        let Some(step) = args.next() else {
            return Err("`--skip` needs a step name".into());
        };
        let Some((name, _)) = STEPS.iter().find(|(name, _)| name == step) else {
            let names: Vec<&str> = STEPS.iter().map(|(n, _)| *n).collect();
            return Err(format!("unknown step `{step}`; steps: {}", names.join(", ")).into());
        };
        skip.push(*name);
    }
    Ok(skip)
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn print_table(done: &[(&str, Duration)]) {
    if done.is_empty() {
        return;
    }
    eprintln!("\nstep        duration");
    for (name, took) in done {
        eprintln!("{name:<11} {:>8}", secs(*took));
    }
}

/// rustfmt and clippy come as rustup components; a minimal profile lacks them.
fn toolchain(_: &mut Ci) -> Result<()> {
    let fmt = sh::output(&mut sh::cargo(["fmt", "--version"]));
    let clippy = sh::output(&mut sh::cargo(["clippy", "--version"]));
    if fmt.is_none() || clippy.is_none() {
        sh::run(std::process::Command::new("rustup").args([
            "component",
            "add",
            "rustfmt",
            "clippy",
        ]))?;
    }
    sh::run(&mut sh::cargo(["--version"]))?;
    sh::run(&mut sh::cargo(["fmt", "--version"]))?;
    sh::run(&mut sh::cargo(["clippy", "--version"]))
}

fn fmt(_: &mut Ci) -> Result<()> {
    sh::run(&mut sh::cargo(["fmt", "--all", "--", "--check"]))
}

fn tidy_step(_: &mut Ci) -> Result<()> {
    tidy::run(&sh::project_root())
}

/// identity-msi with default features must pull in no HTTP-client stack with TLS: a consumer
/// who needs managed identity alone gets core and hyper, nothing else.
fn msi_tree(_: &mut Ci) -> Result<()> {
    let mut cmd = sh::cargo([
        "tree",
        "-p",
        "identity-msi",
        "-e",
        "normal",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ]);
    eprintln!("$ {}", sh::show(&cmd));
    let tree = sh::read(&mut cmd)?;
    let banned = banned_in_tree(&tree);
    if banned.is_empty() {
        eprintln!("identity-msi's normal dependencies include no reqwest, rustls or openssl");
        Ok(())
    } else {
        Err(format!(
            "identity-msi (default features) depends on {}; keep TLS and reqwest behind a feature",
            banned.join(", ")
        )
        .into())
    }
}

/// The distinct crates in `cargo tree --prefix none --format {p}` output whose names contain
/// reqwest, rustls or openssl.
fn banned_in_tree(tree: &str) -> Vec<String> {
    let mut found: Vec<String> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| {
            ["reqwest", "rustls", "openssl"]
                .iter()
                .any(|b| name.contains(b))
        })
        .map(str::to_owned)
        .collect();
    found.sort();
    found.dedup();
    found
}

fn clippy(_: &mut Ci) -> Result<()> {
    sh::run(&mut sh::cargo([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))
}

/// Where the real-browser sign-in test looks for Chromium.
const CHROMIUM_PATHS: &[&str] = &[
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
];

/// Headless Chromium for identity-entra's real-browser sign-in test: installed with apt-get
/// when missing, only where that is safe to do unasked (Debian, as root, non-interactive,
/// bounded by `timeout`). Elsewhere the step says why, and the test reports itself skipped.
fn chromium(_: &mut Ci) -> Result<()> {
    if let Some(found) = CHROMIUM_PATHS
        .iter()
        .find(|p| std::path::Path::new(p).exists())
    {
        eprintln!("chromium: {found} is installed");
        return Ok(());
    }
    let root =
        sh::output(std::process::Command::new("id").arg("-u")).is_some_and(|uid| uid.trim() == "0");
    let debian = std::path::Path::new("/etc/debian_version").exists();
    if !(root && debian) {
        eprintln!(
            "chromium: not installed, and not installing it here (that needs Debian and root); the real-browser sign-in test will be skipped"
        );
        return Ok(());
    }
    let apt = |args: &[&str]| {
        let mut cmd = std::process::Command::new("timeout");
        cmd.arg("900")
            .arg("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    sh::run(&mut apt(&["update", "-qq"]))?;
    sh::run(&mut apt(&[
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        "chromium",
    ]))
}

/// Runs the tests, echoing their output while adding up the `test result:` lines.
/// CONTRIBUTING.md's "Add a hosting source", applied to a copy of the workspace and tested
/// (after `test`, whose dependencies it reuses).
fn walkthrough_step(_: &mut Ci) -> Result<()> {
    crate::walkthrough::run(&sh::project_root())
}

fn test(ci: &mut Ci) -> Result<()> {
    let mut cmd = sh::cargo(["test", "--workspace", "--all-features"]);
    // The sidecar's interop test must run, not skip: hand it the Python set up above.
    let python = sidecar_python_path();
    if python.exists() {
        cmd.env("IDENTITY_SIDECAR_PYTHON", python);
    }
    let line = sh::show(&cmd);
    eprintln!("$ {line}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start `{line}`: {e}"))?;
    let mut totals = Totals::default();
    if let Some(stdout) = child.stdout.take() {
        for l in BufReader::new(stdout).lines() {
            let l = l.map_err(|e| format!("reading the output of `{line}`: {e}"))?;
            println!("{l}");
            totals.add_line(&l);
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for `{line}`: {e}"))?;
    ci.totals = totals;
    eprintln!(
        "tests: {} passed, {} failed, {} ignored",
        totals.passed, totals.failed, totals.ignored
    );
    if !status.success() {
        return Err(format!("`{line}` failed ({status})").into());
    }
    if totals.passed == 0 {
        return Err("`cargo test` ran no test".into());
    }
    Ok(())
}

/// The Python of the sidecar's interop test: `.tools/sidecar-python`, a virtual environment
/// with `azure-identity`.
fn sidecar_python_path() -> std::path::PathBuf {
    sh::project_root()
        .join(".tools")
        .join("sidecar-python")
        .join("bin")
        .join("python")
}

/// Sets up the virtual environment the sidecar's interop test runs `azure-identity`'s
/// `ManagedIdentityCredential` in (`python3 -m venv`, `pip install azure-identity`), unless
/// it already imports. CI fails here when Python or pip is missing, rather than letting the
/// test skip.
fn sidecar_python(_: &mut Ci) -> Result<()> {
    let python = sidecar_python_path();
    let ready = |python: &std::path::Path| {
        python.exists()
            && sh::output(
                std::process::Command::new(python)
                    .args(["-c", "import azure.identity; print('ok')"]),
            )
            .is_some()
    };
    if ready(&python) {
        eprintln!("azure-identity already installed in .tools/sidecar-python");
        return Ok(());
    }
    let venv = sh::project_root().join(".tools").join("sidecar-python");
    sh::run(
        std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv),
    )?;
    sh::run(std::process::Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "azure-identity",
    ]))?;
    if !ready(&python) {
        return Err("azure-identity does not import after pip install".into());
    }
    Ok(())
}

fn doc(_: &mut Ci) -> Result<()> {
    let mut cmd = sh::cargo(["doc", "--workspace", "--no-deps", "--all-features"]);
    cmd.env("RUSTDOCFLAGS", "-D warnings");
    sh::run(&mut cmd)
}

/// `cargo package` of every library crate, verified: each `.crate` is unpacked and built on
/// its own, against the versions its manifest declares. The crates are packaged in one run,
/// so that cargo (1.90 or newer) resolves the internal dependencies of not-yet-published
/// versions from the packages it has just made, not from crates.io.
fn package(_: &mut Ci) -> Result<()> {
    let root = sh::project_root();
    let crates = tidy::publishable_crates(&root);
    forget_overlay_sources(&crates);
    // Cargo fingerprints a registry crate by name and version only, so an earlier run's build
    // of these (unpublished, same-version) crates would be reused: build them in a target
    // directory of their own and forget this workspace's crates there before each run.
    let target = root.join("target").join("package-verify");
    forget_built_crates(&target.join("debug"));
    let mut cmd = sh::cargo(package_args(&crates));
    cmd.env("CARGO_TARGET_DIR", &target);
    sh::run(&mut cmd)
}

/// Removes the fingerprints and libraries of the `identity-*` crates in a target profile
/// directory, keeping every external dependency's build.
fn forget_built_crates(profile: &std::path::Path) {
    for sub in [".fingerprint", "deps", "build"] {
        for entry in std::fs::read_dir(profile.join(sub))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("identity-")
                || name.starts_with("identity_")
                || name.starts_with("libidentity_")
            {
                let path = entry.path();
                let _ = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
            }
        }
    }
}

/// Removes the sources cargo unpacked from an earlier run's local registry overlay
/// (`$CARGO_HOME/registry/src/-<hash>/<crate>-<version>`): cargo reuses an unpacked crate of
/// the same version, so a second run on a changed tree would verify against stale sources.
/// Only overlay folders (named `-<hash>`, never a real registry's) and only these crates.
fn forget_overlay_sources(crates: &[String]) {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")));
    let Some(src) = cargo_home.map(|h| h.join("registry").join("src")) else {
        return;
    };
    let overlays = std::fs::read_dir(&src).into_iter().flatten().flatten();
    for overlay in overlays.filter(|e| e.file_name().to_string_lossy().starts_with('-')) {
        for entry in std::fs::read_dir(overlay.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_overlay_copy(&name, crates) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// Whether `dir` (e.g. `identity-core-0.1.0`) is one of `crates` at some version.
fn is_overlay_copy(dir: &str, crates: &[String]) -> bool {
    crates.iter().any(|c| {
        dir.strip_prefix(c.as_str())
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|version| version.starts_with(|ch: char| ch.is_ascii_digit()))
    })
}

/// `package --locked -p A -p B …` (`--allow-dirty` outside CI, for a developer with edits).
fn package_args(crates: &[String]) -> Vec<String> {
    let mut args = vec!["package".to_owned(), "--locked".to_owned()];
    if std::env::var_os("CI").is_none() {
        args.push("--allow-dirty".to_owned());
    }
    for name in crates {
        args.push("-p".to_owned());
        args.push(name.clone());
    }
    args
}

fn deny_step(_: &mut Ci) -> Result<()> {
    deny::run(&sh::project_root())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_result_lines_are_added_up() {
        let mut t = Totals::default();
        t.add_line("test result: ok. 12 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.01s");
        t.add_line("running 3 tests");
        t.add_line(
            "test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        assert_eq!(
            t,
            Totals {
                passed: 13,
                failed: 2,
                ignored: 2
            }
        );
    }

    #[test]
    fn steps_can_be_skipped_by_name_only() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            parse_skips(&args(&["--skip", "fmt", "--skip", "deny"])).expect("valid"),
            ["fmt", "deny"]
        );
        assert!(parse_skips(&args(&["--skip", "nope"])).is_err());
        assert!(parse_skips(&args(&["--skip"])).is_err());
        assert!(parse_skips(&args(&["extra"])).is_err());
        assert!(parse_skips(&[]).expect("valid").is_empty());
    }

    #[test]
    fn only_the_packaged_crates_are_forgotten() {
        let crates = ["identity-core".to_owned(), "identity-chain".to_owned()];
        assert!(is_overlay_copy("identity-core-0.1.0", &crates));
        assert!(!is_overlay_copy("identity-core-extra-0.1.0", &crates));
        assert!(!is_overlay_copy("identity-msi-0.1.0", &crates));
        assert!(!is_overlay_copy("tokio-1.47.0", &crates));
    }

    #[test]
    fn every_library_crate_is_packaged() {
        let crates = tidy::publishable_crates(&sh::project_root());
        let args = package_args(&crates);
        for name in [
            "identity-core",
            "identity-entra",
            "identity-chain",
            "identity-azure-core",
        ] {
            assert!(
                args.windows(2).any(|w| w[0] == "-p" && w[1] == name),
                "{name} is not packaged: {args:?}"
            );
        }
        assert!(
            !args
                .iter()
                .any(|a| a == "identity-blob-demo" || a == "xtask")
        );
    }

    #[test]
    fn tls_crates_in_the_msi_tree_are_named() {
        let tree = "identity-msi v0.1.0 (/x)\nhyper v1.7.0\ntokio-rustls v0.26.2\nrustls v0.23.31\nrustls v0.23.31\n";
        assert_eq!(banned_in_tree(tree), ["rustls", "tokio-rustls"]);
        assert!(banned_in_tree("identity-msi v0.1.0\nhyper v1.7.0\n").is_empty());
    }
}
