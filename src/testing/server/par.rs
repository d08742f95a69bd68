//! Pushed authorization requests (RFC 9126): the endpoint, and resolving a `request_uri` at
//! the authorize endpoint.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State as AxState;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde_json::json;

use super::request::check_authorize;
use super::token::{authenticate, fail};
use super::{oauth_error, Params};
use crate::testing::{Pushed, State};
use crate::token::random_token;

/// How long a pushed request may be used (RFC 9126 section 2.2 suggests 5 to 600 seconds).
const PUSHED_TTL: i64 = 60;

/// RFC 9126 section 2.1: the request's URN prefix.
const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// `POST /oauth/par`: authenticates the client as the token endpoint does, checks the
/// authorization request as authorize would, and answers `201 {request_uri, expires_in}`
/// (RFC 9126 section 2.2).
pub(super) async fn par(
    AxState(s): AxState<Arc<State>>,
    headers: HeaderMap,
    Form(p): Form<Params>,
) -> Response {
    s.par_requests.fetch_add(1, Ordering::Relaxed);
    let failure = s.par_failure.lock().expect("lock").clone();
    if let Some(resp) = fail(failure).await {
        return resp;
    }
    let client = match authenticate(&s, &headers, &p) {
        Ok(client) => client,
        Err(why) => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", why),
    };
    // Section 2.1: `request_uri` must not be pushed.
    if p.contains_key("request_uri") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "request_uri is not allowed in a pushed request",
        );
    }
    // Section 2.1: the client_id of the request is the authenticated client.
    if p.get("client_id").is_some_and(|id| *id != client) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_id is not the authenticated client",
        );
    }
    let mut params = p;
    for credential in ["client_secret", "client_assertion", "client_assertion_type"] {
        params.remove(credential);
    }
    params.insert("client_id".into(), client.clone());
    if let Err(resp) = check_authorize(&s, &params) {
        return *resp;
    }
    let request_uri = remember(&s, client, params);
    (
        StatusCode::CREATED,
        Json(json!({"request_uri": request_uri, "expires_in": PUSHED_TTL})),
    )
        .into_response()
}

/// Keeps a pushed request for [`PUSHED_TTL`] seconds, under a new one-time `request_uri`.
pub(super) fn remember(s: &State, client: String, params: Params) -> String {
    let request_uri = format!("{REQUEST_URI_PREFIX}{}", random_token());
    let now = s.clock.now();
    let mut pushed = s.pushed.lock().expect("pushed lock");
    pushed.retain(|_, p| p.expires > now);
    pushed.insert(
        request_uri.clone(),
        Pushed {
            client,
            params,
            expires: now.saturating_add(PUSHED_TTL),
        },
    );
    request_uri
}

/// The authorization request to serve: the pushed one named by `request_uri` (used once,
/// unexpired, of the same `client_id`), or the query's own when the provider does not require
/// PAR (RFC 9126 section 4).
pub(super) fn resolve(s: &State, p: Params) -> Result<Params, Box<Response>> {
    let refuse =
        |error: &str, why: &str| Err(Box::new(oauth_error(StatusCode::BAD_REQUEST, error, why)));
    let Some(uri) = p.get("request_uri") else {
        if s.par_required {
            return refuse(
                "invalid_request",
                "this provider requires pushed authorization requests",
            );
        }
        return Ok(p);
    };
    // One use only, whatever happens next.
    let Some(pushed) = s.pushed.lock().expect("pushed lock").remove(uri) else {
        return refuse("invalid_request_uri", "unknown or already used request_uri");
    };
    if pushed.expires <= s.clock.now() {
        return refuse("invalid_request_uri", "expired request_uri");
    }
    if p.get("client_id") != Some(&pushed.client) {
        return refuse("invalid_request_uri", "request_uri of another client");
    }
    s.pushed_used.fetch_add(1, Ordering::Relaxed);
    Ok(pushed.params)
}
