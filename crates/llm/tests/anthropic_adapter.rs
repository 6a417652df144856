//! The Anthropic Messages adapter against agentry-fakellm's `/v1/messages` route (in-process,
//! port 0) and, for the exact request head, a raw TCP server.

#![allow(clippy::unwrap_used)] // tests may unwrap

use agentry_core::ErrorCode;
use agentry_core::chat::{
    ChatModel, ChatRequest, ChatResponse, DeltaSink, FinishReason, Message, ProviderError, Role,
    ToolCall, ToolSpec, Usage,
};
use agentry_fakellm::{FakeLlmHandle, Reply};
use agentry_llm::{
    Anthropic, OpenAiConfig, RetryPolicy, Timeouts, build_provider, default_http_client,
};
use serde_json::json;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "sk-ant-test-secret-key-123";
const MODEL: &str = "scripted";

#[derive(Default)]
struct Collect(Mutex<Vec<String>>);

impl DeltaSink for Collect {
    fn text_delta(&self, text: &str) {
        self.0.lock().unwrap().push(text.to_string());
    }
}

impl Collect {
    fn deltas(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

async fn fake() -> FakeLlmHandle {
    agentry_fakellm::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// The API root (`http://addr`), as Anthropic's own base URL has no version.
fn root(fake: &FakeLlmHandle) -> String {
    format!("http://{}", fake.addr())
}

fn config(base_url: String) -> OpenAiConfig {
    OpenAiConfig {
        base_url,
        api_key: Some(KEY.to_string()),
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            first_token: Duration::from_secs(5),
            idle: Duration::from_secs(5),
            total: Duration::from_secs(20),
        },
        retry: RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_retry_after: Duration::from_secs(1),
        },
    }
}

fn provider(config: OpenAiConfig) -> Anthropic {
    Anthropic::new(config, default_http_client())
}

fn request(model: &str, text: &str) -> ChatRequest {
    ChatRequest {
        model: model.to_string(),
        messages: vec![Message::system("be brief"), Message::user(text)],
        ..ChatRequest::default()
    }
}

async fn chat(
    fake: &FakeLlmHandle,
    replies: Vec<Reply>,
) -> (Result<ChatResponse, ProviderError>, Collect) {
    fake.push_script(MODEL, replies);
    let sink = Collect::default();
    let result = provider(config(root(fake)))
        .chat(&request(MODEL, "hi"), &sink)
        .await;
    (result, sink)
}

fn assert_no_key(error: &ProviderError) {
    assert!(
        !error.message.contains(KEY),
        "key leaked: {}",
        error.message
    );
    assert!(!format!("{error:?}").contains(KEY));
}

#[tokio::test]
async fn streams_text_deltas_in_order_with_usage_and_cache_tokens() {
    let fake = fake().await;
    let (result, sink) = chat(
        &fake,
        vec![
            Reply::text("The quick brown fox")
                .with_usage(11, 4)
                .with_cache_usage(3, 5),
        ],
    )
    .await;
    let response = result.unwrap();
    assert_eq!(sink.deltas(), ["The", " quick", " brown", " fox"]);
    assert_eq!(response.content.as_deref(), Some("The quick brown fox"));
    assert_eq!(response.model, MODEL);
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert!(response.tool_calls.is_empty());
    // input = uncached + cache writes + cache reads; the cache fields keep the parts.
    assert_eq!(
        response.usage,
        Some(Usage {
            input_tokens: 11 + 3 + 5,
            output_tokens: 4,
            cache_read_tokens: 5,
            cache_write_tokens: 3,
        })
    );

    let recorded = fake.requests();
    assert_eq!(recorded.len(), 1);
    assert!(recorded[0].stream);
    assert_eq!(recorded[0].api_key.as_deref(), Some(KEY));
    assert_eq!(recorded[0].authorization, None);
    assert_eq!(
        recorded[0].body,
        json!({
            "model": MODEL,
            "max_tokens": 4096,
            "system": "be brief",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "stream": true
        })
    );
}

#[tokio::test]
async fn accepts_a_base_url_with_the_version_and_the_factory_kind() {
    let fake = fake().await;
    fake.push_script(MODEL, vec![Reply::text("via factory")]);
    let model =
        build_provider("anthropic", config(fake.base_url()), default_http_client()).unwrap();
    let response = model
        .chat(&request(MODEL, "hi"), &Collect::default())
        .await
        .unwrap();
    assert_eq!(response.content.as_deref(), Some("via factory"));
}

#[tokio::test]
async fn tool_call_round_trip_renders_tool_use_and_merged_tool_results() {
    let fake = fake().await;
    let args = r#"{"expression":"(1 + 2) * 3 - 4 / 5"}"#;
    fake.push_script(
        MODEL,
        vec![
            Reply::tool_calls([("calculator", args), ("current_time", "")]),
            Reply::text("done"),
        ],
    );
    let adapter = provider(config(root(&fake)));
    let tools = vec![ToolSpec {
        name: "calculator".into(),
        description: "math".into(),
        parameters: json!({"type": "object", "properties": {"expression": {"type": "string"}}}),
    }];
    let mut request = ChatRequest {
        model: MODEL.into(),
        messages: vec![Message::system("be brief"), Message::user("compute")],
        tools,
        temperature: Some(0.25),
        max_tokens: Some(64),
        ..ChatRequest::default()
    };
    let sink = Collect::default();
    let first = adapter.chat(&request, &sink).await.unwrap();
    assert!(sink.deltas().is_empty());
    assert_eq!(first.finish_reason, FinishReason::ToolCalls);
    assert_eq!(first.content, None);
    assert_eq!(
        first.tool_calls,
        [
            ToolCall {
                id: "call_1".into(),
                name: "calculator".into(),
                arguments: args.into()
            },
            // No input_json_delta content: the empty `input` object of the block start.
            ToolCall {
                id: "call_2".into(),
                name: "current_time".into(),
                arguments: "{}".into()
            },
        ]
    );

    request.messages.push(Message {
        role: Role::Assistant,
        content: None,
        tool_calls: first.tool_calls.clone(),
        tool_call_id: None,
    });
    request.messages.push(Message::tool_result("call_1", "8.2"));
    request
        .messages
        .push(Message::tool_result("call_2", "12:00"));
    let second = adapter.chat(&request, &sink).await.unwrap();
    assert_eq!(second.content.as_deref(), Some("done"));

    let body = &fake.requests()[1].body;
    assert_eq!(body["system"], "be brief");
    assert_eq!(body["max_tokens"], 64);
    assert_eq!(body["temperature"], 0.25);
    assert_eq!(
        body["tools"],
        json!([{"name": "calculator", "description": "math",
                "input_schema": {"type": "object",
                                 "properties": {"expression": {"type": "string"}}}}])
    );
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "compute"}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_1", "name": "calculator",
                 "input": {"expression": "(1 + 2) * 3 - 4 / 5"}},
                {"type": "tool_use", "id": "call_2", "name": "current_time", "input": {}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "8.2"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "12:00"}
            ]}
        ])
    );
}

