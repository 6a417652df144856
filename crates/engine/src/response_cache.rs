//! The opt-in response cache: an exact match on (org, provider, model, normalised request)
//! answers from memory at zero cost. Keys include the org, so nothing is shared across orgs.
//! In-process and bounded; entries expire by the agent's TTL.

use agentry_core::chat::{ChatRequest, ChatResponse};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub(crate) struct ResponseCache {
    entries: Mutex<HashMap<[u8; 32], (Instant, ChatResponse)>>,
}

/// The cache key: the org, the provider, and the request with message text trimmed (leading and
/// trailing whitespace does not change what is asked).
pub(crate) fn cache_key(org: uuid::Uuid, provider: &str, request: &ChatRequest) -> [u8; 32] {
    let mut normalised = request.clone();
    for m in &mut normalised.messages {
        if let Some(c) = &mut m.content {
            *c = c.trim().to_string();
        }
    }
    let mut h = Sha256::new();
    h.update(org.as_bytes());
    h.update(provider.as_bytes());
    h.update([0]);
    h.update(serde_json::to_vec(&normalised).unwrap_or_default());
    h.finalize().into()
}

impl ResponseCache {
    pub(crate) fn get(&self, key: &[u8; 32]) -> Option<ChatResponse> {
        let mut map = self.entries.lock().ok()?;
        match map.get(key) {
            Some((expires, response)) if *expires > Instant::now() => Some(response.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    pub(crate) fn put(&self, key: [u8; 32], response: &ChatResponse, ttl: Duration) {
        let Ok(mut map) = self.entries.lock() else {
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
    fn keys_separate_orgs_and_ignore_outer_whitespace() {
        let a = uuid::Uuid::now_v7();
        let b = uuid::Uuid::now_v7();
        assert_eq!(
            cache_key(a, "p", &request("hi")),
            cache_key(a, "p", &request("  hi\n"))
        );
        assert_ne!(
            cache_key(a, "p", &request("hi")),
            cache_key(b, "p", &request("hi"))
        );
        assert_ne!(
            cache_key(a, "p", &request("hi")),
            cache_key(a, "q", &request("hi"))
        );
        assert_ne!(
            cache_key(a, "p", &request("hi")),
            cache_key(a, "p", &request("ho"))
        );
    }

    #[test]
    fn entries_expire() {
        let cache = ResponseCache::default();
        let response = ChatResponse {
            model: "m".into(),
            content: Some("x".into()),
            tool_calls: vec![],
            finish_reason: FinishReason::Stop,
            usage: None,
        };
        cache.put([1; 32], &response, Duration::from_secs(60));
        cache.put([2; 32], &response, Duration::ZERO);
        assert!(cache.get(&[1; 32]).is_some());
        assert!(cache.get(&[2; 32]).is_none());
    }
}
