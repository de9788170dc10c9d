//! The real executor's run: spawn, read both streams under a cap, time out, kill the process
//! group and reap.
//!
//! The run ends when the tool's own process has exited and both pipes reached end of file.
//! A descendant the tool left running (a telemetry upload, an agent, `cmd &`) inherits the
//! pipes and may hold them open long after the tool is done; once the tool has exited, the
//! pipes get [`EXIT_GRACE`] to close, and then what was read is the output (a tool writes its
//! answer before it exits, so that answer is already in the pipe and read during the grace).
//! Go's `os/exec` calls the same bound `WaitDelay`.

use std::io;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::{Command, OUTPUT_LIMIT, Output, RunError, find_on_path};

/// How long to wait for a killed child to be reaped before leaving it to tokio's orphan reaper.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the pipes may stay open after the tool's own process has exited.
///
/// One second: the tool's answer is in the pipe when it exits, so the grace only has to cover
/// a descendant that is itself finishing (flushing its part of the output, the last stage of
/// a pipeline), which takes milliseconds; against a tool run that takes a second or more and
/// a 10 s timeout it adds little, and a leftover process that lives on costs the caller at
/// most this much.
pub(super) const EXIT_GRACE: Duration = Duration::from_secs(1);

/// The size of one read from a pipe.
const CHUNK: usize = 8 * 1024;

pub(super) async fn run_command(command: Command) -> Result<Output, RunError> {
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
    let mut out = Vec::new();
    let mut err = Vec::new();
    let outcome = collect(&mut child, command.timeout, async {
        tokio::try_join!(
            read_capped(stdout, &mut out, "stdout"),
            read_capped(stderr, &mut err, "stderr"),
        )
        .map(|_| ())
    })
    .await;
    match outcome {
        Ok((status, pipes)) => {
            // The tool has exited and was reaped. A process it left behind keeps running: the
            // tool may have started it on purpose (a telemetry upload, a token broker), and
            // the reference implementations leave a tool's descendants alone on success too.
            group.disarm();
            if pipes == Pipes::HeldOpen {
                tracing::debug!(
                    target: "identity_dev::process",
                    program = command.name(),
                    grace_ms = u64::try_from(EXIT_GRACE.as_millis()).unwrap_or(u64::MAX),
                    "a process left running by the tool held its output open; using what the tool printed before it exited"
                );
            }
            Ok(Output::new(
                status.code(),
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err),
            ))
        }
        Err(error) => {
            kill_and_reap(&mut child, group).await;
            Err(error)
        }
    }
}

/// Whether both pipes reached end of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pipes {
    Closed,
    /// The tool exited, but a process it left behind kept a pipe open past [`EXIT_GRACE`].
    HeldOpen,
}

