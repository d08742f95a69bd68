//! Unit tests of verification (they sign with the test provider).

use super::{Attempt, Purpose, TokenDigest, VerifyError};
use crate::testing::TestProvider;
use crate::Clock;
use serde_json::json;

/// A token whose signature part is replaced: it would never verify.
fn with_bad_signature(token: &str) -> String {
    let (signed, _) = token.rsplit_once('.').unwrap();
    format!("{signed}.AAAA")
}

#[tokio::test]
async fn signature_memo_is_written_only_by_a_verification_and_read_only_for_its_key() {
    let clock = crate::ManualClock::starting_now();
    let p = TestProvider::builder().clock(clock.clone()).start().await;
    let auth = p
        .layer_builder("http://127.0.0.1:1/auth/callback")
        .verified_cache_capacity(1)
        .build()
        .await
        .unwrap();
    let v = &auth.shared.verifier;
    let now = clock.now();
    let claims = json!({"iss": p.issuer(), "aud": "test-client", "sub": "s", "iat": now,
                        "exp": now + 300});
    let good = p.sign(&claims);
    let forged = with_bad_signature(&good);

    // A token that does not verify leaves no entry, however often it is sent.
    for _ in 0..2 {
        assert!(matches!(
            v.access(&forged, Purpose::Bearer).await,
            Err(VerifyError::Signature)
        ));
    }
    assert_eq!(v.memo_len(), 0);
    // One that verifies leaves one; pushed out of the verified-token cache (capacity 1), it
    // is still valid through the memo.
    assert!(v.access(&good, Purpose::Bearer).await.is_ok());
    assert_eq!(v.memo_len(), 1);
    let other = p.sign(&json!({"iss": p.issuer(), "aud": "test-client", "sub": "t",
                               "iat": now, "exp": now + 300}));
    assert!(v.access(&other, Purpose::Bearer).await.is_ok());
    assert!(matches!(
        v.access_now(&good, Purpose::Bearer),
        Attempt::Valid(_)
    ));

    // The memo is read only for the key the JWKS picks now: an entry naming another key
    // (thumbprint) is ignored, and the forged token's signature is checked and refused.
    v.memo
        .insert(TokenDigest::of(&forged), "another-key".into());
    assert!(matches!(
        v.access_now(&forged, Purpose::Bearer),
        Attempt::NeedKeys(..) | Attempt::Invalid(VerifyError::Signature)
    ));

    // A memo hit skips only the signature: an expired token is refused all the same.
    clock.advance(std::time::Duration::from_secs(300 + 61));
    v.cache.clear();
    assert!(matches!(
        v.access_now(&good, Purpose::Bearer),
        Attempt::Invalid(VerifyError::Expired)
    ));
}

#[tokio::test]
async fn id_token_checks() {
    let clock = crate::ManualClock::starting_now();
    let p = TestProvider::builder().clock(clock.clone()).start().await;
    let auth = p
        .layer_builder("http://127.0.0.1:1/auth/callback")
        .build()
        .await
        .unwrap();
    let v = &auth.shared.verifier;
    let now = clock.now();
    let base = json!({"iss": p.issuer(), "aud": "test-client", "sub": "s", "iat": now,
                      "exp": now + 300, "nonce": "n1"});
    let with = |patch: serde_json::Value| {
        let mut c = base.clone();
        for (k, val) in patch.as_object().unwrap() {
            c[k] = val.clone();
        }
        p.sign(&c)
    };
    assert!(v.id_token(&with(json!({})), Some("n1"), None).await.is_ok());
    let cases = [
        (with(json!({})), Some("other"), VerifyError::Nonce),
        (with(json!({"nonce": null})), Some("n1"), VerifyError::Nonce),
        (with(json!({"aud": "x"})), Some("n1"), VerifyError::Audience),
        (
            with(json!({"aud": ["test-client", "x"]})),
            Some("n1"),
            VerifyError::AuthorizedParty,
        ),
        (
            with(json!({"azp": "x"})),
            Some("n1"),
            VerifyError::AuthorizedParty,
        ),
        (
            with(json!({"iss": "https://x"})),
            Some("n1"),
            VerifyError::Issuer,
        ),
        (
            with(json!({"iat": null})),
            Some("n1"),
            VerifyError::Missing("iat"),
        ),
        (
            with(json!({"iat": now + 61})),
            Some("n1"),
            VerifyError::IssuedInFuture,
        ),
        (
            with(json!({"exp": now - 61})),
            Some("n1"),
            VerifyError::Expired,
        ),
        (
            with(json!({"sub": null})),
            Some("n1"),
            VerifyError::Missing("sub"),
        ),
    ];
    for (token, nonce, expected) in cases {
        assert_eq!(v.id_token(&token, nonce, None).await.unwrap_err(), expected);
    }
    let ok = with(json!({"aud": ["test-client", "x"], "azp": "test-client"}));
    assert!(v.id_token(&ok, Some("n1"), None).await.is_ok());
    // at_hash: RS256 -> left half of SHA-256, base64url.
    let at = "access-token-value";
    let good = with(json!({"at_hash": super::token_hash(jsonwebtoken::Algorithm::RS256, at)}));
    assert!(v.id_token(&good, Some("n1"), Some(at)).await.is_ok());
    assert_eq!(
        v.id_token(&good, Some("n1"), Some("another"))
            .await
            .unwrap_err(),
        VerifyError::AtHash
    );
    assert_eq!(
        super::token_hash(jsonwebtoken::Algorithm::RS256, at).len(),
        22
    );
    assert_eq!(
        super::token_hash(jsonwebtoken::Algorithm::ES384, at).len(),
        32
    );
}

