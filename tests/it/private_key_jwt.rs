//! `private_key_jwt` client authentication (RFC 7523 section 2.2, OpenID Connect Core 1.0
//! section 9) against the TestProvider: the code exchange, refresh, revocation and client
//! credentials carry signed assertions; a wrong key, an expired assertion or a provider that
//! does not offer the method fail clearly.

use std::time::Duration;

use http::StatusCode;
use tower_oidc_auth::testing::{client_key_pem, TestProvider};
use tower_oidc_auth::{
    Algorithm, AssertionAudience, AuthLayerBuilder, ClientAuth, ClientKey, Clock, ConfigError,
    ManualClock, Provider,
};

use crate::helpers::*;

fn key(alg: Algorithm) -> ClientKey {
    ClientKey::from_pem(client_key_pem(alg)).expect("a fresh key reads")
}

/// A provider that accepts only `private_key_jwt` (no secret would do) for a client whose
/// public key is `public`.
async fn provider(public: &ClientKey, clock: &ManualClock) -> TestProvider {
    TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .client_jwk(public.public_jwk(Some("app-key")))
        .token_auth_methods(["private_key_jwt"])
        .start()
        .await
}

/// A layer on `provider` by discovery, with no client secret at all.
fn builder(provider: &TestProvider, key: &ClientKey, clock: &ManualClock) -> AuthLayerBuilder {
    AuthLayerBuilder::new()
        .provider(Provider::discover(provider.issuer()))
        .client_id(provider.client_id())
        .client_auth(ClientAuth::PrivateKeyJwt {
            key: key.clone(),
            alg: key.algorithm(),
            kid: Some("app-key".into()),
        })
        .redirect_url(REDIRECT)
        .cookie_key(tower_oidc_auth::testing::cookie_key(3))
        .clock(clock.clone())
}

async fn setup_pk(alg: Algorithm) -> (Setup, ClientKey) {
    let clock = ManualClock::starting_now();
    let key = key(alg);
    let provider = provider(&key, &clock).await;
    let auth = builder(&provider, &key, &clock)
        .build()
        .await
        .expect("build");
    (
        Setup {
            app: app(&auth),
            auth,
            provider,
            clock,
        },
        key,
    )
}

/// Sign-in, refresh and logout's revocation each authenticate with a fresh assertion: the
/// provider accepts nothing else, and counts one assertion per call.
#[tokio::test]
async fn login_refresh_and_revocation_authenticate_with_assertions() {
    let (s, _) = setup_pk(Algorithm::ES256).await;
    let mut jar = Jar::default();
    assert_eq!(
        login(&s, &mut jar, "/auth/login").await.status(),
        StatusCode::FOUND
    );
    let c = s.provider.counts();
    assert_eq!((c.code_grants, c.client_assertions), (1, 1));
    assert_eq!(me(&s, &mut jar).await, StatusCode::OK);

    s.clock.advance(Duration::from_secs(301));
    assert_eq!(me(&s, &mut jar).await, StatusCode::OK, "refreshed");
    let c = s.provider.counts();
    assert_eq!((c.refresh_grants, c.client_assertions), (1, 2));

    let resp = send(&s.app, &mut jar, logout_link()).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let c = s.provider.counts();
    assert_eq!(c.refresh_tokens_revoked, 1, "revoked with an assertion");
    assert_eq!(c.client_assertions, 3);
}

/// An RSA key (RS256) and the issuer as the assertions' audience work as well.
#[tokio::test]
async fn rs256_with_the_issuer_as_audience_signs_in() {
    let clock = ManualClock::starting_now();
    let key = key(Algorithm::RS256);
    let provider = provider(&key, &clock).await;
    let auth = builder(&provider, &key, &clock)
        .client_assertion_audience(AssertionAudience::Issuer)
        .build()
        .await
        .expect("build");
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
    assert_eq!(s.provider.counts().client_assertions, 1);
    assert_eq!(me(&s, &mut jar).await, StatusCode::OK);
}

/// What a failed code exchange leaves: the error page's status, and no session cookie.
async fn failed_login(s: &Setup) -> StatusCode {
    let mut jar = Jar::default();
    let resp = login(s, &mut jar, "/auth/login").await;
    let status = resp.status();
    let page = body_string(resp).await;
    assert!(page.contains("credentials"), "{page}");
    assert!(jar.get("_s").is_none(), "no session: {:?}", jar.names());
    assert_eq!(me(s, &mut jar).await, StatusCode::UNAUTHORIZED);
    assert_eq!(s.provider.counts().code_grants, 0);
    status
}

/// Signed with a key the provider does not hold: the provider refuses the client, and the
/// user gets the error page (502), signed out.
#[tokio::test]
async fn a_key_the_provider_does_not_hold_is_refused() {
    let clock = ManualClock::starting_now();
    let registered = key(Algorithm::ES256);
    let provider = provider(&registered, &clock).await;
    let other = key(Algorithm::ES256);
    let auth = builder(&provider, &other, &clock)
        .build()
        .await
        .expect("build");
    let s = Setup {
        app: app(&auth),
        auth,
        provider,
        clock,
    };
    assert_eq!(failed_login(&s).await, StatusCode::BAD_GATEWAY);
    assert_eq!(s.provider.counts().client_assertions, 0);
}

