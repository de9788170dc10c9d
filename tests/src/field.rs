//! The field corpus: answers recorded from real hosts (`tests/field/*.http`), and a loopback
//! server that replays them.
//!
//! One file per kind of host, named after it (`docker-desktop-403.http`,
//! `gcp-metadata-404-html.http`, …). A file is a few `# key: value` lines, then the raw
//! answer as it came over the wire: status line (HTTP version and reason phrase included),
//! headers, a blank line, the body. Keys:
//!
//! | key | meaning |
//! |---|---|
//! | `host` | where the answer comes from (free text) |
//! | `seen` | where it was seen (free text) |
//! | `reach` | how the chain meets it: `probe` (at the address the chain's IMDS probe looks, stood in for by a loopback listener), `pod-identity` (through `AZURE_POD_IDENTITY_AUTHORITY_HOST`), or both, comma-separated |
//! | `delay-ms` | how long the host takes before answering (default 0) |
//! | `expect` | the chain's outcome: `next-member` (managed identity is unavailable and the chain ends at `AzureCliCredential`), or `managed-identity` (the managed-identity token) |
//! | `max-requests` | at most this many requests reach the host per `get_token` (no retry schedule) |
//! | `answer` | `none`: the host accepts connections and never answers (no HTTP part) |
//!
//! A host that answers differently with and without `Metadata: true` has two answers, each
//! after a line `### without Metadata` or `### with Metadata`. In a body, `{expires_on}` and
//! `{not_before}` become now + 1 day and now (Unix seconds) at replay, so a recorded token
//! stays valid. `Content-Length`, when present, is set to the body's length. Header lines end
//! in CRLF on the wire whatever the file uses.
//!
//! A new field report becomes one more file; `tests/field_corpus.rs` runs every file.
//! Only `std` and identity-core's `TestServer` are used here, so the benchmark binary includes
//! this file too.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use identity_core::test_util::{Reply, TestServer};

/// The directory of the corpus.
pub const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/field");

/// How the chain meets the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// At the address the chain's IMDS probe looks (the builder's `imds_endpoint`).
    Probe,
    /// Through `AZURE_POD_IDENTITY_AUTHORITY_HOST` (no probe).
    PodIdentity,
}

/// The chain's expected outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Managed identity is unavailable; the next member (`az`) gives the token.
    NextMember,
    /// The managed-identity token.
    ManagedIdentity,
}

/// Which requests an answer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// Every request.
    Any,
    /// Requests without `Metadata: true` (the probe).
    WithoutMetadata,
    /// Requests with `Metadata: true`.
    WithMetadata,
}

/// One recorded answer.
#[derive(Clone, Debug)]
pub struct Answer {
    /// Which requests it answers.
    pub when: When,
    /// Status line and headers, one per line, without line ends.
    pub head: Vec<String>,
    /// The body, with placeholders.
    pub body: String,
}

/// One corpus file.
#[derive(Clone, Debug)]
pub struct Case {
    /// The file name without `.http`.
    pub name: String,
    /// Where the answer comes from.
    pub host: String,
    /// How the chain meets it.
    pub reach: Vec<Reach>,
    /// The expected outcome.
    pub expect: Expect,
    /// The delay before each answer.
    pub delay: Duration,
    /// At most this many requests per `get_token`.
    pub max_requests: Option<usize>,
    /// The answers; empty for a host that never answers.
    pub answers: Vec<Answer>,
}

/// Every case in [`DIR`], sorted by name.
///
/// # Errors
/// A file that cannot be read or parsed, named.
pub fn load_all() -> Result<Vec<Case>, String> {
    load_dir(Path::new(DIR))
}

/// Every `.http` case in `dir`, sorted by name.
///
/// # Errors
/// A file that cannot be read or parsed, named.
pub fn load_dir(dir: &Path) -> Result<Vec<Case>, String> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "http"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
            parse(&name, &text).map_err(|e| format!("{name}: {e}"))
        })
        .collect()
}

/// Loads the case `name` from [`DIR`].
///
/// # Errors
/// No such file, or it does not parse.
pub fn load(name: &str) -> Result<Case, String> {
    let path = Path::new(DIR).join(format!("{name}.http"));
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(name, &text).map_err(|e| format!("{name}: {e}"))
}

