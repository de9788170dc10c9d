//! [`AuthenticationRecord`]: the non-secret account details of a sign-in.
//!
//! JSON (as the other Azure SDKs write it, so a record moves between them):
//! `{"authority":"login.microsoftonline.com","clientId":"…","homeAccountId":"uid.utid",
//! "tenantId":"…","username":"user@contoso.com","version":"1.0"}`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use identity_core::Error;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::authority::Authority;

/// The record format version written and accepted.
const VERSION: &str = "1.0";

/// The account a user credential signed in, without any secret: enough for a later process
/// to find the account's refresh token in a persistent cache.
///
/// Returned by `authenticate` of [`InteractiveBrowserCredential`] and
/// [`DeviceCodeCredential`]; given back through their builders' `authentication_record`.
/// [`serialize`](Self::serialize) writes the same JSON as the other Azure SDKs (fields
/// `authority`, `clientId`, `homeAccountId`, `tenantId`, `username`, `version` = `"1.0"`).
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
#[serde(rename_all = "camelCase")]
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
    /// A record from its parts. `authority` is the host, e.g. `login.microsoftonline.com`.
    #[must_use]
    pub fn new(
        authority: impl Into<String>,
        client_id: impl Into<String>,
        home_account_id: impl Into<String>,
        tenant_id: impl Into<String>,
        username: impl Into<String>,
    ) -> Self {
        Self {
            authority: authority.into(),
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

    /// Reads a record written by [`serialize`](Self::serialize) or another Azure SDK.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`](identity_core::ErrorKind::InvalidArgument) when the text
    /// is not a record, or its `version` is not `"1.0"`.
    pub fn deserialize(json: &str) -> Result<Self, Error> {
        let record: Self = serde_json::from_str(json).map_err(|e| {
            Error::invalid_argument(
                "AuthenticationRecord",
                format!(
                    "not an authentication record (JSON error at line {} column {})",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        if record.version != VERSION {
            return Err(Error::invalid_argument(
                "AuthenticationRecord",
                "unsupported authentication record version; this library reads version 1.0",
            ));
        }
        Ok(record)
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
    Ok(AuthenticationRecord::new(
        authority_host(authority),
        client_id,
        home_account_id,
        tenant,
        username,
    ))
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
    }
}
