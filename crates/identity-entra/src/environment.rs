//! [`EnvironmentCredential`]: a service principal configured through environment variables
//! (docs/protocol.md §6.2).
//!
//! Chosen once, at build time, from the injected [`Env`]; the first complete set wins, where
//! "set" means *present* (even empty), as in the reference:
//!
//! 1. `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET` → [`ClientSecretCredential`];
//! 2. `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_CERTIFICATE_PATH` →
//!    [`ClientCertificateCredential`] with `AZURE_CLIENT_CERTIFICATE_PASSWORD` (optional) and
//!    `AZURE_CLIENT_SEND_CERTIFICATE_CHAIN`, a boolean: `1` or `true` (any case) send `x5c`,
//!    anything else does not. This deviates on purpose from the reference, where any
//!    non-empty value, `false` included, turns it on (§9 #10).
//!
//! A secret beats a certificate when both are present. `AZURE_AUTHORITY_HOST` selects the
//! cloud.
//!
//! Username/password (`AZURE_USERNAME`, `AZURE_PASSWORD`: the deprecated resource-owner
//! password flow, which cannot satisfy multi-factor authentication) is **not** implemented.
//!
//! [`build`](EnvironmentCredentialBuilder::build) does not fail on the environment's account,
//! so a chain such as `DefaultAzureCredential` can always be built. Instead `get_token` reports:
//! * nothing complete configured → [`ErrorKind::Unavailable`] naming the missing variables (a
//!   chain moves on);
//! * a selected set that is unusable (a variable present but empty, an invalid tenant id, an
//!   unreadable certificate, a wrong PKCS#12 password, a non-`https` authority) →
//!   [`ErrorKind::InvalidConfiguration`] saying what to fix (a chain stops: the environment
//!   asked for this credential).
//!
//! [`ErrorKind::Unavailable`]: identity_core::ErrorKind::Unavailable
//! [`ErrorKind::InvalidConfiguration`]: identity_core::ErrorKind::InvalidConfiguration

use std::fmt;

use identity_core::TokenRequestOptions as Options;
use identity_core::{Env, Error, TokenCredential};

use crate::credential::sealed::Fetch;
use crate::credential::{Credential, CredentialBuilder, TokenFuture};
use crate::options::CommonOptions;
use crate::{ClientCertificateCredential, ClientSecretCredential};

const NAME: &str = "EnvironmentCredential";

/// The tenant id variable.
pub const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
/// The client id variable.
pub const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
/// The client secret variable.
pub const AZURE_CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";
/// The certificate path variable (PEM, or PKCS#12 with the `pkcs12` feature).
pub const AZURE_CLIENT_CERTIFICATE_PATH: &str = "AZURE_CLIENT_CERTIFICATE_PATH";
/// The certificate password variable.
pub const AZURE_CLIENT_CERTIFICATE_PASSWORD: &str = "AZURE_CLIENT_CERTIFICATE_PASSWORD";
/// The variable asking for the certificate chain (`x5c`) to be sent.
pub const AZURE_CLIENT_SEND_CERTIFICATE_CHAIN: &str = "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN";
/// The (unsupported) username variable of the deprecated password flow.
pub const AZURE_USERNAME: &str = "AZURE_USERNAME";
/// The (unsupported) password variable of the deprecated password flow.
pub const AZURE_PASSWORD: &str = "AZURE_PASSWORD";

/// A service principal configured through environment variables. See the
/// [module docs](self).
///
/// ```no_run
/// # fn demo() -> Result<(), identity_chain::Error> {
/// let credential = identity_chain::EnvironmentCredential::builder().build()?;
/// // The credential the variables selected (e.g. `ClientSecretCredential`), or none.
/// println!("{:?}", credential.selected());
/// # Ok(()) }
/// ```
pub type EnvironmentCredential = Credential<Environment>;

