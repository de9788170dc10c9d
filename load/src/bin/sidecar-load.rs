//! `sidecar-load --sidecar-bin PATH [--seconds N] [--clients N]`: the sidecar load test (see
//! `identity_load::sidecar_load`), printed as one markdown table. `sidecar-load client MODE
//! ENDPOINT SECONDS` is one client process (started by the test itself; the caller secret
//! comes in `IDENTITY_HEADER`).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool whose output is its interface"
)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use identity_core::Env;
use identity_load::sidecar_load::{self, Config};

const USAGE: &str = "usage: sidecar-load --sidecar-bin PATH [--seconds N] [--clients N]";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("client") {
        let (Some(mode), Some(endpoint), Some(secs)) = (
            args.get(1),
            args.get(2),
            args.get(3).and_then(|s| s.parse::<u64>().ok()),
        ) else {
            eprintln!("usage: sidecar-load client direct|sidecar ENDPOINT SECONDS");
            return ExitCode::from(2);
        };
        let env = Env::from_process();
        return match sidecar_load::client(mode, endpoint, &env, Duration::from_secs(secs)).await {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("client: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut sidecar_bin = None;
    let mut seconds = 30;
    let mut clients = 48;
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let value = it.next();
        match (flag.as_str(), value) {
            ("--sidecar-bin", Some(v)) => sidecar_bin = Some(PathBuf::from(v)),
            ("--seconds", Some(v)) if v.parse::<u64>().is_ok_and(|n| (1..=600).contains(&n)) => {
                seconds = v.parse().unwrap_or(30);
            }
            ("--clients", Some(v)) if v.parse::<usize>().is_ok_and(|n| (1..=256).contains(&n)) => {
                clients = v.parse().unwrap_or(48);
            }
            _ => {
                eprintln!("{USAGE} (seconds 1-600, clients 1-256)");
                return ExitCode::from(2);
            }
        }
    }
    let Some(sidecar_bin) = sidecar_bin else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let mut config = Config::new(sidecar_bin);
    config.duration = Duration::from_secs(seconds);
    config.clients = clients;
    eprintln!(
        "sidecar-load: {} clients x {} resources for {} s, emulated IMDS at {}/s and {} in flight, {} s tokens; direct, then through the sidecar",
        config.clients,
        sidecar_load::RESOURCES.len(),
        seconds,
        config.imds_per_second,
        config.imds_in_flight,
        config.token_lifetime.as_secs()
    );
    match sidecar_load::run(&config).await {
        Ok(table) => {
            print!("{table}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sidecar-load: {e}");
            ExitCode::FAILURE
        }
    }
}
