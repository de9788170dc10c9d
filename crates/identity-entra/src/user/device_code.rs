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
//!    builder's `timeout`.
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

    /// The longest wait for the user (default: the code's lifetime from Entra).
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
        let scope = request.scope_field();
        let mut form = vec![("client_id", client.client_id()), ("scope", scope.as_str())];
        if let Some(claims) = &request.claims {
            form.push(("claims", claims));
        }
        let (response, now) = client.post(&request.tenant, "devicecode", &form).await?;
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
        let mut interval = capped_seconds(seconds(json.get("interval")).unwrap_or(5).max(1));
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
        let limit = self.timeout.map_or(expires_in, |t| t.min(expires_in));
        let deadline = now + limit;
        let secrets = [device_code.secret()];
        for _ in 0..MAX_POLLS {
            client.sleeper().sleep(interval).await;
            if client.clock().now() >= deadline {
                break;
            }
            let form = [
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", client.client_id()),
                ("device_code", device_code.secret()),
                ("client_info", "1"),
            ];
            let (response, at) = client.post_token(&request.tenant, &form).await?;
            match classify_answer(Step::DeviceCodePoll, &response) {
                Answer::PollAgain => {}
                Answer::SlowDown => interval += SLOW_DOWN_STEP,
                Answer::Failed(message) => {
                    return Err(Error::authentication_failed(NAME, message));
                }
                Answer::Token | Answer::SignInAgain => {
                    return client.parse_token_response(&response, at, &secrets);
                }
            }
        }
        let shown = if self.timeout.is_some_and(|t| t < expires_in) {
            "the time limit for the device code sign-in passed"
        } else {
            "the device code expired"
        };
        Err(Error::authentication_failed(
            NAME,
            format!(
                "{shown} ({} s) before the user signed in; try again",
                limit.as_secs()
            ),
        ))
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
            err.message().contains("device code expired (20 s)"),
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
}
