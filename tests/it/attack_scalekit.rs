//! Adversarial tests of the Scalekit additions (issue 13): IdP-initiated login, M2M bearer
//! tokens, and the Management API client. Each test asserts the SECURE behaviour: a failing
//! test is a finding. Tests that pass are kept as guards.
//!
//! Failing at the time of writing (findings):
//! - `idp_login_refuses_a_user_access_token_with_custom_claims`,
//!   `idp_login_refuses_an_m2m_token_with_org_claims`: any token of the environment that
//!   carries `organization_id` / `connection_id` / `login_hint` (an access token with a Scalekit
//!   custom claim, an M2M token) is accepted as an `idp_initiated_login` token.
//! - `idp_login_refuses_a_token_for_another_client`: an `aud` naming another client is ignored.
//! - `idp_login_does_not_silently_replace_an_existing_session`: a cross-site IdP-initiated
//!   link swaps the signed-in user (login CSRF through an IdP the attacker controls).
//! - `access_token_fractional_or_string_nbf_is_not_ignored`: a non-integer or string `nbf`
//!   (and a non-integer `iat`) is ignored on access tokens: not-yet-valid tokens pass.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::routing::get;
use axum::{Json, Router};
use futures_util::TryStreamExt;
use http::{header, Request, Response, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_oidc_auth::management::{ClientCredentials, ManagementClient, ManagementError};
use tower_oidc_auth::testing::{IdpInitiatedLogin, TestUser};
use tower_oidc_auth::{AuthLayer, Claims, Clock, M2mClients};

use crate::helpers::*;

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

/// A cross-site top-level navigation, as when Scalekit (or an attacker's page) sends the browser
/// to the login route.
fn cross_site(uri: &str) -> Request<Body> {
    cross_site_navigation(uri, "https://attacker.example/")
}

fn idp_url(token: &str) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("idp_initiated_login", token)
        .finish();
    format!("/auth/login?{q}")
}

fn now(s: &Setup) -> i64 {
    s.clock.now()
}

