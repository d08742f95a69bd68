//! Reading the session from the cookies on every request that is not an auth route.

use http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::claims::Claims;
use crate::layer::Shared;
use crate::verify::{Attempt, VerifyError};

/// What the session cookie holds (sealed).
#[derive(Serialize, Deserialize)]
pub(crate) struct SessionData {
    /// Access token.
    pub(crate) at: String,
    /// Refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rt: Option<String>,
    /// When the access token expires (seconds since the epoch).
    pub(crate) exp: i64,
    /// True when the access token is not a JWT this client can verify: the session then rests
    /// on the ID token verified at login, until `exp`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) opaque: bool,
    /// The ID token's identity claims, verified at login.
    pub(crate) idc: Box<RawValue>,
}

/// The claims of the ID token kept in the session: identity, not token bookkeeping.
pub(crate) fn identity_claims(id_claims: &Map<String, Value>) -> Map<String, Value> {
    const DROP: &[&str] = &[
        "aud", "exp", "iat", "nbf", "nonce", "at_hash", "c_hash", "s_hash", "azp", "jti",
    ];
    id_claims
        .iter()
        .filter(|(k, _)| !DROP.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The result of reading a request's session.
#[derive(Default)]
pub(crate) struct Outcome {
    pub(crate) claims: Option<Claims>,
    pub(crate) set_cookies: Vec<HeaderValue>,
}

impl Outcome {
    fn anonymous() -> Self {
        Self::default()
    }

    fn cleared(shared: &Shared, chunks: usize) -> Self {
        let mut set_cookies = Vec::new();
        shared
            .cookies
            .clear_slot(&shared.cookies.session, chunks, &mut set_cookies);
        Self {
            claims: None,
            set_cookies,
        }
    }
}

/// Reads the session without waiting. `None`: verification needs a JWKS refetch (async).
pub(crate) fn resolve_now(shared: &Shared, headers: &HeaderMap) -> Option<Outcome> {
    resolve_with(shared, headers, |token| shared.verifier.access_now(token))
}

/// Reads the session, waiting for a JWKS refetch if the token names an unknown key.
pub(crate) async fn resolve(shared: &Shared, headers: &HeaderMap) -> Outcome {
    let token = {
        let cookies = shared.cookies.read(headers);
        match shared
            .cookies
            .read_json::<SessionData>(&cookies, &shared.cookies.session.name)
        {
            Some(Ok(data)) => data.at,
            _ => String::new(),
        }
    };
    if !token.is_empty() {
        // Warms the JWKS (rate-limited) and the cache; the result is read again below.
        let _ = shared.verifier.access(&token).await;
    }
    resolve_with(shared, headers, |t| match shared.verifier.access_now(t) {
        Attempt::NeedKeys(..) => Attempt::Invalid(VerifyError::UnknownKey),
        other => other,
    })
    .unwrap_or_default()
}

fn resolve_with(
    shared: &Shared,
    headers: &HeaderMap,
    verify: impl FnOnce(&str) -> Attempt,
) -> Option<Outcome> {
    let codec = &shared.cookies;
    let cookies = codec.read(headers);
    let name = &codec.session.name;
    let data = match codec.read_json::<SessionData>(&cookies, name) {
        None => return Some(Outcome::anonymous()),
        Some(Err(())) => {
            tracing::debug!(
                "session cookie unreadable (tampered, truncated or foreign key); clearing"
            );
            return Some(Outcome::cleared(shared, cookies.chunk_count(name)));
        }
        Some(Ok(data)) => data,
    };
    let now = shared.clock.now();
    if data.opaque {
        if now >= data.exp {
            return Some(Outcome::cleared(shared, cookies.chunk_count(name)));
        }
        let mut map: Map<String, Value> = serde_json::from_str(data.idc.get()).unwrap_or_default();
        map.insert("exp".into(), data.exp.into());
        return Some(Outcome {
            claims: Claims::from_map(map),
            set_cookies: Vec::new(),
        });
    }
    match verify(&data.at) {
        Attempt::Valid(verified) => {
            let claims = verified.session_claims(|| serde_json::from_str(data.idc.get()).ok());
            Some(Outcome {
                claims,
                set_cookies: Vec::new(),
            })
        }
        Attempt::NeedKeys(..) => None,
        Attempt::Invalid(VerifyError::UnknownKey) => {
            // Perhaps the provider rotated keys and the refetch is rate-limited: keep the cookie.
            tracing::debug!("session access token signed by an unknown key");
            Some(Outcome::anonymous())
        }
        Attempt::Invalid(error) => {
            tracing::debug!(%error, "session access token refused; clearing");
            Some(Outcome::cleared(shared, cookies.chunk_count(name)))
        }
    }
}

/// A `Cookie` header value for a session with these tokens (for the testing helpers).
#[cfg(feature = "testing")]
pub(crate) fn session_cookie_header(
    shared: &Shared,
    at: String,
    rt: Option<String>,
    id_token: &str,
) -> String {
    let id_claims: Map<String, Value> = jsonwebtoken::dangerous::insecure_decode(id_token)
        .map(|d| d.claims)
        .unwrap_or_default();
    let exp = jsonwebtoken::dangerous::insecure_decode::<Map<String, Value>>(&at)
        .ok()
        .and_then(|d| d.claims.get("exp").and_then(Value::as_i64))
        .unwrap_or_default();
    let idc = RawValue::from_string(Value::Object(identity_claims(&id_claims)).to_string())
        .expect("valid JSON");
    let data = SessionData {
        at,
        rt,
        exp,
        opaque: false,
        idc,
    };
    let codec = &shared.cookies;
    let mut set = Vec::new();
    let age = shared.settings.session_max_age;
    codec.write_json(&codec.session, &data, age, 0, &mut set);
    codec.write_json(&codec.id_token, &id_token, age, 0, &mut set);
    set.iter()
        .filter_map(|h| h.to_str().ok())
        .filter_map(|s| s.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}
