//! Reading the session from the cookies on every request that is not an auth route.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::claims::Claims;
use crate::cookies::RequestCookies;
use crate::layer::{Settings, Shared};
use crate::refresh::{RefreshError, RefreshKey, RefreshTask, SealedTokens};
use crate::responses::{error_page, grpc_status, json, Client, Page};
use crate::revocation::RevocationKey;
use crate::session_cache::CachedSession;
use crate::verify::{Attempt, Purpose, VerifyError};

/// What the session cookie holds (sealed).
#[derive(Serialize, Deserialize, Clone)]
pub(crate) struct SessionData {
    /// Access token.
    pub(crate) at: String,
    /// Refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rt: Option<String>,
    /// When the access token expires (seconds since the epoch).
    pub(crate) exp: i64,
    /// True when the access token is not a JWT this client can verify: the session then rests
    /// on the ID token verified at login, until `exp`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) opaque: bool,
    /// When these tokens were obtained (seconds since the epoch; 0 if unknown).
    #[serde(default)]
    pub(crate) ts: i64,
    /// When the session was last used, as far as the idle timeout needs to know (seconds since
    /// the epoch; 0: not recorded since `ts`). Written only with an idle timeout configured.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) seen: i64,
    /// The ID token's identity claims, verified at login.
    pub(crate) idc: Box<RawValue>,
    /// Identity of the session, kept across refreshes: for revocation checks.
    #[serde(flatten)]
    pub(crate) ids: SessionIds,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Seconds of the session's absolute lifetime left at `now` (0 or less: over), never more than
/// the lifetime itself. A session without a login time (sealed by a version that did not
/// record it) has none left.
pub(crate) fn lifetime_left(settings: &Settings, ids: &SessionIds, now: i64) -> i64 {
    lifetime_left_from(settings, ids.login, now)
}

/// [`lifetime_left`] of a session that began at `login`.
fn lifetime_left_from(settings: &Settings, login: i64, now: i64) -> i64 {
    if login <= 0 {
        return 0;
    }
    login
        .saturating_add(settings.session_max_age)
        .saturating_sub(now)
        .min(settings.session_max_age)
}

/// When the session was last seen: the last recorded use, refresh or login.
fn last_seen(data: &SessionData) -> i64 {
    data.seen.max(data.ts).max(data.ids.login)
}

/// How often the last-seen time is rewritten: a tenth of the idle timeout, at least a second,
/// at most 5 minutes.
fn touch_interval(idle: i64) -> i64 {
    (idle / 10).clamp(1, 300)
}

/// Why the session is over on the server's clock, if it is: past its absolute lifetime, or
/// idle for longer than the idle timeout. Checked on every request and before every refresh.
pub(crate) fn ended(settings: &Settings, data: &SessionData, now: i64) -> Option<&'static str> {
    ended_at(settings, data.ids.login, last_seen(data), now)
}

/// [`ended`], from the session's login time and last-seen time.
fn ended_at(settings: &Settings, login: i64, last_seen: i64, now: i64) -> Option<&'static str> {
    if lifetime_left_from(settings, login, now) <= 0 {
        return Some("absolute lifetime over");
    }
    match settings.session_idle_timeout {
        Some(idle) if now.saturating_sub(last_seen) >= idle => Some("idle timeout"),
        _ => None,
    }
}

/// Whether the last-seen time is due to be rewritten (with an idle timeout configured).
fn touch_due(settings: &Settings, last_seen: i64, now: i64) -> bool {
    settings
        .session_idle_timeout
        .is_some_and(|idle| now.saturating_sub(last_seen) >= touch_interval(idle))
}

