//! Attacks on the restructuring of issue 15: the `Responses` hook and what the layer enforces
//! on whatever it returns; the per-request pipeline's states (sync and async paths, claims and
//! cookies, concurrency); errors that keep their cause; environment loading and `validate()`;
//! and the crate's own `Algorithm`.
//!
//! Each test fails if its attack works. Tests whose defence holds are kept as guards.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderMap, Request, Response, StatusCode};
use serde_json::json;
use tower::ServiceExt;
use tower_oidc_auth::clock::Clock;
use tower_oidc_auth::responses::{
    ConfirmContext, DefaultResponses, ErrorPage, ForbiddenContext, InvalidTokenContext, Responses,
    UnauthenticatedContext, UnavailableContext,
};
use tower_oidc_auth::testing::{Failure, IdTokenDefect, IdpInitiatedLogin, TestUser};
use tower_oidc_auth::{Algorithm, AuthLayer, AuthLayerBuilder, Claims};

use crate::helpers::*;

// ---- Shared pieces ---------------------------------------------------------------------------

/// An app with every kind of route the hook answers for: a `require()` guard, a role guard,
/// optional claims that name who the app sees, and a counter of calls into the app.
fn hooked_app(auth: &AuthLayer, calls: Arc<AtomicUsize>) -> Router {
    let c1 = calls.clone();
    let c2 = calls.clone();
    let c3 = calls;
    Router::new()
        .route(
            "/me",
            get(move |c: Claims| {
                c1.fetch_add(1, Ordering::SeqCst);
                async move { c.sub.clone() }
            }),
        )
        .route_layer(auth.require())
        .route(
            "/admin",
            get(move || {
                c2.fetch_add(1, Ordering::SeqCst);
                async { "admin" }
            })
            .layer(auth.require_role("auditor")),
        )
        .route(
            "/",
            get(move |c: Option<Claims>| {
                c3.fetch_add(1, Ordering::SeqCst);
                async move {
                    c.map(|c| c.sub.clone())
                        .unwrap_or_else(|| "anonymous".into())
                }
            }),
        )
        .layer(auth.clone())
}

async fn hooked_setup(
    tweak: impl FnOnce(AuthLayerBuilder) -> AuthLayerBuilder,
) -> (Setup, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut s = setup_with(tweak).await;
    s.app = hooked_app(&s.auth, calls.clone());
    (s, calls)
}

async fn parts(resp: Response<Body>) -> (StatusCode, HeaderMap, String) {
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, body_string(resp).await)
}

fn browser(uri: &str, cookie: Option<&str>) -> Request<Body> {
    let mut req = Request::get(uri)
        .header(header::ACCEPT, "text/html")
        .header("sec-fetch-mode", "navigate");
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    req.body(Body::empty()).unwrap()
}

fn cross_site_logout(cookie: &str) -> Request<Body> {
    Request::post("/auth/logout")
        .header(header::ACCEPT, "text/html")
        .header(header::ORIGIN, "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap()
}

fn idp_login_cross_site(s: &Setup, cookie: &str) -> Request<Body> {
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

// ---- 1. The Responses hook -------------------------------------------------------------------

/// Returns the default confirmation pages with an app policy that lists `frame-ancestors`
/// twice: a partner site first, then `'none'` appended (as an app "tightening" its site-wide
/// policy would). CSP keeps only the first occurrence of a directive in a policy.
struct DuplicateFrameAncestors;

fn with_partner_policy(mut r: Response<Bytes>) -> Response<Bytes> {
    let h = r.headers_mut();
    h.remove(header::CONTENT_SECURITY_POLICY);
    h.remove(header::X_FRAME_OPTIONS);
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; frame-ancestors https://evil.example; frame-ancestors 'none'"
            .parse()
            .unwrap(),
    );
    r
}

impl Responses for DuplicateFrameAncestors {
    fn confirm_logout(&self, cx: &ConfirmContext<'_>) -> Response<Bytes> {
        with_partner_policy(DefaultResponses.confirm_logout(cx))
    }
    fn confirm_login(&self, cx: &ConfirmContext<'_>) -> Response<Bytes> {
        with_partner_policy(DefaultResponses.confirm_login(cx))
    }
}

/// Whether the response's policies, read as a browser reads them (CSP3: several policies per
/// header separated by `,`; within a policy a repeated directive is ignored, the first counts),
/// forbid every framing: some enforced policy's effective `frame-ancestors` is `'none'`.
fn csp_forbids_framing(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONTENT_SECURITY_POLICY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|policy| {
            let first = policy.split(';').find_map(|d| {
                let mut words = d.split_ascii_whitespace();
                let name = words.next()?;
                name.eq_ignore_ascii_case("frame-ancestors")
                    .then(|| words.map(str::to_ascii_lowercase).collect::<Vec<_>>())
            });
            first.is_some_and(|sources| sources == ["'none'"])
        })
}

/// Threat: clickjacking of the confirmation pages. The layer promises they are unframeable
/// whatever the hook returns, but it accepts a hook policy as "already says frame-ancestors
/// 'none'" when the directive appears anywhere in it. A policy that names `frame-ancestors`
/// twice is enforced with the first occurrence only (CSP3, "parse a serialized policy"), and a
/// browser that enforces a CSP `frame-ancestors` ignores `X-Frame-Options`.
/// Fails if no enforced policy of the confirmation page forbids framing.
#[tokio::test]
async fn hook_duplicate_frame_ancestors_cannot_unframe_confirmation_pages() {
    let (s, _) = hooked_setup(|b| b.responses(DuplicateFrameAncestors)).await;
    let session = s.provider.session_cookie(&s.auth, &user());
    let (status, headers, _) = parts(serve(&s.app, cross_site_logout(&session)).await).await;
    assert_eq!(status, StatusCode::OK, "the logout confirmation page");
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    assert!(
        csp_forbids_framing(&headers),
        "logout confirmation frameable by https://evil.example: {:?}",
        headers.get_all(header::CONTENT_SECURITY_POLICY)
    );
    let (status, headers, _) = parts(serve(&s.app, idp_login_cross_site(&s, &session)).await).await;
    assert_eq!(status, StatusCode::OK, "the login confirmation page");
    assert!(
        csp_forbids_framing(&headers),
        "login confirmation frameable by https://evil.example: {:?}",
        headers.get_all(header::CONTENT_SECURITY_POLICY)
    );
}

