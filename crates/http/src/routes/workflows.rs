//! Workflow definitions: create, version, read, validate, delete.

use crate::AppState;
use crate::dto::List;
use crate::dto_workflows::{ValidationOut, VersionOut, WorkflowOut, WorkflowSummary};
use crate::error::{ApiError, ErrorEnvelope};
use crate::guard::{WsGuard, perm};
use agentry_core::ErrorCode;
use agentry_engine::service::audit::Change;
use agentry_engine::service::workflows::{self, Source};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{StatusCode, header};

/// A definition body: YAML (`Content-Type: application/yaml`, so errors can name lines) or a
/// JSON document.
pub struct DefinitionBody(pub Source);

impl<S: Send + Sync> FromRequest<S> for DefinitionBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    "the definition is larger than the limit",
                )
            } else {
                ApiError::new(ErrorCode::InvalidRequest, e.body_text())
            }
        })?;
        let text = || {
            String::from_utf8(bytes.to_vec())
                .map_err(|_| ApiError::new(ErrorCode::InvalidRequest, "the body is not UTF-8"))
        };
        match content_type.as_str() {
            "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => {
                Ok(DefinitionBody(Source::Yaml(text()?)))
            }
            "application/json" => serde_json::from_slice(&bytes)
                .map(|v| DefinitionBody(Source::Json(v)))
                .map_err(|e| ApiError::new(ErrorCode::InvalidJson, e.to_string())),
            _ => Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the definition as 'Content-Type: application/yaml' or 'application/json'",
            )),
        }
    }
}

/// Create a workflow (version 1). The body is the definition, YAML or JSON.
#[utoipa::path(post, path = "/workflows", tag = "workflows",
    request_body(content = String, content_type = "application/yaml", description = "apiVersion: agentry/v1, kind: Workflow"),
    responses((status = 201, body = WorkflowOut), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = ["workflows:write"])))]
pub async fn create(
    State(state): State<AppState>,
    g: WsGuard<perm::WorkflowsWrite>,
    DefinitionBody(source): DefinitionBody,
) -> Result<(StatusCode, Json<WorkflowOut>), ApiError> {
    let (row, _) = workflows::save(&state.platform, g.scope, source, true).await?;
    let (row, version) = workflows::version(&state.platform, g.scope, &row.slug, None).await?;
    let change = Change::new("workflow.create", "workflow", &row.slug)
        .in_workspace(g.scope.workspace_id)
        .after(version.definition.0.clone());
    crate::audit::record(&state, &g.caller, g.scope.org(), change).await;
    Ok((StatusCode::CREATED, Json(WorkflowOut::new(&row, version))))
}

/// Save a new version of an existing workflow. The name in the body must match the path.
#[utoipa::path(put, path = "/workflows/{slug}", tag = "workflows",
    request_body(content = String, content_type = "application/yaml"),
    responses((status = 200, body = WorkflowOut), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = ["workflows:write"])))]
pub async fn put(
    State(state): State<AppState>,
    g: WsGuard<perm::WorkflowsWrite>,
    Path(slug): Path<String>,
    DefinitionBody(source): DefinitionBody,
) -> Result<(StatusCode, Json<WorkflowOut>), ApiError> {
    let validated = workflows::parse(&source)?;
    if validated.workflow().metadata.name != slug {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            format!(
                "metadata.name is `{}` but the path names `{slug}`",
                validated.workflow().metadata.name
            ),
        ));
    }
    let (row, _) = workflows::save(&state.platform, g.scope, source, false).await?;
    let (row, version) = workflows::version(&state.platform, g.scope, &row.slug, None).await?;
    let change = Change::new("workflow.version", "workflow", &row.slug)
        .in_workspace(g.scope.workspace_id)
        .after(serde_json::json!({"version": version.version}));
    crate::audit::record(&state, &g.caller, g.scope.org(), change).await;
    Ok((StatusCode::OK, Json(WorkflowOut::new(&row, version))))
}

