//! The one error type every credential returns.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// What went wrong, in the terms a credential chain needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The credential cannot work in this environment (not configured, tool not installed,
    /// not logged in, endpoint silent). A chain moves on to its next credential.
    Unavailable,
    /// The credential tried and the token service or tool refused, or answered with
    /// something that is not a token. A chain stops here.
    AuthenticationFailed,
    /// The configuration given to a credential is invalid (conflicting options, a malformed
    /// value, an unsupported identity kind for this host).
    InvalidConfiguration,
    /// An argument of a `get_token` call is invalid (scope count or characters, tenant id).
    InvalidArgument,
    /// The request could not be completed: connection failure, timeout, a response larger than
    /// the cap. Usually transient.
    Transport,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unavailable => "credential unavailable",
            Self::AuthenticationFailed => "authentication failed",
            Self::InvalidConfiguration => "invalid configuration",
            Self::InvalidArgument => "invalid argument",
            Self::Transport => "transport error",
        })
    }
}

type Source = Arc<dyn StdError + Send + Sync + 'static>;

/// An error from a credential: its [`ErrorKind`], the credential's name, a message a person can
/// act on, and the underlying cause.
///
/// Messages never contain a token, a secret, a header value or a command argument; credentials
/// build them from fixed text and non-secret identifiers only.
///
/// ```
/// use identity_chain::{Error, ErrorKind};
/// let e = Error::unavailable("AzureCliCredential", "Azure CLI not found on PATH; install it from https://aka.ms/azure-cli");
/// assert!(e.is_unavailable());
/// assert_eq!(e.kind(), ErrorKind::Unavailable);
/// assert_eq!(
///     e.to_string(),
///     "AzureCliCredential: Azure CLI not found on PATH; install it from https://aka.ms/azure-cli \
///      (see TROUBLESHOOTING.md#azureclicredential-unavailable)"
/// );
/// ```
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    credential: &'static str,
    message: Cow<'static, str>,
    status: Option<u16>,
    source: Option<Source>,
}

impl Error {
    /// A new error of `kind` raised by `credential`.
    pub fn new(
        kind: ErrorKind,
        credential: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        // Text quoted from a tool or a service is built at run time: mask anything shaped like a
        // token and any terminal escape before it can be shown or logged.
        let message = match message.into() {
            Cow::Owned(text) => match crate::redact::scrub(&text) {
                Cow::Borrowed(_) => Cow::Owned(text),
                Cow::Owned(clean) => Cow::Owned(clean),
            },
            borrowed => borrowed,
        };
        Self {
            kind,
            credential,
            message,
            status: None,
            source: None,
        }
    }

    /// The credential cannot work here; a chain moves on.
    pub fn unavailable(credential: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Unavailable, credential, message)
    }

    /// The credential tried and was refused; a chain stops.
    pub fn authentication_failed(
        credential: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(ErrorKind::AuthenticationFailed, credential, message)
    }

    /// The credential's configuration is invalid.
    pub fn invalid_configuration(
        credential: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(ErrorKind::InvalidConfiguration, credential, message)
    }

    /// An argument of the call is invalid.
    pub fn invalid_argument(
        credential: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(ErrorKind::InvalidArgument, credential, message)
    }

    /// The request could not be completed.
    pub fn transport(credential: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Transport, credential, message)
    }

    /// Attaches the underlying cause. Its `Display` must not contain secrets either.
    #[must_use]
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// Attaches the HTTP status of the response that caused the error.
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Re-labels the error with another kind, keeping everything else (used by chains that
    /// downgrade failures to [`ErrorKind::Unavailable`]).
    #[must_use]
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// Appends `note` to the message as one more clause (`…; note`), e.g. a
    /// [`RetryCut::clause`](crate::http::RetryCut::clause) saying why an answer was not
    /// retried. The note must not contain secrets either.
    #[must_use]
    pub fn with_note(mut self, note: &str) -> Self {
        let mut message = self.message.into_owned();
        message.push_str("; ");
        message.push_str(note);
        self.message = Cow::Owned(message);
        self
    }

    /// Re-labels the error as raised by another credential (used by wrappers).
    #[must_use]
    pub fn with_credential(mut self, credential: &'static str) -> Self {
        self.credential = credential;
        self
    }

    /// The same error with every secret `redactor` holds removed from the message and from
    /// the text of its causes ([`crate::redact`]). A cause whose text quotes a secret is
    /// replaced by its redacted text; causes that quote none are kept as they are (so they
    /// can still be downcast).
    #[must_use]
    pub fn redact(mut self, redactor: &crate::redact::Redactor) -> Self {
        if redactor.is_empty() {
            return self;
        }
        if redactor.contains(&self.message) {
            self.message = Cow::Owned(redactor.redact(&self.message).into_owned());
        }
        if let Some(source) = &self.source {
            let text = display_chain(source.as_ref());
            if redactor.contains(&text) {
                self.source = Some(Arc::new(RedactedCause(redactor.redact(&text).into_owned())));
            }
        }
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The name of the credential that raised the error, e.g. `ManagedIdentityCredential`.
    pub fn credential(&self) -> &'static str {
        self.credential
    }

    /// The message, without the credential name.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The HTTP status of the response behind the error, if there was one.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// True when a chain should move on to its next credential.
    pub fn is_unavailable(&self) -> bool {
        self.kind == ErrorKind::Unavailable
    }

    /// True when retrying later may succeed: transport failures, 408, 429 and 5xx answers.
    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transport
            || matches!(self.status, Some(408 | 429) | Some(500..=599))
    }

    /// The underlying cause, if any, for downcasting (e.g. to a chain's list of attempts).
    pub fn cause(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        self.source.as_deref()
    }
}

