//! Attack 11: the observability features. Explained refusals (`x-auth-refusal`, the sentence in
//! the layer's JSON/HTML/gRPC answers): wrong reasons, missing headers, leaks and injection.
//! Each test asserts the secure or correct behaviour: a failing test is a defect. The
//! recorder-based metric attacks are in `tests/attack_metrics.rs`.

use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use http::{header, Request, Response, StatusCode};
use serde_json::Value;
use tower_oidc_auth::testing::{TestProvider, TestUser};
use tower_oidc_auth::{AuthLayer, AuthLayerBuilder, Claims, Clock, Forbidden, ManualClock};

use crate::helpers::*;

const HEADER: &str = "x-auth-refusal";
/// What an attacker writes into the values it controls, to look for afterwards.
const MARK: &str = "LEAKME";

struct World {
    provider: TestProvider,
    clock: ManualClock,
    auth: AuthLayer,
    app: Router,
}

async fn world(explain: bool, tweak: impl FnOnce(AuthLayerBuilder) -> AuthLayerBuilder) -> World {
    let clock = ManualClock::starting_now();
    let provider = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    let builder = provider
        .layer_builder(REDIRECT)
        .clock(clock.clone())
        .explain_refusals(explain);
    let auth = tweak(builder).build().await.expect("build");
    let app = routes(&auth);
    World {
        provider,
        clock,
        auth,
        app,
    }
}

fn routes(auth: &AuthLayer) -> Router {
    Router::new()
        .route(
            "/me",
            get(|c: Claims| async move { Json(c) }).post(|c: Claims| async move { Json(c) }),
        )
        .route_layer(auth.require())
        .route("/handler-role", get(handler_role).post(handler_role))
        .route(
            "/crlf",
            get(|| async { "x" })
                .post(|| async { "x" })
                .route_layer(auth.require_role("adm\r\nset-cookie: x=1")),
        )
        .route(
            "/utf8",
            get(|| async { "x" })
                .post(|| async { "x" })
                .route_layer(auth.require_permission("déploy:écrire")),
        )
        .route(
            "/long",
            get(|| async { "x" })
                .post(|| async { "x" })
                .route_layer(auth.require_scope("s".repeat(20_000))),
        )
        .route(
            "/html",
            get(|| async { "x" })
                .post(|| async { "x" })
                .route_layer(auth.require_role("<script>alert(1)</script>")),
        )
        .route(
            "/public",
            get(|| async { "public" }).post(|| async { "public" }),
        )
        .layer(auth.clone())
}

async fn handler_role(c: Claims) -> Result<&'static str, Forbidden> {
    c.require_role("superuser")?;
    Ok("ok")
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

fn grpc(uri: &str, cookie: Option<&str>, bearer: Option<&str>) -> Request<Body> {
    let mut req = Request::post(uri).header(header::CONTENT_TYPE, "application/grpc");
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie);
    }
    if let Some(token) = bearer {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    req.body(Body::empty()).unwrap()
}

fn html(uri: &str, cookie: Option<&str>) -> Request<Body> {
    let mut req = Request::get(uri).header(header::ACCEPT, "text/html");
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie);
    }
    req.body(Body::empty()).unwrap()
}

