//! "Why was I refused?" (issue 19): with `explain_refusals(true)` every refusal carries its
//! reason in `x-auth-refusal` and says it in the body; with it off (the default), none does.
//! One scenario per kind of refusal, each run both ways.

use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use http::{header, Request, Response, StatusCode};
use serde_json::Value;
use tower_oidc_auth::hooks::RefreshContext;
use tower_oidc_auth::revocation::RevocationKey;
use tower_oidc_auth::session_store::{MemorySessionStore, SessionStore};
use tower_oidc_auth::testing::{TestProvider, TestUser};
use tower_oidc_auth::{
    AuthLayer, AuthLayerBuilder, Claims, Clock, LoginDecision, ManualClock, RequireRole, RoleName,
};

use crate::helpers::*;

const HEADER: &str = "x-auth-refusal";

struct Admin;
impl RoleName for Admin {
    const NAME: &'static str = "admin";
}

/// One provider, clock and layer, and an app with a route per guard.
struct World {
    provider: TestProvider,
    clock: ManualClock,
    auth: AuthLayer,
    app: Router,
    store: Option<MemorySessionStore>,
}

async fn world(explain: bool, tweak: impl FnOnce(AuthLayerBuilder) -> AuthLayerBuilder) -> World {
    world_in(explain, false, tweak).await
}

async fn world_in(
    explain: bool,
    stored: bool,
    tweak: impl FnOnce(AuthLayerBuilder) -> AuthLayerBuilder,
) -> World {
    let clock = ManualClock::starting_now();
    let provider = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    let store = stored.then(|| MemorySessionStore::with_clock(std::sync::Arc::new(clock.clone())));
    let mut builder = provider
        .layer_builder(REDIRECT)
        .clock(clock.clone())
        .explain_refusals(explain);
    if let Some(store) = &store {
        builder = builder.session_store(store.clone());
    }
    let auth = tweak(builder).build().await.expect("build");
    let app = Router::new()
        .route("/me", get(|c: Claims| async move { Json(c) }))
        .route_layer(auth.require())
        .route(
            "/admin",
            get(|| async { "admin" }).route_layer(auth.require_role("admin")),
        )
        .route(
            "/deploy",
            get(|| async { "deploy" }).route_layer(auth.require_permission("deploy:write")),
        )
        .route(
            "/write",
            get(|| async { "write" }).route_layer(auth.require_scope("write")),
        )
        .route(
            "/org",
            get(|| async { "org" }).route_layer(auth.require_claims(|c| c.oid.is_some())),
        )
        .route(
            "/recent",
            get(|| async { "recent" })
                .route_layer(auth.require_recent_login(Duration::from_secs(60))),
        )
        .route("/extract", get(|c: Claims| async move { c.sub.clone() }))
        .route(
            "/extract-admin",
            get(|RequireRole(c, ..): RequireRole<Admin>| async move { c.sub.clone() }),
        )
        .layer(auth.clone());
    World {
        provider,
        clock,
        auth,
        app,
        store,
    }
}

fn api_get(uri: &str, cookie: Option<&str>, bearer: Option<&str>) -> Request<Body> {
    let mut req = Request::get(uri).header(header::ACCEPT, "application/json");
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie);
    }
    if let Some(token) = bearer {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    req.body(Body::empty()).unwrap()
}

/// The payload of a JWT, decoded (not verified).
fn payload(token: &str) -> serde_json::Map<String, Value> {
    let part = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// An access token of the provider's with `change` applied to its claims, signed with the
/// provider's current key.
fn tampered(w: &World, change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut claims = payload(&w.provider.access_token(&user()));
    change(&mut claims);
    w.provider.sign(&Value::Object(claims))
}

/// What a scenario expects: the refusal's status and header value.
struct Expect {
    status: StatusCode,
    reason: String,
}

fn expect(status: StatusCode, reason: impl Into<String>) -> Expect {
    Expect {
        status,
        reason: reason.into(),
    }
}

/// Runs a scenario with explain on (the header and the body say `reason`) and off (neither
/// says anything, and the status is the same).
async fn both_ways<F, Fut>(scenario: F)
where
    F: Fn(bool) -> Fut,
    Fut: std::future::Future<Output = (Response<Body>, Expect)>,
{
    let (resp, want) = scenario(true).await;
    assert_eq!(resp.status(), want.status);
    let header = resp
        .headers()
        .get(HEADER)
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(header.as_deref(), Some(want.reason.as_str()), "explained");
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.to_str().unwrap().starts_with("application/json"));
    if is_json {
        let body: Value = serde_json::from_str(&body_string(resp).await).unwrap();
        assert_eq!(body["refusal"], Value::from(want.reason.clone()), "{body}");
        assert!(
            body["message"].as_str().unwrap().contains(": "),
            "the body says why in words: {body}"
        );
    }
    let (resp, want) = scenario(false).await;
    assert_eq!(resp.status(), want.status, "the same answer, unexplained");
    assert!(
        resp.headers().get(HEADER).is_none(),
        "explain off: no header"
    );
    let body = body_string(resp).await;
    assert!(
        !body.contains("refusal"),
        "explain off: nothing in the body: {body}"
    );
}

