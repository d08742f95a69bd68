//! Store mode ([`AuthLayerBuilder::session_store`](crate::AuthLayerBuilder::session_store)):
//! the session cookie holds a sealed [`StoreRef`], and the session itself lives in the store as
//! a [`SessionRecord`] whose `sealed` field is the [`SessionData`] sealed with the cookie keys
//! under a name of its own ([`record_name`], with the record's id), so the store never sees a token and a record never
//! opens as a cookie, nor a cookie as a record.

use std::time::Duration;

use http::HeaderValue;
use serde::{Deserialize, Serialize};

use super::{lifetime_left, OpenSession, SessionData};
use crate::cookies::{RequestCookies, TooLarge};
use crate::revocation::RevocationKeys;
use crate::session_store::{
    SessionId, SessionMeta, SessionRecord, SessionStore, SessionStoreError, Unsaved,
};
use crate::state::Shared;

/// What the session cookie holds in store mode: the record's id.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoreRef {
    /// The [`SessionId`], as stored.
    #[serde(rename = "sr")]
    id: String,
}

/// Where a session was read from, and so where it is written back.
pub(crate) enum Place {
    /// Its cookie (cookie mode, or a session sealed before the app moved to a store).
    Cookie,
    /// The store, under this id, and the record as it was loaded (what a write replaces).
    Store(SessionId, SessionRecord),
}

impl Place {
    /// Whether the session lives in a store.
    pub(crate) fn is_store(&self) -> bool {
        matches!(self, Self::Store(..))
    }

    /// The id of its record, in the store.
    pub(crate) fn id(&self) -> Option<&SessionId> {
        match self {
            Self::Store(id, _) => Some(id),
            Self::Cookie => None,
        }
    }
}

/// The id in a session cookie's opened JSON, if it is a store reference.
pub(crate) fn parse_ref(plain: &str) -> Option<SessionId> {
    let r: StoreRef = serde_json::from_str(plain).ok()?;
    SessionId::from_stored(&r.id)
}

/// The name a session record is sealed under: bound to this layer's session cookie and to the
/// record's id, so a record copied under another id (by anyone who can write the store) does
/// not open.
fn record_name(shared: &Shared, id: &SessionId) -> String {
    format!(
        "session-record {} {}",
        shared.cookies.session.name,
        id.as_str()
    )
}

/// How long a store call may take before the request gets 503: the refresh timeout, at most
/// 5 s (with the store's own watch, a store that stops answering gives 503 within 10 s).
fn store_timeout(shared: &Shared) -> Duration {
    shared.settings.refresh_timeout.min(Duration::from_secs(5))
}

/// A record just loaded, brought up to date with this instance's unsaved refresh of it, if
/// any: the refreshed session is used, and saved over the record (kept for a later request, or
/// the retry of [`save_later`], if the store fails again).
pub(crate) async fn with_unsaved(
    shared: &Shared,
    id: &SessionId,
    open: OpenSession,
    record: SessionRecord,
) -> (OpenSession, SessionRecord) {
    let Some(unsaved) = shared.unsaved.get(id) else {
        return (open, record);
    };
    let Some(refreshed) = still_unsaved(shared, id, &unsaved, &open) else {
        return (open, record);
    };
    if let Ok(true) = save_unsaved(shared, id, &unsaved, &record, &refreshed).await {
        if let Ok(Some(fresh)) = load(shared, id).await {
            return fresh;
        }
    }
    let data = refreshed;
    let open = OpenSession {
        revocation: RevocationKeys::new(&shared.meta.issuer, &data.ids),
        data,
    };
    (open, record)
}

/// The refreshed session of `unsaved` if it is still to be saved over the record `open`: the
/// record still holds the session that refresh replaced, or (a chain of refreshes during one
/// outage) one of the unsaved sessions between, which another instance saved from the refresh
/// coordinator. Otherwise the memo is dropped.
fn still_unsaved(
    shared: &Shared,
    id: &SessionId,
    unsaved: &std::sync::Arc<Unsaved>,
    open: &OpenSession,
) -> Option<SessionData> {
    let replaced = open.data.rt == unsaved.replaced_rt && open.data.ts == unsaved.replaced_ts;
    let passed = open
        .data
        .rt
        .as_ref()
        .is_some_and(|rt| unsaved.passed_rts.contains(rt));
    let refreshed = serde_json::from_str::<SessionData>(&unsaved.session_json)
        .ok()
        .filter(|_| replaced || passed);
    if refreshed.is_none() {
        // Saved since (by another instance), or the session moved on.
        forget_unsaved(shared, id, unsaved);
    }
    refreshed
}

