//! Third round of attacks on the store mode (issue 18), after the changes of commit 5ecddca:
//! `revocation::Both`, the store's refresh coordinator as the default, and the background retry
//! of unsaved refreshes (`stored::save_later`). Each test asserts the secure (or correct)
//! behaviour: a failing test is a defect. `guard_` tests are attacks that held. Helpers
//! (`Rig`, `World`) in `crate::store_rig`.
#![allow(dead_code, unused_imports)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use futures_util::future::BoxFuture;
use http::{Request, StatusCode};
use serde_json::Value;
use tower_oidc_auth::revocation::{RevocationError, RevocationKey, RevocationStore};
use tower_oidc_auth::session_store::{
    SessionId, SessionMeta, SessionRecord, SessionStore, SessionStoreError,
};
use tower_oidc_auth::{AuthLayer, Clock, MemoryRevocationStore};

use crate::helpers::*;
use crate::store_rig::*;

// ---- Helpers ------------------------------------------------------------------------------------

/// A revocation store whose writes can be made to fail.
#[derive(Clone)]
struct Flaky {
    inner: Arc<dyn RevocationStore>,
    fail: Arc<AtomicBool>,
}

impl Flaky {
    fn over(inner: Arc<dyn RevocationStore>) -> Self {
        Self {
            inner,
            fail: Arc::default(),
        }
    }
}

impl RevocationStore for Flaky {
    fn revoke(
        &self,
        key: RevocationKey,
        at: i64,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), RevocationError>> {
        if self.fail.load(Ordering::SeqCst) {
            return Box::pin(async { Err(RevocationError("down".into())) });
        }
        self.inner.revoke(key, at, ttl)
    }
    fn revoked_at(&self, key: &RevocationKey) -> Option<i64> {
        self.inner.revoked_at(key)
    }
    fn revoked_before(&self) -> Option<i64> {
        self.inner.revoked_before()
    }
    fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

/// The `Rig`, but the revocation store it shares fails its writes on demand.
#[derive(Clone)]
struct FlakyShared {
    rig: Rig,
    shared: Flaky,
}

impl SessionStore for FlakyShared {
    fn load(
        &self,
        id: &SessionId,
    ) -> BoxFuture<'static, Result<Option<SessionRecord>, SessionStoreError>> {
        self.rig.load(id)
    }
    fn save(
        &self,
        id: &SessionId,
        record: SessionRecord,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), SessionStoreError>> {
        self.rig.save(id, record, ttl)
    }
    fn replace(
        self: Arc<Self>,
        id: SessionId,
        current: SessionRecord,
        record: SessionRecord,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<bool, SessionStoreError>> {
        Arc::new(self.rig.clone()).replace(id, current, record, ttl)
    }
    fn delete(&self, id: &SessionId) -> BoxFuture<'static, Result<bool, SessionStoreError>> {
        self.rig.delete(id)
    }
    fn delete_by_sid(&self, sid: &str) -> BoxFuture<'static, Result<usize, SessionStoreError>> {
        self.rig.delete_by_sid(sid)
    }
    fn delete_by_sub(&self, sub: &str) -> BoxFuture<'static, Result<usize, SessionStoreError>> {
        self.rig.delete_by_sub(sub)
    }
    fn list_by_sub(
        &self,
        sub: &str,
    ) -> BoxFuture<'static, Result<Vec<(SessionId, SessionMeta)>, SessionStoreError>> {
        self.rig.list_by_sub(sub)
    }
    fn list_by_sid(
        &self,
        sid: &str,
    ) -> BoxFuture<'static, Result<Vec<(SessionId, SessionMeta)>, SessionStoreError>> {
        self.rig.list_by_sid(sid)
    }
    fn available(&self) -> bool {
        self.rig.available()
    }
    fn revocation_store(&self) -> Option<Arc<dyn RevocationStore>> {
        Some(Arc::new(self.shared.clone()))
    }
    fn refresh_coordinator(
        &self,
        grace: Duration,
    ) -> Option<Arc<dyn tower_oidc_auth::refresh::RefreshCoordinator>> {
        self.rig.refresh_coordinator(grace)
    }
}

