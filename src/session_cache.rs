//! The verified-session cache: what a signed-in request needs from its session, remembered
//! per session cookie in under 2 KB, so that a session seen before costs a keyed
//! fingerprint of the cookie and a lookup instead of base64, AES-GCM, JSON and a signature check.
//!
//! An entry is keyed by a 128-bit keyed fingerprint of the session's sealed cookie value (every
//! chunk; see [`SessionCache::fingerprint`]), and holds neither the cookie nor any token: the
//! claims handed to the handler, the times that bound the session and its access token, its
//! revocation keys, and which published key verified its access token. Entries are made only
//! from cookies that opened with the layer's key and whose access token verified: a client
//! cannot make one from a cookie of its own, nor, without the fingerprint key, find an entry
//! with another value. A session has at most one entry, its latest cookie's.
//!
//! A hit is not a verdict. Every request still checks, against the clock and the current state:
//! revocation, the absolute lifetime and idle timeout, whether a refresh is due, the access
//! token's expiry and not-before (with leeway), and that the key set still picks the key that
//! verified it. Anything else (a refresh, an idle-timeout rewrite, an expired or re-keyed
//! token) goes the full way, which opens the cookie.
//!
//! In front of it sits a small table of recently repeated cookies ([`Recent`]), held by their
//! exact bytes: a cookie sent again and again (a busy user, a service account, a page's burst
//! of API calls) is found by comparing bytes, without computing its fingerprint (the larger part
//! of a hit's cost for a 1.5 KB cookie). It holds only entries of the cache above, answers for
//! exactly the bytes they were found with, and its answers go through the same checks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM_SIV};

use crate::claims::Claims;
use crate::revocation::RevocationKeys;
use crate::verify::Validity;

/// A session cookie's identity in the cache: a keyed fingerprint of its sealed value (see
/// [`SessionCache::fingerprint`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CookieDigest([u8; 16]);

/// What a signed-in request needs from its session (see the module docs).
pub(crate) struct CachedSession {
    /// The claims handed to the handler (a pointer copy per request).
    pub(crate) claims: Claims,
    /// The access token's validity: expiry, not-before and verifying key. `None` for an opaque
    /// access token, which rests on the ID token verified at login until `exp`.
    pub(crate) validity: Option<Validity>,
    /// The access token's expiry (seconds since the epoch).
    pub(crate) exp: i64,
    /// When the tokens were obtained, and when the session was last seen (see `SessionData`).
    pub(crate) ts: i64,
    pub(crate) seen: i64,
    /// Whether the session can refresh (it holds a refresh token).
    pub(crate) refreshable: bool,
    pub(crate) revocation: RevocationKeys,
}

impl CachedSession {
    /// When the session began (its login time).
    pub(crate) fn login(&self) -> i64 {
        self.revocation.login()
    }

    /// When the session was last seen: the last recorded use, refresh or login.
    pub(crate) fn last_seen(&self) -> i64 {
        self.seen.max(self.ts).max(self.login())
    }
}

/// The cache: bounded by entries (quick_cache, CLOCK-Pro eviction), keyed by fingerprint.
pub(crate) struct SessionCache {
    /// A random key made when the layer is built, never stored or sent anywhere.
    key: LessSafeKey,
    entries: quick_cache::sync::Cache<CookieDigest, Arc<CachedSession>>,
    /// The entry of each session (by the fingerprint of its local id): a session has one
    /// entry, its latest cookie's. Without it, one signed-in user could fill the cache with
    /// entries of one session (every refresh, idle-timeout rewrite or refresh-grace answer seals
    /// the session anew) and push everyone else's out.
    by_session: quick_cache::sync::Cache<CookieDigest, CookieDigest>,
    recent: Recent,
}

/// Slots of the recently repeated cookies' table (a power of two). At about 1.5 KB a cookie,
/// at most some 200 KB.
const RECENT_SLOTS: usize = 128;

/// The table of recently repeated cookies (see the module docs): a slot per cookie, picked by
/// the cookie's last bytes, holding its bytes, its fingerprint and the cache's entry.
///
/// - A slot is filled only when the same cookie, found in the cache, is the slot's candidate
///   twice in a row: cookies that do not repeat (many users round robin) never pay for
///   copying theirs in, and a busy one gets in on its third request.
/// - A lookup compares the presented bytes with the slot's in constant time (the
///   `constant_time_eq` crate): whoever can steer a cookie into another user's slot learns
///   nothing from how long the comparison takes, beyond the length.
/// - An entry found here is exactly one the cache gave for these bytes, so every check a cache
///   hit gets (revocation, lifetime, expiry, the verifying key) it gets too; a stale one is
///   removed from both.
struct Recent {
    slots: Box<[RwLock<Option<RecentCookie>>]>,
    /// Per slot, the low half of the fingerprint of the last cookie found in the cache but not
    /// here.
    candidates: Box<[AtomicU64]>,
}

struct RecentCookie {
    bytes: Box<[u8]>,
    digest: CookieDigest,
    entry: Arc<CachedSession>,
}

