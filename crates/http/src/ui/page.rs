//! The templates and the one function that renders them, plus the error pages.

use crate::error::ApiError;
use agentry_core::ErrorCode;
use agentry_engine::ServiceError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::value::ValueKind;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value, context};
use std::sync::LazyLock;

/// Which top-nav entry a page belongs to.
#[derive(Clone, Copy)]
pub enum Nav {
    Agents,
    Runs,
    Members,
    ApiKeys,
    Costs,
    Audit,
    Account,
    None,
}

impl Nav {
    fn as_str(self) -> &'static str {
        match self {
            Nav::Agents => "agents",
            Nav::Runs => "runs",
            Nav::Members => "members",
            Nav::ApiKeys => "api_keys",
            Nav::Costs => "costs",
            Nav::Audit => "audit",
            Nav::Account => "account",
            Nav::None => "",
        }
    }
}

pub const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("login_mfa.html", include_str!("templates/login_mfa.html")),
    ("error.html", include_str!("templates/error.html")),
    ("agents.html", include_str!("templates/agents.html")),
    ("agent.html", include_str!("templates/agent.html")),
    ("agent_form.html", include_str!("templates/agent_form.html")),
    ("runs.html", include_str!("templates/runs.html")),
    ("run.html", include_str!("templates/run.html")),
    ("members.html", include_str!("templates/members.html")),
    ("api_keys.html", include_str!("templates/api_keys.html")),
    (
        "api_key_revoke.html",
        include_str!("templates/api_key_revoke.html"),
    ),
    ("audit.html", include_str!("templates/audit.html")),
    ("costs.html", include_str!("templates/costs.html")),
    ("account.html", include_str!("templates/account.html")),
    ("totp.html", include_str!("templates/totp.html")),
    ("invite.html", include_str!("templates/invite.html")),
    ("reset.html", include_str!("templates/reset.html")),
    ("flash.html", include_str!("templates/flash.html")),
];

static ENV: LazyLock<Environment<'static>> = LazyLock::new(environment);

pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // Every template is HTML, and agent names, model output and tool results are untrusted:
    // escape all output whatever a template is called, rather than relying on file extensions.
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    // A misspelt variable fails the render (and the tests) instead of printing nothing;
    // `{% if x %}` on an absent value stays allowed.
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    // minijinja's own `urlencode` is behind a cargo feature; this one does the same job.
    env.add_filter("urlencode", urlencode);
    for (name, source) in TEMPLATES {
        if let Err(error) = env.add_template(name, source) {
            // Covered by a test; should it happen anyway, that page answers 500, not the process.
            tracing::error!(%error, template = name, "dashboard template does not compile");
        }
    }
    env
}

/// Percent-encodes a value for a URL; a map becomes a query string (none values left out).
/// Only unreserved characters (and `*`, harmless in a query) stay as they are.
fn urlencode(value: &Value) -> Result<String, minijinja::Error> {
    fn encode(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for b in text.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'*' => {
                    out.push(char::from(b));
                }
                other => out.push_str(&format!("%{other:02X}")),
            }
        }
        out
    }
    if value.is_none() || value.is_undefined() {
        return Ok(String::new());
    }
    if value.kind() != ValueKind::Map {
        return Ok(encode(&value.to_string()));
    }
    let mut pairs = Vec::new();
    for key in value.try_iter()? {
        let item = value.get_item(&key)?;
        if item.is_none() || item.is_undefined() {
            continue;
        }
        pairs.push(format!(
            "{}={}",
            encode(&key.to_string()),
            encode(&item.to_string())
        ));
    }
    Ok(pairs.join("&"))
}

/// Renders `template` as a full page. Pages are per user and may show secrets' surroundings, so
/// they are never cached.
pub fn render(status: StatusCode, template: &str, nav: Nav, ctx: Value) -> Response {
    let ctx = context! { nav => nav.as_str(), ..ctx };
    match ENV.get_template(template).and_then(|t| t.render(ctx)) {
        Ok(html) => (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, template, "rendering a dashboard page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>Error</title><p>An internal error occurred.</p>"),
            )
                .into_response()
        }
    }
}

/// A page that only says what went wrong.
pub fn error(status: StatusCode, title: &str, message: &str) -> Response {
    render(
        status,
        "error.html",
        Nav::None,
        context! { title => title, message => message, status => status.as_u16() },
    )
}

/// A service error that is not about a form the user can fix (not found, internal, …).
pub fn service_error(e: ServiceError) -> Response {
    from_code(e.code, &e.message)
}

pub fn api_error(e: ApiError) -> Response {
    from_code(e.code, &e.message)
}

fn from_code(code: ErrorCode, message: &str) -> Response {
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let title = status.canonical_reason().unwrap_or("Error");
    error(status, title, message)
}

pub async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no dashboard page at this address.",
    )
}

/// `303 See Other` to `location` (after a POST, so reloading does not post again).
pub fn redirect(location: &str) -> Response {
    match HeaderValue::try_from(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error",
            "An internal error occurred.",
        ),
    }
}
