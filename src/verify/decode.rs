//! Decoding a token against the key set, and the claim checks every token gets.

use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use crate::claims::is_machine_token;
use crate::provider::KeyLookup;

use super::checks::{audiences, looks_like_id_token, required_str, Times};
use super::{Reach, TokenDigest, Verifier, VerifyError};

impl Verifier {
    /// The claims of an ID or logout token, once its signature verifies by a published key. An
    /// unknown key waits for a (rate-limited, shared) refetch; keys past the provider's max-age
    /// serve while a background refetch revalidates them; a known key that does not verify the
    /// signature has the key set fetched again, since the provider may have replaced the key
    /// material under that kid. `fresh`: the token came straight from the token endpoint, and
    /// the refetch rate limit does not apply.
    pub(super) async fn signed_claims(
        &self,
        token: &str,
        header: &jsonwebtoken::Header,
        fresh: bool,
    ) -> Result<Map<String, Value>, VerifyError> {
        let (kid, alg) = (header.kid.as_deref(), header.alg);
        let key = match self.jwks.refetch_for(kid, alg, fresh).await {
            KeyLookup::Found(k) => k,
            KeyLookup::Unknown => return Err(VerifyError::UnknownKey),
            KeyLookup::WrongAlgorithm => return Err(VerifyError::Algorithm(alg)),
            KeyLookup::Ambiguous => return Err(VerifyError::AmbiguousKey),
        };
        match self.decode(token, &key.key, alg) {
            Err(VerifyError::Signature) if self.jwks.refetch_replaced(fresh).await => {
                match self.jwks.lookup(kid, alg) {
                    KeyLookup::Found(k) if k.thumbprint != key.thumbprint => {
                        self.decode(token, &k.key, alg)
                    }
                    _ => Err(VerifyError::Signature),
                }
            }
            other => other,
        }
    }

    /// The claims of an access token signed by `key`: without signature work when the memo
    /// says this very token was verified by this very key (same thumbprint) before; otherwise
    /// verified, and memoized on success. Every claim check still follows, by the caller.
    pub(super) fn decode_memoized(
        &self,
        token: &str,
        key: &crate::provider::KeyEntry,
        alg: Algorithm,
    ) -> Result<Map<String, Value>, VerifyError> {
        let digest = TokenDigest::of(token);
        if self.memo.verified_by(&digest, &key.thumbprint) {
            return jsonwebtoken::dangerous::insecure_decode::<Map<String, Value>>(token)
                .map(|data| data.claims)
                .map_err(|_| VerifyError::Malformed);
        }
        let claims = self.decode(token, &key.key, alg)?;
        self.memo.insert(digest, key.thumbprint.clone());
        Ok(claims)
    }

    pub(super) fn decode(
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

    /// The claim checks of an access token. Returns `exp`, `nbf`, and where the token may be
    /// used ([`Reach`]).
    pub(super) fn check_access(
        &self,
        claims: &Map<String, Value>,
        now: i64,
    ) -> Result<(i64, Option<i64>, Reach), VerifyError> {
        if claims.get("iss").and_then(Value::as_str) != Some(&self.issuer) {
            return Err(VerifyError::Issuer);
        }
        // An ID token travels in front-channel URLs (`id_token_hint`) and lives longer than an
        // access token: it must never pass as one. Its markers: a nonce (every login of ours
        // sends one), the hashes that bind it to a code or access token, Keycloak's `typ: ID`.
        // `auth_time` alone is no marker: Keycloak's access tokens carry it.
        // A logout token is a security event token: its `events` claim tells it apart from an
        // access token (RFC 8417, section 2.2; Back-Channel Logout 1.0, section 2.4).
        if looks_like_id_token(claims) || claims.contains_key("events") {
            return Err(VerifyError::NotAnAccessToken);
        }
        let aud = audiences(claims);
        let ours = |a: &&str| {
            (!self.strict_audiences && *a == self.client_id)
                || self.audiences.iter().any(|x| x == a)
        };
        if self.strict_audiences && aud.is_empty() {
            // A protected resource, or another issuer trusted for named audiences: only a
            // token issued for one of them, which says so.
            return Err(VerifyError::Audience);
        }
        // A machine token (client credentials) is never a user session, wherever it came from.
        let machine = is_machine_token(claims);
        let named = if aud.is_empty() {
            // Some providers (Scalekit among them) may issue access tokens without `aud` but with
            // the `client_id` they were issued to; others name no audience at all.
            match claims.get("client_id") {
                None => false,
                Some(id) if id.as_str() == Some(&self.client_id) => true,
                // Scalekit's M2M tokens name no audience unless their client was registered
                // with one: the app says which clients of its environment it accepts.
                Some(Value::String(id)) if machine => {
                    if !self.m2m_clients.as_ref().is_some_and(|m| m.accepts(id)) {
                        return Err(VerifyError::MachineClient);
                    }
                    true
                }
                Some(_) => return Err(VerifyError::Audience),
            }
        } else if aud.iter().any(ours) {
            true
        } else {
            // A token that names an audience must name one of ours, M2M tokens included.
            return Err(VerifyError::Audience);
        };
        let reach = if machine {
            Reach::BearerOnly
        } else if named {
            Reach::Both
        } else {
            Reach::SessionOnly
        };
        required_str(claims, "sub")?;
        let times = Times::of(claims)?;
        let (exp, nbf) = (times.exp()?, times.nbf);
        self.check_times(exp, nbf, now)?;
        self.check_iat(times.iat, now)?;
        Ok((exp, nbf, reach))
    }

    /// The access-token claim checks alone (fuzz targets).
    #[cfg(any(test, feature = "__private"))]
    pub(crate) fn check_claims_for_fuzzing(&self, claims: &Map<String, Value>) -> bool {
        self.check_access(claims, self.clock.now()).is_ok()
    }

    pub(super) fn check_iat(&self, iat: Option<i64>, now: i64) -> Result<(), VerifyError> {
        if iat.is_some_and(|iat| iat > now.saturating_add(self.leeway)) {
            return Err(VerifyError::IssuedInFuture);
        }
        Ok(())
    }

    pub(super) fn check_times(
        &self,
        exp: i64,
        nbf: Option<i64>,
        now: i64,
    ) -> Result<(), VerifyError> {
        if now >= exp.saturating_add(self.leeway) {
            return Err(VerifyError::Expired);
        }
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(self.leeway)) {
            return Err(VerifyError::NotYetValid);
        }
        Ok(())
    }
}
