//! Attack tests against the signature memo (independent review). Every test asserts the secure
//! behaviour: a failing test is a finding. Caches of one entry, so every token but the last one
//! seen is served from the memo (as in tests/signature_memo.rs).

use axum::body::Body;
use http::{header, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_oidc_auth::testing::TestUser;
use tower_oidc_auth::{Algorithm, Clock};

use crate::helpers::*;

async fn with_auth_header(app: &axum::Router, value: &str) -> StatusCode {
    let req = Request::get("/me")
        .header(header::AUTHORIZATION, value)
        .body(Body::empty())
        .unwrap();
    app.clone().oneshot(req).await.unwrap().status()
}

fn bearers(s: &Setup, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| s.provider.access_token(&TestUser::new(format!("api{i}"))))
        .collect()
}

/// Verifies every bearer token twice (the second round from the memo) and checks the memo holds
/// them.
async fn memoize(s: &Setup, tokens: &[String]) {
    for _ in 0..2 {
        for t in tokens {
            assert_eq!(with_bearer(&s.app, t).await, StatusCode::OK);
        }
    }
    assert!(memo_len(&s.auth) >= tokens.len());
}

/// Makes the layer fetch the JWKS again: a bearer token naming an unknown kid.
async fn force_refetch(s: &Setup) {
    let now = s.clock.now();
    let probe = s.provider.sign_with_header(
        &json!({"alg": "RS256", "typ": "JWT", "kid": "probe-unknown"}),
        &json!({"iss": s.provider.issuer(), "aud": "test-client", "sub": "x", "iat": now,
                "exp": now + 60}),
    );
    let before = s.provider.counts().jwks_fetches;
    let _ = with_bearer(&s.app, &probe).await;
    assert!(
        s.provider.counts().jwks_fetches > before,
        "the probe made the layer fetch the JWKS"
    );
}

fn edit_keys(s: &Setup, f: impl Fn(&mut serde_json::Map<String, Value>)) {
    let mut doc = s.provider.jwks_document();
    for k in doc["keys"].as_array_mut().unwrap() {
        f(k.as_object_mut().unwrap());
    }
    s.provider.set_jwks_document(Some(doc));
}

// ---------------------------------------------------------------------------------------------
// Key set changes while the memo holds entries.
// ---------------------------------------------------------------------------------------------

/// The body of the tests below that differ only in how the key is republished: four bearer
/// tokens are memoized, the key set is republished with every key edited by `edit`, and the
/// layer refetches it; every token is then refused, memo or not. (Each case stays a test of its
/// own, so a failure names it.)
async fn memo_hit_refused_after_key_edit(edit: impl Fn(&mut serde_json::Map<String, Value>)) {
    let s = tiny_verified_cache().await;
    let tokens = bearers(&s, 4);
    memoize(&s, &tokens).await;
    edit_keys(&s, edit);
    force_refetch(&s).await;
    for t in &tokens {
        assert_eq!(with_bearer(&s.app, t).await, StatusCode::UNAUTHORIZED);
    }
}

/// The same key material is republished, now restricted to another algorithm (`alg: RS384`).
/// RS256 tokens it verified before must no longer pass, memo or not.
#[tokio::test]
async fn memo_hit_refused_after_key_restricted_to_another_alg() {
    memo_hit_refused_after_key_edit(|k| {
        k.insert("alg".into(), json!("RS384"));
    })
    .await;
}

/// The same key material is republished under another kid: tokens naming the old kid must no
/// longer pass (the key set does not select a key for their kid).
#[tokio::test]
async fn memo_hit_refused_after_key_moved_to_another_kid() {
    memo_hit_refused_after_key_edit(|k| {
        k.insert("kid".into(), json!("moved"));
    })
    .await;
}

/// The same key material is republished as an encryption key (`use: enc`): not a verification
/// key any more.
#[tokio::test]
async fn memo_hit_refused_after_key_marked_for_encryption() {
    let s = tiny_verified_cache().await;
    let tokens = bearers(&s, 4);
    let cookies: Vec<String> = (0..3).map(|i| session_of(&s, &format!("u{i}"))).collect();
    memoize(&s, &tokens).await;
    for _ in 0..2 {
        for c in &cookies {
            assert_eq!(status(&s.app, c).await, StatusCode::OK);
        }
    }
    edit_keys(&s, |k| {
        k.insert("use".into(), json!("enc"));
    });
    force_refetch(&s).await;
    for t in &tokens {
        assert_eq!(with_bearer(&s.app, t).await, StatusCode::UNAUTHORIZED);
    }
    for c in &cookies {
        assert_ne!(status(&s.app, c).await, StatusCode::OK);
    }
}

