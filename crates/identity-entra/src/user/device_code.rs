//! [`DeviceCodeCredential`]: signs a user in on another device (OAuth 2.0 device
//! authorization grant, RFC 8628; `docs/protocol.md` §6).
//!
//! 1. `POST {authority}/{tenant}/oauth2/v2.0/devicecode` with `client_id` and `scope` (the
//!    caller's scopes plus `offline_access openid profile`).
//! 2. The answer's `user_code`, `verification_uri` and `message` go to the prompt callback
//!    (default: the message on stderr).
//! 3. `POST …/token` with `grant_type=urn:ietf:params:oauth:grant-type:device_code`,
//!    `device_code`, `client_id`, every `interval` seconds (default 5): `authorization_pending`
//!    polls again, `slow_down` adds 5 s to the interval, `authorization_declined`,
//!    `expired_token` and `bad_verification_code` end the flow with an authentication
//!    failure, and so does the time limit: the earlier of the code's `expires_in` and the
//!    builder's `timeout` (counted from the start of the sign-in, the device code request
//!    included). Every wait (the interval, a `slow_down`, a `Retry-After`, one poll's request)
//!    is cut to that deadline, so the flow ends by it whatever the service's numbers; the
//!    error names the limit that ended it and its number of seconds.
//! 4. Each poll is sent once, without the pipeline's retries (the polling is its own retry):
//!    a transient answer (HTTP 429 or 5xx without a device-flow error, or no connection) does
//!    not end the sign-in; the next poll waits the interval, or the answer's `Retry-After`
//!    when longer. When the deadline comes while Entra is unavailable, the error says so, with
//!    the last status (and carries it, so it counts as transient).
//!
//! The device code is a secret (whoever holds it can redeem the sign-in) and is never shown.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use identity_core::{Error, Secret};
use serde_json::Value;

use super::wire::{Answer, Step, classify_answer};
use super::{
    RunFlow, SignIn, SignInRequest, SignedIn, UserClient, UserSettings, capped_seconds, seconds,
};
use crate::credential::{Credential, CredentialBuilder};

const NAME: &str = "DeviceCodeCredential";

/// How much `slow_down` adds to the polling interval (RFC 8628 §3.5).
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// The most polls of one sign-in, whatever the clock says.
const MAX_POLLS: u32 = 2_000;

/// What the user must do to sign in, handed to the prompt callback.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeviceCodeInfo {
    /// The code the user types at [`verification_uri`](Self::verification_uri).
    pub user_code: String,
    /// The page where the user signs in, e.g. `https://microsoft.com/devicelogin`.
    pub verification_uri: String,
    /// Entra's instructions for the user, ready to show.
    pub message: String,
    /// When the code stops working.
    pub expires_on: SystemTime,
}

/// The device code prompt: called once per sign-in with what the user must do.
pub type DeviceCodeCallback = Arc<dyn Fn(&DeviceCodeInfo) + Send + Sync>;

/// Signs a user in with a code they enter on another device, then keeps the refresh token to
/// serve later scopes silently.
///
/// Defaults: tenant `organizations`, client id
/// [`DEVELOPER_SIGN_ON_CLIENT_ID`](crate::user::DEVELOPER_SIGN_ON_CLIENT_ID), the prompt on
/// stderr, a time limit of the code's own lifetime (15 minutes on Entra).
///
/// ```no_run
/// # async fn demo() -> Result<(), identity_chain::Error> {
/// use identity_chain::{TokenCredential, TokenRequestOptions};
/// use identity_chain::DeviceCodeCredential;
///
/// let credential = DeviceCodeCredential::builder()
///     .prompt(|info| eprintln!("{}", info.message))
///     .build()?;
/// let record = credential.authenticate(&["https://graph.microsoft.com/.default"]).await?;
/// eprintln!("signed in as {}", record.username());
/// let token = credential
///     .get_token(&["https://storage.azure.com/.default"], &TokenRequestOptions::default())
///     .await?;
/// # Ok(()) }
/// ```
pub type DeviceCodeCredential = Credential<SignIn<DeviceCode>>;

