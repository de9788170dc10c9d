//! The machine's UTC offset for a *local* wall-clock time, for the Azure CLI's legacy
//! `expiresOn` (spec §5.1, §10 case 36).
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
//!   on), at most 256 KiB.
//! * otherwise a POSIX TZ string (`EST5EDT,M3.2.0,M11.1.0`) → parsed directly.
//!
//! # `TZif` (RFC 8536)
//! Versions 1, 2 and 3; the 64-bit data block is used when present. Before the first
//! transition local time type 0 applies; after the last one the footer's POSIX TZ rule
//! applies. If the footer is missing or cannot be parsed, the last transition's offset is
//! used. Leap-second records are ignored (the CLI's clock is POSIX time).
//!
//! # POSIX TZ rules
//! `std offset [dst [offset] [,start[/time],end[/time]]]` with `Mm.w.d`, `Jn` and `n` dates and
//! times from −167 to 167 hours (RFC 8536 §3.3.1). A daylight-saving name without a rule is
//! not guessed at: it is treated as unparseable.
//!
//! # Gaps and folds
//! A local time may not exist (spring forward) or exist twice (fall back). The token's expiry
//! only has to be conservative, so the offset that yields the *earlier* UTC instant is chosen:
//! the larger (more easterly) candidate offset. In a fold that is the offset in effect before
//! the transition; in a gap it is the offset in effect after it.
//!
//! Parsing is bounded and uses checked arithmetic: any file content yields a value or `None`,
//! never a panic. `None` leaves the caller's conservative fallback in place.

use std::path::{Path, PathBuf};

use identity_core::Env;
use identity_core::fs::ReadOptions;
use identity_core::time::days_from_civil;

use crate::output::fixed_offset_from_tz;

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
/// Offsets beyond ±26 h are refused as corrupt (RFC 8536 bounds are −89999..=93599 s).
const MAX_OFFSET: i64 = 26 * 3600;

/// A time zone: a fixed offset, a POSIX rule, or `TZif` transitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Zone {
    /// A fixed offset, seconds east of UTC.
    Fixed(i64),
    /// A POSIX TZ rule.
    Rule(Rule),
    /// A `TZif` file's contents.
    Tzif(Tzif),
}

/// A POSIX daylight-saving rule (offsets in seconds east of UTC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rule {
    std: i64,
    dst: i64,
    start: (Date, i64),
    end: (Date, i64),
}

/// A POSIX rule date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Date {
    /// `Jn`: day 1..=365, February 29 never counted.
    Julian1(u32),
    /// `n`: day 0..=365, February 29 counted.
    Julian0(u32),
    /// `Mm.w.d`: month, week 1..=5 (5 = last), weekday 0 = Sunday.
    Month(u32, u32, u32),
}

/// The parsed parts of a `TZif` file that matter here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tzif {
    /// Transition instants (UTC seconds), ascending, with the offset that starts at each.
    transitions: Vec<(i64, i64)>,
    /// The offset of local time type 0, used before the first transition.
    initial: i64,
    /// The footer rule, for instants after the last transition.
    footer: Option<Box<Zone>>,
}

/// The UTC offset (seconds east) for the naive local time `local` (seconds, read as if UTC)
/// in the zone named by `env`, or `None` (with a debug log saying why) when unknown.
pub(crate) fn offset_for_local(env: &Env, local: i64) -> Option<i64> {
    let zone = zone_from_env(env)?;
    zone.offset_for_local(local)
}

