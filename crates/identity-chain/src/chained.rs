//! [`ChainedTokenCredential`]: try credentials in order until one produces a token.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use identity_core::cache::CacheSlot;
use identity_core::{
    AccessToken, BoxFuture, Error, ErrorKind, TokenCredential, TokenRequestOptions,
};

const NAME: &str = "ChainedTokenCredential";

/// Sentinel for "no member has produced a token yet".
const NONE: usize = usize::MAX;

/// The default overall deadline of one `get_token` through a chain
/// ([`ChainedTokenCredential`] and `DefaultAzureCredential`): 120 s.
///
/// Each member also keeps its own deadline (60 s for most credentials, 90 s for IMDS, the
/// process timeout for developer tools), and a member before the last gets at most half of
/// what is left of the chain's, so one slow or silent member never uses up the time of the
/// members after it.
pub const DEFAULT_CHAIN_DEADLINE: Duration = Duration::from_secs(120);

/// One failed attempt in a chain.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Attempt {
    /// The member's type name, e.g. `AzureCliCredential`.
    pub credential: &'static str,
    /// Why it failed.
    pub error: Error,
    /// The member tried and was refused (an authentication failure the chain moved on from,
    /// inside `DefaultAzureCredential`), as opposed to not being configured here.
    pub refused: bool,
}

/// The attempts behind a chain's failure, reachable from the returned [`Error`] with
/// `error.cause().and_then(|c| c.downcast_ref::<ChainError>())`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ChainError {
    /// The chain's type name.
    pub chain: &'static str,
    /// Every attempted member in order, up to and including the one that stopped the chain.
    pub attempts: Vec<Attempt>,
}

impl fmt::Display for ChainError {
    /// The same text as [`ChainError::report`], so printing an error with its causes does not
    /// repeat it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.report())
    }
}

impl std::error::Error for ChainError {}

impl ChainError {
    /// The report a person reads: one sentence (the chain's [`Error`] prefixes it with the
    /// chain's name), `Attempted credentials:`, then one line per attempt (a tab, the member's
    /// name, its message and causes), then what to do.
    pub fn report(&self) -> String {
        let mut out = String::from(
            "failed to retrieve a token from the included credentials.\nAttempted credentials:",
        );
        for attempt in &self.attempts {
            let mut line = attempt.error.message().to_owned();
            let mut cause = std::error::Error::source(&attempt.error);
            while let Some(c) = cause {
                // A nested credential error is shown by its message: the member's name is
                // already at the start of the line.
                let text = match c.downcast_ref::<Error>() {
                    Some(inner) => inner.message().to_owned(),
                    None => c.to_string(),
                };
                if !text.is_empty() && !line.contains(&text) {
                    line.push_str(": ");
                    line.push_str(&text);
                }
                cause = c.source();
            }
            out.push_str(&format!("\n\t{}: {line}", attempt.credential));
        }
        out.push('\n');
        out.push_str(&self.advice());
        out
    }

    /// The closing advice, from what happened: a member that stopped the chain is named with
    /// its reason; members that were configured but refused (and moved the chain on) are
    /// named; only when nothing was configured does it say to configure one of them.
    fn advice(&self) -> String {
        if let Some(last) = self
            .attempts
            .last()
            .filter(|a| a.error.kind() != ErrorKind::Unavailable)
        {
            return format!(
                "{} refused ({}), which stops the chain: fix what its line says, or exclude it; \
                 the credentials after it were not tried.",
                last.credential,
                last.error.kind()
            );
        }
        let refused: Vec<&str> = self
            .attempts
            .iter()
            .filter(|a| a.refused)
            .map(|a| a.credential)
            .collect();
        if refused.is_empty() {
            "To fix this, configure one of the credentials above for this environment: each \
             line says what it needs."
                .to_owned()
        } else {
            format!(
                "{} {} configured but refused (see {} line); fix that, or configure another \
                 credential above.",
                refused.join(", "),
                if refused.len() == 1 { "is" } else { "are" },
                if refused.len() == 1 { "its" } else { "their" },
            )
        }
    }

