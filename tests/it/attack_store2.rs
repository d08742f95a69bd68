//! Second round of attacks on the store mode (issue 18), after the first round's fixes. Each
//! test asserts the secure (or correct) behaviour: a failing test is a defect. Helpers (`Rig`,
//! `World`) in `crate::store_rig`.
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

use crate::store_rig::*;

// ---- A revocation store that can fail its writes ------------------------------------------

#[derive(Clone)]
struct FlakyRevocations {
    inner: MemoryRevocationStore,
    fail: Arc<AtomicBool>,
}

impl tower_oidc_auth::revocation::RevocationStore for FlakyRevocations {
    fn revoke(
        &self,
        key: tower_oidc_auth::revocation::RevocationKey,
        at: i64,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), tower_oidc_auth::revocation::RevocationError>> {
        if self.fail.load(Ordering::SeqCst) {
            return Box::pin(async {
                Err(tower_oidc_auth::revocation::RevocationError("down".into()))
            });
        }
        self.inner.revoke(key, at, ttl)
    }
    fn revoked_at(&self, key: &tower_oidc_auth::revocation::RevocationKey) -> Option<i64> {
        self.inner.revoked_at(key)
    }
    fn revoked_before(&self) -> Option<i64> {
        self.inner.revoked_before()
    }
    fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

impl World {
    /// An instance on the shared store whose revocation store is `revocations`.
    async fn instance_revoking_in(&self, revocations: FlakyRevocations) -> (AuthLayer, Router) {
        let auth = self
            .builder()
            .revocation_store(revocations)
            .build()
            .await
            .expect("build");
        let router = api(&auth);
        (auth, router)
    }
}

// ================================================================================================
// Attacks
// ================================================================================================

/// Threat: a logout whose revocation write fails (the revocation store hiccups) is answered as
/// a successful sign-out and deletes the record, but the only thing that reaches the other
/// instances' verified-session caches is the revocation. An instance that had the session
/// cached keeps serving a copy of the cookie (until the next refresh), although the user was
/// told they are signed out and the store no longer has the session.
#[tokio::test]
async fn a_logout_whose_revocation_failed_does_not_leave_the_session_cached_elsewhere() {
    let w = world().await;
    let revocations = FlakyRevocations {
        inner: w.revocations.clone(),
        fail: Arc::default(),
    };
    let (_a, a) = w.instance_revoking_in(revocations.clone()).await;
    let (_b, b) = w.instance_revoking_in(revocations.clone()).await;
    let cookie = signed_in_at(&a).await;
    assert_eq!(status(&b, &cookie).await, StatusCode::OK, "B has it cached");
    assert_eq!(status(&b, &cookie).await, StatusCode::OK);
    revocations.fail.store(true, Ordering::SeqCst);
    let resp = serve(&a, with_cookie_header(logout_post(), &cookie)).await;
    let logout_status = resp.status();
    revocations.fail.store(false, Ordering::SeqCst);
    let records = w.records().await;
    w.clock.advance(Duration::from_secs(5));
    let on_b = status(&b, &cookie).await;
    assert!(
        logout_status == StatusCode::SERVICE_UNAVAILABLE || on_b == StatusCode::UNAUTHORIZED,
        "the logout answered {logout_status} (done; records left: {records}), yet the \
         logged-out cookie is still served by the instance that cached it: {on_b}"
    );
}

/// Threat (availability): a refresh whose save failed is kept in the refreshing instance's
/// memory only (`Shared.unsaved`). The store is fine again, and the user's next request lands
/// on another instance: it finds the old refresh token in the record, which the provider has
/// rotated already; the replay is refused (and the provider revokes the whole grant family):
/// a store hiccup on one instance signs the user out on the next.
#[tokio::test]
async fn a_refresh_one_instance_could_not_save_does_not_sign_the_user_out_on_another() {
    let w = world().await;
    let (_a, a) = w.instance().await;
    let (_b, b) = w.instance().await;
    let cookie = signed_in_at(&a).await;
    w.clock.advance(Duration::from_secs(280));
    w.store.fail_saves.store(true, Ordering::SeqCst);
    let first = call(&a, "/me", &cookie).await.status();
    w.store.fail_saves.store(false, Ordering::SeqCst);
    assert!(
        first == StatusCode::OK || first == StatusCode::SERVICE_UNAVAILABLE,
        "{first}"
    );
    w.clock.advance(Duration::from_secs(1));
    let resp = call(&b, "/me", &cookie).await;
    let on_b = (resp.status(), clears_session(&resp));
    let on_a = call(&a, "/me", &cookie).await.status();
    assert_eq!(
        on_b,
        (StatusCode::OK, false),
        "signed out on B after A's save failed once (A first answered {first}, A now {on_a}; \
         refresh grants {}, refused {}, records {})",
        w.provider.counts().refresh_grants,
        w.provider.counts().refresh_failures,
        w.records().await
    );
}

/// Threat (availability): the same, where the instances share no refresh coordinator (a
/// store written without one, each instance with its own): only the instance that refreshed
/// knows the new tokens, and it used to save them only when the same session's next request
/// reached it. The store answers again; the user's next request goes to B, which replays the
/// rotated refresh token and signs the user out.
#[tokio::test]
async fn a_refresh_that_could_not_be_saved_is_saved_once_the_store_answers_again() {
    let w = world().await;
    let (_a, a) = w.instance_sharing_only_the_store().await;
    let (_b, b) = w.instance_sharing_only_the_store().await;
    let cookie = signed_in_at(&a).await;
    let id = w.ids("usr_42").await.pop().expect("a record");
    let before = w
        .store
        .inner
        .load(&id)
        .await
        .unwrap()
        .expect("loaded")
        .sealed;
    w.clock.advance(Duration::from_secs(280));
    w.store.fail_saves.store(true, Ordering::SeqCst);
    assert_eq!(call(&a, "/me", &cookie).await.status(), StatusCode::OK);
    w.store.fail_saves.store(false, Ordering::SeqCst);
    // A saves it in the background (its first retry is a second away); no request reaches A.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while w.store.inner.load(&id).await.unwrap().expect("kept").sealed == before
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    w.clock.advance(Duration::from_secs(1));
    let resp = call(&b, "/me", &cookie).await;
    assert_eq!(
        (resp.status(), clears_session(&resp)),
        (StatusCode::OK, false),
        "signed out on B (refresh grants {}, refused {})",
        w.provider.counts().refresh_grants,
        w.provider.counts().refresh_failures,
    );
    assert_eq!(
        w.provider.counts().refresh_grants,
        1,
        "B did not refresh again"
    );
}

/// Threat: each instance configured with a revocation store of its own (the builder's
/// `revocation_store`, not shared). The layer then remembers stored sessions in its cache as
/// if logouts reached it; the builder documents that "logout deletes the record, so a session
/// ends on every instance sharing the store", but a cached instance keeps serving it.
#[tokio::test]
async fn a_logout_ends_the_session_on_instances_with_revocation_stores_of_their_own() {
    let w = world().await;
    let own = |w: &World| {
        w.builder()
            .revocation_store(MemoryRevocationStore::new().clock(w.clock.clone()))
    };
    let auth_a = own(&w).build().await.unwrap();
    let auth_b = own(&w).build().await.unwrap();
    let (a, b) = (api(&auth_a), api(&auth_b));
    let mut jar = Jar::default();
    assert_eq!(sign_in(&a, &mut jar).await.status(), StatusCode::FOUND);
    let stolen = jar.header_for("/me");
    assert_eq!(status(&b, &stolen).await, StatusCode::OK, "B has seen it");
    let resp = send(&a, &mut jar, logout_post()).await;
    assert!(resp.status().is_redirection(), "{}", resp.status());
    assert_eq!(w.records().await, 0, "the record is deleted");
    w.clock.advance(Duration::from_secs(5));
    assert_eq!(
        status(&b, &stolen).await,
        StatusCode::UNAUTHORIZED,
        "the logged-out session is still served from B's cache"
    );
}

// ================================================================================================
// Guards
// ================================================================================================

/// Guard: an instance that has a stored session cached serves nothing from the cache once the
/// store says it is unavailable (503, no sign-out), and serves it again when it is back.
#[tokio::test]
async fn guard_no_cached_stored_session_while_the_store_is_unavailable() {
    let w = world().await;
    let (_a, a) = w.instance().await;
    let cookie = signed_in_at(&a).await;
    assert_eq!(status(&a, &cookie).await, StatusCode::OK);
    assert_eq!(status(&a, &cookie).await, StatusCode::OK);
    w.store.down.store(true, Ordering::SeqCst);
    let resp = call(&a, "/me", &cookie).await;
    assert_eq!(
        (resp.status(), clears_session(&resp)),
        (StatusCode::SERVICE_UNAVAILABLE, false)
    );
    let resp = call(&a, "/jti", &cookie).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    w.store.down.store(false, Ordering::SeqCst);
    assert_eq!(status(&a, &cookie).await, StatusCode::OK);
}

/// Guard: an unsaved refresh kept by A does not bring back a session another device ended
/// (`end_other_sessions` on B), nor is it served.
#[tokio::test]
async fn guard_an_unsaved_refresh_does_not_resurrect_a_session_ended_elsewhere() {
    let w = world().await;
    let (_a, a) = w.instance().await;
    let (_b, b) = w.instance().await;
    let victim = signed_in_at(&a).await;
    let keeper = signed_in_at(&b).await;
    w.clock.advance(Duration::from_secs(280));
    w.store.fail_saves.store(true, Ordering::SeqCst);
    let first = call(&a, "/me", &victim).await.status();
    w.store.fail_saves.store(false, Ordering::SeqCst);
    assert_eq!(first, StatusCode::OK);
    let resp = serve(&b, post_with("/end-others", &keeper)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_string(resp).await, "1");
    let resp = call(&a, "/me", &victim).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(w.records().await, 1, "only the keeper's");
    let (_c, c) = w.instance().await;
    assert_eq!(status(&c, &victim).await, StatusCode::UNAUTHORIZED);
}

/// Guard: a refresh racing a logout, whose save meets the record gone and then a store that
/// fails, leaves nothing behind: the next request is signed out and the record stays deleted.
#[tokio::test]
async fn guard_a_refresh_racing_a_logout_then_a_store_failure_leaves_nothing_behind() {
    let w = world().await;
    let (_a, a) = w.instance().await;
    let (_b, b) = w.instance().await;
    let cookie = signed_in_at(&a).await;
    w.clock.advance(Duration::from_secs(280));
    w.store.gate.armed.store(true, Ordering::SeqCst);
    let racing = {
        let (a, cookie) = (a.clone(), cookie.clone());
        tokio::spawn(async move { status(&a, &cookie).await })
    };
    w.store.gate.entered.notified().await;
    let resp = serve(&b, with_cookie_header(logout_post(), &cookie)).await;
    assert!(resp.status().is_redirection());
    assert_eq!(w.records().await, 0);
    w.store.fail_quietly.store(true, Ordering::SeqCst);
    w.store.gate.release.notify_one();
    let raced = racing.await.unwrap();
    w.store.fail_quietly.store(false, Ordering::SeqCst);
    let after = call(&a, "/me", &cookie).await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED, "raced: {raced}");
    assert_eq!(w.records().await, 0, "the unsaved refresh was written back");
    let (_c, c) = w.instance().await;
    assert_eq!(status(&c, &cookie).await, StatusCode::UNAUTHORIZED);
}

