//! `identity-load [--seconds N] [--tasks N] [--credentials N]`: runs the load test and prints
//! its report as a markdown table; exits non-zero when an invariant is broken.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool whose output is its interface"
)]

use std::process::ExitCode;
use std::time::Duration;

use identity_load::{Config, run};

fn main() -> ExitCode {
    let mut config = Config::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().and_then(|v| v.parse::<u64>().ok());
        match (flag.as_str(), value) {
            ("--seconds", Some(v)) => config.duration = Duration::from_secs(v),
            ("--tasks", Some(v)) => config.tasks = usize::try_from(v).unwrap_or(usize::MAX),
            ("--credentials", Some(v)) => {
                config.credentials = usize::try_from(v).unwrap_or(usize::MAX).max(1);
            }
            _ => {
                eprintln!("usage: identity-load [--seconds N] [--tasks N] [--credentials N]");
                return ExitCode::from(2);
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("identity-load: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "load: {} tasks over {} credentials for {} s against a loopback App Service endpoint (1 in {} requests fails)",
        config.tasks,
        config.credentials,
        config.duration.as_secs(),
        config.fail_every
    );
    match runtime.block_on(run(config)) {
        Ok(report) => {
            println!("{report}");
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "identity-load: an invariant was broken (wrong-identity token, panic or hang)"
                );
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("identity-load: {e}");
            ExitCode::FAILURE
        }
    }
}
