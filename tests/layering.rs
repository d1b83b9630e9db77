//! The layers, checked on the source: the GPU path is `runtime/`, `kernels/`, `ops/` and
//! `api/`; `impl Context` is written only in the runtime's context file and in the API (the
//! ops and the rest of the runtime are functions that take the context as an argument, so
//! their `use` lines show what they depend on), with at most 30 public methods; nothing under `gpu/` uses the CPU oracle (`crate::cpu`), the
//! shard protocol being `src/shard/`; blocking and error scopes are written in the runtime and
//! the API only; the library reads no `XENT_*` variable on its own.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source folder") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn library_files() -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, std::fs::read_to_string(&p).expect("readable source"))
        })
        .filter(|(rel, _)| !rel.starts_with("src/bin/"))
        .collect()
}

/// The body of each `impl Context {` block of `text`.
fn context_impls(text: &str) -> Vec<&str> {
    let mut bodies = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("\nimpl Context {") {
        let body = &rest[at + "\nimpl Context {".len()..];
        let mut depth = 1;
        let end = body
            .char_indices()
            .find_map(|(i, ch)| {
                depth += match ch {
                    '{' => 1,
                    '}' => -1,
                    _ => 0,
                };
                (depth == 0).then_some(i)
            })
            .expect("a closed impl block");
        bodies.push(&body[..end]);
        rest = &body[end..];
    }
    bodies
}

fn public_methods(body: &str) -> impl Iterator<Item = String> + '_ {
    body.lines().filter_map(|line| {
        let fun = line
            .strip_prefix("    pub fn ")
            .or_else(|| line.strip_prefix("    pub async fn "))?;
        Some(fun.split(['(', '<']).next().unwrap_or_default().to_string())
    })
}

#[test]
fn the_gpu_path_is_layered_in_folders() {
    for dir in ["runtime", "kernels", "ops", "api"] {
        assert!(root().join("src/gpu").join(dir).is_dir(), "src/gpu/{dir}/");
    }
    let stray: Vec<_> = library_files()
        .into_iter()
        .map(|(rel, _)| rel)
        .filter(|rel| rel.starts_with("src/gpu/") && rel.matches('/').count() == 2)
        .filter(|rel| rel != "src/gpu/mod.rs")
        .collect();
    assert!(stray.is_empty(), "files outside the layers: {stray:?}");
}

#[test]
fn the_gpu_path_does_not_use_the_cpu_oracle() {
    assert!(
        root().join("src/shard").is_dir(),
        "src/shard/: the shard protocol"
    );
    for (rel, text) in library_files() {
        if !rel.starts_with("src/gpu/") {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            assert!(
                !code.contains("crate::cpu"),
                "{rel}:{}: the GPU path uses the CPU oracle: {line}",
                i + 1
            );
        }
    }
}

/// Whether `code` calls or names `what` as a whole word (`run_scoped(` is not `scoped(`).
fn calls(code: &str, what: &str) -> bool {
    code.match_indices(what).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

#[test]
fn blocking_and_error_scopes_live_in_the_runtime_and_the_api() {
    for (rel, text) in library_files() {
        if rel.starts_with("src/gpu/runtime/") || rel.starts_with("src/gpu/api/") {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for what in ["poller::block", "block_on", "scoped(", "build_scoped("] {
                assert!(
                    !calls(code, what),
                    "{rel}:{}: `{what}` outside src/gpu/runtime/ and src/gpu/api/: {line}",
                    i + 1
                );
            }
        }
    }
}

/// Where `impl Context` may be written: the runtime's context file and the API.
fn may_impl_context(rel: &str) -> bool {
    rel == "src/gpu/runtime/context.rs" || rel.starts_with("src/gpu/api/")
}

#[test]
fn impl_context_is_written_only_in_the_context_file_and_the_api() {
    let mut found = 0;
    for (rel, text) in library_files() {
        for (i, line) in text.lines().enumerate() {
            let Some(rest) = line.strip_prefix("impl") else {
                continue;
            };
            let ty = rest.trim_start_matches(|c: char| c != ' ').trim();
            let ty = ty.trim_end_matches('{').trim();
            let ty = ty.rsplit(" for ").next().unwrap_or(ty);
            if ty == "Context" || ty.ends_with("::Context") {
                found += 1;
                assert!(
                    may_impl_context(&rel),
                    "{rel}:{}: `{line}`: only src/gpu/runtime/context.rs and src/gpu/api/",
                    i + 1
                );
            }
        }
    }
    assert!(found >= 2, "the scan found the impl blocks");
}

#[test]
fn context_has_at_most_30_public_methods_all_in_runtime_or_api() {
    let mut methods = Vec::new();
    for (rel, text) in library_files() {
        for body in context_impls(&text) {
            for name in public_methods(body) {
                assert!(
                    may_impl_context(&rel),
                    "Context::{name} is public in {rel}: only the context file and api/"
                );
                methods.push(name);
            }
        }
    }
    methods.sort();
    let unique = {
        let mut m = methods.clone();
        m.dedup();
        m
    };
    assert_eq!(methods, unique, "one name per method");
    assert!(methods.len() >= 20, "the scan found the API: {methods:?}");
    assert!(
        methods.len() <= 30,
        "{} public methods: {methods:?}",
        methods.len()
    );
}

#[test]
fn the_library_reads_no_xent_variable_but_from_env() {
    for (rel, text) in library_files() {
        if rel == "src/gpu/runtime/switches.rs" {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            assert!(
                !code.contains("env::var") || code.contains("WGPU_"),
                "{rel}:{}: reads the environment: {line}",
                i + 1
            );
        }
    }
}
