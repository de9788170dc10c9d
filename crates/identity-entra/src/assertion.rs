//! The client assertions the credentials of this crate share: one returned by the
//! application's callback, and one signed with a certificate for each request.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use identity_core::{BoxFuture, Error, Secret};

use crate::client::{AssertionContext, AssertionSource};
use crate::jwt::ClientCertificate;

/// An application's assertion callback, its error already an [`Error`].
pub(crate) type Callback = dyn Fn() -> BoxFuture<'static, Result<String, Error>> + Send + Sync;

/// The application's `callback`, its error made an authentication failure saying `failed`
/// (with the error as its source: its text must not hold the assertion).
pub(crate) fn callback<F, Fut, E>(
    name: &'static str,
    failed: &'static str,
    callback: F,
) -> Arc<Callback>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, E>> + Send + 'static,
    E: StdError + Send + Sync + 'static,
{
    Arc::new(move || {
        let future = callback();
        Box::pin(async move {
            future
                .await
                .map_err(|e| Error::authentication_failed(name, failed).with_source(e))
        })
    })
}

/// The assertion the application's callback returns for each request; an empty one is an
/// authentication failure saying `empty`.
pub(crate) struct CallbackSource {
    pub(crate) name: &'static str,
    pub(crate) empty: &'static str,
    pub(crate) callback: Arc<Callback>,
}

impl fmt::Debug for CallbackSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Callback")
    }
}

impl AssertionSource for CallbackSource {
    fn assertion(&self, _context: AssertionContext) -> BoxFuture<'static, Result<Secret, Error>> {
        let future = (self.callback)();
        let (name, empty) = (self.name, self.empty);
        Box::pin(async move {
            let assertion = future.await?;
            if assertion.trim().is_empty() {
                return Err(Error::authentication_failed(name, empty));
            }
            Ok(Secret::new(assertion))
        })
    }
}

/// Where a [`Signer`] takes its certificate: a fixed one, or a file reloaded when it changes.
pub(crate) trait CertificateFor: Send + Sync + fmt::Debug {
    /// The certificate to sign the next assertion with.
    fn for_request(&self) -> ClientCertificate;
}

impl<C: CertificateFor> CertificateFor for Arc<C> {
    fn for_request(&self) -> ClientCertificate {
        (**self).for_request()
    }
}

impl CertificateFor for ClientCertificate {
    fn for_request(&self) -> ClientCertificate {
        self.clone()
    }
}

/// Signs an assertion for each request (`docs/protocol.md` §6.4; `RS256` with `x5t` for the
/// `adfs` tenant, else `PS256` with `x5t#S256`; `x5c` when `send_chain`).
#[derive(Debug)]
pub(crate) struct Signer<C> {
    pub(crate) name: &'static str,
    pub(crate) certificate: C,
    pub(crate) client_id: String,
    pub(crate) send_chain: bool,
}

impl<C: CertificateFor> AssertionSource for Signer<C> {
    fn assertion(&self, context: AssertionContext) -> BoxFuture<'static, Result<Secret, Error>> {
        let adfs = context.tenant.eq_ignore_ascii_case("adfs");
        let result = self
            .certificate
            .for_request()
            .sign_assertion(
                self.name,
                &self.client_id,
                &context.token_endpoint,
                context.now,
                adfs,
                self.send_chain,
            )
            .map(Secret::new);
        Box::pin(async move { result })
    }
}
