//! Per-request session resolution: read the cookie, answer from the verified-session cache or
//! open it, check revocation and lifetime, refresh when due, verify the access token.

use std::sync::Arc;

use http::HeaderMap;
use tracing::Instrument;

use super::stored::{self, Place};
use super::{
    ended, ended_at, opaque_claims, refresh_due, touch, touch_due, OpenSession, Outcome,
    Resolution, SessionData,
};
use crate::claims::TokenSource;
use crate::cookies::RequestCookies;
use crate::refresh::grant::{
    check_grant, refresh_aad, refresh_hook, refresh_task, refreshed_outcome, Grant, Verdict,
};
use crate::refresh::{RefreshError, RefreshKey};
use crate::refusal::Refusal;
use crate::responses::{unavailable, Client};
use crate::revocation::RevocationKeys;
use crate::session_cache::CachedSession;
use crate::state::Shared;
use crate::verify::{Attempt, Purpose, VerifyError};

/// a JWKS refetch for an unknown key).
pub(crate) fn resolve_now(shared: &Shared, headers: &HeaderMap) -> Resolution {
    let codec = &shared.cookies;
    let cookies = codec.read(headers);
    let Some(bytes) = cookies.sealed_bytes(&codec.session.name) else {
        return Resolution::Ready(Outcome::anonymous());
    };
    // A store that has stopped answering may have missed deletions: nothing from the cache.
    if !stored::available(shared) {
        return Resolution::Pending;
    }
    let now = shared.clock.now();
    let name = &codec.session.name;
    // The entry is found by the fingerprint of the bytes (no pass to check they are text). The
    // full path reads the first *text* values of the name: when those differ (a cookie of the
    // same name that is not UTF-8, tossed in front), the entry is looked up, and made, under
    // the fingerprint of exactly the value that opens, never under the bytes found first.
    // A cookie repeated recently is found by its bytes, without its fingerprint.
    let (mut digest, mut hit) = match shared.sessions.get_recent(&bytes) {
        Some((digest, entry)) => (digest, Some(entry)),
        None => {
            let digest = shared.sessions.fingerprint(&bytes);
            let hit = shared.sessions.get(&digest);
            if let Some(entry) = &hit {
                shared.sessions.offer_recent(&bytes, digest, entry);
            }
            (digest, hit)
        }
    };
    let mut text = None;
    if hit.is_none() {
        let Some(sealed) = cookies.sealed(name) else {
            return Resolution::Ready(Outcome::anonymous());
        };
        if sealed.as_bytes() != &*bytes {
            digest = shared.sessions.fingerprint(sealed.as_bytes());
            hit = shared.sessions.get(&digest);
        }
        text = Some(sealed);
    }
    if let Some(hit) = hit {
        match from_cache(shared, &cookies, &hit, now) {
            FromCache::Answer(outcome) => return Resolution::Ready(outcome),
            FromCache::Async => return Resolution::Pending,
            FromCache::Open { stale } => {
                if stale {
                    // The entry was found under the bytes, or under the text value.
                    let keyed = text.as_deref().map_or(&*bytes, str::as_bytes);
                    shared.sessions.remove(keyed, &digest);
                }
            }
        }
    }
    let sealed = match text {
        Some(sealed) => sealed,
        None => {
            // A hit on the bytes: only a value that opened makes an entry, so these bytes are
            // that text; re-keyed all the same if they were not.
            let Some(sealed) = cookies.sealed(name) else {
                return Resolution::Ready(Outcome::anonymous());
            };
            if sealed.as_bytes() != &*bytes {
                digest = shared.sessions.fingerprint(sealed.as_bytes());
            }
            sealed
        }
    };
    let open = match open_session(shared, &cookies, &sealed) {
        Err(outcome) => return Resolution::Ready(outcome),
        Ok(Opened::Here(open)) => open,
        // In the store: loaded on the async path (which remembers it for the next request).
        Ok(Opened::Stored(_)) => return Resolution::Pending,
    };
    let data = &open.data;
    if open.revocation.revoked(shared.revocations.as_ref()) {
        tracing::debug!("session was revoked; clearing");
        let why = revoked(shared, &open.revocation);
        return Resolution::Ready(Outcome::cleared(shared, &cookies, true, why));
    }
    if let Some(why) = ended(&shared.settings, data, now) {
        tracing::debug!(%why, "session over; clearing");
        return Resolution::Ready(Outcome::cleared(shared, &cookies, true, why));
    }
    if data.rt.is_some() && refresh_due(data.exp, data.ts, shared.settings.refresh_margin, now) {
        return Resolution::Pending;
    }
    let mut validity = None;
    let mut outcome = match check(shared, &cookies, data, None, now, |at| {
        let attempt = shared.verifier.access_now(at, Purpose::Session);
        if let Attempt::Valid(v) = &attempt {
            validity = Some(v.validity());
        }
        attempt
    }) {
        Resolution::Ready(outcome) => outcome,
        Resolution::Pending => return Resolution::Pending,
    };
    touch(shared, &cookies, data, now, &mut outcome);
    remember(shared, digest, open, validity, &outcome);
    Resolution::Ready(outcome)
}

