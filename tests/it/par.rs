//! Pushed authorization requests (RFC 9126) against the TestProvider: the login route pushes
//! the authorization parameters, the browser carries only `client_id` and `request_uri`, and a
//! failed push is the sign-in error page with nothing set.

use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use http::{header, StatusCode};
use tower_oidc_auth::testing::{client_key_pem, Failure, TestProvider};
use tower_oidc_auth::{
    Algorithm, AuthLayerBuilder, ClientAuth, ClientKey, ConfigError, ManualClock, Par, Provider,
};

use crate::helpers::*;

/// RFC 9126 section 2.2: `request_uri` values are URNs of this form (the TestProvider's).
const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

async fn par_provider(
    clock: &ManualClock,
    tweak: impl FnOnce(
        tower_oidc_auth::testing::TestProviderBuilder,
    ) -> tower_oidc_auth::testing::TestProviderBuilder,
) -> TestProvider {
    tweak(
        TestProvider::builder()
            .user(user())
            .clock(clock.clone())
            .pushed_authorization_requests(true),
    )
    .start()
    .await
}

async fn setup_par(
    provider_tweak: impl FnOnce(
        tower_oidc_auth::testing::TestProviderBuilder,
    ) -> tower_oidc_auth::testing::TestProviderBuilder,
    tweak: impl FnOnce(AuthLayerBuilder) -> AuthLayerBuilder,
) -> Setup {
    let clock = ManualClock::starting_now();
    let provider = par_provider(&clock, provider_tweak).await;
    let auth = tweak(provider.layer_builder(REDIRECT))
        .build()
        .await
        .expect("build");
    Setup {
        app: app(&auth),
        auth,
        provider,
        clock,
    }
}

fn names(location: &str) -> Vec<String> {
    query_of(location).into_iter().map(|(k, _)| k).collect()
}

/// With `Par::Auto` (the default) and a provider that lists a PAR endpoint, the browser is
/// sent to authorize with exactly `client_id` and `request_uri`; the pushed request is used
/// once and the flow signs in.
#[tokio::test]
async fn the_browser_carries_only_client_id_and_request_uri_and_signs_in() {
    let s = setup_par(|p| p, |c| c).await;
    let mut jar = Jar::default();
    let resp = send(&s.app, &mut jar, get_html("/auth/login")).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let to = location(&resp);
    let mut got = names(&to);
    got.sort();
    assert_eq!(got, ["client_id", "request_uri"], "{to}");
    let pairs = query_of(&to);
    assert_eq!(values(&pairs, "client_id"), [s.provider.client_id()]);
    assert!(values(&pairs, "request_uri")[0].starts_with(REQUEST_URI_PREFIX));
    assert!(jar.tx().is_some(), "the attempt is remembered");
    assert_eq!(s.provider.counts().par_requests, 1);

    let callback = authorize(&to).await;
    let resp = send(&s.app, &mut jar, get_html(&callback)).await;
    assert_eq!(resp.status(), StatusCode::FOUND, "signed in");
    assert_eq!(me(&s, &mut jar).await, StatusCode::OK);
    let c = s.provider.counts();
    assert_eq!((c.pushed_requests_used, c.code_grants), (1, 1));

    // The same request_uri again: refused by the provider (one use).
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let again = client.get(&to).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
}

/// PAR and `private_key_jwt` together: the push is authenticated with an assertion, like the
/// code exchange.
#[tokio::test]
async fn pushes_authenticate_with_a_private_key() {
    let key = ClientKey::from_pem(client_key_pem(Algorithm::ES256)).unwrap();
    let jwk = key.public_jwk(None);
    let s = setup_par(
        |p| p.client_jwk(jwk).token_auth_methods(["private_key_jwt"]),
        |c| c.client_auth(ClientAuth::private_key_jwt(key)),
    )
    .await;
    let mut jar = Jar::default();
    assert_eq!(
        login(&s, &mut jar, "/auth/login").await.status(),
        StatusCode::FOUND
    );
    let c = s.provider.counts();
    assert_eq!((c.par_requests, c.pushed_requests_used), (1, 1));
    assert_eq!(c.client_assertions, 2, "one for the push, one for the code");
}

/// A push the provider refuses (400 invalid_request), a failing or a slow provider: the
/// error page (502, 504 on timeout), no cookie, and no redirect to the provider.
#[tokio::test]
async fn a_failed_push_is_the_error_page_with_nothing_set() {
    let s = setup_par(|p| p, |c| c.http_timeout(Duration::from_millis(300))).await;
    for (failure, status) in [
        (
            Failure::OAuthError("invalid_request".into()),
            StatusCode::BAD_GATEWAY,
        ),
        (
            Failure::OAuthError("invalid_client".into()),
            StatusCode::BAD_GATEWAY,
        ),
        (Failure::Status(500), StatusCode::BAD_GATEWAY),
        (Failure::NotJson, StatusCode::BAD_GATEWAY),
        (
            Failure::Delay(Duration::from_secs(5)),
            StatusCode::GATEWAY_TIMEOUT,
        ),
    ] {
        s.provider.set_par_failure(Some(failure.clone()));
        let mut jar = Jar::default();
        let resp = send(&s.app, &mut jar, get_html("/auth/login")).await;
        assert_eq!(resp.status(), status, "{failure:?}");
        assert!(
            resp.headers().get(header::SET_COOKIE).is_none(),
            "nothing set: {failure:?}"
        );
        assert!(resp.headers().get(header::LOCATION).is_none());
        assert!(body_string(resp).await.contains("Try again"), "{failure:?}");
    }
    s.provider.set_par_failure(None);
    let mut jar = Jar::default();
    assert_eq!(
        login(&s, &mut jar, "/auth/login").await.status(),
        StatusCode::FOUND,
        "works again"
    );
}

