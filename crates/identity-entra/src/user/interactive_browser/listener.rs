//! The redirect listener: accepts the one browser callback whose `state` matches, answers
//! it with a short page, and hands back the authorization code (or the error it carries).
//!
//! Connections are served concurrently: a browser opens speculative connections that send
//! nothing (Chrome and Edge do), and the redirect may come on another one, so no connection
//! may wait for another. Each connection has [`CONNECTION_TIMEOUT`] to send its request and
//! [`MAX_REQUEST`] bytes to send it in; at most [`MAX_CONNECTIONS`] are open at once, and a
//! new one beyond that closes the oldest, so a flood neither exhausts descriptors or memory
//! nor keeps a fresh redirect out.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use identity_core::redact::Redactor;
use identity_core::{Error, Secret};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{NAME, Redirect};

/// The longest a single connection to the redirect listener may take to send its request.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest request head the redirect listener reads.
const MAX_REQUEST: usize = 16 * 1024;

/// The most connections served at once; accepting one more closes the oldest.
pub(super) const MAX_CONNECTIONS: usize = 64;

/// Binds the redirect listeners: `127.0.0.1:<port>` (the redirect URI's, else a free one)
/// and, for a `localhost` redirect, `[::1]` on the same port when the system has IPv6. Both
/// are bound before the browser starts, so its first connection finds them. Returns the
/// listeners and the port.
pub(super) async fn bind(redirect: &Redirect) -> Result<(Vec<TcpListener>, u16), Error> {
    let listener = TcpListener::bind(("127.0.0.1", redirect.port))
        .await
        .map_err(|e| {
            Error::invalid_configuration(
                NAME,
                format!(
                    "cannot listen on 127.0.0.1:{} for the sign-in redirect; choose another port in the redirect URI",
                    redirect.port
                ),
            )
            .with_source(e)
        })?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::transport(NAME, "the redirect listener has no address").with_source(e))?
        .port();
    let mut listeners = vec![listener];
    if redirect.host == "localhost" {
        // Best effort: a host without IPv6, or with the port taken there, keeps IPv4 only.
        if let Ok(v6) = TcpListener::bind(("::1", port)).await {
            listeners.push(v6);
        }
    }
    Ok((listeners, port))
}

/// What the listener waits for next.
enum Event<T> {
    /// A connection ended, with what it carried.
    Served(T),
    /// A listener accepted a connection, or failed to.
    Accepted(io::Result<TcpStream>),
}

/// Serves connections, all at once, until one carries the callback with the expected
/// `state`; the others are then closed.
pub(super) async fn receive_code(
    listeners: Vec<TcpListener>,
    state: &str,
    path: &str,
) -> Result<Secret, Error> {
    let serve = |stream| {
        Box::pin(tokio::time::timeout(
            CONNECTION_TIMEOUT,
            handle(stream, state, path),
        ))
    };
    let mut connections = VecDeque::new();
    let mut turn = 0usize;
    loop {
        turn = turn.wrapping_add(1);
        let event = next_event(&mut connections, &listeners, turn).await;
        match event {
            // The connection ended the sign-in.
            Event::Served(Ok(Some(result))) => return result,
            // It did not (refused, unrelated or stalled): it is closed and the wait goes on.
            Event::Served(_) => {}
            Event::Accepted(Ok(stream)) => {
                if connections.len() >= MAX_CONNECTIONS {
                    connections.pop_front();
                }
                connections.push_back(serve(stream));
            }
            // One connection's failure (reset before it was accepted, say).
            Event::Accepted(Err(e)) if is_transient(&e) => {}
            // Out of descriptors or memory: closing the oldest connection frees some; with
            // none open, the listener cannot go on.
            Event::Accepted(Err(e)) => {
                tracing::debug!(credential = NAME, error = %e.kind(), "the redirect listener could not accept a connection");
                if connections.pop_front().is_none() {
                    return Err(
                        Error::transport(NAME, "the sign-in redirect listener failed")
                            .with_source(e),
                    );
                }
            }
        }
    }
}

