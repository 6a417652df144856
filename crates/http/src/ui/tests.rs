//! Dashboard tests: the whole application router over a real platform on a temporary SQLite
//! file. No worker runs, so a started run stays queued. People sign in with server-side
//! sessions, as in a browser.

use super::page;
use crate::{AppState, install_metrics, router};
use agentry_core::ids::UserId;
use agentry_engine::secrets::Secrets;
use agentry_engine::service::account;
use agentry_engine::service::auth::{self, ClientInfo};
use agentry_engine::service::providers::{self, ProviderInput};
use agentry_engine::{Platform, PlatformParts};
use agentry_store::orgs::{self, DEFAULT_ORG};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

const OWNER_EMAIL: &str = "owner@example.com";
const PASSWORD: &str = "violet tractor sings under the moon";

struct Harness {
    app: Router,
    platform: Arc<Platform>,
    /// The owner's session cookie.
    cookie: String,
    owner: UserId,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    harness_with_mail(None).await
}

async fn harness_with_mail(mail_dir: Option<std::path::PathBuf>) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let db = agentry_store::Db::connect(&url, 4).await.unwrap();
    orgs::ensure_default(&db).await.unwrap();
    let platform = Platform::new(PlatformParts {
        db,
        secrets: Secrets::from_key([1; 32]),
        reload_keys: None,
        egress: agentry_tools::guard::GuardConfig {
            allow_hosts: vec!["127.0.0.1".into()],
            ..Default::default()
        },
        sso_allow_http: false,
        mailer: mail_dir
            .map(|d| agentry_engine::mailer::Mailer::files(d, "agentry@example.com").unwrap()),
        tools: agentry_tools::ToolRegistry::builtin(Default::default()),
        config: Default::default(),
        http: reqwest::Client::new(),
    })
    .unwrap();
    let owner = account::create_user(
        &platform,
        OWNER_EMAIL,
        "Owner",
        Some(PASSWORD),
        Some((DEFAULT_ORG, None, "owner")),
    )
    .await
    .unwrap();
    let cookie = session_cookie(&platform, owner).await;
    providers::create(
        &platform,
        orgs::default_scope().org(),
        ProviderInput {
            name: "fake".into(),
            kind: "openai".into(),
            base_url: "http://127.0.0.1:9/v1".into(),
            api_key: None,
        },
    )
    .await
    .unwrap();
    let app = router(AppState::new(platform.clone(), install_metrics()));
    Harness {
        app,
        platform,
        cookie,
        owner,
        _dir: dir,
    }
}

/// A fresh signed-in session of `user`, as the cookie a browser would send.
async fn session_cookie(platform: &Platform, user: UserId) -> String {
    let row = agentry_store::users::get(&platform.db, user)
        .await
        .unwrap()
        .unwrap();
    let issued = auth::issue_session(platform, &row, None, false, &ClientInfo::default())
        .await
        .unwrap();
    format!("agentry_session={}", issued.token)
}

impl Harness {
    fn cookie(&self) -> String {
        self.cookie.clone()
    }

    /// Adds a member (no password) with `role` in the whole org, and signs them in.
    async fn member(&self, email: &str, role: &str) -> (UserId, String) {
        let id = account::create_user(
            &self.platform,
            email,
            "Someone",
            None,
            Some((DEFAULT_ORG, None, role)),
        )
        .await
        .unwrap();
        (id, session_cookie(&self.platform, id).await)
    }

