//! Server-side sessions (issue 18, first part): the [`SessionStore`] trait and the in-memory
//! store. The layer does not use a store yet: this is the storage the store mode will stand
//! on, with its contract tested on its own.
//!
//! In store mode a session's cookie holds only a sealed random id ([`SessionId`]); the session
//! itself lives in the store as a [`SessionRecord`], **sealed with the cookie keys before the
//! store sees it**, so a store (Redis, say) never holds a token in clear. The store keeps two
//! secondary indexes so that logouts can end sessions by provider session (`sid`) and by user
//! (`sub`), and "your sessions" pages can list a user's sessions.

use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

mod memory;
pub use memory::MemorySessionStore;

/// A session's id in the store: 256 random bits, base64url (43 characters). Its `Debug` shows
/// only a prefix: the id is a bearer credential once unsealed.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

impl SessionId {
    /// A new random id (256 bits from the operating system's generator).
    #[must_use]
    pub fn random() -> Self {
        Self(crate::token::random_token())
    }

    /// The id as stored.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Rebuilds an id from [`as_str`](Self::as_str) (for stores that persist ids). `None` when
    /// it is not 43 base64url characters.
    #[must_use]
    pub fn from_stored(s: &str) -> Option<Self> {
        let ok = s.len() == 43
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(s.to_owned()))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({}..)", &self.0[..self.0.len().min(6)])
    }
}

/// What a store keeps of a session.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SessionRecord {
    /// The session, sealed with the app's cookie keys (opaque to the store).
    pub sealed: String,
    /// The index key of its provider session (`issuer|sid`), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The index key of its user (`issuer|sub`).
    pub sub: String,
    /// What a "your sessions" page shows.
    pub meta: SessionMeta,
}

impl SessionRecord {
    /// A record of a sealed session, indexed by `sub` and `sid` (qualified by the issuer).
    #[must_use]
    pub fn new(sealed: String, sub: String, sid: Option<String>, meta: SessionMeta) -> Self {
        Self {
            sealed,
            sid,
            sub,
            meta,
        }
    }
}

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("sealed", &format_args!("[{} bytes]", self.sealed.len()))
            .field("sid", &self.sid)
            .field("sub", &self.sub)
            .field("meta", &self.meta)
            .finish()
    }
}

/// What a "your sessions" page shows of a session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SessionMeta {
    /// When it began (seconds since the epoch).
    pub created: i64,
    /// When it was last seen (seconds since the epoch; updated at most every few minutes).
    pub last_seen: i64,
    /// The browser's `User-Agent` at sign-in, shortened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The client's IP address at sign-in, if the app opted in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

impl SessionMeta {
    /// Meta data of a session that began at `created`.
    #[must_use]
    pub fn new(created: i64) -> Self {
        Self {
            created,
            last_seen: created,
            ..Self::default()
        }
    }
}

/// One of a user's sessions, as a "your sessions" page shows it
/// ([`AuthLayer::sessions_of`](crate::AuthLayer::sessions_of)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SessionInfo {
    /// What names this session to [`AuthLayer::end_session`](crate::AuthLayer::end_session):
    /// a digest of its id, safe to put in a page (the id itself never leaves the server).
    pub handle: String,
    /// Whether it is the session of the request the claims come from.
    pub current: bool,
    /// When it began (seconds since the epoch).
    pub created: i64,
    /// When it was last seen (seconds since the epoch; updated at most every five minutes).
    pub last_seen: i64,
    /// The browser's `User-Agent` at sign-in, shortened.
    pub user_agent: Option<String>,
    /// The client's IP address at sign-in, if recorded.
    pub ip: Option<String>,
}

/// The index key of a user or provider session in a layer's records: qualified by the app (its
/// session cookie's name: apps sharing a store list and end only their own sessions) and the
/// issuer.
pub(crate) fn index_key(app: &str, issuer: &str, value: &str) -> String {
    format!("{app}|{issuer}|{value}")
}

