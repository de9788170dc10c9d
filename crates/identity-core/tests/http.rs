//! The HTTP seam: limits, retries and the plain-HTTP client, against real loopback sockets.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed expectation is a failed test"
)]

use std::time::Duration;

use bytes::Bytes;
use identity_core::ErrorKind;
use identity_core::http::{
    Body, BoxError, CertificateRejected, CutLimit, HttpClient, HyperClient, Limits, Pipeline,
    Request, RetryCut, SendOptions,
};
use identity_core::retry::RetryPolicy;
use identity_core::test_util::{RecordingSleeper, Reply, TestServer};
use tokio::net::TcpListener;

const BOUND: Duration = Duration::from_secs(10);

/// An answer with `status` (code and reason phrase), `headers` and `body`.
fn reply(status: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let (code, reason) = status.split_once(' ').unwrap();
    headers.iter().fold(
        Reply::status(code.parse().unwrap())
            .reason(reason)
            .body(body),
        |r, (k, v)| r.header(k, v),
    )
}

/// A loopback server answering each request with the next scripted reply (the last one
/// repeats) and recording each request.
async fn server(script: Vec<Reply>) -> TestServer {
    TestServer::script(script).await
}

/// A server answering every request `503` with `Retry-After: {retry_after}` and `body`.
async fn busy(retry_after: &str, body: &str) -> TestServer {
    server(vec![reply(
        "503 Service Unavailable",
        &[("retry-after", retry_after)],
        body,
    )])
    .await
}

fn get(url: &str) -> http::Request<Bytes> {
    http::Request::get(url)
        .header("metadata", "true")
        .body(Bytes::new())
        .unwrap()
}

fn pipeline(sleeper: &RecordingSleeper) -> Pipeline {
    Pipeline::new(HyperClient::shared()).with_sleeper(sleeper.shared())
}

