//! `cargo xtask demo`: the richest local demo that can run on this machine, with no Azure
//! account and no request leaving the machine.
//!
//! 1. **The blob demo** (`identity-blob-demo local`): Azurite (the Azure Storage emulator,
//!    installed with npm) with OAuth on, a managed-identity endpoint on 127.0.0.1, and the
//!    official blob client authenticated through this workspace's `ManagedIdentityCredential`.
//!    Runs when Node.js 20+ with npm is installed and the demo offers its `local` command.
//! 2. Otherwise **the `token` example**, fed by an App Service-shaped managed-identity endpoint
//!    that xtask serves on 127.0.0.1: `DefaultAzureCredential` with
//!    `AZURE_TOKEN_CREDENTIALS=ManagedIdentityCredential`, so nothing else in the chain is
//!    tried. `IDENTITY_ENDPOINT` + `IDENTITY_HEADER` select the App Service source, so the IMDS
//!    address is never contacted.
//! 3. Otherwise a description of the demo, and success.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::sh::{self, Result};

/// The header value the loopback endpoint requires; not a secret, it only guards the demo.
const DEMO_IDENTITY_HEADER: &str = "xtask-demo-identity-header";
/// The token the loopback endpoint hands out; recognisably fake.
const DEMO_TOKEN: &str = "xtask-demo-token.not-a-real-jwt";
/// The scope the example asks for.
const DEMO_SCOPE: &str = "https://storage.azure.com/.default";
/// The most requests the loopback endpoint answers before it stops, so it can never run away.
const MAX_REQUESTS: usize = 64;

const PLAN: &str = "\
The demo starts Azurite (the Azure Storage emulator) with OAuth on, serves a managed-identity
endpoint on 127.0.0.1, and runs identity-blob-demo: DefaultAzureCredential, in the environment
an App Service has, gets a token from the loopback endpoint through its managed-identity member,
and the official blob client uploads, downloads and deletes a blob with it. No Azure account is needed; nothing leaves this machine.";

pub(crate) fn run(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        return Err(format!("`demo` takes no arguments (got `{arg}`)").into());
    }
    let root = sh::project_root();
    println!("{PLAN}\n");
    match blob_demo_blocker() {
        None => {
            let mut cmd = sh::cargo(["run", "--quiet", "-p", "identity-blob-demo", "--", "local"]);
            return sh::run(&mut cmd);
        }
        Some(reason) => println!("The blob demo cannot run here: {reason}."),
    }
    let has_token = ["examples/token.rs", "examples/examples/token.rs"]
        .iter()
        .any(|p| root.join(p).is_file());
    if !has_token {
        println!(
            "No runnable example exists yet either (identity-examples has no `token` example); nothing to run."
        );
        list_examples(&root);
        return Ok(());
    }
    println!("Running the `token` example against a loopback managed-identity endpoint instead.\n");
    token_example()
}

/// Why the blob demo cannot run here, or `None` when it can: it needs Node.js 20+ with npm
/// (for Azurite) and a demo binary that offers the `local` command.
fn blob_demo_blocker() -> Option<String> {
    let node = sh::output(Command::new("node").arg("--version"));
    match node.as_deref().and_then(node_major) {
        Some(major) if major >= 20 => {}
        Some(_) => return Some("Azurite needs Node.js 20 or newer".to_owned()),
        None => {
            return Some("Node.js 20+ with npm is not installed (Azurite runs on it)".to_owned());
        }
    }
    if sh::output(Command::new("npm").arg("--version")).is_none() {
        return Some("npm is not installed (Azurite is installed with it)".to_owned());
    }
    println!("Building identity-blob-demo…");
    let help = sh::output(&mut sh::cargo([
        "run",
        "--quiet",
        "-p",
        "identity-blob-demo",
        "--",
        "--help",
    ]));
    match help {
        Some(text)
            if text
                .lines()
                .any(|l| l.trim_start().starts_with("identity-blob-demo local")) =>
        {
            None
        }
        Some(_) => Some("identity-blob-demo does not offer the `local` command yet".to_owned()),
        None => Some("identity-blob-demo does not build or run yet".to_owned()),
    }
}

