//! Two apps sharing one provider session: single sign-on in, back-channel logout out.
//!
//! ```text
//! cargo run --example multi_app
//! ```
//!
//! App A listens on `APP_A_URL` (default `http://127.0.0.1:3000`), app B on `APP_B_URL`
//! (default `http://127.0.0.1:3001`), each with its own client id and its own `AuthLayer`.
//! Log into A, then open B: its home page signs you in on the first page load (a silent login,
//! `prompt=none`), without a form or a click. Log out of A: the provider calls both apps'
//! back-channel logout endpoints, and B's next request is unauthenticated.
//!
//! With no provider configured it starts the embedded test provider, with both clients
//! registered. For a real provider set `OIDC_ISSUER` (or `SCALEKIT_ENVIRONMENT_URL`) and
//! `APP_A_CLIENT_ID`, `APP_A_CLIENT_SECRET`, `APP_B_CLIENT_ID`, `APP_B_CLIENT_SECRET`, and
//! register for each app at the provider:
//! - redirect URL `<APP_X_URL>/auth/callback`,
//! - post-logout redirect URL `<APP_X_URL>/`,
//! - back-channel logout URL `<APP_X_URL>/auth/backchannel-logout` (in Scalekit: the
//!   application's "Back-channel logout URL"; it must be reachable by the provider).
//!
//! Both apps run on one host: browsers do not separate cookies by port, so each app's cookie
//! names carry a part derived from its client id and neither reads or overwrites the other's.

use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use tower_oidc_auth::testing::TestProvider;
use tower_oidc_auth::{AuthLayer, AuthLayerBuilder, Claims, Provider};

struct AppSpec {
    name: &'static str,
    url: String,
    client_id: String,
    client_secret: String,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_oidc_auth=debug".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let url = |k: &str, default: &str| {
        var(k)
            .unwrap_or_else(|| default.to_owned())
            .trim_end_matches('/')
            .to_owned()
    };
    let mut apps = [
        AppSpec {
            name: "A",
            url: url("APP_A_URL", "http://127.0.0.1:3000"),
            client_id: var("APP_A_CLIENT_ID").unwrap_or_else(|| "app-a".into()),
            client_secret: var("APP_A_CLIENT_SECRET").unwrap_or_else(|| "secret-a".into()),
        },
        AppSpec {
            name: "B",
            url: url("APP_B_URL", "http://127.0.0.1:3001"),
            client_id: var("APP_B_CLIENT_ID").unwrap_or_else(|| "app-b".into()),
            client_secret: var("APP_B_CLIENT_SECRET").unwrap_or_else(|| "secret-b".into()),
        },
    ];

    // SCALEKIT_ENVIRONMENT_URL or OIDC_ISSUER; each app's credentials are its own.
    let provider = Provider::from_env()?;
    // Keep the embedded provider alive for the whole run.
    let mut _embedded = None;
    let provider = match provider {
        Some(p) => p,
        None => {
            let [a, b] = &mut apps;
            let backchannel = |app: &AppSpec| Some(format!("{}/auth/backchannel-logout", app.url));
            let embedded = TestProvider::builder()
                .client_id(a.client_id.clone())
                .client_secret(a.client_secret.clone())
                .backchannel_logout_uri(backchannel(a).unwrap())
                .client(b.client_id.clone(), b.client_secret.clone(), backchannel(b))
                .start()
                .await;
            println!(
                "No provider configured: using the embedded test provider at {}",
                embedded.issuer()
            );
            println!("Sign in with any login (it becomes your e-mail) and any non-empty password.");
            let p = Provider::scalekit(embedded.issuer());
            _embedded = Some(embedded);
            p
        }
    };

    // The layers' metrics, for Prometheus: one recorder for the process, so each app's
    // `/metrics` shows both apps' counts.
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    let mut servers = Vec::new();
    for app in &apps {
        let auth = config(&provider, app)?.build().await?;
        let router = router(app.name, &auth, metrics.clone());
        let parsed = url::Url::parse(&app.url)?;
        let bind = format!(
            "{}:{}",
            parsed.host_str().unwrap_or("127.0.0.1"),
            parsed.port_or_known_default().unwrap_or(80)
        );
        let listener = tokio::net::TcpListener::bind(&bind).await?;
        println!("App {} at {}/", app.name, app.url);
        servers.push(tokio::spawn(
            async move { axum::serve(listener, router).await },
        ));
    }
    let [a, b] = &apps;
    println!(
        "\nWhat to try, in order:\n  \
         1. Open {a_url}/ and sign in to app A.\n  \
         2. Open {b_url}/ and press Login: single sign-on, no form this time.\n  \
         3. On app A, press Logout.\n  \
         4. Reload {b_url}/: the provider told B through back-channel logout, and you are \
         signed out there too.\n",
        a_url = a.url,
        b_url = b.url,
    );
    for server in servers {
        server.await??;
    }
    Ok(())
}

fn config(
    provider: &Provider,
    app: &AppSpec,
) -> Result<AuthLayerBuilder, Box<dyn std::error::Error>> {
    let mut cfg = AuthLayer::builder()
        .provider(provider.clone())
        .client_id(app.client_id.clone())
        .client_secret(app.client_secret.clone())
        .redirect_url(format!("{}/auth/callback", app.url))
        .post_logout_redirect_url(format!("{}/", app.url))
        // AUTH_PAR (optional): `auto` (default), `required` or `off`.
        .client_auth_from_env()?;
    match std::env::var_os("AUTH_COOKIE_KEY") {
        Some(_) => cfg = cfg.cookie_keys_from_env()?,
        None => {
            let mut key = [0u8; 64];
            getrandom::fill(&mut key)?;
            cfg = cfg.cookie_key(key);
        }
    }
    Ok(cfg)
}

fn router(
    name: &'static str,
    auth: &AuthLayer,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> Router {
    Router::new()
        .route("/me", get(|claims: Claims| async move { Json(claims) }))
        .route_layer(auth.require())
        // Silent login on the home page: a browser signed in to the other app is signed in
        // here on its first page load, without a click.
        .route(
            "/",
            get(move |claims: Option<Claims>| async move { home(name, claims) })
                .route_layer(auth.attempt_silent_login()),
        )
        .route("/metrics", get(move || async move { metrics.render() }))
        .layer(auth.clone())
}

fn home(name: &str, claims: Option<Claims>) -> impl IntoResponse {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    match claims {
        Some(c) => Html(format!(
            "<h1>App {name}</h1><p>Signed in as <span id=\"user\">{}</span></p>\
             <p><a href=\"/me\">Your claims</a></p><p><a href=\"/auth/logout\">Logout</a></p>",
            escape(c.email.as_deref().unwrap_or(&c.sub))
        )),
        None => Html(format!(
            "<h1>App {name}</h1><p id=\"anonymous\">Not signed in.</p>\
             <p><a href=\"/auth/login\">Login</a></p>"
        )),
    }
}
