//! The provider's signing keys: fetched at build, refetched on an unknown `kid` (rate-limited),
//! kept when a fetch fails.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use super::{HttpClient, ProviderError};
use crate::clock::SharedClock;

/// One usable verification key.
pub(crate) struct KeyEntry {
    pub(crate) kid: Option<String>,
    pub(crate) key: DecodingKey,
    /// Algorithms this key may verify: what its JWK allows, cut down to the configured list.
    pub(crate) algs: Vec<Algorithm>,
}

#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Arc<KeyEntry>>,
    all: Vec<Arc<KeyEntry>>,
}

impl KeySet {
    fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> KeyLookup {
        match kid {
            Some(kid) => match self.by_kid.get(kid) {
                Some(k) if k.algs.contains(&alg) => KeyLookup::Found(k.clone()),
                Some(_) => KeyLookup::WrongAlgorithm,
                None => KeyLookup::Unknown,
            },
            // No kid: only when exactly one key could have signed this.
            None => {
                let mut suitable = self.all.iter().filter(|k| k.algs.contains(&alg));
                match (suitable.next(), suitable.next()) {
                    (Some(k), None) => KeyLookup::Found(k.clone()),
                    (Some(_), Some(_)) => KeyLookup::Ambiguous,
                    (None, _) => KeyLookup::Unknown,
                }
            }
        }
    }
}

/// The result of looking up a token's key.
pub(crate) enum KeyLookup {
    Found(Arc<KeyEntry>),
    /// No key with this kid (or no suitable key without a kid): a refetch may help.
    Unknown,
    /// The key exists but may not verify this algorithm.
    WrongAlgorithm,
    /// No kid, and several keys could match.
    Ambiguous,
}

#[derive(Deserialize)]
struct RawJwkSet {
    keys: Vec<serde_json::Value>,
}

/// The JWKS cache.
pub(crate) struct Jwks {
    http: HttpClient,
    url: String,
    allowed: Vec<Algorithm>,
    clock: SharedClock,
    keys: RwLock<Arc<KeySet>>,
    fetch_lock: tokio::sync::Mutex<()>,
    last_attempt: AtomicI64,
    min_interval: i64,
    generation: AtomicU64,
    /// When the keys go stale by the provider's Cache-Control max-age (`i64::MAX`: never).
    stale_at: AtomicI64,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("url", &self.url)
            .field("keys", &self.current().all.len())
            .finish_non_exhaustive()
    }
}

impl Jwks {
    pub(crate) fn new(
        http: HttpClient,
        url: String,
        allowed: Vec<Algorithm>,
        clock: SharedClock,
        min_interval_secs: i64,
    ) -> Self {
        Self {
            http,
            url,
            allowed,
            clock,
            keys: RwLock::new(Arc::new(KeySet::default())),
            fetch_lock: tokio::sync::Mutex::new(()),
            last_attempt: AtomicI64::new(i64::MIN),
            min_interval: min_interval_secs,
            generation: AtomicU64::new(0),
            stale_at: AtomicI64::new(i64::MAX),
        }
    }

