//! Issue 13, parts 2 and 3: Scalekit's IdP-initiated login (the app's "Initiate Login URL") and
//! the authorize parameters, driven through `oneshot` against the in-process provider.
//!
//! Sources (all in public Scalekit repositories):
//! - developer-docs `src/content/docs/sso/guides/idp-init-sso.mdx`: the endpoint receives
//!   `?idp_initiated_login=<JWT>` ("Endpoint setup"), the claims ("JWT token structure"),
//!   `error` / `error_description` ("Error callback format"), and the conversion into a normal
//!   SP-initiated authorization request ("Implementation examples").
//! - scalekit-sdk-node `src/scalekit.ts`: `getIdpInitiatedLoginClaims` verifies the token with
//!   the environment's JWKS (`validateToken`: `jose.jwtVerify`, signature, `exp`, `nbf`; issuer
//!   and audience only when the caller asks), and `getAuthorizationUrl` sends a domain hint as
//!   both `domain_hint` and `domain`. scalekit-sdk-go `scalekit.go` (`GetAuthorizationUrl`,
//!   `ValidateToken`: RS256, `exp` required) does the same.
//! - scalekit-sdk-node `src/types/auth.ts` and scalekit-sdk-go `scalekit.go`:
//!   `IdpInitiatedLoginClaims` = `connection_id`, `organization_id`, `login_hint`, optional
//!   `relay_state`.

use std::time::Duration;