// ---- Sessions --------------------------------------------------------------------------------

#[tokio::test]
async fn no_credentials() {
    both_ways(|explain| async move {
        let w = world(explain, |b| b).await;
        let resp = serve(&w.app, api_get("/me", None, None)).await;
        (resp, expect(StatusCode::UNAUTHORIZED, "no_credentials"))
    })
    .await;
}

#[tokio::test]
async fn no_credentials_at_an_extractor() {
    both_ways(|explain| async move {
        let w = world(explain, |b| b).await;
        let resp = serve(&w.app, api_get("/extract", None, None)).await;
        (resp, expect(StatusCode::UNAUTHORIZED, "no_credentials"))
    })
    .await;
}

#[tokio::test]
async fn session_unreadable() {
    both_ways(|explain| async move {
        let w = world(explain, |b| b).await;
        let cookie = format!("{}=bm90LWEtc2Vzc2lvbg", w.auth.session_cookie_name());
        let resp = serve(&w.app, api_get("/me", Some(&cookie), None)).await;
        (resp, expect(StatusCode::UNAUTHORIZED, "session_unreadable"))
    })
    .await;
}

#[tokio::test]
async fn expired_without_a_refresh_token() {
    both_ways(|explain| async move {
        let w = world(explain, |b| b).await;
        let at = w.provider.access_token(&user());
        let exp = payload(&at)["exp"].as_i64().unwrap();
        let id = w.provider.id_token(&user(), None);
        let cookie = w
            .provider
            .session_cookie_with_tokens(&w.auth, &at, None, &id);
        w.clock.advance(Duration::from_secs(3600));
        let resp = serve(&w.app, api_get("/me", Some(&cookie), None)).await;
        (
            resp,
            expect(StatusCode::UNAUTHORIZED, format!("expired_at={exp}")),
        )
    })
    .await;
}

#[tokio::test]
async fn idle_timeout() {
    both_ways(|explain| async move {
        let w = world(explain, |b| {
            b.session_idle_timeout(Duration::from_secs(600))
        })
        .await;
        let begun = w.clock.now();
        let cookie = w.provider.session_cookie(&w.auth, &user());
        w.clock.advance(Duration::from_secs(601));
        let resp = serve(&w.app, api_get("/me", Some(&cookie), None)).await;
        let at = begun + 600;
        (
            resp,
            expect(StatusCode::UNAUTHORIZED, format!("idle_timeout_at={at}")),
        )
    })
    .await;
}

#[tokio::test]
async fn lifetime_ended() {
    both_ways(|explain| async move {
        let w = world(explain, |b| b.session_max_age(Duration::from_secs(3600))).await;
        let begun = w.clock.now();
        let cookie = w.provider.session_cookie(&w.auth, &user());
        w.clock.advance(Duration::from_secs(3601));
        let resp = serve(&w.app, api_get("/me", Some(&cookie), None)).await;
        let at = begun + 3600;
        (
            resp,
            expect(StatusCode::UNAUTHORIZED, format!("lifetime_ended_at={at}")),
        )
    })
    .await;
}

#[tokio::test]
async fn revoked() {
    both_ways(|explain| async move {
        let w = world(explain, |b| b).await;
        let cookie = w.provider.session_cookie(&w.auth, &user());
        w.clock.advance(Duration::from_secs(10));
        let at = w.clock.now();
        let key = RevocationKey::subject(w.provider.issuer(), "usr_42");
        w.auth
            .revocation_store()
            .revoke(key, at, Duration::from_secs(86_400))
            .await
            .unwrap();
        let resp = serve(&w.app, api_get("/me", Some(&cookie), None)).await;
        (
            resp,
            expect(StatusCode::UNAUTHORIZED, format!("revoked_at={at}")),
        )
    })
    .await;
}

#[tokio::test]
async fn refresh_refused() {
    both_ways(|explain| async move {
        let w = world(explain, |b| b).await;
        let at = w.provider.access_token(&user());
        let id = w.provider.id_token(&user(), None);
        let cookie = w.provider.session_cookie_with_tokens(
            &w.auth,
            &at,
            Some("rt-the-provider-never-issued"),
            &id,
        );
        w.clock.advance(Duration::from_secs(3600));
        let resp = serve(&w.app, api_get("/me", Some(&cookie), None)).await;
        (resp, expect(StatusCode::UNAUTHORIZED, "refresh_refused"))
    })
    .await;
}

