//! Protected-resource mode (RFC 9728, RFC 6750): an API or MCP server that accepts only bearer
//! tokens issued for it, publishes its metadata, and says where to get a token in every 401.
//!
//! The shapes come from the RFCs and from Scalekit's MCP material:
//! - RFC 9728 section 2 (the metadata document: `resource` required; `authorization_servers`,
//!   `scopes_supported`, `bearer_methods_supported`, `resource_name`, ... optional), section 3.1
//!   (its URL: `/.well-known/oauth-protected-resource` inserted between the host and the path of
//!   the resource identifier) and section 5.1 (`resource_metadata` in `WWW-Authenticate`);
//! - RFC 6750 section 3 (the challenge's syntax, `error="invalid_token"` for a refused token, no
//!   error code for a request without one) and 3.1 (`insufficient_scope`: 403 with `scope`);
//! - scalekit-inc/mcp-auth-demos `greeting-mcp-node/src/lib/middleware.ts`: the 401 carries
//!   `Bearer realm="OAuth", resource_metadata="<...>/.well-known/oauth-protected-resource"`;
//!   `greeting-mcp-node/protected-metadata.json`: the document Scalekit's guide serves;
//!   scalekit-inc/fastmcp `src/fastmcp/server/auth/providers/scalekit.py`: tokens are checked with
//!   the environment's issuer and keys, and `aud` = the MCP server's URL.

use axum::body::Body;
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_oidc_auth::testing::TestProvider;
use tower_oidc_auth::{AuthLayer, Claims, ManualClock, Provider, ResourceServer};

use crate::helpers::body_string;

const RESOURCE: &str = "http://127.0.0.1:3000/mcp";
const METADATA: &str = "/.well-known/oauth-protected-resource/mcp";
const METADATA_URL: &str = "http://127.0.0.1:3000/.well-known/oauth-protected-resource/mcp";

struct Rig {
    provider: TestProvider,
    app: Router,
    clock: ManualClock,
}

async fn rig() -> Rig {
    rig_with(|r| r).await
}

async fn rig_with(tweak: impl FnOnce(ResourceServer) -> ResourceServer) -> Rig {
    let clock = ManualClock::starting_now();
    let provider = TestProvider::builder().clock(clock.clone()).start().await;
    let resource = tweak(
        ResourceServer::new(RESOURCE)
            .scopes_supported(["mcp:read", "mcp:write"])
            .resource_name("Test MCP server"),
    );
    let auth = AuthLayer::builder()
        .provider(Provider::discover(provider.issuer()))
        .clock(clock.clone())
        .resource_server(resource)
        .build()
        .await
        .expect("a resource server needs no client, redirect URL or cookie key");
    let app = Router::new()
        .route("/mcp", post(|c: Claims| async move { Json(c) }))
        .route_layer(auth.require())
        .route(
            "/mcp/write",
            post(|c: Claims| async move { Json(c) }).route_layer(auth.require_scope("mcp:write")),
        )
        .route(
            "/mcp/tool",
            post(|c: Claims| async move {
                c.require_scope("mcp:write")?;
                Ok::<_, tower_oidc_auth::Forbidden>("written")
            }),
        )
        .route(
            "/mcp/app401",
            post(|_: Claims| async { StatusCode::UNAUTHORIZED }),
        )
        .route(
            "/public",
            get(|c: Option<Claims>| async move { format!("{}", c.is_some()) }),
        )
        .layer(auth.clone());
    Rig {
        provider,
        app,
        clock,
    }
}

impl Rig {
    /// An access token of the provider, for `aud`, with these scopes.
    fn token(&self, aud: Value, scope: &str) -> String {
        let now = tower_oidc_auth::Clock::now(&self.clock);
        self.provider.sign(&json!({
            "iss": self.provider.issuer(),
            "sub": "usr_1",
            "aud": aud,
            "scope": scope,
            "iat": now,
            "exp": now + 300,
        }))
    }

