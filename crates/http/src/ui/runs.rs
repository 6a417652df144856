//! The runs list, the run page, its live event stream and cancelling.

use super::page::{self, Nav};
use super::session::Session;
use super::views::{RunDetail, RunSummary};
use crate::AppState;
use crate::extract::parse_run_id;
use crate::routes::events::{RunKind, last_event_id, run_event_stream};
use agentry_core::agent::is_valid_slug;
use agentry_core::ids::RunId;
use agentry_core::run::RunStatus;
use agentry_engine::service::{agents, runs};
use agentry_store::runs::RunFilter;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use minijinja::value::Serde;
use serde::Deserialize;

const PAGE_SIZE: u64 = 50;

/// Filters of the runs list. Empty values (what a form sends for "any") mean no filter.
#[derive(Debug, Default, Deserialize)]
pub struct RunsQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    agent: String,
    #[serde(default)]
    cursor: String,
}

pub async fn list(
    State(state): State<AppState>,
    who: Session,
    query: Result<Query<RunsQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return page::error(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "The filters are malformed.",
        );
    };
    let status = match q.status.as_str() {
        "" => None,
        s => match RunStatus::parse(s) {
            Some(st) => Some(st),
            None => {
                return page::error(
                    StatusCode::BAD_REQUEST,
                    "Bad request",
                    "Unknown status: use queued, running, completed, failed or cancelled.",
                );
            }
        },
    };
    let before = match q.cursor.as_str() {
        "" => None,
        c => match c.parse::<RunId>() {
            Ok(id) => Some(id),
            Err(_) => {
                return page::error(
                    StatusCode::BAD_REQUEST,
                    "Bad request",
                    "The 'older' link is not one this page produced.",
                );
            }
        },
    };
    let agent = (!q.agent.is_empty()).then(|| q.agent.clone());
    let filter = RunFilter {
        agent_slug: agent,
        status,
        thread_id: None,
        before,
        limit: PAGE_SIZE,
    };
    let rows = match runs::list(&state.platform, who.scope, filter).await {
        Ok(rows) => rows,
        Err(e) => return page::service_error(e),
    };
    // The agent filter offers every agent; a failure here only loses the choices.
    let agent_slugs: Vec<String> = match agents::list(&state.platform, who.scope).await {
        Ok(list) => list.into_iter().map(|a| a.spec.slug).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "listing agents for the runs filter failed");
            Vec::new()
        }
    };
    let older = (rows.len() as u64 == PAGE_SIZE)
        .then(|| rows.last().map(|r| older_query(&q, &r.id.to_string())))
        .flatten();
    let runs: Vec<RunSummary> = rows.into_iter().map(RunSummary::from_row).collect();
    who.render(
        StatusCode::OK,
        "runs.html",
        Nav::Runs,
        context! {
            runs => Serde(runs),
            statuses => RunStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            agents => agent_slugs,
            status => q.status,
            agent => q.agent,
            older => older,
        },
    )
}

/// The query of the next page, which keeps the filters. Status is one of the known words and the cursor a run id;
/// an agent filter that is not a valid slug matches nothing and so never gets here with rows.
fn older_query(q: &RunsQuery, cursor: &str) -> String {
    let mut href = format!("cursor={cursor}");
    if !q.status.is_empty() {
        href.push_str(&format!("&status={}", q.status));
    }
    if is_valid_slug(&q.agent) {
        href.push_str(&format!("&agent={}", q.agent));
    }
    href
}

pub async fn show(State(state): State<AppState>, who: Session, Path(id): Path<String>) -> Response {
    let id = match parse_run_id(&id) {
        Ok(id) => id,
        Err(e) => return page::api_error(e),
    };
    match runs::get_with_steps(&state.platform, who.scope, id).await {
        Ok((row, steps)) => {
            let run = RunDetail::from_rows(row, steps);
            who.render(
                StatusCode::OK,
                "run.html",
                Nav::Runs,
                context! { run => Serde(run) },
            )
        }
        Err(e) => page::service_error(e),
    }
}

/// The run's events for the live view: the API's stream, authenticated by the cookie.
/// `EventSource` reconnects with `Last-Event-ID`, which resumes where it stopped.
pub async fn events(
    State(state): State<AppState>,
    who: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let stream = async {
        let id = parse_run_id(&id)?;
        let after = last_event_id(&headers)?;
        run_event_stream(state.platform.clone(), who.scope, RunKind::Agent, id, after).await
    };
    match stream.await {
        Ok(sse) => sse.into_response(),
        Err(e) => page::api_error(e),
    }
}

pub async fn cancel(
    State(state): State<AppState>,
    who: Session,
    Path(id): Path<String>,
) -> Response {
    let id = match parse_run_id(&id) {
        Ok(id) => id,
        Err(e) => return page::api_error(e),
    };
    let scope = match who.ws(agentry_core::authz::Action::RunsExecute) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match runs::cancel(&state.platform, scope, id).await {
        Ok(row) => page::redirect(&format!("/ui/runs/{}", row.id)),
        Err(e) => page::service_error(e),
    }
}
