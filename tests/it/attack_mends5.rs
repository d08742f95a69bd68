//! Fifth attack on the issue-16 mends (e0864c8, with 3c71845): the loopback move of the login
//! route and its sealed sign (`login_moved`), the stripping of that sign before the login's
//! query is parsed (`query_without_sign`), the typed-text checks of `AUTH_COOKIE_KEY`
//! (`typed()`) and the byte checks of every cookie key (`weakness()`).
//!
//! Each test asserts the secure (or correct) behaviour: a failing test shows a defect, a passing
//! one is a guard. Failing on e0864c8:
//! - `a_same_origin_login_keeps_its_choices_across_the_move`: the app's own login link on the
//!   other loopback name loses its tenant, hint and step-up parameters in the move;
//! - `trailing_dot_loopback_names_are_moved`: `localhost.` and `app.localhost.` are not moved;
//! - `keys_refused_as_text_are_refused_as_bytes`: typed keys the environment refuses pass when
//!   the app decodes the same text itself and hands the bytes to `cookie_key`;
//! - `typed_phrases_in_mixed_case_are_refused_from_the_environment`: CamelCase sentences and
//!   phrases with a counter pass `typed()` and the byte checks;
//! - `random_single_case_alphanumeric_keys_are_accepted`: `pwgen -s -A` / `tr -dc a-z0-9` /
//!   `tr -dc A-Z0-9` keys are refused as "words" about 1 time in 400.

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

fn is_move(resp: &Response<Body>) -> bool {
    resp.status() == StatusCode::FOUND
        && location_opt(resp).is_some_and(|l| l.starts_with(&format!("{OURS}/auth/login?")))
}

fn starts(s: &Setup, resp: &Response<Body>) -> bool {
    resp.status() == StatusCode::FOUND
        && location_opt(resp).is_some_and(|l| l.starts_with(s.provider.issuer()))
}

fn moved_uri(resp: &Response<Body>) -> String {
    location(resp)
        .strip_prefix(OURS)
        .expect("a move to our origin")
        .to_owned()
}

fn describe(resp: &Response<Body>) -> String {
    format!("{} {:?}", resp.status(), location_opt(resp))
}

/// The authorize request's parameters, without the random ones (state, nonce, PKCE).
fn authorize_params(resp: &Response<Body>) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = url::Url::parse(&location(resp))
        .unwrap()
        .query_pairs()
        .filter(|(k, _)| !["state", "nonce", "code_challenge"].contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    p.sort();
    p
}

fn has_param(resp: &Response<Body>, name: &str, value: &str) -> bool {
    authorize_params(resp)
        .iter()
        .any(|(k, v)| k == name && v == value)
}

// ---- 1. The loopback move ----------------------------------------------------------------------

/// Threat (the move changes the login's meaning): the app's own page on `localhost:3000` links
/// to `/auth/login?organization_id=..&login_hint=..&max_age=0` (switch organization, re-enter
/// the password). The browser sends `Sec-Fetch-Site: same-origin`, and where the redirect URL
/// lives that link starts a login into `org_2` with the hint and the step-up. On `localhost`
/// the login is moved first, and the browser follows the cross-site redirect to `127.0.0.1`
/// with `Sec-Fetch-Site: cross-site` (the redirect chain crossed sites) and a `Referer` of
/// `localhost`: the login route now sees a cross-site link and silently drops every
/// pass-through and step-up parameter. The user signs in, but into the default organization,
/// without the hint and without the fresh authentication the app asked for. The move knew the
/// request was the app's own (same-origin on the name it was asked on); it could carry that
/// (seal the choices as login options, or in the sign), but carries nothing.
#[tokio::test]
async fn a_same_origin_login_keeps_its_choices_across_the_move() {
    let s = setup().await;
    let uri = "/auth/login?organization_id=org_2&login_hint=ada%40example.com&max_age=0\
               &return_to=%2Fme";
    let own_page = |host: &str, uri: &str| {
        login_on(host, uri)
            .header("sec-fetch-site", "same-origin")
            .header("sec-fetch-mode", "navigate")
            .header("sec-fetch-dest", "document")
            .header(header::REFERER, format!("http://{host}/settings"))
            .body(Body::empty())
            .unwrap()
    };
    // Where the redirect URL lives, the app's own link chooses the organization.
    let direct = s
        .app
        .clone()
        .oneshot(own_page("127.0.0.1:3000", uri))
        .await
        .unwrap();
    assert!(starts(&s, &direct), "direct: {}", describe(&direct));
    assert!(has_param(&direct, "organization_id", "org_2"));
    assert!(has_param(&direct, "max_age", "0"));
    // The same link on `localhost`: moved, then followed as a browser follows a redirect.
    let moved = s
        .app
        .clone()
        .oneshot(own_page("localhost:3000", uri))
        .await
        .unwrap();
    assert!(is_move(&moved), "{}", describe(&moved));
    let followed = login_on("127.0.0.1:3000", &moved_uri(&moved))
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-dest", "document")
        .header(header::REFERER, "http://localhost:3000/")
        .body(Body::empty())
        .unwrap();
    let after = s.app.clone().oneshot(followed).await.unwrap();
    assert!(starts(&s, &after), "after the move: {}", describe(&after));
    let lost: Vec<&str> = [
        ("organization_id", "org_2"),
        ("login_hint", "ada@example.com"),
        ("max_age", "0"),
    ]
    .iter()
    .filter(|(k, v)| !has_param(&after, k, v))
    .map(|(k, _)| *k)
    .collect();
    assert!(
        lost.is_empty(),
        "the app's own choices lost in the move: {lost:?}; authorize request {:?}",
        authorize_params(&after)
    );
}

