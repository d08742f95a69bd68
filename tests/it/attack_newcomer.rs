//! Attacks on the changes of issue 16 (the newcomer's first hour): the loopback alias of the
//! login route, the stale-callback redirect, provider error details on error pages, the test
//! provider's Cancel, the cookie-key check, the test provider's key file, and sign-in logs.
//!
//! Each test fails if its attack succeeds; a passing test is a guard.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use http::{header, Request, StatusCode};
use tower::ServiceExt;
use tower_oidc_auth::testing::{TestProvider, TestUser};

use crate::helpers::*;

const ORIGIN: &str = "http://127.0.0.1:3000";

fn login_with_host(uri: &str, host: Option<&str>) -> Request<Body> {
    let mut b = Request::get(uri).header(header::ACCEPT, "text/html");
    if let Some(h) = host {
        b = b.header(header::HOST, h);
    }
    b.body(Body::empty()).unwrap()
}

/// Where a login answer sends the browser: our own login route (the loopback move) or the
/// provider; anything else is an open redirect.
fn assert_safe_login_redirect(s: &Setup, resp: &http::Response<Body>, what: &str) {
    if resp.status() != StatusCode::FOUND {
        return;
    }
    let loc = location(resp);
    assert!(
        loc.starts_with(&format!("{ORIGIN}/auth/login")) || loc.starts_with(s.provider.issuer()),
        "{what}: login redirected off the app and provider: {loc}"
    );
    assert_eq!(
        resp.headers().get_all(header::LOCATION).iter().count(),
        1,
        "{what}: one Location"
    );
    if loc.starts_with(ORIGIN) {
        let u = url::Url::parse(&loc).unwrap();
        assert_eq!(u.origin().ascii_serialization(), ORIGIN, "{what}: {loc}");
        assert_eq!(
            u.path(),
            "/auth/login",
            "{what}: moved to another path: {loc}"
        );
        // No cookie at all on the host being left: no transaction, no session, no marker.
        assert!(
            set_cookies(resp).is_empty(),
            "{what}: a cookie set before the move"
        );
    }
}

/// Threat: open redirect through the loopback alias. Odd `Host` forms (userinfo, a path, numeric
/// and hex IPv4, IPv4-mapped IPv6, trailing dots, suffix tricks such as `localhost.evil.example`
/// and `127.0.0.1.nip.io`) and odd request targets (`//evil`, `return_to` to another site, an
/// encoded CRLF) must never send the browser anywhere but the app's own login route on the
/// redirect URL's origin, or the provider.
#[tokio::test]
async fn loopback_alias_never_redirects_off_the_apps_origin() {
    let s = setup().await;
    let hosts = [
        "localhost:3000",
        "localhost",
        "127.1:3000",
        "0x7f.1:3000",
        "0x7f000001:3000",
        "2130706433:3000",
        "127.255.255.254:3000",
        "[::1]",
        "[::ffff:127.0.0.1]:3000",
        "[0:0:0:0:0:0:0:1]:3000",
        "evil.example@localhost:3000",
        "localhost:3000@evil.example",
        "localhost:3000/evil.example",
        "localhost.:3000",
        "localhost.evil.example:3000",
        "127.0.0.1.nip.io:3000",
        "evil.localhost:3000",
        "localhost:99999",
        "localhost:-1",
        "",
        "%6cocalhost:3000",
    ];
    let targets = [
        "/auth/login",
        "/auth/login?return_to=%2F%2Fevil.example",
        "/auth/login?return_to=https://evil.example/",
        "/auth/login?x=%0d%0aSet-Cookie:%20a=b",
        "/auth/login?@evil.example",
    ];
    for host in hosts {
        for target in targets {
            let resp = s
                .app
                .clone()
                .oneshot(login_with_host(target, Some(host)))
                .await
                .unwrap();
            let what = format!("Host {host:?} {target}");
            assert_safe_login_redirect(&s, &resp, &what);
            if resp.status() == StatusCode::FOUND {
                let loc = location(&resp);
                assert!(
                    !loc.contains('\r') && !loc.contains('\n'),
                    "{what}: {loc:?}"
                );
                if loc.starts_with(ORIGIN) {
                    // The same target, byte for byte, on our origin, then only the move's
                    // sign (which stops a proxy that rewrites `Host` from looping).
                    let rest = loc
                        .strip_prefix(&format!("{ORIGIN}{target}"))
                        .unwrap_or_else(|| panic!("{what}: target changed: {loc}"));
                    let sign = rest
                        .strip_prefix(if target.contains('?') { "&" } else { "?" })
                        .and_then(|r| r.strip_prefix("login_moved="))
                        .unwrap_or_else(|| panic!("{what}: {loc}"));
                    assert!(
                        sign.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"%-_.".contains(&b)),
                        "{what}: {loc}"
                    );
                }
            }
        }
    }
}

