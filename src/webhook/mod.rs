//! Scalekit's webhooks: Standard Webhooks signatures, delivery deduplication, the `user.logout`
//! event, and the app's own handlers.
//!
//! Scalekit signs webhooks per the Standard Webhooks spec, as its Node SDK verifies them
//! (`scalekit-inc/scalekit-sdk-node`, `src/scalekit.ts`, `verifyPayloadSignature`): headers
//! `webhook-id`, `webhook-timestamp` and `webhook-signature` (space-separated `v1,<base64>`
//! entries), HMAC-SHA256 over `<id>.<timestamp>.<body>` with the key that follows `whsec_` in the
//! secret, and a tolerance of five minutes. The event envelope (`id`, `type`, `occurred_at`,
//! `environment_id`, `organization_id`, `object`, `data`) and the `user.logout` payload
//! (`UserLogoutEvent` / `UserAuthEventData`: `data.user_session.session_id`) follow Scalekit's
//! OpenAPI specification, section `webhooks:`.
//!
//! The layer serves `POST <base_path>/webhook` once
//! [`webhook_secret`](crate::AuthLayerBuilder::webhook_secret) is set, and hands every verified
//! event to the handlers of [`on_webhook`](crate::AuthLayerBuilder::on_webhook). An app that
//! receives webhooks on its own route verifies them with [`verify_webhook`]:
//!
//! ```
//! use http::{HeaderMap, HeaderValue};
//! use tower_oidc_auth::webhook::{sign_webhook, verify_webhook_at, WebhookError};
//!
//! // The signing secret, as the Scalekit dashboard shows it.
//! let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
//! let body = br#"{"id":"evt_1","type":"user.logout","data":{}}"#;
//! let now = 1_750_000_000;
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("webhook-id", HeaderValue::from_static("msg_1"));
//! headers.insert("webhook-timestamp", HeaderValue::from_str(&now.to_string()).unwrap());
//! let signature = sign_webhook(secret, "msg_1", now, body).unwrap();
//! headers.insert("webhook-signature", HeaderValue::from_str(&signature).unwrap());
//!
//! assert!(verify_webhook_at(secret, &headers, body, now).is_ok());
//! // Another body, or the same one ten minutes late, is refused.
//! assert!(verify_webhook_at(secret, &headers, b"{}", now).is_err());
//! assert!(matches!(
//!     verify_webhook_at(secret, &headers, body, now + 600),
//!     Err(WebhookError::Timestamp)
//! ));
//! ```

mod deliveries;
mod event;
mod signature;
#[cfg(test)]
mod tests;

use std::panic::AssertUnwindSafe;

use bytes::Bytes;
use futures_util::FutureExt;
use http::{HeaderMap, StatusCode};
use serde_json::Value;

use crate::responses::{protocol_json, Page};
use crate::revocation::RevocationKey;
use crate::revocation::RevocationStore;
use deliveries::{Begin, Deliveries, InFlight};
pub(crate) use event::WebhookHandler;
pub use event::{WebhookEvent, WebhookHandlerError, WebhookOutcome};
pub(crate) use signature::WebhookSecret;
pub use signature::{sign_webhook, verify_webhook, verify_webhook_at, WebhookError};

/// How far a webhook's timestamp may be from now.
pub const WEBHOOK_TOLERANCE_SECS: i64 = 300;

/// At most this many signatures are considered in `webhook-signature`; more is refused unread.
/// Key rotation sends two or three.
pub const MAX_WEBHOOK_SIGNATURES: usize = 16;

/// The longest `webhook-signature` header accepted, in bytes (16 entries of 88 characters fit).
pub const MAX_WEBHOOK_SIGNATURE_HEADER: usize = 16 * 96;

/// The longest `webhook-id` accepted, in bytes: it is remembered for deduplication.
pub const MAX_WEBHOOK_ID: usize = 256;

/// The webhook route's state: the decoded secret, the app's handlers, deliveries seen.
#[derive(Debug)]
pub(crate) struct Webhooks {
    secret: WebhookSecret,
    handlers: Vec<WebhookHandler>,
    deliveries: Deliveries,
}

impl Webhooks {
    pub(crate) fn new(secret: WebhookSecret, handlers: Vec<WebhookHandler>) -> Self {
        Self {
            secret,
            handlers,
            deliveries: Deliveries::default(),
        }
    }

    /// Forgets every delivery: the fuzz target runs millions of inputs at one fixed time, and
    /// a full log would stop them short of the event handling.
    #[cfg(any(test, feature = "__private"))]
    pub(crate) fn forget_deliveries(&self) {
        self.deliveries.forget();
    }
}

fn answer(status: StatusCode, body: Value) -> Page {
    protocol_json(status, body)
}

fn refuse(status: StatusCode, error: &str) -> Page {
    answer(status, serde_json::json!({ "error": error }))
}

