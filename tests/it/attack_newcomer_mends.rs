//! Attacks on the mends of the newcomer attack (issue 16 fixes): the loopback alias of the login
//! route, provider error details, the stale-callback redirect with a session, the cookie-key
//! checks (builder and `AUTH_COOKIE_KEY`), and the test provider's redirect restriction.
//!
//! Each test asserts the secure (or documented) behaviour: a failing test shows a defect, a
//! passing one is a guard.

use axum::body::Body;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use http::{header, Request, StatusCode};
use sha2::{Digest, Sha256};
use std::time::Duration;
use tower::ServiceExt;
use tower_oidc_auth::testing::TestProvider;
use tower_oidc_auth::{AuthLayerBuilder, Provider};

use crate::helpers::*;

// ---- 1. Loopback alias -------------------------------------------------------------------------

/// Threat: a redirect loop through the commonest dev proxy. Vite's `server.proxy` (and
/// webpack-dev-server, both on node http-proxy) with `changeOrigin: true` rewrites `Host` to the
/// target (`localhost:3000`) and adds no `X-Forwarded-*`, `Forwarded` or `Via` (http-proxy adds
/// them only with `xfwd: true`). The redirect URL is the dev server's
/// `http://localhost:5173/auth/callback`. The login is "moved" to `localhost:5173`, which the
/// proxy forwards with `Host: localhost:3000` again: the browser loops and nobody can sign in.
/// A browser following the login must reach the provider within a few hops.
#[tokio::test]
async fn a_vite_proxy_with_change_origin_does_not_loop() {
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
    // What the app receives from the proxy: the browser's request, Host rewritten.
    let through_proxy = |uri: &str| {
        Request::get(uri)
            .header(header::HOST, "localhost:3000")
            .header(header::ACCEPT, "text/html")
            .header("sec-fetch-site", "same-origin")
            .header("sec-fetch-mode", "navigate")
            .header(header::REFERER, "http://localhost:5173/")
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
        uri = format!("{}?{}", u.path(), u.query().unwrap_or(""));
    }
    panic!("login through a Vite proxy (changeOrigin, no xfwd) loops: {hops:?}");
}

/// Guards the same proxy when the browser sends no `Referer` (a typed address, a guard's
/// redirect after one): the move's sign in the query, which the browser sends back through the
/// proxy, stops a second move. Cookies are carried as a browser carries them.
#[tokio::test]
async fn a_vite_proxy_without_referer_does_not_loop_either() {
    let provider = TestProvider::builder().user(user()).start().await;
    let auth = provider
        .layer_builder("http://localhost:5173/auth/callback")
        .build()
        .await
        .expect("build");
    let app = app(&auth);
    let mut jar = Jar::default();
    let mut uri = "/auth/login?return_to=%2Fme".to_owned();
    let mut hops = Vec::new();
    for _ in 0..3 {
        let req = Request::get(&uri)
            .header(header::HOST, "localhost:3000")
            .header(header::ACCEPT, "text/html")
            .header("sec-fetch-mode", "navigate")
            .body(Body::empty())
            .unwrap();
        let resp = send(&app, &mut jar, req).await;
        assert_eq!(resp.status(), StatusCode::FOUND);
        let loc = location(&resp);
        hops.push(loc.clone());
        if loc.starts_with(provider.issuer()) {
            assert_eq!(hops.len(), 2, "one move, then the provider: {hops:?}");
            return;
        }
        let u = url::Url::parse(&loc).unwrap();
        uri = format!("{}?{}", u.path(), u.query().unwrap_or(""));
    }
    panic!("login through a proxy without Referer loops: {hops:?}");
}

/// Guard: the alias never applies when the redirect URL is not loopback (an https deployment),
/// whatever loopback name the request carries.
#[tokio::test]
async fn no_alias_move_when_the_redirect_url_is_not_loopback() {
    let provider = TestProvider::builder().user(user()).start().await;
    let auth = provider
        .layer_builder("https://app.example.com/auth/callback")
        .build()
        .await
        .expect("build");
    let app = app(&auth);
    for host in [
        "localhost:3000",
        "127.0.0.1",
        "[::1]:8080",
        "app.example.com",
    ] {
        let req = Request::get("/auth/login")
            .header(header::HOST, host)
            .header(header::ACCEPT, "text/html")
            .body(Body::empty())
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::FOUND, "{host}");
        assert!(
            location(&resp).starts_with(provider.issuer()),
            "{host}: moved: {}",
            location(&resp)
        );
    }
}