/// A hook whose answers carry the caching an app sets for its CDN: a public `Cache-Control`
/// and the CDN-targeted fields that CDNs obey before `Cache-Control` (RFC 9213).
struct CdnCached;

fn cdn_cached(mut r: Response<Bytes>) -> Response<Bytes> {
    let h = r.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        "public, max-age=600".parse().unwrap(),
    );
    h.insert("cdn-cache-control", "public, max-age=600".parse().unwrap());
    h.insert(
        "cloudflare-cdn-cache-control",
        "max-age=600".parse().unwrap(),
    );
    h.insert("surrogate-control", "max-age=600".parse().unwrap());
    r
}

impl Responses for CdnCached {
    fn unauthenticated(&self, cx: &UnauthenticatedContext<'_>) -> Response<Bytes> {
        cdn_cached(DefaultResponses.unauthenticated(cx))
    }
    fn forbidden(&self, cx: &ForbiddenContext<'_>) -> Response<Bytes> {
        cdn_cached(DefaultResponses.forbidden(cx))
    }
    fn unavailable(&self, cx: &UnavailableContext<'_>) -> Response<Bytes> {
        cdn_cached(DefaultResponses.unavailable(cx))
    }
    fn invalid_token(&self, cx: &InvalidTokenContext) -> Response<Bytes> {
        cdn_cached(DefaultResponses.invalid_token(cx))
    }
    fn confirm_logout(&self, cx: &ConfirmContext<'_>) -> Response<Bytes> {
        cdn_cached(DefaultResponses.confirm_logout(cx))
    }
}

/// The caching fields of `headers` that would let a shared cache store the answer.
fn cacheable_fields(headers: &HeaderMap) -> Vec<String> {
    headers
        .iter()
        .filter(|(name, _)| {
            let n = name.as_str();
            n == "cache-control" || n.ends_with("cdn-cache-control") || n == "surrogate-control"
        })
        .filter(|(_, v)| {
            !v.to_str()
                .unwrap_or("")
                .split(',')
                .any(|d| d.trim().eq_ignore_ascii_case("no-store"))
        })
        .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("?")))
        .collect()
}

/// Threat: a CDN stores a per-request (some per-user) answer and serves it to others: the
/// redirect to login for a page signed-in users then get, a 403 or 503 cached for everyone.
/// The layer makes every hooked answer `no-store`, and knows CDNs obey their targeted fields
/// first (`add_cookies` rewrites them), yet a hooked answer without the layer's cookies keeps
/// the hook's `CDN-Cache-Control` and `Surrogate-Control`.
/// Fails if any hooked answer keeps a caching field that allows storing it.
#[tokio::test]
async fn hook_cdn_cache_fields_cannot_make_hooked_answers_cacheable() {
    let (s, _) = hooked_setup(|b| b.responses(CdnCached)).await;
    let session = s.provider.session_cookie(&s.auth, &user());
    let mut bad = Vec::new();
    let mut check = |what: &str, headers: &HeaderMap| {
        let fields = cacheable_fields(headers);
        if !fields.is_empty() {
            bad.push(format!("{what}: {fields:?}"));
        }
    };
    let (_, h, _) = parts(serve(&s.app, browser("/me", None)).await).await;
    check("unauthenticated", &h);
    let (_, h, _) = parts(serve(&s.app, browser("/admin", Some(&session))).await).await;
    check("forbidden", &h);
    let (_, h, _) = parts(serve(&s.app, bearer("/me", "not.a.token")).await).await;
    check("invalid_token", &h);
    let (_, h, _) = parts(serve(&s.app, cross_site_logout(&session)).await).await;
    check("confirm_logout", &h);
    s.clock.advance(Duration::from_secs(400));
    s.provider.set_token_failure(Some(Failure::Status(503)));
    let (status, h, _) = parts(serve(&s.app, browser("/me", Some(&session))).await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    check("unavailable", &h);
    assert!(bad.is_empty(), "cacheable hooked answers: {bad:#?}");
}

/// A hook whose `Cache-Control` names `no-store` only inside the quoted field list of
/// `no-cache` (RFC 9111 5.2.2.4): the answer is public for ten minutes.
struct QuotedNoStore;

impl Responses for QuotedNoStore {
    fn forbidden(&self, cx: &ForbiddenContext<'_>) -> Response<Bytes> {
        let mut r = DefaultResponses.forbidden(cx);
        r.headers_mut().insert(
            header::CACHE_CONTROL,
            "no-cache=\"x-a,no-store,x-b\", public, max-age=600"
                .parse()
                .unwrap(),
        );
        r
    }
}

/// The directives of a `Cache-Control` value, split on commas outside quoted strings.
fn directives(value: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for ch in value.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                cur.push(ch);
            }
            ',' if !quoted => out.push(std::mem::take(&mut cur).trim().to_ascii_lowercase()),
            _ => cur.push(ch),
        }
    }
    out.push(cur.trim().to_ascii_lowercase());
    out
}

