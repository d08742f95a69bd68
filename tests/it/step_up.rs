//! Step-up (issue 17, part 3): login links with sealed options, `max_age` / `acr_values`
//! stored in the login attempt and checked at the callback, and the `require_recent_login` /
//! `require_acr` guards (a step-up login for browsers, RFC 9470 for APIs, `UNAUTHENTICATED` for
//! gRPC).

use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{header, Request, StatusCode};
use tower::ServiceExt;
use tower_oidc_auth::testing::TestUser;
use tower_oidc_auth::{AuthLayer, LoginOptions};

use crate::helpers::*;

const FIVE_MINUTES: Duration = Duration::from_secs(300);

/// `/billing` needs a sign-in at most five minutes old; `/keys` needs `acr` `mfa` (or `hwk`).
fn step_up_app(auth: &AuthLayer) -> Router {
    let recent = Router::new()
        .route("/billing", get(|| async { "billing" }))
        .route_layer(auth.require_recent_login(FIVE_MINUTES));
    let strong = Router::new()
        .route("/keys", get(|| async { "keys" }))
        .route_layer(auth.require_acr("mfa hwk"));
    recent.merge(strong).layer(auth.clone())
}

/// A provider, a layer and [`step_up_app`].
async fn step_up_setup() -> (Setup, Router) {
    let s = setup().await;
    let app = step_up_app(&s.auth);
    (s, app)
}

/// The helpers' user, having signed in at `auth_time` (unix seconds) with `acr`, whatever the
/// login asked for: `None` leaves the claim out of the ID token (the TestProvider's own
/// `max_age` / `acr_values` handling is overridden, to play a provider that answers wrongly).
fn user_at(auth_time: Option<i64>, acr: Option<&str>) -> TestUser {
    user()
        .claim(
            "auth_time",
            auth_time.map_or(serde_json::Value::Null, Into::into),
        )
        .claim("acr", acr.map_or(serde_json::Value::Null, Into::into))
}

fn now(s: &Setup) -> i64 {
    tower_oidc_auth::Clock::now(&s.clock)
}

/// Follows a login link through `app` and the provider; returns the authorize URL and the
/// callback's response.
async fn sign_in_via(
    app: &Router,
    jar: &mut Jar,
    req: Request<Body>,
) -> (String, http::Response<Body>) {
    let resp = send(app, jar, req).await;
    assert_eq!(resp.status(), StatusCode::FOUND, "login starts");
    let authorize_url = location(&resp);
    let callback = authorize(&authorize_url).await;
    let resp = send(app, jar, get_html(&callback)).await;
    (authorize_url, resp)
}

/// Whether a response sets the session cookie (a value, not a removal).
fn sets_session(resp: &http::Response<Body>) -> bool {
    set_cookies(resp)
        .iter()
        .any(|c| is_session(c) && !c.value().is_empty() && !is_removal(c))
}

