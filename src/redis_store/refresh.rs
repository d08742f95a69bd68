//! [`RedisRefreshCoordinator`]: one refresh per session across instances.

use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::aio::ConnectionManager;

use crate::refresh::{
    LocalRefreshCoordinator, RefreshCoordinator, RefreshError, RefreshKey, RefreshTask,
    SealedTokens,
};

/// Single-flight refresh across several instances sharing one Redis.
///
/// Within an instance, a [`LocalRefreshCoordinator`] lets racing requests share one attempt.
/// Across instances, the instance that wins a short lock (`SET NX PX`) on the refresh token's
/// hash refreshes and publishes the result (the token endpoint's answer, sealed with the cookie
/// key and that hash as associated data) under that hash for the grace window; the others wait
/// for it and verify the tokens themselves. Redis never sees a token. If Redis is unreachable, the
/// instance refreshes on its own (and says so at warn level) rather than failing the request.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use tower_oidc_auth::{AuthLayer, RedisRefreshCoordinator};
/// let coordinator = RedisRefreshCoordinator::connect("redis://127.0.0.1:6379").await?;
/// let config = AuthLayer::builder().refresh_coordinator(coordinator);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisRefreshCoordinator {
    conn: ConnectionManager,
    local: LocalRefreshCoordinator,
    prefix: String,
    grace: Duration,
    lock_ttl: Duration,
    poll: Duration,
}

impl fmt::Debug for RedisRefreshCoordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRefreshCoordinator")
            .field("prefix", &self.prefix)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl RedisRefreshCoordinator {
    /// Connects (with reconnection handled by redis's `ConnectionManager`).
    pub async fn connect(url: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let conn = client.get_connection_manager().await?;
        Ok(Self::new(conn))
    }

    /// Uses an existing connection manager.
    #[must_use]
    pub fn new(conn: ConnectionManager) -> Self {
        let grace = Duration::from_secs(60);
        Self {
            conn,
            local: LocalRefreshCoordinator::new(grace, 10_000),
            prefix: "tower-oidc-auth".into(),
            grace,
            lock_ttl: Duration::from_secs(15),
            poll: Duration::from_millis(25),
        }
    }

    /// How long results are kept (default 60 s).
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self.local = LocalRefreshCoordinator::new(grace, 10_000);
        self
    }

    /// Prefix of the Redis keys (default `tower-oidc-auth`); give apps sharing a Redis
    /// different ones.
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long the refresh lock is held at most (default 15 s; keep it above the refresh
    /// timeout).
    #[must_use]
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl;
        self
    }

    async fn distributed(
        self,
        key: RefreshKey,
        task: RefreshTask,
    ) -> Result<SealedTokens, RefreshError> {
        let hex = key.to_hex();
        let result_key = format!("{}:refresh:result:{hex}", self.prefix);
        let lock_key = format!("{}:refresh:lock:{hex}", self.prefix);
        let mut conn = self.conn.clone();
        let deadline = tokio::time::Instant::now() + self.lock_ttl;
        let mut task = Some(task);
        loop {
            match self.read_result(&mut conn, &result_key).await {
                Ok(Some(result)) => return result,
                Ok(None) => {}
                Err(error) => return self.without_redis(error, task.take()).await,
            }
            let token = crate::token::random_token();
            let acquired: Result<Option<String>, _> = redis::cmd("SET")
                .arg(&lock_key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(self.lock_ttl.as_millis() as u64)
                .query_async(&mut conn)
                .await;
            match acquired {
                Err(error) => return self.without_redis(error, task.take()).await,
                Ok(Some(_)) => {
                    let Some(task) = task.take() else {
                        return Err(RefreshError::Unavailable(
                            "refresh already attempted".into(),
                        ));
                    };
                    let result = task.await;
                    let stored = match &result {
                        Ok(sealed) => Some(format!("ok:{}", sealed.0)),
                        Err(RefreshError::InvalidGrant) => Some("invalid_grant".to_owned()),
                        Err(RefreshError::Invalid(m)) => Some(format!("invalid:{m}")),
                        Err(RefreshError::Unavailable(_)) => None,
                    };
                    let write: Result<(), redis::RedisError> = match stored {
                        Some(value) => {
                            redis::cmd("SET")
                                .arg(&result_key)
                                .arg(value)
                                .arg("PX")
                                .arg(self.grace.as_millis().max(1) as u64)
                                .query_async(&mut conn)
                                .await
                        }
                        // Transient: release the lock so another instance may try at once.
                        None => {
                            redis::cmd("DEL")
                                .arg(&lock_key)
                                .query_async(&mut conn)
                                .await
                        }
                    };
                    if let Err(error) = write {
                        tracing::warn!(%error, "could not publish the refresh result to Redis");
                    }
                    return result;
                }
                Ok(None) => {
                    // Another instance is refreshing: wait for its result.
                    if tokio::time::Instant::now() >= deadline {
                        return Err(RefreshError::Unavailable(
                            "timed out waiting for another instance's refresh".into(),
                        ));
                    }
                    tokio::time::sleep(self.poll).await;
                }
            }
        }
    }

    async fn read_result(
        &self,
        conn: &mut ConnectionManager,
        result_key: &str,
    ) -> Result<Option<Result<SealedTokens, RefreshError>>, redis::RedisError> {
        let value: Option<String> = redis::cmd("GET").arg(result_key).query_async(conn).await?;
        Ok(value.map(|v| {
            if let Some(sealed) = v.strip_prefix("ok:") {
                Ok(SealedTokens(sealed.to_owned()))
            } else if v == "invalid_grant" {
                Err(RefreshError::InvalidGrant)
            } else {
                Err(RefreshError::Invalid(
                    v.strip_prefix("invalid:").unwrap_or(&v).to_owned(),
                ))
            }
        }))
    }

    async fn without_redis(
        &self,
        error: redis::RedisError,
        task: Option<RefreshTask>,
    ) -> Result<SealedTokens, RefreshError> {
        tracing::warn!(%error, "Redis unavailable; refreshing without cross-instance coordination");
        match task {
            Some(task) => task.await,
            None => Err(RefreshError::Unavailable("Redis unavailable".into())),
        }
    }
}

impl RefreshCoordinator for RedisRefreshCoordinator {
    fn coordinate(
        &self,
        key: RefreshKey,
        task: RefreshTask,
    ) -> BoxFuture<'static, Result<SealedTokens, RefreshError>> {
        let this = self.clone();
        let distributed: RefreshTask = Box::pin(this.distributed(key, task));
        self.local.coordinate(key, distributed)
    }

    fn hold(
        &self,
        key: RefreshKey,
        tokens: SealedTokens,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), RefreshError>> {
        let local = self.local.hold(key, tokens.clone(), ttl);
        let result_key = format!("{}:refresh:result:{}", self.prefix, key.to_hex());
        let mut conn = self.conn.clone();
        Box::pin(async move {
            local.await?;
            redis::cmd("SET")
                .arg(&result_key)
                .arg(format!("ok:{}", tokens.0))
                .arg("PX")
                .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| RefreshError::Unavailable(format!("Redis: {e}")))
        })
    }
}
