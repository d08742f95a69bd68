//! Attacks on the table of recently repeated session cookies (`Recent` in
//! `src/session_cache.rs`, used by `resolve_now` in `src/session/resolve.rs`).
//!
//! The question every test asks: can a cookie held in `Recent` (found by its exact bytes,
//! without a fingerprint) be answered when the full path (open the cookie, verify its access
//! token) or a plain cache hit would refuse it or answer differently, or can another cookie
//! that lands in the same slot be answered with the held entry? Tests named `fixed_*` show a
//! defect (they fail on the code under attack); tests named `guard_*` record attacks that held.
//!
//! A cookie needs four requests before it is answered from `Recent` (see [`warm`]); the slot of
//! a cookie is computed here with the same formula as the layer ([`slot`]) to pick cookies that
//! share one.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use http::{header, Request, StatusCode};
use tower::ServiceExt;
use tower_oidc_auth::testing::TestUser;
use tower_oidc_auth::Clock;

use crate::helpers::*;

/// Requests before a cookie is answered from `Recent`, and more: the first opens the cookie, the
/// second is a fingerprint hit (the slot's candidate), the third copies it into `Recent`, the rest
/// are answered from there ([`warm`]).
const WARM_ROUNDS: usize = 6;

/// The body of `/` (`hello <sub>` or `anonymous`).
async fn hello(app: &Router, cookie: &str) -> String {
    body_string(call(app, "/", cookie).await).await
}

/// The slot `Recent` picks for a cookie's bytes (the same formula as `Recent::slot`).
fn slot(bytes: &[u8]) -> usize {
    let mut tail = [0u8; 8];
    let n = bytes.len().min(8);
    tail[..n].copy_from_slice(&bytes[bytes.len() - n..]);
    let mixed = (u64::from_le_bytes(tail) ^ bytes.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> 32) as usize & 127
}

/// Sessions of distinct users (`sub` = `{prefix}{i}`) until two of them share a slot of
/// `Recent`: returns both cookies (header form) and their subjects.
fn same_slot_sessions(s: &Setup, prefix: &str) -> ((String, String), (String, String)) {
    let mut by_slot: HashMap<usize, (String, String)> = HashMap::new();
    for i in 0..2000 {
        let sub = format!("{prefix}{i}");
        let cookie = session_no_rt(s, &TestUser::new(sub.clone()));
        let (_, value, _) = split_session(&cookie);
        let at = slot(value.as_bytes());
        if let Some(first) = by_slot.get(&at) {
            // Same length too, so that a byte-for-byte compare actually runs.
            let (_, v0, _) = split_session(&first.0);
            if v0.len() == value.len() {
                return (first.clone(), (cookie, sub));
            }
        } else {
            by_slot.insert(at, (cookie, sub));
        }
    }
    panic!("no two sessions in one slot");
}

/// A copy of a cookie header's session value with the byte at `at` changed: same length, and
/// (when `at` is before the last eight bytes) the same slot.
fn flip(cookie: &str, at: usize) -> String {
    let (name, value, _) = split_session(cookie);
    let mut bytes = value.into_bytes();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    format!("{name}={}", String::from_utf8(bytes).unwrap())
}

// ---------------------------------------------------------------------------------------------
// Identity confusion
// ---------------------------------------------------------------------------------------------

/// GUARD: two users whose cookies share a slot (same length, same slot), taking turns and
/// bursting: each always gets their own subject, whichever cookie the slot holds.
#[tokio::test]
async fn guard_slot_mates_never_answer_for_each_other() {
    let s = setup().await;
    let ((a, sub_a), (b, sub_b)) = same_slot_sessions(&s, "mate");
    let (_, va, _) = split_session(&a);
    let (_, vb, _) = split_session(&b);
    assert_eq!(slot(va.as_bytes()), slot(vb.as_bytes()));
    warm(&s, &a, WARM_ROUNDS).await;
    let want = |sub: &str| format!("hello {sub}");
    // Bursts (each copies itself in, pushing the other out) and turns (neither gets in).
    for round in 0..3 {
        for _ in 0..5 {
            assert_eq!(hello(&s.app, &b).await, want(&sub_b), "round {round}");
        }
        for _ in 0..5 {
            assert_eq!(hello(&s.app, &a).await, want(&sub_a), "round {round}");
        }
        for _ in 0..4 {
            assert_eq!(hello(&s.app, &b).await, want(&sub_b));
            assert_eq!(hello(&s.app, &a).await, want(&sub_a));
        }
    }
    // Bytes that land in the held slot (same length and tail) but differ: never a session.
    for _ in 0..5 {
        assert_eq!(hello(&s.app, &a).await, want(&sub_a));
    }
    for at in [0, 1, va.len() / 2, va.len() - 9] {
        let forged = flip(&a, at);
        let (_, fv, _) = split_session(&forged);
        assert_eq!(slot(fv.as_bytes()), slot(va.as_bytes()));
        for _ in 0..4 {
            assert_eq!(hello(&s.app, &forged).await, "anonymous", "byte {at}");
        }
    }
    assert_eq!(hello(&s.app, &a).await, want(&sub_a));
    assert_eq!(hello(&s.app, &b).await, want(&sub_b));
}

