//! Which members `DefaultAzureCredential` keeps (docs/protocol.md §4.3): a selection table over
//! environment snapshots and builder calls, checked by one `check(rows)` helper; then how
//! `AZURE_CLIENT_ID` and the identity setters reach the managed-identity member (§10 case 43).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions fail loudly on purpose"
)]

use identity_chain::{
    AZURE_TOKEN_CREDENTIALS, CredentialKind, DefaultAzureCredential, DefaultAzureCredentialBuilder,
    Env, ErrorKind, Runtime, TokenCredential, TokenRequestOptions,
};
use identity_tests::{ARM_SCOPE, FAR_EXPIRY, bounded, no_wait_runtime};
use wiremock::matchers::{method, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ENV: &str = "EnvironmentCredential";
const WORKLOAD: &str = "WorkloadIdentityCredential";
const MI: &str = "ManagedIdentityCredential";
const CLI: &str = "AzureCliCredential";
const PWSH: &str = "AzurePowerShellCredential";
const AZD: &str = "AzureDeveloperCliCredential";
const ALL: [&str; 6] = [ENV, WORKLOAD, MI, CLI, PWSH, AZD];

/// What a row expects: the members in order, or a construction error of this kind whose
/// message contains every listed fragment.
enum Expect {
    Members(&'static [&'static str]),
    Error(ErrorKind, &'static [&'static str]),
}

struct Row {
    /// `AZURE_TOKEN_CREDENTIALS`, if set.
    value: Option<&'static str>,
    /// Builder calls applied after `env`.
    configure: fn(DefaultAzureCredentialBuilder) -> DefaultAzureCredentialBuilder,
    expect: Expect,
}

fn same(b: DefaultAzureCredentialBuilder) -> DefaultAzureCredentialBuilder {
    b
}

fn row(value: Option<&'static str>, expect: Expect) -> Row {
    Row {
        value,
        configure: same,
        expect,
    }
}

const VALID_VALUES: &[&str] = &[
    "dev",
    "prod",
    "environmentcredential",
    "workloadidentitycredential",
    "managedidentitycredential",
    "azureclicredential",
    "azurepowershellcredential",
    "azuredeveloperclicredential",
];

fn check(rows: Vec<Row>) {
    for (index, row) in rows.into_iter().enumerate() {
        let env = match row.value {
            Some(value) => Env::from_pairs([(AZURE_TOKEN_CREDENTIALS, value)]),
            None => Env::empty(),
        };
        let built =
            (row.configure)(DefaultAzureCredential::builder().runtime(Runtime::with_env(env)))
                .build();
        let what = format!("row {index} (AZURE_TOKEN_CREDENTIALS={:?})", row.value);
        match (row.expect, built) {
            (Expect::Members(expected), Ok(credential)) => {
                assert_eq!(credential.members(), expected, "{what}");
                assert_eq!(credential.selected_credential(), None, "{what}");
            }
            (Expect::Error(kind, fragments), Err(error)) => {
                assert_eq!(error.kind(), kind, "{what}: {error}");
                let text = error.to_string().to_ascii_lowercase();
                for fragment in fragments {
                    assert!(
                        text.contains(fragment),
                        "{what}: {fragment:?} not in {text}"
                    );
                }
            }
            (Expect::Members(expected), Err(error)) => {
                panic!("{what}: expected {expected:?}, got the error {error}")
            }
            (Expect::Error(..), Ok(credential)) => {
                panic!("{what}: expected an error, got {:?}", credential.members())
            }
        }
    }
}

#[test]
fn every_value_of_azure_token_credentials_selects_its_members() {
    use Expect::{Error, Members};
    check(vec![
        row(None, Members(&ALL)),
        row(Some(""), Members(&ALL)),
        row(Some("   "), Members(&ALL)),
        row(Some("dev"), Members(&[CLI, PWSH, AZD])),
        row(Some("DEV"), Members(&[CLI, PWSH, AZD])),
        row(Some(" PROD "), Members(&[ENV, WORKLOAD, MI])),
        row(Some("prod"), Members(&[ENV, WORKLOAD, MI])),
        row(Some("environmentCREDENTIAL"), Members(&[ENV])),
        row(Some("WorkloadIdentityCredential"), Members(&[WORKLOAD])),
        row(Some("managedidentitycredential"), Members(&[MI])),
        row(Some("AZURECLICREDENTIAL"), Members(&[CLI])),
        row(Some("azurePowerShellCredential"), Members(&[PWSH])),
        row(Some(" AzureDeveloperCliCredential "), Members(&[AZD])),
        row(
            Some("bogus"),
            Error(ErrorKind::InvalidConfiguration, VALID_VALUES),
        ),
        // Members of the reference SDK's chain that this library does not have.
        row(
            Some("sharedtokencachecredential"),
            Error(ErrorKind::InvalidConfiguration, VALID_VALUES),
        ),
        // The interactive browser, off by default, is kept when named.
        row(
            Some("interactivebrowsercredential"),
            Members(&["InteractiveBrowserCredential"]),
        ),
        row(
            Some("dev,prod"),
            Error(ErrorKind::InvalidConfiguration, &["dev", "prod"]),
        ),
    ]);
}

