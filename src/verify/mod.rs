//! JWT validation: signature by the provider's keys, algorithm allow-list, iss, aud, time claims,
//! nonce; and a bounded cache of access tokens already verified.
//!
//! `types`: what verification decides; `memo`: the signature memo; `tokens`: ID, logout and
//! IdP-initiated login tokens; `checks`: the claim checks they share.

mod checks;
mod decode;
mod memo;
#[cfg(all(test, feature = "testing"))]
mod tests;
mod tokens;
mod types;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use jsonwebtoken::Algorithm;

use crate::claims::LayerId;
use crate::clock::SharedClock;
use crate::config::m2m::M2mClients;
use crate::provider::{Jwks, KeyLookup};

use checks::*;
pub(crate) use checks::{
    is_jwt_shaped, looks_like_id_token, numeric_date, unverified_audiences, unverified_issuer,
};
pub(crate) use memo::*;
pub(crate) use types::*;

/// What a synchronous verification attempt found.
#[must_use]
pub(crate) enum Attempt {
    Valid(Arc<Verified>),
    Invalid(VerifyError),
    /// An (async, rate-limited) JWKS refetch may help: the token names a key we do not have,
    /// or the key we have under its name did not verify it.
    NeedKeys(Option<String>, Algorithm, Refetch),
}

impl From<Result<Arc<Verified>, VerifyError>> for Attempt {
    /// The outcome of [`Verifier::access`], which already tried a refetch where one could help.
    fn from(result: Result<Arc<Verified>, VerifyError>) -> Self {
        match result {
            Ok(v) => Attempt::Valid(v),
            Err(e) => Attempt::Invalid(e),
        }
    }
}

impl Attempt {
    /// A valid token that may not be used for `purpose` becomes invalid.
    fn for_purpose(self, purpose: Purpose) -> Self {
        match self {
            Attempt::Valid(v) => match v.reach.allows(purpose) {
                Ok(()) => Attempt::Valid(v),
                Err(e) => Attempt::Invalid(e),
            },
            other => other,
        }
    }
}