/// GUARD: prefixes, extensions, re-chunkings and case changes of a held cookie: only the exact
/// joined value is the session; a prefix or an extension is not.
#[tokio::test]
async fn guard_held_cookie_prefix_extension_and_chunks() {
    let s = setup().await;
    let alice = session_no_rt(&s, &TestUser::new("alice"));
    warm(&s, &alice, WARM_ROUNDS).await;
    let (name, a, _) = split_session(&alice);
    let refused = [
        format!("{name}={}", &a[..a.len() - 1]),
        format!("{name}={a}A"),
        format!("{name}={a}; {name}.1=A"),
        format!("{name}={}; {name}.1={}", &a[..10], &a[11..]),
        format!("{name}={}", a.to_lowercase()),
        format!("{name}.1={a}"),
        format!("{name}x={a}"),
    ];
    for _ in 0..4 {
        for cookie in &refused {
            assert_eq!(hello(&s.app, cookie).await, "anonymous", "{cookie:.60}");
        }
    }
    // The same joined value, re-chunked: Alice (as on the full path).
    let split = format!("{name}={}; {name}.1={}", &a[..20], &a[20..]);
    for _ in 0..5 {
        assert_eq!(hello(&s.app, &split).await, "hello alice");
        assert_eq!(hello(&s.app, &alice).await, "hello alice");
    }
}

/// GUARD: cookies that are not UTF-8, empty, tiny or huge, duplicates and many chunks, sent over
/// and over: never a 5xx, never a session, and the held cookie is still answered correctly.
/// A non-text cookie of the session's name tossed in front of the victim's (a sibling
/// subdomain can) does not make a `Recent` key to her entry.
#[tokio::test]
async fn guard_odd_cookie_bytes_and_tossed_cookies() {
    let s = setup().await;
    let alice = session_no_rt(&s, &TestUser::new("alice"));
    let bob = session_no_rt(&s, &TestUser::new("bob"));
    warm(&s, &alice, WARM_ROUNDS).await;
    let (name, a, _) = split_session(&alice);
    let (_, b, _) = split_session(&bob);
    let with = |value: &[u8]| {
        let mut v = format!("{name}=").into_bytes();
        v.extend_from_slice(value);
        v
    };
    let mut odd: Vec<Vec<u8>> = vec![
        with(b""),
        with(b"\xff"),
        with(&[0x80; 8]),
        with(&vec![b'A'; 64 * 1024]),
        format!("{name}=; {name}=; {name}.1=; {name}.2=").into_bytes(),
    ];
    for len in 0..20 {
        odd.push(with(&vec![b'Z'; len]));
    }
    // Alice's bytes with a non-text byte in the middle (same length and slot).
    let mut corrupt = a.clone().into_bytes();
    let mid = corrupt.len() / 2;
    corrupt[mid] = 0xff;
    odd.push(with(&corrupt));
    // Alice's bytes and a non-text byte after them (in one value, and as a chunk).
    let mut appended = a.clone().into_bytes();
    appended.push(0xff);
    odd.push(with(&appended));
    // Many chunks.
    let mut many = format!("{name}={}", &a[..10]);
    for i in 1..40 {
        many.push_str(&format!("; {name}.{i}=x"));
    }
    odd.push(many.into_bytes());
    for _ in 0..4 {
        for cookie in &odd {
            let resp = call_bytes(&s.app, cookie).await;
            assert!(!resp.status().is_server_error(), "{}", resp.status());
            assert_eq!(body_string(resp).await, "anonymous");
        }
    }
    // The victim's browser: a tossed non-text cookie first, then hers (first text value wins).
    let mut victim = with(b"\xfe\xff");
    victim.extend_from_slice(format!("; {name}={a}").as_bytes());
    let mut chunk_junk = format!("{name}={a}; {name}.1=").into_bytes();
    chunk_junk.push(0xff);
    for _ in 0..6 {
        assert_eq!(
            body_string(call_bytes(&s.app, &victim).await).await,
            "hello alice"
        );
        assert_eq!(
            body_string(call_bytes(&s.app, &chunk_junk).await).await,
            "hello alice"
        );
    }
    // The tossed cookie alone, or with the attacker's own session: never Alice.
    for _ in 0..4 {
        assert_eq!(
            body_string(call_bytes(&s.app, &with(b"\xfe\xff")).await).await,
            "anonymous"
        );
        let mut attacker = with(b"\xfe\xff");
        attacker.extend_from_slice(format!("; {name}={b}").as_bytes());
        assert_eq!(
            body_string(call_bytes(&s.app, &attacker).await).await,
            "hello bob"
        );
        let resp = call_bytes(&s.app, &appended_value(&name, &a)).await;
        assert_eq!(body_string(resp).await, "anonymous");
    }
    assert_eq!(hello(&s.app, &alice).await, "hello alice");
}

