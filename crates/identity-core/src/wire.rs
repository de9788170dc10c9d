//! The lexical rules every token-response parser shares (docs/protocol.md §1.5), for the
//! crates that read a token service's JSON or a developer tool's output.
//!
//! * A body may start with a UTF-8 byte order mark (`EF BB BF`); it is skipped.
//! * Seconds (an epoch time or a lifetime) read the same from a JSON number and from a string:
//!   whole seconds, with any fraction dropped, never negative.
//! * An expiry field whose value is `null` or a blank string counts as absent, so the parser
//!   falls back to the other expiry field (each parser's [`is_blank`] check).

/// The UTF-8 byte order mark, as bytes.
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The largest seconds value with a fraction that is read: 10¹² s (about 31 700 years), far
/// past any expiry and lifetime, so a float is always exact in its whole part.
const MAX_FRACTIONAL_SECONDS: u64 = 1_000_000_000_000;

/// `body` without one leading UTF-8 byte order mark.
///
/// ```
/// use identity_core::wire::strip_bom;
/// assert_eq!(strip_bom(b"\xEF\xBB\xBF{}"), b"{}");
/// assert_eq!(strip_bom(b"{}"), b"{}");
/// ```
pub fn strip_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(UTF8_BOM).unwrap_or(body)
}

/// `text` without one leading byte order mark (`U+FEFF`).
///
/// ```
/// use identity_core::wire::strip_bom_str;
/// assert_eq!(strip_bom_str("\u{feff}{}"), "{}");
/// ```
pub fn strip_bom_str(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// True for a text that is empty or only whitespace: as an expiry field's value, absent.
pub fn is_blank(text: &str) -> bool {
    text.trim().is_empty()
}

/// Whole seconds from a decimal text: ASCII digits with an optional `+` before them and an
/// optional fraction (`.` and at least one digit) after them, surrounded by optional
/// whitespace. The fraction is dropped, as [`seconds_from_f64`] drops a number's; a value with a
/// fraction is read only below 10¹² s, as a number is. `None` for anything else (a sign `-`,
/// an exponent, a blank text, an overflow).
///
/// ```
/// use identity_core::wire::seconds_from_text;
/// assert_eq!(seconds_from_text(" 1796000000 "), Some(1_796_000_000));
/// assert_eq!(seconds_from_text("1796000000.0"), Some(1_796_000_000));
/// assert_eq!(seconds_from_text("3599.9"), Some(3599));
/// assert_eq!(seconds_from_text(""), None);
/// assert_eq!(seconds_from_text("-1"), None);
/// assert_eq!(seconds_from_text("1e9"), None);
/// ```
pub fn seconds_from_text(text: &str) -> Option<u64> {
    let text = text.trim();
    let unsigned = text.strip_prefix('+').unwrap_or(text);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
        return None;
    }
    let seconds: u64 = whole.parse().ok()?;
    if fraction.is_some() && seconds >= MAX_FRACTIONAL_SECONDS {
        return None;
    }
    Some(seconds)
}

/// Whole seconds from a JSON number that is not an integer (`1796000000.5`): the fraction
/// dropped; `None` when negative, not finite or not below 10¹² s.
///
/// ```
/// use identity_core::wire::seconds_from_f64;
/// assert_eq!(seconds_from_f64(1_796_000_000.5), Some(1_796_000_000));
/// assert_eq!(seconds_from_f64(-0.5), None);
/// assert_eq!(seconds_from_f64(f64::NAN), None);
/// ```
pub fn seconds_from_f64(value: f64) -> Option<u64> {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "range checked: 0 <= value < 10^12, exact in an f64"
    )]
    (value.is_finite() && (0.0..MAX_FRACTIONAL_SECONDS as f64).contains(&value))
        .then_some(value as u64)
}

/// Whole seconds from a JSON value: a number (an integer, or one with a fraction, which is
/// dropped: [`seconds_from_f64`]) or a numeric string ([`seconds_from_text`]); anything else
/// is `None`. The one reading of epoch seconds and lifetimes in token answers
/// (docs/protocol.md §1.5).
///
/// ```
/// use identity_core::wire::seconds_from_json;
/// use serde_json::json;
/// assert_eq!(seconds_from_json(&json!(3600)), Some(3600));
/// assert_eq!(seconds_from_json(&json!(1_796_000_000.5)), Some(1_796_000_000));
/// assert_eq!(seconds_from_json(&json!("1796000000.0")), Some(1_796_000_000));
/// assert_eq!(seconds_from_json(&json!(-1)), None);
/// assert_eq!(seconds_from_json(&json!(true)), None);
/// ```
pub fn seconds_from_json(value: &serde_json::Value) -> Option<u64> {
    match value {
        serde_json::Value::Number(n) => {
            n.as_u64().or_else(|| n.as_f64().and_then(seconds_from_f64))
        }
        serde_json::Value::String(s) => seconds_from_text(s),
        _ => None,
    }
}

/// True for a JSON `null` or a blank string: an expiry field that counts as absent
/// (docs/protocol.md §1.5).
pub fn is_blank_json(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => true,
        serde_json::Value::String(s) => is_blank(s),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_and_a_number_with_the_same_value_read_the_same() {
        for (text, number) in [
            ("0", 0.0),
            ("1796000000.0", 1_796_000_000.0),
            ("1796000000.5", 1_796_000_000.5),
            ("3599.999", 3599.999),
            ("999999999999.9", 999_999_999_999.9),
            ("1000000000000.5", 1_000_000_000_000.5),
        ] {
            assert_eq!(seconds_from_text(text), seconds_from_f64(number), "{text}");
        }
    }

    #[test]
    fn only_plain_decimals_are_seconds() {
        for bad in [
            "",
            " ",
            ".5",
            "5.",
            "-5",
            "- 5",
            "1e9",
            "0x10",
            "inf",
            "NaN",
            "1.2.3",
            "1 2",
            "１",
            "+",
            "+-1",
            "99999999999999999999999",
        ] {
            assert_eq!(seconds_from_text(bad), None, "{bad:?}");
        }
        assert_eq!(seconds_from_text("+5"), Some(5));
        assert_eq!(seconds_from_text("\t86400\n"), Some(86_400));
        assert_eq!(seconds_from_text("18446744073709551615"), Some(u64::MAX));
    }

    #[test]
    fn one_leading_bom_is_skipped_and_nothing_else() {
        assert_eq!(strip_bom(b"\xEF\xBB\xBF\xEF\xBB\xBF{}"), b"\xEF\xBB\xBF{}");
        assert_eq!(strip_bom(b"{}\xEF\xBB\xBF"), b"{}\xEF\xBB\xBF");
        assert_eq!(strip_bom(b"\xEF\xBB"), b"\xEF\xBB");
        assert_eq!(strip_bom_str(" \u{feff}{}"), " \u{feff}{}");
        assert!(is_blank(" \t") && is_blank("") && !is_blank(" 0 "));
    }
}