/// The next connection to end, or the next accepted; `turn` says which listener goes first.
fn next_event<'a, F: Future + Unpin>(
    connections: &'a mut VecDeque<F>,
    listeners: &'a [TcpListener],
    turn: usize,
) -> impl Future<Output = Event<F::Output>> + 'a {
    std::future::poll_fn(move |cx| {
        // The open connections first, so a stream of new ones cannot starve them.
        for i in 0..connections.len() {
            if let Poll::Ready(outcome) = Pin::new(&mut connections[i]).poll(cx) {
                connections.remove(i);
                return Poll::Ready(Event::Served(outcome));
            }
        }
        // Then the listeners, taking turns, so a flood on one cannot hide the other.
        for k in 0..listeners.len() {
            let listener = &listeners[(turn + k) % listeners.len()];
            if let Poll::Ready(accepted) = listener.poll_accept(cx) {
                return Poll::Ready(Event::Accepted(accepted.map(|(stream, _)| stream)));
            }
        }
        Poll::Pending
    })
}

/// Whether an accept error belongs to one connection only.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
    )
}

const CLOSE_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Signed in</title></head><body><h1>Authentication complete</h1><p>You can close this window and return to the application.</p></body></html>";
const FAILED_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign-in failed</title></head><body><h1>Sign-in failed</h1><p>You can close this window; the application shows the reason.</p></body></html>";

/// Serves one connection; `Some` when it ended the sign-in.
async fn handle(mut stream: TcpStream, state: &str, path: &str) -> Option<Result<Secret, Error>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        // Only the new bytes (and the three before them) are searched, so a request sent a
        // byte at a time costs no more than one sent at once.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if head[from..].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if head.len() > MAX_REQUEST {
            respond(&mut stream, 431, "text/plain", "request too large").await;
            return None;
        }
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end().split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (request_path, query) = target.split_once('?').unwrap_or((target, ""));
    if method != "GET" {
        respond(&mut stream, 405, "text/plain", "method not allowed").await;
        return None;
    }
    if request_path != path || query.is_empty() {
        respond(&mut stream, 404, "text/plain", "not found").await;
        return None;
    }
    let mut code = None;
    let mut got_state = None;
    let mut error = None;
    let mut description = None;
    let mut repeated = false;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let slot = match &*key {
            "code" => {
                repeated |= code.is_some();
                code = Some(Secret::new(value.into_owned()));
                continue;
            }
            "state" => &mut got_state,
            "error" => &mut error,
            "error_description" => &mut description,
            _ => continue,
        };
        repeated |= slot.is_some();
        *slot = Some(value.into_owned());
    }
    // A callback naming a parameter twice is not one the authority sent: which value counts
    // would be a guess.
    if repeated {
        respond(&mut stream, 400, "text/plain", "malformed sign-in response").await;
        return None;
    }
    let state_matches = got_state
        .as_deref()
        .is_some_and(|s| Secret::new(s) == Secret::new(state));
    if !state_matches {
        tracing::warn!(
            credential = NAME,
            "refused a sign-in redirect whose state does not match; still waiting"
        );
        respond(
            &mut stream,
            400,
            "text/plain",
            "This response does not belong to the sign-in in progress.",
        )
        .await;
        return None;
    }
    if let Some(error) = error {
        respond(&mut stream, 200, "text/html; charset=utf-8", FAILED_PAGE).await;
        let error = Redactor::new().quote(&error, 64);
        let mut message = if error == "access_denied" {
            "the sign-in was declined or cancelled (access_denied)".to_owned()
        } else {
            format!("the sign-in failed ({error})")
        };
        if let Some(description) = description.filter(|d| !d.trim().is_empty()) {
            message.push_str(": ");
            message.push_str(&Redactor::new().quote(&description, 400));
        }
        return Some(Err(Error::authentication_failed(NAME, message)));
    }
    match code.filter(|c| !c.secret().is_empty()) {
        Some(code) => {
            respond(&mut stream, 200, "text/html; charset=utf-8", CLOSE_PAGE).await;
            Some(Ok(code))
        }
        None => {
            respond(&mut stream, 200, "text/html; charset=utf-8", FAILED_PAGE).await;
            Some(Err(Error::authentication_failed(
                NAME,
                "the sign-in redirect carried neither a code nor an error",
            )))
        }
    }
}

