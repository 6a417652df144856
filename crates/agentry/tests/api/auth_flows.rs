//! Sign-in, sessions, two-factor, invitations, password resets, disabling people, throttling
//! and the operator's commands, driven over HTTP against the real server.

use crate::harness::{ADMIN_EMAIL, ADMIN_PASSWORD, SessionClient, TestApp};
use serde_json::json;

fn cookie_attrs(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .map(|p| p.trim().to_ascii_lowercase())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_use_host_cookies_rotate_on_sign_in_and_end_everywhere() {
    let app = TestApp::spawn_with(&[("AGENTRY_PUBLIC_URL", "https://agentry.example.com")]).await;
    // A fixed cookie planted by an attacker before sign-in is never adopted.
    let mut a = SessionClient::new(&app);
    a.cookie = Some("__Host-agentry_session=attacker-chosen-value".into());
    let r = a.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let set = a.set_cookie.clone().expect("set-cookie");
    let attrs = cookie_attrs(&set);
    let (name, value) = set.split(';').next().unwrap().split_once('=').unwrap();
    assert_eq!(name, "__Host-agentry_session");
    assert_ne!(value, "attacker-chosen-value");
    assert!(
        value.len() >= 32 && value.chars().all(|c| c.is_ascii_hexdigit()),
        "{value}"
    );
    for required in ["secure", "httponly", "samesite=lax", "path=/"] {
        assert!(
            attrs.contains(&required.to_string()),
            "{set} lacks {required}"
        );
    }
    assert!(
        !attrs.iter().any(|a| a.starts_with("domain")),
        "__Host- cookies have no Domain"
    );
    assert_eq!(a.get("/api/v1/me").await.status, 200);

    // A second sign-in gets a new id; both sessions are listed and revocable.
    let mut b = SessionClient::new(&app);
    assert_eq!(b.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await.status, 200);
    assert_ne!(a.cookie, b.cookie);
    let list = b.get("/api/v1/me/sessions").await;
    let sessions = list.body["data"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2, "{:?}", list.body);
    let other = sessions.iter().find(|s| s["current"] == false).unwrap();
    let r = b
        .delete(&format!(
            "/api/v1/me/sessions/{}",
            other["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        a.get("/api/v1/me").await.status,
        401,
        "revoked session still works"
    );

    // Sign out everywhere ends every session, this one too.
    let mut c = SessionClient::new(&app);
    assert_eq!(c.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await.status, 200);
    assert_eq!(
        b.post("/api/v1/me/sign-out-everywhere", json!({}))
            .await
            .status,
        204
    );
    assert_eq!(c.get("/api/v1/me").await.status, 401);
    let mut replay = SessionClient::new(&app);
    replay.cookie = b.cookie.clone().or(a.cookie.clone());
    assert_eq!(
        replay.get("/api/v1/me").await.status,
        401,
        "a logged-out session replayed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_uses_a_cookie_browsers_accept_without_tls() {
    let app = TestApp::spawn().await;
    let s = app.owner_session().await;
    let set = s.set_cookie.clone().unwrap();
    assert!(set.starts_with("agentry_session="), "{set}");
    let attrs = cookie_attrs(&set);
    assert!(attrs.contains(&"httponly".to_string()) && attrs.contains(&"samesite=lax".to_string()));
    assert!(!attrs.contains(&"secure".to_string()));
    // Wrong passwords and unknown accounts answer alike.
    let mut x = SessionClient::new(&app);
    let wrong = x.sign_in(ADMIN_EMAIL, "not the password at all").await;
    let unknown = x
        .sign_in("nobody@example.com", "not the password at all")
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    assert_eq!(
        wrong.body["error"]["message"],
        unknown.body["error"]["message"]
    );
    assert!(x.cookie.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_cookie_requests_are_refused_and_bearer_requests_are_not() {
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    let mut s = app.owner_session().await;
    let agent = json!({"slug": "c1", "name": "c", "instructions": "x", "model": "fake/echo"});
    let cross = s
        .http
        .post(format!("{}/api/v1/agents", s.base))
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .json(&agent);
    let r = s.send(cross).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "csrf_rejected");
    // Without Sec-Fetch-Site, a foreign Origin is refused too.
    let r = s
        .send(
            s.http
                .post(format!("{}/api/v1/agents", s.base))
                .header("origin", "https://evil.example")
                .json(&agent),
        )
        .await;
    assert_eq!(r.status, 403);
    // A cross-site form post to the dashboard is refused.
    let r = s
        .send(
            s.http
                .post(format!("{}/ui/agents", s.base))
                .header("sec-fetch-site", "cross-site")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("slug=c2"),
        )
        .await;
    assert_eq!(r.status, 403);
    // Same origin works; a bearer key is unaffected by the browser headers.
    let host = s.base.trim_start_matches("http://").to_string();
    let r = s
        .send(
            s.http
                .post(format!("{}/api/v1/agents", s.base))
                .header("origin", format!("http://{host}"))
                .header("sec-fetch-site", "same-origin")
                .json(&agent),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = app
        .send(
            app.http
                .post(app.url("/api/v1/agents"))
                .bearer_auth(&app.token)
                .header("origin", "https://evil.example")
                .header("sec-fetch-site", "cross-site")
                .json(
                    &json!({"slug": "c3", "name": "c", "instructions": "x", "model": "fake/echo"}),
                ),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_two_factor_guards_sign_in_and_codes_cannot_be_replayed() {
    let app = TestApp::spawn().await;
    let mut s = app.owner_session().await;
    let setup = s.post("/api/v1/me/totp/setup", json!({})).await;
    assert_eq!(setup.status, 200);
    let secret_b32 = setup.body["secret"].as_str().unwrap().to_string();
    assert!(
        setup.body["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    let secret = agentry_auth::totp::decode_base32(&secret_b32).unwrap();
    // A wrong password or a wrong code does not enable it.
    let code = agentry_auth::totp::code_at(&secret, now());
    let r = s
        .post(
            "/api/v1/me/totp",
            json!({"current_password": "wrong password here", "secret": secret_b32, "code": code}),
        )
        .await;
    assert_eq!(r.status, 401);
    let r = s
        .post(
            "/api/v1/me/totp",
            json!({"current_password": ADMIN_PASSWORD, "secret": secret_b32, "code": code}),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);

    // Password alone now only opens a pending session.
    let mut t = SessionClient::new(&app);
    let r = t.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["mfa_required"], true);
    let pending_cookie = t.cookie.clone();
    let r = t.get("/api/v1/me").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"]["code"], "mfa_required");
    assert_eq!(
        t.post("/api/v1/auth/mfa", json!({"code": "000000"}))
            .await
            .status,
        401
    );
    // The code used to enable TOTP is burnt: the next step's code is needed.
    let fresh = agentry_auth::totp::code_at(&secret, now() + 30);
    let r = t.post("/api/v1/auth/mfa", json!({"code": fresh})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_ne!(
        t.cookie, pending_cookie,
        "the session id changes after the second factor"
    );
    assert_eq!(t.get("/api/v1/me").await.body["totp_enabled"], true);
    // The same code again, in another sign-in, is refused (replay).
    let mut u = SessionClient::new(&app);
    u.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(
        u.post("/api/v1/auth/mfa", json!({"code": fresh}))
            .await
            .status,
        401
    );
    // Disabling needs the password.
    assert_eq!(
        t.post(
            "/api/v1/me/totp/disable",
            json!({"current_password": ADMIN_PASSWORD})
        )
        .await
        .status,
        204
    );
    let mut v = SessionClient::new(&app);
    assert_eq!(
        v.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await.body["mfa_required"],
        false
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_are_single_use_and_cannot_take_over_existing_accounts() {
    let app = TestApp::spawn().await;
    let inv = app
        .post(
            "/api/v1/invitations",
            json!({"email": "New.Person@Example.com", "role": "member"}),
        )
        .await;
    assert_eq!(inv.status, 201, "{:?}", inv.body);
    assert_eq!(inv.body["email"], "new.person@example.com");
    let token = inv.body["invite_url"]
        .as_str()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap()
        .to_string();
    // The link is not listed again.
    let listed = app.get("/api/v1/invitations").await;
    assert!(!listed.body.to_string().contains(&token));
    let mut s = SessionClient::new(&app);
    let weak = s
        .post(
            "/api/v1/auth/invitations/accept",
            json!({"token": token, "name": "N", "password": "password"}),
        )
        .await;
    assert_eq!(
        weak.status, 422,
        "a common password is refused: {:?}",
        weak.body
    );
    assert_eq!(weak.body["error"]["code"], "weak_password");
    let ok = s
        .post(
            "/api/v1/auth/invitations/accept",
            json!({"token": token, "name": "N", "password": "a perfectly fine passphrase"}),
        )
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let me = s.get("/api/v1/me").await;
    assert_eq!(me.body["org_role"], "member");
    let again = SessionClient::new(&app)
        .post(
            "/api/v1/auth/invitations/accept",
            json!({"token": token, "name": "N", "password": "another fine passphrase"}),
        )
        .await;
    assert_eq!(again.status, 400);
    assert_eq!(again.body["error"]["code"], "token_invalid");

    // An invitation addressed to an existing account cannot be used to sign in as it.
    let inv = app
        .post(
            "/api/v1/invitations",
            json!({"email": "new.person@example.com", "role": "admin", "workspace_id": null}),
        )
        .await;
    let token = inv.body["invite_url"]
        .as_str()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap()
        .to_string();
    let r = SessionClient::new(&app)
        .post(
            "/api/v1/auth/invitations/accept",
            json!({"token": token, "password": "attacker password 123"}),
        )
        .await;
    assert_eq!(r.status, 401, "{:?}", r.body);
    // Revoked invitations are dead.
    let inv = app
        .post(
            "/api/v1/invitations",
            json!({"email": "third@example.com", "role": "viewer"}),
        )
        .await;
    let token = inv.body["invite_url"]
        .as_str()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap()
        .to_string();
    let id = inv.body["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/api/v1/invitations/{id}"))
            .await
            .status,
        204
    );
    let r = SessionClient::new(&app)
        .post(
            "/api/v1/auth/invitations/accept",
            json!({"token": token, "name": "T", "password": "a perfectly fine passphrase"}),
        )
        .await;
    assert_eq!(r.status, 400);
    // Admins cannot mint owners; nobody can invite above their own role.
    let (_, admin_key) = app.create_key("admin", None).await;
    let r = app
        .as_token(&admin_key)
        .post(
            "/api/v1/invitations",
            json!({"email": "o@example.com", "role": "owner"}),
        )
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_reset_tokens_are_single_use_and_refuse_null_empty_and_arrays() {
    let mail = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(&[("AGENTRY_MAIL_DIR", mail.path().to_str().unwrap())]).await;
    let (mut member, member_id) = app
        .add_member("m@example.com", "member", None, "the original passphrase")
        .await;
    let mut anon = SessionClient::new(&app);
    for bad in [
        json!(null),
        json!([]),
        json!({}),
        json!(["rst_x"]),
        json!(1),
    ] {
        let r = anon
            .post(
                "/api/v1/auth/password-reset/confirm",
                json!({"token": bad, "password": "a new long passphrase"}),
            )
            .await;
        assert_eq!(r.status, 422, "token {bad}: {:?}", r.body);
    }
    for bad in ["", " ", "rst_", "rst_unknown", "inv_x"] {
        let r = anon
            .post(
                "/api/v1/auth/password-reset/confirm",
                json!({"token": bad, "password": "a new long passphrase"}),
            )
            .await;
        assert_eq!(r.status, 400, "token {bad:?}: {:?}", r.body);
        assert_eq!(r.body["error"]["code"], "token_invalid");
    }
    let missing = anon
        .post(
            "/api/v1/auth/password-reset/confirm",
            json!({"password": "a new long passphrase"}),
        )
        .await;
    assert_eq!(missing.status, 422);

    // Asking by email: the link goes to the mailbox, never into the response.
    let r = anon
        .post(
            "/api/v1/auth/password-reset",
            json!({"email": "m@example.com"}),
        )
        .await;
    assert_eq!(r.status, 202);
    assert!(!r.body.to_string().contains("rst_"));
    let r = anon
        .post(
            "/api/v1/auth/password-reset",
            json!({"email": "nobody@example.com"}),
        )
        .await;
    assert_eq!(r.status, 202, "unknown emails answer the same");
    let mails: Vec<String> = std::fs::read_dir(mail.path())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .filter(|m| m.contains("Reset your Agentry password"))
        .collect();
    assert_eq!(
        mails.len(),
        1,
        "exactly one reset email, to the existing account"
    );
    assert!(mails[0].contains("m@example.com"));
    let unfolded = mails[0]
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    let token = unfolded
        .split("token=")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect::<String>();
    assert!(token.starts_with("rst_"), "{token}");
    let r = anon
        .post(
            "/api/v1/auth/password-reset/confirm",
            json!({"token": token, "password": "the new passphrase"}),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let r = anon
        .post(
            "/api/v1/auth/password-reset/confirm",
            json!({"token": token, "password": "yet another passphrase"}),
        )
        .await;
    assert_eq!(r.status, 400, "a reset token works once");
    assert_eq!(
        member.get("/api/v1/me").await.status,
        401,
        "sessions end on reset"
    );
    let mut fresh = SessionClient::new(&app);
    assert_eq!(
        fresh
            .sign_in("m@example.com", "the original passphrase")
            .await
            .status,
        401
    );
    assert_eq!(
        fresh
            .sign_in("m@example.com", "the new passphrase")
            .await
            .status,
        200
    );

    // An admin can hand out a link when no email is set up; it expires within 30 minutes.
    let link = app
        .post(
            &format!("/api/v1/members/{member_id}/password-reset"),
            json!({}),
        )
        .await;
    assert_eq!(link.status, 201, "{:?}", link.body);
    assert!(link.body["expires_in_seconds"].as_u64().unwrap() <= 1800);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_member_ends_their_sessions_at_once() {
    let app = TestApp::spawn().await;
    let (mut m, id) = app
        .add_member("d@example.com", "member", None, "a fine passphrase 1")
        .await;
    assert_eq!(m.get("/api/v1/me").await.status, 200);
    assert_eq!(
        app.post(&format!("/api/v1/members/{id}/disable"), json!({}))
            .await
            .status,
        204
    );
    assert_eq!(m.get("/api/v1/me").await.status, 401);
    let mut again = SessionClient::new(&app);
    assert_eq!(
        again
            .sign_in("d@example.com", "a fine passphrase 1")
            .await
            .status,
        401
    );
    assert_eq!(
        app.post(&format!("/api/v1/members/{id}/enable"), json!({}))
            .await
            .status,
        204
    );
    assert_eq!(
        again
            .sign_in("d@example.com", "a fine passphrase 1")
            .await
            .status,
        200
    );
    // Roles: a viewer cannot build, a member can; the org keeps its last owner.
    let r = app
        .send(
            app.http
                .put(app.url(&format!("/api/v1/members/{id}/role")))
                .bearer_auth(&app.token)
                .json(&json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(r.status, 204);
    let r = again
        .post(
            "/api/v1/agents",
            json!({"slug": "v", "name": "v", "instructions": "x", "model": "fake/echo"}),
        )
        .await;
    assert_eq!(r.status, 403);
    let members = app.get("/api/v1/members").await;
    let owner = members.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "owner")
        .unwrap()["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .send(
            app.http
                .put(app.url(&format!("/api/v1/members/{owner}/role")))
                .bearer_auth(&app.token)
                .json(&json!({"role": "admin"})),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.body["error"]["code"], "last_owner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_throttling_slows_guessing_without_locking_out_the_owner() {
    let app = TestApp::spawn_with(&[
        ("AGENTRY_RATE_LIMITS__SIGNIN_ACCOUNT_IP__LIMIT", "5"),
        ("AGENTRY_RATE_LIMITS__SIGNIN_ACCOUNT_IP__PERIOD_SECS", "900"),
    ])
    .await;
    let mut attacker = SessionClient::new(&app);
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(attacker.sign_in(ADMIN_EMAIL, "guess guess guess").await);
    }
    let limited: Vec<_> = statuses.iter().filter(|r| r.status == 429).collect();
    assert_eq!(
        limited.len(),
        3,
        "{:?}",
        statuses.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let r = limited[0];
    assert!(r.headers.get("retry-after").is_some());
    assert!(r.headers.get("ratelimit").is_some() && r.headers.get("ratelimit-policy").is_some());
    // The owner, from another address, still gets in.
    let mut owner = SessionClient {
        http: reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        ..SessionClient::new(&app)
    };
    assert_eq!(owner.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_creates_orgs_and_users_and_resets_passwords() {
    let mut app = TestApp::spawn().await;
    let _ = app.server.terminate();
    let admin = |args: &[&str], password: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_agentry"));
        cmd.arg("admin")
            .args(args)
            .arg("--data-dir")
            .arg(&app.server.storage.data_dir)
            .env("AGENTRY_DATABASE_URL", &app.server.storage.database_url)
            .env("AGENTRY_MASTER_KEY", crate::harness::MASTER_KEY)
            .env_remove("AGENTRY_CONFIG");
        if let Some(p) = password {
            cmd.env("AGENTRY_NEW_PASSWORD", p);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let org = admin(
        &["create-org", "--name", "Acme", "--owner", ADMIN_EMAIL],
        None,
    );
    assert!(uuid::Uuid::parse_str(&org).is_ok(), "{org}");
    let user = admin(
        &[
            "create-user",
            "--email",
            "ops@example.com",
            "--org",
            &org,
            "--role",
            "admin",
        ],
        Some("operator chosen passphrase"),
    );
    assert!(uuid::Uuid::parse_str(&user).is_ok());
    admin(
        &["reset-password", "--email", "ops@example.com"],
        Some("a second passphrase"),
    );
    app.server.restart();
    let mut s = SessionClient::new(&app);
    assert_eq!(
        s.sign_in("ops@example.com", "operator chosen passphrase")
            .await
            .status,
        401
    );
    assert_eq!(
        s.sign_in("ops@example.com", "a second passphrase")
            .await
            .status,
        200
    );
    let me = s.get("/api/v1/me").await;
    assert_eq!(me.body["org_id"], org.as_str());
    assert_eq!(me.body["org_role"], "admin");
    // The owner is in both orgs and can switch.
    let mut o = app.owner_session().await;
    assert_eq!(
        o.get("/api/v1/me").await.body["orgs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        o.post("/api/v1/me/org", json!({"org_id": org}))
            .await
            .status,
        204
    );
    assert_eq!(o.get("/api/v1/org").await.body["name"], "Acme");
    // An org the user is not in cannot be switched to.
    let r = s
        .post(
            "/api/v1/me/org",
            json!({"org_id": "00000000-0000-7000-8000-000000000001"}),
        )
        .await;
    assert_eq!(r.status, 404);
}

/// Moves a row's timestamp into the past, as if time had passed.
async fn age(app: &TestApp, table: &str, column: &str, filter: &str, by: chrono::Duration) {
    let url = &app.server.storage.database_url;
    let then = chrono::Utc::now() - by;
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET {column} = $1 WHERE {filter}"
        )))
        .bind(then)
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET {column} = ? WHERE {filter}"
        )))
        .bind(then)
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_keys_invitations_and_reset_links_expire() {
    let app = TestApp::spawn().await;
    // Idle timeout (8 h by default).
    let mut s = app.owner_session().await;
    assert_eq!(s.get("/api/v1/me").await.status, 200);
    age(
        &app,
        "sessions",
        "last_seen_at",
        "1 = 1",
        chrono::Duration::hours(9),
    )
    .await;
    assert_eq!(
        s.get("/api/v1/me").await.status,
        401,
        "an idle session lives on"
    );
    // Absolute lifetime, however active.
    let mut s = app.owner_session().await;
    age(
        &app,
        "sessions",
        "expires_at",
        "1 = 1",
        chrono::Duration::seconds(1),
    )
    .await;
    assert_eq!(
        s.get("/api/v1/me").await.status,
        401,
        "an expired session lives on"
    );
    // API keys with an expiry stop at it; one in the past cannot be created.
    let past = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    let r = app
        .post(
            "/api/v1/api-keys",
            json!({"name": "old", "expires_at": past}),
        )
        .await;
    assert_eq!(r.status, 422);
    let soon = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let r = app
        .post(
            "/api/v1/api-keys",
            json!({"name": "soon", "role": "viewer", "expires_at": soon}),
        )
        .await;
    assert_eq!(r.status, 201);
    let key = app.as_token(r.body["key"].as_str().unwrap());
    assert_eq!(key.get("/api/v1/agents").await.status, 200);
    let db = agentry_store::Db::connect(&app.server.storage.database_url, 1)
        .await
        .unwrap();
    let id: uuid::Uuid = r.body["id"].as_str().unwrap().parse().unwrap();
    let scope = agentry_store::orgs::default_scope().org();
    assert!(
        agentry_store::api_keys::list(&db, scope)
            .await
            .unwrap()
            .iter()
            .any(|k| k.id == id)
    );
    db.close().await;
    age(
        &app,
        "api_keys",
        "expires_at",
        "name = 'soon'",
        chrono::Duration::seconds(1),
    )
    .await;
    assert_eq!(
        key.get("/api/v1/agents").await.status,
        401,
        "an expired key still works"
    );
    // Invitations and reset links past their time are refused.
    let inv = app
        .post(
            "/api/v1/invitations",
            json!({"email": "late@example.com", "role": "viewer"}),
        )
        .await;
    let token = inv.body["invite_url"]
        .as_str()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap()
        .to_string();
    age(
        &app,
        "invitations",
        "expires_at",
        "1 = 1",
        chrono::Duration::seconds(1),
    )
    .await;
    let r = SessionClient::new(&app)
        .post(
            "/api/v1/auth/invitations/accept",
            json!({"token": token, "name": "L", "password": "a perfectly fine passphrase"}),
        )
        .await;
    assert_eq!(r.status, 400);
    let (_, member) = app
        .add_member("r@example.com", "member", None, "first fine passphrase")
        .await;
    let link = app
        .post(
            &format!("/api/v1/members/{member}/password-reset"),
            json!({}),
        )
        .await;
    let token = link.body["reset_url"]
        .as_str()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap()
        .to_string();
    age(
        &app,
        "password_resets",
        "expires_at",
        "1 = 1",
        chrono::Duration::seconds(1),
    )
    .await;
    let r = SessionClient::new(&app)
        .post(
            "/api/v1/auth/password-reset/confirm",
            json!({"token": token, "password": "second fine passphrase"}),
        )
        .await;
    assert_eq!(r.status, 400);
}
