//! Access tokens with an API audience, and machine-to-machine (M2M) tokens (issue 13, part 4).
//!
//! Sources, all in `scalekit-inc/developer-docs` at 96ada4a7 unless named otherwise:
//! - `src/content/docs/authenticate/m2m/api-auth-quickstart.mdx`, step 6 "Verify API client's
//!   scopes", "Example decoded access token": an M2M token has no `aud`, `client_id` = `sub` =
//!   `m2morg_...`, `iss` = the environment URL, an `oid`, a `jti` `tkn_...`, and its scopes in a
//!   `scopes` array; step 2 registers a client with `"audience": ["deployment-api.acmecorp.com"]`
//!   (its sample response names the client `m2morg_68315758685323697`).
//! - `src/content/docs/guides/m2m/overview.mdx`, "How the authentication flow works", step 4:
//!   the token says "Which service it's intended for (`aud`)" when the client has one.
//! - `src/content/docs/cookbooks/m2m-jwks-and-oauth-scopes.mdx`, "Validate scopes on your API":
//!   authorize on the JWT's `scopes` array (the token response's `scope` string is for OAuth
//!   compatibility); 401 for a bad token, 403 for a valid token without the scope.
//! - `src/content/docs/authenticate/fsa/session-token-claims.mdx`, "How it works", "Default
//!   access token claims": a user's access token may name an API audience,
//!   `"aud": ["https://api.your-app.com"]`, with `sub` `usr_...`, `sid`, `oid`, `roles`,
//!   `permissions`.
//! - `scalekit-inc/scalekit-sdk-node` `src/scalekit.ts` `validateToken` / `verifyScopes`: the
//!   audience is checked only when one is configured; required scopes are read from the
//!   `scopes` array.

use axum::body::Body;
use axum::routing::get;
use axum::{Json, Router};
use http::{header, Request, Response, StatusCode};
use serde_json::{json, Value};
use tower_oidc_auth::testing::TestProvider;
use tower_oidc_auth::{AuthLayer, Claims, Clock, M2mClients};

use crate::helpers::{
    bearer, body_string, login, request, send, serve, set_cookies, setup, setup_with, user, Jar,
    Setup, REDIRECT,
};

/// The client of the quickstart's "Example decoded access token".
const M2M_CLIENT: &str = "m2morg_69038819013296423";
/// The client of the quickstart's "Sample response" to client registration (step 2).
const OTHER_M2M_CLIENT: &str = "m2morg_68315758685323697";
/// The API audience the quickstart registers a client with (step 2, `audience`).
const M2M_AUDIENCE: &str = "deployment-api.acmecorp.com";
/// The API audience of the user access token in `fsa/session-token-claims.mdx`.
const USER_API_AUDIENCE: &str = "https://api.your-app.com";

/// An M2M access token's claims as Scalekit issues them: `m2m/api-auth-quickstart.mdx`, step 6,
/// "Example decoded access token", with the times moved to now (same 86,400 s lifetime) and
/// `iss` the test provider's environment URL.
fn m2m_claims(s: &Setup, client_id: &str, scopes: &[&str]) -> Value {
    let now = s.clock.now();
    json!({
        "client_id": client_id,
        "exp": now + 86_400,
        "iat": now,
        "iss": s.provider.issuer(),
        "jti": "tkn_69041163914445100",
        "nbf": now,
        "oid": "org_59615193906282635",
        "scopes": scopes,
        "sub": client_id
    })
}

