//! The AKS identity-binding token proxy, emulated on 127.0.0.1: TLS with a throwaway CA made by
//! rcgen, a certificate valid only for the configured server name, and a check of the SNI the
//! client sent. The credential must reach it at `{proxy}/{tenant}/oauth2/v2.0/token`, trust only
//! the configured CA, and follow a rotation of the CA file.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions fail loudly on purpose"
)]

use std::sync::Arc;
use std::time::Duration;

use identity_core::test_util::{FakeClock, RecordingSleeper};
use identity_core::{Env, ErrorKind, TokenCredential, TokenRequestOptions};
use identity_entra::WorkloadIdentityCredential;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::time::timeout;

mod common;

use common::{Seen, TlsServer, server_config};

const LIMIT: Duration = Duration::from_secs(20);
const SNI: &str = "aks-token-proxy.test";
const FEDERATED: &str = "planted-service-account-token";

/// A CA and a server certificate it signed for [`SNI`].
struct Pki {
    ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn pki(common_name: &str) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![SNI.to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    }
}

/// The emulated proxy: answers a token to requests whose SNI is [`SNI`], closes others. The
/// certificate it serves can be swapped (a CA rotation).
struct Proxy(TlsServer);

fn config(pki: &Pki) -> Arc<rustls::ServerConfig> {
    server_config(pki.chain.clone(), pki.key.clone_key())
}

impl Proxy {
    async fn start(pki: &Pki) -> Self {
        Self(TlsServer::start(config(pki), "PROXY-TOKEN", Some(SNI)).await)
    }

    fn serve(&self, pki: &Pki) {
        self.0.serve(config(pki));
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.0.addr.port())
    }

    fn seen(&self) -> Vec<Seen> {
        self.0.seen()
    }
}

struct Pod {
    dir: tempfile::TempDir,
}

impl Pod {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), FEDERATED).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// A workload identity pod's environment plus `extra`.
    fn env(&self, extra: &[(&str, String)]) -> Env {
        let mut pairs = vec![
            ("AZURE_TENANT_ID", "tenant-b".to_owned()),
            ("AZURE_CLIENT_ID", "client-b".to_owned()),
            ("AZURE_FEDERATED_TOKEN_FILE", self.path("token")),
        ];
        pairs.extend(extra.iter().cloned());
        Env::from_pairs(pairs)
    }
}

fn proxied(env: Env) -> Result<WorkloadIdentityCredential, identity_core::Error> {
    let clock = FakeClock::at_2030();
    WorkloadIdentityCredential::builder()
        .runtime(
            identity_core::Runtime::with_env(env)
                .clock(clock.shared())
                .sleeper(RecordingSleeper::advancing(clock).shared()),
        )
        .enable_kubernetes_token_proxy(true)
        .retry_policy(identity_core::retry::RetryPolicy::none())
        .build()
}

async fn get(
    credential: &WorkloadIdentityCredential,
    scope: &str,
) -> Result<String, identity_core::Error> {
    timeout(
        LIMIT,
        credential.get_token(&[scope], &TokenRequestOptions::default()),
    )
    .await
    .unwrap()
    .map(|t| t.token.secret().to_owned())
}

#[tokio::test]
async fn the_token_request_goes_to_the_proxy_with_its_sni_and_ca() {
    let ca = pki("identity-binding test CA");
    let proxy = Proxy::start(&ca).await;
    let pod = Pod::new();
    std::fs::write(pod.path("ca.pem"), &ca.ca_pem).unwrap();
    let credential = proxied(pod.env(&[
        ("AZURE_KUBERNETES_TOKEN_PROXY", proxy.url("/proxy-prefix/")),
        ("AZURE_KUBERNETES_SNI_NAME", SNI.to_owned()),
        ("AZURE_KUBERNETES_CA_FILE", pod.path("ca.pem")),
    ]))
    .unwrap();
    assert_eq!(
        get(&credential, "https://vault.azure.net/.default")
            .await
            .unwrap(),
        "PROXY-TOKEN"
    );
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].sni.as_deref(), Some(SNI));
    assert!(
        seen[0]
            .head
            .starts_with("POST /proxy-prefix/tenant-b/oauth2/v2.0/token HTTP/1.1"),
        "{}",
        seen[0].head
    );
    let host = format!("host: 127.0.0.1:{}", proxy.0.addr.port());
    assert!(
        seen[0].head.to_ascii_lowercase().contains(&host),
        "{}",
        seen[0].head
    );
    let form: Vec<(String, String)> = form_urlencoded::parse(seen[0].body.as_bytes())
        .into_owned()
        .collect();
    assert!(
        form.contains(&("client_assertion".to_owned(), FEDERATED.to_owned())),
        "{form:?}"
    );
    assert!(form.contains(&("client_id".to_owned(), "client-b".to_owned())));
    assert!(!format!("{credential:?}").contains("planted"));
}

#[tokio::test]
async fn inline_ca_data_works_too() {
    let ca = pki("identity-binding test CA");
    let proxy = Proxy::start(&ca).await;
    let pod = Pod::new();
    let credential = proxied(pod.env(&[
        ("AZURE_KUBERNETES_TOKEN_PROXY", proxy.url("")),
        ("AZURE_KUBERNETES_SNI_NAME", SNI.to_owned()),
        ("AZURE_KUBERNETES_CA_DATA", ca.ca_pem.clone()),
    ]))
    .unwrap();
    assert_eq!(get(&credential, "s").await.unwrap(), "PROXY-TOKEN");
    assert!(
        proxy.seen()[0]
            .head
            .starts_with("POST /tenant-b/oauth2/v2.0/token ")
    );
}

