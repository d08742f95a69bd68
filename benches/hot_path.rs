//! Per-request cost of the layer, as ratios against a bare handler in the same run.
//!
//! `cargo bench --bench hot_path`. Groups:
//! - `request`: (a) bare handler, (b) layer without a session, (c) layer with a valid cookie
//!   session, verified-token cache warm; each through `ServiceExt::oneshot` on an axum Router.
//! - `reach`: a bearer request through the plain layer, a layer trusting a second issuer, and a
//!   layer in protected-resource mode, beside the bare handler.
//! - `parts`: opening the session cookie versus the refresh check done on every request.
//! - `metrics_no_recorder`, then `metrics_prometheus_recorder`: the same requests (and a
//!   refused one, which records a rejection) before and after a metrics recorder is installed.

use std::hint::black_box;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{header, HeaderMap, Request};
use tower::ServiceExt;
use tower_oidc_auth::testing::{TestProvider, TestUser};
use tower_oidc_auth::Claims;

/// The cookies a browser sends on app paths: the session chunks, not the ID token (its path is
/// `/auth`).
fn app_cookies(header: String) -> String {
    header
        .split("; ")
        .filter(|c| !c.split('=').next().unwrap_or("").contains("_id"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (provider, auth, cookie, big_cookie, bearer) = rt.block_on(async {
        let provider = TestProvider::start().await;
        let auth = provider
            .layer_builder("https://app.example.com/auth/callback")
            .build()
            .await
            .unwrap();
        let cookie =
            app_cookies(provider.session_cookie(&auth, &TestUser::new("usr_1").email("a@b.c")));
        // A session whose cookie is about 8 KB, split into chunks.
        let big = TestUser::new("usr_big").claim("picture", "p".repeat(2800));
        let big_cookie = app_cookies(provider.session_cookie(&auth, &big));
        let bearer = format!(
            "Bearer {}",
            provider.access_token(&TestUser::new("usr_api"))
        );
        (provider, auth, cookie, big_cookie, bearer)
    });
    assert!(
        big_cookie.len() > 7000 && big_cookie.matches("_s.").count() >= 1,
        "{}",
        big_cookie.len()
    );
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
    g.bench_function("e_bearer_cache_warm", |b| {
        b.to_async(&rt).iter(|| {
            let r = Request::get("/")
                .header(header::AUTHORIZATION, &bearer)
                .body(Body::empty())
                .unwrap();
            layered.clone().oneshot(r)
        })
    });
    g.bench_function("g_chunked_8kb_session_cache_warm", |b| {
        b.to_async(&rt)
            .iter(|| layered.clone().oneshot(req(Some(&big_cookie))))
    });
    g.finish();

    // Protocol reach: a bearer token (cache warm) through a layer that trusts a second issuer
    // (routed by `iss` first), and through a layer in protected-resource mode, beside the
    // bare handler and the plain layer's bearer request in the same group.
    let (two_issuers, resource_layer, resource_bearer, _other) = rt.block_on(async {
        let other = TestProvider::start().await;
        let two = provider
            .layer_builder("https://app.example.com/auth/callback")
            .trust_issuer(
                tower_oidc_auth::Provider::discover(other.issuer()),
                ["api://x"],
            )
            .build()
            .await
            .unwrap();
        let resource = "https://mcp.example.com/mcp";
        let rs = tower_oidc_auth::AuthLayer::builder()
            .provider(tower_oidc_auth::Provider::discover(provider.issuer()))
            .resource_server(tower_oidc_auth::ResourceServer::new(resource))
            .build()
            .await
            .unwrap();
        let token = provider.resource_access_token(&TestUser::new("usr_api"), resource, &["r"]);
        (two, rs, format!("Bearer {token}"), other)
    });
    let handler = || {
        Router::new().route(
            "/",
            get(|c: Option<Claims>| async move {
                if c.is_some() {
                    "ok"
                } else {
                    "anon"
                }
            }),
        )
    };
    let two_issuers = handler().layer(two_issuers);
    let resource_app = handler().layer(resource_layer);
    let with_bearer = |token: &str| {
        Request::get("/")
            .header(header::AUTHORIZATION, token)
            .body(Body::empty())
            .unwrap()
    };
    // Each measures a signed-in request, not a refusal.
    for (app, token) in [
        (&layered, &bearer),
        (&two_issuers, &bearer),
        (&resource_app, &resource_bearer),
    ] {
        let resp = rt
            .block_on(app.clone().oneshot(with_bearer(token)))
            .unwrap();
        let body = rt.block_on(http_body_util::BodyExt::collect(resp.into_body()));
        assert_eq!(&body.unwrap().to_bytes()[..], b"ok");
    }
    let mut g = c.benchmark_group("reach");
    g.bench_function("a_bare_handler", |b| {
        b.to_async(&rt).iter(|| bare.clone().oneshot(req(None)))
    });
    g.bench_function("e_bearer_cache_warm", |b| {
        b.to_async(&rt)
            .iter(|| layered.clone().oneshot(with_bearer(&bearer)))
    });
    g.bench_function("i_bearer_two_issuers_cache_warm", |b| {
        b.to_async(&rt)
            .iter(|| two_issuers.clone().oneshot(with_bearer(&bearer)))
    });
    g.bench_function("j_resource_server_bearer_cache_warm", |b| {
        b.to_async(&rt)
            .iter(|| resource_app.clone().oneshot(with_bearer(&resource_bearer)))
    });
    g.finish();

    // (d): a token seen for the first time: one RS256 signature check (plus cookie opening).
    let mut g = c.benchmark_group("request_cold");
    g.sample_size(30);
    g.bench_function("d_layer_valid_session_cache_cold", |b| {
        b.iter_batched(
            || app_cookies(provider.session_cookie(&auth, &TestUser::new("usr_cold"))),
            |fresh| rt.block_on(layered.clone().oneshot(req(Some(&fresh)))),
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();

    let mut headers = HeaderMap::new();
    headers.insert(header::COOKIE, cookie.parse().unwrap());
    let exp = tower_oidc_auth::__private::open_session(&auth, &headers).expect("session opens");
    let mut g = c.benchmark_group("parts");
    g.bench_function("f_open_session_cookie", |b| {
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

    // Issue 13: a webhook with 40,000 bogus `v1,` signatures on a 60 KB body cost one HMAC per
    // candidate (about 2.4 s of CPU). Now refused on the header's size before any HMAC; a
    // genuine delivery of the same size costs one HMAC.
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let body = vec![b'x'; 60_000];
    let headers = |sig: &str| {
        let mut h = http::HeaderMap::new();
        h.insert("webhook-id", "msg_1".parse().unwrap());
        h.insert("webhook-timestamp", "1000".parse().unwrap());
        h.insert("webhook-signature", sig.parse().unwrap());
        h
    };
    let bogus = headers(&vec!["v1,aW52YWxpZGludmFsaWRpbnZhbGlkaW52YWxpZGludmE="; 40_000].join(" "));
    let good_sig = tower_oidc_auth::sign_webhook(secret, "msg_1", 1000, &body).unwrap();
    let good = headers(&format!("v1,AAAA v1,BBBB {good_sig}"));
    let mut g = c.benchmark_group("webhook");
    g.bench_function("valid_60kb_three_candidates", |b| {
        b.iter(|| tower_oidc_auth::verify_webhook_at(secret, &good, black_box(&body), 1000))
    });
    g.bench_function("bogus_40000_candidates_60kb", |b| {
        b.iter(|| tower_oidc_auth::verify_webhook_at(secret, &bogus, black_box(&body), 1000))
    });
    g.finish();

    // Issue 19: the metrics' cost, without a recorder and then with Prometheus's installed
    // (a recorder is global and stays: the group without runs first). A signed-in request
    // records nothing; a refused one counts a rejection.
    let refused = || {
        Request::get("/")
            .header(header::AUTHORIZATION, "Bearer not-a-jwt")
            .body(Body::empty())
            .unwrap()
    };
    let guarded = Router::new()
        .route("/", get(|| async { "ok" }))
        .route_layer(auth.require())
        .layer(auth.clone());
    let mut metrics_group = |name: &str| {
        let mut g = c.benchmark_group(name);
        g.bench_function("a_bare_handler", |b| {
            b.to_async(&rt).iter(|| bare.clone().oneshot(req(None)))
        });
        g.bench_function("c_layer_valid_session_cache_warm", |b| {
            b.to_async(&rt)
                .iter(|| layered.clone().oneshot(req(Some(&cookie))))
        });
        g.bench_function("h_refused_bearer", |b| {
            b.to_async(&rt).iter(|| guarded.clone().oneshot(refused()))
        });
        g.finish();
    };
    metrics_group("metrics_no_recorder");
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    metrics::set_global_recorder(recorder).expect("no recorder installed yet");
    metrics_group("metrics_prometheus_recorder");
}

criterion_group!(benches, bench);
criterion_main!(benches);
