//! `cargo xtask walkthrough`: CONTRIBUTING.md's "Add a hosting source" walk-through, applied to
//! a copy of the workspace exactly as written there, then linted and tested, so that the
//! walk-through cannot drift from the code.
//!
//! The walk-through's `rust` blocks are taken in order: the new file (`contoso.rs`), its
//! `pub mod` line, the enum variant, the environment variables, and the `SOURCES` excerpt
//! (of which the line naming `S::Contoso` is the one to add). Each is put where the
//! walk-through says; a test of this module's own (not part of the walk-through) then checks
//! that the new source is detected and that its request carries what the file says. The copy
//! is in `target/walkthrough/` and builds into the same target directory, so the
//! dependencies already built are reused.

use std::fs;
use std::path::{Path, PathBuf};

use crate::sh::{self, Result};

/// The section of CONTRIBUTING.md this checks.
const SECTION: &str = "## Add a hosting source";

/// The walk-through's edits, as read from CONTRIBUTING.md.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Walkthrough {
    /// `crates/identity-msi/src/contoso.rs`, whole.
    file: String,
    /// The module declaration for `lib.rs`.
    module: String,
    /// The variant, with its doc comment, for `ManagedIdentitySource`.
    variant: String,
    /// The environment variables, for the list at the top of `detect.rs`.
    constants: String,
    /// The one line of `SOURCES`.
    rule: String,
}

/// The compiled `rust` blocks of the section, in order.
fn rust_blocks(contributing: &str) -> Result<Vec<String>> {
    let start = contributing
        .find(SECTION)
        .ok_or_else(|| format!("CONTRIBUTING.md has no `{SECTION}` section"))?;
    let section = &contributing[start + SECTION.len()..];
    let section = section.find("\n## ").map_or(section, |end| &section[..end]);
    Ok(crate::tidy::rust_blocks(section))
}

/// Reads the walk-through's edits from CONTRIBUTING.md's text.
pub(crate) fn parse(contributing: &str) -> Result<Walkthrough> {
    let blocks = rust_blocks(contributing)?;
    let find = |what: &str, test: &dyn Fn(&str) -> bool| {
        blocks
            .iter()
            .find(|b| test(b))
            .cloned()
            .ok_or_else(|| format!("the walk-through in CONTRIBUTING.md shows no {what}"))
    };
    let sources = find("`SOURCES` excerpt", &|b| b.contains("const SOURCES"))?;
    let rule = sources
        .lines()
        .find(|l| l.contains("S::Contoso"))
        .ok_or("the walk-through's `SOURCES` excerpt has no line for `S::Contoso`")?;
    Ok(Walkthrough {
        file: find("`contoso.rs`", &|b| b.contains("impl Source for Contoso"))?,
        module: find("`pub mod` line", &|b| b.trim() == "pub mod contoso;")?,
        variant: find("enum variant", &|b| {
            b.trim_end().ends_with("Contoso,") && b.trim_start().starts_with("///")
        })?,
        constants: find("environment variables", &|b| {
            b.contains("const CONTOSO_ENDPOINT") && b.contains("const CONTOSO_SECRET")
        })?,
        rule: format!("{rule}\n"),
    })
}

/// Inserts `text` before the line of `source` that starts (after indentation) with `anchor`.
fn insert_before(source: &str, anchor: &str, text: &str, file: &str) -> Result<String> {
    let at = source
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .find(|&i| source[i..].trim_start().starts_with(anchor))
        .ok_or_else(|| {
            format!(
                "{file} has no line starting with `{anchor}`, where the walk-through's edit goes: \
                 update the walk-through in CONTRIBUTING.md and this check together"
            )
        })?;
    Ok(format!("{}{text}{}", &source[..at], &source[at..]))
}

/// Applies the walk-through to the workspace at `root`: the new file, then one insertion in
/// `lib.rs` and three in `detect.rs`.
fn apply(root: &Path, walk: &Walkthrough) -> Result<()> {
    let src = root.join("crates/identity-msi/src");
    let edit = |name: &str, edits: &[(&str, &str)]| -> Result<()> {
        let path = src.join(name);
        let mut text =
            fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        for (anchor, insert) in edits {
            text = insert_before(&text, anchor, insert, name)?;
        }
        fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()).into())
    };
    let file = format!("{}\n{TEST}", walk.file);
    fs::write(src.join("contoso.rs"), file).map_err(|e| format!("writing contoso.rs: {e}"))?;
    edit("lib.rs", &[("pub mod imds;", &walk.module)])?;
    edit(
        "detect.rs",
        &[
            (
                "/// The hosting environment the credential detected",
                &format!("{}\n", walk.constants),
            ),
            ("/// The instance metadata service", &walk.variant),
            ("named(S::Imds", &walk.rule),
        ],
    )
}

/// Appended to the walk-through's file: Contoso Host is detected from its two variables, and
/// its request carries the api-version, the resource and the secret header.
const TEST: &str = r#"#[cfg(test)]
mod walkthrough_check {
    use identity_core::{Env, Runtime, TokenCredential, TokenRequestOptions};
    use wiremock::matchers::{header, method, path, query_param};
    use wiremock::{Mock, MockServer};

