//! Transparent refresh against the TestProvider with refresh-token rotation on.

use std::time::Duration;

use axum::body::Body;
use http::{header, Request, StatusCode};
use tower::ServiceExt;
use tower_oidc_auth::testing::Failure;
use tower_oidc_auth::Clock;

use crate::helpers::*;

// This suite runs twice: with sessions in cookies (`crate::refresh`) and in a session store
// (`crate::in_store::refresh`); `SESSIONS` says which. The helpers below shadow the glob import.
use super::SESSIONS;

#[allow(dead_code)]
async fn setup() -> Setup {
    setup_in(SESSIONS, |c| c).await
}

#[allow(dead_code)]
async fn setup_with(
    tweak: impl FnOnce(tower_oidc_auth::AuthLayerBuilder) -> tower_oidc_auth::AuthLayerBuilder,
) -> Setup {
    setup_in(SESSIONS, tweak).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_racing_requests_one_refresh() {
    let s = setup().await;
    let (jar, old_jti) = signed_in(&s).await;
    s.clock.advance(Duration::from_secs(301));
    let cookie = jar.header_for("/jti");
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let app = s.app.clone();
        let req = request("/jti", &cookie);
        tasks.push(tokio::spawn(async move { app.oneshot(req).await.unwrap() }));
    }
    let mut jtis = Vec::new();
    for t in tasks {
        let resp = t.await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let cookies = set_cookies(&resp);
        match SESSIONS {
            Sessions::Cookies => {
                assert!(
                    cookies
                        .iter()
                        .any(|c| is_session(c) && c.path() == Some("/") && !is_removal(c)),
                    "new session cookie: {cookies:?}"
                );
                assert!(cookies
                    .iter()
                    .any(|c| is_id_token(c) && c.path().is_some_and(|p| p.starts_with("/auth"))));
            }
            // The record is refreshed in place: the cookie (an id) stays as it is.
            Sessions::Store => assert!(cookies.is_empty(), "{cookies:?}"),
        }
        jtis.push(body_string(resp).await);
    }
    assert_eq!(
        s.provider.counts().refresh_grants,
        1,
        "exactly one refresh grant"
    );
    assert_eq!(s.provider.counts().refresh_failures, 0);
    assert!(
        jtis.iter().all(|j| j == &jtis[0]),
        "all got the same new access token"
    );
    assert_ne!(jtis[0], old_jti);
    assert!(!jtis[0].is_empty());
}

#[tokio::test]
async fn old_refresh_token_within_grace_gets_the_same_tokens() {
    let s = setup().await;
    let (jar, _) = signed_in(&s).await;
    let old_cookie = jar.header_for("/jti");
    s.clock.advance(Duration::from_secs(301));
    let mut new_jar = jar.clone();
    let resp = send(&s.app, &mut new_jar, get_json("/jti")).await;
    let new_jti = body_string(resp).await;
    assert_eq!(s.provider.counts().refresh_grants, 1);

    // Another tab, 5 s later, still with the old cookie.
    s.clock.advance(Duration::from_secs(5));
    let resp = s
        .app
        .clone()
        .oneshot(request("/jti", &old_cookie))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_string(resp).await, new_jti);
    assert_eq!(s.provider.counts().refresh_grants, 1, "no new grant");

    // The refreshed session needs no refresh and rewrites no cookie.
    let resp = send(&s.app, &mut new_jar, get_json("/jti")).await;
    assert!(set_cookies(&resp).is_empty());
    assert_eq!(body_string(resp).await, new_jti);
}

#[tokio::test]
async fn old_refresh_token_after_grace_is_rejected() {
    let s = setup().await;
    let (jar, _) = signed_in(&s).await;
    let old_cookie = jar.header_for("/me");
    s.clock.advance(Duration::from_secs(301));
    let mut new_jar = jar.clone();
    assert_eq!(
        send(&s.app, &mut new_jar, get_json("/me")).await.status(),
        StatusCode::OK
    );
    s.clock.advance(Duration::from_secs(61));
    let resp = s
        .app
        .clone()
        .oneshot(request("/me", &old_cookie))
        .await
        .unwrap();
    if SESSIONS == Sessions::Store {
        // The cookie holds only the session's id: an old copy of it is the refreshed session,
        // with no old refresh token to replay.
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(s.provider.counts().refresh_failures, 0);
        return;
    }
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let cookies = set_cookies(&resp);
    assert!(cookies.clears_session(), "{cookies:?}");
    assert_eq!(
        s.provider.counts().refresh_failures,
        1,
        "the replay reached the provider once"
    );
}

#[tokio::test]
async fn invalid_grant_clears_cookies_and_require_rules_apply() {
    let s = setup().await;
    let (mut jar, _) = signed_in(&s).await;
    s.provider
        .set_token_failure(Some(Failure::OAuthError("invalid_grant".into())));
    s.clock.advance(Duration::from_secs(301));
    let resp = send(&s.app, &mut jar, get_html("/me")).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(location(&resp), "/auth/login?return_to=%2Fme");
    assert!(
        jar.get("_s").is_none() && jar.get("_id").is_none(),
        "{:?}",
        jar.names()
    );
}

