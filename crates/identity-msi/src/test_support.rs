//! Shared test helpers: a credential on a fake clock and a recording sleeper, the planted
//! secrets and their checks, the per-source test shapes, and the loopback servers.

pub(crate) mod loopback;

pub(crate) use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

use identity_core::test_util::{FakeClock, RecordingSleeper};
use identity_core::{AccessToken, Error, TokenCredential, TokenRequestOptions};
pub(crate) use identity_core::{Env, Runtime};
use wiremock::{MockServer, ResponseTemplate};

use crate::ManagedIdentityCredentialBuilder;
pub(crate) use crate::{ManagedIdentityCredential, ManagedIdentityId, ManagedIdentitySource};

/// The fake clock's start: 2030-01-01T00:00:00Z.
pub(crate) const CLOCK_NOW: u64 = 1_893_456_000;
pub(crate) const SCOPE: &str = "https://vault.azure.net/.default";
/// A recognisable secret planted in headers; it must never appear in output.
pub(crate) const SECRET: &str = "planted-identity-header-secret";
pub(crate) const UAMI: &str = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/my id";

pub(crate) fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

pub(crate) fn secs(values: &[f64]) -> Vec<Duration> {
    values.iter().map(|v| Duration::from_secs_f64(*v)).collect()
}

/// A token response expiring at `expires_on` (epoch seconds, as a string like App Service).
pub(crate) fn token_on(expires_on: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_string(format!(
        r#"{{"access_token":"AT","expires_on":"{expires_on}","resource":"https://vault.azure.net","token_type":"Bearer"}}"#
    ))
}

/// An environment that selects IMDS; tests point the endpoint at a local server.
pub(crate) fn imds_env() -> Env {
    Env::empty()
}

/// An address nothing listens on.
pub(crate) fn closed_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

pub(crate) struct Harness {
    pub(crate) credential: ManagedIdentityCredential,
    pub(crate) clock: FakeClock,
    pub(crate) sleeper: RecordingSleeper,
    env: Env,
    id: ManagedIdentityId,
}

impl Harness {
    pub(crate) async fn get(&self) -> Result<AccessToken, Error> {
        self.credential
            .get_token(&[SCOPE], &TokenRequestOptions::default())
            .await
    }

    /// The same credential settings with the endpoint pointed at `server`'s IMDS path.
    pub(crate) fn with_endpoint(self, server: &MockServer) -> Self {
        let url = format!("{}{}", server.uri(), crate::imds::TOKEN_PATH);
        harness_with(self.env, self.id, move |b| b.endpoint(url))
    }
}

pub(crate) fn harness(env: Env, id: ManagedIdentityId) -> Harness {
    harness_with(env, id, |b| b)
}

/// The error of one call of a system-assigned credential built over `env`.
pub(crate) async fn system_assigned_failure(env: Env) -> Error {
    harness(env, ManagedIdentityId::SystemAssigned)
        .get()
        .await
        .unwrap_err()
}

/// A credential over `env` with a fake clock, a recording sleeper and a short timeout;
/// `customise` adjusts the builder.
pub(crate) fn harness_with(
    env: Env,
    id: ManagedIdentityId,
    customise: impl FnOnce(ManagedIdentityCredentialBuilder) -> ManagedIdentityCredentialBuilder,
) -> Harness {
    let clock = FakeClock::new(at(CLOCK_NOW));
    let sleeper = RecordingSleeper::new();
    let runtime = Runtime::with_env(env.clone())
        .clock(clock.shared())
        .sleeper(sleeper.shared());
    let builder = ManagedIdentityCredential::builder()
        .runtime(runtime)
        .identity(id.clone())
        .timeout(Duration::from_secs(10))
        // Detection never looks at this machine's files.
        .host_files(std::sync::Arc::new(crate::ListedHostFiles::default()));
    let credential = customise(builder).build().unwrap();
    Harness {
        credential,
        clock,
        sleeper,
        env,
        id,
    }
}

/// The forms in which an endpoint could echo `secret`: verbatim, percent-encoded (both
/// cases), JSON-escaped, base64 (both alphabets).
pub(crate) fn echoed_forms(secret: &str) -> Vec<String> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
    vec![
        secret.to_owned(),
        crate::wire::encode(secret),
        secret.bytes().map(|b| format!("%{b:02x}")).collect(),
        secret.bytes().map(|b| format!("\\u{b:04x}")).collect(),
        b64.trim_end_matches('=').to_owned(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
    ]
}

/// A 400 answer quoting the value of the request's `header` in several encodings, in every
/// field a message is quoted from.
pub(crate) fn echo_header(header: &'static str) -> impl wiremock::Respond {
    move |request: &wiremock::Request| {
        let value = request
            .headers
            .get(header)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        echo_body(400, &value)
    }
}

/// The body of [`echo_header`].
pub(crate) fn echo_body(status: u16, value: &str) -> ResponseTemplate {
    use base64::Engine as _;
    ResponseTemplate::new(status).set_body_json(serde_json::json!({
        "error": { "code": base64::engine::general_purpose::STANDARD.encode(value), "message": crate::wire::encode(value) },
        "error_description": format!("header was {value}"),
        "message": format!("bad header {value}"),
        "Message": value.bytes().map(|b| format!("\\u{b:04x}")).collect::<String>(),
    }))
}

