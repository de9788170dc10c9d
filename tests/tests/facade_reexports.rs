//! Compile-time proof that `identity_chain` alone reaches the whole public API: every
//! credential and builder, the core types, and the chain's own types; that each credential
//! fits in an `Arc<dyn TokenCredential>`; and that credentials are `Send + Sync` with `Send`
//! `get_token` futures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions fail loudly on purpose"
)]

use std::sync::Arc;

use identity_chain::{
    AccessToken, Attempt, AzureCliCredential, AzureCliCredentialBuilder,
    AzureDeveloperCliCredential, AzureDeveloperCliCredentialBuilder, AzurePowerShellCredential,
    AzurePowerShellCredentialBuilder, ChainError, ChainedTokenCredential,
    ClientAssertionCredential, ClientAssertionCredentialBuilder, ClientCertificateCredential,
    ClientCertificateCredentialBuilder, ClientSecretCredential, ClientSecretCredentialBuilder,
    CredentialKind, DefaultAzureCredential, DefaultAzureCredentialBuilder, Env,
    EnvironmentCredential, EnvironmentCredentialBuilder, Error, ErrorKind,
    ManagedIdentityCredential, ManagedIdentityCredentialBuilder, ManagedIdentityId,
    ManagedIdentitySource, ReqwestClient, ReqwestClientBuilder, Runtime, Secret, TokenCredential,
    TokenRequestOptions, WorkloadIdentityCredential, WorkloadIdentityCredentialBuilder,
};
use identity_tests::{TLS_DATA, refused_endpoint, test_ca_client};

fn assert_send_sync<T: Send + Sync + std::fmt::Debug>() {}
fn assert_send<T: Send>(_: &T) {}

#[test]
fn every_public_type_is_send_sync_and_debug() {
    assert_send_sync::<DefaultAzureCredential>();
    assert_send_sync::<ChainedTokenCredential>();
    assert_send_sync::<ManagedIdentityCredential>();
    assert_send_sync::<AzureCliCredential>();
    assert_send_sync::<AzurePowerShellCredential>();
    assert_send_sync::<AzureDeveloperCliCredential>();
    assert_send_sync::<ClientSecretCredential>();
    assert_send_sync::<ClientCertificateCredential>();
    assert_send_sync::<ClientAssertionCredential>();
    assert_send_sync::<WorkloadIdentityCredential>();
    assert_send_sync::<EnvironmentCredential>();
    assert_send_sync::<ReqwestClient>();
    assert_send_sync::<AccessToken>();
    assert_send_sync::<Secret>();
    assert_send_sync::<Error>();
    assert_send_sync::<ErrorKind>();
    assert_send_sync::<TokenRequestOptions>();
    assert_send_sync::<Env>();
    assert_send_sync::<ManagedIdentityId>();
    assert_send_sync::<ManagedIdentitySource>();
    assert_send_sync::<ChainError>();
    assert_send_sync::<Attempt>();
    assert_send_sync::<CredentialKind>();
    assert_send_sync::<Arc<dyn TokenCredential>>();
}

#[test]
fn every_builder_is_reachable_from_the_facade() {
    let _: DefaultAzureCredentialBuilder = DefaultAzureCredential::builder();
    let _: ManagedIdentityCredentialBuilder = ManagedIdentityCredential::builder();
    let _: AzureCliCredentialBuilder = AzureCliCredential::builder();
    let _: AzurePowerShellCredentialBuilder = AzurePowerShellCredential::builder();
    let _: AzureDeveloperCliCredentialBuilder = AzureDeveloperCliCredential::builder();
    let _: ClientSecretCredentialBuilder = ClientSecretCredential::builder();
    let _: ClientCertificateCredentialBuilder = ClientCertificateCredential::builder();
    let _: ClientAssertionCredentialBuilder = ClientAssertionCredential::builder();
    let _: WorkloadIdentityCredentialBuilder = WorkloadIdentityCredential::builder();
    let _: EnvironmentCredentialBuilder = EnvironmentCredential::builder();
    let _: ReqwestClientBuilder = ReqwestClient::builder();
    let _: ManagedIdentityId = ManagedIdentityId::SystemAssigned;
    let _: Option<ErrorKind> = None;
    assert_eq!(CredentialKind::ALL.len(), 7);
    // The crates stay reachable under their own names too.
    let _: identity_msi::ManagedIdentityCredentialBuilder =
        identity_msi::ManagedIdentityCredential::builder();
    let _: identity_core::Env = identity_core::Env::empty();
}

