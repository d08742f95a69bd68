//! Attack 12: the newest mends to explained refusals. An app's own refusals explained by the
//! layer (`explain_app_refusal`), headers the app set itself, nested layers, and requests with
//! both a session cookie and a bearer token. Each test asserts the secure or correct
//! behaviour: a failing test is a defect. The metric attacks are in `tests/attack_metrics2.rs`.

use axum::body::Body;
use axum::extract::Path;
use axum::response::{IntoResponse, Response as AxumResponse};
use axum::routing::get;
use axum::Router;
use http::{header, Request, Response, StatusCode};
use tower_oidc_auth::testing::TestProvider;
use tower_oidc_auth::{AuthLayer, Claims, ManualClock, Refusal};

use crate::helpers::*;

const HEADER: &str = "x-auth-refusal";

async fn layer(
    provider: &TestProvider,
    clock: &ManualClock,
    explain: bool,
    prefix: &str,
) -> AuthLayer {
    provider
        .layer_builder(REDIRECT)
        .clock(clock.clone())
        .explain_refusals(explain)
        .cookie_name_prefix(prefix)
        .build()
        .await
        .expect("build")
}

async fn provider(clock: &ManualClock) -> TestProvider {
    TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await
}

/// Routes an app may well have: handlers whose responses carry a `Refusal` extension but are
/// no refusal, and an app that answers with its own `x-auth-refusal`.
fn app_routes() -> Router {
    Router::new()
        // A handler's refusal, mapped by the app to a 404 (hiding that the resource exists):
        // extensions travel with the response.
        .route(
            "/hidden",
            get(|c: Claims| async move {
                match c.require_role("superuser") {
                    Ok(()) => "secret".into_response(),
                    Err(f) => {
                        let mut r = f.into_response();
                        *r.status_mut() = StatusCode::NOT_FOUND;
                        r
                    }
                }
            }),
        )
        // A 200 whose extensions carry a `Refusal` (e.g. copied from an inner call, or a
        // middleware that records the reason it let the request through anyway).
        .route(
            "/ok-with-refusal",
            get(|| async {
                let mut r = "fine".into_response();
                r.extensions_mut().insert(Refusal::Revoked { at: 0 });
                r
            }),
        )
        // The app answers with its own header and a Forbidden.
        .route(
            "/own-header",
            get(|c: Claims| async move {
                let mut r: AxumResponse = match c.require_role("superuser") {
                    Ok(()) => "ok".into_response(),
                    Err(f) => f.into_response(),
                };
                r.headers_mut()
                    .insert(HEADER, http::HeaderValue::from_static("app-reason"));
                r
            }),
        )
        // A role named by the client (a tenant's role from the path).
        .route(
            "/role/{name}",
            get(|c: Claims, Path(name): Path<String>| async move {
                c.require_role(&name).map(|()| "ok")
            }),
        )
        .route("/public", get(|| async { "public" }))
}

fn api(uri: &str, cookie: Option<&str>, bearer: Option<&str>) -> Request<Body> {
    let mut req = Request::get(uri).header(header::ACCEPT, "application/json");
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie);
    }
    if let Some(token) = bearer {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    req.body(Body::empty()).unwrap()
}