impl Recent {
    fn new() -> Self {
        Self {
            slots: (0..RECENT_SLOTS).map(|_| RwLock::new(None)).collect(),
            candidates: (0..RECENT_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The slot of a cookie: from its last eight bytes (a sealed cookie ends in its
    /// authentication tag) and its length. Anyone can pick the slot of a cookie they send; a
    /// slot only ever answers for the exact bytes it holds.
    fn slot(bytes: &[u8]) -> usize {
        let mut tail = [0u8; 8];
        let n = bytes.len().min(8);
        tail[..n].copy_from_slice(&bytes[bytes.len() - n..]);
        let mixed =
            (u64::from_le_bytes(tail) ^ bytes.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (mixed >> 32) as usize & (RECENT_SLOTS - 1)
    }

    fn get(&self, bytes: &[u8]) -> Option<(CookieDigest, Arc<CachedSession>)> {
        let slot = self.slots[Self::slot(bytes)]
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let held = slot.as_ref()?;
        (held.bytes.len() == bytes.len() && constant_time_eq::constant_time_eq(&held.bytes, bytes))
            .then(|| (held.digest, held.entry.clone()))
    }

    /// A cache hit for `bytes` that this table missed: remembered as the slot's candidate, and
    /// copied in when it was the candidate already.
    fn offer(&self, bytes: &[u8], digest: CookieDigest, entry: &Arc<CachedSession>) {
        let at = Self::slot(bytes);
        let mut low = [0u8; 8];
        low.copy_from_slice(&digest.0[..8]);
        let low = u64::from_le_bytes(low);
        if self.candidates[at].swap(low, Ordering::Relaxed) != low {
            return;
        }
        let mut slot = self.slots[at].write().unwrap_or_else(|e| e.into_inner());
        *slot = Some(RecentCookie {
            bytes: bytes.into(),
            digest,
            entry: entry.clone(),
        });
    }

    /// Forgets the entry under `digest`, if the slot of `bytes` holds it.
    fn remove(&self, bytes: &[u8], digest: &CookieDigest) {
        let mut slot = self.slots[Self::slot(bytes)]
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|held| held.digest == *digest) {
            *slot = None;
        }
    }
}

impl SessionCache {
    /// A cache of `capacity` entries, with a fresh random fingerprint key.
    pub(crate) fn new(capacity: usize) -> Self {
        let mut key = [0u8; 32];
        // The OS RNG failing means the machine cannot do cryptography at all.
        getrandom::fill(&mut key).expect("operating system random number generator failed");
        let key = UnboundKey::new(&AES_256_GCM_SIV, &key).expect("a 32-byte AES-256 key");
        Self {
            key: LessSafeKey::new(key),
            entries: quick_cache::sync::Cache::new(capacity.max(1)),
            by_session: quick_cache::sync::Cache::new(capacity.max(1)),
            recent: Recent::new(),
        }
    }

    /// The fingerprint of a sealed cookie value: the AES-256-GCM-SIV tag (RFC 8452) of an empty
    /// plaintext with the value as associated data, under the cache's random key and a fixed
    /// nonce. GCM-SIV is built for a repeated nonce (it then reveals only whether two inputs
    /// were equal), so the tag is a MAC of the whole value: without the key, which never leaves
    /// the process, nobody can find another value with the same fingerprint, and the
    /// fingerprints themselves are never shown. It costs a fraction of a SHA-256 of the same
    /// bytes (AES-NI and carry-less multiplication).
    pub(crate) fn fingerprint(&self, sealed: &[u8]) -> CookieDigest {
        let mut empty: [u8; 0] = [];
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::from(sealed),
                &mut empty,
            )
            .expect("AES-GCM-SIV accepts associated data of any cookie's size");
        let mut digest = [0; 16];
        digest.copy_from_slice(tag.as_ref());
        CookieDigest(digest)
    }

    pub(crate) fn get(&self, digest: &CookieDigest) -> Option<Arc<CachedSession>> {
        self.entries.get(digest)
    }

    /// The entry of a recently repeated cookie, found by its exact bytes, with its fingerprint
    /// (see [`Recent`]).
    ///
    /// A hit counts as a use of the cache's entry too: the cache evicts what is not used, and
    /// a busy session answered from here would otherwise look idle there, and be the first to
    /// go the full way once its slot is taken.
    pub(crate) fn get_recent(&self, bytes: &[u8]) -> Option<(CookieDigest, Arc<CachedSession>)> {
        let (digest, entry) = self.recent.get(bytes)?;
        let _ = self.entries.get(&digest);
        Some((digest, entry))
    }

    /// Tells the table of recent cookies that `bytes`, whose fingerprint is `digest`, found
    /// `entry` in the cache (see [`Recent`]).
    pub(crate) fn offer_recent(
        &self,
        bytes: &[u8],
        digest: CookieDigest,
        entry: &Arc<CachedSession>,
    ) {
        self.recent.offer(bytes, digest, entry);
    }

    /// Remembers the session of the cookie with this fingerprint, replacing any entry of the
    /// same session (`session`: its local id) under another cookie.
    pub(crate) fn insert(
        &self,
        digest: CookieDigest,
        session: Option<&str>,
        entry: Arc<CachedSession>,
    ) {
        if let Some(session) = session {
            let id = self.fingerprint(session.as_bytes());
            if let Some(previous) = self.by_session.get(&id) {
                if previous != digest {
                    self.entries.remove(&previous);
                }
            }
            self.by_session.insert(id, digest);
        }
        self.entries.insert(digest, entry);
    }

    /// Forgets the entry of a cookie (`bytes`, whose fingerprint is `digest`).
    pub(crate) fn remove(&self, bytes: &[u8], digest: &CookieDigest) {
        self.entries.remove(digest);
        self.recent.remove(bytes, digest);
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocation::SessionIds;
    use serde_json::json;

    fn entry(sub: &str) -> Arc<CachedSession> {
        let json = json!({"sub": sub, "iss": "https://idp", "aud": "app"});
        let serde_json::Value::Object(map) = json else {
            unreachable!()
        };
        let claims = Claims::from_map(map, crate::claims::LayerId::NONE).expect("claims");
        Arc::new(CachedSession {
            claims,
            validity: None,
            exp: 0,
            ts: 0,
            seen: 0,
            refreshable: false,
            revocation: RevocationKeys::new("https://idp", &SessionIds::default()),
        })
    }

    /// Two different cookies of one length whose last eight bytes are equal: the same slot.
    fn same_slot_pair() -> (Vec<u8>, Vec<u8>) {
        let a = b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAtag12345".to_vec();
        let mut b = a.clone();
        b[0] = b'B';
        assert_eq!(Recent::slot(&a), Recent::slot(&b));
        (a, b)
    }

    #[test]
    fn a_recent_cookie_answers_for_its_exact_bytes_only() {
        let cache = SessionCache::new(8);
        let (a, b) = same_slot_pair();
        let digest = cache.fingerprint(&a);
        let alice = entry("alice");
        for _ in 0..2 {
            cache.offer_recent(&a, digest, &alice);
        }
        let (found, held) = cache.get_recent(&a).expect("offered twice in a row: held");
        assert!(found == digest);
        assert_eq!(held.claims.sub, "alice");
        assert!(
            cache.get_recent(&b).is_none(),
            "another cookie in the same slot"
        );
        assert!(cache.get_recent(&a[..a.len() - 1]).is_none(), "a prefix");
        let mut longer = a.clone();
        longer.push(b'x');
        assert!(cache.get_recent(&longer).is_none(), "an extension");
    }

    #[test]
    fn only_a_cookie_that_repeats_is_copied_in() {
        let cache = SessionCache::new(8);
        let (a, b) = same_slot_pair();
        let (da, db) = (cache.fingerprint(&a), cache.fingerprint(&b));
        cache.offer_recent(&a, da, &entry("alice"));
        assert!(cache.get_recent(&a).is_none(), "once is not a repeat");
        // Two cookies taking turns in one slot (users round robin) are never copied in.
        for _ in 0..4 {
            cache.offer_recent(&b, db, &entry("bob"));
            cache.offer_recent(&a, da, &entry("alice"));
        }
        assert!(cache.get_recent(&a).is_none() && cache.get_recent(&b).is_none());
        cache.offer_recent(&a, da, &entry("alice"));
        assert!(cache.get_recent(&a).is_some());
    }

    #[test]
    fn removing_an_entry_forgets_its_recent_cookie_only() {
        let cache = SessionCache::new(8);
        let (a, b) = same_slot_pair();
        let (da, db) = (cache.fingerprint(&a), cache.fingerprint(&b));
        for _ in 0..2 {
            cache.offer_recent(&a, da, &entry("alice"));
        }
        cache.remove(&b, &db);
        assert!(cache.get_recent(&a).is_some(), "another entry's removal");
        cache.remove(&a, &da);
        assert!(cache.get_recent(&a).is_none());
    }

    #[test]
    fn fingerprint_covers_every_byte_and_depends_on_the_key() {
        let cache = SessionCache::new(1);
        let a = "x".repeat(3000);
        for at in [0, 1, 1500, 2999] {
            let mut b = a.clone();
            b.replace_range(at..=at, "y");
            assert!(
                cache.fingerprint(a.as_bytes()) != cache.fingerprint(b.as_bytes()),
                "byte {at}"
            );
        }
        assert!(cache.fingerprint(a.as_bytes()) == cache.fingerprint(a.clone().as_bytes()));
        assert!(cache.fingerprint(b"ab") != cache.fingerprint(b"abc"));
        assert!(cache.fingerprint(b"") != cache.fingerprint(b"a"));
        let other = SessionCache::new(1);
        assert!(
            cache.fingerprint(a.as_bytes()) != other.fingerprint(a.as_bytes()),
            "a key of its own"
        );
    }
}