/// Gets a token under a tracing capture and fails if any form of `secret` shows in the
/// error's `Display` (plain and alternate), `Debug` (plain and pretty), its chain of causes
/// or anything traced. Returns the error.
pub(crate) async fn assert_echo_not_leaked(h: &Harness, secret: &str) -> Error {
    let capture = identity_core::test_util::Capture::new();
    let e = {
        let _guard = capture.enter();
        h.get().await.unwrap_err()
    };
    let mut texts = vec![
        e.to_string(),
        format!("{e:#}"),
        format!("{e:?}"),
        format!("{e:#?}"),
        identity_core::display_chain(&e),
        capture.text(),
    ];
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        texts.push(format!("{c} {c:#} {c:?} {c:#?}"));
        cause = c.source();
    }
    for text in &texts {
        for form in echoed_forms(secret) {
            assert!(!text.contains(&form), "{form} leaked: {text}");
        }
    }
    assert!(
        !capture.spans_named("get_token").is_empty(),
        "{}",
        capture.text()
    );
    e
}

/// Fails if the planted secret shows in the error's Display, Debug or cause chain.
pub(crate) fn assert_no_secret(e: &Error) {
    for text in [
        e.to_string(),
        format!("{e:?}"),
        identity_core::display_chain(e),
    ] {
        assert!(!text.contains(SECRET), "secret leaked: {text}");
        assert!(!text.contains("planted"), "planted value leaked: {text}");
    }
}

/// A local server answering every `method` request with `answer`, expecting `times`
/// requests (checked when the server drops).
pub(crate) async fn answering(
    method: &str,
    answer: impl wiremock::Respond + 'static,
    times: u64,
) -> MockServer {
    let server = MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method(method))
        .respond_with(answer)
        .expect(times)
        .mount(&server)
        .await;
    server
}

/// A server refusing the one request it expects with App Service's 401 for a wrong
/// identity header.
pub(crate) async fn refusing_the_identity_header() -> MockServer {
    let refusal =
        ResponseTemplate::new(401).set_body_string(r#"{"message":"invalid identity header"}"#);
    answering("GET", refusal, 1).await
}

/// A local server answering the first `failures` GET requests with `failure`, then one
/// request with a token (each count checked when the server drops).
pub(crate) async fn failing_then_token(
    failure: impl wiremock::Respond + 'static,
    failures: u64,
) -> MockServer {
    let server = MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .respond_with(failure)
        .up_to_n_times(failures)
        .expect(failures)
        .mount(&server)
        .await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .respond_with(token_on(CLOCK_NOW + 3600))
        .expect(1)
        .mount(&server)
        .await;
    server
}

/// The per-source test shape "user-assigned selectors use the documented parameter names":
/// each selector goes out under the source's name for it (`names`: client id, object id,
/// resource id) on `path`, with `header` set.
pub(crate) async fn assert_selector_names(
    env: impl Fn(&MockServer) -> Env,
    path: &str,
    names: [&str; 3],
    header: (&str, &str),
) {
    use wiremock::matchers;
    for (id, name, value) in [
        (ManagedIdentityId::ClientId("CID".into()), names[0], "CID"),
        (ManagedIdentityId::ObjectId("OID".into()), names[1], "OID"),
        (ManagedIdentityId::ResourceId(UAMI.into()), names[2], UAMI),
    ] {
        let server = MockServer::start().await;
        wiremock::Mock::given(matchers::method("GET"))
            .and(matchers::path(path))
            .and(matchers::query_param(name, value))
            .and(matchers::header(header.0, header.1))
            .respond_with(token_on(CLOCK_NOW + 3600))
            .expect(1)
            .mount(&server)
            .await;
        harness(env(&server), id).get().await.unwrap();
    }
}

/// The per-source test shape "an echoed secret header is removed from errors and logs": the
/// endpoint answers 400 quoting the request's `header` (see [`echo_header`]); nothing shows
/// the planted secret, and the quoted message keeps its text with the secret masked.
pub(crate) async fn assert_echoed_header_removed(
    env: impl Fn(&MockServer) -> Env,
    header: &'static str,
) -> Error {
    let server = answering("GET", echo_header(header), 1).await;
    let h = harness(env(&server), ManagedIdentityId::SystemAssigned);
    let e = assert_echo_not_leaked(&h, SECRET).await;
    assert!(e.to_string().contains("bad header ***"), "{e}");
    e
}

/// The per-source test shape "user-assigned identities are refused at build": on a host
/// (`env`) that has only one identity, every user-assigned selector fails `build` with a
/// configuration error naming the source.
pub(crate) fn assert_user_assigned_refused_at_build(env: &Env, source: &str) {
    for id in [
        ManagedIdentityId::ClientId("X".into()),
        ManagedIdentityId::ObjectId("X".into()),
        ManagedIdentityId::ResourceId("X".into()),
    ] {
        let e = ManagedIdentityCredential::builder()
            .runtime(Runtime::with_env(env.clone()))
            .identity(id)
            .build()
            .unwrap_err();
        assert_eq!(e.kind(), identity_core::ErrorKind::InvalidConfiguration);
        let text = e.to_string();
        assert!(
            text.contains(source) && text.contains("user-assigned"),
            "{text}"
        );
    }
}
