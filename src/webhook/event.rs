//! The event envelope and the app's webhook handlers.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;

/// A verified webhook event: Scalekit's envelope, with the payload left as JSON.
///
/// The envelope follows Scalekit's OpenAPI specification (every event of its `webhooks:`
/// section): `id` (`evt_...`), `type`, `occurred_at`, `environment_id`, `organization_id` (for
/// events about an organization), `object` and `data`. Handlers registered with
/// [`AuthLayerBuilder::on_webhook`](crate::AuthLayerBuilder::on_webhook) receive it after the
/// signature,
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

pub(super) type HandlerFn =
    dyn Fn(WebhookEvent) -> BoxFuture<'static, Result<(), WebhookHandlerError>> + Send + Sync;

/// An app's webhook handler.
#[derive(Clone)]
pub(crate) struct WebhookHandler(pub(super) Arc<HandlerFn>);

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