/// Signs in at `app`, following the provider's redirect with its single sign-on cookie `sso`
/// if given (so the provider reuses its session and its `sid`); the session cookie header and
/// the provider's single sign-on cookie, if it set one.
async fn sign_in_sso(app: &Router, sso: Option<&str>) -> (String, Option<String>) {
    let mut jar = Jar::default();
    let resp = send(app, &mut jar, get_html("/auth/login")).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let (callback, set) = authorize_with(&location(&resp), sso).await;
    let resp = send(app, &mut jar, get_html(&callback)).await;
    assert_eq!(resp.status(), StatusCode::FOUND, "sign-in");
    (jar.header_for("/me"), set)
}

/// `user.logout` for `sid`, as having occurred at `occurred_at` (seconds since the epoch).
fn user_logout_at(sid: &str, occurred_at: i64) -> String {
    let mut event: Value = serde_json::from_str(&user_logout(sid)).unwrap();
    let t = time::OffsetDateTime::from_unix_timestamp(occurred_at).unwrap();
    let at = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    event["occurred_at"] = Value::from(at);
    serde_json::to_string(&event).unwrap()
}

/// The status of `/me` and whether the answer clears the session cookie.
async fn me_at(app: &Router, cookie: &str) -> (StatusCode, bool) {
    let resp = call(app, "/me", cookie).await;
    (resp.status(), clears_session(&resp))
}

// ================================================================================================
// Attacks
// ================================================================================================

/// Threat: a Scalekit `user.logout` webhook ends "the sessions of that provider session that
/// began no later than the event" (its revocation is `sid` as of `occurred_at`, exactly like a
/// back-channel logout's `iat`, so that a late retry or a replay never ends a later sign-in).
/// In store mode the webhook also deletes the records, but with `delete_by_sid`, which takes
/// every record of that `sid`, begun before or after the event: a delivery that arrives late
/// (Scalekit retries for hours) signs out a sign-in made after the logout it reports, although
/// the revocation spares it. The back-channel path (`end_by_index`) compares each record's
/// login time; the webhook does not.
#[tokio::test]
async fn a_late_webhook_logout_does_not_delete_a_later_session_of_the_same_sid() {
    let w = world().await;
    let (_a, a) = w.instance_with(|b| b.webhook_secret(WEBHOOK_SECRET)).await;
    let (first, sso) = sign_in_sso(&a, None).await;
    let sso = sso.expect("the provider's single sign-on cookie");
    let sid = sid_of(&a, &first).await;
    let ended_at = w.clock.now() + 10;
    w.clock.advance(Duration::from_secs(30));
    // A later sign-in of the same provider session (single sign-on: the same `sid`).
    let (later, _) = sign_in_sso(&a, Some(&sso)).await;
    assert_eq!(sid_of(&a, &later).await, sid, "the same provider session");
    assert_eq!(w.records().await, 2);
    w.clock.advance(Duration::from_secs(30));
    // The event occurred between the two sign-ins; its delivery arrives after the second.
    let body = user_logout_at(&sid, ended_at);
    let resp = serve(&a, signed_webhook("msg_attack3_late", w.clock.now(), &body)).await;
    assert!(resp.status().is_success(), "{}", resp.status());
    let (_c, c) = w.instance().await;
    assert_eq!(
        status(&c, &first).await,
        StatusCode::UNAUTHORIZED,
        "the session the event ended"
    );
    let records = w.records().await;
    let later_status = me_at(&c, &later).await;
    assert_eq!(
        later_status,
        (StatusCode::OK, false),
        "a sign-in made after the logout the webhook reports was ended by it (records left: \
         {records}); its revocation alone would have spared it"
    );
}

