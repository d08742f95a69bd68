//! [`MemorySessionStore`]: sessions held in this process, bounded and expiring.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::{SessionId, SessionMeta, SessionRecord, SessionStore, SessionStoreError};
use crate::clock::{SharedClock, SystemClock};

/// The in-memory store: for one instance, and for tests. Records expire with their TTL, and at
/// most [`capacity`](Self::capacity) are held (default 100,000): when full, the record closest
/// to its expiry is dropped to make room, which signs that user out (never in). Several
/// instances need a shared store.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
/// use tower_oidc_auth::session_store::{
///     MemorySessionStore, SessionId, SessionMeta, SessionRecord, SessionStore,
/// };
///
/// let store = MemorySessionStore::new();
/// let id = SessionId::random();
/// let record = SessionRecord::new(
///     "sealed".into(),
///     "https://idp|usr_1".into(),
///     Some("https://idp|ses_1".into()),
///     SessionMeta::new(1_700_000_000),
/// );
/// store.save(&id, record.clone(), Duration::from_secs(3600)).await.unwrap();
/// assert_eq!(store.load(&id).await.unwrap(), Some(record));
/// assert_eq!(store.delete_by_sid("https://idp|ses_1").await.unwrap(), 1);
/// assert_eq!(store.load(&id).await.unwrap(), None);
/// # }
/// ```
#[derive(Clone)]
pub struct MemorySessionStore {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    capacity: usize,
    clock: SharedClock,
    /// Shared by every clone: the instances of the layer using this store hear each other's
    /// logouts through it (see [`SessionStore::revocation_store`]).
    revocations: crate::revocation::MemoryRevocationStore,
    /// Shared by every clone likewise (see [`SessionStore::refresh_coordinator`]): the tables
    /// of one coordinator for all the layers on this store, so that they share each refresh
    /// and each hold; each layer's has the grace window it asked for.
    refresh: std::sync::OnceLock<crate::refresh::LocalRefreshCoordinator>,
}

#[derive(Default)]
struct State {
    records: HashMap<SessionId, Entry>,
    /// `(until, id)` of every record: the next to expire first.
    by_expiry: BTreeSet<(i64, SessionId)>,
    by_sid: HashMap<String, HashSet<SessionId>>,
    by_sub: HashMap<String, HashSet<SessionId>>,
}

struct Entry {
    record: SessionRecord,
    /// Seconds since the epoch.
    until: i64,
}

impl State {
    /// Removes `id` and its index entries; its record, if it had one.
    fn remove(&mut self, id: &SessionId) -> Option<Entry> {
        let entry = self.records.remove(id)?;
        self.by_expiry.remove(&(entry.until, id.clone()));
        unindex(&mut self.by_sub, &entry.record.sub, id);
        if let Some(sid) = &entry.record.sid {
            unindex(&mut self.by_sid, sid, id);
        }
        Some(entry)
    }

    /// Removes every record expired at `now`.
    fn sweep(&mut self, now: i64) {
        while let Some((until, id)) = self.by_expiry.first().cloned() {
            if until > now {
                break;
            }
            self.remove(&id);
        }
    }

    /// The live record of `id` at `now`.
    fn live(&self, id: &SessionId, now: i64) -> Option<&Entry> {
        self.records.get(id).filter(|e| e.until > now)
    }
}

fn unindex(index: &mut HashMap<String, HashSet<SessionId>>, key: &str, id: &SessionId) {
    if let Some(ids) = index.get_mut(key) {
        ids.remove(id);
        if ids.is_empty() {
            index.remove(key);
        }
    }
}

impl Default for MemorySessionStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemorySessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemorySessionStore")
            .field("len", &self.len())
            .field("capacity", &self.inner.capacity)
            .finish()
    }
}

impl MemorySessionStore {
    /// An empty store of 100,000 records at most, on the system clock.
    #[must_use]
    pub fn new() -> Self {
        Self::with(100_000, Arc::new(SystemClock))
    }

    /// The same store holding at most `capacity` records (at least 1).
    #[must_use]
    pub fn capacity(self, capacity: usize) -> Self {
        Self::with(capacity, self.inner.clock.clone())
    }

    /// An empty store on `clock` (tests inject a manual one).
    #[must_use]
    pub fn with_clock(clock: SharedClock) -> Self {
        Self::with(100_000, clock)
    }

