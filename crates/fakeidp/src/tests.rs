//! The fake's own checks, over real HTTP. The full client flow is tested in `agentry-oidc`.

use crate::{FakeIdpHandle, start};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

const CLIENT: &str = "client-1";
// Characters that must be form-encoded inside HTTP Basic (RFC 6749 §2.3.1).
const SECRET: &str = "s3cr:t +&%";
const REDIRECT: &str = "http://app.example/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

async fn fake() -> (FakeIdpHandle, reqwest::Client) {
    let idp = start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    idp.register_client(CLIENT, SECRET, REDIRECT);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    (idp, http)
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The `Location` of `/authorize` for `extra` query parameters on top of a valid request.
async fn authorize(idp: &FakeIdpHandle, http: &reqwest::Client, extra: &[(&str, &str)]) -> String {
    let challenge = challenge(VERIFIER);
    let mut query = vec![
        ("client_id", CLIENT),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid email"),
        ("state", "st"),
        ("nonce", "n"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    query.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    query.extend_from_slice(extra);
    let response = http
        .get(format!("{}/authorize", idp.issuer()))
        .query(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    response.headers()["location"].to_str().unwrap().to_string()
}

fn param(location: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(location).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

async fn exchange(
    idp: &FakeIdpHandle,
    http: &reqwest::Client,
    auth: Option<String>,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut request = http
        .post(format!("{}/token", idp.issuer()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

#[tokio::test]
async fn unregistered_redirect_uri_is_refused_without_redirecting() {
    let (idp, http) = fake().await;
    let response = http
        .get(format!("{}/authorize", idp.issuer()))
        .query(&[
            ("client_id", CLIENT),
            ("redirect_uri", "http://evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn missing_pkce_is_reported_on_the_redirect() {
    let (idp, http) = fake().await;
    let location = authorize(&idp, &http, &[("code_challenge_method", "plain")]).await;
    assert_eq!(
        param(&location, "error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(param(&location, "state").as_deref(), Some("st"));
    assert_eq!(param(&location, "code"), None);
}

#[tokio::test]
async fn basic_auth_with_encoded_secret_and_single_use_code() {
    let (idp, http) = fake().await;
    let location = authorize(&idp, &http, &[]).await;
    let code = param(&location, "code").unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let (status, body) = exchange(&idp, &http, Some(basic(CLIENT, SECRET)), &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["id_token"].as_str().unwrap().split('.').count() == 3);

    let (status, body) = exchange(&idp, &http, Some(basic(CLIENT, SECRET)), &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn client_authentication_is_checked() {
    let (idp, http) = fake().await;
    let code = param(&authorize(&idp, &http, &[]).await, "code").unwrap();
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let (status, body) = exchange(&idp, &http, Some(basic(CLIENT, "wrong")), &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );

    form.extend([("client_id", CLIENT), ("client_secret", SECRET)]);
    let (status, body) = exchange(&idp, &http, Some(basic(CLIENT, SECRET)), &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );

    // client_secret_post alone works (the code was not consumed by the refused attempts above,
    // because client authentication is checked first).
    let (status, body) = exchange(&idp, &http, None, &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let logged = idp.requests();
    assert_eq!(logged.last().unwrap().path, "/token");
}
