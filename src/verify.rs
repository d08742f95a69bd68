//! JWT validation: signature by the provider's keys, algorithm allow-list, iss, aud, time claims,
//! nonce; and a bounded cache of access tokens already verified.

use std::sync::{Arc, OnceLock};

use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use crate::claims::Claims;
use crate::clock::SharedClock;
use crate::provider::{Jwks, KeyLookup};

/// Why a token was refused. Logged, never shown to the user in detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum VerifyError {
    #[error("malformed token")]
    Malformed,
    #[error("token type {0:?} not accepted")]
    Type(String),
    #[error("algorithm {0:?} not allowed")]
    Algorithm(Algorithm),
    #[error("no published key matches the token")]
    UnknownKey,
    #[error("several keys match a token without kid")]
    AmbiguousKey,
    #[error("bad signature")]
    Signature,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
    #[error("authorized party (azp) is not this client")]
    AuthorizedParty,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token issued in the future")]
    IssuedInFuture,
    #[error("nonce mismatch")]
    Nonce,
    #[error("ID token older than the allowed maximum age")]
    TooOld,
    #[error("at_hash does not match the access token")]
    AtHash,
    #[error("a logout token must not carry a nonce")]
    NonceInLogoutToken,
    #[error("logout token replayed")]
    Replayed,
    #[error("required claim {0} missing")]
    Missing(&'static str),
}

/// A verified access token, as kept in the cache.
pub(crate) struct Verified {
    pub(crate) claims: Arc<Map<String, Value>>,
    pub(crate) exp: i64,
    nbf: Option<i64>,
    kid: Option<String>,
    generation: u64,
    /// Claims merged with the session's identity claims, built once per token.
    session_claims: OnceLock<Option<Claims>>,
    /// Claims of the token alone, for bearer use, built once per token.
    bearer_claims: OnceLock<Option<Claims>>,
}

impl Verified {
    /// The claims for a cookie session: the access token's, with the ID token's identity claims
    /// filling the gaps. The identity claims are bound to this access token in the same encrypted
    /// cookie, so building this once per token is exact.
    pub(crate) fn session_claims(
        &self,
        identity: impl FnOnce() -> Option<Map<String, Value>>,
    ) -> Option<Claims> {
        self.session_claims
            .get_or_init(|| {
                let mut merged = identity().unwrap_or_default();
                for (k, v) in self.claims.iter() {
                    merged.insert(k.clone(), v.clone());
                }
                Claims::from_map(merged)
            })
            .clone()
    }

    /// The claims of the token alone (bearer use: no session, no identity claims).
    pub(crate) fn bearer_claims(&self) -> Option<Claims> {
        self.bearer_claims
            .get_or_init(|| Claims::from_map((*self.claims).clone()))
            .clone()
    }
}

/// What a synchronous verification attempt found.
pub(crate) enum Attempt {
    Valid(Arc<Verified>),
    Invalid(VerifyError),
    /// The token names a key we do not have: an (async, rate-limited) JWKS refetch may help.
    NeedKeys(Option<String>, Algorithm),
}

/// What tokens must say, and how much slack time claims get.
pub(crate) struct Expectations {
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    /// Accepted access-token audiences besides the client id.
    pub(crate) audiences: Vec<String>,
    pub(crate) leeway: i64,
    pub(crate) id_token_max_age: i64,
}

