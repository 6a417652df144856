//! A fake provider, a guarded client allowed to reach it, and the browser half of a sign-in.

use agentry_fakeidp::FakeIdpHandle;
use agentry_oidc::{
    AuthRequest, ClientCredentials, OidcError, OidcHttp, ProviderMetadata, TokenResponse, discover,
    exchange_code,
};
use agentry_tools::GuardConfig;
use std::time::{SystemTime, UNIX_EPOCH};

pub const CLIENT_ID: &str = "agentry-test";
pub const CLIENT_SECRET: &str = "s3cret:with+special&chars";
pub const REDIRECT_URI: &str = "https://agentry.example/auth/callback";

pub struct Env {
    pub idp: FakeIdpHandle,
    pub http: OidcHttp,
    pub client: ClientCredentials,
}

pub async fn env() -> Env {
    let idp = agentry_fakeidp::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    idp.register_client(CLIENT_ID, CLIENT_SECRET, REDIRECT_URI);
    Env {
        idp,
        http: test_http(&["127.0.0.1"]),
        client: ClientCredentials::new(CLIENT_ID, CLIENT_SECRET),
    }
}

/// A client that may reach `allow_hosts` over plain http, as tests against 127.0.0.1 need.
pub fn test_http(allow_hosts: &[&str]) -> OidcHttp {
    let config = GuardConfig {
        allow_hosts: allow_hosts.iter().map(|h| h.to_string()).collect(),
        ..GuardConfig::default()
    };
    OidcHttp::new(config).unwrap().allow_insecure_http(true)
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// What the user's browser does: open the authorize URL and come back with the redirect.
/// Returns `(code, state)` from the `Location` of the fake's 302.
pub async fn browser_authorize(request: &AuthRequest) -> (String, String) {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = browser.get(request.authorize_url()).send().await.unwrap();
    assert_eq!(response.status(), 302, "{:?}", response.text().await);
    let location = response.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    let url = url::Url::parse(location).unwrap();
    let get = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no {name} in {location}"))
    };
    (get("code"), get("state"))
}

/// Discovery → authorization request → browser → code exchange. The returned request holds
/// the nonce the id_token must carry.
pub async fn sign_in(
    env: &Env,
) -> Result<(ProviderMetadata, AuthRequest, TokenResponse), OidcError> {
    let metadata = discover(&env.http, &env.idp.issuer()).await?;
    let request = AuthRequest::new(&metadata, CLIENT_ID, REDIRECT_URI, &["openid", "email"])?;
    let (code, state) = browser_authorize(&request).await;
    assert_eq!(state, request.state);
    let tokens = exchange_code(
        &env.http,
        &metadata,
        &env.client,
        REDIRECT_URI,
        &code,
        &request.code_verifier,
    )
    .await?;
    Ok((metadata, request, tokens))
}