    /// Turns the attempts into the chain's [`Error`]: unavailable when every member was
    /// unavailable (so an outer chain moves on), otherwise the kind of the member that stopped
    /// the chain.
    pub fn into_error(self) -> Error {
        let kind = self
            .attempts
            .iter()
            .map(|a| a.error.kind())
            .find(|k| *k != ErrorKind::Unavailable)
            .unwrap_or(ErrorKind::Unavailable);
        let status = self.attempts.last().and_then(|a| a.error.status());
        let mut error = Error::new(kind, self.chain, self.report());
        if let Some(status) = status {
            error = error.with_status(status);
        }
        error.with_source(self)
    }
}

/// A member of a chain, with how its failures are treated.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub(crate) credential: Arc<dyn TokenCredential>,
    /// Inside `DefaultAzureCredential`, developer tools' failures move the chain on (docs/protocol.md §8.2).
    pub(crate) downgrade_failures: bool,
}

/// The engine shared by [`ChainedTokenCredential`] and `DefaultAzureCredential`.
#[derive(Debug)]
pub(crate) struct Chain {
    pub(crate) name: &'static str,
    pub(crate) members: Vec<Member>,
    /// Send every call to the first member that succeeded (`DefaultAzureCredential`).
    pub(crate) sticky: bool,
    selected: AtomicUsize,
    /// The overall deadline of one call.
    deadline: Duration,
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
    /// *unavailable* error of that member, so the chain moves on.
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
                            tracing::info!(
                                target: "identity_chain",
                                chain = self.name,
                                credential = name,
                                skipped = attempts.len(),
                                skipped_members = %SkippedNames(&attempts),
                                "credential produced a token"
                            );
                        }
                    } else {
                        tracing::debug!(
                            target: "identity_chain",
                            chain = self.name,
                            credential = name,
                            skipped = attempts.len(),
                            skipped_members = %SkippedNames(&attempts),
                            "credential produced a token"
                        );
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

    async fn fetch(
        &self,
        scopes: &[&str],
        options: &TokenRequestOptions,
    ) -> Result<AccessToken, Error> {
        self.chain.get_token(scopes, options).await
    }
}

