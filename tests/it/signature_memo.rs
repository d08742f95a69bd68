//! The signature memo: tokens beyond the verified-token cache are served without a new signature
//! check, and still refused when their key was withdrawn, when they expired, or when their
//! session was revoked. Nothing a client sends can write an entry. Caches of one entry, so every
//! token but the last one seen is served from the memo.

use std::time::Duration;

use http::StatusCode;
use serde_json::json;
use tower_oidc_auth::testing::{TestProvider, TestUser};
use tower_oidc_auth::{Clock, RevocationKey};

use crate::helpers::*;

/// A layer whose bearer-token cache holds one entry, and whose verified-session cache has its
/// default size: sessions are served from that cache.
async fn session_cache() -> Setup {
    setup_with(|c| c.verified_cache_capacity(1)).await
}

/// Requests every session once, then once more (the second round is served from the memo).
async fn serve_all(s: &Setup, cookies: &[String]) {
    for _ in 0..2 {
        for c in cookies {
            assert_eq!(status(&s.app, c).await, StatusCode::OK);
        }
    }
}

#[tokio::test]
async fn sessions_are_remembered_beyond_the_token_cache() {
    let s = session_cache().await;
    let cookies: Vec<String> = (0..5).map(|i| session_of(&s, &format!("u{i}"))).collect();
    serve_all(&s, &cookies).await;
    let stats = s.auth.cache_stats();
    assert_eq!(stats.sessions, 5, "{stats:?}");
    assert!(stats.verified_tokens <= 1, "{stats:?}");
}

