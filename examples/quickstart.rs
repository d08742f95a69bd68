//! A working login demo: an axum app with a public home page, a protected `/me`, and the auth
//! routes.
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
//! - `AUTH_SESSION_MAX_AGE` (optional, default `7d`): the absolute session lifetime, such as
//!   `25s`, `8h` or `7d`; a refresh does not extend it.
//! - `AUTH_SESSION_IDLE_TIMEOUT` (optional, default off): end sessions unused for this long.

use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use tower_oidc_auth::testing::TestProvider;
use tower_oidc_auth::{AuthLayer, AuthLayerBuilder, Claims, Provider};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_oidc_auth=debug".into()),
        )
        .init();

    let app_url = std::env::var("APP_URL").unwrap_or_else(|_| "http://127.0.0.1:3000".into());
    let app_url = app_url.trim_end_matches('/').to_owned();
    let parsed = url::Url::parse(&app_url)?;
    let bind = format!(
        "{}:{}",
        parsed.host_str().unwrap_or("127.0.0.1"),
        parsed.port_or_known_default().unwrap_or(3000)
    );
    let redirect_url = format!("{app_url}/auth/callback");

    let env_configured = ["SCALEKIT_ENVIRONMENT_URL", "OIDC_ISSUER"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|v| !v.is_empty()));

    // Keep the embedded provider alive for the whole run.
    let mut _embedded = None;
    let config = if env_configured {
        provider_from_env(&redirect_url)?
    } else {
        let provider = TestProvider::builder().start().await;
        println!(
            "No provider configured: using the embedded test provider at {}",
            provider.issuer()
        );
        println!("Sign in with any login (it becomes your e-mail) and any non-empty password.");
        let cfg = provider.layer_builder(&redirect_url);
        _embedded = Some(provider);
        cfg
    };
    // AUTH_SESSION_MAX_AGE, AUTH_SESSION_IDLE_TIMEOUT: `25s`, `8h`, `7d` (optional).
    let mut config = config
        .post_logout_redirect_url(format!("{app_url}/"))
        .session_lifetime_from_env()?;
    // Scalekit's webhooks (the dashboard's signing secret): `user.logout` ends that session.
    if let Some(secret) = std::env::var("SCALEKIT_WEBHOOK_SECRET")
        .ok()
        .filter(|s| !s.trim().is_empty())
    {
        println!("Webhooks: POST {app_url}/auth/webhook");
        config = config.webhook_secret(secret);
    }
    let auth = config.build().await?;

    let app = Router::new()
        .route("/me", get(me))
        .route_layer(auth.require())
        .route("/", get(home))
        .layer(auth);

    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("Open {app_url}/ in your browser.");
    axum::serve(listener, app).await?;
    Ok(())
}

/// `SCALEKIT_*` / `OIDC_*` from the environment; the redirect URL from `APP_URL`.
fn provider_from_env(redirect_url: &str) -> Result<AuthLayerBuilder, Box<dyn std::error::Error>> {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let (provider, id, secret) = if !var("SCALEKIT_ENVIRONMENT_URL").is_empty() {
        (
            Provider::scalekit(var("SCALEKIT_ENVIRONMENT_URL")),
            var("SCALEKIT_CLIENT_ID"),
            var("SCALEKIT_CLIENT_SECRET"),
        )
    } else {
        (
            Provider::discover(var("OIDC_ISSUER")),
            var("OIDC_CLIENT_ID"),
            var("OIDC_CLIENT_SECRET"),
        )
    };
    let mut cfg = AuthLayer::builder()
        .provider(provider)
        .client_id(id)
        .client_secret(secret)
        .redirect_url(redirect_url);
    // Access tokens for an API audience (Scalekit), comma-separated.
    for aud in var("SCALEKIT_API_AUDIENCE").split(',').map(str::trim) {
        if !aud.is_empty() {
            cfg = cfg.audience(aud);
        }
    }
    match std::env::var("AUTH_COOKIE_KEY") {
        Ok(keys) => {
            for k in keys.split(',') {
                cfg = cfg.cookie_key(base64_decode(k.trim())?);
            }
        }
        Err(_) => {
            // Sessions end when the demo restarts; set AUTH_COOKIE_KEY to keep them.
            let mut key = [0u8; 64];
            getrandom::fill(&mut key)?;
            cfg = cfg.cookie_key(key);
        }
    }
    Ok(cfg)
}

fn base64_decode(s: &str) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    use base64::Engine;
    Ok(base64::engine::general_purpose::STANDARD.decode(s)?)
}

async fn home(claims: Option<Claims>) -> impl IntoResponse {
    match claims {
        Some(c) => Html(format!(
            "<h1>Hello, {}</h1><p><a href=\"/me\">Your claims</a></p>\
             <form method=\"post\" action=\"/auth/logout\"><button>Logout</button></form>\
             <p><a href=\"/auth/logout\">Logout</a></p>",
            html_escape(c.email.as_deref().unwrap_or(&c.sub))
        )),
        None => Html(
            "<h1>Welcome</h1><p><a href=\"/auth/login\">Login</a></p>\
             <p><a href=\"/me\">/me</a> is protected.</p>"
                .to_owned(),
        ),
    }
}

async fn me(claims: Claims) -> Json<Claims> {
    Json(claims)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
