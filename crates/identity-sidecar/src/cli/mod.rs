//! The command line of the `identity-sidecar` binary: [`HELP`], [`parse`], and
//! [`Options::backend`], which builds the credential the options name (`build.rs`).

mod build;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use identity_chain::CredentialKind;
use identity_core::Env;

use crate::guard::GuardConfig;
use crate::protocol::DEFAULT_PATH;
use crate::server::{Bind, ServerLimits};

/// `identity-sidecar --help`.
pub const HELP: &str = "\
identity-sidecar: one token cache for every process on a host.

Serves the App Service managed-identity protocol (API 2019-08-01), so any process, in any
language and with any Azure SDK, gets tokens from it by setting IDENTITY_ENDPOINT and
IDENTITY_HEADER. Tokens come from one credential, chosen at start, through one shared cache;
requests to the upstream are limited, and upstream 429s are replayed until Retry-After passes.

USAGE:
    identity-sidecar [OPTIONS]

LISTENING:
    --listen ADDR              TCP address (default 127.0.0.1:8181); loopback only unless
                               --allow-non-loopback
    --allow-non-loopback       accept a non-loopback --listen address (any host that reaches
                               it can ask for tokens)
    --unix PATH                listen on a Unix socket instead (replaces a stale socket)
    --unix-mode OCTAL          the socket's permission bits (default 600; 660 lets a group in)
    --path PATH                the token endpoint's path (default /msi/token)

CALLER SECRET (X-IDENTITY-HEADER; never on the command line):
    --secret-file PATH         read it from this file (at least 16 characters; the file must
                               give others no access)
    --write-secret-file PATH   generate a random one at start and write it here (default:
                               $RUNTIME_DIRECTORY/identity-header when systemd sets it)
    --secret-file-mode OCTAL   permission bits of the written file (default 600; 640 lets
                               the file's group read it)

TOKENS:
    --credential KIND          managed-identity (default), default, environment,
                               workload-identity, azure-cli, azure-powershell,
                               azure-developer-cli
    --imds-endpoint URL        the IMDS token URL (default the link-local address); for
                               emulators
    --max-identities N         most distinct managed identities served (default 64)
    --dev-tokens               issue UNSIGNED development tokens instead (accepted by
                               emulators such as Azurite, never by Azure)
    --tenant GUID              (dev tokens) the tenant in iss and tid
    --audience-override URL    (dev tokens) put this in aud instead of the resource
    --lifetime SECONDS         (dev tokens) token lifetime, 60 to 86400 (default 3600)

LIMITS:
    --max-in-flight N          upstream requests at once (default 5)
    --per-second N             upstream requests per second (default 20)
    --max-queue N              upstream requests waiting before 503 (default 256)
    --refusal-ttl SECONDS      replay an upstream 400 or 403 this long, 0 to 3600 (default 30)
    --max-pending N            token requests waiting before 503 (default 512)
    --request-timeout SECONDS  time to answer a token request (default 30)
    --header-timeout SECONDS   time for a client to send its request head (default 5)

OTHER:
    --log LEVEL                error, warn, info (default), debug or trace; to stderr
    -h, --help                 show this help

OUTPUT: on start, prints IDENTITY_ENDPOINT=<url> and IDENTITY_HEADER_FILE=<path> on stdout.
ENDPOINTS: <path> (tokens), /healthz (health), /metrics (Prometheus text format).
SIGNALS: SIGTERM or Ctrl-C stop accepting, let open requests finish (10 s at most), exit 0.
EXIT STATUS: 0 after a clean stop, 1 when the server cannot start, 2 on bad arguments.
";

/// Where the caller secret comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// Read from an operator-provided file.
    File(PathBuf),
    /// Generated at start and written to `path` with permission bits `mode`.
    Generate {
        /// Where to write it.
        path: PathBuf,
        /// The file's permission bits.
        mode: u32,
    },
}

