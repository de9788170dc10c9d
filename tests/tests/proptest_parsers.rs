//! Property tests of every parser: arbitrary input never panics, round trips hold where they
//! mean something, and validators accept exactly their documented character sets.
//!
//! Parsers that are internal to a crate are reached through its hidden `__fuzz_*` module
//! (feature `fuzzing`), the same entry points the fuzz targets in `fuzz/` use. Each property
//! runs 256 cases, so the whole file stays well under a few seconds on two cores.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions fail loudly on purpose"
)]

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use identity_chain::{
    BoxFuture, CredentialKind, DefaultAzureCredential, Env, ErrorKind, ManagedIdentityCredential,
    Runtime, TokenCredential, TokenRequestOptions,
};
use identity_core::http::{Body, BoxError, HttpClient, Request, SendOptions};
use identity_core::scope::{
    is_valid_tenant_id, scopes_to_resource, validate_scopes, validate_tenant_id,
};
use identity_core::time::{parse_http_date, unix_from_utc};
use identity_dev::__fuzz_dev as dev;
use identity_entra::__fuzz_entra as entra;
use identity_msi::__fuzz_msi as msi;
use proptest::prelude::*;
use serde_json::{Value, json};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Arbitrary JSON values, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("access_token".to_owned()),
                    Just("expires_on".to_owned()),
                    Just("expires_in".to_owned()),
                    Just("refresh_in".to_owned()),
                    Just("token_type".to_owned()),
                    Just("error".to_owned()),
                    Just("error_description".to_owned()),
                    Just("accessToken".to_owned()),
                    Just("expiresOn".to_owned()),
                    Just("token".to_owned()),
                    ".{0,6}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Strings over the characters a scope may hold, plus a few that it may not.
fn scopeish() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.:/ ;&|$\\-]{0,24}"
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

