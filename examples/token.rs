//! `token`: print an access token as JSON, a small stand-in for `az account get-access-token`
//! in shell scripts and containers.
//!
//! ```text
//! token [--credential NAME] --scope SCOPE [--scope SCOPE2 ...]
//!       [--client-id ID | --resource-id ID | --object-id ID] [--tenant-id T]
//! ```
//!
//! On success it exits 0 and prints exactly one JSON object on stdout:
//! `{"access_token": "...", "expires_on": 1893456000, "credential": "ManagedIdentityCredential"}`.
//! On failure it exits non-zero, prints nothing on stdout and the error (for the chain, every
//! attempt) on stderr. All other configuration comes from the environment, as on a real host.
//!
//! Logs go to stderr when `RUST_LOG` is set, e.g. `RUST_LOG=identity=debug` shows which
//! credential was tried and why each one was skipped; stdout stays the one JSON object.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line program talks on stdout and stderr"
)]

use std::process::ExitCode;
use std::sync::Arc;

use identity_chain::{
    AzureCliCredential, AzureDeveloperCliCredential, AzurePowerShellCredential,
    DefaultAzureCredential, DeviceCodeCredential, EnvironmentCredential, Error,
    InteractiveBrowserCredential, ManagedIdentityCredential, TokenCredential, TokenRequestOptions,
    WorkloadIdentityCredential,
};
use identity_chain::{AzurePipelinesCredential, GitHubActionsCredential};

const HELP: &str = "\
token: print a Microsoft Entra access token as JSON

USAGE:
    token [--credential NAME] --scope SCOPE [--scope SCOPE2 ...]
          [--client-id ID | --resource-id ID | --object-id ID] [--tenant-id T]

OPTIONS:
    --credential NAME   which credential to use (default: default):
                          default              DefaultAzureCredential: environment, workload identity,
                                               managed identity, Azure CLI, Azure PowerShell, Azure Developer CLI
                          managed-identity     ManagedIdentityCredential
                          azure-cli            AzureCliCredential (az login)
                          azure-powershell     AzurePowerShellCredential (Connect-AzAccount)
                          azure-developer-cli  AzureDeveloperCliCredential (azd auth login)
                          environment          EnvironmentCredential (AZURE_TENANT_ID, AZURE_CLIENT_ID, ...)
                          workload-identity    WorkloadIdentityCredential (AZURE_FEDERATED_TOKEN_FILE, ...)
                          azure-pipelines      AzurePipelinesCredential (SYSTEM_OIDCREQUESTURI, SYSTEM_ACCESSTOKEN,
                                               AZURESUBSCRIPTION_CLIENT_ID, AZURESUBSCRIPTION_TENANT_ID,
                                               AZURESUBSCRIPTION_SERVICE_CONNECTION_ID)
                          github-actions       GitHubActionsCredential (ACTIONS_ID_TOKEN_REQUEST_URL,
                                               ACTIONS_ID_TOKEN_REQUEST_TOKEN, AZURE_CLIENT_ID, AZURE_TENANT_ID)
                          interactive-browser  InteractiveBrowserCredential: sign in with a web browser
                                               (BROWSER, else the platform's opener; the URL on stderr
                                               when none starts)
                          device-code          DeviceCodeCredential: sign in on another device with a code
                                               (the instructions on stderr)
    --scope SCOPE       the scope to request, e.g. https://management.azure.com/.default; repeatable
                        (managed identity, az and pwsh accept exactly one)
    --client-id ID      a user-assigned managed identity, by client id
    --resource-id ID    a user-assigned managed identity, by Azure resource id
    --object-id ID      a user-assigned managed identity, by object (principal) id
    --tenant-id T       request a token for this tenant
    -h, --help          print this help

OUTPUT:
    success: exit 0; stdout is exactly one JSON object:
        {\"access_token\": \"...\", \"expires_on\": <unix seconds>, \"credential\": \"<credential type name>\"}
    failure: exit 1 (2 for a usage error); nothing on stdout; the error on stderr.

Every other setting comes from the environment, exactly as on a real host (IDENTITY_ENDPOINT,
AZURE_CLIENT_ID, AZURE_TOKEN_CREDENTIALS, ...). Treat the printed token as a secret.
Set RUST_LOG=identity=debug to see on stderr which credentials were tried and why.
";

#[derive(Debug, Default)]
struct Args {
    credential: String,
    scopes: Vec<String>,
    identity: Option<(&'static str, String)>,
    tenant: Option<String>,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut args = Args {
        credential: "default".into(),
        ..Args::default()
    };
    while let Some(flag) = argv.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (flag.clone(), None),
        };
        if name == "-h" || name == "--help" {
            return Ok(None);
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| argv.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            "--credential" => {
                let name = value()?;
                if !CREDENTIALS.contains(&name.as_str()) {
                    return Err(format!(
                        "unknown credential {name:?}; use one of {}",
                        CREDENTIALS.join(", ")
                    ));
                }
                args.credential = name;
            }
            "--scope" => args.scopes.push(value()?),
            "--tenant-id" => args.tenant = Some(value()?),
            "--client-id" | "--resource-id" | "--object-id" => {
                if args.identity.is_some() {
                    return Err(
                        "give at most one of --client-id, --resource-id and --object-id".into(),
                    );
                }
                let kind = match name.as_str() {
                    "--client-id" => "client-id",
                    "--resource-id" => "resource-id",
                    _ => "object-id",
                };
                args.identity = Some((kind, value()?));
            }
            other => return Err(format!("unknown argument {other:?}; see --help")),
        }
    }
    if args.scopes.is_empty() {
        return Err("--scope is required; see --help".into());
    }
    if args.identity.is_some()
        && !matches!(args.credential.as_str(), "default" | "managed-identity")
    {
        return Err("--client-id, --resource-id and --object-id select a managed identity: use them with --credential default or managed-identity".into());
    }
    Ok(Some(args))
}

