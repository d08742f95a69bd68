//! Attacks on issue 17 (what apps do after login): the `AccessToken` handed to handlers, the
//! login / refresh / logout hooks and their app data, sealed login links and step-up, and
//! silent login.
//!
//! Each test asserts the SECURE behaviour: a failing test demonstrates a defect. Tests that
//! pass guard behaviour that held up under attack. The failing ones are marked `DEFECT` in
//! their doc comment.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use base64::Engine;
use http::{header, Request, StatusCode};
use tower_oidc_auth::extract::AppData;
use tower_oidc_auth::hooks::{LoginContext, LoginDecision};
use tower_oidc_auth::testing::{TestProvider, TestUser};
use tower_oidc_auth::{
    AccessToken, AuthLayer, AuthLayerBuilder, Claims, Clock, LoginOptions, ManualClock, Provider,
};

use crate::helpers::*;

#[derive(serde::Serialize, serde::Deserialize)]
struct Account {
    id: String,
}

/// `/who`: the claims' subject, the access token, and its `expires_at` (unix seconds), joined
/// by `|`. `/account`: the app data. `/maybe-token`: the optional token.
fn routes(auth: &AuthLayer) -> Router {
    Router::new()
        .route(
            "/who",
            get(|c: Claims, t: AccessToken| async move {
                let exp = t
                    .expires_at()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                format!("{}|{}|{}", c.sub, t.as_str(), exp)
            }),
        )
        .route(
            "/account",
            get(|AppData(a): AppData<Account>| async move { a.id }),
        )
        .route(
            "/maybe-token",
            get(|t: Option<AccessToken>| async move {
                t.map(|t| t.as_str().to_owned())
                    .unwrap_or_else(|| "none".into())
            }),
        )
        .layer(auth.clone())
}

async fn with_routes(tweak: impl FnOnce(AuthLayerBuilder) -> AuthLayerBuilder) -> Setup {
    let mut s = setup_with(tweak).await;
    s.app = routes(&s.auth);
    s
}

fn now(s: &Setup) -> i64 {
    Clock::now(&s.clock)
}

/// The `sub` of a JWT, read without verifying it.
fn jwt_sub(token: &str) -> String {
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v["sub"].as_str().unwrap_or_default().to_owned()
}

/// `(sub, token, expires_at)` from `/who`.
async fn who(app: &Router, req: Request<Body>) -> (StatusCode, Option<(String, String, i64)>) {
    let resp = serve(app, req).await;
    let status = resp.status();
    if status != StatusCode::OK {
        return (status, None);
    }
    let body = body_string(resp).await;
    let mut parts = body.splitn(3, '|');
    let sub = parts.next().unwrap().to_owned();
    let token = parts.next().unwrap().to_owned();
    let exp = parts.next().unwrap().parse().unwrap();
    (status, Some((sub, token, exp)))
}

fn sets_session(resp: &http::Response<Body>) -> bool {
    set_cookies(resp)
        .iter()
        .any(|c| is_session(c) && !c.value().is_empty() && !is_removal(c))
}

// ---- 1. AccessToken -------------------------------------------------------------------------

