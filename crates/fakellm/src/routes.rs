//! HTTP routes: the OpenAI-compatible API (`/v1/chat/completions`, `/v1/models`), the
//! Anthropic Messages API (`/v1/messages`), Gemini (`/v1beta/models/{model}:...`) and the admin API (`/_fake/...`) that lets
//! out-of-process users script the fake.

use crate::anthropic;
use crate::behaviour::{ModelSpec, builtin_reply};
use crate::embeddings::{self, EmbedProtocol};
use crate::gemini;
use crate::plan::{DefaultDelays, plan};
use crate::render::{Mode, json_response, render};
use crate::reply::Reply;
use crate::request::ChatView;
use crate::state::{FakeLlm, RecordedRequest};
use crate::wire::{self, Meta};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

/// Long conversations in benchmarks exceed axum's 2 MB default body limit.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Model ids `GET /v1/models` always lists, so UIs have something to pick.
const BUILTIN_MODELS: &[&str] = &["echo", "tool-loop-1", "tool-loop-3"];

/// The fake's routes, for callers that serve it themselves.
pub fn router(fake: FakeLlm) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/messages", post(anthropic_messages))
        .route("/v1/embeddings", post(openai_embeddings))
        .route("/v1beta/models/{model_action}", post(gemini_generate))
        .route("/v1/models", get(models))
        .route("/_fake/script", post(push_script).delete(clear_scripts))
        .route("/_fake/requests", get(requests).delete(clear_requests))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(fake)
}

/// The wire protocol a route speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    OpenAi,
    Anthropic,
    /// Gemini names the model and the streaming choice in the path.
    Gemini {
        stream: bool,
    },
}

async fn chat_completions(
    State(fake): State<FakeLlm>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    chat(fake, headers, body, Protocol::OpenAi, None).await
}

async fn anthropic_messages(
    State(fake): State<FakeLlm>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    chat(fake, headers, body, Protocol::Anthropic, None).await
}

/// `POST /v1beta/models/{model}:generateContent` or `:streamGenerateContent`.
async fn gemini_generate(
    State(fake): State<FakeLlm>,
    Path(model_action): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (model, stream) = match model_action.rsplit_once(':') {
        Some((model, "generateContent")) => (model, false),
        Some((model, "streamGenerateContent")) => (model, true),
        Some((model, "batchEmbedContents")) => {
            let path = format!("/v1beta/models/{model_action}");
            return embed(
                fake,
                headers,
                body,
                EmbedProtocol::Gemini,
                Some(model),
                path,
            )
            .await;
        }
        _ => return not_found().await,
    };
    let model = model.to_string();
    chat(
        fake,
        headers,
        body,
        Protocol::Gemini { stream },
        Some(model),
    )
    .await
}

async fn openai_embeddings(
    State(fake): State<FakeLlm>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = "/v1/embeddings".to_string();
    embed(fake, headers, body, EmbedProtocol::OpenAi, None, path).await
}

async fn embed(
    fake: FakeLlm,
    headers: HeaderMap,
    body: Bytes,
    protocol: EmbedProtocol,
    path_model: Option<&str>,
    path: String,
) -> Response {
    let authorization = header_text(&headers, header::AUTHORIZATION.as_str());
    let api_key = header_text(&headers, "x-goog-api-key");
    let json: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    let model = path_model.map_or_else(
        || {
            json.get("model")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        },
        str::to_string,
    );
    let reply = fake.next_script(&model);
    fake.record(RecordedRequest {
        model: model.clone(),
        body: json.clone(),
        stream: false,
        authorization,
        api_key,
        path,
    });
    if !json.is_object() {
        return invalid_request("request body is not a JSON object");
    }
    embeddings::answer(protocol, &model, &json, reply).await
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
}

