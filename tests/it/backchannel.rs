//! Back-channel logout, revocation, and the logout-in-flight race.

use std::time::Duration;

use axum::body::Body;
use http::{header, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_oidc_auth::testing::Failure;
use tower_oidc_auth::Clock;

use crate::helpers::*;

// This suite runs twice: with sessions in cookies (`crate::backchannel`) and in a session store
// (`crate::in_store::backchannel`); `SESSIONS` says which. The helpers below shadow the glob import.
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

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

fn logout_token(s: &Setup, patch: Value) -> String {
    let now = s.clock.now();
    let mut claims = json!({
        "iss": s.provider.issuer(), "aud": "test-client", "iat": now,
        "jti": format!("jti-{}", rand_id()), "events": {EVENT: {}}, "sid": "sid-unknown",
    });
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    s.provider.sign_with_header(
        &json!({"alg": "RS256", "typ": "logout+jwt", "kid": s.provider.current_kid()}),
        &claims,
    )
}

fn rand_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed).to_string()
}

#[tokio::test]
async fn valid_logout_token_ends_the_session() {
    let s = setup().await;
    let (mut jar, sid) = session_with_sid(&s).await;
    let (mut other, _) = session_with_sid(&s).await;
    let resp = post_logout_token(&s.app, &logout_token(&s, json!({"sid": sid}))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
    let resp = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(jar.get("_s").is_none(), "cookies cleared");
    // Another session (another sid) is untouched.
    assert_eq!(
        send(&s.app, &mut other, get_json("/me")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn every_logout_token_defect_is_rejected() {
    let s = setup().await;
    let (mut jar, sid) = session_with_sid(&s).await;
    let now = s.clock.now();
    let valid = logout_token(&s, json!({"sid": sid}));
    let mut parts: Vec<&str> = valid.split('.').collect();
    let forged_payload = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        json!({"iss": s.provider.issuer(), "aud": "test-client", "iat": now, "jti": "x",
               "events": {EVENT: {}}, "sid": sid})
        .to_string(),
    );
    parts[1] = &forged_payload;
    let bad_signature = parts.join(".");
    let cases: Vec<(&str, String)> = vec![
        ("bad signature", bad_signature),
        (
            "wrong aud",
            logout_token(&s, json!({"sid": sid, "aud": "other-client"})),
        ),
        (
            "wrong iss",
            logout_token(&s, json!({"sid": sid, "iss": "https://evil.example"})),
        ),
        (
            "missing events",
            logout_token(&s, json!({"sid": sid, "events": null})),
        ),
        (
            "wrong event",
            logout_token(&s, json!({"sid": sid, "events": {"http://other": {}}})),
        ),
        (
            "event not an object",
            logout_token(&s, json!({"sid": sid, "events": {EVENT: "x"}})),
        ),
        (
            "nonce present",
            logout_token(&s, json!({"sid": sid, "nonce": "n"})),
        ),
        (
            "neither sid nor sub",
            logout_token(&s, json!({"sid": null})),
        ),
        (
            "old iat",
            logout_token(&s, json!({"sid": sid, "iat": now - 3600})),
        ),
        (
            "future iat",
            logout_token(&s, json!({"sid": sid, "iat": now + 3600})),
        ),
        ("no iat", logout_token(&s, json!({"sid": sid, "iat": null}))),
        ("no jti", logout_token(&s, json!({"sid": sid, "jti": null}))),
        (
            "expired",
            logout_token(&s, json!({"sid": sid, "exp": now - 3600})),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                base64::Engine::encode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    r#"{"alg":"none"}"#
                ),
                valid.split('.').nth(1).unwrap()
            ),
        ),
        (
            "id token typ",
            s.provider.sign_with_header(
                &json!({"alg": "RS256", "typ": "id+jwt", "kid": s.provider.current_kid()}),
                &json!({"iss": s.provider.issuer(), "aud": "test-client", "iat": now, "jti": "t",
                        "events": {EVENT: {}}, "sid": sid}),
            ),
        ),
        ("garbage", "not-a-jwt".into()),
    ];
    for (what, token) in cases {
        let resp = post_logout_token(&s.app, &token).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{what}");
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store", "{what}");
        let body: Value = serde_json::from_str(&body_string(resp).await).unwrap();
        assert_eq!(body, json!({"error": "invalid_request"}), "{what}");
        assert_eq!(
            send(&s.app, &mut jar, get_json("/me")).await.status(),
            StatusCode::OK,
            "{what}"
        );
    }

    // Replay: the valid token works once.
    assert_eq!(
        post_logout_token(&s.app, &valid).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        post_logout_token(&s.app, &valid).await.status(),
        StatusCode::BAD_REQUEST
    );

    // Request shapes.
    let req = Request::post("/auth/backchannel-logout")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"logout_token":"x"}"#))
        .unwrap();
    assert_eq!(
        s.app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    let req = Request::post("/auth/backchannel-logout")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(vec![b'a'; 100 * 1024]))
        .unwrap();
    assert_eq!(
        s.app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    let req = Request::get("/auth/backchannel-logout")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        s.app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn sub_revocation_ends_earlier_sessions_only() {
    let s = setup().await;
    let (mut before, _) = session_with_sid(&s).await;
    s.clock.advance(Duration::from_secs(1));
    let resp = post_logout_token(
        &s.app,
        &logout_token(&s, json!({"sid": null, "sub": "usr_42"})),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        send(&s.app, &mut before, get_json("/me")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Logging in again afterwards works.
    s.clock.advance(Duration::from_secs(1));
    let (mut after, _) = session_with_sid(&s).await;
    assert_eq!(
        send(&s.app, &mut after, get_json("/me")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn revocation_survives_a_refresh_attempt() {
    let s = setup().await;
    let (mut jar, sid) = session_with_sid(&s).await;
    assert_eq!(
        post_logout_token(&s.app, &logout_token(&s, json!({"sid": sid})))
            .await
            .status(),
        StatusCode::OK
    );
    s.clock.advance(Duration::from_secs(301));
    let resp = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        s.provider.counts().token_requests,
        1,
        "only the login's code exchange: no refresh"
    );
}

#[tokio::test]
async fn logout_ends_the_session_even_for_a_kept_cookie() {
    let s = setup().await;
    let (mut jar, _) = session_with_sid(&s).await;
    let kept = jar.header_for("/me");
    send(&s.app, &mut jar, logout_link()).await;
    let req = request("/me", &kept);
    assert_eq!(
        s.app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_racing_a_refresh_does_not_resurrect_the_session() {
    let s = setup().await;
    let (mut jar, _) = session_with_sid(&s).await;
    let cookie = jar.header_for("/me");
    s.clock.advance(Duration::from_secs(301));
    s.provider
        .set_token_failure(Some(Failure::Delay(Duration::from_millis(500))));
    let before = s.provider.counts().token_requests;
    let app = s.app.clone();
    let in_flight = tokio::spawn(async move {
        let req = request("/me", &cookie);
        app.oneshot(req).await.unwrap()
    });
    // Wait until the refresh has reached the provider (bounded), then log out.
    for _ in 0..500 {
        if s.provider.counts().token_requests > before {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        s.provider.counts().token_requests > before,
        "refresh in flight"
    );
    send(&s.app, &mut jar, logout_link()).await;
    let resp = in_flight.await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let set = set_cookies(&resp);
    assert!(
        set.all_removals(),
        "the late response only clears cookies: {set:?}"
    );
}

#[tokio::test]
async fn webhook_route_is_off_without_a_secret() {
    let s = setup().await;
    let req = Request::post("/auth/webhook")
        .body(Body::from("{}"))
        .unwrap();
    // Not served by the layer: the app's router answers (404 here).
    assert_eq!(
        s.app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}