impl TokenCredential for ChainedTokenCredential {
    fn get_token<'a>(
        &'a self,
        scopes: &'a [&'a str],
        options: &'a TokenRequestOptions,
    ) -> BoxFuture<'a, Result<AccessToken, Error>> {
        identity_core::trace::traced(NAME, "chain", self.fetch(scopes, options))
    }

    fn name(&self) -> &'static str {
        NAME
    }

    /// None: every call tries the members in order, so no one member's entry is the answer.
    fn cache_slot(&self, scopes: &[&str], options: &TokenRequestOptions) -> Option<CacheSlot> {
        self.chain.cache_slot(scopes, options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use identity_core::test_util::{credential_fn, failing_credential, static_credential};
    use std::time::{Duration, SystemTime};

    fn far() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000)
    }

    fn opts() -> TokenRequestOptions {
        TokenRequestOptions::default()
    }

    #[tokio::test]
    async fn a_sticky_chain_offers_its_chosen_members_cache_entry_and_a_plain_chain_none() {
        let clock: Arc<dyn identity_core::Clock> =
            Arc::new(identity_core::test_util::FakeClock::at_2030());
        let member = |name| Member {
            credential: Arc::new(static_credential(name, "tok", far()).cached(clock.clone())),
            downgrade_failures: false,
        };
        let failing = Member {
            credential: Arc::new(failing_credential("A", Error::unavailable("A", "no"))),
            downgrade_failures: false,
        };
        let sticky = Chain::new("Sticky", vec![failing, member("B")], true);
        assert!(
            sticky.cache_slot(&["s"], &opts()).is_none(),
            "no member chosen yet"
        );
        sticky.get_token(&["s"], &opts()).await.unwrap();
        let slot = sticky
            .cache_slot(&["s"], &opts())
            .expect("the chosen member's entry");
        assert_eq!(slot.key().identity(), "B");
        assert_eq!(slot.fresh_token().unwrap().token.secret(), "tok");

        let plain = ChainedTokenCredential::new(vec![Arc::new(
            static_credential("C", "tok", far()).cached(clock.clone()),
        )]);
        plain.get_token(&["s"], &opts()).await.unwrap();
        assert!(plain.cache_slot(&["s"], &opts()).is_none());
    }

    #[tokio::test]
    async fn unavailable_moves_on_and_the_first_success_wins() {
        let a = failing_credential("A", Error::unavailable("A", "not configured"));
        let b = static_credential("B", "tok-b", far());
        let c = static_credential("C", "tok-c", far());
        let c_calls = c.call_counter();
        let chain = ChainedTokenCredential::new(vec![Arc::new(a), Arc::new(b), Arc::new(c)]);
        let t = chain.get_token(&["s"], &opts()).await.unwrap();
        assert_eq!(t.token.secret(), "tok-b");
        assert_eq!(chain.last_used(), Some("B"));
        assert_eq!(c_calls.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn an_authentication_failure_stops_the_chain() {
        let a = failing_credential(
            "A",
            Error::authentication_failed("A", "AADSTS7000215: bad secret"),
        );
        let b = static_credential("B", "tok-b", far());
        let b_calls = b.call_counter();
        let chain = ChainedTokenCredential::new(vec![Arc::new(a), Arc::new(b)]);
        let err = chain.get_token(&["s"], &opts()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
        assert_eq!(b_calls.load(std::sync::atomic::Ordering::SeqCst), 0);
        let attempts = &err
            .cause()
            .unwrap()
            .downcast_ref::<ChainError>()
            .unwrap()
            .attempts;
        assert_eq!(attempts.len(), 1);
    }

    #[tokio::test]
    async fn a_full_miss_lists_every_attempt_one_per_line() {
        let chain = ChainedTokenCredential::new(vec![
            Arc::new(failing_credential(
                "EnvironmentCredential",
                Error::unavailable(
                    "EnvironmentCredential",
                    "environment variables are not fully configured",
                ),
            )),
            Arc::new(failing_credential(
                "AzureCliCredential",
                Error::unavailable("AzureCliCredential", "Azure CLI not found on PATH"),
            )),
        ]);
        let err = chain.get_token(&["s"], &opts()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(
            err.to_string()
                .starts_with("ChainedTokenCredential: failed to retrieve a token"),
            "{err}"
        );
        assert_eq!(
            identity_core::display_chain(&err),
            err.to_string(),
            "the cause is not repeated"
        );
        assert_eq!(
            err.message(),
            "failed to retrieve a token from the included credentials.\n\
             Attempted credentials:\n\
             \tEnvironmentCredential: environment variables are not fully configured\n\
             \tAzureCliCredential: Azure CLI not found on PATH\n\
             To fix this, configure one of the credentials above for this environment: each line says what it needs."
        );
        assert!(
            err.to_string()
                .ends_with("(see TROUBLESHOOTING.md#chainedtokencredential-unavailable)"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn after_a_refusal_the_advice_names_the_member_and_why() {
        let chain = ChainedTokenCredential::new(vec![
            Arc::new(failing_credential(
                "EnvironmentCredential",
                Error::unavailable("EnvironmentCredential", "not configured"),
            )),
            Arc::new(failing_credential(
                "ClientSecretCredential",
                Error::authentication_failed("ClientSecretCredential", "AADSTS7000215: bad secret"),
            )),
        ]);
        let err = chain.get_token(&["s"], &opts()).await.unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("configure one of"), "{text}");
        let last = text.lines().last().unwrap();
        assert!(
            last.starts_with(
                "ClientSecretCredential refused (authentication failed), which stops the chain"
            ),
            "{text}"
        );
        assert!(
            last.ends_with("(see TROUBLESHOOTING.md#chainedtokencredential-authentication-failed)"),
            "{text}"
        );
        assert!(text.contains("\tClientSecretCredential: AADSTS7000215: bad secret"));
    }

    #[tokio::test]
    async fn a_refusal_the_chain_moved_on_from_is_named() {
        let chain = Chain::new(
            "DefaultAzureCredential",
            vec![
                Member {
                    credential: Arc::new(failing_credential(
                        "AzureCliCredential",
                        Error::authentication_failed("AzureCliCredential", "AADSTS70043: expired"),
                    )),
                    downgrade_failures: true,
                },
                Member {
                    credential: Arc::new(failing_credential(
                        "AzureDeveloperCliCredential",
                        Error::unavailable("AzureDeveloperCliCredential", "azd not found"),
                    )),
                    downgrade_failures: true,
                },
            ],
            true,
        );
        let err = chain.get_token(&["s"], &opts()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        let text = err.to_string();
        assert!(!text.contains("configure one of"), "{text}");
        assert!(
            text.contains("AzureCliCredential is configured but refused (see its line)"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_plain_chain_is_not_sticky() {
        let flip = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let f = flip.clone();
        let a = credential_fn("A", move |_, _| {
            if f.load(std::sync::atomic::Ordering::SeqCst) {
                Ok(AccessToken::new("tok-a", far()))
            } else {
                Err(Error::unavailable("A", "not yet"))
            }
        });
        let b = static_credential("B", "tok-b", far());
        let chain = ChainedTokenCredential::new(vec![Arc::new(a), Arc::new(b)]);
        assert_eq!(
            chain
                .get_token(&["s"], &opts())
                .await
                .unwrap()
                .token
                .secret(),
            "tok-b"
        );
        flip.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            chain
                .get_token(&["s"], &opts())
                .await
                .unwrap()
                .token
                .secret(),
            "tok-a"
        );
        assert_eq!(chain.last_used(), Some("A"));
    }

    /// A member that never answers.
    #[derive(Debug)]
    struct Silent;

    impl TokenCredential for Silent {
        fn get_token<'a>(
            &'a self,
            _scopes: &'a [&'a str],
            _options: &'a TokenRequestOptions,
        ) -> BoxFuture<'a, Result<AccessToken, Error>> {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Err(Error::unavailable("Silent", "woke up"))
            })
        }

        fn name(&self) -> &'static str {
            "Silent"
        }
    }

    const GUARD: Duration = Duration::from_secs(20);

    #[tokio::test]
    async fn a_silent_member_gets_half_of_what_is_left_and_the_chain_moves_on() {
        let chain = ChainedTokenCredential::new(vec![
            Arc::new(Silent),
            Arc::new(Silent),
            Arc::new(static_credential("C", "tok-c", far())),
        ])
        .with_deadline(Duration::from_millis(400));
        let token = tokio::time::timeout(GUARD, chain.get_token(&["s"], &opts()))
            .await
            .expect("bounded by the chain's deadline")
            .unwrap();
        assert_eq!(token.token.secret(), "tok-c");
        assert_eq!(chain.last_used(), Some("C"));
    }

    #[tokio::test]
    async fn a_silent_last_member_ends_the_chain_at_its_deadline_with_every_attempt_listed() {
        let chain = ChainedTokenCredential::new(vec![
            Arc::new(failing_credential(
                "A",
                Error::unavailable("A", "not configured"),
            )),
            Arc::new(Silent),
        ])
        .with_deadline(Duration::from_millis(200));
        let err = tokio::time::timeout(GUARD, chain.get_token(&["s"], &opts()))
            .await
            .expect("bounded by the chain's deadline")
            .unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        let text = err.to_string();
        assert!(text.contains("\tA: not configured"), "{text}");
        assert!(
            text.contains("\tSilent: no token within")
                && text.contains("ms deadline of ChainedTokenCredential"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_chain_inside_a_shorter_scope_keeps_to_it() {
        let chain = ChainedTokenCredential::new(vec![Arc::new(Silent)]);
        assert_eq!(chain.chain.deadline, DEFAULT_CHAIN_DEADLINE);
        let options = opts();
        let outer = identity_core::deadline::within(
            "Outer",
            Duration::from_millis(100),
            chain.get_token(&["s"], &options),
        );
        let err = tokio::time::timeout(GUARD, outer)
            .await
            .expect("bounded by the outer deadline")
            .unwrap_err();
        assert!(err.to_string().contains("no token within"), "{err}");
    }

    #[tokio::test]
    async fn an_empty_chain_is_unavailable() {
        let chain = ChainedTokenCredential::new(vec![]);
        let err = chain.get_token(&["s"], &opts()).await.unwrap_err();
        assert!(err.is_unavailable());
    }
}

/// The chain's `get_token` span and its log lines: which member won, and why the others were
/// skipped.
#[cfg(test)]
mod span_tests {
    use super::*;
    use identity_core::test_util::{Capture, failing_credential, static_credential};
    use std::time::{Duration, SystemTime};

    const PLANTED: &str = "planted-chain-token";

    fn far() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000)
    }

    fn event_with<'a>(
        events: &'a [identity_core::test_util::CapturedEvent],
        message: &str,
        credential: &str,
    ) -> &'a identity_core::test_util::CapturedEvent {
        events
            .iter()
            .find(|e| {
                e.field("message") == Some(message) && e.field("credential") == Some(credential)
            })
            .unwrap_or_else(|| panic!("no {message:?} event for {credential}"))
    }

    #[tokio::test]
    async fn the_chain_logs_the_winner_and_why_each_member_was_skipped() {
        let chain = ChainedTokenCredential::new(vec![
            Arc::new(failing_credential(
                "First",
                Error::unavailable("First", "not configured: set FIRST_ENDPOINT"),
            )),
            Arc::new(failing_credential(
                "Second",
                Error::unavailable("Second", "tool not installed"),
            )),
            Arc::new(static_credential("Third", PLANTED, far())),
        ]);
        let capture = Capture::new();
        {
            let _guard = capture.enter();
            chain
                .get_token(
                    &["https://vault.azure.net/.default"],
                    &TokenRequestOptions::default(),
                )
                .await
                .unwrap();
        }
        let span = &capture.spans_named("get_token")[0];
        assert_eq!(span.field("credential"), Some("ChainedTokenCredential"));
        assert_eq!(span.field("source"), Some("chain"));
        assert_eq!(span.field("outcome"), Some("ok"));
        let events = capture.events();
        let skipped = event_with(&events, "credential did not produce a token", "First");
        assert_eq!(
            skipped.field("error"),
            Some("First: not configured: set FIRST_ENDPOINT")
        );
        assert_eq!(skipped.field("moves_on"), Some("true"));
        assert_eq!(skipped.spans, ["get_token"]);
        event_with(&events, "credential did not produce a token", "Second");
        let won = event_with(&events, "credential produced a token", "Third");
        assert_eq!(
            won.level,
            tracing::Level::DEBUG,
            "a plain chain logs its winner at DEBUG"
        );
        assert_eq!(won.field("skipped"), Some("2"));
        assert_eq!(won.field("skipped_members"), Some("First, Second"));
        capture.assert_absent(PLANTED);
    }

    #[tokio::test]
    async fn a_sticky_chain_logs_the_chosen_member_once_at_info() {
        let chain = Chain::new(
            "DefaultAzureCredential",
            vec![
                Member {
                    credential: Arc::new(failing_credential(
                        "EnvironmentCredential",
                        Error::unavailable("EnvironmentCredential", "not configured"),
                    )),
                    downgrade_failures: false,
                },
                Member {
                    credential: Arc::new(static_credential("AzureCliCredential", PLANTED, far())),
                    downgrade_failures: true,
                },
            ],
            true,
        );
        let capture = Capture::new();
        {
            let _guard = capture.enter();
            for _ in 0..2 {
                chain
                    .get_token(&["s"], &TokenRequestOptions::default())
                    .await
                    .unwrap();
            }
        }
        let infos: Vec<_> = capture
            .events()
            .into_iter()
            .filter(|e| e.level == tracing::Level::INFO)
            .collect();
        assert_eq!(infos.len(), 1, "one INFO line, on the first token");
        assert_eq!(infos[0].field("credential"), Some("AzureCliCredential"));
        assert_eq!(
            infos[0].field("skipped_members"),
            Some("EnvironmentCredential")
        );
        capture.assert_absent(PLANTED);
    }

    #[tokio::test]
    async fn a_failing_chain_records_the_stopping_member_and_its_kind() {
        let chain = ChainedTokenCredential::new(vec![
            Arc::new(failing_credential(
                "First",
                Error::unavailable("First", "not configured"),
            )),
            Arc::new(failing_credential(
                "Second",
                Error::authentication_failed("Second", "AADSTS700016: application not found"),
            )),
            Arc::new(static_credential("Third", PLANTED, far())),
        ]);
        let capture = Capture::new();
        {
            let _guard = capture.enter();
            let error = chain
                .get_token(&["s"], &TokenRequestOptions::default())
                .await
                .unwrap_err();
            assert_eq!(error.kind(), ErrorKind::AuthenticationFailed);
        }
        let span = &capture.spans_named("get_token")[0];
        assert_eq!(span.field("outcome"), Some("authentication_failed"));
        let events = capture.events();
        let stopped = event_with(&events, "credential did not produce a token", "Second");
        assert_eq!(stopped.field("moves_on"), Some("false"));
        assert!(
            events
                .iter()
                .all(|e| e.field("credential") != Some("Third")),
            "the chain went past a member that stops it"
        );
        let failure = events
            .iter()
            .find(|e| e.field("message") == Some("get_token failed"))
            .expect("a failure event");
        assert!(failure.field("error").unwrap().contains("AADSTS700016"));
        capture.assert_absent(PLANTED);
    }
}
