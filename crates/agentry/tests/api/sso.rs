//! Signing in through OpenID Connect against a fake identity provider started by the test:
//! PKCE, state and nonce, single-use state, and no account takeover through another org's
//! provider.

use crate::harness::{ADMIN_EMAIL, SessionClient, TestApp};
use serde_json::json;

struct Flow {
    client: reqwest::Client,
    /// The sign-in state cookie Agentry set at the start (what a browser would keep).
    state_cookie: std::sync::Mutex<Option<String>>,
}

impl Flow {
    fn new() -> Flow {
        Flow {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            state_cookie: std::sync::Mutex::new(None),
        }
    }

    /// Start at Agentry, pass the IdP, return the callback URL the IdP redirected to.
    async fn to_callback(&self, app: &TestApp, slug: &str) -> String {
        let start = self
            .client
            .get(app.url(&format!("/api/v1/auth/sso/{slug}/start")))
            .send()
            .await
            .unwrap();
        assert_eq!(start.status().as_u16(), 303);
        let cookie = start.headers()["set-cookie"].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_string();
        *self.state_cookie.lock().unwrap() = Some(cookie);
        let authorize = start.headers()["location"].to_str().unwrap().to_string();
        assert!(authorize.contains("code_challenge_method=S256") && authorize.contains("nonce="));
        let idp = self.client.get(&authorize).send().await.unwrap();
        assert_eq!(idp.status().as_u16(), 302, "{}", idp.text().await.unwrap());
        idp.headers()["location"].to_str().unwrap().to_string()
    }

    async fn finish(&self, callback: &str) -> (u16, Option<String>, String) {
        let mut req = self.client.get(callback);
        if let Some(c) = self.state_cookie.lock().unwrap().clone() {
            req = req.header("cookie", c);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let cookie = r
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
        (status, cookie, r.text().await.unwrap())
    }
}

async fn configure(
    app: &TestApp,
    idp: &agentry_fakeidp::FakeIdpHandle,
    slug: &str,
    auto: Option<&str>,
) {
    let redirect = format!("{}/api/v1/auth/sso/callback", app.server.url);
    idp.register_client(&format!("client-{slug}"), "idp-client-secret", &redirect);
    let r = app
        .post(
            "/api/v1/sso-providers",
            json!({"slug": slug, "display_name": "Fake IdP", "discovery_url": idp.issuer(),
                "client_id": format!("client-{slug}"), "client_secret": "idp-client-secret", "auto_join_role": auto}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["redirect_uri"], redirect.as_str());
    assert!(!r.body.to_string().contains("idp-client-secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_sign_in_through_an_openid_connect_provider() {
    let app = TestApp::spawn().await;
    let idp = agentry_fakeidp::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    configure(&app, &idp, "corp", Some("member")).await;
    let listed = SessionClient::new(&app).get("/api/v1/auth/sso").await;
    assert_eq!(listed.body[0]["slug"], "corp");

    // A new person the IdP vouches for joins with the configured role.
    idp.set_user("sub-1", Some("Jane@Corp.example"), true, Some("Jane"));
    let flow = Flow::new();
    let callback = flow.to_callback(&app, "corp").await;
    let (status, cookie, body) = flow.finish(&callback).await;
    assert_eq!(status, 303, "{body}");
    let mut s = SessionClient::new(&app);
    s.cookie = cookie;
    let me = s.get("/api/v1/me").await;
    assert_eq!(me.status, 200, "{:?}", me.body);
    assert_eq!(me.body["email"], "jane@corp.example");
    assert_eq!(me.body["org_role"], "member");
    // The token request carried the PKCE verifier and the client's credentials.
    let token_req = idp
        .requests()
        .into_iter()
        .find(|r| r.path == "/token")
        .unwrap();
    assert!(token_req.form.iter().any(|(k, _)| k == "code_verifier"));
    // The same state cannot be used twice.
    let (status, cookie, _) = flow.finish(&callback).await;
    assert_eq!(status, 400);
    assert!(cookie.is_none());
    // Next time the identity (issuer, subject) finds the same account.
    let callback = flow.to_callback(&app, "corp").await;
    let (status, cookie, _) = flow.finish(&callback).await;
    assert_eq!(status, 303);
    let mut s2 = SessionClient::new(&app);
    s2.cookie = cookie;
    assert_eq!(s2.get("/api/v1/me").await.body["id"], me.body["id"]);

    // Login CSRF: a callback URL from a sign-in started in another browser is refused.
    let callback = flow.to_callback(&app, "corp").await;
    let victim = Flow::new();
    let (status, cookie, _) = victim.finish(&callback).await;
    assert_eq!(status, 400);
    assert!(cookie.is_none());

    // A forged or replayed id_token is refused: wrong nonce, audience, signature, alg none.
    for misbehave in [
        agentry_fakeidp::FakeIdpHandle::next_token_wrong_nonce
            as fn(&agentry_fakeidp::FakeIdpHandle),
        agentry_fakeidp::FakeIdpHandle::next_token_wrong_audience,
        agentry_fakeidp::FakeIdpHandle::next_token_bad_signature,
        agentry_fakeidp::FakeIdpHandle::next_token_alg_none,
        agentry_fakeidp::FakeIdpHandle::next_token_expired,
    ] {
        misbehave(&idp);
        let callback = flow.to_callback(&app, "corp").await;
        let (status, cookie, body) = flow.finish(&callback).await;
        assert_eq!(status, 502, "{body}");
        assert!(body.contains("sso_failed"), "{body}");
        assert!(cookie.is_none());
    }
    // An email the IdP does not vouch for is not enough.
    idp.set_user("sub-2", Some("x@corp.example"), false, None);
    let callback = flow.to_callback(&app, "corp").await;
    assert_eq!(flow.finish(&callback).await.0, 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_orgs_provider_cannot_take_over_an_account() {
    let app = TestApp::spawn().await;
    let idp = agentry_fakeidp::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    // Org B configures a provider that claims to vouch for org A's owner.
    let other = app.as_token(&app.other_org_key().await);
    configure(&other, &idp, "evil", Some("member")).await;
    idp.set_user("attacker", Some(ADMIN_EMAIL), true, None);
    let flow = Flow::new();
    let callback = flow.to_callback(&app, "evil").await;
    let (status, cookie, body) = flow.finish(&callback).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        cookie.is_none(),
        "a session was issued for someone else's account"
    );
    // Without auto-join, strangers are turned away too.
    configure(&app, &idp, "closed", None).await;
    idp.set_user("stranger", Some("stranger@example.com"), true, None);
    let callback = flow.to_callback(&app, "closed").await;
    assert_eq!(flow.finish(&callback).await.0, 502);
}
