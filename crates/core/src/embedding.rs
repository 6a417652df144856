//! Provider-neutral embedding types and the [`EmbeddingModel`] trait. Adapters translate these
//! to and from their wire format; nothing else sees a wire format.

use crate::chat::{ProviderError, Usage};
use serde::{Deserialize, Serialize};

/// Texts to embed with one model, in one call.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EmbeddingRequest {
    /// The provider's own model name (without the `provider/` prefix).
    pub model: String,
    pub inputs: Vec<String>,
}

/// The vectors of one embedding call, in the order of [`EmbeddingRequest::inputs`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f32>>,
    /// Only `input_tokens` is meaningful; zero when the provider reports no usage.
    pub usage: Usage,
    /// The model name the provider reported (or the requested one).
    pub model: String,
}

/// An embedding provider. Implementations own retries and timeouts: callers never retry.
#[async_trait::async_trait]
pub trait EmbeddingModel: Send + Sync {
    async fn embed(&self, request: &EmbeddingRequest) -> Result<Embeddings, ProviderError>;
}