/// Drops `unsaved` from the memos, unless a newer memo (a refresh of it) has replaced it.
fn forget_unsaved(shared: &Shared, id: &SessionId, unsaved: &std::sync::Arc<Unsaved>) {
    shared
        .unsaved
        .remove_if(id, |current| std::sync::Arc::ptr_eq(current, unsaved));
}

/// Writes an unsaved refresh over `record`; the memo is dropped once it is saved.
async fn save_unsaved(
    shared: &Shared,
    id: &SessionId,
    unsaved: &std::sync::Arc<Unsaved>,
    record: &SessionRecord,
    refreshed: &SessionData,
) -> Result<bool, SessionStoreError> {
    let now = shared.clock.now();
    let mut meta = record.meta.clone();
    meta.last_seen = now;
    let saved = replace(shared, id, record, refreshed, meta, now).await?;
    if saved {
        forget_unsaved(shared, id, unsaved);
    }
    Ok(saved)
}

/// How long the refresh coordinator holds the result of a refresh the store could not save
/// (see [`RefreshCoordinator::hold`](crate::refresh::RefreshCoordinator::hold)): longer than
/// [`save_later`] keeps trying.
pub(crate) const UNSAVED_HOLD: Duration = Duration::from_secs(15 * 60);

/// Retries to save a refresh the store could not save, in the background, until it is saved,
/// superseded (another instance saved it, the session moved on or ended) or about ten minutes
/// have passed: the new tokens must reach the store before a request lands on an instance
/// that would replay the rotated refresh token. A request of this session on this instance
/// saves it too ([`with_unsaved`]); the retry stops when the layer is dropped.
pub(crate) fn save_later(
    shared: &std::sync::Arc<Shared>,
    id: SessionId,
    memo: std::sync::Arc<Unsaved>,
) {
    /// Waits between attempts: doubling from 1 s to 30 s, 24 attempts (about ten minutes).
    const FIRST: Duration = Duration::from_secs(1);
    const LONGEST: Duration = Duration::from_secs(30);
    const ATTEMPTS: usize = 24;
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak = std::sync::Arc::downgrade(shared);
    runtime.spawn(async move {
        let mut wait = FIRST;
        for _ in 0..ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(LONGEST);
            let Some(shared) = weak.upgrade() else {
                return;
            };
            // Replaced by a newer memo (a refresh of this one), which has its own retry. A memo
            // gone from the cache (saved, or evicted under pressure) is retried all the same:
            // the record says whether it is still to be saved.
            if shared
                .unsaved
                .get(&id)
                .is_some_and(|current| !std::sync::Arc::ptr_eq(&current, &memo))
            {
                return;
            }
            match load(&shared, &id).await {
                Ok(None) => {
                    forget_unsaved(&shared, &id, &memo);
                    return;
                }
                Ok(Some((open, record))) => {
                    let Some(refreshed) = still_unsaved(&shared, &id, &memo, &open) else {
                        return;
                    };
                    if let Ok(true) = save_unsaved(&shared, &id, &memo, &record, &refreshed).await {
                        tracing::debug!("refreshed session saved in the session store on retry");
                        return;
                    }
                }
                Err(_) => {}
            }
        }
        tracing::warn!("refreshed session still not saved in the session store; giving up");
    });
}

/// Whether the store answers, as far as it knows without waiting (see
/// [`SessionStore::available`]); `true` without a store.
pub(crate) fn available(shared: &Shared) -> bool {
    shared.store.as_ref().is_none_or(|s| s.available())
}

async fn bounded<T>(
    shared: &Shared,
    call: futures_util::future::BoxFuture<'static, Result<T, SessionStoreError>>,
) -> Result<T, SessionStoreError> {
    let limit = store_timeout(shared);
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or_else(|_| Err(SessionStoreError(format!("no answer within {limit:?}"))))
}

fn store(shared: &Shared) -> Result<&dyn SessionStore, SessionStoreError> {
    shared
        .store
        .as_deref()
        .ok_or_else(|| SessionStoreError("no session store configured".into()))
}

