//! Revoked sessions: remembered so that sessions ended elsewhere (back-channel logout, a logout
//! in another tab or instance, a webhook) are refused on their next request, since a server
//! cannot delete a browser's cookies.
//!
//! The layer records revocations in a [`RevocationStore`]: [`MemoryRevocationStore`] by
//! default, `RedisRevocationStore` (feature `redis`) across instances. An app may revoke too,
//! for example when an administrator disables a user:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::Duration;
//! use axum::{body::Body, routing::get, Router};
//! use http::{header, Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_oidc_auth::clock::{Clock, SystemClock};
//! use tower_oidc_auth::revocation::RevocationKey;
//! use tower_oidc_auth::testing::{TestProvider, TestUser};
//!
//! let provider = TestProvider::start().await;
//! let auth = provider
//!     .layer_builder("http://127.0.0.1:3000/auth/callback")
//!     .build()
//!     .await
//!     .unwrap();
//! let app = Router::new()
//!     .route("/me", get(|| async { "me" }))
//!     .route_layer(auth.require())
//!     .layer(auth.clone());
//! let cookie = provider.session_cookie(&auth, &TestUser::new("usr_1"));
//! let me = || Request::get("/me").header(header::COOKIE, &cookie).body(Body::empty()).unwrap();
//! assert_eq!(app.clone().oneshot(me()).await.unwrap().status(), StatusCode::OK);
//!
//! // Every session of usr_1 that began until now ends, on its next request.
//! let key = RevocationKey::subject(provider.issuer(), "usr_1");
//! let now = SystemClock.now();
//! auth.revocation_store().revoke(key, now, Duration::from_secs(86_400)).await.unwrap();
//! assert_eq!(app.oneshot(me()).await.unwrap().status(), StatusCode::UNAUTHORIZED);
//! # }
//! ```

use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

mod memory;
pub use memory::MemoryRevocationStore;

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

    /// How many revocation records are held, where the store can tell without I/O (the
    /// `oidc_revocations` gauge); `None` (the default) otherwise.
    fn len_hint(&self) -> Option<usize> {
        None
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

    /// When the session was revoked, if [`revoked`](Self::revoked) says it was: the latest of
    /// the revocations that end it (for explaining a refusal; not on the hot path).
    pub(crate) fn revoked_at(&self, store: &dyn RevocationStore) -> Option<i64> {
        let began_by = |at: &i64| self.login <= *at;
        let local = self.local.as_ref().and_then(|k| store.revoked_at(k));
        let floor = store.revoked_before().filter(began_by);
        let session = self
            .session
            .as_ref()
            .and_then(|k| store.revoked_at(k))
            .filter(began_by);
        let subject = self
            .subject
            .as_ref()
            .and_then(|k| store.revoked_at(k))
            .filter(began_by);
        [local, floor, session, subject].into_iter().flatten().max()
    }
}

/// Whether the session was ended elsewhere: its local id revoked, or its provider session or
/// user revoked after it began.
pub(crate) fn is_revoked(store: &dyn RevocationStore, issuer: &str, ids: &SessionIds) -> bool {
    !store.is_empty() && RevocationKeys::new(issuer, ids).revoked(store)
}

/// Two revocation stores used as one: a revocation is recorded in both (and fails if either
/// fails), and a session is revoked if either says so. The layer uses it in store mode when it
/// is given a revocation store of its own and the session store shares one too: the configured
/// one may not be shared between instances, the store's is by its contract.
pub(crate) struct Both(
    pub(crate) std::sync::Arc<dyn RevocationStore>,
    pub(crate) std::sync::Arc<dyn RevocationStore>,
);

impl RevocationStore for Both {
    fn revoke(
        &self,
        key: RevocationKey,
        at: i64,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), RevocationError>> {
        let first = self.0.revoke(key.clone(), at, ttl);
        let second = self.1.revoke(key, at, ttl);
        Box::pin(async move {
            let (first, second) = futures_util::future::join(first, second).await;
            first.and(second)
        })
    }

    fn revoked_at(&self, key: &RevocationKey) -> Option<i64> {
        self.0.revoked_at(key).max(self.1.revoked_at(key))
    }

    fn revoked_before(&self) -> Option<i64> {
        self.0.revoked_before().max(self.1.revoked_before())
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty() && self.1.is_empty()
    }

    fn len_hint(&self) -> Option<usize> {
        // The larger: the two hold mostly the same records.
        self.0.len_hint().max(self.1.len_hint())
    }
}

#[cfg(test)]
mod tests;
