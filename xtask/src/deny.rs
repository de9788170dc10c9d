//! `cargo xtask deny`: cargo-deny's advisories, bans, licenses and sources checks.
//!
//! The advisory database comes from one of two places:
//!
//! * **a local snapshot**, when one exists: [`SNAPSHOT_VAR`] names it, else `advisory-db` in a
//!   `shared/` folder beside the project root (the machines this project is developed on
//!   cannot reach the database's git host). cargo-deny reads a local database only from a git
//!   repository in a folder whose name it derives from the database URL, so the snapshot is
//!   copied to [`DB_ROOT`]`/`[`DB_FOLDER`] and committed there;
//! * **the network** otherwise (a fresh clone on any other machine): `cargo deny fetch db`
//!   clones the database into [`DB_ROOT`] like any cargo-deny user's run would.
//!
//! Either way `deny.toml` points `db-path` at [`DB_ROOT`] and the check itself then runs
//! `--offline`.
//!
//! cargo-deny itself is installed on first use with `cargo install --locked` into the
//! project-local root `.tools/`, pinned to [`DENY_VERSION`] because the folder name above
//! depends on the cargo-deny version.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::sh::{self, Result};

/// The cargo-deny release installed when none of the expected series is found.
pub(crate) const DENY_VERSION: &str = "0.20.2";
/// The release series whose database folder name is [`DB_FOLDER`].
const DENY_SERIES: &str = "0.20.";
/// Where `deny.toml`'s `[advisories] db-path` points, relative to the project root.
pub(crate) const DB_ROOT: &str = "target/advisory-dbs";
/// The folder cargo-deny 0.20 expects for the default advisory-database URL.
pub(crate) const DB_FOLDER: &str = "advisory-db-3157b0e258782691";
/// The project-local install root for tools.
const TOOLS: &str = ".tools";
/// Names the advisory snapshot to use instead of `../shared/advisory-db`; a path that does
/// not exist means "no snapshot" (how the network path is exercised on a machine that has one).
pub(crate) const SNAPSHOT_VAR: &str = "XTASK_ADVISORY_SNAPSHOT";
/// The database cargo-deny fetches when there is no snapshot.
const DB_URL: &str = "https://github.com/rustsec/advisory-db";
/// A file in [`DB_FOLDER`] that marks a copy made from a snapshot (not a clone).
const SNAPSHOT_MARKER: &str = ".xtask-snapshot";

/// Where the advisory database comes from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AdvisorySource {
    /// A local snapshot folder, copied into place.
    Snapshot(PathBuf),
    /// cargo-deny fetches it; `looked` is the snapshot path that was not there.
    Fetch { looked: PathBuf },
}

/// The snapshot named by `override_path` (the [`SNAPSHOT_VAR`] value), else
/// `root/../shared/advisory-db`, if it is a directory; otherwise fetch.
pub(crate) fn advisory_source(
    root: &Path,
    override_path: Option<std::ffi::OsString>,
) -> AdvisorySource {
    let path = override_path.map_or_else(
        || root.join("..").join("shared").join("advisory-db"),
        PathBuf::from,
    );
    if path.is_dir() {
        AdvisorySource::Snapshot(path)
    } else {
        AdvisorySource::Fetch { looked: path }
    }
}

pub(crate) fn run(root: &Path) -> Result<()> {
    let bin_dir = ensure_cargo_deny(root)?;
    let path = path_with(&bin_dir)?;
    match advisory_source(root, std::env::var_os(SNAPSHOT_VAR)) {
        AdvisorySource::Snapshot(source) => setup_advisory_db(root, &source)?,
        AdvisorySource::Fetch { looked } => fetch_advisory_db(root, &looked, &path)?,
    }
    // cargo-deny reads every package's manifest, including those only used on other targets
    // which a host build never downloads; fetch them while the registry is reachable.
    sh::run(&mut sh::cargo(["fetch"]))?;
    let mut cmd = sh::cargo(["deny", "--offline", "check"]);
    cmd.env("PATH", &path);
    sh::run(&mut cmd)
}

/// `cargo deny fetch db`: clones (or updates) the advisory database into [`DB_ROOT`].
fn fetch_advisory_db(root: &Path, looked: &Path, path: &std::ffi::OsStr) -> Result<()> {
    eprintln!(
        "no advisory snapshot at {} (set {SNAPSHOT_VAR} to use one elsewhere): fetching the \
         advisory database from {DB_URL}",
        looked.display()
    );
    // A copy made from a snapshot is a repository without the upstream history: replace it.
    let dest = root.join(DB_ROOT).join(DB_FOLDER);
    if dest.join(SNAPSHOT_MARKER).exists() {
        fs::remove_dir_all(&dest).map_err(|e| format!("cannot remove {}: {e}", dest.display()))?;
    }
    let mut cmd = sh::cargo(["deny", "fetch", "db"]);
    cmd.env("PATH", path);
    sh::run(&mut cmd).map_err(|e| {
        format!(
            "could not fetch the advisory database from {DB_URL} ({e}). Without network \
             access to it, put a snapshot of the database (a checkout of {DB_URL}) at {} or \
             point {SNAPSHOT_VAR} at one",
            looked.display()
        )
        .into()
    })
}