/// Validate a definition without saving it. Nothing in it runs.
#[utoipa::path(post, path = "/workflows/validate", tag = "workflows",
    request_body(content = String, content_type = "application/yaml"),
    responses((status = 200, body = ValidationOut), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = ["workflows:read"])))]
pub async fn validate(
    State(state): State<AppState>,
    g: WsGuard<perm::WorkflowsRead>,
    DefinitionBody(source): DefinitionBody,
) -> Result<Json<ValidationOut>, ApiError> {
    let validated = workflows::parse(&source)?;
    workflows::check_references(&state.platform, g.scope, &validated).await?;
    Ok(Json(ValidationOut {
        valid: true,
        name: validated.workflow().metadata.name.clone(),
        nodes: validated.workflow().spec.nodes.len(),
    }))
}

#[utoipa::path(get, path = "/workflows", tag = "workflows",
    responses((status = 200, body = List<WorkflowSummary>)),
    security(("bearer" = ["workflows:read"])))]
pub async fn list(
    State(state): State<AppState>,
    g: WsGuard<perm::WorkflowsRead>,
) -> Result<Json<List<WorkflowSummary>>, ApiError> {
    let rows = workflows::list(&state.platform, g.scope).await?;
    Ok(Json(List {
        data: rows.into_iter().map(WorkflowSummary::from).collect(),
        next_cursor: None,
    }))
}

/// The latest version.
#[utoipa::path(get, path = "/workflows/{slug}", tag = "workflows",
    responses((status = 200, body = WorkflowOut), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["workflows:read"])))]
pub async fn get(
    State(state): State<AppState>,
    g: WsGuard<perm::WorkflowsRead>,
    Path(slug): Path<String>,
) -> Result<Json<WorkflowOut>, ApiError> {
    let (row, version) = workflows::version(&state.platform, g.scope, &slug, None).await?;
    Ok(Json(WorkflowOut::new(&row, version)))
}

#[utoipa::path(get, path = "/workflows/{slug}/versions", tag = "workflows",
    responses((status = 200, body = List<VersionOut>), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["workflows:read"])))]
pub async fn versions(
    State(state): State<AppState>,
    g: WsGuard<perm::WorkflowsRead>,
    Path(slug): Path<String>,
) -> Result<Json<List<VersionOut>>, ApiError> {
    let rows = workflows::versions(&state.platform, g.scope, &slug).await?;
    Ok(Json(List {
        data: rows
            .into_iter()
            .map(|v| VersionOut {
                version: v.version,
                created_at: v.created_at,
            })
            .collect(),
        next_cursor: None,
    }))
}

/// One version, even after newer ones were saved.
#[utoipa::path(get, path = "/workflows/{slug}/versions/{version}", tag = "workflows",
    responses((status = 200, body = WorkflowOut), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["workflows:read"])))]
pub async fn version(
    State(state): State<AppState>,
    g: WsGuard<perm::WorkflowsRead>,
    Path((slug, version)): Path<(String, i64)>,
) -> Result<Json<WorkflowOut>, ApiError> {
    let (row, v) = workflows::version(&state.platform, g.scope, &slug, Some(version)).await?;
    Ok(Json(WorkflowOut::new(&row, v)))
}

/// Delete a workflow. Its runs stay readable; runs in flight finish on their version.
#[utoipa::path(delete, path = "/workflows/{slug}", tag = "workflows",
    responses((status = 204), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["workflows:write"])))]
pub async fn delete(
    State(state): State<AppState>,
    g: WsGuard<perm::WorkflowsWrite>,
    Path(slug): Path<String>,
) -> Result<StatusCode, ApiError> {
    workflows::delete(&state.platform, g.scope, &slug).await?;
    let change =
        Change::new("workflow.delete", "workflow", &slug).in_workspace(g.scope.workspace_id);
    crate::audit::record(&state, &g.caller, g.scope.org(), change).await;
    Ok(StatusCode::NO_CONTENT)
}
