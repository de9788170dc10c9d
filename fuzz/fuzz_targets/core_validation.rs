//! Scope and tenant validation, scope-to-resource, HTTP dates and environment flags
//! (identity-core): arbitrary text never panics, and the validators agree with each other.
#![no_main]

use identity_core::Env;
use identity_core::scope::{
    is_valid_tenant_id, resolve_tenant, scopes_to_resource, validate_scopes, validate_tenant_id,
};
use identity_core::time::parse_http_date;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let parts: Vec<&str> = text.split('\n').collect();
    let _ = validate_scopes("Fuzz", &parts);
    if let Ok(resource) = scopes_to_resource("Fuzz", &parts) {
        // The scope rule: exactly one trailing `/.default` is removed, nothing else changes
        // (`x/.default/.default` is the resource `x/.default`).
        let scope = parts[0];
        match scope.strip_suffix("/.default") {
            Some(stripped) => assert_eq!(resource, stripped),
            None => assert_eq!(resource, scope),
        }
        assert!(!resource.trim().is_empty());
    }
    assert_eq!(
        is_valid_tenant_id(text),
        validate_tenant_id("Fuzz", text).is_ok()
    );
    let env = Env::from_pairs([("FLAG", text)]);
    let _ = env.flag("FLAG");
    let _ = env.non_blank("FLAG");
    let allowed = vec!["*".to_owned()];
    let _ = resolve_tenant("Fuzz", Some("configured"), Some(text), &allowed, &env);
    let _ = parse_http_date(text);
});
