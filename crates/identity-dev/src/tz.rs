//! The machine's UTC offset for a *local* wall-clock time, for the Azure CLI's legacy
//! `expiresOn` (docs/protocol.md §5.1, §10 case 36). Zone rules come from `jiff`; this module
//! only decides which zone the injected environment names and reads its file.
//!
//! # Which zone
//! Read from the credential's injected `Env`, never from the process environment:
//! * `TZ` unset or empty → `/etc/localtime`. (glibc reads an empty `TZ` as UTC; a local file
//!   is preferred here because the CLI itself formats `expiresOn` in the machine's zone.)
//! * a UTC name, `Etc/GMT±N` or a POSIX fixed offset (`UTC0`, `EST5`) → that offset, no file.
//! * `TZ=Name` or `TZ=:Name` → the `TZif` file `<TZDIR>/Name` (`TZDIR` from the `Env`, else
//!   `/usr/share/zoneinfo`). `Name` may use only `[A-Za-z0-9/_+-]`, never `..`, and may start
//!   with `/` only when it is an absolute path that exists. The file is read with
//!   `identity_core::fs`: a regular file (a FIFO or device is refused at once, never waited
//!   on), at most 256 KiB. A file whose footer rule cannot be read is used without it: after
//!   the last transition, that transition's offset holds.
//! * otherwise a POSIX TZ string (`EST5EDT,M3.2.0,M11.1.0`). A daylight-saving name without a
//!   rule (`EST5EDT`) is not guessed at: it is treated as unparseable.
//!
//! # Gaps and folds
//! A local time may not exist (spring forward) or exist twice (fall back). The token's expiry
//! only has to be conservative, so the offset that yields the *earlier* UTC instant is chosen:
//! the larger (more easterly) candidate offset. In a fold that is the offset in effect before
//! the transition; in a gap it is the offset in effect after it.
//!
//! Any file content or `TZ` value yields a value or `None`, never a panic. `None` leaves the
//! caller's conservative fallback in place.

use std::path::{Path, PathBuf};

use identity_core::Env;
use identity_core::fs::ReadOptions;
use jiff::Timestamp;
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};

/// The variable naming the zone.
const TZ: &str = "TZ";
/// The variable naming the zoneinfo directory.
const TZDIR: &str = "TZDIR";
/// The zoneinfo directory when `TZDIR` is not set.
const DEFAULT_TZDIR: &str = "/usr/share/zoneinfo";
/// The machine's zone when `TZ` is not set.
const LOCALTIME: &str = "/etc/localtime";
/// The largest `TZif` file read; real ones are a few KiB.
const MAX_TZIF: u64 = 256 * 1024;
/// The longest POSIX TZ string parsed.
const MAX_POSIX: usize = 128;

/// The UTC offset (seconds east) for the naive local time `local` (seconds, read as if UTC)
/// in the zone named by `env`, or `None` (with a debug log saying why) when unknown.
pub(crate) fn offset_for_local(env: &Env, local: i64) -> Option<i64> {
    offset_in(&zone_from_env(env)?, local)
}

/// The offset for the local wall-clock time `local` in `zone`, choosing the earlier UTC
/// instant in a gap or a fold.
fn offset_in(zone: &TimeZone, local: i64) -> Option<i64> {
    let wall = Offset::UTC.to_datetime(Timestamp::from_second(local).ok()?);
    let offset = match zone.to_ambiguous_timestamp(wall).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset,
        AmbiguousOffset::Gap { before, after } | AmbiguousOffset::Fold { before, after } => {
            before.max(after)
        }
    };
    Some(i64::from(offset.seconds()))
}