/// The claims of a valid IdP-initiated login token, at the test clock, plus `patch` (`null`
/// removes a claim).
fn idp_claims(s: &Setup, patch: Value) -> Value {
    let mut c = s.provider.idp_initiated_login_claims(
        &IdpInitiatedLogin::new()
            .organization_id("org_1")
            .connection_id("conn_1")
            .login_hint("a@b.example"),
    );
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

/// Runs an IdP-initiated login link through the whole flow and returns the callback response.
async fn idp_flow(s: &Setup, jar: &mut Jar, token: &str) -> Response<Body> {
    let resp = send(&s.app, jar, cross_site(&idp_url(token))).await;
    assert_eq!(resp.status(), StatusCode::FOUND, "login must start");
    let callback = authorize(&location(&resp)).await;
    send(&s.app, jar, get_html(&callback)).await
}

/// The login route refused the token: no redirect to the provider, no transaction cookie.
fn refused_by_login(resp: &Response<Body>) -> bool {
    resp.status() == StatusCode::BAD_REQUEST
        && resp.headers().get(header::LOCATION).is_none()
        && resp.headers().get(header::SET_COOKIE).is_none()
}

/// An API behind `auth`: `/admin` needs scope `admin`, `/whoami` any caller.
fn api(auth: &AuthLayer) -> Router {
    Router::new()
        .route("/admin", get(|| async { "admin ok" }))
        .route_layer(auth.require_scope("admin"))
        .route(
            "/whoami",
            get(|c: Claims| async move { Json(json!({"sub": c.sub, "machine": c.is_machine()})) }),
        )
        .layer(auth.clone())
}

async fn bearer_status(auth: &AuthLayer, uri: &str, token: &str) -> StatusCode {
    api(auth)
        .oneshot(bearer(uri, token))
        .await
        .unwrap()
        .status()
}

fn m2m(s: &Setup, client: &str, patch: Value) -> Value {
    let n = now(s);
    let mut c = json!({
        "client_id": client, "exp": n + 3600, "iat": n, "iss": s.provider.issuer(),
        "jti": "tkn_1", "nbf": n, "oid": "org_1", "scopes": ["admin"], "sub": client
    });
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

// =============================================================================================
// 1. IdP-initiated login
// =============================================================================================

/// Token confusion: a user's ACCESS token is not an IdP-initiated login token. Scalekit lets the
/// app add custom top-level claims to its access tokens (developer-docs
/// `authenticate/fsa/session-token-claims.mdx`: claim key + expression such as
/// `user.current_membership.organization_id`; `organization_id`, `connection_id` and
/// `login_hint` are not among the reserved keys). An app that maps `organization_id` (or
/// `login_hint` to `user.email`) turns every user's access token into a valid
/// `idp_initiated_login` value: any user of any organization of the environment can then build a
/// cross-site link that forces a victim into their organization's login, and access tokens end
/// up in URLs. An access token is recognisable (`sub`, `sid`, `client_id`/`aud`, `scope`).
#[tokio::test]
async fn idp_login_refuses_a_user_access_token_with_custom_claims() {
    let s = setup().await;
    for extra in [
        ("organization_id", "org_attacker"),
        ("login_hint", "attacker@evil.example"),
        ("connection_id", "conn_attacker"),
    ] {
        let at = s
            .provider
            .access_token(&TestUser::new("usr_attacker").claim(extra.0, extra.1));
        let resp = s
            .app
            .clone()
            .oneshot(cross_site(&idp_url(&at)))
            .await
            .unwrap();
        let to = resp
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_owned());
        assert!(
            refused_by_login(&resp),
            "an access token ({} = {}) was accepted as an IdP-initiated login token: {} -> {:?}",
            extra.0,
            extra.1,
            resp.status(),
            to
        );
    }
}

/// Same, for a machine-to-machine access token (client credentials, `sub` = `client_id`) that
/// carries an `organization_id` claim.
#[tokio::test]
async fn idp_login_refuses_an_m2m_token_with_org_claims() {
    let s = setup().await;
    let token = s.provider.sign(&m2m(
        &s,
        "m2morg_1",
        json!({"organization_id": "org_attacker", "relay_state": "/x"}),
    ));
    let resp = s
        .app
        .clone()
        .oneshot(cross_site(&idp_url(&token)))
        .await
        .unwrap();
    assert!(
        refused_by_login(&resp),
        "an M2M token was accepted as an IdP-initiated login token: {}",
        resp.status()
    );
}

/// Guard: ID tokens, logout tokens, plain M2M tokens are not IdP-initiated login tokens.
#[tokio::test]
async fn idp_login_refuses_id_and_logout_tokens() {
    let s = setup().await;
    let id = s.provider.id_token(
        &TestUser::new("usr_1").claim("organization_id", "org_attacker"),
        Some("n"),
    );
    let logout = s.provider.logout_token("test-client", "usr_1", "sid-1");
    let plain_m2m = s
        .provider
        .m2m_access_token("m2morg_1", "org_attacker", &["admin"]);
    // An ID token without a nonce (as at a refresh) but with an at_hash.
    let id_no_nonce = s.provider.id_token(
        &TestUser::new("usr_1").claim("organization_id", "org_attacker"),
        None,
    );
    for (what, token) in [
        ("id token", id),
        ("id token without nonce", id_no_nonce),
        ("logout token", logout),
        ("m2m token", plain_m2m),
    ] {
        let resp = s
            .app
            .clone()
            .oneshot(cross_site(&idp_url(&token)))
            .await
            .unwrap();
        assert!(refused_by_login(&resp), "{what}: {}", resp.status());
    }
}

/// Guard: algorithm confusion and forged signatures on the IdP-initiated login token.
#[tokio::test]
async fn idp_login_refuses_forged_tokens() {
    let s = setup().await;
    let claims = idp_claims(&s, json!({}));
    let kid = s.provider.current_kid();
    let jwk = s.provider.jwks_document()["keys"][0].clone();
    let n_secret = jwk["n"].as_str().unwrap().to_owned();
    let mut tokens = vec![
        (
            "alg none".to_owned(),
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&claims)
            ),
        ),
        (
            "alg none with kid".to_owned(),
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
                b64(&claims)
            ),
        ),
        (
            "unpublished key, current kid".to_owned(),
            s.provider.sign_with_unpublished_key(
                &json!({"alg": "RS256", "typ": "JWT", "kid": kid}),
                &claims,
            ),
        ),
        (
            "unpublished key, no kid".to_owned(),
            s.provider
                .sign_with_unpublished_key(&json!({"alg": "RS256", "typ": "JWT"}), &claims),
        ),
        (
            "typ at+jwt".to_owned(),
            s.provider.sign_with_header(
                &json!({"alg": "RS256", "typ": "at+jwt", "kid": kid}),
                &claims,
            ),
        ),
        (
            "crit header".to_owned(),
            s.provider.sign_with_header(
                &json!({"alg": "RS256", "typ": "JWT", "kid": kid, "crit": ["exp"]}),
                &claims,
            ),
        ),
    ];
    // HS256 keyed with the public key material (classic RS/HS confusion), with and without kid.
    for secret in [n_secret.clone(), jwk.to_string()] {
        for header in [
            json!({"alg": "HS256", "typ": "JWT", "kid": kid}),
            json!({"alg": "HS256", "typ": "JWT"}),
        ] {
            let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            h.kid = header["kid"].as_str().map(str::to_owned);
            let t = jsonwebtoken::encode(
                &h,
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
            )
            .unwrap();
            tokens.push((format!("HS256 {header}"), t));
        }
    }
    // Signature stripped / swapped from another token.
    let good = s.provider.sign(&claims);
    let other = s
        .provider
        .sign(&idp_claims(&s, json!({"organization_id": "org_evil"})));
    let parts: Vec<&str> = good.split('.').collect();
    let other_parts: Vec<&str> = other.split('.').collect();
    tokens.push((
        "payload swapped".into(),
        format!("{}.{}.{}", parts[0], other_parts[1], parts[2]),
    ));
    tokens.push(("no signature".into(), format!("{}.{}.", parts[0], parts[1])));
    for (what, token) in tokens {
        let resp = s
            .app
            .clone()
            .oneshot(cross_site(&idp_url(&token)))
            .await
            .unwrap();
        assert!(refused_by_login(&resp), "{what}: {}", resp.status());
    }
}

