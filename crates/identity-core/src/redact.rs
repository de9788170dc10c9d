//! Removing the secrets of a request from text its response quotes back.
//!
//! A token service that refuses a request often explains why, and some explanations echo what
//! they were sent: `400 {"message": "bad header <the X-IDENTITY-HEADER value>"}`. Whatever a
//! credential shows or logs from a response therefore goes through a [`Redactor`] holding
//! every secret of that request first. The redactor finds a secret
//!
//! * verbatim;
//! * with any of its bytes escaped the ways a server writes them back: percent-encoding
//!   (`%2F`, either case; `+` for a space), JSON and C escapes (`\u002f`, `\x2f`, `\/`), in
//!   any mix;
//! * in hexadecimal (either case);
//! * inside base64 (standard or URL-safe alphabet, at any of the three byte alignments, so a
//!   secret in the middle of an encoded `user:secret` pair is found too): the whole run of
//!   base64 characters around it is removed;
//! * cut short by a length limit: a prefix of 6 or more bytes directly followed by `…` or at
//!   the end of the text.
//!
//! Each occurrence becomes `***`. Secrets shorter than [`MIN_SECRET_LEN`] bytes are not
//! searched for: they would match ordinary words.
//!
//! [`Redactor::from_headers`] collects the secrets of a request from its headers (every value
//! marked [sensitive](http::HeaderValue::set_sensitive), and the credentials after an
//! authentication scheme such as `Basic`); [`Error::redact`](crate::Error::redact) applies a
//! redactor to an error's message and causes.
//!
//! ```
//! use identity_core::redact::Redactor;
//! let r = Redactor::new().with("s3cret/value");
//! assert_eq!(r.redact("bad header s3cret/value"), "bad header ***");
//! assert_eq!(r.redact("bad header s3cret%2Fvalue"), "bad header ***");
//! assert_eq!(r.redact("basic czNjcmV0L3ZhbHVl"), "basic ***");
//! assert_eq!(r.quote("bad header s3cret/value, retry", 12), "bad header *…");
//! ```

use std::borrow::Cow;
use std::fmt;

/// Values shorter than this many bytes are not searched for.
pub const MIN_SECRET_LEN: usize = 4;

/// The shortest prefix of a secret that is removed where a length limit cut the secret.
const MIN_CUT_PREFIX: usize = 6;

/// The secrets of one request, and the way to remove them from text. `Debug` shows how many
/// secrets it holds, never their values.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<Needle>,
}

