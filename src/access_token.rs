//! The user's access token, handed to handlers ([`AccessToken`]).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The user's access token, for calling APIs as the user.
///
/// The layer has already refreshed it if it was due, so it is not expired when the handler gets
/// it. For a bearer request it is the token presented. It never appears in `Debug` output or in
/// the layer's logs. **Never send it to the browser**: it is kept in an encrypted HttpOnly
/// cookie so that scripts cannot read it.
///
/// ```no_run
/// use tower_oidc_auth::AccessToken;
///
/// async fn orders(token: AccessToken) -> Result<String, String> {
///     reqwest::Client::new()
///         .get("https://api.example.com/orders")
///         .bearer_auth(token.as_str())
///         .send()
///         .await
///         .map_err(|e| e.to_string())?
///         .text()
///         .await
///         .map_err(|e| e.to_string())
/// }
/// ```
#[derive(Clone)]
pub struct AccessToken {
    token: Arc<str>,
    expires_at: i64,
}

impl AccessToken {
    pub(crate) fn new(token: impl Into<Arc<str>>, expires_at: i64) -> Self {
        Self {
            token: token.into(),
            expires_at,
        }
    }

    /// The token, as sent in `Authorization: Bearer <token>`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.token
    }

    /// When the token expires (its `exp`, or for an opaque token what the token endpoint said).
    #[must_use]
    pub fn expires_at(&self) -> SystemTime {
        let secs = u64::try_from(self.expires_at).unwrap_or(0);
        UNIX_EPOCH + Duration::from_secs(secs)
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"REDACTED")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Reads the [`AccessToken`] of a request the layer authenticated: `request.access_token()`.
///
/// Implemented for `http::Request`, `http::request::Parts` and, with the `tonic` feature,
/// `tonic::Request`, for tower services and tonic methods (axum handlers take the
/// [`AccessToken`] extractor). `None` when the request is not signed in.
///
/// ```
/// use tower_oidc_auth::AccessTokenExt;
///
/// fn upstream_authorization<B>(request: &http::Request<B>) -> Option<String> {
///     request.access_token().map(|t| format!("Bearer {}", t.as_str()))
/// }
/// # let _ = upstream_authorization::<()>;
/// ```
pub trait AccessTokenExt {
    /// The access token of the signed-in request: the session's (refreshed if it was due) or the
    /// bearer token presented.
    fn access_token(&self) -> Option<AccessToken>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_token_debug_is_redacted() {
        let t = AccessToken::new("eyJsecret", 1_700_000_000);
        let shown = format!("{t:?}");
        assert!(!shown.contains("eyJsecret"), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
        assert_eq!(t.as_str(), "eyJsecret");
        assert_eq!(
            t.expires_at(),
            UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
    }
}
