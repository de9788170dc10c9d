//! Environment values read at construction: `AZURE_TOKEN_CREDENTIALS` (through
//! `DefaultAzureCredential::build`) and the managed-identity endpoint variables (through
//! `ManagedIdentityCredential::build`). Nothing is sent: only construction runs.
#![no_main]

use identity_chain::{DefaultAzureCredential, Env, ManagedIdentityCredential, Runtime};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let env = Env::from_pairs([("AZURE_TOKEN_CREDENTIALS", text)]);
    let _ = DefaultAzureCredential::builder()
        .runtime(Runtime::with_env(env))
        .build();
    for (endpoint, other) in [
        ("IDENTITY_ENDPOINT", "IDENTITY_HEADER"),
        ("IDENTITY_ENDPOINT", "IMDS_ENDPOINT"),
        ("MSI_ENDPOINT", "MSI_SECRET"),
        (
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        ),
    ] {
        let env = Env::from_pairs([(endpoint, text), (other, "x")]);
        let _ = ManagedIdentityCredential::builder()
            .runtime(Runtime::with_env(env.clone()))
            .build();
        let _ = ManagedIdentityCredential::builder()
            .runtime(Runtime::with_env(env))
            .client_id(text)
            .build();
    }
});
