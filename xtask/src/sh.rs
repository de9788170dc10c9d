//! Small helpers for running commands: the project root, a printable command line, and
//! running with inherited output and no standard input (CI has none).

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The error type of every xtask command: a message for the person at the terminal.
#[derive(Debug)]
pub(crate) struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Self(message.to_owned())
    }
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// The workspace root: the parent of this package's directory.
pub(crate) fn project_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map_or_else(|| manifest_dir.to_path_buf(), Path::to_path_buf)
}

/// `cargo` as found on `PATH` (the rustup proxy on a fresh machine), run from the project
/// root.
pub(crate) fn cargo<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("cargo");
    cmd.args(args).current_dir(project_root());
    cmd
}

/// The command line, for printing: variables set for it, program and arguments (xtask never
/// passes secrets).
pub(crate) fn show(cmd: &Command) -> String {
    let mut line = String::new();
    for (key, value) in cmd.get_envs() {
        // PATH is only ever extended with `.tools/bin`, which the caller reports itself.
        if key == "PATH" {
            continue;
        }
        if let Some(value) = value {
            line.push_str(&format!(
                "{}={} ",
                key.to_string_lossy(),
                value.to_string_lossy()
            ));
        }
    }
    line.push_str(&cmd.get_program().to_string_lossy());
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// Runs `cmd` with inherited stdout/stderr and no stdin; fails on a non-zero exit.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let line = show(cmd);
    eprintln!("$ {line}");
    let status = cmd
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("could not start `{line}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{line}` failed ({status})").into())
    }
}

/// Runs `cmd` quietly and returns its stdout, or `None` when it cannot start or fails.
pub(crate) fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `cmd` and returns its stdout, failing with its stderr on a non-zero exit.
pub(crate) fn read(cmd: &mut Command) -> Result<String> {
    let line = show(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not start `{line}`: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{line}` failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into())
    }
}
