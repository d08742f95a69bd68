//! The store the store-mode attacks can break (`Rig`: down, failing saves, failing quietly,
//! hanging, holding one write at a gate) and their instances (`World`), shared by
//! `attack_store` and `attack_store2`.
#![allow(dead_code, unused_imports)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::future::BoxFuture;
use http::{header, Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tower_oidc_auth::hooks::{LoginDecision, RefreshContext};
use tower_oidc_auth::session_store::{
    MemorySessionStore, SessionId, SessionMeta, SessionRecord, SessionStore, SessionStoreError,
};
use tower_oidc_auth::testing::{Failure, TestProvider, TestUser};
use tower_oidc_auth::{
    AccessToken, AuthLayer, AuthLayerBuilder, Claims, Clock, ManualClock, MemoryRevocationStore,
};

use crate::helpers::*;

// ---- A store the tests can break -------------------------------------------------------------

/// Holds the next `save` (once armed) until released: for races between a save and a delete
/// or another save.
#[derive(Default)]
pub(crate) struct Gate {
    pub(crate) armed: AtomicBool,
    pub(crate) entered: Notify,
    pub(crate) release: Notify,
}

/// A memory store that can be down (every call fails, `available()` false), fail its saves
/// only, fail quietly (every call fails, `available()` still true), hang (no call answers,
/// `available()` true), or hold one save at a gate.
#[derive(Clone)]
pub(crate) struct Rig {
    pub(crate) inner: MemorySessionStore,
    pub(crate) down: Arc<AtomicBool>,
    pub(crate) fail_saves: Arc<AtomicBool>,
    pub(crate) fail_quietly: Arc<AtomicBool>,
    pub(crate) hang: Arc<AtomicBool>,
    pub(crate) gate: Arc<Gate>,
    /// Set: the store shares neither a revocation store nor a refresh coordinator (a store
    /// written without them); clear: it shares its memory store's, as a real one does.
    pub(crate) lone: Arc<AtomicBool>,
}

impl Rig {
    pub(crate) fn new(clock: &ManualClock) -> Self {
        Self {
            inner: MemorySessionStore::with_clock(Arc::new(clock.clone())),
            down: Arc::default(),
            fail_saves: Arc::default(),
            fail_quietly: Arc::default(),
            hang: Arc::default(),
            gate: Arc::default(),
            lone: Arc::default(),
        }
    }

    pub(crate) fn broken<T: Send + 'static>(
        &self,
    ) -> Option<BoxFuture<'static, Result<T, SessionStoreError>>> {
        if self.hang.load(Ordering::SeqCst) {
            return Some(Box::pin(futures_util::future::pending()));
        }
        if self.down.load(Ordering::SeqCst) || self.fail_quietly.load(Ordering::SeqCst) {
            return Some(Box::pin(async { Err(SessionStoreError("down".into())) }));
        }
        None
    }
}

