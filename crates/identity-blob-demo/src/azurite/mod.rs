//! Azurite (the Azure Storage emulator) for the local demo and the end-to-end tests:
//! installing it with npm into a project-local folder, a throwaway TLS certificate, and a
//! running `azurite-blob` process that is always killed with its process group.
//!
//! Decisions:
//! * Azurite is pinned to [`AZURITE_VERSION`] and installed with
//!   `npm install --prefix <repo>/.tools/azurite --no-audit --no-fund azurite@3.37.0`.
//!   The install goes into a sibling temporary folder first and is renamed into place, so an
//!   interrupted install never looks complete; it is skipped when the pinned version is
//!   already there.
//! * The certificate is a self-signed **end-entity** certificate (`CA:FALSE`, serverAuth,
//!   SAN `IP:127.0.0.1` and `DNS:localhost`) made with rcgen on ring: rustls refuses a
//!   `CA:TRUE` certificate used as a server certificate (`CaUsedAsEndEntity`).
//! * Azurite runs in its own process group; [`Azurite`]'s `Drop` sends SIGTERM to the group,
//!   waits up to [`STOP_GRACE`], then SIGKILLs the group and reaps the child, so no `node`
//!   process outlives a test, a failure or Ctrl-C.
//!
//! `install.rs` installs the pinned version; `cert.rs` makes the certificate.

mod cert;
mod install;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::explain::DemoError;

pub use cert::{DevCertificate, free_port, generate_certificate};
pub use install::{ensure_installed, is_installed};

/// The Azurite version the demo installs and tests against.
pub const AZURITE_VERSION: &str = "3.37.0";
/// Azurite's well-known development account.
pub const ACCOUNT: &str = "devstoreaccount1";
/// How long Azurite may take to accept connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `npm install` may take.
pub const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
/// How long Azurite gets to exit after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// The workspace root (two levels above this crate), where `.tools/` lives.
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The default install folder: `<repo>/.tools/azurite`.
pub fn default_install_dir() -> PathBuf {
    project_root().join(".tools").join("azurite")
}

/// The `azurite-blob` launcher inside an install folder.
pub fn blob_binary(install_dir: &Path) -> PathBuf {
    install_dir
        .join("node_modules")
        .join(".bin")
        .join("azurite-blob")
}

/// A running `azurite-blob` with OAuth on, over HTTPS, with its own data folder. Dropping it
/// kills the process group and waits for it.
pub struct Azurite {
    child: Option<Child>,
    pgid: Option<i32>,
    port: u16,
    cert: DevCertificate,
    dir: tempfile::TempDir,
}

