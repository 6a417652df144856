//! The test harness: starts the real `agentry serve` binary on port 0 with a temp SQLite file
//! (or a fresh PostgreSQL database when AGENTRY_TEST_DATABASE_URL is set) and the scripted fake
//! model server in this process, and offers typed helpers over HTTP.

use agentry_fakellm::FakeLlmHandle;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

pub const ADMIN_TOKEN: &str = "agt_test_admin_token_0123456789abcdef0123456789abcdef";
pub const MASTER_KEY: &str = "0101010101010101010101010101010101010101010101010101010101010101";
/// The owner account created on first start.
pub const ADMIN_EMAIL: &str = "admin@localhost.localdomain";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple 42";

/// Where the server keeps its data; shared by restarts and by several servers.
#[derive(Clone)]
pub struct Storage {
    pub data_dir: PathBuf,
    pub database_url: String,
    _dir: Arc<tempfile::TempDir>,
}

impl Storage {
    pub async fn new() -> Storage {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let pg = std::env::var("AGENTRY_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty());
        let database_url = match pg {
            Some(admin_url) => fresh_pg_database(&admin_url).await,
            None => format!("sqlite://{}", dir.path().join("agentry.db").display()),
        };
        Storage {
            data_dir,
            database_url,
            _dir: Arc::new(dir),
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url.starts_with("postgres")
    }
}

async fn fresh_pg_database(admin_url: &str) -> String {
    use sqlx::Connection;
    let name = format!("agentry_test_{}", uuid_simple());
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to AGENTRY_TEST_DATABASE_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap_or(admin_url);
    format!("{base}/{name}")
}

fn uuid_simple() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}_{}", nanos, std::process::id())
}

pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub logs: Arc<Mutex<Vec<String>>>,
    pub storage: Storage,
    extra_env: Vec<(String, String)>,
}