/// DEFECT: the layer accepts a session access token up to the verifier's leeway (60 s) after
/// its `exp`, and hands that EXPIRED token to the handler as `AccessToken` (its own
/// `expires_at()` is in the past). The issue promises "it is never expired"; an upstream API
/// refuses it. Here: a session without a refresh token, 30 s after the token's `exp`.
#[tokio::test]
async fn access_token_handed_to_a_handler_is_never_already_expired() {
    let s = with_routes(|b| b).await;
    let cookie = session_no_rt(&s, &user());
    let (status, got) = who(&s.app, request("/who", &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, exp) = got.unwrap();
    // 30 seconds past the access token's expiry (inside the 60 s leeway).
    let t = now(&s);
    s.clock.advance(Duration::from_secs((exp - t + 30) as u64));
    let (status, got) = who(&s.app, request("/who", &cookie)).await;
    if let Some((_, _, exp)) = got {
        assert!(
            exp > now(&s),
            "the handler was given an access token that expired {} s ago (status {status})",
            now(&s) - exp
        );
    }
}

/// DEFECT (same root): with a refresh token, when the refresh fails for now (provider down),
/// the layer keeps the old token if it "still verifies" (with leeway) and hands it out expired.
#[tokio::test]
async fn access_token_after_a_failed_refresh_is_not_handed_out_expired() {
    let s = with_routes(|b| b).await;
    let mut jar = Jar::default();
    assert_eq!(
        login(&s, &mut jar, "/auth/login").await.status(),
        StatusCode::FOUND
    );
    let resp = send(&s.app, &mut jar, get_json("/who")).await;
    let body = body_string(resp).await;
    let exp: i64 = body.rsplit('|').next().unwrap().parse().unwrap();
    s.provider
        .set_token_failure(Some(tower_oidc_auth::testing::Failure::Status(503)));
    let t = now(&s);
    s.clock.advance(Duration::from_secs((exp - t + 30) as u64));
    let resp = send(&s.app, &mut jar, get_json("/who")).await;
    let status = resp.status();
    if status == StatusCode::OK {
        let body = body_string(resp).await;
        let exp: i64 = body.rsplit('|').next().unwrap().parse().unwrap();
        assert!(
            exp > now(&s),
            "handed an access token that expired {} s ago after a failed refresh",
            now(&s) - exp
        );
    }
}

/// Guards: two session cookies of the same name (a planted one beside the victim's, either
/// order): the handler's token always belongs to the user whose claims it got.
#[tokio::test]
async fn duplicate_session_cookies_never_mix_claims_and_token() {
    let s = with_routes(|b| b).await;
    let victim = session_no_rt(&s, &user());
    let mallory = session_of(&s, "usr_mallory");
    let (name, v_val, _) = split_session(&victim);
    let (m_name, m_val, _) = split_session(&mallory);
    assert_eq!(name, m_name);
    for header in [
        format!("{name}={v_val}; {name}={m_val}"),
        format!("{name}={m_val}; {name}={v_val}"),
        format!("{name}=garbage; {name}={v_val}"),
    ] {
        for _ in 0..3 {
            // Twice more: from the verified-session cache too.
            let (status, got) = who(&s.app, request("/who", &header)).await;
            if let Some((sub, token, _)) = got {
                assert_eq!(jwt_sub(&token), sub, "{header}");
            } else {
                assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR);
            }
        }
    }
}

/// Guards: a bearer header beside another user's session cookie: claims and token are the
/// bearer's, together.
#[tokio::test]
async fn a_session_cookie_beside_a_bearer_header_never_mixes() {
    let s = with_routes(|b| b).await;
    let victim = session_no_rt(&s, &user());
    let token = s.provider.access_token(&TestUser::new("usr_mallory"));
    let req = Request::get("/who")
        .header(header::ACCEPT, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::COOKIE, &victim)
        .body(Body::empty())
        .unwrap();
    let (status, got) = who(&s.app, req).await;
    assert_eq!(status, StatusCode::OK);
    let (sub, got_token, _) = got.unwrap();
    assert_eq!(sub, "usr_mallory");
    assert_eq!(got_token, token);

    // With bearer tokens off, the session, its own token.
    let s = with_routes(|b| b.accept_bearer_tokens(false)).await;
    let victim = session_no_rt(&s, &user());
    let req = Request::get("/who")
        .header(header::ACCEPT, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::COOKIE, &victim)
        .body(Body::empty())
        .unwrap();
    let (_, got) = who(&s.app, req).await;
    if let Some((sub, got_token, _)) = got {
        assert_eq!(jwt_sub(&got_token), sub);
        assert_ne!(got_token, token, "never the header's token for a session");
    }
}

/// Guards: a handler inside app B's layer, nested in app A's, never gets A's token from A's
/// session (the outer layer's claims are removed).
#[tokio::test]
async fn the_token_of_an_outer_apps_session_is_not_handed_to_an_inner_app() {
    let clock = ManualClock::starting_now();
    let provider = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .client("app-b", "secret-b", None)
        .start()
        .await;
    let auth_a = provider.layer_builder(REDIRECT).build().await.unwrap();
    let auth_b = provider
        .layer_builder(REDIRECT)
        .client_id("app-b")
        .client_secret("secret-b")
        .build()
        .await
        .unwrap();
    let app = Router::new()
        .route(
            "/maybe-token",
            get(|t: Option<AccessToken>| async move {
                t.map(|t| t.as_str().to_owned())
                    .unwrap_or_else(|| "none".into())
            }),
        )
        .layer(auth_b.clone())
        .layer(auth_a.clone());
    let a_session = provider.session_cookie(&auth_a, &user());
    let resp = serve(&app, request("/maybe-token", &a_session)).await;
    assert_eq!(body_string(resp).await, "none");
}

