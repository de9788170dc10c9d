//! An environment snapshot, injected instead of read from `std::env` at call sites.
//!
//! Credentials read configuration from an [`Env`] given to their builders. The default is a
//! snapshot of the process environment taken when the builder is created; tests build one
//! from pairs, so they run in parallel without touching the process environment.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// An immutable set of environment variables.
///
/// `Debug` lists variable *names* only: values may be secrets (`AZURE_CLIENT_SECRET`,
/// `IDENTITY_HEADER`).
///
/// ```
/// use identity_chain::Env;
/// let env = Env::from_pairs([("IDENTITY_ENDPOINT", "http://127.0.0.1:8081/token"), ("EMPTY", "")]);
/// assert_eq!(env.non_empty("IDENTITY_ENDPOINT"), Some("http://127.0.0.1:8081/token"));
/// assert!(env.is_present("EMPTY"));
/// assert_eq!(env.non_empty("EMPTY"), None);
/// ```
#[derive(Clone, Default)]
pub struct Env {
    vars: Arc<HashMap<String, String>>,
}

impl Env {
    /// A snapshot of the current process environment. Variables whose name or value is not
    /// valid Unicode are skipped.
    pub fn from_process() -> Self {
        Self::from_pairs(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// An empty environment.
    pub fn empty() -> Self {
        Self::default()
    }

    /// An environment holding exactly these variables.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: Arc::new(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
        }
    }

    /// A copy with `name` set to `value`.
    #[must_use]
    pub fn with(&self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let mut vars = (*self.vars).clone();
        vars.insert(name.into(), value.into());
        Self {
            vars: Arc::new(vars),
        }
    }

    /// A copy without `name`.
    #[must_use]
    pub fn without(&self, name: &str) -> Self {
        let mut vars = (*self.vars).clone();
        vars.remove(name);
        Self {
            vars: Arc::new(vars),
        }
    }

    /// The value of `name`, possibly empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// The value of `name` if it is set and not empty, as set (untrimmed). A value of only
    /// whitespace counts as empty: it is what an unset value in a deployment template often
    /// renders as (`AZURE_CLIENT_ID: " "`), and no identifier, URL, path or secret is blank.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.trim().is_empty())
    }

    /// The trimmed value of `name` if it is set and not blank.
    pub fn non_blank(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// True if `name` is set, even to the empty string.
    pub fn is_present(&self, name: &str) -> bool {
        self.vars.contains_key(name)
    }

    /// Interprets `name` as a boolean: `1` or `true` (any case, surrounding blanks ignored) are
    /// true; anything else, or absence, is false.
    pub fn flag(&self, name: &str) -> bool {
        self.get(name)
            .map(str::trim)
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
    }

    /// Iterates over all variables, for passing them on to a child process.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never values (they may be secrets). Names only of the variables identity reads
        // (a process environment's other names are many and say nothing); the rest counted.
        const PREFIXES: [&str; 5] = ["AZURE", "IDENTITY_", "MSI_", "IMDS_", "ACTIONS_ID_TOKEN_"];
        let mut names: Vec<&str> = self
            .vars
            .keys()
            .map(String::as_str)
            .filter(|n| PREFIXES.iter().any(|p| n.starts_with(p)))
            .collect();
        names.sort_unstable();
        f.debug_struct("Env")
            .field("identity_names", &names)
            .field("others", &(self.vars.len() - names.len()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_identity_names_but_never_values() {
        let env = Env::from_pairs([
            ("AZURE_CLIENT_SECRET", "planted-secret-value"),
            ("LS_COLORS", "planted-other"),
            ("PATH", "/bin"),
        ]);
        let text = format!("{env:?}");
        assert!(text.contains("AZURE_CLIENT_SECRET"), "{text}");
        assert!(!text.contains("LS_COLORS"), "{text}");
        assert!(text.contains("others: 2"), "{text}");
        assert!(!text.contains("planted"), "{text}");
    }

    #[test]
    fn flags_accept_only_one_and_true() {
        let env = Env::from_pairs([
            ("A", "1"),
            ("B", " TRUE "),
            ("C", "false"),
            ("D", "0"),
            ("E", "no"),
            ("F", "yes"),
        ]);
        assert!(env.flag("A"));
        assert!(env.flag("B"));
        for name in ["C", "D", "E", "F", "MISSING"] {
            assert!(!env.flag(name), "{name}");
        }
    }

    #[test]
    fn with_and_without_leave_the_original_alone() {
        let a = Env::from_pairs([("X", "1")]);
        let b = a.with("Y", "2").without("X");
        assert_eq!(a.get("X"), Some("1"));
        assert_eq!(a.get("Y"), None);
        assert_eq!(b.get("X"), None);
        assert_eq!(b.get("Y"), Some("2"));
    }

    #[test]
    fn blank_values_are_present_but_count_as_empty() {
        let env = Env::from_pairs([("T", "  "), ("N", "\t\n"), ("V", " v ")]);
        assert!(env.is_present("T"));
        assert_eq!(env.non_empty("T"), None);
        assert_eq!(env.non_blank("T"), None);
        assert_eq!(env.non_empty("N"), None);
        assert_eq!(env.non_empty("V"), Some(" v "));
        assert_eq!(env.non_blank("V"), Some("v"));
    }
}
