//! Refresh that never loses the user (issue 14, part C): a verification failure after a
//! successful refresh grant retries only the verification, never the grant; sessions are
//! written only in sizes that can be read back.

use std::time::Duration;

use http::{header, Request, StatusCode};
use serde_json::json;
use tower_oidc_auth::testing::{Failure, TestProvider, TestUser};
use tower_oidc_auth::{AuthLayerBuilder, ManualClock};

use crate::helpers::*;

async fn setup_user(
    user: TestUser,
    tweak: impl FnOnce(AuthLayerBuilder) -> AuthLayerBuilder,
) -> Setup {
    let clock = ManualClock::starting_now();
    let provider = TestProvider::builder()
        .user(user)
        .clock(clock.clone())
        .start()
        .await;
    let auth = tweak(provider.layer_builder(REDIRECT))
        .build()
        .await
        .expect("build");
    let app = app(&auth);
    Setup {
        provider,
        auth,
        app,
        clock,
    }
}

/// Starts the JWKS refetch rate limit now: a bearer token naming an unknown key makes the
/// layer refetch once.
async fn use_up_the_refetch(s: &Setup) {
    let before = s.provider.counts().jwks_fetches;
    let token = s.provider.sign_with_unpublished_key(
        &json!({"alg": "RS256", "typ": "JWT", "kid": "nobody-knows"}),
        // It claims the provider as its issuer: only such a token is worth a key fetch.
        &json!({"sub": "x", "iss": s.provider.issuer()}),
    );
    let req = Request::get("/")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let _ = send(&s.app, &mut Jar::default(), req).await;
    assert_eq!(s.provider.counts().jwks_fetches, before + 1);
}

/// Some cookie is removed (`Max-Age=0`); whichever it is.
fn session_cleared(resp: &http::Response<axum::body::Body>) -> bool {
    set_cookies(resp).removes_any()
}

/// The provider rotates its signing key right after the layer refetched its JWKS for another
/// reason: the refreshed tokens name a key the layer may not fetch yet under the rate limit.
/// Tokens straight from the token endpoint fetch their key regardless.
#[tokio::test]
async fn a_new_key_within_the_refetch_rate_limit_does_not_burn_the_refresh_token() {
    let s = setup().await;
    let (mut jar, old) = signed_in(&s).await;
    // Past the access token's expiry and the clock leeway: the old token is no fallback.
    s.clock.advance(Duration::from_secs(400));
    use_up_the_refetch(&s).await;
    s.provider.rotate_keys(false);

    let resp = send(&s.app, &mut jar, get_json("/jti")).await;
    assert_eq!(resp.status(), StatusCode::OK, "refreshed and verified");
    let new = body_string(resp).await;
    assert!(!new.is_empty() && new != old, "new access token in use");

    // Later requests keep working on the rotated refresh token.
    s.clock.advance(Duration::from_secs(301));
    let resp = send(&s.app, &mut jar, get_json("/jti")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let counts = s.provider.counts();
    assert_eq!(counts.refresh_grants, 2);
    assert_eq!(counts.refresh_failures, 0, "no refresh token replayed");
}

/// The JWKS endpoint fails right after a successful grant: the user is told to retry (cookies
/// kept), and the retry verifies the tokens already obtained: no second grant, no replay.
#[tokio::test]
async fn jwks_down_after_the_grant_retries_only_the_verification() {
    let s = setup().await;
    let (mut jar, old) = signed_in(&s).await;
    // Past the access token's expiry and the clock leeway: the old token is no fallback.
    s.clock.advance(Duration::from_secs(400));
    s.provider.rotate_keys(false);
    s.provider.set_jwks_failure(Some(Failure::Status(503)));

    let resp = send(&s.app, &mut jar, get_json("/jti")).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key(header::RETRY_AFTER));
    assert!(!session_cleared(&resp), "cookies kept for the retry");
    assert_eq!(s.provider.counts().refresh_grants, 1);

    // The JWKS is back a moment later (within the refetch rate limit).
    s.provider.set_jwks_failure(None);
    s.clock.advance(Duration::from_secs(2));
    let resp = send(&s.app, &mut jar, get_json("/jti")).await;
    assert_eq!(resp.status(), StatusCode::OK, "verification retried");
    let new = body_string(resp).await;
    assert!(!new.is_empty() && new != old);
    let counts = s.provider.counts();
    assert_eq!(counts.refresh_grants, 1, "the grant was not repeated");
    assert_eq!(counts.refresh_failures, 0, "no refresh token replayed");

    // And the session goes on refreshing normally.
    s.clock.advance(Duration::from_secs(301));
    let resp = send(&s.app, &mut jar, get_json("/jti")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(s.provider.counts().refresh_grants, 2);
    assert_eq!(s.provider.counts().refresh_failures, 0);
}

fn groups(n: usize) -> serde_json::Value {
    (0..n)
        .map(|i| format!("grp_{i:012}"))
        .collect::<Vec<_>>()
        .into()
}

fn session_chunks(jar: &Jar) -> usize {
    jar.cookies
        .iter()
        .filter(|c| c.path == "/" && (c.name.ends_with("_s") || c.name.contains("_s.")))
        .count()
}

/// A user with many groups: the session keeps only the identity claims the app needs, so it
/// fits the cookies the layer reads back (before: written in more chunks than are read, an
/// endless login loop).
#[tokio::test]
async fn many_groups_still_make_a_readable_session() {
    let s = setup_user(user().claim("groups", groups(600)), |c| c).await;
    let mut jar = Jar::default();
    let resp = login(&s, &mut jar, "/auth/login").await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert!(
        session_chunks(&jar) <= 8,
        "chunks: {}",
        session_chunks(&jar)
    );
    let resp = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::OK, "signed in, not sent back");
    let claims: serde_json::Value = serde_json::from_str(&body_string(resp).await).unwrap();
    assert_eq!(claims["sub"], "usr_42");
    // And across a refresh.
    s.clock.advance(Duration::from_secs(301));
    let resp = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(session_chunks(&jar) <= 8);
    assert_eq!(s.provider.counts().refresh_grants, 1);
}

