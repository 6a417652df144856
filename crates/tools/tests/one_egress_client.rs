//! Dify CVE-2024-11822 / #35947: features that made their own HTTP client skipped the SSRF
//! guard. Here every outbound client is built in one of a few reviewed places; a new
//! `reqwest::Client` anywhere else in the product's source fails this test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

/// Where a client may be built, and why it is safe.
const ALLOWED: &[(&str, &str)] = &[
    (
        "crates/tools/src/guard/client.rs",
        "the SSRF-guarded client itself",
    ),
    (
        "crates/llm/src/config.rs",
        "the provider client, built with the guard's resolver",
    ),
    (
        "crates/agentry/src/client.rs",
        "the CLI talking to the operator's own server",
    ),
    (
        "crates/agentry/src/bench.rs",
        "the benchmark talking to the server it started",
    ),
    (
        "crates/agentry/src/bench_workflows.rs",
        "the workflow benchmark talking to the server it started",
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            // Test code may talk to anything local.
            if path
                .file_name()
                .is_some_and(|n| n == "tests" || n == "benches" || n == "examples")
            {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            // `tests.rs` files are `#[cfg(test)] mod tests;` modules.
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

#[test]
fn outbound_http_clients_are_only_built_where_the_guard_applies() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    let mut offenders = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // Unit tests at the end of a file are test code.
        let product = text.split("#[cfg(test)]").next().unwrap_or("");
        let builds = [
            "reqwest::Client::new(",
            "reqwest::Client::builder(",
            "ClientBuilder::new(",
        ]
        .iter()
        .any(|needle| product.contains(needle));
        let relative = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let relative = relative.trim_start_matches("./").to_string();
        let is_fake =
            relative.starts_with("crates/fakellm/") || relative.starts_with("crates/fakeidp/");
        if builds && !is_fake && !ALLOWED.iter().any(|(path, _)| *path == relative) {
            offenders.push(relative);
        }
    }
    assert!(
        offenders.is_empty(),
        "HTTP clients built outside the guarded places: {offenders:?}; use agentry_tools::guard::GuardedHttpClient"
    );
}