pub(crate) struct Verifier {
    pub(crate) jwks: Jwks,
    issuer: String,
    client_id: String,
    audiences: Vec<String>,
    leeway: i64,
    id_token_max_age: i64,
    clock: SharedClock,
    cache: quick_cache::sync::Cache<String, Arc<Verified>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.issuer)
            .field("jwks", &self.jwks)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    pub(crate) fn new(
        jwks: Jwks,
        expect: Expectations,
        clock: SharedClock,
        cache_capacity: usize,
    ) -> Self {
        let Expectations {
            issuer,
            client_id,
            audiences,
            leeway,
            id_token_max_age,
        } = expect;
        Self {
            jwks,
            issuer,
            client_id,
            audiences,
            leeway,
            id_token_max_age,
            clock,
            cache: quick_cache::sync::Cache::new(cache_capacity.max(1)),
        }
    }

    pub(crate) fn cache_len(&self) -> usize {
        self.cache.len()
    }

    /// Whether an earlier verification still holds: not expired (with leeway), and its key is
    /// still published.
    pub(crate) fn still_valid(&self, v: &Verified) -> bool {
        self.check_times(v.exp, v.nbf, self.clock.now()).is_ok()
            && (v.generation == self.jwks.generation() || self.jwks.contains(v.kid.as_deref()))
    }

    /// Verifies an access token without waiting: a cache hit costs no cryptography.
    pub(crate) fn access_now(&self, token: &str) -> Attempt {
        self.attempt(token, false)
    }

    /// `allow_stale`: use keys past the provider's max-age (after a refetch was tried).
    fn attempt(&self, token: &str, allow_stale: bool) -> Attempt {
        let now = self.clock.now();
        if let Some(hit) = self.cache.get(token) {
            if let Err(e) = self.check_times(hit.exp, hit.nbf, now) {
                self.cache.remove(token);
                return Attempt::Invalid(e);
            }
            if hit.generation == self.jwks.generation() || self.jwks.contains(hit.kid.as_deref()) {
                return Attempt::Valid(hit);
            }
            // Its key was withdrawn from the JWKS.
            self.cache.remove(token);
            return Attempt::Invalid(VerifyError::UnknownKey);
        }
        let header = match jsonwebtoken::decode_header(token) {
            Ok(h) => h,
            Err(_) => return Attempt::Invalid(VerifyError::Malformed),
        };
        if let Some(typ) = &header.typ {
            let t = typ.to_ascii_lowercase();
            if !matches!(t.as_str(), "jwt" | "at+jwt" | "application/at+jwt") {
                return Attempt::Invalid(VerifyError::Type(typ.clone()));
            }
        }
        if !allow_stale && self.jwks.is_stale() {
            return Attempt::NeedKeys(header.kid, header.alg);
        }
        match self.jwks.lookup(header.kid.as_deref(), header.alg) {
            KeyLookup::Found(key) => {
                let generation = self.jwks.generation();
                match self.decode(token, &key.key, header.alg) {
                    Ok(claims) => match self.check_access(&claims, now) {
                        Ok((exp, nbf)) => {
                            let verified = Arc::new(Verified {
                                claims: Arc::new(claims),
                                exp,
                                nbf,
                                kid: key.kid.clone(),
                                generation,
                                session_claims: OnceLock::new(),
                                bearer_claims: OnceLock::new(),
                            });
                            self.cache.insert(token.to_owned(), verified.clone());
                            Attempt::Valid(verified)
                        }
                        Err(e) => Attempt::Invalid(e),
                    },
                    Err(e) => Attempt::Invalid(e),
                }
            }
            KeyLookup::Unknown => Attempt::NeedKeys(header.kid, header.alg),
            KeyLookup::WrongAlgorithm => Attempt::Invalid(VerifyError::Algorithm(header.alg)),
            KeyLookup::Ambiguous => Attempt::Invalid(VerifyError::AmbiguousKey),
        }
    }

    /// Verifies an access token, refetching the JWKS (rate-limited) for an unknown key.
    pub(crate) async fn access(&self, token: &str) -> Result<Arc<Verified>, VerifyError> {
        match self.access_now(token) {
            Attempt::Valid(v) => Ok(v),
            Attempt::Invalid(e) => Err(e),
            Attempt::NeedKeys(kid, alg) => {
                self.jwks.refetch_for(kid.as_deref(), alg).await;
                match self.attempt(token, true) {
                    Attempt::Valid(v) => Ok(v),
                    Attempt::Invalid(e) => Err(e),
                    Attempt::NeedKeys(..) => Err(VerifyError::UnknownKey),
                }
            }
        }
    }

    /// Verifies a back-channel logout token (OpenID Connect Back-Channel Logout 1.0, 2.6).
    /// Returns its claims; the caller checks `jti` replay.
    pub(crate) async fn logout_token(
        &self,
        token: &str,
        max_age: i64,
    ) -> Result<Map<String, Value>, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        if let Some(typ) = &header.typ {
            let t = typ.to_ascii_lowercase();
            if !matches!(t.as_str(), "jwt" | "logout+jwt" | "application/logout+jwt") {
                return Err(VerifyError::Type(typ.clone()));
            }
        }
        let key = match self.jwks.lookup(header.kid.as_deref(), header.alg) {
            KeyLookup::Found(k) => k,
            KeyLookup::Unknown => {
                match self
                    .jwks
                    .refetch_for(header.kid.as_deref(), header.alg)
                    .await
                {
                    KeyLookup::Found(k) => k,
                    _ => return Err(VerifyError::UnknownKey),
                }
            }
            KeyLookup::WrongAlgorithm => return Err(VerifyError::Algorithm(header.alg)),
            KeyLookup::Ambiguous => return Err(VerifyError::AmbiguousKey),
        };
        let claims = self.decode(token, &key.key, header.alg)?;
        self.check_logout_claims(&claims, max_age, self.clock.now())?;
        Ok(claims)
    }

    /// The claim checks of a logout token (Back-Channel Logout 1.0, 2.6), after its signature.
    /// Pure: the fuzz targets call it on any JSON.
    pub(crate) fn check_logout_claims(
        &self,
        claims: &Map<String, Value>,
        max_age: i64,
        now: i64,
    ) -> Result<(), VerifyError> {
        if claims.get("iss").and_then(Value::as_str) != Some(&self.issuer) {
            return Err(VerifyError::Issuer);
        }
        if !audiences(claims).contains(&self.client_id.as_str()) {
            return Err(VerifyError::Audience);
        }
        let iat = required_i64(claims, "iat")?;
        if iat > now + self.leeway {
            return Err(VerifyError::IssuedInFuture);
        }
        if now.saturating_sub(iat) > max_age + self.leeway {
            return Err(VerifyError::TooOld);
        }
        if let Some(exp) = claims.get("exp") {
            let exp = exp.as_i64().ok_or(VerifyError::Malformed)?;
            self.check_times(exp, None, now)?;
        }
        claims
            .get("jti")
            .and_then(Value::as_str)
            .filter(|j| !j.is_empty())
            .ok_or(VerifyError::Missing("jti"))?;
        let is_logout_event = claims
            .get("events")
            .and_then(Value::as_object)
            .and_then(|e| e.get("http://schemas.openid.net/event/backchannel-logout"))
            .is_some_and(Value::is_object);
        if !is_logout_event {
            return Err(VerifyError::Missing("events"));
        }
        let sid = claims.get("sid").and_then(Value::as_str);
        let sub = claims.get("sub").and_then(Value::as_str);
        if sid.is_none() && sub.is_none() {
            return Err(VerifyError::Missing("sid or sub"));
        }
        if claims.contains_key("nonce") {
            return Err(VerifyError::NonceInLogoutToken);
        }
        Ok(())
    }

    /// After a refetch attempt: stale keys are used, and an unknown key is final.
    pub(crate) fn access_after_refetch(&self, token: &str) -> Attempt {
        match self.attempt(token, true) {
            Attempt::NeedKeys(..) => Attempt::Invalid(VerifyError::UnknownKey),
            other => other,
        }
    }

    /// Verifies an ID token (OpenID Connect Core 3.1.3.7). `nonce`, when given, must match;
    /// `access_token`, when given, must match the `at_hash` claim if there is one; the token may
    /// not be older than the configured maximum age.
    pub(crate) async fn id_token(
        &self,
        token: &str,
        nonce: Option<&str>,
        access_token: Option<&str>,
    ) -> Result<Map<String, Value>, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        if let Some(typ) = &header.typ {
            if !typ.eq_ignore_ascii_case("jwt") {
                return Err(VerifyError::Type(typ.clone()));
            }
        }
        let lookup = if self.jwks.is_stale() {
            self.jwks
                .refetch_for(header.kid.as_deref(), header.alg)
                .await
        } else {
            self.jwks.lookup(header.kid.as_deref(), header.alg)
        };
        let key = match lookup {
            KeyLookup::Found(k) => k,
            KeyLookup::Unknown => match self
                .jwks
                .refetch_for(header.kid.as_deref(), header.alg)
                .await
            {
                KeyLookup::Found(k) => k,
                KeyLookup::WrongAlgorithm => return Err(VerifyError::Algorithm(header.alg)),
                KeyLookup::Ambiguous => return Err(VerifyError::AmbiguousKey),
                KeyLookup::Unknown => return Err(VerifyError::UnknownKey),
            },
            KeyLookup::WrongAlgorithm => return Err(VerifyError::Algorithm(header.alg)),
            KeyLookup::Ambiguous => return Err(VerifyError::AmbiguousKey),
        };
        let claims = self.decode(token, &key.key, header.alg)?;
        let now = self.clock.now();
        if claims.get("iss").and_then(Value::as_str) != Some(&self.issuer) {
            return Err(VerifyError::Issuer);
        }
        let aud = audiences(&claims);
        if !aud.contains(&self.client_id.as_str()) {
            return Err(VerifyError::Audience);
        }
        // Core 3.1.3.7 items 4 and 5.
        if let Some(azp) = claims.get("azp") {
            if azp.as_str() != Some(&self.client_id) {
                return Err(VerifyError::AuthorizedParty);
            }
        } else if aud.len() > 1 {
            return Err(VerifyError::AuthorizedParty);
        }
        required_str(&claims, "sub")?;
        let exp = required_i64(&claims, "exp")?;
        let iat = required_i64(&claims, "iat")?;
        self.check_times(exp, claims.get("nbf").and_then(Value::as_i64), now)?;
        if iat > now + self.leeway {
            return Err(VerifyError::IssuedInFuture);
        }
        if now.saturating_sub(iat) > self.id_token_max_age + self.leeway {
            return Err(VerifyError::TooOld);
        }
        if let Some(expected) = nonce {
            if claims.get("nonce").and_then(Value::as_str) != Some(expected) {
                return Err(VerifyError::Nonce);
            }
        }
        if let (Some(at), Some(at_hash)) = (access_token, claims.get("at_hash")) {
            let expected = token_hash(header.alg, at);
            if at_hash.as_str() != Some(expected.as_str()) {
                return Err(VerifyError::AtHash);
            }
        }
        Ok(claims)
    }

    fn decode(
        &self,
        token: &str,
        key: &jsonwebtoken::DecodingKey,
        alg: Algorithm,
    ) -> Result<Map<String, Value>, VerifyError> {
        // Time, issuer and audience are checked by us (with the injectable clock); the library
        // checks the signature and that the algorithm fits the key.
        let mut validation = Validation::new(alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => VerifyError::Signature,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => VerifyError::Algorithm(alg),
                _ => VerifyError::Malformed,
            })
    }

    fn check_access(
        &self,
        claims: &Map<String, Value>,
        now: i64,
    ) -> Result<(i64, Option<i64>), VerifyError> {
        if claims.get("iss").and_then(Value::as_str) != Some(&self.issuer) {
            return Err(VerifyError::Issuer);
        }
        let aud = audiences(claims);
        let ours = |a: &&str| *a == self.client_id || self.audiences.iter().any(|x| x == a);
        if aud.is_empty() {
            // Some providers (Scalekit among them) may issue access tokens without `aud` but with
            // the `client_id` they were issued to.
            if claims.get("client_id").and_then(Value::as_str) != Some(&self.client_id) {
                return Err(VerifyError::Audience);
            }
        } else if !aud.iter().any(ours) {
            return Err(VerifyError::Audience);
        }
        required_str(claims, "sub")?;
        let exp = required_i64(claims, "exp")?;
        let nbf = claims.get("nbf").and_then(Value::as_i64);
        self.check_times(exp, nbf, now)?;
        if let Some(iat) = claims.get("iat").and_then(Value::as_i64) {
            if iat > now + self.leeway {
                return Err(VerifyError::IssuedInFuture);
            }
        }
        Ok((exp, nbf))
    }

    /// The access-token claim checks alone (fuzz targets).
    pub(crate) fn check_claims_for_fuzzing(&self, claims: &Map<String, Value>) -> bool {
        self.check_access(claims, self.clock.now()).is_ok()
    }

    fn check_times(&self, exp: i64, nbf: Option<i64>, now: i64) -> Result<(), VerifyError> {
        if now >= exp.saturating_add(self.leeway) {
            return Err(VerifyError::Expired);
        }
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(self.leeway)) {
            return Err(VerifyError::NotYetValid);
        }
        Ok(())
    }
}

/// `at_hash`: the left half of the access token's hash with the ID token's algorithm's hash
/// function, base64url (OpenID Connect Core 3.1.3.6; SHA-512 for EdDSA with Ed25519).
fn token_hash(alg: Algorithm, token: &str) -> String {
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

fn required_str<'a>(
    claims: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a str, VerifyError> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .ok_or(VerifyError::Missing(name))
}

fn required_i64(claims: &Map<String, Value>, name: &'static str) -> Result<i64, VerifyError> {
    claims
        .get(name)
        .and_then(Value::as_i64)
        .ok_or(VerifyError::Missing(name))
}

fn audiences(claims: &Map<String, Value>) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::VerifyError;
    use crate::testing::TestProvider;
    use crate::Clock;
    use serde_json::json;

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
        let t =
            p.sign(&json!({"iss": p.issuer(), "aud": "test-client", "sub": "s", "exp": now + 10}));
        assert!(v.access(&t).await.is_ok());
        assert!(v.access(&t).await.is_ok(), "cache hit");
        clock.advance(std::time::Duration::from_secs(10));
        assert_eq!(v.access(&t).await.err(), Some(VerifyError::Expired));
    }
}
