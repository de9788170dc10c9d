//! Every error's pointer into `TROUBLESHOOTING.md` lands on a section that exists.
#![allow(clippy::unwrap_used, reason = "test code fails loudly")]

use identity_core::{Error, ErrorKind, TROUBLESHOOTING_CREDENTIALS, troubleshooting_section};

/// The anchors of the document's headings, as GitHub renders them: lower case, spaces to
/// `-`, punctuation other than `-` and `_` dropped.
fn anchors() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../TROUBLESHOOTING.md");
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| {
            h.trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

#[test]
fn every_error_points_to_an_existing_section() {
    let anchors = anchors();
    let kinds = [
        ErrorKind::Unavailable,
        ErrorKind::AuthenticationFailed,
        ErrorKind::InvalidConfiguration,
        ErrorKind::InvalidArgument,
        ErrorKind::Transport,
    ];
    for credential in TROUBLESHOOTING_CREDENTIALS {
        for kind in kinds {
            let section = troubleshooting_section(credential, kind).unwrap();
            assert!(
                anchors.contains(&section),
                "TROUBLESHOOTING.md has no section `{section}` ({credential}, {kind})"
            );
            let text = Error::new(kind, credential, "message").to_string();
            assert!(
                text.ends_with(&format!("(see TROUBLESHOOTING.md#{section})")),
                "{text}"
            );
        }
    }
}

#[test]
fn a_credential_outside_the_document_gets_no_pointer() {
    let text = Error::unavailable("MyOwnCredential", "not here").to_string();
    assert_eq!(text, "MyOwnCredential: not here");
}
