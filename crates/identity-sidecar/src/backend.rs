//! Where tokens come from: a managed identity (the default), any credential of the workspace,
//! or unsigned development tokens.
//!
//! The backends keep no cache of their own: the managed-identity clients and credentials cache
//! through identity-core's `TokenCache` (one load per identity and resource however many
//! callers wait, refresh ahead of expiry, a valid token served while a refresh fails), and the
//! sidecar holds one of each for the whole host.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use identity_chain::{
    ManagedIdentityClient, ManagedIdentityCredentialBuilder, ManagedIdentityId, TokenSource,
};
use identity_core::{Error, TokenCredential, TokenRequestOptions};

use crate::dev::{DevTokens, unverified_claims};
use crate::protocol::{Identity, TokenAnswer, TokenRequest};

const NAME: &str = "identity-sidecar";

/// Makes the builder of the managed-identity client for one identity. The sidecar calls it
/// once per distinct identity asked for; tests use it to inject an environment, an endpoint
/// and an HTTP client.
pub type BuilderFn = dyn Fn(ManagedIdentityId) -> ManagedIdentityCredentialBuilder + Send + Sync;

/// Where tokens come from.
pub enum Backend {
    /// A managed identity: one client per identity asked for (system-assigned or selected by
    /// `client_id`, `object_id` or `mi_res_id`), at most `max_identities` of them.
    ManagedIdentity {
        /// Builds the client for one identity.
        builder: Arc<BuilderFn>,
        /// The most distinct identities served (further ones get 400).
        max_identities: usize,
        /// The clients built so far.
        clients: Mutex<HashMap<Identity, ManagedIdentityClient>>,
        /// The client id the upstream last sent for each identity, reported with tokens
        /// served from the cache (which do not carry it).
        client_ids: Mutex<HashMap<Identity, String>>,
    },
    /// Any credential: requests carry no identity selector; the resource `R` becomes the
    /// scope `R/.default`.
    Credential(Arc<dyn TokenCredential>),
    /// Unsigned development tokens.
    DevTokens(Arc<DevTokens>),
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ManagedIdentity { max_identities, .. } => f
                .debug_struct("ManagedIdentity")
                .field("max_identities", max_identities)
                .finish_non_exhaustive(),
            Self::Credential(c) => f.debug_tuple("Credential").field(&c.name()).finish(),
            Self::DevTokens(d) => f.debug_tuple("DevTokens").field(d).finish(),
        }
    }
}

impl Backend {
    /// A managed-identity backend whose clients come from `builder` (at most 64 identities).
    pub fn managed_identity(
        builder: impl Fn(ManagedIdentityId) -> ManagedIdentityCredentialBuilder + Send + Sync + 'static,
    ) -> Self {
        Self::ManagedIdentity {
            builder: Arc::new(builder),
            max_identities: 64,
            clients: Mutex::new(HashMap::new()),
            client_ids: Mutex::new(HashMap::new()),
        }
    }

