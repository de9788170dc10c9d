//! Tidy checks of how the library crates are laid out: no source file over
//! [`MAX_LIBRARY_LINES`] lines before its unit tests, and no import circle between the
//! top-level modules of a crate.
//!
//! A module's imports are its `crate::…` paths outside comments and outside the unit-test
//! module at the bottom of the file; the top-level module is the path's first segment. Files
//! that are test support (`tests.rs`, `test_support.rs`, `test_util/`, and the modules
//! declared under `#[cfg(test)]`) are not library code and are left out of both checks.
//!
//! One import circle is part of the design and allowed: identity-msi's `detect.rs` holds the
//! table of hosting sources, naming each source's detection rule, while each source reads its
//! environment variables and names from that table. The check leaves out `detect`'s own
//! imports there; any other circle through those modules is still found.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// "About 400 lines": a library file's length before its unit-test module.
pub(crate) const MAX_LIBRARY_LINES: usize = 400;

/// The imports left out of the circle check, as (crate, module): see the module docs.
const TABLE_MODULES: &[(&str, &str)] = &[("identity-msi", "detect")];

/// The library source files of a crate's `src/`, with their text up to the unit-test module.
fn library_files(src: &Path) -> Vec<(PathBuf, String)> {
    let files = crate::tidy::rust_files(src);
    let test_only: Vec<PathBuf> = files
        .iter()
        .flat_map(|file| test_modules(file, &fs::read_to_string(file).unwrap_or_default()))
        .collect();
    files
        .into_iter()
        .filter(|file| {
            let inner = file.strip_prefix(src).unwrap_or(file);
            let name = inner
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            !matches!(name, "tests.rs" | "test_support.rs")
                && !inner.components().any(|c| {
                    matches!(
                        c.as_os_str().to_str(),
                        Some("test_util" | "test_support" | "tests")
                    )
                })
                && !test_only.iter().any(|t| file.starts_with(t))
                && !is_bin(inner)
        })
        .map(|file| {
            let text = fs::read_to_string(&file).unwrap_or_default();
            let code = before_unit_tests(&text).to_owned();
            (file, code)
        })
        .collect()
}

fn is_bin(inner: &Path) -> bool {
    inner == Path::new("main.rs") || inner.starts_with("bin")
}

/// The files and directories of the modules `file` declares under `#[cfg(test)]`
/// (`#[cfg(test)] mod emulator;`).
fn test_modules(file: &Path, text: &str) -> Vec<PathBuf> {
    let dir = module_dir(file);
    let mut out = Vec::new();
    let mut previous = "";
    for line in text.lines() {
        let line = line.trim();
        if previous == "#[cfg(test)]" {
            let declared = line
                .trim_start_matches("pub(crate) ")
                .trim_start_matches("pub ")
                .strip_prefix("mod ")
                .and_then(|rest| rest.strip_suffix(';'));
            if let Some(name) = declared {
                out.push(dir.join(format!("{name}.rs")));
                out.push(dir.join(name));
            }
        }
        previous = line;
    }
    out
}

/// Where the modules a file declares live: its own directory for `lib.rs`, `main.rs` and
/// `mod.rs`, else the directory named after it.
fn module_dir(file: &Path) -> PathBuf {
    let parent = file.parent().unwrap_or(Path::new("."));
    match file.file_stem().and_then(|s| s.to_str()) {
        Some("lib" | "main" | "mod") | None => parent.to_path_buf(),
        Some(stem) => parent.join(stem),
    }
}

/// The text before the unit-test module at the bottom (`#[cfg(test)]` followed by an inline
/// `mod … {`).
fn before_unit_tests(text: &str) -> &str {
    let mut offset = 0;
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        if line.trim_end() == "#[cfg(test)]"
            && lines.peek().is_some_and(|next| {
                let next = next.trim();
                next.contains("mod ") && next.ends_with('{')
            })
        {
            return &text[..offset];
        }
        offset += line.len();
    }
    text
}

/// Library files over the limit.
fn long_files(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for (_, dir) in crate::tidy::tier_crates(root) {
        for (file, code) in library_files(&dir.join("src")) {
            let lines = code.lines().count();
            if lines > MAX_LIBRARY_LINES {
                problems.push(format!(
                    "{}: {lines} lines before its unit tests (at most {MAX_LIBRARY_LINES}); split it by concern",
                    crate::tidy::rel(root, &file)
                ));
            }
        }
    }
    problems
}

