//! The user credentials through the `identity_chain` facade only: device code sign-in and
//! silent refresh, the on-behalf-of cache partition under concurrency, and the interactive
//! member of `DefaultAzureCredential`, against wiremock on 127.0.0.1.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions fail loudly on purpose"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use identity_chain::{
    AuthenticationRecord, DefaultAzureCredential, DeviceCodeCredential, Env,
    InteractiveBrowserCredential, Keyring, OnBehalfOfCredential, Runtime, Secret,
    TokenCachePersistenceOptions, TokenCredential, TokenRequestOptions,
};
use identity_core::test_util::{FakeClock, RecordingSleeper};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const SCOPE: &str = "https://vault.azure.net/.default";

fn b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn user_token_body(access: &str, refresh: &str) -> serde_json::Value {
    let claims = r#"{"aud":"04b07795-8ddb-461a-bbee-02f9e1bf7b46","tid":"tenant1","preferred_username":"dev@contoso.com","sub":"s"}"#;
    serde_json::json!({
        "token_type": "Bearer",
        "access_token": access,
        "expires_in": 3600,
        "refresh_token": refresh,
        "id_token": format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(claims)),
        "client_info": b64(r#"{"uid":"user1","utid":"tenant1"}"#),
    })
}

#[tokio::test]
async fn device_code_signs_in_once_then_a_second_instance_is_silent_with_the_record_and_file() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/organizations/oauth2/v2.0/devicecode"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "device_code": "planted-device-code",
            "user_code": "WXYZ-1234",
            "verification_uri": "https://microsoft.com/devicelogin",
            "expires_in": 900,
            "interval": 5,
            "message": "enter WXYZ-1234",
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("device_code=planted-device-code"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            serde_json::json!({"error": "authorization_pending", "error_description": "pending"}),
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("device_code=planted-device-code"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(user_token_body("device-access", "planted-refresh-1")),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("refresh_token=planted-refresh-1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(user_token_body("silent-access", "planted-refresh-2")),
        )
        .expect(1)
        .mount(&server)
        .await;

    let home = tempfile::tempdir().unwrap();
    let persistence = TokenCachePersistenceOptions::new()
        .name("facade")
        .directory(home.path())
        .keyring(Arc::new(TestKeyring::default()));
    let clock = FakeClock::at_2030();
    let prompts = Arc::new(Mutex::new(Vec::new()));
    let sink = prompts.clone();
    let first = DeviceCodeCredential::builder()
        .authority_host(server.uri())
        .allow_insecure_loopback_authority(true)
        .runtime(
            identity_core::Runtime::with_env(Env::empty())
                .clock(clock.shared())
                .sleeper(RecordingSleeper::advancing(clock.clone()).shared()),
        )
        .token_cache_persistence(persistence.clone())
        .prompt(move |info| sink.lock().unwrap().push(info.user_code.clone()))
        .build()
        .unwrap();
    let record = first.authenticate(&[SCOPE]).await.unwrap();
    assert_eq!(prompts.lock().unwrap().as_slice(), ["WXYZ-1234"]);
    assert_eq!(record.home_account_id(), "user1.tenant1");
    let cached = first
        .get_token(&[SCOPE], &TokenRequestOptions::default())
        .await
        .unwrap();
    assert_eq!(cached.token.secret(), "device-access");

    let record = AuthenticationRecord::deserialize(&record.serialize()).unwrap();
    let second = DeviceCodeCredential::builder()
        .authority_host(server.uri())
        .allow_insecure_loopback_authority(true)
        .runtime(identity_core::Runtime::with_env(Env::empty()).clock(clock.shared()))
        .authentication_record(record)
        .token_cache_persistence(persistence)
        .disable_automatic_authentication(true)
        .build()
        .unwrap();
    let silent = second
        .get_token(&[SCOPE], &TokenRequestOptions::default())
        .await
        .unwrap();
    assert_eq!(silent.token.secret(), "silent-access");
    let text = format!("{first:?} {second:?}");
    assert!(!text.contains("planted"), "{text}");
    // The refresh token is on disk only sealed.
    let file = std::fs::read_to_string(home.path().join("facade.json")).unwrap();
    assert!(!file.contains("planted-refresh"), "{file}");
}

/// A keyring in memory, shared by the two credentials as the platform's would be by two
/// processes.
#[derive(Debug, Default)]
struct TestKeyring(Mutex<std::collections::HashMap<String, String>>);

impl Keyring for TestKeyring {
    fn get(&self, service: &str, account: &str) -> std::io::Result<Option<Secret>> {
        let map = self.0.lock().unwrap();
        Ok(map
            .get(&format!("{service}/{account}"))
            .map(|s| Secret::new(s.clone())))
    }

    fn set(&self, service: &str, account: &str, secret: &Secret) -> std::io::Result<()> {
        self.0
            .lock()
            .unwrap()
            .insert(format!("{service}/{account}"), secret.secret().to_owned());
        Ok(())
    }
}

/// Answers an on-behalf-of request with a token naming the assertion's user.
struct PerUser;

impl Respond for PerUser {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let form: std::collections::HashMap<String, String> =
            form_urlencoded::parse(&request.body).into_owned().collect();
        let user = form["assertion"]
            .trim_start_matches("assertion-of-")
            .to_owned();
        ResponseTemplate::new(200)
            .set_delay(Duration::from_millis(20))
            .set_body_json(serde_json::json!({
                "token_type": "Bearer",
                "access_token": format!("token-for-{user}"),
                "expires_in": 3600,
            }))
    }
}