/// Forgets the verified-session entry of this request's session cookie.
fn forget(shared: &Shared, cookies: &RequestCookies<'_>) {
    if let Some(sealed) = cookies.sealed(&shared.cookies.session.name) {
        let digest = shared.sessions.fingerprint(sealed.as_bytes());
        shared.sessions.remove(sealed.as_bytes(), &digest);
    }
}

/// Signed in, nothing to rewrite: the verified session is remembered for the next request with
/// this cookie (under `digest`, its fingerprint).
fn remember(
    shared: &Shared,
    digest: crate::session_cache::CookieDigest,
    open: OpenSession,
    validity: Option<crate::verify::Validity>,
    outcome: &Outcome,
) {
    let Outcome::Continue {
        claims: Some(claims),
        set_cookies,
        ..
    } = outcome
    else {
        return;
    };
    let data = &open.data;
    if !set_cookies.is_empty() || !(data.opaque || validity.is_some()) {
        return;
    }
    let entry = CachedSession {
        claims: claims.clone(),
        validity,
        exp: data.exp,
        ts: data.ts,
        seen: data.seen,
        refreshable: data.rt.is_some(),
        revocation: open.revocation,
    };
    shared
        .sessions
        .insert(digest, data.ids.lid.as_deref(), Arc::new(entry));
}

/// What a verified-session cache hit allows.
enum FromCache {
    /// The answer, without opening the cookie.
    Answer(Outcome),
    /// A refresh is due: the async path.
    Async,
    /// Open the cookie and take the full way (an idle-timeout rewrite is due, or, `stale`, the
    /// access token is no longer good as remembered: expired, or its key withdrawn).
    Open { stale: bool },
}

/// Every check of the full path that depends on time or on state outside the cookie, from the
/// cache entry (see `session_cache`).
fn from_cache(
    shared: &Shared,
    cookies: &RequestCookies<'_>,
    hit: &CachedSession,
    now: i64,
) -> FromCache {
    let settings = &shared.settings;
    // A stored session is decided over on the async path, from its record: another instance
    // may have seen it used since (its last-seen time), and ending it deletes the record.
    let stored = hit.claims.stored_session().is_some();
    if hit.revocation.revoked(shared.revocations.as_ref()) {
        if stored {
            return FromCache::Async;
        }
        tracing::debug!("session was revoked; clearing");
        let why = revoked(shared, &hit.revocation);
        return FromCache::Answer(Outcome::cleared(shared, cookies, true, why));
    }
    if let Some(why) = ended_at(settings, hit.login(), hit.last_seen(), now) {
        if stored {
            return FromCache::Async;
        }
        tracing::debug!(%why, "session over; clearing");
        return FromCache::Answer(Outcome::cleared(shared, cookies, true, why));
    }
    if hit.refreshable && refresh_due(hit.exp, hit.ts, settings.refresh_margin, now) {
        return FromCache::Async;
    }
    if touch_due(settings, hit.last_seen(), now) {
        return FromCache::Open { stale: false };
    }
    // Strictly before the token's expiry, as `check` decides.
    let good = now < hit.exp
        && match &hit.validity {
            Some(validity) => shared.verifier.still_good(validity, now),
            None => true,
        };
    if good {
        FromCache::Answer(Outcome::with_claims(Some(hit.claims.clone())))
    } else {
        FromCache::Open { stale: true }
    }
}