/// With an idle timeout, rewrites the session cookie with a new last-seen time when the one it
/// carries is older than the rewrite interval (only for a request that is signed in).
fn touch(
    shared: &Shared,
    cookies: &RequestCookies<'_>,
    data: &SessionData,
    now: i64,
    outcome: &mut Outcome,
) {
    let settings = &shared.settings;
    let Some(idle) = settings.session_idle_timeout else {
        return;
    };
    if outcome.claims.is_none()
        || outcome.reject.is_some()
        || now.saturating_sub(last_seen(data)) < touch_interval(idle)
    {
        return;
    }
    let mut touched = data.clone();
    touched.seen = now;
    let codec = &shared.cookies;
    if let Err(too_large) = codec.write_json(
        &codec.session,
        &touched,
        lifetime_left(settings, &data.ids, now),
        cookies.chunk_count(&codec.session.name),
        &mut outcome.set_cookies,
    ) {
        // The session was read from its cookies, so it fits; a last-seen time cannot make it
        // unreadable. Should it ever, the old cookies stay and the idle clock is not moved.
        tracing::warn!(
            size = too_large.sealed,
            "session too large to touch ({too_large})"
        );
    }
}

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
            lid: Some(crate::routes::random_token()),
            login: now,
        }
    }
}

/// Whether the session was ended elsewhere: its local id revoked, or its provider session or
/// user revoked after it began.
pub(crate) fn is_revoked(shared: &Shared, ids: &SessionIds) -> bool {
    let store = shared.revocations.as_ref();
    !store.is_empty() && RevocationKeys::new(&shared.meta.issuer, ids).revoked(store)
}

