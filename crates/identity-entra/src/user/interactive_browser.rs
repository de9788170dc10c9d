//! [`InteractiveBrowserCredential`]: signs a user in through a web browser (OAuth 2.0
//! authorization code with PKCE; `docs/protocol.md` §6).
//!
//! 1. A listener binds `127.0.0.1:<port>`: the port of the configured redirect URI, else a
//!    free one; for a `localhost` redirect, `[::1]:<port>` too when the system has IPv6, since
//!    a browser may resolve `localhost` to either. Both are bound before the browser starts.
//!    The redirect URI is `http://localhost:<port>` (with the configured path).
//! 2. The browser opens `{authority}/{tenant}/oauth2/v2.0/authorize` with `client_id`,
//!    `response_type=code`, `redirect_uri`, `scope` (the caller's plus
//!    `offline_access openid profile`), a random `state` (128 bits), `code_challenge` =
//!    base64url(SHA-256(verifier)) for a random 256-bit verifier, `code_challenge_method=S256`,
//!    `response_mode=query`, `prompt=select_account`, `client_info=1`, and `login_hint` when
//!    set.
//! 3. The listener accepts exactly one callback on the redirect path whose `state` matches:
//!    it answers with a short "you can close this window" page and stops listening. A callback
//!    with another `state` is refused (HTTP 400) and the wait goes on; one carrying `error`
//!    (`access_denied`, `consent_required`, …) ends the sign-in with that error. Connections
//!    are served concurrently, since browsers open speculative connections that send nothing
//!    and send the redirect on another: each has 10 s and 16 KiB to send its request, and at
//!    most 64 are open at once (one more closes the oldest), so no idle, slow or flooding
//!    connection holds up the redirect.
//! 4. The code is redeemed at `…/token` with `grant_type=authorization_code`, the same
//!    `redirect_uri` and the `code_verifier`.
//!
//! The browser: the `BROWSER` environment variable (from the injected environment) when set:
//! a program and its arguments separated by blanks, run without a shell, with the URL as the
//! last argument (or in place of `%s`); shell metacharacters are refused. Otherwise the
//! platform's opener: `xdg-open` (Linux and other Unix), `open` (macOS), `rundll32
//! url.dll,FileProtocolHandler` (Windows). These three are spawned directly rather than
//! through an opener crate: each is one command, and the crates that wrap them read the
//! process environment themselves, which this workspace does not allow in libraries. When no
//! browser starts, the URL goes to the prompt callback (default: stderr).
//!
//! The URL holds only public values (the `state` and the PKCE *challenge*); the code and the
//! verifier never leave this process except to the token endpoint.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{Either, select};
use identity_core::{Error, Secret};

use super::{
    RunFlow, SignIn, SignInRequest, SignedIn, UserClient, UserSettings, pkce_challenge,
    random_urlsafe,
};
use crate::credential::{Credential, CredentialBuilder};

mod launch;
mod listener;

#[cfg(test)]
use launch::browser_command;
use launch::open_browser;
use listener::{bind, receive_code};

const NAME: &str = "InteractiveBrowserCredential";

/// The variable naming the browser command.
pub const BROWSER: &str = "BROWSER";

/// The default time the user has to finish signing in.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Signs a user in through a web browser, then keeps the refresh token to serve later scopes
/// silently.
///
/// Defaults: tenant `organizations`, client id
/// [`DEVELOPER_SIGN_ON_CLIENT_ID`](crate::user::DEVELOPER_SIGN_ON_CLIENT_ID), a free port on
/// `http://localhost`, a 5-minute timeout ([`DEFAULT_TIMEOUT`]). Environment variables read:
/// `BROWSER`, `AZURE_AUTHORITY_HOST`, `AZURE_IDENTITY_DISABLE_MULTITENANTAUTH`.
///
/// ```no_run
/// # async fn demo() -> Result<(), identity_chain::Error> {
/// use identity_chain::{TokenCredential, TokenRequestOptions};
/// use identity_chain::InteractiveBrowserCredential;
///
/// let credential = InteractiveBrowserCredential::builder()
///     .login_hint("someone@contoso.com")
///     .build()?;
/// let token = credential
///     .get_token(&["https://storage.azure.com/.default"], &TokenRequestOptions::default())
///     .await?;
/// # Ok(()) }
/// ```
pub type InteractiveBrowserCredential = Credential<SignIn<InteractiveBrowser>>;

