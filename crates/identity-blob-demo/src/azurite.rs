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

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::explain::DemoError;

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

/// A throwaway TLS certificate and key (PEM) for 127.0.0.1 and localhost.
#[derive(Clone)]
pub struct DevCertificate {
    /// The certificate; clients trust it directly.
    pub cert_pem: String,
    /// The private key.
    pub key_pem: String,
}

impl fmt::Debug for DevCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevCertificate").finish_non_exhaustive()
    }
}

/// Generates a self-signed end-entity certificate: `CA:FALSE`, key usage digitalSignature +
/// keyEncipherment, extended key usage serverAuth, SAN `IP:127.0.0.1` and `DNS:localhost`.
///
/// # Errors
/// When key generation or signing fails.
pub fn generate_certificate() -> Result<DevCertificate, DemoError> {
    use rcgen::{
        CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose, SanType,
    };
    let fail = |e: rcgen::Error| DemoError::local("generate a TLS certificate", e.to_string());
    let key = KeyPair::generate().map_err(fail)?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).map_err(fail)?;
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "identity-blob-demo local Azurite");
    params.distinguished_name = name;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.self_signed(&key).map_err(fail)?;
    Ok(DevCertificate {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A free TCP port on 127.0.0.1 (bound, then released).
///
/// # Errors
/// When no port can be bound.
pub fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
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