/// Guard: the move keeps the path and query byte for byte on the configured origin, one hop
/// only (the moved request, arriving on the right name, goes to the provider), and no odd query
/// (percent-encoded CR/LF, raw UTF-8, quotes, `@`, `#`-like) splits the Location header or
/// changes its authority.
#[tokio::test]
async fn the_alias_move_is_one_hop_and_keeps_the_target_inert() {
    let s = setup().await;
    for target in [
        "/auth/login?return_to=%2Fme",
        "/auth/login?a=%0D%0ALocation:%20https://evil.example",
        "/auth/login?a=\"'<>",
        "/auth/login?a=@evil.example:80",
        "/auth/login?a=%23@evil.example",
        "/auth/login?a=\u{e9}\u{202e}",
    ] {
        let req = Request::get(target)
            .header(header::HOST, "LOCALHOST:3000")
            .header(header::ACCEPT, "text/html")
            .body(Body::empty());
        let Ok(req) = req else { continue };
        let resp = s.app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::FOUND, "{target}");
        let locs: Vec<_> = resp.headers().get_all(header::LOCATION).iter().collect();
        assert_eq!(locs.len(), 1, "{target}");
        let loc = String::from_utf8_lossy(locs[0].as_bytes()).into_owned();
        let u = url::Url::parse(&loc).unwrap();
        assert_eq!(u.origin().ascii_serialization(), "http://127.0.0.1:3000");
        assert_eq!(u.path(), "/auth/login", "{loc}");
        // Second hop, on the right name: straight to the provider.
        let next = Request::get(format!("{}?{}", u.path(), u.query().unwrap_or("")))
            .header(header::HOST, "127.0.0.1:3000")
            .header(header::ACCEPT, "text/html")
            .body(Body::empty())
            .unwrap();
        let resp = s.app.clone().oneshot(next).await.unwrap();
        assert!(
            location(&resp).starts_with(s.provider.issuer()),
            "{target}: second move: {}",
            location(&resp)
        );
    }
}

// ---- 2. Provider error display -----------------------------------------------------------------

const LURE: &str = "Account locked. Call +1 555 0100";

fn has_lure(body: &str) -> bool {
    body.contains("555 0100") || body.contains("555%200100") || body.contains("555+0100")
}

/// Threat: content injection through the `error` code, which every error page shows ("Error
/// code from the identity provider: <code>...</code>") even on the login route and on a callback
/// with no login attempt, where anyone can write it. The login route's own comment says the
/// provider's words there are "logged, never shown: anyone can put any text in a link". An
/// `error` of up to 64 characters, spaces included, is enough for a fake support number under
/// the app's name. Not an OAuth error code (RFC 6749: a short token); it must not be shown as
/// one without this browser's own attempt.
#[tokio::test]
async fn a_forged_error_code_is_not_shown_as_text() {
    let s = setup().await;
    let e = urlencode(LURE);
    for uri in [
        format!("/auth/login?error={e}"),
        format!("/auth/callback?error={e}"),
        format!("/auth/callback?error={e}&state=forged-state-0123456789abcdef"),
    ] {
        let body = body_string(serve(&s.app, get_html(&uri)).await).await;
        assert!(!has_lure(&body), "{uri}: attacker text shown: {body}");
    }
}

/// Threat: bidi overrides and invisible characters (U+202E, U+2066..U+2069, U+200B, U+FEFF)
/// through the `error` code, shown without any attempt: they reorder or hide the page's text
/// ("Error code ... (lanigiro) ..."). Shown text should have them removed or escaped.
#[tokio::test]
async fn the_error_code_carries_no_bidi_or_invisible_characters() {
    let s = setup().await;
    for c in [
        '\u{202e}', '\u{2066}', '\u{2069}', '\u{200b}', '\u{feff}', '\u{61c}',
    ] {
        let code = format!("access{c}denied");
        for uri in [
            format!("/auth/login?error={}", urlencode(&code)),
            format!("/auth/callback?error={}", urlencode(&code)),
        ] {
            let body = body_string(serve(&s.app, get_html(&uri)).await).await;
            assert!(
                !body.contains(c),
                "{uri}: U+{:04X} shown raw on the page",
                c as u32
            );
        }
    }
}

