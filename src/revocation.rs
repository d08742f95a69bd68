//! Revoked sessions: remembered so that sessions ended elsewhere (back-channel logout, a logout
//! in another tab or instance, a webhook) are refused on their next request, since a server
//! cannot delete a browser's cookies.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::clock::{SharedClock, SystemClock};

/// What a revocation applies to.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RevocationKey(String);

impl RevocationKey {
    /// Every session of the provider session `sid` at `issuer`.
    #[must_use]
    pub fn session(issuer: &str, sid: &str) -> Self {
        Self(format!("{issuer}|sid|{sid}"))
    }

    /// Every session of the user `sub` at `issuer` that began before the revocation.
    #[must_use]
    pub fn subject(issuer: &str, sub: &str) -> Self {
        Self(format!("{issuer}|sub|{sub}"))
    }

    /// One local session (the layer's own id for it), ended by `/auth/logout`.
    pub(crate) fn local(lid: &str) -> Self {
        Self(format!("local|{lid}"))
    }

    /// The key as stored.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Rebuilds a key from [`as_str`](Self::as_str) (for stores that persist keys).
    #[must_use]
    pub fn from_stored(s: impl Into<String>) -> Self {
        Self(s.into())
    }
}

impl fmt::Debug for RevocationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RevocationKey").field(&self.0).finish()
    }
}

/// A store failure (for stores that talk to a server).
#[derive(Debug, Clone, thiserror::Error)]
#[error("revocation store: {0}")]
pub struct RevocationError(pub String);

/// Where revoked sessions are remembered.
///
/// [`revoked_at`](Self::revoked_at) is on the hot path of every request: it must answer from
/// memory, without I/O. Stores shared between instances keep a local mirror (see
/// `RedisRevocationStore`).
pub trait RevocationStore: Send + Sync + 'static {
    /// Records that sessions matching `key` ended at `at` (seconds since the epoch), to be
    /// remembered for `ttl` from now (not from `at`, which may lie in the past).
    fn revoke(
        &self,
        key: RevocationKey,
        at: i64,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), RevocationError>>;

    /// When `key` was revoked, if it was and the record has not expired. No I/O.
    fn revoked_at(&self, key: &RevocationKey) -> Option<i64>;

    /// True when nothing was ever revoked: lets the hot path skip the lookups.
    fn is_empty(&self) -> bool {
        false
    }
}

#[derive(Clone, Copy)]
struct Record {
    at: i64,
    until: i64,
}

/// The default store: in memory, bounded (least recently used records go first when full) and
/// expiring. Enough for one instance; several instances need a shared store.
#[derive(Clone)]
pub struct MemoryRevocationStore {
    inner: Arc<MemoryInner>,
}

struct MemoryInner {
    records: quick_cache::sync::Cache<String, Record>,
    used: AtomicBool,
    clock: SharedClock,
}

impl fmt::Debug for MemoryRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRevocationStore")
            .field("records", &self.inner.records.len())
            .finish()
    }
}

impl Default for MemoryRevocationStore {
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl MemoryRevocationStore {
    /// A store keeping at most `capacity` records.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self::with_clock(capacity, Arc::new(SystemClock))
    }

    pub(crate) fn with_clock(capacity: usize, clock: SharedClock) -> Self {
        Self {
            inner: Arc::new(MemoryInner {
                records: quick_cache::sync::Cache::new(capacity.max(1)),
                used: AtomicBool::new(false),
                clock,
            }),
        }
    }

    /// Records a revocation at once (the trait's `revoke` does this and returns a ready future).
    pub fn insert(&self, key: &RevocationKey, at: i64, ttl: Duration) {
        // Remembered for `ttl` from now (as Redis's `EX`), whatever `at` says: a revocation
        // recorded late, with the event's own time, must not expire early.
        let until = self
            .inner
            .clock
            .now()
            .saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
        let record = match self.inner.records.get(key.as_str()) {
            // Keep the latest revocation time for a key.
            Some(old) if old.at > at => Record {
                at: old.at,
                until: old.until.max(until),
            },
            _ => Record { at, until },
        };
        self.inner.records.insert(key.as_str().to_owned(), record);
        self.inner.used.store(true, Ordering::Release);
    }

    /// Records currently held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.records.len()
    }

    /// Whether no record is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RevocationStore for MemoryRevocationStore {
    fn revoke(
        &self,
        key: RevocationKey,
        at: i64,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), RevocationError>> {
        self.insert(&key, at, ttl);
        Box::pin(std::future::ready(Ok(())))
    }

    fn revoked_at(&self, key: &RevocationKey) -> Option<i64> {
        let record = self.inner.records.get(key.as_str())?;
        if self.inner.clock.now() >= record.until {
            self.inner.records.remove(key.as_str());
            return None;
        }
        Some(record.at)
    }

    fn is_empty(&self) -> bool {
        !self.inner.used.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    #[tokio::test]
    async fn records_expire_and_keep_the_latest_time() {
        let clock = ManualClock::new(1000);
        let store = MemoryRevocationStore::with_clock(10, Arc::new(clock.clone()));
        assert!(RevocationStore::is_empty(&store));
        let key = RevocationKey::session("https://iss", "sid-1");
        store
            .revoke(key.clone(), 1000, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(!RevocationStore::is_empty(&store));
        assert_eq!(store.revoked_at(&key), Some(1000));
        assert_eq!(
            store.revoked_at(&RevocationKey::session("https://other", "sid-1")),
            None
        );
        store.insert(&key, 900, Duration::from_secs(10));
        assert_eq!(
            store.revoked_at(&key),
            Some(1000),
            "an older revocation does not win"
        );
        clock.advance(Duration::from_secs(60));
        assert_eq!(store.revoked_at(&key), None, "expired");
    }

    /// A revocation recorded late (a webhook retried minutes after the event, with the event's
    /// own time) is remembered for its whole TTL from when it is recorded, as Redis's `EX`
    /// does; counting from `at` forgot a session ended long ago at once.
    #[tokio::test]
    async fn remembered_for_the_ttl_from_when_it_is_recorded() {
        let clock = ManualClock::new(1_000_000);
        let store = MemoryRevocationStore::with_clock(10, Arc::new(clock.clone()));
        let key = RevocationKey::session("https://iss", "sid-1");
        store
            .revoke(key.clone(), 1_000, Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(store.revoked_at(&key), Some(1_000));
        clock.advance(Duration::from_secs(3599));
        assert_eq!(store.revoked_at(&key), Some(1_000));
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            store.revoked_at(&key),
            None,
            "expired an hour after it was recorded"
        );
    }

    #[test]
    fn bounded() {
        let store = MemoryRevocationStore::new(100);
        for i in 0..1000 {
            store.insert(
                &RevocationKey::subject("i", &i.to_string()),
                1,
                Duration::from_secs(60),
            );
        }
        assert!(store.len() <= 100 + 16, "{}", store.len());
    }

    #[test]
    fn keys_do_not_collide_across_kinds() {
        assert_ne!(
            RevocationKey::session("i", "x"),
            RevocationKey::subject("i", "x")
        );
        assert_ne!(
            RevocationKey::local("x").as_str(),
            RevocationKey::session("local", "x").as_str()
        );
    }
}
