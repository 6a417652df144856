//! A webhook trigger's signing secrets: generated in the Standard Webhooks format, kept as one
//! sealed JSON list (so the list and its secrets change together), and opened only to verify a
//! delivery or to show the secrets' ids and ages.

use crate::error::{ServiceError, ServiceResult};
use crate::platform::Platform;
use crate::vault::Binding;
use agentry_store::triggers::TriggerRow;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How many secrets a trigger may hold at once: the current one plus a few being rotated out.
pub const MAX_SECRETS: usize = 5;

/// One secret, as stored (sealed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSecret {
    pub id: String,
    pub secret: String,
    pub created_at: DateTime<Utc>,
}

/// What responses show of a secret: never the secret.
#[derive(Debug, Clone, Serialize)]
pub struct SecretMeta {
    pub id: String,
    pub created_at: DateTime<Utc>,
}

impl From<&StoredSecret> for SecretMeta {
    fn from(s: &StoredSecret) -> Self {
        Self {
            id: s.id.clone(),
            created_at: s.created_at,
        }
    }
}

fn binding(trigger_id: Uuid) -> Binding<'static> {
    Binding {
        purpose: "trigger_webhook_secrets",
        row: trigger_id,
        context: "",
    }
}

/// A fresh secret: `whsec_` + base64 of 32 random bytes, with a short public id.
pub fn generate() -> ServiceResult<StoredSecret> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ServiceError::internal("random webhook secret", e))?;
    let mut id = [0u8; 6];
    getrandom::fill(&mut id).map_err(|e| ServiceError::internal("random secret id", e))?;
    Ok(StoredSecret {
        id: format!("sec_{}", hex::encode(id)),
        secret: format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        ),
        created_at: Utc::now(),
    })
}

pub async fn seal(
    platform: &Platform,
    trigger: &TriggerRow,
    secrets: &[StoredSecret],
) -> ServiceResult<String> {
    let plain = serde_json::to_string(secrets)
        .map_err(|e| ServiceError::internal("serializing webhook secrets", e))?;
    platform
        .vault
        .seal(trigger.scope().org(), &binding(trigger.id), &plain)
        .await
        .map_err(|e| ServiceError::internal("sealing webhook secrets", e))
}

/// The trigger's secrets (none for other kinds).
pub async fn open(platform: &Platform, trigger: &TriggerRow) -> ServiceResult<Vec<StoredSecret>> {
    let Some(sealed) = &trigger.secrets else {
        return Ok(Vec::new());
    };
    let plain = platform
        .vault
        .open(trigger.scope().org(), &binding(trigger.id), sealed)
        .await
        .map_err(|e| ServiceError::internal("opening webhook secrets", e))?;
    serde_json::from_str(&plain).map_err(|e| ServiceError::internal("decoding webhook secrets", e))
}
