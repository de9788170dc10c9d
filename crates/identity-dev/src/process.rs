//! The process runner shared by the developer-tool credentials.
//!
//! Every credential in this crate describes the tool it wants to run as a [`Command`] and hands
//! it to an [`Executor`]. The real executor, [`TokioExecutor`], runs it on `tokio::process`
//! (no OS thread per call). Tests, and applications that want to intercept the tools, inject
//! their own executor through the credential builders.
//!
//! # What the real executor guarantees
//! * The program is looked up on the `PATH` of the command's [`Env`] (the injected snapshot,
//!   never the process environment) before anything is spawned. Only absolute `PATH` entries
//!   are searched: an empty or relative entry would resolve against the current directory,
//!   which an attacker may control. A missing program is [`RunError::NotFound`], and no
//!   process starts.
//! * No shell: arguments go to the program as separate `argv` elements. (Azure PowerShell is
//!   the one exception, run through `/bin/sh -c` exactly as the reference does; its
//!   interpolated values are validated first, and none may start with `-`.)
//! * The child's environment is exactly the command's [`Env`]; its working directory is the
//!   command's (`/bin`, or `%SYSTEMROOT%` on Windows); stdin is the null device.
//! * stdout and stderr are read concurrently, each capped at [`OUTPUT_LIMIT`] bytes. A stream
//!   that exceeds the cap ends the run at once with [`RunError::OutputTooLarge`]; memory stays
//!   bounded whatever the tool prints.
//! * After the command's timeout, or on any failure while the child runs, the child is killed
//!   and reaped (no zombie). On Unix the child leads its own process group and the whole group
//!   is killed, because the real `az` is a shell script whose Python child would otherwise
//!   outlive the timeout.
//! * Each run is a tokio task of its own, so the timeout holds even when nobody awaits the
//!   result any more: a process never outlives its timeout. (When the runtime shuts down, the
//!   task is dropped and the group is killed then.)

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use identity_core::{BoxFuture, Env};
use tokio::io::{AsyncRead, AsyncReadExt};

/// How long a tool may run before it is killed, unless a builder says otherwise.
pub const DEFAULT_PROCESS_TIMEOUT: Duration = Duration::from_secs(10);

/// The most bytes read from each of stdout and stderr. A token response is a few kilobytes.
pub const OUTPUT_LIMIT: usize = 1024 * 1024;

/// How long to wait for a killed child to be reaped before leaving it to tokio's orphan reaper.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// A program to run: its name, arguments, environment, working directory and timeout.
///
/// `Debug` and `Display` show the program's display name only, never the arguments or the
/// environment.
#[derive(Clone)]
pub struct Command {
    name: &'static str,
    programs: Vec<String>,
    args: Vec<String>,
    env: Env,
    cwd: PathBuf,
    requires: Vec<&'static str>,
    timeout: Duration,
}

impl Command {
    /// A command shown as `name` that runs `program`: a bare name looked up on the `PATH` of
    /// the command's environment, or an absolute path.
    pub fn new(name: &'static str, program: impl Into<String>) -> Self {
        Self {
            name,
            programs: vec![program.into()],
            args: Vec::new(),
            env: Env::empty(),
            cwd: PathBuf::from("/"),
            requires: Vec::new(),
            timeout: DEFAULT_PROCESS_TIMEOUT,
        }
    }

    /// Another candidate program, tried when the earlier ones are not on `PATH` (e.g. `az.cmd`
    /// then `az` on Windows).
    #[must_use]
    pub fn or_program(mut self, program: impl Into<String>) -> Self {
        self.programs.push(program.into());
        self
    }

    /// Appends one argument.
    #[must_use]
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Sets the child's whole environment.
    #[must_use]
    pub fn env(mut self, env: Env) -> Self {
        self.env = env;
        self
    }

    /// Sets the working directory.
    #[must_use]
    pub fn current_dir(mut self, cwd: impl Into<PathBuf>) -> Self {
        self.cwd = cwd.into();
        self
    }

