//! The hit path: each key's lock-free slot, published once in a read-mostly table, whose token
//! is swapped atomically.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use arc_swap::ArcSwap;

use super::key::{CacheKey, KeyRef};
use crate::AccessToken;
use crate::clock::{COARSE_LAG, Clock};

/// A cached token and when it stops being fresh.
pub(crate) struct Cached {
    pub(super) token: AccessToken,
    pub(super) refresh_at: SystemTime,
    /// `refresh_at` less [`COARSE_LAG`]: a coarse reading before it is surely fresh.
    pub(super) fresh_until: SystemTime,
}

impl Cached {
    pub(super) fn new(token: AccessToken, refresh_at: SystemTime) -> Self {
        let fresh_until = refresh_at
            .checked_sub(COARSE_LAG)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        Self {
            token,
            refresh_at,
            fresh_until,
        }
    }

    /// What an empty slot holds: never fresh.
    pub(super) fn empty() -> Self {
        Self::new(
            AccessToken::new("", SystemTime::UNIX_EPOCH),
            SystemTime::UNIX_EPOCH,
        )
    }

    /// The token.
    pub(crate) fn token(&self) -> &AccessToken {
        &self.token
    }
}

/// The lock-free read side of one key: published once in the cache's table, then updated
/// (under the cache's lock) whenever the key's token changes.
pub(super) struct FastSlot {
    pub(super) key: CacheKey,
    pub(super) hash: u64,
    pub(super) stored: ArcSwap<Cached>,
    /// Bumped after every store, so a holder of a copy can tell it is current with one load.
    pub(super) version: AtomicU64,
    pub(super) clock: Arc<dyn Clock>,
}

impl FastSlot {
    pub(super) fn set(&self, cached: Arc<Cached>) {
        self.stored.store(cached);
        self.version.fetch_add(1, Ordering::Release);
    }

    pub(super) fn clear(&self) {
        self.set(Arc::new(Cached::empty()));
    }

    pub(super) fn is_fresh(&self, cached: &Cached) -> bool {
        self.clock.now_coarse() < cached.fresh_until
    }

    pub(super) fn fresh_token(&self) -> Option<AccessToken> {
        let cached = self.stored.load();
        self.is_fresh(&cached).then(|| cached.token.clone())
    }
}

/// The read side of one cache entry, for callers that ask for the same key again and again:
/// reading it costs no hashing, no look-up and no lock. Get one from
/// [`TokenCache::slot`](super::TokenCache::slot) or
/// [`TokenCredential::cache_slot`](crate::TokenCredential::cache_slot);
/// [`TokenRequest`](crate::TokenRequest) is the handle built on it.
///
/// `Debug` shows the key, never the token.
#[derive(Clone)]
pub struct CacheSlot(pub(super) Arc<FastSlot>);

impl CacheSlot {
    /// The cached token if it is fresh (well before its refresh point), else `None`: then
    /// the caller asks the cache or the credential, which refresh or load as the rules say.
    /// With `DEBUG` tracing on (see [`crate::trace`]) it is always `None`, so that every
    /// call goes through `get_token` and gets its span.
    pub fn fresh_token(&self) -> Option<AccessToken> {
        if crate::trace::span_enabled() {
            return None;
        }
        self.0.fresh_token()
    }

    /// The key this slot holds.
    pub fn key(&self) -> &CacheKey {
        &self.0.key
    }

    /// A number that changes whenever the slot's token does.
    pub(crate) fn version(&self) -> u64 {
        self.0.version.load(Ordering::Acquire)
    }

    /// The slot's current content.
    pub(crate) fn load(&self) -> Arc<Cached> {
        self.0.stored.load_full()
    }

    /// Whether `cached` (loaded from this slot) is fresh now.
    pub(crate) fn is_fresh(&self, cached: &Cached) -> bool {
        self.0.is_fresh(cached)
    }
}

impl fmt::Debug for CacheSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheSlot")
            .field("key", &self.0.key)
            .finish_non_exhaustive()
    }
}

/// Slots in the lock-free table; keys beyond it are still cached, through the locked path.
pub(super) const TABLE_SIZE: usize = 64;

/// An open-addressed, insert-only table of slots. Readers probe without a lock; inserts happen
/// under the cache's lock, so each cell is set by one writer at most, once.
pub(super) struct Table(Box<[OnceLock<Arc<FastSlot>>]>);

impl Table {
    pub(super) fn new() -> Self {
        Self((0..TABLE_SIZE).map(|_| OnceLock::new()).collect())
    }

    /// The probe sequence for `hash`: every cell once, starting at the hash's own.
    pub(super) fn probe(&self, hash: u64) -> impl Iterator<Item = &OnceLock<Arc<FastSlot>>> {
        #[allow(clippy::cast_possible_truncation, reason = "only the low bits index")]
        let start = hash as usize % TABLE_SIZE;
        self.0[start..].iter().chain(&self.0[..start])
    }

    /// The slot of `key`, if published. An empty cell ends the search: cells are never
    /// emptied, so a key is always before the first empty cell of its probe sequence.
    pub(super) fn find(&self, hash: u64, key: &KeyRef<'_>) -> Option<&Arc<FastSlot>> {
        for cell in self.probe(hash) {
            let slot = cell.get()?;
            if slot.hash == hash && slot.key.matches(key) {
                return Some(slot);
            }
        }
        None
    }

    pub(super) fn find_owned(&self, hash: u64, key: &CacheKey) -> Option<&Arc<FastSlot>> {
        for cell in self.probe(hash) {
            let slot = cell.get()?;
            if slot.hash == hash && slot.key == *key {
                return Some(slot);
            }
        }
        None
    }

    /// Publishes `slot` in the first free cell; a full table leaves it unpublished.
    pub(super) fn publish(&self, slot: &Arc<FastSlot>) {
        for cell in self.probe(slot.hash) {
            if cell.get().is_none() {
                let _ = cell.set(Arc::clone(slot));
                return;
            }
        }
    }

    pub(super) fn slots(&self) -> impl Iterator<Item = &Arc<FastSlot>> {
        self.0.iter().filter_map(OnceLock::get)
    }
}
