//! The session: what its cookie holds, its lifetime, its identity for revocation, and the
//! outcome of reading it. Resolution per request is in [`resolve`].

pub(crate) mod resolve;
pub(crate) mod stored;
mod token;

pub(crate) use resolve::{has_session, resolve, resolve_now};

use http::HeaderValue;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::claims::{Claims, Extras, TokenSource};
use crate::cookies::RequestCookies;
use crate::responses::Page;
use crate::revocation::{RevocationKeys, SessionIds};
use crate::state::{Settings, Shared};
use crate::verify::{Purpose, VerifyError};

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
    /// The app's data from its login hook (compact JSON, at most
    /// [`APP_DATA_MAX_BYTES`](crate::hooks::APP_DATA_MAX_BYTES)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) app: Option<Box<RawValue>>,
    /// The ID token, the logout hint (store mode only: in cookie mode it has a cookie of its
    /// own, on the auth path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) idt: Option<String>,
}

/// The tokens of one token-endpoint answer, as a session keeps them.
pub(crate) struct Tokens {
    /// The access token.
    pub(crate) at: String,
    /// The refresh token, if any.
    pub(crate) rt: Option<String>,
    /// When the access token expires (seconds since the epoch).
    pub(crate) exp: i64,
    /// Whether the access token is opaque (see [`SessionData::opaque`]).
    pub(crate) opaque: bool,
}

impl SessionData {
    /// The one way a session is made from a token-endpoint answer (a login, a refresh, the
    /// testing helpers): its tokens, obtained at `now`; the identity claims it keeps (`idc`,
    /// already cut down by [`identity_claims`]); and its ids (new at login, the renewed
    /// session's own at a refresh). A new session has not been seen since it was made.
    pub(crate) fn from_tokens(
        tokens: Tokens,
        idc: Box<RawValue>,
        ids: SessionIds,
        now: i64,
    ) -> Self {
        Self {
            at: tokens.at,
            rt: tokens.rt,
            exp: tokens.exp,
            opaque: tokens.opaque,
            ts: now,
            seen: 0,
            idc,
            ids,
            app: None,
            idt: None,
        }
    }

    /// What the session's claims carry besides the claims: where its access token is, and its
    /// app data.
    pub(crate) fn extras(&self, token: TokenSource) -> Extras {
        Extras {
            token,
            app_data: self.app.as_ref().map(|a| a.get().into()),
            stored: None,
            // A session is always the layer's own provider's.
            foreign_issuer: false,
        }
    }

    /// The session's access token itself, expiring at `exp` (the verified token's, or the
    /// session's for an opaque one).
    pub(crate) fn access_token(&self, exp: i64) -> crate::access_token::AccessToken {
        crate::access_token::AccessToken::new(self.at.as_str(), exp)
    }

    /// What a hook is shown of this session: `identity` (the claims beneath) with the verified
    /// access token's claims over them (`verified`; `None`: an opaque token, whose expiry is the
    /// session's), as a request's claims are, carrying the token itself; and the token.
    pub(crate) fn hook_claims(
        &self,
        shared: &Shared,
        mut identity: Map<String, Value>,
        verified: Option<&crate::verify::Verified>,
    ) -> Option<(Claims, crate::access_token::AccessToken)> {
        let exp = match verified {
            Some(v) => {
                for (k, v) in v.claims.iter() {
                    identity.insert(k.clone(), v.clone());
                }
                v.exp
            }
            None => {
                identity.insert("exp".into(), self.exp.into());
                self.exp
            }
        };
        let token = self.access_token(exp);
        let extras = self.extras(TokenSource::Inline(token.clone()));
        let claims = Claims::from_map_with(identity, shared.verifier.layer(), extras)?;
        Some((claims, token))
    }

