//! Optional persistence of a credential's cached tokens, so that a short-lived process does
//! not ask the endpoint for a new token on every start.
//!
//! **Tokens on disk are secrets.** [`FileCachePersistence`] writes the file with owner-only
//! permissions (0o600 on Unix) and replaces it atomically (a temporary file in the same
//! directory, then a rename). Never share the file between machines or users, and never
//! put it on a shared volume: whoever can read it can act as the managed identity until the
//! tokens expire.
//!
//! **The file is not trusted.** Anyone who can plant a file at the cache path could otherwise
//! hand the credential a token of their choosing, or stall it. So the file is loaded only if
//! it passes identity-core's checked read (`identity_core::fs`, strict and private): opened
//! without following a final symlink and without blocking (a FIFO or device is refused, never
//! waited on), then, on the opened descriptor, a regular file with a single hard link, owned
//! by the current user, not writable by its group or others, and at most
//! [`MAX_CACHE_FILE_BYTES`] bytes. Any other file is refused with an error naming the failed
//! check. Of the entries read, [`ManagedIdentityCredential::load_cache`] takes only those of
//! the same source and identity that are unexpired and expire at most
//! [`MAX_TOKEN_LIFETIME`] from now: no managed-identity token lives longer, so a later expiry
//! means a forged or corrupted entry, which is skipped (and the token fetched anew).
//!
//! **Several writers.** Processes sharing a cache file each save their own entries; a save
//! takes an advisory exclusive lock (`flock`) on a sibling lock file `<file>.lock`, reads the
//! current file, keeps every unexpired entry it does not replace, and writes the merge, so a
//! concurrent save never drops another process's entries. The lock is waited for at most
//! [`LOCK_WAIT`]. Without `flock` (outside Unix) saves are not locked.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use identity_core::cache::CacheKey;
use identity_core::fs::{FileError, ReadOptions};
use identity_core::{AccessToken, Clock, Error, from_unix_seconds, system_clock};
use serde_json::{Value, json};

use crate::{ManagedIdentityCredential, NAME};

/// The largest cache file loaded, in bytes (1 MiB: some hundred tokens).
pub const MAX_CACHE_FILE_BYTES: u64 = 1024 * 1024;

/// The longest a managed-identity token lives (24 hours); a stored entry expiring later than
/// this from now is not loaded.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The longest a save waits for another process's lock on the cache file.
pub const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Stores and loads cache entries.
pub trait CachePersistence: Send + Sync + fmt::Debug {
    /// The stored entries (an absent store is empty, not an error).
    ///
    /// # Errors
    /// The store exists but cannot be read, parsed or trusted.
    fn load(&self) -> Result<Vec<(CacheKey, AccessToken)>, Error>;

    /// Stores `entries`, replacing stored entries with the same keys.
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
    /// cache, returning how many were loaded. Expired entries, and entries expiring more than
    /// [`MAX_TOKEN_LIFETIME`] from now, are skipped.
    ///
    /// # Errors
    /// The store's error.
    pub fn load_cache(&self, store: &dyn CachePersistence) -> Result<usize, Error> {
        let now = self.cache().clock().now();
        let latest = now.checked_add(MAX_TOKEN_LIFETIME);
        let mut loaded = 0;
        for (key, mut token) in store.load()? {
            if key.identity() != self.cache_identity() || token.expires_on <= now {
                continue;
            }
            if latest.is_none_or(|latest| token.expires_on > latest) {
                tracing::debug!(
                    target: "identity_msi",
                    "skipped a stored token that expires further ahead than any token lives"
                );
                continue;
            }
            if token.refresh_on.is_some_and(|r| r > token.expires_on) {
                token.refresh_on = None;
            }
            self.cache().insert(key, token);
            loaded += 1;
        }
        Ok(loaded)
    }
}

