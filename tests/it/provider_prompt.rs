//! The TestProvider's authorize endpoint honours `prompt=none`, `max_age` and `acr_values`, and
//! its ID tokens carry `auth_time` (and `acr` when one was asked for).

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::StatusCode;
use serde_json::{Map, Value};
use tower_oidc_auth::testing::TestProvider;
use tower_oidc_auth::Clock;

use crate::helpers::*;

/// Starts a login at the app and returns the provider's authorize URL with `extra` appended.
async fn authorize_url(s: &Setup, jar: &mut Jar, extra: &str) -> String {
    let resp = send(&s.app, jar, get_html("/auth/login")).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    format!("{}{extra}", location(&resp))
}

/// The claims of the last ID token the provider issued (the only tokens with `auth_time`).
fn last_id_token(provider: &TestProvider) -> Map<String, Value> {
    provider
        .issued_secrets()
        .iter()
        .rev()
        .filter_map(|t| {
            let payload = t.split('.').nth(1)?;
            let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
            serde_json::from_slice::<Map<String, Value>>(&bytes).ok()
        })
        .find(|claims| claims.contains_key("auth_time"))
        .expect("an ID token was issued")
}

/// One login attempt in a fresh browser that carries the provider cookie `sso`: the callback
/// path+query, the provider cookie set (if any), and the browser's jar.
async fn attempt(s: &Setup, extra: &str, sso: Option<&str>) -> (String, Option<String>, Jar) {
    let mut jar = Jar::default();
    let url = authorize_url(s, &mut jar, extra).await;
    let (callback, set) = authorize_with(&url, sso).await;
    (callback, set, jar)
}

/// Completes the login at the app with this callback; asserts it signed the browser in.
async fn finish(s: &Setup, jar: &mut Jar, callback: &str) {
    let resp = send(&s.app, jar, get_html(callback)).await;
    assert_eq!(resp.status(), StatusCode::FOUND, "callback {callback}");
    assert_eq!(me(s, jar).await, StatusCode::OK);
}

/// The error, state and iss of a callback path+query.
fn callback_error(callback: &str) -> (Option<String>, Option<String>, Option<String>) {
    let pairs = query_of(&format!("http://x{callback}"));
    let one = |name: &str| values(&pairs, name).into_iter().next();
    (one("error"), one("state"), one("iss"))
}

#[tokio::test]
async fn prompt_none_without_a_provider_session_answers_login_required() {
    // A configured user stands for an interactive login: prompt=none must not use it.
    let s = setup().await;
    let mut jar = Jar::default();
    let url = authorize_url(&s, &mut jar, "&prompt=none").await;
    let sent_state = values(&query_of(&url), "state").remove(0);
    let (callback, sso) = authorize_with(&url, None).await;
    assert!(callback.starts_with("/auth/callback?"), "{callback}");
    let (error, state, iss) = callback_error(&callback);
    assert_eq!(error.as_deref(), Some("login_required"));
    assert_eq!(state, Some(sent_state));
    assert_eq!(iss.as_deref(), Some(s.provider.issuer()));
    assert!(sso.is_none(), "no provider session was started");
    assert_eq!(s.provider.counts().code_grants, 0);
}

#[tokio::test]
async fn prompt_none_with_a_provider_session_issues_a_code() {
    let s = setup().await;
    let mut jar = Jar::default();
    let url = authorize_url(&s, &mut jar, "").await;
    let (callback, sso) = authorize_with(&url, None).await;
    let sso = sso.expect("the provider set its session cookie");
    finish(&s, &mut jar, &callback).await;
    let first = last_id_token(&s.provider);

    let (callback, set, mut jar) = attempt(&s, "&prompt=none", Some(&sso)).await;
    assert_eq!(callback_error(&callback).0, None, "{callback}");
    assert!(set.is_none(), "the session was reused, not restarted");
    finish(&s, &mut jar, &callback).await;
    let second = last_id_token(&s.provider);
    assert_eq!(second["sid"], first["sid"]);
    assert_eq!(second["auth_time"], first["auth_time"]);
}

