//! The local App Service endpoint against the real managed-identity credential (no
//! Azurite): system- and user-assigned identities, and a wrong secret, through
//! `make_credential` with an injected environment.

use std::time::Duration;

use identity_blob_demo::credential::{
    CredentialChoice, CredentialKind, UserAssigned, make_credential,
};
use identity_blob_demo::jwt::decode_claims;
use identity_blob_demo::local_msi::{LocalMsi, LocalMsiConfig, SYSTEM_ASSIGNED_OBJECT_ID};
use identity_core::{Env, TokenRequestOptions};

const PLANTED: &str = "planted-identity-header-value";
const SCOPE: &str = "https://storage.azure.com/.default";

#[allow(
    clippy::expect_used,
    reason = "a test helper: a panic is a test failure"
)]
async fn token_claims(
    kind: CredentialKind,
    identity: Option<UserAssigned>,
    env: Env,
) -> Result<identity_blob_demo::jwt::Claims, identity_core::Error> {
    let credential = make_credential(&CredentialChoice { kind, identity }, env)?;
    let token = tokio::time::timeout(
        Duration::from_secs(30),
        credential.get_token(&[SCOPE], &TokenRequestOptions::default()),
    )
    .await
    .expect("the token request took too long")?;
    Ok(decode_claims(token.token.secret()).expect("a JWT"))
}

#[tokio::test]
async fn the_system_assigned_identity_gets_a_storage_token() {
    let server = LocalMsi::start(LocalMsiConfig::new(PLANTED)).await.unwrap();
    for kind in [CredentialKind::ManagedIdentity, CredentialKind::Default] {
        let claims = token_claims(kind, None, server.app_service_env())
            .await
            .unwrap();
        assert_eq!(
            claims.audience.as_deref(),
            Some("https://storage.azure.com")
        );
        assert_eq!(claims.object_id.as_deref(), Some(SYSTEM_ASSIGNED_OBJECT_ID));
    }
    server.shutdown().await;
}

#[tokio::test]
async fn user_assigned_identities_are_selected_by_each_kind_of_id() {
    let server = LocalMsi::start(LocalMsiConfig::new(PLANTED)).await.unwrap();
    let by_client = token_claims(
        CredentialKind::ManagedIdentity,
        Some(UserAssigned::ClientId(
            "11111111-1111-1111-1111-111111111111".into(),
        )),
        server.app_service_env(),
    )
    .await
    .unwrap();
    assert_eq!(
        by_client.app_id.as_deref(),
        Some("11111111-1111-1111-1111-111111111111")
    );
    let by_object = token_claims(
        CredentialKind::Default,
        Some(UserAssigned::ObjectId(
            "22222222-2222-2222-2222-222222222222".into(),
        )),
        server.app_service_env(),
    )
    .await
    .unwrap();
    assert_eq!(
        by_object.object_id.as_deref(),
        Some("22222222-2222-2222-2222-222222222222")
    );
    // The endpoint answers 400 to any selector App Service does not define, so a token here
    // means the credential sent `mi_res_id`.
    let by_resource = token_claims(CredentialKind::ManagedIdentity,
        Some(UserAssigned::ResourceId(
            "/subscriptions/x/resourceGroups/y/providers/Microsoft.ManagedIdentity/userAssignedIdentities/z"
                .into(),
        )),
        server.app_service_env(),
    )
    .await
    .unwrap();
    assert_ne!(
        by_resource.object_id.as_deref(),
        Some(SYSTEM_ASSIGNED_OBJECT_ID)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_wrong_identity_header_fails_without_echoing_either_secret() {
    let server = LocalMsi::start(LocalMsiConfig::new(PLANTED)).await.unwrap();
    let env = server
        .app_service_env()
        .with("IDENTITY_HEADER", "planted-wrong-header-value");
    let error = token_claims(CredentialKind::ManagedIdentity, None, env)
        .await
        .unwrap_err();
    assert!(
        !error.is_unavailable() || error.message().contains("401"),
        "{error}"
    );
    for text in [
        error.to_string(),
        format!("{error:?}"),
        identity_core::display_chain(&error),
    ] {
        assert!(!text.contains("planted"), "{text}");
    }
    assert_eq!(server.tokens_issued(), 0);
    server.shutdown().await;
}
