//! Per-request cost of the layer, as ratios against a bare handler in the same run.
//!
//! `cargo bench --bench hot_path`. Groups:
//! - `request`: (a) bare handler, (b) layer without a session, (c) layer with a valid cookie
//!   session, verified-token cache warm; each through `ServiceExt::oneshot` on an axum Router.
//! - `parts`: opening the session cookie versus the refresh check done on every request.

use std::hint::black_box;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{header, HeaderMap, Request};
use tower::ServiceExt;
use tower_oidc_auth::testing::{TestProvider, TestUser};
use tower_oidc_auth::Claims;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_provider, auth, cookie) = rt.block_on(async {
        let provider = TestProvider::start().await;
        let auth = provider
            .layer_builder("https://app.example.com/auth/callback")
            .build()
            .await
            .unwrap();
        let cookie = provider.session_cookie(&auth, &TestUser::new("usr_1").email("a@b.c"));
        (provider, auth, cookie)
    });
    let bare = Router::new().route("/", get(|| async { "ok" }));
    let layered = Router::new()
        .route(
            "/",
            get(|c: Option<Claims>| async move {
                if c.is_some() {
                    "ok"
                } else {
                    "anon"
                }
            }),
        )
        .layer(auth.clone());
    let req = |cookie: Option<&str>| {
        let mut b = Request::get("/");
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        b.body(Body::empty()).unwrap()
    };

    let mut g = c.benchmark_group("request");
    g.bench_function("a_bare_handler", |b| {
        b.to_async(&rt).iter(|| bare.clone().oneshot(req(None)))
    });
    g.bench_function("b_layer_no_session", |b| {
        b.to_async(&rt).iter(|| layered.clone().oneshot(req(None)))
    });
    g.bench_function("c_layer_valid_session_cache_warm", |b| {
        b.to_async(&rt)
            .iter(|| layered.clone().oneshot(req(Some(&cookie))))
    });
    g.finish();

    let mut headers = HeaderMap::new();
    headers.insert(header::COOKIE, cookie.parse().unwrap());
    let exp = tower_oidc_auth::__private::open_session(&auth, &headers).expect("session opens");
    let mut g = c.benchmark_group("parts");
    g.bench_function("open_session_cookie", |b| {
        b.iter(|| tower_oidc_auth::__private::open_session(&auth, black_box(&headers)))
    });
    g.bench_function("refresh_check", |b| {
        b.iter(|| {
            tower_oidc_auth::__private::refresh_check(
                &auth,
                black_box(exp),
                black_box(exp - 300),
                black_box(exp - 200),
            )
        })
    });
    // The revocation check with 1,000 revocations recorded (none of them this session's).
    rt.block_on(async {
        for i in 0..1000 {
            auth.revocation_store()
                .revoke(
                    tower_oidc_auth::RevocationKey::session("https://x", &format!("sid-{i}")),
                    1,
                    std::time::Duration::from_secs(3600),
                )
                .await
                .unwrap();
        }
    });
    g.bench_function("revocation_check", |b| {
        b.iter(|| {
            tower_oidc_auth::__private::revocation_check(
                &auth,
                black_box("sid-of-this-session"),
                black_box("usr_1"),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