    #[tokio::test]
    async fn contoso_host_is_detected_and_asked() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/token"))
            .and(query_param("api-version", "2025-01-01"))
            .and(query_param("resource", "https://vault.azure.net"))
            .and(header("X-Contoso-Secret", "planted-contoso-secret"))
            .respond_with(crate::test_support::token_on(4_102_444_800))
            .expect(1)
            .mount(&server)
            .await;
        let env = Env::from_pairs([
            ("CONTOSO_ENDPOINT", format!("{}/token", server.uri())),
            ("CONTOSO_SECRET", "planted-contoso-secret".to_owned()),
        ]);
        let credential = crate::ManagedIdentityCredential::builder()
            .runtime(Runtime::with_env(env))
            .build()
            .unwrap();
        assert_eq!(credential.source(), crate::ManagedIdentitySource::Contoso);
        assert_eq!(credential.source().id(), "contoso");
        assert_eq!(credential.source().display_name(), "Contoso Host");
        let token = credential
            .get_token(&["https://vault.azure.net/.default"], &TokenRequestOptions::default())
            .await
            .unwrap();
        assert_eq!(token.token.secret(), "AT");
    }
}
"#;

/// The files of the workspace as a clean checkout has them: tracked, plus new files git does
/// not ignore.
fn workspace_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut git = std::process::Command::new("git");
    git.args([
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ])
    .current_dir(root);
    let listing = sh::read(&mut git)
        .map_err(|e| format!("the walk-through check copies the files git lists: {e}"))?;
    Ok(listing
        .split('\0')
        .filter(|name| !name.is_empty())
        .map(PathBuf::from)
        .collect())
}

/// Copies the workspace to `copy` (emptied first).
fn copy_workspace(root: &Path, copy: &Path) -> Result<()> {
    if copy.exists() {
        fs::remove_dir_all(copy).map_err(|e| format!("emptying {}: {e}", copy.display()))?;
    }
    for name in workspace_files(root)? {
        let from = root.join(&name);
        // A tracked file deleted in the working tree is not part of it.
        if !from.is_file() {
            continue;
        }
        let to = copy.join(&name);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        fs::copy(&from, &to).map_err(|e| format!("copying {}: {e}", name.display()))?;
    }
    Ok(())
}

/// The target directory the workspace builds into.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

pub(crate) fn run(root: &Path) -> Result<()> {
    let contributing = fs::read_to_string(root.join("CONTRIBUTING.md"))
        .map_err(|e| format!("reading CONTRIBUTING.md: {e}"))?;
    let walk = parse(&contributing)?;
    let target = target_dir(root);
    let target = if target.is_absolute() {
        target
    } else {
        root.join(target)
    };
    let copy = target.join("walkthrough");
    eprintln!(
        "copying the workspace to {} and applying the walk-through",
        copy.display()
    );
    copy_workspace(root, &copy)?;
    apply(&copy, &walk)?;
    for args in [
        &[
            "clippy",
            "--locked",
            "-p",
            "identity-msi",
            "--all-features",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ][..],
        &[
            "test",
            "--locked",
            "-p",
            "identity-msi",
            "--all-features",
            "--lib",
            "contoso",
        ][..],
    ] {
        let mut cmd = sh::cargo(args);
        cmd.current_dir(&copy).env("CARGO_TARGET_DIR", &target);
        sh::run(&mut cmd)?;
    }
    eprintln!("the walk-through in CONTRIBUTING.md builds, lints clean and its source works");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walkthrough_in_contributing_has_every_edit() {
        let walk = parse(include_str!("../../CONTRIBUTING.md")).unwrap();
        assert!(walk.file.contains("pub(crate) fn detect("));
        assert_eq!(walk.module.trim(), "pub mod contoso;");
        assert!(walk.variant.contains("Contoso,"));
        assert!(walk.rule.trim_start().starts_with("rule(S::Contoso,"));
    }

    #[test]
    fn every_anchor_of_the_walkthrough_is_in_the_sources() {
        let lib = include_str!("../../crates/identity-msi/src/lib.rs");
        let detect = include_str!("../../crates/identity-msi/src/detect.rs");
        insert_before(lib, "pub mod imds;", "x\n", "lib.rs").unwrap();
        for anchor in [
            "/// The hosting environment the credential detected",
            "/// The instance metadata service",
            "named(S::Imds",
        ] {
            insert_before(detect, anchor, "x\n", "detect.rs").unwrap();
        }
    }

    #[test]
    fn a_missing_anchor_names_the_file_and_the_walkthrough() {
        let err = insert_before("a\nb\n", "c", "x\n", "lib.rs")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lib.rs") && err.contains("CONTRIBUTING.md"),
            "{err}"
        );
        assert_eq!(
            insert_before("a\nb\n", "b", "x\n", "f").unwrap(),
            "a\nx\nb\n"
        );
    }

    #[test]
    fn a_walkthrough_without_its_section_is_refused() {
        let err = parse("# Contributing\n").unwrap_err().to_string();
        assert!(err.contains(SECTION), "{err}");
    }
}