/// Guards: a revoked session (back-channel logout) hands out no token, also after the
/// verified-session cache has it.
#[tokio::test]
async fn a_revoked_session_hands_out_no_token() {
    let s = setup().await;
    let (mut jar, sid) = session_with_sid(&s).await;
    let app = routes(&s.auth);
    for _ in 0..3 {
        let resp = send(&app, &mut jar, get_json("/maybe-token")).await;
        assert_ne!(body_string(resp).await, "none");
    }
    let token = s
        .provider
        .logout_token(s.provider.client_id(), "usr_42", &sid);
    let resp = post_logout_token(&s.app, &token).await;
    assert!(resp.status().is_success(), "{}", resp.status());
    let resp = send(&app, &mut jar, get_json("/maybe-token")).await;
    assert_eq!(
        body_string(resp).await,
        "none",
        "a revoked session's token was handed out"
    );
}

/// Guards: two requests racing with the same old cookie right after the token is due: both
/// handlers get the NEW token, never the old one, and one refresh grant is made.
#[tokio::test]
async fn racing_requests_after_a_refresh_both_get_the_new_token() {
    let s = with_routes(|b| b).await;
    let mut jar = Jar::default();
    assert_eq!(
        login(&s, &mut jar, "/auth/login").await.status(),
        StatusCode::FOUND
    );
    let old = body_string(send(&s.app, &mut jar, get_json("/maybe-token")).await).await;
    s.clock.advance(Duration::from_secs(301));
    let cookie = jar.header_for("/maybe-token");
    let (a, b) = tokio::join!(
        serve(&s.app, request("/maybe-token", &cookie)),
        serve(&s.app, request("/maybe-token", &cookie))
    );
    let (a, b) = (body_string(a).await, body_string(b).await);
    assert_ne!(a, old, "old token handed out after the refresh");
    assert_ne!(b, old, "old token handed out after the refresh");
    assert_eq!(a, b);
    assert_eq!(s.provider.counts().refresh_grants, 1);
}

/// Guards: nothing the layer logs (at any level) through sign-in with hooks, token extraction,
/// a refresh, a refresh-hook denial and logout contains a token the provider issued.
#[tokio::test]
async fn tokens_never_reach_the_logs() {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let deny = Arc::new(AtomicBool::new(false));
    let d = deny.clone();
    let s = with_routes(move |b| {
        b.on_login(|ctx: LoginContext| async move {
            LoginDecision::allow_with(&Account {
                id: ctx.claims.sub.clone(),
            })
        })
        .on_refresh(move |_ctx| {
            let d = d.clone();
            async move {
                if d.load(Ordering::SeqCst) {
                    return Ok(LoginDecision::deny("gone"));
                }
                Ok(LoginDecision::Allow)
            }
        })
    })
    .await;
    let mut jar = Jar::default();
    assert_eq!(
        login(&s, &mut jar, "/auth/login").await.status(),
        StatusCode::FOUND
    );
    let _ = send(&s.app, &mut jar, get_json("/who")).await;
    s.clock.advance(Duration::from_secs(301));
    let _ = send(&s.app, &mut jar, get_json("/who")).await;
    deny.store(true, Ordering::SeqCst);
    s.clock.advance(Duration::from_secs(301));
    let _ = send(&s.app, &mut jar, get_json("/who")).await;
    let _ = send(&s.app, &mut jar, logout_post()).await;

    let logs = String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned();
    assert!(!logs.is_empty(), "nothing captured");
    for secret in s.provider.issued_secrets() {
        if secret.len() < 16 {
            continue;
        }
        assert!(
            !logs.contains(&secret),
            "a secret the provider issued is in the logs: {}...",
            &secret[..16]
        );
    }
}

// ---- 2. Hooks -------------------------------------------------------------------------------

