//! Fresh-context attack on the Issue 20 mends (trusted issuers, resource-mode challenges, PAR,
//! private_key_jwt key errors, the TestProvider's pushed login form).
//!
//! Each test asserts the secure (or correct) behaviour: a FINDING fails while the defect
//! exists; a GUARD passes and pins a mend.
//!
//! Findings (8 fail):
//! - `an_apps_second_challenge_survives_the_rewrite`: an app 401's other `WWW-Authenticate`
//!   values are dropped (`app_answer` inserts its rewrite of the first value).
//! - `a_bearer_challenge_after_another_scheme_names_the_metadata`: only the first value is
//!   looked at; `Basic` then `Bearer` leaves the Bearer challenge without `resource_metadata`.
//! - `resource_metadata_is_not_appended_to_another_schemes_challenge`: in a one-value list of
//!   challenges, `resource_metadata` is appended to the last (a `Basic`) challenge.
//! - `a_quoted_mention_of_resource_metadata_is_not_the_parameter`: a substring in a quoted
//!   string counts as naming the metadata.
//! - `a_challenge_naming_the_metadata_in_another_case_gets_no_second_one`: a case-variant
//!   parameter name gets a duplicate `resource_metadata`.
//! - `a_key_put_in_auth_client_key_file_is_not_quoted`: `AUTH_CLIENT_KEY_FILE` holding the PEM
//!   itself quotes the whole private key in the error (`cannot read <path>`).
//! - `a_rejected_form_post_can_be_tried_again`: the TestProvider's login form burns its
//!   one-time `request_uri` on a post refused for an empty password (regression of mend 6).
//! - `the_management_client_refuses_claims_of_another_layers_issuer`: `current_user` /
//!   `user_organizations` check only the trusted-issuer flag, not the issuer or layer.

use axum::body::Body;
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use http::{header, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_oidc_auth::testing::{client_key_pem, TestProvider};
use tower_oidc_auth::{
    Algorithm, AuthLayer, AuthLayerBuilder, Claims, ManualClock, Provider, ResourceServer,
};

use crate::helpers::{get_html, send, Jar, REDIRECT};

const RESOURCE: &str = "http://127.0.0.1:3000/mcp";
const METADATA_URL: &str = "http://127.0.0.1:3000/.well-known/oauth-protected-resource/mcp";

// ---------------------------------------------------------------------------------------------
// 1. Resource mode: the app's own 401 challenges (`ResourceSettings::naming_metadata`).
// ---------------------------------------------------------------------------------------------

/// A 401 from the app with these `WWW-Authenticate` values, appended one by one.
fn app_401(values: &'static [&'static str]) -> Response {
    let mut b = Response::builder().status(StatusCode::UNAUTHORIZED);
    for v in values {
        b = b.header(header::WWW_AUTHENTICATE, *v);
    }
    b.body(axum::body::Body::empty()).unwrap()
}

struct Rig {
    provider: TestProvider,
    app: Router,
    clock: ManualClock,
}

async fn rig() -> Rig {
    let clock = ManualClock::starting_now();
    let provider = TestProvider::builder().clock(clock.clone()).start().await;
    let auth = AuthLayer::builder()
        .provider(Provider::discover(provider.issuer()))
        .clock(clock.clone())
        .resource_server(ResourceServer::new(RESOURCE).scopes_supported(["mcp:read"]))
        .build()
        .await
        .expect("build");
    let route = |values: &'static [&'static str]| {
        post(move |c: Claims| async move {
            let _ = c;
            app_401(values)
        })
    };
    let app = Router::new()
        .route("/mcp", post(|c: Claims| async move { Json(c) }))
        .route(
            "/mcp/dpop",
            route(&["Bearer error=\"invalid_token\"", "DPoP algs=\"ES256\""]),
        )
        .route(
            "/mcp/basic_first",
            route(&["Basic realm=\"files\"", "Bearer"]),
        )
        .route(
            "/mcp/one_value",
            route(&["Bearer error=\"invalid_token\", Basic realm=\"files\""]),
        )
        .route(
            "/mcp/quoted_mention",
            route(&[
                "Bearer error=\"invalid_token\", error_description=\"no resource_metadata=here\"",
            ]),
        )
        .route(
            "/mcp/upper",
            route(&[
                "Bearer error=\"invalid_token\", Resource_Metadata=\"http://127.0.0.1:3000/.well-known/oauth-protected-resource/mcp\"",
            ]),
        )
        .route(
            "/mcp/quoted_commas",
            route(&[
                "Bearer error=\"insufficient_scope\", scope=\"a b\", error_description=\"x, y\"",
            ]),
        )
        .layer(auth);
    Rig {
        provider,
        app,
        clock,
    }
}