/// The oldest `occurred_at` taken as a `user.logout`'s time: Scalekit retries a delivery for
/// about 22 minutes (developer-docs `authenticate/implement-workflows/implement-webhooks.mdx`,
/// "Retry schedule"); a day leaves room for a delivery replayed from Scalekit's dashboard.
const MAX_EVENT_AGE_SECS: i64 = 24 * 3600;

/// The longest `user_session.session_id` taken from a `user.logout` event.
const MAX_SESSION_ID: usize = 512;

/// Ends the stored sessions of a provider session that began by a time (store mode).
pub(crate) trait EndStored: Sync {
    /// Deletes the records of the provider session `sid` that began no later than `at`.
    fn end_stored<'a>(&'a self, sid: &'a str, at: i64) -> futures_util::future::BoxFuture<'a, ()>;
}

/// What the webhook route needs of the layer (see `Shared::webhook_context`).
pub(crate) struct WebhookContext<'a> {
    /// The route's state, when a webhook secret is configured.
    pub(crate) hooks: Option<&'a Webhooks>,
    pub(crate) revocations: &'a dyn RevocationStore,
    /// In store mode, what deletes the sessions a `user.logout` ends from the store, as a
    /// back-channel logout does.
    pub(crate) stored: Option<&'a dyn EndStored>,
    /// The provider's issuer, whose `sid`s a `user.logout` names.
    pub(crate) issuer: &'a str,
    pub(crate) now: i64,
    /// The session's absolute lifetime (seconds) and the shortest a revocation is kept.
    pub(crate) session_max_age: i64,
    pub(crate) revocation_ttl: std::time::Duration,
}

/// `POST /auth/webhook`: verify, deduplicate, end the session of a `user.logout`, then run the
/// app's handlers.
pub(crate) async fn webhook(
    cx: WebhookContext<'_>,
    headers: HeaderMap,
    body: Option<Bytes>,
) -> Page {
    use tracing::Instrument;
    let span = tracing::info_span!(
        "oidc.webhook",
        r#type = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    let (kind, outcome, page) = receive(cx, headers, body).instrument(span.clone()).await;
    span.record("type", kind);
    span.record("outcome", outcome);
    if outcome != "not_configured" {
        crate::telemetry::webhook(kind, outcome);
    }
    page
}

/// Event types of Scalekit's webhooks (the `webhooks:` section of its OpenAPI specification,
/// `tests/fixtures/scalekit-webhook-examples.json`): the `type` label of `oidc_webhook_total`.
/// Any other type is counted as `other`, one not read (yet) as `unknown`.
const KNOWN_TYPES: &[&str] = &[
    "connected_account.created",
    "connected_account.deleted",
    "connected_account.magic_link_generated",
    "connected_account.oauth_succeeded",
    "connected_account.oauth_tokens_fetched",
    "connected_account.status_updated",
    "connected_account.token_refresh_failed",
    "connected_account.token_refresh_succeeded",
    "connected_account.updated",
    "organization.created",
    "organization.deleted",
    "organization.directory.group_created",
    "organization.directory.group_deleted",
    "organization.directory.group_updated",
    "organization.directory.user_created",
    "organization.directory.user_deleted",
    "organization.directory.user_updated",
    "organization.directory_disabled",
    "organization.directory_enabled",
    "organization.domain_created",
    "organization.domain_deleted",
    "organization.domain_dns_verification_failed",
    "organization.domain_dns_verification_success",
    "organization.sso_created",
    "organization.sso_deleted",
    "organization.sso_disabled",
    "organization.sso_enabled",
    "organization.updated",
    "permission.created",
    "permission.deleted",
    "permission.updated",
    "role.created",
    "role.deleted",
    "role.updated",
    "user.login",
    "user.logout",
    "user.organization_invitation",
    "user.organization_membership_created",
    "user.organization_membership_deleted",
    "user.organization_membership_updated",
    "user.signup",
];

fn type_label(kind: &str) -> &'static str {
    KNOWN_TYPES
        .iter()
        .find(|k| **k == kind)
        .copied()
        .unwrap_or("other")
}

