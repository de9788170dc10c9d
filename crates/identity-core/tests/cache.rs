//! The token cache's contract (docs/protocol.md §3.5), walked with an injected clock.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed expectation is a failed test"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use identity_core::cache::{KeyRef, TokenCache};
use identity_core::test_util::FakeClock;
use identity_core::{AccessToken, Error, ErrorKind};
use tokio::sync::{Barrier, Notify, oneshot};

const SCOPE: &[&str] = &["https://vault.azure.net/.default"];
const BOUND: Duration = Duration::from_secs(10);

fn key(identity: &str) -> KeyRef<'_> {
    KeyRef::new(identity, SCOPE, None, false)
}

fn token(clock: &FakeClock, name: &str, lifetime: Duration) -> AccessToken {
    use identity_core::Clock;
    AccessToken::new(name, clock.now() + lifetime)
}

async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, f)
        .await
        .expect("the operation did not finish in time")
}

const HOUR: Duration = Duration::from_secs(3600);

/// Polls `fut` once and counts that first poll once it has returned, so a test knows the call
/// has made its decision (joined or started the flight) before the flight is allowed to land.
async fn counted<F: Future>(fut: F, polled: Arc<AtomicUsize>) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut first = true;
    std::future::poll_fn(|cx| {
        let r = fut.as_mut().poll(cx);
        if first {
            first = false;
            polled.fetch_add(1, Ordering::SeqCst);
        }
        r
    })
    .await
}

