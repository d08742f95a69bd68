//! Attack 11: the layer's metrics, read through a recorder installed once for this test binary
//! (its own process: a recorder is global). The tests are serialized by a lock and compare
//! counters before and after (counters are cumulative; a snapshot drains histograms). Each test
//! asserts the correct behaviour: a failing test is a defect.
#![allow(dead_code)]
// The lock serializes the tests, each on a runtime of its own: holding it across awaits blocks
// no task that would release it.
#![allow(clippy::await_holding_lock)]

#[path = "it/helpers/mod.rs"]
mod helpers;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, OnceLock};

use axum::body::Body;
use axum::routing::get;
use axum::{Json, Router};
use helpers::*;
use http::{header, Request, StatusCode};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;
use tower_oidc_auth::testing::TestProvider;
use tower_oidc_auth::{AuthLayer, Claims, ManualClock};

const MARK: &str = "LEAKME";

fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only recorder of this process");
        snapshotter
    })
}

/// One test at a time: the counters are the process's.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// `name{k=v,...}` -> value, for counters; `name{..}` -> observations, for histograms (since
/// the last snapshot); gauges by their value's bits.
#[derive(Default, Debug, Clone)]
struct Snap {
    counters: BTreeMap<String, u64>,
    histograms: BTreeMap<String, usize>,
    gauges: BTreeMap<String, u64>,
    labels: Vec<(String, String, String)>,
}

fn snap() -> Snap {
    let mut s = Snap::default();
    for (key, _, _, value) in snapshotter().snapshot().into_vec() {
        let mut labels: Vec<String> = key
            .key()
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        for l in key.key().labels() {
            s.labels.push((
                key.key().name().to_owned(),
                l.key().to_owned(),
                l.value().to_owned(),
            ));
        }
        let id = format!("{}{{{}}}", key.key().name(), labels.join(","));
        match (key.kind(), value) {
            (MetricKind::Counter, DebugValue::Counter(n)) => {
                s.counters.insert(id, n);
            }
            (MetricKind::Histogram, DebugValue::Histogram(v)) => {
                s.histograms.insert(id, v.len());
            }
            (MetricKind::Gauge, DebugValue::Gauge(g)) => {
                s.gauges.insert(id, g.into_inner().to_bits());
            }
            _ => {}
        }
    }
    s
}

/// What each counter grew by between two snapshots (only those that grew).
fn grew(before: &Snap, after: &Snap) -> BTreeMap<String, u64> {
    after
        .counters
        .iter()
        .filter_map(|(k, v)| {
            let was = before.counters.get(k).copied().unwrap_or(0);
            (*v > was).then(|| (k.clone(), v - was))
        })
        .collect()
}

fn delta(before: &Snap, after: &Snap, id: &str) -> u64 {
    grew(before, after).get(id).copied().unwrap_or(0)
}

struct World {
    provider: TestProvider,
    clock: ManualClock,
    auth: AuthLayer,
    app: Router,
}

async fn world() -> World {
    let clock = ManualClock::starting_now();
    let provider = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    let auth = provider
        .layer_builder(REDIRECT)
        .clock(clock.clone())
        .webhook_secret(webhook::WEBHOOK_SECRET)
        .build()
        .await
        .unwrap();
    let app = Router::new()
        .route("/me", get(|c: Claims| async move { Json(c) }))
        .route_layer(auth.require())
        .route(
            "/admin",
            get(|c: Claims| async move { Json(c) }).route_layer(auth.require_role("superuser")),
        )
        .route("/public", get(|| async { "public" }))
        .layer(auth.clone());
    World {
        provider,
        clock,
        auth,
        app,
    }
}