/// Loads and opens the session of `id`, with its record as loaded. `Ok(None)`: there is none
/// (ended, expired, or a record this layer did not seal for this id).
pub(crate) async fn load(
    shared: &Shared,
    id: &SessionId,
) -> Result<Option<(OpenSession, SessionRecord)>, SessionStoreError> {
    if !available(shared) {
        return Err(SessionStoreError("the store does not answer".into()));
    }
    let Some(record) = bounded(shared, store(shared)?.load(id)).await? else {
        return Ok(None);
    };
    let data = shared
        .cookies
        .open(&record_name(shared, id), &record.sealed)
        .and_then(|plain| serde_json::from_str::<SessionData>(&plain).ok());
    let Some(mut data) = data else {
        tracing::warn!("session record sealed with another key, or damaged; ignoring it");
        return Ok(None);
    };
    data.opaque = data.opaque && !crate::verify::is_jwt_shaped(&data.at);
    let open = OpenSession {
        revocation: RevocationKeys::new(&shared.meta.issuer, &data.ids),
        data,
    };
    Ok(Some((open, record)))
}

/// Index key of a user or provider session: qualified by the app (its session cookie's name:
/// apps sharing a store list and end only their own sessions) and the issuer.
fn index_key(shared: &Shared, value: &str) -> String {
    crate::session_store::index_key(&shared.cookies.session.name, &shared.meta.issuer, value)
}

/// The index key of the provider session `sid`, as records are indexed.
pub(crate) fn sid_key(shared: &Shared, sid: &str) -> String {
    index_key(shared, sid)
}

/// The index key of the user `sub`, as records are indexed.
pub(crate) fn sub_key(shared: &Shared, sub: &str) -> String {
    index_key(shared, sub)
}

/// Saves `data` under `id` (a new session) for the session's absolute lifetime left at `now`,
/// with `meta`.
pub(crate) async fn save(
    shared: &Shared,
    id: &SessionId,
    data: &SessionData,
    meta: SessionMeta,
    now: i64,
) -> Result<(), SessionStoreError> {
    let (record, ttl) = record_of(shared, id, data, meta, now)?;
    bounded(shared, store(shared)?.save(id, record, ttl)).await
}

/// Replaces the record of `id` with `data` and `meta`, if it is still `current` (see
/// [`SessionStore::replace`]); whether it did.
pub(crate) async fn replace(
    shared: &Shared,
    id: &SessionId,
    current: &SessionRecord,
    data: &SessionData,
    meta: SessionMeta,
    now: i64,
) -> Result<bool, SessionStoreError> {
    let (record, ttl) = record_of(shared, id, data, meta, now)?;
    let store = shared
        .store
        .clone()
        .ok_or_else(|| SessionStoreError("no session store configured".into()))?;
    bounded(
        shared,
        store.replace(id.clone(), current.clone(), record, ttl),
    )
    .await
}

/// The record of `data` under `id`, and its TTL: the session's absolute lifetime left.
fn record_of(
    shared: &Shared,
    id: &SessionId,
    data: &SessionData,
    meta: SessionMeta,
    now: i64,
) -> Result<(SessionRecord, Duration), SessionStoreError> {
    let left = lifetime_left(&shared.settings, &data.ids, now);
    let Ok(ttl) = u64::try_from(left) else {
        return Err(SessionStoreError("session lifetime over".into()));
    };
    if ttl == 0 {
        return Err(SessionStoreError("session lifetime over".into()));
    }
    let plain = serde_json::to_string(data)
        .map_err(|e| SessionStoreError(format!("session not serialisable: {e}")))?;
    let sealed = shared.cookies.seal(&record_name(shared, id), &plain);
    let sub = data
        .ids
        .sub
        .clone()
        .or_else(|| {
            data.identity()
                .and_then(|c| c.get("sub")?.as_str().map(str::to_owned))
        })
        .unwrap_or_default();
    let record = SessionRecord::new(
        sealed,
        sub_key(shared, &sub),
        data.ids.sid.as_deref().map(|s| sid_key(shared, s)),
        meta,
    );
    Ok((record, Duration::from_secs(ttl)))
}

/// Deletes the session of `id` (a logout).
pub(crate) async fn delete(shared: &Shared, id: &SessionId) -> Result<bool, SessionStoreError> {
    bounded(shared, store(shared)?.delete(id)).await
}

/// Writes the session cookie of a stored session: the sealed reference only.
pub(crate) fn write_ref(
    shared: &Shared,
    cookies: Option<&RequestCookies<'_>>,
    id: &SessionId,
    max_age: i64,
    set_cookies: &mut Vec<HeaderValue>,
) -> Result<(), TooLarge> {
    let codec = &shared.cookies;
    let chunks = cookies.map_or(0, |c| c.chunk_count(&codec.session.name));
    codec.write_json(
        &codec.session,
        &StoreRef {
            id: id.as_str().to_owned(),
        },
        max_age,
        chunks,
        set_cookies,
    )
}

