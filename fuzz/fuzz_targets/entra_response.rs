//! Entra ID token and error responses (identity-entra): the first two bytes pick the HTTP
//! status, the rest is the body. The planted secret never reaches an error message.
#![no_main]

use identity_entra::__fuzz_entra as __fuzz;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let status = 100 + u16::from_be_bytes([data[0], data[1]]) % 500;
    if let Err(text) = __fuzz::parse_response(status, &data[2..]) {
        assert!(!text.contains("planted-fuzz-secret"));
    }
});
