//! The opt-in persistent user-token cache: the refresh token of each signed-in account, in a
//! file only the current user can read.
//!
//! * Location: `<directory>/<name>.json`; the directory defaults to `$HOME/.IdentityService`
//!   (`%LOCALAPPDATA%\.IdentityService` on Windows), read from the injected environment.
//! * The directory is created with mode `0700` and the file written with mode `0600`, through
//!   a temporary file renamed over the old one, so a reader never sees half a file.
//! * The file is read with [`identity_core::fs::read`]: no symlink, one hard link, owned by the
//!   current user and not writable by others, at most 1 MiB.
//! * Encrypted by default: the content is sealed with a key kept in a keyring (see
//!   [`keyring`](super::keyring)): the platform's with the crate feature `keyring`, or one given
//!   through [`TokenCachePersistenceOptions::keyring`]. Without a keyring, or when the keyring
//!   fails, the cache is a plain file only when the caller said so with
//!   [`TokenCachePersistenceOptions::allow_unencrypted_storage`], as the other Azure SDKs
//!   require; otherwise building the credential (no keyring) or writing the cache (a failing
//!   keyring) is an error.
//! * Entries are keyed by authority, client id and home account id; the plain file holds JSON
//!   `{"version":1,"accounts":[{"authority":…,"clientId":…,"homeAccountId":…,"refreshToken":…}]}`
//!   and the encrypted one that JSON sealed (version 2). A plain file is still read when
//!   encryption is on, and replaced by a sealed one on the next write.
//! * A write that fails (an unwritable directory, a full disk, a failing keyring without
//!   plain files allowed) is not silent, since the caller asked for persistence: `authenticate`
//!   returns [`ErrorKind::InvalidConfiguration`](identity_core::ErrorKind::InvalidConfiguration)
//!   naming the file and the reason (never the content) after the sign-in itself worked (the
//!   credential keeps serving its tokens; another process will ask the user again). A
//!   `get_token` whose token came from a refresh or an automatic sign-in is not failed for it:
//!   the failure is logged at warn level, once per credential (docs/protocol.md §6.8).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use identity_core::fs::{ReadOptions, read};
use identity_core::{Env, Error, Secret};
use serde::{Deserialize, Serialize};

use super::AuthenticationRecord;
use super::keyring::{Key, Keyring, SEALED_VERSION, Sealed, default_keyring};
use super::private_file::write_private;

/// The largest cache file read, in bytes.
const MAX_FILE: u64 = 1 << 20;

/// How a user credential keeps its refresh token between processes.
///
/// ```
/// use identity_chain::TokenCachePersistenceOptions;
/// // Encrypted where a keyring is available (crate feature `keyring`), a private plain file
/// // otherwise.
/// let options = TokenCachePersistenceOptions::new()
///     .name("my-tool")
///     .allow_unencrypted_storage(true);
/// ```
#[derive(Clone, Default)]
pub struct TokenCachePersistenceOptions {
    name: Option<String>,
    directory: Option<PathBuf>,
    allow_unencrypted: bool,
    keyring: Option<Arc<dyn Keyring>>,
    /// False only in tests that must not reach the platform keyring.
    no_default_keyring: bool,
}

impl fmt::Debug for TokenCachePersistenceOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCachePersistenceOptions")
            .field("name", &self.name)
            .field("directory", &self.directory)
            .field("allow_unencrypted_storage", &self.allow_unencrypted)
            .field("keyring", &self.keyring)
            .finish()
    }
}

impl TokenCachePersistenceOptions {
    /// Default options: name `msal.cache`, the default directory, encrypted with the platform
    /// keyring when the crate feature `keyring` is on, unencrypted storage not allowed (so
    /// without that feature, building a credential with them fails until
    /// [`allow_unencrypted_storage`](Self::allow_unencrypted_storage) or
    /// [`keyring`](Self::keyring) is set).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The cache's name, which separates applications' caches (default `msal.cache`): letters,
    /// digits, `.`, `-` and `_` only.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The directory of the cache file (default `$HOME/.IdentityService`).
    #[must_use]
    pub fn directory(mut self, directory: impl Into<PathBuf>) -> Self {
        self.directory = Some(directory.into());
        self
    }

