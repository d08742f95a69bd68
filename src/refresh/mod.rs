//! Transparent refresh: one refresh per refresh token, however many requests race.
//!
//! Requests whose access token is expired (or about to be) and that carry a refresh token go
//! through a [`RefreshCoordinator`]. The coordinator runs one refresh per refresh token (keyed by
//! its SHA-256, never the raw token) and keeps the result for a grace window, so requests that
//! arrive later with the old, now rotated, refresh token get the same new tokens instead of
//! replaying it. The result is the grant as the token endpoint answered it: each request
//! verifies it, so a verification that fails for now (a key not fetched yet) is retried by the
//! next request without another grant. The refresh itself runs in its own task, so a client
//! that disconnects cannot cancel a refresh that other requests wait for.
//!
//! [`LocalRefreshCoordinator`] is the default; behind a load balancer, `RedisRefreshCoordinator`
//! (feature `redis`) coordinates across instances.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::Duration;
//! use axum::{body::Body, routing::get, Router};
//! use http::{header, Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_oidc_auth::clock::ManualClock;
//! use tower_oidc_auth::refresh::LocalRefreshCoordinator;
//! use tower_oidc_auth::testing::{TestProvider, TestUser};
//!
//! let clock = ManualClock::starting_now();
//! let provider = TestProvider::builder()
//!     .access_token_ttl(Duration::from_secs(300))
//!     .clock(clock.clone())
//!     .start()
//!     .await;
//! let auth = provider
//!     .layer_builder("http://127.0.0.1:3000/auth/callback")
//!     .clock(clock.clone())
//!     // A refresh result is handed to requests with the old refresh token for 30 seconds.
//!     .refresh_coordinator(LocalRefreshCoordinator::new(Duration::from_secs(30), 10_000))
//!     .build()
//!     .await
//!     .unwrap();
//! let app = Router::new()
//!     .route("/me", get(|| async { "me" }))
//!     .route_layer(auth.require())
//!     .layer(auth.clone());
//! let cookie = provider.session_cookie(&auth, &TestUser::new("usr_1"));
//! let me = || Request::get("/me").header(header::COOKIE, &cookie).body(Body::empty()).unwrap();
//!
//! // The access token expires; three requests race with the same session.
//! clock.advance(Duration::from_secs(600));
//! let (a, b, c) = tokio::join!(
//!     app.clone().oneshot(me()),
//!     app.clone().oneshot(me()),
//!     app.clone().oneshot(me()),
//! );
//! for resp in [a, b, c] {
//!     let resp = resp.unwrap();
//!     assert_eq!(resp.status(), StatusCode::OK);
//!     assert!(resp.headers().contains_key(header::SET_COOKIE)); // the refreshed session
//! }
//! assert_eq!(provider.counts().refresh_grants, 1);
//! # }
//! ```

pub(crate) mod grant;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::clock::SharedClock;

/// Identifies a refresh: the SHA-256 of the refresh token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RefreshKey([u8; 32]);

impl RefreshKey {
    pub(crate) fn of(refresh_token: &str) -> Self {
        Self(Sha256::digest(refresh_token.as_bytes()).into())
    }

    /// Lower-case hex, for use as a storage key.
    #[must_use]
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for RefreshKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RefreshKey({}..)", &self.to_hex()[..12])
    }
}

/// The result of a refresh grant (the token endpoint's answer, not yet verified), sealed with
/// the layer's cookie key and bound to its [`RefreshKey`]: coordinators may store and publish
/// it without learning the tokens, and a result stored under another key never opens. Each
/// request that receives it verifies the tokens; a verification that fails for now is retried
/// from the same result, never with another grant.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedTokens(pub String);

impl fmt::Debug for SealedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealedTokens(REDACTED)")
    }
}

/// Why a refresh failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError {
    /// The provider refused the refresh token (`invalid_grant`): the session is over.
    #[error("refresh token rejected")]
    InvalidGrant,
    /// The provider is unreachable, failing, or did not answer in time: try again later.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The provider's answer was unusable (malformed, or refused for another reason).
    #[error("refreshed tokens refused: {0}")]
    Invalid(String),
}