/// The credential and a way to name the member that produced the token.
enum Chosen {
    Default(DefaultAzureCredential),
    Single(Arc<dyn TokenCredential>),
}

fn build(args: &Args) -> Result<Chosen, Error> {
    let allowed: Vec<String> = args.tenant.iter().cloned().collect();
    let identity = args.identity.clone();
    Ok(match args.credential.as_str() {
        "default" => {
            let mut b = DefaultAzureCredential::builder().additionally_allowed_tenants(allowed);
            b = match identity {
                Some(("client-id", id)) => b.managed_identity_client_id(id),
                Some(("resource-id", id)) => b.managed_identity_resource_id(id),
                Some((_, id)) => b.managed_identity_object_id(id),
                None => b,
            };
            Chosen::Default(b.build()?)
        }
        "managed-identity" => {
            let mut b = ManagedIdentityCredential::builder();
            b = match identity {
                Some(("client-id", id)) => b.client_id(id),
                Some(("resource-id", id)) => b.resource_id(id),
                Some((_, id)) => b.object_id(id),
                None => b,
            };
            Chosen::Single(Arc::new(b.build()?))
        }
        "azure-cli" => Chosen::Single(Arc::new(
            AzureCliCredential::builder()
                .additionally_allowed_tenants(allowed)
                .build()?,
        )),
        "azure-powershell" => Chosen::Single(Arc::new(
            AzurePowerShellCredential::builder()
                .additionally_allowed_tenants(allowed)
                .build()?,
        )),
        "azure-developer-cli" => Chosen::Single(Arc::new(
            AzureDeveloperCliCredential::builder()
                .additionally_allowed_tenants(allowed)
                .build()?,
        )),
        "environment" => Chosen::Single(Arc::new(
            EnvironmentCredential::builder()
                .additionally_allowed_tenants(allowed)
                .build()?,
        )),
        "workload-identity" => Chosen::Single(Arc::new(
            WorkloadIdentityCredential::builder()
                .additionally_allowed_tenants(allowed)
                .build()?,
        )),
        // Both read their settings from the runner's environment, and AZURE_AUTHORITY_HOST.
        "azure-pipelines" => Chosen::Single(Arc::new(
            AzurePipelinesCredential::builder()
                .additionally_allowed_tenants(allowed)
                .build()?,
        )),
        "github-actions" => Chosen::Single(Arc::new(
            GitHubActionsCredential::builder()
                .additionally_allowed_tenants(allowed)
                .build()?,
        )),
        "interactive-browser" => Chosen::Single(Arc::new(
            InteractiveBrowserCredential::builder()
                .additionally_allowed_tenants(allowed)
                .build()?,
        )),
        "device-code" => Chosen::Single(Arc::new(
            DeviceCodeCredential::builder()
                .additionally_allowed_tenants(allowed)
                .build()?,
        )),
        other => {
            return Err(Error::invalid_argument(
                "token",
                format!(
                    "unknown credential {other:?}; use one of default, managed-identity, azure-cli, azure-powershell, azure-developer-cli, environment, workload-identity, azure-pipelines, github-actions, interactive-browser, device-code"
                ),
            ));
        }
    })
}

/// The names `--credential` takes.
const CREDENTIALS: &[&str] = &[
    "default",
    "managed-identity",
    "azure-cli",
    "azure-powershell",
    "azure-developer-cli",
    "environment",
    "workload-identity",
    "azure-pipelines",
    "github-actions",
    "interactive-browser",
    "device-code",
];

async fn run(args: Args) -> Result<String, Error> {
    let chosen = build(&args)?;
    let scopes: Vec<&str> = args.scopes.iter().map(String::as_str).collect();
    let mut options = TokenRequestOptions::default();
    if let Some(tenant) = &args.tenant {
        options = options.tenant_id(tenant.clone());
    }
    let (token, credential) = match &chosen {
        Chosen::Default(dac) => {
            let token = dac.get_token(&scopes, &options).await?;
            (
                token,
                dac.selected_credential()
                    .unwrap_or("DefaultAzureCredential"),
            )
        }
        Chosen::Single(c) => {
            if matches!(
                args.credential.as_str(),
                "interactive-browser" | "device-code"
            ) {
                // Progress for the person signing in; stdout stays the one JSON object.
                eprintln!("token: signing in with {}…", c.name());
            }
            let token = c.get_token(&scopes, &options).await?;
            (token, c.name())
        }
    };
    let json = serde_json::json!({
        "access_token": token.token.secret(),
        "expires_on": token.expires_on_unix(),
        "credential": credential,
    });
    Ok(json.to_string())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    if identity_chain::Env::from_process().is_present("RUST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    // `args()` panics on an argument that is not UTF-8; read them raw and refuse it instead.
    let argv: Result<Vec<String>, usize> = std::env::args_os()
        .skip(1)
        .enumerate()
        .map(|(i, arg)| arg.into_string().map_err(|_| i + 1))
        .collect();
    let argv = match argv {
        Ok(argv) => argv,
        Err(position) => {
            // The argument itself is not echoed: it could be anything.
            eprintln!(
                "token: argument {position} is not valid UTF-8; scopes, ids and names are text; see --help"
            );
            return ExitCode::from(2);
        }
    };
    let args = match parse(argv.into_iter()) {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("token: {message}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("token: {}", identity_chain::display_chain(&error));
            ExitCode::from(1)
        }
    }
}
