//! The refresh grant: one token-endpoint call per session (through the coordinator), its
//! result sealed as it came, verified by each request that uses it.

use crate::refusal::Refusal;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::claims::TokenSource;
use crate::cookies::RequestCookies;
use crate::error::Chain;
use crate::refresh::{RefreshError, RefreshKey, RefreshTask, SealedTokens};
use crate::revocation::is_revoked;
use crate::session::opaque_claims;
use crate::session::stored::Place;
use crate::session::{
    classify_access, identity_claims, lifetime_left, raw_json, Outcome, SessionData, Tokens,
};
use crate::state::Shared;
use crate::verify::Purpose;

/// Associated data for a sealed refresh result: bound to its refresh key (not a cookie name, so
/// never confused with one), so a result stored under another key never opens.
pub(crate) fn refresh_aad(key: RefreshKey) -> String {
    format!("tower-oidc-auth refresh {}", key.to_hex())
}

/// What the token endpoint answered to a refresh grant, as it came: kept sealed by the
/// coordinator, and verified by each request that uses it. A verification that fails for now
/// is retried from this, never with another grant.
#[derive(Serialize, Deserialize)]
pub(crate) struct Grant {
    at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_in: Option<i64>,
}

/// A verified refresh: the new session, and the new logout hint if any.
pub(crate) struct Refreshed {
    session: SessionData,
    id_token: Option<String>,
    /// The verified access token (`None`: opaque).
    verified: Option<Arc<crate::verify::Verified>>,
}

pub(crate) async fn refreshed_outcome(
    shared: &Arc<Shared>,
    cookies: &RequestCookies<'_>,
    old: &SessionData,
    refreshed: Refreshed,
    place: &Place,
    grant: (RefreshKey, SealedTokens),
) -> Outcome {
    let codec = &shared.cookies;
    let mut data = refreshed.session;
    // Revoked while the refresh was in flight (a logout racing this request): do not resurrect.
    if is_revoked(shared.revocations.as_ref(), &shared.meta.issuer, &data.ids) {
        tracing::debug!("session revoked during refresh; clearing");
        let keys = crate::revocation::RevocationKeys::new(&shared.meta.issuer, &data.ids);
        let at = keys
            .revoked_at(shared.revocations.as_ref())
            .unwrap_or_else(|| shared.clock.now());
        return Outcome::cleared(shared, cookies, true, Refusal::Revoked { at });
    }
    // The request's cookie has the old token (or, in store mode, none): the claims carry the
    // new one.
    let extras = |exp: i64| crate::claims::Extras {
        stored: place.id().cloned(),
        ..data.extras(TokenSource::Inline(data.access_token(exp)))
    };
    let claims = match &refreshed.verified {
        Some(v) => v.session_claims(|| data.identity(), || extras(v.exp)),
        None => opaque_claims(shared, &data, extras(data.exp)),
    };
    // A refresh does not extend the session: the cookies get the lifetime that is left.
    let age = lifetime_left(&shared.settings, &data.ids, shared.clock.now());
    if age <= 0 {
        tracing::debug!("session lifetime ended during refresh; clearing");
        let at = shared.clock.now().saturating_add(age);
        return Outcome::cleared(shared, cookies, true, Refusal::LifetimeEnded { at });
    }
    if let Place::Store(id, loaded) = place {
        // The record is replaced in place; the cookie (its id) stays as it is.
        data.idt = refreshed.id_token.or_else(|| old.idt.clone());
        return match save_refreshed(shared, id, loaded, old, &data, grant).await {
            Saved::Done => {
                debug_assert_eq!(data.ids.lid, old.ids.lid);
                tracing::debug!("stored session refreshed");
                Outcome::with_claims(claims)
            }
            Saved::Gone => {
                tracing::debug!("session record deleted during refresh (a logout); clearing");
                Outcome::cleared(shared, cookies, true, Refusal::SessionGone)
            }
        };
    }
    let mut set_cookies = Vec::new();
    if let Err(too_large) = codec.write_json(
        &codec.session,
        &data,
        age,
        cookies.chunk_count(&codec.session.name),
        &mut set_cookies,
    ) {
        // Never write what cannot be read: the user signs in again (and is told why there).
        tracing::error!(
            size = too_large.sealed,
            limit = crate::cookies::TooLarge::LIMIT,
            "refreshed session too large for its cookies ({too_large}); signing out"
        );
        return Outcome::cleared(shared, cookies, true, Refusal::SessionTooLarge);
    }
    if let Some(id) = &refreshed.id_token {
        if let Err(too_large) = codec.write_json(
            &codec.id_token,
            id,
            age,
            cookies.chunk_count(&codec.id_token.name),
            &mut set_cookies,
        ) {
            // The hint from login stays.
            tracing::warn!(
                size = too_large.sealed,
                "refreshed ID token too large ({too_large}); kept the old one"
            );
        }
    }
    debug_assert_eq!(data.ids.lid, old.ids.lid);
    tracing::debug!("session refreshed");
    Outcome::Continue {
        claims,
        set_cookies,
        refusal: None,
    }
}

