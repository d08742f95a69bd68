//! Attack 13: protected-resource mode (`resource_server`, RFC 9728 / RFC 6750) and trusted
//! issuers (`trust_issuer`). Each test asserts the secure behaviour; a failing test is a
//! finding. Tests marked `FINDING` failed against the code they were written for (commit
//! 78e11cb); the others are guards of properties that held.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{header, HeaderValue, Method, Request, StatusCode};
use serde_json::{json, Value};
use tower_oidc_auth::session_store::MemorySessionStore;
use tower_oidc_auth::testing::TestProvider;
use tower_oidc_auth::{
    AuthLayer, AuthLayerBuilder, Claims, Clock, ManualClock, Provider, ResourceServer,
};

use crate::helpers::*;

const RESOURCE: &str = "http://127.0.0.1:3000/mcp";
const METADATA_URL: &str = "http://127.0.0.1:3000/.well-known/oauth-protected-resource/mcp";
const ORDERS: &str = "api://orders";

// ---- rigs -----------------------------------------------------------------------------------

/// A resource-mode layer on a fresh provider; `tweak` adds to the builder.
async fn resource_layer(
    tweak: impl FnOnce(AuthLayerBuilder) -> AuthLayerBuilder,
) -> (TestProvider, ManualClock, AuthLayer) {
    let clock = ManualClock::starting_now();
    let provider = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    let builder = AuthLayer::builder()
        .provider(Provider::discover(provider.issuer()))
        .clock(clock.clone())
        .resource_server(ResourceServer::new(RESOURCE).scopes_supported(["mcp:read", "mcp:write"]));
    let auth = tweak(builder).build().await.expect("build");
    (provider, clock, auth)
}

/// `/mcp` guarded by `require()`, `/public` open, behind `auth`.
fn resource_app(auth: &AuthLayer) -> Router {
    Router::new()
        .route("/mcp", post(|c: Claims| async move { Json(c) }))
        .route_layer(auth.require())
        .route(
            "/public",
            get(|c: Option<Claims>| async move { format!("{}", c.is_some()) }),
        )
        .layer(auth.clone())
}

fn token_for(provider: &TestProvider, clock: &ManualClock, aud: Value) -> String {
    let now = clock.now();
    provider.sign(&json!({
        "iss": provider.issuer(), "sub": "usr_1", "aud": aud, "scope": "mcp:read",
        "iat": now, "exp": now + 300,
    }))
}

fn post_bearer(uri: &str, token: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::ACCEPT, "application/json")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::from("{}"))
        .unwrap()
}