/// Names [`DeviceCodeCredential`] among the [`SignIn`] kinds.
#[derive(Clone, Debug)]
pub enum DeviceCode {}

impl DeviceCodeCredential {
    /// A builder.
    pub fn builder() -> DeviceCodeCredentialBuilder {
        DeviceCodeCredentialBuilder::default()
    }
}

/// Builds a [`DeviceCodeCredential`]: the shared setters of [`CredentialBuilder`], those of
/// the sign-in credentials, [`prompt`](Self::prompt) and [`timeout`](Self::timeout).
pub type DeviceCodeCredentialBuilder = CredentialBuilder<UserSettings<DeviceCodeSettings>>;

/// The settings only a [`DeviceCodeCredentialBuilder`] has.
#[derive(Clone, Default)]
pub struct DeviceCodeSettings {
    callback: Option<DeviceCodeCallback>,
    timeout: Option<Duration>,
}

impl fmt::Debug for DeviceCodeSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCodeSettings")
            .field("prompt", &self.callback.as_ref().map(|_| "callback"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl DeviceCodeCredentialBuilder {
    /// Where the device code instructions go (default: [`DeviceCodeInfo::message`] on stderr).
    pub fn prompt(mut self, callback: impl Fn(&DeviceCodeInfo) + Send + Sync + 'static) -> Self {
        self.settings.flow.callback = Some(Arc::new(callback));
        self
    }

    /// The longest a sign-in may take, from the device code request to the token (default:
    /// the code's lifetime from Entra, `expires_in`). The earlier of the two ends the
    /// polling: no wait goes past it, however long the service's `interval`, `slow_down` or
    /// `Retry-After`, and the authentication-failed error names the limit that ended it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.flow.timeout = Some(timeout);
        self
    }

    /// Builds the credential. Nothing is sent until the first `get_token` or `authenticate`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidConfiguration`](identity_core::ErrorKind::InvalidConfiguration) when
    /// the tenant id is malformed, the record belongs to another client id, the authority is
    /// not `https`, or persistence is asked for without allowing unencrypted storage.
    pub fn build(self) -> Result<DeviceCodeCredential, Error> {
        let flow = DeviceFlow {
            callback: self.settings.flow.callback.clone(),
            timeout: self.settings.flow.timeout,
        };
        self.build_user(NAME, "device_code", Arc::new(flow))
    }
}

struct DeviceFlow {
    callback: Option<DeviceCodeCallback>,
    timeout: Option<Duration>,
}

impl fmt::Debug for DeviceFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceFlow")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RunFlow for DeviceFlow {
    async fn run(&self, client: &UserClient, request: SignInRequest) -> SignedIn {
        let started = client.clock().now();
        let scope = request.scope_field();
        let mut form = vec![("client_id", client.client_id()), ("scope", scope.as_str())];
        if let Some(claims) = &request.claims {
            form.push(("claims", claims));
        }
        let post = client.post(&request.tenant, "devicecode", &form);
        let (response, now) = match self.timeout {
            Some(limit) => tokio::time::timeout(limit, post).await.map_err(|_| {
                let silent = Outage::Unreachable("no answer to the device code request".into());
                Limit::Timeout(limit).error(Some(silent))
            })??,
            None => post.await?,
        };
        if !response.status().is_success() {
            // The shared parser turns an Entra error into a message with its AADSTS code.
            client.parse_token_response(&response, now, &[])?;
        }
        let json = crate::response::body_json(&response).unwrap_or(Value::Null);
        let text = |key: &str| {
            json.get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let (Some(device_code), Some(user_code)) = (text("device_code"), text("user_code")) else {
            return Err(Error::authentication_failed(
                NAME,
                "unexpected device code answer from Microsoft Entra ID: device_code or user_code is missing",
            ));
        };
        let device_code = Secret::new(device_code);
        let verification_uri = text("verification_uri")
            .or_else(|| text("verification_url"))
            .unwrap_or_else(|| "https://microsoft.com/devicelogin".to_owned());
        let expires_in = capped_seconds(seconds(json.get("expires_in")).unwrap_or(900));
        let interval = capped_seconds(seconds(json.get("interval")).unwrap_or(5).max(1));
        let message = text("message").unwrap_or_else(|| {
            format!("To sign in, open {verification_uri} in a web browser and enter the code {user_code}.")
        });
        let info = DeviceCodeInfo {
            user_code,
            verification_uri,
            message,
            expires_on: now + expires_in,
        };
        match &self.callback {
            Some(callback) => callback(&info),
            None => client.prompt(&info.message),
        }
        // The earlier of the code's lifetime and the builder's time limit (counted from the
        // start of the sign-in) ends the polling.
        let (limit, deadline) = match self.timeout {
            Some(t) if started + t < now + expires_in => (Limit::Timeout(t), started + t),
            _ => (Limit::Expiry(expires_in), now + expires_in),
        };
        let poll = Poller {
            client,
            tenant: &request.tenant,
            device_code: &device_code,
            deadline,
            limit,
        };
        poll.until_deadline(interval).await
    }
}

/// What ended a device code sign-in that got no answer from the user.
#[derive(Clone, Copy, Debug)]
enum Limit {
    /// The code's `expires_in`.
    Expiry(Duration),
    /// The builder's `timeout`.
    Timeout(Duration),
}

impl Limit {
    /// The error at the deadline; `outage` is why the last poll got no OAuth answer, if so.
    fn error(self, outage: Option<Outage>) -> Error {
        let mut message = match self {
            Self::Expiry(d) => format!(
                "the device code expired ({} s, the code's expires_in) before the user signed in",
                d.as_secs()
            ),
            Self::Timeout(d) => format!(
                "the time limit for the device code sign-in passed ({} s, set with timeout()) before the user signed in",
                d.as_secs()
            ),
        };
        let mut status = None;
        match outage {
            Some(Outage::Status(code)) => {
                message.push_str(&format!(
                    "; Microsoft Entra ID was unavailable (its last answer was HTTP {code})"
                ));
                status = Some(code);
            }
            Some(Outage::Unreachable(reason)) => {
                message.push_str(&format!(
                    "; Microsoft Entra ID could not be reached ({reason})"
                ));
            }
            None => {}
        }
        message.push_str("; try again");
        let error = Error::authentication_failed(NAME, message);
        match status {
            Some(code) => error.with_status(code),
            None => error,
        }
    }
}

/// A poll that got no OAuth answer: a transient status (429, 5xx) or no connection.
#[derive(Clone, Debug)]
enum Outage {
    Status(u16),
    Unreachable(String),
}

/// The polling of one device code until a token, a refusal or the deadline.
struct Poller<'a> {
    client: &'a UserClient,
    tenant: &'a str,
    device_code: &'a Secret,
    deadline: SystemTime,
    limit: Limit,
}

