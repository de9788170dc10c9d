//! Fetch coordination: what a call does when the hit path misses (serve, refresh ahead,
//! join or start a single-flight load), the claims fetch that bypasses the read side, and
//! panics turned into errors.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Weak};

use futures_util::FutureExt;
use tracing::Instrument;
use tracing::instrument::WithSubscriber;

use super::TokenCache;
use super::entry::{Inner, SWEEP_THRESHOLD, SharedFetch, Slot, find, plan};
use super::key::{CacheKey, KeyRef};
use crate::{AccessToken, Error};

pub(super) enum Action {
    Ready(AccessToken),
    Wait(SharedFetch),
    /// A refresh has started; `fetch` is `Some` when no runtime drives it and the caller must.
    Refresh {
        fetch: Option<SharedFetch>,
        fallback: AccessToken,
    },
}

/// The error every caller of a panicking load gets.
pub(super) fn panicked() -> Error {
    Error::authentication_failed(
        "TokenCache",
        "the token load panicked; the next call starts a new one",
    )
}

/// Runs `fetch` and its future, turning a panic in either into [`panicked`].
pub(super) async fn unwind_safe<F, Fut>(fetch: F) -> Result<AccessToken, Error>
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

impl TokenCache {
    /// What [`get_or_fetch`](TokenCache::get_or_fetch) does; the flag is true when the call
    /// started a refresh that runs on without it (the token is the cached one).
    pub(super) async fn serve<F, Fut>(
        &self,
        key: KeyRef<'_>,
        bypass_read: bool,
        fetch: F,
    ) -> Result<(AccessToken, bool), Error>
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
            return Box::pin(self.bypass(key, hash, fetch))
                .await
                .map(|token| (token, false));
        }
        if let Some(token) = self.inner.fresh(hash, &key) {
            crate::trace::record_cache("hit");
            return Ok((token, false));
        }
        let token = match self.decide(key, hash, fetch) {
            Action::Ready(token) => Ok(token),
            Action::Wait(fetch) => fetch.await,
            Action::Refresh {
                fetch: None,
                fallback,
            } => return Ok((fallback, true)),
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
        };
        token.map(|token| (token, false))
    }

    /// A claims fetch: always runs, and its token is stored unless a newer claims token was.
    pub(super) async fn bypass<F, Fut>(
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

    pub(super) fn decide<F, Fut>(&self, key: KeyRef<'_>, hash: u64, fetch: F) -> Action
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
    pub(super) fn start<F, Fut>(
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
        // A load keeps the deadline of the caller that started it (only for its retry waits:
        // see `crate::deadline`); a refresh outlives its caller.
        let work = work.map(|work| {
            if refresh {
                futures_util::future::Either::Right(work)
            } else {
                crate::deadline::carry(work)
            }
        });
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
}
