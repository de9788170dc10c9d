//! Installing the pinned Azurite with npm into a project-local folder, atomically.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use crate::explain::DemoError;

use super::{AZURITE_VERSION, INSTALL_TIMEOUT, blob_binary};

/// True when `install_dir` holds the pinned Azurite version.
pub fn is_installed(install_dir: &Path) -> bool {
    let manifest = install_dir
        .join("node_modules")
        .join("azurite")
        .join("package.json");
    let Ok(text) = std::fs::read_to_string(manifest) else {
        return false;
    };
    let version = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("version")?.as_str().map(str::to_owned));
    version.as_deref() == Some(AZURITE_VERSION) && blob_binary(install_dir).exists()
}

/// Installs Azurite into `install_dir` unless the pinned version is already there, and
/// returns the `azurite-blob` launcher.
///
/// # Errors
/// When `npm` is missing (with a hint to install Node.js) or the install fails or times out.
pub async fn ensure_installed(install_dir: &Path) -> Result<PathBuf, DemoError> {
    // Tests in one process may ask at the same time; one install is enough.
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _guard = LOCK.lock().await;
    if is_installed(install_dir) {
        return Ok(blob_binary(install_dir));
    }
    let step = "install Azurite";
    let npm_ok = Command::new("npm")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .is_ok_and(|s| s.success());
    if !npm_ok {
        return Err(DemoError::local(
            step,
            "npm was not found on PATH: the local demo installs Azurite with npm; install \
             Node.js 20 or newer (it includes npm), e.g. `apt-get install nodejs npm`, and \
             run again",
        ));
    }
    let parent = install_dir.parent().unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(parent)
        .await
        .map_err(|e| DemoError::local(step, format!("cannot create {}: {e}", parent.display())))?;
    let staging = parent.join(format!(".azurite-install-{}", std::process::id()));
    let _ = tokio::fs::remove_dir_all(&staging).await;
    tokio::fs::create_dir_all(&staging)
        .await
        .map_err(|e| DemoError::local(step, format!("cannot create {}: {e}", staging.display())))?;
    let mut npm = Command::new("npm");
    npm.arg("install")
        .arg("--prefix")
        .arg(&staging)
        .args([
            "--no-audit",
            "--no-fund",
            "--no-progress",
            "--loglevel=error",
        ])
        .arg(format!("azurite@{AZURITE_VERSION}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let result = tokio::time::timeout(INSTALL_TIMEOUT, npm.output()).await;
    let output = match result {
        Err(_) => {
            let _ = tokio::fs::remove_dir_all(&staging).await;
            return Err(DemoError::local(
                step,
                format!(
                    "npm install azurite@{AZURITE_VERSION} took longer than {} s; check network \
                     access to the npm registry",
                    INSTALL_TIMEOUT.as_secs()
                ),
            ));
        }
        Ok(Err(e)) => {
            let _ = tokio::fs::remove_dir_all(&staging).await;
            return Err(DemoError::local(step, format!("cannot run npm: {e}")));
        }
        Ok(Ok(output)) => output,
    };
    if !output.status.success() || !is_installed(&staging) {
        let _ = tokio::fs::remove_dir_all(&staging).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(DemoError::local(
            step,
            format!(
                "npm install azurite@{AZURITE_VERSION} failed ({}):\n{}",
                output.status,
                tail.join("\n")
            ),
        ));
    }
    // Another process may have finished first; its copy is as good as ours.
    if tokio::fs::rename(&staging, install_dir).await.is_err() {
        let _ = tokio::fs::remove_dir_all(&staging).await;
        if !is_installed(install_dir) {
            return Err(DemoError::local(
                step,
                format!("cannot move the install into {}", install_dir.display()),
            ));
        }
    }
    Ok(blob_binary(install_dir))
}