#[test]
fn explicit_exclusions_win_over_azure_token_credentials() {
    use Expect::Members;
    check(vec![
        // §4.3: an explicit `false` adds a member back.
        Row {
            value: Some("AzureCliCredential"),
            configure: |b| b.exclude_environment_credential(false),
            expect: Members(&[ENV, CLI]),
        },
        Row {
            value: Some("dev"),
            configure: |b| b.exclude_managed_identity_credential(false),
            expect: Members(&[MI, CLI, PWSH, AZD]),
        },
        Row {
            value: Some("prod"),
            configure: |b| b.exclude_developer_cli_credential(false),
            expect: Members(&[ENV, WORKLOAD, MI, AZD]),
        },
        // An explicit `true` removes one.
        Row {
            value: Some("dev"),
            configure: |b| b.exclude_cli_credential(true),
            expect: Members(&[PWSH, AZD]),
        },
        Row {
            value: Some("prod"),
            configure: |b| b.exclude_workload_identity_credential(true),
            expect: Members(&[ENV, MI]),
        },
        Row {
            value: Some("azureclicredential"),
            configure: |b| b.exclude_cli_credential(true),
            expect: Members(&[]),
        },
        Row {
            value: None,
            configure: |b| {
                b.exclude_environment_credential(true)
                    .exclude_powershell_credential(true)
            },
            expect: Members(&[WORKLOAD, MI, CLI, AZD]),
        },
        Row {
            value: None,
            configure: |b| b.exclude(CredentialKind::ManagedIdentity, true),
            expect: Members(&[ENV, WORKLOAD, CLI, PWSH, AZD]),
        },
        // Excluding nothing explicitly changes nothing.
        Row {
            value: None,
            configure: |b| b.exclude_cli_credential(false),
            expect: Members(&ALL),
        },
    ]);
}

#[test]
fn require_envvar_demands_a_non_blank_azure_token_credentials() {
    use Expect::{Error, Members};
    check(vec![
        Row {
            value: None,
            configure: |b| b.require_envvar(true),
            expect: Error(
                ErrorKind::InvalidConfiguration,
                &["azure_token_credentials", "dev", "prod"],
            ),
        },
        Row {
            value: Some("  "),
            configure: |b| b.require_envvar(true),
            expect: Error(
                ErrorKind::InvalidConfiguration,
                &["azure_token_credentials"],
            ),
        },
        Row {
            value: Some("dev"),
            configure: |b| b.require_envvar(true),
            expect: Members(&[CLI, PWSH, AZD]),
        },
        Row {
            value: Some("nonsense"),
            configure: |b| b.require_envvar(true),
            expect: Error(ErrorKind::InvalidConfiguration, VALID_VALUES),
        },
        Row {
            value: None,
            configure: |b| b.require_envvar(false),
            expect: Members(&ALL),
        },
    ]);
}

/// An App Service mock that answers only a request whose query satisfies `matcher`, and the
/// chain's token from it.
async fn app_service_sees(
    matcher: impl wiremock::Match + 'static,
    azure_client_id: Option<&str>,
    configure: fn(DefaultAzureCredentialBuilder) -> DefaultAzureCredentialBuilder,
) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(matcher)
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "APP-SERVICE-TOKEN",
            "expires_on": FAR_EXPIRY.to_string(),
            "resource": "https://management.azure.com",
            "token_type": "Bearer",
        })))
        .expect(1)
        .mount(&server)
        .await;
    let mut env = Env::from_pairs([
        ("IDENTITY_ENDPOINT", format!("{}/msi/token", server.uri())),
        ("IDENTITY_HEADER", "planted-identity-header".to_owned()),
    ]);
    if let Some(id) = azure_client_id {
        env = env.with("AZURE_CLIENT_ID", id);
    }
    let credential = configure(DefaultAzureCredential::builder().runtime(no_wait_runtime(env)))
        .build()
        .unwrap();
    let token = bounded(credential.get_token(&[ARM_SCOPE], &TokenRequestOptions::default()))
        .await
        .unwrap();
    assert_eq!(token.token.secret(), "APP-SERVICE-TOKEN");
    assert_eq!(credential.selected_credential(), Some(MI));
    server
}