/// What became of a refreshed stored session.
enum Saved {
    /// Saved, or another instance saved the same refresh first, or the store failed (logged:
    /// the request goes on with the new token, and the next request finds the old record and
    /// gets the same grant from the coordinator, within its grace window, to save again).
    Done,
    /// The record was deleted meanwhile: the session ended (a logout racing the refresh).
    Gone,
}

/// Saves a refreshed stored session over the record as loaded. A record changed meanwhile is
/// read again: if it still holds the old refresh token (an idle-time touch, say), the refresh is
/// saved over it; if it holds another, another instance saved this refresh already.
async fn save_refreshed(
    shared: &Arc<Shared>,
    id: &crate::session_store::SessionId,
    loaded: &crate::session_store::SessionRecord,
    old: &SessionData,
    data: &SessionData,
    grant: (RefreshKey, SealedTokens),
) -> Saved {
    use crate::session::stored;
    let now = shared.clock.now();
    let mut current = loaded.clone();
    for _ in 0..4 {
        let mut meta = current.meta.clone();
        meta.last_seen = now;
        match stored::replace(shared, id, &current, data, meta, now).await {
            Ok(true) => return Saved::Done,
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%error, "refreshed session not saved in the session store");
                remember_unsaved(shared, id, old, data, grant);
                return Saved::Done;
            }
        }
        match stored::load(shared, id).await {
            Ok(Some((open, record))) if open.data.rt == old.rt => current = record,
            Ok(Some(_)) => return Saved::Done,
            Ok(None) => return Saved::Gone,
            Err(error) => {
                tracing::warn!(%error, "refreshed session not saved in the session store");
                remember_unsaved(shared, id, old, data, grant);
                return Saved::Done;
            }
        }
    }
    tracing::warn!("refreshed session not saved: its record kept changing");
    Saved::Done
}

