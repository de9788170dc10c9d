//! The Azure Arc challenge header: the agent's 401 carries `WWW-Authenticate: Basic
//! realm=<key file>`. The fuzzed header goes through the real credential with an in-memory
//! HTTP client (nothing leaves the process) and a key directory holding one valid key file;
//! the key file's content never appears in an error.
#![no_main]

use std::sync::{Arc, OnceLock};

use identity_core::http::{Body, BoxError, HttpClient, Request, SendOptions};
use identity_core::{BoxFuture, Env, TokenCredential, TokenRequestOptions};
use identity_msi::ManagedIdentityCredential;
use libfuzzer_sys::fuzz_target;

const KEY: &str = "planted-arc-fuzz-key";

#[derive(Debug)]
struct Challenger(Vec<u8>);

impl HttpClient for Challenger {
    fn execute(
        &self,
        request: Request,
        _options: SendOptions,
    ) -> BoxFuture<'_, Result<http::Response<Body>, BoxError>> {
        let header = self.0.clone();
        Box::pin(async move {
            let mut builder = http::Response::builder();
            if request.headers().contains_key(http::header::AUTHORIZATION) {
                builder = builder.status(200);
                return Ok(builder.body(Body::from_bytes(
                    "{\"access_token\":\"t\",\"expires_in\":3600}",
                ))?);
            }
            builder = builder.status(401);
            if let Ok(value) = http::HeaderValue::from_bytes(&header) {
                builder = builder.header(http::header::WWW_AUTHENTICATE, value);
            }
            Ok(builder.body(Body::from_bytes(""))?)
        })
    }
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    directory: std::path::PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let directory = std::env::temp_dir().join(format!("arc-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        std::fs::write(directory.join("good.key"), KEY).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Fixture { runtime, directory }
    })
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    // Let the fuzzer reach the valid key file by name.
    let header = String::from_utf8_lossy(data)
        .replace("$DIR", &fixture.directory.display().to_string())
        .into_bytes();
    let credential = ManagedIdentityCredential::builder()
        .runtime(
            identity_core::Runtime::with_env(Env::from_pairs([
                (
                    "IDENTITY_ENDPOINT",
                    "http://127.0.0.1:1/metadata/identity/oauth2/token",
                ),
                ("IMDS_ENDPOINT", "http://127.0.0.1:1"),
            ]))
            .http_client(Arc::new(Challenger(header))),
        )
        .arc_key_directory(&fixture.directory)
        .build()
        .unwrap();
    let result = fixture.runtime.block_on(credential.get_token(
        &["https://management.azure.com/.default"],
        &TokenRequestOptions::default(),
    ));
    if let Err(error) = result {
        let text = format!("{error} {error:?} {}", identity_core::display_chain(&error));
        assert!(!text.contains(KEY), "{text}");
    }
});
