//! Attack 12: the login outcome counted by `login_outcome` (NoAttempt, the status of the error page), read through a recorder installed once for this test binary
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
use bytes::Bytes;
use helpers::*;
use http::{header, Request, StatusCode};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;
use tower_oidc_auth::responses::{ErrorPage, Responses};
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
/// A layer with an app's `Responses` (or the default), on a manual clock.
async fn hooked(hook: Option<Uniform>) -> World {
    let clock = ManualClock::starting_now();
    let provider = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    let mut builder = provider.layer_builder(REDIRECT).clock(clock.clone());
    if let Some(hook) = hook {
        builder = builder.responses(hook);
    }
    let auth = builder.build().await.unwrap();
    let app = Router::new()
        .route("/me", get(|c: Claims| async move { Json(c) }))
        .route_layer(auth.require())
        .layer(auth.clone());
    World {
        provider,
        clock,
        auth,
        app,
    }
}

/// An app's error pages, all with one status (a friendly page as 200, a plain 400, or a 403
/// "sign-in not possible"): the status is the app's to choose.
struct Uniform(StatusCode);

impl Responses for Uniform {
    fn error_page(&self, cx: &ErrorPage<'_>) -> http::Response<Bytes> {
        http::Response::builder()
            .status(self.0)
            .body(Bytes::from(format!(
                "sign-in failed: {}",
                cx.reason.as_str()
            )))
            .unwrap()
    }
}

/// This browser's own login attempt answered by the provider with `error`; what grew.
async fn own_error(w: &World, error: &str) -> BTreeMap<String, u64> {
    let mut jar = Jar::default();
    let state = login_attempt(&w.app, &mut jar).await;
    let before = snap();
    let resp = send(
        &w.app,
        &mut jar,
        get_html(&format!("/auth/callback?state={state}&error={error}")),
    )
    .await;
    assert!(
        !resp.status().is_server_error()
            || error == "server_error"
            || resp.status() == StatusCode::SERVICE_UNAVAILABLE
    );
    grew(&before, &snap())
}

/// Threat: the outcome of a real (own-attempt) provider error is read back from the status of
/// the page the app's `Responses::error_page` rendered: an app whose error pages are all 400
/// (or 200) counts every user's `access_denied` (cancel at the provider) as
/// `outcome="provider_error"`, paging the operator for a provider outage that is not one.
#[tokio::test]
async fn an_access_denied_is_counted_as_denied_whatever_status_the_apps_page_has() {
    let _serial = serial();
    for status in [StatusCode::BAD_REQUEST, StatusCode::OK] {
        let w = hooked(Some(Uniform(status))).await;
        let grew = own_error(&w, "access_denied").await;
        assert_eq!(
            grew.get("oidc_logins_total{outcome=denied}")
                .copied()
                .unwrap_or(0),
            1,
            "a cancel at the provider with the app's {status} page: {grew:?}"
        );
        assert_eq!(
            grew.get("oidc_logins_total{outcome=provider_error}")
                .copied()
                .unwrap_or(0),
            0,
            "{status}: {grew:?}"
        );
    }
}

/// Threat: the other way round: an app whose error pages are all 403 counts a provider's
/// `server_error` (a real outage) as `outcome="denied"`, hiding the outage from the alert on
/// `provider_error`.
#[tokio::test]
async fn a_provider_server_error_is_counted_as_provider_error_whatever_status_the_apps_page_has() {
    let _serial = serial();
    let w = hooked(Some(Uniform(StatusCode::FORBIDDEN))).await;
    let grew = own_error(&w, "server_error").await;
    assert_eq!(
        grew.get("oidc_logins_total{outcome=provider_error}")
            .copied()
            .unwrap_or(0),
        1,
        "a provider outage with the app's 403 page: {grew:?}"
    );
    assert_eq!(
        grew.get("oidc_logins_total{outcome=denied}")
            .copied()
            .unwrap_or(0),
        0,
        "{grew:?}"
    );
}