fn grpc(uri: &str, cookie: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn require_recent_login_redirects_a_stale_session_to_a_login_with_max_age() {
    let (s, app) = step_up_setup().await;
    let t0 = now(&s);
    s.provider.set_user(Some(user_at(Some(t0), None)));
    let mut jar = Jar::default();
    let (_, resp) = sign_in_via(&app, &mut jar, get_html("/auth/login")).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(
        send(&app, &mut jar, get_html("/billing")).await.status(),
        StatusCode::OK
    );

    // Ten minutes later the sign-in is too old for /billing.
    s.clock.advance(Duration::from_secs(600));
    let resp = send(&app, &mut jar, get_html("/billing?tab=card")).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let step_up = location(&resp);
    assert!(step_up.starts_with("/auth/login?options="), "{step_up}");

    // The step-up login asks the provider for max_age=300, and the provider (ignoring it)
    // answers with the old auth_time: refused, no session.
    let (authorize_url, resp) = sign_in_via(&app, &mut jar, get_html(&step_up)).await;
    let q = query_of(&authorize_url);
    assert_eq!(values(&q, "max_age"), vec!["300".to_owned()]);
    assert!(values(&q, "acr_values").is_empty());
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(!sets_session(&resp), "no session for a stale sign-in");
    assert!(body_string(resp)
        .await
        .contains("Sign-in not strong enough"));

    // The user signs in again at the provider: a fresh auth_time, back to the same page.
    s.provider.set_user(Some(user_at(Some(now(&s)), None)));
    let (_, resp) = sign_in_via(&app, &mut jar, get_html(&step_up)).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(location(&resp), "/billing?tab=card");
    assert!(sets_session(&resp));
    assert_eq!(
        send(&app, &mut jar, get_html("/billing")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_callback_refuses_an_auth_time_older_than_asked_and_accepts_one_within_leeway() {
    let s = setup().await;
    let link = s.auth.login_url(LoginOptions::new().max_age(FIVE_MINUTES));
    // 301 seconds plus the leeway: too old.
    let leeway = 60;
    s.provider
        .set_user(Some(user_at(Some(now(&s) - 300 - leeway - 1), None)));
    let (_, resp) = sign_in_via(&s.app, &mut Jar::default(), get_html(&link)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(!sets_session(&resp));
    // Just within max_age: accepted.
    s.provider
        .set_user(Some(user_at(Some(now(&s) - 299), None)));
    let (_, resp) = sign_in_via(&s.app, &mut Jar::default(), get_html(&link)).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert!(sets_session(&resp));
}

#[tokio::test]
async fn a_missing_auth_time_is_refused_when_max_age_was_asked() {
    let s = setup().await;
    s.provider.set_user(Some(user_at(None, None)));
    let link = s.auth.login_url(LoginOptions::new().max_age(FIVE_MINUTES));
    let (authorize_url, resp) = sign_in_via(&s.app, &mut Jar::default(), get_html(&link)).await;
    assert_eq!(
        values(&query_of(&authorize_url), "max_age"),
        vec!["300".to_owned()]
    );
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(!sets_session(&resp));
    // The same user without a step-up asked signs in.
    let (_, resp) = sign_in_via(&s.app, &mut Jar::default(), get_html("/auth/login")).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert!(sets_session(&resp));
}

#[tokio::test]
async fn an_acr_not_among_the_values_asked_is_refused() {
    let (s, app) = step_up_setup().await;
    s.provider
        .set_user(Some(user_at(Some(now(&s)), Some("pwd"))));
    let mut jar = Jar::default();
    let (_, resp) = sign_in_via(&app, &mut jar, get_html("/auth/login")).await;
    assert_eq!(
        resp.status(),
        StatusCode::FOUND,
        "a plain login needs no acr"
    );

    // /keys needs mfa or hwk: the browser is sent to a login asking for them ...
    let resp = send(&app, &mut jar, get_html("/keys")).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let step_up = location(&resp);
    assert!(step_up.starts_with("/auth/login?options="), "{step_up}");
    // ... and the provider answering with `pwd` again is refused.
    let (authorize_url, resp) = sign_in_via(&app, &mut jar, get_html(&step_up)).await;
    let q = query_of(&authorize_url);
    assert_eq!(values(&q, "acr_values"), vec!["mfa hwk".to_owned()]);
    assert!(values(&q, "max_age").is_empty());
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(!sets_session(&resp));

    // With `hwk`, the step-up succeeds and /keys opens.
    s.provider
        .set_user(Some(user_at(Some(now(&s)), Some("hwk"))));
    let (_, resp) = sign_in_via(&app, &mut jar, get_html(&step_up)).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(location(&resp), "/keys");
    assert_eq!(
        send(&app, &mut jar, get_html("/keys")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn apis_get_the_rfc_9470_challenge_and_grpc_unauthenticated() {
    let (s, app) = step_up_setup().await;
    let stale = user_at(Some(now(&s) - 3600), Some("pwd"));
    let cookie = s.provider.session_cookie(&s.auth, &stale);

    let resp = app
        .clone()
        .oneshot(request("/billing", &cookie))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.headers()[header::WWW_AUTHENTICATE],
        "Bearer error=\"insufficient_user_authentication\", \
         error_description=\"A more recent authentication is required\", max_age=300"
    );
    assert!(body_string(resp)
        .await
        .contains("insufficient_user_authentication"));

    let resp = app
        .clone()
        .oneshot(request("/keys", &cookie))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.headers()[header::WWW_AUTHENTICATE],
        "Bearer error=\"insufficient_user_authentication\", \
         error_description=\"A stronger authentication is required\", acr_values=\"mfa hwk\""
    );

    // Bearer requests are judged by the access token's claims, the same way.
    let token = s.provider.access_token(&stale);
    let resp = app
        .clone()
        .oneshot(bearer("/billing", &token))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = resp.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.ends_with("max_age=300"), "{challenge}");
    let fresh = s
        .provider
        .access_token(&user_at(Some(now(&s)), Some("mfa")));
    for path in ["/billing", "/keys"] {
        let resp = app.clone().oneshot(bearer(path, &fresh)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
    }

    // gRPC: UNAUTHENTICATED.
    let resp = app
        .clone()
        .oneshot(grpc("/billing", &cookie))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["grpc-status"], "16");
}

#[tokio::test]
async fn a_session_without_auth_time_is_not_recent() {
    let (s, app) = step_up_setup().await;
    let cookie = s
        .provider
        .session_cookie(&s.auth, &user_at(None, Some("mfa")));
    let resp = app
        .clone()
        .oneshot(request("/billing", &cookie))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // `acr` is enough for /keys.
    let resp = app.oneshot(request("/keys", &cookie)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn without_a_session_the_step_up_guards_answer_as_require() {
    let (_s, app) = step_up_setup().await;
    for path in ["/billing", "/keys"] {
        let resp = app.clone().oneshot(get_html(path)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::FOUND);
        assert_eq!(
            location(&resp),
            format!("/auth/login?return_to=%2F{}", &path[1..])
        );
        let resp = app.clone().oneshot(get_json(path)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(resp.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}

/// With opaque access tokens the session's claims are the ID token's, cut down to
/// `session_claims`: `auth_time` and `acr` are kept even when the app's list omits them.
#[tokio::test]
async fn the_session_keeps_auth_time_and_acr_whatever_session_claims_says() {
    let clock = tower_oidc_auth::ManualClock::starting_now();
    let t0 = tower_oidc_auth::Clock::now(&clock);
    let provider = tower_oidc_auth::testing::TestProvider::builder()
        .user(user_at(Some(t0), Some("mfa")))
        .clock(clock.clone())
        .opaque_access_tokens(true)
        .start()
        .await;
    let auth = provider
        .layer_builder(REDIRECT)
        .session_claims(["email"])
        .build()
        .await
        .unwrap();
    let app = step_up_app(&auth);
    let mut jar = Jar::default();
    let (_, resp) = sign_in_via(&app, &mut jar, get_html("/auth/login")).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(
        send(&app, &mut jar, get_html("/billing")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&app, &mut jar, get_html("/keys")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_cross_site_link_built_by_login_url_is_honoured_and_a_hand_made_one_is_not() {
    let s = setup().await;
    let link = s.auth.login_url(
        LoginOptions::new()
            .organization_id("org_9")
            .login_hint("ada@example.com")
            .prompt("select_account")
            .max_age(Duration::from_secs(0))
            .return_to("/docs?a=1"),
    );
    assert!(link.starts_with("/auth/login?options="), "{link}");
    assert!(!link.contains("org_9"), "sealed, not readable: {link}");

    let resp = s
        .app
        .clone()
        .oneshot(cross_site_navigation(&link, "https://mail.example.net/"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let q = query_of(&location(&resp));
    assert_eq!(values(&q, "organization_id"), vec!["org_9".to_owned()]);
    assert_eq!(values(&q, "login_hint"), vec!["ada@example.com".to_owned()]);
    assert_eq!(values(&q, "prompt"), vec!["select_account".to_owned()]);
    assert_eq!(values(&q, "max_age"), vec!["0".to_owned()]);

    // The same options by hand, from another site: dropped.
    let hand_made = "/auth/login?organization_id=org_9&login_hint=ada%40example.com\
                     &prompt=select_account&max_age=0&acr_values=mfa";
    let resp = s
        .app
        .clone()
        .oneshot(cross_site_navigation(hand_made, "https://evil.example/"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let q = query_of(&location(&resp));
    for name in [
        "organization_id",
        "login_hint",
        "prompt",
        "max_age",
        "acr_values",
    ] {
        assert!(values(&q, name).is_empty(), "{name} dropped: {q:?}");
    }
    // ... and honoured from the app's own page.
    let resp = s
        .app
        .clone()
        .oneshot(same_origin_link(hand_made))
        .await
        .unwrap();
    let q = query_of(&location(&resp));
    assert_eq!(values(&q, "organization_id"), vec!["org_9".to_owned()]);
    assert_eq!(values(&q, "max_age"), vec!["0".to_owned()]);
    assert_eq!(values(&q, "acr_values"), vec!["mfa".to_owned()]);

    // Plain parameters beside sealed options are ignored: the sealed value is the request.
    let mixed = format!("{link}&organization_id=org_evil&acr_values=none");
    let resp = s
        .app
        .clone()
        .oneshot(same_origin_link(&mixed))
        .await
        .unwrap();
    let q = query_of(&location(&resp));
    assert_eq!(values(&q, "organization_id"), vec!["org_9".to_owned()]);
    assert!(values(&q, "acr_values").is_empty());

    // The sealed return target is kept through the sign-in.
    s.provider.set_user(Some(user_at(Some(now(&s)), None)));
    let (_, resp) = sign_in_via(
        &s.app,
        &mut Jar::default(),
        cross_site_navigation(&link, "https://mail.example.net/"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(location(&resp), "/docs?a=1");
}

#[tokio::test]
async fn a_tampered_or_foreign_sealed_link_gets_400() {
    let s = setup().await;
    let other = setup().await;
    let link = s
        .auth
        .login_url(LoginOptions::new().organization_id("org_9"));
    let sealed = link
        .strip_prefix("/auth/login?options=")
        .unwrap()
        .to_owned();
    let decoded: String = url::form_urlencoded::parse(format!("x={sealed}").as_bytes())
        .next()
        .unwrap()
        .1
        .into_owned();

    // One character of the sealed value changed.
    let mut bytes = decoded.clone().into_bytes();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    // A session cookie's sealed value, presented as options.
    let cookie = s.provider.session_cookie(&s.auth, &user());
    let (_, cookie_value, _) = split_session(&cookie);
    let enc = |v: &str| -> String { url::form_urlencoded::byte_serialize(v.as_bytes()).collect() };

    let bad = [
        format!("/auth/login?options={}", enc(&tampered)),
        format!("/auth/login?options={}", enc(&decoded[..decoded.len() - 4])),
        "/auth/login?options=%00%ff".to_owned(),
        "/auth/login?options=AAAA".to_owned(),
        format!("/auth/login?options={}", enc(&cookie_value)),
        format!("/auth/login?options={}", enc(&"A".repeat(5000))),
    ];
    for uri in &bad {
        let resp = s
            .app
            .clone()
            .oneshot(cross_site_navigation(uri, "https://evil.example/"))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{uri}");
        assert!(resp.headers().get(header::LOCATION).is_none());
        assert!(
            body_string(resp).await.contains("Sign-in link not valid"),
            "{uri}"
        );
    }
    // Sealed by another app (other keys): refused there, fine here.
    let resp = other
        .app
        .clone()
        .oneshot(same_origin_link(&link))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = s
        .app
        .clone()
        .oneshot(same_origin_link(&link))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
}

/// An app's own `Responses::step_up` answer keeps the RFC 9470 challenge: the layer adds it to
/// a 401 without one.
#[tokio::test]
async fn a_hooks_401_gets_the_rfc_9470_challenge() {
    use bytes::Bytes;
    use tower_oidc_auth::responses::{Responses, StepUpContext};

    struct Terse;
    impl Responses for Terse {
        fn step_up(&self, _cx: &StepUpContext<'_>) -> http::Response<Bytes> {
            http::Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .body(Bytes::from_static(b"again"))
                .unwrap()
        }
    }
    let s = setup_with(|c| c.responses(Terse)).await;
    let app = step_up_app(&s.auth);
    let cookie = s
        .provider
        .session_cookie(&s.auth, &user_at(Some(now(&s) - 3600), None));
    let resp = app.oneshot(request("/billing", &cookie)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = resp.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_user_authentication\"")
            && challenge.ends_with("max_age=300"),
        "{challenge}"
    );
    assert_eq!(body_string(resp).await, "again");
}

/// The error page's "Try again" repeats the step-up, with `prompt=login`.
#[tokio::test]
async fn the_step_up_error_page_retries_the_step_up() {
    let s = setup().await;
    s.provider.set_user(Some(user_at(None, None)));
    let link = s
        .auth
        .login_url(LoginOptions::new().max_age(FIVE_MINUTES).return_to("/me"));
    let mut jar = Jar::default();
    let (_, resp) = sign_in_via(&s.app, &mut jar, get_html(&link)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body = body_string(resp).await;
    let retry = body
        .split("href=\"")
        .map(|rest| rest.split('"').next().unwrap().replace("&amp;", "&"))
        .find(|href| href.starts_with("/auth/login?options="))
        .unwrap_or_else(|| panic!("a step-up retry link in {body}"));
    s.provider.set_user(Some(user_at(Some(now(&s)), None)));
    let (authorize_url, resp) = sign_in_via(&s.app, &mut jar, get_html(&retry)).await;
    let q = query_of(&authorize_url);
    assert_eq!(values(&q, "max_age"), vec!["300".to_owned()]);
    assert_eq!(values(&q, "prompt"), vec!["login".to_owned()]);
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(location(&resp), "/me");
}

/// Guards login CSRF through a sealed link: anyone can get a link the app sealed for them
/// (switching to their own organization) and send it to a victim. Over a signed-in session, a
/// cross-site link that chooses a tenant asks first, with a form that submits the same link
/// from the app's page; one that only steps up passes; without a session, it starts the login.
#[tokio::test]
async fn a_cross_site_tenant_link_over_a_session_asks_first() {
    let s = setup().await;
    let (jar, _) = signed_in(&s).await;
    let session = jar.header_for("/auth/login");
    let tenant = s
        .auth
        .login_url(LoginOptions::new().organization_id("org_attacker"));
    let over_session = |uri: &str| {
        let mut req = cross_site_navigation(uri, "https://evil.example/");
        req.headers_mut()
            .insert(header::COOKIE, session.parse().unwrap());
        req
    };
    let resp = serve(&s.app, over_session(&tenant)).await;
    assert_eq!(resp.status(), StatusCode::OK, "a confirmation, not a login");
    assert!(
        set_cookies(&resp).iter().next().is_none(),
        "nothing replaced"
    );
    let body = body_string(resp).await;
    let sealed = values(&query_of(&format!("http://x{tenant}")), "options")
        .pop()
        .expect("options");
    assert!(body.contains("name=\"options\""), "{body}");
    assert!(body.contains(&format!("value=\"{sealed}\"")), "{body}");
    // Confirmed from the app's own page: the login starts with the link's tenant.
    let mut confirmed = same_origin_link(&tenant);
    confirmed
        .headers_mut()
        .insert(header::COOKIE, session.parse().unwrap());
    let resp = serve(&s.app, confirmed).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let q = query_of(&location(&resp));
    assert_eq!(
        values(&q, "organization_id"),
        vec!["org_attacker".to_owned()]
    );

    // A step-up link only makes the sign-in stricter: no question.
    let step_up = s
        .auth
        .login_url(LoginOptions::new().max_age(Duration::from_secs(0)));
    let resp = serve(&s.app, over_session(&step_up)).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(
        values(&query_of(&location(&resp)), "max_age"),
        vec!["0".to_owned()]
    );

    // No session: the login starts, as with any IdP-initiated sign-in.
    let resp = serve(
        &s.app,
        cross_site_navigation(&tenant, "https://mail.example/"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let q = query_of(&location(&resp));
    assert_eq!(
        values(&q, "organization_id"),
        vec!["org_attacker".to_owned()]
    );
}