/// Names [`InteractiveBrowserCredential`] among the [`SignIn`] kinds.
#[derive(Clone, Debug)]
pub enum InteractiveBrowser {}

impl InteractiveBrowserCredential {
    /// A builder.
    pub fn builder() -> InteractiveBrowserCredentialBuilder {
        InteractiveBrowserCredentialBuilder::default()
    }
}

/// Builds an [`InteractiveBrowserCredential`]: the shared setters of [`CredentialBuilder`],
/// those of the sign-in credentials, and the browser's.
pub type InteractiveBrowserCredentialBuilder =
    CredentialBuilder<UserSettings<InteractiveBrowserSettings>>;

/// The settings only an [`InteractiveBrowserCredentialBuilder`] has.
#[derive(Clone, Default, Debug)]
pub struct InteractiveBrowserSettings {
    login_hint: Option<String>,
    redirect_uri: Option<String>,
    timeout: Option<Duration>,
}

impl InteractiveBrowserCredentialBuilder {
    /// The account to preselect on the sign-in page (`login_hint`).
    pub fn login_hint(mut self, hint: impl Into<String>) -> Self {
        self.settings.flow.login_hint = Some(hint.into());
        self
    }

    /// The redirect URI registered for the application: `http://localhost[:port][/path]` or
    /// `http://127.0.0.1[:port][/path]` (default `http://localhost:<a free port>`). Port 0
    /// or none means a free port.
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.settings.flow.redirect_uri = Some(uri.into());
        self
    }

    /// How long the user has to finish signing in (default [`DEFAULT_TIMEOUT`], 5 minutes).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.flow.timeout = Some(timeout);
        self
    }

    /// Where the sign-in URL goes when no browser can be started (default: a line on stderr).
    pub fn prompt(mut self, callback: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.settings.user.prompt = Some(Arc::new(callback));
        self
    }

    /// Builds the credential. Nothing is opened until the first `get_token` or
    /// `authenticate`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidConfiguration`](identity_core::ErrorKind::InvalidConfiguration) when
    /// the redirect URI is not a loopback `http` URL, the tenant id is malformed, the record
    /// belongs to another client id, the authority is not `https`, or persistence is asked
    /// for without allowing unencrypted storage.
    pub fn build(self) -> Result<InteractiveBrowserCredential, Error> {
        let settings = &self.settings.flow;
        let redirect = match &settings.redirect_uri {
            Some(uri) => Redirect::parse(uri)?,
            None => Redirect::default(),
        };
        let flow = BrowserFlow {
            login_hint: settings.login_hint.clone().filter(|h| !h.trim().is_empty()),
            redirect,
            timeout: settings.timeout.unwrap_or(DEFAULT_TIMEOUT),
        };
        self.build_user(NAME, "interactive_browser", Arc::new(flow))
    }
}

/// The redirect URI's parts.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Redirect {
    host: String,
    port: u16,
    path: String,
}

impl Default for Redirect {
    fn default() -> Self {
        Self {
            host: "localhost".to_owned(),
            port: 0,
            path: "/".to_owned(),
        }
    }
}

impl Redirect {
    fn parse(raw: &str) -> Result<Self, Error> {
        let bad = || {
            Error::invalid_configuration(
                NAME,
                "the redirect URI must be http://localhost[:port][/path] or http://127.0.0.1[:port][/path]",
            )
        };
        let uri: http::Uri = raw.trim().parse().map_err(|_| bad())?;
        if uri.scheme_str() != Some("http") || uri.query().is_some() || raw.contains('#') {
            return Err(bad());
        }
        let authority = uri.authority().ok_or_else(bad)?;
        let host = authority.host().to_ascii_lowercase();
        if host != "localhost" && host != "127.0.0.1" {
            return Err(bad());
        }
        Ok(Self {
            host,
            port: authority.port_u16().unwrap_or(0),
            path: if uri.path().is_empty() {
                "/".to_owned()
            } else {
                uri.path().to_owned()
            },
        })
    }

