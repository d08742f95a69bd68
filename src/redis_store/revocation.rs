//! [`RedisRevocationStore`]: revocations shared by every instance, never evicted.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::aio::ConnectionManager;

use crate::revocation::{RevocationError, RevocationKey, RevocationStore};

/// Revocations shared by several instances through Redis (feature `redis`).
///
/// A logout received by one instance ends the session on all of them at once: each revocation
/// is stored in Redis (with its TTL) and published on a channel; every instance keeps a local
/// mirror, loaded at connect and kept current by the subscription, so the check on every
/// request never waits for Redis.
///
/// Nothing is silently lost:
/// - The mirror is an uncapped [`MemoryRevocationStore`](crate::revocation::MemoryRevocationStore): it holds
///   every record Redis holds, for its TTL, and never evicts.
/// - A record is written with a small Lua script that merges: a write never shortens an existing
///   record's lifetime nor moves its revocation time back.
/// - A failed `PUBLISH` (after the record is stored) is retried; the other instances' periodic
///   reload picks the record up in any case.
/// - The subscription is checked with a `PING` every [`keepalive`](Self::keepalive) (default
///   30 s): a connection that does not answer in time (half-open) is replaced, and everything
///   is reloaded. Independently, the whole set is reloaded every
///   [`reload_interval`](Self::reload_interval) (default 5 minutes).
///
/// The request path never waits for Redis: it reads the mirror, at the memory store's cost. Why a
/// mirror and not a cache with a TTL is recorded in `BENCHMARKS.md` ("Redis revocations").
#[derive(Clone)]
pub struct RedisRevocationStore {
    conn: ConnectionManager,
    local: crate::revocation::MemoryRevocationStore,
    prefix: String,
    version: Arc<tokio::sync::watch::Sender<u64>>,
    timing: Arc<ListenerTiming>,
}

/// The listener's intervals, in milliseconds (changeable after connect).
pub(super) struct ListenerTiming {
    keepalive_ms: AtomicU64,
    reload_ms: AtomicU64,
    changed: tokio::sync::Notify,
}

impl ListenerTiming {
    fn keepalive(&self) -> Duration {
        Duration::from_millis(self.keepalive_ms.load(Ordering::Relaxed))
    }
    fn reload(&self) -> Duration {
        Duration::from_millis(self.reload_ms.load(Ordering::Relaxed))
    }
}

/// Stores a revocation, merged with any record already held: the later time and the longer
/// remaining lifetime win. Returns the merged `{at, ttl_ms}`.
pub(super) const MERGE_SCRIPT: &str = r"
local at = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local old = tonumber(redis.call('GET', KEYS[1]) or '')
if old then
  if old > at then at = old end
  local left = redis.call('PTTL', KEYS[1])
  if left > ttl then ttl = left end
end
redis.call('SET', KEYS[1], string.format('%d', at), 'PX', string.format('%d', ttl))
return {at, ttl}
";

impl fmt::Debug for RedisRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRevocationStore")
            .field("prefix", &self.prefix)
            .field("local", &self.local)
            .field("keepalive", &self.timing.keepalive())
            .field("reload_interval", &self.timing.reload())
            .finish_non_exhaustive()
    }
}

impl RedisRevocationStore {
    /// Connects with the key prefix `tower-oidc-auth`.
    pub async fn connect(url: &str) -> Result<Self, redis::RedisError> {
        Self::connect_with_prefix(url, "tower-oidc-auth").await
    }

