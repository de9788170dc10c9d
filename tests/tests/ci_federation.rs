//! The CI federation credentials inside `DefaultAzureCredential`: `GitHubActionsCredential` is
//! not a member unless `AZURE_TOKEN_CREDENTIALS` names it, and then it is the only one. IMDS
//! points at a refused loopback port, so nothing leaves the machine.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions fail loudly on purpose"
)]

use identity_chain::{Env, TokenCredential, TokenRequestOptions};
use identity_tests::{
    TlsTokenServer, bounded, chain_over, form_field, no_wait_runtime, test_ca_client,
};

const ARM_SCOPE: &str = "https://management.azure.com/.default";
const REQUEST_TOKEN: &str = "planted-actions-request-token";
const ID_TOKEN: &str = "planted-github-id-token";

/// A runner's environment: the ID-token endpoint on `github`, the authority on `entra`.
fn runner_env(github: &TlsTokenServer, entra: &TlsTokenServer) -> Env {
    Env::from_pairs([
        (
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            format!("{}/_apis/oidctoken?api-version=2.0", github.authority()),
        ),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN.to_owned()),
        ("AZURE_TENANT_ID", "tenant-gh".to_owned()),
        ("AZURE_CLIENT_ID", "client-gh".to_owned()),
        ("AZURE_AUTHORITY_HOST", entra.authority()),
    ])
}

async fn servers() -> (TlsTokenServer, TlsTokenServer) {
    let github =
        TlsTokenServer::start_with(200, format!(r#"{{"count":1,"value":"{ID_TOKEN}"}}"#)).await;
    let entra = TlsTokenServer::start("GITHUB-FEDERATED-TOKEN").await;
    (github, entra)
}

#[tokio::test]
async fn azure_token_credentials_can_name_github_actions() {
    let (github, entra) = servers().await;
    let env =
        runner_env(&github, &entra).with("AZURE_TOKEN_CREDENTIALS", "githubactionscredential");
    let credential = chain_over(no_wait_runtime(env).http_client(test_ca_client()))
        .build()
        .unwrap();
    let token = bounded(credential.get_token(&[ARM_SCOPE], &TokenRequestOptions::default()))
        .await
        .unwrap();
    assert_eq!(token.token.secret(), "GITHUB-FEDERATED-TOKEN");
    assert_eq!(
        credential.selected_credential(),
        Some("GitHubActionsCredential")
    );
    let asked = github.requests();
    assert_eq!(asked.len(), 1);
    assert!(
        asked[0].line.starts_with(
            "GET /_apis/oidctoken?api-version=2.0&audience=api%3A%2F%2FAzureADTokenExchange "
        ),
        "{}",
        asked[0].line
    );
    let exchanged = entra.requests();
    assert_eq!(exchanged.len(), 1);
    assert_eq!(
        exchanged[0].line,
        "POST /tenant-gh/oauth2/v2.0/token HTTP/1.1"
    );
    assert_eq!(
        form_field(&exchanged[0].body, "client_assertion").as_deref(),
        Some(ID_TOKEN)
    );
}

#[tokio::test]
async fn github_actions_is_not_a_member_by_default() {
    let (github, entra) = servers().await;
    // `prod` keeps every production member but not the opt-in one: with nothing else
    // configured, the chain fails without asking GitHub.
    for value in ["prod", ""] {
        let env = runner_env(&github, &entra)
            .with("AZURE_TOKEN_CREDENTIALS", value)
            .with("PATH", "");
        let credential = chain_over(no_wait_runtime(env).http_client(test_ca_client()))
            .build()
            .unwrap();
        let err = bounded(credential.get_token(&[ARM_SCOPE], &TokenRequestOptions::default()))
            .await
            .unwrap_err();
        assert!(
            !err.to_string().contains("GitHubActionsCredential"),
            "{err}"
        );
        assert!(!format!("{err:?}").contains("planted"), "{err:?}");
    }
    assert!(github.requests().is_empty());
}
