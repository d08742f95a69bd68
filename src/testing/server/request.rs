//! What an authorization request must be, whether it arrives at the authorize endpoint or is
//! pushed first (RFC 9126): shared by both, so neither imports the other.

use axum::http::StatusCode;
use axum::response::Response;

use super::{oauth_error, Params};
use crate::testing::State;

/// Checks an authorization request; the error is shown, never redirected (as a real provider
/// does for a bad client or redirect URI).
pub(super) fn check_authorize(s: &State, p: &Params) -> Result<(), Box<Response>> {
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    let bad = |error: &str, description: &str| {
        Err(Box::new(oauth_error(
            StatusCode::BAD_REQUEST,
            error,
            description,
        )))
    };
    if !s
        .clients
        .lock()
        .expect("clients lock")
        .contains_key(get("client_id"))
    {
        return bad("invalid_client", "unknown client_id");
    }
    if redirect_target(get("redirect_uri")).is_none() {
        return bad("invalid_request", "redirect_uri");
    }
    if get("response_type") != "code" {
        return bad("unsupported_response_type", "code only");
    }
    if get("code_challenge").is_empty() || get("code_challenge_method") != "S256" {
        return bad("invalid_request", "PKCE S256 required");
    }
    Ok(())
}

/// A redirect URI the test provider sends browsers to. Clients register none, so only hosts no
/// one else can serve are accepted: this machine (loopback), and the names reserved for tests
/// and documentation (RFC 2606 and 6761: `example.com`, `*.example`, `*.test`, `*.invalid`,
/// `*.localhost`), which tests of https deployments use. Never a site someone could own.
pub(super) fn redirect_target(uri: &str) -> Option<url::Url> {
    let url = url::Url::parse(uri).ok()?;
    let local = match url.host()? {
        url::Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            let under = |tld: &str| d == tld || d.ends_with(&format!(".{tld}"));
            ["localhost", "example", "test", "invalid"]
                .iter()
                .any(|tld| under(tld))
                || ["example.com", "example.net", "example.org"]
                    .iter()
                    .any(|name| under(name))
        }
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    (local && matches!(url.scheme(), "http" | "https")).then_some(url)
}
