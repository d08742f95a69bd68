//! A working login demo: an axum app with a public home page (which tries a silent login once
//! per visit), a protected `/me`, and the auth routes.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! With no provider configured it starts the embedded test provider (a login form that accepts
//! any login and any non-empty password). To use a real provider, set either
//! `SCALEKIT_ENVIRONMENT_URL`, `SCALEKIT_CLIENT_ID`, `SCALEKIT_CLIENT_SECRET`, or `OIDC_ISSUER`,
//! `OIDC_CLIENT_ID`, `OIDC_CLIENT_SECRET`, and register `APP_URL/auth/callback` as a redirect URL
//! and `APP_URL/` as a post-logout redirect URL at the provider.
//!
//! - `APP_URL` (default `http://127.0.0.1:3000`): the app binds this host:port.
//! - `AUTH_COOKIE_KEY` (optional): base64, at least 64 bytes; random per run when unset.
//! - `AUTH_CLIENT_KEY_FILE` or `AUTH_CLIENT_KEY` (optional): a PEM or JWK private key; the app
//!   authenticates with `private_key_jwt` and needs no client secret. `AUTH_CLIENT_KEY_ID`: its
//!   `kid`.
//! - `AUTH_PAR` (optional, default `auto`): pushed authorization requests, `auto`, `required`
//!   or `off`.
//! - `AUTH_SESSION_MAX_AGE` (optional, default `7d`): the absolute session lifetime, such as
//!   `25s`, `8h` or `7d`; a refresh does not extend it.
//! - `AUTH_SESSION_IDLE_TIMEOUT` (optional, default off): end sessions unused for this long.
//! - `AUTH_SESSION_STORE` (optional, default: sessions in cookies): `memory`, or a Redis URL
//!   such as `redis://127.0.0.1:6379`, to keep sessions on the server (only a small id in the
//!   browser).
//!
//! `APP_URL/metrics` serves the layer's metrics in Prometheus's text format. On a loopback
//! `APP_URL`, refusals are explained: each 401, 403 or redirect to login carries
//! `x-auth-refusal: <reason>`.

use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use tower_oidc_auth::responses::escape_html;
use tower_oidc_auth::testing::TestProvider;
use tower_oidc_auth::{AuthLayer, Claims, Provider};

