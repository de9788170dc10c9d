//! The token cache: one per credential, shared by every source, with single-flight loads and
//! refresh ahead of expiry.
//!
//! # Semantics
//! For each key (identity, sorted scopes, tenant, CAE flag):
//!
//! * **fresh** (`now` before the refresh point): the cached token is returned; no I/O.
//! * **stale but valid** (past the refresh point, before `expires_on`): one caller starts a
//!   refresh and every caller, that one included, gets the cached token at once. The refresh
//!   runs as a task on the current tokio runtime; without a runtime the caller that starts it
//!   waits for it. A failed refresh is logged, the valid token keeps being served, and no new
//!   attempt starts for [`RefreshPolicy::retry_delay`] (30 s).
//! * **empty or expired**: every caller awaits one shared load. The load runs as a task on the
//!   current tokio runtime, so it finishes and fills the cache even if every caller goes away;
//!   without a runtime the callers drive it between them. Its error goes to every waiter; the next call
//!   starts a new load.
//! * **claims**: a request carrying a claims challenge skips the read side and always fetches;
//!   the new token is stored under the key, so later calls get the token that satisfied the
//!   challenge. A plain load that started before the claims fetch and lands after it does not
//!   overwrite that token (its own callers still get the token it loaded).
//! * **a panicking load**: a fetch that panics (while building its future or while running)
//!   becomes an [`Error`] of kind `AuthenticationFailed` for every caller waiting on it, the
//!   key's load is cleared, and the next call starts a new one. No panic leaves
//!   [`TokenCache::get_or_fetch`].
//!
//! # The hit path
//! A fresh token is served without taking a lock, allocating or writing shared memory beyond
//! the token's reference count: the key is hashed once (`FxHash`), found in a read-mostly table
//! (each key's slot is published once and never moved), and the slot's token is read through
//! an atomically swapped pointer (`arc-swap`, whose readers write only per-thread state).
//! Freshness is decided with [`Clock::now_coarse`] against the refresh point less
//! [`COARSE_LAG`]; only a token near its refresh point takes the locked path, which reads the
//! exact [`Clock::now`]. A [`CacheSlot`] (see [`TokenRequest`](crate::TokenRequest)) skips the
//! look-up and the reference count too.
//!
//! The refresh point is the earliest of the token's `refresh_on` and `expires_on` minus a
//! safety margin. The margin is 300 s but never more than half the token's lifetime, so a
//! 4-minute token is still served from cache for 2 minutes. Tokens living 2 h or more without
//! a `refresh_on` from the service get one at half-life, and the returned token carries it.
//!
//! No background task runs at construction, and nothing ties the cache to a runtime: time
//! comes from the injected [`Clock`].

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use futures_util::FutureExt;
use futures_util::future::Shared;
use tracing::Instrument;
use tracing::instrument::WithSubscriber;

use crate::clock::{COARSE_LAG, Clock, system_clock};
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

    fn to_owned_key(self) -> CacheKey {
        CacheKey::new(self.identity, self.scopes, self.tenant, self.cae)
    }

    /// The hash of the key (whose scopes are sorted), as [`CacheKey::hash_value`] computes it.
    fn hash_value(&self) -> u64 {
        key_hash(
            self.identity,
            self.scopes.iter().copied(),
            self.tenant,
            self.cae,
        )
    }
}

impl CacheKey {
    fn hash_value(&self) -> u64 {
        key_hash(
            &self.identity,
            self.scopes.iter().map(|s| &**s),
            self.tenant.as_deref(),
            self.cae,
        )
    }

    /// True if this key is `key` (whose scopes are sorted).
    fn matches(&self, key: &KeyRef<'_>) -> bool {
        *self.identity == *key.identity
            && self.scopes.len() == key.scopes.len()
            && self.scopes.iter().zip(key.scopes).all(|(a, b)| **a == **b)
            && self.tenant.as_deref() == key.tenant
            && self.cae == key.cae
    }
}

/// The hash of a key's parts, computed the same way for owned and borrowed keys.
fn key_hash<'s>(
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
struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
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
struct PrehashedHasher(u64);

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

type SharedFetch = Shared<BoxFuture<'static, Result<AccessToken, Error>>>;

