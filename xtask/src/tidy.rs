//! Repository checks that need no compiler, run by `cargo xtask tidy`, by `cargo xtask ci`,
//! and as `#[test]`s in `cargo test -p xtask`.
//!
//! * every package's crate root (`src/lib.rs`, else `src/main.rs`) opens with a `//!` doc;
//! * library crates (`crates/identity-*/src`, bin targets and test modules aside) never
//!   print: output goes through `tracing` or the returned errors;
//! * every internal path dependency in `[workspace.dependencies]` carries a `version`, so the
//!   crates can be published;
//! * dependencies only point down the tiers (ARCHITECTURE.md): a crate under `crates/` has normal
//!   and build dependencies only on identity crates of a strictly lower tier. Tier 0 is core;
//!   tier 1 msi, dev, entra and the bridges to other SDKs (identity-azure-core,
//!   identity-object-store), which therefore depend on core alone; tier 2 chain; tier 3 the
//!   blob demo and the sidecar, where the demo (and only it) may also depend on the sidecar
//!   ([`SAME_TIER`]), never the reverse. Dev-dependencies reach no consumer and may use any identity crate (a test may
//!   borrow a harness from the demo);
//! * every crate under `crates/` has a `CHANGELOG.md` in tokio's format;
//! * every package inherits the workspace lints;
//! * every Rust snippet of the root README (other than `ignore`d ones) is also in
//!   `crates/identity-chain/README.md`, where it compiles as a doctest;
//! * every public item of the facade (`identity-chain`'s `lib.rs`) is named in its crate
//!   docs' list, so nothing reaches the facade by accident;
//! * no file cites a specification outside the repository: the wire behaviour is
//!   `docs/protocol.md`, and citations read `docs/protocol.md §N`;
//! * every library crate under `crates/` carries the metadata crates.io needs and is
//!   publishable, while the demo, tests, examples, benches, load test and xtask are
//!   `publish = false`.
//!
//! Manifests are read with plain string handling (xtask keeps no dependencies); it
//! understands the forms this workspace uses: `name = ...`, `name.workspace = true`,
//! `package = "..."` renames and `[dependencies.name]` tables.

use std::fs;
use std::path::{Path, PathBuf};

use crate::sh::Result;

/// Runs every check and fails listing all problems.
pub(crate) fn run(root: &Path) -> Result<()> {
    let problems = check_all(root);
    if problems.is_empty() {
        eprintln!("tidy: ok");
        Ok(())
    } else {
        for p in &problems {
            eprintln!("tidy: {p}");
        }
        Err(format!("{} tidy problem(s)", problems.len()).into())
    }
}