/// In a stored session that is signed in: records its use when the idle timeout needs it, or
/// when its record's last-seen time is five minutes old (for "your sessions").
pub(crate) async fn touch(
    shared: &Shared,
    id: &SessionId,
    current: &SessionRecord,
    data: &mut SessionData,
    now: i64,
    outcome: &super::Outcome,
) -> Result<(), SessionStoreError> {
    let mut meta = current.meta.clone();
    let super::Outcome::Continue {
        claims: Some(_), ..
    } = outcome
    else {
        return Ok(());
    };
    let idle = super::touch_due(&shared.settings, super::last_seen(data), now);
    let listed = now.saturating_sub(meta.last_seen) >= LAST_SEEN_EVERY;
    if !idle && !listed {
        return Ok(());
    }
    if idle {
        data.seen = now;
    }
    meta.last_seen = now;
    // Only over the record as loaded: a touch never brings back a session deleted meanwhile
    // (a logout) nor puts back tokens another instance has just refreshed.
    if !replace(shared, id, current, data, meta, now).await? {
        tracing::debug!("session record changed since it was loaded; not touched");
    }
    Ok(())
}

/// The most characters of a `User-Agent` kept in a session's meta data.
pub(crate) const USER_AGENT_MAX: usize = 200;

/// How often a stored session's last-seen time is rewritten for "your sessions".
const LAST_SEEN_EVERY: i64 = 300;

/// A provider logout in store mode (back-channel logout, Scalekit's `user.logout` webhook):
/// deletes the records of the provider session `sid`, or without one, of the user `sub`, that
/// began no later than `at` (the logout token's `iat`, the event's `occurred_at`),
/// as the revocation recorded beside it ends them: a replayed token never ends a later
/// sign-in. A store that cannot list by `sid` deletes them all. The revocation ends them on
/// every instance even if this fails, so a failure is only logged.
pub(crate) async fn end_by_index(shared: &Shared, sid: Option<&str>, sub: Option<&str>, at: i64) {
    let Ok(store) = store(shared) else {
        return;
    };
    let listed = match (sid, sub) {
        (Some(sid), _) => bounded(shared, store.list_by_sid(&sid_key(shared, sid))).await,
        (None, Some(sub)) => bounded(shared, store.list_by_sub(&sub_key(shared, sub))).await,
        (None, None) => return,
    };
    let listed = match listed {
        Ok(listed) => listed,
        Err(error) => {
            tracing::debug!(%error, "stored sessions not listed; deleting by index");
            let call = match (sid, sub) {
                (Some(sid), _) => store.delete_by_sid(&sid_key(shared, sid)),
                (None, Some(sub)) => store.delete_by_sub(&sub_key(shared, sub)),
                (None, None) => return,
            };
            if let Err(error) = bounded(shared, call).await {
                tracing::warn!(%error, "stored sessions not deleted");
            }
            return;
        }
    };
    let mut ended = 0usize;
    for (id, _) in listed {
        let began = match load(shared, &id).await {
            Ok(Some((open, _))) => open.data.ids.login,
            Ok(None) => continue,
            Err(error) => {
                tracing::warn!(%error, "stored session not read for a provider logout");
                continue;
            }
        };
        if began > at {
            continue;
        }
        match delete(shared, &id).await {
            Ok(_) => ended += 1,
            Err(error) => tracing::warn!(%error, "stored session not deleted"),
        }
    }
    tracing::debug!(ended, "stored sessions ended by a provider logout");
}

impl crate::webhook::EndStored for Shared {
    fn end_stored<'a>(&'a self, sid: &'a str, at: i64) -> futures_util::future::BoxFuture<'a, ()> {
        Box::pin(end_by_index(self, Some(sid), None, at))
    }
}

/// A reference to a stored session that may be shown in a page: a digest of its id (the id
/// itself never leaves the server), bound to the layer's cookie name.
fn handle(shared: &Shared, id: &SessionId) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(shared.cookies.session.name.as_bytes())
        .chain_update([0])
        .chain_update(id.as_str().as_bytes())
        .finalize();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
}

fn claims_sub(shared: &Shared, claims: &crate::Claims) -> Result<String, SessionStoreError> {
    if claims.layer() != shared.verifier.layer() {
        return Err(SessionStoreError(
            "these claims were verified by another layer".into(),
        ));
    }
    // Sessions are the provider's users'; a trusted issuer's `sub` is another namespace.
    if claims.from_trusted_issuer() {
        return Err(SessionStoreError(
            "these claims were verified by a trusted issuer, not the layer's provider".into(),
        ));
    }
    Ok(sub_key(shared, &claims.sub))
}