/// The zone the `env` names, per the [module docs](self).
fn zone_from_env(env: &Env) -> Option<TimeZone> {
    let tz = env.get(TZ).map(str::trim).unwrap_or_default();
    if tz.is_empty() {
        return read_tzif(Path::new(LOCALTIME));
    }
    if let Some(offset) = fixed_offset_from_tz(Some(tz)) {
        let offset = Offset::from_seconds(i32::try_from(offset).ok()?).ok()?;
        return Some(TimeZone::fixed(offset));
    }
    let name = tz.strip_prefix(':').unwrap_or(tz);
    if let Some(path) = zone_path(env, name) {
        return read_tzif(&path);
    }
    if let Some(zone) = parse_posix(name) {
        return Some(zone);
    }
    tracing::debug!("the TZ value is neither a readable zone name nor a POSIX TZ rule");
    None
}

/// The file a zone name refers to, when the name is acceptable and the file exists.
fn zone_path(env: &Env, name: &str) -> Option<PathBuf> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'+' | b'-');
    if name.is_empty() || name.contains("..") || !name.bytes().all(allowed) {
        return None;
    }
    let path = if name.starts_with('/') {
        PathBuf::from(name)
    } else {
        let dir = env.non_empty(TZDIR).unwrap_or(DEFAULT_TZDIR);
        Path::new(dir).join(name)
    };
    path.is_file().then_some(path)
}

/// Reads and parses a `TZif` file through identity-core's checked read: opened without
/// blocking (a FIFO or device named by `TZ` is refused, never waited on), a regular file
/// (links followed, as `/etc/localtime` is one), at most [`MAX_TZIF`] bytes.
fn read_tzif(path: &Path) -> Option<TimeZone> {
    let bytes = match identity_core::fs::read(path, &ReadOptions::configured(MAX_TZIF)) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "time zone file could not be read");
            return None;
        }
    };
    let zone = parse_tzif(&bytes);
    if zone.is_none() {
        tracing::debug!(path = %path.display(), "time zone file is not valid TZif");
    }
    zone
}

/// Parses a `TZif` file (RFC 8536 versions 1–3). When only the footer rule is not
/// understood, the file is used without it. `None` for anything else malformed.
fn parse_tzif(bytes: &[u8]) -> Option<TimeZone> {
    match TimeZone::tzif("local", bytes) {
        Ok(zone) => Some(zone),
        Err(_) => {
            // The footer is the last line, `\n<rule>\n`; retry with it emptied.
            let body = bytes.strip_suffix(b"\n")?;
            let start = body.iter().rposition(|&b| b == b'\n')?;
            if start + 1 == body.len() {
                return None;
            }
            let without_footer = [&body[..=start], b"\n"].concat();
            let zone = TimeZone::tzif("local", &without_footer).ok()?;
            tracing::debug!("TZif footer not understood; using the last transition");
            Some(zone)
        }
    }
}

/// Parses a POSIX TZ string into a zone. `None` when it is not understood, including a
/// daylight-saving name without a rule.
fn parse_posix(text: &str) -> Option<TimeZone> {
    if text.len() > MAX_POSIX {
        return None;
    }
    TimeZone::posix(text).ok()
}

/// The UTC offset (seconds east of UTC) named by a `TZ` value, when it is fixed.
pub(crate) fn fixed_offset_from_tz(tz: Option<&str>) -> Option<i64> {
    let tz = tz?.trim();
    let tz = tz.strip_prefix(':').unwrap_or(tz);
    if tz.is_empty() {
        // POSIX: an empty TZ means UTC.
        return Some(0);
    }
    let named_utc = [
        "UTC",
        "UCT",
        "GMT",
        "Z",
        "Zulu",
        "Universal",
        "Greenwich",
        "Etc/UTC",
        "Etc/UCT",
        "Etc/GMT",
        "Etc/Universal",
        "Etc/Zulu",
        "Etc/Greenwich",
        "GMT0",
        "GMT+0",
        "GMT-0",
        "Etc/GMT0",
        "Etc/GMT+0",
        "Etc/GMT-0",
    ];
    if named_utc.iter().any(|n| n.eq_ignore_ascii_case(tz)) {
        return Some(0);
    }
    if let Some(hours) = tz.strip_prefix("Etc/GMT") {
        // POSIX-style sign: Etc/GMT+5 is five hours *west* of UTC.
        // Checked, and the range tested before any arithmetic: `Etc/GMT-9223372036854775808`
        // must be refused, not negated.
        let n: i64 = hours.parse().ok()?;
        return if (-14..=12).contains(&n) {
            n.checked_mul(-3600)
        } else {
            None
        };
    }
    posix_fixed_offset(tz)
}

