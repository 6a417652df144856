//! Triggers: what starts a workflow or agent run without a person — a cron schedule, a signed
//! webhook, or another run ending. This file holds the management operations (create, read,
//! update, rotate, delete); firing lives in the submodules.
//!
//! Every firing starts its run under an idempotency key derived from the trigger and the
//! firing (`schedule:{id}:{tick}`, `webhook:{id}:{webhook-id}`, `event:{id}:{run id}`), so a
//! tick, a delivery or a source run starts exactly one run however many replicas, retries or
//! sweeps see it. See `docs/triggers.md`.

pub mod config;
pub mod events;
pub mod fire;
pub mod scheduler;
pub mod secrets;
pub mod webhook;

use crate::error::{ServiceError, ServiceResult};
use crate::platform::Platform;
use agentry_core::ErrorCode;
use agentry_core::agent::FieldError;
use agentry_core::scope::WorkspaceScope;
use agentry_store::Json;
use agentry_store::triggers::{self, FireRow, TriggerRow};
use chrono::{DateTime, Utc};
use config::{Config, RunKind};
use serde_json::Value;
use uuid::Uuid;

pub use events::on_run_ended;
pub use secrets::SecretMeta;

/// How many upcoming ticks responses show.
pub const UPCOMING: usize = 5;
pub const MAX_FIRES_LIMIT: u64 = 200;

/// A trigger to create.
pub struct NewTrigger {
    pub name: String,
    /// `schedule`, `webhook` or `event`.
    pub kind: String,
    /// `workflow` or `agent`.
    pub target_kind: String,
    pub target: String,
    pub config: Value,
    /// Schedules only: the run input (a text for an agent, an object for a workflow).
    pub input: Option<Value>,
    pub paused: bool,
}

/// Changes to a trigger; `None` leaves a field as it is.
#[derive(Default)]
pub struct TriggerPatch {
    pub name: Option<String>,
    pub paused: Option<bool>,
    /// The whole new config of the trigger's kind (the kind itself cannot change).
    pub config: Option<Value>,
    /// `Some(Value::Null)` removes the input.
    pub input: Option<Value>,
    /// Webhook secrets to remove by id (after a rotation); at least one must remain.
    pub remove_secrets: Vec<String>,
}

/// A trigger as responses show it: never its secrets, only their ids.
pub struct TriggerInfo {
    /// `secrets` is always `None` here.
    pub row: TriggerRow,
    /// The next ticks of an active schedule (empty otherwise).
    pub upcoming: Vec<DateTime<Utc>>,
    pub secrets: Vec<SecretMeta>,
    /// A secret just created (on create and rotate): shown once.
    pub new_secret: Option<String>,
}

fn not_found(id: Uuid) -> ServiceError {
    ServiceError::new(
        ErrorCode::TriggerNotFound,
        format!("no trigger with id '{id}'"),
    )
}

fn check_name(name: &str, errors: &mut Vec<FieldError>) {
    let n = name.trim().chars().count();
    if !(1..=100).contains(&n) || name.chars().any(char::is_control) {
        errors.push(FieldError::new(
            "name",
            "must be 1-100 characters without control characters",
        ));
    }
}

/// The run kind named by a request, or a field error.
fn run_kind(field: &str, kind: &str, errors: &mut Vec<FieldError>) -> Option<RunKind> {
    let parsed = RunKind::parse(kind);
    if parsed.is_none() {
        errors.push(FieldError::new(field, "must be workflow or agent"));
    }
    parsed
}

/// Checks that a workflow or agent exists in the workspace (404 with its own code if not).
async fn check_exists(
    platform: &Platform,
    scope: WorkspaceScope,
    kind: RunKind,
    slug: &str,
) -> ServiceResult<()> {
    match kind {
        RunKind::Workflow => {
            crate::service::workflows::get(platform, scope, slug).await?;
        }
        RunKind::Agent => {
            crate::service::agents::get(platform, scope, slug).await?;
        }
    }
    Ok(())
}

/// The first tick after `now` of an active schedule; `None` for paused ones and other kinds.
fn next_fire(config: &Config, paused: bool, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match config {
        Config::Schedule(s) if !paused => s.schedule().ok()?.next_after(now),
        _ => None,
    }
}

