//! Embedding adapters: [`OpenAiEmbeddings`] (`POST {base_url}/embeddings`, OpenAI and the
//! compatible servers) and [`GeminiEmbeddings`]
//! (`POST {root}/v1beta/models/{model}:batchEmbedContents`). Both are plain JSON calls under
//! the chat adapters' timeouts (first token = first body bytes) and the same retry layer.

use crate::body::TimedBody;
use crate::config::{OpenAiConfig, Timeouts};
use crate::failure::{AttemptFailure, Failed};
use crate::retry::{self, Attempt, Forwarding};
use crate::streaming::{headers, post};
use crate::text::truncate;
use agentry_core::ErrorCode;
use agentry_core::chat::{NoDeltas, ProviderError, Usage};
use agentry_core::embedding::{EmbeddingModel, EmbeddingRequest, Embeddings};
use bytes::Bytes;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

/// Thousands of vectors of thousands of floats as JSON text stay well below this.
const MAX_JSON_BODY: usize = 256 * 1024 * 1024;

/// An [`EmbeddingModel`] speaking OpenAI's embeddings API.
#[derive(Debug, Clone)]
pub struct OpenAiEmbeddings {
    client: reqwest::Client,
    config: OpenAiConfig,
    endpoint: String,
    headers: Result<HeaderMap, String>,
}

impl OpenAiEmbeddings {
    pub fn new(config: OpenAiConfig, client: reqwest::Client) -> Self {
        let endpoint = format!("{}/embeddings", config.base_url.trim_end_matches('/'));
        let bearer = config.key().map(|key| format!("Bearer {key}"));
        let headers = headers(&[], bearer.as_deref().map(|value| ("authorization", value)));
        Self {
            client,
            config,
            endpoint,
            headers,
        }
    }
}

/// An [`EmbeddingModel`] speaking Gemini's `batchEmbedContents`.
#[derive(Debug, Clone)]
pub struct GeminiEmbeddings {
    client: reqwest::Client,
    config: OpenAiConfig,
    root: String,
    headers: Result<HeaderMap, String>,
}

impl GeminiEmbeddings {
    pub fn new(config: OpenAiConfig, client: reqwest::Client) -> Self {
        let (root, headers) = crate::gemini::connection(&config);
        Self {
            client,
            config,
            root,
            headers,
        }
    }

    /// The model as one path segment (see the chat adapter for why).
    fn model(model: &str) -> String {
        model
            .trim()
            .trim_start_matches("models/")
            .chars()
            .filter(|c| !matches!(c, '/' | '?' | '#'))
            .collect()
    }
}

/// A response body parser: raw bytes, the requested model and input count → embeddings.
type Parse = fn(&[u8], &str, usize) -> Result<Embeddings, AttemptFailure>;

struct JsonAttempt<'a> {
    client: &'a reqwest::Client,
    endpoint: &'a str,
    headers: &'a Result<HeaderMap, String>,
    timeouts: &'a Timeouts,
    body: Bytes,
    model: &'a str,
    inputs: usize,
    parse: Parse,
    error_message: fn(&str) -> String,
}

#[async_trait::async_trait]
impl Attempt for JsonAttempt<'_> {
    type Output = Embeddings;

    async fn run(&self, _sink: &Forwarding<'_>) -> Result<Embeddings, Failed> {
        let (response, first_deadline) = post(
            self.client,
            self.endpoint,
            self.headers,
            self.timeouts,
            self.body.clone(),
            "application/json",
            self.error_message,
        )
        .await?;
        let status = response.status().as_u16();
        let mut body = TimedBody::new(
            response,
            first_deadline,
            self.timeouts.first_token,
            self.timeouts.idle,
        );
        let bytes = body
            .read_to_end(MAX_JSON_BODY)
            .await
            .map_err(|failure| Failed::new(failure, Some(status)))?;
        (self.parse)(&bytes, self.model, self.inputs)
            .map_err(|failure| Failed::new(failure, Some(status)))
    }
}

fn unparsable(bytes: &[u8], error: &serde_json::Error) -> AttemptFailure {
    if bytes.is_empty() {
        return AttemptFailure::Interrupted("the answer had an empty body".to_string());
    }
    // A body that broke off mid-way is an interruption (retryable), not a bad answer.
    if error.is_eof() {
        return AttemptFailure::Interrupted(format!("the answer broke off: {error}"));
    }
    AttemptFailure::BadResponse(format!(
        "unparsable JSON answer ({error}): {}",
        truncate(&String::from_utf8_lossy(bytes), 200)
    ))
}

