//! Shared helpers for the cross-crate tests in `tests/*.rs`: a bound for every wait, fake
//! developer tools on an injected `PATH`, loopback endpoints that refuse or never answer, a
//! local HTTPS token server signed by the test CA, and `tracing` capture.
//!
//! Nothing here touches a non-loopback address or the process environment.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    reason = "test helpers fail loudly on purpose: a broken fixture must stop the test"
)]

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use identity_chain::{
    DefaultAzureCredential, DefaultAzureCredentialBuilder, Env, ReqwestClient, Runtime,
};
use identity_core::http::HttpClient;
use identity_core::test_util::{RecordingSleeper, Reply, TestServer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub mod field;

/// How long any single test may take before it is declared hung.
pub const LIMIT: Duration = Duration::from_secs(30);

/// An expiry far in the future (2100-01-01T00:00:00Z), in Unix seconds, for fake tokens.
pub const FAR_EXPIRY: u64 = 4_102_444_800;

/// The scope most tests ask for, and the resource managed identity and `az` turn it into.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";
/// The resource for [`ARM_SCOPE`].
pub const ARM_RESOURCE: &str = "https://management.azure.com";
/// A second scope, so the token cache cannot answer a second call.
pub const VAULT_SCOPE: &str = "https://vault.azure.net/.default";

/// The test CA, server certificate and key checked in with identity-entra.
pub const TLS_DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../crates/identity-entra/tests/data"
);

/// Runs `fut` with a bound of [`LIMIT`], so no test can hang.
pub async fn bounded<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, fut)
        .await
        .expect("the test finished within its time bound")
}

/// A temporary directory holding fake `az`, `pwsh` and `azd` scripts; it is the only entry of
/// the `PATH` in [`FakeTools::env`]. Scripts may only use shell built-ins and absolute paths,
/// since nothing else is on that `PATH`.
pub struct FakeTools {
    dir: tempfile::TempDir,
}

impl fmt::Debug for FakeTools {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeTools")
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl Default for FakeTools {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeTools {
    /// An empty directory.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The directory as text, for use inside scripts.
    pub fn dir(&self) -> String {
        self.dir.path().to_str().unwrap().to_owned()
    }

    /// A file in the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// An environment whose `PATH` is this directory alone.
    pub fn env(&self) -> Env {
        Env::from_pairs([("PATH", self.dir())])
    }

    /// Writes (or rewrites) an executable `#!/bin/sh` script named `name`. Every script first
    /// records its argv in `<name>.argv` (one element per line) and appends a line to
    /// `<name>.ran`; `$D` in `body` is replaced by the directory.
    pub fn script(&self, name: &str, body: &str) {
        let dir = self.dir();
        let text = format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > '{dir}/{name}.argv'\n\
             echo ran >> '{dir}/{name}.ran'\n{}\n",
            body.replace("$D", &dir)
        );
        // The file is written by a child process and then renamed over the old one. Written
        // from this process, its write descriptor could be inherited by a child that another
        // test thread is forking at that moment, and executing the script would then fail with
        // "Text file busy" (ETXTBSY) until that child execs. `pwsh` runs through `/bin/sh -c`,
        // where no retry can hide that.
        let tmp = self.file(&format!(".{name}.tmp"));
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "/bin/cat > \"$1\" && /bin/chmod 755 \"$1\"", "sh"])
            .arg(&tmp)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(text.as_bytes()).unwrap();
        }
        assert!(child.wait().unwrap().success(), "writing the fake {name}");
        std::fs::rename(&tmp, self.file(name)).unwrap();
    }

    /// A fake `az` printing `token` as `az account get-access-token --output json` does.
    pub fn az_ok(&self, token: &str) {
        self.script(
            "az",
            &format!(
                "printf '%s' '{{\"accessToken\":\"{token}\",\"expires_on\":{FAR_EXPIRY},\"tokenType\":\"Bearer\"}}'"
            ),
        );
    }

    /// A fake `pwsh` printing `token` in the `azsdk%<token>%<expiry>` form the credential's
    /// script prints.
    pub fn pwsh_ok(&self, token: &str) {
        self.script(
            "pwsh",
            &format!("printf '\\nazsdk%%%s%%%s\\n\\n' '{token}' '{FAR_EXPIRY}'"),
        );
    }

    /// A fake `azd` printing `token` as `azd auth token --output json` does.
    pub fn azd_ok(&self, token: &str) {
        self.script(
            "azd",
            &format!(
                "printf '%s' '{{\"token\":\"{token}\",\"expiresOn\":\"2100-01-01T00:00:00Z\"}}'"
            ),
        );
    }

    /// How many times the script `name` ran.
    pub fn runs(&self, name: &str) -> usize {
        self.read(&format!("{name}.ran"))
            .map_or(0, |text| text.lines().count())
    }

    /// The argv of the last run of `name`.
    pub fn argv(&self, name: &str) -> Vec<String> {
        self.read(&format!("{name}.argv"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// A file's content, if it exists.
    pub fn read(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.file(name)).ok()
    }
}

/// A loopback IMDS token URL on which nothing listens: connecting is refused at once. (The
/// port was free a moment ago; nothing in these tests binds ports by number.)
pub fn refused_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/metadata/identity/oauth2/token")
}

