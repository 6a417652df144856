//! Latency of one `Limiter::check`, in process and against Redis.
//!
//! `cargo run --release -p agentry-ratelimit --example bench [calls] [redis-url]`
//! (defaults: 50000, redis://127.0.0.1:6379). Sequential calls on a current-thread runtime, so
//! each Redis figure is one loopback round trip plus the script.

// A command-line tool: its output is the point.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use agentry_ratelimit::{Limiter, Policy, RedisOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let calls: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(50_000);
    let url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    // 1000 keys, each under a limit it mostly stays within: the common "allowed" path.
    let keys: Vec<String> = (0..1000).map(|i| format!("key:{i:04}")).collect();
    let policy = Policy::per_minute("general", 600);

    let local = Limiter::in_process();
    report("in-process", &measure(&local, &policy, &keys, calls).await);

    let mut options = RedisOptions::new(url);
    options.key_prefix = format!("agentry:rl:bench:{}:", std::process::id());
    let redis = Limiter::redis_with(options)?;
    // Connect and load the script before timing.
    redis.check(&policy, "warm-up").await;
    let samples = measure(&redis, &policy, &keys, calls).await;
    report("redis", &samples);
    if redis.backend_errors() > 0 {
        println!(
            "redis: {} backend errors (failed open)",
            redis.backend_errors()
        );
    }
    Ok(())
}

async fn measure(
    limiter: &Limiter,
    policy: &Policy,
    keys: &[String],
    calls: usize,
) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(calls);
    for i in 0..calls {
        let key = &keys[i % keys.len()];
        let start = Instant::now();
        let decision = limiter.check(policy, key).await;
        samples.push(start.elapsed());
        std::hint::black_box(decision);
    }
    samples.sort_unstable();
    samples
}

fn report(name: &str, sorted: &[Duration]) {
    let at = |q: f64| sorted[((sorted.len() as f64 - 1.0) * q) as usize];
    println!(
        "{name:>10}: {} calls  p50 {:?}  p99 {:?}  max {:?}",
        sorted.len(),
        at(0.50),
        at(0.99),
        at(1.0)
    );
}
