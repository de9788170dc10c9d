//! The redirect listener: accepts the one browser callback whose `state` matches, answers
//! it with a short page, and hands back the authorization code (or the error it carries).

use std::time::Duration;

use identity_core::redact::Redactor;
use identity_core::{Error, Secret};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::NAME;

/// The longest a single connection to the redirect listener may take to send its request.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest request head the redirect listener reads.
const MAX_REQUEST: usize = 16 * 1024;

/// Accepts connections until one carries the callback with the expected `state`.
pub(super) async fn receive_code(
    listeners: Vec<TcpListener>,
    state: &str,
    path: &str,
) -> Result<Secret, Error> {
    loop {
        let accepts = listeners.iter().map(|l| Box::pin(l.accept()));
        let (accepted, _, _) = futures_util::future::select_all(accepts).await;
        let (stream, _) = accepted.map_err(|e| {
            Error::transport(NAME, "the sign-in redirect listener failed").with_source(e)
        })?;
        let handled = tokio::time::timeout(CONNECTION_TIMEOUT, handle(stream, state, path)).await;
        // A connection that did not end the sign-in (or stalled) is dropped; the wait goes on.
        if let Ok(Some(result)) = handled {
            return result;
        }
    }
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
        head.extend_from_slice(&chunk[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
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

    async fn get(port: u16, target: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let request = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer)).await;
        answer
    }

    #[tokio::test]
    async fn a_callback_naming_a_parameter_twice_is_refused_and_the_wait_goes_on() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let wait = tokio::spawn(async move { receive_code(vec![listener], "s1", "/").await });
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
        let code = tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(code.secret(), "planted-c");
    }
}
