//! [`RedisSessionStore`]: server-side sessions shared by every instance through Redis.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::aio::ConnectionManager;

use crate::session_store::{
    SessionId, SessionMeta, SessionRecord, SessionStore, SessionStoreError,
};

/// Server-side sessions in Redis (feature `redis`): every instance sharing the Redis sees the
/// same sessions, and a deleted session is gone on all of them at once.
///
/// Keys, under the [`key_prefix`](Self::key_prefix) (default `tower-oidc-auth`):
/// - `<prefix>:s:<id>`: the [`SessionRecord`] as JSON, expiring with the TTL given to
///   [`save`](SessionStore::save). Its session is sealed with the cookie keys before the store
///   sees it: Redis never holds a token in clear.
/// - `<prefix>:sid:<sid>` and `<prefix>:sub:<sub>`: sets of the ids of a provider session and
///   of a user, whose TTL is raised to the longest of their records' (an index never expires
///   before one of its records). Ids whose record is gone are pruned as they are met.
///
/// Every write is one Lua script (`EVAL`) that first checks the record is still what was read:
/// a record and its index entries change together (a crash cannot leave a record unindexed),
/// and concurrent writes to one session cannot leave it in an index it does not belong to.
/// Deleting by `sid` or `sub` deletes only records that belong to that index, one script per
/// record.
///
/// A value that is not a record (written by something else) reads as absent and is reported at
/// warn level, without the value. Errors never contain a record either.
///
/// To share one connection with the [`RedisRefreshCoordinator`](super::RedisRefreshCoordinator),
/// build both from one [`ConnectionManager`]:
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use tower_oidc_auth::redis::{RedisRefreshCoordinator, RedisSessionStore};
/// use tower_oidc_auth::session_store::{SessionId, SessionMeta, SessionRecord, SessionStore};
///
/// let client = redis::Client::open("redis://127.0.0.1:6379")?;
/// let manager = client.get_connection_manager().await?;
/// let store = RedisSessionStore::new(manager.clone()).key_prefix("billing");
/// let coordinator = RedisRefreshCoordinator::new(manager).key_prefix("billing");
///
/// let id = SessionId::random();
/// let record = SessionRecord::new(
///     "sealed".into(),
///     "https://idp|usr_1".into(),
///     Some("https://idp|ses_1".into()),
///     SessionMeta::new(1_700_000_000),
/// );
/// store.save(&id, record.clone(), Duration::from_secs(3600)).await?;
/// assert_eq!(store.load(&id).await?, Some(record));
/// assert_eq!(store.delete_by_sid("https://idp|ses_1").await?, 1);
/// # let _ = coordinator; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisSessionStore {
    conn: ConnectionManager,
    prefix: String,
    health: Arc<Health>,
    /// Made by `connect`: the revocation store the layer uses when it has none of its own.
    revocations: Option<super::RedisRevocationStore>,
}

/// Whether Redis answers, as the store's watcher last saw: a `PING` every
/// [`PING_EVERY`], which must answer within [`PING_WITHIN`].
#[derive(Default)]
struct Health {
    down: AtomicBool,
    watching: AtomicBool,
}

const PING_EVERY: Duration = Duration::from_secs(1);
const PING_WITHIN: Duration = Duration::from_secs(2);

impl fmt::Debug for RedisSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSessionStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Stores a record if the record key still holds what was read; returns 1, or 0 if it changed.
///
/// `KEYS[1]`: the record; `KEYS[2 .. 1+n]`: its index sets; the rest: index sets of the record
/// it replaces, which it leaves. `ARGV`: whether a value was read (`1`), that value, the id,
/// the new value, the TTL in milliseconds, `n`.
const SAVE_SCRIPT: &str = r"
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if cur ~= ARGV[2] then return 0 end
elseif cur then
  return 0
end
local n = tonumber(ARGV[6])
for i = 2 + n, #KEYS do
  redis.call('SREM', KEYS[i], ARGV[3])
end
redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5])
local ttl = tonumber(ARGV[5])
for i = 2, 1 + n do
  redis.call('SADD', KEYS[i], ARGV[3])
  if redis.call('PTTL', KEYS[i]) < ttl then
    redis.call('PEXPIRE', KEYS[i], ARGV[5])
  end