/// Guard: claims cannot smuggle authorize parameters. Values with `&`, `=`, CRLF stay single
/// values (or are dropped); other claims of the token never reach the authorize URL.
#[tokio::test]
async fn idp_login_claims_cannot_inject_authorize_parameters() {
    let s = setup().await;
    let token = s.provider.sign(&idp_claims(
        &s,
        json!({
            "organization_id": "org_1&prompt=none&redirect_uri=https://evil.example/cb",
            "connection_id": "conn_1\r\nSet-Cookie: x=y",
            "login_hint": "a@b.example#&scope=openid%20admin",
            // (`scope` and `client_id` are left out: a token carrying them is an access token
            // and refused outright, see `idp_login_refuses_a_user_access_token_with_custom_claims`.)
            "prompt": "none", "redirect_uri": "https://evil.example/cb",
            "state": "attacker-state", "nonce_": "x", "response_type": "token",
            "code_challenge": "attacker", "domain_hint": "evil.example",
            "provider": "evil", "response_mode": "form_post", "request_uri": "https://evil/",
        }),
    ));
    let resp = s
        .app
        .clone()
        .oneshot(cross_site(&idp_url(&token)))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let to = location(&resp);
    assert!(!to.contains('\r') && !to.contains('\n'), "{to}");
    let q = query_of(&to);
    for (name, expected) in [
        ("redirect_uri", vec![REDIRECT.to_owned()]),
        ("client_id", vec!["test-client".to_owned()]),
        ("response_type", vec!["code".to_owned()]),
        ("code_challenge_method", vec!["S256".to_owned()]),
    ] {
        assert_eq!(values(&q, name), expected, "{name} in {q:?}");
    }
    for absent in [
        "prompt",
        "response_mode",
        "request_uri",
        "domain_hint",
        "domain",
        "provider",
    ] {
        assert!(values(&q, absent).is_empty(), "{absent} in {q:?}");
    }
    assert_eq!(values(&q, "state").len(), 1);
    assert_ne!(values(&q, "state")[0], "attacker-state");
    assert_eq!(values(&q, "code_challenge").len(), 1);
    assert_ne!(values(&q, "code_challenge")[0], "attacker");
    assert_eq!(values(&q, "scope").len(), 1);
    assert!(!values(&q, "scope")[0].contains("admin"));
    assert_eq!(
        values(&q, "organization_id"),
        vec!["org_1&prompt=none&redirect_uri=https://evil.example/cb".to_owned()]
    );
    assert!(values(&q, "connection_id").is_empty(), "CRLF value dropped");
}

/// Guard: odd claim types never crash the login route (no 500, no panic), and never start a
/// login with a non-string value.
#[tokio::test]
async fn idp_login_odd_claim_types_do_not_crash() {
    let s = setup().await;
    let n = now(&s);
    let patches = [
        json!({"organization_id": 1}),
        json!({"organization_id": ["org_1", "org_2"]}),
        json!({"organization_id": {"id": "org_1"}}),
        json!({"organization_id": true}),
        json!({"relay_state": ["/a"]}),
        json!({"relay_state": 5}),
        json!({"login_hint": {"$ne": ""}}),
        json!({"exp": i64::MAX}),
        json!({"exp": u64::MAX}),
        json!({"exp": 1e300}),
        json!({"exp": -1e300}),
        json!({"exp": "9999999999"}),
        json!({"exp": [n + 300]}),
        json!({"exp": null}),
        json!({"nbf": i64::MIN, "iat": i64::MIN}),
        json!({"nbf": 1e300}),
        json!({"iat": u64::MAX}),
        json!({"iat": "0"}),
        json!({"organization_id": "x".repeat(4000)}),
        json!({"relay_state": format!("/{}", "a".repeat(5000))}),
    ];
    for patch in patches {
        let token = s.provider.sign(&idp_claims(&s, patch.clone()));
        let resp = s
            .app
            .clone()
            .oneshot(cross_site(&idp_url(&token)))
            .await
            .unwrap();
        assert!(
            resp.status() == StatusCode::BAD_REQUEST || resp.status() == StatusCode::FOUND,
            "{patch}: {}",
            resp.status()
        );
        if resp.status() == StatusCode::FOUND {
            let to = location(&resp);
            let q = query_of(&to);
            for v in values(&q, "organization_id") {
                assert!(
                    v.starts_with("org_") || v.starts_with("xxx"),
                    "{patch}: {v}"
                );
            }
        }
    }
    // A claim set that is not an object.
    let kid = s.provider.current_kid();
    for body in [json!([1, 2]), json!("str"), json!(null), json!(7)] {
        let token = s
            .provider
            .sign_with_header(&json!({"alg": "RS256", "typ": "JWT", "kid": kid}), &body);
        let resp = s
            .app
            .clone()
            .oneshot(cross_site(&idp_url(&token)))
            .await
            .unwrap();
        assert!(refused_by_login(&resp), "{body}: {}", resp.status());
    }
}