fn payload(token: &str) -> serde_json::Map<String, Value> {
    let part = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn refusal(resp: &Response<Body>) -> Option<String> {
    resp.headers()
        .get(HEADER)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// Everything a client sees of a response: its headers and its body.
async fn everything(resp: Response<Body>) -> String {
    let mut seen = String::new();
    for (name, value) in resp.headers() {
        seen.push_str(name.as_str());
        seen.push_str(": ");
        seen.push_str(&String::from_utf8_lossy(value.as_bytes()));
        seen.push('\n');
    }
    seen.push_str(&body_string(resp).await);
    seen
}

/// A user without the guarded role, signed in (the helpers' user has `admin`).
fn plain_user() -> TestUser {
    TestUser::new("usr_42").email("ada@example.com")
}

// ---- Wrong or missing reasons ----------------------------------------------------------------

/// Threat: a session whose access token names a key the provider no longer publishes (keys
/// rotated away) is refused, yet the explained reason says `no_credentials` ("the request has
/// no session cookie and no bearer token"): a wrong reason that sends the developer after a
/// cookie problem. The layer knows the cause (`unknown_kid`).
#[tokio::test]
async fn a_session_signed_with_an_unpublished_key_is_not_explained_as_no_credentials() {
    let w = world(true, |b| b).await;
    let claims = Value::Object(payload(&w.provider.access_token(&user())));
    let jwt_header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "retired-key"});
    let at = w.provider.sign_with_header(&jwt_header, &claims);
    let id = w.provider.id_token(&user(), None);
    let cookie = w
        .provider
        .session_cookie_with_tokens(&w.auth, &at, None, &id);
    let resp = serve(&w.app, api_get("/me", Some(&cookie), None)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let reason = refusal(&resp);
    assert_ne!(
        reason.as_deref(),
        Some("no_credentials"),
        "a request with a session cookie is explained as having none"
    );
    assert_eq!(reason.as_deref(), Some("unknown_kid"));
}

/// Threat: `Claims::require_role(..)?` in a handler (the documented way to check a role that
/// depends on the request) answers 403 without `x-auth-refusal` even when refusals are
/// explained: a 403 of the crate's own that the README says carries the header.
#[tokio::test]
async fn a_handler_forbidden_is_explained_when_explain_is_on() {
    let w = world(true, |b| b).await;
    let cookie = w.provider.session_cookie(&w.auth, &plain_user());
    let resp = serve(&w.app, api_get("/handler-role", Some(&cookie), None)).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(refusal(&resp).as_deref(), Some("missing_role=superuser"));
}

/// Threat: two nested layers. The inner layer refuses its own (expired) session and puts its
/// reason in the request; the outer layer's guard, mounted inside the inner layer, refuses a
/// request that had no credentials of the outer layer at all, and explains it with the inner
/// layer's reason (`expired_at=<the inner session's expiry>`): the reason of another layer.
#[tokio::test]
async fn an_outer_layers_guard_does_not_explain_with_the_inner_layers_reason() {
    let clock = ManualClock::starting_now();
    let provider = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    let outer = provider
        .layer_builder(REDIRECT)
        .clock(clock.clone())
        .explain_refusals(true)
        .cookie_name_prefix("outer")
        .build()
        .await
        .unwrap();
    let inner = provider
        .layer_builder(REDIRECT)
        .clock(clock.clone())
        .explain_refusals(true)
        .cookie_name_prefix("inner")
        .build()
        .await
        .unwrap();
    let app = Router::new()
        .route(
            "/outer-only",
            get(|| async { "outer" }).route_layer(outer.require()),
        )
        .layer(inner.clone())
        .layer(outer.clone());
    // The inner layer's session, without a refresh token, past its access token's expiry.
    let at = provider.access_token(&user());
    let id = provider.id_token(&user(), None);
    let cookie = provider.session_cookie_with_tokens(&inner, &at, None, &id);
    clock.advance(Duration::from_secs(3600));
    let resp = serve(&app, api_get("/outer-only", Some(&cookie), None)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        refusal(&resp).as_deref(),
        Some("no_credentials"),
        "the outer layer saw no credentials of its own"
    );
}

/// Threat: a reason outlives its request (kept in a cache or shared state): after a refused
/// bearer token and an expired session, a plain anonymous request on the same layer is
/// explained by an earlier request's reason.
#[tokio::test]
async fn guard_a_reason_does_not_outlive_its_request() {
    let w = world(true, |b| b).await;
    let resp = serve(&w.app, api_get("/me", None, Some("x.y.z"))).await;
    assert_eq!(refusal(&resp).as_deref(), Some("malformed_token"));
    let cookie = w.provider.session_cookie(&w.auth, &plain_user());
    let resp = serve(&w.app, api_get("/me", Some(&cookie), None)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(refusal(&resp).is_none(), "a signed-in answer has no reason");
    let resp = serve(&w.app, api_get("/me", None, None)).await;
    assert_eq!(refusal(&resp).as_deref(), Some("no_credentials"));
    let resp = serve(&w.app, api_get("/public", None, Some("x.y.z"))).await;
    // A bearer token is refused even on a public route; the next anonymous request is not.
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = serve(&w.app, api_get("/public", None, None)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(refusal(&resp).is_none());
}

// ---- Leaks -----------------------------------------------------------------------------------

/// Threat: attacker-controlled token fields (`kid`, `iss`, `aud`, `sub`, `sid`, `email`, `typ`,
/// `alg`, `crit`) or a forged session cookie are echoed into `x-auth-refusal`, the JSON
/// `message`/`refusal`, or the gRPC `grpc-message`.
#[tokio::test]
async fn guard_no_attacker_controlled_value_is_echoed_into_an_explained_refusal() {
    let w = world(true, |b| b).await;
    let base = payload(&w.provider.access_token(&user()));
    let kid = w.provider.current_kid();
    let now = w.clock.now();
    let mut tokens = Vec::new();
    let with = |change: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut c = base.clone();
        change(&mut c);
        Value::Object(c)
    };
    let good_header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": kid});
    tokens.push(w.provider.sign_with_header(
        &serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": format!("{MARK}-kid")}),
        &with(&|_| {}),
    ));
    tokens.push(w.provider.sign_with_header(
        &serde_json::json!({"alg": "RS256", "typ": MARK, "kid": kid}),
        &with(&|_| {}),
    ));
    tokens.push(w.provider.sign_with_header(
        &serde_json::json!({"alg": format!("{MARK}256"), "typ": "JWT", "kid": kid}),
        &with(&|_| {}),
    ));
    tokens.push(w.provider.sign_with_header(
        &serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": kid, "crit": [MARK]}),
        &with(&|_| {}),
    ));
    for field in ["iss", "aud"] {
        tokens.push(w.provider.sign_with_header(
            &good_header,
            &with(&|c| {
                c.insert(field.into(), Value::from(format!("https://{MARK}.example")));
            }),
        ));
    }
    tokens.push(w.provider.sign_with_header(
        &good_header,
        &with(&|c| {
            c.insert("sub".into(), Value::from(format!("{MARK}-sub")));
            c.insert("sid".into(), Value::from(format!("{MARK}-sid")));
            c.insert("email".into(), Value::from(format!("{MARK}@example.com")));
            c.insert("exp".into(), Value::from(now - 7200));
        }),
    ));
    tokens.push(w.provider.sign_with_header(
        &good_header,
        &with(&|c| {
            c.insert("nbf".into(), Value::from(now + 7200));
            c.insert("sub".into(), Value::from(format!("{MARK}-sub")));
        }),
    ));
    tokens.push(w.provider.sign_with_unpublished_key(
        &good_header,
        &with(&|c| {
            c.insert("sub".into(), Value::from(format!("{MARK}-sub")));
        }),
    ));
    tokens.push(format!("{MARK}.{MARK}.{MARK}"));
    tokens.push(MARK.to_owned());
    for token in &tokens {
        for req in [
            api_get("/me", None, Some(token)),
            grpc("/me", None, Some(token)),
            html("/me", None),
        ] {
            let resp = serve(&w.app, req).await;
            let refused = resp.status().is_client_error()
                || resp.status().is_redirection()
                || resp.headers().get("grpc-status").is_some_and(|v| v != "0");
            assert!(refused, "{} {:?} {token}", resp.status(), resp.headers());
            let seen = everything(resp).await;
            assert!(!seen.contains(MARK), "{seen}");
            assert!(!seen.contains(token.as_str()), "{seen}");
        }
    }
    // A forged session cookie.
    let cookie = format!("{}={MARK}{MARK}", w.auth.session_cookie_name());
    for req in [
        api_get("/me", Some(&cookie), None),
        grpc("/me", Some(&cookie), None),
        html("/me", Some(&cookie)),
    ] {
        let resp = serve(&w.app, req).await;
        let seen = everything(resp).await;
        assert!(!seen.contains(MARK), "{seen}");
    }
}

/// Threat: a reason names the user (`sub`, `email`, `sid`) or carries token material: a
/// signed-in user refused by a guard, a revoked session, and one past its lifetime.
#[tokio::test]
async fn guard_a_signed_in_users_refusals_name_no_user_and_no_token() {
    let w = world(true, |b| b.session_max_age(Duration::from_secs(7200))).await;
    let who = plain_user().name("Ada Lovelace");
    let at = w.provider.access_token(&who);
    let id = w.provider.id_token(&who, None);
    let cookie = w
        .provider
        .session_cookie_with_tokens(&w.auth, &at, Some("rt-secret-value"), &id);
    let secrets = [
        "usr_42",
        "ada@example.com",
        "Ada Lovelace",
        "sid-test",
        "rt-secret-value",
        at.as_str(),
        id.as_str(),
        &at[at.len() - 16..],
        &cookie[cookie.len() - 16..],
    ];
    for uri in ["/crlf", "/utf8", "/html", "/handler-role"] {
        for req in [
            api_get(uri, Some(&cookie), None),
            grpc(uri, Some(&cookie), None),
            html(uri, Some(&cookie)),
        ] {
            let seen = everything(serve(&w.app, req).await).await;
            for secret in secrets {
                assert!(!seen.contains(secret), "{secret} in {seen}");
            }
        }
    }
    w.clock.advance(Duration::from_secs(7201));
    for req in [
        api_get("/me", Some(&cookie), None),
        grpc("/me", Some(&cookie), None),
    ] {
        let seen = everything(serve(&w.app, req).await).await;
        assert!(seen.contains("lifetime_ended_at="), "{seen}");
        for secret in secrets {
            assert!(!seen.contains(secret), "{secret} in {seen}");
        }
    }
}

// ---- Injection and odd names -----------------------------------------------------------------

/// Threat: a guard's name with CR LF (header injection), outside ASCII, with HTML, or very long
/// makes the explained answer inject a header, break the gRPC `grpc-message`, run script in
/// the page, or panic (500).
#[tokio::test]
async fn guard_odd_guard_names_neither_inject_nor_panic() {
    let w = world(true, |b| b).await;
    let cookie = w.provider.session_cookie(&w.auth, &plain_user());
    for uri in ["/crlf", "/utf8", "/long", "/html"] {
        for req in [
            api_get(uri, Some(&cookie), None),
            grpc(uri, Some(&cookie), None),
            html(uri, Some(&cookie)),
        ] {
            let is_grpc = req
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v == "application/grpc");
            let is_html = req
                .headers()
                .get(header::ACCEPT)
                .is_some_and(|v| v == "text/html");
            let resp = serve(&w.app, req).await;
            if is_grpc {
                assert_eq!(resp.status(), StatusCode::OK, "{uri}");
                assert_eq!(resp.headers()["grpc-status"], "7", "{uri}");
                let message = resp.headers()["grpc-message"].to_str().unwrap();
                assert!(
                    message.bytes().all(|b| (0x20..0x7f).contains(&b)),
                    "{message}"
                );
            } else {
                assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{uri}");
            }
            assert!(
                !resp.headers().contains_key(header::SET_COOKIE),
                "{uri}: a header injected"
            );
            let reason = resp.headers().get(HEADER).expect("explained").as_bytes();
            assert!(!reason.contains(&b'\r') && !reason.contains(&b'\n'));
            let body = body_string(resp).await;
            if is_html {
                assert!(!body.contains("<script>alert"), "{uri}: {body}");
            } else if !is_grpc {
                let json: Value = serde_json::from_str(&body).expect("JSON stays JSON");
                assert!(json["message"].is_string());
            }
        }
    }
}

/// Threat: a guard's name outside ASCII (`déploy:écrire`) is written raw into
/// `x-auth-refusal` as obs-text bytes (UTF-8 read as Latin-1 by browsers, refused by
/// `HeaderValue::to_str`), where `enforce::explained` means to give such a reason by its code
/// alone (`missing_permission`). `HeaderValue::from_str` accepts bytes >= 0x80, so its fallback
/// never runs.
#[tokio::test]
async fn a_non_ascii_guard_name_is_given_by_its_code_alone_in_the_header() {
    let w = world(true, |b| b).await;
    let cookie = w.provider.session_cookie(&w.auth, &plain_user());
    for req in [
        api_get("/utf8", Some(&cookie), None),
        grpc("/utf8", Some(&cookie), None),
        html("/utf8", Some(&cookie)),
    ] {
        let resp = serve(&w.app, req).await;
        let reason = resp.headers().get(HEADER).expect("explained");
        assert!(
            reason.as_bytes().iter().all(|b| (0x20..0x7f).contains(b)),
            "non-ASCII bytes in the header: {reason:?}"
        );
        assert_eq!(reason, "missing_permission");
    }
}

// ---- Explain off -----------------------------------------------------------------------------

/// Threat: with explain off (the default), something of the reason still reaches the client:
/// the header, a `refusal` field, the sentence in a gRPC `grpc-message` or the HTML 403 page, or
/// a redirect's URL.
#[tokio::test]
async fn guard_explain_off_adds_nothing_in_any_kind_of_answer() {
    let w = world(false, |b| b.session_max_age(Duration::from_secs(3600))).await;
    let cookie = w.provider.session_cookie(&w.auth, &plain_user());
    // Sentences each reason's explanation contains (`Refusal::explanation`).
    let sentences = [
        "Unix time",
        "The request has no session",
        "session cookie did not open",
        "well-formed JWT",
        "This needs",
        "The token",
        "refusal",
    ];
    let mut reqs = vec![
        api_get("/me", None, None),
        grpc("/me", None, None),
        html("/me", None),
        api_get("/me", None, Some("x.y.z")),
        grpc("/me", None, Some("x.y.z")),
        api_get("/crlf", Some(&cookie), None),
        grpc("/utf8", Some(&cookie), None),
        html("/html", Some(&cookie)),
        api_get("/handler-role", Some(&cookie), None),
    ];
    let bad_cookie = format!("{}=bm90LWEtc2Vzc2lvbg", w.auth.session_cookie_name());
    reqs.push(html("/me", Some(&bad_cookie)));
    reqs.push(grpc("/me", Some(&bad_cookie), None));
    for req in reqs {
        let resp = serve(&w.app, req).await;
        assert!(resp.headers().get(HEADER).is_none());
        let seen = everything(resp).await;
        for s in sentences {
            assert!(!seen.contains(s), "{s} in {seen}");
        }
    }
    // Past the session's lifetime, as a browser.
    w.clock.advance(Duration::from_secs(3601));
    let resp = serve(&w.app, html("/me", Some(&cookie))).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let seen = everything(resp).await;
    assert!(
        !seen.contains("lifetime") && !seen.contains(HEADER),
        "{seen}"
    );
}
