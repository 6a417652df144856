//! Router-level tests: the exact wire format a client sees.

use crate::{FakeLlm, Reply, router, start};
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

struct Answer {
    status: StatusCode,
    content_type: String,
    headers: axum::http::HeaderMap,
    body: Result<String, String>,
}

async fn call(fake: &FakeLlm, method: &str, uri: &str, body: Value) -> Answer {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, "Bearer sk-test")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = router(fake.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = to_bytes(response.into_body(), usize::MAX)
        .await
        .map(|bytes| String::from_utf8(bytes.to_vec()).unwrap())
        .map_err(|error| error.to_string());
    Answer {
        status,
        content_type,
        headers,
        body,
    }
}

async fn chat(fake: &FakeLlm, body: Value) -> Answer {
    call(fake, "POST", "/v1/chat/completions", body).await
}

/// The `data:` payloads of an SSE body, `[DONE]` included.
fn events(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| event.strip_prefix("data: ").unwrap().to_string())
        .collect()
}

fn json_events(body: &str) -> Vec<Value> {
    events(body)
        .iter()
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str(data).unwrap())
        .collect()
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

#[tokio::test]
async fn streams_text_in_openai_format() {
    let fake = FakeLlm::new();
    let answer = chat(
        &fake,
        json!({"model": "echo", "stream": true, "stream_options": {"include_usage": true},
               "messages": user("hello big world")}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.content_type, "text/event-stream");
    let body = answer.body.unwrap();
    assert_eq!(events(&body).last().unwrap(), "[DONE]");
    let chunks = json_events(&body);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "echo");
        assert_eq!(chunk["id"], chunks[0]["id"]);
    }
    let pieces: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(pieces, ["", "You", " said:", " hello", " big", " world"]);
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish["usage"], Value::Null);
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    // 15 prompt chars → ceil(15/4)+1 = 5; 25 output chars → 25/4+1 = 7.
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12})
    );
}

