//! Signing in with an API key and signing out.

use super::form::FormPairs;
use super::page::{self, Nav};
use super::session::{self, LOGIN, START};
use crate::AppState;
use agentry_engine::service::api_keys;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;

pub async fn form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session::current(&headers, &state).await {
        Ok(Some(_)) => Redirect::to(START).into_response(),
        _ => login_page(StatusCode::OK, None),
    }
}

pub async fn submit(State(state): State<AppState>, form: FormPairs) -> Response {
    let token = form.get("token").trim();
    if token.is_empty() {
        return login_page(StatusCode::UNAUTHORIZED, Some("Enter an API token."));
    }
    match api_keys::authenticate(&state.platform, token).await {
        Ok(Some(_)) => match session::sign_in_cookie(token) {
            Some(cookie) => (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, START)],
                [(header::SET_COOKIE, cookie)],
            )
                .into_response(),
            None => login_page(
                StatusCode::UNAUTHORIZED,
                Some(
                    "This token contains characters a browser cookie cannot hold; create another API key to use the dashboard.",
                ),
            ),
        },
        Ok(None) => login_page(
            StatusCode::UNAUTHORIZED,
            Some("That token is not a valid API key (unknown or revoked)."),
        ),
        Err(e) => page::service_error(e),
    }
}

pub async fn logout() -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, LOGIN)],
        [(header::SET_COOKIE, session::sign_out_cookie())],
    )
        .into_response()
}

/// The form never echoes the token back: it is a secret, and a wrong one is retyped anyway.
fn login_page(status: StatusCode, error: Option<&str>) -> Response {
    page::render(status, "login.html", Nav::None, context! { error => error })
}
