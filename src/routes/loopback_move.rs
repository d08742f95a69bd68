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

use crate::same_origin::is_same_origin;
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
    if !is_local(&ours, false) || !is_local(&asked, true) || asked.origin() == ours.origin() {
        return None;
    }
    let asked_origin = asked.origin().ascii_serialization();
    let path = parts.uri.path();
    let (target, sign) = split_sign(path, parts.uri.query());
    let now = shared.clock.now();
    // Bound to the name it was made on too: a sign made on one name stops no move on another.
    if sign
        .and_then(|s| open_sign(shared, &target, &s, now))
        .is_some_and(|sign| sign.asked == asked_origin)
    {
        tracing::debug!("login moved already, back on another loopback name: a proxy");
        return None;
    }
    static LOGGED: std::sync::Once = std::sync::Once::new();
    LOGGED.call_once(|| {
        tracing::info!(
            asked = %asked_origin,
            redirect_origin = %origin,
            "login asked for on another loopback name than the redirect URL's: sending the \
             browser there first, so the sign-in cookie and the callback share one host"
        );
    });
    // A login the app's own page asked for (its tenant or account choices, a step-up) keeps
    // that standing after the move, which the browser reports as cross-site.
    let from_app = is_same_origin(&parts.headers, &asked_origin);
    let sign = make_sign(shared, &target, &asked_origin, from_app, now);
    let encoded: String = url::form_urlencoded::byte_serialize(sign.as_bytes()).collect();
    let joiner = if target.ends_with('?') { "" } else { "&" };
    Some(format!("{origin}{target}{joiner}{MOVED_PARAM}={encoded}"))
}

/// Whether this login carries a valid sign of a move that a page of the app asked for (on the
/// other loopback name): its parameters are the app's own choices.
pub(super) fn moved_from_the_app(shared: &Shared, parts: &Parts) -> bool {
    let (target, sign) = split_sign(parts.uri.path(), parts.uri.query());
    sign.and_then(|s| open_sign(shared, &target, &s, shared.clock.now()))
        .is_some_and(|sign| sign.from_app)
}

/// Whether `u` names this machine as browsers reach it: `localhost` and its subdomains (which
/// browsers resolve to loopback, RFC 6761), with or without the root's trailing dot, a loopback
/// address, or (`unspecified`) the unspecified address (`0.0.0.0`, `[::]`, which dev servers
/// print and browsers on Linux and macOS connect to here).
fn is_local(u: &url::Url, unspecified: bool) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => {
            let d = d.to_ascii_lowercase();
            let d = d.strip_suffix('.').unwrap_or(&d);
            d == "localhost" || (d.ends_with(".localhost") && !d.starts_with('.'))
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || (unspecified && ip.is_unspecified()),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback() || (unspecified && ip.is_unspecified()),
        None => false,
    }
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

/// What a sign says, opened.
struct Sign {
    /// The origin the browser asked on, before the move.
    asked: String,
    /// Whether a page of that origin asked for the login.
    from_app: bool,
}

fn make_sign(shared: &Shared, target: &str, asked: &str, from_app: bool, now: i64) -> String {
    let until = now.saturating_add(MOVED_FOR_SECS);
    let plain = serde_json::json!({
        "u": until,
        "a": asked,
        "f": from_app,
        "d": digest(target),
    });
    shared
        .cookies
        .seal(&sealed_name(shared), &plain.to_string())
}

/// The sign, if it was made by this layer for `target` (path and query, without the sign) and
/// is still fresh at `now`.
fn open_sign(shared: &Shared, target: &str, sign: &str, now: i64) -> Option<Sign> {
    let opened = shared.cookies.open(&sealed_name(shared), sign)?;
    let v: serde_json::Value = serde_json::from_str(&opened).ok()?;
    let until = v.get("u")?.as_i64()?;
    // Expired, or (a clock moved back) further ahead than a sign is ever made for.
    let fresh = now <= until && until.checked_sub(now).is_some_and(|d| d <= MOVED_FOR_SECS);
    if !fresh || v.get("d")?.as_str()? != digest(target) {
        return None;
    }
    Some(Sign {
        asked: v.get("a")?.as_str()?.to_owned(),
        from_app: v.get("f")?.as_bool()?,
    })
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
