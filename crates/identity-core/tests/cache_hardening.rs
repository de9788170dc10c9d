//! The cache under faults and the prepared-request read path: a panicking load, a plain load
//! racing a claims fetch, and `TokenRequest` against a cached credential. Orderings are forced
//! with gates, never with sleeps.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed expectation is a failed test"
)]

use std::time::Duration;

use identity_core::cache::TokenCache;
use identity_core::test_util::FakeClock;
use identity_core::{
    AccessToken, Clock, Error, ErrorKind, TokenCredential, TokenRequest, TokenRequestOptions,
    TokenType,
};
use tokio::sync::oneshot;

mod common;
use common::{Cached, HOUR, SCOPE, bounded, key, token};

/// Polls `fut` once, so that it has made its decision (started or joined a flight).
async fn poll_once<F: Future + Unpin>(fut: &mut F) {
    std::future::poll_fn(|cx| {
        let _ = std::pin::Pin::new(&mut *fut).poll(cx);
        std::task::Poll::Ready(())
    })
    .await;
}

#[tokio::test]
async fn a_panicking_load_fails_every_waiter_clears_the_key_and_the_next_call_fetches() {
    let clock = FakeClock::at_2030();
    let cache = TokenCache::with_clock(clock.shared());
    let (release, gate) = oneshot::channel::<()>();
    let mut leader = Box::pin(cache.get_or_fetch(key(), false, || async move {
        gate.await.ok();
        panic!("the source blew up");
    }));
    poll_once(&mut leader).await;
    let mut follower =
        Box::pin(cache.get_or_fetch(key(), false, || async { panic!("joins the flight") }));
    poll_once(&mut follower).await;
    release.send(()).unwrap();
    for err in [
        bounded(leader).await.unwrap_err(),
        bounded(follower).await.unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
        assert!(err.to_string().contains("panicked"), "{err}");
    }
    let c = clock.clone();
    let t =
        bounded(cache.get_or_fetch(key(), false, move || async move { Ok(token(&c, "AFTER")) }))
            .await
            .unwrap();
    assert_eq!(t.token.secret(), "AFTER");
}

