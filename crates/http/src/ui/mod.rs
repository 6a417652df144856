//! The dashboard: server-rendered HTML pages under `/ui`, served by the same binary as the API.
//!
//! Signing in creates a server-side session kept in an HttpOnly cookie ([`session`]); every page
//! then calls the same engine service functions as the REST handlers, with the same permission
//! checks. Pages work without JavaScript; the one
//! script (`/ui/static/app.js`) only adds the live view of a running run and confirmations.

mod agent_form;
mod agent_page;
mod agents;
mod assets;
mod form;
mod headers;
mod login;
mod page;
mod runs;
pub(crate) mod session;
#[cfg(test)]
mod tests;
mod views;

use crate::AppState;
use axum::Router;
use axum::routing::{any, get, post};

/// Every dashboard route. Merged into the application router by [`crate::router`].
pub fn router() -> Router<AppState> {
    let routes = Router::new()
        .route("/", get(session::home))
        .route("/ui", get(session::home))
        .route("/ui/login", get(login::form).post(login::submit))
        .route(
            "/ui/login/mfa",
            get(login::mfa_form).post(login::mfa_submit),
        )
        .route("/ui/logout", post(login::logout))
        .route("/ui/static/app.css", get(assets::css))
        .route("/ui/static/app.js", get(assets::js))
        .route("/ui/agents", get(agents::list).post(agents::create))
        .route("/ui/agents/new", get(agents::new_form))
        .route(
            "/ui/agents/{slug}",
            get(agent_page::show).post(agents::update),
        )
        .route("/ui/agents/{slug}/edit", get(agents::edit_form))
        .route("/ui/agents/{slug}/delete", post(agents::delete))
        .route("/ui/agents/{slug}/runs", post(agent_page::start_run))
        .route("/ui/runs", get(runs::list))
        .route("/ui/runs/{id}", get(runs::show))
        .route("/ui/runs/{id}/events", get(runs::events))
        .route("/ui/runs/{id}/cancel", post(runs::cancel))
        // An HTML 404 for the rest of /ui; paths outside /ui keep the application's behaviour.
        .route("/ui/{*rest}", any(page::not_found));
    headers::apply(routes)
}
