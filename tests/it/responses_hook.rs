//! `AuthLayerBuilder::responses`: a custom `Responses` changes every answer it overrides, for
//! browsers, APIs and gRPC; the answers it leaves alone are the layer's, byte for byte; and
//! whatever it returns, the layer keeps its cookies, `no-store`, the 401 challenge,
//! `Retry-After`, unframeable confirmation pages and its own logout check.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::routing::any;
use axum::Router;
use bytes::Bytes;
use http::{header, HeaderMap, Request, Response, StatusCode};
use tower::ServiceExt;
use tower_oidc_auth::extract::{RequireRole, RoleName};
use tower_oidc_auth::responses::{
    escape_html, grpc_status, Client, ConfirmContext, DefaultResponses, ErrorPage,
    ForbiddenContext, GrpcCode, InvalidTokenContext, Responses, UnauthenticatedContext,
    UnavailableContext,
};
use tower_oidc_auth::testing::{Failure, IdpInitiatedLogin, TestProvider, TestUser};
use tower_oidc_auth::{AuthLayer, AuthLayerBuilder, Claims, ManualClock};

const REDIRECT: &str = "http://127.0.0.1:3000/auth/callback";
const ORIGIN: &str = "http://127.0.0.1:3000";

struct Auditor;

impl RoleName for Auditor {
    const NAME: &'static str = "auditor";
}

/// What the hook was called with, for the tests to check the contexts.
#[derive(Default, Clone)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn client_name(client: Client) -> &'static str {
    match client {
        Client::Browser => "browser",
        Client::Grpc => "grpc",
        Client::Api => "api",
        _ => "other",
    }
}

/// A bare answer: no `Cache-Control` (or a public one), no cookies, no challenge, no
/// `Retry-After`, no frame protection. Everything the layer must keep is missing.
fn bare(status: StatusCode, kind: &str, client: &str) -> Response<Bytes> {
    Response::builder()
        .status(status)
        .header("x-restyled", format!("{kind}:{client}"))
        .header(header::CACHE_CONTROL, "public, max-age=600")
        .body(Bytes::from(format!("restyled {kind} for {client}")))
        .unwrap()
}

/// Overrides every method with a bare answer that names what it was called for.
struct Restyled(Seen);

impl Responses for Restyled {
    fn unauthenticated(&self, cx: &UnauthenticatedContext<'_>) -> Response<Bytes> {
        let client = client_name(cx.client);
        self.0.push(format!(
            "unauthenticated {client} {} {}",
            cx.login_url, cx.return_to
        ));
        match cx.client {
            Client::Grpc => {
                let mut r = grpc_status(GrpcCode::Unauthenticated, "bitte anmelden");
                r.headers_mut().remove(header::CACHE_CONTROL);
                r.headers_mut()
                    .insert("x-restyled", "unauthenticated:grpc".parse().unwrap());
                r
            }
            _ => bare(StatusCode::UNAUTHORIZED, "unauthenticated", client),
        }
    }

    fn forbidden(&self, cx: &ForbiddenContext<'_>) -> Response<Bytes> {
        let client = client_name(cx.client);
        self.0.push(format!("forbidden {client} {}", cx.what));
        bare(StatusCode::FORBIDDEN, "forbidden", client)
    }

    fn error_page(&self, cx: &ErrorPage<'_>) -> Response<Bytes> {
        self.0.push(format!(
            "error {} {} {:?} {:?} {:?}",
            cx.status.as_u16(),
            cx.reason,
            cx.retry,
            cx.provider_error,
            cx.provider_error_description
        ));
        let mut r = bare(cx.status, "error", cx.reason.as_str());
        *r.body_mut() = Bytes::from(format!(
            "<p>{}</p>",
            escape_html(cx.provider_error_description.unwrap_or(""))
        ));
        r
    }

    fn unavailable(&self, cx: &UnavailableContext<'_>) -> Response<Bytes> {
        let client = client_name(cx.client);
        self.0.push(format!(
            "unavailable {client} {} {}",
            cx.retry, cx.retry_after
        ));
        bare(StatusCode::SERVICE_UNAVAILABLE, "unavailable", client)
    }

    fn invalid_token(&self, cx: &InvalidTokenContext) -> Response<Bytes> {
        let client = client_name(cx.client);
        self.0.push(format!("invalid_token {client}"));
        bare(StatusCode::UNAUTHORIZED, "invalid_token", client)
    }

