//! Store mode (`.session_store(..)`, issue 18): the session cookie holds only a sealed id, the
//! session lives in the store. Sign-in, the cookie's size, the verified-session cache (one load
//! per session), refresh in place, logout and back-channel logout as deletes, a restart, two
//! instances, and a store that fails.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use futures_util::future::BoxFuture;
use http::{header, Request, StatusCode};
use serde_json::json;
use tower::ServiceExt;
use tower_oidc_auth::session_store::{
    MemorySessionStore, SessionId, SessionMeta, SessionRecord, SessionStore, SessionStoreError,
};
use tower_oidc_auth::testing::TestProvider;
use tower_oidc_auth::{AuthLayer, AuthLayerBuilder, Clock, ManualClock, MemoryRevocationStore};

use crate::helpers::*;

/// A memory store that counts loads and can be switched off (every call fails, as a store whose
/// server is down).
#[derive(Clone)]
struct Probe {
    inner: MemorySessionStore,
    loads: Arc<AtomicUsize>,
    saves: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
}

impl Probe {
    fn new(clock: &ManualClock) -> Self {
        Self {
            inner: MemorySessionStore::with_clock(Arc::new(clock.clone())),
            loads: Arc::default(),
            saves: Arc::default(),
            down: Arc::default(),
        }
    }
    fn fail<T: Send + 'static>(&self) -> Option<BoxFuture<'static, Result<T, SessionStoreError>>> {
        self.down
            .load(Ordering::SeqCst)
            .then(|| -> BoxFuture<'static, _> {
                Box::pin(async { Err(SessionStoreError("down".into())) })
            })
    }
}

impl SessionStore for Probe {
    fn load(
        &self,
        id: &SessionId,
    ) -> BoxFuture<'static, Result<Option<SessionRecord>, SessionStoreError>> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.fail().unwrap_or_else(|| self.inner.load(id))
    }
    fn save(
        &self,
        id: &SessionId,
        record: SessionRecord,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), SessionStoreError>> {
        self.saves.fetch_add(1, Ordering::SeqCst);
        self.fail()
            .unwrap_or_else(|| self.inner.save(id, record, ttl))
    }
    fn delete(&self, id: &SessionId) -> BoxFuture<'static, Result<bool, SessionStoreError>> {
        self.fail().unwrap_or_else(|| self.inner.delete(id))
    }
    fn delete_by_sid(&self, sid: &str) -> BoxFuture<'static, Result<usize, SessionStoreError>> {
        self.fail().unwrap_or_else(|| self.inner.delete_by_sid(sid))
    }
    fn delete_by_sub(&self, sub: &str) -> BoxFuture<'static, Result<usize, SessionStoreError>> {
        self.fail().unwrap_or_else(|| self.inner.delete_by_sub(sub))
    }
    fn list_by_sub(
        &self,
        sub: &str,
    ) -> BoxFuture<'static, Result<Vec<(SessionId, SessionMeta)>, SessionStoreError>> {
        self.fail().unwrap_or_else(|| self.inner.list_by_sub(sub))
    }
    fn available(&self) -> bool {
        !self.down.load(Ordering::SeqCst)
    }
    fn revocation_store(&self) -> Option<Arc<dyn tower_oidc_auth::RevocationStore>> {
        self.inner.revocation_store()
    }
}

async fn store_setup() -> (Setup, Probe) {
    store_setup_with(|b| b).await
}

async fn store_setup_with(
    tweak: impl FnOnce(AuthLayerBuilder) -> AuthLayerBuilder,
) -> (Setup, Probe) {
    let clock = ManualClock::starting_now();
    let probe = Probe::new(&clock);
    let provider = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    let auth = tweak(builder(&provider, &clock).session_store(probe.clone()))
        .build()
        .await
        .expect("build");
    let s = Setup {
        app: app(&auth),
        auth,
        provider,
        clock,
    };
    (s, probe)
}

async fn another_instance(s: &Setup, probe: &Probe) -> (AuthLayer, axum::Router) {
    let auth = builder(&s.provider, &s.clock)
        .session_store(probe.clone())
        .build()
        .await
        .unwrap();
    let app = app(&auth);
    (auth, app)
}

/// A layer builder on `provider` whose cookie key is the same for every instance (the test
/// provider's own builder makes a random key each time).
fn builder(provider: &TestProvider, clock: &ManualClock) -> AuthLayerBuilder {
    AuthLayerBuilder::new()
        .provider(tower_oidc_auth::Provider::scalekit(provider.issuer()))
        .client_id(provider.client_id())
        .client_secret(provider.client_secret())
        .redirect_url(REDIRECT)
        .cookie_key(tower_oidc_auth::testing::cookie_key(18))
        .clock(clock.clone())
}

