//! [`AuthenticationRecord`]: the non-secret account details of a sign-in.
//!
//! JSON (as the other Azure SDKs write it, so a record moves between them):
//! `{"authority":"login.microsoftonline.com","clientId":"…","homeAccountId":"uid.utid",
//! "tenantId":"…","username":"user@contoso.com","version":"1.0"}`. What is accepted, and
//! the rules each field follows, are in `docs/protocol.md` §6.9 and [`check`].

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use identity_core::Error;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::authority::Authority;

mod check;

use check::Entries;

/// The record format version written and accepted.
const VERSION: &str = "1.0";

/// The longest text [`AuthenticationRecord::deserialize`] reads, in bytes: a record is a few
/// hundred.
const MAX_RECORD: usize = 64 * 1024;

/// The account a user credential signed in, without any secret: enough for a later process
/// to find the account's refresh token in a persistent cache.
///
/// Returned by `authenticate` of [`InteractiveBrowserCredential`] and
/// [`DeviceCodeCredential`]; given back through their builders' `authentication_record`.
/// [`serialize`](Self::serialize) writes the same JSON as the other Azure SDKs (fields
/// `authority`, `clientId`, `homeAccountId`, `tenantId`, `username`, `version` = `"1.0"`).
/// [`deserialize`](Self::deserialize) (and `serde`'s `Deserialize`) checks every field
/// before a credential can use it (`docs/protocol.md` §6.9).
///
/// ```
/// use identity_chain::AuthenticationRecord;
/// let json = r#"{"authority":"login.microsoftonline.com","clientId":"c","homeAccountId":"u.t","tenantId":"t","username":"a@b.c","version":"1.0"}"#;
/// let record = AuthenticationRecord::deserialize(json)?;
/// assert_eq!(record.username(), "a@b.c");
/// assert_eq!(record.serialize(), json);
/// # Ok::<(), identity_chain::Error>(())
/// ```
///
/// [`InteractiveBrowserCredential`]: crate::InteractiveBrowserCredential
/// [`DeviceCodeCredential`]: crate::DeviceCodeCredential
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "Entries")]
pub struct AuthenticationRecord {
    /// The authority host, without scheme: `login.microsoftonline.com`.
    pub(crate) authority: String,
    pub(crate) client_id: String,
    pub(crate) home_account_id: String,
    pub(crate) tenant_id: String,
    pub(crate) username: String,
    version: String,
}

impl fmt::Debug for AuthenticationRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticationRecord")
            .field("authority", &self.authority)
            .field("client_id", &self.client_id)
            .field("home_account_id", &self.home_account_id)
            .field("tenant_id", &self.tenant_id)
            .field("username", &self.username)
            .finish()
    }
}

impl AuthenticationRecord {
    /// A record from its parts. `authority` is the host, e.g. `login.microsoftonline.com`;
    /// an `https` URL of the host alone (`https://login.microsoftonline.com/`) is reduced to
    /// the host. The parts are checked when a credential is built with the record.
    #[must_use]
    pub fn new(
        authority: impl Into<String>,
        client_id: impl Into<String>,
        home_account_id: impl Into<String>,
        tenant_id: impl Into<String>,
        username: impl Into<String>,
    ) -> Self {
        let authority = authority.into();
        Self {
            authority: check::authority_host(&authority).unwrap_or(authority),
            client_id: client_id.into(),
            home_account_id: home_account_id.into(),
            tenant_id: tenant_id.into(),
            username: username.into(),
            version: VERSION.to_owned(),
        }
    }

    /// The authority host, e.g. `login.microsoftonline.com`.
    #[must_use]
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The application (client) id that signed the user in.
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The account's id: `<object id>.<home tenant id>`.
    #[must_use]
    pub fn home_account_id(&self) -> &str {
        &self.home_account_id
    }