/// Threat (low): the layer's "does the hook's `Cache-Control` say no-store" test splits on
/// every comma, so `no-store` inside a quoted argument counts, and a public, cacheable answer
/// is kept. Fails if the answer's `Cache-Control` has no real `no-store` directive.
#[tokio::test]
async fn hook_quoted_no_store_is_not_no_store() {
    let (s, _) = hooked_setup(|b| b.responses(QuotedNoStore)).await;
    let session = s.provider.session_cookie(&s.auth, &user());
    let (status, h, _) = parts(serve(&s.app, request("/admin", &session)).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let cc = h[header::CACHE_CONTROL].to_str().unwrap();
    assert!(
        directives(cc).iter().any(|d| d == "no-store"),
        "a public, cacheable 403: Cache-Control: {cc}"
    );
}

/// Records the `Debug` of every context the hook is given, and answers with the defaults.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Recorder {
    fn push(&self, what: &str, cx: &dyn std::fmt::Debug) {
        self.0.lock().unwrap().push(format!("{what} {cx:?}"));
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl Responses for Recorder {
    fn unauthenticated(&self, cx: &UnauthenticatedContext<'_>) -> Response<Bytes> {
        self.push("unauthenticated", cx);
        DefaultResponses.unauthenticated(cx)
    }
    fn forbidden(&self, cx: &ForbiddenContext<'_>) -> Response<Bytes> {
        self.push("forbidden", cx);
        DefaultResponses.forbidden(cx)
    }
    fn error_page(&self, cx: &ErrorPage<'_>) -> Response<Bytes> {
        self.push("error_page", cx);
        DefaultResponses.error_page(cx)
    }
    fn unavailable(&self, cx: &UnavailableContext<'_>) -> Response<Bytes> {
        self.push("unavailable", cx);
        DefaultResponses.unavailable(cx)
    }
    fn invalid_token(&self, cx: &InvalidTokenContext) -> Response<Bytes> {
        self.push("invalid_token", cx);
        DefaultResponses.invalid_token(cx)
    }
    fn confirm_logout(&self, cx: &ConfirmContext<'_>) -> Response<Bytes> {
        self.push("confirm_logout", cx);
        DefaultResponses.confirm_logout(cx)
    }
    fn confirm_login(&self, cx: &ConfirmContext<'_>) -> Response<Bytes> {
        // The IdP-initiated login token is a documented field (the form resubmits it); only
        // the rest of the context is checked.
        let fields: Vec<&str> = cx.fields.iter().map(|(n, _)| *n).collect();
        self.push(
            "confirm_login",
            &format!("{} {} {fields:?} {}", cx.method, cx.action, cx.cancel),
        );
        DefaultResponses.confirm_login(cx)
    }
}

/// The callback URI of a login started through `app` (its cookies in `jar`), and the code in it.
async fn callback_of(s: &Setup, jar: &mut Jar) -> (String, String) {
    let resp = send(&s.app, jar, get_html("/auth/login?return_to=%2Fme")).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let callback = authorize(&location(&resp)).await;
    let code = values(&query_of(&format!("http://127.0.0.1{callback}")), "code")
        .pop()
        .expect("code in the callback");
    (callback, code)
}

/// Every value a response's `Set-Cookie` headers carry.
fn cookie_values(resp: &Response<Body>) -> Vec<String> {
    set_cookies(resp)
        .iter()
        .map(|c| c.value().to_owned())
        .filter(|v| v.len() >= 16)
        .collect()
}

/// Threat: a hook (often logging its contexts, or showing them on a page) receives token
/// material, authorization codes, cookie values or the client secret. The hook is driven
/// through every answer: a dead and a live session, a role guard, failed callbacks after a real
/// code (refused, failing and unverifiable token answers), an unavailable refresh, a bearer
/// token refused, both confirmation pages. Fails if any context's `Debug` contains any token
/// or code the provider issued, the client secret, or any cookie value the layer set.
#[tokio::test]
async fn hook_contexts_never_carry_tokens_codes_cookies_or_secrets() {
    let rec = Recorder::default();
    let hook = rec.clone();
    let (s, _) = hooked_setup(|b| b.responses(hook)).await;
    let mut secrets: Vec<String> = vec![s.provider.client_secret().to_owned()];

    // A real sign-in: tokens, code and cookies to look for.
    let mut jar = Jar::default();
    let resp = login(&s, &mut jar, "/auth/login").await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    secrets.extend(cookie_values(&resp));
    let session = jar.header_for("/");
    // A role guard and the confirmation pages over the live session.
    serve(&s.app, browser("/admin", Some(&session))).await;
    serve(&s.app, request("/admin", &session)).await;
    serve(&s.app, cross_site_logout(&session)).await;
    serve(&s.app, idp_login_cross_site(&s, &session)).await;
    // A bearer token refused: a real access token, altered.
    let at = s.provider.access_token(&user());
    serve(&s.app, bearer("/me", &format!("{at}x"))).await;
    // Failed callbacks after real codes.
    for failure in [
        Failure::OAuthError("invalid_grant".into()),
        Failure::Status(500),
        Failure::NotJson,
        Failure::Truncated,
    ] {
        let mut jar = Jar::default();
        let (callback, code) = callback_of(&s, &mut jar).await;
        secrets.push(code);
        s.provider.set_token_failure(Some(failure));
        let resp = send(&s.app, &mut jar, get_html(&callback)).await;
        assert!(resp.status().is_client_error() || resp.status().is_server_error());
        s.provider.set_token_failure(None);
    }
    s.provider
        .set_id_token_defect(Some(IdTokenDefect::WrongIssuer));
    let mut jar2 = Jar::default();
    let (callback, code) = callback_of(&s, &mut jar2).await;
    secrets.push(code);
    let resp = send(&s.app, &mut jar2, get_html(&callback)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    s.provider.set_id_token_defect(None);
    s.provider
        .set_access_token_audience(Some(vec!["https://api.other.example".into()]));
    let mut jar3 = Jar::default();
    let (callback, code) = callback_of(&s, &mut jar3).await;
    secrets.push(code);
    send(&s.app, &mut jar3, get_html(&callback)).await;
    s.provider.set_access_token_audience(None);
    // Unavailable: the refresh due and the provider down.
    s.clock.advance(Duration::from_secs(400));
    s.provider.set_token_failure(Some(Failure::Status(503)));
    let resp = serve(&s.app, browser("/me?tab=1", Some(&session))).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    s.provider.set_token_failure(None);
    // A dead session (the cookie value tampered).
    let (name, value, _) = split_session(&session);
    let dead = format!("{name}={}AAAA", &value[..value.len() - 4]);
    serve(&s.app, browser("/me", Some(&dead))).await;

    secrets.extend(s.provider.issued_secrets());
    let seen = rec.all();
    for kind in [
        "unauthenticated",
        "forbidden",
        "error_page",
        "unavailable",
        "invalid_token",
        "confirm_logout",
        "confirm_login",
    ] {
        assert!(
            seen.iter().any(|c| c.starts_with(kind)),
            "hook never asked for {kind}: {seen:#?}"
        );
    }
    for cx in &seen {
        for secret in &secrets {
            // Its last 40 characters (a JWT's signature, not its shared header).
            let probe = &secret[secret.len().saturating_sub(40)..];
            assert!(
                probe.len() < 16 || !cx.contains(probe),
                "a hook context carries a secret ({probe}...): {cx}"
            );
        }
    }
}

/// Threat: an open redirect through the hook. The contexts promise `login_url`, `return_to`
/// and `retry` are same-origin paths, safe in a `Location` header. Requests whose path would
/// be read by a browser as another host are sent. Fails if any of those fields is not a path
/// of this origin.
#[tokio::test]
async fn hook_targets_are_same_origin_paths() {
    let rec = Recorder::default();
    let hook = rec.clone();
    let (mut s, _) = hooked_setup(|b| b.responses(hook)).await;
    // Every path needs a signed-in user: the extractor asks the hook for each.
    s.app = Router::new()
        .fallback(get(|c: Claims| async move { c.sub.clone() }))
        .layer(s.auth.clone());
    let session = s.provider.session_cookie(&s.auth, &user());
    let tricky = [
        "//evil.example/me",
        "/me/..//evil.example",
        "/%2F%2Fevil.example",
        "/me?x=1#//evil.example",
        "/\\evil.example",
        "/me/%5C%5Cevil.example",
    ];
    for path in tricky {
        let Ok(req) = Request::get(path)
            .header(header::ACCEPT, "text/html")
            .body(Body::empty())
        else {
            continue;
        };
        let resp = serve(&s.app, req).await;
        if let Some(loc) = resp.headers().get(header::LOCATION) {
            let loc = loc.to_str().unwrap();
            assert!(
                loc.starts_with('/') && !loc.starts_with("//") && !loc.contains('\\'),
                "{path}: Location {loc}"
            );
        }
    }
    s.clock.advance(Duration::from_secs(400));
    s.provider.set_token_failure(Some(Failure::Status(503)));
    for path in tricky {
        let Ok(req) = Request::get(path)
            .header(header::ACCEPT, "text/html")
            .header(header::COOKIE, &session)
            .body(Body::empty())
        else {
            continue;
        };
        serve(&s.app, req).await;
    }
    let seen = rec.all();
    assert!(!seen.is_empty());
    for cx in &seen {
        for field in ["login_url: \"", "return_to: \"", "retry: \""] {
            if let Some(at) = cx.find(field) {
                let value = &cx[at + field.len()..];
                assert!(
                    value.starts_with('/')
                        && !value.starts_with("//")
                        && !value.starts_with("/\\")
                        && !value.starts_with("/\\\\"),
                    "{field} not a same-origin path: {cx}"
                );
            }
        }
    }
}

// ---- 2. The pipeline's states ----------------------------------------------------------------

/// The claims of `user`, as this very layer verified them for another request.
async fn claims_of(s: &Setup, user: &TestUser) -> Claims {
    let store: Arc<Mutex<Option<Claims>>> = Arc::default();
    let keep = store.clone();
    let app = Router::new()
        .route(
            "/capture",
            get(move |c: Claims| {
                *keep.lock().unwrap() = Some(c);
                async {}
            }),
        )
        .layer(s.auth.clone());
    let cookie = s.provider.session_cookie(&s.auth, user);
    assert_eq!(
        serve(&app, request("/capture", &cookie)).await.status(),
        StatusCode::OK
    );
    let claims = store.lock().unwrap().take().unwrap();
    claims
}

/// The app of [`hooked_app`] behind an outer layer that plants `forged` claims in every
/// request's extensions (an outer middleware, or a client-controlled one, that would like the
/// app to see someone else).
fn with_planted(auth: &AuthLayer, forged: Claims, calls: Arc<AtomicUsize>) -> Router {
    hooked_app(auth, calls).layer(tower::util::MapRequestLayer::new(
        move |mut req: Request<Body>| {
            req.extensions_mut().insert(forged.clone());
            req
        },
    ))
}

/// Threat: claims put into the request by an outer layer reach the app as if verified, on one
/// of the paths the restructuring split apart: no session, a session answered synchronously, a
/// session whose refresh is due (the async path owning the request), a bearer token verified
/// at once, a bearer token signed by a key not fetched yet (the async path), a refused bearer
/// token (answered by the layer). Fails if the app ever sees the planted `usr_evil`, or sees
/// anyone but the request's own user.
#[tokio::test]
async fn planted_claims_never_reach_the_app_on_any_path() {
    let s = setup().await;
    let evil = claims_of(&s, &TestUser::new("usr_evil").role("auditor")).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let app = with_planted(&s.auth, evil, calls.clone());

    // No session.
    let resp = serve(&app, get_json("/")).await;
    assert_eq!(body_string(resp).await, "anonymous", "no session");
    assert_eq!(
        serve(&app, get_json("/me")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        serve(&app, get_json("/admin")).await.status(),
        StatusCode::UNAUTHORIZED,
        "a role guard honoured planted claims"
    );
    // A session answered synchronously (and again from the caches).
    let ada = s
        .provider
        .session_cookie(&s.auth, &TestUser::new("usr_ada"));
    for round in 0..3 {
        let body = body_string(call(&app, "/", &ada).await).await;
        assert_eq!(body, "usr_ada", "sync session, round {round}");
    }
    // The same session with its refresh due: the async path.
    let old = s
        .provider
        .session_cookie(&s.auth, &TestUser::new("usr_old"));
    s.clock.advance(Duration::from_secs(400));
    let resp = call(&app, "/", &old).await;
    assert!(
        set_cookies(&resp).session().is_some(),
        "refreshed: {:?}",
        set_cookies(&resp)
    );
    assert_eq!(body_string(resp).await, "usr_old", "async (refresh) path");
    // A bearer token verified at once.
    let token = s.provider.access_token(&TestUser::new("usr_bob"));
    let resp = serve(&app, bearer("/", &token)).await;
    assert_eq!(body_string(resp).await, "usr_bob", "sync bearer");
    // A bearer token signed by a key the layer has not fetched: the async path.
    s.provider.rotate_keys(false);
    let token = s.provider.access_token(&TestUser::new("usr_carol"));
    let resp = serve(&app, bearer("/", &token)).await;
    assert_eq!(body_string(resp).await, "usr_carol", "async bearer");
    // A refused bearer token: the layer answers, the app is not called.
    let before = calls.load(Ordering::SeqCst);
    let resp = serve(&app, bearer("/", &format!("{token}x"))).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        before,
        "app called on Respond"
    );
}

/// Threat: a `Respond` outcome still calls the app (its side effects run for a request the
/// layer refused), on the sync path (a forged or malformed bearer token) or the async path (the
/// provider cannot refresh an expired session; a bearer token naming a key the provider does
/// not publish, after the refetch). Fails if the app's handler runs for any of them.
#[tokio::test]
async fn respond_outcomes_never_call_the_app() {
    let (s, calls) = hooked_setup(|b| b.refresh_timeout(Duration::from_millis(300))).await;
    let forged = s.provider.sign_with_unpublished_key(
        &json!({"alg": "RS256", "kid": s.provider.current_kid(), "typ": "JWT"}),
        &json!({"sub": "usr_evil", "iss": s.provider.issuer(), "aud": s.provider.client_id(),
                "exp": 4_000_000_000_i64}),
    );
    let unknown_kid = s.provider.sign_with_unpublished_key(
        &json!({"alg": "RS256", "kid": "never-published", "typ": "JWT"}),
        &json!({"sub": "usr_evil", "iss": s.provider.issuer(), "aud": s.provider.client_id(),
                "exp": 4_000_000_000_i64}),
    );
    for (what, token) in [
        ("malformed", "x.y.z".to_owned()),
        ("forged signature", forged),
        ("unknown kid", unknown_kid),
    ] {
        for uri in ["/", "/me", "/admin"] {
            let resp = serve(&s.app, bearer(uri, &token)).await;
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what} {uri}");
            assert_eq!(calls.load(Ordering::SeqCst), 0, "{what} {uri}: app called");
        }
    }
    let cookie = s.provider.session_cookie(&s.auth, &user());
    s.clock.advance(Duration::from_secs(400));
    s.provider.set_token_failure(Some(Failure::Status(503)));
    for uri in ["/", "/me", "/admin"] {
        let resp = call(&s.app, uri, &cookie).await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "unavailable {uri}: app called"
        );
    }
}

/// Threat: the async path attaches cookies unlike the sync path, so a refreshed session's
/// new cookies go out on an answer a shared cache may store (the handler asked for public
/// caching, with a CDN field), or the new cookies name someone else. Fails if the refreshed
/// answer is not `private, no-store` with `Vary: Cookie` and CDN fields neutralised, or if the
/// new session is not the same user.
#[tokio::test]
async fn async_path_cookies_are_guarded_like_the_sync_path() {
    let s = setup().await;
    let app = Router::new()
        .route(
            "/page",
            get(|c: Claims| async move {
                (
                    [
                        (header::CACHE_CONTROL, "public, max-age=3600"),
                        (
                            http::HeaderName::from_static("cdn-cache-control"),
                            "max-age=3600",
                        ),
                    ],
                    c.sub.clone(),
                )
            }),
        )
        .layer(s.auth.clone());
    let cookie = s
        .provider
        .session_cookie(&s.auth, &TestUser::new("usr_dora"));
    s.clock.advance(Duration::from_secs(400));
    let resp = call(&app, "/page", &cookie).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let set = set_cookies(&resp);
    let session = set.session().expect("refreshed session cookie").clone();
    let h = resp.headers().clone();
    assert_eq!(h[header::CACHE_CONTROL], "private, no-store");
    assert_eq!(h["cdn-cache-control"], "no-store");
    assert!(h.get_all(header::VARY).iter().any(|v| v
        .to_str()
        .unwrap()
        .to_ascii_lowercase()
        .contains("cookie")));
    assert_eq!(body_string(resp).await, "usr_dora");
    // The new cookie is the same user's session, and needs no refresh now.
    let (_, _, rest) = split_session(&cookie);
    let renewed = if rest.is_empty() {
        cookie_pair(&session)
    } else {
        format!("{}; {rest}", cookie_pair(&session))
    };
    let resp = call(&app, "/page", &renewed).await;
    assert!(set_cookies(&resp).session().is_none());
    assert_eq!(body_string(resp).await, "usr_dora");
}

/// Threat: requests racing on clones of one `Router` get one another's claims or cookies
/// (the async path now owns the inner service and the request; the caches are shared). Many
/// users at once: sessions answered synchronously, sessions due for a refresh (async), bearer
/// tokens, anonymous requests, each with claims of `usr_evil` planted by an outer layer. Fails
/// if any answer names another user, or if a refreshed cookie opens as another user.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_requests_never_swap_claims_or_cookies() {
    let s = setup().await;
    let evil = claims_of(&s, &TestUser::new("usr_evil")).await;
    let app = with_planted(&s.auth, evil, Arc::new(AtomicUsize::new(0)));
    // Sessions made now are due for a refresh after the clock moves; those made after it are not.
    let due: Vec<(String, String)> = (0..12)
        .map(|i| {
            let sub = format!("usr_due_{i}");
            (
                sub.clone(),
                s.provider.session_cookie(&s.auth, &TestUser::new(sub)),
            )
        })
        .collect();
    s.clock.advance(Duration::from_secs(400));
    let fresh: Vec<(String, String)> = (0..12)
        .map(|i| {
            let sub = format!("usr_fresh_{i}");
            (
                sub.clone(),
                s.provider.session_cookie(&s.auth, &TestUser::new(sub)),
            )
        })
        .collect();
    let bearers: Vec<(String, String)> = (0..12)
        .map(|i| {
            let sub = format!("usr_bearer_{i}");
            (sub.clone(), s.provider.access_token(&TestUser::new(sub)))
        })
        .collect();
    let mut tasks = Vec::new();
    for round in 0..3 {
        for (sub, cookie) in due.iter().chain(fresh.iter()) {
            let (app, sub, cookie) = (app.clone(), sub.clone(), cookie.clone());
            tasks.push(tokio::spawn(async move {
                let resp = app.oneshot(request("/", &cookie)).await.unwrap();
                let session = set_cookies(&resp).session().map(cookie_pair);
                (sub, body_string(resp).await, session, round)
            }));
        }
        for (sub, token) in &bearers {
            let (app, sub, token) = (app.clone(), sub.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                let resp = app.oneshot(bearer("/", &token)).await.unwrap();
                (sub, body_string(resp).await, None, round)
            }));
        }
        for _ in 0..6 {
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                let resp = app.oneshot(get_json("/")).await.unwrap();
                ("anonymous".to_owned(), body_string(resp).await, None, round)
            }));
        }
    }
    let mut renewed = Vec::new();
    for t in tasks {
        let (sub, body, session, round) = t.await.unwrap();
        assert_eq!(body, sub, "round {round}: {sub} was answered as {body}");
        if let Some(pair) = session {
            renewed.push((sub, pair));
        }
    }
    assert!(!renewed.is_empty(), "no session was refreshed");
    for (sub, pair) in renewed {
        let body = body_string(call(&app, "/", &pair).await).await;
        assert_eq!(body, sub, "a refreshed cookie of {sub} opens as {body}");
    }
}

