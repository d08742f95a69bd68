//! Revoked sessions: remembered so that sessions ended elsewhere (back-channel logout, a logout
//! in another tab or instance, a webhook) are refused on their next request, since a server
//! cannot delete a browser's cookies.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use futures_util::future::BoxFuture;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::clock::{Clock, SharedClock, SystemClock};

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
/// Revocations are security state: a store must keep each record for its whole TTL, never evict
/// it to make room. [`revoked_at`](Self::revoked_at) is on the hot path of every request: it
/// must answer from memory, without I/O. Stores shared between instances keep a local mirror
/// (see `RedisRevocationStore`).
pub trait RevocationStore: Send + Sync + 'static {
    /// Records that sessions matching `key` ended at `at` (seconds since the epoch), to be
    /// remembered for `ttl` from now (not from `at`, which may lie in the past). A record for
    /// the same key is merged: the later `at` and the longer remaining lifetime win.
    fn revoke(
        &self,
        key: RevocationKey,
        at: i64,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), RevocationError>>;

    /// When `key` was revoked, if it was and the record has not expired. No I/O.
    fn revoked_at(&self, key: &RevocationKey) -> Option<i64>;

    /// Fail-closed floor: every session that began at or before this time (seconds since the
    /// epoch) is treated as revoked. Set by a store that had to drop records (a configured hard
    /// cap reached); `None` (the default) when every record is held. No I/O.
    fn revoked_before(&self) -> Option<i64> {
        None
    }

    /// True when nothing is revoked: lets the hot path skip the lookups.
    fn is_empty(&self) -> bool {
        false
    }
}

#[derive(Clone, Copy)]
struct Record {
    at: i64,
    until: i64,
}

/// Width of the expiry buckets of [`MemoryRevocationStore`], in seconds.
const BUCKET: i64 = 60;

/// The default store: in memory, exact and expiring. Enough for one instance; several instances
/// need a shared store.
///
/// Every record is held until its TTL has passed: nothing is ever evicted to make room, so the
/// memory used is bounded by the number of revocations within their TTLs (about 150 bytes each).
/// Expired records are swept by expiry time buckets on each insert (and by
/// [`sweep`](Self::sweep)).
///
/// An optional hard cap ([`max_records`](Self::max_records)) bounds the memory against a flood
/// of revocations. When it is reached, the records revoked earliest are dropped, and the store
/// *fails closed*: every session that began no later than the last dropped record is treated as
/// revoked ([`RevocationStore::revoked_before`]), so those users sign in again. This is logged at
/// error level.
///
/// ```
/// use std::time::Duration;
/// use tower_oidc_auth::{MemoryRevocationStore, RevocationKey, RevocationStore};
/// let store = MemoryRevocationStore::new().max_records(1_000_000);
/// let key = RevocationKey::session("https://yourenv.scalekit.com", "ses_1");
/// store.insert(&key, 1_700_000_000, Duration::from_secs(3600));
/// assert_eq!(store.revoked_at(&key), Some(1_700_000_000));
/// ```
#[derive(Clone)]
pub struct MemoryRevocationStore {
    inner: Arc<MemoryInner>,
}

struct MemoryInner {
    records: RwLock<HashMap<Arc<str>, Record>>,
    /// Writers only (inserts and sweeps): expiry buckets and the cap's order.
    index: Mutex<Index>,
    /// Records held (including expired ones not swept yet).
    len: AtomicUsize,
    /// The fail-closed floor; `i64::MIN` when none.
    floor: AtomicI64,
    max_records: Option<usize>,
    clock: SharedClock,
}

#[derive(Default)]
struct Index {
    /// Keys by the end of the bucket their record expires in. A key whose record was extended
    /// is listed again in its new bucket; the stale entry is skipped when swept.
    expiry: BTreeMap<i64, Vec<Arc<str>>>,
    /// With a hard cap only: keys by revocation time, earliest first.
    by_at: BTreeSet<(i64, Arc<str>)>,
}

impl fmt::Debug for MemoryRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRevocationStore")
            .field("records", &self.len())
            .field("max_records", &self.inner.max_records)
            .field("revoked_before", &self.floor())
            .finish()
    }
}

impl Default for MemoryRevocationStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRevocationStore {
    /// An empty store without a hard cap, on the system clock.
    #[must_use]
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    pub(crate) fn with_clock(clock: SharedClock) -> Self {
        Self {
            inner: Arc::new(MemoryInner {
                records: RwLock::new(HashMap::new()),
                index: Mutex::new(Index::default()),
                len: AtomicUsize::new(0),
                floor: AtomicI64::new(i64::MIN),
                max_records: None,
                clock,
            }),
        }
    }

    fn configure(mut self, f: impl FnOnce(&mut MemoryInner)) -> Self {
        let inner = Arc::get_mut(&mut self.inner)
            .filter(|inner| inner.len.load(Ordering::Relaxed) == 0)
            .expect("configure a MemoryRevocationStore before cloning or using it");
        f(inner);
        self
    }

