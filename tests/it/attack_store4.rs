//! Fourth round of attacks on the store mode (issue 18), after commit de0fc27:
//! `RefreshCoordinator::hold` (an unsaved refresh's result held for 15 minutes), chained
//! unsaved-refresh memos, the save retry that survives a memo's eviction, and the memory
//! store's one coordinator per grace window. Each test asserts the secure (or correct)
//! behaviour: a failing test is a defect. `guard_` tests are attacks that held. Helpers
//! (`Rig`, `World`) in `crate::store_rig`.
#![allow(dead_code, unused_imports)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use http::StatusCode;
use tower_oidc_auth::refresh::LocalRefreshCoordinator;
use tower_oidc_auth::session_store::{SessionId, SessionStore};
use tower_oidc_auth::{AuthLayer, AuthLayerBuilder};

use crate::helpers::*;
use crate::store_rig::*;

// ---- Helpers ------------------------------------------------------------------------------------

/// The status of `/me` and whether the answer clears the session cookie.
async fn me_at(app: &Router, cookie: &str) -> (StatusCode, bool) {
    let resp = call(app, "/me", cookie).await;
    (resp.status(), clears_session(&resp))
}

/// A `Rig` over the same memory store as `w.store` (same records, same shared revocation
/// store and refresh coordinators), with fault switches of its own: one instance's link to
/// the store can fail while another's works.
fn own_link(w: &World) -> Rig {
    Rig {
        inner: w.store.inner.clone(),
        down: Arc::default(),
        fail_saves: Arc::default(),
        fail_quietly: Arc::default(),
        hang: Arc::default(),
        gate: Arc::default(),
        lone: Arc::default(),
    }
}

/// An instance on `store` (sharing the world's revocation store).
async fn instance_on(
    w: &World,
    store: Rig,
    tweak: impl FnOnce(AuthLayerBuilder) -> AuthLayerBuilder,
) -> (AuthLayer, Router) {
    let auth = tweak(
        w.builder()
            .session_store(store)
            .revocation_store(w.revocations.clone()),
    )
    .build()
    .await
    .expect("build");
    let router = api(&auth);
    (auth, router)
}

/// The sealed record of `id` as the store holds it now.
async fn sealed_of(w: &World, id: &SessionId) -> Option<String> {
    w.store.inner.load(id).await.unwrap().map(|r| r.sealed)
}

