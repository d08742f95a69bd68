//! Pushed authorization requests (RFC 9126): whether the layer uses them, and the endpoint's
//! answer.

use serde::Deserialize;

use super::{ProviderError, ProviderMetadata};
use crate::config::error::ConfigError;

/// Whether the login route pushes its authorization request to the provider first (RFC 9126)
/// and sends the browser only `client_id` and a `request_uri`
/// ([`AuthLayerBuilder::pushed_authorization_requests`]).
///
/// Pushed requests keep the parameters out of the browser's address bar and history, and are
/// authenticated with the client's credentials.
///
/// [`AuthLayerBuilder::pushed_authorization_requests`]: crate::AuthLayerBuilder::pushed_authorization_requests
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Par {
    /// When discovery lists a `pushed_authorization_request_endpoint` (the default).
    #[default]
    Auto,
    /// Always; the build fails when discovery lists no such endpoint.
    Required,
    /// Never; the build fails when discovery says
    /// `require_pushed_authorization_requests: true`.
    Off,
}

impl Par {
    /// The endpoint to push to, if any, for this provider; an error when the setting and the
    /// provider disagree.
    pub(crate) fn endpoint(self, meta: &ProviderMetadata) -> Result<Option<String>, ConfigError> {
        let endpoint = meta.pushed_authorization_request_endpoint.clone();
        match self {
            Self::Off if meta.require_pushed_authorization_requests => Err(ConfigError::Metadata(
                "the provider requires pushed authorization requests \
                     (require_pushed_authorization_requests), but they are switched off; use \
                     .pushed_authorization_requests(Par::Auto) or AUTH_PAR=auto"
                    .into(),
            )),
            Self::Off => Ok(None),
            Self::Required | Self::Auto if endpoint.is_none() => {
                if self == Self::Required || meta.require_pushed_authorization_requests {
                    Err(ConfigError::Metadata(
                        "pushed authorization requests are required, but discovery lists no \
                         pushed_authorization_request_endpoint"
                            .into(),
                    ))
                } else {
                    Ok(None)
                }
            }
            _ => Ok(endpoint),
        }
    }
}

/// The longest `request_uri` accepted from the provider (it is put into a redirect URL).
const MAX_REQUEST_URI: usize = 2048;

/// RFC 9126 section 2.2: the answer of the pushed authorization request endpoint.
#[derive(Debug, Deserialize)]
pub(crate) struct PushedRequest {
    pub(crate) request_uri: String,
    /// Seconds the `request_uri` is valid; RFC 9126 makes it REQUIRED, read as optional here.
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) expires_in: Option<serde_json::Value>,
}

impl PushedRequest {
    /// Refuses a `request_uri` that is empty, too long, or not made of printable ASCII.
    pub(crate) fn checked(self) -> Result<Self, ProviderError> {
        let uri = &self.request_uri;
        if uri.is_empty()
            || uri.len() > MAX_REQUEST_URI
            || !uri.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ProviderError::Malformed(format!(
                "unusable request_uri from the pushed authorization request endpoint ({} bytes)",
                uri.len()
            )));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(endpoint: Option<&str>, required: bool) -> ProviderMetadata {
        ProviderMetadata {
            pushed_authorization_request_endpoint: endpoint.map(str::to_owned),
            require_pushed_authorization_requests: required,
            ..Default::default()
        }
    }

    #[test]
    fn modes_against_discovery() {
        let par = Some("https://op.example/par");
        assert_eq!(
            Par::Auto.endpoint(&meta(par, false)).unwrap().as_deref(),
            par
        );
        assert_eq!(Par::Auto.endpoint(&meta(None, false)).unwrap(), None);
        assert!(Par::Auto.endpoint(&meta(None, true)).is_err());
        assert_eq!(
            Par::Required
                .endpoint(&meta(par, false))
                .unwrap()
                .as_deref(),
            par
        );
        assert!(Par::Required.endpoint(&meta(None, false)).is_err());
        assert_eq!(Par::Off.endpoint(&meta(par, false)).unwrap(), None);
        let err = Par::Off.endpoint(&meta(par, true)).unwrap_err().to_string();
        assert!(
            err.contains("require_pushed_authorization_requests"),
            "{err}"
        );
    }

    /// The endpoint is checked like the others: https, or http on a loopback host.
    #[test]
    fn the_endpoint_must_be_https() {
        let meta = |par: &str| ProviderMetadata {
            issuer: "https://op.example".into(),
            authorization_endpoint: "https://op.example/authorize".into(),
            token_endpoint: "https://op.example/token".into(),
            jwks_uri: "https://op.example/keys".into(),
            pushed_authorization_request_endpoint: Some(par.into()),
            ..Default::default()
        };
        let provider = crate::Provider::discover("https://op.example");
        let error = provider
            .accept(meta("http://op.example/par"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("pushed_authorization_request_endpoint"),
            "{error}"
        );
        assert!(provider.accept(meta("https://op.example/par")).is_ok());
        assert!(provider.accept(meta("http://127.0.0.1:9/par")).is_ok());
    }

    #[test]
    fn request_uri_checks() {
        let ok = |uri: &str| {
            PushedRequest {
                request_uri: uri.into(),
                expires_in: None,
            }
            .checked()
            .is_ok()
        };
        // RFC 9126 section 2.2's example.
        assert!(ok(
            "urn:ietf:params:oauth:request_uri:6esc_11ACC5bwc014ltc14eY22c"
        ));
        assert!(!ok(""));
        assert!(!ok("urn:x y"));
        assert!(!ok(&"a".repeat(MAX_REQUEST_URI + 1)));
    }
}
