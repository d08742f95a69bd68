//! Shared test helpers: a provider, a layered axum app, a tiny browser cookie jar ([`Jar`]),
//! request builders ([`requests`]), parsed `Set-Cookie` headers ([`set_cookie`]), signed
//! webhooks ([`webhook`]) and small encoders ([`encoding`]).
//!
//! Used by every module of the `it` binary, and by `tests/soak.rs`, `tests/redis.rs` and
//! `tests/no_leaks.rs` through `#[path]`; each uses a part, hence `dead_code`.
#![allow(dead_code, unreachable_pub)]

pub mod encoding;
pub mod jar;
pub mod requests;
pub mod set_cookie;
pub mod webhook;

// Re-exported for `use crate::helpers::*`; the binaries outside `it` (soak, redis, no_leaks) use
// a part only.
#[allow(unused_imports)]
pub use {encoding::*, jar::*, requests::*, set_cookie::*, webhook::*};

use axum::body::Body;
use axum::routing::get;
use axum::{Json, Router};
use http::{header, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_oidc_auth::testing::{TestProvider, TestUser};
use tower_oidc_auth::{AuthLayer, AuthLayerBuilder, Claims, ManualClock};

pub const REDIRECT: &str = "http://127.0.0.1:3000/auth/callback";

pub struct Setup {
    pub provider: TestProvider,
    pub auth: AuthLayer,
    pub app: Router,
    pub clock: ManualClock,
}

pub fn user() -> TestUser {
    TestUser::new("usr_42")
        .email("ada@example.com")
        .name("Ada")
        .role("admin")
        .permission("workspace_data:write")
        .organization("org_1")
}

pub async fn setup() -> Setup {
    setup_with(|c| c).await
}

pub async fn setup_with(tweak: impl FnOnce(AuthLayerBuilder) -> AuthLayerBuilder) -> Setup {
    setup_in(Sessions::Cookies, tweak).await
}

/// Where a suite's sessions live: the flow, refresh, back-channel and multi-app suites run in
/// both modes (`crate::flow` and `crate::in_store::flow`, ...), each module reading its
/// `super::SESSIONS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sessions {
    /// In sealed cookies (no store).
    Cookies,
    /// In a `MemorySessionStore`, the cookie holding only an id.
    Store,
}

impl Sessions {
    /// `builder` with its sessions where this mode keeps them.
    pub fn apply(self, builder: AuthLayerBuilder, clock: Option<&ManualClock>) -> AuthLayerBuilder {
        match self {
            Sessions::Cookies => builder,
            Sessions::Store => {
                let store = match clock {
                    Some(clock) => tower_oidc_auth::session_store::MemorySessionStore::with_clock(
                        std::sync::Arc::new(clock.clone()),
                    ),
                    None => tower_oidc_auth::session_store::MemorySessionStore::new(),
                };
                builder.session_store(store)
            }
        }
    }
}

/// [`setup_with`], with the sessions where `mode` keeps them.
pub async fn setup_in(
    mode: Sessions,
    tweak: impl FnOnce(AuthLayerBuilder) -> AuthLayerBuilder,
) -> Setup {
    let clock = ManualClock::starting_now();
    let provider = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    let auth = tweak(mode.apply(provider.layer_builder(REDIRECT), Some(&clock)))
        .build()
        .await
        .expect("build");
    let app = app(&auth);
    Setup {
        provider,
        auth,
        app,
        clock,
    }
}

/// A provider on a manual clock whose JWKS carries `max_age` (`None`: no Cache-Control), with
/// or without key ids, and a layer built on it.
pub async fn setup_with_jwks(max_age: Option<u64>, key_ids: bool) -> Setup {
    let clock = ManualClock::starting_now();
    let provider = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    provider.set_jwks_max_age(max_age);
    provider.set_key_ids(key_ids);
    let auth = provider
        .layer_builder(REDIRECT)
        .build()
        .await
        .expect("build");
    let app = app(&auth);
    Setup {
        provider,
        auth,
        app,
        clock,
    }
}

pub fn app(auth: &AuthLayer) -> Router {
    Router::new()
        .route("/me", get(|c: Claims| async move { Json(c) }))
        .route_layer(auth.require())
        .route(
            "/",
            get(|c: Option<Claims>| async move {
                match c {
                    Some(c) => format!("hello {}", c.sub),
                    None => "anonymous".to_owned(),
                }
            }),
        )
        .route("/extract", get(|c: Claims| async move { c.sub.clone() }))
        .route(
            "/jti",
            get(|c: Option<Claims>| async move {
                c.and_then(|c| c.get::<String>("jti")).unwrap_or_default()
            }),
        )
        .layer(auth.clone())
        .layer(axum::middleware::map_response(unexplained))
}

/// Refusals are not explained unless asked (`explain_refusals`, off in every suite built on
/// [`app`]): no answer of the whole adversarial suite may carry a reason.
async fn unexplained(resp: axum::response::Response) -> axum::response::Response {
    assert!(
        !resp.headers().contains_key("x-auth-refusal"),
        "a refusal explained without explain_refusals: {:?}",
        resp.headers().get("x-auth-refusal")
    );
    resp
}

