//! `cargo xtask dev`: a local development stack for running your own application: Azurite
//! (OAuth, HTTPS, a throwaway certificate rustls accepts) and a local App Service
//! managed-identity endpoint, until Ctrl-C. It prints the `export` lines the application
//! needs (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`, `AZURE_STORAGE_ACCOUNT_URL`,
//! `SSL_CERT_FILE`). The stack itself is identity-blob-demo's `dev-stack` binary; see the
//! README, "Run your own app locally".

use std::process::Command;

use crate::sh::{self, Result};

pub(crate) fn run(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        return Err(format!("unknown argument `{arg}`; usage: cargo xtask dev").into());
    }
    sh::run(&mut sh::cargo([
        "build",
        "-p",
        "identity-blob-demo",
        "--bin",
        "dev-stack",
    ]))?;
    let exe = sh::project_root()
        .join("target")
        .join("debug")
        .join(format!("dev-stack{}", std::env::consts::EXE_SUFFIX));
    let mut cmd = Command::new(&exe);
    cmd.current_dir(sh::project_root());
    exec(&mut cmd)
}

/// Replaces xtask with the stack, so that Ctrl-C reaches it alone and the shell waits for its
/// clean shutdown.
#[cfg(unix)]
fn exec(cmd: &mut Command) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let error = cmd.exec();
    Err(format!(
        "could not start {}: {error}",
        cmd.get_program().to_string_lossy()
    )
    .into())
}

#[cfg(not(unix))]
fn exec(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().map_err(|e| {
        format!(
            "could not start {}: {e}",
            cmd.get_program().to_string_lossy()
        )
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the development stack exited with {status}").into())
    }
}
