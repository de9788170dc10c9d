//! `dev-stack` (`cargo xtask dev`): Azurite with OAuth over HTTPS and a local managed-identity
//! endpoint for running your own application against, until Ctrl-C. Prints the `export` lines
//! the application's shell needs.

use std::process::ExitCode;

use identity_blob_demo::azurite;
use identity_blob_demo::dev_stack::DevStack;
use identity_blob_demo::output::Output;

#[tokio::main]
async fn main() -> ExitCode {
    let mut output = Output::console();
    if std::env::args().len() > 1 {
        output.line(
            "usage: dev-stack\n\nStarts Azurite (OAuth, HTTPS) and a local managed-identity endpoint, \
             prints the variables your application needs, and runs until Ctrl-C.",
        );
        return ExitCode::from(2);
    }
    output.note("starting Azurite (installed with npm into .tools/azurite on first use) ...");
    let stack = match DevStack::start(&azurite::default_install_dir()).await {
        Ok(stack) => stack,
        Err(e) => {
            output.note(format!("error: {e}"));
            return ExitCode::FAILURE;
        }
    };
    // Printing IDENTITY_HEADER is the point: it is a per-run value for this local endpoint,
    // which issues unsigned development tokens that only emulators accept.
    output.line("# Paste into the shell that runs your application:");
    for (name, value) in stack.exports() {
        output.line(format!("export {name}={value}"));
    }
    output.note(
        "running: Azurite (OAuth, HTTPS) and the managed-identity endpoint (unsigned development \
         tokens, accepted by Azurite, never by Azure). SSL_CERT_FILE replaces the system CAs for \
         the application: use it for local runs only. Ctrl-C stops both.",
    );
    let _ = tokio::signal::ctrl_c().await;
    let issued = stack.tokens_issued();
    stack.shutdown().await;
    output.note(format!(
        "stopped Azurite and the managed-identity endpoint ({issued} token(s) issued)"
    ));
    ExitCode::SUCCESS
}