/// A cached token and when it stops being fresh.
pub(crate) struct Cached {
    token: AccessToken,
    refresh_at: SystemTime,
    /// `refresh_at` less [`COARSE_LAG`]: a coarse reading before it is surely fresh.
    fresh_until: SystemTime,
}

impl Cached {
    fn new(token: AccessToken, refresh_at: SystemTime) -> Self {
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
    fn empty() -> Self {
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
struct FastSlot {
    key: CacheKey,
    hash: u64,
    stored: ArcSwap<Cached>,
    /// Bumped after every store, so a holder of a copy can tell it is current with one load.
    version: AtomicU64,
    clock: Arc<dyn Clock>,
}

impl FastSlot {
    fn set(&self, cached: Arc<Cached>) {
        self.stored.store(cached);
        self.version.fetch_add(1, Ordering::Release);
    }

    fn clear(&self) {
        self.set(Arc::new(Cached::empty()));
    }

    fn is_fresh(&self, cached: &Cached) -> bool {
        self.clock.now_coarse() < cached.fresh_until
    }

    fn fresh_token(&self) -> Option<AccessToken> {
        let cached = self.stored.load();
        self.is_fresh(&cached).then(|| cached.token.clone())
    }
}

/// The read side of one cache entry, for callers that ask for the same key again and again:
/// reading it costs no hashing, no look-up and no lock. Get one from
/// [`TokenCache::slot`] or [`TokenCredential::cache_slot`](crate::TokenCredential::cache_slot);
/// [`TokenRequest`](crate::TokenRequest) is the handle built on it.
///
/// `Debug` shows the key, never the token.
#[derive(Clone)]
pub struct CacheSlot(Arc<FastSlot>);

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
const TABLE_SIZE: usize = 64;

/// An open-addressed, insert-only table of slots. Readers probe without a lock; inserts happen
/// under the cache's lock, so each cell is set by one writer at most, once.
struct Table(Box<[OnceLock<Arc<FastSlot>>]>);

impl Table {
    fn new() -> Self {
        Self((0..TABLE_SIZE).map(|_| OnceLock::new()).collect())
    }

    /// The probe sequence for `hash`: every cell once, starting at the hash's own.
    fn probe(&self, hash: u64) -> impl Iterator<Item = &OnceLock<Arc<FastSlot>>> {
        #[allow(clippy::cast_possible_truncation, reason = "only the low bits index")]
        let start = hash as usize % TABLE_SIZE;
        self.0[start..].iter().chain(&self.0[..start])
    }

    /// The slot of `key`, if published. An empty cell ends the search: cells are never
    /// emptied, so a key is always before the first empty cell of its probe sequence.
    fn find(&self, hash: u64, key: &KeyRef<'_>) -> Option<&Arc<FastSlot>> {
        for cell in self.probe(hash) {
            let slot = cell.get()?;
            if slot.hash == hash && slot.key.matches(key) {
                return Some(slot);
            }
        }
        None
    }

    fn find_owned(&self, hash: u64, key: &CacheKey) -> Option<&Arc<FastSlot>> {
        for cell in self.probe(hash) {
            let slot = cell.get()?;
            if slot.hash == hash && slot.key == *key {
                return Some(slot);
            }
        }
        None
    }

    /// Publishes `slot` in the first free cell; a full table leaves it unpublished.
    fn publish(&self, slot: &Arc<FastSlot>) {
        for cell in self.probe(slot.hash) {
            if cell.get().is_none() {
                let _ = cell.set(Arc::clone(slot));
                return;
            }
        }
    }

    fn slots(&self) -> impl Iterator<Item = &Arc<FastSlot>> {
        self.0.iter().filter_map(OnceLock::get)
    }
}

#[derive(Default)]
struct Entry {
    cached: Option<Arc<Cached>>,
    inflight: Option<SharedFetch>,
    generation: u64,
    /// When the last attempt failed: no refresh starts within `retry_delay` of it.
    last_failure: Option<SystemTime>,
    /// Every fetch (load, refresh or claims) takes the next number when it starts.
    tickets: u64,
    /// The ticket of the newest claims fetch whose token was stored: a load with an older
    /// ticket does not overwrite it.
    claims_ticket: u64,
}

struct Slot {
    fast: Arc<FastSlot>,
    entry: Entry,
}

impl Slot {
    fn set_cached(&mut self, cached: Arc<Cached>) {
        self.fast.set(Arc::clone(&cached));
        self.entry.cached = Some(cached);
    }

    fn next_ticket(&mut self) -> u64 {
        self.entry.tickets += 1;
        self.entry.tickets
    }
}

/// Entries by key hash; a bucket holds the (rare) keys whose hashes collide.
type Map = HashMap<u64, Vec<Slot>, BuildHasherDefault<PrehashedHasher>>;

fn find<'m>(map: &'m mut Map, hash: u64, key: &KeyRef<'_>) -> Option<&'m mut Slot> {
    map.get_mut(&hash)?
        .iter_mut()
        .find(|slot| slot.fast.key.matches(key))
}

fn find_owned<'m>(map: &'m mut Map, key: &CacheKey) -> Option<&'m mut Slot> {
    map.get_mut(&key.hash_value())?
        .iter_mut()
        .find(|slot| slot.fast.key == *key)
}

/// Entries beyond this count trigger a sweep of expired, idle entries.
const SWEEP_THRESHOLD: usize = 4096;

struct Inner {
    map: Mutex<Map>,
    table: Table,
    clock: Arc<dyn Clock>,
    policy: RefreshPolicy,
}

/// The error every caller of a panicking load gets.
fn panicked() -> Error {
    Error::authentication_failed(
        "TokenCache",
        "the token load panicked; the next call starts a new one",
    )
}

/// Runs `fetch` and its future, turning a panic in either into [`panicked`].
async fn unwind_safe<F, Fut>(fetch: F) -> Result<AccessToken, Error>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<AccessToken, Error>>,
{
    match std::panic::catch_unwind(AssertUnwindSafe(fetch)) {
        Ok(work) => AssertUnwindSafe(work)
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(panicked())),
        Err(_) => Err(panicked()),
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Map> {
        // A panic while holding the lock cannot leave an entry half-written (every update is a
        // single assignment), so a poisoned map is still consistent.
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The slot of `key`, created (and published in the table when there is room) if absent.
    fn slot_or_default<'m>(&self, map: &'m mut Map, hash: u64, key: CacheKey) -> &'m mut Slot {
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
    fn fresh(&self, hash: u64, key: &KeyRef<'_>) -> Option<AccessToken> {
        self.table.find(hash, key)?.fresh_token()
    }

    fn complete(
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
fn plan(policy: &RefreshPolicy, fetched_at: SystemTime, mut token: AccessToken) -> Cached {
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

enum Action {
    Ready(AccessToken),
    Wait(SharedFetch),
    /// A refresh has started; `fetch` is `Some` when no runtime drives it and the caller must.
    Refresh {
        fetch: Option<SharedFetch>,
        fallback: AccessToken,
    },
}

/// The token cache. Cloning shares the same entries.
///
/// ```
/// # async fn demo() -> Result<(), identity_core::Error> {
/// use std::time::{Duration, SystemTime};
/// use identity_core::AccessToken;
/// use identity_core::cache::{KeyRef, TokenCache};
///
/// let cache = TokenCache::new();
/// let key = KeyRef::new("example/system", &["https://vault.azure.net/.default"], None, false);
/// let token = cache
///     .get_or_fetch(key, false, || async {
///         Ok(AccessToken::new("t", SystemTime::now() + Duration::from_secs(3600)))
///     })
///     .await?;
/// assert_eq!(token.token.secret(), "t");
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct TokenCache {
    inner: Arc<Inner>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field(
                "entries",
                &self.inner.lock().values().map(Vec::len).sum::<usize>(),
            )
            .field("policy", &self.inner.policy)
            .finish()
    }
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenCache {
    /// An empty cache on the system clock with the default [`RefreshPolicy`].
    pub fn new() -> Self {
        Self::with_clock(system_clock())
    }

    /// An empty cache reading time from `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self::with_policy(clock, RefreshPolicy::DEFAULT)
    }

    /// An empty cache with explicit timing rules.
    pub fn with_policy(clock: Arc<dyn Clock>, policy: RefreshPolicy) -> Self {
        Self {
            inner: Arc::new(Inner {
                map: Mutex::new(Map::default()),
                table: Table::new(),
                clock,
                policy,
            }),
        }
    }

    /// The clock the cache reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Returns the cached token for `key`, or runs `fetch` (at most once across concurrent
    /// callers) to get one. See the [module docs](self) for the exact rules. `bypass_read`
    /// (set when the request carries a claims challenge) always fetches.
    ///
    /// `fetch` is called while an internal lock is held: it must only build its future, and
    /// do the work when the future is polled.
    ///
    /// # Errors
    /// The fetch's error when no valid token is cached.
    pub async fn get_or_fetch<F, Fut>(
        &self,
        key: KeyRef<'_>,
        bypass_read: bool,
        fetch: F,
    ) -> Result<AccessToken, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, Error>> + Send + 'static,
    {
        let sorted_scopes;
        let key = if key.scopes.is_sorted() {
            key
        } else {
            let mut scopes = key.scopes.to_vec();
            scopes.sort_unstable();
            sorted_scopes = scopes;
            KeyRef {
                scopes: &sorted_scopes,
                ..key
            }
        };
        let hash = key.hash_value();
        if bypass_read {
            crate::trace::record_cache("bypass");
            // Boxed: a claims fetch is rare, and its future would otherwise make every call's
            // future (moved into the caller's box on each `get_token`) as large as its own.
            return Box::pin(self.bypass(key, hash, fetch)).await;
        }
        if let Some(token) = self.inner.fresh(hash, &key) {
            crate::trace::record_cache("hit");
            return Ok(token);
        }
        match self.decide(key, hash, fetch) {
            Action::Ready(token) => Ok(token),
            Action::Wait(fetch) => fetch.await,
            Action::Refresh {
                fetch: None,
                fallback,
            } => Ok(fallback),
            Action::Refresh {
                fetch: Some(fetch),
                fallback,
            } => match fetch.await {
                Ok(token) => Ok(token),
                Err(e) => {
                    tracing::warn!(target: "identity_core::cache", error = %e, "refresh failed; serving the cached token");
                    Ok(fallback)
                }
            },
        }
    }

    /// A claims fetch: always runs, and its token is stored unless a newer claims token was.
    async fn bypass<F, Fut>(
        &self,
        key: KeyRef<'_>,
        hash: u64,
        fetch: F,
    ) -> Result<AccessToken, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, Error>> + Send + 'static,
    {
        let owned = key.to_owned_key();
        let ticket = self
            .inner
            .slot_or_default(&mut self.inner.lock(), hash, owned.clone())
            .next_ticket();
        let token = unwind_safe(fetch).await?;
        let now = self.inner.clock.now();
        let cached = plan(&self.inner.policy, now, token);
        let token = cached.token.clone();
        let mut map = self.inner.lock();
        let slot = self.inner.slot_or_default(&mut map, hash, owned);
        if ticket >= slot.entry.claims_ticket {
            slot.entry.claims_ticket = ticket;
            slot.set_cached(Arc::new(cached));
            slot.entry.last_failure = None;
        }
        Ok(token)
    }

    /// The cached token for `key` if it is fresh: no lock, no allocation (unless the scopes
    /// are unsorted), no I/O. `None` when there is none, when it is near its refresh point
    /// (then [`get_or_fetch`](Self::get_or_fetch) decides), and always when
    /// [`trace::span_enabled`](crate::trace::span_enabled), so that a traced call records its
    /// cache outcome. A synchronous fast path for a `get_token` to check before it boxes.
    pub fn fresh(&self, key: KeyRef<'_>) -> Option<AccessToken> {
        if crate::trace::span_enabled() {
            return None;
        }
        if key.scopes.is_sorted() {
            self.inner.fresh(key.hash_value(), &key)
        } else {
            let mut scopes = key.scopes.to_vec();
            scopes.sort_unstable();
            let key = KeyRef {
                scopes: &scopes,
                ..key
            };
            self.inner.fresh(key.hash_value(), &key)
        }
    }

    /// The lock-free read side of `key`'s entry, created if absent. A handle for callers that
    /// ask for the same key again and again; see [`CacheSlot`].
    pub fn slot(&self, key: KeyRef<'_>) -> CacheSlot {
        let owned = key.to_owned_key();
        let hash = owned.hash_value();
        CacheSlot(Arc::clone(
            &self
                .inner
                .slot_or_default(&mut self.inner.lock(), hash, owned)
                .fast,
        ))
    }

    fn decide<F, Fut>(&self, key: KeyRef<'_>, hash: u64, fetch: F) -> Action
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, Error>> + Send + 'static,
    {
        let now = self.inner.clock.now();
        let mut map = self.inner.lock();
        let slot = if let Some(slot) = find(&mut map, hash, &key) {
            let entry = &mut slot.entry;
            if let Some(cached) = &entry.cached {
                if now < cached.refresh_at {
                    crate::trace::record_cache("hit");
                    return Action::Ready(cached.token.clone());
                }
                if now < cached.token.expires_on {
                    let fallback = cached.token.clone();
                    let recently = entry
                        .last_failure
                        .is_some_and(|t| now < t + self.inner.policy.retry_delay);
                    if entry.inflight.is_some() || recently {
                        crate::trace::record_cache("hit");
                        return Action::Ready(fallback);
                    }
                    crate::trace::record_cache("refresh");
                    let (fetch, driven) = self.start(slot, key.to_owned_key(), true, fetch);
                    tracing::debug!(target: "identity_core::cache", identity = key.identity, "refreshing ahead of expiry");
                    return Action::Refresh {
                        fetch: (!driven).then_some(fetch),
                        fallback,
                    };
                }
            }
            if let Some(inflight) = &entry.inflight {
                crate::trace::record_cache("joined");
                return Action::Wait(inflight.clone());
            }
            slot
        } else {
            if map.len() >= SWEEP_THRESHOLD {
                map.retain(|_, bucket| {
                    bucket.retain(|slot| {
                        let e = &slot.entry;
                        let keep = e.inflight.is_some()
                            || e.cached.as_ref().is_some_and(|c| now < c.token.expires_on);
                        if !keep {
                            slot.fast.clear();
                        }
                        keep
                    });
                    !bucket.is_empty()
                });
            }
            self.inner
                .slot_or_default(&mut map, hash, key.to_owned_key())
        };
        crate::trace::record_cache("fetch");
        tracing::debug!(target: "identity_core::cache", identity = key.identity, "no valid token cached; fetching");
        Action::Wait(self.start(slot, key.to_owned_key(), false, fetch).0)
    }

    /// Starts a load and records it as the key's flight. With a tokio runtime the load is also
    /// spawned, so it completes (and fills the cache) even if every caller gives up; the
    /// returned flag says so.
    fn start<F, Fut>(
        &self,
        slot: &mut Slot,
        key: CacheKey,
        refresh: bool,
        fetch: F,
    ) -> (SharedFetch, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, Error>> + Send + 'static,
    {
        let ticket = slot.next_ticket();
        let entry = &mut slot.entry;
        entry.generation += 1;
        let generation = entry.generation;
        let inner: Weak<Inner> = Arc::downgrade(&self.inner);
        let policy = self.inner.policy;
        let clock = self.inner.clock.clone();
        // A load runs inside the caller's `get_token` span, so its events nest there; a
        // refresh outlives the call that started it, so it gets a span of its own that only
        // follows from that call. The subscriber travels with the future, because the spawned
        // task may run on another thread than the caller's scoped subscriber.
        let span = if refresh {
            let span = tracing::debug_span!(target: "identity_core::trace", "token_refresh", identity = key.identity());
            span.follows_from(tracing::Span::current());
            span
        } else {
            tracing::Span::current()
        };
        // `fetch` only builds its future (it runs under the lock); a panic there or in the
        // future becomes every waiter's error, and `complete` clears the flight.
        let work = std::panic::catch_unwind(AssertUnwindSafe(fetch)).ok();
        let shared = async move {
            let result = match work {
                Some(work) => AssertUnwindSafe(work)
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Err(panicked())),
                None => Err(panicked()),
            };
            match inner.upgrade() {
                Some(inner) => inner.complete(&key, generation, ticket, result),
                None => result.map(|t| plan(&policy, clock.now(), t).token),
            }
        }
        .instrument(span.clone())
        .with_current_subscriber()
        .boxed()
        .shared();
        entry.inflight = Some(shared.clone());
        let driven = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let driver = shared.clone();
                runtime.spawn(
                    async move {
                        // A failed refresh is invisible to callers, who keep the valid token, so it
                        // is logged here; a failed load reaches its callers (and their spans).
                        if let Err(e) = driver.await {
                            if refresh {
                                tracing::warn!(target: "identity_core::cache", error = %e, "refresh failed; serving the cached token");
                            }
                        }
                    }
                    .instrument(span)
                    .with_current_subscriber(),
                );
                true
            }
            Err(_) => false,
        };
        (shared, driven)
    }

    /// Stores a token under `key` (claims results, or tokens loaded from persistence) and
    /// returns it with its computed `refresh_on`.
    pub fn insert(&self, key: CacheKey, token: AccessToken) -> AccessToken {
        let now = self.inner.clock.now();
        let cached = plan(&self.inner.policy, now, token);
        let token = cached.token.clone();
        let hash = key.hash_value();
        self.inner
            .slot_or_default(&mut self.inner.lock(), hash, key)
            .set_cached(Arc::new(cached));
        token
    }

    /// The unexpired tokens, for persisting the cache.
    pub fn export(&self) -> Vec<(CacheKey, AccessToken)> {
        let now = self.inner.clock.now();
        self.inner
            .lock()
            .values()
            .flatten()
            .filter_map(|slot| {
                let c = slot.entry.cached.as_ref()?;
                (now < c.token.expires_on).then(|| (slot.fast.key.clone(), c.token.clone()))
            })
            .collect()
    }

    /// Removes every entry.
    pub fn clear(&self) {
        let mut map = self.inner.lock();
        map.clear();
        for slot in self.inner.table.slots() {
            slot.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::FakeClock;

    const SCOPE: &[&str] = &["https://vault.azure.net/.default"];

    #[test]
    fn a_fresh_hit_takes_no_lock() {
        let clock = FakeClock::at_2030();
        let cache = TokenCache::with_clock(clock.shared());
        cache.insert(
            CacheKey::new("id", SCOPE, None, false),
            AccessToken::new("T", clock.now() + Duration::from_secs(3600)),
        );
        let held = cache.inner.lock();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = cache.clone();
        std::thread::spawn(move || {
            let hit = reader
                .get_or_fetch(KeyRef::new("id", SCOPE, None, false), false, || async {
                    Err(Error::transport("Test", "not called"))
                })
                .now_or_never()
                .and_then(Result::ok)
                .map(|t| t.token.secret().to_owned());
            let _ = tx.send(hit);
        });
        // Bounded: if the hit took the lock it would wait for it, and this would time out.
        let hit = rx.recv_timeout(Duration::from_secs(10));
        drop(held);
        assert_eq!(
            hit.expect("the hit returned while the lock was held")
                .as_deref(),
            Some("T")
        );
    }

    #[test]
    fn keys_beyond_the_table_are_still_cached_and_served() {
        let clock = FakeClock::at_2030();
        let cache = TokenCache::with_clock(clock.shared());
        let ids: Vec<String> = (0..TABLE_SIZE * 2).map(|i| format!("id{i}")).collect();
        for round in 0..2 {
            for id in &ids {
                let expires = clock.now() + Duration::from_secs(3600);
                let name = id.clone();
                let t = cache
                    .get_or_fetch(KeyRef::new(id, SCOPE, None, false), false, move || {
                        assert_eq!(round, 0, "fetched once per key");
                        async move { Ok(AccessToken::new(name, expires)) }
                    })
                    .now_or_never()
                    .expect("ready")
                    .expect("token");
                assert_eq!(t.token.secret(), id);
            }
        }
        assert_eq!(cache.inner.table.slots().count(), TABLE_SIZE);
        // A slot outside the table still follows its key.
        let last = cache.slot(KeyRef::new(&ids[ids.len() - 1], SCOPE, None, false));
        assert_eq!(
            last.fresh_token().expect("fresh").token.secret(),
            ids[ids.len() - 1]
        );
    }
}