impl SessionStore for Rig {
    fn load(
        &self,
        id: &SessionId,
    ) -> BoxFuture<'static, Result<Option<SessionRecord>, SessionStoreError>> {
        self.broken().unwrap_or_else(|| self.inner.load(id))
    }
    fn save(
        &self,
        id: &SessionId,
        record: SessionRecord,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), SessionStoreError>> {
        if let Some(f) = self.broken() {
            return f;
        }
        if self.fail_saves.load(Ordering::SeqCst) {
            return Box::pin(async { Err(SessionStoreError("save failed".into())) });
        }
        if self.gate.armed.swap(false, Ordering::SeqCst) {
            let gate = self.gate.clone();
            let inner = self.inner.clone();
            let id = id.clone();
            return Box::pin(async move {
                gate.entered.notify_one();
                gate.release.notified().await;
                inner.save(&id, record, ttl).await
            });
        }
        self.inner.save(id, record, ttl)
    }
    /// Like the provided stores, a compare-and-set in one step (the inner store's), held at the
    /// gate like a save.
    fn replace(
        self: Arc<Self>,
        id: SessionId,
        current: SessionRecord,
        record: SessionRecord,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<bool, SessionStoreError>> {
        if let Some(f) = self.broken() {
            return f;
        }
        if self.fail_saves.load(Ordering::SeqCst) {
            return Box::pin(async { Err(SessionStoreError("save failed".into())) });
        }
        let inner = Arc::new(self.inner.clone());
        if self.gate.armed.swap(false, Ordering::SeqCst) {
            let gate = self.gate.clone();
            return Box::pin(async move {
                gate.entered.notify_one();
                gate.release.notified().await;
                inner.replace(id, current, record, ttl).await
            });
        }
        inner.replace(id, current, record, ttl)
    }
    fn list_by_sid(
        &self,
        sid: &str,
    ) -> BoxFuture<'static, Result<Vec<(SessionId, SessionMeta)>, SessionStoreError>> {
        self.broken().unwrap_or_else(|| self.inner.list_by_sid(sid))
    }
    fn delete(&self, id: &SessionId) -> BoxFuture<'static, Result<bool, SessionStoreError>> {
        self.broken().unwrap_or_else(|| self.inner.delete(id))
    }
    fn delete_by_sid(&self, sid: &str) -> BoxFuture<'static, Result<usize, SessionStoreError>> {
        self.broken()
            .unwrap_or_else(|| self.inner.delete_by_sid(sid))
    }
    fn delete_by_sub(&self, sub: &str) -> BoxFuture<'static, Result<usize, SessionStoreError>> {
        self.broken()
            .unwrap_or_else(|| self.inner.delete_by_sub(sub))
    }
    fn list_by_sub(
        &self,
        sub: &str,
    ) -> BoxFuture<'static, Result<Vec<(SessionId, SessionMeta)>, SessionStoreError>> {
        self.broken().unwrap_or_else(|| self.inner.list_by_sub(sub))
    }
    fn available(&self) -> bool {
        !self.down.load(Ordering::SeqCst)
    }
    fn revocation_store(&self) -> Option<Arc<dyn tower_oidc_auth::RevocationStore>> {
        (!self.lone.load(Ordering::SeqCst))
            .then(|| self.inner.revocation_store())
            .flatten()
    }
    fn refresh_coordinator(
        &self,
        grace: Duration,
    ) -> Option<Arc<dyn tower_oidc_auth::refresh::RefreshCoordinator>> {
        (!self.lone.load(Ordering::SeqCst))
            .then(|| self.inner.refresh_coordinator(grace))
            .flatten()
    }
}

// ---- Instances ----------------------------------------------------------------------------------

/// One provider, one clock, one store and one revocation store, shared by every instance.
pub(crate) struct World {
    pub(crate) provider: TestProvider,
    pub(crate) clock: ManualClock,
    pub(crate) store: Rig,
    pub(crate) revocations: MemoryRevocationStore,
    /// App A's session cookie name (the default client's).
    pub(crate) app_a: String,
}

pub(crate) async fn world() -> World {
    world_with(|p| p).await
}

pub(crate) async fn world_with(
    tweak: impl FnOnce(
        tower_oidc_auth::testing::TestProviderBuilder,
    ) -> tower_oidc_auth::testing::TestProviderBuilder,
) -> World {
    let clock = ManualClock::starting_now();
    let provider = tweak(TestProvider::builder().user(user()).clock(clock.clone()))
        .start()
        .await;
    let mut w = World {
        store: Rig::new(&clock),
        revocations: MemoryRevocationStore::new().clock(clock.clone()),
        provider,
        clock,
        app_a: String::new(),
    };
    let probe = w.builder().build().await.expect("build");
    w.app_a = probe.session_cookie_name().to_owned();
    w
}

impl World {
    /// A layer builder whose cookie key is the same for every instance, on the shared store
    /// (no revocation store: each instance has its own, the builder's default).
    pub(crate) fn builder(&self) -> AuthLayerBuilder {
        AuthLayerBuilder::new()
            .provider(tower_oidc_auth::Provider::scalekit(self.provider.issuer()))
            .client_id(self.provider.client_id())
            .client_secret(self.provider.client_secret())
            .redirect_url(REDIRECT)
            .cookie_key(tower_oidc_auth::testing::cookie_key(18))
            .clock(self.clock.clone())
            .session_store(self.store.clone())
    }

    /// An instance sharing the store and the revocation store.
    pub(crate) async fn instance(&self) -> (AuthLayer, Router) {
        self.instance_with(|b| b).await
    }

    pub(crate) async fn instance_with(
        &self,
        tweak: impl FnOnce(AuthLayerBuilder) -> AuthLayerBuilder,
    ) -> (AuthLayer, Router) {
        let auth = tweak(self.builder().revocation_store(self.revocations.clone()))
            .build()
            .await
            .expect("build");
        let router = api(&auth);
        (auth, router)
    }

    /// An instance sharing only the session store, which shares nothing else (the
    /// revocation store and the refresh coordinator are the instance's own).
    pub(crate) async fn instance_sharing_only_the_store(&self) -> (AuthLayer, Router) {
        self.store.lone.store(true, Ordering::SeqCst);
        let auth = self.builder().build().await.expect("build");
        let router = api(&auth);
        (auth, router)
    }