/// Threat: a host that only looks like loopback (`localhost.evil.example`, `127.0.0.1.nip.io`)
/// treated as a loopback alias. (`localhost.` is loopback, and moved: browsers reach this
/// machine by it.) (`*.localhost` is loopback: browsers
/// resolve it here.) Such a login is
/// started at once on the host asked for, never "moved".
#[tokio::test]
async fn lookalike_hosts_are_not_loopback_aliases() {
    let s = setup().await;
    for host in [
        "localhost.evil.example:3000",
        "127.0.0.1.nip.io:3000",
        "127.0.0.1.:3000",
        "evil.example:3000",
        "[::ffff:7f00:1]:3000",
    ] {
        let resp = s
            .app
            .clone()
            .oneshot(login_with_host("/auth/login", Some(host)))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FOUND, "{host}");
        let loc = location(&resp);
        assert!(
            loc.starts_with(s.provider.issuer()),
            "{host}: treated as a loopback alias: {loc}"
        );
    }
}

/// Threat: HTTP/2 `:authority` (the request URI's authority) disagreeing with `Host`, or an
/// absolute-form request target naming another site: the move (if any) still goes to the
/// redirect URL's origin and the request's own path, never to the authority named.
#[tokio::test]
async fn authority_and_host_disagreeing_never_redirect_elsewhere() {
    let s = setup().await;
    let cases: [(&str, Option<&str>); 6] = [
        ("http://evil.example/auth/login", Some("localhost:3000")),
        ("http://evil.example/auth/login", Some("127.0.0.1:3000")),
        ("http://evil.example/auth/login", None),
        ("http://localhost:3000/auth/login", None),
        ("http://localhost:3000/auth/login", Some("127.0.0.1:3000")),
        ("http://127.0.0.1:3000/auth/login", Some("localhost:3000")),
    ];
    for (uri, host) in cases {
        let resp = s
            .app
            .clone()
            .oneshot(login_with_host(uri, host))
            .await
            .unwrap();
        assert_safe_login_redirect(&s, &resp, &format!("{uri} Host {host:?}"));
    }
    // Host is the one the browser addressed: it wins over a disagreeing authority.
    let resp = s
        .app
        .clone()
        .oneshot(login_with_host(
            "http://localhost:3000/auth/login",
            Some("127.0.0.1:3000"),
        ))
        .await
        .unwrap();
    assert!(location(&resp).starts_with(s.provider.issuer()));
}

/// Threat: a redirect loop. A loopback dev proxy (Vite's `server.proxy` with `changeOrigin`,
/// webpack-dev-server, a local Caddy with `header_up Host`) serves the app on
/// `http://localhost:5173`, the registered redirect URL, and forwards to the app on
/// `127.0.0.1:3000` with `Host: 127.0.0.1:3000` (saying where the browser was in
/// `X-Forwarded-Host` / `Forwarded`). Every login through the proxy is "moved" to
/// `localhost:5173`, which the proxy forwards with the same `Host` again: the browser loops until
/// it gives up, and nobody can sign in. A browser following the login must reach the provider
/// within a few hops.
#[tokio::test]
async fn a_login_through_a_loopback_proxy_does_not_loop() {
    let clock = tower_oidc_auth::ManualClock::starting_now();
    let provider = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    let auth = provider
        .layer_builder("http://localhost:5173/auth/callback")
        .build()
        .await
        .expect("build");
    let app = app(&auth);
    let through_proxy = |uri: &str| {
        Request::get(uri)
            .header(header::HOST, "127.0.0.1:3000")
            .header("x-forwarded-host", "localhost:5173")
            .header("x-forwarded-proto", "http")
            .header(header::FORWARDED, "host=\"localhost:5173\";proto=http")
            .header(header::ACCEPT, "text/html")
            .header("sec-fetch-site", "same-origin")
            .body(Body::empty())
            .unwrap()
    };
    let mut uri = "/auth/login?return_to=%2Fme".to_owned();
    let mut hops = Vec::new();
    for _ in 0..5 {
        let resp = app.clone().oneshot(through_proxy(&uri)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::FOUND);
        let loc = location(&resp);
        hops.push(loc.clone());
        if loc.starts_with(provider.issuer()) {
            return;
        }
        let u = url::Url::parse(&loc).unwrap();
        assert_eq!(
            u.origin().ascii_serialization(),
            "http://localhost:5173",
            "moved off the proxy: {loc}"
        );
        uri = format!("{}?{}", u.path(), u.query().unwrap_or(""));
    }
    panic!("login through a loopback proxy loops: {hops:?}");
}