/// Threat (availability): the store answers reads but refuses writes for a while (Redis out of
/// memory under `noeviction`, a replica promoted read-only after a failover). A refresh on A
/// cannot be saved: A keeps it (`Shared.unsaved`) and retries "for about ten minutes, so
/// another instance does not replay the rotated refresh token". But the only thing that stops
/// another instance from replaying it is the shared refresh coordinator's grant, which lives
/// for the grace window (60 s). A request of the same user on B a minute later loads the old
/// record, refreshes with the rotated token, is refused by the provider (which revokes the
/// whole grant family) and B deletes the session: a write outage of a minute signs users out.
#[tokio::test]
async fn a_write_outage_longer_than_the_refresh_grace_does_not_sign_the_user_out_elsewhere() {
    let w = world().await;
    let (_a, a) = w.instance().await;
    let (_b, b) = w.instance().await;
    let cookie = signed_in_at(&a).await;
    w.clock.advance(Duration::from_secs(280));
    w.store.fail_saves.store(true, Ordering::SeqCst);
    assert_eq!(
        me_at(&a, &cookie).await,
        (StatusCode::OK, false),
        "A refreshed"
    );
    // The writes still fail (the background retries too); reads work.
    w.clock.advance(Duration::from_secs(61));
    let on_b = me_at(&b, &cookie).await;
    let records = w.records().await;
    w.store.fail_saves.store(false, Ordering::SeqCst);
    let on_a = me_at(&a, &cookie).await;
    assert!(
        (on_b.0 == StatusCode::OK || on_b.0 == StatusCode::SERVICE_UNAVAILABLE) && !on_b.1,
        "a write outage of 61 s signed the user out on B: {on_b:?} (records left {records}; A \
         then answers {on_a:?}; refresh grants {}, refused {})",
        w.provider.counts().refresh_grants,
        w.provider.counts().refresh_failures,
    );
    assert_eq!(records, 1, "B deleted the session");
}

/// Threat (configuration silently ignored): in store mode the layer takes its refresh
/// coordinator from the store, and `MemorySessionStore` makes one per store, on first use,
/// with the grace window of whichever layer asked first. Every other layer on that store (a
/// second app, or the same app's instances built after another layer: here the harness's
/// probe, built with the default 60 s) gets that grace, whatever its own `refresh_grace`
/// says. An app that set a longer grace (300 s) to ride out slow saves or long outages gets
/// 60 s: B replays the rotated refresh token two minutes after A's unsaved refresh, and the
/// user is signed out.
#[tokio::test]
async fn a_layers_refresh_grace_is_its_own_on_a_shared_memory_store() {
    let w = world().await;
    let grace = |b: tower_oidc_auth::AuthLayerBuilder| b.refresh_grace(Duration::from_secs(300));
    let (_a, a) = w.instance_with(grace).await;
    let (_b, b) = w.instance_with(grace).await;
    let cookie = signed_in_at(&a).await;
    w.clock.advance(Duration::from_secs(280));
    w.store.fail_saves.store(true, Ordering::SeqCst);
    assert_eq!(
        me_at(&a, &cookie).await,
        (StatusCode::OK, false),
        "A refreshed"
    );
    // Well within the 300 s grace the layers were built with.
    w.clock.advance(Duration::from_secs(120));
    let on_b = me_at(&b, &cookie).await;
    w.store.fail_saves.store(false, Ordering::SeqCst);
    assert_eq!(
        on_b,
        (StatusCode::OK, false),
        "B did not get A's grant within the configured 300 s grace (refresh grants {}, \
         refused {})",
        w.provider.counts().refresh_grants,
        w.provider.counts().refresh_failures,
    );
    assert_eq!(w.provider.counts().refresh_grants, 1, "one grant shared");
}

/// Threat (availability, the unsaved-refresh memo): writes fail for longer than one access
/// token's lifetime (here 5 min, well within the "about ten minutes" the background retry is
/// meant to cover). A's first refresh is kept as a memo "replacing refresh token rt0" (what
/// the record holds). When that refreshed session is due again, A refreshes it (rt1 -> rt2)
/// and, the save failing again, keeps a new memo "replacing rt1": bound to the unsaved
/// refresh, not to the record, which still holds rt0. On A's next request (the store works
/// again, or not) the memo no longer matches the record and is dropped, A falls back to rt0,
/// which the provider rotated two refreshes ago: refused, the grant family revoked, and the
/// session deleted, on the very instance that held the live tokens.
#[tokio::test]
async fn two_refreshes_during_a_write_outage_do_not_sign_the_user_out() {
    let w = world().await;
    let (_a, a) = w.instance().await;
    let cookie = signed_in_at(&a).await;
    w.store.fail_saves.store(true, Ordering::SeqCst);
    w.clock.advance(Duration::from_secs(280));
    assert_eq!(
        me_at(&a, &cookie).await,
        (StatusCode::OK, false),
        "first refresh"
    );
    w.clock.advance(Duration::from_secs(280));
    assert_eq!(
        me_at(&a, &cookie).await,
        (StatusCode::OK, false),
        "second refresh"
    );
    assert_eq!(w.provider.counts().refresh_grants, 2);
    // The store takes writes again; the user's next request comes to A itself.
    w.store.fail_saves.store(false, Ordering::SeqCst);
    w.clock.advance(Duration::from_secs(1));
    let again = me_at(&a, &cookie).await;
    assert_eq!(
        again,
        (StatusCode::OK, false),
        "signed out after two unsaved refreshes (refresh grants {}, refused {}, records {})",
        w.provider.counts().refresh_grants,
        w.provider.counts().refresh_failures,
        w.records().await
    );
}

