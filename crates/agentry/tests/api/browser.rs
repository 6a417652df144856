//! The dashboard in a real headless Chromium (Debian's `chromium` + `chromium-driver`), driven
//! over the W3C WebDriver protocol with a few lines of our own (no extra dependency).
//! Skipped loudly when the browser is missing; `.ci/run` installs it. The client ([`Browser`])
//! is shared with the identity pages' test (`browser_identity.rs`).

use crate::harness::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    http: reqwest::Client,
    base: String,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Option<Browser> {
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())?;
        if !std::path::Path::new("/usr/bin/chromedriver").exists() {
            return None;
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
            l.local_addr().ok()?.port()
        };
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().ok()?;
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-quic", "--no-first-run", format!("--user-data-dir={}", profile.path().display())]
        }}}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let session = r["value"]["sessionId"].as_str()?.to_string();
        Some(Browser {
            http,
            base,
            session,
            driver,
            _profile: profile,
        })
    }

    pub async fn cmd(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let req = self.http.request(method.clone(), url);
        let req = if method == reqwest::Method::GET || method == reqwest::Method::DELETE {
            req
        } else {
            req.json(&body)
        };
        let r: Value = req.send().await.unwrap().json().await.unwrap();
        r["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", json!({"url": url}))
            .await;
    }

    pub async fn find(&self, css: &str) -> Option<String> {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v[ELEMENT].as_str().map(String::from)
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self
            .find(css)
            .await
            .unwrap_or_else(|| panic!("no element {css}"));
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{el}/value"),
            json!({"text": text}),
        )
        .await;
    }

    pub async fn click(&self, css: &str) {
        let el = self
            .find(css)
            .await
            .unwrap_or_else(|| panic!("no element {css}"));
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{el}/click"),
            json!({}),
        )
        .await;
    }

    pub async fn text(&self, css: &str) -> String {
        match self.find(css).await {
            Some(el) => self
                .cmd(
                    reqwest::Method::GET,
                    &format!("/element/{el}/text"),
                    json!({}),
                )
                .await
                .as_str()
                .unwrap_or("")
                .to_string(),
            None => String::new(),
        }
    }

    /// Waits (bounded) for a navigation started by a click to land on a URL containing `part`.
    pub async fn wait_for_url(&self, part: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let url = self.url().await;
            if url.contains(part) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never reached a URL with {part}; at {url}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", json!({}))
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

impl Browser {
    /// Signs in on the sign-in page with email and password and waits for the dashboard.
    pub async fn sign_in(&self, app: &TestApp, email: &str, password: &str) {
        self.goto(&app.url("/ui/login")).await;
        self.type_into("#email", email).await;
        self.type_into("#password", password).await;
        self.click("form[action='/ui/login'] button[type=submit]")
            .await;
        self.wait_for_url("/ui/agents").await;
    }

    /// Signs out with the header's button and waits for the sign-in page.
    pub async fn sign_out(&self) {
        self.click("form.signout button[type=submit]").await;
        self.wait_for_url("/ui/login").await;
    }

    /// Waits (bounded) until the element exists and its text contains `needle`; returns the text.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let text = self.text(css).await;
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never showed {needle:?}; it shows {text:?} at {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether an element matches `css` on the current page.
    pub async fn exists(&self, css: &str) -> bool {
        self.find(css).await.is_some()
    }
}

impl Drop for Browser {
    /// Ends the session first (chromedriver then closes Chromium; killing only the driver would
    /// orphan the browser), with a plain blocking request since `drop` cannot await.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let addr = self.base.trim_start_matches("http://").to_string();
        if let Ok(mut stream) = std::net::TcpStream::connect(&addr) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            if stream.write_all(request.as_bytes()).is_ok() {
                // The answer arrives once the browser has closed; its first bytes are enough.
                let mut answer = [0u8; 512];
                let _ = stream.read(&mut answer);
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_run_an_agent_and_watch_it_stream_in_chromium() {
    let Some(browser) = Browser::start().await else {
        eprintln!("NOTE: chromium/chromedriver not installed: the browser test was SKIPPED");
        return;
    };
    let app = TestApp::spawn().await;
    app.create_fake_provider().await;
    // Streamed slowly, so the page is open while text arrives.
    app.create_agent("calc", "echo+chunk_delay=80", &["calculator"])
        .await;

    browser.sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert!(browser.text("body").await.contains("calc"));

    browser.goto(&app.url("/ui/agents/calc")).await;
    browser.type_into("#input", "what is 6*7?").await;
    browser
        .click("form[action$='/runs'] button[type=submit]")
        .await;
    browser.wait_for_url("/ui/runs/").await;

    // The live view streams the answer, then the page reloads itself into the final timeline.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut saw_live_text = false;
    loop {
        let status = browser.text("#run-status").await;
        if browser.text("#live-log").await.contains("The answer") {
            saw_live_text = true;
        }
        if status == "completed" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed the run completed (status {status})"
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let body = browser.text("body").await;
    assert!(body.contains("The answer is"), "{body}");
    assert!(
        body.contains("calculator"),
        "the step timeline shows the tool call: {body}"
    );
    eprintln!("live text seen while running: {saw_live_text}");
    assert!(
        saw_live_text,
        "the streamed text never appeared in the live view"
    );
}
