//! The embedding adapters (OpenAI-compatible and Gemini) against agentry-fakellm.

#![allow(clippy::unwrap_used)] // tests may unwrap

use agentry_core::ErrorCode;
use agentry_core::embedding::{EmbeddingModel, EmbeddingRequest};
use agentry_fakellm::{Failure, FakeLlmHandle, Reply, embedding_vector};
use agentry_llm::{OpenAiConfig, RetryPolicy, Timeouts, build_embedder, default_http_client};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const KEY: &str = "embed-secret-key-77";
const MODEL: &str = "embed-model";

async fn fake() -> FakeLlmHandle {
    agentry_fakellm::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn embedder(fake: &FakeLlmHandle, kind: &str) -> Arc<dyn EmbeddingModel> {
    let base_url = match kind {
        "openai" => fake.base_url(),
        _ => format!("http://{}", fake.addr()),
    };
    let config = OpenAiConfig {
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
    };
    build_embedder(kind, config, default_http_client()).unwrap()
}

fn request(inputs: &[&str]) -> EmbeddingRequest {
    EmbeddingRequest {
        model: MODEL.to_string(),
        inputs: inputs.iter().map(|text| text.to_string()).collect(),
    }
}

#[tokio::test]
async fn openai_embeddings_are_in_input_order_with_usage() {
    let fake = fake().await;
    let inputs = ["first text", "second", "日本語のテキスト"];
    let embeddings = embedder(&fake, "openai")
        .embed(&request(&inputs))
        .await
        .unwrap();
    // The fake lists `data` last-first; the adapter orders by `index`.
    let expected: Vec<Vec<f32>> = inputs.iter().map(|t| embedding_vector(t, 8)).collect();
    assert_eq!(embeddings.vectors, expected);
    // ceil(10/4) + ceil(6/4) + ceil(8/4) = 3 + 2 + 2.
    assert_eq!(embeddings.usage.input_tokens, 7);
    assert_eq!(embeddings.usage.output_tokens, 0);
    assert_eq!(embeddings.model, MODEL);

    let recorded = fake.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].path, "/v1/embeddings");
    assert_eq!(
        recorded[0].authorization.as_deref(),
        Some(&*format!("Bearer {KEY}"))
    );
    assert_eq!(
        recorded[0].body,
        json!({"model": MODEL, "input": inputs, "encoding_format": "float"})
    );
}

#[tokio::test]
async fn gemini_embeddings_use_batch_embed_contents() {
    let fake = fake().await;
    let inputs = ["alpha", "beta"];
    let embeddings = embedder(&fake, "gemini")
        .embed(&request(&inputs))
        .await
        .unwrap();
    let expected: Vec<Vec<f32>> = inputs.iter().map(|t| embedding_vector(t, 8)).collect();
    assert_eq!(embeddings.vectors, expected);
    // Gemini reports no token counts.
    assert_eq!(embeddings.usage.input_tokens, 0);

    let recorded = fake.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        recorded[0].path,
        format!("/v1beta/models/{MODEL}:batchEmbedContents")
    );
    assert_eq!(recorded[0].api_key.as_deref(), Some(KEY));
    assert_eq!(
        recorded[0].body["requests"][1],
        json!({"model": format!("models/{MODEL}"), "content": {"parts": [{"text": "beta"}]}})
    );
}

#[tokio::test]
async fn empty_input_makes_no_call() {
    let fake = fake().await;
    for kind in ["openai", "gemini"] {
        let embeddings = embedder(&fake, kind).embed(&request(&[])).await.unwrap();
        assert!(embeddings.vectors.is_empty());
    }
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn transient_failures_are_retried_like_chat() {
    for kind in ["openai", "gemini"] {
        let fake = fake().await;
        fake.push_script(
            MODEL,
            vec![
                Reply::error(503),
                Reply::cut("", 0),
                Reply::text("ignored for embeddings").with_usage(42, 0),
            ],
        );
        let embeddings = embedder(&fake, kind).embed(&request(&["x"])).await.unwrap();
        assert_eq!(embeddings.vectors, [embedding_vector("x", 8)], "{kind}");
        if kind == "openai" {
            assert_eq!(embeddings.usage.input_tokens, 42);
        }
        assert_eq!(fake.requests().len(), 3, "{kind}");
    }
}

#[tokio::test]
async fn quota_context_and_client_errors_are_not_retried() {
    for kind in ["openai", "gemini"] {
        for (reply, code) in [
            (
                Reply::failure(Failure::QuotaExhausted),
                ErrorCode::ProviderQuotaExhausted,
            ),
            (
                Reply::failure(Failure::ContextOverflow),
                ErrorCode::ProviderContextOverflow,
            ),
            (Reply::error(401), ErrorCode::ProviderAuthFailed),
            (Reply::error(400), ErrorCode::ProviderRejected),
        ] {
            let fake = fake().await;
            fake.push_script(MODEL, vec![reply, Reply::text("never")]);
            let error = embedder(&fake, kind)
                .embed(&request(&["x"]))
                .await
                .unwrap_err();
            assert_eq!(error.code, code, "{kind}");
            assert_eq!(error.attempts, 1, "{kind}");
            assert_eq!(fake.requests().len(), 1, "{kind}");
            assert!(!error.message.contains(KEY), "{}", error.message);
        }
    }
}

#[tokio::test]
async fn persistent_server_errors_end_unavailable() {
    let fake = fake().await;
    fake.push_script(MODEL, vec![Reply::error(500); 3]);
    let error = embedder(&fake, "openai")
        .embed(&request(&["x"]))
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::ProviderUnavailable);
    assert_eq!(error.attempts, 3);
    assert_eq!(fake.requests().len(), 3);
}