    /// A short name for logs and `--help`: `managed-identity`, the credential's type name, or
    /// `dev-tokens`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ManagedIdentity { .. } => "managed-identity",
            Self::Credential(c) => c.name(),
            Self::DevTokens(_) => "dev-tokens",
        }
    }

    /// A token for `request`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`](identity_core::ErrorKind::InvalidArgument) for an identity
    /// selector the backend cannot serve (any selector with a non-managed-identity credential,
    /// or more distinct identities than allowed);
    /// [`ErrorKind::InvalidConfiguration`](identity_core::ErrorKind::InvalidConfiguration) when
    /// the host cannot serve that identity kind; otherwise the credential's own errors.
    pub async fn token(&self, request: &TokenRequest) -> Result<TokenAnswer, Error> {
        match self {
            Self::ManagedIdentity {
                builder,
                max_identities,
                clients,
                client_ids,
            } => {
                let client = {
                    let mut clients = clients
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    match clients.get(&request.identity) {
                        Some(c) => c.clone(),
                        None => {
                            if clients.len() >= *max_identities {
                                return Err(Error::invalid_argument(
                                    NAME,
                                    format!(
                                        "this sidecar serves at most {max_identities} distinct identities"
                                    ),
                                ));
                            }
                            let id = match &request.identity {
                                Identity::SystemAssigned => ManagedIdentityId::SystemAssigned,
                                Identity::ClientId(v) => ManagedIdentityId::ClientId(v.clone()),
                                Identity::ObjectId(v) => ManagedIdentityId::ObjectId(v.clone()),
                                Identity::ResourceId(v) => ManagedIdentityId::ResourceId(v.clone()),
                            };
                            let client = ManagedIdentityClient::from_builder(builder(id))?;
                            clients.insert(request.identity.clone(), client.clone());
                            client
                        }
                    }
                };
                let result = client.acquire_token_for_client(&request.resource).await?;
                let client_id = {
                    let mut known = client_ids
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    match result.client_id.clone().filter(|c| !c.trim().is_empty()) {
                        Some(sent) => {
                            known.insert(request.identity.clone(), sent.clone());
                            Some(sent)
                        }
                        None => known.get(&request.identity).cloned(),
                    }
                }
                .or_else(|| client_id_of(result.token.secret(), &request.identity));
                Ok(TokenAnswer {
                    expires_on: unix(result.expires_on),
                    resource: request.resource.clone(),
                    client_id,
                    from_cache: Some(result.token_source == TokenSource::Cache),
                    token: result.token,
                })
            }
            Self::Credential(credential) => {
                if request.identity != Identity::SystemAssigned {
                    return Err(Error::invalid_argument(
                        NAME,
                        format!(
                            "identity selectors are served with the managed identity credential only; this sidecar uses {}",
                            credential.name()
                        ),
                    ));
                }
                let scope = format!("{}/.default", request.resource.trim_end_matches('/'));
                let token = credential
                    .get_token(&[scope.as_str()], &TokenRequestOptions::default())
                    .await?;
                let client_id = app_client_id(token.token.secret());
                Ok(TokenAnswer {
                    expires_on: unix(token.expires_on),
                    resource: request.resource.clone(),
                    client_id,
                    from_cache: None,
                    token: token.token,
                })
            }
            Self::DevTokens(dev) => Ok(dev.issue(request)),
        }
    }
}

/// The client id of a managed identity's token when the upstream did not send one: the
/// token's `appid`/`azp` claim when it is a JWT (read, not verified: the value is only echoed
/// back), else the requested client id, else none (the field is then left out).
fn client_id_of(token: &str, identity: &Identity) -> Option<String> {
    claimed_client_id(token).or_else(|| match identity {
        Identity::ClientId(id) => Some(id.clone()),
        _ => None,
    })
}

/// The client id of another credential's token: the `appid`/`azp` claim of an application
/// token only. A user's token (one with delegated scopes, `scp`) names the application the
/// user signed in with (the Azure CLI's, say), which is no identity's client id.
fn app_client_id(token: &str) -> Option<String> {
    let claims = unverified_claims(token)?;
    if claims.contains_key("scp") {
        return None;
    }
    claimed_client_id(token)
}

fn claimed_client_id(token: &str) -> Option<String> {
    let claims = unverified_claims(token)?;
    ["appid", "azp", "client_id"]
        .into_iter()
        .find_map(|k| claims.get(k)?.as_str().map(str::to_owned))
        .filter(|c| !c.trim().is_empty())
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::encode_unsigned;

    fn token(claims: serde_json::Value) -> String {
        let serde_json::Value::Object(map) = claims else {
            unreachable!()
        };
        encode_unsigned(&map)
    }

    #[test]
    fn a_client_id_comes_from_an_application_token_only() {
        let app = token(serde_json::json!({"appid": "app-1", "idtyp": "app"}));
        let user = token(serde_json::json!({"appid": "cli-app", "scp": "user_impersonation"}));
        assert_eq!(app_client_id(&app).as_deref(), Some("app-1"));
        assert_eq!(app_client_id(&user), None);
        assert_eq!(app_client_id("opaque"), None);
        let requested = Identity::ClientId("cid".into());
        assert_eq!(client_id_of("opaque", &requested).as_deref(), Some("cid"));
        assert_eq!(client_id_of("opaque", &Identity::SystemAssigned), None);
        assert_eq!(client_id_of(&app, &requested).as_deref(), Some("app-1"));
    }
}
