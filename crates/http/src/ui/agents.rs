//! Agent pages: the list, the create and edit forms, the agent page with its playground, delete.

use super::agent_form::{AgentFormInput, FormErrors, is_form_error, tool_choices};
use super::form::FormPairs;
use super::page::{self, Nav};
use super::session::Session;
use super::views::{RunSummary, time};
use crate::AppState;
use agentry_core::ErrorCode;
use agentry_core::agent::Agent;
use agentry_core::run::RunInput;
use agentry_engine::ServiceError;
use agentry_engine::service::api_keys::Principal;
use agentry_engine::service::{agents, providers, runs};
use agentry_store::runs::RunFilter;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use minijinja::value::Serde;
use serde::Serialize;

/// How many of an agent's latest runs its page lists.
const RECENT_RUNS: u64 = 10;

#[derive(Debug, Serialize)]
struct AgentRow {
    slug: String,
    name: String,
    model: String,
    tools: Vec<String>,
    version: i64,
    updated_at: String,
}

pub async fn list(State(state): State<AppState>, Session(who): Session) -> Response {
    let agents = match agents::list(&state.platform, who.scope).await {
        Ok(list) => list,
        Err(e) => return page::service_error(e),
    };
    let rows: Vec<AgentRow> = agents
        .into_iter()
        .map(|a| AgentRow {
            updated_at: time(a.updated_at),
            version: a.version,
            slug: a.spec.slug,
            name: a.spec.name,
            model: a.spec.model,
            tools: a.spec.tools,
        })
        .collect();
    page::render(
        StatusCode::OK,
        "agents.html",
        Nav::Agents,
        context! { agents => Serde(rows) },
    )
}

pub async fn new_form(State(state): State<AppState>, Session(who): Session) -> Response {
    form_page(&state, &who, StatusCode::OK, &AgentFormInput::blank(), None, None).await
}

pub async fn create(State(state): State<AppState>, Session(who): Session, form: FormPairs) -> Response {
    let input = AgentFormInput::from_form(&form, form.get("slug").trim().to_string());
    let spec = match input.to_spec() {
        Ok(spec) => spec,
        Err(errors) => {
            let errors = FormErrors::from_fields(&errors);
            return form_page(&state, &who, StatusCode::UNPROCESSABLE_ENTITY, &input, Some(errors), None).await;
        }
    };
    match agents::create(&state.platform, who.scope, spec).await {
        Ok(agent) => page::redirect(&agent_href(&agent)),
        Err(e) if is_form_error(e.code) => {
            let errors = FormErrors::from_service(&e);
            form_page(&state, &who, status_of(&e), &input, Some(errors), None).await
        }
        Err(e) => page::service_error(e),
    }
}

pub async fn edit_form(
    State(state): State<AppState>,
    Session(who): Session,
    Path(slug): Path<String>,
) -> Response {
    match agents::get(&state.platform, who.scope, &slug).await {
        Ok(agent) => {
            let input = AgentFormInput::from_agent(&agent);
            form_page(&state, &who, StatusCode::OK, &input, None, Some(agent.version)).await
        }
        Err(e) => page::service_error(e),
    }
}

/// Saves the form as the agent's next version.
pub async fn update(
    State(state): State<AppState>,
    Session(who): Session,
    Path(slug): Path<String>,
    form: FormPairs,
) -> Response {
    let current = match agents::get(&state.platform, who.scope, &slug).await {
        Ok(agent) => agent,
        Err(e) => return page::service_error(e),
    };
    let input = AgentFormInput::from_form(&form, current.spec.slug.clone());
    let editing = Some(current.version);
    let spec = match input.to_spec() {
        Ok(spec) => spec,
        Err(errors) => {
            let errors = FormErrors::from_fields(&errors);
            return form_page(&state, &who, StatusCode::UNPROCESSABLE_ENTITY, &input, Some(errors), editing).await;
        }
    };
    match agents::update(&state.platform, who.scope, &current.spec.slug, spec).await {
        Ok(agent) => page::redirect(&agent_href(&agent)),
        Err(e) if is_form_error(e.code) => {
            let errors = FormErrors::from_service(&e);
            form_page(&state, &who, status_of(&e), &input, Some(errors), editing).await
        }
        Err(e) => page::service_error(e),
    }
}

pub async fn delete(
    State(state): State<AppState>,
    Session(who): Session,
    Path(slug): Path<String>,
) -> Response {
    match agents::delete(&state.platform, who.scope, &slug).await {
        Ok(()) => page::redirect("/ui/agents"),
        Err(e) => page::service_error(e),
    }
}

