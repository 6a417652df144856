//! Triggers: schedules, webhooks and run-ended events that start workflow or agent runs, and
//! the public webhook endpoint `POST /hooks/{id}`, whose Standard Webhooks signature is its
//! only authentication.

use crate::AppState;
use crate::dto::List;
use crate::dto_triggers::{FireOut, HookAccepted, TriggerIn, TriggerOut, TriggerPatchIn};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery};
use crate::guard::{PeerIp, WsGuard, perm};
use agentry_core::ErrorCode;
use agentry_engine::service::audit::{self, Change};
use agentry_engine::service::principal::{Actor, RequestMeta};
use agentry_engine::service::triggers;
use agentry_triggers::webhook::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, WebhookHeaders};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header::USER_AGENT};
use serde::Deserialize;
use utoipa::IntoParams;

/// Largest webhook body: the payload becomes a run input, whose limit is the same.
pub const MAX_HOOK_BODY: usize = agentry_engine::service::workflow_runs::MAX_INPUT_BYTES;

fn trigger_id(id: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(id)
        .map_err(|_| ApiError::new(ErrorCode::TriggerNotFound, "no trigger with this id"))
}

/// Create a trigger. A webhook trigger's answer carries its signing secret, once.
#[utoipa::path(post, path = "/triggers", tag = "triggers", request_body = TriggerIn,
    responses((status = 201, body = TriggerOut), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = ["workflows:write"])))]
pub async fn create(
    State(state): State<AppState>,
    g: WsGuard<perm::WorkflowsWrite>,
    ApiJson(body): ApiJson<TriggerIn>,
) -> Result<(StatusCode, Json<TriggerOut>), ApiError> {
    let info = triggers::create(&state.platform, g.scope, body.into()).await?;
    let out = TriggerOut::from(info);
    let change = Change::new("trigger.create", "trigger", &out.id)
        .in_workspace(g.scope.workspace_id)
        .after(out.snapshot());
    crate::audit::record(&state, &g.caller, g.scope.org(), change).await;
    Ok((StatusCode::CREATED, Json(out)))
}

/// The workspace's triggers.
#[utoipa::path(get, path = "/triggers", tag = "triggers",
    responses((status = 200, body = List<TriggerOut>)),
    security(("bearer" = ["workflows:read"])))]
pub async fn list(
    State(state): State<AppState>,
    g: WsGuard<perm::WorkflowsRead>,
) -> Result<Json<List<TriggerOut>>, ApiError> {
    let data = triggers::list(&state.platform, g.scope).await?;
    Ok(Json(List {
        data: data.into_iter().map(TriggerOut::from).collect(),
        next_cursor: None,
    }))
}

/// One trigger, with a schedule's next 5 ticks.
#[utoipa::path(get, path = "/triggers/{id}", tag = "triggers",
    responses((status = 200, body = TriggerOut), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["workflows:read"])))]
pub async fn get(
    State(state): State<AppState>,
    g: WsGuard<perm::WorkflowsRead>,
    Path(id): Path<String>,
) -> Result<Json<TriggerOut>, ApiError> {
    let info = triggers::get(&state.platform, g.scope, trigger_id(&id)?).await?;
    Ok(Json(info.into()))
}

/// Change a trigger: rename, pause or resume, replace its config or input, remove webhook
/// secrets after a rotation.
#[utoipa::path(patch, path = "/triggers/{id}", tag = "triggers", request_body = TriggerPatchIn,
    responses((status = 200, body = TriggerOut), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = ["workflows:write"])))]
pub async fn update(
    State(state): State<AppState>,
    g: WsGuard<perm::WorkflowsWrite>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TriggerPatchIn>,
) -> Result<Json<TriggerOut>, ApiError> {
    let id = trigger_id(&id)?;
    let before = TriggerOut::from(triggers::get(&state.platform, g.scope, id).await?).snapshot();
    let out = TriggerOut::from(triggers::update(&state.platform, g.scope, id, body.into()).await?);
    let change = Change::new("trigger.update", "trigger", id)
        .in_workspace(g.scope.workspace_id)
        .before(before)
        .after(out.snapshot());
    crate::audit::record(&state, &g.caller, g.scope.org(), change).await;
    Ok(Json(out))
}

#[utoipa::path(delete, path = "/triggers/{id}", tag = "triggers",
    responses((status = 204), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["workflows:write"])))]