pub async fn send(app: &Router, jar: &mut Jar, req: Request<Body>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let mut req = req;
    let cookie = jar.header_for(&path);
    if !cookie.is_empty() {
        req.headers_mut()
            .insert(header::COOKIE, cookie.parse().unwrap());
    }
    let resp = app.clone().oneshot(req).await.unwrap();
    jar.absorb(&resp);
    resp
}

pub fn get_html(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::ACCEPT, "text/html")
        .body(Body::empty())
        .unwrap()
}

/// What a browser sends when the user follows the app's own `<a href="/auth/logout">`.
pub fn logout_link() -> Request<Body> {
    same_origin_link("/auth/logout")
}

pub fn get_json(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::ACCEPT, "application/json")
        .body(Body::empty())
        .unwrap()
}

pub fn location(resp: &Response<Body>) -> String {
    resp.headers()
        .get(header::LOCATION)
        .expect("location")
        .to_str()
        .unwrap()
        .to_owned()
}

pub async fn body_string(resp: Response<Body>) -> String {
    String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

/// Follows the authorize redirect at the (real HTTP) provider and returns the callback URI
/// (path and query) the provider redirected back to.
pub async fn authorize(authorize_url: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client.get(authorize_url).send().await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "provider did not redirect"
    );
    let loc = resp.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let url = url::Url::parse(&loc).unwrap();
    format!("{}?{}", url.path(), url.query().unwrap_or(""))
}

/// Logs in through the whole flow; returns the response of the callback.
pub async fn login(s: &Setup, jar: &mut Jar, login_uri: &str) -> Response<Body> {
    let resp = send(&s.app, jar, get_html(login_uri)).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let callback = authorize(&location(&resp)).await;
    send(&s.app, jar, get_html(&callback)).await
}

/// Logs in through the whole flow (a fresh provider session each time); returns the jar and the
/// session's provider `sid`.
pub async fn session_with_sid(s: &Setup) -> (Jar, String) {
    let mut jar = Jar::default();
    assert_eq!(
        login(s, &mut jar, "/auth/login").await.status(),
        StatusCode::FOUND
    );
    let resp = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let claims: serde_json::Value = serde_json::from_str(&body_string(resp).await).unwrap();
    (jar, claims["sid"].as_str().expect("sid").to_owned())
}

/// Follows the authorize redirect at the provider as a browser does, sending the provider's
/// single sign-on cookie if given; returns the callback URI and the provider's single sign-on
/// cookie (`name=value`), if it set one.
pub async fn authorize_with(url: &str, sso: Option<&str>) -> (String, Option<String>) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = client.get(url);
    if let Some(c) = sso {
        req = req.header(header::COOKIE, c);
    }
    let resp = req.send().await.unwrap();
    let cookie = resp.headers().get(header::SET_COOKIE).map(|v| {
        let c = parse_set_cookie(v.to_str().unwrap());
        format!("{}={}", c.name(), c.value())
    });
    let loc = url::Url::parse(resp.headers()[header::LOCATION].to_str().unwrap()).unwrap();
    (
        format!("{}?{}", loc.path(), loc.query().unwrap_or("")),
        cookie,
    )
}

/// Logs in through the whole flow; returns the jar plus the access token's `jti`.
pub async fn signed_in(s: &Setup) -> (Jar, String) {
    let mut jar = Jar::default();
    let resp = login(s, &mut jar, "/auth/login").await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let jti = body_string(send(&s.app, &mut jar, get_json("/jti")).await).await;
    assert!(!jti.is_empty());
    (jar, jti)
}

/// The status of `GET /me` sent through the jar.
pub async fn me(s: &Setup, jar: &mut Jar) -> StatusCode {
    send(&s.app, jar, get_json("/me")).await.status()
}

/// `POST /auth/logout` from the app's own page (`Origin` the app's, `Sec-Fetch-Site:
/// same-origin`).
pub fn logout_post() -> Request<Body> {
    Request::post("/auth/logout")
        .header(header::ACCEPT, "text/html")
        .header(header::ORIGIN, "http://127.0.0.1:3000")
        .header("sec-fetch-site", "same-origin")
        .body(Body::empty())
        .unwrap()
}

/// `POST /auth/logout` with this `Origin` and no `Sec-Fetch-*` headers (what the confirmation
/// page's button sends from a browser that sends none).
pub fn logout_post_from(origin: &str) -> Request<Body> {
    Request::post("/auth/logout")
        .header(header::ACCEPT, "text/html")
        .header(header::ORIGIN, origin)
        .body(Body::empty())
        .unwrap()
}

/// A layer whose verified-token cache and verified-session cache hold one entry each.
pub async fn tiny_caches() -> Setup {
    setup_with(|c| c.verified_cache_capacity(1).session_cache_capacity(1)).await
}

/// A layer whose verified-token cache holds one entry (the session cache keeps its default).
pub async fn tiny_verified_cache() -> Setup {
    setup_with(|c| c.verified_cache_capacity(1)).await
}

/// Entries in the layer's signature memo.
pub fn memo_len(auth: &AuthLayer) -> usize {
    auth.cache_stats().signature_memo
}

/// Starts a login in `jar` as a browser would and returns its `state`: a callback with this
/// state (and the jar's cookies) is this browser's own attempt, the only one whose provider
/// error text the layer shows.
pub async fn login_attempt(app: &Router, jar: &mut Jar) -> String {
    let resp = send(app, jar, get_html("/auth/login")).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = location(&resp);
    url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state in the authorize URL")
}
