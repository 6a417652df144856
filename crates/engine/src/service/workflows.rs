//! Workflow definitions: parsed (YAML or JSON, with positions), validated statically and
//! against what exists in the workspace (agents, tools, sub-workflows), then saved as a new
//! immutable version. Nothing in a definition runs while it is saved or previewed.

use crate::error::{ServiceError, ServiceResult};
use crate::platform::Platform;
use agentry_core::ErrorCode;
use agentry_core::scope::WorkspaceScope;
use agentry_store::{StoreError, workflows};
use agentry_workflow::{
    DefinitionError, DefinitionErrors, NodeKind, ValidatedWorkflow, Workflow, validate,
};
use serde_json::{Value, json};

pub use agentry_store::workflows::{VersionRow, WorkflowRow};

/// A definition as sent: YAML text or a JSON document.
pub enum Source {
    Yaml(String),
    Json(Value),
}

/// Parses and validates (shape, graph, expressions, schemas) without touching the store.
pub fn parse(source: &Source) -> ServiceResult<ValidatedWorkflow> {
    let parsed = match source {
        Source::Yaml(text) => Workflow::parse_yaml(text),
        Source::Json(value) => Workflow::from_json_value(value),
    }
    .map_err(invalid)?;
    validate(&parsed).map_err(invalid)
}

/// The 422 for definition errors: every error with its node, field and line.
pub fn invalid(errors: DefinitionErrors) -> ServiceError {
    let list: Vec<Value> = errors.iter().map(error_json).collect();
    let first = errors
        .iter()
        .next()
        .map(ToString::to_string)
        .unwrap_or_default();
    let more = match errors.0.len() {
        0 | 1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    };
    ServiceError::new(
        ErrorCode::WorkflowInvalid,
        format!("the workflow definition is invalid: {first}{more}"),
    )
    .with_details(json!({ "errors": list }))
}

fn error_json(e: &DefinitionError) -> Value {
    json!({
        "node": e.node,
        "field": e.field,
        "line": e.line,
        "column": e.column,
        "message": e.message,
    })
}

fn located(workflow: &Workflow, node: &str, field: &str, message: String) -> DefinitionError {
    let path = [
        agentry_workflow::Seg::from("spec"),
        agentry_workflow::Seg::from("nodes"),
        agentry_workflow::Seg::from(node),
        agentry_workflow::Seg::from(field),
    ];
    let pos = workflow.source.position(&path);
    DefinitionError {
        node: Some(node.to_owned()),
        field: field.to_owned(),
        line: pos.map(|p| p.line),
        column: pos.map(|p| p.column),
        message,
    }
}

