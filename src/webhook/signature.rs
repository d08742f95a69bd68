//! Standard Webhooks signatures: the secret, verifying and signing.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::digest::{generic_array::GenericArray, CtOutput};
use hmac::{Hmac, Mac};
use http::{HeaderMap, StatusCode};
use sha2::Sha256;

use super::{
    MAX_WEBHOOK_ID, MAX_WEBHOOK_SIGNATURES, MAX_WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TOLERANCE_SECS,
};
use crate::clock::{Clock, SystemClock};

/// The shortest webhook signing key accepted, in bytes (after base64 decoding).
pub(super) const MIN_KEY_BYTES: usize = 16;

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
    pub(super) fn status(&self) -> StatusCode {
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
