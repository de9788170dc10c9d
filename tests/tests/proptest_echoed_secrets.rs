//! Property test of every response-quoting error path of `ManagedIdentityCredential`: an
//! endpoint that answers an error status with a body quoting the request's secret, at random
//! positions of random text, in random encodings (verbatim, percent-encoded, JSON escapes,
//! base64 at any alignment, hex, a mix) and in any quoted field, never gets that secret into
//! the error (`Display`, alternate, `Debug`, the chain of causes) or into traced output.
//!
//! The sources that send a secret are covered through the public API with an injected HTTP
//! client: App Service (`X-IDENTITY-HEADER`), Azure Machine Learning (`secret`) and Azure Arc
//! (`Authorization: Basic <key file>`). Service Fabric sends its `Secret` through the same
//! shared fetch, over its own pinned TLS client, and has a unit test of its own; IMDS and
//! Cloud Shell send no secret.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions fail loudly on purpose"
)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use identity_chain::{BoxFuture, Env, ManagedIdentityCredential, TokenCredential};
use identity_chain::{TokenRequestOptions, display_chain};
use identity_core::http::{Body, BoxError, HttpClient, Request, SendOptions};
use identity_core::test_util::{Capture, RecordingSleeper};
use proptest::prelude::*;

/// How the secret is written into the body.
#[derive(Clone, Debug)]
enum Encoding {
    Verbatim,
    PercentAll { upper: bool },
    Form,
    JsonEscapes,
    Base64 { prefix: Vec<u8>, url: bool },
    Hex { upper: bool },
    Mixed(Vec<u8>),
}

fn encoding() -> impl Strategy<Value = Encoding> {
    prop_oneof![
        Just(Encoding::Verbatim),
        any::<bool>().prop_map(|upper| Encoding::PercentAll { upper }),
        Just(Encoding::Form),
        Just(Encoding::JsonEscapes),
        (prop::collection::vec(any::<u8>(), 0..5), any::<bool>())
            .prop_map(|(prefix, url)| Encoding::Base64 { prefix, url }),
        any::<bool>().prop_map(|upper| Encoding::Hex { upper }),
        prop::collection::vec(0u8..4, 64).prop_map(Encoding::Mixed),
    ]
}

fn encode(secret: &str, how: &Encoding) -> String {
    let bytes = secret.as_bytes();
    match how {
        Encoding::Verbatim => secret.to_owned(),
        Encoding::PercentAll { upper: true } => bytes.iter().map(|b| format!("%{b:02X}")).collect(),
        Encoding::PercentAll { upper: false } => {
            bytes.iter().map(|b| format!("%{b:02x}")).collect()
        }
        Encoding::Form => form_urlencoded::byte_serialize(bytes).collect(),
        Encoding::JsonEscapes => bytes.iter().map(|b| format!("\\u{b:04x}")).collect(),
        Encoding::Base64 { prefix, url } => {
            let mut raw = prefix.clone();
            raw.extend_from_slice(bytes);
            raw.extend_from_slice(b"!suffix");
            if *url {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
            } else {
                base64::engine::general_purpose::STANDARD.encode(raw)
            }
        }
        Encoding::Hex { upper: true } => bytes.iter().map(|b| format!("{b:02X}")).collect(),
        Encoding::Hex { upper: false } => bytes.iter().map(|b| format!("{b:02x}")).collect(),
        Encoding::Mixed(choices) => bytes
            .iter()
            .zip(choices.iter().cycle())
            .map(|(b, c)| match c {
                0 => char::from(*b).to_string(),
                1 => format!("%{b:02X}"),
                2 => format!("%{b:02x}"),
                _ => format!("\\u{b:04x}"),
            })
            .collect(),
    }
}

