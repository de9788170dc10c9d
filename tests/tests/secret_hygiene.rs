//! Planted secrets never leak: for each kind of credential, success and failure run through
//! `DefaultAzureCredential` with every `tracing` event captured at TRACE level, and no
//! planted secret (identity header, MSI secret, client secret, federated token, returned
//! tokens) may appear in an error's `Display`/`Debug`, any credential's or token's `Debug`, or
//! the captured logs.
//!
//! Each test installs its subscriber for its own thread only (`set_default`) on a
//! current-thread runtime, so spawned tasks are captured too and tests stay parallel.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions fail loudly on purpose"
)]

use identity_chain::{
    AccessToken, AzureCliCredential, DefaultAzureCredential, DefaultAzureCredentialBuilder, Env,
    Error, TokenCredential, TokenRequestOptions, display_chain,
};
use identity_tests::{
    ARM_SCOPE, FAR_EXPIRY, FakeTools, LogBuffer, TlsTokenServer, VAULT_SCOPE, assert_no_secret,
    bounded, capture_logs, chain_over, no_wait_runtime, refused_endpoint, test_ca_client,
};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const IDENTITY_HEADER: &str = "planted-identity-header-5c1e";
const MSI_SECRET: &str = "planted-msi-secret-77ab";
const CLIENT_SECRET: &str = "planted-client-secret-9f3d";
const FEDERATED: &str = "planted-federated-assertion-e4a2";
const ARC_KEY: &str = "planted-arc-key-file-0b7c";
const TOKEN: &str = "eyJ0eXAiOiJKV1QifQ.planted-access-token.c2ln";

/// Every secret a test plants.
const SECRETS: &[&str] = &[
    IDENTITY_HEADER,
    MSI_SECRET,
    CLIENT_SECRET,
    FEDERATED,
    ARC_KEY,
    TOKEN,
    "planted-access-token",
];

/// A chain over `env` that never waits on a retry and whose IMDS, if it is the detected
/// managed-identity source, is a refused loopback port.
fn chain(env: Env) -> DefaultAzureCredentialBuilder {
    chain_over(no_wait_runtime(env))
}

async fn get(credential: &dyn TokenCredential, scope: &str) -> Result<AccessToken, Error> {
    bounded(credential.get_token(&[scope], &TokenRequestOptions::default())).await
}

/// Checks a result, the credential that produced it, and the logs so far.
fn assert_clean(
    what: &str,
    result: &Result<AccessToken, Error>,
    credential: &dyn std::fmt::Debug,
    logs: &LogBuffer,
) {
    match result {
        Ok(token) => assert_no_secret(
            &format!("{what}: token Debug"),
            &format!("{token:?}"),
            SECRETS,
        ),
        Err(error) => {
            assert_no_secret(
                &format!("{what}: error Display"),
                &error.to_string(),
                SECRETS,
            );
            assert_no_secret(
                &format!("{what}: error Debug"),
                &format!("{error:?}"),
                SECRETS,
            );
            assert_no_secret(
                &format!("{what}: error chain"),
                &display_chain(error),
                SECRETS,
            );
        }
    }
    assert_no_secret(
        &format!("{what}: credential Debug"),
        &format!("{credential:?}"),
        SECRETS,
    );
    assert_no_secret(&format!("{what}: logs"), &logs.text(), SECRETS);
}

fn msi_token_body() -> serde_json::Value {
    serde_json::json!({
        "access_token": TOKEN,
        "expires_on": FAR_EXPIRY.to_string(),
        "resource": "https://management.azure.com",
        "token_type": "Bearer",
    })
}

