//! [`MemoryRevocationStore`]: revocations held in this process, indexed by expiry.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::clock::{Clock, SharedClock, SystemClock};

use super::{RevocationError, RevocationKey, RevocationStore};

#[derive(Clone, Copy)]
struct Record {
    at: i64,
    until: i64,
}

/// Width of the expiry buckets of [`MemoryRevocationStore`], in seconds.
pub(super) const BUCKET: i64 = 60;

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
    /// [`ManualClock`](crate::clock::ManualClock).
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

    fn len_hint(&self) -> Option<usize> {
        Some(self.len())
    }
}