/// An on-behalf-of application whose authority is `server`.
fn on_behalf_of_app(server: &MockServer) -> OnBehalfOfCredential {
    OnBehalfOfCredential::builder()
        .tenant_id("t")
        .client_id("api")
        .client_secret("planted-api-secret")
        .user_assertion("assertion-of-user0")
        .authority_host(server.uri())
        .allow_insecure_loopback_authority(true)
        .runtime(identity_core::Runtime::with_env(Env::empty()))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_behalf_of_tokens_never_cross_users_under_concurrency() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("requested_token_use=on_behalf_of"))
        .respond_with(PerUser)
        .mount(&server)
        .await;
    let app = on_behalf_of_app(&server);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let user = format!("user{}", i % 10);
        let credential = app.for_user(format!("assertion-of-{user}")).unwrap();
        tasks.push(tokio::spawn(async move {
            let token = credential
                .get_token(&[SCOPE], &TokenRequestOptions::default())
                .await
                .unwrap();
            (user, token.token.secret().to_owned())
        }));
    }
    for task in tasks {
        let (user, token) = tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(token, format!("token-for-{user}"));
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 10);
}

#[tokio::test]
async fn a_record_from_another_sdk_and_a_blank_user_assertion_are_checked_before_any_request() {
    // The record as written with an authority URL, and with a byte order mark.
    let json = "\u{feff}{\"authority\":\"https://login.microsoftonline.com/\",\"clientId\":\"04b07795-8ddb-461a-bbee-02f9e1bf7b46\",\"homeAccountId\":\"u.t\",\"tenantId\":\"t\",\"username\":\"a@b\",\"version\":\"1.0\"}";
    let record = AuthenticationRecord::deserialize(json).unwrap();
    assert_eq!(record.authority(), "login.microsoftonline.com");
    let err = AuthenticationRecord::deserialize(&json.replace("\"tenantId\"", "\"TenantId\""))
        .unwrap_err();
    assert!(err.to_string().contains("missing `tenantId`"), "{err}");
    let server = MockServer::start().await;
    let app = on_behalf_of_app(&server);
    for bad in ["   ", "Bearer eyJabc\n"] {
        let err = app.for_user(bad).unwrap_err();
        assert_eq!(err.kind(), identity_chain::ErrorKind::InvalidArgument);
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[test]
fn the_interactive_member_is_opt_in_and_the_user_types_are_send_sync() {
    fn check<T: Send + Sync + std::fmt::Debug>() {}
    check::<InteractiveBrowserCredential>();
    check::<DeviceCodeCredential>();
    check::<OnBehalfOfCredential>();
    check::<AuthenticationRecord>();
    let off = DefaultAzureCredential::builder()
        .runtime(Runtime::with_env(Env::empty()))
        .build()
        .unwrap();
    assert!(!off.members().contains(&"InteractiveBrowserCredential"));
    let on = DefaultAzureCredential::builder()
        .runtime(Runtime::with_env(Env::empty()))
        .exclude_interactive_browser_credential(false)
        .build()
        .unwrap();
    assert_eq!(on.members().last(), Some(&"InteractiveBrowserCredential"));
}
