//! Fourth attack on the issue-16 mends (3c71845): the loopback move's sealed sign
//! (`login_moved`), the cookie-key checks on the whole key and on each half, and the reading of
//! `AUTH_COOKIE_KEY` (wrapped base64, several keys separated by commas).
//!
//! Each test asserts the secure (or correct) behaviour: a failing test shows a defect, a passing
//! one is a guard. Failing on 3c71845: the move pushes a valid login over the query limits (32
//! parameters, 8 KiB); no move from `0.0.0.0`/`[::]` or `*.localhost`; repeated base64 phrases
//! and typed sentences pass the key checks; hex keys are read as base64 (and about 1 in 10 000
//! refused as "not random").

use axum::body::Body;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use http::{header, Request, Response, StatusCode};
use sha2::{Digest, Sha256};
use std::time::Duration;
use tower::ServiceExt;
use tower_oidc_auth::{AuthLayerBuilder, LoginOptions, Provider};

use crate::helpers::*;

const OURS: &str = "http://127.0.0.1:3000";
const MOVED: &str = "login_moved";

fn login_on(host: &str, uri: &str) -> http::request::Builder {
    Request::get(uri)
        .header(header::HOST, host)
        .header(header::ACCEPT, "text/html")
}

async fn get_on(s: &Setup, host: &str, uri: &str) -> Response<Body> {
    let req = login_on(host, uri).body(Body::empty()).unwrap();
    s.app.clone().oneshot(req).await.unwrap()
}

