//! Echoed secrets: an App Service endpoint answers an error status with a JSON body whose
//! quoted field is the fuzzed text, every `#` of which is replaced by the request's
//! `X-IDENTITY-HEADER` value in one of several encodings (verbatim, percent-encoded, JSON
//! escapes, base64 at any alignment, hex). The error (`Display`, `Debug`, the chain of causes)
//! must hold the secret in none of those forms. The request goes through the real credential
//! with an in-memory HTTP client: nothing leaves the process.
#![no_main]

use std::sync::{Arc, OnceLock};

use identity_core::http::{Body, BoxError, HttpClient, Request, SendOptions};
use identity_core::{BoxFuture, Env, TokenCredential, TokenRequestOptions, display_chain};
use identity_msi::ManagedIdentityCredential;
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "Pl4nted/S3cret+V4lue=Fuzz";

#[derive(Debug)]
struct Echo {
    status: u16,
    body: String,
}

impl HttpClient for Echo {
    fn execute(
        &self,
        _request: Request,
        _options: SendOptions,
    ) -> BoxFuture<'_, Result<http::Response<Body>, BoxError>> {
        Box::pin(async move {
            Ok(http::Response::builder()
                .status(self.status)
                .body(Body::from_bytes(self.body.clone()))?)
        })
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

fn base64(bytes: &[u8], url: bool) -> String {
    let alphabet: &[u8; 64] = if url {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let mut n = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            n |= u32::from(*b) << (16 - 8 * i);
        }
        for k in 0..=chunk.len() {
            out.push(char::from(alphabet[((n >> (18 - 6 * k)) & 0x3f) as usize]));
        }
    }
    out
}

fn encode(selector: u8) -> String {
    let bytes = SECRET.as_bytes();
    match selector % 8 {
        0 => SECRET.to_owned(),
        1 => bytes.iter().map(|b| format!("%{b:02X}")).collect(),
        2 => bytes.iter().map(|b| format!("%{b:02x}")).collect(),
        3 => bytes.iter().map(|b| format!("\\u{b:04x}")).collect(),
        4 => bytes.iter().map(|b| format!("{b:02x}")).collect(),
        k => {
            let mut raw = vec![b'x'; usize::from(k - 5)];
            raw.extend_from_slice(bytes);
            base64(&raw, selector & 8 != 0)
        }
    }
}

/// A leak: the secret verbatim, percent-decoded or unescaped, or the part of its base64 (at
/// any alignment) or hex that only the secret determines.
fn leaks(text: &str) -> bool {
    let mut decoded = String::new();
    let mut i = 0;
    let b = text.as_bytes();
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                decoded.push(char::from(v));
                i += 3;
            }
            _ => {
                decoded.push(char::from(b[i]));
                i += 1;
            }
        }
    }
    let unescaped = text
        .split("\\u")
        .enumerate()
        .map(|(n, part)| {
            if n == 0 {
                return part.to_owned();
            }
            match part
                .get(..4)
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .and_then(char::from_u32)
            {
                Some(c) => format!("{c}{}", &part[4..]),
                None => format!("\\u{part}"),
            }
        })
        .collect::<String>();
    if [text, decoded.as_str(), unescaped.as_str()]
        .iter()
        .any(|view| view.contains(SECRET))
    {
        return true;
    }
    let hex: String = SECRET.bytes().map(|b| format!("{b:02x}")).collect();
    if text.contains(&hex) || text.contains(&hex.to_uppercase()) {
        return true;
    }
    (0..3usize).any(|align| {
        let mut raw = vec![0u8; align];
        raw.extend_from_slice(SECRET.as_bytes());
        let (first, end) = ((8 * align).div_ceil(6), (8 * raw.len()) / 6);
        [false, true]
            .iter()
            .any(|url| text.contains(&base64(&raw, *url)[first..end]))
    })
}

fuzz_target!(|data: &[u8]| {
    let [selector, field, status, rest @ ..] = data else {
        return;
    };
    let template = String::from_utf8_lossy(rest);
    let mut text = String::new();
    for (n, part) in template.split('#').enumerate() {
        if n > 0 {
            text.push_str(&encode(
                selector.wrapping_add(u8::try_from(n % 256).unwrap_or(0)),
            ));
        }
        text.push_str(part);
    }
    let key = ["message", "Message", "error", "error_description"][usize::from(field % 4)];
    let body = if field & 4 != 0 {
        serde_json::json!({ "error": { "code": "x", "message": text } }).to_string()
    } else {
        serde_json::json!({ key: text }).to_string()
    };
    let status = [400u16, 401, 403, 404][usize::from(status % 4)];
    let credential = ManagedIdentityCredential::builder()
        .runtime(
            identity_core::Runtime::with_env(Env::from_pairs([
                ("IDENTITY_ENDPOINT", "http://127.0.0.1:1/msi/token"),
                ("IDENTITY_HEADER", SECRET),
            ]))
            .http_client(Arc::new(Echo { status, body })),
        )
        .build()
        .unwrap();
    let error = runtime()
        .block_on(credential.get_token(
            &["https://vault.azure.net/.default"],
            &TokenRequestOptions::default(),
        ))
        .unwrap_err();
    for shown in [
        error.to_string(),
        format!("{error:?}"),
        format!("{error:#?}"),
        display_chain(&error),
    ] {
        assert!(!leaks(&shown), "the secret leaked: {shown}");
    }
});
