//! How the calling API proves its identity to Microsoft Entra ID: a client secret, a
//! certificate (file or bytes) signing an assertion per request, or an assertion callback.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use identity_core::{Error, Secret};

use super::{MAX_CERTIFICATE, NAME};
use crate::assertion::{Callback, CallbackSource, Signer};
use crate::client::ClientAuth;
use crate::jwt::ClientCertificate;

#[derive(Clone)]
pub(super) enum Proof {
    Secret(Secret),
    CertificatePath(PathBuf, Option<Secret>, bool),
    Certificate(Arc<[u8]>, Option<Secret>, bool),
    Callback(Arc<Callback>),
}

impl fmt::Debug for Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("Secret(***)"),
            Self::CertificatePath(path, ..) => write!(f, "CertificatePath({})", path.display()),
            Self::Certificate(bytes, ..) => write!(f, "Certificate({} bytes)", bytes.len()),
            Self::Callback(_) => f.write_str("AssertionCallback"),
        }
    }
}

impl Proof {
    /// The proof, read and checked: a certificate is loaded here.
    pub(super) fn into_auth(self, client_id: &str) -> Result<ClientAuth, Error> {
        let auth = match self {
            Self::Secret(secret) if secret.secret().trim().is_empty() => {
                return Err(Error::invalid_configuration(
                    NAME,
                    "the client secret is empty or blank",
                ));
            }
            Self::Secret(secret) => ClientAuth::Secret(secret),
            Self::Callback(callback) => ClientAuth::Assertion(Arc::new(CallbackSource {
                name: NAME,
                empty: "the client assertion callback returned an empty assertion",
                callback,
            })),
            Self::CertificatePath(path, password, send_chain) => {
                let bytes = identity_core::fs::read(
                    &path,
                    &identity_core::fs::ReadOptions::configured(MAX_CERTIFICATE),
                )
                .map_err(|e| {
                    Error::invalid_configuration(
                        NAME,
                        format!("cannot read the certificate file {}: {e}", path.display()),
                    )
                })?;
                signer(&bytes, password.as_ref(), send_chain, client_id)?
            }
            Self::Certificate(bytes, password, send_chain) => {
                signer(&bytes, password.as_ref(), send_chain, client_id)?
            }
        };
        Ok(auth)
    }
}

fn signer(
    bytes: &[u8],
    password: Option<&Secret>,
    send_chain: bool,
    client_id: &str,
) -> Result<ClientAuth, Error> {
    let certificate = ClientCertificate::load(NAME, bytes, password.map(Secret::secret))?;
    Ok(ClientAuth::Assertion(Arc::new(Signer {
        name: NAME,
        certificate,
        client_id: client_id.to_owned(),
        send_chain,
    })))
}
