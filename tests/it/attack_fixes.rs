//! Regressions from the third attack on the newcomer mends (issue 16): the loopback move could
//! be skipped by a cross-site `Origin`/`Referer` or a planted marker cookie, and its marker
//! blocked a legitimate second move; a cookie key whose encryption half (bytes 32..64, the
//! half `cookie`'s private jar uses) was text or counting passed the key checks.
//!
//! Each test fails on db5e931 and passes since the fix.

use axum::body::Body;
use http::{header, Request, StatusCode};
use sha2::{Digest, Sha256};
use tower::ServiceExt;
use tower_oidc_auth::{AuthLayerBuilder, Provider};

use crate::helpers::*;

const OURS: &str = "http://127.0.0.1:3000";

fn login_on(host: &str, uri: &str) -> http::request::Builder {
    Request::get(uri)
        .header(header::HOST, host)
        .header(header::ACCEPT, "text/html")
}

/// Is this answer the move to the redirect URL's origin (and not the start of a login)?
fn is_move(resp: &http::Response<Body>) -> bool {
    resp.status() == StatusCode::FOUND && location(resp).starts_with(&format!("{OURS}/auth/login"))
}

/// Threat: a page on another site links to `http://localhost:3000/auth/login` with a forged or
/// stripped-down `Referer` naming the redirect URL's origin (any page of that origin that links
/// out, or `Referrer-Policy: unsafe-url`, sends one). The browser is on `localhost`, so the
/// login must move; skipping the move sets the transaction cookie on the wrong host and the
/// sign-in fails as expired. The browser says where it really is: `Sec-Fetch-Site`.
#[tokio::test]
async fn cross_site_referer_from_the_redirect_origin_does_not_skip_the_move() {
    let s = setup().await;
    for site in ["cross-site", "same-site", "none"] {
        let req = login_on("localhost:3000", "/auth/login?return_to=%2Fme")
            .header(header::REFERER, format!("{OURS}/dashboard"))
            .header("sec-fetch-site", site)
            .header("sec-fetch-mode", "navigate")
            .body(Body::empty())
            .unwrap();
        let resp = s.app.clone().oneshot(req).await.unwrap();
        assert!(is_move(&resp), "{site}: not moved: {:?}", resp.headers());
    }
}

/// The same with an `Origin` header (a form POSTed or a fetch from the redirect origin's page).
#[tokio::test]
async fn cross_site_origin_header_does_not_skip_the_move() {
    let s = setup().await;
    let req = login_on("localhost:3000", "/auth/login?return_to=%2Fme")
        .header(header::ORIGIN, OURS)
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .body(Body::empty())
        .unwrap();
    let resp = s.app.clone().oneshot(req).await.unwrap();
    assert!(is_move(&resp), "not moved: {:?}", resp.headers());
}

/// The cookie prefix of this layer, read from the transaction cookie a real login sets.
async fn cookie_prefix(s: &Setup) -> String {
    let req = login_on("127.0.0.1:3000", "/auth/login")
        .body(Body::empty())
        .unwrap();
    let resp = s.app.clone().oneshot(req).await.unwrap();
    set_cookies(&resp)
        .iter()
        .find_map(|c| c.name().split_once("_tx").map(|(p, _)| p.to_owned()))
        .expect("a transaction cookie")
}

/// Threat: any other app on `localhost` (another port: cookies ignore ports) or a page that can
/// set a cookie for the host plants the move's marker, `<prefix>_alias=1`. Every later login on
/// `localhost` then skips the move and fails as expired. Nothing the browser brings may stop
/// the move unless this layer made it.
#[tokio::test]
async fn a_planted_alias_marker_does_not_stop_the_move() {
    let s = setup().await;
    let prefix = cookie_prefix(&s).await;
    for value in ["1", "", "true", "x"] {
        let req = login_on("localhost:3000", "/auth/login?return_to=%2Fme")
            .header(header::COOKIE, format!("{prefix}_alias={value}"))
            .body(Body::empty())
            .unwrap();
        let resp = s.app.clone().oneshot(req).await.unwrap();
        assert!(is_move(&resp), "{value:?}: not moved: {:?}", resp.headers());
    }
}