    /// Names another executable that must be on `PATH` before the command is spawned (the
    /// program a shell wrapper runs).
    #[must_use]
    pub fn requires(mut self, program: &'static str) -> Self {
        self.requires.push(program);
        self
    }

    /// Sets how long the command may run.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The display name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The candidate programs, in lookup order.
    pub fn programs(&self) -> &[String] {
        &self.programs
    }

    /// The arguments.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The child's environment.
    pub fn environment(&self) -> &Env {
        &self.env
    }

    /// The working directory.
    pub fn working_dir(&self) -> &Path {
        &self.cwd
    }

    /// The other executables that must be on `PATH`.
    pub fn required_programs(&self) -> &[&'static str] {
        &self.requires
    }

    /// How long the command may run.
    pub fn time_limit(&self) -> Duration {
        self.timeout
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("program", &self.name)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// What a finished process printed, and how it exited.
///
/// `Debug` shows sizes only: the output holds a token.
#[derive(Clone, PartialEq, Eq)]
pub struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Output {
    /// An output, for executors other than [`TokioExecutor`]. `code` is `None` when the
    /// process was ended by a signal.
    pub fn new(code: Option<i32>, stdout: impl Into<String>, stderr: impl Into<String>) -> Self {
        Self {
            code,
            stdout: stdout.into(),
            stderr: stderr.into(),
        }
    }

    /// The exit code, or `None` if a signal ended the process.
    pub fn code(&self) -> Option<i32> {
        self.code
    }

    /// True for exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Standard output (lossily decoded as UTF-8).
    pub fn stdout(&self) -> &str {
        &self.stdout
    }

    /// Standard error (lossily decoded as UTF-8).
    pub fn stderr(&self) -> &str {
        &self.stderr
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("code", &self.code)
            .field("stdout_len", &self.stdout.len())
            .field("stderr_len", &self.stderr.len())
            .finish()
    }
}

/// Why a command produced no [`Output`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The program (or one it requires) is not on the `PATH` of the command's environment.
    #[error("{program} was not found on PATH")]
    NotFound {
        /// The program looked for.
        program: String,
    },
    /// The operating system refused to start the process.
    #[error("the process could not be started")]
    Spawn(#[source] io::Error),
    /// The process ran longer than its timeout and was killed.
    #[error("the process did not finish within {} ms and was killed", .0.as_millis())]
    TimedOut(Duration),
    /// The process printed more than [`OUTPUT_LIMIT`] bytes on one stream and was killed.
    #[error("the process printed more than {limit} bytes on {stream} and was killed")]
    OutputTooLarge {
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// The cap.
        limit: usize,
    },
    /// Reading the output or waiting for the process failed.
    #[error("reading the process output failed")]
    Io(#[source] io::Error),
    /// The working directory cannot be determined (`SYSTEMROOT` unset on Windows).
    #[error("the working directory for the process cannot be determined")]
    NoWorkingDirectory,
}

/// Runs [`Command`]s. Implemented by [`TokioExecutor`]; tests implement it to return canned
/// outputs.
pub trait Executor: Send + Sync + fmt::Debug {
    /// Runs `command` to completion.
    fn run(&self, command: Command) -> BoxFuture<'static, Result<Output, RunError>>;
}

/// The real executor, on `tokio::process`. See the [module docs](self) for its guarantees.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioExecutor;

impl Executor for TokioExecutor {
    fn run(&self, command: Command) -> BoxFuture<'static, Result<Output, RunError>> {
        // The run is a task of its own, so that its timeout, kill and reap happen even when no
        // one polls the returned future any more (a caller gave up, and the token cache keeps
        // the abandoned load for the next caller without driving it).
        let task = tokio::spawn(run_command(command));
        Box::pin(async move {
            task.await.unwrap_or_else(|e| {
                Err(RunError::Io(io::Error::other(format!(
                    "the process runner task ended: {e}"
                ))))
            })
        })
    }
}

/// The default executor, shared.
pub fn tokio_executor() -> Arc<dyn Executor> {
    Arc::new(TokioExecutor)
}

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

async fn run_command(command: Command) -> Result<Output, RunError> {
    // Lookups are a handful of `stat` calls, cheap enough to make on the runtime thread.
    let program = command
        .programs
        .iter()
        .find_map(|p| find_on_path(p, &command.env))
        .ok_or_else(|| RunError::NotFound {
            program: command.programs.first().cloned().unwrap_or_default(),
        })?;
    for required in &command.requires {
        if find_on_path(required, &command.env).is_none() {
            return Err(RunError::NotFound {
                program: (*required).to_owned(),
            });
        }
    }

    let mut child = spawn(&program, &command).await?;
    let group = GroupGuard::new(child.id());
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let outcome = tokio::time::timeout(command.timeout, async {
        tokio::try_join!(
            read_capped(stdout, "stdout"),
            read_capped(stderr, "stderr"),
            async { child.wait().await.map_err(RunError::Io) },
        )
    })
    .await;
    match outcome {
        Ok(Ok((stdout, stderr, status))) => {
            group.disarm();
            Ok(Output {
                code: status.code(),
                stdout: String::from_utf8_lossy(&stdout).into_owned(),
                stderr: String::from_utf8_lossy(&stderr).into_owned(),
            })
        }
        Ok(Err(error)) => {
            kill_and_reap(&mut child, group).await;
            Err(error)
        }
        Err(_elapsed) => {
            kill_and_reap(&mut child, group).await;
            Err(RunError::TimedOut(command.timeout))
        }
    }
}

async fn spawn(program: &Path, command: &Command) -> Result<tokio::process::Child, RunError> {
    let mut attempts = 0;
    loop {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&command.args)
            .env_clear()
            .envs(command.env.iter())
            .current_dir(&command.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        #[cfg(unix)]
        cmd.process_group(0);
        match cmd.spawn() {
            Ok(child) => return Ok(child),
            // A file that was just written (a freshly installed tool) can be briefly busy while
            // another thread's fork still holds it open; a short retry gets past that.
            Err(e) if e.kind() == io::ErrorKind::ExecutableFileBusy && attempts < 5 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(RunError::Spawn(e)),
        }
    }
}

async fn read_capped(
    stream: Option<impl AsyncRead + Unpin>,
    name: &'static str,
) -> Result<Vec<u8>, RunError> {
    let Some(stream) = stream else {
        return Ok(Vec::new());
    };
    let mut buf = Vec::new();
    // One byte more than the cap tells "exactly at the cap" from "over it".
    let limit = u64::try_from(OUTPUT_LIMIT)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    stream
        .take(limit)
        .read_to_end(&mut buf)
        .await
        .map_err(RunError::Io)?;
    if buf.len() > OUTPUT_LIMIT {
        return Err(RunError::OutputTooLarge {
            stream: name,
            limit: OUTPUT_LIMIT,
        });
    }
    Ok(buf)
}

async fn kill_and_reap(child: &mut tokio::process::Child, group: GroupGuard) {
    group.kill();
    // The group signal normally did it; this covers platforms without process groups and a
    // child that left its group.
    let _ = child.start_kill();
    if tokio::time::timeout(REAP_TIMEOUT, child.wait())
        .await
        .is_err()
    {
        tracing::warn!(target: "identity_dev::process", "a killed developer tool was not reaped in time");
    }
}

/// Kills the child's process group when dropped, unless the child finished normally.
struct GroupGuard {
    pgid: Option<u32>,
}

impl GroupGuard {
    fn new(pid: Option<u32>) -> Self {
        Self { pgid: pid }
    }

    fn disarm(mut self) {
        self.pgid = None;
    }

    fn kill(mut self) {
        if let Some(pgid) = self.pgid.take() {
            kill_group(pgid);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            kill_group(pgid);
        }
    }
}

#[cfg(unix)]
fn kill_group(pgid: u32) {
    use rustix::process::{Pid, Signal, kill_process_group};
    // Never signal group 1 (or 0): `kill(-1)` would reach every process we may signal.
    let Some(pid) = i32::try_from(pgid)
        .ok()
        .filter(|p| *p > 1)
        .and_then(Pid::from_raw)
    else {
        return;
    };
    // ESRCH (the group is already gone) is the expected outcome after a normal exit.
    let _ = kill_process_group(pid, Signal::KILL);
}

#[cfg(not(unix))]
fn kill_group(_pgid: u32) {
    // Without process groups the direct child is killed through `kill_on_drop`/`start_kill`.
}

/// Refuses a value that would reach a command line starting with `-` (it would be read as an
/// option), or empty.
///
/// # Errors
/// [`ErrorKind::InvalidArgument`](identity_core::ErrorKind::InvalidArgument) naming `what`,
/// never the value.
pub(crate) fn check_argument(
    credential: &'static str,
    what: &'static str,
    value: &str,
) -> Result<(), identity_core::Error> {
    if value.is_empty() || value.starts_with('-') {
        return Err(identity_core::Error::invalid_argument(
            credential,
            format!("invalid {what}: it must not be empty or start with '-'"),
        ));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_formatting_shows_the_program_only() {
        let c = Command::new("az", "az")
            .arg("--planted-argument")
            .env(Env::from_pairs([("SECRET_VAR", "planted-value")]));
        for text in [format!("{c}"), format!("{c:?}")] {
            assert!(!text.contains("planted"), "{text}");
            assert!(text.contains("az"), "{text}");
        }
    }

    #[test]
    fn output_debug_shows_sizes_only() {
        let o = Output::new(Some(0), "planted-token", "planted-error");
        let text = format!("{o:?}");
        assert!(!text.contains("planted"), "{text}");
    }

    #[test]
    fn leading_dash_and_empty_values_are_refused_without_echo() {
        for bad in ["-x", "--tenant", ""] {
            let err = check_argument("X", "tenant id", bad).unwrap_err();
            assert_eq!(err.kind(), identity_core::ErrorKind::InvalidArgument);
            if !bad.is_empty() {
                assert!(!err.to_string().contains(bad), "{err}");
            }
        }
        check_argument("X", "tenant id", "a-b").unwrap();
    }

    #[test]
    fn lookup_ignores_relative_path_entries_and_missing_path() {
        assert_eq!(find_on_path("sh", &Env::empty()), None);
        assert_eq!(
            find_on_path("sh", &Env::from_pairs([("PATH", "bin:.:")])),
            None
        );
        assert_eq!(
            find_on_path("./sh", &Env::from_pairs([("PATH", "/bin")])),
            None
        );
    }

    #[cfg(unix)]
    #[test]
    fn lookup_finds_executables_on_the_injected_path_only() {
        let env = Env::from_pairs([("PATH", "/nonexistent:/bin")]);
        assert_eq!(find_on_path("sh", &env), Some(PathBuf::from("/bin/sh")));
        assert_eq!(
            find_on_path("/bin/sh", &Env::empty()),
            Some(PathBuf::from("/bin/sh"))
        );
    }

    #[test]
    fn windows_working_dir_needs_systemroot() {
        assert!(matches!(
            Platform::Windows.working_dir(&Env::empty()),
            Err(RunError::NoWorkingDirectory)
        ));
        assert_eq!(
            Platform::Windows
                .working_dir(&Env::from_pairs([("SystemRoot", "C:\\Windows")]))
                .unwrap(),
            PathBuf::from("C:\\Windows")
        );
        assert_eq!(
            Platform::Unix.working_dir(&Env::empty()).unwrap(),
            PathBuf::from("/bin")
        );
    }
}