impl fmt::Display for Error {
    /// `<credential>: <message>`, then ` (see TROUBLESHOOTING.md#<section>)` when
    /// [`troubleshooting_section`] knows a section for the error.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.credential, self.message)?;
        if let Some(section) = troubleshooting_section(self.credential, self.kind) {
            write!(f, " (see TROUBLESHOOTING.md#{section})")?;
        }
        Ok(())
    }
}

/// The credentials with sections of their own in the project's `TROUBLESHOOTING.md`, one for
/// each of [`ErrorKind::Unavailable`] and [`ErrorKind::AuthenticationFailed`].
pub const TROUBLESHOOTING_CREDENTIALS: &[&str] = &[
    "DefaultAzureCredential",
    "ChainedTokenCredential",
    "ManagedIdentityCredential",
    "AzureCliCredential",
    "AzurePowerShellCredential",
    "AzureDeveloperCliCredential",
    "EnvironmentCredential",
    "WorkloadIdentityCredential",
    "ClientSecretCredential",
    "ClientCertificateCredential",
    "ClientAssertionCredential",
    "AzurePipelinesCredential",
    "GitHubActionsCredential",
    "InteractiveBrowserCredential",
    "DeviceCodeCredential",
    "OnBehalfOfCredential",
];

/// The section of the project's `TROUBLESHOOTING.md` for an error raised by `credential` with
/// `kind` (the anchor of its heading), or `None` for a credential it does not cover.
///
/// Unavailable and authentication-failed errors have a section per credential
/// (`managedidentitycredential-unavailable`); configuration, argument and transport errors
/// one each (`invalid-configuration`, `invalid-argument`, `transport-error`).
///
/// ```
/// use identity_chain::ErrorKind;
/// use identity_core::troubleshooting_section;
/// assert_eq!(
///     troubleshooting_section("AzureCliCredential", ErrorKind::Unavailable).as_deref(),
///     Some("azureclicredential-unavailable")
/// );
/// assert_eq!(troubleshooting_section("MyCredential", ErrorKind::Unavailable), None);
/// assert_eq!(
///     troubleshooting_section("AuthenticationRecord", ErrorKind::InvalidArgument).as_deref(),
///     Some("invalid-argument")
/// );
/// ```
pub fn troubleshooting_section(credential: &str, kind: ErrorKind) -> Option<String> {
    let listed = TROUBLESHOOTING_CREDENTIALS.contains(&credential);
    if !listed && !TROUBLESHOOTING_GENERAL_ONLY.contains(&credential) {
        return None;
    }
    let name = credential.to_ascii_lowercase();
    match kind {
        ErrorKind::Unavailable if listed => Some(format!("{name}-unavailable")),
        ErrorKind::AuthenticationFailed if listed => Some(format!("{name}-authentication-failed")),
        ErrorKind::InvalidConfiguration => Some("invalid-configuration".to_owned()),
        ErrorKind::InvalidArgument => Some("invalid-argument".to_owned()),
        ErrorKind::Transport => Some("transport-error".to_owned()),
        _ => None,
    }
}

/// Parts of the library that are not credentials but report errors under their own name
/// (the blocking wrapper, `AuthenticationRecord::deserialize`): they point to the general
/// sections (configuration, argument, transport) only.
const TROUBLESHOOTING_GENERAL_ONLY: &[&str] = &["BlockingCredential", "AuthenticationRecord"];

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind)
            .field("credential", &self.credential)
            .field("message", &self.message);
        if let Some(status) = self.status {
            d.field("status", &status);
        }
        if let Some(source) = &self.source {
            // The source's Display, never its Debug: Debug of foreign types may print fields
            // (headers, bodies) that were never meant for logs.
            d.field("source", &format_args!("{source}"));
        }
        d.finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

/// A cause whose text quoted a secret, kept as its redacted text.
#[derive(Debug)]
struct RedactedCause(String);

impl fmt::Display for RedactedCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for RedactedCause {}