impl Server {
    pub fn start(storage: &Storage, extra_env: &[(&str, &str)]) -> Server {
        let extra_env: Vec<(String, String)> = extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut server = Server {
            child: None,
            url: String::new(),
            logs: Arc::new(Mutex::new(Vec::new())),
            storage: storage.clone(),
            extra_env,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_agentry"));
        cmd.arg("serve")
            .arg("--bind")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&self.storage.data_dir)
            .env("AGENTRY_DATABASE_URL", &self.storage.database_url)
            .env("AGENTRY_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("AGENTRY_MASTER_KEY", MASTER_KEY)
            .env("AGENTRY_LEASE_SECONDS", "3")
            .env("AGENTRY_DATABASE_MAX_CONNECTIONS", "4")
            .env("AGENTRY_MODEL_FIRST_TOKEN_TIMEOUT_SECONDS", "20")
            .env("AGENTRY_ADMIN_PASSWORD", ADMIN_PASSWORD)
            // The fake model server and fake identity provider listen on loopback.
            .env("AGENTRY_HTTP_ALLOW_HOSTS", "[\"127.0.0.1\"]")
            .env("AGENTRY_SSO_ALLOW_HTTP", "true")
            .env_remove("AGENTRY_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn agentry serve");
        let stderr = child.stderr.take().expect("stderr");
        let logs = self.logs.clone();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("Agentry is listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
                if let Ok(mut l) = logs.lock() {
                    l.push(line);
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => self.url = url,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "agentry serve did not start:\n{}",
                    self.logs.lock().map(|l| l.join("\n")).unwrap_or_default()
                );
            }
        }
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("server did not exit after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().map(|l| l.join("\n")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running server, the fake model server, and an HTTP client with the admin token.
pub struct TestApp {
    pub server: Server,
    pub fake: FakeLlmHandle,
    pub http: reqwest::Client,
    pub token: String,
}

pub struct Response {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    pub async fn spawn_with(env: &[(&str, &str)]) -> TestApp {
        let storage = Storage::new().await;
        let fake = agentry_fakellm::start("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("fake llm");
        let server = Server::start(&storage, env);
        TestApp {
            server,
            fake,
            http: reqwest::Client::new(),
            token: ADMIN_TOKEN.to_string(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Response {
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Response {
            status,
            body,
            headers,
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send(self.http.get(self.url(path)).bearer_auth(&self.token))
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.send(
            self.http
                .post(self.url(path))
                .bearer_auth(&self.token)
                .json(&body),
        )
        .await
    }

    pub async fn put(&self, path: &str, body: Value) -> Response {
        self.send(
            self.http
                .put(self.url(path))
                .bearer_auth(&self.token)
                .json(&body),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.send(self.http.delete(self.url(path)).bearer_auth(&self.token))
            .await
    }

    /// Registers the fake model server as provider `fake`.
    pub async fn create_fake_provider(&self) {
        let r = self
            .post(
                "/api/v1/providers",
                json!({"name": "fake", "kind": "openai", "base_url": self.fake.base_url(), "api_key": "sk-fake-provider-key"}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }

    /// Registers the fake model server as provider `name` speaking `kind`'s wire format
    /// (`anthropic` and `gemini` take the server's root, not its `/v1`).
    pub async fn create_fake_provider_of_kind(&self, name: &str, kind: &str) {
        let root = self.fake.base_url().trim_end_matches("/v1").to_string();
        let r = self
            .post(
                "/api/v1/providers",
                json!({"name": name, "kind": kind, "base_url": root, "api_key": "sk-fake"}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }

    pub async fn create_agent(&self, slug: &str, model: &str, tools: &[&str]) -> Value {
        let r = self
            .post(
                "/api/v1/agents",
                json!({"slug": slug, "name": slug, "instructions": "You are a test agent.", "model": format!("fake/{model}"), "tools": tools}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        r.body
    }

    /// Creates an agent with a full `provider/model` name.
    pub async fn create_agent_with_model(&self, slug: &str, model: &str) -> Value {
        let r = self
            .post(
                "/api/v1/agents",
                json!({"slug": slug, "name": slug, "instructions": "You are a test agent.", "model": model}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        r.body
    }

    /// The line of `GET /costs?group_by=…` whose key is `key` (None when there is none).
    pub async fn cost_line(&self, group_by: &str, key: &str) -> Option<Value> {
        let r = self
            .get(&format!("/api/v1/costs?group_by={group_by}"))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body["data"]
            .as_array()
            .and_then(|lines| lines.iter().find(|l| l["key"] == key).cloned())
    }

    /// Billed calls of one model, from the cost report.
    pub async fn model_calls(&self, model: &str) -> i64 {
        self.cost_line("model", model)
            .await
            .map_or(0, |l| l["calls"].as_i64().unwrap_or(0))
    }

    /// Starts a run and returns its id.
    pub async fn start_run(&self, slug: &str, input: Value) -> String {
        let r = self
            .post(
                &format!("/api/v1/agents/{slug}/runs"),
                json!({"input": input}),
            )
            .await;
        assert_eq!(r.status, 202, "{:?}", r.body);
        r.body["id"].as_str().expect("id").to_string()
    }

    /// Polls until the run ends (or panics after `timeout`).
    pub async fn wait_run(&self, id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.get(&format!("/api/v1/runs/{id}")).await;
            if r.status == 200
                && matches!(
                    r.body["status"].as_str(),
                    Some("completed" | "failed" | "cancelled")
                )
            {
                return r.body;
            }
            if Instant::now() > deadline {
                panic!(
                    "run {id} did not end: {:?}\nserver log:\n{}",
                    r.body,
                    self.server.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Reads a run's SSE stream until it closes (or `max_events` were read).
    pub async fn events(
        &self,
        id: &str,
        last_event_id: Option<i64>,
        max_events: usize,
    ) -> Vec<Sse> {
        use futures_util::StreamExt;
        let mut req = self
            .http
            .get(self.url(&format!("/api/v1/runs/{id}/events")))
            .bearer_auth(&self.token);
        if let Some(last) = last_event_id {
            req = req.header("Last-Event-ID", last.to_string());
        }
        let resp = req.send().await.expect("sse");
        assert_eq!(resp.status().as_u16(), 200);
        let mut parser = agentry_llm::sse::SseParser::new();
        let mut out = Vec::new();
        let mut stream = resp.bytes_stream();
        let read = async {
            while let Some(Ok(chunk)) = stream.next().await {
                for e in parser.push(&chunk).expect("sse parse") {
                    out.push(Sse {
                        id: e.id.as_deref().and_then(|i| i.parse().ok()).unwrap_or(-1),
                        event: e.event.unwrap_or_default(),
                        data: serde_json::from_str(&e.data).unwrap_or(Value::Null),
                    });
                    if out.len() >= max_events {
                        return;
                    }
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(60), read)
            .await
            .expect("sse stream timed out");
        out
    }
}

#[derive(Debug, Clone)]
pub struct Sse {
    pub id: i64,
    pub event: String,
    pub data: Value,
}

impl TestApp {
    /// Creates another organization directly in the database and returns an API key for it.
    pub async fn other_org_key(&self) -> String {
        let db = agentry_store::Db::connect(&self.server.storage.database_url, 2)
            .await
            .expect("db");
        let scope = agentry_store::orgs::create_org(&db, "other")
            .await
            .expect("org");
        let token = insert_key(&db, scope, "owner", true).await;
        db.close().await;
        token
    }

    pub fn as_token(&self, token: &str) -> TestApp {
        TestApp {
            server: Server {
                child: None,
                url: self.server.url.clone(),
                logs: self.server.logs.clone(),
                storage: self.server.storage.clone(),
                extra_env: vec![],
            },
            fake: self.fake.clone(),
            http: self.http.clone(),
            token: token.to_string(),
        }
    }
}

/// Inserts an API key straight into the database (for orgs the API cannot create).
pub async fn insert_key(
    db: &agentry_store::Db,
    scope: agentry_core::scope::WorkspaceScope,
    role: &str,
    org_scoped: bool,
) -> String {
    let token = agentry_engine::secrets::generate_api_key().expect("key");
    agentry_store::api_keys::create(
        db,
        scope,
        agentry_store::api_keys::NewApiKey {
            name: "test",
            key_hash: &agentry_engine::secrets::token_digest(&token),
            prefix: &token[..12],
            role,
            org_scoped,
            created_by: None,
            expires_at: None,
        },
    )
    .await
    .expect("key");
    token
}

/// A person signed in to the dashboard/API with a session cookie (what a browser holds).
pub struct SessionClient {
    pub base: String,
    pub http: reqwest::Client,
    /// `name=value` of the session cookie, once signed in.
    pub cookie: Option<String>,
    /// The raw `Set-Cookie` of the last sign-in (attributes included).
    pub set_cookie: Option<String>,
}

impl SessionClient {
    pub fn new(app: &TestApp) -> SessionClient {
        SessionClient {
            base: app.server.url.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookie: None,
            set_cookie: None,
        }
    }

    /// Sends with the cookie; remembers a new session cookie from `Set-Cookie`.
    pub async fn send(&mut self, mut req: reqwest::RequestBuilder) -> Response {
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        if let Some(sc) = headers.get("set-cookie").and_then(|v| v.to_str().ok()) {
            let pair = sc.split(';').next().unwrap_or("").to_string();
            self.set_cookie = Some(sc.to_string());
            self.cookie = (!pair.ends_with('=')).then_some(pair);
        }
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Response {
            status,
            body,
            headers,
        }
    }

    pub async fn get(&mut self, path: &str) -> Response {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    pub async fn post(&mut self, path: &str, body: Value) -> Response {
        let req = self.http.post(format!("{}{path}", self.base)).json(&body);
        self.send(req).await
    }

    pub async fn delete(&mut self, path: &str) -> Response {
        let req = self.http.delete(format!("{}{path}", self.base));
        self.send(req).await
    }

    pub async fn sign_in(&mut self, email: &str, password: &str) -> Response {
        self.post(
            "/api/v1/auth/sign-in",
            json!({"email": email, "password": password}),
        )
        .await
    }
}

impl TestApp {
    /// A session client signed in as the owner account.
    pub async fn owner_session(&self) -> SessionClient {
        let mut s = SessionClient::new(self);
        let r = s.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        s
    }

    /// Invites `email` with `role` (optionally in one workspace), accepts the invitation with
    /// `password`, and returns the new member's signed-in session and user id.
    pub async fn add_member(
        &self,
        email: &str,
        role: &str,
        workspace: Option<&str>,
        password: &str,
    ) -> (SessionClient, String) {
        let mut body = json!({"email": email, "role": role});
        if let Some(ws) = workspace {
            body["workspace_id"] = json!(ws);
        }
        let inv = self.post("/api/v1/invitations", body).await;
        assert_eq!(inv.status, 201, "{:?}", inv.body);
        let url = inv.body["invite_url"]
            .as_str()
            .expect("invite url")
            .to_string();
        let token = url.split("token=").nth(1).expect("token").to_string();
        let mut s = SessionClient::new(self);
        let r = s
            .post(
                "/api/v1/auth/invitations/accept",
                json!({"token": token, "name": email, "password": password}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let user_id = r.body["user_id"].as_str().expect("user id").to_string();
        (s, user_id)
    }

    /// Creates an API key with the admin token and returns (id, key).
    pub async fn create_key(&self, role: &str, workspace: Option<&str>) -> (String, String) {
        let mut body = json!({"name": format!("{role} key"), "role": role});
        if let Some(ws) = workspace {
            body["workspace_id"] = json!(ws);
        }
        let r = self.post("/api/v1/api-keys", body).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        (
            r.body["id"].as_str().expect("id").to_string(),
            r.body["key"].as_str().expect("key").to_string(),
        )
    }

    /// Sends a request with a raw path (no URL normalisation) and returns the status code.
    pub async fn raw_status(&self, method: &str, path: &str, headers: &str) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.server.url.trim_start_matches("http://").to_string();
        let mut stream = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n{headers}\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut buf = Vec::new();
        let _ = stream.read_to_end(&mut buf).await;
        let text = String::from_utf8_lossy(&buf);
        text.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}