#[tokio::test]
async fn another_ca_or_a_missing_sni_is_refused_before_any_request() {
    let ca = pki("identity-binding test CA");
    let other = pki("some other CA");
    let proxy = Proxy::start(&ca).await;
    let pod = Pod::new();
    // A CA that did not sign the proxy's certificate.
    let credential = proxied(pod.env(&[
        ("AZURE_KUBERNETES_TOKEN_PROXY", proxy.url("")),
        ("AZURE_KUBERNETES_SNI_NAME", SNI.to_owned()),
        ("AZURE_KUBERNETES_CA_DATA", other.ca_pem.clone()),
    ]))
    .unwrap();
    let err = get(&credential, "s").await.unwrap_err();
    // A certificate that fails verification: said so at the top, not retried.
    assert_eq!(err.kind(), ErrorKind::AuthenticationFailed, "{err}");
    assert!(err.to_string().contains("issuer is not trusted"), "{err}");
    // Without the server name the client names 127.0.0.1, which the certificate does not cover.
    let credential = proxied(pod.env(&[
        ("AZURE_KUBERNETES_TOKEN_PROXY", proxy.url("")),
        ("AZURE_KUBERNETES_CA_DATA", ca.ca_pem.clone()),
    ]))
    .unwrap();
    let err = get(&credential, "s").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AuthenticationFailed, "{err}");
    assert!(
        err.to_string().contains("not valid for the host name"),
        "{err}"
    );
    assert!(
        proxy.seen().is_empty(),
        "no request may reach an unverified proxy"
    );
    assert!(!format!("{err} {err:?}").contains("planted"));
}

#[tokio::test]
async fn the_ca_file_is_reread_when_it_rotates_and_kept_while_it_is_broken() {
    let first = pki("CA one");
    let second = pki("CA two");
    let proxy = Proxy::start(&first).await;
    let pod = Pod::new();
    let ca_file = pod.path("ca.pem");
    std::fs::write(&ca_file, &first.ca_pem).unwrap();
    let credential = proxied(pod.env(&[
        ("AZURE_KUBERNETES_TOKEN_PROXY", proxy.url("")),
        ("AZURE_KUBERNETES_SNI_NAME", SNI.to_owned()),
        ("AZURE_KUBERNETES_CA_FILE", ca_file.clone()),
    ]))
    .unwrap();
    assert!(get(&credential, "https://a/.default").await.is_ok());
    // A half-written or emptied file during the rotation: the old CA stays in use.
    std::fs::write(&ca_file, "-----BEGIN CERT").unwrap();
    assert!(get(&credential, "https://b/.default").await.is_ok());
    // The proxy moves to a certificate from the second CA, and the file follows.
    proxy.serve(&second);
    let staged = pod.path("ca.pem.new");
    std::fs::write(&staged, &second.ca_pem).unwrap();
    std::fs::rename(&staged, &ca_file).unwrap();
    assert_eq!(
        get(&credential, "https://c/.default").await.unwrap(),
        "PROXY-TOKEN"
    );
    assert_eq!(proxy.seen().len(), 3);
}

#[tokio::test]
async fn the_proxy_is_ignored_unless_enabled() {
    let ca = pki("identity-binding test CA");
    let proxy = Proxy::start(&ca).await;
    let pod = Pod::new();
    let env = pod.env(&[
        ("AZURE_KUBERNETES_TOKEN_PROXY", proxy.url("")),
        ("AZURE_KUBERNETES_SNI_NAME", SNI.to_owned()),
        ("AZURE_KUBERNETES_CA_DATA", ca.ca_pem.clone()),
        // The authority is a refused loopback port: the request fails there, not at the proxy.
        ("AZURE_AUTHORITY_HOST", "https://127.0.0.1:9".to_owned()),
    ]);
    let credential = WorkloadIdentityCredential::builder()
        .runtime(identity_core::Runtime::with_env(env))
        .retry_policy(identity_core::retry::RetryPolicy::none())
        .build()
        .unwrap();
    let err = get(&credential, "s").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    assert!(proxy.seen().is_empty());
}

#[test]
fn invalid_proxy_settings_fail_the_build() {
    let pod = Pod::new();
    for (extra, expected) in [
        (
            vec![(
                "AZURE_KUBERNETES_TOKEN_PROXY",
                "http://10.0.0.1:8443".to_owned(),
            )],
            "https",
        ),
        (
            vec![(
                "AZURE_KUBERNETES_TOKEN_PROXY",
                "https://u:planted@10.0.0.1".to_owned(),
            )],
            "user information",
        ),
        (
            vec![(
                "AZURE_KUBERNETES_TOKEN_PROXY",
                "https://10.0.0.1/?a=b".to_owned(),
            )],
            "query",
        ),
        (
            vec![("AZURE_KUBERNETES_SNI_NAME", SNI.to_owned())],
            "without AZURE_KUBERNETES_TOKEN_PROXY",
        ),
        (
            vec![
                (
                    "AZURE_KUBERNETES_TOKEN_PROXY",
                    "https://10.0.0.1".to_owned(),
                ),
                ("AZURE_KUBERNETES_CA_FILE", pod.path("absent.pem")),
            ],
            "absent.pem",
        ),
    ] {
        let err = proxied(pod.env(&extra)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfiguration, "{err}");
        assert!(err.message().contains(expected), "{expected}: {err}");
        assert!(!err.message().contains("planted"), "{err}");
    }
}
