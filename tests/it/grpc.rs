//! APIs and gRPC: bearer tokens, guards, a real tonic client against a tonic server.

#[path = "../../examples/greeter/mod.rs"]
mod greeter;

use axum::body::Body;
use axum::routing::get;
use axum::{Json, Router};
use http::{header, Request, StatusCode};
use serde_json::json;
use tonic::Code;
use tower::ServiceExt;
use tower_oidc_auth::testing::{TestProvider, TestUser};
use tower_oidc_auth::{Claims, Clock, Forbidden, RequireRole, RoleName};

use crate::helpers::*;

struct Admin;
impl RoleName for Admin {
    const NAME: &'static str = "admin";
}

fn api(auth: &tower_oidc_auth::AuthLayer) -> Router {
    Router::new()
        .route("/api/me", get(|c: Claims| async move { Json(c) }))
        .route_layer(auth.require())
        .merge(
            Router::new()
                .route("/api/admin", get(|| async { "admin area" }))
                .route_layer(auth.require_role("admin")),
        )
        .merge(
            Router::new()
                .route("/api/write", get(|| async { "written" }))
                .route_layer(auth.require_permission("workspace_data:write")),
        )
        .merge(
            Router::new()
                .route("/api/scoped", get(|| async { "scoped" }))
                .route_layer(auth.require_scope("reports:read")),
        )
        .merge(
            Router::new()
                .route("/api/org", get(|| async { "org" }))
                .route_layer(auth.require_claims(|c| c.oid.as_deref() == Some("org_1"))),
        )
        .route(
            "/api/extract-admin",
            get(|RequireRole(c, ..): RequireRole<Admin>| async move { c.sub.clone() }),
        )
        .route(
            "/api/inline",
            get(|c: Claims| async move {
                c.require_permission("billing:read")?;
                Ok::<_, Forbidden>("billing")
            }),
        )
        .route(
            "/public",
            get(|c: Option<Claims>| async move { format!("{}", c.is_some()) }),
        )
        .layer(auth.clone())
}

