//! Shared test fixtures: keys and certificates from `tests/data`, a wiremock token endpoint,
//! and the secret-leak check.

use std::collections::BTreeMap;
use std::sync::Arc;

use identity_core::Env;
use identity_core::http::HttpClient;
use identity_core::test_util::{FakeClock, RecordingSleeper};

pub(crate) const CA_PEM: &str = include_str!("../tests/data/ca.pem");
pub(crate) const CLIENT_PEM: &str = include_str!("../tests/data/client.pem");
pub(crate) const CLIENT_PKCS1_PEM: &str = include_str!("../tests/data/client-pkcs1.pem");
pub(crate) const CLIENT_CHAIN_PEM: &str = include_str!("../tests/data/client-chain.pem");
/// `client.pem`'s key as encrypted PKCS#8 (`openssl pkcs8 -topk8 -v2 aes-256-cbc`), password
/// `planted-pem-password`, then the certificate.
pub(crate) const ENCRYPTED_PKCS8_PEM: &str =
    include_str!("../tests/data/client-encrypted-pkcs8.pem");
/// The same key in the traditional form (`openssl rsa -aes256 -traditional`).
pub(crate) const ENCRYPTED_TRADITIONAL_PEM: &str =
    include_str!("../tests/data/client-encrypted-traditional.pem");
/// The same key in the traditional form with 3DES (`openssl rsa -des3 -traditional`).
pub(crate) const ENCRYPTED_DES3_PEM: &str = include_str!("../tests/data/client-encrypted-des3.pem");
pub(crate) const EC_PEM: &str = include_str!("../tests/data/ec.pem");

/// Files a bounded read must refuse at once, each with a word its error names: a FIFO (a read
/// would block), a device (it never ends), and a regular file one byte over `limit`.
#[cfg(unix)]
pub(crate) fn unreadable_files(
    dir: &std::path::Path,
    limit: usize,
) -> [(std::path::PathBuf, &'static str); 3] {
    let fifo = dir.join("fifo");
    identity_core::test_util::make_fifo(&fifo);
    let huge = dir.join("huge");
    std::fs::write(&huge, vec![b'a'; limit + 1]).unwrap();
    [
        (fifo, "not a regular file"),
        (std::path::PathBuf::from("/dev/zero"), "not a regular file"),
        (huge, "larger than"),
    ]
}

/// A recognisable client secret.
pub(crate) const SECRET: &str = "planted-client-secret-Zq8";

/// Fails if `text` shows any planted secret or key material.
pub(crate) fn assert_no_key_material(text: &str) {
    for needle in ["planted", "MII"] {
        assert!(!text.contains(needle), "{needle} leaked in: {text}");
    }
    assert_no_private_key(text);
}

/// Fails if `text` shows a private key's armour or a line of `client.pem`'s key.
pub(crate) fn assert_no_private_key(text: &str) {
    assert!(
        !text.contains("PRIVATE KEY"),
        "PRIVATE KEY leaked in: {text}"
    );
    // A line of the private key's base64 body.
    let key_line = CLIENT_PEM
        .lines()
        .skip_while(|l| !l.contains("BEGIN PRIVATE KEY"))
        .nth(2)
        .unwrap();
    assert!(!text.contains(key_line), "key material leaked in: {text}");
}

/// An HTTP client with no proxies and no platform roots, trusting the test CA.
pub(crate) fn test_http_client() -> Arc<dyn HttpClient> {
    Arc::new(
        crate::ReqwestClient::builder()
            .env(Env::empty())
            .native_roots(false)
            .add_root_certificates_pem(CA_PEM.as_bytes())
            .unwrap()
            .build()
            .unwrap(),
    )
}

/// The clock and sleeper a test injects.
pub(crate) fn fake_time() -> (FakeClock, RecordingSleeper) {
    let clock = FakeClock::at_2030();
    (clock.clone(), RecordingSleeper::advancing(clock))
}

/// A runtime over `env` with the clock and sleeper of [`fake_time`] and [`test_http_client`].
pub(crate) fn fake_runtime(env: Env) -> identity_core::Runtime {
    let (clock, sleeper) = fake_time();
    identity_core::Runtime::with_env(env)
        .clock(clock.shared())
        .sleeper(sleeper.shared())
        .http_client(test_http_client())
}

/// The form fields of a recorded request, in a sorted map (a repeated field fails the test).
pub(crate) fn form_of(request: &wiremock::Request) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(&request.body) {
        assert!(
            map.insert(k.into_owned(), v.into_owned()).is_none(),
            "repeated form field"
        );
    }
    map
}

/// A token response body.
pub(crate) fn token_body(token: &str, expires_in: u64) -> serde_json::Value {
    serde_json::json!({ "token_type": "Bearer", "access_token": token, "expires_in": expires_in, "ext_expires_in": expires_in })
}

/// Changes part of a credential builder's runtime and keeps the rest (tests whose shared
/// builder set a runtime already).
pub(crate) trait UpdateRuntime: Sized {
    fn update_runtime(
        self,
        f: impl FnOnce(identity_core::Runtime) -> identity_core::Runtime,
    ) -> Self;
}