    fn confirm_logout(&self, cx: &ConfirmContext<'_>) -> Response<Bytes> {
        self.0.push(format!(
            "confirm_logout {} {} {:?} {}",
            cx.method, cx.action, cx.fields, cx.cancel
        ));
        bare(StatusCode::OK, "confirm_logout", "browser")
    }

    fn confirm_login(&self, cx: &ConfirmContext<'_>) -> Response<Bytes> {
        let fields: Vec<&str> = cx.fields.iter().map(|(name, _)| *name).collect();
        self.0.push(format!(
            "confirm_login {} {} {:?} {}",
            cx.method, cx.action, fields, cx.cancel
        ));
        bare(StatusCode::OK, "confirm_login", "browser")
    }
}

/// Overrides only the API's forbidden answer, delegating the rest of that method.
struct OnlyApiForbidden;

impl Responses for OnlyApiForbidden {
    fn forbidden(&self, cx: &ForbiddenContext<'_>) -> Response<Bytes> {
        match cx.client {
            Client::Api => bare(StatusCode::FORBIDDEN, "forbidden", "api"),
            _ => DefaultResponses.forbidden(cx),
        }
    }
}

struct Setup {
    provider: TestProvider,
    auth: AuthLayer,
    app: Router,
    clock: ManualClock,
}

fn user() -> TestUser {
    TestUser::new("usr_7")
        .email("grace@example.com")
        .role("admin")
}

async fn setup(tweak: impl FnOnce(AuthLayerBuilder) -> AuthLayerBuilder) -> Setup {
    let clock = ManualClock::starting_now();
    let provider = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    let auth = tweak(provider.layer_builder(REDIRECT))
        .refresh_timeout(Duration::from_millis(300))
        .build()
        .await
        .expect("build");
    let app = Router::new()
        .route("/me", any(|c: Claims| async move { c.sub.clone() }))
        .route_layer(auth.require())
        .route(
            "/admin",
            any(|| async { "admin" }).layer(auth.require_role("auditor")),
        )
        .route(
            "/audit",
            any(|RequireRole(c, _): RequireRole<Auditor>| async move { c.sub.clone() }),
        )
        .route(
            "/forbid",
            any(|c: Claims| async move { c.require_role("auditor") }),
        )
        .layer(auth.clone());
    Setup {
        provider,
        auth,
        app,
        clock,
    }
}

async fn restyled() -> (Setup, Seen) {
    let seen = Seen::default();
    let hook = Restyled(seen.clone());
    (setup(|b| b.responses(hook)).await, seen)
}

/// A request as a browser, an API client or a gRPC client sends it.
fn request(client: &str, uri: &str, cookie: Option<&str>) -> Request<Body> {
    let mut req = match client {
        "browser" => Request::get(uri)
            .header(header::ACCEPT, "text/html")
            .header("sec-fetch-mode", "navigate"),
        "api" => Request::get(uri).header(header::ACCEPT, "application/json"),
        "grpc" => Request::post(uri).header(header::CONTENT_TYPE, "application/grpc"),
        _ => unreachable!(),
    };
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie);
    }
    req.body(Body::empty()).unwrap()
}

