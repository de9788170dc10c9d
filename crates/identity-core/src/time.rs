//! Calendar arithmetic for the date formats token services and tools print.
//!
//! Small and dependency-free on purpose: the formats are few and fixed (epoch seconds,
//! `YYYY-MM-DD HH:MM:SS[.ffffff]`, RFC 3339 UTC, the Azure ML date strings, HTTP dates).

use std::time::SystemTime;

use crate::clock::from_unix_seconds;

/// Days from 1970-01-01 to the given proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the epoch for a UTC date and time, validating every field. Years outside
/// 0..=9999 (more than the four digits every supported format prints) are refused, which also
/// keeps the arithmetic from overflowing on a hostile date string.
///
/// ```
/// use identity_core::time::unix_from_utc;
/// assert_eq!(unix_from_utc(1970, 1, 2, 0, 0, 0), Some(86_400));
/// assert_eq!(unix_from_utc(999_999_999_999, 12, 31, 23, 59, 59), None);
/// ```
pub fn unix_from_utc(
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
) -> Option<i64> {
    if !(0..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
    {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(
        days_from_civil(year, month, day) * 86_400
            + i64::from(hour) * 3600
            + i64::from(minute) * 60
            + i64::from(second),
    )
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Parses an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 7231 IMF-fixdate).
pub fn parse_http_date(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    let (_, rest) = text.split_once(", ")?;
    let mut parts = rest.split(' ');
    let day: u32 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':');
    let hour = hms.next()?.parse().ok()?;
    let minute = hms.next()?.parse().ok()?;
    let second = hms.next()?.parse().ok()?;
    if parts.next()? != "GMT" || parts.next().is_some() || hms.next().is_some() {
        return None;
    }
    from_unix_seconds(unix_from_utc(year, month, day, hour, minute, second)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(unix_from_utc(2030, 1, 1, 0, 0, 0), Some(1_893_456_000));
        assert_eq!(unix_from_utc(2000, 2, 29, 12, 0, 0), Some(951_825_600));
        assert_eq!(unix_from_utc(2001, 2, 29, 0, 0, 0), None);
        assert_eq!(unix_from_utc(2030, 13, 1, 0, 0, 0), None);
        assert_eq!(unix_from_utc(2030, 1, 1, 24, 0, 0), None);
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        for bad in [
            "",
            "Sun 06 Nov 1994",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 UTC",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }
}