/// A JSON file holding cached tokens, written atomically with owner-only permissions,
/// checked before it is loaded, and merged under a lock when saved (see the
/// [module docs](self)).
#[derive(Clone)]
pub struct FileCachePersistence {
    path: PathBuf,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for FileCachePersistence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The path only; never the contents.
        f.debug_struct("FileCachePersistence")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FileCachePersistence {
    /// A store at `path` (created on the first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            clock: system_clock(),
        }
    }

    /// The clock deciding which stored entries have expired when a save merges (default:
    /// the system clock).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
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

    fn refused(&self, why: &FileError) -> Error {
        Error::invalid_configuration(
            NAME,
            format!(
                "the token cache file {} was refused: {why}; it must be a regular file of at most \
                 {MAX_CACHE_FILE_BYTES} bytes, owned by the current user and writable by nobody else",
                self.path.display()
            ),
        )
    }

    /// The file's bytes after every check, or `None` when it does not exist.
    fn read_checked(&self) -> Result<Option<Vec<u8>>, Error> {
        let options = ReadOptions::strict(MAX_CACHE_FILE_BYTES).private();
        match identity_core::fs::read(&self.path, &options) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(self.refused(&e)),
        }
    }

    fn write(&self, entries: &[(CacheKey, AccessToken)]) -> Result<(), Error> {
        let items: Vec<Value> = entries.iter().map(|(k, t)| entry_to_json(k, t)).collect();
        let bytes =
            serde_json::to_vec(&Value::Array(items)).map_err(|_| self.io_error("serialised"))?;
        if bytes.len() as u64 > MAX_CACHE_FILE_BYTES {
            return Err(self.io_error(&format!(
                "written (it would exceed {MAX_CACHE_FILE_BYTES} bytes)"
            )));
        }
        let dir = self.directory();
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

    fn directory(&self) -> &Path {
        self.path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    }
}

impl CachePersistence for FileCachePersistence {
    fn load(&self) -> Result<Vec<(CacheKey, AccessToken)>, Error> {
        let Some(bytes) = self.read_checked()? else {
            return Ok(Vec::new());
        };
        parse_entries(&bytes)
            .ok_or_else(|| self.io_error("parsed (it is not a token cache written by this crate)"))
    }

    /// Under the lock: the stored entries that `entries` does not replace and that have not
    /// expired are kept, then the file is replaced atomically. A stored file that cannot be
    /// parsed is replaced; one refused by the checks is an error (nothing is written).
    fn save(&self, entries: &[(CacheKey, AccessToken)]) -> Result<(), Error> {
        let _lock = lock::acquire(&self.path.with_extension(lock_extension(&self.path)))
            .map_err(|why| self.io_error(&format!("locked ({why})")))?;
        let stored = self
            .read_checked()?
            .and_then(|bytes| parse_entries(&bytes))
            .unwrap_or_default();
        let now = self.clock.now();
        let mut merged: Vec<(CacheKey, AccessToken)> = stored
            .into_iter()
            .filter(|(key, token)| token.expires_on > now && !entries.iter().any(|(k, _)| k == key))
            .collect();
        merged.extend(entries.iter().cloned());
        self.write(&merged)
    }
}

/// `tokens.json` → `json.lock`, so the lock file is `tokens.json.lock`.
fn lock_extension(path: &Path) -> String {
    match path.extension() {
        Some(ext) => format!("{}.lock", ext.to_string_lossy()),
        None => "lock".to_owned(),
    }
}

#[cfg(unix)]
mod lock {
    //! The advisory lock: `flock(LOCK_EX | LOCK_NB)` on a lock file that is opened without
    //! following a symlink and without blocking, and must be a regular file owned by the
    //! current user; retried every 10 ms for at most [`super::LOCK_WAIT`].

    use std::fs::{File, OpenOptions};
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    use std::path::Path;
    use std::time::Instant;

    use rustix::fs::{FlockOperation, OFlags, flock};

    /// Held while alive; the lock is released when the file is closed.
    #[derive(Debug)]
    pub(super) struct Guard(#[allow(dead_code, reason = "held for its Drop")] File);

    pub(super) fn acquire(path: &Path) -> Result<Guard, &'static str> {
        let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(i32::try_from(flags.bits()).unwrap_or_default())
            .open(path)
            .map_err(|_| "the lock file cannot be opened or is a symbolic link")?;
        let meta = file
            .metadata()
            .map_err(|_| "the lock file cannot be inspected")?;
        if !meta.file_type().is_file() || meta.uid() != rustix::process::geteuid().as_raw() {
            return Err("the lock file is not a regular file owned by the current user");
        }
        let started = Instant::now();
        loop {
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(Guard(file)),
                Err(e) if e == rustix::io::Errno::WOULDBLOCK || e == rustix::io::Errno::INTR => {
                    if started.elapsed() >= super::LOCK_WAIT {
                        return Err("another process holds the lock");
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(_) => return Err("the lock cannot be taken"),
            }
        }
    }
}

#[cfg(not(unix))]
mod lock {
    //! No advisory lock outside Unix.

    use std::path::Path;

    #[derive(Debug)]
    pub(super) struct Guard;

    pub(super) fn acquire(_path: &Path) -> Result<Guard, &'static str> {
        Ok(Guard)
    }
}