fn check_all(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    problems.extend(crate_docs(root));
    problems.extend(no_printing_in_libraries(root));
    problems.extend(internal_deps_have_versions(root));
    problems.extend(tiers(root));
    problems.extend(changelogs(root));
    problems.extend(workspace_lints(root));
    problems.extend(publish_metadata(root));
    problems.extend(outside_citations(root));
    problems.extend(readme_snippets_compile(root));
    problems.extend(facade_items_listed(root));
    problems.extend(doc_examples_use_facade_paths(root));
    problems.extend(crate::layout::problems(root));
    problems
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// The workspace members listed in the root manifest; a trailing `/*` is expanded.
fn members(root: &Path) -> Vec<PathBuf> {
    let manifest = read(&root.join("Cargo.toml"));
    let mut out = Vec::new();
    let Some(start) = manifest.find("\nmembers") else {
        return out;
    };
    let rest = &manifest[start..];
    let (Some(open), Some(close)) = (rest.find('['), rest.find(']')) else {
        return out;
    };
    for item in rest[open + 1..close].split(',') {
        let item = item.trim().trim_matches('"');
        if item.is_empty() {
            continue;
        }
        if let Some(dir) = item.strip_suffix("/*") {
            out.extend(subdirs(&root.join(dir)));
        } else {
            out.push(root.join(item));
        }
    }
    out.retain(|dir| dir.join("Cargo.toml").is_file());
    out
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// The crates under `crates/`, as (name, directory).
pub(crate) fn tier_crates(root: &Path) -> Vec<(String, PathBuf)> {
    subdirs(&root.join("crates"))
        .into_iter()
        .filter(|d| d.join("Cargo.toml").is_file())
        .filter_map(|d| Some((d.file_name()?.to_string_lossy().into_owned(), d)))
        .collect()
}

pub(crate) fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

// ---- crate docs -------------------------------------------------------------------------

fn crate_docs(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for dir in members(root) {
        let lib = dir.join("src/lib.rs");
        let main = dir.join("src/main.rs");
        let file = if lib.is_file() { lib } else { main };
        if !file.is_file() {
            continue;
        }
        if !has_crate_doc(&read(&file)) {
            problems.push(format!(
                "{} has no `//!` crate doc before its first item",
                rel(root, &file)
            ));
        }
    }
    problems
}

/// Whether a `//!` line comes before the first item (inner attributes, comments and blank
/// lines may precede it).
fn has_crate_doc(source: &str) -> bool {
    const ITEMS: &[&str] = &[
        "use ",
        "pub ",
        "pub(",
        "mod ",
        "fn ",
        "struct ",
        "enum ",
        "trait ",
        "impl",
        "const ",
        "static ",
        "type ",
        "extern ",
        "macro_rules!",
        "#[",
        "async ",
        "unsafe ",
    ];
    for line in source.lines() {
        if line.trim_start().starts_with("//!") {
            return true;
        }
        if ITEMS.iter().any(|item| line.starts_with(item)) {
            return false;
        }
    }
    false
}

// ---- printing in libraries --------------------------------------------------------------

fn no_printing_in_libraries(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, dir) in tier_crates(root) {
        if !name.starts_with("identity-") {
            continue;
        }
        let src = dir.join("src");
        for file in rust_files(&src) {
            let inner = file.strip_prefix(&src).unwrap_or(&file);
            if is_bin_or_test_file(inner) {
                continue;
            }
            for (line_no, what) in printing_lines(&read(&file)) {
                problems.push(format!(
                    "{}:{line_no} uses `{what}` in a library; log with `tracing` or return an error",
                    rel(root, &file)
                ));
            }
        }
    }
    problems
}

/// `main.rs`, `bin/**` and separate test-module files are not library code.
fn is_bin_or_test_file(inner: &Path) -> bool {
    inner == Path::new("main.rs")
        || inner.starts_with("bin")
        || inner.file_name().is_some_and(|n| n == "tests.rs")
        || inner.components().any(|c| c.as_os_str() == "tests")
}

pub(crate) fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Lines (1-based) that call a printing macro outside comments, up to the unit-test module
/// at the bottom of the file.
fn printing_lines(source: &str) -> Vec<(usize, &'static str)> {
    // Longest first, so `eprintln!` is reported as itself rather than as `println!`.
    const MACROS: &[&str] = &["eprintln!", "println!", "eprint!", "print!", "dbg!"];
    let mut found = Vec::new();
    for (i, line) in source.lines().enumerate() {
        if line.trim_end() == "#[cfg(test)]" {
            break;
        }
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let code = code.split(" //").next().unwrap_or(code);
        if let Some(m) = MACROS.iter().find(|m| code.contains(*m)) {
            found.push((i + 1, *m));
        }
    }
    found
}

// ---- internal dependency versions --------------------------------------------------------

fn internal_deps_have_versions(root: &Path) -> Vec<String> {
    unversioned_path_deps(&read(&root.join("Cargo.toml")))
        .into_iter()
        .map(|name| {
            format!("[workspace.dependencies] `{name}` is a path dependency without a `version`")
        })
        .collect()
}

/// Names of `[workspace.dependencies]` entries with a `path` and no `version`.
fn unversioned_path_deps(manifest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut section = String::new();
    // A `[workspace.dependencies.name]` table: (name, has path, has version).
    let mut table: Option<(String, bool, bool)> = None;
    let flush = |table: &mut Option<(String, bool, bool)>, out: &mut Vec<String>| {
        if let Some((name, true, false)) = table.take() {
            out.push(name);
        }
    };
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(header) = header(line) {
            flush(&mut table, &mut out);
            section = header.to_owned();
            if let Some(name) = section.strip_prefix("workspace.dependencies.") {
                table = Some((unquote(name).to_owned(), false, false));
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if let Some(t) = table.as_mut() {
            match key {
                "path" => t.1 = true,
                "version" => t.2 = true,
                _ => {}
            }
        } else if section == "workspace.dependencies"
            && has_key(value, "path")
            && !has_key(value, "version")
        {
            out.push(dep_key(key).to_owned());
        }
    }
    flush(&mut table, &mut out);
    out
}

/// The inside of a `[section]` header line.
fn header(line: &str) -> Option<&str> {
    line.strip_prefix('[')?.split(']').next().map(str::trim)
}

fn unquote(s: &str) -> &str {
    s.trim().trim_matches(|c| c == '"' || c == '\'')
}

/// The dependency name in a key such as `identity-core` or `identity-core.workspace`.
fn dep_key(key: &str) -> &str {
    let key = key.trim();
    if key.starts_with('"') || key.starts_with('\'') {
        unquote(key.split(['"', '\'']).nth(1).unwrap_or(key))
    } else {
        key.split('.').next().unwrap_or(key).trim()
    }
}

/// Whether an inline table such as `{ path = "x", version = "1" }` sets `key`.
fn has_key(value: &str, key: &str) -> bool {
    value
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .any(|(k, _)| k.trim() == key)
}

/// The value of `key = "..."` in an inline table.
fn string_value<'a>(value: &'a str, key: &str) -> Option<&'a str> {
    value
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| unquote(v))
}