impl Rig {
    fn token(&self) -> String {
        let now = tower_oidc_auth::Clock::now(&self.clock);
        self.provider.sign(&json!({
            "iss": self.provider.issuer(),
            "sub": "usr_1",
            "aud": RESOURCE,
            "scope": "mcp:read",
            "iat": now,
            "exp": now + 300,
        }))
    }

    /// The status and every `WWW-Authenticate` value of `POST path` with a good token.
    async fn challenges(&self, path: &str) -> (StatusCode, Vec<String>) {
        let req = Request::post(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token()))
            .body(Body::empty())
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let values = resp
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        (resp.status(), values)
    }
}

/// FINDING (fails): an app's 401 with two challenges, `Bearer error="invalid_token"` and
/// `DPoP algs="ES256"` (two header values, RFC 9110 section 11.6.1), loses the DPoP one: the
/// layer reads the first value only and `insert`s its rewrite, which drops every other
/// `WWW-Authenticate` value (src/resource.rs, `ResourceSettings::app_answer`:
/// `resp.headers_mut().insert(header::WWW_AUTHENTICATE, value)` after `naming_metadata` of
/// `headers().get(..)`).
#[tokio::test]
async fn an_apps_second_challenge_survives_the_rewrite() {
    let r = rig().await;
    let (status, values) = r.challenges("/mcp/dpop").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        values.iter().any(|v| v.starts_with("Bearer")
            && v.contains(&format!("resource_metadata=\"{METADATA_URL}\""))),
        "the Bearer challenge names the metadata: {values:?}"
    );
    assert!(
        values.iter().any(|v| v.starts_with("DPoP")),
        "the app's DPoP challenge is kept: {values:?}"
    );
}

/// FINDING (fails): an app's 401 with `Basic realm="files"` first and a bare `Bearer` second
/// (two values) leaves the Bearer challenge without `resource_metadata`: only the first value
/// is looked at (a `Basic` one is kept as is), and since a `WWW-Authenticate` is present the
/// layer's own challenge is not added either (src/resource.rs, `app_answer` /
/// `naming_metadata`). An MCP client gets no way to discover the authorization server.
#[tokio::test]
async fn a_bearer_challenge_after_another_scheme_names_the_metadata() {
    let r = rig().await;
    let (status, values) = r.challenges("/mcp/basic_first").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        values.iter().any(|v| v.trim_start().starts_with("Bearer")
            && v.contains(&format!("resource_metadata=\"{METADATA_URL}\""))),
        "some Bearer challenge names the metadata: {values:?}"
    );
    assert!(
        values.iter().any(|v| v.starts_with("Basic")),
        "the Basic challenge is kept: {values:?}"
    );
}

/// FINDING (fails): one header value holding two challenges (RFC 9110 section 11.6.1 allows a
/// comma-separated list), `Bearer error="invalid_token", Basic realm="files"`, gets
/// `, resource_metadata="..."` appended at the end: it becomes a parameter of the `Basic`
/// challenge, and the Bearer challenge still does not name the metadata (src/resource.rs,
/// `naming_metadata`: `format!("{text}, resource_metadata=..")` on the whole value).
#[tokio::test]
async fn resource_metadata_is_not_appended_to_another_schemes_challenge() {
    let r = rig().await;
    let (status, values) = r.challenges("/mcp/one_value").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let all = values.join(" | ");
    if let Some(basic) = all.find("Basic ") {
        assert!(
            !all[basic..].contains("resource_metadata="),
            "resource_metadata landed in the Basic challenge: {all}"
        );
    }
    assert!(all.contains(METADATA_URL), "the metadata is named: {all}");
}

