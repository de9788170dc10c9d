//! `local-msi`: a local App Service managed-identity endpoint that issues **unsigned
//! development tokens**, accepted only by emulators such as Azurite, never by Azure.
//! The same server as `identity-sidecar --dev-tokens`. See `--help`.

use std::process::ExitCode;

use identity_blob_demo::cli;
use identity_blob_demo::local_msi::LocalMsi;
use identity_blob_demo::output::Output;
use identity_blob_demo::random::random_secret;

#[tokio::main]
async fn main() -> ExitCode {
    let mut output = Output::console();
    let mut args = Vec::new();
    for arg in std::env::args_os().skip(1) {
        let Ok(arg) = arg.into_string() else {
            output.note("error: an argument is not valid UTF-8\nrun with --help for usage");
            return ExitCode::from(2);
        };
        args.push(arg);
    }
    let env = identity_core::Env::from_process();
    let generated =
        !env.is_present("IDENTITY_HEADER") && !args.iter().any(|a| a == "--secret-file");
    let config =
        match cli::parse_local_msi(args, &env, || random_secret().map_err(|e| e.to_string())) {
            Ok(Some(config)) => config,
            Ok(None) => {
                output.line(cli::LOCAL_MSI_HELP.trim_end());
                return ExitCode::SUCCESS;
            }
            Err(message) => {
                output.note(format!("error: {message}\nrun with --help for usage"));
                return ExitCode::from(2);
            }
        };
    let server = match LocalMsi::start(config).await {
        Ok(server) => server,
        Err(e) => {
            output.note(format!("error: cannot listen on 127.0.0.1: {e}"));
            return ExitCode::FAILURE;
        }
    };
    output.line(format!("export IDENTITY_ENDPOINT={}", server.endpoint()));
    if generated {
        // Printing a generated secret is the point of this tool: the user copies it into
        // the application's environment, exactly as App Service would inject it. A secret
        // the user supplied is not repeated.
        output.line(format!(
            "export IDENTITY_HEADER={}",
            server.identity_header().secret()
        ));
    }
    output.note(
        "serving unsigned development tokens (accepted by Azurite, never by Azure); Ctrl-C stops",
    );
    server
        .serve_until(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    ExitCode::SUCCESS
}
