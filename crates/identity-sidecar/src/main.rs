//! `identity-sidecar`: one token cache for every process on a host. See `--help` and the
//! crate's README.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line program: its output is its interface"
)]

use std::process::ExitCode;
use std::str::FromStr as _;
use std::sync::Arc;

use identity_core::Env;
use identity_sidecar::cli::{self, SecretSource};
use identity_sidecar::{Metrics, ServerConfig, Sidecar, secret};

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = Vec::new();
    for arg in std::env::args_os().skip(1) {
        match arg.into_string() {
            Ok(a) => args.push(a),
            Err(_) => {
                eprintln!("error: an argument is not valid UTF-8\nrun with --help for usage");
                return ExitCode::from(2);
            }
        }
    }
    let env = Env::from_process();
    let options = match cli::parse(args, &env) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{}", cli::HELP);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\nrun with --help for usage");
            return ExitCode::from(2);
        }
    };
    let level = tracing::Level::from_str(&options.log).unwrap_or(tracing::Level::INFO);
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    match run(options, env).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: cli::Options, env: Env) -> Result<(), String> {
    let stop = stop_signal()?;
    let (secret, secret_file) = match &options.secret {
        SecretSource::File(path) => (secret::read_file(path)?, path.clone()),
        SecretSource::Generate { path, mode } => {
            let secret = secret::generate().map_err(|e| e.to_string())?;
            secret::write_file(path, &secret, *mode)
                .map_err(|e| format!("cannot write the secret file {}: {e}", path.display()))?;
            (secret, path.clone())
        }
    };
    let clock = identity_core::system_clock();
    let metrics = Arc::new(Metrics::default());
    let (backend, guards) = options.backend(&env, &clock, &metrics)?;
    let mut config = ServerConfig::new(secret);
    config.bind = options.bind.clone();
    config.allow_non_loopback = options.allow_non_loopback;
    config.path.clone_from(&options.path);
    config.limits = options.limits;
    let sidecar = Sidecar::start(config, backend, guards, metrics)
        .await
        .map_err(|e| format!("cannot listen: {e}"))?;
    {
        // Written, not `println!`: a reader that has gone away must not stop the server.
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "IDENTITY_ENDPOINT={}", sidecar.endpoint());
        let _ = writeln!(out, "IDENTITY_HEADER_FILE={}", secret_file.display());
        let _ = out.flush();
    }
    sidecar.serve_until(stop).await;
    Ok(())
}

/// SIGTERM or Ctrl-C (SIGINT). The handlers are installed here, before the server starts,
/// so a signal that arrives early is never met by the default action (death without a
/// clean stop).
fn stop_signal() -> Result<impl std::future::Future<Output = ()>, String> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term =
            signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
        let mut int =
            signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
