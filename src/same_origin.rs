//! Where a request comes from: the rules that keep cross-site requests from acting for the user.
//!
//! Logging out and choosing a tenant at login change state at the provider, so a link on another
//! site must not be able to trigger them. A request counts as coming from the app itself when
//! every signal the browser gave says so:
//!
//! - `Origin`, when present (every POST, cross-origin fetches), is the app's origin;
//! - `Sec-Fetch-Site`, when present (current browsers), is `same-origin`;
//! - with neither (older browsers), the `Referer` has the app's origin.
//!
//! Browsers set all three themselves; a page cannot forge them. Other clients can, but they act
//! for themselves, not for a victim. Anything else is treated as cross-site: no signal at all,
//! `same-site` (a sibling subdomain), `cross-site`, `Origin: null`, and `Sec-Fetch-Site: none`.
//! `none` means "the user started it", which covers a typed URL but also a link opened from a
//! mail or chat application, and Chrome keeps it across redirects that such a navigation
//! follows (w3c/webappsec-fetch-metadata#39): an attacker's link in an e-mail arrives as `none`.
//! A user who types `/auth/logout` gets the confirmation page, one click more.

use http::{header, HeaderMap};

/// Whether the browser says this request comes from `origin` (`scheme://host[:port]`).
pub(crate) fn is_same_origin(headers: &HeaderMap, origin: &str) -> bool {
    let origin_header = headers.get(header::ORIGIN);
    if let Some(o) = origin_header {
        if o.as_bytes() != origin.as_bytes() {
            return false;
        }
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    if origin_header.is_some() {
        return true;
    }
    headers
        .get(header::REFERER)
        .and_then(|r| r.to_str().ok())
        .and_then(|r| url::Url::parse(r).ok())
        .is_some_and(|r| r.origin().ascii_serialization() == origin)
}

/// Whether a GET is a top-level navigation from the app itself (a link the user followed), not a
/// subresource (`<img src>`, `<script src>`, `fetch`) that same-origin content could embed:
/// same-origin, and `Sec-Fetch-Mode: navigate` when the browser sends fetch metadata.
pub(crate) fn is_same_origin_navigation(headers: &HeaderMap, origin: &str) -> bool {
    is_same_origin(headers, origin)
        && (!headers.contains_key("sec-fetch-site")
            || headers
                .get("sec-fetch-mode")
                .is_some_and(|m| m.as_bytes() == b"navigate"))
}

#[cfg(test)]
mod tests {
    use super::{is_same_origin, is_same_origin_navigation};
    use http::{HeaderMap, HeaderValue};

    const APP: &str = "https://app.example.com";

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn signals() {
        let yes = [
            h(&[("origin", APP)]),
            h(&[("origin", APP), ("sec-fetch-site", "same-origin")]),
            h(&[("sec-fetch-site", "same-origin")]),
            h(&[("referer", "https://app.example.com/page?x=1")]),
        ];
        for m in &yes {
            assert!(is_same_origin(m, APP), "{m:?}");
        }
        let no = [
            h(&[]),
            h(&[("sec-fetch-site", "none")]),
            h(&[("origin", "null")]),
            h(&[("origin", "https://evil.example")]),
            h(&[("origin", "https://app.example.com.evil.example")]),
            h(&[("origin", APP), ("sec-fetch-site", "cross-site")]),
            h(&[("sec-fetch-site", "same-site")]),
            h(&[("sec-fetch-site", "cross-site")]),
            h(&[
                ("sec-fetch-site", "cross-site"),
                ("referer", "https://app.example.com/"),
            ]),
            h(&[("referer", "https://app.example.com.evil.example/")]),
            h(&[("referer", "http://app.example.com/")]),
            h(&[("referer", "https://app.example.com:8443/")]),
            h(&[("referer", "not a url")]),
        ];
        for m in &no {
            assert!(!is_same_origin(m, APP), "{m:?}");
        }
    }

    #[test]
    fn navigations() {
        let link = h(&[
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-mode", "navigate"),
        ]);
        assert!(is_same_origin_navigation(&link, APP));
        let old_browser = h(&[("referer", "https://app.example.com/")]);
        assert!(is_same_origin_navigation(&old_browser, APP));
        for m in [
            h(&[
                ("sec-fetch-site", "same-origin"),
                ("sec-fetch-mode", "no-cors"),
            ]),
            h(&[
                ("sec-fetch-site", "same-origin"),
                ("sec-fetch-mode", "cors"),
            ]),
            h(&[("sec-fetch-site", "same-origin")]),
            h(&[("sec-fetch-site", "none"), ("sec-fetch-mode", "navigate")]),
        ] {
            assert!(!is_same_origin_navigation(&m, APP), "{m:?}");
        }
    }
}