#[derive(Clone)]
struct Needle {
    raw: Vec<u8>,
    /// Exact forms: lower- and upper-case hex.
    exact: Vec<String>,
    /// The stable middle of the secret's base64 form at each alignment, in both alphabets.
    base64: Vec<String>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Redactor {
    /// A redactor that knows no secret (it changes nothing).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a secret (ignored when shorter than [`MIN_SECRET_LEN`] bytes or already known).
    pub fn add(&mut self, secret: impl AsRef<[u8]>) {
        let raw = secret.as_ref();
        if raw.len() < MIN_SECRET_LEN || self.secrets.iter().any(|n| n.raw == raw) {
            return;
        }
        self.secrets.push(Needle::new(raw));
    }

    /// [`add`](Self::add), by value.
    #[must_use]
    pub fn with(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.add(secret);
        self
    }

    /// Adds the secrets carried in `headers`: every value marked sensitive, and for a value of
    /// the form `<scheme> <credentials>` (`Basic …`, `Bearer …`) the credentials alone too.
    pub fn add_headers(&mut self, headers: &http::HeaderMap) {
        for value in headers.values().filter(|v| v.is_sensitive()) {
            let bytes = value.as_bytes();
            self.add(bytes);
            if let Some(space) = bytes.iter().position(|b| *b == b' ') {
                let scheme = &bytes[..space];
                if !scheme.is_empty() && scheme.iter().all(u8::is_ascii_alphanumeric) {
                    self.add(bytes[space + 1..].trim_ascii());
                }
            }
        }
    }

    /// A redactor holding the secrets of `headers` (see [`add_headers`](Self::add_headers)).
    #[must_use]
    pub fn from_headers(headers: &http::HeaderMap) -> Self {
        let mut r = Self::new();
        r.add_headers(headers);
        r
    }

    /// Whether the redactor knows no secret.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Whether `text` holds any known secret in any of the forms in the [module docs](self).
    #[must_use]
    pub fn contains(&self, text: &str) -> bool {
        !self.spans(text).is_empty()
    }

    /// `text` with every occurrence of a known secret replaced by `***`.
    #[must_use]
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let spans = self.spans(text);
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end) in spans {
            out.push_str(&text[at..start]);
            out.push_str("***");
            at = end;
        }
        out.push_str(&text[at..]);
        Cow::Owned(out)
    }

    /// Service text made safe to show: secrets removed first, then control characters turned
    /// into spaces, then cut to at most `max_chars` characters (with `…` when cut). Removing
    /// before cutting means a secret cut by the limit cannot leave a prefix behind.
    #[must_use]
    pub fn quote(&self, text: &str, max_chars: usize) -> String {
        // Only the part that can reach the output is searched, so a huge body costs no more
        // than a short one: the first `max_chars` characters plus the longest encoded form of
        // a secret. Removing secrets shortens the text and pulls later text forward, so the
        // window grows until what is left of it still reaches past that point.
        let margin = self
            .secrets
            .iter()
            .map(|n| n.raw.len() * 6 + 8)
            .max()
            .unwrap_or(0);
        let wanted = max_chars.saturating_add(margin);
        let mut window = wanted;
        let (cleaned, window_end) = loop {
            let window_end = text
                .char_indices()
                .nth(window)
                .map_or(text.len(), |(i, _)| i);
            let cleaned = self.redact(&text[..window_end]);
            if window_end == text.len() || cleaned.chars().nth(wanted).is_some() {
                break (cleaned, window_end);
            }
            window = window.saturating_mul(2);
        };
        let mut out: String = cleaned
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(max_chars)
            .collect();
        if window_end < text.len() || cleaned.chars().nth(max_chars).is_some() {
            out.push('…');
        }
        out
    }

    /// The byte ranges of `text` to remove, sorted and merged, on character boundaries.
    fn spans(&self, text: &str) -> Vec<(usize, usize)> {
        let bytes = text.as_bytes();
        let mut spans = Vec::new();
        for needle in &self.secrets {
            needle.find(bytes, &mut spans);
        }
        if spans.is_empty() {
            return spans;
        }
        for span in &mut spans {
            while !text.is_char_boundary(span.0) {
                span.0 -= 1;
            }
            while !text.is_char_boundary(span.1) {
                span.1 += 1;
            }
        }
        spans.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
        for (start, end) in spans {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }
}

impl Needle {
    fn new(raw: &[u8]) -> Self {
        let mut exact = Vec::with_capacity(2);
        let lower: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        exact.push(lower.to_ascii_uppercase());
        exact.push(lower);
        let mut base64 = Vec::with_capacity(6);
        for align in 0..3usize {
            let mut padded = vec![0u8; align];
            padded.extend_from_slice(raw);
            let encoded = base64_encode(&padded);
            // Character c carries bits [6c, 6c + 6); the secret occupies [8 align, 8 (align + n)).
            let first = (8 * align).div_ceil(6);
            let end = (8 * (align + raw.len())) / 6;
            if end > first && end - first >= MIN_SECRET_LEN {
                let middle = &encoded[first..end];
                let url: String = middle
                    .chars()
                    .map(|c| match c {
                        '+' => '-',
                        '/' => '_',
                        c => c,
                    })
                    .collect();
                if url != middle {
                    base64.push(url);
                }
                base64.push(middle.to_owned());
            }
        }
        Self {
            raw: raw.to_vec(),
            exact,
            base64,
        }
    }