// ---- 3. Errors keep their cause, never a secret ----------------------------------------------

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Threat: the errors that now keep their cause (`ProviderError::Unreachable { source }`, the
/// chains the log lines print) carry the client secret, an authorization code, a token or a
/// cookie into the logs. Every failure the token, revocation and JWKS endpoints can show is
/// provoked (OAuth errors, 5xx, non-JSON and cut-off answers, an unreachable provider) during
/// sign-in, refresh and logout, with every log line at TRACE captured. Fails if a line of the
/// crate (outside its `testing` provider) contains any of those secrets or the cookie key.
#[tokio::test]
async fn logs_and_error_chains_never_carry_secrets() {
    let out = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(out.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let key: Vec<u8> = tower_oidc_auth::testing::cookie_key(37).to_vec();
    let key_for_layer = key.clone();
    let s = setup_with(move |b| {
        b.cookie_key(key_for_layer)
            .refresh_timeout(Duration::from_millis(500))
            .http_timeout(Duration::from_secs(2))
    })
    .await;
    let mut secrets: Vec<String> = vec![
        s.provider.client_secret().to_owned(),
        STANDARD.encode(&key),
        URL_SAFE_NO_PAD.encode(&key),
        format!("{:?}", &key[..8]).trim_end_matches(']').to_owned(),
    ];

    // Sign-ins whose code exchange fails in every way.
    for failure in [
        Failure::OAuthError("invalid_grant".into()),
        Failure::Status(500),
        Failure::NotJson,
        Failure::Truncated,
    ] {
        let mut jar = Jar::default();
        let (callback, code) = callback_of(&s, &mut jar).await;
        secrets.push(code);
        s.provider.set_token_failure(Some(failure));
        send(&s.app, &mut jar, get_html(&callback)).await;
        s.provider.set_token_failure(None);
    }
    // A good sign-in, then refreshes that fail in every way, then a logout whose revocation
    // fails.
    let mut jar = Jar::default();
    let resp = login(&s, &mut jar, "/auth/login").await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    secrets.extend(cookie_values(&resp));
    for failure in [
        Failure::Status(500),
        Failure::NotJson,
        Failure::Truncated,
        Failure::OAuthError("invalid_request".into()),
    ] {
        s.clock.advance(Duration::from_secs(400));
        s.provider.set_token_failure(Some(failure));
        let mut probe = jar.clone();
        send(&s.app, &mut probe, get_json("/me")).await;
    }
    s.provider.set_token_failure(None);
    s.provider
        .set_revocation_failure(Some(Failure::Status(500)));
    let mut logout_jar = jar.clone();
    send(&s.app, &mut logout_jar, logout_post()).await;
    // A fresh session, then the provider gone: the refresh cannot reach it.
    let mut jar = Jar::default();
    let resp = login(&s, &mut jar, "/auth/login").await;
    secrets.extend(cookie_values(&resp));
    secrets.extend(s.provider.issued_secrets());
    let Setup {
        provider,
        app,
        clock,
        auth,
    } = s;
    drop(provider);
    clock.advance(Duration::from_secs(400));
    let resp = send(&app, &mut jar.clone(), get_json("/me")).await;
    assert!(
        resp.status() == StatusCode::SERVICE_UNAVAILABLE || resp.status().is_client_error(),
        "{}",
        resp.status()
    );
    send(&app, &mut jar.clone(), logout_post()).await;
    drop(auth);

    let logs = String::from_utf8_lossy(&out.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains("cannot reach the provider") || logs.contains("refresh failed"),
        "the unreachable provider was not logged:\n{logs}"
    );
    for line in logs
        .lines()
        .filter(|l| l.contains("tower_oidc_auth") && !l.contains("tower_oidc_auth::testing"))
    {
        for secret in &secrets {
            let probe = &secret[secret.len().saturating_sub(40)..];
            assert!(
                probe.len() < 16 || !line.contains(probe),
                "a log line carries a secret ({probe}...): {line}"
            );
        }
    }
}

// ---- 4. Environment loading and validate() ---------------------------------------------------

/// The variables `from_env` reads: removed from a child's environment before it gets ours.
const ENV_VARS: &[&str] = &[
    "SCALEKIT_ENVIRONMENT_URL",
    "SCALEKIT_CLIENT_ID",
    "SCALEKIT_CLIENT_SECRET",
    "SCALEKIT_WEBHOOK_SECRET",
    "SCALEKIT_API_AUDIENCE",
    "OIDC_ISSUER",
    "OIDC_CLIENT_ID",
    "OIDC_CLIENT_SECRET",
    "AUTH_REDIRECT_URL",
    "AUTH_COOKIE_KEY",
    "AUTH_SESSION_MAX_AGE",
    "AUTH_SESSION_IDLE_TIMEOUT",
];

const CHILD_MARK: &str = "TOWER_OIDC_ATTACK_ENV_CHILD";

/// Run in a child process only (the parent sets [`CHILD_MARK`]): reads the configuration from
/// its own environment and prints what `from_env` and `validate()` made of it.
#[test]
fn env_child() {
    if std::env::var_os(CHILD_MARK).is_none() {
        return;
    }
    match AuthLayerBuilder::from_env() {
        Err(e) => println!("ENV-RESULT err {e}"),
        Ok(b) => {
            let debug = format!("{b:?}");
            match b.validate() {
                Ok(_) => println!("ENV-RESULT ok {debug}"),
                Err(e) => println!("ENV-RESULT err {e}"),
            }
        }
    }
}

/// `from_env` and `validate()` in a child process with exactly `vars` set (besides the
/// process's unrelated variables): `Ok(builder Debug)` or `Err(error)`.
fn from_env_in_child(vars: &[(&str, &str)]) -> Result<String, String> {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "attack_restructure::env_child",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ]);
    for v in ENV_VARS {
        cmd.env_remove(v);
    }
    cmd.env(CHILD_MARK, "1");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("ENV-RESULT ").map(|(_, r)| r))
        .unwrap_or_else(|| {
            panic!(
                "child printed no result: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    match line.split_once(' ') {
        Some(("ok", rest)) => Ok(rest.to_owned()),
        Some(("err", rest)) => Err(rest.to_owned()),
        _ => panic!("unexpected child output {line}"),
    }
}

fn good_key() -> String {
    STANDARD.encode(tower_oidc_auth::testing::cookie_key(9))
}

/// A complete, valid OIDC environment, with `extra` added or overriding.
fn oidc_env<'a>(key: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut vars = vec![
        ("OIDC_ISSUER", "https://id.example.com"),
        ("OIDC_CLIENT_ID", "app"),
        ("OIDC_CLIENT_SECRET", "shh-secret-value"),
        ("AUTH_REDIRECT_URL", "https://app.example.com/auth/callback"),
        ("AUTH_COOKIE_KEY", key),
    ];
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push((k, v));
    }
    vars
}

