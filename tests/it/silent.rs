//! Silent login (`AuthLayer::attempt_silent_login`): a browser navigation without a session is
//! sent once to a `prompt=none` login; the provider's single sign-on signs it in, and
//! `login_required` brings it back anonymous, without an error page or a loop.

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{header, Request, StatusCode};
use tower_oidc_auth::testing::TestProvider;
use tower_oidc_auth::{AuthLayer, Claims};

use crate::helpers::*;

/// A public page (`/` and `/page`, GET and POST) behind silent login.
fn silent_app(auth: &AuthLayer) -> Router {
    let page = |c: Option<Claims>| async move {
        match c {
            Some(c) => format!("hello {}", c.sub),
            None => "anonymous".to_owned(),
        }
    };
    Router::new()
        .route("/", get(page).post(page))
        .route("/page", get(page))
        .layer(auth.attempt_silent_login())
        .layer(auth.clone())
}

/// The login route a silent attempt for `path_and_query` redirects to.
fn silent_login_to(path_and_query: &str) -> String {
    format!(
        "/auth/login?prompt=none&return_to={}",
        urlencode(path_and_query)
    )
}

/// The provider's authorize URL the login route sent the browser to, checked to ask for
/// `prompt=none`.
async fn start_silent(app: &Router, jar: &mut Jar, login: &str) -> String {
    // The browser follows the layer's redirect: fetch metadata of a navigation that may have
    // started on another site.
    let resp = send(
        app,
        jar,
        cross_site_navigation(login, "https://elsewhere.example/"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let authorize = location(&resp);
    assert_eq!(
        values(&query_of(&authorize), "prompt"),
        vec!["none".to_owned()],
        "prompt=none honoured from a cross-site navigation: {authorize}"
    );
    assert!(jar.tx().is_some(), "a login transaction was started");
    authorize
}

#[tokio::test]
async fn silent_login_falls_back_without_a_loop_when_the_provider_says_login_required() {
    // The provider's configured user stands for an interactive login: prompt=none cannot use
    // it, so there is no single sign-on session here.
    let s = setup().await;
    let app = silent_app(&s.auth);
    let mut jar = Jar::default();

    // 1. A first page load without a session: to a silent login, with the "tried" cookie.
    let resp = send(&app, &mut jar, get_html("/page?x=1")).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let login = location(&resp);
    assert_eq!(login, silent_login_to("/page?x=1"));
    let tried = jar
        .get("_silent")
        .expect("the tried cookie")
        .attrs()
        .clone();
    assert!(tried.http_only().unwrap_or(false));
    assert_eq!(tried.same_site(), Some(cookie::SameSite::Lax));
    assert_eq!(tried.path(), Some("/"));
    assert_eq!(
        tried.max_age(),
        Some(cookie::time::Duration::seconds(600)),
        "Max-Age: the login timeout"
    );

    // 2. Login, provider, callback with error=login_required.
    let authorize = start_silent(&app, &mut jar, &login).await;
    let (callback, _) = authorize_with(&authorize, None).await;
    assert_eq!(
        values(&query_of(&format!("http://x{callback}")), "error"),
        vec!["login_required".to_owned()]
    );
    let resp = send(&app, &mut jar, get_html(&callback)).await;

    // 3. Back to the page: a redirect, not an error page; no session, transaction cleared.
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(location(&resp), "/page?x=1");
    assert!(jar.tx().is_none(), "the transaction cookie was cleared");
    assert!(jar.get("_s").is_none(), "no session");

    // 4. The same page again: anonymous, no second attempt.
    let resp = send(&app, &mut jar, get_html("/page?x=1")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_string(resp).await, "anonymous");
    let resp = send(&app, &mut jar, get_html("/")).await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "tried once per browser, not per page"
    );
    assert_eq!(s.provider.counts().code_grants, 0);
}

#[tokio::test]
async fn a_silent_attempt_ends_on_the_error_page_for_other_provider_errors() {
    let s = setup().await;
    let app = silent_app(&s.auth);
    let mut jar = Jar::default();
    let resp = send(&app, &mut jar, get_html("/page")).await;
    let authorize = start_silent(&app, &mut jar, &location(&resp)).await;
    let state = values(&query_of(&authorize), "state").remove(0);
    let callback = format!(
        "/auth/callback?error=server_error&state={}&iss={}",
        urlencode(&state),
        urlencode(s.provider.issuer())
    );
    let resp = send(&app, &mut jar, get_html(&callback)).await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn an_interactive_login_that_gets_login_required_keeps_the_error_page() {
    // Only a silent attempt falls back: the same answer to a plain login is an error.
    let s = setup().await;
    let app = silent_app(&s.auth);
    let mut jar = Jar::default();
    let state = login_attempt(&app, &mut jar).await;
    let callback = format!(
        "/auth/callback?error=login_required&state={}&iss={}",
        urlencode(&state),
        urlencode(s.provider.issuer())
    );
    let resp = send(&app, &mut jar, get_html(&callback)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn silent_login_signs_in_a_browser_signed_in_to_another_app_of_the_provider() {
    let provider = TestProvider::builder()
        .user(user())
        .client_id("app-a")
        .client_secret("secret-a")
        .client("app-b", "secret-b", None)
        .start()
        .await;
    let layer = |id: &str, secret: &str| {
        provider
            .layer_builder(REDIRECT)
            .client_id(id)
            .client_secret(secret)
    };
    let auth_a = layer("app-a", "secret-a").build().await.unwrap();
    let auth_b = layer("app-b", "secret-b").build().await.unwrap();
    let (a, b) = (silent_app(&auth_a), silent_app(&auth_b));
    let mut jar = Jar::default(); // one browser, both apps

    // Sign in to app A: the provider starts its single sign-on session.
    let resp = send(&a, &mut jar, get_html("/auth/login")).await;
    let (callback, sso) = authorize_with(&location(&resp), None).await;
    let sso = sso.expect("the provider's session cookie");
    assert_eq!(
        send(&a, &mut jar, get_html(&callback)).await.status(),
        StatusCode::FOUND
    );

    // The first page load of app B: silently signed in, back on the page.
    let resp = send(&b, &mut jar, get_html("/page")).await;
    assert_eq!(location(&resp), silent_login_to("/page"));
    let authorize = start_silent(&b, &mut jar, &location(&resp)).await;
    let (callback, _) = authorize_with(&authorize, Some(&sso)).await;
    let resp = send(&b, &mut jar, get_html(&callback)).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(location(&resp), "/page");
    let resp = send(&b, &mut jar, get_html("/page")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_string(resp).await, "hello usr_42");
    assert_eq!(provider.counts().code_grants, 2);
}

#[tokio::test]
async fn silent_login_never_redirects_apis_bearer_post_grpc_frames_or_sessions() {
    let s = setup().await;
    let app = silent_app(&s.auth);
    let html = || {
        Request::get("/page")
            .header(header::ACCEPT, "text/html")
            .header("sec-fetch-site", "none")
    };
    let session = s.provider.session_cookie(&s.auth, &user());
    let token = s.provider.access_token(&user());
    let cases: Vec<(&str, Request<Body>)> = vec![
        ("JSON API", get_json("/page")),
        (
            "XHR",
            html()
                .header("x-requested-with", "XMLHttpRequest")
                .body(Body::empty())
                .unwrap(),
        ),
        (
            "fetch()",
            html()
                .header("sec-fetch-mode", "cors")
                .header("sec-fetch-dest", "empty")
                .body(Body::empty())
                .unwrap(),
        ),
        (
            "iframe",
            html()
                .header("sec-fetch-mode", "navigate")
                .header("sec-fetch-dest", "iframe")
                .body(Body::empty())
                .unwrap(),
        ),
        (
            "bearer",
            html()
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        ),
        (
            "other Authorization",
            html()
                .header(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")
                .body(Body::empty())
                .unwrap(),
        ),
        (
            "POST form",
            Request::post("/")
                .header(header::ACCEPT, "text/html")
                .body(Body::empty())
                .unwrap(),
        ),
        (
            "HEAD",
            Request::head("/page")
                .header(header::ACCEPT, "text/html")
                .body(Body::empty())
                .unwrap(),
        ),
        (
            "gRPC",
            Request::post("/")
                .header(header::CONTENT_TYPE, "application/grpc")
                .header("te", "trailers")
                .body(Body::empty())
                .unwrap(),
        ),
        (
            "signed in",
            request_accepting("/page", &session, "text/html"),
        ),
    ];
    for (what, req) in cases {
        let resp = send(&app, &mut Jar::default(), req).await;
        let to = resp
            .headers()
            .get(header::LOCATION)
            .map(|l| l.to_str().unwrap().to_owned());
        assert!(
            !to.as_deref().unwrap_or("").contains("prompt=none"),
            "{what}: redirected to {to:?}"
        );
        assert!(
            resp.headers()
                .get_all(header::SET_COOKIE)
                .iter()
                .all(|c| !c.to_str().unwrap().contains("_silent")),
            "{what}: marked as tried"
        );
    }
    // The control: the same navigation without any of those is redirected.
    let resp = send(
        &app,
        &mut Jar::default(),
        html().body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(location(&resp), silent_login_to("/page"));
    let resp = send(&app, &mut Jar::default(), same_origin_link("/")).await;
    assert_eq!(location(&resp), silent_login_to("/"));
}

#[tokio::test]
async fn logging_out_marks_silent_login_as_tried() {
    // Otherwise a provider session that outlives the logout would sign the user straight back
    // in on the next page load.
    let s = setup().await;
    let app = silent_app(&s.auth);
    let mut jar = Jar::default();
    let resp = login(&s, &mut jar, "/auth/login").await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let resp = send(&app, &mut jar, logout_post()).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert!(jar.get("_s").is_none(), "signed out");
    assert!(jar.get("_silent").is_some(), "tried cookie set");
    let resp = send(&app, &mut jar, get_html("/")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_string(resp).await, "anonymous");
}
