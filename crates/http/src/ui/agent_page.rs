//! The agent page: its definition, its recent runs and the playground that starts a run.

use super::agent_form::FormErrors;
use super::agents::status_of;
use super::form::FormPairs;
use super::page::{self, Nav};
use super::session::Session;
use super::session::Session as Principal;
use super::views::{RunSummary, time};
use crate::AppState;
use agentry_core::ErrorCode;
use agentry_core::run::RunInput;
use agentry_engine::service::{agents, runs};
use agentry_store::runs::RunFilter;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use minijinja::value::Serde;
use serde::Serialize;

/// How many of an agent's latest runs its page lists.
const RECENT_RUNS: u64 = 10;

const RESUBMITTED: &str = "This form was already used to start a run with other text; submit it again to start a new run.";

pub async fn show(
    State(state): State<AppState>,
    who: Session,
    Path(slug): Path<String>,
) -> Response {
    agent_page(
        &state,
        &who,
        &slug,
        StatusCode::OK,
        &Playground::default(),
        None,
    )
    .await
}

/// The playground: starts a run with the typed text and opens its page.
pub async fn start_run(
    State(state): State<AppState>,
    who: Session,
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
        started_by: who.principal.actor.clone(),
        end_user: None,
    };
    let scope = match who.ws(agentry_core::authz::Action::RunsExecute) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match runs::start(&state.platform, scope, request).await {
        Ok((run, _)) => page::redirect(&format!("/ui/runs/{}", run.id)),
        Err(e)
            if matches!(
                e.code,
                ErrorCode::ValidationFailed | ErrorCode::IdempotencyKeyReused
            ) =>
        {
            let mut errors = FormErrors::from_service(&e);
            if e.code == ErrorCode::IdempotencyKeyReused {
                // The page was restored from history after a run was started from it.
                errors.message = RESUBMITTED.to_string();
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
    who.render(
        status,
        "agent.html",
        Nav::Agents,
        context! {
            agent => Serde(&agent.spec),
            version => agent.version,
            updated_at => time(agent.updated_at),
            runs => Serde(recent),
            playground => Serde(playground),
            errors => Serde(errors),
            // A fresh key per rendered form: a double click or a resubmitted form starts one run.
            idempotency_key => uuid::Uuid::now_v7().to_string(),
        },
    )
}