end
return 1
";

/// Removes an id from index sets (and its record, if asked) if the record key still holds what
/// was read; returns 1, or 0 if it changed.
///
/// `KEYS[1]`: the record; the rest: index sets. `ARGV`: whether a value was read (`1`), that
/// value, the id, whether to delete the record (`1`).
const REMOVE_SCRIPT: &str = r"
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if cur ~= ARGV[2] then return 0 end
elseif cur then
  return 0
end
if ARGV[4] == '1' then
  redis.call('DEL', KEYS[1])
end
for i = 2, #KEYS do
  redis.call('SREM', KEYS[i], ARGV[3])
end
return 1
";

/// How often a write is retried when the record changes between reading and writing it.
const ATTEMPTS: usize = 16;

/// The longest TTL stored (100 years): Redis refuses expiry times past its clock's range.
const MAX_TTL_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// What a record key held when it was read.
enum Stored {
    Absent,
    /// Not a record: read as absent, but compared as read.
    Malformed(Vec<u8>),
    Record(Vec<u8>, SessionRecord),
}

impl Stored {
    fn parse(id: &SessionId, value: Option<Vec<u8>>) -> Self {
        let Some(raw) = value else {
            return Self::Absent;
        };
        match serde_json::from_slice::<SessionRecord>(&raw) {
            Ok(record) => Self::Record(raw, record),
            Err(_) => {
                // Never the value, nor the parser's message (which may quote it).
                tracing::warn!(
                    ?id,
                    "a session record in Redis is malformed; read as absent"
                );
                Self::Malformed(raw)
            }
        }
    }

    /// The value read, for the scripts' check.
    fn raw(&self) -> Option<&[u8]> {
        match self {
            Self::Absent => None,
            Self::Malformed(raw) | Self::Record(raw, _) => Some(raw),
        }
    }
}

#[derive(Clone, Copy)]
enum Index {
    Sid,
    Sub,
}

impl Index {
    fn holds(self, record: &SessionRecord, key: &str) -> bool {
        match self {
            Self::Sid => record.sid.as_deref() == Some(key),
            Self::Sub => record.sub == key,
        }
    }
}

/// A store error that says what failed, never what was sent or received.
fn store_error(error: &redis::RedisError) -> SessionStoreError {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connection_refusal() {
        "connection refused"
    } else if error.is_connection_dropped() {
        "connection dropped"
    } else {
        error.category()
    };
    SessionStoreError(match error.code() {
        Some(code) => format!("Redis: {what} ({code})"),
        None => format!("Redis: {what}"),
    })
}

impl RedisSessionStore {
    /// Connects (with reconnection handled by redis's `ConnectionManager`).
    /// Connects (with reconnection handled by redis's `ConnectionManager`), together with a
    /// [`RedisRevocationStore`](super::RedisRevocationStore) on the same server, which the
    /// layer uses when it is given no revocation store of its own: instances sharing the
    /// sessions then share logouts too (see
    /// [`SessionStore::revocation_store`](crate::session_store::SessionStore::revocation_store)).
    pub async fn connect(url: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let conn = client.get_connection_manager().await?;
        let revocations = super::RedisRevocationStore::connect(url).await?;
        Ok(Self {
            revocations: Some(revocations),
            ..Self::new(conn)
        })
    }

    /// Uses an existing connection manager (one can be shared with the
    /// [`RedisRefreshCoordinator`](super::RedisRefreshCoordinator)). Give the layer a
    /// [`RedisRevocationStore`](super::RedisRevocationStore) too when several instances share
    /// the sessions (`connect` makes one itself).
    #[must_use]
    pub fn new(conn: ConnectionManager) -> Self {
        Self {
            conn,
            prefix: "tower-oidc-auth".into(),
            health: Arc::default(),
            revocations: None,
        }
    }

