//! What authentication + authorization + rate limiting add to a request: the guard of an
//! `/api/v1` route, timed on its own (no handler, no network), with an API key and with a
//! session cookie, with the in-process limiter and with Redis on loopback.
//!
//! `cargo bench -p agentry-http --bench auth` (Redis at 127.0.0.1:6379 is used when up).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use agentry_core::ids::UserId;
use agentry_engine::secrets::Secrets;
use agentry_engine::service::api_keys::{self, KeySpec};
use agentry_engine::service::{account, auth};
use agentry_engine::{Platform, PlatformParts};
use agentry_http::AppState;
use agentry_http::guard::{WsGuard, perm};
use agentry_store::orgs::{self, DEFAULT_ORG};
use axum::extract::FromRequestParts;
use axum::http::Request;
use std::sync::Arc;
use std::time::Instant;

const N: usize = 20_000;

async fn time_guard(state: &AppState, header: (&str, String)) -> (f64, f64) {
    let mut samples = Vec::with_capacity(N);
    for _ in 0..N {
        let (mut parts, _) = Request::builder()
            .uri("/api/v1/agents")
            .header(header.0, &header.1)
            .body(())
            .unwrap()
            .into_parts();
        let start = Instant::now();
        let guard = WsGuard::<perm::AgentsRead>::from_request_parts(&mut parts, state).await;
        samples.push(start.elapsed().as_secs_f64() * 1e6);
        assert!(guard.is_ok());
    }
    samples.sort_by(f64::total_cmp);
    (samples[N / 2], samples[N * 99 / 100])
}

fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = agentry_store::Db::connect(&format!("sqlite://{}/b.db", dir.path().display()), 4)
            .await
            .unwrap();
        orgs::ensure_default(&db).await.unwrap();
        let platform = Platform::new(PlatformParts {
            db,
            secrets: Secrets::from_key([1; 32]),
            reload_keys: None,
            egress: Default::default(),
            sso_allow_http: false,
            mailer: None,
            tools: agentry_tools::ToolRegistry::builtin(Default::default()),
            config: Default::default(),
            http: reqwest::Client::new(),
        })
        .unwrap();
        let user = account::create_user(
            &platform,
            "b@example.com",
            "B",
            Some("bench passphrase 1"),
            Some((DEFAULT_ORG, None, "owner")),
        )
        .await
        .unwrap();
        let (_, key) = api_keys::create(
            &platform,
            orgs::default_scope().org(),
            Some(agentry_core::authz::Role::Owner),
            KeySpec {
                name: "bench",
                role: agentry_core::authz::Role::Owner,
                workspace: None,
                expires_at: None,
                created_by: Some(UserId(user.0)),
            },
        )
        .await
        .unwrap();
        let row = agentry_store::users::get(&platform.db, user)
            .await
            .unwrap()
            .unwrap();
        let session = auth::issue_session(&platform, &row, None, false, &Default::default())
            .await
            .unwrap();
        // Generous but real: the limiter does its full work on every request.
        let policies = agentry_ratelimit::Policies {
            general: agentry_ratelimit::Policy::new(
                "general",
                10_000_000,
                std::time::Duration::from_secs(3600),
            ),
            ..Default::default()
        };
        let mut state = AppState::new(platform.clone(), agentry_http::install_metrics());
        state.policies = Arc::new(policies);
        let bearer = ("authorization", format!("Bearer {key}"));
        let cookie = ("cookie", format!("agentry_session={}", session.token));
        // What the foundation did per request: one key lookup.
        let mut lookup = Vec::with_capacity(N);
        for _ in 0..N {
            let start = Instant::now();
            let p = auth::authenticate_key(&platform, &key).await.unwrap();
            lookup.push(start.elapsed().as_secs_f64() * 1e6);
            assert!(p.is_some());
        }
        lookup.sort_by(f64::total_cmp);
        println!(
            "key lookup alone (foundation)      : p50 {:7.1} µs  p99 {:7.1} µs",
            lookup[N / 2],
            lookup[N * 99 / 100]
        );
        // Warm up caches and connections.
        time_guard(&state, bearer.clone()).await;
        let (p50, p99) = time_guard(&state, bearer.clone()).await;
        println!("in-process limiter, bearer key     : p50 {p50:7.1} µs  p99 {p99:7.1} µs");
        let (p50, p99) = time_guard(&state, cookie.clone()).await;
        println!("in-process limiter, session cookie : p50 {p50:7.1} µs  p99 {p99:7.1} µs");
        if std::net::TcpStream::connect("127.0.0.1:6379").is_ok() {
            state.limiter = agentry_ratelimit::Limiter::redis("redis://127.0.0.1:6379").unwrap();
            time_guard(&state, bearer.clone()).await;
            let (p50, p99) = time_guard(&state, bearer).await;
            println!("Redis limiter,      bearer key     : p50 {p50:7.1} µs  p99 {p99:7.1} µs");
            let (p50, p99) = time_guard(&state, cookie).await;
            println!("Redis limiter,      session cookie : p50 {p50:7.1} µs  p99 {p99:7.1} µs");
        } else {
            println!("Redis not running on 127.0.0.1:6379: Redis rows skipped");
        }
    });
}