/// What an [`EnvironmentCredential`] holds: the credential the environment selected.
#[derive(Clone)]
pub struct Environment {
    selected: Selected,
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(NAME)
            .field("selected", &self.selected)
            .finish()
    }
}

#[derive(Clone, Debug)]
enum Selected {
    Secret(ClientSecretCredential),
    Certificate(ClientCertificateCredential),
    Failed(Error),
}

impl EnvironmentCredential {
    /// A builder.
    pub fn builder() -> EnvironmentCredentialBuilder {
        EnvironmentCredentialBuilder::default()
    }

    /// The credential the environment selected, by type name, if the selected set is usable.
    pub fn selected(&self) -> Option<&'static str> {
        match &self.kind.selected {
            Selected::Secret(c) => Some(c.name()),
            Selected::Certificate(c) => Some(c.name()),
            Selected::Failed(_) => None,
        }
    }
}

impl Fetch for Environment {
    fn fetch<'a>(&'a self, scopes: &'a [&'a str], options: &'a Options) -> TokenFuture<'a> {
        Box::pin(async move {
            let result = match &self.selected {
                Selected::Secret(c) => c.get_token(scopes, options).await,
                Selected::Certificate(c) => c.get_token(scopes, options).await,
                Selected::Failed(e) => Err(e.clone()),
            };
            result.map_err(|e| e.with_credential(NAME))
        })
    }
}

/// Builds an [`EnvironmentCredential`]: the shared setters of [`CredentialBuilder`] (no tenant
/// or client id: those come from the environment).
pub type EnvironmentCredentialBuilder = CredentialBuilder<EnvironmentSettings>;

/// The settings only an [`EnvironmentCredentialBuilder`] has: none.
#[derive(Clone, Debug, Default)]
pub struct EnvironmentSettings {}

impl EnvironmentCredentialBuilder {
    /// Reads the environment and builds the credential.
    ///
    /// # Errors
    /// None today: problems with the environment are reported by `get_token` (see the
    /// [module docs](self)). The `Result` leaves room for builder-level checks.
    pub fn build(mut self) -> Result<EnvironmentCredential, Error> {
        self.common.resolve();
        let env = self.common.env();
        let selected = select(&self.common, &env);
        let source = match &selected {
            Selected::Secret(_) => "client_secret",
            Selected::Certificate(_) => "client_certificate",
            Selected::Failed(_) => "unconfigured",
        };
        Ok(Credential::new(NAME, source, Environment { selected }))
    }
}

fn select(common: &CommonOptions, env: &Env) -> Selected {
    let has = |name| env.is_present(name);
    let base = has(AZURE_TENANT_ID) && has(AZURE_CLIENT_ID);
    if base && has(AZURE_CLIENT_SECRET) {
        return match secret(common, env) {
            Ok(c) => Selected::Secret(c),
            Err(e) => Selected::Failed(invalid("client secret", &e)),
        };
    }
    if base && has(AZURE_CLIENT_CERTIFICATE_PATH) {
        return match certificate(common, env) {
            Ok(c) => Selected::Certificate(c),
            Err(e) => Selected::Failed(invalid("client certificate", &e)),
        };
    }
    let mut missing: Vec<&str> = [AZURE_TENANT_ID, AZURE_CLIENT_ID]
        .into_iter()
        .filter(|name| !has(name))
        .collect();
    if !has(AZURE_CLIENT_SECRET) && !has(AZURE_CLIENT_CERTIFICATE_PATH) {
        missing.push("AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH");
    }
    let mut message = format!(
        "environment variables are not fully configured; missing: {}. Set AZURE_TENANT_ID, AZURE_CLIENT_ID and \
         either AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH",
        missing.join(", ")
    );
    if has(AZURE_USERNAME) || has(AZURE_PASSWORD) {
        message.push_str(
            "; username/password authentication (AZURE_USERNAME, AZURE_PASSWORD) is deprecated and not supported",
        );
    }
    Selected::Failed(Error::unavailable(NAME, message))
}

