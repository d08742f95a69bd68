//! The loopback move of the login route: a login asked for on another loopback name than the
//! redirect URL's (`localhost` against `127.0.0.1`, another port) first goes to the same path
//! and query on the redirect URL's origin. Otherwise the transaction cookie would be set for one
//! host and the callback come back to the other, and the first sign-in would fail as expired.
//!
//! A dev proxy that rewrites `Host` (Vite's or webpack's `changeOrigin`) without adding
//! forwarding headers brings the moved request back with the old `Host`: moving it again would
//! loop for ever. So the move adds a sign to the query, [`MOVED_PARAM`]: sealed with the cookie
//! keys, bound to the path and query it moves, and good for [`MOVED_FOR_SECS`]. A login that
//! carries a valid sign is not moved again. Nothing the browser or another site brings can
//! stand in for it (a cookie could be planted by any app on `localhost`, a `Referer` sent from
//! anywhere), and a later login without it, on the same name, is moved again.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::request::Parts;
use sha2::{Digest, Sha256};

use crate::state::Shared;

/// The query parameter that carries the move's sign.
const MOVED_PARAM: &str = "login_moved";

/// How long a sign stops a second move: long enough for a proxy's round trip, short enough
/// that a replayed link is moved again.
const MOVED_FOR_SECS: i64 = 60;

/// The URL to move this login to, or `None` to start the login here.
///
/// Only between loopback origins: behind a proxy the `Host` header may name an inner host, and
/// sending that browser anywhere would loop.
pub(super) fn loopback_alias(shared: &Shared, parts: &Parts) -> Option<String> {
    let origin = &shared.settings.origin;
    // Through a proxy that says so (a dev server forwarding to the app), the `Host` the app
    // sees is not the one the browser used: moving the browser would send it through the proxy
    // again.
    let proxied = ["x-forwarded-host", "forwarded", "x-forwarded-for", "via"]
        .iter()
        .any(|name| parts.headers.contains_key(*name));
    if proxied {
        return None;
    }
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))?;
    let ours = url::Url::parse(origin).ok()?;
    let asked = url::Url::parse(&format!("{}://{host}", ours.scheme())).ok()?;
    // The browser asked this machine: `localhost` and its subdomains (which browsers resolve
    // to loopback, RFC 6761), a loopback address, or the unspecified address (`0.0.0.0`, `[::]`,
    // which dev servers print and browsers on Linux and macOS connect to here).
    let local = |u: &url::Url, unspecified: bool| match u.host() {
        Some(url::Host::Domain(d)) => {
            let d = d.to_ascii_lowercase();
            d == "localhost" || (d.ends_with(".localhost") && !d.starts_with('.'))
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || (unspecified && ip.is_unspecified()),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback() || (unspecified && ip.is_unspecified()),
        None => false,
    };
    if !local(&ours, false) || !local(&asked, true) || asked.origin() == ours.origin() {
        return None;
    }
    let path = parts.uri.path();
    let query = parts.uri.query();
    let (target, sign) = split_sign(path, query);
    // Bound to the name it was made on too: a sign made on one name stops no move on another.
    let target = format!("{}{target}", asked.origin().ascii_serialization());
    let now = shared.clock.now();
    if sign.is_some_and(|s| sign_is_valid(shared, &target, &s, now)) {
        tracing::debug!("login moved already, back on another loopback name: a proxy");
        return None;
    }
    static LOGGED: std::sync::Once = std::sync::Once::new();
    LOGGED.call_once(|| {
        tracing::info!(
            asked = %asked.origin().ascii_serialization(),
            redirect_origin = %origin,
            "login asked for on another loopback name than the redirect URL's: sending the \
             browser there first, so the sign-in cookie and the callback share one host"
        );
    });
    let sign = make_sign(shared, &target, now);
    let encoded: String = url::form_urlencoded::byte_serialize(sign.as_bytes()).collect();
    let (path_query, _) = split_sign(path, query);
    let joiner = if path_query.ends_with('?') { "" } else { "&" };
    Some(format!(
        "{origin}{path_query}{joiner}{MOVED_PARAM}={encoded}"
    ))
}