/// The layer's clock is two minutes behind the provider's: its assertions (valid 60 s) have
/// expired on arrival, and the provider refuses them.
#[tokio::test]
async fn an_expired_assertion_is_refused() {
    let provider_clock = ManualClock::starting_now();
    let key = key(Algorithm::ES256);
    let provider = provider(&key, &provider_clock).await;
    let layer_clock = ManualClock::new(provider_clock.now() - 120);
    let auth = builder(&provider, &key, &layer_clock)
        .build()
        .await
        .expect("build");
    let s = Setup {
        app: app(&auth),
        auth,
        provider,
        clock: layer_clock,
    };
    assert_eq!(failed_login(&s).await, StatusCode::BAD_GATEWAY);
}

/// A provider whose discovery lists its methods without `private_key_jwt`: the build fails,
/// naming the method.
#[tokio::test]
async fn discovery_without_private_key_jwt_fails_the_build() {
    let clock = ManualClock::starting_now();
    let provider = TestProvider::builder()
        .clock(clock.clone())
        .token_auth_methods(["client_secret_post", "client_secret_basic"])
        .start()
        .await;
    let key = key(Algorithm::ES256);
    let error = builder(&provider, &key, &clock).build().await.unwrap_err();
    assert!(matches!(error, ConfigError::Metadata(_)), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("private_key_jwt") && text.contains("client_secret_post"),
        "{text}"
    );
}

/// Without private_key_jwt a client secret stays required; with it, none is.
#[test]
fn no_client_secret_is_needed_with_a_private_key() {
    let base = AuthLayerBuilder::new()
        .provider(Provider::discover("https://op.example"))
        .client_id("app")
        .redirect_url("https://app.example/auth/callback")
        .cookie_key(tower_oidc_auth::testing::cookie_key(1));
    assert!(matches!(
        base.validate(),
        Err(ConfigError::Missing("client_secret"))
    ));
    let key = key(Algorithm::ES256);
    base.clone()
        .client_auth(ClientAuth::private_key_jwt(key.clone()))
        .validate()
        .expect("no secret needed");
    // The algorithm must be the key's.
    let wrong = base.client_auth(ClientAuth::PrivateKeyJwt {
        key,
        alg: Algorithm::RS256,
        kid: None,
    });
    assert!(matches!(
        wrong.validate(),
        Err(ConfigError::Invalid {
            what: "client_auth",
            ..
        })
    ));
}

/// The Management API's client credentials authenticate with an assertion too: built from a
/// key, or taken from a layer that uses one.
#[cfg(feature = "management")]
#[tokio::test]
async fn client_credentials_use_an_assertion() {
    use tower_oidc_auth::management::{ClientCredentials, ManagementClient};
    let (s, key) = setup_pk(Algorithm::ES256).await;
    let credentials = ClientCredentials::private_key_jwt(
        s.provider.token_endpoint(),
        s.provider.client_id(),
        &key,
        Some("app-key".into()),
    );
    credentials.token().await.expect("a token");
    let c = s.provider.counts();
    assert_eq!((c.client_credentials_grants, c.client_assertions), (1, 1));

    let from_layer = ManagementClient::from_layer(&s.auth);
    from_layer.credentials().token().await.expect("a token");
    let c = s.provider.counts();
    assert_eq!((c.client_credentials_grants, c.client_assertions), (2, 2));

    // A key the provider does not hold gets no token.
    let stranger = ClientCredentials::private_key_jwt(
        s.provider.token_endpoint(),
        s.provider.client_id(),
        &self::key(Algorithm::ES256),
        Some("app-key".into()),
    );
    assert!(stranger.token().await.is_err());
    assert_eq!(s.provider.counts().client_credentials_grants, 2);
}

/// A discovery document of our own: the TestProvider's, edited, under a new issuer (its
/// endpoints stay the TestProvider's).
async fn edited_discovery(
    provider: &TestProvider,
    edit: impl FnOnce(&mut serde_json::Value),
) -> (String, tokio::task::JoinHandle<()>) {
    let text = reqwest::get(format!(
        "{}/.well-known/openid-configuration",
        provider.issuer()
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    doc["issuer"] = issuer.clone().into();
    edit(&mut doc);
    let server = axum::Router::new().route(
        "/.well-known/openid-configuration",
        axum::routing::get(move || {
            let doc = doc.clone();
            async move { axum::Json(doc) }
        }),
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, server).await;
    });
    (issuer, task)
}

/// Discovery lists `token_endpoint_auth_signing_alg_values_supported` without our algorithm:
/// the build fails, naming it; listing it (or nothing) builds.
#[tokio::test]
async fn an_algorithm_the_provider_does_not_list_fails_the_build() {
    let clock = ManualClock::starting_now();
    let key = key(Algorithm::ES256);
    let provider = provider(&key, &clock).await;
    let build = |issuer: String| {
        builder(&provider, &key, &clock)
            .provider(Provider::discover(issuer))
            .build()
    };
    let (issuer, task) = edited_discovery(&provider, |d| {
        d["token_endpoint_auth_signing_alg_values_supported"] = serde_json::json!(["PS256"]);
    })
    .await;
    let error = build(issuer).await.unwrap_err();
    let text = error.to_string();
    assert!(text.contains("ES256") && text.contains("PS256"), "{text}");
    task.abort();

    let (issuer, task) = edited_discovery(&provider, |d| {
        let doc = d.as_object_mut().unwrap();
        doc.remove("token_endpoint_auth_signing_alg_values_supported");
        doc.remove("token_endpoint_auth_methods_supported");
    })
    .await;
    build(issuer)
        .await
        .expect("a provider that lists nothing is allowed");
    task.abort();
}