/// FINDING (fails): a Bearer challenge whose quoted `error_description` merely mentions
/// `resource_metadata=` is taken to name the metadata already and is left without it
/// (src/resource.rs, `naming_metadata`: `params.contains("resource_metadata=")`, a substring
/// test over quoted strings and other parameter names alike).
#[tokio::test]
async fn a_quoted_mention_of_resource_metadata_is_not_the_parameter() {
    let r = rig().await;
    let (status, values) = r.challenges("/mcp/quoted_mention").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        values.iter().any(|v| v.contains(METADATA_URL)),
        "the metadata is named: {values:?}"
    );
}

/// FINDING (fails): auth-param names are case-insensitive (RFC 9110 section 11.2); an app's
/// Bearer challenge that names the metadata as `Resource_Metadata="..."` gets a second
/// `resource_metadata` appended, a parameter twice in one challenge, which RFC 9110 section
/// 11.2 forbids (src/resource.rs, `naming_metadata`: the case-sensitive
/// `params.contains("resource_metadata=")`).
#[tokio::test]
async fn a_challenge_naming_the_metadata_in_another_case_gets_no_second_one() {
    let r = rig().await;
    let (status, values) = r.challenges("/mcp/upper").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(values.len(), 1, "{values:?}");
    assert_eq!(
        values[0]
            .to_ascii_lowercase()
            .matches("resource_metadata=")
            .count(),
        1,
        "resource_metadata twice: {values:?}"
    );
}