/// Keeps a refreshed session the store could not save, for the next request to save, and
/// retries to save it meanwhile. The refresh's result is held by the refresh coordinator as
/// long, so that another instance which reads the record (and its rotated refresh token) gets
/// the same tokens instead of replaying it.
fn remember_unsaved(
    shared: &Arc<Shared>,
    id: &crate::session_store::SessionId,
    old: &SessionData,
    data: &SessionData,
    (key, tokens): (RefreshKey, SealedTokens),
) {
    let Ok(session_json) = serde_json::to_string(data) else {
        return;
    };
    // A refresh of a session that was itself unsaved replaces the same record: the new memo
    // is bound to what the record holds, as the first one was.
    let (replaced_rt, replaced_ts, mut passed_rts) = match shared.unsaved.get(id) {
        Some(before) if before.refreshed_rt == old.rt && before.refreshed_ts == old.ts => (
            before.replaced_rt.clone(),
            before.replaced_ts,
            before.passed_rts.clone(),
        ),
        _ => (old.rt.clone(), old.ts, Vec::new()),
    };
    // The session this refresh replaced, if it was itself unsaved (a rotated token only: with
    // a provider that keeps the refresh token, the token time tells the sessions apart).
    if let Some(rt) = old
        .rt
        .as_ref()
        .filter(|rt| Some(*rt) != replaced_rt.as_ref() && Some(*rt) != data.rt.as_ref())
    {
        passed_rts.push(rt.clone());
    }
    let memo = Arc::new(crate::session_store::Unsaved {
        replaced_rt,
        replaced_ts,
        session_json,
        refreshed_rt: data.rt.clone(),
        refreshed_ts: data.ts,
        passed_rts,
    });
    // Held under this refresh's key, and under the key of every refresh token before it in
    // the chain (the record's, and unsaved ones another instance may have saved): whoever
    // reads any of them gets these, the newest tokens, never a grant already rotated. Each
    // copy is sealed for its own key, as the coordinator's results are.
    // Only a rotated refresh token needs it: one the provider keeps stays good for whoever
    // reads it, and a hold under it would answer that instance's later refreshes (this one's
    // too) with these tokens, expired by then, instead of new ones.
    let rotated = data.rt.is_some() && data.rt != old.rt;
    let mut holds = Vec::new();
    if rotated {
        holds.push(shared.coordinator.hold(
            key,
            tokens.clone(),
            crate::session::stored::UNSAVED_HOLD,
        ));
    }
    let plain = rotated
        .then(|| shared.cookies.open(&refresh_aad(key), &tokens.0))
        .flatten();
    let earlier = memo.replaced_rt.iter().chain(memo.passed_rts.iter());
    let not_this = |rt: &&String| Some(*rt) != old.rt.as_ref() && Some(*rt) != data.rt.as_ref();
    for rt in earlier.filter(not_this) {
        let earlier_key = RefreshKey::of(rt);
        if let Some(plain) = &plain {
            let sealed = SealedTokens(shared.cookies.seal(&refresh_aad(earlier_key), plain));
            holds.push(shared.coordinator.hold(
                earlier_key,
                sealed,
                crate::session::stored::UNSAVED_HOLD,
            ));
        }
    }
    shared.unsaved.insert(id.clone(), memo.clone());
    tokio::spawn(async move {
        for hold in holds {
            if let Err(error) = hold.await {
                tracing::warn!(%error, "unsaved refresh not held by the refresh coordinator");
            }
        }
    });
    crate::session::stored::save_later(shared, id.clone(), memo);
}

/// One refresh grant, sealed for the coordinator as the token endpoint answered it. Its tokens
/// are verified by [`check_grant`], outside: a verification failure must not lose the grant.
pub(crate) fn refresh_task(shared: Arc<Shared>, rt: String, key: RefreshKey) -> RefreshTask {
    Box::pin(async move {
        let timeout = shared.settings.refresh_timeout;
        let tokens = match tokio::time::timeout(timeout, shared.token.refresh(&rt)).await {
            Ok(Ok(tokens)) => tokens,
            Ok(Err(e)) if e.is_invalid_grant() => return Err(RefreshError::InvalidGrant),
            Ok(Err(e)) if e.is_transient() => {
                return Err(RefreshError::Unavailable(Chain(&e).to_string()))
            }
            Ok(Err(e)) => return Err(RefreshError::Invalid(Chain(&e).to_string())),
            Err(_) => {
                return Err(RefreshError::Unavailable(format!(
                    "no answer within {timeout:?}"
                )))
            }
        };
        let grant = Grant {
            expires_in: tokens.expires_in(),
            at: tokens.access_token,
            rt: tokens.refresh_token,
            id: tokens.id_token,
        };
        let plain =
            serde_json::to_string(&grant).map_err(|e| RefreshError::Invalid(e.to_string()))?;
        Ok(SealedTokens(shared.cookies.seal(&refresh_aad(key), &plain)))
    })
}

