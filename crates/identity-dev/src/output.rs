//! Reading what the tools print: redaction of token-like text, expiry formats, the local
//! time offset.
//!
//! # Local time for the Azure CLI's legacy `expiresOn`
//! Azure CLI versions before 2.54 (November 2023) print only `expiresOn`, a naive local time
//! (`YYYY-MM-DD HH:MM:SS.ffffff`). Converting it needs the machine's UTC offset at that
//! local time, which the crate's `tz` module answers from the injected environment's `TZ`
//! (never the process environment), with `jiff`'s zone rules and no extra process:
//!
//! * `TZ` unset or empty: the `TZif` file `/etc/localtime`;
//! * a UTC name (`UTC`, `Etc/UTC`, `GMT`, …), `Etc/GMT±N`, or a POSIX fixed offset (`UTC0`,
//!   `EST5`, `<+0530>-5:30`): that offset, no file read;
//! * a zone name (`America/New_York`, `:America/New_York`): the `TZif` file under `TZDIR`
//!   (default `/usr/share/zoneinfo`), with the name checked so nothing outside is read;
//! * a POSIX rule (`EST5EDT,M3.2.0,M11.1.0`): parsed directly.
//!
//! A local time that falls in a daylight-saving gap or fold takes the offset giving the
//! earlier instant, so the token is never kept past its real expiry.
//!
//! When the zone cannot be determined or read (no file, a refused name, a malformed file), the
//! expiry is taken conservatively: five minutes from now (the CLI's token library never
//! returns a token with less than five minutes left), clamped into the range the naive time
//! allows for any real offset (UTC−12 … UTC+14), and the reason is logged at debug level. The
//! cost is that such old CLIs are asked again every few minutes. Upgrading the CLI removes the
//! question, since `expires_on` (epoch seconds) is preferred whenever present.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use identity_core::{from_unix_seconds, wire};
use jiff::tz::Offset;

/// The longest excerpt of a tool's output put into an error message.
pub(crate) const MAX_EXCERPT: usize = 1000;

/// Keys whose string values are redacted wherever they appear in a tool's output.
const SECRET_KEYS: [&str; 4] = ["accesstoken", "token", "access_token", "refresh_token"];

/// Removes token-like text from a tool's output and truncates it for an error message:
/// `"accessToken": "…"` / `"token": "…"` values (any case), JWT-looking `eyJ…` runs and the
/// token part of PowerShell's `azsdk%<token>%<expiry>` marker become `***`.
pub(crate) fn scrub(text: &str) -> String {
    let text = redact_json_values(text);
    let text = redact_marker(&text);
    let text = redact_jwts(&text);
    truncate(text.trim(), MAX_EXCERPT)
}

fn redact_json_values(text: &str) -> String {
    // Search every occurrence of each quoted key independently of how the quotes around it
    // pair up, so a stray quote earlier in the text cannot shift the parse past a secret.
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for key in SECRET_KEYS {
        let needle = format!("\"{key}\"");
        let mut from = 0;
        while let Some(found) = lower[from..].find(&needle) {
            let mut j = from + found + needle.len();
            from = j;
            while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            if bytes.get(j) != Some(&b':') {
                continue;
            }
            j += 1;
            while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            if bytes.get(j) != Some(&b'"') {
                continue;
            }
            let value_start = j + 1;
            let mut k = value_start;
            while k < bytes.len() && bytes[k] != b'"' {
                k += if bytes[k] == b'\\' { 2 } else { 1 };
            }
            ranges.push((value_start, k.min(bytes.len())));
        }
    }
    ranges.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (start, end) in ranges {
        if start < copied {
            continue;
        }
        // Both ends sit next to ASCII bytes (a quote, or the text's end), so they are char
        // boundaries.
        out.push_str(&text[copied..start]);
        out.push_str("***");
        copied = end;
    }
    out.push_str(&text[copied..]);
    out
}