#[tokio::test]
async fn stream_without_include_usage_has_no_usage() {
    let fake = FakeLlm::new();
    fake.push_script("m", vec![Reply::text_in_chunks("abcdef", 2)]);
    let answer = chat(
        &fake,
        json!({"model": "m", "stream": true, "messages": user("x")}),
    )
    .await;
    let chunks = json_events(&answer.body.unwrap());
    assert_eq!(chunks.len(), 4, "role, 2 pieces, finish: {chunks:?}");
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "abc");
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn streams_parallel_tool_calls_in_fragments() {
    let fake = FakeLlm::new();
    let first = r#"{"expression":"12*12"}"#;
    fake.push_script(
        "m",
        vec![Reply::tool_calls([
            ("calculator", first),
            ("lookup", "{bad"),
        ])],
    );
    let answer = chat(
        &fake,
        json!({"model": "m", "stream": true, "messages": user("x")}),
    )
    .await;
    let chunks = json_events(&answer.body.unwrap());
    assert_eq!(chunks[0]["choices"][0]["delta"]["content"], Value::Null);
    let mut arguments = [String::new(), String::new()];
    let mut fragments = [0, 0];
    for chunk in &chunks[1..chunks.len() - 1] {
        let calls = chunk["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .unwrap();
        assert_eq!(calls.len(), 1);
        let call = &calls[0];
        let index = call["index"].as_u64().unwrap() as usize;
        let first_fragment = fragments[index] == 0;
        assert_eq!(call.get("id").is_some(), first_fragment, "{call}");
        assert_eq!(call["function"].get("name").is_some(), first_fragment);
        if first_fragment {
            assert_eq!(call["type"], "function");
            assert_eq!(call["id"], format!("call_{}", index + 1));
        }
        arguments[index].push_str(call["function"]["arguments"].as_str().unwrap());
        fragments[index] += 1;
    }
    assert_eq!(arguments, [first.to_string(), "{bad".to_string()]);
    assert!(fragments[0] >= 3, "arguments split into several fragments");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn answers_non_streaming_completions() {
    let fake = FakeLlm::new();
    fake.push_script("m", vec![Reply::tool_call("f", "{}").with_usage(3, 4)]);
    let answer = chat(&fake, json!({"model": "m", "messages": user("x")})).await;
    assert_eq!(answer.content_type, "application/json");
    let body: Value = serde_json::from_str(&answer.body.unwrap()).unwrap();
    assert_eq!(body["object"], "chat.completion");
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    assert_eq!(
        choice["message"]["tool_calls"],
        json!([{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}])
    );
    assert_eq!(body["usage"]["total_tokens"], 7);

    let answer = chat(&fake, json!({"model": "echo", "messages": user("hi")})).await;
    let body: Value = serde_json::from_str(&answer.body.unwrap()).unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "You said: hi");
    assert!(body["usage"].is_object());

    fake.push_script("m", vec![Reply::text("quiet").without_usage()]);
    let answer = chat(&fake, json!({"model": "m", "messages": user("x")})).await;
    let body: Value = serde_json::from_str(&answer.body.unwrap()).unwrap();
    assert!(body.get("usage").is_none());
}

#[tokio::test]
async fn scripted_errors_carry_status_headers_and_body() {
    let fake = FakeLlm::new();
    fake.push_script(
        "m",
        vec![
            Reply::error(429).with_header("retry-after", "7"),
            Reply::error_with_body(502, "<html><body>Bad Gateway</body></html>"),
            Reply::error(1000),
        ],
    );
    let body = json!({"model": "m", "stream": true, "messages": user("x")});
    let limited = chat(&fake, body.clone()).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers["retry-after"], "7");
    let error: Value = serde_json::from_str(&limited.body.unwrap()).unwrap();
    assert_eq!(error["error"]["type"], "rate_limit_exceeded");

    let html = chat(&fake, body.clone()).await;
    assert_eq!(html.status, StatusCode::BAD_GATEWAY);
    assert!(html.content_type.starts_with("text/html"));
    assert!(html.body.unwrap().contains("Bad Gateway"));

    let invalid = chat(&fake, body).await;
    assert_eq!(invalid.status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn stream_error_and_cut() {
    let fake = FakeLlm::new();
    fake.push_script(
        "m",
        vec![
            Reply::stream_error(2, "overloaded"),
            Reply::cut("one two three", 2),
            Reply::stream_error(0, "nope"),
            Reply::cut("one two", 1),
        ],
    );
    let stream = json!({"model": "m", "stream": true, "messages": user("x")});
    let errored = chat(&fake, stream.clone()).await;
    assert_eq!(errored.status, StatusCode::OK);
    let body = errored.body.unwrap();
    let chunks = json_events(&body);
    assert_eq!(chunks.len(), 4, "role, two pieces, error: {body}");
    assert_eq!(chunks[3]["error"]["message"], "overloaded");
    assert!(!body.contains("[DONE]"));

    let cut = chat(&fake, stream).await;
    assert_eq!(cut.status, StatusCode::OK);
    assert!(cut.body.is_err(), "the body must fail, not end cleanly");

    let plain = json!({"model": "m", "messages": user("x")});
    let errored = chat(&fake, plain.clone()).await;
    assert_eq!(errored.status, StatusCode::OK);
    let body: Value = serde_json::from_str(&errored.body.unwrap()).unwrap();
    assert_eq!(body["error"]["message"], "nope");
    assert!(chat(&fake, plain).await.body.is_err());
}

#[tokio::test]
async fn records_requests_and_serves_admin_routes() {
    let fake = FakeLlm::new();
    let script = json!({"model": "m", "replies": [{"type": "text", "text": "scripted"}]});
    let queued = call(&fake, "POST", "/_fake/script", script).await;
    assert_eq!(queued.body.unwrap(), r#"{"queued":1}"#);
    let bad = call(&fake, "POST", "/_fake/script", json!({"model": "m"})).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let models: Value = serde_json::from_str(
        &call(&fake, "GET", "/v1/models", Value::Null)
            .await
            .body
            .unwrap(),
    )
    .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"echo") && ids.contains(&"m"), "{ids:?}");

    let answer = chat(&fake, json!({"model": "m", "messages": user("x")})).await;
    assert!(answer.body.unwrap().contains("scripted"));
    let missing_model = chat(&fake, json!({"messages": []})).await;
    assert_eq!(missing_model.status, StatusCode::BAD_REQUEST);

    let recorded: Value = serde_json::from_str(
        &call(&fake, "GET", "/_fake/requests", Value::Null)
            .await
            .body
            .unwrap(),
    )
    .unwrap();
    assert_eq!(recorded.as_array().unwrap().len(), 2);
    assert_eq!(recorded[0]["model"], "m");
    assert_eq!(recorded[0]["stream"], false);
    assert_eq!(recorded[0]["authorization"], "Bearer sk-test");
    assert_eq!(recorded[0]["body"]["messages"], user("x"));

    let cleared = call(&fake, "DELETE", "/_fake/requests", Value::Null).await;
    assert_eq!(cleared.status, StatusCode::NO_CONTENT);
    assert!(fake.requests().is_empty());
    let unknown = call(&fake, "GET", "/nope", Value::Null).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn invalid_json_is_rejected_and_recorded() {
    let fake = FakeLlm::new();
    let request = Request::builder()
        .method("POST")
        .uri("/v1/chat/completions")
        .body(Body::from("{not json"))
        .unwrap();
    let response = router(fake.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(fake.requests()[0].body, json!("{not json"));
}

#[tokio::test]
async fn serves_on_a_socket_until_shutdown() {
    let handle = start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    assert_ne!(handle.addr().port(), 0);
    assert_eq!(handle.base_url(), format!("http://{}/v1", handle.addr()));
    let mut socket = tokio::net::TcpStream::connect(handle.addr()).await.unwrap();
    socket
        .write_all(b"GET /v1/models HTTP/1.1\r\nHost: fake\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"echo\""));

    let addr = handle.addr();
    handle.clone().shutdown().await;
    handle.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn ignore_stream_answers_json_to_a_stream_request() {
    let fake = FakeLlm::new();
    fake.push_script("m", vec![Reply::text("plain").ignoring_stream()]);
    let answer = chat(
        &fake,
        json!({"model": "m", "stream": true, "messages": user("x")}),
    )
    .await;
    assert_eq!(answer.content_type, "application/json");
    let body: Value = serde_json::from_str(&answer.body.unwrap()).unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "plain");
    assert!(fake.requests()[0].stream);
}

/// `(event name, data)` pairs of an SSE body with `event:` lines.
fn named_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| {
            let (name, data) = event.split_once('\n').unwrap();
            (
                name.strip_prefix("event: ").unwrap().to_string(),
                serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn streams_text_and_tool_use_in_anthropic_format() {
    let fake = FakeLlm::new();
    fake.push_script(
        "m",
        vec![
            Reply::text("Hi there")
                .with_usage(5, 2)
                .with_cache_usage(3, 4),
            Reply::tool_call("calculator", r#"{"expression":"1+1"}"#),
        ],
    );
    let body = json!({"model": "m", "max_tokens": 10, "stream": true,
                      "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]});
    let answer = call(&fake, "POST", "/v1/messages", body.clone()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.content_type, "text/event-stream");
    let events = named_events(&answer.body.unwrap());
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_str());
    }
    assert_eq!(
        events[0].1["message"]["usage"],
        json!({"input_tokens": 5, "cache_creation_input_tokens": 3,
               "cache_read_input_tokens": 4, "output_tokens": 1})
    );
    assert_eq!(
        events[4].1["delta"],
        json!({"type": "text_delta", "text": " there"})
    );
    assert_eq!(
        events[6].1,
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"output_tokens": 2}})
    );

    let answer = call(&fake, "POST", "/v1/messages", body).await;
    let events = named_events(&answer.body.unwrap());
    assert_eq!(
        events[1].1["content_block"],
        json!({"type": "tool_use", "id": "call_1", "name": "calculator", "input": {}})
    );
    let json: String = events
        .iter()
        .filter(|(name, _)| name == "content_block_delta")
        .map(|(_, data)| data["delta"]["partial_json"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(json, r#"{"expression":"1+1"}"#);
    let stop = events
        .iter()
        .find(|(name, _)| name == "message_delta")
        .unwrap();
    assert_eq!(stop.1["delta"]["stop_reason"], "tool_use");

    let recorded = fake.requests();
    assert_eq!(recorded[0].model, "m");
    assert!(recorded[0].stream);
}

#[tokio::test]
async fn anthropic_errors_and_non_streaming_messages() {
    let fake = FakeLlm::new();
    fake.push_script(
        "m",
        vec![
            Reply::error(529),
            Reply::stream_error(1, "Overloaded").with_error_type("overloaded_error"),
        ],
    );
    let body = json!({"model": "m", "stream": true, "messages": []});
    let answer = call(&fake, "POST", "/v1/messages", body.clone()).await;
    assert_eq!(answer.status.as_u16(), 529);
    let error: Value = serde_json::from_str(&answer.body.unwrap()).unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "overloaded_error");

    let answer = call(&fake, "POST", "/v1/messages", body).await;
    let events = named_events(&answer.body.unwrap());
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(
        data,
        &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );

    let plain = json!({"model": "echo", "messages": [{"role": "user", "content": "hello"}]});
    let answer = call(&fake, "POST", "/v1/messages", plain).await;
    let message: Value = serde_json::from_str(&answer.body.unwrap()).unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(
        message["content"],
        json!([{"type": "text", "text": "You said: hello"}])
    );
    assert_eq!(message["stop_reason"], "end_turn");

    let missing = call(&fake, "POST", "/v1/messages", json!({"messages": []})).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    let error: Value = serde_json::from_str(&missing.body.unwrap()).unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn serves_gemini_generate_content() {
    let fake = FakeLlm::new();
    fake.push_script(
        "m",
        vec![
            Reply::text("Hi there").with_usage(5, 2),
            Reply::tool_call("calculator", r#"{"expression":"1+1"}"#),
            Reply::error(429),
        ],
    );
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "x"}]}]});
    let uri = "/v1beta/models/m:streamGenerateContent?alt=sse";
    let answer = call(&fake, "POST", uri, body.clone()).await;
    assert_eq!(answer.status, StatusCode::OK);
    let chunks = json_events(&answer.body.unwrap());
    assert_eq!(chunks.len(), 3);
    assert_eq!(
        chunks[1]["candidates"][0]["content"]["parts"],
        json!([{"text": " there"}])
    );
    assert_eq!(chunks[2]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        chunks[2]["usageMetadata"],
        json!({"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7})
    );

    let answer = call(
        &fake,
        "POST",
        "/v1beta/models/m:generateContent",
        body.clone(),
    )
    .await;
    let response: Value = serde_json::from_str(&answer.body.unwrap()).unwrap();
    assert_eq!(
        response["candidates"][0]["content"]["parts"],
        json!([{"functionCall": {"name": "calculator", "args": {"expression": "1+1"}}}])
    );

    let answer = call(&fake, "POST", uri, body.clone()).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    let error: Value = serde_json::from_str(&answer.body.unwrap()).unwrap();
    assert_eq!(error["error"]["status"], "RESOURCE_EXHAUSTED");

    let unknown = call(&fake, "POST", "/v1beta/models/m:countTokens", body).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    let recorded = fake.requests();
    assert_eq!(recorded.len(), 3);
    assert_eq!(recorded[0].model, "m");
    assert!(recorded[0].stream);
    assert!(!recorded[1].stream);
}

#[tokio::test]
async fn serves_deterministic_embeddings_in_both_protocols() {
    let fake = FakeLlm::new();
    let answer = call(
        &fake,
        "POST",
        "/v1/embeddings",
        json!({"model": "e", "input": ["ab", "cdefg"], "dimensions": 4}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let body: Value = serde_json::from_str(&answer.body.unwrap()).unwrap();
    // Last-first, so clients must order by index.
    assert_eq!(body["data"][0]["index"], 1);
    let vector: Vec<f32> = serde_json::from_value(body["data"][1]["embedding"].clone()).unwrap();
    assert_eq!(vector, crate::embedding_vector("ab", 4));
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 3, "total_tokens": 3})
    );

    let answer = call(
        &fake,
        "POST",
        "/v1beta/models/e:batchEmbedContents",
        json!({"requests": [{"content": {"parts": [{"text": "ab"}]}}]}),
    )
    .await;
    let body: Value = serde_json::from_str(&answer.body.unwrap()).unwrap();
    let vector: Vec<f32> = serde_json::from_value(body["embeddings"][0]["values"].clone()).unwrap();
    assert_eq!(vector, crate::embedding_vector("ab", 8));

    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        ["/v1/embeddings", "/v1beta/models/e:batchEmbedContents"]
    );
}