/// Why a verification needs the key set fetched again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refetch {
    /// No published key fits the token (or the keys are past the provider's max-age).
    Missing,
    /// The key we have for it did not verify the signature: the provider may have replaced the
    /// key material under that kid (or its only kid-less key).
    Replaced,
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
    /// The M2M clients whose tokens without `aud` are accepted as bearer tokens (`None`: none).
    m2m_clients: Option<M2mClients>,
    leeway: i64,
    id_token_max_age: i64,
    clock: SharedClock,
    cache: quick_cache::sync::Cache<String, Arc<Verified>>,
    /// Which key verified which token, for tokens beyond the verified-token cache (see
    /// [`SignatureMemo`]).
    memo: SignatureMemo,
    /// The header `typ` access tokens must have, normalized (`None`: any of JWT's usual ones).
    access_typ: Option<String>,
    /// The identity of the layer this verifier serves; claims it makes carry it.
    layer: LayerId,
    /// Access tokens must name one of `audiences` in `aud`: the client id is not an audience,
    /// and a token without `aud` is refused (a protected resource, a trusted issuer).
    strict_audiences: bool,
    /// A trusted issuer's verifier (not the layer's provider's): its claims say so.
    foreign: bool,
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
            m2m_clients: None,
            leeway,
            id_token_max_age,
            clock,
            cache: quick_cache::sync::Cache::new(cache_capacity.max(1)),
            memo: SignatureMemo::new(cache_capacity.max(1).saturating_mul(MEMO_PER_CACHE_ENTRY)),
            access_typ: None,
            layer: LayerId::next(),
            strict_audiences: false,
            foreign: false,
        }
    }

    /// Accepts only access tokens that name one of the configured audiences in `aud`.
    pub(crate) fn with_strict_audiences(mut self, on: bool) -> Self {
        self.strict_audiences = on;
        self
    }

    /// A trusted issuer's verifier for the layer `layer`: its claims carry the layer's id, so
    /// they pass the layer's guards, and say they come from a trusted issuer
    /// ([`Claims::from_trusted_issuer`](crate::Claims::from_trusted_issuer)), so nothing keyed
    /// by the layer's provider's subjects (stored sessions, the Management API) takes them for
    /// the provider's users.
    pub(crate) fn for_trusted_issuer(mut self, layer: LayerId) -> Self {
        self.layer = layer;
        self.foreign = true;
        self
    }

    /// The issuer whose tokens this verifier accepts.
    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Requires access tokens to carry this header `typ` (`at+jwt` and `application/at+jwt`
    /// are the same type, RFC 7515 section 4.1.9).
    pub(crate) fn with_access_typ(mut self, typ: Option<&str>) -> Self {
        self.access_typ = typ.map(normalize_typ);
        self
    }

    /// Accepts, as bearer tokens, machine tokens without `aud` of these clients of the issuer
    /// (see [`AuthLayerBuilder::accept_m2m_clients`](crate::AuthLayerBuilder::accept_m2m_clients)).
    pub(crate) fn with_m2m_clients(mut self, clients: Option<M2mClients>) -> Self {
        self.m2m_clients = clients;
        self
    }

    /// The layer this verifier serves.
    pub(crate) fn layer(&self) -> LayerId {
        self.layer
    }

    /// Seconds of slack the time claims get.
    pub(crate) fn leeway(&self) -> i64 {
        self.leeway
    }

    /// Whether this verifier's verified-token cache holds `token` (a bearer token it verified).
    pub(crate) fn has_verified(&self, token: &str) -> bool {
        self.cache.peek(token).is_some()
    }

    pub(crate) fn cache_len(&self) -> usize {
        self.cache.len()
    }

    /// How many tokens the signature memo holds.
    pub(crate) fn memo_len(&self) -> usize {
        self.memo.len()
    }

    /// Whether an earlier verification still holds: not expired (with leeway), and the key that
    /// verified it is still published.
    pub(crate) fn still_good(&self, v: &Validity, now: i64) -> bool {
        self.check_times(v.exp, v.nbf, now).is_ok() && self.binding_holds(&v.binding, now, false)
    }

    /// Whether a remembered verification's key may still be relied on, by the rules of a first
    /// verification: past the provider's max-age, a token without `kid` cannot tell a stale key
    /// from a new one, so it waits for the keys (unless they were just refetched:
    /// `allow_stale`); any other is served while the keys are revalidated in the background.
    /// Then the key must still be the one the key set picks for the token.
    fn binding_holds(&self, b: &KeyBinding, now: i64, allow_stale: bool) -> bool {
        if !allow_stale && b.kid.is_none() && self.jwks.is_stale() {
            return false;
        }
        self.jwks.revalidate_if_stale(now);
        self.key_still_published(b)
    }

    /// Whether the JWKS still picks, for the token, the key that verified it: not just a key
    /// with its kid (or, without kid, any key), but the same key material. While the key set
    /// is unchanged this is one comparison; after a change, one lookup, remembered.
    fn key_still_published(&self, b: &KeyBinding) -> bool {
        // Read before the lookup, so the key set looked at is at least this generation.
        let generation = self.jwks.generation();
        if b.generation.load(Ordering::Relaxed) == generation {
            return true;
        }
        if self.jwks.selects(b.kid.as_deref(), b.alg, &b.thumbprint) {
            b.generation.store(generation, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Verifies an access token without waiting: a cache hit costs no cryptography. A token
    /// that verifies but may not be used for `purpose` (see [`Reach`]) is invalid.
    pub(crate) fn access_now(&self, token: &str, purpose: Purpose) -> Attempt {
        self.attempt(token, false, purpose).for_purpose(purpose)
    }

    /// `allow_stale`: use keys past the provider's max-age (after a refetch was tried).
    ///
    /// Only bearer tokens use the verified-token cache: a session's verification is remembered,
    /// in a few dozen bytes, by the verified-session cache (`session_cache`), and a second copy
    /// keyed by the token (about 1 KB of key alone) would only double the memory of every
    /// session. Beyond the caches, the signature memo serves both.
    fn attempt(&self, token: &str, allow_stale: bool, purpose: Purpose) -> Attempt {
        let now = self.clock.now();
        let use_cache = purpose == Purpose::Bearer;
        if let Some(hit) = use_cache.then(|| self.cache.get(token)).flatten() {
            if let Err(e) = self.check_times(hit.exp, hit.nbf, now) {
                self.cache.remove(token);
                return Attempt::Invalid(e);
            }
            // Past the provider's max-age, a hit with a `kid` still serves, and the keys are
            // revalidated in the background: a withdrawn key is noticed without waiting for a
            // new token.
            if self.binding_holds(&hit.binding, now, allow_stale) {
                return Attempt::Valid(hit);
            }
            // The key that verified it was withdrawn or replaced, or cannot be told apart from
            // a new one yet: verify it afresh, as a first verification would.
            self.cache.remove(token);
        }
        let header = match parse_header(token) {
            Ok(h) => h,
            Err(e) => return Attempt::Invalid(e),
        };
        let typ = header.typ.as_deref().map(normalize_typ);
        let typ_ok = match (&self.access_typ, typ.as_deref()) {
            (Some(required), found) => found == Some(required.as_str()),
            (None, None | Some("jwt" | "at+jwt")) => true,
            (None, Some(_)) => false,
        };
        if !typ_ok {
            return Attempt::Invalid(VerifyError::Type(header.typ.unwrap_or_default()));
        }
        if !allow_stale {
            // Past the provider's max-age: a token without kid cannot tell a stale key from a
            // new one, so it waits for the keys; any other uses the stale ones while they are
            // revalidated in the background.
            if header.kid.is_none() && self.jwks.is_stale() {
                return Attempt::NeedKeys(header.kid, header.alg, Refetch::Missing);
            }
            self.jwks.revalidate_if_stale(now);
        }
        // Read before the lookup: a verification never claims a newer key set than it used.
        let generation = self.jwks.generation();
        match self.jwks.lookup(header.kid.as_deref(), header.alg) {
            KeyLookup::Found(key) => match self.decode_memoized(token, &key, header.alg) {
                Ok(claims) => match self.check_access(&claims, now) {
                    Ok((exp, nbf, reach)) => {
                        let verified = Arc::new(Verified {
                            claims: Arc::new(claims),
                            exp,
                            reach,
                            layer: self.layer,
                            foreign: self.foreign,
                            nbf,
                            binding: KeyBinding {
                                kid: header.kid.map(String::into_boxed_str),
                                alg: header.alg,
                                thumbprint: key.thumbprint.clone(),
                                generation: AtomicU64::new(generation),
                            },
                            session_claims: OnceLock::new(),
                            bearer_claims: OnceLock::new(),
                        });
                        if use_cache {
                            self.cache.insert(token.to_owned(), verified.clone());
                        }
                        Attempt::Valid(verified)
                    }
                    Err(e) => Attempt::Invalid(e),
                },
                Err(VerifyError::Signature) if !allow_stale => {
                    Attempt::NeedKeys(header.kid, header.alg, Refetch::Replaced)
                }
                Err(e) => Attempt::Invalid(e),
            },
            KeyLookup::Unknown => Attempt::NeedKeys(header.kid, header.alg, Refetch::Missing),
            KeyLookup::WrongAlgorithm => Attempt::Invalid(VerifyError::Algorithm(header.alg)),
            KeyLookup::Ambiguous => Attempt::Invalid(VerifyError::AmbiguousKey),
        }
    }

    /// Verifies an access token, refetching the JWKS (rate-limited) for an unknown key. A
    /// token that verifies but may not be used for `purpose` (see [`Reach`]) is refused.
    pub(crate) async fn access(
        &self,
        token: &str,
        purpose: Purpose,
    ) -> Result<Arc<Verified>, VerifyError> {
        self.access_with(token, purpose, false).await
    }

    /// Like [`access`](Self::access), for a token that came straight from the token endpoint:
    /// its key is fetched regardless of the refetch rate limit.
    pub(crate) async fn access_from_token_endpoint(
        &self,
        token: &str,
        purpose: Purpose,
    ) -> Result<Arc<Verified>, VerifyError> {
        self.access_with(token, purpose, true).await
    }

    async fn access_with(
        &self,
        token: &str,
        purpose: Purpose,
        fresh: bool,
    ) -> Result<Arc<Verified>, VerifyError> {
        match self.access_now(token, purpose) {
            Attempt::Valid(v) => Ok(v),
            Attempt::Invalid(e) => Err(e),
            Attempt::NeedKeys(kid, alg, why) => {
                // No key fetch for a token that does not even claim to be this issuer's: it
                // could never verify, and would spend the refetch budget of real rotations.
                if unverified_issuer(token)?.as_deref() != Some(self.issuer.as_str()) {
                    return Err(VerifyError::Issuer);
                }
                match why {
                    Refetch::Missing => {
                        self.jwks.refetch_for(kid.as_deref(), alg, fresh).await;
                    }
                    // No new key set (rate-limited, or the fetch failed): the signature stays
                    // bad, without verifying it again.
                    Refetch::Replaced if !self.jwks.refetch_replaced(fresh).await => {
                        return Err(VerifyError::Signature);
                    }
                    Refetch::Replaced => {}
                }
                match self.attempt(token, true, purpose).for_purpose(purpose) {
                    Attempt::Valid(v) => Ok(v),
                    Attempt::Invalid(e) => Err(e),
                    Attempt::NeedKeys(..) => Err(VerifyError::UnknownKey),
                }
            }
        }
    }
}
