//! Issue 14 part A: the session lifetime is enforced by the server (absolute lifetime, idle
//! timeout), and logout revokes the refresh token at the provider.

use std::time::Duration;

use axum::body::Body;
use http::StatusCode;
use tower::ServiceExt;

use crate::helpers::*;

/// The `Max-Age` (whole seconds) of the session cookie (`..._s`, not a removal) among these
/// parsed `Set-Cookie` values.
fn session_max_age(cookies: &[cookie::Cookie<'_>]) -> Option<i64> {
    let c = cookies.iter().find(|c| is_session(c) && !is_removal(c))?;
    c.max_age().map(|d| d.whole_seconds())
}

/// The "done when": with `session_max_age` 25 s, a copy of a session cookie refreshed at
/// +12 s gets 401 at +28 s, its cookies are cleared, and no refresh grant is made. The refresh
/// at +12 s does not extend the lifetime: its cookie carries the 13 s that remain.
#[tokio::test]
async fn a_refreshed_copy_dies_at_the_absolute_lifetime_without_a_refresh() {
    let s = setup_with(|c| c.session_max_age(Duration::from_secs(25))).await;
    s.provider.set_access_token_ttl(Duration::from_secs(10));
    let mut jar = Jar::default();
    assert_eq!(
        login(&s, &mut jar, "/auth/login").await.status(),
        StatusCode::FOUND
    );
    assert_eq!(
        session_max_age(std::slice::from_ref(jar.get("_s").unwrap().attrs())),
        Some(25)
    );

    s.clock.advance(Duration::from_secs(12));
    let resp = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(s.provider.counts().refresh_grants, 1, "refreshed at +12 s");
    assert_eq!(
        session_max_age(&set_cookies(&resp)),
        Some(13),
        "a refresh does not extend the lifetime: {:?}",
        set_cookies(&resp)
    );
    let copy = jar.header_for("/me");

    s.clock.advance(Duration::from_secs(16));
    let token_requests = s.provider.counts().token_requests;
    let resp = s.app.clone().oneshot(request("/me", &copy)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(
        set_cookies(&resp).clears_session_and_id_token(),
        "{:?}",
        set_cookies(&resp)
    );
    assert_eq!(s.provider.counts().refresh_grants, 1, "no refresh grant");
    assert_eq!(
        s.provider.counts().token_requests,
        token_requests,
        "the token endpoint was not asked"
    );
}

/// Past the absolute lifetime a session is unauthenticated even while its access token is
/// still valid (the default lifetime, 7 days, against a long-lived access token).
#[tokio::test]
async fn the_default_lifetime_ends_a_session_with_a_valid_access_token() {
    let s = setup().await;
    s.provider
        .set_access_token_ttl(Duration::from_secs(30 * 24 * 3600));
    let mut jar = Jar::default();
    login(&s, &mut jar, "/auth/login").await;
    let cookie = jar.header_for("/me");
    s.clock.advance(Duration::from_secs(7 * 24 * 3600 - 1));
    let resp = s
        .app
        .clone()
        .oneshot(request("/me", &cookie))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    s.clock.advance(Duration::from_secs(2));
    let resp = s
        .app
        .clone()
        .oneshot(request("/me", &cookie))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(
        set_cookies(&resp).clears_session_and_id_token(),
        "{:?}",
        set_cookies(&resp)
    );
    // A public page: anonymous, and the cookies are cleared there too.
    let resp = s.app.clone().oneshot(request("/", &cookie)).await.unwrap();
    assert!(set_cookies(&resp).clears_session_and_id_token());
    assert_eq!(body_string(resp).await, "anonymous");
}

/// Past the absolute lifetime, a session whose access token is due is not refreshed.
#[tokio::test]
async fn no_refresh_past_the_default_lifetime() {
    let s = setup().await;
    let mut jar = Jar::default();
    login(&s, &mut jar, "/auth/login").await;
    let cookie = jar.header_for("/me");
    s.clock.advance(Duration::from_secs(7 * 24 * 3600 + 1));
    let resp = s
        .app
        .clone()
        .oneshot(request("/me", &cookie))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookies(&resp).clears_session_and_id_token());
    assert_eq!(s.provider.counts().refresh_grants, 0);
    assert_eq!(s.provider.counts().refresh_failures, 0);
}

/// Idle timeout: a session unused for longer than the timeout is over (cookies cleared, no
/// refresh); use within it keeps the session going, and the last-seen time is rewritten at
/// most once per tenth of the timeout.
#[tokio::test]
async fn idle_timeout_ends_an_unused_session_and_use_keeps_it() {
    let s = setup_with(|c| c.session_idle_timeout(Duration::from_secs(600))).await;
    s.provider
        .set_access_token_ttl(Duration::from_secs(24 * 3600));
    let mut jar = Jar::default();
    login(&s, &mut jar, "/auth/login").await;
    let at_login = jar.header_for("/me");

    // Within the rewrite interval (60 s): no Set-Cookie churn.
    s.clock.advance(Duration::from_secs(30));
    let resp = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(set_cookies(&resp).is_empty(), "{:?}", set_cookies(&resp));

    // Past it: the last-seen time is rewritten, once.
    s.clock.advance(Duration::from_secs(31));
    let resp = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let touched = set_cookies(&resp);
    assert_eq!(touched.len(), 1, "{touched:?}");
    assert_eq!(
        session_max_age(&touched),
        Some(7 * 24 * 3600 - 61),
        "the rewrite does not extend the absolute lifetime"
    );
    let resp = send(&s.app, &mut jar, get_json("/me")).await;
    assert!(set_cookies(&resp).is_empty(), "{:?}", set_cookies(&resp));

    // 10 minutes after login: the copy last seen at login is over; the used one is not.
    s.clock.advance(Duration::from_secs(600 - 61));
    let resp = s
        .app
        .clone()
        .oneshot(request("/me", &at_login))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(
        set_cookies(&resp).clears_session_and_id_token(),
        "{:?}",
        set_cookies(&resp)
    );
    let resp = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::OK);

    // Idle for the whole timeout, with the access token due: over, and no refresh grant.
    s.clock.advance(Duration::from_secs(24 * 3600));
    let resp = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(jar.get("_s").is_none() && jar.get("_id").is_none());
    assert_eq!(s.provider.counts().refresh_grants, 0);
    assert_eq!(s.provider.counts().refresh_failures, 0);
}

