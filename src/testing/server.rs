//! The TestProvider's HTTP endpoints.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Query, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

use super::{CodeGrant, Failure, RefreshGrant, State, TestUser};
use crate::responses::escape;
use crate::routes::random_token;

type Params = HashMap<String, String>;

pub(super) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/oauth/authorize", get(authorize).post(login_form_post))
        .route("/oauth/token", axum::routing::post(token))
        .route("/keys", get(keys))
        .route("/oidc/logout", get(end_session))
        .with_state(state)
}

async fn discovery(AxState(s): AxState<Arc<State>>) -> Json<serde_json::Value> {
    s.discovery_fetches.fetch_add(1, Ordering::Relaxed);
    let i = &s.issuer;
    Json(json!({
        "issuer": i,
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
    }))
}

async fn keys(AxState(s): AxState<Arc<State>>) -> Response {
    s.jwks_fetches.fetch_add(1, Ordering::Relaxed);
    let failure = s.jwks_failure.lock().expect("lock").clone();
    if let Some(resp) = fail(failure).await {
        return resp;
    }
    let keys: Vec<serde_json::Value> = s
        .keys
        .lock()
        .expect("keys lock")
        .iter()
        .map(|k| k.jwk.clone())
        .collect();
    let mut resp = Json(json!({ "keys": keys })).into_response();
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

/// Checks an authorization request; the error is shown, never redirected (as a real provider
/// does for a bad client or redirect URI).
fn check_authorize(s: &State, p: &Params) -> Result<(), Box<Response>> {
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    if get("client_id") != s.client_id {
        return Err(Box::new(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "unknown client_id",
        )));
    }
    if get("redirect_uri").is_empty() || url::Url::parse(get("redirect_uri")).is_err() {
        return Err(Box::new(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "redirect_uri",
        )));
    }
    if get("response_type") != "code" {
        return Err(Box::new(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_response_type",
            "code only",
        )));
    }
    if get("code_challenge").is_empty() || get("code_challenge_method") != "S256" {
        return Err(Box::new(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "PKCE S256 required",
        )));
    }
    Ok(())
}

fn issue_code(s: &State, p: &Params, user: TestUser) -> Response {
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    let code = random_token();
    s.issued.lock().expect("issued lock").push(code.clone());
    s.codes.lock().expect("codes lock").insert(
        code.clone(),
        CodeGrant {
            user,
            redirect_uri: get("redirect_uri"),
            nonce: p.get("nonce").cloned(),
            challenge: get("code_challenge"),
            scope: get("scope"),
            sid: format!("sid-{}", &random_token()[..12]),
            created: s.clock.now(),
        },
    );
    let mut target = match url::Url::parse(&get("redirect_uri")) {
        Ok(u) => u,
        Err(_) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "redirect_uri"),
    };
    {
        let mut q = target.query_pairs_mut();
        q.append_pair("code", &code);
        if let Some(state) = p.get("state") {
            q.append_pair("state", state);
        }
        if s.iss_param {
            q.append_pair("iss", &s.issuer);
        }
    }
    Redirect::to(target.as_str()).into_response()
}

async fn authorize(AxState(s): AxState<Arc<State>>, Query(p): Query<Params>) -> Response {
    if let Err(resp) = check_authorize(&s, &p) {
        return *resp;
    }
    let user = s.user.lock().expect("user lock").clone();
    if let Some(user) = user {
        return issue_code(&s, &p, user);
    }
    let hidden: String = p
        .iter()
        .map(|(k, v)| {
            format!(
                r#"<input type="hidden" name="{}" value="{}">"#,
                escape(k),
                escape(v)
            )
        })
        .collect();
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign in</title></head><body>\
         <h1>Sign in to the test provider</h1>\
         <form method=\"post\" action=\"/oauth/authorize\">{hidden}\
         <label>Login <input name=\"login\" autofocus></label>\
         <label>Password <input name=\"password\" type=\"password\"></label>\
         <button type=\"submit\">Sign in</button></form>\
         <p>Any login and any non-empty password work.</p></body></html>"
    ))
    .into_response()
}

async fn login_form_post(AxState(s): AxState<Arc<State>>, Form(p): Form<Params>) -> Response {
    if let Err(resp) = check_authorize(&s, &p) {
        return *resp;
    }
    let login = p
        .get("login")
        .map(|l| l.trim().to_owned())
        .unwrap_or_default();
    let password = p.get("password").cloned().unwrap_or_default();
    if login.is_empty() || password.is_empty() {
        return (
            StatusCode::UNAUTHORIZED,
            Html("<p>Login and password are required. Go back and try again.</p>"),
        )
            .into_response();
    }
    let user = TestUser::new(login.clone())
        .email(login.clone())
        .name(login);
    issue_code(&s, &p, user)
}

async fn fail(failure: Option<Failure>) -> Option<Response> {
    match failure? {
        Failure::Status(code) => Some(oauth_error(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "server_error",
            "injected failure",
        )),
        Failure::OAuthError(error) => {
            Some(oauth_error(StatusCode::BAD_REQUEST, &error, "injected"))
        }
        Failure::Delay(d) => {
            tokio::time::sleep(d).await;
            None
        }
        Failure::NotJson => Some(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/html")],
                "<html>gateway</html>",
            )
                .into_response(),
        ),
        Failure::Truncated => Some(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "{\"access_token\":\"eyJhbGciOi\",\"token_type\":\"Bea",
            )
                .into_response(),
        ),
        Failure::Oversized(n) => Some(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                format!("{{\"pad\":\"{}\"}}", "x".repeat(n)),
            )
                .into_response(),
        ),
    }
}

