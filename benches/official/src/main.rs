//! The official `azure_identity` crate under the `identity-bench` cases: one case per process,
//! `official-bench --case N [--quick]`, one JSON line on stdout. Spawned by `identity-bench`
//! (see `benches/src/main.rs`) with a prepared environment (`IDENTITY_ENDPOINT`,
//! `IDENTITY_HEADER`, `BENCH_ADDR`, `PATH`).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark binary"
)]

#[path = "../../src/harness.rs"]
#[allow(dead_code, reason = "the parent-side helpers live in identity-bench")]
mod harness;

#[path = "../../src/cases.rs"]
#[allow(dead_code, reason = "the parent-side helpers live in identity-bench")]
mod cases;

#[path = "../../src/hot.rs"]
#[allow(dead_code, reason = "the parent-side helpers live in identity-bench")]
mod hot;

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_identity::{AzureCliCredential, ManagedIdentityCredential};

/// The official managed identity credential (App Service source from the environment).
struct Official(Arc<ManagedIdentityCredential>);

impl cases::Subject for Official {
    // The official cache refreshes a token that expires within 300 s of now: a 332 s token
    // enters that window 32 s after issue.
    const REFRESH_CASE_LIFETIME_S: u64 = 332;

    fn build() -> Result<Arc<Self>, String> {
        ManagedIdentityCredential::new(None)
            .map(|c| Arc::new(Self(c)))
            .map_err(|e| format!("ManagedIdentityCredential::new failed: {e}"))
    }

    async fn token(self: Arc<Self>, scope: &'static str) -> Result<usize, String> {
        self.0
            .get_token(&[scope], None)
            .await
            .map(|t| t.token.secret().len())
            .map_err(|e| format!("get_token failed: {e}"))
    }

    fn chain_token(_imds: SocketAddr) -> Option<impl Future<Output = Result<usize, String>>> {
        // The official IMDS endpoint is a constant (169.254.169.254) with no override, so this
        // chain is never run here: nothing may leave the loopback interface.
        None::<std::future::Ready<Result<usize, String>>>
    }

    async fn cli_token() -> Result<usize, String> {
        let cli = AzureCliCredential::new(None)
            .map_err(|e| format!("AzureCliCredential::new failed: {e}"))?;
        cli.get_token(&[harness::SCOPE_A], None)
            .await
            .map(|t| t.token.secret().len())
            .map_err(|e| format!("get_token failed: {e}"))
    }
}

/// The official side of the hot cases: its managed identity credential through its own
/// `TokenCredential` trait. It has no prepared request (those rows show its `get_token`), no
/// `DefaultAzureCredential` in 1.0 (n/a), and its credential is already an `azure_core`
/// credential (the adapter row shows it as is).
struct OfficialHot;

impl hot::HotSubject for OfficialHot {
    type Caller = Arc<dyn TokenCredential>;

    async fn caller(path: hot::Path, _addr: SocketAddr) -> Result<Option<Self::Caller>, String> {
        if matches!(path, hot::Path::Chain | hot::Path::ChainPrepared) {
            return Ok(None);
        }
        let mut caller: Self::Caller = ManagedIdentityCredential::new(None)
            .map_err(|e| format!("ManagedIdentityCredential::new failed: {e}"))?;
        Self::call(&mut caller).await?;
        Ok(Some(caller))
    }

    fn fork(caller: &Self::Caller) -> Self::Caller {
        Arc::clone(caller)
    }

    async fn call(caller: &mut Self::Caller) -> Result<usize, String> {
        caller
            .get_token(&[harness::SCOPE_A], None)
            .await
            .map(|t| t.token.secret().len())
            .map_err(|e| format!("get_token failed: {e}"))
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "the official crate reads the process environment; this binary does the same"
)]
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--hot") {
        return match hot::child_main::<OfficialHot>(&args, std::env::var("BENCH_ADDR").ok()) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("official-bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match cases::child_main::<Official>(&args, std::env::var("BENCH_ADDR").ok()) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("official-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
