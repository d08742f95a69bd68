//! Silent login: a browser without a session is sent once to the provider with `prompt=none`,
//! and comes back signed in if the provider already knows it (single sign-on), or anonymous
//! otherwise, with no error page and no loop.
//!
//! [`AuthLayer::attempt_silent_login`](crate::AuthLayer::attempt_silent_login) makes a
//! [`SilentLoginLayer`], to put inside the [`AuthLayer`](crate::AuthLayer) on public pages.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use axum::{body::Body, routing::get, Router};
//! use http::{header, Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_oidc_auth::testing::TestProvider;
//!
//! let provider = TestProvider::start().await;
//! let auth = provider
//!     .layer_builder("http://127.0.0.1:3000/auth/callback")
//!     .build()
//!     .await
//!     .unwrap();
//! let app = Router::new()
//!     .route("/", get(|| async { "home" }))
//!     .layer(auth.attempt_silent_login())
//!     .layer(auth.clone());
//! let page = |cookie: Option<&str>| {
//!     let mut req = Request::get("/?tab=2").header(header::ACCEPT, "text/html");
//!     if let Some(cookie) = cookie {
//!         req = req.header(header::COOKIE, cookie);
//!     }
//!     req.body(Body::empty()).unwrap()
//! };
//!
//! // A first visit without a session: to the login route, silently.
//! let first = app.clone().oneshot(page(None)).await.unwrap();
//! assert_eq!(first.status(), StatusCode::FOUND);
//! let to = first.headers()[header::LOCATION].to_str().unwrap();
//! assert_eq!(to, "/auth/login?prompt=none&return_to=%2F%3Ftab%3D2");
//! // The attempt is remembered: the next visit passes through, anonymous.
//! let tried = first.headers()[header::SET_COOKIE].to_str().unwrap();
//! let tried = tried.split(';').next().unwrap();
//! let again = app.oneshot(page(Some(tried))).await.unwrap();
//! assert_eq!(again.status(), StatusCode::OK);
//! # }
//! ```
//!
//! # When it applies
//!
//! Only to `GET` top-level navigations of a browser (`Accept: text/html`, and
//! `Sec-Fetch-Mode: navigate` with `Sec-Fetch-Dest: document` when the browser sends fetch
//! metadata) that carry no session of this layer, no `Authorization` header and no
//! `X-Requested-With`, outside the layer's own routes. XHR and `fetch` calls, APIs, bearer and
//! gRPC requests, `POST`s and frames pass through untouched.
//!
//! # The "tried" cookie
//!
//! The redirect sets a small cookie (named with the layer's cookie prefix and `_silent`, on the
//! session path; `HttpOnly`, `SameSite=Lax`, `Secure` as the session cookie). Its `Max-Age` is
//! the login timeout (`login_timeout`, ten minutes by default): while it lives, requests pass
//! through anonymously; after it, the next page load tries again, so a user who signs in to
//! another app of the same provider meanwhile is picked up then. Once the app has made a
//! silent-login layer, logging out sets it too, so a provider session that outlives the logout
//! (a provider without `end_session_endpoint`) does not sign the user straight back in.
//!
//! # At the callback
//!
//! A silent attempt answered with `login_required`, `interaction_required`, `consent_required`
//! or `account_selection_required` sends the browser back to the page it started from,
//! anonymous, with its login transaction cleared. Any other error shows the error page, as for
//! any login.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::{own, AuthBody};
use crate::claims::Claims;
use crate::responses::{redirect, Client, Page};
use crate::state::Shared;

/// The provider errors that mean "the user must interact" (OIDC Core 3.1.2.6): a silent
/// attempt that gets one falls back to anonymous.
pub(crate) const NEEDS_USER: &[&str] = &[
    "login_required",
    "interaction_required",
    "consent_required",
    "account_selection_required",
];

/// The `Set-Cookie` value that marks a silent login as tried in this browser.
pub(crate) fn tried_cookie(shared: &Shared) -> HeaderValue {
    let codec = &shared.cookies;
    codec.set(
        &codec.silent.name,
        &codec.silent.path,
        "1",
        shared.settings.login_timeout,
    )
}