/// The ways a leak would show: the secret in the text, in its percent- or escape-decoded
/// form, in base64 (the characters fixed by the secret's bytes, at each alignment, both
/// alphabets), in hex, or cut to a prefix of 6 or more bytes before `…`.
fn leak(text: &str, secret: &str) -> Option<String> {
    let decoded_views = [
        text.to_owned(),
        percent_decode(text),
        unescape(text),
        unescape(&percent_decode(text)),
    ];
    for view in &decoded_views {
        if view.contains(secret) {
            return Some(format!("verbatim in {view}"));
        }
        for len in 6..secret.len() {
            if view.contains(&format!("{}…", &secret[..len])) {
                return Some(format!("a cut prefix in {view}"));
            }
        }
    }
    for align in 0..3usize {
        let mut raw = vec![0u8; align];
        raw.extend_from_slice(secret.as_bytes());
        let first = (8 * align).div_ceil(6);
        let end = (8 * raw.len()) / 6;
        for engine in [
            base64::engine::general_purpose::STANDARD_NO_PAD,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            let encoded = engine.encode(&raw);
            if text.contains(&encoded[first..end]) {
                return Some(format!("base64 in {text}"));
            }
        }
    }
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    if text.contains(&hex) || text.contains(&hex.to_uppercase()) {
        return Some(format!("hex in {text}"));
    }
    None
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("\\u") {
        out.push_str(&rest[..at]);
        let code = rest
            .get(at + 2..at + 6)
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(char::from_u32);
        match code {
            Some(c) => {
                out.push(c);
                rest = &rest[at + 6..];
            }
            None => {
                out.push_str("\\u");
                rest = &rest[at + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Answers a request that carries the secret (or any request, for App Service and Azure
/// ML) with `status` and `body`; an Arc request without `Authorization` gets the challenge.
#[derive(Debug)]
struct Echo {
    status: u16,
    body: String,
    challenge: Option<String>,
}

impl HttpClient for Echo {
    fn execute(
        &self,
        request: Request,
        _options: SendOptions,
    ) -> BoxFuture<'_, Result<http::Response<Body>, BoxError>> {
        Box::pin(async move {
            if let Some(realm) = &self.challenge {
                if !request.headers().contains_key(http::header::AUTHORIZATION) {
                    return Ok(http::Response::builder()
                        .status(401)
                        .header(http::header::WWW_AUTHENTICATE, realm.as_str())
                        .body(Body::from_bytes(""))?);
                }
            }
            Ok(http::Response::builder()
                .status(self.status)
                .body(Body::from_bytes(self.body.clone()))?)
        })
    }
}

/// A JSON error body with the quoted text in `field`.
fn body(field: u8, text: &str) -> String {
    let value = match field {
        0 => serde_json::json!({ "message": text }),
        1 => serde_json::json!({ "Message": text, "message": "short" }),
        2 => serde_json::json!({ "error": text, "error_description": text }),
        3 => serde_json::json!({ "error": { "code": "Bad", "message": text } }),
        _ => serde_json::json!({ "error_description": text, "statusCode": 400 }),
    };
    value.to_string()
}

#[derive(Clone, Copy, Debug)]
enum Source {
    AppService,
    AzureMl,
    Arc,
}

fn run(source: Source, secret: &str, status: u16, body: String) -> Result<(), TestCaseError> {
    let body_copy = body.clone();
    let directory = tempfile::tempdir().unwrap();
    let mut builder = ManagedIdentityCredential::builder().timeout(Duration::from_secs(5));
    let mut challenge = None;
    let env = match source {
        Source::AppService => Env::from_pairs([
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:1/msi/token"),
            ("IDENTITY_HEADER", secret),
        ]),
        Source::AzureMl => Env::from_pairs([
            ("MSI_ENDPOINT", "http://127.0.0.1:1/ml"),
            ("MSI_SECRET", secret),
        ]),
        Source::Arc => {
            let key = directory.path().join("echo.key");
            std::fs::write(&key, secret).unwrap();
            challenge = Some(format!("Basic realm={}", key.display()));
            builder = builder.arc_key_directory(directory.path());
            Env::from_pairs([
                (
                    "IDENTITY_ENDPOINT",
                    "http://127.0.0.1:1/metadata/identity/oauth2/token",
                ),
                ("IMDS_ENDPOINT", "http://127.0.0.1:1"),
            ])
        }
    };
    let runtime = identity_core::Runtime::with_env(env)
        .sleeper(RecordingSleeper::new().shared())
        .http_client(Arc::new(Echo {
            status,
            body,
            challenge,
        }));
    let credential = builder.runtime(runtime).build().unwrap();
    let capture = Capture::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let error = runtime.block_on(async {
        let _guard = capture.enter();
        tokio::time::timeout(
            Duration::from_secs(20),
            credential.get_token(
                &["https://vault.azure.net/.default"],
                &TokenRequestOptions::default(),
            ),
        )
        .await
        .expect("bounded")
        .expect_err("an error status")
    });
    prop_assert_eq!(error.status(), Some(status));
    let mut texts = vec![
        error.to_string(),
        format!("{error:#}"),
        format!("{error:?}"),
        format!("{error:#?}"),
        display_chain(&error),
        capture.text(),
    ];
    let mut cause = std::error::Error::source(&error);
    while let Some(c) = cause {
        texts.push(format!("{c} {c:?}"));
        cause = c.source();
    }
    for text in texts {
        if let Some(how) = leak(&text, secret) {
            return Err(TestCaseError::fail(format!(
                "{source:?} leaked: {how}; text: {text}; body: {body_copy}"
            )));
        }
    }
    Ok(())
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn an_echoed_secret_never_leaks(
        source in prop_oneof![Just(Source::AppService), Just(Source::AzureMl), Just(Source::Arc)],
        secret in "[!-~]{8,40}",
        pieces in prop::collection::vec(
            (prop::collection::vec(any::<char>(), 0..40), encoding()),
            1..4,
        ),
        tail in prop::collection::vec(any::<char>(), 0..400),
        field in 0u8..5,
        status in prop_oneof![Just(400u16), Just(401), Just(403), Just(404), Just(500), Just(503)],
    ) {
        let mut text = String::new();
        for (before, how) in &pieces {
            text.extend(before.iter());
            text.push_str(&encode(&secret, how));
        }
        text.extend(tail.iter());
        run(source, &secret, status, body(field, &text))?;
    }
}