/// The claims of the ID token kept in the session: `sub`, `iss` and `sid`, and those the app
/// asked for (`keep`, [`AuthConfig::session_claims`](crate::AuthConfig::session_claims)).
/// Token bookkeeping (`aud`, `exp`, `nonce`, ...) is never kept, even when asked for.
pub(crate) fn identity_claims(
    id_claims: &Map<String, Value>,
    keep: &[String],
) -> Map<String, Value> {
    const ALWAYS: &[&str] = &["sub", "iss", "sid"];
    const NEVER: &[&str] = &[
        "aud", "exp", "iat", "nbf", "nonce", "at_hash", "c_hash", "s_hash", "azp", "jti",
    ];
    id_claims
        .iter()
        .filter(|(k, _)| {
            ALWAYS.contains(&k.as_str())
                || (keep.iter().any(|c| c == *k) && !NEVER.contains(&k.as_str()))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The result of reading a request's session.
#[derive(Default)]
pub(crate) struct Outcome {
    pub(crate) claims: Option<Claims>,
    pub(crate) set_cookies: Vec<HeaderValue>,
    /// Answer with this instead of calling the inner service (refresh impossible right now).
    pub(crate) reject: Option<Box<Page>>,
}

impl Outcome {
    fn anonymous() -> Self {
        Self::default()
    }

    fn with_claims(claims: Option<Claims>) -> Self {
        Self {
            claims,
            ..Self::default()
        }
    }

    /// Unauthenticated, and the session cookies are cleared (`id_token` too when asked).
    fn cleared(shared: &Shared, cookies: &RequestCookies<'_>, id_token: bool) -> Self {
        let codec = &shared.cookies;
        let mut set_cookies = Vec::new();
        codec.clear_slot(
            &codec.session,
            cookies.chunk_count(&codec.session.name),
            &mut set_cookies,
        );
        if id_token {
            // The ID token cookie lives on the auth path, so this request may not carry it;
            // clear its first chunk anyway, plus any chunks we can see.
            codec.clear_slot(
                &codec.id_token,
                cookies.chunk_count(&codec.id_token.name),
                &mut set_cookies,
            );
        }
        Self {
            set_cookies,
            ..Self::default()
        }
    }
}

/// Whether the access token should be refreshed now: expired, or within the margin (at most
/// half its lifetime, so short-lived tokens are not refreshed on every request).
pub(crate) fn refresh_due(exp: i64, ts: i64, margin: i64, now: i64) -> bool {
    let lifetime = if ts > 0 {
        exp.saturating_sub(ts).max(0)
    } else {
        i64::MAX
    };
    let margin = margin.min(lifetime / 2);
    now >= exp.saturating_sub(margin)
}

/// Reads the session without waiting. `None`: the request needs the async path (a refresh, or
/// a JWKS refetch for an unknown key).
pub(crate) fn resolve_now(shared: &Shared, headers: &HeaderMap) -> Option<Outcome> {
    let codec = &shared.cookies;
    let cookies = codec.read(headers);
    let Some(bytes) = cookies.sealed_bytes(&codec.session.name) else {
        return Some(Outcome::anonymous());
    };
    let now = shared.clock.now();
    let mut digest = shared.sessions.fingerprint(&bytes);
    if let Some(hit) = shared.sessions.get(&digest) {
        match from_cache(shared, &cookies, &hit, now) {
            FromCache::Answer(outcome) => return Some(outcome),
            FromCache::Async => return None,
            FromCache::Open { stale } => {
                if stale {
                    shared.sessions.remove(&digest);
                }
            }
        }
    }
    let Some(sealed) = cookies.sealed(&codec.session.name) else {
        return Some(Outcome::anonymous());
    };
    // An entry is keyed by exactly the value that opened: when the bytes found first are not
    // text (a tossed cookie of the same name), the session read is another cookie's.
    if sealed.as_bytes() != &*bytes {
        digest = shared.sessions.fingerprint(sealed.as_bytes());
    }
    let open = match open_session(shared, &cookies, &sealed) {
        Err(outcome) => return Some(outcome),
        Ok(open) => open,
    };
    let data = &open.data;
    if open.revocation.revoked(shared.revocations.as_ref()) {
        tracing::debug!("session was revoked; clearing");
        return Some(Outcome::cleared(shared, &cookies, true));
    }
    if let Some(why) = ended(&shared.settings, data, now) {
        tracing::debug!(why, "session over; clearing");
        return Some(Outcome::cleared(shared, &cookies, true));
    }
    if data.rt.is_some() && refresh_due(data.exp, data.ts, shared.settings.refresh_margin, now) {
        return None;
    }
    let mut validity = None;
    let mut outcome = check(shared, &cookies, data, now, |at| {
        let attempt = shared.verifier.access_now(at, Purpose::Session);
        if let Attempt::Valid(v) = &attempt {
            validity = Some(v.validity());
        }
        attempt
    })?;
    touch(shared, &cookies, data, now, &mut outcome);
    // Signed in, nothing to rewrite: remembered for the next request with this cookie.
    if let (Some(claims), None, true) = (
        &outcome.claims,
        &outcome.reject,
        outcome.set_cookies.is_empty() && (data.opaque || validity.is_some()),
    ) {
        let entry = CachedSession::new(data, open.revocation, claims.clone(), validity);
        shared
            .sessions
            .insert(digest, data.ids.lid.as_deref(), Arc::new(entry));
    }
    Some(outcome)
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
    let good = match &hit.validity {
        Some(validity) => shared.verifier.still_good(validity, now),
        None => now < hit.exp,
    };
    if good {
        FromCache::Answer(Outcome::with_claims(Some(hit.claims.clone())))
    } else {
        FromCache::Open { stale: true }
    }
}

/// The token of an `Authorization: Bearer` header, if the request has exactly one such header.
/// `Some("")` for a Bearer header without a token (refused as invalid).
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return Some("");
    }
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Checks a bearer token without waiting. `None`: a JWKS refetch is needed (async).
/// A bearer token never refreshes and never sets cookies.
pub(crate) fn bearer_now(shared: &Shared, token: &str, client: Client) -> Option<Outcome> {
    bearer_outcome(
        shared,
        shared.verifier.access_now(token, Purpose::Bearer),
        client,
    )
}

/// Checks a bearer token, refetching the JWKS for an unknown key.
pub(crate) async fn bearer(shared: Arc<Shared>, token: String, client: Client) -> Outcome {
    let attempt = Attempt::from(shared.verifier.access(&token, Purpose::Bearer).await);
    bearer_outcome(&shared, attempt, client).unwrap_or_default()
}

fn bearer_outcome(shared: &Shared, attempt: Attempt, client: Client) -> Option<Outcome> {
    let invalid = |why: &dyn std::fmt::Display| {
        tracing::debug!(reason = %why, "bearer token refused");
        Some(Outcome {
            reject: Some(Box::new(invalid_token(client))),
            ..Outcome::default()
        })
    };
    match attempt {
        Attempt::Valid(verified) => {
            // Whether the token may be a bearer token at all (a token naming no audience only
            // in a cookie session; a machine token only of an accepted client) was decided by
            // the verifier.
            let claims = verified.bearer_claims();
            let Some(claims) = claims else {
                return invalid(&"claims unusable");
            };
            let ids = SessionIds {
                sid: claims.sid.clone(),
                sub: Some(claims.sub.clone()),
                lid: None,
                login: claims.iat.unwrap_or(0),
            };
            if is_revoked(shared, &ids) {
                return invalid(&"session revoked");
            }
            Some(Outcome::with_claims(Some(claims)))
        }
        Attempt::NeedKeys(..) => None,
        Attempt::Invalid(error) => invalid(&error),
    }
}

/// RFC 6750 section 3.1: 401 with `error="invalid_token"` (gRPC: UNAUTHENTICATED).
fn invalid_token(client: Client) -> Page {
    match client {
        Client::Grpc => grpc_status(16, "invalid bearer token"),
        _ => {
            let mut page = json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": "invalid_token",
                                   "message": "the access token is invalid or expired"}),
            );
            page.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            page
        }
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
                            Ok(refreshed) => {
                                return refreshed_outcome(&shared, &cookies, data, refreshed);
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
            return Outcome {
                reject: Some(Box::new(unavailable(client, &here))),
                ..Outcome::default()
            };
        }
    } else if !data.opaque && !data.at.is_empty() {
        // Verified with a JWKS refetch (rate-limited) where one may help; used below.
        verified = Some(Attempt::from(
            shared.verifier.access(&data.at, Purpose::Session).await,
        ));
    }
    let mut outcome = check(&shared, &cookies, data, now, |t| {
        verified.unwrap_or_else(|| shared.verifier.access_after_refetch(t, Purpose::Session))
    })
    .unwrap_or_default();
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
    if opaque {
        return if now < exp {
            Ok(())
        } else {
            Err(VerifyError::Expired)
        };
    }
    shared
        .verifier
        .access(at, Purpose::Session)
        .await
        .map(|_| ())
}