/// Layer returned by
/// [`AuthLayer::attempt_silent_login`](crate::AuthLayer::attempt_silent_login): browser
/// navigations without a session are sent once to a `prompt=none` login. See the
/// [module docs](self).
#[derive(Clone)]
pub struct SilentLoginLayer {
    shared: Arc<Shared>,
}

impl SilentLoginLayer {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl std::fmt::Debug for SilentLoginLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SilentLoginLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for SilentLoginLayer {
    type Service = SilentLogin<S>;
    fn layer(&self, inner: S) -> SilentLogin<S> {
        SilentLogin {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Service made by [`SilentLoginLayer`].
#[derive(Clone)]
pub struct SilentLogin<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for SilentLogin<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SilentLogin")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// The redirect to a silent login, when `req` is a browser navigation without a session that
/// has not tried yet.
fn attempt<B>(shared: &Shared, req: &Request<B>) -> Option<Page> {
    let headers = req.headers();
    // A protected resource has no login to try, and sets no cookies.
    if shared.resource.is_some()
        || req.method() != Method::GET
        || Client::of(req.method(), headers) != Client::Browser
        || headers.contains_key(header::AUTHORIZATION)
        || headers.contains_key("x-requested-with")
    {
        return None;
    }
    // With fetch metadata: a top-level navigation only (not a frame, not a fetch).
    let is = |name: &str, value: &[u8]| headers.get(name).is_none_or(|v| v.as_bytes() == value);
    if !is("sec-fetch-mode", b"navigate") || !is("sec-fetch-dest", b"document") {
        return None;
    }
    let settings = &shared.settings;
    let path = req.uri().path();
    let own_route = [
        &settings.login_path,
        &settings.callback_path,
        &settings.logout_path,
        &settings.backchannel_path,
        &settings.webhook_path,
    ]
    .iter()
    .any(|p| p.as_str() == path);
    if own_route {
        return None;
    }
    // Only this layer's claims count (as for the guards).
    let signed_in = req
        .extensions()
        .get::<Claims>()
        .is_some_and(|c| c.layer() == shared.verifier.layer());
    if signed_in {
        return None;
    }
    let codec = &shared.cookies;
    if codec.read(headers).get(&codec.silent.name).is_some() {
        return None;
    }
    let here = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .and_then(crate::return_to::sanitize)
        .unwrap_or(&settings.default_return);
    // Plain parameters: the login route honours `prompt=none` from any site (it chooses no
    // tenant and can only make a sign-in quieter).
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("prompt", "none")
        .append_pair("return_to", here)
        .finish();
    let login = format!("{}?{query}", settings.login_path);
    tracing::debug!(path, "no session: trying a silent login (prompt=none)");
    Some(redirect(&login, vec![tried_cookie(shared)]))
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SilentLogin<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body<Data = Bytes>,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = SilentLoginFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let kind = match attempt(&self.shared, &req) {
            Some(page) => Kind::Ready { page: Some(page) },
            // The ready inner service is called at once: no clone needed.
            None => Kind::Inner {
                fut: self.inner.call(req),
            },
        };
        SilentLoginFuture { kind }
    }
}

pin_project! {
    /// Response future of [`SilentLogin`].
    pub struct SilentLoginFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] fut: F },
        Ready { page: Option<Page> },
    }
}

impl<F> std::fmt::Debug for SilentLoginFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SilentLoginFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for SilentLoginFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<AuthBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { fut } => {
                let resp = ready!(fut.poll(cx))?;
                Poll::Ready(Ok(resp.map(AuthBody::inner)))
            }
            KindProj::Ready { page } => Poll::Ready(Ok(own(page
                .take()
                .expect("SilentLoginFuture polled after completion")))),
        }
    }
}

#[cfg(feature = "tonic")]
impl<S: tonic::server::NamedService> tonic::server::NamedService for SilentLogin<S> {
    const NAME: &'static str = S::NAME;
}
