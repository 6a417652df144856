//! The opt-in response cache: an exact match on (installation, org, provider, normalised
//! request) answers at zero cost. Keys include the org, so nothing is shared across orgs, and
//! the installation's random id, so two installations sharing a Redis never see each other's
//! entries. In Redis (shared by replicas) when `AGENTRY_REDIS_URL` is set, else in the process
//! (bounded). A cache that fails is a miss, never an error.

use agentry_core::chat::{ChatRequest, ChatResponse};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAX_ENTRIES: usize = 10_000;
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
const REDIS_PREFIX: &str = "agentry:response:";

pub(crate) enum ResponseCache {
    InProcess(Mutex<HashMap<[u8; 32], (Instant, ChatResponse)>>),
    Redis(ConnectionManager),
}

impl Default for ResponseCache {
    fn default() -> Self {
        ResponseCache::InProcess(Mutex::new(HashMap::new()))
    }
}

/// The cache key: the installation, the org, the provider, and the request with message text
/// trimmed (leading and trailing whitespace does not change what is asked).
pub(crate) fn cache_key(
    instance: uuid::Uuid,
    org: uuid::Uuid,
    provider: &str,
    request: &ChatRequest,
) -> [u8; 32] {
    let mut normalised = request.clone();
    for m in &mut normalised.messages {
        if let Some(c) = &mut m.content {
            *c = c.trim().to_string();
        }
    }
    let mut h = Sha256::new();
    h.update(instance.as_bytes());
    h.update(org.as_bytes());
    h.update(provider.as_bytes());
    h.update([0]);
    h.update(serde_json::to_vec(&normalised).unwrap_or_default());
    h.finalize().into()
}

impl ResponseCache {
    /// A Redis-backed cache; connects lazily (a Redis that is down means misses).
    pub(crate) fn redis(url: &str) -> Result<ResponseCache, String> {
        tokio::runtime::Handle::try_current().map_err(|e| e.to_string())?;
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(0);
        ConnectionManager::new_lazy_with_config(client, config)
            .map(ResponseCache::Redis)
            .map_err(|e| e.to_string())
    }

    pub(crate) async fn get(&self, key: &[u8; 32]) -> Option<ChatResponse> {
        match self {
            ResponseCache::InProcess(entries) => {
                let mut map = entries.lock().ok()?;
                match map.get(key) {
                    Some((expires, response)) if *expires > Instant::now() => {
                        Some(response.clone())
                    }
                    Some(_) => {
                        map.remove(key);
                        None
                    }
                    None => None,
                }
            }
            ResponseCache::Redis(conn) => {
                let mut conn = conn.clone();
                let redis_key = format!("{REDIS_PREFIX}{}", hex::encode(key));
                let mut cmd = redis::cmd("GET");
                cmd.arg(redis_key);
                let call = cmd.query_async::<Option<Vec<u8>>>(&mut conn);
                match tokio::time::timeout(REDIS_TIMEOUT, call).await {
                    Ok(Ok(Some(bytes))) => serde_json::from_slice(&bytes).ok(),
                    Ok(Ok(None)) => None,
                    Ok(Err(e)) => {
                        redis_failed(&e.to_string());
                        None
                    }
                    Err(_) => {
                        redis_failed("timed out");
                        None
                    }
                }
            }
        }
    }

    pub(crate) async fn put(&self, key: [u8; 32], response: &ChatResponse, ttl: Duration) {
        match self {
            ResponseCache::InProcess(entries) => {
                let Ok(mut map) = entries.lock() else {
                    return;
                };
                if map.len() >= MAX_ENTRIES {
                    let now = Instant::now();
                    map.retain(|_, (expires, _)| *expires > now);
                    if map.len() >= MAX_ENTRIES {
                        // Still full of live entries: drop an arbitrary tenth rather than grow.
                        let drop: Vec<_> = map.keys().take(MAX_ENTRIES / 10).copied().collect();
                        for k in drop {
                            map.remove(&k);
                        }
                    }
                }
                map.insert(key, (Instant::now() + ttl, response.clone()));
            }
            ResponseCache::Redis(conn) => {
                let Ok(bytes) = serde_json::to_vec(response) else {
                    return;
                };
                let mut conn = conn.clone();
                let mut cmd = redis::cmd("SET");
                cmd.arg(format!("{REDIS_PREFIX}{}", hex::encode(key)))
                    .arg(bytes)
                    .arg("EX")
                    .arg(ttl.as_secs().max(1));
                let call = cmd.query_async::<()>(&mut conn);
                match tokio::time::timeout(REDIS_TIMEOUT, call).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => redis_failed(&e.to_string()),
                    Err(_) => redis_failed("timed out"),
                }
            }
        }
    }
}

fn redis_failed(why: &str) {
    metrics::counter!("agentry_response_cache_errors_total").increment(1);
    tracing::debug!(error = why, "response cache unavailable; treated as a miss");
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentry_core::chat::{FinishReason, Message};

    fn request(text: &str) -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            messages: vec![Message::user(text)],
            ..Default::default()
        }
    }

    #[test]
    fn keys_separate_installations_orgs_and_providers_and_ignore_outer_whitespace() {
        let i = uuid::Uuid::new_v4();
        let a = uuid::Uuid::now_v7();
        let b = uuid::Uuid::now_v7();
        let key = |inst, org, p, t| cache_key(inst, org, p, &request(t));
        assert_eq!(key(i, a, "p", "hi"), key(i, a, "p", "  hi\n"));
        assert_ne!(key(i, a, "p", "hi"), key(i, b, "p", "hi"));
        assert_ne!(
            key(i, a, "p", "hi"),
            key(uuid::Uuid::new_v4(), a, "p", "hi")
        );
        assert_ne!(key(i, a, "p", "hi"), key(i, a, "q", "hi"));
        assert_ne!(key(i, a, "p", "hi"), key(i, a, "p", "ho"));
    }

    #[tokio::test]
    async fn entries_expire() {
        let cache = ResponseCache::default();
        let response = ChatResponse {
            model: "m".into(),
            content: Some("x".into()),
            tool_calls: vec![],
            finish_reason: FinishReason::Stop,
            usage: None,
        };
        cache.put([1; 32], &response, Duration::from_secs(60)).await;
        cache.put([2; 32], &response, Duration::ZERO).await;
        assert!(cache.get(&[1; 32]).await.is_some());
        assert!(cache.get(&[2; 32]).await.is_none());
    }
}
