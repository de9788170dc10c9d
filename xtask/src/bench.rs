//! `cargo xtask bench [--quick] [--no-official]`: the side-by-side benchmark of this workspace
//! and the official `azure_identity` crate (see `BENCHMARKS.md`).
//!
//! 1. Describes the machine (cores, CPU model, rustc) so the output can be pasted as is.
//! 2. Builds `identity-bench` (a workspace member outside the default members) and
//!    `official-bench` (`benches/official`, a workspace of its own, excluded from this one so
//!    that CI and `cargo deny` never see the official crate's tree) in release mode, into
//!    the workspace's target directory.
//! 3. Runs `identity-bench --official <path>`, which runs cases 1-7 in fresh child processes
//!    and prints the table, then the hot-path cases (`benches/src/hot.rs`: a cached token by
//!    each way of asking, 1 task and 64 tasks on 2 threads, and, when `valgrind` is
//!    installed and the run is not `--quick`, instructions per call under callgrind) and
//!    their table, then the field rows (`benches/src/field.rs`: the default chain on
//!    answers recorded from real hosts in `tests/field/`, ours beside the reference SDK's
//!    figures).
//! 4. Case 8, footprint (skipped by `--quick`): unique crates of `identity-msi`,
//!    `identity-chain` and `azure_identity` (`cargo tree`, normal and build edges), then a
//!    clean release build of a minimal "print one managed-identity token" binary per side,
//!    each in a temporary directory with its own target directory: build time and stripped
//!    size.
//!
//! `--no-official` skips the official side (for a machine without network access).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::sh::{self, Result};

pub(crate) fn run(args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let official = !args.iter().any(|a| a == "--no-official");
    if let Some(bad) = args
        .iter()
        .find(|a| !matches!(a.as_str(), "--quick" | "--no-official"))
    {
        return Err(format!(
            "unknown argument {bad}; usage: cargo xtask bench [--quick] [--no-official]"
        )
        .into());
    }
    let root = sh::project_root();
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let model = sh::output(Command::new("lscpu").env("LC_ALL", "C"))
        .and_then(|out| cpu_model(&out))
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let rustc = sh::output(Command::new("rustc").arg("--version"))
        .map_or_else(|| "unknown rustc".to_owned(), |v| v.trim().to_owned());
    let target = target_dir()?;
    let official_manifest = root.join("benches/official/Cargo.toml");

    sh::run(&mut sh::cargo([
        "build",
        "--quiet",
        "--release",
        "-p",
        "identity-bench",
    ]))?;
    let mut bench = Command::new(target.join("release/identity-bench"));
    if official {
        sh::run(
            sh::cargo(["build", "--quiet", "--release", "--manifest-path"])
                .arg(&official_manifest)
                .arg("--target-dir")
                .arg(&target),
        )?;
        bench
            .arg("--official")
            .arg(target.join("release/official-bench"));
    }
    if quick {
        bench.arg("--quick");
    }
    let version = std::fs::read_to_string(root.join("benches/official/Cargo.lock"))
        .ok()
        .and_then(|lock| locked_version(&lock, "azure_identity"))
        .unwrap_or_else(|| "not resolved".to_owned());
    println!("machine: {cores} cores ({model}); {rustc}; official: azure_identity {version}\n");
    let started = Instant::now();
    sh::run(&mut bench)?;
    println!(
        "\n(cases 1-7 took {:.0} s)",
        started.elapsed().as_secs_f64()
    );
    if !quick {
        footprint(&root, official.then_some(official_manifest.as_path()))?;
    }
    Ok(())
}

/// The workspace's target directory (honours `CARGO_TARGET_DIR` and config), from
/// `cargo metadata`.
fn target_dir() -> Result<PathBuf> {
    let out = sh::read(&mut sh::cargo([
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
    ]))?;
    json_string_field(&out, "target_directory")
        .map(PathBuf::from)
        .ok_or_else(|| "cargo metadata printed no target_directory".into())
}