/// Threat (no move where the browser needs one): Chrome and Firefox treat a fully qualified
/// `localhost.` (and `app.localhost.`) as this machine, and the `Host` header keeps the dot.
/// Cookies set for host `localhost.` are not sent to `127.0.0.1`, so the first sign-in fails as
/// expired, as it did for `localhost` before the move. `url` keeps the dot in the domain, and
/// the check compares with `localhost` / `.localhost` exactly. Moving is as safe as for
/// `localhost` (the target is always the configured origin).
#[tokio::test]
async fn trailing_dot_loopback_names_are_moved() {
    let s = setup().await;
    let mut not_moved = Vec::new();
    for host in ["localhost.:3000", "app.localhost.:3000", "LocalHost.:3000"] {
        let resp = get_on(&s, host, "/auth/login?return_to=%2Fme").await;
        if !is_move(&resp) {
            not_moved.push(format!("{host}: {}", describe(&resp)));
        }
    }
    assert!(not_moved.is_empty(), "not moved: {not_moved:#?}");
}

/// Guard (parameter smuggling through the stripping): where the redirect URL lives, a login
/// with `login_moved` parts anywhere (valid sign, junk, empty, bare, percent-encoded name)
/// asks the provider for exactly what the same login without them asks for, lands on the same
/// `return_to`, and refuses what it refused: the stripping removes only parts the query parser
/// would read as `login_moved`, keeps every other part byte for byte, and joins nothing.
#[tokio::test]
async fn stripping_the_sign_changes_nothing_else() {
    let s = setup().await;
    let link = s.auth.login_url(
        LoginOptions::new()
            .return_to("/me")
            .max_age(Duration::from_secs(300)),
    );
    let sealed = link.split_once('?').unwrap().1.to_owned();
    let queries = [
        "return_to=%2Fme".to_owned(),
        "return_to=%2Fme&prompt=none".to_owned(),
        sealed.clone(),
        format!("{sealed}&return_to=%2Fadmin&organization_id=org_evil"),
        "return_to=%2Fme%26login_moved%3Dx".to_owned(),
        "return_to=%2Fx&login+moved=1".to_owned(),
        "return_to=%2Fx&LOGIN_MOVED=1&login_moved%00=2".to_owned(),
    ];
    let inserts = [
        "login_moved=junk",
        "login_moved",
        "login_moved=",
        "%6Cogin_moved=a%2Bb",
        "login%5Fmoved=x&login_moved=y",
    ];
    let mut bad = Vec::new();
    for q in &queries {
        let plain = get_on(&s, "127.0.0.1:3000", &format!("/auth/login?{q}")).await;
        assert!(starts(&s, &plain), "{q}: {}", describe(&plain));
        let want = authorize_params(&plain);
        for ins in inserts {
            for uri in [
                format!("/auth/login?{ins}&{q}"),
                format!("/auth/login?{q}&{ins}"),
            ] {
                let r = get_on(&s, "127.0.0.1:3000", &uri).await;
                if !starts(&s, &r) {
                    bad.push(format!("{uri}: {}", describe(&r)));
                } else if authorize_params(&r) != want {
                    bad.push(format!("{uri}: asks {:?}", authorize_params(&r)));
                }
            }
        }
    }
    // Still refused with the sign around: repeated, too many, too long, a provider error.
    let many: Vec<String> = (0..33).map(|i| format!("p{i}=1")).collect();
    let long = format!("pad={}", "a".repeat(8 * 1024));
    for q in [
        "return_to=%2Fa&login_moved=x&return_to=%2Fb".to_owned(),
        "return_to=%2Fa&login_moved=x&%72eturn_to=%2Fb".to_owned(),
        format!("login_moved=x&{}", many.join("&")),
        format!("{long}&login_moved=x"),
    ] {
        let r = get_on(&s, "127.0.0.1:3000", &format!("/auth/login?{q}")).await;
        if r.status() != StatusCode::BAD_REQUEST {
            bad.push(format!("{}..: {}", &q[..q.len().min(60)], describe(&r)));
        }
    }
    let r = get_on(
        &s,
        "127.0.0.1:3000",
        "/auth/login?login_moved=x&error=access_denied&login_moved=y",
    )
    .await;
    if r.status() != StatusCode::FORBIDDEN {
        bad.push(format!("provider error with signs: {}", describe(&r)));
    }
    let r = get_on(
        &s,
        "127.0.0.1:3000",
        "/auth/login?idp_initiated_login=not.a.jwt&login_moved=x&return_to=%2Fme",
    )
    .await;
    if r.status() != StatusCode::BAD_REQUEST {
        bad.push(format!("bad idp token with a sign: {}", describe(&r)));
    }
    assert!(bad.is_empty(), "{bad:#?}");
    // Through the whole flow: the sign does not change where the user lands.
    let mut jar = Jar::default();
    let cb = login(
        &s,
        &mut jar,
        "/auth/login?login_moved=x&return_to=%2Fme&login_moved",
    )
    .await;
    assert_eq!(location(&cb), "/me");
}

