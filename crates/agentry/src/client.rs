//! The HTTP client behind the CLI's client commands: `AGENTRY_URL` (default
//! http://127.0.0.1:7700) and `AGENTRY_TOKEN`.

use anyhow::{Context, bail};
use serde_json::Value;

pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    pub fn from_env() -> anyhow::Result<Client> {
        let base = std::env::var("AGENTRY_URL").unwrap_or_else(|_| "http://127.0.0.1:7700".into());
        let token = std::env::var("AGENTRY_TOKEN")
            .context("AGENTRY_TOKEN is not set: export the API token `agentry serve` printed")?;
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::new(),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    /// Sends and returns the JSON body, turning API errors into readable messages.
    pub async fn json(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach Agentry at {}", self.base))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{}", describe_error(status.as_u16(), &body));
        }
        Ok(body)
    }
}

pub fn describe_error(status: u16, body: &Value) -> String {
    let error = &body["error"];
    match (error["code"].as_str(), error["message"].as_str()) {
        (Some(code), Some(message)) => format!("{message} ({code}, HTTP {status})"),
        _ => format!("HTTP {status}"),
    }
}
