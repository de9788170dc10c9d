//! The demo itself: token, list, create, upload, download and verify, clean up.
//!
//! It uses the official `azure_storage_blob` 1.1.0 client through the
//! [`identity_azure_core::AzureCoreCredential`] adapter, with its own reqwest 0.13 transport
//! so that an extra CA (Azurite's self-signed certificate) can be trusted without touching
//! the process environment (`SSL_CERT_FILE` would replace the system roots for the whole
//! process).
//!
//! Uploads larger than [`BLOCK_SIZE`] go up in blocks (Put Block per 4 MiB, then Put Block
//! List) with `BlockBlobClient::stage_block` / `commit_block_list`, and the progress bar
//! moves once per block; smaller ones are one Put Blob. The download is the SDK's managed
//! download (ranged GETs), verified byte for byte against what was sent.
//!
//! `transfer.rs` moves the payload up and down; `client.rs` builds the SDK client (TLS,
//! transport, retries) and classifies its errors.

mod client;
mod transfer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::http::Url;
use azure_storage_blob::BlobServiceClient;
use futures_util::TryStreamExt as _;
use identity_core::{TokenCredential, TokenRequestOptions};

use crate::explain::{self, Context, DemoError, Failure};
use crate::jwt;
use crate::output::{Output, mib};
use crate::random::SplitMix;

use client::client;
#[cfg(test)]
use client::xml_field;
pub use client::{classify, tls_config};
use transfer::transfer;

/// Files larger than this are uploaded in blocks of this size.
pub const BLOCK_SIZE: usize = 4 * 1024 * 1024;
/// The size of the generated payload when no `--file` is given.
pub const DEFAULT_PAYLOAD: usize = 8 * 1024 * 1024;
/// The scope Blob Storage tokens are requested for.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
/// The name of the uploaded blob.
pub const BLOB_NAME: &str = "identity-demo/payload.bin";

/// What to upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// This file's contents.
    File(PathBuf),
    /// This many pseudo-random bytes.
    Generated(usize),
}

/// Options for one run against one account.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// `https://<account>.blob.core.windows.net`, or Azurite's path-style URL. No trailing
    /// slash.
    pub account_url: String,
    /// Extra trusted CA certificates (PEM) for the storage endpoint.
    pub ca_pem: Option<Vec<u8>>,
    /// What to upload.
    pub payload: Payload,
    /// The container to create (and delete).
    pub container: String,
    /// Skip the clean-up.
    pub keep: bool,
}

impl DemoOptions {
    /// Defaults: 8 MiB generated payload, a random `identity-demo-<suffix>` container.
    pub fn new(account_url: impl Into<String>) -> Self {
        Self {
            account_url: account_url.into(),
            ca_pem: None,
            payload: Payload::Generated(DEFAULT_PAYLOAD),
            container: random_container_name(),
            keep: false,
        }
    }
}

/// `identity-demo-<12 random characters>`.
pub fn random_container_name() -> String {
    let clock = identity_core::system_clock();
    format!(
        "identity-demo-{}",
        SplitMix::from_time(clock.as_ref()).suffix(12)
    )
}