/// Guard: "your sessions" handles are opaque (no session id, no cookie value in them) and the
/// listing never shows another user's sessions.
#[tokio::test]
async fn guard_session_handles_leak_no_id_and_no_other_user() {
    let w = world().await;
    let (_a, a) = w.instance().await;
    let mine = signed_in_at(&a).await;
    let _mine2 = signed_in_at(&a).await;
    w.provider.set_user(Some(TestUser::new("usr_other")));
    let _theirs = signed_in_at(&a).await;
    let (st, listed) = get_body(&a, "/sessions", &mine).await;
    assert_eq!(st, StatusCode::OK);
    let v: Vec<Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(v.len(), 2, "{listed}");
    for id in w
        .ids("usr_42")
        .await
        .iter()
        .chain(w.ids("usr_other").await.iter())
    {
        assert!(!listed.contains(id.as_str()), "a session id in the listing");
    }
    assert_eq!(v.iter().filter(|i| i["current"] == true).count(), 1);
}

/// Threat (integrity of "your sessions"): a back-channel logout that arrives while the store
/// is down is acknowledged (200: the revocation is recorded) and its records are left in the
/// store. When the store is back, "your sessions" lists the session the provider ended as a
/// live one, with nothing to say it is over (a user checking for a stolen session is misled).
#[tokio::test]
async fn a_session_ended_by_a_back_channel_logout_is_not_listed_as_live() {
    let w = world().await;
    let (_a, a) = w.instance().await;
    let ended = signed_in_at(&a).await;
    let sid = sid_of(&a, &ended).await;
    let keeper = signed_in_at(&a).await;
    assert_ne!(sid_of(&a, &keeper).await, sid, "two provider sessions");
    w.store.down.store(true, Ordering::SeqCst);
    let resp = post_logout_token(&a, &logout_token(&w, &sid, "jti-attack2-bc-down")).await;
    let bc = resp.status();
    w.store.down.store(false, Ordering::SeqCst);
    w.clock.advance(Duration::from_secs(1));
    let (st, listed) = get_body(&a, "/sessions", &keeper).await;
    assert_eq!(st, StatusCode::OK);
    let v: Vec<Value> = serde_json::from_str(&listed).unwrap();
    assert!(
        bc != StatusCode::OK || v.len() == 1,
        "the back-channel logout answered {bc}, yet the ended session is listed as live: \
         {listed}"
    );
}

