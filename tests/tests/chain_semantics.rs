//! How the chains treat their members' outcomes (docs/protocol.md §4.4, §8.2, §10 cases 44 and 45): an
//! unavailable member moves the chain on, any other failure stops it, developer tools'
//! failures are downgraded inside `DefaultAzureCredential`, the first success is remembered,
//! and a full miss is reported in one fixed layout.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions fail loudly on purpose"
)]

use std::sync::Arc;

use identity_chain::{
    AzureCliCredential, ChainError, ChainedTokenCredential, Env, ErrorKind,
    ManagedIdentityCredential, TokenCredential, TokenRequestOptions,
};
use identity_core::test_util::RecordingSleeper;
use identity_tests::{ARM_SCOPE, FakeTools, VAULT_SCOPE, bounded, chain_over, no_wait_runtime};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A chain over `env` that never waits on a retry and whose IMDS, if it is the detected
/// managed-identity source, is a refused loopback port.
fn chain(env: Env) -> identity_chain::DefaultAzureCredentialBuilder {
    chain_over(no_wait_runtime(env))
}

async fn get(
    credential: &dyn TokenCredential,
    scope: &str,
) -> Result<identity_chain::AccessToken, identity_chain::Error> {
    bounded(credential.get_token(&[scope], &TokenRequestOptions::default())).await
}

/// An `az` that leaves a marker file when it runs, then succeeds.
fn az_with_marker(tools: &FakeTools) {
    tools.script(
        "az",
        "echo marker > $D/az-marker\nprintf '%s' '{\"accessToken\":\"AZ-TOKEN\",\"expires_on\":4102444800}'",
    );
}

/// An App Service endpoint that answers one request with 400 and `message`, a fake `az` that
/// leaves a marker, and the environment naming both.
async fn app_service_answering_400(message: &str) -> (MockServer, FakeTools, Env) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(400).set_body_string(format!(
            r#"{{"statusCode":400,"message":"{message}","correlationId":"x"}}"#
        )))
        .expect(1)
        .mount(&server)
        .await;
    let tools = FakeTools::new();
    az_with_marker(&tools);
    let env = tools
        .env()
        .with("IDENTITY_ENDPOINT", format!("{}/msi/token", server.uri()))
        .with("IDENTITY_HEADER", "planted-identity-header");
    (server, tools, env)
}

#[tokio::test]
async fn a_managed_identity_failure_stops_the_chain_before_az() {
    let (_server, tools, env) =
        app_service_answering_400("The resource parameter is not valid.").await;
    let credential = chain(env).build().unwrap();
    let error = get(&credential, ARM_SCOPE).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::AuthenticationFailed, "{error}");
    assert!(tools.read("az-marker").is_none(), "az must not run");
    assert_eq!(credential.selected_credential(), None);
    let text = error.to_string();
    assert!(text.contains("\tManagedIdentityCredential: "), "{text}");
    assert!(!text.contains("AzureCliCredential"), "{text}");
    // The attempts are reachable as a ChainError; the stopping member is last.
    let chain_error = std::error::Error::source(&error)
        .and_then(|s| s.downcast_ref::<ChainError>())
        .expect("the chain's error carries its attempts");
    let names: Vec<_> = chain_error.attempts.iter().map(|a| a.credential).collect();
    assert_eq!(
        names,
        [
            "EnvironmentCredential",
            "WorkloadIdentityCredential",
            "ManagedIdentityCredential"
        ]
    );
}

/// App Service's 400 for an identity it cannot load (not assigned to the app; identity-sidecar
/// answers the same for IMDS's "Identity not found") is unavailable, as IMDS's 400 is: one
/// request, and the chain goes on to az.
#[tokio::test]
async fn an_app_service_identity_it_cannot_load_moves_the_chain_on_to_az() {
    let (_server, tools, env) =
        app_service_answering_400("Unable to load the proper Managed Identity.").await;
    let credential = chain(env).build().unwrap();
    let token = get(&credential, ARM_SCOPE).await.unwrap();
    assert_eq!(token.token.secret(), "AZ-TOKEN");
    assert!(tools.read("az-marker").is_some());
    assert_eq!(credential.selected_credential(), Some("AzureCliCredential"));
}

#[tokio::test]
async fn an_unavailable_managed_identity_moves_the_chain_on_to_az() {
    let tools = FakeTools::new();
    az_with_marker(&tools);
    // IDENTITY_ENDPOINT without IDENTITY_HEADER or IMDS_ENDPOINT: no managed identity source,
    // so the member is unavailable without sending anything.
    let env = tools
        .env()
        .with("IDENTITY_ENDPOINT", "http://127.0.0.1:9/unused");
    let credential = chain(env).build().unwrap();
    let token = get(&credential, ARM_SCOPE).await.unwrap();
    assert_eq!(token.token.secret(), "AZ-TOKEN");
    assert!(tools.read("az-marker").is_some());
    assert_eq!(credential.selected_credential(), Some("AzureCliCredential"));
}