#[tokio::test]
async fn bearer_api_routes() {
    let s = setup().await;
    let app = api(&s.auth);
    let token = s.provider.access_token(&user());

    // No token: 401 JSON.
    let resp = app.clone().oneshot(get_json("/api/me")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()[header::WWW_AUTHENTICATE], "Bearer");
    // Bad tokens: 401 invalid_token, whatever the route.
    for bad in ["garbage", "", "a.b.c", &format!("{token}x")] {
        let resp = app
            .clone()
            .oneshot(bearer_without_accept("/api/me", bad))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{bad}");
        assert_eq!(
            resp.headers()[header::WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\""
        );
        let body: serde_json::Value = serde_json::from_str(&body_string(resp).await).unwrap();
        assert_eq!(body["error"], "invalid_token");
    }
    // Good token: 200 with claims; no cookies ever set.
    let resp = app
        .clone()
        .oneshot(bearer_without_accept("/api/me", &token))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get(header::SET_COOKIE).is_none());
    let claims: serde_json::Value = serde_json::from_str(&body_string(resp).await).unwrap();
    assert_eq!(claims["sub"], "usr_42");

    // Guards: the user has role admin and permission workspace_data:write, oid org_1.
    for ok in ["/api/admin", "/api/write", "/api/org", "/api/extract-admin"] {
        let resp = app
            .clone()
            .oneshot(bearer_without_accept(ok, &token))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{ok}");
    }
    let plain = s.provider.access_token(&TestUser::new("usr_plain"));
    for denied in [
        "/api/admin",
        "/api/write",
        "/api/scoped",
        "/api/org",
        "/api/extract-admin",
        "/api/inline",
    ] {
        let resp = app
            .clone()
            .oneshot(bearer_without_accept(denied, &plain))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{denied}");
        let body: serde_json::Value = serde_json::from_str(&body_string(resp).await).unwrap();
        assert_eq!(body["error"], "forbidden", "{denied}");
    }
    // Scope from the space-separated `scope` string, and from a `scopes` array.
    let now = s.clock.now();
    let scoped = s
        .provider
        .sign(&json!({"iss": s.provider.issuer(), "aud": "test-client",
        "sub": "svc", "iat": now, "exp": now + 60, "scope": "openid reports:read"}));
    assert_eq!(
        app.clone()
            .oneshot(bearer_without_accept("/api/scoped", &scoped))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let scopes = s
        .provider
        .sign(&json!({"iss": s.provider.issuer(), "aud": "test-client",
        "sub": "svc", "iat": now, "exp": now + 60, "scopes": ["reports:read"]}));
    assert_eq!(
        app.clone()
            .oneshot(bearer_without_accept("/api/scoped", &scopes))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // A browser navigation failing a guard gets a small 403 page.
    let req = Request::get("/api/admin")
        .header(header::ACCEPT, "text/html")
        .header(header::AUTHORIZATION, format!("Bearer {plain}"))
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(body_string(resp).await.contains("Access denied"));
}

#[tokio::test]
async fn bearer_never_redirects_refreshes_or_sets_cookies() {
    let s = setup().await;
    let app = api(&s.auth);
    let token = s.provider.access_token(&user());
    // An expired bearer token, even from a browser and with a session cookie: 401, no refresh.
    s.clock.advance(std::time::Duration::from_secs(400));
    let cookie = s.provider.session_cookie(&s.auth, &user());
    let req = Request::get("/api/me")
        .header(header::ACCEPT, "text/html")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().get(header::SET_COOKIE).is_none());
    assert_eq!(s.provider.counts().token_requests, 0);
}

#[tokio::test]
async fn bearer_can_be_switched_off_and_audiences_configured() {
    let s = setup_with(|c| c.accept_bearer_tokens(false)).await;
    let app = api(&s.auth);
    let token = s.provider.access_token(&user());
    let resp = app
        .clone()
        .oneshot(bearer_without_accept("/api/me", &token))
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "ignored: no session"
    );
    assert_eq!(resp.headers()[header::WWW_AUTHENTICATE], "Bearer");

    let s = setup_with(|c| c.audience("https://api.example.com")).await;
    let app = api(&s.auth);
    let now = s.clock.now();
    let for_api = s.provider.sign(&json!({"iss": s.provider.issuer(),
        "aud": ["https://api.example.com"], "sub": "svc", "iat": now, "exp": now + 60}));
    assert_eq!(
        app.clone()
            .oneshot(bearer_without_accept("/api/me", &for_api))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let other = s.provider.sign(&json!({"iss": s.provider.issuer(),
        "aud": ["https://other.example.com"], "sub": "svc", "iat": now, "exp": now + 60}));
    assert_eq!(
        app.clone()
            .oneshot(bearer_without_accept("/api/me", &other))
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn negotiation_browser_navigation_versus_fetch() {
    let s = setup().await;
    let app = api(&s.auth);
    // Navigation (GET + Accept text/html): redirect to login.
    let resp = app.clone().oneshot(get_html("/api/me")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    // fetch/XHR (Accept */* or JSON), or a POST form: 401.
    for accept in [
        "*/*",
        "application/json",
        "application/json, text/plain, */*",
    ] {
        let req = Request::get("/api/me")
            .header(header::ACCEPT, accept)
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            app.clone().oneshot(req).await.unwrap().status(),
            StatusCode::UNAUTHORIZED,
            "{accept}"
        );
    }
    // Sec-Fetch-Mode: navigate counts as a navigation even without text/html.
    let req = Request::get("/api/me")
        .header("sec-fetch-mode", "navigate")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::FOUND
    );
    let req = Request::get("/api/me")
        .header(header::ACCEPT, "text/html")
        .header("sec-fetch-mode", "cors")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::FOUND
    );
}

#[tokio::test]
async fn grpc_web_uses_the_cookie_session() {
    let s = setup().await;
    let app = api(&s.auth);
    let cookie = s.provider.session_cookie(&s.auth, &user());
    let req = Request::post("/api/me")
        .header(header::CONTENT_TYPE, "application/grpc-web+proto")
        .header(header::COOKIE, &cookie)
        .body(Body::empty())
        .unwrap();
    // Reaches the handler (axum answers 405 for POST on a GET route, proving it got past auth).
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let req = Request::post("/api/me")
        .header(header::CONTENT_TYPE, "application/grpc-web+proto")
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.headers()["grpc-status"], "16");
}

/// Serves the example's services behind the layer on 127.0.0.1; returns the address.
async fn serve_grpc(provider: &TestProvider) -> String {
    let auth = provider
        .layer_builder("http://127.0.0.1:1/auth/callback")
        .build()
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(auth.clone())
            .add_service(
                tower::ServiceBuilder::new()
                    .layer(auth.require())
                    .service(greeter::GreeterServer),
            )
            .add_service(
                tower::ServiceBuilder::new()
                    .layer(auth.require_role("admin"))
                    .service(greeter::AdminServer),
            )
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
    addr
}

#[tokio::test]
async fn tonic_client_against_the_protected_service() {
    let provider = TestProvider::start().await;
    let addr = serve_grpc(&provider).await;
    let user_token = provider.access_token(&TestUser::new("usr_ada"));
    let admin_token = provider.access_token(&TestUser::new("usr_root").role("admin"));

    let status = greeter::call(&addr, "/greeter.Greeter/SayHello", "x", None)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "authentication required");

    let status = greeter::call(&addr, "/greeter.Greeter/SayHello", "x", Some("garbage"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "invalid bearer token");

    let reply = greeter::call(&addr, "/greeter.Greeter/SayHello", "Ada", Some(&user_token))
        .await
        .unwrap();
    assert_eq!(reply.message, "Hello Ada, you are usr_ada");

    let status = greeter::call(&addr, "/greeter.Admin/Stats", "x", Some(&user_token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "permission denied: role admin required");

    let reply = greeter::call(&addr, "/greeter.Admin/Stats", "x", Some(&admin_token))
        .await
        .unwrap();
    assert_eq!(reply.message, "stats for admin usr_root");
}