proptest! {
    #![proptest_config(config())]

    // ---- identity-core: scopes, tenants, dates, environment ----------------------------

    #[test]
    fn scope_validation_never_panics_and_accepts_exactly_the_documented_characters(
        scopes in prop::collection::vec(scopeish(), 0..4)
    ) {
        let refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
        let expected = !refs.is_empty()
            && refs.iter().all(|s| {
                !s.is_empty()
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.:/".contains(&b))
            });
        prop_assert_eq!(validate_scopes("Prop", &refs).is_ok(), expected);
        let _ = scopes_to_resource("Prop", &refs);
    }

    #[test]
    fn a_default_scope_turns_back_into_its_resource(resource in "https://[a-z0-9.-]{1,20}(/[a-z0-9]{0,8})?") {
        let scope = format!("{resource}/.default");
        prop_assert_eq!(scopes_to_resource("Prop", &[scope.as_str()]).unwrap(), resource.as_str());
        // A scope without the suffix is its own resource.
        prop_assert_eq!(scopes_to_resource("Prop", &[resource.as_str()]).unwrap(), resource.as_str());
    }

    #[test]
    fn tenant_validation_accepts_exactly_dot_separated_labels_of_letters_digits_and_dashes(
        tenant in "(.{0,40}|[a-z0-9.-]{0,12})",
    ) {
        let expected = tenant
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        prop_assert_eq!(is_valid_tenant_id(&tenant), expected);
        prop_assert_eq!(validate_tenant_id("Prop", &tenant).is_ok(), expected);
        if let Err(e) = validate_tenant_id("Prop", &tenant) {
            // The rejected value is never echoed (it could be anything).
            if tenant.len() > 3 {
                prop_assert!(!e.to_string().contains(tenant.as_str()));
            }
        }
    }

    #[test]
    fn env_flags_are_true_exactly_for_one_and_true(value in "[ \t]{0,2}(1|0|true|TRUE|True|yes|false|tru|11|)[ \t]{0,2}") {
        let env = Env::from_pairs([("FLAG", value.as_str())]);
        let trimmed = value.trim();
        prop_assert_eq!(env.flag("FLAG"), trimmed == "1" || trimmed.eq_ignore_ascii_case("true"));
    }

    #[test]
    fn http_dates_round_trip_and_garbage_never_panics(
        y in 1970_i64..2200, mo in 1_u32..=12, d in 1_u32..=28,
        h in 0_u32..24, mi in 0_u32..60, s in 0_u32..60,
        garbage in ".{0,40}",
    ) {
        let text = format!(
            "Mon, {d:02} {} {y} {h:02}:{mi:02}:{s:02} GMT",
            MONTHS[(mo - 1) as usize]
        );
        let expected = unix_from_utc(y, mo, d, h, mi, s).unwrap();
        let parsed = parse_http_date(&text).unwrap();
        prop_assert_eq!(parsed.duration_since(UNIX_EPOCH).unwrap().as_secs(), u64::try_from(expected).unwrap());
        let _ = parse_http_date(&garbage);
    }

    // ---- identity-msi: every managed-identity response format --------------------------

    #[test]
    fn managed_identity_token_parsing_never_panics_on_bytes(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let ok = msi::parse_token(&body);
        prop_assert_eq!(ok, msi::token_expiry(&body).is_some());
    }

    #[test]
    fn managed_identity_token_parsing_never_panics_on_json(value in any_json()) {
        let body = serde_json::to_vec(&value).unwrap();
        let _ = msi::parse_token(&body);
    }

    #[test]
    fn an_epoch_expires_on_parses_the_same_as_integer_and_string(secs in 0_i64..10_000_000_000) {
        let as_int = json!({"access_token": "t", "expires_on": secs}).to_string();
        let as_str = json!({"access_token": "t", "expires_on": secs.to_string()}).to_string();
        let a = msi::token_expiry(as_int.as_bytes());
        prop_assert_eq!(a, Some(secs));
        prop_assert_eq!(a, msi::token_expiry(as_str.as_bytes()));
    }

    #[test]
    fn a_fractional_epoch_reads_the_same_as_number_and_string_and_a_bom_changes_nothing(
        secs in 0_i64..10_000_000_000, tenths in 0_u8..10, blank in "[ \t]{0,3}",
    ) {
        let as_num = json!({"access_token": "t", "expires_on": format!("{secs}.{tenths}").parse::<f64>().unwrap()}).to_string();
        let as_str = json!({"access_token": "t", "expires_on": format!("{secs}.{tenths}")}).to_string();
        prop_assert_eq!(msi::token_expiry(as_num.as_bytes()), Some(secs));
        prop_assert_eq!(msi::token_expiry(as_str.as_bytes()), Some(secs));
        let mut with_bom = b"\xEF\xBB\xBF".to_vec();
        with_bom.extend_from_slice(as_str.as_bytes());
        prop_assert_eq!(msi::token_expiry(&with_bom), Some(secs));
        // A blank `expires_on` is absent: `expires_in` counts from the request time.
        let fallback = json!({"access_token": "t", "expires_on": blank, "expires_in": secs}).to_string();
        prop_assert_eq!(msi::token_expiry(fallback.as_bytes()), Some(1_900_000_000 + secs));
        prop_assert_eq!(
            dev::epoch_from_json(&json!(format!("{secs}.{tenths}"))),
            u64::try_from(secs).ok()
        );
    }

    #[test]
    fn expires_in_is_relative_to_the_request_time(secs in 0_i64..100_000_000) {
        let body = json!({"access_token": "t", "expires_in": secs}).to_string();
        // The __fuzz entry point sends "now" as 1,900,000,000.
        prop_assert_eq!(msi::token_expiry(body.as_bytes()), Some(1_900_000_000 + secs));
    }

    #[test]
    fn machine_learning_dates_round_trip_in_both_layouts(
        y in 1970_i64..2200, mo in 1_u32..=12, d in 1_u32..=28,
        h in 0_u32..24, mi in 0_u32..60, s in 0_u32..60,
        garbage in ".{0,40}",
    ) {
        let expected = unix_from_utc(y, mo, d, h, mi, s).unwrap();
        let padded = format!("{mo:02}/{d:02}/{y} {h:02}:{mi:02}:{s:02} +00:00");
        prop_assert_eq!(msi::parse_ml_date(&padded), Some(expected));
        let (h12, meridiem) = match h {
            0 => (12, "AM"),
            1..=11 => (h, "AM"),
            12 => (12, "PM"),
            _ => (h - 12, "PM"),
        };
        let twelve = format!("{mo}/{d}/{y} {h12}:{mi:02}:{s:02} {meridiem} +00:00");
        prop_assert_eq!(msi::parse_ml_date(&twelve), Some(expected));
        let _ = msi::parse_ml_date(&garbage);
    }

    #[test]
    fn thumbprints_are_accepted_exactly_as_forty_hex_digits_with_optional_separators(
        bytes in prop::collection::vec(any::<u8>(), 20),
        colons in any::<bool>(),
        garbage in ".{0,60}",
    ) {
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
        let text = hex.join(if colons { ":" } else { "" });
        prop_assert!(msi::normalise_thumbprint(&text));
        prop_assert!(msi::normalise_thumbprint(&text.to_lowercase()));
        prop_assert!(!msi::normalise_thumbprint(&text[..text.len() - 1]));
        let _ = msi::normalise_thumbprint(&garbage);
    }

    // ---- identity-dev: the developer tools' outputs and expiry formats -----------------

    #[test]
    fn developer_tool_parsers_never_panic(text in ".{0,80}", value in any_json()) {
        let _ = dev::parse_azd(&text);
        let _ = dev::parse_powershell(&text);
        let _ = dev::parse_rfc3339(&text);
        let _ = dev::fixed_offset_from_tz(&text);
        if let Some(naive) = dev::parse_cli_naive(&text) {
            let _ = dev::local_expiry(naive, Some(&text));
        }
        let json_text = value.to_string();
        let _ = dev::parse_azd(&json_text);
        let _ = dev::epoch_from_json(&value);
    }

    #[test]
    fn cli_expires_on_parses_the_same_as_integer_and_string(secs in 0_i64..10_000_000_000) {
        let a = dev::epoch_from_json(&json!(secs));
        prop_assert_eq!(a, Some(u64::try_from(secs).unwrap()));
        prop_assert_eq!(a, dev::epoch_from_json(&json!(secs.to_string())));
        prop_assert_eq!(a, dev::epoch_from_json(&json!(format!(" {secs} "))));
    }

    #[test]
    fn rfc3339_and_the_cli_naive_layout_round_trip(
        y in 1970_i64..2200, mo in 1_u32..=12, d in 1_u32..=28,
        h in 0_u32..24, mi in 0_u32..60, s in 0_u32..60,
        offset_min in -(14 * 60_i64)..=(14 * 60),
    ) {
        let expected = unix_from_utc(y, mo, d, h, mi, s).unwrap();
        let z = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z");
        prop_assert_eq!(dev::parse_rfc3339(&z), Some(expected));
        let sign = if offset_min < 0 { '-' } else { '+' };
        let abs = offset_min.abs();
        let with_offset = format!(
            "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.5{sign}{:02}:{:02}",
            abs / 60,
            abs % 60
        );
        // The wall time at +HH:MM is that many minutes ahead of UTC.
        prop_assert_eq!(dev::parse_rfc3339(&with_offset), Some(expected - offset_min * 60));
        let naive = format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.000000");
        prop_assert_eq!(dev::parse_cli_naive(&naive), Some(expected));
    }

    #[test]
    fn powershell_output_round_trips(
        token in "[A-Za-z0-9._-]{1,40}",
        secs in 1_u64..10_000_000_000,
        noise in "[A-Za-z ]{0,20}",
    ) {
        // The script prints one `azsdk%<token>%<epoch seconds>` word among whatever else the
        // profile prints.
        let output = format!("{noise}\nazsdk%{token}%{secs}\n");
        prop_assert!(dev::parse_powershell(&output));
        let missing_expiry = format!("azsdk%{token}%");
        prop_assert!(!dev::parse_powershell(&missing_expiry));
    }

    // ---- identity-entra: token and error responses -------------------------------------

    #[test]
    fn entra_responses_never_panic_and_never_echo_the_planted_secret(
        status in 100_u16..600,
        value in any_json(),
        bytes in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        for body in [serde_json::to_vec(&value).unwrap(), bytes] {
            if let Err(text) = entra::parse_response(status, &body) {
                prop_assert!(!text.contains("planted-fuzz-secret"));
            }
        }
        let leaky = json!({"error": "invalid_client", "error_description": "bad planted-fuzz-secret here"});
        let text = entra::parse_response(status.max(400), leaky.to_string().as_bytes()).unwrap_err();
        prop_assert!(!text.contains("planted-fuzz-secret"), "{}", text);
    }

    #[test]
    fn an_entra_success_yields_a_token(secs in 1_u64..100_000_000, as_string in any::<bool>()) {
        let expires_in = if as_string { json!(secs.to_string()) } else { json!(secs) };
        let body = json!({"token_type": "Bearer", "access_token": "t", "expires_in": expires_in});
        prop_assert_eq!(entra::parse_response(200, body.to_string().as_bytes()), Ok(()));
    }

    // ---- identity-entra: the authentication record --------------------------------------

    #[test]
    fn a_record_is_read_only_with_a_host_authority_and_round_trips(
        authority in "(https?://)?[a-zA-Z0-9.:@/_ \\[\\]-]{0,24}/?",
        field in 0_usize..5,
        value in ".{0,12}",
        text in ".{0,64}",
    ) {
        let mut members = serde_json::Map::new();
        for (key, v) in ["authority", "clientId", "homeAccountId", "tenantId", "username"]
            .iter()
            .zip([authority.as_str(), "c", "u.t", "t", "a@b"])
        {
            members.insert((*key).to_owned(), json!(v));
        }
        members.insert("version".to_owned(), json!("1.0"));
        let key = ["clientId", "homeAccountId", "tenantId", "username", "authority"][field];
        if field < 4 {
            members.insert(key.to_owned(), json!(format!("{value}planted-record")));
        }
        let json = Value::Object(members).to_string();
        match identity_chain::AuthenticationRecord::deserialize(&json) {
            Ok(record) => {
                let host = record.authority();
                prop_assert!(!host.contains("://") && !host.contains(['/', '@', ' ']), "{}", host);
                prop_assert_eq!(host.to_ascii_lowercase(), host);
                let again = identity_chain::AuthenticationRecord::deserialize(&record.serialize());
                prop_assert_eq!(again.ok(), Some(record));
            }
            Err(e) => {
                prop_assert_eq!(e.kind(), ErrorKind::InvalidArgument);
                prop_assert!(!e.message().contains("planted-record"), "{}", e);
                prop_assert!(e.message().contains("the field `"), "{}", e);
            }
        }
        // Any text: an answer, never a panic.
        let _ = identity_chain::AuthenticationRecord::deserialize(&text);
    }

    // ---- identity-chain: AZURE_TOKEN_CREDENTIALS ----------------------------------------

    #[test]
    fn token_credentials_is_accepted_iff_it_names_a_valid_value(
        pick in 0_usize..64,
        flips in prop::collection::vec(any::<bool>(), 40),
        pad_left in "[ \t]{0,2}",
        pad_right in "[ \t]{0,2}",
        other in "[A-Za-z]{0,30}",
    ) {
        let mut valid: Vec<String> = vec!["dev".into(), "prod".into()];
        valid.extend(CredentialKind::ALL.iter().map(|k| k.type_name().to_owned()));
        let base = &valid[pick % valid.len()];
        let cased: String = base
            .chars()
            .zip(flips.iter().cycle())
            .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
            .collect();
        let value = format!("{pad_left}{cased}{pad_right}");
        let built = DefaultAzureCredential::builder()
            .runtime(Runtime::with_env(Env::from_pairs([("AZURE_TOKEN_CREDENTIALS", value.as_str())])))
            .build();
        prop_assert!(built.is_ok(), "{:?} refused: {:?}", value, built.err());

        let is_valid = valid.iter().any(|v| v.eq_ignore_ascii_case(other.trim()))
            || other.trim().is_empty();
        let built = DefaultAzureCredential::builder()
            .runtime(Runtime::with_env(Env::from_pairs([("AZURE_TOKEN_CREDENTIALS", other.as_str())])))
            .build();
        prop_assert_eq!(built.is_ok(), is_valid, "{:?}", other);
        if let Err(e) = built {
            prop_assert_eq!(e.kind(), ErrorKind::InvalidConfiguration);
        }
    }
}