    /// A browser with its own cookie jar, starting with `cookie`.
    fn browser(&self, cookie: Option<&str>) -> Browser<'_> {
        let jar = Browser {
            h: self,
            jar: Mutex::new(BTreeMap::new()),
        };
        if let Some(c) = cookie {
            jar.absorb_pair(c);
        }
        jar
    }

    async fn send(&self, request: Request<Body>) -> Response<Body> {
        self.app.clone().oneshot(request).await.unwrap()
    }

    async fn get(&self, path: &str) -> Response<Body> {
        self.get_as(&self.cookie(), path).await
    }

    async fn get_as(&self, cookie: &str, path: &str) -> Response<Body> {
        self.send(
            Request::get(path)
                .header(header::COOKIE, cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    async fn get_anonymous(&self, path: &str) -> Response<Body> {
        self.send(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Response<Body> {
        self.send(form_request(path, form, Some(&self.cookie())))
            .await
    }

    async fn post_as(&self, cookie: &str, path: &str, form: &[(&str, &str)]) -> Response<Body> {
        self.send(form_request(path, form, Some(cookie))).await
    }

    async fn post_anonymous(&self, path: &str, form: &[(&str, &str)]) -> Response<Body> {
        self.send(form_request(path, form, None)).await
    }

    async fn create_agent(&self, slug: &str, name: &str) {
        let response = self
            .post(
                "/ui/agents",
                &[
                    ("slug", slug),
                    ("name", name),
                    ("model", "fake/m"),
                    ("instructions", "Be brief."),
                    ("tools", "calculator"),
                    ("max_steps", "5"),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
    }
}

/// Sends and keeps cookies like a browser: `Set-Cookie` stores, `Max-Age=0` deletes.
struct Browser<'a> {
    h: &'a Harness,
    jar: Mutex<BTreeMap<String, String>>,
}

impl Browser<'_> {
    fn absorb_pair(&self, pair: &str) {
        if let Some((name, value)) = pair.split(';').next().and_then(|p| p.split_once('=')) {
            let mut jar = self.jar.lock().unwrap();
            if value.is_empty() || pair.contains("Max-Age=0") {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_string(), value.to_string());
            }
        }
    }

    fn header(&self) -> String {
        self.jar
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn has(&self, name: &str) -> bool {
        self.jar.lock().unwrap().contains_key(name)
    }

    fn absorb(&self, response: &Response<Body>) {
        for value in response.headers().get_all(header::SET_COOKIE) {
            self.absorb_pair(value.to_str().unwrap());
        }
    }

    async fn get(&self, path: &str) -> Response<Body> {
        let response = self.h.get_as(&self.header(), path).await;
        self.absorb(&response);
        response
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Response<Body> {
        let response = self.h.post_as(&self.header(), path, form).await;
        self.absorb(&response);
        response
    }

    /// Posts, follows the redirect, and returns the page it lands on.
    async fn post_and_follow(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
        let response = self.post(path, form).await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "{path}: {}",
            text(response).await
        );
        let to = location(&response).to_string();
        let page = self.get(&to).await;
        (page.status(), text(page).await)
    }
}

fn form_request(path: &str, form: &[(&str, &str)], cookie: Option<&str>) -> Request<Body> {
    let mut builder =
        Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    builder.body(Body::from(encode_form(form))).unwrap()
}

fn encode_form(form: &[(&str, &str)]) -> String {
    fn encode(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_string(),
                other => format!("%{other:02X}"),
            })
            .collect()
    }
    form.iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

async fn text(response: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn location(response: &Response<Body>) -> &str {
    response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[test]
fn every_template_compiles() {
    let env = page::environment();
    for (name, _) in page::TEMPLATES {
        assert!(env.get_template(name).is_ok(), "{name} does not compile");
    }
}

#[tokio::test]
async fn login_page_renders_with_security_headers() {
    let h = harness().await;
    let response = h.get_anonymous("/ui/login").await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    let csp = headers
        .get(header::CONTENT_SECURITY_POLICY)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(csp.contains("default-src 'self'"));
    assert!(csp.contains("script-src 'self'"));
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(
        headers.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(),
        "nosniff"
    );
    assert_eq!(headers.get(header::REFERRER_POLICY).unwrap(), "same-origin");
    let body = text(response).await;
    assert!(body.contains(r#"name="email""#));
    assert!(body.contains(r#"name="password""#));
    assert!(body.contains(r#"action="/ui/login""#));
}

#[tokio::test]
async fn a_wrong_password_shows_the_form_again_with_401() {
    let h = harness().await;
    for (email, password) in [
        (OWNER_EMAIL, "not the password"),
        ("nobody@example.com", PASSWORD),
        (OWNER_EMAIL, ""),
        ("", ""),
    ] {
        let response = h
            .post_anonymous("/ui/login", &[("email", email), ("password", password)])
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{email}");
        assert!(response.headers().get(header::SET_COOKIE).is_none());
        let body = text(response).await;
        assert!(body.contains(r#"name="password""#));
        assert!(body.contains(r#"class="alert""#));
        assert!(!body.contains(password) || password.is_empty());
    }
}

#[tokio::test]
async fn a_good_password_sets_an_httponly_cookie_and_redirects() {
    let h = harness().await;
    let response = h
        .post_anonymous(
            "/ui/login",
            &[("email", "  Owner@Example.com "), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/ui/agents");
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("agentry_session="));
    assert!(cookie.contains("HttpOnly"));
    assert!(cookie.contains("SameSite=Lax"));
    assert!(cookie.contains("Path=/"));
    let pair = cookie.split(';').next().unwrap();
    assert_eq!(h.get_as(pair, "/ui/agents").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn logout_clears_the_cookie() {
    let h = harness().await;
    let response = h.post("/ui/logout", &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/ui/login");
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(cookie.starts_with("agentry_session=;"));
    assert!(cookie.contains("Max-Age=0"));
}

#[tokio::test]
async fn the_root_redirects_by_sign_in_state() {
    let h = harness().await;
    let response = h.get_anonymous("/").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/ui/login");
    let response = h.get("/").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/ui/agents");
    // Already signed in: the login page sends you on.
    assert_eq!(location(&h.get("/ui/login").await), "/ui/agents");
}

#[tokio::test]
async fn pages_without_a_valid_cookie_redirect_to_login() {
    let h = harness().await;
    for path in [
        "/ui/agents",
        "/ui/agents/new",
        "/ui/runs",
        "/ui/agents/x/edit",
    ] {
        let response = h.get_anonymous(path).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&response), "/ui/login", "{path}");
    }
    let forged = h
        .send(
            Request::get("/ui/agents")
                .header(header::COOKIE, "agentry_session=agt_forged")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(location(&forged), "/ui/login");
    // A post without the cookie changes nothing.
    let response = h
        .post_anonymous(
            "/ui/agents",
            &[("slug", "csrf"), ("name", "x"), ("model", "fake/m")],
        )
        .await;
    assert_eq!(location(&response), "/ui/login");
    assert!(!text(h.get("/ui/agents").await).await.contains("csrf"));
}

#[tokio::test]
async fn static_files_are_served() {
    let h = harness().await;
    let css = h.get_anonymous("/ui/static/app.css").await;
    assert_eq!(css.status(), StatusCode::OK);
    assert!(
        css.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let js = h.get_anonymous("/ui/static/app.js").await;
    assert_eq!(js.status(), StatusCode::OK);
    assert!(
        js.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let body = text(js).await;
    assert!(body.contains("EventSource"));
    assert!(!body.contains("innerHTML"));
}

#[tokio::test]
async fn the_new_agent_form_offers_tools_and_providers() {
    let h = harness().await;
    let response = h.get("/ui/agents/new").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = text(response).await;
    for tool in h.platform.tools.names() {
        assert!(body.contains(&format!(r#"name="tools" value="{tool}""#)));
    }
    assert!(body.contains("<code>fake/…</code>"));
}

#[tokio::test]
async fn an_agent_created_by_form_appears_in_the_list() {
    let h = harness().await;
    h.create_agent("helper", "Helpful One").await;
    let response = h.get("/ui/agents").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = text(response).await;
    assert!(body.contains("helper"));
    assert!(body.contains("Helpful One"));
    assert!(body.contains("fake&#x2f;m"));
    assert!(body.contains("calculator"));
    assert!(body.contains("v1"));
    let page = text(h.get("/ui/agents/helper").await).await;
    assert!(page.contains("Be brief."));
    assert!(page.contains(r#"action="/ui/agents/helper/runs""#));
}

#[tokio::test]
async fn an_unknown_tool_is_a_422_that_keeps_the_input() {
    let h = harness().await;
    let response = h
        .post(
            "/ui/agents",
            &[
                ("slug", "tooly"),
                ("name", "Keep Me"),
                ("model", "fake/m"),
                ("instructions", "My instructions"),
                ("tools", "calculator"),
                ("tools", "nope"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = text(response).await;
    assert!(body.contains("unknown tool(s): nope"));
    assert!(body.contains(r#"value="tooly""#));
    assert!(body.contains(r#"value="Keep Me""#));
    assert!(body.contains("My instructions"));
    assert!(body.contains(r#"name="tools" value="nope" checked"#));
    assert!(body.contains(r#"name="tools" value="calculator" checked"#));
    assert!(!text(h.get("/ui/agents").await).await.contains("tooly"));
}

#[tokio::test]
async fn field_errors_are_shown_next_to_their_fields() {
    let h = harness().await;
    let response = h
        .post(
            "/ui/agents",
            &[
                ("slug", "Bad Slug"),
                ("name", "n"),
                ("model", "no slash"),
                ("max_steps", "ten"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = text(response).await;
    assert!(body.contains("must be a whole number"));
    assert!(body.contains(r#"value="ten""#));
    // The other fields are checked in the same round.
    assert!(body.contains(r#"<p class="field-error">must be 1-64 characters"#));
    // Once the number parses, the service's own field errors come through.
    let response = h
        .post(
            "/ui/agents",
            &[("slug", "Bad Slug"), ("name", "n"), ("model", "no slash")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = text(response).await;
    assert!(body.contains(r#"<p class="field-error">must be 1-64 characters"#));
    assert!(body.contains(
        r#"<p class="field-error">must be &#x27;&lt;provider&gt;&#x2f;&lt;model&gt;&#x27;"#
    ));
    assert!(body.contains(r#"value="Bad Slug""#));
}

#[tokio::test]
async fn a_taken_slug_is_shown_on_the_form() {
    let h = harness().await;
    h.create_agent("dup", "First").await;
    let response = h
        .post(
            "/ui/agents",
            &[("slug", "dup"), ("name", "Second"), ("model", "fake/m")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body = text(response).await;
    assert!(body.contains("already exists"));
    assert!(body.contains(r#"value="Second""#));
}

#[tokio::test]
async fn editing_writes_a_new_version_and_delete_removes() {
    let h = harness().await;
    h.create_agent("ed", "Before").await;
    let form = text(h.get("/ui/agents/ed/edit").await).await;
    assert!(form.contains(r#"value="Before""#));
    assert!(form.contains(r#"action="/ui/agents/ed""#));
    let response = h
        .post(
            "/ui/agents/ed",
            &[("name", "After"), ("model", "fake/m"), ("max_steps", "3")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/ui/agents/ed");
    let list = text(h.get("/ui/agents").await).await;
    assert!(list.contains("After"));
    assert!(list.contains("v2"));

    let response = h.post("/ui/agents/ed/delete", &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/ui/agents");
    assert!(!text(h.get("/ui/agents").await).await.contains("After"));
    assert_eq!(h.get("/ui/agents/ed").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_playground_starts_a_run_and_its_page_renders_it() {
    let h = harness().await;
    h.create_agent("play", "Player").await;
    let response = h
        .post(
            "/ui/agents/play/runs",
            &[
                ("input", "What is 2 + <b>2</b>?"),
                ("thread_id", "t-1"),
                ("idempotency_key", "k1"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let run_page = location(&response).to_string();
    let id = run_page.strip_prefix("/ui/runs/").unwrap();
    assert!(id.parse::<uuid::Uuid>().is_ok(), "{run_page}");

    // The same form submitted twice starts one run.
    let again = h
        .post(
            "/ui/agents/play/runs",
            &[
                ("input", "What is 2 + <b>2</b>?"),
                ("thread_id", "t-1"),
                ("idempotency_key", "k1"),
            ],
        )
        .await;
    assert_eq!(location(&again), run_page);

    let response = h.get(&run_page).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = text(response).await;
    assert!(body.contains(id));
    assert!(body.contains("queued"));
    assert!(body.contains("What is 2 + &lt;b&gt;2&lt;&#x2f;b&gt;?"));
    assert!(body.contains("t-1"));
    assert!(body.contains(&format!(r#"data-run-id="{id}""#)));
    assert!(body.contains(r#"src="/ui/static/app.js""#));

    let list = text(h.get("/ui/runs").await).await;
    assert!(list.contains(id));
    let filtered = text(h.get("/ui/runs?status=completed&agent=").await).await;
    assert!(!filtered.contains(id));
    let filtered = text(h.get("/ui/runs?status=queued&agent=play").await).await;
    assert!(filtered.contains(id));
    assert_eq!(
        h.get("/ui/runs?status=bogus").await.status(),
        StatusCode::BAD_REQUEST
    );

    let events = h.get(&format!("/ui/runs/{id}/events")).await;
    assert_eq!(events.status(), StatusCode::OK);
    assert!(
        events.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
}

#[tokio::test]
async fn an_empty_playground_message_is_a_422_on_the_agent_page() {
    let h = harness().await;
    h.create_agent("quiet", "Quiet").await;
    let response = h
        .post(
            "/ui/agents/quiet/runs",
            &[("input", "  "), ("thread_id", "keep-me")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = text(response).await;
    assert!(body.contains("input: must not be empty"));
    assert!(body.contains(r#"value="keep-me""#));
}

#[tokio::test]
async fn cancelling_a_queued_run_from_its_page() {
    let h = harness().await;
    h.create_agent("stop", "Stopper").await;
    let response = h.post("/ui/agents/stop/runs", &[("input", "hi")]).await;
    let run_page = location(&response).to_string();
    let response = h.post(&format!("{run_page}/cancel"), &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), run_page);
    let body = text(h.get(&run_page).await).await;
    assert!(body.contains("cancelled"));
    // A finished run has no live view.
    assert!(!body.contains(r#"id="live""#));
}

#[tokio::test]
async fn unknown_runs_and_pages_are_html_404s() {
    let h = harness().await;
    for path in [
        "/ui/runs/not-a-uuid",
        "/ui/runs/0190a5b2-0000-7000-8000-000000000000",
        "/ui/agents/missing",
        "/ui/nowhere",
    ] {
        let response = h.get(path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(
            response.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
}

#[tokio::test]
async fn html_in_an_agent_name_is_escaped() {
    let h = harness().await;
    h.create_agent("xss", "<script>alert(1)</script>").await;
    for path in ["/ui/agents", "/ui/agents/xss", "/ui/agents/xss/edit"] {
        let body = text(h.get(path).await).await;
        assert!(!body.contains("<script>alert(1)"), "{path}");
        assert!(body.contains("&lt;script&gt;alert(1)"), "{path}");
    }
}

/// Undoes minijinja's HTML escaping (for values read back from a page).
fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The secret a page shows once, if it shows one.
fn one_time_secret(body: &str) -> Option<String> {
    let start = body.find(r#"id="one-time-secret""#)?;
    let rest = &body[start..];
    let open = rest.find('>')? + 1;
    let close = rest.find("</code>")?;
    Some(unescape(&rest[open..close]))
}

fn set_cookies(response: &Response<Body>) -> Vec<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

async fn audit_actions(h: &Harness) -> Vec<String> {
    let filter = agentry_store::audit::AuditFilter {
        limit: 1000,
        ..Default::default()
    };
    agentry_engine::service::audit::list(&h.platform, orgs::default_scope().org(), &filter)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect()
}

#[tokio::test]
async fn the_identity_pages_render_for_the_owner_with_their_nav_entries() {
    let h = harness().await;
    for (path, marker) in [
        ("/ui/members", r#"action="/ui/members/invite""#),
        ("/ui/api-keys", r#"action="/ui/api-keys""#),
        ("/ui/audit", r#"action="/ui/audit""#),
        ("/ui/account", r#"action="/ui/account/password""#),
        ("/ui/account/totp", r#"name="secret""#),
    ] {
        let response = h.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        let body = text(response).await;
        assert!(body.contains(marker), "{path}");
        for link in [
            r#"href="/ui/members""#,
            r#"href="/ui/api-keys""#,
            r#"href="/ui/audit""#,
            r#"href="/ui/account""#,
        ] {
            assert!(body.contains(link), "{path} lacks {link}");
        }
        assert!(body.contains(OWNER_EMAIL), "{path}");
    }
    let members = text(h.get("/ui/members").await).await;
    assert!(members.contains(&format!(r#"id="member-{}""#, h.owner)));
    assert!(members.contains("role-owner"));
}

#[tokio::test]
async fn a_viewer_sees_members_but_cannot_change_anything() {
    let h = harness().await;
    let (viewer, cookie) = h.member("viewer@example.com", "viewer").await;
    let page = h.get_as(&cookie, "/ui/members").await;
    assert_eq!(page.status(), StatusCode::OK);
    let body = text(page).await;
    assert!(body.contains(OWNER_EMAIL));
    assert!(!body.contains(r#"action="/ui/members/invite""#));
    assert!(!body.contains("/role\""));
    // The nav offers only what the role may open.
    assert!(!body.contains(r#"href="/ui/api-keys""#));
    assert!(!body.contains(r#"href="/ui/audit""#));
    let owner = h.owner.to_string();
    let viewer = viewer.to_string();
    for (path, form) in [
        (
            format!("/ui/members/{owner}/role"),
            vec![("role", "viewer"), ("workspace", "")],
        ),
        (
            format!("/ui/members/{viewer}/role"),
            vec![("role", "owner")],
        ),
        (format!("/ui/members/{owner}/remove"), vec![]),
        (format!("/ui/members/{owner}/disable"), vec![]),
        (format!("/ui/members/{owner}/sign-out"), vec![]),
        (format!("/ui/members/{owner}/reset-link"), vec![]),
        (
            "/ui/members/invite".to_string(),
            vec![("email", "x@example.com"), ("role", "owner")],
        ),
        (
            "/ui/api-keys".to_string(),
            vec![("name", "mine"), ("role", "viewer")],
        ),
    ] {
        let response = h.post_as(&cookie, &path, &form).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
    }
    for path in [
        "/ui/api-keys",
        "/ui/audit",
        "/ui/audit/export.csv",
        "/ui/audit/export.json",
    ] {
        assert_eq!(
            h.get_as(&cookie, path).await.status(),
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    // Nothing changed, and nothing was recorded.
    let body = text(h.get("/ui/members").await).await;
    assert!(body.contains("role-owner"));
    assert!(
        !audit_actions(&h)
            .await
            .iter()
            .any(|a| a.starts_with("member."))
    );
    // Their own account page works.
    assert_eq!(
        h.get_as(&cookie, "/ui/account").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_cross_site_post_is_refused_on_every_form() {
    let h = harness().await;
    for path in [
        "/ui/members/invite",
        "/ui/api-keys",
        "/ui/invite",
        "/ui/reset",
        "/ui/account/password",
    ] {
        let response = h
            .send(
                Request::post(path)
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(header::COOKIE, h.cookie())
                    .header("sec-fetch-site", "cross-site")
                    .body(Body::from(
                        "email=x%40example.com&role=viewer&name=k&token=inv_x",
                    ))
                    .unwrap(),
            )
            .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
    }
    assert!(audit_actions(&h).await.is_empty());
}

#[tokio::test]
async fn an_invitation_link_is_shown_once_and_signs_the_new_member_in() {
    let mail = tempfile::tempdir().unwrap();
    let h = harness_with_mail(Some(mail.path().to_path_buf())).await;
    let owner = h.browser(Some(&h.cookie()));
    let response = owner
        .post(
            "/ui/members/invite",
            &[
                ("email", "New.Person@Example.com"),
                ("role", "member"),
                ("workspace", ""),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/ui/members");
    // The link travels sealed, never in the clear.
    let flash = set_cookies(&response).join("\n");
    assert!(flash.contains("agentry_flash="));
    assert!(flash.contains("HttpOnly") && flash.contains("SameSite=Strict"));
    assert!(!flash.contains("inv_"));
    let sealed = owner.header();

    let body = text(owner.get("/ui/members").await).await;
    let link = one_time_secret(&body).expect("the link is shown");
    assert!(
        link.starts_with("http://127.0.0.1:8080/ui/invite?token=inv_"),
        "{link}"
    );
    assert!(body.contains("new.person@example.com"));
    assert!(body.contains("emailed"));
    // Shown once: the cookie is gone, and replaying it in another session opens nothing.
    assert!(!owner.has("agentry_flash"));
    assert!(one_time_secret(&text(owner.get("/ui/members").await).await).is_none());
    let (_, other) = h.member("other-admin@example.com", "admin").await;
    let replay = sealed.replace(&h.cookie(), &other);
    assert!(one_time_secret(&text(h.get_as(&replay, "/ui/members").await).await).is_none());
    // It was emailed too.
    let mails: Vec<String> = std::fs::read_dir(mail.path())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("new.person@example.com"));

    let token = link.split("token=").nth(1).unwrap().to_string();
    let path = format!("/ui/invite?token={token}");
    let invitee = h.browser(None);
    let form = text(invitee.get(&path).await).await;
    assert!(form.contains("new.person@example.com"));
    assert!(form.contains(r#"name="password""#));
    // A weak password keeps the link usable.
    let weak = invitee
        .post(
            "/ui/invite",
            &[
                ("token", &token),
                ("name", "New"),
                ("password", "password"),
                ("password_again", "password"),
            ],
        )
        .await;
    assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(weak).await.contains(r#"value="New""#));
    let accepted = invitee
        .post(
            "/ui/invite",
            &[
                ("token", &token),
                ("name", "New Person"),
                ("password", PASSWORD),
                ("password_again", PASSWORD),
            ],
        )
        .await;
    assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&accepted), "/ui/agents");
    assert!(invitee.has("agentry_session"));
    assert_eq!(invitee.get("/ui/agents").await.status(), StatusCode::OK);
    let account = text(invitee.get("/ui/account").await).await;
    assert!(account.contains("new.person@example.com"));
    assert!(account.contains("Organization: member"));
    // The link worked once.
    let again = h.get_anonymous(&path).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert!(text(again).await.contains("not valid"));
    let members = text(h.get("/ui/members").await).await;
    assert!(members.contains("New Person"));
    assert!(!members.contains("Pending invitations</h2>\n<table"));
    let actions = audit_actions(&h).await;
    assert!(actions.contains(&"invitation.create".to_string()));
    assert!(actions.contains(&"invitation.accept".to_string()));
}

#[tokio::test]
async fn invitation_and_reset_pages_refuse_bad_links() {
    let h = harness().await;
    for path in [
        "/ui/invite",
        "/ui/invite?token=",
        "/ui/invite?token=inv_not-a-real-one",
        "/ui/reset",
        "/ui/reset?token=",
        "/ui/reset?token=nonsense",
    ] {
        let response = h.get_anonymous(path).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        let body = text(response).await;
        assert!(body.contains(r#"id="link-invalid""#), "{path}");
        assert!(!body.contains(r#"name="password""#), "{path}");
    }
    let response = h
        .post_anonymous(
            "/ui/reset",
            &[
                ("token", "rst_unknown"),
                ("password", PASSWORD),
                ("password_again", PASSWORD),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(text(response).await.contains("not valid"));
    let response = h
        .post_anonymous(
            "/ui/invite",
            &[
                ("token", "inv_unknown"),
                ("name", "x"),
                ("password", PASSWORD),
                ("password_again", PASSWORD),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // A revoked invitation is refused the same way.
    let owner = h.browser(Some(&h.cookie()));
    let (_, body) = owner
        .post_and_follow(
            "/ui/members/invite",
            &[("email", "gone@example.com"), ("role", "viewer")],
        )
        .await;
    let token = one_time_secret(&body)
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap()
        .to_string();
    let id = body
        .split("/ui/members/invitations/")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap()
        .to_string();
    let (status, body) = owner
        .post_and_follow(&format!("/ui/members/invitations/{id}/revoke"), &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("was revoked"));
    assert!(!body.contains("gone@example.com"));
    let response = h.get_anonymous(&format!("/ui/invite?token={token}")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        audit_actions(&h)
            .await
            .contains(&"invitation.revoke".to_string())
    );
}

#[tokio::test]
async fn an_admin_reset_link_sets_a_new_password_once() {
    let h = harness().await;
    let (member, member_cookie) = h.member("forgot@example.com", "member").await;
    let owner = h.browser(Some(&h.cookie()));
    let (_, body) = owner
        .post_and_follow(&format!("/ui/members/{member}/reset-link"), &[])
        .await;
    let link = one_time_secret(&body).expect("the reset link is shown");
    assert!(link.contains("/ui/reset?token=rst_"), "{link}");
    let token = link.split("token=").nth(1).unwrap().to_string();
    let form = text(h.get_anonymous(&format!("/ui/reset?token={token}")).await).await;
    assert!(form.contains(r#"name="password""#));
    // A weak or mistyped password does not use the link up.
    let weak = h
        .post_anonymous(
            "/ui/reset",
            &[
                ("token", &token),
                ("password", "12345678"),
                ("password_again", "12345678"),
            ],
        )
        .await;
    assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let mismatch = h
        .post_anonymous(
            "/ui/reset",
            &[
                ("token", &token),
                ("password", PASSWORD),
                ("password_again", "other"),
            ],
        )
        .await;
    assert_eq!(mismatch.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let done = h
        .post_anonymous(
            "/ui/reset",
            &[
                ("token", &token),
                ("password", PASSWORD),
                ("password_again", PASSWORD),
            ],
        )
        .await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&done), "/ui/login?notice=password_reset");
    let login = text(h.get_anonymous("/ui/login?notice=password_reset").await).await;
    assert!(login.contains("Your password was changed"));
    // Arbitrary text cannot be put on the sign-in page.
    assert!(
        !text(h.get_anonymous("/ui/login?notice=%3Cb%3Ehi").await)
            .await
            .contains("hi")
    );
    // Every session of the account ended; the new password signs in.
    assert_eq!(
        location(&h.get_as(&member_cookie, "/ui/agents").await),
        "/ui/login"
    );
    let signed_in = h
        .post_anonymous(
            "/ui/login",
            &[("email", "forgot@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(location(&signed_in), "/ui/agents");
    // The link worked once.
    let again = h
        .post_anonymous(
            "/ui/reset",
            &[
                ("token", &token),
                ("password", PASSWORD),
                ("password_again", PASSWORD),
            ],
        )
        .await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let actions = audit_actions(&h).await;
    assert!(actions.contains(&"member.password_reset_link".to_string()));
    assert!(actions.contains(&"account.password_reset".to_string()));
}

#[tokio::test]
async fn roles_disabling_signing_out_and_removing_members() {
    let h = harness().await;
    let (bob, bob_cookie) = h.member("bob@example.com", "member").await;
    let owner = h.browser(Some(&h.cookie()));
    let (status, body) = owner
        .post_and_follow(
            &format!("/ui/members/{bob}/role"),
            &[("role", "viewer"), ("workspace", "")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("bob@example.com is now viewer in the whole organization."));
    assert!(body.contains("role-viewer"));
    // A workspace role is listed next to the org role.
    let ws = orgs::DEFAULT_WORKSPACE.0.to_string();
    let (_, body) = owner
        .post_and_follow(
            &format!("/ui/members/{bob}/role"),
            &[("role", "admin"), ("workspace", &ws)],
        )
        .await;
    assert!(body.contains(": admin</span>"), "{body}");
    // The last owner cannot be demoted: the page says why.
    let response = owner
        .post(
            &format!("/ui/members/{}/role", h.owner),
            &[("role", "admin")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(text(response).await.contains("last owner"));
    let response = owner
        .post(&format!("/ui/members/{bob}/role"), &[("role", "king")])
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        owner
            .post("/ui/members/not-an-id/role", &[("role", "viewer")])
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    let (_, body) = owner
        .post_and_follow(&format!("/ui/members/{bob}/sign-out"), &[])
        .await;
    assert!(body.contains("signed out everywhere (1 session ended)"));
    assert_eq!(
        location(&h.get_as(&bob_cookie, "/ui/agents").await),
        "/ui/login"
    );
    let (_, body) = owner
        .post_and_follow(&format!("/ui/members/{bob}/disable"), &[])
        .await;
    assert!(body.contains("bob@example.com is disabled"));
    assert!(body.contains(&format!("/ui/members/{bob}/enable")));
    let (_, body) = owner
        .post_and_follow(&format!("/ui/members/{bob}/enable"), &[])
        .await;
    assert!(body.contains("can sign in again"));
    let (_, body) = owner
        .post_and_follow(&format!("/ui/members/{bob}/remove"), &[])
        .await;
    assert!(body.contains("was removed"));
    assert!(!body.contains(&format!("member-{bob}")));

    let actions = audit_actions(&h).await;
    for action in [
        "member.role_change",
        "member.sign_out",
        "member.disable",
        "member.enable",
        "member.remove",
    ] {
        assert!(
            actions.contains(&action.to_string()),
            "{action}: {actions:?}"
        );
    }
    // Refused changes are not recorded.
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "member.role_change")
            .count(),
        2
    );
}

#[tokio::test]
async fn an_api_key_is_shown_once_and_revoking_it_stops_it() {
    let h = harness().await;
    let owner = h.browser(Some(&h.cookie()));
    // Refused forms keep what was typed.
    let response = owner
        .post(
            "/ui/api-keys",
            &[
                ("name", "ci"),
                ("role", "member"),
                ("expires", "2001-01-01"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = text(response).await;
    assert!(body.contains("must be in the future"));
    assert!(body.contains(r#"value="ci""#));
    let response = owner
        .post("/ui/api-keys", &[("name", " "), ("role", "member")])
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let (status, body) = owner
        .post_and_follow(
            "/ui/api-keys",
            &[
                ("name", "deploy <bot>"),
                ("role", "viewer"),
                ("workspace", ""),
                ("expires", "2999-12-31"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let key = one_time_secret(&body).expect("the key is shown");
    assert!(key.starts_with("agt_"));
    assert!(body.contains("deploy &lt;bot&gt;"));
    assert!(body.contains("2999-12-31 23:59:59 UTC"));
    let principal = auth::authenticate_key(&h.platform, &key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(principal.org_role, Some(agentry_core::authz::Role::Viewer));
    // Never again: not on a reload, not in the list.
    let body = text(owner.get("/ui/api-keys").await).await;
    assert!(one_time_secret(&body).is_none());
    assert!(!body.contains(&key));
    assert!(body.contains(&format!("{}…", &key[..12])));

    let id = body
        .split("/ui/api-keys/")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap()
        .to_string();
    let confirm = owner.get(&format!("/ui/api-keys/{id}/revoke")).await;
    assert_eq!(confirm.status(), StatusCode::OK);
    let confirm = text(confirm).await;
    assert!(confirm.contains(r#"id="confirm-revoke""#));
    assert!(confirm.contains("deploy &lt;bot&gt;"));
    let (_, body) = owner
        .post_and_follow(&format!("/ui/api-keys/{id}/revoke"), &[])
        .await;
    assert!(body.contains("was revoked"));
    assert!(
        auth::authenticate_key(&h.platform, &key)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        owner
            .post(&format!("/ui/api-keys/{id}/revoke"), &[])
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        owner
            .get(&format!("/ui/api-keys/{id}/revoke"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let actions = audit_actions(&h).await;
    assert!(actions.contains(&"api_key.create".to_string()));
    assert!(actions.contains(&"api_key.revoke".to_string()));
}

#[tokio::test]
async fn an_admin_cannot_mint_an_owner_key() {
    let h = harness().await;
    let (_, admin) = h.member("admin@example.com", "admin").await;
    let response = h
        .post_as(&admin, "/ui/api-keys", &[("name", "up"), ("role", "owner")])
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(text(response).await.contains("above your own"));
}

#[tokio::test]
async fn the_audit_log_pages_filters_and_exports_safely() {
    use agentry_engine::service::audit::{self, Change};
    use agentry_engine::service::principal::{Actor, RequestMeta};
    let h = harness().await;
    let actor = Actor::User {
        id: h.owner,
        email: OWNER_EMAIL.into(),
    };
    let org = orgs::default_scope().org();
    for i in 0..53 {
        let change = Change::new("agent.update", "agent", format!("a{i}"));
        audit::record(&h.platform, org, &actor, &RequestMeta::default(), change).await;
    }
    let formula = r#"=HYPERLINK("http://evil.example","click")"#;
    audit::record(
        &h.platform,
        org,
        &actor,
        &RequestMeta::default(),
        Change::new("member.role_change", "user", formula)
            .after(serde_json::json!({"role": "<b>x</b>"})),
    )
    .await;

    let first = text(h.get("/ui/audit").await).await;
    assert_eq!(first.matches("<tr data-action=").count(), 50);
    // Newest first, escaped.
    assert!(first.find("member.role_change").unwrap() < first.find("agent.update").unwrap());
    assert!(first.contains("=HYPERLINK(&quot;http:&#x2f;&#x2f;evil.example&quot;"));
    assert!(!first.contains("<b>x</b>"));
    let older = first
        .split(r#"id="older""#)
        .next()
        .and_then(|s| s.rsplit("href=\"").next())
        .map(|s| unescape(s.trim_end_matches("\" ")))
        .unwrap();
    assert!(older.starts_with("/ui/audit?before_id="), "{older}");
    let second = text(h.get(&older).await).await;
    assert_eq!(second.matches("<tr data-action=").count(), 4);
    assert!(!second.contains(r#"id="older""#));

    let filtered = text(h.get("/ui/audit?action=member.*&actor=&target_type=").await).await;
    assert_eq!(filtered.matches("<tr data-action=").count(), 1);
    assert!(filtered.contains("export.csv?action=member.*"));
    let by_actor = text(
        h.get(&format!("/ui/audit?actor={}&target_type=agent", h.owner))
            .await,
    )
    .await;
    assert_eq!(by_actor.matches("<tr data-action=").count(), 50);
    let bad = h.get("/ui/audit?actor=nobody").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(text(bad).await.contains("Actor must be"));

    let csv = h.get("/ui/audit/export.csv?action=member.*").await;
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(
        csv.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        csv.headers()[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains("audit-log.csv")
    );
    let csv = text(csv).await;
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some(audit::CSV_HEADER));
    let row = lines.next().unwrap();
    assert!(
        row.contains(r#""'=HYPERLINK(""http://evil.example"",""click"")""#),
        "{row}"
    );
    assert!(!row.contains(r#","=HYPERLINK"#));
    assert_eq!(lines.next(), None);

    let json = h.get("/ui/audit/export.json").await;
    assert_eq!(json.status(), StatusCode::OK);
    let entries: serde_json::Value = serde_json::from_str(&text(json).await).unwrap();
    assert_eq!(entries.as_array().unwrap().len(), 54);
    assert_eq!(entries[0]["target_id"], formula);
}

#[tokio::test]
async fn changing_the_password_and_two_factor_from_the_account_page() {
    let h = harness().await;
    let other_session = session_cookie(&h.platform, h.owner).await;
    let me = h.browser(Some(&h.cookie()));
    let wrong = me
        .post(
            "/ui/account/password",
            &[
                ("current_password", "nope"),
                ("new_password", "a new long passphrase"),
                ("new_password_again", "a new long passphrase"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        text(wrong)
            .await
            .contains("The current password is not right.")
    );
    let mismatch = me
        .post(
            "/ui/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "a new long passphrase"),
                ("new_password_again", "another"),
            ],
        )
        .await;
    assert_eq!(mismatch.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = me
        .post_and_follow(
            "/ui/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "a new long passphrase"),
                ("new_password_again", "a new long passphrase"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Your password was changed"));
    // This session goes on; the other one ended.
    assert_eq!(
        location(&h.get_as(&other_session, "/ui/agents").await),
        "/ui/login"
    );
    let new_password = "a new long passphrase";

    // Two-factor: the secret is kept in the form when the code is wrong.
    let setup = text(me.get("/ui/account/totp").await).await;
    let secret = setup
        .split(r#"name="secret" value=""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    assert!(setup.contains("otpauth:&#x2f;&#x2f;totp&#x2f;"));
    let wrong = me
        .post(
            "/ui/account/totp",
            &[
                ("secret", &secret),
                ("current_password", new_password),
                ("code", "000000"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        text(wrong)
            .await
            .contains(&format!(r#"name="secret" value="{secret}""#))
    );
    let bytes = agentry_auth::totp::decode_base32(&secret).unwrap();
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
    let code = agentry_auth::totp::code_at(&bytes, now);
    let (_, body) = me
        .post_and_follow(
            "/ui/account/totp",
            &[
                ("secret", &secret),
                ("current_password", new_password),
                ("code", &code),
            ],
        )
        .await;
    assert!(body.contains("Two-factor sign-in is on"));
    assert!(body.contains(r#"<dd id="totp-status">on</dd>"#));
    // Set up already: the setup page sends you back.
    assert_eq!(location(&me.get("/ui/account/totp").await), "/ui/account");
    let (_, body) = me
        .post_and_follow(
            "/ui/account/totp/disable",
            &[("current_password", new_password)],
        )
        .await;
    assert!(body.contains(r#"<dd id="totp-status">off</dd>"#));
    let actions = audit_actions(&h).await;
    for action in [
        "account.password_change",
        "account.totp_enable",
        "account.totp_disable",
    ] {
        assert!(actions.contains(&action.to_string()), "{action}");
    }
}

#[tokio::test]
async fn sessions_can_be_ended_one_by_one_or_everywhere() {
    let h = harness().await;
    let phone = session_cookie(&h.platform, h.owner).await;
    let me = h.browser(Some(&h.cookie()));
    let body = text(me.get("/ui/account").await).await;
    assert!(body.contains("this session"));
    let ids: Vec<String> = body
        .split("/ui/account/sessions/")
        .skip(1)
        .filter_map(|s| s.split('/').next().map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 2);
    // End the other session (the one not marked as this one).
    let other = ids
        .iter()
        .find(|id| {
            let row = body
                .split(&format!("/ui/account/sessions/{id}/"))
                .next()
                .unwrap();
            !row.rsplit("<tr>").next().unwrap().contains("this session")
        })
        .unwrap()
        .clone();
    let (_, body) = me
        .post_and_follow(&format!("/ui/account/sessions/{other}/revoke"), &[])
        .await;
    assert!(body.contains("The session was ended."));
    assert_eq!(location(&h.get_as(&phone, "/ui/agents").await), "/ui/login");
    let response = me.post("/ui/account/sign-out-everywhere", &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/ui/login?notice=signed_out");
    assert!(!me.has("agentry_session"));
    assert_eq!(location(&h.get("/ui/agents").await), "/ui/login");
    let actions = audit_actions(&h).await;
    assert!(actions.contains(&"account.session_revoke".to_string()));
    assert!(actions.contains(&"account.sign_out_everywhere".to_string()));
}

#[test]
fn urlencode_builds_query_strings_and_path_segments() {
    let env = page::environment();
    let render = |src: &str, ctx: minijinja::Value| env.render_str(src, ctx).unwrap();
    let mut q = BTreeMap::new();
    q.insert("action", "member.*");
    q.insert("actor", "a b&c=d/é");
    assert_eq!(
        render("{{ q | urlencode }}", minijinja::context! { q => q }),
        "action=member.*&amp;actor=a%20b%26c%3Dd%2F%C3%A9"
    );
    assert_eq!(
        render("{{ s | urlencode }}", minijinja::context! { s => "x y" }),
        "x%20y"
    );
    assert_eq!(
        render("{{ n | urlencode }}", minijinja::context! { n => () }),
        ""
    );
}

/// Bills one model call of `agent` to the ledger now, as the executor's commit would.
async fn bill(h: &Harness, agent: uuid::Uuid, model: &str, cost_pico: Option<i64>) {
    use agentry_store::costs::{CostEvent, insert_statement};
    let event = CostEvent {
        org_id: DEFAULT_ORG.0,
        workspace_id: orgs::DEFAULT_WORKSPACE.0,
        run_id: uuid::Uuid::now_v7(),
        step: 0,
        attempt: 0,
        agent_id: agent,
        agent_version: 1,
        api_key_id: None,
        user_id: None,
        end_user: None,
        provider: "fake".into(),
        model: model.into(),
        input_tokens: 1200,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        output_tokens: 34,
        cost_pico,
        cache_hit: false,
        outcome: "ok",
        at: chrono::Utc::now(),
    };
    h.platform
        .db
        .write_batch::<agentry_store::NoRow>(&[insert_statement(&event)], false)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_costs_page_shows_spend_budgets_and_health_to_the_owner() {
    use agentry_engine::service::budgets::{self, BudgetInput, BudgetScope};
    use agentry_store::budgets::{Settlement, settle_statements};
    let h = harness().await;
    // Nothing billed yet: every section says so instead of showing an empty table.
    let empty = text(h.get("/ui/costs").await).await;
    assert!(empty.contains("No model calls were billed"), "{empty}");
    assert!(empty.contains("No budgets."));
    assert!(empty.contains("No model has been called"));

    h.create_agent("helper", "Helper").await;
    let agent = agentry_engine::service::agents::get(&h.platform, orgs::default_scope(), "helper")
        .await
        .unwrap()
        .id
        .0;
    bill(&h, agent, "m", Some(12_345_678_900)).await;
    // A model without a known price: counted, not priced.
    bill(&h, agent, "unpriced-model", None).await;
    let org = orgs::default_scope().org();
    let budget = budgets::create(
        &h.platform,
        org,
        BudgetInput {
            name: "Helper <monthly>".into(),
            scope: BudgetScope {
                kind: "agent".into(),
                id: Some(agent.to_string()),
            },
            period: "month".into(),
            timezone: "UTC".into(),
            limit_usd: Some(serde_json::json!("10.00")),
            limit_tokens: None,
            thresholds: None,
            notify_url: None,
            notify_email: None,
        },
    )
    .await
    .unwrap();
    // 2.50 USD spent in the current period, as settled calls would have added.
    let settle = settle_statements(
        uuid::Uuid::now_v7(),
        0,
        &[Settlement {
            budget_id: budget.row.id,
            org_id: DEFAULT_ORG.0,
            period_start: budget.period_start.clone(),
            spent: 2_500_000_000_000,
        }],
        &[],
    );
    h.platform
        .db
        .write_batch::<agentry_store::NoRow>(&settle, false)
        .await
        .unwrap();

    let response = h.get("/ui/costs").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let body = text(response).await;
    // Grouped by agent by default, labelled with the slug, the exact cost and a total row.
    assert!(
        body.contains(r#"id="group-agent" aria-current="page""#),
        "{body}"
    );
    assert!(body.contains(&format!("helper <code class=\"id muted\">{agent}</code>")));
    assert!(body.contains(r#"<code class="usd">0.0123456789</code>"#));
    let total = &body[body.find(r#"id="cost-total""#).unwrap()..];
    let cells: Vec<&str> = total
        .split("<td class=\"num\">")
        .skip(1)
        .map(|c| c.split('<').next().unwrap_or(""))
        .collect();
    // calls, unpriced, cache hits, input, output (the cost is inside a <code>).
    assert_eq!(cells[..5], ["2", "1", "0", "2400", "68"]);
    assert!(total.contains(r#"<code class="usd">0.0123456789</code>"#));
    // The budget: escaped name, readable scope, spent / limit, percent and reserved.
    assert!(body.contains("Helper &lt;monthly&gt;"));
    assert!(!body.contains("Helper <monthly>"));
    assert!(body.contains("agent: helper"));
    assert!(body.contains("2.5 / 10"));
    assert!(body.contains(r#"value="25">25.0%</meter>"#));
    assert!(body.contains("No model has been called"));
    assert!(body.contains(r#"href="/ui/costs" aria-current="page""#));

    // Every grouping is linked, and each link opens the report grouped that way.
    for grouping in [
        "agent",
        "model",
        "day",
        "api_key",
        "user",
        "end_user",
        "workspace",
    ] {
        let link = format!("/ui/costs?group_by={grouping}");
        assert!(body.contains(&format!(r#"href="{link}""#)), "{grouping}");
        let response = h.get(&link).await;
        assert_eq!(response.status(), StatusCode::OK, "{grouping}");
        let page = text(response).await;
        assert!(
            page.contains(&format!(r#"id="group-{grouping}" aria-current="page""#)),
            "{grouping}"
        );
        assert!(
            page.contains(r#"<code class="usd">0.0123456789</code>"#),
            "{grouping}"
        );
    }
    let by_model = text(h.get("/ui/costs?group_by=model").await).await;
    assert!(by_model.contains("fake /</span> m"), "{by_model}");
    assert!(by_model.contains("fake /</span> unpriced-model"));
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert!(
        text(h.get("/ui/costs?group_by=day").await)
            .await
            .contains(&today)
    );
    // No end user was given: one group without a key.
    assert!(
        text(h.get("/ui/costs?group_by=end_user").await)
            .await
            .contains("(none)")
    );
    // An empty value is the default; an unknown one is refused, not passed on.
    assert!(
        text(h.get("/ui/costs?group_by=").await)
            .await
            .contains(r#"id="group-agent" aria-current="page""#)
    );
    for bad in ["/ui/costs?group_by=nonsense", "/ui/costs?group_by=%3Cb%3E"] {
        let response = h.get(bad).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(!text(response).await.contains("<b>"), "{bad}");
    }
}

#[test]
fn open_circuit_breakers_are_highlighted_and_escaped() {
    let env = page::environment();
    let breaker = |provider: &str, state: &str, retry: Option<u64>| {
        minijinja::context! {
            provider => provider, model => "m<1>", state => state, calls => 12,
            failures => 7, consecutive_overloads => 3, retry_in_seconds => retry,
        }
    };
    let ctx = minijinja::context! {
        nav => "costs", group_by => "agent", heading => "Agent", groupings => Vec::<()>::new(),
        from => "a", to => "b", lines => Vec::<()>::new(), total => (), total_cache_hits => 0,
        budgets => Vec::<()>::new(),
        health => vec![
            breaker("<script>x</script>", "open", Some(25)),
            breaker("ok", "closed", None),
        ],
    };
    let html = env
        .get_template("costs.html")
        .and_then(|t| t.render(ctx))
        .unwrap();
    assert!(
        html.contains(r#"<tr class="breaker breaker-open">"#),
        "{html}"
    );
    assert!(html.contains(r#"<tr class="breaker breaker-closed">"#));
    assert!(html.contains("25 s"));
    assert!(!html.contains("<script>x"));
    assert!(html.contains("&lt;script&gt;x"));
    assert!(html.contains("m&lt;1&gt;"));
    assert!(!html.contains("No model has been called"));
}

#[tokio::test]
async fn only_admins_and_owners_see_and_open_the_costs_page() {
    let h = harness().await;
    let (_, admin) = h.member("admin@example.com", "admin").await;
    let (_, member) = h.member("member@example.com", "member").await;
    let (_, viewer) = h.member("viewer@example.com", "viewer").await;
    let link = r#"href="/ui/costs""#;
    for cookie in [h.cookie(), admin] {
        assert!(
            text(h.get_as(&cookie, "/ui/agents").await)
                .await
                .contains(link)
        );
        assert_eq!(
            h.get_as(&cookie, "/ui/costs").await.status(),
            StatusCode::OK
        );
    }
    for (role, cookie) in [("member", member), ("viewer", viewer)] {
        let start = text(h.get_as(&cookie, "/ui/agents").await).await;
        assert!(!start.contains(link), "{role}");
        for path in ["/ui/costs", "/ui/costs?group_by=model"] {
            let response = h.get_as(&cookie, path).await;
            // The same refusal as the audit log gives them.
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{role} {path}");
            let body = text(response).await;
            assert!(!body.contains("Costs</h1>"), "{role}");
            assert_eq!(
                h.get_as(&cookie, "/ui/audit").await.status(),
                StatusCode::FORBIDDEN
            );
        }
    }
}
