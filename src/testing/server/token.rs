//! The token and revocation endpoints: client authentication and the code and refresh grants.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State as AxState;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{oauth_error, Params};
use crate::testing::{Failure, RefreshGrant, State};
use crate::token::random_token;

pub(super) async fn fail(failure: Option<Failure>) -> Option<Response> {
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

/// Client authentication: `client_secret_basic`, `client_secret_post` or `private_key_jwt`.
/// Returns the client, or why it was refused.
pub(super) fn authenticate(
    s: &State,
    headers: &HeaderMap,
    p: &Params,
) -> Result<String, &'static str> {
    if p.contains_key("client_assertion_type") || p.contains_key("client_assertion") {
        return super::assertion::verify(s, p);
    }
    let clients = s.clients.lock().expect("clients lock").clone();
    let check = |id: &str, secret: &str| {
        clients
            .get(id)
            .is_some_and(|c| c.secret == secret)
            .then(|| id.to_owned())
            .ok_or("wrong client id or secret")
    };
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        if !s.auth_methods.iter().any(|m| m == "client_secret_basic") {
            return Err("client_secret_basic not accepted");
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
        let (id, secret) = decoded
            .split_once(':')
            .ok_or("malformed Basic credentials")?;
        return check(&decode(id), &decode(secret));
    }
    if !s.auth_methods.iter().any(|m| m == "client_secret_post") {
        return Err("client_secret_post not accepted");
    }
    check(
        p.get("client_id").ok_or("no client_id")?,
        p.get("client_secret").ok_or("no client credentials")?,
    )
}

pub(super) async fn token(
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
    let client = match authenticate(&s, &headers, &p) {
        Ok(client) => client,
        Err(why) => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", why),
    };
    match p.get("grant_type").map(String::as_str) {
        Some("authorization_code") => code_grant(&s, &client, &p),
        Some("refresh_token") => refresh_grant(&s, &client, &p),
        Some("client_credentials") => client_credentials_grant(&s, &client, &p),
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
pub(super) async fn revoke(
    AxState(s): AxState<Arc<State>>,
    headers: HeaderMap,
    Form(p): Form<Params>,
) -> Response {
    s.revocation_requests.fetch_add(1, Ordering::Relaxed);
    let failure = s.revocation_failure.lock().expect("lock").clone();
    if let Some(resp) = fail(failure).await {
        return resp;
    }
    let client = match authenticate(&s, &headers, &p) {
        Ok(client) => client,
        Err(why) => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", why),
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

pub(super) fn code_grant(s: &State, client: &str, p: &Params) -> Response {
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
    let id = s.id_token(
        client,
        &grant.user,
        grant.nonce.as_deref(),
        &grant.sid,
        &at,
        &grant.authn,
    );
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
                authn: grant.authn,
            },
        );
        body["refresh_token"] = rt.into();
    }
    record(s, &body);
    no_store(Json(body))
}

/// RFC 6749 section 4.4: an access token for the client itself (`sub` = the client id).
pub(super) fn client_credentials_grant(s: &State, client: &str, p: &Params) -> Response {
    let scope = p.get("scope").cloned().unwrap_or_default();
    let at = s.access_token(client, &crate::testing::TestUser::new(client), &scope, "");
    s.client_credentials_grants.fetch_add(1, Ordering::Relaxed);
    let body = json!({
        "access_token": at, "token_type": "Bearer", "expires_in": s.expires_in(),
    });
    record(s, &body);
    no_store(Json(body))
}

pub(super) fn refresh_grant(s: &State, client: &str, p: &Params) -> Response {
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
    // The refreshed ID token describes the same authentication (OIDC Core 12.2).
    let id = s.id_token(client, &user, None, &grant.sid, &at, &grant.authn);
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

pub(super) fn record(s: &State, body: &serde_json::Value) {
    let mut issued = s.issued.lock().expect("issued lock");
    for k in ["access_token", "id_token", "refresh_token"] {
        if let Some(v) = body.get(k).and_then(|v| v.as_str()) {
            issued.push(v.to_owned());
        }
    }
}

pub(super) fn no_store(body: impl IntoResponse) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}
