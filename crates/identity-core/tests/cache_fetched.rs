//! `TokenCache::get_or_fetch_with`: the caller whose fetch ran gets the fetch's extra value;
//! hits, joiners and a refresh left to the runtime get `None`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed expectation is a failed test"
)]

use std::sync::Arc;
use std::time::Duration;

use identity_core::cache::{KeyRef, TokenCache};
use identity_core::test_util::FakeClock;
use identity_core::{AccessToken, Error, ErrorKind};
use tokio::sync::Notify;

mod common;
use common::{HOUR, SCOPE, bounded, key, token};

/// A fetch that must not run: its error would fail the test.
async fn not_called<T>() -> Result<(AccessToken, T), Error> {
    Err(Error::transport("Test", "a hit or a joiner does not fetch"))
}

#[tokio::test]
async fn the_fetching_caller_gets_its_value_and_a_hit_gets_none() {
    let clock = FakeClock::at_2030();
    let cache = TokenCache::with_clock(clock.shared());
    let c = clock.clone();
    let (t, extra) = bounded(cache.get_or_fetch_with(key(), false, move || async move {
        Ok((token(&c, "T1"), "response-1"))
    }))
    .await
    .unwrap();
    assert_eq!((t.token.secret(), extra), ("T1", Some("response-1")));

    let (t, extra) = bounded(cache.get_or_fetch_with(key(), false, not_called::<&str>))
        .await
        .unwrap();
    assert_eq!((t.token.secret(), extra), ("T1", None));

    // A claims fetch always runs, and hands its value back.
    let c = clock.clone();
    let (t, extra) = bounded(cache.get_or_fetch_with(key(), true, move || async move {
        Ok((token(&c, "T2"), "response-2"))
    }))
    .await
    .unwrap();
    assert_eq!((t.token.secret(), extra), ("T2", Some("response-2")));
}

#[tokio::test]
async fn a_joiner_gets_the_token_but_not_the_value() {
    let clock = FakeClock::at_2030();
    let cache = TokenCache::with_clock(clock.shared());
    let release = Arc::new(Notify::new());
    let (r, c) = (release.clone(), clock.clone());
    let leader = tokio::spawn({
        let cache = cache.clone();
        async move {
            cache
                .get_or_fetch_with(key(), false, move || async move {
                    r.notified().await;
                    Ok((token(&c, "T"), 7_u32))
                })
                .await
        }
    });
    // Let the leader start its flight, then join it.
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    let joined = tokio::spawn({
        let cache = cache.clone();
        async move { bounded(cache.get_or_fetch_with(key(), false, not_called::<u32>)).await }
    });
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    release.notify_one();
    let (t, extra) = bounded(leader).await.unwrap().unwrap();
    assert_eq!((t.token.secret(), extra), ("T", Some(7)));
    let (t, extra) = bounded(joined).await.unwrap().unwrap();
    assert_eq!((t.token.secret(), extra), ("T", None));
}

#[tokio::test]
async fn a_refresh_left_to_the_runtime_hands_nothing_back_and_an_error_is_an_error() {
    let clock = FakeClock::at_2030();
    let cache = TokenCache::with_clock(clock.shared());
    let c = clock.clone();
    bounded(cache.get_or_fetch_with(
        key(),
        false,
        move || async move { Ok((token(&c, "OLD"), ())) },
    ))
    .await
    .unwrap();
    clock.advance(HOUR - Duration::from_secs(100));
    let c = clock.clone();
    let (t, extra) = bounded(cache.get_or_fetch_with(key(), false, move || async move {
        Ok((token(&c, "NEW"), "refreshed"))
    }))
    .await
    .unwrap();
    assert_eq!((t.token.secret(), extra), ("OLD", None));

    let err = bounded(cache.get_or_fetch_with(
        KeyRef::new("other", SCOPE, None, false),
        false,
        || async { Err::<(AccessToken, ()), _>(Error::unavailable("Test", "down")) },
    ))
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
}

fn run<F: Future>(fut: F) -> F::Output {
    futures_util::FutureExt::now_or_never(fut).expect("ready without a runtime")
}

#[test]
fn without_a_runtime_the_refreshing_caller_gets_its_value() {
    let clock = FakeClock::at_2030();
    let cache = TokenCache::with_clock(clock.shared());
    let c = clock.clone();
    run(cache.get_or_fetch_with(
        key(),
        false,
        move || async move { Ok((token(&c, "OLD"), 1)) },
    ))
    .unwrap();
    clock.advance(HOUR - Duration::from_secs(100));
    let c = clock.clone();
    let (t, extra) =
        run(cache.get_or_fetch_with(
            key(),
            false,
            move || async move { Ok((token(&c, "NEW"), 2)) },
        ))
        .unwrap();
    assert_eq!((t.token.secret(), extra), ("NEW", Some(2)));
}