/// What a successful run did.
#[derive(Clone, Debug, Default)]
pub struct DemoSummary {
    /// The credential that produced the token.
    pub credential: String,
    /// The token's audience, if it is a JWT.
    pub audience: Option<String>,
    /// Containers listed before the container was created.
    pub containers_before: usize,
    /// Whether the new container showed up in a second listing.
    pub container_listed: bool,
    /// Bytes uploaded.
    pub bytes: u64,
    /// Blocks staged (0 for a single Put Blob).
    pub blocks: usize,
    /// Whether the downloaded copy equalled the upload.
    pub verified: bool,
    /// Whether the container was deleted and is gone.
    pub cleaned_up: bool,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

/// Checks an account URL: `https://`, a host, no trailing slash (the SDK would build `//`
/// paths and the service answers 400).
///
/// # Errors
/// A message saying what to change.
pub fn validate_account_url(url: &str) -> Result<Url, String> {
    if url.starts_with("http://") {
        return Err(format!(
            "--account-url {url} uses http://; bearer tokens are sent over https only \
             (use https://, and for Azurite start it with --cert/--key)"
        ));
    }
    if !url.starts_with("https://") {
        return Err(format!(
            "--account-url {url} must start with https://, e.g. https://<account>.blob.core.windows.net"
        ));
    }
    if url.ends_with('/') {
        return Err(format!(
            "--account-url {url} ends with '/'; drop the trailing slash"
        ));
    }
    let parsed = Url::parse(url).map_err(|e| format!("--account-url {url} is not a URL: {e}"))?;
    if parsed.host_str().is_none_or(str::is_empty) || parsed.query().is_some() {
        return Err(format!(
            "--account-url {url} needs a host and no query string"
        ));
    }
    Ok(parsed)
}

/// Runs the demo with `credential` and reports each step on `output`.
///
/// # Errors
/// A [`DemoError`] naming the failed step with an explanation; after the container was
/// created, clean-up is attempted before returning it.
pub async fn run_demo(
    options: &DemoOptions,
    credential: Arc<dyn TokenCredential>,
    output: &mut Output,
) -> Result<DemoSummary, DemoError> {
    let started = Instant::now();
    let url = validate_account_url(&options.account_url)
        .map_err(|m| DemoError::local("check arguments", m))?;
    let mut cx = Context {
        account: explain::account_name(&options.account_url),
        account_url: options.account_url.clone(),
        credential: Some(credential.name().to_owned()),
        claims: None,
    };
    let payload = load_payload(&options.payload).await?;

    // 1. A token, fetched once here so the summary can name the credential and audience and
    // an explanation can use the claims; the credential's cache serves the SDK's requests.
    let step = Instant::now();
    let token = credential
        .get_token(&[STORAGE_SCOPE], &TokenRequestOptions::default())
        .await
        .map_err(|e| {
            DemoError::new(
                "get a token",
                Failure::Credential(identity_core::display_chain(&e)),
                &cx,
            )
        })?;
    let secret = token.token.secret().to_owned();
    // A chain names the member that produced the token only once it has one.
    cx.credential = Some(credential.name().to_owned());
    cx.claims = jwt::decode_claims(&secret);
    let audience = cx.claims.as_ref().and_then(|c| c.audience.clone());
    output.line(format!(
        "token      from {} (audience {}, object id {}) in {} ms",
        credential.name(),
        audience.as_deref().unwrap_or("not a JWT"),
        cx.claims
            .as_ref()
            .and_then(|c| c.object_id.as_deref())
            .unwrap_or("unknown"),
        step.elapsed().as_millis()
    ));
    let fail = |step: &str, e: azure_core::Error, cx: &Context| {
        DemoError::new(step, classify(&e), cx).redacted(&secret)
    };

    let service = client(&url, options.ca_pem.as_deref(), credential.clone())
        .map_err(|e| fail("create the blob client", e, &cx))?;

    // 2. List.
    let step = Instant::now();
    let before = list_containers(&service)
        .await
        .map_err(|e| fail("list containers", e, &cx))?;
    output.line(format!(
        "list       {} container(s) in {} ms",
        before.len(),
        step.elapsed().as_millis()
    ));

    // 3. Create.
    let step = Instant::now();
    let container = service.blob_container_client(&options.container);
    container
        .create(None)
        .await
        .map_err(|e| fail("create container", e, &cx))?;
    output.line(format!(
        "create     container {} in {} ms",
        options.container,
        step.elapsed().as_millis()
    ));

    // Everything after creation cleans up on failure too.
    let result = transfer(&service, options, &payload, output, &cx)
        .await
        .map_err(|(step, e)| fail(step, e, &cx));
    let mut summary = DemoSummary {
        credential: credential.name().to_owned(),
        audience,
        containers_before: before.len(),
        ..DemoSummary::default()
    };
    let cleanup = if options.keep {
        output.line(format!(
            "keep       container {} left in place (--keep)",
            options.container
        ));
        Ok(false)
    } else {
        clean_up(&service, &options.container, output).await
    };
    match (result, cleanup) {
        (Err(e), cleanup) => {
            if let Err(c) = cleanup {
                output.note(format!(
                    "clean-up after the failure also failed: {}",
                    explain::redact(&c.to_string(), &secret)
                ));
            }
            Err(e)
        }
        (Ok(_), Err(e)) => Err(fail("clean up", e, &cx)),
        (Ok(done), Ok(gone)) => {
            summary.container_listed = done.listed;
            summary.bytes = payload.len() as u64;
            summary.blocks = done.blocks;
            summary.verified = true;
            summary.cleaned_up = gone;
            summary.elapsed = started.elapsed();
            output.line(format!(
                "done       {} up and down, verified, with {} in {:.1} s",
                mib(summary.bytes),
                summary.credential,
                summary.elapsed.as_secs_f64()
            ));
            Ok(summary)
        }
    }
}

/// Deletes the blob (if present) and the container, then checks the container is gone.
async fn clean_up(
    service: &BlobServiceClient,
    container: &str,
    output: &mut Output,
) -> Result<bool, azure_core::Error> {
    let step = Instant::now();
    let blob = service.blob_client(container, BLOB_NAME);
    if blob.exists().await? {
        blob.delete(None).await?;
    }
    let client = service.blob_container_client(container);
    client.delete(None).await?;
    let gone = !client.exists().await?;
    output.line(format!(
        "cleanup    blob and container {container} deleted{} in {} ms",
        if gone {
            ""
        } else {
            " (container still visible)"
        },
        step.elapsed().as_millis()
    ));
    Ok(gone)
}

async fn list_containers(service: &BlobServiceClient) -> Result<Vec<String>, azure_core::Error> {
    service
        .list_containers(None)?
        .map_ok(|c| c.name.unwrap_or_default())
        .try_collect()
        .await
}

async fn load_payload(payload: &Payload) -> Result<Vec<u8>, DemoError> {
    match payload {
        Payload::Generated(len) => {
            let clock = identity_core::system_clock();
            Ok(SplitMix::from_time(clock.as_ref()).bytes(*len))
        }
        Payload::File(path) => tokio::fs::read(path).await.map_err(|e| {
            DemoError::local(
                "read --file",
                format!("cannot read {}: {e}", path.display()),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_urls_must_be_https_without_a_trailing_slash() {
        assert!(validate_account_url("https://a.blob.core.windows.net").is_ok());
        assert!(validate_account_url("https://127.0.0.1:10000/devstoreaccount1").is_ok());
        let http = validate_account_url("http://127.0.0.1:10000/devstoreaccount1").unwrap_err();
        assert!(http.contains("http://") && http.contains("https"), "{http}");
        let slash = validate_account_url("https://a.blob.core.windows.net/").unwrap_err();
        assert!(slash.contains("trailing slash"), "{slash}");
        assert!(validate_account_url("a.blob.core.windows.net").is_err());
        assert!(validate_account_url("https://a.blob.core.windows.net?sv=1").is_err());
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        assert!(
            tls_config(Some(b"not pem"))
                .unwrap_err()
                .contains("no PEM certificate")
        );
        let cert = crate::azurite::generate_certificate().unwrap();
        tls_config(Some(cert.cert_pem.as_bytes())).unwrap();
    }

    #[test]
    fn xml_error_fields_are_read() {
        let body = "<?xml version=\"1.0\"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to authenticate the request.\nRequestId:1</Message></Error>";
        assert_eq!(
            xml_field(body, "Code").as_deref(),
            Some("AuthenticationFailed")
        );
        assert!(
            xml_field(body, "Message")
                .unwrap()
                .starts_with("Server failed")
        );
        assert_eq!(xml_field(body, "Missing"), None);
    }

    #[test]
    fn a_wrapped_credential_error_is_classified_as_credential() {
        let inner = identity_core::Error::unavailable("ManagedIdentityCredential", "no endpoint");
        let sdk = identity_azure_core::to_sdk_error(inner);
        match classify(&sdk) {
            Failure::Credential(text) => assert!(text.contains("no endpoint"), "{text}"),
            other => panic!("{other:?}"),
        }
    }

    const PLANTED: &str = "eyJhbGciOiJSUzI1NiJ9.planted-token.sig";

    #[tokio::test]
    async fn a_credential_that_cannot_get_a_token_reports_why_before_any_request() {
        use identity_core::test_util::failing_credential;
        let credential = Arc::new(failing_credential(
            "ManagedIdentityCredential",
            identity_core::Error::unavailable(
                "ManagedIdentityCredential",
                "no managed identity endpoint found; set IDENTITY_ENDPOINT",
            ),
        ));
        // Port 9 on loopback: nothing is ever sent, the token step fails first.
        let options = DemoOptions::new("https://127.0.0.1:9/devstoreaccount1");
        let (mut output, out, _) = Output::captured();
        let e = run_demo(&options, credential, &mut output)
            .await
            .unwrap_err();
        assert_eq!(e.step, "get a token");
        assert!(
            e.to_string().contains(
                "ManagedIdentityCredential: no managed identity endpoint found; set IDENTITY_ENDPOINT"
            ),
            "{e}"
        );
        assert!(matches!(e.failure, Failure::Credential(_)));
        assert_eq!(out.text(), "");
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_fails_at_listing_without_echoing_the_token() {
        use identity_core::test_util::static_credential;
        let expires = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000);
        let credential = Arc::new(static_credential("Static", PLANTED, expires));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // The listener is dropped: the port refuses connections.
        let options = DemoOptions::new(format!("https://127.0.0.1:{port}/devstoreaccount1"));
        let (mut output, out, err) = Output::captured();
        let e = tokio::time::timeout(
            Duration::from_secs(60),
            run_demo(&options, credential, &mut output),
        )
        .await
        .unwrap()
        .unwrap_err();
        assert_eq!(e.step, "list containers", "{e}");
        for text in [e.to_string(), format!("{e:?}"), out.text(), err.text()] {
            assert!(!text.contains("planted"), "{text}");
        }
        assert!(
            out.text()
                .contains("token      from Static (audience not a JWT"),
            "{}",
            out.text()
        );
    }

    #[tokio::test]
    async fn an_http_account_url_is_refused_before_a_token_is_requested() {
        use identity_core::test_util::failing_credential;
        let credential = Arc::new(failing_credential(
            "X",
            identity_core::Error::unavailable("X", "must not be called"),
        ));
        let options = DemoOptions::new("http://127.0.0.1:10000/devstoreaccount1");
        let (mut output, _, _) = Output::captured();
        let e = run_demo(&options, credential, &mut output)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("https"), "{e}");
        assert!(!e.to_string().contains("must not be called"), "{e}");
    }

    fn service_error(status: u16, code: &str) -> azure_core::Error {
        use azure_core::http::{RawResponse, StatusCode, headers::Headers};
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code>\
             <Message>This request is not authorized to perform this operation using this \
             permission.\nRequestId:1</Message></Error>"
        );
        let status = StatusCode::from(status);
        azure_core::Error::new(
            azure_core::error::ErrorKind::HttpResponse {
                status,
                error_code: Some(code.to_owned()),
                raw_response: Some(Box::new(RawResponse::from_bytes(
                    status,
                    Headers::new(),
                    body.into_bytes(),
                ))),
            },
            std::io::Error::other("http error"),
        )
    }

    #[test]
    fn a_permission_mismatch_from_the_sdk_explains_the_role_and_the_command() {
        let claims = jwt::decode_claims(&jwt::encode_unsigned(
            serde_json::json!({"aud": "https://storage.azure.com", "oid": "4444-oid", "idtyp": "user"})
                .as_object()
                .unwrap(),
        ));
        let cx = Context {
            account: explain::account_name("https://contosodata.blob.core.windows.net"),
            account_url: "https://contosodata.blob.core.windows.net".into(),
            credential: Some("AzureCliCredential".into()),
            claims,
        };
        let failure = classify(&service_error(403, "AuthorizationPermissionMismatch"));
        let Failure::Service {
            status,
            code,
            message,
        } = &failure
        else {
            panic!("{failure:?}")
        };
        assert_eq!(*status, 403);
        assert_eq!(code.as_deref(), Some("AuthorizationPermissionMismatch"));
        assert!(
            message
                .as_deref()
                .unwrap()
                .starts_with("This request is not authorized")
        );
        let e = DemoError::new("create container", failure, &cx).redacted(PLANTED);
        let text = e.to_string();
        assert!(text.starts_with("create container failed: "), "{text}");
        assert!(
            text.contains("--assignee-object-id 4444-oid --assignee-principal-type User"),
            "{text}"
        );
        assert!(
            text.contains("$(az storage account show --name contosodata --query id --output tsv)"),
            "{text}"
        );
    }

    #[test]
    fn container_names_are_valid() {
        let name = random_container_name();
        assert!(name.starts_with("identity-demo-"));
        assert!(name.len() <= 63);
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }
}
