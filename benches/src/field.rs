//! Field rows: the default chain on answers recorded from real hosts (the corpus in
//! `tests/field/`, replayed by the same loopback server the tests use), next to the reference
//! SDK's figures for the same inputs.
//!
//! Each row builds a fresh `DefaultAzureCredential` whose managed-identity member looks for
//! IMDS on a loopback listener (`imds_endpoint`, so the probe runs as at the real address)
//! and whose other members are excluded, then times construction plus one `get_token`:
//!
//! * "start → next member": until the managed-identity member gives up (the chain would call
//!   its next member at that instant);
//! * "start → token": until the managed-identity token is returned.
//!
//! The official Rust crate cannot be pointed at a loopback IMDS, so the comparison column is
//! the reference SDK's figures for the same inputs, as measured when the faults were reported.
//! Runs in this (parent) process: the credential reads only an injected, empty `Env`.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use identity_chain::{
    DefaultAzureCredential, Env, ListedHostFiles, Runtime, TokenCredential, TokenRequestOptions,
};

#[path = "../../tests/src/field.rs"]
#[allow(
    dead_code,
    unreachable_pub,
    reason = "shared with the tests; the benchmark uses the loader and the replay server only"
)]
mod corpus;

/// The corpus directory.
const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/field");

/// What a row times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Until {
    NextMember,
    Token,
}

/// One row: label, corpus case, what is timed, the reference's figure in seconds.
const ROWS: &[(&str, &str, Until, f64)] = &[
    (
        "Docker Desktop 403 at the IMDS address: start → next member",
        "docker-desktop-403",
        Until::NextMember,
        0.4,
    ),
    (
        "HTML 403 (corporate proxy) at the IMDS address: start → next member",
        "corporate-proxy-403-html",
        Until::NextMember,
        0.4,
    ),
    (
        "HTML 404 (another cloud's metadata service) at the IMDS address: start → next member",
        "gcp-metadata-404-html",
        Until::NextMember,
        24.0,
    ),
    (
        "IMDS answering after 1.2 s: start → managed-identity token",
        "slow-imds-1200ms",
        Until::Token,
        2.8,
    ),
];

/// The field table, in markdown.
pub(crate) fn table(quick: bool) -> Result<String, String> {
    let runs = if quick { 1 } else { 5 };
    let cases = corpus::load_dir(Path::new(CORPUS))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("no runtime: {e}"))?;
    let mut out = String::from(
        "\nField cases (recorded answers from tests/field, replayed on 127.0.0.1 where the IMDS probe looks; \
         median of fresh credentials):\n\n| case | ours | reference SDK | reference ÷ ours |\n|---|---:|---:|---:|\n",
    );
    for (label, name, until, reference) in ROWS {
        let case = cases
            .iter()
            .find(|c| c.name == *name)
            .ok_or_else(|| format!("{name} is not in {CORPUS}"))?;
        let mut samples = Vec::new();
        for _ in 0..runs {
            samples.push(runtime.block_on(once(case, *until))?);
        }
        let ours = crate::harness::median(&mut samples);
        let _ = writeln!(
            out,
            "| {label} | {} | {reference:.1} s | {:.1}× |",
            seconds(ours),
            reference / ours
        );
    }
    Ok(out)
}

fn seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{:.1} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

/// One fresh chain against one replayed case; the elapsed seconds.
async fn once(case: &corpus::Case, until: Until) -> Result<f64, String> {
    let replay = corpus::Replay::start(case)
        .await
        .map_err(|e| format!("no loopback listener: {e}"))?;
    let started = Instant::now();
    let chain = DefaultAzureCredential::builder()
        .runtime(Runtime::with_env(Env::empty()))
        .exclude_environment_credential(true)
        .exclude_workload_identity_credential(true)
        .exclude_cli_credential(true)
        .exclude_powershell_credential(true)
        .exclude_developer_cli_credential(true)
        .imds_endpoint(replay.token_url())
        .configure_managed_identity(|b| b.host_files(Arc::new(ListedHostFiles::default())))
        .build()
        .map_err(|e| format!("DefaultAzureCredential build failed: {e}"))?;
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        chain.get_token(
            &["https://vault.azure.net/.default"],
            &TokenRequestOptions::default(),
        ),
    )
    .await
    .map_err(|_| format!("{}: no outcome within 60 s", case.name))?;
    let elapsed = started.elapsed().as_secs_f64();
    match (until, result) {
        (Until::Token, Ok(_)) => Ok(elapsed),
        (Until::NextMember, Err(e)) if e.is_unavailable() => Ok(elapsed),
        (_, Ok(_)) => Err(format!("{}: a token where none was expected", case.name)),
        (_, Err(e)) => Err(format!("{}: {e}", case.name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_names_a_corpus_case() {
        let cases = corpus::load_dir(Path::new(CORPUS)).expect("the corpus parses");
        for (_, name, _, _) in ROWS {
            assert!(cases.iter().any(|c| c.name == *name), "{name}");
        }
    }
}