// ================================================================================================
// Guards
// ================================================================================================

/// Guard (`revocation::Both`): the session store's shared revocation store fails its write at
/// logout while the layer's configured one works. The logout does not report success while
/// the session survives: it answers 503 and keeps the cookie, or the session is over on every
/// instance (including one that had it cached).
#[tokio::test]
async fn guard_a_logout_whose_shared_revocation_failed_does_not_claim_success() {
    let w = world().await;
    let store = FlakyShared {
        shared: Flaky::over(w.store.inner.revocation_store().unwrap()),
        rig: w.store.clone(),
    };
    let layer = |w: &World| {
        w.builder()
            .session_store(store.clone())
            .revocation_store(MemoryRevocationStore::new().clock(w.clock.clone()))
    };
    let a = api(&layer(&w).build().await.unwrap());
    let b = api(&layer(&w).build().await.unwrap());
    let cookie = signed_in_at(&a).await;
    assert_eq!(status(&b, &cookie).await, StatusCode::OK, "B caches it");
    assert_eq!(status(&b, &cookie).await, StatusCode::OK);
    store.shared.fail.store(true, Ordering::SeqCst);
    let resp = serve(&a, with_cookie_header(logout_post(), &cookie)).await;
    let logout = (resp.status(), clears_session(&resp));
    store.shared.fail.store(false, Ordering::SeqCst);
    w.clock.advance(Duration::from_secs(5));
    let on_b = status(&b, &cookie).await;
    assert!(
        (logout.0 == StatusCode::SERVICE_UNAVAILABLE && !logout.1)
            || on_b == StatusCode::UNAUTHORIZED,
        "logout answered {logout:?}, yet B still serves the session: {on_b}"
    );
    // And a retry of the logout, once the store works, ends it everywhere.
    let resp = serve(&a, with_cookie_header(logout_post(), &cookie)).await;
    assert!(resp.status().is_redirection(), "{}", resp.status());
    assert_eq!(status(&b, &cookie).await, StatusCode::UNAUTHORIZED);
    assert_eq!(w.records().await, 0);
}

/// Guard (`revocation::Both`): a back-channel logout whose write to one of the two stores fails
/// is not acknowledged (the provider retries), and its retry is not refused as a replay.
#[tokio::test]
async fn guard_a_back_channel_logout_failing_in_one_store_is_retried_not_replayed() {
    let w = world().await;
    let configured = Flaky::over(Arc::new(w.revocations.clone()));
    let (_a, a) = w
        .instance_with(|b| b.revocation_store(configured.clone()))
        .await;
    let cookie = signed_in_at(&a).await;
    let sid = sid_of(&a, &cookie).await;
    configured.fail.store(true, Ordering::SeqCst);
    let token = logout_token(&w, &sid, "jti-attack3-both");
    let first = post_logout_token(&a, &token).await.status();
    configured.fail.store(false, Ordering::SeqCst);
    assert_eq!(first, StatusCode::SERVICE_UNAVAILABLE);
    let retry = post_logout_token(&a, &token).await.status();
    assert!(retry.is_success(), "the provider's retry: {retry}");
    let (_c, c) = w.instance().await;
    assert_eq!(status(&c, &cookie).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(&a, &cookie).await, StatusCode::UNAUTHORIZED);
    assert_eq!(w.records().await, 0);
}

