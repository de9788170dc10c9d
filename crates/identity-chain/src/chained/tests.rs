//! The chain's order, deadline and failure report.

use super::*;
use identity_core::ErrorKind;
use identity_core::test_util::{credential_fn, failing_credential, static_credential};
use std::time::{Duration, SystemTime};

fn far() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000)
}

fn opts() -> TokenRequestOptions {
    TokenRequestOptions::default()
}

#[tokio::test]
async fn a_sticky_chain_offers_its_chosen_members_cache_entry_and_a_plain_chain_none() {
    let clock: Arc<dyn identity_core::Clock> =
        Arc::new(identity_core::test_util::FakeClock::at_2030());
    let member = |name| Member {
        credential: Arc::new(static_credential(name, "tok", far()).cached(clock.clone())),
        downgrade_failures: false,
    };
    let failing = Member {
        credential: Arc::new(failing_credential("A", Error::unavailable("A", "no"))),
        downgrade_failures: false,
    };
    let sticky = Chain::new("Sticky", vec![failing, member("B")], true);
    assert!(
        sticky.cache_slot(&["s"], &opts()).is_none(),
        "no member chosen yet"
    );
    assert!(
        format!("{sticky:?}").contains("selected: None"),
        "{sticky:?}"
    );
    sticky.get_token(&["s"], &opts()).await.unwrap();
    assert!(
        format!("{sticky:?}").contains("selected: Some(\"B\")"),
        "{sticky:?}"
    );
    let slot = sticky
        .cache_slot(&["s"], &opts())
        .expect("the chosen member's entry");
    assert_eq!(slot.key().identity(), "B");
    assert_eq!(slot.fresh_token().unwrap().token.secret(), "tok");

    let plain = ChainedTokenCredential::new(vec![Arc::new(
        static_credential("C", "tok", far()).cached(clock.clone()),
    )]);
    plain.get_token(&["s"], &opts()).await.unwrap();
    assert!(plain.cache_slot(&["s"], &opts()).is_none());
}

#[tokio::test]
async fn unavailable_moves_on_and_the_first_success_wins() {
    let a = failing_credential("A", Error::unavailable("A", "not configured"));
    let b = static_credential("B", "tok-b", far());
    let c = static_credential("C", "tok-c", far());
    let c_calls = c.call_counter();
    let chain = ChainedTokenCredential::new(vec![Arc::new(a), Arc::new(b), Arc::new(c)]);
    let t = chain.get_token(&["s"], &opts()).await.unwrap();
    assert_eq!(t.token.secret(), "tok-b");
    assert_eq!(chain.last_used(), Some("B"));
    assert_eq!(c_calls.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_authentication_failure_stops_the_chain() {
    let a = failing_credential(
        "A",
        Error::authentication_failed("A", "AADSTS7000215: bad secret"),
    );
    let b = static_credential("B", "tok-b", far());
    let b_calls = b.call_counter();
    let chain = ChainedTokenCredential::new(vec![Arc::new(a), Arc::new(b)]);
    let err = chain.get_token(&["s"], &opts()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
    assert_eq!(b_calls.load(std::sync::atomic::Ordering::SeqCst), 0);
    let attempts = &err
        .cause()
        .unwrap()
        .downcast_ref::<ChainError>()
        .unwrap()
        .attempts;
    assert_eq!(attempts.len(), 1);
}

#[tokio::test]
async fn a_full_miss_lists_every_attempt_one_per_line() {
    let chain = ChainedTokenCredential::new(vec![
        Arc::new(failing_credential(
            "EnvironmentCredential",
            Error::unavailable(
                "EnvironmentCredential",
                "environment variables are not fully configured",
            ),
        )),
        Arc::new(failing_credential(
            "AzureCliCredential",
            Error::unavailable("AzureCliCredential", "Azure CLI not found on PATH"),
        )),
    ]);
    let err = chain.get_token(&["s"], &opts()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(
        err.to_string()
            .starts_with("ChainedTokenCredential: failed to retrieve a token"),
        "{err}"
    );
    assert_eq!(
        identity_core::display_chain(&err),
        err.to_string(),
        "the cause is not repeated"
    );
    assert_eq!(
        err.message(),
        "failed to retrieve a token from the included credentials.\n\
         Attempted credentials:\n\
         \tEnvironmentCredential: environment variables are not fully configured\n\
         \tAzureCliCredential: Azure CLI not found on PATH\n\
         To fix this, configure one of the credentials above for this environment: each line says what it needs."
    );
    assert!(
        err.to_string()
            .ends_with("(see TROUBLESHOOTING.md#chainedtokencredential-unavailable)"),
        "{err}"
    );
}

#[tokio::test]
async fn after_a_refusal_the_advice_names_the_member_and_why() {
    let chain = ChainedTokenCredential::new(vec![
        Arc::new(failing_credential(
            "EnvironmentCredential",
            Error::unavailable("EnvironmentCredential", "not configured"),
        )),
        Arc::new(failing_credential(
            "ClientSecretCredential",
            Error::authentication_failed("ClientSecretCredential", "AADSTS7000215: bad secret"),
        )),
    ]);
    let err = chain.get_token(&["s"], &opts()).await.unwrap_err();
    let text = err.to_string();
    assert!(!text.contains("configure one of"), "{text}");
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with(
            "ClientSecretCredential refused (authentication failed), which stops the chain"
        ),
        "{text}"
    );
    assert!(
        last.ends_with("(see TROUBLESHOOTING.md#chainedtokencredential-authentication-failed)"),
        "{text}"
    );
    assert!(text.contains("\tClientSecretCredential: AADSTS7000215: bad secret"));
}

#[tokio::test]
async fn a_refusal_the_chain_moved_on_from_is_named() {
    let chain = Chain::new(
        "DefaultAzureCredential",
        vec![
            Member {
                credential: Arc::new(failing_credential(
                    "AzureCliCredential",
                    Error::authentication_failed("AzureCliCredential", "AADSTS70043: expired"),
                )),
                downgrade_failures: true,
            },
            Member {
                credential: Arc::new(failing_credential(
                    "AzureDeveloperCliCredential",
                    Error::unavailable("AzureDeveloperCliCredential", "azd not found"),
                )),
                downgrade_failures: true,
            },
        ],
        true,
    );
    let err = chain.get_token(&["s"], &opts()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let text = err.to_string();
    assert!(!text.contains("configure one of"), "{text}");
    assert!(
        text.contains("AzureCliCredential is configured but refused (see its line)"),
        "{text}"
    );
}

#[tokio::test]
async fn a_plain_chain_is_not_sticky() {
    let flip = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = flip.clone();
    let a = credential_fn("A", move |_, _| {
        if f.load(std::sync::atomic::Ordering::SeqCst) {
            Ok(AccessToken::new("tok-a", far()))
        } else {
            Err(Error::unavailable("A", "not yet"))
        }
    });
    let b = static_credential("B", "tok-b", far());
    let chain = ChainedTokenCredential::new(vec![Arc::new(a), Arc::new(b)]);
    let secret = |token: AccessToken| token.token.secret().to_owned();
    assert_eq!(
        secret(chain.get_token(&["s"], &opts()).await.unwrap()),
        "tok-b"
    );
    flip.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        secret(chain.get_token(&["s"], &opts()).await.unwrap()),
        "tok-a"
    );
    assert_eq!(chain.last_used(), Some("A"));
}

/// A member that never answers.
#[derive(Debug)]
struct Silent;

impl TokenCredential for Silent {
    fn get_token<'a>(
        &'a self,
        _scopes: &'a [&'a str],
        _options: &'a TokenRequestOptions,
    ) -> BoxFuture<'a, Result<AccessToken, Error>> {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Err(Error::unavailable("Silent", "woke up"))
        })
    }

    fn name(&self) -> &'static str {
        "Silent"
    }
}