fn sub_index(s: &Setup) -> String {
    format!(
        "{}|{}|usr_42",
        s.auth.session_cookie_name(),
        s.provider.issuer()
    )
}

async fn records(s: &Setup, probe: &Probe) -> usize {
    probe.inner.list_by_sub(&sub_index(s)).await.unwrap().len()
}

#[tokio::test]
async fn sign_in_keeps_the_session_in_the_store_and_a_small_cookie_in_the_browser() {
    let (s, probe) = store_setup().await;
    let mut jar = Jar::default();
    let resp = login(&s, &mut jar, "/auth/login?return_to=%2Fme").await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(location(&resp), "/me");
    // The browser keeps one small cookie: no tokens, no chunks, no ID-token cookie.
    let kept: Vec<_> = set_cookies(&resp)
        .iter()
        .filter(|c| !c.value().is_empty())
        .map(|c| format!("{}={}", c.name(), c.value()))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let total: usize = kept.iter().map(String::len).sum();
    assert!(total < 200, "{total} bytes: {kept:?}");
    assert_eq!(records(&s, &probe).await, 1);
    // Signed in, with the session's claims and its access token.
    let resp = send(&s.app, &mut jar, get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let claims: serde_json::Value = serde_json::from_str(&body_string(resp).await).unwrap();
    assert_eq!(claims["sub"], "usr_42");
    assert_eq!(claims["email"], "ada@example.com");
}

#[tokio::test]
async fn a_signed_in_request_loads_the_record_once_per_instance() {
    let (s, probe) = store_setup().await;
    let mut jar = Jar::default();
    login(&s, &mut jar, "/auth/login").await;
    let before = probe.loads.load(Ordering::SeqCst);
    for _ in 0..20 {
        assert_eq!(me(&s, &mut jar).await, StatusCode::OK);
    }
    assert_eq!(probe.loads.load(Ordering::SeqCst) - before, 1);
    // Many distinct sessions: one load each.
    let mut jars = Vec::new();
    for _ in 0..10 {
        let mut jar = Jar::default();
        login(&s, &mut jar, "/auth/login").await;
        jars.push(jar);
    }
    let before = probe.loads.load(Ordering::SeqCst);
    for _ in 0..3 {
        for jar in &mut jars {
            assert_eq!(me(&s, jar).await, StatusCode::OK);
        }
    }
    assert_eq!(probe.loads.load(Ordering::SeqCst) - before, 10);
}

#[tokio::test]
async fn the_access_token_is_handed_to_handlers_in_store_mode() {
    let (s, _probe) = store_setup().await;
    let app = axum::Router::new()
        .route(
            "/token",
            axum::routing::get(
                |t: tower_oidc_auth::AccessToken| async move { t.as_str().to_owned() },
            ),
        )
        .layer(s.auth.clone());
    let mut jar = Jar::default();
    login(&s, &mut jar, "/auth/login").await;
    for _ in 0..2 {
        let resp = send(&app, &mut jar, get_json("/token")).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let token = body_string(resp).await;
        assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    }
}

#[tokio::test]
async fn refresh_replaces_the_record_in_place_and_keeps_the_cookie() {
    let (s, probe) = store_setup().await;
    let mut jar = Jar::default();
    login(&s, &mut jar, "/auth/login").await;
    let jti = body_string(send(&s.app, &mut jar, get_json("/jti")).await).await;
    let saves = probe.saves.load(Ordering::SeqCst);
    s.clock.advance(Duration::from_secs(3600));
    let resp = send(&s.app, &mut jar, get_json("/jti")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers().get(header::SET_COOKIE).is_none(),
        "the cookie stays: {:?}",
        resp.headers()
    );
    let refreshed = body_string(resp).await;
    assert!(!refreshed.is_empty() && refreshed != jti, "new token");
    assert_eq!(probe.saves.load(Ordering::SeqCst) - saves, 1, "one save");
    assert_eq!(records(&s, &probe).await, 1);
    // Another instance (empty cache) loads the refreshed session: no second refresh.
    let (_auth, other) = another_instance(&s, &probe).await;
    let resp = send(&other, &mut jar, get_json("/jti")).await;
    assert_eq!(body_string(resp).await, refreshed);
    assert_eq!(probe.saves.load(Ordering::SeqCst) - saves, 1);
}

#[tokio::test]
async fn logout_deletes_the_record_and_the_old_cookie_is_worthless() {
    let (s, probe) = store_setup().await;
    let mut jar = Jar::default();
    login(&s, &mut jar, "/auth/login").await;
    let stolen = jar.header_for("/me");
    assert_eq!(me(&s, &mut jar).await, StatusCode::OK);
    let resp = send(&s.app, &mut jar, logout_post()).await;
    assert!(resp.status().is_redirection(), "{}", resp.status());
    assert_eq!(records(&s, &probe).await, 0);
    // The cookie copied before the logout, on this instance and on a fresh one.
    assert_eq!(status(&s.app, &stolen).await, StatusCode::UNAUTHORIZED);
    let (_auth, other) = another_instance(&s, &probe).await;
    assert_eq!(status(&other, &stolen).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_logout_on_one_instance_ends_the_session_on_the_other() {
    let clock = ManualClock::starting_now();
    let probe = Probe::new(&clock);
    let revocations = MemoryRevocationStore::new().clock(clock.clone());
    let provider = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    let build = || {
        builder(&provider, &clock)
            .session_store(probe.clone())
            .revocation_store(revocations.clone())
            .build()
    };
    let a = build().await.unwrap();
    let b = build().await.unwrap();
    let s = Setup {
        app: app(&a),
        auth: a,
        provider,
        clock,
    };
    let app_b = app(&b);
    let mut jar = Jar::default();
    login(&s, &mut jar, "/auth/login").await;
    let cookie = jar.header_for("/me");
    // Both instances know the session (and remember it).
    assert_eq!(status(&s.app, &cookie).await, StatusCode::OK);
    assert_eq!(status(&app_b, &cookie).await, StatusCode::OK);
    send(&s.app, &mut jar, logout_post()).await;
    assert_eq!(status(&app_b, &cookie).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_session_survives_a_restart() {
    let (s, probe) = store_setup().await;
    let mut jar = Jar::default();
    login(&s, &mut jar, "/auth/login").await;
    let cookie = jar.header_for("/me");
    drop(s.auth.clone());
    let (_auth, restarted) = another_instance(&s, &probe).await;
    assert_eq!(status(&restarted, &cookie).await, StatusCode::OK);
}

#[tokio::test]
async fn back_channel_logout_deletes_the_records_of_the_sid() {
    let (s, probe) = store_setup().await;
    let (mut jar, sid) = session_with_sid(&s).await;
    assert_eq!(records(&s, &probe).await, 1);
    let now = s.clock.now();
    let token = s.provider.sign_with_header(
        &json!({"alg": "RS256", "typ": "logout+jwt", "kid": s.provider.current_kid()}),
        &json!({
            "iss": s.provider.issuer(), "aud": "test-client", "iat": now, "jti": "jti-store-1",
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}}, "sid": sid,
        }),
    );
    let resp = post_logout_token(&s.app, &token).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(records(&s, &probe).await, 0);
    assert_eq!(me(&s, &mut jar).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_store_that_fails_gives_503_then_the_session_comes_back() {
    let (s, probe) = store_setup().await;
    let mut jar = Jar::default();
    login(&s, &mut jar, "/auth/login").await;
    let cookie = jar.header_for("/me");
    assert_eq!(status(&s.app, &cookie).await, StatusCode::OK);
    probe.down.store(true, Ordering::SeqCst);
    // The instance that remembers the session does not serve it from memory: it could have
    // missed its deletion.
    let resp = call(&s.app, "/me", &cookie).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key(header::RETRY_AFTER));
    // An instance that has not seen the session yet must ask the store.
    let (_auth, other) = another_instance(&s, &probe).await;
    let resp = call(&other, "/me", &cookie).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key(header::RETRY_AFTER));
    assert!(
        resp.headers().get(header::SET_COOKIE).is_none(),
        "the session is not cleared"
    );
    // Public routes keep working.
    let resp = call(&other, "/", "").await;
    assert_eq!(resp.status(), StatusCode::OK);
    // A sign-in cannot be saved: 503, and no cookie that points nowhere.
    let mut fresh = Jar::default();
    let resp = login(&s, &mut fresh, "/auth/login").await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        fresh.header_for("/me").is_empty(),
        "{}",
        fresh.header_for("/me")
    );
    probe.down.store(false, Ordering::SeqCst);
    assert_eq!(status(&other, &cookie).await, StatusCode::OK);
}

#[tokio::test]
async fn a_store_reference_means_nothing_to_a_layer_without_a_store() {
    let (s, _probe) = store_setup().await;
    let mut jar = Jar::default();
    login(&s, &mut jar, "/auth/login").await;
    let cookie = jar.header_for("/me");
    let cookie_mode = builder(&s.provider, &s.clock).build().await.unwrap();
    let resp = call(&app(&cookie_mode), "/me", &cookie).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

/// A cookie-mode session (sealed before the app moved to a store) keeps working in store mode
/// until it ends.
#[tokio::test]
async fn a_cookie_session_keeps_working_after_moving_to_a_store() {
    let (mut s, probe) = store_setup().await;
    let cookie_mode = builder(&s.provider, &s.clock).build().await.unwrap();
    s.app = app(&cookie_mode);
    let mut jar = Jar::default();
    login(&s, &mut jar, "/auth/login").await;
    let cookie = jar.header_for("/me");
    assert!(
        cookie.len() > 500,
        "a cookie-mode session: {}",
        cookie.len()
    );
    let (_auth, stored) = another_instance(&s, &probe).await;
    assert_eq!(status(&stored, &cookie).await, StatusCode::OK);
}

/// Reading `/me` as JSON with a cookie, without following anything.
async fn status_json(app: &axum::Router, cookie: &str) -> StatusCode {
    let req = Request::get("/me")
        .header(header::ACCEPT, "application/json")
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap();
    app.clone().oneshot(req).await.unwrap().status()
}

#[tokio::test]
async fn an_idle_timeout_is_recorded_in_the_store() {
    let (s, probe) = store_setup_with(|b| b.session_idle_timeout(Duration::from_secs(600))).await;
    let mut jar = Jar::default();
    login(&s, &mut jar, "/auth/login").await;
    let cookie = jar.header_for("/me");
    let saves = probe.saves.load(Ordering::SeqCst);
    // Used every 5 minutes: stays signed in past the idle timeout, and records its use.
    for _ in 0..4 {
        s.clock.advance(Duration::from_secs(300));
        assert_eq!(status_json(&s.app, &cookie).await, StatusCode::OK);
    }
    assert!(probe.saves.load(Ordering::SeqCst) > saves);
    // Left alone for longer than the timeout: over, on this instance and on another one
    // (which has only the record to go by).
    s.clock.advance(Duration::from_secs(601));
    let other = builder(&s.provider, &s.clock)
        .session_idle_timeout(Duration::from_secs(600))
        .session_store(probe.clone())
        .build()
        .await
        .unwrap();
    assert_eq!(
        status_json(&app(&other), &cookie).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status_json(&s.app, &cookie).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        records(&s, &probe).await,
        0,
        "an ended session's record is deleted"
    );
}

/// "Your sessions": the user's sessions listed with the current one marked, one ended by its
/// handle, the others ended at once; another user's handle ends nothing.
#[tokio::test]
async fn your_sessions_are_listed_and_ended() {
    let (s, probe) = store_setup().await;
    let auth = s.auth.clone();
    let list = {
        let auth = auth.clone();
        axum::Router::new()
            .route(
                "/sessions",
                axum::routing::get(move |c: tower_oidc_auth::Claims| {
                    let auth = auth.clone();
                    async move { axum::Json(auth.sessions_of(&c).await.unwrap()) }
                }),
            )
            .layer(s.auth.clone())
    };
    let mut devices = Vec::new();
    for agent in ["Firefox", "Safari", "Curl"] {
        // A minute apart: listed oldest first.
        s.clock.advance(Duration::from_secs(60));
        let mut jar = Jar::default();
        let resp = send(
            &s.app,
            &mut jar,
            Request::get("/auth/login")
                .header(header::ACCEPT, "text/html")
                .header(header::USER_AGENT, agent)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        let callback = authorize(&location(&resp)).await;
        let req = Request::get(&callback)
            .header(header::ACCEPT, "text/html")
            .header(header::USER_AGENT, agent)
            .body(Body::empty())
            .unwrap();
        send(&s.app, &mut jar, req).await;
        devices.push(jar);
    }
    let resp = send(&list, &mut devices[0], get_json("/sessions")).await;
    let listed: serde_json::Value = serde_json::from_str(&body_string(resp).await).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 3);
    let agents: Vec<_> = listed
        .iter()
        .map(|i| i["user_agent"].as_str().unwrap())
        .collect();
    assert_eq!(agents, ["Firefox", "Safari", "Curl"]);
    let current: Vec<_> = listed
        .iter()
        .map(|i| i["current"].as_bool().unwrap())
        .collect();
    assert_eq!(current, [true, false, false]);
    // Handles are not ids, and name nothing for another user.
    let handle = listed[1]["handle"].as_str().unwrap().to_owned();
    assert!(handle.len() < 43);
    // The claims of the first device end the second.
    let first = devices[0].header_for("/me");
    let app = {
        let one = auth.clone();
        axum::Router::new()
            .route(
                "/end/{handle}",
                axum::routing::post(
                    move |c: tower_oidc_auth::Claims,
                          axum::extract::Path(h): axum::extract::Path<String>| {
                        let auth = one.clone();
                        async move { auth.end_session(&c, &h).await.unwrap().to_string() }
                    },
                ),
            )
            .route(
                "/end-others",
                axum::routing::post({
                    let auth = auth.clone();
                    move |c: tower_oidc_auth::Claims| {
                        let auth = auth.clone();
                        async move { auth.end_other_sessions(&c).await.unwrap().to_string() }
                    }
                }),
            )
            .layer(s.auth.clone())
    };
    let post = |uri: &str, cookie: &str| {
        Request::post(uri)
            .header(header::ACCEPT, "application/json")
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .unwrap()
    };
    let resp = app
        .clone()
        .oneshot(post(&format!("/end/{handle}"), &first))
        .await
        .unwrap();
    assert_eq!(body_string(resp).await, "true");
    assert_eq!(me(&s, &mut devices[1]).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&s, &mut devices[2]).await, StatusCode::OK);
    assert_eq!(records(&s, &probe).await, 2);
    // A handle that is not the user's (or made up): nothing ended.
    let resp = app
        .clone()
        .oneshot(post("/end/AAAAAAAAAAAAAAAAAAAAAA", &first))
        .await
        .unwrap();
    assert_eq!(body_string(resp).await, "false");
    // Sign out of the other devices.
    let resp = app
        .clone()
        .oneshot(post("/end-others", &first))
        .await
        .unwrap();
    assert_eq!(body_string(resp).await, "1");
    assert_eq!(me(&s, &mut devices[2]).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&s, &mut devices[0]).await, StatusCode::OK);
    assert_eq!(records(&s, &probe).await, 1);
}

/// Without a store, the sessions API says so instead of pretending there are none.
#[tokio::test]
async fn the_sessions_api_needs_a_store() {
    let s = setup().await;
    let (mut jar, _) = signed_in(&s).await;
    let auth = s.auth.clone();
    let app = axum::Router::new()
        .route(
            "/sessions",
            axum::routing::get(move |c: tower_oidc_auth::Claims| {
                let auth = auth.clone();
                async move { auth.sessions_of(&c).await.is_err().to_string() }
            }),
        )
        .layer(s.auth.clone());
    let resp = send(&app, &mut jar, get_json("/sessions")).await;
    assert_eq!(body_string(resp).await, "true");
}

/// With `session_client_ip`, the IP the app reads from the sign-in request is listed with the
/// session; without it, none is recorded.
#[tokio::test]
async fn the_client_ip_is_recorded_only_when_the_app_opts_in() {
    for opted_in in [true, false] {
        let (s, _probe) = store_setup_with(|b| {
            if opted_in {
                b.session_client_ip(|parts| {
                    parts.headers.get("x-test-ip")?.to_str().ok()?.parse().ok()
                })
            } else {
                b
            }
        })
        .await;
        let mut jar = Jar::default();
        let resp = send(&s.app, &mut jar, get_html("/auth/login")).await;
        let callback = authorize(&location(&resp)).await;
        let req = Request::get(&callback)
            .header(header::ACCEPT, "text/html")
            .header("x-test-ip", "203.0.113.7")
            .body(Body::empty())
            .unwrap();
        send(&s.app, &mut jar, req).await;
        let auth = s.auth.clone();
        let list = axum::Router::new()
            .route(
                "/sessions",
                axum::routing::get(move |c: tower_oidc_auth::Claims| {
                    let auth = auth.clone();
                    async move { axum::Json(auth.sessions_of(&c).await.unwrap()) }
                }),
            )
            .layer(s.auth.clone());
        let resp = send(&list, &mut jar, get_json("/sessions")).await;
        let listed: serde_json::Value = serde_json::from_str(&body_string(resp).await).unwrap();
        let ip = &listed[0]["ip"];
        if opted_in {
            assert_eq!(ip, "203.0.113.7");
        } else {
            assert!(ip.is_null(), "{listed}");
        }
    }
}