// ---- tiers ------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DepKind {
    Normal,
    Dev,
}

/// Every dependency of a manifest: (kind, package name), renames resolved.
fn dependencies(manifest: &str) -> Vec<(DepKind, String)> {
    let mut out = Vec::new();
    let mut kind: Option<DepKind> = None;
    // Inside a `[dependencies.name]` table: the index of its entry in `out`.
    let mut table: Option<usize> = None;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(header) = header(line) {
            table = None;
            kind = None;
            // `dependencies`, `dev-dependencies.name`, `target.'cfg(unix)'.build-dependencies`…
            let parts: Vec<&str> = split_header(header);
            for (i, part) in parts.iter().enumerate() {
                let k = match *part {
                    "dependencies" | "build-dependencies" => DepKind::Normal,
                    "dev-dependencies" => DepKind::Dev,
                    _ => continue,
                };
                if i + 1 < parts.len() {
                    out.push((k, unquote(parts[i + 1]).to_owned()));
                    table = Some(out.len() - 1);
                } else {
                    kind = Some(k);
                }
                break;
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if let Some(index) = table {
            if key.trim() == "package" {
                out[index].1 = unquote(value).to_owned();
            }
        } else if let Some(k) = kind {
            let name = string_value(value, "package").unwrap_or_else(|| dep_key(key));
            out.push((k, name.to_owned()));
        }
    }
    out
}

/// Splits a header on dots outside quotes.
fn split_header(header: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quote: Option<char> = None;
    for (i, c) in header.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '.') => {
                parts.push(header[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(header[start..].trim());
    parts
}

/// The tier of each crate under `crates/`; arrows only point to lower numbers.
fn tier(name: &str) -> Option<u8> {
    match name {
        "identity-core" => Some(0),
        "identity-msi"
        | "identity-dev"
        | "identity-entra"
        | "identity-azure-core"
        | "identity-object-store" => Some(1),
        "identity-chain" => Some(2),
        "identity-blob-demo" | "identity-sidecar" => Some(3),
        _ => None,
    }
}

/// The dependencies allowed within one tier: (dependent, dependency). The blob demo's local
/// endpoint is the sidecar's development-token mode; the sidecar never depends on the demo.
const SAME_TIER: &[(&str, &str)] = &[("identity-blob-demo", "identity-sidecar")];

/// Problems with `krate`'s dependencies on other identity crates.
fn tier_problems(krate: &str, deps: &[(DepKind, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(own) = tier(krate) else {
        return vec![format!(
            "crates/{krate} has no tier; add it to xtask's tidy tier table and to ARCHITECTURE.md"
        )];
    };
    for (kind, dep) in deps {
        if !dep.starts_with("identity-") || dep == krate {
            continue;
        }
        // Dev-dependencies reach no consumer, so a test may borrow a harness from a higher
        // tier (identity-object-store's tests use the blob demo's Azurite setup); the
        // dependency must still be a known crate.
        let ok = match kind {
            DepKind::Normal => {
                tier(dep).is_some_and(|t| t < own) || SAME_TIER.contains(&(krate, dep.as_str()))
            }
            DepKind::Dev => tier(dep).is_some(),
        };
        if !ok {
            let what = match kind {
                DepKind::Normal => "depends on",
                DepKind::Dev => "dev-depends on",
            };
            problems.push(format!(
                "{krate} {what} {dep}: dependencies only point down the tiers (see ARCHITECTURE.md)"
            ));
        }
    }
    problems
}

fn tiers(root: &Path) -> Vec<String> {
    tier_crates(root)
        .into_iter()
        .flat_map(|(name, dir)| tier_problems(&name, &dependencies(&read(&dir.join("Cargo.toml")))))
        .collect()
}

// ---- changelogs and lints ---------------------------------------------------------------

fn changelogs(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for (_, dir) in tier_crates(root) {
        let path = dir.join("CHANGELOG.md");
        let text = read(&path);
        if !text.starts_with("# Changelog") || !text.lines().any(|l| l.trim() == "## Unreleased") {
            problems.push(format!(
                "{} must exist and start with `# Changelog` and an `## Unreleased` section",
                rel(root, &path)
            ));
        }
    }
    problems
}

fn workspace_lints(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for dir in members(root) {
        let path = dir.join("Cargo.toml");
        if !inherits_lints(&read(&path)) {
            problems.push(format!(
                "{} must have `[lints]` with `workspace = true`",
                rel(root, &path)
            ));
        }
    }
    problems
}

fn inherits_lints(manifest: &str) -> bool {
    let mut in_lints = false;
    for line in manifest.lines() {
        let line = line.trim();
        if let Some(h) = header(line) {
            in_lints = h == "lints";
        } else if in_lints && line.replace(' ', "") == "workspace=true" {
            return true;
        }
    }
    false
}

// ---- publishing ---------------------------------------------------------------------------

/// The packages that stay off crates.io; every other crate under `crates/` is published.
const UNPUBLISHED: &[&str] = &[
    "identity-blob-demo",
    "identity-tests",
    "identity-examples",
    "identity-bench",
    "identity-load",
    "xtask",
];

/// The `[package]` keys crates.io shows; each may be set directly or inherited
/// (`key.workspace = true`).
const PUBLISH_KEYS: &[&str] = &[
    "description",
    "license",
    "repository",
    "readme",
    "keywords",
    "categories",
    "rust-version",
    "documentation",
];

/// The library crates (the ones `cargo xtask ci` packages), by name.
pub(crate) fn publishable_crates(root: &Path) -> Vec<String> {
    tier_crates(root)
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| !UNPUBLISHED.contains(&name.as_str()))
        .collect()
}

fn publish_metadata(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for dir in members(root) {
        let path = dir.join("Cargo.toml");
        let manifest = read(&path);
        let name = package_name(&manifest).unwrap_or_default();
        problems.extend(
            publish_problems(&name, &manifest, |file| dir.join(file).is_file())
                .into_iter()
                .map(|p| format!("{}: {p}", rel(root, &path))),
        );
    }
    problems
}

/// The `name` of a manifest's `[package]`.
fn package_name(manifest: &str) -> Option<String> {
    package_keys(manifest)
        .into_iter()
        .find(|(key, _)| key == "name")
        .map(|(_, value)| unquote(&value).to_owned())
}

/// The `key = value` lines of `[package]`, with `key.workspace` reported as `key`.
fn package_keys(manifest: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.trim();
        if let Some(h) = header(line) {
            in_package = h == "package";
        } else if in_package && let Some((key, value)) = line.split_once('=') {
            let key = key.trim();
            let key = key.strip_suffix(".workspace").unwrap_or(key);
            let value = value.split(" #").next().unwrap_or(value).trim();
            out.push((key.to_owned(), value.to_owned()));
        }
    }
    out
}

fn publish_problems(name: &str, manifest: &str, file_exists: impl Fn(&str) -> bool) -> Vec<String> {
    let keys = package_keys(manifest);
    let value = |k: &str| {
        keys.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let unpublished = value("publish") == Some("false");
    if UNPUBLISHED.contains(&name) {
        return if unpublished {
            Vec::new()
        } else {
            vec![format!("`{name}` must stay `publish = false`")]
        };
    }
    let mut problems = Vec::new();
    if unpublished {
        problems.push(format!(
            "`{name}` is a library and must be publishable: remove `publish = false` (or add it \
             to xtask's UNPUBLISHED list with a reason)"
        ));
    }
    for key in PUBLISH_KEYS {
        if value(key).is_none() {
            problems.push(format!("`{name}` lacks `{key}`, which crates.io needs"));
        }
    }
    if let Some(readme) = value("readme").map(unquote)
        && readme != "true"
        && !file_exists(readme)
    {
        problems.push(format!("`{name}`'s readme `{readme}` does not exist"));
    }
    problems
}

// ---- README snippets --------------------------------------------------------------------

/// The crate README whose Rust blocks run as identity-chain doctests.
const DOCTESTED_README: &str = "crates/identity-chain/README.md";

fn readme_snippets_compile(root: &Path) -> Vec<String> {
    let doctested = read(&root.join(DOCTESTED_README));
    rust_blocks(&read(&root.join("README.md")))
        .into_iter()
        .filter(|block| !doctested.contains(block.as_str()))
        .map(|block| {
            let first = block.lines().next().unwrap_or_default().to_owned();
            format!(
                "README.md: the Rust block starting `{first}` is not in {DOCTESTED_README}, \
                 where it would compile as a doctest; copy it there (or mark it `ignore`)"
            )
        })
        .collect()
}

/// The bodies of the fenced ```` ```rust ```` blocks that are compiled (not `ignore`).
pub(crate) fn rust_blocks(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    // Inside a fence: `Some(Some(body))` for a compiled Rust block, `Some(None)` for any other.
    let mut fence: Option<Option<String>> = None;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        match fence.as_mut() {
            Some(block) if trimmed.starts_with("```") => {
                if let Some(body) = block.take() {
                    out.push(body);
                }
                fence = None;
            }
            Some(Some(body)) => {
                body.push_str(line);
                body.push('\n');
            }
            Some(None) => {}
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    let info = info.trim();
                    let compiled =
                        info.split(',').next() == Some("rust") && !info.contains("ignore");
                    fence = Some(compiled.then(String::new));
                }
            }
        }
    }
    out
}

// ---- the facade --------------------------------------------------------------------------

/// The facade most applications depend on.
const FACADE: &str = "crates/identity-chain/src/lib.rs";

fn facade_items_listed(root: &Path) -> Vec<String> {
    let source = read(&root.join(FACADE));
    let docs: String = source
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    public_items(&source)
        .into_iter()
        .filter(|name| !docs.contains(&format!("[`{name}`]")))
        .map(|name| {
            format!(
                "{FACADE}: the public item `{name}` is not in the crate docs' list of public \
                 items; list it as [`{name}`] there if users are meant to use it, else keep it \
                 in its own crate"
            )
        })
        .collect()
}

/// The names a crate root makes public: `pub use` (last path segment or `as` name, braces
/// expanded), `pub mod`, and `pub` items declared in place.
fn public_items(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut statement = String::new();
    for line in source.lines() {
        let code = line.trim();
        if statement.is_empty() && !code.starts_with("pub use ") {
            for keyword in [
                "mod", "struct", "enum", "fn", "const", "static", "trait", "type",
            ] {
                if let Some(rest) = code.strip_prefix(&format!("pub {keyword} ")) {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    names.push(name);
                }
            }
            continue;
        }
        statement.push_str(code);
        if !code.ends_with(';') {
            continue;
        }
        let body = statement
            .trim_start_matches("pub use ")
            .trim_end_matches(';')
            .to_owned();
        statement.clear();
        let list = body
            .split_once('{')
            .map_or(body.as_str(), |(_, list)| list.trim_end_matches('}'));
        for item in list.split(',') {
            let item = item.trim();
            if item.ends_with('*') {
                // A glob makes everything public: reported by name so it cannot be listed.
                names.push(item.to_owned());
                continue;
            }
            if item.is_empty() || item == "self" {
                continue;
            }
            let name = match item.split_once(" as ") {
                Some((_, alias)) => alias.trim(),
                None => item.rsplit("::").next().unwrap_or(item),
            };
            names.push(name.to_owned());
        }
    }
    names
}

// ---- citations ----------------------------------------------------------------------------

/// Text that points outside the repository: a specification or notes that only exist beside
/// it. (Split so that this file does not match itself.)
const OUTSIDE: &[&str] = &[
    concat!("spec ", "§"),
    concat!("shared", "/spec"),
    concat!("../", "shared"),
];

/// Files allowed to name `../shared`: the advisory-snapshot handling of `cargo xtask deny`,
/// and this check with its fix.
const OUTSIDE_ALLOWED: &[&str] = &["xtask/src/deny.rs", "xtask/src/tidy.rs"];

/// Directories never scanned: build output, tools, VCS data, installed packages.
const SKIPPED_DIRS: &[&str] = &["target", ".git", ".tools", "node_modules"];

fn outside_citations(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for file in text_files(root) {
        let name = rel(root, &file);
        if OUTSIDE_ALLOWED.contains(&name.as_str()) {
            continue;
        }
        for (line_no, what) in citation_lines(&read(&file)) {
            problems.push(format!(
                "{name}:{line_no} cites `{what}`, outside the repository; cite \
                 `docs/protocol.md §N` (the same section numbers) and write what the code \
                 follows into docs/protocol.md"
            ));
        }
    }
    problems
}

/// Lines (1-based) naming a location outside the repository, with what they name.
fn citation_lines(text: &str) -> Vec<(usize, &'static str)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            // "Spec §" at the start of a sentence counts too.
            let line = line.to_ascii_lowercase();
            OUTSIDE
                .iter()
                .find(|o| line.contains(*o))
                .map(|o| (i + 1, *o))
        })
        .collect()
}