#[tokio::test]
async fn built_in_behaviours_drive_a_tool_loop() {
    let fake = fake().await;
    let adapter = provider(config(root(&fake)));
    let mut request = ChatRequest {
        model: "echo".into(),
        messages: vec![Message::user("what is 6*7?")],
        tools: vec![ToolSpec {
            name: "calculator".into(),
            description: "math".into(),
            parameters: json!({"type": "object"}),
        }],
        ..ChatRequest::default()
    };
    let sink = Collect::default();
    let call = adapter.chat(&request, &sink).await.unwrap();
    assert_eq!(call.tool_calls.len(), 1);
    assert_eq!(call.tool_calls[0].arguments, r#"{"expression":"6*7"}"#);
    request.messages.push(Message {
        role: Role::Assistant,
        content: None,
        tool_calls: call.tool_calls.clone(),
        tool_call_id: None,
    });
    request
        .messages
        .push(Message::tool_result(call.tool_calls[0].id.clone(), "42"));
    let answer = adapter.chat(&request, &sink).await.unwrap();
    assert_eq!(answer.content.as_deref(), Some("The answer is 42."));

    request.model = "tool-loop-2".into();
    request.messages.truncate(1);
    for _ in 0..2 {
        let step = adapter.chat(&request, &sink).await.unwrap();
        assert_eq!(step.finish_reason, FinishReason::ToolCalls);
        request.messages.push(Message {
            role: Role::Assistant,
            content: None,
            tool_calls: step.tool_calls.clone(),
            tool_call_id: None,
        });
        request
            .messages
            .push(Message::tool_result(step.tool_calls[0].id.clone(), "2"));
    }
    let done = adapter.chat(&request, &sink).await.unwrap();
    assert_eq!(done.content.as_deref(), Some("done after 2 tool calls"));
}

#[tokio::test]
async fn retries_429_honouring_retry_after_then_gives_up_as_configured() {
    let fake = fake().await;
    let (result, _) = chat(
        &fake,
        vec![
            Reply::error(429).with_header("retry-after", "0"),
            Reply::text("after the limit"),
        ],
    )
    .await;
    assert_eq!(result.unwrap().content.as_deref(), Some("after the limit"));
    assert_eq!(fake.requests().len(), 2);

    // max_retries = 2: exactly three attempts, then rate_limited.
    let fake = self::fake().await;
    let (result, _) = chat(
        &fake,
        vec![Reply::error(429).with_header("retry-after", "0"); 4],
    )
    .await;
    let error = result.unwrap_err();
    assert_eq!(error.code, ErrorCode::ProviderRateLimited);
    assert_eq!(error.attempts, 3);
    assert_eq!(error.status, Some(429));
    assert!(
        error.message.contains("rate_limit_error"),
        "{}",
        error.message
    );
    assert_eq!(fake.requests().len(), 3);

    // A hint beyond max_retry_after (1 s) ends the call at once.
    let fake = self::fake().await;
    let (result, _) = chat(
        &fake,
        vec![
            Reply::error(429).with_header("retry-after", "30"),
            Reply::text("never"),
        ],
    )
    .await;
    assert_eq!(result.unwrap_err().attempts, 1);
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn overloaded_529_is_retried() {
    let fake = fake().await;
    let (result, _) = chat(
        &fake,
        vec![
            Reply::error(529).with_header("retry-after", "0"),
            Reply::text("recovered"),
        ],
    )
    .await;
    assert_eq!(result.unwrap().content.as_deref(), Some("recovered"));
    assert_eq!(fake.requests().len(), 2);

    let fake = self::fake().await;
    let (result, _) = chat(&fake, vec![Reply::error(529); 3]).await;
    let error = result.unwrap_err();
    assert_eq!(error.code, ErrorCode::ProviderUnavailable);
    assert_eq!(error.attempts, 3);
    assert_eq!(error.status, Some(529));
    assert!(
        error.message.contains("overloaded_error"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn overloaded_event_before_the_first_token_is_retried() {
    let fake = fake().await;
    let (result, sink) = chat(
        &fake,
        vec![
            Reply::stream_error(0, "Overloaded").with_error_type("overloaded_error"),
            Reply::text("second try"),
        ],
    )
    .await;
    assert_eq!(result.unwrap().content.as_deref(), Some("second try"));
    assert_eq!(sink.deltas(), ["second", " try"]);
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn overloaded_event_after_the_first_token_is_terminal_without_duplicated_text() {
    let fake = fake().await;
    let (result, sink) = chat(
        &fake,
        vec![
            Reply::stream_error(2, "Overloaded").with_error_type("overloaded_error"),
            Reply::text("retried text"),
        ],
    )
    .await;
    let error = result.unwrap_err();
    assert_eq!(error.code, ErrorCode::ProviderBadResponse);
    assert_eq!(error.attempts, 1);
    assert_eq!(error.status, Some(200));
    assert!(
        error.message.contains("overloaded_error: Overloaded"),
        "{}",
        error.message
    );
    assert_eq!(sink.deltas(), ["This", " answer"]);
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn auth_failure_is_not_retried_and_never_shows_the_key() {
    let fake = fake().await;
    let body = format!(
        r#"{{"type":"error","error":{{"type":"authentication_error","message":"invalid x-api-key {KEY}"}}}}"#
    );
    let (result, _) = chat(
        &fake,
        vec![Reply::error_with_body(401, body), Reply::text("never")],
    )
    .await;
    let error = result.unwrap_err();
    assert_eq!(error.code, ErrorCode::ProviderAuthFailed);
    assert_eq!(error.attempts, 1);
    assert_eq!(error.status, Some(401));
    assert!(
        error
            .message
            .contains("authentication_error: invalid x-api-key [redacted]"),
        "{}",
        error.message
    );
    assert_no_key(&error);
    assert_eq!(fake.requests().len(), 1);

    for status in [400, 403, 404] {
        let fake = self::fake().await;
        let (result, _) = chat(&fake, vec![Reply::error(status), Reply::text("never")]).await;
        assert_eq!(result.unwrap_err().attempts, 1, "{status}");
        assert_eq!(fake.requests().len(), 1, "{status}");
    }
}

#[tokio::test]
async fn cut_streams_are_errors() {
    let fake = fake().await;
    let (result, sink) = chat(
        &fake,
        vec![Reply::cut("one two three four", 2), Reply::text("retried")],
    )
    .await;
    let error = result.unwrap_err();
    assert_eq!(error.code, ErrorCode::ProviderBadResponse);
    assert_eq!(error.attempts, 1);
    assert_eq!(sink.deltas(), ["one", " two"]);
    assert_eq!(fake.requests().len(), 1);

    let fake = self::fake().await;
    let (result, sink) = chat(&fake, vec![Reply::cut("never", 0); 3]).await;
    let error = result.unwrap_err();
    assert_eq!(error.code, ErrorCode::ProviderUnavailable);
    assert_eq!(error.attempts, 3);
    assert!(sink.deltas().is_empty());
}

/// Serves one canned response and hands back the request head it received.
async fn raw_server(response: &'static [u8]) -> (String, tokio::sync::oneshot::Receiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let n = socket.read(&mut buffer).await.unwrap();
            request.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&request).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text
                    .lines()
                    .find_map(|line| {
                        line.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if request.len() >= end + 4 + length {
                    let _ = tx.send(text[..end].to_string());
                    break;
                }
            }
        }
        socket.write_all(response).await.unwrap();
        let _ = socket.shutdown().await;
    });
    (format!("http://{addr}"), rx)
}

#[tokio::test]
async fn sends_the_messages_path_version_and_key_headers() {
    let response = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n\
event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-x\",\"usage\":{\"input_tokens\":2,\"output_tokens\":1}}}\r\n\r\n\
event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"ok\"}}\r\n\r\n\
event: message_delta\r\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"output_tokens\":3}}\r\n\r\n";
    let (base_url, head) = raw_server(response).await;
    let answer = provider(config(base_url))
        .chat(&request("claude-x", "hi"), &Collect::default())
        .await
        .unwrap();
    // No message_stop (the connection closed): the stop_reason already completed the answer.
    assert_eq!(answer.content.as_deref(), Some("ok"));
    assert_eq!(answer.finish_reason, FinishReason::Length);
    assert_eq!(answer.model, "claude-x");
    assert_eq!(
        answer.usage,
        Some(Usage {
            input_tokens: 2,
            output_tokens: 3,
            ..Default::default()
        })
    );
    let head = head.await.unwrap().to_ascii_lowercase();
    assert!(head.starts_with("post /v1/messages http/1.1"), "{head}");
    assert!(
        head.contains(&format!("x-api-key: {}", KEY.to_ascii_lowercase())),
        "{head}"
    );
    assert!(head.contains("anthropic-version: 2023-06-01"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(!head.contains("authorization"), "{head}");
}