/// Where the embedded provider listens, so that it is the same issuer after a restart.
const EMBEDDED_PROVIDER_PORT: u16 = 3900;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_oidc_auth=debug".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // The message, then what caused it, one line each: never a Debug dump.
            eprintln!("error: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let app_url = std::env::var("APP_URL").unwrap_or_else(|_| "http://127.0.0.1:3000".into());
    let app_url = app_url.trim().trim_end_matches('/').to_owned();
    let parsed = url::Url::parse(&app_url).map_err(|e| {
        format!("APP_URL={app_url} is not a URL ({e}); write it like http://127.0.0.1:3000")
    })?;
    let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if parsed.scheme() != "https" && !loopback {
        return Err(format!(
            "APP_URL={app_url} is plain http on a host other than this machine, where browsers \
             would send the session cookie in the clear; use https://{}/ (behind a TLS proxy, \
             set BIND_ADDR to the local address), or http://127.0.0.1:3000 for a local demo",
            parsed.host_str().unwrap_or("your-host")
        )
        .into());
    }
    // BIND_ADDR: where to listen, when it differs from APP_URL (behind a proxy, `0.0.0.0:3000`).
    let bind = match std::env::var("BIND_ADDR") {
        Ok(addr) if !addr.trim().is_empty() => addr.trim().to_owned(),
        _ => format!(
            "{}:{}",
            parsed.host_str().unwrap_or("127.0.0.1"),
            parsed.port_or_known_default().unwrap_or(3000)
        ),
    };
    let redirect_url = format!("{app_url}/auth/callback");

    // Keep the embedded provider alive for the whole run.
    let mut _embedded = None;
    let config = if Provider::from_env()?.is_some() {
        // SCALEKIT_ENVIRONMENT_URL / _CLIENT_ID / _CLIENT_SECRET, or OIDC_ISSUER / _CLIENT_ID /
        // _CLIENT_SECRET; SCALEKIT_API_AUDIENCE (optional); AUTH_CLIENT_KEY_FILE (a private
        // key: private_key_jwt instead of the secret) and AUTH_PAR (optional).
        let config = AuthLayer::builder()
            .provider_from_env()?
            .redirect_url(&redirect_url);
        let mut key = [0u8; 64];
        getrandom::fill(&mut key)?;
        config.cookie_key(key)
    } else {
        let provider = embedded_provider().await?;
        println!(
            "No provider configured: using the embedded test provider at {}",
            provider.issuer()
        );
        println!("Sign in with any login (it becomes your e-mail) and any non-empty password.");
        let cfg = provider.layer_builder(&redirect_url);
        _embedded = Some(provider);
        cfg
    };
    // AUTH_COOKIE_KEY, in every mode: the same key keeps sessions across restarts. Without it,
    // a random key per run.
    let config = if std::env::var_os("AUTH_COOKIE_KEY").is_some() {
        config.cookie_keys_from_env()?
    } else {
        println!("AUTH_COOKIE_KEY is not set: sessions end when the demo restarts.");
        config
    };
    // AUTH_SESSION_MAX_AGE, AUTH_SESSION_IDLE_TIMEOUT: `25s`, `8h`, `7d` (optional), and
    // Scalekit's webhook signing secret (optional): `user.logout` then ends that session.
    // AUTH_SESSION_STORE (optional): `memory`, or `redis://127.0.0.1:6379` (feature `redis`)
    // to keep sessions on the server, with only a small id in the browser's cookie.
    let config = config
        .post_logout_redirect_url(format!("{app_url}/"))
        .session_lifetime_from_env()?
        .webhook_secret_from_env()?
        .session_store_from_env()?;
    if let Ok(store) = std::env::var("AUTH_SESSION_STORE") {
        let kind = if store.trim().eq_ignore_ascii_case("memory") {
            "memory"
        } else {
            "Redis"
        };
        println!("Sessions are kept on the server ({kind}); the browser holds only their id.");
    }
    if std::env::var_os("SCALEKIT_WEBHOOK_SECRET").is_some() {
        println!("Webhooks: POST {app_url}/auth/webhook");
    }
    // Why a request was refused, in a header: for development, on this machine only.
    let auth = config.explain_refusals(loopback).build().await?;
    // The layer's metrics (sign-ins, refreshes, refusals, provider latency), for Prometheus.
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    println!("Metrics: {app_url}/metrics");
    let app = router(auth, Some(metrics));

    let listener = match tokio::net::TcpListener::bind(&bind).await {
        Ok(listener) => listener,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let next = format!(
                "http://127.0.0.1:{}",
                parsed
                    .port_or_known_default()
                    .unwrap_or(3000)
                    .saturating_add(1)
            );
            return Err(format!("{bind} is already in use: set APP_URL={next}").into());
        }
        Err(e) => return Err(format!("cannot listen on {bind}: {e}").into()),
    };
    println!("Open {app_url}/ in your browser.");
    axum::serve(listener, app).await?;
    Ok(())
}

/// The demo's routes around the layer; `/metrics` renders `metrics` when given.
pub(crate) fn router(
    auth: AuthLayer,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> Router {
    // `/` is public, and signs in silently a browser the provider already knows (single
    // sign-on from another app): once per visit, then anonymous, never an error page.
    let app = Router::new()
        .route("/me", get(me))
        .route("/sessions", get(sessions))
        .route("/sessions/end", axum::routing::post(end_sessions))
        .route_layer(auth.require())
        .route("/", get(home).route_layer(auth.attempt_silent_login()));
    let app = match metrics {
        // Outside the layer: a scrape needs no session. Serve it only where the scraper can
        // reach it and the public cannot (a private port, or behind the proxy's rules).
        Some(handle) => app.route("/metrics", get(move || async move { handle.render() })),
        None => app,
    };
    app.layer(auth.clone()).with_state(auth)
}

/// The embedded provider, on a fixed port with its signing key in `target/`, so that a restart
/// (with the same AUTH_COOKIE_KEY) keeps the session; on any free port if that one is taken.
async fn embedded_provider() -> std::io::Result<TestProvider> {
    let key_file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/quickstart/provider-key.pk8"
    );
    let fixed = TestProvider::builder()
        .port(EMBEDDED_PROVIDER_PORT)
        .key_file(key_file)
        .try_start()
        .await;
    match fixed {
        Ok(provider) => Ok(provider),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            println!(
                "127.0.0.1:{EMBEDDED_PROVIDER_PORT} is taken: the embedded provider uses another \
                 port, and sessions will not survive a restart."
            );
            TestProvider::builder().key_file(key_file).try_start().await
        }
        Err(e) => Err(e),
    }
}