async fn chat(
    fake: FakeLlm,
    headers: HeaderMap,
    body: Bytes,
    protocol: Protocol,
    path_model: Option<String>,
) -> Response {
    let authorization = header_text(&headers, header::AUTHORIZATION.as_str());
    let api_key =
        header_text(&headers, "x-api-key").or_else(|| header_text(&headers, "x-goog-api-key"));
    let path = match (protocol, &path_model) {
        (Protocol::OpenAi, _) => "/v1/chat/completions".to_string(),
        (Protocol::Anthropic, _) => "/v1/messages".to_string(),
        (Protocol::Gemini { stream }, model) => format!(
            "/v1beta/models/{}:{}",
            model.as_deref().unwrap_or_default(),
            if stream {
                "streamGenerateContent"
            } else {
                "generateContent"
            }
        ),
    };
    let invalid = |message: &str| match protocol {
        Protocol::Gemini { .. } => json_response(
            StatusCode::BAD_REQUEST,
            &gemini::error_body(400, "INVALID_ARGUMENT", message),
        ),
        Protocol::OpenAi => invalid_request(message),
        Protocol::Anthropic => json_response(
            StatusCode::BAD_REQUEST,
            &anthropic::error_body("invalid_request_error", message),
        ),
    };
    let json: Value = match serde_json::from_slice(&body) {
        Ok(json) => json,
        Err(error) => {
            fake.record(RecordedRequest {
                model: path_model.clone().unwrap_or_default(),
                body: Value::String(String::from_utf8_lossy(&body).into_owned()),
                stream: false,
                authorization,
                api_key,
                path,
            });
            return invalid(&format!("request body is not valid JSON: {error}"));
        }
    };
    let model = path_model.unwrap_or_else(|| {
        json.get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    });
    let chat_body = match protocol {
        Protocol::OpenAi => None,
        Protocol::Anthropic => Some(anthropic::to_chat_body(&json)),
        Protocol::Gemini { stream } => Some(gemini::to_chat_body(&model, stream, &json)),
    };
    let view = ChatView::new(chat_body.as_ref().unwrap_or(&json));
    let requested_stream = view.stream();
    let mut mode = Mode {
        stream: requested_stream,
        include_usage: view.include_usage(),
    };
    let planned = if model.is_empty() {
        None
    } else {
        let spec = ModelSpec::parse(&model);
        let reply = fake
            .next_script(&model)
            .unwrap_or_else(|| builtin_reply(spec.behaviour, &view));
        mode.stream &= !reply.options.ignore_stream;
        let defaults = DefaultDelays {
            latency_ms: spec.latency_ms,
            chunk_delay_ms: spec.chunk_delay_ms,
        };
        Some(plan(reply, &view, defaults))
    };
    // Recorded before any scripted delay, so a test can see a request that is still pending.
    fake.record(RecordedRequest {
        model: model.clone(),
        body: json,
        stream: requested_stream,
        authorization,
        api_key,
        path,
    });
    let Some(planned) = planned else {
        return invalid("you must provide a model parameter");
    };
    let number = fake.next_response_number();
    let id = match protocol {
        Protocol::OpenAi => format!("chatcmpl-fake-{number}"),
        Protocol::Anthropic => format!("msg_fake_{number}"),
        Protocol::Gemini { .. } => format!("fake-response-{number}"),
    };
    let meta = Meta {
        id,
        created: unix_now(),
        model,
    };
    match protocol {
        Protocol::OpenAi => render(planned, meta, mode).await,
        Protocol::Anthropic => anthropic::render(planned, meta, mode.stream).await,
        Protocol::Gemini { .. } => gemini::render(planned, meta, mode.stream).await,
    }
}

async fn models(State(fake): State<FakeLlm>) -> Response {
    let mut ids: Vec<String> = BUILTIN_MODELS.iter().map(|id| id.to_string()).collect();
    for (model, _) in fake.scripted_models() {
        if !ids.contains(&model) {
            ids.push(model);
        }
    }
    let data: Vec<Value> = ids
        .into_iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "agentry-fakellm"}))
        .collect();
    json_response(StatusCode::OK, &json!({"object": "list", "data": data}))
}

#[derive(Deserialize)]
struct ScriptRequest {
    model: String,
    replies: Vec<Reply>,
}

async fn push_script(State(fake): State<FakeLlm>, body: Bytes) -> Response {
    match serde_json::from_slice::<ScriptRequest>(&body) {
        Ok(script) => {
            let queued = script.replies.len();
            fake.push_script(&script.model, script.replies);
            json_response(StatusCode::OK, &json!({"queued": queued}))
        }
        Err(error) => invalid_request(&format!("invalid script: {error}")),
    }
}

async fn clear_scripts(State(fake): State<FakeLlm>) -> StatusCode {
    fake.clear_scripts();
    StatusCode::NO_CONTENT
}

async fn requests(State(fake): State<FakeLlm>) -> Response {
    match serde_json::to_value(fake.requests()) {
        Ok(value) => json_response(StatusCode::OK, &value),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

async fn clear_requests(State(fake): State<FakeLlm>) -> StatusCode {
    fake.clear_requests();
    StatusCode::NO_CONTENT
}

async fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &wire::error_body(
            "fake-llm: no such route",
            "invalid_request_error",
            Some("not_found"),
        ),
    )
}

fn invalid_request(message: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &wire::error_body(message, "invalid_request_error", None),
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default()
}