/// `name=<value>\xff` as one header.
fn appended_value(name: &str, value: &str) -> Vec<u8> {
    let mut v = format!("{name}={value}").into_bytes();
    v.push(0xff);
    v
}

/// GUARD: many concurrent requests from slot mates and forgers (multi-threaded, the slot
/// filled and replaced while read): every answer is the sender's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_concurrent_slot_mates() {
    let s = setup().await;
    let ((a, sub_a), (b, sub_b)) = same_slot_sessions(&s, "conc");
    warm(&s, &a, WARM_ROUNDS).await;
    warm(&s, &b, WARM_ROUNDS).await;
    let forged = flip(&a, 3);
    let mut tasks = Vec::new();
    for i in 0..300 {
        let app = s.app.clone();
        let (cookie, want) = match i % 7 {
            0 => (forged.clone(), "anonymous".to_owned()),
            1..=3 => (a.clone(), format!("hello {sub_a}")),
            _ => (b.clone(), format!("hello {sub_b}")),
        };
        tasks.push(tokio::spawn(async move {
            let got = hello(&app, &cookie).await;
            assert_eq!(got, want);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions that should have ended
// ---------------------------------------------------------------------------------------------

/// GUARD: a back-channel logout and a local logout end a cookie held in `Recent` (a copy kept
/// from before), on every later request.
#[tokio::test]
async fn guard_logouts_end_recent_cookie() {
    let s = setup().await;
    let (jar, sid) = session_with_sid(&s).await;
    let copy = jar.header_for("/me");
    warm(&s, &copy, WARM_ROUNDS).await;
    let token = s.provider.logout_token("test-client", "usr_42", &sid);
    let body = format!(
        "logout_token={}",
        url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
    );
    let req = Request::post("/auth/backchannel-logout")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    assert_eq!(
        s.app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::OK
    );
    for _ in 0..5 {
        let resp = call(&s.app, "/me", &copy).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(set_cookies(&resp).clears_session());
    }

    s.clock.advance(Duration::from_secs(1));
    let (mut jar, _) = session_with_sid(&s).await;
    let copy = jar.header_for("/me");
    warm(&s, &copy, WARM_ROUNDS).await;
    let resp = send(&s.app, &mut jar, logout_link()).await;
    assert!(resp.status().is_redirection() || resp.status().is_success());
    for _ in 0..5 {
        assert_eq!(status(&s.app, &copy).await, StatusCode::UNAUTHORIZED);
    }
}

/// GUARD: the access token's expiry (with leeway) ends a held cookie at the same second as the
/// full path, and keeps ending it (the stale entry is dropped, never answered again).
#[tokio::test]
async fn guard_expired_access_token_recent_cookie() {
    let s = setup_with(|c| c.leeway(Duration::from_secs(5))).await;
    s.provider.set_access_token_ttl(Duration::from_secs(100));
    let user = TestUser::new("exp");
    let at = s.provider.access_token(&user);
    let id = s.provider.id_token(&user, None);
    let held = s
        .provider
        .session_cookie_with_tokens(&s.auth, &at, None, &id);
    warm(&s, &held, WARM_ROUNDS).await;
    s.clock.advance(Duration::from_secs(95));
    for step in 95..112 {
        let hit = status(&s.app, &held).await;
        let fresh = s
            .provider
            .session_cookie_with_tokens(&s.auth, &at, None, &id);
        let full = status(&s.app, &fresh).await;
        assert_eq!(hit, full, "at +{step} s");
        s.clock.advance(Duration::from_secs(1));
    }
    for _ in 0..5 {
        assert_eq!(status(&s.app, &held).await, StatusCode::UNAUTHORIZED);
    }
}

/// GUARD: the absolute lifetime ends a held cookie.
#[tokio::test]
async fn guard_absolute_lifetime_recent_cookie() {
    let s = setup_with(|c| c.session_max_age(Duration::from_secs(300))).await;
    s.provider
        .set_access_token_ttl(Duration::from_secs(24 * 3600));
    let cookie = session_no_rt(&s, &TestUser::new("life"));
    warm(&s, &cookie, WARM_ROUNDS).await;
    s.clock.advance(Duration::from_secs(299));
    for _ in 0..4 {
        assert_eq!(status(&s.app, &cookie).await, StatusCode::OK);
    }
    s.clock.advance(Duration::from_secs(1));
    for _ in 0..4 {
        let resp = call(&s.app, "/me", &cookie).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(set_cookies(&resp).clears_session());
    }
}

/// GUARD: with an idle timeout, a held cookie still gets its last-seen rewrite when due (every
/// time, as the full path), and the copy that was not rewritten ends at the timeout although it
/// stays in `Recent` after the rewritten cookie replaced its cache entry.
#[tokio::test]
async fn guard_idle_timeout_rewrite_and_end_recent_cookie() {
    let s = setup_with(|c| c.session_idle_timeout(Duration::from_secs(600))).await;
    s.provider
        .set_access_token_ttl(Duration::from_secs(24 * 3600));
    let old = session_no_rt(&s, &TestUser::new("idle"));
    warm(&s, &old, WARM_ROUNDS).await;
    s.clock.advance(Duration::from_secs(61));
    let mut new_cookie = None;
    for _ in 0..4 {
        let resp = call(&s.app, "/me", &old).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let touched = set_cookies(&resp);
        assert_eq!(touched.len(), 1, "last-seen rewrite: {touched:?}");
        new_cookie = Some(cookie_pair(&touched[0]));
    }
    let new_cookie = new_cookie.unwrap();
    for _ in 0..6 {
        let resp = call(&s.app, "/me", &new_cookie).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(set_cookies(&resp).is_empty());
    }
    // Past the old copy's idle timeout (600 s after it was last seen).
    s.clock.advance(Duration::from_secs(600 - 61));
    for _ in 0..3 {
        let resp = call(&s.app, "/me", &old).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(set_cookies(&resp).clears_session());
    }
    let resp = call(&s.app, "/me", &new_cookie).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

/// GUARD: a held cookie due for refresh is refreshed, not answered from `Recent`; after the
/// refreshed cookie replaced its cache entry (the old one stays in `Recent`), the old cookie is
/// never answered as signed in without a new cookie, and causes no new grant beyond the grace.
#[tokio::test]
async fn guard_refresh_replaced_cookie_held_in_recent() {
    let s = setup().await;
    s.provider.set_access_token_ttl(Duration::from_secs(300));
    let old = s.provider.session_cookie(&s.auth, &user());
    warm(&s, &old, WARM_ROUNDS).await;
    s.clock.advance(Duration::from_secs(280));
    let resp = call(&s.app, "/me", &old).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(s.provider.counts().refresh_grants, 1, "refreshed");
    let new_cookie = set_cookies(&resp)
        .session()
        .map(cookie_pair)
        .expect("a new session cookie");
    for _ in 0..6 {
        let resp = call(&s.app, "/me", &new_cookie).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(set_cookies(&resp).is_empty());
    }
    for wait in [0, 30, 120] {
        s.clock.advance(Duration::from_secs(wait));
        for _ in 0..3 {
            let resp = call(&s.app, "/me", &old).await;
            assert!(
                resp.status() == StatusCode::OK && !set_cookies(&resp).is_empty()
                    || resp.status() == StatusCode::UNAUTHORIZED
                    || resp.status() == StatusCode::SERVICE_UNAVAILABLE,
                "old cookie at +{wait}: {:?} {:?}",
                resp.status(),
                set_cookies(&resp)
            );
        }
    }
    assert_eq!(s.provider.counts().refresh_grants, 1);
}

/// GUARD: the provider withdraws the key that verified a held cookie's access token; once the
/// layer has the new key set (a token signed with the new key brings it), the held cookie is
/// refused, every time.
#[tokio::test]
async fn guard_withdrawn_key_ends_recent_cookie() {
    let s = setup().await;
    let held = session_no_rt(&s, &TestUser::new("k"));
    warm(&s, &held, WARM_ROUNDS).await;
    s.provider.rotate_keys(true);
    // A session signed with the new key: its unknown kid makes the layer refetch the keys.
    let fresh = session_no_rt(&s, &TestUser::new("k2"));
    assert_eq!(status(&s.app, &fresh).await, StatusCode::OK);
    for _ in 0..4 {
        assert_eq!(status(&s.app, &held).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(hello(&s.app, &fresh).await, "hello k2");
}

/// GUARD: a Scalekit `user.logout` webhook naming the session ends a held cookie.
#[tokio::test]
async fn guard_webhook_user_logout_ends_recent_cookie() {
    let s = setup_with(|c| c.webhook_secret(WEBHOOK_SECRET)).await;
    let (jar, sid) = session_with_sid(&s).await;
    let copy = jar.header_for("/me");
    warm(&s, &copy, WARM_ROUNDS).await;
    let body = user_logout(&sid);
    let st = serve_status(&s, signed_webhook(WEBHOOK_MSG, s.clock.now(), &body)).await;
    assert!(st.is_success(), "{st}");
    for _ in 0..4 {
        assert_eq!(status(&s.app, &copy).await, StatusCode::UNAUTHORIZED);
    }
}

// ---------------------------------------------------------------------------------------------
// Cost
// ---------------------------------------------------------------------------------------------

/// GUARD (memory): one attacker with many valid cookies and any number of forged ones cannot
/// make the layer hold more verified-session entries than it holds sessions; `Recent` only
/// holds cookies found in the cache.
#[tokio::test]
async fn guard_forged_cookies_make_no_entries() {
    let s = setup().await;
    let alice = session_no_rt(&s, &TestUser::new("alice"));
    warm(&s, &alice, WARM_ROUNDS).await;
    let before = s.auth.cache_stats().sessions;
    for at in 0..40 {
        let forged = flip(&alice, at);
        for _ in 0..4 {
            assert_eq!(hello(&s.app, &forged).await, "anonymous");
        }
    }
    assert_eq!(s.auth.cache_stats().sessions, before);
    assert_eq!(hello(&s.app, &alice).await, "hello alice");
}

/// Where the claims handed to the handler live: the same address for every request answered
/// from one cache entry (a pointer copy), a new one for every request that went the full way.
/// Every claims object is kept alive, so that no address is reused.
fn ptr_app(auth: &tower_oidc_auth::AuthLayer) -> Router {
    use axum::routing::get;
    use std::sync::{Arc, Mutex};
    use tower_oidc_auth::Claims;
    let kept: Arc<Mutex<Vec<Claims>>> = Arc::default();
    Router::new()
        .route(
            "/ptr",
            get(move |c: Claims| async move {
                let at = format!("{:p}", c.raw());
                kept.lock().unwrap().push(c);
                at
            }),
        )
        .layer(auth.clone())
}

/// A session signed in through the whole flow (opaque access token) whose cookie lands in slot
/// `want` of `Recent` (or, with `want = None`, in none of `avoid`): `name=value`.
async fn login_in_slot(s: &Setup, want: Option<usize>, avoid: &[usize]) -> String {
    for _ in 0..3000 {
        let mut jar = Jar::default();
        assert_eq!(
            login(s, &mut jar, "/auth/login").await.status(),
            StatusCode::FOUND
        );
        let c = jar.get("_s").expect("session cookie");
        let at = slot(c.value.as_bytes());
        match want {
            Some(w) if at == w => return format!("{}={}", c.name, c.value),
            None if !avoid.contains(&at) => return format!("{}={}", c.name, c.value),
            _ => {}
        }
    }
    panic!("no session in slot {want:?}");
}

/// DEFECT (cost, new with `Recent`): a busy user's requests answered from `Recent` never touch
/// the verified-session cache, so her entry there looks unused to its CLOCK-Pro eviction and is
/// evicted under churn while she is signed in and active, before idle entries that other users
/// merely hit twice. Anyone who then takes her `Recent` slot (two requests with an own cookie
/// of the same slot, which an attacker finds among ~128 of his own cookies, or just a busy slot
/// mate) sends her next request the full way (base64, AES-GCM, JSON, claims, signature memo)
/// instead of a fingerprint hit. Without `Recent`, every request of hers hit the entry and kept
/// it hot: the control user below, whose slot mate keeps him out of `Recent` (so that he hits
/// the cache on every request, as everyone did before), keeps his entry through the same churn.
///
/// Observed through the claims' address: a request answered from an entry hands the handler
/// that entry's claims (the same address every time); a request that went the full way, new
/// ones.
///
/// Impact: a cost, not a bypass (the full way answers correctly): per slot takeover (two cheap
/// requests of the attacker, or any busy slot mate once more than 128 users are busy) one
/// victim request pays a full open instead of a fingerprint hit, and under churn busy users'
/// entries are evicted ahead of idle ones, which the cache without `Recent` did not do.
///
/// Expected: an active session held in `Recent` keeps its cache entry as well as one that is not
/// (a `Recent` hit counts as a use of the entry). Was: the entry was evicted, and the request
/// after the slot was taken went the full way.
#[tokio::test]
async fn fixed_recent_hits_leave_the_cache_entry_cold() {
    // Opaque access tokens: the full path builds new claims for every request (a JWT's
    // session claims may be memoized with its verification), so the claims' address tells the
    // paths apart.
    let clock = tower_oidc_auth::ManualClock::starting_now();
    let provider = tower_oidc_auth::testing::TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .opaque_access_tokens(true)
        .start()
        .await;
    let auth = provider
        .layer_builder(REDIRECT)
        .session_cache_capacity(64)
        .build()
        .await
        .expect("build");
    let s = Setup {
        app: app(&auth),
        provider,
        auth,
        clock,
    };
    let app = ptr_app(&s.auth);
    let ptr = |cookie: String| {
        let app = app.clone();
        async move {
            let resp = app.oneshot(request("/ptr", &cookie)).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            body_string(resp).await
        }
    };
    // The victim (held in `Recent`), the attacker's cookie in her slot, and a control user
    // with a slot mate who keeps him out of `Recent`.
    let victim = login_in_slot(&s, None, &[]).await;
    let victim_slot = slot(split_session(&victim).1.as_bytes());
    let attacker = login_in_slot(&s, Some(victim_slot), &[]).await;
    let control = login_in_slot(&s, None, &[victim_slot]).await;
    let control_slot = slot(split_session(&control).1.as_bytes());
    let mate = login_in_slot(&s, Some(control_slot), &[]).await;
    let avoid = [victim_slot, control_slot];
    let mut others = Vec::new();
    for _ in 0..300 {
        others.push(login_in_slot(&s, None, &avoid).await);
    }

    // The observable: requests answered from one entry get claims at one address (kept alive
    // by `ptr_app`, so a request that goes the full way gets a new one).
    let unseen = login_in_slot(&s, None, &avoid).await;
    let first = ptr(unseen.clone()).await;
    assert_eq!(
        ptr(unseen.clone()).await,
        first,
        "an entry answers with its claims"
    );
    for _ in 0..6 {
        ptr(victim.clone()).await;
    }
    let victim_claims = ptr(victim.clone()).await;
    let _ = ptr(control.clone()).await;
    let _ = ptr(mate.clone()).await;
    let control_claims = ptr(control.clone()).await;
    // Churn: other users, each a few requests; the victim and the control user active in
    // between.
    for other in &others {
        for _ in 0..3 {
            ptr(other.clone()).await;
        }
        assert_eq!(ptr(victim.clone()).await, victim_claims);
        assert_eq!(ptr(control.clone()).await, control_claims, "control");
        ptr(mate.clone()).await;
    }
    // Control: always hit the cache, kept his entry.
    assert_eq!(ptr(control.clone()).await, control_claims, "control");
    // The attacker takes the victim's slot.
    for _ in 0..3 {
        ptr(attacker.clone()).await;
    }
    assert_eq!(
        ptr(victim.clone()).await,
        victim_claims,
        "the active victim's cache entry was evicted while she was answered from Recent; her \
         request went the full way"
    );
}