/// `std offset` with no daylight-saving part: `EST5`, `UTC0`, `<+0530>-5:30`.
fn posix_fixed_offset(tz: &str) -> Option<i64> {
    // A daylight-saving part always carries a rule after a comma (a rule-less one is refused),
    // so without a comma the offset is fixed.
    if tz.len() > 128 || tz.contains(',') {
        return None;
    }
    let zone = jiff::tz::TimeZone::posix(tz).ok()?;
    Some(i64::from(
        zone.to_offset(jiff::Timestamp::UNIX_EPOCH).seconds(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use identity_core::time::unix_from_utc;

    fn naive(y: i64, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        unix_from_utc(y, mo, d, h, mi, 0).unwrap()
    }

    fn fixture_dir() -> String {
        format!("{}/tests/data/zoneinfo", env!("CARGO_MANIFEST_DIR"))
    }

    /// Zone files that are not regular files, or too large, are refused at once: `TZ` may
    /// name any path.
    #[cfg(unix)]
    #[test]
    fn fixed_time_zones_are_understood_and_others_are_not() {
        let cases = [
            (Some("UTC"), Some(0)),
            (Some(""), Some(0)),
            (Some(":Etc/UTC"), Some(0)),
            (Some("Etc/GMT+5"), Some(-5 * 3600)),
            (Some("Etc/GMT-3"), Some(3 * 3600)),
            (Some("EST5"), Some(-5 * 3600)),
            (Some("UTC0"), Some(0)),
            (Some("<+0530>-5:30"), Some(5 * 3600 + 1800)),
            (Some("America/New_York"), None),
            (Some("EST5EDT,M3.2.0,M11.1.0"), None),
            (Some("EST5EDT"), None),
            (None, None),
        ];
        for (tz, expected) in cases {
            assert_eq!(fixed_offset_from_tz(tz), expected, "{tz:?}");
        }
    }

    #[test]
    fn special_and_oversized_zone_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("Fifo");
        identity_core::test_util::make_fifo(&fifo);
        let big = dir.path().join("Big");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_TZIF + 1)
            .unwrap();
        let zero_link = dir.path().join("Zero");
        std::os::unix::fs::symlink("/dev/zero", &zero_link).unwrap();
        let good_link = dir.path().join("Good");
        std::os::unix::fs::symlink(format!("{}/America/New_York", fixture_dir()), &good_link)
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let results = [fifo, big, zero_link, good_link, PathBuf::from("/dev/zero")]
                .map(|p| read_tzif(&p).is_some());
            let _ = tx.send(results);
        });
        let results = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("no blocking on a FIFO or device");
        assert_eq!(results, [false, false, false, true, false]);
    }

    fn ny_env() -> Env {
        Env::from_pairs([("TZ", "America/New_York"), ("TZDIR", &fixture_dir())])
    }

    /// A local time: year, month, day, hour, minute.
    type LocalTime = (i64, u32, u32, u32, u32);

    /// Asserts, for each local time `(year, month, day, hour, minute)`, its offset in whole
    /// hours under `env` (described by `zone` in failures).
    fn assert_offsets(zone: &str, env: &Env, cases: &[(LocalTime, i64)]) {
        for &((y, mo, d, h, mi), hours) in cases {
            assert_eq!(
                offset_for_local(env, naive(y, mo, d, h, mi)),
                Some(hours * 3600),
                "{zone} at {y}-{mo:02}-{d:02} {h:02}:{mi:02}"
            );
        }
    }

    #[test]
    fn new_york_winter_and_summer_offsets_come_from_the_tzif_fixture() {
        assert_offsets(
            "America/New_York",
            &ny_env(),
            &[
                ((2030, 1, 1, 10, 0), -5),
                ((2030, 7, 1, 10, 0), -4),
                // Far beyond the last transition the footer rule answers.
                ((2300, 7, 1, 10, 0), -4),
                ((2300, 1, 1, 10, 0), -5),
            ],
        );
    }

    #[test]
    fn gaps_and_folds_take_the_earlier_utc_instant() {
        for (zone, env) in [
            ("America/New_York", ny_env()),
            (
                "EST5EDT,M3.2.0,M11.1.0",
                Env::from_pairs([("TZ", "EST5EDT,M3.2.0,M11.1.0")]),
            ),
        ] {
            assert_offsets(
                zone,
                &env,
                &[
                    // 2030-03-10 02:30 does not exist: EDT (−4) gives the earlier instant.
                    ((2030, 3, 10, 2, 30), -4),
                    // 2030-11-03 01:30 happens twice: the first (EDT) is the earlier instant.
                    ((2030, 11, 3, 1, 30), -4),
                    // Just around the transitions the plain answers hold.
                    ((2030, 3, 10, 1, 59), -5),
                    ((2030, 3, 10, 3, 0), -4),
                    ((2030, 11, 3, 2, 0), -5),
                ],
            );
        }
    }

    #[test]
    fn posix_rules_are_parsed_directly() {
        let rule = "EST5EDT,M3.2.0,M11.1.0";
        let env = Env::from_pairs([("TZ", rule)]);
        assert_offsets(
            rule,
            &env,
            &[((2030, 1, 1, 10, 0), -5), ((2030, 7, 1, 10, 0), -4)],
        );
        // Southern hemisphere: AEST/AEDT, daylight saving over the new year.
        let rule = "AEST-10AEDT,M10.1.0,M4.1.0/3";
        let sydney = Env::from_pairs([("TZ", rule)]);
        assert_offsets(
            rule,
            &sydney,
            &[((2030, 1, 1, 10, 0), 11), ((2030, 7, 1, 10, 0), 10)],
        );
        assert_eq!(
            parse_posix("<+0530>-5:30").and_then(|zone| offset_in(&zone, 0)),
            Some(5 * 3600 + 1800)
        );
        for bad in [
            "EST5EDT",
            "EST5EDT,M13.1.0,M11.1.0",
            "E5",
            "EST5EDT,M3.2.0",
            "EST99",
        ] {
            assert_eq!(parse_posix(bad), None, "{bad}");
        }
    }

    #[test]
    fn huge_etc_gmt_offsets_are_refused_without_overflow() {
        for tz in [
            "Etc/GMT-9223372036854775808",
            "Etc/GMT+9223372036854775807",
            "Etc/GMT-9223372036854775807",
            "Etc/GMT+99999999999999999999",
            "Etc/GMT99999",
            "Etc/GMT+15",
            "Etc/GMT-15",
        ] {
            let env = Env::from_pairs([("TZ", tz), ("TZDIR", "/nonexistent")]);
            for local in [0, naive(2030, 1, 1, 10, 0), i64::MAX / 2, i64::MIN / 2] {
                assert_eq!(offset_for_local(&env, local), None, "{tz} at {local}");
                // An unknown zone falls back to the documented guess, never a panic.
                let expiry = crate::output::local_expiry(local, &env, std::time::UNIX_EPOCH);
                if let (true, Some(at)) = (local >= 14 * 3600, expiry) {
                    let secs = at
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(i64::MIN, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
                    assert!(
                        (local - 14 * 3600..=local + 12 * 3600).contains(&secs),
                        "{tz}"
                    );
                }
            }
        }
        let env = Env::from_pairs([("TZ", "Etc/GMT-14"), ("TZDIR", "/nonexistent")]);
        assert_eq!(offset_for_local(&env, 0), Some(14 * 3600));
        let env = Env::from_pairs([("TZ", "Etc/GMT+12"), ("TZDIR", "/nonexistent")]);
        assert_eq!(offset_for_local(&env, 0), Some(-12 * 3600));
    }

    #[test]
    fn utc_names_are_fixed_without_any_file() {
        let env = Env::from_pairs([("TZ", "UTC"), ("TZDIR", "/nonexistent")]);
        assert_eq!(offset_for_local(&env, naive(2030, 1, 1, 10, 0)), Some(0));
    }

    #[test]
    fn unsafe_zone_names_are_refused() {
        for tz in [
            "../../etc/passwd",
            ":../../etc/passwd",
            "America/../../etc/passwd",
            "a b",
        ] {
            let env = Env::from_pairs([("TZ", tz), ("TZDIR", &fixture_dir())]);
            assert_eq!(zone_from_env(&env), None, "{tz}");
        }
        // An absolute path is accepted only when it exists.
        let env = Env::from_pairs([("TZ", "/nonexistent/zone")]);
        assert_eq!(zone_from_env(&env), None);
    }

    #[test]
    fn truncated_or_garbage_tzif_is_rejected_without_panicking() {
        let good = std::fs::read(format!("{}/America/New_York", fixture_dir())).unwrap();
        assert!(parse_tzif(&good).is_some());
        for len in 0..good.len() {
            // Truncation inside the data blocks must fail; inside the footer it may not.
            let _ = parse_tzif(&good[..len]);
        }
        assert_eq!(parse_tzif(&good[..good.len() / 2]), None);
        assert_eq!(parse_tzif(b"not a tzif file at all"), None);
        let mut huge_counts = b"TZif2".to_vec();
        huge_counts.extend([0; 15]);
        huge_counts.extend([0xff; 24]);
        assert_eq!(parse_tzif(&huge_counts), None);
        // Flipped bytes anywhere never panic.
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0xa5;
            if let Some(zone) = parse_tzif(&bad) {
                let _ = offset_in(&zone, naive(2030, 1, 1, 10, 0));
            }
        }
    }

    #[test]
    fn an_unparseable_footer_falls_back_to_the_last_transition() {
        let good = std::fs::read(format!("{}/America/New_York", fixture_dir())).unwrap();
        let footer = b"\nEST5EDT,M3.2.0,M11.1.0\n";
        assert!(good.ends_with(footer));
        let mut bad = good[..good.len() - footer.len()].to_vec();
        bad.extend(b"\nnot a rule\n");
        let zone = parse_tzif(&bad).unwrap();
        // The fixture's last transition (November 2037) is to EST, which now holds forever.
        assert_eq!(offset_in(&zone, naive(2300, 7, 1, 10, 0)), Some(-5 * 3600));
        // Before the last transition the transitions still answer.
        assert_eq!(offset_in(&zone, naive(2030, 7, 1, 10, 0)), Some(-4 * 3600));
    }

    #[test]
    fn version_one_files_use_the_32_bit_block() {
        // One transition at 0 to type 1 (+1 h); type 0 is UTC. RFC 8536 requires at least one
        // designation byte, so both types share the abbreviation "UTC".
        let mut v1 = b"TZif\0".to_vec();
        v1.extend([0; 15]);
        for count in [0u32, 0, 0, 1, 2, 4] {
            v1.extend(count.to_be_bytes());
        }
        v1.extend(0i32.to_be_bytes());
        v1.push(1);
        v1.extend(0i32.to_be_bytes());
        v1.extend([0, 0]);
        v1.extend(3600i32.to_be_bytes());
        v1.extend([0, 0]);
        v1.extend(b"UTC\0");
        let zone = parse_tzif(&v1).unwrap();
        assert_eq!(offset_in(&zone, -86_400 * 10), Some(0));
        assert_eq!(offset_in(&zone, 86_400 * 10), Some(3600));
    }
}