/// The login's query without the move's sign: the sign is the move's, not the login's, and
/// does not count towards the query's limits.
pub(super) fn query_without_sign(query: Option<&str>) -> Option<std::borrow::Cow<'_, str>> {
    let query = query?;
    if !query.contains("_moved") && !query.contains('%') {
        return Some(std::borrow::Cow::Borrowed(query));
    }
    let (kept, _) = kept_parts(query);
    Some(std::borrow::Cow::Owned(kept.join("&")))
}

/// The path and query without any [`MOVED_PARAM`] (always with a `?`, so that the form is one
/// whether the query was empty or absent), and the last sign found, decoded.
fn split_sign(path: &str, query: Option<&str>) -> (String, Option<String>) {
    let (kept, sign) = kept_parts(query.unwrap_or(""));
    (format!("{path}?{}", kept.join("&")), sign)
}

/// The parts of a query that are not [`MOVED_PARAM`], and the last sign found, decoded.
fn kept_parts(query: &str) -> (Vec<&str>, Option<String>) {
    let mut sign = None;
    let mut kept: Vec<&str> = Vec::new();
    for part in query.split('&') {
        let ours = url::form_urlencoded::parse(part.as_bytes())
            .next()
            .filter(|(name, _)| name == MOVED_PARAM);
        match ours {
            Some((_, value)) => sign = Some(value.into_owned()),
            None if part.is_empty() && kept.is_empty() => {}
            None => kept.push(part),
        }
    }
    (kept, sign)
}

/// The name a sign is sealed under: bound to this layer's cookies, so no other sealed value of
/// the app (a cookie, a login link) opens as a sign.
fn sealed_name(shared: &Shared) -> String {
    format!("login-moved {}", shared.cookies.session.name)
}

fn digest(target: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(target.as_bytes()))
}

fn make_sign(shared: &Shared, target: &str, now: i64) -> String {
    let until = now.saturating_add(MOVED_FOR_SECS);
    shared
        .cookies
        .seal(&sealed_name(shared), &format!("{until}.{}", digest(target)))
}

fn sign_is_valid(shared: &Shared, target: &str, sign: &str, now: i64) -> bool {
    let Some(opened) = shared.cookies.open(&sealed_name(shared), sign) else {
        return false;
    };
    let Some((until, bound)) = opened.split_once('.') else {
        return false;
    };
    let Ok(until) = until.parse::<i64>() else {
        return false;
    };
    // Expired, or (a clock moved back) further ahead than a sign is ever made for.
    let fresh = now <= until && until.checked_sub(now).is_some_and(|d| d <= MOVED_FOR_SECS);
    fresh && bound == digest(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sign_is_split_off_wherever_it_stands() {
        let (t, s) = split_sign("/auth/login", None);
        assert_eq!((t.as_str(), s), ("/auth/login?", None));
        let (t, s) = split_sign("/auth/login", Some(""));
        assert_eq!((t.as_str(), s), ("/auth/login?", None));
        let (t, s) = split_sign("/auth/login", Some("return_to=%2Fme&login_moved=a%2Bb"));
        assert_eq!(
            (t.as_str(), s.as_deref()),
            ("/auth/login?return_to=%2Fme", Some("a+b"))
        );
        let (t, s) = split_sign("/l", Some("login_moved=x&a=1&login_moved=y"));
        assert_eq!((t.as_str(), s.as_deref()), ("/l?a=1", Some("y")));
        // Percent-encoded name: the same parameter to the query parser.
        let (t, s) = split_sign("/l", Some("%6Cogin_moved=z&a=1"));
        assert_eq!((t.as_str(), s.as_deref()), ("/l?a=1", Some("z")));
    }
}