/// Threat: login CSRF through the stale-callback redirect. An attacker completes a sign-in as
/// himself up to the callback and sends that callback URL (his code, his state) to a signed-in
/// victim. The layer must not call the token endpoint, must not touch the victim's session, and
/// may only send the victim to the app's own default return.
#[tokio::test]
async fn an_attackers_callback_sent_to_a_signed_in_victim_changes_nothing() {
    let s = setup().await;
    let (mut victim, _) = signed_in(&s).await;
    let before = victim.header_for("/");

    // The attacker's own login, in his own browser, as another user.
    s.provider
        .set_user(Some(TestUser::new("usr_attacker").email("eve@example.com")));
    let mut attacker = Jar::default();
    let start = send(&s.app, &mut attacker, get_html("/auth/login")).await;
    let callback = authorize(&location(&start)).await;
    let token_requests = s.provider.counts().token_requests;

    let resp = send(&s.app, &mut victim, get_html(&callback)).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(location(&resp), "/", "only the app's default return");
    assert!(
        resp.headers().get(header::SET_COOKIE).is_none(),
        "no cookie changes for a browser without that attempt: {:?}",
        resp.headers().get_all(header::SET_COOKIE)
    );
    assert_eq!(
        s.provider.counts().token_requests,
        token_requests,
        "the token endpoint was called"
    );
    assert_eq!(
        victim.header_for("/"),
        before,
        "the victim's cookies changed"
    );
    let who = body_string(send(&s.app, &mut victim, get_json("/extract")).await).await;
    assert_eq!(who, "usr_42", "the victim's session was replaced");

    // The attacker's code was not spent: his own browser still completes (it was never used).
    let mine = send(&s.app, &mut attacker, get_html(&callback)).await;
    assert_eq!(mine.status(), StatusCode::FOUND);
    let who = body_string(send(&s.app, &mut attacker, get_json("/extract")).await).await;
    assert_eq!(who, "usr_attacker");
}

/// Threat: a stale callback used to destroy a pending sign-in of the victim (another tab's
/// account switch), or to land on the pending attempt's `return_to`. A signed-in victim with a
/// login of their own in progress receives a forged callback: the pending attempt survives and
/// completes afterwards.
#[tokio::test]
async fn a_forged_stale_callback_leaves_a_pending_login_intact() {
    let s = setup().await;
    let (mut victim, _) = signed_in(&s).await;
    let start = send(
        &s.app,
        &mut victim,
        get_html("/auth/login?return_to=%2Fsettings"),
    )
    .await;
    let callback = authorize(&location(&start)).await;
    for forged in [
        "/auth/callback?code=x&state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "/auth/callback?code=x",
        "/auth/callback?code=x&state=%F0%9F%98%80%F0%9F%98%80%F0%9F%98%80%F0%9F%98%80%F0%9F%98%80",
        "/auth/callback?state=%FF%FE&code=%00",
    ] {
        let resp = send(&s.app, &mut victim, get_html(forged)).await;
        assert!(
            resp.status() == StatusCode::FOUND || resp.status().is_client_error(),
            "{forged}: {}",
            resp.status()
        );
        if resp.status() == StatusCode::FOUND {
            assert_eq!(location(&resp), "/", "{forged}");
        }
    }
    let done = send(&s.app, &mut victim, get_html(&callback)).await;
    assert_eq!(done.status(), StatusCode::FOUND);
    assert_eq!(location(&done), "/settings", "the pending sign-in was lost");
}