pub async fn show(
    State(state): State<AppState>,
    Session(who): Session,
    Path(slug): Path<String>,
) -> Response {
    agent_page(&state, &who, &slug, StatusCode::OK, &Playground::default(), None).await
}

/// The playground: starts a run with the typed text and opens its page.
pub async fn start_run(
    State(state): State<AppState>,
    Session(who): Session,
    Path(slug): Path<String>,
    form: FormPairs,
) -> Response {
    let typed = Playground {
        input: form.get("input").to_string(),
        thread_id: form.get("thread_id").trim().to_string(),
    };
    let key = form.get("idempotency_key").trim();
    let request = runs::StartRun {
        agent_slug: slug.clone(),
        input: RunInput::Text(typed.input.clone()),
        thread_id: (!typed.thread_id.is_empty()).then(|| typed.thread_id.clone()),
        idempotency_key: (!key.is_empty()).then(|| key.to_string()),
    };
    match runs::start(&state.platform, who.scope, request).await {
        Ok((run, _)) => page::redirect(&format!("/ui/runs/{}", run.id)),
        Err(e) if matches!(e.code, ErrorCode::ValidationFailed | ErrorCode::IdempotencyKeyReused) => {
            let mut errors = FormErrors::from_service(&e);
            if e.code == ErrorCode::IdempotencyKeyReused {
                // The page was restored from history after a run was started from it.
                errors.message = "This form was already used to start a run with other text; submit it again to start a new run.".to_string();
            }
            agent_page(&state, &who, &slug, status_of(&e), &typed, Some(errors)).await
        }
        Err(e) => page::service_error(e),
    }
}

/// What the playground form holds.
#[derive(Debug, Default, Serialize)]
struct Playground {
    input: String,
    thread_id: String,
}

async fn agent_page(
    state: &AppState,
    who: &Principal,
    slug: &str,
    status: StatusCode,
    playground: &Playground,
    errors: Option<FormErrors>,
) -> Response {
    let agent = match agents::get(&state.platform, who.scope, slug).await {
        Ok(agent) => agent,
        Err(e) => return page::service_error(e),
    };
    let filter = RunFilter {
        agent_slug: Some(agent.spec.slug.clone()),
        status: None,
        thread_id: None,
        before: None,
        limit: RECENT_RUNS,
    };
    let recent: Vec<RunSummary> = match runs::list(&state.platform, who.scope, filter).await {
        Ok(rows) => rows.into_iter().map(RunSummary::from_row).collect(),
        Err(e) => return page::service_error(e),
    };
    page::render(
        status,
        "agent.html",
        Nav::Agents,
        context! {
            agent => Serde(&agent.spec),
            version => agent.version,
            updated_at => time(agent.updated_at),
            href => agent_href(&agent),
            runs => Serde(recent),
            playground => Serde(playground),
            errors => Serde(errors),
            // A fresh key per rendered form: a double click or a resubmitted form starts one run.
            idempotency_key => uuid::Uuid::now_v7().to_string(),
        },
    )
}

async fn form_page(
    state: &AppState,
    who: &Principal,
    status: StatusCode,
    input: &AgentFormInput,
    errors: Option<FormErrors>,
    editing: Option<i64>,
) -> Response {
    // The provider list is only a hint next to the model field; without it the form still works.
    let providers: Vec<String> = match providers::list(&state.platform, who.scope.org()).await {
        Ok(list) => list.into_iter().map(|p| p.name).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "listing providers for the agent form failed");
            Vec::new()
        }
    };
    let tools = tool_choices(&state.platform.tools.names(), &input.tools);
    let action = match editing {
        Some(_) => format!("/ui/agents/{}", input.slug),
        None => "/ui/agents".to_string(),
    };
    page::render(
        status,
        "agent_form.html",
        Nav::Agents,
        context! {
            form => Serde(input),
            errors => Serde(errors),
            tools => Serde(tools),
            providers => providers,
            editing => editing.is_some(),
            version => editing,
            action => action,
        },
    )
}

/// Slugs are validated by the service (a-z, 0-9, '-', '_'), so they are safe in a URL path.
fn agent_href(agent: &Agent) -> String {
    format!("/ui/agents/{}", agent.spec.slug)
}

fn status_of(e: &ServiceError) -> StatusCode {
    StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY)
}