use axum::body::Body;
use http::{header, Request, Response, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_oidc_auth::testing::{IdpInitiatedLogin, TestUser};
use tower_oidc_auth::LoginOptions;

use crate::helpers::*;

/// What a browser sends when Scalekit redirects it to the app's Initiate Login URL: a
/// cross-site top-level navigation (Scalekit's domain is not the app's).
fn from_scalekit(uri: &str) -> Request<Body> {
    cross_site_navigation(uri, "https://yourenv.scalekit.com/")
}

fn one(pairs: &[(String, String)], name: &str) -> String {
    let v = values(pairs, name);
    assert_eq!(v.len(), 1, "{name} once in {pairs:?}");
    v[0].clone()
}

fn login_claims() -> IdpInitiatedLogin {
    // Values shaped like the docs' example (idp-init-sso.mdx, "JWT token structure").
    IdpInitiatedLogin::new()
        .organization_id("org_225336910XXXX588")
        .connection_id("conn_22533XXXXX575236")
        .login_hint("name@example.com")
}

/// A refused token: 400, the layer's own error page, no redirect, nothing set.
async fn assert_refused(what: &str, resp: Response<Body>) {
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{what}");
    assert!(resp.headers().get(header::LOCATION).is_none(), "{what}");
    assert!(
        resp.headers().get(header::SET_COOKIE).is_none(),
        "{what}: no transaction cookie"
    );
    let ct = resp.headers()[header::CONTENT_TYPE].to_str().unwrap();
    assert!(ct.starts_with("text/html"), "{what}: {ct}");
    let body = body_string(resp).await;
    assert!(body.contains("<h1>"), "{what}: the error page: {body}");
}

/// The "done when": a valid token redirects to the authorize endpoint with the token's
/// organization, connection and login hint and a fresh state; after sign-in the browser lands on
/// `relay_state`.
#[tokio::test]
async fn idp_initiated_login_becomes_an_sp_login_and_lands_on_relay_state() {
    let s = setup().await;
    let login = login_claims().relay_state("/me");
    let url = s.provider.idp_initiated_login_url("/auth/login", &login);

    let mut jar = Jar::default();
    let resp = send(&s.app, &mut jar, from_scalekit(&url)).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let to = location(&resp);
    assert!(
        to.starts_with(&format!("{}/oauth/authorize?", s.provider.issuer())),
        "{to}"
    );
    let q = query_of(&to);
    assert_eq!(one(&q, "organization_id"), "org_225336910XXXX588");
    assert_eq!(one(&q, "connection_id"), "conn_22533XXXXX575236");
    assert_eq!(one(&q, "login_hint"), "name@example.com");
    assert_eq!(one(&q, "code_challenge_method"), "S256");
    assert_eq!(one(&q, "client_id"), "test-client");
    assert_eq!(one(&q, "redirect_uri"), REDIRECT);
    let state = one(&q, "state");
    assert_eq!(state.len(), 43, "the layer's own random state");
    assert_ne!(state, "/me", "relay_state is never sent as the state");
    assert!(values(&q, "relay_state").is_empty());
    assert!(!one(&q, "nonce").is_empty());
    assert!(jar.tx().is_some(), "a transaction cookie for this attempt");

    // A second IdP-initiated login with the same token gets another state.
    let again = s.app.clone().oneshot(from_scalekit(&url)).await.unwrap();
    assert_ne!(one(&query_of(&location(&again)), "state"), state);

    // Complete the sign-in at the provider and come back to the callback.
    let callback = authorize(&to).await;
    let resp = send(&s.app, &mut jar, get_html(&callback)).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(location(&resp), "/me", "lands on relay_state");
    let me = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(me.status(), StatusCode::OK);
    assert!(body_string(me).await.contains("usr_42"));
}

/// The claim set of the docs' example (idp-init-sso.mdx, "JWT token structure") verbatim but
/// for the times, which are made current. Its `iss` is `https://b2b-app.com`, not the
/// environment URL, and none of the SDKs checks `iss` unless asked: the layer does not either.
/// The environment's signature is what binds the token.
#[tokio::test]
async fn the_docs_example_claims_are_accepted() {
    let s = setup().await;
    let now = s.clock_now();
    let claims = json!({
      "organization_id": "org_225336910XXXX588",
      "connection_id": "conn_22533XXXXX575236",
      "login_hint": "name@example.com",
      "exp": now + 300,
      "nbf": now,
      "iat": now,
      "iss": "https://b2b-app.com"
    });
    let token = s.provider.sign(&claims);
    let resp = s
        .app
        .clone()
        .oneshot(from_scalekit(&format!(
            "/auth/login?idp_initiated_login={token}"
        )))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let q = query_of(&location(&resp));
    assert_eq!(one(&q, "organization_id"), "org_225336910XXXX588");
    assert_eq!(one(&q, "connection_id"), "conn_22533XXXXX575236");
    assert_eq!(one(&q, "login_hint"), "name@example.com");
}

trait ClockNow {
    fn clock_now(&self) -> i64;
}

impl ClockNow for Setup {
    fn clock_now(&self) -> i64 {
        use tower_oidc_auth::Clock;
        self.clock.now()
    }
}

#[tokio::test]
async fn forged_expired_and_malformed_tokens_get_400_and_no_redirect() {
    let s = setup().await;
    let p = &s.provider;
    let now = s.clock_now();
    let claims = p.idp_initiated_login_claims(&login_claims());
    let with = |patch: Value| {
        let mut c = claims.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let valid = p.sign(&claims);
    let parts: Vec<&str> = valid.split('.').collect();
    let kid = p.current_kid();

    let cases: Vec<(&str, String)> = vec![
        (
            // The payload changed after signing: the signature no longer matches.
            "forged signature",
            format!(
                "{}.{}.{}",
                parts[0],
                b64(&with(json!({"organization_id": "org_attacker"}))),
                parts[2]
            ),
        ),
        (
            "signed by another key (unknown kid)",
            p.sign_with_unpublished_key(
                &json!({"alg": "RS256", "typ": "JWT", "kid": "unpublished"}),
                &claims,
            ),
        ),
        (
            "signed by another key under the published kid",
            p.sign_with_unpublished_key(
                &json!({"alg": "RS256", "typ": "JWT", "kid": kid}),
                &claims,
            ),
        ),
        (
            "alg none",
            format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims)),
        ),
        (
            "alg HS256 against an RSA key",
            p.sign_with_header(&json!({"alg": "HS256", "typ": "JWT", "kid": kid}), &claims),
        ),
        (
            "expired",
            p.sign(&with(
                json!({"iat": now - 900, "nbf": now - 900, "exp": now - 600}),
            )),
        ),
        (
            "not yet valid (nbf an hour ahead)",
            p.sign(&with(json!({"nbf": now + 3600, "exp": now + 7200}))),
        ),
        (
            "issued in the future",
            p.sign(&with(json!({"iat": now + 3600, "exp": now + 7200}))),
        ),
        (
            // Go SDK `ValidateToken`: ErrMissingExpClaim; Java: setRequireExpirationTime.
            "no exp",
            p.sign(&with(json!({"exp": null}))),
        ),
        (
            "exp not a number",
            p.sign(&with(json!({"exp": "tomorrow"}))),
        ),
        (
            "no organization, connection or login hint",
            p.sign(&with(json!({
                "organization_id": null, "connection_id": null, "login_hint": null
            }))),
        ),
        (
            "organization_id not a string",
            p.sign(&with(json!({"organization_id": 42}))),
        ),
        (
            "an ID token of this environment",
            p.id_token(&TestUser::new("usr_1"), Some("nonce-1")),
        ),
        (
            "a logout token of this environment",
            p.logout_token("test-client", "usr_1", "sid-1"),
        ),
        (
            "a logout-typed header",
            p.sign_with_header(
                &json!({"alg": "RS256", "typ": "logout+jwt", "kid": kid}),
                &claims,
            ),
        ),
        ("not a JWT", "not-a-jwt".to_owned()),
        ("three dots of garbage", "a.b.c".to_owned()),
        ("header only", format!("{}..", parts[0])),
    ];
    for (what, token) in cases {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("idp_initiated_login", &token)
            .finish();
        let resp = s
            .app
            .clone()
            .oneshot(from_scalekit(&format!("/auth/login?{q}")))
            .await
            .unwrap();
        assert_refused(what, resp).await;
    }
}