pub async fn create(
    platform: &Platform,
    scope: WorkspaceScope,
    new: NewTrigger,
) -> ServiceResult<TriggerInfo> {
    let mut errors = Vec::new();
    check_name(&new.name, &mut errors);
    let target = run_kind("target.kind", &new.target_kind, &mut errors);
    if new.target.trim().is_empty() {
        errors.push(FieldError::new("target.slug", "must not be empty"));
    }
    let config = match Config::parse(&new.kind, &new.config) {
        Ok(c) => Some(c),
        Err(mut e) => {
            errors.append(&mut e);
            None
        }
    };
    if let Some(target) = target {
        errors.extend(config::check_input(&new.kind, target, new.input.as_ref()));
    }
    if let (Some(Config::Event(e)), Some(target)) = (&config, target)
        && e.source_kind == target
        && e.source == new.target
    {
        errors.push(FieldError::new(
            "target",
            "an event trigger cannot start the agent or workflow it listens to (it would loop)",
        ));
    }
    let (Some(target), Some(config), true) = (target, config, errors.is_empty()) else {
        return Err(ServiceError::validation(errors));
    };
    check_exists(platform, scope, target, &new.target).await?;
    if let Config::Event(e) = &config {
        check_exists(platform, scope, e.source_kind, &e.source).await?;
    }

    let now = Utc::now();
    let mut row = TriggerRow {
        id: Uuid::now_v7(),
        org_id: scope.org_id.0,
        workspace_id: scope.workspace_id.0,
        name: new.name.trim().to_owned(),
        kind: new.kind.clone(),
        target_kind: target.as_str().to_owned(),
        target: new.target.clone(),
        config: Json(config.to_value()),
        secrets: None,
        input: new.input.filter(|v| !v.is_null()).map(Json),
        paused: new.paused,
        next_fire_at: next_fire(&config, new.paused, now),
        last_fired_at: None,
        created_at: now,
        updated_at: now,
    };
    let mut new_secret = None;
    if matches!(config, Config::Webhook(_)) {
        let secret = secrets::generate()?;
        row.secrets = Some(secrets::seal(platform, &row, std::slice::from_ref(&secret)).await?);
        new_secret = Some(secret.secret);
    }
    triggers::insert(&platform.db, &row).await?;
    let mut info = info(platform, row).await?;
    info.new_secret = new_secret;
    Ok(info)
}

pub async fn list(platform: &Platform, scope: WorkspaceScope) -> ServiceResult<Vec<TriggerInfo>> {
    let rows = triggers::list(&platform.db, scope).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(info(platform, row).await?);
    }
    Ok(out)
}

pub async fn get(
    platform: &Platform,
    scope: WorkspaceScope,
    id: Uuid,
) -> ServiceResult<TriggerInfo> {
    info(platform, row(platform, scope, id).await?).await
}

async fn row(platform: &Platform, scope: WorkspaceScope, id: Uuid) -> ServiceResult<TriggerRow> {
    triggers::get(&platform.db, scope, id)
        .await?
        .ok_or_else(|| not_found(id))
}

/// How often a write is retried when another change to the same trigger got in between.
const WRITE_ATTEMPTS: usize = 3;

/// Writes `row` only if the trigger still has `expected` as its `updated_at`: two concurrent
/// changes (a rotation and a secret removal) must not silently undo each other.
async fn write(
    platform: &Platform,
    scope: WorkspaceScope,
    row: &TriggerRow,
    expected: DateTime<Utc>,
) -> ServiceResult<bool> {
    Ok(triggers::update(&platform.db, scope, row, expected).await?)
}

fn kept_changing() -> ServiceError {
    ServiceError::internal(
        "updating a trigger",
        "it was changed concurrently on every attempt",
    )
}

/// Applies a patch. Resuming a schedule, or changing its config, computes the next tick from
/// now: ticks missed while paused never fire (the misfire policy is about downtime).
pub async fn update(
    platform: &Platform,
    scope: WorkspaceScope,
    id: Uuid,
    patch: TriggerPatch,
) -> ServiceResult<TriggerInfo> {
    for _ in 0..WRITE_ATTEMPTS {
        let current = row(platform, scope, id).await?;
        let expected = current.updated_at;
        let next = apply(platform, scope, current, &patch).await?;
        if write(platform, scope, &next, expected).await? {
            return info(platform, next).await;
        }
    }
    Err(kept_changing())
}