/// Threat: the description shown for a transaction that is present but stale (older than the
/// login timeout, e.g. a browser that kept the cookie over a server clock jump): the code path
/// for stale attempts elsewhere treats it as no attempt, the error path still shows the text.
#[tokio::test]
async fn a_stale_attempt_does_not_show_the_description() {
    let s = setup().await;
    let mut jar = Jar::default();
    let state = login_attempt(&s.app, &mut jar).await;
    s.clock.advance(Duration::from_secs(601));
    let uri = format!(
        "/auth/callback?error=access_denied&error_description={}&state={state}",
        urlencode(LURE)
    );
    let body = body_string(send(&s.app, &mut jar, get_html(&uri)).await).await;
    assert!(
        !has_lure(&body),
        "description of a stale attempt shown: {body}"
    );
}

/// Guard: the description is not shown for a state that shares the transaction's cookie id
/// (its first characters) but not the whole state, for a replay of a used state, or for another
/// browser's state; it is shown (escaped, capped) for the browser's own live attempt.
#[tokio::test]
async fn the_description_needs_the_exact_live_state_of_this_browser() {
    let s = setup().await;
    let d = urlencode(LURE);

    // A state with the same cookie id, another tail.
    let mut jar = Jar::default();
    let state = login_attempt(&s.app, &mut jar).await;
    let mut forged = state.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let uri = format!("/auth/callback?error=x&error_description={d}&state={forged}");
    let body = body_string(send(&s.app, &mut jar, get_html(&uri)).await).await;
    assert!(!has_lure(&body), "same-id forged state: {body}");

    // The own live attempt: shown; its replay: not.
    let mut jar = Jar::default();
    let state = login_attempt(&s.app, &mut jar).await;
    let uri = format!("/auth/callback?error=x&error_description={d}&state={state}");
    let body = body_string(send(&s.app, &mut jar, get_html(&uri)).await).await;
    assert!(
        has_lure(&body),
        "own attempt: description not shown: {body}"
    );
    let body = body_string(send(&s.app, &mut jar, get_html(&uri)).await).await;
    assert!(!has_lure(&body), "replayed state: {body}");

    // Another browser's state, sent to a victim with its own attempt pending.
    let mut attacker = Jar::default();
    let theirs = login_attempt(&s.app, &mut attacker).await;
    let mut victim = Jar::default();
    let _mine = login_attempt(&s.app, &mut victim).await;
    let uri = format!("/auth/callback?error=x&error_description={d}&state={theirs}");
    let body = body_string(send(&s.app, &mut victim, get_html(&uri)).await).await;
    assert!(!has_lure(&body), "another browser's state: {body}");
}

/// Guard: the "Try again" link of a callback error carries the attempt's `return_to` only as
/// an escaped, encoded query of the login path; an attempt's return target cannot become
/// markup or another URL scheme.
#[tokio::test]
async fn the_try_again_link_stays_on_the_login_route() {
    let s = setup().await;
    for rt in [
        "/a\"><script>alert(1)</script>",
        "/a'onmouseover='alert(1)",
        "/x?y=1&z=\"2\"",
        "/%22%3E%3Cscript%3E",
    ] {
        let mut jar = Jar::default();
        let start = send(
            &s.app,
            &mut jar,
            get_html(&format!("/auth/login?return_to={}", urlencode(rt))),
        )
        .await;
        let q = query_of(&location(&start));
        let state = &values(&q, "state")[0];
        let uri = format!("/auth/callback?error=server_error&state={state}");
        let body = body_string(send(&s.app, &mut jar, get_html(&uri)).await).await;
        assert!(!body.contains("<script"), "{rt}: {body}");
        let hrefs: Vec<&str> = body
            .split("href=\"")
            .skip(1)
            .map(|r| &r[..r.find('"').unwrap()])
            .collect();
        for h in &hrefs {
            assert!(
                h.starts_with("/auth/login") || *h == "/",
                "{rt}: link {h} in {body}"
            );
            assert!(!h.contains('<') && !h.contains('\''), "{rt}: {h}");
        }
    }
}

// ---- 3. Stale/replayed callback with a session -------------------------------------------------

