//! `identity-blob-demo`: a Microsoft Entra token used against Blob Storage, end to end.
//! See `--help` and the crate docs.

use std::process::ExitCode;

use identity_blob_demo::cli::{self, Command};
use identity_blob_demo::credential::make_credential;
use identity_blob_demo::output::Output;
use identity_blob_demo::{blob, local};
use identity_core::Env;

#[tokio::main]
async fn main() -> ExitCode {
    let mut output = Output::console();
    let command = match cli::parse(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(message) => {
            output.note(format!("error: {message}\nrun with --help for usage"));
            return ExitCode::from(2);
        }
    };
    let outcome = match command {
        Command::Help => {
            output.line(cli::HELP.trim_end());
            return ExitCode::SUCCESS;
        }
        Command::Local(options) => local::run_local(&options, &mut output).await.map(|_| ()),
        Command::Run {
            mut demo,
            ca_file,
            credential,
        } => {
            if let Some(path) = ca_file {
                match tokio::fs::read(&path).await {
                    Ok(pem) => demo.ca_pem = Some(pem),
                    Err(e) => {
                        output.note(format!(
                            "error: cannot read --ca-file {}: {e}",
                            path.display()
                        ));
                        return ExitCode::from(2);
                    }
                }
            }
            match make_credential(&credential, Env::from_process()) {
                Ok(credential) => blob::run_demo(&demo, credential, &mut output)
                    .await
                    .map(|_| ()),
                Err(e) => {
                    output.note(format!(
                        "error: cannot build the {} credential: {}",
                        credential.kind,
                        identity_core::display_chain(&e)
                    ));
                    return ExitCode::from(2);
                }
            }
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output.note(format!("error: {e}"));
            ExitCode::FAILURE
        }
    }
}