async fn respond(stream: &mut TcpStream, status: u16, content_type: &str, body: &str) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Request Header Fields Too Large",
    };
    let text = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(text.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// Generous: no test depends on how long anything takes, only on its ending.
    const BOUND: Duration = Duration::from_secs(60);

    fn request(target: &str) -> String {
        format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n")
    }

    /// The listener's whole answer on `stream` (bounded; empty when it closed without one).
    async fn read_answer(stream: &mut TcpStream) -> String {
        let mut answer = String::new();
        let _ = tokio::time::timeout(BOUND, stream.read_to_string(&mut answer)).await;
        answer
    }

    async fn get(port: u16, target: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream.write_all(request(target).as_bytes()).await.unwrap();
        read_answer(&mut stream).await
    }

    /// A listener waiting for state `s1` on `/`, and its port.
    async fn waiting() -> (u16, tokio::task::JoinHandle<Result<Secret, Error>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let wait = tokio::spawn(async move { receive_code(vec![listener], "s1", "/").await });
        (port, wait)
    }

    async fn code(wait: tokio::task::JoinHandle<Result<Secret, Error>>) -> String {
        let code = tokio::time::timeout(BOUND, wait)
            .await
            .expect("the listener ends")
            .unwrap()
            .unwrap();
        code.secret().to_owned()
    }

    /// Sends `bytes` one at a time, pausing between them.
    async fn drip(stream: &mut TcpStream, bytes: &str) {
        for byte in bytes.as_bytes() {
            stream.write_all(&[*byte]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn an_idle_preconnection_does_not_hold_up_the_redirect_that_follows() {
        let (port, wait) = waiting().await;
        // A browser's speculative connection: opened first, nothing sent, kept open.
        let idle = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let answer = get(port, "/?code=planted-c&state=s1").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("You can close this window"), "{answer}");
        assert_eq!(code(wait).await, "planted-c");
        drop(idle);
    }

    #[tokio::test]
    async fn a_connection_is_answered_while_an_earlier_one_sends_nothing_and_that_one_is_served_later()
     {
        let (port, wait) = waiting().await;
        let mut early = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        // Served while `early` is open and silent: one at a time, this would wait for `early`
        // to be dropped, and `early` could then carry nothing.
        let answer = get(port, "/?code=planted-x&state=other").await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(!wait.is_finished());
        // The browser uses its early connection for the redirect, as Chrome does.
        early
            .write_all(request("/?code=planted-e&state=s1").as_bytes())
            .await
            .unwrap();
        let answer = read_answer(&mut early).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert_eq!(code(wait).await, "planted-e");
    }

    #[tokio::test]
    async fn a_request_sent_a_byte_at_a_time_does_not_hold_up_another() {
        let (port, wait) = waiting().await;
        let mut slow = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let whole = request("/?code=planted-d&state=s1");
        let (first, rest) = whole.split_at(20);
        drip(&mut slow, first).await;
        // Half sent: another connection is served meanwhile.
        let answer = get(port, "/other?code=x&state=s1").await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
        drip(&mut slow, rest).await;
        let answer = read_answer(&mut slow).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert_eq!(code(wait).await, "planted-d");
    }

    #[tokio::test]
    async fn a_flood_of_idle_connections_closes_the_oldest_and_lets_the_redirect_through() {
        let (port, wait) = waiting().await;
        let mut flood = Vec::new();
        for _ in 0..MAX_CONNECTIONS + 16 {
            flood.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
        }
        // The oldest were closed to keep the bound: the listener holds at most
        // MAX_CONNECTIONS.
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(BOUND, flood[0].read(&mut byte))
            .await
            .expect("the oldest connection is closed");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        assert!(!wait.is_finished());
        let answer = get(port, "/?code=planted-f&state=s1").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert_eq!(code(wait).await, "planted-f");
        drop(flood);
    }

    #[tokio::test]
    async fn a_request_head_over_the_limit_is_refused_and_the_wait_goes_on() {
        let (port, wait) = waiting().await;
        // One byte over, and no end of head: everything sent is read before the refusal.
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let head = "GET /?code=planted-l&state=s1&pad=";
        let pad = "a".repeat(MAX_REQUEST + 1 - head.len());
        stream
            .write_all(format!("{head}{pad}").as_bytes())
            .await
            .unwrap();
        let answer = read_answer(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
        assert!(!wait.is_finished());
        let answer = get(port, "/?code=planted-g&state=s1").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert_eq!(code(wait).await, "planted-g");
    }

    #[tokio::test]
    async fn a_callback_naming_a_parameter_twice_is_refused_and_the_wait_goes_on() {
        let (port, wait) = waiting().await;
        for target in [
            "/?code=planted-a&code=planted-b&state=s1",
            "/?code=planted-a&state=s1&state=s1",
            "/?error=x&error=access_denied&state=s1",
        ] {
            let answer = get(port, target).await;
            assert!(answer.starts_with("HTTP/1.1 400"), "{target}: {answer}");
            assert!(!answer.contains("planted"), "{answer}");
        }
        assert!(!wait.is_finished());
        let answer = get(port, "/?code=planted-c&state=s1").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert_eq!(code(wait).await, "planted-c");
    }
}