/// A session cookie, opened: its data and its revocation keys.
pub(crate) struct OpenSession {
    pub(crate) data: SessionData,
    revocation: RevocationKeys,
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
    pub(crate) fn revoked(&self, store: &dyn crate::revocation::RevocationStore) -> bool {
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
fn open_session(
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
                "session cookie unreadable (tampered, truncated or foreign key); clearing"
            );
            Err(Outcome::cleared(shared, cookies, false))
        }
    }
}

/// Verifies the session's access token (or, for opaque ones, its expiry).
fn check(
    shared: &Shared,
    cookies: &RequestCookies<'_>,
    data: &SessionData,
    now: i64,
    verify: impl FnOnce(&str) -> Attempt,
) -> Option<Outcome> {
    if data.opaque {
        if now >= data.exp {
            return Some(Outcome::cleared(shared, cookies, false));
        }
        return Some(Outcome::with_claims(opaque_claims(shared, data)));
    }
    match verify(&data.at) {
        Attempt::Valid(verified) => {
            Some(Outcome::with_claims(verified.session_claims(|| {
                serde_json::from_str(data.idc.get()).ok()
            })))
        }
        Attempt::NeedKeys(..) => None,
        Attempt::Invalid(VerifyError::UnknownKey) => {
            // Perhaps the provider rotated keys and the refetch is rate-limited: keep the cookie.
            tracing::debug!("session access token signed by an unknown key");
            Some(Outcome::anonymous())
        }
        Attempt::Invalid(error) => {
            tracing::debug!(%error, "session access token refused; clearing");
            Some(Outcome::cleared(shared, cookies, false))
        }
    }
}