/// GUARD (passes): a Bearer challenge with quoted commas and spaces is kept intact and gets
/// `resource_metadata` appended once.
#[tokio::test]
async fn a_bearer_challenge_with_quoted_commas_gets_the_metadata_once() {
    let r = rig().await;
    let (status, values) = r.challenges("/mcp/quoted_commas").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(values.len(), 1, "{values:?}");
    let v = &values[0];
    assert!(
        v.starts_with(
            "Bearer error=\"insufficient_scope\", scope=\"a b\", error_description=\"x, y\""
        ),
        "{v}"
    );
    assert_eq!(v.matches("resource_metadata=").count(), 1, "{v}");
    assert!(
        v.ends_with(&format!("resource_metadata=\"{METADATA_URL}\"")),
        "{v}"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Key errors that echo input (`client_auth_from_env`).
// ---------------------------------------------------------------------------------------------

/// Any 24 consecutive characters of `secret` in `text`.
fn quotes(text: &str, secret: &str) -> bool {
    let s = secret.as_bytes();
    s.len() >= 24
        && s.windows(24)
            .any(|w| text.contains(std::str::from_utf8(w).unwrap()))
}

fn pem_body(pem: &str) -> String {
    pem.lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect()
}

/// FINDING (fails): the common mistake of putting the key itself into `AUTH_CLIENT_KEY_FILE`
/// (instead of `AUTH_CLIENT_KEY`) is refused with `cannot read <the whole PEM>: ...`: the
/// private key is quoted verbatim in the configuration error, which apps print or log at
/// startup (src/config/client_env.rs, `client_auth_from_lookup`:
/// `format!("cannot read {}: {e}", path.trim())`). The mend that stopped `from_pem` quoting
/// the key left this path open.
#[test]
fn a_key_put_in_auth_client_key_file_is_not_quoted() {
    let pem = client_key_pem(Algorithm::ES256);
    // This is the only test reading these variables.
    std::env::remove_var("AUTH_CLIENT_KEY");
    std::env::set_var("AUTH_CLIENT_KEY_FILE", &pem);
    let result = AuthLayerBuilder::new().client_auth_from_env();
    std::env::remove_var("AUTH_CLIENT_KEY_FILE");
    let error = result.err().unwrap_or_else(|| panic!("no such file"));
    let shown = format!("{error} {error:?}");
    assert!(
        !quotes(&shown, &pem_body(&pem)),
        "the error quotes the private key: {shown}"
    );
}

/// GUARD (passes): JWK text that is not JSON, or JSON of the wrong shape carrying key
/// material, is refused without quoting it (`ClientKey::from_jwk`'s `not a JWK: {e}` quotes
/// serde_json's error, which for a `Value` names positions, not input).
#[test]
fn a_damaged_jwk_is_refused_without_quoting_it() {
    let secret = "c2VjcmV0LXByaXZhdGUta2V5LW1hdGVyaWFsLWQtdmFsdWU";
    for text in [
        format!("{{\"kty\":\"EC\",\"crv\":\"P-256\",\"d\":\"{secret}\""),
        format!("{{\"kty\":\"EC\",\"d\":\"{secret}\" \"x\":1}}"),
        format!("{{\"kty\":\"EC\",\"crv\":\"P-256\",\"d\":\"{secret}\",\"x\":\"AA\",\"y\":\"AA\"}}"),
        format!("{{\"kty\":\"EC\",\"crv\":\"P-256\",\"d\":\"{secret}\\u00zz\"}}"),
        format!("{{\"kty\":\"RSA\",\"n\":\"{secret}\",\"e\":\"AQAB\",\"d\":\"{secret}\",\"p\":\"{secret}\",\"q\":\"{secret}\",\"dp\":\"{secret}\",\"dq\":\"{secret}\",\"qi\":\"{secret}\"}}"),
    ] {
        for result in [
            tower_oidc_auth::ClientKey::from_jwk(&text),
            tower_oidc_auth::ClientKey::from_text(&text),
        ] {
            let error = result.err().unwrap_or_else(|| panic!("not a key"));
            let shown = format!("{error} {error:?}");
            assert!(!quotes(&shown, secret), "the error quotes the JWK: {shown}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. The TestProvider's login form for a pushed request (`login_form_post`, `par::resolve`).
// ---------------------------------------------------------------------------------------------

fn encode(form: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish()
}

async fn push(base: &str, provider: &TestProvider) -> String {
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{base}/oauth/par"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(encode(&[
            ("response_type", "code"),
            ("client_id", provider.client_id()),
            ("client_secret", provider.client_secret()),
            ("redirect_uri", REDIRECT),
            ("scope", "openid"),
            ("state", "s1"),
            ("nonce", "n1"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    body["request_uri"].as_str().unwrap().to_owned()
}

/// The form's hidden `request_uri` for a pushed request.
async fn form_request_uri(base: &str, provider: &TestProvider, pushed: &str) -> String {
    let mut url = url::Url::parse(&format!("{base}/oauth/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", provider.client_id())
        .append_pair("request_uri", pushed);
    let html = reqwest::get(url.as_str())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = html
        .find("name=\"request_uri\" value=\"")
        .unwrap_or_else(|| panic!("a form with a request_uri: {html}"));
    let rest = &html[at + "name=\"request_uri\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].replace("&#58;", ":")
}

async fn post_form(base: &str, form: &[(&str, &str)]) -> (u16, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client
        .post(format!("{base}/oauth/authorize"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(encode(form))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get(header::LOCATION)
        .map(|l| l.to_str().unwrap().to_owned());
    let body = resp.text().await.unwrap_or_default();
    (status, location.unwrap_or(body))
}

async fn par_provider() -> (TestProvider, String) {
    let provider = TestProvider::builder()
        .clock(ManualClock::starting_now())
        .require_pushed_authorization_requests(true)
        .start()
        .await;
    let base = provider.issuer().trim_end_matches('/').to_owned();
    (provider, base)
}

/// GUARD (passes): the form's `request_uri` is one-time (a replayed post is refused), and is
/// refused for another client.
#[tokio::test]
async fn the_forms_request_uri_is_one_time_and_bound_to_the_client() {
    let (provider, base) = par_provider().await;
    let pushed = push(&base, &provider).await;
    let uri = form_request_uri(&base, &provider, &pushed).await;
    assert!(
        uri.starts_with("urn:ietf:params:oauth:request_uri:"),
        "{uri}"
    );
    assert_ne!(uri, pushed, "a fresh request_uri");
    // Another client.
    let (status, _) = post_form(
        &base,
        &[
            ("client_id", "another"),
            ("request_uri", &uri),
            ("login", "mallory@evil.example"),
            ("password", "x"),
        ],
    )
    .await;
    assert_eq!(status, 400, "another client's post");
    // That attempt used it up (one use, whatever happens): a fresh form.
    let pushed = push(&base, &provider).await;
    let uri = form_request_uri(&base, &provider, &pushed).await;
    let form = [
        ("client_id", provider.client_id()),
        ("request_uri", uri.as_str()),
        ("login", "alice@example.com"),
        ("password", "x"),
    ];
    let (status, location) = post_form(&base, &form).await;
    assert_eq!(status, 303, "{location}");
    assert!(
        location.starts_with(REDIRECT) && location.contains("code="),
        "{location}"
    );
    let (status, _) = post_form(&base, &form).await;
    assert_eq!(status, 400, "replayed post");
    // The pushed request itself was used by the form's GET.
    let mut url = url::Url::parse(&format!("{base}/oauth/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", provider.client_id())
        .append_pair("request_uri", &pushed);
    assert_eq!(reqwest::get(url.as_str()).await.unwrap().status(), 400);
}

/// FINDING (fails; a regression of mend 6, TestProvider): a login form of a pushed request
/// submitted without a password answers "Go back and try again", but the post already used
/// the form's one-time `request_uri`, so trying again (the same form, as a browser's Back
/// gives it) is refused with `invalid_request_uri`: a user who mistypes once cannot sign in
/// without restarting the login at the app (src/testing/server/authorize.rs,
/// `login_form_post`: `par::resolve` consumes the `request_uri` before the login and password
/// are checked).
#[tokio::test]
async fn a_rejected_form_post_can_be_tried_again() {
    let (provider, base) = par_provider().await;
    let pushed = push(&base, &provider).await;
    let uri = form_request_uri(&base, &provider, &pushed).await;
    let (status, _) = post_form(
        &base,
        &[
            ("client_id", provider.client_id()),
            ("request_uri", uri.as_str()),
            ("login", "alice@example.com"),
            ("password", ""),
        ],
    )
    .await;
    assert_eq!(status, 401, "no password");
    let (status, location) = post_form(
        &base,
        &[
            ("client_id", provider.client_id()),
            ("request_uri", uri.as_str()),
            ("login", "alice@example.com"),
            ("password", "x"),
        ],
    )
    .await;
    assert_eq!(status, 303, "the same form, with a password: {location}");
}

/// GUARD (passes): the form's `request_uri` expires like a pushed one (60 seconds): a form
/// posted later is refused, not served from its hidden fields.
#[tokio::test]
async fn the_forms_request_uri_expires() {
    let clock = ManualClock::starting_now();
    let provider = TestProvider::builder()
        .clock(clock.clone())
        .require_pushed_authorization_requests(true)
        .start()
        .await;
    let base = provider.issuer().trim_end_matches('/').to_owned();
    let pushed = push(&base, &provider).await;
    let uri = form_request_uri(&base, &provider, &pushed).await;
    clock.advance(std::time::Duration::from_secs(61));
    let (status, body) = post_form(
        &base,
        &[
            ("client_id", provider.client_id()),
            ("request_uri", uri.as_str()),
            ("login", "alice@example.com"),
            ("password", "x"),
        ],
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

// ---------------------------------------------------------------------------------------------
// 4. PAR `expires_in` edge values (`PushedRequest::checked`).
// ---------------------------------------------------------------------------------------------

/// GUARD (passes): `expires_in` edge values never panic or 500: zero however written
/// (`"+0"`, `"000"`, `" 0 "`, `-0`), u64 overflow strings and numbers, floats, exponents,
/// signs, hex and non-ASCII digits are refused (the error page); plain positive integers,
/// numeric strings with spaces, a `+` sign or leading zeros (`u64::from_str` after `trim`) and
/// `u64::MAX` are followed. The value is only checked, never added to a clock, so `u64::MAX`
/// overflows nothing. Note (not asserted as a defect): `60.0` and `6e1`, JSON numbers of a
/// positive integer, are refused (`Number::as_u64`), while the string `"+60"` is accepted.
#[tokio::test]
async fn par_expires_in_edge_values() {
    use crate::attack_par_pkjwt::{assert_failed_start, rig, ParAnswer};
    let r = rig().await;
    let uri = "urn:ietf:params:oauth:request_uri:abc";
    let refused = [
        "\"+0\"",
        "\"000\"",
        "\" 0 \"",
        "-0",
        "0.0",
        "\"18446744073709551616\"",
        "18446744073709551616",
        "1e400",
        "60.0",
        "6e1",
        "1.5",
        "\"-60\"",
        "\"0x3c\"",
        "\"6 0\"",
        "\"\u{0666}\u{0660}\"",
        "\"\"",
        "true",
        "[60]",
    ];
    let accepted = [
        "60",
        "\"60\"",
        "\" 60\"",
        "\"+60\"",
        "\"060\"",
        "18446744073709551615",
        "\"18446744073709551615\"",
    ];
    let body = |v: &str| format!("{{\"request_uri\":\"{uri}\",\"expires_in\":{v}}}");
    for v in refused {
        r.front.set(ParAnswer::Fixed {
            status: 201,
            headers: vec![("content-type", "application/json".into())],
            body: body(v),
        });
        let mut jar = Jar::default();
        let resp = send(&r.app, &mut jar, get_html("/auth/login")).await;
        assert_failed_start(resp, &format!("expires_in {v}")).await;
    }
    for v in accepted {
        r.front.set(ParAnswer::Fixed {
            status: 201,
            headers: vec![("content-type", "application/json".into())],
            body: body(v),
        });
        let mut jar = Jar::default();
        let resp = send(&r.app, &mut jar, get_html("/auth/login")).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "expires_in {v}");
    }
}

// ---------------------------------------------------------------------------------------------
// 5. `ManagementClient::current_user` / `user_organizations` and claims of another issuer.
// ---------------------------------------------------------------------------------------------

/// FINDING (fails): the mend refuses claims only by the `from_trusted_issuer` flag, which only
/// `trust_issuer` verifiers set; it never compares the claims' issuer with the client's
/// environment. Claims of another provider verified by another layer of the same app (two
/// `AuthLayer`s for two environments or tenants, as in tests/it/multi_app.rs) carry no flag,
/// and `current_user`/`user_organizations` resolve their `sub` in this client's environment:
/// that environment's user of the same id, with memberships, roles and permissions, is taken
/// for the signed-in user of the other issuer (src/management/client.rs, `current_user` /
/// `user_organizations`: `claims.from_trusted_issuer() && !same_environment..`; no issuer
/// or layer check, unlike src/session/stored.rs `claims_sub`, which checks `claims.layer()`).
#[tokio::test]
async fn the_management_client_refuses_claims_of_another_layers_issuer() {
    use axum::routing::get;
    use tower_oidc_auth::management::{ClientCredentials, ManagementClient, ManagementError};
    // Environment A's Management API: a token, and `GET /api/v1/users/{id}`.
    let api = Router::new()
        .route(
            "/oauth/token",
            post(|| async {
                Json(json!({"access_token": "tok", "token_type": "Bearer", "expires_in": 3600}))
            }),
        )
        .route(
            "/api/v1/users/{id}",
            get(
                |axum::extract::Path(id): axum::extract::Path<String>| async move {
                    Json(json!({"user": {
                        "id": id, "email": "victim@a.example",
                        "memberships": [{"organization_id": "org_a", "roles": [{"name": "admin"}],
                                         "permissions": ["billing:write"]}],
                    }}))
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, api).await.unwrap() });
    let management =
        ManagementClient::builder(&url, ClientCredentials::scalekit(&url, "skc_app", "s3cret"))
            .build();
    // Another environment (provider Y), with a layer of its own.
    let clock = ManualClock::starting_now();
    let y = TestProvider::builder()
        .user(crate::helpers::user())
        .clock(clock.clone())
        .start()
        .await;
    let auth_y = y.layer_builder(REDIRECT).build().await.expect("build");
    let app = Router::new()
        .route(
            "/me/organizations",
            get(move |claims: Claims| {
                let m = management.clone();
                async move {
                    match m.user_organizations(&claims).await {
                        Ok(orgs) => format!(
                            "{} resolved as {:?}",
                            claims.issuer(),
                            orgs.iter()
                                .map(|o| o.organization_id.clone())
                                .collect::<Vec<_>>()
                        ),
                        Err(ManagementError::ForeignIssuer { .. }) => "refused".to_owned(),
                        Err(e) => format!("other error: {e}"),
                    }
                }
            }),
        )
        .layer(auth_y);
    let now = tower_oidc_auth::Clock::now(&clock);
    let token = y.sign(&json!({
        "iss": y.issuer(), "sub": "usr_victim", "aud": y.client_id(),
        "iat": now, "exp": now + 300,
    }));
    let req = Request::get("/me/organizations")
        .header(header::ACCEPT, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = crate::helpers::body_string(resp).await;
    assert_eq!(
        body, "refused",
        "Y's claims were resolved in environment A's Management API: {body}"
    );
}