    /// A hard cap on the records held. Reaching it drops the records revoked earliest and
    /// fails closed for every session that began no later than them (see the type's docs).
    /// Default: no cap, the store is bounded by the records' TTLs only.
    ///
    /// # Panics
    ///
    /// If the store was already cloned or holds records.
    #[must_use]
    pub fn max_records(self, max: usize) -> Self {
        self.configure(|inner| inner.max_records = Some(max.max(1)))
    }

    /// The clock the store reads (default: the system clock), for tests with a
    /// [`ManualClock`](crate::ManualClock).
    ///
    /// # Panics
    ///
    /// If the store was already cloned or holds records.
    #[must_use]
    pub fn clock(self, clock: impl Clock) -> Self {
        self.configure(|inner| inner.clock = Arc::new(clock))
    }

    /// Records a revocation at once (the trait's `revoke` does this and returns a ready future).
    /// A record for the same key keeps the later `at` and the later expiry.
    pub fn insert(&self, key: &RevocationKey, at: i64, ttl: Duration) {
        let inner = &*self.inner;
        let now = inner.clock.now();
        // Remembered for `ttl` from now (as Redis's `EX`), whatever `at` says: a revocation
        // recorded late, with the event's own time, must not expire early.
        let until = now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
        let mut index = inner.index.lock().unwrap_or_else(PoisonError::into_inner);
        self.sweep_locked(&mut index, now);
        let mut records = inner
            .records
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let (key, old) = match records.get_key_value(key.as_str()) {
            Some((k, old)) => (k.clone(), Some(*old)),
            None => (Arc::<str>::from(key.as_str()), None),
        };
        let record = match old {
            // An expired record not swept yet counts as absent.
            Some(old) if old.until > now => Record {
                at: old.at.max(at),
                until: old.until.max(until),
            },
            _ => Record { at, until },
        };
        if old.is_none_or(|old| bucket(old.until) != bucket(record.until)) {
            index
                .expiry
                .entry(bucket(record.until))
                .or_default()
                .push(key.clone());
        }
        if inner.max_records.is_some() {
            if let Some(old) = old {
                index.by_at.remove(&(old.at, key.clone()));
            }
            index.by_at.insert((record.at, key.clone()));
        }
        if records.insert(key, record).is_none() {
            inner.len.fetch_add(1, Ordering::Release);
        }
        if let Some(max) = inner.max_records {
            let mut dropped = 0usize;
            let mut floor = None;
            while records.len() > max {
                let Some((at, victim)) = index.by_at.pop_first() else {
                    break;
                };
                records.remove(&victim);
                inner.len.fetch_sub(1, Ordering::Release);
                floor = Some(at);
                dropped += 1;
            }
            if let Some(floor) = floor {
                inner.floor.fetch_max(floor, Ordering::AcqRel);
                tracing::error!(
                    max_records = max,
                    dropped,
                    revoked_before = inner.floor.load(Ordering::Acquire),
                    "revocation store full: records dropped; failing closed for every session \
                     that began before the oldest record still held (those users sign in again). \
                     Raise max_records or shorten revocation lifetimes"
                );
            }
        }
    }

    /// Removes the records whose TTL has passed. Inserts do this too; call it to release
    /// memory in a store that receives no new revocations.
    pub fn sweep(&self) {
        let now = self.inner.clock.now();
        let mut index = self
            .inner
            .index
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.sweep_locked(&mut index, now);
    }

    fn sweep_locked(&self, index: &mut Index, now: i64) {
        let inner = &*self.inner;
        // Buckets whose end has passed: every record still listed there either expired or was
        // extended (and is listed again in a later bucket).
        while let Some(entry) = index.expiry.first_entry() {
            if *entry.key() > now {
                break;
            }
            let keys = entry.remove();
            let mut records = inner
                .records
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            for key in keys {
                if let Some(record) = records.get(&key) {
                    if record.until <= now {
                        let at = record.at;
                        records.remove(&key);
                        inner.len.fetch_sub(1, Ordering::Release);
                        if inner.max_records.is_some() {
                            index.by_at.remove(&(at, key));
                        }
                    }
                }
            }
        }
    }

    fn floor(&self) -> Option<i64> {
        match self.inner.floor.load(Ordering::Acquire) {
            i64::MIN => None,
            floor => Some(floor),
        }
    }

    /// Records currently held (expired ones are counted until swept).
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.len.load(Ordering::Acquire)
    }

    /// Whether no record is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The end of the expiry bucket of a record that expires at `until`.
fn bucket(until: i64) -> i64 {
    until
        .div_euclid(BUCKET)
        .saturating_add(1)
        .saturating_mul(BUCKET)
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
        let record = *self
            .inner
            .records
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key.as_str())?;
        (self.inner.clock.now() < record.until).then_some(record.at)
    }

    fn revoked_before(&self) -> Option<i64> {
        self.floor()
    }

    fn is_empty(&self) -> bool {
        self.inner.len.load(Ordering::Acquire) == 0 && self.floor().is_none()
    }
}

