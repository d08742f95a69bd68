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

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use hmac::digest::{generic_array::GenericArray, CtOutput};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

use crate::clock::{Clock, SystemClock};
use crate::responses::{json, Page};
use crate::revocation::RevocationKey;
use crate::state::Shared;

/// How far a webhook's timestamp may be from now.
pub const WEBHOOK_TOLERANCE_SECS: i64 = 300;

/// At most this many signatures are considered in `webhook-signature`; more is refused unread.
/// Key rotation sends two or three.
pub const MAX_WEBHOOK_SIGNATURES: usize = 16;

/// The longest `webhook-signature` header accepted, in bytes (16 entries of 88 characters fit).
pub const MAX_WEBHOOK_SIGNATURE_HEADER: usize = 16 * 96;

/// The longest `webhook-id` accepted, in bytes: it is remembered for deduplication.
pub const MAX_WEBHOOK_ID: usize = 256;

/// The shortest webhook signing key accepted, in bytes (after base64 decoding).
const MIN_KEY_BYTES: usize = 16;

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// A required header is missing or not text.
    #[error("missing or unreadable header {0}")]
    MissingHeader(&'static str),
    /// The secret is not `whsec_<base64>` of at least 16 bytes.
    #[error("webhook secret is not whsec_<base64> of at least 16 bytes")]
    BadSecret,
    /// The timestamp is not a number or outside the tolerance.
    #[error("webhook timestamp outside the tolerance")]
    Timestamp,
    /// No `v1` signature matched.
    #[error("no matching signature")]
    Signature,
    /// A header is too long or carries too many signatures; refused before any HMAC.
    #[error("malformed webhook: {0}")]
    Malformed(&'static str),
}

impl WebhookError {
    /// The HTTP answer: 400 for a malformed request, 401 for one that is not authentic.
    fn status(&self) -> StatusCode {
        match self {
            Self::MissingHeader(_) | Self::Malformed(_) => StatusCode::BAD_REQUEST,
            Self::BadSecret | Self::Timestamp | Self::Signature => StatusCode::UNAUTHORIZED,
        }
    }
}

/// A webhook signing secret, decoded once.
#[derive(Clone)]
pub(crate) struct WebhookSecret(Vec<u8>);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(REDACTED)")
    }
}

impl WebhookSecret {
    /// `whsec_<base64>` (the prefix may be left out), decoding to at least 16 bytes.
    pub(crate) fn parse(secret: &str) -> Result<Self, WebhookError> {
        let secret = secret.trim();
        let key = STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
            .map_err(|_| WebhookError::BadSecret)?;
        if key.len() < MIN_KEY_BYTES {
            return Err(WebhookError::BadSecret);
        }
        Ok(Self(key))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }

    /// Verifies a delivery as of `now`; returns its `webhook-id`.
    ///
    /// The cheap checks come first (header sizes, the timestamp window, the number of
    /// signatures); then the HMAC is computed once and every `v1` candidate is compared with it
    /// in constant time.
    pub(crate) fn verify<'h>(
        &self,
        headers: &'h HeaderMap,
        body: &[u8],
        now: i64,
    ) -> Result<&'h str, WebhookError> {
        let header = |name: &'static str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or(WebhookError::MissingHeader(name))
        };
        let id = header("webhook-id")?;
        let timestamp = header("webhook-timestamp")?;
        let signatures = header("webhook-signature")?;
        if id.is_empty() || id.len() > MAX_WEBHOOK_ID {
            return Err(WebhookError::Malformed("webhook-id is empty or too long"));
        }
        if signatures.len() > MAX_WEBHOOK_SIGNATURE_HEADER {
            return Err(WebhookError::Malformed("webhook-signature is too long"));
        }
        let ts: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| WebhookError::Timestamp)?;
        // `abs_diff`: `now - ts` overflows for timestamps near `i64::MIN` or `i64::MAX`.
        if now.abs_diff(ts) > WEBHOOK_TOLERANCE_SECS.unsigned_abs() {
            return Err(WebhookError::Timestamp);
        }
        let entries = signatures.split(' ').filter(|e| !e.is_empty());
        if entries.clone().count() > MAX_WEBHOOK_SIGNATURES {
            return Err(WebhookError::Malformed("too many signatures"));
        }
        let mut mac = self.mac();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        let expected = mac.finalize();
        for entry in entries {
            let Some(candidate) = entry.strip_prefix("v1,") else {
                continue;
            };
            let Ok(candidate) = STANDARD.decode(candidate) else {
                continue;
            };
            if candidate.len() != 32 {
                continue;
            }
            // `CtOutput` compares in constant time.
            let candidate =
                CtOutput::<Hmac<Sha256>>::new(GenericArray::clone_from_slice(&candidate));
            if candidate == expected {
                return Ok(id);
            }
        }
        Err(WebhookError::Signature)
    }

    /// The `webhook-signature` value (`v1,<base64>`) for a delivery.
    fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// Verifies a Standard Webhooks signature, at the current time.