fn invalid(what: &str, e: &Error) -> Error {
    Error::new(
        e.kind(),
        NAME,
        format!(
            "the {what} configured in the environment cannot be used: {}",
            e.message()
        ),
    )
}

fn required<'e>(env: &'e Env, name: &'static str) -> Result<&'e str, Error> {
    env.non_blank(name).ok_or_else(|| {
        Error::invalid_configuration(NAME, format!("{name} is set but empty; set it or unset it"))
    })
}

fn common_from_env(common: &CommonOptions, env: &Env) -> Result<CommonOptions, Error> {
    let mut common = common.clone();
    common.tenant_id = Some(required(env, AZURE_TENANT_ID)?.to_owned());
    common.client_id = Some(required(env, AZURE_CLIENT_ID)?.to_owned());
    common.read_allowed_tenants_from_env = true;
    Ok(common)
}

fn secret(common: &CommonOptions, env: &Env) -> Result<ClientSecretCredential, Error> {
    let common = common_from_env(common, env)?;
    let secret = env.non_empty(AZURE_CLIENT_SECRET).ok_or_else(|| {
        Error::invalid_configuration(
            NAME,
            "AZURE_CLIENT_SECRET is set but empty; set it or unset it",
        )
    })?;
    ClientSecretCredential::from_common(common, secret.into())
}

