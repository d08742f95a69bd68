//! Revocations are security state (issue 14 part B): never evicted, remembered as long as the
//! session they end could live, scoped to the sessions that began before them, and never lost
//! to a store failure.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::StatusCode;
use tower_oidc_auth::{
    Clock, ManualClock, MemoryRevocationStore, RevocationError, RevocationKey, RevocationStore,
};

use crate::helpers::*;

const DAY: u64 = 24 * 3600;

/// Signs in (through the provider's single sign-on session `sso` if given); returns the
/// provider's session cookie and the session's `sid`.
async fn sign_in(s: &Setup, jar: &mut Jar, sso: Option<&str>) -> (Option<String>, String) {
    let resp = send(&s.app, jar, get_html("/auth/login?return_to=%2Fme")).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let (callback, cookie) = authorize_with(&location(&resp), sso).await;
    let resp = send(&s.app, jar, get_html(&callback)).await;
    assert_eq!(resp.status(), StatusCode::FOUND, "signed in");
    let resp = send(&s.app, jar, get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let claims: serde_json::Value = serde_json::from_str(&body_string(resp).await).unwrap();
    (cookie, claims["sid"].as_str().expect("sid").to_owned())
}

/// SSO lockout: `/auth/logout` revoked the provider's `sid`. When the provider's session
/// survives (the user cancels the provider's sign-out prompt, or end_session fails), every
/// later single sign-on gets the same `sid` and was refused. A local logout ends this session,
/// by its own id, and nothing else.
#[tokio::test]
async fn signing_in_again_through_the_providers_live_session_works_after_an_app_logout() {
    let s = setup().await;
    let mut jar = Jar::default();
    let (sso, sid) = sign_in(&s, &mut jar, None).await;
    let sso = sso.expect("the provider starts a single sign-on session");
    let stolen = jar.clone();

    let resp = send(&s.app, &mut jar, logout_post()).await;
    assert_eq!(resp.status(), StatusCode::FOUND, "logged out");
    assert_eq!(me(&s, &mut stolen.clone()).await, StatusCode::UNAUTHORIZED);

    // The provider's session lives on: the same sid comes back.
    s.clock.advance(Duration::from_secs(5));
    let (_, again) = sign_in(&s, &mut jar, Some(&sso)).await;
    assert_eq!(again, sid, "the provider reused its session");
    assert_eq!(me(&s, &mut jar).await, StatusCode::OK);
    assert_eq!(
        me(&s, &mut stolen.clone()).await,
        StatusCode::UNAUTHORIZED,
        "the logged-out session stays ended"
    );
}

/// A `sid` revocation (back-channel, webhook) ends the sessions that began before it, as a `sub`
/// revocation does; a later sign-in with the same `sid` is a new session.
#[tokio::test]
async fn a_sid_revocation_ends_earlier_sessions_not_later_sign_ins() {
    let s = setup().await;
    let mut jar = Jar::default();
    let (sso, sid) = sign_in(&s, &mut jar, None).await;
    let sso = sso.unwrap();
    let old = jar.clone();
    s.clock.advance(Duration::from_secs(5));
    let token = s.provider.logout_token("test-client", "usr_42", &sid);
    assert_eq!(
        post_logout_token(&s.app, &token).await.status(),
        StatusCode::OK
    );
    assert_eq!(me(&s, &mut old.clone()).await, StatusCode::UNAUTHORIZED);

    s.clock.advance(Duration::from_secs(5));
    let mut fresh = Jar::default();
    let (_, again) = sign_in(&s, &mut fresh, Some(&sso)).await;
    assert_eq!(again, sid);
    assert_eq!(me(&s, &mut fresh).await, StatusCode::OK);
    assert_eq!(me(&s, &mut old.clone()).await, StatusCode::UNAUTHORIZED);
}

/// How long a logout is remembered: a back-channel logout was remembered for `revocation_ttl`
/// (30 days) whatever the session's lifetime. With `session_max_age` of 60 days, a stolen copy
/// of the cookie refreshed back to life on day 31.
#[tokio::test]
async fn a_back_channel_logout_is_remembered_as_long_as_the_session_could_live() {
    let s = setup_with(|c| c.session_max_age(Duration::from_secs(60 * DAY))).await;
    let (stolen, sid) = session_with_sid(&s).await;
    let token = s.provider.logout_token("test-client", "usr_42", &sid);
    assert_eq!(
        post_logout_token(&s.app, &token).await.status(),
        StatusCode::OK
    );
    assert_eq!(me(&s, &mut stolen.clone()).await, StatusCode::UNAUTHORIZED);
    s.clock.advance(Duration::from_secs(31 * DAY));
    assert_eq!(
        me(&s, &mut stolen.clone()).await,
        StatusCode::UNAUTHORIZED,
        "forgotten after revocation_ttl while the session could still live"
    );
    assert_eq!(s.provider.counts().refresh_grants, 0, "never refreshed");
}

/// A store that fails its first `n` writes (Redis briefly unreachable).
#[derive(Clone, Default)]
struct Flaky {
    inner: MemoryRevocationStore,
    failures_left: Arc<AtomicUsize>,
}

impl RevocationStore for Flaky {
    fn revoke(
        &self,
        key: RevocationKey,
        at: i64,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), RevocationError>> {
        if self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Box::pin(async { Err(RevocationError("unreachable".into())) });
        }
        self.inner.revoke(key, at, ttl)
    }
    fn revoked_at(&self, key: &RevocationKey) -> Option<i64> {
        self.inner.revoked_at(key)
    }
    fn is_empty(&self) -> bool {
        RevocationStore::is_empty(&self.inner)
    }
}