/// The work of one refresh, run by the coordinator at most once per key and window.
pub type RefreshTask = BoxFuture<'static, Result<SealedTokens, RefreshError>>;

/// Makes sure one refresh token is used once, however many requests (or instances) race.
///
/// The default, [`LocalRefreshCoordinator`], coordinates within one process. Several instances
/// behind a load balancer need a shared one.
pub trait RefreshCoordinator: Send + Sync + 'static {
    /// Runs `task` unless a refresh for `key` is in flight or finished within the grace window;
    /// then its result is returned instead.
    fn coordinate(
        &self,
        key: RefreshKey,
        task: RefreshTask,
    ) -> BoxFuture<'static, Result<SealedTokens, RefreshError>>;

    /// Keeps `tokens` as the result of the refresh `key` for `ttl` from now, beyond the grace
    /// window: requests (on any instance) that arrive meanwhile with the rotated refresh token
    /// get these tokens instead of replaying it. The layer holds a result this way while a
    /// session store cannot save it (store mode), so that no instance signs the user out by
    /// replaying the refresh token the stored session still holds. The default keeps nothing.
    fn hold(
        &self,
        key: RefreshKey,
        tokens: SealedTokens,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), RefreshError>> {
        let _ = (key, tokens, ttl);
        Box::pin(async { Ok(()) })
    }
}

type Slot = watch::Receiver<Option<Result<SealedTokens, RefreshError>>>;

struct Entry {
    /// When the refresh began: a coordinator hands the result out within its own grace window
    /// from then (layers sharing the tables may have different windows).
    created: i64,
    /// When the entry is dropped: the end of the grace window of the layer that made it.
    until: i64,
    /// Tells this entry from a later one under the same key.
    id: u64,
    rx: Slot,
}

/// The tables, shared by the coordinators of layers on one session store (`with_grace`).
struct LocalInner {
    capacity: usize,
    clock: SharedClock,
    entries: Mutex<HashMap<RefreshKey, Entry>>,
    /// Results held beyond the grace window (`hold`), apart from `entries`: a hold never
    /// evicts a refresh in flight or in its grace window, nor the reverse.
    holds: Mutex<HashMap<RefreshKey, Held>>,
    next_id: std::sync::atomic::AtomicU64,
}

struct Held {
    until: i64,
    tokens: SealedTokens,
}

/// Single-flight refresh with a grace cache, within one process.
///
/// Entries (sealed tokens) are dropped when their grace window ends; at most `capacity` are
/// kept (the oldest go first).
#[derive(Clone)]
pub struct LocalRefreshCoordinator {
    inner: Arc<LocalInner>,
    /// The grace window, in seconds.
    grace: i64,
}