    /// Allows the refresh token to be written to a plain file readable by the current user
    /// only (default `false`): when no keyring is available (built without the `keyring`
    /// feature and none given), or when the keyring fails at run time.
    #[must_use]
    pub fn allow_unencrypted_storage(mut self, allow: bool) -> Self {
        self.allow_unencrypted = allow;
        self
    }

    /// The keyring that keeps the cache's encryption key (default: the platform keyring with
    /// the crate feature `keyring`, else none). See [`Keyring`].
    #[must_use]
    pub fn keyring(mut self, keyring: Arc<dyn Keyring>) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// These options without the platform keyring (tests that must not touch it).
    #[cfg(test)]
    #[must_use]
    pub(crate) fn without_platform_keyring(mut self) -> Self {
        self.no_default_keyring = true;
        self
    }

    /// Checks the options and names the file.
    pub(crate) fn open(&self, credential: &'static str, env: &Env) -> Result<Store, Error> {
        let keyring = match &self.keyring {
            Some(keyring) => Some(keyring.clone()),
            None if self.no_default_keyring => None,
            None => default_keyring(),
        };
        let keyring = match keyring.map(probe) {
            Some(Ok(keyring)) => Some(keyring),
            // Unusable: a plain file if allowed, else the build fails, as the reference's
            // persistence does when encryption is unavailable.
            Some(Err(e)) if self.allow_unencrypted => {
                tracing::warn!(credential, error = %e, "the keyring is not usable; the token cache will be a plain file, as allowed");
                None
            }
            Some(Err(e)) => {
                return Err(Error::invalid_configuration(
                    credential,
                    format!(
                        "the keyring for the token cache is not usable ({e}); fix it, give another with TokenCachePersistenceOptions::keyring, or set allow_unencrypted_storage(true) to keep the refresh token in a file only the current user can read"
                    ),
                ));
            }
            None => None,
        };
        if keyring.is_none() && !self.allow_unencrypted {
            return Err(Error::invalid_configuration(
                credential,
                "encrypted token storage needs a keyring: build with the `keyring` feature or give one with TokenCachePersistenceOptions::keyring; or set allow_unencrypted_storage(true) to keep the refresh token in a file only the current user can read",
            ));
        }
        let name = self.name.as_deref().unwrap_or("msal.cache");
        if name.is_empty()
            || name.len() > 100
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            || name.starts_with('.')
        {
            return Err(Error::invalid_configuration(
                credential,
                "the token cache name may hold only letters, digits, '.', '-' and '_', and may not start with '.'",
            ));
        }
        let directory = match &self.directory {
            Some(d) => d.clone(),
            None => {
                let home = if cfg!(windows) {
                    env.non_blank("LOCALAPPDATA")
                } else {
                    env.non_blank("HOME")
                };
                let Some(home) = home else {
                    return Err(Error::invalid_configuration(
                        credential,
                        "no home directory for the token cache (HOME is not set); set a directory",
                    ));
                };
                Path::new(home).join(".IdentityService")
            }
        };
        Ok(Store {
            path: directory.join(format!("{name}.json")),
            name: name.to_owned(),
            keyring,
            allow_unencrypted: self.allow_unencrypted,
            lock: Mutex::new(None),
        })
    }
}

/// `keyring` if a read of the cache's key entry works (an absent entry is fine).
fn probe(keyring: Arc<dyn Keyring>) -> Result<Arc<dyn Keyring>, std::io::Error> {
    keyring.get(super::keyring::KEYRING_SERVICE, "token-cache-key:probe")?;
    Ok(keyring)
}

/// An opened persistent cache.
pub(crate) struct Store {
    path: PathBuf,
    name: String,
    keyring: Option<Arc<dyn Keyring>>,
    allow_unencrypted: bool,
    /// Serializes reads and writes; holds the key once the keyring gave it.
    lock: Mutex<Option<Key>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("encrypted", &self.keyring.is_some())
            .finish()
    }
}

