//! Hand-parsed command lines for the two binaries.

use std::path::PathBuf;
use std::time::Duration;

use crate::blob::{DemoOptions, Payload, validate_account_url};
use crate::credential::{CredentialChoice, CredentialKind, UserAssigned};
use crate::local::LocalOptions;
use crate::local_msi::LocalMsiConfig;

/// `identity-blob-demo --help`.
pub const HELP: &str = "\
identity-blob-demo: get a Microsoft Entra token and use it against Blob Storage
(list, create a container, upload, download and verify, clean up).

USAGE:
    identity-blob-demo --account-url URL [OPTIONS]
    identity-blob-demo local [LOCAL OPTIONS]

OPTIONS:
    --account-url URL     https://<account>.blob.core.windows.net (required; https only,
                          no trailing slash)
    --credential NAME     default (the default), managed-identity, azure-cli,
                          environment, workload-identity
    --client-id ID        user-assigned managed identity by client id
    --resource-id ID      ... by Azure resource id
    --object-id ID        ... by object (principal) id
    --ca-file PEM         also trust these CA certificates for the storage endpoint
                          (e.g. Azurite's self-signed certificate)
    --file PATH           upload this file (default: 8 MiB of pseudo-random bytes)
    --container NAME      container to create (default: identity-demo-<random>)
    --keep                leave the container and blob in place
    -h, --help            show this help

LOCAL OPTIONS (`local`: Azurite + a local managed-identity endpoint, no Azure account;
needs Node.js 20+ with npm, installs azurite@3.37.0 into <repo>/.tools/azurite):
    --audience-override URL   issue tokens for this audience (shows a refusal)
    --tools-dir DIR           install Azurite here instead
    --file PATH, --container NAME, --keep   as above

EXIT STATUS: 0 on success, 1 when a step fails (the reason is printed), 2 on bad arguments.
";

/// `local-msi --help`.
pub const LOCAL_MSI_HELP: &str = "\
local-msi: a local App Service managed-identity endpoint (API 2019-08-01) on 127.0.0.1:
the identity-sidecar server in its development-token mode (identity-sidecar --dev-tokens).

It issues UNSIGNED development tokens. Only emulators such as Azurite (--oauth basic)
accept them; Azure never does.

USAGE:
    local-msi [--port N] [--secret-file PATH] [--tenant GUID] [--audience-override URL] [--lifetime SECONDS]

    --port N                  port on 127.0.0.1 (default: a free one)
    --secret-file PATH        read the X-IDENTITY-HEADER secret from this file (default: the
                              IDENTITY_HEADER environment variable, else a random one). A
                              secret is never taken from the command line.
    --tenant GUID             tenant in iss and tid
    --audience-override URL   put this in aud instead of the requested resource
    --lifetime SECONDS        token lifetime (default 3600)
    -h, --help                show this help

It prints the IDENTITY_ENDPOINT and IDENTITY_HEADER values to set, then serves until Ctrl-C.
";

/// What `identity-blob-demo` was asked to do.
#[derive(Clone, Debug)]
pub enum Command {
    /// Print [`HELP`].
    Help,
    /// Run against an account.
    Run {
        /// Demo options (the CA is read later from `ca_file`).
        demo: DemoOptions,
        /// `--ca-file`.
        ca_file: Option<PathBuf>,
        /// The credential.
        credential: CredentialChoice,
    },
    /// Run everything locally.
    Local(LocalOptions),
}

struct Args<I: Iterator<Item = String>>(I);

impl<I: Iterator<Item = String>> Args<I> {
    fn value(&mut self, flag: &str) -> Result<String, String> {
        match self.0.next() {
            Some(v) if !v.starts_with("--") || v.len() == 2 => Ok(v),
            _ => Err(format!("{flag} needs a value")),
        }
    }
}

/// Parses `identity-blob-demo`'s arguments (without the program name).
///
/// # Errors
/// A message for the user; the binary prints it with a pointer to `--help` and exits 2.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut args = Args(args.into_iter());
    let mut account_url = None;
    let mut credential = CredentialChoice::default();
    let mut ca_file = None;
    let mut payload = None;
    let mut container = None;
    let mut keep = false;
    let mut local = false;
    let mut audience_override = None;
    let mut tools_dir = None;
    let mut first = true;
    while let Some(arg) = args.0.next() {
        if first && arg == "local" {
            local = true;
            first = false;
            continue;
        }
        first = false;
        let set_identity = |credential: &mut CredentialChoice, id: UserAssigned| {
            if credential.identity.is_some() {
                return Err(
                    "give at most one of --client-id, --resource-id, --object-id".to_owned(),
                );
            }
            credential.identity = Some(id);
            Ok(())
        };
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--account-url" if !local => account_url = Some(args.value(&arg)?),
            "--credential" if !local => credential.kind = args.value(&arg)?.parse()?,
            "--client-id" if !local => {
                set_identity(&mut credential, UserAssigned::ClientId(args.value(&arg)?))?;
            }
            "--resource-id" if !local => {
                set_identity(&mut credential, UserAssigned::ResourceId(args.value(&arg)?))?;
            }
            "--object-id" if !local => {
                set_identity(&mut credential, UserAssigned::ObjectId(args.value(&arg)?))?;
            }
            "--ca-file" if !local => ca_file = Some(PathBuf::from(args.value(&arg)?)),
            "--file" => payload = Some(Payload::File(PathBuf::from(args.value(&arg)?))),
            "--container" => container = Some(validate_container(&args.value(&arg)?)?),
            "--keep" => keep = true,
            "--audience-override" if local => audience_override = Some(args.value(&arg)?),
            "--tools-dir" if local => tools_dir = Some(PathBuf::from(args.value(&arg)?)),
            other => {
                return Err(format!(
                    "unexpected argument \"{other}\"{}",
                    if local { " for `local`" } else { "" }
                ));
            }
        }
    }
    if local {
        let mut options = LocalOptions {
            audience_override,
            container,
            keep,
            handle_ctrl_c: true,
            ..LocalOptions::default()
        };
        if let Some(p) = payload {
            options.payload = p;
        }
        if let Some(dir) = tools_dir {
            options.install_dir = dir;
        }
        return Ok(Command::Local(options));
    }
    let account_url = account_url.ok_or("--account-url is required")?;
    validate_account_url(&account_url)?;
    if credential.identity.is_some()
        && !matches!(
            credential.kind,
            CredentialKind::Default | CredentialKind::ManagedIdentity
        )
    {
        return Err(
            "--client-id, --resource-id and --object-id apply to --credential managed-identity \
             or default only"
                .to_owned(),
        );
    }
    let mut demo = DemoOptions::new(account_url);
    if let Some(p) = payload {
        demo.payload = p;
    }
    if let Some(c) = container {
        demo.container = c;
    }
    demo.keep = keep;
    Ok(Command::Run {
        demo,
        ca_file,
        credential,
    })
}

