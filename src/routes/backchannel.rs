//! `POST /auth/backchannel-logout`: the provider says a session ended (OpenID Connect
//! Back-Channel Logout 1.0). Verify the logout token, remember the revocation.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde_json::Value;

use crate::responses::{protocol_json, protocol_ok, Page};
use crate::revocation::RevocationKey;
use crate::state::Shared;
use crate::verify::VerifyError;

/// The most body read from the provider's POST.
pub(crate) const MAX_BODY: usize = 64 * 1024;

pub(crate) async fn backchannel_logout(
    shared: Arc<Shared>,
    content_type: Option<HeaderValue>,
    body: Option<Bytes>,
) -> Page {
    use tracing::Instrument;
    let span = tracing::info_span!("oidc.backchannel_logout", outcome = tracing::field::Empty);
    let page = receive(shared, content_type, body)
        .instrument(span.clone())
        .await;
    // The answer says it: 200 done, 400 refused (malformed, unverified, replayed), 503 the
    // revocation could not be recorded (the provider retries).
    let outcome = match page.status() {
        s if s.is_success() => "success",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        _ => "refused",
    };
    span.record("outcome", outcome);
    crate::telemetry::backchannel(outcome);
    page
}

async fn receive(
    shared: Arc<Shared>,
    content_type: Option<HeaderValue>,
    body: Option<Bytes>,
) -> Page {
    let bad = |reason: &str| {
        tracing::warn!(reason, "back-channel logout refused");
        protocol_json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "invalid_request"}),
        )
    };
    let Some(body) = body else {
        return bad("body missing, unreadable or too large");
    };
    let is_form = content_type
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !is_form {
        return bad("content type must be application/x-www-form-urlencoded");
    }
    let mut token = None;
    for (k, v) in url::form_urlencoded::parse(&body) {
        if k == "logout_token" {
            if token.is_some() {
                return bad("repeated logout_token");
            }
            token = Some(v.into_owned());
        }
    }
    let Some(token) = token else {
        return bad("logout_token missing");
    };
    let settings = &shared.settings;
    let claims = match shared
        .verifier
        .logout_token(&token, settings.logout_token_max_age)
        .await
    {
        Ok(c) => c,
        Err(error) => {
            tracing::warn!(%error, "logout token refused");
            return bad("invalid logout token");
        }
    };
    // Replay: each jti once within the acceptance window.
    let now = shared.clock.now();
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let issuer = &shared.meta.issuer;
    let jti_key = format!("{issuer}|{jti}");
    if let Some(seen) = shared.seen_jti.get(&jti_key) {
        if now.saturating_sub(seen) <= settings.logout_token_max_age.saturating_add(120) {
            tracing::warn!(error = %VerifyError::Replayed, "logout token refused");
            return bad("replayed logout token");
        }
    }

    let key = match (
        claims.get("sid").and_then(Value::as_str),
        claims.get("sub").and_then(Value::as_str),
    ) {
        (Some(sid), _) => RevocationKey::session(issuer, sid),
        (None, Some(sub)) => RevocationKey::subject(issuer, sub),
        (None, None) => return bad("neither sid nor sub"),
    };
    // Ends the sessions that began by the token's `iat` (verified: within the acceptance
    // window, not in the future), the provider's clock like the sessions' own login times. Not
    // by its arrival: a token replayed to another instance, or after a restart, must not end a
    // session begun after the real logout.
    let at = claims
        .get("iat")
        .and_then(|v| crate::verify::numeric_date(v).ok())
        .map_or(now, |iat| iat.min(now));
    // Remembered until the last of those sessions could end.
    let ttl = settings.revocation_lifetime(at, now);
    if let Err(error) = shared.revocations.revoke(key, at, ttl).await {
        tracing::warn!(%error, "could not record the revocation");
        return protocol_json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"error": "temporarily_unavailable"}),
        );
    }
    // The jti is remembered only once the revocation is stored: after a store failure (503),
    // the provider's retry of the same token must be accepted, not refused as a replay.
    shared.seen_jti.insert(jti_key, now);
    crate::session::stored::end_by_index(
        &shared,
        claims.get("sid").and_then(Value::as_str),
        claims.get("sub").and_then(Value::as_str),
        at,
    )
    .await;
    tracing::debug!("back-channel logout recorded");
    protocol_ok()
}