/// Guard (size and count limits): a flood of `login_moved` parts (3000 of them, 48 KiB) costs
/// no 500, is answered at once, and does not inflate the move's `Location`: the move keeps one
/// sign of its own, and the moved login starts.
#[tokio::test]
async fn a_flood_of_signs_is_harmless() {
    let s = setup().await;
    let flood: Vec<&str> = std::iter::repeat_n("login_moved=AAAAAAAAAAAAAAA", 1800).collect();
    let uri = format!("/auth/login?{}&return_to=%2Fme", flood.join("&"));
    assert!(uri.len() > 48 * 1024);
    let r = get_on(&s, "127.0.0.1:3000", &uri).await;
    assert!(starts(&s, &r), "ours: {}", describe(&r));
    let r = get_on(&s, "localhost:3000", &uri).await;
    assert!(is_move(&r), "localhost: {}", describe(&r));
    let loc = location(&r);
    assert!(loc.len() < 400, "Location of {} bytes", loc.len());
    let after = get_on(&s, "localhost:3000", &moved_uri(&r)).await;
    assert!(starts(&s, &after), "proxied: {}", describe(&after));
}

/// Guard (cross-host replay): a sign made on `localhost:3000` stops the move only on that
/// origin (the host name's case aside); on every other local name, port or address the login
/// is moved again, with a fresh sign; on the redirect URL's origin the login starts.
#[tokio::test]
async fn a_sign_is_honoured_only_on_the_origin_it_was_made_on() {
    let s = setup().await;
    let resp = get_on(&s, "localhost:3000", "/auth/login?return_to=%2Fme").await;
    assert!(is_move(&resp));
    let uri = moved_uri(&resp);
    let mut bad = Vec::new();
    for host in [
        "127.0.0.2:3000",
        "[::1]:3000",
        "0.0.0.0:3000",
        "[::]:3000",
        "app.localhost:3000",
        "localhost:3001",
        "localhost",
        "127.1:3001",
    ] {
        let r = get_on(&s, host, &uri).await;
        if !is_move(&r) {
            bad.push(format!("{host}: not moved: {}", describe(&r)));
        } else if moved_uri(&r) == uri {
            bad.push(format!("{host}: the same sign handed back"));
        }
    }
    for host in ["localhost:3000", "LOCALHOST:3000", "127.0.0.1:3000"] {
        let r = get_on(&s, host, &uri).await;
        if !starts(&s, &r) {
            bad.push(format!("{host}: {}", describe(&r)));
        }
    }
    // Parameters added after the sign make another target.
    let r = get_on(
        &s,
        "localhost:3000",
        &format!("{uri}&organization_id=org_evil"),
    )
    .await;
    if !is_move(&r) {
        bad.push(format!(
            "a parameter added beside the sign: {}",
            describe(&r)
        ));
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Guard (a cacheable or cookie-setting move): the move is a 302 with `no-store` and sets no
/// cookie, for GET and HEAD; other methods are refused as before.
#[tokio::test]
async fn the_move_is_not_stored_and_sets_nothing() {
    let s = setup().await;
    for method in ["GET", "HEAD"] {
        let req = Request::builder()
            .method(method)
            .uri("/auth/login?return_to=%2Fme")
            .header(header::HOST, "localhost:3000")
            .body(Body::empty())
            .unwrap();
        let r = s.app.clone().oneshot(req).await.unwrap();
        assert!(is_move(&r), "{method}: {}", describe(&r));
        assert_eq!(
            r.headers().get(header::CACHE_CONTROL).unwrap(),
            "no-store",
            "{method}"
        );
        assert!(r.headers().get(header::SET_COOKIE).is_none(), "{method}");
    }
    let req = Request::post("/auth/login?return_to=%2Fme")
        .header(header::HOST, "localhost:3000")
        .body(Body::empty())
        .unwrap();
    let r = s.app.clone().oneshot(req).await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// Guard (odd input, non-local names): hosts that are not this machine are never moved, with or
/// without a valid sign for a local name; odd `Host` values (zones, bad ports, userinfo, raw
/// bytes) never give a 500; the absolute-form URI's authority does not override `Host`.
#[tokio::test]
async fn odd_and_foreign_hosts_are_never_moved_and_never_fail() {
    let s = setup().await;
    let resp = get_on(&s, "localhost:3000", "/auth/login?return_to=%2Fme").await;
    let signed = moved_uri(&resp);
    let mut bad = Vec::new();
    let foreign = [
        "app.example.com",
        "localhost.example.com",
        "localhost-dev:3000",
        "mylocalhost:3000",
        "127.0.0.1.nip.io:3000",
        "192.168.1.5:3000",
        "10.0.0.1",
    ];
    let odd = [
        "[fe80::1%25eth0]:3000",
        "[::1",
        "localhost:-1",
        "localhost:3000:3000",
        "user:pw@localhost:3000",
        ".localhost:3000",
        "..localhost:3000",
        "a..localhost:3000",
    ];
    for host in foreign.iter().chain(&odd) {
        for uri in ["/auth/login?return_to=%2Fme", signed.as_str()] {
            let Ok(req) = login_on(host, uri).body(Body::empty()) else {
                continue;
            };
            let r = s.app.clone().oneshot(req).await.unwrap();
            if r.status().is_server_error() {
                bad.push(format!("{host:?} {uri}: {}", describe(&r)));
            }
            if foreign.contains(host) && !starts(&s, &r) {
                bad.push(format!("{host:?}: not started: {}", describe(&r)));
            }
            if !(starts(&s, &r) || is_move(&r) || location_opt(&r).is_none()) {
                bad.push(format!("{host:?}: elsewhere: {}", describe(&r)));
            }
        }
    }
    // Absolute-form request to a foreign authority with a local Host: the move still only goes
    // to the configured origin.
    let req = login_on(
        "localhost:3000",
        "http://evil.example/auth/login?return_to=%2Fme",
    )
    .body(Body::empty())
    .unwrap();
    let r = s.app.clone().oneshot(req).await.unwrap();
    if let Some(loc) = location_opt(&r) {
        let u = url::Url::parse(&loc).unwrap();
        if u.host_str() == Some("evil.example") {
            bad.push(format!("absolute form: {loc}"));
        }
    }
    // Raw bytes in the Host header.
    let mut req = login_on("x", "/auth/login").body(Body::empty()).unwrap();
    req.headers_mut().insert(
        header::HOST,
        http::HeaderValue::from_bytes(b"localhost\xff:3000").unwrap(),
    );
    let r = s.app.clone().oneshot(req).await.unwrap();
    if r.status().is_server_error() {
        bad.push(format!("raw bytes: {}", describe(&r)));
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Guard (a sign across the clock): a sign made just before the clock moves forward by its
/// life stops no move, and one made now is not honoured by a layer whose clock is far behind
/// (two instances, one with a bad clock, behind one dev proxy).
#[tokio::test]
async fn a_sign_does_not_outlive_its_minute() {
    let s = setup().await;
    let resp = get_on(&s, "localhost:3000", "/auth/login").await;
    let uri = moved_uri(&resp);
    s.clock.advance(Duration::from_secs(59));
    assert!(starts(&s, &get_on(&s, "localhost:3000", &uri).await));
    s.clock.advance(Duration::from_secs(2));
    let r = get_on(&s, "localhost:3000", &uri).await;
    assert!(is_move(&r), "at 61 s: {}", describe(&r));
    // The fresh move's sign works, and the old one is still refused.
    let fresh = moved_uri(&r);
    assert!(starts(&s, &get_on(&s, "localhost:3000", &fresh).await));
    assert!(is_move(&get_on(&s, "localhost:3000", &uri).await));
}

// ---- 2. Cookie keys ----------------------------------------------------------------------------

fn builder_with_key(key: &[u8]) -> AuthLayerBuilder {
    AuthLayerBuilder::new()
        .provider(Provider::scalekit("https://id.example.com"))
        .client_id("app")
        .client_secret("shh-secret-value")
        .redirect_url("https://app.example.com/auth/callback")
        .cookie_key(key)
}

/// `n` pseudo-random bytes: SHA-256 of a label and a counter.
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

/// `n` characters drawn uniformly from `alphabet` (rejection sampling on random bytes).
fn random_text(label: &str, alphabet: &[u8], n: usize) -> String {
    let limit = 256 - 256 % alphabet.len();
    random_bytes(label, n * 4)
        .into_iter()
        .filter(|b| usize::from(*b) < limit)
        .take(n)
        .map(|b| alphabet[usize::from(b) % alphabet.len()] as char)
        .collect()
}

fn repeated(text: &str, len: usize) -> String {
    text.chars().cycle().take(len).collect()
}

const CHILD_MARK: &str = "TOWER_OIDC_ATTACK_MENDS5_CHILD";
const CHILD_FILE: &str = "TOWER_OIDC_ATTACK_MENDS5_FILE";

/// Run in a child process only: reads the values (a JSON list in the file `CHILD_FILE` names),
/// and for each sets `AUTH_COOKIE_KEY`, reads it with `cookie_keys_from_env`, validates, and
/// prints the result.
#[test]
fn mends5_env_child() {
    if std::env::var_os(CHILD_MARK).is_none() {
        return;
    }
    let path = std::env::var(CHILD_FILE).unwrap();
    let values: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for (i, value) in values.iter().enumerate() {
        std::env::set_var("AUTH_COOKIE_KEY", value);
        let r = std::panic::catch_unwind(|| {
            builder_with_key(&random_bytes("first", 64))
                .cookie_keys_from_env()
                .and_then(|b| b.validate().map(|()| b))
        });
        let line = match r {
            Err(_) => "panic".to_owned(),
            Ok(Err(e)) => format!("err {e}"),
            Ok(Ok(_)) => "ok".to_owned(),
        };
        println!("ENV-RESULT {i} {}", line.replace('\n', " "));
    }
}

/// What `AUTH_COOKIE_KEY` makes of each value, in a child process: `Ok(())` or the reason.
fn keys_from_env(label: &str, values: &[String]) -> Vec<Result<(), String>> {
    let file =
        std::env::temp_dir().join(format!("attack-mends5-{label}-{}.json", std::process::id()));
    std::fs::write(&file, serde_json::to_string(values).unwrap()).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "attack_mends5::mends5_env_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MARK, "1")
        .env(CHILD_FILE, &file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut results = vec![Err("no result".to_owned()); values.len()];
    for line in stdout.lines() {
        let Some((_, rest)) = line.split_once("ENV-RESULT ") else {
            continue;
        };
        let (i, r) = rest.split_once(' ').unwrap();
        let i: usize = i.parse().unwrap();
        results[i] = if r == "ok" { Ok(()) } else { Err(r.to_owned()) };
    }
    results
}

/// Typed keys of the kind `typed()` refuses from the environment (a phrase repeated with a
/// period beyond the byte checks, a sentence in one letter case).
fn typed_texts() -> Vec<String> {
    vec![
        repeated("supersecretdevelopmentkey", 88),
        repeated("thisisnotasecretkeyforproductionuse", 88),
        repeated("ChangeMeInProduction1", 88),
        repeated("CorrectHorseBatteryStaple", 88),
        "Loremipsumdolorsitametconsecteturadipiscingelitseddoeiusmodtemporincididuntutlaboreetdolore"[..88].to_owned(),
    ]
}

/// Threat (weak key accepted, by the other door): the checks of the text (`typed()`) run only
/// when the key comes through `AUTH_COOKIE_KEY`. An app that reads its own variable (or a
/// secrets manager) and decodes the base64 itself, `.cookie_key(STANDARD.decode(text)?)`, hands
/// over bytes whose base64 is exactly that typed text, and the byte checks see nothing (the
/// periods are 63 to 105 bytes, the bytes of base64 letters look random). The very key the
/// environment refuses is accepted. The builder has the text back for free
/// (`STANDARD.encode(key)`): the same check could run on it.
#[test]
fn keys_refused_as_text_are_refused_as_bytes() {
    let texts = typed_texts();
    let from_env = keys_from_env("typed", &texts);
    let mut bad = Vec::new();
    for (text, env) in texts.iter().zip(&from_env) {
        assert!(
            env.is_err(),
            "{text}: the environment accepts it: not this test's case"
        );
        let bytes = STANDARD.decode(text).unwrap();
        assert_eq!(STANDARD.encode(&bytes), *text);
        if builder_with_key(&bytes).validate().is_ok() {
            bad.push(format!(
                "{text}: refused from the environment, accepted as bytes"
            ));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Threat (weak key accepted): `typed()` catches a phrase repeated exactly and text that is
/// 85 % one letter case. A person typing "88 characters of base64" writes CamelCase (about 20 %
/// capitals) or adds a counter to a phrase (`Password1Password2..`, `ChangeMe0ChangeMe1..`):
/// no exact period, no single case, and decoded, the bytes pass every byte check. These keys
/// hold a few dozen bits at best. Random base64 of 88 characters shows about 48 different
/// characters (fewer than 29 with odds about 1e-13); these show 15 to 31.
#[test]
fn typed_phrases_in_mixed_case_are_refused_from_the_environment() {
    let values: Vec<String> = [
        "ThisIsTheCookieKeyForMyDevelopmentServerPleaseDoNotUseItInProductionBecauseItIsNotRandom",
        "LoremIpsumDolorSitAmetConsecteturAdipiscingElitSedDoEiusmodTemporIncididuntUtLaboreEtDolo",
        "Password1Password2Password3Password4Password5Password6Password7Password8Password9Passwor",
        "ChangeMe0ChangeMe1ChangeMe2ChangeMe3ChangeMe4ChangeMe5ChangeMe6ChangeMe7ChangeMe8ChangeMe",
        "MyAppSecretKey1MyAppSecretKey2MyAppSecretKey3MyAppSecretKey4MyAppSecretKey5MyAppSecretKe",
    ]
    .iter()
    .map(|t| t[..88].to_owned())
    .collect();
    let results = keys_from_env("mixed", &values);
    let accepted: Vec<&String> = values
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .map(|(v, _)| v)
        .collect();
    for (v, r) in values.iter().zip(&results) {
        if let Err(e) = r {
            assert!(!e.contains("panic") && e != "no result", "{v}: {e}");
        }
    }
    assert!(accepted.is_empty(), "weak keys accepted: {accepted:#?}");
}

/// Threat (strong keys refused, with a misleading reason): tools that print random lowercase
/// (or uppercase) letters and digits, `pwgen -s -A 88`, `tr -dc a-z0-9 </dev/urandom | head -c
/// 88`, `tr -dc A-Z0-9 ..`, give 88 characters of about 455 bits, valid base64 (the earlier
/// attack's guard accepts their mixed-case form). Letters are 72 % of such text, so "85 % one
/// letter case" hits about 1 key in 400 (binomial tail at 75 of 88, p = 26/36; 6 of these 3000): refused as "is
/// words, not the base64 of random bytes". The `typed()` comment's odds (10^-13) hold only for
/// the base64 of random bytes.
#[test]
fn random_single_case_alphanumeric_keys_are_accepted() {
    const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut values = Vec::new();
    for i in 0..1500 {
        values.push(random_text(&format!("lower{i}"), LOWER, 88));
        values.push(random_text(&format!("upper{i}"), UPPER, 88));
    }
    let results = keys_from_env("alnum", &values);
    let refused: Vec<String> = values
        .iter()
        .zip(&results)
        .filter_map(|(v, r)| r.as_ref().err().map(|e| format!("{v}: {e}")))
        .collect();
    assert!(
        refused.is_empty(),
        "{} of {} strong keys refused, e.g. {:#?}",
        refused.len(),
        values.len(),
        &refused[..refused.len().min(3)]
    );
}

/// Guard (false positives): the base64 of random bytes as real tools print it (`openssl rand
/// -base64 64` and 96, wrapped; Python `secrets.token_urlsafe(64)`; Node
/// `randomBytes(64).toString('base64')`; URL-safe with padding) passes, from the environment
/// and as bytes: 1200 keys.
#[test]
fn random_base64_keys_from_real_tools_are_accepted() {
    let mut values = Vec::new();
    let mut bytes = Vec::new();
    for i in 0..200 {
        let k64 = random_bytes(&format!("k64-{i}"), 64);
        let k96 = random_bytes(&format!("k96-{i}"), 96);
        let b64 = STANDARD.encode(&k64);
        let wrapped: Vec<String> = STANDARD
            .encode(&k96)
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        values.push(b64);
        values.push(wrapped.join("\n"));
        values.push(URL_SAFE_NO_PAD.encode(&k64));
        values.push(base64::engine::general_purpose::URL_SAFE.encode(&k96));
        bytes.push(k64);
        bytes.push(k96);
    }
    let results = keys_from_env("b64", &values);
    let mut refused: Vec<String> = values
        .iter()
        .zip(&results)
        .filter_map(|(v, r)| r.as_ref().err().map(|e| format!("{v}: {e}")))
        .collect();
    for k in &bytes {
        if let Err(e) = builder_with_key(k).validate() {
            refused.push(format!("bytes: {e}"));
        }
    }
    assert!(
        refused.is_empty(),
        "{:#?}",
        &refused[..refused.len().min(3)]
    );
}

/// Guard (weak keys that are caught): base64 of a text passphrase (decoded: text), of zeros, of
/// a counting sequence; hex of any length; a key whose two halves are equal; a random half beside
/// a constant one: each refused, from the environment and as bytes where the bytes show it.
#[test]
fn plainly_weak_keys_are_refused() {
    let passphrase = STANDARD
        .encode("my very long secret passphrase for the cookie key of my app, do not share it!!!");
    let zeros = STANDARD.encode([0u8; 64]);
    let counting = STANDARD.encode((0u8..64).collect::<Vec<_>>());
    let hex: String = random_bytes("hex", 64)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let half = random_bytes("half", 32);
    let doubled = STANDARD.encode([half.clone(), half.clone()].concat());
    let one_weak_half = STANDARD.encode([half.clone(), vec![7u8; 32]].concat());
    let values = vec![passphrase, zeros, counting, hex, doubled, one_weak_half];
    let results = keys_from_env("weak", &values);
    let accepted: Vec<&String> = values
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .map(|(v, _)| v)
        .collect();
    assert!(accepted.is_empty(), "weak keys accepted: {accepted:#?}");
    for v in &values[..3] {
        let b = STANDARD.decode(v).unwrap();
        assert!(builder_with_key(&b).validate().is_err(), "as bytes: {v}");
    }
    for v in &values[4..] {
        let b = STANDARD.decode(v).unwrap();
        assert!(builder_with_key(&b).validate().is_err(), "as bytes: {v}");
    }
}