/// The verified-session cache is keyed by a digest of the whole sealed value: a cookie that
/// differs from a cached one in any position is opened (and refused) on its own.
#[tokio::test]
async fn an_altered_cookie_never_hits_the_session_cache() {
    let s = session_cache().await;
    let good = session_of(&s, "victim");
    assert_eq!(status(&s.app, &good).await, StatusCode::OK);
    assert_eq!(status(&s.app, &good).await, StatusCode::OK);
    assert_eq!(s.auth.cache_stats().sessions, 1);
    // The session cookie comes first; the rest (the ID token's) is kept as it is.
    let (session, rest) = good.split_once("; ").unwrap_or((&good, ""));
    let rest = if rest.is_empty() {
        String::new()
    } else {
        format!("; {rest}")
    };
    let (name, value) = session.split_once('=').unwrap();
    let len = value.len();
    let swap = |c: u8| if c == b'A' { 'B' } else { 'A' };
    for at in [0, 1, len / 2, len - 30, len - 2, len - 1] {
        let mut altered = value.as_bytes().to_vec();
        altered[at] = swap(altered[at]) as u8;
        let altered = format!("{name}={}{rest}", String::from_utf8(altered).unwrap());
        assert_eq!(
            status(&s.app, &altered).await,
            StatusCode::UNAUTHORIZED,
            "byte {at} of {len} altered"
        );
    }
    for cut in [1, 16, len / 2] {
        let cut = format!("{name}={}{rest}", &value[..len - cut]);
        assert_eq!(status(&s.app, &cut).await, StatusCode::UNAUTHORIZED);
        let longer = format!("{name}={value}{}{rest}", &value[..cut.len().min(4)]);
        assert_eq!(status(&s.app, &longer).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(s.auth.cache_stats().sessions, 1, "nothing new remembered");
    assert_eq!(status(&s.app, &good).await, StatusCode::OK);
}

#[tokio::test]
async fn sessions_beyond_the_cache_are_served_from_the_memo() {
    let s = tiny_caches().await;
    let cookies: Vec<String> = (0..5).map(|i| session_of(&s, &format!("u{i}"))).collect();
    serve_all(&s, &cookies).await;
    let stats = s.auth.cache_stats();
    assert!(
        stats.verified_tokens <= 1 && stats.sessions <= 1,
        "{stats:?}"
    );
    assert_eq!(stats.signature_memo, 5, "one entry per token, made once");
}

#[tokio::test]
async fn a_memoized_token_whose_key_was_withdrawn_is_refused() {
    a_memoized_token_whose_key_was_withdrawn_is_refused_with(tiny_caches().await).await;
}

/// The same, served from the verified-session cache (sessions) instead of the memo.
#[tokio::test]
async fn a_cached_session_whose_key_was_withdrawn_is_refused_in_the_session_cache() {
    a_memoized_token_whose_key_was_withdrawn_is_refused_with(session_cache().await).await;
}

async fn a_memoized_token_whose_key_was_withdrawn_is_refused_with(s: Setup) {
    let cookies: Vec<String> = (0..3).map(|i| session_of(&s, &format!("u{i}"))).collect();
    let bearers: Vec<String> = (0..3)
        .map(|i| s.provider.access_token(&TestUser::new(format!("api{i}"))))
        .collect();
    serve_all(&s, &cookies).await;
    for b in &bearers {
        assert_eq!(with_bearer(&s.app, b).await, StatusCode::OK);
    }
    assert_eq!(memo_len(&s.auth), 6);

    // The provider withdraws its key and signs with a new one; a token with the new kid makes
    // the layer fetch the key set again.
    s.provider.rotate_keys(true);
    let fresh = s.provider.access_token(&TestUser::new("new"));
    assert_eq!(with_bearer(&s.app, &fresh).await, StatusCode::OK);

    for c in &cookies {
        assert_eq!(status(&s.app, c).await, StatusCode::UNAUTHORIZED);
    }
    for b in &bearers {
        assert_eq!(with_bearer(&s.app, b).await, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn a_memoized_token_whose_key_material_was_replaced_is_refused() {
    a_memoized_token_whose_key_material_was_replaced_is_refused_with(tiny_caches().await).await;
}

/// The same, served from the verified-session cache (sessions) instead of the memo.
#[tokio::test]
async fn a_cached_session_whose_key_material_was_replaced_is_refused_in_the_session_cache() {
    a_memoized_token_whose_key_material_was_replaced_is_refused_with(session_cache().await).await;
}

async fn a_memoized_token_whose_key_material_was_replaced_is_refused_with(s: Setup) {
    let cookies: Vec<String> = (0..3).map(|i| session_of(&s, &format!("u{i}"))).collect();
    serve_all(&s, &cookies).await;

    // Another key under the same kid; a token naming an unknown kid triggers the refetch.
    s.provider.replace_key_material();
    let now = s.clock.now();
    let probe = s.provider.sign_with_header(
        &json!({"alg": "RS256", "typ": "JWT", "kid": "probe"}),
        &json!({"iss": s.provider.issuer(), "aud": "test-client", "sub": "x", "iat": now,
                "exp": now + 60}),
    );
    assert_eq!(with_bearer(&s.app, &probe).await, StatusCode::UNAUTHORIZED);
    for c in &cookies {
        assert_eq!(status(&s.app, c).await, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn a_memoized_token_that_expired_is_refused() {
    a_memoized_token_that_expired_is_refused_with(tiny_caches().await).await;
}

/// The same, served from the verified-session cache (sessions) instead of the memo.
#[tokio::test]
async fn a_cached_session_that_expired_is_refused_in_the_session_cache() {
    a_memoized_token_that_expired_is_refused_with(session_cache().await).await;
}

async fn a_memoized_token_that_expired_is_refused_with(s: Setup) {
    let cookies: Vec<String> = (0..3).map(|i| session_of(&s, &format!("u{i}"))).collect();
    let bearers: Vec<String> = (0..3)
        .map(|i| s.provider.access_token(&TestUser::new(format!("api{i}"))))
        .collect();
    serve_all(&s, &cookies).await;
    for b in &bearers {
        assert_eq!(with_bearer(&s.app, b).await, StatusCode::OK);
    }
    // Past the access tokens' lifetime (one hour) and the leeway.
    s.clock.advance(Duration::from_secs(3600 + 120));
    for c in &cookies {
        assert_eq!(status(&s.app, c).await, StatusCode::UNAUTHORIZED);
    }
    for b in &bearers {
        assert_eq!(with_bearer(&s.app, b).await, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn revocation_applies_to_memoized_sessions_and_bearer_tokens() {
    revocation_applies_to_memoized_sessions_and_bearer_tokens_with(tiny_caches().await).await;
}

/// The same, served from the verified-session cache (sessions) instead of the memo.
#[tokio::test]
async fn revocation_applies_to_cached_sessions_and_bearer_tokens_in_the_session_cache() {
    revocation_applies_to_memoized_sessions_and_bearer_tokens_with(session_cache().await).await;
}

async fn revocation_applies_to_memoized_sessions_and_bearer_tokens_with(s: Setup) {
    let cookies: Vec<String> = (0..3).map(|i| session_of(&s, &format!("u{i}"))).collect();
    let bearer = s.provider.access_token(&TestUser::new("u0"));
    serve_all(&s, &cookies).await;
    assert_eq!(with_bearer(&s.app, &bearer).await, StatusCode::OK);
    assert_eq!(status(&s.app, &cookies[2]).await, StatusCode::OK);

    // The user u0 is revoked (say, by a back-channel logout naming the subject).
    s.clock.advance(Duration::from_secs(1));
    s.auth
        .revocation_store()
        .revoke(
            RevocationKey::subject(s.provider.issuer(), "u0"),
            s.clock.now(),
            Duration::from_secs(86_400),
        )
        .await
        .unwrap();
    assert_eq!(status(&s.app, &cookies[0]).await, StatusCode::UNAUTHORIZED);
    assert_eq!(with_bearer(&s.app, &bearer).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(&s.app, &cookies[1]).await, StatusCode::OK);
}

#[tokio::test]
async fn forged_cookies_and_tokens_write_no_memo_entry() {
    let s = tiny_caches().await;
    let user = TestUser::new("victim");
    let good = s.provider.access_token(&user);
    let (signed, _) = good.rsplit_once('.').unwrap();
    let forged = format!("{signed}.AAAA");
    let id = s.provider.id_token(&user, None);

    // A cookie sealed by another layer's key (what a forger can make) does not open: refused
    // before any token is looked at.
    let other = TestProvider::start().await;
    let foreign_auth = other.layer_builder(REDIRECT).build().await.unwrap();
    let foreign = other.session_cookie_with_tokens(&foreign_auth, &good, None, &id);
    // Even a cookie sealed with our own key (which no client has) whose token does not verify
    // is refused and leaves nothing behind.
    let sealed_forgery = s
        .provider
        .session_cookie_with_tokens(&s.auth, &forged, None, &id);
    for _ in 0..3 {
        assert_ne!(status(&s.app, &foreign).await, StatusCode::OK);
        assert_ne!(status(&s.app, &sealed_forgery).await, StatusCode::OK);
        assert_eq!(with_bearer(&s.app, &forged).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(memo_len(&s.auth), 0);

    // The genuine token, once verified, does not make its forged twin pass: the memo is keyed
    // by a digest of the whole token, signature included.
    assert_eq!(with_bearer(&s.app, &good).await, StatusCode::OK);
    assert_eq!(memo_len(&s.auth), 1);
    assert_eq!(with_bearer(&s.app, &forged).await, StatusCode::UNAUTHORIZED);
    assert_ne!(status(&s.app, &sealed_forgery).await, StatusCode::OK);
    assert_eq!(memo_len(&s.auth), 1);
}
