//! URL and path checks shared by the configuration.

use std::net::IpAddr;

use super::error::ConfigError;

/// `http://` on 127.0.0.0/8, `localhost` or `[::1]`.
pub(crate) fn is_loopback_http(url: &url::Url) -> bool {
    if url.scheme() != "http" {
        return false;
    }
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Normalizes a configured path: leading `/`, no trailing `/` (except the root).
pub(crate) fn normalize_path(what: &'static str, path: &str) -> Result<String, ConfigError> {
    if !path.starts_with('/') || path.contains(['?', '#', '\\']) || path.contains("//") {
        return Err(ConfigError::Invalid {
            what,
            reason: format!("{path:?} must be an absolute path like /auth"),
        });
    }
    let trimmed = path.trim_end_matches('/');
    Ok(if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.into()
    })
}