fn redact_marker(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("azsdk%") {
        let start = at + "azsdk%".len();
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let end = after
            .find(|c: char| c == '%' || c.is_whitespace())
            .unwrap_or(after.len());
        out.push_str("***");
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn redact_jwts(text: &str) -> String {
    let is_jwt_char =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | '/' | '=');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("eyJ") {
        // Only a run that starts at a word boundary is a token.
        let boundary = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !is_jwt_char(c));
        let after = &rest[at..];
        let len = after.find(|c: char| !is_jwt_char(c)).unwrap_or(after.len());
        out.push_str(&rest[..at]);
        if boundary && len >= 8 {
            out.push_str("***");
        } else {
            out.push_str(&after[..len]);
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… (truncated)", &text[..end])
}

/// Base64 (standard alphabet, padded) of a claims challenge, as the tools take it.
pub(crate) fn encode_claims(claims: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(claims.as_bytes())
}

/// An epoch-seconds value given as a JSON number or a numeric string, a fraction dropped in
/// both (docs/protocol.md §1.5).
pub(crate) fn epoch_from_json(value: &serde_json::Value) -> Option<SystemTime> {
    from_unix_seconds(i64::try_from(wire::seconds_from_json(value)?).ok()?)
}

/// True for a JSON `null` or a blank string: an expiry field that counts as absent
/// (docs/protocol.md §1.5).
pub(crate) fn blank_json(value: &serde_json::Value) -> bool {
    wire::is_blank_json(value)
}

/// The Azure CLI's legacy `expiresOn`: exactly `YYYY-MM-DD HH:MM:SS.ffffff` (a fraction of one
/// to six digits required, as in the reference), returned as seconds since the epoch *as if it
/// were UTC*.
pub(crate) fn parse_cli_naive(text: &str) -> Option<i64> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.')?;
    if whole.len() != 19 || fraction.is_empty() || fraction.len() > 6 {
        return None;
    }
    let wall = jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S%.f", text).ok()?;
    Some(whole_seconds(Offset::UTC.to_timestamp(wall).ok()?))
}

/// The whole seconds at or before `at` (the fraction dropped, before 1970 too).
fn whole_seconds(at: jiff::Timestamp) -> i64 {
    at.as_second() - i64::from(at.subsec_nanosecond() < 0)
}

/// RFC 3339 (`2030-01-01T10:00:00Z`, optional fraction, `Z` or `±HH:MM`), read as the instant
/// it names: never as local time (docs/protocol.md §9 #11). A text without an offset is refused.
pub(crate) fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let at: jiff::Timestamp = text.trim().parse().ok()?;
    from_unix_seconds(whole_seconds(at))
}

