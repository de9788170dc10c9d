//! The locked side of the cache: each key's entry (cached token, load in flight, failure
//! spacing, claims ordering), the map that holds them, and the refresh plan of a new token.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use futures_util::future::Shared;

use super::key::{CacheKey, KeyRef, PrehashedHasher};
use super::slot::{Cached, FastSlot, Table};
use crate::clock::Clock;
use crate::{AccessToken, BoxFuture, Error};

/// Timing rules of the cache (docs/protocol.md §3.5). The defaults are the specification's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefreshPolicy {
    /// How long before `expires_on` a token stops being fresh (capped at half its lifetime).
    pub expiry_margin: Duration,
    /// The least time between two refresh attempts while a valid token is cached.
    pub retry_delay: Duration,
    /// Tokens living at least this long without a `refresh_on` are refreshed at half-life.
    pub half_life_after: Duration,
}

impl RefreshPolicy {
    /// 300 s margin, 30 s between refresh attempts, half-life for tokens of 2 h or more.
    pub const DEFAULT: Self = Self {
        expiry_margin: Duration::from_secs(300),
        retry_delay: Duration::from_secs(30),
        half_life_after: Duration::from_secs(2 * 3600),
    };
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A load in flight, shared by every caller waiting on it.
pub(super) type SharedFetch = Shared<BoxFuture<'static, Result<AccessToken, Error>>>;

#[derive(Default)]
pub(super) struct Entry {
    pub(super) cached: Option<Arc<Cached>>,
    pub(super) inflight: Option<SharedFetch>,
    pub(super) generation: u64,
    /// When the last attempt failed: no refresh starts within `retry_delay` of it.
    pub(super) last_failure: Option<SystemTime>,
    /// Every fetch (load, refresh or claims) takes the next number when it starts.
    pub(super) tickets: u64,
    /// The ticket of the newest claims fetch whose token was stored: a load with an older
    /// ticket does not overwrite it.
    pub(super) claims_ticket: u64,
}

pub(super) struct Slot {
    pub(super) fast: Arc<FastSlot>,
    pub(super) entry: Entry,
}

impl Slot {
    pub(super) fn set_cached(&mut self, cached: Arc<Cached>) {
        self.fast.set(Arc::clone(&cached));
        self.entry.cached = Some(cached);
    }

    pub(super) fn next_ticket(&mut self) -> u64 {
        self.entry.tickets += 1;
        self.entry.tickets
    }
}

/// Entries by key hash; a bucket holds the (rare) keys whose hashes collide.
pub(super) type Map = HashMap<u64, Vec<Slot>, BuildHasherDefault<PrehashedHasher>>;

pub(super) fn find<'m>(map: &'m mut Map, hash: u64, key: &KeyRef<'_>) -> Option<&'m mut Slot> {
    map.get_mut(&hash)?
        .iter_mut()
        .find(|slot| slot.fast.key.matches(key))
}

pub(super) fn find_owned<'m>(map: &'m mut Map, key: &CacheKey) -> Option<&'m mut Slot> {
    map.get_mut(&key.hash_value())?
        .iter_mut()
        .find(|slot| slot.fast.key == *key)
}

/// Entries beyond this count trigger a sweep of expired, idle entries.
pub(super) const SWEEP_THRESHOLD: usize = 4096;

pub(super) struct Inner {
    pub(super) map: Mutex<Map>,
    pub(super) table: Table,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) policy: RefreshPolicy,
}

impl Inner {
    pub(super) fn lock(&self) -> MutexGuard<'_, Map> {
        // A panic while holding the lock cannot leave an entry half-written (every update is a
        // single assignment), so a poisoned map is still consistent.
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The slot of `key`, created (and published in the table when there is room) if absent.
    pub(super) fn slot_or_default<'m>(
        &self,
        map: &'m mut Map,
        hash: u64,
        key: CacheKey,
    ) -> &'m mut Slot {
        let bucket = map.entry(hash).or_default();
        let index = match bucket.iter().position(|slot| slot.fast.key == key) {
            Some(index) => index,
            None => {
                // A key swept from the map keeps its published slot: reuse it.
                let fast = match self.table.find_owned(hash, &key) {
                    Some(fast) => Arc::clone(fast),
                    None => {
                        let fast = Arc::new(FastSlot {
                            key,
                            hash,
                            stored: ArcSwap::from_pointee(Cached::empty()),
                            version: AtomicU64::new(0),
                            clock: Arc::clone(&self.clock),
                        });
                        self.table.publish(&fast);
                        fast
                    }
                };
                bucket.push(Slot {
                    fast,
                    entry: Entry::default(),
                });
                bucket.len() - 1
            }
        };
        &mut bucket[index]
    }

    /// A fresh token for `key` from the lock-free table, if there is one.
    pub(super) fn fresh(&self, hash: u64, key: &KeyRef<'_>) -> Option<AccessToken> {
        self.table.find(hash, key)?.fresh_token()
    }

    pub(super) fn complete(
        &self,
        key: &CacheKey,
        generation: u64,
        ticket: u64,
        result: Result<AccessToken, Error>,
    ) -> Result<AccessToken, Error> {
        let now = self.clock.now();
        let mut map = self.lock();
        let slot = find_owned(&mut map, key);
        match (result, slot) {
            (Ok(token), Some(slot)) => {
                let cached = plan(&self.policy, now, token);
                let token = cached.token.clone();
                // A claims token stored since this load started is newer: keep it.
                if ticket > slot.entry.claims_ticket {
                    slot.set_cached(Arc::new(cached));
                }
                let entry = &mut slot.entry;
                entry.last_failure = None;
                if entry.generation == generation {
                    entry.inflight = None;
                }
                Ok(token)
            }
            (Ok(token), None) => Ok(plan(&self.policy, now, token).token),
            (Err(e), slot) => {
                if let Some(Slot { entry, .. }) = slot {
                    // Only a failure spaces out the next refresh: a token living under a
                    // minute must still be refreshed ahead of its expiry after a success.
                    entry.last_failure = Some(now);
                    if entry.generation == generation {
                        entry.inflight = None;
                    }
                }
                Err(e)
            }
        }
    }
}

/// Decides when the cached token should be refreshed, filling in a half-life `refresh_on`.
pub(super) fn plan(
    policy: &RefreshPolicy,
    fetched_at: SystemTime,
    mut token: AccessToken,
) -> Cached {
    let lifetime = token
        .expires_on
        .duration_since(fetched_at)
        .unwrap_or(Duration::ZERO);
    if token.refresh_on.is_none() && lifetime >= policy.half_life_after {
        token.refresh_on = Some(fetched_at + lifetime / 2);
    }
    let margin = policy.expiry_margin.min(lifetime / 2);
    let mut refresh_at = token
        .expires_on
        .checked_sub(margin)
        .unwrap_or(token.expires_on);
    if let Some(refresh_on) = token.refresh_on {
        refresh_at = refresh_at.min(refresh_on);
    }
    Cached::new(token, refresh_at)
}
