//! Planted secrets never leak, for the credentials and paths `secret_hygiene.rs` does not
//! reach: `ClientCertificateCredential` with a PKCS#12 password, `ClientAssertionCredential`,
//! Cloud Shell and Service Fabric. Success and failure paths run with every `tracing` event
//! captured; no planted secret may appear in an error's `Display`/`Debug`/source chain, a
//! builder's or credential's `Debug`, or the captured logs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions fail loudly on purpose"
)]

use std::sync::Arc;

use identity_chain::{
    AccessToken, ClientAssertionCredential, ClientCertificateCredential, Env, Error,
    ManagedIdentityCredential, TokenCredential, TokenRequestOptions, display_chain,
};
use identity_core::test_util::RecordingSleeper;
use identity_tests::{
    ARM_SCOPE, FAR_EXPIRY, LogBuffer, TLS_DATA, TlsTokenServer, assert_no_secret, bounded,
    capture_logs, test_ca_client,
};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const PFX_PASSWORD: &str = "planted-pfx-password";
const ASSERTION: &str = "planted-client-assertion-41f0";
const SF_SECRET: &str = "planted-service-fabric-secret-8d21";
const TOKEN: &str = "eyJ0eXAiOiJKV1QifQ.planted-access-token-more.c2ln";

const SECRETS: &[&str] = &[
    PFX_PASSWORD,
    ASSERTION,
    SF_SECRET,
    TOKEN,
    "planted-access-token",
];

/// The SHA-1 thumbprint of `server.pem` (the TLS token server's certificate).
const SERVER_THUMBPRINT: &str = "669DA2A36AF3584FA64C7F78B087780905EDE2AA";

async fn get(credential: &dyn TokenCredential) -> Result<AccessToken, Error> {
    bounded(credential.get_token(&[ARM_SCOPE], &TokenRequestOptions::default())).await
}

fn assert_clean(
    what: &str,
    result: &Result<AccessToken, Error>,
    credential: &dyn std::fmt::Debug,
    logs: &LogBuffer,
) {
    match result {
        Ok(token) => assert_no_secret(&format!("{what}: token"), &format!("{token:?}"), SECRETS),
        Err(error) => {
            for text in [
                error.to_string(),
                format!("{error:?}"),
                display_chain(error),
            ] {
                assert_no_secret(&format!("{what}: error"), &text, SECRETS);
            }
        }
    }
    assert_no_secret(
        &format!("{what}: credential Debug"),
        &format!("{credential:?}"),
        SECRETS,
    );
    assert_no_secret(&format!("{what}: logs"), &logs.text(), SECRETS);
}

fn entra_error_body() -> String {
    serde_json::json!({
        "error": "invalid_client",
        "error_description": "AADSTS700027: Client assertion failed signature validation.",
        "error_codes": [700_027],
    })
    .to_string()
}

#[tokio::test]
async fn a_pkcs12_password_stays_out_of_errors_debug_and_logs() {
    let (_guard, logs) = capture_logs();
    let ok = TlsTokenServer::start(TOKEN).await;
    let refused = TlsTokenServer::start_with(401, entra_error_body()).await;
    let pfx = format!("{TLS_DATA}/client.pfx");
    for (what, server) in [("success", &ok), ("401", &refused)] {
        let builder = ClientCertificateCredential::builder()
            .tenant_id("tenant-three")
            .client_id("client-three")
            .certificate_path(&pfx)
            .password(PFX_PASSWORD)
            .authority_host(server.authority())
            .runtime(
                identity_core::Runtime::with_env(Env::empty())
                    .sleeper(Arc::new(RecordingSleeper::new()))
                    .http_client(test_ca_client()),
            );
        assert_no_secret("builder Debug", &format!("{builder:?}"), SECRETS);
        let credential = builder.build().unwrap();
        let result = get(&credential).await;
        assert_eq!(result.is_ok(), what == "success", "{result:?}");
        assert_clean(&format!("certificate {what}"), &result, &credential, &logs);
    }
    // A wrong password: the planted one must not be echoed when it is refused either.
    let wrong = format!("{PFX_PASSWORD}-wrong");
    let result = ClientCertificateCredential::builder()
        .tenant_id("tenant-three")
        .client_id("client-three")
        .certificate_path(&pfx)
        .password(wrong.as_str())
        .runtime(identity_core::Runtime::with_env(Env::empty()))
        .build();
    let error = result.expect_err("a wrong PKCS#12 password is refused");
    for text in [
        error.to_string(),
        format!("{error:?}"),
        display_chain(&error),
    ] {
        assert_no_secret("wrong password", &text, SECRETS);
        assert!(!text.contains(&wrong), "{text}");
    }
}

