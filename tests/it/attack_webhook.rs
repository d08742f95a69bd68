//! Attacks on `POST /auth/webhook` (Scalekit webhooks, Standard Webhooks signatures), the
//! revocation store it writes to, and the callback's refusal of sign-ins into ended sessions.
//!
//! Every test asserts the SECURE behaviour: a failing test is a finding. Payloads are Scalekit's
//! own examples (`tests/fixtures/scalekit-webhook-examples.json`, extracted verbatim from the
//! `webhooks:` section of Scalekit's OpenAPI specification), with only ids changed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{header, HeaderValue, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;
use tower_oidc_auth::{sign_webhook, Clock, RevocationKey, WebhookEvent};

use crate::alloc::live_bytes;
use crate::helpers::*;

// The live-bytes counter per thread is `crate::alloc::live_bytes` (the binary's global allocator).

// ---------------------------------------------------------------------------------------------
// Helpers (the webhook fixtures and signing are in helpers/webhook.rs).

fn counter() -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let c = Arc::new(AtomicUsize::new(0));
    (c.clone(), c)
}

// =============================================================================================
// FINDINGS (these fail while the weakness exists)
// =============================================================================================

/// Replaying a captured delivery that the app fails to handle (its handler returns `Err`, the
/// revocation store is down, or a `user.logout` without `user_session` answered 422) is not
/// deduplicated, by design, so the retry can run. But every such replay pushes another
/// `(expiry, id)` slot onto the delivery log's queue (`Deliveries::begin`), while
/// `finish(id, false)` only removes the map entry: the queue is unbounded (the cap
/// `MAX_DELIVERIES` counts map entries only) and each slot lives 601 s. An attacker with one
/// captured failing delivery grows the process's memory by one slot per request for ten
/// minutes, at the cost of one HMAC per request.
///
/// Secure: replays of one delivery id cost bounded memory.
#[tokio::test]
async fn replaying_a_failing_delivery_does_not_grow_memory() {
    let s = setup_with(|c| {
        c.webhook_secret(WEBHOOK_SECRET)
            .on_webhook(|_e: WebhookEvent| async move { Err::<(), _>("database unavailable") })
    })
    .await;
    let body = serde_json::to_string(&webhook_example("organization.created")).unwrap();
    let now = s.clock.now();
    let sig = sign_webhook(WEBHOOK_SECRET, WEBHOOK_MSG, now, body.as_bytes()).unwrap();
    let replay = || raw_webhook(WEBHOOK_MSG, &now.to_string(), &sig, &body);

    // Warm up: lazily built state, buffers at their working size.
    for _ in 0..500 {
        assert_eq!(
            serve_status(&s, replay()).await,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    let before = live_bytes();
    const REPLAYS: isize = 20_000;
    for _ in 0..REPLAYS {
        assert_eq!(
            serve_status(&s, replay()).await,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    let grown = live_bytes() - before;
    assert!(
        grown < 256 * 1024,
        "{REPLAYS} replays of ONE failing delivery id left {grown} bytes allocated \
         ({} bytes per replay): the delivery log's queue grows by one slot per replay",
        grown / REPLAYS
    );
}

/// An `on_webhook` closure that panics before it returns its future (the synchronous part,
/// e.g. `move |e| { let id = e.data["id"].as_str().unwrap().to_owned(); async move { .. } }`)
/// is called outside `catch_unwind` (`handle` wraps only the returned future). The panic
/// unwinds through the route: no answer is sent, and `Deliveries::finish` never runs, so the
/// delivery stays `InFlight` for 601 s and every retry Scalekit sends in that time is answered
/// 409 `delivery_in_progress`.
///
/// Secure: the panic is caught like an async one (500, `handler_failed`), and the retry runs.
#[tokio::test]
async fn a_handler_panicking_before_its_future_is_caught_and_retried() {
    let f = Arc::new(AtomicBool::new(false));
    let (calls, seen) = counter();
    let s = setup_with(move |c| {
        c.webhook_secret(WEBHOOK_SECRET)
            .on_webhook(move |e: WebhookEvent| {
                seen.fetch_add(1, Ordering::SeqCst);
                if e.kind == "organization.created" && !f.swap(true, Ordering::SeqCst) {
                    panic!("app bug in the synchronous part of a webhook handler");
                }
                async move {}
            })
    })
    .await;
    let body = serde_json::to_string(&webhook_example("organization.created")).unwrap();
    let now = s.clock.now();

    let first = tokio::spawn(
        s.app
            .clone()
            .oneshot(signed_webhook(WEBHOOK_MSG, now, &body)),
    )
    .await;
    let first = match first {
        Ok(Ok(resp)) => Ok(resp.status()),
        Ok(Err(never)) => match never {},
        Err(join) => Err(format!("the route panicked: {join}")),
    };
    // Scalekit retries the same message id a few seconds later, re-signed.
    let retry = serve_status(&s, signed_webhook(WEBHOOK_MSG, now + 5, &body)).await;
    assert!(
        first == Ok(StatusCode::INTERNAL_SERVER_ERROR) && retry.is_success(),
        "first delivery: {first:?} (want 500); retry 5 s later: {retry} (want 2xx); \
         handler calls: {}",
        calls.load(Ordering::SeqCst)
    );
}

/// A delivery whose handling is cancelled (an app-wide timeout such as `tower_http`'s
/// `TimeoutLayer` drops the route's future while a handler waits on a database) never reaches
/// `Deliveries::finish`: the id stays `InFlight` for 601 s, and Scalekit's retries in that time
/// are answered 409 and counted as failed deliveries. With a retry schedule of about 22
/// minutes, most of the retries are refused.
///
/// Secure: a delivery whose handling was abandoned is forgotten, so its retry runs.
#[tokio::test]
async fn a_cancelled_delivery_does_not_block_its_retries() {
    let (calls, seen) = counter();
    let s = setup_with(move |c| {
        c.webhook_secret(WEBHOOK_SECRET)
            .on_webhook(move |_e: WebhookEvent| {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        // The first attempt hangs (a slow database).
                        std::future::pending::<()>().await;
                    }
                }
            })
    })
    .await;
    let body = serde_json::to_string(&webhook_example("user.signup")).unwrap();
    let now = s.clock.now();
    let first = tokio::time::timeout(
        Duration::from_millis(300),
        s.app
            .clone()
            .oneshot(signed_webhook(WEBHOOK_MSG, now, &body)),
    )
    .await;
    assert!(first.is_err(), "the first attempt is still running");
    // Scalekit's next attempts: seconds, then minutes later (same id, re-signed).
    let mut answers = Vec::new();
    for delay in [5, 120, 290] {
        s.clock.advance(Duration::from_secs(delay));
        answers.push(serve_status(&s, signed_webhook(WEBHOOK_MSG, s.clock.now(), &body)).await);
    }
    assert!(
        answers.iter().any(StatusCode::is_success),
        "every retry after the cancelled attempt was refused: {answers:?}; handler calls: {}",
        calls.load(Ordering::SeqCst)
    );
}

/// The default `MemoryRevocationStore` (100,000 records, 30-day TTL) is a quick_cache: once it
/// holds 100,000 live records, it keeps the old ones and evicts the records inserted last,
/// silently and long before their TTL. A session ended by a `user.logout` webhook then works
/// again after about 4,000 more revocations (measured: alive after 3,000, gone after 4,000).
/// A full store is the steady state of an app with about 1,700 to 3,300 sign-outs a day (two
/// keys per `/auth/logout`, one per webhook, each kept 30 days). The delivery log refuses (503) rather
/// than forget; the revocation store fails open.
///
/// Here: 100,000 older revocations recorded directly in the layer's store (the last 30 days),
/// then the victim's `user.logout`, then 5,000 other users' `user.logout` deliveries through the
/// route. The holder of a stolen copy of the victim's cookie waited (a record that is read is
/// promoted and survives). The revived session works until its access token expires; a real
/// Scalekit then refuses its refresh (the provider session is gone).
///
/// Secure: a recorded revocation is honoured until its TTL (or the store refuses new records
/// and the delivery is retried, as the delivery log does). Fixed in issue 14 part B: the store
/// is an exact map with expiry, never evicting.
#[tokio::test]
async fn a_webhook_logout_is_not_evicted_from_a_full_store() {
    let s = setup_with(|c| c.webhook_secret(WEBHOOK_SECRET)).await;
    let (mut stolen, sid) = session_with_sid(&s).await;
    let now = s.clock.now();
    let store = s.auth.revocation_store().clone();
    for i in 0..100_000 {
        store
            .revoke(
                RevocationKey::session("https://earlier-sign-outs", &format!("ses_{i}")),
                now - 3600,
                Duration::from_secs(30 * 24 * 3600),
            )
            .await
            .unwrap();
    }
    assert!(
        serve_status(&s, signed_webhook(WEBHOOK_MSG, now, &user_logout(&sid)))
            .await
            .is_success()
    );
    for i in 0..5_000 {
        let body = user_logout(&format!("ses_other_{i}"));
        let st = serve_status(&s, signed_webhook(&format!("msg_other_{i}"), now, &body)).await;
        assert!(st.is_success(), "{st}");
    }
    assert_eq!(
        me(&s, &mut stolen).await,
        StatusCode::UNAUTHORIZED,
        "the session ended by the webhook works again after 5,000 later sign-outs"
    );
}

// =============================================================================================
// GUARDS (attacks that held; kept so they stay held)
// =============================================================================================

/// Without `webhook_secret` the layer does not answer the route at all: the request reaches the
/// app (here: no such route, 404) and ends nothing.
#[tokio::test]
async fn no_secret_no_webhook_route() {
    let s = setup().await;
    let (mut jar, sid) = session_with_sid(&s).await;
    let now = s.clock.now();
    let resp = s
        .app
        .clone()
        .oneshot(signed_webhook(WEBHOOK_MSG, now, &user_logout(&sid)))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(me(&s, &mut jar).await, StatusCode::OK);
}

/// Forgeries and header games: none is accepted, none answers 5xx, none ends the session and
/// the app's handler never runs.
#[tokio::test]
async fn forged_and_mangled_deliveries_are_refused() {
    let (calls, seen) = counter();
    let s = setup_with(move |c| {
        c.webhook_secret(WEBHOOK_SECRET)
            .on_webhook(move |_e: WebhookEvent| {
                seen.fetch_add(1, Ordering::SeqCst);
                async move {}
            })
    })
    .await;
    let (mut jar, sid) = session_with_sid(&s).await;
    let body = user_logout(&sid);
    let now = s.clock.now();
    let ts = now.to_string();
    let good = sign_webhook(WEBHOOK_SECRET, WEBHOOK_MSG, now, body.as_bytes()).unwrap();
    let b64 = good.strip_prefix("v1,").unwrap().to_owned();
    let mac = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(&b64)
            .unwrap()
    };
    let enc = |bytes: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    let signed_str = |id: &str, ts: &str, body: &str| {
        // A signature over an arbitrary timestamp string, with the right key (what a signer
        // that formats timestamps differently would send).
        use base64::Engine;
        use hmac::{Hmac, Mac};
        let key = base64::engine::general_purpose::STANDARD
            .decode(WEBHOOK_SECRET.strip_prefix("whsec_").unwrap())
            .unwrap();
        let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).unwrap();
        m.update(format!("{id}.{ts}.{body}").as_bytes());
        format!("v1,{}", enc(&m.finalize().into_bytes()))
    };

    let mut cases: Vec<(&str, Request<Body>)> = vec![
        (
            "body with a trailing space",
            raw_webhook(WEBHOOK_MSG, &ts, &good, &format!("{body} ")),
        ),
        (
            "id in other case",
            raw_webhook(&WEBHOOK_MSG.to_uppercase(), &ts, &good, &body),
        ),
        (
            "timestamp moved by one second",
            raw_webhook(WEBHOOK_MSG, &(now + 1).to_string(), &good, &body),
        ),
        (
            "timestamp with a plus sign",
            raw_webhook(WEBHOOK_MSG, &format!("+{now}"), &good, &body),
        ),
        (
            "timestamp with a leading zero",
            raw_webhook(WEBHOOK_MSG, &format!("0{now}"), &good, &body),
        ),
        (
            "timestamp as a float",
            raw_webhook(WEBHOOK_MSG, &format!("{now}.0"), &good, &body),
        ),
        (
            "timestamp in milliseconds",
            raw_webhook(WEBHOOK_MSG, &format!("{now}000"), &good, &body),
        ),
        (
            "MAC truncated to 16 bytes",
            raw_webhook(WEBHOOK_MSG, &ts, &format!("v1,{}", enc(&mac[..16])), &body),
        ),
        (
            "MAC with a 33rd byte",
            raw_webhook(
                WEBHOOK_MSG,
                &ts,
                &format!("v1,{}", enc(&[&mac[..], &[0]].concat())),
                &body,
            ),
        ),
        (
            "MAC unpadded",
            raw_webhook(
                WEBHOOK_MSG,
                &ts,
                &format!("v1,{}", b64.trim_end_matches('=')),
                &body,
            ),
        ),
        (
            "v1 in upper case",
            raw_webhook(WEBHOOK_MSG, &ts, &good.replace("v1,", "V1,"), &body),
        ),
        (
            "all-zero MAC",
            raw_webhook(WEBHOOK_MSG, &ts, &format!("v1,{}", enc(&[0; 32])), &body),
        ),
        (
            "empty signature",
            raw_webhook(WEBHOOK_MSG, &ts, "v1,", &body),
        ),
        (
            "17 candidates, the good one last",
            raw_webhook(
                WEBHOOK_MSG,
                &ts,
                &format!("{} {good}", vec!["v1,AAAA"; 16].join(" ")),
                &body,
            ),
        ),
        (
            "candidates separated by tabs",
            raw_webhook(WEBHOOK_MSG, &ts, &format!("v1,AAAA\t{good}"), &body),
        ),
        (
            "stale by 301 s, correctly signed",
            signed_webhook(WEBHOOK_MSG, now - 301, &body),
        ),
        (
            "future by 301 s, correctly signed",
            signed_webhook(WEBHOOK_MSG, now + 301, &body),
        ),
        (
            "float timestamp, correctly signed",
            raw_webhook(
                WEBHOOK_MSG,
                &format!("{now}.0"),
                &signed_str(WEBHOOK_MSG, &format!("{now}.0"), &body),
                &body,
            ),
        ),
        (
            "timestamp with spaces, correctly signed",
            raw_webhook(
                WEBHOOK_MSG,
                &format!("{now} 1"),
                &signed_str(WEBHOOK_MSG, &format!("{now} 1"), &body),
                &body,
            ),
        ),
        (
            "i64::MIN timestamp, correctly signed",
            raw_webhook(
                WEBHOOK_MSG,
                "-9223372036854775808",
                &signed_str(WEBHOOK_MSG, "-9223372036854775808", &body),
                &body,
            ),
        ),
        ("body over 64 KiB, correctly signed", {
            let big = format!(
                "{}{}",
                &body[..body.len() - 1],
                format_args!(",\"pad\":\"{}\"}}", "x".repeat(70_000))
            );
            signed_webhook(WEBHOOK_MSG, now, &big)
        }),
    ];
    if b64.contains(['+', '/']) {
        let url_safe = format!("v1,{}", b64.replace('+', "-").replace('/', "_"));
        cases.push((
            "MAC url-safe alphabet",
            raw_webhook(WEBHOOK_MSG, &ts, &url_safe, &body),
        ));
    }
    // Duplicate headers: the first value is the one verified and remembered.
    let mut dup = raw_webhook("msg_attacker", &ts, "v1,AAAA", &body);
    dup.headers_mut()
        .append("webhook-id", HeaderValue::from_static(WEBHOOK_MSG));
    dup.headers_mut()
        .append("webhook-signature", HeaderValue::from_str(&good).unwrap());
    cases.push(("duplicate headers, good values second", dup));
    // A non-UTF-8 id.
    let mut bin = raw_webhook(WEBHOOK_MSG, &ts, &good, &body);
    bin.headers_mut()
        .insert("webhook-id", HeaderValue::from_bytes(b"msg_\xff").unwrap());
    cases.push(("non-UTF-8 webhook-id", bin));
    // No headers at all.
    let mut bare = raw_webhook(WEBHOOK_MSG, &ts, &good, &body);
    bare.headers_mut().remove("webhook-signature");
    cases.push(("no webhook-signature", bare));

    for (what, req) in cases {
        let resp = s.app.clone().oneshot(req).await.unwrap();
        let st = resp.status();
        let text = body_string(resp).await;
        assert!(st.is_client_error(), "{what}: {st} {text}");
        assert!(
            !text.contains(&sid) && !text.contains("whsec"),
            "{what}: leaks {text}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(me(&s, &mut jar).await, StatusCode::OK);
}

/// Replays across the whole window: a delivery signed at the future edge (`now + 300`) is
/// remembered until its signature stops verifying; concurrent duplicates run the handler once.
#[tokio::test]
async fn replays_and_concurrent_duplicates_run_once() {
    let (calls, seen) = counter();
    let gate = Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    let s = setup_with(move |c| {
        c.webhook_secret(WEBHOOK_SECRET)
            .on_webhook(move |_e: WebhookEvent| {
                seen.fetch_add(1, Ordering::SeqCst);
                let g = g.clone();
                async move { g.notified().await }
            })
    })
    .await;
    let body = serde_json::to_string(&webhook_example("user.signup")).unwrap();
    let now = s.clock.now();
    let ts = now + 300;
    let sig = sign_webhook(WEBHOOK_SECRET, WEBHOOK_MSG, ts, body.as_bytes()).unwrap();
    let replay = || raw_webhook(WEBHOOK_MSG, &ts.to_string(), &sig, &body);

    let first = tokio::spawn(s.app.clone().oneshot(replay()));
    tokio::task::yield_now().await;
    while calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    // While the first is running, copies are refused with 409 (Scalekit retries later).
    for _ in 0..5 {
        assert_eq!(serve_status(&s, replay()).await, StatusCode::CONFLICT);
    }
    gate.notify_one();
    assert!(first.await.unwrap().unwrap().status().is_success());
    // Replays until the very end of the signature's validity are acknowledged and ignored.
    for at in [now, now + 300, now + 600] {
        s.clock.set(at);
        let st = serve_status(&s, replay()).await;
        assert!(st.is_success(), "at +{}: {st}", at - now);
    }
    s.clock.set(now + 601);
    assert_eq!(serve_status(&s, replay()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // The clock steps back after a delivery was handled: its replay is still a duplicate.
    let later = now + 1000;
    s.clock.set(later);
    let other = signed_webhook("msg_clock", later, &body);
    let handled = tokio::spawn(s.app.clone().oneshot(other));
    while calls.load(Ordering::SeqCst) == 1 {
        tokio::task::yield_now().await;
    }
    gate.notify_one();
    assert!(handled.await.unwrap().unwrap().status().is_success());
    s.clock.set(later - 250);
    assert!(serve_status(&s, signed_webhook("msg_clock", later, &body))
        .await
        .is_success());
    assert_eq!(calls.load(Ordering::SeqCst), 2, "not run again");
}

/// A handler whose future panics (the documented case) answers 500 and its retry runs.
#[tokio::test]
async fn an_async_handler_panic_is_caught_and_retried() {
    let (calls, seen) = counter();
    let s = setup_with(move |c| {
        c.webhook_secret(WEBHOOK_SECRET)
            .on_webhook(move |_e: WebhookEvent| {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        panic!("app bug inside the handler's future");
                    }
                }
            })
    })
    .await;
    let body = serde_json::to_string(&webhook_example("user.signup")).unwrap();
    let now = s.clock.now();
    let resp = s
        .app
        .clone()
        .oneshot(signed_webhook(WEBHOOK_MSG, now, &body))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!body_string(resp).await.contains("app bug"));
    assert!(
        serve_status(&s, signed_webhook(WEBHOOK_MSG, now + 5, &body))
            .await
            .is_success()
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// Signed events with odd JSON: duplicate keys, deep nesting, huge numbers, wrong types, a BOM.
/// None answers 5xx, and none ends more than one session (duplicate `session_id` keys: the last
/// one wins, the first session stays).
#[tokio::test]
async fn odd_json_never_ends_more_than_one_session() {
    let s = setup_with(|c| c.webhook_secret(WEBHOOK_SECRET)).await;
    let (mut a, sid_a) = session_with_sid(&s).await;
    let (mut b, sid_b) = session_with_sid(&s).await;
    let now = s.clock.now();
    let dup_sid = format!(
        r#"{{"id":"evt_1","type":"user.logout","data":{{"user_session":{{"session_id":"{sid_a}","session_id":"{sid_b}"}}}}}}"#
    );
    let bodies = vec![
        dup_sid,
        format!(
            r#"{{"id":"evt_2","type":"user.logout","type":"user.login","data":{{"user_session":{{"session_id":"{sid_a}"}}}}}}"#
        ),
        format!(
            r#"{{"id":"evt_3","type":"user.logout","data":{{"user_session":{{"session_id":"{sid_a}"}},"user_session":{{}}}}}}"#
        ),
        format!(
            r#"{{"id":"evt_4","type":"user.logout","data":{}1{}}}"#,
            "[".repeat(20_000),
            "]".repeat(20_000)
        ),
        format!(
            r#"{{"id":"evt_5","type":"user.logout","n":1e400,"data":{{"n":-1e999999,"user_session":{{"session_id":"ses_nobody","n":123456789012345678901234567890}}}}}}"#
        ),
        r#"{"id":"evt_6","type":"user.logout","data":"user_session"}"#.to_owned(),
        r#"{"id":7,"type":"user.logout"}"#.to_owned(),
        format!("\u{feff}{}", user_logout(&sid_a)),
        "null".to_owned(),
        "[]".to_owned(),
        String::new(),
    ];
    for (i, body) in bodies.iter().enumerate() {
        let st = serve_status(&s, signed_webhook(&format!("msg_j{i}"), now, body)).await;
        assert!(!st.is_server_error(), "body {i}: {st}");
    }
    let ended = [me(&s, &mut a).await, me(&s, &mut b).await];
    assert_eq!(
        ended,
        [StatusCode::OK, StatusCode::UNAUTHORIZED],
        "only the last duplicate session_id is ended"
    );
}

/// `user.logout` ends exactly the session it names: crafted `session_id` values (wildcards,
/// prefixes, case, whitespace, unicode look-alikes, over-long, empty, wrong types) and odd
/// `type` spellings end nothing; the real one ends only that session, not the user's other
/// session nor another user's.
#[tokio::test]
async fn user_logout_ends_exactly_one_session() {
    let s = setup_with(|c| c.webhook_secret(WEBHOOK_SECRET)).await;
    let (mut a1, sid) = session_with_sid(&s).await;
    let (mut a2, _) = session_with_sid(&s).await;
    s.provider
        .set_user(Some(tower_oidc_auth::testing::TestUser::new("usr_other")));
    let (mut b, _) = session_with_sid(&s).await;
    let now = s.clock.now();

    let crafted: Vec<Value> = vec![
        Value::from("*"),
        Value::from("%"),
        Value::from(""),
        Value::from(&sid[..sid.len() - 1]),
        Value::from(format!("{sid} ")),
        Value::from(format!(" {sid}")),
        Value::from(sid.to_uppercase()),
        Value::from(format!("{sid}\u{0}")),
        Value::from(sid.replace('s', "\u{0455}")), // Cyrillic dze
        Value::from("x".repeat(513)),
        Value::from(format!("{sid}|sub|usr_42")),
        Value::from("local|anything"), // looks like another kind of store key
        Value::Null,
        Value::from(42),
        serde_json::json!([sid]),
        serde_json::json!({ "id": sid }),
    ];
    for (i, v) in crafted.into_iter().enumerate() {
        let mut event = webhook_example("user.logout");
        event["data"]["user_session"]["session_id"] = v.clone();
        let body = serde_json::to_string(&event).unwrap();
        let st = serve_status(&s, signed_webhook(&format!("msg_c{i}"), now, &body)).await;
        assert!(!st.is_server_error(), "{v}: {st}");
    }
    // The user's id, the org id, and `sid` in other places end nothing.
    for (i, patch) in [
        serde_json::json!({"user": {"id": "usr_42"}}),
        serde_json::json!({"user_session": {"user_id": "usr_42", "organization_id": "org_1"}}),
        serde_json::json!({"session_id": sid, "sid": sid}),
    ]
    .into_iter()
    .enumerate()
    {
        let mut event = webhook_example("user.logout");
        event["data"] = patch;
        let body = serde_json::to_string(&event).unwrap();
        let _ = serve_status(&s, signed_webhook(&format!("msg_p{i}"), now, &body)).await;
    }
    // Other event types naming the session end nothing.
    for (i, kind) in [
        "USER.LOGOUT",
        "user.logout ",
        "user.Logout",
        "user.login",
        "user.logout.v2",
    ]
    .into_iter()
    .enumerate()
    {
        let mut event = webhook_example("user.logout");
        event["type"] = Value::from(kind);
        event["data"]["user_session"]["session_id"] = Value::from(sid.clone());
        let body = serde_json::to_string(&event).unwrap();
        let st = serve_status(&s, signed_webhook(&format!("msg_t{i}"), now, &body)).await;
        assert!(st.is_success(), "{kind}: {st}");
    }
    assert_eq!(
        me(&s, &mut a1).await,
        StatusCode::OK,
        "nothing ended a1 yet"
    );

    // The real event.
    let st = serve_status(&s, signed_webhook(WEBHOOK_MSG, now, &user_logout(&sid))).await;
    assert!(st.is_success(), "{st}");
    assert_eq!(me(&s, &mut a1).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        me(&s, &mut a2).await,
        StatusCode::OK,
        "same user, other session"
    );
    assert_eq!(me(&s, &mut b).await, StatusCode::OK, "other user");
}

/// `occurred_at` far in the past or future neither shortens the revocation nor breaks later
/// sign-ins: a session ended by an event dated 1970 stays ended after six days (past the
/// access token's lifetime, through a refresh); one dated 9999 too.
#[tokio::test]
async fn occurred_at_does_not_shorten_the_revocation() {
    let s = setup_with(|c| c.webhook_secret(WEBHOOK_SECRET)).await;
    let (mut old, old_sid) = session_with_sid(&s).await;
    let (mut future, future_sid) = session_with_sid(&s).await;
    let now = s.clock.now();
    for (i, (sid, at)) in [
        (&old_sid, "1970-01-01T00:00:00Z"),
        (&future_sid, "9999-12-31T23:59:59.999999999Z"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut event = webhook_example("user.logout");
        event["occurred_at"] = Value::from(at);
        event["data"]["user_session"]["session_id"] = Value::from(sid.clone());
        let body = serde_json::to_string(&event).unwrap();
        assert!(
            serve_status(&s, signed_webhook(&format!("msg_o{i}"), now, &body))
                .await
                .is_success()
        );
    }
    s.clock.advance(Duration::from_secs(6 * 24 * 3600));
    assert_eq!(me(&s, &mut old).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&s, &mut future).await, StatusCode::UNAUTHORIZED);
    // A new sign-in (new provider session) works.
    let (mut fresh, _) = session_with_sid(&s).await;
    assert_eq!(me(&s, &mut fresh).await, StatusCode::OK);
}

/// The callback refuses a silent sign-in into the ended provider session, but cannot be used to
/// lock the user out: the page's own "sign in again" link (`prompt=login`, followed from the
/// app's page) yields a new provider session and signs in.
#[tokio::test]
async fn a_refused_sign_in_into_an_ended_session_can_recover() {
    let s = setup_with(|c| c.webhook_secret(WEBHOOK_SECRET)).await;
    let mut jar = Jar::default();
    let resp = send(&s.app, &mut jar, get_html("/auth/login?return_to=%2Fme")).await;
    let (callback, sso) = authorize_with(&location(&resp), None).await;
    let sso = sso.expect("the provider starts a single sign-on session");
    assert_eq!(
        send(&s.app, &mut jar, get_html(&callback)).await.status(),
        StatusCode::FOUND
    );
    let resp = send(&s.app, &mut jar, get_json("/me")).await;
    let claims: Value = serde_json::from_str(&body_string(resp).await).unwrap();
    let sid = claims["sid"].as_str().unwrap().to_owned();
    let now = s.clock.now();
    assert!(
        serve_status(&s, signed_webhook(WEBHOOK_MSG, now, &user_logout(&sid)))
            .await
            .is_success()
    );

    // Silent sign-in with the same provider session: refused.
    let resp = send(&s.app, &mut jar, get_html("/auth/login")).await;
    let (callback, _) = authorize_with(&location(&resp), Some(&sso)).await;
    let resp = send(&s.app, &mut jar, get_html(&callback)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // The offered link, followed from the app's own page.
    let req = Request::get("/auth/login?prompt=login")
        .header(header::ACCEPT, "text/html")
        .header("sec-fetch-site", "same-origin")
        .header("sec-fetch-mode", "navigate")
        .body(Body::empty())
        .unwrap();
    let resp = send(&s.app, &mut jar, req).await;
    assert!(location(&resp).contains("prompt=login"));
    let (callback, _) = authorize_with(&location(&resp), Some(&sso)).await;
    assert_eq!(
        send(&s.app, &mut jar, get_html(&callback)).await.status(),
        StatusCode::FOUND
    );
    assert_eq!(me(&s, &mut jar).await, StatusCode::OK);
}