    async fn call(&self, req: Request<Body>) -> http::Response<Body> {
        self.app.clone().oneshot(req).await.unwrap()
    }
}

fn mcp(token: Option<&str>) -> Request<Body> {
    let mut req = Request::post("/mcp")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream");
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    req.body(Body::from(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    ))
    .unwrap()
}

/// The auth-params of a `Bearer` challenge (RFC 6750 section 3: `auth-param` = token "="
/// quoted-string, comma-separated), parsed strictly: a malformed challenge fails the test.
fn challenge(resp: &http::Response<Body>) -> Vec<(String, String)> {
    let value = resp
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .expect("a challenge")
        .to_str()
        .unwrap()
        .to_owned();
    let rest = value.strip_prefix("Bearer ").expect("scheme Bearer");
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad param name {name:?} in {value}"
        );
        assert_eq!(chars.next(), Some('"'), "unquoted value in {value}");
        let mut v = String::new();
        loop {
            match chars.next().expect("unterminated quoted string") {
                '"' => break,
                '\\' => v.push(chars.next().unwrap()),
                c => v.push(c),
            }
        }
        params.push((name, v));
        match chars.next() {
            None => break,
            Some(',') => assert_eq!(chars.next(), Some(' '), "{value}"),
            Some(c) => panic!("unexpected {c:?} in {value}"),
        }
    }
    params
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn assert_cors(resp: &http::Response<Body>) {
    assert_eq!(resp.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    let exposed = resp.headers()[header::ACCESS_CONTROL_EXPOSE_HEADERS]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("www-authenticate"), "{exposed}");
}