#[tokio::test]
async fn provider_down_keeps_cookies_and_answers_by_client() {
    let s = setup_with(|c| c.refresh_timeout(Duration::from_millis(300))).await;
    let (jar, _) = signed_in(&s).await;
    let cookie = jar.header_for("/me");
    s.clock.advance(Duration::from_secs(400));
    for failure in [
        Failure::Status(500),
        Failure::Status(503),
        Failure::Delay(Duration::from_secs(5)),
    ] {
        s.provider.set_token_failure(Some(failure.clone()));
        let resp = s
            .app
            .clone()
            .oneshot(request("/me", &cookie))
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{failure:?}"
        );
        assert_eq!(resp.headers()[header::RETRY_AFTER], "5");
        assert!(set_cookies(&resp).is_empty(), "cookies kept");

        let resp = s
            .app
            .clone()
            .oneshot(request_accepting("/me?x=1", &cookie, "text/html"))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(set_cookies(&resp).is_empty());
        let body = body_string(resp).await;
        assert!(body.contains("href=\"/me?x=1\""), "retry link: {body}");

        let req = Request::post("/me")
            .header(header::CONTENT_TYPE, "application/grpc")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap();
        let resp = s.app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.headers()["grpc-status"], "14");
    }
    // The provider is back: the same cookie resumes the session.
    s.provider.set_token_failure(None);
    let resp = s
        .app
        .clone()
        .oneshot(request("/me", &cookie))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(s.provider.counts().refresh_grants, 1);
}

#[tokio::test]
async fn margin_refreshes_early_and_failure_there_is_harmless() {
    let s = setup().await;
    let (mut jar, old) = signed_in(&s).await;
    s.clock.advance(Duration::from_secs(260));
    let resp = send(&s.app, &mut jar, get_json("/jti")).await;
    assert_eq!(
        body_string(resp).await,
        old,
        "outside the margin: no refresh"
    );
    assert_eq!(s.provider.counts().refresh_grants, 0);

    // Within 30 s of expiry, the provider down: the still-valid token serves the request.
    s.clock.advance(Duration::from_secs(15));
    s.provider.set_token_failure(Some(Failure::Status(502)));
    let resp = send(&s.app, &mut jar, get_json("/jti")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_string(resp).await, old);

    s.provider.set_token_failure(None);
    let resp = send(&s.app, &mut jar, get_json("/jti")).await;
    let new = body_string(resp).await;
    assert_ne!(new, old, "refreshed before expiry");
    assert_eq!(s.provider.counts().refresh_grants, 1);
}

#[tokio::test]
async fn margin_is_capped_at_half_the_lifetime() {
    let s = setup().await;
    s.provider.set_access_token_ttl(Duration::from_secs(40));
    let (mut jar, old) = signed_in(&s).await;
    // Margin 30 s would refresh on every request of a 40 s token; capped at 20 s.
    s.clock.advance(Duration::from_secs(15));
    assert_eq!(
        body_string(send(&s.app, &mut jar, get_json("/jti")).await).await,
        old
    );
    assert_eq!(s.provider.counts().refresh_grants, 0);
    s.clock.advance(Duration::from_secs(6));
    let new = body_string(send(&s.app, &mut jar, get_json("/jti")).await).await;
    assert_ne!(new, old);
    assert_eq!(s.provider.counts().refresh_grants, 1);
    // The new token is fresh: the next request does not refresh again.
    let again = body_string(send(&s.app, &mut jar, get_json("/jti")).await).await;
    assert_eq!(again, new);
    assert_eq!(s.provider.counts().refresh_grants, 1);
}

#[tokio::test]
async fn without_rotation_the_old_refresh_token_is_kept() {
    let s = setup().await;
    s.provider.set_refresh_rotation(false);
    let (mut jar, _) = signed_in(&s).await;
    for round in 1..=3 {
        s.clock.advance(Duration::from_secs(301));
        let resp = send(&s.app, &mut jar, get_json("/me")).await;
        assert_eq!(resp.status(), StatusCode::OK, "round {round}");
        assert_eq!(s.provider.counts().refresh_grants, round);
    }
    assert_eq!(s.provider.counts().refresh_failures, 0);
}

#[tokio::test]
async fn logout_after_refresh_uses_the_new_id_token() {
    let s = setup().await;
    let (mut jar, _) = signed_in(&s).await;
    let refreshed_at = s.clock.now() + 301;
    if SESSIONS == Sessions::Cookies {
        let old_id = jar.get("_id").unwrap().value.clone();
        s.clock.advance(Duration::from_secs(301));
        send(&s.app, &mut jar, get_json("/me")).await;
        assert_ne!(
            jar.get("_id").unwrap().value,
            old_id,
            "ID token cookie updated"
        );
    } else {
        s.clock.advance(Duration::from_secs(301));
        send(&s.app, &mut jar, get_json("/me")).await;
    }
    let resp = send(&s.app, &mut jar, logout_link()).await;
    let end = url::Url::parse(&location(&resp)).unwrap();
    let hint = end
        .query_pairs()
        .find(|(k, _)| k == "id_token_hint")
        .map(|(_, v)| v.into_owned())
        .expect("id_token_hint");
    // The hint is the ID token of the refresh (issued then), not the sign-in's.
    let payload = hint.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    assert!(claims["iat"].as_i64().unwrap() >= refreshed_at, "{claims}");
    assert!(jar.cookies.is_empty());
}