impl<S> UpdateRuntime for crate::credential::CredentialBuilder<S> {
    fn update_runtime(
        mut self,
        f: impl FnOnce(identity_core::Runtime) -> identity_core::Runtime,
    ) -> Self {
        self.common.runtime = f(std::mem::take(&mut self.common.runtime));
        self
    }
}

/// Points a credential builder at a loopback token endpoint, with [`fake_runtime`] over an
/// empty environment.
pub(crate) trait AtLoopback: Sized {
    fn at_loopback(self, authority: String) -> Self;
}

impl<S> AtLoopback for crate::credential::CredentialBuilder<S> {
    fn at_loopback(self, authority: String) -> Self {
        self.authority_host(authority)
            .allow_insecure_loopback_authority(true)
            .runtime(fake_runtime(Env::empty()))
    }
}

/// Tenant `t` and client `c` of a service principal at a loopback token endpoint (see
/// [`AtLoopback`]).
pub(crate) trait PrincipalAtLoopback: AtLoopback {
    fn principal_at_loopback(self, authority: String) -> Self;
}

impl<S: crate::credential::sealed::Ids> PrincipalAtLoopback
    for crate::credential::CredentialBuilder<S>
{
    fn principal_at_loopback(self, authority: String) -> Self {
        self.tenant_id("t").client_id("c").at_loopback(authority)
    }
}

/// A mock of tenant `tenant`'s token endpoint answering the access token `token`, valid for an
/// hour.
pub(crate) fn token_mock(tenant: &str, token: &str) -> wiremock::Mock {
    use wiremock::matchers::{method, path};
    wiremock::Mock::given(method("POST"))
        .and(path(format!("/{tenant}/oauth2/v2.0/token")))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(token_body(token, 3600)))
}

/// Answers every POST with the access token `AT`, valid for an hour.
fn any_token_post() -> wiremock::Mock {
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(token_body("AT", 3600)))
}

/// A server answering every POST with the access token `AT`.
pub(crate) async fn token_endpoint() -> wiremock::MockServer {
    let server = wiremock::MockServer::start().await;
    any_token_post().mount(&server).await;
    server
}

/// A server answering every POST with the access token `AT`, expecting `requests` of them.
pub(crate) async fn token_endpoint_expecting(requests: u64) -> wiremock::MockServer {
    let server = wiremock::MockServer::start().await;
    any_token_post().expect(requests).mount(&server).await;
    server
}

/// Mounts tenant `t`'s token endpoint on `server`, answering the access token `AT`.
pub(crate) async fn mount_token_endpoint(server: &wiremock::MockServer) {
    token_mock("t", "AT").mount(server).await;
}

/// Asks `credential` for a token for `scope` and expects a failure that shows no planted
/// value, in the error or in the credential's `Debug`; returns the error.
pub(crate) async fn planted_free_failure<C>(credential: &C, scope: &str) -> identity_core::Error
where
    C: identity_core::TokenCredential + std::fmt::Debug,
{
    let err = credential
        .get_token(&[scope], &identity_core::TokenRequestOptions::default())
        .await
        .unwrap_err();
    let text = format!("{err} {err:?} {credential:?}");
    assert!(!text.contains("planted"), "{text}");
    err
}

/// Asks `credential` for a token for `scope` twice, expecting `AT` from one federated-token
/// request and one exchange on `server` (the second call a cache hit); checks the exchange's
/// assertion type, client id `c` and scope, and returns its form.
pub(crate) async fn exchange_form<C>(
    credential: &C,
    server: &wiremock::MockServer,
    scope: &str,
) -> BTreeMap<String, String>
where
    C: identity_core::TokenCredential,
{
    let options = identity_core::TokenRequestOptions::default();
    let token = credential.get_token(&[scope], &options).await.unwrap();
    assert_eq!(token.token.secret(), "AT");
    credential.get_token(&[scope], &options).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    let form = form_of(&requests[1]);
    assert_eq!(form["client_assertion_type"], crate::client::JWT_BEARER);
    assert_eq!(form["client_id"], "c");
    assert_eq!(form["scope"], scope);
    form
}

/// Part `i` of a JWT (0: header, 1: claims), decoded as JSON.
pub(crate) fn jwt_segment(jwt: &str, i: usize) -> serde_json::Value {
    use base64::Engine as _;
    let part = jwt.split('.').nth(i).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Asks `credential` for a token for scope `s` and returns the header of the client
/// assertion of the last request `server` saw.
pub(crate) async fn sent_assertion_header<C>(
    credential: &C,
    server: &wiremock::MockServer,
) -> serde_json::Value
where
    C: identity_core::TokenCredential,
{
    credential
        .get_token(&["s"], &identity_core::TokenRequestOptions::default())
        .await
        .unwrap();
    let requests = server.received_requests().await.unwrap();
    jwt_segment(&form_of(requests.last().unwrap())["client_assertion"], 0)
}
