//! A short load run (3 s, 1,000 tasks over 100 credentials) so CI exercises the load test.
//! It checks the invariants only, never a throughput or timing figure.

use std::time::Duration;

use identity_load::{Config, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_serves_tokens_to_the_right_identities_without_panics() {
    let config = Config {
        duration: Duration::from_secs(3),
        tasks: 1_000,
        ..Config::default()
    };
    let report = run(config).await.expect("the load test starts");
    assert!(report.passed(), "{report}");
    assert_eq!(report.wrong_identity_tokens, 0, "{report}");
    assert_eq!(report.panics, 0, "{report}");
    assert!(report.tokens_served > 0, "{report}");
    assert!(report.requests_made >= 100, "{report}");
}