/// Waits for the tool to exit and for `reading` (both pipes to end of file), the tool bounded
/// by `timeout` and the pipes, once it has exited, by [`EXIT_GRACE`]. On an error the caller
/// kills the group; the bytes `reading` appended before it stopped stay with the caller.
async fn collect(
    child: &mut tokio::process::Child,
    timeout: Duration,
    reading: impl Future<Output = Result<(), RunError>>,
) -> Result<(std::process::ExitStatus, Pipes), RunError> {
    let mut reading = std::pin::pin!(reading);
    let mut read_done = false;
    let exited = tokio::time::timeout(timeout, async {
        tokio::select! {
            // A reading error (the cap) ends the run at once, whatever the tool does next.
            read = &mut reading => {
                read?;
                read_done = true;
                child.wait().await.map_err(RunError::Io)
            }
            status = child.wait() => status.map_err(RunError::Io),
        }
    })
    .await;
    let status = exited.map_err(|_elapsed| RunError::TimedOut(timeout))??;
    if read_done {
        return Ok((status, Pipes::Closed));
    }
    match tokio::time::timeout(EXIT_GRACE, &mut reading).await {
        Ok(read) => read.map(|()| (status, Pipes::Closed)),
        // Dropping `reading` closes the pipes; what was read is kept.
        Err(_elapsed) => Ok((status, Pipes::HeldOpen)),
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

/// Reads `stream` to end of file into `buf`, failing once it holds more than [`OUTPUT_LIMIT`]
/// bytes. Cancellation-safe: every chunk read is in `buf` before the next read starts, so a
/// run that stops reading keeps all that was read.
async fn read_capped(
    stream: Option<impl AsyncRead + Unpin>,
    buf: &mut Vec<u8>,
    name: &'static str,
) -> Result<(), RunError> {
    let Some(mut stream) = stream else {
        return Ok(());
    };
    let mut chunk = vec![0; CHUNK];
    loop {
        let n = stream.read(&mut chunk).await.map_err(RunError::Io)?;
        if n == 0 {
            return Ok(());
        }
        if buf.len().saturating_add(n) > OUTPUT_LIMIT {
            return Err(RunError::OutputTooLarge {
                stream: name,
                limit: OUTPUT_LIMIT,
            });
        }
        buf.extend_from_slice(&chunk[..n]);
    }
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::test_support::{FakeTools, bounded};
    use identity_core::test_util::Capture;

    /// Runs the script `name` of `tools` with `timeout`.
    async fn run(tools: &FakeTools, name: &str, timeout: Duration) -> Result<Output, RunError> {
        let command = Command::new("tool", name)
            .env(tools.env())
            .current_dir("/")
            .timeout(timeout);
        bounded(run_command(command)).await
    }

    /// Kills, when dropped, the process whose id the script wrote to `file`: the leftover
    /// process a test started on purpose.
    struct Leftover(Option<i32>);

    impl Leftover {
        fn of(tools: &FakeTools, file: &str) -> Self {
            Self(tools.read(file).and_then(|t| t.trim().parse().ok()))
        }
    }

    impl Drop for Leftover {
        fn drop(&mut self) {
            #[cfg(unix)]
            if let Some(pid) = self.0.and_then(rustix::process::Pid::from_raw) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }

    /// Far longer than the exit grace and shorter than the leftover processes' 30 s: a run
    /// that waited for a leftover process would end in a timeout.
    const LONG: Duration = Duration::from_secs(20);

    #[cfg(unix)]
    #[tokio::test]
    async fn a_tool_that_exits_keeps_its_output_although_a_leftover_child_holds_stdout() {
        let tools = FakeTools::with_script(
            "az",
            "echo '{\"accessToken\":\"planted\"}'\n/bin/sleep 30 &\necho $! > $D/left\nexit 0",
        );
        let capture = Capture::new();
        // With one scoped subscriber alive, tracing-core decides a callsite's interest from
        // the subscriber of whichever thread reaches it first (another test's thread, with
        // none); with two, it asks every live subscriber.
        let _second = Capture::new();
        let output = {
            let _guard = capture.enter();
            run(&tools, "az", LONG).await
        };
        let _left = Leftover::of(&tools, "left");
        let output = output.unwrap();
        assert!(output.success());
        assert_eq!(output.stdout().trim(), "{\"accessToken\":\"planted\"}");
        let logged = capture.text();
        assert!(logged.contains("held its output open"), "{logged}");
        capture.assert_absent("planted");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_leftover_child_holding_stderr_alone_is_tolerated_too() {
        let tools = FakeTools::with_script(
            "az",
            "echo out\necho err >&2\n/bin/sleep 30 >/dev/null &\necho $! > $D/left\nexit 3",
        );
        let output = run(&tools, "az", LONG).await;
        let _left = Leftover::of(&tools, "left");
        let output = output.unwrap();
        assert_eq!(output.code(), Some(3));
        assert_eq!(output.stdout(), "out\n");
        assert_eq!(output.stderr(), "err\n");
    }

    // `setsid` puts the leftover process beyond the reach of the group kill.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_leftover_child_in_a_session_of_its_own_does_not_hold_up_the_answer() {
        if !Path::new("/usr/bin/setsid").exists() {
            return;
        }
        let tools = FakeTools::with_script(
            "az",
            "echo token\n/usr/bin/setsid /bin/sleep 30 &\necho $! > $D/left\nexit 0",
        );
        let output = run(&tools, "az", LONG).await;
        let _left = Leftover::of(&tools, "left");
        assert_eq!(output.unwrap().stdout(), "token\n");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_tool_that_exits_silently_while_a_child_holds_the_pipes_gives_empty_output() {
        let tools = FakeTools::with_script("az", "/bin/sleep 30 &\necho $! > $D/left\nexit 0");
        let output = run(&tools, "az", LONG).await;
        let _left = Leftover::of(&tools, "left");
        let output = output.unwrap();
        assert!(output.success());
        assert_eq!(output.stdout(), "");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_tool_that_prints_its_answer_and_then_hangs_is_still_stopped_at_the_timeout() {
        let tools = FakeTools::with_script("az", "echo token\nexec /bin/sleep 30");
        let err = run(&tools, "az", Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, RunError::TimedOut(_)), "{err:?}");
    }

    #[tokio::test]
    async fn the_reader_keeps_what_it_read_when_it_is_stopped() {
        let (mut writer, reader) = tokio::io::duplex(64);
        let mut buf = Vec::new();
        tokio::io::AsyncWriteExt::write_all(&mut writer, b"partial")
            .await
            .unwrap();
        // The writer stays open: the read never reaches end of file and is cut off.
        let stopped = tokio::time::timeout(
            Duration::from_millis(100),
            read_capped(Some(reader), &mut buf, "stdout"),
        )
        .await;
        assert!(stopped.is_err());
        assert_eq!(buf, b"partial");
    }

    #[tokio::test]
    async fn the_reader_allows_exactly_the_cap_and_refuses_one_byte_more() {
        for (len, fits) in [(OUTPUT_LIMIT, true), (OUTPUT_LIMIT + 1, false)] {
            let data = vec![b'x'; len];
            let mut buf = Vec::new();
            let read = read_capped(Some(&data[..]), &mut buf, "stdout").await;
            assert_eq!(read.is_ok(), fits, "{len}");
        }
    }
}