#[tokio::test]
async fn the_metadata_document_has_what_rfc_9728_requires() {
    let r = rig().await;
    for path in [METADATA, "/.well-known/oauth-protected-resource"] {
        let resp = r
            .call(Request::get(path).body(Body::empty()).unwrap())
            .await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        assert_cors(&resp);
        assert!(resp.headers().get(header::SET_COOKIE).is_none());
        let doc: Value = serde_json::from_str(&body_string(resp).await).unwrap();
        // Section 2: `resource` is required, and (section 3.3) identical to the identifier the
        // metadata URL was made from.
        assert_eq!(doc["resource"], RESOURCE, "{doc}");
        assert_eq!(doc["authorization_servers"], json!([r.provider.issuer()]));
        assert_eq!(doc["scopes_supported"], json!(["mcp:read", "mcp:write"]));
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
        assert_eq!(doc["resource_name"], "Test MCP server");
        // Only the fields of section 2, each of its type.
        for (k, v) in doc.as_object().unwrap() {
            match k.as_str() {
                "resource" | "resource_name" => assert!(v.is_string()),
                "authorization_servers" | "scopes_supported" | "bearer_methods_supported" => {
                    assert!(v.as_array().unwrap().iter().all(Value::is_string))
                }
                other => panic!("unexpected field {other}"),
            }
        }
    }
    // HEAD too; other methods are not allowed.
    let head = r
        .call(Request::head(METADATA).body(Body::empty()).unwrap())
        .await;
    assert_eq!(head.status(), StatusCode::OK);
    let post = r
        .call(Request::post(METADATA).body(Body::empty()).unwrap())
        .await;
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn authorization_servers_can_be_named() {
    // Scalekit's MCP servers name `<environment>/resources/<resource id>` (fastmcp's Scalekit
    // provider), while tokens carry the environment's issuer.
    let r =
        rig_with(|rs| rs.authorization_servers(["https://env.example.com/resources/res_1"])).await;
    let resp = r
        .call(Request::get(METADATA).body(Body::empty()).unwrap())
        .await;
    let doc: Value = serde_json::from_str(&body_string(resp).await).unwrap();
    assert_eq!(
        doc["authorization_servers"],
        json!(["https://env.example.com/resources/res_1"])
    );
}

#[tokio::test]
async fn a_request_without_a_token_gets_401_naming_the_metadata() {
    let r = rig().await;
    // Even a browser's page load: a resource server never redirects to a login.
    for accept in ["application/json", "text/html"] {
        let mut req = mcp(None);
        req.headers_mut()
            .insert(header::ACCEPT, accept.parse().unwrap());
        let resp = r.call(req).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{accept}");
        let params = challenge(&resp);
        assert_eq!(param(&params, "realm"), Some("OAuth"));
        assert_eq!(param(&params, "resource_metadata"), Some(METADATA_URL));
        // RFC 6750 section 3.1: no error code when the request has no credentials.
        assert_eq!(param(&params, "error"), None, "{params:?}");
        assert_cors(&resp);
        assert!(resp.headers().get(header::SET_COOKIE).is_none());
    }
}

#[tokio::test]
async fn a_token_for_this_resource_is_accepted() {
    let r = rig().await;
    let token = r.token(json!(RESOURCE), "mcp:read");
    let resp = r.call(mcp(Some(&token))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get(header::SET_COOKIE).is_none());
    let claims: Value = serde_json::from_str(&body_string(resp).await).unwrap();
    assert_eq!(claims["sub"], "usr_1");
    // An `aud` list that contains the resource.
    let token = r.token(json!(["https://other.example", RESOURCE]), "mcp:read");
    assert_eq!(r.call(mcp(Some(&token))).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn tokens_for_anything_else_are_refused_with_invalid_token() {
    let r = rig().await;
    let client_id = r.provider.client_id().to_owned();
    let now = tower_oidc_auth::Clock::now(&r.clock);
    let refused = [
        // Another resource's token (an MCP server must not accept tokens meant for others).
        r.token(json!("http://127.0.0.1:3000/other"), "mcp:read"),
        r.token(json!("http://127.0.0.1:3000/mcp/"), "mcp:read"),
        r.token(json!("http://127.0.0.1:3000"), "mcp:read"),
        // A token of the provider's login client: its `aud` is the client id.
        r.token(json!(client_id), "mcp:read"),
        // No `aud` at all, even with the client's id beside it.
        r.provider.sign(&json!({
            "iss": r.provider.issuer(), "sub": "usr_1", "client_id": client_id,
            "iat": now, "exp": now + 300,
        })),
        // A machine token without `aud`.
        r.provider.m2m_access_token("m2m_1", "org_1", &["mcp:read"]),
    ];
    for token in refused {
        let resp = r.call(mcp(Some(&token))).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let params = challenge(&resp);
        assert_eq!(param(&params, "error"), Some("invalid_token"), "{params:?}");
        assert_eq!(param(&params, "resource_metadata"), Some(METADATA_URL));
        assert_eq!(param(&params, "realm"), Some("OAuth"));
        assert_cors(&resp);
    }
}

#[tokio::test]
async fn a_missing_scope_gets_403_insufficient_scope() {
    let r = rig().await;
    let token = r.token(json!(RESOURCE), "mcp:read");
    let req = Request::post("/mcp/write")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let resp = r.call(req).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let params = challenge(&resp);
    assert_eq!(param(&params, "error"), Some("insufficient_scope"));
    assert_eq!(param(&params, "scope"), Some("mcp:write"));
    assert_eq!(param(&params, "resource_metadata"), Some(METADATA_URL));
    assert_cors(&resp);
    // With the scope: through.
    let token = r.token(json!(RESOURCE), "mcp:read mcp:write");
    let req = Request::post("/mcp/write")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(r.call(req).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_app_s_own_refusals_get_the_challenges_too() {
    let r = rig().await;
    let post = |path: &str, token: &str| {
        Request::post(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    // A handler checking a scope per tool (`Claims::require_scope`).
    let read_only = r.token(json!(RESOURCE), "mcp:read");
    let resp = r.call(post("/mcp/tool", &read_only)).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let params = challenge(&resp);
    assert_eq!(param(&params, "error"), Some("insufficient_scope"));
    assert_eq!(param(&params, "scope"), Some("mcp:write"));
    assert_eq!(param(&params, "resource_metadata"), Some(METADATA_URL));
    assert_cors(&resp);
    let writer = r.token(json!(RESOURCE), "mcp:write");
    assert_eq!(
        r.call(post("/mcp/tool", &writer)).await.status(),
        StatusCode::OK
    );
    // A 401 the app makes itself names the metadata too.
    let resp = r.call(post("/mcp/app401", &writer)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let params = challenge(&resp);
    assert_eq!(param(&params, "resource_metadata"), Some(METADATA_URL));
}

#[tokio::test]
async fn no_login_routes_and_no_cookies() {
    let r = rig().await;
    for path in [
        "/auth/login",
        "/auth/callback?code=x&state=y",
        "/auth/logout",
    ] {
        let resp = r
            .call(Request::get(path).body(Body::empty()).unwrap())
            .await;
        // Not the layer's: the app's router answers (nothing is routed there).
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(resp.headers().get(header::SET_COOKIE).is_none(), "{path}");
    }
    // A cookie is not a credential here.
    let mut req = mcp(None);
    req.headers_mut()
        .insert(header::COOKIE, "__Host-session=anything".parse().unwrap());
    let resp = r.call(req).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().get(header::SET_COOKIE).is_none());
    // A public route sees no claims without a token, and the claims with one.
    let resp = r
        .call(Request::get("/public").body(Body::empty()).unwrap())
        .await;
    assert_eq!(body_string(resp).await, "false");
    let token = r.token(json!(RESOURCE), "mcp:read");
    let req = Request::get("/public")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(body_string(r.call(req).await).await, "true");
}

#[tokio::test]
async fn cors_preflights_are_answered_and_answers_are_readable_cross_origin() {
    let r = rig().await;
    for path in ["/mcp", METADATA] {
        let req = Request::builder()
            .method(Method::OPTIONS)
            .uri(path)
            .header(header::ORIGIN, "https://inspector.example")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization, content-type, mcp-protocol-version",
            )
            .body(Body::empty())
            .unwrap();
        let resp = r.call(req).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT, "{path}");
        let h = resp.headers();
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        // Bearer tokens, never cookies: credentials are never allowed.
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
        let methods = h[header::ACCESS_CONTROL_ALLOW_METHODS].to_str().unwrap();
        assert!(methods.contains("POST"), "{methods}");
        let allowed = h[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        for name in ["authorization", "content-type", "mcp-protocol-version"] {
            assert!(allowed.contains(name), "{allowed}");
        }
    }
    // The app's own answer to a signed-in call is readable cross-origin too.
    let token = r.token(json!(RESOURCE), "mcp:read");
    let mut req = mcp(Some(&token));
    req.headers_mut()
        .insert(header::ORIGIN, "https://inspector.example".parse().unwrap());
    let resp = r.call(req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
}

#[tokio::test]
async fn cors_can_be_left_to_the_app() {
    let r = rig_with(|rs| rs.cors(false)).await;
    let resp = r.call(mcp(None)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .is_none());
    let req = Request::builder()
        .method(Method::OPTIONS)
        .uri("/mcp")
        .header(header::ORIGIN, "https://inspector.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .body(Body::empty())
        .unwrap();
    // Not answered by the layer: the app (or its own CORS layer) decides.
    let resp = r.call(req).await;
    assert_ne!(resp.status(), StatusCode::NO_CONTENT);
    assert!(resp
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .is_none());
}

#[tokio::test]
async fn a_resource_that_is_not_a_url_or_not_https_is_refused_at_build() {
    let provider = TestProvider::start().await;
    for bad in [
        "mcp",
        "https://example.com/mcp#frag",
        "http://example.com/mcp",
        "https://example.com/mcp?x=1",
    ] {
        let err = AuthLayer::builder()
            .provider(Provider::discover(provider.issuer()))
            .resource_server(ResourceServer::new(bad))
            .build()
            .await
            .err()
            .unwrap_or_else(|| panic!("{bad} accepted"));
        assert!(err.to_string().contains("resource"), "{err}");
    }
}