async fn apply(
    platform: &Platform,
    scope: WorkspaceScope,
    mut row: TriggerRow,
    patch: &TriggerPatch,
) -> ServiceResult<TriggerRow> {
    let mut errors = Vec::new();
    if let Some(name) = &patch.name {
        check_name(name, &mut errors);
        row.name = name.trim().to_owned();
    }
    let config_changed = patch.config.is_some();
    let config = match Config::parse(&row.kind, patch.config.as_ref().unwrap_or(&row.config.0)) {
        Ok(c) => Some(c),
        Err(mut e) => {
            errors.append(&mut e);
            None
        }
    };
    if let Some(input) = &patch.input {
        row.input = (!input.is_null()).then(|| Json(input.clone()));
    }
    if let Some(target) = RunKind::parse(&row.target_kind) {
        errors.extend(config::check_input(
            &row.kind,
            target,
            row.input.as_ref().map(|j| &j.0),
        ));
        if let Some(Config::Event(e)) = &config
            && e.source_kind == target
            && e.source == row.target
        {
            errors.push(FieldError::new(
                "config.source",
                "an event trigger cannot listen to the agent or workflow it starts (it would loop)",
            ));
        }
    }
    let mut stored = Vec::new();
    if !patch.remove_secrets.is_empty() {
        if row.kind != triggers::KIND_WEBHOOK {
            errors.push(FieldError::new(
                "remove_secrets",
                "only webhook triggers have secrets",
            ));
        } else {
            stored = secrets::open(platform, &row).await?;
            for id in &patch.remove_secrets {
                if !stored.iter().any(|s| &s.id == id) {
                    errors.push(FieldError::new(
                        "remove_secrets",
                        format!("no secret with id '{id}'"),
                    ));
                }
            }
            stored.retain(|s| !patch.remove_secrets.contains(&s.id));
            if stored.is_empty() {
                errors.push(FieldError::new(
                    "remove_secrets",
                    "a webhook trigger keeps at least one secret; rotate first, then remove the old one",
                ));
            }
        }
    }
    let Some(config) = config.filter(|_| errors.is_empty()) else {
        return Err(ServiceError::validation(errors));
    };
    if let Config::Event(e) = &config
        && config_changed
    {
        check_exists(platform, scope, e.source_kind, &e.source).await?;
    }
    let was_paused = row.paused;
    if let Some(paused) = patch.paused {
        row.paused = paused;
    }
    let now = Utc::now();
    if row.paused {
        row.next_fire_at = None;
    } else if was_paused || config_changed || row.next_fire_at.is_none() {
        row.next_fire_at = next_fire(&config, false, now);
    }
    // Otherwise `next_fire_at` is written back as read. Should the scheduler have advanced it
    // in between, the next pass meets the already fired tick again: its idempotency key
    // finds the existing run, and the schedule moves on.
    row.config = Json(config.to_value());
    if !patch.remove_secrets.is_empty() {
        row.secrets = Some(secrets::seal(platform, &row, &stored).await?);
    }
    row.updated_at = now;
    Ok(row)
}

/// Adds a new webhook secret (returned once) and keeps the others valid until removed, so the
/// sender can switch without a gap.
pub async fn rotate_secret(
    platform: &Platform,
    scope: WorkspaceScope,
    id: Uuid,
) -> ServiceResult<TriggerInfo> {
    for _ in 0..WRITE_ATTEMPTS {
        let mut row = row(platform, scope, id).await?;
        let expected = row.updated_at;
        if row.kind != triggers::KIND_WEBHOOK {
            return Err(ServiceError::validation(vec![FieldError::new(
                "kind",
                "only webhook triggers have secrets to rotate",
            )]));
        }
        let mut stored = secrets::open(platform, &row).await?;
        if stored.len() >= secrets::MAX_SECRETS {
            return Err(ServiceError::validation(vec![FieldError::new(
                "secrets",
                format!(
                    "a trigger holds at most {} secrets; remove old ones first (PATCH remove_secrets)",
                    secrets::MAX_SECRETS
                ),
            )]));
        }
        let secret = secrets::generate()?;
        stored.push(secret.clone());
        row.secrets = Some(secrets::seal(platform, &row, &stored).await?);
        row.updated_at = Utc::now();
        if write(platform, scope, &row, expected).await? {
            let mut info = info(platform, row).await?;
            info.new_secret = Some(secret.secret);
            return Ok(info);
        }
    }
    Err(kept_changing())
}

/// Deletes a trigger (and its fire history); returns it as it was.
pub async fn delete(
    platform: &Platform,
    scope: WorkspaceScope,
    id: Uuid,
) -> ServiceResult<TriggerInfo> {
    let existing = row(platform, scope, id).await?;
    if !triggers::delete(&platform.db, scope, id).await? {
        return Err(not_found(id));
    }
    let mut existing = existing;
    existing.secrets = None;
    Ok(TriggerInfo {
        upcoming: Vec::new(),
        secrets: Vec::new(),
        new_secret: None,
        row: existing,
    })
}

/// The trigger's latest fires, newest first.
pub async fn fires(
    platform: &Platform,
    scope: WorkspaceScope,
    id: Uuid,
    limit: u64,
) -> ServiceResult<Vec<FireRow>> {
    row(platform, scope, id).await?;
    Ok(triggers::fires(&platform.db, scope, id, limit.clamp(1, MAX_FIRES_LIMIT)).await?)
}

async fn info(platform: &Platform, mut row: TriggerRow) -> ServiceResult<TriggerInfo> {
    let upcoming = match Config::parse(&row.kind, &row.config.0) {
        Ok(Config::Schedule(s)) if !row.paused => s
            .schedule()
            .map(|s| s.upcoming(Utc::now(), UPCOMING))
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let secrets = secrets::open(platform, &row)
        .await?
        .iter()
        .map(SecretMeta::from)
        .collect();
    row.secrets = None;
    Ok(TriggerInfo {
        row,
        upcoming,
        secrets,
        new_secret: None,
    })
}
