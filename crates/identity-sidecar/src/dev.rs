//! Development tokens (`identity-sidecar --dev-tokens`): **unsigned** JWTs for emulators.
//!
//! Only emulators that skip signature checks, such as Azurite with `--oauth basic`, accept
//! them; Azure never does. The mode exists so that an application (or the blob demo) runs the
//! real credential code path, `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` exactly as App Service
//! sets them, on a laptop or in CI, against the same server that serves real tokens.
//!
//! Claims: `aud` = the requested resource (or the configured override, for negative tests),
//! `iss` = `https://sts.windows.net/<tenant>/`, `nbf`/`iat` = now, `exp` = now + lifetime,
//! `oid`/`sub` = a GUID fixed for the system-assigned identity and derived from the selector
//! for user-assigned ones, `tid`, `appid`/`azp` = the identity's client id, `idtyp` = `app`,
//! and `xms_mirid` for a `mi_res_id` selector. Every request issues a new token.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use identity_core::{Clock, Secret};
use serde_json::{Map, Value};

use crate::protocol::{Identity, TokenAnswer, TokenRequest};

/// The tenant used when none is configured (a fixed, obviously fake GUID).
pub const DEFAULT_TENANT: &str = "00000000-0000-4000-8000-00000000de71";
/// The object id of the system-assigned development identity.
pub const SYSTEM_ASSIGNED_OBJECT_ID: &str = "5ce7c0de-0000-4000-8000-000000000001";
/// The client id of the system-assigned development identity.
pub const SYSTEM_ASSIGNED_CLIENT_ID: &str = "5ce7c0de-0000-4000-8000-000000000002";

/// Issues unsigned development tokens.
pub struct DevTokens {
    /// The tenant named in `iss` and `tid` (default [`DEFAULT_TENANT`]).
    pub tenant: String,
    /// Put this in `aud` instead of the requested resource (negative tests).
    pub audience_override: Option<String>,
    /// Token lifetime (default one hour).
    pub lifetime: Duration,
    /// Source of "now" for `iat`, `nbf`, `exp`.
    pub clock: Arc<dyn Clock>,
    issued: AtomicUsize,
}

impl fmt::Debug for DevTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevTokens")
            .field("tenant", &self.tenant)
            .field("audience_override", &self.audience_override)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl Default for DevTokens {
    fn default() -> Self {
        Self::new(identity_core::system_clock())
    }
}

impl DevTokens {
    /// Defaults: [`DEFAULT_TENANT`], one-hour tokens, no audience override, `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            tenant: DEFAULT_TENANT.to_owned(),
            audience_override: None,
            lifetime: Duration::from_secs(3600),
            clock,
            issued: AtomicUsize::new(0),
        }
    }

    /// How many tokens were issued.
    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::Relaxed)
    }

    /// Issues a token for `request`.
    pub fn issue(&self, request: &TokenRequest) -> TokenAnswer {
        let (object_id, client_id) = match &request.identity {
            Identity::SystemAssigned => (
                SYSTEM_ASSIGNED_OBJECT_ID.to_owned(),
                SYSTEM_ASSIGNED_CLIENT_ID.to_owned(),
            ),
            Identity::ClientId(id) => (guid_from(&format!("oid:{id}")), id.clone()),
            Identity::ObjectId(id) => (id.clone(), guid_from(&format!("cid:{id}"))),
            Identity::ResourceId(id) => (
                guid_from(&format!("oid:{id}")),
                guid_from(&format!("cid:{id}")),
            ),
        };
        let issued = unix(self.clock.now());
        let expires = issued.saturating_add(self.lifetime.as_secs());
        let audience = self
            .audience_override
            .clone()
            .unwrap_or_else(|| request.resource.clone());
        let mut claims = Map::new();
        claims.insert("aud".into(), audience.into());
        claims.insert(
            "iss".into(),
            format!("https://sts.windows.net/{}/", self.tenant).into(),
        );
        claims.insert("iat".into(), issued.into());
        claims.insert("nbf".into(), issued.into());
        claims.insert("exp".into(), expires.into());
        claims.insert("oid".into(), object_id.clone().into());
        claims.insert("sub".into(), object_id.into());
        claims.insert("tid".into(), self.tenant.clone().into());
        claims.insert("appid".into(), client_id.clone().into());
        claims.insert("azp".into(), client_id.clone().into());
        claims.insert("idtyp".into(), "app".into());
        claims.insert("ver".into(), "1.0".into());
        if let Identity::ResourceId(id) = &request.identity {
            claims.insert("xms_mirid".into(), id.clone().into());
        }
        self.issued.fetch_add(1, Ordering::Relaxed);
        TokenAnswer {
            token: Secret::new(encode_unsigned(&claims)),
            expires_on: expires,
            resource: request.resource.clone(),
            client_id: Some(client_id),
            from_cache: Some(false),
        }
    }
}