/// Converts the CLI's naive local `expiresOn` to an instant, per the [module docs](self):
/// exact when the zone `env` names can be read, conservative otherwise.
pub(crate) fn local_expiry(
    naive_as_utc: i64,
    env: &identity_core::Env,
    now: SystemTime,
) -> Option<SystemTime> {
    if let Some(offset) = crate::tz::offset_for_local(env, naive_as_utc) {
        return from_unix_seconds(naive_as_utc.checked_sub(offset)?);
    }
    tracing::debug!("local time zone unknown; treating the token as expiring in five minutes");
    let earliest = from_unix_seconds(naive_as_utc.checked_sub(14 * 3600)?)?;
    let latest = from_unix_seconds(naive_as_utc.checked_add(12 * 3600)?)?;
    let guess = now + Duration::from_secs(300);
    Some(guess.clamp(earliest, latest))
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJwbGFudGVkIn0.c2lnbmF0dXJl";

    #[test]
    fn scrubbing_removes_token_values_jwts_and_markers() {
        let text = format!(
            r#"{{"accessToken": "planted-1", "Token":"planted-2", "other": "kept"}} bearer {JWT} azsdk%planted-3%1893492000"#
        );
        let s = scrub(&text);
        assert!(!s.contains("planted"), "{s}");
        assert!(!s.contains("eyJ0eXAi"), "{s}");
        assert!(s.contains("kept"), "{s}");
        assert!(s.contains(r#""accessToken": "***""#), "{s}");
        assert!(s.contains("azsdk%***%1893492000"), "{s}");
    }

    #[test]
    fn scrubbing_handles_escapes_unterminated_values_and_unicode() {
        assert!(!scrub(r#"{"token": "pla\"nted"}"#).contains("nted"));
        assert!(!scrub(r#"{"token": "planted"#).contains("planted"));
        assert_eq!(scrub("héllo \"unterminated"), "héllo \"unterminated");
        let long = "é".repeat(MAX_EXCERPT);
        let cut = scrub(&long);
        assert!(
            cut.len() < MAX_EXCERPT + 20 && cut.ends_with("(truncated)"),
            "{}",
            cut.len()
        );
    }

    #[test]
    fn a_stray_quote_does_not_hide_a_token_from_redaction() {
        let s = scrub(r#"x" "accessToken": "planted" and "TOKEN" : "planted2""#);
        assert!(!s.contains("planted"), "{s}");
    }

    #[test]
    fn words_that_merely_contain_eyj_are_kept() {
        assert_eq!(scrub("keyJam eyJ"), "keyJam eyJ");
    }

    #[test]
    fn fractions_are_dropped_towards_the_past_before_1970_too() {
        assert_eq!(parse_cli_naive("1969-12-31 23:59:59.5"), Some(-1));
        let at = parse_rfc3339("1970-01-01T00:00:00.5+00:01").unwrap();
        assert_eq!(
            SystemTime::UNIX_EPOCH.duration_since(at).ok(),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn cli_naive_time_needs_the_exact_pattern() {
        assert_eq!(
            parse_cli_naive("2030-01-01 10:00:00.000000"),
            Some(1_893_492_000)
        );
        assert_eq!(
            parse_cli_naive("2030-01-01 10:00:00.5"),
            Some(1_893_492_000)
        );
        for bad in [
            "2030-01-01 10:00:00",
            "2030-01-01T10:00:00.000000",
            "2030-13-01 10:00:00.0",
            "x",
        ] {
            assert_eq!(parse_cli_naive(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_is_read_as_the_instant_it_names() {
        let at = |s| {
            parse_rfc3339(s).map(|t| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs())
        };
        assert_eq!(at("2030-01-01T10:00:00Z"), Some(1_893_492_000));
        assert_eq!(at("2030-01-01T10:00:00.1234567Z"), Some(1_893_492_000));
        assert_eq!(at("2030-01-01T11:00:00+01:00"), Some(1_893_492_000));
        assert_eq!(at("2030-01-01T05:00:00-05:00"), Some(1_893_492_000));
        for bad in [
            "2030-01-01T10:00:00",
            "2030-01-01T10:00:00.Z",
            "2030-01-01 10:00",
            "soon",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn local_expiry_is_exact_for_known_zones_and_conservative_otherwise() {
        use identity_core::Env;
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_488_400); // 09:00Z
        let naive = 1_893_492_000; // 10:00 as if UTC
        let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        let tz = |tz: &str| Env::from_pairs([("TZ", tz), ("TZDIR", "/nonexistent")]);
        assert_eq!(
            secs(local_expiry(naive, &tz("EST5"), now).unwrap()),
            1_893_510_000
        );
        assert_eq!(
            secs(local_expiry(naive, &tz("UTC"), now).unwrap()),
            1_893_492_000
        );
        // Unknown zone: five minutes from now, within the possible range.
        assert_eq!(
            secs(local_expiry(naive, &tz("Nowhere/Special"), now).unwrap()),
            1_893_488_700
        );
        // A naive time far in the past can only mean an already expired token.
        assert_eq!(
            secs(local_expiry(naive - 86_400, &tz("Nowhere/Special"), now).unwrap()),
            1_893_492_000 - 86_400 + 12 * 3600
        );
    }

    #[test]
    fn claims_are_standard_base64_with_padding() {
        assert_eq!(encode_claims("{\"a\":1}"), "eyJhIjoxfQ==");
    }
}
