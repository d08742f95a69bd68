//! The provider's signing keys: fetched at build, refetched on an unknown `kid` (rate-limited,
//! one fetch at a time, shared by everyone who waits for it), revalidated in the background once
//! the provider's max-age has passed, kept when a fetch fails.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use futures_util::future::{FutureExt, Shared};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use tokio::sync::oneshot;

use super::{HttpClient, ProviderError};
use crate::clock::SharedClock;
use crate::error::Chain;

/// One usable verification key.
pub(crate) struct KeyEntry {
    pub(crate) kid: Option<String>,
    pub(crate) key: DecodingKey,
    /// Algorithms this key may verify: what its JWK allows, cut down to the configured list.
    pub(crate) algs: Vec<Algorithm>,
    /// The key's identity: its RFC 7638 JWK thumbprint (SHA-256), computed once when the JWKS
    /// is parsed. Another key under the same kid, or another key without kid, has another one.
    pub(crate) thumbprint: Arc<str>,
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
    inner: Arc<Inner>,
}

struct Inner {
    http: HttpClient,
    url: String,
    allowed: Vec<Algorithm>,
    clock: SharedClock,
    keys: RwLock<Arc<KeySet>>,
    /// The refetch in flight, if any: whoever needs its outcome awaits this one instead of
    /// starting another.
    flight: Mutex<Option<Flight>>,
    /// When the last refetch ended (`i64::MIN`: none yet). The rate limit counts from the end,
    /// so a fetch that hung until its timeout does not let the next one start at once.
    last_attempt: AtomicI64,
    min_interval: i64,
    generation: AtomicU64,
    /// When the keys go stale by the provider's Cache-Control max-age (`i64::MAX`: never).
    stale_at: AtomicI64,
}

/// Resolves when the refetch in flight has ended, whatever its outcome (the sender is dropped).
type Flight = Shared<oneshot::Receiver<()>>;

/// Owned by a refetch task. However the task ends (done, panicked, dropped unpolled at runtime
/// shutdown), dropping this records the end for the rate limit, clears the flight and only then
/// wakes the waiters, so they look up the keys the fetch stored.
struct Landing {
    inner: Arc<Inner>,
    _done: oneshot::Sender<()>,
}

