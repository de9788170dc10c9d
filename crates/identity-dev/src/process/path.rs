//! Finding a tool on the injected `PATH`, and where it runs.

use std::path::{Path, PathBuf};

use identity_core::Env;

use super::RunError;

/// Finds `program` on the `PATH` of `env`: an absolute path is checked as is; a bare name is
/// joined to each absolute `PATH` entry in turn (on Windows also with `.exe`, `.cmd`, `.bat`).
pub fn find_on_path(program: &str, env: &Env) -> Option<PathBuf> {
    let as_path = Path::new(program);
    if as_path.is_absolute() {
        return is_executable(as_path).then(|| as_path.to_path_buf());
    }
    if program.contains(['/', '\\']) {
        // A relative path with a directory part would resolve against our working directory.
        return None;
    }
    let path = path_variable(env)?;
    for dir in std::env::split_paths(path) {
        if !dir.is_absolute() {
            continue;
        }
        for candidate in candidates(&dir, program) {
            if is_executable(&candidate) {
                return Some(candidate);
            }
        }
    }
    None
}

#[cfg(windows)]
fn path_variable(env: &Env) -> Option<&str> {
    // Windows variable names are case-insensitive and the usual spelling is `Path`.
    env.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("PATH"))
        .map(|(_, v)| v)
}

#[cfg(not(windows))]
fn path_variable(env: &Env) -> Option<&str> {
    env.get("PATH")
}

#[cfg(windows)]
fn candidates(dir: &Path, program: &str) -> Vec<PathBuf> {
    if Path::new(program).extension().is_some() {
        return vec![dir.join(program)];
    }
    [".exe", ".cmd", ".bat", ""]
        .iter()
        .map(|ext| dir.join(format!("{program}{ext}")))
        .collect()
}

#[cfg(not(windows))]
fn candidates(dir: &Path, program: &str) -> Vec<PathBuf> {
    vec![dir.join(program)]
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

/// The platform a command line is built for; tests build the Windows form on any host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Platform {
    Unix,
    Windows,
}

impl Platform {
    pub(crate) const CURRENT: Self = if cfg!(windows) {
        Self::Windows
    } else {
        Self::Unix
    };

    /// The working directory for a tool: `/bin`, or `%SYSTEMROOT%` on Windows.
    pub(crate) fn working_dir(self, env: &Env) -> Result<PathBuf, RunError> {
        match self {
            Self::Unix => Ok(PathBuf::from("/bin")),
            Self::Windows => env
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("SYSTEMROOT"))
                .map(|(_, v)| v)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .ok_or(RunError::NoWorkingDirectory),
        }
    }
}

/// The child environment: the injected one plus the variables that turn colour off.
pub(crate) fn child_env(env: &Env) -> Env {
    env.with("AZURE_CORE_NO_COLOR", "true")
        .with("NO_COLOR", "true")
}