    /// Connects; `prefix` namespaces the Redis keys and the channel.
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let conn = client.get_connection_manager().await?;
        let (version, _) = tokio::sync::watch::channel(0u64);
        let store = Self {
            conn,
            local: crate::revocation::MemoryRevocationStore::new(),
            prefix: prefix.to_owned(),
            version: Arc::new(version),
            timing: Arc::new(ListenerTiming {
                keepalive_ms: AtomicU64::new(30_000),
                reload_ms: AtomicU64::new(300_000),
                changed: tokio::sync::Notify::new(),
            }),
        };
        // Subscribe first, then load: nothing published in between is missed.
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(store.channel()).await?;
        store.reload().await?;
        let listener = store.clone();
        tokio::spawn(async move { listener.listen(client, pubsub).await });
        Ok(store)
    }

    /// How often the subscription is checked with a `PING` (default 30 s); a connection that
    /// does not answer within this interval is replaced and everything is reloaded.
    #[must_use]
    pub fn keepalive(self, every: Duration) -> Self {
        self.timing
            .keepalive_ms
            .store(millis(every), Ordering::Relaxed);
        self.timing.changed.notify_waiters();
        self
    }

    /// How often every revocation is reloaded from Redis regardless of the subscription
    /// (default 5 minutes): the bound on how long a lost announcement can go unnoticed.
    #[must_use]
    pub fn reload_interval(self, every: Duration) -> Self {
        self.timing
            .reload_ms
            .store(millis(every), Ordering::Relaxed);
        self.timing.changed.notify_waiters();
        self
    }

    fn channel(&self) -> String {
        format!("{}:revocations", self.prefix)
    }

    fn record_key(&self, key: &RevocationKey) -> String {
        format!("{}:revoked:{}", self.prefix, key.as_str())
    }

    /// A receiver whose value changes each time a revocation from any instance is applied
    /// locally (for tests and metrics).
    #[must_use]
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.version.subscribe()
    }

    fn apply(&self, key: &RevocationKey, at: i64, ttl: Duration) {
        self.local.insert(key, at, ttl);
        self.version.send_modify(|v| *v += 1);
    }

    /// Loads every revocation stored in Redis into the local mirror (merged with what it holds).
    pub async fn reload(&self) -> Result<(), redis::RedisError> {
        let mut conn = self.conn.clone();
        let pattern = format!("{}:revoked:*", self.prefix);
        let strip = format!("{}:revoked:", self.prefix);
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                let mut pipe = redis::pipe();
                for redis_key in &keys {
                    pipe.cmd("GET").arg(redis_key).cmd("PTTL").arg(redis_key);
                }
                let values: Vec<(Option<i64>, i64)> = pipe.query_async(&mut conn).await?;
                for (redis_key, (at, ttl_ms)) in keys.iter().zip(values) {
                    if let (Some(at), true) = (at, ttl_ms > 0) {
                        let key = RevocationKey::from_stored(&redis_key[strip.len()..]);
                        // Whole seconds, rounded up: never shorter than Redis keeps it.
                        let ttl = Duration::from_secs((ttl_ms as u64).div_ceil(1000));
                        self.apply(&key, at, ttl);
                    }
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        Ok(())
    }

    fn on_message(&self, msg: &redis::Msg) {
        let Ok(payload) = msg.get_payload::<String>() else {
            return;
        };
        // "<at> <ttl seconds> <key>"
        let mut parts = payload.splitn(3, ' ');
        let (Some(at), Some(ttl), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return;
        };
        if let (Ok(at), Ok(ttl)) = (at.parse::<i64>(), ttl.parse::<u64>()) {
            self.apply(
                &RevocationKey::from_stored(key),
                at,
                Duration::from_secs(ttl),
            );
        }
    }

    async fn listen(self, client: redis::Client, pubsub: redis::aio::PubSub) {
        use futures_util::future::{select, Either};
        use futures_util::StreamExt;
        use tokio::time::Instant;
        let (mut sink, mut stream) = pubsub.split();
        let mut last_reload = Instant::now();
        loop {
            let mut last_ping = Instant::now();
            // Serve messages; between them, check the connection and reload on schedule.
            loop {
                let keepalive = self.timing.keepalive();
                let ping_at = last_ping + keepalive;
                let reload_at = last_reload + self.timing.reload();
                let next = tokio::time::timeout_at(ping_at.min(reload_at), stream.next());
                let changed = self.timing.changed.notified();
                match select(std::pin::pin!(next), std::pin::pin!(changed)).await {
                    Either::Left((Ok(Some(msg)), _)) => self.on_message(&msg),
                    Either::Left((Ok(None), _)) => break,
                    Either::Left((Err(_), _)) => {
                        let now = Instant::now();
                        if now >= reload_at {
                            if let Err(error) = self.reload().await {
                                tracing::warn!(%error, "periodic reload of revocations failed");
                            }
                            last_reload = Instant::now();
                        }
                        if now >= ping_at {
                            // A half-open connection accepts the PING but never answers it.
                            let ping = sink.ping::<String>();
                            if !matches!(tokio::time::timeout(keepalive, ping).await, Ok(Ok(_))) {
                                break;
                            }
                            last_ping = Instant::now();
                        }
                    }
                    // The intervals changed: recompute the deadlines.
                    Either::Right(((), _)) => {}
                }
            }
            tracing::warn!("revocation subscription lost or unresponsive; reconnecting");
            // Reconnect with a bounded backoff, then reload what may have been missed.
            let mut delay = Duration::from_millis(100);
            let fresh = loop {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                let Ok(mut fresh) = client.get_async_pubsub().await else {
                    continue;
                };
                if fresh.subscribe(self.channel()).await.is_ok() {
                    break fresh;
                }
            };
            (sink, stream) = fresh.split();
            match self.reload().await {
                Ok(()) => last_reload = Instant::now(),
                Err(error) => tracing::warn!(%error, "reloading revocations failed"),
            }
        }
    }
}

pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RevocationStore for RedisRevocationStore {
    fn revoke(
        &self,
        key: RevocationKey,
        at: i64,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), RevocationError>> {
        // Locally at once; then stored and announced to the other instances.
        self.apply(&key, at, ttl);
        let this = self.clone();
        Box::pin(async move {
            let mut conn = this.conn.clone();
            let ttl_ms = millis(ttl.max(Duration::from_secs(1)));
            let (at, ttl_ms): (i64, i64) = redis::cmd("EVAL")
                .arg(MERGE_SCRIPT)
                .arg(1)
                .arg(this.record_key(&key))
                .arg(at)
                .arg(ttl_ms)
                .query_async(&mut conn)
                .await
                .map_err(|e| RevocationError(e.to_string()))?;
            // Announce the merged record (whole seconds, rounded up).
            let message = format!(
                "{at} {} {}",
                (ttl_ms.max(1) as u64).div_ceil(1000),
                key.as_str()
            );
            let mut delay = Duration::from_millis(50);
            for attempt in 1..=3 {
                let published: Result<i64, _> = redis::cmd("PUBLISH")
                    .arg(this.channel())
                    .arg(&message)
                    .query_async(&mut conn)
                    .await;
                match published {
                    Ok(_) => return Ok(()),
                    Err(error) if attempt == 3 => {
                        // Stored: the other instances load it at their next periodic reload.
                        tracing::error!(
                            %error,
                            reload_interval = ?this.timing.reload(),
                            "revocation stored in Redis but not announced; other instances \
                             apply it at their next reload"
                        );
                    }
                    Err(error) => {
                        tracing::warn!(%error, attempt, "announcing a revocation failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
            Ok(())
        })
    }

    fn revoked_at(&self, key: &RevocationKey) -> Option<i64> {
        self.local.revoked_at(key)
    }

    fn revoked_before(&self) -> Option<i64> {
        self.local.revoked_before()
    }

    fn is_empty(&self) -> bool {
        RevocationStore::is_empty(&self.local)
    }

    fn len_hint(&self) -> Option<usize> {
        // The local mirror of Redis's records.
        self.local.len_hint()
    }
}
