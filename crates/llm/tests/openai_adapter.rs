//! The OpenAI-compatible adapter against agentry-fakellm (in-process, port 0) and, for
//! byte-level quirks the fake never produces, a raw TCP server.

#![allow(clippy::unwrap_used)] // tests may unwrap

use agentry_core::ErrorCode;
use agentry_core::chat::{
    ChatModel, ChatRequest, DeltaSink, FinishReason, Message, ProviderError, Role, ToolCall,
    ToolSpec, Usage,
};
use agentry_fakellm::{FakeLlmHandle, Reply};
use agentry_llm::{
    OpenAiCompatible, OpenAiConfig, RetryPolicy, Timeouts, build_provider, default_http_client,
};
use serde_json::json;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "sk-test-secret-key-123";
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

fn provider(config: OpenAiConfig) -> OpenAiCompatible {
    OpenAiCompatible::new(config, default_http_client())
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
) -> (
    Result<agentry_core::chat::ChatResponse, ProviderError>,
    Collect,
) {
    chat_with(fake, config(fake.base_url()), replies).await
}

async fn chat_with(
    fake: &FakeLlmHandle,
    config: OpenAiConfig,
    replies: Vec<Reply>,
) -> (
    Result<agentry_core::chat::ChatResponse, ProviderError>,
    Collect,
) {
    fake.push_script(MODEL, replies);
    let sink = Collect::default();
    let result = provider(config).chat(&request(MODEL, "hi"), &sink).await;
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
async fn streams_text_deltas_in_order_with_usage() {
    let fake = fake().await;
    let (result, sink) = chat(
        &fake,
        vec![Reply::text("The quick brown fox").with_usage(11, 4)],
    )
    .await;
    let response = result.unwrap();
    assert_eq!(sink.deltas(), ["The", " quick", " brown", " fox"]);
    assert_eq!(response.content.as_deref(), Some("The quick brown fox"));
    assert_eq!(response.model, MODEL);
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert!(response.tool_calls.is_empty());
    assert_eq!(
        response.usage,
        Some(Usage {
            input_tokens: 11,
            output_tokens: 4,
            ..Default::default()
        })
    );

    let recorded = fake.requests();
    assert_eq!(recorded.len(), 1);
    assert!(recorded[0].stream);
    assert_eq!(
        recorded[0].authorization.as_deref(),
        Some(&*format!("Bearer {KEY}"))
    );
    assert_eq!(
        recorded[0].body["stream_options"],
        json!({"include_usage": true})
    );
    assert_eq!(
        recorded[0].body["messages"],
        json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
    );
}

#[tokio::test]
async fn missing_usage_is_none() {
    let fake = fake().await;
    let (result, _) = chat(&fake, vec![Reply::text("no usage").without_usage()]).await;
    assert_eq!(result.unwrap().usage, None);
}

#[tokio::test]
async fn joins_parallel_tool_calls_and_keeps_invalid_arguments_verbatim() {
    let fake = fake().await;
    let long = r#"{"expression":"(1 + 2) * 3 - 4 / 5","precision":10}"#;
    let (result, sink) = chat(
        &fake,
        vec![Reply::tool_calls([
            ("calculator", long),
            ("search", r#"{"query": "unterminated"#),
        ])],
    )
    .await;
    let response = result.unwrap();
    assert!(sink.deltas().is_empty());
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.content, None);
    assert_eq!(
        response.tool_calls,
        [
            ToolCall {
                id: "call_1".into(),
                name: "calculator".into(),
                arguments: long.into()
            },
            ToolCall {
                id: "call_2".into(),
                name: "search".into(),
                arguments: r#"{"query": "unterminated"#.into()
            },
        ]
    );
}

#[tokio::test]
async fn sends_tools_history_and_options() {
    let fake = fake().await;
    fake.push_script(MODEL, vec![Reply::text("ok")]);
    let request = ChatRequest {
        model: MODEL.into(),
        messages: vec![
            Message::user("what is 6*7?"),
            Message {
                role: Role::Assistant,
                content: None,
                tool_calls: vec![ToolCall {
                    id: "call_9".into(),
                    name: "calculator".into(),
                    arguments: "{\"expression\":\"6*7\"}".into(),
                }],
                tool_call_id: None,
            },
            Message::tool_result("call_9", "42"),
        ],
        tools: vec![ToolSpec {
            name: "calculator".into(),
            description: "math".into(),
            parameters: json!({"type": "object", "properties": {"expression": {"type": "string"}}}),
        }],
        temperature: Some(0.25),
        max_tokens: Some(64),
        ..ChatRequest::default()
    };
    provider(config(fake.base_url()))
        .chat(&request, &Collect::default())
        .await
        .unwrap();
    let body = &fake.requests()[0].body;
    assert_eq!(body["tools"][0]["type"], "function");
    assert_eq!(body["tools"][0]["function"]["name"], "calculator");
    assert_eq!(
        body["messages"][1]["tool_calls"][0]["function"]["arguments"],
        "{\"expression\":\"6*7\"}"
    );
    assert_eq!(body["messages"][1]["content"], serde_json::Value::Null);
    assert_eq!(body["messages"][2]["tool_call_id"], "call_9");
    assert_eq!(body["temperature"], 0.25);
    assert_eq!(body["max_tokens"], 64);
}

#[tokio::test]
async fn retries_429_with_retry_after_zero() {
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
}

#[tokio::test]
async fn retries_500_twice_then_succeeds() {
    let fake = fake().await;
    let (result, _) = chat(
        &fake,
        vec![
            Reply::error(500),
            Reply::error(500),
            Reply::text("third time"),
        ],
    )
    .await;
    assert_eq!(result.unwrap().content.as_deref(), Some("third time"));
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn persistent_500_is_unavailable_after_bounded_retries() {
    let fake = fake().await;
    let (result, _) = chat(&fake, vec![Reply::error(500); 10]).await;
    let error = result.unwrap_err();
    assert_eq!(error.code, ErrorCode::ProviderUnavailable);
    assert_eq!(error.attempts, 3);
    assert_eq!(error.status, Some(500));
    assert_eq!(fake.requests().len(), 3);
    assert_no_key(&error);
}

#[tokio::test]
async fn persistent_429_is_rate_limited() {
    let fake = fake().await;
    let (result, _) = chat(
        &fake,
        vec![Reply::error(429).with_header("retry-after-ms", "1"); 3],
    )
    .await;
    let error = result.unwrap_err();
    assert_eq!(error.code, ErrorCode::ProviderRateLimited);
    assert_eq!(error.attempts, 3);
}

#[tokio::test]
async fn auth_failure_is_not_retried_and_never_shows_the_key() {
    let fake = fake().await;
    let body = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {KEY}","type":"invalid_request_error"}}}}"#
    );
    let (result, _) = chat(
        &fake,
        vec![Reply::error_with_body(401, body), Reply::text("no")],
    )
    .await;
    let error = result.unwrap_err();
    assert_eq!(error.code, ErrorCode::ProviderAuthFailed);
    assert_eq!(error.attempts, 1);
    assert_eq!(error.status, Some(401));
    assert!(
        error.message.contains("Incorrect API key provided"),
        "{}",
        error.message
    );
    assert_no_key(&error);
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn other_4xx_is_rejected_with_the_provider_message() {
    let fake = fake().await;
    let body = r#"{"error":{"message":"Invalid value for 'temperature': must be at most 2","type":"invalid_request_error"}}"#;
    let (result, _) = chat(&fake, vec![Reply::error_with_body(400, body)]).await;
    let error = result.unwrap_err();
    assert_eq!(error.code, ErrorCode::ProviderRejected);
    assert!(
        error.message.contains("Invalid value for 'temperature'"),
        "{}",
        error.message
    );
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn retry_after_beyond_the_cap_fails_at_once() {
    let fake = fake().await;
    let started = Instant::now();
    let (result, _) = chat(
        &fake,
        vec![
            Reply::error(429).with_header("retry-after", "3600"),
            Reply::text("too late"),
        ],
    )
    .await;
    let error = result.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(error.code, ErrorCode::ProviderRateLimited);
    assert_eq!(error.attempts, 1);
    assert!(error.message.contains("3600"), "{}", error.message);
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn error_event_after_text_fails_without_retry() {
    let fake = fake().await;
    let (result, sink) = chat(
        &fake,
        vec![
            Reply::stream_error(1, "upstream overloaded"),
            Reply::text("retried"),
        ],
    )
    .await;
    let error = result.unwrap_err();
    assert_eq!(error.code, ErrorCode::ProviderBadResponse);
    assert!(
        error.message.contains("upstream overloaded"),
        "{}",
        error.message
    );
    assert_eq!(error.attempts, 1);
    assert_eq!(error.status, Some(200));
    assert_eq!(sink.deltas().len(), 1);
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn error_event_before_any_text_is_retried() {
    let fake = fake().await;
    let (result, sink) = chat(
        &fake,
        vec![
            Reply::stream_error(0, "overloaded"),
            Reply::text("second try"),
        ],
    )
    .await;
    assert_eq!(result.unwrap().content.as_deref(), Some("second try"));
    assert_eq!(sink.deltas(), ["second", " try"]);
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn cut_stream_after_text_fails_without_retry() {
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
}

#[tokio::test]
async fn cut_stream_before_text_is_retried_then_unavailable() {
    let fake = fake().await;
    let (result, sink) = chat(&fake, vec![Reply::cut("never", 0); 3]).await;
    let error = result.unwrap_err();
    assert_eq!(error.code, ErrorCode::ProviderUnavailable);
    assert_eq!(error.attempts, 3);
    assert!(sink.deltas().is_empty());
}

#[tokio::test]
async fn slow_first_token_times_out() {
    let fake = fake().await;
    let mut config = config(fake.base_url());
    config.timeouts.first_token = Duration::from_millis(150);
    config.retry.max_retries = 1;
    let started = Instant::now();
    let (result, _) = chat_with(
        &fake,
        config,
        vec![Reply::text("slow").with_delay_ms(3_000); 2],
    )
    .await;
    let error = result.unwrap_err();
    assert_eq!(error.code, ErrorCode::ProviderTimeout);
    assert_eq!(error.attempts, 2);
    assert_eq!(fake.requests().len(), 2);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn stalled_stream_before_text_is_retried() {
    let fake = fake().await;
    let mut config = config(fake.base_url());
    config.timeouts.idle = Duration::from_millis(150);
    // The role chunk arrives, then the stream stalls before any text: safe to retry.
    let (result, sink) = chat_with(
        &fake,
        config,
        vec![
            Reply::text("a b c").with_chunk_delay_ms(1_000),
            Reply::text("retried"),
        ],
    )
    .await;
    assert_eq!(result.unwrap().content.as_deref(), Some("retried"));
    assert_eq!(sink.deltas(), ["retried"]);
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn stalled_stream_after_text_times_out_without_retry() {
    let pieces = vec![
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n".to_vec(),
        b"data: {\"choices\":[{\"delta\":{\"content\":\"partial\"}}]}\n\n".to_vec(),
    ];
    let base_url = raw_server(pieces, Duration::from_secs(3)).await;
    let mut config = config(base_url);
    config.timeouts.idle = Duration::from_millis(150);
    let sink = Collect::default();
    let started = Instant::now();
    let error = provider(config)
        .chat(&request("m", "hi"), &sink)
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::ProviderTimeout);
    assert_eq!(error.attempts, 1);
    assert_eq!(sink.deltas(), ["partial"]);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn total_timeout_bounds_the_whole_call() {
    let fake = fake().await;
    let mut config = config(fake.base_url());
    config.timeouts.total = Duration::from_millis(200);
    let started = Instant::now();
    let (result, _) = chat_with(
        &fake,
        config,
        vec![Reply::text("slow").with_delay_ms(3_000)],
    )
    .await;
    let error = result.unwrap_err();
    assert_eq!(error.code, ErrorCode::ProviderTimeout);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn html_502_page_is_retried_and_summarised() {
    let fake = fake().await;
    let page = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n</body>\r\n</html>\r\n";
    let (result, _) = chat(&fake, vec![Reply::error_with_body(502, page); 3]).await;
    let error = result.unwrap_err();
    assert_eq!(error.code, ErrorCode::ProviderUnavailable);
    assert_eq!(error.status, Some(502));
    assert_eq!(error.attempts, 3);
    assert!(
        error.message.contains("502 Bad Gateway"),
        "{}",
        error.message
    );
    assert!(!error.message.contains('<'), "{}", error.message);

    let (result, _) = chat(
        &fake,
        vec![Reply::error_with_body(502, page), Reply::text("recovered")],
    )
    .await;
    assert_eq!(result.unwrap().content.as_deref(), Some("recovered"));
}

#[tokio::test]
async fn accepts_a_json_answer_to_a_stream_request() {
    let fake = fake().await;
    let (result, sink) = chat(
        &fake,
        vec![Reply::tool_call("calculator", "{\"expression\":\"1+1\"}").ignoring_stream()],
    )
    .await;
    let response = result.unwrap();
    assert_eq!(response.tool_calls[0].name, "calculator");
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert!(response.usage.is_some());
    assert!(sink.deltas().is_empty());

    let (result, sink) = chat(&fake, vec![Reply::text("whole answer").ignoring_stream()]).await;
    assert_eq!(result.unwrap().content.as_deref(), Some("whole answer"));
    assert_eq!(sink.deltas(), ["whole answer"]);
}

#[tokio::test]
async fn connection_refused_is_unavailable_after_retries() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let provider = provider(config(format!("http://{addr}/v1")));
    let error = provider
        .chat(&request("m", "hi"), &Collect::default())
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::ProviderUnavailable);
    assert_eq!(error.attempts, 3);
    assert_eq!(error.status, None);
}

#[tokio::test]
async fn built_in_behaviours_drive_a_tool_loop() {
    let fake = fake().await;
    let provider =
        build_provider("openai", config(fake.base_url()), default_http_client()).unwrap();
    let mut request = request("tool-loop-2", "go");
    let sink = Collect::default();
    for round in 1..=2 {
        let response = provider.chat(&request, &sink).await.unwrap();
        assert_eq!(response.finish_reason, FinishReason::ToolCalls);
        let call = response.tool_calls[0].clone();
        assert_eq!(
            call.arguments,
            format!("{{\"expression\":\"{round}+{round}\"}}")
        );
        request.messages.push(Message {
            role: Role::Assistant,
            content: None,
            tool_calls: vec![call.clone()],
            tool_call_id: None,
        });
        request
            .messages
            .push(Message::tool_result(call.id, (2 * round).to_string()));
    }
    let done = provider.chat(&request, &sink).await.unwrap();
    assert_eq!(done.content.as_deref(), Some("done after 2 tool calls"));
}

/// Serves one hand-written HTTP response, written in the given pieces with a pause between
/// them so they reach the client as separate reads, then holds the connection for `hold`.
async fn raw_server(pieces: Vec<Vec<u8>>, hold: Duration) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        // Read the headers and the body (Content-Length) before answering.
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
                    break;
                }
            }
        }
        for piece in pieces {
            socket.write_all(&piece).await.unwrap();
            socket.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(hold).await;
        let _ = socket.shutdown().await;
    });
    format!("http://{addr}/v1")
}

#[tokio::test]
async fn tolerates_server_quirks_at_the_byte_level() {
    // CRLF line ends, comment keep-alives, missing ids, `choices: null`, multi-line data, a
    // UTF-8 code point split across TCP writes, and no [DONE] (connection close ends it).
    let headers =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n".to_vec();
    let text_event =
        "data: {\"choices\":[{\"delta\":{\"content\":\"caf\u{e9} \u{1F600}\"}}]}\r\n\r\n"
            .as_bytes()
            .to_vec();
    let split = text_event.len() - 12; // inside the 4-byte emoji
    let pieces = vec![
        headers,
        b": OPENROUTER PROCESSING\r\n\r\n".to_vec(),
        b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\r\n\r\n".to_vec(),
        text_event[..split].to_vec(),
        text_event[split..].to_vec(),
        b"data: {\"choices\":\r\ndata: [{\"delta\":{},\"finish_reason\":\"stop\"}]}\r\n\r\n"
            .to_vec(),
        b"data: {\"choices\":null,\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3}}\r\n\r\n"
            .to_vec(),
    ];
    let base_url = raw_server(pieces, Duration::ZERO).await;
    let sink = Collect::default();
    let response = provider(config(base_url))
        .chat(&request("llama", "hi"), &sink)
        .await
        .unwrap();
    assert_eq!(response.content.as_deref(), Some("caf\u{e9} \u{1F600}"));
    assert_eq!(sink.deltas(), ["caf\u{e9} \u{1F600}"]);
    assert_eq!(response.model, "llama");
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert_eq!(
        response.usage,
        Some(Usage {
            input_tokens: 2,
            output_tokens: 3,
            ..Default::default()
        })
    );
}

#[tokio::test]
async fn html_with_200_is_a_bad_response() {
    let pieces = vec![
        b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\nconnection: close\r\n\r\n".to_vec(),
        b"<html><body>Please log in to the captive portal</body></html>".to_vec(),
    ];
    let base_url = raw_server(pieces, Duration::ZERO).await;
    let error = provider(config(base_url))
        .chat(&request("m", "hi"), &Collect::default())
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::ProviderBadResponse);
    assert_eq!(error.attempts, 1);
    assert!(
        error.message.contains("captive portal"),
        "{}",
        error.message
    );
}
