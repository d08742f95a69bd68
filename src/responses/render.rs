//! The layer's own answers ([`DefaultResponses`](super::DefaultResponses)), and the small
//! builders they share with custom [`Responses`](super::Responses).

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::refusal::Refusal;

use super::context::{
    Client, ConfirmContext, ErrorPage, ForbiddenContext, GrpcCode, InvalidTokenContext,
    StepUpContext, UnauthenticatedContext, UnavailableContext,
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

/// A message, with the refusal's sentence after it when refusals are explained.
fn with_reason(message: &str, refusal: Option<&Refusal>) -> String {
    match refusal {
        Some(refusal) => format!("{message}: {}", refusal.explanation()),
        None => message.to_owned(),
    }
}

/// A JSON answer's body, with `refusal` (the reason's header value) when explained.
fn json_body(error: &str, message: &str, refusal: Option<&Refusal>) -> serde_json::Value {
    let mut body = serde_json::json!({"error": error, "message": with_reason(message, refusal)});
    if let Some(refusal) = refusal {
        body["refusal"] = serde_json::Value::from(refusal.to_string());
    }
    body
}

pub(super) fn unauthenticated(cx: &UnauthenticatedContext<'_>) -> Response<Bytes> {
    let message = "authentication required";
    match cx.client {
        Client::Browser => redirect(cx.login_url),
        Client::Grpc => grpc_status(GrpcCode::Unauthenticated, &with_reason(message, cx.refusal)),
        Client::Api => {
            let mut r = json(
                StatusCode::UNAUTHORIZED,
                &json_body("unauthenticated", message, cx.refusal),
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
    }
}

pub(super) fn step_up(cx: &StepUpContext<'_>) -> Response<Bytes> {
    let message = "a more recent or stronger sign-in is required";
    match cx.client {
        Client::Browser => redirect(cx.login_url),
        Client::Grpc => grpc_status(GrpcCode::Unauthenticated, &with_reason(message, cx.refusal)),
        Client::Api => {
            let mut r = json(
                StatusCode::UNAUTHORIZED,
                &json_body("insufficient_user_authentication", message, cx.refusal),
            );
            let challenge = crate::step_up::challenge(cx.max_age, cx.acr_values);
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
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
            &with_reason(
                &format!("You are signed in, but this page needs {what}."),
                cx.refusal,
            ),
            None,
            cx.home,
        ),
        Client::Grpc => grpc_status(
            GrpcCode::PermissionDenied,
            &format!("permission denied: {what} required"),
        ),
        Client::Api => json(
            StatusCode::FORBIDDEN,
            &json_body("forbidden", &format!("{what} required"), cx.refusal),
        ),
    }
}

pub(super) fn error_page(cx: &ErrorPage<'_>) -> Response<Bytes> {
    let detail = provider_detail(cx.provider_error, cx.provider_error_description);
    let actions = retry_link(cx.retry);
    let body = format!(
        "<p>{m}</p>{detail}<p class=\"actions\">{actions}{back}</p>",
        m = escape_html(cx.message),
        back = back_link(cx.home),
    );
    html_page(cx.status, page(cx.title, &body))
}

/// The title of the error page for an OAuth `error` the provider sent: a cancelled sign-in
/// (`access_denied`, also what a provider sends when the user presses Cancel) reads as one.
pub(crate) fn provider_error_title(error: &str) -> &'static str {
    if error == "access_denied" {
        "Sign-in was cancelled"
    } else {
        "Sign-in failed"
    }
}

/// The OAuth and OpenID Connect error codes an authorization response may carry (RFC 6749
/// section 4.1.2.1, OpenID Connect Core 3.1.2.6, RFC 9101 and RFC 7591's), the only ones the
/// default error page shows.
const OAUTH_ERRORS: &[&str] = &[
    "invalid_request",
    "unauthorized_client",
    "access_denied",
    "unsupported_response_type",
    "invalid_scope",
    "server_error",
    "temporarily_unavailable",
    "interaction_required",
    "login_required",
    "account_selection_required",
    "consent_required",
    "invalid_request_uri",
    "invalid_request_object",
    "request_not_supported",
    "request_uri_not_supported",
    "registration_not_supported",
    "invalid_client",
    "invalid_grant",
    "unsupported_grant_type",
];

/// The longest `error_description` the default error page shows, in characters.
const DETAIL_MAX_CHARS: usize = 300;

/// What the provider said, as a muted detail under the message: its `error_description`
/// (shortened) and its `error` code. Both are untrusted and escaped.
fn provider_detail(error: Option<&str>, description: Option<&str>) -> String {
    let description = description.map(str::trim).filter(|d| !d.is_empty());
    // Only a registered code is shown: anyone can put any text in a link to the layer's routes,
    // and an unknown "code" would be words of theirs on the app's origin (a fake support
    // number, bidi controls reordering the page).
    let error = error.map(str::trim).filter(|e| OAUTH_ERRORS.contains(e));
    let said = description.map(|d| {
        let mut shown: String = d.chars().take(DETAIL_MAX_CHARS).collect();
        if shown.len() < d.len() {
            shown.push('\u{2026}');
        }
        format!(
            "The identity provider said: \u{201c}{}\u{201d}",
            escape_html(&shown)
        )
    });
    let code = error.map(|e| {
        let e: String = e.chars().take(64).collect();
        format!("<code>{}</code>", escape_html(&e))
    });
    match (said, code) {
        (Some(said), Some(code)) => format!("<p class=\"detail\">{said} ({code})</p>"),
        (Some(said), None) => format!("<p class=\"detail\">{said}</p>"),
        (None, Some(code)) => {
            format!("<p class=\"detail\">Error code from the identity provider: {code}</p>")
        }
        (None, None) => String::new(),
    }
}

/// The "Try again" link of a page, when retrying may help.
fn retry_link(retry: Option<&str>) -> String {
    retry
        .map(|href| {
            format!(
                "<a class=\"button\" href=\"{}\">Try again</a>",
                escape_html(href)
            )
        })
        .unwrap_or_default()
}

/// The way back from every page of the layer's own: the app's home (escaped).
fn back_link(home: &str) -> String {
    format!("<a href=\"{}\">Back to the app</a>", escape_html(home))
}

/// The look of the layer's own pages: readable, light or dark as the system prefers, no
/// external assets, no scripts.
const STYLE: &str = "\
:root{color-scheme:light dark;--fg:#1f2328;--muted:#59636e;--bg:#f6f8fa;--card:#fff;\
--line:#d1d9e0;--accent:#0969da;--on-accent:#fff}\
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9198a1;--bg:#0d1117;\
--card:#161b22;--line:#3d444d;--accent:#4493f8;--on-accent:#0d1117}}\
*{box-sizing:border-box}\
body{margin:0;padding:10vh 1rem 2rem;background:var(--bg);color:var(--fg);\
font:16px/1.55 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif}\
main{max-width:34rem;margin:0 auto;padding:2rem;background:var(--card);\
border:1px solid var(--line);border-radius:12px}\
h1{font-size:1.5rem;line-height:1.25;margin:0 0 1rem}\
p{margin:0 0 1rem}\
.detail{color:var(--muted);font-size:.9rem;overflow-wrap:anywhere}\
code{font:.85em ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}\
a{color:var(--accent)}\
.actions{display:flex;flex-wrap:wrap;align-items:center;gap:.75rem 1.25rem;margin:1.5rem 0 0}\
.button,button{display:inline-block;font:inherit;font-weight:600;padding:.5rem 1.1rem;\
border:0;border-radius:8px;background:var(--accent);color:var(--on-accent);\
text-decoration:none;cursor:pointer}\
.button:focus-visible,button:focus-visible,a:focus-visible{outline:2px solid var(--accent);\
outline-offset:2px}";

/// A whole page of the layer's own: `title` (escaped here) as `<title>` and heading, then
/// `body`, HTML the caller built with every untrusted string escaped.
fn page(title: &str, body: &str) -> String {
    let t = escape_html(title);
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>{STYLE}</style></head>\
         <body><main><h1>{t}</h1>{body}</main></body></html>"
    )
}

/// A small HTML page naming the problem, with a retry link and a way back to the app.
fn simple_page(
    status: StatusCode,
    title: &str,
    message: &str,
    retry: Option<&str>,
    home: &str,
) -> Response<Bytes> {
    let body = format!(
        "<p>{m}</p><p class=\"actions\">{retry}{back}</p>",
        m = escape_html(message),
        retry = retry_link(retry),
        back = back_link(home),
    );
    html_page(status, page(title, &body))
}

pub(super) fn unavailable(cx: &UnavailableContext<'_>) -> Response<Bytes> {
    let mut page = match cx.client {
        Client::Browser => simple_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Temporarily unavailable",
            "Your session could not be renewed because the identity provider is not reachable. \
             You are still signed in; please try again in a moment.",
            Some(cx.retry),
            cx.home,
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
    let refusal = cx.refusal.as_ref();
    match cx.client {
        Client::Grpc => grpc_status(
            GrpcCode::Unauthenticated,
            &with_reason("invalid bearer token", refusal),
        ),
        _ => {
            let mut page = json(
                StatusCode::UNAUTHORIZED,
                &json_body(
                    "invalid_token",
                    "the access token is invalid or expired",
                    refusal,
                ),
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

/// A confirmation page: a question, and a form whose button submits `cx`'s fields, beside a
/// link back to the app.
fn confirm_page(cx: &ConfirmContext<'_>, title: &str, question: &str, submit: &str) -> String {
    let body = format!(
        "<p>{q}</p><form method=\"{method}\" action=\"{action}\" class=\"actions\">{fields}\
         <button type=\"submit\">{s}</button> <a href=\"{cancel}\">Stay signed in</a></form>",
        q = escape_html(question),
        s = escape_html(submit),
        method = form_method(cx),
        action = escape_html(cx.action),
        fields = hidden_fields(cx),
        cancel = escape_html(cx.cancel),
    );
    page(title, &body)
}

/// A page asking to confirm a logout that did not come from the app itself; its button POSTs
/// from the app's origin.
pub(super) fn confirm_logout(cx: &ConfirmContext<'_>) -> Response<Bytes> {
    let html = confirm_page(
        cx,
        "Sign out?",
        "Do you want to sign out of this app?",
        "Sign out",
    );
    html_page(StatusCode::OK, html)
}

/// Asks a signed-in user before a login started on another site (an IdP-initiated login, a
/// sealed link choosing a tenant) replaces their session. "Continue" submits the same request from the app's own page (a same-origin request, which the
/// login route honours); "Stay signed in" goes back to the app.
pub(super) fn confirm_login(cx: &ConfirmContext<'_>) -> Response<Bytes> {
    let html = confirm_page(
        cx,
        "Switch account?",
        "You are already signed in. A sign-in started outside this app would replace this \
         session. Continue only if you started it.",
        "Continue",
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