    fn with(capacity: usize, clock: SharedClock) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                capacity: capacity.max(1),
                revocations: crate::revocation::MemoryRevocationStore::with_clock(clock.clone()),
                refresh: std::sync::OnceLock::new(),
                clock,
            }),
        }
    }

    /// Records held, including expired ones not swept yet.
    #[must_use]
    pub fn len(&self) -> usize {
        self.state().records.len()
    }

    /// Whether no record is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // No code path panics while holding the lock; a poisoned one is still consistent.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    fn save_now(&self, id: &SessionId, record: SessionRecord, ttl: Duration) {
        let now = self.now();
        let mut state = self.state();
        self.save_locked(&mut state, now, id, record, ttl);
    }

    /// Replaces the record of `id` if it is still `current`, under one lock.
    fn replace_now(
        &self,
        id: &SessionId,
        current: &SessionRecord,
        record: SessionRecord,
        ttl: Duration,
    ) -> bool {
        let now = self.now();
        let mut state = self.state();
        if state.live(id, now).map(|e| &e.record) != Some(current) {
            return false;
        }
        self.save_locked(&mut state, now, id, record, ttl);
        true
    }

    fn save_locked(
        &self,
        state: &mut State,
        now: i64,
        id: &SessionId,
        record: SessionRecord,
        ttl: Duration,
    ) {
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        let until = now.saturating_add(ttl);
        state.remove(id);
        if until <= now {
            return;
        }
        if state.records.len() >= self.inner.capacity {
            state.sweep(now);
        }
        while state.records.len() >= self.inner.capacity {
            let Some((_, oldest)) = state.by_expiry.first().cloned() else {
                break;
            };
            state.remove(&oldest);
            tracing::warn!(
                capacity = self.inner.capacity,
                "session store full: the session closest to its expiry was dropped"
            );
        }
        state
            .by_sub
            .entry(record.sub.clone())
            .or_default()
            .insert(id.clone());
        if let Some(sid) = &record.sid {
            state
                .by_sid
                .entry(sid.clone())
                .or_default()
                .insert(id.clone());
        }
        state.by_expiry.insert((until, id.clone()));
        state.records.insert(id.clone(), Entry { record, until });
    }

    /// The live records of an index (`sid` or `sub`), oldest first.
    fn list_index(&self, sid: bool, key: &str) -> Vec<(SessionId, SessionMeta)> {
        let now = self.now();
        let state = self.state();
        let index = if sid { &state.by_sid } else { &state.by_sub };
        let mut found: Vec<(SessionId, SessionMeta)> = index
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|id| {
                state
                    .live(id, now)
                    .map(|e| (id.clone(), e.record.meta.clone()))
            })
            .collect();
        drop(state);
        found.sort_by(|a, b| (a.1.created, a.0.as_str()).cmp(&(b.1.created, b.0.as_str())));
        found
    }

    fn delete_index(&self, sid: bool, key: &str) -> usize {
        let mut state = self.state();
        let index = if sid { &state.by_sid } else { &state.by_sub };
        let ids: Vec<SessionId> = index
            .get(key)
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default();
        let now = self.now();
        ids.iter()
            .filter_map(|id| state.remove(id))
            .filter(|e| e.until > now)
            .count()
    }
}

impl SessionStore for MemorySessionStore {
    fn load(
        &self,
        id: &SessionId,
    ) -> BoxFuture<'static, Result<Option<SessionRecord>, SessionStoreError>> {
        let now = self.now();
        let found = self.state().live(id, now).map(|e| e.record.clone());
        Box::pin(async move { Ok(found) })
    }

    fn save(
        &self,
        id: &SessionId,
        record: SessionRecord,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), SessionStoreError>> {
        self.save_now(id, record, ttl);
        Box::pin(async { Ok(()) })
    }

    fn replace(
        self: Arc<Self>,
        id: SessionId,
        current: SessionRecord,
        record: SessionRecord,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<bool, SessionStoreError>> {
        let done = self.replace_now(&id, &current, record, ttl);
        Box::pin(async move { Ok(done) })
    }

    fn delete(&self, id: &SessionId) -> BoxFuture<'static, Result<bool, SessionStoreError>> {
        let now = self.now();
        let had = self.state().remove(id).is_some_and(|e| e.until > now);
        Box::pin(async move { Ok(had) })
    }

    fn delete_by_sid(&self, sid: &str) -> BoxFuture<'static, Result<usize, SessionStoreError>> {
        let n = self.delete_index(true, sid);
        Box::pin(async move { Ok(n) })
    }

    fn delete_by_sub(&self, sub: &str) -> BoxFuture<'static, Result<usize, SessionStoreError>> {
        let n = self.delete_index(false, sub);
        Box::pin(async move { Ok(n) })
    }

    fn list_by_sub(
        &self,
        sub: &str,
    ) -> BoxFuture<'static, Result<Vec<(SessionId, SessionMeta)>, SessionStoreError>> {
        let found = self.list_index(false, sub);
        Box::pin(async move { Ok(found) })
    }

    fn list_by_sid(
        &self,
        sid: &str,
    ) -> BoxFuture<'static, Result<Vec<(SessionId, SessionMeta)>, SessionStoreError>> {
        let found = self.list_index(true, sid);
        Box::pin(async move { Ok(found) })
    }

    fn revocation_store(&self) -> Option<Arc<dyn crate::revocation::RevocationStore>> {
        Some(Arc::new(self.inner.revocations.clone()))
    }

    fn refresh_coordinator(
        &self,
        grace: Duration,
    ) -> Option<Arc<dyn crate::refresh::RefreshCoordinator>> {
        let coordinator = self.inner.refresh.get_or_init(|| {
            crate::refresh::LocalRefreshCoordinator::with_clock(
                grace,
                10_000,
                self.inner.clock.clone(),
            )
        });
        Some(Arc::new(coordinator.with_grace(grace)))
    }
}
