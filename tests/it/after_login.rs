//! What apps do after login (issue 17): the access token handlers get, and the login, refresh
//! and logout hooks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{header, Request, StatusCode};
use tower_oidc_auth::extract::AppData;
use tower_oidc_auth::hooks::{LoginContext, LoginDecision};
use tower_oidc_auth::testing::TestUser;
use tower_oidc_auth::{AccessToken, AccessTokenExt, AuthLayer, ClaimsExt};

use crate::helpers::*;

#[derive(serde::Serialize, serde::Deserialize)]
struct Account {
    id: u64,
}

/// The routes these tests read: the access token through the extractor and through
/// `ClaimsExt` on a plain request, and the app data.
fn routes(auth: &AuthLayer) -> Router {
    Router::new()
        .route(
            "/token",
            get(|t: AccessToken| async move { t.as_str().to_owned() }),
        )
        .route(
            "/token-ext",
            get(|req: Request<Body>| async move {
                req.access_token()
                    .map(|t| t.as_str().to_owned())
                    .unwrap_or_default()
            }),
        )
        .route(
            "/account",
            get(|AppData(a): AppData<Account>| async move { a.id.to_string() }),
        )
        .route(
            "/maybe-account",
            get(|a: Option<AppData<Account>>| async move {
                a.map(|AppData(a)| a.id.to_string())
                    .unwrap_or_else(|| "none".into())
            }),
        )
        .layer(auth.clone())
}

async fn with_routes(
    tweak: impl FnOnce(tower_oidc_auth::AuthLayerBuilder) -> tower_oidc_auth::AuthLayerBuilder,
) -> Setup {
    let mut s = setup_with(tweak).await;
    s.app = routes(&s.auth);
    s
}

/// Signs in through the whole flow; returns the callback's answer.
async fn sign_in(s: &Setup, jar: &mut Jar) -> http::Response<Body> {
    login(s, jar, "/auth/login").await
}

fn session_cookie_set(resp: &http::Response<Body>) -> bool {
    set_cookies(resp)
        .iter()
        .any(|c| is_session(c) && !is_removal(c))
}

