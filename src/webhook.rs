//! Standard Webhooks signature verification, and Scalekit's `user.logout` event.
//!
//! Scalekit signs webhooks per the Standard Webhooks spec: headers `webhook-id`,
//! `webhook-timestamp` and `webhook-signature` (space-separated `v1,<base64>` entries), HMAC-SHA256
//! over `<id>.<timestamp>.<body>` with the key that follows `whsec_` in the secret.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;
use sha2::Sha256;

use crate::clock::{Clock, SystemClock};
use crate::layer::Shared;
use crate::responses::{json, Page};
use crate::revocation::RevocationKey;

/// How far a webhook's timestamp may be from now.
pub const WEBHOOK_TOLERANCE_SECS: i64 = 300;

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// A required header is missing or not text.
    #[error("missing or unreadable header {0}")]
    MissingHeader(&'static str),
    /// The secret is not `whsec_<base64>`.
    #[error("webhook secret is not whsec_<base64>")]
    BadSecret,
    /// The timestamp is not a number or outside the tolerance.
    #[error("webhook timestamp outside the tolerance")]
    Timestamp,
    /// No `v1` signature matched.
    #[error("no matching signature")]
    Signature,
}

/// Verifies a Standard Webhooks signature, at the current time.
///
/// ```
/// use tower_oidc_auth::{verify_webhook, WebhookError};
/// let headers = http::HeaderMap::new();
/// assert_eq!(
///     verify_webhook("whsec_c2VjcmV0", &headers, b"{}"),
///     Err(WebhookError::MissingHeader("webhook-id"))
/// );
/// ```
pub fn verify_webhook(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), WebhookError> {
    verify_webhook_at(secret, headers, body, SystemClock.now())
}

/// Verifies a Standard Webhooks signature as of `now` (seconds since the epoch).
pub fn verify_webhook_at(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<(), WebhookError> {
    let header = |name: &'static str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(WebhookError::MissingHeader(name))
    };
    let id = header("webhook-id")?;
    let timestamp = header("webhook-timestamp")?;
    let signatures = header("webhook-signature")?;
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|_| WebhookError::BadSecret)?;
    if key.is_empty() {
        return Err(WebhookError::BadSecret);
    }
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| WebhookError::Timestamp)?;
    // `abs_diff`: `now - ts` overflows for timestamps near `i64::MIN` or `i64::MAX`.
    if now.abs_diff(ts) > WEBHOOK_TOLERANCE_SECS.unsigned_abs() {
        return Err(WebhookError::Timestamp);
    }
    for entry in signatures.split(' ') {
        let Some(sig) = entry.strip_prefix("v1,") else {
            continue;
        };
        let Ok(sig) = STANDARD.decode(sig) else {
            continue;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| WebhookError::BadSecret)?;
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        // Constant-time comparison.
        if mac.verify_slice(&sig).is_ok() {
            return Ok(());
        }
    }
    Err(WebhookError::Signature)
}