/// What serves the tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A managed identity (`--imds-endpoint` replaces the IMDS URL).
    ManagedIdentity {
        /// The IMDS token URL, when replaced.
        imds_endpoint: Option<String>,
    },
    /// One member of `DefaultAzureCredential`, or (`None`) the whole chain.
    Credential(Option<CredentialKind>),
    /// Unsigned development tokens.
    DevTokens {
        /// The tenant in `iss` and `tid`.
        tenant: Option<String>,
        /// The `aud` override.
        audience_override: Option<String>,
        /// Token lifetime.
        lifetime: Duration,
    },
}

/// Parsed options.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// Where to listen.
    pub bind: Bind,
    /// `--allow-non-loopback`.
    pub allow_non_loopback: bool,
    /// The token path.
    pub path: String,
    /// The caller secret's source.
    pub secret: SecretSource,
    /// The token source.
    pub mode: Mode,
    /// Upstream limits.
    pub guard: GuardConfig,
    /// Server limits.
    pub limits: ServerLimits,
    /// `--max-identities`.
    pub max_identities: usize,
    /// `--log`.
    pub log: String,
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag} needs a whole number, not \"{value}\""))
}

fn octal(flag: &str, value: &str) -> Result<u32, String> {
    u32::from_str_radix(value.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("{flag} needs octal permission bits such as 600"))
}

