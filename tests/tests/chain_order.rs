//! `DefaultAzureCredential` against emulated hosts: one test per winning member, each checking
//! `selected_credential()` and exactly what the emulated endpoint or tool saw.
//!
//! Every test that leaves managed identity in the chain either sets a variable that selects a
//! non-IMDS source or points IMDS at loopback, so nothing reaches 169.254.169.254.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions fail loudly on purpose"
)]

use identity_chain::{DefaultAzureCredential, Env, TokenCredential, TokenRequestOptions};
use identity_tests::{
    ARM_RESOURCE, ARM_SCOPE, FAR_EXPIRY, FakeTools, TlsTokenServer, VAULT_SCOPE, bounded,
    chain_over, form, form_field, no_wait_runtime, test_ca_client,
};
use wiremock::matchers::{body_string, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const IDENTITY_HEADER: &str = "planted-identity-header";
const MSI_SECRET: &str = "planted-msi-secret";

/// Matches requests that do not carry the header `name` (the IMDS probe).
struct HeaderMissing(&'static str);

impl wiremock::Match for HeaderMissing {
    fn matches(&self, request: &Request) -> bool {
        !request.headers.contains_key(self.0)
    }
}

fn msi_body(token: &str) -> serde_json::Value {
    serde_json::json!({
        "access_token": token,
        "expires_on": FAR_EXPIRY.to_string(),
        "expires_in": "3600",
        "resource": ARM_RESOURCE,
        "token_type": "Bearer",
    })
}

/// A chain over `env` with a recording sleeper, so retries (if any) never wait, and IMDS
/// (used only when no other managed-identity source is configured) on a refused loopback port.
fn chain(env: Env) -> identity_chain::DefaultAzureCredentialBuilder {
    chain_over(no_wait_runtime(env))
}

async fn token(credential: &DefaultAzureCredential, scope: &str) -> String {
    bounded(credential.get_token(&[scope], &TokenRequestOptions::default()))
        .await
        .unwrap()
        .token
        .secret()
        .to_owned()
}

#[tokio::test]
async fn app_service_wins_with_identity_endpoint_and_header() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/msi/token"))
        .and(query_param("api-version", "2019-08-01"))
        .and(query_param("resource", ARM_RESOURCE))
        .and(header("X-IDENTITY-HEADER", IDENTITY_HEADER))
        .respond_with(ResponseTemplate::new(200).set_body_json(msi_body("APP-SERVICE-TOKEN")))
        .expect(1)
        .mount(&server)
        .await;
    let env = Env::from_pairs([
        ("IDENTITY_ENDPOINT", format!("{}/msi/token", server.uri())),
        ("IDENTITY_HEADER", IDENTITY_HEADER.to_owned()),
    ]);
    let credential = chain(env).build().unwrap();
    assert_eq!(credential.selected_credential(), None);
    assert_eq!(token(&credential, ARM_SCOPE).await, "APP-SERVICE-TOKEN");
    assert_eq!(
        credential.selected_credential(),
        Some("ManagedIdentityCredential")
    );
    let seen = server.received_requests().await.unwrap();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].url.query_pairs().all(|(k, _)| k != "client_id"));
}