/// Verifies a refresh grant for the session `old` that asked for it, and builds the new
/// session. The new tokens must name the same user; the session keeps its own ids (its local
/// id, its login time). Keys are fetched for these tokens regardless of the refetch rate limit:
/// they came straight from the token endpoint.
pub(crate) async fn check_grant(
    shared: &Shared,
    grant: Grant,
    rt: &str,
    old: &SessionData,
) -> Result<Refreshed, String> {
    let now = shared.clock.now();
    let mut ids = old.ids.clone();
    let old_idc: Map<String, Value> = serde_json::from_str(old.idc.get()).unwrap_or_default();
    let same_user = |sub: Option<&Value>| match (sub, &ids.sub) {
        (Some(new), Some(ours)) => new.as_str() == Some(ours.as_str()),
        (new, None) => new == old_idc.get("sub"),
        (None, Some(_)) => false,
    };
    // A new ID token is verified like at login, without a nonce (Core 12.2), and must name the
    // same user.
    let mut identity = None;
    // The ID token cookie is the logout hint, which travels in a front-channel URL. A refreshed
    // ID token replaces it only when the access path would refuse it as a bearer token;
    // otherwise the hint stays the one from login (which carries our nonce): providers accept
    // an expired ID token as a hint (RP-Initiated Logout 1.0, section 2).
    let mut hint = None;
    if let Some(id) = &grant.id {
        let claims = shared
            .verifier
            .id_token(id, None, Some(&grant.at))
            .await
            .map_err(|e| format!("ID token: {e}"))?;
        if !same_user(claims.get("sub")) {
            return Err("ID token names another subject".into());
        }
        if let Some(sid) = claims.get("sid").and_then(Value::as_str) {
            ids.sid = Some(sid.to_owned());
        }
        if crate::verify::looks_like_id_token(&claims) {
            hint = Some(id.clone());
        }
        identity = Some(identity_claims(&claims, &shared.settings.session_claims));
    }
    let id_exp = identity
        .as_ref()
        .and_then(|c| c.get("exp"))
        .and_then(Value::as_i64);
    let (exp, opaque) = classify_access(shared, &grant.at, grant.expires_in, id_exp, now)
        .await
        .map_err(|e| format!("access token: {e}"))?;
    let mut verified = None;
    if !opaque {
        // Verified by `classify_access` just now: a cache hit.
        let v = shared
            .verifier
            .access(&grant.at, Purpose::Session)
            .await
            .map_err(|e| format!("access token: {e}"))?;
        if v.claims.get("sub").is_some_and(|sub| !same_user(Some(sub))) {
            return Err("access token names another subject".into());
        }
        verified = Some(v);
    }
    let idc = match identity {
        Some(map) => raw_json(&Value::Object(map)),
        None => raw_json(&Value::Object(old_idc)),
    };
    Ok(Refreshed {
        session: SessionData {
            // The app's data stays with the session (the refresh hook may replace it).
            app: old.app.clone(),
            ..SessionData::from_tokens(
                Tokens {
                    at: grant.at,
                    // Providers that do not rotate may omit it: keep the one we have.
                    rt: grant.rt.or_else(|| Some(rt.to_owned())),
                    exp,
                    opaque,
                },
                idc,
                ids,
                now,
            )
        },
        id_token: hint,
        verified,
    })
}

/// What the app's refresh hook decided.
pub(crate) enum Verdict {
    /// Go on with the refreshed session (its app data possibly replaced).
    Keep,
    /// The hook denied: the session ends.
    End,
}

/// Runs the app's refresh hook, if any, on a verified refresh, before its cookie is written.
/// `Err`: the hook failed (an error, a panic, its time limit, app data over the limit); the
/// caller keeps the old session for now.
pub(crate) async fn refresh_hook(
    shared: &Shared,
    refreshed: &mut Refreshed,
) -> Result<Verdict, String> {
    use crate::hooks::{seal_app_data, LoginDecision, RefreshContext};
    let Some(hook) = &shared.settings.hooks.refresh else {
        return Ok(Verdict::Keep);
    };
    let data = &refreshed.session;
    // Built here, not through the verified token's remembered claims: those must carry the app
    // data the hook decides.
    let Some((claims, access_token)) = data.hook_claims(
        shared,
        data.identity().unwrap_or_default(),
        refreshed.verified.as_deref(),
    ) else {
        return Err("the refreshed claims have no subject".into());
    };
    let cx = RefreshContext {
        claims,
        access_token,
    };
    match hook.run(cx, shared.settings.hooks.timeout).await? {
        LoginDecision::Allow => Ok(Verdict::Keep),
        LoginDecision::AllowWith { app_data } => {
            refreshed.session.app = Some(seal_app_data(&app_data)?);
            Ok(Verdict::Keep)
        }
        LoginDecision::Deny { reason } => {
            tracing::info!(%reason, "the app's refresh hook ended the session");
            Ok(Verdict::End)
        }
    }
}