/// How long to remember a revocation that ends sessions which began no later than `begun`:
/// until the last of them reaches its absolute lifetime (`begun + session_max_age`, plus a
/// margin for clock skew), so a revoked session never outlives its record; and at least
/// `revocation_ttl`.
pub(crate) fn lifetime(
    begun: i64,
    now: i64,
    session_max_age: i64,
    revocation_ttl: Duration,
) -> Duration {
    /// Seconds beyond the session's end, for clocks that disagree by a little.
    const MARGIN: i64 = 300;
    let remaining = begun
        .saturating_add(session_max_age)
        .saturating_add(MARGIN)
        .saturating_sub(now);
    let floor = i64::try_from(revocation_ttl.as_secs()).unwrap_or(i64::MAX);
    let seconds = remaining.max(floor).max(1);
    Duration::from_secs(u64::try_from(seconds).unwrap_or(u64::MAX))
}

// ---------------------------------------------------------------------------------------------
// A session's identity for revocation, and the one check every path makes.
// ---------------------------------------------------------------------------------------------

/// What identifies a session for revocation; the same before and after refreshes.
#[derive(Serialize, Deserialize, Clone, Default, Debug)]
pub(crate) struct SessionIds {
    /// The provider's session id (`sid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sid: Option<String>,
    /// The subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sub: Option<String>,
    /// This layer's own id for the session (random, made at login).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) lid: Option<String>,
    /// When the user logged in (seconds since the epoch).
    #[serde(default)]
    pub(crate) login: i64,
}

impl SessionIds {
    /// From the verified ID token claims at login.
    pub(crate) fn at_login(id_claims: &Map<String, Value>, now: i64) -> Self {
        let s = |k: &str| id_claims.get(k).and_then(Value::as_str).map(str::to_owned);
        Self {
            sid: s("sid"),
            sub: s("sub"),
            lid: Some(crate::token::random_token()),
            login: now,
        }
    }
}

/// The revocation keys of a session, built once.
pub(crate) struct RevocationKeys {
    local: Option<RevocationKey>,
    session: Option<RevocationKey>,
    subject: Option<RevocationKey>,
    login: i64,
}

impl RevocationKeys {
    pub(crate) fn new(issuer: &str, ids: &SessionIds) -> Self {
        Self {
            local: ids.lid.as_deref().map(RevocationKey::local),
            session: ids
                .sid
                .as_deref()
                .map(|sid| RevocationKey::session(issuer, sid)),
            subject: ids
                .sub
                .as_deref()
                .map(|sub| RevocationKey::subject(issuer, sub)),
            login: ids.login,
        }
    }

    /// When the session began.
    pub(crate) fn login(&self) -> i64 {
        self.login
    }

    /// Whether the session was ended: its own local id revoked (at any time: the id is never
    /// reused), or its provider session (`sid`) or user (`sub`) revoked no earlier than it began
    /// (a later sign-in, even with the provider's same `sid`, is a new session), or it began
    /// before a store's fail-closed floor.
    pub(crate) fn revoked(&self, store: &dyn RevocationStore) -> bool {
        if store.is_empty() {
            return false;
        }
        if self
            .local
            .as_ref()
            .is_some_and(|k| store.revoked_at(k).is_some())
        {
            return true;
        }
        let began_by = |at: i64| self.login <= at;
        store.revoked_before().is_some_and(began_by)
            || self
                .session
                .as_ref()
                .and_then(|k| store.revoked_at(k))
                .is_some_and(began_by)
            || self
                .subject
                .as_ref()
                .and_then(|k| store.revoked_at(k))
                .is_some_and(began_by)
    }
}

/// Whether the session was ended elsewhere: its local id revoked, or its provider session or
/// user revoked after it began.
pub(crate) fn is_revoked(store: &dyn RevocationStore, issuer: &str, ids: &SessionIds) -> bool {
    !store.is_empty() && RevocationKeys::new(issuer, ids).revoked(store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    #[tokio::test]
    async fn records_expire_and_keep_the_latest_time() {
        let clock = ManualClock::new(1000);
        let store = MemoryRevocationStore::new().clock(clock.clone());
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
        let store = MemoryRevocationStore::new().clock(clock.clone());
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
    fn a_record_extended_is_not_swept_with_its_old_bucket() {
        let clock = ManualClock::new(1_000);
        let store = MemoryRevocationStore::new().clock(clock.clone());
        let key = RevocationKey::subject("i", "u");
        store.insert(&key, 1_000, Duration::from_secs(60));
        store.insert(&key, 1_000, Duration::from_secs(3600));
        clock.advance(Duration::from_secs(600));
        store.sweep();
        assert_eq!(store.revoked_at(&key), Some(1_000));
        assert_eq!(store.len(), 1);
        clock.advance(Duration::from_secs(3000));
        assert_eq!(store.revoked_at(&key), None, "expired");
        // Swept once its expiry bucket (a minute wide) has passed.
        clock.advance(Duration::from_secs(BUCKET as u64));
        store.sweep();
        assert_eq!(store.len(), 0);
        assert!(RevocationStore::is_empty(&store));
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
