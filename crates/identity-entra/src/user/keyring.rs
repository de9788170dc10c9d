//! Encrypted storage for the persistent user-token cache: the file's content is sealed with
//! AES-256-GCM under a random 256-bit key that lives in a platform keyring, never on disk.
//!
//! * [`Keyring`]: where the key is kept. With the crate feature `keyring`, the default is
//!   `PlatformKeyring`: the macOS Keychain, the Windows Credential Manager, or the Linux
//!   kernel's persistent keyring of the user (its keys last until the machine restarts, or 3
//!   days without use by default; then the cache file can no longer be opened and the user
//!   signs in again). Any other store (a
//!   secret manager, a test double) can be given through
//!   [`TokenCachePersistenceOptions::keyring`](super::TokenCachePersistenceOptions::keyring).
//! * The key is stored under the service [`KEYRING_SERVICE`] and the account
//!   `token-cache-key:<cache name>`, base64-encoded. It is created on the first write.
//! * The sealed file is JSON `{"version":2,"nonce":"<base64>","data":"<base64>"}`; the cache
//!   name is the authenticated data, so a file renamed to another cache's name does not open.
//! * A file that cannot be opened (no key in the keyring, a key that does not fit) counts as
//!   empty: the user signs in again and the next write replaces it.

use std::fmt;
use std::io;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use identity_core::Secret;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// The keyring service name the cache keys are stored under.
pub const KEYRING_SERVICE: &str = "identity-entra";

/// A secret store that keeps the persistent token cache's encryption key.
///
/// Implementations must keep secrets out of their errors. Calls are short and synchronous; they
/// run on the thread that reads or writes the cache.
pub trait Keyring: Send + Sync + fmt::Debug {
    /// The secret stored for (`service`, `account`), or `None` when there is none.
    ///
    /// # Errors
    /// The store could not be reached or read.
    fn get(&self, service: &str, account: &str) -> io::Result<Option<Secret>>;

    /// Stores `secret` for (`service`, `account`), replacing any earlier one.
    ///
    /// # Errors
    /// The store could not be reached or written.
    fn set(&self, service: &str, account: &str, secret: &Secret) -> io::Result<()>;
}

/// The operating system's keyring (crate feature `keyring`): the macOS Keychain, the Windows
/// Credential Manager, or on Linux the kernel's persistent keyring of the user (reached by every
/// process of the user, whatever its login session; it lives until the machine restarts or, by
/// default, 3 days without use: `/proc/sys/kernel/keys/persistent_keyring_expiry`). On other
/// systems every call fails with [`io::ErrorKind::Unsupported`].
#[cfg(feature = "keyring")]
#[cfg_attr(docsrs, doc(cfg(feature = "keyring")))]
#[derive(Clone, Copy, Debug, Default)]
pub struct PlatformKeyring;

#[cfg(feature = "keyring")]
impl Keyring for PlatformKeyring {
    fn get(&self, service: &str, account: &str) -> io::Result<Option<Secret>> {
        platform::get(service, account)
    }

    fn set(&self, service: &str, account: &str, secret: &Secret) -> io::Result<()> {
        platform::set(service, account, secret)
    }
}

/// macOS and Windows: the `keyring` crate's native stores.
#[cfg(all(feature = "keyring", any(target_os = "macos", target_os = "windows")))]
mod platform {
    use std::io;

    use identity_core::Secret;

    fn entry(service: &str, account: &str) -> io::Result<keyring::Entry> {
        keyring::Entry::new(service, account).map_err(|e| error(&e))
    }

    pub(super) fn get(service: &str, account: &str) -> io::Result<Option<Secret>> {
        match entry(service, account)?.get_password() {
            Ok(secret) => Ok(Some(Secret::new(secret))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(error(&e)),
        }
    }

    pub(super) fn set(service: &str, account: &str, secret: &Secret) -> io::Result<()> {
        entry(service, account)?
            .set_password(secret.secret())
            .map_err(|e| error(&e))
    }

    /// The keyring's error as an `io::Error`, by category only: the keyring's own messages may
    /// carry what was stored.
    fn error(error: &keyring::Error) -> io::Error {
        let what = match error {
            keyring::Error::NoStorageAccess(_) => "the platform keyring is not available",
            keyring::Error::NoEntry => "no entry in the platform keyring",
            keyring::Error::BadEncoding(_) => "the keyring entry is not text",
            keyring::Error::TooLong(..) | keyring::Error::Invalid(..) => {
                "the keyring refused the entry's name"
            }
            keyring::Error::Ambiguous(_) => "the keyring holds several matching entries",
            _ => "the platform keyring failed",
        };
        io::Error::other(what)
    }
}

/// Linux: the user's persistent keyring in the kernel key retention service.
#[cfg(all(feature = "keyring", target_os = "linux"))]
mod platform {
    use std::io;

