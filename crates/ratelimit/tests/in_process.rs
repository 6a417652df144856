//! The in-process backend and the header format.

use std::time::Duration;

use agentry_ratelimit::{Decision, Limiter, Policies, Policy, RouteClass};

#[tokio::test]
async fn burst_of_limit_then_refused_with_one_emission_to_wait() {
    let limiter = Limiter::in_process();
    let policy = Policy::per_minute("general", 60);
    for i in 0..60u32 {
        let d = limiter.check(&policy, "key:a").await;
        assert!(d.allowed, "request {i} of the burst");
        assert_eq!(d.remaining, 59 - i);
    }
    let refused = limiter.check(&policy, "key:a").await;
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    let retry = refused.retry_after.unwrap();
    // period / limit = 1 s, minus the few ms the burst took.
    assert!(retry <= Duration::from_secs(1), "{retry:?}");
    assert!(retry > Duration::from_millis(900), "{retry:?}");
    assert!(
        refused.reset_after >= Duration::from_secs(59),
        "{:?}",
        refused.reset_after
    );
    assert!(
        refused.reset_after <= Duration::from_secs(60),
        "{:?}",
        refused.reset_after
    );
}

#[tokio::test]
async fn keys_are_independent() {
    let limiter = Limiter::in_process();
    let policy = Policy::per_minute("general", 2);
    assert!(limiter.check(&policy, "key:a").await.allowed);
    assert!(limiter.check(&policy, "key:a").await.allowed);
    assert!(!limiter.check(&policy, "key:a").await.allowed);
    let other = limiter.check(&policy, "key:b").await;
    assert!(other.allowed);
    assert_eq!(other.remaining, 1);
}

#[tokio::test]
async fn policies_are_independent_and_clones_share_state() {
    let limiter = Limiter::in_process();
    let general = Policy::per_minute("general", 1);
    let runs = Policy::per_minute("run-start", 1);
    assert!(limiter.check(&general, "user:u").await.allowed);
    assert!(!limiter.clone().check(&general, "user:u").await.allowed);
    assert!(limiter.check(&runs, "user:u").await.allowed);
    // Same name, new quota (reconfigured): fresh state, not the exhausted one.
    let general_more = Policy::per_minute("general", 5);
    assert!(limiter.check(&general_more, "user:u").await.allowed);
}

#[tokio::test]
async fn degenerate_policies() {
    let limiter = Limiter::in_process();
    let closed = Policy::per_minute("closed", 0);
    let d = limiter.check(&closed, "ip:1").await;
    assert!(!d.allowed);
    assert_eq!(d.retry_after, Some(Duration::from_secs(60)));
    let open = Policy::new("open", 10, Duration::ZERO);
    assert!(limiter.check(&open, "ip:1").await.allowed);
}

#[test]
fn headers_when_allowed() {
    let d = Decision {
        allowed: true,
        limit: 600,
        remaining: 598,
        reset_after: Duration::from_millis(200),
        retry_after: None,
        policy_name: "general".into(),
        window: Duration::from_secs(60),
    };
    assert_eq!(
        d.headers(),
        vec![
            ("RateLimit-Policy", "\"general\";q=600;w=60".to_owned()),
            ("RateLimit", "\"general\";r=598;t=1".to_owned()),
        ]
    );
}

#[test]
fn headers_when_refused_round_up_and_never_say_zero() {
    let mut d = Decision {
        allowed: false,
        limit: 60,
        remaining: 0,
        reset_after: Duration::from_millis(59_000),
        retry_after: Some(Duration::from_millis(1_001)),
        policy_name: "run-start".into(),
        window: Duration::from_secs(60),
    };
    assert_eq!(
        d.headers(),
        vec![
            ("RateLimit-Policy", "\"run-start\";q=60;w=60".to_owned()),
            ("RateLimit", "\"run-start\";r=0;t=59".to_owned()),
            ("Retry-After", "2".to_owned()),
        ]
    );
    d.retry_after = Some(Duration::from_micros(10));
    assert_eq!(d.headers()[2], ("Retry-After", "1".to_owned()));
}

#[test]
fn default_policies() {
    let p = Policies::default();
    assert_eq!(
        p.get(RouteClass::General),
        &Policy::per_minute("general", 600)
    );
    assert_eq!(
        p.get(RouteClass::RunStart),
        &Policy::per_minute("run-start", 60)
    );
    assert_eq!(p.get(RouteClass::SignInIp).name, "signin-ip");
    assert_eq!(p.get(RouteClass::SignInAccountIp).name, "signin-account-ip");
}

/// axum handlers need `Send` futures.
#[test]
fn check_future_is_send() {
    fn assert_send<T: Send>(_: T) {}
    let limiter = Limiter::in_process();
    let policy = Policy::per_minute("general", 1);
    assert_send(limiter.check(&policy, "k"));
}