/// A PAR endpoint nobody listens at: 502, nothing set.
#[tokio::test]
async fn an_unreachable_par_endpoint_is_a_502() {
    let clock = ManualClock::starting_now();
    let provider = par_provider(&clock, |p| p).await;
    // Discovery of our own, naming the TestProvider's endpoints and a closed port for PAR.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let upstream = provider.issuer().to_owned();
    let doc = serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{upstream}/oauth/authorize"),
        "token_endpoint": format!("{upstream}/oauth/token"),
        "jwks_uri": format!("{upstream}/keys"),
        "pushed_authorization_request_endpoint": format!("http://{closed}/par"),
    });
    let server = Router::new().route(
        "/.well-known/openid-configuration",
        get(move || {
            let doc = doc.clone();
            async move { Json(doc) }
        }),
    );
    let task = tokio::spawn(async move { axum::serve(listener, server).await });
    let auth = provider
        .layer_builder(REDIRECT)
        .provider(Provider::discover(issuer))
        .build()
        .await
        .expect("build");
    let app = app(&auth);
    let mut jar = Jar::default();
    let resp = send(&app, &mut jar, get_html("/auth/login")).await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert!(resp.headers().get(header::SET_COOKIE).is_none());
    task.abort();
}

/// `Par::Off` never pushes, even when the provider offers PAR: the parameters go in the URL.
#[tokio::test]
async fn off_does_not_push_even_when_advertised() {
    let s = setup_par(|p| p, |c| c.pushed_authorization_requests(Par::Off)).await;
    let mut jar = Jar::default();
    let resp = send(&s.app, &mut jar, get_html("/auth/login")).await;
    let to = location(&resp);
    let got = names(&to);
    assert!(got.iter().any(|n| n == "state") && got.iter().any(|n| n == "code_challenge"));
    assert!(!got.iter().any(|n| n == "request_uri"), "{to}");
    let callback = authorize(&to).await;
    let resp = send(&s.app, &mut jar, get_html(&callback)).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(s.provider.counts().par_requests, 0);
}

/// `Par::Required` against a provider without a PAR endpoint, and `Par::Off` against one that
/// requires PAR: the build fails, saying why.
#[tokio::test]
async fn required_and_off_fail_the_build_when_the_provider_disagrees() {
    let clock = ManualClock::starting_now();
    let plain = TestProvider::builder().clock(clock.clone()).start().await;
    let error = plain
        .layer_builder(REDIRECT)
        .pushed_authorization_requests(Par::Required)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(error, ConfigError::Metadata(_)), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("pushed_authorization_request_endpoint"),
        "{error}"
    );
    // Auto without an endpoint: no PAR, builds.
    plain.layer_builder(REDIRECT).build().await.expect("auto");

    let strict = par_provider(&clock, |p| p.require_pushed_authorization_requests(true)).await;
    let error = strict
        .layer_builder(REDIRECT)
        .pushed_authorization_requests(Par::Off)
        .build()
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("require_pushed_authorization_requests"),
        "{error}"
    );
}

/// The TestProvider's side: when it requires PAR, a plain authorization request is refused;
/// a pushed request expires after 60 s and names its client.
#[tokio::test]
async fn the_provider_enforces_pushed_requests() {
    let s = setup_par(|p| p.require_pushed_authorization_requests(true), |c| c).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let plain = format!(
        "{}/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge=x&code_challenge_method=S256",
        s.provider.issuer(),
        s.provider.client_id(),
        urlencode(REDIRECT)
    );
    let resp = client.get(&plain).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "PAR required");

    // Expired.
    let mut jar = Jar::default();
    let to = location(&send(&s.app, &mut jar, get_html("/auth/login")).await);
    s.clock.advance(Duration::from_secs(61));
    let resp = client.get(&to).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "expired");

    // Another client's request_uri.
    let to = location(&send(&s.app, &mut jar, get_html("/auth/login")).await);
    let uri = values(&query_of(&to), "request_uri")[0].clone();
    let forged = format!(
        "{}/oauth/authorize?client_id=another&request_uri={}",
        s.provider.issuer(),
        urlencode(&uri)
    );
    let resp = client.get(&forged).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "client mismatch");
    assert_eq!(s.provider.counts().pushed_requests_used, 0);
}