/// Guard: `relay_state` comes from the IdP (SAML RelayState, chosen by whoever controls the
/// IdP): no encoding of it makes the callback redirect off-site.
#[tokio::test]
async fn idp_relay_state_is_never_an_open_redirect() {
    let s = setup().await;
    let evil = [
        "https://evil.example",
        "http:evil.example",
        "https:/evil.example",
        "//evil.example",
        "///evil.example",
        "\\\\evil.example",
        "/\\evil.example",
        "\\/evil.example",
        "/\\/evil.example",
        "/%09/evil.example",
        "/\t/evil.example",
        "/%0a/evil.example",
        "/%0d%0aLocation:%20https://evil.example",
        "/%2f/evil.example",
        "/%2F%2Fevil.example",
        "/%252f%252fevil.example",
        "/%5c%5cevil.example",
        "/%255cevil.example",
        "/%E2%80%A8/evil.example",
        "/%C2%A0/evil.example",
        " /evil.example",
        "/ /evil.example",
        "javascript:alert(1)",
        "data:text/html,x",
        "evil.example",
        "@evil.example",
        "/%00/evil.example",
        "/\u{0000}/evil.example",
        "/%c0%af/evil.example",
    ];
    for relay in evil {
        let token = s
            .provider
            .sign(&idp_claims(&s, json!({"relay_state": relay})));
        let mut jar = Jar::default();
        let resp = idp_flow(&s, &mut jar, &token).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "{relay:?}");
        let to = location(&resp);
        // Resolved against the app's origin, the target must stay there.
        let base = url::Url::parse("http://127.0.0.1:3000/").unwrap();
        let resolved = base.join(&to).unwrap();
        assert_eq!(
            resolved.origin(),
            base.origin(),
            "{relay:?} -> Location {to:?}"
        );
        assert!(
            to.starts_with('/') && !to.starts_with("//") && !to.contains('\\'),
            "{relay:?} -> {to:?}"
        );
    }
}

/// Guard: a non-ASCII `relay_state` (unicode lookalikes of `/` and `\\`) that the sanitiser
/// accepts still redirects, and, read as UTF-8 the way browsers read `Location`, stays on the
/// app's origin.
#[tokio::test]
async fn idp_relay_state_unicode_lookalikes_stay_same_origin() {
    let s = setup().await;
    for relay in [
        "/caf\u{e9}",
        "/\u{ff0f}evil.example",
        "/\u{2215}evil.example",
        "/\u{2044}evil.example",
        "/\u{ff3c}evil.example",
        "/\u{fe68}evil.example",
        "/%EF%BC%8F%EF%BC%8Fevil.example",
    ] {
        let token = s
            .provider
            .sign(&idp_claims(&s, json!({"relay_state": relay})));
        let mut jar = Jar::default();
        let resp = idp_flow(&s, &mut jar, &token).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "{relay:?}");
        let raw = resp
            .headers()
            .get(header::LOCATION)
            .unwrap_or_else(|| panic!("{relay:?}: 302 without Location"))
            .as_bytes()
            .to_vec();
        let to = String::from_utf8_lossy(&raw).into_owned();
        let base = url::Url::parse("http://127.0.0.1:3000/").unwrap();
        let resolved = base.join(&to).unwrap();
        assert_eq!(resolved.origin(), base.origin(), "{relay:?} -> {to:?}");
    }
}

/// Token confusion: an IdP-initiated login token that names an audience names some client.
/// One that names ANOTHER client of the environment (`aud` = another app's client id) was
/// minted for that app, and must not start a login here. (Scalekit's example token has no
/// `aud`, so refusing a foreign one costs nothing.)
#[tokio::test]
async fn idp_login_refuses_a_token_for_another_client() {
    let s = setup().await;
    let mut accepted = Vec::new();
    for aud in [json!("skc_other_app"), json!(["skc_other_app"])] {
        let token = s.provider.sign(&idp_claims(&s, json!({"aud": aud})));
        let resp = s
            .app
            .clone()
            .oneshot(cross_site(&idp_url(&token)))
            .await
            .unwrap();
        if !refused_by_login(&resp) {
            accepted.push(format!("aud {aud}: {}", resp.status()));
        }
    }
    // Control: naming this client is fine.
    let token = s
        .provider
        .sign(&idp_claims(&s, json!({"aud": "test-client"})));
    let resp = s
        .app
        .clone()
        .oneshot(cross_site(&idp_url(&token)))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert!(
        accepted.is_empty(),
        "IdP-initiated login tokens for another client accepted: {accepted:?}"
    );
}

