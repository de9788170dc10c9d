//! Optional persistence of a credential's cached tokens, so that a short-lived process does
//! not ask the endpoint for a new token on every start.
//!
//! **Tokens on disk are secrets.** [`FileCachePersistence`] writes the file with owner-only
//! permissions (0o600 on Unix) and replaces it atomically (a temporary file in the same
//! directory, then a rename). Never share the file between machines or users, and never
//! put it on a shared volume: whoever can read it can act as the managed identity until the
//! tokens expire. Only unexpired tokens are saved, and only entries that belong to the
//! credential (same source and identity) are loaded.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use identity_core::cache::CacheKey;
use identity_core::{AccessToken, Error, from_unix_seconds};
use serde_json::{Value, json};

use crate::{ManagedIdentityCredential, NAME};

/// Stores and loads cache entries.
pub trait CachePersistence: Send + Sync + fmt::Debug {
    /// The stored entries (an absent store is empty, not an error).
    ///
    /// # Errors
    /// The store exists but cannot be read or parsed.
    fn load(&self) -> Result<Vec<(CacheKey, AccessToken)>, Error>;

    /// Replaces the stored entries.
    ///
    /// # Errors
    /// The store cannot be written.
    fn save(&self, entries: &[(CacheKey, AccessToken)]) -> Result<(), Error>;
}

impl ManagedIdentityCredential {
    /// Saves this credential's unexpired tokens to `store`.
    ///
    /// # Errors
    /// The store's error.
    pub fn save_cache(&self, store: &dyn CachePersistence) -> Result<(), Error> {
        let entries: Vec<_> = self
            .cache()
            .export()
            .into_iter()
            .filter(|(k, _)| k.identity() == self.cache_identity())
            .collect();
        store.save(&entries)
    }

    /// Loads the tokens stored for this credential (same source and identity) into its
    /// cache, returning how many were loaded. Expired entries are skipped.
    ///
    /// # Errors
    /// The store's error.
    pub fn load_cache(&self, store: &dyn CachePersistence) -> Result<usize, Error> {
        let now = self.cache().clock().now();
        let mut loaded = 0;
        for (key, token) in store.load()? {
            if key.identity() == self.cache_identity() && now < token.expires_on {
                self.cache().insert(key, token);
                loaded += 1;
            }
        }
        Ok(loaded)
    }
}

/// A JSON file holding cached tokens, written atomically with owner-only permissions.
#[derive(Clone)]
pub struct FileCachePersistence {
    path: PathBuf,
}

impl fmt::Debug for FileCachePersistence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The path only; never the contents.
        f.debug_struct("FileCachePersistence")
            .field("path", &self.path)
            .finish()
    }
}

impl FileCachePersistence {
    /// A store at `path` (created on the first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_error(&self, what: &str) -> Error {
        Error::invalid_configuration(
            NAME,
            format!(
                "the token cache file {} could not be {what}; check its directory and permissions",
                self.path.display()
            ),
        )
    }
}

impl CachePersistence for FileCachePersistence {
    fn load(&self) -> Result<Vec<(CacheKey, AccessToken)>, Error> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(_) => return Err(self.io_error("read")),
        };
        let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(&bytes) else {
            return Err(self.io_error("parsed (it is not a token cache written by this crate)"));
        };
        Ok(items.iter().filter_map(entry_from_json).collect())
    }

    fn save(&self, entries: &[(CacheKey, AccessToken)]) -> Result<(), Error> {
        let items: Vec<Value> = entries.iter().map(|(k, t)| entry_to_json(k, t)).collect();
        let bytes =
            serde_json::to_vec(&Value::Array(items)).map_err(|_| self.io_error("serialised"))?;
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = self
            .path
            .file_name()
            .ok_or_else(|| self.io_error("named (the path has no file name)"))?;
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let tmp = dir.join(format!(
            ".{}.{}.{}.tmp",
            name.to_string_lossy(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let write = || -> std::io::Result<()> {
            let mut file = options.open(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|_| {
            let _ = std::fs::remove_file(&tmp);
            self.io_error("written")
        })
    }
}

fn entry_to_json(key: &CacheKey, token: &AccessToken) -> Value {
    let secs = |t: std::time::SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs()
    };
    json!({
        "identity": key.identity(),
        "scopes": key.scopes().collect::<Vec<_>>(),
        "tenant": key.tenant(),
        "cae": key.cae(),
        "token": token.token.secret(),
        "expires_on": secs(token.expires_on),
        "refresh_on": token.refresh_on.map(secs),
    })
}

fn entry_from_json(value: &Value) -> Option<(CacheKey, AccessToken)> {
    let identity = value.get("identity")?.as_str()?;
    let scopes: Vec<&str> = value
        .get("scopes")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let tenant = value.get("tenant").and_then(Value::as_str);
    let cae = value.get("cae").and_then(Value::as_bool).unwrap_or(false);
    let token = value.get("token")?.as_str()?;
    let expires_on = from_unix_seconds(i64::try_from(value.get("expires_on")?.as_u64()?).ok()?)?;
    let mut access = AccessToken::new(token, expires_on);
    access.refresh_on = value
        .get("refresh_on")
        .and_then(Value::as_u64)
        .and_then(|s| from_unix_seconds(i64::try_from(s).ok()?));
    Some((CacheKey::new(identity, &scopes, tenant, cae), access))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer};

    #[tokio::test]
    async fn a_saved_cache_serves_a_new_credential_without_a_request() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(token_on(CLOCK_NOW + 86_400))
            .expect(1)
            .mount(&server)
            .await;
        let dir = tempfile::tempdir().unwrap();
        let store = FileCachePersistence::new(dir.path().join("tokens.json"));
        let first =
            harness(imds_env(), crate::ManagedIdentityId::SystemAssigned).with_endpoint(&server);
        first.get().await.unwrap();
        first.credential.save_cache(&store).unwrap();

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!format!("{store:?}").contains("AT"));

        let second =
            harness(imds_env(), crate::ManagedIdentityId::SystemAssigned).with_endpoint(&server);
        assert_eq!(second.credential.load_cache(&store).unwrap(), 1);
        assert_eq!(second.get().await.unwrap().token.secret(), "AT");

        // Another identity does not pick up the entry.
        let other = harness(
            imds_env(),
            crate::ManagedIdentityId::ClientId("other".into()),
        )
        .with_endpoint(&server);
        assert_eq!(other.credential.load_cache(&store).unwrap(), 0);
    }

    #[test]
    fn a_missing_file_loads_as_empty_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCachePersistence::new(dir.path().join("none.json"));
        assert!(store.load().unwrap().is_empty());
        std::fs::write(store.path(), "planted-garbage").unwrap();
        let e = store.load().unwrap_err();
        assert!(!e.to_string().contains("planted"));
    }
}