/// Threat: an expired attempt from a signed-in browser exchanging its code anyway, or landing on
/// the attempt's own `return_to` rather than the default.
#[tokio::test]
async fn an_expired_attempt_while_signed_in_does_not_exchange() {
    let s = setup().await;
    let (mut jar, _) = signed_in(&s).await;
    let start = send(
        &s.app,
        &mut jar,
        get_html("/auth/login?return_to=%2Fsettings"),
    )
    .await;
    let callback = authorize(&location(&start)).await;
    s.clock.advance(Duration::from_secs(3600));
    // Keep the session alive past the advance (a refresh is fine), then replay the old attempt.
    let _ = send(&s.app, &mut jar, get_json("/me")).await;
    let token_requests = s.provider.counts().token_requests;
    let resp = send(&s.app, &mut jar, get_html(&callback)).await;
    if resp.status() == StatusCode::FOUND {
        assert_eq!(location(&resp), "/");
    }
    assert_eq!(
        s.provider.counts().token_requests,
        token_requests,
        "an expired attempt reached the token endpoint"
    );
}

/// Threat: cross-site probing of "is this browser signed in" through the stale-callback redirect
/// (302 vs 400) with an `<img>` or `<script>` pointing at the callback. Browsers send the
/// session cookies on such requests only when they are `SameSite=None`: every cookie the layer
/// sets at sign-in is `SameSite=Lax` (or `Strict`) and `HttpOnly`.
#[tokio::test]
async fn session_cookies_are_not_sent_cross_site_subresource() {
    let s = setup().await;
    let (jar, _) = signed_in(&s).await;
    assert!(!jar.cookies.is_empty());
    for c in &jar.cookies {
        let attrs = c.attrs();
        assert!(
            matches!(
                attrs.same_site(),
                Some(cookie::SameSite::Lax | cookie::SameSite::Strict)
            ),
            "{}: {:?}",
            c.name,
            attrs.same_site()
        );
        assert_eq!(attrs.http_only(), Some(true), "{}", c.name);
    }
}

const XSS: &[&str] = &[
    "<script>alert(1)</script>",
    "\"><svg onload=alert(1)>",
    "'><img src=x onerror=alert(1)>",
    "</title><script>alert(1)</script>",
    "</style><script>alert(1)</script>",
    "</code><iframe src=javascript:alert(1)>",
];

fn assert_no_markup(body: &str, what: &str) {
    for payload in XSS {
        assert!(
            !body.contains(payload),
            "{what}: {payload} reflected: {body}"
        );
    }
    for needle in ["<script", "<svg", "<img", "<iframe"] {
        // The layer's own markup has none of these.
        assert!(!body.contains(needle), "{what}: {needle} reflected: {body}");
    }
    assert_eq!(
        body.matches("<title>").count(),
        1,
        "{what}: a second <title>: {body}"
    );
    assert_eq!(body.matches("</style>").count(), 1, "{what}: {body}");
}

/// Threat: XSS through any reflected parameter of the callback and login error pages (`error`,
/// `error_description`, `state`, `iss`, `code`, others) in element content, attributes,
/// `<title>` or the `<style>` block, with and without a pending attempt.
#[tokio::test]
async fn provider_error_parameters_are_never_markup() {
    let s = setup().await;
    for payload in XSS {
        let p = urlencode(payload);
        for uri in [
            format!("/auth/callback?error={p}&error_description={p}&state={p}&iss={p}"),
            format!("/auth/callback?error=access_denied&error_description={p}&state={p}"),
            format!("/auth/callback?error={p}"),
            format!("/auth/callback?code={p}&state={p}&iss={p}&{p}={p}"),
            format!("/auth/login?error={p}&error_description={p}"),
            format!("/auth/login?error=access_denied&error_description={p}&return_to={p}"),
        ] {
            let resp = serve(&s.app, get_html(&uri)).await;
            let ctype = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let body = body_string(resp).await;
            if ctype.starts_with("text/html") {
                assert_no_markup(&body, &uri);
            }
        }
        // With a pending attempt (the state matches): the page is the same.
        let mut jar = Jar::default();
        let start = send(&s.app, &mut jar, get_html("/auth/login")).await;
        let q = query_of(&location(&start));
        let state = &values(&q, "state")[0];
        let uri = format!("/auth/callback?error={p}&error_description={p}&state={state}");
        let body = body_string(send(&s.app, &mut jar, get_html(&uri)).await).await;
        assert_no_markup(&body, &uri);
    }
}

