//! Fifth round of attacks on the store mode (issue 18), after commit bd55bd2: holds re-sealed
//! under every earlier refresh token of a chain of unsaved refreshes (`remember_unsaved`),
//! `still_unsaved` accepting the chain's passed refresh tokens, `forget_unsaved` by pointer,
//! and the memory store's one coordinator whose grace is the longest any layer asked for.
//! Each test asserts the secure (or correct) behaviour: a failing test is a defect. `guard_`
//! tests are attacks that held. Helpers (`Rig`, `World`) in `crate::store_rig`.
#![allow(dead_code, unused_imports)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use http::StatusCode;
use tower_oidc_auth::testing::TestUser;
use tower_oidc_auth::{AuthLayer, AuthLayerBuilder};

use crate::helpers::*;
use crate::store_rig::*;

// ---- Helpers (as in attack_store4) ----------------------------------------------------------

async fn me_at(app: &Router, cookie: &str) -> (StatusCode, bool) {
    let resp = call(app, "/me", cookie).await;
    (resp.status(), clears_session(&resp))
}

/// A `Rig` over the same memory store as `w.store`, with fault switches of its own.
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

/// Threat (a non-rotating provider confuses the hold): with a provider that keeps the refresh
/// token, every refresh of a session uses the same refresh key. A refresh the store could not
/// save is held under that key for 15 minutes - so the *next* refresh of the session (its
/// access token expired again, five minutes later) is answered from the hold with the same,
/// now expired, tokens instead of a new grant. The session cannot get a live access token
/// until the hold ends: on another instance, after the store has recovered. (Observed: within
/// the verifier's leeway the expired token is handed to the app with 200; past it, 503
/// "session renewal failed; retry later" for the rest of the 15-minute hold, no new grant.)
#[tokio::test]
async fn a_hold_does_not_pin_expired_tokens_with_a_non_rotating_provider() {
    let w = world_with(|p| p.refresh_rotation(false)).await;
    let link_a = own_link(&w);
    let (_a, a) = instance_on(&w, link_a.clone(), |b| b).await;
    let (_b, b) = w.instance().await;
    let cookie = signed_in_at(&a).await;
    w.clock.advance(Duration::from_secs(280));
    link_a.fail_saves.store(true, Ordering::SeqCst);
    let (st, t1) = get_body(&a, "/token", &cookie).await;
    assert_eq!(st, StatusCode::OK, "A refreshed, unsaved: {t1}");
    link_a.fail_saves.store(false, Ordering::SeqCst);
    // T1 expires (5 min access tokens, past any leeway); the store works again.
    w.clock.advance(Duration::from_secs(420));
    let grants = w.provider.counts().refresh_grants;
    let (st, t2) = get_body(&b, "/token", &cookie).await;
    assert_eq!(
        st,
        StatusCode::OK,
        "B could not refresh the session ({}): {t2}",
        counts(&w)
    );
    assert_ne!(t1, t2, "B was handed the held, expired access token");
    assert!(
        w.provider.counts().refresh_grants > grants,
        "no new grant: served from the hold ({})",
        counts(&w)
    );
}

/// Threat (same, during the outage, on the instance that holds the memo): writes fail for
/// longer than an access token lives (well within the ten minutes the retry covers). A's
/// second refresh of the non-rotating session is answered from A's own hold of the first:
/// expired tokens, so the user gets no live session until the hold ends (observed: 503, no
/// new grant).
#[tokio::test]
async fn a_second_unsaved_refresh_with_a_non_rotating_provider_gets_new_tokens() {
    let w = world_with(|p| p.refresh_rotation(false)).await;
    let (_a, a) = w.instance().await;
    let cookie = signed_in_at(&a).await;
    w.clock.advance(Duration::from_secs(280));
    w.store.fail_saves.store(true, Ordering::SeqCst);
    let (st, t1) = get_body(&a, "/token", &cookie).await;
    assert_eq!(st, StatusCode::OK, "first refresh: {t1}");
    // T1 expires, past any leeway; still well within the ten minutes the retry covers.
    w.clock.advance(Duration::from_secs(420));
    let (st, t2) = get_body(&a, "/token", &cookie).await;
    w.store.fail_saves.store(false, Ordering::SeqCst);
    assert_eq!(
        st,
        StatusCode::OK,
        "second refresh during the outage ({}): {t2}",
        counts(&w)
    );
    assert_ne!(t1, t2, "the held, expired access token again");
}