#[tokio::test]
async fn a_client_assertion_stays_out_of_errors_debug_and_logs() {
    let (_guard, logs) = capture_logs();
    let ok = TlsTokenServer::start(TOKEN).await;
    let refused = TlsTokenServer::start_with(400, entra_error_body()).await;
    for (what, server) in [("success", &ok), ("400", &refused)] {
        let credential = ClientAssertionCredential::builder()
            .tenant_id("tenant-four")
            .client_id("client-four")
            .assertion(|| async { Ok::<_, std::io::Error>(ASSERTION.to_owned()) })
            .authority_host(server.authority())
            .runtime(
                identity_core::Runtime::with_env(Env::empty())
                    .sleeper(Arc::new(RecordingSleeper::new()))
                    .http_client(test_ca_client()),
            )
            .build()
            .unwrap();
        let result = get(&credential).await;
        assert_eq!(result.is_ok(), what == "success", "{result:?}");
        assert_clean(&format!("assertion {what}"), &result, &credential, &logs);
        // The assertion did go out, in the form body only.
        let seen = server.requests();
        assert_eq!(seen.len(), 1);
        assert!(String::from_utf8_lossy(&seen[0].body).contains(ASSERTION));
    }
    // A failing callback whose error is plain text: the credential adds nothing secret.
    let credential = ClientAssertionCredential::builder()
        .tenant_id("tenant-four")
        .client_id("client-four")
        .assertion(|| async { Err::<String, _>(std::io::Error::other("the vault is sealed")) })
        .authority_host(ok.authority())
        .runtime(identity_core::Runtime::with_env(Env::empty()).http_client(test_ca_client()))
        .build()
        .unwrap();
    let result = get(&credential).await;
    assert!(result.is_err());
    assert_clean("assertion callback failure", &result, &credential, &logs);
}

async fn msi_host(status: u16) -> MockServer {
    let server = MockServer::start().await;
    let response = if status == 200 {
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": TOKEN,
            "expires_on": FAR_EXPIRY.to_string(),
            "resource": "https://management.azure.com",
            "token_type": "Bearer",
        }))
    } else {
        ResponseTemplate::new(status).set_body_json(serde_json::json!({
            "error": "invalid_request",
            "error_description": "the shell session has expired",
        }))
    };
    Mock::given(method("POST"))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn cloud_shell_tokens_stay_out_of_errors_debug_and_logs() {
    let (_guard, logs) = capture_logs();
    for status in [200, 400, 500] {
        let server = msi_host(status).await;
        let credential = ManagedIdentityCredential::builder()
            .runtime(
                identity_core::Runtime::with_env(Env::from_pairs([("MSI_ENDPOINT", server.uri())]))
                    .sleeper(Arc::new(RecordingSleeper::new())),
            )
            .build()
            .unwrap();
        let result = get(&credential).await;
        assert_eq!(result.is_ok(), status == 200, "{result:?}");
        assert_clean(
            &format!("Cloud Shell {status}"),
            &result,
            &credential,
            &logs,
        );
    }
}

#[tokio::test]
async fn service_fabric_secrets_stay_out_of_errors_debug_and_logs() {
    let (_guard, logs) = capture_logs();
    let ok = TlsTokenServer::start(TOKEN).await;
    let refused = TlsTokenServer::start_with(401, entra_error_body()).await;
    let cases = [
        ("success", &ok, SERVER_THUMBPRINT, true),
        ("401", &refused, SERVER_THUMBPRINT, false),
        (
            "wrong thumbprint",
            &ok,
            "0000000000000000000000000000000000000000",
            false,
        ),
    ];
    for (what, server, thumbprint, succeeds) in cases {
        let credential = ManagedIdentityCredential::builder()
            .runtime(
                identity_core::Runtime::with_env(Env::from_pairs([
                    (
                        "IDENTITY_ENDPOINT",
                        format!(
                            "https://127.0.0.1:{}/metadata/identity/oauth2/token",
                            server.addr.port()
                        ),
                    ),
                    ("IDENTITY_HEADER", SF_SECRET.to_owned()),
                    ("IDENTITY_SERVER_THUMBPRINT", thumbprint.to_owned()),
                ]))
                .sleeper(Arc::new(RecordingSleeper::new())),
            )
            .build()
            .unwrap();
        let result = get(&credential).await;
        assert_eq!(result.is_ok(), succeeds, "{what}: {result:?}");
        assert_clean(
            &format!("Service Fabric {what}"),
            &result,
            &credential,
            &logs,
        );
    }
    // The secret did go out, in the Secret header only.
    let seen = ok.requests();
    assert!(!seen.is_empty());
    assert!(seen[0].head.contains(SF_SECRET));
    assert!(!seen[0].line.contains(SF_SECRET));
}