/// The child process machinery works: a valid environment is accepted.
#[test]
fn env_baseline_is_accepted() {
    let key = good_key();
    let ok = from_env_in_child(&oidc_env(&key, &[]));
    assert!(ok.is_ok(), "{ok:?}");
}

/// Threat: an ambiguous environment (both a Scalekit environment and a generic issuer, as left
/// behind by a migration) silently picks one provider; the operator believes the other is in
/// use. Fails if `from_env` accepts the environment instead of refusing it with an error that
/// names both.
#[test]
fn env_both_scalekit_and_oidc_is_refused() {
    let key = good_key();
    let vars = oidc_env(
        &key,
        &[
            ("SCALEKIT_ENVIRONMENT_URL", "https://acme.scalekit.dev"),
            ("SCALEKIT_CLIENT_ID", "skc_1"),
            ("SCALEKIT_CLIENT_SECRET", "sk-secret-value"),
        ],
    );
    match from_env_in_child(&vars) {
        Ok(debug) => panic!("both providers set, accepted as {debug}"),
        Err(e) => assert!(
            e.contains("SCALEKIT") && e.contains("OIDC"),
            "the error should name both: {e}"
        ),
    }
}

/// Threat: a variable set but blank (`SCALEKIT_ENVIRONMENT_URL=` beside a generic issuer) is
/// taken as unset, and the other provider chosen silently. Fails if accepted.
#[test]
fn env_blank_scalekit_url_beside_oidc_is_refused() {
    let key = good_key();
    let vars = oidc_env(&key, &[("SCALEKIT_ENVIRONMENT_URL", "  ")]);
    let result = from_env_in_child(&vars);
    assert!(
        result.is_err(),
        "blank SCALEKIT_ENVIRONMENT_URL: {result:?}"
    );
}

