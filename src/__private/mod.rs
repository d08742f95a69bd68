//! Internals exposed for the criterion benchmarks and the fuzz targets only. Not part of the
//! public API: no stability promise, may change in any release.

use http::HeaderMap;

use crate::session::{refresh_due, SessionData};

use crate::AuthLayer;

/// Reads and opens the session cookie, as every request does.
pub fn open_session(auth: &AuthLayer, headers: &HeaderMap) -> Option<i64> {
    let shared = &auth.shared;
    let cookies = shared.cookies.read(headers);
    match shared
        .cookies
        .read_json::<SessionData>(&cookies, &shared.cookies.session.name)
    {
        Some(Ok(data)) => Some(data.exp),
        _ => None,
    }
}

/// The refresh check done on the hot path when the session is valid.
pub fn refresh_check(auth: &AuthLayer, exp: i64, ts: i64, now: i64) -> bool {
    refresh_due(exp, ts, auth.shared.settings.refresh_margin, now)
}

use std::sync::{Arc, OnceLock};

use crate::cookies::CookieCodec;
use crate::provider::{HttpClient, Jwks};
use crate::routes::{param, query_params, Transaction};
use crate::verify::{Expectations, Verifier};

fn fuzz_codec() -> &'static CookieCodec {
    static CODEC: OnceLock<CookieCodec> = OnceLock::new();
    CODEC.get_or_init(|| {
        CookieCodec::new(
            vec![cookie::Key::from(&[7u8; 64])],
            false,
            "oidc_fuzz",
            "/",
            "/auth",
        )
    })
}

/// Fuzz target body: any bytes as a `Cookie` header, through parsing, chunk joining, opening
/// and JSON parsing of every cookie kind.
pub fn fuzz_cookies(data: &[u8]) {
    let Ok(value) = http::HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.append(http::header::COOKIE, value);
    let codec = fuzz_codec();
    let cookies = codec.read(&headers);
    let _ = cookies.chunk_count(&codec.session.name);
    let _ = codec.read_json::<SessionData>(&cookies, &codec.session.name);
    let _ = codec.read_json::<String>(&cookies, &codec.id_token.name);
    let _ = codec.read_json::<crate::routes::TxIndex>(&cookies, &codec.tx_index.name);
    for name in cookies.names_with_prefix(&codec.tx_prefix) {
        let _ = codec.read_json::<Transaction>(&cookies, name);
    }
}

/// Fuzz target body: sealed cookie plaintexts (as if the key were known) into the session
/// parser, so the JSON shape checks are exercised too.
pub fn fuzz_sealed_session(data: &[u8]) {
    let Ok(plain) = std::str::from_utf8(data) else {
        return;
    };
    let codec = fuzz_codec();
    let sealed = codec.seal(&codec.session.name, plain);
    let mut headers = HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_str(&format!("{}={sealed}", codec.session.name)) {
        headers.insert(http::header::COOKIE, v);
    }
    let cookies = codec.read(&headers);
    let _ = codec.read_json::<SessionData>(&cookies, &codec.session.name);
}

/// Fuzz target body: the callback and login query parser and the parameters read from it.
pub fn fuzz_query(query: &str) {
    if let Ok(params) = query_params(Some(query)) {
        for name in [
            "code",
            "state",
            "iss",
            "error",
            "error_description",
            "return_to",
        ] {
            let _ = param(&params, name);
        }
        if let Some(target) = param(&params, "return_to") {
            let _ = crate::return_to::sanitize(target);
        }
    }
}

/// Fuzz target body: the return_to sanitiser. Returns what it accepted.
pub fn fuzz_return_to(target: &str) -> Option<&str> {
    crate::return_to::sanitize(target)
}