/// Checks the references a definition makes to the workspace: agents, tools and
/// sub-workflows must exist (a workflow may call itself; its depth limit stops recursion), and
/// a sub-workflow's `input` must give every key its input schema requires.
pub async fn check_references(
    platform: &Platform,
    scope: WorkspaceScope,
    validated: &ValidatedWorkflow,
) -> ServiceResult<()> {
    let workflow = validated.workflow();
    let mut errors = Vec::new();
    let tools = platform.tools.names();
    for (id, node) in &workflow.spec.nodes {
        match &node.kind {
            NodeKind::Agent(a)
                if agentry_store::agents::get(&platform.db, scope, &a.agent)
                    .await?
                    .is_none() =>
            {
                errors.push(located(
                    workflow,
                    id,
                    "agent",
                    format!("no agent `{}` exists in this workspace", a.agent),
                ));
            }
            NodeKind::Approval(a)
                if agentry_core::authz::Role::parse(&a.assignee_role).is_none() =>
            {
                errors.push(located(
                    workflow,
                    id,
                    "assignee_role",
                    format!(
                        "`{}` is not a role; use viewer, member, admin or owner",
                        a.assignee_role
                    ),
                ));
            }
            NodeKind::Tool(t) if !tools.contains(&t.tool.as_str()) => {
                errors.push(located(
                    workflow,
                    id,
                    "tool",
                    format!(
                        "no tool `{}`; available tools: {}",
                        t.tool,
                        tools.join(", ")
                    ),
                ));
            }
            NodeKind::Workflow(w) if w.workflow != workflow.metadata.name => {
                match latest(platform, scope, &w.workflow).await {
                    Ok((_, child)) => {
                        let required: Vec<String> = child
                            .workflow()
                            .spec
                            .input
                            .as_ref()
                            .and_then(|s| s.get("required"))
                            .and_then(Value::as_array)
                            .map(|r| {
                                r.iter()
                                    .filter_map(|v| v.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default();
                        let given = w.input.as_ref().and_then(Value::as_object);
                        let missing: Vec<&String> = required
                            .iter()
                            .filter(|k| !given.is_some_and(|g| g.contains_key(k.as_str())))
                            .collect();
                        if !missing.is_empty() {
                            errors.push(located(
                                workflow,
                                id,
                                "input",
                                format!(
                                    "workflow `{}` requires input {}",
                                    w.workflow,
                                    missing
                                        .iter()
                                        .map(|k| format!("`{k}`"))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            ));
                        }
                    }
                    Err(e) if e.code == ErrorCode::WorkflowNotFound => errors.push(located(
                        workflow,
                        id,
                        "workflow",
                        format!("no workflow `{}` exists in this workspace", w.workflow),
                    )),
                    Err(e) => return Err(e),
                }
            }
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(invalid(DefinitionErrors(errors)))
    }
}

/// Validates and saves a definition: a new workflow (`must_be_new`) or a new version of an
/// existing one.
pub async fn save(
    platform: &Platform,
    scope: WorkspaceScope,
    source: Source,
    must_be_new: bool,
) -> ServiceResult<(WorkflowRow, bool)> {
    let validated = parse(&source)?;
    if !must_be_new {
        // A new version of an existing workflow: PUT never creates (POST does), so a slug of
        // another tenant or a typo answers 404 instead of silently creating a workflow.
        get(platform, scope, &validated.workflow().metadata.name).await?;
    }
    check_references(platform, scope, &validated).await?;
    let workflow = validated.workflow();
    let definition = serde_json::to_value(workflow)
        .map_err(|e| ServiceError::internal("serializing a workflow", e))?;
    let text = match &source {
        Source::Yaml(t) => Some(t.as_str()),
        Source::Json(_) => None,
    };
    match workflows::save(
        &platform.db,
        scope,
        &workflow.metadata.name,
        &definition,
        text,
        must_be_new,
    )
    .await
    {
        Ok(saved) => Ok(saved),
        Err(StoreError::Conflict) => Err(ServiceError::new(
            ErrorCode::WorkflowExists,
            format!(
                "a workflow named `{}` already exists; PUT /api/v1/workflows/{} saves a new version",
                workflow.metadata.name, workflow.metadata.name
            ),
        )),
        Err(e) => Err(e.into()),
    }
}

pub async fn list(platform: &Platform, scope: WorkspaceScope) -> ServiceResult<Vec<WorkflowRow>> {
    Ok(workflows::list(&platform.db, scope).await?)
}

pub async fn get(
    platform: &Platform,
    scope: WorkspaceScope,
    slug: &str,
) -> ServiceResult<WorkflowRow> {
    workflows::get(&platform.db, scope, slug)
        .await?
        .ok_or_else(|| not_found(slug))
}

/// A version (the latest when `version` is `None`) with its row.
pub async fn version(
    platform: &Platform,
    scope: WorkspaceScope,
    slug: &str,
    version: Option<i64>,
) -> ServiceResult<(WorkflowRow, VersionRow)> {
    let row = get(platform, scope, slug).await?;
    let v = version.unwrap_or(row.latest_version);
    let found = workflows::version(&platform.db, scope, row.id, v)
        .await?
        .ok_or_else(|| {
            ServiceError::new(
                ErrorCode::WorkflowNotFound,
                format!("workflow `{slug}` has no version {v}"),
            )
        })?;
    Ok((row, found))
}

/// The latest version, parsed and validated.
pub async fn latest(
    platform: &Platform,
    scope: WorkspaceScope,
    slug: &str,
) -> ServiceResult<(WorkflowRow, std::sync::Arc<ValidatedWorkflow>)> {
    let row = get(platform, scope, slug).await?;
    let validated = platform
        .workflow_definition(row.id, row.latest_version)
        .await?;
    Ok((row, validated))
}

/// A stored definition back into a validated workflow.
pub fn load_definition(definition: &Value) -> ServiceResult<ValidatedWorkflow> {
    let parsed = Workflow::from_json_value(definition)
        .map_err(|e| ServiceError::internal("a stored workflow no longer parses", e))?;
    validate(&parsed)
        .map_err(|e| ServiceError::internal("a stored workflow no longer validates", e))
}

pub async fn versions(
    platform: &Platform,
    scope: WorkspaceScope,
    slug: &str,
) -> ServiceResult<Vec<VersionRow>> {
    let row = get(platform, scope, slug).await?;
    Ok(workflows::versions(&platform.db, scope, row.id).await?)
}

pub async fn delete(platform: &Platform, scope: WorkspaceScope, slug: &str) -> ServiceResult<()> {
    if workflows::delete(&platform.db, scope, slug).await? {
        Ok(())
    } else {
        Err(not_found(slug))
    }
}

pub fn not_found(slug: &str) -> ServiceError {
    ServiceError::new(
        ErrorCode::WorkflowNotFound,
        format!("no workflow `{slug}` exists in this workspace"),
    )
}