impl Poller<'_> {
    /// The time left before the deadline.
    fn left(&self) -> Duration {
        self.deadline
            .duration_since(self.client.clock().now())
            .unwrap_or(Duration::ZERO)
    }

    /// Polls every `interval` (grown by `slow_down`, or longer when a transient answer asks
    /// with `Retry-After`), every wait clipped to the deadline, until the user signs in, Entra
    /// refuses, or the deadline passes (then the error names the limit and any outage).
    async fn until_deadline(&self, mut interval: Duration) -> SignedIn {
        let client = self.client;
        let secrets = [self.device_code.secret()];
        let mut wait = interval;
        let mut outage = None;
        for _ in 0..MAX_POLLS {
            let left = self.left();
            if left.is_zero() {
                break;
            }
            let clipped = wait >= left;
            client.sleeper().sleep(wait.min(left)).await;
            let left = self.left();
            if clipped || left.is_zero() {
                // The wait reached the deadline: no poll can be answered in time.
                break;
            }
            let form = [
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", client.client_id()),
                ("device_code", self.device_code.secret()),
                ("client_info", "1"),
            ];
            let sent = tokio::time::timeout(left, client.post_token_once(self.tenant, &form)).await;
            let (response, at) = match sent {
                Ok(Ok(answer)) => answer,
                Ok(Err(e)) if e.is_transient() => {
                    outage = Some(Outage::Unreachable(e.message().to_owned()));
                    wait = interval;
                    continue;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    outage = Some(Outage::Unreachable("no answer before the deadline".into()));
                    break;
                }
            };
            let status = response.status().as_u16();
            match classify_answer(Step::DeviceCodePoll, &response) {
                Answer::PollAgain => wait = interval,
                Answer::SlowDown => {
                    interval += SLOW_DOWN_STEP;
                    wait = interval;
                }
                Answer::Failed(message) => {
                    return Err(Error::authentication_failed(NAME, message));
                }
                Answer::Token if status == 429 || status >= 500 => {
                    // A transient answer does not end the sign-in while the code is valid.
                    outage = Some(Outage::Status(status));
                    wait = client
                        .retry_after(&response)
                        .map_or(interval, |r| r.max(interval));
                    continue;
                }
                Answer::Token | Answer::SignInAgain => {
                    return client.parse_token_response(&response, at, &secrets);
                }
            }
            outage = None;
        }
        Err(self.limit.error(outage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::emulator::{Emulator, Poll};
    use identity_core::test_util::{Capture, FakeClock, RecordingSleeper};
    use identity_core::{AccessToken, TokenCredential, TokenRequestOptions};
    use identity_core::{Env, ErrorKind};
    use std::sync::Mutex;

    const SCOPE: &str = "https://vault.azure.net/.default";

    fn builder(
        emulator: &Emulator,
        sleeper: &RecordingSleeper,
        clock: &FakeClock,
    ) -> DeviceCodeCredentialBuilder {
        DeviceCodeCredential::builder()
            .authority_host(emulator.uri())
            .allow_insecure_loopback_authority(true)
            .runtime(
                identity_core::Runtime::with_env(Env::empty())
                    .clock(clock.shared())
                    .sleeper(sleeper.shared()),
            )
            .prompt(|_| {})
    }

    fn fake_time() -> (FakeClock, RecordingSleeper) {
        let clock = FakeClock::at_2030();
        (clock.clone(), RecordingSleeper::advancing(clock))
    }

    async fn run(
        emulator: &Emulator,
        polls: &[Poll],
    ) -> (Result<AccessToken, Error>, Vec<Duration>) {
        emulator.with(|s| s.polls = polls.iter().copied().collect());
        let (clock, sleeper) = fake_time();
        let credential = builder(emulator, &sleeper, &clock).build().unwrap();
        let result = credential
            .get_token(&[SCOPE], &TokenRequestOptions::default())
            .await;
        (result, sleeper.slept())
    }

    #[tokio::test]
    async fn pending_polls_wait_the_interval_and_the_prompt_gets_the_code() {
        let emulator = Emulator::start().await;
        emulator.with(|s| s.polls = [Poll::Pending, Poll::Pending].into());
        let (clock, sleeper) = fake_time();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let credential = builder(&emulator, &sleeper, &clock)
            .prompt(move |info| sink.lock().unwrap().push(info.clone()))
            .build()
            .unwrap();
        let token = credential
            .get_token(&[SCOPE], &TokenRequestOptions::default())
            .await
            .unwrap();
        assert!(token.token.secret().starts_with("at-device-"));
        assert_eq!(sleeper.slept(), [Duration::from_secs(5); 3]);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].user_code, "ABCD-EFGH");
        assert!(seen[0].message.contains("ABCD-EFGH"));
        assert_eq!(
            seen[0].expires_on,
            identity_core::Clock::now(&FakeClock::at_2030()) + Duration::from_secs(900)
        );
        let device = &emulator.requests("/devicecode")[0];
        assert!(
            device.path.starts_with("/organizations/"),
            "{}",
            device.path
        );
        assert_eq!(
            device.params["client_id"],
            crate::user::DEVELOPER_SIGN_ON_CLIENT_ID
        );
        assert_eq!(
            device.params["scope"],
            format!("{SCOPE} offline_access openid profile")
        );
        assert_eq!(
            emulator.grants("urn:ietf:params:oauth:grant-type:device_code"),
            3
        );
        let record = credential.authentication_record().unwrap();
        assert_eq!(record.username(), "user@contoso.com");
        assert_eq!(record.home_account_id(), "uid1.utid1");
    }

    #[tokio::test]
    async fn slow_down_adds_five_seconds_to_the_interval() {
        let emulator = Emulator::start().await;
        let (result, slept) = run(&emulator, &[Poll::SlowDown, Poll::Pending]).await;
        result.unwrap();
        let s = Duration::from_secs;
        assert_eq!(slept, [s(5), s(10), s(10)]);
    }

    #[tokio::test]
    async fn a_declined_sign_in_is_a_clear_failure() {
        let emulator = Emulator::start().await;
        let (result, _) = run(&emulator, &[Poll::Pending, Poll::Declined]).await;
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
        assert!(err.message().contains("declined"), "{err}");
        assert!(!format!("{err:?}").contains("planted"), "{err:?}");
    }

    #[tokio::test]
    async fn an_expired_code_is_a_clear_failure() {
        let emulator = Emulator::start().await;
        let (result, _) = run(&emulator, &[Poll::Expired]).await;
        let err = result.unwrap_err();
        assert!(err.message().contains("expired"), "{err}");
    }

    #[tokio::test]
    async fn the_time_limit_ends_polling_without_waiting_in_real_time() {
        let emulator = Emulator::start().await;
        emulator.with(|s| s.polls = std::iter::repeat_n(Poll::Pending, 100).collect());
        let (clock, sleeper) = fake_time();
        let credential = builder(&emulator, &sleeper, &clock)
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let err = credential
            .get_token(&[SCOPE], &TokenRequestOptions::default())
            .await
            .unwrap_err();
        assert!(err.message().contains("time limit"), "{err}");
        assert!(err.message().contains("60 s"), "{err}");
        // Polls at 5, 10, …, 55 s; the wake-up at 60 s ends the flow.
        assert_eq!(
            emulator.grants("urn:ietf:params:oauth:grant-type:device_code"),
            11
        );

        // Without a timeout, the code's own lifetime bounds the wait.
        emulator.with(|s| {
            s.polls = std::iter::repeat_n(Poll::Pending, 100).collect();
            s.device_expires_in = 20;
        });
        let (clock, sleeper) = fake_time();
        let credential = builder(&emulator, &sleeper, &clock).build().unwrap();
        let err = credential
            .get_token(&[SCOPE], &TokenRequestOptions::default())
            .await
            .unwrap_err();
        assert!(
            err.message()
                .contains("device code expired (20 s, the code's expires_in)"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn later_scopes_and_expired_tokens_are_served_silently_with_the_refresh_token() {
        let emulator = Emulator::start().await;
        let (clock, sleeper) = fake_time();
        let prompts = Arc::new(Mutex::new(0));
        let counter = prompts.clone();
        let credential = builder(&emulator, &sleeper, &clock)
            .prompt(move |_| *counter.lock().unwrap() += 1)
            .build()
            .unwrap();
        let options = TokenRequestOptions::default();
        let first = credential.get_token(&[SCOPE], &options).await.unwrap();
        // Cached.
        let again = credential.get_token(&[SCOPE], &options).await.unwrap();
        assert_eq!(first.token, again.token);
        // Another scope: the refresh token, no prompt.
        let graph = credential
            .get_token(&["https://graph.microsoft.com/.default"], &options)
            .await
            .unwrap();
        assert!(graph.token.secret().starts_with("at-refresh-"));
        // Expired: the (rotated) refresh token again.
        clock.advance(Duration::from_secs(7200));
        let renewed = credential.get_token(&[SCOPE], &options).await.unwrap();
        assert!(renewed.token.secret().starts_with("at-refresh-"));
        assert_ne!(renewed.token, first.token);
        assert_eq!(*prompts.lock().unwrap(), 1);
        assert_eq!(emulator.grants("refresh_token"), 2);
        let refreshes = emulator.requests("/token");
        let last = refreshes.last().unwrap();
        assert_eq!(
            last.params["scope"],
            format!("{SCOPE} offline_access openid profile")
        );
        assert_eq!(last.params["client_info"], "1");
    }

    #[tokio::test]
    async fn a_refused_refresh_token_prompts_again_unless_automatic_authentication_is_off() {
        let emulator = Emulator::start().await;
        let (clock, sleeper) = fake_time();
        let credential = builder(&emulator, &sleeper, &clock).build().unwrap();
        let options = TokenRequestOptions::default();
        credential.get_token(&[SCOPE], &options).await.unwrap();
        emulator.with(|s| s.refuse_refresh = true);
        let token = credential
            .get_token(&["https://graph.microsoft.com/.default"], &options)
            .await
            .unwrap();
        assert!(token.token.secret().starts_with("at-device-"));
        assert_eq!(emulator.requests("/devicecode").len(), 2);

        let manual = builder(&emulator, &sleeper, &clock)
            .disable_automatic_authentication(true)
            .build()
            .unwrap();
        let err = manual.get_token(&[SCOPE], &options).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
        assert!(err.message().contains("authenticate()"), "{err}");
        assert_eq!(emulator.requests("/devicecode").len(), 2);
        let record = manual.authenticate(&[]).await.unwrap();
        assert_eq!(record.client_id(), crate::user::DEVELOPER_SIGN_ON_CLIENT_ID);
        let last = emulator.requests("/devicecode").pop().unwrap();
        assert!(last.params["scope"].starts_with("https://management.azure.com/.default"));
    }

    #[tokio::test]
    async fn device_codes_and_refresh_tokens_never_reach_errors_debug_or_logs() {
        let emulator = Emulator::start().await;
        emulator.with(|s| s.echo_secrets = true);
        let (clock, sleeper) = fake_time();
        let credential = builder(&emulator, &sleeper, &clock).build().unwrap();
        let capture = Capture::new();
        let _guard = capture.enter();
        let options = TokenRequestOptions::default();
        credential.get_token(&[SCOPE], &options).await.unwrap();
        emulator.with(|s| s.refuse_refresh = true);
        emulator.with(|s| s.polls = [Poll::Declined].into());
        let err = credential
            .get_token(&["https://graph.microsoft.com/.default"], &options)
            .await
            .unwrap_err();
        let text = format!(
            "{err} {err:?} {credential:?} {:?}",
            credential.authentication_record()
        );
        assert!(!text.contains("planted"), "{text}");
        capture.assert_absent("planted");
        capture.assert_absent("at-device");
    }
    /// Runs a sign-in with the emulator's device code answer set to `interval` and
    /// `expires_in`, the polls' answers `polls` and the builder's `timeout`.
    async fn limited(
        emulator: &Emulator,
        (interval, expires_in): (u64, u64),
        polls: &[Poll],
        timeout: Option<u64>,
    ) -> (Result<AccessToken, Error>, Vec<Duration>) {
        emulator.with(|s| {
            s.device_interval = interval;
            s.device_expires_in = expires_in;
            s.polls = polls.iter().copied().collect();
        });
        let (clock, sleeper) = fake_time();
        let mut builder = builder(emulator, &sleeper, &clock);
        if let Some(timeout) = timeout {
            builder = builder.timeout(Duration::from_secs(timeout));
        }
        let result = builder
            .build()
            .unwrap()
            .get_token(&[SCOPE], &TokenRequestOptions::default())
            .await;
        (result, sleeper.slept())
    }

    const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

    #[tokio::test]
    async fn an_hour_long_interval_is_clipped_to_the_builders_timeout() {
        let emulator = Emulator::start().await;
        let (result, slept) = limited(&emulator, (3600, 900), &[], Some(5)).await;
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
        assert!(
            err.message().contains(
                "time limit for the device code sign-in passed (5 s, set with timeout())"
            ),
            "{err}"
        );
        assert!(
            slept.iter().sum::<Duration>() <= Duration::from_secs(5),
            "{slept:?}"
        );
        assert_eq!(emulator.grants(DEVICE_GRANT), 0);
    }

    #[tokio::test]
    async fn an_interval_past_the_codes_expiry_is_clipped_to_it() {
        let emulator = Emulator::start().await;
        let (result, slept) = limited(&emulator, (20, 3), &[], None).await;
        let err = result.unwrap_err();
        assert!(
            err.message()
                .contains("device code expired (3 s, the code's expires_in)"),
            "{err}"
        );
        assert!(
            slept.iter().sum::<Duration>() <= Duration::from_secs(3),
            "{slept:?}"
        );
        // A builder timeout longer than the code's life: the code's expiry is the limit named.
        let (result, slept) = limited(&emulator, (20, 3), &[], Some(60)).await;
        assert!(result.unwrap_err().message().contains("expired (3 s"));
        assert!(
            slept.iter().sum::<Duration>() <= Duration::from_secs(3),
            "{slept:?}"
        );
    }

    #[tokio::test]
    async fn repeated_slow_down_is_clipped_to_the_deadline() {
        let emulator = Emulator::start().await;
        let slow = [Poll::SlowDown; 20];
        let (result, slept) = limited(&emulator, (5, 900), &slow, Some(32)).await;
        let err = result.unwrap_err();
        assert!(
            err.message().contains("(32 s, set with timeout())"),
            "{err}"
        );
        let s = Duration::from_secs;
        // Polls at 5, 15 and 30 s; the next wait (20 s) is cut to the 2 s left.
        assert_eq!(slept, [s(5), s(10), s(15), s(2)]);
        assert_eq!(emulator.grants(DEVICE_GRANT), 3);
    }

    #[tokio::test]
    async fn a_transient_outage_while_polling_does_not_end_the_sign_in() {
        let emulator = Emulator::start().await;
        let busy = [Poll::Busy(503, None); 5];
        let (result, slept) = limited(&emulator, (1, 900), &busy, None).await;
        assert!(result.unwrap().token.secret().starts_with("at-device-"));
        assert_eq!(emulator.grants(DEVICE_GRANT), 6);
        assert_eq!(slept, [Duration::from_secs(1); 6]);

        // A dropped connection is an outage too; at the deadline the error says so.
        let (result, _) = limited(&emulator, (1, 900), &[Poll::Drop; 2], None).await;
        result.unwrap();
        assert_eq!(emulator.grants(DEVICE_GRANT), 9);
        let (result, _) = limited(&emulator, (5, 900), &[Poll::Drop; 10], Some(12)).await;
        let text = result.unwrap_err().to_string();
        assert!(text.contains("could not be reached"), "{text}");
        assert!(!text.contains("tenant id"), "{text}");

        // Retry-After lengthens the wait for the next poll.
        let polls = [Poll::Busy(429, Some(30)), Poll::Pending];
        let (result, slept) = limited(&emulator, (5, 900), &polls, None).await;
        result.unwrap();
        let s = Duration::from_secs;
        assert_eq!(slept, [s(5), s(30), s(5)]);
    }

    #[tokio::test]
    async fn an_outage_until_the_deadline_says_the_service_was_unavailable() {
        let emulator = Emulator::start().await;
        let busy = [Poll::Busy(503, None); 100];
        let (result, slept) = limited(&emulator, (5, 900), &busy, Some(20)).await;
        let err = result.unwrap_err();
        assert_eq!(err.status(), Some(503));
        let text = err.to_string();
        assert!(
            text.contains("Microsoft Entra ID was unavailable"),
            "{text}"
        );
        assert!(text.contains("HTTP 503"), "{text}");
        assert!(text.contains("(20 s, set with timeout())"), "{text}");
        assert!(!text.contains("tenant id"), "{text}");
        assert!(!text.contains("busy"), "{text}");
        assert!(
            slept.iter().sum::<Duration>() <= Duration::from_secs(20),
            "{slept:?}"
        );

        // A Retry-After past the deadline is clipped to it.
        let busy = [Poll::Busy(429, Some(3600)); 2];
        let (result, slept) = limited(&emulator, (5, 900), &busy, Some(20)).await;
        let err = result.unwrap_err();
        assert!(err.to_string().contains("HTTP 429"), "{err}");
        let s = Duration::from_secs;
        assert_eq!(slept, [s(5), s(15)]);
    }

    #[tokio::test]
    async fn a_refused_refresh_token_without_automatic_authentication_keeps_entras_reason() {
        let emulator = Emulator::start().await;
        emulator.with(|s| s.echo_secrets = true);
        let (clock, sleeper) = fake_time();
        let manual = builder(&emulator, &sleeper, &clock)
            .disable_automatic_authentication(true)
            .build()
            .unwrap();
        manual.authenticate(&[SCOPE]).await.unwrap();
        emulator.with(|s| s.refuse_refresh = true);
        let err = manual
            .get_token(
                &["https://graph.microsoft.com/.default"],
                &TokenRequestOptions::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
        let text = err.to_string();
        assert!(text.contains("call authenticate() first"), "{text}");
        assert!(text.contains("invalid_grant"), "{text}");
        assert!(text.contains("AADSTS700082"), "{text}");
        assert!(!format!("{text} {err:?}").contains("planted"), "{text}");
        assert_eq!(emulator.requests("/devicecode").len(), 1);
    }

    #[tokio::test]
    async fn a_cache_that_cannot_be_written_fails_authenticate_and_warns_once_on_refresh() {
        let emulator = Emulator::start().await;
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("afile"), b"").unwrap();
        let directory = home.path().join("afile").join("cache");
        let persistence = crate::user::TokenCachePersistenceOptions::new()
            .name("unwritable")
            .directory(&directory)
            .without_platform_keyring()
            .allow_unencrypted_storage(true);
        let (clock, sleeper) = fake_time();
        let credential = builder(&emulator, &sleeper, &clock)
            .token_cache_persistence(persistence)
            .build()
            .unwrap();
        let capture = Capture::new();
        let _guard = capture.enter();
        let err = credential.authenticate(&[SCOPE]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfiguration);
        let text = format!("{err} {err:?}");
        assert!(text.contains("could not be written"), "{text}");
        assert!(text.contains(&directory.display().to_string()), "{text}");
        assert!(!text.contains("planted"), "{text}");
        // The sign-in itself worked: this credential serves tokens without another prompt.
        let options = TokenRequestOptions::default();
        credential.get_token(&[SCOPE], &options).await.unwrap();
        for scope in [
            "https://graph.microsoft.com/.default",
            "https://storage.azure.com/.default",
        ] {
            let token = credential.get_token(&[scope], &options).await.unwrap();
            assert!(token.token.secret().starts_with("at-refresh-"));
        }
        assert_eq!(emulator.requests("/devicecode").len(), 1);
        let warnings = capture
            .events()
            .into_iter()
            .filter(|e| e.level == tracing::Level::WARN)
            .count();
        assert_eq!(warnings, 1);
        capture.assert_absent("planted");
    }
    #[tokio::test]
    async fn a_silent_device_code_endpoint_ends_at_the_builders_timeout() {
        let emulator = Emulator::start().await;
        emulator.with(|s| s.device_delay = Duration::from_secs(120));
        let (clock, sleeper) = fake_time();
        let credential = builder(&emulator, &sleeper, &clock)
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        let err = tokio::time::timeout(
            Duration::from_secs(60),
            credential.get_token(&[SCOPE], &TokenRequestOptions::default()),
        )
        .await
        .expect("the timeout ends the wait for the device code")
        .unwrap_err();
        assert!(err.message().contains("(1 s, set with timeout())"), "{err}");
        assert!(sleeper.slept().is_empty());
    }
}
