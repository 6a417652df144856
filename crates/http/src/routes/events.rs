//! A run's events as Server-Sent Events. Every event is read from the store, so a client that
//! reconnects with `Last-Event-ID` gets exactly what it missed; a client that connects after the
//! run ended gets the whole history and the stream closes.

use crate::AppState;
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::parse_run_id;
use crate::guard::{WsGuard, perm};
use agentry_core::ErrorCode;
use agentry_core::ids::RunId;
use agentry_core::run::event::is_terminal;
use agentry_core::scope::WorkspaceScope;
use agentry_engine::Platform;
use agentry_engine::service::runs;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// How often a reader re-checks the store when no wake-up arrives (another replica may be
/// executing the run).
const POLL: Duration = Duration::from_millis(1000);

/// Stream a run's events (SSE). Resume with the `Last-Event-ID` header.
#[utoipa::path(get, path = "/runs/{id}/events", tag = "runs",
    params(("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event id")),
    responses((status = 200, content_type = "text/event-stream", description = "run.queued, run.started, message.delta, llm.completed, tool.started, tool.completed, run.completed, run.failed, run.cancelled"),
        (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["runs:read"])))]
pub async fn stream(
    State(state): State<AppState>,
    g: WsGuard<perm::RunsRead>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = parse_run_id(&id)?;
    let after = last_event_id(&headers)?;
    run_event_stream(state.platform.clone(), g.scope, RunKind::Agent, id, after).await
}

pub fn last_event_id(headers: &HeaderMap) -> Result<i64, ApiError> {
    match headers.get("last-event-id") {
        None => Ok(0),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    "Last-Event-ID must be the id of an event of this stream",
                )
            }),
    }
}

/// Which kind of run a stream follows (both store their events the same way).
#[derive(Clone, Copy)]
pub enum RunKind {
    Agent,
    Workflow,
}

impl RunKind {
    /// Whether the run has ended (404 when it does not exist in the workspace).
    async fn ended(
        self,
        platform: &Platform,
        scope: WorkspaceScope,
        run: RunId,
    ) -> Result<bool, ApiError> {
        Ok(match self {
            RunKind::Agent => runs::get(platform, scope, run)
                .await?
                .status()
                .is_terminal(),
            RunKind::Workflow => agentry_store::workflow_runs::is_terminal(
                &agentry_engine::service::workflow_runs::get(platform, scope, run.0)
                    .await?
                    .status,
            ),
        })
    }
}

struct Cursor {
    platform: Arc<Platform>,
    scope: WorkspaceScope,
    kind: RunKind,
    run: RunId,
    after: i64,
    wakeups: broadcast::Receiver<agentry_engine::notifier::RunNotice>,
    finished: bool,
    /// Set once the run was seen ended; one more read of the store, then the stream closes.
    drained_after_end: bool,
}

/// The stream behind both the API and the dashboard's live view.
pub async fn run_event_stream(
    platform: Arc<Platform>,
    scope: WorkspaceScope,
    kind: RunKind,
    run: RunId,
    after: i64,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // 404 before the stream starts, like every other route.
    kind.ended(&platform, scope, run).await?;
    let cursor = Cursor {
        wakeups: platform.notifier.subscribe_events(),
        platform,
        scope,
        kind,
        run,
        after,
        finished: false,
        drained_after_end: false,
    };
    let stream = futures_util::stream::unfold(cursor, |mut c| async move {
        if c.finished {
            return None;
        }
        loop {
            match runs::events_after(&c.platform, c.scope, c.run, c.after).await {
                Ok(rows) if !rows.is_empty() => {
                    let mut batch = Vec::with_capacity(rows.len());
                    for row in rows {
                        c.after = row.seq;
                        if is_terminal(&row.name) {
                            c.finished = true;
                        }
                        batch.push(Ok(Event::default()
                            .id(row.seq.to_string())
                            .event(row.name)
                            .data(row.data.0.to_string())));
                    }
                    return Some((futures_util::stream::iter(batch), c));
                }
                Ok(_) => {
                    // Nothing new. A run that has ended stored its last event together with
                    // its final status, so there is nothing left to wait for.
                    match c.kind.ended(&c.platform, c.scope, c.run).await {
                        Ok(true) => {
                            if c.drained_after_end {
                                return None;
                            }
                            c.drained_after_end = true;
                            continue;
                        }
                        Ok(_) => {}
                        Err(_) => return None,
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading run events failed");
                    return None;
                }
            }
            wait_for_wakeup(&mut c).await;
        }
    });
    Ok(Sse::new(futures_util::StreamExt::flatten(stream)).keep_alive(KeepAlive::default()))
}

async fn wait_for_wakeup(c: &mut Cursor) {
    let run = c.run.0;
    if c.platform.is_shutting_down() {
        // The server is stopping: end the stream; the client resumes elsewhere with Last-Event-ID.
        c.finished = true;
        return;
    }
    let shutdown = c.platform.shutdown_signal();
    let _ = tokio::time::timeout(POLL, async {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                received = c.wakeups.recv() => match received {
                    Ok(notice) if notice.run_id == run => return,
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                },
            }
        }
    })
    .await;
}