/// Guards: the handler's access token is the one the provider issued at sign-in, through the
/// extractor and through `ClaimsExt`; after a transparent refresh it is the new one.
#[tokio::test]
async fn the_handler_gets_the_issued_access_token_and_after_a_refresh_the_new_one() {
    let s = with_routes(|b| b).await;
    let mut jar = Jar::default();
    assert_eq!(sign_in(&s, &mut jar).await.status(), StatusCode::FOUND);
    let first = body_string(send(&s.app, &mut jar, get_json("/token")).await).await;
    let issued = s.provider.issued_secrets();
    let at_login = issued
        .iter()
        .position(|t| *t == first)
        .expect("the handler's token was issued by the provider");
    let via_ext = body_string(send(&s.app, &mut jar, get_json("/token-ext")).await).await;
    assert_eq!(via_ext, first);

    s.clock.advance(Duration::from_secs(301));
    let resp = send(&s.app, &mut jar, get_json("/token")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(session_cookie_set(&resp), "refreshed");
    let second = body_string(resp).await;
    assert_ne!(second, first);
    let issued = s.provider.issued_secrets();
    let at_refresh = issued
        .iter()
        .position(|t| *t == second)
        .expect("the refreshed token was issued by the provider");
    assert!(at_refresh > at_login);
    assert_eq!(s.provider.counts().refresh_grants, 1);
    // And it stays the session's token.
    let again = body_string(send(&s.app, &mut jar, get_json("/token")).await).await;
    assert_eq!(again, second);
}

/// Guards: a bearer request's access token is the one presented.
#[tokio::test]
async fn a_bearer_request_gets_the_presented_token() {
    let s = with_routes(|b| b).await;
    let token = s.provider.access_token(&user());
    let resp = serve(&s.app, bearer("/token", &token)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_string(resp).await, token);
}

/// Guards: without a session the extractor rejects like `Claims` (401 for an API client).
#[tokio::test]
async fn no_session_no_access_token() {
    let s = with_routes(|b| b).await;
    let resp = serve(&s.app, get_json("/token")).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

fn deny_mallory(b: tower_oidc_auth::AuthLayerBuilder) -> tower_oidc_auth::AuthLayerBuilder {
    b.on_login(|ctx: LoginContext| async move {
        if ctx.claims.sub == "usr_mallory" {
            return Ok(LoginDecision::deny("Your account is <disabled>."));
        }
        assert!(!ctx.access_token.as_str().is_empty());
        LoginDecision::allow_with(&Account { id: 42 })
    })
}

/// Guards: a hook denies one user (403 page naming the reason, escaped; no session cookie; not
/// signed in afterwards) and gives another app data read by `AppData`.
#[tokio::test]
async fn a_hook_denies_one_user_and_gives_another_app_data() {
    let s = with_routes(deny_mallory).await;
    s.provider.set_user(Some(TestUser::new("usr_mallory")));
    let mut jar = Jar::default();
    let resp = sign_in(&s, &mut jar).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(!session_cookie_set(&resp), "{:?}", set_cookies(&resp));
    let body = body_string(resp).await;
    assert!(body.contains("Your account is &lt;disabled&gt;."), "{body}");
    assert!(
        body.contains("<title>Sign-in not allowed</title>"),
        "{body}"
    );
    assert_eq!(
        serve(&s.app, get_json("/token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let resp = send(&s.app, &mut jar, get_json("/token")).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "not signed in");

    s.provider.set_user(Some(user()));
    let mut jar = Jar::default();
    let resp = sign_in(&s, &mut jar).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert!(session_cookie_set(&resp));
    let resp = send(&s.app, &mut jar, get_json("/account")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_string(resp).await, "42");
}

/// Guards: a hook that does not finish in time gives the sign-in error page and no session.
#[tokio::test]
async fn a_hook_timeout_gives_the_error_page() {
    let s = with_routes(|b| {
        b.hook_timeout(Duration::from_millis(50))
            .on_login(|_ctx: LoginContext| std::future::pending())
    })
    .await;
    let mut jar = Jar::default();
    let resp = sign_in(&s, &mut jar).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!session_cookie_set(&resp));
    let body = body_string(resp).await;
    assert!(body.contains("<title>Sign-in failed</title>"), "{body}");
    assert!(body.contains("Try again"), "{body}");
}

/// Guards: a hook error, a panic, or app data over the limit give the error page, never a 500,
/// and no session.
#[tokio::test]
async fn a_hook_error_panic_or_oversized_app_data_gives_the_error_page() {
    let failing: Vec<
        Box<dyn Fn(tower_oidc_auth::AuthLayerBuilder) -> tower_oidc_auth::AuthLayerBuilder>,
    > = vec![
        Box::new(|b| b.on_login(|_: LoginContext| async { Err("database down".into()) })),
        Box::new(|b| b.on_login(|_: LoginContext| async { panic!("hook bug") })),
        Box::new(|b| {
            b.on_login(|_: LoginContext| async {
                LoginDecision::allow_with(&"x".repeat(tower_oidc_auth::hooks::APP_DATA_MAX_BYTES))
            })
        }),
    ];
    for tweak in failing {
        let s = with_routes(tweak).await;
        let mut jar = Jar::default();
        let resp = sign_in(&s, &mut jar).await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!session_cookie_set(&resp));
    }
}

/// Guards: a session without app data (no hook kept any) answers `Option<AppData>` with `None`
/// and sends `AppData` to sign in again, never a 500.
#[tokio::test]
async fn a_session_without_app_data() {
    let s = with_routes(|b| b.on_login(|_: LoginContext| async { Ok(LoginDecision::Allow) })).await;
    let mut jar = Jar::default();
    assert_eq!(sign_in(&s, &mut jar).await.status(), StatusCode::FOUND);
    let resp = send(&s.app, &mut jar, get_json("/maybe-account")).await;
    assert_eq!(body_string(resp).await, "none");
    let resp = send(&s.app, &mut jar, get_html("/account")).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert!(
        location(&resp).starts_with("/auth/login"),
        "{}",
        location(&resp)
    );
}

/// Guards: the refresh hook sees the new token and may replace the app data; its denial ends
/// the session.
#[tokio::test]
async fn the_refresh_hook_replaces_app_data_or_ends_the_session() {
    let deny = Arc::new(Mutex::new(false));
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let (d, v) = (deny.clone(), seen.clone());
    let s = with_routes(move |b| {
        deny_mallory(b).on_refresh(move |ctx| {
            let (d, v) = (d.clone(), v.clone());
            async move {
                v.lock().unwrap().push(ctx.access_token.as_str().to_owned());
                if *d.lock().unwrap() {
                    return Ok(LoginDecision::deny("no longer allowed"));
                }
                LoginDecision::allow_with(&Account { id: 7 })
            }
        })
    })
    .await;
    let mut jar = Jar::default();
    assert_eq!(sign_in(&s, &mut jar).await.status(), StatusCode::FOUND);
    let resp = send(&s.app, &mut jar, get_json("/account")).await;
    assert_eq!(body_string(resp).await, "42");
    s.clock.advance(Duration::from_secs(301));
    let resp = send(&s.app, &mut jar, get_json("/account")).await;
    assert_eq!(body_string(resp).await, "7", "replaced at the refresh");
    let token = body_string(send(&s.app, &mut jar, get_json("/token")).await).await;
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [token],
        "told the new token"
    );

    *deny.lock().unwrap() = true;
    s.clock.advance(Duration::from_secs(301));
    let resp = send(&s.app, &mut jar, get_json("/token")).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookies(&resp)
        .iter()
        .any(|c| is_session(c) && is_removal(c)));
    let resp = send(&s.app, &mut jar, get_json("/token")).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "signed out");
}

/// Guards: the logout hook is told whose session ended, and only when there was one.
#[tokio::test]
async fn the_logout_hook_is_told() {
    let ended = Arc::new(Mutex::new(Vec::<String>::new()));
    let e = ended.clone();
    let s = with_routes(move |b| {
        b.on_logout(move |ctx| {
            let e = e.clone();
            async move {
                e.lock().unwrap().push(ctx.claims.sub.clone());
                Ok(())
            }
        })
    })
    .await;
    let resp = serve(&s.app, logout_post()).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert!(ended.lock().unwrap().is_empty(), "no session, no notice");
    let mut jar = Jar::default();
    assert_eq!(sign_in(&s, &mut jar).await.status(), StatusCode::FOUND);
    let resp = send(&s.app, &mut jar, logout_post()).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(ended.lock().unwrap().as_slice(), ["usr_42"]);
}

/// Guards: the access token never shows in `Debug` of what handlers hold.
#[tokio::test]
async fn the_access_token_is_redacted_in_debug() {
    let s = with_routes(|b| b).await;
    let token = s.provider.access_token(&user());
    let app = Router::new()
        .route(
            "/",
            get(|req: Request<Body>| async move {
                format!("{:?} {:?}", req.access_token(), req.claims())
            }),
        )
        .layer(s.auth.clone());
    let resp = serve(&app, bearer("/", &token)).await;
    let shown = body_string(resp).await;
    assert!(shown.contains("REDACTED"), "{shown}");
    assert!(!shown.contains(&token), "{shown}");
    let _ = header::COOKIE;
}
