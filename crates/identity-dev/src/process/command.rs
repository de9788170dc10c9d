//! What a tool run is: the [`Command`] handed to an executor, the [`Output`] it gives back,
//! and the [`RunError`] when there is none.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use identity_core::Env;

use super::DEFAULT_PROCESS_TIMEOUT;

/// A program to run: its name, arguments, environment, working directory and timeout.
///
/// `Debug` and `Display` show the program's display name only, never the arguments or the
/// environment.
#[derive(Clone)]
pub struct Command {
    name: &'static str,
    pub(super) programs: Vec<String>,
    pub(super) args: Vec<String>,
    pub(super) env: Env,
    pub(super) cwd: PathBuf,
    pub(super) requires: Vec<&'static str>,
    pub(super) timeout: Duration,
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
    /// An output, for executors other than [`TokioExecutor`](super::TokioExecutor). `code` is `None` when the
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
    /// The process printed more than [`OUTPUT_LIMIT`](super::OUTPUT_LIMIT) bytes on one stream and was killed.
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
