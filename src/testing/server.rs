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

use super::{CodeGrant, Failure, RefreshGrant, SsoSession, State, TestUser, SSO_COOKIE};
use crate::responses::escape;
use crate::token::random_token;

type Params = HashMap<String, String>;

pub(super) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/oauth/authorize", get(authorize).post(login_form_post))
        .route("/oauth/token", axum::routing::post(token))
        .route("/oauth/revoke", axum::routing::post(revoke))
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

/// Checks an authorization request; the error is shown, never redirected (as a real provider
/// does for a bad client or redirect URI).
fn check_authorize(s: &State, p: &Params) -> Result<(), Box<Response>> {
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    let bad = |error: &str, description: &str| {
        Err(Box::new(oauth_error(
            StatusCode::BAD_REQUEST,
            error,
            description,
        )))
    };
    if !s
        .clients
        .lock()
        .expect("clients lock")
        .contains_key(get("client_id"))
    {
        return bad("invalid_client", "unknown client_id");
    }
    if get("redirect_uri").is_empty() || url::Url::parse(get("redirect_uri")).is_err() {
        return bad("invalid_request", "redirect_uri");
    }
    if get("response_type") != "code" {
        return bad("unsupported_response_type", "code only");
    }
    if get("code_challenge").is_empty() || get("code_challenge_method") != "S256" {
        return bad("invalid_request", "PKCE S256 required");
    }
    Ok(())
}

/// The browser's single sign-on session at the provider, from its cookie.
fn sso_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SSO_COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// Starts a single sign-on session for `user`; returns its cookie id and `sid`.
fn start_sso(s: &State, user: TestUser) -> (String, String) {
    let id = random_token();
    let sid = format!("sid-{}", &random_token()[..16]);
    s.sso.lock().expect("sso lock").insert(
        id.clone(),
        SsoSession {
            user,
            sid: sid.clone(),
            clients: Default::default(),
        },
    );
    (id, sid)
}