/// The value of the first `"field":"value"` in `json` (no escapes in paths on this host).
fn json_string_field(json: &str, field: &str) -> Option<String> {
    let start = json.find(&format!("\"{field}\":\""))? + field.len() + 4;
    let len = json[start..].find('"')?;
    Some(json[start..start + len].to_owned())
}

/// The version of `name` in a `Cargo.lock`.
fn locked_version(lock: &str, name: &str) -> Option<String> {
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == format!("name = \"{name}\"") {
            let version = lines.next()?.trim().strip_prefix("version = \"")?;
            return Some(version.trim_end_matches('"').to_owned());
        }
    }
    None
}

/// Unique `name version` pairs in `cargo tree --prefix none` output.
fn unique_crates(tree: &str) -> usize {
    tree.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((words.next()?.to_owned(), words.next()?.to_owned()))
        })
        .collect::<BTreeSet<_>>()
        .len()
}

/// Case 8: crate counts, clean build time and stripped binary size.
fn footprint(root: &Path, official: Option<&Path>) -> Result<()> {
    let tree = |cmd: &mut Command| -> Result<usize> {
        cmd.args(["-e", "normal,build", "--prefix", "none", "--format", "{p}"]);
        Ok(unique_crates(&sh::read(cmd)?))
    };
    let mut rows = String::from("| case | ours | official |\n|---|---:|---:|\n");
    let msi = tree(&mut sh::cargo(["tree", "-p", "identity-msi"]))?;
    let chain = tree(&mut sh::cargo(["tree", "-p", "identity-chain"]))?;
    let theirs = match official {
        Some(manifest) => {
            tree(sh::cargo(["tree", "-p", "azure_identity", "--manifest-path"]).arg(manifest))?
                .to_string()
        }
        None => "not run".to_owned(),
    };
    let _ = writeln!(
        rows,
        "| 8. unique crates (normal + build deps) | identity-msi {msi}; identity-chain {chain} | azure_identity {theirs} |"
    );
    let ours_build = minimal_build(root, Side::Ours)?;
    let theirs_build = match official {
        Some(_) => Some(minimal_build(root, Side::Official)?),
        None => None,
    };
    let cell = |b: Option<&(f64, u64)>, f: fn(&(f64, u64)) -> String| {
        b.map_or_else(|| "not run".to_owned(), f)
    };
    let _ = writeln!(
        rows,
        "| 8. clean release build, minimal token binary | {} | {} |",
        cell(Some(&ours_build), |b| format!("{:.0} s", b.0)),
        cell(theirs_build.as_ref(), |b| format!("{:.0} s", b.0)),
    );
    let _ = writeln!(
        rows,
        "| 8. its stripped size | {} | {} |",
        cell(Some(&ours_build), |b| mib(b.1)),
        cell(theirs_build.as_ref(), |b| mib(b.1)),
    );
    println!("\n{rows}");
    Ok(())
}

#[allow(clippy::cast_precision_loss, reason = "a file size in MiB for display")]
fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Ours,
    Official,
}

