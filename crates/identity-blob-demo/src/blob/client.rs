//! The SDK client for the storage endpoint (rustls on ring, an extra CA, quick retries) and
//! the classification of its errors.

use std::sync::Arc;
use std::time::Duration;

use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport, Url};
use azure_storage_blob::{BlobServiceClient, BlobServiceClientOptions};
use identity_azure_core::AzureCoreCredential;
use identity_core::TokenCredential;

use crate::explain::Failure;

/// The TLS configuration for the storage endpoint: rustls on the ring provider, trusting the
/// platform's certificate store plus `ca_pem`.
///
/// reqwest's `rustls` feature would bring its default provider, aws-lc-rs, which needs a C
/// toolchain (aws-lc-sys) and, through feature unification, would switch it on for every
/// crate in a workspace build. ring is already in the tree (identity-entra, rcgen).
///
/// # Errors
/// A message when `ca_pem` holds no certificate or an unusable one, or when no trusted
/// certificate is available at all.
pub fn tls_config(ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    // Parts of the platform store that cannot be read are skipped: the extra CA may be all
    // that is needed (Azurite).
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(pem) = ca_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("--ca-file is not valid PEM: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("--ca-file holds an unusable certificate: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err("--ca-file holds no PEM certificate".to_owned());
        }
    }
    if roots.is_empty() {
        return Err(
            "no trusted CA certificate: the platform certificate store is empty; install \
             ca-certificates or pass --ca-file"
                .to_owned(),
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("the TLS configuration is invalid: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The blob service client: the SDK with our credential and a reqwest transport that trusts
/// `ca_pem` in addition to the system roots. No gzip/deflate features are enabled on
/// reqwest, so responses are never decompressed behind the SDK's back (its ranged downloads
/// need the raw bytes).
pub(super) fn client(
    url: &Url,
    ca_pem: Option<&[u8]>,
    credential: Arc<dyn TokenCredential>,
) -> Result<BlobServiceClient, azure_core::Error> {
    let other = |e: String| azure_core::Error::with_message(azure_core::error::ErrorKind::Other, e);
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(ca_pem).map_err(other)?)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| azure_core::Error::new(azure_core::error::ErrorKind::Other, e))?;
    let options = BlobServiceClientOptions {
        client_options: ClientOptions {
            transport: Some(Transport::new(Arc::new(http))),
            // The SDK's default retries take about 80 s to give up on an untrusted
            // certificate; two quick retries keep transient 503s covered without that wait.
            retry: RetryOptions::exponential(ExponentialRetryOptions {
                max_retries: 2,
                max_total_elapsed: azure_core::time::Duration::seconds(20),
                ..ExponentialRetryOptions::default()
            }),
            ..ClientOptions::default()
        },
        ..BlobServiceClientOptions::default()
    };
    BlobServiceClient::new(
        url.clone(),
        Some(AzureCoreCredential::shared(credential)),
        Some(options),
    )
}

/// Classifies an SDK error: a service answer (status, code, message), a credential failure
/// (the wrapped `identity_core::Error`'s full report), or anything else with its causes.
pub fn classify(error: &azure_core::Error) -> Failure {
    if let azure_core::error::ErrorKind::HttpResponse {
        status,
        error_code,
        raw_response,
    } = error.kind()
    {
        let body = raw_response
            .as_ref()
            .map(|r| String::from_utf8_lossy(r.body().as_ref()).into_owned())
            .unwrap_or_default();
        return Failure::Service {
            status: u16::from(*status),
            code: error_code.clone().or_else(|| xml_field(&body, "Code")),
            message: xml_field(&body, "Message")
                .map(|m| m.lines().next().unwrap_or_default().to_owned()),
        };
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(c) = cause {
        if let Some(inner) = c.downcast_ref::<identity_core::Error>() {
            return Failure::Credential(identity_core::display_chain(inner));
        }
        if let Some(sdk) = c.downcast_ref::<azure_core::Error>() {
            if let Some(inner) = sdk.downcast_ref::<identity_core::Error>() {
                return Failure::Credential(identity_core::display_chain(inner));
            }
        }
        cause = c.source();
    }
    Failure::Other(identity_core::display_chain(error))
}

/// The text of `<name>…</name>` in a small XML error body.
pub(super) fn xml_field(body: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = body.find(&open)? + open.len();
    let end = start + body[start..].find(&close)?;
    Some(body[start..end].trim().to_owned())
}