impl Drop for Landing {
    fn drop(&mut self) {
        let inner = &self.inner;
        inner
            .last_attempt
            .store(inner.clock.now(), Ordering::Release);
        *lock(&inner.flight) = None;
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("url", &self.inner.url)
            .field("keys", &self.inner.current().all.len())
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
            inner: Arc::new(Inner {
                http,
                url,
                allowed,
                clock,
                keys: RwLock::new(Arc::new(KeySet::default())),
                flight: Mutex::new(None),
                last_attempt: AtomicI64::new(i64::MIN),
                min_interval: min_interval_secs,
                generation: AtomicU64::new(0),
                stale_at: AtomicI64::new(i64::MAX),
            }),
        }
    }

    /// Bumped every time the key set is replaced.
    pub(crate) fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    pub(crate) fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> KeyLookup {
        self.inner.current().lookup(kid, alg)
    }

    /// Whether the provider's Cache-Control max-age has passed since the last fetch.
    pub(crate) fn is_stale(&self) -> bool {
        self.inner.is_stale()
    }

    /// Whether the current keys would pick, for a token naming `kid` and `alg`, the very key
    /// with this thumbprint: the key that verified it is still published, under that kid.
    pub(crate) fn selects(&self, kid: Option<&str>, alg: Algorithm, thumbprint: &str) -> bool {
        matches!(self.lookup(kid, alg), KeyLookup::Found(k) if *k.thumbprint == *thumbprint)
    }

    /// The first fetch, at build time: failures are errors. It does not count against the
    /// refetch rate limit, so a key rotated right after start-up is picked up at once.
    pub(crate) async fn fetch_now(&self) -> Result<(), ProviderError> {
        self.inner.fetch_and_store(true).await
    }

    /// Starts a background refetch when the keys are past the provider's max-age (`now` is the
    /// caller's clock reading), without waiting for it: verifications served from a cache keep
    /// the keys revalidated, so a withdrawn key is noticed even when no new token arrives.
    /// Costs one atomic load while the keys are fresh.
    pub(crate) fn revalidate_if_stale(&self, now: i64) {
        let inner = &self.inner;
        if now < inner.stale_at.load(Ordering::Relaxed) {
            return;
        }
        let last = inner.last_attempt.load(Ordering::Acquire);
        if last != i64::MIN && now.saturating_sub(last) < inner.min_interval {
            return;
        }
        drop(inner.start_refetch(false, "stale"));
    }

    /// Refetches because the key we have for `kid` (or the only kid-less key) did not verify a
    /// signature: the provider may have replaced the key material under that kid. Waits for the
    /// fetch (the one in flight, or a new one within the rate limit). `false` when no new key
    /// set arrived, so a bad signature stays a bad signature without more work.
    ///
    /// `fresh`: the token came straight from the token endpoint (in exchange for our code or
    /// refresh token), so the rate limit does not apply (see [`refetch_for`](Self::refetch_for)).
    pub(crate) async fn refetch_replaced(&self, fresh: bool) -> bool {
        let before = self.generation();
        match self.inner.start_refetch(fresh, "bad_signature") {
            Some(flight) => {
                let _ = flight.await;
                self.generation() != before
            }
            None => false,
        }
    }

    /// Looks up a token's key, fetching the JWKS when that may help.
    ///
    /// A key we have is returned at once, even past the provider's max-age: stale keys keep
    /// serving while a background refetch revalidates them. A kid we do not have (or, past
    /// max-age, a token without kid, which cannot tell a stale key from its own) waits for a
    /// refetch: the one in flight if there is one, else a new one, at most one per
    /// `min_interval` counted from the end of the last. A failed fetch keeps the keys we had.
    ///
    /// `fresh`: the token came straight from the token endpoint, in exchange for our own code or
    /// refresh token. Its key is fetched regardless of the rate limit (still one fetch at a
    /// time): such a token cannot be made up by a client, and refusing it for want of a fetch
    /// would throw away a grant the provider has already made (a rotated refresh token).
    pub(crate) async fn refetch_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        fresh: bool,
    ) -> KeyLookup {
        let found = self.lookup(kid, alg);
        let stale = self.is_stale();
        let must_wait = matches!(found, KeyLookup::Unknown) || (stale && kid.is_none());
        if !must_wait {
            if stale {
                // Revalidate in the background; nobody waits for it.
                drop(self.inner.start_refetch(false, "stale"));
            }
            return found;
        }
        let reason = if matches!(found, KeyLookup::Unknown) {
            "unknown_kid"
        } else {
            "stale"
        };
        match self.inner.start_refetch(fresh, reason) {
            Some(flight) => {
                // Its outcome is read from the key set; an error was logged by the fetch.
                let _ = flight.await;
            }
            None => {
                tracing::debug!(kid, "JWKS refetch rate-limited; using the keys we have");
                return found;
            }
        }
        self.lookup(kid, alg)
    }

    /// Loads a JWKS document without fetching (fuzz targets). It counts as a fetch attempt for
    /// the refetch rate limit, so with a `min_interval` of `i64::MAX` no fetch ever follows.
    #[cfg(any(test, feature = "__private"))]
    pub(crate) fn load_json(&self, json: &str) {
        if let Ok(raw) = serde_json::from_str::<RawJwkSet>(json) {
            let set = Arc::new(self.inner.parse(raw));
            self.inner.replace(set);
        }
        self.inner
            .last_attempt
            .store(self.inner.clock.now(), Ordering::Release);
    }

    /// Parses a JWKS document as a fetch would, without storing it (fuzz targets). Returns how
    /// many keys are usable, and which of `lookups` find a key.
    #[cfg(any(test, feature = "__private"))]
    pub(crate) fn parse_for_fuzzing(
        &self,
        body: &[u8],
        lookups: &[(Option<&str>, Algorithm)],
    ) -> Option<(usize, Vec<bool>)> {
        let raw = serde_json::from_slice::<RawJwkSet>(body).ok()?;
        let set = self.inner.parse(raw);
        let found = lookups
            .iter()
            .map(|(kid, alg)| matches!(set.lookup(*kid, *alg), KeyLookup::Found(_)))
            .collect();
        Some((set.all.len(), found))
    }
}

