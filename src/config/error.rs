//! [`ConfigError`]: what is wrong with a configuration, and which setting to fix.

use std::fmt;

use crate::provider::http::ProviderError;

/// How to make a cookie key, in every message about one.
const KEY_HINT: &str = "generate one with `openssl rand -base64 64`";

/// A configuration problem, reported by [`AuthLayerBuilder::build`](crate::AuthLayerBuilder::build)
/// or [`AuthLayerBuilder::from_env`](crate::AuthLayerBuilder::from_env).
///
/// Its `Display` names the setting, the environment variable behind it, and the fix. Its
/// `Debug` (what `fn main() -> Result<..>` prints) is the same message followed by the chain of
/// causes.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required setting was not given.
    #[error("{}", missing(.0))]
    Missing(&'static str),
    /// A URL setting is not usable.
    #[error("invalid {what} {value:?}: {reason}{}", url_var(what))]
    InvalidUrl {
        /// Which setting.
        what: &'static str,
        /// The value given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// A cookie key is too short or not valid base64.
    #[error("invalid cookie key: {0}; {KEY_HINT}")]
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
    #[error("{var}: {reason}{}", env_hint(var))]
    Env {
        /// The variable.
        var: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The discovery document could not be fetched or read.
    #[error(
        "cannot read the provider's discovery document {url}: {}. Is the issuer URL right?",
        crate::error::Root(source)
    )]
    Discovery {
        /// The discovery URL.
        url: String,
        /// The underlying failure.
        #[source]
        source: ProviderError,
    },
    /// The provider's signing keys could not be fetched or read.
    #[error(
        "cannot read the provider's signing keys {url}: {}",
        crate::error::Root(source)
    )]
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

impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::error::report(self, f)
    }
}

/// The message for a missing setting: the environment variable behind it, and the setter.
fn missing(what: &str) -> String {
    let (name, vars, setter) = match what {
        "provider" => (
            "provider",
            "SCALEKIT_ENVIRONMENT_URL (or OIDC_ISSUER)",
            ".provider()",
        ),
        "client_id" => (
            "client id",
            "SCALEKIT_CLIENT_ID (or OIDC_CLIENT_ID)",
            ".client_id()",
        ),
        "client_secret" => (
            "client secret",
            "SCALEKIT_CLIENT_SECRET (or OIDC_CLIENT_SECRET)",
            ".client_secret()",
        ),
        "redirect_url" => (
            "redirect URL (the callback URL registered at the provider)",
            "AUTH_REDIRECT_URL",
            ".redirect_url()",
        ),
        "cookie_key" => {
            return format!(
                "missing cookie key: set AUTH_COOKIE_KEY, or call `.cookie_key()`; {KEY_HINT}"
            )
        }
        other => return format!("missing setting: {other}"),
    };
    format!("missing {name}: set {vars}, or call `{setter}`")
}

fn env_hint(var: &str) -> String {
    match var {
        "AUTH_COOKIE_KEY" => format!("; {KEY_HINT}"),
        _ => String::new(),
    }
}

/// The environment variable behind a URL setting, for its messages.
fn url_var(what: &str) -> &'static str {
    match what {
        "issuer" => " (OIDC_ISSUER)",
        "Scalekit environment URL" => " (SCALEKIT_ENVIRONMENT_URL)",
        "redirect_url" => " (AUTH_REDIRECT_URL)",
        _ => "",
    }
}