    /// The store's index key of `sub` in app A (index keys are qualified by the app's session
    /// cookie name, then the issuer).
    pub(crate) fn sub_index(&self, sub: &str) -> String {
        self.sub_index_in(&self.app_a, sub)
    }

    pub(crate) fn sub_index_in(&self, app: &str, sub: &str) -> String {
        format!("{app}|{}|{sub}", self.provider.issuer())
    }

    /// Records of the user `usr_42` in the store.
    pub(crate) async fn records(&self) -> usize {
        self.ids("usr_42").await.len()
    }

    pub(crate) async fn ids(&self, sub: &str) -> Vec<SessionId> {
        self.store
            .inner
            .list_by_sub(&self.sub_index(sub))
            .await
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }
}

/// The helpers' app plus an `AccessToken` route and the "your sessions" API.
pub(crate) fn api(auth: &AuthLayer) -> Router {
    let list = auth.clone();
    let one = auth.clone();
    let others = auth.clone();
    Router::new()
        .route("/me", get(|c: Claims| async move { Json(c) }))
        .route(
            "/token",
            get(|t: AccessToken| async move { t.as_str().to_owned() }),
        )
        .route(
            "/sessions",
            get(move |c: Claims| {
                let auth = list.clone();
                async move {
                    match auth.sessions_of(&c).await {
                        Ok(v) => Json(v).into_response(),
                        Err(e) => {
                            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
                        }
                    }
                }
            }),
        )
        .route(
            "/end/{handle}",
            post(
                move |c: Claims, axum::extract::Path(h): axum::extract::Path<String>| {
                    let auth = one.clone();
                    async move {
                        match auth.end_session(&c, &h).await {
                            Ok(b) => b.to_string().into_response(),
                            Err(e) => {
                                (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
                            }
                        }
                    }
                },
            ),
        )
        .route(
            "/end-others",
            post(move |c: Claims| {
                let auth = others.clone();
                async move {
                    match auth.end_other_sessions(&c).await {
                        Ok(n) => n.to_string().into_response(),
                        Err(e) => {
                            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
                        }
                    }
                }
            }),
        )
        .route_layer(auth.require())
        .route(
            "/jti",
            get(|c: Option<Claims>| async move {
                c.and_then(|c| c.get::<String>("jti")).unwrap_or_default()
            }),
        )
        .route("/", get(|| async { "public" }))
        .layer(auth.clone())
}

/// Signs in through the whole flow at `app`; the callback's response.
pub(crate) async fn sign_in(app: &Router, jar: &mut Jar) -> Response<Body> {
    let resp = send(app, jar, get_html("/auth/login")).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let callback = authorize(&location(&resp)).await;
    send(app, jar, get_html(&callback)).await
}

/// Signs in at `app` and returns the session cookie header.
pub(crate) async fn signed_in_at(app: &Router) -> String {
    let mut jar = Jar::default();
    let resp = sign_in(app, &mut jar).await;
    assert_eq!(resp.status(), StatusCode::FOUND, "sign-in");
    let cookie = jar.header_for("/me");
    assert!(!cookie.is_empty());
    cookie
}

pub(crate) fn with_cookie_header(mut req: Request<Body>, cookie: &str) -> Request<Body> {
    req.headers_mut()
        .insert(header::COOKIE, cookie.parse().unwrap());
    req
}

pub(crate) fn post_with(uri: &str, cookie: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::ACCEPT, "application/json")
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap()
}

/// `GET uri` with the cookie: status and body.
pub(crate) async fn get_body(app: &Router, uri: &str, cookie: &str) -> (StatusCode, String) {
    let resp = call(app, uri, cookie).await;
    (resp.status(), body_string(resp).await)
}

pub(crate) fn clears_session<B>(resp: &Response<B>) -> bool {
    set_cookies(resp).clears_session()
}

pub(crate) fn logout_token(w: &World, sid: &str, jti: &str) -> String {
    let now = w.clock.now();
    w.provider.sign_with_header(
        &json!({"alg": "RS256", "typ": "logout+jwt", "kid": w.provider.current_kid()}),
        &json!({
            "iss": w.provider.issuer(), "aud": w.provider.client_id(), "iat": now, "jti": jti,
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}}, "sid": sid,
        }),
    )
}

pub(crate) async fn sid_of(app: &Router, cookie: &str) -> String {
    let (status, body) = get_body(app, "/me", cookie).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims: Value = serde_json::from_str(&body).unwrap();
    claims["sid"].as_str().expect("sid").to_owned()
}

pub(crate) fn sub_of_jwt(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    v["sub"].as_str().unwrap().to_owned()
}