/// Guard: A holds an unsaved refresh (its save failed) and has the session cached; a
/// back-channel logout reaches B. Neither A's memo nor its cache serves the session again, and
/// nothing brings its record back (A's next request, which would save the memo).
#[tokio::test]
async fn guard_an_unsaved_refresh_is_not_served_after_a_back_channel_logout() {
    let w = world().await;
    let (_a, a) = w.instance().await;
    let (_b, b) = w.instance().await;
    let cookie = signed_in_at(&a).await;
    let sid = sid_of(&a, &cookie).await;
    w.clock.advance(Duration::from_secs(280));
    w.store.fail_saves.store(true, Ordering::SeqCst);
    assert_eq!(me_at(&a, &cookie).await, (StatusCode::OK, false));
    w.store.fail_saves.store(false, Ordering::SeqCst);
    assert_eq!(
        me_at(&a, &cookie).await,
        (StatusCode::OK, false),
        "from the memo"
    );
    w.clock.advance(Duration::from_secs(1));
    let resp = post_logout_token(&b, &logout_token(&w, &sid, "jti-attack3-memo")).await;
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(status(&a, &cookie).await, StatusCode::UNAUTHORIZED);
    assert_eq!(w.records().await, 0);
    let (_c, c) = w.instance().await;
    assert_eq!(status(&c, &cookie).await, StatusCode::UNAUTHORIZED);
    assert_eq!(w.records().await, 0, "the record came back");
}

/// Guard: two apps (two clients, one cookie key) share one `MemorySessionStore`, so one
/// refresh coordinator and one revocation store. Refreshing at once, each app's session gets
/// its own app's tokens (a grant is keyed by the refresh token and sealed per refresh key),
/// and a logout in one app leaves the other app's session alone.
#[tokio::test]
async fn guard_apps_sharing_a_memory_store_never_get_each_others_grants() {
    let w = world_with(|p| p.client("app-b", "secret-b", None)).await;
    let (_a, a) = w.instance().await;
    let auth_b = w
        .builder()
        .client_id("app-b")
        .client_secret("secret-b")
        .revocation_store(w.revocations.clone())
        .build()
        .await
        .unwrap();
    let b = api(&auth_b);
    let cookie_a = signed_in_at(&a).await;
    let cookie_b = signed_in_at(&b).await;
    w.clock.advance(Duration::from_secs(280));
    let (ta, tb) = tokio::join!(
        get_body(&a, "/token", &cookie_a),
        get_body(&b, "/token", &cookie_b)
    );
    assert_eq!((ta.0, tb.0), (StatusCode::OK, StatusCode::OK));
    let client_of = |t: &str| {
        use base64::Engine;
        let p = t.split('.').nth(1).unwrap();
        let v: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .unwrap(),
        )
        .unwrap();
        v["client_id"].as_str().unwrap().to_owned()
    };
    assert_eq!(client_of(&ta.1), w.provider.client_id());
    assert_eq!(client_of(&tb.1), "app-b");
    assert_eq!(w.provider.counts().refresh_grants, 2);
    let resp = serve(&a, with_cookie_header(logout_post(), &cookie_a)).await;
    assert!(resp.status().is_redirection());
    assert_eq!(status(&a, &cookie_a).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(&b, &cookie_b).await, StatusCode::OK);
}

/// Guard: `end_session` ("sign out that device") while the instance serving that device holds
/// an unsaved refresh of it: the memo neither serves it nor writes it back.
#[tokio::test]
async fn guard_end_session_beats_an_unsaved_refresh() {
    let w = world().await;
    let (_a, a) = w.instance().await;
    let (_b, b) = w.instance().await;
    let device = signed_in_at(&a).await;
    let keeper = signed_in_at(&b).await;
    w.clock.advance(Duration::from_secs(280));
    w.store.fail_saves.store(true, Ordering::SeqCst);
    assert_eq!(me_at(&a, &device).await, (StatusCode::OK, false));
    w.store.fail_saves.store(false, Ordering::SeqCst);
    let (st, listed) = get_body(&b, "/sessions", &keeper).await;
    assert_eq!(st, StatusCode::OK, "{listed}");
    let listed: Vec<Value> = serde_json::from_str(&listed).unwrap();
    let other = listed
        .iter()
        .find(|s| s["current"] == false)
        .expect("the device");
    let handle = other["handle"].as_str().unwrap();
    let resp = serve(&b, post_with(&format!("/end/{handle}"), &keeper)).await;
    assert_eq!(body_string(resp).await, "true");
    assert_eq!(status(&a, &device).await, StatusCode::UNAUTHORIZED);
    assert_eq!(w.records().await, 1, "only the keeper's");
}
