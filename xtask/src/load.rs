//! `cargo xtask load [--seconds N] [--tasks N]`: builds the load test (`identity-load`, a
//! workspace member outside the default members) in release mode and runs it: by default
//! 10,000 concurrent tasks over 100 `ManagedIdentityCredential`s for 30 s against an
//! in-process emulated App Service endpoint with 1% injected failures. Prints the report
//! (tokens served, requests, errors, wrong-identity tokens, panics, resident memory) and fails
//! when a wrong-identity token, a panic or a hang was seen.

use crate::sh::{self, Result};

pub(crate) fn run(args: &[String]) -> Result<()> {
    let usage = "usage: cargo xtask load [--seconds N] [--tasks N]";
    let mut forwarded = Vec::new();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        if !matches!(flag.as_str(), "--seconds" | "--tasks") {
            return Err(format!("unknown argument {flag}; {usage}").into());
        }
        let value = args
            .next()
            .filter(|v| v.parse::<u64>().is_ok())
            .ok_or_else(|| format!("{flag} needs a whole number; {usage}"))?;
        forwarded.push(flag.clone());
        forwarded.push(value.clone());
    }
    let mut cmd = sh::cargo(["run", "--quiet", "--release", "-p", "identity-load", "--"]);
    cmd.args(&forwarded);
    sh::run(&mut cmd)
}