/// Container names: 3-63 characters, lower-case letters, digits and single hyphens, starting
/// and ending with a letter or digit.
fn validate_container(name: &str) -> Result<String, String> {
    let ok = (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "--container {name}: use 3-63 lower-case letters, digits and single hyphens, \
             starting and ending with a letter or digit"
        ))
    }
}

/// Parses `local-msi`'s arguments. `Ok(None)` means `--help`. The secret comes from
/// `--secret-file`, else `IDENTITY_HEADER` in `env`, else `default_secret`; `--secret` on the
/// command line is refused (every user of the host can read a process's arguments).
///
/// # Errors
/// A message for the user (never containing a secret).
pub fn parse_local_msi(
    args: impl IntoIterator<Item = String>,
    env: &identity_core::Env,
    default_secret: impl FnOnce() -> Result<String, String>,
) -> Result<Option<LocalMsiConfig>, String> {
    let mut args = Args(args.into_iter());
    let mut port = 0;
    let mut secret = None;
    let mut tenant = None;
    let mut audience = None;
    let mut lifetime = None;
    while let Some(arg) = args.0.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--port" => {
                port = args
                    .value(&arg)?
                    .parse()
                    .map_err(|_| "--port needs a number from 0 to 65535".to_owned())?;
            }
            "--secret" => {
                return Err(
                    "--secret is not accepted: a secret on the command line is visible to every user of the host; use --secret-file PATH or the IDENTITY_HEADER environment variable".to_owned(),
                );
            }
            "--secret-file" => {
                let path = PathBuf::from(args.value(&arg)?);
                let value = identity_sidecar::secret::read_file(&path)?;
                secret = Some(value.secret().to_owned());
            }
            "--tenant" => tenant = Some(args.value(&arg)?),
            "--audience-override" => audience = Some(args.value(&arg)?),
            "--lifetime" => {
                let secs: u64 = args
                    .value(&arg)?
                    .parse()
                    .map_err(|_| "--lifetime needs a number of seconds".to_owned())?;
                lifetime = Some(Duration::from_secs(secs));
            }
            other => return Err(format!("unexpected argument \"{other}\"")),
        }
    }
    let secret = match (secret, env.non_empty("IDENTITY_HEADER")) {
        (Some(s), _) => s,
        (None, Some(s)) => s.to_owned(),
        (None, None) => default_secret()?,
    };
    let mut config = LocalMsiConfig::new(secret);
    config.port = port;
    if let Some(t) = tenant {
        config.tenant = t;
    }
    config.audience_override = audience;
    if let Some(l) = lifetime {
        config.lifetime = l;
    }
    Ok(Some(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn a_full_command_line_parses() {
        let cmd = parse(args(
            "--account-url https://a.blob.core.windows.net --credential managed-identity \
             --client-id cid --ca-file ca.pem --file f.bin --container my-box --keep",
        ))
        .unwrap();
        let Command::Run {
            demo,
            ca_file,
            credential,
        } = cmd
        else {
            panic!("{cmd:?}")
        };
        assert_eq!(demo.account_url, "https://a.blob.core.windows.net");
        assert_eq!(demo.container, "my-box");
        assert!(demo.keep);
        assert_eq!(demo.payload, Payload::File("f.bin".into()));
        assert_eq!(ca_file, Some(PathBuf::from("ca.pem")));
        assert_eq!(credential.kind, CredentialKind::ManagedIdentity);
        assert_eq!(
            credential.identity,
            Some(UserAssigned::ClientId("cid".into()))
        );
    }

    #[test]
    fn defaults_are_the_default_credential_and_a_generated_payload() {
        let Command::Run {
            demo, credential, ..
        } = parse(args("--account-url https://a.blob.core.windows.net")).unwrap()
        else {
            panic!()
        };
        assert_eq!(credential, CredentialChoice::default());
        assert_eq!(demo.payload, Payload::Generated(8 * 1024 * 1024));
        assert!(demo.container.starts_with("identity-demo-"));
    }

    #[test]
    fn http_and_trailing_slashes_are_refused() {
        let e = parse(args(
            "--account-url http://127.0.0.1:10000/devstoreaccount1",
        ))
        .unwrap_err();
        assert!(e.contains("http://"), "{e}");
        let e = parse(args("--account-url https://a.blob.core.windows.net/")).unwrap_err();
        assert!(e.contains("trailing slash"), "{e}");
        assert!(
            parse(args("--credential azure-cli"))
                .unwrap_err()
                .contains("required")
        );
    }

    #[test]
    fn mistakes_get_clear_messages() {
        let url = "--account-url https://a.blob.core.windows.net";
        for (extra, expect) in [
            ("--client-id a --object-id b", "at most one"),
            ("--credential nope", "unknown credential"),
            ("--credential azure-cli --client-id a", "managed-identity"),
            ("--container Bad_Name", "lower-case"),
            ("--bogus", "unexpected argument"),
            ("--file", "needs a value"),
            ("--audience-override x", "unexpected argument"),
        ] {
            let e = parse(args(&format!("{url} {extra}"))).unwrap_err();
            assert!(e.contains(expect), "{extra}: {e}");
        }
    }

    #[test]
    fn help_and_local_parse() {
        assert!(matches!(parse(args("--help")).unwrap(), Command::Help));
        let Command::Local(local) = parse(args(
            "local --audience-override https://wrong.example --keep",
        ))
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            local.audience_override.as_deref(),
            Some("https://wrong.example")
        );
        assert!(local.keep && local.handle_ctrl_c);
        assert!(parse(args("local --account-url https://x")).is_err());
        assert!(HELP.contains("--account-url") && HELP.contains("local"));
    }

    #[test]
    fn local_msi_options_parse() {
        let none = identity_core::Env::empty();
        let env = identity_core::Env::from_pairs([("IDENTITY_HEADER", "from-the-environment")]);
        let config = parse_local_msi(
            args("--port 8081 --tenant t --audience-override https://wrong.example --lifetime 60"),
            &env,
            || Ok("unused".into()),
        )
        .unwrap()
        .unwrap();
        assert_eq!(config.port, 8081);
        assert_eq!(config.secret.secret(), "from-the-environment");
        assert_eq!(config.tenant, "t");
        assert_eq!(
            config.audience_override.as_deref(),
            Some("https://wrong.example")
        );
        assert_eq!(config.lifetime, Duration::from_secs(60));
        let random = parse_local_msi(Vec::new(), &none, || Ok("random".into()))
            .unwrap()
            .unwrap();
        assert_eq!(random.secret.secret(), "random");
        assert!(
            parse_local_msi(args("--help"), &none, || Ok(String::new()))
                .unwrap()
                .is_none()
        );
        assert!(parse_local_msi(args("--port x"), &none, || Ok(String::new())).is_err());
        let refused = parse_local_msi(args("--secret planted-argv-secret"), &none, || {
            Ok(String::new())
        })
        .unwrap_err();
        assert!(refused.contains("--secret-file"), "{refused}");
        assert!(!refused.contains("planted-argv-secret"));
        assert!(LOCAL_MSI_HELP.contains("UNSIGNED"));
        assert!(!LOCAL_MSI_HELP.contains("--secret S"));
    }

    #[cfg(unix)]
    #[test]
    fn local_msi_reads_its_secret_from_a_private_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "a-secret-from-a-file-0123\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let flag = format!("--secret-file {}", path.display());
        let config = parse_local_msi(args(&flag), &identity_core::Env::empty(), || {
            Ok("unused".into())
        })
        .unwrap()
        .unwrap();
        assert_eq!(config.secret.secret(), "a-secret-from-a-file-0123");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            parse_local_msi(args(&flag), &identity_core::Env::empty(), || Ok(
                String::new()
            ))
            .is_err()
        );
    }
}
