//! The public surface as another crate (a chain, an application's tests) uses it: a custom
//! executor, and the real runner driven directly.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use identity_core::{BoxFuture, Env, ErrorKind, Runtime, TokenCredential, TokenRequestOptions};
use identity_dev::process::{Command, Executor, Output, RunError, TokioExecutor};
use identity_dev::{AzureCliCredential, AzureDeveloperCliCredential, AzurePowerShellCredential};

/// Answers every command with the same output and remembers what it was asked to run.
#[derive(Debug)]
struct Scripted {
    output: Output,
    seen: Mutex<Vec<(String, Vec<String>)>>,
}

impl Executor for Scripted {
    fn run(&self, command: Command) -> BoxFuture<'static, Result<Output, RunError>> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((command.to_string(), command.args().to_vec()));
        let output = self.output.clone();
        Box::pin(async move { Ok(output) })
    }
}

fn scripted(stdout: &str) -> Arc<Scripted> {
    Arc::new(Scripted {
        output: Output::new(Some(0), stdout, ""),
        seen: Mutex::default(),
    })
}

#[tokio::test]
async fn a_custom_executor_sees_every_tool_invocation() {
    let az = scripted(r#"{"accessToken":"A","expires_on":1893492000}"#);
    let cred = AzureCliCredential::builder()
        .runtime(Runtime::with_env(Env::empty()))
        .executor(az.clone())
        .build()
        .unwrap();
    let token = cred
        .get_token(
            &["https://management.azure.com/.default"],
            &TokenRequestOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(token.token.secret(), "A");
    assert_eq!(cred.name(), "AzureCliCredential");
    let seen = az.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "az");
    assert_eq!(seen[0].1[..2], ["account", "get-access-token"]);

    let azd = scripted(r#"{"token":"D","expiresOn":"2030-01-01T10:00:00Z"}"#);
    let cred = AzureDeveloperCliCredential::builder()
        .runtime(Runtime::with_env(Env::empty()))
        .executor(azd.clone())
        .build()
        .unwrap();
    let token = cred
        .get_token(&["a", "b"], &TokenRequestOptions::default())
        .await
        .unwrap();
    assert_eq!(token.token.secret(), "D");
    assert_eq!(cred.name(), "AzureDeveloperCliCredential");

    let pwsh = scripted("\nazsdk%P%1893492000\n");
    let cred = AzurePowerShellCredential::builder()
        .runtime(Runtime::with_env(Env::empty()))
        .executor(pwsh.clone())
        .build()
        .unwrap();
    let token = cred
        .get_token(
            &["https://vault.azure.net/.default"],
            &TokenRequestOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(token.token.secret(), "P");
    assert_eq!(cred.name(), "AzurePowerShellCredential");
    assert_eq!(pwsh.seen.lock().unwrap()[0].0, "pwsh");
}

#[tokio::test]
async fn credentials_work_as_trait_objects() {
    let az = scripted(r#"{"accessToken":"A","expires_on":1893492000}"#);
    let cred: Arc<dyn TokenCredential> = Arc::new(
        AzureCliCredential::builder()
            .runtime(Runtime::with_env(Env::empty()))
            .executor(az)
            .build()
            .unwrap(),
    );
    let options = TokenRequestOptions::default();
    let token = cred
        .get_token(&["https://management.azure.com/.default"], &options)
        .await
        .unwrap();
    assert_eq!(token.token.secret(), "A");
}

#[cfg(unix)]
#[tokio::test]
async fn the_real_runner_passes_arguments_and_environment_verbatim() {
    let command = Command::new("sh", "sh")
        .arg("-c")
        .arg("printf '%s|%s' \"$1\" \"$GREETING\"")
        .arg("sh")
        .arg("two words; $(not run)")
        .env(Env::from_pairs([
            ("PATH", "/bin:/usr/bin"),
            ("GREETING", "hello"),
        ]))
        .current_dir("/")
        .timeout(Duration::from_secs(20));
    let output = tokio::time::timeout(Duration::from_secs(30), TokioExecutor.run(command))
        .await
        .unwrap()
        .unwrap();
    assert!(output.success());
    assert_eq!(output.stdout(), "two words; $(not run)|hello");
}

#[cfg(unix)]
#[tokio::test]
async fn the_real_runner_reports_a_missing_program_without_spawning() {
    let command = Command::new("nothing", "definitely-not-installed-tool")
        .env(Env::from_pairs([("PATH", "/bin")]));
    let err = TokioExecutor.run(command).await.unwrap_err();
    assert!(matches!(err, RunError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn a_logged_out_tool_is_unavailable_so_a_chain_moves_on() {
    let az = Arc::new(Scripted {
        output: Output::new(
            Some(1),
            "",
            "ERROR: Please run 'az login' to setup account.",
        ),
        seen: Mutex::default(),
    });
    let cred = AzureCliCredential::builder()
        .runtime(Runtime::with_env(Env::empty()))
        .executor(az)
        .build()
        .unwrap();
    let err = cred
        .get_token(
            &["https://management.azure.com/.default"],
            &TokenRequestOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
}
