//! Managing agents: the list, the create and edit forms, delete.

use super::agent_form::{AgentFormInput, FormErrors, is_form_error, tool_choices};
use super::form::FormPairs;
use super::page::{self, Nav};
use super::session::Session;
use super::session::Session as Principal;
use super::views::time;
use crate::AppState;
use agentry_core::agent::{Agent, AgentSpec};
use agentry_engine::ServiceError;
use agentry_engine::service::{agents, providers};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use minijinja::value::Serde;
use serde::Serialize;

#[derive(Debug, Serialize)]
struct AgentRow {
    slug: String,
    name: String,
    model: String,
    tools: Vec<String>,
    version: i64,
    updated_at: String,
}

pub async fn list(State(state): State<AppState>, who: Session) -> Response {
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
    who.render(
        StatusCode::OK,
        "agents.html",
        Nav::Agents,
        context! { agents => Serde(rows) },
    )
}

pub async fn new_form(State(state): State<AppState>, who: Session) -> Response {
    form_page(
        &state,
        &who,
        StatusCode::OK,
        &AgentFormInput::blank(),
        None,
        None,
    )
    .await
}

pub async fn create(State(state): State<AppState>, who: Session, form: FormPairs) -> Response {
    let input = AgentFormInput::from_form(&form, form.get("slug").trim().to_string());
    let spec = match checked_spec(&input) {
        Ok(spec) => spec,
        Err(errors) => {
            return form_page(
                &state,
                &who,
                StatusCode::UNPROCESSABLE_ENTITY,
                &input,
                Some(errors),
                None,
            )
            .await;
        }
    };
    let scope = match who.ws(agentry_core::authz::Action::AgentsWrite) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match agents::create(&state.platform, scope, spec).await {
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
    who: Session,
    Path(slug): Path<String>,
) -> Response {
    match agents::get(&state.platform, who.scope, &slug).await {
        Ok(agent) => {
            let input = AgentFormInput::from_agent(&agent);
            form_page(
                &state,
                &who,
                StatusCode::OK,
                &input,
                None,
                Some(agent.version),
            )
            .await
        }
        Err(e) => page::service_error(e),
    }
}

/// Saves the form as the agent's next version.
pub async fn update(
    State(state): State<AppState>,
    who: Session,
    Path(slug): Path<String>,
    form: FormPairs,
) -> Response {
    let current = match agents::get(&state.platform, who.scope, &slug).await {
        Ok(agent) => agent,
        Err(e) => return page::service_error(e),
    };
    let input = AgentFormInput::from_form(&form, current.spec.slug.clone());
    let editing = Some(current.version);
    let spec = match checked_spec(&input) {
        Ok(spec) => spec,
        Err(errors) => {
            return form_page(
                &state,
                &who,
                StatusCode::UNPROCESSABLE_ENTITY,
                &input,
                Some(errors),
                editing,
            )
            .await;
        }
    };
    let scope = match who.ws(agentry_core::authz::Action::AgentsWrite) {
        Ok(s) => s,
        Err(r) => return r,
    };
    // The form edits the basic fields; what only the API and YAML set (fallbacks, cache, …)
    // is kept as it was.
    let spec = AgentSpec {
        max_tokens: current.spec.max_tokens,
        fallbacks: current.spec.fallbacks.clone(),
        context_fallback: current.spec.context_fallback.clone(),
        cache: current.spec.cache,
        guardrails: current.spec.guardrails.clone(),
        output_schema: current.spec.output_schema.clone(),
        max_repair_turns: current.spec.max_repair_turns,
        prompt_cache: current.spec.prompt_cache,
        crew: current.spec.crew.clone(),
        network: current.spec.network.clone(),
        ..spec
    };
    match agents::update(&state.platform, scope, &current.spec.slug, spec).await {
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
    who: Session,
    Path(slug): Path<String>,
) -> Response {
    let scope = match who.ws(agentry_core::authz::Action::AgentsWrite) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match agents::delete(&state.platform, scope, &slug).await {
        Ok(()) => page::redirect("/ui/agents"),
        Err(e) => page::service_error(e),
    }
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
    let providers: Vec<String> = match providers::list(&state.platform, who.principal.org()).await {
        Ok(list) => list.into_iter().map(|p| p.name).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "listing providers for the agent form failed");
            Vec::new()
        }
    };
    let tools = tool_choices(&state.platform.tools.names(), &input.tools);
    who.render(
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
        },
    )
}

/// The form's spec, or, when a number field does not parse, every error the form has that can be
/// found without the database (the service cannot be asked: it would see a substituted value).
fn checked_spec(input: &AgentFormInput) -> Result<AgentSpec, FormErrors> {
    let (spec, mut errors) = input.to_spec();
    if errors.is_empty() {
        return Ok(spec);
    }
    errors.extend(spec.validate_shape());
    Err(FormErrors::from_fields(&errors))
}

/// Slugs are validated by the service (a-z, 0-9, '-', '_'), so they are safe in a URL path.
pub fn agent_href(agent: &Agent) -> String {
    format!("/ui/agents/{}", agent.spec.slug)
}

pub fn status_of(e: &ServiceError) -> StatusCode {
    StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY)
}