#[tokio::test]
async fn embeddings_follow_error_scripts() {
    let fake = FakeLlm::new();
    fake.push_script(
        "e",
        vec![
            Reply::error(503).with_header("retry-after", "1"),
            Reply::failure(crate::Failure::QuotaExhausted),
        ],
    );
    let body = json!({"model": "e", "input": "x"});
    let answer = call(&fake, "POST", "/v1/embeddings", body.clone()).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.headers["retry-after"], "1");
    let answer = call(&fake, "POST", "/v1/embeddings", body).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    let error: Value = serde_json::from_str(&answer.body.unwrap()).unwrap();
    assert_eq!(error["error"]["code"], "insufficient_quota");
}

#[tokio::test]
async fn failures_are_written_in_each_protocols_words() {
    use crate::Failure;
    let fake = FakeLlm::new();
    let chat_body = json!({"model": "m", "messages": user("hi"), "stream": true});
    let anthropic_body = json!({"model": "m", "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let gemini_body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let gemini_uri = "/v1beta/models/m:streamGenerateContent?alt=sse";

    fake.push_script("m", vec![Reply::failure(Failure::ContextOverflow)]);
    let answer = chat(&fake, chat_body.clone()).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body.unwrap().contains("context_length_exceeded"));
    fake.push_script("m", vec![Reply::failure(Failure::ContextOverflow)]);
    let answer = call(&fake, "POST", "/v1/messages", anthropic_body.clone()).await;
    assert!(answer.body.unwrap().contains("prompt is too long"));
    fake.push_script("m", vec![Reply::failure(Failure::ContextOverflow)]);
    let answer = call(&fake, "POST", gemini_uri, gemini_body.clone()).await;
    assert!(
        answer
            .body
            .unwrap()
            .contains("exceeds the maximum number of tokens")
    );

    fake.push_script("m", vec![Reply::failure(Failure::QuotaExhausted)]);
    let answer = chat(&fake, chat_body.clone()).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(answer.body.unwrap().contains("insufficient_quota"));
    fake.push_script("m", vec![Reply::failure(Failure::QuotaExhausted)]);
    let answer = call(&fake, "POST", gemini_uri, gemini_body.clone()).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(answer.body.unwrap().contains("RESOURCE_EXHAUSTED"));

    // Content filtering: a 200 refusal in each protocol's form.
    fake.push_script("m", vec![Reply::content_filtered()]);
    let events = json_events(&chat(&fake, chat_body).await.body.unwrap());
    assert_eq!(
        events.last().unwrap()["choices"][0]["finish_reason"],
        "content_filter"
    );
    fake.push_script("m", vec![Reply::content_filtered()]);
    let answer = call(&fake, "POST", "/v1/messages", anthropic_body).await;
    let events = named_events(&answer.body.unwrap());
    let delta = events
        .iter()
        .find(|(name, _)| name == "message_delta")
        .unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "refusal");
    fake.push_script("m", vec![Reply::failure(Failure::ContentFilter)]);
    let answer = call(&fake, "POST", gemini_uri, gemini_body).await;
    let events = json_events(&answer.body.unwrap());
    assert_eq!(events[0]["promptFeedback"]["blockReason"], "SAFETY");
}