/// A refreshed session the store failed to save, as an instance keeps it for the next request
/// to save (see `session::stored::with_unsaved`).
pub(crate) struct Unsaved {
    /// The refresh token of the record this refresh replaces.
    pub(crate) replaced_rt: Option<String>,
    /// When the tokens of that record were obtained: with a provider that does not rotate
    /// refresh tokens, the refresh token alone cannot tell "not saved since" from "refreshed
    /// and saved since by another instance".
    pub(crate) replaced_ts: i64,
    /// The refreshed session, as JSON.
    pub(crate) session_json: String,
    /// Its refresh token and token time: a refresh of this unsaved session replaces the same
    /// record, and its memo keeps this one's binding to it.
    pub(crate) refreshed_rt: Option<String>,
    pub(crate) refreshed_ts: i64,
    /// The refresh tokens of the unsaved sessions between the record's and this one (a chain
    /// of refreshes during one outage): another instance may have saved one of them (from the
    /// refresh coordinator's hold), and this one is still to be saved over it.
    pub(crate) passed_rts: Vec<String>,
}

/// A store failure (for stores that talk to a server).
#[derive(Debug, Clone, thiserror::Error)]
#[error("session store: {0}")]
pub struct SessionStoreError(pub String);

/// Where server-side sessions live.
///
/// A record expires after the TTL given to [`save`](Self::save) (the session's absolute
/// lifetime left); an expired record is never returned. Deleting is how a session ends: a
/// deleted record never comes back. A store may drop records to bound its memory (a user is
/// signed out), but never returns a record it was told to delete.
///
/// Writing a store is implementing six methods (the others have defaults); a store shared by
/// several instances should also implement [`replace`](Self::replace) in one step,
/// [`list_by_sid`](Self::list_by_sid), [`revocation_store`](Self::revocation_store) and
/// [`available`](Self::available). A store that counts what it is asked, around another:
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use futures_util::future::BoxFuture;
/// use tower_oidc_auth::session_store::{
///     MemorySessionStore, SessionId, SessionMeta, SessionRecord, SessionStore, SessionStoreError,
/// };
///
/// struct Counted {
///     inner: MemorySessionStore,
///     loads: AtomicU64,
/// }
///
/// type Answer<T> = BoxFuture<'static, Result<T, SessionStoreError>>;
///
/// impl SessionStore for Counted {
///     fn load(&self, id: &SessionId) -> Answer<Option<SessionRecord>> {
///         self.loads.fetch_add(1, Ordering::Relaxed);
///         self.inner.load(id)
///     }
///     fn save(&self, id: &SessionId, record: SessionRecord, ttl: Duration) -> Answer<()> {
///         self.inner.save(id, record, ttl)
///     }
///     fn replace(
///         self: Arc<Self>,
///         id: SessionId,
///         current: SessionRecord,
///         record: SessionRecord,
///         ttl: Duration,
///     ) -> Answer<bool> {
///         // The inner store's compare-and-set, in one step.
///         Arc::new(self.inner.clone()).replace(id, current, record, ttl)
///     }
///     fn delete(&self, id: &SessionId) -> Answer<bool> {
///         self.inner.delete(id)
///     }
///     fn delete_by_sid(&self, sid: &str) -> Answer<usize> {
///         self.inner.delete_by_sid(sid)
///     }
///     fn delete_by_sub(&self, sub: &str) -> Answer<usize> {
///         self.inner.delete_by_sub(sub)
///     }
///     fn list_by_sub(&self, sub: &str) -> Answer<Vec<(SessionId, SessionMeta)>> {
///         self.inner.list_by_sub(sub)
///     }
///     fn list_by_sid(&self, sid: &str) -> Answer<Vec<(SessionId, SessionMeta)>> {
///         self.inner.list_by_sid(sid)
///     }
///     fn revocation_store(&self) -> Option<Arc<dyn tower_oidc_auth::RevocationStore>> {
///         self.inner.revocation_store()
///     }
///     fn refresh_coordinator(
///         &self,
///         grace: Duration,
///     ) -> Option<Arc<dyn tower_oidc_auth::refresh::RefreshCoordinator>> {
///         self.inner.refresh_coordinator(grace)
///     }
/// }
///
/// let store = Counted { inner: MemorySessionStore::new(), loads: AtomicU64::new(0) };
/// let builder = tower_oidc_auth::AuthLayer::builder().session_store(store);
/// # let _ = builder;
/// ```
pub trait SessionStore: Send + Sync + 'static {
    /// The record of `id`, if it exists and has not expired.
    fn load(
        &self,
        id: &SessionId,
    ) -> BoxFuture<'static, Result<Option<SessionRecord>, SessionStoreError>>;

    /// Stores `record` under `id` for `ttl`, replacing any record of `id` (its indexes too).
    fn save(
        &self,
        id: &SessionId,
        record: SessionRecord,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), SessionStoreError>>;

    /// Replaces the record of `id` with `record` only if it still is `current` (as loaded);
    /// whether it did. A record deleted or changed since it was loaded is left as it is, so a
    /// write that raced a logout or another instance's refresh never brings the old session
    /// back.
    ///
    /// The default loads, compares and saves, which another writer can slip between; a store
    /// shared by several instances should do it in one step, as the provided stores do.
    fn replace(
        self: std::sync::Arc<Self>,
        id: SessionId,
        current: SessionRecord,
        record: SessionRecord,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<bool, SessionStoreError>> {
        Box::pin(async move {
            if self.load(&id).await?.as_ref() != Some(&current) {
                return Ok(false);
            }
            self.save(&id, record, ttl).await?;
            Ok(true)
        })
    }

    /// Deletes the record of `id`; whether there was one.
    fn delete(&self, id: &SessionId) -> BoxFuture<'static, Result<bool, SessionStoreError>>;

    /// Deletes every record of the provider session `sid` (the index key, `issuer|sid`); how
    /// many.
    fn delete_by_sid(&self, sid: &str) -> BoxFuture<'static, Result<usize, SessionStoreError>>;

    /// Deletes every record of the user `sub` (the index key, `issuer|sub`); how many.
    fn delete_by_sub(&self, sub: &str) -> BoxFuture<'static, Result<usize, SessionStoreError>>;

    /// The user's live sessions (the index key, `issuer|sub`), oldest first.
    fn list_by_sub(
        &self,
        sub: &str,
    ) -> BoxFuture<'static, Result<Vec<(SessionId, SessionMeta)>, SessionStoreError>>;

    /// The records of the provider session `sid` (the index key), oldest first (default:
    /// unsupported, an error; the layer then deletes by `sid` without looking).
    ///
    /// With it, a back-channel logout ends only the sessions that began before it, as the
    /// revocation does, and a replayed logout token never ends a later sign-in.
    fn list_by_sid(
        &self,
        sid: &str,
    ) -> BoxFuture<'static, Result<Vec<(SessionId, SessionMeta)>, SessionStoreError>> {
        let _ = sid;
        Box::pin(async { Err(SessionStoreError("listing by sid is not supported".into())) })
    }

    /// A revocation store that every user of this store shares (default: none).
    ///
    /// Each instance of the layer remembers the sessions it has verified, so that a signed-in
    /// request does not wait for the store; a session ended on one instance (logout,
    /// `end_session`) reaches the others through the revocation store, which must then be
    /// shared. The layer records revocations in this one, and in its own
    /// [`revocation_store`](crate::AuthLayerBuilder::revocation_store) too if it has one (which
    /// need not be shared then); a session revoked in either is refused. When there is neither,
    /// it remembers no stored session and loads it from the store on every request. [`MemorySessionStore`] shares one among its clones; a
    /// [`RedisSessionStore`](crate::redis::RedisSessionStore) made by `connect` shares one
    /// through Redis.
    fn revocation_store(&self) -> Option<std::sync::Arc<dyn crate::revocation::RevocationStore>> {
        None
    }

    /// A refresh coordinator that every user of this store shares (default: none), keeping
    /// results for `grace`.
    ///
    /// In store mode a refreshed session is written over its record. When that write fails,
    /// the new tokens are known only to the instance that refreshed, and the provider has
    /// rotated the refresh token the record still holds: an instance that does not share the
    /// refresh coordinator would replay it and sign the user out. The layer uses this
    /// coordinator when it is given none of its own, so that the others receive the same
    /// tokens (and save them). [`MemorySessionStore`]'s clones share one;
    /// [`RedisSessionStore`](crate::redis::RedisSessionStore) gives a
    /// [`RedisRefreshCoordinator`](crate::redis::RedisRefreshCoordinator) on its own
    /// connection manager.
    fn refresh_coordinator(
        &self,
        grace: Duration,
    ) -> Option<std::sync::Arc<dyn crate::refresh::RefreshCoordinator>> {
        let _ = grace;
        None
    }

    /// Whether the store is answering, as far as it knows without waiting (default: always).
    ///
    /// A store on a server says `false` once the server stops answering (a stopped process, a
    /// hung connection), and `true` again when it answers. While it is `false`, the layer serves
    /// no session from its local cache, which can no longer be sure to hear of deletions, and
    /// answers requests with a session `503 Service Unavailable` with `Retry-After` at once.
    fn available(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests;
