//! JWT-shaped tokens: reading claims without verifying, and minting unsigned development
//! tokens for the local managed-identity endpoint.
//!
//! Nothing here checks a signature. Claims are read only to explain a refusal to a person
//! (which audience, which object id); they are never trusted for a decision.

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::{Map, Value};

/// The claims of an access token that help explain a refusal. Every field is optional: a
/// token may be opaque or lack any of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claims {
    /// `aud`: the resource the token was issued for.
    pub audience: Option<String>,
    /// `oid`: the object id of the identity (service principal or user).
    pub object_id: Option<String>,
    /// `tid`: the tenant that issued it.
    pub tenant_id: Option<String>,
    /// `appid` or `azp`: the client application.
    pub app_id: Option<String>,
    /// `iss`: the issuer.
    pub issuer: Option<String>,
    /// `idtyp`: `app` for service principals and managed identities, `user` for people.
    pub identity_type: Option<String>,
    /// `upn` or `unique_name`: present for users.
    pub user_name: Option<String>,
    /// `exp`: expiry, seconds since the Unix epoch.
    pub expires: Option<i64>,
}

/// Whom a role assignment is for, as `az role assignment create --assignee-principal-type`
/// spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrincipalType {
    /// An application, service principal or managed identity.
    ServicePrincipal,
    /// A person.
    User,
}

impl PrincipalType {
    /// The value for `--assignee-principal-type`.
    pub fn as_az_arg(self) -> &'static str {
        match self {
            Self::ServicePrincipal => "ServicePrincipal",
            Self::User => "User",
        }
    }
}

impl Claims {
    /// The principal type implied by the claims: `idtyp` when present, else a user when the
    /// token names one, else a service principal (managed identities carry neither).
    pub fn principal_type(&self) -> PrincipalType {
        match self.identity_type.as_deref() {
            Some("user") => PrincipalType::User,
            None if self.user_name.is_some() => PrincipalType::User,
            _ => PrincipalType::ServicePrincipal,
        }
    }
}

/// Reads the claims of a JWT without verifying it. Returns `None` for anything that is not
/// three dot-separated parts with a base64url JSON object in the middle.
pub fn decode_claims(token: &str) -> Option<Claims> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let raw = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .or_else(|_| URL_SAFE.decode(payload))
        .ok()?;
    let map: Map<String, Value> = serde_json::from_slice(&raw).ok()?;
    let text = |name: &str| map.get(name).and_then(Value::as_str).map(str::to_owned);
    Some(Claims {
        audience: text("aud").or_else(|| {
            // `aud` may be an array; the first entry is the one a resource checks first.
            map.get("aud")?
                .as_array()?
                .first()?
                .as_str()
                .map(str::to_owned)
        }),
        object_id: text("oid"),
        tenant_id: text("tid"),
        app_id: text("appid").or_else(|| text("azp")),
        issuer: text("iss"),
        identity_type: text("idtyp"),
        user_name: text("upn").or_else(|| text("unique_name")),
        expires: map.get("exp").and_then(Value::as_i64),
    })
}

/// Mints an unsigned, JWT-shaped development token: header `{"alg":"RS256","typ":"JWT"}`,
/// the given claims, and a fixed placeholder where the signature would be. Only emulators
/// that skip signature checks (Azurite) accept it; Azure never does.
pub fn encode_unsigned(claims: &Map<String, Value>) -> String {
    let header = r#"{"alg":"RS256","typ":"JWT"}"#;
    let payload = Value::Object(claims.clone()).to_string();
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode("unsigned-development-token"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn token(claims: &Value) -> String {
        encode_unsigned(claims.as_object().unwrap())
    }

    #[test]
    fn claims_round_trip_through_an_unsigned_token() {
        let t = token(&json!({
            "aud": "https://storage.azure.com",
            "oid": "11111111-2222-3333-4444-555555555555",
            "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "appid": "app",
            "iss": "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/",
            "idtyp": "app",
            "exp": 1_893_456_000,
        }));
        let c = decode_claims(&t).unwrap();
        assert_eq!(c.audience.as_deref(), Some("https://storage.azure.com"));
        assert_eq!(
            c.object_id.as_deref(),
            Some("11111111-2222-3333-4444-555555555555")
        );
        assert_eq!(c.app_id.as_deref(), Some("app"));
        assert_eq!(c.expires, Some(1_893_456_000));
        assert_eq!(c.principal_type(), PrincipalType::ServicePrincipal);
    }

    #[test]
    fn the_header_says_rs256_jwt() {
        let t = token(&json!({"aud": "x"}));
        let header = URL_SAFE_NO_PAD
            .decode(t.split('.').next().unwrap())
            .unwrap();
        assert_eq!(header, br#"{"alg":"RS256","typ":"JWT"}"#);
    }

    #[test]
    fn users_are_recognised_by_idtyp_or_upn() {
        let by_type = decode_claims(&token(&json!({"idtyp": "user"}))).unwrap();
        assert_eq!(by_type.principal_type(), PrincipalType::User);
        let by_upn = decode_claims(&token(&json!({"upn": "a@contoso.com"}))).unwrap();
        assert_eq!(by_upn.principal_type(), PrincipalType::User);
        assert_eq!(PrincipalType::User.as_az_arg(), "User");
    }

    #[test]
    fn an_array_audience_yields_its_first_entry() {
        let c = decode_claims(&token(&json!({"aud": ["https://a", "https://b"]}))).unwrap();
        assert_eq!(c.audience.as_deref(), Some("https://a"));
    }

    #[test]
    fn opaque_or_malformed_tokens_yield_nothing() {
        for t in ["", "opaque", "a.b", "a.!!!.c", "a.b.c.d", "a.bm90IGpzb24.c"] {
            assert_eq!(decode_claims(t), None, "{t}");
        }
    }

    #[test]
    fn padded_payloads_are_accepted() {
        let payload = URL_SAFE.encode(r#"{"aud":"p"}"#);
        let c = decode_claims(&format!("h.{payload}.s")).unwrap();
        assert_eq!(c.audience.as_deref(), Some("p"));
    }
}