///
/// ```
/// use tower_oidc_auth::{verify_webhook, WebhookError};
/// let headers = http::HeaderMap::new();
/// assert_eq!(
///     verify_webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &headers, b"{}"),
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
    WebhookSecret::parse(secret)?
        .verify(headers, body, now)
        .map(|_| ())
}

/// Signs a payload the Standard Webhooks way: the `webhook-signature` value (`v1,<base64>`).
/// For tests and for providers simulated in tests.
pub fn sign_webhook(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, WebhookError> {
    Ok(WebhookSecret::parse(secret)?.sign(id, timestamp, body))
}

/// A verified webhook event: Scalekit's envelope, with the payload left as JSON.
///
/// The envelope follows Scalekit's OpenAPI specification (every event of its `webhooks:`
/// section): `id` (`evt_...`), `type`, `occurred_at`, `environment_id`, `organization_id` (for
/// events about an organization), `object` and `data`. Handlers registered with
/// [`AuthConfig::on_webhook`](crate::AuthConfig::on_webhook) receive it after the signature,
/// the timestamp window and deduplication were checked.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct WebhookEvent {
    /// The event id (`evt_...`).
    pub id: String,
    /// The event type, e.g. `user.logout` or `organization.created`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The environment the event happened in (`env_...`).
    #[serde(default)]
    pub environment_id: Option<String>,
    /// The organization concerned (`org_...`), when the event is about one.
    #[serde(default)]
    pub organization_id: Option<String>,
    /// The kind of object in `data` (`User`, `Organization`, ...).
    #[serde(default)]
    pub object: Option<String>,
    /// The envelope version (`"1"`).
    #[serde(default)]
    pub spec_version: Option<String>,
    /// The payload, as sent.
    #[serde(default)]
    pub data: Value,
    /// The delivery's `webhook-id` header: the same for every retry of one delivery.
    #[serde(skip)]
    pub webhook_id: String,
    #[serde(default, rename = "occurred_at")]
    occurred_at_text: Option<String>,
}

impl WebhookEvent {
    /// Parses an event body. `id` and `type` are required; everything else is optional.
    pub fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// When the event happened, as sent (RFC 3339, e.g. `2025-12-09T13:14:35.722070822Z`).
    #[must_use]
    pub fn occurred_at_str(&self) -> Option<&str> {
        self.occurred_at_text.as_deref()
    }

    /// When the event happened, in whole seconds since the epoch; `None` when absent or not
    /// RFC 3339.
    #[must_use]
    pub fn occurred_at(&self) -> Option<i64> {
        let text = self.occurred_at_text.as_deref()?;
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(time::OffsetDateTime::unix_timestamp)
    }
}

/// An error a webhook handler returns: the delivery is answered 500 and Scalekit retries it.
pub type WebhookHandlerError = Box<dyn std::error::Error + Send + Sync>;

