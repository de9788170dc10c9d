//! Every retry-hint header (`Retry-After` in seconds or as an HTTP-date, `retry-after-ms`,
//! `x-ms-retry-after-ms`), through the parser and through the core pipeline with an in-memory
//! client that always answers 429 or 503 with the fuzzed hints: never a panic, every wait
//! within the policy's cap, the waits of one call within its deadline, and the call ends.
//!
//! Input layout: the first byte picks the status and which headers carry the text; the rest,
//! split at `\n`, gives one value per header.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use identity_core::http::{Body, BoxError, HttpClient, Limits, Pipeline, Request, SendOptions};
use identity_core::retry::{MAX_RETRY_HINT, RetryPolicy, requested_wait};
use identity_core::{BoxFuture, Sleeper};
use libfuzzer_sys::fuzz_target;

const HEADERS: [&str; 3] = ["retry-after", "retry-after-ms", "x-ms-retry-after-ms"];

#[derive(Debug)]
struct Throttler {
    status: u16,
    hints: Vec<(&'static str, http::HeaderValue)>,
}

impl HttpClient for Throttler {
    fn execute(
        &self,
        _request: Request,
        _options: SendOptions,
    ) -> BoxFuture<'_, Result<http::Response<Body>, BoxError>> {
        Box::pin(async move {
            let mut builder = http::Response::builder().status(self.status);
            for (name, value) in &self.hints {
                builder = builder.header(*name, value.clone());
            }
            Ok(builder.body(Body::from_bytes(""))?)
        })
    }
}

/// Records waits and returns at once.
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<Duration>>);

impl Sleeper for Recorder {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(duration);
        Box::pin(async {})
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut values = rest.split(|b| *b == b'\n');
    let mut hints = Vec::new();
    let mut headers = http::HeaderMap::new();
    for (i, name) in HEADERS.iter().enumerate() {
        if selector & (1 << i) == 0 {
            continue;
        }
        let Some(value) = values.next() else { break };
        if let Ok(value) = http::HeaderValue::from_bytes(value) {
            headers.insert(*name, value.clone());
            hints.push((*name, value));
        }
    }
    // The parser alone.
    if let Some(wait) = requested_wait(&headers, now) {
        assert!(wait <= MAX_RETRY_HINT);
    }
    for policy in [RetryPolicy::default(), identity_msi::imds::retry_policy()] {
        if let Some(wait) = policy.retry_after(&headers, now) {
            assert!(wait <= Duration::from_secs(60));
        }
        let _ = policy.should_retry(400, &headers);
    }
    // Through the pipeline: the call ends, waits are capped, and their sum fits the deadline.
    let status = if selector & 0x80 == 0 { 429 } else { 503 };
    let policy = if selector & 0x40 == 0 {
        RetryPolicy::default()
    } else {
        identity_msi::imds::retry_policy()
    };
    let deadline = policy.call_deadline();
    let sleeper = Arc::new(Recorder::default());
    let pipeline = Pipeline::new(Arc::new(Throttler { status, hints }))
        .with_retry(policy)
        .with_limits(Limits::DEFAULT)
        .with_sleeper(sleeper.clone());
    let request = http::Request::get("http://127.0.0.1:1/token")
        .body(bytes::Bytes::new())
        .unwrap();
    let result = runtime().block_on(pipeline.send("Fuzz", &request, SendOptions::default()));
    match result {
        Ok(response) => assert_eq!(response.status().as_u16(), status),
        Err(error) => assert!(error.to_string().contains("deadline"), "{error}"),
    }
    let slept = sleeper
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    assert!(slept.iter().all(|d| *d <= Duration::from_secs(60)));
    let total: Duration = slept.iter().sum();
    assert!(total < deadline, "{total:?} slept within a {deadline:?} deadline");
});
