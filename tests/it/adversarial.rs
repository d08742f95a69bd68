//! Hostile input: tampered cookies, forged tokens, key rotation, misconfiguration.

use std::time::Duration;

use axum::body::Body;
use http::{header, Request, StatusCode};
use serde_json::json;
use tower::ServiceExt;
use tower_oidc_auth::testing::{Failure, TestProvider, TestUser};
use tower_oidc_auth::{AuthLayer, Clock, ConfigError, Provider};

use crate::helpers::*;

async fn me_with_raw_cookie(app: &axum::Router, cookie: &str) -> http::Response<Body> {
    let req = Request::get("/me")
        .header(header::ACCEPT, "application/json")
        .header(
            header::COOKIE,
            http::HeaderValue::from_bytes(cookie.as_bytes()).unwrap(),
        )
        .body(Body::empty())
        .unwrap();
    app.clone().oneshot(req).await.unwrap()
}

#[tokio::test]
async fn tampered_truncated_and_foreign_cookies_count_as_absent_and_are_cleared() {
    let s = setup().await;
    let good = s.provider.session_cookie(&s.auth, &user());
    assert_eq!(
        me_with_raw_cookie(&s.app, &good).await.status(),
        StatusCode::OK
    );
    let (name, value) = good.split("; ").next().unwrap().split_once('=').unwrap();

    // Flip one character in the middle of the sealed value.
    let mut bytes = value.as_bytes().to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{name}={}", String::from_utf8(bytes).unwrap());
    let truncated = format!("{name}={}", &value[..value.len() - 10]);
    let short = format!("{name}=AAAA");
    let empty = format!("{name}=");
    let garbage = format!("{name}=%%%not-base64!!\"");
    let huge = format!("{name}={}", "A".repeat(16_000));

    // Sealed by another deployment's key.
    let other = s.provider.layer_builder(REDIRECT).build().await.unwrap();
    let foreign = s.provider.session_cookie(&other, &user());

    for cookie in [
        &tampered, &truncated, &short, &empty, &garbage, &huge, &foreign,
    ] {
        let resp = me_with_raw_cookie(&s.app, cookie).await;
        assert_eq!(
            resp.status(),
            StatusCode::UNAUTHORIZED,
            "{}",
            &cookie[..40.min(cookie.len())]
        );
        assert!(
            set_cookies(&resp).clears_session(),
            "cleared: {}",
            &cookie[..40.min(cookie.len())]
        );
    }
    // Public routes answer normally with such cookies.
    let req = Request::get("/")
        .header(header::COOKIE, &tampered)
        .body(Body::empty())
        .unwrap();
    let resp = s.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_string(resp).await, "anonymous");
}