fn count_mismatch(got: usize, expected: usize) -> AttemptFailure {
    AttemptFailure::BadResponse(format!(
        "expected {expected} embeddings, the provider returned {got}"
    ))
}

#[derive(Deserialize)]
struct OpenAiAnswer {
    data: Option<Vec<OpenAiItem>>,
    model: Option<String>,
    usage: Option<OpenAiUsage>,
}

#[derive(Deserialize)]
struct OpenAiItem {
    index: Option<usize>,
    embedding: Vec<f32>,
}

#[derive(Deserialize)]
struct OpenAiUsage {
    prompt_tokens: Option<u64>,
    total_tokens: Option<u64>,
}

/// Puts `data[]` in input order by `index` (the API's contract; it need not be list order).
fn parse_openai(bytes: &[u8], model: &str, inputs: usize) -> Result<Embeddings, AttemptFailure> {
    let answer: OpenAiAnswer =
        serde_json::from_slice(bytes).map_err(|error| unparsable(bytes, &error))?;
    let data = answer
        .data
        .ok_or_else(|| AttemptFailure::BadResponse("the answer has no `data`".to_string()))?;
    if data.len() != inputs {
        return Err(count_mismatch(data.len(), inputs));
    }
    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; inputs];
    for (position, item) in data.into_iter().enumerate() {
        let index = item.index.unwrap_or(position);
        match vectors.get_mut(index) {
            Some(slot @ None) => *slot = Some(item.embedding),
            Some(Some(_)) => {
                return Err(AttemptFailure::BadResponse(format!(
                    "embedding index {index} appears twice"
                )));
            }
            None => {
                return Err(AttemptFailure::BadResponse(format!(
                    "embedding index {index} is out of range for {inputs} inputs"
                )));
            }
        }
    }
    let input_tokens = answer
        .usage
        .and_then(|usage| usage.prompt_tokens.or(usage.total_tokens))
        .unwrap_or(0);
    Ok(Embeddings {
        // Every slot is filled: as many unique in-range indices as slots.
        vectors: vectors.into_iter().flatten().collect(),
        usage: Usage {
            input_tokens,
            ..Usage::default()
        },
        model: answer
            .model
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| model.to_string()),
    })
}

#[derive(Deserialize)]
struct GeminiAnswer {
    embeddings: Option<Vec<GeminiItem>>,
}

#[derive(Deserialize)]
struct GeminiItem {
    values: Vec<f32>,
}

fn parse_gemini(bytes: &[u8], model: &str, inputs: usize) -> Result<Embeddings, AttemptFailure> {
    let answer: GeminiAnswer =
        serde_json::from_slice(bytes).map_err(|error| unparsable(bytes, &error))?;
    let embeddings = answer
        .embeddings
        .ok_or_else(|| AttemptFailure::BadResponse("the answer has no `embeddings`".to_string()))?;
    if embeddings.len() != inputs {
        return Err(count_mismatch(embeddings.len(), inputs));
    }
    Ok(Embeddings {
        vectors: embeddings.into_iter().map(|item| item.values).collect(),
        // batchEmbedContents reports no token counts.
        usage: Usage::default(),
        model: model.to_string(),
    })
}

fn encode_error(error: serde_json::Error) -> ProviderError {
    ProviderError::new(
        ErrorCode::ProviderRejected,
        format!("could not encode the request: {error}"),
    )
}

fn empty(request: &EmbeddingRequest) -> Embeddings {
    Embeddings {
        vectors: Vec::new(),
        usage: Usage::default(),
        model: request.model.clone(),
    }
}

