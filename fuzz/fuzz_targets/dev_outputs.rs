//! The developer tools' outputs and expiry formats (identity-dev): `azd` JSON, the Azure
//! PowerShell script output, the Azure CLI's `expires_on` / naive `expiresOn`, RFC 3339 and
//! `TZ` offsets.
#![no_main]

use identity_dev::__fuzz_dev as __fuzz;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = __fuzz::parse_azd(text);
    let _ = __fuzz::parse_powershell(text);
    let _ = __fuzz::parse_rfc3339(text);
    let _ = __fuzz::fixed_offset_from_tz(text);
    if let Some(naive) = __fuzz::parse_cli_naive(text) {
        let _ = __fuzz::local_expiry(naive, Some(text));
        let _ = __fuzz::local_expiry(naive, None);
    }
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        let _ = __fuzz::epoch_from_json(&value);
    }
});
