//! The layer's own answers ([`DefaultResponses`](super::DefaultResponses)), and the small
//! builders they share with custom [`Responses`](super::Responses).

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::context::{
    Client, ConfirmContext, ErrorPage, ForbiddenContext, GrpcCode, InvalidTokenContext,
    UnauthenticatedContext, UnavailableContext,
};

/// The seconds a client is asked to wait when the provider cannot renew a session.
pub(crate) const RETRY_AFTER_SECS: u32 = 5;

/// HTML-escapes text for element content and quoted attribute values (`&`, `<`, `>`, `"`,
/// `'`). Use it for every context field a custom page shows, above all the untrusted ones.
///
/// ```
/// use tower_oidc_auth::responses::escape_html;
/// assert_eq!(escape_html(r#"<a href="x">"#), "&lt;a href=&quot;x&quot;&gt;");
/// ```
#[must_use]
pub fn escape_html(s: &str) -> String {
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

/// A trailers-only gRPC answer: HTTP 200, `content-type: application/grpc`, `grpc-status` and
/// the percent-encoded `grpc-message` in the headers, `Cache-Control: no-store`.
///
/// ```
/// use tower_oidc_auth::responses::{grpc_status, GrpcCode};
/// let resp = grpc_status(GrpcCode::Unauthenticated, "bitte anmelden");
/// assert_eq!(resp.headers()["grpc-status"], "16");
/// assert_eq!(resp.headers()["grpc-message"], "bitte%20anmelden");
/// ```
#[must_use]
pub fn grpc_status(code: GrpcCode, message: &str) -> Response<Bytes> {
    let mut resp = Response::new(Bytes::new());
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from(code.code()));
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

/// A JSON answer, `no-store`.
pub(crate) fn json(status: StatusCode, body: &serde_json::Value) -> Response<Bytes> {
    let mut resp = Response::new(Bytes::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A 302 to `location`, `no-store`.
pub(crate) fn redirect(location: &str) -> Response<Bytes> {
    let mut resp = Response::new(Bytes::new());
    *resp.status_mut() = StatusCode::FOUND;
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// An HTML page of the layer's own: never stored, never framed (its buttons and links cannot
/// be clickjacked).
pub(crate) fn html_page(status: StatusCode, html: String) -> Response<Bytes> {
    let mut resp = Response::new(Bytes::from(html));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    unframeable(headers);
    resp
}

pub(super) fn unauthenticated(cx: &UnauthenticatedContext<'_>) -> Response<Bytes> {
    match cx.client {
        Client::Browser => redirect(cx.login_url),
        Client::Grpc => grpc_status(GrpcCode::Unauthenticated, "authentication required"),
        Client::Api => {
            let mut r = json(
                StatusCode::UNAUTHORIZED,
                &serde_json::json!({"error": "unauthenticated", "message": "authentication required"}),
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
    }
}

pub(super) fn forbidden(cx: &ForbiddenContext<'_>) -> Response<Bytes> {
    let what = cx.what;
    match cx.client {
        Client::Browser => simple_page(
            StatusCode::FORBIDDEN,
            "Access denied",
            &format!("You are signed in, but this page needs {what}."),
            None,
        ),
        Client::Grpc => grpc_status(
            GrpcCode::PermissionDenied,
            &format!("permission denied: {what} required"),
        ),
        Client::Api => json(
            StatusCode::FORBIDDEN,
            &serde_json::json!({"error": "forbidden", "message": format!("{what} required")}),
        ),
    }
}

pub(super) fn error_page(cx: &ErrorPage<'_>) -> Response<Bytes> {
    simple_page(cx.status, cx.title, cx.message, cx.retry)
}

/// A small HTML page naming the problem, with a retry link.
fn simple_page(
    status: StatusCode,
    title: &str,
    message: &str,
    retry: Option<&str>,
) -> Response<Bytes> {
    let retry = retry
        .map(|href| format!(r#"<p><a href="{}">Try again</a></p>"#, escape_html(href)))
        .unwrap_or_default();
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body><h1>{t}</h1><p>{m}</p>{retry}</body></html>",
        t = escape_html(title),
        m = escape_html(message),
    );
    html_page(status, html)
}

pub(super) fn unavailable(cx: &UnavailableContext<'_>) -> Response<Bytes> {
    let mut page = match cx.client {
        Client::Browser => simple_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Temporarily unavailable",
            "Your session could not be renewed because the identity provider is not reachable. \
             You are still signed in; please try again in a moment.",
            Some(cx.retry),
        ),
        Client::Grpc => grpc_status(
            GrpcCode::Unavailable,
            "identity provider unavailable; retry later",
        ),
        Client::Api => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"error": "temporarily_unavailable",
                               "message": "session renewal failed; retry later"}),
        ),
    };
    page.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(cx.retry_after));
    page
}

pub(super) fn invalid_token(cx: &InvalidTokenContext) -> Response<Bytes> {
    match cx.client {
        Client::Grpc => grpc_status(GrpcCode::Unauthenticated, "invalid bearer token"),
        _ => {
            let mut page = json(
                StatusCode::UNAUTHORIZED,
                &serde_json::json!({"error": "invalid_token",
                                   "message": "the access token is invalid or expired"}),
            );
            page.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(INVALID_TOKEN_CHALLENGE),
            );
            page
        }
    }
}

/// The hidden inputs of a confirmation form.
fn hidden_fields(cx: &ConfirmContext<'_>) -> String {
    cx.fields
        .iter()
        .map(|(name, value)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape_html(name),
                escape_html(value)
            )
        })
        .collect()
}

