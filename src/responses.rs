//! What a request gets when the layer answers it: redirects, error pages, and the
//! unauthenticated response for browsers, APIs and gRPC.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::Full;

/// The body of responses the layer makes itself.
pub(crate) type Page = Response<Full<Bytes>>;

/// Who is asking, for choosing the unauthenticated response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Client {
    /// A top-level page load: redirect to login.
    Browser,
    /// `application/grpc*`: a trailers-only gRPC status.
    Grpc,
    /// Anything else: 401 with `WWW-Authenticate`.
    Api,
}

impl Client {
    pub(crate) fn of(method: &Method, headers: &http::HeaderMap) -> Self {
        let has = |name: header::HeaderName, needle: &str| {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.to_ascii_lowercase().contains(needle))
        };
        let is_grpc = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/grpc"));
        if is_grpc {
            Client::Grpc
        } else if (method == Method::GET || method == Method::HEAD)
            && (has(header::ACCEPT, "text/html")
                || headers
                    .get("sec-fetch-mode")
                    .is_some_and(|v| v.as_bytes() == b"navigate"))
        {
            Client::Browser
        } else {
            Client::Api
        }
    }
}

/// Adds the layer's `Set-Cookie` headers to a response the inner service made. A response that
/// sets a session cookie must never be stored by a shared cache and served to someone else:
/// whatever caching the handler asked for (`public`, `max-age`, `s-maxage`) is replaced by
/// `private, no-store`, and `Vary: Cookie` is added.
pub(crate) fn add_cookies(headers: &mut http::HeaderMap, set_cookies: Vec<HeaderValue>) {
    if set_cookies.is_empty() {
        return;
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    // CDNs obey their targeted fields before Cache-Control (RFC 9213: `CDN-Cache-Control`,
    // `<vendor>-CDN-Cache-Control`; Fastly's and Akamai's `Surrogate-Control`).
    let targeted: Vec<header::HeaderName> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            name.ends_with("cdn-cache-control") || name == "surrogate-control"
        })
        .cloned()
        .collect();
    for name in targeted {
        headers.insert(name, HeaderValue::from_static("no-store"));
    }
    let varies_on_cookie = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim() == "*" || v.trim().eq_ignore_ascii_case("cookie"));
    if !varies_on_cookie {
        headers.append(header::VARY, HeaderValue::from_static("Cookie"));
    }
    for c in set_cookies {
        headers.append(header::SET_COOKIE, c);
    }
}

pub(crate) fn redirect(location: &str, set_cookies: Vec<HeaderValue>) -> Page {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::FOUND;
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    add_cookies(headers, set_cookies);
    resp
}