/// Scalekit IdP-initiated login tokens: each refusal for its own reason. Claims shaped after
/// developer-docs `sso/guides/idp-init-sso.mdx` ("JWT token structure").
#[tokio::test]
async fn idp_login_checks() {
    let clock = crate::ManualClock::starting_now();
    let p = TestProvider::builder().clock(clock.clone()).start().await;
    let auth = p
        .layer_builder("http://127.0.0.1:1/auth/callback")
        .build()
        .await
        .unwrap();
    let v = &auth.shared.verifier;
    let now = clock.now();
    let base = json!({"organization_id": "org_1", "connection_id": "conn_1",
                      "login_hint": "a@b.c", "relay_state": "/x", "exp": now + 300,
                      "nbf": now, "iat": now, "iss": "https://b2b-app.com"});
    let with = |patch: serde_json::Value| {
        let mut c = base.clone();
        for (k, val) in patch.as_object().unwrap() {
            if val.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = val.clone();
            }
        }
        p.sign(&c)
    };
    let ok = v.idp_initiated_login(&with(json!({}))).await.unwrap();
    assert_eq!(ok.organization_id.as_deref(), Some("org_1"));
    assert_eq!(ok.relay_state.as_deref(), Some("/x"));
    // Only a login hint; empty strings count as absent; fractional NumericDates.
    let hint_only = with(json!({"organization_id": "", "connection_id": null,
                                "exp": (now + 300) as f64 + 0.5}));
    let got = v.idp_initiated_login(&hint_only).await.unwrap();
    assert_eq!(got.organization_id, None);
    assert_eq!(got.login_hint.as_deref(), Some("a@b.c"));
    let cases = [
        (with(json!({"exp": null})), VerifyError::Missing("exp")),
        (with(json!({"exp": "soon"})), VerifyError::Malformed),
        (with(json!({"nbf": [1]})), VerifyError::Malformed),
        (with(json!({"exp": now - 61})), VerifyError::Expired),
        (with(json!({"nbf": now + 61})), VerifyError::NotYetValid),
        (with(json!({"iat": now + 61})), VerifyError::IssuedInFuture),
        (with(json!({"organization_id": 7})), VerifyError::Malformed),
        (
            with(json!({"relay_state": {"a": 1}})),
            VerifyError::Malformed,
        ),
        (
            with(json!({"organization_id": null, "connection_id": null, "login_hint": null})),
            VerifyError::Missing("organization_id, connection_id or login_hint"),
        ),
        (with(json!({"nonce": "n"})), VerifyError::NotAnIdpLoginToken),
        (with(json!({"events": {}})), VerifyError::NotAnIdpLoginToken),
        (
            p.sign_with_header(
                &json!({"alg": "RS256", "typ": "at+jwt", "kid": p.current_kid()}),
                &base,
            ),
            VerifyError::Type("at+jwt".into()),
        ),
        (
            p.sign_with_header(
                &json!({"alg": "HS256", "typ": "JWT", "kid": p.current_kid()}),
                &base,
            ),
            VerifyError::Algorithm(jsonwebtoken::Algorithm::HS256),
        ),
        (
            p.sign_with_unpublished_key(
                &json!({"alg": "RS256", "typ": "JWT", "kid": p.current_kid()}),
                &base,
            ),
            VerifyError::Signature,
        ),
        (
            p.sign_with_unpublished_key(
                &json!({"alg": "RS256", "typ": "JWT", "kid": "other"}),
                &base,
            ),
            VerifyError::UnknownKey,
        ),
        ("e30.e30.".to_owned(), VerifyError::Malformed),
    ];
    for (token, expected) in cases {
        assert_eq!(v.idp_initiated_login(&token).await.unwrap_err(), expected);
    }
}