/// The major version in `node --version` output such as `v20.20.2`.
fn node_major(version: &str) -> Option<u32> {
    version
        .trim()
        .strip_prefix('v')?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// Runs the `token` example against an App Service-shaped endpoint served on loopback.
fn token_example() -> Result<()> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    std::thread::spawn(move || serve(&listener));
    let mut cmd = sh::cargo([
        "run",
        "--quiet",
        "-p",
        "identity-examples",
        "--example",
        "token",
        "--",
        "--credential",
        "default",
        "--scope",
        DEMO_SCOPE,
    ]);
    for var in [
        "IMDS_ENDPOINT",
        "MSI_ENDPOINT",
        "MSI_SECRET",
        "IDENTITY_SERVER_THUMBPRINT",
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("IDENTITY_ENDPOINT", format!("http://{addr}/msi/token"))
        .env("IDENTITY_HEADER", DEMO_IDENTITY_HEADER)
        .env("AZURE_TOKEN_CREDENTIALS", "ManagedIdentityCredential");
    sh::run(&mut cmd)?;
    println!("\nThe token above came from the loopback endpoint (it is a fake, not a real JWT).");
    Ok(())
}

fn list_examples(root: &Path) {
    let mut names: Vec<String> = std::fs::read_dir(root.join("examples"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            if path.extension()? != "rs" || path.file_stem()? == "lib" {
                return None;
            }
            Some(path.file_stem()?.to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    if !names.is_empty() {
        println!("Examples present: {}", names.join(", "));
    }
}

/// Answers up to [`MAX_REQUESTS`] requests, one connection at a time.
fn serve(listener: &TcpListener) {
    for stream in listener.incoming().take(MAX_REQUESTS).flatten() {
        let _ = answer(stream);
    }
}

/// One App Service (2019-08-01) style exchange: a token when `X-IDENTITY-HEADER` matches.
fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut header_ok = false;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("x-identity-header")
                && value.trim() == DEMO_IDENTITY_HEADER
            {
                header_ok = true;
            }
        }
    }
    let (status, body) = if header_ok {
        (
            "200 OK",
            token_body(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            ),
        )
    } else {
        (
            "401 Unauthorized",
            r#"{"statusCode":401,"message":"X-IDENTITY-HEADER is missing or wrong"}"#.to_owned(),
        )
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// The App Service success body: `expires_on` as a decimal string, one hour from `now`.
fn token_body(now: u64) -> String {
    format!(
        r#"{{"access_token":"{DEMO_TOKEN}","expires_on":"{}","resource":"https://storage.azure.com","token_type":"Bearer","client_id":"00000000-0000-0000-0000-000000000000"}}"#,
        now + 3600
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_node_major_version_is_read() {
        assert_eq!(node_major("v20.20.2\n"), Some(20));
        assert_eq!(node_major("v18.0.0"), Some(18));
        assert_eq!(node_major("garbage"), None);
    }

    #[test]
    fn the_token_body_has_the_app_service_shape() {
        let body = token_body(1_700_000_000);
        assert!(body.contains(r#""expires_on":"1700003600""#));
        assert!(body.contains(r#""access_token":"xtask-demo-token"#));
    }

    #[test]
    fn the_loopback_endpoint_checks_the_identity_header() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            for stream in listener.incoming().take(2).flatten() {
                let _ = answer(stream);
            }
        });
        let ask = |header: &str| {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            write!(
                s,
                "GET /msi/token?api-version=2019-08-01 HTTP/1.1\r\nHost: x\r\nX-IDENTITY-HEADER: {header}\r\n\r\n"
            )
            .expect("write");
            let mut out = String::new();
            s.read_to_string(&mut out).expect("read");
            out
        };
        assert!(ask(DEMO_IDENTITY_HEADER).starts_with("HTTP/1.1 200 OK"));
        assert!(ask("wrong").starts_with("HTTP/1.1 401"));
        server.join().expect("server thread");
    }
}
