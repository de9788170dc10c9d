//! The `ManagedIdentityCredential` that identity-chain exports performs the workload identity
//! exchange on an AKS pod (`AZURE_FEDERATED_TOKEN_FILE`, `AZURE_TENANT_ID`,
//! `AZURE_AUTHORITY_HOST`), with the configured client id, else `AZURE_CLIENT_ID`;
//! identity-msi's credential alone keeps answering "unavailable, use
//! `WorkloadIdentityCredential`".
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test fixtures fail loudly on purpose"
)]

use identity_chain::{
    Env, ErrorKind, ManagedIdentityCredential, ManagedIdentitySource, TokenCredential,
    TokenRequestOptions,
};
use identity_tests::{TlsTokenServer, VAULT_SCOPE, bounded, form_field, test_ca_client};

const ASSERTION: &str = "planted-federated-assertion";

struct Pod {
    server: TlsTokenServer,
    _dir: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
}

async fn pod(extra: &[(&'static str, &str)]) -> Pod {
    let server = TlsTokenServer::start("WORKLOAD-TOKEN").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, ASSERTION).unwrap();
    let mut env = vec![
        ("AZURE_FEDERATED_TOKEN_FILE", file.display().to_string()),
        ("AZURE_TENANT_ID", "tenant".to_owned()),
        ("AZURE_AUTHORITY_HOST", server.authority()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    Pod {
        server,
        _dir: dir,
        env,
    }
}

impl Pod {
    fn env(&self) -> Env {
        Env::from_pairs(self.env.clone())
    }

    fn builder(&self) -> identity_chain::ManagedIdentityCredentialBuilder {
        ManagedIdentityCredential::builder()
            .runtime(identity_core::Runtime::with_env(self.env()))
            .workload_identity_http_client(test_ca_client())
            // Detection must not depend on this machine's files.
            .host_files(std::sync::Arc::new(
                identity_chain::ListedHostFiles::default(),
            ))
    }

    fn sent(&self, field: &str) -> Option<String> {
        let requests = self.server.requests();
        assert_eq!(requests.len(), 1, "one token request");
        form_field(&requests[0].body, field)
    }
}

async fn token(credential: &ManagedIdentityCredential) -> Result<String, identity_chain::Error> {
    bounded(credential.get_token(&[VAULT_SCOPE], &TokenRequestOptions::default()))
        .await
        .map(|t| t.token.secret().to_owned())
}

#[tokio::test]
async fn the_configured_client_id_is_used_for_the_federated_exchange() {
    let pod = pod(&[("AZURE_CLIENT_ID", "from-env")]).await;
    let credential = pod.builder().client_id("configured").build().unwrap();
    assert_eq!(credential.source(), ManagedIdentitySource::WorkloadIdentity);
    assert_eq!(token(&credential).await.unwrap(), "WORKLOAD-TOKEN");
    assert_eq!(pod.sent("client_id").as_deref(), Some("configured"));
    assert_eq!(pod.sent("client_assertion").as_deref(), Some(ASSERTION));
    assert!(
        pod.server.requests()[0]
            .line
            .contains("/tenant/oauth2/v2.0/token")
    );
    assert!(!format!("{credential:?}").contains(ASSERTION));
}

#[tokio::test]
async fn without_a_configured_client_id_azure_client_id_is_used() {
    let pod = pod(&[("AZURE_CLIENT_ID", "from-env")]).await;
    let credential = pod.builder().build().unwrap();
    assert_eq!(token(&credential).await.unwrap(), "WORKLOAD-TOKEN");
    assert_eq!(pod.sent("client_id").as_deref(), Some("from-env"));
}

#[tokio::test]
async fn identity_msi_alone_still_says_use_workload_identity() {
    let pod = pod(&[("AZURE_CLIENT_ID", "from-env")]).await;
    let credential = identity_msi::ManagedIdentityCredential::builder()
        .runtime(identity_core::Runtime::with_env(pod.env()))
        .client_id("configured")
        .build()
        .unwrap();
    let e = bounded(credential.get_token(&[VAULT_SCOPE], &TokenRequestOptions::default()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.to_string().contains("WorkloadIdentityCredential"), "{e}");
    assert!(pod.server.requests().is_empty());
}

#[tokio::test]
async fn other_sources_still_win_over_the_workload_variables() {
    let pod = pod(&[("MSI_ENDPOINT", "http://127.0.0.1:9/oauth2/token")]).await;
    let credential = pod.builder().build().unwrap();
    assert_eq!(credential.source(), ManagedIdentitySource::CloudShell);
    assert!(credential.host_credential().is_some());
}

#[tokio::test]
async fn an_object_id_cannot_select_a_workload_identity() {
    let pod = pod(&[]).await;
    let e = pod.builder().object_id("oid").build().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfiguration);
    assert!(e.to_string().contains("client id"), "{e}");
}

#[tokio::test]
async fn without_any_client_id_the_build_names_it() {
    let pod = pod(&[]).await;
    let e = pod.builder().build().unwrap_err();
    assert!(e.is_unavailable(), "{e}");
    assert!(e.to_string().contains("AZURE_CLIENT_ID"), "{e}");
}