/// Threat (integrity of "your sessions"): with an idle timeout, a session idle for longer than
/// the timeout is over (its cookie is refused), yet "your sessions" keeps listing it as a live
/// session until its absolute lifetime ends.
#[tokio::test]
async fn a_session_over_by_idle_timeout_is_not_listed_as_live() {
    let w = world().await;
    let idle = |b: AuthLayerBuilder| b.session_idle_timeout(Duration::from_secs(600));
    let (_a, a) = w.instance_with(idle).await;
    let idle_one = signed_in_at(&a).await;
    let keeper = signed_in_at(&a).await;
    for _ in 0..7 {
        w.clock.advance(Duration::from_secs(100));
        assert_eq!(status(&a, &keeper).await, StatusCode::OK);
    }
    let (st, listed) = get_body(&a, "/sessions", &keeper).await;
    assert_eq!(st, StatusCode::OK);
    let v: Vec<Value> = serde_json::from_str(&listed).unwrap();
    // What its cookie gets (this also deletes it; the listing above was taken before).
    let (_c, c) = w.instance_with(idle).await;
    let idle_status = status(&c, &idle_one).await;
    assert!(
        idle_status == StatusCode::OK || v.len() == 1,
        "the idle session is over ({idle_status}) but was listed as live: {listed}"
    );
}