/// Guard: a signed-in browser's callback without its attempt goes to the default return only,
/// whatever the callback carries (`return_to`, `redirect_uri`, a `state` naming another site),
/// and never exchanges a code; a live attempt of this browser still completes.
#[tokio::test]
async fn the_stale_callback_redirect_is_not_steerable() {
    let s = setup().await;
    let (mut jar, _) = signed_in(&s).await;
    let tokens = s.provider.counts().token_requests;
    for uri in [
        "/auth/callback?code=x&state=x&return_to=https://evil.example/",
        "/auth/callback?code=x&state=https%3A%2F%2Fevil.example%2Fxxxxxxxxxxxxxxxxxx",
        "/auth/callback?code=x&redirect_uri=https://evil.example/&iss=https://evil.example",
        "/auth/callback?code=x&state=//evil.example/aaaaaaaaaaaaaaaaaaaaaaaaa",
        "/auth/callback",
    ] {
        let resp = send(&s.app, &mut jar, get_html(uri)).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "{uri}");
        assert_eq!(location(&resp), "/", "{uri}");
    }
    assert_eq!(
        s.provider.counts().token_requests,
        tokens,
        "a code was exchanged"
    );
}

/// Guard: a stale attempt (over the login timeout) carrying a fresh, valid code of this browser
/// does not complete a login even with a session present: no token request, the session stays.
#[tokio::test]
async fn a_valid_code_on_a_stale_attempt_does_not_sign_in_another_user() {
    let s = setup().await;
    let (mut jar, _) = signed_in(&s).await;
    s.provider.set_user(Some(
        tower_oidc_auth::testing::TestUser::new("usr_other").email("o@example.com"),
    ));
    let start = send(&s.app, &mut jar, get_html("/auth/login")).await;
    s.clock.advance(Duration::from_secs(601));
    // Keep the session usable.
    let _ = send(&s.app, &mut jar, get_json("/me")).await;
    let callback = authorize(&location(&start)).await;
    let tokens = s.provider.counts().token_requests;
    let resp = send(&s.app, &mut jar, get_html(&callback)).await;
    assert_eq!(
        s.provider.counts().token_requests,
        tokens,
        "stale code exchanged"
    );
    if resp.status() == StatusCode::FOUND {
        assert_eq!(location(&resp), "/");
    }
    let who = body_string(send(&s.app, &mut jar, get_json("/extract")).await).await;
    assert_ne!(
        who, "usr_other",
        "signed in as another user through a stale attempt"
    );
}

// ---- 4. Cookie keys ----------------------------------------------------------------------------

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

/// Threat: only the first 64 bytes of a cookie key are the key (`cookie::Key::try_from` copies
/// `key[..64]`), but the "made-up key" checks look at every byte. A key of 64 zero bytes (or
/// 64 bytes of typed text) followed by random bytes passes all three checks, and the cookies are
/// sealed with the zero key: anyone can open and forge every session.
#[test]
fn a_weak_first_64_bytes_hidden_behind_a_random_tail_is_refused() {
    let tail = random_bytes("tail", 64);
    let mut zeros = vec![0u8; 64];
    zeros.extend_from_slice(&tail);
    let mut text = b"my very own cookie key for the app, typed by hand, long enough!!".to_vec();
    text.extend_from_slice(&tail);
    let mut accepted = Vec::new();
    for (name, key) in [("zeros+tail", zeros), ("text+tail", text)] {
        if builder_with_key(&key).validate().is_ok() {
            accepted.push(name);
        }
    }
    assert!(accepted.is_empty(), "weak keys accepted: {accepted:?}");
}

/// Threat: weak 64-byte keys that slip past "16 distinct bytes, not all printable, not a
/// counting pattern": a repeated 0..16 run, zeros then a short count, a typed sentence with a
/// trailing newline (read from a file), a sentence with one accented letter, two alternating
/// halves, a hex string read from a file with its newline, every byte value 0..16 in a pattern
/// of period 17.
#[test]
fn weak_patterned_keys_are_refused() {
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    cases.push(("0..16 x4", (0u8..16).cycle().take(64).collect()));
    let mut z = vec![0u8; 48];
    z.extend(1u8..=16);
    cases.push(("zeros then 1..=16", z));
    let mut nl = b"my very own cookie key for the app, typed by hand, long enough!".to_vec();
    nl.push(b'\n');
    cases.push(("sentence + newline", nl));
    let accent = "my very own cookie key for the app, typed by hand, caf\u{e9} ok!!!!!"
        .as_bytes()
        .to_vec();
    cases.push(("sentence with an accent", accent));
    let mut hex = b"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff".to_vec();
    hex.push(b'\n');
    cases.push(("hex text + newline", hex));
    cases.push((
        "period 17",
        (0u8..17)
            .map(|b| b.wrapping_mul(37))
            .cycle()
            .take(64)
            .collect(),
    ));
    cases.push(("0..32 twice", (0u8..32).chain(0u8..32).collect()));
    let mut accepted = Vec::new();
    for (name, key) in &cases {
        assert!(key.len() >= 64, "{name}: {}", key.len());
        if builder_with_key(key).validate().is_ok() {
            accepted.push(*name);
        }
    }
    assert!(accepted.is_empty(), "weak keys accepted: {accepted:?}");
}