    use identity_core::Secret;
    use linux_keyutils::{KeyError, KeyRing, KeyRingIdentifier};

    /// The user's persistent keyring, linked into this process's session keyring so that its
    /// keys are possessed (readable); the user keyring where the kernel has no persistent
    /// keyrings.
    fn keyring() -> io::Result<KeyRing> {
        KeyRing::get_persistent(KeyRingIdentifier::Session)
            .or_else(|_| KeyRing::from_special_id(KeyRingIdentifier::User, false))
            .map_err(error)
    }

    fn description(service: &str, account: &str) -> String {
        format!("{service}:{account}")
    }

    pub(super) fn get(service: &str, account: &str) -> io::Result<Option<Secret>> {
        match keyring()?.search(&description(service, account)) {
            Ok(key) => {
                let bytes = key.read_to_vec().map_err(error)?;
                String::from_utf8(bytes)
                    .map(|text| Some(Secret::new(text)))
                    .map_err(|_| io::Error::other("the keyring entry is not text"))
            }
            Err(KeyError::KeyDoesNotExist | KeyError::KeyExpired | KeyError::KeyRevoked) => {
                Ok(None)
            }
            Err(e) => Err(error(e)),
        }
    }

    pub(super) fn set(service: &str, account: &str, secret: &Secret) -> io::Result<()> {
        keyring()?
            .add_key(&description(service, account), secret.secret().as_bytes())
            .map(|_| ())
            .map_err(error)
    }

    /// Removes the entry (tests clean up what they stored).
    #[cfg(test)]
    pub(super) fn remove(service: &str, account: &str) {
        if let Ok(key) =
            keyring().and_then(|k| k.search(&description(service, account)).map_err(error))
        {
            let _ = key.invalidate();
        }
    }

    /// The kernel's error by its name (`AccessDenied`, `QuotaExceeded`, …): it carries no
    /// stored data.
    #[allow(clippy::needless_pass_by_value, reason = "used as a map_err function")]
    fn error(error: KeyError) -> io::Error {
        io::Error::other(format!("the kernel keyring failed ({error:?})"))
    }
}

/// Elsewhere: no platform keyring.
#[cfg(all(
    feature = "keyring",
    not(any(target_os = "linux", target_os = "macos", target_os = "windows"))
))]
mod platform {
    use std::io;

    use identity_core::Secret;

    fn unsupported() -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "no platform keyring on this system",
        )
    }

    pub(super) fn get(_: &str, _: &str) -> io::Result<Option<Secret>> {
        Err(unsupported())
    }

    pub(super) fn set(_: &str, _: &str, _: &Secret) -> io::Result<()> {
        Err(unsupported())
    }
}

/// The default keyring when the caller gives none: the platform's with the `keyring` feature.
pub(crate) fn default_keyring() -> Option<Arc<dyn Keyring>> {
    #[cfg(feature = "keyring")]
    {
        Some(Arc::new(PlatformKeyring))
    }
    #[cfg(not(feature = "keyring"))]
    {
        None
    }
}

/// A sealed cache file.
#[derive(Serialize, Deserialize)]
pub(crate) struct Sealed {
    pub(crate) version: u32,
    nonce: String,
    data: String,
}

/// The version number of a sealed file.
pub(crate) const SEALED_VERSION: u32 = 2;

/// A 256-bit cache key.
pub(crate) struct Key([u8; 32]);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(…)")
    }
}

