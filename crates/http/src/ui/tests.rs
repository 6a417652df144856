//! Dashboard tests: the whole application router over a real platform on a temporary SQLite
//! file. No worker runs, so a started run stays queued.

use super::page;
use crate::{AppState, install_metrics, router};
use agentry_engine::secrets::Secrets;
use agentry_engine::service::providers::ProviderInput;
use agentry_engine::service::{api_keys, providers};
use agentry_engine::{Platform, PlatformParts};
use agentry_store::orgs;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use std::sync::Arc;
use tower::ServiceExt;

struct Harness {
    app: Router,
    platform: Arc<Platform>,
    token: String,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let db = agentry_store::Db::connect(&url, 4).await.unwrap();
    orgs::ensure_default(&db).await.unwrap();
    let platform = Platform::new(PlatformParts {
        db,
        secrets: Secrets::from_key([1; 32]),
        tools: agentry_tools::ToolRegistry::builtin(Default::default()),
        config: Default::default(),
        http: reqwest::Client::new(),
    });
    let (_, token) = api_keys::create(&platform, orgs::default_scope(), "t")
        .await
        .unwrap();
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
    let app = router(AppState {
        platform: platform.clone(),
        metrics: install_metrics(),
    });
    Harness {
        app,
        platform,
        token,
        _dir: dir,
    }
}

impl Harness {
    fn cookie(&self) -> String {
        format!("agentry_session={}", self.token)
    }

    async fn send(&self, request: Request<Body>) -> Response<Body> {
        self.app.clone().oneshot(request).await.unwrap()
    }

    async fn get(&self, path: &str) -> Response<Body> {
        self.send(
            Request::get(path)
                .header(header::COOKIE, self.cookie())
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
    assert!(body.contains(r#"name="token""#));
    assert!(body.contains(r#"action="/ui/login""#));
}

#[tokio::test]
async fn a_wrong_token_shows_the_form_again_with_401() {
    let h = harness().await;
    for token in ["agt_0000000000000000", "nonsense", ""] {
        let response = h.post_anonymous("/ui/login", &[("token", token)]).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().get(header::SET_COOKIE).is_none());
        let body = text(response).await;
        assert!(body.contains(r#"name="token""#));
        assert!(body.contains(r#"class="alert""#));
    }
}

#[tokio::test]
async fn a_good_token_sets_a_strict_httponly_cookie_and_redirects() {
    let h = harness().await;
    let response = h
        .post_anonymous("/ui/login", &[("token", &format!("  {}\n", h.token))])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/ui/agents");
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(cookie.starts_with(&format!("agentry_session={};", h.token)));
    assert!(cookie.contains("HttpOnly"));
    assert!(cookie.contains("SameSite=Strict"));
    assert!(cookie.contains("Path=/"));
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
    // A post without the cookie (what a cross-site form gets under SameSite=Strict) changes
    // nothing.
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
                ("model", "no-slash"),
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
            &[("slug", "Bad Slug"), ("name", "n"), ("model", "no-slash")],
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