    fn current(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Bumped every time the key set is replaced.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> KeyLookup {
        self.current().lookup(kid, alg)
    }

    /// Whether the provider's Cache-Control max-age has passed since the last fetch.
    pub(crate) fn is_stale(&self) -> bool {
        self.clock.now() >= self.stale_at.load(Ordering::Relaxed)
    }

    /// Whether a key with this kid (or, for `None`, any key) is still published.
    pub(crate) fn contains(&self, kid: Option<&str>) -> bool {
        let set = self.current();
        match kid {
            Some(kid) => set.by_kid.contains_key(kid),
            None => !set.all.is_empty(),
        }
    }

    /// The first fetch, at build time: failures are errors. It does not count against the
    /// refetch rate limit, so a key rotated right after start-up is picked up at once.
    pub(crate) async fn fetch_now(&self) -> Result<(), ProviderError> {
        let _guard = self.fetch_lock.lock().await;
        self.fetch_and_store().await
    }

    /// Refetches because a token named a key we do not have. At most one fetch runs at a time
    /// and at most one starts per `min_interval`; a failed fetch keeps the keys we had.
    pub(crate) async fn refetch_for(&self, kid: Option<&str>, alg: Algorithm) -> KeyLookup {
        let _guard = self.fetch_lock.lock().await;
        // Another request may have fetched while we waited.
        let found = self.lookup(kid, alg);
        if !matches!(found, KeyLookup::Unknown) && !self.is_stale() {
            return found;
        }
        let now = self.clock.now();
        let last = self.last_attempt.load(Ordering::Relaxed);
        if last != i64::MIN && now.saturating_sub(last) < self.min_interval {
            tracing::debug!(kid, "unknown signing key; JWKS refetch rate-limited");
            return found;
        }
        self.last_attempt.store(now, Ordering::Relaxed);
        if let Err(error) = self.fetch_and_store().await {
            tracing::warn!(%error, url = %self.url, "JWKS refetch failed; keeping cached keys");
        }
        self.lookup(kid, alg)
    }

    /// Loads a JWKS document without fetching (fuzz targets). It counts as a fetch attempt for
    /// the refetch rate limit, so with a `min_interval` of `i64::MAX` no fetch ever follows.
    pub(crate) fn load_json(&self, json: &str) {
        if let Ok(raw) = serde_json::from_str::<RawJwkSet>(json) {
            let set = Arc::new(self.parse(raw));
            match self.keys.write() {
                Ok(mut guard) => *guard = set,
                Err(poisoned) => *poisoned.into_inner() = set,
            }
        }
        self.last_attempt.store(self.clock.now(), Ordering::Relaxed);
    }

    /// Parses a JWKS document as a fetch would, without storing it (fuzz targets). Returns how
    /// many keys are usable, and which of `lookups` find a key.
    pub(crate) fn parse_for_fuzzing(
        &self,
        body: &[u8],
        lookups: &[(Option<&str>, Algorithm)],
    ) -> Option<(usize, Vec<bool>)> {
        let raw = serde_json::from_slice::<RawJwkSet>(body).ok()?;
        let set = self.parse(raw);
        let found = lookups
            .iter()
            .map(|(kid, alg)| matches!(set.lookup(*kid, *alg), KeyLookup::Found(_)))
            .collect();
        Some((set.all.len(), found))
    }

    async fn fetch_and_store(&self) -> Result<(), ProviderError> {
        let (raw, max_age) = self.http.get_json::<RawJwkSet>(&self.url).await?;
        let set = self.parse(raw);
        if set.all.is_empty() {
            return Err(ProviderError::Malformed(format!(
                "{}: no usable signing keys (allowed algorithms: {:?})",
                self.url, self.allowed
            )));
        }
        tracing::debug!(keys = set.all.len(), url = %self.url, "JWKS loaded");
        let set = Arc::new(set);
        match self.keys.write() {
            Ok(mut guard) => *guard = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        let stale_at = match max_age {
            Some(secs) => self
                .clock
                .now()
                .saturating_add(i64::try_from(secs).unwrap_or(i64::MAX)),
            None => i64::MAX,
        };
        self.stale_at.store(stale_at, Ordering::Relaxed);
        Ok(())
    }

    fn parse(&self, raw: RawJwkSet) -> KeySet {
        let mut set = KeySet::default();
        for value in raw.keys {
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
                continue;
            };
            let Some(entry) = key_entry(&jwk, &self.allowed) else {
                continue;
            };
            let entry = Arc::new(entry);
            if let Some(kid) = &entry.kid {
                // Duplicate kids are ambiguous; the first one wins, as most libraries do.
                set.by_kid
                    .entry(kid.clone())
                    .or_insert_with(|| entry.clone());
            }
            set.all.push(entry);
        }
        set
    }
}

/// The algorithms a JWK may verify, from its key type and `alg`, within `allowed`.
/// Symmetric keys are never usable: a public JWKS must not hold an HMAC secret.
fn key_entry(jwk: &Jwk, allowed: &[Algorithm]) -> Option<KeyEntry> {
    use jsonwebtoken::jwk::PublicKeyUse;
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption) | Some(PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let by_type: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => vec![],
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            _ => vec![],
        },
        AlgorithmParameters::OctetKey(_) => vec![],
    };
    let by_alg = match jwk.common.key_algorithm {
        None => None,
        Some(ka) => Some(signing_alg(ka)?),
    };
    let algs: Vec<Algorithm> = by_type
        .into_iter()
        .filter(|a| by_alg.is_none_or(|b| b == *a) && allowed.contains(a))
        .collect();
    if algs.is_empty() {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(KeyEntry {
        kid: jwk.common.key_id.clone(),
        key,
        algs,
    })
}

fn signing_alg(ka: KeyAlgorithm) -> Option<Algorithm> {
    Some(match ka {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(v: serde_json::Value) -> Jwk {
        serde_json::from_value(v).unwrap()
    }

    const N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

    #[test]
    fn rsa_key_gets_rsa_algorithms_within_allow_list() {
        let k = jwk(serde_json::json!({"kty":"RSA","kid":"a","n":N,"e":"AQAB"}));
        let e = key_entry(&k, &[Algorithm::RS256, Algorithm::ES256]).unwrap();
        assert_eq!(e.algs, vec![Algorithm::RS256]);
    }

    #[test]
    fn jwk_alg_narrows_the_list() {
        let k = jwk(serde_json::json!({"kty":"RSA","kid":"a","alg":"PS256","n":N,"e":"AQAB"}));
        assert!(key_entry(&k, &[Algorithm::RS256]).is_none());
        let e = key_entry(&k, &[Algorithm::RS256, Algorithm::PS256]).unwrap();
        assert_eq!(e.algs, vec![Algorithm::PS256]);
    }

    #[test]
    fn symmetric_and_encryption_keys_are_refused() {
        let oct = jwk(serde_json::json!({"kty":"oct","kid":"h","k":"c2VjcmV0"}));
        assert!(key_entry(&oct, &[Algorithm::HS256, Algorithm::RS256]).is_none());
        let enc = jwk(serde_json::json!({"kty":"RSA","kid":"e","use":"enc","n":N,"e":"AQAB"}));
        assert!(key_entry(&enc, &[Algorithm::RS256]).is_none());
    }

    #[test]
    fn missing_kid_needs_exactly_one_candidate() {
        let mk = |kid: &str| {
            Arc::new(
                key_entry(
                    &jwk(serde_json::json!({"kty":"RSA","kid":kid,"n":N,"e":"AQAB"})),
                    &[Algorithm::RS256],
                )
                .unwrap(),
            )
        };
        let mut set = KeySet::default();
        let a = mk("a");
        set.by_kid.insert("a".into(), a.clone());
        set.all.push(a);
        assert!(matches!(
            set.lookup(None, Algorithm::RS256),
            KeyLookup::Found(_)
        ));
        assert!(matches!(
            set.lookup(Some("a"), Algorithm::ES256),
            KeyLookup::WrongAlgorithm
        ));
        assert!(matches!(
            set.lookup(Some("zz"), Algorithm::RS256),
            KeyLookup::Unknown
        ));
        let b = mk("b");
        set.by_kid.insert("b".into(), b.clone());
        set.all.push(b);
        assert!(matches!(
            set.lookup(None, Algorithm::RS256),
            KeyLookup::Ambiguous
        ));
    }
}