/// Threat: the 300-character cap bypassed with multibyte or combining characters, or a panic on
/// a cut inside a character, on invalid UTF-8 or on broken percent-encoding.
#[tokio::test]
async fn the_description_cap_holds_for_any_characters() {
    let s = setup().await;
    let wide = "\u{1d54f}".repeat(2000); // 4 bytes each
    let combining = "a\u{0301}\u{0301}\u{0301}".repeat(500);
    let amp = "&".repeat(2000);
    for (name, d) in [("wide", &wide), ("combining", &combining), ("amp", &amp)] {
        let uri = format!(
            "/auth/callback?error=access_denied&error_description={}",
            urlencode(d)
        );
        let resp = serve(&s.app, get_html(&uri)).await;
        let body = body_string(resp).await;
        let chars = body.chars().filter(|c| !c.is_ascii()).count();
        // The page's own non-ASCII: quotes, the ellipsis, a few more.
        assert!(
            chars <= 300 + 16,
            "{name}: {chars} non-ASCII characters shown"
        );
        assert!(body.len() < 12_000, "{name}: page of {} bytes", body.len());
    }
    for uri in [
        "/auth/callback?error=%FF%FE&error_description=%C3",
        "/auth/callback?error=x&error_description=%",
        "/auth/callback?error=x&error_description=%zz%",
        "/auth/callback?error=%00&error_description=%00%0d%0a",
        "/auth/login?error=%FF&error_description=%F0%9F%98",
        "/auth/login?error=x&error_description=%E2%80%AE%E2%80%8B",
    ] {
        let resp = serve(&s.app, get_html(uri)).await;
        assert!(resp.status().is_client_error(), "{uri}: {}", resp.status());
    }
}

/// Threat: content injection (text spoofing) on the app's own origin. Anyone can link a victim
/// to `https://app/auth/callback?error=access_denied&error_description=<any text>`; the page
/// shows that text under the app's name as what "the identity provider said", e.g. a fake
/// support number. An authorization response that answers no login attempt of this browser
/// (no transaction cookie for its `state`) did not come from the provider for this user; its
/// description must not be shown.
#[tokio::test]
async fn a_forged_error_description_is_not_shown_without_a_login_attempt() {
    let s = setup().await;
    let lure = "Your account is locked. Call support at +1 555 0100 now";
    let uri = format!(
        "/auth/callback?error=access_denied&error_description={}&state=forged-state-0123456789",
        urlencode(lure)
    );
    let body = body_string(serve(&s.app, get_html(&uri)).await).await;
    assert!(
        !body.contains("+1 555 0100"),
        "attacker text shown on the app's origin: {body}"
    );
}

/// Threat: the same content injection through the login route, which its own code documents as
/// "Its words are logged, never shown: anyone can put any text in a link to this route"
/// (`src/routes/login.rs`).
#[tokio::test]
async fn the_login_route_never_shows_the_error_description() {
    let s = setup().await;
    let lure = "Your account is locked. Call support at +1 555 0100 now";
    let uri = format!(
        "/auth/login?error=access_denied&error_description={}",
        urlencode(lure)
    );
    let body = body_string(serve(&s.app, get_html(&uri)).await).await;
    assert!(
        !body.contains("+1 555 0100"),
        "attacker text shown on the app's origin: {body}"
    );
}