/// A small HTML page naming the problem, with a retry link.
pub(crate) fn error_page(
    status: StatusCode,
    title: &str,
    message: &str,
    retry: Option<&str>,
    set_cookies: Vec<HeaderValue>,
) -> Page {
    let retry = retry
        .map(|href| format!(r#"<p><a href="{}">Try again</a></p>"#, escape(href)))
        .unwrap_or_default();
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body><h1>{t}</h1><p>{m}</p>{retry}</body></html>",
        t = escape(title),
        m = escape(message),
    );
    let mut resp = html_page(status, html);
    add_cookies(resp.headers_mut(), set_cookies);
    resp
}

pub(crate) fn json(status: StatusCode, body: serde_json::Value) -> Page {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A trailers-only gRPC response: HTTP 200 with `grpc-status` in the headers.
pub(crate) fn grpc_status(code: u8, message: &str) -> Page {
    let mut resp = Response::new(Full::new(Bytes::new()));
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from(u16::from(code)));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // grpc-message is percent-encoded (gRPC over HTTP/2 spec).
    let encoded: String = url::form_urlencoded::byte_serialize(message.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    if let Ok(v) = HeaderValue::from_str(&encoded) {
        headers.insert("grpc-message", v);
    }
    resp
}

/// The response to a request that needs a session and has none.
pub(crate) fn unauthenticated(
    client: Client,
    login_path: &str,
    return_to: &str,
    set_cookies: Vec<HeaderValue>,
) -> Page {
    let mut resp = match client {
        Client::Browser => {
            let target = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("return_to", return_to)
                .finish();
            redirect(&format!("{login_path}?{target}"), Vec::new())
        }
        Client::Grpc => grpc_status(16, "authentication required"),
        Client::Api => {
            let mut r = json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": "unauthenticated", "message": "authentication required"}),
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
    };
    add_cookies(resp.headers_mut(), set_cookies);
    resp
}

/// The answer to a logout request that did not come from the app itself: a page asking to
/// confirm, whose button POSTs from the app's origin. It cannot be framed (no clickjacking of
/// the button).
pub(crate) fn confirm_logout(logout_path: &str, cancel: &str) -> Page {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Sign out?</title></head><body><h1>Sign out?</h1>\
         <p>Do you want to sign out?</p>\
         <form method=\"post\" action=\"{action}\"><button type=\"submit\">Sign out</button> \
         <a href=\"{cancel}\">Stay signed in</a></form></body></html>",
        action = escape(logout_path),
        cancel = escape(cancel),
    );
    html_page(StatusCode::OK, html)
}

/// Asks a signed-in user before an IdP-initiated login from another site replaces their session.
/// "Continue" submits the same token from the app's own page (a same-origin request, which the
/// login route honours); "Stay signed in" goes back to the app.
pub(crate) fn confirm_idp_login(login_path: &str, token: &str, cancel: &str) -> Page {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Switch account?</title></head><body><h1>Switch account?</h1>\
         <p>You are already signed in. A sign-in started at your organization's identity \
         provider would replace this session. Continue only if you started it.</p>\
         <form method=\"get\" action=\"{action}\">\
         <input type=\"hidden\" name=\"idp_initiated_login\" value=\"{token}\">\
         <button type=\"submit\">Continue</button> \
         <a href=\"{cancel}\">Stay signed in</a></form></body></html>",
        action = escape(login_path),
        token = escape(token),
        cancel = escape(cancel),
    );
    html_page(StatusCode::OK, html)
}

/// An HTML page of the layer's own: never stored, never framed (its buttons and links cannot
/// be clickjacked).
fn html_page(status: StatusCode, html: String) -> Page {
    let mut resp = Response::new(Full::new(Bytes::from(html)));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

/// The response to a request whose session lacks what a guard requires.
pub(crate) fn forbidden(client: Client, what: &str) -> Page {
    match client {
        Client::Browser => error_page(
            StatusCode::FORBIDDEN,
            "Access denied",
            &format!("You are signed in, but this page needs {what}."),
            None,
            Vec::new(),
        ),
        Client::Grpc => grpc_status(7, &format!("permission denied: {what} required")),
        Client::Api => json(
            StatusCode::FORBIDDEN,
            serde_json::json!({"error": "forbidden", "message": format!("{what} required")}),
        ),
    }
}

pub(crate) fn method_not_allowed(allow: &'static str) -> Page {
    let mut r = json(
        StatusCode::METHOD_NOT_ALLOWED,
        serde_json::json!({"error": "method_not_allowed"}),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// HTML-escapes text for element content and quoted attributes.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn classifies_clients() {
        let html = headers(&[("accept", "text/html,application/xhtml+xml")]);
        assert_eq!(Client::of(&Method::GET, &html), Client::Browser);
        assert_eq!(Client::of(&Method::POST, &html), Client::Api);
        let grpc = headers(&[("content-type", "application/grpc+proto")]);
        assert_eq!(Client::of(&Method::POST, &grpc), Client::Grpc);
        let web = headers(&[("content-type", "application/grpc-web+proto")]);
        assert_eq!(Client::of(&Method::POST, &web), Client::Grpc);
        let api = headers(&[("accept", "application/json")]);
        assert_eq!(Client::of(&Method::GET, &api), Client::Api);
    }

    #[test]
    fn error_page_escapes() {
        let page = error_page(
            StatusCode::BAD_REQUEST,
            "<x>",
            "a\"b",
            Some("/l?a=1&b=2"),
            vec![],
        );
        let body = http_body_util::BodyExt::collect(page.into_body());
        let body = futures_util::FutureExt::now_or_never(body)
            .unwrap()
            .unwrap()
            .to_bytes();
        let s = String::from_utf8(body.to_vec()).unwrap();
        assert!(s.contains("&lt;x&gt;") && s.contains("a&quot;b") && s.contains("a=1&amp;b=2"));
        assert!(!s.contains("<x>"));
    }
}