/// Returns the directory holding a cargo-deny of the expected series, installing one into
/// `.tools/` when there is none.
fn ensure_cargo_deny(root: &Path) -> Result<PathBuf> {
    let bin_dir = root.join(TOOLS).join("bin");
    let exe = bin_dir.join(format!("cargo-deny{}", std::env::consts::EXE_SUFFIX));
    if let Some(version) = sh::output(Command::new(&exe).arg("--version")) {
        if version_matches(&version) {
            eprintln!("using {} ({})", exe.display(), version.trim());
            return Ok(bin_dir);
        }
        eprintln!(
            "{} is {}, not {DENY_SERIES}x: reinstalling",
            exe.display(),
            version.trim()
        );
    }
    let tools = root.join(TOOLS);
    let mut install = sh::cargo([
        "install",
        "--locked",
        "cargo-deny",
        "--version",
        DENY_VERSION,
        "--root",
    ]);
    install.arg(&tools);
    sh::run(&mut install)?;
    match sh::output(Command::new(&exe).arg("--version")) {
        Some(version) if version_matches(&version) => Ok(bin_dir),
        _ => Err(format!("{} did not run after installing it", exe.display()).into()),
    }
}

/// Whether `cargo-deny --version` output names a release of [`DENY_SERIES`].
fn version_matches(output: &str) -> bool {
    output
        .split_whitespace()
        .nth(1)
        .is_some_and(|v| v.starts_with(DENY_SERIES))
}

/// `PATH` with `dir` first, so `cargo deny` finds the project-local cargo-deny.
fn path_with(dir: &Path) -> Result<std::ffi::OsString> {
    let mut dirs = vec![dir.to_path_buf()];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).map_err(|e| format!("cannot build PATH: {e}").into())
}

/// Copies the snapshot `source` into [`DB_ROOT`]`/`[`DB_FOLDER`] as a fresh one-commit git
/// repository, replacing any earlier copy so a newer snapshot always takes effect.
pub(crate) fn setup_advisory_db(root: &Path, source: &Path) -> Result<()> {
    eprintln!("using the advisory snapshot in {}", source.display());
    let source = source.to_path_buf();
    let dest = root.join(DB_ROOT).join(DB_FOLDER);
    if dest.exists() {
        fs::remove_dir_all(&dest).map_err(|e| format!("cannot remove {}: {e}", dest.display()))?;
    }
    copy_dir(&source, &dest)
        .and_then(|()| fs::write(dest.join(SNAPSHOT_MARKER), "copied by cargo xtask deny\n"))
        .map_err(|e| {
            format!(
                "cannot copy {} to {}: {e}",
                source.display(),
                dest.display()
            )
        })?;
    let git = |args: &[&str]| {
        let mut cmd = Command::new("git");
        cmd.current_dir(&dest)
            .args([
                "-c",
                "user.name=xtask",
                "-c",
                "user.email=xtask@localhost",
                "-c",
                "commit.gpgsign=false",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args);
        sh::read(&mut cmd).map(drop)
    };
    git(&["init", "-q"])?;
    git(&["add", "-A"])?;
    git(&[
        "commit",
        "-q",
        "--no-verify",
        "-m",
        "advisory database snapshot",
    ])?;
    eprintln!("advisory snapshot ready in {}", dest.display());
    Ok(())
}

/// Copies a directory tree, leaving out any `.git` folder of the source.
fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == ".git" {
            continue;
        }
        let kind = entry.file_type()?;
        let target = to.join(&name);
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_expected_cargo_deny_series_is_used() {
        assert!(version_matches("cargo-deny 0.20.2\n"));
        assert!(version_matches("cargo-deny 0.20.0"));
        assert!(!version_matches("cargo-deny 0.18.3"));
        assert!(!version_matches(""));
    }

    #[test]
    fn the_snapshot_is_used_when_present_and_fetched_otherwise() {
        let dir = std::env::temp_dir().join(format!("xtask-deny-{}", std::process::id()));
        let root = dir.join("project");
        let shared = dir.join("shared").join("advisory-db");
        fs::create_dir_all(&root).expect("mkdir");
        // No shared/ beside the root: fetch.
        assert_eq!(
            advisory_source(&root, None),
            AdvisorySource::Fetch {
                looked: root.join("..").join("shared").join("advisory-db")
            }
        );
        fs::create_dir_all(&shared).expect("mkdir");
        assert!(matches!(
            advisory_source(&root, None),
            AdvisorySource::Snapshot(_)
        ));
        // The variable wins, and a missing path means fetch.
        let missing = dir.join("nowhere");
        assert_eq!(
            advisory_source(&root, Some(missing.clone().into_os_string())),
            AdvisorySource::Fetch { looked: missing }
        );
        assert_eq!(
            advisory_source(&root, Some(shared.clone().into_os_string())),
            AdvisorySource::Snapshot(shared)
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn deny_toml_points_db_path_where_the_snapshot_goes() {
        let deny = fs::read_to_string(sh::project_root().join("deny.toml")).expect("deny.toml");
        let line = format!("db-path = \"{DB_ROOT}\"");
        assert!(
            deny.lines().any(|l| l.trim() == line),
            "deny.toml lacks `{line}`"
        );
    }
}