/// Writes `error` and its chain of causes as `a: b: c`, skipping causes whose text the
/// message already contains. The troubleshooting pointer (` (see TROUBLESHOOTING.md#…)`) of
/// the outermost error that has one ends the text, once; inner pointers are dropped.
pub fn display_chain(error: &dyn StdError) -> String {
    let (text, mut pointer) = split_pointer(error.to_string());
    let mut out = text;
    let mut next = error.source();
    while let Some(cause) = next {
        let (text, inner) = split_pointer(cause.to_string());
        pointer = pointer.or(inner);
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    if let Some(pointer) = pointer {
        out.push_str(&pointer);
    }
    out
}

/// Splits every ` (see TROUBLESHOOTING.md#…)` pointer out of `text`: the text without them,
/// and the first.
fn split_pointer(mut text: String) -> (String, Option<String>) {
    const START: &str = " (see TROUBLESHOOTING.md#";
    let mut first = None;
    while let Some(at) = text.find(START) {
        let Some(len) = text[at..].find(')') else {
            break;
        };
        let pointer: String = text.drain(at..=at + len).collect();
        first.get_or_insert(pointer);
    }
    (text, first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Leaky;
    impl fmt::Display for Leaky {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("connection reset")
        }
    }
    impl StdError for Leaky {}

    #[test]
    fn display_names_the_credential_and_message() {
        let e = Error::authentication_failed(
            "ClientSecretCredential",
            "AADSTS7000215: invalid client secret",
        );
        assert_eq!(
            e.to_string(),
            "ClientSecretCredential: AADSTS7000215: invalid client secret \
             (see TROUBLESHOOTING.md#clientsecretcredential-authentication-failed)"
        );
        assert!(!e.is_unavailable());
    }

    #[test]
    fn a_token_quoted_into_a_message_is_masked_at_construction() {
        let jwt = "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJodHRwczovL3ZhdWx0In0.SIGNATURE_SECRET";
        let e = Error::authentication_failed(
            "AzureCliCredential",
            format!("az failed: \u{1b}[31maccessToken={jwt}\u{1b}[0m"),
        );
        for text in [e.to_string(), format!("{e:?}"), display_chain(&e)] {
            assert!(!text.contains("SIGNATURE_SECRET"), "{text}");
            assert!(!text.contains('\u{1b}'), "{text}");
        }
        assert_eq!(e.message(), "az failed: accessToken=***");
    }

    #[test]
    fn the_chain_ends_with_one_troubleshooting_pointer() {
        let inner =
            Error::transport("ManagedIdentityCredential", "request failed").with_source(Leaky);
        let outer = Error::transport("ManagedIdentityCredential", "no answer").with_source(inner);
        let text = display_chain(&outer);
        assert_eq!(
            text,
            "ManagedIdentityCredential: no answer: ManagedIdentityCredential: request failed: \
             connection reset (see TROUBLESHOOTING.md#transport-error)"
        );
        assert_eq!(text.matches("TROUBLESHOOTING").count(), 1);
    }

    #[test]
    fn redact_cleans_the_message_and_a_quoting_cause_and_keeps_the_rest() {
        #[derive(Debug)]
        struct Echo;
        impl fmt::Display for Echo {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("server said planted-secret")
            }
        }
        impl StdError for Echo {}
        let redactor = crate::redact::Redactor::new().with("planted-secret");
        let e = Error::authentication_failed("X", "bad header planted%2Dsecret")
            .with_status(400)
            .with_source(Error::transport("Y", "inner").with_source(Echo))
            .redact(&redactor);
        for text in [
            e.to_string(),
            format!("{e:?}"),
            format!("{e:#?}"),
            display_chain(&e),
        ] {
            assert!(!text.contains("planted"), "{text}");
        }
        assert_eq!(e.message(), "bad header ***");
        assert_eq!(e.status(), Some(400));
        assert_eq!(
            display_chain(&e),
            "X: bad header ***: Y: inner: server said ***"
        );
        let kept = Error::transport("X", "m")
            .with_source(Leaky)
            .redact(&redactor);
        assert!(
            kept.cause()
                .and_then(|c| c.downcast_ref::<Leaky>())
                .is_some()
        );
    }

    #[test]
    fn debug_prints_the_source_display_only() {
        let e = Error::transport("X", "request failed").with_source(Leaky);
        let dbg = format!("{e:?}");
        assert!(dbg.contains("connection reset"), "{dbg}");
        assert!(!dbg.contains("Leaky"), "{dbg}");
        assert_eq!(display_chain(&e), "X: request failed: connection reset");
    }

    #[test]
    fn transient_covers_transport_and_retryable_statuses() {
        assert!(Error::transport("X", "t").is_transient());
        assert!(
            Error::authentication_failed("X", "t")
                .with_status(503)
                .is_transient()
        );
        assert!(
            Error::authentication_failed("X", "t")
                .with_status(429)
                .is_transient()
        );
        assert!(
            !Error::authentication_failed("X", "t")
                .with_status(400)
                .is_transient()
        );
        assert!(!Error::unavailable("X", "t").is_transient());
    }

    #[test]
    fn errors_are_send_sync_and_clone() {
        fn assert_traits<T: Send + Sync + Clone + 'static>() {}
        assert_traits::<Error>();
    }
}