const FUZZ_JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"k1","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"},{"kty":"EC","kid":"k2","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uE3MvvkE","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

fn fuzz_verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let clock: crate::clock::SharedClock = Arc::new(crate::SystemClock);
        let jwks = Jwks::new(
            HttpClient::new(std::time::Duration::from_secs(1), 1024),
            "http://127.0.0.1:9/keys".into(),
            vec![
                jsonwebtoken::Algorithm::RS256,
                jsonwebtoken::Algorithm::ES256,
            ],
            clock.clone(),
            // With `load_json` counting as a fetch, no refetch is ever attempted.
            i64::MAX,
        );
        jwks.load_json(FUZZ_JWKS);
        Verifier::new(
            jwks,
            Expectations {
                issuer: "https://issuer.example".into(),
                client_id: "client".into(),
                audiences: Vec::new(),
                leeway: 60,
                id_token_max_age: 600,
            },
            clock,
            64,
        )
    })
}

/// Fuzz target body: a JWT through header parsing, key lookup and signature and claims checks.
/// (The fuzzer cannot sign, so it exercises everything up to the signature; the claims checks
/// are exercised by [`fuzz_claims`].)
pub fn fuzz_jwt(token: &str) {
    let _ = fuzz_verifier().access_now(token, crate::verify::Purpose::Bearer);
}

/// Fuzz target body: the claims checks of an access token, on any JSON.
pub fn fuzz_claims(data: &[u8]) {
    if let Ok(claims) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(data) {
        let _ = fuzz_verifier().check_claims_for_fuzzing(&claims);
        let _ = crate::Claims::from_map(claims, crate::claims::LayerId::NONE);
    }
}

/// The revocation check done on every request, against a store holding `records` revocations
/// (none of them this session's).
pub fn revocation_check(auth: &AuthLayer, ids_sid: &str, ids_sub: &str) -> bool {
    let ids = crate::revocation::SessionIds {
        sid: Some(ids_sid.to_owned()),
        sub: Some(ids_sub.to_owned()),
        lid: Some("local-session-id".to_owned()),
        login: 1,
    };
    crate::revocation::is_revoked(
        auth.shared.revocations.as_ref(),
        &auth.shared.meta.issuer,
        &ids,
    )
}

mod targets;

#[cfg(feature = "management")]
pub use targets::target_management_json;
pub use targets::{target_backchannel, target_provider_json, target_webhook, FUZZ_WEBHOOK_SECRET};

/// Fuzz target `cookies`: see [`fuzz_cookies`] and [`fuzz_sealed_session`].
pub fn target_cookies(data: &[u8]) {
    fuzz_cookies(data);
    fuzz_sealed_session(data);
}

/// Fuzz target `callback_query`: see [`fuzz_query`].
pub fn target_callback_query(data: &[u8]) {
    if let Ok(query) = std::str::from_utf8(data) {
        fuzz_query(query);
    }
}

/// Fuzz target `jwt`: see [`fuzz_jwt`] and [`fuzz_claims`].
pub fn target_jwt(data: &[u8]) {
    if let Ok(token) = std::str::from_utf8(data) {
        fuzz_jwt(token);
    }
    fuzz_claims(data);
}

/// Fuzz target `return_to`: whatever the sanitiser accepts must stay on the same origin.
pub fn target_return_to(data: &[u8]) {
    let Ok(target) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(accepted) = fuzz_return_to(target) {
        let base = url::Url::parse("https://app.example/").expect("valid URL");
        let joined = base
            .join(accepted)
            .expect("an accepted target is a valid relative URL");
        assert_eq!(
            joined.origin(),
            base.origin(),
            "{accepted:?} left the origin"
        );
    }
}

/// The entry point of a fuzz target: any bytes.
pub type FuzzTarget = fn(&[u8]);

/// Every fuzz target by name (the directory names under `fuzz/corpus/`), with the function its
/// `fuzz/fuzz_targets/<name>.rs` calls. The corpus replay test walks this list.
pub const FUZZ_TARGETS: &[(&str, FuzzTarget)] = &[
    ("cookies", target_cookies),
    ("callback_query", target_callback_query),
    ("jwt", target_jwt),
    ("return_to", target_return_to),
    ("backchannel", target_backchannel),
    ("webhook", target_webhook),
    ("provider_json", target_provider_json),
    #[cfg(feature = "management")]
    ("management_json", target_management_json),
];