fn get_uri(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// Threat: anyone can send a browser to `/auth/callback?error=server_error` (no login attempt,
/// no state): the forged callback is counted as `oidc_logins_total{outcome="provider_error"}`,
/// the series an operator alerts on for provider outages. A callback that matches no login
/// attempt is `invalid`, whatever `error` it carries.
#[tokio::test]
async fn a_forged_callback_with_an_error_is_not_counted_as_a_provider_failure() {
    let _serial = serial();
    let w = world().await;
    let before = snap();
    for error in ["server_error", "temporarily_unavailable", "invalid_request"] {
        let resp = serve(
            &w.app,
            get_uri(&format!("/auth/callback?error={error}&state=forged")),
        )
        .await;
        assert!(resp.status().is_client_error() || resp.status().is_server_error());
    }
    let after = snap();
    assert_eq!(
        delta(&before, &after, "oidc_logins_total{outcome=provider_error}"),
        0,
        "forged callbacks counted as provider failures: {:?}",
        grew(&before, &after)
    );
}

/// Threat: a forged `/auth/callback?error=access_denied` (no login attempt) is counted as a
/// denied sign-in (`outcome="denied"`), so anyone can fake "users are being denied".
#[tokio::test]
async fn a_forged_access_denied_callback_is_not_counted_as_a_denied_login() {
    let _serial = serial();
    let w = world().await;
    let before = snap();
    let resp = serve(&w.app, get_uri("/auth/callback?error=access_denied")).await;
    assert!(resp.status().is_client_error());
    let after = snap();
    assert_eq!(
        delta(&before, &after, "oidc_logins_total{outcome=denied}"),
        0,
        "a forged callback counted as a denied login: {:?}",
        grew(&before, &after)
    );
}

/// Threat: metrics recorded on the signed-in hot path (a session or a bearer token served from
/// the caches): any counter, histogram or gauge moving on plain signed-in requests.
#[tokio::test]
async fn guard_signed_in_requests_record_nothing() {
    let _serial = serial();
    let w = world().await;
    let cookie = w.provider.session_cookie(&w.auth, &user());
    let token = w.provider.access_token(&user());
    // Warm the caches.
    assert_eq!(
        serve(&w.app, request("/me", &cookie)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        serve(&w.app, bearer("/me", &token)).await.status(),
        StatusCode::OK
    );
    let before = snap();
    for _ in 0..25 {
        assert_eq!(
            serve(&w.app, request("/me", &cookie)).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            serve(&w.app, bearer("/me", &token)).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            serve(&w.app, get_uri("/public")).await.status(),
            StatusCode::OK
        );
    }
    let after = snap();
    assert!(
        grew(&before, &after).is_empty(),
        "{:?}",
        grew(&before, &after)
    );
    assert!(
        after.histograms.values().all(|n| *n == 0),
        "{:?}",
        after.histograms
    );
    assert_eq!(before.gauges, after.gauges);
}

/// Threat: an attacker chooses label values (high cardinality, or a user's values): bearer
/// tokens with chosen `kid`s, callbacks with chosen `error`s, webhooks with chosen types, a
/// garbage back-channel logout. Every label stays in the documented closed sets, and a flood of
/// unknown `kid`s refetches the JWKS only a few times.
#[tokio::test]
async fn guard_attacker_chosen_values_never_become_labels() {
    let _serial = serial();
    let w = world().await;
    let before = snap();
    let claims = serde_json::to_value(
        w.provider
            .access_token(&user())
            .split('.')
            .nth(1)
            .map(|p| {
                use base64::Engine;
                let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p)
                    .unwrap();
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
            })
            .unwrap(),
    )
    .unwrap();
    for i in 0..40 {
        let header =
            serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": format!("{MARK}-{i}")});
        let token = w.provider.sign_with_header(&header, &claims);
        let resp = serve(&w.app, bearer("/me", &token)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    for i in 0..5 {
        let resp = serve(
            &w.app,
            get_uri(&format!("/auth/callback?error={MARK}{i}&state={MARK}")),
        )
        .await;
        assert!(!resp.status().is_success());
        let resp = serve(&w.app, bearer("/me", &format!("{MARK}.{i}.x"))).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    // A webhook with a chosen type, unsigned and signed with a wrong secret.
    let body = format!(r#"{{"id":"evt_{MARK}","type":"{MARK}.type","data":{{}}}}"#);
    let now = tower_oidc_auth::Clock::now(&w.clock);
    let resp = serve(
        &w.app,
        webhook::raw_webhook(MARK, &now.to_string(), MARK, &body),
    )
    .await;
    assert!(!resp.status().is_success());
    let resp = serve(&w.app, webhook::signed_webhook(MARK, now, &body)).await;
    let _ = resp;
    // A back-channel logout that is not one.
    let resp = serve(&w.app, logout_token_request(MARK)).await;
    assert!(!resp.status().is_success());
    let after = snap();
    let closed: &[(&str, &str, &[&str])] = &[
        (
            "oidc_logins_total",
            "outcome",
            &["success", "provider_error", "denied", "invalid", "error"],
        ),
        (
            "oidc_backchannel_logout_total",
            "outcome",
            &["success", "refused", "unavailable"],
        ),
    ];
    for (name, key, value) in &after.labels {
        assert!(!value.contains(MARK), "{name} {key}={value}");
        assert!(value.len() <= 64, "{name} {key}={value}");
        for (n, k, allowed) in closed {
            if name == n && key == k {
                assert!(allowed.contains(&value.as_str()), "{name} {key}={value}");
            }
        }
        if name == "oidc_webhook_total" && key == "type" {
            assert!(
                value == "unknown" || value == "other" || value.contains('.'),
                "{value}"
            );
        }
    }
    let refetches: u64 = grew(&before, &after)
        .iter()
        .filter(|(k, _)| k.starts_with("oidc_jwks_refetch_total"))
        .map(|(_, v)| *v)
        .sum();
    assert!(
        refetches <= 3,
        "40 unknown kids refetched the JWKS {refetches} times"
    );
}

/// Threat: a refused request counted twice (the layer and a guard, or a guard and an
/// extractor), or not at all.
#[tokio::test]
async fn guard_a_refused_request_is_counted_once() {
    let _serial = serial();
    let w = world().await;
    let cookie = w
        .provider
        .session_cookie(&w.auth, &tower_oidc_auth::testing::TestUser::new("usr_7"));
    let before = snap();
    assert_eq!(
        serve(&w.app, get_json("/me")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let mid = snap();
    assert_eq!(
        delta(
            &before,
            &mid,
            "oidc_rejections_total{reason=no_credentials}"
        ),
        1,
        "{:?}",
        grew(&before, &mid)
    );
    assert_eq!(
        serve(&w.app, bearer("/me", "x.y.z")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let mid2 = snap();
    assert_eq!(
        delta(&mid, &mid2, "oidc_rejections_total{reason=malformed_token}"),
        1,
        "{:?}",
        grew(&mid, &mid2)
    );
    let mut req = get_json("/admin");
    req.headers_mut()
        .insert(header::COOKIE, cookie.parse().unwrap());
    assert_eq!(serve(&w.app, req).await.status(), StatusCode::FORBIDDEN);
    let after = snap();
    assert_eq!(
        grew(&mid2, &after).values().sum::<u64>(),
        1,
        "{:?}",
        grew(&mid2, &after)
    );
    assert_eq!(
        delta(&mid2, &after, "oidc_rejections_total{reason=missing_role}"),
        1
    );
}