/// Threat (availability): the move's own marker, sent back by the browser for a minute, stopped
/// a second legitimate move: sign in on `localhost` (moved), sign out on `127.0.0.1`, open
/// `localhost` again and sign in within the minute: the login is not moved and fails.
#[tokio::test]
async fn a_second_login_on_the_alias_host_within_a_minute_is_moved_again() {
    let s = setup().await;
    let first = login_on("localhost:3000", "/auth/login?return_to=%2Fme")
        .body(Body::empty())
        .unwrap();
    let resp = s.app.clone().oneshot(first).await.unwrap();
    assert!(is_move(&resp));
    // What the browser keeps for `localhost` from that answer.
    let kept: Vec<String> = set_cookies(&resp)
        .iter()
        .filter(|c| c.max_age().is_none_or(|a| !a.is_zero()))
        .map(|c| format!("{}={}", c.name(), c.value()))
        .collect();
    s.clock.advance(std::time::Duration::from_secs(20));
    let mut second = login_on("localhost:3000", "/auth/login?return_to=%2Fme");
    if !kept.is_empty() {
        second = second.header(header::COOKIE, kept.join("; "));
    }
    let resp = s
        .app
        .clone()
        .oneshot(second.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert!(
        is_move(&resp),
        "second login not moved: {:?}",
        resp.headers()
    );
}

/// Guard on the mechanism that stops a `Host`-rewriting proxy from looping: the sign that a
/// login was moved already is made by this layer, for that one target, for a short time. A
/// forged sign, one made for another target, or an old one does not stop a move.
#[tokio::test]
async fn the_moved_sign_is_bound_to_its_target_and_expires() {
    let s = setup().await;
    let moved_query = |resp: &http::Response<Body>| -> String {
        let u = url::Url::parse(&location(resp)).unwrap();
        u.query().unwrap_or("").to_owned()
    };
    let first = login_on("localhost:3000", "/auth/login?return_to=%2Fme")
        .body(Body::empty())
        .unwrap();
    let resp = s.app.clone().oneshot(first).await.unwrap();
    assert!(is_move(&resp));
    let query = moved_query(&resp);
    let sign = query
        .split('&')
        .find(|p| !p.starts_with("return_to="))
        .expect("the move adds its sign to the query")
        .to_owned();
    // Forged: the parameter name with a made-up value.
    let name = sign.split_once('=').unwrap().0;
    for forged in [
        format!("{name}=1"),
        format!("{name}="),
        format!("{name}=AAAA"),
    ] {
        let req = login_on(
            "localhost:3000",
            &format!("/auth/login?return_to=%2Fme&{forged}"),
        )
        .body(Body::empty())
        .unwrap();
        let resp = s.app.clone().oneshot(req).await.unwrap();
        assert!(is_move(&resp), "{forged}: not moved");
    }
    // Another target.
    let req = login_on(
        "localhost:3000",
        &format!("/auth/login?return_to=%2Fadmin&{sign}"),
    )
    .body(Body::empty())
    .unwrap();
    let resp = s.app.clone().oneshot(req).await.unwrap();
    assert!(is_move(&resp), "a sign for another target stopped the move");
    // Its own target, at once: the login starts (a proxy that rewrote `Host`).
    let req = login_on("localhost:3000", &format!("/auth/login?{query}"))
        .body(Body::empty())
        .unwrap();
    let resp = s.app.clone().oneshot(req).await.unwrap();
    assert!(
        location(&resp).starts_with(s.provider.issuer()),
        "the moved login did not start: {}",
        location(&resp)
    );
    // Its own target, later: moved again.
    s.clock.advance(std::time::Duration::from_secs(120));
    let req = login_on("localhost:3000", &format!("/auth/login?{query}"))
        .body(Body::empty())
        .unwrap();
    let resp = s.app.clone().oneshot(req).await.unwrap();
    assert!(is_move(&resp), "an old sign stopped the move");
}

fn builder_with_key(key: &[u8]) -> AuthLayerBuilder {
    AuthLayerBuilder::new()
        .provider(Provider::scalekit("https://id.example.com"))
        .client_id("app")
        .client_secret("shh-secret-value")
        .redirect_url("https://app.example.com/auth/callback")
        .cookie_key(key)
}

fn random_half(label: &str) -> Vec<u8> {
    Sha256::digest(label.as_bytes()).to_vec()
}

/// Threat: `cookie::Key` signs with bytes 0..32 and encrypts with bytes 32..64; the private jar
/// that seals every cookie uses only the second half. A random first half and a typed second
/// half passes checks made over all 64 bytes (only about 44 of them are text), and the sealing
/// key is a sentence.
#[test]
fn a_key_whose_encryption_half_is_text_is_refused() {
    for (i, text) in [
        &b"correct horse battery staple!!!!"[..],
        b"00112233445566778899aabbccddeeff",
        b"my-app-cookie-key-please-change!",
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(text.len(), 32);
        let mut key = random_half(&format!("sign{i}"));
        key.extend_from_slice(text);
        assert!(
            builder_with_key(&key).validate().is_err(),
            "encryption half {:?} accepted",
            String::from_utf8_lossy(text)
        );
        // And the other way round.
        let mut key = text.to_vec();
        key.extend(random_half(&format!("enc{i}")));
        assert!(
            builder_with_key(&key).validate().is_err(),
            "signing half {:?} accepted",
            String::from_utf8_lossy(text)
        );
    }
}

/// Threat: the same with a counting or repeating encryption half (0, 1, 2, .. 31; or one
/// 4-byte block eight times).
#[test]
fn a_key_whose_encryption_half_counts_is_refused() {
    let halves: [Vec<u8>; 3] = [
        (0u8..32).collect(),
        (0u8..32)
            .map(|b| b.wrapping_mul(7).wrapping_add(200))
            .collect(),
        [0xde, 0xad, 0xbe, 0xef].repeat(8),
    ];
    for (i, half) in halves.iter().enumerate() {
        let mut key = random_half(&format!("count{i}"));
        key.extend_from_slice(half);
        assert!(
            builder_with_key(&key).validate().is_err(),
            "encryption half {half:?} accepted"
        );
    }
}