    /// Starts the watcher behind [`available`](SessionStore::available), once, on the runtime
    /// of the first caller. It stops when the last clone of the store is dropped.
    fn watch(&self) {
        if self.health.watching.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.health.watching.store(false, Ordering::Release);
            return;
        };
        let health: Weak<Health> = Arc::downgrade(&self.health);
        let conn = self.conn.clone();
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(PING_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let mut conn = conn.clone();
                let cmd = redis::cmd("PING");
                let ping = cmd.query_async::<String>(&mut conn);
                let answered = matches!(tokio::time::timeout(PING_WITHIN, ping).await, Ok(Ok(_)));
                let Some(health) = health.upgrade() else {
                    return;
                };
                let was_down = health.down.swap(!answered, Ordering::AcqRel);
                if was_down == answered {
                    if answered {
                        tracing::info!("Redis answers again: sessions are served");
                    } else {
                        tracing::warn!(
                            "Redis does not answer: requests with a session get 503 until it does"
                        );
                    }
                }
            }
        });
    }

    /// Prefix of the Redis keys (default `tower-oidc-auth`); give apps sharing a Redis
    /// different ones.
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    fn record_key(&self, id: &SessionId) -> String {
        format!("{}:s:{}", self.prefix, id.as_str())
    }

    fn index_key(&self, index: Index, key: &str) -> String {
        match index {
            Index::Sid => format!("{}:sid:{key}", self.prefix),
            Index::Sub => format!("{}:sub:{key}", self.prefix),
        }
    }

    /// The index sets `record` belongs to.
    fn index_keys(&self, record: &SessionRecord) -> Vec<String> {
        let mut keys = vec![self.index_key(Index::Sub, &record.sub)];
        if let Some(sid) = &record.sid {
            keys.push(self.index_key(Index::Sid, sid));
        }
        keys
    }

    async fn read(
        &self,
        conn: &mut ConnectionManager,
        id: &SessionId,
    ) -> Result<Stored, SessionStoreError> {
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.record_key(id))
            .query_async(conn)
            .await
            .map_err(|e| store_error(&e))?;
        Ok(Stored::parse(id, value))
    }

    /// Runs the remove script: drops `id` from `sets` (and its record if `delete`) if the
    /// record is still `read`. Whether it was.
    async fn remove_if(
        &self,
        conn: &mut ConnectionManager,
        id: &SessionId,
        read: &Stored,
        delete: bool,
        sets: &[String],
    ) -> Result<bool, SessionStoreError> {
        let raw = read.raw();
        let done: i64 = redis::cmd("EVAL")
            .arg(REMOVE_SCRIPT)
            .arg(1 + sets.len())
            .arg(self.record_key(id))
            .arg(sets)
            .arg(if raw.is_some() { "1" } else { "0" })
            .arg(raw.unwrap_or_default())
            .arg(id.as_str())
            .arg(if delete { "1" } else { "0" })
            .query_async(conn)
            .await
            .map_err(|e| store_error(&e))?;
        Ok(done == 1)
    }

    async fn save_record(
        self,
        id: SessionId,
        record: SessionRecord,
        ttl: Duration,
    ) -> Result<(), SessionStoreError> {
        let ttl_ms = u64::try_from(ttl.as_millis())
            .unwrap_or(u64::MAX)
            .min(MAX_TTL_MS);
        if ttl_ms == 0 {
            // Nothing is stored; the record it replaces is gone all the same.
            self.delete_record(id).await?;
            return Ok(());
        }
        let value = serde_json::to_vec(&record)
            .map_err(|_| SessionStoreError("could not encode a session record".into()))?;
        let mut conn = self.conn.clone();
        for _ in 0..ATTEMPTS {
            let read = self.read(&mut conn, &id).await?;
            if self
                .write_if_unchanged(&mut conn, &id, &read, &record, &value, ttl_ms)
                .await?
            {
                return Ok(());
            }
        }
        Err(contended())
    }

    /// Writes `record` (encoded: `value`) under `id` if the record key still holds what was
    /// `read`; whether it did.
    async fn write_if_unchanged(
        &self,
        conn: &mut ConnectionManager,
        id: &SessionId,
        read: &Stored,
        record: &SessionRecord,
        value: &[u8],
        ttl_ms: u64,
    ) -> Result<bool, SessionStoreError> {
        let new_sets = self.index_keys(record);
        let old_sets: Vec<String> = match read {
            Stored::Record(_, old) => self
                .index_keys(old)
                .into_iter()
                .filter(|set| !new_sets.contains(set))
                .collect(),
            _ => Vec::new(),
        };
        let raw = read.raw();
        let done: i64 = redis::cmd("EVAL")
            .arg(SAVE_SCRIPT)
            .arg(1 + new_sets.len() + old_sets.len())
            .arg(self.record_key(id))
            .arg(&new_sets)
            .arg(&old_sets)
            .arg(if raw.is_some() { "1" } else { "0" })
            .arg(raw.unwrap_or_default())
            .arg(id.as_str())
            .arg(value)
            .arg(ttl_ms)
            .arg(new_sets.len())
            .query_async(conn)
            .await
            .map_err(|e| store_error(&e))?;
        Ok(done == 1)
    }

    async fn replace_record(
        self,
        id: SessionId,
        current: SessionRecord,
        record: SessionRecord,
        ttl: Duration,
    ) -> Result<bool, SessionStoreError> {
        let ttl_ms = u64::try_from(ttl.as_millis())
            .unwrap_or(u64::MAX)
            .min(MAX_TTL_MS);
        let mut conn = self.conn.clone();
        let read = self.read(&mut conn, &id).await?;
        let unchanged = matches!(&read, Stored::Record(_, found) if *found == current);
        if !unchanged || ttl_ms == 0 {
            return Ok(false);
        }
        let value = serde_json::to_vec(&record)
            .map_err(|_| SessionStoreError("could not encode a session record".into()))?;
        self.write_if_unchanged(&mut conn, &id, &read, &record, &value, ttl_ms)
            .await
    }

    async fn delete_record(self, id: SessionId) -> Result<bool, SessionStoreError> {
        let mut conn = self.conn.clone();
        self.end(&mut conn, &id, None).await
    }

    /// Deletes the record of `id` with its index entries, if it belongs to `index` (any record
    /// when `None`); whether it did. Met in an index it does not belong to (gone, malformed,
    /// moved), the id is pruned from that index.
    async fn end(
        &self,
        conn: &mut ConnectionManager,
        id: &SessionId,
        index: Option<(Index, &str)>,
    ) -> Result<bool, SessionStoreError> {
        let from = index.map(|(index, key)| self.index_key(index, key));
        for _ in 0..ATTEMPTS {
            let read = self.read(conn, id).await?;
            let belongs = match (&read, index) {
                (Stored::Record(_, record), Some((index, key))) => index.holds(record, key),
                (Stored::Record(..), None) => true,
                _ => false,
            };
            let done = match (&read, &from) {
                (Stored::Record(_, record), _) if belongs => {
                    let mut sets = self.index_keys(record);
                    if let Some(set) = from.as_ref().filter(|set| !sets.contains(set)) {
                        sets.push(set.clone());
                    }
                    self.remove_if(conn, id, &read, true, &sets).await?
                }
                (_, Some(set)) => {
                    self.remove_if(conn, id, &read, false, std::slice::from_ref(set))
                        .await?
                }
                (_, None) => true,
            };
            if done {
                return Ok(belongs);
            }
        }
        Err(contended())
    }

    /// The ids of an index set; members that are no id are removed.
    async fn members(
        &self,
        conn: &mut ConnectionManager,
        set: &str,
    ) -> Result<Vec<SessionId>, SessionStoreError> {
        let members: Vec<Vec<u8>> = redis::cmd("SMEMBERS")
            .arg(set)
            .query_async(conn)
            .await
            .map_err(|e| store_error(&e))?;
        let mut ids = Vec::with_capacity(members.len());
        for member in members {
            match std::str::from_utf8(&member)
                .ok()
                .and_then(SessionId::from_stored)
            {
                Some(id) => ids.push(id),
                None => {
                    let _: i64 = redis::cmd("SREM")
                        .arg(set)
                        .arg(member)
                        .query_async(conn)
                        .await
                        .map_err(|e| store_error(&e))?;
                }
            }
        }
        Ok(ids)
    }

    async fn delete_index(self, index: Index, key: String) -> Result<usize, SessionStoreError> {
        let mut conn = self.conn.clone();
        let set = self.index_key(index, &key);
        let mut ended = 0;
        // Each id leaves the set as it is dealt with: the set is gone once empty, and an id
        // added meanwhile (a session saved during the logout) is never dropped unseen.
        for id in self.members(&mut conn, &set).await? {
            if self.end(&mut conn, &id, Some((index, &key))).await? {
                ended += 1;
            }
        }
        Ok(ended)
    }

    async fn list(
        self,
        index: Index,
        key: String,
    ) -> Result<Vec<(SessionId, SessionMeta)>, SessionStoreError> {
        let mut conn = self.conn.clone();
        let set = self.index_key(index, &key);
        let ids = self.members(&mut conn, &set).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.record_key(id)).collect();
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .map_err(|e| store_error(&e))?;
        let mut found = Vec::with_capacity(ids.len());
        for (id, value) in ids.into_iter().zip(values) {
            let read = Stored::parse(&id, value);
            match read {
                Stored::Record(_, record) if index.holds(&record, &key) => {
                    found.push((id, record.meta));
                }
                // Gone, malformed or moved: no longer this user's. Pruned unless it changed
                // meanwhile (then the next listing sees it as it is).
                read => {
                    self.remove_if(&mut conn, &id, &read, false, std::slice::from_ref(&set))
                        .await?;
                }
            }
        }
        found.sort_by(|a, b| (a.1.created, a.0.as_str()).cmp(&(b.1.created, b.0.as_str())));
        Ok(found)
    }
}

