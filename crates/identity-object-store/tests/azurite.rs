//! `object_store`'s Azure store, configured with [`ObjectStoreCredential`] over a real
//! `ManagedIdentityCredential`, writes, reads, lists and deletes a blob in Azurite (OAuth on,
//! HTTPS with a throwaway certificate), fed by the local App Service managed-identity endpoint.
//!
//! The Azurite harness is `identity-blob-demo`'s (npm install into `<repo>/.tools/azurite` on
//! first use, process group killed and reaped on drop). Needs Node.js 20+ with npm.

#![allow(
    clippy::unwrap_used,
    reason = "helpers of a test: a failed step should panic with its error"
)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use identity_blob_demo::azurite::{self, Azurite};
use identity_blob_demo::local_msi::{LocalMsi, LocalMsiConfig};
use identity_core::test_util::Capture;
use identity_core::{TokenCredential, TokenRequestOptions};
use identity_msi::ManagedIdentityCredential;
use identity_object_store::{STORAGE_SCOPE, microsoft_azure_builder};
use object_store::client::{Certificate, ClientOptions};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// Generous: the first run installs Azurite from the npm registry.
const RUN_LIMIT: Duration = Duration::from_secs(900);
const IDENTITY_HEADER: &str = "planted-object-store-identity-header";

/// Creates `container` with a raw `PUT ?restype=container`: `object_store` cannot.
async fn create_container(azurite: &Azurite, container: &str, token: &str) {
    let tls = identity_blob_demo::blob::tls_config(Some(azurite.ca_pem().as_bytes())).unwrap();
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let response = http
        .put(format!(
            "{}/{container}?restype=container",
            azurite.account_url()
        ))
        .bearer_auth(token)
        .header("x-ms-version", "2026-04-06")
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        201,
        "{:?}",
        response.text().await
    );
}

async fn round_trip(azurite: &Azurite, capture: &Capture) -> String {
    let msi = LocalMsi::start(LocalMsiConfig::new(IDENTITY_HEADER))
        .await
        .unwrap();
    let credential = ManagedIdentityCredential::builder()
        .runtime(identity_core::Runtime::with_env(msi.app_service_env()))
        .build()
        .unwrap();
    let credential: Arc<dyn TokenCredential> = Arc::new(credential);
    let token = credential
        .get_token(&[STORAGE_SCOPE], &TokenRequestOptions::default())
        .await
        .unwrap();
    let container = "identity-object-store";
    create_container(azurite, container, token.token.secret()).await;

    let store = microsoft_azure_builder(credential)
        .with_account(azurite::ACCOUNT)
        .with_endpoint(azurite.account_url())
        .with_container_name(container)
        .with_client_options(
            ClientOptions::new()
                .with_root_certificate(Certificate::from_pem(azurite.ca_pem().as_bytes()).unwrap()),
        )
        .build()
        .unwrap();

    let path = Path::from("dir/hello.txt");
    let payload = b"written through object_store with a managed identity token".to_vec();
    store
        .put(&path, PutPayload::from(payload.clone()))
        .await
        .unwrap();
    let read = store.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(read.as_ref(), payload.as_slice());
    let listed: Vec<_> = store
        .list(None)
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed, ["dir/hello.txt"]);
    store.delete(&path).await.unwrap();
    assert!(matches!(
        store.head(&path).await,
        Err(object_store::Error::NotFound { .. })
    ));

    // One token served the container creation and every object_store request.
    assert_eq!(msi.tokens_issued(), 1);
    let spans = capture.spans_named("get_token");
    assert!(spans.len() >= 5, "{}", capture.text());
    assert!(
        spans
            .iter()
            .skip(1)
            .all(|s| s.field("cache") == Some("hit")),
        "{}",
        capture.text()
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), msi.shutdown()).await;
    token.token.secret().to_owned()
}

#[tokio::test]
async fn object_store_writes_and_reads_a_blob_in_azurite_with_our_credential() {
    let capture = Capture::new();
    let _guard = capture.enter();
    let token = tokio::time::timeout(RUN_LIMIT, async {
        let launcher = azurite::ensure_installed(&azurite::default_install_dir())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let azurite = Azurite::start(&launcher)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let token = round_trip(&azurite, &capture).await;
        azurite.shutdown().await;
        token
    })
    .await
    .expect("the Azurite round trip took too long");
    capture.assert_absent(&token);
    capture.assert_absent(IDENTITY_HEADER);
}