const CLIENTS: [&str; 3] = ["browser", "api", "grpc"];

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn restyled_as(headers: &HeaderMap) -> &str {
    headers
        .get("x-restyled")
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// Signed in, past the access token's expiry, with the token endpoint down.
async fn provider_down(s: &Setup) -> String {
    let cookie = s.provider.session_cookie(&s.auth, &user());
    s.clock.advance(Duration::from_secs(400));
    s.provider.set_token_failure(Some(Failure::Status(503)));
    cookie
}

/// A login attempt in flight: its cookies (as a `Cookie` header) and its `state`.
async fn login_attempt(s: &Setup) -> (String, String) {
    let (status, headers, _) = call(&s.app, request("browser", "/auth/login", None)).await;
    assert_eq!(status, StatusCode::FOUND);
    let location = headers[header::LOCATION].to_str().unwrap();
    let state = url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let cookie = set_cookies(&headers)
        .iter()
        .map(|c| c.split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ");
    (cookie, state)
}

fn idp_login_from_another_site(s: &Setup, cookie: &str) -> Request<Body> {
    let url = s.provider.idp_initiated_login_url(
        "/auth/login",
        &IdpInitiatedLogin::new().organization_id("org_1"),
    );
    Request::get(url)
        .header(header::ACCEPT, "text/html")
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn unauthenticated_is_the_hooks_for_every_client() {
    let (s, seen) = restyled().await;
    for client in CLIENTS {
        for uri in ["/me?tab=2", "/audit"] {
            let (status, headers, body) = call(&s.app, request(client, uri, None)).await;
            assert_eq!(
                restyled_as(&headers),
                format!("unauthenticated:{client}"),
                "{uri}"
            );
            if client == "grpc" {
                assert_eq!(headers["grpc-message"], "bitte%20anmelden");
            } else {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{client} {uri}");
                assert_eq!(body, format!("restyled unauthenticated for {client}"));
            }
        }
    }
    let seen = seen.take();
    assert!(
        seen.contains(
            &"unauthenticated browser /auth/login?return_to=%2Fme%3Ftab%3D2 /me?tab=2".to_owned()
        ),
        "{seen:?}"
    );
}

#[tokio::test]
async fn forbidden_is_the_hooks_for_guards_and_extractors() {
    let (s, seen) = restyled().await;
    let cookie = s.provider.session_cookie(&s.auth, &user());
    for client in CLIENTS {
        for uri in ["/admin", "/audit"] {
            let (status, headers, body) = call(&s.app, request(client, uri, Some(&cookie))).await;
            assert_eq!(
                restyled_as(&headers),
                format!("forbidden:{client}"),
                "{uri}"
            );
            assert_eq!(status, StatusCode::FORBIDDEN);
            assert_eq!(body, format!("restyled forbidden for {client}"));
        }
    }
    let seen = seen.take();
    assert!(
        seen.contains(&"forbidden api role auditor".to_owned()),
        "{seen:?}"
    );
    // `Forbidden` returned by a handler is made without the layer: the default API answer.
    let (status, headers, body) = call(&s.app, request("api", "/forbid", Some(&cookie))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(restyled_as(&headers), "");
    assert!(body.contains("\"error\":\"forbidden\""), "{body}");
}

#[tokio::test]
async fn error_pages_are_the_hooks_with_their_reason() {
    let (s, seen) = restyled().await;
    let mut jar = crate::helpers::Jar::default();
    let state = crate::helpers::login_attempt(&s.app, &mut jar).await;
    let uri =
        format!("/auth/callback?state={state}&error=access_denied&error_description=%3Cscript%3E");
    let cookie = jar.header_for("/auth/callback");
    let (status, headers, body) = call(&s.app, request("browser", &uri, Some(&cookie))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(restyled_as(&headers), "error:provider_error");
    assert_eq!(
        body, "<p>&lt;script&gt;</p>",
        "untrusted text escaped by the hook"
    );

    let (status, headers, _) =
        call(&s.app, request("browser", "/auth/callback?state=x", None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(restyled_as(&headers), "error:unknown_attempt");

    let (_, headers, _) = call(
        &s.app,
        request("browser", "/auth/login?error=access_denied", None),
    )
    .await;
    assert_eq!(restyled_as(&headers), "error:provider_error");
    let (_, headers, _) = call(
        &s.app,
        request("browser", "/auth/login?idp_initiated_login=forged", None),
    )
    .await;
    assert_eq!(restyled_as(&headers), "error:invalid_idp_login");

    let seen = seen.take();
    assert_eq!(
        seen[0],
        "error 403 provider_error Some(\"/auth/login\") Some(\"access_denied\") Some(\"<script>\")"
    );
    assert_eq!(
        seen[1],
        "error 400 unknown_attempt Some(\"/auth/login\") None None"
    );
}

#[tokio::test]
async fn unavailable_is_the_hooks_for_every_client() {
    let (s, seen) = restyled().await;
    let cookie = provider_down(&s).await;
    for client in CLIENTS {
        let (status, headers, body) = call(&s.app, request(client, "/me?x=1", Some(&cookie))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{client}");
        assert_eq!(restyled_as(&headers), format!("unavailable:{client}"));
        assert_eq!(body, format!("restyled unavailable for {client}"));
    }
    assert!(seen
        .take()
        .contains(&"unavailable browser /me?x=1 5".to_owned()));
}

#[tokio::test]
async fn invalid_bearer_tokens_get_the_hooks_answer() {
    let (s, seen) = restyled().await;
    for client in ["api", "grpc"] {
        let mut req = request(client, "/me", None);
        req.headers_mut()
            .insert(header::AUTHORIZATION, "Bearer not.a.token".parse().unwrap());
        let (status, headers, _) = call(&s.app, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(restyled_as(&headers), format!("invalid_token:{client}"));
    }
    assert_eq!(seen.take(), ["invalid_token api", "invalid_token grpc"]);
}

#[tokio::test]
async fn confirmation_pages_are_the_hooks() {
    let (s, seen) = restyled().await;
    let (_, headers, body) = call(&s.app, request("browser", "/auth/logout", None)).await;
    assert_eq!(restyled_as(&headers), "confirm_logout:browser");
    assert_eq!(body, "restyled confirm_logout for browser");

    let cookie = s.provider.session_cookie(&s.auth, &user());
    let (status, headers, _) = call(&s.app, idp_login_from_another_site(&s, &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(restyled_as(&headers), "confirm_login:browser");
    assert_eq!(
        seen.take(),
        [
            "confirm_logout POST /auth/logout [] /",
            "confirm_login GET /auth/login [\"idp_initiated_login\"] /",
        ]
    );
}

/// The hook's answers lack every rule; the layer adds them back.
#[tokio::test]
async fn the_layer_keeps_its_rules_whatever_the_hook_returns() {
    let (s, _) = restyled().await;

    // A dead session's cookies are cleared, and the answer is private, no-store.
    let good = s.provider.session_cookie(&s.auth, &user());
    let name = good.split('=').next().unwrap();
    let cookie = format!("{name}=AAAA");
    let (_, headers, _) = call(&s.app, request("api", "/me", Some(&cookie))).await;
    assert_eq!(restyled_as(&headers), "unauthenticated:api");
    assert!(
        set_cookies(&headers)
            .iter()
            .any(|c| c.contains("Max-Age=0")),
        "{headers:?}"
    );
    assert_eq!(headers[header::CACHE_CONTROL], "private, no-store");
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    // Without cookies: no-store all the same, and the 401's challenge.
    for client in CLIENTS {
        let (_, headers, _) = call(&s.app, request(client, "/me", None)).await;
        assert_eq!(headers[header::CACHE_CONTROL], "no-store", "{client}");
    }

    // The error page still clears the used login attempt.
    let (tx_cookie, state) = login_attempt(&s).await;
    let uri = format!("/auth/callback?state={state}&error=access_denied");
    let (_, headers, _) = call(&s.app, request("browser", &uri, Some(&tx_cookie))).await;
    assert_eq!(restyled_as(&headers), "error:provider_error");
    let cleared = set_cookies(&headers);
    assert!(
        cleared
            .iter()
            .any(|c| c.contains("_tx_") && c.contains("Max-Age=0")),
        "{cleared:?}"
    );
    assert_eq!(headers[header::CACHE_CONTROL], "private, no-store");
    let (_, headers, _) = call(&s.app, request("browser", "/auth/callback", None)).await;
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");

    // The forbidden answer is no-store.
    let session = s.provider.session_cookie(&s.auth, &user());
    let (_, headers, _) = call(&s.app, request("browser", "/admin", Some(&session))).await;
    assert_eq!(restyled_as(&headers), "forbidden:browser");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");

    // The bearer refusal keeps its challenge.
    let mut req = request("api", "/me", None);
    req.headers_mut()
        .insert(header::AUTHORIZATION, "Bearer nope".parse().unwrap());
    let (_, headers, _) = call(&s.app, req).await;
    assert_eq!(restyled_as(&headers), "invalid_token:api");
    assert_eq!(
        headers[header::WWW_AUTHENTICATE],
        "Bearer error=\"invalid_token\""
    );
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");

    // The confirmation pages cannot be framed.
    let (_, headers, _) = call(&s.app, request("browser", "/auth/logout", None)).await;
    assert_eq!(restyled_as(&headers), "confirm_logout:browser");
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(
        headers[header::CONTENT_SECURITY_POLICY],
        "frame-ancestors 'none'"
    );
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let (_, headers, _) = call(&s.app, idp_login_from_another_site(&s, &session)).await;
    assert_eq!(restyled_as(&headers), "confirm_login:browser");
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(
        headers[header::CONTENT_SECURITY_POLICY],
        "frame-ancestors 'none'"
    );

    // Unavailable: Retry-After, no-store, and the session's cookies are kept.
    let cookie = provider_down(&s).await;
    for client in CLIENTS {
        let (_, headers, _) = call(&s.app, request(client, "/me", Some(&cookie))).await;
        assert_eq!(restyled_as(&headers), format!("unavailable:{client}"));
        assert_eq!(headers[header::RETRY_AFTER], "5", "{client}");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert!(set_cookies(&headers).is_empty(), "cookies kept");
    }
}

/// The hook renders the logout confirmation; the layer alone decides what logs out.
#[tokio::test]
async fn only_the_layers_check_logs_out() {
    let (s, _) = restyled().await;
    let session = s.provider.session_cookie(&s.auth, &user());
    let post = |origin: &str| {
        Request::post("/auth/logout")
            .header(header::ACCEPT, "text/html")
            .header(header::ORIGIN, origin)
            .header(header::COOKIE, &session)
            .body(Body::empty())
            .unwrap()
    };
    // A form on another site posting to logout gets the (restyled) question, nothing cleared.
    let (status, headers, _) = call(&s.app, post("https://evil.example")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(restyled_as(&headers), "confirm_logout:browser");
    assert!(set_cookies(&headers).is_empty());
    // The app's own POST logs out.
    let (status, headers, _) = call(&s.app, post(ORIGIN)).await;
    assert_eq!(status, StatusCode::FOUND);
    assert!(set_cookies(&headers)
        .iter()
        .any(|c| c.contains("Max-Age=0")));
}

type MakeRequest = Box<dyn Fn(&Setup) -> Request<Body>>;

/// A hook that overrides one case leaves every other answer exactly as the layer makes it.
#[tokio::test]
async fn answers_not_overridden_are_the_defaults() {
    let plain = setup(|b| b).await;
    let partial = setup(|b| b.responses(OnlyApiForbidden)).await;
    for s in [&plain, &partial] {
        s.provider.set_token_failure(Some(Failure::Status(503)));
    }
    let mut requests: Vec<MakeRequest> = Vec::new();
    for client in CLIENTS {
        requests.push(Box::new(move |_| request(client, "/me?a=1", None)));
        requests.push(Box::new(move |_| request(client, "/audit", None)));
        requests.push(Box::new(move |s: &Setup| {
            let session = s.provider.session_cookie(&s.auth, &user());
            request(client, "/admin", Some(&session))
        }));
        requests.push(Box::new(move |_| {
            let mut req = request(client, "/me", None);
            req.headers_mut()
                .insert(header::AUTHORIZATION, "Bearer x".parse().unwrap());
            req
        }));
    }
    for uri in [
        "/auth/callback?state=x",
        "/auth/callback?error=server_error&error_description=oops",
        "/auth/login?error=access_denied",
        "/auth/login?a=1&a=2",
        "/auth/logout",
    ] {
        requests.push(Box::new(move |_| request("browser", uri, None)));
    }
    requests.push(Box::new(|s: &Setup| {
        let session = s.provider.session_cookie(&s.auth, &user());
        idp_login_from_another_site(s, &session)
    }));
    for (i, make) in requests.iter().enumerate() {
        let a = call(&plain.app, make(&plain)).await;
        let b = call(&partial.app, make(&partial)).await;
        if restyled_as(&b.1) == "forbidden:api" {
            assert_eq!(a.0, StatusCode::FORBIDDEN);
            continue;
        }
        // The IdP-login page embeds a signed token, different for each provider.
        let strip = |s: &str| s.split("value=\"").next().unwrap().to_owned();
        assert_eq!(
            (a.0, &a.1, strip(&a.2)),
            (b.0, &b.1, strip(&b.2)),
            "request {i}"
        );
    }
    // Unavailable, for every client: the same answer.
    for client in CLIENTS {
        let answers = [&plain, &partial].map(|s| {
            let cookie = s.provider.session_cookie(&s.auth, &user());
            s.clock.advance(Duration::from_secs(400));
            request(client, "/me", Some(&cookie))
        });
        let [pa, pb] = answers;
        let a = call(&plain.app, pa).await;
        let b = call(&partial.app, pb).await;
        let unavailable = match client {
            "grpc" => a.1["grpc-status"] == "14",
            _ => a.0 == StatusCode::SERVICE_UNAVAILABLE,
        };
        assert!(unavailable, "{client} {a:?}");
        assert_eq!(a, b, "{client}");
    }
}