/// The sessions of the user of `claims`, oldest first.
pub(crate) async fn sessions_of(
    shared: &Shared,
    claims: &crate::Claims,
) -> Result<Vec<crate::session_store::SessionInfo>, SessionStoreError> {
    let sub = claims_sub(shared, claims)?;
    let listed = bounded(shared, store(shared)?.list_by_sub(&sub)).await?;
    let current = claims.stored_session();
    let now = shared.clock.now();
    let mut live = Vec::with_capacity(listed.len());
    for (id, meta) in listed {
        // Only sessions that still count: not revoked (a back-channel logout whose delete
        // failed), not past their lifetime or idle timeout. Those are deleted as they are met.
        let Some((open, _)) = load(shared, &id).await? else {
            continue;
        };
        let over = open.revocation.revoked(shared.revocations.as_ref())
            || super::ended(&shared.settings, &open.data, now).is_some();
        if over {
            ended_id(shared, &id, &open.data).await;
            continue;
        }
        live.push(crate::session_store::SessionInfo {
            handle: handle(shared, &id),
            current: current == Some(&id),
            created: meta.created,
            last_seen: meta.last_seen,
            user_agent: meta.user_agent,
            ip: meta.ip,
        });
    }
    Ok(live)
}

/// Revokes a session's local id (so every instance sharing the revocation store drops its
/// remembered copy at once), for as long as the session could have lived.
pub(crate) async fn revoke_local(
    shared: &Shared,
    ids: &crate::revocation::SessionIds,
) -> Result<(), SessionStoreError> {
    let Some(lid) = &ids.lid else {
        return Ok(());
    };
    let now = shared.clock.now();
    let begun = if ids.login > 0 { ids.login } else { now };
    let ttl = shared.settings.revocation_lifetime(begun, now);
    let key = crate::revocation::RevocationKey::local(lid);
    let revoke = shared.revocations.revoke(key, now, ttl);
    match tokio::time::timeout(store_timeout(shared), revoke).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(SessionStoreError(format!("revocation store: {e}"))),
        Err(_) => Err(SessionStoreError("revocation store: no answer".into())),
    }
}

/// Ends the session of `id`: its local id is revoked and its record deleted. Whether it
/// existed.
async fn end(shared: &Shared, id: &SessionId) -> Result<bool, SessionStoreError> {
    if let Some((open, _)) = load(shared, id).await? {
        revoke_local(shared, &open.data.ids).await?;
    }
    delete(shared, id).await
}

/// A session found over (revoked, past its lifetime, idle, refused by the provider or the
/// refresh hook) on the async path: in store mode, its local id is revoked and its record
/// deleted, so that no copy of its cookie and no other instance brings it back, and it is no
/// longer listed. Failures are logged: the request is answered as signed out all the same.
pub(crate) async fn ended(shared: &Shared, place: &Place, data: &SessionData) {
    if let Place::Store(id, _) = place {
        ended_id(shared, id, data).await;
    }
}

/// [`ended`], for the stored session `id`.
async fn ended_id(shared: &Shared, id: &SessionId, data: &SessionData) {
    if let Err(error) = revoke_local(shared, &data.ids).await {
        tracing::warn!(%error, "ended session not revoked");
    }
    if let Err(error) = delete(shared, id).await {
        tracing::warn!(%error, "ended session's record not deleted");
    }
}

/// Ends the session of the user of `claims` that `handle` names (from
/// [`sessions_of`]); whether there was one. Only the user's own sessions can be named.
pub(crate) async fn end_session(
    shared: &Shared,
    claims: &crate::Claims,
    wanted: &str,
) -> Result<bool, SessionStoreError> {
    let sub = claims_sub(shared, claims)?;
    let listed = bounded(shared, store(shared)?.list_by_sub(&sub)).await?;
    let Some((id, _)) = listed
        .into_iter()
        .find(|(id, _)| handle(shared, id) == wanted)
    else {
        return Ok(false);
    };
    end(shared, &id).await
}

/// Ends every session of the user of `claims` but the one the claims come from; how many.
pub(crate) async fn end_other_sessions(
    shared: &Shared,
    claims: &crate::Claims,
) -> Result<usize, SessionStoreError> {
    let sub = claims_sub(shared, claims)?;
    let current = claims.stored_session();
    let listed = bounded(shared, store(shared)?.list_by_sub(&sub)).await?;
    let mut ended = 0;
    for (id, _) in listed {
        if current != Some(&id) && end(shared, &id).await? {
            ended += 1;
        }
    }
    Ok(ended)
}