/// Login CSRF / account swap: a signed-in user who follows a cross-site IdP-initiated login
/// link (an attacker's token, minted for the attacker's own organization whose IdP the attacker
/// controls and which approves any browser) is silently signed in as someone else. The
/// same-origin rule for plain `organization_id` exists to stop exactly this; the signed token
/// only proves Scalekit minted it for *some* IdP login, not for this browser. Secure behaviour:
/// a cross-site IdP-initiated login never silently replaces an existing session (it should
/// keep the current user, or ask).
#[tokio::test]
async fn idp_login_does_not_silently_replace_an_existing_session() {
    let s = setup().await;
    let mut jar = Jar::default();
    let resp = login(&s, &mut jar, "/auth/login").await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let me = send(&s.app, &mut jar, get_json("/me")).await;
    assert!(body_string(me).await.contains("usr_42"));

    // The attacker's token (their organization, their IdP, which auto-approves as the
    // attacker).
    let token = s.provider.idp_initiated_login_token(
        &IdpInitiatedLogin::new()
            .organization_id("org_attacker")
            .relay_state("/me"),
    );
    s.provider.set_user(Some(
        TestUser::new("usr_attacker").organization("org_attacker"),
    ));
    let resp = send(&s.app, &mut jar, cross_site(&idp_url(&token))).await;
    if resp.status() == StatusCode::FOUND && location(&resp).contains("/oauth/authorize") {
        let callback = authorize(&location(&resp)).await;
        send(&s.app, &mut jar, get_html(&callback)).await;
    }
    let me = send(&s.app, &mut jar, get_json("/me")).await;
    let body = body_string(me).await;
    assert!(
        body.contains("usr_42") && !body.contains("usr_attacker"),
        "a cross-site IdP-initiated link silently swapped the signed-in user: {body}"
    );
}

/// Guard: an IdP-initiated login token is not a bearer access token (whichever `iss` it has).
#[tokio::test]
async fn idp_token_is_not_a_bearer_token() {
    let s = setup_with(|c| c.accept_m2m_clients(M2mClients::Any)).await;
    for patch in [json!({}), json!({"sub": "usr_1"})] {
        for iss in [s.provider.issuer().to_owned(), "https://b2b-app.com".into()] {
            let mut c = idp_claims(&s, patch.clone());
            c["iss"] = json!(iss);
            let t = s.provider.sign(&c);
            assert_eq!(
                bearer_status(&s.auth, "/whoami", &t).await,
                StatusCode::UNAUTHORIZED,
                "{patch} {iss}"
            );
        }
    }
}

// =============================================================================================
// 2. M2M bearer tokens
// =============================================================================================

/// Finding candidate: `nbf` (and `iat`) that are valid NumericDates but not integers
/// (RFC 7519 section 2 allows fractions; the IdP-login path reads them) are silently IGNORED
/// on the access-token path: a token not valid for another hour is accepted now. A string
/// `nbf` is ignored the same way instead of being refused as malformed.
#[tokio::test]
async fn access_token_fractional_or_string_nbf_is_not_ignored() {
    let s = setup_with(|c| c.accept_m2m_clients(M2mClients::Any)).await;
    let n = now(&s);
    let mut accepted = Vec::new();
    for (what, patch) in [
        ("nbf float +1h", json!({"nbf": (n + 3600) as f64 + 0.5})),
        ("nbf string +1h", json!({"nbf": (n + 3600).to_string()})),
        ("iat float +1h", json!({"iat": (n + 3600) as f64 + 0.5})),
    ] {
        // A user token for this client and an M2M token.
        let user = s.provider.sign(&{
            let mut c = json!({"iss": s.provider.issuer(), "sub": "usr_1",
                               "aud": ["test-client"], "exp": n + 7200});
            for (k, v) in patch.as_object().unwrap() {
                c[k] = v.clone();
            }
            c
        });
        let machine = s.provider.sign(&m2m(&s, "m2morg_1", patch.clone()));
        for (kind, t) in [("user", user), ("m2m", machine)] {
            let st = bearer_status(&s.auth, "/whoami", &t).await;
            if st != StatusCode::UNAUTHORIZED {
                accepted.push(format!("{kind} token with {what}: {st}"));
            }
        }
    }
    assert!(
        accepted.is_empty(),
        "not-yet-valid tokens accepted: {accepted:#?}"
    );
}