#[tokio::test]
async fn an_az_failure_is_downgraded_inside_the_chain_and_pwsh_wins() {
    let tools = FakeTools::new();
    tools.script("az", "echo 'garbage: something odd happened' >&2\nexit 1");
    tools.pwsh_ok("PWSH-TOKEN");
    let env = tools.env().with("AZURE_TOKEN_CREDENTIALS", "dev");
    let credential = chain(env).build().unwrap();
    let token = get(&credential, ARM_SCOPE).await.unwrap();
    assert_eq!(token.token.secret(), "PWSH-TOKEN");
    assert_eq!(tools.runs("az"), 1);
    assert_eq!(
        credential.selected_credential(),
        Some("AzurePowerShellCredential")
    );

    // Outside the chain the same az failure is an authentication failure.
    let az = AzureCliCredential::builder()
        .runtime(identity_core::Runtime::with_env(tools.env()))
        .build()
        .unwrap();
    let error = get(&az, ARM_SCOPE).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::AuthenticationFailed, "{error}");
}

#[tokio::test]
async fn the_first_successful_member_is_remembered_even_when_it_later_fails() {
    let tools = FakeTools::new();
    tools.az_ok("AZ-TOKEN");
    tools.pwsh_ok("PWSH-TOKEN");
    let env = tools.env().with("AZURE_TOKEN_CREDENTIALS", "dev");
    let credential = chain(env).build().unwrap();
    assert_eq!(
        get(&credential, ARM_SCOPE).await.unwrap().token.secret(),
        "AZ-TOKEN"
    );
    assert_eq!(credential.selected_credential(), Some("AzureCliCredential"));

    tools.script(
        "az",
        "echo \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1",
    );
    // Another scope, so no cache can answer.
    let error = get(&credential, VAULT_SCOPE).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unavailable, "{error}");
    let text = error.to_string();
    assert!(text.starts_with("AzureCliCredential: "), "{text}");
    assert!(text.contains("az login"), "{text}");
    assert!(!text.contains("Attempted credentials"), "{text}");
    assert_eq!(tools.runs("az"), 2);
    assert_eq!(tools.runs("pwsh"), 0, "pwsh must not run");
    assert_eq!(credential.selected_credential(), Some("AzureCliCredential"));
}

#[tokio::test]
async fn a_full_miss_lists_every_member_in_the_documented_layout() {
    let tools = FakeTools::new();
    let credential = chain(tools.env()).build().unwrap();
    let error = get(&credential, ARM_SCOPE).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unavailable);
    let text = error.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "DefaultAzureCredential: failed to retrieve a token from the included credentials.",
        "{text}"
    );
    assert_eq!(lines[1], "Attempted credentials:", "{text}");
    let members = [
        "EnvironmentCredential",
        "WorkloadIdentityCredential",
        "ManagedIdentityCredential",
        "AzureCliCredential",
        "AzurePowerShellCredential",
        "AzureDeveloperCliCredential",
    ];
    // Messages may span lines; each member's line starts with a tab and its name, in order.
    let member_lines: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with('\t'))
        .collect();
    assert_eq!(member_lines.len(), members.len(), "{text}");
    for (line, name) in member_lines.iter().zip(members) {
        assert!(
            line.starts_with(&format!("\t{name}: ")),
            "{line:?} in\n{text}"
        );
    }
    let last = lines.last().copied().unwrap_or_default();
    assert!(last.starts_with("To fix this, "), "{text}");
    assert_eq!(credential.selected_credential(), None);
}

#[tokio::test]
async fn a_chained_credential_with_real_members_names_the_last_used() {
    let tools = FakeTools::new();
    tools.az_ok("AZ-TOKEN");
    let managed_identity = ManagedIdentityCredential::builder()
        .runtime(
            identity_core::Runtime::with_env(Env::from_pairs([(
                "IDENTITY_ENDPOINT",
                "http://127.0.0.1:9/unused",
            )]))
            .sleeper(Arc::new(RecordingSleeper::new())),
        )
        .build()
        .unwrap();
    let az = AzureCliCredential::builder()
        .runtime(identity_core::Runtime::with_env(tools.env()))
        .build()
        .unwrap();
    let chain = ChainedTokenCredential::new(vec![Arc::new(managed_identity), Arc::new(az)]);
    assert_eq!(chain.last_used(), None);
    let token = get(&chain, ARM_SCOPE).await.unwrap();
    assert_eq!(token.token.secret(), "AZ-TOKEN");
    assert_eq!(chain.last_used(), Some("AzureCliCredential"));
    assert_eq!(chain.name(), "ChainedTokenCredential");
}