/// `key_ops` without `verify`: not a verification key any more.
#[tokio::test]
async fn memo_hit_refused_after_key_ops_exclude_verify() {
    memo_hit_refused_after_key_edit(|k| {
        k.remove("use");
        k.insert("key_ops".into(), json!(["encrypt"]));
    })
    .await;
}

/// The JWKS is emptied entirely (provider withdraws everything).
#[tokio::test]
async fn memo_hit_refused_after_all_keys_withdrawn() {
    let s = tiny_verified_cache().await;
    let tokens = bearers(&s, 4);
    memoize(&s, &tokens).await;
    s.provider.set_jwks_document(Some(json!({"keys": []})));
    force_refetch(&s).await;
    for t in &tokens {
        assert_eq!(with_bearer(&s.app, t).await, StatusCode::UNAUTHORIZED);
    }
}

/// Kid-less tokens verified while one key was published; then a second key appears. A kid-less
/// token is then ambiguous and must not be served from the memo.
#[tokio::test]
async fn kidless_memo_hit_refused_when_key_set_becomes_ambiguous() {
    let s = tiny_verified_cache().await;
    s.provider.set_key_ids(false);
    // The layer fetched keys with kids at build: a kid-less token refetches (kid-less keys).
    let first = s.provider.access_token(&TestUser::new("k0"));
    let _ = with_bearer(&s.app, &first).await;
    s.clock.advance(std::time::Duration::from_secs(600));
    let tokens = bearers(&s, 4);
    let ok = with_bearer(&s.app, &tokens[0]).await;
    if ok != StatusCode::OK {
        // Setup failure, not a finding.
        panic!("setup: kid-less tokens not accepted ({ok})");
    }
    memoize(&s, &tokens).await;
    // A second key is published; a kid-less token by it fails with the first key and makes
    // the layer refetch (Replaced).
    s.clock.advance(std::time::Duration::from_secs(600));
    s.provider.rotate_keys(false);
    let newer = s.provider.access_token(&TestUser::new("newer"));
    let _ = with_bearer(&s.app, &newer).await;
    for t in &tokens {
        assert_eq!(with_bearer(&s.app, t).await, StatusCode::UNAUTHORIZED);
    }
}

// ---------------------------------------------------------------------------------------------
// Other encodings of a memoized token.
// ---------------------------------------------------------------------------------------------

/// Variants of a memoized token that differ in bytes but not in meaning must be verified afresh
/// (and refused when their signature does not verify): header re-encoded with whitespace, `=`
/// padding, an extra segment, trailing dot.
#[tokio::test]
async fn variants_of_a_memoized_token_do_not_ride_on_its_entry() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let s = tiny_verified_cache().await;
    let tokens = bearers(&s, 3);
    memoize(&s, &tokens).await;
    let t = &tokens[0];
    let parts: Vec<&str> = t.split('.').collect();
    let header: Value = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
    let spaced = b64.encode(serde_json::to_string_pretty(&header).unwrap());
    let variants = [
        format!("{spaced}.{}.{}", parts[1], parts[2]),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}=.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}.", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}.{}", parts[0], parts[0], parts[1], parts[2]),
    ];
    let before = memo_len(&s.auth);
    for v in &variants {
        assert_eq!(
            with_bearer(&s.app, v).await,
            StatusCode::UNAUTHORIZED,
            "{v}"
        );
    }
    assert_eq!(memo_len(&s.auth), before, "refused variants write no entry");
}

