//! An MCP server (Model Context Protocol: JSON-RPC 2.0 over HTTP) as an OAuth protected
//! resource (RFC 9728): the layer publishes the metadata document MCP clients discover, refuses
//! requests without a token for this server with a challenge naming that document, and hands
//! the verified claims to the tools.
//!
//! ```text
//! cargo run --example mcp_resource
//! ```
//!
//! With no provider configured it starts the embedded test provider and prints a `curl` line
//! with a valid token. To use a real provider, set `SCALEKIT_ENVIRONMENT_URL` (or
//! `OIDC_ISSUER`); a client id and secret are not needed, as the server only checks tokens.
//!
//! - `APP_URL` (default `http://127.0.0.1:3000`): the server binds this host:port; the resource
//!   identifier is `APP_URL/mcp`, which tokens must name in `aud`.
//! - `MCP_AUTHORIZATION_SERVER` (optional): the authorization server the metadata names, when it
//!   is not the issuer. Scalekit's is `<environment URL>/resources/<resource id>`, shown with
//!   the MCP server you registered in its dashboard.
//!
//! The tools: `whoami` (scope `notes:read`, like every call), `list_notes`, and `add_note`
//! (scope `notes:write`: without it the answer is 403 with
//! `WWW-Authenticate: Bearer error="insufficient_scope", scope="notes:write", ...`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tower_oidc_auth::testing::{TestProvider, TestUser};
use tower_oidc_auth::{AuthLayer, Claims, Forbidden, Provider, ResourceServer};

/// Each user's notes, in memory.
type Notes = Arc<Mutex<HashMap<String, Vec<String>>>>;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_oidc_auth=debug".into()),
        )
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
    let app_url = app_url.trim().trim_end_matches('/').to_owned();
    let parsed = url::Url::parse(&app_url).map_err(|e| {
        format!("APP_URL={app_url} is not a URL ({e}); write it like http://127.0.0.1:3000")
    })?;
    let bind = format!(
        "{}:{}",
        parsed.host_str().unwrap_or("127.0.0.1"),
        parsed.port_or_known_default().unwrap_or(3000)
    );
    let resource = format!("{app_url}/mcp");

    // Keep the embedded provider alive for the whole run.
    let (provider, embedded) = match Provider::from_env()? {
        Some(provider) => (provider, None),
        None => {
            let embedded = TestProvider::start().await;
            println!(
                "No provider configured: using the embedded test provider at {}",
                embedded.issuer()
            );
            (Provider::discover(embedded.issuer()), Some(embedded))
        }
    };
    let mut server = ResourceServer::new(&resource)
        .scopes_supported(["notes:read", "notes:write"])
        .resource_name("Notes MCP server (tower-oidc-auth example)");
    if let Ok(server_url) = std::env::var("MCP_AUTHORIZATION_SERVER") {
        server = server.authorization_servers([server_url]);
    }
    let auth = AuthLayer::builder()
        .provider(provider)
        .resource_server(server)
        .build()
        .await?;
    let app = router(&auth);

    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .map_err(|e| format!("cannot listen on {bind}: {e}; set APP_URL to a free port"))?;
    println!("MCP endpoint: {resource}");
    println!("Metadata: {app_url}/.well-known/oauth-protected-resource");
    if let Some(embedded) = &embedded {
        let token = embedded.resource_access_token(
            &TestUser::new("usr_demo").email("demo@example.com"),
            &resource,
            &["notes:read", "notes:write"],
        );
        println!("Try it (the token is valid for an hour):");
        println!(
            "curl -s {resource} -H 'Authorization: Bearer {token}' -H 'Content-Type: \
             application/json' -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}}'"
        );
    }
    axum::serve(listener, app).await?;
    Ok(())
}

/// The MCP endpoint behind the layer: every call needs a token for this server with
/// `notes:read`.
fn router(auth: &AuthLayer) -> Router {
    Router::new()
        .route("/mcp", post(rpc))
        .route_layer(auth.require_scope("notes:read"))
        .with_state(Notes::default())
        .layer(auth.clone())
}

/// One JSON-RPC request (MCP's Streamable HTTP transport, answered with a single JSON body).
async fn rpc(
    State(notes): State<Notes>,
    claims: Claims,
    body: axum::body::Bytes,
) -> Result<Response, Forbidden> {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return Ok(rpc_error(Value::Null, -32700, "parse error"));
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let Some(method) = request.get("method").and_then(Value::as_str) else {
        return Ok(rpc_error(id, -32600, "invalid request"));
    };
    if request.get("id").is_none() {
        // A notification (`notifications/initialized`): accepted, no answer.
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    let params = request.get("params").cloned().unwrap_or(Value::Null);
    let result = match method {
        "initialize" => json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "notes", "version": env!("CARGO_PKG_VERSION")},
        }),
        "ping" => json!({}),
        "tools/list" => json!({"tools": [
            tool("whoami", "Who the token says you are.", json!({})),
            tool("list_notes", "Your notes.", json!({})),
            tool("add_note", "Adds a note (scope notes:write).",
                json!({"text": {"type": "string"}})),
        ]}),
        "tools/call" => {
            let name = params.get("name").and_then(Value::as_str).unwrap_or("");
            let text = match name {
                "whoami" => format!(
                    "{} (scopes: {})",
                    claims.email.as_deref().unwrap_or(&claims.sub),
                    claims.scopes.join(" ")
                ),
                "list_notes" => {
                    let notes = notes.lock().unwrap_or_else(|e| e.into_inner());
                    notes
                        .get(&claims.sub)
                        .cloned()
                        .unwrap_or_default()
                        .join("\n")
                }
                "add_note" => {
                    // Per tool: 403 with the insufficient_scope challenge when missing.
                    claims.require_scope("notes:write")?;
                    let Some(text) = params
                        .pointer("/arguments/text")
                        .and_then(Value::as_str)
                        .filter(|t| !t.is_empty() && t.len() <= 1000)
                    else {
                        return Ok(rpc_error(id, -32602, "arguments.text: 1 to 1000 bytes"));
                    };
                    let mut notes = notes.lock().unwrap_or_else(|e| e.into_inner());
                    notes
                        .entry(claims.sub.clone())
                        .or_default()
                        .push(text.to_owned());
                    "added".to_owned()
                }
                _ => return Ok(rpc_error(id, -32602, "unknown tool")),
            };
            json!({"content": [{"type": "text", "text": text}], "isError": false})
        }
        _ => return Ok(rpc_error(id, -32601, "method not found")),
    };
    Ok(Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response())
}

fn tool(name: &str, description: &str, properties: Value) -> Value {
    json!({
        "name": name,
        "description": description,
        "inputSchema": {"type": "object", "properties": properties},
    })
}

fn rpc_error(id: Value, code: i64, message: &str) -> Response {
    Json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}))
        .into_response()
}
