//! Request builders, and one-shot calls of an app (no cookie jar; see [`super::send`] for a
//! browser-like client).
//!
//! Where former per-file helpers differed (an `Accept` header or not, a `&str` or raw-bytes
//! `Cookie` header, a status or a whole response), they are kept apart under distinct names.

use axum::body::Body;
use axum::Router;
use http::{header, HeaderValue, Request, Response, StatusCode};
use tower::ServiceExt;
use tower_oidc_auth::testing::TestUser;

use super::Setup;

// ---- Requests -------------------------------------------------------------------------------

/// `GET uri` of an API client (`Accept: application/json`) sending `cookie`.
pub fn request(uri: &str, cookie: &str) -> Request<Body> {
    request_accepting(uri, cookie, "application/json")
}

/// `GET uri` with this `Accept` header, sending `cookie`.
pub fn request_accepting(uri: &str, cookie: &str, accept: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::ACCEPT, accept)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap()
}

/// `GET uri` (`Accept: application/json`) whose `Cookie` header is raw bytes (a value that is
/// not UTF-8, or not visible ASCII, is allowed on the wire).
pub fn request_bytes(uri: &str, cookie: &[u8]) -> Request<Body> {
    Request::get(uri)
        .header(header::ACCEPT, "application/json")
        .header(header::COOKIE, HeaderValue::from_bytes(cookie).unwrap())
        .body(Body::empty())
        .unwrap()
}

/// `GET uri` of an API client (`Accept: application/json`) with a bearer token.
pub fn bearer(uri: &str, token: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::ACCEPT, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

/// `GET uri` with a bearer token and no `Accept` header.
pub fn bearer_without_accept(uri: &str, token: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

/// `POST /auth/backchannel-logout` of a logout token, as a provider sends it.
pub fn logout_token_request(token: &str) -> Request<Body> {
    Request::post("/auth/backchannel-logout")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "logout_token={}",
            super::encoding::urlencode(token)
        )))
        .unwrap()
}

// ---- One-shot calls -------------------------------------------------------------------------

/// Serves one request.
pub async fn serve(app: &Router, req: Request<Body>) -> Response<Body> {
    app.clone().oneshot(req).await.unwrap()
}

/// Serves one request on the setup's app; returns the status.
pub async fn serve_status(s: &Setup, req: Request<Body>) -> StatusCode {
    serve(&s.app, req).await.status()
}

/// [`request`] served by `app`.
pub async fn call(app: &Router, uri: &str, cookie: &str) -> Response<Body> {
    serve(app, request(uri, cookie)).await
}

/// The status of `GET /me` sending `cookie` (`Accept: application/json`).
pub async fn status(app: &Router, cookie: &str) -> StatusCode {
    call(app, "/me", cookie).await.status()
}

/// `GET /` whose `Cookie` header is raw bytes ([`request_bytes`]), served by `app`.
pub async fn call_bytes(app: &Router, cookie: &[u8]) -> Response<Body> {
    serve(app, request_bytes("/", cookie)).await
}

/// The status of `GET /me` with a bearer token and no `Accept` header.
pub async fn with_bearer(app: &Router, token: &str) -> StatusCode {
    serve(app, bearer_without_accept("/me", token))
        .await
        .status()
}

/// The status of `GET /me` sending `cookie` (`Accept: application/json`). Same request as
/// [`status`].
pub async fn with_cookie(app: &Router, cookie: &str) -> StatusCode {
    status(app, cookie).await
}

/// A provider's back-channel logout ([`logout_token_request`]) served by `app`.
pub async fn post_logout_token(app: &Router, token: &str) -> Response<Body> {
    serve(app, logout_token_request(token)).await
}

/// Requests `GET /me` with `cookie` `rounds` times, each answered 200: the first request opens
/// the cookie and makes the cache entry, the second finds it by fingerprint, the third copies it
/// into the table of recently repeated cookies, and later ones are answered from there.
pub async fn warm(s: &Setup, cookie: &str, rounds: usize) {
    for _ in 0..rounds {
        assert_eq!(status(&s.app, cookie).await, StatusCode::OK);
    }
}

// ---- Sessions without the flow --------------------------------------------------------------

/// A session cookie header of `user` without a refresh token (an expired access token is not
/// renewed).
pub fn session_no_rt(s: &Setup, user: &TestUser) -> String {
    let at = s.provider.access_token(user);
    let id = s.provider.id_token(user, None);
    s.provider
        .session_cookie_with_tokens(&s.auth, &at, None, &id)
}

/// [`session_no_rt`] of a user with only a `sub`.
pub fn session_of(s: &Setup, sub: &str) -> String {
    session_no_rt(s, &TestUser::new(sub))
}

/// `(name, value, rest)` of a `Cookie` header made by `session_cookie*` (the session cookie
/// comes first).
pub fn split_session(cookie: &str) -> (String, String, String) {
    let (session, rest) = cookie.split_once("; ").unwrap_or((cookie, ""));
    let (name, value) = session.split_once('=').unwrap();
    (name.to_owned(), value.to_owned(), rest.to_owned())
}

/// The status of `GET /me` with a bearer token, as an API client (`Accept: application/json`).
pub async fn with_bearer_json(app: &Router, token: &str) -> StatusCode {
    serve(app, bearer("/me", token)).await.status()
}

/// A link on the app's own page, followed by the user (a same-origin top-level navigation).
pub fn same_origin_link(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::ACCEPT, "text/html")
        .header("sec-fetch-site", "same-origin")
        .header("sec-fetch-mode", "navigate")
        .body(Body::empty())
        .unwrap()
}

/// A cross-site top-level navigation from a page at `referer` (another site sends the browser
/// to `uri`).
pub fn cross_site_navigation(uri: &str, referer: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::ACCEPT, "text/html")
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .header(header::REFERER, referer)
        .body(Body::empty())
        .unwrap()
}