/// Threat: a security setting set but blank (`AUTH_SESSION_IDLE_TIMEOUT=` from a template, a
/// secret manager that returned nothing) silently turns the idle timeout off, or leaves the
/// default lifetime: a weaker configuration than the operator wrote. Fails if accepted.
#[test]
fn env_blank_session_lifetime_is_refused() {
    let key = good_key();
    for var in ["AUTH_SESSION_IDLE_TIMEOUT", "AUTH_SESSION_MAX_AGE"] {
        for blank in ["", "   ", "\n"] {
            let vars = oidc_env(&key, &[(var, blank)]);
            let result = from_env_in_child(&vars);
            assert!(result.is_err(), "{var}={blank:?} accepted: {result:?}");
        }
    }
}

/// Threat: `SCALEKIT_WEBHOOK_SECRET` set but blank silently disables the webhook route, so the
/// provider's `user.logout` events end no session. Fails if accepted.
#[test]
fn env_blank_webhook_secret_is_refused() {
    let key = good_key();
    let vars = oidc_env(&key, &[("SCALEKIT_WEBHOOK_SECRET", "  ")]);
    let result = from_env_in_child(&vars);
    assert!(result.is_err(), "blank SCALEKIT_WEBHOOK_SECRET: {result:?}");
}

/// Threat: credentials with surrounding whitespace (a trailing newline from `$(cat file)` or a
/// Kubernetes secret) are kept as they are: the client id then names another client, and every
/// sign-in fails far from the cause. Fails if a padded client id is accepted unchanged (refusing
/// it, or trimming it, both pass).
#[test]
fn env_padded_client_id_is_refused_or_trimmed() {
    let key = good_key();
    for padded in [" app", "app\n", "app "] {
        let vars = oidc_env(&key, &[("OIDC_CLIENT_ID", padded)]);
        if let Ok(debug) = from_env_in_child(&vars) {
            assert!(
                debug.contains("client_id: Some(\"app\")"),
                "OIDC_CLIENT_ID={padded:?} kept as is: {debug}"
            );
        }
    }
}