/// Guard: an M2M token is never a cookie session, even when every M2M client is accepted.
#[tokio::test]
async fn m2m_token_is_never_a_cookie_session_with_opt_in() {
    let s = setup_with(|c| c.accept_m2m_clients(M2mClients::Any)).await;
    let token = s.provider.m2m_access_token("m2morg_1", "org_1", &["admin"]);
    let id = s.provider.id_token(&TestUser::new("m2morg_1"), None);
    let cookie = s
        .provider
        .session_cookie_with_tokens(&s.auth, &token, None, &id);
    let app = api(&s.auth);
    let req = request("/whoami", &cookie);
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // And the same token as bearer is fine (control).
    assert_eq!(
        bearer_status(&s.auth, "/whoami", &token).await,
        StatusCode::OK
    );
    // Also when the M2M token names this client as audience.
    let named = s
        .provider
        .sign(&m2m(&s, "m2morg_1", json!({"aud": ["test-client"]})));
    let cookie = s
        .provider
        .session_cookie_with_tokens(&s.auth, &named, None, &id);
    let req = request("/whoami", &cookie);
    assert_eq!(
        app.oneshot(req).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

/// Guard: with M2M opt-in, a user token that names no audience is still no bearer token, and
/// neither is one issued to another app.
#[tokio::test]
async fn user_tokens_without_aud_are_not_bearer_even_with_m2m_any() {
    let s = setup_with(|c| c.accept_m2m_clients(M2mClients::Any)).await;
    let n = now(&s);
    let base = json!({"iss": s.provider.issuer(), "sub": "usr_1", "exp": n + 300,
                      "scope": "admin", "sid": "ses_1"});
    for patch in [
        json!({}),
        json!({"client_id": "skc_other_app"}),
        json!({"client_id": "m2morg_1"}),
        json!({"client_id": ""}),
        json!({"client_id": null}),
        json!({"client_id": ["test-client"]}),
        json!({"client_id": 1}),
        json!({"aud": []}),
        json!({"aud": [1]}),
        json!({"aud": ""}),
        json!({"aud": "TEST-CLIENT"}),
        json!({"aud": ["test-client "]}),
        json!({"azp": "test-client"}),
    ] {
        let mut c = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        let t = s.provider.sign(&c);
        assert_eq!(
            bearer_status(&s.auth, "/whoami", &t).await,
            StatusCode::UNAUTHORIZED,
            "{patch}"
        );
    }
}

/// Guard: `sub`/`client_id` type and spelling games do not make a token an accepted machine.
#[tokio::test]
async fn m2m_sub_and_client_id_games() {
    let s = setup_with(|c| c.accept_m2m_clients(M2mClients::only(["m2morg_A"]))).await;
    // Control.
    let ok = s.provider.sign(&m2m(&s, "m2morg_A", json!({})));
    assert_eq!(bearer_status(&s.auth, "/whoami", &ok).await, StatusCode::OK);
    for patch in [
        json!({"client_id": "M2MORG_A", "sub": "M2MORG_A"}),
        json!({"client_id": "m2morg_a", "sub": "m2morg_a"}),
        json!({"client_id": "m2morg_A ", "sub": "m2morg_A "}),
        json!({"client_id": " m2morg_A", "sub": " m2morg_A"}),
        json!({"client_id": "m2morg_A\u{0}", "sub": "m2morg_A\u{0}"}),
        json!({"client_id": "m2morg_\u{0391}", "sub": "m2morg_\u{0391}"}),
        json!({"client_id": ["m2morg_A"], "sub": "m2morg_A"}),
        json!({"client_id": "m2morg_A", "sub": ["m2morg_A"]}),
        json!({"client_id": ["m2morg_A"], "sub": ["m2morg_A"]}),
        json!({"client_id": {"id": "m2morg_A"}, "sub": "m2morg_A"}),
        json!({"client_id": 1, "sub": 1}),
        json!({"client_id": "", "sub": ""}),
        json!({"client_id": null, "sub": "m2morg_A"}),
        json!({"client_id": "m2morg_A", "sub": null}),
        json!({"client_id": "m2morg_B", "sub": "m2morg_B"}),
        // A user of client A: sub != client_id.
        json!({"client_id": "m2morg_A", "sub": "usr_1"}),
        // Wrong issuer, expired, ID/logout markers.
        json!({"iss": "https://evil.example"}),
        json!({"iss": null}),
        json!({"exp": now(&s) - 3600}),
        json!({"exp": null}),
        json!({"nbf": now(&s) + 3600}),
        json!({"iat": now(&s) + 3600}),
        json!({"nonce": "n"}),
        json!({"at_hash": "x"}),
        json!({"c_hash": "x"}),
        json!({"typ": "ID"}),
        json!({"events": {}}),
        json!({"aud": "https://other.example"}),
    ] {
        let t = s.provider.sign(&m2m(&s, "m2morg_A", patch.clone()));
        assert_eq!(
            bearer_status(&s.auth, "/whoami", &t).await,
            StatusCode::UNAUTHORIZED,
            "{patch}"
        );
    }
    // Forged variants of the accepted client's token.
    let claims = m2m(&s, "m2morg_A", json!({}));
    let kid = s.provider.current_kid();
    let forged = [
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&claims)
        ),
        s.provider
            .sign_with_unpublished_key(&json!({"alg": "RS256", "typ": "JWT", "kid": kid}), &claims),
        jsonwebtoken::encode(
            &{
                let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
                h.kid = Some(kid.clone());
                h
            },
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(
                s.provider.jwks_document()["keys"][0]["n"]
                    .as_str()
                    .unwrap()
                    .as_bytes(),
            ),
        )
        .unwrap(),
        s.provider.sign_with_header(
            &json!({"alg": "RS256", "typ": "logout+jwt", "kid": kid}),
            &claims,
        ),
    ];
    for t in forged {
        assert_eq!(
            bearer_status(&s.auth, "/whoami", &t).await,
            StatusCode::UNAUTHORIZED
        );
    }
}

/// Guard: a signed-in user's ID token and a logout token are never bearer tokens, with M2M
/// opt-in on.
#[tokio::test]
async fn id_and_logout_tokens_are_not_bearer_tokens() {
    let s = setup_with(|c| c.accept_m2m_clients(M2mClients::Any)).await;
    let id = s.provider.id_token(&user(), Some("n"));
    let logout = s.provider.logout_token("test-client", "usr_42", "sid-test");
    for t in [id, logout] {
        assert_eq!(
            bearer_status(&s.auth, "/whoami", &t).await,
            StatusCode::UNAUTHORIZED
        );
    }
}

