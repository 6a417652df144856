//! Every URL in the SSRF corpus is refused before any connection is made.

use agentry_tools::{GuardConfig, GuardedHttpClient, GuardedRequest};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const BLOCKED: &[&str] = &[
    "http://127.0.0.1/",
    "http://127.1/",
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://0x7f000001/",
    "http://0.0.0.0/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[0:0:0:0:0:ffff:a9fe:a9fe]/",
    "http://[2002:a9fe:a9fe::]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2001:0000:4136:e378:8000:63bf:3fff:fdd2]/",
    "http://10.0.0.1/",
    "http://10.255.255.255/",
    "http://172.16.0.1/",
    "http://172.31.255.254/",
    "http://192.168.0.1/",
    "http://192.168.255.255/",
    "http://100.64.0.1/",
    "http://100.127.255.254/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://100.100.100.200/latest/meta-data/",
    "http://[fc00::1]/",
    "http://[fe80::1]/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://localhost/",
    "HTTP://LOCALHOST./",
    "http://127.0.0.1./",
    "http://0x7f.1/",
    "http://[::]/",
    "http://[::127.0.0.1]/",
    "http://[fd00::1]/",
    "http://[ff02::1]/",
    "http://192.0.2.1/",
    "http://localhost:8080/",
    "https://127.0.0.1/",
    "http://evil@127.0.0.1/",
    "http://user:pass@169.254.169.254/",
];

const BAD_SCHEMES: &[&str] = &[
    "file:///etc/passwd",
    "gopher://127.0.0.1:70/_x",
    "ftp://example.com/",
    "dict://127.0.0.1:11211/stat",
    "data:text/plain,hi",
];

fn client() -> GuardedHttpClient {
    GuardedHttpClient::new(GuardConfig::default()).expect("client builds")
}

#[tokio::test]
async fn every_corpus_url_is_refused() {
    let client = client();
    for url in BLOCKED {
        assert!(
            client.check_url(url).is_err(),
            "check_url let {url} through"
        );
        let started = std::time::Instant::now();
        let err = client.send(GuardedRequest::get(*url)).await.expect_err(url);
        assert_eq!(err.code(), "blocked_address", "{url}: {err}");
        assert!(err.to_string().contains("allow-list"), "{url}: {err}");
        // Refusals happen before any network I/O, so they are immediate.
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{url} took long"
        );
    }
    for url in BAD_SCHEMES {
        let err = client.send(GuardedRequest::get(*url)).await.expect_err(url);
        assert_eq!(err.code(), "invalid_url", "{url}: {err}");
    }
}

#[tokio::test]
async fn post_is_refused_the_same_way() {
    let err = client()
        .send(GuardedRequest::post("http://169.254.169.254/", "x"))
        .await
        .expect_err("metadata");
    assert_eq!(err.code(), "blocked_address");
}

/// A raw listener on 127.0.0.1 that counts accepted connections.
async fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (port, accepted)
}

#[tokio::test]
async fn no_connection_is_attempted_for_loopback_spellings() {
    let (port, accepted) = counting_listener().await;
    let client = client();
    let spellings = [
        format!("http://127.0.0.1:{port}/"),
        format!("http://127.1:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0177.0.0.1:{port}/"),
        format!("http://0x7f000001:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://evil@127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
    ];
    for url in &spellings {
        let err = client
            .send(GuardedRequest::get(url.as_str()))
            .await
            .expect_err(url);
        assert_eq!(err.code(), "blocked_address", "{url}: {err}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 0);

    // Positive control: once allow-listed, the same listener does see a connection, so the
    // zero above means "refused", not "could not have connected".
    let allowed = GuardedHttpClient::new(GuardConfig {
        allow_hosts: vec!["127.0.0.1".into()],
        ..GuardConfig::default()
    })
    .expect("client builds");
    let _ = allowed
        .send(GuardedRequest::get(format!("http://127.0.0.1:{port}/")))
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}
