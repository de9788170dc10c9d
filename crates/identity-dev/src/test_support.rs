//! Helpers for the unit tests: fake tools as real scripts on an injected `PATH`, and an
//! executor that returns canned outputs.

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use identity_core::test_util::FakeClock;
use identity_core::{BoxFuture, Env, Error, Runtime, TokenCredential, TokenRequestOptions};

use crate::process::{Command, Executor, Output, RunError};
use crate::{DeveloperTool, DeveloperToolCredential, DeveloperToolCredentialBuilder};

/// A builder for tool `T` with an empty environment, a clock at 2030 and `canned` as executor.
pub(crate) fn canned_builder<T: DeveloperTool>(
    canned: &Arc<Canned>,
) -> DeveloperToolCredentialBuilder<T> {
    DeveloperToolCredential::<T>::builder()
        .runtime(Runtime::with_env(Env::empty()).clock(FakeClock::at_2030().shared()))
        .executor(canned.clone())
}

impl<T: DeveloperTool> DeveloperToolCredentialBuilder<T> {
    /// Runs the tools of `tools`: the environment is its `PATH` alone.
    pub(crate) fn on_path_of(self, tools: &FakeTools) -> Self {
        self.runtime(Runtime::with_env(tools.env()))
    }

    /// Builds a credential that runs the tools of `tools` ([`Self::on_path_of`]).
    pub(crate) fn build_on(self, tools: &FakeTools) -> DeveloperToolCredential<T> {
        self.on_path_of(tools).build().unwrap()
    }
}

/// The error of one `get_token` of `credential` for `scopes`, within the test's time bound.
pub(crate) async fn bounded_failure(credential: &impl TokenCredential, scopes: &[&str]) -> Error {
    bounded(credential.get_token(scopes, &TokenRequestOptions::default()))
        .await
        .unwrap_err()
}

/// The error of one `get_token` for `scope` of the credential `builder` builds over a tool
/// directory holding one script, `program` ([`FakeTools::script`]).
#[cfg(unix)]
pub(crate) async fn script_failure<T: DeveloperTool>(
    builder: DeveloperToolCredentialBuilder<T>,
    program: &str,
    body: &str,
    scope: &str,
) -> Error {
    let tools = FakeTools::with_script(program, body);
    bounded_failure(&builder.build_on(&tools), &[scope]).await
}

/// The error of one `get_token` for `scope` of a tool-`T` credential whose run answers
/// `code`, `stdout` and `stderr`.
pub(crate) async fn canned_failure<T: DeveloperTool>(
    scope: &str,
    code: i32,
    stdout: &str,
    stderr: &str,
) -> Error {
    let canned = Canned::output(code, stdout, stderr);
    let credential = canned_builder::<T>(&canned).build().unwrap();
    bounded_failure(&credential, &[scope]).await
}

/// Fails if a tool-`T` credential whose run answers one of `outputs` (each planting a token)
/// shows `planted` in its error, the error's `Debug`, its own `Debug` or the output's `Debug`.
pub(crate) async fn assert_planted_outputs_hidden<T: DeveloperTool>(
    scope: &str,
    outputs: impl IntoIterator<Item = Output>,
) {
    for output in outputs {
        let canned = Canned::new([Ok(output.clone())]);
        let credential = canned_builder::<T>(&canned).build().unwrap();
        let err = bounded_failure(&credential, &[scope]).await;
        assert_hidden(
            "planted",
            &[
                err.to_string(),
                format!("{err:?}"),
                format!("{credential:?}"),
                format!("{output:?}"),
            ],
        );
    }
}

