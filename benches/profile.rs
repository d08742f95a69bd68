//! A loop for profilers (`valgrind --tool=callgrind`, `perf`), not a benchmark:
//! `cargo bench --bench profile --no-run`, then run the binary with a scenario and a count:
//! `valgrind --tool=callgrind target/release/deps/profile-* warm 20000`.
//! Scenarios: `bare`, `bare_many` (the bare handler receiving the `many` cookies), `warm` (valid cookie session, caches warm), `chunked` (8 KB session),
//! `bearer`, `cold` (a new token each time; mints tokens outside the measured loop first),
//! `many` (300 distinct cookie sessions round robin, within the verified-session cache),
//! `many_evicting` (the same against caches of 100: sessions beyond every cache, served by the
//! signature memo) and `bearer_many` (300 distinct bearer tokens against a token cache of 100).
//! All three make one warm-up pass over every session outside
//! the measured loop, so the loop sees only sessions it has seen before. `refused`: a bearer
//! token that is not a JWT (401, a rejection counted). `PROFILE_RECORDER=1` installs a metrics
//! recorder (Prometheus's) first.

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{header, Request};
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` runs bench targets with `--bench`: do nothing then.
    if args.iter().any(|a| a == "--bench") || args.len() < 3 {
        return;
    }
    let scenario = args[1].clone();
    let n: usize = args[2].parse().unwrap_or(1000);
    // `PROFILE_RECORDER=1`: with a metrics recorder installed (Prometheus's), to compare.
    if std::env::var_os("PROFILE_RECORDER").is_some_and(|v| !v.is_empty()) {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        metrics::set_global_recorder(recorder).expect("one recorder");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let provider = TestProvider::start().await;
        let auth = provider
            .layer_builder("https://app.example.com/auth/callback")
            .verified_cache_capacity(if scenario.contains("many") {
                MANY_CACHE
            } else {
                10_000
            })
            .session_cache_capacity(if scenario == "many_evicting" {
                MANY_CACHE
            } else {
                100_000
            })
            .build()
            .await
            .unwrap();
        let app = Router::new()
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
        let bare = Router::new().route("/", get(|| async { "ok" }));
        let cookie = match scenario.as_str() {
            "chunked" => app_cookies(provider.session_cookie(
                &auth,
                &TestUser::new("usr_big").claim("profile", "p".repeat(2800)),
            )),
            _ => {
                app_cookies(provider.session_cookie(&auth, &TestUser::new("usr_1").email("a@b.c")))
            }
        };
        let bearer = format!(
            "Bearer {}",
            provider.access_token(&TestUser::new("usr_api"))
        );
        let cold: Vec<String> = match scenario.as_str() {
            "cold" => (0..n)
                .map(|i| {
                    app_cookies(provider.session_cookie(&auth, &TestUser::new(format!("u{i}"))))
                })
                .collect(),
            "many" | "many_evicting" | "bare_many" => (0..*MANY_SESSIONS)
                .map(|i| {
                    app_cookies(provider.session_cookie(
                        &auth,
                        &TestUser::new(format!("usr_{i}")).email(format!("u{i}@b.c")),
                    ))
                })
                .collect(),
            "bearer_many" => (0..*MANY_SESSIONS)
                .map(|i| {
                    format!(
                        "Bearer {}",
                        provider.access_token(&TestUser::new(format!("usr_api_{i}")))
                    )
                })
                .collect(),
            _ => Vec::new(),
        };
        let router = if scenario.starts_with("bare") {
            bare
        } else {
            app
        };
        if scenario.contains("many") {
            // One pass over every session: each token has been seen (and verified) once.
            for i in 0..*MANY_SESSIONS {
                let req = request(&scenario, i, &cookie, &bearer, &cold);
                let resp = router.clone().oneshot(req).await.unwrap();
                assert!(resp.status().is_success());
            }
        }
        // A runtime of its own, so the profiled function contains the whole loop.
        std::thread::spawn(move || measured(&router, &scenario, n, &cookie, &bearer, &cold))
            .join()
            .unwrap();
        drop(provider);
    });
}

/// Distinct sessions of the `many` scenarios (`PROFILE_SESSIONS` overrides it), and the
/// capacity of the layer's caches there.
static MANY_SESSIONS: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| {
    std::env::var("PROFILE_SESSIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300)
});
const MANY_CACHE: usize = 100;

/// The `i`-th request of a scenario.
fn request(scenario: &str, i: usize, cookie: &str, bearer: &str, many: &[String]) -> Request<Body> {
    let r = Request::get("/");
    let r = match scenario {
        "bare" => r,
        "bearer" => r.header(header::AUTHORIZATION, bearer),
        // Refused (401 `invalid_token`): records a rejection.
        "refused" => r.header(header::AUTHORIZATION, "Bearer not-a-jwt"),
        "cold" => r.header(header::COOKIE, many.get(i).map_or("", String::as_str)),
        "many" | "many_evicting" | "bare_many" => {
            r.header(header::COOKIE, many[i % many.len()].as_str())
        }
        "bearer_many" => r.header(header::AUTHORIZATION, many[i % many.len()].as_str()),
        _ => r.header(header::COOKIE, cookie),
    };
    r.body(Body::empty()).unwrap()
}

/// The loop profilers look at: `--collect-atstart=no --toggle-collect='profile::measured'`.
/// Compare two counts (`n` and `2n`) to remove the constant runtime set-up.
#[inline(never)]
fn measured(
    router: &Router,
    scenario: &str,
    n: usize,
    cookie: &str,
    bearer: &str,
    cold: &[String],
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let started = std::time::Instant::now();
        for i in 0..n {
            let req = request(scenario, i, cookie, bearer, cold);
            let resp = router.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status().is_success(), scenario != "refused");
        }
        // Wall time per request, for native runs (meaningless under valgrind).
        eprintln!("{scenario}: {:?} per request", started.elapsed() / n as u32);
    });
}
