//! The Gemini adapter against agentry-fakellm's `/v1beta/models/{model}:streamGenerateContent`
//! route (in-process, port 0).

#![allow(clippy::unwrap_used)] // tests may unwrap

use agentry_core::ErrorCode;
use agentry_core::chat::{
    ChatModel, ChatRequest, ChatResponse, DeltaSink, FinishReason, Message, ProviderError, Role,
    ToolSpec, Usage,
};
use agentry_fakellm::{FakeLlmHandle, Reply};
use agentry_llm::{
    Gemini, OpenAiConfig, RetryPolicy, Timeouts, build_provider, default_http_client,
};
use serde_json::json;
use std::sync::Mutex;
use std::time::Duration;

const KEY: &str = "AIza-test-secret-key-123";
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

fn config(fake: &FakeLlmHandle) -> OpenAiConfig {
    OpenAiConfig {
        base_url: format!("http://{}", fake.addr()),
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

fn provider(fake: &FakeLlmHandle) -> Gemini {
    Gemini::new(config(fake), default_http_client())
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
    let result = provider(fake).chat(&request(MODEL, "hi"), &sink).await;
    (result, sink)
}

#[tokio::test]
async fn streams_text_deltas_in_order_with_the_last_usage() {
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
    assert_eq!(recorded[0].model, MODEL);
    assert!(recorded[0].stream);
    assert_eq!(recorded[0].api_key.as_deref(), Some(KEY));
    assert_eq!(recorded[0].authorization, None);
    assert_eq!(
        recorded[0].body,
        json!({
            "systemInstruction": {"parts": [{"text": "be brief"}]},
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}]
        })
    );
}

#[tokio::test]
async fn tool_call_round_trip_generates_ids_and_renders_function_responses() {
    let fake = fake().await;
    fake.push_script(
        MODEL,
        vec![
            Reply::tool_calls([
                ("calculator", r#"{"expression":"6*7"}"#),
                ("current_time", "{}"),
            ]),
            Reply::text("done"),
        ],
    );
    let adapter = build_provider("gemini", config(&fake), default_http_client()).unwrap();
    let mut request = ChatRequest {
        model: MODEL.into(),
        messages: vec![Message::user("compute")],
        tools: vec![ToolSpec {
            name: "calculator".into(),
            description: "math".into(),
            parameters: json!({"type": "object"}),
        }],
        temperature: None,
        max_tokens: Some(32),
        ..ChatRequest::default()
    };
    let sink = Collect::default();
    let first = adapter.chat(&request, &sink).await.unwrap();
    assert!(sink.deltas().is_empty());
    assert_eq!(first.finish_reason, FinishReason::ToolCalls);
    let calls = &first.tool_calls;
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[0].name.as_str(), calls[0].arguments.as_str()),
        ("calculator", r#"{"expression":"6*7"}"#)
    );
    assert_eq!(
        (calls[1].name.as_str(), calls[1].arguments.as_str()),
        ("current_time", "{}")
    );
    assert!(calls.iter().all(|call| call.id.starts_with("call_")));
    assert_ne!(calls[0].id, calls[1].id);

    request.messages.push(Message {
        role: Role::Assistant,
        content: None,
        tool_calls: calls.clone(),
        tool_call_id: None,
    });
    request
        .messages
        .push(Message::tool_result(calls[0].id.clone(), "42"));
    request
        .messages
        .push(Message::tool_result(calls[1].id.clone(), "12:00"));
    let second = adapter.chat(&request, &sink).await.unwrap();
    assert_eq!(second.content.as_deref(), Some("done"));

    let body = &fake.requests()[1].body;
    assert_eq!(
        body,
        &json!({
            "contents": [
                {"role": "user", "parts": [{"text": "compute"}]},
                {"role": "model", "parts": [
                    {"functionCall": {"name": "calculator", "args": {"expression": "6*7"}}},
                    {"functionCall": {"name": "current_time", "args": {}}}
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "calculator", "response": {"result": "42"}}},
                    {"functionResponse": {"name": "current_time", "response": {"result": "12:00"}}}
                ]}
            ],
            "tools": [{"functionDeclarations": [
                {"name": "calculator", "description": "math", "parameters": {"type": "object"}}
            ]}],
            "generationConfig": {"maxOutputTokens": 32}
        })
    );
}

#[tokio::test]
async fn built_in_echo_behaviour_uses_the_calculator() {
    let fake = fake().await;
    let adapter = provider(&fake);
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
}

#[tokio::test]
async fn retries_429_then_succeeds_and_does_not_retry_401() {
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

    let fake = self::fake().await;
    let (result, _) = chat(&fake, vec![Reply::error(401), Reply::text("never")]).await;
    let error = result.unwrap_err();
    assert_eq!(error.code, ErrorCode::ProviderAuthFailed);
    assert_eq!(error.attempts, 1);
    assert!(
        error.message.contains("UNAUTHENTICATED"),
        "{}",
        error.message
    );
    assert!(!error.message.contains(KEY));
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn stream_errors_retry_before_text_and_fail_after() {
    let fake = fake().await;
    let (result, sink) = chat(
        &fake,
        vec![
            Reply::stream_error(0, "The model is overloaded.").with_error_type("UNAVAILABLE"),
            Reply::text("second try"),
        ],
    )
    .await;
    assert_eq!(result.unwrap().content.as_deref(), Some("second try"));
    assert_eq!(sink.deltas(), ["second", " try"]);

    let fake = self::fake().await;
    let (result, sink) = chat(
        &fake,
        vec![
            Reply::stream_error(1, "The model is overloaded.").with_error_type("UNAVAILABLE"),
            Reply::text("retried"),
        ],
    )
    .await;
    let error = result.unwrap_err();
    assert_eq!(error.code, ErrorCode::ProviderBadResponse);
    assert_eq!(error.attempts, 1);
    assert!(
        error
            .message
            .contains("UNAVAILABLE: The model is overloaded."),
        "{}",
        error.message
    );
    assert_eq!(sink.deltas(), ["This"]);
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn cut_stream_is_an_error() {
    let fake = fake().await;
    let (result, sink) = chat(
        &fake,
        vec![Reply::cut("one two three", 2), Reply::text("retried")],
    )
    .await;
    let error = result.unwrap_err();
    assert_eq!(error.code, ErrorCode::ProviderBadResponse);
    assert_eq!(error.attempts, 1);
    assert_eq!(sink.deltas(), ["one", " two"]);
}