/// The repository's text files (Rust, Markdown, TOML, shell, YAML, JSON), outside
/// [`SKIPPED_DIRS`].
fn text_files(dir: &Path) -> Vec<PathBuf> {
    const EXTENSIONS: &[&str] = &["rs", "md", "toml", "sh", "yml", "yaml", "json", "txt"];
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if !SKIPPED_DIRS.iter().any(|d| name == *d) {
                out.extend(text_files(&path));
            }
        } else if path
            .extension()
            .is_some_and(|e| EXTENSIONS.iter().any(|x| e == *x))
            || name == "run"
        {
            out.push(path);
        }
    }
    out.sort();
    out
}

// ---- doc examples use the facade's paths ------------------------------------------------

/// The crates under the facade whose doc examples name re-exported items by the facade's path
/// (each has identity-chain as a path-only dev-dependency so the examples compile).
const FACADE_PATH_CRATES: &[&str] = &[
    "identity-core",
    "identity-msi",
    "identity-dev",
    "identity-entra",
];

/// `(crate ident, path)` of every single-item `pub use identity_x::path;` in the facade.
fn facade_reexports(source: &str) -> Vec<(String, String)> {
    source
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub use "))
        .filter_map(|l| l.strip_suffix(';'))
        .filter(|l| !l.contains('{') && !l.contains(" as "))
        .filter_map(|l| l.split_once("::"))
        .filter(|(krate, _)| krate.starts_with("identity_"))
        .map(|(krate, path)| (krate.to_owned(), path.to_owned()))
        .collect()
}

