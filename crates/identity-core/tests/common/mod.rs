//! What the cache's test binaries share: a credential over a `TokenCache` with a cache slot,
//! and the key, token and time bound they use.

#![allow(
    dead_code,
    reason = "each test binary includes this module and uses a part of it"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use identity_core::cache::{CacheSlot, KeyRef, TokenCache};
use identity_core::test_util::FakeClock;
use identity_core::{AccessToken, BoxFuture, Clock, Error, TokenCredential, TokenRequestOptions};

pub(crate) const SCOPE: &[&str] = &["https://vault.azure.net/.default"];
pub(crate) const HOUR: Duration = Duration::from_secs(3600);
pub(crate) const BOUND: Duration = Duration::from_secs(10);

pub(crate) fn key() -> KeyRef<'static> {
    KeyRef::new("id", SCOPE, None, false)
}

pub(crate) fn token(clock: &FakeClock, name: &str) -> AccessToken {
    AccessToken::new(name, clock.now() + HOUR)
}

/// Runs `f` within [`BOUND`].
pub(crate) async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, f)
        .await
        .expect("the operation did not finish in time")
}

/// A credential over a `TokenCache`, counting its fetches, with a cache slot.
#[derive(Debug)]
pub(crate) struct Cached {
    pub(crate) cache: TokenCache,
    clock: FakeClock,
    fetches: AtomicUsize,
}

impl Cached {
    pub(crate) fn new(clock: &FakeClock) -> Arc<Self> {
        Arc::new(Self {
            cache: TokenCache::with_clock(clock.shared()),
            clock: clock.clone(),
            fetches: AtomicUsize::new(0),
        })
    }

    pub(crate) fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl TokenCredential for Cached {
    fn get_token<'a>(
        &'a self,
        scopes: &'a [&'a str],
        options: &'a TokenRequestOptions,
    ) -> BoxFuture<'a, Result<AccessToken, Error>> {
        Box::pin(identity_core::trace::traced("Cached", "unit", async move {
            let key = KeyRef::new("cached", scopes, None, false);
            let claims = options.claims_challenge().is_some();
            self.cache
                .get_or_fetch(key, claims, || {
                    let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
                    let t = token(&self.clock, &format!("T{n}"));
                    async move { Ok(t) }
                })
                .await
        }))
    }

    fn cache_slot(&self, scopes: &[&str], options: &TokenRequestOptions) -> Option<CacheSlot> {
        if options.claims_challenge().is_some() {
            return None;
        }
        Some(self.cache.slot(KeyRef::new("cached", scopes, None, false)))
    }
}