/// Client authentication: `client_secret_basic` or `client_secret_post`.
fn authenticate(s: &State, headers: &HeaderMap, p: &Params) -> bool {
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        if !s.auth_methods.iter().any(|m| m == "client_secret_basic") {
            return false;
        }
        let decoded = STANDARD
            .decode(auth)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        let decode = |x: &str| {
            url::form_urlencoded::parse(format!("v={x}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        return match decoded.split_once(':') {
            Some((id, secret)) => decode(id) == s.client_id && decode(secret) == s.client_secret,
            None => false,
        };
    }
    s.auth_methods.iter().any(|m| m == "client_secret_post")
        && p.get("client_id") == Some(&s.client_id)
        && p.get("client_secret") == Some(&s.client_secret)
}

async fn token(
    AxState(s): AxState<Arc<State>>,
    headers: HeaderMap,
    Form(p): Form<Params>,
) -> Response {
    let failure = s.token_failure.lock().expect("lock").clone();
    if let Some(resp) = fail(failure).await {
        if p.get("grant_type").map(String::as_str) == Some("refresh_token") {
            s.refresh_failures.fetch_add(1, Ordering::Relaxed);
        }
        return resp;
    }
    if !authenticate(&s, &headers, &p) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    }
    match p.get("grant_type").map(String::as_str) {
        Some("authorization_code") => code_grant(&s, &p),
        Some("refresh_token") => refresh_grant(&s, &p),
        _ => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "code or refresh",
        ),
    }
}

fn code_grant(s: &State, p: &Params) -> Response {
    let code = p.get("code").cloned().unwrap_or_default();
    // Codes are single-use: removed whatever happens next.
    let Some(grant) = s.codes.lock().expect("codes lock").remove(&code) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "unknown or used code",
        );
    };
    if s.clock.now() - grant.created > 600 {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "code expired");
    }
    if p.get("redirect_uri") != Some(&grant.redirect_uri) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "redirect_uri mismatch",
        );
    }
    let verifier = p.get("code_verifier").cloned().unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != grant.challenge {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "PKCE verification failed",
        );
    }
    s.code_grants.fetch_add(1, Ordering::Relaxed);
    let at = s.access_token(&grant.user, &grant.scope, &grant.sid);
    let id = s.id_token(&grant.user, grant.nonce.as_deref(), &grant.sid, &at);
    let mut body = json!({
        "access_token": at, "token_type": "Bearer", "id_token": id,
        "expires_in": s.access_ttl.load(Ordering::Relaxed), "scope": grant.scope,
    });
    if grant.scope.split(' ').any(|x| x == "offline_access") {
        let rt = random_token();
        s.refresh.lock().expect("refresh lock").insert(
            rt.clone(),
            RefreshGrant {
                user: grant.user,
                scope: grant.scope,
                sid: grant.sid,
                family: rt.clone(),
                active: true,
            },
        );
        body["refresh_token"] = rt.into();
    }
    record(s, &body);
    no_store(Json(body))
}

fn refresh_grant(s: &State, p: &Params) -> Response {
    let rt = p.get("refresh_token").cloned().unwrap_or_default();
    let mut store = s.refresh.lock().expect("refresh lock");
    let Some(grant) = store.get(&rt).cloned() else {
        s.refresh_failures.fetch_add(1, Ordering::Relaxed);
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "unknown refresh token",
        );
    };
    if !grant.active {
        // Replay of a rotated token: revoke the whole grant family.
        store.retain(|_, g| g.family != grant.family);
        s.refresh_failures.fetch_add(1, Ordering::Relaxed);
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "refresh token reused",
        );
    }
    let at = s.access_token(&grant.user, &grant.scope, &grant.sid);
    let id = s.id_token(&grant.user, None, &grant.sid, &at);
    let mut body = json!({
        "access_token": at, "token_type": "Bearer", "id_token": id,
        "expires_in": s.access_ttl.load(Ordering::Relaxed), "scope": grant.scope,
    });
    if s.rotation.load(Ordering::Relaxed) {
        let new_rt = random_token();
        if let Some(old) = store.get_mut(&rt) {
            old.active = false;
        }
        store.insert(
            new_rt.clone(),
            RefreshGrant {
                active: true,
                ..grant
            },
        );
        body["refresh_token"] = new_rt.into();
    }
    s.refresh_grants.fetch_add(1, Ordering::Relaxed);
    record(s, &body);
    no_store(Json(body))
}

fn record(s: &State, body: &serde_json::Value) {
    let mut issued = s.issued.lock().expect("issued lock");
    for k in ["access_token", "id_token", "refresh_token"] {
        if let Some(v) = body.get(k).and_then(|v| v.as_str()) {
            issued.push(v.to_owned());
        }
    }
}

fn no_store(body: impl IntoResponse) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

async fn end_session(AxState(s): AxState<Arc<State>>, Query(p): Query<Params>) -> Response {
    s.logouts.fetch_add(1, Ordering::Relaxed);
    match p.get("post_logout_redirect_uri") {
        Some(uri) if url::Url::parse(uri).is_ok() => Redirect::to(uri).into_response(),
        _ => Html("<!doctype html><p>You are signed out.</p>").into_response(),
    }
}