    fn find(&self, text: &[u8], spans: &mut Vec<(usize, usize)>) {
        // Verbatim or escaped, in any mix.
        let mut i = 0;
        while i < text.len() {
            if let Some(end) = match_escaped(text, i, &self.raw) {
                spans.push((i, end));
                i = end;
            } else {
                i += 1;
            }
        }
        for form in &self.exact {
            for start in find_all(text, form.as_bytes()) {
                spans.push((start, start + form.len()));
            }
        }
        for form in &self.base64 {
            for start in find_all(text, form.as_bytes()) {
                let mut a = start;
                while a > 0 && is_base64(text[a - 1]) {
                    a -= 1;
                }
                let mut b = start + form.len();
                while b < text.len() && is_base64(text[b]) {
                    b += 1;
                }
                spans.push((a, b));
            }
        }
        // A prefix cut by a length limit: just before a `…` or at the end of the text.
        let n = self.raw.len();
        if n > MIN_CUT_PREFIX {
            let ellipsis = "…".as_bytes();
            let cuts = find_all(text, ellipsis).chain(std::iter::once(text.len()));
            for cut in cuts {
                if let Some(len) = (MIN_CUT_PREFIX..n)
                    .rev()
                    .find(|&len| cut >= len && text[cut - len..cut] == self.raw[..len])
                {
                    spans.push((cut - len, cut));
                }
            }
        }
    }
}

fn find_all<'a>(haystack: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    let n = needle.len();
    (0..haystack.len().saturating_sub(n.saturating_sub(1)))
        .filter(move |&i| n > 0 && &haystack[i..i + n] == needle)
}

/// Matches `secret` at `text[i..]` where each byte may be written verbatim or escaped;
/// returns the end of the longest match. Every way of reading each byte is followed (a `\`
/// may be the secret's own backslash or the start of an escape).
fn match_escaped(text: &[u8], i: usize, secret: &[u8]) -> Option<usize> {
    let mut at = vec![i];
    let mut next = Vec::with_capacity(4);
    for &b in secret {
        next.clear();
        for &p in &at {
            for end in match_byte(text, p, b).into_iter().flatten() {
                if !next.contains(&end) {
                    next.push(end);
                }
            }
        }
        if next.is_empty() {
            return None;
        }
        std::mem::swap(&mut at, &mut next);
    }
    at.into_iter().max()
}

/// The ends of every reading of byte `b` at `text[i..]`: verbatim, `+` for a space, `%XX`,
/// `\uXXXX`, `\xXX`, or a backslash-escaped `/`, `"`, `\`, `'`.
fn match_byte(text: &[u8], i: usize, b: u8) -> [Option<usize>; 3] {
    let Some(&c) = text.get(i) else {
        return [None; 3];
    };
    let verbatim = (c == b || (c == b'+' && b == b' ')).then_some(i + 1);
    let hex_is = |from: usize, len: usize| {
        text.get(from..from + len)
            .and_then(hex)
            .is_some_and(|v| v == u32::from(b))
    };
    let escaped = match c {
        b'%' => hex_is(i + 1, 2).then_some(i + 3),
        b'\\' => match text.get(i + 1) {
            Some(b'u') if hex_is(i + 2, 4) => Some(i + 6),
            Some(b'x') if hex_is(i + 2, 2) => Some(i + 4),
            _ => None,
        },
        _ => None,
    };
    let backslashed =
        (c == b'\\' && matches!(b, b'/' | b'"' | b'\\' | b'\'') && text.get(i + 1) == Some(&b))
            .then_some(i + 2);
    [verbatim, escaped, backslashed]
}

fn hex(digits: &[u8]) -> Option<u32> {
    digits
        .iter()
        .try_fold(0u32, |acc, d| Some(acc * 16 + char::from(*d).to_digit(16)?))
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'=')
}

