//! The call loop shared by [`ChainedTokenCredential`](super::ChainedTokenCredential) and
//! `DefaultAzureCredential`: members in order, each within its share of the deadline, the
//! first success remembered by a sticky chain.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use identity_core::cache::CacheSlot;
use identity_core::{
    AccessToken, BoxFuture, Error, ErrorKind, TokenCredential, TokenRequestOptions,
};

use super::DEFAULT_CHAIN_DEADLINE;
use super::error::{Attempt, ChainError};

/// Sentinel for "no member has produced a token yet".
const NONE: usize = usize::MAX;

/// A member of a chain, with how its failures are treated.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub(crate) credential: Arc<dyn TokenCredential>,
    /// Inside `DefaultAzureCredential`, developer tools' failures move the chain on (docs/protocol.md §8.2).
    pub(crate) downgrade_failures: bool,
}

/// The engine shared by [`ChainedTokenCredential`] and `DefaultAzureCredential`.
pub(crate) struct Chain {
    pub(crate) name: &'static str,
    pub(crate) members: Vec<Member>,
    /// Send every call to the first member that succeeded (`DefaultAzureCredential`).
    pub(crate) sticky: bool,
    selected: AtomicUsize,
    /// The overall deadline of one call.
    deadline: Duration,
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chain")
            .field("name", &self.name)
            .field("members", &self.members)
            .field("sticky", &self.sticky)
            // The member's name, not the index (or its "none yet" sentinel).
            .field(
                "selected",
                &self.selected().map(|m| TokenCredential::name(m.as_ref())),
            )
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl Chain {
    pub(crate) fn new(name: &'static str, members: Vec<Member>, sticky: bool) -> Self {
        Self {
            name,
            members,
            sticky,
            selected: AtomicUsize::new(NONE),
            deadline: DEFAULT_CHAIN_DEADLINE,
        }
    }

    /// Replaces the overall deadline of one call.
    pub(crate) fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The overall deadline of one call.
    #[cfg(test)]
    pub(crate) fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Runs one member's `get_token` within `share`; when the share runs out first, an
    /// *unavailable* error of that member, so the chain moves on. That is left for a member
    /// whose endpoint or tool did not answer in time: a member whose endpoint answered and
    /// asked for a retry that would end past the share stops before waiting (its pipeline
    /// keeps the share, see `identity_core::deadline`) and reports that answer with the kind
    /// it has outside a chain, plus "the deadline ended the retries".
    async fn call_member(
        &self,
        member: &Member,
        scopes: &[&str],
        options: &TokenRequestOptions,
        share: Duration,
    ) -> Result<AccessToken, Error> {
        let name = member.credential.name();
        match identity_core::deadline::run(share, member.credential.get_token(scopes, options))
            .await
        {
            Some(result) => result,
            None => Err(Error::unavailable(
                name,
                format!(
                    "no token within {} ms, this member's share of the {} ms deadline of {}; a slow or silent endpoint or tool",
                    share.as_millis(),
                    self.deadline.as_millis(),
                    self.name
                ),
            )),
        }
    }

    /// A sticky chain's entry is its chosen member's; a chain that tries every member on each
    /// call, or has chosen none yet, has none.
    pub(crate) fn cache_slot(
        &self,
        scopes: &[&str],
        options: &TokenRequestOptions,
    ) -> Option<CacheSlot> {
        if !self.sticky {
            return None;
        }
        self.members
            .get(self.selected.load(Ordering::Acquire))?
            .credential
            .cache_slot(scopes, options)
    }

    /// The member that produced the last token (for a sticky chain: the remembered one).
    pub(crate) fn selected(&self) -> Option<&Arc<dyn TokenCredential>> {
        self.members
            .get(self.selected.load(Ordering::Acquire))
            .map(|m| &m.credential)
    }

    /// [`get_token`](Self::get_token) inside the chain's `get_token` span (source `chain`):
    /// the whole of a chain's `TokenCredential::get_token`.
    pub(crate) fn traced_get_token<'a>(
        &'a self,
        scopes: &'a [&'a str],
        options: &'a TokenRequestOptions,
    ) -> BoxFuture<'a, Result<AccessToken, Error>> {
        identity_core::trace::traced(self.name, "chain", self.get_token(scopes, options))
    }

    pub(crate) async fn get_token(
        &self,
        scopes: &[&str],
        options: &TokenRequestOptions,
    ) -> Result<AccessToken, Error> {
        if self.sticky {
            if let Some(member) = self.members.get(self.selected.load(Ordering::Acquire)) {
                tracing::debug!(
                    target: "identity_chain",
                    chain = self.name,
                    credential = member.credential.name(),
                    "using the credential that produced the first token"
                );
                return self
                    .call_member(member, scopes, options, self.deadline)
                    .await;
            }
        }
        match identity_core::deadline::run(self.deadline, self.try_members(scopes, options)).await {
            Some(result) => result,
            // The last member's share ends with the chain's deadline and reports first; this
            // is only a fallback.
            None => Err(Error::unavailable(
                self.name,
                format!(
                    "no credential produced a token within the {} ms deadline",
                    self.deadline.as_millis()
                ),
            )),
        }
    }

    /// Logs the member that produced a token and the members tried before it: at INFO for a
    /// sticky chain's choice (`info`), at DEBUG for a plain chain's every winner.
    fn log_winner(&self, credential: &'static str, attempts: &[Attempt], info: bool) {
        let (chain, skipped, skipped_members) = (self.name, attempts.len(), SkippedNames(attempts));
        // A `tracing` level is fixed per call site, hence one call for each.
        if info {
            tracing::info!(target: "identity_chain", chain, credential, skipped,
                %skipped_members, "credential produced a token");
        } else {
            tracing::debug!(target: "identity_chain", chain, credential, skipped,
                %skipped_members, "credential produced a token");
        }
    }

    /// Tries every member in turn, inside the chain's deadline scope.
    async fn try_members(
        &self,
        scopes: &[&str],
        options: &TokenRequestOptions,
    ) -> Result<AccessToken, Error> {
        let mut attempts = Vec::new();
        for (index, member) in self.members.iter().enumerate() {
            let name = member.credential.name();
            // A member before the last gets at most half of what is left, so a silent one
            // never uses up the time of the members after it.
            let left = identity_core::deadline::remaining().unwrap_or(self.deadline);
            let share = if index + 1 == self.members.len() {
                left
            } else {
                left / 2
            };
            match self.call_member(member, scopes, options, share).await {
                Ok(token) => {
                    if self.sticky {
                        // The first success wins; a concurrent success by another member
                        // does not replace it. The choice is logged once, at INFO.
                        let first = self
                            .selected
                            .compare_exchange(NONE, index, Ordering::AcqRel, Ordering::Acquire)
                            .is_ok();
                        if first {
                            self.log_winner(name, &attempts, true);
                        }
                    } else {
                        self.log_winner(name, &attempts, false);
                        self.selected.store(index, Ordering::Release);
                    }
                    return Ok(token);
                }
                Err(error) => {
                    let moves_on = error.is_unavailable()
                        || (member.downgrade_failures
                            && error.kind() == ErrorKind::AuthenticationFailed);
                    tracing::debug!(
                        target: "identity_chain",
                        chain = self.name,
                        credential = name,
                        error = %error,
                        moves_on,
                        "credential did not produce a token"
                    );
                    let refused = error.kind() == ErrorKind::AuthenticationFailed;
                    let error = if moves_on {
                        error.with_kind(ErrorKind::Unavailable)
                    } else {
                        error
                    };
                    attempts.push(Attempt {
                        credential: name,
                        error,
                        refused,
                    });
                    if !moves_on {
                        break;
                    }
                }
            }
        }
        Err(ChainError {
            chain: self.name,
            attempts,
        }
        .into_error())
    }
}

/// The names of the members tried before the winner, for the chain's log line.
struct SkippedNames<'a>(&'a [Attempt]);

impl fmt::Display for SkippedNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, attempt) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(attempt.credential)?;
        }
        Ok(())
    }
}
