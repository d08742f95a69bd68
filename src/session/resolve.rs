//! Per-request session resolution: read the cookie, answer from the verified-session cache or
//! open it, check revocation and lifetime, refresh when due, verify the access token.

use std::sync::Arc;

use http::HeaderMap;

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
        Ok(open) => open,
    };
    let data = &open.data;
    if open.revocation.revoked(shared.revocations.as_ref()) {
        tracing::debug!("session was revoked; clearing");
        return Resolution::Ready(Outcome::cleared(shared, &cookies, true));
    }
    if let Some(why) = ended(&shared.settings, data, now) {
        tracing::debug!(why, "session over; clearing");
        return Resolution::Ready(Outcome::cleared(shared, &cookies, true));
    }
    if data.rt.is_some() && refresh_due(data.exp, data.ts, shared.settings.refresh_margin, now) {
        return Resolution::Pending;
    }
    let mut validity = None;
    let mut outcome = match check(shared, &cookies, data, now, |at| {
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
    // Signed in, nothing to rewrite: remembered for the next request with this cookie.
    if let Outcome::Continue {
        claims: Some(claims),
        set_cookies,
    } = &outcome
    {
        if !set_cookies.is_empty() || !(data.opaque || validity.is_some()) {
            return Resolution::Ready(outcome);
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
    Resolution::Ready(outcome)
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
    if hit.revocation.revoked(shared.revocations.as_ref()) {
        tracing::debug!("session was revoked; clearing");
        return FromCache::Answer(Outcome::cleared(shared, cookies, true));
    }
    if let Some(why) = ended_at(settings, hit.login(), hit.last_seen(), now) {
        tracing::debug!(why, "session over; clearing");
        return FromCache::Answer(Outcome::cleared(shared, cookies, true));
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
    let open = match read_session(&shared, &cookies) {
        Err(outcome) => return outcome,
        Ok(open) => open,
    };
    let data = &open.data;
    // Before any refresh: a revoked session is never refreshed back to life.
    if open.revocation.revoked(shared.revocations.as_ref()) {
        tracing::debug!("session was revoked; clearing");
        return Outcome::cleared(&shared, &cookies, true);
    }
    let now = shared.clock.now();
    // Nor is one past its lifetime or idle timeout.
    if let Some(why) = ended(&shared.settings, data, now) {
        tracing::debug!(why, "session over; clearing");
        return Outcome::cleared(&shared, &cookies, true);
    }
    let mut verified = None;
    if let (Some(rt), true) = (
        &data.rt,
        refresh_due(data.exp, data.ts, shared.settings.refresh_margin, now),
    ) {
        let key = RefreshKey::of(rt);
        let task = refresh_task(shared.clone(), rt.clone(), key);
        tracing::debug!(?key, "access token due for refresh");
        match shared.coordinator.coordinate(key, task).await {
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
                                .await
                                .unwrap_or_else(|_| {
                                    Err(format!("tokens not verified within {timeout:?}"))
                                });
                        match checked {
                            Ok(mut refreshed) => {
                                match refresh_hook(&shared, &mut refreshed).await {
                                    Ok(Verdict::Keep) => {
                                        return refreshed_outcome(
                                            &shared, &cookies, data, refreshed,
                                        );
                                    }
                                    Ok(Verdict::End) => {
                                        return Outcome::cleared(&shared, &cookies, true);
                                    }
                                    Err(error) => tracing::warn!(
                                        %error,
                                        "refresh hook; keeping the session, the next request \
                                         runs it again"
                                    ),
                                }
                            }
                            Err(error) => tracing::warn!(
                                %error,
                                "refreshed tokens not verified; keeping the session, the next \
                                 request verifies them again"
                            ),
                        }
                    }
                    // Sealed with other keys, or for another refresh key: never used.
                    None => tracing::warn!(
                        "refresh result could not be opened for this refresh token (cookie keys \
                         differ, or a result stored under another key)"
                    ),
                }
            }
            Err(RefreshError::InvalidGrant) => {
                tracing::debug!("refresh token rejected; session over");
                return Outcome::cleared(&shared, &cookies, true);
            }
            Err(error) => {
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
    let mut outcome = match check(&shared, &cookies, data, now, |t| {
        verified.unwrap_or_else(|| shared.verifier.access_after_refetch(t, Purpose::Session))
    }) {
        Resolution::Ready(outcome) => outcome,
        // Keys still missing after the refetch: anonymous, the cookie kept.
        Resolution::Pending => Outcome::anonymous(),
    };
    touch(&shared, &cookies, data, now, &mut outcome);
    outcome
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
    read_session(shared, &cookies).is_ok_and(|open| {
        !open.revocation.revoked(shared.revocations.as_ref())
            && ended(&shared.settings, &open.data, now).is_none()
    })
}

fn read_session(shared: &Shared, cookies: &RequestCookies<'_>) -> Result<OpenSession, Outcome> {
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
) -> Result<OpenSession, Outcome> {
    let codec = &shared.cookies;
    let data = codec
        .open(&codec.session.name, sealed)
        .and_then(|plain| serde_json::from_str::<SessionData>(&plain).ok());
    match data {
        Some(mut data) => {
            // Sessions sealed before JWT-shaped tokens had to verify may say `opaque` for one:
            // such a token is verified like any other.
            data.opaque = data.opaque && !crate::verify::is_jwt_shaped(&data.at);
            Ok(OpenSession {
                revocation: RevocationKeys::new(&shared.meta.issuer, &data.ids),
                data,
            })
        }
        None => {
            tracing::debug!(
                "session cookie sealed with another key (was the key changed, or the server \
                 restarted without AUTH_COOKIE_KEY?), or cut short; clearing it"
            );
            Err(Outcome::cleared(shared, cookies, false))
        }
    }
}

/// Verifies the session's access token (or, for opaque ones, its expiry).
pub(crate) fn check(
    shared: &Shared,
    cookies: &RequestCookies<'_>,
    data: &SessionData,
    now: i64,
    verify: impl FnOnce(&str) -> Attempt,
) -> Resolution {
    // A session's access token is good until its expiry, without the verifier's leeway (which
    // is for tokens presented by others): it is handed to handlers (`AccessToken`) to call APIs
    // with, so it must not have expired. A session that can refresh has done so before this.
    if now >= data.exp {
        tracing::debug!("session access token expired; clearing");
        return Resolution::Ready(Outcome::cleared(shared, cookies, false));
    }
    if data.opaque {
        return Resolution::Ready(Outcome::with_claims(opaque_claims(
            shared,
            data,
            TokenSource::Session(shared.cookies.clone()),
        )));
    }
    match verify(&data.at) {
        Attempt::Valid(verified) => {
            Resolution::Ready(Outcome::with_claims(verified.session_claims(
                || data.identity(),
                || data.extras(TokenSource::Session(shared.cookies.clone())),
            )))
        }
        Attempt::NeedKeys(..) => Resolution::Pending,
        Attempt::Invalid(VerifyError::UnknownKey) => {
            // Perhaps the provider rotated keys and the refetch is rate-limited: keep the cookie.
            tracing::debug!("session access token signed by an unknown key");
            Resolution::Ready(Outcome::anonymous())
        }
        Attempt::Invalid(error) => {
            tracing::debug!(%error, "session access token refused; clearing");
            Resolution::Ready(Outcome::cleared(shared, cookies, false))
        }
    }
}
