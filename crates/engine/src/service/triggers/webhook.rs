//! Webhook deliveries: `POST /hooks/{trigger_id}`, authenticated by its Standard Webhooks
//! signature alone.
//!
//! An unknown trigger id (or one that is not a webhook) is verified against a random secret
//! of this process, so it fails exactly like a wrong signature: the answer does not tell a
//! caller without a secret whether the trigger exists. Only a verified delivery learns that a
//! trigger is paused.

use super::config::{Config, WebhookConfig};
use super::fire::{self, FireInput, Fired, Firing};
use super::secrets;
use crate::error::{ServiceError, ServiceResult};
use crate::platform::Platform;
use agentry_core::ErrorCode;
use agentry_store::triggers;
use agentry_triggers::webhook::{self, DEFAULT_TOLERANCE_SECS, WebhookError, WebhookHeaders};
use base64::Engine as _;
use chrono::Utc;
use serde_json::{Value, json};
use std::sync::OnceLock;
use uuid::Uuid;

/// Longest accepted `webhook-id`: it becomes part of the run's idempotency key (≤ 255).
pub const MAX_MESSAGE_ID: usize = 200;

/// What a verified delivery did.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub trigger_id: Uuid,
    /// The trigger's workspace (for the audit entry of the run it started).
    pub scope: agentry_core::scope::WorkspaceScope,
    /// `workflow` or `agent`.
    pub run_kind: String,
    pub run_id: Uuid,
    /// True when this webhook-id was delivered before: the earlier delivery's run.
    pub duplicate: bool,
}

/// Verifies a delivery and starts the trigger's run (one run per webhook-id).
pub async fn deliver(
    platform: &Platform,
    trigger_id: &str,
    headers: &WebhookHeaders<'_>,
    body: &[u8],
) -> ServiceResult<Delivered> {
    let now = Utc::now();
    let trigger = match Uuid::parse_str(trigger_id) {
        Ok(id) => triggers::get_for_delivery(&platform.db, id).await?,
        Err(_) => None,
    }
    .filter(|t| t.kind == triggers::KIND_WEBHOOK);
    let Some(trigger) = trigger else {
        let decoy = decoy_secret();
        let result = webhook::verify(
            &[decoy],
            headers,
            body,
            now.timestamp(),
            DEFAULT_TOLERANCE_SECS,
        );
        return Err(rejected(
            result.err().unwrap_or(WebhookError::InvalidSignature),
        ));
    };
    let tolerance = match Config::parse(&trigger.kind, &trigger.config.0) {
        Ok(Config::Webhook(WebhookConfig { tolerance_seconds })) => tolerance_seconds,
        _ => DEFAULT_TOLERANCE_SECS,
    };
    let stored = secrets::open(platform, &trigger).await?;
    let keys: Vec<&str> = stored.iter().map(|s| s.secret.as_str()).collect();
    let verified = webhook::verify(&keys, headers, body, now.timestamp(), tolerance).map_err(|e| {
        if matches!(e, WebhookError::NoSecrets | WebhookError::InvalidSecret) {
            tracing::error!(trigger_id = %trigger.id, error = %e, "a webhook trigger's stored secrets are unusable");
        }
        rejected(e)
    })?;
    if trigger.paused {
        return Err(ServiceError::new(
            ErrorCode::TriggerPaused,
            "this trigger is paused; the delivery was not accepted",
        ));
    }
    if verified.msg_id.len() > MAX_MESSAGE_ID {
        return Err(ServiceError::validation(vec![
            agentry_core::agent::FieldError::new(
                webhook::HEADER_ID,
                format!("must be at most {MAX_MESSAGE_ID} characters"),
            ),
        ]));
    }
    let payload: Value = serde_json::from_slice(body).map_err(|e| {
        ServiceError::new(ErrorCode::InvalidJson, format!("the body is not JSON: {e}"))
    })?;
    let input = match trigger.target_kind.as_str() {
        "agent" => FireInput::Agent(payload.to_string()),
        _ => FireInput::Workflow(json!({"payload": payload, "webhook_id": verified.msg_id})),
    };
    let firing = Firing {
        fire_key: verified.msg_id.clone(),
        idempotency_key: format!("webhook:{}:{}", trigger.id, verified.msg_id),
        input,
        trigger: json!({"kind": "webhook", "trigger_id": trigger.id, "webhook_id": verified.msg_id}),
        at: now,
    };
    let Fired { run_id, created } = fire::fire(platform, &trigger, &firing).await?;
    Ok(Delivered {
        trigger_id: trigger.id,
        scope: trigger.scope(),
        run_kind: trigger.target_kind.clone(),
        run_id,
        duplicate: !created,
    })
}

/// The 401 for every verification failure. It may say what was wrong with the request (a
/// missing header, a stale timestamp) but never anything about the trigger's secrets.
fn rejected(e: WebhookError) -> ServiceError {
    let message = match e {
        WebhookError::MissingHeader(h) => format!("the {h} header is missing"),
        WebhookError::InvalidTimestamp(_) => "webhook-timestamp must be Unix seconds".to_owned(),
        WebhookError::TimestampOutOfTolerance { .. } => {
            "webhook-timestamp is too far from the server's time (a stale or replayed delivery)"
                .to_owned()
        }
        WebhookError::MalformedSignatureHeader | WebhookError::NoSupportedSignature => {
            "webhook-signature must hold v1,<base64> signatures".to_owned()
        }
        // A wrong signature, and an unusable stored secret: both look the same outside.
        _ => "the delivery's signature does not verify".to_owned(),
    };
    ServiceError::new(ErrorCode::WebhookRejected, message)
}

/// A per-process random secret for unknown triggers. Their delivery is always rejected; the
/// decoy only makes the reason (and the work done) look like a real trigger's.
fn decoy_secret() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let mut bytes = [0u8; 32];
        // Without randomness the key is all zeros; still only a decoy (see above).
        let _ = getrandom::fill(&mut bytes);
        format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )
    })
}