/// Threat: the default pages: an own attempt's `access_denied` is `denied` and its
/// `server_error` `provider_error` (the baseline the two tests above compare against).
#[tokio::test]
async fn guard_default_pages_count_own_attempt_errors_by_their_kind() {
    let _serial = serial();
    let w = hooked(None).await;
    let grew = own_error(&w, "access_denied").await;
    assert_eq!(
        grew.get("oidc_logins_total{outcome=denied}"),
        Some(&1),
        "{grew:?}"
    );
    let grew = own_error(&w, "server_error").await;
    assert_eq!(
        grew.get("oidc_logins_total{outcome=provider_error}"),
        Some(&1),
        "{grew:?}"
    );
}

/// Threat: an expired login attempt (the user came back after the login timeout), or a state
/// that is not this browser's (the attempt cookie of one attempt, the state of another), with
/// `error=server_error` / `access_denied`, is counted as `provider_error` / `denied`: an error
/// callback that answers no live attempt of this browser is `invalid`.
#[tokio::test]
async fn guard_expired_or_mismatched_attempts_with_an_error_count_as_invalid() {
    let _serial = serial();
    let w = hooked(None).await;
    for error in ["server_error", "access_denied"] {
        // Expired.
        let mut jar = Jar::default();
        let state = login_attempt(&w.app, &mut jar).await;
        w.clock.advance(std::time::Duration::from_secs(86_400));
        let before = snap();
        let resp = send(
            &w.app,
            &mut jar,
            get_html(&format!("/auth/callback?state={state}&error={error}")),
        )
        .await;
        assert!(!resp.status().is_success());
        let grown = grew(&before, &snap());
        assert_eq!(
            grown.get("oidc_logins_total{outcome=invalid}"),
            Some(&1),
            "{error} expired: {grown:?}"
        );
        assert_eq!(grown.len(), 1, "{error} expired: {grown:?}");

        // The attempt cookie of browser A, the state of browser B (same id prefix impossible;
        // another attempt's state entirely, and a state with A's id and a changed tail).
        let mut a = Jar::default();
        let _state_a = login_attempt(&w.app, &mut a).await;
        let mut b = Jar::default();
        let state_b = login_attempt(&w.app, &mut b).await;
        let state_a2 = login_attempt(&w.app, &mut a).await;
        let mut tampered = state_a2.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        for state in [state_b, tampered] {
            let before = snap();
            let resp = send(
                &w.app,
                &mut a,
                get_html(&format!("/auth/callback?state={state}&error={error}")),
            )
            .await;
            assert!(!resp.status().is_success());
            let grown = grew(&before, &snap());
            assert_eq!(
                grown.get("oidc_logins_total{outcome=invalid}"),
                Some(&1),
                "{error}: {grown:?}"
            );
            assert_eq!(grown.len(), 1, "{error}: {grown:?}");
        }
    }
}

/// Threat: a completed callback replayed with the attempt cookie it was sent with (the attacker
/// kept a copy; the layer's cookies are stateless) is counted as a second `success`, or, the
/// code being used, as a `provider_error`.
#[tokio::test]
async fn guard_a_replayed_successful_callback_is_neither_success_nor_provider_error() {
    let _serial = serial();
    let w = hooked(None).await;
    let mut jar = Jar::default();
    let resp = send(&w.app, &mut jar, get_html("/auth/login")).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let callback = authorize(&location(&resp)).await;
    let kept = jar.header_for("/auth/callback");
    let before = snap();
    let resp = send(&w.app, &mut jar, get_html(&callback)).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let first = grew(&before, &snap());
    assert_eq!(
        first.get("oidc_logins_total{outcome=success}"),
        Some(&1),
        "{first:?}"
    );
    // The replay, with the copied attempt cookie and without the session.
    let before = snap();
    let req = Request::get(&callback)
        .header(header::ACCEPT, "text/html")
        .header(header::COOKIE, kept)
        .body(Body::empty())
        .unwrap();
    let resp = serve(&w.app, req).await;
    assert!(!resp.status().is_server_error(), "{}", resp.status());
    let grew = grew(&before, &snap());
    for outcome in ["success", "provider_error", "denied"] {
        assert_eq!(
            grew.get(&format!("oidc_logins_total{{outcome={outcome}}}"))
                .copied()
                .unwrap_or(0),
            0,
            "a replay counted as {outcome}: {grew:?}"
        );
    }
}
