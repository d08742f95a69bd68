//! Where a request comes from: the rules that keep cross-site requests from acting for the user.
//!
//! Logging out and choosing a tenant at login change state at the provider, so a link on another
//! site must not be able to trigger them. A request counts as coming from the app itself when
//! every signal the browser gave says so:
//!
//! - `Origin`, when present (every POST, cross-origin fetches), is the app's origin;
//! - `Sec-Fetch-Site`, when present (current browsers), is `same-origin`, or `none` (a typed
//!   URL, a bookmark);
//! - with neither (older browsers), the `Referer` has the app's origin.
//!
//! Browsers set all three themselves; a page cannot forge them. Other clients can, but they act
//! for themselves, not for a victim. Anything else (no signal at all, `same-site` from a sibling
//! subdomain, `cross-site`, `Origin: null`) is cross-site.

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
        return matches!(site.as_bytes(), b"same-origin" | b"none");
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

#[cfg(test)]
mod tests {
    use super::is_same_origin;
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
            h(&[("sec-fetch-site", "none")]),
            h(&[("referer", "https://app.example.com/page?x=1")]),
        ];
        for m in &yes {
            assert!(is_same_origin(m, APP), "{m:?}");
        }
        let no = [
            h(&[]),
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
}