/// What a webhook handler may return: `()`, or `Result<(), E>` for any error `E`.
pub trait WebhookOutcome: Send {
    /// `Ok` when the event was handled.
    fn into_result(self) -> Result<(), WebhookHandlerError>;
}

impl WebhookOutcome for () {
    fn into_result(self) -> Result<(), WebhookHandlerError> {
        Ok(())
    }
}

impl<E: Into<WebhookHandlerError> + Send> WebhookOutcome for Result<(), E> {
    fn into_result(self) -> Result<(), WebhookHandlerError> {
        self.map_err(Into::into)
    }
}

type HandlerFn =
    dyn Fn(WebhookEvent) -> BoxFuture<'static, Result<(), WebhookHandlerError>> + Send + Sync;

/// An app's webhook handler.
#[derive(Clone)]
pub(crate) struct WebhookHandler(Arc<HandlerFn>);

impl fmt::Debug for WebhookHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookHandler(..)")
    }
}

impl WebhookHandler {
    pub(crate) fn new<F, Fut>(handler: F) -> Self
    where
        F: Fn(WebhookEvent) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: WebhookOutcome,
    {
        Self(Arc::new(move |event| {
            let fut = handler(event);
            Box::pin(async move { fut.await.into_result() })
        }))
    }
}

/// How long a delivery id is remembered: a delivery signed at `ts` verifies while
/// `|now - ts| <= tolerance`, and `ts` may be up to a tolerance ahead of its arrival.
const REMEMBER_SECS: i64 = 2 * WEBHOOK_TOLERANCE_SECS + 1;

/// At most this many delivery ids are remembered at once. When every one is still inside its
/// window, new deliveries are answered 503 (and retried) rather than an id forgotten early.
const MAX_DELIVERIES: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeliveryState {
    InFlight,
    Done,
}

#[derive(Debug, Default)]
struct DeliveryLog {
    /// Delivery id: its state and until when it is remembered. Nothing else is kept per
    /// delivery, so replays of a delivery that keeps failing cost no memory.
    entries: HashMap<String, (DeliveryState, i64)>,
    /// When expired entries are next swept out.
    next_sweep: i64,
    /// The last time a sweep ran (a full log sweeps at most once a second).
    last_sweep: i64,
}

impl DeliveryLog {
    fn sweep(&mut self, now: i64) {
        self.entries.retain(|_, (_, until)| *until > now);
        self.last_sweep = now;
        self.next_sweep = now.saturating_add(REMEMBER_SECS);
    }
}

/// Whether a delivery is new.
#[derive(Debug, PartialEq, Eq)]
enum Begin {
    New,
    Duplicate,
    InFlight,
    Full,
}

/// Deliveries seen within the tolerance window, never evicted early.
#[derive(Debug, Default)]
struct Deliveries(Mutex<DeliveryLog>);

impl Deliveries {
    fn begin(&self, id: &str, now: i64) -> Begin {
        let mut log = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let full = log.entries.len() >= MAX_DELIVERIES;
        if now >= log.next_sweep || (full && now != log.last_sweep) {
            log.sweep(now);
        }
        match log.entries.get(id) {
            Some((DeliveryState::Done, until)) if *until > now => return Begin::Duplicate,
            Some((DeliveryState::InFlight, until)) if *until > now => return Begin::InFlight,
            _ => {}
        }
        if !log.entries.contains_key(id) && log.entries.len() >= MAX_DELIVERIES {
            return Begin::Full;
        }
        let until = now.saturating_add(REMEMBER_SECS);
        log.entries
            .insert(id.to_owned(), (DeliveryState::InFlight, until));
        Begin::New
    }

    /// Ends a delivery begun with [`begin`](Self::begin): remembered as done, or forgotten so
    /// that its retry runs again.
    fn finish(&self, id: &str, done: bool) {
        let mut log = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if done {
            if let Some(entry) = log.entries.get_mut(id) {
                entry.0 = DeliveryState::Done;
            }
        } else {
            log.entries.remove(id);
        }
    }
}