fn opaque_claims(shared: &Shared, data: &SessionData) -> Option<Claims> {
    let mut map: Map<String, Value> = serde_json::from_str(data.idc.get()).unwrap_or_default();
    map.insert("exp".into(), data.exp.into());
    Claims::from_map(map, shared.verifier.layer())
}

/// The answer when a refresh is needed and the provider cannot do it now. Cookies are kept.
fn unavailable(client: Client, here: &str) -> Page {
    let mut page = match client {
        Client::Browser => error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Temporarily unavailable",
            "Your session could not be renewed because the identity provider is not reachable. \
             You are still signed in; please try again in a moment.",
            Some(here),
            Vec::new(),
        ),
        Client::Grpc => grpc_status(14, "identity provider unavailable; retry later"),
        Client::Api => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"error": "temporarily_unavailable",
                               "message": "session renewal failed; retry later"}),
        ),
    };
    page.headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("5"));
    page
}

/// Associated data for a sealed refresh result: bound to its refresh key (not a cookie name, so
/// never confused with one), so a result stored under another key never opens.
fn refresh_aad(key: RefreshKey) -> String {
    format!("tower-oidc-auth refresh {}", key.to_hex())
}

/// What the token endpoint answered to a refresh grant, as it came: kept sealed by the
/// coordinator, and verified by each request that uses it. A verification that fails for now
/// is retried from this, never with another grant.
#[derive(Serialize, Deserialize)]
struct Grant {
    at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_in: Option<i64>,
}

/// A verified refresh: the new session, and the new logout hint if any.
struct Refreshed {
    session: SessionData,
    id_token: Option<String>,
    /// The verified access token (`None`: opaque).
    verified: Option<Arc<crate::verify::Verified>>,
}