/// The entries of a cache file, `None` when it is not one.
fn parse_entries(bytes: &[u8]) -> Option<Vec<(CacheKey, AccessToken)>> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Array(items)) => Some(items.iter().filter_map(entry_from_json).collect()),
        _ => None,
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

    /// The cache of a system-assigned IMDS credential after one call answered by `server`,
    /// saved to a file in a temporary directory (returned, so that it lives as long as needed).
    async fn saved_after_one_call(
        server: &wiremock::MockServer,
    ) -> (tempfile::TempDir, FileCachePersistence) {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCachePersistence::new(dir.path().join("tokens.json"));
        let first =
            harness(imds_env(), crate::ManagedIdentityId::SystemAssigned).with_endpoint(server);
        first.get().await.unwrap();
        first.credential.save_cache(&store).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn a_saved_cache_serves_a_new_credential_without_a_request() {
        let server = answering("GET", token_on(CLOCK_NOW + 86_400), 1).await;
        let (_dir, store) = saved_after_one_call(&server).await;

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

    #[tokio::test]
    async fn a_planted_31_year_token_is_ignored_and_a_request_is_made() {
        let server = answering("GET", token_on(CLOCK_NOW + 3600), 2).await;
        let (_dir, store) = saved_after_one_call(&server).await;
        // Rewrite the entry in place (the file stays private): a token for 31 years.
        let mut items: Value =
            serde_json::from_slice(&std::fs::read(store.path()).unwrap()).unwrap();
        for item in items.as_array_mut().unwrap() {
            item["token"] = json!("planted-31-year-token");
            item["expires_on"] = json!(CLOCK_NOW + 31 * 365 * 86_400);
            item["refresh_on"] = Value::Null;
        }
        std::fs::write(store.path(), items.to_string()).unwrap();

        let second =
            harness(imds_env(), crate::ManagedIdentityId::SystemAssigned).with_endpoint(&server);
        assert_eq!(second.credential.load_cache(&store).unwrap(), 0);
        assert_eq!(second.get().await.unwrap().token.secret(), "AT");
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
    }

    /// Runs `f` on a thread and fails if it has not returned within 10 s (a FIFO must never
    /// block a load).
    #[cfg(unix)]
    fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("returned without blocking")
    }

    #[cfg(unix)]
    #[test]
    fn untrusted_files_are_refused_without_blocking() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.json");
        std::fs::write(&good, "[]").unwrap();
        std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(FileCachePersistence::new(&good).load().unwrap().is_empty());

        let symlink = dir.path().join("symlink.json");
        std::os::unix::fs::symlink(&good, &symlink).unwrap();
        let fifo = dir.path().join("fifo.json");
        identity_core::test_util::make_fifo(&fifo);
        let zero = dir.path().join("zero.json");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let shared = dir.path().join("shared.json");
        std::fs::write(&shared, "[]").unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o666)).unwrap();
        let big = dir.path().join("big.json");
        let file = std::fs::File::create(&big).unwrap();
        file.set_len(MAX_CACHE_FILE_BYTES + 1).unwrap();
        std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o600)).unwrap();
        let linked = dir.path().join("linked.json");
        std::fs::hard_link(&good, &linked).unwrap();

        for (path, why) in [
            (symlink, "symbolic link"),
            (fifo, "not a regular file"),
            (zero, "symbolic link"),
            (shared, "others may write"),
            (big, "larger than"),
            (linked, "more than one hard link"),
        ] {
            let store = FileCachePersistence::new(&path);
            let loaded = bounded({
                let store = store.clone();
                move || store.load()
            });
            let e = loaded.unwrap_err();
            assert!(e.to_string().contains(why), "{path:?}: {e}");
            // A save does not replace (or block on) a file it would refuse to load.
            let saved = bounded(move || store.save(&[]));
            assert!(saved.is_err(), "{path:?}");
        }
    }

    #[test]
    fn two_writers_keep_each_others_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let clock = identity_core::test_util::FakeClock::new(at(CLOCK_NOW));
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let store = FileCachePersistence::new(&path).with_clock(clock.shared());
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let key = CacheKey::new(&format!("msi/imds/w{w}-{i}"), &["r"], None, false);
                        let token = AccessToken::new("T", at(CLOCK_NOW + 3600));
                        store.save(&[(key, token)]).unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        let stored = FileCachePersistence::new(&path).load().unwrap();
        assert_eq!(stored.len(), 50);
        // Expired entries are dropped by the next save.
        clock.advance(Duration::from_secs(7200));
        let store = FileCachePersistence::new(&path).with_clock(clock.shared());
        store.save(&[]).unwrap();
        assert!(store.load().unwrap().is_empty());
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