/// Guard: scope checks with odd `scopes` / `scope` values only pass on an exact scope.
#[tokio::test]
async fn scope_guard_odd_values() {
    let s = setup_with(|c| c.accept_m2m_clients(M2mClients::Any)).await;
    let ok = s
        .provider
        .sign(&m2m(&s, "m2morg_1", json!({"scopes": ["admin"]})));
    assert_eq!(bearer_status(&s.auth, "/admin", &ok).await, StatusCode::OK);
    let ok = s.provider.sign(&m2m(
        &s,
        "m2morg_1",
        json!({"scopes": null, "scope": "read admin"}),
    ));
    assert_eq!(bearer_status(&s.auth, "/admin", &ok).await, StatusCode::OK);
    for patch in [
        json!({"scopes": "admin"}),
        json!({"scopes": [["admin"]]}),
        json!({"scopes": [{"admin": true}]}),
        json!({"scopes": {"0": "admin"}}),
        json!({"scopes": ["Admin"]}),
        json!({"scopes": ["admin "]}),
        json!({"scopes": [" admin"]}),
        json!({"scopes": ["admin\u{0}"]}),
        json!({"scopes": ["read admin"]}),
        json!({"scopes": ["read,admin"]}),
        json!({"scopes": ["*"]}),
        json!({"scopes": [""]}),
        json!({"scopes": null, "scope": ["admin"]}),
        json!({"scopes": null, "scope": "read\tadmin"}),
        json!({"scopes": null, "scope": "read\u{a0}admin"}),
        json!({"scopes": null, "scope": "read,admin"}),
        json!({"scopes": null, "scope": "read+admin"}),
        json!({"scopes": null, "scope": "adminx"}),
        json!({"scopes": null, "scope": "admin:read"}),
        json!({"scopes": null, "scope": {"admin": 1}}),
        json!({"scopes": null, "scope": null, "scp": ["admin"]}),
        json!({"scopes": null, "roles": ["admin"], "permissions": ["admin"]}),
    ] {
        let t = s.provider.sign(&m2m(&s, "m2morg_1", patch.clone()));
        assert_eq!(
            bearer_status(&s.auth, "/admin", &t).await,
            StatusCode::FORBIDDEN,
            "{patch}"
        );
    }
}

// =============================================================================================
// 3. Management API
// =============================================================================================

