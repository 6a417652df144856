//! What a page says once after a form was sent: a notice ("Role changed.") and, right after
//! something secret was created, that secret (a new API key, an invitation or reset link).
//!
//! Forms answer with `303 See Other`, so the message has to survive one redirect. It travels in a
//! short-lived cookie, sealed (AES-GCM, the instance's data key) and bound to the signed-in
//! session and the page it is for: another session, another page or an edited cookie opens
//! nothing. The page that shows it clears the cookie in the same response, so a reload or the
//! back button never shows the secret again, and nothing is kept on the server (any replica can
//! show it).

use super::session::Session;
use crate::AppState;
use agentry_engine::vault::{Binding, INSTANCE};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A flash outlives its redirect by this much at most.
const MAX_AGE_SECS: u64 = 120;

/// Shown once at the top of a page.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Flash {
    pub notice: Option<String>,
    pub secret: Option<OneTime>,
}

/// A secret shown exactly once, with what it is and what to do with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OneTime {
    pub label: String,
    pub value: String,
    pub hint: String,
}

impl Flash {
    pub fn notice(text: impl Into<String>) -> Self {
        Self {
            notice: Some(text.into()),
            secret: None,
        }
    }

    pub fn secret(label: impl Into<String>, value: String, hint: impl Into<String>) -> Self {
        Self {
            notice: None,
            secret: Some(OneTime {
                label: label.into(),
                value,
                hint: hint.into(),
            }),
        }
    }
}

fn cookie_name(state: &AppState) -> &'static str {
    if state.platform.config.identity.secure_cookies() {
        "__Host-agentry_flash"
    } else {
        "agentry_flash"
    }
}

fn cookie(state: &AppState, value: &str, max_age: u64) -> Option<HeaderValue> {
    let secure = if state.platform.config.identity.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}",
        cookie_name(state)
    ))
    .ok()
}

fn binding<'a>(who: &Session, page: &'a str) -> Binding<'a> {
    Binding {
        purpose: "dashboard_flash",
        row: who
            .principal
            .session_id
            .map(|s| s.0)
            .unwrap_or_else(Uuid::nil),
        context: page,
    }
}

/// `303 See Other` to `page` (a path without query), which shows `flash` once. When the flash
/// cannot be sealed it is handed back, so the caller can show it in this response instead of
/// losing a secret.
pub async fn redirect(
    state: &AppState,
    who: &Session,
    page: &str,
    flash: Flash,
) -> Result<Response, Flash> {
    let Ok(json) = serde_json::to_string(&flash) else {
        return Err(flash);
    };
    let sealed = match state
        .platform
        .vault
        .seal(INSTANCE, &binding(who, page), &json)
        .await
    {
        Ok(sealed) => sealed,
        Err(error) => {
            tracing::error!(%error, "sealing a dashboard message failed");
            return Err(flash);
        }
    };
    let (Some(set), Ok(location)) = (
        cookie(state, &sealed, MAX_AGE_SECS),
        HeaderValue::from_str(page),
    ) else {
        return Err(flash);
    };
    Ok((
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location), (header::SET_COOKIE, set)],
    )
        .into_response())
}

/// [`redirect`] for a flash without a secret: if it cannot be sealed, the redirect goes without it.
pub async fn redirect_notice(state: &AppState, who: &Session, page: &str, text: &str) -> Response {
    match redirect(state, who, page, Flash::notice(text)).await {
        Ok(response) => response,
        Err(_) => super::page::redirect(page),
    }
}

/// The flash waiting for `page`, if any. `clear` says whether a flash cookie was sent (the
/// response must then clear it with [`clear`], whether or not it opened).
pub struct Taken {
    pub flash: Option<Flash>,
    pub clear: bool,
}

pub async fn take(state: &AppState, who: &Session, headers: &HeaderMap, page: &str) -> Taken {
    let Some(sealed) = crate::guard::session_token(headers, cookie_name(state)) else {
        return Taken {
            flash: None,
            clear: false,
        };
    };
    let flash = state
        .platform
        .vault
        .open(INSTANCE, &binding(who, page), sealed)
        .await
        .ok()
        .and_then(|json| serde_json::from_str(&json).ok());
    Taken { flash, clear: true }
}

/// Adds the header that deletes the flash cookie when one was read.
pub fn clear(state: &AppState, taken: &Taken, mut response: Response) -> Response {
    if taken.clear
        && let Some(value) = cookie(state, "", 0)
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}
