//! Claim and header checks shared by every kind of token.

use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::*;

/// Whether a claim set carries a marker only ID tokens have: `nonce`, `at_hash`, `c_hash`, or
/// Keycloak's `typ: ID`. The access path refuses such tokens; an ID token without any marker
/// (possible at a refresh) is never used where it could leak (see the refresh).
pub(crate) fn looks_like_id_token(claims: &Map<String, Value>) -> bool {
    ["nonce", "at_hash", "c_hash"]
        .iter()
        .any(|k| claims.contains_key(*k))
        || claims
            .get("typ")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("id"))
}

/// The JOSE header, refusing what this verifier does not understand: a `crit` header names
/// extensions the recipient must process (RFC 7515, section 4.1.11), and none is supported.
pub(super) fn parse_header(token: &str) -> Result<jsonwebtoken::Header, VerifyError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
    if header.crit.is_some() {
        return Err(VerifyError::Critical);
    }
    Ok(header)
}

/// A `typ` value compared the way RFC 7515 section 4.1.9 says: without case, and without the
/// `application/` prefix.
pub(super) fn normalize_typ(typ: &str) -> String {
    let t = typ.to_ascii_lowercase();
    match t.strip_prefix("application/") {
        Some(rest) => rest.to_owned(),
        None => t,
    }
}

/// Whether a token is a JWS in compact form, whatever its algorithm (`none` included): three
/// dot-separated parts whose first is a base64url JSON object. Such a token must verify; only a
/// token that is not JWT-shaped is opaque to us.
pub(crate) fn is_jwt_shaped(token: &str) -> bool {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Map<String, Value>>(&bytes).ok())
        .is_some()
}

/// The audiences a token names, read without verification: for messages about a token whose
/// signature was already checked.
pub(crate) fn unverified_audiences(token: &str) -> Vec<String> {
    jsonwebtoken::dangerous::insecure_decode::<Map<String, Value>>(token)
        .map(|d| {
            audiences(&d.claims)
                .into_iter()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// `at_hash`: the left half of the access token's hash with the ID token's algorithm's hash
/// function, base64url (OpenID Connect Core 3.1.3.6; SHA-512 for EdDSA with Ed25519).
pub(super) fn token_hash(alg: Algorithm, token: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use sha2::Digest;
    let digest: Vec<u8> = match alg {
        Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 => {
            sha2::Sha384::digest(token.as_bytes()).to_vec()
        }
        Algorithm::RS512 | Algorithm::PS512 | Algorithm::EdDSA => {
            sha2::Sha512::digest(token.as_bytes()).to_vec()
        }
        _ => sha2::Sha256::digest(token.as_bytes()).to_vec(),
    };
    URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

/// The time claims of a token, read the same way for every kind of token: each present one
/// must be a NumericDate. A present claim that is not (a string, an object) makes the token
/// malformed; it is never skipped as if it were absent. `null` counts as absent.
pub(super) struct Times {
    pub(super) exp: Option<i64>,
    pub(super) nbf: Option<i64>,
    pub(super) iat: Option<i64>,
}

impl Times {
    pub(super) fn of(claims: &Map<String, Value>) -> Result<Self, VerifyError> {
        let read = |name: &str| {
            claims
                .get(name)
                .filter(|v| !v.is_null())
                .map(numeric_date)
                .transpose()
        };
        Ok(Self {
            exp: read("exp")?,
            nbf: read("nbf")?,
            iat: read("iat")?,
        })
    }

    pub(super) fn exp(&self) -> Result<i64, VerifyError> {
        self.exp.ok_or(VerifyError::Missing("exp"))
    }
}

/// A NumericDate (RFC 7519, section 2): seconds since the epoch, possibly with a fraction,
/// which is dropped. Anything else is malformed.
pub(crate) fn numeric_date(v: &Value) -> Result<i64, VerifyError> {
    if let Some(n) = v.as_i64() {
        return Ok(n);
    }
    match v.as_f64() {
        // `as` saturates for finite values out of range.
        Some(f) if f.is_finite() => Ok(f.floor() as i64),
        _ => Err(VerifyError::Malformed),
    }
}

pub(super) fn required_str<'a>(
    claims: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a str, VerifyError> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .ok_or(VerifyError::Missing(name))
}

pub(super) fn audiences(claims: &Map<String, Value>) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The `iss` of a JWS in compact form, read without verification, to route a bearer token to
/// its issuer's keys before any signature work. `Err` for a token whose payload is not a JSON
/// object with at most one `iss`, a string (or none: `Ok(None)`).
pub(crate) fn unverified_issuer(token: &str) -> Result<Option<String>, VerifyError> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    #[derive(serde::Deserialize)]
    struct Peek<'a> {
        #[serde(borrow, default)]
        iss: Option<std::borrow::Cow<'a, str>>,
    }
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| VerifyError::Malformed)?;
    // A claim set is a JSON object (RFC 7519 section 7.2, step 10); the derived reader would
    // also take an array for the struct's fields.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(VerifyError::Malformed);
    }
    let peek: Peek<'_> = serde_json::from_slice(&bytes).map_err(|_| VerifyError::Malformed)?;
    Ok(peek.iss.map(std::borrow::Cow::into_owned))
}
