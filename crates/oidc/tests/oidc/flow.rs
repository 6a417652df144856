//! The whole code flow against the fake, and each way the fake can get it wrong.

use crate::harness::{
    CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, browser_authorize, env, now, sign_in,
};
use agentry_fakeidp::{Misbehaviour, SigningAlg};
use agentry_oidc::{
    AuthRequest, ClientAuthMethod, ClientCredentials, IdentityClaims, discover, exchange_code,
    fetch_jwks, verify_id_token,
};

#[tokio::test]
async fn happy_path_es256_with_client_secret_basic() {
    let env = env().await;
    env.idp.set_user(
        "user-42",
        Some("ada@example.com"),
        true,
        Some("Ada Lovelace"),
    );
    let (metadata, request, tokens) = sign_in(&env).await.unwrap();
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.expires_in, Some(300));

    let jwks = fetch_jwks(&env.http, &metadata).await.unwrap();
    let claims = verify_id_token(
        &jwks,
        &tokens.id_token,
        &metadata.issuer,
        CLIENT_ID,
        &request.nonce,
        now(),
    )
    .unwrap();
    assert_eq!(
        claims,
        IdentityClaims {
            issuer: env.idp.issuer(),
            subject: "user-42".into(),
            email: Some("ada@example.com".into()),
            email_verified: true,
            name: Some("Ada Lovelace".into()),
            preferred_username: None,
        }
    );

    // The fake saw HTTP Basic and no secret in the body.
    let token_request = env
        .idp
        .requests()
        .into_iter()
        .find(|r| r.path == "/token")
        .unwrap();
    assert!(token_request.authorization.unwrap().starts_with("Basic "));
    assert!(!token_request.form.iter().any(|(k, _)| k == "client_secret"));
}

#[tokio::test]
async fn happy_path_rs256_with_client_secret_post() {
    let mut env = env().await;
    env.idp.set_signing_alg(SigningAlg::Rs256);
    env.idp.set_user("user-7", None, false, None);
    env.client = ClientCredentials::new(CLIENT_ID, CLIENT_SECRET)
        .with_auth_method(ClientAuthMethod::ClientSecretPost);
    let (metadata, request, tokens) = sign_in(&env).await.unwrap();
    let header = tokens.id_token.split('.').next().unwrap().to_string();
    assert!(header.starts_with("eyJhbGciOiJSUzI1NiI"), "{header}"); // {"alg":"RS256"
    let jwks = fetch_jwks(&env.http, &metadata).await.unwrap();
    let claims = verify_id_token(
        &jwks,
        &tokens.id_token,
        &metadata.issuer,
        CLIENT_ID,
        &request.nonce,
        now(),
    )
    .unwrap();
    assert_eq!(claims.subject, "user-7");
    assert_eq!(claims.email, None);
    assert!(!claims.email_verified);
    let token_request = env
        .idp
        .requests()
        .into_iter()
        .find(|r| r.path == "/token")
        .unwrap();
    assert!(token_request.authorization.is_none());
    assert!(
        token_request
            .form
            .iter()
            .any(|(k, v)| k == "client_secret" && v == CLIENT_SECRET)
    );
}

#[tokio::test]
async fn every_misbehaviour_is_rejected_with_its_code() {
    let env = env().await;
    let cases = [
        (Misbehaviour::WrongNonce, "oidc_nonce_mismatch", "nonce"),
        (Misbehaviour::WrongAudience, "oidc_invalid_id_token", "aud"),
        (
            Misbehaviour::WrongIssuer,
            "oidc_invalid_id_token",
            "issued by",
        ),
        (Misbehaviour::Expired, "oidc_invalid_id_token", "expired"),
        (
            Misbehaviour::BadSignature,
            "oidc_invalid_id_token",
            "signature",
        ),
        (Misbehaviour::AlgNone, "oidc_invalid_id_token", "alg none"),
    ];
    for (misbehaviour, code, reason) in cases {
        env.idp.next_token(misbehaviour);
        let (metadata, request, tokens) = sign_in(&env).await.unwrap();
        let jwks = fetch_jwks(&env.http, &metadata).await.unwrap();
        let err = verify_id_token(
            &jwks,
            &tokens.id_token,
            &metadata.issuer,
            CLIENT_ID,
            &request.nonce,
            now(),
        )
        .expect_err(&format!("{misbehaviour:?} accepted"));
        assert_eq!(err.code(), code, "{misbehaviour:?}: {err}");
        assert!(err.to_string().contains(reason), "{misbehaviour:?}: {err}");
    }
}

/// Redirect to the fake, then exchange the code with something other than the right verifier.
async fn exchange_with(
    env: &crate::harness::Env,
    verifier: impl Fn(&AuthRequest) -> String,
    client: &ClientCredentials,
) -> agentry_oidc::OidcError {
    let metadata = discover(&env.http, &env.idp.issuer()).await.unwrap();
    let request = AuthRequest::new(&metadata, CLIENT_ID, REDIRECT_URI, &["openid"]).unwrap();
    let (code, _) = browser_authorize(&request).await;
    exchange_code(
        &env.http,
        &metadata,
        client,
        REDIRECT_URI,
        &code,
        &verifier(&request),
    )
    .await
    .unwrap_err()
}

#[tokio::test]
async fn the_fake_checks_the_pkce_verifier() {
    let env = env().await;
    let other = AuthRequest::new(
        &discover(&env.http, &env.idp.issuer()).await.unwrap(),
        CLIENT_ID,
        REDIRECT_URI,
        &[],
    )
    .unwrap();
    let err = exchange_with(&env, |_| other.code_verifier.clone(), &env.client).await;
    assert_eq!(err.code(), "oidc_token_exchange_failed");
    assert!(err.to_string().contains("invalid_grant"), "{err}");
    assert!(err.to_string().contains("PKCE"), "{err}");
}

#[tokio::test]
async fn a_wrong_client_secret_is_refused_and_not_echoed() {
    let env = env().await;
    let wrong = ClientCredentials::new(CLIENT_ID, "wrong-secret-value");
    let err = exchange_with(&env, |r| r.code_verifier.clone(), &wrong).await;
    assert_eq!(err.code(), "oidc_token_exchange_failed");
    let text = format!("{err} {err:?}");
    assert!(text.contains("invalid_client"), "{text}");
    assert!(!text.contains("wrong-secret-value"), "{text}");
}

#[tokio::test]
async fn a_code_works_once() {
    let env = env().await;
    let metadata = discover(&env.http, &env.idp.issuer()).await.unwrap();
    let request = AuthRequest::new(&metadata, CLIENT_ID, REDIRECT_URI, &["openid"]).unwrap();
    let (code, _) = browser_authorize(&request).await;
    let exchange = || {
        exchange_code(
            &env.http,
            &metadata,
            &env.client,
            REDIRECT_URI,
            &code,
            &request.code_verifier,
        )
    };
    exchange().await.unwrap();
    let err = exchange().await.unwrap_err();
    assert_eq!(err.code(), "oidc_token_exchange_failed");
    assert!(!err.to_string().contains(&code), "{err}");
}
