//! The TestProvider's HTTP endpoints.

mod assertion;
mod authorize;
mod par;
mod request;
mod token;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Query, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::collections::HashMap;

use crate::testing::{State, SSO_COOKIE};
use authorize::{authorize, login_form_post, sso_cookie};
use token::{fail, revoke, token};

type Params = HashMap<String, String>;

pub(super) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/oauth/authorize", get(authorize).post(login_form_post))
        .route("/oauth/token", axum::routing::post(token))
        .route("/oauth/revoke", axum::routing::post(revoke))
        .route("/oauth/par", axum::routing::post(par::par))
        .route("/keys", get(keys))
        .route("/oidc/logout", get(end_session))
        .with_state(state)
}

async fn discovery(AxState(s): AxState<Arc<State>>) -> Json<serde_json::Value> {
    s.discovery_fetches.fetch_add(1, Ordering::Relaxed);
    let i = &s.base;
    let mut doc = json!({
        "issuer": s.issuer,
        "authorization_endpoint": format!("{i}/oauth/authorize"),
        "token_endpoint": format!("{i}/oauth/token"),
        "jwks_uri": format!("{i}/keys"),
        "end_session_endpoint": format!("{i}/oidc/logout"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": s.auth_methods,
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "authorization_response_iss_parameter_supported": s.iss_param,
    });
    if s.auth_methods.iter().any(|m| m == "private_key_jwt") {
        doc["token_endpoint_auth_signing_alg_values_supported"] = json!(["RS256", "ES256"]);
    }
    if s.par_listed {
        doc["pushed_authorization_request_endpoint"] = format!("{i}/oauth/par").into();
        doc["require_pushed_authorization_requests"] = s.par_required.into();
    }
    if s.revocation_listed {
        doc["revocation_endpoint"] = format!("{i}/oauth/revoke").into();
        doc["revocation_endpoint_auth_methods_supported"] = json!(s.auth_methods);
    }
    Json(doc)
}

async fn keys(AxState(s): AxState<Arc<State>>) -> Response {
    s.jwks_fetches.fetch_add(1, Ordering::Relaxed);
    s.jwks_fetched.notify_waiters();
    let failure = s.jwks_failure.lock().expect("lock").clone();
    if let Some(resp) = fail(failure).await {
        return resp;
    }
    let document = s.jwks_document.lock().expect("lock").clone();
    let document = document.unwrap_or_else(|| json!({ "keys": s.published_keys() }));
    let mut resp = Json(document).into_response();
    if let Some(age) = *s.jwks_max_age.lock().expect("lock") {
        if let Ok(v) = header::HeaderValue::from_str(&format!("public, max-age={age}")) {
            resp.headers_mut().insert(header::CACHE_CONTROL, v);
        }
    }
    resp
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

async fn end_session(
    AxState(s): AxState<Arc<State>>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    s.logouts.fetch_add(1, Ordering::Relaxed);
    // The provider session to end: the browser's cookie, else the sid in the ID token hint.
    let hinted_sid = p
        .get("id_token_hint")
        .and_then(|t| {
            jsonwebtoken::dangerous::insecure_decode::<serde_json::Map<String, serde_json::Value>>(
                t,
            )
            .ok()
        })
        .and_then(|d| {
            d.claims
                .get("sid")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        });
    let ended = {
        let mut sso = s.sso.lock().expect("sso lock");
        let key = sso_cookie(&headers)
            .filter(|k| sso.contains_key(k))
            .or_else(|| {
                let sid = hinted_sid.as_deref()?;
                sso.iter()
                    .find(|(_, v)| v.sid == sid)
                    .map(|(k, _)| k.clone())
            });
        key.and_then(|k| sso.remove(&k))
    };
    if let Some(session) = ended {
        s.end_sso(session).await;
    }
    let mut resp = match p.get("post_logout_redirect_uri") {
        Some(uri) if url::Url::parse(uri).is_ok() => {
            let mut target = url::Url::parse(uri).expect("checked");
            if let Some(state) = p.get("state") {
                target.query_pairs_mut().append_pair("state", state);
            }
            Redirect::to(target.as_str()).into_response()
        }
        _ => Html("<!doctype html><p>You are signed out.</p>").into_response(),
    };
    let clear = format!("{SSO_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    if let Ok(v) = header::HeaderValue::from_str(&clear) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}
