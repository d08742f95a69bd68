//! Several trusted issuers for bearer tokens (`AuthLayerBuilder::trust_issuer`): a token is
//! routed by its `iss` to that issuer's own keys and audiences before any signature work; an
//! unknown issuer is refused without a network call; cookie login stays with the layer's own
//! provider.

use axum::body::Body;
use axum::routing::get;
use axum::{Json, Router};
use http::{header, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_oidc_auth::testing::TestProvider;
use tower_oidc_auth::{AuthLayer, Claims, Clock, ManualClock, Provider};

use crate::helpers::{body_string, user, REDIRECT};

const ORDERS: &str = "api://orders";

struct Rig {
    a: TestProvider,
    b: TestProvider,
    app: Router,
    clock: ManualClock,
}

async fn rig() -> Rig {
    let clock = ManualClock::starting_now();
    let a = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    let b = TestProvider::builder().clock(clock.clone()).start().await;
    let auth = a
        .layer_builder(REDIRECT)
        .trust_issuer(Provider::discover(b.issuer()), [ORDERS])
        .build()
        .await
        .expect("build");
    let app = app(&auth);
    Rig { a, b, app, clock }
}

fn app(auth: &AuthLayer) -> Router {
    Router::new()
        .route(
            "/me",
            get(|c: Claims| async move { Json(json!({"sub": c.sub, "issuer": c.issuer()})) }),
        )
        .route_layer(auth.require())
        .layer(auth.clone())
}

impl Rig {
    fn now(&self) -> i64 {
        self.clock.now()
    }

    /// A token signed by `signer`, saying `iss`, for `aud`.
    fn token(&self, signer: &TestProvider, iss: &str, aud: Value) -> String {
        let now = self.now();
        signer.sign(&json!({
            "iss": iss, "sub": "usr_b", "aud": aud, "iat": now, "exp": now + 300,
        }))
    }

    async fn me(&self, token: &str) -> http::Response<Body> {
        let req = Request::get("/me")
            .header(header::ACCEPT, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        self.app.clone().oneshot(req).await.unwrap()
    }
}

#[tokio::test]
async fn each_issuer_verifies_its_own_tokens_and_claims_say_which() {
    let r = rig().await;
    let from_b = r.token(&r.b, r.b.issuer(), json!(ORDERS));
    let resp = r.me(&from_b).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = serde_json::from_str(&body_string(resp).await).unwrap();
    assert_eq!(body["issuer"], r.b.issuer());

    let from_a = r.a.access_token(&user());
    let resp = r.me(&from_a).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = serde_json::from_str(&body_string(resp).await).unwrap();
    assert_eq!(body["issuer"], r.a.issuer());
    assert_eq!(body["sub"], "usr_42");
}

#[tokio::test]
async fn an_unknown_issuer_is_refused_without_a_network_call() {
    let r = rig().await;
    let (a0, b0) = (r.a.counts().jwks_fetches, r.b.counts().jwks_fetches);
    for iss in ["https://unknown.example", "", "http://127.0.0.1:1"] {
        let token = r.token(&r.a, iss, json!(r.a.client_id()));
        let resp = r.me(&token).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{iss:?}");
    }
    // No issuer at all, and an issuer that is not a string.
    let now = r.now();
    for claims in [
        json!({"sub": "x", "aud": ORDERS, "exp": now + 300}),
        json!({"iss": 7, "sub": "x", "aud": ORDERS, "exp": now + 300}),
        json!({"iss": [r.b.issuer()], "sub": "x", "aud": ORDERS, "exp": now + 300}),
    ] {
        let resp = r.me(&r.b.sign(&claims)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{claims}");
    }
    assert_eq!(r.a.counts().jwks_fetches, a0, "no fetch at A");
    assert_eq!(r.b.counts().jwks_fetches, b0, "no fetch at B");
}

#[tokio::test]
async fn issuer_confusion_is_refused() {
    let r = rig().await;
    // A's key, claiming to be B (both providers name their first key `key-1`).
    let forged = r.token(&r.a, r.b.issuer(), json!(ORDERS));
    assert_eq!(r.me(&forged).await.status(), StatusCode::UNAUTHORIZED);
    // B's key and kid, under A's issuer, for A's client.
    let forged = r.token(&r.b, r.a.issuer(), json!(r.a.client_id()));
    assert_eq!(r.me(&forged).await.status(), StatusCode::UNAUTHORIZED);
    // B's new key (a kid A does not have), under A's issuer.
    r.b.rotate_keys(false);
    let forged = r.token(&r.b, r.a.issuer(), json!(r.a.client_id()));
    assert_eq!(r.me(&forged).await.status(), StatusCode::UNAUTHORIZED);
    // And the genuine articles still pass, once the refetch rate limit the forgeries spent at
    // each issuer has passed.
    r.clock.advance(std::time::Duration::from_secs(11));
    let genuine = r.token(&r.b, r.b.issuer(), json!(ORDERS));
    assert_eq!(r.me(&genuine).await.status(), StatusCode::OK);
    assert_eq!(
        r.me(&r.a.access_token(&user())).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_trusted_issuer_s_tokens_must_name_one_of_its_audiences() {
    let r = rig().await;
    let now = r.now();
    let refused = [
        // The layer's own client id is A's audience, not B's.
        r.token(&r.b, r.b.issuer(), json!(r.a.client_id())),
        r.token(&r.b, r.b.issuer(), json!("api://other")),
        // No audience at all (even with a client id that is one of ours).
        r.b.sign(&json!({
            "iss": r.b.issuer(), "sub": "x", "client_id": ORDERS, "exp": now + 300,
        })),
        // A machine token of B without `aud`.
        r.b.m2m_access_token("m2m_1", "org_1", &["read"]),
    ];
    for token in refused {
        assert_eq!(r.me(&token).await.status(), StatusCode::UNAUTHORIZED);
    }
    // Nor does A accept B's audience.
    let token = r.token(&r.a, r.a.issuer(), json!(ORDERS));
    assert_eq!(r.me(&token).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn each_issuer_has_its_own_key_cache() {
    let r = rig().await;
    let (a0, b0) = (r.a.counts().jwks_fetches, r.b.counts().jwks_fetches);
    // B rotates: its new key is fetched from B, and A is not asked.
    r.b.rotate_keys(false);
    let token = r.token(&r.b, r.b.issuer(), json!(ORDERS));
    assert_eq!(r.me(&token).await.status(), StatusCode::OK);
    assert_eq!(r.b.counts().jwks_fetches, b0 + 1);
    assert_eq!(r.a.counts().jwks_fetches, a0);
    // A rotates too: its own fetch.
    r.a.rotate_keys(false);
    assert_eq!(
        r.me(&r.a.access_token(&user())).await.status(),
        StatusCode::OK
    );
    assert_eq!(r.a.counts().jwks_fetches, a0 + 1);
    assert_eq!(r.b.counts().jwks_fetches, b0 + 1);
}

#[tokio::test]
async fn cookie_login_stays_with_the_layer_s_provider() {
    let r = rig().await;
    let resp = r
        .app
        .clone()
        .oneshot(Request::get("/auth/login").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let location = crate::helpers::location(&resp);
    assert!(location.starts_with(r.a.issuer()), "{location}");
}

#[tokio::test]
async fn misconfigured_trusted_issuers_are_refused_at_build() {
    let a = TestProvider::start().await;
    let b = TestProvider::start().await;
    // No audience: a token of another issuer must name one of ours.
    let err = a
        .layer_builder(REDIRECT)
        .trust_issuer(Provider::discover(b.issuer()), Vec::<String>::new())
        .build()
        .await
        .err()
        .unwrap_or_else(|| panic!("refused"));
    assert!(err.to_string().contains("audience"), "{err}");
    // The layer's own issuer, or the same issuer twice.
    for extra in [a.issuer(), b.issuer()] {
        let err = a
            .layer_builder(REDIRECT)
            .trust_issuer(Provider::discover(b.issuer()), [ORDERS])
            .trust_issuer(Provider::discover(extra), [ORDERS])
            .build()
            .await
            .err()
            .unwrap_or_else(|| panic!("refused"));
        assert!(err.to_string().contains("issuer"), "{err}");
    }
    // Not https, not on loopback: refused before any I/O.
    let err = a
        .layer_builder(REDIRECT)
        .trust_issuer(Provider::discover("http://example.com"), [ORDERS])
        .build()
        .await
        .err()
        .unwrap_or_else(|| panic!("refused"));
    assert!(err.to_string().contains("https"), "{err}");
}
