//! The `http_request` tool: lets a model call HTTP APIs and read web pages, through the
//! [`GuardedHttpClient`] so it cannot reach the machine's own network.

use crate::codes;
use crate::guard::{GuardedHttpClient, GuardedRequest, GuardedResponse};
use agentry_core::tool::{Tool, ToolContext, ToolError};
use reqwest::Method;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Headers the caller may not set: they describe the connection or the message framing, which
/// the client manages, and overriding them enables request smuggling or virtual-host tricks.
const REFUSED_HEADERS: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "expect",
];

const IDEMPOTENCY_KEY: &str = "idempotency-key";

#[derive(Debug, Clone)]
pub struct HttpRequestTool {
    client: Arc<GuardedHttpClient>,
}

impl HttpRequestTool {
    pub fn new(client: Arc<GuardedHttpClient>) -> Self {
        Self { client }
    }
}

#[derive(Debug, Deserialize, Clone, Copy, Default, PartialEq, Eq)]
enum HttpMethod {
    #[default]
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "POST")]
    Post,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    url: String,
    #[serde(default)]
    method: HttpMethod,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<String>,
}

fn invalid(message: impl Into<String>) -> ToolError {
    ToolError::new(codes::INVALID_ARGUMENTS, message)
}

/// Builds the outgoing headers, refusing framing/hop-by-hop overrides, and adds the call's
/// idempotency key to POSTs so a retried call has its effect once.
fn build_headers(
    requested: &BTreeMap<String, String>,
    method: HttpMethod,
    idempotency_key: &str,
) -> Result<HeaderMap, ToolError> {
    let mut headers = HeaderMap::new();
    for (name, value) in requested {
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(format!("'{name}' is not a valid header name")))?;
        if REFUSED_HEADERS.contains(&header_name.as_str()) {
            return Err(invalid(format!(
                "the '{name}' header cannot be set; it is managed by the HTTP client"
            )));
        }
        let header_value = HeaderValue::from_str(value)
            .map_err(|_| invalid(format!("the value of header '{name}' is not valid")))?;
        headers.append(header_name, header_value);
    }
    if method == HttpMethod::Post && !headers.contains_key(IDEMPOTENCY_KEY) {
        let value = HeaderValue::from_str(idempotency_key).map_err(|_| {
            ToolError::new(
                codes::REQUEST_FAILED,
                "the call's idempotency key is not a valid header value",
            )
        })?;
        headers.insert(HeaderName::from_static(IDEMPOTENCY_KEY), value);
    }
    Ok(headers)
}

/// Decodes the body as UTF-8, replacing invalid bytes. A cut at the size cap can split a
/// multi-byte character; that partial character is dropped rather than shown as garbage.
fn body_text(body: &[u8], truncated: bool) -> String {
    let mut end = body.len();
    if truncated
        && let Err(e) = std::str::from_utf8(body)
        && e.error_len().is_none()
    {
        // `error_len() == None` means "input ended mid-character".
        end = e.valid_up_to();
    }
    String::from_utf8_lossy(&body[..end]).into_owned()
}

fn render(response: &GuardedResponse) -> Value {
    let mut headers = Map::new();
    for name in [header::CONTENT_TYPE, header::CONTENT_LENGTH] {
        if let Some(value) = response.headers.get(&name) {
            headers.insert(
                name.as_str().to_string(),
                Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned()),
            );
        }
    }
    json!({
        "status": response.status,
        "headers": headers,
        "body": body_text(&response.body, response.truncated),
        "truncated": response.truncated,
    })
}

#[async_trait::async_trait]
impl Tool for HttpRequestTool {
    fn name(&self) -> &str {
        "http_request"
    }

    fn description(&self) -> &str {
        "Makes an HTTP GET or POST request to a public http(s) URL and returns {\"status\", \
         \"headers\" (content-type, content-length), \"body\" (text), \"truncated\"}. Redirects \
         are followed. Large bodies are cut off (truncated: true). Private and internal \
         addresses are refused."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "url": {
                    "type": "string",
                    "description": "Absolute http:// or https:// URL."
                },
                "method": {
                    "type": "string",
                    "enum": ["GET", "POST"],
                    "description": "Defaults to GET."
                },
                "headers": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "Extra request headers, e.g. {\"Accept\": \"application/json\"}."
                },
                "body": {
                    "type": "string",
                    "description": "Request body for POST."
                }
            },
            "required": ["url"],
            "additionalProperties": false
        })
    }

    async fn call(&self, arguments: Value, context: &ToolContext) -> Result<Value, ToolError> {
        let args: Args = serde_json::from_value(arguments).map_err(|e| invalid(e.to_string()))?;
        if args.method == HttpMethod::Get && args.body.is_some() {
            return Err(invalid("a body can only be sent with POST"));
        }
        let headers = build_headers(&args.headers, args.method, &context.idempotency_key)?;
        let request = GuardedRequest {
            method: match args.method {
                HttpMethod::Get => Method::GET,
                HttpMethod::Post => Method::POST,
            },
            url: args.url,
            headers,
            body: args.body.map(String::into_bytes),
        };
        let response = self.client.send(request).await?;
        Ok(render(&response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_framing_and_host_headers_in_any_case() {
        for name in [
            "Host",
            "HOST",
            "Connection",
            "Transfer-Encoding",
            "Content-Length",
            "Upgrade",
            "TE",
        ] {
            let requested = BTreeMap::from([(name.to_string(), "x".to_string())]);
            let err = build_headers(&requested, HttpMethod::Get, "k").expect_err(name);
            assert_eq!(err.code, codes::INVALID_ARGUMENTS, "{name}");
        }
    }

    #[test]
    fn refuses_malformed_headers() {
        let bad_name = BTreeMap::from([("bad header".to_string(), "x".to_string())]);
        assert!(build_headers(&bad_name, HttpMethod::Get, "k").is_err());
        let bad_value = BTreeMap::from([("X-A".to_string(), "line\nbreak".to_string())]);
        assert!(build_headers(&bad_value, HttpMethod::Get, "k").is_err());
    }

    #[test]
    fn post_gets_the_idempotency_key_unless_the_caller_set_one() {
        let none = BTreeMap::new();
        let headers = build_headers(&none, HttpMethod::Post, "run-1-step-2").expect("valid");
        assert_eq!(
            headers.get("idempotency-key").map(|v| v.as_bytes()),
            Some(&b"run-1-step-2"[..])
        );

        let own = BTreeMap::from([("Idempotency-Key".to_string(), "mine".to_string())]);
        let headers = build_headers(&own, HttpMethod::Post, "run-1-step-2").expect("valid");
        let values: Vec<_> = headers.get_all("idempotency-key").iter().collect();
        assert_eq!(values, vec![&HeaderValue::from_static("mine")]);

        let headers = build_headers(&none, HttpMethod::Get, "run-1-step-2").expect("valid");
        assert!(headers.get("idempotency-key").is_none());
    }

    #[test]
    fn body_text_drops_a_character_split_by_truncation() {
        let text = "héllo".as_bytes();
        assert_eq!(body_text(&text[..2], true), "h");
        assert_eq!(body_text(&text[..2], false), "h\u{fffd}");
        assert_eq!(body_text(b"ok\xff!", false), "ok\u{fffd}!");
    }
}