/// A refresh counts as use: the refreshed session's idle time starts again.
#[tokio::test]
async fn a_refresh_counts_as_use_for_the_idle_timeout() {
    let s = setup_with(|c| c.session_idle_timeout(Duration::from_secs(600))).await;
    s.provider.set_access_token_ttl(Duration::from_secs(300));
    let mut jar = Jar::default();
    login(&s, &mut jar, "/auth/login").await;
    s.clock.advance(Duration::from_secs(590));
    assert_eq!(
        send(&s.app, &mut jar, get_json("/me")).await.status(),
        StatusCode::OK
    );
    assert_eq!(s.provider.counts().refresh_grants, 1);
    s.clock.advance(Duration::from_secs(240));
    assert_eq!(
        send(&s.app, &mut jar, get_json("/me")).await.status(),
        StatusCode::OK
    );
}

/// Zero lifetimes are configuration mistakes, refused at `build()`.
#[tokio::test]
async fn zero_lifetimes_are_refused_at_build() {
    let provider = tower_oidc_auth::testing::TestProvider::builder()
        .start()
        .await;
    for (cfg, what) in [
        (
            provider
                .layer_builder(REDIRECT)
                .session_max_age(Duration::ZERO),
            "session_max_age",
        ),
        (
            provider
                .layer_builder(REDIRECT)
                .session_idle_timeout(Duration::from_millis(500)),
            "session_idle_timeout",
        ),
    ] {
        let err = cfg.build().await.unwrap_err().to_string();
        assert!(err.contains(what), "{err}");
    }
}