/// A signature segment re-encoded with non-zero trailing bits in its last base64url character
/// decodes to the same bytes under a lax decoder: another token string, same signature. A
/// strict decoder refuses it. (Malleability: another memo/cache key for the same token.)
#[tokio::test]
async fn non_canonical_base64_signature_is_refused() {
    let s = tiny_verified_cache().await;
    let tokens = bearers(&s, 2);
    memoize(&s, &tokens).await;
    let t = &tokens[0];
    let (signed, sig) = t.rsplit_once('.').unwrap();
    // 256-byte RSA signature: 342 characters, the last one carries 2 meaningful bits and 4
    // padding bits.
    let last = sig.chars().last().unwrap();
    const A: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = A.find(last).unwrap();
    let tweaked = A.as_bytes()[idx ^ 1] as char;
    let forged = format!("{signed}.{}{}", &sig[..sig.len() - 1], tweaked);
    assert_ne!(&forged, t);
    assert_eq!(with_bearer(&s.app, &forged).await, StatusCode::UNAUTHORIZED);
}

/// Authorization header forms: the scheme in another case is fine (RFC 9110 case-insensitive),
/// but the token must be exactly the token; junk around it must not be accepted as the memoized
/// token.
#[tokio::test]
async fn authorization_header_forms_with_junk_are_refused() {
    let s = tiny_verified_cache().await;
    let tokens = bearers(&s, 3);
    memoize(&s, &tokens).await;
    let t = &tokens[0];
    for v in [
        format!("Bearer {t}x"),
        format!("Bearer x{t}"),
        format!("Bearer {t} {t}"),
        format!("Bearer {t},{t}"),
        format!("Basic {t}"),
    ] {
        assert_eq!(
            with_auth_header(&s.app, &v).await,
            StatusCode::UNAUTHORIZED,
            "{v}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Entries written by verifications that failed later, and the memo's bounds.
// ---------------------------------------------------------------------------------------------

/// A token signed by the provider but refused on claims (other audience, ID token, wrong issuer)
/// may be memoized (its signature verified), but is refused again, memo hit or not.
#[tokio::test]
async fn claims_refused_tokens_stay_refused_on_memo_hits() {
    let s = tiny_verified_cache().await;
    let now = s.clock.now();
    let iss = s.provider.issuer().to_owned();
    let bad = [
        s.provider
            .sign(&json!({"iss": iss, "aud": "other-client", "sub": "a", "iat": now, "exp": now + 600})),
        s.provider
            .sign(&json!({"iss": "https://evil.example", "aud": "test-client", "sub": "a", "iat": now, "exp": now + 600})),
        s.provider.id_token(&TestUser::new("a"), Some("n0nce")),
        s.provider.logout_token("test-client", "a", "sid-test"),
        s.provider
            .sign(&json!({"iss": iss, "aud": "test-client", "sub": "a", "iat": now, "exp": now - 600})),
        s.provider
            .sign(&json!({"iss": iss, "aud": "test-client", "sub": "a", "iat": now, "nbf": now + 3600, "exp": now + 7200})),
    ];
    for _ in 0..3 {
        for t in &bad {
            assert_eq!(with_bearer(&s.app, t).await, StatusCode::UNAUTHORIZED);
            // Push it out of the verified-token cache (one entry).
            let filler = s.provider.access_token(&TestUser::new("filler"));
            assert_eq!(with_bearer(&s.app, &filler).await, StatusCode::OK);
        }
    }
    // The not-yet-valid one becomes valid with time: fine, its signature was verified.
}

/// The memo is bounded: ten times the verified-token cache.
#[tokio::test]
async fn memo_is_bounded() {
    let s = setup_with(|c| c.verified_cache_capacity(2)).await;
    let tokens = bearers(&s, 80);
    for t in &tokens {
        assert_eq!(with_bearer(&s.app, t).await, StatusCode::OK);
    }
    assert!(memo_len(&s.auth) <= 20, "memo: {}", memo_len(&s.auth));
}

// ---------------------------------------------------------------------------------------------
// Two layers in one process.
// ---------------------------------------------------------------------------------------------

/// Two layers over the same provider: one accepts RS256, the other only PS256 and another
/// client. A token memoized by the first must not pass the second.
#[tokio::test]
async fn another_layers_memo_entry_does_not_help() {
    let s = tiny_verified_cache().await;
    // The key is published without `alg`, so an RSA key may verify PS256 for the strict layer.
    edit_keys(&s, |k| {
        k.remove("alg");
    });
    let strict = s
        .provider
        .layer_builder(REDIRECT)
        .verified_cache_capacity(1)
        .algorithms([Algorithm::PS256])
        .clock(s.clock.clone())
        .build()
        .await
        .unwrap();
    let strict_app = app(&strict);
    s.provider.add_client("client-b", "secret-b", None);
    let other_client = s
        .provider
        .layer_builder(REDIRECT)
        .client_id("client-b")
        .verified_cache_capacity(1)
        .clock(s.clock.clone())
        .build()
        .await
        .unwrap();
    let other_app = app(&other_client);
    let tokens = bearers(&s, 4);
    memoize(&s, &tokens).await;
    for t in &tokens {
        assert_eq!(with_bearer(&strict_app, t).await, StatusCode::UNAUTHORIZED);
        assert_eq!(with_bearer(&other_app, t).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(memo_len(&strict), 0);
}

/// Two layers over two providers that publish the same kid: a token of provider A, memoized by
/// layer A, must not pass layer B (B's key under that kid is another key).
#[tokio::test]
async fn same_kid_at_another_provider_does_not_reuse_the_memo() {
    let a = tiny_verified_cache().await;
    let b = tiny_verified_cache().await;
    assert_eq!(a.provider.current_kid(), b.provider.current_kid());
    let tokens = bearers(&a, 4);
    memoize(&a, &tokens).await;
    for t in &tokens {
        assert_eq!(with_bearer(&b.app, t).await, StatusCode::UNAUTHORIZED);
    }
    // A token of B with A's issuer/audience cannot pass A either.
    let now = b.clock.now();
    let forged = b
        .provider
        .sign(&json!({"iss": a.provider.issuer(), "aud": "test-client",
        "sub": "api0", "iat": now, "exp": now + 600}));
    assert_eq!(with_bearer(&a.app, &forged).await, StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------------------------------------
// Purpose and M2M rules on memo hits.
// ---------------------------------------------------------------------------------------------

/// A token naming no audience and no client is trusted only inside a session. Memoized there,
/// it must still be refused as a bearer token (memo hit or not).
#[tokio::test]
async fn session_only_token_memoized_by_a_session_is_refused_as_bearer() {
    let s = tiny_verified_cache().await;
    let now = s.clock.now();
    let id = s.provider.id_token(&TestUser::new("u0"), None);
    let mut ats = Vec::new();
    let mut cookies = Vec::new();
    for i in 0..4 {
        let at = s
            .provider
            .sign(&json!({"iss": s.provider.issuer(), "sub": "u0",
            "iat": now, "exp": now + 600, "jti": format!("j{i}")}));
        cookies.push(
            s.provider
                .session_cookie_with_tokens(&s.auth, &at, None, &id),
        );
        ats.push(at);
    }
    for _ in 0..2 {
        for c in &cookies {
            assert_eq!(status(&s.app, c).await, StatusCode::OK);
        }
    }
    assert!(memo_len(&s.auth) >= 4);
    for _ in 0..2 {
        for at in &ats {
            assert_eq!(with_bearer(&s.app, at).await, StatusCode::UNAUTHORIZED);
        }
    }
}

/// An M2M token accepted (and memoized) by a layer that accepts its client must not pass a
/// layer that does not, nor become a session anywhere.
#[tokio::test]
async fn m2m_token_memoized_by_one_layer_is_refused_by_another() {
    let s = setup_with(|c| {
        c.verified_cache_capacity(1)
            .accept_m2m_clients(tower_oidc_auth::M2mClients::only(["m2m_1"]))
    })
    .await;
    let plain = s
        .provider
        .layer_builder(REDIRECT)
        .verified_cache_capacity(1)
        .clock(s.clock.clone())
        .build()
        .await
        .unwrap();
    let plain_app = app(&plain);
    let tokens: Vec<String> = (0..4)
        .map(|_| s.provider.m2m_access_token("m2m_1", "org_1", &["x"]))
        .collect();
    memoize(&s, &tokens).await;
    for t in &tokens {
        assert_eq!(with_bearer(&plain_app, t).await, StatusCode::UNAUTHORIZED);
    }
    // Another M2M client of the environment, never accepted: refused by both, memo or not.
    let other: Vec<String> = (0..4)
        .map(|_| s.provider.m2m_access_token("m2m_2", "org_1", &["x"]))
        .collect();
    for _ in 0..2 {
        for t in &other {
            assert_eq!(with_bearer(&s.app, t).await, StatusCode::UNAUTHORIZED);
        }
    }
}