/// DEFECT (hook semantics): a user already signed in whom the app now refuses (the login hook
/// says Deny on their next sign-in, e.g. a disabled account) keeps the session they had: the
/// 403 sets no cookie, so the old session cookie stays and keeps signing them in (the refresh
/// hook only runs once the token is due). A denied sign-in should end the browser's session of
/// this app (as the refresh hook's Deny does).
#[tokio::test]
async fn a_denied_sign_in_does_not_leave_the_browser_signed_in() {
    let deny = Arc::new(AtomicBool::new(false));
    let d = deny.clone();
    let s = with_routes(move |b| {
        b.on_login(move |_ctx: LoginContext| {
            let d = d.clone();
            async move {
                if d.load(Ordering::SeqCst) {
                    return Ok(LoginDecision::deny("This account is disabled."));
                }
                Ok(LoginDecision::Allow)
            }
        })
    })
    .await;
    let mut jar = Jar::default();
    assert_eq!(
        login(&s, &mut jar, "/auth/login").await.status(),
        StatusCode::FOUND
    );
    assert_eq!(
        send(&s.app, &mut jar, get_json("/who")).await.status(),
        StatusCode::OK
    );
    deny.store(true, Ordering::SeqCst);
    let resp = login(&s, &mut jar, "/auth/login").await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = send(&s.app, &mut jar, get_json("/who")).await;
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "the denied user is still signed in with the session from before"
    );
}

/// Guards: a denied sign-in's callback replayed (same URL again) makes no session, nor does a
/// second concurrent callback of the same attempt.
#[tokio::test]
async fn a_denied_callback_replayed_or_raced_makes_no_session() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let s = with_routes(move |b| {
        b.on_login(move |_ctx: LoginContext| {
            c.fetch_add(1, Ordering::SeqCst);
            async move { Ok(LoginDecision::deny("no")) }
        })
    })
    .await;
    let mut jar = Jar::default();
    let resp = send(&s.app, &mut jar, get_html("/auth/login")).await;
    let callback = authorize(&location(&resp)).await;
    let cookie = jar.header_for("/auth/callback");
    let req = || {
        Request::get(&callback)
            .header(header::ACCEPT, "text/html")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap()
    };
    let (a, b) = tokio::join!(serve(&s.app, req()), serve(&s.app, req()));
    for r in [&a, &b] {
        assert!(!sets_session(r), "{:?}", set_cookies(r));
        assert_ne!(r.status(), StatusCode::FOUND);
    }
    let again = serve(&s.app, req()).await;
    assert!(!sets_session(&again));
    assert_ne!(again.status(), StatusCode::FOUND);
}

/// Guards: the Deny reason is escaped in the 403 page, whatever it holds.
#[tokio::test]
async fn the_deny_reason_cannot_inject_markup() {
    let reason = "</p><script>alert(1)</script><a href=\"javascript:x\">'x'";
    let s = with_routes(move |b| {
        b.on_login(move |_ctx: LoginContext| async move { Ok(LoginDecision::deny(reason)) })
    })
    .await;
    let mut jar = Jar::default();
    let resp = login(&s, &mut jar, "/auth/login").await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(!sets_session(&resp));
    let body = body_string(resp).await;
    assert!(!body.contains("<script>"), "{body}");
    assert!(!body.contains("href=\"javascript"), "{body}");
}

/// Guards: each user's app data is their own, even when their requests interleave and are
/// answered from the verified-session cache; and the app data is not readable in the cookie.
#[tokio::test]
async fn app_data_of_one_user_is_never_seen_by_another_nor_readable_in_the_cookie() {
    let s = with_routes(|b| {
        b.on_login(|ctx: LoginContext| async move {
            LoginDecision::allow_with(&Account {
                id: format!("acct-of-{}", ctx.claims.sub),
            })
        })
    })
    .await;
    let mut jars = Vec::new();
    for sub in ["usr_alice", "usr_bob"] {
        s.provider.set_user(Some(TestUser::new(sub)));
        let mut jar = Jar::default();
        let resp = login(&s, &mut jar, "/auth/login").await;
        assert_eq!(resp.status(), StatusCode::FOUND);
        for c in set_cookies(&resp).iter() {
            assert!(!c.value().contains("acct-of"), "app data readable");
        }
        jars.push((sub, jar));
    }
    for _ in 0..3 {
        for (sub, jar) in jars.iter_mut() {
            let resp = send(&s.app, jar, get_json("/account")).await;
            assert_eq!(body_string(resp).await, format!("acct-of-{sub}"));
        }
    }
}

