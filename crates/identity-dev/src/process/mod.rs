//! The process runner shared by the developer-tool credentials.
//!
//! Every credential in this crate describes the tool it wants to run as a [`Command`] and hands
//! it to an [`Executor`]. The real executor, [`TokioExecutor`], runs it on `tokio::process`
//! (no OS thread per call). Tests, and applications that want to intercept the tools, inject
//! their own executor through the credential builders.
//!
//! # What the real executor guarantees
//! * The program is looked up on the `PATH` of the command's [`Env`](identity_core::Env) (the injected snapshot,
//!   never the process environment) before anything is spawned. Only absolute `PATH` entries
//!   are searched: an empty or relative entry would resolve against the current directory,
//!   which an attacker may control. A missing program is [`RunError::NotFound`], and no
//!   process starts.
//! * No shell: arguments go to the program as separate `argv` elements. (Azure PowerShell is
//!   the one exception, run through `/bin/sh -c` exactly as the reference does; its
//!   interpolated values are validated first, and none may start with `-`.)
//! * The child's environment is exactly the command's [`Env`](identity_core::Env); its working directory is the
//!   command's (`/bin`, or `%SYSTEMROOT%` on Windows); stdin is the null device.
//! * stdout and stderr are read concurrently, each capped at [`OUTPUT_LIMIT`] bytes. A stream
//!   that exceeds the cap ends the run at once with [`RunError::OutputTooLarge`]; memory stays
//!   bounded whatever the tool prints.
//! * The run ends when the tool's own process has exited and both streams reached end of file.
//!   A process the tool leaves running (a telemetry upload, an agent, a `cmd &`, also one in a
//!   session of its own) inherits the streams and may hold them open: once the tool has exited,
//!   the streams get one second more (the exit grace, what Go's `os/exec` calls `WaitDelay`),
//!   then the runner stops reading and the output is what was read. The tool writes its answer
//!   before it exits, so the answer is kept; the leftover process is logged at debug level
//!   (without the output) and not killed, as the reference implementations leave a tool's
//!   descendants alone when it succeeds. A run therefore takes at most the timeout plus that
//!   second.
//! * After the command's timeout, or on any failure while the child runs, the child is killed
//!   and reaped (no zombie). On Unix the child leads its own process group and the whole group
//!   is killed, because the real `az` is a shell script whose Python child would otherwise
//!   outlive the timeout.
//! * Each run is a tokio task of its own, so the timeout holds even when nobody awaits the
//!   result any more: a process never outlives its timeout. (When the runtime shuts down, the
//!   task is dropped and the group is killed then.)

mod command;
mod path;
mod run;

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use identity_core::BoxFuture;

pub use command::{Command, Output, RunError};
pub use path::find_on_path;
pub(crate) use path::{Platform, child_env};

/// How long a tool may run before it is killed, unless a builder says otherwise.
pub const DEFAULT_PROCESS_TIMEOUT: Duration = Duration::from_secs(10);

/// The most bytes read from each of stdout and stderr. A token response is a few kilobytes.
pub const OUTPUT_LIMIT: usize = 1024 * 1024;

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
        let task = tokio::spawn(run::run_command(command));
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use identity_core::Env;

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
