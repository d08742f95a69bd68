//! `cargo run --example mcp_resource`, as a client meets it: it listens on `APP_URL`, serves the
//! metadata at `APP_URL/.well-known/oauth-protected-resource` and its JSON-RPC endpoint at
//! `APP_URL/mcp`, and prints a `curl` line whose token works. The example is run as a process
//! (`cargo test` builds it) and called over HTTP on 127.0.0.1, as MCP clients discover it
//! (RFC 9728 section 5: the 401's `resource_metadata`, then the document, then the call).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

/// A running example, stopped when dropped (also when a test fails).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the example on a free port; returns it, its URL and the printed `curl` line.
fn start() -> (Running, String, String) {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let bin = dir
        .join("examples")
        .join(format!("mcp_resource{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: `cargo test` builds the examples",
        bin.display()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(bin)
        .env_remove("SCALEKIT_ENVIRONMENT_URL")
        .env_remove("OIDC_ISSUER")
        .env_remove("MCP_AUTHORIZATION_SERVER")
        .env("APP_URL", &app)
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the example");
    let stdout = child.stdout.take().expect("stdout");
    let running = Running(child);
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("example output");
        if line.starts_with("curl ") {
            return (running, app, line);
        }
    }
    panic!("the example stopped before printing its curl line");
}

/// The bearer token of the printed `curl` line.
fn token_of(curl: &str) -> String {
    let at = curl.find("Authorization: Bearer ").expect("a bearer token") + 22;
    curl[at..at + curl[at..].find('\'').unwrap()].to_owned()
}

async fn json_of(resp: reqwest::Response) -> Value {
    serde_json::from_str(&resp.text().await.unwrap()).unwrap()
}

async fn call(app: &str, token: Option<&str>, body: Value) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{app}/mcp"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn the_mcp_example_is_discoverable_and_its_printed_token_works() {
    let (_running, app, curl) = start();
    assert!(curl.contains(&format!("{app}/mcp")), "{curl}");

    // Discovery: a call without a token names the metadata document.
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let anonymous = call(&app, None, list.clone()).await;
    assert_eq!(anonymous.status(), 401);
    let challenge = anonymous.headers()["www-authenticate"].to_str().unwrap();
    let metadata_url = challenge
        .split("resource_metadata=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("resource_metadata")
        .to_owned();
    assert!(metadata_url.starts_with(&app), "{metadata_url}");
    for url in [
        metadata_url,
        format!("{app}/.well-known/oauth-protected-resource"),
    ] {
        let doc: Value = json_of(reqwest::get(&url).await.unwrap()).await;
        assert_eq!(doc["resource"], format!("{app}/mcp"), "{url}");
        let servers = doc["authorization_servers"].as_array().unwrap();
        assert_eq!(servers.len(), 1);
        assert!(doc["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("notes:write")));
    }

    // The printed token works, with the curl line's own request.
    let token = token_of(&curl);
    let resp = call(&app, Some(&token), list).await;
    assert_eq!(resp.status(), 200);
    let body: Value = json_of(resp).await;
    let tools: Vec<&str> = body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["whoami", "list_notes", "add_note"]);

    // A tool that writes, then reads back.
    let add = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "add_note", "arguments": {"text": "buy milk"}}});
    let resp = call(&app, Some(&token), add).await;
    assert_eq!(resp.status(), 200);
    let listed = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "list_notes"}});
    let body: Value = json_of(call(&app, Some(&token), listed).await).await;
    assert_eq!(body["result"]["content"][0]["text"], "buy milk", "{body}");

    // A token whose signature was tampered with is refused.
    let mut forged = token.clone();
    forged.replace_range(forged.len() - 4.., "AAAA");
    let resp = call(
        &app,
        Some(&forged),
        json!({"jsonrpc": "2.0", "id": 4, "method": "ping"}),
    )
    .await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"invalid_token\""));
}