/// Standard base64, without padding.
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for k in 0..=chunk.len() {
            let index = (n >> (18 - 6 * k)) & 0x3f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "Pl4nted/S3cret+V4lue=";

    fn r() -> Redactor {
        Redactor::new().with(SECRET)
    }

    fn percent_all(s: &str) -> String {
        s.bytes().map(|b| format!("%{b:02x}")).collect()
    }

    #[test]
    fn the_secret_is_removed_in_every_form() {
        let forms = [
            SECRET.to_owned(),
            percent_all(SECRET),
            percent_all(SECRET).to_uppercase(),
            "Pl4nted%2FS3cret%2BV4lue%3D".to_owned(),
            "Pl4nted\\/S3cret\\u002bV4lue\\x3d".to_owned(),
            SECRET.bytes().map(|b| format!("\\u{b:04x}")).collect(),
            SECRET.bytes().map(|b| format!("{b:02x}")).collect(),
            SECRET.bytes().map(|b| format!("{b:02X}")).collect(),
        ];
        for form in forms {
            let text = format!("before {form} after");
            assert_eq!(r().redact(&text), "before *** after", "{form}");
            assert!(r().contains(&text));
        }
    }

    #[test]
    fn base64_at_every_alignment_and_in_both_alphabets_is_removed() {
        for prefix in ["", "a", "ab", "abc", "user:"] {
            let raw = format!("{prefix}{SECRET}!?");
            let std = base64_encode(raw.as_bytes());
            let url: String = std
                .chars()
                .map(|c| match c {
                    '+' => '-',
                    '/' => '_',
                    c => c,
                })
                .collect();
            for form in [std, url] {
                let text = format!("Basic {form}== end");
                assert_eq!(r().redact(&text), "Basic *** end", "{prefix} {form}");
            }
        }
    }

    #[test]
    fn a_secret_cut_by_a_limit_leaves_no_prefix() {
        assert_eq!(r().redact("header Pl4nted/S3c…"), "header ***…");
        assert_eq!(r().redact("header Pl4nted/S3c"), "header ***");
        // A short prefix in ordinary text is left alone.
        assert_eq!(r().redact("Pl4n is fine"), "Pl4n is fine");
        let quoted = r().quote(&format!("bad header {SECRET} and more"), 15);
        assert_eq!(quoted, "bad header *** …");
    }

    #[test]
    fn text_pulled_forward_by_an_earlier_removal_is_searched_too() {
        // Many echoes early on shorten the text, so that an echo far beyond the first window
        // lands in the quoted part.
        let escaped: String = SECRET.bytes().map(|b| format!("\\u{b:04x}")).collect();
        let text = format!("{} tail {escaped} end", escaped.repeat(20));
        let quoted = r().quote(&text, 100);
        assert!(quoted.contains("tail *** end"), "{quoted}");
    }

    #[test]
    fn quote_cuts_and_maps_control_characters() {
        let r = Redactor::new();
        assert_eq!(r.quote("a\nb", 10), "a b");
        assert_eq!(r.quote("abcdef", 3), "abc…");
        assert_eq!(r.quote("abc", 3), "abc");
        let long = format!("{}{SECRET}", "x".repeat(10_000));
        assert!(!self::r().quote(&long, 10_010).contains("Pl4nted"));
    }

    #[test]
    fn short_values_and_non_sensitive_headers_are_ignored() {
        let mut headers = http::HeaderMap::new();
        headers.insert("metadata", http::HeaderValue::from_static("true"));
        let mut secret = http::HeaderValue::from_static("Basic the-arc-key");
        secret.set_sensitive(true);
        headers.insert("authorization", secret);
        let r = Redactor::from_headers(&headers);
        assert_eq!(r.secrets.len(), 2);
        assert_eq!(r.redact("true the-arc-key"), "true ***");
        assert!(Redactor::new().with("abc").is_empty());
        assert_eq!(format!("{r:?}"), "Redactor { secrets: 2 }");
    }

    #[test]
    fn a_backslash_in_the_secret_is_read_both_ways() {
        let r = Redactor::new().with("\\a!aAA!A");
        let escaped: String = "\\a!aAA!A".bytes().map(|b| format!("\\u{b:04x}")).collect();
        assert_eq!(r.redact(&format!("x {escaped} y")), "x *** y");
        assert_eq!(r.redact("x \\\\a!aAA!A y"), "x *** y");
        assert_eq!(r.redact("x \\a!aAA!A y"), "x *** y");
    }

    #[test]
    fn non_ascii_text_around_a_secret_keeps_its_characters() {
        let text = format!("é{SECRET}é …");
        assert_eq!(r().redact(&text), "é***é …");
    }
}

