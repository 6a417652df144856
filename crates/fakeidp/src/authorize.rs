//! `GET /authorize`: checks the request like a real provider would, then — as if the configured
//! user had just signed in and consented — redirects straight back with a code.

use crate::routes::{decode_form, random_token, recorded, single};
use crate::state::{FakeIdp, Grant};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

pub(crate) async fn authorize(
    State(fake): State<FakeIdp>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    fake.record(recorded(&method, &uri, &headers, &[]));
    let params = decode_form(uri.query().unwrap_or_default().as_bytes());

    // Until client and redirect URI are known good, errors must not redirect (RFC 6749 §4.1.2.1):
    // that would make the provider an open redirector.
    let (client_id, redirect_uri) = match trusted_target(&fake, &params) {
        Ok(target) => target,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    let state = single(&params, "state").ok().flatten().map(str::to_string);
    let grant = match check_request(&params) {
        Ok((nonce, code_challenge)) => Grant {
            client_id,
            redirect_uri: redirect_uri.clone(),
            nonce,
            code_challenge,
            user: fake.state().user.clone(),
        },
        Err((error, description)) => {
            let mut reply = vec![
                ("error", error),
                ("error_description", description.as_str()),
            ];
            if let Some(state) = &state {
                reply.push(("state", state));
            }
            return redirect(&redirect_uri, &reply);
        }
    };
    let Some(code) = random_token() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    fake.state().grants.insert(code.clone(), grant);
    let mut reply = vec![("code", code.as_str())];
    if let Some(state) = &state {
        reply.push(("state", state));
    }
    redirect(&redirect_uri, &reply)
}

/// The registered client and one of its exact redirect URIs, or why not.
fn trusted_target(fake: &FakeIdp, params: &[(String, String)]) -> Result<(String, String), String> {
    let client_id = single(params, "client_id")?.ok_or("missing client_id")?;
    let redirect_uri = single(params, "redirect_uri")?.ok_or("missing redirect_uri")?;
    let state = fake.state();
    let client = state
        .clients
        .get(client_id)
        .ok_or_else(|| format!("unknown client_id '{client_id}'"))?;
    if !client.redirect_uris.iter().any(|uri| uri == redirect_uri) {
        return Err(format!(
            "redirect_uri '{redirect_uri}' is not registered for this client"
        ));
    }
    Ok((client_id.to_string(), redirect_uri.to_string()))
}

/// `(nonce, code_challenge)` of a well-formed code-flow request with PKCE S256, or the OAuth
/// error code and description to send back.
fn check_request(
    params: &[(String, String)],
) -> Result<(Option<String>, String), (&'static str, String)> {
    let invalid = |message: String| ("invalid_request", message);
    let get = |name: &str| single(params, name).map_err(invalid);
    if get("response_type")? != Some("code") {
        return Err((
            "unsupported_response_type",
            "only response_type=code is supported".into(),
        ));
    }
    let scope = get("scope")?.unwrap_or_default();
    if !scope.split(' ').any(|s| s == "openid") {
        return Err(("invalid_scope", "the scope must include openid".into()));
    }
    if get("code_challenge_method")? != Some("S256") {
        return Err(invalid(
            "PKCE with code_challenge_method=S256 is required".into(),
        ));
    }
    let challenge = get("code_challenge")?
        .filter(|c| c.len() == 43)
        .ok_or_else(|| invalid("code_challenge must be a base64url SHA-256 (43 chars)".into()))?;
    Ok((get("nonce")?.map(str::to_string), challenge.to_string()))
}

/// `302 Found` to `redirect_uri` with `params` appended to its query.
fn redirect(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let mut location = redirect_uri.to_string();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    location.push(if redirect_uri.contains('?') { '&' } else { '?' });
    location.push_str(&query);
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}
