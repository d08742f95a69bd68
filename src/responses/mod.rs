//! What a request gets when the layer answers it, and the [`Responses`] hook that restyles or
//! translates those answers.
//!
//! The layer answers some requests itself: a request without a session (a redirect to login,
//! 401, gRPC `UNAUTHENTICATED`), a user without a required role (403), a sign-in that is not
//! recent or strong enough (a step-up login, or 401 `insufficient_user_authentication`), a failed sign-in (an error
//! page), a session the provider cannot renew now (503), a refused bearer token (401), and the
//! pages that ask before a cross-site logout or IdP-initiated login. Each is a method of
//! [`Responses`] with the layer's answer as its default; set your own with
//! [`AuthLayerBuilder::responses`](crate::AuthLayerBuilder::responses). Whatever it returns,
//! the layer keeps its cookies, `no-store` and the other rules listed on [`Responses`].
//!
//! # Example
//!
//! A German API: the 401 and 403 answers translated, everything else as the layer makes it.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use axum::{body::Body, routing::get, Router};
//! use bytes::Bytes;
//! use http::{header, Request, Response, StatusCode};
//! use tower::ServiceExt;
//! use tower_oidc_auth::responses::{
//!     Client, DefaultResponses, ForbiddenContext, Responses, UnauthenticatedContext,
//! };
//! use tower_oidc_auth::testing::{TestProvider, TestUser};
//!
//! struct German;
//!
//! fn json(status: StatusCode, body: serde_json::Value) -> Response<Bytes> {
//!     Response::builder()
//!         .status(status)
//!         .header(header::CONTENT_TYPE, "application/json")
//!         .body(Bytes::from(body.to_string()))
//!         .unwrap()
//! }
//!
//! impl Responses for German {
//!     fn unauthenticated(&self, cx: &UnauthenticatedContext<'_>) -> Response<Bytes> {
//!         match cx.client {
//!             // The layer adds `WWW-Authenticate: Bearer` and `Cache-Control: no-store`.
//!             Client::Api => json(
//!                 StatusCode::UNAUTHORIZED,
//!                 serde_json::json!({"error": "unauthenticated", "message": "Bitte anmelden"}),
//!             ),
//!             _ => DefaultResponses.unauthenticated(cx),
//!         }
//!     }
//!
//!     fn forbidden(&self, cx: &ForbiddenContext<'_>) -> Response<Bytes> {
//!         match cx.client {
//!             Client::Api => json(
//!                 StatusCode::FORBIDDEN,
//!                 serde_json::json!({"error": "forbidden", "message": format!("{} fehlt", cx.what)}),
//!             ),
//!             _ => DefaultResponses.forbidden(cx),
//!         }
//!     }
//! }
//!
//! let provider = TestProvider::start().await;
//! let auth = provider
//!     .layer_builder("http://127.0.0.1:3000/auth/callback")
//!     .responses(German)
//!     .build()
//!     .await
//!     .unwrap();
//! let app = Router::new()
//!     .route("/admin", get(|| async { "hallo" }))
//!     .route_layer(auth.require_role("admin"))
//!     .layer(auth.clone());
//!
//! let anonymous = Request::get("/admin").body(Body::empty()).unwrap();
//! let resp = app.clone().oneshot(anonymous).await.unwrap();
//! assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(resp.headers()[header::WWW_AUTHENTICATE], "Bearer");
//! assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
//! let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
//! assert!(String::from_utf8_lossy(&body).contains("Bitte anmelden"));
//!
//! let cookie = provider.session_cookie(&auth, &TestUser::new("usr_1"));
//! let signed_in = Request::get("/admin").header(header::COOKIE, cookie).body(Body::empty()).unwrap();
//! let resp = app.oneshot(signed_in).await.unwrap();
//! assert_eq!(resp.status(), StatusCode::FORBIDDEN);
//! let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
//! assert!(String::from_utf8_lossy(&body).contains("role admin fehlt"));
//! # }
//! ```
//!
//! # Not hooked
//!
//! - The back-channel logout and webhook routes answer the provider in their protocols' terms,
//!   and a method a route does not allow gets a JSON 405: no person reads these.
//! - [`Forbidden`](crate::Forbidden), returned by a handler from
//!   [`Claims::require_role`](crate::Claims::require_role) and its siblings, answers with
//!   [`DefaultResponses`]' API 403: it is made without the request or the layer. A handler that
//!   wants the app's own answer maps the error itself.

mod context;
mod enforce;
mod hook;
mod render;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::Full;

pub use context::{
    Client, ConfirmContext, ErrorPage, ErrorReason, ForbiddenContext, GrpcCode,
    InvalidTokenContext, StepUpContext, UnauthenticatedContext, UnavailableContext,
};
pub(crate) use enforce::{
    confirm_login, confirm_logout, error_page, explain_app_refusal, forbidden, invalid_token,
    step_up, unauthenticated, unavailable,
};
pub use hook::{DefaultResponses, Responses};
#[cfg(feature = "testing")]
pub(crate) use render::escape_html as escape;
pub use render::{escape_html, grpc_status};
pub(crate) use render::{provider_error_title, INVALID_TOKEN_CHALLENGE};

/// The body of responses the layer makes itself.
pub(crate) type Page = Response<Full<Bytes>>;

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
    no_store_at_cdns(headers);
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

/// CDNs obey their targeted fields before `Cache-Control` (RFC 9213: `CDN-Cache-Control`,
/// `<vendor>-CDN-Cache-Control`; Fastly's and Akamai's `Surrogate-Control`): any the response
/// carries say `no-store` too.
pub(crate) fn no_store_at_cdns(headers: &mut http::HeaderMap) {
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
}

/// A 302 to `location`, `no-store`, with the layer's cookies.
pub(crate) fn redirect(location: &str, set_cookies: Vec<HeaderValue>) -> Page {
    let mut resp = render::redirect(location).map(Full::new);
    add_cookies(resp.headers_mut(), set_cookies);
    resp
}

/// A JSON answer, `no-store`.
pub(crate) fn json(status: StatusCode, body: serde_json::Value) -> Page {
    render::json(status, &body).map(Full::new)
}

/// A protocol answer to a machine (the provider's back-channel logout and webhook calls): JSON,
/// `no-store`. Not hooked: no person reads it.
pub(crate) fn protocol_json(status: StatusCode, body: serde_json::Value) -> Page {
    json(status, body)
}

/// A protocol answer with no body: 200, `no-store`.
pub(crate) fn protocol_ok() -> Page {
    let mut page = Page::new(Full::new(Bytes::new()));
    page.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    page
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
            &DefaultResponses,
            "/app?a=1&b=2",
            &ErrorPage::new(
                StatusCode::BAD_REQUEST,
                ErrorReason::MalformedResponse,
                "<x>",
                "a\"b",
                Some("/l?a=1&b=2"),
            ),
            vec![],
        );
        let body = http_body_util::BodyExt::collect(page.into_body());
        let body = futures_util::FutureExt::now_or_never(body)
            .unwrap()
            .unwrap()
            .to_bytes();
        let s = String::from_utf8(body.to_vec()).unwrap();
        assert!(s.contains("&lt;x&gt;") && s.contains("a&quot;b") && s.contains("a=1&amp;b=2"));
        assert!(
            s.contains("<a href=\"/app?a=1&amp;b=2\">Back to the app</a>"),
            "{s}"
        );
        assert!(!s.contains("<x>"));
    }
}