/// Back-channel retry refused: the `jti` was remembered before the revocation was stored, so
/// after a store failure (503) the provider's retry was refused as a replay (400) and the
/// session lived on.
#[tokio::test]
async fn a_back_channel_logout_retried_after_a_store_failure_is_accepted() {
    let store = Flaky::default();
    store.failures_left.store(1, Ordering::SeqCst);
    let s = setup_with(move |c| c.revocation_store(store)).await;
    let (mut jar, sid) = session_with_sid(&s).await;
    let token = s.provider.logout_token("test-client", "usr_42", &sid);
    assert_eq!(
        post_logout_token(&s.app, &token).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        post_logout_token(&s.app, &token).await.status(),
        StatusCode::OK,
        "the retry is not a replay"
    );
    assert_eq!(me(&s, &mut jar).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        post_logout_token(&s.app, &token).await.status(),
        StatusCode::BAD_REQUEST,
        "once stored, a replay is refused"
    );
}

/// Eviction: the store was an evicting cache; a record inserted into a full store went after a
/// few thousand later ones, long before its TTL.
#[tokio::test]
async fn records_are_never_evicted_before_their_ttl() {
    let clock = ManualClock::new(1_000_000);
    let store = MemoryRevocationStore::new().clock(clock.clone());
    let victim = RevocationKey::session("https://iss", "victim");
    for i in 0..20_000 {
        store.insert(
            &RevocationKey::session("https://iss", &format!("before_{i}")),
            999_000,
            Duration::from_secs(30 * DAY),
        );
    }
    store.insert(&victim, 999_999, Duration::from_secs(DAY));
    // More records after it than the old evicting store held in all (100,000): there, the
    // victim was gone long before these were in.
    for i in 0..110_000 {
        store.insert(
            &RevocationKey::session("https://iss", &format!("after_{i}")),
            1_000_000,
            Duration::from_secs(30 * DAY),
        );
    }
    assert_eq!(store.revoked_at(&victim), Some(999_999));
    assert_eq!(store.len(), 130_001);
    clock.advance(Duration::from_secs(DAY - 1));
    assert_eq!(store.revoked_at(&victim), Some(999_999));
    clock.advance(Duration::from_secs(1));
    assert_eq!(store.revoked_at(&victim), None, "expired after its TTL");
    // Expired records are swept, so memory is bounded by the TTLs.
    clock.advance(Duration::from_secs(30 * DAY));
    store.sweep();
    assert_eq!(store.len(), 0);
    assert!(RevocationStore::is_empty(&store));
}

/// A configured hard cap: when it is reached, the records revoked earliest go, and every session
/// that began no later than the last one dropped is treated as revoked (fail closed).
#[tokio::test]
async fn a_full_capped_store_fails_closed_for_older_sessions() {
    let clock = ManualClock::new(1_000_000);
    let store = MemoryRevocationStore::new()
        .max_records(100)
        .clock(clock.clone());
    assert_eq!(store.revoked_before(), None);
    for i in 0..150 {
        store.insert(
            &RevocationKey::session("https://iss", &format!("s{i}")),
            500_000 + i,
            Duration::from_secs(DAY),
        );
    }
    assert!(store.len() <= 100, "{}", store.len());
    // The 50 earliest revocations were dropped: sessions that began by the last of them are
    // refused; the later records are all still held exactly.
    assert_eq!(store.revoked_before(), Some(500_049));
    assert_eq!(
        store.revoked_at(&RevocationKey::session("https://iss", "s149")),
        Some(500_149)
    );

    // End to end: a session that began no later than the floor is refused, a later one works.
    let store = MemoryRevocationStore::new().max_records(2);
    let s = setup_with({
        let store = store.clone();
        move |c| c.revocation_store(store)
    })
    .await;
    let (mut before, _) = session_with_sid(&s).await;
    let begun = s.clock.now();
    for i in 0..3 {
        store
            .revoke(
                RevocationKey::session("https://elsewhere", &format!("x{i}")),
                begun + i,
                Duration::from_secs(DAY),
            )
            .await
            .unwrap();
    }
    assert_eq!(store.revoked_before(), Some(begun));
    s.clock.advance(Duration::from_secs(10));
    let (mut after, _) = session_with_sid(&s).await;
    assert_eq!(me(&s, &mut before).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&s, &mut after).await, StatusCode::OK);
}