#[tokio::test]
async fn ended_by_the_refresh_hook() {
    both_ways(|explain| async move {
        let w = world(explain, |b| {
            b.on_refresh(|_: RefreshContext| async {
                Ok(LoginDecision::Deny {
                    reason: "account disabled".into(),
                })
            })
        })
        .await;
        let cookie = w.provider.session_cookie(&w.auth, &user());
        w.clock.advance(Duration::from_secs(3600));
        let resp = serve(&w.app, api_get("/me", Some(&cookie), None)).await;
        (resp, expect(StatusCode::UNAUTHORIZED, "ended_by_hook"))
    })
    .await;
}

#[tokio::test]
async fn stored_session_gone() {
    both_ways(|explain| async move {
        let w = world_in(explain, true, |b| b).await;
        let cookie = w
            .provider
            .stored_session_cookie(&w.auth, &user())
            .await
            .unwrap();
        let store = w.store.as_ref().unwrap();
        let index = format!(
            "{}|{}|usr_42",
            w.auth.session_cookie_name(),
            w.provider.issuer()
        );
        assert_eq!(store.delete_by_sub(&index).await.unwrap(), 1);
        let resp = serve(&w.app, api_get("/me", Some(&cookie), None)).await;
        (resp, expect(StatusCode::UNAUTHORIZED, "session_gone"))
    })
    .await;
}

// ---- Bearer tokens ---------------------------------------------------------------------------

#[tokio::test]
async fn malformed_token() {
    both_ways(|explain| async move {
        let w = world(explain, |b| b).await;
        let resp = serve(&w.app, api_get("/me", None, Some("x.y.z"))).await;
        (resp, expect(StatusCode::UNAUTHORIZED, "malformed_token"))
    })
    .await;
}

#[tokio::test]
async fn unknown_kid() {
    both_ways(|explain| async move {
        let w = world(explain, |b| b).await;
        let claims = Value::Object(payload(&w.provider.access_token(&user())));
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "no-such-key"});
        let token = w.provider.sign_with_header(&header, &claims);
        let resp = serve(&w.app, api_get("/me", None, Some(&token))).await;
        (resp, expect(StatusCode::UNAUTHORIZED, "unknown_kid"))
    })
    .await;
}

#[tokio::test]
async fn bad_signature() {
    both_ways(|explain| async move {
        let w = world(explain, |b| b).await;
        let claims = Value::Object(payload(&w.provider.access_token(&user())));
        let header =
            serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": w.provider.current_kid()});
        let token = w.provider.sign_with_unpublished_key(&header, &claims);
        let resp = serve(&w.app, api_get("/me", None, Some(&token))).await;
        (resp, expect(StatusCode::UNAUTHORIZED, "bad_signature"))
    })
    .await;
}

#[tokio::test]
async fn audience_mismatch() {
    both_ways(|explain| async move {
        let w = world(explain, |b| b).await;
        let token = tampered(&w, |c| {
            c.insert("aud".into(), Value::from("https://another-api.example"));
            c.insert("client_id".into(), Value::from("another-client"));
            c.remove("azp");
        });
        let resp = serve(&w.app, api_get("/me", None, Some(&token))).await;
        (resp, expect(StatusCode::UNAUTHORIZED, "audience_mismatch"))
    })
    .await;
}

#[tokio::test]
async fn issuer_mismatch() {
    both_ways(|explain| async move {
        let w = world(explain, |b| b).await;
        let token = tampered(&w, |c| {
            c.insert("iss".into(), Value::from("https://evil.example"));
        });
        let resp = serve(&w.app, api_get("/me", None, Some(&token))).await;
        (resp, expect(StatusCode::UNAUTHORIZED, "issuer_mismatch"))
    })
    .await;
}

#[tokio::test]
async fn token_expired() {
    both_ways(|explain| async move {
        let w = world(explain, |b| b).await;
        let token = w.provider.access_token(&user());
        w.clock.advance(Duration::from_secs(3600));
        let resp = serve(&w.app, api_get("/me", None, Some(&token))).await;
        (resp, expect(StatusCode::UNAUTHORIZED, "token_expired"))
    })
    .await;
}

#[tokio::test]
async fn token_refused_by_another_check() {
    both_ways(|explain| async move {
        let w = world(explain, |b| b).await;
        let now = w.clock.now();
        let token = tampered(&w, |c| {
            c.insert("nbf".into(), Value::from(now + 3600));
        });
        let resp = serve(&w.app, api_get("/me", None, Some(&token))).await;
        (
            resp,
            expect(StatusCode::UNAUTHORIZED, "token_refused=not_yet_valid"),
        )
    })
    .await;
}