/// A runtime over `env` whose retries never wait (a recording sleeper instead of the timer):
/// what these tests give a chain or a credential with `.runtime(...)`.
pub fn no_wait_runtime(env: Env) -> Runtime {
    Runtime::with_env(env).sleeper(Arc::new(RecordingSleeper::new()))
}

/// `DefaultAzureCredential`'s builder over `runtime`, with IMDS (asked only when no other
/// managed-identity source is configured) on a refused loopback port.
pub fn chain_over(runtime: Runtime) -> DefaultAzureCredentialBuilder {
    DefaultAzureCredential::builder()
        .runtime(runtime)
        .imds_endpoint(refused_endpoint())
}

/// A loopback listener that accepts connections and never answers, as a blackholed IMDS
/// address looks to a client with a timeout. The listener lives as long as the runtime.
#[derive(Clone, Debug)]
pub struct Blackhole {
    /// The token URL on the listener.
    pub url: String,
    server: TestServer,
}

impl Blackhole {
    /// Starts the listener.
    pub async fn start() -> Self {
        let server = TestServer::always(Reply::silence()).await;
        Self {
            url: server.url("/metadata/identity/oauth2/token"),
            server,
        }
    }

    /// How many connections it has accepted.
    pub fn accepted(&self) -> usize {
        self.server.connections()
    }
}

/// Decodes an `application/x-www-form-urlencoded` body into its pairs.
pub fn form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// The value of `name` in a form body.
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    form(body)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// One request the TLS token server received.
pub use identity_core::test_util::SeenRequest;

/// An HTTPS token server on 127.0.0.1 with the identity-entra test certificate (valid for
/// `localhost` and `127.0.0.1`), answering every request with `token`.
#[derive(Clone, Debug)]
pub struct TlsTokenServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    server: TestServer,
}

impl TlsTokenServer {
    /// Starts a server answering 200 with `token`; it runs until the runtime stops.
    pub async fn start(token: &str) -> Self {
        let body = format!(
            r#"{{"token_type":"Bearer","access_token":"{token}","expires_in":3600,"ext_expires_in":3600}}"#
        );
        Self::start_with(200, body).await
    }

    /// Starts a server answering every request with `status` and the JSON `body`.
    pub async fn start_with(status: u16, body: String) -> Self {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(format!("{TLS_DATA}/server.pem"))
                .unwrap()
                .map(Result::unwrap)
                .collect();
        let key = PrivateKeyDer::from_pem_file(format!("{TLS_DATA}/server.key")).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let reply = Reply::status(status)
            .header("content-type", "application/json")
            .body(body);
        let server = TestServer::wrapped(
            move |_| reply.clone(),
            move |tcp| acceptor.clone().accept(tcp),
        )
        .await;
        Self {
            addr: server.addr(),
            server,
        }
    }

    /// The authority host to put in `AZURE_AUTHORITY_HOST`.
    pub fn authority(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.server.requests()
    }
}

/// An HTTPS client that trusts only the test CA (through an injected `SSL_CERT_FILE`).
pub fn test_ca_client() -> Arc<dyn HttpClient> {
    Arc::new(
        ReqwestClient::builder()
            .env(Env::from_pairs([(
                "SSL_CERT_FILE",
                format!("{TLS_DATA}/ca.pem"),
            )]))
            .native_roots(false)
            .build()
            .unwrap(),
    )
}

/// Everything `tracing` wrote while a [`capture_logs`] guard was alive.
#[derive(Clone, Debug, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// The captured text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl io::Write for LogBuffer {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Captures every `tracing` event at TRACE level on this thread (a current-thread tokio
/// runtime runs spawned tasks here too) until the guard is dropped. Scoped, not global, so
/// tests keep running in parallel.
pub fn capture_logs() -> (tracing::subscriber::DefaultGuard, LogBuffer) {
    let buffer = LogBuffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    (tracing::subscriber::set_default(subscriber), buffer)
}

/// Panics if any of `secrets` occurs in `text`, naming where (`what`).
pub fn assert_no_secret(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{what} reveals the planted secret {secret:?}:\n{text}"
        );
    }
}