/// Guard: short, non-base64 or partly broken cookie keys, and malformed webhook secrets, are
/// refused with an error naming the variable. Fails if any is accepted.
#[test]
fn env_bad_keys_and_secrets_are_refused() {
    let short = STANDARD.encode([1u8; 32]);
    let good = good_key();
    let two_then_empty = format!("{good},");
    let good_then_short = format!("{good},{short}");
    for (var, value, name) in [
        ("AUTH_COOKIE_KEY", short.as_str(), "AUTH_COOKIE_KEY"),
        ("AUTH_COOKIE_KEY", "not base64 at all!!", "AUTH_COOKIE_KEY"),
        (
            "AUTH_COOKIE_KEY",
            two_then_empty.as_str(),
            "AUTH_COOKIE_KEY",
        ),
        (
            "AUTH_COOKIE_KEY",
            good_then_short.as_str(),
            "AUTH_COOKIE_KEY",
        ),
        ("AUTH_COOKIE_KEY", "   ", "AUTH_COOKIE_KEY"),
        (
            "SCALEKIT_WEBHOOK_SECRET",
            "whsec_!!",
            "SCALEKIT_WEBHOOK_SECRET",
        ),
        (
            "SCALEKIT_WEBHOOK_SECRET",
            "whsec_AAAA",
            "SCALEKIT_WEBHOOK_SECRET",
        ),
        (
            "SCALEKIT_WEBHOOK_SECRET",
            "plain",
            "SCALEKIT_WEBHOOK_SECRET",
        ),
        (
            "AUTH_SESSION_IDLE_TIMEOUT",
            "0s",
            "AUTH_SESSION_IDLE_TIMEOUT",
        ),
        ("AUTH_SESSION_MAX_AGE", "1.5h", "AUTH_SESSION_MAX_AGE"),
    ] {
        let vars = oidc_env(&good, &[(var, value)]);
        match from_env_in_child(&vars) {
            Ok(debug) => panic!("{var}={value:?} accepted: {debug}"),
            Err(e) => assert!(e.contains(name), "{var}={value:?}: {e}"),
        }
    }
}

