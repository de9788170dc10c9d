//! [`ChainedTokenCredential`]: try credentials in order until one produces a token.

mod engine;
mod error;
#[cfg(test)]
mod span_tests;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use identity_core::cache::CacheSlot;
use identity_core::{AccessToken, BoxFuture, Error, TokenCredential, TokenRequestOptions};

pub(crate) use engine::{Chain, Member};
pub use error::{Attempt, ChainError};

const NAME: &str = "ChainedTokenCredential";

/// The default overall deadline of one `get_token` through a chain
/// ([`ChainedTokenCredential`] and `DefaultAzureCredential`): 120 s.
///
/// Each member also keeps its own deadline (60 s for most credentials, 90 s for IMDS, the
/// process timeout for developer tools), and a member before the last gets at most half of
/// what is left of the chain's, so one slow or silent member never uses up the time of the
/// members after it.
pub const DEFAULT_CHAIN_DEADLINE: Duration = Duration::from_secs(120);

/// Tries each credential in order: an *unavailable* credential moves the chain on; any other
/// failure stops it. When no credential produces a token, the error lists every attempt, one
/// per line.
///
/// One call ends within the chain's deadline ([`DEFAULT_CHAIN_DEADLINE`], 120 s, or
/// [`with_deadline`](Self::with_deadline)). A member before the last gets at most half of
/// what is left of it; a member that has not answered when its share ends is recorded as
/// *unavailable* ("no token within … ms") and the chain moves on. The last member gets what is
/// left. Every member also keeps its own deadline.
///
/// ```
/// # async fn demo() -> Result<(), identity_core::Error> {
/// use std::sync::Arc;
/// use identity_chain::{ChainedTokenCredential, ManagedIdentityCredential, AzureCliCredential, TokenCredential, TokenRequestOptions};
///
/// let chain = ChainedTokenCredential::new(vec![
///     Arc::new(ManagedIdentityCredential::builder().build()?),
///     Arc::new(AzureCliCredential::builder().build()?),
/// ]);
/// let token = chain.get_token(&["https://management.azure.com/.default"], &TokenRequestOptions::default()).await?;
/// println!("token from {}", chain.last_used().unwrap_or("none"));
/// # let _ = token; Ok(()) }
/// ```
#[derive(Debug)]
pub struct ChainedTokenCredential {
    chain: Chain,
}

impl ChainedTokenCredential {
    /// A chain over `credentials`, tried in order on every call.
    pub fn new(credentials: Vec<Arc<dyn TokenCredential>>) -> Self {
        let members = credentials
            .into_iter()
            .map(|credential| Member {
                credential,
                downgrade_failures: false,
            })
            .collect();
        Self {
            chain: Chain::new(NAME, members, false),
        }
    }

    /// The chain `DefaultAzureCredential` runs: named `name`, and sticky (every call after the
    /// first token goes to the member that produced it).
    pub(crate) fn sticky(name: &'static str, members: Vec<Member>) -> Self {
        Self {
            chain: Chain::new(name, members, true),
        }
    }

    /// The engine, for `DefaultAzureCredential`'s own accessors.
    pub(crate) fn engine(&self) -> &Chain {
        &self.chain
    }

    /// Replaces the overall deadline of one call (default [`DEFAULT_CHAIN_DEADLINE`]).
    #[must_use]
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.chain = self.chain.with_deadline(deadline);
        self
    }

    /// The type name of the member that produced the most recent token.
    pub fn last_used(&self) -> Option<&'static str> {
        self.chain.selected().map(TokenCredential::name)
    }
}

impl TokenCredential for ChainedTokenCredential {
    fn get_token<'a>(
        &'a self,
        scopes: &'a [&'a str],
        options: &'a TokenRequestOptions,
    ) -> BoxFuture<'a, Result<AccessToken, Error>> {
        self.chain.traced_get_token(scopes, options)
    }

    /// `ChainedTokenCredential` (or, inside it, `DefaultAzureCredential`).
    fn name(&self) -> &'static str {
        self.chain.name
    }

    /// None: every call tries the members in order, so no one member's entry is the answer.
    /// (The sticky chain inside `DefaultAzureCredential` offers its chosen member's.)
    fn cache_slot(&self, scopes: &[&str], options: &TokenRequestOptions) -> Option<CacheSlot> {
        self.chain.cache_slot(scopes, options)
    }
}