// ---- identity-msi: the Azure Arc challenge header ----------------------------------------

const ARC_KEY: &str = "planted-arc-prop-key";

/// Answers the first request with a 401 carrying `header` as `WWW-Authenticate`, and a
/// request with an Authorization header with a token. Nothing leaves the process.
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
            if request.headers().contains_key(http::header::AUTHORIZATION) {
                return Ok(http::Response::builder()
                    .status(200)
                    .body(Body::from_bytes(
                        "{\"access_token\":\"t\",\"expires_in\":3600}",
                    ))?);
            }
            let mut builder = http::Response::builder().status(401);
            if let Ok(value) = http::HeaderValue::from_bytes(&header) {
                builder = builder.header(http::header::WWW_AUTHENTICATE, value);
            }
            Ok(builder.body(Body::from_bytes(""))?)
        })
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..config() })]

    #[test]
    fn arc_challenges_never_panic_and_never_reveal_the_key_file(
        header in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..80),
            "(Basic|basic|Bearer)? ?(realm)?=?(\\$DIR)?(/|/\\.\\./)?(good|evil|good\\.key|\\.\\.)?(\\.key)?"
                .prop_map(String::into_bytes),
        ]
    ) {
        let directory = tempfile::tempdir().unwrap();
        std::fs::write(directory.path().join("good.key"), ARC_KEY).unwrap();
        let header = String::from_utf8_lossy(&header)
            .replace("$DIR", &directory.path().display().to_string())
            .into_bytes();
        let credential = ManagedIdentityCredential::builder()
            .runtime(identity_core::Runtime::with_env(Env::from_pairs([
                ("IDENTITY_ENDPOINT", "http://127.0.0.1:1/metadata/identity/oauth2/token"),
                ("IMDS_ENDPOINT", "http://127.0.0.1:1"),
            ])).http_client(Arc::new(Challenger(header))))
            .arc_key_directory(directory.path())
            .build()
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let result = runtime.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(20),
                credential.get_token(
                    &["https://management.azure.com/.default"],
                    &TokenRequestOptions::default(),
                ),
            )
            .await
            .expect("bounded")
        });
        if let Err(error) = result {
            let text = format!("{error} {error:?} {}", identity_chain::display_chain(&error));
            prop_assert!(!text.contains(ARC_KEY), "{}", text);
        }
        let debug = format!("{credential:?}");
        prop_assert!(!debug.contains(ARC_KEY));
    }
}