// The pages. A marker cookie (`demo_signed_in`, the demo's own, not the layer's) lets the home
// page say "You are signed out" once after the session ends: the logout button is a plain POST
// to the layer's logout route, and the provider sends the browser back to `/` with nothing
// added.
const SIGNED_IN_MARKER: &str = "demo_signed_in";

async fn home(claims: Option<Claims>, headers: axum::http::HeaderMap) -> axum::response::Response {
    let host = escape_html(
        headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1:3000"),
    );
    match claims {
        Some(c) => {
            let who = escape_html(c.email.as_deref().unwrap_or(&c.sub));
            let body = format!(
                "<h1>Hello, {who}</h1>\
                 <p>You are signed in. Things to try:</p><ol>\
                 <li><a href=\"/me\">Your claims</a>: what the app knows about you, as a page.</li>\
                 <li>The same route as a program sees it: <code>curl -i http://{host}/me</code>. \
                 Without your browser's cookies it answers <code>401</code> with JSON, not a \
                 redirect; with <code>Accept: application/json</code> your browser gets the JSON \
                 itself.</li>\
                 <li><a href=\"/sessions\">Your sessions</a>: every browser signed in as you \
                 (with <code>AUTH_SESSION_STORE</code>), and a way to sign them out.</li>\
                 <li>Sign out: it ends the session here and at the identity provider.</li></ol>\
                 <form method=\"post\" action=\"/auth/logout\"><button type=\"submit\">Sign out\
                 </button></form>"
            );
            let mut resp = page("tower-oidc-auth quickstart", &body).into_response();
            set_marker(&mut resp, "1; Path=/; HttpOnly; SameSite=Lax");
            resp
        }
        None => {
            let was_signed_in = cookie(&headers, SIGNED_IN_MARKER).is_some();
            let notice = if was_signed_in {
                "<p class=\"notice\" role=\"status\">You are signed out.</p>"
            } else {
                ""
            };
            let body = format!(
                "<h1>Welcome</h1>{notice}\
                 <p>This demo app signs you in with OpenID Connect. Things to try:</p><ol>\
                 <li><a href=\"/auth/login\">Sign in</a>. With the embedded test provider any \
                 login and any non-empty password work; its <em>Cancel</em> button shows the \
                 app's error page.</li>\
                 <li>Open <a href=\"/me\">/me</a>: it is protected, so it sends you to sign in \
                 first, and comes back.</li>\
                 <li>Ask for <code>/me</code> as a program: <code>curl -i http://{host}/me</code> \
                 answers <code>401</code> with JSON.</li>\
                 <li>Signed in, press <em>Sign out</em> on this page: you come back here, signed \
                 out.</li></ol>"
            );
            let mut resp = page("tower-oidc-auth quickstart", &body).into_response();
            if was_signed_in {
                set_marker(&mut resp, "; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
            }
            resp
        }
    }
}

/// `/me`: the session's claims. JSON for programs (`curl`, `fetch` with
/// `Accept: application/json`); for a browser, the same JSON in a page with a way home.
async fn me(claims: Claims, headers: axum::http::HeaderMap) -> axum::response::Response {
    let wants_page = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if !wants_page {
        return Json(claims).into_response();
    }
    let json = serde_json::to_string_pretty(&claims).unwrap_or_default();
    let body = format!(
        "<h1>Your claims</h1>\
         <p>What the layer verified and keeps in your session. Programs get this as JSON.</p>\
         <pre>{}</pre><p><a href=\"/\">Home</a></p>",
        escape_html(&json)
    );
    let mut resp = page("Your claims \u{2013} tower-oidc-auth quickstart", &body).into_response();
    set_marker(&mut resp, "1; Path=/; HttpOnly; SameSite=Lax");
    resp
}

/// `/sessions`: the user's sessions (with `AUTH_SESSION_STORE`), each with a button to end it,
/// and one to end all the others.
async fn sessions(
    axum::extract::State(auth): axum::extract::State<AuthLayer>,
    claims: Claims,
) -> axum::response::Response {
    let listed = match auth.sessions_of(&claims).await {
        Ok(listed) => listed,
        Err(_) => {
            let body = "<h1>Your sessions</h1><p>Sessions are listed when they are kept on the \
                        server: start the demo with <code>AUTH_SESSION_STORE=memory</code> (or a \
                        Redis URL).</p><p><a href=\"/\">Home</a></p>";
            return page("Your sessions \u{2013} tower-oidc-auth quickstart", body).into_response();
        }
    };
    let mut rows = String::new();
    for s in &listed {
        let browser = escape_html(s.user_agent.as_deref().unwrap_or("unknown browser"));
        let action = if s.current {
            "<em>this browser</em>".to_owned()
        } else {
            format!(
                "<form method=\"post\" action=\"/sessions/end\"><input type=\"hidden\" \
                 name=\"handle\" value=\"{}\"><button type=\"submit\">Sign out</button></form>",
                escape_html(&s.handle)
            )
        };
        rows.push_str(&format!(
            "<li>{browser}<br><small>since {} \u{b7} last seen {}</small> {action}</li>",
            ago(s.created),
            ago(s.last_seen)
        ));
    }
    let others = if listed.iter().any(|s| !s.current) {
        "<form method=\"post\" action=\"/sessions/end\"><input type=\"hidden\" \
         name=\"handle\" value=\"others\"><button type=\"submit\">Sign out of all other \
         devices</button></form>"
    } else {
        ""
    };
    let body =
        format!("<h1>Your sessions</h1><ul>{rows}</ul>{others}<p><a href=\"/\">Home</a></p>");
    page("Your sessions \u{2013} tower-oidc-auth quickstart", &body).into_response()
}

/// `POST /sessions/end`: ends one session (`handle`) or all the others (`others`). Only from
/// the demo's own pages (`Sec-Fetch-Site`); the session cookie is `SameSite=Lax` besides.
async fn end_sessions(
    axum::extract::State(auth): axum::extract::State<AuthLayer>,
    claims: Claims,
    headers: axum::http::HeaderMap,
    axum::extract::Form(form): axum::extract::Form<std::collections::HashMap<String, String>>,
) -> axum::response::Response {
    let same_origin = headers
        .get("sec-fetch-site")
        .is_none_or(|v| v.as_bytes() == b"same-origin");
    if !same_origin {
        return axum::http::StatusCode::FORBIDDEN.into_response();
    }
    let ended = match form.get("handle").map(String::as_str) {
        Some("others") => auth.end_other_sessions(&claims).await.map(|_| ()),
        Some(handle) => auth.end_session(&claims, handle).await.map(|_| ()),
        None => Ok(()),
    };
    if let Err(error) = ended {
        tracing::warn!(%error, "could not end sessions");
        return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    axum::response::Redirect::to("/sessions").into_response()
}

/// "3 min ago", from seconds since the epoch.
fn ago(at: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    match now.saturating_sub(at) {
        s if s < 60 => "just now".to_owned(),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

/// A page of the demo: `title` (escaped here), a little CSS that follows the system's light or
/// dark mode, and `body`, whose untrusted parts the caller escaped.
fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        escape_html(title)
    ))
}

const STYLE: &str = "\
:root{color-scheme:light dark}*{box-sizing:border-box}\
body{margin:0;padding:8vh 1rem 2rem;font:16px/1.6 system-ui,sans-serif}\
main{max-width:40rem;margin:0 auto}\
h1{font-size:1.6rem;margin:0 0 1rem}li{margin:.4rem 0}\
code,pre{font:.9em ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}\
pre{padding:1rem;border:1px solid #8884;border-radius:8px;overflow:auto}\
.notice{padding:.6rem 1rem;border-radius:8px;background:#1a7f3722;border:1px solid #1a7f3766}\
button{font:inherit;font-weight:600;padding:.5rem 1.1rem;border-radius:8px;cursor:pointer;\
border:1px solid #0969da;background:#0969da;color:#fff}";

fn set_marker(resp: &mut axum::response::Response, rest: &str) {
    let cookie = format!("{SIGNED_IN_MARKER}={rest}");
    if let Ok(v) = axum::http::HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(axum::http::header::SET_COOKIE, v);
    }
}

/// The value of the request's cookie `name`.
fn cookie<'h>(headers: &'h axum::http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}
