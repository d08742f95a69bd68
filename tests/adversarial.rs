//! Hostile input: tampered cookies, forged tokens, key rotation, misconfiguration.

mod common;

use std::time::Duration;

use axum::body::Body;
use common::*;
use http::{header, Request, StatusCode};
use serde_json::json;
use tower::ServiceExt;
use tower_oidc_auth::testing::{Failure, TestProvider, TestUser};
use tower_oidc_auth::{AuthLayer, Clock, ConfigError, Provider};

async fn with_cookie(app: &axum::Router, cookie: &str) -> http::Response<Body> {
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

fn clears_session(resp: &http::Response<Body>) -> bool {
    resp.headers().get_all(header::SET_COOKIE).iter().any(|v| {
        let v = v.to_str().unwrap();
        v.contains("_s=;") && v.contains("Max-Age=0")
    })
}

#[tokio::test]
async fn tampered_truncated_and_foreign_cookies_count_as_absent_and_are_cleared() {
    let s = setup().await;
    let good = s.provider.session_cookie(&s.auth, &user());
    assert_eq!(with_cookie(&s.app, &good).await.status(), StatusCode::OK);
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
        let resp = with_cookie(&s.app, cookie).await;
        assert_eq!(
            resp.status(),
            StatusCode::UNAUTHORIZED,
            "{}",
            &cookie[..40.min(cookie.len())]
        );
        assert!(
            clears_session(&resp),
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
    let key = [9u8; 64];
    let a = s.provider.layer_builder(REDIRECT).cookie_key(key);
    let b = s
        .provider
        .layer_builder("http://127.0.0.1:3001/auth/callback")
        .client_id("other-app")
        .cookie_key(key);
    let (a, b) = (a.build().await.unwrap(), b.build().await.unwrap());
    let cookie_a = s.provider.session_cookie(&a, &user());
    let resp = with_cookie(&app(&b), &cookie_a).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // Renamed to B's name, the value still does not open: it is bound to A's name.
    let b_cookie_name = {
        let resp = with_cookie(&app(&b), &s.provider.session_cookie(&b, &user())).await;
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
    let resp = with_cookie(&app(&b), &renamed).await;
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
    send(&s.app, &mut jar, get_html("/auth/logout")).await;
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
            with_cookie(&app, &cookie).await.status()
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
            with_cookie(&s.app, &cookie).await.status(),
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
        with_cookie(&s.app, &cookie).await.status(),
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
        with_cookie(&s.app, &cookie).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&s.app, &mut jar, get_json("/me")).await.status(),
        StatusCode::OK
    );
    let fresh = s.provider.session_cookie(&s.auth, &TestUser::new("new"));
    assert_eq!(with_cookie(&s.app, &fresh).await.status(), StatusCode::OK);
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
        let resp = with_cookie(&s.app, &cookie).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
    }
    // And the control: the valid one passes.
    let cookie = s
        .provider
        .session_cookie_with_tokens(&s.auth, &valid, None, &id);
    assert_eq!(with_cookie(&s.app, &cookie).await.status(), StatusCode::OK);
    let ok_typ = s.provider.sign_with_header(
        &json!({"alg": "RS256", "typ": "at+jwt", "kid": "key-1"}),
        &claims,
    );
    let cookie = s
        .provider
        .session_cookie_with_tokens(&s.auth, &ok_typ, None, &id);
    assert_eq!(with_cookie(&s.app, &cookie).await.status(), StatusCode::OK);
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
        .cookie_name("bad name")
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
    assert_eq!(with_cookie(&s.app, &fresh).await.status(), StatusCode::OK);
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
    assert_eq!(with_cookie(&s.app, &cookie).await.status(), StatusCode::OK);
    let after_rotation = s.provider.counts().jwks_fetches;

    // Within max-age, a new token with a known kid costs no fetch.
    let cookie = s.provider.session_cookie(&s.auth, &TestUser::new("b"));
    assert_eq!(with_cookie(&s.app, &cookie).await.status(), StatusCode::OK);
    assert_eq!(s.provider.counts().jwks_fetches, after_rotation);

    // Past max-age, the next verification is served at once with the stale keys and refreshes
    // them in the background (one fetch).
    s.clock.advance(Duration::from_secs(121));
    let cookie = s.provider.session_cookie(&s.auth, &TestUser::new("c"));
    assert_eq!(with_cookie(&s.app, &cookie).await.status(), StatusCode::OK);
    wait_for_jwks_fetches(&s.provider, after_rotation + 1).await;
    assert_eq!(s.provider.counts().jwks_fetches, after_rotation + 1);
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

async fn with_bearer(app: &axum::Router, token: &str) -> StatusCode {
    let req = Request::get("/me")
        .header(header::ACCEPT, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    app.clone().oneshot(req).await.unwrap().status()
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
        tasks.push(tokio::spawn(async move { with_bearer(&app, &token).await }));
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
    assert_eq!(with_bearer(&app, &token).await, StatusCode::OK);
    wait_for_jwks_fetches(&provider, base + 2).await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    let token = provider.access_token(&TestUser::new("fresh"));
    assert_eq!(with_bearer(&app, &token).await, StatusCode::OK);
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
    assert_eq!(with_bearer(&app, &token).await, StatusCode::UNAUTHORIZED);
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
        assert_eq!(with_bearer(app, &bearer).await, StatusCode::OK);
        assert_eq!(with_cookie(app, &cookie).await.status(), StatusCode::OK);
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
    assert_eq!(with_bearer(&app, &fresh).await, StatusCode::OK);
    assert_eq!(provider.counts().jwks_fetches, base + 1);

    // The withdrawn key's tokens are refused, although their verification is cached.
    assert_eq!(with_bearer(&app, &bearer).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        with_cookie(&app, &cookie).await.status(),
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
    assert_eq!(with_bearer(&s.app, &probe).await, StatusCode::UNAUTHORIZED);
    assert_eq!(s.provider.counts().jwks_fetches, base + 1);
    let fresh = s.provider.access_token(&TestUser::new("new"));
    assert_eq!(with_bearer(&s.app, &fresh).await, StatusCode::OK);

    // Tokens signed by the old key material are refused, although their verification is cached.
    assert_eq!(with_bearer(&s.app, &bearer).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        with_cookie(&s.app, &cookie).await.status(),
        StatusCode::UNAUTHORIZED
    );
}