impl Key {
    /// The key stored for `name`, or a new one stored there when there is none.
    pub(crate) fn load_or_create(keyring: &dyn Keyring, name: &str) -> io::Result<Self> {
        if let Some(key) = Self::load(keyring, name)? {
            return Ok(key);
        }
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| io::Error::other("no system randomness"))?;
        keyring.set(
            KEYRING_SERVICE,
            &account(name),
            &Secret::new(STANDARD.encode(bytes)),
        )?;
        Ok(Self(bytes))
    }

    /// The key stored for `name`; `None` when there is none or it is not a key.
    pub(crate) fn load(keyring: &dyn Keyring, name: &str) -> io::Result<Option<Self>> {
        let Some(stored) = keyring.get(KEYRING_SERVICE, &account(name))? else {
            return Ok(None);
        };
        Ok(STANDARD
            .decode(stored.secret().trim())
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .map(Self))
    }

    fn sealing_key(&self) -> Option<LessSafeKey> {
        UnboundKey::new(&AES_256_GCM, &self.0)
            .ok()
            .map(LessSafeKey::new)
    }

    /// `plain` sealed with a fresh random nonce; `name` is the authenticated data.
    pub(crate) fn seal(&self, name: &str, plain: &[u8]) -> io::Result<Sealed> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| io::Error::other("no system randomness"))?;
        let mut data = plain.to_vec();
        self.sealing_key()
            .ok_or_else(|| io::Error::other("cannot encrypt the token cache"))?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(name.as_bytes()),
                &mut data,
            )
            .map_err(|_| io::Error::other("cannot encrypt the token cache"))?;
        Ok(Sealed {
            version: SEALED_VERSION,
            nonce: STANDARD.encode(nonce),
            data: STANDARD.encode(data),
        })
    }

    /// The content of `sealed`, or `None` when it does not open with this key and name.
    pub(crate) fn open(&self, name: &str, sealed: &Sealed) -> Option<Vec<u8>> {
        let nonce = <[u8; NONCE_LEN]>::try_from(STANDARD.decode(&sealed.nonce).ok()?).ok()?;
        let mut data = STANDARD.decode(&sealed.data).ok()?;
        let key = self.sealing_key()?;
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(name.as_bytes()),
                &mut data,
            )
            .ok()?;
        Some(plain.to_vec())
    }
}

fn account(name: &str) -> String {
    format!("token-cache-key:{name}")
}

/// An in-memory [`Keyring`] for tests: entries live as long as the value.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct MemoryKeyring {
    entries: std::sync::Mutex<std::collections::HashMap<(String, String), String>>,
    pub(crate) fail: std::sync::atomic::AtomicBool,
}

#[cfg(test)]
impl Keyring for MemoryKeyring {
    fn get(&self, service: &str, account: &str) -> io::Result<Option<Secret>> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(io::Error::other("the test keyring is locked"));
        }
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(entries
            .get(&(service.to_owned(), account.to_owned()))
            .map(|s| Secret::new(s.clone())))
    }

    fn set(&self, service: &str, account: &str, secret: &Secret) -> io::Result<()> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(io::Error::other("the test keyring is locked"));
        }
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                (service.to_owned(), account.to_owned()),
                secret.secret().to_owned(),
            );
        Ok(())
    }
}

#[cfg(test)]
impl MemoryKeyring {
    pub(crate) fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_and_bind_the_name() {
        let keyring = MemoryKeyring::default();
        let key = Key::load_or_create(&keyring, "app").unwrap();
        let sealed = key.seal("app", b"{\"refresh\":\"planted-rt\"}").unwrap();
        assert!(!sealed.data.contains("planted-rt"));
        assert_eq!(
            key.open("app", &sealed).as_deref(),
            Some(&b"{\"refresh\":\"planted-rt\"}"[..])
        );
        // Another name (a renamed file) or another key does not open it.
        assert!(key.open("other", &sealed).is_none());
        keyring.clear();
        let fresh = Key::load_or_create(&keyring, "app").unwrap();
        assert!(fresh.open("app", &sealed).is_none());
        // The stored key is reused.
        let again = Key::load(&keyring, "app").unwrap().unwrap();
        assert_eq!(again.0, fresh.0);
        assert_eq!(format!("{fresh:?}"), "Key(…)");
    }

    /// The real platform keyring, where the machine has one: either the key round-trips, or
    /// the failure is a clean error (no panic, nothing stored echoed).
    #[cfg(feature = "keyring")]
    #[test]
    fn the_platform_keyring_round_trips_or_fails_cleanly() {
        let name = format!("test-{}-{}", std::process::id(), line!());
        match Key::load_or_create(&PlatformKeyring, &name) {
            Ok(key) => {
                let loaded = Key::load(&PlatformKeyring, &name).unwrap().unwrap();
                assert_eq!(loaded.0, key.0);
                #[cfg(target_os = "linux")]
                platform::remove(KEYRING_SERVICE, &account(&name));
            }
            Err(e) => {
                let text = e.to_string();
                assert!(text.contains("keyring"), "{text}");
            }
        }
    }
}