/// Ends a delivery whatever happens to the request: a handler that panics, or a route future
/// dropped by a timeout, forgets the delivery, so that its retry is not refused as in flight.
struct InFlight<'a> {
    deliveries: &'a Deliveries,
    id: &'a str,
    done: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.deliveries.finish(self.id, self.done);
    }
}

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
    pub(crate) fn forget_deliveries(&self) {
        let mut log = self.deliveries.0.lock().unwrap_or_else(|e| e.into_inner());
        *log = DeliveryLog::default();
    }
}

fn answer(status: StatusCode, body: Value) -> Page {
    let mut page = json(status, body);
    page.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    page
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

/// `POST /auth/webhook`: verify, deduplicate, end the session of a `user.logout`, then run the
/// app's handlers.
pub(crate) async fn webhook(shared: Arc<Shared>, headers: HeaderMap, body: Option<Bytes>) -> Page {
    let Some(hooks) = shared.settings.webhooks.as_ref() else {
        return refuse(StatusCode::NOT_FOUND, "not_found");
    };
    let Some(body) = body else {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    };
    let now = shared.clock.now();
    let delivery = match hooks.secret.verify(&headers, &body, now) {
        Ok(id) => id.to_owned(),
        Err(error) => {
            tracing::warn!(%error, "webhook refused");
            let code = match error.status() {
                StatusCode::BAD_REQUEST => "invalid_request",
                _ => "invalid_signature",
            };
            return refuse(error.status(), code);
        }
    };
    let mut event = match WebhookEvent::parse(&body) {
        Ok(event) => event,
        Err(error) => {
            tracing::warn!(%error, "signed webhook is not an event");
            return refuse(StatusCode::BAD_REQUEST, "invalid_event");
        }
    };
    event.webhook_id = delivery;
    match hooks.deliveries.begin(&event.webhook_id, now) {
        Begin::New => {}
        Begin::Duplicate => {
            tracing::debug!(kind = %event.kind, "webhook delivery seen before; acknowledged");
            return answer(
                StatusCode::OK,
                serde_json::json!({"ok": true, "duplicate": true}),
            );
        }
        Begin::InFlight => return refuse(StatusCode::CONFLICT, "delivery_in_progress"),
        Begin::Full => {
            tracing::warn!("too many webhook deliveries inside the tolerance window");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
        }
    }
    let mut in_flight = InFlight {
        deliveries: &hooks.deliveries,
        id: &event.webhook_id,
        done: false,
    };
    let outcome = handle(&shared, hooks, event.clone(), now).await;
    in_flight.done = outcome.is_ok();
    drop(in_flight);
    match outcome {
        Ok(()) => answer(StatusCode::OK, serde_json::json!({"ok": true})),
        Err((status, code)) => refuse(status, code),
    }
}

async fn handle(
    shared: &Shared,
    hooks: &Webhooks,
    event: WebhookEvent,
    now: i64,
) -> Result<(), (StatusCode, &'static str)> {
    if event.kind == "user.logout" {
        end_session(shared, &event, now).await?;
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
    shared: &Shared,
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
    let key = RevocationKey::session(&shared.meta.issuer, sid);
    // Ends the sessions that began by `at`: remembered until the last of them could end.
    let ttl = shared.settings.revocation_lifetime(at, now);
    if let Err(error) = shared.revocations.revoke(key, at, ttl).await {
        tracing::warn!(%error, "could not record the webhook logout");
        return Err((StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable"));
    }
    tracing::debug!("user.logout webhook recorded");
    Ok(())
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
        let body = br#"{"id":"evt_1","type":"organization.created","data":{}}"#;
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
            verify_webhook_at(
                "whsec_b3RoZXJvdGhlcm90aGVyb3RoZXI=",
                &headers("msg_1", 1000, &sig),
                body,
                1000
            ),
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

    #[test]
    fn deliveries_are_remembered_for_the_window_and_failures_forgotten() {
        let log = Deliveries::default();
        assert_eq!(log.begin("a", 1000), Begin::New);
        assert_eq!(log.begin("a", 1000), Begin::InFlight);
        log.finish("a", true);
        assert_eq!(log.begin("a", 1000 + REMEMBER_SECS - 1), Begin::Duplicate);
        assert_eq!(log.begin("a", 1000 + REMEMBER_SECS), Begin::New);
        // A failed delivery is forgotten: its retry runs again.
        assert_eq!(log.begin("b", 2000), Begin::New);
        log.finish("b", false);
        assert_eq!(log.begin("b", 2001), Begin::New);
        // The stale queue slot of the first "b" does not forget the second one early.
        log.finish("b", true);
        assert_eq!(log.begin("b", 2000 + REMEMBER_SECS), Begin::Duplicate);
    }

    #[test]
    fn a_full_log_refuses_rather_than_forgets() {
        let log = Deliveries::default();
        for i in 0..MAX_DELIVERIES {
            assert_eq!(log.begin(&i.to_string(), 0), Begin::New);
        }
        assert_eq!(log.begin("late", 1), Begin::Full);
        assert_eq!(log.begin("0", 1), Begin::InFlight, "nothing was evicted");
        assert_eq!(
            log.begin("late", REMEMBER_SECS),
            Begin::New,
            "room once the window passed"
        );
    }

    #[test]
    fn signature_header_limits() {
        let body = br#"{"id":"evt_1","type":"x"}"#;
        let good = sign_webhook(SECRET, "msg_1", 1000, body).unwrap();
        let at = |sig: &str| verify_webhook_at(SECRET, &headers("msg_1", 1000, sig), body, 1000);
        let within = format!(
            "{} {good}",
            vec!["v1,AAAA"; MAX_WEBHOOK_SIGNATURES - 1].join(" ")
        );
        assert_eq!(at(&within), Ok(()));
        let over = format!(
            "{} {good}",
            vec!["v1,AAAA"; MAX_WEBHOOK_SIGNATURES].join(" ")
        );
        assert_eq!(
            at(&over),
            Err(WebhookError::Malformed("too many signatures"))
        );
        let long = format!("{good} {}", " ".repeat(MAX_WEBHOOK_SIGNATURE_HEADER));
        assert_eq!(
            at(&long),
            Err(WebhookError::Malformed("webhook-signature is too long"))
        );
        // Truncated, padded or over-long candidates never match.
        for bad in [
            &good[..good.len() - 2],
            &format!("{good}AA"),
            "v1,",
            "v1,====",
        ] {
            assert_eq!(at(bad), Err(WebhookError::Signature), "{bad}");
        }
    }

    #[test]
    fn secrets_are_checked_once() {
        for bad in ["", "whsec_", "whsec_***", "whsec_c2hvcnQ=", "not base64"] {
            assert!(WebhookSecret::parse(bad).is_err(), "{bad}");
        }
        assert!(WebhookSecret::parse(SECRET).is_ok());
        // The prefix is optional, as in the Standard Webhooks libraries.
        assert!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        assert_eq!(
            format!("{:?}", WebhookSecret::parse(SECRET).unwrap()),
            "WebhookSecret(REDACTED)"
        );
    }

    /// Found by the `webhook` fuzz target: `now - ts` overflowed (a panic in debug builds) for a
    /// timestamp far in the past or future. Such timestamps are refused like any stale one. In
    /// release builds `ts = now - 2^63` wrapped to `i64::MIN`, whose `abs()` stays negative: the
    /// tolerance check passed.
    #[test]
    fn extreme_timestamps_are_refused_without_overflow() {
        let body = br#"{"id":"evt_1","type":"organization.created"}"#;
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
