//! The rules an [`AuthenticationRecord`]'s JSON and fields follow before any field can
//! become part of a URL, a cache key or a request (`docs/protocol.md` §6.9).
//!
//! Messages name the field and what was expected, never a value: a record holds no secret,
//! but its text comes from a file and must not reach a terminal or a log unchecked.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use identity_core::scope::is_valid_tenant_id;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::{AuthenticationRecord, VERSION};

/// The keys of a record, in the order the other Azure SDKs write them.
pub(super) const KEYS: [&str; 6] = [
    "authority",
    "clientId",
    "homeAccountId",
    "tenantId",
    "username",
    "version",
];

/// The longest id or name a field may hold, in bytes.
const MAX_FIELD: usize = 1024;

/// The longest DNS label and host name.
const MAX_LABEL: usize = 63;
const MAX_HOST: usize = 253;

/// A JSON object's members in document order, duplicates kept (serde's own map types keep
/// only the last of a duplicated key).
pub(super) struct Entries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(Entries(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

impl TryFrom<Entries> for AuthenticationRecord {
    type Error = String;

    /// The record the members describe: the six keys present once each, with string values,
    /// `version` `"1.0"`, and every field valid by [`fields`]. Other keys are ignored, as the
    /// other Azure SDKs ignore them.
    fn try_from(Entries(members): Entries) -> Result<Self, String> {
        let mut values: [Option<&str>; 6] = [None; 6];
        let mut missing = Vec::new();
        let mut case_differs = false;
        for (slot, key) in values.iter_mut().zip(KEYS) {
            let mut found = members.iter().filter(|(k, _)| k == key).map(|(_, v)| v);
            match (found.next(), found.next()) {
                (Some(_), Some(_)) => {
                    return Err(format!("the field `{key}` appears more than once"));
                }
                (Some(value), None) => {
                    *slot = Some(value.as_str().ok_or_else(|| {
                        format!("the field `{key}` is {}; expected a string", kind(value))
                    })?);
                }
                (None, _) => {
                    case_differs |= members.iter().any(|(k, _)| k.eq_ignore_ascii_case(key));
                    missing.push(format!("`{key}`"));
                }
            }
        }
        let [
            Some(authority),
            Some(client_id),
            Some(home),
            Some(tenant),
            Some(user),
            Some(version),
        ] = values
        else {
            let mut message = format!(
                "missing {}; a record has the keys {}",
                missing.join(", "),
                KEYS.map(|k| format!("`{k}`")).join(", ")
            );
            if case_differs {
                message.push_str(" (case-sensitive: camelCase, not PascalCase)");
            }
            return Err(message);
        };
        if version != VERSION {
            return Err(format!(
                "the field `version` is not \"{VERSION}\", the only version this library reads"
            ));
        }
        let record = Self {
            authority: authority_host(authority)?,
            client_id: client_id.to_owned(),
            home_account_id: home.to_owned(),
            tenant_id: tenant.to_owned(),
            username: user.to_owned(),
            version: VERSION.to_owned(),
        };
        fields(&record)?;
        Ok(record)
    }
}

/// What a JSON value is, for a message.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks every field of `record`: the authority is a host name, the tenant id follows the
/// tenant rule, the ids hold no whitespace or control character, the username no control
/// character; none is empty or longer than 1024 bytes.
pub(super) fn fields(record: &AuthenticationRecord) -> Result<(), String> {
    if authority_host(&record.authority)? != record.authority {
        return Err(
            "the field `authority` is not in its normal form (a lower-case host name)".to_owned(),
        );
    }
    text("clientId", &record.client_id, false)?;
    text("homeAccountId", &record.home_account_id, false)?;
    text("tenantId", &record.tenant_id, false)?;
    if !is_valid_tenant_id(&record.tenant_id) {
        return Err(
            "the field `tenantId` is not a valid tenant id: only ASCII letters, digits, '-' and '.' are allowed"
                .to_owned(),
        );
    }
    text("username", &record.username, true)
}

/// `value` is not empty, not over [`MAX_FIELD`] and holds no control character (nor
/// whitespace, unless `spaces`).
fn text(field: &str, value: &str, spaces: bool) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("the field `{field}` is empty"));
    }
    if value.len() > MAX_FIELD {
        return Err(format!(
            "the field `{field}` is longer than {MAX_FIELD} bytes"
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("the field `{field}` contains a control character"));
    }
    if !spaces && value.chars().any(char::is_whitespace) {
        return Err(format!("the field `{field}` contains whitespace"));
    }
    Ok(())
}

/// The record's authority from `raw`: a host name (`login.microsoftonline.com`), or the host of
/// an `https` URL (`https://login.microsoftonline.com/`, as the Python reference accepts),
/// lower-cased, one trailing `/` dropped. No path, query, fragment or user information; a
/// port (and an IP address) only for a loopback host, for local emulators.
pub(super) fn authority_host(raw: &str) -> Result<String, String> {
    const EXPECTED: &str = "expected a host name such as login.microsoftonline.com";
    let bad = |what: &str| Err(format!("the field `authority` {what}; {EXPECTED}"));
    let host = match raw.split_once("://") {
        Some((scheme, _)) if !scheme.eq_ignore_ascii_case("https") => {
            return bad("is a URL whose scheme is not https");
        }
        Some((_, rest)) => rest,
        None => raw,
    };
    let host = host.strip_suffix('/').unwrap_or(host);
    if host.is_empty() {
        return bad("is empty");
    }
    if host.contains('@') {
        return bad("holds user information ('@')");
    }
    if host.contains(['/', '?', '#', '\\']) {
        return bad("has a path, query or fragment");
    }
    let (name, port) = split_port(host).ok_or_else(|| {
        format!("the field `authority` is not a host name (a malformed IPv6 address); {EXPECTED}")
    })?;
    let loopback = crate::authority::is_loopback(name);
    if let Some(port) = port {
        if !loopback {
            return bad("has a port, which only a loopback host may have");
        }
        if port.is_empty()
            || !port.bytes().all(|b| b.is_ascii_digit())
            || port.parse::<u16>().map_or(true, |p| p == 0)
        {
            return bad("has a port that is not a number from 1 to 65535");
        }
    }
    let ip = name.trim_start_matches('[').trim_end_matches(']');
    if ip.parse::<IpAddr>().is_ok() {
        if !loopback {
            return bad("is an IP address, which only a loopback host may be");
        }
    } else if !is_host_name(name) {
        return bad(
            "is not a host name (labels of ASCII letters, digits and '-', 1 to 63 characters, joined by '.')",
        );
    }
    Ok(host.to_ascii_lowercase())
}

/// `host` split into its name and port (`None` without a `:`); an IPv6 literal keeps its
/// brackets. `None` for an unclosed or bracketless IPv6 literal.
fn split_port(host: &str) -> Option<(&str, Option<&str>)> {
    if host.starts_with('[') {
        let end = host.find(']')?;
        let (name, rest) = host.split_at(end + 1);
        name[1..end].parse::<Ipv6Addr>().ok()?;
        return match rest.strip_prefix(':') {
            Some(port) => Some((name, Some(port))),
            None if rest.is_empty() => Some((name, None)),
            None => None,
        };
    }
    match host.split_once(':') {
        Some((_, port)) if port.contains(':') => None,
        Some((name, port)) => Some((name, Some(port))),
        None => Some((host, None)),
    }
}

/// A DNS host name: labels of ASCII letters, digits and `-` (not first or last), 1 to 63
/// characters, at most 253 in all.
fn is_host_name(name: &str) -> bool {
    name.len() <= MAX_HOST
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}