/// Text quoted from outside (a tool's stderr, a service's error description) made safe for a
/// message or a log line, whatever the request's secrets were:
///
/// * anything shaped like a JSON Web Token (`eyJ…` base64url, a dot, base64url, a dot, an
///   optional signature), which is what every Microsoft Entra access token and assertion is,
///   becomes `***`, so a token a tool or service echoes never reaches an error;
/// * terminal escape sequences (`ESC [ … m` and the like) are dropped and other control
///   characters except newline and tab become `?`, so quoted text cannot rewrite a terminal.
///
/// Text with neither is returned as it is, without copying.
///
/// ```
/// use identity_core::redact::scrub;
/// let quoted = "\u{1b}[31mERROR\u{1b}[0m accessToken=eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJ4In0.c2lnbmF0dXJl";
/// assert_eq!(scrub(quoted), "ERROR accessToken=***");
/// ```
#[must_use]
pub fn scrub(text: &str) -> std::borrow::Cow<'_, str> {
    let bytes = text.as_bytes();
    let needs = bytes
        .iter()
        .any(|&b| (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f)
        || text.contains("eyJ");
    if !needs {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        if rest.starts_with("eyJ") {
            if let Some(len) = jwt_len(rest) {
                out.push_str("***");
                i += len;
                continue;
            }
        }
        let Some(c) = rest.chars().next() else { break };
        if c == '\u{1b}' {
            i += escape_len(rest);
            continue;
        }
        if c.is_control() && c != '\n' && c != '\t' {
            out.push('?');
        } else {
            out.push(c);
        }
        i += c.len_utf8();
    }
    std::borrow::Cow::Owned(out)
}

/// The length of a JSON Web Token at the start of `text` (two base64url segments of at least
/// 8 characters and a third, possibly empty, joined by dots), if there is one.
fn jwt_len(text: &str) -> Option<usize> {
    let is_b64 = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_';
    let bytes = text.as_bytes();
    let header = bytes.iter().take_while(|b| is_b64(b)).count();
    if header < 8 || bytes.get(header) != Some(&b'.') {
        return None;
    }
    let payload = bytes[header + 1..].iter().take_while(|b| is_b64(b)).count();
    if payload < 8 || bytes.get(header + 1 + payload) != Some(&b'.') {
        return None;
    }
    let start = header + payload + 2;
    let signature = bytes[start..].iter().take_while(|b| is_b64(b)).count();
    Some(start + signature)
}

/// The length of the terminal escape sequence at the start of `text` (which starts with ESC):
/// a CSI sequence `ESC [ params final`, or ESC and the one character after it.
fn escape_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    if bytes.get(1) == Some(&b'[') {
        let end = bytes[2..]
            .iter()
            .position(|b| (0x40..=0x7e).contains(b))
            .map_or(bytes.len(), |p| p + 3);
        return end.min(bytes.len()).min(64);
    }
    text.chars().nth(1).map_or(1, |c| 1 + c.len_utf8())
}

#[cfg(test)]
mod scrub_tests {
    use super::scrub;

    #[test]
    fn a_token_in_quoted_text_is_masked_and_the_rest_kept() {
        let jwt =
            "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL3ZhdWx0In0.SIGNATURE_SECRET";
        let text = format!("ERROR: accessToken={jwt} was refused");
        assert_eq!(scrub(&text), "ERROR: accessToken=*** was refused");
        // An unsigned token (empty third segment) too.
        assert_eq!(scrub("t=eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4eHgifQ."), "t=***");
    }

    #[test]
    fn terminal_escapes_are_dropped_and_control_characters_replaced() {
        assert_eq!(
            scrub("\u{1b}[31mred\u{1b}[0m\u{7}bell\nnext\tcol"),
            "red?bell\nnext\tcol"
        );
        assert_eq!(scrub("trailing \u{1b}["), "trailing ");
    }

    #[test]
    fn ordinary_text_is_not_copied_or_changed() {
        let text = "AADSTS70011: the scope eyJ is not valid";
        assert!(matches!(scrub(text), std::borrow::Cow::Borrowed(_)) || scrub(text) == text);
        assert_eq!(scrub(text), text);
        assert!(matches!(scrub("plain"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn never_panics_on_odd_utf8() {
        for text in [
            "eyJ",
            "eyJé.é.é",
            "\u{1b}é",
            "\u{1b}[é",
            "eyJaaaaaaaa.",
            "eyJaaaaaaaa.bbbbbbbb",
        ] {
            let _ = scrub(text);
        }
    }
}
