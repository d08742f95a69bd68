//! Guards for routes: refuse requests that carry no verified session, or lack a role, a
//! permission, a scope or a claim, or whose sign-in is not recent or strong enough.
//!
//! [`AuthLayer::require`](crate::AuthLayer::require) and its siblings make a
//! [`RequireAuthLayer`], to put on routes inside the [`AuthLayer`](crate::AuthLayer). Without a
//! session a browser is redirected to the login, an API gets 401 and gRPC `UNAUTHENTICATED`;
//! without the role (or permission, ...) the answer is 403, or gRPC `PERMISSION_DENIED`. The
//! step-up guards ([`require_recent_login`](crate::AuthLayer::require_recent_login),
//! [`require_acr`](crate::AuthLayer::require_acr)) send a browser to a login that asks for the
//! step-up and returns to the same page, and answer APIs with 401 and the RFC 9470 challenge.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use axum::{body::Body, routing::get, Router};
//! use http::{header, Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_oidc_auth::testing::{TestProvider, TestUser};
//!
//! let provider = TestProvider::start().await;
//! let auth = provider
//!     .layer_builder("http://127.0.0.1:3000/auth/callback")
//!     .build()
//!     .await
//!     .unwrap();
//! let app = Router::new()
//!     .route("/admin", get(|| async { "admin" }))
//!     .route_layer(auth.require_role("admin"))
//!     .layer(auth.clone());
//! let admin = |cookie: Option<String>| {
//!     let mut req = Request::get("/admin");
//!     if let Some(cookie) = cookie {
//!         req = req.header(header::COOKIE, cookie);
//!     }
//!     req.body(Body::empty()).unwrap()
//! };
//!
//! let anonymous = app.clone().oneshot(admin(None)).await.unwrap();
//! assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
//! let user = provider.session_cookie(&auth, &TestUser::new("usr_1"));
//! let forbidden = app.clone().oneshot(admin(Some(user))).await.unwrap();
//! assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
//! let root = provider.session_cookie(&auth, &TestUser::new("usr_2").role("admin"));
//! assert_eq!(app.oneshot(admin(Some(root))).await.unwrap().status(), StatusCode::OK);
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::{own, AuthBody};
use crate::claims::Claims;
use crate::responses::{
    forbidden, step_up as step_up_response, unauthenticated, Client, Page, StepUpContext,
};
use crate::routes::{LoginOptions, StepUp};
use crate::state::Shared;

/// A predicate over the claims, with a description for the 403 answer.
#[derive(Clone)]
pub(crate) struct Guard {
    check: Arc<dyn Fn(&Claims) -> bool + Send + Sync>,
    what: Arc<str>,
}

impl Guard {
    pub(crate) fn new(
        what: impl Into<String>,
        check: impl Fn(&Claims) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self {
            check: Arc::new(check),
            what: what.into().into(),
        }
    }
}

/// Layer returned by [`AuthLayer::require`](crate::AuthLayer::require) and the guards
/// ([`require_role`](crate::AuthLayer::require_role), ...): requests without a session get the
/// unauthenticated answer; sessions that fail the guard get 403.
#[derive(Clone)]
pub struct RequireAuthLayer {
    state: Arc<RequireState>,
}

/// What a [`RequireAuth`] needs, behind one pointer: axum clones a route's service for every
/// request.
struct RequireState {
    shared: Arc<Shared>,
    guard: Option<Guard>,
    step_up: Option<StepUp>,
}

impl RequireAuthLayer {
    pub(crate) fn new(shared: Arc<Shared>, guard: Option<Guard>) -> Self {
        Self {
            state: Arc::new(RequireState {
                shared,
                guard,
                step_up: None,
            }),
        }
    }

    /// A guard that answers a sign-in not meeting `step_up` with a step-up login (browsers),
    /// 401 `insufficient_user_authentication` (APIs) or `UNAUTHENTICATED` (gRPC).
    pub(crate) fn step_up(shared: Arc<Shared>, step_up: StepUp) -> Self {
        Self {
            state: Arc::new(RequireState {
                shared,
                guard: None,
                step_up: Some(step_up),
            }),
        }
    }
}

/// Whether `claims` meet `step_up` at the layer's clock: an `auth_time` no older than
/// `max_age` (plus the leeway; none is not recent), an `acr` among `acr_values`. The same test
/// as the callback's, so a sign-in the callback accepts passes.
fn meets(shared: &Shared, claims: &Claims, step_up: &StepUp) -> bool {
    let raw = claims.raw();
    let recent = step_up.max_age.is_none_or(|max_age| {
        crate::step_up::is_recent(
            raw.get("auth_time"),
            max_age,
            shared.verifier.leeway(),
            shared.clock.now(),
        )
    });
    let strong = step_up
        .acr_values
        .as_deref()
        .is_none_or(|values| crate::step_up::acr_accepted(raw.get("acr"), values));
    recent && strong
}

