//! The OpenAPI 3.1 document, generated from the handlers' annotations. A snapshot test keeps
//! every change to the API visible in review.

use crate::AppState;
use crate::routes::{
    agents, api_keys, apply, approvals, audit_log, auth, budgets, costs, events, guardrails, me,
    members, org, providers, routing, runs, sso, triggers, workflow_runs, workflows,
};
use axum::Json;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "Agentry API", description = "Agents, runs, providers, members and the audit log of a self-hosted Agentry instance. Routes need `Authorization: Bearer <API key>` or the dashboard's session cookie (`__Host-agentry_session` over https); each route's security scope names the permission it needs (docs/permissions.md). Workspace-level routes act in the `X-Agentry-Workspace` workspace or the caller's default one. Errors are `{\"error\": {code, message, details?, request_id}}` with codes from docs/errors.md."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    servers((url = "/api/v1"))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(
                utoipa::openapi::security::ApiKeyValue::new("agentry_session"),
            )),
        );
    }
}

/// Every `/api/v1` route with its documentation. The route table of the API.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(providers::create, providers::list))
        .routes(routes!(providers::health))
        .routes(routes!(routing::get, routing::put))
        .routes(routes!(providers::get, providers::delete))
        .routes(routes!(agents::create, agents::list))
        .routes(routes!(agents::get, agents::update, agents::delete))
        .routes(routes!(runs::create))
        .routes(routes!(runs::list))
        .routes(routes!(runs::get))
        .routes(routes!(runs::children))
        .routes(routes!(runs::cancel))
        .routes(routes!(events::stream))
        .routes(routes!(api_keys::create, api_keys::list))
        .routes(routes!(api_keys::revoke))
        .routes(routes!(apply::apply))
        .routes(routes!(auth::sign_in))
        .routes(routes!(auth::mfa))
        .routes(routes!(auth::sign_out))
        .routes(routes!(auth::request_reset))
        .routes(routes!(auth::confirm_reset))
        .routes(routes!(auth::accept_invitation))
        .routes(routes!(auth::sso_list))
        .routes(routes!(auth::sso_start))
        .routes(routes!(auth::sso_callback))
        .routes(routes!(me::get, me::erase))
        .routes(routes!(me::export))
        .routes(routes!(me::change_password))
        .routes(routes!(me::totp_setup))
        .routes(routes!(me::totp_enable))
        .routes(routes!(me::totp_disable))
        .routes(routes!(me::sessions))
        .routes(routes!(me::revoke_session))
        .routes(routes!(me::sign_out_everywhere))
        .routes(routes!(me::switch_org))
        .routes(routes!(org::get, org::rename, org::delete))
        .routes(routes!(org::export))
        .routes(routes!(org::task))
        .routes(routes!(org::workspaces, org::create_workspace))
        .routes(routes!(org::delete_workspace))
        .routes(routes!(members::list))
        .routes(routes!(members::set_role))
        .routes(routes!(members::remove))
        .routes(routes!(members::disable))
        .routes(routes!(members::enable))
        .routes(routes!(members::sign_out))
        .routes(routes!(members::reset_link))
        .routes(routes!(members::invitations, members::invite))
        .routes(routes!(members::revoke_invitation))
        .routes(routes!(audit_log::list))
        .routes(routes!(audit_log::export))
        .routes(routes!(guardrails::get, guardrails::put))
        .routes(routes!(costs::report))
        .routes(routes!(costs::export))
        .routes(routes!(costs::list_prices, costs::create_price))
        .routes(routes!(costs::delete_price))
        .routes(routes!(budgets::list, budgets::create))
        .routes(routes!(budgets::get, budgets::update, budgets::delete))
        .routes(routes!(sso::create, sso::list))
        .routes(routes!(sso::delete))
        .routes(routes!(workflows::create, workflows::list))
        .routes(routes!(workflows::validate))
        .routes(routes!(workflows::get, workflows::put, workflows::delete))
        .routes(routes!(workflows::versions))
        .routes(routes!(workflows::version))
        .routes(routes!(workflow_runs::start))
        .routes(routes!(workflow_runs::list))
        .routes(routes!(workflow_runs::get))
        .routes(routes!(workflow_runs::events))
        .routes(routes!(workflow_runs::cancel))
        .routes(routes!(workflow_runs::retry))
        .routes(routes!(workflow_runs::rerun))
        .routes(routes!(approvals::list))
        .routes(routes!(approvals::get, approvals::decide))
        .routes(routes!(triggers::list, triggers::create))
        .routes(routes!(triggers::get, triggers::update, triggers::delete))
        .routes(routes!(triggers::rotate_secret))
        .routes(routes!(triggers::fires))
        .routes(routes!(triggers::deliver))
}

/// The document as JSON.
pub fn document() -> utoipa::openapi::OpenApi {
    api_router().split_for_parts().1
}

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}