#[tokio::test]
async fn sse_comments_and_byte_chunks() {
    let fake = FakeLlm::new();
    fake.push_script(
        "m",
        vec![Reply::text("hé").with_sse_comments().in_byte_chunks(2, 0)],
    );
    let body = json!({"model": "m", "messages": user("hi"), "stream": true});
    let answer = chat(&fake, body).await.body.unwrap();
    let comments = answer.matches(": OPENROUTER PROCESSING\n\n").count();
    let data = answer.matches("data: ").count();
    assert_eq!(comments, data);
    // Without the comments, the same events as always.
    let plain = answer.replace(": OPENROUTER PROCESSING\n\n", "");
    let events = json_events(&plain);
    assert_eq!(events[1]["choices"][0]["delta"]["content"], "hé");
}

#[tokio::test]
async fn failing_streams_report_scripted_usage_first() {
    let fake = FakeLlm::new();
    fake.push_script("m", vec![Reply::stream_error(0, "boom").with_usage(9, 1)]);
    let body = json!({"model": "m", "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let answer = call(&fake, "POST", "/v1/messages", body.clone()).await;
    let events = named_events(&answer.body.unwrap());
    assert_eq!(events[0].1["message"]["usage"]["input_tokens"], 9);
    assert_eq!(events.last().unwrap().0, "error");
    // Without an override, message_start carries no usage (unchanged wire output).
    fake.push_script("m", vec![Reply::stream_error(0, "boom")]);
    let answer = call(&fake, "POST", "/v1/messages", body).await;
    let events = named_events(&answer.body.unwrap());
    assert!(events[0].1["message"].get("usage").is_none());
}