/// Builds the minimal binary of one side from scratch in a temporary directory with its own
/// target directory; returns the build time in seconds and the stripped binary's size.
fn minimal_build(root: &Path, side: Side) -> Result<(f64, u64)> {
    let dir = std::env::temp_dir().join(format!(
        "identity-footprint-{}-{}",
        if side == Side::Ours {
            "ours"
        } else {
            "official"
        },
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src"))
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (deps, main, lock) = match side {
        Side::Ours => (
            format!(
                "identity-core = {{ path = \"{0}/crates/identity-core\" }}\nidentity-msi = {{ path = \"{0}/crates/identity-msi\" }}\ntokio = {{ version = \"1\", default-features = false, features = [\"rt\"] }}\n",
                root.display()
            ),
            OURS_MAIN,
            root.join("Cargo.lock"),
        ),
        Side::Official => (
            "azure_identity = \"1\"\nazure_core = \"1\"\ntokio = { version = \"1\", features = [\"rt\", \"macros\"] }\n".to_owned(),
            OFFICIAL_MAIN,
            root.join("benches/official/Cargo.lock"),
        ),
    };
    let manifest = format!(
        "[package]\nname = \"minimal-token\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n[dependencies]\n{deps}\n[profile.release]\nstrip = \"symbols\"\n\n[workspace]\n"
    );
    let write = |path: PathBuf, text: &str| {
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write(dir.join("Cargo.toml"), &manifest)?;
    write(dir.join("src/main.rs"), main)?;
    // The same versions as the benchmark run (cargo drops the entries it does not need).
    if let Ok(text) = std::fs::read_to_string(&lock) {
        write(dir.join("Cargo.lock"), &text)?;
    }
    let target = dir.join("target");
    let started = Instant::now();
    sh::run(
        Command::new("cargo")
            .args(["build", "--quiet", "--release"])
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", &target),
    )?;
    let secs = started.elapsed().as_secs_f64();
    let size = std::fs::metadata(target.join("release/minimal-token"))
        .map_err(|e| format!("no binary: {e}"))?
        .len();
    let _ = std::fs::remove_dir_all(&dir);
    Ok((secs, size))
}

const OURS_MAIN: &str = r#"use identity_core::{Runtime, TokenCredential, TokenRequestOptions};
fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let cred = identity_msi::ManagedIdentityCredential::builder().runtime(Runtime::new()).build().unwrap();
    let token = rt.block_on(cred.get_token(&["https://storage.azure.com/.default"], &TokenRequestOptions::default()));
    match token {
        Ok(t) => println!("token of {} bytes, expires {:?}", t.token.secret().len(), t.expires_on),
        Err(e) => eprintln!("{e}"),
    }
}
"#;

const OFFICIAL_MAIN: &str = r#"use azure_core::credentials::TokenCredential;
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cred = azure_identity::ManagedIdentityCredential::new(None).unwrap();
    match cred.get_token(&["https://storage.azure.com/.default"], None).await {
        Ok(t) => println!("token of {} bytes, expires {}", t.token.secret().len(), t.expires_on),
        Err(e) => eprintln!("{e}"),
    }
}
"#;

/// The `Model name:` value in `lscpu` output.
fn cpu_model(lscpu: &str) -> Option<String> {
    lscpu
        .lines()
        .find_map(|l| l.strip_prefix("Model name:"))
        .map(|m| m.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_model_is_read_from_lscpu() {
        let out = "Architecture: x86_64\nModel name:      AMD EPYC\nThread(s) per core: 1\n";
        assert_eq!(cpu_model(out).as_deref(), Some("AMD EPYC"));
        assert_eq!(cpu_model("Architecture: x86_64\n"), None);
    }

    #[test]
    fn the_locked_version_is_read_from_a_lock_file() {
        let lock = "[[package]]\nname = \"azure_core\"\nversion = \"1.1.0\"\n\n[[package]]\nname = \"azure_identity\"\nversion = \"1.0.0\"\n";
        assert_eq!(
            locked_version(lock, "azure_identity").as_deref(),
            Some("1.0.0")
        );
        assert_eq!(locked_version(lock, "reqwest"), None);
    }

    #[test]
    fn unique_crates_count_each_name_and_version_once() {
        let tree = "identity-msi v0.1.0 (/w/crates/identity-msi)\nbytes v1.10.1\nhttp v1.3.1\nbytes v1.10.1\nbytes v1.10.1 (*)\n\nhttp v0.2.12\n";
        assert_eq!(unique_crates(tree), 4);
    }

    #[test]
    fn the_target_directory_is_read_from_cargo_metadata() {
        let json = r#"{"packages":[],"target_directory":"/work/target-x","version":1}"#;
        assert_eq!(
            json_string_field(json, "target_directory").as_deref(),
            Some("/work/target-x")
        );
        assert_eq!(json_string_field(json, "workspace_root"), None);
    }
}