impl fmt::Debug for LocalRefreshCoordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalRefreshCoordinator")
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl LocalRefreshCoordinator {
    /// A coordinator keeping results for `grace`, at most `capacity` of them.
    #[must_use]
    pub fn new(grace: Duration, capacity: usize) -> Self {
        Self::with_clock(grace, capacity, Arc::new(crate::SystemClock))
    }

    pub(crate) fn with_clock(grace: Duration, capacity: usize, clock: SharedClock) -> Self {
        Self {
            grace: i64::try_from(grace.as_secs()).unwrap_or(i64::MAX),
            inner: Arc::new(LocalInner {
                capacity: capacity.max(1),
                clock,
                entries: Mutex::new(HashMap::new()),
                holds: Mutex::new(HashMap::new()),
                next_id: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    /// A coordinator on the same tables (refreshes in flight, results, holds) with a grace
    /// window of its own: layers sharing a session store share single-flight and holds, and
    /// each hands out a result only within the window it was configured with.
    pub(crate) fn with_grace(&self, grace: Duration) -> Self {
        Self {
            inner: self.inner.clone(),
            grace: i64::try_from(grace.as_secs()).unwrap_or(i64::MAX),
        }
    }

    /// Entries currently kept (for tests and metrics).
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no entry is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RefreshKey, Entry>> {
        self.inner
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl LocalRefreshCoordinator {
    /// Makes room for one more entry: the one ending first goes, and of those ending at the
    /// same time, the oldest (never by the hash map's order).
    fn make_room(&self, entries: &mut HashMap<RefreshKey, Entry>) {
        while entries.len() >= self.inner.capacity {
            let first = entries
                .iter()
                .min_by_key(|(_, e)| (e.until, e.id))
                .map(|(k, _)| *k);
            match first {
                Some(k) => entries.remove(&k),
                None => break,
            };
        }
    }

    fn next_id(&self) -> u64 {
        self.inner
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Drops the entry `id` of `key` after `window` (real time), even if no other refresh
    /// comes along to prune it.
    fn expire(&self, key: RefreshKey, id: u64, window: i64) {
        let this = self.clone();
        let window = Duration::from_secs(u64::try_from(window.max(0)).unwrap_or(u64::MAX));
        tokio::spawn(async move {
            tokio::time::sleep(window).await;
            let mut entries = this.lock();
            if entries.get(&key).is_some_and(|e| e.id == id) {
                entries.remove(&key);
            }
        });
    }
}

impl RefreshCoordinator for LocalRefreshCoordinator {
    fn coordinate(
        &self,
        key: RefreshKey,
        task: RefreshTask,
    ) -> BoxFuture<'static, Result<SealedTokens, RefreshError>> {
        let now = self.inner.clock.now();
        let grace = self.grace;
        let mut rx = {
            let mut entries = self.lock();
            entries.retain(|_, e| now < e.until);
            // In flight, or finished within this layer's window.
            let current = entries
                .get(&key)
                .filter(|e| now.saturating_sub(e.created) < grace);
            if current.is_none() {
                if let Some(tokens) = self.held(key, now) {
                    tracing::debug!(?key, "refresh result held (its session not saved yet)");
                    return Box::pin(async move { Ok(tokens) });
                }
            }
            match current {
                Some(entry) => {
                    tracing::debug!(?key, "refresh joined (in flight or within grace window)");
                    entry.rx.clone()
                }
                None => {
                    self.make_room(&mut entries);
                    let (tx, rx) = watch::channel(None);
                    let id = self.next_id();
                    entries.insert(
                        key,
                        Entry {
                            created: now,
                            until: now.saturating_add(grace),
                            id,
                            rx: rx.clone(),
                        },
                    );
                    let this = self.clone();
                    // Its own task: a disconnecting client must not cancel a refresh that other
                    // requests wait for (a cancelled rotation would log them all out).
                    tokio::spawn(async move {
                        let result = task.await;
                        let transient = matches!(result, Err(RefreshError::Unavailable(_)));
                        if transient {
                            // Transient: the next request may try again.
                            let mut entries = this.lock();
                            if entries.get(&key).is_some_and(|e| e.id == id) {
                                entries.remove(&key);
                            }
                        }
                        let _ = tx.send(Some(result));
                        drop(tx);
                        if !transient {
                            this.expire(key, id, grace);
                        }
                    });
                    rx
                }
            }
        };
        Box::pin(async move {
            match rx.wait_for(Option::is_some).await {
                Ok(value) => value
                    .clone()
                    .unwrap_or_else(|| Err(RefreshError::Unavailable("no result".into()))),
                Err(_) => Err(RefreshError::Unavailable("refresh task ended".into())),
            }
        })
    }

    fn hold(
        &self,
        key: RefreshKey,
        tokens: SealedTokens,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), RefreshError>> {
        let now = self.inner.clock.now();
        let until = now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
        let mut holds = self.lock_holds();
        holds.retain(|_, h| now < h.until);
        if !holds.contains_key(&key) {
            // Full: the hold ending first goes (never an entry of `coordinate`).
            while holds.len() >= self.inner.capacity {
                let first = holds.iter().min_by_key(|(_, h)| h.until).map(|(k, _)| *k);
                match first {
                    Some(k) => holds.remove(&k),
                    None => break,
                };
            }
        }
        holds.insert(key, Held { until, tokens });
        Box::pin(async { Ok(()) })
    }
}

impl LocalRefreshCoordinator {
    /// The result held for `key`, if its hold has not ended.
    fn held(&self, key: RefreshKey, now: i64) -> Option<SealedTokens> {
        self.lock_holds()
            .get(&key)
            .filter(|h| now < h.until)
            .map(|h| h.tokens.clone())
    }

    fn lock_holds(&self) -> std::sync::MutexGuard<'_, HashMap<RefreshKey, Held>> {
        self.inner
            .holds
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn task(counter: Arc<AtomicUsize>, result: Result<&'static str, RefreshError>) -> RefreshTask {
        Box::pin(async move {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            result.map(|s| SealedTokens(s.into()))
        })
    }

    #[tokio::test]
    async fn one_flight_and_grace_window() {
        let clock = ManualClock::new(1000);
        let c = LocalRefreshCoordinator::with_clock(
            Duration::from_secs(60),
            100,
            Arc::new(clock.clone()),
        );
        let runs = Arc::new(AtomicUsize::new(0));
        let key = RefreshKey::of("rt-1");
        let futs: Vec<_> = (0..10)
            .map(|_| c.coordinate(key, task(runs.clone(), Ok("new"))))
            .collect();
        for f in futs {
            assert_eq!(f.await.unwrap(), SealedTokens("new".into()));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        clock.advance(Duration::from_secs(59));
        assert!(c
            .coordinate(key, task(runs.clone(), Ok("other")))
            .await
            .is_ok());
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "served from the grace window"
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            c.coordinate(key, task(runs.clone(), Ok("later")))
                .await
                .unwrap(),
            SealedTokens("later".into())
        );
        assert_eq!(runs.load(Ordering::SeqCst), 2, "window over: runs again");
    }

    #[tokio::test]
    async fn a_held_result_is_served_past_the_grace_window_until_its_hold_ends() {
        let clock = ManualClock::new(1000);
        let c = LocalRefreshCoordinator::with_clock(
            Duration::from_secs(60),
            100,
            Arc::new(clock.clone()),
        );
        let runs = Arc::new(AtomicUsize::new(0));
        let key = RefreshKey::of("rt-held");
        assert_eq!(
            c.coordinate(key, task(runs.clone(), Ok("new"))).await,
            Ok(SealedTokens("new".into()))
        );
        c.hold(key, SealedTokens("new".into()), Duration::from_secs(900))
            .await
            .unwrap();
        clock.advance(Duration::from_secs(899));
        assert_eq!(
            c.coordinate(key, task(runs.clone(), Ok("replayed"))).await,
            Ok(SealedTokens("new".into())),
            "held past the 60 s grace window"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            c.coordinate(key, task(runs.clone(), Ok("later"))).await,
            Ok(SealedTokens("later".into()))
        );
        assert_eq!(runs.load(Ordering::SeqCst), 2, "hold over: runs again");
    }

    #[tokio::test]
    async fn transient_failures_are_not_cached_but_invalid_grant_is() {
        let c = LocalRefreshCoordinator::new(Duration::from_secs(60), 100);
        let runs = Arc::new(AtomicUsize::new(0));
        let key = RefreshKey::of("rt");
        let err = RefreshError::Unavailable("down".into());
        assert_eq!(
            c.coordinate(key, task(runs.clone(), Err(err.clone())))
                .await,
            Err(err)
        );
        assert!(c
            .coordinate(key, task(runs.clone(), Ok("ok")))
            .await
            .is_ok());
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        let key2 = RefreshKey::of("rt2");
        let _ = c
            .coordinate(key2, task(runs.clone(), Err(RefreshError::InvalidGrant)))
            .await;
        let again = c.coordinate(key2, task(runs.clone(), Ok("no"))).await;
        assert_eq!(again, Err(RefreshError::InvalidGrant));
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn bounded() {
        let c = LocalRefreshCoordinator::new(Duration::from_secs(60), 3);
        let runs = Arc::new(AtomicUsize::new(0));
        for i in 0..10 {
            c.coordinate(
                RefreshKey::of(&format!("rt{i}")),
                task(runs.clone(), Ok("x")),
            )
            .await
            .unwrap();
        }
        assert!(c.len() <= 3);
    }

    #[test]
    fn key_is_a_hash() {
        let k = RefreshKey::of("secret-refresh-token");
        assert_eq!(k.to_hex().len(), 64);
        assert!(!format!("{k:?}").contains("secret"));
    }
}