/// Reads the session, refreshing or refetching keys as needed.
pub(crate) async fn resolve(
    shared: Arc<Shared>,
    headers: HeaderMap,
    client: Client,
    here: String,
) -> Outcome {
    let codec = &shared.cookies;
    let cookies = codec.read(&headers);
    let (open, place) = match read_session(&shared, &cookies) {
        Err(outcome) => return outcome,
        Ok(Opened::Here(open)) => (open, Place::Cookie),
        Ok(Opened::Stored(id)) => match stored::load(&shared, &id).await {
            Ok(Some((open, record))) => {
                let (open, record) = stored::with_unsaved(&shared, &id, open, record).await;
                (open, Place::Store(id, record))
            }
            Ok(None) => {
                tracing::debug!("session record gone (signed out, or expired); clearing");
                return Outcome::cleared(&shared, &cookies, true, Refusal::SessionGone);
            }
            Err(error) => return store_unavailable(&shared, &error, client, &here),
        },
    };
    let data = &open.data;
    let now = shared.clock.now();
    // Before any refresh: a revoked session is never refreshed back to life, nor is one past
    // its lifetime or idle timeout.
    let over = if open.revocation.revoked(shared.revocations.as_ref()) {
        Some(revoked(&shared, &open.revocation))
    } else {
        ended(&shared.settings, data, now)
    };
    if let Some(why) = over {
        tracing::debug!(%why, "session over; clearing");
        stored::ended(&shared, &place, data).await;
        return Outcome::cleared(&shared, &cookies, true, why);
    }
    let mut verified = None;
    if let (Some(rt), true) = (
        &data.rt,
        refresh_due(data.exp, data.ts, shared.settings.refresh_margin, now),
    ) {
        let key = RefreshKey::of(rt);
        // Whether this request ran the grant, or received another's (`coordinated`).
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let span = tracing::info_span!(
            "oidc.refresh",
            coordinated = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let task = {
            let (ran, task) = (ran.clone(), refresh_task(shared.clone(), rt.clone(), key));
            // The grant's provider call is in this request's span, though the coordinator
            // runs it in a task of its own.
            Box::pin(
                async move {
                    ran.store(true, std::sync::atomic::Ordering::Relaxed);
                    task.await
                }
                .instrument(span.clone()),
            )
        };
        tracing::debug!(parent: &span, ?key, "access token due for refresh");
        let result = shared
            .coordinator
            .coordinate(key, task)
            .instrument(span.clone())
            .await;
        let refreshed_as = |outcome: &'static str| {
            let coordinated = !ran.load(std::sync::atomic::Ordering::Relaxed);
            span.record("coordinated", coordinated);
            span.record("outcome", outcome);
            crate::telemetry::refresh(outcome, coordinated);
            if outcome == "success" {
                shared.record_gauges();
            }
        };
        match result {
            Ok(sealed) => {
                let grant = codec
                    .open(&refresh_aad(key), &sealed.0)
                    .and_then(|plain| serde_json::from_str::<Grant>(&plain).ok());
                match grant {
                    // Verified here, by every request that gets the grant: a verification that
                    // fails for now (a key not fetched yet, the JWKS slow or down) is retried by
                    // the next request from the grant the coordinator keeps, never by another
                    // grant (the provider has rotated the refresh token already).
                    Some(grant) => {
                        let timeout = shared.settings.refresh_timeout;
                        let checked =
                            tokio::time::timeout(timeout, check_grant(&shared, grant, rt, data))
                                .instrument(span.clone())
                                .await
                                .unwrap_or_else(|_| {
                                    Err(format!("tokens not verified within {timeout:?}"))
                                });
                        match checked {
                            Ok(mut refreshed) => {
                                match refresh_hook(&shared, &mut refreshed).await {
                                    Ok(Verdict::Keep) => {
                                        refreshed_as("success");
                                        let outcome = refreshed_outcome(
                                            &shared,
                                            &cookies,
                                            data,
                                            refreshed,
                                            &place,
                                            (key, sealed),
                                        )
                                        .await;
                                        if place.is_store() {
                                            // The cookie stays the same: its entry is stale.
                                            forget(&shared, &cookies);
                                        }
                                        return outcome;
                                    }
                                    Ok(Verdict::End) => {
                                        refreshed_as("ended_by_hook");
                                        stored::ended(&shared, &place, data).await;
                                        return Outcome::cleared(
                                            &shared,
                                            &cookies,
                                            true,
                                            Refusal::EndedByHook,
                                        );
                                    }
                                    Err(error) => {
                                        refreshed_as("hook_error");
                                        tracing::warn!(
                                            %error,
                                            "refresh hook; keeping the session, the next \
                                             request runs it again"
                                        );
                                    }
                                }
                            }
                            Err(error) => {
                                refreshed_as("not_verified");
                                tracing::warn!(
                                    %error,
                                    "refreshed tokens not verified; keeping the session, the \
                                     next request verifies them again"
                                );
                            }
                        }
                    }
                    // Sealed with other keys, or for another refresh key: never used.
                    None => {
                        refreshed_as("invalid");
                        tracing::warn!(
                            "refresh result could not be opened for this refresh token (cookie \
                             keys differ, or a result stored under another key)"
                        );
                    }
                }
            }
            Err(RefreshError::InvalidGrant) => {
                refreshed_as("invalid_grant");
                tracing::debug!("refresh token rejected; session over");
                stored::ended(&shared, &place, data).await;
                return Outcome::cleared(&shared, &cookies, true, Refusal::RefreshRefused);
            }
            Err(error) => {
                refreshed_as(match error {
                    RefreshError::Unavailable(_) => "unavailable",
                    _ => "invalid",
                });
                tracing::warn!(%error, "refresh failed; keeping the session for a retry");
            }
        }
        // The refresh failed for now. A token still valid is used; otherwise the client is told
        // to come back later, and its cookies are kept.
        let still_valid = match verify_async(&shared, &data.at, data.opaque, data.exp, now).await {
            Ok(()) => true,
            Err(_) => false,
        };
        if !still_valid {
            return Outcome::respond(unavailable(
                &*shared.responses,
                &shared.settings.default_return,
                client,
                &here,
            ));
        }
    } else if !data.opaque && !data.at.is_empty() {
        // Verified with a JWKS refetch (rate-limited) where one may help; used below.
        verified = Some(Attempt::from(
            shared.verifier.access(&data.at, Purpose::Session).await,
        ));
    }
    let mut validity = None;
    let mut outcome = match check(&shared, &cookies, data, place.id(), now, |t| {
        let attempt =
            verified.unwrap_or_else(|| shared.verifier.access_after_refetch(t, Purpose::Session));
        if let Attempt::Valid(v) = &attempt {
            validity = Some(v.validity());
        }
        attempt
    }) {
        Resolution::Ready(outcome) => outcome,
        // Keys still missing after the refetch: anonymous, the cookie kept.
        Resolution::Pending => Outcome::refused(Refusal::UnknownKid),
    };
    match place {
        Place::Cookie => touch(&shared, &cookies, data, now, &mut outcome),
        Place::Store(id, record) => {
            let mut open = open;
            if let Err(error) =
                stored::touch(&shared, &id, &record, &mut open.data, now, &outcome).await
            {
                return store_unavailable(&shared, &error, client, &here);
            }
            // Remembered, so that the next request with this cookie does not load it again
            // (only when logouts on other instances reach this one: `remember_stored`).
            if let Some(sealed) = cookies
                .sealed(&codec.session.name)
                .filter(|_| shared.remember_stored)
            {
                forget(&shared, &cookies);
                let digest = shared.sessions.fingerprint(sealed.as_bytes());
                remember(&shared, digest, open, validity, &outcome);
            }
        }
    }
    outcome
}