impl fmt::Debug for Azurite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Azurite")
            .field("pid", &self.pgid)
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl Azurite {
    /// Starts `azurite-blob` (from `launcher`) on a free port with a fresh certificate and
    /// data folder, and waits until it accepts connections.
    ///
    /// # Errors
    /// When it cannot be spawned, exits early, or does not listen within [`START_TIMEOUT`]
    /// (the error includes the end of its log).
    pub async fn start(launcher: &Path) -> Result<Self, DemoError> {
        let step = "start Azurite";
        let dir = tempfile::Builder::new()
            .prefix("identity-demo-azurite-")
            .tempdir()
            .map_err(|e| DemoError::local(step, format!("cannot create a temp folder: {e}")))?;
        let cert = generate_certificate()?;
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        let data = dir.path().join("data");
        let log_path = dir.path().join("azurite.log");
        let write = |p: &Path, s: &str| {
            std::fs::write(p, s)
                .map_err(|e| DemoError::local(step, format!("cannot write {}: {e}", p.display())))
        };
        write(&cert_path, &cert.cert_pem)?;
        write(&key_path, &cert.key_pem)?;
        std::fs::create_dir_all(&data).map_err(|e| {
            DemoError::local(step, format!("cannot create {}: {e}", data.display()))
        })?;
        let log = std::fs::File::create(&log_path)
            .map_err(|e| DemoError::local(step, format!("cannot create the log: {e}")))?;
        let log_err = log
            .try_clone()
            .map_err(|e| DemoError::local(step, format!("cannot open the log: {e}")))?;
        let port = free_port()
            .map_err(|e| DemoError::local(step, format!("no free port on 127.0.0.1: {e}")))?;
        let mut command = Command::new(launcher);
        command
            .args(["--blobHost", "127.0.0.1", "--blobPort"])
            .arg(port.to_string())
            .args(["--oauth", "basic", "--cert"])
            .arg(&cert_path)
            .arg("--key")
            .arg(&key_path)
            .arg("--location")
            .arg(&data)
            .arg("--silent")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true);
        // Its own process group, so that stopping it reaches any child node spawns.
        #[cfg(unix)]
        command.process_group(0);
        let child = command.spawn().map_err(|e| {
            DemoError::local(step, format!("cannot run {}: {e}", launcher.display()))
        })?;
        let pgid = child.id().and_then(|id| i32::try_from(id).ok());
        let mut azurite = Self {
            child: Some(child),
            pgid,
            port,
            cert,
            dir,
        };
        azurite.wait_until_listening().await?;
        Ok(azurite)
    }

    async fn wait_until_listening(&mut self) -> Result<(), DemoError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(DemoError::local(
                        "start Azurite",
                        format!("azurite-blob exited early ({status}):\n{}", self.log_tail()),
                    ));
                }
            }
            let attempt =
                tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
                    .await;
            if matches!(attempt, Ok(Ok(_))) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(DemoError::local(
                    "start Azurite",
                    format!(
                        "azurite-blob did not listen on {addr} within {} s:\n{}",
                        START_TIMEOUT.as_secs(),
                        self.log_tail()
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines of Azurite's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("azurite.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The blob endpoint's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The account URL: `https://127.0.0.1:<port>/devstoreaccount1` (path style, no
    /// trailing slash).
    pub fn account_url(&self) -> String {
        format!("https://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// The certificate Azurite serves, to trust as the CA.
    pub fn ca_pem(&self) -> &str {
        &self.cert.cert_pem
    }

    /// The process id (also the process-group id).
    pub fn pid(&self) -> Option<i32> {
        self.pgid
    }

    /// Stops Azurite off the async runtime's worker threads (the wait is blocking).
    pub async fn shutdown(self) {
        let _ = tokio::task::spawn_blocking(move || drop(self)).await;
    }

    /// Stops Azurite: SIGTERM to the group, up to [`STOP_GRACE`] to exit, then SIGKILL, and
    /// reaps the child. Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal_group(self.pgid, false);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The group may hold other processes even after the leader exited.
        signal_group(self.pgid, true);
        let _ = child.start_kill();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Sends SIGTERM (or SIGKILL) to the process group `pgid`.
#[cfg(unix)]
fn signal_group(pgid: Option<i32>, kill: bool) {
    use rustix::process::{Pid, Signal, kill_process_group};
    if let Some(group) = pgid.and_then(Pid::from_raw) {
        let signal = if kill { Signal::KILL } else { Signal::TERM };
        let _ = kill_process_group(group, signal);
    }
}

/// Elsewhere only the child itself is killed (`start_kill`).
#[cfg(not(unix))]
fn signal_group(_pgid: Option<i32>, _kill: bool) {}

impl Drop for Azurite {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_is_a_non_ca_server_certificate_for_loopback() {
        let cert = generate_certificate().unwrap();
        assert!(cert.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(cert.key_pem.contains("PRIVATE KEY"));
        assert!(!format!("{cert:?}").contains("PRIVATE"));
        // rustls (the client side) must accept it as a trust anchor.
        reqwest::Certificate::from_pem(cert.cert_pem.as_bytes()).unwrap();
    }

    #[test]
    fn the_install_folder_is_under_the_workspace() {
        let dir = default_install_dir();
        assert!(dir.ends_with(".tools/azurite"), "{}", dir.display());
        assert!(project_root().join("Cargo.toml").exists());
        assert!(!is_installed(Path::new("/nonexistent")));
    }

    #[test]
    fn free_ports_are_nonzero() {
        assert_ne!(free_port().unwrap(), 0);
    }
}