/// Waits (real time, bounded) until `cond` holds; whether it did.
async fn poll_until<F, Fut>(deadline: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if cond().await {
            return true;
        }
        if start.elapsed() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn counts(w: &World) -> String {
    let c = w.provider.counts();
    format!(
        "refresh grants {}, refused {}",
        c.refresh_grants, c.refresh_failures
    )
}

// ================================================================================================
// Attacks
// ================================================================================================

/// Threat (mechanism 4, a regression of the mend): `MemorySessionStore::refresh_coordinator`
/// now keeps one coordinator *per grace window*. Two layers of the same app on one store whose
/// `refresh_grace` differs (two routers of one process, or a grace changed in a rolling
/// deploy) no longer share single-flight at all: a refresh A could not save is held only in
/// A's coordinator, B reads the record's rotated refresh token, finds nothing in its own
/// coordinator and replays it; the provider refuses (revoking the grant family) and B signs
/// the user out. A differing grace should change how long a result is kept, not whether
/// instances coordinate.
#[tokio::test]
async fn layers_with_different_refresh_graces_still_share_one_refresh() {
    let w = world().await;
    let (_a, a) = w.instance().await; // the default grace (60 s)
    let (_b, b) = w
        .instance_with(|b| b.refresh_grace(Duration::from_secs(120)))
        .await;
    let cookie = signed_in_at(&a).await;
    w.clock.advance(Duration::from_secs(280));
    w.store.fail_saves.store(true, Ordering::SeqCst);
    assert_eq!(
        me_at(&a, &cookie).await,
        (StatusCode::OK, false),
        "A refreshed"
    );
    // A moment later, well within both grace windows.
    w.clock.advance(Duration::from_secs(1));
    let on_b = me_at(&b, &cookie).await;
    w.store.fail_saves.store(false, Ordering::SeqCst);
    assert_eq!(
        on_b,
        (StatusCode::OK, false),
        "B replayed the refresh token A had just rotated ({}; records {})",
        counts(&w),
        w.records().await
    );
    assert_eq!(w.provider.counts().refresh_grants, 1, "one grant shared");
}

/// Threat (a held result handed after a newer refresh): A's link to the store refuses writes
/// (B's works). A refreshes twice (rt0 -> rt1 -> rt2), unsaved: the coordinator holds
/// rt0 -> T1 and rt1 -> T2, and A keeps a memo of rt2 bound to the record (rt0). A request
/// lands on B: the record holds rt0, B gets the *held* T1 and saves rt1 over the record - a
/// token the provider rotated already. A's memo no longer matches the record and is dropped.
/// The only thing between the user and a replay of rt1 is the 15-minute hold of rt1 -> T2:
/// the user comes back after 16 minutes (the store has worked on B all along) and is signed
/// out. B should follow the chain (rt1 is held too) or not write a rotated token over the
/// record.
#[tokio::test]
async fn a_held_stale_refresh_saved_elsewhere_does_not_sign_the_user_out_later() {
    let w = world().await;
    let link_a = own_link(&w);
    let (_a, a) = instance_on(&w, link_a.clone(), |b| b).await;
    let (_b, b) = w.instance().await;
    let cookie = signed_in_at(&a).await;
    link_a.fail_saves.store(true, Ordering::SeqCst);
    w.clock.advance(Duration::from_secs(280));
    assert_eq!(
        me_at(&a, &cookie).await,
        (StatusCode::OK, false),
        "A: rt0 -> rt1"
    );
    w.clock.advance(Duration::from_secs(280));
    assert_eq!(
        me_at(&a, &cookie).await,
        (StatusCode::OK, false),
        "A: rt1 -> rt2"
    );
    assert_eq!(w.provider.counts().refresh_grants, 2);
    // B (whose writes work) serves the user: it gets the held rt0 -> T1 and saves rt1.
    assert_eq!(me_at(&b, &cookie).await, (StatusCode::OK, false), "on B");
    // The user is away for 16 minutes; the store works on B throughout.
    w.clock.advance(Duration::from_secs(16 * 60));
    let later = me_at(&b, &cookie).await;
    assert_eq!(
        later,
        (StatusCode::OK, false),
        "signed out 16 minutes after B saved a rotated refresh token from a held result ({}; \
         records {})",
        counts(&w),
        w.records().await
    );
}

/// Threat (chained memos vs the save retry): A refreshes during a write outage (memo M1,
/// rt0 -> rt1, retried in the background). Writes come back and the retry of M1 reaches the
/// store (held at the gate: a slow write). Meanwhile writes fail again and A refreshes the
/// unsaved session (rt1 -> rt2): memo M2, chained to the record (rt0). Then M1's write lands
/// and `save_unsaved` drops *the* memo of the record - M2, not M1. M2's own retry finds the
/// record at rt1, not rt0, and gives up: rt2 is never saved. The hold of rt1 -> T2 covers 15
/// minutes; a user back after 16 minutes replays rt1 and is signed out, on the very instance
/// that held the live tokens.
#[tokio::test]
async fn a_late_save_of_an_older_memo_does_not_drop_the_newer_one() {
    let w = world().await;
    let (_a, a) = w.instance().await;
    let cookie = signed_in_at(&a).await;
    let ids = w.ids("usr_42").await;
    assert_eq!(ids.len(), 1);
    let id = ids[0].clone();
    w.store.fail_saves.store(true, Ordering::SeqCst);
    w.clock.advance(Duration::from_secs(280));
    assert_eq!(
        me_at(&a, &cookie).await,
        (StatusCode::OK, false),
        "M1: rt0 -> rt1"
    );
    // Writes come back; M1's background retry (first after ~1 s) is held at the gate.
    let before = sealed_of(&w, &id).await.expect("the record");
    w.store.gate.armed.store(true, Ordering::SeqCst);
    w.store.fail_saves.store(false, Ordering::SeqCst);
    let entered = tokio::time::timeout(Duration::from_secs(10), w.store.gate.entered.notified())
        .await
        .is_ok();
    assert!(entered, "the retry of M1 did not reach the store");
    // Writes fail again; A refreshes the unsaved session: M2 (rt1 -> rt2), chained to rt0.
    w.store.fail_saves.store(true, Ordering::SeqCst);
    w.clock.advance(Duration::from_secs(280));
    assert_eq!(
        me_at(&a, &cookie).await,
        (StatusCode::OK, false),
        "M2: rt1 -> rt2"
    );
    assert_eq!(w.provider.counts().refresh_grants, 2);
    // Writes work again; M1's write lands.
    w.store.fail_saves.store(false, Ordering::SeqCst);
    w.store.gate.release.notify_one();
    let landed = poll_until(Duration::from_secs(10), || {
        let w = &w;
        let id = &id;
        let before = &before;
        async move { sealed_of(w, id).await.as_ref() != Some(before) }
    })
    .await;
    assert!(landed, "M1's write did not land");
    // M2's retry (first after ~1 s) should now save rt2 over M1's record, writes working.
    let m1 = sealed_of(&w, &id).await;
    let _m2_saved = poll_until(Duration::from_secs(4), || {
        let w = &w;
        let id = &id;
        let m1 = &m1;
        async move { sealed_of(w, id).await != *m1 }
    })
    .await;
    // The user comes back after 16 minutes (past every hold).
    w.clock.advance(Duration::from_secs(16 * 60));
    let later = me_at(&a, &cookie).await;
    assert_eq!(
        later,
        (StatusCode::OK, false),
        "the newer unsaved refresh was dropped by the older one's save ({}; records {})",
        counts(&w),
        w.records().await
    );
}

/// Threat (capacity games: holds evict in-flight refreshes): the coordinator makes room by
/// dropping "the entry ending first". A hold ends 15 minutes out, a fresh refresh at the end
/// of its grace window, so once the coordinator is full, every new refresh evicts the
/// youngest refreshes - whose saves may not have landed - rather than the holds. Here
/// (capacity 2): one hold (user 1's unsaved refresh); user 2's refresh is done but its save
/// is slow (at the gate); user 3's refresh evicts user 2's entry, not the hold; user 2's next
/// request, which read the record before the save, replays the rotated token and is signed
/// out. Without the hold the older entry would go.
#[tokio::test]
async fn a_hold_does_not_make_a_fresh_refresh_the_eviction_victim() {
    let w = world().await;
    let (_a, a) = w
        .instance_with(|b| {
            b.refresh_coordinator(LocalRefreshCoordinator::new(Duration::from_secs(60), 2))
        })
        .await;
    let one = signed_in_at(&a).await;
    let two = signed_in_at(&a).await;
    let three = signed_in_at(&a).await;
    w.clock.advance(Duration::from_secs(280));
    // User 1: a refresh the store cannot save: held for 15 minutes.
    w.store.fail_saves.store(true, Ordering::SeqCst);
    assert_eq!(me_at(&a, &one).await, (StatusCode::OK, false), "user 1");
    w.store.fail_saves.store(false, Ordering::SeqCst);
    // Saved by user 1's next request (the memo), so its retry never reaches the gate.
    assert_eq!(
        me_at(&a, &one).await,
        (StatusCode::OK, false),
        "user 1 saved"
    );
    // User 2: refreshed, its save slow (held at the gate).
    w.store.gate.armed.store(true, Ordering::SeqCst);
    let a2 = a.clone();
    let two2 = two.clone();
    let slow = tokio::spawn(async move { me_at(&a2, &two2).await });
    tokio::time::timeout(Duration::from_secs(10), w.store.gate.entered.notified())
        .await
        .expect("user 2's save at the gate");
    // User 3 refreshes.
    assert_eq!(me_at(&a, &three).await, (StatusCode::OK, false), "user 3");
    // User 2's next request (another tab) reads the record, not yet saved.
    let second = me_at(&a, &two).await;
    w.store.gate.release.notify_one();
    let first = slow.await.unwrap();
    assert_eq!(
        (first, second),
        ((StatusCode::OK, false), (StatusCode::OK, false)),
        "user 2's refresh was evicted by user 3's while a hold stayed ({})",
        counts(&w)
    );
    assert_eq!(
        w.provider.counts().refresh_failures,
        0,
        "a rotated token replayed"
    );
}

// ================================================================================================
// Guards
// ================================================================================================

/// Guard: A's link to the store refuses writes; A holds an unsaved refresh (memo, background
/// retry, coordinator hold). The user logs out on B. Once A's writes work again, neither the
/// retry nor A's memo nor the hold brings the session back, on A or on a new instance.
#[tokio::test]
async fn guard_a_hold_and_its_retry_do_not_outlive_a_logout_elsewhere() {
    let w = world().await;
    let link_a = own_link(&w);
    let (_a, a) = instance_on(&w, link_a.clone(), |b| b).await;
    let (_b, b) = w.instance().await;
    let cookie = signed_in_at(&a).await;
    link_a.fail_saves.store(true, Ordering::SeqCst);
    w.clock.advance(Duration::from_secs(280));
    assert_eq!(
        me_at(&a, &cookie).await,
        (StatusCode::OK, false),
        "A refreshed, unsaved"
    );
    let resp = serve(&b, with_cookie_header(logout_post(), &cookie)).await;
    assert!(resp.status().is_redirection(), "logout: {}", resp.status());
    assert_eq!(w.records().await, 0);
    link_a.fail_saves.store(false, Ordering::SeqCst);
    // A's retry runs after ~1 s and ~3 s: the record must stay gone.
    let came_back = poll_until(Duration::from_secs(4), || async { w.records().await > 0 }).await;
    assert!(
        !came_back,
        "the retry wrote the session back after the logout"
    );
    assert_eq!(status(&a, &cookie).await, StatusCode::UNAUTHORIZED, "on A");
    let (_c, c) = w.instance().await;
    assert_eq!(status(&c, &cookie).await, StatusCode::UNAUTHORIZED, "on C");
    assert_eq!(w.records().await, 0);
}

/// Guard (hold vs waiters): two requests of one session race a refresh on A while writes fail.
/// The first finishes, cannot save and replaces the coordinator's entry with a hold; the other,
/// already waiting on the entry, still gets the same grant (no hang, no second grant), and the
/// session survives once writes work.
#[tokio::test]
async fn guard_racing_requests_of_an_unsaved_refresh_share_one_grant() {
    let w = world().await;
    let (_a, a) = w.instance().await;
    let (_b, b) = w.instance().await;
    let cookie = signed_in_at(&a).await;
    w.clock.advance(Duration::from_secs(280));
    w.store.fail_saves.store(true, Ordering::SeqCst);
    let (x, y, z) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(me_at(&a, &cookie), me_at(&a, &cookie), me_at(&b, &cookie))
    })
    .await
    .expect("a request hung");
    assert_eq!(
        [x, y, z],
        [(StatusCode::OK, false); 3],
        "racing requests ({})",
        counts(&w)
    );
    assert_eq!(w.provider.counts().refresh_grants, 1);
    w.store.fail_saves.store(false, Ordering::SeqCst);
    w.clock.advance(Duration::from_secs(120));
    assert_eq!(me_at(&b, &cookie).await, (StatusCode::OK, false));
    assert_eq!(me_at(&a, &cookie).await, (StatusCode::OK, false));
    assert_eq!(w.provider.counts().refresh_failures, 0);
}

