//! [`Reply`]: what [`TestServer`](super::TestServer) does with one request.

use std::time::Duration;

/// The longest a connection is held open: a delay before answering, or silence (120 s).
pub(super) const HOLD_LIMIT: Duration = Duration::from_secs(120);

#[derive(Clone, Debug)]
pub(super) enum Action {
    Answer {
        status: u16,
        reason: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    Raw(Vec<u8>),
    Close,
    Silence,
}

/// What the server does with one request.
#[derive(Clone, Debug)]
pub struct Reply {
    pub(super) action: Action,
    pub(super) delay: Duration,
}

impl Reply {
    /// An answer with `status` (reason phrase `Status`), no headers beyond `Content-Length`
    /// and `Connection: close`, and an empty body.
    pub fn status(status: u16) -> Self {
        Self {
            action: Action::Answer {
                status,
                reason: "Status".to_owned(),
                headers: Vec::new(),
                body: Vec::new(),
            },
            delay: Duration::ZERO,
        }
    }

    /// A 200 answer with a JSON body.
    pub fn json(body: impl Into<String>) -> Self {
        Self::status(200)
            .header("content-type", "application/json")
            .body(body.into())
    }

    /// Exactly these bytes, then the connection closes.
    pub fn raw(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            action: Action::Raw(bytes.into()),
            delay: Duration::ZERO,
        }
    }

    /// The connection closes without an answer.
    pub fn close() -> Self {
        Self {
            action: Action::Close,
            delay: Duration::ZERO,
        }
    }

    /// No answer: the connection is held open, silent, until the client closes it (at most
    /// [`TestServer::HOLD_LIMIT`](super::TestServer::HOLD_LIMIT)).
    pub fn silence() -> Self {
        Self {
            action: Action::Silence,
            delay: Duration::ZERO,
        }
    }

    /// Sets the reason phrase of an answer's status line.
    #[must_use]
    pub fn reason(mut self, text: &str) -> Self {
        if let Action::Answer { reason, .. } = &mut self.action {
            text.clone_into(reason);
        }
        self
    }

    /// Adds a header to an answer.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let Action::Answer { headers, .. } = &mut self.action {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    /// Sets an answer's body (`Content-Length` follows it).
    #[must_use]
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        if let Action::Answer { body, .. } = &mut self.action {
            *body = bytes.into();
        }
        self
    }

    /// Waits this long (at most [`TestServer::HOLD_LIMIT`](super::TestServer::HOLD_LIMIT))
    /// before carrying the reply out.
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay.min(HOLD_LIMIT);
        self
    }

    pub(super) fn bytes(&self) -> Option<Vec<u8>> {
        match &self.action {
            Action::Answer {
                status,
                reason,
                headers,
                body,
            } => {
                let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
                for (name, value) in headers {
                    out.push_str(&format!("{name}: {value}\r\n"));
                }
                out.push_str(&format!(
                    "content-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                ));
                let mut out = out.into_bytes();
                out.extend_from_slice(body);
                Some(out)
            }
            Action::Raw(bytes) => Some(bytes.clone()),
            Action::Close | Action::Silence => None,
        }
    }
}