/// The one decision about audiences, clients and machine tokens, for each purpose. The M2M
/// shape is developer-docs `authenticate/m2m/api-auth-quickstart.mdx`, step 6 "Example
/// decoded access token" (no `aud`, `sub` = `client_id` = `m2morg_...`, `scopes`).
#[tokio::test]
async fn reach_of_access_tokens() {
    use crate::M2mClients;
    let clock = crate::ManualClock::starting_now();
    let p = TestProvider::builder().clock(clock.clone()).start().await;
    let now = clock.now();
    let m2m = |client: &str| {
        json!({"client_id": client, "exp": now + 3600, "iat": now, "iss": p.issuer(),
               "jti": "tkn_69041163914445100", "nbf": now, "oid": "org_59615193906282635",
               "scopes": ["deploy:applications"], "sub": client})
    };
    let user = |patch: serde_json::Value| {
        let mut c = json!({"iss": p.issuer(), "sub": "usr_1", "exp": now + 300});
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let with = |mut c: serde_json::Value, k: &str, v: serde_json::Value| {
        c[k] = v;
        c
    };
    let a = "m2morg_69038819013296423";
    let b = "m2morg_68315758685323697";
    use super::Reach::{BearerOnly, Both, SessionOnly};
    use VerifyError::{Audience, MachineClient};
    // (policy, claims, expected reach or error)
    let cases: Vec<(
        Option<M2mClients>,
        serde_json::Value,
        Result<super::Reach, VerifyError>,
    )> = vec![
        (None, m2m(a), Err(MachineClient)),
        (Some(M2mClients::Any), m2m(a), Ok(BearerOnly)),
        (Some(M2mClients::only([a])), m2m(a), Ok(BearerOnly)),
        (Some(M2mClients::only([b])), m2m(a), Err(MachineClient)),
        // With an audience, the audience decides, opt-in or not; still never a session.
        (
            None,
            with(m2m(a), "aud", json!(["https://api.example.com"])),
            Ok(BearerOnly),
        ),
        (
            Some(M2mClients::only([b])),
            with(m2m(a), "aud", json!(["https://api.example.com"])),
            Ok(BearerOnly),
        ),
        (
            Some(M2mClients::Any),
            with(m2m(a), "aud", json!(["https://other.example"])),
            Err(Audience),
        ),
        // The app's own client-credentials token names this client.
        (None, m2m("test-client"), Ok(BearerOnly)),
        // Users.
        (
            Some(M2mClients::Any),
            user(json!({"aud": ["test-client"]})),
            Ok(Both),
        ),
        (
            Some(M2mClients::Any),
            user(json!({"client_id": "test-client"})),
            Ok(Both),
        ),
        (Some(M2mClients::Any), user(json!({})), Ok(SessionOnly)),
        (
            Some(M2mClients::Any),
            user(json!({"client_id": a})),
            Err(Audience),
        ),
        (
            Some(M2mClients::Any),
            user(json!({"aud": "https://api.example.com", "client_id": a})),
            Ok(Both),
        ),
    ];
    for (policy, claims, expected) in cases {
        let mut config = p
            .layer_builder("http://127.0.0.1:1/auth/callback")
            .audience("https://api.example.com");
        if let Some(policy) = policy.clone() {
            config = config.accept_m2m_clients(policy);
        }
        let auth = config.build().await.unwrap();
        let v = &auth.shared.verifier;
        let got = v
            .check_access(claims.as_object().unwrap(), now)
            .map(|r| r.2);
        assert_eq!(got, expected, "{policy:?} {claims}");
        let token = p.sign(&claims);
        let (session, bearer) = (
            v.access(&token, Purpose::Session).await.map(|_| ()),
            v.access(&token, Purpose::Bearer).await.map(|_| ()),
        );
        let (want_session, want_bearer) = match expected {
            Ok(Both) => (Ok(()), Ok(())),
            Ok(SessionOnly) => (Ok(()), Err(VerifyError::NotForThisClient)),
            Ok(BearerOnly) => (Err(VerifyError::MachineSession), Ok(())),
            Err(e) => (Err(e.clone()), Err(e)),
        };
        assert_eq!((session, bearer), (want_session, want_bearer), "{claims}");
    }
}

#[tokio::test]
async fn cache_never_serves_expired_tokens() {
    let clock = crate::ManualClock::starting_now();
    let p = TestProvider::builder().clock(clock.clone()).start().await;
    let auth = p
        .layer_builder("http://127.0.0.1:1/auth/callback")
        .leeway(std::time::Duration::from_secs(0))
        .build()
        .await
        .unwrap();
    let v = &auth.shared.verifier;
    let now = clock.now();
    let t = p.sign(&json!({"iss": p.issuer(), "aud": "test-client", "sub": "s", "exp": now + 10}));
    assert!(v.access(&t, Purpose::Bearer).await.is_ok());
    assert!(v.access(&t, Purpose::Bearer).await.is_ok(), "cache hit");
    clock.advance(std::time::Duration::from_secs(10));
    assert_eq!(
        v.access(&t, Purpose::Bearer).await.err(),
        Some(VerifyError::Expired)
    );
}
