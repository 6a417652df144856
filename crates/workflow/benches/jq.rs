//! `cargo bench -p agentry-workflow --bench jq`: what one `transform` node's jq evaluation
//! costs with the per-thread compiled-program cache (every call after the first) against
//! compiling each time (the first call of each distinct program).

use agentry_workflow::run_jq;
use serde_json::json;
use std::time::Instant;

fn main() {
    let input = json!({"x": 41, "input": {"qty": 3, "unit": 50}});
    let n = 2_000;
    // Distinct programs: every call compiles (the cost before the cache).
    let started = Instant::now();
    for i in 0..n {
        let program = format!(".x + {i}");
        let _ = run_jq(&program, &input);
    }
    let cold = started.elapsed() / n;
    // One program: every call after the first is a cache hit.
    let _ = run_jq(".x + 1", &input);
    let started = Instant::now();
    for _ in 0..n {
        let _ = run_jq(".x + 1", &input);
    }
    let warm = started.elapsed() / n;
    let mut out = String::new();
    out.push_str(&format!(
        "jq per call: compile + run {:.1} µs, cached run {:.1} µs\n",
        cold.as_secs_f64() * 1e6,
        warm.as_secs_f64() * 1e6
    ));
    use std::io::Write;
    let _ = std::io::stdout().write_all(out.as_bytes());
}