/// Threat: with a provider that does not rotate refresh tokens, an unsaved refresh memo on A
/// ("the record still holds the refresh token this refresh replaced") matches a record that
/// another instance has refreshed since, with the same refresh token. A's next request writes
/// its older refresh over the newer one: a role the provider removed in between comes back,
/// for every instance, until the next refresh.
#[tokio::test]
async fn an_unsaved_refresh_does_not_overwrite_a_newer_refresh_with_stale_claims() {
    let w = world_with(|p| p.refresh_rotation(false)).await;
    let (_a, a) = w.instance().await;
    let cookie = signed_in_at(&a).await;
    w.clock.advance(Duration::from_secs(280));
    w.store.fail_saves.store(true, Ordering::SeqCst);
    let (st, before) = get_body(&a, "/me", &cookie).await;
    w.store.fail_saves.store(false, Ordering::SeqCst);
    assert_eq!(st, StatusCode::OK);
    assert!(before.contains("admin"), "{before}");
    // The provider removes the role; another instance refreshes and saves.
    w.provider
        .set_refresh_user(Some(TestUser::new("usr_42").role("viewer")));
    // Past the time the refresh coordinator (shared through the store) holds A's unsaved
    // grant (15 minutes), so that C refreshes anew instead of receiving it.
    w.clock.advance(Duration::from_secs(15 * 60 + 1));
    let (_c, c) = w.instance().await;
    let (st, on_c) = get_body(&c, "/me", &cookie).await;
    assert_eq!(st, StatusCode::OK);
    assert!(!on_c.contains("admin"), "C refreshed: {on_c}");
    // A's next request, then a fresh instance reads the record.
    let _ = get_body(&a, "/me", &cookie).await;
    let (_d, d) = w.instance().await;
    let (st, on_d) = get_body(&d, "/me", &cookie).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        !on_d.contains("admin"),
        "the removed role is back in the store after A wrote its unsaved refresh over C's \
         (refresh grants {}): {on_d}",
        w.provider.counts().refresh_grants
    );
}