#[tokio::test]
async fn a_fetch_that_panics_while_building_its_future_is_an_error_too() {
    let clock = FakeClock::at_2030();
    let cache = TokenCache::with_clock(clock.shared());
    let err = cache
        .get_or_fetch(
            key(),
            false,
            || -> std::future::Ready<Result<AccessToken, Error>> { panic!("no future for you") },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
    // A claims fetch too.
    let err = cache
        .get_or_fetch(key(), true, || async { panic!("claims blew up") })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
    let c = clock.clone();
    let t = cache
        .get_or_fetch(key(), false, move || async move { Ok(token(&c, "OK")) })
        .await
        .unwrap();
    assert_eq!(t.token.secret(), "OK");
}

#[test]
fn without_a_runtime_a_panicking_load_is_an_error_and_the_next_call_fetches() {
    let clock = FakeClock::at_2030();
    let cache = TokenCache::with_clock(clock.shared());
    use futures_util::FutureExt as _;
    let err = (cache.get_or_fetch(key(), false, || async { panic!("boom") }))
        .now_or_never()
        .expect("ready")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
    let c = clock.clone();
    let t = (cache.get_or_fetch(key(), false, move || async move { Ok(token(&c, "OK")) }))
        .now_or_never()
        .expect("ready")
        .unwrap();
    assert_eq!(t.token.secret(), "OK");
}

#[tokio::test]
async fn a_plain_load_started_before_a_claims_fetch_does_not_overwrite_its_token() {
    let clock = FakeClock::at_2030();
    let cache = TokenCache::with_clock(clock.shared());
    let (release, gate) = oneshot::channel::<()>();
    let c = clock.clone();
    let mut plain = Box::pin(cache.get_or_fetch(key(), false, move || async move {
        gate.await.ok();
        Ok(token(&c, "PLAIN"))
    }));
    poll_once(&mut plain).await;
    let c = clock.clone();
    let challenged = cache
        .get_or_fetch(
            key(),
            true,
            move || async move { Ok(token(&c, "CHALLENGED")) },
        )
        .await
        .unwrap();
    assert_eq!(challenged.token.secret(), "CHALLENGED");
    release.send(()).unwrap();
    // The plain load's own caller gets what it loaded...
    assert_eq!(bounded(plain).await.unwrap().token.secret(), "PLAIN");
    // ...and the cache keeps the token that satisfied the challenge.
    let t = cache
        .get_or_fetch(key(), false, || async { panic!("cached") })
        .await
        .unwrap();
    assert_eq!(t.token.secret(), "CHALLENGED");
}

#[tokio::test]
async fn a_claims_fetch_started_before_a_plain_load_still_stores_its_token() {
    // The cache is empty: the claims fetch starts, then a plain load starts and lands first.
    let clock = FakeClock::at_2030();
    let cache = TokenCache::with_clock(clock.shared());
    let (release, gate) = oneshot::channel::<()>();
    let c = clock.clone();
    let mut claims = Box::pin(cache.get_or_fetch(key(), true, move || async move {
        gate.await.ok();
        Ok(token(&c, "CHALLENGED"))
    }));
    poll_once(&mut claims).await;
    let c = clock.clone();
    let plain = cache
        .get_or_fetch(key(), false, move || async move { Ok(token(&c, "PLAIN")) })
        .await
        .unwrap();
    assert_eq!(plain.token.secret(), "PLAIN");
    release.send(()).unwrap();
    assert_eq!(bounded(claims).await.unwrap().token.secret(), "CHALLENGED");
    let t = cache
        .get_or_fetch(key(), false, || async { panic!("cached") })
        .await
        .unwrap();
    assert_eq!(t.token.secret(), "CHALLENGED");
}

#[tokio::test]
async fn a_prepared_request_reads_the_cache_and_follows_its_changes() {
    let clock = FakeClock::at_2030();
    let credential = Cached::new(&clock);
    let mut request = TokenRequest::new(credential.clone(), SCOPE, TokenRequestOptions::default());
    assert!(request.cached().is_none(), "nothing cached yet");
    assert_eq!(request.token().await.unwrap().token.secret(), "T1");
    for _ in 0..100 {
        assert_eq!(request.cached().unwrap().token.secret(), "T1");
        assert_eq!(request.token().await.unwrap().token.secret(), "T1");
    }
    assert_eq!(credential.fetches(), 1);
    assert_eq!(request.cached().unwrap().token_type(), TokenType::Bearer);

    // A clone is independent, and reads the same entry.
    let mut other = request.clone();
    assert_eq!(other.cached().unwrap().token.secret(), "T1");

    // Another caller replaces the token (a claims challenge): the request sees it at once.
    let claims = TokenRequestOptions::default().claims("{\"x\":1}");
    let t = credential.get_token(SCOPE, &claims).await.unwrap();
    assert_eq!(t.token.secret(), "T2");
    assert_eq!(request.cached().unwrap().token.secret(), "T2");

    // Past the refresh point the request goes to the credential, which refreshes ahead.
    clock.advance(HOUR - Duration::from_secs(200));
    assert!(request.cached().is_none());
    assert_eq!(request.token().await.unwrap().token.secret(), "T2");
    bounded(async {
        while credential.fetches() < 3 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let t = bounded(async {
        loop {
            if let Some(t) = other.cached() {
                break t.clone();
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(t.token.secret(), "T3");

    // A cleared cache is seen too.
    credential.cache.clear();
    assert!(request.cached().is_none());
}

#[tokio::test]
async fn a_prepared_request_with_claims_always_asks_the_credential() {
    let clock = FakeClock::at_2030();
    let credential = Cached::new(&clock);
    let claims = TokenRequestOptions::default().claims("{\"x\":1}");
    let mut request = TokenRequest::new(credential.clone(), SCOPE, claims);
    for n in 1..=3 {
        assert!(request.cached().is_none());
        assert_eq!(
            request.token().await.unwrap().token.secret(),
            format!("T{n}")
        );
    }
    assert_eq!(credential.fetches(), 3);
}

#[test]
fn a_slot_shows_its_key_but_never_the_token() {
    let clock = FakeClock::at_2030();
    let cache = TokenCache::with_clock(clock.shared());
    cache.insert(
        identity_core::cache::CacheKey::new("id", SCOPE, None, false),
        AccessToken::new("planted-secret-token", clock.now() + HOUR),
    );
    let slot = cache.slot(key());
    assert_eq!(
        slot.fresh_token().unwrap().token.secret(),
        "planted-secret-token"
    );
    let text = format!("{slot:?}");
    assert!(!text.contains("planted"), "{text}");
    assert!(text.contains("vault.azure.net"), "{text}");
}