/// A store that cannot answer: never "signed out", come back later (503 with `Retry-After`).
fn store_unavailable(
    shared: &Shared,
    error: &crate::session_store::SessionStoreError,
    client: Client,
    here: &str,
) -> Outcome {
    tracing::warn!(%error, "session store unavailable; answering 503");
    Outcome::respond(unavailable(
        &*shared.responses,
        &shared.settings.default_return,
        client,
        here,
    ))
}

async fn verify_async(
    shared: &Shared,
    at: &str,
    opaque: bool,
    exp: i64,
    now: i64,
) -> Result<(), VerifyError> {
    // Strictly before the token's expiry, without leeway (see `check`).
    if now >= exp {
        return Err(VerifyError::Expired);
    }
    if opaque {
        return Ok(());
    }
    shared
        .verifier
        .access(at, Purpose::Session)
        .await
        .map(|_| ())
}

/// Whether the request carries a session of this layer that opens and was not revoked (its
/// tokens are not checked: a session that merely expired still belongs to someone).
pub(crate) fn has_session(shared: &Shared, headers: &HeaderMap) -> bool {
    let cookies = shared.cookies.read(headers);
    let now = shared.clock.now();
    match read_session(shared, &cookies) {
        Ok(Opened::Here(open)) => {
            !open.revocation.revoked(shared.revocations.as_ref())
                && ended(&shared.settings, &open.data, now).is_none()
        }
        // Cannot be looked up without waiting: taken to be there (the callers ask before
        // replacing a session, so this errs on the side of asking).
        Ok(Opened::Stored(_)) => true,
        Err(_) => false,
    }
}