fn contended() -> SessionStoreError {
    SessionStoreError("Redis: the session kept changing while being written".into())
}

impl SessionStore for RedisSessionStore {
    fn load(
        &self,
        id: &SessionId,
    ) -> BoxFuture<'static, Result<Option<SessionRecord>, SessionStoreError>> {
        let this = self.clone();
        let id = id.clone();
        Box::pin(async move {
            let mut conn = this.conn.clone();
            Ok(match this.read(&mut conn, &id).await? {
                Stored::Record(_, record) => Some(record),
                Stored::Absent | Stored::Malformed(_) => None,
            })
        })
    }

    fn save(
        &self,
        id: &SessionId,
        record: SessionRecord,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), SessionStoreError>> {
        Box::pin(self.clone().save_record(id.clone(), record, ttl))
    }

    fn replace(
        self: Arc<Self>,
        id: SessionId,
        current: SessionRecord,
        record: SessionRecord,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<bool, SessionStoreError>> {
        Box::pin((*self).clone().replace_record(id, current, record, ttl))
    }

    fn delete(&self, id: &SessionId) -> BoxFuture<'static, Result<bool, SessionStoreError>> {
        Box::pin(self.clone().delete_record(id.clone()))
    }

    fn delete_by_sid(&self, sid: &str) -> BoxFuture<'static, Result<usize, SessionStoreError>> {
        Box::pin(self.clone().delete_index(Index::Sid, sid.to_owned()))
    }

    fn delete_by_sub(&self, sub: &str) -> BoxFuture<'static, Result<usize, SessionStoreError>> {
        Box::pin(self.clone().delete_index(Index::Sub, sub.to_owned()))
    }

    fn list_by_sub(
        &self,
        sub: &str,
    ) -> BoxFuture<'static, Result<Vec<(SessionId, SessionMeta)>, SessionStoreError>> {
        Box::pin(self.clone().list(Index::Sub, sub.to_owned()))
    }

    fn list_by_sid(
        &self,
        sid: &str,
    ) -> BoxFuture<'static, Result<Vec<(SessionId, SessionMeta)>, SessionStoreError>> {
        Box::pin(self.clone().list(Index::Sid, sid.to_owned()))
    }

    fn revocation_store(&self) -> Option<Arc<dyn crate::revocation::RevocationStore>> {
        self.revocations
            .clone()
            .map(|r| Arc::new(r) as Arc<dyn crate::revocation::RevocationStore>)
    }

    fn refresh_coordinator(
        &self,
        grace: Duration,
    ) -> Option<Arc<dyn crate::refresh::RefreshCoordinator>> {
        Some(Arc::new(
            super::RedisRefreshCoordinator::new(self.conn.clone()).grace(grace),
        ))
    }

    fn available(&self) -> bool {
        self.watch();
        !self.health.down.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_never_carry_what_redis_returned() {
        let error = redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "response was of incompatible type",
            "response was bulk-string('sealed-session-value')".to_owned(),
        ));
        let shown = store_error(&error).to_string();
        assert!(!shown.contains("sealed-session-value"), "{shown}");
        assert!(shown.contains("type error"), "{shown}");
    }
}