#[tokio::test]
async fn a_chained_credential_is_not_sticky() {
    let tools = FakeTools::new();
    tools.az_ok("AZ-TOKEN");
    let az = AzureCliCredential::builder()
        .runtime(identity_core::Runtime::with_env(tools.env()))
        .build()
        .unwrap();
    let fallback = identity_core::test_util::static_credential(
        "Fallback",
        "FALLBACK-TOKEN",
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(identity_tests::FAR_EXPIRY),
    );
    let chain = ChainedTokenCredential::new(vec![Arc::new(az), Arc::new(fallback)]);
    assert_eq!(
        get(&chain, ARM_SCOPE).await.unwrap().token.secret(),
        "AZ-TOKEN"
    );
    tools.script(
        "az",
        "echo \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1",
    );
    let token = get(&chain, VAULT_SCOPE).await.unwrap();
    assert_eq!(token.token.secret(), "FALLBACK-TOKEN");
    assert_eq!(chain.last_used(), Some("Fallback"));
}

#[tokio::test]
async fn a_hanging_az_is_stopped_by_process_timeout_and_the_chain_moves_on() {
    let tools = FakeTools::new();
    tools.script("az", "exec /bin/sleep 60");
    tools.pwsh_ok("PWSH-TOKEN");
    let credential = chain(tools.env().with("AZURE_TOKEN_CREDENTIALS", "dev"))
        .process_timeout(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    let token = get(&credential, ARM_SCOPE).await.unwrap();
    assert_eq!(token.token.secret(), "PWSH-TOKEN");
    assert_eq!(tools.runs("az"), 1);
    assert_eq!(
        credential.selected_credential(),
        Some("AzurePowerShellCredential")
    );
}

#[tokio::test]
async fn a_requested_tenant_reaches_the_developer_tools() {
    let tools = FakeTools::new();
    tools.az_ok("AZ-TOKEN");
    let credential = chain(tools.env().with("AZURE_TOKEN_CREDENTIALS", "dev"))
        .build()
        .unwrap();
    let options = TokenRequestOptions::default().tenant_id("other-tenant");
    let token = bounded(credential.get_token(&[ARM_SCOPE], &options))
        .await
        .unwrap();
    assert_eq!(token.token.secret(), "AZ-TOKEN");
    let argv = tools.argv("az");
    let at = argv
        .iter()
        .position(|a| a == "--tenant")
        .expect("--tenant is passed");
    assert_eq!(argv[at + 1], "other-tenant");
}

#[tokio::test]
async fn a_tenant_outside_the_allowed_list_stops_the_chain_for_service_principals() {
    // EnvironmentCredential is configured for one tenant and allows no other (docs/protocol.md §5
    // multi-tenant rule): asking for another is an authentication failure, not unavailable,
    // and nothing is sent.
    let tools = FakeTools::new();
    az_with_marker(&tools);
    let env = tools
        .env()
        .with("AZURE_TENANT_ID", "home-tenant")
        .with("AZURE_CLIENT_ID", "client")
        .with("AZURE_CLIENT_SECRET", "planted-client-secret")
        .with("AZURE_AUTHORITY_HOST", "https://127.0.0.1:9");
    let credential = chain(env).build().unwrap();
    let options = TokenRequestOptions::default().tenant_id("other-tenant");
    let error = bounded(credential.get_token(&[ARM_SCOPE], &options))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::AuthenticationFailed, "{error}");
    assert!(error.to_string().contains("other-tenant"), "{error}");
    assert!(tools.read("az-marker").is_none(), "az must not run");
}

#[tokio::test]
async fn additionally_allowed_tenants_lets_a_service_principal_ask_another_tenant() {
    let server = identity_tests::TlsTokenServer::start("OTHER-TENANT-TOKEN").await;
    let env = Env::from_pairs([
        ("AZURE_TENANT_ID", "home-tenant".to_owned()),
        ("AZURE_CLIENT_ID", "client".to_owned()),
        ("AZURE_CLIENT_SECRET", "planted-client-secret".to_owned()),
        ("AZURE_AUTHORITY_HOST", server.authority()),
    ]);
    let credential = chain_over(no_wait_runtime(env).http_client(identity_tests::test_ca_client()))
        .additionally_allowed_tenants(["other-tenant"])
        .build()
        .unwrap();
    let options = TokenRequestOptions::default().tenant_id("other-tenant");
    let token = bounded(credential.get_token(&[ARM_SCOPE], &options))
        .await
        .unwrap();
    assert_eq!(token.token.secret(), "OTHER-TENANT-TOKEN");
    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].line,
        "POST /other-tenant/oauth2/v2.0/token HTTP/1.1"
    );
}