fn issue_code(
    s: &State,
    p: &Params,
    user: TestUser,
    sid: String,
    set_sso: Option<&str>,
) -> Response {
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    let code = random_token();
    s.issued.lock().expect("issued lock").push(code.clone());
    s.codes.lock().expect("codes lock").insert(
        code.clone(),
        CodeGrant {
            client: get("client_id"),
            user,
            redirect_uri: get("redirect_uri"),
            nonce: p.get("nonce").cloned(),
            challenge: get("code_challenge"),
            scope: get("scope"),
            sid,
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
    let mut resp = Redirect::to(target.as_str()).into_response();
    if let Some(id) = set_sso {
        let cookie = format!("{SSO_COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax");
        if let Ok(v) = header::HeaderValue::from_str(&cookie) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

async fn authorize(
    AxState(s): AxState<Arc<State>>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    if let Err(resp) = check_authorize(&s, &p) {
        return *resp;
    }
    let client = p.get("client_id").cloned().unwrap_or_default();
    let force_login = p.get("prompt").map(String::as_str) == Some("login");
    // Single sign-on: a browser signed in at the provider gets a code without a form.
    if !force_login {
        if let Some(id) = sso_cookie(&headers) {
            let known = {
                let mut sso = s.sso.lock().expect("sso lock");
                sso.get_mut(&id).map(|session| {
                    session.clients.insert(client.clone());
                    (session.user.clone(), session.sid.clone())
                })
            };
            if let Some((user, sid)) = known {
                return issue_code(&s, &p, user, sid, None);
            }
        }
    }
    let user = s.user.lock().expect("user lock").clone();
    if let Some(user) = user {
        let (id, sid) = start_sso(&s, user.clone());
        if let Some(session) = s.sso.lock().expect("sso lock").get_mut(&id) {
            session.clients.insert(client);
        }
        return issue_code(&s, &p, user, sid, Some(&id));
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
    let (id, sid) = start_sso(&s, user.clone());
    if let Some(session) = s.sso.lock().expect("sso lock").get_mut(&id) {
        session
            .clients
            .insert(p.get("client_id").cloned().unwrap_or_default());
    }
    issue_code(&s, &p, user, sid, Some(&id))
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

/// Client authentication: `client_secret_basic` or `client_secret_post`. Returns the client.
fn authenticate(s: &State, headers: &HeaderMap, p: &Params) -> Option<String> {
    let clients = s.clients.lock().expect("clients lock").clone();
    let check = |id: &str, secret: &str| {
        clients
            .get(id)
            .is_some_and(|c| c.secret == secret)
            .then(|| id.to_owned())
    };
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        if !s.auth_methods.iter().any(|m| m == "client_secret_basic") {
            return None;
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
        let (id, secret) = decoded.split_once(':')?;
        return check(&decode(id), &decode(secret));
    }
    if !s.auth_methods.iter().any(|m| m == "client_secret_post") {
        return None;
    }
    check(p.get("client_id")?, p.get("client_secret")?)
}

async fn token(
    AxState(s): AxState<Arc<State>>,
    headers: HeaderMap,
    Form(p): Form<Params>,
) -> Response {
    s.token_requests.fetch_add(1, Ordering::Relaxed);
    let failure = s.token_failure.lock().expect("lock").clone();
    if let Some(resp) = fail(failure).await {
        if p.get("grant_type").map(String::as_str) == Some("refresh_token") {
            s.refresh_failures.fetch_add(1, Ordering::Relaxed);
        }
        return resp;
    }
    let Some(client) = authenticate(&s, &headers, &p) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    };
    match p.get("grant_type").map(String::as_str) {
        Some("authorization_code") => code_grant(&s, &client, &p),
        Some("refresh_token") => refresh_grant(&s, &client, &p),
        _ => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "code or refresh",
        ),
    }
}

/// RFC 7009 token revocation: the client authenticates as at the token endpoint; a refresh
/// token of that client is revoked (with its rotation family). Unknown tokens get 200 too
/// (section 2.2).
async fn revoke(
    AxState(s): AxState<Arc<State>>,
    headers: HeaderMap,
    Form(p): Form<Params>,
) -> Response {
    s.revocation_requests.fetch_add(1, Ordering::Relaxed);
    let failure = s.revocation_failure.lock().expect("lock").clone();
    if let Some(resp) = fail(failure).await {
        return resp;
    }
    let Some(client) = authenticate(&s, &headers, &p) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    };
    let Some(token) = p.get("token").filter(|t| !t.is_empty()) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "token");
    };
    let mut store = s.refresh.lock().expect("refresh lock");
    if let Some(family) = store
        .get(token)
        .filter(|g| g.client == client)
        .map(|g| g.family.clone())
    {
        store.retain(|_, g| g.family != family);
        s.refresh_tokens_revoked.fetch_add(1, Ordering::Relaxed);
    }
    StatusCode::OK.into_response()
}

fn code_grant(s: &State, client: &str, p: &Params) -> Response {
    let code = p.get("code").cloned().unwrap_or_default();
    // Codes are single-use: removed whatever happens next.
    let Some(grant) = s.codes.lock().expect("codes lock").remove(&code) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "unknown or used code",
        );
    };
    if grant.client != client {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "code of another client",
        );
    }
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
    let at = s.access_token(client, &grant.user, &grant.scope, &grant.sid);
    let id = s.id_token(client, &grant.user, grant.nonce.as_deref(), &grant.sid, &at);
    let mut body = json!({
        "access_token": at, "token_type": "Bearer", "id_token": id,
        "expires_in": s.expires_in(), "scope": grant.scope,
    });
    if grant.scope.split(' ').any(|x| x == "offline_access") {
        let rt = random_token();
        s.refresh.lock().expect("refresh lock").insert(
            rt.clone(),
            RefreshGrant {
                client: client.to_owned(),
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

fn refresh_grant(s: &State, client: &str, p: &Params) -> Response {
    let rt = p.get("refresh_token").cloned().unwrap_or_default();
    let mut store = s.refresh.lock().expect("refresh lock");
    let Some(grant) = store.get(&rt).cloned().filter(|g| g.client == client) else {
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
    let user = s
        .refresh_user
        .lock()
        .expect("refresh user lock")
        .clone()
        .unwrap_or_else(|| grant.user.clone());
    let at = s.access_token(client, &user, &grant.scope, &grant.sid);
    let id = s.id_token(client, &user, None, &grant.sid, &at);
    let mut body = json!({
        "access_token": at, "token_type": "Bearer", "id_token": id,
        "expires_in": s.expires_in(), "scope": grant.scope,
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