#[derive(Default, Serialize, Deserialize)]
struct File {
    version: u32,
    accounts: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    authority: String,
    client_id: String,
    home_account_id: String,
    refresh_token: String,
}

impl Entry {
    fn is_for(&self, record: &AuthenticationRecord) -> bool {
        self.authority == record.authority
            && self.client_id == record.client_id
            && self.home_account_id == record.home_account_id
    }
}

/// Why the persistent cache could not be used; names the path, never the content.
#[derive(Debug)]
pub(crate) struct StoreError(String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The version field alone, to tell a plain file from a sealed one.
#[derive(Deserialize)]
struct Version {
    version: u32,
}

impl Store {
    fn not_ours(&self) -> StoreError {
        StoreError(format!(
            "{} is not a token cache written by this library",
            self.path.display()
        ))
    }

    /// The cache's content. A sealed file that does not open (no key, another key) reads as
    /// empty: the user signs in again and the next write replaces it.
    fn read(&self, key: &mut Option<Key>) -> Result<File, StoreError> {
        let bytes = match read(&self.path, &ReadOptions::strict(MAX_FILE).private()) {
            Ok(bytes) => bytes,
            Err(e) if e.is_not_found() => return Ok(File::default()),
            Err(e) => return Err(StoreError(format!("{}: {e}", self.path.display()))),
        };
        let version: Version = serde_json::from_slice(&bytes).map_err(|_| self.not_ours())?;
        if version.version != SEALED_VERSION {
            return serde_json::from_slice(&bytes).map_err(|_| self.not_ours());
        }
        let sealed: Sealed = serde_json::from_slice(&bytes).map_err(|_| self.not_ours())?;
        let Some(keyring) = &self.keyring else {
            return Err(StoreError(format!(
                "{} is encrypted and no keyring is configured",
                self.path.display()
            )));
        };
        if key.is_none() {
            *key = Key::load(keyring.as_ref(), &self.name).map_err(|e| self.keyring_error(&e))?;
        }
        let plain = key.as_ref().and_then(|key| key.open(&self.name, &sealed));
        match plain {
            Some(plain) => serde_json::from_slice(&plain).map_err(|_| self.not_ours()),
            // The next write replaces the file; until then, say why nothing was found.
            None => Err(StoreError(format!(
                "{} does not open with the key in the keyring (the key was lost, replaced or expired); sign in again",
                self.path.display()
            ))),
        }
    }

    fn keyring_error(&self, error: &std::io::Error) -> StoreError {
        StoreError(format!(
            "the keyring for {} failed ({error})",
            self.path.display()
        ))
    }

    /// `file` as the bytes to write: sealed when a keyring is configured and works, plain
    /// when it is absent or fails and plain storage is allowed.
    fn encode(&self, key: &mut Option<Key>, file: &File) -> Result<Vec<u8>, StoreError> {
        let plain = serde_json::to_vec(file).map_err(|_| StoreError("cannot encode".into()))?;
        let Some(keyring) = &self.keyring else {
            return Ok(plain);
        };
        if key.is_none() {
            match Key::load_or_create(keyring.as_ref(), &self.name) {
                Ok(k) => *key = Some(k),
                Err(e) if self.allow_unencrypted => {
                    tracing::warn!(path = %self.path.display(), error = %e, "the keyring failed; writing the token cache unencrypted, as allowed");
                    return Ok(plain);
                }
                Err(e) => return Err(self.keyring_error(&e)),
            }
        }
        let Some(key) = key.as_ref() else {
            return Ok(plain);
        };
        let sealed = key
            .seal(&self.name, &plain)
            .map_err(|e| self.keyring_error(&e))?;
        serde_json::to_vec(&sealed).map_err(|_| StoreError("cannot encode".into()))
    }

    /// The refresh token kept for `record`'s account.
    pub(crate) fn load(&self, record: &AuthenticationRecord) -> Result<Option<Secret>, StoreError> {
        let mut key = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(self
            .read(&mut key)?
            .accounts
            .into_iter()
            .find(|e| e.is_for(record))
            .map(|e| Secret::new(e.refresh_token)))
    }

    /// Keeps `refresh_token` for `record`'s account, beside the other accounts in the file.
    pub(crate) fn save(
        &self,
        record: &AuthenticationRecord,
        refresh_token: &Secret,
    ) -> Result<(), StoreError> {
        let mut key = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // An unreadable file is replaced rather than kept failing for ever.
        let mut file = self.read(&mut key).unwrap_or_default();
        file.version = 1;
        file.accounts.retain(|e| !e.is_for(record));
        file.accounts.push(Entry {
            authority: record.authority.clone(),
            client_id: record.client_id.clone(),
            home_account_id: record.home_account_id.clone(),
            refresh_token: refresh_token.secret().to_owned(),
        });
        let bytes = self.encode(&mut key, &file)?;
        write_private(&self.path, &bytes)
            .map_err(|e| StoreError(format!("cannot write {} ({e})", self.path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(home: &str) -> AuthenticationRecord {
        AuthenticationRecord::new("h", "c", home, "t", "u@x")
    }

    #[test]
    fn unencrypted_storage_needs_an_explicit_yes() {
        let err = TokenCachePersistenceOptions::new()
            .without_platform_keyring()
            .directory("/nonexistent")
            .open("X", &Env::empty())
            .unwrap_err();
        assert_eq!(err.kind(), identity_core::ErrorKind::InvalidConfiguration);
        assert!(err.message().contains("allow_unencrypted_storage"), "{err}");
        let err = TokenCachePersistenceOptions::new()
            .allow_unencrypted_storage(true)
            .name("../x")
            .open("X", &Env::empty())
            .unwrap_err();
        assert!(err.message().contains("name"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private_and_keeps_each_account() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = TokenCachePersistenceOptions::new()
            .without_platform_keyring()
            .allow_unencrypted_storage(true)
            .name("test")
            .open(
                "X",
                &Env::from_pairs([("HOME", dir.path().to_str().unwrap())]),
            )
            .unwrap();
        store
            .save(&record("a"), &Secret::new("planted-rt-a"))
            .unwrap();
        store
            .save(&record("b"), &Secret::new("planted-rt-b"))
            .unwrap();
        store
            .save(&record("a"), &Secret::new("planted-rt-a2"))
            .unwrap();
        let path = dir.path().join(".IdentityService/test.json");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert_eq!(
            store.load(&record("a")).unwrap().unwrap().secret(),
            "planted-rt-a2"
        );
        assert_eq!(
            store.load(&record("b")).unwrap().unwrap().secret(),
            "planted-rt-b"
        );
        assert!(store.load(&record("c")).unwrap().is_none());
        assert!(!format!("{store:?}").contains("planted"));

        // A file others may write to is refused, and the error shows no content.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = store.load(&record("a")).unwrap_err();
        assert!(!err.to_string().contains("planted"), "{err}");
    }

    fn encrypted(dir: &Path, keyring: Arc<super::super::keyring::MemoryKeyring>) -> Store {
        TokenCachePersistenceOptions::new()
            .keyring(keyring)
            .name("sealed")
            .open("X", &Env::from_pairs([("HOME", dir.to_str().unwrap())]))
            .unwrap()
    }

    #[test]
    fn with_a_keyring_the_file_is_sealed_and_a_second_store_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Arc::new(super::super::keyring::MemoryKeyring::default());
        let store = encrypted(dir.path(), keyring.clone());
        store
            .save(&record("a"), &Secret::new("planted-rt-a"))
            .unwrap();
        let path = dir.path().join(".IdentityService/sealed.json");
        let raw = std::fs::read_to_string(&path).unwrap();
        assert!(!raw.contains("planted-rt-a"), "{raw}");
        assert!(raw.contains("\"version\":2"), "{raw}");
        // A later process: a new store over the same file and keyring.
        let again = encrypted(dir.path(), keyring.clone());
        assert_eq!(
            again.load(&record("a")).unwrap().unwrap().secret(),
            "planted-rt-a"
        );
        // The key gone (keyring reset): the cache reads as empty, and the next write works.
        keyring.clear();
        let reset = encrypted(dir.path(), keyring.clone());
        let err = reset.load(&record("a")).unwrap_err();
        assert!(err.to_string().contains("does not open"), "{err}");
        reset
            .save(&record("b"), &Secret::new("planted-rt-b"))
            .unwrap();
        assert_eq!(
            reset.load(&record("b")).unwrap().unwrap().secret(),
            "planted-rt-b"
        );
    }

    #[test]
    fn a_plain_file_is_read_then_sealed_on_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::from_pairs([("HOME", dir.path().to_str().unwrap())]);
        let plain = TokenCachePersistenceOptions::new()
            .without_platform_keyring()
            .allow_unencrypted_storage(true)
            .name("sealed")
            .open("X", &env)
            .unwrap();
        plain
            .save(&record("a"), &Secret::new("planted-rt-a"))
            .unwrap();
        let keyring = Arc::new(super::super::keyring::MemoryKeyring::default());
        let store = encrypted(dir.path(), keyring);
        assert_eq!(
            store.load(&record("a")).unwrap().unwrap().secret(),
            "planted-rt-a"
        );
        store
            .save(&record("b"), &Secret::new("planted-rt-b"))
            .unwrap();
        let raw = std::fs::read_to_string(dir.path().join(".IdentityService/sealed.json")).unwrap();
        assert!(!raw.contains("planted-rt"), "{raw}");
        // A plain-only store cannot read the sealed file, and says so without content.
        let err = plain.load(&record("a")).unwrap_err();
        assert!(err.to_string().contains("encrypted"), "{err}");
    }

    #[test]
    fn a_failing_keyring_falls_back_to_plain_only_when_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::from_pairs([("HOME", dir.path().to_str().unwrap())]);
        let keyring = Arc::new(super::super::keyring::MemoryKeyring::default());
        keyring
            .fail
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Unusable at build: refused unless plain files are allowed.
        let err = TokenCachePersistenceOptions::new()
            .keyring(keyring.clone())
            .name("sealed")
            .open("X", &env)
            .unwrap_err();
        assert_eq!(err.kind(), identity_core::ErrorKind::InvalidConfiguration);
        assert!(err.message().contains("keyring"), "{err}");

        // Failing later, at a write: an error, and nothing written.
        keyring
            .fail
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let store = encrypted(dir.path(), keyring.clone());
        keyring
            .fail
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let err = store
            .save(&record("a"), &Secret::new("planted-rt-a"))
            .unwrap_err();
        assert!(err.to_string().contains("keyring"), "{err}");
        assert!(!err.to_string().contains("planted"), "{err}");
        assert!(!dir.path().join(".IdentityService/sealed.json").exists());

        let allowed = TokenCachePersistenceOptions::new()
            .keyring(keyring)
            .allow_unencrypted_storage(true)
            .name("sealed")
            .open("X", &env)
            .unwrap();
        allowed
            .save(&record("a"), &Secret::new("planted-rt-a"))
            .unwrap();
        assert_eq!(
            allowed.load(&record("a")).unwrap().unwrap().secret(),
            "planted-rt-a"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_others_may_write_to_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let loose = dir.path().join("loose");
        std::fs::create_dir(&loose).unwrap();
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o777)).unwrap();
        let store = TokenCachePersistenceOptions::new()
            .without_platform_keyring()
            .allow_unencrypted_storage(true)
            .directory(&loose)
            .open("X", &Env::empty())
            .unwrap();
        let err = store
            .save(&record("a"), &Secret::new("planted-rt-a"))
            .unwrap_err();
        assert!(err.to_string().contains("group or others"), "{err}");
        assert_eq!(std::fs::read_dir(&loose).unwrap().count(), 0);
    }
}
