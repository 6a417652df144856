//! Who is signed in: the API key kept in the `agentry_session` cookie.
//!
//! The cookie is `HttpOnly` (scripts cannot read the key) and `SameSite=Strict`: browsers do not
//! send it with requests started by another site, so a cross-site form post arrives without
//! credentials and is redirected to the login page. That is the dashboard's CSRF defence for
//! now; it relies on every state-changing route being a POST and on browsers honouring SameSite.
//! `Secure` is left off because the dashboard is commonly reached over plain http on localhost.

use super::page;
use crate::AppState;
use agentry_engine::ServiceResult;
use agentry_engine::service::api_keys::{self, Principal};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};

pub const COOKIE: &str = "agentry_session";
pub const LOGIN: &str = "/ui/login";
pub const START: &str = "/ui/agents";

/// The signed-in caller of a dashboard route; without a valid cookie the request is redirected
/// to the login page.
pub struct Session(pub Principal);

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match current(&parts.headers, state).await {
            Ok(Some(principal)) => Ok(Session(principal)),
            Ok(None) => Err(Redirect::to(LOGIN).into_response()),
            Err(e) => Err(page::service_error(e)),
        }
    }
}

/// The principal of the session cookie, if there is one and its key is still valid.
pub async fn current(headers: &HeaderMap, state: &AppState) -> ServiceResult<Option<Principal>> {
    match token(headers) {
        Some(token) => api_keys::authenticate(&state.platform, token).await,
        None => Ok(None),
    }
}

fn token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE && !value.is_empty()).then_some(value)
        })
}

/// `GET /`: the start page when signed in, else the login page.
pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match current(&headers, &state).await {
        Ok(Some(_)) => Redirect::to(START).into_response(),
        Ok(None) => Redirect::to(LOGIN).into_response(),
        Err(e) => page::service_error(e),
    }
}

/// The `Set-Cookie` value that signs in with `token`, or `None` when the token holds characters
/// a cookie cannot carry (an odd `AGENTRY_ADMIN_TOKEN`; generated keys are hex).
pub fn sign_in_cookie(token: &str) -> Option<HeaderValue> {
    let cookie_safe = token
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'\\'));
    if !cookie_safe {
        return None;
    }
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
    ))
    .ok()
}

pub fn sign_out_cookie() -> HeaderValue {
    HeaderValue::from_static("agentry_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}