    /// The identity claims kept in the session, parsed.
    pub(crate) fn identity(&self) -> Option<Map<String, Value>> {
        serde_json::from_str(self.idc.get()).ok()
    }
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
pub(crate) fn last_seen(data: &SessionData) -> i64 {
    data.seen.max(data.ts).max(data.ids.login)
}

/// How often the last-seen time is rewritten: a tenth of the idle timeout, at least a second,
/// at most 5 minutes.
fn touch_interval(idle: i64) -> i64 {
    (idle / 10).clamp(1, 300)
}

/// Why the session is over on the server's clock, if it is: past its absolute lifetime, or
/// idle for longer than the idle timeout. Checked on every request and before every refresh.
pub(crate) fn ended(
    settings: &Settings,
    data: &SessionData,
    now: i64,
) -> Option<crate::refusal::Refusal> {
    ended_at(settings, data.ids.login, last_seen(data), now)
}

/// [`ended`], from the session's login time and last-seen time.
pub(crate) fn ended_at(
    settings: &Settings,
    login: i64,
    last_seen: i64,
    now: i64,
) -> Option<crate::refusal::Refusal> {
    use crate::refusal::Refusal;
    let left = lifetime_left_from(settings, login, now);
    if left <= 0 {
        return Some(Refusal::LifetimeEnded {
            at: now.saturating_add(left),
        });
    }
    match settings.session_idle_timeout {
        Some(idle) if now.saturating_sub(last_seen) >= idle => Some(Refusal::IdleTimeout {
            at: last_seen.saturating_add(idle),
        }),
        _ => None,
    }
}

/// Whether the last-seen time is due to be rewritten (with an idle timeout configured).
pub(crate) fn touch_due(settings: &Settings, last_seen: i64, now: i64) -> bool {
    settings
        .session_idle_timeout
        .is_some_and(|idle| now.saturating_sub(last_seen) >= touch_interval(idle))
}

/// With an idle timeout, rewrites the session cookie with a new last-seen time when the one it
/// carries is older than the rewrite interval (only for a request that is signed in).
pub(crate) fn touch(
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
    let Outcome::Continue {
        claims: Some(_),
        set_cookies,
        ..
    } = outcome
    else {
        return;
    };
    if now.saturating_sub(last_seen(data)) < touch_interval(idle) {
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
        set_cookies,
    ) {
        // The session was read from its cookies, so it fits; a last-seen time cannot make it
        // unreadable. Should it ever, the old cookies stay and the idle clock is not moved.
        tracing::warn!(
            size = too_large.sealed,
            "session too large to touch ({too_large})"
        );
    }
}

/// The claims of the ID token kept in the session: `sub`, `iss` and `sid`, and those the app
/// asked for (`keep`,
/// [`AuthLayerBuilder::session_claims`](crate::AuthLayerBuilder::session_claims)).
/// Token bookkeeping (`aud`, `exp`, `nonce`, ...) is never kept, even when asked for.
pub(crate) fn identity_claims(
    id_claims: &Map<String, Value>,
    keep: &[String],
) -> Map<String, Value> {
    // `auth_time` and `acr`: the step-up guards read them.
    const ALWAYS: &[&str] = &["sub", "iss", "sid", "auth_time", "acr"];
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

/// What the layer decided for a request that is not one of its routes.
pub(crate) enum Outcome {
    /// Call the inner service with these claims (`None`: anonymous), and add these cookies to
    /// its response.
    Continue {
        claims: Option<Claims>,
        set_cookies: Vec<HeaderValue>,
        /// Without claims: why the request's credentials were refused (`None`: it had none).
        refusal: Option<crate::refusal::Refusal>,
    },
    /// Answer with this page instead of calling the inner service.
    Respond(Box<Page>),
}

impl Default for Outcome {
    fn default() -> Self {
        Self::anonymous()
    }
}

impl Outcome {
    pub(crate) fn anonymous() -> Self {
        Self::with_claims(None)
    }

    pub(crate) fn with_claims(claims: Option<Claims>) -> Self {
        Self::Continue {
            claims,
            set_cookies: Vec::new(),
            refusal: None,
        }
    }

    /// Anonymous, because the request's credentials were refused for `why`.
    pub(crate) fn refused(why: crate::refusal::Refusal) -> Self {
        Self::Continue {
            claims: None,
            set_cookies: Vec::new(),
            refusal: Some(why),
        }
    }

    pub(crate) fn respond(page: Page) -> Self {
        Self::Respond(Box::new(page))
    }

    /// Unauthenticated for `why`, and the session cookies are cleared (`id_token` too when
    /// asked).
    pub(crate) fn cleared(
        shared: &Shared,
        cookies: &RequestCookies<'_>,
        id_token: bool,
        why: crate::refusal::Refusal,
    ) -> Self {
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
        Self::Continue {
            claims: None,
            set_cookies,
            refusal: Some(why),
        }
    }
}

/// Whether an outcome could be decided without waiting.
pub(crate) enum Resolution {
    /// Decided.
    Ready(Outcome),
    /// The request needs the asynchronous path: a refresh, or a JWKS refetch for a key not
    /// seen yet.
    Pending,
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
/// A session cookie, opened: its data and its revocation keys.
pub(crate) struct OpenSession {
    pub(crate) data: SessionData,
    pub(crate) revocation: RevocationKeys,
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

/// A `Cookie` header value for a session with these tokens, saved in the layer's session
/// store (for the testing helpers): the session's reference cookie.
#[cfg(feature = "testing")]
pub(crate) async fn stored_session_cookie_header(
    shared: &Shared,
    at: String,
    rt: Option<String>,
    id_token: &str,
) -> Result<String, crate::session_store::SessionStoreError> {
    let mut data = testing_session(shared, at, rt, id_token);
    data.idt = Some(id_token.to_owned());
    let now = shared.clock.now();
    let id = crate::session_store::SessionId::random();
    stored::save(
        shared,
        &id,
        &data,
        crate::session_store::SessionMeta::new(now),
        now,
    )
    .await?;
    let mut set = Vec::new();
    let _ = stored::write_ref(shared, None, &id, shared.settings.session_max_age, &mut set);
    Ok(set
        .iter()
        .filter_map(|h| h.to_str().ok())
        .filter_map(|s| s.split(';').next())
        .collect::<Vec<_>>()
        .join("; "))
}

/// A session with these tokens, as a login would make it (for the testing helpers).
#[cfg(feature = "testing")]
fn testing_session(shared: &Shared, at: String, rt: Option<String>, id_token: &str) -> SessionData {
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
    SessionData::from_tokens(
        Tokens {
            at,
            rt,
            exp,
            opaque: false,
        },
        idc,
        SessionIds::at_login(&id_claims, now),
        now,
    )
}

/// A `Cookie` header value for a session with these tokens (for the testing helpers).
#[cfg(feature = "testing")]
pub(crate) fn session_cookie_header(
    shared: &Shared,
    at: String,
    rt: Option<String>,
    id_token: &str,
) -> String {
    let data = testing_session(shared, at, rt, id_token);
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

pub(crate) fn opaque_claims(shared: &Shared, data: &SessionData, extras: Extras) -> Option<Claims> {
    let mut map: Map<String, Value> = serde_json::from_str(data.idc.get()).unwrap_or_default();
    map.insert("exp".into(), data.exp.into());
    Claims::from_map_with(map, shared.verifier.layer(), extras)
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
