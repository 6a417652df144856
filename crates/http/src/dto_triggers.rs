//! Wire types of the triggers API. A webhook secret appears in exactly two answers (create and
//! rotate-secret), once; every other answer shows secrets by id only.

use agentry_engine::service::triggers::webhook::Delivered;
use agentry_engine::service::triggers::{NewTrigger, TriggerInfo, TriggerPatch};
use agentry_store::triggers::FireRow;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// What a trigger starts (or, in an event trigger's config, what it listens to).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetRef {
    /// `workflow` or `agent`.
    pub kind: String,
    pub slug: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerIn {
    /// 1-100 characters.
    pub name: String,
    /// `schedule`, `webhook` or `event`.
    pub kind: String,
    pub target: TargetRef,
    /// By kind. `schedule`: `{cron, timezone (IANA, default UTC), misfire: skip|run_once}`;
    /// `webhook`: `{tolerance_seconds (default 300)}`; `event`:
    /// `{source_kind: agent|workflow, source: slug, on: [completed|failed|cancelled]}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: Value,
    /// Schedules only: the run's input (a text for an agent, an object for a workflow).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Option<Value>,
    /// Create it paused.
    #[serde(default)]
    pub paused: bool,
}

impl From<TriggerIn> for NewTrigger {
    fn from(t: TriggerIn) -> Self {
        Self {
            name: t.name,
            kind: t.kind,
            target_kind: t.target.kind,
            target: t.target.slug,
            config: t.config,
            input: t.input,
            paused: t.paused,
        }
    }
}

/// Keeps an explicit `null` (which clears a field) apart from an absent field.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerPatchIn {
    pub name: Option<String>,
    /// Pause or resume. Resuming a schedule starts from the next tick after now: ticks missed
    /// while paused never fire.
    pub paused: Option<bool>,
    /// The whole new config of the trigger's kind.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Object)]
    pub config: Option<Value>,
    /// Schedules only; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Object)]
    pub input: Option<Value>,
    /// Webhook secret ids to remove after a rotation; one secret must remain.
    #[serde(default)]
    pub remove_secrets: Vec<String>,
}

impl From<TriggerPatchIn> for TriggerPatch {
    fn from(p: TriggerPatchIn) -> Self {
        Self {
            name: p.name,
            paused: p.paused,
            config: p.config,
            input: p.input,
            remove_secrets: p.remove_secrets,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecretOut {
    pub id: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TriggerOut {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub target: TargetRef,
    #[schema(value_type = Object)]
    pub config: Value,
    #[schema(value_type = Object)]
    pub input: Option<Value>,
    pub paused: bool,
    /// Schedules: the next tick the scheduler will fire (null while paused).
    pub next_fire_at: Option<DateTime<Utc>>,
    /// Schedules: the next 5 ticks (empty while paused).
    pub upcoming: Vec<DateTime<Utc>>,
    pub last_fired_at: Option<DateTime<Utc>>,
    /// Webhooks: where the sender posts, relative to this server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_path: Option<String>,
    /// Webhooks: the secrets that verify deliveries (ids only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretOut>,
    /// Shown once, on create and rotate-secret: the new Standard Webhooks secret (`whsec_…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<TriggerInfo> for TriggerOut {
    fn from(t: TriggerInfo) -> Self {
        let row = t.row;
        let webhook_path = (row.kind == "webhook").then(|| format!("/api/v1/hooks/{}", row.id));
        Self {
            id: row.id.to_string(),
            name: row.name,
            kind: row.kind,
            target: TargetRef {
                kind: row.target_kind,
                slug: row.target,
            },
            config: row.config.0,
            input: row.input.map(|j| j.0),
            paused: row.paused,
            next_fire_at: row.next_fire_at,
            upcoming: t.upcoming,
            last_fired_at: row.last_fired_at,
            webhook_path,
            secrets: t
                .secrets
                .into_iter()
                .map(|s| SecretOut {
                    id: s.id,
                    created_at: s.created_at,
                })
                .collect(),
            secret: t.new_secret,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

impl TriggerOut {
    /// The audit snapshot: the fields a person changes, never a secret.
    pub fn snapshot(&self) -> Value {
        serde_json::json!({"name": self.name, "kind": self.kind, "target": self.target,
            "config": self.config, "input": self.input, "paused": self.paused,
            "secret_ids": self.secrets.iter().map(|s| s.id.clone()).collect::<Vec<_>>()})
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FireOut {
    /// The schedule tick (RFC 3339), the webhook-id, or the ended run's id.
    pub key: String,
    /// The run it started; null when the run could not start (the server log says why).
    pub run_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<FireRow> for FireOut {
    fn from(f: FireRow) -> Self {
        Self {
            key: f.fire_key,
            run_id: f.run_id.map(|r| r.to_string()),
            created_at: f.created_at,
        }
    }
}

/// The answer to a verified webhook delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct HookAccepted {
    pub trigger_id: String,
    /// `workflow` (a workflow run) or `agent` (an agent run, at `/runs/{id}`).
    pub run_kind: String,
    pub run_id: String,
    /// True when this webhook-id was delivered before (the earlier delivery's run).
    pub duplicate: bool,
}

impl From<Delivered> for HookAccepted {
    fn from(d: Delivered) -> Self {
        Self {
            trigger_id: d.trigger_id.to_string(),
            run_kind: d.run_kind,
            run_id: d.run_id.to_string(),
            duplicate: d.duplicate,
        }
    }
}
