//! Every managed-identity response format (identity-msi): the JSON token body shared by
//! IMDS, App Service, Arc, Cloud Shell, Service Fabric and Azure Machine Learning, the
//! Machine Learning date strings, and the Service Fabric thumbprint.
#![no_main]

use identity_msi::__fuzz_msi as __fuzz;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ok = __fuzz::parse_token(data);
    assert_eq!(ok, __fuzz::token_expiry(data).is_some());
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = __fuzz::parse_ml_date(text);
        let _ = __fuzz::normalise_thumbprint(text);
    }
});
