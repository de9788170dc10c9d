//! Cache keys: the owned [`CacheKey`], the borrowed [`KeyRef`], and the hash both share.

use std::fmt;
use std::hash::Hasher;

/// A cache key as stored.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    identity: Box<str>,
    scopes: Box<[Box<str>]>,
    tenant: Option<Box<str>>,
    cae: bool,
}

impl CacheKey {
    /// A key; scopes are sorted so that their order does not matter.
    pub fn new(identity: &str, scopes: &[&str], tenant: Option<&str>, cae: bool) -> Self {
        let mut scopes: Vec<Box<str>> = scopes.iter().map(|s| Box::from(*s)).collect();
        scopes.sort_unstable();
        Self {
            identity: identity.into(),
            scopes: scopes.into_boxed_slice(),
            tenant: tenant.map(Box::from),
            cae,
        }
    }

    /// The identity part: which credential and which identity (e.g. a client id).
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The sorted scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scopes.iter().map(|s| &**s)
    }

    /// The tenant, if the token is tenant-specific.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// Whether the token supports continuous access evaluation.
    pub fn cae(&self) -> bool {
        self.cae
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheKey")
            .field("identity", &self.identity)
            .field("scopes", &self.scopes)
            .field("tenant", &self.tenant)
            .field("cae", &self.cae)
            .finish()
    }
}

/// A borrowed cache key, for look-ups without allocation.
#[derive(Clone, Copy, Debug)]
pub struct KeyRef<'a> {
    /// Which credential and which identity, e.g. `msi/app_service/client_id=…`.
    pub identity: &'a str,
    /// The requested scopes, in any order.
    pub scopes: &'a [&'a str],
    /// The tenant the token is for, if any.
    pub tenant: Option<&'a str>,
    /// Whether CAE was requested.
    pub cae: bool,
}

impl<'a> KeyRef<'a> {
    /// A key.
    pub fn new(
        identity: &'a str,
        scopes: &'a [&'a str],
        tenant: Option<&'a str>,
        cae: bool,
    ) -> Self {
        Self {
            identity,
            scopes,
            tenant,
            cae,
        }
    }

    pub(super) fn to_owned_key(self) -> CacheKey {
        CacheKey::new(self.identity, self.scopes, self.tenant, self.cae)
    }

    /// The hash of the key (whose scopes are sorted), as [`CacheKey::hash_value`] computes it.
    pub(super) fn hash_value(&self) -> u64 {
        key_hash(
            self.identity,
            self.scopes.iter().copied(),
            self.tenant,
            self.cae,
        )
    }
}

impl CacheKey {
    pub(super) fn hash_value(&self) -> u64 {
        key_hash(
            &self.identity,
            self.scopes.iter().map(|s| &**s),
            self.tenant.as_deref(),
            self.cae,
        )
    }

    /// True if this key is `key` (whose scopes are sorted).
    pub(super) fn matches(&self, key: &KeyRef<'_>) -> bool {
        *self.identity == *key.identity
            && self.scopes.len() == key.scopes.len()
            && self.scopes.iter().zip(key.scopes).all(|(a, b)| **a == **b)
            && self.tenant.as_deref() == key.tenant
            && self.cae == key.cae
    }
}

/// The hash of a key's parts, computed the same way for owned and borrowed keys.
pub(super) fn key_hash<'s>(
    identity: &str,
    scopes: impl Iterator<Item = &'s str>,
    tenant: Option<&str>,
    cae: bool,
) -> u64 {
    let mut h = FxHasher::default();
    h.write(identity.as_bytes());
    h.write_u8(0xff);
    for scope in scopes {
        h.write(scope.as_bytes());
        h.write_u8(0xff);
    }
    match tenant {
        Some(t) => {
            h.write_u8(1);
            h.write(t.as_bytes());
        }
        None => h.write_u8(0),
    }
    h.write_u8(u8::from(cae));
    h.finish()
}

/// `FxHash`: keys come from the application, not from an attacker, and a cached look-up should
/// cost nanoseconds.
#[derive(Default)]
pub(super) struct FxHasher(u64);

impl FxHasher {
    pub(super) fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Passes a precomputed hash through: the map's keys are already [`key_hash`] values.
#[derive(Default)]
pub(super) struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in rather than panic.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