fn form_body(form: &[(&'static str, String)]) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in form {
        ser.append_pair(k, v);
    }
    ser.finish()
}

fn form_params(redirect_uri: &str, client_id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("client_id", client_id.to_owned()),
        ("redirect_uri", redirect_uri.to_owned()),
        ("response_type", "code".to_owned()),
        (
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned(),
        ),
        ("code_challenge_method", "S256".to_owned()),
        ("state", "s1".to_owned()),
    ]
}

/// Threat: an open redirect in the test provider. Its Cancel button (and its login form) send
/// the browser to whatever `redirect_uri` the request names; a link or a form on any site to the
/// provider (a demo's, on a known port) redirects to another site with the provider's
/// authority. Only a redirect URI the app registered (here: none but the layer's callback; the
/// provider has no registration, so at least one on the provider's own host or loopback) may
/// receive the browser.
#[tokio::test]
async fn the_test_providers_cancel_is_not_an_open_redirect() {
    let provider = TestProvider::builder().start().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // A name someone can own: the reserved names (`.example`, `.test`, RFC 2606) stay allowed
    // for tests of https deployments, since nobody can serve them.
    let mut form = form_params("https://evil.com/steal", provider.client_id());
    form.push(("cancel", "1".to_owned()));
    let resp = client
        .post(format!("{}/oauth/authorize", provider.issuer()))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form_body(&form))
        .send()
        .await
        .unwrap();
    let loc = resp
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(
        !loc.starts_with("https://evil.com"),
        "the test provider redirects anywhere: {} {loc}",
        resp.status()
    );
}

/// Threat: reflected XSS in the test provider's login form (its hidden fields carry every
/// request parameter) and in the Cancel redirect.
#[tokio::test]
async fn the_test_providers_login_form_escapes_what_it_reflects() {
    let provider = TestProvider::builder().start().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for payload in XSS {
        let mut url = url::Url::parse(&format!("{}/oauth/authorize", provider.issuer())).unwrap();
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in form_params(REDIRECT, provider.client_id()) {
                q.append_pair(k, if k == "state" { payload } else { &v });
            }
            q.append_pair(payload, payload);
        }
        let resp = client.get(url).send().await.unwrap();
        let body = resp.text().await.unwrap();
        for needle in ["<script", "<svg", "<img", "<iframe", *payload] {
            assert!(!body.contains(needle), "{payload}: {needle}: {body}");
        }
        let mut form = form_params(REDIRECT, provider.client_id());
        form.retain(|(k, _)| *k != "state");
        form.push(("state", (*payload).to_owned()));
        form.push(("cancel", "1".to_owned()));
        let resp = client
            .post(format!("{}/oauth/authorize", provider.issuer()))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form_body(&form))
            .send()
            .await
            .unwrap();
        let loc = resp.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(loc.starts_with(REDIRECT), "{loc}");
        assert!(!loc.contains('<') && !loc.contains('"'), "{loc}");
    }
}

/// Threat: weak cookie keys slipping past the "fewer than 16 distinct byte values" check. A key
/// typed by hand (a sentence), a counting pattern, or a short hex string repeated has 16 or more
/// distinct bytes yet little entropy: anyone who guesses it opens and forges every session.
/// The check's own comment says it is there for "a key typed by hand".
#[tokio::test]
async fn hand_typed_cookie_keys_are_refused() {
    let provider = TestProvider::builder().start().await;
    let sentence = b"my very own cookie key for the app, typed by hand, long enough!!";
    let counting: Vec<u8> = (0u8..64).collect();
    let hex16: Vec<u8> = b"0123456789abcdef".repeat(4);
    let mut accepted = Vec::new();
    for (name, key) in [
        ("sentence", sentence.to_vec()),
        ("counting", counting),
        ("hex16x4", hex16),
    ] {
        assert_eq!(key.len(), 64, "{name}");
        let built = tower_oidc_auth::AuthLayer::builder()
            .provider(tower_oidc_auth::Provider::scalekit(provider.issuer()))
            .client_id(provider.client_id())
            .client_secret(provider.client_secret())
            .redirect_url(REDIRECT)
            .cookie_key(&key)
            .build()
            .await;
        if built.is_ok() {
            accepted.push(name);
        }
    }
    assert!(
        accepted.is_empty(),
        "weak cookie keys accepted: {accepted:?}"
    );
}

