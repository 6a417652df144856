//! Discovery refuses what it must: inside addresses, plain http, and documents of another issuer.

use crate::harness::{env, test_http};
use agentry_oidc::{OidcHttp, discover};
use agentry_tools::GuardConfig;

#[tokio::test]
async fn cloud_metadata_address_is_blocked() {
    for (http, url) in [
        (
            OidcHttp::new(GuardConfig::default()).unwrap(),
            "https://169.254.169.254/latest",
        ),
        (test_http(&[]), "http://169.254.169.254/"),
    ] {
        let err = discover(&http, url).await.unwrap_err();
        assert_eq!(err.code(), "oidc_blocked_url", "{url}: {err}");
        assert!(err.to_string().contains("169.254.169.254"), "{err}");
    }
}

#[tokio::test]
async fn loopback_needs_the_allow_list() {
    let env = env().await;
    let err = discover(&test_http(&[]), &env.idp.issuer())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "oidc_blocked_url", "{err}");
    assert!(
        env.idp.requests().is_empty(),
        "the fake must not have been contacted"
    );
}

#[tokio::test]
async fn plain_http_needs_an_explicit_opt_in() {
    let env = env().await;
    let config = GuardConfig {
        allow_hosts: vec!["127.0.0.1".into()],
        ..GuardConfig::default()
    };
    let http = OidcHttp::new(config).unwrap();
    let err = discover(&http, &env.idp.issuer()).await.unwrap_err();
    assert_eq!(err.code(), "oidc_insecure_url", "{err}");
}

#[tokio::test]
async fn issuer_or_document_url_both_work() {
    let env = env().await;
    let by_issuer = discover(&env.http, &env.idp.issuer()).await.unwrap();
    let by_document = discover(&env.http, &env.idp.discovery_url()).await.unwrap();
    assert_eq!(by_issuer, by_document);
    assert_eq!(by_issuer.issuer, env.idp.issuer());
    assert_eq!(by_issuer.jwks_uri, format!("{}/jwks", env.idp.issuer()));
}

#[tokio::test]
async fn a_document_for_another_issuer_is_refused() {
    let env = env().await;
    env.idp
        .set_discovery_issuer("https://accounts.evil.example");
    let err = discover(&env.http, &env.idp.issuer()).await.unwrap_err();
    assert_eq!(err.code(), "oidc_issuer_mismatch", "{err}");
}

#[tokio::test]
async fn discovered_endpoints_pass_the_guard_too() {
    let env = env().await;
    env.idp
        .override_discovery("jwks_uri", "http://169.254.169.254/keys".into());
    let err = discover(&env.http, &env.idp.issuer()).await.unwrap_err();
    assert_eq!(err.code(), "oidc_blocked_url", "{err}");

    env.idp.clear_discovery_overrides();
    env.idp
        .override_discovery("token_endpoint", "ftp://idp.example/token".into());
    let err = discover(&env.http, &env.idp.issuer()).await.unwrap_err();
    assert_eq!(err.code(), "oidc_invalid_url", "{err}");
}