/// Guards: the refresh hook's Deny holds for two requests racing with the same cookie (one
/// refresh grant, shared by the coordinator): neither is signed in.
#[tokio::test]
async fn refresh_hook_deny_holds_for_racing_requests_and_a_replayed_cookie() {
    let s =
        with_routes(|b| b.on_refresh(|_ctx| async { Ok(LoginDecision::deny("disabled")) })).await;
    let mut jar = Jar::default();
    assert_eq!(
        login(&s, &mut jar, "/auth/login").await.status(),
        StatusCode::FOUND
    );
    s.clock.advance(Duration::from_secs(301));
    let cookie = jar.header_for("/maybe-token");
    let (a, b) = tokio::join!(
        serve(&s.app, request("/maybe-token", &cookie)),
        serve(&s.app, request("/maybe-token", &cookie))
    );
    assert_eq!(body_string(a).await, "none");
    assert_eq!(body_string(b).await, "none");
    // The old cookie replayed later (the browser ignored the removal).
    let resp = serve(&s.app, request("/maybe-token", &cookie)).await;
    assert_eq!(body_string(resp).await, "none");
    s.clock.advance(Duration::from_secs(30));
    let resp = serve(&s.app, request("/maybe-token", &cookie)).await;
    assert_eq!(body_string(resp).await, "none");
}

/// Guards: a refresh hook that panics or hangs never gives a 500 and never crashes the server.
#[tokio::test]
async fn a_panicking_refresh_or_logout_hook_never_gives_a_500() {
    let s = with_routes(|b| {
        b.hook_timeout(Duration::from_millis(50))
            .on_refresh(|_ctx| async { panic!("refresh hook bug") })
            .on_logout(|_ctx| async { panic!("logout hook bug") })
    })
    .await;
    let mut jar = Jar::default();
    assert_eq!(
        login(&s, &mut jar, "/auth/login").await.status(),
        StatusCode::FOUND
    );
    s.clock.advance(Duration::from_secs(301));
    let resp = send(&s.app, &mut jar, get_json("/maybe-token")).await;
    assert_ne!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let resp = send(&s.app, &mut jar, logout_post()).await;
    assert_ne!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(resp.status(), StatusCode::FOUND);
}

// ---- 3. Sealed login links and step-up ------------------------------------------------------

/// Two apps of one provider sharing one cookie key (as `examples/multi_app.rs` does when
/// `AUTH_COOKIE_KEY` is set), on a manual clock.
async fn two_apps_one_key() -> (TestProvider, AuthLayer, AuthLayer) {
    let clock = ManualClock::starting_now();
    let provider = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .client("app-b", "secret-b", None)
        .start()
        .await;
    let key = tower_oidc_auth::testing::cookie_key(17);
    let build = |id: &str, secret: &str| {
        AuthLayerBuilder::new()
            .provider(Provider::scalekit(provider.issuer()))
            .client_id(id)
            .client_secret(secret)
            .redirect_url(REDIRECT)
            .cookie_key(key)
            .clock(clock.clone())
    };
    let a = build(provider.client_id(), provider.client_secret())
        .build()
        .await
        .unwrap();
    let b = build("app-b", "secret-b").build().await.unwrap();
    (provider, a, b)
}