/// One of every credential, built without touching the network or the process environment.
fn every_credential() -> Vec<Arc<dyn TokenCredential>> {
    let env = Env::empty();
    let https = test_ca_client();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "assertion").unwrap();
    vec![
        Arc::new(
            DefaultAzureCredential::builder()
                .runtime(Runtime::with_env(env.clone()))
                .imds_endpoint(refused_endpoint())
                .build()
                .unwrap(),
        ),
        Arc::new(ChainedTokenCredential::new(Vec::new())),
        Arc::new(
            ManagedIdentityCredential::builder()
                .runtime(Runtime::with_env(env.clone()))
                .build()
                .unwrap(),
        ),
        Arc::new(
            AzureCliCredential::builder()
                .runtime(Runtime::with_env(env.clone()))
                .build()
                .unwrap(),
        ),
        Arc::new(
            AzurePowerShellCredential::builder()
                .runtime(Runtime::with_env(env.clone()))
                .build()
                .unwrap(),
        ),
        Arc::new(
            AzureDeveloperCliCredential::builder()
                .runtime(Runtime::with_env(env.clone()))
                .build()
                .unwrap(),
        ),
        Arc::new(
            ClientSecretCredential::builder()
                .runtime(Runtime::with_env(env.clone()).http_client(https.clone()))
                .tenant_id("tenant")
                .client_id("client")
                .client_secret("secret")
                .build()
                .unwrap(),
        ),
        Arc::new(
            ClientCertificateCredential::builder()
                .runtime(Runtime::with_env(env.clone()).http_client(https.clone()))
                .tenant_id("tenant")
                .client_id("client")
                .certificate_path(format!("{TLS_DATA}/client.pem"))
                .build()
                .unwrap(),
        ),
        Arc::new(
            ClientAssertionCredential::builder()
                .runtime(Runtime::with_env(env.clone()).http_client(https.clone()))
                .tenant_id("tenant")
                .client_id("client")
                .assertion(|| async { Ok::<_, std::io::Error>("assertion".to_owned()) })
                .build()
                .unwrap(),
        ),
        Arc::new(
            WorkloadIdentityCredential::builder()
                .runtime(Runtime::with_env(env.clone()).http_client(https.clone()))
                .tenant_id("tenant")
                .client_id("client")
                .token_file_path(token_file)
                .build()
                .unwrap(),
        ),
        Arc::new(
            EnvironmentCredential::builder()
                .runtime(Runtime::with_env(env).http_client(https))
                .build()
                .unwrap(),
        ),
    ]
}

#[test]
fn an_arc_dyn_token_credential_holds_every_credential() {
    let names: Vec<&str> = every_credential()
        .iter()
        .map(|c| TokenCredential::name(c.as_ref()))
        .collect();
    assert_eq!(
        names,
        [
            "DefaultAzureCredential",
            "ChainedTokenCredential",
            "ManagedIdentityCredential",
            "AzureCliCredential",
            "AzurePowerShellCredential",
            "AzureDeveloperCliCredential",
            "ClientSecretCredential",
            "ClientCertificateCredential",
            "ClientAssertionCredential",
            "WorkloadIdentityCredential",
            "EnvironmentCredential",
        ]
    );
}

#[test]
fn every_get_token_future_is_send() {
    let scopes = ["https://management.azure.com/.default"];
    let options = TokenRequestOptions::default();
    for credential in every_credential() {
        // The future is only created, never polled: nothing is sent.
        let future = credential.get_token(&scopes, &options);
        assert_send(&future);
    }
}

#[test]
fn concrete_get_token_futures_are_send() {
    fn check<C: TokenCredential>(credential: &C) {
        let scopes = ["https://management.azure.com/.default"];
        let options = TokenRequestOptions::default();
        assert_send(&credential.get_token(&scopes, &options));
    }
    let env = Env::empty();
    check(
        &AzureCliCredential::builder()
            .runtime(Runtime::with_env(env.clone()))
            .build()
            .unwrap(),
    );
    check(
        &ManagedIdentityCredential::builder()
            .runtime(Runtime::with_env(env.clone()))
            .build()
            .unwrap(),
    );
    check(
        &DefaultAzureCredential::builder()
            .runtime(Runtime::with_env(env))
            .imds_endpoint(refused_endpoint())
            .build()
            .unwrap(),
    );
}
