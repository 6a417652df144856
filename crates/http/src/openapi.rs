//! The OpenAPI 3.1 document, generated from the handlers' annotations. A snapshot test keeps
//! every change to the API visible in review.

use crate::AppState;
use crate::routes::{agents, api_keys, apply, events, providers, runs};
use axum::Json;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "Agentry API", description = "Agents, runs and providers of a self-hosted Agentry instance. Every route needs `Authorization: Bearer <API key>`. Errors are `{\"error\": {code, message, details?, request_id}}` with codes from docs/errors.md."),
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
    }
}

/// Every `/api/v1` route with its documentation. The route table of the API.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(providers::create, providers::list))
        .routes(routes!(providers::get, providers::delete))
        .routes(routes!(agents::create, agents::list))
        .routes(routes!(agents::get, agents::update, agents::delete))
        .routes(routes!(runs::create))
        .routes(routes!(runs::list))
        .routes(routes!(runs::get))
        .routes(routes!(runs::cancel))
        .routes(routes!(events::stream))
        .routes(routes!(api_keys::create, api_keys::list))
        .routes(routes!(api_keys::revoke))
        .routes(routes!(apply::apply))
}

/// The document as JSON.
pub fn document() -> utoipa::openapi::OpenApi {
    api_router().split_for_parts().1
}

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}