async fn wait_for(counter: &AtomicUsize, n: usize) {
    bounded(async {
        while counter.load(Ordering::SeqCst) < n {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_callers_on_a_cold_key_cause_exactly_one_fetch() {
    let clock = FakeClock::at_2030();
    let cache = TokenCache::with_clock(clock.shared());
    let fetches = Arc::new(AtomicUsize::new(0));
    let polled = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (cache, clock, fetches, gate) =
            (cache.clone(), clock.clone(), fetches.clone(), gate.clone());
        let call = async move {
            cache
                .get_or_fetch(key("id"), false, || async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    let _permit = gate.acquire().await;
                    Ok(token(&clock, "T1", HOUR))
                })
                .await
        };
        tasks.push(tokio::spawn(counted(call, polled.clone())));
    }
    wait_for(&polled, 1000).await;
    gate.add_permits(1);
    for task in tasks {
        let t = bounded(task).await.unwrap().unwrap();
        assert_eq!(t.token.secret(), "T1");
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn concurrent_callers_on_a_cold_key_all_get_the_single_error() {
    let clock = FakeClock::at_2030();
    let cache = TokenCache::with_clock(clock.shared());
    let fetches = Arc::new(AtomicUsize::new(0));
    let polled = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (cache, fetches, gate) = (cache.clone(), fetches.clone(), gate.clone());
            let call = async move {
                cache
                    .get_or_fetch(key("id"), false, move || async move {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        let _permit = gate.acquire().await;
                        Err::<AccessToken, _>(Error::authentication_failed("Test", "refused"))
                    })
                    .await
            };
            tokio::spawn(counted(call, polled.clone()))
        })
        .collect();
    wait_for(&polled, 20).await;
    gate.add_permits(1);
    for task in tasks {
        let err = bounded(task).await.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn two_keys_are_fetched_concurrently_not_one_after_the_other() {
    // Each fetch waits until the other has started: if one key's fetch blocked the other,
    // neither could finish and the bounded wait would fail.
    let clock = FakeClock::at_2030();
    let cache = TokenCache::with_clock(clock.shared());
    let both_started = Arc::new(Barrier::new(2));
    let fetch = |name: &'static str| {
        let (b, c) = (both_started.clone(), clock.clone());
        move || async move {
            b.wait().await;
            Ok(token(&c, name, HOUR))
        }
    };
    let (a, b) = bounded(async {
        tokio::join!(
            cache.get_or_fetch(key("a"), false, fetch("A")),
            cache.get_or_fetch(key("b"), false, fetch("B"))
        )
    })
    .await;
    assert_eq!(a.unwrap().token.secret(), "A");
    assert_eq!(b.unwrap().token.secret(), "B");
}

#[tokio::test]
async fn a_cached_read_of_one_key_returns_while_another_key_is_being_fetched() {
    let clock = FakeClock::at_2030();
    let cache = TokenCache::with_clock(clock.shared());
    let c = clock.clone();
    cache
        .get_or_fetch(
            key("a"),
            false,
            move || async move { Ok(token(&c, "A", HOUR)) },
        )
        .await
        .unwrap();

    let (release_b, gate) = oneshot::channel::<()>();
    let c = clock.clone();
    let slow = tokio::spawn({
        let cache = cache.clone();
        async move {
            cache
                .get_or_fetch(key("b"), false, move || async move {
                    gate.await.ok();
                    Ok(token(&c, "B", HOUR))
                })
                .await
        }
    });
    tokio::task::yield_now().await;
    // B is in flight and cannot finish until released; A must still be served.
    let a = bounded(cache.get_or_fetch(key("a"), false, || async { panic!("A is cached") }))
        .await
        .unwrap();
    assert_eq!(a.token.secret(), "A");
    assert!(!slow.is_finished());
    release_b.send(()).unwrap();
    assert_eq!(bounded(slow).await.unwrap().unwrap().token.secret(), "B");
}

#[tokio::test]
async fn a_stale_but_valid_token_causes_one_refresh_while_every_caller_is_served_at_once() {
    let clock = FakeClock::at_2030();
    let cache = TokenCache::with_clock(clock.shared());
    let fetches = Arc::new(AtomicUsize::new(0));
    let c = clock.clone();
    let first = cache
        .get_or_fetch(key("id"), false, move || async move {
            Ok(token(&c, "OLD", 24 * HOUR))
        })
        .await
        .unwrap();
    // A 24 h token is refreshed at half-life, and the returned token says so.
    assert_eq!(first.refresh_on, Some(first.expires_on - 12 * HOUR));

    clock.advance(12 * HOUR + Duration::from_secs(10));
    let release = Arc::new(Notify::new());
    let mut served = Vec::new();
    for _ in 0..50 {
        let (f, r, c) = (fetches.clone(), release.clone(), clock.clone());
        let t = bounded(cache.get_or_fetch(key("id"), false, move || async move {
            f.fetch_add(1, Ordering::SeqCst);
            r.notified().await;
            Ok(token(&c, "NEW", 24 * HOUR))
        }))
        .await
        .unwrap();
        served.push(t.token.secret().to_owned());
    }
    assert!(served.iter().all(|t| t == "OLD"), "{served:?}");
    // The refresh runs as a task; let it start, then check that no second one did.
    wait_for(&fetches, 1).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "exactly one refresh starts"
    );

    release.notify_one();
    let new = bounded(async {
        loop {
            let t = cache
                .get_or_fetch(key("id"), false, || async { panic!("no second refresh") })
                .await
                .unwrap();
            if t.token.secret() == "NEW" {
                break t;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(new.token.secret(), "NEW");
}

#[tokio::test]
async fn a_failed_refresh_keeps_serving_the_valid_token_and_waits_30_seconds_before_retrying() {
    let clock = FakeClock::at_2030();
    let cache = TokenCache::with_clock(clock.shared());
    let attempts = Arc::new(AtomicUsize::new(0));
    let c = clock.clone();
    cache
        .get_or_fetch(key("id"), false, move || async move {
            Ok(token(&c, "OLD", 24 * HOUR))
        })
        .await
        .unwrap();
    clock.advance(12 * HOUR + Duration::from_secs(1));

    let failing = |attempts: Arc<AtomicUsize>| {
        move || async move {
            attempts.fetch_add(1, Ordering::SeqCst);
            Err::<AccessToken, _>(Error::transport("Test", "endpoint down"))
        }
    };
    // Without a runtime-spawned refresh this would be timing-dependent; wait for the attempt.
    let t = cache
        .get_or_fetch(key("id"), false, failing(attempts.clone()))
        .await
        .unwrap();
    assert_eq!(t.token.secret(), "OLD");
    bounded(async {
        while attempts.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    for _ in 0..5 {
        tokio::task::yield_now().await;
    }

    for step in [1, 10, 28] {
        clock.advance(Duration::from_secs(step));
        let t = cache
            .get_or_fetch(key("id"), false, failing(attempts.clone()))
            .await
            .unwrap();
        assert_eq!(t.token.secret(), "OLD");
    }
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        1,
        "no new attempt within 30 s"
    );

    clock.advance(Duration::from_secs(2));
    let t = cache
        .get_or_fetch(key("id"), false, failing(attempts.clone()))
        .await
        .unwrap();
    assert_eq!(t.token.secret(), "OLD");
    bounded(async {
        while attempts.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

fn rt_free<F: Future>(fut: F) -> F::Output {
    futures_util::FutureExt::now_or_never(fut).expect("the fetch completes without a runtime")
}

#[test]
fn without_a_runtime_the_refreshing_caller_waits_and_falls_back_on_failure() {
    let clock = FakeClock::at_2030();
    let cache = TokenCache::with_clock(clock.shared());
    let c = clock.clone();
    rt_free(cache.get_or_fetch(key("id"), false, move || async move {
        Ok(token(&c, "OLD", HOUR))
    }))
    .unwrap();
    clock.advance(HOUR - Duration::from_secs(100));
    let t = rt_free(cache.get_or_fetch(key("id"), false, || async {
        Err(Error::transport("Test", "down"))
    }))
    .unwrap();
    assert_eq!(t.token.secret(), "OLD");
    clock.advance(Duration::from_secs(31));
    let c = clock.clone();
    let t = rt_free(cache.get_or_fetch(key("id"), false, move || async move {
        Ok(token(&c, "NEW", HOUR))
    }))
    .unwrap();
    assert_eq!(t.token.secret(), "NEW");
}

#[tokio::test]
async fn an_expired_token_with_a_failing_source_returns_the_error() {
    let clock = FakeClock::at_2030();
    let cache = TokenCache::with_clock(clock.shared());
    let c = clock.clone();
    cache
        .get_or_fetch(key("id"), false, move || async move {
            Ok(token(&c, "OLD", HOUR))
        })
        .await
        .unwrap();
    clock.advance(HOUR);
    let err = cache
        .get_or_fetch(key("id"), false, || async {
            Err(Error::transport("Test", "down"))
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
    // The next call tries again at once: there is no valid token to fall back on.
    let c = clock.clone();
    let t = cache
        .get_or_fetch(key("id"), false, move || async move {
            Ok(token(&c, "NEW", HOUR))
        })
        .await
        .unwrap();
    assert_eq!(t.token.secret(), "NEW");
}

#[tokio::test]
async fn a_four_minute_token_is_served_from_the_cache_on_the_second_call() {
    let clock = FakeClock::at_2030();
    let cache = TokenCache::with_clock(clock.shared());
    let fetches = Arc::new(AtomicUsize::new(0));
    for _ in 0..10 {
        let (f, c) = (fetches.clone(), clock.clone());
        cache
            .get_or_fetch(key("id"), false, move || async move {
                f.fetch_add(1, Ordering::SeqCst);
                Ok(token(&c, "SHORT", Duration::from_secs(240)))
            })
            .await
            .unwrap();
        clock.advance(Duration::from_secs(5));
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn dropping_the_leader_mid_fetch_still_lets_the_others_finish() {
    let clock = FakeClock::at_2030();
    let cache = TokenCache::with_clock(clock.shared());
    let fetches = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let (f, r, c) = (fetches.clone(), release.clone(), clock.clone());
    let mut leader = Box::pin(cache.get_or_fetch(key("id"), false, move || async move {
        f.fetch_add(1, Ordering::SeqCst);
        r.notified().await;
        Ok(token(&c, "T", HOUR))
    }));
    // Poll the leader once so that its fetch is in flight, then drop it.
    let first_poll =
        std::future::poll_fn(|cx| std::task::Poll::Ready(leader.as_mut().poll(cx))).await;
    assert!(first_poll.is_pending());
    drop(leader);

    let follower = tokio::spawn({
        let cache = cache.clone();
        async move {
            cache
                .get_or_fetch(key("id"), false, || async { panic!("joins the flight") })
                .await
        }
    });
    tokio::task::yield_now().await;
    release.notify_one();
    let t = bounded(follower).await.unwrap().unwrap();
    assert_eq!(t.token.secret(), "T");
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn claims_bypass_the_read_side_and_store_the_new_token() {
    let clock = FakeClock::at_2030();
    let cache = TokenCache::with_clock(clock.shared());
    let c = clock.clone();
    cache
        .get_or_fetch(key("id"), false, move || async move {
            Ok(token(&c, "OLD", HOUR))
        })
        .await
        .unwrap();
    let c = clock.clone();
    let t = cache
        .get_or_fetch(key("id"), true, move || async move {
            Ok(token(&c, "CHALLENGED", HOUR))
        })
        .await
        .unwrap();
    assert_eq!(t.token.secret(), "CHALLENGED");
    let t = cache
        .get_or_fetch(key("id"), false, || async { panic!("cached") })
        .await
        .unwrap();
    assert_eq!(t.token.secret(), "CHALLENGED");
}

#[tokio::test]
async fn keys_separate_identity_scopes_tenant_and_cae_but_not_scope_order() {
    let clock = FakeClock::at_2030();
    let cache = TokenCache::with_clock(clock.shared());
    let fetches = Arc::new(AtomicUsize::new(0));
    let get = |k: KeyRef<'_>| {
        let (f, c) = (fetches.clone(), clock.clone());
        let cache = cache.clone();
        let owned = (
            k.identity.to_owned(),
            k.scopes.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
            k.tenant.map(str::to_owned),
            k.cae,
        );
        async move {
            let scopes: Vec<&str> = owned.1.iter().map(String::as_str).collect();
            cache
                .get_or_fetch(
                    KeyRef::new(&owned.0, &scopes, owned.2.as_deref(), owned.3),
                    false,
                    move || async move {
                        f.fetch_add(1, Ordering::SeqCst);
                        Ok(token(&c, "T", HOUR))
                    },
                )
                .await
                .unwrap()
        }
    };
    get(KeyRef::new("id", &["a", "b"], None, false)).await;
    get(KeyRef::new("id", &["b", "a"], None, false)).await;
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "scope order does not matter"
    );
    get(KeyRef::new("other", &["a", "b"], None, false)).await;
    get(KeyRef::new("id", &["a"], None, false)).await;
    get(KeyRef::new("id", &["a", "b"], Some("t"), false)).await;
    get(KeyRef::new("id", &["a", "b"], None, true)).await;
    assert_eq!(fetches.load(Ordering::SeqCst), 5);
    assert_eq!(cache.export().len(), 5);
}

#[tokio::test]
async fn a_token_issued_already_expired_is_returned_but_not_served_again() {
    let clock = FakeClock::at_2030();
    let cache = TokenCache::with_clock(clock.shared());
    let fetches = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let (f, c) = (fetches.clone(), clock.clone());
        let t = cache
            .get_or_fetch(key("id"), false, move || async move {
                f.fetch_add(1, Ordering::SeqCst);
                use identity_core::Clock;
                Ok(AccessToken::new("DEAD", c.now() - Duration::from_secs(1)))
            })
            .await
            .unwrap();
        assert!(t.expires_on < SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_456_000));
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_load_abandoned_by_every_caller_still_finishes_and_fills_the_cache() {
    let clock = FakeClock::at_2030();
    let cache = TokenCache::with_clock(clock.shared());
    let fetches = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let (f, r, c) = (fetches.clone(), release.clone(), clock.clone());
    let mut only_caller = Box::pin(cache.get_or_fetch(key("id"), false, move || async move {
        f.fetch_add(1, Ordering::SeqCst);
        let _permit = r.acquire().await;
        Ok(token(&c, "T", HOUR))
    }));
    let first_poll =
        std::future::poll_fn(|cx| std::task::Poll::Ready(only_caller.as_mut().poll(cx))).await;
    assert!(first_poll.is_pending());
    drop(only_caller);
    release.add_permits(1);
    // The load runs on the runtime by itself; once it lands the cache answers without a fetch.
    let t = bounded(async {
        loop {
            if let Some(entry) = cache.export().into_iter().next() {
                break entry.1;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(t.token.secret(), "T");
    let again = cache
        .get_or_fetch(key("id"), false, || async { panic!("cached") })
        .await
        .unwrap();
    assert_eq!(again.token.secret(), "T");
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_token_living_seconds_is_still_refreshed_ahead_of_its_expiry() {
    // A 4 s token is fresh for 2 s; a success must not arm the 30 s spacing that only a
    // failed attempt earns, or the token would expire with every caller waiting on a load.
    let clock = FakeClock::at_2030();
    let cache = TokenCache::with_clock(clock.shared());
    let fetches = Arc::new(AtomicUsize::new(0));
    let fetch = |name: &'static str| {
        let (f, c) = (fetches.clone(), clock.clone());
        move || async move {
            f.fetch_add(1, Ordering::SeqCst);
            Ok(token(&c, name, Duration::from_secs(4)))
        }
    };
    cache
        .get_or_fetch(key("id"), false, fetch("FIRST"))
        .await
        .unwrap();
    clock.advance(Duration::from_millis(2500));
    let served = cache
        .get_or_fetch(key("id"), false, fetch("SECOND"))
        .await
        .unwrap();
    assert_eq!(
        served.token.secret(),
        "FIRST",
        "the valid token is served while the refresh runs"
    );
    wait_for(&fetches, 2).await;
    let t = bounded(async {
        loop {
            let t = cache
                .get_or_fetch(key("id"), false, || async { panic!("no third fetch") })
                .await
                .unwrap();
            if t.token.secret() == "SECOND" {
                break t;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(t.token.secret(), "SECOND");
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}
