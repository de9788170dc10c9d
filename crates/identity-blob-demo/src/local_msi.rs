//! A local managed-identity endpoint speaking the App Service protocol (API 2019-08-01):
//! the `identity-sidecar` server in its development-token mode (`identity-sidecar
//! --dev-tokens`), started in-process on 127.0.0.1. One server to learn: the protocol, the
//! error shapes and the bounds are the sidecar's (see its crate docs).
//!
//! **It issues unsigned development tokens.** Only emulators that skip signature checks,
//! such as Azurite with `--oauth basic`, accept them; Azure never does. It exists so the
//! blob demo can run the real credential code path (`IDENTITY_ENDPOINT` and
//! `IDENTITY_HEADER`, exactly as App Service sets them) on a laptop or in CI.
//!
//! Token claims: `aud` = the requested resource (or the configured override, for negative
//! tests), `iss` = `https://sts.windows.net/<tenant>/`, `nbf`/`iat` = now, `exp` = now +
//! lifetime, `oid`/`sub` = a GUID fixed for the system-assigned identity and derived from the
//! selector for user-assigned ones, `tid`, `appid`/`azp` = the identity's client id,
//! `idtyp` = `app`.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use identity_core::{Clock, Env, Secret};
use identity_sidecar::{Backend, Bind, DevTokens, ServerConfig, Sidecar};

pub use identity_sidecar::dev::{
    DEFAULT_TENANT, SYSTEM_ASSIGNED_CLIENT_ID, SYSTEM_ASSIGNED_OBJECT_ID,
};
pub use identity_sidecar::protocol::{API_VERSION, DEFAULT_PATH, SECRET_HEADER};

/// How the local endpoint behaves.
#[derive(Clone)]
pub struct LocalMsiConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// The value clients must send in `X-IDENTITY-HEADER`.
    pub secret: Secret,
    /// The tenant named in `iss` and `tid`.
    pub tenant: String,
    /// Issue tokens for this audience instead of the requested resource (negative tests).
    pub audience_override: Option<String>,
    /// Token lifetime.
    pub lifetime: Duration,
    /// Path of the token endpoint.
    pub path: String,
    /// Source of "now" for `iat`, `nbf`, `exp`.
    pub clock: Arc<dyn Clock>,
}

impl LocalMsiConfig {
    /// Defaults: a free port, the given secret, [`DEFAULT_TENANT`], one-hour tokens,
    /// [`DEFAULT_PATH`] and the system clock.
    pub fn new(secret: impl Into<Secret>) -> Self {
        Self {
            port: 0,
            secret: secret.into(),
            tenant: DEFAULT_TENANT.to_owned(),
            audience_override: None,
            lifetime: Duration::from_secs(3600),
            path: DEFAULT_PATH.to_owned(),
            clock: identity_core::system_clock(),
        }
    }
}

impl fmt::Debug for LocalMsiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalMsiConfig")
            .field("port", &self.port)
            .field("secret", &self.secret)
            .field("tenant", &self.tenant)
            .field("audience_override", &self.audience_override)
            .field("lifetime", &self.lifetime)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A running local endpoint. Dropping it stops the server.
#[derive(Debug)]
pub struct LocalMsi {
    sidecar: Sidecar,
    dev: Arc<DevTokens>,
}

impl LocalMsi {
    /// Binds 127.0.0.1 and starts serving in background tasks.
    ///
    /// # Errors
    /// When the port cannot be bound.
    pub async fn start(config: LocalMsiConfig) -> std::io::Result<Self> {
        let mut dev = DevTokens::new(config.clock.clone());
        dev.tenant = config.tenant;
        dev.audience_override = config.audience_override;
        dev.lifetime = config.lifetime;
        let dev = Arc::new(dev);
        let mut server = ServerConfig::new(config.secret);
        server.bind = Bind::Tcp(SocketAddr::from(([127, 0, 0, 1], config.port)));
        server.path = config.path;
        let sidecar = Sidecar::start(
            server,
            Backend::DevTokens(dev.clone()),
            Vec::new(),
            Arc::default(),
        )
        .await?;
        Ok(Self { sidecar, dev })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.sidecar
            .addr()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The value for `IDENTITY_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        self.sidecar.endpoint()
    }

    /// The value for `IDENTITY_HEADER`. A secret: do not log it.
    pub fn identity_header(&self) -> &Secret {
        self.sidecar.identity_header()
    }

    /// An environment configured exactly as App Service configures a managed identity.
    pub fn app_service_env(&self) -> Env {
        self.sidecar.app_service_env()
    }

    /// How many requests were answered with a token.
    pub fn tokens_issued(&self) -> usize {
        self.dev.issued()
    }

    /// Stops the server, letting open requests finish.
    pub async fn shutdown(self) {
        self.sidecar.shutdown().await;
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve_until(self, shutdown: impl std::future::Future<Output = ()>) {
        shutdown.await;
        self.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    const PLANTED: &str = "planted-identity-header-secret";

    #[test]
    fn debug_never_shows_the_secret() {
        let c = LocalMsiConfig::new(PLANTED);
        assert!(!format!("{c:?}").contains(PLANTED));
    }

    #[tokio::test]
    async fn the_server_answers_over_real_http() {
        let server = LocalMsi::start(LocalMsiConfig::new(PLANTED)).await.unwrap();
        assert!(!format!("{server:?}").contains(PLANTED));
        let env = server.app_service_env();
        assert_eq!(env.get("IDENTITY_HEADER"), Some(PLANTED));
        let endpoint = env.get("IDENTITY_ENDPOINT").unwrap().to_owned();
        assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");

        let raw = |secret: &'static str| {
            let addr = server.addr();
            async move {
                let mut s = TcpStream::connect(addr).await.unwrap();
                let req = format!(
                    "GET /msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fstorage.azure.com HTTP/1.1\r\nhost: x\r\nX-IDENTITY-HEADER: {secret}\r\nconnection: close\r\n\r\n"
                );
                s.write_all(req.as_bytes()).await.unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).await.unwrap();
                out
            }
        };
        let ok = tokio::time::timeout(Duration::from_secs(10), raw(PLANTED))
            .await
            .unwrap();
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("\"token_type\":\"Bearer\""), "{ok}");
        let refused = tokio::time::timeout(Duration::from_secs(10), raw("nope"))
            .await
            .unwrap();
        assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
        assert_eq!(server.tokens_issued(), 1);
        tokio::time::timeout(Duration::from_secs(20), server.shutdown())
            .await
            .unwrap();
    }
}