/// A managed-identity host whose endpoint answers `status` (with a token on 200).
async fn managed_identity_host(status: u16) -> MockServer {
    let server = MockServer::start().await;
    let response = if status == 200 {
        ResponseTemplate::new(200).set_body_json(msi_token_body())
    } else {
        ResponseTemplate::new(status).set_body_json(serde_json::json!({
            "statusCode": status,
            "message": "the identity header is not valid",
        }))
    };
    Mock::given(method("GET"))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn app_service_secrets_stay_out_of_errors_debug_and_logs() {
    let (_guard, logs) = capture_logs();
    for status in [200, 401, 500] {
        let server = managed_identity_host(status).await;
        let env = Env::from_pairs([
            ("IDENTITY_ENDPOINT", format!("{}/msi/token", server.uri())),
            ("IDENTITY_HEADER", IDENTITY_HEADER.to_owned()),
        ]);
        let builder = chain(env);
        assert_no_secret("builder Debug", &format!("{builder:?}"), SECRETS);
        let credential = builder.build().unwrap();
        let result = get(&credential, ARM_SCOPE).await;
        assert_eq!(result.is_ok(), status == 200, "{result:?}");
        assert_clean(
            &format!("App Service {status}"),
            &result,
            &credential,
            &logs,
        );
    }
    // The capture works: the chain's own events are in it.
    assert!(
        logs.text().contains("credential produced a token"),
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn azure_ml_secrets_stay_out_of_errors_debug_and_logs() {
    let (_guard, logs) = capture_logs();
    for status in [200, 400, 401] {
        let server = managed_identity_host(status).await;
        let env = Env::from_pairs([
            ("MSI_ENDPOINT", format!("{}/ml/token", server.uri())),
            ("MSI_SECRET", MSI_SECRET.to_owned()),
        ]);
        let credential = chain(env).build().unwrap();
        let result = get(&credential, ARM_SCOPE).await;
        assert_eq!(result.is_ok(), status == 200, "{result:?}");
        assert_clean(&format!("Azure ML {status}"), &result, &credential, &logs);
    }
}

#[tokio::test]
async fn imds_tokens_stay_out_of_debug_and_logs() {
    let (_guard, logs) = capture_logs();
    let server = managed_identity_host(200).await;
    let credential = chain(Env::empty())
        .imds_endpoint(format!("{}/metadata/identity/oauth2/token", server.uri()))
        .build()
        .unwrap();
    let result = get(&credential, ARM_SCOPE).await;
    assert!(result.is_ok(), "{result:?}");
    assert_clean("IMDS", &result, &credential, &logs);
}

#[tokio::test]
async fn arc_key_file_contents_stay_out_of_errors_debug_and_logs() {
    let (_guard, logs) = capture_logs();
    for status in [200, 403] {
        let keys = tempfile::tempdir().unwrap();
        let key_file = keys.path().join("challenge.key");
        std::fs::write(&key_file, ARC_KEY).unwrap();
        let server = MockServer::start().await;
        let answer = if status == 200 {
            ResponseTemplate::new(200).set_body_json(msi_token_body())
        } else {
            ResponseTemplate::new(status)
                .set_body_json(serde_json::json!({"error": "forbidden", "error_description": "the key was refused"}))
        };
        Mock::given(wiremock::matchers::header_exists("Authorization"))
            .respond_with(answer)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(401).insert_header(
                "WWW-Authenticate",
                format!("Basic realm={}", key_file.display()).as_str(),
            ))
            .with_priority(2)
            .mount(&server)
            .await;
        let env = Env::from_pairs([
            (
                "IDENTITY_ENDPOINT",
                format!("{}/metadata/identity/oauth2/token", server.uri()),
            ),
            ("IMDS_ENDPOINT", server.uri()),
        ]);
        let dir = keys.path().to_owned();
        let credential = chain(env)
            .configure_managed_identity(move |b| b.arc_key_directory(dir.clone()))
            .build()
            .unwrap();
        let result = get(&credential, ARM_SCOPE).await;
        assert_eq!(result.is_ok(), status == 200, "{result:?}");
        assert_clean(&format!("Azure Arc {status}"), &result, &credential, &logs);
        let seen = server.received_requests().await.unwrap();
        assert!(seen.len() >= 2, "the challenge was answered");
    }
}

fn entra_error_body() -> String {
    serde_json::json!({
        "error": "invalid_client",
        "error_description": "AADSTS7000215: Invalid client secret provided.",
        "error_codes": [7_000_215],
    })
    .to_string()
}

#[tokio::test]
async fn client_secrets_stay_out_of_errors_debug_and_logs() {
    let (_guard, logs) = capture_logs();
    let ok = TlsTokenServer::start(TOKEN).await;
    let refused = TlsTokenServer::start_with(401, entra_error_body()).await;
    for (what, server) in [("success", &ok), ("401", &refused)] {
        let env = Env::from_pairs([
            ("AZURE_TENANT_ID", "tenant-one".to_owned()),
            ("AZURE_CLIENT_ID", "client-one".to_owned()),
            ("AZURE_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
            ("AZURE_AUTHORITY_HOST", server.authority()),
        ]);
        let builder = chain_over(no_wait_runtime(env).http_client(test_ca_client()));
        assert_no_secret("builder Debug", &format!("{builder:?}"), SECRETS);
        let credential = builder.build().unwrap();
        let result = get(&credential, ARM_SCOPE).await;
        assert_eq!(result.is_ok(), what == "success", "{result:?}");
        assert_clean(
            &format!("client secret {what}"),
            &result,
            &credential,
            &logs,
        );
        assert_eq!(server.requests().len(), 1);
    }
    // Nothing listening: a transport failure.
    let env = Env::from_pairs([
        ("AZURE_TENANT_ID", "tenant-one".to_owned()),
        ("AZURE_CLIENT_ID", "client-one".to_owned()),
        ("AZURE_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
        (
            "AZURE_AUTHORITY_HOST",
            refused_endpoint()
                .replace("http://", "https://")
                .replace("/metadata/identity/oauth2/token", ""),
        ),
    ]);
    let credential = chain_over(no_wait_runtime(env).http_client(test_ca_client()))
        .build()
        .unwrap();
    let result = get(&credential, ARM_SCOPE).await;
    assert!(result.is_err());
    assert_clean("client secret refused", &result, &credential, &logs);
}

#[tokio::test]
async fn federated_tokens_stay_out_of_errors_debug_and_logs() {
    let (_guard, logs) = capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, FEDERATED).unwrap();
    let ok = TlsTokenServer::start(TOKEN).await;
    let refused = TlsTokenServer::start_with(400, entra_error_body()).await;
    for (what, server) in [("success", &ok), ("400", &refused)] {
        let env = Env::from_pairs([
            ("AZURE_TENANT_ID", "tenant-two".to_owned()),
            ("AZURE_CLIENT_ID", "client-two".to_owned()),
            ("AZURE_FEDERATED_TOKEN_FILE", file.display().to_string()),
            ("AZURE_AUTHORITY_HOST", server.authority()),
        ]);
        let credential = chain_over(no_wait_runtime(env).http_client(test_ca_client()))
            .build()
            .unwrap();
        let result = get(&credential, ARM_SCOPE).await;
        assert_eq!(result.is_ok(), what == "success", "{result:?}");
        assert_clean(
            &format!("workload identity {what}"),
            &result,
            &credential,
            &logs,
        );
        assert_eq!(server.requests().len(), 1);
    }
}

/// A chain over the developer tools in `tools`, with managed identity kept out.
fn dev_chain(tools: &FakeTools) -> DefaultAzureCredential {
    chain(tools.env().with("AZURE_TOKEN_CREDENTIALS", "dev"))
        .build()
        .unwrap()
}

#[tokio::test]
async fn az_tokens_stay_out_of_errors_debug_and_logs() {
    let (_guard, logs) = capture_logs();
    let tools = FakeTools::new();
    tools.az_ok(TOKEN);
    let credential = dev_chain(&tools);
    let result = get(&credential, ARM_SCOPE).await;
    assert_eq!(result.as_ref().map(|t| t.token.secret()).ok(), Some(TOKEN));
    assert_clean("az success", &result, &credential, &logs);

    // Unparseable output holding the token, then a failure echoing it on stderr.
    for body in [
        format!("printf '%s' '{{\"accessToken\": \"{TOKEN}\", \"expires_on\": \"soon\"}}'"),
        format!("echo 'ERROR: AADSTS50076 {{\"accessToken\": \"{TOKEN}\"}} {TOKEN}' >&2\nexit 2"),
    ] {
        tools.script("az", &body);
        let credential = dev_chain(&tools);
        let result = get(&credential, VAULT_SCOPE).await;
        assert!(result.is_err(), "{result:?}");
        assert_clean("az failure in the chain", &result, &credential, &logs);
        let az = AzureCliCredential::builder()
            .runtime(identity_core::Runtime::with_env(tools.env()))
            .build()
            .unwrap();
        let result = get(&az, VAULT_SCOPE).await;
        assert!(result.is_err(), "{result:?}");
        assert_clean("az failure alone", &result, &az, &logs);
    }
}

#[tokio::test]
async fn pwsh_tokens_stay_out_of_errors_debug_and_logs() {
    let (_guard, logs) = capture_logs();
    let tools = FakeTools::new();
    tools.pwsh_ok(TOKEN);
    let credential = dev_chain(&tools);
    let result = get(&credential, ARM_SCOPE).await;
    assert_eq!(result.as_ref().map(|t| t.token.secret()).ok(), Some(TOKEN));
    assert_clean("pwsh success", &result, &credential, &logs);

    for body in [
        format!("printf '\\nazsdk%%%s%%%s\\n' '{TOKEN}' 'not-a-number'"),
        format!("echo 'something failed near {TOKEN}' >&2\nexit 1"),
    ] {
        tools.script("pwsh", &body);
        let credential = dev_chain(&tools);
        let result = get(&credential, VAULT_SCOPE).await;
        assert!(result.is_err(), "{result:?}");
        assert_clean("pwsh failure", &result, &credential, &logs);
    }
}

#[tokio::test]
async fn azd_tokens_stay_out_of_errors_debug_and_logs() {
    let (_guard, logs) = capture_logs();
    let tools = FakeTools::new();
    tools.azd_ok(TOKEN);
    let credential = dev_chain(&tools);
    let result = get(&credential, ARM_SCOPE).await;
    assert_eq!(result.as_ref().map(|t| t.token.secret()).ok(), Some(TOKEN));
    assert_clean("azd success", &result, &credential, &logs);

    for body in [
        format!("printf '%s' '{{\"token\": \"{TOKEN}\", \"expiresOn\": \"whenever\"}}'"),
        format!("echo '{{\"error\": \"failed\", \"token\": \"{TOKEN}\"}}' >&2\nexit 1"),
    ] {
        tools.script("azd", &body);
        let credential = dev_chain(&tools);
        let result = get(&credential, VAULT_SCOPE).await;
        assert!(result.is_err(), "{result:?}");
        assert_clean("azd failure", &result, &credential, &logs);
    }
}