/// Guard (false positives): random keys of 64 to 200 bytes are all accepted (5000 of them), and
/// so are `testing::cookie_key` keys; short or empty keys are refused without a panic.
#[test]
fn random_keys_are_accepted_and_odd_lengths_do_not_panic() {
    let mut refused = Vec::new();
    for i in 0..5000u32 {
        let len = 64 + (i as usize % 137);
        let key = random_bytes(&format!("k{i}"), len);
        if let Err(e) = builder_with_key(&key).validate() {
            refused.push((i, len, e.to_string()));
        }
    }
    for seed in 0..=255u8 {
        let key = tower_oidc_auth::testing::cookie_key(seed);
        if let Err(e) = builder_with_key(&key).validate() {
            refused.push((u32::from(seed), 64, e.to_string()));
        }
    }
    assert!(
        refused.is_empty(),
        "random keys refused: {:?}",
        &refused[..refused.len().min(5)]
    );
    for len in [0usize, 1, 2, 31, 32, 63] {
        let key = random_bytes("short", len);
        let r = std::panic::catch_unwind(|| builder_with_key(&key).validate());
        match r {
            Ok(Err(_)) => {}
            Ok(Ok(())) => panic!("{len}-byte key accepted"),
            Err(_) => panic!("{len}-byte key panicked"),
        }
    }
}

const CHILD_MARK: &str = "TOWER_OIDC_ATTACK16_ENV_CHILD";

/// Run in a child process only: reads AUTH_COOKIE_KEY and prints what the builder made of it.
#[test]
fn mends_env_child() {
    if std::env::var_os(CHILD_MARK).is_none() {
        return;
    }
    let r = AuthLayerBuilder::new()
        .provider(Provider::scalekit("https://id.example.com"))
        .client_id("app")
        .client_secret("shh-secret-value")
        .redirect_url("https://app.example.com/auth/callback")
        .cookie_keys_from_env();
    match r {
        Err(e) => println!("ENV-RESULT err {e}"),
        Ok(b) => match b.validate() {
            Ok(()) => println!("ENV-RESULT ok"),
            Err(e) => println!("ENV-RESULT err {e}"),
        },
    }
}