#[tokio::test]
async fn max_age_exceeded_reauthenticates_with_a_fresh_auth_time() {
    let s = setup().await;
    let t0 = s.clock.now();
    let mut jar = Jar::default();
    let url = authorize_url(&s, &mut jar, "").await;
    let (callback, sso) = authorize_with(&url, None).await;
    let sso = sso.unwrap();
    finish(&s, &mut jar, &callback).await;
    assert_eq!(last_id_token(&s.provider)["auth_time"], t0);

    s.clock.advance(Duration::from_secs(100));
    // Recent enough: single sign-on, the original auth_time.
    let (callback, set, mut jar) = attempt(&s, "&max_age=3600", Some(&sso)).await;
    assert!(set.is_none());
    finish(&s, &mut jar, &callback).await;
    assert_eq!(last_id_token(&s.provider)["auth_time"], t0);

    // Too old for prompt=none: login_required.
    let (callback, _, _) = attempt(&s, "&max_age=30&prompt=none", Some(&sso)).await;
    assert_eq!(
        callback_error(&callback).0.as_deref(),
        Some("login_required")
    );

    // Too old: the user signs in again, now.
    let (callback, set, mut jar) = attempt(&s, "&max_age=30", Some(&sso)).await;
    assert!(
        set.is_some(),
        "a new authentication, a new provider session"
    );
    finish(&s, &mut jar, &callback).await;
    assert_eq!(last_id_token(&s.provider)["auth_time"], t0 + 100);
}

#[tokio::test]
async fn refreshed_id_tokens_keep_the_original_auth_time() {
    let s = setup().await;
    let t0 = s.clock.now();
    let mut jar = Jar::default();
    let url = authorize_url(&s, &mut jar, "").await;
    let (callback, _) = authorize_with(&url, None).await;
    finish(&s, &mut jar, &callback).await;
    s.clock.advance(Duration::from_secs(2 * 3600));
    assert_eq!(me(&s, &mut jar).await, StatusCode::OK);
    assert_eq!(
        s.provider.counts().refresh_grants,
        1,
        "the session was refreshed"
    );
    let refreshed = last_id_token(&s.provider);
    assert!(refreshed["iat"].as_i64().unwrap() >= t0 + 2 * 3600);
    assert_eq!(refreshed["auth_time"], t0);
}

#[tokio::test]
async fn acr_values_set_acr_and_the_session_keeps_it() {
    let s = setup().await;
    let mut jar = Jar::default();
    let url = authorize_url(&s, &mut jar, "&acr_values=gold%20silver").await;
    let (callback, sso) = authorize_with(&url, None).await;
    let sso = sso.unwrap();
    finish(&s, &mut jar, &callback).await;
    assert_eq!(last_id_token(&s.provider)["acr"], "gold");

    // Single sign-on without acr_values: the session's acr.
    let (callback, set, mut jar) = attempt(&s, "", Some(&sso)).await;
    assert!(set.is_none());
    finish(&s, &mut jar, &callback).await;
    assert_eq!(last_id_token(&s.provider)["acr"], "gold");

    // Another class: silently impossible, so a new authentication sets it.
    let (callback, _, _) = attempt(&s, "&acr_values=platinum&prompt=none", Some(&sso)).await;
    assert_eq!(
        callback_error(&callback).0.as_deref(),
        Some("login_required")
    );
    let (callback, set, mut jar) = attempt(&s, "&acr_values=platinum", Some(&sso)).await;
    assert!(set.is_some());
    finish(&s, &mut jar, &callback).await;
    assert_eq!(last_id_token(&s.provider)["acr"], "platinum");
}

#[tokio::test]
async fn without_acr_values_id_tokens_carry_no_acr() {
    let s = setup().await;
    let mut jar = Jar::default();
    let url = authorize_url(&s, &mut jar, "").await;
    let (callback, _) = authorize_with(&url, None).await;
    finish(&s, &mut jar, &callback).await;
    let claims = last_id_token(&s.provider);
    assert!(!claims.contains_key("acr"));
    assert!(claims.contains_key("auth_time"));
}