fn certificate(common: &CommonOptions, env: &Env) -> Result<ClientCertificateCredential, Error> {
    let common = common_from_env(common, env)?;
    let path = required(env, AZURE_CLIENT_CERTIFICATE_PATH)?;
    let password = env
        .non_empty(AZURE_CLIENT_CERTIFICATE_PASSWORD)
        .map(Into::into);
    ClientCertificateCredential::from_common(
        common,
        path.into(),
        password,
        env.flag(AZURE_CLIENT_SEND_CERTIFICATE_CHAIN),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use identity_core::ErrorKind;
    use identity_core::{TokenCredential, TokenRequestOptions};
    use wiremock::MockServer;

    fn data(file: &str) -> String {
        format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"))
    }

    fn build(env: &Env) -> EnvironmentCredential {
        EnvironmentCredential::builder()
            .runtime(identity_core::Runtime::with_env(env.clone()).http_client(test_http_client()))
            .build()
            .unwrap()
    }

    #[derive(Debug)]
    enum Expect {
        Selected(&'static str),
        Unavailable(&'static [&'static str]),
        Invalid(&'static str),
    }

    async fn check(rows: &[(&str, &str)], expected: Expect) {
        let env = Env::from_pairs(rows.iter().copied());
        let credential = build(&env);
        let text = format!("{credential:?}");
        assert_no_key_material(&text);
        match expected {
            Expect::Selected(name) => assert_eq!(credential.selected(), Some(name), "{rows:?}"),
            Expect::Unavailable(_) | Expect::Invalid(_) if credential.selected().is_some() => {
                panic!("{rows:?} selected {:?}", credential.selected())
            }
            Expect::Unavailable(names) => {
                let err = credential
                    .get_token(&["s"], &TokenRequestOptions::default())
                    .await
                    .unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Unavailable, "{rows:?}: {err}");
                assert_eq!(err.credential(), NAME);
                for name in names {
                    assert!(err.message().contains(name), "{rows:?}: {err}");
                }
                assert_no_key_material(&format!("{err} {err:?}"));
            }
            Expect::Invalid(text) => {
                let err = credential
                    .get_token(&["s"], &TokenRequestOptions::default())
                    .await
                    .unwrap_err();
                assert_eq!(
                    err.kind(),
                    ErrorKind::InvalidConfiguration,
                    "{rows:?}: {err}"
                );
                assert!(err.message().contains(text), "{rows:?}: {err}");
                assert_no_key_material(&format!("{err} {err:?}"));
            }
        }
    }

    #[tokio::test]
    async fn selection_follows_the_spec_table() {
        let pem = data("client.pem");
        let pfx = data("client.pfx");
        let missing = data("absent.pem");
        let t = (AZURE_TENANT_ID, "t");
        let c = (AZURE_CLIENT_ID, "c");
        let s = (AZURE_CLIENT_SECRET, SECRET);
        let cert = (AZURE_CLIENT_CERTIFICATE_PATH, pem.as_str());
        use Expect::*;
        check(&[t, c, s], Selected("ClientSecretCredential")).await;
        check(&[t, c, s, cert], Selected("ClientSecretCredential")).await;
        check(&[t, c, cert], Selected("ClientCertificateCredential")).await;
        check(
            &[
                t,
                c,
                cert,
                (AZURE_CLIENT_CERTIFICATE_PASSWORD, "planted-unused"),
            ],
            Selected("ClientCertificateCredential"),
        )
        .await;
        check(
            &[],
            Unavailable(&[
                AZURE_TENANT_ID,
                AZURE_CLIENT_ID,
                "AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH",
            ]),
        )
        .await;
        check(&[c, s], Unavailable(&["missing: AZURE_TENANT_ID."])).await;
        check(&[t, s], Unavailable(&["missing: AZURE_CLIENT_ID."])).await;
        check(&[t, cert], Unavailable(&["missing: AZURE_CLIENT_ID."])).await;
        check(
            &[t, c],
            Unavailable(&["missing: AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH."]),
        )
        .await;
        check(
            &[
                t,
                c,
                (AZURE_USERNAME, "u"),
                (AZURE_PASSWORD, "planted-password"),
            ],
            Unavailable(&["not supported"]),
        )
        .await;
        // Presence semantics: empty values select the set, then fail clearly.
        check(
            &[t, c, (AZURE_CLIENT_SECRET, "")],
            Invalid("AZURE_CLIENT_SECRET is set but empty"),
        )
        .await;
        check(
            &[(AZURE_TENANT_ID, ""), c, s],
            Invalid("AZURE_TENANT_ID is set but empty"),
        )
        .await;
        check(
            &[t, (AZURE_CLIENT_ID, " "), s],
            Invalid("AZURE_CLIENT_ID is set but empty"),
        )
        .await;
        check(&[(AZURE_TENANT_ID, "a/b"), c, s], Invalid("tenant")).await;
        check(
            &[t, c, (AZURE_CLIENT_CERTIFICATE_PATH, missing.as_str())],
            Invalid("absent.pem"),
        )
        .await;
        check(
            &[
                t,
                c,
                s,
                ("AZURE_AUTHORITY_HOST", "http://login.microsoftonline.com"),
            ],
            Invalid("https"),
        )
        .await;
        let wrong_password = [
            t,
            c,
            (AZURE_CLIENT_CERTIFICATE_PATH, pfx.as_str()),
            (AZURE_CLIENT_CERTIFICATE_PASSWORD, "planted-wrong"),
        ];
        if cfg!(feature = "pkcs12") {
            check(&wrong_password, Invalid("password is wrong")).await;
            check(
                &[
                    t,
                    c,
                    (AZURE_CLIENT_CERTIFICATE_PATH, pfx.as_str()),
                    (AZURE_CLIENT_CERTIFICATE_PASSWORD, "planted-pfx-password"),
                ],
                Selected("ClientCertificateCredential"),
            )
            .await;
        } else {
            check(&wrong_password, Invalid("pkcs12")).await;
        }
    }

    #[tokio::test]
    async fn the_secret_branch_requests_a_token_at_the_environment_authority() {
        let server = MockServer::start().await;
        token_mock("t", "AT").expect(1).mount(&server).await;
        let env = Env::from_pairs([
            (AZURE_TENANT_ID, "t".to_owned()),
            (AZURE_CLIENT_ID, "c".to_owned()),
            (AZURE_CLIENT_SECRET, SECRET.to_owned()),
            ("AZURE_AUTHORITY_HOST", server.uri()),
        ]);
        let credential = EnvironmentCredential::builder()
            .runtime(fake_runtime(env))
            .allow_insecure_loopback_authority(true)
            .build()
            .unwrap();
        let token = credential
            .get_token(&["s"], &TokenRequestOptions::default())
            .await
            .unwrap();
        assert_eq!(token.token.secret(), "AT");
        let form = form_of(&server.received_requests().await.unwrap()[0]);
        assert_eq!(form["client_secret"], SECRET);
        assert_eq!(form["client_id"], "c");
    }

    #[tokio::test]
    async fn the_send_chain_variable_is_a_boolean() {
        let server = token_endpoint().await;
        let pem = data("client-chain.pem");
        for (value, sends) in [
            ("false", false),
            ("0", false),
            ("no", false),
            ("", false),
            ("TRUE", true),
            ("1", true),
        ] {
            let env = Env::from_pairs([
                (AZURE_TENANT_ID, "t".to_owned()),
                (AZURE_CLIENT_ID, "c".to_owned()),
                (AZURE_CLIENT_CERTIFICATE_PATH, pem.clone()),
                (AZURE_CLIENT_SEND_CERTIFICATE_CHAIN, value.to_owned()),
                ("AZURE_AUTHORITY_HOST", server.uri()),
            ]);
            let credential = EnvironmentCredential::builder()
                .runtime(identity_core::Runtime::with_env(env).http_client(test_http_client()))
                .allow_insecure_loopback_authority(true)
                .build()
                .unwrap();
            let header = sent_assertion_header(&credential, &server).await;
            assert_eq!(header.get("x5c").is_some(), sends, "{value:?}");
        }
    }

    #[tokio::test]
    async fn an_encrypted_pem_key_signs_with_the_password_from_the_environment() {
        let server = MockServer::start().await;
        token_mock("t", "AT").mount(&server).await;
        let plain =
            crate::jwt::ClientCertificate::from_pem("X", CLIENT_PEM.as_bytes(), None).unwrap();
        for file in [
            "client-encrypted-pkcs8.pem",
            "client-encrypted-traditional.pem",
        ] {
            let env = Env::from_pairs([
                (AZURE_TENANT_ID, "t".to_owned()),
                (AZURE_CLIENT_ID, "c".to_owned()),
                (AZURE_CLIENT_CERTIFICATE_PATH, data(file)),
                (
                    AZURE_CLIENT_CERTIFICATE_PASSWORD,
                    "planted-pem-password".to_owned(),
                ),
                ("AZURE_AUTHORITY_HOST", server.uri()),
            ]);
            let credential = EnvironmentCredential::builder()
                .runtime(
                    identity_core::Runtime::with_env(env.clone()).http_client(test_http_client()),
                )
                .allow_insecure_loopback_authority(true)
                .build()
                .unwrap();
            assert_eq!(
                credential.selected(),
                Some("ClientCertificateCredential"),
                "{file}"
            );
            let header = sent_assertion_header(&credential, &server).await;
            assert_eq!(header["x5t#S256"], plain.thumbprint_sha256(), "{file}");
            assert_no_key_material(&format!("{credential:?}"));
        }
        let t = (AZURE_TENANT_ID, "t");
        let c = (AZURE_CLIENT_ID, "c");
        let traditional = data("client-encrypted-traditional.pem");
        let pkcs8 = data("client-encrypted-pkcs8.pem");
        for path in [traditional.as_str(), pkcs8.as_str()] {
            check(
                &[
                    t,
                    c,
                    (AZURE_CLIENT_CERTIFICATE_PATH, path),
                    (AZURE_CLIENT_CERTIFICATE_PASSWORD, "planted-wrong"),
                ],
                Expect::Invalid("password is wrong"),
            )
            .await;
            check(
                &[t, c, (AZURE_CLIENT_CERTIFICATE_PATH, path)],
                Expect::Invalid("AZURE_CLIENT_CERTIFICATE_PASSWORD"),
            )
            .await;
        }
    }
}