/// `(line number, path)` of each re-exported path that a doc example in `source` names through
/// `krate` (e.g. `identity_entra::ClientSecretCredential` where the facade re-exports it).
fn own_paths_in_doc_examples(
    source: &str,
    krate: &str,
    reexported: &[&str],
) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut in_code = false;
    let prefix = format!("{krate}::");
    for (i, line) in source.lines().enumerate() {
        let trimmed = line.trim_start();
        let Some(body) = trimmed
            .strip_prefix("///")
            .or_else(|| trimmed.strip_prefix("//!"))
        else {
            in_code = false;
            continue;
        };
        if body.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            continue;
        }
        for (at, _) in body.match_indices(&prefix) {
            let rest = &body[at + prefix.len()..];
            let names: Vec<String> = if let Some(list) = rest.strip_prefix('{') {
                list.split('}')
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(|n| n.trim().to_owned())
                    .collect()
            } else {
                vec![
                    rest.chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                        .collect::<String>()
                        .trim_end_matches(':')
                        .to_owned(),
                ]
            };
            for name in names {
                // `Foo::builder()`: the item is `Foo`.
                let item = reexported
                    .iter()
                    .find(|r| name == **r || name.starts_with(&format!("{r}::")));
                if let Some(item) = item {
                    found.push((i + 1, (*item).to_owned()));
                }
            }
        }
    }
    found
}

