//! [`ChainError`] and its [`Attempt`]s: why every member of a chain failed, and the report a
//! person reads.

use std::fmt;

use identity_core::{Error, ErrorKind};

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
        if self.attempts.is_empty() {
            return format!(
                "failed to retrieve a token: the chain has no credentials to try; give {} at least one",
                self.chain
            );
        }
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