/// The answer to a signed-in request whose sign-in does not meet `step_up`.
fn step_up_parts(shared: &Shared, parts: &http::request::Parts, step_up: &StepUp) -> Page {
    let client = Client::of(&parts.method, &parts.headers);
    let return_to = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .and_then(crate::return_to::sanitize)
        .unwrap_or(&shared.settings.default_return);
    let mut options = LoginOptions::new().return_to(return_to);
    options.max_age = step_up.max_age.map(std::time::Duration::from_secs);
    options.acr_values = step_up.acr_values.clone();
    let login_url = options.to_sealed_path(&shared.cookies, &shared.settings.login_path);
    step_up_response(
        &*shared.responses,
        &StepUpContext {
            client,
            login_url: &login_url,
            return_to,
            max_age: step_up.max_age,
            acr_values: step_up.acr_values.as_deref(),
            refusal: shared
                .settings
                .explain_refusals
                .then_some(&crate::refusal::Refusal::StepUpRequired),
        },
    )
}

impl std::fmt::Debug for RequireAuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequireAuthLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for RequireAuthLayer {
    type Service = RequireAuth<S>;
    fn layer(&self, inner: S) -> RequireAuth<S> {
        RequireAuth {
            inner,
            state: self.state.clone(),
        }
    }
}

/// Service made by [`RequireAuthLayer`]: passes requests with [`Claims`], answers the rest.
#[derive(Clone)]
pub struct RequireAuth<S> {
    inner: S,
    state: Arc<RequireState>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for RequireAuth<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequireAuth")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// The response for a request without a session, by kind of client.
pub(crate) fn reject_parts(shared: &Shared, parts: &http::request::Parts) -> Page {
    let client = Client::of(&parts.method, &parts.headers);
    let return_to = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .and_then(crate::return_to::sanitize)
        .unwrap_or(&shared.settings.default_return);
    // Why: the layer's reason if it refused the request's credentials, else it had none.
    let refusal = crate::refusal::Refused::of(&parts.extensions, &shared.verifier.layer());
    unauthenticated(
        &*shared.responses,
        client,
        &shared.settings.login_path,
        return_to,
        refusal,
        shared.settings.explain_refusals,
    )
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireAuth<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body<Data = Bytes>,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = RequireFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // Only this layer's claims count: claims of another layer (an outer one, when this
        // guard is mounted where its own layer does not run) are no session here.
        let RequireState {
            shared,
            guard,
            step_up,
        } = &*self.state;
        let own = req
            .extensions()
            .get::<Claims>()
            .filter(|c| c.layer() == shared.verifier.layer());
        if let Some(claims) = own {
            if let Some(step_up) = step_up.as_ref().filter(|s| !meets(shared, claims, s)) {
                tracing::debug!(sub = %claims.sub, ?step_up, "step-up required");
                let (parts, _) = req.into_parts();
                return RequireFuture {
                    kind: Kind::Ready {
                        page: Some(step_up_parts(shared, &parts, step_up)),
                    },
                };
            }
            match guard {
                Some(guard) if !(guard.check)(claims) => {
                    tracing::debug!(sub = %claims.sub, what = %guard.what, "guard refused");
                    let client = Client::of(req.method(), req.headers());
                    return RequireFuture {
                        kind: Kind::Ready {
                            page: Some(forbidden(
                                &*shared.responses,
                                &shared.settings.default_return,
                                client,
                                &guard.what,
                                shared.settings.explain_refusals,
                            )),
                        },
                    };
                }
                _ => {
                    return RequireFuture {
                        kind: Kind::Inner {
                            fut: self.inner.call(req),
                        },
                    }
                }
            }
        }
        let (parts, _) = req.into_parts();
        tracing::debug!(path = parts.uri.path(), "unauthenticated request refused");
        RequireFuture {
            kind: Kind::Ready {
                page: Some(reject_parts(shared, &parts)),
            },
        }
    }
}

pin_project! {
    /// Response future of [`RequireAuth`].
    pub struct RequireFuture<F> {
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

impl<F, B, E> Future for RequireFuture<F>
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
                .expect("RequireFuture polled after completion")))),
        }
    }
}

#[cfg(feature = "tonic")]
impl<S: tonic::server::NamedService> tonic::server::NamedService for RequireAuth<S> {
    const NAME: &'static str = S::NAME;
}
