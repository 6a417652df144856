//! The dashboard: server-rendered HTML pages under `/ui`, served by the same binary as the API.
//!
//! Signing in creates a server-side session kept in an HttpOnly cookie ([`session`]); every page
//! then calls the same engine service functions as the REST handlers, with the same permission
//! checks, and every change they make is written to the audit log under the API's action names.
//! Pages work without JavaScript (forms post, then redirect); the one script
//! (`/ui/static/app.js`) only adds the live view of a running run and confirmations. Secrets
//! created on a page (API keys, invitation and reset links) are shown once, through [`flash`].

mod account;
mod agent_form;
mod agent_page;
mod agents;
mod api_keys;
mod assets;
mod audit_log;
mod costs;
mod flash;
mod form;
mod headers;
mod links;
mod login;
mod members;
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
        .route("/ui/members", get(members::page))
        .route("/ui/members/invite", post(members::invite))
        .route(
            "/ui/members/invitations/{id}/revoke",
            post(members::revoke_invitation),
        )
        .route("/ui/members/{id}/role", post(members::set_role))
        .route("/ui/members/{id}/remove", post(members::remove))
        .route("/ui/members/{id}/disable", post(members::disable))
        .route("/ui/members/{id}/enable", post(members::enable))
        .route("/ui/members/{id}/sign-out", post(members::sign_out))
        .route("/ui/members/{id}/reset-link", post(members::reset_link))
        .route(
            "/ui/invite",
            get(links::invite_form).post(links::invite_submit),
        )
        .route(
            "/ui/reset",
            get(links::reset_form).post(links::reset_submit),
        )
        .route("/ui/api-keys", get(api_keys::list).post(api_keys::create))
        .route(
            "/ui/api-keys/{id}/revoke",
            get(api_keys::confirm_revoke).post(api_keys::revoke),
        )
        .route("/ui/costs", get(costs::page))
        .route("/ui/audit", get(audit_log::list))
        .route("/ui/audit/export.csv", get(audit_log::export_csv))
        .route("/ui/audit/export.json", get(audit_log::export_json))
        .route("/ui/account", get(account::page))
        .route("/ui/account/password", post(account::change_password))
        .route(
            "/ui/account/totp",
            get(account::totp_form).post(account::totp_enable),
        )
        .route("/ui/account/totp/disable", post(account::totp_disable))
        .route(
            "/ui/account/sessions/{id}/revoke",
            post(account::revoke_session),
        )
        .route(
            "/ui/account/sign-out-everywhere",
            post(account::sign_out_everywhere),
        )
        // An HTML 404 for the rest of /ui; paths outside /ui keep the application's behaviour.
        .route("/ui/{*rest}", any(page::not_found));
    headers::apply(routes)
}
