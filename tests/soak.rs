//! Memory stays bounded: one simulated hour (a fake clock, no real hour) at 1,000 distinct
//! sessions a minute, with logouts, through the whole layer.

#[path = "it/helpers/mod.rs"]
mod helpers;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use helpers::*;
use http::{header, Request, StatusCode};
use tower::ServiceExt;
use tower_oidc_auth::testing::{TestProvider, TestUser};
use tower_oidc_auth::{Clock, ManualClock, RevocationKey};

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded to the system allocator with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded to the system allocator with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const PER_MINUTE: usize = 1_000;
const TOKENS_PER_MINUTE: usize = 40;
const CAPACITY: usize = 1_000;

/// Live heap bytes a signed-in session costs once it is remembered (verified-session cache
/// entry plus signature-memo entry), with claims like the load benchmark's: distinct users, each
/// with an e-mail address, distinct tokens.
async fn bytes_per_remembered_session() -> isize {
    const N: usize = 2_000;
    let provider = TestProvider::start().await;
    let auth = provider.layer_builder(REDIRECT).build().await.unwrap();
    let app = app(&auth);
    let cookies: Vec<String> = (0..=N)
        .map(|i| {
            let user = TestUser::new(format!("usr_{i}")).email(format!("u{i}@example.com"));
            let cookie = provider.session_cookie(&auth, &user);
            cookie.split("; ").next().unwrap().to_owned()
        })
        .collect();
    // A handler that reads typed claims (`/extract`: `claims.sub`), like the load benchmark's.
    let get = |cookie: &str| {
        Request::get("/extract")
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .unwrap()
    };
    // One request first: whatever the first request allocates once is not counted.
    let resp = app.clone().oneshot(get(&cookies[N])).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    drop(resp);
    let before = LIVE.load(Ordering::Relaxed);
    for cookie in &cookies[..N] {
        let resp = app.clone().oneshot(get(cookie)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let after = LIVE.load(Ordering::Relaxed);
    assert_eq!(auth.cache_stats().sessions, N + 1);
    (after - before) / N as isize
}

#[tokio::test]
async fn one_hour_at_a_thousand_sessions_a_minute() {
    // Measured first, while nothing else in this process allocates.
    let per_remembered = bytes_per_remembered_session().await;
    println!("bytes per remembered session: {per_remembered}");
    // The budget of issue 14: 30,000 sessions within 64 MB, i.e. about 2 KB each at most.
    assert!(
        per_remembered > 0 && per_remembered < 2048,
        "{per_remembered}"
    );
    let clock = ManualClock::starting_now();
    let provider = TestProvider::builder().clock(clock.clone()).start().await;
    let auth = provider
        .layer_builder(REDIRECT)
        .verified_cache_capacity(CAPACITY)
        .session_cache_capacity(CAPACITY)
        .build()
        .await
        .unwrap();
    let app = app(&auth);
    let id_token = provider.id_token(&TestUser::new("u"), None);
    // Bytes per cache entry, measured: 1,000 sessions sharing one token, then 200 new tokens.
    let one = provider.access_token(&TestUser::new("usr_measure"));
    let before = LIVE.load(Ordering::Relaxed);
    for i in 0..1_000 {
        let cookie =
            provider.session_cookie_with_tokens(&auth, &one, Some(&format!("m{i}")), &id_token);
        let cookie = cookie.split("; ").next().unwrap().to_owned();
        let req = Request::get("/me")
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            app.clone().oneshot(req).await.unwrap().status(),
            StatusCode::OK
        );
    }
    let per_session = (LIVE.load(Ordering::Relaxed) - before) / 1_000;
    let tokens: Vec<String> = (0..200)
        .map(|t| provider.access_token(&TestUser::new(format!("usr_m{t}"))))
        .collect();
    let before = LIVE.load(Ordering::Relaxed);
    for (i, at) in tokens.iter().enumerate() {
        let cookie =
            provider.session_cookie_with_tokens(&auth, at, Some(&format!("n{i}")), &id_token);
        let cookie = cookie.split("; ").next().unwrap().to_owned();
        let req = Request::get("/me")
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            app.clone().oneshot(req).await.unwrap().status(),
            StatusCode::OK
        );
    }
    let per_token_and_session = (LIVE.load(Ordering::Relaxed) - before) / 200;
    println!(
        "bytes per cached session (cache of 1,000 filling, one shared token): {per_session}; per session once the cache is full (evictions balance): {per_token_and_session}"
    );
    assert!(per_session > 0 && per_session < 16 * 1024, "{per_session}");
    let store = tower_oidc_auth::MemoryRevocationStore::new();
    let before = LIVE.load(Ordering::Relaxed);
    for i in 0..10_000 {
        store.insert(
            &RevocationKey::session("https://yourenv.scalekit.com", &format!("ses_{i:016}")),
            1,
            Duration::from_secs(3600),
        );
    }
    let per_revocation = (LIVE.load(Ordering::Relaxed) - before) / 10_000;
    println!("bytes per revocation record: {per_revocation}");
    drop(store);

    let mut samples = Vec::new();
    for minute in 0..60 {
        // Tokens shared by groups of sessions (minting is the slow part of the test, not of
        // the layer); each session cookie is distinct, so each is a new cache entry.
        let tokens: Vec<String> = (0..TOKENS_PER_MINUTE)
            .map(|t| provider.access_token(&TestUser::new(format!("usr_{minute}_{t}"))))
            .collect();
        for i in 0..PER_MINUTE {
            let at = &tokens[i % TOKENS_PER_MINUTE];
            let rt = format!("rt-{minute}-{i}");
            let cookie = provider.session_cookie_with_tokens(&auth, at, Some(&rt), &id_token);
            let cookie = cookie.split("; ").next().unwrap().to_owned();
            let req = request("/me", &cookie);
            let resp = app.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            // One in ten sessions is logged out elsewhere.
            if i % 10 == 0 {
                auth.revocation_store()
                    .revoke(
                        RevocationKey::session(provider.issuer(), &format!("sid-{minute}-{i}")),
                        clock.now(),
                        Duration::from_secs(3600),
                    )
                    .await
                    .unwrap();
            }
        }
        let stats = auth.cache_stats();
        assert!(stats.sessions <= CAPACITY + CAPACITY / 10, "{stats:?}");
        assert!(
            stats.verified_tokens <= CAPACITY + CAPACITY / 10,
            "{stats:?}"
        );
        samples.push(LIVE.load(Ordering::Relaxed));
        clock.advance(Duration::from_secs(60));
    }
    // Once both caches are full (sessions by minute 1, verified tokens by minute 25), live
    // memory stays flat: the last quarter hour is no larger than the one before, give or take
    // the revocations still remembered (100 a minute).
    let middle = samples[30..45].iter().copied().max().unwrap();
    let last = samples[45..60].iter().copied().max().unwrap();
    println!(
        "live heap at minutes 10/20/40/59: {} {} {} {}",
        samples[10], samples[20], samples[40], samples[59]
    );
    assert!(
        last <= middle + middle / 5,
        "memory grew: middle {middle} B, last {last} B"
    );
}