#[tokio::test]
async fn azure_client_id_makes_managed_identity_ask_for_that_user_assigned_identity() {
    let server = app_service_sees(
        query_param("client_id", "client-x"),
        Some("client-x"),
        |b| b,
    )
    .await;
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn system_assigned_managed_identity_ignores_azure_client_id() {
    let server = app_service_sees(query_param_is_missing("client_id"), Some("client-x"), |b| {
        b.system_assigned_managed_identity()
    })
    .await;
    let seen = server.received_requests().await.unwrap();
    assert_eq!(seen.len(), 1);
    for id in ["client_id", "object_id", "mi_res_id"] {
        assert!(
            seen[0].url.query_pairs().all(|(k, _)| k != id),
            "{}",
            seen[0].url
        );
    }
}

#[tokio::test]
async fn a_managed_identity_resource_id_is_sent_as_mi_res_id() {
    const RESOURCE_ID: &str = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/i";
    let server = app_service_sees(
        query_param("mi_res_id", RESOURCE_ID),
        Some("client-x"),
        |b| b.managed_identity_resource_id(RESOURCE_ID),
    )
    .await;
    let seen = server.received_requests().await.unwrap();
    assert!(seen[0].url.query_pairs().all(|(k, _)| k != "client_id"));
}

#[tokio::test]
async fn a_managed_identity_client_id_wins_over_azure_client_id() {
    let server = app_service_sees(
        query_param("client_id", "client-y"),
        Some("client-x"),
        |b| b.managed_identity_client_id("client-y"),
    )
    .await;
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_managed_identity_object_id_is_sent_as_object_id() {
    let server = app_service_sees(query_param("object_id", "object-z"), None, |b| {
        b.managed_identity_object_id("object-z")
    })
    .await;
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

/// Matches requests without a `Metadata` header (the IMDS probe).
struct NoMetadataHeader;

impl wiremock::Match for NoMetadataHeader {
    fn matches(&self, request: &wiremock::Request) -> bool {
        !request.headers.contains_key("Metadata")
    }
}

/// An IMDS mock: the probe (no `Metadata` header) gets 400 and is expected `probes` times;
/// the real request must satisfy `matcher` and is expected once.
async fn imds(matcher: impl wiremock::Match + 'static, probes: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(NoMetadataHeader)
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": "invalid_request",
            "error_description": "Required metadata header not specified",
        })))
        .expect(probes)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::header("Metadata", "true"))
        .and(matcher)
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "IMDS-TOKEN",
            "expires_in": "3600",
            "expires_on": FAR_EXPIRY.to_string(),
            "resource": "https://management.azure.com",
            "token_type": "Bearer",
        })))
        .expect(1)
        .mount(&server)
        .await;
    server
}

async fn imds_token(server: &MockServer, env: Env) -> DefaultAzureCredential {
    let credential = DefaultAzureCredential::builder()
        .runtime(no_wait_runtime(env))
        .imds_endpoint(format!("{}/metadata/identity/oauth2/token", server.uri()))
        .build()
        .unwrap();
    let token = bounded(credential.get_token(&[ARM_SCOPE], &TokenRequestOptions::default()))
        .await
        .unwrap();
    assert_eq!(token.token.secret(), "IMDS-TOKEN");
    assert_eq!(credential.selected_credential(), Some(MI));
    credential
}

#[tokio::test]
async fn managed_identity_selected_by_name_sends_no_imds_probe() {
    let server = imds(query_param_is_missing("client_id"), 0).await;
    let credential = imds_token(
        &server,
        Env::from_pairs([(AZURE_TOKEN_CREDENTIALS, "ManagedIdentityCredential")]),
    )
    .await;
    assert_eq!(credential.members(), [MI]);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn azure_client_id_reaches_imds_as_client_id() {
    let server = imds(query_param("client_id", "client-x"), 1).await;
    imds_token(&server, Env::from_pairs([("AZURE_CLIENT_ID", "client-x")])).await;
    let seen = server.received_requests().await.unwrap();
    assert_eq!(seen.len(), 2);
    // The probe asks for the same identity as the real request.
    assert!(
        seen[0]
            .url
            .query_pairs()
            .any(|(k, v)| k == "client_id" && v == "client-x"),
        "{}",
        seen[0].url
    );
}