/// A session that cannot fit what the layer reads is refused at login with a page that says
/// why, and no cookie is written that could not be read.
#[tokio::test]
async fn a_session_over_the_limit_is_refused_at_login() {
    let s = setup_user(user().claim("groups", groups(3000)), |c| c).await;
    let mut jar = Jar::default();
    let resp = login(&s, &mut jar, "/auth/login").await;
    let status = resp.status();
    assert!(
        status.is_client_error() || status.is_server_error(),
        "refused, not a redirect into a loop: {status}"
    );
    assert_eq!(session_chunks(&jar), 0, "no unreadable session written");
    let body = body_string(resp).await;
    assert!(body.contains("too large"), "the page says why: {body}");
}

/// Which ID-token claims the session keeps is configurable; the default keeps identity only.
#[tokio::test]
async fn kept_identity_claims_are_configurable() {
    let u = user().claim("groups", groups(3)).claim("department", "R&D");
    let opaque = |u: TestUser| async move {
        let clock = ManualClock::starting_now();
        let provider = TestProvider::builder()
            .user(u)
            .opaque_access_tokens(true)
            .clock(clock.clone())
            .start()
            .await;
        (provider, clock)
    };
    for keep in [false, true] {
        let (provider, clock) = opaque(u.clone()).await;
        let mut config = provider.layer_builder(REDIRECT);
        if keep {
            config = config.session_claims(["email", "department"]);
        }
        let auth = config.build().await.unwrap();
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
        let claims: serde_json::Value = serde_json::from_str(&body_string(resp).await).unwrap();
        assert_eq!(claims["sub"], "usr_42", "sub always kept");
        assert_eq!(claims["email"], "ada@example.com");
        assert!(claims.get("groups").is_none(), "groups not kept: {claims}");
        assert_eq!(claims.get("department").is_some(), keep, "{claims}");
    }
}

/// A refresh that answers with another user's tokens never changes whose session this is: the
/// request is refused for now (503, cookies kept), never signed in as the other user.
#[tokio::test]
async fn refreshed_tokens_for_another_user_are_refused() {
    let s = setup().await;
    let (mut jar, _) = signed_in(&s).await;
    s.clock.advance(Duration::from_secs(400));
    s.provider
        .set_refresh_user(Some(TestUser::new("usr_other").email("other@example.com")));
    let resp = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = body_string(resp).await;
    assert!(!body.contains("usr_other"), "{body}");
    assert_eq!(s.provider.counts().refresh_grants, 1);
}
