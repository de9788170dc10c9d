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
//! [`COARSE_LAG`](crate::COARSE_LAG); only a token near its refresh point takes the locked
//! path, which reads the exact [`Clock::now`]. A [`CacheSlot`] (see [`TokenRequest`](crate::TokenRequest)) skips the
//! look-up and the reference count too.
//!
//! The refresh point is the earliest of the token's `refresh_on` and `expires_on` minus a
//! safety margin. The margin is 300 s but never more than half the token's lifetime, so a
//! 4-minute token is still served from cache for 2 minutes. Tokens living 2 h or more without
//! a `refresh_on` from the service get one at half-life, and the returned token carries it.
//!
//! No background task runs at construction, and nothing ties the cache to a runtime: time
//! comes from the injected [`Clock`].

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::clock::{Clock, system_clock};
use crate::{AccessToken, Error};

mod entry;
mod flight;
mod key;
mod slot;

pub use key::{CacheKey, KeyRef};
pub use slot::CacheSlot;
pub(crate) use slot::Cached;

pub use entry::RefreshPolicy;

use entry::{Inner, Map, plan};
use slot::Table;

/// The token cache. Cloning shares the same entries.
///
/// ```
/// # async fn demo() -> Result<(), identity_chain::Error> {
/// use std::time::{Duration, SystemTime};
/// use identity_chain::AccessToken;
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
        self.serve(key, bypass_read, fetch)
            .await
            .map(|(token, _)| token)
    }

    /// [`get_or_fetch`](Self::get_or_fetch), with a value of the caller's own beside the
    /// token: `fetch` returns `(token, extra)` and the call returns `(token, Some(extra))`
    /// when this call's fetch ran and this call waited for it, so a caller learns that it
    /// fetched and keeps what the fetch learned (for example the service's full response).
    ///
    /// The extra value is `None` for a cache hit, for a call that joined another caller's
    /// load, and for a call that started a refresh ahead of expiry which a tokio runtime runs
    /// on its own (that call returns the cached token at once; the refresh's extra value is
    /// dropped). A call that drives its refresh itself (no runtime) gets `Some` when the
    /// refresh succeeds and `None` with the cached token when it fails. A claims fetch
    /// (`bypass_read`) always runs, so it gets `Some` on success. A hit allocates nothing.
    ///
    /// # Errors
    /// As [`get_or_fetch`](Self::get_or_fetch).
    pub async fn get_or_fetch_with<T, F, Fut>(
        &self,
        key: KeyRef<'_>,
        bypass_read: bool,
        fetch: F,
    ) -> Result<(AccessToken, Option<T>), Error>
    where
        T: Send + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(AccessToken, T), Error>> + Send + 'static,
    {
        // Allocated only when this call's fetch is built, never on a hit.
        let mut handed: Option<Arc<Mutex<Option<T>>>> = None;
        let (token, detached) = self
            .serve(key, bypass_read, || {
                let cell = Arc::new(Mutex::new(None));
                handed = Some(Arc::clone(&cell));
                let work = fetch();
                async move {
                    let (token, extra) = work.await?;
                    *cell
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(extra);
                    Ok(token)
                }
            })
            .await?;
        if detached {
            return Ok((token, None));
        }
        let extra = handed.and_then(|cell| {
            cell.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
        });
        Ok((token, extra))
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
    use super::slot::TABLE_SIZE;
    use super::*;
    use crate::test_util::FakeClock;
    use futures_util::FutureExt;
    use std::time::Duration;

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
