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

use std::sync::Arc;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM_SIV};

use crate::claims::Claims;
use crate::revocation::RevocationKeys;
use crate::session::SessionData;
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
    /// When the tokens were obtained, and when the session was last seen (see [`SessionData`]).
    pub(crate) ts: i64,
    pub(crate) seen: i64,
    /// Whether the session can refresh (it holds a refresh token).
    pub(crate) refreshable: bool,
    pub(crate) revocation: RevocationKeys,
}

impl CachedSession {
    pub(crate) fn new(
        data: &SessionData,
        revocation: RevocationKeys,
        claims: Claims,
        validity: Option<Validity>,
    ) -> Self {
        Self {
            claims,
            validity,
            exp: data.exp,
            ts: data.ts,
            seen: data.seen,
            refreshable: data.rt.is_some(),
            revocation,
        }
    }

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

    pub(crate) fn remove(&self, digest: &CookieDigest) {
        self.entries.remove(digest);
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
