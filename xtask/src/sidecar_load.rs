//! `cargo xtask sidecar-load [--seconds N] [--clients N]`: builds `identity-sidecar` and the
//! load package in release mode, then runs `sidecar-load`: by default 48 client processes,
//! each a fresh `ManagedIdentityCredential` asking for 3 resources for 30 s, against an
//! emulated IMDS on 127.0.0.1 that allows 20 requests per second and 5 in flight (429 with
//! `Retry-After` beyond) and issues 60 s tokens; once with every client calling IMDS
//! directly, once through one sidecar. Prints one table: upstream requests, 429s seen, client
//! errors, client p50/p99 latency, sidecar memory. Bounded: seconds 1-600, clients 1-256,
//! and every child is killed 60 s after the run's end.

use std::path::PathBuf;

use crate::sh::{self, Result};

pub(crate) fn run(args: &[String]) -> Result<()> {
    let usage = "usage: cargo xtask sidecar-load [--seconds N] [--clients N]";
    let mut forwarded = Vec::new();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        if !matches!(flag.as_str(), "--seconds" | "--clients") {
            return Err(format!("unknown argument {flag}; {usage}").into());
        }
        let value = args
            .next()
            .filter(|v| v.parse::<u64>().is_ok())
            .ok_or_else(|| format!("{flag} needs a whole number; {usage}"))?;
        forwarded.push(flag.clone());
        forwarded.push(value.clone());
    }
    sh::run(&mut sh::cargo([
        "build",
        "--quiet",
        "--release",
        "-p",
        "identity-sidecar",
        "-p",
        "identity-load",
        "--bins",
    ]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| sh::project_root().join("target"), PathBuf::from)
        .join("release");
    let mut cmd = std::process::Command::new(target.join("sidecar-load"));
    cmd.arg("--sidecar-bin")
        .arg(target.join("identity-sidecar"))
        .args(&forwarded)
        .current_dir(sh::project_root());
    sh::run(&mut cmd)
}