fn scratch(name: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("attack-newcomer-{}-{n}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Threat: the test provider's key file. A directory, a corrupted or empty file, or a dangling
/// symlink at the path must be an error (never a panic, never a fresh key written through the
/// link or over the file); a new file is owner-only; a restart reads the same key.
#[tokio::test]
async fn the_key_file_is_an_error_never_a_silent_new_key() {
    // A directory.
    let dir = scratch("dir");
    let r = TestProvider::builder().key_file(&dir).try_start().await;
    assert!(r.is_err(), "a directory as key file");

    // Corrupted and empty files are refused and left alone.
    for (name, content) in [
        ("garbage", b"not a key".to_vec()),
        ("empty", Vec::new()),
        ("truncated", vec![0x30, 0x82, 0x04]),
    ] {
        let dir = scratch(name);
        let path = dir.join("key.der");
        std::fs::write(&path, &content).unwrap();
        let r = TestProvider::builder().key_file(&path).try_start().await;
        assert!(r.is_err(), "{name}: accepted");
        assert_eq!(std::fs::read(&path).unwrap(), content, "{name}: rewritten");
    }

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // A dangling symlink: no key written through it.
        let dir = scratch("symlink");
        let target = dir.join("elsewhere.der");
        let link = dir.join("key.der");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let r = TestProvider::builder().key_file(&link).try_start().await;
        assert!(r.is_err(), "a dangling symlink was followed");
        assert!(!target.exists(), "a key was written through the symlink");

        // A fresh file: owner-only, and the same key after a restart.
        let dir = scratch("fresh");
        let path = dir.join("nested").join("key.der");
        let first = TestProvider::builder()
            .key_file(&path)
            .try_start()
            .await
            .expect("fresh key file");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "key file mode {mode:o}");
        let again = TestProvider::builder()
            .key_file(&path)
            .try_start()
            .await
            .expect("reload");
        assert_eq!(
            first.jwks_document()["keys"][0]["n"],
            again.jwks_document()["keys"][0]["n"],
            "a restart changed the key"
        );
    }
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Threat: secrets in the new INFO lines (`sub` on sign-in and sign-out, the stale-callback
/// line): no code, token, cookie value or client secret reaches the log through a sign-in, a
/// replayed callback, a cancelled sign-in or a logout; and a provider error cannot forge log
/// lines (a newline in `error_description` starts no new line).
#[tokio::test]
async fn sign_in_and_out_logs_carry_no_secrets_and_no_forged_lines() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let s = setup().await;
    let mut jar = Jar::default();
    let start = send(&s.app, &mut jar, get_html("/auth/login?return_to=%2Fme")).await;
    let callback = authorize(&location(&start)).await;
    assert_eq!(
        send(&s.app, &mut jar, get_html(&callback)).await.status(),
        StatusCode::FOUND
    );
    let mut cookie_values: Vec<String> = jar.cookies.iter().map(|c| c.value.clone()).collect();
    // Replayed while signed in (the new stale path), then a forged provider error.
    let _ = send(&s.app, &mut jar, get_html(&callback)).await;
    let forged = "x\n2026-01-01T00:00:00Z  INFO tower_oidc_auth: FORGED signed in sub=\"admin\"";
    for route in ["/auth/callback", "/auth/login"] {
        let uri = format!(
            "{route}?error=access_denied&error_description={}&state=s",
            urlencode(forged)
        );
        let _ = serve(&s.app, get_html(&uri)).await;
    }
    cookie_values.extend(jar.cookies.iter().map(|c| c.value.clone()));
    let _ = send(&s.app, &mut jar, logout_post()).await;

    let logs = capture.text();
    assert!(logs.contains("usr_42"), "the sub is logged: {logs}");
    let code = values(&query_of(&format!("http://x{callback}")), "code")[0].clone();
    let mut secrets = s.provider.issued_secrets();
    secrets.push(code);
    secrets.push(s.provider.client_secret().to_owned());
    secrets.extend(cookie_values.into_iter().filter(|v| v.len() > 16));
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret reached the log: {secret}\n{logs}"
        );
    }
    for line in logs.lines() {
        assert!(
            !line.starts_with("2026-01-01T00:00:00Z"),
            "a forged log line: {line}"
        );
    }
}
