//! Developer commands for the workspace, run as `cargo xtask <command>` (the alias lives in
//! `.cargo/config.toml`).
//!
//! * `ci`: everything CI checks, in order, failing fast: toolchain components, rustfmt, tidy,
//!   the identity-msi dependency-tree guard, clippy, tests, the contributor walk-through, docs, `cargo package` of every
//!   library crate, cargo-deny.
//! * `deny`: `cargo deny --offline check` against the local advisory snapshot.
//! * `tidy`: repository checks (also run as `#[test]`s in `cargo test -p xtask`).
//! * `walkthrough`: CONTRIBUTING.md's "Add a hosting source" applied to a copy of the
//!   workspace, then linted and tested.
//! * `bench`: this workspace side by side with the official `azure_identity` (`identity-bench`, release mode).
//! * `demo`: the blob demo against Azurite and a loopback managed-identity endpoint (or, without
//!   Node.js, the `token` example against a loopback endpoint).
//! * `dev`: Azurite and a loopback managed-identity endpoint for running your own
//!   application, with the variables it needs, until Ctrl-C.
//! * `fuzz`: every cargo-fuzz target for a bounded time, with a summary table (not in `ci`).
//! * `load`: the load test (release build), printed as a report.
//! * `sidecar-load`: many client processes direct to an emulated IMDS, then through
//!   `identity-sidecar` (release build), one table.
//!
//! xtask is a developer tool, not a library: it prints, reads the process environment and
//! spawns processes directly, which the workspace's clippy configuration bans in libraries.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "xtask is a command-line tool whose output is its interface"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "xtask is not a library: it reads the process environment and spawns processes itself"
)]

mod bench;
mod ci;
mod demo;
mod deny;
mod dev;
mod fuzz;
mod layout;
mod load;
mod sh;
mod sidecar_load;
mod tidy;
mod walkthrough;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci      rustfmt, tidy, msi tree guard, clippy, tests, the walk-through, docs, packages and cargo-deny; fails fast
          (`--skip STEP` leaves a step out when re-running locally)
  deny    cargo deny --offline check against the local advisory snapshot
  tidy    repository checks (crate docs, no printing in libraries, versions, tiers)
  walkthrough  CONTRIBUTING.md's 'Add a hosting source', applied to a copy and tested
  bench   benchmarks side by side with the official azure_identity (release build), one table
  demo    the blob demo on Azurite + a loopback managed-identity endpoint (no Azure account)
  dev     Azurite + a loopback managed-identity endpoint for your own app, until Ctrl-C
  fuzz    every cargo-fuzz target for N seconds (`[--seconds N] [TARGET]`, default 30)
  load    load test: 10,000 tasks, 100 credentials, 30 s (`[--seconds N] [--tasks N]`)
  sidecar-load  48 client processes x 3 resources for 30 s against an emulated IMDS (20/s,
          5 in flight), direct and through identity-sidecar (`[--seconds N] [--clients N]`)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let result = match command.as_str() {
        "ci" => ci::run(rest),
        "deny" => deny::run(&sh::project_root()),
        "tidy" => tidy::run(&sh::project_root()),
        "bench" => bench::run(rest),
        "demo" => demo::run(rest),
        "dev" => dev::run(rest),
        "fuzz" => fuzz::run(rest),
        "load" => load::run(rest),
        "sidecar-load" => sidecar_load::run(rest),
        "walkthrough" => walkthrough::run(&sh::project_root()),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => {
            eprintln!("xtask: unknown command `{other}`\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {command}: {e}");
            ExitCode::FAILURE
        }
    }
}