impl Inner {
    fn current(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, set: Arc<KeySet>) {
        match self.keys.write() {
            Ok(mut guard) => *guard = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
    }

    fn is_stale(&self) -> bool {
        self.clock.now() >= self.stale_at.load(Ordering::Relaxed)
    }

    /// The refetch in flight, or a new one started in the background (a spawned task, so it
    /// runs to its end even if every waiter goes away), counted under `reason` (a label of
    /// `oidc_jwks_refetch_total`: `stale`, `unknown_kid`, `bad_signature`). `None` when
    /// rate-limited (unless `fresh`), or outside a tokio runtime.
    fn start_refetch(self: &Arc<Self>, fresh: bool, reason: &'static str) -> Option<Flight> {
        let (flight, landing, runtime) = {
            let mut slot = lock(&self.flight);
            if let Some(flight) = slot.as_ref() {
                return Some(flight.clone());
            }
            let last = self.last_attempt.load(Ordering::Acquire);
            if !fresh
                && last != i64::MIN
                && self.clock.now().saturating_sub(last) < self.min_interval
            {
                return None;
            }
            let runtime = tokio::runtime::Handle::try_current().ok()?;
            let (done, ended) = oneshot::channel();
            let flight = ended.shared();
            *slot = Some(flight.clone());
            let landing = Landing {
                inner: self.clone(),
                _done: done,
            };
            (flight, landing, runtime)
        };
        // A new fetch (not one joined, nor one refused by the rate limit).
        crate::telemetry::jwks_refetch(reason);
        // Spawned outside the lock: a task dropped at once (runtime shutting down) clears the
        // slot through its `Landing`.
        runtime.spawn(async move {
            let inner = &landing.inner;
            if let Err(error) = inner.fetch_and_store(false).await {
                tracing::warn!(error = %Chain(&error), url = %inner.url, "JWKS refetch failed; keeping cached keys");
            }
            drop(landing);
        });
        Some(flight)
    }

    /// Fetches the key set and replaces ours. `initial`: the fetch at build time, where a set
    /// without a usable key is a configuration error. Later, a set that was fetched and parsed
    /// but holds no usable key replaces ours all the same: emptying the set (or republishing a
    /// key for encryption only) is how a provider withdraws a leaked key in a hurry, and only a
    /// fetch that fails keeps the keys we had.
    async fn fetch_and_store(&self, initial: bool) -> Result<(), ProviderError> {
        let (raw, max_age) = self
            .http
            .get_json::<RawJwkSet>(crate::provider::http::Endpoint::Jwks, &self.url)
            .await?;
        let set = self.parse(raw);
        if set.all.is_empty() {
            let error = ProviderError::Malformed(format!(
                "{}: no usable signing keys (allowed algorithms: {:?})",
                self.url, self.allowed
            ));
            if initial {
                return Err(error);
            }
            tracing::warn!(%error, "the provider withdrew every usable key; tokens are refused");
        }
        tracing::debug!(keys = set.all.len(), url = %self.url, "JWKS loaded");
        self.replace(Arc::new(set));
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
    // `key_ops`, when given, must allow verifying (RFC 7517, section 4.3).
    if jwk
        .common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&jsonwebtoken::jwk::KeyOperations::Verify))
    {
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
    // Only for the key types and curves accepted above (jsonwebtoken panics on a curve that
    // does not belong to the key type); their members decoded as base64url just now.
    let thumbprint = jwk.thumbprint(ThumbprintHash::SHA256).into();
    Some(KeyEntry {
        kid: jwk.common.key_id.clone(),
        key,
        algs,
        thumbprint,
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
mod tests;