fn key_from_env_in_child(value: &str) -> Result<(), String> {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "attack_newcomer_mends::mends_env_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MARK, "1")
        .env("AUTH_COOKIE_KEY", value)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("ENV-RESULT ").map(|(_, r)| r.to_owned()))
        .unwrap_or_else(|| {
            panic!(
                "no result: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    if line == "ok" {
        Ok(())
    } else {
        Err(line)
    }
}

/// Wraps base64 at 64 characters a line, as `openssl rand -base64 64` prints it.
fn wrapped(b64: &str, nl: &str) -> String {
    b64.as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(nl)
}

/// Threat (false positive): the documented way to make a key, `openssl rand -base64 64`, prints
/// 88 characters on two lines; `AUTH_COOKIE_KEY="$(openssl rand -base64 64)"` keeps the inner
/// newline (the shell strips only the trailing one), and `.env` files or Kubernetes secrets
/// made from the output keep it too. A strong random key, in the exact form the README and the
/// error message recommend, must be accepted.
#[test]
fn the_documented_openssl_key_is_accepted_from_the_environment() {
    let key = random_bytes("openssl", 64);
    let b64 = STANDARD.encode(&key);
    assert_eq!(b64.len(), 88);
    let mut refused = Vec::new();
    for (name, v) in [
        ("openssl two lines", wrapped(&b64, "\n")),
        ("openssl two lines CRLF", wrapped(&b64, "\r\n")),
    ] {
        if let Err(e) = key_from_env_in_child(&v) {
            refused.push(format!("{name}: {e}"));
        }
    }
    assert!(refused.is_empty(), "strong keys refused: {refused:?}");
}

/// Guard: base64 variants of a strong key (standard or URL-safe, padded or not, surrounding
/// whitespace, two keys separated by ", ") are accepted; the base64 of a weak key is refused.
#[test]
fn base64_variants_in_the_environment() {
    let key = random_bytes("variants", 66); // 66: padding matters
    let key2 = random_bytes("variants2", 64);
    let weak: Vec<u8> = (0u8..16).cycle().take(64).collect();
    for (name, v, ok) in [
        ("standard", STANDARD.encode(&key), true),
        ("standard no pad", STANDARD_NO_PAD.encode(&key), true),
        ("url safe", URL_SAFE.encode(&key), true),
        ("url safe no pad", URL_SAFE_NO_PAD.encode(&key), true),
        (
            "spaces around",
            format!("  {}\n", STANDARD.encode(&key)),
            true,
        ),
        (
            "two keys",
            format!("{}, {}", STANDARD.encode(&key), URL_SAFE.encode(&key2)),
            true,
        ),
        ("zero bytes", STANDARD.encode([0u8; 64]), false),
        ("text", STANDARD.encode([b'a'; 64]), false),
    ] {
        let r = key_from_env_in_child(&v);
        assert_eq!(r.is_ok(), ok, "{name}: {r:?}");
    }
    // Informational: a patterned key through the environment follows the builder's check.
    let _ = key_from_env_in_child(&STANDARD.encode(weak));
}

// ---- 5. Test provider redirect restriction -----------------------------------------------------

/// Guard: the test provider redirects only to loopback and reserved names. Look-alikes, suffix
/// tricks, userinfo, backslashes, punycode and full-width dots, IPv6 forms that are not `::1`,
/// and other schemes are refused at `/oauth/authorize`; reserved and loopback targets pass.
#[tokio::test]
async fn the_test_provider_redirects_only_to_reserved_or_loopback_hosts() {
    let provider = TestProvider::builder().user(user()).start().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let try_uri = |redirect_uri: &str| {
        let mut url = url::Url::parse(&format!("{}/oauth/authorize", provider.issuer())).unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", provider.client_id())
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("response_type", "code")
            .append_pair(
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            )
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", "s1")
            .append_pair("prompt", "none");
        url
    };
    let bad = [
        "https://example.com.evil.net/cb",
        "https://evilexample.com/cb",
        "https://example.com@evil.net/cb",
        "https://localhost@evil.net/cb",
        "http://localhost.evil.net/cb",
        "http://localhost%2eevil.net/cb",
        "http://localhost\u{3002}evil.net/cb",
        "http://127.0.0.1.nip.io/cb",
        "http://0.0.0.0/cb",
        "http://[::ffff:127.0.0.1]/cb",
        "http://[::]/cb",
        "http://evil.net\\@localhost/cb",
        "http://evil.net#@localhost/cb",
        "http://evil.net?.localhost/cb",
        "https://xn--exmple-cua.com/cb",
        "https://ex\u{430}mple.com/cb",
        "https://example.co/cb",
        "https://test.evil.net/cb",
        "https://evil.net/.example.com",
        "javascript://localhost/%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "file://localhost/etc/passwd",
        "ftp://localhost/cb",
        "ws://localhost/cb",
        "//localhost/cb",
        "/cb",
    ];
    let mut opened = Vec::new();
    for r in bad {
        let resp = client.get(try_uri(r)).send().await.unwrap();
        if let Some(loc) = resp.headers().get(header::LOCATION) {
            let loc = loc.to_str().unwrap_or("").to_owned();
            let host = url::Url::parse(&loc)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default();
            let reserved = host == "localhost"
                || host.ends_with(".localhost")
                || host == "127.0.0.1"
                || host == "[::1]"
                || host.ends_with(".example")
                || host.ends_with(".test")
                || host.ends_with(".invalid")
                || host == "example.com"
                || host.ends_with(".example.com");
            if !reserved || !(loc.starts_with("http://") || loc.starts_with("https://")) {
                opened.push(format!("{r} -> {} {loc}", resp.status()));
            }
        }
    }
    assert!(
        opened.is_empty(),
        "test provider redirected off reserved hosts: {opened:#?}"
    );
    for good in [
        "http://localhost:3000/cb",
        "http://LOCALHOST./cb",
        "http://127.0.0.2/cb",
        "http://[::1]:8080/cb",
        "https://app.example.com/cb",
        "https://app.example/cb",
        "https://a.test/cb",
        "http://app.localhost/cb",
    ] {
        let resp = client.get(try_uri(good)).send().await.unwrap();
        assert!(
            resp.headers().get(header::LOCATION).is_some(),
            "{good}: refused ({})",
            resp.status()
        );
    }
}