/// An unsigned JWT (`alg` RS256 in the header, a fixed non-signature) carrying `claims`.
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

/// The payload claims of a JWT, without checking its signature; `None` when it is not one.
pub(crate) fn unverified_claims(token: &str) -> Option<Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    if payload.len() > 64 * 1024 {
        return None;
    }
    let raw = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&raw).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A GUID-shaped string derived from `seed` (FNV-1a, twice), so that a user-assigned
/// identity keeps the same object id across requests and runs.
fn guid_from(seed: &str) -> String {
    let fnv = |salt: u64| {
        seed.bytes().fold(0xcbf2_9ce4_8422_2325 ^ salt, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let (a, b) = (fnv(0), fnv(0x5bd1_e995));
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        (b >> 52) & 0x0fff,
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use identity_core::test_util::FakeClock;

    fn dev() -> DevTokens {
        let mut d = DevTokens::new(FakeClock::at_2030().shared());
        d.tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47".into();
        d
    }

    fn request(identity: Identity) -> TokenRequest {
        TokenRequest {
            resource: "https://storage.azure.com".into(),
            identity,
        }
    }

    #[test]
    fn a_token_carries_the_requested_audience_and_times() {
        let d = dev();
        let answer = d.issue(&request(Identity::SystemAssigned));
        assert_eq!(answer.expires_on, 1_893_459_600);
        assert_eq!(answer.client_id.as_deref(), Some(SYSTEM_ASSIGNED_CLIENT_ID));
        let claims = unverified_claims(answer.token.secret()).unwrap();
        assert_eq!(claims["aud"], "https://storage.azure.com");
        assert_eq!(
            claims["iss"],
            "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/"
        );
        assert_eq!(claims["iat"], 1_893_456_000);
        assert_eq!(claims["nbf"], 1_893_456_000);
        assert_eq!(claims["oid"], SYSTEM_ASSIGNED_OBJECT_ID);
        assert_eq!(d.issued(), 1);
    }

    #[test]
    fn the_audience_override_replaces_aud_but_not_resource() {
        let mut d = dev();
        d.audience_override = Some("https://wrong.example".into());
        let answer = d.issue(&request(Identity::SystemAssigned));
        assert_eq!(answer.resource, "https://storage.azure.com");
        let claims = unverified_claims(answer.token.secret()).unwrap();
        assert_eq!(claims["aud"], "https://wrong.example");
    }

    #[test]
    fn user_assigned_identities_get_stable_distinct_object_ids() {
        let d = dev();
        let oid = |identity| {
            let answer = d.issue(&request(identity));
            let claims = unverified_claims(answer.token.secret()).unwrap();
            (
                claims["oid"].as_str().unwrap().to_owned(),
                answer.client_id.unwrap(),
            )
        };
        let (a, cid) = oid(Identity::ClientId("aaaa".into()));
        assert_eq!(cid, "aaaa");
        assert_eq!(oid(Identity::ClientId("aaaa".into())).0, a);
        assert_ne!(oid(Identity::ClientId("bbbb".into())).0, a);
        assert_ne!(a, SYSTEM_ASSIGNED_OBJECT_ID);
        assert_eq!(oid(Identity::ObjectId("1234".into())).0, "1234");
        assert_eq!(
            oid(Identity::ResourceId("/subscriptions/x".into())).0.len(),
            36
        );
    }
}
