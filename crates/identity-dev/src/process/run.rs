//! The real executor's run: spawn, read both streams under a cap, time out, kill the process
//! group and reap.

use std::io;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::{Command, OUTPUT_LIMIT, Output, RunError, find_on_path};

/// How long to wait for a killed child to be reaped before leaving it to tokio's orphan reaper.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

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
            Ok(Output::new(
                status.code(),
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr),
            ))
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
