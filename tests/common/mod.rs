//! Shared test helpers: a provider, a layered axum app, and a tiny browser cookie jar.
#![allow(dead_code, unreachable_pub)]

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
    let clock = ManualClock::starting_now();
    let provider = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    let auth = tweak(provider.layer_builder(REDIRECT))
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
}

/// A cookie jar that behaves like a browser for name, path and deletion.
#[derive(Default, Clone, Debug)]
pub struct Jar {
    pub cookies: Vec<StoredCookie>,
}

#[derive(Clone, Debug)]
pub struct StoredCookie {
    pub name: String,
    pub value: String,
    pub path: String,
    pub attrs: String,
}

impl Jar {
    pub fn absorb(&mut self, resp: &Response<Body>) {
        for v in resp.headers().get_all(header::SET_COOKIE) {
            let s = v.to_str().unwrap().to_owned();
            let mut parts = s.split(';');
            let (name, value) = parts.next().unwrap().split_once('=').unwrap();
            let mut path = "/".to_owned();
            let mut delete = false;
            for a in parts {
                let a = a.trim();
                if let Some(p) = a.strip_prefix("Path=") {
                    path = p.to_owned();
                }
                if a == "Max-Age=0" {
                    delete = true;
                }
            }
            self.cookies.retain(|c| !(c.name == name && c.path == path));
            if !delete {
                self.cookies.push(StoredCookie {
                    name: name.to_owned(),
                    value: value.to_owned(),
                    path,
                    attrs: s.clone(),
                });
            }
        }
    }

    pub fn header_for(&self, path: &str) -> String {
        self.cookies
            .iter()
            .filter(|c| {
                c.path == "/" || path == c.path || path.starts_with(&format!("{}/", c.path))
            })
            .map(|c| format!("{}={}", c.name, c.value))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn get(&self, name_suffix: &str) -> Option<&StoredCookie> {
        self.cookies.iter().find(|c| c.name.ends_with(name_suffix))
    }

    pub fn tx(&self) -> Option<&StoredCookie> {
        self.cookies.iter().find(|c| c.name.contains("_tx_"))
    }

    pub fn names(&self) -> Vec<String> {
        self.cookies.iter().map(|c| c.name.clone()).collect()
    }
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
    Request::get("/auth/logout")
        .header(header::ACCEPT, "text/html")
        .header("sec-fetch-site", "same-origin")
        .header("sec-fetch-mode", "navigate")
        .body(Body::empty())
        .unwrap()
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