fn reasons(resp: &Response<Body>) -> Vec<String> {
    resp.headers()
        .get_all(HEADER)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

fn plain_user() -> tower_oidc_auth::testing::TestUser {
    tower_oidc_auth::testing::TestUser::new("usr_42").email("ada@example.com")
}

// ---- An app's responses ----------------------------------------------------------------------

/// Threat: a response that is no refusal (200) but carries a `Refusal` response extension gets
/// `x-auth-refusal: revoked_at=0` from the layer: the layer tells the developer a request it
/// served was refused (revoked). `explain_app_refusal` looks at the extension only, never at the
/// status. Only 401, 403 and redirects to login are refusals.
#[tokio::test]
async fn a_successful_response_is_never_explained_as_a_refusal() {
    let clock = ManualClock::starting_now();
    let p = provider(&clock).await;
    let auth = layer(&p, &clock, true, "a").await;
    let app = app_routes().layer(auth.clone());
    let resp = serve(&app, api("/ok-with-refusal", None, None)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        reasons(&resp),
        Vec::<String>::new(),
        "a 200 explained as refused"
    );
}

/// Threat: the app turns a handler's `Forbidden` into a 404 to hide that the resource exists;
/// the layer still writes `x-auth-refusal: missing_role=superuser` on the 404, telling the
/// client the resource is there and which role opens it: a misleading reason on an answer that
/// is no refusal of the layer's or the app's.
#[tokio::test]
async fn a_forbidden_the_app_turned_into_a_404_is_not_explained() {
    let clock = ManualClock::starting_now();
    let p = provider(&clock).await;
    let auth = layer(&p, &clock, true, "a").await;
    let app = app_routes().layer(auth.clone());
    let cookie = p.session_cookie(&auth, &plain_user());
    let resp = serve(&app, api("/hidden", Some(&cookie), None)).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        reasons(&resp),
        Vec::<String>::new(),
        "the 404 names the role"
    );
}

/// Threat: with explain off, a response carrying a `Refusal` extension (a handler's
/// `Forbidden`, a 200 with one) gets the header anyway.
#[tokio::test]
async fn guard_explain_off_adds_no_header_for_an_apps_refusal_extension() {
    let clock = ManualClock::starting_now();
    let p = provider(&clock).await;
    let auth = layer(&p, &clock, false, "a").await;
    let app = app_routes().layer(auth.clone());
    let cookie = p.session_cookie(&auth, &plain_user());
    for uri in [
        "/ok-with-refusal",
        "/hidden",
        "/role/superuser",
        "/role/a,b",
    ] {
        let resp = serve(&app, api(uri, Some(&cookie), None)).await;
        assert_eq!(reasons(&resp), Vec::<String>::new(), "{uri}");
    }
}

/// Threat: an app that writes its own `x-auth-refusal` on a handler's `Forbidden` gets a second
/// value appended (two reasons, one of them the layer's) or its own replaced, with explain on;
/// with explain off the layer removes or changes it. The layer keeps its hands off the app's
/// header: exactly the app's value, once.
#[tokio::test]
async fn guard_an_apps_own_header_is_left_as_is_and_never_doubled() {
    for explain in [true, false] {
        let clock = ManualClock::starting_now();
        let p = provider(&clock).await;
        let auth = layer(&p, &clock, explain, "a").await;
        let app = app_routes().layer(auth.clone());
        let cookie = p.session_cookie(&auth, &plain_user());
        let resp = serve(&app, api("/own-header", Some(&cookie), None)).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            reasons(&resp),
            vec!["app-reason".to_owned()],
            "explain {explain}"
        );
    }
}

/// Threat: a guard name the client chooses (a role taken from the path, checked with
/// `Claims::require_role`) forges a second reason in the header: `/role/x,%20revoked_at=0`
/// makes `x-auth-refusal: missing_role=x, revoked_at=0`, which HTTP reads as a list of two
/// reasons (RFC 9110 section 5.3), the second one the client's. The value must stay one
/// reason (a name with list or parameter delimiters given by its code alone).
#[tokio::test]
async fn a_client_chosen_guard_name_cannot_forge_a_second_reason() {
    let clock = ManualClock::starting_now();
    let p = provider(&clock).await;
    let auth = layer(&p, &clock, true, "a").await;
    let app = app_routes().layer(auth.clone());
    let cookie = p.session_cookie(&auth, &plain_user());
    let resp = serve(&app, api("/role/x,%20revoked_at=0", Some(&cookie), None)).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let got = reasons(&resp);
    assert_eq!(got.len(), 1);
    let parts: Vec<&str> = got[0].split(',').map(str::trim).collect();
    assert_eq!(
        parts.len(),
        1,
        "the header reads as several reasons: {got:?}"
    );
    assert!(!got[0].contains("revoked_at"), "a forged reason: {got:?}");
}

// ---- Nested layers ---------------------------------------------------------------------------