/// The zone the `env` names, per the [module docs](self).
pub(crate) fn zone_from_env(env: &Env) -> Option<Zone> {
    let tz = env.get(TZ).map(str::trim).unwrap_or_default();
    if tz.is_empty() {
        return read_tzif(Path::new(LOCALTIME));
    }
    if let Some(offset) = fixed_offset_from_tz(Some(tz)) {
        return Some(Zone::Fixed(offset));
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
fn read_tzif(path: &Path) -> Option<Zone> {
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

/// A bounds-checked reader over a byte slice.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn count(&mut self) -> Option<usize> {
        usize::try_from(self.u32()?).ok()
    }
}

/// The six counts of a `TZif` header.
struct Header {
    version: u8,
    isutcnt: usize,
    isstdcnt: usize,
    leapcnt: usize,
    timecnt: usize,
    typecnt: usize,
    charcnt: usize,
}

fn header(c: &mut Cursor<'_>) -> Option<Header> {
    if c.take(4)? != b"TZif" {
        return None;
    }
    let version = c.take(1)?[0];
    c.take(15)?;
    Some(Header {
        version,
        isutcnt: c.count()?,
        isstdcnt: c.count()?,
        leapcnt: c.count()?,
        timecnt: c.count()?,
        typecnt: c.count()?,
        charcnt: c.count()?,
    })
}

/// Parses a `TZif` file (RFC 8536 versions 1–3). `None` for anything malformed.
pub(crate) fn parse_tzif(bytes: &[u8]) -> Option<Zone> {
    let mut c = Cursor { bytes, pos: 0 };
    let first = header(&mut c)?;
    let (h, time_size) = if first.version >= b'2' {
        // Skip the 32-bit block: its length is fixed by the first header.
        let v1_len = first
            .timecnt
            .checked_mul(5)?
            .checked_add(first.typecnt.checked_mul(6)?)?
            .checked_add(first.charcnt)?
            .checked_add(first.leapcnt.checked_mul(8)?)?
            .checked_add(first.isstdcnt)?
            .checked_add(first.isutcnt)?;
        c.take(v1_len)?;
        (header(&mut c)?, 8)
    } else {
        (first, 4)
    };
    if h.typecnt == 0 {
        return None;
    }
    let times = c.take(h.timecnt.checked_mul(time_size)?)?;
    let indices = c.take(h.timecnt)?;
    let types_raw = c.take(h.typecnt.checked_mul(6)?)?;
    c.take(h.charcnt)?;
    c.take(h.leapcnt.checked_mul(time_size + 4)?)?;
    c.take(h.isstdcnt)?;
    c.take(h.isutcnt)?;

    let mut offsets = Vec::with_capacity(h.typecnt);
    for t in types_raw.chunks_exact(6) {
        let utoff = i64::from(i32::from_be_bytes([t[0], t[1], t[2], t[3]]));
        if utoff.abs() > MAX_OFFSET {
            return None;
        }
        offsets.push(utoff);
    }
    let mut transitions = Vec::with_capacity(h.timecnt);
    for (raw, &index) in times.chunks_exact(time_size).zip(indices) {
        let at = if time_size == 8 {
            i64::from_be_bytes(raw.try_into().ok()?)
        } else {
            i64::from(i32::from_be_bytes(raw.try_into().ok()?))
        };
        if transitions.last().is_some_and(|&(prev, _)| prev >= at) {
            return None;
        }
        transitions.push((at, *offsets.get(usize::from(index))?));
    }
    let footer = if time_size == 8 {
        let rest = bytes.get(c.pos..)?;
        let text = rest.strip_prefix(b"\n").and_then(|r| {
            let end = r.iter().position(|&b| b == b'\n')?;
            std::str::from_utf8(&r[..end]).ok()
        });
        match text {
            Some("") | None => None,
            Some(text) => {
                let zone = parse_posix(text);
                if zone.is_none() {
                    tracing::debug!("TZif footer not understood; using the last transition");
                }
                zone.map(Box::new)
            }
        }
    } else {
        None
    };
    Some(Zone::Tzif(Tzif {
        transitions,
        initial: offsets[0],
        footer,
    }))
}

impl Zone {
    /// The offset in effect at the UTC instant `utc`.
    fn offset_at_utc(&self, utc: i64) -> Option<i64> {
        match self {
            Zone::Fixed(offset) => Some(*offset),
            Zone::Rule(rule) => rule.offset_at_utc(utc),
            Zone::Tzif(tzif) => {
                let after = tzif.transitions.partition_point(|&(at, _)| at <= utc);
                if after == 0 {
                    return Some(tzif.initial);
                }
                let last = tzif.transitions[after - 1].1;
                match &tzif.footer {
                    Some(footer) if after == tzif.transitions.len() => {
                        footer.offset_at_utc(utc).or(Some(last))
                    }
                    _ => Some(last),
                }
            }
        }
    }

    /// The offset for the local wall-clock time `local`, choosing the earlier UTC instant in a
    /// gap or a fold.
    pub(crate) fn offset_for_local(&self, local: i64) -> Option<i64> {
        // Offsets that could apply near `local`: transitions are far more than two days apart,
        // so the ones in effect two days either side cover both sides of any transition.
        let day2 = 2 * 86_400;
        let mut candidates = Vec::with_capacity(3);
        for probe in [local.checked_sub(day2)?, local, local.checked_add(day2)?] {
            let offset = self.offset_at_utc(probe)?;
            if !candidates.contains(&offset) {
                candidates.push(offset);
            }
        }
        let consistent = candidates
            .iter()
            .copied()
            .filter(|&o| local.checked_sub(o).and_then(|utc| self.offset_at_utc(utc)) == Some(o))
            .max();
        // No consistent offset means a gap: the larger candidate gives the earlier instant.
        consistent.or_else(|| candidates.iter().copied().max())
    }
}

impl Rule {
    fn offset_at_utc(&self, utc: i64) -> Option<i64> {
        // The year as seen in standard time; a rule's transitions never straddle two years
        // by more than the offsets involved, and checking the neighbouring years covers that.
        let local = utc.checked_add(self.std)?;
        let year = year_of(local)?;
        let mut in_dst = false;
        for y in [year - 1, year, year + 1] {
            let start = transition(y, self.start)?.checked_sub(self.std)?;
            let end = transition(y, self.end)?.checked_sub(self.dst)?;
            if start < end {
                in_dst |= start <= utc && utc < end;
            } else {
                // Southern hemisphere: daylight saving spans the new year.
                let next_end = transition(y + 1, self.end)?.checked_sub(self.dst)?;
                in_dst |= start <= utc && utc < next_end;
            }
        }
        Some(if in_dst { self.dst } else { self.std })
    }
}

/// The calendar year containing the (local) epoch second `t`.
fn year_of(t: i64) -> Option<i64> {
    let days = t.div_euclid(86_400);
    // Civil-from-days (Howard Hinnant), year only.
    let z = days.checked_add(719_468)?;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month_from_march = mp;
    let year = yoe + era * 400;
    Some(if month_from_march >= 10 {
        year + 1
    } else {
        year
    })
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// The local epoch second of a rule's transition in `year`.
fn transition(year: i64, (date, time): (Date, i64)) -> Option<i64> {
    let jan1 = days_from_civil(year, 1, 1);
    let day = match date {
        Date::Julian1(n) => {
            let n = i64::from(n);
            let leap_skip = i64::from(is_leap(year) && n >= 60);
            jan1 + n - 1 + leap_skip
        }
        Date::Julian0(n) => jan1 + i64::from(n),
        Date::Month(m, w, d) => {
            let first = days_from_civil(year, m, 1);
            // 1970-01-01 was a Thursday (weekday 4).
            let first_wd = (first + 4).rem_euclid(7);
            let mut day = first + (i64::from(d) - first_wd).rem_euclid(7) + 7 * (i64::from(w) - 1);
            let next_month = if m == 12 {
                days_from_civil(year + 1, 1, 1)
            } else {
                days_from_civil(year, m + 1, 1)
            };
            while day >= next_month {
                day -= 7;
            }
            day
        }
    };
    day.checked_mul(86_400)?.checked_add(time)
}

/// Parses a POSIX TZ string into a zone. `None` when it is not understood.
pub(crate) fn parse_posix(text: &str) -> Option<Zone> {
    if text.len() > 128 {
        return None;
    }
    let (_, rest) = name(text)?;
    let (std_west, rest) = hms(rest, 24)?;
    let std = -std_west;
    if rest.is_empty() {
        return Some(Zone::Fixed(std));
    }
    let (_, rest) = name(rest)?;
    let (dst, rest) = if rest.starts_with(',') {
        (std.checked_add(3600)?, rest)
    } else {
        let (west, rest) = hms(rest, 24)?;
        (-west, rest)
    };
    let rest = rest.strip_prefix(',')?;
    let (start, rest) = rule_part(rest)?;
    let rest = rest.strip_prefix(',')?;
    let (end, rest) = rule_part(rest)?;
    if !rest.is_empty() {
        return None;
    }
    Some(Zone::Rule(Rule {
        std,
        dst,
        start,
        end,
    }))
}

/// A zone abbreviation: `<...>` or at least three letters.
fn name(text: &str) -> Option<(&str, &str)> {
    if let Some(quoted) = text.strip_prefix('<') {
        let end = quoted.find('>')?;
        let n = &quoted[..end];
        (n.len() >= 3).then_some((n, &quoted[end + 1..]))
    } else {
        let len = text.bytes().take_while(u8::is_ascii_alphabetic).count();
        (len >= 3).then(|| text.split_at(len))
    }
}

/// `[+-]hh[:mm[:ss]]` with hours up to `max_hours`, as signed seconds.
fn hms(text: &str, max_hours: i64) -> Option<(i64, &str)> {
    let (sign, body) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => (1, text),
    };
    let mut rest = body;
    let mut total = 0i64;
    for (i, limit) in [max_hours, 59, 59].into_iter().enumerate() {
        if i > 0 {
            match rest.strip_prefix(':') {
                Some(r) => rest = r,
                None => break,
            }
        }
        let len = rest.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 || len > 3 {
            return None;
        }
        let value: i64 = rest[..len].parse().ok()?;
        if value > limit {
            return None;
        }
        total += value * [3600, 60, 1][i];
        rest = &rest[len..];
    }
    Some((sign * total, rest))
}

/// A number of one to three digits, and the rest of the text.
fn number(t: &str) -> Option<(u32, &str)> {
    let len = t.bytes().take_while(u8::is_ascii_digit).count();
    if len == 0 || len > 3 {
        return None;
    }
    Some((t[..len].parse::<u32>().ok()?, &t[len..]))
}

/// `date[/time]`; the time defaults to 02:00.
fn rule_part(text: &str) -> Option<((Date, i64), &str)> {
    let (date, rest) = if let Some(r) = text.strip_prefix('M') {
        let (m, r) = number(r)?;
        let (w, r) = number(r.strip_prefix('.')?)?;
        let (d, r) = number(r.strip_prefix('.')?)?;
        if !(1..=12).contains(&m) || !(1..=5).contains(&w) || d > 6 {
            return None;
        }
        (Date::Month(m, w, d), r)
    } else if let Some(r) = text.strip_prefix('J') {
        let (n, r) = number(r)?;
        if !(1..=365).contains(&n) {
            return None;
        }
        (Date::Julian1(n), r)
    } else {
        let (n, r) = number(text)?;
        if n > 365 {
            return None;
        }
        (Date::Julian0(n), r)
    };
    match rest.strip_prefix('/') {
        Some(r) => {
            let (time, r) = hms(r, 167)?;
            Some(((date, time), r))
        }
        None => Some(((date, 7200), rest)),
    }
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
    fn special_and_oversized_zone_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("Fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
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

    #[test]
    fn new_york_winter_and_summer_offsets_come_from_the_tzif_fixture() {
        let env = ny_env();
        assert_eq!(
            offset_for_local(&env, naive(2030, 1, 1, 10, 0)),
            Some(-5 * 3600)
        );
        assert_eq!(
            offset_for_local(&env, naive(2030, 7, 1, 10, 0)),
            Some(-4 * 3600)
        );
        // Far beyond the last transition the footer rule answers.
        assert_eq!(
            offset_for_local(&env, naive(2300, 7, 1, 10, 0)),
            Some(-4 * 3600)
        );
        assert_eq!(
            offset_for_local(&env, naive(2300, 1, 1, 10, 0)),
            Some(-5 * 3600)
        );
    }

    #[test]
    fn gaps_and_folds_take_the_earlier_utc_instant() {
        for env in [
            ny_env(),
            Env::from_pairs([("TZ", "EST5EDT,M3.2.0,M11.1.0")]),
        ] {
            // 2030-03-10 02:30 does not exist: EDT (−4) gives the earlier instant.
            assert_eq!(
                offset_for_local(&env, naive(2030, 3, 10, 2, 30)),
                Some(-4 * 3600)
            );
            // 2030-11-03 01:30 happens twice: the first (EDT) is the earlier instant.
            assert_eq!(
                offset_for_local(&env, naive(2030, 11, 3, 1, 30)),
                Some(-4 * 3600)
            );
            // Just around the transitions the plain answers hold.
            assert_eq!(
                offset_for_local(&env, naive(2030, 3, 10, 1, 59)),
                Some(-5 * 3600)
            );
            assert_eq!(
                offset_for_local(&env, naive(2030, 3, 10, 3, 0)),
                Some(-4 * 3600)
            );
            assert_eq!(
                offset_for_local(&env, naive(2030, 11, 3, 2, 0)),
                Some(-5 * 3600)
            );
        }
    }

    #[test]
    fn posix_rules_are_parsed_directly() {
        let env = Env::from_pairs([("TZ", "EST5EDT,M3.2.0,M11.1.0")]);
        assert_eq!(
            offset_for_local(&env, naive(2030, 1, 1, 10, 0)),
            Some(-5 * 3600)
        );
        assert_eq!(
            offset_for_local(&env, naive(2030, 7, 1, 10, 0)),
            Some(-4 * 3600)
        );
        // Southern hemisphere: AEST/AEDT, daylight saving over the new year.
        let sydney = Env::from_pairs([("TZ", "AEST-10AEDT,M10.1.0,M4.1.0/3")]);
        assert_eq!(
            offset_for_local(&sydney, naive(2030, 1, 1, 10, 0)),
            Some(11 * 3600)
        );
        assert_eq!(
            offset_for_local(&sydney, naive(2030, 7, 1, 10, 0)),
            Some(10 * 3600)
        );
        assert_eq!(
            parse_posix("<+0530>-5:30"),
            Some(Zone::Fixed(5 * 3600 + 1800))
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
                let _ = zone.offset_for_local(naive(2030, 1, 1, 10, 0));
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
        assert_eq!(
            zone.offset_for_local(naive(2300, 7, 1, 10, 0)),
            Some(-5 * 3600)
        );
        // Before the last transition the transitions still answer.
        assert_eq!(
            zone.offset_for_local(naive(2030, 7, 1, 10, 0)),
            Some(-4 * 3600)
        );
    }

    #[test]
    fn version_one_files_use_the_32_bit_block() {
        // One transition at 0 to type 1 (+1 h); type 0 is UTC.
        let mut v1 = b"TZif\0".to_vec();
        v1.extend([0; 15]);
        for count in [0u32, 0, 0, 1, 2, 0] {
            v1.extend(count.to_be_bytes());
        }
        v1.extend(0i32.to_be_bytes());
        v1.push(1);
        v1.extend(0i32.to_be_bytes());
        v1.extend([0, 0]);
        v1.extend(3600i32.to_be_bytes());
        v1.extend([0, 0]);
        let zone = parse_tzif(&v1).unwrap();
        assert_eq!(zone.offset_for_local(-86_400 * 10), Some(0));
        assert_eq!(zone.offset_for_local(86_400 * 10), Some(3600));
    }
}
