//! [`ConfigError`]: what is wrong with a configuration, and which setting to fix.

use crate::provider::http::ProviderError;

/// A configuration problem, reported by [`AuthLayerBuilder::build`](crate::AuthLayerBuilder::build)
/// or [`AuthLayerBuilder::from_env`](crate::AuthLayerBuilder::from_env).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required setting was not given.
    #[error("missing setting: {0}")]
    Missing(&'static str),
    /// A URL setting is not usable.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidUrl {
        /// Which setting.
        what: &'static str,
        /// The value given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// A cookie key is too short or not valid base64.
    #[error("invalid cookie key: {0}")]
    CookieKey(String),
    /// A setting has a value out of range.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which setting.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// An environment variable is missing or unusable.
    #[error("environment variable {var}: {reason}")]
    Env {
        /// The variable.
        var: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The discovery document could not be fetched or read.
    #[error("cannot read provider discovery at {url}: {source}")]
    Discovery {
        /// The discovery URL.
        url: String,
        /// The underlying failure.
        #[source]
        source: ProviderError,
    },
    /// The provider's signing keys could not be fetched or read.
    #[error("cannot read provider keys at {url}: {source}")]
    Jwks {
        /// The JWKS URL.
        url: String,
        /// The underlying failure.
        #[source]
        source: ProviderError,
    },
    /// The discovery document names another issuer.
    #[error(
        "issuer mismatch: configured {expected:?}, but discovery publishes {found:?}; configure \
         the issuer exactly as the provider publishes it"
    )]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The issuer in the discovery document.
        found: String,
    },
    /// The provider metadata is incomplete or unsafe.
    #[error("provider metadata: {0}")]
    Metadata(String),
}