/// Parses one case file.
///
/// # Errors
/// A missing or invalid key, or an answer without a status line.
pub fn parse(name: &str, text: &str) -> Result<Case, String> {
    let mut lines = text.lines().peekable();
    let mut host = None;
    let mut reach = Vec::new();
    let mut expect = None;
    let mut delay = Duration::ZERO;
    let mut max_requests = None;
    let mut silent = false;
    while let Some(line) = lines.peek() {
        let Some(rest) = line.strip_prefix("# ") else {
            break;
        };
        let (key, value) = rest
            .split_once(':')
            .ok_or_else(|| format!("not a `# key: value` line: {line}"))?;
        let value = value.trim();
        match key.trim() {
            "host" => host = Some(value.to_owned()),
            "seen" => {}
            "reach" => {
                for r in value.split(',') {
                    reach.push(match r.trim() {
                        "probe" => Reach::Probe,
                        "pod-identity" => Reach::PodIdentity,
                        other => return Err(format!("unknown reach {other}")),
                    });
                }
            }
            "expect" => {
                expect = Some(match value {
                    "next-member" => Expect::NextMember,
                    "managed-identity" => Expect::ManagedIdentity,
                    other => return Err(format!("unknown expect {other}")),
                });
            }
            "delay-ms" => {
                delay = Duration::from_millis(value.parse().map_err(|_| "delay-ms: a number")?);
            }
            "max-requests" => {
                max_requests = Some(value.parse().map_err(|_| "max-requests: a number")?);
            }
            "answer" if value == "none" => silent = true,
            other => return Err(format!("unknown key {other}")),
        }
        lines.next();
    }
    let rest: Vec<&str> = lines.collect();
    let answers = if silent {
        Vec::new()
    } else {
        parse_answers(&rest)?
    };
    if !silent && answers.is_empty() {
        return Err("no answer (write `# answer: none` for a host that never answers)".into());
    }
    if reach.is_empty() {
        return Err("no reach".into());
    }
    Ok(Case {
        name: name.to_owned(),
        host: host.ok_or("no host")?,
        reach,
        expect: expect.ok_or("no expect")?,
        delay,
        max_requests,
        answers,
    })
}

fn parse_answers(lines: &[&str]) -> Result<Vec<Answer>, String> {
    let mut sections: Vec<(When, Vec<&str>)> = Vec::new();
    for line in lines {
        if let Some(title) = line.strip_prefix("### ") {
            let when = match title.trim() {
                "without Metadata" => When::WithoutMetadata,
                "with Metadata" => When::WithMetadata,
                other => return Err(format!("unknown section {other}")),
            };
            sections.push((when, Vec::new()));
        } else {
            if sections.is_empty() {
                if line.trim().is_empty() {
                    continue;
                }
                sections.push((When::Any, Vec::new()));
            }
            if let Some(last) = sections.last_mut() {
                last.1.push(line);
            }
        }
    }
    sections
        .into_iter()
        .map(|(when, lines)| {
            let start = lines
                .iter()
                .position(|l| !l.trim().is_empty())
                .ok_or("an empty answer")?;
            let lines = &lines[start..];
            let blank = lines
                .iter()
                .position(|l| l.is_empty())
                .unwrap_or(lines.len());
            let head: Vec<String> = lines[..blank].iter().map(|l| (*l).to_owned()).collect();
            if !head[0].starts_with("HTTP/") {
                return Err(format!("not a status line: {}", head[0]));
            }
            let body = lines.get(blank + 1..).unwrap_or_default().join("\n");
            Ok(Answer {
                when,
                head,
                body: body.trim_end_matches('\n').to_owned(),
            })
        })
        .collect()
}

impl Answer {
    /// The bytes to send: CRLF line ends in the head, placeholders filled in, a correct
    /// `Content-Length` where the recording has one.
    pub fn bytes(&self) -> Vec<u8> {
        #[allow(
            clippy::disallowed_methods,
            reason = "the replayed token must be valid on the real clock of the chain it is replayed to"
        )]
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let body = self
            .body
            .replace("{expires_on}", &(now + 86_400).to_string())
            .replace("{not_before}", &now.to_string());
        let mut out = String::new();
        for line in &self.head {
            match line.split_once(':') {
                Some((name, _)) if name.eq_ignore_ascii_case("content-length") => {
                    out.push_str(&format!("{name}: {}", body.len()));
                }
                _ => out.push_str(line),
            }
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        out.push_str(&body);
        out.into_bytes()
    }
}

/// A loopback server replaying one case: each connection gets one answer (after the case's
/// delay) and is closed; a case without answers holds every connection open, silent.
#[derive(Clone, Debug)]
pub struct Replay {
    /// The address it listens on.
    pub addr: SocketAddr,
    server: TestServer,
}

impl Replay {
    /// Starts the server; it runs until the runtime stops.
    ///
    /// # Errors
    /// None: a loopback listener that cannot be bound stops the test.
    pub async fn start(case: &Case) -> io::Result<Self> {
        let answers = case.answers.clone();
        let delay = case.delay;
        let server = TestServer::respond(move |request| {
            let metadata = request
                .header("metadata")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            let answer = answers.iter().find(|a| match a.when {
                When::Any => true,
                When::WithMetadata => metadata,
                When::WithoutMetadata => !metadata,
            });
            match answer {
                Some(answer) => Reply::raw(answer.bytes()).delay(delay),
                // Silent: hold the connection until the client gives up.
                None => Reply::silence(),
            }
        })
        .await;
        Ok(Self {
            addr: server.addr(),
            server,
        })
    }

    /// The IMDS token URL on this server (for `imds_endpoint`).
    pub fn token_url(&self) -> String {
        format!("http://{}/metadata/identity/oauth2/token", self.addr)
    }

    /// The authority (for `AZURE_POD_IDENTITY_AUTHORITY_HOST`).
    pub fn authority(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests it has received.
    pub fn requests(&self) -> usize {
        self.server.request_count()
    }
}
