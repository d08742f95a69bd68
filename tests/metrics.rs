//! The layer's metrics (issue 19), read through a recorder installed in this test binary (its
//! own process: a recorder is global): one sign-in, one refresh and one refused request on the
//! quickstart's own app (`examples/quickstart.rs`, its `router`) count what they should, with
//! the labels the README documents, and nothing identifies a user.
#![allow(dead_code)]

#[path = "it/helpers/mod.rs"]
mod helpers;

#[path = "../examples/quickstart.rs"]
mod quickstart;

use std::time::Duration;

use helpers::*;
use http::StatusCode;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::{CompositeKey, MetricKind};
use tower_oidc_auth::testing::TestProvider;
use tower_oidc_auth::ManualClock;

type Row = (
    CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
);

/// The value of the counter `name` with exactly these labels (0 when never recorded).
fn counter(rows: &[Row], name: &str, labels: &[(&str, &str)]) -> u64 {
    rows.iter()
        .filter(|(key, ..)| key.kind() == MetricKind::Counter && key.key().name() == name)
        .filter(|(key, ..)| {
            let mut have: Vec<(&str, &str)> =
                key.key().labels().map(|l| (l.key(), l.value())).collect();
            let mut want = labels.to_vec();
            have.sort_unstable();
            want.sort_unstable();
            have == want
        })
        .map(|(.., value)| match value {
            DebugValue::Counter(n) => *n,
            _ => 0,
        })
        .sum()
}

/// How many observations the histogram `name` has for `endpoint`.
fn observations(rows: &[Row], name: &str, endpoint: &str) -> usize {
    rows.iter()
        .filter(|(key, ..)| key.kind() == MetricKind::Histogram && key.key().name() == name)
        .filter(|(key, ..)| {
            key.key()
                .labels()
                .any(|l| l.key() == "endpoint" && l.value() == endpoint)
        })
        .map(|(.., value)| match value {
            DebugValue::Histogram(values) => values.len(),
            _ => 0,
        })
        .sum()
}

fn snapshot(snapshotter: &Snapshotter) -> Vec<Row> {
    snapshotter.snapshot().into_vec()
}

/// One test in this binary: the recorder is the process's.
#[tokio::test]
async fn a_login_a_refresh_and_a_refusal_are_counted_on_the_quickstart() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this process");

    let clock = ManualClock::starting_now();
    let provider = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    let auth = provider
        .layer_builder(REDIRECT)
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let app = quickstart::router(auth.clone(), None);
    let s = Setup {
        provider,
        auth,
        app,
        clock: clock.clone(),
    };
    let before = snapshot(&snapshotter);
    assert!(observations(&before, "oidc_provider_request_seconds", "discovery") >= 1);
    assert!(observations(&before, "oidc_provider_request_seconds", "jwks") >= 1);

    // One sign-in.
    let mut jar = Jar::default();
    let resp = login(&s, &mut jar, "/auth/login").await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(
        send(&s.app, &mut jar, get_json("/me")).await.status(),
        StatusCode::OK
    );
    // One refresh: the access token is past its lifetime.
    clock.advance(Duration::from_secs(600));
    assert_eq!(
        send(&s.app, &mut jar, get_json("/me")).await.status(),
        StatusCode::OK
    );
    // One refusal: a bearer token that is not a JWT.
    let resp = serve(&s.app, bearer("/me", "not-a-jwt")).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let rows = snapshot(&snapshotter);
    assert_eq!(
        counter(&rows, "oidc_logins_total", &[("outcome", "success")]),
        1
    );
    assert_eq!(
        counter(
            &rows,
            "oidc_refresh_total",
            &[("outcome", "success"), ("coordinated", "false")]
        ),
        1
    );
    assert_eq!(
        counter(
            &rows,
            "oidc_rejections_total",
            &[("reason", "malformed_token")]
        ),
        1
    );
    // The code exchange and the refresh.
    assert_eq!(
        observations(&rows, "oidc_provider_request_seconds", "token"),
        2
    );

    // No label carries a user, a session or a token.
    let secrets = ["usr_42", "ada@example.com", "sid-", "not-a-jwt"];
    for (key, ..) in &rows {
        for label in key.key().labels() {
            for secret in secrets {
                assert!(
                    !label.value().contains(secret),
                    "{} {}={}",
                    key.key().name(),
                    label.key(),
                    label.value()
                );
            }
        }
    }
}