fn refreshed_outcome(
    shared: &Shared,
    cookies: &RequestCookies<'_>,
    old: &SessionData,
    refreshed: Refreshed,
) -> Outcome {
    let codec = &shared.cookies;
    let data = refreshed.session;
    // Revoked while the refresh was in flight (a logout racing this request): do not resurrect.
    if is_revoked(shared, &data.ids) {
        tracing::debug!("session revoked during refresh; clearing");
        return Outcome::cleared(shared, cookies, true);
    }
    let claims = match &refreshed.verified {
        Some(v) => v.session_claims(|| serde_json::from_str(data.idc.get()).ok()),
        None => opaque_claims(shared, &data),
    };
    // A refresh does not extend the session: the cookies get the lifetime that is left.
    let age = lifetime_left(&shared.settings, &data.ids, shared.clock.now());
    if age <= 0 {
        tracing::debug!("session lifetime ended during refresh; clearing");
        return Outcome::cleared(shared, cookies, true);
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
        return Outcome::cleared(shared, cookies, true);
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
    Outcome {
        claims,
        set_cookies,
        reject: None,
    }
}

/// One refresh grant, sealed for the coordinator as the token endpoint answered it. Its tokens
/// are verified by [`check_grant`], outside: a verification failure must not lose the grant.
fn refresh_task(shared: Arc<Shared>, rt: String, key: RefreshKey) -> RefreshTask {
    Box::pin(async move {
        let timeout = shared.settings.refresh_timeout;
        let tokens = match tokio::time::timeout(timeout, shared.token.refresh(&rt)).await {
            Ok(Ok(tokens)) => tokens,
            Ok(Err(e)) if e.is_invalid_grant() => return Err(RefreshError::InvalidGrant),
            Ok(Err(e)) if e.is_transient() => return Err(RefreshError::Unavailable(e.to_string())),
            Ok(Err(e)) => return Err(RefreshError::Invalid(e.to_string())),
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
async fn check_grant(
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
            at: grant.at,
            // Providers that do not rotate may omit it: keep the one we have.
            rt: grant.rt.or_else(|| Some(rt.to_owned())),
            exp,
            ts: now,
            seen: 0,
            opaque,
            idc,
            ids,
        },
        id_token: hint,
        verified,
    })
}

/// Decides how the session rests on an access token from our own token endpoint. A token shaped
/// like a JWT must verify: signature by a published key and allowed algorithm, `iss`, `exp`, and
/// an audience this client accepts (a token without `aud` is accepted: it came straight from the
/// token endpoint in exchange for our own code or refresh token; a machine token never is: a
/// session is a user's). Only a token that is not
/// JWT-shaped is opaque (`true`): the session then lasts until `expires_in`, on the strength of
/// the ID token verified with it, and never longer than the session's lifetime.
pub(crate) async fn classify_access(
    shared: &Shared,
    access_token: &str,
    expires_in: Option<i64>,
    id_exp: Option<i64>,
    now: i64,
) -> Result<(i64, bool), VerifyError> {
    if crate::verify::is_jwt_shaped(access_token) {
        return shared
            .verifier
            .access_from_token_endpoint(access_token, Purpose::Session)
            .await
            .map(|v| (v.exp, false));
    }
    tracing::debug!("access token is not a JWT; the session rests on the ID token");
    let max = shared.settings.session_max_age;
    Ok((opaque_expiry(expires_in, id_exp, now, max), true))
}

/// The words of the login error page and log for an access token whose audience this client
/// does not accept: the audience, and the builder call that accepts it.
pub(crate) fn audience_help(access_token: &str) -> String {
    let auds = crate::verify::unverified_audiences(access_token);
    match auds.first() {
        Some(aud) => format!(
            "The identity provider issued an access token for the audience \"{aud}\", which \
             this application does not accept. If it should, configure the layer with \
             `.audience(\"{aud}\")`."
        ),
        None => "The identity provider issued an access token for another client.".to_owned(),
    }
}

/// When a session on an opaque access token ends: after the token endpoint's `expires_in`, else
/// at the ID token's `exp`, else in five minutes; never more than `max` (the session's lifetime)
/// from now. `expires_in` is the provider's number (`now + expires_in` overflowed for huge
/// values): no overflow, and a value that is not positive counts as absent.
pub(crate) fn opaque_expiry(
    expires_in: Option<i64>,
    id_exp: Option<i64>,
    now: i64,
    max: i64,
) -> i64 {
    let max = max.max(0);
    let lifetime = match expires_in.filter(|s| *s > 0) {
        Some(s) => s.min(max),
        None => id_exp.map_or(300, |e| e.saturating_sub(now)).clamp(0, max),
    };
    now.saturating_add(lifetime)
}

pub(crate) fn raw_json(value: &Value) -> Box<RawValue> {
    RawValue::from_string(value.to_string())
        .unwrap_or_else(|_| RawValue::from_string("{}".into()).expect("valid JSON"))
}

/// A `Cookie` header value for a session with these tokens (for the testing helpers).
#[cfg(feature = "testing")]
pub(crate) fn session_cookie_header(
    shared: &Shared,
    at: String,
    rt: Option<String>,
    id_token: &str,
) -> String {
    let id_claims: Map<String, Value> = jsonwebtoken::dangerous::insecure_decode(id_token)
        .map(|d| d.claims)
        .unwrap_or_default();
    let exp = jsonwebtoken::dangerous::insecure_decode::<Map<String, Value>>(&at)
        .ok()
        .and_then(|d| d.claims.get("exp").and_then(Value::as_i64))
        .unwrap_or_default();
    let idc = RawValue::from_string(
        Value::Object(identity_claims(&id_claims, &shared.settings.session_claims)).to_string(),
    )
    .expect("valid JSON");
    let now = shared.clock.now();
    let data = SessionData {
        at,
        rt,
        exp,
        opaque: false,
        ts: now,
        seen: 0,
        ids: SessionIds::at_login(&id_claims, now),
        idc,
    };
    let codec = &shared.cookies;
    let mut set = Vec::new();
    let age = shared.settings.session_max_age;
    let _ = codec.write_json(&codec.session, &data, age, 0, &mut set);
    let _ = codec.write_json(&codec.id_token, &id_token, age, 0, &mut set);
    set.iter()
        .filter_map(|h| h.to_str().ok())
        .filter_map(|s| s.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::{opaque_expiry, refresh_due};

    /// Found by the `provider_json` fuzz target: `"expires_in": 9223372036854775807` in a token
    /// response overflowed `now + expires_in` (a panic in debug builds, a session expired long
    /// ago in release builds).
    #[test]
    fn opaque_expiry_saturates() {
        let now = 1_700_000_000;
        let week = 7 * 24 * 3600;
        assert_eq!(opaque_expiry(Some(3600), Some(5), now, week), now + 3600);
        assert_eq!(opaque_expiry(None, Some(now + 60), now, week), now + 60);
        assert_eq!(
            opaque_expiry(None, Some(5), now, week),
            now,
            "ID token expired"
        );
        assert_eq!(opaque_expiry(None, None, now, week), now + 300);
        assert_eq!(opaque_expiry(Some(i64::MAX), None, now, week), now + week);
        assert_eq!(opaque_expiry(Some(i64::MIN), None, now, week), now + 300);
        assert_eq!(opaque_expiry(Some(-1), Some(now + 60), now, week), now + 60);
        assert_eq!(opaque_expiry(Some(5), None, i64::MAX, week), i64::MAX);
        assert_eq!(opaque_expiry(Some(5), None, now, i64::MIN), now);
    }

    /// An M2M token from the token endpoint (at the callback or a refresh) never becomes a
    /// session, even with every M2M client accepted on the bearer path. Shape: developer-docs
    /// `authenticate/m2m/api-auth-quickstart.mdx`, step 6 "Example decoded access token".
    #[cfg(feature = "testing")]
    #[tokio::test]
    async fn a_machine_token_is_never_classified_for_a_session() {
        use crate::Clock;
        let clock = crate::ManualClock::starting_now();
        let p = crate::testing::TestProvider::builder()
            .clock(clock.clone())
            .start()
            .await;
        let auth = p
            .layer_builder("http://127.0.0.1:1/auth/callback")
            .accept_m2m_clients(crate::M2mClients::Any)
            .build()
            .await
            .unwrap();
        let now = clock.now();
        let token = p.m2m_access_token("m2morg_69038819013296423", "org_1", &["a:b"]);
        assert_eq!(
            super::classify_access(&auth.shared, &token, Some(3600), None, now)
                .await
                .unwrap_err(),
            super::VerifyError::MachineSession
        );
    }

    #[test]
    fn refresh_margin_rules() {
        // 300 s token obtained at 1000: margin 30 s.
        assert!(!refresh_due(1300, 1000, 30, 1269));
        assert!(refresh_due(1300, 1000, 30, 1270));
        assert!(refresh_due(1300, 1000, 30, 5000));
        // 40 s token: margin capped at 20 s.
        assert!(!refresh_due(1040, 1000, 30, 1019));
        assert!(refresh_due(1040, 1000, 30, 1020));
        // Unknown issue time: the configured margin.
        assert!(refresh_due(1300, 0, 30, 1270));
        // Zero margin: only when expired.
        assert!(!refresh_due(1300, 1000, 0, 1299));
        assert!(refresh_due(1300, 1000, 0, 1300));
    }
}