#[tokio::test]
async fn azure_ml_wins_with_msi_endpoint_and_secret() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/ml/token"))
        .and(query_param("api-version", "2017-09-01"))
        .and(query_param("resource", ARM_RESOURCE))
        .and(header("secret", MSI_SECRET))
        .respond_with(ResponseTemplate::new(200).set_body_json(msi_body("AZURE-ML-TOKEN")))
        .expect(1)
        .mount(&server)
        .await;
    let env = Env::from_pairs([
        ("MSI_ENDPOINT", format!("{}/ml/token", server.uri())),
        ("MSI_SECRET", MSI_SECRET.to_owned()),
    ]);
    let credential = chain(env).build().unwrap();
    assert_eq!(token(&credential, ARM_SCOPE).await, "AZURE-ML-TOKEN");
    assert_eq!(
        credential.selected_credential(),
        Some("ManagedIdentityCredential")
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn cloud_shell_wins_with_msi_endpoint_alone_and_posts_a_form() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .and(header("Metadata", "true"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string(format!(
            "resource={}",
            form_urlencode(ARM_RESOURCE)
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(msi_body("CLOUD-SHELL-TOKEN")))
        .expect(1)
        .mount(&server)
        .await;
    let env = Env::from_pairs([("MSI_ENDPOINT", format!("{}/oauth2/token", server.uri()))]);
    let credential = chain(env).build().unwrap();
    assert_eq!(token(&credential, ARM_SCOPE).await, "CLOUD-SHELL-TOKEN");
    assert_eq!(
        credential.selected_credential(),
        Some("ManagedIdentityCredential")
    );
    let seen = server.received_requests().await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        form(&seen[0].body),
        [("resource".to_owned(), ARM_RESOURCE.to_owned())]
    );
}

fn form_urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn azure_arc_wins_after_the_key_file_challenge() {
    let server = MockServer::start().await;
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("challenge.key");
    std::fs::write(&key_file, "planted-arc-key").unwrap();
    Mock::given(method("GET"))
        .and(path("/metadata/identity/oauth2/token"))
        .and(query_param("api-version", "2020-06-01"))
        .and(query_param("resource", ARM_RESOURCE))
        .and(header("Metadata", "true"))
        .and(header("Authorization", "Basic planted-arc-key"))
        .respond_with(ResponseTemplate::new(200).set_body_json(msi_body("ARC-TOKEN")))
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/metadata/identity/oauth2/token"))
        .and(HeaderMissing("Authorization"))
        .respond_with(ResponseTemplate::new(401).insert_header(
            "WWW-Authenticate",
            format!("Basic realm={}", key_file.display()).as_str(),
        ))
        .with_priority(2)
        .expect(1)
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
    assert_eq!(token(&credential, ARM_SCOPE).await, "ARC-TOKEN");
    assert_eq!(
        credential.selected_credential(),
        Some("ManagedIdentityCredential")
    );
    let seen = server.received_requests().await.unwrap();
    assert_eq!(seen.len(), 2);
    assert!(!seen[0].headers.contains_key("Authorization"));
    assert!(seen[1].headers.contains_key("Authorization"));
}

#[tokio::test]
async fn imds_wins_after_one_probe_and_later_calls_do_not_probe() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/metadata/identity/oauth2/token"))
        .and(query_param("api-version", "2018-02-01"))
        .and(HeaderMissing("Metadata"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": "invalid_request",
            "error_description": "Required metadata header not specified",
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/metadata/identity/oauth2/token"))
        .and(query_param("api-version", "2018-02-01"))
        .and(header("Metadata", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(msi_body("IMDS-TOKEN")))
        .expect(2)
        .mount(&server)
        .await;
    let credential = chain(Env::empty())
        .imds_endpoint(format!("{}/metadata/identity/oauth2/token", server.uri()))
        .build()
        .unwrap();
    assert_eq!(token(&credential, ARM_SCOPE).await, "IMDS-TOKEN");
    assert_eq!(
        credential.selected_credential(),
        Some("ManagedIdentityCredential")
    );
    assert_eq!(token(&credential, VAULT_SCOPE).await, "IMDS-TOKEN");

    let seen = server.received_requests().await.unwrap();
    assert_eq!(seen.len(), 3);
    assert!(!seen[0].headers.contains_key("Metadata"), "the probe");
    assert!(seen[1].headers.contains_key("Metadata"));
    assert!(seen[2].headers.contains_key("Metadata"), "no second probe");
    let resource = |i: usize| {
        seen[i]
            .url
            .query_pairs()
            .find(|(k, _)| k == "resource")
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(resource(0).as_deref(), Some(ARM_RESOURCE));
    assert_eq!(resource(1).as_deref(), Some(ARM_RESOURCE));
    assert_eq!(resource(2).as_deref(), Some("https://vault.azure.net"));
}

#[tokio::test]
async fn imds_through_pod_identity_host_sends_no_probe() {
    let server = MockServer::start().await;
    Mock::given(HeaderMissing("Metadata"))
        .respond_with(ResponseTemplate::new(400))
        .expect(0)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/metadata/identity/oauth2/token"))
        .and(query_param("api-version", "2018-02-01"))
        .and(query_param("resource", ARM_RESOURCE))
        .and(header("Metadata", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(msi_body("POD-IDENTITY-TOKEN")))
        .expect(1)
        .mount(&server)
        .await;
    let env = Env::from_pairs([(
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        format!("{}/", server.uri()),
    )]);
    // No `imds_endpoint` here: it would replace the pod identity host.
    let credential = DefaultAzureCredential::builder()
        .runtime(no_wait_runtime(env))
        .build()
        .unwrap();
    assert_eq!(token(&credential, ARM_SCOPE).await, "POD-IDENTITY-TOKEN");
    assert_eq!(
        credential.selected_credential(),
        Some("ManagedIdentityCredential")
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn environment_credential_wins_with_a_client_secret() {
    let server = TlsTokenServer::start("ENV-SECRET-TOKEN").await;
    let env = Env::from_pairs([
        ("AZURE_TENANT_ID", "tenant-one".to_owned()),
        ("AZURE_CLIENT_ID", "client-one".to_owned()),
        ("AZURE_CLIENT_SECRET", "planted-client-secret".to_owned()),
        ("AZURE_AUTHORITY_HOST", server.authority()),
    ]);
    let credential = chain_over(no_wait_runtime(env).http_client(test_ca_client()))
        .build()
        .unwrap();
    assert_eq!(token(&credential, ARM_SCOPE).await, "ENV-SECRET-TOKEN");
    assert_eq!(
        credential.selected_credential(),
        Some("EnvironmentCredential")
    );
    let seen = server.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].line, "POST /tenant-one/oauth2/v2.0/token HTTP/1.1");
    let body = &seen[0].body;
    assert_eq!(
        form_field(body, "grant_type").as_deref(),
        Some("client_credentials")
    );
    assert_eq!(form_field(body, "client_id").as_deref(), Some("client-one"));
    assert_eq!(
        form_field(body, "client_secret").as_deref(),
        Some("planted-client-secret")
    );
    assert_eq!(form_field(body, "scope").as_deref(), Some(ARM_SCOPE));
}

/// A PKCS#12 file in `AZURE_CLIENT_CERTIFICATE_PATH` works through the facade alone (its
/// `pkcs12` feature), inside `DefaultAzureCredential`.
#[tokio::test]
async fn environment_credential_wins_with_a_pkcs12_certificate() {
    let server = TlsTokenServer::start("ENV-PFX-TOKEN").await;
    let pfx = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/identity-entra/tests/data/client.pfx"
    );
    let env = Env::from_pairs([
        ("AZURE_TENANT_ID", "tenant-pfx".to_owned()),
        ("AZURE_CLIENT_ID", "client-pfx".to_owned()),
        ("AZURE_CLIENT_CERTIFICATE_PATH", pfx.to_owned()),
        (
            "AZURE_CLIENT_CERTIFICATE_PASSWORD",
            "planted-pfx-password".to_owned(),
        ),
        ("AZURE_AUTHORITY_HOST", server.authority()),
    ]);
    let credential = chain_over(no_wait_runtime(env).http_client(test_ca_client()))
        .build()
        .unwrap();
    assert_eq!(token(&credential, ARM_SCOPE).await, "ENV-PFX-TOKEN");
    assert_eq!(
        credential.selected_credential(),
        Some("EnvironmentCredential")
    );
    let seen = server.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        form_field(&seen[0].body, "client_assertion_type").as_deref(),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
}

#[tokio::test]
async fn workload_identity_wins_with_a_federated_token_file() {
    let server = TlsTokenServer::start("WORKLOAD-TOKEN").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "planted-federated-assertion").unwrap();
    let env = Env::from_pairs([
        ("AZURE_TENANT_ID", "tenant-two".to_owned()),
        ("AZURE_CLIENT_ID", "client-two".to_owned()),
        ("AZURE_FEDERATED_TOKEN_FILE", file.display().to_string()),
        ("AZURE_AUTHORITY_HOST", server.authority()),
    ]);
    let credential = chain_over(no_wait_runtime(env).http_client(test_ca_client()))
        .build()
        .unwrap();
    assert_eq!(token(&credential, ARM_SCOPE).await, "WORKLOAD-TOKEN");
    assert_eq!(
        credential.selected_credential(),
        Some("WorkloadIdentityCredential")
    );
    let seen = server.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].line, "POST /tenant-two/oauth2/v2.0/token HTTP/1.1");
    let body = &seen[0].body;
    assert_eq!(
        form_field(body, "grant_type").as_deref(),
        Some("client_credentials")
    );
    assert_eq!(form_field(body, "client_id").as_deref(), Some("client-two"));
    assert_eq!(
        form_field(body, "client_assertion").as_deref(),
        Some("planted-federated-assertion")
    );
    assert_eq!(
        form_field(body, "client_assertion_type").as_deref(),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    assert_eq!(form_field(body, "scope").as_deref(), Some(ARM_SCOPE));
}

#[tokio::test]
async fn azure_cli_wins_when_the_developer_tools_are_selected() {
    let tools = FakeTools::new();
    tools.az_ok("AZ-TOKEN");
    tools.pwsh_ok("PWSH-TOKEN");
    let env = tools.env().with("AZURE_TOKEN_CREDENTIALS", "dev");
    let credential = chain(env).build().unwrap();
    assert_eq!(
        credential.members(),
        [
            "AzureCliCredential",
            "AzurePowerShellCredential",
            "AzureDeveloperCliCredential"
        ]
    );
    assert_eq!(token(&credential, ARM_SCOPE).await, "AZ-TOKEN");
    assert_eq!(credential.selected_credential(), Some("AzureCliCredential"));
    assert_eq!(
        tools.argv("az"),
        [
            "account",
            "get-access-token",
            "--output",
            "json",
            "--resource",
            ARM_RESOURCE
        ]
    );
    assert_eq!(tools.runs("az"), 1);
    assert_eq!(tools.runs("pwsh"), 0);
}

#[tokio::test]
async fn azure_powershell_wins_when_earlier_members_are_excluded() {
    let tools = FakeTools::new();
    tools.az_ok("AZ-TOKEN");
    tools.pwsh_ok("PWSH-TOKEN");
    let credential = chain(tools.env())
        .exclude_environment_credential(true)
        .exclude_workload_identity_credential(true)
        .exclude_managed_identity_credential(true)
        .exclude_cli_credential(true)
        .build()
        .unwrap();
    assert_eq!(
        credential.members(),
        ["AzurePowerShellCredential", "AzureDeveloperCliCredential"]
    );
    assert_eq!(token(&credential, ARM_SCOPE).await, "PWSH-TOKEN");
    assert_eq!(
        credential.selected_credential(),
        Some("AzurePowerShellCredential")
    );
    let argv = tools.argv("pwsh");
    assert_eq!(
        argv[..3],
        ["-NoProfile", "-NonInteractive", "-EncodedCommand"]
    );
    assert_eq!(argv.len(), 4);
    assert_eq!(tools.runs("az"), 0);
}

#[tokio::test]
async fn azure_developer_cli_wins_when_az_and_pwsh_are_not_installed() {
    let tools = FakeTools::new();
    tools.azd_ok("AZD-TOKEN");
    let credential = chain(tools.env()).build().unwrap();
    assert_eq!(token(&credential, ARM_SCOPE).await, "AZD-TOKEN");
    assert_eq!(
        credential.selected_credential(),
        Some("AzureDeveloperCliCredential")
    );
    assert_eq!(
        tools.argv("azd"),
        [
            "auth",
            "token",
            "--output",
            "json",
            "--no-prompt",
            "--scope",
            ARM_SCOPE
        ]
    );
    assert_eq!(tools.runs("azd"), 1);
}

#[tokio::test]
async fn identity_endpoint_alone_is_no_source_and_sends_nothing() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_json(msi_body("UNEXPECTED")))
        .expect(0)
        .mount(&server)
        .await;
    let tools = FakeTools::new();
    tools.az_ok("AZ-TOKEN");
    let env = tools
        .env()
        .with("IDENTITY_ENDPOINT", format!("{}/msi/token", server.uri()));
    let credential = chain(env).build().unwrap();
    assert_eq!(token(&credential, ARM_SCOPE).await, "AZ-TOKEN");
    assert_eq!(credential.selected_credential(), Some("AzureCliCredential"));
}

#[tokio::test]
async fn app_service_wins_over_arc_when_both_are_configured() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/msi/token"))
        .and(query_param("api-version", "2019-08-01"))
        .and(header("X-IDENTITY-HEADER", IDENTITY_HEADER))
        .respond_with(ResponseTemplate::new(200).set_body_json(msi_body("APP-SERVICE-TOKEN")))
        .expect(1)
        .mount(&server)
        .await;
    let env = Env::from_pairs([
        ("IDENTITY_ENDPOINT", format!("{}/msi/token", server.uri())),
        ("IDENTITY_HEADER", IDENTITY_HEADER.to_owned()),
        ("IMDS_ENDPOINT", server.uri()),
    ]);
    let credential = chain(env).build().unwrap();
    assert_eq!(token(&credential, ARM_SCOPE).await, "APP-SERVICE-TOKEN");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn cloud_shell_wins_over_an_incomplete_workload_identity() {
    // MSI_ENDPOINT beats the workload-identity variables in managed identity's detection, and
    // without AZURE_CLIENT_ID the workload identity member is merely unavailable.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .and(header("Metadata", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(msi_body("CLOUD-SHELL-TOKEN")))
        .expect(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "planted-federated-assertion").unwrap();
    let env = Env::from_pairs([
        ("MSI_ENDPOINT", format!("{}/oauth2/token", server.uri())),
        ("AZURE_AUTHORITY_HOST", "https://127.0.0.1:9".to_owned()),
        ("AZURE_TENANT_ID", "tenant".to_owned()),
        ("AZURE_FEDERATED_TOKEN_FILE", file.display().to_string()),
    ]);
    let credential = chain(env).build().unwrap();
    assert_eq!(token(&credential, ARM_SCOPE).await, "CLOUD-SHELL-TOKEN");
    assert_eq!(
        credential.selected_credential(),
        Some("ManagedIdentityCredential")
    );
}