/// A session cookie, opened: the session itself, or (store mode) the id of its record.
// Returned and matched at once, never kept: boxing the session would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Opened {
    Here(OpenSession),
    Stored(crate::session_store::SessionId),
}

fn read_session(shared: &Shared, cookies: &RequestCookies<'_>) -> Result<Opened, Outcome> {
    let Some(sealed) = cookies.sealed(&shared.cookies.session.name) else {
        return Err(Outcome::anonymous());
    };
    open_session(shared, cookies, &sealed)
}

/// Opens the session cookie's sealed value (base64, AES-GCM, JSON).
pub(crate) fn open_session(
    shared: &Shared,
    cookies: &RequestCookies<'_>,
    sealed: &str,
) -> Result<Opened, Outcome> {
    let codec = &shared.cookies;
    let plain = codec.open(&codec.session.name, sealed);
    let data = plain
        .as_deref()
        .and_then(|plain| serde_json::from_str::<SessionData>(plain).ok());
    // A reference into the store, only when the layer has one (a cookie made in store mode
    // means nothing without it).
    let stored = || {
        shared.store.as_ref()?;
        stored::parse_ref(plain.as_deref()?)
    };
    if let Some(mut data) = data {
        // Sessions sealed before JWT-shaped tokens had to verify may say `opaque` for one:
        // such a token is verified like any other.
        data.opaque = data.opaque && !crate::verify::is_jwt_shaped(&data.at);
        return Ok(Opened::Here(OpenSession {
            revocation: RevocationKeys::new(&shared.meta.issuer, &data.ids),
            data,
        }));
    }
    match stored() {
        Some(id) => Ok(Opened::Stored(id)),
        None => {
            tracing::debug!(
                "session cookie sealed with another key (was the key changed, or the server \
                 restarted without AUTH_COOKIE_KEY?), or cut short; clearing it"
            );
            Err(Outcome::cleared(
                shared,
                cookies,
                false,
                Refusal::SessionUnreadable,
            ))
        }
    }
}

/// Verifies the session's access token (or, for opaque ones, its expiry).
pub(crate) fn check(
    shared: &Shared,
    cookies: &RequestCookies<'_>,
    data: &SessionData,
    stored: Option<&crate::session_store::SessionId>,
    now: i64,
    verify: impl FnOnce(&str) -> Attempt,
) -> Resolution {
    // Where a handler finds the token: in a cookie-mode session, the cookie (read again when a
    // handler asks); in a stored one, the claims, as the cookie holds only an id.
    let extras = |exp: i64| {
        let source = if stored.is_some() {
            TokenSource::Inline(data.access_token(exp))
        } else {
            TokenSource::Session(shared.cookies.clone())
        };
        crate::claims::Extras {
            stored: stored.cloned(),
            ..data.extras(source)
        }
    };
    // A session's access token is good until its expiry, without the verifier's leeway (which
    // is for tokens presented by others): it is handed to handlers (`AccessToken`) to call APIs
    // with, so it must not have expired. A session that can refresh has done so before this.
    if now >= data.exp {
        tracing::debug!("session access token expired; clearing");
        let why = Refusal::Expired { at: data.exp };
        return Resolution::Ready(Outcome::cleared(shared, cookies, false, why));
    }
    if data.opaque {
        return Resolution::Ready(Outcome::with_claims(opaque_claims(
            shared,
            data,
            extras(data.exp),
        )));
    }
    match verify(&data.at) {
        Attempt::Valid(verified) => Resolution::Ready(Outcome::with_claims(
            verified.session_claims(|| data.identity(), || extras(verified.exp)),
        )),
        Attempt::NeedKeys(..) => Resolution::Pending,
        Attempt::Invalid(VerifyError::UnknownKey) => {
            // Perhaps the provider rotated keys and the refetch is rate-limited: keep the cookie.
            tracing::debug!("session access token signed by an unknown key");
            Resolution::Ready(Outcome::refused(Refusal::UnknownKid))
        }
        Attempt::Invalid(error) => {
            tracing::debug!(%error, "session access token refused; clearing");
            let why = error.refusal();
            Resolution::Ready(Outcome::cleared(shared, cookies, false, why))
        }
    }
}

/// Why a revoked session is refused: revoked, and when (now, if the store no longer says).
fn revoked(shared: &Shared, keys: &RevocationKeys) -> Refusal {
    let at = keys
        .revoked_at(shared.revocations.as_ref())
        .unwrap_or_else(|| shared.clock.now());
    Refusal::Revoked { at }
}