#[async_trait::async_trait]
impl EmbeddingModel for OpenAiEmbeddings {
    async fn embed(&self, request: &EmbeddingRequest) -> Result<Embeddings, ProviderError> {
        if request.inputs.is_empty() {
            // Nothing to embed; the API would reject an empty `input`.
            return Ok(empty(request));
        }
        let body = serde_json::to_vec(&json!({
            "model": request.model,
            "input": request.inputs,
            "encoding_format": "float",
        }))
        .map_err(encode_error)?;
        let attempt = JsonAttempt {
            client: &self.client,
            endpoint: &self.endpoint,
            headers: &self.headers,
            timeouts: &self.config.timeouts,
            body: body.into(),
            model: &request.model,
            inputs: request.inputs.len(),
            parse: parse_openai,
            error_message: crate::openai::wire::error_message,
        };
        retry::run(
            &self.config.retry,
            &self.config.timeouts,
            self.config.key(),
            &NoDeltas,
            &attempt,
        )
        .await
    }
}

#[async_trait::async_trait]
impl EmbeddingModel for GeminiEmbeddings {
    async fn embed(&self, request: &EmbeddingRequest) -> Result<Embeddings, ProviderError> {
        if request.inputs.is_empty() {
            return Ok(empty(request));
        }
        let model = Self::model(&request.model);
        let requests: Vec<Value> = request
            .inputs
            .iter()
            .map(|text| {
                json!({"model": format!("models/{model}"), "content": {"parts": [{"text": text}]}})
            })
            .collect();
        let body = serde_json::to_vec(&json!({"requests": requests})).map_err(encode_error)?;
        let endpoint = format!("{}/v1beta/models/{model}:batchEmbedContents", self.root);
        let attempt = JsonAttempt {
            client: &self.client,
            endpoint: &endpoint,
            headers: &self.headers,
            timeouts: &self.config.timeouts,
            body: body.into(),
            model: &request.model,
            inputs: request.inputs.len(),
            parse: parse_gemini,
            error_message: crate::gemini::error_message,
        };
        retry::run(
            &self.config.retry,
            &self.config.timeouts,
            self.config.key(),
            &NoDeltas,
            &attempt,
        )
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn openai_answers_are_ordered_by_index() {
        let body = br#"{"object":"list","model":"text-embedding-3-small",
            "data":[{"index":1,"embedding":[0.5,0.5]},{"index":0,"embedding":[1.0,0.0]}],
            "usage":{"prompt_tokens":7,"total_tokens":7}}"#;
        let embeddings = parse_openai(body, "m", 2).unwrap();
        assert_eq!(embeddings.vectors, [vec![1.0, 0.0], vec![0.5, 0.5]]);
        assert_eq!(embeddings.usage.input_tokens, 7);
        assert_eq!(embeddings.model, "text-embedding-3-small");
    }

    #[test]
    fn openai_answers_that_do_not_match_the_inputs_are_bad() {
        let two = br#"{"data":[{"index":0,"embedding":[1]},{"index":0,"embedding":[2]}]}"#;
        assert!(matches!(
            parse_openai(two, "m", 2),
            Err(AttemptFailure::BadResponse(message)) if message.contains("twice")
        ));
        let out_of_range = br#"{"data":[{"index":5,"embedding":[1]}]}"#;
        assert!(matches!(
            parse_openai(out_of_range, "m", 1),
            Err(AttemptFailure::BadResponse(_))
        ));
        let short = br#"{"data":[{"index":0,"embedding":[1]}]}"#;
        assert!(matches!(
            parse_openai(short, "m", 2),
            Err(AttemptFailure::BadResponse(message)) if message.contains("expected 2")
        ));
        assert!(matches!(
            parse_openai(br#"{"data":[{"index":0,"embed"#, "m", 1),
            Err(AttemptFailure::Interrupted(_))
        ));
        // No usage reported: zero, and the requested model name.
        let bare = parse_openai(br#"{"data":[{"embedding":[1]}]}"#, "m", 1).unwrap();
        assert_eq!(bare.usage, Usage::default());
        assert_eq!(bare.model, "m");
    }

    #[test]
    fn gemini_answers_keep_request_order() {
        let body = br#"{"embeddings":[{"values":[1,2]},{"values":[3,4]}]}"#;
        let embeddings = parse_gemini(body, "text-embedding-004", 2).unwrap();
        assert_eq!(embeddings.vectors, [vec![1.0, 2.0], vec![3.0, 4.0]]);
        assert_eq!(embeddings.model, "text-embedding-004");
        assert!(matches!(
            parse_gemini(body, "m", 3),
            Err(AttemptFailure::BadResponse(_))
        ));
    }
}
