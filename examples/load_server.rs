//! The server `bench/load.sh` loads: a quickstart-style axum app in one of three modes.
//!
//! ```text
//! cargo run --release --example load_server -- bare|session|public PORT
//! ```
//!
//! - `bare`: the handler alone, no layer. It answers `hello`.
//! - `session`: the layer; the handler takes the `Claims` extractor (which refuses a request
//!   without a session, as `require()` does) and answers the same `hello`. Prints
//!   `COOKIE <header>` for a signed-in session (from the embedded test provider) that the load
//!   generator sends on every request.
//! - `require`: as `session`, with `route_layer(auth.require())` as well: what the extra axum
//!   route layer costs.
//! - `public`: the layer on a public route (`Option<Claims>`), requests without a session.
//! - `stored`: as `session`, with the sessions in Redis (`REDIS_URL`): the server-side session
//!   mode, whose cookie holds only the session's id.
//!
//! With `COOKIES_FILE=path` (and `SESSIONS=N`, default 1), `session` (and `public`) mint N
//! distinct signed-in sessions and write their `Cookie` headers to that file, one a line, before
//! `READY`; the load script cycles through them (`bench/many.lua`) for this server and for `bare`
//! alike, so both receive the same bytes. `public` with its own sessions' cookies separates the
//! session's cost from the `require()` guard's and the handler's.
//!
//! It prints `READY` when it accepts connections. Single-threaded runtime, so the load script
//! can pin it to one core.

use axum::routing::get;
use axum::Router;
use tower_oidc_auth::testing::{TestProvider, TestUser};
use tower_oidc_auth::Claims;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).cloned().unwrap_or_else(|| "bare".into());
    let port: u16 = args.get(2).and_then(|p| p.parse().ok()).unwrap_or(3900);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let provider = TestProvider::start().await;
        let app = match mode.as_str() {
            "bare" => Router::new().route("/", get(|| async { "hello" })),
            "session" | "require" | "public" | "stored" => {
                let mut builder =
                    provider.layer_builder(format!("http://127.0.0.1:{port}/auth/callback"));
                if mode == "stored" {
                    let url =
                        std::env::var("REDIS_URL").map_err(|_| "mode `stored` needs REDIS_URL")?;
                    let store = tower_oidc_auth::redis::RedisSessionStore::connect(&url)
                        .await?
                        .key_prefix(format!("load-{port}"));
                    builder = builder.session_store(store);
                }
                let auth = builder.build().await?;
                let sessions: usize = std::env::var("SESSIONS")
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                if let (true, Ok(path)) = (mode != "bare", std::env::var("COOKIES_FILE")) {
                    let mut out = String::new();
                    for i in 0..sessions {
                        let user =
                            TestUser::new(format!("usr_{i}")).email(format!("u{i}@example.com"));
                        let cookie = if mode == "stored" {
                            provider.stored_session_cookie(&auth, &user).await?
                        } else {
                            provider.session_cookie(&auth, &user)
                        };
                        let app_cookie: Vec<&str> = cookie
                            .split("; ")
                            .filter(|c| !c.split('=').next().unwrap_or("").contains("_id"))
                            .collect();
                        out.push_str(&app_cookie.join("; "));
                        out.push('\n');
                    }
                    std::fs::write(&path, out)?;
                    println!("COOKIES_FILE {path}");
                }
                if mode == "session" || mode == "require" || mode == "stored" {
                    let user = TestUser::new("usr_load");
                    let cookie = if mode == "stored" {
                        provider.stored_session_cookie(&auth, &user).await?
                    } else {
                        provider.session_cookie(&auth, &user)
                    };
                    // Only what a browser sends on app paths: the session, not the ID token.
                    let app_cookie: Vec<&str> = cookie
                        .split("; ")
                        .filter(|c| !c.split('=').next().unwrap_or("").contains("_id"))
                        .collect();
                    println!("COOKIE {}", app_cookie.join("; "));
                    // The same answer as `bare`: the difference is the layer's work alone.
                    let app = Router::new().route("/", get(|_: Claims| async { "hello" }));
                    if mode == "require" {
                        app.route_layer(auth.require()).layer(auth)
                    } else {
                        app.layer(auth)
                    }
                } else {
                    Router::new()
                        .route(
                            "/",
                            get(|c: Option<Claims>| async move {
                                if c.is_some() {
                                    "hello user"
                                } else {
                                    "hello"
                                }
                            }),
                        )
                        .layer(auth)
                }
            }
            other => return Err(format!("unknown mode {other}").into()),
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("READY");
        axum::serve(listener, app).await?;
        drop(provider);
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