/// The top-level modules a text names through `crate::` paths, outside comments.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // e.g. `identity_crate::`
            }
            if let Some(group) = rest.strip_prefix('{') {
                out.extend(group_heads(group));
            } else {
                out.insert(ident(rest).to_owned());
            }
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

/// The leading identifier of `text`.
fn ident(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The first segment of each entry of a `use crate::{…}` group (on one line).
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut at_entry = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => at_entry = true,
            c if at_entry && (c.is_alphanumeric() || c == '_') => {
                heads.push(ident(&group[i..]).to_owned());
                at_entry = false;
            }
            _ => {}
        }
    }
    heads
}

/// The top-level module a file belongs to (`http/send.rs` → `http`), or `None` for the crate
/// root.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let inner = file.strip_prefix(src).ok()?;
    let first = inner.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then(|| name.to_owned())
}

/// A circle in `graph`, as its modules in order, if there is one.
fn find_circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            return Some(path[at..].to_vec());
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// Import circles between the top-level modules of each library crate.
fn import_circles(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, dir) in crate::tidy::tier_crates(root) {
        let src = dir.join("src");
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (file, code) in library_files(&src) {
            let Some(module) = top_module(&src, &file) else {
                continue;
            };
            if TABLE_MODULES.contains(&(name.as_str(), module.as_str())) {
                graph.entry(module).or_default();
                continue;
            }
            let imports = crate_paths(&code);
            let entry = graph.entry(module.clone()).or_default();
            entry.extend(imports.into_iter().filter(|m| *m != module));
        }
        let modules: BTreeSet<String> = graph.keys().cloned().collect();
        for imports in graph.values_mut() {
            imports.retain(|m| modules.contains(m));
        }
        if let Some(circle) = find_circle(&graph) {
            problems.push(format!(
                "{name}: an import circle between its modules: {} -> {}; move what both need \
                 into the lower module",
                circle.join(" -> "),
                circle[0]
            ));
        }
    }
    problems
}

/// Both layout checks.
pub(crate) fn problems(root: &Path) -> Vec<String> {
    let mut out = long_files(root);
    out.extend(import_circles(root));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_paths_take_the_first_segment_of_paths_and_groups() {
        let code = "use crate::http::{send, Request};\n\
                    use crate::{retry::RetryPolicy, cache::{a, b}, Error};\n\
                    // crate::commented::Out\n\
                    let x = identity_crate::y; crate::trace::traced(f)";
        let found: Vec<String> = crate_paths(code).into_iter().collect();
        assert_eq!(found, ["Error", "cache", "http", "retry", "trace"]);
    }

    #[test]
    fn a_circle_is_found_and_a_layering_is_not() {
        let graph = |edges: &[(&str, &str)]| {
            let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (a, b) in edges {
                g.entry((*a).to_owned())
                    .or_default()
                    .insert((*b).to_owned());
                g.entry((*b).to_owned()).or_default();
            }
            g
        };
        assert_eq!(
            find_circle(&graph(&[("http", "retry"), ("retry", "deadline")])),
            None
        );
        let circle = find_circle(&graph(&[("http", "retry"), ("retry", "http")])).unwrap();
        assert_eq!(circle, ["http", "retry"]);
    }

    #[test]
    fn the_unit_test_module_and_test_only_modules_are_not_library_code() {
        let text =
            "fn a() {}\n#[cfg(test)]\nmod emulator;\n#[cfg(test)]\nmod tests {\n    fn t() {}\n}\n";
        assert_eq!(
            before_unit_tests(text),
            "fn a() {}\n#[cfg(test)]\nmod emulator;\n"
        );
        let found = test_modules(Path::new("src/user/mod.rs"), text);
        assert!(
            found.contains(&PathBuf::from("src/user/emulator.rs")),
            "{found:?}"
        );
        assert_eq!(
            module_dir(Path::new("src/user.rs")),
            PathBuf::from("src/user")
        );
    }

    #[test]
    fn the_workspace_has_no_long_library_file_and_no_import_circle() {
        let problems = problems(&crate::sh::project_root());
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