/// Waits, within the test's time bound, until `done` holds, looking every 20 ms.
pub(crate) async fn wait_until(mut done: impl FnMut() -> bool) {
    bounded(async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// A builder for tool `T` as on Windows, with `SYSTEMROOT` at `C:\Windows` and `canned` as
/// executor.
pub(crate) fn windows_builder<T: DeveloperTool>(
    canned: &Arc<Canned>,
) -> DeveloperToolCredentialBuilder<T> {
    DeveloperToolCredential::<T>::builder()
        .runtime(Runtime::with_env(Env::from_pairs([(
            "SYSTEMROOT",
            "C:\\Windows",
        )])))
        .executor(canned.clone())
        .platform(crate::process::Platform::Windows)
}

/// A recognisable token planted in tool outputs; it must never reach a message.
pub(crate) const PLANTED: &str = "eyJ0eXAiOiJKV1QifQ.planted-token-value.c2ln";

/// Runs a test body with a bound on its duration, so no test can hang.
pub(crate) async fn bounded<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .expect("the test finished within its time bound")
}

/// Seconds since the epoch.
pub(crate) fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

/// A temporary directory holding fake tools; it is the only entry of the injected `PATH`.
pub(crate) struct FakeTools {
    dir: tempfile::TempDir,
}

impl FakeTools {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A directory holding one script, `name` ([`Self::script`]).
    #[cfg(unix)]
    pub(crate) fn with_script(name: &str, body: &str) -> Self {
        let tools = Self::new();
        tools.script(name, body);
        tools
    }

    /// A directory holding one recording script, `name` ([`Self::recording_script`]).
    #[cfg(unix)]
    pub(crate) fn with_recording_script(name: &str, then: &str) -> Self {
        let tools = Self::new();
        tools.recording_script(name, then);
        tools
    }

    /// The directory, as text, for use inside scripts.
    pub(crate) fn dir(&self) -> String {
        self.dir.path().to_str().unwrap().to_owned()
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes an executable `#!/bin/sh` script. `$D` in `body` is replaced by the directory.
    #[cfg(unix)]
    pub(crate) fn script(&self, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.file(name);
        let text = format!("#!/bin/sh\n{}\n", body.replace("$D", &self.dir()));
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A script prelude that records argv (one element per line), cwd and selected variables,
    /// and marks that the tool ran.
    pub(crate) fn recorder() -> &'static str {
        "for a in \"$@\"; do printf '%s\\n' \"$a\"; done > $D/argv\n\
         /bin/pwd > $D/cwd\n\
         printf '%s|%s\\n' \"$AZURE_CORE_NO_COLOR\" \"$NO_COLOR\" > $D/colour\n\
         echo ran >> $D/ran"
    }

    /// Writes `name` as a script that records its run ([`Self::recorder`]), then runs `then`.
    #[cfg(unix)]
    pub(crate) fn recording_script(&self, name: &str, then: &str) {
        self.script(name, &format!("{}\n{then}", Self::recorder()));
    }

    pub(crate) fn read(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.file(name)).ok()
    }

    pub(crate) fn argv(&self) -> Vec<String> {
        self.read("argv")
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub(crate) fn runs(&self) -> usize {
        self.read("ran").map_or(0, |t| t.lines().count())
    }

    /// An environment whose `PATH` is this directory only.
    pub(crate) fn env(&self) -> Env {
        Env::from_pairs([("PATH", self.dir())])
    }
}

/// An executor answering from a queue and recording every command.
#[derive(Debug, Default)]
pub(crate) struct Canned {
    answers: Mutex<VecDeque<Result<Output, RunError>>>,
    seen: Mutex<Vec<Command>>,
}

impl Canned {
    pub(crate) fn new(answers: impl IntoIterator<Item = Result<Output, RunError>>) -> Arc<Self> {
        Arc::new(Self {
            answers: Mutex::new(answers.into_iter().collect()),
            seen: Mutex::default(),
        })
    }

    pub(crate) fn output(code: i32, stdout: &str, stderr: &str) -> Arc<Self> {
        Self::new([Ok(Output::new(Some(code), stdout, stderr))])
    }

    pub(crate) fn seen(&self) -> Vec<Command> {
        self.seen.lock().unwrap().clone()
    }
}

impl Executor for Canned {
    fn run(&self, command: Command) -> BoxFuture<'static, Result<Output, RunError>> {
        self.seen.lock().unwrap().push(command);
        let answer = self.answers.lock().unwrap().pop_front().unwrap_or_else(|| {
            Err(RunError::NotFound {
                program: "canned".into(),
            })
        });
        Box::pin(async move { answer })
    }
}

/// Asserts that no formatting of `values` contains `secret`.
pub(crate) fn assert_hidden(secret: &str, values: &[String]) {
    for v in values {
        assert!(!v.contains(secret), "secret leaked into: {v}");
    }
}
