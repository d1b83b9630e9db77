//! Every repository path that the documentation and the comments name exists, and none of
//! them points into `../shared`, which a clone of this repository alone does not have.
//!
//! Scanned whole: README.md, CHANGELOG.md, docs/*.md and .ci/run. Scanned from `//` to the end
//! of each line: src/**/*.rs, shaders/**/*.wgsl, tests/*.rs and examples/*.rs. A path is a run
//! of `[A-Za-z0-9_./*-]` that starts with one of `ROOTS` right after any other character (so
//! the tail of `../x/src/` or of `target/release/examples/` is not one), less its trailing dots.
//! A trailing `/` names a folder; a `*` is a glob, whose part before it must begin some path.
//! `../shared` may appear only in .ci/run (and in this file).

use std::fs;
use std::path::Path;

/// The roots a repository path begins with.
const ROOTS: &str = "src/ tests/ docs/ shaders/ examples/ .ci/ benches/";

/// Every file and folder under `dir`, relative to `root`, folders with a trailing `/`;
/// `target/` and `.git/` are skipped.
fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        let name = path.file_name().unwrap_or_default();
        if name == "target" || name == ".git" {
            continue;
        }
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if path.is_dir() {
            out.push(format!("{rel}/"));
            walk(root, &path, out);
        } else {
            out.push(rel);
        }
    }
}

fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_-./*".contains(&b)
}

/// The paths `text` names (every path byte is ASCII, so the slices fall on char boundaries).
fn paths_in(text: &str) -> Vec<&str> {
    let (bytes, mut found, mut i) = (text.as_bytes(), Vec::new(), 0);
    while i < bytes.len() {
        let boundary = i == 0 || !is_path_byte(bytes[i - 1]);
        let rooted = || {
            ROOTS
                .split(' ')
                .any(|r| bytes[i..].starts_with(r.as_bytes()))
        };
        if boundary && rooted() {
            let end = (i..bytes.len())
                .find(|&e| !is_path_byte(bytes[e]))
                .unwrap_or(bytes.len());
            found.push(text[i..end].trim_end_matches('.'));
            i = end;
        } else {
            i += 1;
        }
    }
    found
}

fn exists(root: &Path, all: &[String], path: &str) -> bool {
    if let Some(star) = path.find('*') {
        all.iter().any(|p| p.starts_with(&path[..star]))
    } else if path.ends_with('/') {
        root.join(path).is_dir()
    } else {
        root.join(path).exists()
    }
}

/// Whether only the comments of `rel` are scanned (`Some(false)`: the whole file; `None`: not
/// scanned at all).
fn scanned(rel: &str) -> Option<bool> {
    let top_level = |dir: &str, ext: &str| {
        rel.strip_prefix(dir)
            .is_some_and(|r| !r.contains('/') && r.ends_with(ext))
    };
    if matches!(rel, "README.md" | "CHANGELOG.md" | ".ci/run") || top_level("docs/", ".md") {
        Some(false)
    } else if (rel.starts_with("src/") && rel.ends_with(".rs"))
        || (rel.starts_with("shaders/") && rel.ends_with(".wgsl"))
        || top_level("tests/", ".rs")
        || top_level("examples/", ".rs")
    {
        Some(true)
    } else {
        None
    }
}

#[test]
fn every_path_the_docs_name_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = Vec::new();
    walk(root, root, &mut all);
    all.sort();
    let (mut failures, mut checked) = (Vec::new(), 0);
    for rel in &all {
        let Some(comments_only) = scanned(rel) else {
            continue;
        };
        let text = fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        for (n, line) in text.lines().enumerate() {
            if line.contains("../shared") && rel != ".ci/run" && rel != "tests/doc_paths.rs" {
                failures.push(format!("{rel}:{}: ../shared", n + 1));
            }
            let part = match (comments_only, line.find("//")) {
                (false, _) => line,
                (true, Some(k)) => &line[k..],
                (true, None) => continue,
            };
            for path in paths_in(part) {
                checked += 1;
                if !exists(root, &all, path) {
                    failures.push(format!("{rel}:{}: {path}", n + 1));
                }
            }
        }
    }
    assert!(checked >= 50, "only {checked} paths found");
    assert!(
        failures.is_empty(),
        "{} stale paths:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
