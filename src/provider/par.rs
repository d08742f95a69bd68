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
            // Checked where it is used: with `Off`, an endpoint never called cannot fail the
            // build.
            _ => match endpoint {
                Some(url) => {
                    super::check_url("pushed_authorization_request_endpoint", &url)?;
                    Ok(Some(url))
                }
                None => Ok(None),
            },
        }
    }
}

/// The longest `request_uri` accepted from the provider (it is put into a redirect URL).
const MAX_REQUEST_URI: usize = 2048;

/// RFC 9126 section 2.2: the answer of the pushed authorization request endpoint.
#[derive(Debug, Deserialize)]
pub(crate) struct PushedRequest {
    pub(crate) request_uri: String,
    /// Seconds the `request_uri` is valid: REQUIRED, a positive number (RFC 9126 section 2.2;
    /// a numeric string is read too, as some token endpoints send `expires_in`).
    #[serde(default)]
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
        let lifetime = match &self.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        if lifetime.is_none_or(|secs| secs == 0) {
            return Err(ProviderError::Malformed(
                "the pushed authorization request endpoint gave no positive expires_in".into(),
            ));
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
        let used = |par: &str, mode: Par| {
            provider
                .accept(meta(par))
                .and_then(|m| mode.endpoint(&m))
                .map_err(|e| e.to_string())
        };
        for mode in [Par::Auto, Par::Required] {
            let error = used("http://op.example/par", mode).unwrap_err();
            assert!(
                error.contains("pushed_authorization_request_endpoint"),
                "{error}"
            );
            assert!(used("https://op.example/par", mode).is_ok());
            assert!(used("http://127.0.0.1:9/par", mode).is_ok());
        }
        // Never used: never checked.
        assert_eq!(used("http://op.example/par", Par::Off), Ok(None));
    }

    #[test]
    fn request_uri_checks() {
        let ok = |uri: &str| {
            PushedRequest {
                request_uri: uri.into(),
                expires_in: Some(60.into()),
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

    /// RFC 9126 section 2.2: `expires_in` is required, a positive number of seconds.
    #[test]
    fn expires_in_checks() {
        let ok = |expires_in: Option<serde_json::Value>| {
            PushedRequest {
                request_uri: "urn:ietf:params:oauth:request_uri:x".into(),
                expires_in,
            }
            .checked()
            .is_ok()
        };
        assert!(ok(Some(60.into())));
        assert!(ok(Some("90".into())));
        for bad in [
            None,
            Some(serde_json::Value::Null),
            Some(0.into()),
            Some((-5).into()),
            Some(1.5.into()),
            Some("soon".into()),
            Some(serde_json::json!({"s": 60})),
        ] {
            assert!(!ok(bad.clone()), "{bad:?}");
        }
    }
}