/// Threat: `validate()` (now public, "every setting checked without I/O") accepts blank
/// credentials: a client id or secret of only whitespace. Fails if `validate()` accepts either.
#[test]
fn validate_refuses_blank_credentials() {
    let good = || {
        AuthLayerBuilder::new()
            .provider(tower_oidc_auth::Provider::discover("https://idp.invalid"))
            .client_id("app")
            .client_secret("shh")
            .redirect_url("https://app.example.com/auth/callback")
            .cookie_key(tower_oidc_auth::testing::cookie_key(5))
    };
    assert!(good().validate().is_ok());
    assert!(
        good().client_id("   ").validate().is_err(),
        "a blank client id passes validate()"
    );
    assert!(
        good().client_secret(" \t\n").validate().is_err(),
        "a blank client secret passes validate()"
    );
}

// ---- 5. Algorithms ---------------------------------------------------------------------------

fn hs256(secret: &[u8], header: &serde_json::Value, claims: &serde_json::Value) -> String {
    use hmac::{Hmac, Mac};
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// Threat: HMAC or `alg: none` accepted after `Algorithm` became the crate's own enum: the
/// provider's JWKS (or a proxy in front of it) publishes a symmetric `oct` key, whose secret is
/// then public, and tokens are HS256-signed with it, or HS256-signed with the RSA key's public
/// modulus (algorithm confusion), or unsigned; as bearer tokens and inside a session cookie.
/// Fails if any is accepted.
#[tokio::test]
async fn hmac_and_none_tokens_never_verify() {
    let (s, calls) = hooked_setup(|b| b.algorithms([Algorithm::RS256, Algorithm::ES256])).await;
    let secret = b"a-shared-secret-that-is-now-public!!";
    let mut doc = s.provider.jwks_document();
    doc["keys"].as_array_mut().unwrap().push(json!({
        "kty": "oct", "kid": "hs", "alg": "HS256", "use": "sig",
        "k": URL_SAFE_NO_PAD.encode(secret),
    }));
    let rsa = doc["keys"][0].clone();
    s.provider.set_jwks_document(Some(doc));
    s.clock.advance(Duration::from_secs(3600));
    let now = s.clock.now();
    let claims = json!({
        "sub": "usr_evil", "iss": s.provider.issuer(), "aud": s.provider.client_id(),
        "exp": now + 600, "iat": now, "roles": ["auditor"],
    });
    let kid = s.provider.current_kid();
    let n = URL_SAFE_NO_PAD
        .decode(rsa["n"].as_str().unwrap())
        .unwrap_or_default();
    let none_token = |alg: &str, kid: &str| {
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": kid, "typ": "JWT"}).to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    };
    let tokens = [
        (
            "HS256 with the oct key",
            hs256(
                secret,
                &json!({"alg": "HS256", "kid": "hs", "typ": "JWT"}),
                &claims,
            ),
        ),
        (
            "HS256 with the RSA modulus",
            hs256(
                &n,
                &json!({"alg": "HS256", "kid": kid, "typ": "JWT"}),
                &claims,
            ),
        ),
        (
            "HS256 with the RSA JWK text",
            hs256(
                rsa.to_string().as_bytes(),
                &json!({"alg": "HS256", "kid": kid, "typ": "JWT"}),
                &claims,
            ),
        ),
        ("none", none_token("none", &kid)),
        ("None", none_token("None", &kid)),
        ("NONE, oct kid", none_token("NONE", "hs")),
    ];
    for (what, token) in &tokens {
        for uri in ["/", "/me", "/admin"] {
            let resp = serve(&s.app, bearer(uri, token)).await;
            assert_eq!(
                resp.status(),
                StatusCode::UNAUTHORIZED,
                "bearer {what} {uri}"
            );
        }
        let id = s.provider.id_token(&TestUser::new("usr_evil"), None);
        let cookie = s
            .provider
            .session_cookie_with_tokens(&s.auth, token, None, &id);
        let body = body_string(call(&s.app, "/", &cookie).await).await;
        assert_eq!(body, "anonymous", "session with {what}");
    }
    // Only `/` with no claims ran the app; nothing with claims did.
    assert_eq!(calls.load(Ordering::SeqCst), tokens.len());
}

/// Threat: a token signed with an algorithm the app did not configure is accepted because the
/// key allows it (an RSA key verifies RS256 and PS256 alike). Fails if a layer configured for
/// ES256 only accepts the provider's RS256 tokens.
#[tokio::test]
async fn algorithms_outside_the_configured_list_are_refused() {
    let clock = tower_oidc_auth::clock::ManualClock::starting_now();
    let provider = tower_oidc_auth::testing::TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    let build = provider
        .layer_builder(REDIRECT)
        .algorithms([Algorithm::ES256])
        .build()
        .await;
    // Refused at build (no usable key) or per token: either way no RS256 token passes.
    if let Ok(auth) = build {
        let app = hooked_app(&auth, Arc::new(AtomicUsize::new(0)));
        let token = provider.access_token(&user());
        assert_eq!(
            serve(&app, bearer("/me", &token)).await.status(),
            StatusCode::UNAUTHORIZED
        );
        let cookie = provider.session_cookie(&auth, &user());
        assert_eq!(status(&app, &cookie).await, StatusCode::UNAUTHORIZED);
    }
}