/// A fake Management API that records every request target and answers 200 `{}`.
async fn recording_api() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let rec = seen.clone();
    let router = Router::new().fallback(move |req: axum::extract::Request| {
        let rec = rec.clone();
        async move {
            let target = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default();
            let is_token = target.starts_with("/oauth/token");
            if !is_token {
                rec.lock()
                    .unwrap()
                    .push(format!("{} {}", req.method(), target));
            }
            if is_token {
                Json(json!({"access_token": "t", "expires_in": 3600}))
            } else {
                Json(
                    json!({"user": {"id": "usr_1"}, "organization": {"id": "org_1"},
                            "users": [], "organizations": [], "sessions": [], "roles": []}),
                )
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, seen)
}

const TRAVERSALS: &[&str] = &[
    "..",
    ".",
    "...",
    "%2e%2e",
    "%2E%2E",
    ".%2e",
    "%252e%252e",
    "usr_1/..",
    "usr_1/../../users",
    "usr_1%2f..",
    "usr_1%2F..%2F..",
    "usr_1\\..\\..",
    "usr_1%5c..",
    "usr_1?page_size=1000",
    "usr_1#frag",
    "usr_1;x",
    "usr_1&x=1",
    "usr_1 ",
    " usr_1",
    "usr_1\t",
    "usr_1\r\nX-Injected: 1",
    "usr_1\u{0}",
    "usr_\u{ff11}",
    "\u{ff0e}\u{ff0e}",
    "\u{2024}\u{2024}",
    "usr_1\u{2215}..",
    "usr_1\u{ff0f}..",
    "\u{0130}",
    "usr_1\u{202e}",
    "usr_1.",
    "usr_1+x",
    "usr_1@x",
    "usr_1:x",
    "",
];

/// Guard: no id makes the client send a request whose path differs from the intended one.
#[tokio::test]
async fn management_ids_never_change_the_path() {
    let (url, seen) = recording_api().await;
    let c = ManagementClient::new(&url, ClientCredentials::scalekit(&url, "skc_app", "s"));
    let req = tower_oidc_auth::management::MembershipRequest::with_roles(["admin"]);
    for &bad in TRAVERSALS {
        let mut results: Vec<(&str, bool)> = Vec::new();
        results.push(("get_user", c.get_user(bad).await.is_err()));
        results.push(("get_organization", c.get_organization(bad).await.is_err()));
        results.push(("get_session", c.get_session(bad).await.is_err()));
        results.push(("revoke_session", c.revoke_session(bad).await.is_err()));
        results.push((
            "revoke_user_sessions",
            c.revoke_user_sessions(bad).await.is_err(),
        ));
        results.push((
            "list_organization_roles",
            c.list_organization_roles(bad).await.is_err(),
        ));
        results.push((
            "create_membership org",
            c.create_membership(bad, "usr_1", &req, false)
                .await
                .is_err(),
        ));
        results.push((
            "create_membership user",
            c.create_membership("org_1", bad, &req, false)
                .await
                .is_err(),
        ));
        results.push((
            "update_membership user",
            c.update_membership("org_1", bad, &req).await.is_err(),
        ));
        results.push((
            "delete_membership org",
            c.delete_membership(bad, "usr_1").await.is_err(),
        ));
        results.push(("user_roles user", c.user_roles(bad, "org_1").await.is_err()));
        results.push(("user_roles org", c.user_roles("usr_1", bad).await.is_err()));
        let l: Result<Vec<_>, _> = c.list_organization_users(bad, 10).try_collect().await;
        results.push(("list_organization_users", l.is_err()));
        let l: Result<Vec<_>, _> = c.list_user_sessions(bad, 10).try_collect().await;
        results.push(("list_user_sessions", l.is_err()));
        for (name, refused) in results {
            assert!(refused, "{name}({bad:?}) was sent");
        }
        let sent = seen.lock().unwrap().clone();
        // `user_roles("usr_1", bad)` is refused before the user is fetched.
        assert!(
            sent.is_empty(),
            "{bad:?}: requests reached the API: {sent:?}"
        );
    }
    // Control: a good id reaches exactly its path.
    c.get_user("usr_1").await.unwrap();
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        ["GET /api/v1/users/usr_1".to_owned()]
    );
}

/// Guard: page sizes outside the spec's bounds never reach the API.
#[tokio::test]
async fn management_page_size_bounds() {
    let (url, seen) = recording_api().await;
    let c = ManagementClient::new(&url, ClientCredentials::scalekit(&url, "skc_app", "s"));
    for size in [0u32, 1, 9, 101, 1000, u32::MAX] {
        let l: Result<Vec<_>, _> = c.list_users(size).try_collect().await;
        assert!(
            matches!(l, Err(ManagementError::InvalidPageSize { .. })),
            "list_users {size}"
        );
        let l: Result<Vec<_>, _> = c.list_organizations(size).try_collect().await;
        assert!(
            matches!(l, Err(ManagementError::InvalidPageSize { .. })),
            "list_organizations {size}"
        );
    }
    for size in [0u32, 101, u32::MAX] {
        let l: Result<Vec<_>, _> = c.list_organization_users("org_1", size).try_collect().await;
        assert!(
            matches!(l, Err(ManagementError::InvalidPageSize { .. })),
            "list_organization_users {size}"
        );
    }
    let l: Result<Vec<_>, _> = c.list_user_sessions("usr_1", 0).try_collect().await;
    assert!(matches!(l, Err(ManagementError::InvalidPageSize { .. })));
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
}

/// Guard: `current_user` refuses every `sub` that is not exactly a Scalekit user id, from a
/// cookie session or an M2M bearer token, without a request.
#[tokio::test]
async fn current_user_refuses_non_user_subs() {
    let (url, seen) = recording_api().await;
    let s = setup_with(|cfg| cfg.accept_m2m_clients(M2mClients::Any)).await;
    // The fake API's users are the provider's.
    let c = ManagementClient::builder(&url, ClientCredentials::scalekit(&url, "skc_app", "s"))
        .same_environment_issuer(s.provider.issuer())
        .build();
    let cc = c.clone();
    let app = Router::new()
        .route(
            "/me",
            get(move |claims: Claims| {
                let c = cc.clone();
                async move {
                    match c.current_user(&claims).await {
                        Ok(u) => format!("ok {}", u.id),
                        Err(ManagementError::NotAScalekitUser { .. }) => "refused".into(),
                        Err(e) => format!("other {e:?}"),
                    }
                }
            }),
        )
        .layer(s.auth.clone());
    let mut subs: Vec<String> = [
        "conn_70087756662964366;dcc62570-6a5a-4819-b11b-d33d110c7716",
        "m2morg_1",
        "usr_",
        "usr_/..",
        "usr_1/../../organizations",
        "usr_%2e%2e",
        "usr_1?x=1",
        "usr_1#x",
        "USR_1",
        "usr_1\u{ff0f}..",
        "xusr_1",
        " usr_1",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    subs.push("usr_..".into());
    for sub in &subs {
        let cookie = s
            .provider
            .session_cookie(&s.auth, &TestUser::new(sub.clone()));
        let req = Request::get("/me")
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{sub}");
        assert_eq!(body_string(resp).await, "refused", "{sub}");
    }
    // An M2M bearer token.
    let t = s.provider.m2m_access_token("m2morg_1", "org_1", &["admin"]);
    let resp = app.clone().oneshot(bearer("/me", &t)).await.unwrap();
    assert_eq!(body_string(resp).await, "refused");
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
    // Control.
    let cookie = s.provider.session_cookie(&s.auth, &TestUser::new("usr_7"));
    let req = Request::get("/me")
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(body_string(resp).await, "ok usr_1");
}