    fn uri(&self, port: u16) -> String {
        let path = if self.path == "/" { "" } else { &self.path };
        format!("http://{}:{port}{path}", self.host)
    }
}

#[derive(Debug)]
struct BrowserFlow {
    login_hint: Option<String>,
    redirect: Redirect,
    timeout: Duration,
}

impl RunFlow for BrowserFlow {
    async fn run(&self, client: &UserClient, request: SignInRequest) -> SignedIn {
        let (listeners, port) = bind(&self.redirect).await?;
        let redirect_uri = self.redirect.uri(port);
        let verifier = Secret::new(random_urlsafe(NAME, 32)?);
        let state = random_urlsafe(NAME, 16)?;
        let scope = request.scope_field();
        let url = {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query
                .append_pair("client_id", client.client_id())
                .append_pair("response_type", "code")
                .append_pair("redirect_uri", &redirect_uri)
                .append_pair("scope", &scope)
                .append_pair("state", &state)
                .append_pair("code_challenge", &pkce_challenge(verifier.secret()))
                .append_pair("code_challenge_method", "S256")
                .append_pair("response_mode", "query")
                .append_pair("prompt", "select_account")
                .append_pair("client_info", "1");
            if let Some(hint) = &self.login_hint {
                query.append_pair("login_hint", hint);
            }
            if let Some(claims) = &request.claims {
                query.append_pair("claims", claims);
            }
            format!(
                "{}/{}/oauth2/v2.0/authorize?{}",
                client.authority().as_str(),
                request.tenant,
                query.finish()
            )
        };
        let opener = match open_browser(client.env(), &url) {
            Ok(ended) => Some(ended),
            Err(reason) => {
                tracing::debug!(credential = NAME, reason = %reason, "no browser started; showing the sign-in URL");
                client.prompt(&format!(
                    "No web browser could be started ({reason}). To sign in, open this URL in a browser on this machine:\n{url}"
                ));
                None
            }
        };
        // A browser command that fails after starting (an opener that finds no browser) gets
        // the same notice, while the wait for the redirect goes on.
        let notice = async {
            if let Some(ended) = opener {
                if let Ok(false) = ended.await {
                    client.prompt(&format!(
                        "The web browser command failed. To sign in, open this URL in a browser on this machine:\n{url}"
                    ));
                }
            }
            std::future::pending::<std::convert::Infallible>().await
        };
        let wait = Box::pin(async {
            match select(
                Box::pin(receive_code(listeners, &state, &self.redirect.path)),
                Box::pin(notice),
            )
            .await
            {
                Either::Left((result, _)) => result,
                Either::Right((never, _)) => match never {},
            }
        });
        let code = match select(wait, client.sleeper().sleep(self.timeout)).await {
            Either::Left((result, _)) => result?,
            Either::Right(((), _)) => {
                return Err(Error::authentication_failed(
                    NAME,
                    format!(
                        "the browser sign-in did not complete within {} s; try again, or use DeviceCodeCredential where no browser can reach this machine",
                        self.timeout.as_secs()
                    ),
                ));
            }
        };
        let mut form = vec![
            ("client_id", client.client_id()),
            ("grant_type", "authorization_code"),
            ("code", code.secret()),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", verifier.secret()),
            ("scope", scope.as_str()),
            ("client_info", "1"),
        ];
        if let Some(claims) = &request.claims {
            form.push(("claims", claims));
        }
        let (response, at) = client.post_token(&request.tenant, &form).await?;
        client.parse_token_response(&response, at, &[code.secret(), verifier.secret()])
    }
}

#[cfg(test)]
mod tests;