// ---- Guards ----------------------------------------------------------------------------------

#[tokio::test]
async fn missing_role() {
    both_ways(|explain| async move {
        let w = world(explain, |b| b).await;
        let cookie = w.provider.session_cookie(&w.auth, &TestUser::new("usr_42"));
        let resp = serve(&w.app, api_get("/admin", Some(&cookie), None)).await;
        (resp, expect(StatusCode::FORBIDDEN, "missing_role=admin"))
    })
    .await;
}

#[tokio::test]
async fn missing_role_at_an_extractor() {
    both_ways(|explain| async move {
        let w = world(explain, |b| b).await;
        let cookie = w.provider.session_cookie(&w.auth, &TestUser::new("usr_42"));
        let resp = serve(&w.app, api_get("/extract-admin", Some(&cookie), None)).await;
        (resp, expect(StatusCode::FORBIDDEN, "missing_role=admin"))
    })
    .await;
}

#[tokio::test]
async fn missing_permission() {
    both_ways(|explain| async move {
        let w = world(explain, |b| b).await;
        let cookie = w.provider.session_cookie(&w.auth, &TestUser::new("usr_42"));
        let resp = serve(&w.app, api_get("/deploy", Some(&cookie), None)).await;
        (
            resp,
            expect(StatusCode::FORBIDDEN, "missing_permission=deploy:write"),
        )
    })
    .await;
}

#[tokio::test]
async fn missing_scope() {
    both_ways(|explain| async move {
        let w = world(explain, |b| b).await;
        let cookie = w.provider.session_cookie(&w.auth, &TestUser::new("usr_42"));
        let resp = serve(&w.app, api_get("/write", Some(&cookie), None)).await;
        (resp, expect(StatusCode::FORBIDDEN, "missing_scope=write"))
    })
    .await;
}

#[tokio::test]
async fn missing_a_custom_requirement() {
    both_ways(|explain| async move {
        let w = world(explain, |b| b).await;
        let cookie = w.provider.session_cookie(&w.auth, &TestUser::new("usr_42"));
        let resp = serve(&w.app, api_get("/org", Some(&cookie), None)).await;
        (
            resp,
            expect(StatusCode::FORBIDDEN, "missing=access to this resource"),
        )
    })
    .await;
}

#[tokio::test]
async fn step_up_required() {
    both_ways(|explain| async move {
        let w = world(explain, |b| b).await;
        let cookie = w.provider.session_cookie(&w.auth, &user());
        // Past the 60 s asked for, and the verifier's leeway.
        w.clock.advance(Duration::from_secs(200));
        let resp = serve(&w.app, api_get("/recent", Some(&cookie), None)).await;
        (resp, expect(StatusCode::UNAUTHORIZED, "step_up_required"))
    })
    .await;
}

/// A browser is redirected to login, with the reason in the header.
#[tokio::test]
async fn a_redirect_to_login_carries_the_reason() {
    both_ways(|explain| async move {
        let w = world(explain, |b| b).await;
        let req = Request::get("/me")
            .header(header::ACCEPT, "text/html")
            .body(Body::empty())
            .unwrap();
        let resp = serve(&w.app, req).await;
        (resp, expect(StatusCode::FOUND, "no_credentials"))
    })
    .await;
}

/// gRPC: the reason in `grpc-message` as well as the header.
#[tokio::test]
async fn a_grpc_refusal_says_why_in_its_message() {
    let w = world(true, |b| b).await;
    let req = Request::post("/me")
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::AUTHORIZATION, "Bearer x.y.z")
        .body(Body::empty())
        .unwrap();
    let resp = serve(&w.app, req).await;
    assert_eq!(resp.headers()[HEADER], "malformed_token");
    let message = resp.headers()["grpc-message"].to_str().unwrap().to_owned();
    assert!(message.contains("JWT"), "{message}");
}

/// A reason never carries token material or a value that identifies the user.
#[tokio::test]
async fn a_reason_names_no_user_and_no_token() {
    let w = world(true, |b| b).await;
    let at = w.provider.access_token(&user());
    let id = w.provider.id_token(&user(), None);
    let cookie = w
        .provider
        .session_cookie_with_tokens(&w.auth, &at, None, &id);
    w.clock.advance(Duration::from_secs(3600));
    let resp = serve(&w.app, api_get("/me", Some(&cookie), None)).await;
    let header = resp.headers()[HEADER].to_str().unwrap().to_owned();
    let body = body_string(resp).await;
    for secret in [at.as_str(), id.as_str(), "usr_42", "sid-test"] {
        assert!(
            !header.contains(secret) && !body.contains(secret),
            "{header} {body}"
        );
    }
}
