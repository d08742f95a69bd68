//! Full flows through the layer with `ServiceExt::oneshot`, against the in-process provider.

use axum::body::Body;
use cookie::SameSite;
use http::{header, Request, StatusCode};
use std::time::Duration;
use tower_oidc_auth::testing::{Failure, TestUser};

use crate::helpers::*;

// This suite runs twice: with sessions in cookies (`crate::flow`) and in a session store
// (`crate::in_store::flow`); `SESSIONS` says which. The helpers below shadow the glob import.
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

#[tokio::test]
async fn login_callback_claims_logout() {
    let s = setup().await;
    let mut jar = Jar::default();

    // A protected page sends the browser to login, remembering where it was going.
    let resp = send(&s.app, &mut jar, get_html("/me?tab=1")).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let login_uri = location(&resp);
    assert_eq!(login_uri, "/auth/login?return_to=%2Fme%3Ftab%3D1");

    let resp = send(&s.app, &mut jar, get_html(&login_uri)).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let authorize_url = url::Url::parse(&location(&resp)).unwrap();
    assert!(authorize_url
        .as_str()
        .starts_with(&format!("{}/oauth/authorize", s.provider.issuer())));
    let q: std::collections::HashMap<String, String> =
        authorize_url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "test-client");
    assert_eq!(q["redirect_uri"], REDIRECT);
    assert_eq!(q["scope"], "openid profile email offline_access");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 43 && q["nonce"].len() >= 43);
    let tx = jar.tx().expect("transaction cookie");
    // On `/`, so that over https it can be a `__Host-` cookie (no cookie tossing).
    assert_eq!(tx.path, "/");
    let set = tx.attrs();
    assert!(
        set.http_only() == Some(true) && set.same_site() == Some(SameSite::Lax),
        "{set}"
    );
    assert_eq!(
        set.max_age(),
        Some(cookie::time::Duration::seconds(600)),
        "{set}"
    );
    // The transaction cookie is sealed: neither state nor verifier is visible.
    assert!(!tx.value.contains(&q["state"][..]));

    let callback = authorize(authorize_url.as_str()).await;
    let resp = send(&s.app, &mut jar, get_html(&callback)).await;
    assert_eq!(
        resp.status(),
        StatusCode::FOUND,
        "{}",
        body_string(resp).await
    );
    assert_eq!(location(&resp), "/me?tab=1");
    assert!(jar.tx().is_none(), "transaction cookie deleted");
    let session = jar.get("_s").expect("session cookie").clone();
    assert_eq!(session.path, "/");
    let set = session.attrs();
    assert!(
        set.http_only() == Some(true) && set.same_site() == Some(SameSite::Lax),
        "{set}"
    );
    match SESSIONS {
        Sessions::Cookies => {
            let id = jar.get("_id").expect("id token cookie").clone();
            assert_eq!(id.path, "/auth");
        }
        // The ID token (the logout hint) stays on the server with the session.
        Sessions::Store => assert!(jar.get("_id").is_none(), "{:?}", jar.cookies),
    }
    assert_eq!(s.provider.counts().code_grants, 1);

    let resp = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers().get(header::SET_COOKIE).is_none(),
        "no rewrite on unchanged session"
    );
    let claims: serde_json::Value = serde_json::from_str(&body_string(resp).await).unwrap();
    assert_eq!(claims["sub"], "usr_42");
    assert_eq!(
        claims["email"], "ada@example.com",
        "identity claims from the ID token"
    );
    assert_eq!(claims["roles"], serde_json::json!(["admin"]));
    assert_eq!(claims["oid"], "org_1");
    assert!(claims.get("nonce").is_none());

    let resp = send(&s.app, &mut jar, get_html("/")).await;
    assert_eq!(body_string(resp).await, "hello usr_42");

    // Logout: every cookie cleared, then the provider's end_session with the ID token hint.
    let resp = send(&s.app, &mut jar, logout_link()).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let end = url::Url::parse(&location(&resp)).unwrap();
    assert!(end
        .as_str()
        .starts_with(&format!("{}/oidc/logout", s.provider.issuer())));
    let q: std::collections::HashMap<String, String> = end.query_pairs().into_owned().collect();
    let hint = &q["id_token_hint"];
    let hint_claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            hint.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(hint_claims["sub"], "usr_42");
    assert_eq!(q["post_logout_redirect_uri"], "http://127.0.0.1:3000/");
    assert!(jar.cookies.is_empty(), "left: {:?}", jar.names());

    let resp = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn post_logout_works_and_without_end_session_goes_home() {
    let s = setup().await;
    let mut jar = Jar::default();
    login(&s, &mut jar, "/auth/login").await;
    let req = Request::post("/auth/logout")
        .header(header::ORIGIN, "http://127.0.0.1:3000")
        .body(Body::empty())
        .unwrap();
    let resp = send(&s.app, &mut jar, req).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert!(jar.cookies.is_empty());
    // Logging out without a session still clears and redirects (no hint).
    let resp = send(&s.app, &mut jar, logout_link()).await;
    assert!(!location(&resp).contains("id_token_hint"));
}