#[tokio::test]
async fn another_apps_session_is_not_seen() {
    let s = setup().await;
    // Same provider, same cookie key, another client id: another cookie name and binding.
    let key = tower_oidc_auth::testing::cookie_key(9);
    let a = s.provider.layer_builder(REDIRECT).cookie_key(key);
    let b = s
        .provider
        .layer_builder("http://127.0.0.1:3001/auth/callback")
        .client_id("other-app")
        .cookie_key(key);
    let (a, b) = (a.build().await.unwrap(), b.build().await.unwrap());
    let cookie_a = s.provider.session_cookie(&a, &user());
    let resp = me_with_raw_cookie(&app(&b), &cookie_a).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // Renamed to B's name, the value still does not open: it is bound to A's name.
    let b_cookie_name = {
        let resp = me_with_raw_cookie(&app(&b), &s.provider.session_cookie(&b, &user())).await;
        drop(resp);
        s.provider
            .session_cookie(&b, &user())
            .split('=')
            .next()
            .unwrap()
            .to_owned()
    };
    let (a_name, a_value) = cookie_a
        .split("; ")
        .next()
        .unwrap()
        .split_once('=')
        .unwrap();
    assert_ne!(a_name, b_cookie_name);
    let renamed = format!("{b_cookie_name}={a_value}");
    let resp = me_with_raw_cookie(&app(&b), &renamed).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn large_sessions_are_chunked_and_leftovers_deleted() {
    let s = setup().await;
    let big = TestUser::new("usr_big")
        .email("big@example.com")
        .claim("bio", "x".repeat(5000));
    s.provider.set_user(Some(big));
    let mut jar = Jar::default();
    let resp = login(&s, &mut jar, "/auth/login").await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let chunks: Vec<_> = jar
        .cookies
        .iter()
        .filter(|c| c.name.contains("_s"))
        .collect();
    assert!(chunks.len() >= 3, "session split: {:?}", jar.names());
    assert!(resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .all(|v| v.len() < 4096));
    let resp = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let claims: serde_json::Value = serde_json::from_str(&body_string(resp).await).unwrap();
    assert_eq!(claims["bio"].as_str().unwrap().len(), 5000);

    // Logging in again as a small user deletes the chunks that are no longer needed.
    s.provider.set_user(Some(user()));
    login(&s, &mut jar, "/auth/login").await;
    let chunks: Vec<_> = jar
        .cookies
        .iter()
        .filter(|c| c.name.contains("_s"))
        .collect();
    assert_eq!(chunks.len(), 1, "{:?}", jar.names());
    let resp = send(&s.app, &mut jar, get_json("/me")).await;
    let claims: serde_json::Value = serde_json::from_str(&body_string(resp).await).unwrap();
    assert_eq!(claims["sub"], "usr_42");

    // Logout clears every chunk.
    s.provider
        .set_user(Some(TestUser::new("u").claim("bio", "y".repeat(5000))));
    login(&s, &mut jar, "/auth/login").await;
    send(&s.app, &mut jar, logout_link()).await;
    assert!(jar.cookies.is_empty(), "{:?}", jar.names());
}

#[tokio::test]
async fn key_rotation_unknown_kid_triggers_refetch() {
    let s = setup().await;
    let mut jar = Jar::default();
    login(&s, &mut jar, "/auth/login").await;
    assert_eq!(
        send(&s.app, &mut jar, get_json("/me")).await.status(),
        StatusCode::OK
    );
    let fetches = s.provider.counts().jwks_fetches;

    // The provider rotates and withdraws the old key. A new login's tokens carry the new kid:
    // the layer refetches and accepts them.
    s.provider.rotate_keys(true);
    let mut jar2 = Jar::default();
    let resp = login(&s, &mut jar2, "/auth/login").await;
    assert_eq!(
        resp.status(),
        StatusCode::FOUND,
        "{}",
        body_string(resp).await
    );
    assert_eq!(s.provider.counts().jwks_fetches, fetches + 1);
    assert_eq!(
        send(&s.app, &mut jar2, get_json("/me")).await.status(),
        StatusCode::OK
    );

    // The old session's key is gone from the JWKS: its cached verification is not served.
    let resp = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn random_kids_cause_only_rate_limited_fetches() {
    let s = setup().await;
    let base = s.provider.counts().jwks_fetches;
    let id = s.provider.id_token(&user(), None);
    let forged = |i: usize| {
        let now = s.clock.now();
        s.provider.sign_with_header(
            &json!({"alg": "RS256", "typ": "JWT", "kid": format!("random-{i}")}),
            &json!({"iss": s.provider.issuer(), "aud": "test-client", "sub": "x",
                    "iat": now, "exp": now + 300}),
        )
    };
    let mut futures = Vec::new();
    for i in 0..20 {
        let cookie = s
            .provider
            .session_cookie_with_tokens(&s.auth, &forged(i), None, &id);
        let app = s.app.clone();
        futures.push(tokio::spawn(async move {
            me_with_raw_cookie(&app, &cookie).await.status()
        }));
    }
    for f in futures {
        assert_eq!(f.await.unwrap(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        s.provider.counts().jwks_fetches,
        base + 1,
        "one fetch for 20 random kids"
    );
    for i in 20..30 {
        let cookie = s
            .provider
            .session_cookie_with_tokens(&s.auth, &forged(i), None, &id);
        assert_eq!(
            me_with_raw_cookie(&s.app, &cookie).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(s.provider.counts().jwks_fetches, base + 1);
    // After the interval, one more fetch is allowed.
    s.clock.advance(Duration::from_secs(11));
    let cookie = s
        .provider
        .session_cookie_with_tokens(&s.auth, &forged(99), None, &id);
    assert_eq!(
        me_with_raw_cookie(&s.app, &cookie).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(s.provider.counts().jwks_fetches, base + 2);
}

#[tokio::test]
async fn jwks_failure_keeps_cached_keys() {
    let s = setup().await;
    let mut jar = Jar::default();
    login(&s, &mut jar, "/auth/login").await;
    s.provider.set_jwks_failure(Some(Failure::Status(500)));
    // A random kid forces a refetch, which fails; the known key keeps working.
    let id = s.provider.id_token(&user(), None);
    let now = s.clock.now();
    let forged = s.provider.sign_with_header(
        &json!({"alg": "RS256", "kid": "nope"}),
        &json!({"iss": s.provider.issuer(), "aud": "test-client", "sub": "x", "iat": now, "exp": now + 60}),
    );
    let cookie = s
        .provider
        .session_cookie_with_tokens(&s.auth, &forged, None, &id);
    assert_eq!(
        me_with_raw_cookie(&s.app, &cookie).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&s.app, &mut jar, get_json("/me")).await.status(),
        StatusCode::OK
    );
    let fresh = s.provider.session_cookie(&s.auth, &TestUser::new("new"));
    assert_eq!(
        me_with_raw_cookie(&s.app, &fresh).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn forged_and_invalid_access_tokens_are_refused() {
    let s = setup().await;
    let id = s.provider.id_token(&user(), None);
    let now = s.clock.now();
    let iss = s.provider.issuer().to_owned();
    let b64 = |v: &serde_json::Value| {
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            v.to_string(),
        )
    };
    let claims =
        json!({"iss": iss, "aud": "test-client", "sub": "x", "iat": now, "exp": now + 300});
    let valid = s.provider.sign(&claims);
    let sig = valid.split('.').nth(2).unwrap().to_owned();
    let with = |patch: serde_json::Value| {
        let mut c = claims.clone();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        s.provider.sign(&c)
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims)),
        ),
        (
            "alg none with kid",
            format!(
                "{}.{}.{sig}",
                b64(&json!({"alg": "none", "kid": "key-1"})),
                b64(&claims)
            ),
        ),
        (
            "HS256 with kid",
            format!(
                "{}.{}.{sig}",
                b64(&json!({"alg": "HS256", "kid": "key-1"})),
                b64(&claims)
            ),
        ),
        (
            "payload swapped",
            format!(
                "{}.{}.{sig}",
                valid.split('.').next().unwrap(),
                b64(
                    &json!({"iss": iss, "aud": "test-client", "sub": "admin", "iat": now, "exp": now + 300})
                )
            ),
        ),
        ("wrong issuer", with(json!({"iss": "https://evil.example"}))),
        ("wrong audience", with(json!({"aud": "someone-else"}))),
        (
            "no audience, other client",
            with(json!({"aud": null, "client_id": "someone-else"})),
        ),
        ("expired", with(json!({"exp": now - 61}))),
        ("not yet valid", with(json!({"nbf": now + 120}))),
        ("issued in the future", with(json!({"iat": now + 120}))),
        ("no exp", with(json!({"exp": null}))),
        ("no sub", with(json!({"sub": null}))),
        ("numeric sub", with(json!({"sub": 5}))),
        (
            "typ id_token",
            s.provider.sign_with_header(
                &json!({"alg": "RS256", "typ": "id+jwt", "kid": "key-1"}),
                &claims,
            ),
        ),
        ("not a jwt", "abc".to_owned()),
        ("two parts", "a.b".to_owned()),
        ("empty", String::new()),
    ];
    for (what, token) in cases {
        let cookie = s
            .provider
            .session_cookie_with_tokens(&s.auth, &token, None, &id);
        let resp = me_with_raw_cookie(&s.app, &cookie).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
    }
    // And the control: the valid one passes.
    let cookie = s
        .provider
        .session_cookie_with_tokens(&s.auth, &valid, None, &id);
    assert_eq!(
        me_with_raw_cookie(&s.app, &cookie).await.status(),
        StatusCode::OK
    );
    let ok_typ = s.provider.sign_with_header(
        &json!({"alg": "RS256", "typ": "at+jwt", "kid": "key-1"}),
        &claims,
    );
    let cookie = s
        .provider
        .session_cookie_with_tokens(&s.auth, &ok_typ, None, &id);
    assert_eq!(
        me_with_raw_cookie(&s.app, &cookie).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn build_fails_clearly() {
    let provider = TestProvider::start().await;
    let err = |e: ConfigError| e.to_string();

    // Unreachable provider.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = provider
        .layer_builder(REDIRECT)
        .provider(Provider::discover(format!("http://127.0.0.1:{port}")))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(e, ConfigError::Discovery { .. }), "{e}");
    assert!(err(e).contains("openid-configuration"));

    // Issuer mismatch (localhost vs 127.0.0.1).
    let e = provider
        .layer_builder(REDIRECT)
        .provider(Provider::discover(
            provider.issuer().replace("127.0.0.1", "localhost"),
        ))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(e, ConfigError::IssuerMismatch { .. }), "{e}");

    // JWKS unavailable.
    provider.set_jwks_failure(Some(Failure::Status(503)));
    let e = provider.layer_builder(REDIRECT).build().await.unwrap_err();
    assert!(matches!(e, ConfigError::Jwks { .. }), "{e}");
    provider.set_jwks_failure(None);

    // Plain http off loopback, short keys, missing settings.
    let e = provider
        .layer_builder("http://app.example.com/cb")
        .build()
        .await
        .unwrap_err();
    assert!(err(e).contains("https"));
    let e = provider
        .layer_builder(REDIRECT)
        .cookie_key([1u8; 63])
        .build()
        .await
        .unwrap_err();
    assert!(err(e).contains("key 2 has 63 bytes"));
    let e = AuthLayer::builder()
        .provider(Provider::discover(provider.issuer()))
        .client_id("test-client")
        .client_secret("test-secret")
        .redirect_url(REDIRECT)
        .cookie_key([1u8; 32])
        .build()
        .await
        .unwrap_err();
    assert!(matches!(e, ConfigError::CookieKey(_)), "{e}");
    drop(e);
    let e = AuthLayer::builder().build().await.unwrap_err();
    assert!(matches!(e, ConfigError::Missing("provider")), "{e}");
    let e = provider
        .layer_builder(REDIRECT)
        .cookie_name_prefix("bad name")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(e, ConfigError::Invalid { .. }), "{e}");

    // https on a real host is accepted and gets Secure, __Host- cookies.
    let auth = provider
        .layer_builder("https://app.example.com/auth/callback")
        .build()
        .await
        .unwrap();
    let cookie = provider.session_cookie(&auth, &user());
    assert!(cookie.starts_with("__Host-"), "{cookie}");
    assert!(cookie.contains("; __Secure-"), "{cookie}");
}

// ---- ID tokens and responses at the callback (modelled on the OpenID RP conformance tests) ----

use tower_oidc_auth::testing::IdTokenDefect;

/// Runs a login whose callback should be refused; checks the refusal is clean.
async fn refused_login(s: &Setup, expected: StatusCode, what: &str) {
    let mut jar = Jar::default();
    let resp = login(s, &mut jar, "/auth/login").await;
    assert_eq!(resp.status(), expected, "{what}");
    assert!(
        jar.get("_s").is_none() && jar.get("_id").is_none(),
        "{what}: no session cookies: {:?}",
        jar.names()
    );
    let body = body_string(resp).await;
    assert!(
        body.contains("Try again") && body.contains("href=\"/auth/login\""),
        "{what}: {body}"
    );
}

#[tokio::test]
async fn defective_id_tokens_are_refused() {
    let s = setup().await;
    for defect in [
        IdTokenDefect::AlgNone,
        IdTokenDefect::Hs256WithPublicKey,
        IdTokenDefect::UnknownKey,
        IdTokenDefect::WrongIssuer,
        IdTokenDefect::WrongAudience,
        IdTokenDefect::SeveralAudiencesWithoutAzp,
        IdTokenDefect::AzpMismatch,
        IdTokenDefect::Expired,
        IdTokenDefect::IssuedLongAgo,
        IdTokenDefect::IssuedInFuture,
        IdTokenDefect::MissingNonce,
        IdTokenDefect::WrongNonce,
        IdTokenDefect::AtHashMismatch,
        IdTokenDefect::MissingSub,
    ] {
        s.provider.set_id_token_defect(Some(defect));
        refused_login(&s, StatusCode::BAD_REQUEST, &format!("{defect:?}")).await;
    }
    // The control: without a defect the same provider logs in.
    s.provider.set_id_token_defect(None);
    let mut jar = Jar::default();
    assert_eq!(
        login(&s, &mut jar, "/auth/login").await.status(),
        StatusCode::FOUND
    );
}

#[tokio::test]
async fn missing_kid_is_refused_with_several_keys_and_accepted_with_one() {
    let s = setup().await;
    s.provider.set_id_token_defect(Some(IdTokenDefect::NoKid));
    let mut jar = Jar::default();
    assert_eq!(
        login(&s, &mut jar, "/auth/login").await.status(),
        StatusCode::FOUND,
        "one published key: a missing kid is unambiguous"
    );
    s.provider.rotate_keys(false);
    // Let the layer see the second key (a token with the new kid triggers the refetch).
    let fresh = s.provider.session_cookie(&s.auth, &user());
    assert_eq!(
        me_with_raw_cookie(&s.app, &fresh).await.status(),
        StatusCode::OK
    );
    refused_login(&s, StatusCode::BAD_REQUEST, "no kid, two keys").await;
}

#[tokio::test]
async fn broken_or_slow_token_endpoint() {
    let s = setup_with(|c| c.http_timeout(Duration::from_secs(1))).await;
    for (failure, status) in [
        (Failure::NotJson, StatusCode::BAD_GATEWAY),
        (Failure::Truncated, StatusCode::BAD_GATEWAY),
        (
            Failure::Oversized(10 * 1024 * 1024),
            StatusCode::BAD_GATEWAY,
        ),
        (
            Failure::Delay(Duration::from_secs(30)),
            StatusCode::GATEWAY_TIMEOUT,
        ),
    ] {
        s.provider.set_token_failure(Some(failure.clone()));
        refused_login(&s, status, &format!("{failure:?}")).await;
    }
}

#[tokio::test]
async fn callback_defects() {
    let s = setup().await;
    // iss parameter mismatch.
    let mut jar = Jar::default();
    let resp = send(&s.app, &mut jar, get_html("/auth/login")).await;
    let callback = authorize(&location(&resp)).await;
    let issuer: String =
        url::form_urlencoded::byte_serialize(s.provider.issuer().as_bytes()).collect();
    let evil = callback.replace(&issuer, "https%3A%2F%2Fevil.example");
    let resp = send(&s.app, &mut jar.clone(), get_html(&evil)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // Replay: the same callback twice. The second never reaches the token endpoint.
    let resp = send(&s.app, &mut jar, get_html(&callback)).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let grants = s.provider.counts().code_grants;
    let mut replay = jar.clone();
    replay.cookies.retain(|c| !c.name.ends_with("_s"));
    let resp = send(&s.app, &mut replay, get_html(&callback)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(replay.get("_s").is_none());
    assert_eq!(s.provider.counts().code_grants, grants);

    // State from another browser: the victim's callback URL opened in the attacker's browser
    // (which has a login attempt of its own) is refused.
    let mut victim = Jar::default();
    let resp = send(&s.app, &mut victim, get_html("/auth/login")).await;
    let victim_callback = authorize(&location(&resp)).await;
    let mut attacker = Jar::default();
    send(&s.app, &mut attacker, get_html("/auth/login")).await;
    let resp = send(&s.app, &mut attacker, get_html(&victim_callback)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(attacker.get("_s").is_none());
    assert_eq!(s.provider.counts().code_grants, grants);
    // The victim's own callback still works.
    let resp = send(&s.app, &mut victim, get_html(&victim_callback)).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn too_many_parallel_logins_do_not_pile_up_cookies() {
    let s = setup().await;
    let mut jar = Jar::default();
    // Forty XHRs after a session timeout each start a login.
    for _ in 0..40 {
        let resp = send(&s.app, &mut jar, get_html("/auth/login")).await;
        assert_eq!(resp.status(), StatusCode::FOUND);
    }
    let tx = jar.names().iter().filter(|n| n.contains("_tx_")).count();
    assert!(tx <= 5, "at most the configured attempts are kept: {tx}");
    assert!(jar.header_for("/auth/callback").len() < 4096);
}

#[tokio::test]
async fn jwks_cache_control_max_age_is_respected() {
    let s = setup().await;
    s.provider.set_jwks_max_age(Some(120));
    // A fetch that carries the max-age: a rotation picked up through an unknown kid.
    s.provider.rotate_keys(false);
    let cookie = s.provider.session_cookie(&s.auth, &user());
    assert_eq!(
        me_with_raw_cookie(&s.app, &cookie).await.status(),
        StatusCode::OK
    );
    let after_rotation = s.provider.counts().jwks_fetches;

    // Within max-age, a new token with a known kid costs no fetch.
    let cookie = s.provider.session_cookie(&s.auth, &TestUser::new("b"));
    assert_eq!(
        me_with_raw_cookie(&s.app, &cookie).await.status(),
        StatusCode::OK
    );
    assert_eq!(s.provider.counts().jwks_fetches, after_rotation);

    // Past max-age, the next verification is served at once with the stale keys and refreshes
    // them in the background (one fetch).
    s.clock.advance(Duration::from_secs(121));
    let cookie = s.provider.session_cookie(&s.auth, &TestUser::new("c"));
    assert_eq!(
        me_with_raw_cookie(&s.app, &cookie).await.status(),
        StatusCode::OK
    );
    wait_for_jwks_fetches(&s.provider, after_rotation + 1).await;
    assert_eq!(s.provider.counts().jwks_fetches, after_rotation + 1);
}

// ---- Issue 12: the request surface and token handling (independent review of f185fbc) ----
//
// Each test below reproduces one finding of the review as an attack, and failed on f185fbc.

use axum::routing::get;
use axum::Router;
use tower_oidc_auth::testing::AccessTokenDefect;
use tower_oidc_auth::Claims;

const ORIGIN: &str = "http://127.0.0.1:3000";

/// A second layer (another client of the same provider) for an admin area under `/admin`.
async fn staff_layer(provider: &TestProvider) -> AuthLayer {
    provider
        .layer_builder("http://127.0.0.1:3000/admin/auth/callback")
        .client_id("staff-app")
        .base_path("/admin/auth")
        .session_path("/admin")
        .build()
        .await
        .unwrap()
}

/// Finding 1: an admin area behind a second layer, nested in the customers' layer. A customer
/// session (whose claims say `admin`, in the customers' world) must not open it.
#[tokio::test]
async fn nested_layer_refuses_claims_attached_by_an_outer_layer() {
    let s = setup().await;
    let customers = s.auth.clone();
    let staff = staff_layer(&s.provider).await;
    let admin = Router::new()
        .route("/admin", get(|c: Claims| async move { c.sub.clone() }))
        .route_layer(staff.require_role("admin"))
        .route(
            "/admin/whoami",
            get(|c: Option<Claims>| async move { c.map(|c| c.sub.clone()).unwrap_or_default() }),
        )
        .route(
            "/admin/extract",
            get(|c: Claims| async move { c.sub.clone() }),
        )
        .layer(staff.clone());
    let app = Router::new()
        .route("/me", get(|c: Claims| async move { c.sub.clone() }))
        .merge(admin)
        .layer(customers.clone());

    let customer = s.provider.session_cookie(&customers, &user());
    assert_eq!(
        app.clone()
            .oneshot(request("/me", &customer))
            .await
            .unwrap()
            .status(),
        StatusCode::OK,
        "the customer's own area"
    );
    for path in ["/admin", "/admin/extract"] {
        let resp = app.clone().oneshot(request(path, &customer)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
        let resp = app
            .clone()
            .oneshot(get_html(path).tap_cookie(&customer))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FOUND, "{path}: browser");
        assert!(location(&resp).starts_with("/admin/auth/login"), "{path}");
    }
    let resp = app
        .clone()
        .oneshot(request("/admin/whoami", &customer))
        .await
        .unwrap();
    assert_eq!(
        body_string(resp).await,
        "",
        "no claims from the outer layer"
    );

    // The staff's own session opens it, alone or beside a customer session.
    let staff_cookie = s.provider.session_cookie(&staff, &user());
    for cookie in [staff_cookie.clone(), format!("{customer}; {staff_cookie}")] {
        let resp = app
            .clone()
            .oneshot(request("/admin", &cookie))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
}

/// Finding 1: a guard of one layer, mounted where only another layer runs (the staff layer
/// forgotten), must not judge the other layer's claims.
#[tokio::test]
async fn guard_of_one_layer_refuses_claims_of_another() {
    let s = setup().await;
    let staff = staff_layer(&s.provider).await;
    let app = Router::new()
        .route("/admin", get(|| async { "secret" }))
        .route_layer(staff.require_role("admin"))
        .route("/staff-only", get(|| async { "secret" }))
        .route_layer(staff.require())
        .layer(s.auth.clone());
    let customer = s.provider.session_cookie(&s.auth, &user());
    for path in ["/admin", "/staff-only"] {
        let resp = app.clone().oneshot(request(path, &customer)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
}

/// Finding 1: two sibling layers on different paths keep working side by side.
#[tokio::test]
async fn sibling_layers_on_different_paths_keep_working() {
    let s = setup().await;
    let a = s.auth.clone();
    let b = staff_layer(&s.provider).await;
    let app = Router::new()
        .merge(
            Router::new()
                .route("/me", get(|c: Claims| async move { c.sub.clone() }))
                .layer(a.clone()),
        )
        .merge(
            Router::new()
                .route("/admin/me", get(|c: Claims| async move { c.sub.clone() }))
                .route_layer(b.require())
                .layer(b.clone()),
        );
    let ca = s.provider.session_cookie(&a, &TestUser::new("alice"));
    let cb = s.provider.session_cookie(&b, &TestUser::new("bob"));
    let both = format!("{ca}; {cb}");
    let resp = app.clone().oneshot(request("/me", &both)).await.unwrap();
    assert_eq!(body_string(resp).await, "alice");
    let resp = app
        .clone()
        .oneshot(request("/admin/me", &both))
        .await
        .unwrap();
    assert_eq!(body_string(resp).await, "bob");
    let resp = app
        .clone()
        .oneshot(request("/admin/me", &ca))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

trait TapCookie {
    fn tap_cookie(self, cookie: &str) -> Self;
}

impl TapCookie for Request<Body> {
    fn tap_cookie(mut self, cookie: &str) -> Self {
        self.headers_mut()
            .insert(header::COOKIE, cookie.parse().unwrap());
        self
    }
}

/// Finding 2: the ID token travels in the front channel (`id_token_hint` on logout). Taken from
/// the logout redirect and sent as a bearer token, it must be refused.
#[tokio::test]
async fn id_token_hint_from_logout_redirect_is_refused_as_bearer() {
    let s = setup().await;
    let mut jar = Jar::default();
    assert_eq!(
        login(&s, &mut jar, "/auth/login").await.status(),
        StatusCode::FOUND
    );
    let resp = send(&s.app, &mut jar, logout_post_from(ORIGIN)).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let end = url::Url::parse(&location(&resp)).unwrap();
    let hint = end
        .query_pairs()
        .find(|(k, _)| k == "id_token_hint")
        .map(|(_, v)| v.into_owned())
        .expect("id_token_hint");
    // Another instance of the app, which did not see this logout (no shared revocation store),
    // or any app of a provider that puts no `sid` in its tokens.
    let other = app(&s.provider.layer_builder(REDIRECT).build().await.unwrap());
    let resp = other.oneshot(bearer("/me", &hint)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
}

/// Finding 2: the markers of an ID token refuse a token on the access path (bearer and
/// session); `auth_time` alone does not (Keycloak access tokens carry it).
#[tokio::test]
async fn id_token_markers_are_refused_on_the_access_path() {
    let s = setup().await;
    let now = s.clock.now();
    let base = json!({"iss": s.provider.issuer(), "aud": "test-client", "sub": "x",
                      "iat": now, "exp": now + 300});
    let with = |patch: serde_json::Value| {
        let mut c = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        s.provider.sign(&c)
    };
    let id = s.provider.id_token(&user(), None);
    for (what, token) in [
        ("nonce", with(json!({"nonce": "n"}))),
        ("at_hash", with(json!({"at_hash": "abc"}))),
        ("c_hash", with(json!({"c_hash": "abc"}))),
        ("typ ID (Keycloak)", with(json!({"typ": "ID"}))),
    ] {
        let resp = s.app.clone().oneshot(bearer("/me", &token)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "bearer: {what}");
        let cookie = s
            .provider
            .session_cookie_with_tokens(&s.auth, &token, None, &id);
        let resp = me_with_raw_cookie(&s.app, &cookie).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "session: {what}");
    }
    let keycloak_like = with(json!({"auth_time": now - 10, "typ": "Bearer"}));
    let resp = s
        .app
        .clone()
        .oneshot(bearer("/me", &keycloak_like))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "auth_time alone is fine");
}

/// Finding 2: `.access_token_typ(..)` requires a header `typ` where a provider types its access
/// tokens (RFC 9068 `at+jwt`).
#[tokio::test]
async fn access_token_typ_is_enforced_when_configured() {
    let s = setup_with(|c| c.access_token_typ("at+jwt")).await;
    let now = s.clock.now();
    let claims = json!({"iss": s.provider.issuer(), "aud": "test-client", "sub": "x",
                        "iat": now, "exp": now + 300});
    let kid = s.provider.current_kid();
    let plain = s
        .provider
        .sign_with_header(&json!({"alg": "RS256", "typ": "JWT", "kid": kid}), &claims);
    let none = s
        .provider
        .sign_with_header(&json!({"alg": "RS256", "kid": kid}), &claims);
    let typed = s.provider.sign_with_header(
        &json!({"alg": "RS256", "typ": "at+jwt", "kid": kid}),
        &claims,
    );
    let long = s.provider.sign_with_header(
        &json!({"alg": "RS256", "typ": "application/at+jwt", "kid": kid}),
        &claims,
    );
    for (token, expected) in [
        (plain, StatusCode::UNAUTHORIZED),
        (none, StatusCode::UNAUTHORIZED),
        (typed, StatusCode::OK),
        (long, StatusCode::OK),
    ] {
        let resp = s.app.clone().oneshot(bearer("/me", &token)).await.unwrap();
        assert_eq!(resp.status(), expected);
    }
}

/// Finding 3: a JWT-shaped access token that does not verify was classified as opaque and the
/// user signed in on the ID token alone. Now the login fails.
#[tokio::test]
async fn login_fails_when_the_access_token_is_a_jwt_that_does_not_verify() {
    let s = setup().await;
    for defect in [AccessTokenDefect::AlgNone, AccessTokenDefect::UnknownKey] {
        s.provider.set_access_token_defect(Some(defect));
        refused_login(&s, StatusCode::BAD_REQUEST, &format!("{defect:?}")).await;
    }
    // Wrong audience: refused, and the page names the audience and the builder call.
    s.provider
        .set_access_token_defect(Some(AccessTokenDefect::WrongAudience));
    let mut jar = Jar::default();
    let resp = login(&s, &mut jar, "/auth/login").await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(jar.get("_s").is_none(), "{:?}", jar.names());
    let body = body_string(resp).await;
    assert!(
        body.contains("https://api.other.example") && body.contains(".audience("),
        "{body}"
    );
}

/// Finding 3: the audience named on the error page, once configured, is accepted; and a JWT
/// access token without `aud` (oauth2-mock-server issues such) signs in and keeps working.
#[tokio::test]
async fn configured_audience_and_audience_less_access_tokens_sign_in() {
    let s = setup_with(|c| c.audience("https://api.other.example")).await;
    s.provider
        .set_access_token_defect(Some(AccessTokenDefect::WrongAudience));
    let mut jar = Jar::default();
    assert_eq!(
        login(&s, &mut jar, "/auth/login").await.status(),
        StatusCode::FOUND
    );
    let resp = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::OK);

    let s = setup().await;
    s.provider
        .set_access_token_defect(Some(AccessTokenDefect::NoAudience));
    let mut jar = Jar::default();
    assert_eq!(
        login(&s, &mut jar, "/auth/login").await.status(),
        StatusCode::FOUND
    );
    let resp = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::OK, "the session rests on it");
    // The same token presented as a bearer token by someone else is not for this client.
    let now = s.clock.now();
    let audless = s
        .provider
        .sign(&json!({"iss": s.provider.issuer(), "sub": "x",
                                          "iat": now, "exp": now + 300}));
    let resp = s
        .app
        .clone()
        .oneshot(bearer("/me", &audless))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

/// Finding 4: a cross-site GET to logout (`<a href>`, `window.open`) used to end the session and
/// the provider's single sign-on. It now gets a confirmation page whose button POSTs.
#[tokio::test]
async fn cross_site_get_to_logout_keeps_the_session() {
    let s = setup().await;
    let mut jar = Jar::default();
    assert_eq!(
        login(&s, &mut jar, "/auth/login").await.status(),
        StatusCode::FOUND
    );
    let logouts = |r: &http::Response<Body>| {
        r.headers()
            .get(header::LOCATION)
            .is_some_and(|l| l.to_str().unwrap().contains("/oidc/logout"))
    };
    let attempts: Vec<(&str, Request<Body>)> = vec![
        (
            // Also a link opened from a mail or chat app (see the review's attacks below).
            "typed URL",
            Request::get("/auth/logout")
                .header("sec-fetch-site", "none")
                .header("sec-fetch-mode", "navigate")
                .body(Body::empty())
                .unwrap(),
        ),
        (
            "same-origin <img src> in user content",
            Request::get("/auth/logout")
                .header("sec-fetch-site", "same-origin")
                .header("sec-fetch-mode", "no-cors")
                .header("sec-fetch-dest", "image")
                .body(Body::empty())
                .unwrap(),
        ),
        (
            "cross-site navigation",
            Request::get("/auth/logout")
                .header(header::ACCEPT, "text/html")
                .header("sec-fetch-site", "cross-site")
                .header("sec-fetch-mode", "navigate")
                .body(Body::empty())
                .unwrap(),
        ),
        (
            "sibling subdomain",
            Request::get("/auth/logout")
                .header("sec-fetch-site", "same-site")
                .body(Body::empty())
                .unwrap(),
        ),
        (
            "no fetch metadata, no referer",
            Request::get("/auth/logout")
                .header(header::ACCEPT, "text/html")
                .body(Body::empty())
                .unwrap(),
        ),
        (
            "no fetch metadata, foreign referer",
            Request::get("/auth/logout")
                .header(header::REFERER, "https://evil.example/page")
                .body(Body::empty())
                .unwrap(),
        ),
        (
            "referer on another port",
            Request::get("/auth/logout")
                .header(header::REFERER, "http://127.0.0.1:3001/")
                .body(Body::empty())
                .unwrap(),
        ),
        (
            "cross-site form POST",
            logout_post_from("https://evil.example"),
        ),
        ("opaque origin POST", logout_post_from("null")),
        (
            "POST without Origin",
            Request::post("/auth/logout")
                .header("sec-fetch-site", "cross-site")
                .body(Body::empty())
                .unwrap(),
        ),
    ];
    for (what, req) in attempts {
        let resp = send(&s.app, &mut jar, req).await;
        assert_eq!(resp.status(), StatusCode::OK, "{what}");
        assert!(
            !logouts(&resp) && !set_cookies(&resp).removes_any(),
            "{what}"
        );
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store", "{what}");
        let body = body_string(resp).await;
        assert!(
            body.contains("method=\"post\"") && body.contains("action=\"/auth/logout\""),
            "{what}: {body}"
        );
        let me = send(&s.app, &mut jar, get_json("/me")).await;
        assert_eq!(me.status(), StatusCode::OK, "{what}: still signed in");
    }
    assert_eq!(s.provider.counts().logouts, 0);

    // Same-origin: each ends the session.
    let same_origin: Vec<(&str, Request<Body>)> = vec![
        (
            "same-origin link",
            Request::get("/auth/logout")
                .header("sec-fetch-site", "same-origin")
                .header("sec-fetch-mode", "navigate")
                .body(Body::empty())
                .unwrap(),
        ),
        (
            "old browser, same-origin referer",
            Request::get("/auth/logout")
                .header(header::REFERER, format!("{ORIGIN}/settings"))
                .body(Body::empty())
                .unwrap(),
        ),
        ("the confirmation button", logout_post_from(ORIGIN)),
    ];
    for (what, req) in same_origin {
        let mut jar = Jar::default();
        assert_eq!(
            login(&s, &mut jar, "/auth/login").await.status(),
            StatusCode::FOUND
        );
        let session = jar.header_for("/me");
        let resp = send(&s.app, &mut jar, req).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "{what}");
        assert!(logouts(&resp) && set_cookies(&resp).removes_any(), "{what}");
        assert!(location(&resp).contains("id_token_hint="), "{what}");
        // The old cookie no longer works either (revoked).
        let resp = me_with_raw_cookie(&s.app, &session).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
    }
}

/// Finding 5: a cross-site link to login with a connection or organization starts a login into
/// a tenant the attacker configured. Pass-through parameters now need a same-origin request.
#[tokio::test]
async fn cross_site_login_link_cannot_choose_the_tenant() {
    let s = setup().await;
    let q = "/auth/login?connection_id=conn_attacker&organization_id=org_attacker\
             &domain_hint=evil.example&login_hint=victim%40example.com&return_to=%2Fme";
    let start = |site: Option<&str>, referer: Option<&str>| {
        let mut r = Request::get(q).header(header::ACCEPT, "text/html");
        if let Some(site) = site {
            r = r.header("sec-fetch-site", site);
        }
        if let Some(referer) = referer {
            r = r.header(header::REFERER, referer);
        }
        r.body(Body::empty()).unwrap()
    };
    for (what, req) in [
        ("cross-site", start(Some("cross-site"), None)),
        (
            "typed, or opened from a mail app",
            start(Some("none"), None),
        ),
        ("same-site", start(Some("same-site"), None)),
        ("no metadata", start(None, None)),
        (
            "foreign referer",
            start(None, Some("https://evil.example/")),
        ),
    ] {
        let resp = s.app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::FOUND, "{what}");
        let to = location(&resp);
        for name in [
            "connection_id",
            "organization_id",
            "domain_hint",
            "login_hint",
        ] {
            assert!(!to.contains(name), "{what}: {name} passed through: {to}");
        }
        assert!(to.contains("code_challenge="), "{what}: still a login");
    }
    for (what, req) in [
        ("same-origin", start(Some("same-origin"), None)),
        (
            "old browser",
            start(None, Some(&format!("{ORIGIN}/pricing"))),
        ),
    ] {
        let resp = s.app.clone().oneshot(req).await.unwrap();
        let to = location(&resp);
        assert!(
            to.contains("connection_id=conn_attacker") && to.contains("domain_hint="),
            "{what}: {to}"
        );
    }
}

/// Finding 5: the app can approve an organization or connection before it is sent.
#[tokio::test]
async fn app_approves_pass_through_parameters() {
    let s = setup_with(|c| {
        c.approve_authorize_param(|name, value| {
            name != "organization_id" || value.starts_with("org_ours")
        })
    })
    .await;
    let req = |q: &str| {
        Request::get(format!("/auth/login?{q}"))
            .header("sec-fetch-site", "same-origin")
            .body(Body::empty())
            .unwrap()
    };
    let resp = s
        .app
        .clone()
        .oneshot(req("organization_id=org_theirs&connection_id=conn_1"))
        .await
        .unwrap();
    let to = location(&resp);
    assert!(!to.contains("org_theirs") && to.contains("conn_1"), "{to}");
    let resp = s
        .app
        .clone()
        .oneshot(req("organization_id=org_ours_1"))
        .await
        .unwrap();
    assert!(location(&resp).contains("organization_id=org_ours_1"));
}

/// Finding 6: when the layer adds `Set-Cookie` to a handler's publicly cacheable response, a
/// shared cache could serve one user's session to everyone.
#[tokio::test]
async fn layer_cookies_never_ride_on_publicly_cacheable_responses() {
    let s = setup().await;
    let app = Router::new()
        .route(
            "/public",
            get(|| async {
                (
                    [
                        (header::CACHE_CONTROL, "public, max-age=3600, s-maxage=600"),
                        (header::VARY, "Accept-Encoding"),
                    ],
                    "cacheable",
                )
            }),
        )
        .layer(s.auth.clone());
    let check = |resp: &http::Response<Body>, what: &str| {
        assert!(resp.headers().contains_key(header::SET_COOKIE), "{what}");
        let cc: Vec<_> = resp
            .headers()
            .get_all(header::CACHE_CONTROL)
            .iter()
            .collect();
        assert_eq!(cc.len(), 1, "{what}");
        let cc = cc[0].to_str().unwrap();
        assert!(
            cc.contains("no-store") && cc.contains("private"),
            "{what}: {cc}"
        );
        assert!(
            !cc.contains("public") && !cc.contains("max-age"),
            "{what}: {cc}"
        );
        let vary: Vec<String> = resp
            .headers()
            .get_all(header::VARY)
            .iter()
            .map(|v| v.to_str().unwrap().to_ascii_lowercase())
            .collect();
        assert!(
            vary.iter().any(|v| v.contains("cookie")),
            "{what}: {vary:?}"
        );
        assert!(
            vary.iter().any(|v| v.contains("accept-encoding")),
            "{what}: {vary:?}"
        );
    };
    // A cookie being cleared (tampered).
    let good = s.provider.session_cookie(&s.auth, &user());
    let tampered = good.replacen("=", "=A", 1);
    let resp = app
        .clone()
        .oneshot(request("/public", &tampered))
        .await
        .unwrap();
    check(&resp, "cleared");
    // A session refreshed on the way through.
    s.clock.advance(Duration::from_secs(400));
    let resp = app
        .clone()
        .oneshot(request("/public", &good))
        .await
        .unwrap();
    check(&resp, "refreshed");
    // Without cookies set by the layer, the handler's caching is left alone.
    let resp = app
        .clone()
        .oneshot(Request::get("/public").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        resp.headers()[header::CACHE_CONTROL],
        "public, max-age=3600, s-maxage=600"
    );
}

/// Finding 6: the layer's own answers are never stored by a cache.
#[tokio::test]
async fn the_layers_own_answers_are_no_store() {
    let s = setup().await;
    let grpc = Request::post("/me")
        .header(header::CONTENT_TYPE, "application/grpc")
        .body(Body::empty())
        .unwrap();
    let bad_bearer = bearer("/me", "not-a-token");
    let reqs = vec![
        ("api 401", get_json("/me")),
        ("browser redirect", get_html("/me")),
        ("grpc 16", grpc),
        ("bad bearer", bad_bearer),
        ("login", get_html("/auth/login")),
        ("callback error", get_html("/auth/callback?state=x&code=y")),
        ("logout confirm", get_html("/auth/logout")),
    ];
    for (what, req) in reqs {
        let resp = s.app.clone().oneshot(req).await.unwrap();
        let cc = resp
            .headers()
            .get(header::CACHE_CONTROL)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert!(cc.contains("no-store"), "{what}: {cc:?}");
    }
}

/// Finding 9: cookie tossing. A sibling subdomain can set `__Secure-` cookies (with
/// `Domain=example.com`) for the app's host, but never `__Host-` ones. An attacker who starts a
/// login of their own and tosses their transaction cookie into the victim's browser, then sends
/// the victim to the callback with their code, must not sign the victim into their account.
#[tokio::test]
async fn tossed_transaction_cookie_from_a_sibling_subdomain_is_ignored() {
    let s = setup().await;
    let https = s
        .provider
        .layer_builder("https://app.example.com/auth/callback")
        .build()
        .await
        .unwrap();
    let app = app(&https);
    let mut attacker = Jar::default();
    let resp = send(&app, &mut attacker, get_html("/auth/login")).await;
    let callback = authorize(&location(&resp)).await;
    let tx = attacker.tx().expect("a transaction cookie").clone();
    // What a sibling subdomain can write: the same name with `__Secure-` or no prefix, never
    // `__Host-`. The tossed value is the attacker's own, genuine, sealed transaction.
    let bare = tx
        .name
        .trim_start_matches("__Host-")
        .trim_start_matches("__Secure-")
        .to_owned();
    for tossed in [format!("__Secure-{bare}"), bare.clone()] {
        let mut victim = Jar::default();
        victim.cookies.push(crate::helpers::StoredCookie {
            name: tossed.clone(),
            value: tx.value.clone(),
            path: "/auth/callback".into(),
            set_cookie: None,
        });
        let resp = send(&app, &mut victim, get_html(&callback)).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{tossed}");
        assert!(victim.get("_s").is_none(), "{tossed}: {:?}", victim.names());
    }
    assert!(tx.name.starts_with("__Host-"), "{}", tx.name);
    assert_eq!(tx.attrs().path(), Some("/"), "{}", tx.attrs());
    // The attacker's own browser completes its own login.
    let resp = send(&app, &mut attacker, get_html(&callback)).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
}

/// Finding 10: `now + expires_in` overflowed (a panic in debug builds, a wrap in release) on a
/// huge `expires_in` from the token endpoint.
#[tokio::test]
async fn huge_expires_in_from_the_provider_does_not_overflow() {
    let clock = tower_oidc_auth::ManualClock::starting_now();
    let provider = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .opaque_access_tokens(true)
        .start()
        .await;
    // No refresh token, so the session lives exactly as long as its access token.
    let auth = provider
        .layer_builder(REDIRECT)
        .scopes(["openid", "profile", "email"])
        .build()
        .await
        .unwrap();
    let s = Setup {
        app: app(&auth),
        auth,
        provider,
        clock,
    };
    for value in [
        json!(i64::MAX),
        json!(u64::MAX),
        json!(i64::MIN),
        json!("9223372036854775807"),
        json!(-1),
    ] {
        s.provider.set_expires_in(Some(value.clone()));
        let mut jar = Jar::default();
        let resp = login(&s, &mut jar, "/auth/login").await;
        assert_eq!(resp.status(), StatusCode::FOUND, "{value}");
        let resp = send(&s.app, &mut jar, get_json("/me")).await;
        assert_eq!(resp.status(), StatusCode::OK, "{value}");
        // Clamped: an opaque token's session does not outlive the session's lifetime.
        s.clock.advance(Duration::from_secs(8 * 24 * 3600));
        let resp = send(&s.app, &mut jar, get_json("/me")).await;
        assert_ne!(resp.status(), StatusCode::OK, "{value}: clamped");
    }
}

/// Finding 10: a webhook timestamp of `i64::MIN` overflowed `now - ts`.
#[tokio::test]
async fn webhook_timestamp_at_the_edge_of_i64_does_not_overflow() {
    let s = setup_with(|c| c.webhook_secret("whsec_c2VjcmV0c2VjcmV0c2VjcmV0")).await;
    for ts in ["-9223372036854775808", "9223372036854775807"] {
        let req = Request::post("/auth/webhook")
            .header("webhook-id", "msg_1")
            .header("webhook-timestamp", ts)
            .header("webhook-signature", "v1,AAAA")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let resp = s.app.clone().oneshot(req).await.unwrap();
        assert!(resp.status().is_client_error(), "{ts}: {}", resp.status());
    }
}

/// Finding 11: an issuer published with a trailing slash (Auth0 and others) was refused at
/// build: the configured issuer was trimmed but discovery's compared exactly.
#[tokio::test]
async fn issuer_with_a_trailing_slash_is_compared_exactly() {
    let clock = tower_oidc_auth::ManualClock::starting_now();
    let provider = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .issuer_trailing_slash(true)
        .start()
        .await;
    assert!(provider.issuer().ends_with('/'));
    let auth = provider
        .layer_builder(REDIRECT)
        .provider(Provider::discover(provider.issuer()))
        .build()
        .await
        .expect("the issuer exactly as discovery publishes it");
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
    let resp = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::OK);

    // Configured without the slash: a mismatch, and the error shows both.
    let trimmed = s.provider.issuer().trim_end_matches('/').to_owned();
    let e = s
        .provider
        .layer_builder(REDIRECT)
        .provider(Provider::discover(&trimmed))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(e, ConfigError::IssuerMismatch { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains(&format!("\"{trimmed}\"")), "{text}");
    assert!(
        text.contains(&format!("\"{}\"", s.provider.issuer())),
        "{text}"
    );
}

/// Finding 12: a JOSE `crit` header names extensions the recipient must understand; none is
/// understood here, so such a token is refused (RFC 7515, section 4.1.11).
#[tokio::test]
async fn tokens_with_a_crit_header_are_refused() {
    let s = setup().await;
    let now = s.clock.now();
    let claims = json!({"iss": s.provider.issuer(), "aud": "test-client", "sub": "x",
                        "iat": now, "exp": now + 300});
    let kid = s.provider.current_kid();
    let crit = s.provider.sign_with_header(
        &json!({"alg": "RS256", "typ": "JWT", "kid": kid,
                "crit": ["https://example.com/must-understand"],
                "https://example.com/must-understand": "yes"}),
        &claims,
    );
    let resp = s.app.clone().oneshot(bearer("/me", &crit)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "bearer");
    let id = s.provider.id_token(&user(), None);
    let cookie = s
        .provider
        .session_cookie_with_tokens(&s.auth, &crit, None, &id);
    assert_eq!(
        me_with_raw_cookie(&s.app, &cookie).await.status(),
        StatusCode::UNAUTHORIZED,
        "session"
    );
    // At login, an ID token with `crit`.
    s.provider
        .set_id_token_defect(Some(IdTokenDefect::CriticalHeader));
    refused_login(&s, StatusCode::BAD_REQUEST, "crit in the ID token").await;
}

// ---- Independent review of the issue-12 changes ----
//
// Attacks on the issue-12 fixes. Where an attack succeeds, the test asserts the safe behaviour
// and fails until the crate is fixed; the others pin down what the crate withstands.

/// The claims of a JWT, read without verification (to inspect what went out in a URL).
fn jwt_payload(token: &str) -> serde_json::Map<String, serde_json::Value> {
    use base64::Engine;
    let part = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// What a browser sends for a link opened from another application (a mail client, a chat
/// app, a PDF viewer, a QR scanner): a navigation without an initiator, `Sec-Fetch-Site: none`,
/// exactly like a typed URL. Chrome keeps `none` across redirects of such a navigation
/// (w3c/webappsec-fetch-metadata#39), so a typed or e-mailed `https://evil.example/x` that
/// answers `302 Location: https://app/auth/logout` arrives the same way, without a Referer.
fn opened_from_another_app(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::ACCEPT, "text/html")
        .header("sec-fetch-site", "none")
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-dest", "document")
        .header("sec-fetch-user", "?1")
        .body(Body::empty())
        .unwrap()
}

/// Attack: an e-mailed `https://app/auth/logout` link, opened from the mail client, logs out.
#[tokio::test]
async fn logout_link_opened_from_another_app_asks_first() {
    let s = setup().await;
    let mut jar = Jar::default();
    assert_eq!(
        login(&s, &mut jar, "/auth/login").await.status(),
        StatusCode::FOUND
    );
    let resp = send(&s.app, &mut jar, opened_from_another_app("/auth/logout")).await;
    let to = resp
        .headers()
        .get(header::LOCATION)
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(
        !set_cookies(&resp).removes_any() && !to.contains("/oidc/logout"),
        "an attacker's link ended the session and the provider's single sign-on: {to}"
    );
    assert_eq!(resp.status(), StatusCode::OK, "the confirmation page");
    let me = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(me.status(), StatusCode::OK, "still signed in");
}

/// Attack: an e-mailed login link naming the attacker's connection and organization, opened
/// from the mail client, signs the victim in through the attacker's tenant (login CSRF).
#[tokio::test]
async fn login_link_opened_from_another_app_cannot_choose_the_tenant() {
    let s = setup().await;
    let resp = s
        .app
        .clone()
        .oneshot(opened_from_another_app(
            "/auth/login?connection_id=conn_attacker&organization_id=org_attacker\
             &domain_hint=evil.example&login_hint=victim%40example.com",
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let to = location(&resp);
    assert!(to.contains("code_challenge="), "still a login: {to}");
    for name in [
        "connection_id",
        "organization_id",
        "domain_hint",
        "login_hint",
    ] {
        assert!(!to.contains(name), "{name} chosen by the attacker: {to}");
    }
}

/// Attack: an ID token from a refresh (no `nonce`, Core 12.2) from a provider that omits the
/// OPTIONAL `at_hash` carries none of the markers: taken from the logout URL (browser history,
/// proxy and provider logs) it is accepted as a bearer token.
#[tokio::test]
async fn refreshed_id_token_without_markers_is_refused_as_bearer() {
    let s = setup().await;
    s.provider.set_id_token_at_hash(false);
    let mut jar = Jar::default();
    assert_eq!(
        login(&s, &mut jar, "/auth/login").await.status(),
        StatusCode::FOUND
    );
    // Past the access token's lifetime: the session refreshes and stores the new ID token.
    s.clock.advance(Duration::from_secs(400));
    let resp = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(s.provider.counts().refresh_grants, 1);
    let resp = send(&s.app, &mut jar, logout_post_from(ORIGIN)).await;
    let end = url::Url::parse(&location(&resp)).unwrap();
    let hint = end
        .query_pairs()
        .find(|(k, _)| k == "id_token_hint")
        .map(|(_, v)| v.into_owned())
        .expect("id_token_hint");
    // The refreshed ID token (no nonce, no at_hash) must never become the hint: the hint stays
    // the login's ID token, which carries our nonce.
    let claims = jwt_payload(&hint);
    assert!(claims.contains_key("nonce"), "{claims:?}");
    // Another instance of the app (or this one after a restart: the default revocation store
    // is in memory) does not know of the logout.
    let other = s.provider.layer_builder(REDIRECT).build().await.unwrap();
    let resp = app(&other).oneshot(bearer("/me", &hint)).await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "the ID token from the logout URL works as a bearer token: {}",
        body_string(resp).await
    );
}

/// Attack: a back-channel logout token (typed `JWT` or untyped, both allowed by Back-Channel
/// Logout 1.0; it has `sub`, `aud` and `exp`) replayed as a bearer token.
#[tokio::test]
async fn logout_token_is_refused_as_bearer() {
    let s = setup().await;
    let now = s.clock.now();
    let kid = s.provider.current_kid();
    let claims = json!({
        "iss": s.provider.issuer(), "aud": "test-client", "iat": now, "exp": now + 120,
        "jti": "jti-1", "sub": "usr_42", "sid": "sid-never-revoked",
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
    });
    // Withstood: the explicitly typed one.
    let typed = s.provider.sign_with_header(
        &json!({"alg": "RS256", "typ": "logout+jwt", "kid": kid}),
        &claims,
    );
    let resp = s.app.clone().oneshot(bearer("/me", &typed)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "typ logout+jwt");
    for (what, header) in [
        ("typ JWT", json!({"alg": "RS256", "typ": "JWT", "kid": kid})),
        ("no typ", json!({"alg": "RS256", "kid": kid})),
    ] {
        let token = s.provider.sign_with_header(&header, &claims);
        let resp = s.app.clone().oneshot(bearer("/me", &token)).await.unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::UNAUTHORIZED,
            "{what}: a logout token (`events` claim) accepted as an access token"
        );
    }
}

/// Attack: cookie tossing of the ID token cookie. It is `__Secure-` on `/auth` (not `__Host-`)
/// even with the default `session_path("/")`, so a sibling subdomain can plant the attacker's
/// own sealed ID token on `/auth/logout` (sent first). The victim's logout then names the
/// attacker's session to the provider, and the victim's single sign-on survives.
#[tokio::test]
async fn tossed_id_token_cookie_does_not_become_the_logout_hint() {
    let s = setup().await;
    let https = s
        .provider
        .layer_builder("https://app.example.com/auth/callback")
        .build()
        .await
        .unwrap();
    let app = app(&https);
    let sign_in = |who: TestUser| {
        let app = app.clone();
        let provider = &s.provider;
        async move {
            provider.set_user(Some(who));
            let mut jar = Jar::default();
            let resp = send(&app, &mut jar, get_html("/auth/login")).await;
            let callback = authorize(&location(&resp)).await;
            let resp = send(&app, &mut jar, get_html(&callback)).await;
            assert_eq!(resp.status(), StatusCode::FOUND);
            jar
        }
    };
    let attacker = sign_in(TestUser::new("usr_attacker")).await;
    let mut victim = sign_in(TestUser::new("usr_victim")).await;
    let id = attacker
        .get("_id")
        .expect("the attacker's ID token cookie")
        .clone();
    assert!(id.name.starts_with("__Secure-"), "{}", id.name);
    // What `Set-Cookie: <name>=<value>; Domain=example.com; Path=/auth/logout; Secure` from
    // evil.example.com leaves in the victim's browser; longer paths are sent first.
    victim.cookies.insert(
        0,
        crate::helpers::StoredCookie {
            name: id.name.clone(),
            value: id.value.clone(),
            path: "/auth/logout".into(),
            set_cookie: None,
        },
    );
    let resp = send(
        &app,
        &mut victim,
        logout_post_from("https://app.example.com"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let end = url::Url::parse(&location(&resp)).unwrap();
    if let Some((_, hint)) = end.query_pairs().find(|(k, _)| k == "id_token_hint") {
        assert_eq!(
            jwt_payload(&hint)["sub"],
            "usr_victim",
            "the victim's logout names the attacker's provider session"
        );
    }
}

/// Attack: the handler's targeted cache headers (RFC 9213 `CDN-Cache-Control`, Fastly's
/// `Surrogate-Control`, Cloudflare's) override `Cache-Control` at the CDN, so a response that
/// carries a refreshed session cookie is stored and served to everyone.
#[tokio::test]
async fn targeted_cdn_cache_headers_cannot_store_a_refreshed_session() {
    let s = setup().await;
    const TARGETED: [&str; 3] = [
        "cdn-cache-control",
        "surrogate-control",
        "cloudflare-cdn-cache-control",
    ];
    let app = Router::new()
        .route(
            "/page",
            get(|| async {
                (
                    [
                        (TARGETED[0], "public, max-age=600"),
                        (TARGETED[1], "max-age=600"),
                        (TARGETED[2], "max-age=600"),
                    ],
                    "page",
                )
            }),
        )
        .layer(s.auth.clone());
    let good = s.provider.session_cookie(&s.auth, &user());
    s.clock.advance(Duration::from_secs(400));
    let resp = app.oneshot(request("/page", &good)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        set_cookies(&resp).session().is_some(),
        "a refreshed session cookie"
    );
    for name in TARGETED {
        let values: Vec<String> = resp
            .headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert!(
            values.iter().all(|v| v.contains("no-store")),
            "{name}: {values:?} lets a CDN store the Set-Cookie"
        );
    }
}

/// Attack: a sibling subdomain tosses 64 tiny unprefixed `__x` cookies (no `__Host-` rules
/// apply) on a longer path; the layer stops reading after 64 `__` names and never sees the
/// session: the victim is signed out for as long as the tossed cookies live.
#[tokio::test]
async fn cookie_flood_from_a_sibling_subdomain_does_not_hide_the_session() {
    let s = setup().await;
    let https = s
        .provider
        .layer_builder("https://app.example.com/auth/callback")
        .build()
        .await
        .unwrap();
    let app = app(&https);
    let session = s.provider.session_cookie(&https, &user());
    assert!(session.starts_with("__Host-"), "{session}");
    let resp = app.clone().oneshot(request("/me", &session)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "control");
    let flood: Vec<String> = (0..64).map(|i| format!("__t{i}=1")).collect();
    let cookie = format!("{}; {session}", flood.join("; "));
    let resp = app.oneshot(request("/me", &cookie)).await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "64 foreign cookies hide the session"
    );
}

/// Attack: the same logout token twice, with the longest `logout_token_max_age`: the replay
/// check `max_age + 120` overflows (a panic in debug builds, a wrap that accepts the replay in
/// release).
#[tokio::test]
async fn replayed_logout_token_with_the_longest_max_age_does_not_panic() {
    let s = setup_with(|c| c.logout_token_max_age(Duration::MAX)).await;
    let token = s.provider.logout_token("test-client", "usr_42", "sid-1");
    let post = || {
        Request::post("/auth/backchannel-logout")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("logout_token={token}")))
            .unwrap()
    };
    let first = tokio::spawn(s.app.clone().oneshot(post())).await;
    assert_eq!(first.expect("no panic").unwrap().status(), StatusCode::OK);
    let replay = tokio::spawn(s.app.clone().oneshot(post())).await;
    let replay = replay.expect("the replay made the layer panic");
    assert_eq!(replay.unwrap().status(), StatusCode::BAD_REQUEST);
}

/// Withstood: path, encoding and method variants of logout, cross-site, end nothing.
#[tokio::test]
async fn logout_path_and_method_variants_do_not_log_out() {
    let s = setup().await;
    let mut jar = Jar::default();
    assert_eq!(
        login(&s, &mut jar, "/auth/login").await.status(),
        StatusCode::FOUND
    );
    let cross = |method: &str, uri: &str| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(header::ACCEPT, "text/html")
            .header("sec-fetch-site", "cross-site")
            .header("sec-fetch-mode", "navigate")
            .body(Body::empty())
            .unwrap()
    };
    for uri in [
        "/auth/logout/",
        "/auth//logout",
        "/AUTH/logout",
        "/auth/LOGOUT",
        "/auth/%6Cogout",
        "/auth%2Flogout",
        "/auth/logout;x=1",
        "/auth/logout%00",
        "/auth/./logout",
        "/auth/logout?post_logout_redirect_uri=https://evil.example",
        "/auth/logout#x",
    ] {
        let resp = send(&s.app, &mut jar, cross("GET", uri)).await;
        assert!(!set_cookies(&resp).removes_any(), "{uri}");
        assert!(!resp.headers().contains_key(header::LOCATION), "{uri}");
    }
    for method in ["HEAD", "OPTIONS", "PUT", "DELETE", "PATCH", "TRACE"] {
        let resp = send(&s.app, &mut jar, cross(method, "/auth/logout")).await;
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert!(!set_cookies(&resp).removes_any(), "{method}");
        // Even claiming to be same-origin, only GET and POST log out.
        let req = Request::builder()
            .method(method)
            .uri("/auth/logout")
            .header(header::ORIGIN, ORIGIN)
            .header("sec-fetch-site", "same-origin")
            .body(Body::empty())
            .unwrap();
        let resp = send(&s.app, &mut jar, req).await;
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
    }
    let me = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(me.status(), StatusCode::OK, "still signed in");
}

/// Withstood: odd or contradictory fetch metadata on a cross-site logout.
#[tokio::test]
async fn logout_with_odd_fetch_metadata_asks_first() {
    let s = setup().await;
    let mut jar = Jar::default();
    assert_eq!(
        login(&s, &mut jar, "/auth/login").await.status(),
        StatusCode::FOUND
    );
    let with = |headers: &[(&str, &str)], method: &str| {
        let mut r = Request::builder().method(method).uri("/auth/logout");
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.body(Body::empty()).unwrap()
    };
    let app_referer = format!("{ORIGIN}/settings");
    let attempts: Vec<(&str, Request<Body>)> = vec![
        (
            "evil Origin first, app Origin second",
            with(
                &[("origin", "https://evil.example"), ("origin", ORIGIN)],
                "POST",
            ),
        ),
        (
            "Origin with a trailing slash",
            with(&[("origin", "http://127.0.0.1:3000/")], "POST"),
        ),
        (
            "Origin in capitals",
            with(&[("origin", "HTTP://127.0.0.1:3000")], "POST"),
        ),
        (
            "Origin with a default port",
            with(&[("origin", "http://127.0.0.1:3000:80")], "POST"),
        ),
        (
            "cross-site first, same-origin second",
            with(
                &[
                    ("sec-fetch-site", "cross-site"),
                    ("sec-fetch-site", "same-origin"),
                ],
                "GET",
            ),
        ),
        (
            "Sec-Fetch-Site in capitals",
            with(&[("sec-fetch-site", "Same-Origin")], "GET"),
        ),
        (
            "Sec-Fetch-Site list",
            with(&[("sec-fetch-site", "cross-site, same-origin")], "GET"),
        ),
        (
            "cross-site with the app's referer",
            with(
                &[("sec-fetch-site", "cross-site"), ("referer", &app_referer)],
                "GET",
            ),
        ),
        (
            "referer with userinfo",
            with(&[("referer", "http://127.0.0.1:3000@evil.example/")], "GET"),
        ),
        (
            "referer on https",
            with(&[("referer", "https://127.0.0.1:3000/")], "GET"),
        ),
    ];
    for (what, req) in attempts {
        let resp = send(&s.app, &mut jar, req).await;
        assert_eq!(resp.status(), StatusCode::OK, "{what}");
        assert!(!set_cookies(&resp).removes_any(), "{what}");
    }
    let me = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(me.status(), StatusCode::OK, "still signed in");
}

/// Withstood: forged, foreign and mistyped tokens on the bearer path (the older test covers
/// the cookie path only).
#[tokio::test]
async fn forged_and_foreign_bearer_tokens_are_refused() {
    let s = setup().await;
    let now = s.clock.now();
    let iss = s.provider.issuer().to_owned();
    let kid = s.provider.current_kid();
    let b64 = |v: &serde_json::Value| {
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            v.to_string(),
        )
    };
    let claims =
        json!({"iss": iss, "aud": "test-client", "sub": "x", "iat": now, "exp": now + 300});
    let valid = s.provider.sign(&claims);
    let sig = valid.split('.').nth(2).unwrap().to_owned();
    let with = |patch: serde_json::Value| {
        let mut c = claims.clone();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        s.provider.sign(&c)
    };
    let header = |h: serde_json::Value| s.provider.sign_with_header(&h, &claims);
    // HS256 keyed with the published JWK (the classic confusion).
    let hs256 = {
        use hmac::Mac;
        let text = reqwest::get(format!("{iss}/keys"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let jwks: serde_json::Value = serde_json::from_str(&text).unwrap();
        let input = format!(
            "{}.{}",
            b64(&json!({"alg": "HS256", "typ": "JWT", "kid": kid})),
            b64(&claims)
        );
        let secret = jwks["keys"][0].to_string();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(input.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("{input}.{}", b64_bytes(&tag))
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims)),
        ),
        (
            "alg none, valid signature",
            format!(
                "{}.{}.{sig}",
                b64(&json!({"alg": "none", "kid": kid})),
                b64(&claims)
            ),
        ),
        ("HS256 keyed with the JWK", hs256),
        (
            "unknown kid",
            header(json!({"alg": "RS256", "kid": "nope"})),
        ),
        (
            "PS256 header on an RS256 signature",
            header(json!({"alg": "PS256", "kid": kid})),
        ),
        (
            "typ id+jwt",
            header(json!({"alg": "RS256", "typ": "id+jwt", "kid": kid})),
        ),
        (
            "typ logout+jwt",
            header(json!({"alg": "RS256", "typ": "logout+jwt", "kid": kid})),
        ),
        (
            "typ secevent+jwt",
            header(json!({"alg": "RS256", "typ": "secevent+jwt", "kid": kid})),
        ),
        (
            "empty crit",
            header(json!({"alg": "RS256", "kid": kid, "crit": []})),
        ),
        ("jku header", {
            // A key URL in the header is ignored: the kid still has to be a published one.
            header(json!({"alg": "RS256", "kid": "attacker", "jku": "https://evil.example/k"}))
        }),
        ("no aud, no client_id", with(json!({"aud": null}))),
        ("aud empty list, no client_id", with(json!({"aud": []}))),
        (
            "aud of another client",
            with(json!({"aud": ["other-client"]})),
        ),
        ("numeric aud", with(json!({"aud": 5}))),
        (
            "no aud, other client_id",
            with(json!({"aud": null, "client_id": "other-client"})),
        ),
        ("extra part", format!("{valid}.x")),
        ("padded signature", format!("{valid}==")),
        ("whitespace inside", valid.replacen('.', ". ", 1)),
    ];
    for (what, token) in cases {
        let resp = s.app.clone().oneshot(bearer("/me", &token)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
    }
    let resp = s.app.clone().oneshot(bearer("/me", &valid)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "control");
}

fn b64_bytes(bytes: &[u8]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
}

/// Withstood: `Authorization` and `Cookie` header tricks.
#[tokio::test]
async fn authorization_and_cookie_header_tricks() {
    let s = setup().await;
    let token = s.provider.access_token(&user());
    let session = s.provider.session_cookie(&s.auth, &user());
    let req = |headers: Vec<(&str, http::HeaderValue)>| {
        let mut r = Request::get("/me").header(header::ACCEPT, "application/json");
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.body(Body::empty()).unwrap()
    };
    let v = |s: &str| http::HeaderValue::from_str(s).unwrap();
    type Case<'a> = (&'a str, Vec<(&'a str, http::HeaderValue)>, StatusCode);
    let cases: Vec<Case> = vec![
        (
            "two Authorization headers, valid first",
            vec![
                ("authorization", v(&format!("Bearer {token}"))),
                ("authorization", v("Bearer garbage")),
            ],
            StatusCode::UNAUTHORIZED,
        ),
        (
            "two Authorization headers, both valid",
            vec![
                ("authorization", v(&format!("Bearer {token}"))),
                ("authorization", v(&format!("Bearer {token}"))),
            ],
            StatusCode::UNAUTHORIZED,
        ),
        (
            "an invalid bearer beside a valid session",
            vec![
                ("authorization", v("Bearer garbage")),
                ("cookie", v(&session)),
            ],
            StatusCode::UNAUTHORIZED,
        ),
        (
            "Bearer without a token beside a valid session",
            vec![("authorization", v("Bearer ")), ("cookie", v(&session))],
            StatusCode::UNAUTHORIZED,
        ),
        (
            "extra spaces",
            vec![("authorization", v(&format!("Bearer    {token}  ")))],
            StatusCode::OK,
        ),
        (
            "scheme in capitals",
            vec![("authorization", v(&format!("BEARER {token}")))],
            StatusCode::OK,
        ),
        (
            "tab after the scheme: not a bearer header, no session",
            vec![("authorization", v(&format!("Bearer\t{token}")))],
            StatusCode::UNAUTHORIZED,
        ),
        (
            "Basic credentials do not count",
            vec![("authorization", v("Basic dXNyXzQyOng="))],
            StatusCode::UNAUTHORIZED,
        ),
        (
            "non-UTF-8 Authorization, valid session",
            vec![
                (
                    "authorization",
                    http::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
                ),
                ("cookie", v(&session)),
            ],
            StatusCode::OK,
        ),
        (
            "non-UTF-8 Cookie header, valid one beside it",
            vec![
                (
                    "cookie",
                    http::HeaderValue::from_bytes(b"junk=\xff").unwrap(),
                ),
                ("cookie", v(&session)),
            ],
            StatusCode::OK,
        ),
        (
            "gRPC content type, no credentials",
            vec![("content-type", v("application/grpc+proto"))],
            StatusCode::OK, // trailers-only gRPC status, checked below
        ),
    ];
    for (what, headers, expected) in cases {
        let grpc = headers.iter().any(|(k, _)| *k == "content-type");
        let resp = s.app.clone().oneshot(req(headers)).await.unwrap();
        assert_eq!(resp.status(), expected, "{what}");
        if grpc {
            assert_eq!(resp.headers()["grpc-status"], "16", "{what}");
        }
        if expected != StatusCode::OK {
            assert!(
                !resp.headers().contains_key(header::SET_COOKIE),
                "{what}: a bearer request never touches cookies"
            );
        }
    }
    // A huge bearer token: refused cleanly.
    let huge = format!("{}.{}.{}", "a".repeat(20_000), "b".repeat(20_000), "c");
    let resp = s.app.clone().oneshot(bearer("/me", &huge)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

/// Withstood: time claims at the edges of i64 and beyond, on the bearer and session paths:
/// never a panic, never a 500.
#[tokio::test]
async fn extreme_time_claims_neither_panic_nor_fail_with_500() {
    let s = setup().await;
    let now = s.clock.now();
    let id = s.provider.id_token(&user(), None);
    let base = json!({"iss": s.provider.issuer(), "aud": "test-client", "sub": "x",
                      "iat": now, "exp": now + 300});
    let patches = [
        json!({"exp": i64::MAX}),
        json!({"exp": i64::MIN}),
        json!({"exp": u64::MAX}),
        json!({"exp": 1e300}),
        json!({"exp": -1.5}),
        json!({"exp": "9999999999"}),
        json!({"nbf": i64::MIN}),
        json!({"nbf": i64::MAX}),
        json!({"iat": i64::MIN}),
        json!({"iat": i64::MAX}),
        json!({"exp": i64::MAX, "iat": i64::MIN, "nbf": i64::MIN}),
    ];
    for patch in patches {
        let mut c = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        let token = s.provider.sign(&c);
        let resp = tokio::spawn(s.app.clone().oneshot(bearer("/me", &token)))
            .await
            .expect("no panic on the bearer path")
            .unwrap();
        assert!(
            matches!(resp.status(), StatusCode::OK | StatusCode::UNAUTHORIZED),
            "bearer {patch}: {}",
            resp.status()
        );
        for rt in [None, Some("rt-unknown")] {
            let cookie = s
                .provider
                .session_cookie_with_tokens(&s.auth, &token, rt, &id);
            let resp = tokio::spawn(s.app.clone().oneshot(request("/me", &cookie)))
                .await
                .expect("no panic on the session path")
                .unwrap();
            assert!(
                matches!(resp.status(), StatusCode::OK | StatusCode::UNAUTHORIZED),
                "session {patch} rt={rt:?}: {}",
                resp.status()
            );
        }
    }
}

/// Withstood: the layer's method errors and provider-facing answers are never stored.
#[tokio::test]
async fn method_errors_and_provider_answers_are_no_store() {
    let s = setup_with(|c| c.webhook_secret("whsec_c2VjcmV0c2VjcmV0c2VjcmV0")).await;
    let reqs: Vec<(&str, Request<Body>)> = vec![
        (
            "POST login",
            Request::post("/auth/login").body(Body::empty()).unwrap(),
        ),
        (
            "POST callback",
            Request::post("/auth/callback").body(Body::empty()).unwrap(),
        ),
        (
            "PUT logout",
            Request::put("/auth/logout").body(Body::empty()).unwrap(),
        ),
        ("GET backchannel", get_html("/auth/backchannel-logout")),
        ("GET webhook", get_html("/auth/webhook")),
        (
            "bad back-channel POST",
            Request::post("/auth/backchannel-logout")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from("logout_token=x"))
                .unwrap(),
        ),
        (
            "bad webhook",
            Request::post("/auth/webhook")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
                .unwrap(),
        ),
        (
            "HEAD login",
            Request::head("/auth/login").body(Body::empty()).unwrap(),
        ),
    ];
    for (what, req) in reqs {
        let resp = s.app.clone().oneshot(req).await.unwrap();
        let cc = resp
            .headers()
            .get(header::CACHE_CONTROL)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert!(cc.contains("no-store"), "{what}: {cc:?}");
        assert!(!cc.contains("public"), "{what}: {cc:?}");
    }
}

/// Waits for the provider to be asked for its JWKS `n` times in all (background refreshes);
/// the timeout only turns a missing fetch into a failure instead of a hang.
async fn wait_for_jwks_fetches(provider: &TestProvider, n: u64) {
    tokio::time::timeout(Duration::from_secs(60), provider.wait_for_jwks_fetches(n))
        .await
        .unwrap_or_else(|_| panic!("JWKS fetch {n} never came"));
}

// ---- The JWKS under stress: a hanging provider, stale keys, keys replaced under the cache ----

/// Wall-clock seconds that follow tokio's clock. With `start_paused`, the layer's JWKS rate
/// limit and max-age then move together with its HTTP timeouts, and nobody really waits.
#[derive(Clone)]
struct TokioClock {
    base: i64,
    start: tokio::time::Instant,
}

impl TokioClock {
    fn new() -> Self {
        Self {
            base: tower_oidc_auth::ManualClock::starting_now().now(),
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> i64 {
        self.base + self.start.elapsed().as_secs() as i64
    }
}

const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A provider and an app on tokio's (paused) clock; the JWKS fetched at build carries `max_age`.
async fn slow_jwks_setup(max_age: Option<u64>) -> (TestProvider, axum::Router) {
    let provider = TestProvider::builder()
        .user(user())
        .clock(TokioClock::new())
        .start()
        .await;
    provider.set_jwks_max_age(max_age);
    let auth = provider
        .layer_builder(REDIRECT)
        .http_timeout(HTTP_TIMEOUT)
        .jwks_refetch_interval(Duration::from_secs(10))
        .build()
        .await
        .unwrap();
    let app = app(&auth);
    (provider, app)
}

/// A whole login (authorize at the provider, callback with its ID token): the callback's status.
async fn login_status(app: &axum::Router) -> StatusCode {
    let mut jar = Jar::default();
    let resp = send(app, &mut jar, get_html("/auth/login")).await;
    let callback = authorize(&location(&resp)).await;
    send(app, &mut jar, get_html(&callback)).await.status()
}

/// Two bearer tokens and two logins at once; returns their statuses (bearer first) and how long
/// the slowest took.
async fn four_at_once(provider: &TestProvider, app: &axum::Router) -> (Vec<StatusCode>, Duration) {
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..2 {
        let (app, token) = (
            app.clone(),
            provider.access_token(&TestUser::new(format!("api-{i}"))),
        );
        tasks.push(tokio::spawn(
            async move { with_bearer_json(&app, &token).await },
        ));
    }
    for _ in 0..2 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move { login_status(&app).await }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    (statuses, start.elapsed())
}

#[tokio::test(start_paused = true)]
async fn stale_jwks_with_hanging_provider_does_not_serialise_requests() {
    let (provider, app) = slow_jwks_setup(Some(60)).await;
    // The keys pass their max-age, and the provider's JWKS endpoint hangs.
    // (Time is paused: sleeping only moves tokio's clock.)
    tokio::time::sleep(Duration::from_secs(61)).await;
    provider.set_jwks_failure(Some(Failure::Delay(Duration::from_secs(3600))));
    let base = provider.counts().jwks_fetches;

    // New tokens signed by a key the layer knows are verified at once with the stale keys.
    let (statuses, elapsed) = four_at_once(&provider, &app).await;
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::FOUND,
            StatusCode::FOUND
        ]
    );
    assert!(
        elapsed < HTTP_TIMEOUT,
        "four requests with a known kid took {elapsed:?} (HTTP timeout {HTTP_TIMEOUT:?})"
    );

    // One refresh ran for all of them, in the background, until the timeout.
    tokio::time::sleep(HTTP_TIMEOUT + Duration::from_secs(1)).await;
    assert_eq!(provider.counts().jwks_fetches, base + 1, "one fetch");

    // The rate limit counts from when that slow fetch ended: more new tokens right after it
    // are still served at once, and start no fetch.
    let (again, elapsed) = four_at_once(&provider, &app).await;
    assert_eq!(again, statuses);
    assert!(elapsed < HTTP_TIMEOUT, "{elapsed:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(provider.counts().jwks_fetches, base + 1, "rate-limited");

    // Once the interval has passed, the next new token starts one more refresh, and the
    // provider's answer replaces the stale keys: past the interval again, no more fetches.
    provider.set_jwks_failure(None);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let token = provider.access_token(&TestUser::new("later"));
    assert_eq!(with_bearer_json(&app, &token).await, StatusCode::OK);
    wait_for_jwks_fetches(&provider, base + 2).await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    let token = provider.access_token(&TestUser::new("fresh"));
    assert_eq!(with_bearer_json(&app, &token).await, StatusCode::OK);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(provider.counts().jwks_fetches, base + 2, "keys fresh again");
}

#[tokio::test(start_paused = true)]
async fn unknown_kid_with_hanging_provider_does_not_serialise_requests() {
    let (provider, app) = slow_jwks_setup(None).await;
    // The provider signs with a new key; its JWKS endpoint hangs.
    provider.rotate_keys(false);
    provider.set_jwks_failure(Some(Failure::Delay(Duration::from_secs(3600))));
    let base = provider.counts().jwks_fetches;

    // Tokens naming the unknown key wait for one fetch, together, and are refused when it
    // times out: all four within one timeout, not one timeout each.
    let (statuses, elapsed) = four_at_once(&provider, &app).await;
    assert_eq!(
        statuses,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::BAD_REQUEST,
            StatusCode::BAD_REQUEST
        ]
    );
    assert!(
        elapsed >= HTTP_TIMEOUT && elapsed < HTTP_TIMEOUT * 2,
        "four requests with an unknown kid took {elapsed:?} (HTTP timeout {HTTP_TIMEOUT:?})"
    );
    assert_eq!(provider.counts().jwks_fetches, base + 1, "one shared fetch");

    // Right after the slow fetch ended, the rate limit holds: no fetch, no waiting.
    let start = tokio::time::Instant::now();
    let token = provider.access_token(&TestUser::new("again"));
    assert_eq!(
        with_bearer_json(&app, &token).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(start.elapsed() < HTTP_TIMEOUT, "{:?}", start.elapsed());
    assert_eq!(provider.counts().jwks_fetches, base + 1);
}

/// A session cookie (and a separate bearer token) verified by `app` now, so both sit in the
/// verification caches.
async fn cached_session_and_bearer(
    provider: &TestProvider,
    auth: &AuthLayer,
    app: &axum::Router,
) -> (String, String) {
    let bearer = provider.access_token(&TestUser::new("api"));
    let id = provider.id_token(&user(), None);
    let cookie =
        provider.session_cookie_with_tokens(auth, &provider.access_token(&user()), None, &id);
    for _ in 0..2 {
        assert_eq!(with_bearer_json(app, &bearer).await, StatusCode::OK);
        assert_eq!(
            me_with_raw_cookie(app, &cookie).await.status(),
            StatusCode::OK
        );
    }
    (cookie, bearer)
}

#[tokio::test]
async fn cached_verification_ends_when_the_only_kidless_key_is_replaced() {
    let clock = tower_oidc_auth::ManualClock::starting_now();
    let provider = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    // One published key without kid; tokens without kid.
    provider.set_key_ids(false);
    provider.set_jwks_max_age(Some(60));
    let auth = provider.layer_builder(REDIRECT).build().await.unwrap();
    let app = app(&auth);
    let (cookie, bearer) = cached_session_and_bearer(&provider, &auth, &app).await;
    let base = provider.counts().jwks_fetches;

    // The provider replaces its only key by another key without kid; past max-age the layer
    // fetches the JWKS again for a new token.
    provider.rotate_keys(true);
    clock.advance(Duration::from_secs(61));
    let fresh = provider.access_token(&TestUser::new("new"));
    assert_eq!(with_bearer_json(&app, &fresh).await, StatusCode::OK);
    assert_eq!(provider.counts().jwks_fetches, base + 1);

    // The withdrawn key's tokens are refused, although their verification is cached.
    assert_eq!(
        with_bearer_json(&app, &bearer).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        me_with_raw_cookie(&app, &cookie).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn cached_verification_ends_when_key_material_under_its_kid_is_replaced() {
    let s = setup().await;
    let (cookie, bearer) = cached_session_and_bearer(&s.provider, &s.auth, &s.app).await;
    let base = s.provider.counts().jwks_fetches;

    // The provider publishes another key under the same kid. A token naming a kid the layer
    // does not know makes it fetch the JWKS again.
    s.provider.replace_key_material();
    let now = s.clock.now();
    let probe = s.provider.sign_with_header(
        &json!({"alg": "RS256", "typ": "JWT", "kid": "probe"}),
        &json!({"iss": s.provider.issuer(), "aud": "test-client", "sub": "x", "iat": now,
                "exp": now + 60}),
    );
    assert_eq!(
        with_bearer_json(&s.app, &probe).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(s.provider.counts().jwks_fetches, base + 1);
    let fresh = s.provider.access_token(&TestUser::new("new"));
    assert_eq!(with_bearer_json(&s.app, &fresh).await, StatusCode::OK);

    // Tokens signed by the old key material are refused, although their verification is cached.
    assert_eq!(
        with_bearer_json(&s.app, &bearer).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        me_with_raw_cookie(&s.app, &cookie).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

// ---- Independent review of the JWKS and verification-cache change ----
//
// Attacks on the JWKS cache (single-flight refetch, stale keys while revalidating) and on the
// cache of verified access tokens bound to their key's thumbprint. A test that fails shows a
// vulnerability: it asserts the safe behaviour.

/// An access token signed now by the provider's current key and valid for a day: what an
/// attacker holds who stole a token, or who can sign with a leaked key.
fn day_long_token(s: &Setup, sub: &str) -> String {
    let now = s.clock.now();
    s.provider.sign(
        &json!({"iss": s.provider.issuer(), "aud": "test-client", "sub": sub,
                            "iat": now, "exp": now + 86_400}),
    )
}

/// A token naming a kid nobody publishes: the layer fetches the JWKS for it (or joins the fetch
/// in flight, or, rate-limited, refuses it at once). Once it is answered, no fetch is running.
fn unknown_kid_probe(s: &Setup) -> String {
    let now = s.clock.now();
    s.provider.sign_with_header(
        &json!({"alg": "RS256", "typ": "JWT", "kid": "review-probe"}),
        &json!({"iss": s.provider.issuer(), "aud": "test-client", "sub": "probe",
                "iat": now, "exp": now + 60}),
    )
}

/// Whether the provider is asked for its JWKS for the `n`th time within 5 seconds: a fetch the
/// layer should have started in the background. (The bound only turns a missing fetch into a
/// failure instead of a hang.)
async fn jwks_fetched_soon(provider: &TestProvider, n: u64) -> bool {
    tokio::time::timeout(Duration::from_secs(5), provider.wait_for_jwks_fetches(n))
        .await
        .is_ok()
}

/// Attack: a token whose verification is cached keeps being served on stale keys forever; a
/// cache hit never starts the revalidation that stale keys are promised.
#[tokio::test]
async fn stale_keys_behind_the_verified_cache_are_revalidated() {
    let s = setup_with_jwks(Some(60), true).await;
    let stolen = day_long_token(&s, "attacker");
    assert_eq!(with_bearer_json(&s.app, &stolen).await, StatusCode::OK);
    let base = s.provider.counts().jwks_fetches;

    // The provider withdraws the key (say it leaked) and signs with a new one; the layer's
    // keys pass their max-age. Only the attacker calls the API.
    s.provider.rotate_keys(true);
    s.clock.advance(Duration::from_secs(61));
    let _ = with_bearer_json(&s.app, &stolen).await;
    assert!(
        jwks_fetched_soon(&s.provider, base + 1).await,
        "stale keys served from the verified cache, and no revalidation started"
    );
    assert_eq!(
        with_bearer_json(&s.app, &unknown_kid_probe(&s)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        with_bearer_json(&s.app, &stolen).await,
        StatusCode::UNAUTHORIZED,
        "the withdrawn key's token is still accepted"
    );
}

/// Attack: the same through a session cookie, whose memoized verification never looks at
/// whether the keys are stale.
#[tokio::test]
async fn stale_keys_behind_the_session_memo_are_revalidated() {
    let s = setup_with_jwks(Some(60), true).await;
    let stolen = day_long_token(&s, "usr_42");
    let id = s.provider.id_token(&user(), None);
    let cookie = s
        .provider
        .session_cookie_with_tokens(&s.auth, &stolen, None, &id);
    for _ in 0..2 {
        assert_eq!(
            me_with_raw_cookie(&s.app, &cookie).await.status(),
            StatusCode::OK
        );
    }
    let base = s.provider.counts().jwks_fetches;

    s.provider.rotate_keys(true);
    s.clock.advance(Duration::from_secs(61));
    let _ = me_with_raw_cookie(&s.app, &cookie).await;
    assert!(
        jwks_fetched_soon(&s.provider, base + 1).await,
        "stale keys served from the session memo, and no revalidation started"
    );
    assert_eq!(
        with_bearer_json(&s.app, &unknown_kid_probe(&s)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        me_with_raw_cookie(&s.app, &cookie).await.status(),
        StatusCode::UNAUTHORIZED,
        "the withdrawn key's session is still accepted"
    );
}

/// Attack: the provider withdraws its keys by publishing a key set this layer has no use for
/// (no keys at all, the key turned into an encryption key, a new key of an algorithm the
/// layer does not accept): the fetch is called failed and the withdrawn keys stay trusted.
#[tokio::test]
async fn a_key_set_without_usable_keys_withdraws_the_old_ones() {
    type Withdraw = fn(&TestProvider) -> serde_json::Value;
    let cases: [(&str, Withdraw); 3] = [
        ("no keys", |_| json!({"keys": []})),
        ("the key republished for encryption", |p| {
            let mut doc = p.jwks_document();
            doc["keys"][0]["use"] = json!("enc");
            doc
        }),
        ("replaced by a PS256 key this layer does not accept", |p| {
            p.rotate_keys(true);
            let mut doc = p.jwks_document();
            doc["keys"][0]["alg"] = json!("PS256");
            doc
        }),
    ];
    let mut accepted = Vec::new();
    for (what, withdraw) in cases {
        let s = setup_with_jwks(None, true).await;
        // Signed by the key about to be withdrawn, never shown to the layer before.
        let forged = day_long_token(&s, "attacker");
        let doc = withdraw(&s.provider);
        s.provider.set_jwks_document(Some(doc));
        let base = s.provider.counts().jwks_fetches;
        assert_eq!(
            with_bearer_json(&s.app, &unknown_kid_probe(&s)).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(s.provider.counts().jwks_fetches, base + 1, "{what}");
        if with_bearer_json(&s.app, &forged).await != StatusCode::UNAUTHORIZED {
            accepted.push(what);
        }
    }
    assert!(
        accepted.is_empty(),
        "a token of the withdrawn key is accepted after: {accepted:?}"
    );
}

/// Attack: the provider replaces its key pair under the same kid (or its only kid-less key).
/// A token of the new key fails its signature against the cached key, which never triggers a
/// refetch: without Cache-Control, logins and new tokens fail for good, and tokens of the
/// replaced key stay accepted.
#[tokio::test]
async fn key_replaced_under_a_known_kid_is_picked_up() {
    let mut wrong = Vec::new();
    for key_ids in [true, false] {
        let s = setup_with_jwks(None, key_ids).await;
        let stolen = day_long_token(&s, "attacker");
        assert_eq!(with_bearer_json(&s.app, &stolen).await, StatusCode::OK);

        s.provider.replace_key_material();
        let login = login_status(&s.app).await;
        let fresh = s.provider.access_token(&TestUser::new("new"));
        let fresh = with_bearer_json(&s.app, &fresh).await;
        let old = with_bearer_json(&s.app, &stolen).await;
        if (login, fresh, old) != (StatusCode::FOUND, StatusCode::OK, StatusCode::UNAUTHORIZED) {
            wrong.push(format!(
                "kid {key_ids}: login {login}, new key's token {fresh}, replaced key's token {old}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Withstood: a cached verification ends when its kid now names another key first (duplicate
/// kids), an EC key, the same key for encryption only, or the same key for another algorithm.
#[tokio::test]
async fn duplicate_kids_and_changed_alg_or_use_end_cached_verifications() {
    type Republish = fn(serde_json::Value, serde_json::Value) -> serde_json::Value;
    // RFC 7517, appendix A.1: a P-256 public key.
    let cases: [(&str, Republish); 5] = [
        ("another key first under the kid", |old, new| {
            let mut new = new;
            new["kid"] = old["kid"].clone();
            json!({"keys": [new, old]})
        }),
        ("an EC key first under the kid", |old, new| {
            let ec = json!({"kty": "EC", "crv": "P-256", "kid": old["kid"], "use": "sig",
                            "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
                            "y": "4Etl6SRW2YilurN5XxqxLw_0cF-aCHfoN2hStaGSwd0"});
            json!({"keys": [ec, old, new]})
        }),
        ("the key for encryption only", |old, new| {
            let mut old = old;
            old["use"] = json!("enc");
            json!({"keys": [old, new]})
        }),
        ("the key for PS256 only", |old, new| {
            let mut old = old;
            old["alg"] = json!("PS256");
            json!({"keys": [old, new]})
        }),
        ("the key without its kid", |old, new| {
            let mut old = old;
            old.as_object_mut().unwrap().remove("kid");
            json!({"keys": [old, new]})
        }),
    ];
    for (what, republish) in cases {
        let s = setup_with_jwks(None, true).await;
        let (cookie, bearer) = cached_session_and_bearer(&s.provider, &s.auth, &s.app).await;
        let old = s.provider.jwks_document()["keys"][0].clone();
        s.provider.rotate_keys(true);
        let new = s.provider.jwks_document()["keys"][0].clone();
        s.provider.set_jwks_document(Some(republish(old, new)));
        let base = s.provider.counts().jwks_fetches;
        assert_eq!(
            with_bearer_json(&s.app, &unknown_kid_probe(&s)).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(s.provider.counts().jwks_fetches, base + 1, "{what}");
        assert_eq!(
            with_bearer_json(&s.app, &bearer).await,
            StatusCode::UNAUTHORIZED,
            "{what}"
        );
        assert_eq!(
            me_with_raw_cookie(&s.app, &cookie).await.status(),
            StatusCode::UNAUTHORIZED,
            "{what}"
        );
    }
}

/// Withstood: hostile members in a JWKS (keys of one type with another's members, curves that
/// do not belong to the key type, symmetric keys, `alg: none`, odd kids, thousands of junk
/// entries) and documents that fail to parse neither panic the fetch nor unseat the good key.
#[tokio::test]
async fn hostile_jwks_documents_neither_panic_nor_unseat_the_good_key() {
    let s = setup_with_jwks(None, true).await;
    let good = s.provider.jwks_document()["keys"][0].clone();
    let x = "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4";
    let y = "4Etl6SRW2YilurN5XxqxLw_0cF-aCHfoN2hStaGSwd0";
    let long_kid = "l".repeat(10_000);
    let junk = vec![
        json!({"kty": "EC", "crv": "Ed25519", "x": x, "y": y, "kid": "a"}),
        json!({"kty": "OKP", "crv": "P-256", "x": x, "kid": "b"}),
        json!({"kty": "OKP", "crv": "X25519", "x": x, "kid": "c"}),
        json!({"kty": "EC", "crv": "P-521", "x": x, "y": y, "kid": "d"}),
        json!({"kty": "EC", "crv": "P-256", "x": "!!", "y": y, "kid": "e"}),
        json!({"kty": "RSA", "crv": "P-256", "x": x, "y": y, "kid": "f"}),
        json!({"kty": "RSA", "n": "", "e": "", "kid": "g"}),
        json!({"kty": "RSA", "n": "!!", "e": "AQAB", "kid": "h"}),
        json!({"kty": "oct", "k": "c2VjcmV0", "kid": "i"}),
        json!({"kty": "RSA", "n": good["n"], "e": "AQAB", "alg": "none", "kid": "j"}),
        json!({"kty": "RSA", "n": good["n"], "e": "AQAB", "alg": "HS256", "kid": "k"}),
        json!({"kty": "RSA", "n": good["n"], "e": "AQAB", "kid": 12}),
        json!({"kty": "RSA", "n": good["n"], "e": "AQAB", "kid": long_kid}),
        json!({"kty": "RSA", "n": good["n"], "e": "AQAB", "use": "bogus", "kid": "m"}),
        json!(null),
        json!("key"),
        json!([[[]]]),
    ];
    let mut many = vec![good.clone()];
    for i in 0..3000 {
        many.push(json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": format!("ec-{i}")}));
    }
    let junk_first = [junk.clone(), vec![good.clone()]].concat();
    let good_first = [vec![good.clone()], junk].concat();
    let documents = vec![
        json!({"keys": junk_first}),
        json!({"keys": good_first}),
        json!({"keys": many}),
        json!({"keys": "x"}),
        json!({"keys": null}),
        json!({"keys": {"0": good}}),
        json!([good]),
        json!("keys"),
    ];
    let fresh = || s.provider.access_token(&TestUser::new("fresh"));
    for doc in documents {
        let what = doc.to_string().chars().take(80).collect::<String>();
        s.provider.set_jwks_document(Some(doc));
        s.clock.advance(Duration::from_secs(11));
        let base = s.provider.counts().jwks_fetches;
        let probe = tokio::spawn(s.app.clone().oneshot(bearer("/me", &unknown_kid_probe(&s))));
        let status = probe.await.expect("no panic").unwrap().status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(s.provider.counts().jwks_fetches, base + 1, "{what}");
        assert_eq!(
            with_bearer_json(&s.app, &fresh()).await,
            StatusCode::OK,
            "{what}"
        );
    }
    s.provider.set_jwks_document(None);
    for failure in [
        Failure::NotJson,
        Failure::Truncated,
        Failure::Oversized(2 * 1024 * 1024),
        Failure::Status(404),
    ] {
        s.provider.set_jwks_failure(Some(failure.clone()));
        s.clock.advance(Duration::from_secs(11));
        let base = s.provider.counts().jwks_fetches;
        let status = with_bearer_json(&s.app, &unknown_kid_probe(&s)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{failure:?}");
        assert_eq!(s.provider.counts().jwks_fetches, base + 1, "{failure:?}");
        assert_eq!(
            with_bearer_json(&s.app, &fresh()).await,
            StatusCode::OK,
            "{failure:?}"
        );
    }
}

/// Withstood: a max-age of 0 (or `no-store`) does not make every request fetch the JWKS, and
/// the largest max-age neither overflows nor panics.
#[tokio::test]
async fn extreme_jwks_max_age_neither_overflows_nor_floods_the_provider() {
    let s = setup_with_jwks(Some(u64::MAX), true).await;
    let base = s.provider.counts().jwks_fetches;
    s.clock.advance(Duration::from_secs(100 * 365 * 86_400));
    for i in 0..5 {
        let token = s.provider.access_token(&TestUser::new(format!("u{i}")));
        assert_eq!(with_bearer_json(&s.app, &token).await, StatusCode::OK);
    }
    assert_eq!(s.provider.counts().jwks_fetches, base, "never stale");

    // Now every fetch says max-age 0, with and without kids: at most one fetch per interval.
    s.provider.set_jwks_max_age(Some(0));
    assert_eq!(
        with_bearer_json(&s.app, &unknown_kid_probe(&s)).await,
        StatusCode::UNAUTHORIZED
    );
    let after = s.provider.counts().jwks_fetches;
    for key_ids in [true, false] {
        s.provider.set_key_ids(key_ids);
        for i in 0..10 {
            let token = s.provider.access_token(&TestUser::new(format!("v{i}")));
            // Kid-less tokens: the JWKS keeps its kid, but exactly one key fits.
            assert_eq!(
                with_bearer_json(&s.app, &token).await,
                StatusCode::OK,
                "kid {key_ids}"
            );
        }
    }
    assert_eq!(s.provider.counts().jwks_fetches, after, "rate-limited");
}

/// Withstood: a refetch task spawned on a runtime that then shuts down does not leave the
/// requests waiting for it hanging, and the next request can fetch again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refetch_task_of_a_runtime_that_shuts_down_releases_its_waiters() {
    let s = setup_with_jwks(None, true).await;
    s.provider
        .set_jwks_failure(Some(Failure::Delay(Duration::from_secs(3600))));
    let base = s.provider.counts().jwks_fetches;
    let other = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                // On this runtime, a request with an unknown kid starts the fetch (its task
                // lives here); the request is given up once the fetch reached the provider.
                rt.block_on(async {
                    let probe = unknown_kid_probe(&s);
                    tokio::select! {
                        status = with_bearer_json(&s.app, &probe) => panic!("answered: {status}"),
                        () = s.provider.wait_for_jwks_fetches(base + 1) => {}
                    }
                });
                rt
            })
            .join()
            .unwrap()
    });
    // A request here joins that fetch.
    let app = s.app.clone();
    let probe = unknown_kid_probe(&s);
    let waiter = tokio::spawn(async move { with_bearer_json(&app, &probe).await });
    tokio::task::yield_now().await;
    other.shutdown_background();
    let status = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the waiter hangs after its fetch's runtime shut down")
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The fetch slot is free again: after the interval, a new fetch starts and lands.
    s.provider.set_jwks_failure(None);
    s.provider.rotate_keys(false);
    s.clock.advance(Duration::from_secs(11));
    let token = s.provider.access_token(&TestUser::new("after"));
    assert_eq!(with_bearer_json(&s.app, &token).await, StatusCode::OK);
}