/// Parses the arguments (without the program name). `Ok(None)` means `--help`. `env` supplies
/// `RUNTIME_DIRECTORY` for the default secret file.
///
/// # Errors
/// A message for the user: an unknown flag, a missing or malformed value, conflicting flags.
pub fn parse(args: impl IntoIterator<Item = String>, env: &Env) -> Result<Option<Options>, String> {
    let mut args = args.into_iter();
    let mut listen: Option<SocketAddr> = None;
    let mut unix: Option<PathBuf> = None;
    let mut unix_mode = 0o600;
    let mut allow_non_loopback = false;
    let mut path = DEFAULT_PATH.to_owned();
    let mut secret_file = None;
    let mut write_secret = None;
    let mut secret_mode = 0o600;
    let mut credential: Option<Option<CredentialKind>> = None;
    let mut imds_endpoint = None;
    let mut dev = false;
    let mut tenant = None;
    let mut audience_override = None;
    let mut lifetime = Duration::from_secs(3600);
    let mut guard = GuardConfig::default();
    let mut limits = ServerLimits::default();
    let mut max_identities = 64;
    let mut log = "info".to_owned();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--listen" => {
                let v = value()?;
                listen = Some(v.parse().map_err(|_| {
                    format!("--listen needs an address such as 127.0.0.1:8181, not \"{v}\"")
                })?);
            }
            "--allow-non-loopback" => allow_non_loopback = true,
            "--unix" => unix = Some(PathBuf::from(value()?)),
            "--unix-mode" => unix_mode = octal(&flag, &value()?)?,
            "--path" => {
                let v = value()?;
                if !v.starts_with('/') || v.contains(['?', '#', ' ']) {
                    return Err("--path needs an absolute path such as /msi/token".to_owned());
                }
                path = v;
            }
            "--secret-file" => secret_file = Some(PathBuf::from(value()?)),
            "--write-secret-file" => write_secret = Some(PathBuf::from(value()?)),
            "--secret-file-mode" => secret_mode = octal(&flag, &value()?)?,
            "--secret" => {
                return Err(
                    "--secret is not accepted: a secret on the command line is visible to every user of the host; use --secret-file or --write-secret-file".to_owned(),
                );
            }
            "--credential" => {
                let v = value()?;
                credential = Some(match v.as_str() {
                    "managed-identity" => Some(CredentialKind::ManagedIdentity),
                    "default" => None,
                    "environment" => Some(CredentialKind::Environment),
                    "workload-identity" => Some(CredentialKind::WorkloadIdentity),
                    "azure-cli" => Some(CredentialKind::AzureCli),
                    "azure-powershell" => Some(CredentialKind::AzurePowerShell),
                    "azure-developer-cli" => Some(CredentialKind::AzureDeveloperCli),
                    other => return Err(format!("unknown --credential \"{other}\"; see --help")),
                });
            }
            "--imds-endpoint" => {
                let v = value()?;
                if !v.starts_with("http://") && !v.starts_with("https://") {
                    return Err("--imds-endpoint needs an http:// or https:// URL".to_owned());
                }
                imds_endpoint = Some(v);
            }
            "--max-identities" => max_identities = number(&flag, &value()?)?,
            "--dev-tokens" => dev = true,
            "--tenant" => tenant = Some(value()?),
            "--audience-override" => audience_override = Some(value()?),
            "--lifetime" => {
                // A token lives at most a day; 0 would issue tokens already expired.
                let seconds: u64 = number(&flag, &value()?)?;
                if !(60..=86_400).contains(&seconds) {
                    return Err(format!(
                        "{flag} takes 60 to 86400 seconds (a minute to a day), not {seconds}"
                    ));
                }
                lifetime = Duration::from_secs(seconds);
            }
            "--max-in-flight" => guard = guard.max_in_flight(number(&flag, &value()?)?),
            "--per-second" => guard = guard.per_second(number(&flag, &value()?)?),
            "--max-queue" => guard = guard.max_queue(number(&flag, &value()?)?),
            "--refusal-ttl" => {
                let seconds: u64 = number(&flag, &value()?)?;
                if seconds > 3600 {
                    return Err(format!("{flag} takes 0 to 3600 seconds, not {seconds}"));
                }
                guard = guard.refusal_ttl(Duration::from_secs(seconds));
            }
            "--max-pending" => limits = limits.max_pending(number(&flag, &value()?)?),
            "--request-timeout" => {
                limits = limits.request_timeout(Duration::from_secs(number(&flag, &value()?)?));
            }
            "--header-timeout" => {
                limits = limits.header_read_timeout(Duration::from_secs(number(&flag, &value()?)?));
            }
            "--log" => {
                let v = value()?;
                if !matches!(v.as_str(), "error" | "warn" | "info" | "debug" | "trace") {
                    return Err("--log needs error, warn, info, debug or trace".to_owned());
                }
                log = v;
            }
            other => return Err(format!("unexpected argument \"{other}\"; see --help")),
        }
    }
    let bind = match (listen, unix) {
        (Some(_), Some(_)) => return Err("use --listen or --unix, not both".to_owned()),
        #[cfg(unix)]
        (None, Some(path)) => Bind::Unix {
            path,
            mode: unix_mode,
        },
        #[cfg(not(unix))]
        (None, Some(_)) => return Err("--unix needs a Unix platform".to_owned()),
        (listen, None) => {
            Bind::Tcp(listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8181))))
        }
    };
    let _ = unix_mode;
    let secret = match (secret_file, write_secret) {
        (Some(_), Some(_)) => {
            return Err("use --secret-file or --write-secret-file, not both".to_owned());
        }
        (Some(p), None) => SecretSource::File(p),
        (None, Some(path)) => SecretSource::Generate {
            path,
            mode: secret_mode,
        },
        (None, None) => match env.non_blank("RUNTIME_DIRECTORY") {
            // systemd may list several directories separated by colons; the first is ours.
            Some(dir) => SecretSource::Generate {
                path: PathBuf::from(dir.split(':').next().unwrap_or(dir)).join("identity-header"),
                mode: secret_mode,
            },
            None => {
                return Err(
                    "say where the caller secret lives: --write-secret-file PATH (generated at start) or --secret-file PATH".to_owned(),
                );
            }
        },
    };
    let mode = match (dev, credential) {
        (true, Some(_)) => return Err("use --dev-tokens or --credential, not both".to_owned()),
        (true, None) => Mode::DevTokens {
            tenant,
            audience_override,
            lifetime,
        },
        (false, None | Some(Some(CredentialKind::ManagedIdentity))) => {
            Mode::ManagedIdentity { imds_endpoint }
        }
        (false, Some(kind)) => Mode::Credential(kind),
    };
    Ok(Some(Options {
        bind,
        allow_non_loopback,
        path,
        secret,
        mode,
        guard,
        limits,
        max_identities,
        log,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn a_dev_token_lifetime_outside_a_minute_to_a_day_is_refused() {
        for bad in ["0", "59", "86401", "18446744073709551615"] {
            let err = parse(
                args(&format!(
                    "--listen 127.0.0.1:9 --secret-file /s --dev-tokens --lifetime {bad}"
                )),
                &Env::empty(),
            )
            .unwrap_err();
            assert!(err.contains("60 to 86400"), "{err}");
        }
    }

    fn parse_ok(s: &str) -> Options {
        parse(args(s), &Env::empty()).unwrap().unwrap()
    }

    #[test]
    fn defaults_are_loopback_managed_identity_and_the_issue_limits() {
        let o = parse_ok("--write-secret-file /run/x/secret");
        assert_eq!(o.bind, Bind::Tcp("127.0.0.1:8181".parse().unwrap()));
        assert_eq!(
            o.mode,
            Mode::ManagedIdentity {
                imds_endpoint: None
            }
        );
        assert_eq!(o.guard.max_in_flight, 5);
        assert_eq!(o.guard.per_second, 20);
        assert_eq!(o.guard.refusal_ttl, Duration::from_secs(30));
        assert_eq!(
            o.secret,
            SecretSource::Generate {
                path: "/run/x/secret".into(),
                mode: 0o600
            }
        );
        assert!(!o.allow_non_loopback);
    }

    #[test]
    fn systemd_runtime_directory_gives_the_default_secret_file() {
        let env = Env::from_pairs([("RUNTIME_DIRECTORY", "/run/identity-sidecar")]);
        let o = parse(Vec::new(), &env).unwrap().unwrap();
        assert_eq!(
            o.secret,
            SecretSource::Generate {
                path: "/run/identity-sidecar/identity-header".into(),
                mode: 0o600
            }
        );
        assert!(parse(Vec::new(), &Env::empty()).is_err());
    }

    #[test]
    fn flags_parse_and_conflicts_are_refused() {
        let o = parse_ok(
            "--listen 127.0.0.1:9 --secret-file /s --dev-tokens --lifetime 60 --tenant t --max-in-flight 2 --per-second 7 --refusal-ttl 0",
        );
        assert_eq!(o.guard.refusal_ttl, Duration::ZERO);
        assert_eq!(
            o.mode,
            Mode::DevTokens {
                tenant: Some("t".into()),
                audience_override: None,
                lifetime: Duration::from_secs(60)
            }
        );
        assert_eq!(o.guard.max_in_flight, 2);
        assert_eq!(o.guard.per_second, 7);
        assert_eq!(
            parse_ok("--secret-file /s --credential azure-cli").mode,
            Mode::Credential(Some(CredentialKind::AzureCli))
        );
        assert_eq!(
            parse_ok("--secret-file /s --credential default").mode,
            Mode::Credential(None)
        );
        assert_eq!(parse(args("--help"), &Env::empty()), Ok(None));
        for bad in [
            "--secret-file /s --write-secret-file /t",
            "--secret-file /s --dev-tokens --credential azure-cli",
            "--secret-file /s --credential nope",
            "--secret-file /s --listen nowhere",
            "--secret-file /s --unix-mode 999",
            "--secret-file /s --max-in-flight x",
            "--secret-file /s --refusal-ttl 3601",
            "--secret-file /s --path relative",
            "--secret-file",
            "--frobnicate",
        ] {
            assert!(parse(args(bad), &Env::empty()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_secret_on_the_command_line_is_refused_without_echoing_it() {
        let e = parse(args("--secret planted-cli-secret"), &Env::empty()).unwrap_err();
        assert!(e.contains("--secret-file"), "{e}");
        assert!(!e.contains("planted-cli-secret"));
    }

    #[test]
    fn the_help_names_every_flag_the_parser_knows() {
        for flag in [
            "--listen",
            "--allow-non-loopback",
            "--unix",
            "--unix-mode",
            "--path",
            "--secret-file",
            "--write-secret-file",
            "--secret-file-mode",
            "--credential",
            "--imds-endpoint",
            "--max-identities",
            "--dev-tokens",
            "--tenant",
            "--audience-override",
            "--lifetime",
            "--max-in-flight",
            "--per-second",
            "--max-queue",
            "--refusal-ttl",
            "--max-pending",
            "--request-timeout",
            "--header-timeout",
            "--log",
        ] {
            assert!(HELP.contains(flag), "{flag}");
        }
    }
}