// ---- Scalekit's `user.logout` webhook in store mode -------------------------------------------

/// A `user.logout` webhook for the session's provider session (the specification's example,
/// `tests/fixtures/scalekit-webhook-examples.json`, with its `session_id` and `occurred_at`
/// set), delivered to one instance.
async fn deliver_user_logout(app: &Router, sid: &str, occurred_at: i64, now: i64) -> StatusCode {
    let body = user_logout_event(sid, occurred_at);
    let req = signed_webhook(WEBHOOK_MSG, now, &body);
    serve(app, req).await.status()
}

/// Guard: a `user.logout` webhook delivered to A ends the session on B, which has it
/// remembered, and deletes its record.
#[tokio::test]
async fn guard_a_user_logout_webhook_ends_the_stored_session_everywhere() {
    let w = world().await;
    let (_a, a) = w.instance_with(|b| b.webhook_secret(WEBHOOK_SECRET)).await;
    let (_b, b) = w.instance().await;
    let cookie = signed_in_at(&a).await;
    let sid = sid_of(&a, &cookie).await;
    assert_eq!(status(&b, &cookie).await, StatusCode::OK, "B has seen it");
    w.clock.advance(Duration::from_secs(5));
    let now = w.clock.now();
    assert_eq!(
        deliver_user_logout(&a, &sid, now, now).await,
        StatusCode::OK
    );
    assert_eq!(w.records().await, 0, "the record is deleted");
    assert_eq!(status(&b, &cookie).await, StatusCode::UNAUTHORIZED);
}

/// Threat: a `user.logout` is taken as of its `occurred_at` (a retried delivery arrives up to
/// ~22 minutes late): in cookie mode it ends only the sessions of that provider session that
/// began by then. In store mode the webhook deleted every record of the `sid`, so a late
/// delivery also signs out a sign-in made after the logout it reports.
#[tokio::test]
async fn a_late_user_logout_webhook_ends_only_the_sessions_that_began_before_it() {
    let w = world().await;
    let (_a, a) = w.instance_with(|b| b.webhook_secret(WEBHOOK_SECRET)).await;
    let cookie = signed_in_at(&a).await;
    let sid = sid_of(&a, &cookie).await;
    w.clock.advance(Duration::from_secs(120));
    let now = w.clock.now();
    // The event occurred a minute before this sign-in (a delivery retried since).
    let occurred = now - 180;
    assert_eq!(
        deliver_user_logout(&a, &sid, occurred, now).await,
        StatusCode::OK
    );
    let resp = call(&a, "/me", &cookie).await;
    assert_eq!(
        (resp.status(), clears_session(&resp), w.records().await),
        (StatusCode::OK, false, 1),
        "a session begun after the reported logout was ended"
    );
}

/// Guard: a refresh the store could not save lives on in the instance (and its background
/// retry) with the provider's new refresh token; the record still holds the rotated one. A
/// logout revokes the record's token, and the provider revokes the rotation family with it:
/// the live token is revoked too. (A provider that forgets rotated tokens would leave the live
/// one valid until it expires; only this instance's memory holds it, and the memo is dropped
/// once the record is found deleted.)
#[tokio::test]
async fn guard_a_logout_revokes_the_refresh_token_of_an_unsaved_refresh() {
    let w = world_with(|p| p.revocation_endpoint(true)).await;
    let (_a, a) = w.instance_sharing_only_the_store().await;
    let mut jar = Jar::default();
    assert_eq!(sign_in(&a, &mut jar).await.status(), StatusCode::FOUND);
    let cookie = jar.header_for("/me");
    w.clock.advance(Duration::from_secs(280));
    w.store.fail_saves.store(true, Ordering::SeqCst);
    assert_eq!(call(&a, "/me", &cookie).await.status(), StatusCode::OK);
    w.store.fail_saves.store(false, Ordering::SeqCst);
    let resp = send(&a, &mut jar, logout_post()).await;
    assert!(resp.status().is_redirection(), "{}", resp.status());
    assert_eq!(w.records().await, 0, "the record is deleted");
    let counts = w.provider.counts();
    assert_eq!(
        (counts.revocation_requests, counts.refresh_tokens_revoked),
        (1, 1),
        "the live refresh token was not revoked at the provider"
    );
}
