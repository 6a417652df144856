//! Guard tests that need a substitute DNS: they make invented names resolve to a local server, to
//! show that the resolver's check is what decides, and that the connection goes to exactly the
//! address that was checked.

use super::resolver::Lookup;
use super::*;
use axum::Router;
use axum::http::{HeaderMap as AxumHeaders, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A local server counting the requests it receives.
async fn serve() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let redirect_to = |target: &'static str| {
        move |headers: AxumHeaders| async move {
            // Redirect to an invented name on this same server's port.
            let port = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.rsplit(':').next())
                .unwrap_or("80")
                .to_string();
            (
                StatusCode::FOUND,
                [(header::LOCATION, format!("http://{target}:{port}/hello"))],
            )
                .into_response()
        }
    };
    let app = Router::new()
        .route(
            "/hello",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { "hello" }
            }),
        )
        .route("/to-sneaky", get(redirect_to("sneaky.test")));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, hits)
}

/// A lookup answering from a fixed table (names not in it fail like NXDOMAIN).
fn table(entries: &[(&str, &str)]) -> Lookup {
    let map: HashMap<String, IpAddr> = entries
        .iter()
        .map(|(name, ip)| (name.to_string(), ip.parse().expect("valid IP")))
        .collect();
    let map = Arc::new(map);
    Arc::new(move |host: String| {
        let answer = map.get(&host).copied();
        Box::pin(async move {
            answer
                .map(|ip| vec![ip])
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such host"))
        })
    })
}

fn client(allow: &[&str], lookup: Lookup) -> GuardedHttpClient {
    let config = GuardConfig {
        allow_hosts: allow.iter().map(|s| s.to_string()).collect(),
        ..GuardConfig::default()
    };
    GuardedHttpClient::with_lookup(config, lookup).expect("client builds")
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_at_connect_time() {
    let (addr, hits) = serve().await;
    let client = client(&[], table(&[("sneaky.test", "127.0.0.1")]));
    let url = format!("http://sneaky.test:{}/hello", addr.port());
    // Nothing static is wrong with the URL: only the DNS answer is.
    assert!(client.check_url(&url).is_ok());
    let err = client
        .send(GuardedRequest::get(&url))
        .await
        .expect_err("resolves to loopback");
    assert_eq!(err.code(), "blocked_address", "{err}");
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
    assert!(err.to_string().contains("sneaky.test"), "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    let err = client
        .check_url_resolved(&url)
        .await
        .expect_err("resolved check refuses too");
    assert_eq!(err.code(), "blocked_address");
}

#[tokio::test]
async fn connects_to_exactly_the_address_the_resolver_checked() {
    let (addr, hits) = serve().await;
    // `internal.test` exists only in our table: if anything did a second, real lookup the
    // request would fail. It succeeds, and reaches the address from the table.
    let client = client(&["internal.test"], table(&[("internal.test", "127.0.0.1")]));
    let url = format!("http://internal.test:{}/hello", addr.port());
    let response = client
        .send(GuardedRequest::get(&url))
        .await
        .expect("allowed by name");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"hello");
    assert_eq!(response.remote_addr, Some(addr));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_name_resolving_to_an_allow_listed_address_passes() {
    let (addr, _) = serve().await;
    let client = client(&["127.0.0.0/8"], table(&[("svc.test", "127.0.0.1")]));
    let url = format!("http://svc.test:{}/hello", addr.port());
    let response = client
        .send(GuardedRequest::get(&url))
        .await
        .expect("allowed by IP");
    assert_eq!(response.body, b"hello");
}

#[tokio::test]
async fn a_changed_dns_answer_is_caught_when_connecting() {
    let (addr, hits) = serve().await;
    // The first lookup (the up-front check) sees a public address, later ones see loopback:
    // DNS rebinding. The up-front check passes, but the request is judged on its own lookup.
    let calls = Arc::new(AtomicUsize::new(0));
    let lookup: Lookup = {
        let calls = calls.clone();
        Arc::new(move |_host: String| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                let ip: IpAddr = if n == 0 {
                    [93, 184, 216, 34].into()
                } else {
                    [127, 0, 0, 1].into()
                };
                Ok(vec![ip])
            })
        })
    };
    let client = client(&[], lookup);
    let url = format!("http://rebind.test:{}/hello", addr.port());
    assert!(client.check_url_resolved(&url).await.is_ok());
    let err = client
        .send(GuardedRequest::get(&url))
        .await
        .expect_err("rebound to loopback");
    assert_eq!(err.code(), "blocked_address", "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_redirect_to_a_name_resolving_inside_is_refused_at_that_hop() {
    let (addr, hits) = serve().await;
    let client = client(&["127.0.0.1"], table(&[("sneaky.test", "10.0.0.1")]));
    let url = format!("http://127.0.0.1:{}/to-sneaky", addr.port());
    let err = client
        .send(GuardedRequest::get(&url))
        .await
        .expect_err("redirect target resolves privately");
    assert_eq!(err.code(), "blocked_address", "{err}");
    assert!(err.to_string().contains("10.0.0.1"), "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn unresolvable_names_are_request_failures() {
    let client = client(&[], table(&[]));
    let err = client
        .send(GuardedRequest::get("http://nowhere.test/"))
        .await
        .expect_err("does not resolve");
    assert_eq!(err.code(), "request_failed", "{err}");
}