fn doc_examples_use_facade_paths(root: &Path) -> Vec<String> {
    let reexports = facade_reexports(&read(&root.join(FACADE)));
    let mut problems = Vec::new();
    for krate in FACADE_PATH_CRATES {
        for file in rust_files(&root.join("crates").join(krate).join("src")) {
            let source = read(&file);
            // Any crate under the facade, named from any of them.
            for named in FACADE_PATH_CRATES {
                let ident = named.replace('-', "_");
                let paths: Vec<&str> = reexports
                    .iter()
                    .filter(|(k, _)| *k == ident)
                    .map(|(_, p)| p.as_str())
                    .collect();
                for (line, item) in own_paths_in_doc_examples(&source, &ident, &paths) {
                    let name = item.rsplit("::").next().unwrap_or(&item);
                    problems.push(format!(
                        "{}:{line}: a doc example names `{ident}::{item}`; the facade re-exports it, so write `identity_chain::{name}` (the path users write)",
                        rel(root, &file)
                    ));
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_examples_naming_a_re_exported_item_by_its_crate_are_found() {
        let facade = "pub use identity_entra::ClientSecretCredential;\npub use identity_core::blocking::BlockingCredential;\npub use identity_core::Env;\n";
        let exports = facade_reexports(facade);
        assert_eq!(exports.len(), 3);
        let source = "/// ```\n/// use identity_entra::ClientSecretCredential;\n/// let b = identity_entra::ClientSecretCredential::builder();\n/// use identity_entra::http::Thing;\n/// ```\n/// identity_entra::ClientSecretCredential outside code\n";
        let found =
            own_paths_in_doc_examples(source, "identity_entra", &["ClientSecretCredential"]);
        assert_eq!(
            found,
            vec![
                (2, "ClientSecretCredential".to_owned()),
                (3, "ClientSecretCredential".to_owned())
            ]
        );
        let core = "//! ```\n//! use identity_core::{Env, Error};\n//! use identity_core::blocking::BlockingCredential;\n//! ```\n";
        let found = own_paths_in_doc_examples(
            core,
            "identity_core",
            &["blocking::BlockingCredential", "Env"],
        );
        assert_eq!(
            found,
            vec![
                (2, "Env".to_owned()),
                (3, "blocking::BlockingCredential".to_owned())
            ]
        );
    }
    use crate::sh::project_root;

    #[test]
    fn the_readme_snippets_are_doctested() {
        assert_clean(&readme_snippets_compile(&project_root()));
        assert!(!rust_blocks(&read(&project_root().join("README.md"))).is_empty());
    }

    #[test]
    fn rust_blocks_are_extracted() {
        let md = "```toml\na = 1\n```\n```rust,no_run\nlet x = 1;\n```\n```rust,ignore\nno();\n```\n```sh\nls\n```\n";
        assert_eq!(rust_blocks(md), ["let x = 1;\n"]);
    }

    #[test]
    fn every_public_item_of_the_facade_is_listed_in_its_docs() {
        assert_clean(&facade_items_listed(&project_root()));
        assert!(public_items(&read(&project_root().join(FACADE))).len() > 40);
    }

    #[test]
    fn public_items_are_read_in_every_form() {
        let source = "//! [`A`]\npub use a::A;\npub use b::{B, c::C as D,\n    E};\npub use f::*;\nmod hidden;\npub mod default;\npub(crate) use x::Y;\npub struct S;\n";
        assert_eq!(
            public_items(source),
            ["A", "B", "D", "E", "f::*", "default", "S"]
        );
    }

    #[test]
    fn no_file_cites_a_specification_outside_the_repository() {
        assert_clean(&outside_citations(&project_root()));
    }

    #[test]
    fn outside_citations_are_found() {
        let text = concat!(
            "/// ok: docs/protocol.md §2.1\n/// old: (spec ",
            "§2.8)\n",
            "see ../",
            "shared/x\n"
        );
        assert_eq!(citation_lines(text).len(), 2);
        assert_eq!(citation_lines(text)[0].0, 2);
        assert!(citation_lines("docs/protocol.md §9 #4").is_empty());
        assert_eq!(citation_lines(concat!("/// Spec ", "§10 case 36")).len(), 1);
    }

    #[test]
    fn libraries_are_publishable_and_the_rest_is_not() {
        assert_clean(&publish_metadata(&project_root()));
        let crates = publishable_crates(&project_root());
        assert!(crates.contains(&"identity-entra".to_owned()));
        assert!(!crates.contains(&"identity-blob-demo".to_owned()));
    }

    #[test]
    fn missing_publish_metadata_is_reported() {
        let manifest = "[package]\nname = \"identity-x\"\ndescription = \"d\"\nlicense.workspace = true\npublish = false\nreadme = \"README.md\"\n\n[dependencies]\nkeywords = 1\n";
        let problems = publish_problems("identity-x", manifest, |_| false);
        assert!(problems.iter().any(|p| p.contains("publish = false")));
        assert!(problems.iter().any(|p| p.contains("`repository`")));
        assert!(problems.iter().any(|p| p.contains("`keywords`")));
        assert!(problems.iter().any(|p| p.contains("does not exist")));
        assert!(!problems.iter().any(|p| p.contains("`license`")));
        assert_eq!(
            publish_problems("xtask", "[package]\nname = \"xtask\"\n", |_| true).len(),
            1
        );
    }

    fn assert_clean(problems: &[String]) {
        assert!(
            problems.is_empty(),
            "tidy problems:\n{}",
            problems.join("\n")
        );
    }

    #[test]
    fn every_crate_root_has_a_crate_doc() {
        assert_clean(&crate_docs(&project_root()));
    }

    #[test]
    fn libraries_do_not_print() {
        assert_clean(&no_printing_in_libraries(&project_root()));
    }

    #[test]
    fn internal_workspace_dependencies_carry_a_version() {
        assert_clean(&internal_deps_have_versions(&project_root()));
    }

    #[test]
    fn dependencies_only_point_down_the_tiers() {
        assert_clean(&tiers(&project_root()));
    }

    #[test]
    fn every_crate_has_a_changelog() {
        assert_clean(&changelogs(&project_root()));
    }

    #[test]
    fn every_package_inherits_the_workspace_lints() {
        assert_clean(&workspace_lints(&project_root()));
    }

    #[test]
    fn the_workspace_members_are_found() {
        let members = members(&project_root());
        assert!(members.iter().any(|m| m.ends_with("crates/identity-core")));
        assert!(members.iter().any(|m| m.ends_with("xtask")));
    }

    #[test]
    fn a_crate_doc_must_come_before_the_first_item() {
        assert!(has_crate_doc("//! Docs.\nuse std::fmt;\n"));
        assert!(has_crate_doc("#![allow(x)]\n\n//! Docs.\nmod a;\n"));
        assert!(has_crate_doc("// licence header\n//! Docs.\n"));
        assert!(!has_crate_doc("use std::fmt;\n//! Late.\n"));
        assert!(!has_crate_doc("/// Outer doc.\npub fn f() {}\n"));
        assert!(!has_crate_doc(""));
    }

    #[test]
    fn printing_is_found_outside_comments_and_tests() {
        let src = "\
/// ```
/// println!(\"in a doc example\");
/// ```
fn f() {
    eprintln!(\"oops\");
    let x = 1; // println! in a comment
    dbg!(x);
}
#[cfg(test)]
mod tests {
    fn t() { println!(\"fine in tests\"); }
}
";
        assert_eq!(printing_lines(src), [(5, "eprintln!"), (7, "dbg!")]);
    }

    #[test]
    fn bin_targets_and_test_files_are_not_library_code() {
        assert!(is_bin_or_test_file(Path::new("main.rs")));
        assert!(is_bin_or_test_file(Path::new("bin/tool.rs")));
        assert!(is_bin_or_test_file(Path::new("cache/tests.rs")));
        assert!(!is_bin_or_test_file(Path::new("lib.rs")));
        assert!(!is_bin_or_test_file(Path::new("imds.rs")));
    }

    #[test]
    fn a_path_dependency_without_version_is_reported() {
        let manifest = r#"
[workspace.dependencies]
identity-core = { path = "crates/identity-core", version = "0.1.0", default-features = false }
identity-msi = { path = "crates/identity-msi", default-features = false }
tokio = { version = "1", default-features = false }

[workspace.dependencies.identity-dev]
path = "crates/identity-dev"

[workspace.dependencies.identity-entra]
path = "crates/identity-entra"
version = "0.1.0"
"#;
        assert_eq!(
            unversioned_path_deps(manifest),
            ["identity-msi", "identity-dev"]
        );
    }

    #[test]
    fn dependencies_are_read_in_every_form() {
        let manifest = r#"
[package]
name = "identity-chain"

[dependencies]
identity-core.workspace = true
msi = { package = "identity-msi", workspace = true }
tokio = { workspace = true, features = ["rt"] }

[target.'cfg(unix)'.dependencies]
identity-dev = { workspace = true }

[dependencies.entra]
package = "identity-entra"
workspace = true

[dev-dependencies]
identity-core = { path = "../identity-core", features = ["test-util"] }

[lints]
workspace = true
"#;
        let deps = dependencies(manifest);
        let names: Vec<(DepKind, &str)> = deps.iter().map(|(k, n)| (*k, n.as_str())).collect();
        assert_eq!(
            names,
            [
                (DepKind::Normal, "identity-core"),
                (DepKind::Normal, "identity-msi"),
                (DepKind::Normal, "tokio"),
                (DepKind::Normal, "identity-dev"),
                (DepKind::Normal, "identity-entra"),
                (DepKind::Dev, "identity-core"),
            ]
        );
        assert!(tier_problems("identity-chain", &deps).is_empty());
        assert!(inherits_lints(manifest));
    }

    #[test]
    fn a_dependency_up_the_tiers_is_refused() {
        let up = |kind, dep: &str| vec![(kind, dep.to_owned())];
        assert_eq!(
            tier_problems("identity-core", &up(DepKind::Normal, "identity-msi")).len(),
            1
        );
        assert_eq!(
            tier_problems("identity-msi", &up(DepKind::Normal, "identity-entra")).len(),
            1
        );
        assert!(
            tier_problems(
                "identity-object-store",
                &up(DepKind::Dev, "identity-blob-demo")
            )
            .is_empty()
        );
        assert_eq!(
            tier_problems("identity-msi", &up(DepKind::Dev, "identity-nope")).len(),
            1
        );
        assert_eq!(
            tier_problems("identity-chain", &up(DepKind::Normal, "identity-blob-demo")).len(),
            1
        );
        assert!(
            tier_problems(
                "identity-blob-demo",
                &up(DepKind::Normal, "identity-azure-core")
            )
            .is_empty()
        );
        assert!(tier_problems("identity-blob-demo", &up(DepKind::Dev, "identity-core")).is_empty());
        assert!(
            tier_problems(
                "identity-blob-demo",
                &up(DepKind::Normal, "identity-sidecar")
            )
            .is_empty()
        );
        assert_eq!(
            tier_problems(
                "identity-sidecar",
                &up(DepKind::Normal, "identity-blob-demo")
            )
            .len(),
            1
        );
        assert!(
            tier_problems("identity-sidecar", &up(DepKind::Normal, "identity-chain")).is_empty()
        );
        assert!(tier_problems("identity-core", &up(DepKind::Dev, "identity-core")).is_empty());
        assert_eq!(tier_problems("identity-new", &[]).len(), 1);
    }
}