fn location_opt(resp: &Response<Body>) -> Option<String> {
    resp.headers()
        .get(header::LOCATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Is this answer the move to the redirect URL's origin (and not the start of a login)?
fn is_move(resp: &Response<Body>) -> bool {
    resp.status() == StatusCode::FOUND
        && location_opt(resp).is_some_and(|l| l.starts_with(&format!("{OURS}/auth/login?")))
}

/// Is this answer the start of a login at the provider?
fn starts(s: &Setup, resp: &Response<Body>) -> bool {
    resp.status() == StatusCode::FOUND
        && location_opt(resp).is_some_and(|l| l.starts_with(s.provider.issuer()))
}

/// The path and query of a move's `Location`.
fn moved_uri(resp: &Response<Body>) -> String {
    let loc = location(resp);
    loc.strip_prefix(OURS)
        .expect("a move to our origin")
        .to_owned()
}

/// The raw `login_moved=<sign>` part of a move's `Location`.
fn sign_part(resp: &Response<Body>) -> String {
    let uri = moved_uri(resp);
    let query = uri.split_once('?').map_or("", |(_, q)| q).to_owned();
    query
        .split('&')
        .find(|p| p.starts_with(&format!("{MOVED}=")))
        .expect("the move adds its sign")
        .to_owned()
}

fn describe(resp: &Response<Body>) -> String {
    format!("{} {:?}", resp.status(), location_opt(resp))
}

// ---- 1. The loopback move ----------------------------------------------------------------------

/// Threat (a login that cannot start): the move appends `&login_moved=<sign>` (about 125
/// characters, one more parameter) to the query, and the login route refuses a query of more
/// than 32 parameters or 8 KiB. A login link that starts at the redirect URL's origin (32
/// parameters: `return_to`, pass-through and the app's own tracking parameters, say) is pushed
/// over the limit by the move and answers 400 "Bad login request" on the other loopback name, and behind
/// a `Host`-rewriting proxy on every try.
#[tokio::test]
async fn a_login_with_32_parameters_still_starts_after_the_move() {
    let s = setup().await;
    let params: Vec<String> = (0..31).map(|i| format!("utm{i}=x")).collect();
    let uri = format!("/auth/login?return_to=%2Fme&{}", params.join("&"));
    // Where the redirect URL lives, this login starts.
    let direct = get_on(&s, "127.0.0.1:3000", &uri).await;
    assert!(starts(&s, &direct), "direct: {}", describe(&direct));
    // On `localhost` it is moved; the moved login must start too.
    let resp = get_on(&s, "localhost:3000", &uri).await;
    assert!(is_move(&resp), "{}", describe(&resp));
    let after = get_on(&s, "127.0.0.1:3000", &moved_uri(&resp)).await;
    assert!(
        starts(&s, &after),
        "moved login refused: {}",
        describe(&after)
    );
    // Behind a proxy that rewrites `Host`, the moved request comes back with the old name.
    let proxied = get_on(&s, "localhost:3000", &moved_uri(&resp)).await;
    assert!(
        starts(&s, &proxied),
        "proxied moved login refused: {}",
        describe(&proxied)
    );
}

/// The same with the 8 KiB query limit: a query a little under it starts where the redirect
/// URL lives, and is refused once the move has added its sign.
#[tokio::test]
async fn a_long_login_query_still_starts_after_the_move() {
    let s = setup().await;
    let pad = "a".repeat(8 * 1024 - 100);
    let uri = format!("/auth/login?return_to=%2Fme&pad={pad}");
    assert!(uri.split_once('?').unwrap().1.len() < 8 * 1024);
    let direct = get_on(&s, "127.0.0.1:3000", &uri).await;
    assert!(starts(&s, &direct), "direct: {}", describe(&direct));
    let resp = get_on(&s, "localhost:3000", &uri).await;
    assert!(is_move(&resp), "{}", describe(&resp));
    let after = get_on(&s, "127.0.0.1:3000", &moved_uri(&resp)).await;
    assert!(
        starts(&s, &after),
        "moved login refused: {}",
        describe(&after)
    );
}

/// Guard (a broken answer): `http` and `httparse` accept raw bytes above 0x7F in a request's
/// query (curl and other non-browser clients send them) and the move copies the query verbatim
/// into its `Location`: the answer still carries a `Location` (`http` 1.5 accepts obs-text in a
/// header value) and is a move, not a 302 without a target.
#[tokio::test]
async fn a_move_always_carries_a_location() {
    let s = setup().await;
    let uri = "/auth/login?return_to=%2Fme&login_hint=j\u{f6}rg%40example.com";
    http::Uri::try_from(uri).expect("http accepts raw UTF-8 in a query");
    let direct = get_on(&s, "127.0.0.1:3000", uri).await;
    assert!(starts(&s, &direct), "direct: {}", describe(&direct));
    let resp = get_on(&s, "localhost:3000", uri).await;
    assert!(
        resp.status() != StatusCode::FOUND || location_opt(&resp).is_some(),
        "a redirect without a Location: {}",
        describe(&resp)
    );
    assert!(
        is_move(&resp) || starts(&s, &resp),
        "neither moved nor started: {}",
        describe(&resp)
    );
}

/// Threat (no move where the browser needs one): dev servers print "listening on
/// http://0.0.0.0:3000", and a browser on Linux or macOS given that address (typed or clicked
/// in a terminal) connects to this machine.
/// The transaction cookie is then set for host `0.0.0.0`, the callback comes back to
/// `127.0.0.1`, and the first sign-in fails as expired. `0.0.0.0` (and `[::]`) is not
/// `is_loopback()`, so the login is not moved. The move only ever sends the browser to the
/// configured origin, so moving from these names is as safe as from `localhost`.
#[tokio::test]
async fn a_login_on_the_unspecified_address_is_moved() {
    let s = setup().await;
    let mut not_moved = Vec::new();
    for host in ["0.0.0.0:3000", "[::]:3000"] {
        let resp = get_on(&s, host, "/auth/login?return_to=%2Fme").await;
        if !is_move(&resp) {
            not_moved.push(format!("{host}: {}", describe(&resp)));
        }
    }
    assert!(not_moved.is_empty(), "not moved: {not_moved:?}");
}

/// Threat (no move where the browser needs one): Chrome and Firefox resolve every
/// `*.localhost` name to the loopback address (RFC 6761), and dev setups use them to keep apps
/// apart (`app.localhost:3000`). A cookie set for `app.localhost` is not sent to `127.0.0.1`:
/// the first sign-in fails as expired, as it did for `localhost` before the move existed.
#[tokio::test]
async fn a_login_on_a_localhost_subdomain_is_moved() {
    let s = setup().await;
    let resp = get_on(&s, "app.localhost:3000", "/auth/login?return_to=%2Fme").await;
    assert!(is_move(&resp), "not moved: {}", describe(&resp));
}

/// Guard (open redirect, header injection): whatever the `Host` header says, a move goes to the
/// configured origin and nowhere else, and hosts that are not loopback are never moved.
#[tokio::test]
async fn odd_host_headers_move_only_to_the_configured_origin() {
    let s = setup().await;
    let hosts = [
        "localhost:3000",
        "LOCALHOST:3000",
        "localhost",
        "localhost:3000@evil.example",
        "evil.example#@localhost:3000",
        "evil.example\\@localhost:3000",
        "localhost:3000\\@evil.example",
        "localhost:3000/evil.example",
        "localhost:3000?evil.example",
        "localhost\t:3000",
        "127.0.0.2:3000",
        "127.1:4000",
        "[::1]:3000",
        "[0:0:0:0:0:0:0:1]:3000",
        "[::ffff:127.0.0.1]:3000",
        "evil.example",
        "localhost.evil.example:3000",
        "127.0.0.1.nip.io:3000",
        "10.0.0.1:3000",
        "xn--localhost:3000",
        "localhost:99999",
        "localhost:3000, evil.example",
        "",
        " ",
        "%6Cocalhost:3000",
    ];
    let mut bad = Vec::new();
    for host in hosts {
        let Ok(req) = login_on(host, "/auth/login?return_to=%2Fme").body(Body::empty()) else {
            continue;
        };
        let resp = s.app.clone().oneshot(req).await.unwrap();
        if resp.status().is_server_error() {
            bad.push(format!("{host:?}: {}", describe(&resp)));
            continue;
        }
        let Some(loc) = location_opt(&resp) else {
            continue;
        };
        let to_provider = loc.starts_with(s.provider.issuer());
        let u = url::Url::parse(&loc).expect("an absolute Location");
        let to_ours = u.origin().ascii_serialization() == OURS && u.path() == "/auth/login";
        if !(to_provider || to_ours) {
            bad.push(format!("{host:?}: {loc}"));
        }
        let asked = url::Url::parse(&format!("http://{host}")).ok();
        let loopback_name = asked.as_ref().is_some_and(|u| match u.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        });
        if to_ours && !loopback_name {
            bad.push(format!("{host:?}: moved off a name that is not loopback"));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Guard (open redirect, header injection): odd paths-and-queries on the other loopback name
/// move to the configured origin's login path; nothing in the query escapes into the
/// `Location`'s authority or adds a header.
#[tokio::test]
async fn odd_queries_move_only_to_the_configured_login_path() {
    let s = setup().await;
    let queries = [
        "//evil.example",
        "@evil.example",
        "\\evil.example",
        "return_to=//evil.example",
        "return_to=%0d%0aSet-Cookie:%20x=1",
        "a=%0D%0ALocation:%20http://evil.example",
        "return_to=http://evil.example&login_moved=",
        "%2F%2Fevil.example",
        "&&&",
        "=",
        "login_moved",
        "login_moved&login_moved=&login_moved==",
        "a=1;login_moved=x",
        "a=\"'<>`{}|^",
    ];
    let mut bad = Vec::new();
    for q in queries {
        let uri = format!("/auth/login?{q}");
        let Ok(req) = login_on("localhost:3000", &uri).body(Body::empty()) else {
            continue;
        };
        let resp = s.app.clone().oneshot(req).await.unwrap();
        if !is_move(&resp) {
            bad.push(format!("{q:?}: not moved: {}", describe(&resp)));
            continue;
        }
        let loc = location(&resp);
        let u = url::Url::parse(&loc).unwrap();
        if u.origin().ascii_serialization() != OURS || u.path() != "/auth/login" {
            bad.push(format!("{q:?}: {loc}"));
        }
        if loc.bytes().any(|b| b < 0x20 || b == 0x7f) {
            bad.push(format!("{q:?}: control bytes in {loc:?}"));
        }
        if resp.headers().get_all(header::SET_COOKIE).iter().count() > 0 {
            bad.push(format!("{q:?}: the move sets cookies"));
        }
        // Followed to the redirect URL's origin, nothing of ours makes it fail.
        let after = get_on(&s, "127.0.0.1:3000", &moved_uri(&resp)).await;
        if after.status().is_server_error() {
            bad.push(format!("{q:?}: after the move {}", describe(&after)));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Guard (query tricks): `login_moved` repeated, percent-encoded (`%6Cogin_moved`,
/// `login%5Fmoved`), or placed first, in the middle or last, never reaches the redirect URL's
/// origin twice (the login route answers 400 to a repeated parameter): the move keeps exactly
/// one sign, the rest of the query in order, and the moved login starts.
#[tokio::test]
async fn repeated_or_encoded_signs_leave_one_sign_and_the_login_starts() {
    let s = setup().await;
    let queries = [
        "login_moved=a&return_to=%2Fme&login_moved=b",
        "%6Cogin_moved=a&return_to=%2Fme",
        "login%5Fmoved=a&return_to=%2Fme&login_moved=b",
        "return_to=%2Fme&login_moved=a&prompt=login",
        "login_moved&return_to=%2Fme",
        "return_to=%2Fme&login_moved=a%26login_moved%3Db",
        "return_to=%2Fme&login+moved=x",
    ];
    let mut bad = Vec::new();
    for q in queries {
        let resp = get_on(&s, "localhost:3000", &format!("/auth/login?{q}")).await;
        if !is_move(&resp) {
            bad.push(format!("{q}: not moved: {}", describe(&resp)));
            continue;
        }
        let u = url::Url::parse(&location(&resp)).unwrap();
        let n = u.query_pairs().filter(|(k, _)| k == MOVED).count();
        if n != 1 {
            bad.push(format!("{q}: {n} signs in {u}"));
        }
        if !u.query_pairs().any(|(k, v)| k == "return_to" && v == "/me") {
            bad.push(format!("{q}: return_to lost in {u}"));
        }
        let after = get_on(&s, "127.0.0.1:3000", &moved_uri(&resp)).await;
        if !starts(&s, &after) {
            bad.push(format!(
                "{q}: moved login did not start: {}",
                describe(&after)
            ));
        }
        // And through a `Host`-rewriting proxy: no second move.
        let proxied = get_on(&s, "localhost:3000", &moved_uri(&resp)).await;
        if !starts(&s, &proxied) {
            bad.push(format!("{q}: proxied: {}", describe(&proxied)));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Guard (a loop through a proxy that re-encodes): the sign is standard base64 (`+`, `/`, `=`),
/// percent-encoded in the `Location`. A proxy or client that writes the escapes in lower case,
/// or leaves `/` and `=` bare, still has a valid sign; the sign moved to the front of the query
/// too.
#[tokio::test]
async fn a_re_encoded_or_moved_sign_is_still_honoured() {
    let s = setup().await;
    let resp = get_on(
        &s,
        "localhost:3000",
        "/auth/login?return_to=%2Fme&prompt=login",
    )
    .await;
    assert!(is_move(&resp));
    let part = sign_part(&resp);
    let value = part.split_once('=').unwrap().1.to_owned();
    let lower = value
        .replace("%2B", "%2b")
        .replace("%2F", "%2f")
        .replace("%3D", "%3d");
    let bare = value.replace("%2F", "/").replace("%3D", "=");
    let mut bad = Vec::new();
    for uri in [
        format!("/auth/login?return_to=%2Fme&prompt=login&{MOVED}={lower}"),
        format!("/auth/login?return_to=%2Fme&prompt=login&{MOVED}={bare}"),
        format!("/auth/login?{MOVED}={value}&return_to=%2Fme&prompt=login"),
        format!("/auth/login?return_to=%2Fme&{MOVED}={value}&prompt=login"),
    ] {
        let r = get_on(&s, "localhost:3000", &uri).await;
        if !starts(&s, &r) {
            bad.push(format!("{uri}: {}", describe(&r)));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Guard (sign confusion): a sign opens only as a sign of this layer. Sealed login options
/// (`AuthLayer::login_url`), the layer's own cookies and a sign of another app sharing the
/// cookie keys do not stop a move; a sign passed as `options` is not honoured as login options.
#[tokio::test]
async fn other_sealed_values_do_not_stand_in_for_a_sign() {
    let s = setup().await;
    let mut bad = Vec::new();
    // Sealed login options as the sign.
    let link = s.auth.login_url(LoginOptions::new().return_to("/me"));
    let options = url::Url::parse(&format!("{OURS}{link}"))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "options")
        .map(|(_, v)| v.into_owned())
        .expect("sealed options");
    let as_sign: String = url::form_urlencoded::byte_serialize(options.as_bytes()).collect();
    for uri in [
        format!("/auth/login?{MOVED}={as_sign}"),
        format!("{link}&{MOVED}={as_sign}"),
    ] {
        let r = get_on(&s, "localhost:3000", &uri).await;
        if !is_move(&r) {
            bad.push(format!("options as the sign: {uri}: {}", describe(&r)));
        }
    }
    // The layer's cookies (session, id token, transaction) as the sign.
    let mut jar = Jar::default();
    let resp = login(&s, &mut jar, "/auth/login").await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let mut tx_jar = Jar::default();
    tx_jar.absorb(&get_on(&s, "127.0.0.1:3000", "/auth/login").await);
    for c in jar.cookies.iter().chain(&tx_jar.cookies) {
        let v: String = url::form_urlencoded::byte_serialize(c.value.as_bytes()).collect();
        let r = get_on(&s, "localhost:3000", &format!("/auth/login?{MOVED}={v}")).await;
        if !is_move(&r) {
            bad.push(format!("cookie {} as the sign: {}", c.name, describe(&r)));
        }
    }
    // A sign as sealed options, where the redirect URL lives: refused, not opened.
    let moved = get_on(&s, "localhost:3000", "/auth/login").await;
    let sign = sign_part(&moved);
    let value = sign.split_once('=').unwrap().1;
    let r = get_on(
        &s,
        "127.0.0.1:3000",
        &format!("/auth/login?options={value}"),
    )
    .await;
    if r.status() != StatusCode::BAD_REQUEST {
        bad.push(format!("a sign opened as options: {}", describe(&r)));
    }
    // Another app (another client id) with the same cookie key: its signs are not ours.
    let key = tower_oidc_auth::testing::cookie_key(4);
    let build = |client: &str| {
        AuthLayerBuilder::new()
            .provider(Provider::scalekit(s.provider.issuer()))
            .client_id(client)
            .client_secret(s.provider.client_secret())
            .redirect_url(REDIRECT)
            .cookie_key(key)
            .clock(s.clock.clone())
            .build()
    };
    let ours = build(s.provider.client_id()).await.expect("ours");
    let other = build("another-app").await.expect("other");
    let req = |uri: &str| login_on("localhost:3000", uri).body(Body::empty()).unwrap();
    let from_other = app(&other)
        .oneshot(req("/auth/login?return_to=%2Fme"))
        .await
        .unwrap();
    assert!(is_move(&from_other));
    let r = app(&ours)
        .oneshot(req(&moved_uri(&from_other)))
        .await
        .unwrap();
    if !is_move(&r) {
        bad.push(format!("another app's sign honoured: {}", describe(&r)));
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Guard (replay): a sign stops a second move for 60 seconds and no longer, for its own target
/// only (another path of the same query, another query, the same query with one more
/// parameter), and not after the clock went back further than the sign's life.
#[tokio::test]
async fn the_sign_lives_sixty_seconds_for_its_own_target_only() {
    let s = setup().await;
    let resp = get_on(&s, "localhost:3000", "/auth/login?return_to=%2Fme").await;
    let uri = moved_uri(&resp);
    let sign = sign_part(&resp);
    s.clock.advance(Duration::from_secs(60));
    let r = get_on(&s, "localhost:3000", &uri).await;
    assert!(starts(&s, &r), "at 60 s: {}", describe(&r));
    s.clock.advance(Duration::from_secs(1));
    let r = get_on(&s, "localhost:3000", &uri).await;
    assert!(is_move(&r), "at 61 s: {}", describe(&r));
    // Fresh sign; other targets.
    let resp = get_on(&s, "localhost:3000", "/auth/login?return_to=%2Fme").await;
    let sign2 = sign_part(&resp);
    assert_ne!(sign, sign2, "a new sign each move");
    for other in [
        format!("/auth/login?return_to=%2Fadmin&{sign2}"),
        format!("/auth/login?return_to=%2Fme&prompt=none&{sign2}"),
        format!("/auth/login?{sign2}"),
        format!("/auth/login?return_to=/me&{sign2}"),
        format!("/auth/login?return_to=%2fme&{sign2}"),
    ] {
        let r = get_on(&s, "localhost:3000", &other).await;
        assert!(
            is_move(&r),
            "{other}: a sign for another target stopped the move: {}",
            describe(&r)
        );
    }
    // The clock goes back two minutes: a sign "from the future" is not honoured.
    let resp = get_on(&s, "localhost:3000", "/auth/login?return_to=%2Fme").await;
    let uri = moved_uri(&resp);
    let now = tower_oidc_auth::Clock::now(&s.clock);
    s.clock.set(now - 120);
    let r = get_on(&s, "localhost:3000", &uri).await;
    assert!(is_move(&r), "a sign from the future: {}", describe(&r));
    s.clock.set(now);
    let r = get_on(&s, "localhost:3000", &uri).await;
    assert!(starts(&s, &r), "back to its time: {}", describe(&r));
}

/// Guard (no loop, no needless move): the browser on `localhost` is moved once and then starts;
/// behind a `Host`-rewriting proxy it is moved at most once; a proxy that says so
/// (`X-Forwarded-*`, `Forwarded`, `Via`) is never moved; a login on the redirect URL's own
/// origin that carries a sign (stale, forged or valid) starts.
#[tokio::test]
async fn a_browser_reaches_the_provider_in_at_most_one_move() {
    let s = setup().await;
    let resp = get_on(&s, "localhost:3000", "/auth/login?return_to=%2Fme").await;
    assert!(is_move(&resp));
    let moved = moved_uri(&resp);
    assert!(starts(&s, &get_on(&s, "127.0.0.1:3000", &moved).await));
    assert!(starts(&s, &get_on(&s, "localhost:3000", &moved).await));
    for (name, value) in [
        ("x-forwarded-host", "localhost:3000"),
        ("x-forwarded-for", "127.0.0.1"),
        ("forwarded", "for=127.0.0.1"),
        ("via", "1.1 vite"),
    ] {
        let req = login_on("localhost:3000", "/auth/login?return_to=%2Fme")
            .header(name, value)
            .body(Body::empty())
            .unwrap();
        let r = s.app.clone().oneshot(req).await.unwrap();
        assert!(starts(&s, &r), "{name}: {}", describe(&r));
    }
    // A sealed login link (`AuthLayer::login_url`) is moved with its options and starts.
    let link = s.auth.login_url(
        LoginOptions::new()
            .return_to("/me")
            .max_age(Duration::from_secs(300)),
    );
    let r = get_on(&s, "localhost:3000", &link).await;
    assert!(is_move(&r), "{}", describe(&r));
    let r = get_on(&s, "127.0.0.1:3000", &moved_uri(&r)).await;
    assert!(starts(&s, &r), "moved link: {}", describe(&r));
    assert!(
        location(&r).contains("max_age=300"),
        "options lost: {}",
        location(&r)
    );
    s.clock.advance(Duration::from_secs(3600));
    for q in [
        moved.clone(),
        format!("/auth/login?return_to=%2Fme&{MOVED}=forged"),
        format!("/auth/login?{MOVED}="),
    ] {
        let r = get_on(&s, "127.0.0.1:3000", &q).await;
        assert!(starts(&s, &r), "{q}: {}", describe(&r));
    }
}

/// Guard (no panic): a sign of odd shapes (empty, lengths around the AEAD's minimum, bytes that
/// are not base64 or not UTF-8, 6000 characters) is refused without a 500 and the login is
/// moved.
#[tokio::test]
async fn malformed_signs_are_refused_quietly() {
    let s = setup().await;
    let huge = "A".repeat(6000);
    let mut bad = Vec::new();
    for v in [
        "",
        "A",
        "AAAA",
        &"A".repeat(38),
        &"A".repeat(40),
        &"A".repeat(44),
        "%00%ff%fe",
        "%E2%80%AE",
        "====",
        "..",
        huge.as_str(),
    ] {
        let r = get_on(&s, "localhost:3000", &format!("/auth/login?{MOVED}={v}")).await;
        if !is_move(&r) {
            bad.push(format!("{}: {}", &v[..v.len().min(20)], describe(&r)));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

// ---- 2. Cookie-key checks (builder) ------------------------------------------------------------

fn builder_with_key(key: &[u8]) -> AuthLayerBuilder {
    AuthLayerBuilder::new()
        .provider(Provider::scalekit("https://id.example.com"))
        .client_id("app")
        .client_secret("shh-secret-value")
        .redirect_url("https://app.example.com/auth/callback")
        .cookie_key(key)
}

/// 64*n pseudo-random bytes: SHA-256 of a label and a counter.
fn random_bytes(label: &str, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 32);
    let mut i: u64 = 0;
    while out.len() < n {
        out.extend_from_slice(
            &Sha256::new()
                .chain_update(label.as_bytes())
                .chain_update(i.to_le_bytes())
                .finalize(),
        );
        i += 1;
    }
    out.truncate(n);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// `text` repeated to `len` characters.
fn repeated(text: &str, len: usize) -> String {
    text.chars().cycle().take(len).collect()
}

/// Threat (weak key accepted): a person told "88 characters of base64" types a short phrase in
/// base64 letters and repeats it (`ThisIsNotASecretKey` x 5). Decoded, a 19-character phrase
/// repeats every 57 bytes (17 characters: every 51): beyond the 48-byte period the whole-key
/// check looks for, and longer than each 32-byte half, so no check sees the pattern; the bytes
/// themselves look random. The key holds the entropy of a 19-letter phrase. Over 64 bytes a
/// period of up to 57 costs nothing in false positives (at least 7 equal bytes: odds 2^-56).
#[test]
fn a_short_phrase_repeated_in_base64_letters_is_refused() {
    let mut accepted = Vec::new();
    for phrase in ["ThisIsNotASecretKey", "mysupersecretkey1"] {
        let text = repeated(phrase, 88);
        let key = STANDARD.decode(&text).expect("valid base64");
        if builder_with_key(&key).validate().is_ok() {
            accepted.push(phrase);
        }
    }
    assert!(accepted.is_empty(), "weak keys accepted: {accepted:?}");
}

/// Guard: repeated phrases whose period falls within the checks, and other hand-made keys, are
/// refused (the alphabet in order, a keyboard row, `changeme`, counting bytes, one block).
#[test]
fn hand_made_keys_within_the_checks_are_refused() {
    let mut accepted = Vec::new();
    for text in [
        repeated(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            88,
        ),
        repeated("abcdefghijklmnopqrstuvwxyz", 88),
        repeated("qwertyuiopasdfghjklzxcvbnm", 88),
        repeated("changemeplease", 88),
        repeated("abc123", 88),
        repeated("deadbeef", 88),
    ] {
        let key = STANDARD.decode(&text).expect("valid base64");
        if builder_with_key(&key).validate().is_ok() {
            accepted.push(text);
        }
    }
    let mut counting: Vec<u8> = (0u8..64).collect();
    counting.rotate_left(5);
    if builder_with_key(&counting).validate().is_ok() {
        accepted.push("counting".into());
    }
    assert!(accepted.is_empty(), "weak keys accepted: {accepted:?}");
}

/// Guard (false positives): keys from tools that print random alphanumerics (`pwgen -s 88`,
/// `tr -dc A-Za-z0-9 </dev/urandom | head -c 88`) decoded as base64 pass, 3000 of them.
#[test]
fn random_alphanumeric_base64_keys_are_accepted() {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut refused = Vec::new();
    for i in 0..3000 {
        let text: String = random_bytes(&format!("alnum{i}"), 88)
            .iter()
            .map(|b| ALNUM[usize::from(*b) % ALNUM.len()] as char)
            .collect();
        let key = STANDARD.decode(&text).unwrap();
        if let Err(e) = builder_with_key(&key).validate() {
            refused.push(format!("{text}: {e}"));
        }
    }
    assert!(refused.is_empty(), "{:?}", &refused[..refused.len().min(3)]);
}

// ---- 3. AUTH_COOKIE_KEY ------------------------------------------------------------------------

const CHILD_MARK: &str = "TOWER_OIDC_ATTACK_MENDS4_CHILD";
const CHILD_VALUES: &str = "TOWER_OIDC_ATTACK_MENDS4_VALUES";

/// Run in a child process only: for each value (JSON list in `CHILD_VALUES`), sets
/// `AUTH_COOKIE_KEY`, reads it with `cookie_keys_from_env`, validates, and prints the result.
/// An accepted value made only of hex digits is also compared with its hex reading: a login
/// link sealed by a layer built from the environment is opened by a layer given the hex bytes,
/// or not ("ok hex-bytes" or "ok other-bytes").
#[tokio::test]
async fn mends4_env_child() {
    if std::env::var_os(CHILD_MARK).is_none() {
        return;
    }
    let values: Vec<String> = serde_json::from_str(&std::env::var(CHILD_VALUES).unwrap()).unwrap();
    for (i, value) in values.iter().enumerate() {
        std::env::set_var("AUTH_COOKIE_KEY", value);
        let r = std::panic::catch_unwind(|| {
            builder_with_key(&random_bytes("first", 64))
                .cookie_keys_from_env()
                .and_then(|b| b.validate().map(|()| b))
        });
        let mut line = match r {
            Err(_) => "panic".to_owned(),
            Ok(Err(e)) => format!("err {e}"),
            Ok(Ok(_)) => "ok".to_owned(),
        };
        let all_hex = !value.is_empty() && value.bytes().all(|b| b.is_ascii_hexdigit());
        if line == "ok" && all_hex {
            let provider = tower_oidc_auth::testing::TestProvider::builder()
                .user(user())
                .start()
                .await;
            let base = || {
                AuthLayerBuilder::new()
                    .provider(Provider::scalekit(provider.issuer()))
                    .client_id(provider.client_id())
                    .client_secret(provider.client_secret())
                    .redirect_url(REDIRECT)
            };
            let from_env = base()
                .cookie_keys_from_env()
                .unwrap()
                .build()
                .await
                .unwrap();
            let from_hex = base().cookie_key(unhex(value)).build().await.unwrap();
            let link = from_env.login_url(LoginOptions::new().return_to("/x"));
            let req = login_on("127.0.0.1:3000", &link)
                .body(Body::empty())
                .unwrap();
            let resp = app(&from_hex).oneshot(req).await.unwrap();
            let opened = resp.status() == StatusCode::FOUND
                && location_opt(&resp).is_some_and(|l| l.starts_with(provider.issuer()));
            line = if opened {
                "ok hex-bytes"
            } else {
                "ok other-bytes"
            }
            .to_owned();
        }
        println!("ENV-RESULT {i} {}", line.replace('\n', " "));
    }
}

/// What the child made of each value: `Ok(detail)` when accepted, `Err(reason)` otherwise.
fn keys_from_env_in_child(values: &[String]) -> Vec<Result<String, String>> {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "attack_mends4::mends4_env_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MARK, "1")
        .env(CHILD_VALUES, serde_json::to_string(values).unwrap())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut results = vec![Err("no result".to_owned()); values.len()];
    for line in stdout.lines() {
        let Some((_, rest)) = line.split_once("ENV-RESULT ") else {
            continue;
        };
        let (i, r) = rest.split_once(' ').unwrap();
        let i: usize = i.parse().unwrap();
        results[i] = match r.strip_prefix("ok") {
            Some(detail) => Ok(detail.trim().to_owned()),
            None => Err(r.to_owned()),
        };
    }
    results
}

/// Wraps text at `width` characters a line.
fn wrap(text: &str, width: usize, nl: &str) -> String {
    text.as_bytes()
        .chunks(width)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(nl)
}

/// Threat (weak key accepted, through the environment): a phrase typed in base64 letters,
/// repeated to length (`supersecretdevelopmentkey` x 3.5: a period of 75 bytes once decoded,
/// more than the 64 bytes checked; `ChangeMeInProduction1`: 63 bytes, one equal pair), or one
/// long sentence without spaces. Decoded, the bytes look
/// random; the text does not: 88 random base64 characters are all letters with odds about
/// 1e-8, and repeat with a period of 25 characters practically never. Only the text shows it,
/// and `decode_key` has the text.
#[test]
fn phrases_typed_in_base64_letters_are_refused_from_the_environment() {
    let values = [
        repeated("supersecretdevelopmentkey", 88),
        repeated("thisisnotasecretkeyforproductionuse", 88),
        repeated("ChangeMeInProduction1", 88),
        "LoremipsumdolorsitametconsecteturadipiscingelitseddoeiusmodtemporincididuntutlaboreetdoloremagnaaliquaUtenim"[..88].to_owned(),
    ];
    let results = keys_from_env_in_child(&values);
    let accepted: Vec<&String> = values
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .map(|(v, _)| v)
        .collect();
    assert!(accepted.is_empty(), "weak keys accepted: {accepted:#?}");
}

/// Threat (misparse, and false positives): `openssl rand -hex 64` (also `secrets.token_hex(64)`,
/// `rails secret`) prints 128 hex digits, which are valid base64: `AUTH_COOKIE_KEY` silently
/// decodes them as base64 into 96 bytes that are not the key the other services reading the
/// same variable use. Those bytes are constrained (every 6-bit group one of 16 values), so the
/// checks refuse about 1 such key in 10 000 as "not random: the byte .. appears 9 times" (a
/// strong key from a real tool, refused with a misleading reason), and accept the rest as
/// different bytes. 128 random base64 characters are all hex digits with odds 4^-128: the form
/// can be told apart; it must be read as hex or refused with a hint naming hex.
#[test]
fn a_hex_key_is_read_as_hex_or_refused_with_a_hint() {
    // "hex3192" is one of the about 1 in 10 000 that are refused outright.
    let values: Vec<String> = ["hex0", "hex1", "hex3192"]
        .iter()
        .map(|l| hex(&random_bytes(l, 64)))
        .collect();
    let results = keys_from_env_in_child(&values);
    let mut bad = Vec::new();
    for (v, r) in values.iter().zip(&results) {
        assert_eq!(unhex(v).len(), 64);
        match r {
            Ok(detail) if detail == "hex-bytes" => {}
            Ok(detail) => bad.push(format!(
                "{}..: accepted as {detail} (a base64 reading: {} bytes), not the 64 hex bytes",
                &v[..16],
                STANDARD.decode(v).map_or(0, |b| b.len())
            )),
            Err(e) if e.contains("hex") => {}
            Err(e) => bad.push(format!("{}..: refused without naming hex: {e}", &v[..16])),
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Guard: the whitespace forms real tools print for one strong key are accepted: `openssl rand
/// -base64` for 64, 96 and 128 bytes (64-character lines), GNU `base64` and Python's
/// `base64.encodebytes` (76, with a final newline), Java's MIME encoder (76, CRLF), a
/// Kubernetes secret file (final newline), `.env` values with spaces around; and two such keys
/// separated by a comma, each wrapped.
#[test]
fn tool_printed_whitespace_forms_are_accepted() {
    let mut cases: Vec<(String, String)> = Vec::new();
    for n in [64usize, 96, 128] {
        let b64 = STANDARD.encode(random_bytes(&format!("openssl{n}"), n));
        cases.push((format!("openssl {n}"), wrap(&b64, 64, "\n")));
        cases.push((format!("openssl {n} crlf"), wrap(&b64, 64, "\r\n")));
        cases.push((
            format!("gnu base64 {n}"),
            format!("{}\n", wrap(&b64, 76, "\n")),
        ));
        cases.push((format!("mime {n}"), wrap(&b64, 76, "\r\n")));
    }
    let k1 = STANDARD.encode(random_bytes("rot1", 64));
    let k2 = STANDARD.encode(random_bytes("rot2", 100));
    cases.push((
        "two wrapped keys, comma".into(),
        format!("{},\n{}\n", wrap(&k1, 64, "\n"), wrap(&k2, 76, "\n")),
    ));
    cases.push(("k8s file".into(), format!("{k1}\n")));
    cases.push(("spaces".into(), format!("  {k1}  ")));
    cases.push(("tab".into(), format!("\t{k1}\t")));
    let values: Vec<String> = cases.iter().map(|(_, v)| v.clone()).collect();
    let results = keys_from_env_in_child(&values);
    let refused: Vec<String> = cases
        .iter()
        .zip(&results)
        .filter_map(|((n, _), r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
        .collect();
    assert!(refused.is_empty(), "{refused:#?}");
}

/// Guard (merged or truncated keys, panics): two unwrapped keys on two lines or separated by a
/// space; a wrapped key with a line lost or a short line in the middle; keys with a stray
/// comment, quotes, non-ASCII spaces, a BOM, an empty part or a trailing comma; huge values:
/// each is refused (not merged into one key) and none panics.
#[test]
fn misshapen_values_are_refused_without_panic() {
    let k1 = STANDARD.encode(random_bytes("m1", 64));
    let k2 = URL_SAFE_NO_PAD.encode(random_bytes("m2", 64));
    let w = wrap(&STANDARD.encode(random_bytes("m3", 64)), 64, "\n");
    let (l1, l2) = w.split_once('\n').unwrap();
    let cases: Vec<(&str, String)> = vec![
        ("two keys, newline", format!("{k1}\n{k2}")),
        ("two keys, space", format!("{k1} {k2}")),
        ("two keys, CRLF", format!("{k1}\r\n{k2}")),
        ("wrapped, second line first", format!("{l2}\n{l1}")),
        (
            "wrapped, split short",
            format!("{}\n{}\n{l2}", &l1[..32], &l1[32..]),
        ),
        ("inline comment", format!("{k1} # prod key")),
        ("quoted", format!("\"{k1}\"")),
        ("single quoted", format!("'{k1}'")),
        ("nbsp", format!("{}\u{a0}{}", &k1[..44], &k1[44..])),
        ("bom", format!("\u{feff}{k1}")),
        ("empty part", format!("{k1},,{k2}")),
        ("trailing comma", format!("{k1},")),
        ("only commas", ",,,".to_owned()),
        ("only whitespace", " \n\t ".to_owned()),
        ("huge", "A".repeat(50_000)),
        ("huge lines", wrap(&"QUJD".repeat(4096), 64, "\n")),
        ("shell", "$(openssl rand -base64 64)".to_owned()),
    ];
    let values: Vec<String> = cases.iter().map(|(_, v)| v.clone()).collect();
    let results = keys_from_env_in_child(&values);
    let mut bad = Vec::new();
    for ((name, _), r) in cases.iter().zip(&results) {
        match r {
            Ok(_) => bad.push(format!("{name}: accepted")),
            Err(e) if e == "panic" || e == "no result" => bad.push(format!("{name}: {e}")),
            Err(_) => {}
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}
