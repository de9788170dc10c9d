//! The opt-in persistent user-token cache: the refresh token of each signed-in account, in a
//! file only the current user can read.
//!
//! * Location: `<directory>/<name>.json`; the directory defaults to `$HOME/.IdentityService`
//!   (`%LOCALAPPDATA%\.IdentityService` on Windows), read from the injected environment.
//! * The directory is created with mode `0700` and the file written with mode `0600`, through
//!   a temporary file renamed over the old one, so a reader never sees half a file.
//! * The file is read with [`identity_core::fs::read`]: no symlink, one hard link, owned by the
//!   current user and not writable by others, at most 1 MiB.
//! * Encrypted storage (a platform keyring) is not built in: the caller must opt in to a plain
//!   file with [`TokenCachePersistenceOptions::allow_unencrypted_storage`], as the other Azure
//!   SDKs require when no keyring is available.
//! * Entries are keyed by authority, client id and home account id; the file holds JSON
//!   `{"version":1,"accounts":[{"authority":…,"clientId":…,"homeAccountId":…,"refreshToken":…}]}`.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use identity_core::fs::{ReadOptions, read};
use identity_core::{Env, Error, Secret};
use serde::{Deserialize, Serialize};

use super::AuthenticationRecord;

/// The largest cache file read, in bytes.
const MAX_FILE: u64 = 1 << 20;

/// How a user credential keeps its refresh token between processes.
///
/// ```
/// use identity_entra::TokenCachePersistenceOptions;
/// let options = TokenCachePersistenceOptions::new()
///     .name("my-tool")
///     .allow_unencrypted_storage(true);
/// ```
#[derive(Clone, Debug, Default)]
pub struct TokenCachePersistenceOptions {
    name: Option<String>,
    directory: Option<PathBuf>,
    allow_unencrypted: bool,
}

impl TokenCachePersistenceOptions {
    /// Default options: name `msal.cache`, the default directory, unencrypted storage not
    /// allowed (so building a credential with them fails until
    /// [`allow_unencrypted_storage`](Self::allow_unencrypted_storage) is set).
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
    /// only (default `false`). Required: this library has no encrypted store.
    #[must_use]
    pub fn allow_unencrypted_storage(mut self, allow: bool) -> Self {
        self.allow_unencrypted = allow;
        self
    }

    /// Checks the options and names the file.
    pub(crate) fn open(&self, credential: &'static str, env: &Env) -> Result<Store, Error> {
        if !self.allow_unencrypted {
            return Err(Error::invalid_configuration(
                credential,
                "encrypted token storage is not available in this build; set allow_unencrypted_storage(true) to keep the refresh token in a file only the current user can read",
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
            lock: Mutex::new(()),
        })
    }
}

/// An opened persistent cache.
pub(crate) struct Store {
    path: PathBuf,
    lock: Mutex<()>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
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

impl Store {
    fn read(&self) -> Result<File, StoreError> {
        match read(&self.path, &ReadOptions::strict(MAX_FILE).private()) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|_| {
                StoreError(format!(
                    "{} is not a token cache written by this library",
                    self.path.display()
                ))
            }),
            Err(e) if e.is_not_found() => Ok(File::default()),
            Err(e) => Err(StoreError(format!("{}: {e}", self.path.display()))),
        }
    }

    /// The refresh token kept for `record`'s account.
    pub(crate) fn load(&self, record: &AuthenticationRecord) -> Result<Option<Secret>, StoreError> {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(self
            .read()?
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
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // An unreadable file is replaced rather than kept failing for ever.
        let mut file = self.read().unwrap_or_default();
        file.version = 1;
        file.accounts.retain(|e| !e.is_for(record));
        file.accounts.push(Entry {
            authority: record.authority.clone(),
            client_id: record.client_id.clone(),
            home_account_id: record.home_account_id.clone(),
            refresh_token: refresh_token.secret().to_owned(),
        });
        let bytes = serde_json::to_vec(&file).map_err(|_| StoreError("cannot encode".into()))?;
        write_private(&self.path, &bytes).map_err(|e| {
            StoreError(format!(
                "cannot write {} ({})",
                self.path.display(),
                e.kind()
            ))
        })
    }
}

/// Writes `bytes` to `path` through a temporary file with mode 0600, renamed into place.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let directory = path.parent().unwrap_or_else(|| Path::new("."));
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(directory)?;
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("cache");
    let temp = directory.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = (|| {
        let mut file = options.open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
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
}