#[tokio::test]
async fn a_token_expires_on_the_layers_clock() {
    let s = setup().await;
    let url = s
        .provider
        .idp_initiated_login_url("/auth/login", &login_claims());
    // Scalekit's token lives five minutes; the layer allows its usual 60 s of clock skew.
    s.clock.advance(Duration::from_secs(300 + 59));
    let resp = s.app.clone().oneshot(from_scalekit(&url)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND, "within the leeway");
    s.clock.advance(Duration::from_secs(2));
    let resp = s.app.clone().oneshot(from_scalekit(&url)).await.unwrap();
    assert_refused("expired on the clock", resp).await;
}

/// A token signed with a key the layer has not seen yet (the environment rotated its keys)
/// takes the existing path for an unknown `kid`: one rate-limited JWKS refetch.
#[tokio::test]
async fn a_new_signing_key_is_fetched() {
    let s = setup().await;
    let before = s.provider.counts().jwks_fetches;
    // Past the refetch rate limit (10 s) since the fetch at build.
    s.clock.advance(Duration::from_secs(11));
    s.provider.rotate_keys(false);
    let url = s
        .provider
        .idp_initiated_login_url("/auth/login", &login_claims());
    let resp = s.app.clone().oneshot(from_scalekit(&url)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert!(location(&resp).contains("organization_id=org_225336910XXXX588"));
    assert_eq!(s.provider.counts().jwks_fetches, before + 1);
}

/// `relay_state` is only ever a return target, sanitised like `return_to`: anything but a
/// same-origin path falls back to the default.
#[tokio::test]
async fn unsafe_relay_state_falls_back_to_the_default_return() {
    let s = setup().await;
    for (relay_state, lands_on) in [
        ("https://evil.example", "/"),
        ("//evil", "/"),
        ("/\\evil.example", "/"),
        ("/%2F%2Fevil.example", "/"),
        ("javascript:alert(1)", "/"),
        // The control: a same-origin path is honoured.
        ("/reports?q=1", "/reports?q=1"),
    ] {
        let url = s
            .provider
            .idp_initiated_login_url("/auth/login", &login_claims().relay_state(relay_state));
        let mut jar = Jar::default();
        let resp = send(&s.app, &mut jar, from_scalekit(&url)).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "{relay_state}");
        let callback = authorize(&location(&resp)).await;
        let resp = send(&s.app, &mut jar, get_html(&callback)).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "{relay_state}");
        assert_eq!(location(&resp), lands_on, "{relay_state}");
    }
}

