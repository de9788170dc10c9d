//! A prepared request with `DEBUG` tracing on: every call goes through `get_token` and gets
//! its span with the cache's decision. A test binary of its own: tracing's global level hint
//! is shared by every thread of a process, and other tests starting and ending subscribers on
//! other threads would race it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed expectation is a failed test"
)]

use identity_core::test_util::{Capture, FakeClock};
use identity_core::{TokenRequest, TokenRequestOptions};

mod common;
use common::Cached;

const SCOPE: &[&str] = &["https://vault.azure.net/.default"];

#[tokio::test]
async fn with_tracing_on_every_prepared_call_gets_its_span() {
    let clock = FakeClock::at_2030();
    let credential = Cached::new(&clock);
    let mut request = TokenRequest::new(credential.clone(), SCOPE, TokenRequestOptions::default());
    request.token().await.unwrap();
    let capture = Capture::new();
    let _guard = capture.enter();
    assert!(
        request.cached().is_none(),
        "with tracing on, the span path is taken"
    );
    for _ in 0..3 {
        assert_eq!(request.token().await.unwrap().token.secret(), "T1");
    }
    let spans = capture.spans_named("get_token");
    assert_eq!(spans.len(), 3, "{}", capture.text());
    assert!(
        spans.iter().all(|s| s.field("cache") == Some("hit")),
        "{}",
        capture.text()
    );
    assert_eq!(credential.fetches(), 1);
    capture.assert_absent("T1");
}