/// Guard (held result vs `invalid_grant` elsewhere): A's unsaved refresh is held; later the
/// provider refuses the *new* refresh token (the user revoked the app). The session ends on
/// the instance that meets the refusal, and the hold of the old token does not bring it back
/// on another instance (the record is deleted; nothing reads rt0 any more).
#[tokio::test]
async fn guard_a_hold_does_not_revive_a_session_ended_by_invalid_grant() {
    let w = world().await;
    let link_a = own_link(&w);
    let (_a, a) = instance_on(&w, link_a.clone(), |b| b).await;
    let (_b, b) = w.instance().await;
    let cookie = signed_in_at(&a).await;
    link_a.fail_saves.store(true, Ordering::SeqCst);
    w.clock.advance(Duration::from_secs(280));
    assert_eq!(
        me_at(&a, &cookie).await,
        (StatusCode::OK, false),
        "A refreshed, unsaved"
    );
    // B takes the held result and saves it (rt1).
    assert_eq!(
        me_at(&b, &cookie).await,
        (StatusCode::OK, false),
        "B from the hold"
    );
    w.provider
        .set_token_failure(Some(tower_oidc_auth::testing::Failure::OAuthError(
            "invalid_grant".into(),
        )));
    w.clock.advance(Duration::from_secs(290));
    assert_eq!(
        status(&b, &cookie).await,
        StatusCode::UNAUTHORIZED,
        "B: refused"
    );
    assert_eq!(w.records().await, 0);
    w.provider.set_token_failure(None);
    link_a.fail_saves.store(false, Ordering::SeqCst);
    assert_eq!(status(&a, &cookie).await, StatusCode::UNAUTHORIZED, "A");
    let (_c, c) = w.instance().await;
    assert_eq!(status(&c, &cookie).await, StatusCode::UNAUTHORIZED, "C");
    assert_eq!(w.records().await, 0);
}