/// A page asking to confirm a logout that did not come from the app itself; its button POSTs
/// from the app's origin.
pub(super) fn confirm_logout(cx: &ConfirmContext<'_>) -> Response<Bytes> {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Sign out?</title></head><body><h1>Sign out?</h1>\
         <p>Do you want to sign out?</p>\
         <form method=\"{method}\" action=\"{action}\">{fields}<button type=\"submit\">Sign out</button> \
         <a href=\"{cancel}\">Stay signed in</a></form></body></html>",
        method = form_method(cx),
        action = escape_html(cx.action),
        fields = hidden_fields(cx),
        cancel = escape_html(cx.cancel),
    );
    html_page(StatusCode::OK, html)
}

/// Asks a signed-in user before an IdP-initiated login from another site replaces their session.
/// "Continue" submits the same token from the app's own page (a same-origin request, which the
/// login route honours); "Stay signed in" goes back to the app.
pub(super) fn confirm_login(cx: &ConfirmContext<'_>) -> Response<Bytes> {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Switch account?</title></head><body><h1>Switch account?</h1>\
         <p>You are already signed in. A sign-in started at your organization's identity \
         provider would replace this session. Continue only if you started it.</p>\
         <form method=\"{method}\" action=\"{action}\">{fields}\
         <button type=\"submit\">Continue</button> \
         <a href=\"{cancel}\">Stay signed in</a></form></body></html>",
        method = form_method(cx),
        action = escape_html(cx.action),
        fields = hidden_fields(cx),
        cancel = escape_html(cx.cancel),
    );
    html_page(StatusCode::OK, html)
}

fn form_method(cx: &ConfirmContext<'_>) -> &'static str {
    if cx.method == http::Method::GET {
        "get"
    } else {
        "post"
    }
}

/// RFC 6750 section 3.1.
pub(crate) const INVALID_TOKEN_CHALLENGE: &str = "Bearer error=\"invalid_token\"";

pub(super) fn unframeable(headers: &mut http::HeaderMap) {
    // A policy of its own: every policy a response carries is enforced, so no directive a hook
    // wrote in its policy (a `frame-ancestors` first, which a browser would keep over a second
    // one in the same policy) can allow framing. Browsers that apply a CSP `frame-ancestors`
    // ignore `X-Frame-Options`; the rest obey `DENY`.
    headers.append(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}