#[tokio::test]
async fn provider_error_callbacks_show_a_page_with_retry() {
    let s = setup().await;
    for (error, status) in [
        ("access_denied", StatusCode::FORBIDDEN),
        ("invalid_request", StatusCode::BAD_REQUEST),
        ("unauthorized_client", StatusCode::BAD_REQUEST),
        ("invalid_scope", StatusCode::BAD_REQUEST),
        ("server_error", StatusCode::BAD_GATEWAY),
        ("temporarily_unavailable", StatusCode::SERVICE_UNAVAILABLE),
        ("login_required", StatusCode::UNAUTHORIZED),
        ("<script>x</script>", StatusCode::BAD_REQUEST),
    ] {
        let mut jar = Jar::default();
        let resp = send(&s.app, &mut jar, get_html("/auth/login")).await;
        let state = url::Url::parse(&location(&resp))
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "state")
            .unwrap()
            .1
            .into_owned();
        let uri = format!(
            "/auth/callback?error={}&error_description=nope&state={state}",
            urlencode(error)
        );
        let resp = send(&s.app, &mut jar, get_html(&uri)).await;
        assert_eq!(resp.status(), status, "{error}");
        assert!(jar.get("_s").is_none());
        assert!(jar.tx().is_none(), "the attempt is used up");
        let body = body_string(resp).await;
        assert!(body.contains("href=\"/auth/login\""), "retry link: {body}");
        assert!(!body.contains("<script>"));
    }
    assert_eq!(s.provider.counts().code_grants, 0);
}

#[tokio::test]
async fn try_again_after_a_provider_error_keeps_the_return_target() {
    let s = setup().await;
    let mut jar = Jar::default();
    let resp = send(
        &s.app,
        &mut jar,
        get_html("/auth/login?return_to=%2Fme%3Fx%3D1"),
    )
    .await;
    let state = url::Url::parse(&location(&resp))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let uri = format!("/auth/callback?error=access_denied&state={state}");
    let body = body_string(send(&s.app, &mut jar, get_html(&uri)).await).await;
    assert!(
        body.contains("href=\"/auth/login?return_to=%2Fme%3Fx%3D1\""),
        "{body}"
    );
}