/// The signed flow is allowed cross-site; plain parameters beside it are not honoured (the
/// token is the whole request), and plain parameters alone stay same-origin only.
#[tokio::test]
async fn only_the_signed_claims_choose_the_tenant() {
    let s = setup().await;
    let url = s.provider.idp_initiated_login_url(
        "/auth/login?organization_id=org_attacker&domain_hint=evil.example&return_to=%2Fx",
        &login_claims(),
    );
    for req in [from_scalekit(&url), same_origin_link(&url)] {
        let resp = s.app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::FOUND);
        let q = query_of(&location(&resp));
        assert_eq!(one(&q, "organization_id"), "org_225336910XXXX588");
        assert!(values(&q, "domain_hint").is_empty() && values(&q, "domain").is_empty());
    }
    // Without a token, a cross-site link still cannot choose (existing behaviour).
    let resp = s
        .app
        .clone()
        .oneshot(from_scalekit(
            "/auth/login?organization_id=org_attacker&connection_id=conn_attacker",
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let to = location(&resp);
    assert!(
        !to.contains("org_attacker") && !to.contains("conn_attacker"),
        "{to}"
    );
    // An empty token is no token (the docs' handlers test `if (idp_initiated_login)`).
    let resp = s
        .app
        .clone()
        .oneshot(from_scalekit("/auth/login?idp_initiated_login="))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
}

/// The app's approval of authorization parameters applies to the token's claims too.
#[tokio::test]
async fn the_apps_approval_applies_to_signed_claims() {
    let s = setup_with(|c| {
        c.approve_authorize_param(|name, value| {
            name != "organization_id" || value.starts_with("org_ours")
        })
    })
    .await;
    let url = s.provider.idp_initiated_login_url(
        "/auth/login",
        &IdpInitiatedLogin::new()
            .organization_id("org_theirs")
            .connection_id("conn_1"),
    );
    let resp = s.app.clone().oneshot(from_scalekit(&url)).await.unwrap();
    let q = query_of(&location(&resp));
    assert!(values(&q, "organization_id").is_empty(), "{q:?}");
    assert_eq!(one(&q, "connection_id"), "conn_1");
}

/// `error` / `error_description` on the login route (idp-init-sso.mdx, "Error callback format";
/// add-modular-sso.mdx handles `error` first): the friendly error page, never the raw text.
#[tokio::test]
async fn error_on_the_login_route_gets_the_error_page() {
    let s = setup().await;
    let token = s.provider.idp_initiated_login_token(&login_claims());
    for q in [
        "error=access_denied&error_description=%3Cscript%3Ealert(1)%3C%2Fscript%3E".to_owned(),
        "error=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E".to_owned(),
        format!("error=server_error&error_description=boom&idp_initiated_login={token}"),
    ] {
        let resp = s
            .app
            .clone()
            .oneshot(from_scalekit(&format!("/auth/login?{q}")))
            .await
            .unwrap();
        assert!(resp.status().is_client_error(), "{q}: {}", resp.status());
        assert!(resp.headers().get(header::LOCATION).is_none(), "{q}");
        assert!(resp.headers().get(header::SET_COOKIE).is_none(), "{q}");
        let ct = resp.headers()[header::CONTENT_TYPE].to_str().unwrap();
        assert!(ct.starts_with("text/html"), "{q}: {ct}");
        let body = body_string(resp).await;
        assert!(
            !body.contains("<script") && !body.contains("<img"),
            "{body}"
        );
        assert!(body.contains("<h1>"), "{body}");
    }
}

/// A domain hint is sent as both `domain_hint` and `domain`, as scalekit-sdk-node
/// `getAuthorizationUrl` (`src/scalekit.ts`), scalekit-sdk-go `GetAuthorizationUrl` and
/// scalekit-sdk-java `getAuthorizationUrl` do.
#[tokio::test]
async fn a_domain_hint_sends_domain_too() {
    let s = setup().await;
    let resp = s
        .app
        .clone()
        .oneshot(same_origin_link("/auth/login?domain_hint=example.com"))
        .await
        .unwrap();
    let q = query_of(&location(&resp));
    assert_eq!(one(&q, "domain_hint"), "example.com");
    assert_eq!(one(&q, "domain"), "example.com");
    // Cross-site: neither (the hint chooses the tenant).
    let resp = s
        .app
        .clone()
        .oneshot(from_scalekit("/auth/login?domain_hint=example.com"))
        .await
        .unwrap();
    let q = query_of(&location(&resp));
    assert!(values(&q, "domain_hint").is_empty() && values(&q, "domain").is_empty());
    // `domain` is not a parameter of its own: only derived from the hint.
    let resp = s
        .app
        .clone()
        .oneshot(same_origin_link("/auth/login?domain=evil.example"))
        .await
        .unwrap();
    assert!(values(&query_of(&location(&resp)), "domain").is_empty());
}

#[tokio::test]
async fn login_url_builds_the_apps_own_links() {
    let s = setup().await;
    assert_eq!(s.auth.login_url(LoginOptions::new()), "/auth/login");
    let link = s.auth.login_url(
        LoginOptions::new()
            .organization_id("org_1")
            .connection_id("conn_1")
            .login_hint("ada+1@example.com")
            .domain_hint("example.com")
            .provider("google")
            .prompt("select_account")
            .return_to("/docs?a=1&b=2#top"),
    );
    // Sealed with the app's keys (issue 17): one parameter, honoured from any site.
    assert!(link.starts_with("/auth/login?options="), "{link}");
    assert!(!link.contains("org_1"), "{link}");

    // Followed from the app's own page, every option reaches the provider.
    let mut jar = Jar::default();
    let resp = send(&s.app, &mut jar, same_origin_link(&link)).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let to = location(&resp);
    let q = query_of(&to);
    assert_eq!(one(&q, "organization_id"), "org_1");
    assert_eq!(one(&q, "connection_id"), "conn_1");
    assert_eq!(one(&q, "login_hint"), "ada+1@example.com");
    assert_eq!(one(&q, "domain_hint"), "example.com");
    assert_eq!(one(&q, "domain"), "example.com");
    assert_eq!(one(&q, "provider"), "google");
    assert_eq!(one(&q, "prompt"), "select_account");
    // ... and the sign-in returns where the link said.
    let callback = authorize(&to).await;
    let resp = send(&s.app, &mut jar, get_html(&callback)).await;
    assert_eq!(location(&resp), "/docs?a=1&b=2#top");
}

/// Organization switching: a signed-in user follows a link that asks the provider to let them
/// pick another organization.
#[tokio::test]
async fn login_url_switches_organization() {
    let s = setup().await;
    let mut options = LoginOptions::default();
    options.organization_id = Some("org_2".into());
    options.prompt = Some("select_account".into());
    let link = s.auth.login_url(options);
    assert!(link.starts_with("/auth/login?options="), "{link}");
    let resp = s
        .app
        .clone()
        .oneshot(same_origin_link(&link))
        .await
        .unwrap();
    let q = query_of(&location(&resp));
    assert_eq!(one(&q, "prompt"), "select_account");
    assert_eq!(one(&q, "organization_id"), "org_2");
}

#[tokio::test]
async fn login_url_follows_the_configured_base_path() {
    let s = setup_with(|c| c.base_path("/sso")).await;
    let link = s
        .auth
        .login_url(LoginOptions::new().login_hint("a b@example.com"));
    assert!(link.starts_with("/sso/login?options="), "{link}");
    let resp = s
        .app
        .clone()
        .oneshot(same_origin_link(&link))
        .await
        .unwrap();
    assert_eq!(
        one(&query_of(&location(&resp)), "login_hint"),
        "a b@example.com"
    );
}

/// A signed-in user whom another site sends to an IdP-initiated login (anyone can obtain such a
/// token for an organization whose identity provider they run) is asked before the session is
/// replaced. "Continue" submits the same token from the app's own page and proceeds; "Stay
/// signed in" keeps the session. Without a session, or from the app's own pages, there is no
/// question (that is the flow Scalekit drives).
#[tokio::test]
async fn a_signed_in_user_is_asked_before_a_cross_site_idp_login_replaces_the_session() {
    let s = setup().await;
    let url = s
        .provider
        .idp_initiated_login_url("/auth/login", &login_claims().relay_state("/me"));
    let mut jar = Jar::default();
    assert_eq!(
        login(&s, &mut jar, "/auth/login").await.status(),
        StatusCode::FOUND
    );

    let resp = send(&s.app, &mut jar, from_scalekit(&url)).await;
    assert_eq!(resp.status(), StatusCode::OK, "a question, not a redirect");
    assert!(resp.headers().get(header::LOCATION).is_none());
    assert_eq!(resp.headers()[header::X_FRAME_OPTIONS], "DENY");
    let page = body_string(resp).await;
    assert!(page.contains("Switch account?"), "{page}");
    // The form carries the token back to the login route, from the app's own page.
    let token = url.split("idp_initiated_login=").nth(1).unwrap();
    let token = url::form_urlencoded::parse(format!("t={token}").as_bytes())
        .next()
        .unwrap()
        .1
        .into_owned();
    assert!(page.contains(&format!("value=\"{token}\"")), "{page}");
    assert_eq!(
        send(&s.app, &mut jar, get_json("/me")).await.status(),
        StatusCode::OK,
        "the session is untouched"
    );

    // Continue: the same URL from the app's own page goes to the provider.
    let resp = send(&s.app, &mut jar, same_origin_link(&url)).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert!(
        location(&resp).contains("/oauth/authorize?"),
        "{}",
        location(&resp)
    );

    // Without a session there is no question.
    let mut fresh = Jar::default();
    let resp = send(&s.app, &mut fresh, from_scalekit(&url)).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
}
