//! Scalekit's Management API from an axum app: `/me/organizations` lists the signed-in user's
//! organizations with their roles.
//!
//! ```text
//! cargo run --example management
//! ```
//!
//! With `SCALEKIT_ENVIRONMENT_URL`, `SCALEKIT_CLIENT_ID` and `SCALEKIT_CLIENT_SECRET` set, it logs
//! in with Scalekit and calls Scalekit's Management API with the same client credentials: enable
//! "Allow Scalekit Management API Access" for the client in the dashboard, and register
//! `APP_URL/auth/callback` as a redirect URL. Without them it runs against the embedded test
//! provider, with a small stand-in for the Management API (below, clearly marked) so the page has
//! something to show.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tower_oidc_auth::management::{ClientCredentials, ManagementClient, ManagementError};
use tower_oidc_auth::testing::TestProvider;
use tower_oidc_auth::{AuthLayer, Claims, Provider};

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
    let redirect = format!("{app_url}/auth/callback");
    let mut key = [0u8; 64];
    getrandom::fill(&mut key)?;

    let mut _embedded = None;
    let (auth, management) = match Provider::from_env()? {
        Some(provider) if provider.is_scalekit() => {
            // SCALEKIT_ENVIRONMENT_URL, SCALEKIT_CLIENT_ID, SCALEKIT_CLIENT_SECRET.
            let auth = AuthLayer::builder()
                .provider_from_env()?
                .redirect_url(redirect)
                .cookie_key(key)
                .build()
                .await?;
            // The layer's own client credentials serve the Management API too.
            (auth.clone(), ManagementClient::from_layer(&auth))
        }
        _ => {
            let provider = TestProvider::builder().start().await;
            let auth = provider.layer_builder(redirect).build().await?;
            let stand_in = stand_in_management_api().await?;
            // The login becomes the `sub`; the Management API knows Scalekit user ids only.
            println!(
                "Embedded test provider at {}; sign in as usr_<anything>.",
                provider.issuer()
            );
            _embedded = Some(provider);
            let credentials = ClientCredentials::scalekit(&stand_in, "skc_demo", "demo-secret");
            (auth, ManagementClient::new(&stand_in, credentials))
        }
    };

    let app = Router::new()
        .route("/me/organizations", get(my_organizations))
        .route_layer(auth.require())
        .route(
            "/",
            get(|| async { Html("<p><a href=\"/me/organizations\">My organizations</a></p>") }),
        )
        .with_state(management)
        .layer(auth);
    let bind = app_url
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    let listener = tokio::net::TcpListener::bind(bind.trim_end_matches('/')).await?;
    println!("Open {app_url}/me/organizations");
    axum::serve(listener, app).await?;
    Ok(())
}

/// The signed-in user's organizations and roles, from the Management API.
async fn my_organizations(
    State(management): State<ManagementClient>,
    claims: Claims,
) -> impl IntoResponse {
    match management.user_organizations(&claims).await {
        Ok(memberships) => {
            let orgs: Vec<_> = memberships
                .iter()
                .map(|m| {
                    json!({
                        "organization_id": m.organization_id,
                        "name": m.display_name.as_ref().or(m.name.as_ref()),
                        "roles": m.role_names(),
                        "permissions": m.permissions,
                    })
                })
                .collect();
            (
                StatusCode::OK,
                Json(json!({ "user": claims.sub, "organizations": orgs })),
            )
        }
        Err(error) => {
            tracing::warn!(%error, "management API call failed");
            let status = match (&error, error.status()) {
                (ManagementError::NotAScalekitUser { .. }, _) | (_, Some(404)) => {
                    StatusCode::NOT_FOUND
                }
                _ => StatusCode::BAD_GATEWAY,
            };
            (status, Json(json!({ "error": error.to_string() })))
        }
    }
}

/// STAND-IN ONLY: a few lines imitating the Management API's token endpoint and
/// `GET /api/v1/users/{id}`, so the demo runs without a Scalekit environment.
async fn stand_in_management_api() -> Result<String, Box<dyn std::error::Error>> {
    use axum::extract::Path;
    use axum::routing::post;
    let router = Router::new()
        .route(
            "/oauth/token",
            post(|| async {
                Json(json!({"access_token": "demo-token", "token_type": "Bearer", "expires_in": 3600}))
            }),
        )
        .route(
            "/api/v1/users/{id}",
            get(|Path(id): Path<String>| async move {
                Json(json!({"user": {"id": id, "memberships": [
                    {"organization_id": "org_demo", "display_name": "Demo Org",
                     "roles": [{"name": "admin", "display_name": "Admin"}],
                     "permissions": ["workspace_data:write"]}
                ]}}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(url)
}