/// Verifies, deduplicates and handles one delivery: the event's type label, the outcome label,
/// and the answer.
async fn receive(
    cx: WebhookContext<'_>,
    headers: HeaderMap,
    body: Option<Bytes>,
) -> (&'static str, &'static str, Page) {
    let Some(hooks) = cx.hooks else {
        return (
            "unknown",
            "not_configured",
            refuse(StatusCode::NOT_FOUND, "not_found"),
        );
    };
    let Some(body) = body else {
        return (
            "unknown",
            "refused",
            refuse(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
        );
    };
    let now = cx.now;
    let delivery = match hooks.secret.verify(&headers, &body, now) {
        Ok(id) => id.to_owned(),
        Err(error) => {
            tracing::warn!(%error, "webhook refused");
            let code = match error.status() {
                StatusCode::BAD_REQUEST => "invalid_request",
                _ => "invalid_signature",
            };
            return ("unknown", "refused", refuse(error.status(), code));
        }
    };
    let mut event = match WebhookEvent::parse(&body) {
        Ok(event) => event,
        Err(error) => {
            tracing::warn!(%error, "signed webhook is not an event");
            return (
                "unknown",
                "refused",
                refuse(StatusCode::BAD_REQUEST, "invalid_event"),
            );
        }
    };
    let kind = type_label(&event.kind);
    event.webhook_id = delivery;
    match hooks.deliveries.begin(&event.webhook_id, now) {
        Begin::New => {}
        Begin::Duplicate => {
            tracing::debug!(kind = %event.kind, "webhook delivery seen before; acknowledged");
            let page = answer(
                StatusCode::OK,
                serde_json::json!({"ok": true, "duplicate": true}),
            );
            return (kind, "duplicate", page);
        }
        Begin::InFlight => {
            let page = refuse(StatusCode::CONFLICT, "delivery_in_progress");
            return (kind, "in_flight", page);
        }
        Begin::Full => {
            tracing::warn!("too many webhook deliveries inside the tolerance window");
            let page = refuse(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
            return (kind, "unavailable", page);
        }
    }
    let mut in_flight = InFlight {
        deliveries: &hooks.deliveries,
        id: &event.webhook_id,
        done: false,
    };
    let outcome = handle(&cx, hooks, event.clone(), now).await;
    in_flight.done = outcome.is_ok();
    drop(in_flight);
    match outcome {
        Ok(()) => (
            kind,
            "ok",
            answer(StatusCode::OK, serde_json::json!({"ok": true})),
        ),
        Err((status, code)) => {
            let label = if status == StatusCode::SERVICE_UNAVAILABLE {
                "unavailable"
            } else if code == "handler_failed" {
                "handler_failed"
            } else {
                "refused"
            };
            (kind, label, refuse(status, code))
        }
    }
}

async fn handle(
    cx: &WebhookContext<'_>,
    hooks: &Webhooks,
    event: WebhookEvent,
    now: i64,
) -> Result<(), (StatusCode, &'static str)> {
    if event.kind == "user.logout" {
        end_session(cx, &event, now).await?;
    }
    for handler in &hooks.handlers {
        // A panic may come from the handler's closure or from the future it returns.
        let run = match std::panic::catch_unwind(AssertUnwindSafe(|| (handler.0)(event.clone()))) {
            Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
            Err(panic) => Err(panic),
        };
        match run {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(kind = %event.kind, %error, "webhook handler failed");
                return Err((StatusCode::INTERNAL_SERVER_ERROR, "handler_failed"));
            }
            Err(_) => {
                tracing::error!(kind = %event.kind, "webhook handler panicked");
                return Err((StatusCode::INTERNAL_SERVER_ERROR, "handler_failed"));
            }
        }
    }
    Ok(())
}

/// `user.logout` (`UserLogoutEvent` / `UserAuthEventData`): revoke the one session named by
/// `data.user_session.session_id` (the `sid` of its tokens), as of the event's `occurred_at`. Never
/// the user's other sessions.
async fn end_session(
    cx: &WebhookContext<'_>,
    event: &WebhookEvent,
    now: i64,
) -> Result<(), (StatusCode, &'static str)> {
    let sid = event
        .data
        .get("user_session")
        .and_then(|s| s.get("session_id"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= MAX_SESSION_ID);
    let Some(sid) = sid else {
        tracing::warn!("user.logout without data.user_session.session_id; nothing ended");
        return Err((StatusCode::UNPROCESSABLE_ENTITY, "no_session_in_event"));
    };
    // As of the event's `occurred_at`, not the delivery's arrival (a retry arrives up to ~22
    // minutes later): a `sid` revocation ends the sessions of that provider session that began
    // no later than it. Sessions' login times are their ID tokens' `iat`, Scalekit's clock like
    // `occurred_at`. A time that cannot be the event's (absent, unreadable, in the future, or
    // older than Scalekit's retries could deliver) falls back to the arrival.
    let at = event
        .occurred_at()
        .filter(|t| *t <= now && now.saturating_sub(*t) <= MAX_EVENT_AGE_SECS)
        .unwrap_or(now);
    tracing::debug!(occurred_at = ?event.occurred_at_str(), at, "user.logout");
    let key = RevocationKey::session(cx.issuer, sid);
    // Ends the sessions that began by `at`: remembered until the last of them could end.
    let ttl = crate::revocation::lifetime(at, now, cx.session_max_age, cx.revocation_ttl);
    if let Err(error) = cx.revocations.revoke(key, at, ttl).await {
        tracing::warn!(%error, "could not record the webhook logout");
        return Err((StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable"));
    }
    if let Some(stored) = cx.stored {
        // The revocation ends them on every instance; deleting the records that began by `at`
        // (as the revocation does) makes the end final.
        stored.end_stored(sid, at).await;
    }
    tracing::debug!("user.logout webhook recorded");
    Ok(())
}