/// Signs a payload the Standard Webhooks way: the `webhook-signature` value (`v1,<base64>`).
/// For tests and for providers simulated in tests.
pub fn sign_webhook(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, WebhookError> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|_| WebhookError::BadSecret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| WebhookError::BadSecret)?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// `POST /auth/webhook`: verify, then end the user's sessions on `user.logout`.
pub(crate) async fn webhook(shared: Arc<Shared>, headers: HeaderMap, body: Option<Bytes>) -> Page {
    let answer = |status: StatusCode, error: Option<&str>| {
        let mut page = match error {
            Some(e) => json(status, serde_json::json!({"error": e})),
            None => json(status, serde_json::json!({"ok": true})),
        };
        page.headers_mut().insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        page
    };
    let (Some(secret), Some(body)) = (shared.settings.webhook_secret.as_ref(), body) else {
        return answer(StatusCode::BAD_REQUEST, Some("invalid_request"));
    };
    let now = shared.clock.now();
    if let Err(error) = verify_webhook_at(secret.expose(), &headers, &body, now) {
        tracing::warn!(%error, "webhook refused");
        return answer(StatusCode::UNAUTHORIZED, Some("invalid_signature"));
    }
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return answer(StatusCode::BAD_REQUEST, Some("invalid_json"));
    };
    let kind = event
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind != "user.logout" {
        tracing::debug!(kind, "webhook event ignored");
        return answer(StatusCode::OK, None);
    }
    let data = event.get("data").unwrap_or(&Value::Null);
    let first = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| data.get(*n).and_then(Value::as_str))
            .map(str::to_owned)
    };
    let user = first(&["user_id", "userId", "sub", "id"]);
    let session = first(&["session_id", "sessionId", "sid"]);
    let issuer = &shared.meta.issuer;
    let mut keys = Vec::new();
    if let Some(sid) = &session {
        keys.push(RevocationKey::session(issuer, sid));
    }
    if let Some(sub) = &user {
        keys.push(RevocationKey::subject(issuer, sub));
    }
    if keys.is_empty() {
        return answer(StatusCode::BAD_REQUEST, Some("no user or session in event"));
    }
    for key in keys {
        if let Err(error) = shared
            .revocations
            .revoke(key, now, shared.settings.revocation_ttl)
            .await
        {
            tracing::warn!(%error, "could not record the webhook logout");
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                Some("temporarily_unavailable"),
            );
        }
    }
    tracing::debug!("user.logout webhook recorded");
    answer(StatusCode::OK, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn headers(id: &str, ts: i64, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", id.parse().unwrap());
        h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
        h.insert("webhook-signature", sig.parse().unwrap());
        h
    }

    #[test]
    fn good_bad_stale_and_multiple_signatures() {
        let body = br#"{"type":"user.logout","data":{"user_id":"usr_1"}}"#;
        let sig = sign_webhook(SECRET, "msg_1", 1000, body).unwrap();
        assert_eq!(
            verify_webhook_at(SECRET, &headers("msg_1", 1000, &sig), body, 1000),
            Ok(())
        );
        // Tampered body, other id, other secret.
        assert_eq!(
            verify_webhook_at(SECRET, &headers("msg_1", 1000, &sig), b"{}", 1000),
            Err(WebhookError::Signature)
        );
        assert_eq!(
            verify_webhook_at(SECRET, &headers("msg_2", 1000, &sig), body, 1000),
            Err(WebhookError::Signature)
        );
        assert_eq!(
            verify_webhook_at("whsec_b3RoZXI=", &headers("msg_1", 1000, &sig), body, 1000),
            Err(WebhookError::Signature)
        );
        // Stale and future timestamps, at the edge and past it.
        assert_eq!(
            verify_webhook_at(SECRET, &headers("msg_1", 1000, &sig), body, 1300),
            Ok(())
        );
        assert_eq!(
            verify_webhook_at(SECRET, &headers("msg_1", 1000, &sig), body, 1301),
            Err(WebhookError::Timestamp)
        );
        assert_eq!(
            verify_webhook_at(SECRET, &headers("msg_1", 1000, &sig), body, 699),
            Err(WebhookError::Timestamp)
        );
        // Several signatures (key rotation): any v1 match is enough; other versions ignored.
        let multi = format!("v1,aW52YWxpZA== v2,xyz {sig}");
        assert_eq!(
            verify_webhook_at(SECRET, &headers("msg_1", 1000, &multi), body, 1000),
            Ok(())
        );
        let none = "v1,aW52YWxpZA== v1a,whatever";
        assert_eq!(
            verify_webhook_at(SECRET, &headers("msg_1", 1000, none), body, 1000),
            Err(WebhookError::Signature)
        );
        // Missing headers and bad secrets.
        assert_eq!(
            verify_webhook_at(SECRET, &HeaderMap::new(), body, 1000),
            Err(WebhookError::MissingHeader("webhook-id"))
        );
        assert_eq!(
            verify_webhook_at("whsec_***", &headers("msg_1", 1000, &sig), body, 1000),
            Err(WebhookError::BadSecret)
        );
    }

    /// Found by the `webhook` fuzz target: `now - ts` overflowed (a panic in debug builds) for a
    /// timestamp far in the past or future. Such timestamps are refused like any stale one. In
    /// release builds `ts = now - 2^63` wrapped to `i64::MIN`, whose `abs()` stays negative: the
    /// tolerance check passed.
    #[test]
    fn extreme_timestamps_are_refused_without_overflow() {
        let body = br#"{"type":"user.logout"}"#;
        let (min, max) = (i64::MIN, i64::MAX);
        let cases = [
            (min, 1_700_000_000, false),
            (min + 1, 1_700_000_000, false),
            (min + 1_700_000_000, 1_700_000_000, false),
            (max, 1_700_000_000, false),
            (max, 0, false),
            (min, max, false),
            (max, min, false),
            (min, min, true),
            (min + 300, min, true),
            (max - 300, max, true),
        ];
        for (ts, now, ok) in cases {
            let sig = sign_webhook(SECRET, "msg_1", ts, body).unwrap();
            let expected = if ok {
                Ok(())
            } else {
                Err(WebhookError::Timestamp)
            };
            assert_eq!(
                verify_webhook_at(SECRET, &headers("msg_1", ts, &sig), body, now),
                expected,
                "ts {ts}, now {now}"
            );
        }
    }
}