/// Threat: two nested layers, the outer one explaining, the inner one not: the inner layer's
/// guard refuses (no session of its own) and the outer layer explains the inner layer's refusal
/// (adds `x-auth-refusal`) although the inner layer was told not to explain.
#[tokio::test]
async fn guard_an_outer_explaining_layer_does_not_explain_an_inner_silent_layers_refusal() {
    let clock = ManualClock::starting_now();
    let p = provider(&clock).await;
    let outer = layer(&p, &clock, true, "outer").await;
    let inner = layer(&p, &clock, false, "inner").await;
    let app = Router::new()
        .route(
            "/inner-only",
            get(|| async { "inner" }).route_layer(inner.require()),
        )
        .route(
            "/inner-role",
            get(|| async { "inner" }).route_layer(inner.require_role("superuser")),
        )
        .layer(inner.clone())
        .layer(outer.clone());
    // Signed in to the outer layer only, then to the inner one without the role.
    let outer_cookie = p.session_cookie(&outer, &plain_user());
    let resp = serve(&app, api("/inner-only", Some(&outer_cookie), None)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(reasons(&resp), Vec::<String>::new());
    let resp = serve(&app, api("/inner-only", None, Some("x.y.z"))).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // The outer layer refused the bearer token itself, and explains its own reason.
    assert_eq!(reasons(&resp), vec!["malformed_token".to_owned()]);
    let inner_cookie = p.session_cookie(&inner, &plain_user());
    let resp = serve(&app, api("/inner-role", Some(&inner_cookie), None)).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(reasons(&resp), Vec::<String>::new());
}

/// Threat: two nested explaining layers and a handler's `Forbidden`: both layers add the
/// header (two values), or the outer one replaces the inner one's with another reason.
#[tokio::test]
async fn guard_nested_explaining_layers_explain_a_handlers_forbidden_once() {
    let clock = ManualClock::starting_now();
    let p = provider(&clock).await;
    let outer = layer(&p, &clock, true, "outer").await;
    let inner = layer(&p, &clock, true, "inner").await;
    let app = app_routes().layer(inner.clone()).layer(outer.clone());
    let cookie = p.session_cookie(&inner, &plain_user());
    let resp = serve(&app, api("/role/superuser", Some(&cookie), None)).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(reasons(&resp), vec!["missing_role=superuser".to_owned()]);
}

// ---- Cookie and bearer together --------------------------------------------------------------

/// Threat: a request with both a session cookie and a bearer token is explained with the
/// wrong credential's reason: a refused bearer token beside a good session explained as the
/// session's (or `no_credentials`), an unreadable cookie beside a refused token explained as
/// `session_unreadable`; a good token beside a dead cookie answered with a reason at all.
#[tokio::test]
async fn guard_cookie_and_bearer_together_are_explained_by_what_decided() {
    let clock = ManualClock::starting_now();
    let p = provider(&clock).await;
    let auth = layer(&p, &clock, true, "a").await;
    let app = Router::new()
        .route("/me", get(|c: Claims| async move { c.sub.clone() }))
        .route_layer(auth.require())
        .merge(app_routes())
        .layer(auth.clone());
    let good_cookie = p.session_cookie(&auth, &plain_user());
    let bad_cookie = format!("{}=bm90LWEtc2Vzc2lvbg", auth.session_cookie_name());
    let token = p.access_token(&user());

    let resp = serve(&app, api("/me", Some(&good_cookie), Some("x.y.z"))).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(reasons(&resp), vec!["malformed_token".to_owned()]);

    let resp = serve(&app, api("/me", Some(&bad_cookie), Some("x.y.z"))).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(reasons(&resp), vec!["malformed_token".to_owned()]);

    let resp = serve(&app, api("/me", Some(&bad_cookie), Some(&token))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(reasons(&resp), Vec::<String>::new());

    // Bearer user has `admin` but not `superuser`: the handler's reason, not the cookie's.
    let resp = serve(
        &app,
        api("/role/superuser", Some(&bad_cookie), Some(&token)),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(reasons(&resp), vec!["missing_role=superuser".to_owned()]);
}