fn www_authenticate(resp: &http::Response<Body>) -> String {
    resp.headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Layer A (login, cookie sessions) trusting B for `ORDERS`.
struct Trusted {
    a: TestProvider,
    b: TestProvider,
    clock: ManualClock,
    auth: AuthLayer,
}

async fn trusted(tweak: impl FnOnce(AuthLayerBuilder) -> AuthLayerBuilder) -> Trusted {
    let clock = ManualClock::starting_now();
    let a = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    let b = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    let builder = a
        .layer_builder(REDIRECT)
        .trust_issuer(Provider::discover(b.issuer()), [ORDERS]);
    let auth = tweak(builder).build().await.expect("build");
    Trusted { a, b, clock, auth }
}

impl Trusted {
    fn b_token(&self, sub: &str, aud: Value) -> String {
        let now = self.clock.now();
        self.b.sign(&json!({
            "iss": self.b.issuer(), "sub": sub, "aud": aud, "iat": now, "exp": now + 300,
        }))
    }
}

// ---- trusted issuers ------------------------------------------------------------------------

/// FINDING. A trusted issuer's claims carry the layer's own identity (`with_layer`), and the
/// stored-session API keys sessions by the layer's provider issuer and `sub` alone: a token
/// of issuer B whose `sub` equals a user of the layer's own provider A lists that user's
/// cookie sessions (user agents, IPs, handles) and ends them ("sign out my other devices").
/// B is trusted for its own audience, not to speak for A's users.
#[tokio::test]
async fn a_trusted_issuer_s_token_cannot_list_or_end_sessions_of_the_provider_s_user_with_that_sub()
{
    let clock = ManualClock::starting_now();
    let a = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    let b = TestProvider::builder().clock(clock.clone()).start().await;
    let auth = a
        .layer_builder(REDIRECT)
        .session_store(MemorySessionStore::with_clock(Arc::new(clock.clone())))
        .trust_issuer(Provider::discover(b.issuer()), [ORDERS])
        .build()
        .await
        .expect("build");
    let (list, end) = (auth.clone(), auth.clone());
    let app = Router::new()
        .route("/me", get(|c: Claims| async move { Json(c) }))
        .route(
            "/sessions",
            get(move |c: Claims| {
                let auth = list.clone();
                async move {
                    match auth.sessions_of(&c).await {
                        Ok(v) => v.len().to_string(),
                        Err(_) => "refused".to_owned(),
                    }
                }
            }),
        )
        .route(
            "/end-others",
            post(move |c: Claims| {
                let auth = end.clone();
                async move {
                    match auth.end_other_sessions(&c).await {
                        Ok(n) => n.to_string(),
                        Err(_) => "refused".to_owned(),
                    }
                }
            }),
        )
        .layer(auth.clone());
    let s = Setup {
        provider: a,
        auth,
        app,
        clock,
    };
    // The victim, usr_42 at A, signs in with a cookie session.
    let mut jar = Jar::default();
    assert_eq!(
        login(&s, &mut jar, "/auth/login").await.status(),
        StatusCode::FOUND
    );
    assert_eq!(me(&s, &mut jar).await, StatusCode::OK);
    let own = body_string(send(&s.app, &mut jar, get_json("/sessions")).await).await;
    assert_eq!(own, "1", "the victim sees its own session");

    // B (another environment, tenant or provider) mints a token for its own audience, naming
    // the same `sub`.
    let now = s.clock.now();
    let from_b = b.sign(&json!({
        "iss": b.issuer(), "sub": "usr_42", "aud": ORDERS, "iat": now, "exp": now + 300,
    }));
    let listed = body_string(serve(&s.app, bearer("/sessions", &from_b)).await).await;
    let ended = body_string(serve(&s.app, post_bearer("/end-others", &from_b)).await).await;
    let victim = me(&s, &mut jar).await;
    let listed_ok = listed == "refused" || listed == "0";
    let ended_ok = ended == "refused" || ended == "0";
    assert!(
        listed_ok && ended_ok && victim == StatusCode::OK,
        "B's token (sub usr_42) listed {listed} of A's usr_42's sessions, ended {ended} of them; \
         the victim's next request: {victim}"
    );
}

/// Guard. A's back-channel logout of `usr_42` ends A's tokens of `usr_42`, not B's user of the
/// same `sub` (another namespace); and B's logout token is not accepted on A's back-channel
/// route at all.
#[tokio::test]
async fn revocations_stay_with_the_issuer_that_verified() {
    let t = trusted(|b| b).await;
    let app = app(&t.auth);
    let from_a = t.a.access_token(&user());
    let from_b = t.b_token("usr_42", json!(ORDERS));
    assert_eq!(with_bearer(&app, &from_a).await, StatusCode::OK);
    assert_eq!(with_bearer(&app, &from_b).await, StatusCode::OK);
    t.clock.advance(Duration::from_secs(1));
    // B's logout token on A's route: refused, revokes nothing.
    let b_logout = t.b.logout_token(t.b.client_id(), "usr_42", "sid-test");
    let resp = post_logout_token(&app, &b_logout).await;
    assert_ne!(resp.status(), StatusCode::OK, "B's logout token accepted");
    assert_eq!(with_bearer(&app, &from_a).await, StatusCode::OK);
    // A's logout of the same sub.
    let a_logout = t.a.logout_token(t.a.client_id(), "usr_42", "sid-test");
    let resp = post_logout_token(&app, &a_logout).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(with_bearer(&app, &from_a).await, StatusCode::UNAUTHORIZED);
    assert_eq!(with_bearer(&app, &from_b).await, StatusCode::OK);
}

/// Guard. A trusted issuer's ID tokens and logout tokens are no access tokens, even when the
/// issuer is trusted for the very audience they name (its client id); its access token for that
/// audience is accepted (the configuration works).
#[tokio::test]
async fn a_trusted_issuer_s_id_and_logout_tokens_are_not_access_tokens() {
    let clock = ManualClock::starting_now();
    let a = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    let b = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    let auth = a
        .layer_builder(REDIRECT)
        .trust_issuer(Provider::discover(b.issuer()), [b.client_id()])
        .build()
        .await
        .unwrap();
    let app = app(&auth);
    assert_eq!(
        with_bearer(&app, &b.access_token(&user())).await,
        StatusCode::OK
    );
    for (what, token) in [
        ("id token with nonce", b.id_token(&user(), Some("n0nce"))),
        ("id token", b.id_token(&user(), None)),
        (
            "logout token",
            b.logout_token(b.client_id(), "usr_42", "sid-test"),
        ),
    ] {
        assert_eq!(
            with_bearer(&app, &token).await,
            StatusCode::UNAUTHORIZED,
            "{what}"
        );
    }
}

/// Guard. Claims a layer made from a trusted issuer's token are that layer's only: another
/// layer's guard, mounted where its own layer does not run, does not honour them.
#[tokio::test]
async fn a_trusted_issuer_s_claims_do_not_pass_another_layer_s_guard() {
    let t = trusted(|b| b).await;
    let other = t.a.layer_builder(REDIRECT).build().await.unwrap();
    let app = Router::new()
        .route("/me", get(|c: Claims| async move { Json(c) }))
        .route_layer(other.require())
        .layer(t.auth.clone());
    let from_b = t.b_token("usr_42", json!(ORDERS));
    let resp = serve(&app, bearer("/me", &from_b)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

/// Guard. Forged tokens naming B (unknown kids, B's kid with a foreign key) cost B at most one
/// fetch per refetch interval, A none; and A's own key rotation is still picked up at once
/// (each issuer has its own refetch limit).
#[tokio::test]
async fn forged_tokens_at_a_trusted_issuer_neither_flood_it_nor_starve_the_provider() {
    let t = trusted(|b| b).await;
    let app = app(&t.auth);
    t.clock.advance(Duration::from_secs(11));
    let (a0, b0) = (t.a.counts().jwks_fetches, t.b.counts().jwks_fetches);
    let now = t.clock.now();
    let claims = json!({
        "iss": t.b.issuer(), "sub": "x", "aud": ORDERS, "iat": now, "exp": now + 300,
    });
    for i in 0..20 {
        let kid = if i % 2 == 0 {
            format!("random-{i}")
        } else {
            t.b.current_kid()
        };
        let forged = t
            .b
            .sign_with_unpublished_key(&json!({"alg": "RS256", "typ": "JWT", "kid": kid}), &claims);
        assert_eq!(with_bearer(&app, &forged).await, StatusCode::UNAUTHORIZED);
    }
    assert!(
        t.b.counts().jwks_fetches <= b0 + 1,
        "B fetched {} times",
        t.b.counts().jwks_fetches - b0
    );
    assert_eq!(
        t.a.counts().jwks_fetches,
        a0,
        "A was asked for B's forgeries"
    );
    // A rotates: its new key is fetched though B's limit is spent.
    t.a.rotate_keys(false);
    assert_eq!(
        with_bearer(&app, &t.a.access_token(&user())).await,
        StatusCode::OK
    );
}

/// Guard. Odd tokens naming a trusted issuer (duplicate `iss` keys, re-encoded payloads with
/// padding or the standard alphabet, `alg: none`, two or four segments, an empty payload, a
/// non-UTF-8 header, two headers) never get a 500 or a panic, never pass, and cost no key
/// fetch; huge ones with B's own kid cost at most B's one rate-limited refetch.
#[tokio::test]
async fn odd_tokens_naming_a_trusted_issuer_are_refused_without_fetches_or_errors() {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine;
    let t = trusted(|b| b).await;
    let app = app(&t.auth);
    t.clock.advance(Duration::from_secs(11));
    let (a0, b0) = (t.a.counts().jwks_fetches, t.b.counts().jwks_fetches);
    let genuine = t.b_token("usr_b", json!(ORDERS));
    let parts: Vec<&str> = genuine.split('.').collect();
    let payload = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
    let header = parts[0];
    let sig = parts[2];
    let now = t.clock.now();
    let dup = format!(
        r#"{{"iss":"{}","sub":"x","aud":"{ORDERS}","exp":{},"iss":"{}"}}"#,
        t.a.issuer(),
        now + 300,
        t.b.issuer()
    );
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    // Not routable: refused before any key is looked at.
    let unroutable = vec![
        format!("{header}.{}.{sig}", URL_SAFE.encode(&payload)),
        format!("{header}.{}.{sig}", STANDARD.encode(&payload)),
        format!("{header}.{}=.{sig}", parts[1]),
        format!("{header}.{}.{sig}", URL_SAFE_NO_PAD.encode(dup.as_bytes())),
        format!("{none_header}.{}.", parts[1]),
        format!("{header}.{}.{sig}.{sig}", parts[1]),
        format!("{header}..{sig}"),
        "..".to_owned(),
        format!("{header}.{}", parts[1]),
    ];
    for token in &unroutable {
        assert_eq!(
            with_bearer(&app, token).await,
            StatusCode::UNAUTHORIZED,
            "{}",
            &token[..token.len().min(120)]
        );
    }
    assert_eq!(t.a.counts().jwks_fetches, a0, "fetches at A");
    assert_eq!(t.b.counts().jwks_fetches, b0, "fetches at B");
    // B's own kid, a bad (huge) signature or a huge payload: at most the one rate-limited
    // refetch a replaced key may need.
    let routable = [
        format!("{header}.{}.{}", parts[1], "A".repeat(200_000)),
        format!(
            "{header}.{}.{sig}",
            URL_SAFE_NO_PAD.encode(format!(
                r#"{{"iss":"{}","sub":"x","aud":"{ORDERS}","exp":{},"pad":"{}"}}"#,
                t.b.issuer(),
                now + 300,
                "x".repeat(200_000)
            ))
        ),
    ];
    for token in &routable {
        assert_eq!(with_bearer(&app, token).await, StatusCode::UNAUTHORIZED);
    }
    assert!(t.b.counts().jwks_fetches <= b0 + 1, "fetches at B");
    let (a0, b0) = (t.a.counts().jwks_fetches, t.b.counts().jwks_fetches);
    // A non-UTF-8 Authorization header, and two headers.
    let mut req = bearer("/me", &genuine);
    req.headers_mut().insert(
        header::AUTHORIZATION,
        HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
    );
    assert_eq!(serve(&app, req).await.status(), StatusCode::UNAUTHORIZED);
    let mut req = bearer("/me", &genuine);
    req.headers_mut().append(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {genuine}")).unwrap(),
    );
    assert_eq!(serve(&app, req).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(t.a.counts().jwks_fetches, a0, "fetches at A");
    assert_eq!(t.b.counts().jwks_fetches, b0, "fetches at B");
    // The genuine one still passes.
    assert_eq!(with_bearer(&app, &genuine).await, StatusCode::OK);
}

/// FINDING (low). The router's `iss` peek and the verifier read the payload differently:
/// `unverified_issuer` deserializes into a derived struct, which serde also fills from a JSON
/// *array* (`["<issuer>"]` reads as `iss` = the issuer), though its contract is "`Err` for a
/// payload that is not a JSON object". Such a token, which no verifier could ever accept, is
/// routed to the trusted issuer, gets signature work, and spends that issuer's refetch budget
/// (src/verify/checks.rs `unverified_issuer`).
#[tokio::test]
async fn a_payload_that_is_not_a_json_object_is_not_routed_to_an_issuer() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let t = trusted(|b| b).await;
    let app = app(&t.auth);
    t.clock.advance(Duration::from_secs(11));
    let b0 = t.b.counts().jwks_fetches;
    let genuine = t.b_token("usr_b", json!(ORDERS));
    let parts: Vec<&str> = genuine.split('.').collect();
    let array = URL_SAFE_NO_PAD.encode(format!(r#"["{}"]"#, t.b.issuer()));
    let token = format!("{}.{array}.{}", parts[0], parts[2]);
    assert_eq!(with_bearer(&app, &token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        t.b.counts().jwks_fetches,
        b0,
        "a token whose payload is an array was routed to B and made it fetch its keys"
    );
}

/// Guard. Explained refusals of a token of an unknown issuer, or of a trusted issuer for the
/// wrong audience, do not name the configured issuers or audiences.
#[tokio::test]
async fn explained_refusals_do_not_disclose_the_trusted_issuers() {
    let t = trusted(|b| b.explain_refusals(true)).await;
    let app = Router::new()
        .route("/me", get(|c: Claims| async move { Json(c) }))
        .route_layer(t.auth.require())
        .layer(t.auth.clone());
    let now = t.clock.now();
    for token in [
        t.b.sign(
            &json!({"iss": "https://evil.example", "sub": "x", "aud": ORDERS, "exp": now + 300}),
        ),
        t.b_token("x", json!("api://other")),
    ] {
        let resp = serve(&app, bearer("/me", &token)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let headers = format!("{:?}", resp.headers());
        let body = body_string(resp).await;
        for secret in [t.b.issuer(), t.a.issuer(), ORDERS, t.a.client_id()] {
            assert!(!headers.contains(secret), "{secret} in {headers}");
            assert!(!body.contains(secret), "{secret} in {body}");
        }
    }
}

// ---- protected-resource mode ----------------------------------------------------------------

/// FINDING. "Every 401 carries `WWW-Authenticate: Bearer realm="OAuth",
/// resource_metadata=..."`": the step-up guards (`require_acr`, `require_recent_login`) answer
/// a bearer token in resource mode with RFC 9470's challenge alone, so an MCP client refused for
/// a weak sign-in is not told where the resource's metadata is (`ResourceResponses::step_up`
/// adds no challenge).
#[tokio::test]
async fn a_step_up_refusal_in_resource_mode_names_the_resource_metadata() {
    let (provider, clock, auth) = resource_layer(|b| b).await;
    let app = Router::new()
        .route("/mcp/acr", post(|c: Claims| async move { Json(c) }))
        .route_layer(auth.require_acr("mfa"))
        .route(
            "/mcp/recent",
            post(|c: Claims| async move { Json(c) })
                .route_layer(auth.require_recent_login(Duration::from_secs(60))),
        )
        .layer(auth.clone());
    let token = token_for(&provider, &clock, json!(RESOURCE));
    for path in ["/mcp/acr", "/mcp/recent"] {
        let resp = serve(&app, post_bearer(path, &token)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
        let challenge = www_authenticate(&resp);
        assert!(
            challenge.contains(&format!("resource_metadata=\"{METADATA_URL}\"")),
            "{path}: {challenge}"
        );
    }
}

/// FINDING. "No cookies are set, browsers get 401, never a redirect": a resource-mode layer
/// still hands out `attempt_silent_login()`, which redirects a browser navigation to the login
/// route (which this mode does not serve) and sets its "tried" cookie (`silent::attempt` does not
/// look at resource mode).
#[tokio::test]
async fn silent_login_in_resource_mode_neither_redirects_nor_sets_cookies() {
    let (_provider, _clock, auth) = resource_layer(|b| b).await;
    let app = Router::new()
        .route(
            "/public",
            get(|c: Option<Claims>| async move { format!("{}", c.is_some()) }),
        )
        .route_layer(auth.attempt_silent_login())
        .layer(auth.clone());
    let req = Request::get("/public")
        .header(header::ACCEPT, "text/html")
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-dest", "document")
        .body(Body::empty())
        .unwrap();
    let resp = serve(&app, req).await;
    assert!(
        !resp.status().is_redirection(),
        "redirected to {:?}",
        resp.headers().get(header::LOCATION)
    );
    assert!(
        resp.headers().get(header::SET_COOKIE).is_none(),
        "set {:?}",
        resp.headers().get(header::SET_COOKIE)
    );
}

/// FINDING (low). A resource server without trusted issuers still does signature work, and a
/// JWKS refetch at its provider, for a token of a foreign issuer naming an unknown key: the
/// "unknown `iss` refused before any signature work, no network call" routing
/// (`Shared::bearer_verifier`) is skipped when no issuer is trusted, and the layer's own
/// verifier checks `iss` only after the signature. Anyone can spend the provider refetch
/// budget (one per interval) with tokens that could never be accepted.
#[tokio::test]
async fn a_foreign_issuer_costs_a_resource_server_no_key_fetch() {
    let (provider, clock, auth) = resource_layer(|b| b).await;
    let app = resource_app(&auth);
    clock.advance(Duration::from_secs(11));
    let before = provider.counts().jwks_fetches;
    let now = clock.now();
    let forged = provider.sign_with_unpublished_key(
        &json!({"alg": "RS256", "typ": "JWT", "kid": "evil-1"}),
        &json!({"iss": "https://evil.example", "sub": "x", "aud": RESOURCE,
                "iat": now, "exp": now + 300}),
    );
    let resp = serve(&app, post_bearer("/mcp", &forged)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        provider.counts().jwks_fetches,
        before,
        "a token of a foreign issuer made the layer fetch its provider's keys"
    );
}

/// Guard. Audience confusion in resource mode: only `aud` naming the resource exactly (in a
/// string or an array) or a configured `.audience()` passes; not the client id (even when
/// set), not the resource with a trailing slash, another case, a query, as a prefix, the
/// metadata URL or the origin, not `aud` as an object, number, empty array or `[null]`, and
/// not a token without `aud` (user or machine).
#[tokio::test]
async fn only_the_resource_or_a_configured_audience_is_accepted() {
    let (provider, clock, auth) =
        resource_layer(|b| b.client_id("mcp-client").audience("api://extra")).await;
    let app = resource_app(&auth);
    let now = clock.now();
    for aud in [
        json!(RESOURCE),
        json!(["https://other.example", RESOURCE]),
        json!("api://extra"),
    ] {
        let token = token_for(&provider, &clock, aud.clone());
        assert_eq!(
            serve(&app, post_bearer("/mcp", &token)).await.status(),
            StatusCode::OK,
            "{aud}"
        );
    }
    let mut refused: Vec<(String, String)> = [
        json!("mcp-client"),
        json!(["mcp-client"]),
        json!(format!("{RESOURCE}/")),
        json!("HTTP://127.0.0.1:3000/mcp"),
        json!("http://127.0.0.1:3000/MCP"),
        json!(format!("{RESOURCE}?x=1")),
        json!(format!("{RESOURCE}x")),
        json!("http://127.0.0.1:3000"),
        json!("http://127.0.0.1:3000/"),
        json!(METADATA_URL),
        json!({ RESOURCE: true }),
        json!([[RESOURCE]]),
        json!(7),
        json!([]),
        json!([null]),
        json!(null),
    ]
    .into_iter()
    .map(|aud| (aud.to_string(), token_for(&provider, &clock, aud)))
    .collect();
    refused.push((
        "no aud, client_id = client".into(),
        provider.sign(&json!({
            "iss": provider.issuer(), "sub": "x", "client_id": "mcp-client", "exp": now + 300,
        })),
    ));
    refused.push((
        "no aud, client_id = resource".into(),
        provider.sign(&json!({
            "iss": provider.issuer(), "sub": "x", "client_id": RESOURCE, "exp": now + 300,
        })),
    ));
    refused.push((
        "m2m without aud".into(),
        provider.m2m_access_token("m2m_1", "org_1", &["mcp:read"]),
    ));
    refused.push(("id token".into(), provider.id_token(&user(), None)));
    for (what, token) in refused {
        let resp = serve(&app, post_bearer("/mcp", &token)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert!(
            www_authenticate(&resp).contains("error=\"invalid_token\""),
            "{what}: {}",
            www_authenticate(&resp)
        );
    }
}

/// Guard. No session paths in resource mode: a valid back-channel logout token posted to the
/// default route is not processed (the resource's tokens of that `sid` stay good), a cookie
/// session sealed with the same key and client id by a login layer of the same provider is no
/// credential, and claims an outer login layer attached are not honoured.
#[tokio::test]
async fn session_paths_and_cookies_do_not_reach_a_resource_server() {
    let key = tower_oidc_auth::testing::cookie_key(13);
    let key = key.to_vec();
    let clock = ManualClock::starting_now();
    let provider = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    let resource = AuthLayer::builder()
        .provider(Provider::discover(provider.issuer()))
        .clock(clock.clone())
        .client_id(provider.client_id())
        .cookie_key(key.clone())
        .audience(provider.client_id())
        .resource_server(ResourceServer::new(RESOURCE))
        .build()
        .await
        .unwrap();
    let login = provider
        .layer_builder(REDIRECT)
        .cookie_key(key)
        .build()
        .await
        .unwrap();
    let app = resource_app(&resource);
    // The access token names the client id, which `.audience()` makes acceptable here.
    let at = provider.access_token(&user());
    assert_eq!(
        serve(&app, post_bearer("/mcp", &at)).await.status(),
        StatusCode::OK
    );
    clock.advance(Duration::from_secs(1));
    let logout = provider.logout_token(provider.client_id(), "usr_42", "sid-test");
    let resp = serve(&app, logout_token_request(&logout)).await;
    assert_ne!(resp.status(), StatusCode::OK, "back-channel route served");
    assert!(resp.headers().get(header::SET_COOKIE).is_none());
    assert_eq!(
        serve(&app, post_bearer("/mcp", &at)).await.status(),
        StatusCode::OK,
        "a logout token posted to a resource server was processed"
    );
    // A sibling login layer's session cookie, good at that layer.
    let cookie = provider.session_cookie(&login, &user());
    assert_eq!(
        with_cookie(&crate::helpers::app(&login), &cookie).await,
        StatusCode::OK
    );
    let req = Request::post("/mcp")
        .header(header::ACCEPT, "application/json")
        .header(header::COOKIE, cookie.clone())
        .body(Body::from("{}"))
        .unwrap();
    let resp = serve(&app, req).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().get(header::SET_COOKIE).is_none());
    // The login layer outside the resource layer: its claims are not the resource's.
    let nested = Router::new()
        .route("/mcp", post(|c: Claims| async move { Json(c) }))
        .route_layer(resource.require())
        .layer(resource.clone())
        .layer(login.clone());
    let req = Request::post("/mcp")
        .header(header::ACCEPT, "application/json")
        .header(header::COOKIE, cookie)
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(serve(&nested, req).await.status(), StatusCode::UNAUTHORIZED);
}

/// Guard. CORS never allows credentials: not on a preflight asking for cookies from any
/// origin, not on a refusal, not on the app's answer to a signed-in call; and a browser
/// navigation gets 401, not a redirect.
#[tokio::test]
async fn cors_never_allows_credentials_and_browsers_get_401() {
    let (provider, clock, auth) = resource_layer(|b| b).await;
    let app = resource_app(&auth);
    let req = Request::builder()
        .method(Method::OPTIONS)
        .uri("/mcp")
        .header(header::ORIGIN, "https://evil.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "cookie, authorization",
        )
        .body(Body::empty())
        .unwrap();
    let resp = serve(&app, req).await;
    assert!(resp
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
        .is_none());
    assert_eq!(resp.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    let token = token_for(&provider, &clock, json!(RESOURCE));
    let mut ok = post_bearer("/mcp", &token);
    ok.headers_mut()
        .insert(header::ORIGIN, "https://evil.example".parse().unwrap());
    let resp = serve(&app, ok).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
        .is_none());
    let nav = Request::post("/mcp")
        .header(header::ACCEPT, "text/html")
        .header(header::ORIGIN, "https://evil.example")
        .body(Body::empty())
        .unwrap();
    let resp = serve(&app, nav).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().get(header::LOCATION).is_none());
    assert!(resp
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
        .is_none());
    assert!(www_authenticate(&resp).contains(METADATA_URL));
}

/// Guard. Scopes a guard names that cannot be written as an RFC 6749 scope-token (quotes,
/// backslashes, spaces, commas with a second parameter, CR/LF) never break or extend the
/// `insufficient_scope` challenge: it stays one well-formed challenge with a single `error`.
#[tokio::test]
async fn scope_names_cannot_inject_into_the_insufficient_scope_challenge() {
    let (provider, clock, auth) = resource_layer(|b| b).await;
    let scopes = [
        "x\", error=\"evil",
        "x\\",
        "a b",
        "x,error=evil",
        "x\r\nSet-Cookie: a=b",
        "ü",
    ];
    let mut router = Router::new();
    for (i, scope) in scopes.iter().enumerate() {
        let scope = (*scope).to_owned();
        router = router.route(
            &format!("/g{i}"),
            post(|c: Claims| async move { Json(c) }).route_layer(auth.require_scope(scope.clone())),
        );
        router = router.route(
            &format!("/h{i}"),
            post(move |c: Claims| {
                let scope = scope.clone();
                async move {
                    c.require_scope(&scope)?;
                    Ok::<_, tower_oidc_auth::Forbidden>("ok")
                }
            }),
        );
    }
    let app = router.layer(auth.clone());
    let token = token_for(&provider, &clock, json!(RESOURCE));
    for (i, _) in scopes.iter().enumerate() {
        for path in [format!("/g{i}"), format!("/h{i}")] {
            let resp = serve(&app, post_bearer(&path, &token)).await;
            assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path}");
            assert!(resp.headers().get(header::SET_COOKIE).is_none());
            let values: Vec<_> = resp
                .headers()
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .collect();
            assert_eq!(values.len(), 1, "{path}: {values:?}");
            let v = values[0].to_str().unwrap();
            let params = parse_challenge(v);
            let names: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
            assert!(
                names
                    .iter()
                    .all(|n| ["realm", "error", "scope", "resource_metadata"].contains(n)),
                "{path}: {v}"
            );
            assert_eq!(names.iter().filter(|n| **n == "error").count(), 1, "{v}");
            let get = |name: &str| {
                params
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            };
            assert_eq!(get("error"), Some("insufficient_scope"), "{v}");
            assert_eq!(get("resource_metadata"), Some(METADATA_URL), "{v}");
            if let Some(scope) = get("scope") {
                assert_eq!(scope, scopes[i], "{v}");
            }
        }
    }
}

/// The auth-params of a `Bearer` challenge (RFC 6750 section 3), parsed strictly: a
/// malformed challenge fails the test.
fn parse_challenge(value: &str) -> Vec<(String, String)> {
    let rest = value.strip_prefix("Bearer ").expect("scheme Bearer");
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad param name {name:?} in {value}"
        );
        assert_eq!(chars.next(), Some('"'), "unquoted value in {value}");
        let mut v = String::new();
        loop {
            match chars.next().expect("unterminated quoted string") {
                '"' => break,
                '\\' => v.push(chars.next().unwrap()),
                c => v.push(c),
            }
        }
        params.push((name, v));
        match chars.next() {
            None => break,
            Some(',') => assert_eq!(chars.next(), Some(' '), "{value}"),
            Some(c) => panic!("unexpected {c:?} in {value}"),
        }
    }
    params
}

/// Guard. The metadata path is matched exactly and only serves the document: a POST is not
/// passed to the app with claims, odd spellings are not the document, and the document sets
/// no cookie.
#[tokio::test]
async fn the_metadata_path_serves_only_the_document() {
    let (provider, clock, auth) = resource_layer(|b| b).await;
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let hits = seen.clone();
    let app = Router::new()
        .fallback(move |c: Option<Claims>| {
            let hits = hits.clone();
            async move {
                hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                (StatusCode::IM_A_TEAPOT, format!("{}", c.is_some()))
            }
        })
        .layer(auth.clone());
    let token = token_for(&provider, &clock, json!(RESOURCE));
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let resp = serve(&app, post_bearer(path, &token)).await;
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        let resp = serve(
            &app,
            Request::get(format!("{path}?x=1"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert!(resp.headers().get(header::SET_COOKIE).is_none());
        let doc: Value = serde_json::from_str(&body_string(resp).await).unwrap();
        assert_eq!(doc["resource"], RESOURCE);
    }
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 0);
    // Other spellings reach the app, anonymous without a token.
    for path in [
        "/.well-known/oauth-protected-resource/mcp/",
        "/.well-known/oauth-protected-resource%2Fmcp",
        "/.well-known/OAUTH-protected-resource/mcp",
    ] {
        let resp = serve(&app, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(resp.status(), StatusCode::IM_A_TEAPOT, "{path}");
        assert_eq!(body_string(resp).await, "false", "{path}");
    }
}

/// Guard. A token in the query string (RFC 6750 section 2.3) or a form body is not a
/// credential: the metadata says `bearer_methods_supported: ["header"]`.
#[tokio::test]
async fn only_the_authorization_header_carries_a_token() {
    let (provider, clock, auth) = resource_layer(|b| b).await;
    let app = resource_app(&auth);
    let token = token_for(&provider, &clock, json!(RESOURCE));
    let req = Request::post(format!("/mcp?access_token={token}"))
        .header(header::ACCEPT, "application/json")
        .body(Body::empty())
        .unwrap();
    assert_eq!(serve(&app, req).await.status(), StatusCode::UNAUTHORIZED);
    let req = Request::post("/mcp")
        .header(header::ACCEPT, "application/json")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("access_token={token}")))
        .unwrap();
    assert_eq!(serve(&app, req).await.status(), StatusCode::UNAUTHORIZED);
    let resp = serve(
        &app,
        Request::get(format!("/public?access_token={token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(body_string(resp).await, "false");
}

/// Guard. Resource mode plus a trusted issuer: the trusted issuer's tokens need its own
/// audiences (not the resource's client id, not nothing), the primary's need the resource, and
/// neither is accepted for the other's audience.
#[tokio::test]
async fn resource_mode_with_a_trusted_issuer_keeps_audiences_apart() {
    let clock = ManualClock::starting_now();
    let a = TestProvider::builder().clock(clock.clone()).start().await;
    let b = TestProvider::builder().clock(clock.clone()).start().await;
    let auth = AuthLayer::builder()
        .provider(Provider::discover(a.issuer()))
        .clock(clock.clone())
        .resource_server(ResourceServer::new(RESOURCE))
        .trust_issuer(Provider::discover(b.issuer()), [ORDERS])
        .build()
        .await
        .unwrap();
    let app = resource_app(&auth);
    let ok = [
        token_for(&a, &clock, json!(RESOURCE)),
        token_for(&b, &clock, json!(ORDERS)),
    ];
    for t in ok {
        assert_eq!(
            serve(&app, post_bearer("/mcp", &t)).await.status(),
            StatusCode::OK
        );
    }
    let now = clock.now();
    let refused = [
        token_for(&a, &clock, json!(ORDERS)),
        token_for(&b, &clock, json!(RESOURCE)),
        token_for(&b, &clock, json!(b.client_id())),
        b.sign(&json!({"iss": b.issuer(), "sub": "x", "client_id": ORDERS, "exp": now + 300})),
        b.m2m_access_token("m2m_1", "org_1", &["x"]),
        // A's key under B's issuer and vice versa.
        a.sign(&json!({"iss": b.issuer(), "sub": "x", "aud": ORDERS, "exp": now + 300})),
        b.sign(&json!({"iss": a.issuer(), "sub": "x", "aud": RESOURCE, "exp": now + 300})),
    ];
    for (i, t) in refused.iter().enumerate() {
        let resp = serve(&app, post_bearer("/mcp", t)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "#{i}");
        assert!(www_authenticate(&resp).contains(METADATA_URL), "#{i}");
    }
}

/// FINDING (low). In resource mode the `AppData<T>` extractor rejects a bearer request (whose
/// claims have no app data) through `DefaultResponses`, without the layer's context
/// (`attach` in src/service.rs inserts no `AuthContext` beside bearer claims; src/extract.rs
/// `unauthenticated` then uses the defaults): a browser is redirected to `/auth/login`, which
/// this mode does not serve, and an API client gets a bare `Bearer` challenge that the resource
/// keeps (`ResourceSettings::app_answer` adds its own only when none is set), without
/// `resource_metadata`.
#[tokio::test]
async fn an_extractor_s_refusal_in_resource_mode_is_a_resource_401() {
    let (provider, clock, auth) = resource_layer(|b| b).await;
    let app =
        Router::new()
            .route(
                "/mcp/data",
                get(
                    |tower_oidc_auth::extract::AppData(v): tower_oidc_auth::extract::AppData<
                        Value,
                    >| async move { Json(v) },
                ),
            )
            .layer(auth.clone());
    let token = token_for(&provider, &clock, json!(RESOURCE));
    let mut wrong = Vec::new();
    for accept in ["text/html", "application/json"] {
        let req = Request::get("/mcp/data")
            .header(header::ACCEPT, accept)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let resp = serve(&app, req).await;
        let challenge = www_authenticate(&resp);
        if resp.status() != StatusCode::UNAUTHORIZED
            || !challenge.contains(&format!("resource_metadata=\"{METADATA_URL}\""))
        {
            wrong.push(format!(
                "{accept}: {} location {:?} challenge {challenge:?}",
                resp.status(),
                resp.headers().get(header::LOCATION)
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Guard. The asynchronous path (a token whose key must be fetched) ends the same way as the
/// synchronous one: a refused token gets the resource's `invalid_token` challenge and CORS, a
/// rotated key's token is accepted, and the app's own 401 after it gets the challenge.
#[tokio::test]
async fn the_key_fetching_path_answers_like_the_direct_one() {
    let (provider, clock, auth) = resource_layer(|b| b).await;
    let app = Router::new()
        .route("/mcp", post(|c: Claims| async move { Json(c) }))
        .route_layer(auth.require())
        .route(
            "/mcp/app401",
            post(|_: Claims| async { StatusCode::UNAUTHORIZED }),
        )
        .layer(auth.clone());
    clock.advance(Duration::from_secs(11));
    let now = clock.now();
    let forged = provider.sign_with_unpublished_key(
        &json!({"alg": "RS256", "typ": "JWT", "kid": "not-published"}),
        &json!({"iss": provider.issuer(), "sub": "x", "aud": RESOURCE, "exp": now + 300}),
    );
    let resp = serve(&app, post_bearer("/mcp", &forged)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = www_authenticate(&resp);
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains(METADATA_URL), "{challenge}");
    assert_eq!(resp.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    clock.advance(Duration::from_secs(11));
    provider.rotate_keys(false);
    let token = token_for(&provider, &clock, json!(RESOURCE));
    let resp = serve(&app, post_bearer("/mcp/app401", &token)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(www_authenticate(&resp).contains(METADATA_URL));
    assert_eq!(resp.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert_eq!(
        serve(&app, post_bearer("/mcp", &token)).await.status(),
        StatusCode::OK
    );
}

/// FINDING. `ManagementClient::current_user(&claims)` (and `user_organizations`) fetch
/// `GET /users/{sub}` of the client's own environment whatever issuer verified the claims
/// (src/management/client.rs `current_user` reads `claims.sub` only): a token of a trusted
/// issuer B naming a `usr_...` id of the environment gets that user's record, memberships,
/// roles and permissions, which an app then acts on as the signed-in user's. `Claims::issuer()`
/// says B; the call should refuse claims its environment did not issue. (The fake API's URL
/// stands for environment A; B's claims must not be resolved there. A custom domain of the same
/// environment, trusted as an issuer, is the case a fix must name explicitly.)
#[tokio::test]
async fn the_management_client_does_not_resolve_a_trusted_issuer_s_sub_in_its_own_environment() {
    use tower_oidc_auth::management::{ClientCredentials, ManagementClient};
    // A minimal Management API of environment A: a token, and `GET /api/v1/users/{id}`.
    let api = Router::new()
        .route(
            "/oauth/token",
            post(|| async {
                Json(json!({"access_token": "tok", "token_type": "Bearer", "expires_in": 3600}))
            }),
        )
        .route(
            "/api/v1/users/{id}",
            get(
                |axum::extract::Path(id): axum::extract::Path<String>| async move {
                    Json(json!({"user": {
                        "id": id, "email": "victim@a.example",
                        "memberships": [{"organization_id": "org_a", "roles": [{"name": "admin"}],
                                         "permissions": ["billing:write"]}],
                    }}))
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, api).await.unwrap() });
    let management =
        ManagementClient::builder(&url, ClientCredentials::scalekit(&url, "skc_app", "s3cret"))
            .build();
    let t = trusted(|b| b).await;
    let app = Router::new()
        .route(
            "/me/organizations",
            get(move |claims: Claims| {
                let m = management.clone();
                async move {
                    match m.user_organizations(&claims).await {
                        Ok(orgs) => format!(
                            "{} as {:?}",
                            claims.issuer(),
                            orgs.iter()
                                .map(|o| o.organization_id.clone())
                                .collect::<Vec<_>>()
                        ),
                        Err(_) => "refused".to_owned(),
                    }
                }
            }),
        )
        .layer(t.auth.clone());
    let from_b = t.b_token("usr_victim", json!(ORDERS));
    let resp = serve(&app, bearer("/me/organizations", &from_b)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = body_string(resp).await;
    assert_eq!(
        body, "refused",
        "B's token was resolved to environment A's user usr_victim: {body}"
    );
}