#[tokio::test]
async fn state_mismatch_missing_cookie_and_replay_are_refused() {
    let s = setup().await;
    let mut jar = Jar::default();
    let resp = send(&s.app, &mut jar, get_html("/auth/login")).await;
    let callback = authorize(&location(&resp)).await;
    let code = url::Url::parse(&format!("http://x{callback}"))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();

    // Another state than the one in the cookie.
    let mut forged_jar = jar.clone();
    let forged =
        format!("/auth/callback?code={code}&state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let resp = send(&s.app, &mut forged_jar, get_html(&forged)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(forged_jar.get("_s").is_none());

    // The right state but no transaction cookie (another browser, or cookies lost).
    let mut empty = Jar::default();
    let resp = send(&s.app, &mut empty, get_html(&callback)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(body_string(resp).await.contains("Try again"));
    assert!(empty.cookies.is_empty());

    // No state at all.
    let resp = send(
        &s.app,
        &mut jar.clone(),
        get_html(&format!("/auth/callback?code={code}")),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // Duplicate parameters.
    let dup = format!("{callback}&state=other");
    let resp = send(&s.app, &mut jar.clone(), get_html(&dup)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        s.provider.counts().code_grants,
        0,
        "no token call for refused callbacks"
    );

    // The real one works once; replaying it is refused without calling the token endpoint.
    let before = jar.clone();
    let resp = send(&s.app, &mut jar, get_html(&callback)).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(s.provider.counts().code_grants, 1);
    let mut replay = before;
    replay.cookies.retain(|c| !c.name.ends_with("_s"));
    // A browser would not have the transaction cookie any more; even if an attacker kept it,
    // the code is single-use at the provider. The signed-in browser that replays it (Back,
    // then the same URL) goes on to the app (issue 16), still without a token call.
    let resp = send(&s.app, &mut jar, get_html(&callback)).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(location(&resp), "/");
    assert_eq!(s.provider.counts().code_grants, 1);
    let resp = send(&s.app, &mut replay, get_html(&callback)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(replay.get("_s").is_none());
}

#[tokio::test]
async fn iss_mismatch_is_refused() {
    let s = setup().await;
    let mut jar = Jar::default();
    let resp = send(&s.app, &mut jar, get_html("/auth/login")).await;
    let callback = authorize(&location(&resp)).await;
    let evil = callback.replace(
        &urlencode(s.provider.issuer()),
        &urlencode("https://evil.example"),
    );
    assert_ne!(evil, callback);
    let resp = send(&s.app, &mut jar.clone(), get_html(&evil)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // The provider advertises the parameter, so leaving it out is refused too.
    let without: String = callback
        .split('&')
        .filter(|p| !p.starts_with("iss="))
        .collect::<Vec<_>>()
        .join("&");
    let resp = send(&s.app, &mut jar, get_html(&without)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(s.provider.counts().code_grants, 0);
}

#[tokio::test]
async fn several_tabs_complete_and_the_oldest_attempts_are_dropped() {
    let s = setup_with(|c| c.max_login_attempts(3)).await;
    let mut jar = Jar::default();
    let mut callbacks = Vec::new();
    for _ in 0..4 {
        let resp = send(&s.app, &mut jar, get_html("/auth/login")).await;
        callbacks.push(authorize(&location(&resp)).await);
    }
    let tx_count = jar.names().iter().filter(|n| n.contains("_tx_")).count();
    assert_eq!(tx_count, 3, "capped: {:?}", jar.names());
    // The oldest was dropped; the others complete in any order.
    let resp = send(&s.app, &mut jar.clone(), get_html(&callbacks[0])).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    for cb in [&callbacks[3], &callbacks[1]] {
        let resp = send(&s.app, &mut jar, get_html(cb)).await;
        assert_eq!(resp.status(), StatusCode::FOUND);
    }
    assert_eq!(s.provider.counts().code_grants, 2);
}

#[tokio::test]
async fn expired_login_attempt_is_refused() {
    let s = setup().await;
    let mut jar = Jar::default();
    let resp = send(&s.app, &mut jar, get_html("/auth/login")).await;
    let callback = authorize(&location(&resp)).await;
    s.clock.advance(Duration::from_secs(601));
    let resp = send(&s.app, &mut jar, get_html(&callback)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(s.provider.counts().code_grants, 0);
}

#[tokio::test]
async fn provider_failures_at_code_exchange() {
    let s = setup_with(|c| c.http_timeout(Duration::from_millis(300))).await;
    for (failure, status) in [
        (Failure::Status(500), StatusCode::BAD_GATEWAY),
        (Failure::Status(503), StatusCode::BAD_GATEWAY),
        (Failure::NotJson, StatusCode::BAD_GATEWAY),
        (Failure::Oversized(2 * 1024 * 1024), StatusCode::BAD_GATEWAY),
        (
            Failure::Delay(Duration::from_secs(5)),
            StatusCode::GATEWAY_TIMEOUT,
        ),
        (
            Failure::OAuthError("invalid_grant".into()),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        s.provider.set_token_failure(Some(failure.clone()));
        let mut jar = Jar::default();
        let resp = login(&s, &mut jar, "/auth/login").await;
        assert_eq!(resp.status(), status, "{failure:?}");
        assert!(
            jar.get("_s").is_none() && jar.get("_id").is_none(),
            "nothing set"
        );
        assert!(body_string(resp).await.contains("Try again"));
    }
    s.provider.set_token_failure(None);
    let mut jar = Jar::default();
    let resp = login(&s, &mut jar, "/auth/login").await;
    assert_eq!(resp.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn provider_unreachable_at_code_exchange_is_502() {
    let s = setup().await;
    let mut jar = Jar::default();
    let resp = send(&s.app, &mut jar, get_html("/auth/login")).await;
    let callback = authorize(&location(&resp)).await;
    let Setup { provider, app, .. } = s;
    drop(provider);
    let resp = send(&app, &mut jar, get_html(&callback)).await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert!(jar.get("_s").is_none());
}

#[tokio::test]
async fn return_to_open_redirects_end_same_origin() {
    let s = setup().await;
    for target in [
        "//evil.com",
        "/\\evil.com",
        "https://evil.com",
        "%2F%2Fevil.com",
        "/%2F%2Fevil.com",
        "/%5Cevil.com",
        "/%255C%255Cevil.com",
        "\\\\evil.com",
        "http:evil.com",
        "/\u{0}x",
        "/a\r\nLocation: https://evil.com",
        "@evil.com",
    ] {
        let mut jar = Jar::default();
        let uri = format!("/auth/login?return_to={}", urlencode(target));
        let resp = login(&s, &mut jar, &uri).await;
        assert_eq!(resp.status(), StatusCode::FOUND);
        assert_eq!(location(&resp), "/", "{target:?}");
    }
    let mut jar = Jar::default();
    let resp = login(&s, &mut jar, "/auth/login?return_to=%2Fdocs%3Fa%3D1%23top").await;
    assert_eq!(location(&resp), "/docs?a=1#top");
}

#[tokio::test]
async fn login_passes_only_allow_listed_parameters() {
    let s = setup().await;
    let mut jar = Jar::default();
    let uri = "/auth/login?organization_id=org_9&login_hint=a%40b.c&prompt=login&connection_id=conn_1&domain_hint=b.c&provider=google&redirect_uri=https%3A%2F%2Fevil&client_id=evil&scope=admin";
    // A link on the app's own page (pass-through parameters need a same-origin request).
    let mut req = get_html(uri);
    req.headers_mut().insert(
        "sec-fetch-site",
        http::HeaderValue::from_static("same-origin"),
    );
    let resp = send(&s.app, &mut jar, req).await;
    let url = url::Url::parse(&location(&resp)).unwrap();
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let get = |k: &str| {
        pairs
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(get("organization_id"), vec!["org_9"]);
    assert_eq!(get("login_hint"), vec!["a@b.c"]);
    assert_eq!(get("prompt"), vec!["login"]);
    assert_eq!(get("connection_id"), vec!["conn_1"]);
    assert_eq!(get("domain_hint"), vec!["b.c"]);
    assert_eq!(get("provider"), vec!["google"]);
    assert_eq!(get("redirect_uri"), vec![REDIRECT]);
    assert_eq!(get("client_id"), vec!["test-client"]);
    assert_eq!(get("scope"), vec!["openid profile email offline_access"]);
}

#[tokio::test]
async fn require_answers_browsers_apis_and_grpc() {
    let s = setup().await;
    let mut jar = Jar::default();
    let resp = send(&s.app, &mut jar, get_html("/me")).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(location(&resp), "/auth/login?return_to=%2Fme");

    let resp = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()[header::WWW_AUTHENTICATE], "Bearer");
    let body: serde_json::Value = serde_json::from_str(&body_string(resp).await).unwrap();
    assert_eq!(body["error"], "unauthenticated");

    // A POST from a page is not a navigation: 401, not a redirect.
    let req = Request::post("/me")
        .header(header::ACCEPT, "text/html")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        send(&s.app, &mut jar, req).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let req = Request::post("/me")
        .header(header::CONTENT_TYPE, "application/grpc")
        .body(Body::empty())
        .unwrap();
    let resp = send(&s.app, &mut jar, req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["grpc-status"], "16");
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/grpc");

    // The Claims extractor rejects the same way without require().
    let resp = send(&s.app, &mut jar, get_html("/extract")).await;
    assert_eq!(location(&resp), "/auth/login?return_to=%2Fextract");
    let resp = send(&s.app, &mut jar, get_json("/extract")).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // The public route still works, without claims.
    let resp = send(&s.app, &mut jar, get_json("/")).await;
    assert_eq!(body_string(resp).await, "anonymous");
}

#[tokio::test]
async fn session_cookie_helper_signs_in_without_login() {
    let s = setup().await;
    let cookie = s
        .provider
        .session_cookie(&s.auth, &TestUser::new("usr_helper").email("h@x.io"));
    let req = Request::get("/me")
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(s.app.clone(), req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let claims: serde_json::Value = serde_json::from_str(&body_string(resp).await).unwrap();
    assert_eq!(claims["sub"], "usr_helper");
    assert_eq!(claims["email"], "h@x.io");
}

#[tokio::test]
async fn expired_access_token_without_refresh_is_unauthenticated() {
    // No offline_access: no refresh token, so no refresh.
    let s = setup_with(|c| c.scopes(["openid", "email"])).await;
    let mut jar = Jar::default();
    login(&s, &mut jar, "/auth/login").await;
    assert_eq!(
        send(&s.app, &mut jar, get_json("/me")).await.status(),
        StatusCode::OK
    );
    // 5 minutes of token life, and no leeway: a session's token is handed to handlers to call
    // APIs with, so it must not have expired (the leeway is for tokens presented by others).
    s.clock.advance(Duration::from_secs(299));
    assert_eq!(
        send(&s.app, &mut jar, get_json("/me")).await.status(),
        StatusCode::OK
    );
    s.clock.advance(Duration::from_secs(1));
    let resp = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        s.provider.counts().refresh_grants + s.provider.counts().refresh_failures,
        0
    );
    assert!(jar.get("_s").is_none(), "expired session cleared");
}

#[tokio::test]
async fn wrong_methods_on_auth_routes() {
    let s = setup().await;
    let mut jar = Jar::default();
    let req = Request::post("/auth/login").body(Body::empty()).unwrap();
    assert_eq!(
        send(&s.app, &mut jar, req).await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    let req = Request::post("/auth/callback").body(Body::empty()).unwrap();
    assert_eq!(
        send(&s.app, &mut jar, req).await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    let req = Request::delete("/auth/logout").body(Body::empty()).unwrap();
    assert_eq!(
        send(&s.app, &mut jar, req).await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
}

async fn login_against(
    provider: tower_oidc_auth::testing::TestProvider,
    cfg: tower_oidc_auth::AuthLayerBuilder,
) -> serde_json::Value {
    let auth = cfg.build().await.expect("build");
    let s = Setup {
        app: app(&auth),
        auth,
        provider,
        clock: tower_oidc_auth::ManualClock::starting_now(),
    };
    let mut jar = Jar::default();
    let resp = login(&s, &mut jar, "/auth/login").await;
    assert_eq!(
        resp.status(),
        StatusCode::FOUND,
        "{}",
        body_string(resp).await
    );
    assert!(
        jar.tx().is_none() && jar.get("_txi").is_none(),
        "{:?}",
        jar.names()
    );
    let resp = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    serde_json::from_str(&body_string(resp).await).unwrap()
}

/// The body of the tests below that differ only in the one token endpoint authentication method
/// the provider supports (its discovery document names it): the whole flow signs in. (Each case
/// stays a test of its own, so a failure names it.)
async fn login_with_the_only_token_auth_method(method: &str) {
    let provider = tower_oidc_auth::testing::TestProvider::builder()
        .user(user())
        .token_auth_methods([method])
        .start()
        .await;
    let cfg = provider
        .layer_builder(REDIRECT)
        .provider(tower_oidc_auth::Provider::discover(provider.issuer()));
    let claims = login_against(provider, cfg).await;
    assert_eq!(claims["sub"], "usr_42");
}

#[tokio::test]
async fn discovery_with_client_secret_basic_only() {
    login_with_the_only_token_auth_method("client_secret_basic").await;
}

#[tokio::test]
async fn client_secret_post_only() {
    login_with_the_only_token_auth_method("client_secret_post").await;
}

#[tokio::test]
async fn opaque_access_tokens_rest_on_the_id_token() {
    let provider = tower_oidc_auth::testing::TestProvider::builder()
        .user(user())
        .opaque_access_tokens(true)
        .start()
        .await;
    let cfg = provider.layer_builder(REDIRECT);
    let claims = login_against(provider, cfg).await;
    assert_eq!(claims["sub"], "usr_42");
    assert_eq!(claims["email"], "ada@example.com");
}