/// Threat (grace raised by another layer): the memory store's one coordinator takes the
/// longest grace any layer on it asked for. App A asks for a 10 s grace, so that a stolen,
/// already rotated refresh token (here in a session cookie sealed before the app moved to the
/// store, which a store-mode layer still reads) is replayed to the provider - and refused, the
/// theft detected - 10 s after the victim's refresh. Another layer on the same store asks for
/// 600 s: A now hands the victim's fresh tokens to the thief for ten minutes (observed: 200
/// a minute later, no replay reaches the provider; the control below gets 401).
#[tokio::test]
async fn another_layers_longer_grace_does_not_extend_a_stolen_refresh_tokens_window() {
    let w = world().await;
    let store = Rig::new(&w.clock);
    let (a_auth, a) = instance_on(&w, store.clone(), |b| {
        b.refresh_grace(Duration::from_secs(10))
    })
    .await;
    let (_b, _b_router) = instance_on(&w, store.clone(), |b| {
        b.refresh_grace(Duration::from_secs(600))
    })
    .await;
    let stolen = w.provider.session_cookie(&a_auth, &TestUser::new("usr_42"));
    w.clock.advance(Duration::from_secs(280));
    assert_eq!(
        status(&a, &stolen).await,
        StatusCode::OK,
        "the victim's refresh"
    );
    // A minute later: well past A's 10 s grace.
    w.clock.advance(Duration::from_secs(60));
    let thief = status(&a, &stolen).await;
    assert_eq!(
        thief,
        StatusCode::UNAUTHORIZED,
        "the rotated refresh token was honoured past A's grace ({})",
        counts(&w)
    );
}

/// Control for the test above: the same replay, with no other layer on the store, is refused.
#[tokio::test]
async fn guard_control_a_stolen_refresh_token_past_the_grace_is_refused() {
    let w = world().await;
    let store = Rig::new(&w.clock);
    let (a_auth, a) = instance_on(&w, store.clone(), |b| {
        b.refresh_grace(Duration::from_secs(10))
    })
    .await;
    let stolen = w.provider.session_cookie(&a_auth, &TestUser::new("usr_42"));
    w.clock.advance(Duration::from_secs(280));
    assert_eq!(
        status(&a, &stolen).await,
        StatusCode::OK,
        "the victim's refresh"
    );
    w.clock.advance(Duration::from_secs(60));
    assert_eq!(
        status(&a, &stolen).await,
        StatusCode::UNAUTHORIZED,
        "{}",
        counts(&w)
    );
}

/// Guard (resealed holds vs a logout): A's writes fail through two refreshes (rt0 -> rt1 ->
/// rt2): its memo replaces rt0 and passes rt1, and T2 is held under rt0, rt1 and rt2. The user
/// logs out on B. Neither A's retry (once writes work) nor a request with a copy of the cookie
/// brings the session back.
#[tokio::test]
async fn guard_a_chain_of_unsaved_refreshes_does_not_outlive_a_logout() {
    let w = world().await;
    let link_a = own_link(&w);
    let (_a, a) = instance_on(&w, link_a.clone(), |b| b).await;
    let (_b, b) = w.instance().await;
    let cookie = signed_in_at(&a).await;
    link_a.fail_saves.store(true, Ordering::SeqCst);
    w.clock.advance(Duration::from_secs(280));
    assert_eq!(me_at(&a, &cookie).await, (StatusCode::OK, false), "first");
    w.clock.advance(Duration::from_secs(300));
    assert_eq!(me_at(&a, &cookie).await, (StatusCode::OK, false), "second");
    let resp = serve(&b, with_cookie_header(logout_post(), &cookie)).await;
    assert!(resp.status().is_redirection(), "logout: {}", resp.status());
    assert_eq!(w.records().await, 0);
    link_a.fail_saves.store(false, Ordering::SeqCst);
    let came_back = poll_until(Duration::from_secs(4), || async { w.records().await > 0 }).await;
    assert!(
        !came_back,
        "the chained memo was written back after the logout"
    );
    assert_eq!(status(&a, &cookie).await, StatusCode::UNAUTHORIZED, "on A");
    let (_c, c) = w.instance().await;
    assert_eq!(status(&c, &cookie).await, StatusCode::UNAUTHORIZED, "on C");
    assert_eq!(w.records().await, 0);
}

/// Guard (chain, then the store recovers elsewhere): after two unsaved refreshes on A, B
/// reads the record (rt0) and is handed the resealed newest result (T2), not a rotated one;
/// the session survives on every instance with a single grant per refresh.
#[tokio::test]
async fn guard_a_resealed_hold_hands_the_newest_tokens_to_another_instance() {
    let w = world().await;
    let link_a = own_link(&w);
    let (_a, a) = instance_on(&w, link_a.clone(), |b| b).await;
    let (_b, b) = w.instance().await;
    let cookie = signed_in_at(&a).await;
    link_a.fail_saves.store(true, Ordering::SeqCst);
    w.clock.advance(Duration::from_secs(280));
    assert_eq!(me_at(&a, &cookie).await, (StatusCode::OK, false), "first");
    w.clock.advance(Duration::from_secs(300));
    let (st, t2) = get_body(&a, "/token", &cookie).await;
    assert_eq!(st, StatusCode::OK, "second: {t2}");
    let (st, on_b) = get_body(&b, "/token", &cookie).await;
    assert_eq!(st, StatusCode::OK, "B ({}): {on_b}", counts(&w));
    assert_eq!(on_b, t2, "B got the newest tokens");
    assert_eq!(w.provider.counts().refresh_grants, 2, "{}", counts(&w));
    link_a.fail_saves.store(false, Ordering::SeqCst);
    assert_eq!(me_at(&a, &cookie).await, (StatusCode::OK, false), "A after");
    assert_eq!(me_at(&b, &cookie).await, (StatusCode::OK, false), "B after");
}