const GUARD: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_silent_member_gets_half_of_what_is_left_and_the_chain_moves_on() {
    let chain = ChainedTokenCredential::new(vec![
        Arc::new(Silent),
        Arc::new(Silent),
        Arc::new(static_credential("C", "tok-c", far())),
    ])
    .with_deadline(Duration::from_millis(400));
    let token = tokio::time::timeout(GUARD, chain.get_token(&["s"], &opts()))
        .await
        .expect("bounded by the chain's deadline")
        .unwrap();
    assert_eq!(token.token.secret(), "tok-c");
    assert_eq!(chain.last_used(), Some("C"));
}

#[tokio::test]
async fn a_silent_last_member_ends_the_chain_at_its_deadline_with_every_attempt_listed() {
    let chain = ChainedTokenCredential::new(vec![
        Arc::new(failing_credential(
            "A",
            Error::unavailable("A", "not configured"),
        )),
        Arc::new(Silent),
    ])
    .with_deadline(Duration::from_millis(200));
    let err = tokio::time::timeout(GUARD, chain.get_token(&["s"], &opts()))
        .await
        .expect("bounded by the chain's deadline")
        .unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    let text = err.to_string();
    assert!(text.contains("\tA: not configured"), "{text}");
    assert!(
        text.contains("\tSilent: no token within")
            && text.contains("ms deadline of ChainedTokenCredential"),
        "{text}"
    );
}

#[tokio::test]
async fn a_chain_inside_a_shorter_scope_keeps_to_it() {
    let chain = ChainedTokenCredential::new(vec![Arc::new(Silent)]);
    assert_eq!(chain.chain.deadline(), DEFAULT_CHAIN_DEADLINE);
    let options = opts();
    let outer = identity_core::deadline::within(
        "Outer",
        Duration::from_millis(100),
        chain.get_token(&["s"], &options),
    );
    let err = tokio::time::timeout(GUARD, outer)
        .await
        .expect("bounded by the outer deadline")
        .unwrap_err();
    assert!(err.to_string().contains("no token within"), "{err}");
}

#[tokio::test]
async fn an_empty_chain_is_unavailable() {
    let chain = ChainedTokenCredential::new(vec![]);
    let err = chain.get_token(&["s"], &opts()).await.unwrap_err();
    assert!(err.is_unavailable());
    // It says so, instead of an empty list and advice about "the credentials above".
    let text = err.to_string();
    assert!(
        text.contains("the chain has no credentials to try"),
        "{text}"
    );
    assert!(
        !text.contains("Attempted credentials") && !text.contains("above"),
        "{text}"
    );
}