#[tokio::test]
async fn a_get_is_sent_in_origin_form_with_host_and_headers() {
    let s = server(vec![reply("200 OK", &[], "{\"ok\":true}")]).await;
    let p = pipeline(&RecordingSleeper::new());
    let r = p
        .send(
            "Test",
            &get(&format!(
                "{}/metadata/token?api-version=2018-02-01&resource=x",
                s.base()
            )),
            SendOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.body().as_ref(), b"{\"ok\":true}");
    let head = s.requests()[0].head.clone();
    assert!(
        head.starts_with("GET /metadata/token?api-version=2018-02-01&resource=x HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("host: {}", &s.base()["http://".len()..])),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase().contains("metadata: true"),
        "{head}"
    );
}

#[tokio::test]
async fn a_body_larger_than_the_cap_is_rejected_by_content_length() {
    let big = "x".repeat(5 * 1024 * 1024);
    let s = server(vec![reply("200 OK", &[], &big)]).await;
    let p = pipeline(&RecordingSleeper::new()).with_retry(RetryPolicy::none());
    let err = p
        .send("Test", &get(&s.base()), SendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert!(
        err.message().contains("larger than the 1048576-byte limit"),
        "{err}"
    );
}

#[tokio::test]
async fn a_chunked_body_larger_than_the_cap_is_rejected_while_streaming() {
    let mut raw =
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    for _ in 0..80 {
        raw.extend_from_slice(format!("{:x}\r\n", 64 * 1024).as_bytes());
        raw.extend(std::iter::repeat_n(b'y', 64 * 1024));
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let s = server(vec![Reply::raw(raw)]).await;
    let p = pipeline(&RecordingSleeper::new()).with_retry(RetryPolicy::none());
    let err = p
        .send("Test", &get(&s.base()), SendOptions::default())
        .await
        .unwrap_err();
    assert!(err.message().contains("larger than"), "{err}");
}

#[tokio::test]
async fn a_server_that_never_answers_ends_within_the_configured_timeout() {
    let s = server(vec![Reply::silence()]).await;
    let p = pipeline(&RecordingSleeper::new())
        .with_retry(RetryPolicy::none())
        .with_limits(Limits::DEFAULT.timeout(Duration::from_millis(200)));
    let err = tokio::time::timeout(
        BOUND,
        p.send("Test", &get(&s.base()), SendOptions::default()),
    )
    .await
    .expect("bounded by the pipeline timeout")
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert!(err.message().contains("timed out after 200 ms"), "{err}");
}

#[tokio::test]
async fn a_500_is_retried_with_the_reference_backoff_until_it_succeeds() {
    let s = server(vec![
        reply("500 Internal Server Error", &[], "{}"),
        reply("500 Internal Server Error", &[], "{}"),
        reply("200 OK", &[], "done"),
    ])
    .await;
    let sleeper = RecordingSleeper::new();
    let r = pipeline(&sleeper)
        .send("Test", &get(&s.base()), SendOptions::default())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.request_count(), 3);
    // The first retry is immediate, so only the second sleeps.
    assert_eq!(sleeper.slept(), vec![Duration::from_millis(1600)]);
}

#[tokio::test]
async fn exhausted_status_retries_return_the_last_response() {
    let s = server(vec![reply("503 Service Unavailable", &[], "busy")]).await;
    let sleeper = RecordingSleeper::new();
    let r = pipeline(&sleeper)
        .send("Test", &get(&s.base()), SendOptions::default())
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(s.request_count(), 4);
    assert_eq!(sleeper.slept(), [1600, 3200].map(Duration::from_millis));
}

#[tokio::test]
async fn retry_after_replaces_the_backoff() {
    let s = server(vec![
        reply("429 Too Many Requests", &[("retry-after", "3")], ""),
        reply("429 Too Many Requests", &[("retry-after", "3")], ""),
        reply("200 OK", &[], "ok"),
    ])
    .await;
    let sleeper = RecordingSleeper::new();
    let r = pipeline(&sleeper)
        .send("Test", &get(&s.base()), SendOptions::default())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(sleeper.slept(), [3, 3].map(Duration::from_secs));
}

#[tokio::test]
async fn the_imds_410_schedule_is_six_attempts_with_growing_sleeps() {
    let s = server(vec![reply("410 Gone", &[], "")]).await;
    let sleeper = RecordingSleeper::new();
    let r = pipeline(&sleeper)
        .with_retry(upgrade_schedule())
        .send("Test", &get(&s.base()), SendOptions::default())
        .await
        .unwrap();
    assert_eq!(r.status(), 410);
    assert_eq!(s.request_count(), 6);
    assert_eq!(sleeper.slept(), [5, 10, 20, 40].map(Duration::from_secs));
}

#[tokio::test]
async fn a_400_is_not_retried() {
    let s = server(vec![reply("400 Bad Request", &[], "{}")]).await;
    let r = pipeline(&RecordingSleeper::new())
        .send("Test", &get(&s.base()), SendOptions::default())
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(s.request_count(), 1);
}

#[tokio::test]
async fn a_redirect_is_returned_not_followed() {
    let s = server(vec![reply(
        "302 Found",
        &[("location", "http://10.1.2.3/elsewhere")],
        "",
    )])
    .await;
    let r = pipeline(&RecordingSleeper::new())
        .send("Test", &get(&s.base()), SendOptions::default())
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(s.request_count(), 1);
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_reported_without_the_query() {
    // Bind and drop to get a port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sleeper = RecordingSleeper::new();
    let url = format!("http://127.0.0.1:{port}/token?client_id=planted-query-value");
    let err = pipeline(&sleeper)
        .send("Test", &get(&url), SendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert_eq!(sleeper.slept(), [1600, 3200].map(Duration::from_millis));
    for text in [
        err.to_string(),
        format!("{err:?}"),
        identity_core::display_chain(&err),
    ] {
        assert!(!text.contains("planted"), "{text}");
        assert!(text.contains(&format!("127.0.0.1:{port}/token")), "{text}");
    }
}

#[tokio::test]
async fn the_plain_http_client_refuses_https() {
    let err = pipeline(&RecordingSleeper::new())
        .with_retry(RetryPolicy::none())
        .send(
            "Test",
            &get("https://127.0.0.1:1/token"),
            SendOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        identity_core::display_chain(&err).contains("https scheme is not supported"),
        "{err}"
    );
}

#[tokio::test]
async fn a_connection_reset_mid_body_is_a_transport_error() {
    let raw = b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n{\"access_token\":".to_vec();
    let s = server(vec![Reply::raw(raw)]).await;
    let err = pipeline(&RecordingSleeper::new())
        .with_retry(RetryPolicy::none())
        .send("Test", &get(&s.base()), SendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert!(err.message().contains("reading the response"), "{err}");
}

#[tokio::test]
async fn a_200_over_the_body_cap_fails_that_request_and_is_not_retried() {
    // 5 MB of non-JSON, then a good answer that must never be asked for.
    let big = "<html>".repeat(5 * 1024 * 1024 / 6);
    let mut chunked =
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    chunked.extend_from_slice(format!("{:x}\r\n", big.len()).as_bytes());
    chunked.extend_from_slice(big.as_bytes());
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    for first in [reply("200 OK", &[], &big), Reply::raw(chunked)] {
        let s = server(vec![first, reply("200 OK", &[], "{\"ok\":true}")]).await;
        let sleeper = RecordingSleeper::new();
        let err = pipeline(&sleeper)
            .send("Test", &get(&s.base()), SendOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transport);
        assert!(
            err.message()
                .contains("larger than the 1048576-byte limit; not retried"),
            "{err}"
        );
        assert_eq!(s.request_count(), 1, "not retried");
        assert!(sleeper.slept().is_empty());
    }
}

/// Retry hints no pipeline may panic on: absurd, negative, non-numeric, and out of range. A
/// hint past the policy's 60 s cap is not waited for: the 429 itself comes back at once, with
/// the service's own number in the clause.
#[tokio::test]
async fn an_absurd_retry_hint_never_panics_and_a_hint_past_the_cap_returns_the_answer_at_once() {
    for (header, value) in [
        ("retry-after-ms", "1e30"),
        ("x-ms-retry-after-ms", "1e30"),
        ("retry-after-ms", "18446744073709551616000"),
        ("retry-after", "1e30"),
        ("retry-after", "99999999999999999999999999"),
        ("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT"),
        ("retry-after", "600"),
    ] {
        let s = server(vec![
            reply("429 Too Many Requests", &[(header, value)], ""),
            reply("200 OK", &[], "ok"),
        ])
        .await;
        let sleeper = RecordingSleeper::new();
        let response = tokio::time::timeout(
            BOUND,
            pipeline(&sleeper).send("Test", &get(&s.base()), SendOptions::default()),
        )
        .await
        .expect("ends at once")
        .unwrap();
        assert_eq!(response.status(), 429, "{header}: {value}");
        let cut = RetryCut::of(&response).expect("marked as cut");
        assert!(cut.hinted);
        assert_eq!(cut.limit, CutLimit::Cap(Duration::from_secs(60)));
        let text = cut.clause();
        assert!(
            text.contains("which exceeds 60 s, the longest wait this credential honours"),
            "{header}: {value}: {text}"
        );
        assert!(
            !text.contains("deadline"),
            "no advice that cannot help: {text}"
        );
        if value == "600" {
            assert!(text.contains("retry after 600 s"), "{text}");
        }
        assert_eq!(s.request_count(), 1, "{header}: {value}");
        assert!(sleeper.slept().is_empty(), "{header}: {value}");
    }
    // Hints that mean nothing are ignored: the ordinary backoff applies.
    for (header, value) in [
        ("retry-after-ms", "-5"),
        ("retry-after-ms", "NaN"),
        ("x-ms-retry-after-ms", "inf"),
        ("retry-after", "-1"),
        ("retry-after", "soon"),
    ] {
        let s = server(vec![
            reply("503 Service Unavailable", &[(header, value)], ""),
            reply("200 OK", &[], "ok"),
        ])
        .await;
        let sleeper = RecordingSleeper::new();
        let r = pipeline(&sleeper)
            .send("Test", &get(&s.base()), SendOptions::default())
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{header}: {value}");
        assert!(sleeper.slept().is_empty(), "the first retry is immediate");
    }
}

#[tokio::test]
async fn imds_503_with_retry_after_60_ends_inside_the_90_s_deadline() {
    let s = busy("60", "").await;
    let sleeper = RecordingSleeper::new();
    let response = pipeline(&sleeper)
        .with_retry(upgrade_schedule())
        .send("Test", &get(&s.base()), SendOptions::default())
        .await
        .unwrap();
    // One 60 s wait fits the 90 s deadline; a second would end past it, so the call ends
    // after two requests and 60 s instead of 207 s, with the last answer.
    assert_eq!(sleeper.slept(), [Duration::from_secs(60)]);
    assert_eq!(s.request_count(), 2);
    assert_eq!(response.status(), 503);
    let cut = RetryCut::of(&response).expect("marked as cut");
    assert!(matches!(
        cut.limit,
        CutLimit::Deadline { deadline, .. } if deadline == Duration::from_secs(90)
    ));
    let text = cut.clause();
    assert!(
        text.contains("retry after 60 s, which exceeds the") && text.contains("90 s deadline"),
        "{text}"
    );
}

#[tokio::test]
async fn the_deadline_is_configurable_and_retries_fit_inside_it() {
    let s = server(vec![reply("500 Internal Server Error", &[], "")]).await;
    let sleeper = RecordingSleeper::new();
    // 0, 1.6 and 3.2 s of backoff fit 60 s; in 4 s only 0 and 1.6 s do.
    let r = pipeline(&sleeper)
        .with_limits(Limits::DEFAULT.deadline(Duration::from_secs(4)))
        .send("Test", &get(&s.base()), SendOptions::default())
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        500,
        "the last answer is returned for the caller to report"
    );
    assert_eq!(sleeper.slept(), [Duration::from_millis(1600)]);
    assert_eq!(s.request_count(), 3);
    let policy = RetryPolicy::default().deadline(Duration::from_secs(7));
    assert_eq!(
        pipeline(&sleeper).with_retry(policy).deadline(),
        Duration::from_secs(7)
    );
    assert_eq!(
        pipeline(&sleeper).deadline(),
        identity_core::retry::DEFAULT_DEADLINE
    );
}

/// Real time: an endpoint that accepts and never answers, with a 30 s attempt timeout and a
/// 300 ms deadline. Without the deadline this takes 4 × 30 s plus backoff.
#[tokio::test]
async fn an_endpoint_that_never_answers_ends_at_the_deadline() {
    let s = server(vec![Reply::silence()]).await;
    let sleeper = RecordingSleeper::new();
    let p = pipeline(&sleeper).with_limits(Limits::DEFAULT.deadline(Duration::from_millis(300)));
    let err = tokio::time::timeout(
        BOUND,
        p.send("Test", &get(&s.base()), SendOptions::default()),
    )
    .await
    .expect("bounded by the deadline, not by 4 x 30 s")
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert!(
        err.message()
            .contains("still unanswered when the 300 ms deadline of this call ended"),
        "{err}"
    );
    assert_eq!(s.request_count(), 1);
    // Two sends inside one scope share it.
    let both = p.within("Test", async {
        let _ = p
            .send("Test", &get(&s.base()), SendOptions::default())
            .await;
        p.send("Test", &get(&s.base()), SendOptions::default())
            .await
    });
    let err = tokio::time::timeout(BOUND, both)
        .await
        .expect("bounded")
        .unwrap_err();
    assert!(err.message().contains("300 ms deadline"), "{err}");
}

#[tokio::test]
async fn the_test_server_records_each_request_and_can_close_without_answering() {
    let s = TestServer::script([
        Reply::json("{}").delay(Duration::from_millis(1)),
        Reply::close(),
    ])
    .await;
    let request = http::Request::post(s.url("/token?resource=https%3A%2F%2Fvault.azure.net&x=a+b"))
        .header("x-planted", "yes")
        .body(Bytes::from_static(b"grant_type=client_credentials"))
        .unwrap();
    let p = pipeline(&RecordingSleeper::new()).with_retry(RetryPolicy::none());
    let r = p
        .send("Test", &request, SendOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (r.status(), r.body().as_ref()),
        (http::StatusCode::OK, &b"{}"[..])
    );
    let err = p
        .send("Test", &request, SendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
    let seen = s.requests();
    assert_eq!((seen.len(), s.connections()), (2, 2));
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path(), "/token");
    assert_eq!(
        seen[0].query("resource").as_deref(),
        Some("https://vault.azure.net")
    );
    assert_eq!(seen[0].query("x").as_deref(), Some("a b"));
    assert_eq!(seen[0].header("X-Planted"), Some("yes"));
    assert_eq!(seen[0].body, b"grant_type=client_credentials");
}

/// An upgrading host's schedule (identity-msi's IMDS schedule, built here from the public
/// setters): 5 status retries on 404, 408, 410, 429 and 500–998, factor 2.5 s after a 410, at
/// most 60 s per sleep, a 90 s deadline.
fn upgrade_schedule() -> RetryPolicy {
    use identity_core::retry::StatusSet;
    RetryPolicy::default()
        .max_status_retries(5)
        .status_factor(410, Duration::from_millis(2500))
        .max_backoff(Duration::from_secs(60))
        .statuses(
            StatusSet::EMPTY
                .with(404)
                .with(408)
                .with(410)
                .with(429)
                .with_range(500, 998),
        )
        .deadline(Duration::from_secs(90))
}

/// A caller's deadline around the pipeline (a chain member's share): a retry wait that would
/// end past it is not started, and the last answer comes back marked, not a bare timeout.
#[tokio::test]
async fn a_retry_wait_past_the_callers_deadline_returns_the_last_answer() {
    let s = busy("8", "{\"message\":\"busy\"}").await;
    let sleeper = RecordingSleeper::new();
    let pipeline = pipeline(&sleeper);
    let response = identity_core::deadline::run(
        Duration::from_secs(10),
        pipeline.send("Test", &get(&s.base()), SendOptions::default()),
    )
    .await
    .expect("ends before the caller's deadline")
    .unwrap();
    // 8 s fit the 10 s; a second 8 s would not.
    assert_eq!(sleeper.slept(), [Duration::from_secs(8)]);
    assert_eq!(s.request_count(), 2);
    assert_eq!(response.status(), 503);
    let cut = RetryCut::of(&response).expect("marked as cut");
    assert!(matches!(cut.limit, CutLimit::Caller { .. }), "{cut:?}");
    assert!(cut.clause().contains("retry after 8 s"), "{}", cut.clause());
    assert!(cut.clause().contains("the deadline ended the retries"));
}

/// A client reporting a refused certificate.
#[derive(Debug)]
struct RefusingClient(std::sync::atomic::AtomicUsize);

impl HttpClient for RefusingClient {
    fn execute(
        &self,
        _request: Request,
        _options: SendOptions,
    ) -> identity_core::BoxFuture<'_, Result<http::Response<Body>, BoxError>> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let io = std::io::Error::other(CertificateRejected::new("the pin does not match"));
        Box::pin(async move { Err(Box::new(io) as BoxError) })
    }
}

#[tokio::test]
async fn a_refused_certificate_is_not_retried_and_says_so() {
    let client = std::sync::Arc::new(RefusingClient(std::sync::atomic::AtomicUsize::new(0)));
    let sleeper = RecordingSleeper::new();
    let err = Pipeline::new(client.clone())
        .with_sleeper(sleeper.shared())
        .send(
            "Test",
            &get("https://127.0.0.1:1/token"),
            SendOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
    assert!(
        err.message()
            .contains("TLS certificate of https://127.0.0.1:1/token was refused: the pin does not match; not retried"),
        "{err}"
    );
    assert_eq!(client.0.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert!(sleeper.slept().is_empty());
}