async fn logout(s: &Setup, jar: &mut Jar) -> http::Response<Body> {
    let resp = send(&s.app, jar, logout_link()).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    resp
}

/// Logout revokes the refresh token at the provider (RFC 7009), listed in discovery.
#[tokio::test]
async fn logout_revokes_the_refresh_token_at_the_provider() {
    let s = setup().await;
    assert!(s
        .auth
        .provider_metadata()
        .revocation_endpoint
        .as_deref()
        .is_some_and(|e| e.ends_with("/oauth/revoke")));
    let mut jar = Jar::default();
    login(&s, &mut jar, "/auth/login").await;
    assert!(jar.get("_s").is_some());
    logout(&s, &mut jar).await;
    let counts = s.provider.counts();
    assert_eq!(counts.revocation_requests, 1);
    assert_eq!(counts.refresh_tokens_revoked, 1);
}

/// Client authentication at the revocation endpoint is the token endpoint's: HTTP Basic here.
#[tokio::test]
async fn revocation_authenticates_like_the_token_endpoint() {
    let clock = tower_oidc_auth::ManualClock::starting_now();
    let provider = tower_oidc_auth::testing::TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .token_auth_methods(["client_secret_basic"])
        .start()
        .await;
    let auth = provider
        .layer_builder(REDIRECT)
        .provider(tower_oidc_auth::Provider::discover(provider.issuer()))
        .build()
        .await
        .unwrap();
    let s = Setup {
        app: app(&auth),
        auth,
        provider,
        clock,
    };
    let mut jar = Jar::default();
    assert_eq!(
        login(&s, &mut jar, "/auth/login").await.status(),
        StatusCode::FOUND
    );
    assert!(jar.get("_s").is_some());
    logout(&s, &mut jar).await;
    assert_eq!(s.provider.counts().refresh_tokens_revoked, 1);
}

/// Without a revocation endpoint in discovery, logout makes no revocation call.
#[tokio::test]
async fn no_revocation_without_an_endpoint() {
    let clock = tower_oidc_auth::ManualClock::starting_now();
    let provider = tower_oidc_auth::testing::TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .revocation_endpoint(false)
        .start()
        .await;
    let auth = provider.layer_builder(REDIRECT).build().await.unwrap();
    assert!(auth.provider_metadata().revocation_endpoint.is_none());
    let s = Setup {
        app: app(&auth),
        auth,
        provider,
        clock,
    };
    let mut jar = Jar::default();
    login(&s, &mut jar, "/auth/login").await;
    logout(&s, &mut jar).await;
    assert_eq!(s.provider.counts().revocation_requests, 0);
}

/// Best effort: a failing or hanging revocation endpoint never stops the logout, and a hanging
/// one delays it by the timeout at most.
#[tokio::test]
async fn a_failing_or_slow_revocation_endpoint_does_not_hold_up_logout() {
    let s = setup_with(|c| c.token_revocation_timeout(Duration::from_millis(200))).await;
    for failure in [
        tower_oidc_auth::testing::Failure::Status(503),
        tower_oidc_auth::testing::Failure::Delay(Duration::from_secs(30)),
    ] {
        s.provider.set_revocation_failure(Some(failure.clone()));
        let mut jar = Jar::default();
        login(&s, &mut jar, "/auth/login").await;
        let started = std::time::Instant::now();
        let resp = logout(&s, &mut jar).await;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{failure:?}: logout took {:?}",
            started.elapsed()
        );
        assert!(location(&resp).contains("/oidc/logout"), "{failure:?}");
        assert!(jar.get("_s").is_none() && jar.get("_id").is_none());
    }
    assert_eq!(s.provider.counts().revocation_requests, 2);
    assert_eq!(s.provider.counts().refresh_tokens_revoked, 0);
}