pub async fn delete(
    State(state): State<AppState>,
    g: WsGuard<perm::WorkflowsWrite>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let gone =
        TriggerOut::from(triggers::delete(&state.platform, g.scope, trigger_id(&id)?).await?);
    let change = Change::new("trigger.delete", "trigger", &gone.id)
        .in_workspace(g.scope.workspace_id)
        .before(gone.snapshot());
    crate::audit::record(&state, &g.caller, g.scope.org(), change).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a new webhook secret (in the answer, once). The previous secrets keep verifying until
/// removed with `PATCH {"remove_secrets": [id]}`, so the sender can switch without a gap.
#[utoipa::path(post, path = "/triggers/{id}/rotate-secret", tag = "triggers",
    responses((status = 200, body = TriggerOut), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = ["workflows:write"])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    g: WsGuard<perm::WorkflowsWrite>,
    Path(id): Path<String>,
) -> Result<Json<TriggerOut>, ApiError> {
    let out = TriggerOut::from(
        triggers::rotate_secret(&state.platform, g.scope, trigger_id(&id)?).await?,
    );
    let change = Change::new("trigger.rotate_secret", "trigger", &out.id)
        .in_workspace(g.scope.workspace_id)
        .after(out.snapshot());
    crate::audit::record(&state, &g.caller, g.scope.org(), change).await;
    Ok(Json(out))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FiresQuery {
    /// 1-200, default 50.
    pub limit: Option<u64>,
}

/// The trigger's latest fires (tick, webhook-id or source run → the run it started).
#[utoipa::path(get, path = "/triggers/{id}/fires", tag = "triggers", params(FiresQuery),
    responses((status = 200, body = List<FireOut>), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["workflows:read"])))]
pub async fn fires(
    State(state): State<AppState>,
    g: WsGuard<perm::WorkflowsRead>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<FiresQuery>,
) -> Result<Json<List<FireOut>>, ApiError> {
    let rows = triggers::fires(
        &state.platform,
        g.scope,
        trigger_id(&id)?,
        q.limit.unwrap_or(50),
    )
    .await?;
    Ok(Json(List {
        data: rows.into_iter().map(FireOut::from).collect(),
        next_cursor: None,
    }))
}

/// Deliver a webhook (Standard Webhooks). No credentials: the `webhook-signature` over
/// `webhook-id`, `webhook-timestamp` and the body is the authentication. 202 with the run it
/// started; a repeated `webhook-id` answers 200 with the same run. An unknown trigger answers
/// 401 exactly like a bad signature.
#[utoipa::path(post, path = "/hooks/{id}", tag = "triggers",
    request_body(content = Object, description = "Any JSON payload; it becomes the run's input"),
    params(
        ("webhook-id" = String, Header, description = "The sender's unique message id (deliveries with one id start one run)"),
        ("webhook-timestamp" = String, Header, description = "Unix seconds"),
        ("webhook-signature" = String, Header, description = "`v1,<base64 HMAC-SHA256>`, space-separated when several"),
    ),
    responses((status = 202, body = HookAccepted), (status = 200, body = HookAccepted),
        (status = 401, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope)),
    security(()))]
pub async fn deliver(
    State(state): State<AppState>,
    PeerIp(ip): PeerIp,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<HookAccepted>), ApiError> {
    if body.len() > MAX_HOOK_BODY {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("a webhook body may be at most {MAX_HOOK_BODY} bytes"),
        ));
    }
    let webhook_headers = WebhookHeaders {
        id: header(&headers, HEADER_ID),
        timestamp: header(&headers, HEADER_TIMESTAMP),
        signature: header(&headers, HEADER_SIGNATURE),
    };
    let delivered =
        triggers::webhook::deliver(&state.platform, &id, &webhook_headers, &body).await?;
    let status = if delivered.duplicate {
        StatusCode::OK
    } else {
        let change = Change::new("trigger.fire", "trigger", delivered.trigger_id)
            .in_workspace(delivered.scope.workspace_id)
            .after(
                serde_json::json!({"run_kind": delivered.run_kind, "run_id": delivered.run_id,
                "webhook_id": webhook_headers.id}),
            );
        audit::record(
            &state.platform,
            delivered.scope.org(),
            &Actor::System,
            &RequestMeta {
                ip,
                user_agent: headers
                    .get(USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                request_id: headers
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            },
            change,
        )
        .await;
        StatusCode::ACCEPTED
    };
    Ok((status, Json(delivered.into())))
}

/// A header's value, or "" (which verification reports as missing).
fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}