/// `m2m_claims` with some claims replaced (`null` removes one).
fn patched(mut claims: Value, patch: Value) -> Value {
    for (k, v) in patch.as_object().expect("object") {
        if v.is_null() {
            claims.as_object_mut().expect("object").remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

const DEPLOY_SCOPES: &[&str] = &["deploy:applications", "read:deployments"];

/// An API: `/deploy` needs the scope `deploy:applications`, `/whoami` any verified caller, `/`
/// is public.
fn api(auth: &AuthLayer) -> Router {
    Router::new()
        .route("/deploy", get(|| async { "deployed" }))
        .route_layer(auth.require_scope("deploy:applications"))
        .route(
            "/whoami",
            get(|c: Claims| async move {
                Json(json!({"sub": c.sub, "machine": c.is_machine(), "oid": c.oid}))
            }),
        )
        .route(
            "/",
            get(|c: Option<Claims>| async move {
                match c {
                    Some(c) => format!("hello {}", c.sub),
                    None => "anonymous".to_owned(),
                }
            }),
        )
        .layer(auth.clone())
}

async fn status_of(s: &Setup, token: &str) -> StatusCode {
    serve(&api(&s.auth), bearer("/whoami", token))
        .await
        .status()
}

fn is_invalid_token(resp: &Response<Body>) -> bool {
    resp.headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("invalid_token"))
}

#[tokio::test]
async fn m2m_tokens_are_refused_by_default() {
    let s = setup().await;
    let token = s.provider.sign(&m2m_claims(&s, M2M_CLIENT, DEPLOY_SCOPES));
    let resp = serve(&api(&s.auth), bearer("/whoami", &token)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(is_invalid_token(&resp), "{:?}", resp.headers());
}

#[tokio::test]
async fn any_m2m_client_of_the_environment_is_accepted_when_asked() {
    let s = setup_with(|c| c.accept_m2m_clients(M2mClients::Any)).await;
    let token = s.provider.sign(&m2m_claims(&s, M2M_CLIENT, DEPLOY_SCOPES));
    let resp = serve(&api(&s.auth), bearer("/whoami", &token)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = serde_json::from_str(&body_string(resp).await).unwrap();
    assert_eq!(
        body,
        json!({"sub": M2M_CLIENT, "machine": true, "oid": "org_59615193906282635"})
    );
    // Another client of the same environment too.
    let token = s
        .provider
        .sign(&m2m_claims(&s, OTHER_M2M_CLIENT, DEPLOY_SCOPES));
    assert_eq!(status_of(&s, &token).await, StatusCode::OK);
}

#[tokio::test]
async fn a_list_of_m2m_clients_refuses_the_others() {
    let s = setup_with(|c| c.accept_m2m_clients(M2mClients::only([OTHER_M2M_CLIENT]))).await;
    let listed = s
        .provider
        .sign(&m2m_claims(&s, OTHER_M2M_CLIENT, DEPLOY_SCOPES));
    assert_eq!(status_of(&s, &listed).await, StatusCode::OK);
    let unlisted = s.provider.sign(&m2m_claims(&s, M2M_CLIENT, DEPLOY_SCOPES));
    assert_eq!(status_of(&s, &unlisted).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_empty_list_of_m2m_clients_is_a_configuration_error() {
    let provider = TestProvider::start().await;
    let err = provider
        .layer_builder(REDIRECT)
        .accept_m2m_clients(M2mClients::only(Vec::<String>::new()))
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("accept_m2m_clients"), "{err}");
    let err = provider
        .layer_builder(REDIRECT)
        .accept_m2m_clients(M2mClients::only([" "]))
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("accept_m2m_clients"), "{err}");
}

/// Accepting M2M clients waives the audience for tokens that name none; every other check stays.
#[tokio::test]
async fn m2m_tokens_still_pass_every_other_check() {
    let s = setup_with(|c| {
        c.accept_m2m_clients(M2mClients::Any)
            .leeway(std::time::Duration::from_secs(0))
    })
    .await;
    let now = s.clock.now();
    let good = m2m_claims(&s, M2M_CLIENT, DEPLOY_SCOPES);
    assert_eq!(status_of(&s, &s.provider.sign(&good)).await, StatusCode::OK);

    // Another environment's token.
    let foreign = patched(
        good.clone(),
        json!({"iss": "https://other-env.scalekit.dev"}),
    );
    // Expired, and not yet valid.
    let expired = patched(good.clone(), json!({"iat": now - 100, "exp": now - 1}));
    let early = patched(good.clone(), json!({"nbf": now + 600}));
    // An ID-token marker: never an access token.
    let with_nonce = patched(good.clone(), json!({"nonce": "n"}));
    // An audience that is not this API's: audience rules apply to M2M tokens that carry one.
    let other_api = patched(good.clone(), json!({"aud": [M2M_AUDIENCE]}));
    for (what, claims) in [
        ("other issuer", foreign),
        ("expired", expired),
        ("not yet valid", early),
        ("nonce", with_nonce),
        ("foreign audience", other_api),
    ] {
        let resp = serve(&api(&s.auth), bearer("/whoami", &s.provider.sign(&claims))).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert!(is_invalid_token(&resp), "{what}");
    }

    // Signed by another key (another environment's key under the same kid).
    let stranger = TestProvider::start().await;
    let forged = stranger.sign(&good);
    assert_eq!(status_of(&s, &forged).await, StatusCode::UNAUTHORIZED);
    // Not signed at all.
    let unsigned = s
        .provider
        .sign_with_header(&json!({"alg": "none", "typ": "JWT"}), &good);
    assert_eq!(status_of(&s, &unsigned).await, StatusCode::UNAUTHORIZED);
}

/// An M2M client registered with an audience (quickstart step 2) gets tokens naming it
/// (`guides/m2m/overview.mdx`): accepted when the API is configured with that audience, with or
/// without the M2M opt-in.
#[tokio::test]
async fn m2m_tokens_with_a_configured_audience_are_accepted() {
    for opt_in in [false, true] {
        let s = setup_with(|c| {
            let c = c.audience(M2M_AUDIENCE);
            if opt_in {
                c.accept_m2m_clients(M2mClients::only([OTHER_M2M_CLIENT]))
            } else {
                c
            }
        })
        .await;
        let claims = patched(
            m2m_claims(&s, M2M_CLIENT, DEPLOY_SCOPES),
            json!({"aud": [M2M_AUDIENCE]}),
        );
        let resp = serve(&api(&s.auth), bearer("/whoami", &s.provider.sign(&claims))).await;
        assert_eq!(resp.status(), StatusCode::OK, "opt-in {opt_in}");
        let body: Value = serde_json::from_str(&body_string(resp).await).unwrap();
        assert_eq!(body["machine"], true);
    }
}

/// With the opt-in on, a token that names no audience is still refused on the bearer path
/// unless it is an M2M token (`sub` = `client_id`) of an accepted client.
#[tokio::test]
async fn user_shaped_audience_less_tokens_are_still_refused() {
    for policy in [M2mClients::Any, M2mClients::only([M2M_CLIENT])] {
        let s = setup_with(|c| c.accept_m2m_clients(policy.clone())).await;
        let m2m = m2m_claims(&s, M2M_CLIENT, DEPLOY_SCOPES);
        // A user's token without `aud` or `client_id` (trusted only in a cookie session).
        let bare_user = patched(
            m2m.clone(),
            json!({"sub": "usr_96194455173923084", "client_id": null,
                   "sid": "ses_5f3a9c1d7e2b4a68"}),
        );
        // A user's token issued to the M2M client: `sub` is not the client.
        let users_via_client = patched(
            m2m.clone(),
            json!({"sub": "usr_96194455173923084", "sid": "ses_5f3a9c1d7e2b4a68"}),
        );
        // No `sub` at all.
        let no_sub = patched(m2m.clone(), json!({"sub": null}));
        for (what, claims) in [
            ("user without aud or client_id", bare_user),
            ("user token of the M2M client", users_via_client),
            ("no sub", no_sub),
        ] {
            let resp = serve(&api(&s.auth), bearer("/whoami", &s.provider.sign(&claims))).await;
            assert_eq!(
                resp.status(),
                StatusCode::UNAUTHORIZED,
                "{policy:?}: {what}"
            );
        }
    }
}

/// `require_scope` reads the `scopes` array of M2M tokens (cookbook "Validate scopes on your
/// API"): 200 with the scope, 403 without.
#[tokio::test]
async fn scope_guard_reads_the_scopes_array() {
    let s = setup_with(|c| c.accept_m2m_clients(M2mClients::Any)).await;
    let app = api(&s.auth);
    let both = s.provider.sign(&m2m_claims(&s, M2M_CLIENT, DEPLOY_SCOPES));
    let resp = serve(&app, bearer("/deploy", &both)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_string(resp).await, "deployed");
    let read_only = s
        .provider
        .sign(&m2m_claims(&s, M2M_CLIENT, &["read:deployments"]));
    assert_eq!(
        serve(&app, bearer("/deploy", &read_only)).await.status(),
        StatusCode::FORBIDDEN
    );
    let none = s.provider.sign(&m2m_claims(&s, M2M_CLIENT, &[]));
    assert_eq!(
        serve(&app, bearer("/deploy", &none)).await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn is_machine_is_false_for_users() {
    let s = setup_with(|c| c.accept_m2m_clients(M2mClients::Any)).await;
    let app = api(&s.auth);
    // A cookie session.
    let cookie = s.provider.session_cookie(&s.auth, &user());
    let resp = serve(&app, request("/whoami", &cookie)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = serde_json::from_str(&body_string(resp).await).unwrap();
    assert_eq!(body["sub"], "usr_42");
    assert_eq!(body["machine"], false);
    // A user's bearer token for this client.
    let resp = serve(&app, bearer("/whoami", &s.provider.access_token(&user()))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = serde_json::from_str(&body_string(resp).await).unwrap();
    assert_eq!(body["machine"], false);
}

/// An M2M token is never a user session, even where the bearer path accepts it: sealed into a
/// session cookie, it does not sign anyone in, and the cookie is cleared.
#[tokio::test]
async fn an_m2m_token_is_never_a_cookie_session() {
    let s = setup_with(|c| c.accept_m2m_clients(M2mClients::Any)).await;
    let token = s.provider.sign(&m2m_claims(&s, M2M_CLIENT, DEPLOY_SCOPES));
    let id_token = s.provider.id_token(&user(), None);
    let cookie = s
        .provider
        .session_cookie_with_tokens(&s.auth, &token, None, &id_token);
    let resp = serve(
        &api(&s.auth),
        Request::get("/")
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let cleared = set_cookies(&resp).removes_any();
    assert_eq!(body_string(resp).await, "anonymous");
    assert!(cleared, "the session cookie is cleared");
}

/// `TestProvider::m2m_access_token` mints the quickstart's shape.
#[tokio::test]
async fn test_provider_mints_m2m_tokens_of_the_documented_shape() {
    let s = setup_with(|c| c.accept_m2m_clients(M2mClients::Any)).await;
    let token = s
        .provider
        .m2m_access_token(M2M_CLIENT, "org_59615193906282635", DEPLOY_SCOPES);
    let payload = token.split('.').nth(1).unwrap();
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    let expected = m2m_claims(&s, M2M_CLIENT, DEPLOY_SCOPES);
    for key in ["client_id", "sub", "iss", "oid", "scopes", "iat", "nbf"] {
        assert_eq!(claims[key], expected[key], "{key}");
    }
    assert!(claims.get("aud").is_none() && claims.get("sid").is_none());
    assert!(claims["jti"].as_str().unwrap().starts_with("tkn_"));
    assert_eq!(status_of(&s, &token).await, StatusCode::OK);
}

/// A login whose access token names an API audience (`fsa/session-token-claims.mdx`) fails
/// clearly without `.audience(..)`, naming the audience and the call; with it, the user signs
/// in, and the same shape is accepted as a bearer token.
#[tokio::test]
async fn api_audience_login_needs_the_audience_configured() {
    let s = setup().await;
    s.provider
        .set_access_token_audience(Some(vec![USER_API_AUDIENCE.to_owned()]));
    let mut jar = Jar::default();
    let resp = login(&s, &mut jar, "/auth/login").await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(jar.get("_s").is_none(), "{:?}", jar.names());
    let body = body_string(resp).await;
    assert!(
        body.contains(USER_API_AUDIENCE) && body.contains(".audience("),
        "{body}"
    );

    let s = setup_with(|c| c.audience(USER_API_AUDIENCE)).await;
    s.provider
        .set_access_token_audience(Some(vec![USER_API_AUDIENCE.to_owned()]));
    let mut jar = Jar::default();
    assert_eq!(
        login(&s, &mut jar, "/auth/login").await.status(),
        StatusCode::FOUND
    );
    let resp = send(&s.app, &mut jar, crate::helpers::get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let me: Value = serde_json::from_str(&body_string(resp).await).unwrap();
    assert_eq!(me["aud"], json!([USER_API_AUDIENCE]));
    assert_eq!(me["sub"], "usr_42");

    // The documented user token, as a bearer token for this API (times moved to now).
    let now = s.clock.now();
    // fsa/session-token-claims.mdx, "Default access token claims".
    let documented = json!({
        "sub": "usr_96194455173923084",
        "iss": s.provider.issuer(),
        "aud": [USER_API_AUDIENCE],
        "exp": now + 600,
        "iat": now,
        "nbf": now,
        "jti": "tkn_2b91b6b8f1e94b2c",
        "sid": "ses_5f3a9c1d7e2b4a68",
        "oid": "org_84213988219092123",
        "roles": ["admin"],
        "permissions": ["users:read", "users:write"]
    });
    let resp = serve(&s.app, bearer("/me", &s.provider.sign(&documented))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let me: Value = serde_json::from_str(&body_string(resp).await).unwrap();
    assert_eq!(me["sub"], "usr_96194455173923084");
}
