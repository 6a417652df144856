//! The Redis backend against the local Redis (127.0.0.1:6379), and its fail-open path.

// Tests may unwrap; the skip notice must be loud.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentry_ratelimit::{Limiter, Policy, RedisOptions};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

const URL: &str = "redis://127.0.0.1:6379";

fn redis_up() -> bool {
    let up = TcpStream::connect_timeout(&"127.0.0.1:6379".parse().unwrap(), Duration::from_secs(1))
        .is_ok();
    if !up {
        assert!(
            std::env::var_os("AGENTRY_TEST_REQUIRE_REDIS").is_none(),
            "Redis is required (AGENTRY_TEST_REQUIRE_REDIS) but not reachable at 127.0.0.1:6379"
        );
        eprintln!(
            "\n!!! SKIPPED: Redis is not reachable at 127.0.0.1:6379; Redis tests did not run !!!\n"
        );
    }
    up
}

/// A prefix of its own per test run, so runs (and tests) never see each other's keys.
fn options(test: &str) -> RedisOptions {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut o = RedisOptions::new(URL);
    o.key_prefix = format!("agentry:rl:test:{test}:{}:{nanos}:", std::process::id());
    // These tests are about exactness, not latency: a slow CI machine must not fail open.
    o.timeout = Duration::from_secs(2);
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_exact_limit() {
    if !redis_up() {
        return;
    }
    let opts = options("shared");
    // Two limiters with their own connections stand in for two server replicas.
    let a = Limiter::redis_with(opts.clone()).unwrap();
    let b = Limiter::redis_with(opts).unwrap();
    let policy = Policy::per_minute("general", 100);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let limiter = if i % 2 == 0 { a.clone() } else { b.clone() };
        let policy = policy.clone();
        tasks.push(tokio::spawn(async move {
            let mut allowed = 0u32;
            for _ in 0..25 {
                if limiter.check(&policy, "key:shared").await.allowed {
                    allowed += 1;
                }
            }
            allowed
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        allowed += t.await.unwrap();
    }
    assert_eq!(a.backend_errors() + b.backend_errors(), 0);
    // 400 requests in well under one emission interval (600 ms): exactly the burst gets through.
    assert_eq!(allowed, 100);

    let refused = a.check(&policy, "key:shared").await;
    assert!(!refused.allowed);
    let retry = refused.retry_after.unwrap();
    assert!(
        retry <= Duration::from_millis(600) && retry > Duration::ZERO,
        "{retry:?}"
    );
    assert!(
        b.check(&policy, "key:other").await.allowed,
        "keys are independent"
    );
}

#[tokio::test]
async fn remaining_and_reset_follow_gcra() {
    if !redis_up() {
        return;
    }
    let limiter = Limiter::redis_with(options("remaining")).unwrap();
    let policy = Policy::per_minute("run-start", 3);
    let first = limiter.check(&policy, "user:u").await;
    assert!(first.allowed);
    assert_eq!(first.remaining, 2);
    assert!(
        first.reset_after <= Duration::from_secs(20) && first.reset_after > Duration::from_secs(19)
    );
    assert_eq!(limiter.check(&policy, "user:u").await.remaining, 1);
    assert_eq!(limiter.check(&policy, "user:u").await.remaining, 0);
    let refused = limiter.check(&policy, "user:u").await;
    assert!(!refused.allowed);
    assert!(refused.retry_after.unwrap() > Duration::from_secs(19));
    assert!(refused.reset_after > Duration::from_secs(59));
    // Different policy, same key: separate bucket.
    assert!(
        limiter
            .check(&Policy::per_minute("general", 1), "user:u")
            .await
            .allowed
    );
}

#[tokio::test]
async fn key_expires_when_bucket_is_full_again() {
    if !redis_up() {
        return;
    }
    let opts = options("ttl");
    let prefix = opts.key_prefix.clone();
    let limiter = Limiter::redis_with(opts).unwrap();
    let policy = Policy::new("short", 2, Duration::from_millis(200));
    assert!(limiter.check(&policy, "ip:1").await.allowed);
    assert!(limiter.check(&policy, "ip:1").await.allowed);
    assert!(!limiter.check(&policy, "ip:1").await.allowed);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(limiter.check(&policy, "ip:1").await.allowed);
    // The stored key is `<prefix><policy>:<key>` and carries a TTL of at most the period.
    let out = std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "pttl", &format!("{prefix}short:ip:1")])
        .output();
    if let Ok(out) = out {
        let ttl: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        assert!(ttl > 0 && ttl <= 200, "pttl {ttl}");
    }
}

#[tokio::test]
async fn fails_open_when_redis_is_unreachable() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // A current-thread runtime polls everything on this thread, so a thread-local recorder sees
    // every metric this test emits and none from the tests running beside it.
    let _guard = metrics::set_default_local_recorder(&recorder);

    // Nothing listens on port 1. Construction is lazy, so it succeeds: a server must start even
    // when Redis is down.
    let limiter = Limiter::redis("redis://127.0.0.1:1").unwrap();
    let policy = Policy::per_minute("general", 1);
    for _ in 0..3 {
        let d = limiter.check(&policy, "key:k").await;
        assert!(d.allowed, "fails open");
        assert_eq!(d.retry_after, None);
    }
    // The first failure starts a cool-down during which Redis is not asked at all.
    assert_eq!(limiter.backend_errors(), 1);

    let counters: Vec<(String, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| match value {
            DebugValue::Counter(n) => Some((key.key().name().to_owned(), n)),
            _ => None,
        })
        .collect();
    assert!(
        counters.contains(&("agentry_ratelimit_backend_errors_total".to_owned(), 1)),
        "{counters:?}"
    );
    assert!(
        counters.contains(&("agentry_ratelimit_decisions_total".to_owned(), 3)),
        "{counters:?}"
    );
}

#[tokio::test]
async fn bad_url_is_an_error() {
    assert!(Limiter::redis("not a url").is_err());
}

#[test]
fn redis_outside_a_runtime_is_an_error_not_a_panic() {
    assert!(Limiter::redis(URL).is_err());
}