    /// The tenant the account signed in to.
    #[must_use]
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// The user's sign-in name (`preferred_username`, or `upn` on AD FS).
    #[must_use]
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The record as JSON, with the field order of the other Azure SDKs.
    #[must_use]
    pub fn serialize(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a record written by [`serialize`](Self::serialize) or another Azure SDK: a JSON
    /// object (after at most one leading byte order mark, `docs/protocol.md` §1.5) with the
    /// string members `authority` (a host name, or the `https` URL of one), `clientId`,
    /// `homeAccountId`, `tenantId` (ASCII letters, digits, `-` and `.`), `username` and
    /// `version` (`"1.0"`); keys are case-sensitive, each appears once, others are ignored.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`](identity_core::ErrorKind::InvalidArgument) when the text
    /// is longer than 64 KiB, is not a JSON object, or a member is missing, repeated, not a
    /// string or invalid; the message names the field and what was expected, never a value.
    pub fn deserialize(json: &str) -> Result<Self, Error> {
        let bad = |why: String| {
            Error::invalid_argument(
                "AuthenticationRecord",
                format!("not a valid authentication record: {why}"),
            )
        };
        if json.len() > MAX_RECORD {
            return Err(bad(format!("the text is longer than {MAX_RECORD} bytes")));
        }
        let json = identity_core::wire::strip_bom_str(json);
        let entries: Entries = serde_json::from_str(json).map_err(|e| {
            bad(if e.is_data() {
                "the text is JSON but not an object".to_owned()
            } else {
                format!(
                    "the text is not JSON (error at line {} column {})",
                    e.line(),
                    e.column()
                )
            })
        })?;
        Self::try_from(entries).map_err(bad)
    }

    /// Checks every field (`docs/protocol.md` §6.9); `Err` names the first bad one.
    pub(crate) fn check(&self) -> Result<(), String> {
        check::fields(self)
    }
}

/// The record of a sign-in, from the token response's `id_token` and `client_info`.
///
/// The ID token's signature is not checked: it came over TLS straight from the token
/// endpoint, and only its non-secret claims (`aud`, `tid`, `preferred_username`/`upn`, `sub`)
/// are read. The home account id is `uid.utid` from `client_info`, else `sub`.
pub(crate) fn from_id_token(
    name: &'static str,
    authority: &Authority,
    id_token: &str,
    client_info: Option<&str>,
) -> Result<AuthenticationRecord, Error> {
    let bad = || {
        Error::authentication_failed(
            name,
            "the ID token in the sign-in answer is not a JWT with the expected claims",
        )
    };
    let payload = id_token.split('.').nth(1).ok_or_else(bad)?;
    let claims: Value = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(bad)?;
    let text = |key: &str| {
        claims
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let home_account_id = client_info
        .and_then(|info| URL_SAFE_NO_PAD.decode(info.trim_end_matches('=')).ok())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|info| {
            let uid = info.get("uid")?.as_str()?.to_owned();
            let utid = info.get("utid")?.as_str()?.to_owned();
            Some(format!("{uid}.{utid}"))
        })
        .or_else(|| text("sub").map(str::to_owned))
        .ok_or_else(bad)?;
    let tenant = text("tid")
        .map(str::to_owned)
        .or_else(|| {
            text("iss").and_then(|iss| {
                iss.parse::<http::Uri>().ok().map(|u| {
                    u.path()
                        .trim_matches('/')
                        .split('/')
                        .next()
                        .unwrap_or("")
                        .to_owned()
                })
            })
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(bad)?;
    let username = text("preferred_username")
        .or_else(|| text("upn"))
        .ok_or_else(bad)?;
    let client_id = text("aud").ok_or_else(bad)?;
    let record = AuthenticationRecord::new(
        authority_host(authority),
        client_id,
        home_account_id,
        tenant,
        username,
    );
    // What a later process reads back must pass the same rules (docs/protocol.md §6.9).
    record.check().map_err(|why| {
        Error::authentication_failed(
            name,
            format!(
                "the ID token in the sign-in answer cannot make an authentication record: {why}"
            ),
        )
    })?;
    Ok(record)
}

/// The authority's host (and port), as a record names it.
pub(crate) fn authority_host(authority: &Authority) -> String {
    let url = authority.as_str();
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_serializes_to_the_reference_json_and_back() {
        // The reference writes these keys in this order (json.dumps of a dict in
        // insertion order, with ", " and ": " separators; the separators differ, the document
        // does not).
        let record = AuthenticationRecord::new(
            "login.microsoftonline.com",
            "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
            "uid.utid",
            "tid",
            "user@contoso.com",
        );
        let json = record.serialize();
        assert_eq!(
            json,
            r#"{"authority":"login.microsoftonline.com","clientId":"04b07795-8ddb-461a-bbee-02f9e1bf7b46","homeAccountId":"uid.utid","tenantId":"tid","username":"user@contoso.com","version":"1.0"}"#
        );
        let reference = r#"{"authority": "login.microsoftonline.com", "clientId": "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "homeAccountId": "uid.utid", "tenantId": "tid", "username": "user@contoso.com", "version": "1.0"}"#;
        assert_eq!(
            AuthenticationRecord::deserialize(reference).unwrap(),
            record
        );
        let other = reference.replace("1.0", "2.0");
        assert!(AuthenticationRecord::deserialize(&other).is_err());
        assert!(AuthenticationRecord::deserialize("{}").is_err());
    }

    /// The reference's record with `field` set to the JSON `value`.
    fn with(field: &str, value: &str) -> String {
        let mut members: Vec<String> = check::KEYS
            .iter()
            .zip([
                "\"login.microsoftonline.com\"",
                "\"04b07795-8ddb-461a-bbee-02f9e1bf7b46\"",
                "\"u.t\"",
                "\"t\"",
                "\"a@b\"",
                "\"1.0\"",
            ])
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        let i = check::KEYS.iter().position(|k| *k == field).unwrap();
        members[i] = format!("\"{field}\":{value}");
        format!("{{{}}}", members.join(","))
    }

    /// The error message of reading `json`; the kind is always an invalid argument.
    fn refused(json: &str) -> String {
        let err = AuthenticationRecord::deserialize(json).unwrap_err();
        assert_eq!(
            err.kind(),
            identity_core::ErrorKind::InvalidArgument,
            "{json}"
        );
        assert!(
            err.message()
                .starts_with("not a valid authentication record: "),
            "{err}"
        );
        err.message().to_owned()
    }

    #[test]
    fn the_field_report_inputs_get_their_outcomes() {
        // The inputs of the field report, byte for byte.
        let ok = r#"{"authority":"login.microsoftonline.com","clientId":"04b07795-8ddb-461a-bbee-02f9e1bf7b46","homeAccountId":"u.t","tenantId":"t","username":"a@b","version":"1.0"}"#;
        let host = |json: &str| AuthenticationRecord::deserialize(json).unwrap().authority;
        assert_eq!(host(ok), "login.microsoftonline.com");
        assert_eq!(host(&ok.replace(".com", ".us")), "login.microsoftonline.us");
        assert_eq!(host(&format!("\u{feff}{ok}")), "login.microsoftonline.com");
        // A URL of the host alone is reduced to the host (as the Python reference reads it),
        // never `https://https://…`.
        let scheme = ok.replace(
            "\"login.microsoftonline.com\"",
            "\"https://login.microsoftonline.com/\"",
        );
        assert_eq!(host(&scheme), "login.microsoftonline.com");
        let slash = ok.replace(".com\"", ".com/\"");
        assert_eq!(host(&slash), "login.microsoftonline.com");
        for (json, expected) in [
            (
                ok.replace("}", ",\"version\":\"2.0\"}"),
                "the field `version` appears more than once",
            ),
            (
                r#"{"authority":"","clientId":"","homeAccountId":"","tenantId":"","username":"","version":"1.0"}"#.to_owned(),
                "the field `authority` is empty; expected a host name such as login.microsoftonline.com",
            ),
            (String::new(), "the text is not JSON (error at line 1 column 0)"),
            (
                ok.replace(",\"version\":\"1.0\"", ""),
                "missing `version`; a record has the keys `authority`, `clientId`, `homeAccountId`, `tenantId`, `username`, `version`",
            ),
            (
                with("authority", "null"),
                "the field `authority` is null; expected a string",
            ),
            (
                ok.replace("\"1.0\"", "1.0"),
                "the field `version` is a number; expected a string",
            ),
            (
                r#"{"Authority":"login.microsoftonline.com","ClientId":"04b07795-8ddb-461a-bbee-02f9e1bf7b46","HomeAccountId":"u.t","TenantId":"t","Username":"a@b","Version":"1.0"}"#.to_owned(),
                "missing `authority`, `clientId`, `homeAccountId`, `tenantId`, `username`, `version`; a record has the keys `authority`, `clientId`, `homeAccountId`, `tenantId`, `username`, `version` (case-sensitive: camelCase, not PascalCase)",
            ),
            (
                r#"{"authority":"login.microsoftonline.com","clientId":"04b07795-8ddb-461a-bbee-02f9e1bf7b46","homeAccountId":"u.t","tenantId":"../../etc","username":"a@b\u0000\u001b[31mred","version":"1.0"}"#.to_owned(),
                "the field `tenantId` is not a valid tenant id: only ASCII letters, digits, '-' and '.' are allowed",
            ),
        ] {
            let message = refused(&json);
            assert_eq!(
                message,
                format!("not a valid authentication record: {expected}"),
                "{json}"
            );
        }
        assert!(
            refused(&with("username", r#""a@b\u0000\u001b[31mred""#))
                .ends_with("the field `username` contains a control character")
        );
    }

    #[test]
    fn odd_authorities_are_reduced_to_a_host_or_refused() {
        for (raw, host) in [
            ("LOGIN.MicrosoftOnline.com", "login.microsoftonline.com"),
            (
                "https://login.microsoftonline.com",
                "login.microsoftonline.com",
            ),
            ("HTTPS://login.chinacloudapi.cn/", "login.chinacloudapi.cn"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("127.0.0.1:8443", "127.0.0.1:8443"),
            ("https://localhost:1/", "localhost:1"),
            ("[::1]:9", "[::1]:9"),
            ("localhost", "localhost"),
        ] {
            let json = with("authority", &format!("\"{raw}\""));
            assert_eq!(
                AuthenticationRecord::deserialize(&json).unwrap().authority,
                host,
                "{raw}"
            );
        }
        let long_label = format!("{}.com", "a".repeat(64));
        let long_host = format!("{}com", "abc.".repeat(64));
        for (raw, why) in [
            ("http://login.microsoftonline.com", "scheme is not https"),
            ("file:///etc/passwd", "scheme is not https"),
            ("https://https://login.microsoftonline.com", "path"),
            ("https://login.microsoftonline.com/common", "path"),
            ("login.microsoftonline.com/adfs", "path"),
            ("login.microsoftonline.com//", "path"),
            ("login.microsoftonline.com?x=1", "query"),
            ("login.microsoftonline.com#top", "fragment"),
            ("\\\\\\\\host\\\\share", "path"),
            (
                "https://user:pw@login.microsoftonline.com",
                "user information",
            ),
            ("user@login.microsoftonline.com", "user information"),
            ("login.microsoftonline.com:443", "port"),
            ("127.0.0.1:0", "port"),
            ("127.0.0.1:65536", "port"),
            ("127.0.0.1:", "port"),
            ("localhost:+1", "port"),
            ("10.0.0.1", "IP address"),
            ("169.254.169.254", "IP address"),
            ("[fe80::1]", "IP address"),
            ("[::1", "IPv6"),
            ("::1", "IPv6"),
            ("", "empty"),
            ("/", "empty"),
            ("https://", "empty"),
            (" login.microsoftonline.com", "not a host name"),
            ("login..microsoftonline.com", "not a host name"),
            ("-login.com", "not a host name"),
            ("login_x.com", "not a host name"),
            ("ünicode.example", "not a host name"),
            ("login.com\\u0000", "not a host name"),
            ("login.com\\u001b[31m", "not a host name"),
            (&long_label, "not a host name"),
            (&long_host, "not a host name"),
        ] {
            let message = refused(&with("authority", &format!("\"{raw}\"")));
            assert!(
                message.contains("the field `authority`"),
                "{raw}: {message}"
            );
            assert!(message.contains(why), "{raw}: {message}");
            assert!(
                message.ends_with("expected a host name such as login.microsoftonline.com"),
                "{message}"
            );
        }
    }

    #[test]
    fn odd_ids_usernames_and_versions_are_refused_by_field() {
        let long = format!("\"{}\"", "x".repeat(1025));
        for (field, value, why) in [
            ("tenantId", r#""""#, "`tenantId` is empty"),
            (
                "tenantId",
                r#""a/b""#,
                "`tenantId` is not a valid tenant id",
            ),
            (
                "tenantId",
                r#""a%2fb""#,
                "`tenantId` is not a valid tenant id",
            ),
            ("tenantId", r#""t ""#, "`tenantId` contains whitespace"),
            (
                "tenantId",
                r#""t\n""#,
                "`tenantId` contains a control character",
            ),
            ("clientId", r#""""#, "`clientId` is empty"),
            ("clientId", r#""a b""#, "`clientId` contains whitespace"),
            (
                "clientId",
                r#""c\u0007""#,
                "`clientId` contains a control character",
            ),
            ("clientId", &long, "`clientId` is longer than 1024 bytes"),
            ("homeAccountId", r#""""#, "`homeAccountId` is empty"),
            (
                "homeAccountId",
                r#""u.t\r\n""#,
                "`homeAccountId` contains a control character",
            ),
            (
                "homeAccountId",
                r#""u\u2028t""#,
                "`homeAccountId` contains whitespace",
            ),
            ("username", r#""""#, "`username` is empty"),
            (
                "username",
                r#""a\u0085b""#,
                "`username` contains a control character",
            ),
            ("username", &long, "`username` is longer than 1024 bytes"),
            (
                "username",
                "true",
                "`username` is a boolean; expected a string",
            ),
            (
                "clientId",
                "[]",
                "`clientId` is an array; expected a string",
            ),
            (
                "tenantId",
                "{}",
                "`tenantId` is an object; expected a string",
            ),
            ("version", r#""2.0""#, "`version` is not \"1.0\""),
            ("version", r#""1""#, "`version` is not \"1.0\""),
            ("version", r#"" 1.0""#, "`version` is not \"1.0\""),
        ] {
            let message = refused(&with(field, value));
            assert!(message.contains(why), "{field}={value}: {message}");
            assert!(message.len() < 400, "{message}");
        }
        // A username may hold spaces; unknown keys are ignored, as the references ignore them.
        let spaced = with("username", r#""Jane Doe <jane@contoso.com>""#);
        assert!(AuthenticationRecord::deserialize(&spaced).is_ok());
        let extra = with("version", r#""1.0","extra":[1,{"x":null}]"#);
        assert!(AuthenticationRecord::deserialize(&extra).is_ok());
        for (text, why) in [
            ("[]", "the text is JSON but not an object"),
            ("\"a record\"", "the text is JSON but not an object"),
            ("null", "the text is JSON but not an object"),
            ("{", "the text is not JSON"),
            ("\u{feff}\u{feff}{}", "the text is not JSON"),
        ] {
            assert!(
                refused(text).ends_with(why) || refused(text).contains(why),
                "{text}"
            );
        }
        let huge = format!("{}{}", " ".repeat(MAX_RECORD), with("version", r#""1.0""#));
        assert!(refused(&huge).contains("longer than 65536 bytes"));
    }

    #[test]
    fn serde_and_new_go_through_the_same_rules() {
        let scheme = with("authority", r#""https://login.microsoftonline.com/""#);
        let record: AuthenticationRecord = serde_json::from_str(&scheme).unwrap();
        assert_eq!(record.authority(), "login.microsoftonline.com");
        assert!(
            serde_json::from_str::<AuthenticationRecord>(&with("tenantId", r#""a/b""#)).is_err()
        );
        let made =
            AuthenticationRecord::new("https://Login.MicrosoftOnline.com/", "c", "u.t", "t", "a@b");
        assert_eq!(made.authority(), "login.microsoftonline.com");
        assert_eq!(made.check(), Ok(()));
        let bad = AuthenticationRecord::new("https://https://x", "c", "u.t", "t", "a@b");
        assert!(bad.check().unwrap_err().contains("`authority`"));
        let bad = AuthenticationRecord::new("login.microsoftonline.com", "c", "u.t", "../x", "a@b");
        assert!(bad.check().unwrap_err().contains("`tenantId`"));
    }

    #[test]
    fn a_record_is_read_from_the_id_token_and_client_info() {
        let claims = serde_json::json!({"aud":"c","tid":"t","preferred_username":"u@x","sub":"s","iss":"https://login.microsoftonline.com/t/v2.0"});
        let token = format!(
            "e30.{}.",
            URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes())
        );
        let info = URL_SAFE_NO_PAD.encode(br#"{"uid":"U","utid":"T"}"#);
        let authority = Authority::parse("X", "https://login.microsoftonline.com", false).unwrap();
        let record = from_id_token("X", &authority, &token, Some(&info)).unwrap();
        assert_eq!(record.home_account_id(), "U.T");
        assert_eq!(record.authority(), "login.microsoftonline.com");
        let record = from_id_token("X", &authority, &token, None).unwrap();
        assert_eq!(record.home_account_id(), "s");
        assert!(from_id_token("X", &authority, "garbage", None).is_err());
        for (claim, value, field) in [
            ("preferred_username", "u@x\u{1b}[2J", "`username`"),
            ("tid", "../t", "`tenantId`"),
            ("aud", "c d", "`clientId`"),
        ] {
            let mut claims = claims.clone();
            claims[claim] = Value::from(value);
            let token = format!(
                "e30.{}.",
                URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes())
            );
            let err = from_id_token("X", &authority, &token, Some(&info)).unwrap_err();
            assert_eq!(err.kind(), identity_core::ErrorKind::AuthenticationFailed);
            assert!(err.message().contains(field), "{err}");
            assert!(!err.message().contains(value), "{err}");
        }
    }
}