/// DEFECT: sealed login options are sealed under a constant name ("login-options") with the
/// cookie key only, not bound to the app (client id) that made them, unlike every cookie of
/// the layer. Two apps sharing a cookie key (the multi_app example with `AUTH_COOKIE_KEY`)
/// honour each other's links: a tenant-choosing link app A made for an attacker (their own
/// organization) is taken by app B, cross-site, as app B's own choice.
#[tokio::test]
async fn sealed_options_of_one_app_are_refused_by_another_app_sharing_the_cookie_key() {
    let (_provider, auth_a, auth_b) = two_apps_one_key().await;
    let link = auth_a.login_url(
        LoginOptions::new()
            .organization_id("org_attacker")
            .return_to("/from-app-a"),
    );
    let app_b = Router::new()
        .route("/", get(|| async { "b" }))
        .layer(auth_b.clone());
    let resp = serve(
        &app_b,
        cross_site_navigation(&link, "https://attacker.example/"),
    )
    .await;
    if resp.status() == StatusCode::FOUND {
        let to = location(&resp);
        assert!(
            !to.contains("org_attacker"),
            "app B honoured a login link sealed by app A: {to}"
        );
    }
    // App A's own link still works in app A (control).
    let app_a = Router::new()
        .route("/", get(|| async { "a" }))
        .layer(auth_a.clone());
    let resp = serve(
        &app_a,
        cross_site_navigation(&link, "https://attacker.example/"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert!(location(&resp).contains("org_attacker"));
}

/// Guards: a sealed link's return target is sanitised like any other: no open redirect after
/// the sign-in.
#[tokio::test]
async fn a_sealed_return_to_is_no_open_redirect() {
    let s = with_routes(|b| b).await;
    for target in [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "/%2F%2Fevil.example",
        "/%252F%252Fevil.example",
    ] {
        let link = s.auth.login_url(LoginOptions::new().return_to(target));
        let mut jar = Jar::default();
        let resp = login(&s, &mut jar, &link).await;
        assert_eq!(resp.status(), StatusCode::FOUND);
        assert_eq!(location(&resp), "/", "{target}");
    }
}

/// Guards: a tenant-choosing sealed link followed cross-site by a signed-in user asks first,
/// however its prompt is spelled; one without a session proceeds.
#[tokio::test]
async fn a_cross_site_tenant_link_over_a_session_asks_first() {
    let s = with_routes(|b| b).await;
    let session = s.provider.session_cookie(&s.auth, &user());
    for options in [
        LoginOptions::new().organization_id("org_evil"),
        LoginOptions::new().connection_id("conn_evil"),
        LoginOptions::new().login_hint("mallory@evil.example"),
        LoginOptions::new().prompt("select_account"),
        LoginOptions::new().prompt("login  select_account"),
        LoginOptions::new().prompt("create"),
    ] {
        let link = s.auth.login_url(options.clone());
        let mut req = cross_site_navigation(&link, "https://evil.example/");
        req.headers_mut()
            .insert(header::COOKIE, session.parse().unwrap());
        let resp = serve(&s.app, req).await;
        assert_ne!(
            resp.status(),
            StatusCode::FOUND,
            "{options:?} started a login over the session without asking"
        );
        assert!(!set_cookies(&resp).iter().any(|c| c.name().contains("_tx")));
    }
}

fn step_up_app(auth: &AuthLayer) -> Router {
    Router::new()
        .route("/billing", get(|| async { "billing" }))
        .route_layer(auth.require_recent_login(Duration::from_secs(300)))
        .merge(
            Router::new()
                .route("/keys", get(|| async { "keys" }))
                .route_layer(auth.require_acr("mfa")),
        )
        .layer(auth.clone())
}

fn user_at(auth_time: serde_json::Value, acr: serde_json::Value) -> TestUser {
    user().claim("auth_time", auth_time).claim("acr", acr)
}

/// DEFECT: `require_recent_login` takes an `auth_time` in the future as recent: a session whose
/// ID token says the user authenticated a year from now passes the guard for a year (and one
/// with a huge `auth_time` for ever). An `auth_time` later than now (+ leeway) is not a
/// recent sign-in; it should be refused like a malformed one.
#[tokio::test]
async fn an_auth_time_in_the_future_does_not_make_a_session_recent_for_ever() {
    let s = setup().await;
    let app = step_up_app(&s.auth);
    let year = 365 * 24 * 3600;
    let session = s.provider.session_cookie(
        &s.auth,
        &user_at((now(&s) + year).into(), serde_json::Value::Null),
    );
    // A day later: far more than five minutes since any real sign-in.
    s.clock.advance(Duration::from_secs(24 * 3600));
    let resp = serve(&app, request("/billing", &session)).await;
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "auth_time in the future counted as a recent sign-in"
    );
}

/// DEFECT (same root): a huge `auth_time` (1e300, saturating to i64::MAX) is "recent" for ever.
#[tokio::test]
async fn a_huge_auth_time_is_not_recent() {
    let s = setup().await;
    let app = step_up_app(&s.auth);
    let session = s
        .provider
        .session_cookie(&s.auth, &user_at(1e300.into(), serde_json::Value::Null));
    let resp = serve(&app, request("/billing", &session)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

/// DEFECT (same root): the callback of a step-up login (max_age asked) accepts an ID token whose
/// `auth_time` is in the future, so the step-up is "met" without a recent authentication.
#[tokio::test]
async fn the_callback_refuses_an_auth_time_in_the_future() {
    let s = setup().await;
    let app = step_up_app(&s.auth);
    let link = s
        .auth
        .login_url(LoginOptions::new().max_age(Duration::from_secs(300)));
    s.provider.set_user(Some(user_at(
        (now(&s) + 365 * 24 * 3600).into(),
        serde_json::Value::Null,
    )));
    let mut jar = Jar::default();
    let resp = send(&app, &mut jar, get_html(&link)).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let callback = authorize(&location(&resp)).await;
    let resp = send(&app, &mut jar, get_html(&callback)).await;
    assert!(
        !sets_session(&resp),
        "a step-up met by an auth_time in the future"
    );
}

/// Guards: `acr` as an array, a number, or a near-miss string never meets `require_acr`, nor
/// a non-numeric `auth_time` `require_recent_login`; APIs get the RFC 9470 challenge, whose
/// header is well-formed.
#[tokio::test]
async fn malformed_acr_and_auth_time_never_meet_step_up() {
    let s = setup().await;
    let app = step_up_app(&s.auth);
    for acr in [
        serde_json::json!(["mfa"]),
        serde_json::json!(1),
        serde_json::json!("MFA"),
        serde_json::json!("mfa "),
        serde_json::json!({"mfa": true}),
    ] {
        let session = s
            .provider
            .session_cookie(&s.auth, &user_at(now(&s).into(), acr.clone()));
        let resp = serve(&app, request("/keys", &session)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "acr {acr}");
        let challenge = resp.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(
            challenge.starts_with("Bearer error=\"insufficient_user_authentication\""),
            "{challenge}"
        );
        assert!(challenge.contains("acr_values=\"mfa\""), "{challenge}");
    }
    for at in [
        serde_json::json!(now(&s).to_string()),
        serde_json::json!([now(&s)]),
        serde_json::json!(true),
    ] {
        let session = s
            .provider
            .session_cookie(&s.auth, &user_at(at.clone(), serde_json::Value::Null));
        let resp = serve(&app, request("/billing", &session)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "auth_time {at}");
    }
}

/// Guards: a hand-made cross-site login link cannot ask for step-up parameters or tenant
/// parameters, and its step-up values are not stored (nothing to check at the callback).
#[tokio::test]
async fn a_cross_site_hand_made_link_chooses_nothing() {
    let s = with_routes(|b| b).await;
    let resp = serve(
        &s.app,
        cross_site_navigation(
            "/auth/login?organization_id=org_evil&login_hint=m%40evil.example&max_age=0&acr_values=weak&prompt=select_account",
            "https://evil.example/",
        ),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let q = query_of(&location(&resp));
    for name in [
        "organization_id",
        "login_hint",
        "max_age",
        "acr_values",
        "prompt",
    ] {
        assert!(values(&q, name).is_empty(), "{name} passed cross-site");
    }
}

// ---- 4. Silent login ------------------------------------------------------------------------

fn silent_app(auth: &AuthLayer) -> Router {
    Router::new()
        .fallback(get(|c: Option<Claims>| async move {
            c.map(|c| c.sub.clone())
                .unwrap_or_else(|| "anonymous".into())
        }))
        .layer(auth.attempt_silent_login())
        .layer(auth.clone())
}

/// Guards: a silent attempt from a page whose path would be an open redirect returns to the
/// default page, never off-site, also through the `login_required` fallback.
#[tokio::test]
async fn silent_login_return_target_is_no_open_redirect() {
    let s = setup().await;
    let app = silent_app(&s.auth);
    for path in [
        "/%2F%2Fevil.example",
        "/%5Cevil.example",
        "/%252F%252Fevil.example",
    ] {
        let mut jar = Jar::default();
        let resp = send(&app, &mut jar, get_html(path)).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "{path}");
        let login = location(&resp);
        assert!(login.ends_with("return_to=%2F"), "{path}: {login}");
        let resp = send(&app, &mut jar, get_html(&login)).await;
        let authorize_url = location(&resp);
        // The provider has no single sign-on session for this browser: login_required.
        s.provider.set_user(None);
        let (callback, _) = authorize_with(&authorize_url, None).await;
        s.provider.set_user(Some(user()));
        let resp = send(&app, &mut jar, get_html(&callback)).await;
        if resp.status() == StatusCode::FOUND {
            assert_eq!(location(&resp), "/", "{path}");
        }
    }
}

/// Guards: a forged `error=login_required` callback (an attacker's link with a state of their
/// own) neither signs anyone out nor hides the error of another attempt: without this
/// browser's silent transaction it is the ordinary error page.
#[tokio::test]
async fn a_forged_login_required_callback_is_not_a_silent_fallback() {
    let s = setup().await;
    let app = silent_app(&s.auth);
    let mut jar = Jar::default();
    // An interactive login in progress in this browser.
    let resp = send(&app, &mut jar, get_html("/auth/login")).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let forged =
        "/auth/callback?error=login_required&state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let resp = send(
        &app,
        &mut jar,
        cross_site_navigation(forged, "https://evil.example/"),
    )
    .await;
    assert_ne!(resp.status(), StatusCode::FOUND);
    assert!(
        jar.tx().is_some(),
        "the real attempt's transaction was cleared"
    );
}

/// Guards: the silent layer never redirects XHR, API, bearer, POST, gRPC, frame or
/// non-navigation fetches, nor a browser that tried already.
#[tokio::test]
async fn silent_login_skips_everything_but_a_first_top_level_navigation() {
    let s = setup().await;
    let app = silent_app(&s.auth);
    let token = s.provider.access_token(&user());
    let base = || Request::get("/page").header(header::ACCEPT, "text/html");
    let reqs = vec![
        base().header("x-requested-with", "XMLHttpRequest"),
        base().header(header::AUTHORIZATION, format!("Bearer {token}")),
        base().header(header::AUTHORIZATION, "Basic dTpw"),
        base()
            .header("sec-fetch-dest", "iframe")
            .header("sec-fetch-mode", "navigate"),
        base()
            .header("sec-fetch-dest", "document")
            .header("sec-fetch-mode", "cors"),
        base().header("sec-fetch-dest", "empty"),
        Request::get("/page").header(header::ACCEPT, "application/json"),
        Request::post("/page").header(header::ACCEPT, "text/html"),
        Request::post("/page").header(header::CONTENT_TYPE, "application/grpc"),
        Request::head("/page").header(header::ACCEPT, "text/html"),
    ];
    for r in reqs {
        let req = r.body(Body::empty()).unwrap();
        let shown = format!("{} {:?}", req.method(), req.headers());
        let resp = serve(&app, req).await;
        let to = resp
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert!(!to.contains("prompt=none"), "{shown} -> {to}");
    }
}

/// Guards: no redirect loop: after a `login_required` fallback the page is served
/// anonymously, the provider is not asked again, for as long as the "tried" cookie lives.
#[tokio::test]
async fn silent_login_does_not_loop() {
    let s = setup().await;
    let app = silent_app(&s.auth);
    let mut jar = Jar::default();
    let resp = send(&app, &mut jar, get_html("/page")).await;
    let login_url = location(&resp);
    let resp = send(&app, &mut jar, get_html(&login_url)).await;
    s.provider.set_user(None);
    let (callback, _) = authorize_with(&location(&resp), None).await;
    let resp = send(&app, &mut jar, get_html(&callback)).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(location(&resp), "/page");
    for _ in 0..3 {
        let resp = send(&app, &mut jar, get_html("/page")).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(body_string(resp).await, "anonymous");
    }
}

/// Guards: what the hooks receive (`LoginContext`, `RefreshContext`) never shows the access
/// token in `Debug`, so an app that logs its hook's context leaks nothing.
#[tokio::test]
async fn hook_contexts_are_redacted_in_debug() {
    let shown = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let (l, r) = (shown.clone(), shown.clone());
    let s = with_routes(move |b| {
        b.on_login(move |ctx: LoginContext| {
            let l = l.clone();
            async move {
                l.lock()
                    .unwrap()
                    .push((format!("{ctx:?}"), ctx.access_token.as_str().to_owned()));
                Ok(LoginDecision::Allow)
            }
        })
        .on_refresh(move |ctx| {
            let r = r.clone();
            async move {
                r.lock()
                    .unwrap()
                    .push((format!("{ctx:?}"), ctx.access_token.as_str().to_owned()));
                Ok(LoginDecision::Allow)
            }
        })
    })
    .await;
    let mut jar = Jar::default();
    assert_eq!(
        login(&s, &mut jar, "/auth/login").await.status(),
        StatusCode::FOUND
    );
    s.clock.advance(Duration::from_secs(301));
    let _ = send(&s.app, &mut jar, get_json("/maybe-token")).await;
    let shown = shown.lock().unwrap();
    assert_eq!(shown.len(), 2, "both hooks ran");
    for (debug, token) in shown.iter() {
        assert!(!token.is_empty());
        assert!(!debug.contains(token.as_str()), "{debug}");
    }
}
